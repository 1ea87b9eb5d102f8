//! Target `compression`: a session whose handshake negotiated permessage-deflate, fed
//! hostile frames. Input:
//! `[setup byte][flags][receive cuts][send cuts][server length: 2 bytes]`, then the
//! server's bytes, then the client's bytes.
//!
//! Setup bits 0-1: the configuration ([`configs`]: compression on with the defaults;
//! the smallest window and hash table with every message compressed; small message
//! limits; the largest window and hash table); bits 2-3: the client's offer
//! ([`OFFERS`], each one the server accepts). Flags bit 0: the client bytes are taken
//! as they are, not as a frame spec; bit 1: the client bytes are a list of messages
//! that this harness compresses itself (the test kit's flate2, independent of the
//! module's compressor), checked against the same messages sent uncompressed; bit 2:
//! the server asks for a close at the end.
//!
//! Checked: no panic, whatever the frames (RSV1 on anything, arbitrary deflate data,
//! fragments, bombs, control frames with RSV1); the same result in any chunking; the 101
//! accepts permessage-deflate; one line per message, none longer than `maxmessage`
//! (plus "\r\n") however far its data would inflate; a compressed message gives the
//! very lines, output and ending its uncompressed twin gives; and what `Session::send`
//! frames (compressed or not) inflates, as a client does it (the test kit's decoder, one
//! stream per connection, in the window the 101 agreed to, not 15 bits), to one message
//! per line, never much larger than the line.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use inspircd_websocket::config::{Config, RawConfig};
use inspircd_websocket::frame::OpCode;
use inspircd_websocket::handshake::{Peer, SocketKind};
use inspircd_websocket::protocol_error::ProtocolError;
use inspircd_websocket::session::{Ending, ServerClose, Session};

use super::{
    assert_same_receive_but_tail, check_receive, check_sent, chunks, receive_all, split_delivered,
    structured_frames, tag, Reader, ReceiveRun,
};

/// The offers the target's requests carry; the server accepts each of them.
const OFFERS: [&str; 4] = [
    // Chromium's and Firefox's.
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
    "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=15",
];

/// Compression on, four ways.
fn configs() -> &'static [Arc<Config>; 4] {
    static CONFIGS: OnceLock<[Arc<Config>; 4]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let build = |items: &[(&str, &str)]| {
            let raw = RawConfig {
                origins: vec![tag(&[("allow", "https://chat.example.com")])],
                websocket: Some(tag(items)),
                ..RawConfig::default()
            };
            Arc::new(Config::from_raw(&raw).expect("fuzz compression config"))
        };
        [
            build(&[("compression", "yes")]),
            build(&[
                ("compression", "yes"),
                ("compressionwindow", "8"),
                ("compressionhash", "8"),
                ("compressionminsize", "0"),
            ]),
            build(&[
                ("compression", "yes"),
                ("maxmessage", "512"),
                ("maxfragments", "3"),
                ("pingburst", "2"),
                ("compressionminsize", "1"),
            ]),
            build(&[
                ("compression", "yes"),
                ("compressionwindow", "15"),
                ("compressionhash", "14"),
                ("maxmessage", "64K"),
            ]),
        ]
    })
}

fn request(offer: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: irc.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    )
    .into_bytes()
}

/// Appends one client frame masked with `key`.
fn frame(out: &mut Vec<u8>, first: u8, payload: &[u8], key: [u8; 4]) {
    testkit::ws::encode_frame_into(out, first, payload, Some(key));
}

/// The message list of flags bit 1: `[kind][length][payload]` repeated. Kind bits 0-3
/// are the opcode, bit 4 clears FIN, bit 7 compresses a data message (bits 5-6: the
/// level). Returns the compressed stream and its uncompressed twin.
fn message_twins(mut spec: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut compressed, mut plain) = (Vec::new(), Vec::new());
    while let [kind, len, rest @ ..] = spec {
        let n = usize::from(*len).min(rest.len());
        let payload = &rest[..n];
        spec = &rest[n..];
        let opcode = kind & 0x0f;
        let fin = if kind & 0x10 == 0 { 0x80 } else { 0 };
        let key = [*kind, *len, 0xa5, 0x3c];
        // Only a whole message (text or binary in one frame) is compressed: a
        // compressed message's fragments carry pieces of one deflate stream.
        if kind & 0x80 != 0 && fin != 0 && (opcode == 1 || opcode == 2) {
            let level = u32::from((kind >> 5) & 3) * 3;
            frame(
                &mut compressed,
                fin | 0x40 | opcode,
                &testkit::deflate::deflate_message_level(payload, level),
                key,
            );
        } else {
            frame(&mut compressed, fin | opcode, payload, key);
        }
        frame(&mut plain, fin | opcode, payload, key);
    }
    (compressed, plain)
}

/// Server frames as they arrived: opcode, RSV1, payload (FIN, unmasked, no RSV2 or
/// RSV3, checked), decoded by the test kit, not by the module's own parser.
fn server_frames(bytes: &[u8]) -> Vec<(OpCode, bool, Vec<u8>)> {
    testkit::ws::decode_frames(bytes)
        .expect("the server's output is whole frames")
        .into_iter()
        .map(|f| {
            assert!(f.fin && !f.masked && f.rsv & 0b011 == 0, "{f:?}");
            let opcode = OpCode::from_u8(f.opcode).expect("a known opcode");
            (opcode, f.rsv1(), f.payload)
        })
        .collect()
}

/// Inflates the server's messages as a client does, with the test kit's decoder: one
/// stream per connection (the server's window carries over unless the 101 agreed to
/// `server_no_context_takeover`) in the window the 101 agreed to (`head`'s
/// `server_max_window_bits`, 15 bits when it states none), so that a back-reference
/// beyond that window fails. Re-frames them uncompressed for the checks of the plain
/// target.
fn inflate_sent(head: &[u8], sent: &[u8]) -> Vec<u8> {
    let agreed = testkit::http::HttpResponse::parse_head(head)
        .and_then(|r| r.deflate())
        .expect("the 101's extension answer")
        .expect("a permessage-deflate answer");
    let mut decoder = testkit::messages::Decoder::with_inflater(
        testkit::deflate::Inflater::for_agreement(&agreed),
    );
    let mut out = Vec::new();
    for f in testkit::ws::decode_frames(sent).expect("the server's output is whole frames") {
        assert!(f.fin, "a fragment from the server: {f:?}");
        let received = decoder
            .push(f)
            .unwrap_or_else(|e| panic!("the server's frames, as a client reads them: {e}"))
            .expect("one frame, one message");
        let (opcode, payload) = match received {
            testkit::messages::Received::Message(m) => {
                assert!(
                    m.wire_len <= m.payload.len() + m.payload.len() / 8 + 64,
                    "{} compressed bytes for a {}-byte message",
                    m.wire_len,
                    m.payload.len()
                );
                (m.opcode, m.payload)
            }
            testkit::messages::Received::Control(f) => (f.opcode, f.payload),
        };
        testkit::ws::encode_frame_into(&mut out, 0x80 | opcode, &payload, None);
    }
    out
}

/// The fuzz target.
pub fn compression(data: &[u8]) {
    let mut r = Reader::new(data);
    let setup = r.byte();
    let flags = r.byte();
    let config = Arc::clone(&configs()[usize::from(setup & 3)]);
    let offer = OFFERS[usize::from((setup >> 2) & 3)];
    let receive_cuts = r.cuts();
    let send_cuts = r.cuts();
    let server_len = usize::from(u16::from_be_bytes([r.byte(), r.byte()]));
    let server = r.take(server_len);
    let tail = r.rest();
    let peer = Peer {
        address: "192.0.2.7".parse().ok(),
        socket: SocketKind::User,
        proxy_protocol: false,
    };
    let session = || Session::new(Arc::clone(&config), peer.address, peer.socket);

    let mut client = request(offer);
    let mut twin = None;
    if flags & 2 != 0 {
        let (compressed, plain) = message_twins(tail);
        client.extend_from_slice(&compressed);
        let mut t = request(offer);
        t.extend_from_slice(&plain);
        twin = Some(t);
    } else if flags & 1 != 0 {
        client.extend_from_slice(tail);
    } else {
        client.extend_from_slice(&structured_frames(tail));
    }

    let mut whole_session = session();
    let whole = receive_all(&mut whole_session, &[&client], &config);
    let mut chunked_session = session();
    let chunked = receive_all(
        &mut chunked_session,
        &chunks(&client, receive_cuts),
        &config,
    );
    // A message that fails as it inflates (too big, bad UTF-8) leaves in the sink
    // whatever part of it had inflated when the failure was seen, which depends on how
    // its data arrived.
    let failed_inflating = matches!(
        whole.ending,
        Some(Ending::Failed(
            ProtocolError::InvalidUtf8 | ProtocolError::MessageTooBig
        ))
    );
    assert_same_receive_but_tail(&chunked, &whole, failed_inflating);
    check_receive(&whole, &client, &config);
    let upgrade = whole.upgrade.as_ref().expect("the request is accepted");
    assert!(upgrade.compression.is_some(), "{offer:?} was not accepted");
    let head_end = whole
        .out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a 101");
    let head = String::from_utf8_lossy(&whole.out[..head_end]);
    assert!(
        head.contains("\r\nSec-WebSocket-Extensions: permessage-deflate"),
        "{head}"
    );
    check_line_sizes(&whole, &config);

    if let Some(twin) = twin {
        let plain = receive_all(&mut session(), &[&twin], &config);
        // A message that fails (too big, bad UTF-8) may leave a different unterminated
        // start in the sink: compressed data is checked as it inflates, an
        // uncompressed message's size from its header.
        let delivered = |run: &ReceiveRun| split_delivered(&run.lines).0.to_vec();
        assert_eq!(
            (delivered(&whole), whole.messages, &whole.ending),
            (delivered(&plain), plain.messages, &plain.ending),
            "compressed messages differ from their uncompressed twins"
        );
        if whole.ending.is_none() {
            assert_eq!(whole.lines, plain.lines);
        }
        let (out, plain_out) = (&whole.out[head_end..], &plain.out[head_end..]);
        assert_eq!(
            out, plain_out,
            "output differs from the uncompressed twin's"
        );
    }

    // The server side: framed (and maybe compressed) in one piece and in chunks alike,
    // and inflating to the lines.
    let mut whole_sent = Vec::new();
    let mut chunked_sent = Vec::new();
    let whole_took = whole_session.send(server, 0, &mut whole_sent);
    for chunk in chunks(server, send_cuts) {
        assert_eq!(
            chunked_session.send(chunk, 0, &mut chunked_sent),
            whole_took
        );
    }
    assert_eq!(chunked_sent, whole_sent, "chunked send differs");
    if whole_session.is_open() {
        check_sent(
            &inflate_sent(&whole.out[..head_end], &whole_sent),
            server,
            upgrade.mode,
        );
    } else {
        assert!(whole_sent.is_empty(), "output on a closed connection");
    }
    if flags & 4 != 0 {
        let open = whole_session.is_open();
        let mut closing = Vec::new();
        whole_session.request_close(ServerClose::Quit, "bye");
        whole_session.finish_send(&mut closing);
        let frames = server_frames(&closing);
        if open {
            assert_eq!(frames.len(), 1);
            let (opcode, compressed, payload) = &frames[0];
            assert_eq!((*opcode, *compressed), (OpCode::Close, false));
            assert_eq!(&payload[..2], &1000u16.to_be_bytes());
        } else {
            assert!(frames.is_empty());
        }
    }
}

/// No delivered line exceeds `maxmessage` and its "\r\n", however far its data inflates.
fn check_line_sizes(run: &ReceiveRun, config: &Config) {
    let max = config.limits.max_message_bytes;
    for line in run.lines.split(|&b| b == b'\n') {
        assert!(
            line.len() as u64 <= max + 1,
            "a {}-byte line with maxmessage {max}",
            line.len()
        );
    }
}
