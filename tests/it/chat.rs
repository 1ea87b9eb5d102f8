//! IRC over WebSocket end to end: a WebSocket user and a plain TCP user in one channel,
//! exact bytes both ways.

use crate::common::*;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

const CHAN: &str = "#chat";

/// A plain user "plain" and a WebSocket user "web" (with `opts`), both in #chat.
fn setup(server: &Server, opts: &WsOpts) -> (Client, WsClient) {
    let (mut irc, mut ws) = server.pair_with("plain", "web", opts).expect("the pair");
    irc.send_line(&format!("JOIN {CHAN}")).expect("send");
    ws.send_line(&format!("JOIN {CHAN}")).expect("send");
    irc.expect_line("366 for #chat", |l| is_numeric(l, "366"))
        .expect("366 for #chat");
    ws.expect_line("366 for #chat", |l| is_numeric(l, "366"))
        .expect("366 for #chat");
    // Both JOINs are processed; make sure each has seen the other's.
    irc.expect_line("web's JOIN", |l| {
        show(l).starts_with(":web!ws@127.0.0.1 JOIN")
    })
    .expect("web's JOIN");
    (irc, ws)
}

fn utf8_text_both_ways(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());

    let text = "héllo wörld ✓ 日本語 🎉";
    ws.send_line(&format!("PRIVMSG {CHAN} :{text}"))
        .expect("send");
    let got = irc
        .expect_line("PRIVMSG from web", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from web");
    assert_eq!(
        got,
        format!(":web!ws@127.0.0.1 PRIVMSG {CHAN} :{text}").into_bytes()
    );

    let text2 = "ünïcödé ☃ back";
    irc.send_line(&format!("PRIVMSG {CHAN} :{text2}"))
        .expect("send");
    let got = ws
        .expect_msg("PRIVMSG from plain", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from plain");
    assert_text(&got, &format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :{text2}"));

    // Private message too.
    ws.send_line("PRIVMSG plain :direct ✉").expect("send");
    let got = irc
        .expect_line("private PRIVMSG", |l| show(l).contains(" PRIVMSG plain "))
        .expect("private PRIVMSG");
    assert_eq!(got, ":web!ws@127.0.0.1 PRIVMSG plain :direct ✉".as_bytes());
}
both_modules!(utf8_text_both_ways);

/// Binary mode: raw non-UTF-8 bytes pass byte-exact in both directions.
fn binary_mode_non_utf8_byte_exact(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default().protocols("binary.inspircd.org"));

    let raw: &[u8] = b"caf\xe9 \xff\xfe end \xc3\x28";
    let mut line = format!("PRIVMSG {CHAN} :").into_bytes();
    line.extend_from_slice(raw);
    line.extend_from_slice(b"\r\n");
    irc.send(&line).expect("send");
    let got = ws
        .expect_msg("PRIVMSG from plain", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from plain");
    let mut want = format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :").into_bytes();
    want.extend_from_slice(raw);
    assert_binary(&got, &want);

    let mut out = format!("PRIVMSG {CHAN} :").into_bytes();
    out.extend_from_slice(b"bin \x80\x81 \xf5!");
    ws.send_binary(&out).expect("send");
    let got = irc
        .expect_line("PRIVMSG from web", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from web");
    let mut want = format!(":web!ws@127.0.0.1 PRIVMSG {CHAN} :").into_bytes();
    want.extend_from_slice(b"bin \x80\x81 \xf5!");
    assert_eq!(got, want, "{:?}", show(&got));
}
both_modules!(binary_mode_non_utf8_byte_exact);

/// BAD_INPUT 42: text mode: invalid UTF-8 from a plain client arrives as U+FFFD.
fn text_mode_replaces_invalid_utf8(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());
    let mut line = format!("PRIVMSG {CHAN} :").into_bytes();
    line.extend_from_slice(b"caf\xe9 x \xff end\r\n");
    irc.send(&line).expect("send");
    let got = ws
        .expect_msg("PRIVMSG from plain", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from plain");
    assert_text(
        &got,
        &format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :caf\u{FFFD} x \u{FFFD} end"),
    );
}
both_modules!(text_mode_replaces_invalid_utf8);

/// BAD_INPUT 42: non-UTF-8 from a binary WebSocket client reaches a text-mode WebSocket
/// client as U+FFFD, never as invalid UTF-8 (tungstenite would fail on it).
fn binary_client_to_text_client(m: Module) {
    let server = Server::start(Conf::new(m));
    let mut bin = WsClient::connect(
        server.ws_port,
        &WsOpts::default().protocols("binary.inspircd.org"),
    )
    .unwrap();
    let mut txt = WsClient::connect(
        server.ws_port,
        &WsOpts::default().protocols("text.inspircd.org"),
    )
    .unwrap();
    bin.start_register("binuser").expect("NICK/USER");
    txt.start_register("txtuser").expect("NICK/USER");
    bin.wait_welcome().expect("001");
    txt.wait_welcome().expect("001");
    bin.join(CHAN).expect("JOIN");
    txt.join(CHAN).expect("JOIN");
    bin.expect_line("txtuser JOIN", |l| show(l).starts_with(":txtuser!"))
        .expect("txtuser JOIN");
    let mut out = format!("PRIVMSG {CHAN} :").into_bytes();
    out.extend_from_slice(b"a\xffb \xe9 c");
    bin.send_binary(&out).expect("send");
    let got = txt
        .expect_msg("PRIVMSG from binuser", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from binuser");
    assert_text(
        &got,
        &format!(":binuser!ws@127.0.0.1 PRIVMSG {CHAN} :a\u{FFFD}b \u{FFFD} c"),
    );
}
both_modules!(binary_client_to_text_client);

fn frame(data: &[u8], opcode: OpCode, fin: bool) -> Message {
    Message::Frame(Frame::message(data.to_vec(), opcode, fin))
}

/// A message fragmented into three frames (tungstenite's frame API) is one IRC line.
fn fragmented_message_is_one_line(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());
    ws.ws
        .write(frame(b"PRIVMSG #chat", OpCode::Data(Data::Text), false))
        .unwrap();
    ws.ws
        .write(frame(
            " :frag".as_bytes(),
            OpCode::Data(Data::Continue),
            false,
        ))
        .unwrap();
    ws.ws
        .write(frame(
            "mented ✓".as_bytes(),
            OpCode::Data(Data::Continue),
            true,
        ))
        .unwrap();
    ws.flush().expect("flush");
    let got = irc
        .expect_line("PRIVMSG from web", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from web");
    assert_eq!(show(&got), ":web!ws@127.0.0.1 PRIVMSG #chat :fragmented ✓");
}
both_modules!(fragmented_message_is_one_line);

/// BAD_INPUT 26: a ping between fragments is answered and the message arrives intact.
fn ping_between_fragments(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());
    ws.ws
        .write(frame(b"PRIVMSG #chat :be", OpCode::Data(Data::Text), false))
        .unwrap();
    ws.ws.write(Message::Ping(b"mid".to_vec())).unwrap();
    ws.ws
        .write(frame(b"fore and after", OpCode::Data(Data::Continue), true))
        .unwrap();
    ws.flush().expect("flush");
    let got = irc
        .expect_line("PRIVMSG from web", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from web");
    assert_eq!(
        show(&got),
        ":web!ws@127.0.0.1 PRIVMSG #chat :before and after"
    );
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match ws.recv_until(deadline) {
            Ok(Message::Pong(p)) => {
                assert_eq!(p, b"mid");
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("no pong: {e}; seen:\n{}", ws.recent()),
        }
    }
}
both_modules!(ping_between_fragments);

/// 3000 messages written back to back arrive complete and in order.
fn burst_of_3000_in_order(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());
    for i in 0..3000 {
        ws.queue_line(&format!("PRIVMSG {CHAN} :burst message number {i}"))
            .expect("queue");
    }
    ws.flush().expect("flush");
    for i in 0..3000 {
        let got = irc
            .expect_line(&format!("burst message {i}"), |l| {
                show(l).contains(" PRIVMSG ")
            })
            .expect("the awaited line or frame");
        assert_eq!(
            show(&got),
            format!(":web!ws@127.0.0.1 PRIVMSG {CHAN} :burst message number {i}")
        );
    }
    ws.sync("after-burst").expect("round trip");
}
both_modules!(burst_of_3000_in_order);

/// The other way: 300 lines that reach the WebSocket user in one write round (more
/// than the 32 queue elements the bridge reads per call) arrive complete, in order,
/// one message each.
fn burst_to_the_web_user_in_order(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());
    let mut batch = Vec::new();
    for i in 0..300 {
        batch.extend_from_slice(format!("PRIVMSG {CHAN} :to the web {i}\r\n").as_bytes());
    }
    irc.send(&batch).expect("send");
    for i in 0..300 {
        let got = ws
            .expect_line(&format!("to the web {i}"), |l| {
                show(l).contains(" PRIVMSG ")
            })
            .expect("the awaited line");
        let got = show(&got);
        assert!(
            got.starts_with(":plain!")
                && got.ends_with(&format!(" PRIVMSG {CHAN} :to the web {i}")),
            "{got}"
        );
    }
}
both_modules!(burst_to_the_web_user_in_order);

/// BAD_INPUT 43: every server line is exactly one WebSocket message without CR/LF
/// (checked on each message by `WsClient::expect_msg`), in text and binary mode, including
/// multi-line replies and a line near the 512-byte limit.
fn one_line_one_message(m: Module) {
    let server = Server::start(Conf::new(m));
    for proto in ["text.inspircd.org", "binary.inspircd.org"] {
        let mut ws =
            WsClient::connect(server.ws_port, &WsOpts::default().protocols(proto)).unwrap();
        // Before registration: several replies to one message.
        ws.send_line("PING :a").expect("send");
        ws.send_line("PRIVMSG x :y").expect("send");
        let mut n = 0;
        ws.expect_line("two 451 replies", |l| {
            if is_numeric(l, "451") {
                n += 1;
            }
            n == 2
        })
        .expect("two 451 replies");
        ws.register(&format!("one{}", &proto[..3]))
            .expect("registration");
        // The registration burst ends with the missing-MOTD numeric; each line checked.
        ws.expect_line("422 (no MOTD)", |l| is_numeric(l, "422"))
            .expect("422 (no MOTD)");
        let long = "x".repeat(400);
        ws.send_line(&format!("PRIVMSG {} :{long}", ws.nick.clone()))
            .expect("send");
        let got = ws
            .expect_msg("own long PRIVMSG", |l| show(l).contains(" PRIVMSG "))
            .expect("own long PRIVMSG");
        let data = got.into_data();
        assert!(show(&data).ends_with(&long));
    }
}
both_modules!(one_line_one_message);

/// BAD_INPUT 40: CR LF inside one message never splits it into two commands: the
/// bytes are removed and the message stays one line (stock behaviour).
fn crlf_inside_message_is_one_command(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut irc, mut ws) = setup(&server, &WsOpts::default());
    ws.send_line("PRIVMSG #chat :x\r\nQUIT :oops")
        .expect("send");
    let got = irc
        .expect_line("PRIVMSG from web", |l| {
            let s = show(l);
            s.contains(" PRIVMSG ") || s.contains(" QUIT ")
        })
        .expect("PRIVMSG from web");
    assert_eq!(show(&got), ":web!ws@127.0.0.1 PRIVMSG #chat :xQUIT :oops");
    ws.sync("still-here").expect("round trip");
    irc.send_line("PRIVMSG #chat :after").expect("send");
    ws.expect_line("PRIVMSG after", |l| show(l).ends_with(":after"))
        .expect("PRIVMSG after");
}
both_modules!(crlf_inside_message_is_one_command);

/// BAD_INPUT 44: a WebSocket client that stops reading is disconnected by InspIRCd's
/// sendq limit; the module does not buffer around it.
fn stalled_reader_hits_sendq(m: Module) {
    let server = Server::start(Conf::new(m).connect_attrs(r#"hardsendq="262144""#));
    let (mut irc, ws) = setup(&server, &WsOpts::default());
    set_rcvbuf(ws.ws.get_ref().tcp(), 16 * 1024).expect("SO_RCVBUF");
    // The WebSocket user stops reading. Flood the channel until its quit shows up.
    let payload = "y".repeat(400);
    let mut quit = None;
    // Batches stay below InspIRCd's read buffer (<performance netbuffersize>, 64 KiB
    // here): when more is pending, InspIRCd 3.15 reads one buffer per second.
    let mut rounds = 0;
    'outer: for round in 0..400 {
        rounds = round;
        let mut batch = Vec::new();
        for i in 0..120 {
            batch
                .extend_from_slice(format!("PRIVMSG {CHAN} :{round} {i} {payload}\r\n").as_bytes());
        }
        irc.send(&batch).expect("send");
        irc.send_line(&format!("PING :round{round}")).expect("send");
        loop {
            let deadline = std::time::Instant::now() + TIMEOUT;
            match irc.line_until(deadline) {
                Ok(l) => {
                    let s = show(&l);
                    if s.starts_with(":web!") && s.contains(" QUIT ") {
                        quit = Some(s);
                        break 'outer;
                    }
                    if s.ends_with(&format!(":round{round}")) {
                        break;
                    }
                }
                other => panic!("plain user lost: {other:?}"),
            }
        }
    }
    let quit = quit.unwrap_or_else(|| {
        panic!("the stalled WebSocket user was never disconnected ({rounds} rounds of ~52 KB)")
    });
    assert!(quit.contains("SendQ exceeded"), "{quit}");
    drop(ws);
}
both_modules!(stalled_reader_hits_sendq);
