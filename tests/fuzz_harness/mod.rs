//! The fuzz targets' logic, shared by the cargo-fuzz targets in `fuzz/fuzz_targets/`
//! (which include this file with `#[path]`) and by `tests/fuzz_corpus_replay.rs`, which
//! replays every committed corpus file through the same functions on stable Rust.
//!
//! Each function takes the raw fuzzer input and panics when an invariant fails
//! (BAD_INPUT row 45: random bytes are parsed or rejected with a documented error, never
//! a panic or a hang). Every function is total on every input: the leading bytes are
//! control bytes (configuration, cut points), a missing one reads as 0.
//!
//! Targets:
//! - [`handshake`]: `HandshakeScanner::poll` fed in arbitrary chunks gives the same
//!   result as feeding everything at once; an accepted request ends in the blank line
//!   within the limit; every rejection has one of the documented statuses.
//! - [`frame_header`]: `FrameHeader::parse` decides from the header's own bytes only
//!   (same result on every longer prefix, `Ok(None)` on every shorter one), returns a
//!   valid header, and `FrameHeader::encode` reproduces minimally encoded headers.
//! - [`session`]: a valid upgrade request plus arbitrary bytes through `Session::receive`
//!   in arbitrary chunks gives the same lines, output and report as one call; lines are
//!   one per message, CR/LF only as the "\r\n" terminator; server bytes through
//!   `Session::send` give one well-formed frame per line.
//! - [`messages`]: the same through `Session::receive_messages` (the Autobahn echo
//!   server's path): the same complete messages in any chunking, in the sink's order,
//!   valid UTF-8 when text, and the very messages `receive` turns into IRC lines.
//! - [`compression::compression`]: a session that negotiated permessage-deflate, fed
//!   hostile compressed frames (see `compression.rs`).
//! - [`proxy_protocol::proxy_protocol`]: PROXY headers, to the parser and through a
//!   session behind a TCP-mode balancer (see `proxy_protocol.rs`).
#![allow(dead_code)]

pub mod compression;
pub mod proxy_protocol;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use inspircd_websocket::config::{Config, RawConfig, RawTag};
use inspircd_websocket::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use inspircd_websocket::handshake::{HandshakeScanner, HandshakeStatus, Peer, SocketKind};
use inspircd_websocket::irc::{MessageMode, MAX_PENDING_LINE_BYTES};
use inspircd_websocket::protocol_error::ProtocolError;
use inspircd_websocket::session::{
    Ending, MessageSink, Proxied, ReadReport, ServerClose, Session, Upgrade,
};

/// The statuses BAD_INPUT.md and the handshake docs allow for a refused upgrade.
pub const REJECT_STATUSES: [u16; 6] = [400, 403, 405, 426, 431, 501];

/// The time passed to the session: constant, so the ping budget never depends on how
/// the input was chunked.
const NOW_MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------
// Input decoding
// ---------------------------------------------------------------------------------------

/// Reads control bytes off the front of the fuzzer input.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// The next byte, 0 when the input is exhausted.
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` next bytes.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A list of chunk sizes: a count byte (mod 16), then that many size bytes.
    fn cuts(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte() % 16);
        self.take(n)
    }

    fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// A chunk size byte: 0-127 as is, 128-255 as multiples of 64 (up to 8128 bytes).
fn chunk_size(b: u8) -> usize {
    if b & 0x80 == 0 {
        usize::from(b)
    } else {
        usize::from(b & 0x7f) * 64
    }
}

/// Splits `data` into chunks whose sizes cycle through `cuts`; a size 0 chunk is an empty
/// read. No cuts (or only zero ones) means one chunk.
fn chunks<'a>(data: &'a [u8], cuts: &[u8]) -> Vec<&'a [u8]> {
    if cuts.iter().all(|&c| chunk_size(c) == 0) {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = chunk_size(cuts[i % cuts.len()]).min(rest.len());
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Configurations and peers
// ---------------------------------------------------------------------------------------

fn tag(items: &[(&str, &str)]) -> RawTag {
    RawTag {
        location: "fuzz.conf:1".to_owned(),
        items: items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Four configurations, built through `Config::from_raw` as the module builds them:
/// the defaults; the smallest limits with defaultmode reject; binary mode behind
/// trusted proxies; everything allowed with the largest handshake limits.
fn configs() -> &'static [Arc<Config>; 4] {
    static CONFIGS: OnceLock<[Arc<Config>; 4]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let origins = vec![
            tag(&[("allow", "https://chat.example.com")]),
            tag(&[("allow", "https://*.example.org")]),
        ];
        let raw = |websocket: Option<RawTag>| RawConfig {
            origins: origins.clone(),
            websocket,
            ..RawConfig::default()
        };
        let build = |raw: RawConfig| Arc::new(Config::from_raw(&raw).expect("fuzz config"));
        [
            build(raw(None)),
            build(raw(Some(tag(&[
                ("maxhandshake", "1K"),
                ("maxheaders", "8"),
                ("defaultmode", "reject"),
                ("allowmissingorigin", "yes"),
                ("maxmessage", "512"),
                ("maxfragments", "3"),
                ("pingburst", "2"),
            ])))),
            build(raw(Some(tag(&[
                ("defaultmode", "binary"),
                ("proxyranges", "127.0.0.0/8 ::1 10.0.0.*"),
                ("maxfragments", "1000000"),
            ])))),
            build(raw(Some(tag(&[
                ("proxyranges", "0.0.0.0/0 ::/0"),
                ("allowmissingorigin", "yes"),
                ("maxhandshake", "64K"),
                ("maxheaders", "256"),
                ("maxmessage", "16M"),
            ])))),
        ]
    })
}

const PEER_ADDRESSES: [&str; 4] = ["127.0.0.1", "192.0.2.7", "::1", "10.0.0.5"];

/// Configuration, peer address and socket kind from one control byte
/// (bits 0-1, 2-3 and 4).
fn setup(b: u8) -> (Arc<Config>, Option<IpAddr>, SocketKind) {
    let config = Arc::clone(&configs()[usize::from(b & 3)]);
    let address = PEER_ADDRESSES[usize::from((b >> 2) & 3)].parse().ok();
    let socket = if b & 0x10 == 0 {
        SocketKind::User
    } else {
        SocketKind::Server
    };
    (config, address, socket)
}

// ---------------------------------------------------------------------------------------
// Target 1: handshake
// ---------------------------------------------------------------------------------------

/// Input: `[setup byte][cut count][cuts...]` then the request bytes.
pub fn handshake(data: &[u8]) {
    let mut r = Reader::new(data);
    let (config, address, socket) = setup(r.byte());
    let cuts = r.cuts();
    let request = r.rest();
    let peer = Peer {
        address,
        socket,
        proxy_protocol: false,
    };

    let whole = HandshakeScanner::default().poll(request, &config, peer);
    check_handshake_status(&whole, request, &config);

    // Chunked: poll the growing buffer after every chunk until a decision.
    let mut scanner = HandshakeScanner::default();
    let mut len = 0;
    let mut chunked = HandshakeStatus::Partial;
    for chunk in chunks(request, cuts) {
        len += chunk.len();
        chunked = scanner.poll(&request[..len], &config, peer);
        check_handshake_status(&chunked, &request[..len], &config);
        if chunked != HandshakeStatus::Partial {
            break;
        }
    }
    assert_eq!(
        chunked, whole,
        "chunked handshake result differs from the one-piece result (decided after {len} of {} bytes)",
        request.len()
    );
}

fn check_handshake_status(status: &HandshakeStatus, buf: &[u8], config: &Config) {
    let limits = &config.limits;
    match status {
        HandshakeStatus::Partial => {
            assert!(
                buf.len() <= limits.max_handshake_bytes,
                "{} bytes buffered beyond the handshake limit {}",
                buf.len(),
                limits.max_handshake_bytes
            );
            assert!(
                !buf.windows(4).any(|w| w == b"\r\n\r\n"),
                "complete request left undecided"
            );
        }
        HandshakeStatus::Accepted(a) => {
            assert!(a.request_len <= buf.len(), "request_len beyond the input");
            assert!(a.request_len <= limits.max_handshake_bytes);
            let request = &buf[..a.request_len];
            assert!(
                request.ends_with(b"\r\n\r\n"),
                "request does not end in a blank line"
            );
            let first_blank = buf.windows(4).position(|w| w == b"\r\n\r\n");
            assert_eq!(first_blank.map(|i| i + 4), Some(a.request_len));
            // httparse skips empty lines before the request line.
            let start = request
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(0);
            assert!(
                request[start..].starts_with(b"GET "),
                "accepted a non-GET request: {:?}",
                String::from_utf8_lossy(&request[..request.len().min(32)])
            );
            assert!(a
                .response
                .starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            assert!(a.response.ends_with(b"\r\n\r\n"));
        }
        HandshakeStatus::Rejected(reason) => {
            let status = reason.status();
            assert!(
                REJECT_STATUSES.contains(&status),
                "{reason:?} has undocumented status {status}"
            );
            let response = reason.response();
            let head = format!("HTTP/1.1 {status} ");
            assert!(response.starts_with(head.as_bytes()));
            assert!(!reason.text().is_empty());
        }
        HandshakeStatus::Disagreed(conflict) => {
            assert!(
                !config.proxy_ranges.is_empty(),
                "a disagreement without ranges"
            );
            assert_ne!(conflict.used.ip, conflict.other.ip);
        }
        HandshakeStatus::HealthCheck { .. } => {
            assert!(
                config.health_check.is_some(),
                "a health check without the path"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Target 2: frame header
// ---------------------------------------------------------------------------------------

/// Input: `[flags]` then the header bytes. Flags bit 0: require the mask; bits 1-3: the
/// RSV bits an extension allows.
pub fn frame_header(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let require_mask = flags & 1 != 0;
    let allowed_rsv = (flags >> 1) & 0b111;
    // An exactly sized heap copy, so that a sanitizer sees any read past the end.
    let buf: Box<[u8]> = r.rest().into();

    let result = FrameHeader::parse(&buf, require_mask, allowed_rsv);
    let parse = |n: usize| FrameHeader::parse(&buf[..n], require_mask, allowed_rsv);

    // The decision point: the shortest prefix that is not Ok(None).
    let decided_at = (0..=buf.len().min(MAX_HEADER_LEN)).find(|&n| parse(n) != Ok(None));
    match (&result, decided_at) {
        (Ok(None), None) => {
            assert!(
                buf.len() < MAX_HEADER_LEN,
                "{} bytes and still undecided",
                buf.len()
            );
        }
        (Ok(None), Some(n)) => panic!("prefix of {n} bytes decided but the whole input did not"),
        (_, None) => panic!(
            "decided on {} bytes, but no prefix of at most 14 bytes is",
            buf.len()
        ),
        (_, Some(n)) => {
            // Every longer prefix gives the same answer: nothing past the deciding byte
            // is read.
            for m in n..=buf.len().min(n + MAX_HEADER_LEN) {
                assert_eq!(
                    parse(m),
                    result,
                    "prefix {m} differs from the decision at {n}"
                );
            }
            if let Ok(Some((_, header_len))) = result {
                assert_eq!(
                    header_len, n,
                    "header_len is not where the header was decided"
                );
            }
        }
    }

    let Ok(Some((header, header_len))) = result else {
        return;
    };
    assert!((2..=MAX_HEADER_LEN).contains(&header_len));
    assert!(header_len <= buf.len());
    assert_eq!(header.rsv & !allowed_rsv, 0, "RSV bits not allowed");
    if require_mask {
        assert!(header.mask.is_some(), "unmasked header accepted");
    }
    if header.opcode.is_control() {
        assert!(header.fin, "fragmented control frame accepted");
        assert!(header.payload_len <= 125, "long control frame accepted");
    }
    assert!(header.payload_len < 1 << 63, "length top bit accepted");
    assert_eq!(
        header_len,
        2 + if header.mask.is_some() { 4 } else { 0 }
            + match buf[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            }
    );

    let mut encoded = [0u8; MAX_HEADER_LEN];
    let encoded = header.encode(&mut encoded);
    let encoded_len = encoded.len();
    assert_eq!(
        FrameHeader::parse(encoded, require_mask, allowed_rsv),
        Ok(Some((header, encoded_len))),
        "encode then parse does not round-trip"
    );
    let minimal = match buf[1] & 0x7f {
        126 => header.payload_len > 125,
        127 => header.payload_len > 0xffff,
        _ => true,
    };
    if minimal {
        assert_eq!(
            encoded,
            &buf[..header_len],
            "minimal header does not re-encode the same"
        );
    } else {
        assert!(encoded_len < header_len);
    }
}

// ---------------------------------------------------------------------------------------
// Target 3: session
// ---------------------------------------------------------------------------------------

/// The upgrade requests the session target starts with (all valid under the default
/// configuration; the proxy and reject-mode configurations refuse some of them).
const REQUESTS: [&[u8]; 4] = [
    b"GET /irc HTTP/1.1\r\nHost: irc.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\
Sec-WebSocket-Protocol: binary.ircv3.net\r\nX-Real-IP: 198.51.100.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: irc.example.com\r\nUpgrade: websocket\r\n\
Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\
Sec-WebSocket-Version: 13\r\nOrigin: https://www.example.org\r\n\
Sec-WebSocket-Protocol: text.ircv3.net\r\nX-Forwarded-For: 2001:db8::1, 127.0.0.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: irc.example.com\r\nupgrade: WebSocket\r\n\
connection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
sec-websocket-version: 13\r\norigin: https://chat.example.com\r\n\
sec-websocket-protocol: foo, binary.inspircd.org\r\nx-real-ip: 203.0.113.4\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: irc.example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\
X-Real-IP: 192.0.2.200\r\n\r\n",
];

/// Declared payload lengths for the structured frame encoding's length bytes 0xF0-0xFF.
const BIG_LENGTHS: [u64; 16] = [
    125,
    126,
    511,
    512,
    513,
    0xffff,
    0x1_0000,
    16 * 1024,
    16 * 1024 + 1,
    16 * 1024 * 1024,
    16 * 1024 * 1024 + 1,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX,
    0,
];

/// Turns `spec` into client frames: `[first byte][length byte][payload...]` repeated.
/// The first byte is used as is (FIN, RSV and opcode are the fuzzer's); the mask bit is
/// always set, the key derived from the two spec bytes; a length byte below 0xF0 is the
/// payload length, 0xF0-0xFF a declared length from [`BIG_LENGTHS`] of which only the
/// bytes the spec still has are sent. Lengths use the minimal encoding except the top
/// bit of the declared 64-bit values, which is kept as is.
fn structured_frames(mut spec: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [b0, lb, rest @ ..] = spec {
        let declared = if *lb < 0xf0 {
            u64::from(*lb)
        } else {
            BIG_LENGTHS[usize::from(lb & 0x0f)]
        };
        let sent = usize::try_from(declared)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        out.push(*b0);
        if declared < 126 {
            out.push(0x80 | declared as u8);
        } else if let Ok(len16) = u16::try_from(declared) {
            out.push(0x80 | 126);
            out.extend_from_slice(&len16.to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&declared.to_be_bytes());
        }
        let key = [*b0, *lb, 0x5a, 0xc3];
        out.extend_from_slice(&key);
        out.extend(rest[..sent].iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        spec = &rest[sent..];
    }
    out
}

/// Everything observable from one run of the receive side.
#[derive(Debug, PartialEq, Eq)]
struct ReceiveRun {
    lines: Vec<u8>,
    out: Vec<u8>,
    messages: usize,
    upgrade: Option<Upgrade>,
    /// What a trusted proxy established (a PROXY header, or the handshake's headers).
    proxied: Option<Proxied>,
    ending: Option<Ending>,
    /// Bytes given but never consumed.
    left: usize,
}

/// Feeds `chunks` to `session` as the shim does: append to the unconsumed bytes, call
/// `receive`, drop what it consumed.
fn receive_all(session: &mut Session, chunks: &[&[u8]], config: &Config) -> ReceiveRun {
    let mut run = ReceiveRun {
        lines: Vec::new(),
        out: Vec::new(),
        messages: 0,
        upgrade: None,
        proxied: None,
        ending: None,
        left: 0,
    };
    let mut pending: Vec<u8> = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let before = pending.len();
        let (lines_before, out_before) = (run.lines.len(), run.out.len());
        let report: ReadReport =
            session.receive(&mut pending, NOW_MS, &mut run.lines, &mut run.out);
        assert!(
            report.consumed <= before,
            "consumed {} of {before} bytes",
            report.consumed
        );
        if run.ending.is_some() {
            // Closed: everything is dropped, nothing is produced.
            assert_eq!(report.consumed, before);
            assert_eq!(
                (report.messages, &report.upgrade, &report.ending),
                (0, &None, &None)
            );
            assert_eq!((run.lines.len(), run.out.len()), (lines_before, out_before));
        }
        pending.drain(..report.consumed);
        run.messages += report.messages;
        if let Some(upgrade) = report.upgrade {
            assert!(run.upgrade.is_none(), "upgraded twice");
            run.upgrade = Some(upgrade);
        }
        if let Some(proxied) = report.proxied {
            assert!(run.proxied.is_none(), "a proxy's word reported twice");
            run.proxied = Some(proxied);
        }
        if let Some(ending) = report.ending {
            assert!(run.ending.is_none(), "ended twice");
            assert!(pending.is_empty(), "bytes left after the ending");
            run.ending = Some(ending);
        }
        // What stays unconsumed is bounded: a partial request within the limit, or a
        // partial frame header (payload bytes are consumed as they arrive).
        if session.holds_output() {
            assert!(pending.len() <= config.limits.max_handshake_bytes);
        } else {
            assert!(
                pending.len() < MAX_HEADER_LEN,
                "{} bytes left unconsumed on an open connection",
                pending.len()
            );
        }
    }
    // A call with nothing new does nothing.
    let (lines_len, out_len) = (run.lines.len(), run.out.len());
    let report = session.receive(&mut pending, NOW_MS, &mut run.lines, &mut run.out);
    if run.ending.is_none() {
        assert_eq!(
            report,
            ReadReport::default(),
            "a call with no new bytes did something"
        );
    }
    assert_eq!((run.lines.len(), run.out.len()), (lines_len, out_len));
    run.left = pending.len() - report.consumed;
    run
}

/// `lines` up to and including the last "\r\n" (the delivered lines), and the rest (the
/// start of a message still arriving).
fn split_delivered(lines: &[u8]) -> (&[u8], &[u8]) {
    let end = lines
        .windows(2)
        .rposition(|w| w == b"\r\n")
        .map_or(0, |i| i + 2);
    lines.split_at(end)
}

/// Two runs over the same bytes in different chunks agree on everything, except that a
/// text message failing UTF-8 validation (close 1007) may leave a different part of its
/// valid start in the sink, unterminated: payload bytes go to the sink as they arrive,
/// and a chunk is validated before any of it is written.
fn assert_same_receive(chunked: &ReceiveRun, whole: &ReceiveRun) {
    let bad_utf8 = matches!(
        whole.ending,
        Some(Ending::Failed(ProtocolError::InvalidUtf8))
    );
    assert_same_receive_but_tail(chunked, whole, bad_utf8);
}

/// [`assert_same_receive`], where `tail_may_differ` says whether the unterminated rest
/// of the lines may be longer in one run than in the other. A failure prints sizes,
/// not bytes (a decompression bomb's lines are megabytes).
fn assert_same_receive_but_tail(chunked: &ReceiveRun, whole: &ReceiveRun, tail_may_differ: bool) {
    let (chunked_lines, chunked_tail) = split_delivered(&chunked.lines);
    let (whole_lines, whole_tail) = split_delivered(&whole.lines);
    let same_tail = if tail_may_differ {
        chunked_tail.starts_with(whole_tail) || whole_tail.starts_with(chunked_tail)
    } else {
        chunked_tail == whole_tail
    };
    assert!(
        chunked_lines == whole_lines
            && same_tail
            && chunked.out == whole.out
            && chunked.messages == whole.messages
            && chunked.upgrade == whole.upgrade
            && chunked.proxied == whole.proxied
            && chunked.ending == whole.ending
            && chunked.left == whole.left,
        "chunked receive differs from the one-piece receive: lines {}+{} vs {}+{} bytes, \
         out {} vs {} bytes, messages {} vs {}, upgrade {:?} vs {:?}, proxied {:?} vs {:?}, \
         ending {:?} vs {:?}, left {} vs {}",
        chunked_lines.len(),
        chunked_tail.len(),
        whole_lines.len(),
        whole_tail.len(),
        chunked.out.len(),
        whole.out.len(),
        chunked.messages,
        whole.messages,
        chunked.upgrade,
        whole.upgrade,
        chunked.proxied,
        whole.proxied,
        chunked.ending,
        whole.ending,
        chunked.left,
        whole.left
    );
}

/// Input: `[setup byte][flags][receive cuts][send cuts][server length: 2 bytes]`, then
/// the server's bytes, then the client's bytes.
///
/// Flags bits 0-1: which upgrade request starts the client bytes; bit 2: no request
/// (the bytes are the handshake too); bit 3: the client bytes are a frame spec
/// ([`structured_frames`]); bit 4: the server asks for a close at the end.
pub fn session(data: &[u8]) {
    let mut r = Reader::new(data);
    let (config, address, socket) = setup(r.byte());
    let flags = r.byte();
    let receive_cuts = r.cuts();
    let send_cuts = r.cuts();
    let server_len = usize::from(u16::from_be_bytes([r.byte(), r.byte()]));
    let server = r.take(server_len);
    let client_tail = r.rest();

    let mut client = Vec::new();
    if flags & 4 == 0 {
        client.extend_from_slice(REQUESTS[usize::from(flags & 3)]);
    }
    if flags & 8 != 0 {
        client.extend_from_slice(&structured_frames(client_tail));
    } else {
        client.extend_from_slice(client_tail);
    }

    let mut whole_session = Session::new(Arc::clone(&config), address, socket);
    let whole = receive_all(&mut whole_session, &[&client], &config);
    let mut chunked_session = Session::new(Arc::clone(&config), address, socket);
    let chunked = receive_all(
        &mut chunked_session,
        &chunks(&client, receive_cuts),
        &config,
    );
    assert_same_receive(&chunked, &whole);
    check_receive(&whole, &client, &config);

    // The server side: the same bytes in one piece and in chunks.
    let mut whole_sent = Vec::new();
    let mut chunked_sent = Vec::new();
    let whole_took = whole_session.send(server, 0, &mut whole_sent);
    for chunk in chunks(server, send_cuts) {
        assert_eq!(
            chunked_session.send(chunk, 0, &mut chunked_sent),
            whole_took
        );
    }
    assert_eq!(
        chunked_sent, whole_sent,
        "chunked send differs from the one-piece send"
    );
    let open = whole_session.is_open();
    assert_eq!(whole_took, !whole_session.holds_output());
    if open {
        let mode = whole
            .upgrade
            .as_ref()
            .expect("open without an upgrade")
            .mode;
        check_sent(&whole_sent, server, mode);
    } else {
        assert!(
            whole_sent.is_empty(),
            "output framed on a connection that is not open"
        );
    }

    if flags & 0x10 != 0 {
        let mut closing = Vec::new();
        whole_session.request_close(ServerClose::Unload, "");
        whole_session.finish_send(&mut closing);
        if open {
            let frames = server_frames(&closing);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].0, OpCode::Close);
            assert_eq!(&frames[0].1[..2], &1001u16.to_be_bytes());
            assert!(!whole_session.is_open());
        } else {
            assert!(closing.is_empty());
        }
        let mut after = Vec::new();
        assert!(whole_session.send(b"PING :late\r\n", 0, &mut after) || !open);
        if open {
            assert!(after.is_empty(), "output after the close");
        }
    }
}

/// Decodes the server's frames with the test kit's client-side decoder (not the
/// module's own parser); each must be unmasked, FIN, without RSV bits and of a known
/// opcode; panics on anything malformed or left over.
fn server_frames(bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    testkit::ws::decode_frames(bytes)
        .expect("the server's output is whole frames")
        .into_iter()
        .map(|f| {
            assert!(f.fin && !f.masked && f.rsv == 0, "{f:?}");
            let opcode = OpCode::from_u8(f.opcode).expect("a known opcode");
            (opcode, f.payload)
        })
        .collect()
}

fn check_receive(run: &ReceiveRun, client: &[u8], config: &Config) {
    // Lines: CR and LF only as the terminator, one terminator per message.
    let mut terminators = 0;
    for (i, &b) in run.lines.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(
                run.lines.get(i + 1),
                Some(&b'\n'),
                "lone CR in the lines at {i}"
            ),
            b'\n' => {
                assert!(
                    i > 0 && run.lines[i - 1] == b'\r',
                    "lone LF in the lines at {i}"
                );
                terminators += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        terminators, run.messages,
        "lines do not match the messages delivered"
    );
    if run.upgrade.is_none() {
        assert!(run.lines.is_empty(), "lines delivered before the upgrade");
    }

    // Output: an HTTP response first.
    match (&run.upgrade, &run.ending) {
        (None, Some(Ending::Rejected(reason))) => {
            assert!(REJECT_STATUSES.contains(&reason.status()));
            assert_eq!(run.out, reason.response());
            assert_eq!(run.left, 0);
        }
        (None, None) => {
            assert!(run.out.is_empty(), "output before the handshake is decided");
            assert!(client.len() <= config.limits.max_handshake_bytes);
            assert_eq!(run.left, client.len());
        }
        (None, Some(e)) => panic!("ending {e:?} without an upgrade"),
        (Some(_), ending) => {
            assert!(!matches!(ending, Some(Ending::Rejected(_))));
            let end = run
                .out
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("101 response")
                + 4;
            assert!(run.out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            let frames = server_frames(&run.out[end..]);
            for (i, (opcode, payload)) in frames.iter().enumerate() {
                assert!(payload.len() <= 125, "long control frame sent");
                match opcode {
                    OpCode::Pong => {}
                    OpCode::Close => assert_eq!(i, frames.len() - 1, "frames after a close"),
                    other => panic!("the receive side sent a {other:?} frame"),
                }
            }
            let last_close = frames.last().filter(|(op, _)| *op == OpCode::Close);
            match ending {
                None => assert!(last_close.is_none(), "close frame sent without an ending"),
                Some(Ending::Failed(error)) => {
                    let code = error.close_code();
                    let (_, payload) = last_close.expect("close frame on failure");
                    assert_eq!(&payload[..2], &code.code().to_be_bytes());
                    assert_eq!(&payload[2..], error.to_string().as_bytes());
                    assert!([1002, 1007, 1008, 1009].contains(&code.code()), "{code:?}");
                }
                Some(Ending::ClientClosed { code }) => {
                    let (_, payload) = last_close.expect("close frame echoed");
                    match code {
                        Some(code) => assert_eq!(&payload[..], &code.to_be_bytes()),
                        None => assert!(payload.is_empty()),
                    }
                }
                Some(
                    Ending::Rejected(_) | Ending::ProxyRefused(_) | Ending::HealthChecked { .. },
                ) => {
                    unreachable!()
                }
                Some(Ending::InternalError) => panic!("the core broke an invariant"),
            }
        }
    }
}

/// Server bytes framed by `send`: one frame per complete line with its CRs removed,
/// empty lines dropped, text made valid UTF-8.
fn check_sent(sent: &[u8], server: &[u8], mode: MessageMode) {
    let frames = server_frames(sent);
    let opcode = match mode {
        MessageMode::Text => OpCode::Text,
        MessageMode::Binary => OpCode::Binary,
    };
    for (op, payload) in &frames {
        assert_eq!(*op, opcode);
        assert!(!payload.is_empty());
        assert!(
            !payload.contains(&b'\r') && !payload.contains(&b'\n'),
            "CR/LF in a message"
        );
        if mode == MessageMode::Text {
            assert!(
                std::str::from_utf8(payload).is_ok(),
                "invalid UTF-8 in a text frame"
            );
        }
    }
    if server.len() > MAX_PENDING_LINE_BYTES {
        return;
    }
    // The model: split on LF, the last piece is incomplete and kept.
    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut pieces: Vec<&[u8]> = server.split(|&b| b == b'\n').collect();
    pieces.pop();
    for piece in pieces {
        let line: Vec<u8> = piece.iter().copied().filter(|&b| b != b'\r').collect();
        if line.is_empty() {
            continue;
        }
        expected.push(match mode {
            MessageMode::Binary => line,
            MessageMode::Text => String::from_utf8_lossy(&line).into_owned().into_bytes(),
        });
    }
    let got: Vec<Vec<u8>> = frames.into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, expected, "framed lines differ from the model");
}

// ---------------------------------------------------------------------------------------
// The message path (Session::receive_messages)
// ---------------------------------------------------------------------------------------

/// One message as a [`MessageSink`] saw it: its payload pieces joined, since chunking
/// splits them differently.
#[derive(Debug, PartialEq, Eq)]
struct SeenMessage {
    opcode: OpCode,
    payload: Vec<u8>,
    ended: bool,
}

/// Records messages, checking the sink's grammar: `begin`, any `payload`s, `end`.
#[derive(Debug, Default)]
struct MessageLog {
    messages: Vec<SeenMessage>,
}

impl MessageLog {
    fn open(&mut self) -> &mut SeenMessage {
        match self.messages.last_mut() {
            Some(message) if !message.ended => message,
            _ => panic!("payload or end outside a message"),
        }
    }

    fn ended(&self) -> impl Iterator<Item = &SeenMessage> {
        self.messages.iter().filter(|m| m.ended)
    }
}

impl MessageSink for MessageLog {
    fn begin(&mut self, opcode: OpCode) {
        assert!(
            self.messages.last().is_none_or(|m| m.ended),
            "a message began inside another"
        );
        assert!(
            matches!(opcode, OpCode::Text | OpCode::Binary),
            "{opcode:?}"
        );
        self.messages.push(SeenMessage {
            opcode,
            payload: Vec::new(),
            ended: false,
        });
    }

    fn payload(&mut self, bytes: &[u8]) {
        self.open().payload.extend_from_slice(bytes);
    }

    fn end(&mut self) {
        self.open().ended = true;
    }
}

/// Feeds `chunks` through `receive_messages` as the shim feeds `receive`.
fn receive_messages_all(
    session: &mut Session,
    chunks: &[&[u8]],
) -> (MessageLog, Vec<u8>, usize, Option<Ending>) {
    let (mut log, mut out, mut delivered, mut ending) =
        (MessageLog::default(), Vec::new(), 0, None);
    let mut pending: Vec<u8> = Vec::new();
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        let report = session.receive_messages(&mut pending, NOW_MS, &mut log, &mut out);
        pending.drain(..report.consumed);
        delivered += report.messages;
        if report.ending.is_some() {
            assert!(ending.is_none(), "ended twice");
            ending = report.ending;
        }
    }
    (log, out, delivered, ending)
}

/// Input: `[setup byte][flags][receive cuts]`, then the client's bytes after a valid
/// upgrade request. Flags bits 0-1: which request; bit 2: the bytes are a frame spec
/// ([`structured_frames`]).
///
/// `receive_messages` in arbitrary chunks delivers the same complete messages, output
/// and ending as in one call; the sink sees `begin`, `payload`s, `end` in order; a
/// complete text message is valid UTF-8; no message exceeds `maxmessage`; and
/// `receive` on the same bytes delivers exactly these messages as IRC lines (CR and LF
/// removed, "\r\n" appended).
pub fn messages(data: &[u8]) {
    let mut r = Reader::new(data);
    let (config, address, socket) = setup(r.byte());
    let flags = r.byte();
    let receive_cuts = r.cuts();
    let mut client = REQUESTS[usize::from(flags & 3)].to_vec();
    if flags & 4 != 0 {
        client.extend_from_slice(&structured_frames(r.rest()));
    } else {
        client.extend_from_slice(r.rest());
    }

    let mut whole_session = Session::new(Arc::clone(&config), address, socket);
    let (whole, whole_out, whole_count, whole_ending) =
        receive_messages_all(&mut whole_session, &[&client]);
    let mut chunked_session = Session::new(Arc::clone(&config), address, socket);
    let (chunked, chunked_out, chunked_count, chunked_ending) =
        receive_messages_all(&mut chunked_session, &chunks(&client, receive_cuts));

    assert!(
        whole.ended().eq(chunked.ended()),
        "chunked messages differ from the one-piece ones"
    );
    assert_eq!(chunked_out, whole_out);
    assert_eq!(
        (chunked_count, &chunked_ending),
        (whole_count, &whole_ending)
    );
    assert_eq!(whole.ended().count(), whole_count);
    for message in whole.ended() {
        assert!(message.payload.len() as u64 <= config.limits.max_message_bytes);
        if message.opcode == OpCode::Text {
            assert!(
                std::str::from_utf8(&message.payload).is_ok(),
                "a text message that is not UTF-8 was delivered"
            );
        }
    }

    // The IRC path runs the same state machine.
    let mut irc_session = Session::new(Arc::clone(&config), address, socket);
    let irc = receive_all(&mut irc_session, &[&client], &config);
    let mut expected_lines = Vec::new();
    for message in whole.ended() {
        expected_lines.extend(
            message
                .payload
                .iter()
                .filter(|&&b| b != b'\r' && b != b'\n'),
        );
        expected_lines.extend_from_slice(b"\r\n");
    }
    let (delivered_lines, _) = split_delivered(&irc.lines);
    assert_eq!(
        delivered_lines,
        &expected_lines[..],
        "IRC lines differ from the messages"
    );
    assert_eq!(
        (irc.out, irc.messages, irc.ending),
        (whole_out, whole_count, whole_ending)
    );
}
