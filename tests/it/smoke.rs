//! The smoke test a server gets when the whole suite is not run on it (`make test`'s
//! `INSPIRCD_SMOKE_SOURCES`, the in-tree build's test): this module loads, upgrades,
//! registers, answers a ping frame, survives the server's own ping, and sends a close
//! frame on QUIT. On InspIRCd 4 the server's ping goes through the hook's `Ping` (the
//! API that differs between 4.11 and the 4.x branch after it).

use crate::common::*;

/// The server's ping timer, short enough for a test, long enough that a loaded machine
/// answers in time (as tests/it/ping_timer.rs).
const PINGFREQ: &str = r#"pingfreq="4""#;

#[test]
fn loads_upgrades_registers_pings_and_closes() {
    // The module's own keepalive far off, so that the ping below is the server's.
    let server = Server::start(
        Conf::new(Module::Ours)
            .websocket(r#"pinginterval="300s""#)
            .connect_attrs(PINGFREQ),
    );
    let (mut conn, upgrade) = Client::upgrade(server.ws_port, &[]).expect("upgrade (101)");
    assert_eq!(upgrade.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    conn.register("smoke").expect("registration (001)");

    conn.send_frame(true, OP_PING, b"smoke-ping").expect("send");
    let pong = conn
        .expect_frame("the pong to our ping frame", |f| f.opcode == OP_PONG)
        .expect("the pong to our ping frame");
    assert_eq!(pong.payload, b"smoke-ping");

    match dialect() {
        Dialect::V3 => {
            let ping = conn
                .expect_frame("the server's IRC PING", |f| {
                    f.opcode == OP_TEXT && f.payload.starts_with(b"PING ")
                })
                .expect("the server's IRC PING");
            let token = show(&ping.payload)["PING ".len()..].to_string();
            conn.send_text(&format!("PONG {token}")).expect("send");
        }
        Dialect::V4 => {
            let ping = conn
                .expect_frame("the server's ping frame (IOHook::Ping)", |f| {
                    f.opcode == OP_PING
                })
                .expect("the server's ping frame (IOHook::Ping)");
            conn.send_frame(true, OP_PONG, &ping.payload).expect("send");
        }
    }
    conn.send_text("PING :still-here").expect("send");
    conn.expect_frame("the PONG to our IRC PING", |f| {
        show(&f.payload).contains("PONG") && show(&f.payload).contains("still-here")
    })
    .expect("the PONG to our IRC PING");

    conn.send_text("QUIT :smoke done").expect("send");
    let close = conn
        .expect_frame("the close frame after QUIT", |f| f.opcode == OP_CLOSE)
        .expect("the close frame after QUIT");
    assert_eq!(close.close_code(), Some(1000));
    let after = conn.frames_until_eof().expect("frames until EOF");
    assert!(after.is_empty(), "frames after the close frame: {after:?}");
}
