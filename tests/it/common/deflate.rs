//! A raw WebSocket client that negotiates permessage-deflate: it compresses each of its
//! messages on its own (the module asks for `client_no_context_takeover`) and inflates
//! the server's with the test kit's [`testkit::deflate::Inflater`] (flate2's
//! miniz_oxide, which shares no code with the module's zlib). It counts the server's
//! messages that came compressed (RSV1 set), the proof on the wire that the server
//! compressed.

use testkit::deflate::{deflate_message, Inflater, RSV1, RSV1_LOW};
use testkit::ws::{encode_frame_byte, BROWSER_DEFLATE_OFFER};

use super::{HttpResponse, IrcClient, IrcLines, RawConn, MASK, OP_CLOSE, OP_TEXT};

pub struct DeflateClient {
    pub conn: RawConn,
    inflater: Inflater,
    /// Server messages that arrived compressed.
    pub compressed_seen: usize,
    /// Server messages that arrived uncompressed.
    pub plain_seen: usize,
    /// Whether the last message [`DeflateClient::next_line`] returned came compressed.
    pub last_compressed: bool,
}

impl DeflateClient {
    /// Upgrades with the browsers' deflate offer and the suite's default Origin.
    pub fn connect(port: u16) -> (DeflateClient, HttpResponse) {
        DeflateClient::upgrade(RawConn::upgrade(port, &[BROWSER_DEFLATE_OFFER]))
    }

    /// The same with `Origin: origin`.
    pub fn connect_from(port: u16, origin: &str) -> (DeflateClient, HttpResponse) {
        let mut conn = RawConn::connect(port);
        conn.send(&testkit::ws::upgrade_request(
            "127.0.0.1",
            origin,
            &[BROWSER_DEFLATE_OFFER],
        ));
        let r = conn.read_response();
        assert_eq!(r.status, 101, "expected 101, got {r:?}");
        DeflateClient::upgrade((conn, r))
    }

    fn upgrade((conn, r): (RawConn, HttpResponse)) -> (DeflateClient, HttpResponse) {
        let client = DeflateClient {
            conn,
            inflater: Inflater::new(),
            compressed_seen: 0,
            plain_seen: 0,
            last_compressed: false,
        };
        (client, r)
    }

    /// Sends one compressed text message.
    pub fn send_line(&mut self, line: &str) {
        let payload = deflate_message(line.as_bytes());
        self.conn.send(&encode_frame_byte(
            0x80 | RSV1 | OP_TEXT,
            &payload,
            Some(MASK),
        ));
    }

    /// Registers (NICK, USER, compressed) and waits for 001.
    pub fn register(&mut self, nick: &str) {
        self.send_line(&format!("NICK {nick}"));
        self.send_line("USER z 0 * :Compressed user");
        self.wait_welcome();
    }

    /// The next text message, inflated if it came compressed.
    pub fn next_line(&mut self, what: &str) -> String {
        let frame = self
            .conn
            .expect_frame(what, |f| f.opcode == OP_TEXT || f.opcode == OP_CLOSE);
        assert_eq!(frame.opcode, OP_TEXT, "{what}: {frame:?}");
        assert!(frame.fin, "{what}: a fragmented message from the server");
        self.last_compressed = frame.rsv & RSV1_LOW != 0;
        if !self.last_compressed {
            self.plain_seen += 1;
            return String::from_utf8(frame.payload).expect("UTF-8");
        }
        self.compressed_seen += 1;
        let mut out = Vec::new();
        self.inflater
            .inflate_message(&frame.payload, &mut out)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        String::from_utf8(out).expect("UTF-8")
    }

    /// Skips messages until one satisfies `pred` (at most 200).
    pub fn expect_line(&mut self, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        for _ in 0..200 {
            let line = self.next_line(what);
            if pred(&line) {
                return line;
            }
        }
        panic!("{what}: not among 200 messages");
    }
}

impl IrcLines for DeflateClient {
    fn send_irc(&mut self, line: &str) {
        self.send_line(line);
    }
    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) {
        self.expect_line(what, |l| pred(l.as_bytes()));
    }
}

/// Texts that give a compressor something to do, starting with `first` and naming
/// `who`: PRIVMSG texts sharing most of their bytes (the server keeps its window from
/// one message to the next), one of about 400 bytes that repeats itself, and UTF-8 of
/// 2, 3 and 4 bytes a character.
pub fn compressible_texts(first: &str, who: &str) -> Vec<String> {
    let mut texts: Vec<String> = (0..6)
        .map(|i| format!("{first} [{who} {i}] the same words again, and again, and again"))
        .collect();
    let long = "ünïcödé lorem ipsum ✓ ".repeat(14);
    assert!((380..=420).contains(&long.len()), "{}", long.len());
    texts.push(format!("{long}[{who}]"));
    texts.push(format!("{first} {who} 🎉 ✌"));
    texts
}

/// Asserts that the server's STATS W (asked by a new oper on `irc_port`) counts
/// `count` upgrades that negotiated permessage-deflate; `whose` names them.
pub fn assert_deflate_accepted(irc_port: u16, count: usize, whose: &str) {
    let mut oper = IrcClient::register(irc_port, "opz");
    oper.oper();
    let stats = oper.stats_w();
    let want = format!("accepted with permessage-deflate: {count}");
    assert!(
        stats.iter().any(|l| l.contains(&want)),
        "{whose}: STATS W should say {want:?}: {stats:#?}"
    );
}
