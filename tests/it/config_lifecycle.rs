//! Configuration over the server's life: startup refusals, REHASH (good and bad),
//! UNLOADMODULE and LOADMODULE with users connected.

use crate::common::*;

const NEW_ORIGIN: &str = "https://new.example";

fn origin_status(server: &Server, origin: &str) -> u16 {
    let r =
        http_exchange(server.ws_port, &upgrade_request_from(Some(origin))).expect("the response");
    r.status
}

/// REHASH by `oper`, once the server has rehashed; the last lines it was sent.
pub(crate) fn rehash(oper: &mut Client) -> Vec<String> {
    oper.send_line("REHASH").expect("send");
    oper.expect_line("382 (rehashing)", |l| is_numeric(l, "382"))
        .expect("382 (rehashing)");
    oper.expect_str("rehash finished notice", |l| {
        l.contains("NOTICE") && l.contains("rehashed server")
    })
    .expect("rehash finished notice");
    // Module errors are sent right after the notice, in the same server loop pass; a
    // round trip collects them.
    oper.sync("after-rehash")
        .expect("a round trip after REHASH");
    let seen = oper.seen();
    seen[seen.len().saturating_sub(10)..].to_vec()
}

// ---------------------------------------------------------------------------------------
// REHASH
// ---------------------------------------------------------------------------------------

fn rehash_adds_origin(m: Module) {
    let mut server = Server::start(Conf::new(m));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    assert_eq!(origin_status(&server, NEW_ORIGIN), 403);
    server.rewrite_config(Conf::new(m).origins(&[ORIGIN, NEW_ORIGIN]));
    let lines = rehash(&mut oper);
    assert!(
        !lines.iter().any(|l| l.contains("m_websocket")),
        "the websocket module reported a problem: {lines:?}"
    );
    assert_eq!(origin_status(&server, NEW_ORIGIN), 101);
    assert_eq!(origin_status(&server, ORIGIN), 101);
    let c = WsClient::connect(server.ws_port, &WsOpts::default().origin(Some(NEW_ORIGIN)));
    assert!(c.is_ok(), "{}", describe_ws_error(&c.err().unwrap()));
}
both_modules!(rehash_adds_origin);

/// REHASH can also remove an origin.
fn rehash_removes_origin(m: Module) {
    let mut server = Server::start(Conf::new(m).origins(&[ORIGIN, NEW_ORIGIN]));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    assert_eq!(origin_status(&server, NEW_ORIGIN), 101);
    server.rewrite_config(Conf::new(m));
    rehash(&mut oper);
    assert_eq!(origin_status(&server, NEW_ORIGIN), 403);
    assert_eq!(origin_status(&server, ORIGIN), 101);
}
both_modules!(rehash_removes_origin);

/// A bad rehash keeps the old configuration and reports the error to the oper.
fn bad_rehash_keeps_old_config(m: Module) {
    let mut server = Server::start(Conf::new(m));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    server.rewrite_config(
        Conf::new(m)
            .origins(&[NEW_ORIGIN])
            .websocket(r#"defaultmode="bogus""#),
    );
    let lines = rehash(&mut oper);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("NOTICE") && l.contains("defaultmode") && l.contains("bogus")),
        "the oper was not told about the bad defaultmode: {lines:?}"
    );
    // The old origin list is still in force, the new one is not.
    assert_eq!(origin_status(&server, ORIGIN), 101);
    assert_eq!(origin_status(&server, NEW_ORIGIN), 403);
    // And the old defaultmode (text).
    let (mut c, r) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    assert_eq!(r.header_count("Sec-WebSocket-Protocol"), 0);
    c.send_text("PING :mode").expect("send");
    let f = c
        .expect_frame("a reply", |f| f.opcode == OP_TEXT || f.opcode == OP_BINARY)
        .expect("a reply");
    assert_eq!(f.opcode, OP_TEXT);
    if m == Module::Ours {
        server.wait_log("the config error in the log", |l| {
            l.contains("defaultmode") && l.contains("bogus")
        });
    }
    server.assert_alive();
}
both_modules!(bad_rehash_keeps_old_config);

// ---------------------------------------------------------------------------------------
// Startup refused
// ---------------------------------------------------------------------------------------

/// Asserts that the refusal names every word in `words` (case-insensitive) and, for
/// ours, the tag's location in the config file.
fn refused(m: Module, conf: Conf, words: &[&str]) -> String {
    let out = Server::start_expect_failure(conf);
    let low = out.to_ascii_lowercase();
    assert!(
        low.contains("m_websocket"),
        "refusal does not name the module:\n{out}"
    );
    for w in words {
        assert!(
            low.contains(&w.to_ascii_lowercase()),
            "refusal does not mention {w:?}:\n{out}"
        );
    }
    if m == Module::Ours {
        assert!(
            out.contains("inspircd.conf:"),
            "refusal does not give the tag's location (file:line):\n{out}"
        );
    }
    out
}

/// No `<wsorigin>` at all. Stock refuses too but names no tag ("not configured any
/// allowed origins").
#[test]
fn startup_refused_no_wsorigin_ours() {
    let out = Server::start_expect_failure(Conf::new(Module::Ours).origins(&[]));
    assert!(
        out.contains("wsorigin"),
        "refusal does not name <wsorigin>:\n{out}"
    );
}

#[test]
fn startup_refused_no_wsorigin_stock() {
    let out = Server::start_expect_failure(Conf::new(Module::Stock).origins(&[]));
    assert!(out.contains("m_websocket"), "{out}");
}

fn startup_refused_empty_allow(m: Module) {
    refused(m, Conf::new(m).origins(&[""]), &["wsorigin", "allow"]);
}
both_modules!(startup_refused_empty_allow);

/// `<wsorigin>` without the allow key at all.
fn startup_refused_missing_allow(m: Module) {
    refused(
        m,
        Conf::new(m).origins(&[]).extra("<wsorigin>"),
        &["wsorigin", "allow"],
    );
}
both_modules!(startup_refused_missing_allow);

fn startup_refused_bad_defaultmode(m: Module) {
    refused(
        m,
        Conf::new(m).websocket(r#"defaultmode="bogus""#),
        &["websocket", "defaultmode", "bogus"],
    );
}
both_modules!(startup_refused_bad_defaultmode);

/// InspIRCd 4 takes a `const char*` exception or log text as a {fmt} format string,
/// and a `{` in one aborted the server: a value with braces must come back as written,
/// at startup and on a rehash (the server keeps running).
fn braces_in_a_bad_value_are_reported_as_written(m: Module) {
    const BRACES: &str = "{}{0}{:>9999999}";
    refused(
        m,
        Conf::new(m).websocket(&format!(r#"defaultmode="{BRACES}""#)),
        &["defaultmode", BRACES],
    );

    let mut server = Server::start(Conf::new(m));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    server.rewrite_config(Conf::new(m).websocket(&format!(r#"defaultmode="{BRACES}""#)));
    let lines = rehash(&mut oper);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("NOTICE") && l.contains(BRACES)),
        "the oper was not told the value as written: {lines:?}"
    );
    server.assert_alive();
    assert_eq!(origin_status(&server, ORIGIN), 101);
}
both_modules!(braces_in_a_bad_value_are_reported_as_written);

/// Stock accepts any string as a range (it falls back to glob matching).
#[test]
fn startup_refused_bad_proxyranges_ours() {
    refused(
        Module::Ours,
        Conf::new(Module::Ours).websocket(r#"proxyranges="127.0.0.0/8 10.0.0.0/99""#),
        &["websocket", "proxyranges", "10.0.0.0/99"],
    );
}

/// Stock logs a warning for a bad bool and uses the default.
#[test]
fn startup_refused_bad_bool_ours() {
    refused(
        Module::Ours,
        Conf::new(Module::Ours).websocket(r#"sendastext="maybe""#),
        &["websocket", "sendastext", "maybe"],
    );
}

// ---------------------------------------------------------------------------------------
// UNLOADMODULE / LOADMODULE
// ---------------------------------------------------------------------------------------

/// UNLOADMODULE disconnects WebSocket users ("WebSocket module unloading", seen by a
/// plain user in a common channel), the server and its plain users carry on, and
/// LOADMODULE brings WebSocket back. Ours also sends the WebSocket user a close frame
/// before closing TCP; stock just closes TCP.
fn unload_and_load(m: Module) {
    let mut server = Server::start(Conf::new(m));
    let mut oper = Client::irc_start(server.irc_port, "oper").expect("a plain user");
    let mut friend = Client::irc_start(server.irc_port, "friend").expect("a plain user");
    let (mut web, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    web.send_text("NICK web").expect("send");
    web.send_text("USER w 0 * :w").expect("send");
    oper.wait_welcome().expect("001");
    friend.wait_welcome().expect("001");
    web.expect_frame("001", |f| is_numeric(&f.payload, "001"))
        .expect("001");
    oper.oper().expect("OPER");
    friend.join("#room").expect("JOIN");
    oper.join("#room").expect("JOIN");
    web.send_text("JOIN #room").expect("send");
    friend
        .expect_line("web's JOIN", |l| show(l).starts_with(":web!"))
        .expect("web's JOIN");

    oper.send_line("UNLOADMODULE m_websocket.so").expect("send");
    oper.expect_line("973 (module unloaded)", |l| is_numeric(l, "973"))
        .expect("973 (module unloaded)");
    let quit = friend
        .expect_str("web's QUIT", |l| {
            l.starts_with(":web!") && l.contains(" QUIT ")
        })
        .expect("web's QUIT");
    assert!(
        quit.ends_with("QUIT :WebSocket module unloading"),
        "quit line: {quit}"
    );
    let frames = web.frames_until_eof().expect("frames until EOF");
    if m == Module::Ours {
        let last = frames
            .last()
            .unwrap_or_else(|| panic!("no close frame: {frames:?}"));
        assert_eq!(last.opcode, OP_CLOSE, "{frames:?}");
        let code = last.close_code();
        assert!(
            matches!(code, Some(1001) | Some(1000)),
            "close code {code:?}"
        );
    }

    // The server and its plain users carry on.
    server.assert_alive();
    friend.send_line("PRIVMSG #room :still here").expect("send");
    let l = oper
        .expect_str("friend's PRIVMSG", |l| l.contains(" PRIVMSG #room "))
        .expect("friend's PRIVMSG");
    assert_eq!(l, ":friend!u@127.0.0.1 PRIVMSG #room :still here");

    oper.send_line("LOADMODULE websocket").expect("send");
    oper.expect_line("975 (module loaded)", |l| is_numeric(l, "975"))
        .expect("975 (module loaded)");
    let mut again = WsClient::connect(server.ws_port, &WsOpts::default())
        .unwrap_or_else(|e| panic!("after LOADMODULE: {}", describe_ws_error(&e)));
    again.register("again").expect("registration");
    again.join("#room").expect("JOIN");
    again.send_line("PRIVMSG #room :back").expect("send");
    let l = friend
        .expect_str("again's PRIVMSG", |l| l.contains(" PRIVMSG #room "))
        .expect("again's PRIVMSG");
    assert_eq!(l, ":again!ws@127.0.0.1 PRIVMSG #room :back");
    server.assert_alive();
}
both_modules!(unload_and_load);
