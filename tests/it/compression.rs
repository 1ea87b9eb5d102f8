//! permessage-deflate on the real server: negotiated only when configured, and exact
//! bytes both ways with a client whose deflate (flate2's and miniz_oxide's) shares no
//! code with the module's compressor.

use std::time::Instant;

use flate2::{Compress, Compression, FlushCompress};
use testkit::deflate::RSV1;
use testkit::ws::{encode_frame_byte, BROWSER_DEFLATE_OFFER};

use crate::common::deflate::{assert_deflate_accepted, compressible_texts, deflate_client};
use crate::common::*;

const CHAN: &str = "#zip";

#[test]
fn compressed_both_ways_exact_bytes_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let (mut web, r) = deflate_client(server.ws_port, ORIGIN).expect("a deflate client");
    assert_eq!(
        r.header("Sec-WebSocket-Extensions"),
        Some("permessage-deflate; client_no_context_takeover"),
        "{r:?}"
    );
    web.register("zweb").expect("registration");

    let mut irc = Client::irc_register(server.irc_port, "plain").expect("registration");
    irc.send_line(&format!("JOIN {CHAN}")).expect("send");
    irc.expect_line("366", |l| is_numeric(l, "366"))
        .expect("366");
    web.send_line(&format!("JOIN {CHAN}")).expect("send");
    web.expect_str("366", |l| l.split(' ').nth(1) == Some("366"))
        .expect("366");
    irc.expect_line("zweb's JOIN", |l| show(l).starts_with(":zweb!"))
        .expect("zweb's JOIN");

    let text = "héllo wörld ✓ 日本語 🎉, compressed on the way in";
    web.send_line(&format!("PRIVMSG {CHAN} :{text}"))
        .expect("send");
    let got = irc
        .expect_line("PRIVMSG from zweb", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from zweb");
    assert_eq!(
        got,
        format!(":zweb!z@127.0.0.1 PRIVMSG {CHAN} :{text}").into_bytes()
    );

    for i in 0..20 {
        let text = format!("line {i}: ünïcödé ☃ back, and the same words again and again");
        irc.send_line(&format!("PRIVMSG {CHAN} :{text}"))
            .expect("send");
        let got = web
            .expect_str("PRIVMSG from plain", |l| l.contains(" PRIVMSG "))
            .expect("PRIVMSG from plain");
        assert_eq!(got, format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :{text}"));
    }
    assert!(
        web.compressed_seen >= 20,
        "{} compressed",
        web.compressed_seen
    );

    assert_deflate_accepted(server.irc_port, 1, "the deflate client");
}

/// Without `compression="yes"` neither module answers the offer (the stock modules of
/// InspIRCd 3 and 4 know no extension), and the client is served uncompressed.
fn offer_declined_by_default(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut conn, r) = Client::upgrade(server.ws_port, &[BROWSER_DEFLATE_OFFER]).expect("upgrade");
    assert_eq!(r.header("Sec-WebSocket-Extensions"), None, "{r:?}");
    conn.register("plainweb").expect("registration");
}
both_modules!(offer_declined_by_default);

/// A client that sets RSV1 without having negotiated it breaks the protocol.
#[test]
fn compressed_frame_without_negotiation_closes_1002_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let (mut conn, _) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    conn.send(&encode_frame_byte(
        0x80 | RSV1 | OP_TEXT,
        &[0xf2, 0x48, 0x05, 0x00],
        Some(MASK),
    ))
    .expect("send");
    let close = conn
        .expect_frame("close", |f| f.opcode == OP_CLOSE)
        .expect("close");
    assert_eq!(close.close_code(), Some(1002));
}

/// A decompression bomb: 1009 without inflating past `maxmessage`.
#[test]
fn decompression_bomb_closes_1009_ours() {
    let mut server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let (mut web, _) = deflate_client(server.ws_port, ORIGIN).expect("a deflate client");
    let mut deflate = Compress::new(Compression::best(), false);
    let mut bomb = Vec::with_capacity(64 * 1024);
    deflate
        .compress_vec(&vec![b'a'; 16 << 20], &mut bomb, FlushCompress::Sync)
        .expect("compress");
    assert!(bomb.len() < 40_000, "{}", bomb.len());
    web.send(&encode_frame_byte(
        0x80 | RSV1 | OP_TEXT,
        &bomb[..bomb.len() - 4],
        Some(MASK),
    ))
    .expect("send");
    let close = web
        .expect_frame("close", |f| f.opcode == OP_CLOSE)
        .expect("close");
    assert_eq!(close.close_code(), Some(1009));
    server.assert_alive();
}

/// Compression keeps nothing beyond the module's own objects: after compressed messages
/// both ways (a client's inflated by a pooled inflater, the server's compressed through
/// a scratch buffer), UNLOADMODULE unmaps the module. (State in a Rust thread-local with
/// a destructor would keep the shared object mapped for the life of the server.)
#[test]
fn unloading_after_compressed_traffic_unmaps_the_module_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let module = std::fs::canonicalize(Module::Ours.path()).expect("the module's path");
    let module = module.to_string_lossy().into_owned();
    let (mut web, _) = deflate_client(server.ws_port, ORIGIN).expect("a deflate client");
    web.register("zweb").expect("registration");
    let mut oper = Client::irc_register(server.irc_port, "oper").expect("registration");
    oper.oper().expect("OPER");

    let texts = compressible_texts("to the web user", "oper");
    for text in &texts {
        oper.send_line(&format!("PRIVMSG zweb :{text}"))
            .expect("send");
        web.expect_str("the oper's PRIVMSG", |l| l.ends_with(text.as_str()))
            .expect("the oper's PRIVMSG");
    }
    assert!(web.compressed_seen > 0, "nothing came compressed");
    web.send_line("PRIVMSG oper :and back, compressed, and back, compressed")
        .expect("send");
    oper.expect_str("the web user's PRIVMSG", |l| {
        l.ends_with("and back, compressed")
    })
    .expect("the web user's PRIVMSG");
    assert!(
        server.proc().mappings_of(&module) > 0,
        "{module} is not mapped"
    );

    oper.send_line("UNLOADMODULE m_websocket.so").expect("send");
    oper.expect_line("973 (module unloaded)", |l| is_numeric(l, "973"))
        .expect("973 (module unloaded)");
    // The server unmaps the module when it culls it, after the command's round.
    let unmapped = poll_until(Instant::now() + TIMEOUT, || {
        let _ = oper.sync("culled");
        (server.proc().mappings_of(&module) == 0).then_some(())
    });
    assert!(
        unmapped.is_some(),
        "{module} is still mapped after UNLOADMODULE ({} mappings)",
        server.proc().mappings_of(&module)
    );
}
