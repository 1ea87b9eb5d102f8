//! The closing handshake as RFC 6455 7.1.1 has it: after the server's close frame, TCP
//! stays open until the client's close frame arrives (or `closetimeout` passes), while
//! the IRC side of the quit happens at once. Closing at once, as the stock module does,
//! makes Firefox report every server-initiated close as unclean (tests/it/browser.rs has
//! the browsers; these tests use raw clients to see the TCP close itself).

use std::time::{Duration, Instant};

use crate::common::*;

/// Asserts that the server keeps the connection open (no frame, no EOF) for `quiet`.
/// An absence: it cannot fail because the machine is slow.
fn assert_still_open(conn: &mut Client, quiet: Duration, what: &str) {
    match conn.frame_until(Instant::now() + quiet) {
        Err(e) if e.is_timeout() => {}
        Ok(f) => panic!("{what}: unexpected frame {f:?}"),
        Err(e) if e.is_closed() => {
            panic!("{what}: the server closed TCP before the client's close")
        }
        Err(e) => panic!("{what}: {e:?}"),
    }
}

fn close_frame(frames: &[RawFrame]) -> &RawFrame {
    frames
        .iter()
        .find(|f| f.opcode == OP_CLOSE)
        .unwrap_or_else(|| panic!("no close frame among {frames:?}"))
}

/// After QUIT the others see the quit at once; the socket waits for the client's
/// close (here `closetimeout` is far longer than any wait below, so a close within
/// them comes from the reply).
#[test]
fn after_quit_tcp_waits_for_the_clients_close_frame() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"closetimeout="60s""#));
    let mut watcher = server.irc("watcher").expect("watcher");
    watcher.join("#room").expect("JOIN");
    let mut conn = server.raw_user_in(&mut watcher, "#room", "leaver");
    conn.silent_on_close();
    conn.send_text("QUIT :off now").expect("send");
    watcher
        .expect_str("the quit, at once", |l| {
            l.starts_with(":leaver!") && l.contains(" QUIT :") && l.ends_with("off now")
        })
        .expect("the quit, at once");
    let close = conn
        .expect_frame("the server's close frame", |f| f.opcode == OP_CLOSE)
        .expect("the server's close frame");
    assert_eq!(close.close_code(), Some(1000));
    assert_still_open(
        &mut conn,
        Duration::from_millis(500),
        "after the close frame",
    );

    // Data in flight from the client is dropped; only its close ends the wait.
    conn.send_text("PRIVMSG #room :too late").expect("send");
    assert_still_open(
        &mut conn,
        Duration::from_millis(300),
        "after a late message",
    );
    conn.send_frame(true, OP_CLOSE, &1000u16.to_be_bytes())
        .expect("send");
    assert!(
        conn.frames_until_eof()
            .expect("frames until EOF")
            .is_empty(),
        "nothing follows the server's close frame"
    );
    watcher.sync("after").expect("round trip");
    assert!(
        !watcher.recent().contains("too late"),
        "a message after the close was delivered:\n{}",
        watcher.recent()
    );
}

/// A client that never answers is closed after `closetimeout`; STATS W counts it.
#[test]
fn a_silent_client_is_closed_after_closetimeout() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"closetimeout="1s""#));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("silent").expect("registration");
    conn.silent_on_close();
    conn.send_text("QUIT :bye").expect("send");
    let frames = conn.frames_until_eof().expect("frames until EOF");
    assert_eq!(close_frame(&frames).close_code(), Some(1000));
    let stats = oper.stats_w().expect("STATS W");
    assert!(
        stats.contains(&"WebSocket close replies timed out: 1".to_owned()),
        "{stats:#?}"
    );
}

/// `closetimeout="0"` closes at once, as the stock module does: nothing waits.
#[test]
fn closetimeout_zero_closes_at_once() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"closetimeout="0""#));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.register("quick").expect("registration");
    conn.silent_on_close();
    conn.send_text("QUIT :bye").expect("send");
    let frames = conn.frames_until_eof().expect("frames until EOF");
    close_frame(&frames);
    let stats = oper.stats_w().expect("STATS W");
    assert!(
        !stats.iter().any(|l| l.contains("close replies")),
        "{stats:#?}"
    );
}

/// A protocol error: the close frame (1002), then the socket waits for the client's
/// answer, whatever it looks like (the stream cannot be followed after the error).
#[test]
fn after_a_protocol_error_the_first_bytes_end_the_wait() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"closetimeout="60s""#));
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.silent_on_close();
    conn.send(&encode_frame(true, OP_TEXT, b"unmasked", None))
        .expect("send");
    let close = conn
        .expect_frame("close 1002", |f| f.opcode == OP_CLOSE)
        .expect("close 1002");
    assert_eq!(close.close_code(), Some(1002));
    assert_still_open(&mut conn, Duration::from_millis(500), "after the 1002");
    conn.send(b"\x88\x82").expect("send");
    assert!(conn
        .frames_until_eof()
        .expect("frames until EOF")
        .is_empty());
}

/// On UNLOADMODULE every WebSocket user gets 1001 and its socket waits for the
/// client's close, but at most about a second (the module's code goes away): the silent
/// client's TCP closes although `closetimeout` is a minute. The server carries on.
#[test]
fn unload_waits_for_close_replies_but_not_past_its_bound() {
    let mut server = Server::start(Conf::new(Module::Ours).websocket(r#"closetimeout="60s""#));
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    oper.join("#room").expect("JOIN");
    let mut answers = server.raw_user_in(&mut oper, "#room", "answers");
    let mut silent = server.raw_user_in(&mut oper, "#room", "silent");
    silent.silent_on_close();

    oper.send_line("UNLOADMODULE m_websocket.so").expect("send");
    oper.expect_line("973 (module unloaded)", |l| is_numeric(l, "973"))
        .expect("973 (module unloaded)");
    for (conn, nick) in [(&mut answers, "answers"), (&mut silent, "silent")] {
        let frames = conn.frames_until_eof().expect("frames until EOF");
        let close = close_frame(&frames);
        assert_eq!(close.close_code(), Some(1001), "[{nick}] {frames:?}");
        assert_eq!(&close.payload[2..], b"WebSocket module unloading");
    }
    server.assert_alive();
    oper.send_line("LOADMODULE websocket").expect("send");
    oper.expect_line("975 (module loaded)", |l| is_numeric(l, "975"))
        .expect("975 (module loaded)");
    let mut again = server.ws("again").expect("again");
    again.join("#room").expect("JOIN");
    server.assert_alive();
}
