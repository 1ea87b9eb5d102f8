//! Control frames, the closing handshake, and frame-level protocol errors, with raw
//! bytes on the socket.

use crate::common::*;
use std::io::Write;

fn upgraded(m: Module) -> (Server, Client) {
    let server = Server::start(Conf::new(m));
    let (c, _r) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    (server, c)
}

/// Reads frames up to a close frame, asserts its code is one of `codes`, and that the
/// server then closes TCP without sending anything else. Returns the close frame.
fn expect_close(c: &mut Client, codes: &[u16]) -> RawFrame {
    let f = c
        .expect_frame(&format!("a close frame with code {codes:?}"), |f| {
            f.opcode == OP_CLOSE
        })
        .expect("the awaited line or frame");
    let code = f.close_code();
    assert!(
        code.map(|c| codes.contains(&c)).unwrap_or(false),
        "close code {code:?} (reason {:?}), expected one of {codes:?}",
        show(f.payload.get(2..).unwrap_or(&[]))
    );
    assert!(f.fin && f.rsv == 0, "{f:?}");
    if f.payload.len() > 2 {
        std::str::from_utf8(&f.payload[2..]).expect("close reason must be UTF-8");
    }
    let rest = c.frames_until_eof().expect("frames until EOF");
    assert!(rest.is_empty(), "frames after the close frame: {rest:?}");
    f
}

/// The server is still alive and serves a new WebSocket client.
fn still_serving(server: &mut Server) {
    server.assert_alive();
    let (mut c, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    c.send_text("PING :alive").expect("send");
    c.expect_frame("a reply from a fresh connection", |f| f.opcode == OP_TEXT)
        .expect("a reply from a fresh connection");
}

// ---------------------------------------------------------------------------------------
// Ping / pong
// ---------------------------------------------------------------------------------------

fn ping_gets_pong_with_same_payload(m: Module) {
    let (_server, mut c) = upgraded(m);
    c.send_frame(true, OP_PING, b"ping-payload \x00\xff")
        .expect("send");
    let f = c.frame().expect("EOF instead of pong");
    assert_eq!(
        f,
        RawFrame {
            fin: true,
            rsv: 0,
            opcode: OP_PONG,
            masked: false,
            payload: b"ping-payload \x00\xff".to_vec()
        }
    );
}
both_modules!(ping_gets_pong_with_same_payload);

/// The same through tungstenite.
fn ping_gets_pong_tungstenite(m: Module) {
    let server = Server::start(Conf::new(m));
    let mut c = WsClient::connect(server.ws_port, &WsOpts::default()).unwrap();
    c.ws.send(tungstenite::Message::Ping(b"tping".to_vec()))
        .unwrap();
    match c.recv().expect("a pong") {
        tungstenite::Message::Pong(p) => assert_eq!(p, b"tping"),
        other => panic!("expected pong, got {other:?}"),
    }
}
both_modules!(ping_gets_pong_tungstenite);

/// BAD_INPUT 37: ten pings back to back -> ten pongs in order. Stock kills the client
/// at the second ping ("WebSocket: Ping/pong flood", see `second_ping_kills_stock`).
#[test]
fn ten_pings_ten_pongs_ours() {
    let (mut server, mut c) = upgraded(Module::Ours);
    let mut bytes = Vec::new();
    for i in 0..10 {
        bytes.extend(encode_frame(
            true,
            OP_PING,
            format!("p{i}").as_bytes(),
            Some(MASK),
        ));
    }
    c.send(&bytes).expect("send");
    for i in 0..10 {
        let f = c.frame().expect("EOF instead of pong");
        assert_eq!((f.opcode, show(&f.payload)), (OP_PONG, format!("p{i}")));
    }
    c.send_text("PING :after-pings").expect("send");
    c.expect_frame("reply after the pings", |f| f.opcode == OP_TEXT)
        .expect("reply after the pings");
    server.assert_alive();
}

/// Documents the stock behaviour `ten_pings_ten_pongs_ours` differs from: a pong, then
/// close 1008 "WebSocket: Ping/pong flood".
#[test]
fn second_ping_kills_stock() {
    let (server, mut c) = upgraded(Module::Stock);
    c.send_frame(true, OP_PING, b"1").expect("send");
    c.send_frame(true, OP_PING, b"2").expect("send");
    let frames = c.frames_until_eof().expect("frames until EOF");
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].opcode, OP_PONG);
    assert_eq!(frames[1].close_code(), Some(1008));
    server.wait_log("Ping/pong flood quit", |l| {
        l.contains("QuitUser:") && l.contains("Ping/pong flood")
    });
}

/// BAD_INPUT 37: a sustained ping flood, far beyond any keepalive -> close 1008
/// (stock already at the second ping).
fn ping_flood_closes_1008(m: Module) {
    let (mut server, mut c) = upgraded(m);
    let mut bytes = Vec::new();
    for i in 0..2000 {
        bytes.extend(encode_frame(
            true,
            OP_PING,
            format!("{i}").as_bytes(),
            Some(MASK),
        ));
    }
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let f = c
        .expect_frame("close after ping flood", |f| f.opcode == OP_CLOSE)
        .expect("close after ping flood");
    assert_eq!(f.close_code(), Some(1008), "{f:?}");
    let _ = c.frames_until_eof().expect("frames until EOF");
    writer.join().unwrap();
    server.assert_alive();
}
both_modules!(ping_flood_closes_1008);

/// BAD_INPUT 38: an unsolicited pong is ignored.
fn unsolicited_pong_ignored(m: Module) {
    let (_server, mut c) = upgraded(m);
    c.send_frame(true, OP_PONG, b"unsolicited").expect("send");
    c.send_text("PING :x").expect("send");
    let f = c.frame().expect("EOF after unsolicited pong");
    assert_eq!(f.opcode, OP_TEXT, "{f:?}");
    assert!(show(&f.payload).starts_with(":test.example "), "{f:?}");
}
both_modules!(unsolicited_pong_ignored);

// ---------------------------------------------------------------------------------------
// Closing handshake
// ---------------------------------------------------------------------------------------

/// BAD_INPUT 34: close 1000 with a reason -> echoed close, then the server closes TCP.
/// Stock just drops TCP (browsers report 1006), see `client_close_drops_tcp_stock`.
#[test]
fn client_close_is_echoed_ours() {
    let (mut server, mut c) = upgraded(Module::Ours);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    c.send_frame(true, OP_CLOSE, &payload).expect("send");
    let f = expect_close(&mut c, &[1000]);
    assert!(!f.masked);
    server.assert_alive();
}

/// The same with tungstenite: the client's close handshake completes normally
/// (tungstenite reports ConnectionClosed only after the server's close frame).
#[test]
fn client_close_tungstenite_ours() {
    let server = Server::start(Conf::new(Module::Ours));
    let mut c = server.ws("closer").expect("closer");
    c.ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "done".into(),
    }))
    .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut got_close = false;
    loop {
        match c.recv_until(deadline) {
            Ok(tungstenite::Message::Close(Some(cf))) => {
                assert_eq!(u16::from(cf.code), 1000);
                got_close = true;
            }
            Ok(tungstenite::Message::Close(None)) => got_close = true,
            Ok(_) => continue,
            Err(e) if e.message().contains("ConnectionClosed") => break,
            Err(e) => panic!("unexpected end of the closing handshake: {e}"),
        }
    }
    assert!(got_close, "no close frame from the server");
}

/// An empty close frame is answered with a close frame (empty or 1000).
#[test]
fn empty_close_is_echoed_ours() {
    let (_server, mut c) = upgraded(Module::Ours);
    c.send_frame(true, OP_CLOSE, b"").expect("send");
    let f = c
        .expect_frame("close echo", |f| f.opcode == OP_CLOSE)
        .expect("close echo");
    assert!(
        f.payload.is_empty() || f.close_code() == Some(1000),
        "{f:?}"
    );
    let rest = c.frames_until_eof().expect("frames until EOF");
    assert!(rest.is_empty(), "{rest:?}");
}

/// Documents the stock behaviour: no close frame, the TCP connection just ends.
#[test]
fn client_close_drops_tcp_stock() {
    let (_server, mut c) = upgraded(Module::Stock);
    c.send_frame(true, OP_CLOSE, &1000u16.to_be_bytes())
        .expect("send");
    let frames = c.frames_until_eof().expect("frames until EOF");
    assert!(frames.is_empty(), "{frames:?}");
}

/// QUIT from a WebSocket user: the ERROR line, then a close frame, then TCP close.
/// Stock sends the ERROR line and drops TCP without a close frame.
#[test]
fn quit_sends_close_frame_ours() {
    let server = Server::start(Conf::new(Module::Ours));
    let (mut c, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    c.register("quitter").expect("registration");
    c.send_text("QUIT :leaving now").expect("send");
    let frames = c.frames_until_eof().expect("frames until EOF");
    let last = frames.last().expect("no frames before EOF");
    assert_eq!(
        last.opcode, OP_CLOSE,
        "last frame before EOF is not a close frame: {frames:?}"
    );
    let code = last.close_code();
    assert!(
        matches!(code, Some(1000) | Some(1001)),
        "close code {code:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.opcode == OP_TEXT && show(&f.payload).starts_with("ERROR :")),
        "no ERROR line: {frames:?}"
    );
}

/// BAD_INPUT 36: frames after the client's close are ignored (never executed).
#[test]
fn frames_after_close_ignored_ours() {
    let server = Server::start(Conf::new(Module::Ours));
    let mut irc = Client::irc_start(server.irc_port, "watcher").expect("a plain user");
    let (mut c, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    c.send_text("NICK ghost").expect("send");
    c.send_text("USER g 0 * :g").expect("send");
    irc.wait_welcome().expect("001");
    c.expect_frame("001", |f| is_numeric(&f.payload, "001"))
        .expect("001");
    irc.join("#room").expect("JOIN");
    c.send_text("JOIN #room").expect("send");
    irc.expect_line("ghost JOIN", |l| show(l).starts_with(":ghost!"))
        .expect("ghost JOIN");
    let mut bytes = encode_frame(true, OP_CLOSE, &1000u16.to_be_bytes(), Some(MASK));
    bytes.extend(encode_frame(
        true,
        OP_TEXT,
        b"PRIVMSG #room :after close",
        Some(MASK),
    ));
    c.send(&bytes).expect("send");
    let l = irc
        .expect_line("ghost's QUIT or a PRIVMSG", |l| {
            let s = show(l);
            s.starts_with(":ghost!") && (s.contains(" QUIT ") || s.contains(" PRIVMSG "))
        })
        .expect("ghost's QUIT or a PRIVMSG");
    assert!(
        show(&l).contains(" QUIT "),
        "a frame after the close was executed: {}",
        show(&l)
    );
    expect_close(&mut c, &[1000]);
}

// ---------------------------------------------------------------------------------------
// Protocol errors: a close frame with the right code, then TCP close. Stock 3.15 does
// this too for unmasked frames, unknown opcodes (RSV bits included), long control
// frames and 64-bit lengths; the rest it accepts (or drops TCP without a close frame).
// ---------------------------------------------------------------------------------------

fn protocol_error_with(m: Module, bytes: &[u8], codes: &[u16]) {
    let (mut server, mut c) = upgraded(m);
    let _ = c.write(bytes);
    expect_close(&mut c, codes);
    still_serving(&mut server);
}

fn protocol_error(bytes: &[u8], codes: &[u16]) {
    protocol_error_with(Module::Ours, bytes, codes);
}

/// BAD_INPUT 22.
fn unmasked_frame_closes_1002(m: Module) {
    protocol_error_with(m, &encode_frame(true, OP_TEXT, b"PING :x", None), &[1002]);
}
both_modules!(unmasked_frame_closes_1002);

/// BAD_INPUT 22: unmasked control frame.
fn unmasked_ping_closes_1002(m: Module) {
    protocol_error_with(
        m,
        &encode_frame(true, OP_PING, b"unmasked-ping", None),
        &[1002],
    );
}
both_modules!(unmasked_ping_closes_1002);

/// BAD_INPUT 23.
fn rsv_bits_close_1002(m: Module) {
    for rsv in [0x40u8, 0x20, 0x10] {
        let mut f = encode_frame(true, OP_TEXT, b"PING :x", Some(MASK));
        f[0] |= rsv;
        protocol_error_with(m, &f, &[1002]);
    }
}
both_modules!(rsv_bits_close_1002);

/// BAD_INPUT 24.
fn reserved_opcodes_close_1002(m: Module) {
    for op in [3u8, 7, 0xB, 0xF] {
        protocol_error_with(m, &encode_frame(true, op, b"", Some(MASK)), &[1002]);
    }
}
both_modules!(reserved_opcodes_close_1002);

/// BAD_INPUT 25: control frame with 126 bytes.
fn long_control_frame_closes_1002(m: Module) {
    protocol_error_with(
        m,
        &encode_frame(true, OP_PING, &[b'a'; 126], Some(MASK)),
        &[1002],
    );
}
both_modules!(long_control_frame_closes_1002);

/// BAD_INPUT 46: a length not in its shortest form (5 bytes in the 16-bit form), which
/// both modules refuse (RFC 6455 5.2).
fn non_minimal_length_closes_1002(m: Module) {
    let payload = b"PING ";
    let mut frame = vec![0x81, 0x80 | 126, 0, 5];
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, k)| b ^ k));
    protocol_error_with(m, &frame, &[1002]);
}
both_modules!(non_minimal_length_closes_1002);

/// BAD_INPUT 25: fragmented control frame.
#[test]
fn fragmented_ping_closes_1002_ours() {
    protocol_error(&encode_frame(false, OP_PING, b"x", Some(MASK)), &[1002]);
}

/// BAD_INPUT 27: continuation with nothing to continue.
#[test]
fn orphan_continuation_closes_1002_ours() {
    protocol_error(
        &encode_frame(true, OP_CONT, b"PING :x", Some(MASK)),
        &[1002],
    );
}

/// BAD_INPUT 27: a new data frame while a fragmented message is open.
#[test]
fn data_frame_inside_fragmented_message_closes_1002_ours() {
    let mut b = encode_frame(false, OP_TEXT, b"PRIVMSG #a :x", Some(MASK));
    b.extend(encode_frame(true, OP_TEXT, b"PING :y", Some(MASK)));
    protocol_error(&b, &[1002]);
}

/// BAD_INPUT 31: invalid UTF-8 in a text message.
#[test]
fn invalid_utf8_text_closes_1007_ours() {
    protocol_error(
        &encode_frame(true, OP_TEXT, b"PRIVMSG #a :\xff\xfe", Some(MASK)),
        &[1007],
    );
}

/// Documents what `invalid_utf8_text_closes_1007_ours` fixes: stock does not check UTF-8
/// and runs the text message as a line (PING answered, connection open).
#[test]
fn invalid_utf8_text_taken_stock() {
    let (mut server, mut c) = upgraded(Module::Stock);
    c.register("careless").expect("registration");
    c.send_frame(true, OP_TEXT, b"PING :\xff\xfe")
        .expect("send");
    let reply = c
        .expect_frame("the PONG", |f| {
            f.opcode == OP_CLOSE || show(&f.payload).contains("PONG")
        })
        .expect("the PONG");
    assert_eq!(reply.opcode, OP_TEXT, "{reply:?}");
    server.assert_alive();
}

/// BAD_INPUT 31: invalid UTF-8 in the first fragment -> close 1007 at once, before the
/// message is finished (the rest is never sent).
#[test]
fn invalid_utf8_fails_fast_in_first_fragment_ours() {
    protocol_error(
        &encode_frame(false, OP_TEXT, b"PRIVMSG #a :ok \xc3\x28", Some(MASK)),
        &[1007],
    );
}

/// BAD_INPUT 31: a code point split across fragments is fine; a bad continuation byte
/// in the next fragment is not.
#[test]
fn utf8_split_across_fragments_ours() {
    // Valid: é = C3 A9 split across two frames; the connection stays up.
    let (_server, mut c) = upgraded(Module::Ours);
    let mut b = encode_frame(false, OP_TEXT, b"PING :caf\xc3", Some(MASK));
    b.extend(encode_frame(true, OP_CONT, b"\xa9", Some(MASK)));
    c.send(&b).expect("send");
    let f = c
        .expect_frame("reply to split UTF-8", |f| {
            f.opcode == OP_TEXT || f.opcode == OP_CLOSE
        })
        .expect("reply to split UTF-8");
    assert_eq!(f.opcode, OP_TEXT, "valid split UTF-8 was refused: {f:?}");
    // Invalid: C3 then 28.
    let mut b = encode_frame(false, OP_TEXT, b"PING :caf\xc3", Some(MASK));
    b.extend(encode_frame(false, OP_CONT, b"\x28", Some(MASK)));
    protocol_error(&b, &[1007]);
}

/// BAD_INPUT 32: overlong encodings, surrogates, code points above U+10FFFF.
#[test]
fn utf8_overlong_surrogate_too_big_close_1007_ours() {
    for bad in [
        &b"\xc0\xaf"[..],
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
    ] {
        let mut p = b"PRIVMSG #a :".to_vec();
        p.extend_from_slice(bad);
        protocol_error(&encode_frame(true, OP_TEXT, &p, Some(MASK)), &[1007]);
    }
}

/// BAD_INPUT 33: a close frame with a 1-byte payload.
#[test]
fn close_one_byte_payload_1002_ours() {
    protocol_error(&encode_frame(true, OP_CLOSE, b"\x03", Some(MASK)), &[1002]);
}

/// BAD_INPUT 33: close codes that may not be sent.
#[test]
fn invalid_close_codes_1002_ours() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        protocol_error(
            &encode_frame(true, OP_CLOSE, &code.to_be_bytes(), Some(MASK)),
            &[1002],
        );
    }
}

/// BAD_INPUT 34: application close codes are valid and echoed as 1000 or the same code.
#[test]
fn valid_close_codes_echoed_ours() {
    for code in [1001u16, 1003, 3000, 4999] {
        let (_server, mut c) = upgraded(Module::Ours);
        c.send_frame(true, OP_CLOSE, &code.to_be_bytes())
            .expect("send");
        expect_close(&mut c, &[1000, code]);
    }
}

/// BAD_INPUT 35: a close reason that is not UTF-8.
#[test]
fn close_reason_invalid_utf8_1007_ours() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bad \xff reason");
    protocol_error(&encode_frame(true, OP_CLOSE, &p, Some(MASK)), &[1007]);
}

/// BAD_INPUT 28: a 64-bit length with the top bit set (stock: 1009, "Huge frames").
fn length_top_bit_set_closes(m: Module) {
    let mut b = vec![0x81u8, 0x80 | 127];
    b.extend_from_slice(&(0x8000_0000_0000_0010u64).to_be_bytes());
    b.extend_from_slice(&MASK);
    protocol_error_with(m, &b, &[1002, 1009]);
}
both_modules!(length_top_bit_set_closes);

/// BAD_INPUT 28: a header announcing 1 GiB -> close 1009 at once, without the payload
/// ever being sent.
fn huge_length_closes_1009_before_payload(m: Module) {
    let mut b = vec![0x81u8, 0x80 | 127];
    b.extend_from_slice(&(1u64 << 30).to_be_bytes());
    b.extend_from_slice(&MASK);
    protocol_error_with(m, &b, &[1009]);
}
both_modules!(huge_length_closes_1009_before_payload);

/// Writes `bytes` from a thread (the server may close before reading everything).
fn write_in_background(c: &Client, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut w = c.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for chunk in bytes.chunks(16 * 1024) {
            if w.write_all(chunk).is_err() {
                return;
            }
        }
    })
}

/// BAD_INPUT 29: a message growing past the limit across many fragments -> close 1009.
#[test]
fn message_growing_past_limit_closes_1009_ours() {
    let (mut server, mut c) = upgraded(Module::Ours);
    let mut bytes = encode_frame(false, OP_TEXT, b"PRIVMSG #a :", Some(MASK));
    let chunk = vec![b'z'; 8192];
    for _ in 0..512 {
        // 4 MiB in total
        bytes.extend(encode_frame(false, OP_CONT, &chunk, Some(MASK)));
    }
    let writer = write_in_background(&c, bytes);
    expect_close(&mut c, &[1009]);
    writer.join().unwrap();
    still_serving(&mut server);
}

/// BAD_INPUT 30: 100,000 empty fragments -> close 1008 or 1009.
#[test]
fn many_empty_fragments_close_ours() {
    let (mut server, mut c) = upgraded(Module::Ours);
    let mut bytes = encode_frame(false, OP_TEXT, b"PRIVMSG #a :", Some(MASK));
    let empty = encode_frame(false, OP_CONT, b"", Some(MASK));
    for _ in 0..100_000 {
        bytes.extend_from_slice(&empty);
    }
    let writer = write_in_background(&c, bytes);
    expect_close(&mut c, &[1008, 1009]);
    writer.join().unwrap();
    still_serving(&mut server);
}

/// A single 4 MiB frame -> close 1009 (stock: "Huge frames are not supported" for any
/// 64-bit length).
fn single_frame_over_limit_closes_1009(m: Module) {
    let (mut server, mut c) = upgraded(m);
    let payload = vec![b'q'; 4 * 1024 * 1024];
    let writer = write_in_background(&c, encode_frame(true, OP_BINARY, &payload, Some(MASK)));
    expect_close(&mut c, &[1009]);
    writer.join().unwrap();
    still_serving(&mut server);
}
both_modules!(single_frame_over_limit_closes_1009);

// ---------------------------------------------------------------------------------------
// Robustness (both modules)
// ---------------------------------------------------------------------------------------

/// BAD_INPUT 39: a truncated frame then EOF: the connection is cleaned up and the
/// server keeps serving.
fn truncated_frame_then_eof(m: Module) {
    let (mut server, mut c) = upgraded(m);
    let f = encode_frame(
        true,
        OP_TEXT,
        b"PRIVMSG #a :this frame is cut short",
        Some(MASK),
    );
    // A ping first: its pong proves the server has read the truncated frame too, so the
    // EOF arrives as an event of its own. (InspIRCd 3 polls sockets edge-triggered and
    // can miss an EOF that arrives together with data a hook cannot consume yet.)
    let mut bytes = encode_frame(true, OP_PING, b"before-eof", Some(MASK));
    bytes.extend_from_slice(&f[..10]);
    c.send(&bytes).expect("send");
    let pong = c.frame().expect("EOF instead of pong");
    assert_eq!(
        (pong.opcode, pong.payload.as_slice()),
        (OP_PONG, &b"before-eof"[..])
    );
    c.shutdown_write();
    let frames = c.frames_until_eof().expect("frames until EOF");
    assert!(
        frames.iter().all(|f| f.opcode == OP_CLOSE),
        "unexpected frames: {frames:?}"
    );
    server.wait_log("the truncated connection's quit", |l| {
        l.contains("QuitUser:")
    });
    still_serving(&mut server);
}
both_modules!(truncated_frame_then_eof);

/// BAD_INPUT 45: random bytes after the upgrade, then 256 KiB of zero bytes (which end
/// any frame the random bytes began and then form unmasked frames, a protocol error):
/// every connection is closed by the server and the server survives.
fn random_bytes_after_upgrade(m: Module) {
    let server = Server::start(Conf::new(m));
    let mut server = server;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut conns = Vec::new();
    for _ in 0..30 {
        let (c, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
        let len = (next() % 2048) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        bytes.extend(std::iter::repeat_n(0u8, 256 * 1024));
        let w = write_in_background(&c, bytes);
        conns.push((c, w));
    }
    for (mut c, w) in conns {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            // Frames may be malformed from our parser's view only if the server sent
            // garbage; read raw bytes until EOF.
            match c.frame_until(deadline) {
                Ok(_) => continue,
                Err(e) if e.is_closed() => break,
                Err(e) if e.is_timeout() => {
                    panic!("a connection fed random bytes was not closed")
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        w.join().unwrap();
    }
    still_serving(&mut server);
}
both_modules!(random_bytes_after_upgrade);
