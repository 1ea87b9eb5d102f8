//! What this module adds beyond the stock one (issue: keepalive pings, missing Origin,
//! WHOIS for opers, STATS counters, permissive-origin warning), on the real InspIRCd.
//! None of these exist in the stock InspIRCd 3 module, so they run against ours only.

use std::time::{Duration, Instant};

use crate::common::*;

/// An idle WebSocket connection gets a ping frame after `pinginterval`; the stock
/// module sends none, so proxies with idle timers drop its clients.
#[test]
fn idle_connection_receives_a_keepalive_ping() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"pinginterval="1s""#));
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    let started = Instant::now();
    conn.send_text("NICK idler").expect("send");
    conn.send_text("USER idler 0 * :Idle user").expect("send");
    // The ping may come before or after 001 (registration completes on a timer).
    let ping = conn
        .expect_frame("a keepalive ping", |f| f.opcode == OP_PING)
        .expect("a keepalive ping");
    assert_eq!(ping.payload, b"keepalive");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Answering keeps the connection: no close after another two intervals.
    conn.send_frame(true, OP_PONG, &ping.payload).expect("send");
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        let frame = match conn.frame_until(deadline) {
            Ok(f) => f,
            Err(e) if e.is_timeout() || e.is_closed() => break,
            Err(e) => panic!("{e:?}"),
        };
        assert_ne!(
            frame.opcode, OP_CLOSE,
            "closed although the ping was answered"
        );
        if frame.opcode == OP_PING {
            conn.send_frame(true, OP_PONG, &frame.payload)
                .expect("send");
        }
    }
    conn.send_text("PING :still-here").expect("send");
    conn.expect_frame("PONG still-here", |f| {
        f.opcode == OP_TEXT && String::from_utf8_lossy(&f.payload).contains("still-here")
    })
    .expect("PONG still-here");
}

/// A client that keeps talking but is sent nothing is pinged too: nginx's
/// proxy_read_timeout counts only what the server sends, so the server must not stay
/// silent for long however much the client says.
#[test]
fn a_talking_client_that_is_sent_nothing_is_pinged() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"pinginterval="2s""#));
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("talker").expect("registration");
    conn.send_text("JOIN #alone").expect("send");
    conn.expect_frame("366 for #alone", |f| is_numeric(&f.payload, "366"))
        .expect("366 for #alone");
    // Messages to a channel with nobody else in it: nothing comes back.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        conn.send_text("PRIVMSG #alone :still talking")
            .expect("send");
        let pace = Instant::now() + Duration::from_millis(200);
        match conn.frame_until(pace) {
            Ok(f) if f.opcode == OP_PING => {
                assert_eq!(f.payload, b"keepalive");
                break;
            }
            Ok(f) => panic!("unexpected frame {f:?}"),
            Err(e) if e.is_closed() => panic!("the server closed the connection"),
            Err(e) if e.is_timeout() => assert!(
                Instant::now() < deadline,
                "no keepalive ping within {TIMEOUT:?} while the client talked"
            ),
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A client that answers nothing is closed with 1001 and quits with a clear reason.
#[test]
fn silent_client_is_closed_with_1001_after_an_unanswered_ping() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"pinginterval="1s""#));
    let mut watcher = server.irc("watcher").expect("watcher");
    watcher.join("#idle").expect("JOIN");
    let mut conn = server.raw_user_in(&mut watcher, "#idle", "silent");
    let frames = conn.frames_until_eof().expect("frames until EOF");
    let close = frames
        .iter()
        .find(|f| f.opcode == OP_CLOSE)
        .unwrap_or_else(|| panic!("no close frame before EOF: {frames:?}"));
    assert_eq!(close.close_code(), Some(1001));
    watcher
        .expect_str("the quit reason", |l| {
            l.contains("QUIT") && l.contains("no answer to a keepalive ping")
        })
        .expect("the quit reason");
}

#[test]
fn nativeping_no_sends_no_keepalive_ping() {
    let server =
        Server::start(Conf::new(Module::Ours).websocket(r#"nativeping="no" pinginterval="1s""#));
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("noping").expect("registration");
    let deadline = Instant::now() + Duration::from_millis(2500);
    loop {
        let frame = match conn.frame_until(deadline) {
            Ok(f) => f,
            Err(e) if e.is_timeout() || e.is_closed() => break,
            Err(e) => panic!("{e:?}"),
        };
        assert_ne!(
            frame.opcode, OP_PING,
            "keepalive ping although nativeping=no"
        );
    }
}

/// Native apps and bots send no Origin: accepted with `allowmissingorigin="yes"` (the
/// default on InspIRCd 4, not on 3).
#[test]
fn allowmissingorigin_accepts_clients_without_origin() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"allowmissingorigin="yes""#));
    let mut client = WsClient::connect(server.ws_port, &WsOpts::default().origin(None))
        .unwrap_or_else(|e| panic!("handshake without Origin: {}", describe_ws_error(&e)));
    client.register("bot").expect("registration");
}

/// Without `allowmissingorigin`, each server's stock default: InspIRCd 3's module
/// always refused a request without Origin (400); InspIRCd 4's accepts it unless told
/// `allowmissingorigin="no"`.
fn missing_origin_follows_the_servers_default(m: Module) {
    let server = Server::start(Conf::new(m));
    let response =
        http_exchange(server.ws_port, &upgrade_request_from(None)).expect("the response");
    let expected = match dialect() {
        Dialect::V3 => 400,
        Dialect::V4 => 101,
    };
    assert_eq!(response.status, expected, "{response:?}");
}
both_modules!(missing_origin_follows_the_servers_default);

/// `allowmissingorigin="no"` refuses it on every server.
fn allowmissingorigin_no_refuses_clients_without_origin(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"allowmissingorigin="no""#));
    let response =
        http_exchange(server.ws_port, &upgrade_request_from(None)).expect("the response");
    assert_eq!(response.status, 400, "{response:?}");
}
both_modules!(allowmissingorigin_no_refuses_clients_without_origin);

#[test]
fn whois_shows_opers_the_websocket_origin() {
    let server = Server::start(Conf::new(Module::Ours));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    let _web = server.ws("webby").expect("webby");
    let lines = oper.whois("webby").expect("WHOIS");
    let gateway = lines
        .iter()
        .find(|l| is_numeric(l.as_bytes(), "350"))
        .unwrap_or_else(|| panic!("no 350 in {lines:#?}"));
    assert!(
        gateway.ends_with(&format!(
            "webby * * :is connected from the {ORIGIN} WebSocket origin"
        )),
        "{gateway}"
    );

    // Not for ordinary users.
    let mut user = server.irc("plain").expect("plain");
    let lines = user.whois("webby").expect("WHOIS");
    assert!(
        !lines.iter().any(|l| is_numeric(l.as_bytes(), "350")),
        "{lines:#?}"
    );
}

#[test]
fn whois_shows_the_proxy_address_of_a_proxied_user() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"proxyranges="127.0.0.0/8""#));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    let opts = WsOpts::default().header("X-Real-IP", "198.51.100.7");
    let mut web = WsClient::connect(server.ws_port, &opts)
        .unwrap_or_else(|e| panic!("{}", describe_ws_error(&e)));
    web.register("proxied").expect("registration");
    let lines = oper.whois("proxied").expect("WHOIS");
    assert!(
        lines.iter().any(|l| l.ends_with(&format!(
            "proxied 127.0.0.1 127.0.0.1 :is connected from the {ORIGIN} WebSocket origin"
        ))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("198.51.100.7")),
        "{lines:#?}"
    );
}

#[test]
fn stats_w_counts_handshakes_refusals_and_closes() {
    let server = Server::start(Conf::new(Module::Ours));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    assert_eq!(
        oper.stats_w().expect("STATS W"),
        vec!["WebSocket open connections: 0"]
    );

    // One refused for its Origin, one for a missing key.
    let forbidden = upgrade_request(&[]);
    let forbidden = String::from_utf8(forbidden)
        .unwrap()
        .replace(ORIGIN, "https://evil.example");
    assert_eq!(
        http_exchange(server.ws_port, forbidden.as_bytes())
            .expect("the response")
            .status,
        403
    );
    // One accepted with text.ircv3.net that stays, one without subprotocol that breaks
    // the protocol, one that closes normally.
    let mut stays = WsClient::connect(
        server.ws_port,
        &WsOpts::default().protocols("text.ircv3.net"),
    )
    .unwrap_or_else(|e| panic!("{}", describe_ws_error(&e)));
    stays.register("stays").expect("registration");
    let (mut breaks, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    breaks
        .send(&encode_frame(true, OP_TEXT, b"NICK x", None))
        .expect("send");
    breaks.frames_until_eof().expect("frames until EOF");
    let (mut leaves, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    leaves
        .send_frame(true, OP_CLOSE, &[0x03, 0xe8])
        .expect("send");
    leaves.frames_until_eof().expect("frames until EOF");

    let lines = oper.stats_w().expect("STATS W");
    let expected = [
        "WebSocket accepted none (defaultmode): 2",
        "WebSocket accepted text.ircv3.net: 1",
        "WebSocket refused 403 (HTTP request from a non-whitelisted origin): 1",
        "WebSocket closed by server with 1002: 1",
        "WebSocket closed by client with 1000: 1",
        "WebSocket open connections: 1",
    ];
    assert_eq!(lines, expected, "STATS W after a mixed run");
    println!("STATS W after a mixed run:\n{}", lines.join("\n"));
}

#[test]
fn permissive_origin_is_loaded_with_a_warning() {
    let server = Server::start(Conf::new(Module::Ours).origins(&["*"]));
    let line = server.wait_log("permissive origin warning", |l| {
        l.contains("WARNING") && l.contains("\"*\"")
    });
    assert!(line.contains("every website"), "{line}");
    // And it does admit any page.
    let opts = WsOpts::default().origin(Some("https://anything.invalid"));
    WsClient::connect(server.ws_port, &opts)
        .unwrap_or_else(|e| panic!("{}", describe_ws_error(&e)))
        .register("anyone")
        .expect("registration");
}

/// BAD_INPUT row 41: empty messages are not free. InspIRCd 3.15 charges each empty
/// line it is handed, and the module hands it one per empty message, so the server's
/// own flood control ends the flood (the same with the stock module).
fn flood_of_empty_messages_meets_the_servers_flood_control(module: Module) {
    let server = Server::start(Conf::new(module).connect_attrs(r#"threshold="5""#));
    let mut watcher = server.irc("watcher").expect("watcher");
    watcher.join("#flood").expect("JOIN");
    let mut conn = server.raw_user_in(&mut watcher, "#flood", "flooder");
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.extend(encode_frame(true, OP_TEXT, b"", Some([1, 2, 3, 4])));
    }
    conn.send(&flood).expect("send");
    watcher
        .expect_str("the flooder quits for Excess Flood", |l| {
            l.contains("QUIT") && l.contains("Excess Flood")
        })
        .expect("the flooder quits for Excess Flood");
}

both_modules!(flood_of_empty_messages_meets_the_servers_flood_control);

/// A client that sends QUIT and its close frame in one write (irc-framework does) keeps
/// its quit message: the lines before the close frame run before the connection ends.
/// The stock module drops the socket first, so others see "Connection closed".
#[test]
fn quit_and_close_frame_in_one_write_keep_the_quit_message() {
    let server = Server::start(Conf::new(Module::Ours));
    let mut watcher = server.irc("watcher").expect("watcher");
    watcher.join("#bye").expect("JOIN");
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("leaver").expect("registration");
    conn.send_text("JOIN #bye").expect("send");
    watcher
        .expect_str("leaver joins", |l| {
            l.contains("JOIN") && l.contains("leaver")
        })
        .expect("leaver joins");
    let mut bytes = encode_frame(true, OP_TEXT, b"QUIT :see you", Some([9, 8, 7, 6]));
    bytes.extend(encode_frame(
        true,
        OP_CLOSE,
        &[0x03, 0xe8],
        Some([9, 8, 7, 6]),
    ));
    conn.send(&bytes).expect("send");
    watcher
        .expect_str("the quit message", |l| {
            l.contains("QUIT") && l.contains("see you")
        })
        .expect("the quit message");
    let frames = conn.frames_until_eof().expect("frames until EOF");
    let close = frames
        .iter()
        .find(|f| f.opcode == OP_CLOSE)
        .unwrap_or_else(|| panic!("no close frame: {frames:?}"));
    assert_eq!(close.close_code(), Some(1000));
}

/// WHOIS 350 comes from the synced extension items (InspIRCd 4's names
/// `websocket-origin`, `websocket-realhost`, `websocket-realip`), so an oper on either
/// of two linked servers sees it for a proxied WebSocket user of one of them. The stock
/// InspIRCd 3 module shows no 350 at all; stock 4's does, as ours.
fn whois_across_linked_servers(m: Module) {
    let conf = || Conf::new(m).websocket(r#"proxyranges="127.0.0.1""#);
    let (a, b) = Server::start_linked(conf(), conf());
    let mut opers = [
        a.irc("opera").expect("opera"),
        b.irc("operb").expect("operb"),
    ];
    for oper in &mut opers {
        oper.oper().expect("OPER");
        oper.join("#net").expect("JOIN");
    }
    let opts = WsOpts::default().header("X-Real-IP", "198.51.100.8");
    let mut web =
        WsClient::connect(a.ws_port, &opts).unwrap_or_else(|e| panic!("{}", describe_ws_error(&e)));
    web.register("farweb").expect("registration");
    web.join("#net").expect("JOIN");
    for (oper, server) in opers.iter_mut().zip(["a.test", "b.test"]) {
        // Seeing the JOIN means this server knows the user.
        oper.expect_str(&format!("farweb's JOIN on {server}"), |l| {
            l.starts_with(":farweb!") && l.contains(" JOIN ")
        })
        .expect("the awaited line or frame");
        let lines = oper.whois("farweb").expect("WHOIS");
        let gateway: Vec<&String> = lines
            .iter()
            .filter(|l| is_numeric(l.as_bytes(), "350"))
            .collect();
        match (m, dialect()) {
            (Module::Stock, Dialect::V3) => {
                assert!(gateway.is_empty(), "WHOIS on {server}: {lines:#?}")
            }
            _ => assert_eq!(
                gateway,
                [&format!(
                    ":{server} 350 {} farweb 127.0.0.1 127.0.0.1 :is connected from the {ORIGIN} WebSocket origin",
                    if server == "a.test" { "opera" } else { "operb" }
                )],
                "WHOIS on {server}: {lines:#?}"
            ),
        }
    }
}
both_modules!(whois_across_linked_servers);
