//! permessage-deflate on the real server: negotiated only when configured, and exact
//! bytes both ways with a client whose deflate (flate2's miniz_oxide) shares no code
//! with the module's zlib.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use testkit::ws::{encode_frame_byte, BROWSER_DEFLATE_OFFER};

use crate::common::*;

const CHAN: &str = "#zip";
const RSV1: u8 = 0x40;
const RSV1_LOW: u8 = 0b100;
const SYNC_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// A WebSocket client that compresses what it sends (each message on its own, as the
/// server asks) and inflates what it gets (the server's window carries over).
struct DeflateClient {
    conn: RawConn,
    inflate: Decompress,
    /// Server messages that arrived compressed.
    compressed_seen: usize,
}

impl DeflateClient {
    fn connect(server: &Server) -> (DeflateClient, HttpResponse) {
        let (conn, r) = RawConn::upgrade(server.ws_port, &[BROWSER_DEFLATE_OFFER]);
        let client = DeflateClient {
            conn,
            inflate: Decompress::new(false),
            compressed_seen: 0,
        };
        (client, r)
    }

    fn send_line(&mut self, line: &str) {
        let mut deflate = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(line.len() + 64);
        deflate
            .compress_vec(line.as_bytes(), &mut out, FlushCompress::Sync)
            .expect("compress");
        assert!(out.ends_with(&SYNC_TAIL), "{out:?}");
        out.truncate(out.len() - SYNC_TAIL.len());
        self.conn
            .send(&encode_frame_byte(0x80 | RSV1 | OP_TEXT, &out, Some(MASK)));
    }

    /// The next text message, inflated if it came compressed.
    fn next_line(&mut self, what: &str) -> String {
        let frame = self
            .conn
            .expect_frame(what, |f| f.opcode == OP_TEXT || f.opcode == OP_CLOSE);
        assert_eq!(frame.opcode, OP_TEXT, "{what}: {frame:?}");
        assert!(frame.fin);
        if frame.rsv & RSV1_LOW == 0 {
            return String::from_utf8(frame.payload).expect("UTF-8");
        }
        self.compressed_seen += 1;
        let mut input = frame.payload;
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(input.len() * 8 + 64);
        let mut consumed = 0;
        while consumed < input.len() {
            let before = self.inflate.total_in();
            let status = self
                .inflate
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .expect("the server's data inflates");
            consumed += (self.inflate.total_in() - before) as usize;
            assert_ne!(
                status,
                Status::StreamEnd,
                "the server ended its deflate stream"
            );
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
        }
        String::from_utf8(out).expect("UTF-8")
    }

    fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        for _ in 0..200 {
            let line = self.next_line(what);
            if pred(&line) {
                return line;
            }
        }
        panic!("{what}: not among 200 messages");
    }
}

#[test]
fn compressed_both_ways_exact_bytes_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let (mut web, r) = DeflateClient::connect(&server);
    assert_eq!(
        r.header("Sec-WebSocket-Extensions"),
        Some("permessage-deflate; client_no_context_takeover"),
        "{r:?}"
    );
    web.send_line("NICK zweb");
    web.send_line("USER z 0 * :Compressed user");
    web.expect_line("001", |l| l.split(' ').nth(1) == Some("001"));

    let mut irc = IrcClient::register(server.irc_port, "plain");
    irc.send(&format!("JOIN {CHAN}"));
    irc.expect("366", |l| is_numeric(l, "366"));
    web.send_line(&format!("JOIN {CHAN}"));
    web.expect_line("366", |l| l.split(' ').nth(1) == Some("366"));
    irc.expect("zweb's JOIN", |l| show(l).starts_with(":zweb!"));

    let text = "héllo wörld ✓ 日本語 🎉, compressed on the way in";
    web.send_line(&format!("PRIVMSG {CHAN} :{text}"));
    let got = irc.expect("PRIVMSG from zweb", |l| show(l).contains(" PRIVMSG "));
    assert_eq!(
        got,
        format!(":zweb!z@127.0.0.1 PRIVMSG {CHAN} :{text}").into_bytes()
    );

    for i in 0..20 {
        let text = format!("line {i}: ünïcödé ☃ back, and the same words again and again");
        irc.send(&format!("PRIVMSG {CHAN} :{text}"));
        let got = web.expect_line("PRIVMSG from plain", |l| l.contains(" PRIVMSG "));
        assert_eq!(got, format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :{text}"));
    }
    assert!(
        web.compressed_seen >= 20,
        "{} compressed",
        web.compressed_seen
    );

    let mut oper = IrcClient::register(server.irc_port, "opz");
    oper.oper();
    let stats = oper.stats_w();
    assert!(
        stats
            .iter()
            .any(|l| l.contains("WebSocket accepted with permessage-deflate: 1")),
        "{stats:#?}"
    );
}

/// Without `compression="yes"` neither module answers the offer (the stock modules of
/// InspIRCd 3 and 4 know no extension), and the client is served uncompressed.
fn offer_declined_by_default(m: Module) {
    let server = Server::start(Conf::new(m));
    let (mut conn, r) = RawConn::upgrade(server.ws_port, &[BROWSER_DEFLATE_OFFER]);
    assert_eq!(r.header("Sec-WebSocket-Extensions"), None, "{r:?}");
    conn.register("plainweb");
}
both_modules!(offer_declined_by_default);

/// A client that sets RSV1 without having negotiated it breaks the protocol.
#[test]
fn compressed_frame_without_negotiation_closes_1002_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let (mut conn, _) = RawConn::upgrade(server.ws_port, &[]);
    conn.send(&encode_frame_byte(
        0x80 | RSV1 | OP_TEXT,
        &[0xf2, 0x48, 0x05, 0x00],
        Some(MASK),
    ));
    let close = conn.expect_frame("close", |f| f.opcode == OP_CLOSE);
    assert_eq!(close.close_code(), Some(1002));
}

/// A decompression bomb: 1009 without inflating past `maxmessage`.
#[test]
fn decompression_bomb_closes_1009_ours() {
    let mut server = Server::start(Conf::new(Module::Ours).websocket(r#"compression="yes""#));
    let (mut web, _) = DeflateClient::connect(&server);
    let mut deflate = Compress::new(Compression::best(), false);
    let mut bomb = Vec::with_capacity(64 * 1024);
    deflate
        .compress_vec(&vec![b'a'; 16 << 20], &mut bomb, FlushCompress::Sync)
        .expect("compress");
    assert!(bomb.len() < 40_000, "{}", bomb.len());
    web.conn.send(&encode_frame_byte(
        0x80 | RSV1 | OP_TEXT,
        &bomb[..bomb.len() - 4],
        Some(MASK),
    ));
    let close = web.conn.expect_frame("close", |f| f.opcode == OP_CLOSE);
    assert_eq!(close.close_code(), Some(1009));
    server.assert_alive();
}
