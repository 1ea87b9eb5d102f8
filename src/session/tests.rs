//! Session tests: a client written here talks to a [`Session`] in memory.
//! `BAD_INPUT` rows 14 and 22-39 are named `row_NN_...`.

use super::test_client::{frame_with, MASK, REQUEST};
use super::*;
use crate::config::Config;
use crate::handshake::HEALTH_RESPONSE;
use proptest::prelude::*;
// A server frame as the client decodes it: the test kit's decoder, written independently
// of this crate's parser.
use testkit::ws::Frame as ServerFrame;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;

fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    frame_with(opcode | if fin { 0x80 } else { 0 }, true, payload)
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// Decodes unmasked server frames; panics on anything malformed or left over.
fn server_frames(bytes: &[u8]) -> Vec<ServerFrame> {
    server_frames_allowing(bytes, 0)
}

/// [`server_frames`] where the RSV bits in `allowed_rsv` (as in the first byte) may be
/// set; `rsv1()` tells.
fn server_frames_allowing(bytes: &[u8], allowed_rsv: u8) -> Vec<ServerFrame> {
    let frames = testkit::ws::decode_frames(bytes).expect("whole server frames");
    for f in &frames {
        assert!(!f.masked, "server frames are never masked");
        assert_eq!(
            (f.rsv << 4) & !allowed_rsv,
            0,
            "no RSV bits but those allowed"
        );
    }
    frames
}

/// The server side of one connection and everything it produced.
struct Harness {
    session: Session,
    /// Bytes received but not yet consumed (what InspIRCd's recvq holds).
    pending: Vec<u8>,
    lines: Vec<u8>,
    out: Vec<u8>,
    now_ms: u64,
    ending: Option<Ending>,
    upgrade: Option<Upgrade>,
    proxied: Option<Proxied>,
    warning: Option<String>,
    messages: usize,
}

impl Harness {
    fn with_config(config: Config) -> Harness {
        Harness {
            session: Session::new(Arc::new(config), "127.0.0.1".parse().ok(), SocketKind::User),
            pending: Vec::new(),
            lines: Vec::new(),
            out: Vec::new(),
            now_ms: 1_000_000,
            ending: None,
            upgrade: None,
            proxied: None,
            warning: None,
            messages: 0,
        }
    }

    fn new() -> Harness {
        Harness::with_config(Config::with_origins(&["https://*.example.com"]))
    }

    /// Connected and upgraded, with the 101 response removed from `out`.
    fn open() -> Harness {
        let mut h = Harness::new();
        h.feed(REQUEST);
        assert!(h.upgrade.is_some(), "handshake failed: {:?}", h.ending);
        h.out.clear();
        h
    }

    fn open_with(config: Config) -> Harness {
        let mut h = Harness::with_config(config);
        h.feed(REQUEST);
        assert!(h.upgrade.is_some());
        h.out.clear();
        h
    }

    fn feed(&mut self, bytes: &[u8]) -> ReadReport {
        self.pending.extend_from_slice(bytes);
        let report = self.session.receive(
            &mut self.pending,
            self.now_ms,
            &mut self.lines,
            &mut self.out,
        );
        assert!(report.consumed <= self.pending.len());
        self.pending.drain(..report.consumed);
        self.messages += report.messages;
        if report.upgrade.is_some() {
            self.upgrade = report.upgrade.clone();
        }
        if report.proxied.is_some() {
            assert!(self.proxied.is_none(), "proxied twice");
            self.proxied = report.proxied.clone();
        }
        if report.warning.is_some() {
            self.warning = report.warning.clone();
        }
        if report.ending.is_some() {
            assert!(self.ending.is_none(), "ended twice");
            self.ending = report.ending.clone();
        }
        report
    }

    fn sent_frames(&mut self) -> Vec<ServerFrame> {
        let frames = server_frames(&self.out);
        self.out.clear();
        frames
    }

    fn lines(&self) -> String {
        String::from_utf8_lossy(&self.lines).into_owned()
    }

    /// Asserts the connection failed with a close frame carrying `code`.
    fn assert_failed_with(&mut self, code: u16) {
        match &self.ending {
            Some(Ending::Failed(error)) => assert_eq!(error.close_code().code(), code),
            other => panic!("expected failure with {code}, got {other:?}"),
        }
        let frames = self.sent_frames();
        let last = frames.last().expect("a close frame");
        assert_eq!(last.opcode, CLOSE);
        assert_eq!(u16::from_be_bytes([last.payload[0], last.payload[1]]), code);
        assert!(!self.session.is_open());
    }
}

#[test]
fn row_14_request_and_first_frames_in_one_segment_are_all_processed() {
    let mut h = Harness::new();
    let mut bytes = REQUEST.to_vec();
    bytes.extend(frame(TEXT, true, b"NICK alice"));
    bytes.extend(frame(TEXT, true, b"USER a 0 * :Alice"));
    let report = h.feed(&bytes);
    assert!(report.upgrade.is_some());
    assert_eq!(report.messages, 2);
    assert_eq!(h.lines(), "NICK alice\r\nUSER a 0 * :Alice\r\n");
    assert!(h.out.starts_with(b"HTTP/1.1 101 "));
}

#[test]
fn rejected_handshake_sends_the_http_error_and_ends() {
    let mut h = Harness::new();
    h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        h.ending,
        Some(Ending::Rejected(RejectReason::MissingOrigin))
    );
    assert!(h.out.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(
        h.ending.as_ref().map(Ending::reason).as_deref(),
        Some("WebSocket: HTTP request did not send the Origin header")
    );
}

#[test]
fn text_message_becomes_one_irc_line() {
    let mut h = Harness::open();
    h.feed(&frame(TEXT, true, "PRIVMSG #a :héllo".as_bytes()));
    assert_eq!(h.lines(), "PRIVMSG #a :héllo\r\n");
    assert_eq!(h.messages, 1);
}

#[test]
fn row_22_unmasked_client_frame_closes_1002() {
    for opcode in [TEXT, BINARY, PING, CLOSE] {
        let mut h = Harness::open();
        h.feed(&frame_with(0x80 | opcode, false, b"x"));
        h.assert_failed_with(1002);
    }
}

#[test]
fn row_23_reserved_bits_close_1002() {
    for rsv in [0x40, 0x20, 0x10] {
        let mut h = Harness::open();
        h.feed(&frame_with(0x80 | rsv | TEXT, true, b"x"));
        h.assert_failed_with(1002);
    }
}

#[test]
fn row_24_reserved_opcodes_close_1002() {
    for opcode in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        let mut h = Harness::open();
        h.feed(&frame(opcode, true, b""));
        h.assert_failed_with(1002);
    }
}

#[test]
fn row_25_long_or_fragmented_control_frames_close_1002() {
    let mut h = Harness::open();
    h.feed(&frame(PING, true, &[b'p'; 126]));
    h.assert_failed_with(1002);
    let mut h = Harness::open();
    h.feed(&frame(PING, false, b"p"));
    h.assert_failed_with(1002);
}

#[test]
fn row_26_ping_between_fragments_is_answered_and_message_assembled() {
    let mut h = Harness::open();
    h.feed(&frame(TEXT, false, b"PRIVMSG #a :one "));
    h.feed(&frame(PING, true, b"keepalive"));
    h.feed(&frame(CONTINUATION, false, b"two "));
    h.feed(&frame(CONTINUATION, true, b"three"));
    assert_eq!(h.lines(), "PRIVMSG #a :one two three\r\n");
    assert_eq!(h.messages, 1);
    assert_eq!(
        h.sent_frames(),
        vec![ServerFrame {
            fin: true,
            rsv: 0,
            masked: false,
            opcode: PONG,
            payload: b"keepalive".to_vec()
        }]
    );
}

#[test]
fn row_27_continuation_without_message_closes_1002() {
    let mut h = Harness::open();
    h.feed(&frame(CONTINUATION, true, b"x"));
    h.assert_failed_with(1002);
}

#[test]
fn row_27_new_message_while_one_is_open_closes_1002() {
    let mut h = Harness::open();
    h.feed(&frame(TEXT, false, b"x"));
    h.feed(&frame(BINARY, true, b"y"));
    h.assert_failed_with(1002);
}

#[test]
fn row_28_length_with_top_bit_set_closes_before_any_payload() {
    let mut h = Harness::open();
    let mut bytes = vec![0x81, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 63).to_be_bytes());
    bytes.extend_from_slice(&MASK);
    h.feed(&bytes);
    h.assert_failed_with(1009);
}

#[test]
fn row_28_length_beyond_the_limit_closes_1009_from_the_header_alone() {
    let mut h = Harness::open();
    // Only the header: 1 MiB announced, no payload sent.
    let mut bytes = vec![0x82, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 20).to_be_bytes());
    bytes.extend_from_slice(&MASK);
    h.feed(&bytes);
    h.assert_failed_with(1009);
    // What reached the receive queue is at most the limit, and no line ended.
    assert!(h.lines.len() <= 16 * 1024, "{}", h.lines.len());
    assert!(!h.lines.contains(&b'\n'));
}

#[test]
fn row_29_message_growing_past_the_limit_across_fragments_closes_1009() {
    let limit = Config::with_origins(&["x"]).limits.max_message_bytes;
    let piece = vec![b'a'; limit as usize / 4 + 1];
    let mut h = Harness::open();
    h.feed(&frame(TEXT, false, &piece));
    for _ in 0..2 {
        h.feed(&frame(CONTINUATION, false, &piece));
    }
    assert!(h.ending.is_none());
    h.feed(&frame(CONTINUATION, true, &piece));
    h.assert_failed_with(1009);
}

#[test]
fn row_30_flood_of_empty_fragments_closes_without_growing() {
    let mut h = Harness::open();
    h.feed(&frame(TEXT, false, b""));
    let empty = frame(CONTINUATION, false, b"");
    let mut count = 0;
    while h.ending.is_none() && count < 100_000 {
        h.feed(&empty);
        count += 1;
    }
    h.assert_failed_with(1008);
    assert!(count <= Config::with_origins(&["x"]).limits.max_fragments);
    assert!(h.lines.is_empty());
}

#[test]
fn row_31_invalid_utf8_split_across_frames_closes_1007_when_the_bad_byte_arrives() {
    // "é" is C3 A9; C3 followed by 'x' is invalid.
    let mut h = Harness::open();
    h.feed(&frame(TEXT, false, b"PRIVMSG #a :\xc3"));
    assert!(h.ending.is_none());
    h.feed(&frame(CONTINUATION, false, b"x"));
    h.assert_failed_with(1007);
}

#[test]
fn row_31_invalid_utf8_fails_mid_frame_before_the_frame_ends() {
    let mut h = Harness::open();
    let bytes = frame(TEXT, true, b"ok\xff and a long tail that has not arrived");
    // Header (6 bytes) + "ok\xff".
    h.feed(&bytes[..9]);
    h.assert_failed_with(1007);
}

#[test]
fn row_32_overlong_surrogate_and_out_of_range_sequences_close_1007() {
    for bad in [
        &b"\xc0\xaf"[..],
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
    ] {
        let mut h = Harness::open();
        h.feed(&frame(TEXT, true, bad));
        h.assert_failed_with(1007);
    }
}

#[test]
fn text_message_ending_inside_a_sequence_closes_1007() {
    let mut h = Harness::open();
    h.feed(&frame(TEXT, true, b"abc\xe2\x82"));
    h.assert_failed_with(1007);
}

#[test]
fn binary_messages_are_not_utf8_checked() {
    let mut h = Harness::open();
    h.feed(&frame(BINARY, true, b"PRIVMSG #a :\xff\xfe"));
    assert_eq!(h.lines, b"PRIVMSG #a :\xff\xfe\r\n");
}

#[test]
fn row_33_one_byte_close_payload_closes_1002() {
    let mut h = Harness::open();
    h.feed(&frame(CLOSE, true, &[0x03]));
    h.assert_failed_with(1002);
}

#[test]
fn row_33_invalid_close_codes_close_1002() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let mut h = Harness::open();
        h.feed(&frame(CLOSE, true, &close_payload(code, b"")));
        h.assert_failed_with(1002);
    }
}

#[test]
fn row_34_valid_close_is_echoed_and_ends_the_connection() {
    for code in [1000u16, 1001, 1003, 1007, 1011, 3000, 4999] {
        let mut h = Harness::open();
        h.feed(&frame(
            CLOSE,
            true,
            &close_payload(code, "bye ✓".as_bytes()),
        ));
        assert_eq!(h.ending, Some(Ending::ClientClosed { code: Some(code) }));
        let frames = h.sent_frames();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].opcode, CLOSE);
        assert_eq!(frames[0].payload[..2], code.to_be_bytes());
        assert!(!h.session.is_open());
    }
}

#[test]
fn empty_close_is_answered_with_an_empty_close() {
    let mut h = Harness::open();
    h.feed(&frame(CLOSE, true, b""));
    assert_eq!(h.ending, Some(Ending::ClientClosed { code: None }));
    assert_eq!(
        h.sent_frames(),
        vec![ServerFrame {
            fin: true,
            rsv: 0,
            masked: false,
            opcode: CLOSE,
            payload: Vec::new()
        }]
    );
}

#[test]
fn row_35_close_reason_with_invalid_utf8_closes_1007() {
    let mut h = Harness::open();
    h.feed(&frame(CLOSE, true, &close_payload(1000, b"\xff")));
    h.assert_failed_with(1007);
}

#[test]
fn row_36_frames_after_the_clients_close_are_ignored() {
    let mut h = Harness::open();
    let mut bytes = frame(CLOSE, true, &close_payload(1000, b""));
    bytes.extend(frame(TEXT, true, b"QUIT :sneaky"));
    h.feed(&bytes);
    h.out.clear();
    let report = h.feed(&frame(TEXT, true, b"PRIVMSG #a :later"));
    assert_eq!(
        report.consumed,
        frame(TEXT, true, b"PRIVMSG #a :later").len()
    );
    assert!(h.lines.is_empty());
    assert!(h.out.is_empty());
}

#[test]
fn row_37_ten_pings_back_to_back_get_ten_matching_pongs() {
    let mut h = Harness::open();
    let mut bytes = Vec::new();
    for i in 0..10u8 {
        bytes.extend(frame(PING, true, &[b'p', i]));
    }
    h.feed(&bytes);
    let frames = h.sent_frames();
    assert_eq!(frames.len(), 10);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.opcode, PONG);
        assert_eq!(f.payload, vec![b'p', i as u8]);
    }
    assert!(h.ending.is_none());
}

#[test]
fn row_37_a_client_pinging_every_second_is_never_limited() {
    let mut h = Harness::open();
    for _ in 0..3600 {
        h.now_ms += 1000;
        h.feed(&frame(PING, true, b"t"));
    }
    assert!(h.ending.is_none());
    assert_eq!(h.sent_frames().len(), 3600);
}

#[test]
fn row_37_sustained_ping_flood_closes_1008() {
    let mut h = Harness::open();
    let mut sent = 0;
    while h.ending.is_none() && sent < 1000 {
        h.now_ms += 10;
        h.feed(&frame(PING, true, b"flood"));
        sent += 1;
    }
    h.assert_failed_with(1008);
}

#[test]
fn row_38_unsolicited_pong_is_ignored() {
    let mut h = Harness::open();
    h.feed(&frame(PONG, true, b"whatever"));
    assert!(h.out.is_empty());
    assert!(h.ending.is_none());
    assert!(h.session.is_open());
}

#[test]
fn row_39_truncated_frame_waits_and_session_can_be_dropped() {
    let mut h = Harness::open();
    let bytes = frame(TEXT, true, b"PRIVMSG #a :cut short");
    let report = h.feed(&bytes[..3]);
    assert_eq!(report.messages, 0);
    assert!(h.ending.is_none());
    // The caller's EOF: it drops the session. Nothing panics, nothing was delivered.
    drop(h.session);
    assert!(h.lines.is_empty());
}

#[test]
fn cr_and_lf_inside_a_message_never_make_two_commands() {
    let mut h = Harness::open();
    h.feed(&frame(TEXT, true, b"PRIVMSG #a :x\r\nQUIT :y\n"));
    assert_eq!(h.lines(), "PRIVMSG #a :xQUIT :y\r\n");
    assert_eq!(h.messages, 1);
}

#[test]
fn outgoing_lines_wait_during_the_handshake_and_are_framed_after() {
    let mut h = Harness::new();
    let mut out = Vec::new();
    assert!(!h
        .session
        .send(b":server NOTICE * :hello\r\n", h.now_ms, &mut out));
    assert!(out.is_empty());
    h.feed(REQUEST);
    assert!(h.session.send(
        b":server NOTICE * :hello\r\n:server 001 a :hi\r\n",
        h.now_ms,
        &mut out
    ));
    let frames = server_frames(&out);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].payload, b":server NOTICE * :hello");
    assert_eq!(frames[0].opcode, TEXT);
}

#[test]
fn requested_close_follows_the_queued_lines() {
    let mut h = Harness::open();
    let mut out = Vec::new();
    h.session
        .request_close(ServerClose::Unload, "ignored: the unload reason is fixed");
    h.session
        .send(b"ERROR :Closing link\r\n", h.now_ms, &mut out);
    h.session.finish_send(&mut out);
    let frames = server_frames(&out);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].payload, b"ERROR :Closing link");
    assert_eq!(frames[1].opcode, CLOSE);
    assert_eq!(frames[1].payload, b"\x03\xe9WebSocket module unloading");
    assert!(!h.session.is_open());
    // Nothing more is framed after the close.
    let mut after = Vec::new();
    h.session.send(b"late\r\n", h.now_ms, &mut after);
    assert!(after.is_empty());
}

#[test]
fn binary_subprotocol_frames_lines_as_binary() {
    let mut h = Harness::new();
    let request = String::from_utf8(REQUEST.to_vec()).unwrap().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Protocol: binary.ircv3.net\r\n\r\n",
    );
    h.feed(request.as_bytes());
    let mut out = Vec::new();
    h.session.send(b"PRIVMSG a :\xff\r\n", h.now_ms, &mut out);
    assert_eq!(
        server_frames(&out),
        vec![ServerFrame {
            fin: true,
            rsv: 0,
            masked: false,
            opcode: BINARY,
            payload: b"PRIVMSG a :\xff".to_vec()
        }]
    );
}

#[test]
fn text_mode_replaces_invalid_utf8_in_outgoing_lines() {
    let mut h = Harness::open();
    let mut out = Vec::new();
    h.session.send(b"PRIVMSG a :\xff\r\n", h.now_ms, &mut out);
    let frames = server_frames(&out);
    assert_eq!(frames[0].opcode, TEXT);
    assert_eq!(frames[0].payload, "PRIVMSG a :\u{fffd}".as_bytes());
}

#[test]
fn larger_limits_allow_large_messages() {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.limits.max_message_bytes = 1 << 20;
    let mut h = Harness::open_with(config);
    let payload = vec![b'z'; 70_000];
    h.feed(&frame(BINARY, true, &payload));
    assert_eq!(h.messages, 1);
    assert_eq!(h.lines.len(), 70_002);
}

/// Everything observable about a run, to compare chunkings.
fn run_in_chunks(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>, Option<Ending>, usize) {
    let mut h = Harness::new();
    let mut start = 0;
    for &cut in cuts {
        if cut > start {
            h.feed(&bytes[start..cut]);
            start = cut;
        }
    }
    h.feed(&bytes[start..]);
    (h.lines, h.out, h.ending, h.messages)
}

fn arbitrary_client_frame() -> impl Strategy<Value = Vec<u8>> {
    let payload = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        payload.clone().prop_map(|p| frame(BINARY, true, &p)),
        "[a-zé ]{0,200}".prop_map(|s| frame(TEXT, true, s.as_bytes())),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|p| frame(PING, true, &p)),
        payload.clone().prop_map(|p| frame(BINARY, false, &p)),
        payload.prop_map(|p| frame(CONTINUATION, true, &p)),
        Just(frame(CLOSE, true, &close_payload(1000, b"bye"))),
    ]
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_lines_output_and_ending(
        frames in proptest::collection::vec(arbitrary_client_frame(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = REQUEST.to_vec();
        for f in &frames {
            bytes.extend_from_slice(f);
        }
        let whole = run_in_chunks(&bytes, &[]);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(run_in_chunks(&bytes, &cuts), whole);
    }

    #[test]
    fn random_bytes_after_the_handshake_never_panic(
        garbage in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut h = Harness::open();
        h.feed(&garbage);
        prop_assert!(h.pending.len() <= garbage.len());
    }
}

#[test]
fn row_41_empty_messages_become_empty_lines_for_the_servers_flood_control() {
    let mut h = Harness::open();
    let mut bytes = frame(TEXT, true, b"");
    bytes.extend(frame(TEXT, true, b"\r\n"));
    bytes.extend(frame(TEXT, true, b"PING x"));
    let report = h.feed(&bytes);
    assert_eq!(report.messages, 3);
    assert_eq!(h.lines(), "\r\n\r\nPING x\r\n");
}

#[test]
fn idle_client_gets_a_keepalive_ping_then_a_1001_close_if_silent() {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.ping_interval_ms = 60_000;
    let mut h = Harness::open_with(config);
    let start = h.now_ms;
    let mut out = Vec::new();
    assert_eq!(h.session.poll_keepalive(start + 59_000, &mut out), None);
    assert!(out.is_empty());
    assert_eq!(h.session.poll_keepalive(start + 60_000, &mut out), None);
    assert_eq!(
        server_frames(&out),
        vec![ServerFrame {
            fin: true,
            rsv: 0,
            masked: false,
            opcode: PING,
            payload: b"keepalive".to_vec()
        }]
    );
    out.clear();
    let ending = h.session.poll_keepalive(start + 120_000, &mut out);
    assert_eq!(
        ending,
        Some(Ending::Failed(ProtocolError::NoKeepaliveAnswer))
    );
    assert_eq!(server_frames(&out)[0].opcode, CLOSE);
    assert!(!h.session.is_open());
}

#[test]
fn any_frame_from_the_client_answers_the_keepalive() {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.ping_interval_ms = 1000;
    let mut h = Harness::open_with(config);
    let mut out = Vec::new();
    h.now_ms += 1000;
    h.session.poll_keepalive(h.now_ms, &mut out);
    assert_eq!(server_frames(&out).len(), 1);
    h.now_ms += 500;
    h.feed(&frame(PONG, true, b"keepalive"));
    out.clear();
    // 900 ms after the pong, 1400 ms after the ping: the ping counts as sending.
    h.now_ms += 400;
    assert_eq!(h.session.poll_keepalive(h.now_ms, &mut out), None);
    assert!(out.is_empty());
    assert!(h.session.is_open());
}

#[test]
fn keepalive_is_off_without_nativeping() {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.native_ping = false;
    let mut h = Harness::open_with(config);
    let mut out = Vec::new();
    assert_eq!(
        h.session.poll_keepalive(h.now_ms + 10_000_000, &mut out),
        None
    );
    assert!(out.is_empty());
}

#[test]
fn a_client_that_talks_but_is_sent_nothing_is_pinged() {
    // A proxy such as nginx (proxy_read_timeout) drops a connection the server has been
    // silent on, however much the client says.
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.ping_interval_ms = 1000;
    let mut h = Harness::open_with(config);
    let mut out = Vec::new();
    for _ in 0..4 {
        h.now_ms += 250;
        h.feed(&frame(TEXT, true, b"PRIVMSG #quiet :hello"));
        assert_eq!(h.session.poll_keepalive(h.now_ms, &mut out), None);
    }
    assert_eq!(server_frames(&out)[0].opcode, PING);
    assert_eq!(server_frames(&out).len(), 1);
}

#[test]
fn a_client_that_is_sent_lines_but_says_nothing_is_pinged() {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.ping_interval_ms = 1000;
    let mut h = Harness::open_with(config);
    let mut out = Vec::new();
    for _ in 0..4 {
        h.now_ms += 250;
        h.session
            .send(b":a PRIVMSG #busy :hi\r\n", h.now_ms, &mut Vec::new());
        assert_eq!(h.session.poll_keepalive(h.now_ms, &mut out), None);
    }
    assert_eq!(server_frames(&out)[0].opcode, PING);
}

#[test]
fn after_its_close_frame_the_server_awaits_the_clients() {
    let mut h = Harness::open();
    assert!(!h.session.awaits_close_reply());
    h.session.request_close(ServerClose::Quit, "bye");
    let mut out = Vec::new();
    h.session.finish_send(&mut out);
    assert_eq!(server_frames(&out)[0].opcode, CLOSE);
    assert!(h.session.awaits_close_reply());
    assert!(!h.session.is_open());
    // Data, pings and pongs in flight are dropped: no line, no pong, no ending.
    h.out.clear();
    let mut input = [
        frame(TEXT, true, b"PRIVMSG #a :in flight"),
        frame(PING, true, b"p"),
        frame(TEXT, false, b"frag"),
    ]
    .concat();
    let report = h.feed(&input);
    assert_eq!(report.consumed, input.len());
    assert_eq!((report.messages, report.ending), (0, None));
    assert!(h.lines.is_empty() && h.out.is_empty());
    assert!(h.session.awaits_close_reply());
    // The client's close, split across reads, completes the handshake; nothing is
    // echoed (the server's close went first).
    input = frame(CLOSE, true, &close_payload(1000, b""));
    let (first, second) = input.split_at(3);
    h.feed(&frame(CONTINUATION, true, b"ment"));
    h.feed(first);
    assert!(h.session.awaits_close_reply());
    let report = h.feed(second);
    assert_eq!(report.ending, None);
    assert!(h.out.is_empty());
    assert!(!h.session.awaits_close_reply());
}

#[test]
fn a_keepalive_timeout_awaits_the_clients_close_too() {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.ping_interval_ms = 1000;
    let mut h = Harness::open_with(config);
    let mut out = Vec::new();
    h.session.poll_keepalive(h.now_ms + 1000, &mut out);
    assert!(h
        .session
        .poll_keepalive(h.now_ms + 2000, &mut out)
        .is_some());
    assert!(h.session.awaits_close_reply());
}

#[test]
fn after_a_protocol_error_any_bytes_count_as_the_reply() {
    let mut h = Harness::open();
    let report = h.feed(&frame_with(0x81, false, b"unmasked"));
    assert!(matches!(report.ending, Some(Ending::Failed(_))));
    assert!(h.session.awaits_close_reply());
    h.feed(b"");
    assert!(h.session.awaits_close_reply());
    // Whatever it is: the stream cannot be followed after the error.
    h.feed(b"\x88");
    assert!(!h.session.awaits_close_reply());
}

#[test]
fn an_opaque_stream_ends_the_wait_at_its_first_bytes() {
    let mut h = Harness::open();
    h.session.request_close(ServerClose::Unload, "");
    h.session.finish_send(&mut Vec::new());
    h.session.close_reply_is_opaque();
    h.feed(&frame(TEXT, true, b"not a close"));
    assert!(!h.session.awaits_close_reply());
}

#[test]
fn no_close_is_awaited_after_the_clients_own_close_or_an_http_error() {
    let mut h = Harness::open();
    h.feed(&frame(CLOSE, true, &close_payload(1000, b"")));
    assert!(!h.session.awaits_close_reply());
    // Opaque or not, nothing to wait for.
    h.session.close_reply_is_opaque();
    assert!(!h.session.awaits_close_reply());

    let mut h = Harness::new();
    h.feed(b"GET / HTTP/1.0\r\n\r\n");
    assert!(h.ending.is_some());
    assert!(!h.session.awaits_close_reply());
}

// ---------------------------------------------------------------------------------------
// permessage-deflate (RFC 7692)
// ---------------------------------------------------------------------------------------

use crate::compression::zlib::{Deflater, Inflater};

const RSV1_BIT: u8 = 0x40;

fn deflate_config() -> Config {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.compression.enabled = true;
    config
}

/// The test client's request, offering permessage-deflate as browsers do.
fn deflate_request() -> Vec<u8> {
    testkit::ws::upgrade_request(
        "irc.example.com",
        "https://chat.example.com",
        &[testkit::ws::BROWSER_DEFLATE_OFFER],
    )
}

fn open_deflate() -> Harness {
    let mut h = Harness::with_config(deflate_config());
    h.feed(&deflate_request());
    let response = String::from_utf8_lossy(&h.out).into_owned();
    assert!(
        response.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
        ),
        "{response}"
    );
    assert_eq!(
        h.upgrade
            .as_ref()
            .and_then(|u| u.compression)
            .map(|a| a.server_window_bits),
        Some(crate::compression::Settings::default().window_bits)
    );
    h.out.clear();
    h
}

/// `payload` compressed as one client message (without the sync tail).
fn compressed(payload: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut deflater = Deflater::new(6, 15, 8).expect("deflater");
    assert!(deflater.compress_message(payload, &mut wire));
    wire
}

#[test]
fn compression_is_not_negotiated_unless_configured() {
    let mut h = Harness::new();
    h.feed(&deflate_request());
    assert!(!String::from_utf8_lossy(&h.out).contains("Extensions"));
    assert_eq!(h.upgrade.as_ref().map(|u| u.compression), Some(None));
}

#[test]
fn compression_is_not_answered_without_an_offer() {
    let mut h = Harness::with_config(deflate_config());
    h.feed(REQUEST);
    assert!(!String::from_utf8_lossy(&h.out).contains("Extensions"));
}

#[test]
fn a_compressed_client_message_becomes_its_line() {
    let mut h = open_deflate();
    h.feed(&frame_with(
        0x80 | RSV1_BIT | TEXT,
        true,
        &compressed(b"PRIVMSG #a :hello hello hello"),
    ));
    assert_eq!(h.lines(), "PRIVMSG #a :hello hello hello\r\n");
    // Uncompressed messages still work on the same connection.
    h.feed(&frame(TEXT, true, b"PING :x"));
    assert_eq!(h.lines(), "PRIVMSG #a :hello hello hello\r\nPING :x\r\n");
}

#[test]
fn a_fragmented_compressed_message_is_inflated_across_its_frames() {
    let mut h = open_deflate();
    let data = compressed(b"PRIVMSG #a :split across three frames");
    let (a, rest) = data.split_at(3);
    let (b, c) = rest.split_at(rest.len() / 2);
    h.feed(&frame_with(RSV1_BIT | TEXT, true, a));
    h.feed(&frame(CONTINUATION, false, b));
    h.feed(&frame(CONTINUATION, true, c));
    assert_eq!(h.lines(), "PRIVMSG #a :split across three frames\r\n");
}

#[test]
fn rsv1_on_a_continuation_or_control_frame_closes_1002() {
    let mut h = open_deflate();
    h.feed(&frame_with(RSV1_BIT | TEXT, true, &compressed(b"PING")));
    h.feed(&frame_with(0x80 | RSV1_BIT | CONTINUATION, true, b""));
    h.assert_failed_with(1002);
    let mut h = open_deflate();
    h.feed(&frame_with(0x80 | RSV1_BIT | PING, true, b""));
    h.assert_failed_with(1002);
}

#[test]
fn rsv1_without_negotiation_closes_1002() {
    let mut h = Harness::open_with(deflate_config());
    h.feed(&frame_with(
        0x80 | RSV1_BIT | TEXT,
        true,
        &compressed(b"PING :x"),
    ));
    h.assert_failed_with(1002);
}

#[test]
fn corrupt_compressed_data_closes_1007() {
    let mut h = open_deflate();
    h.feed(&frame_with(0x80 | RSV1_BIT | TEXT, true, &[0xff; 16]));
    h.assert_failed_with(1007);
}

#[test]
fn invalid_utf8_inside_compressed_text_closes_1007() {
    let mut h = open_deflate();
    h.feed(&frame_with(
        0x80 | RSV1_BIT | TEXT,
        true,
        &compressed(b"PRIVMSG #a :\xff\xfe"),
    ));
    h.assert_failed_with(1007);
}

#[test]
fn a_decompression_bomb_closes_1009_having_inflated_no_more_than_the_limit() {
    let mut config = deflate_config();
    config.limits.max_message_bytes = 16 * 1024;
    let mut h = Harness::with_config(config);
    h.feed(&deflate_request());
    h.out.clear();
    // 8 MiB of one byte compress to a few KiB.
    let bomb = compressed(&vec![b'a'; 8 << 20]);
    assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
    h.feed(&frame_with(0x80 | RSV1_BIT | BINARY, true, &bomb));
    h.assert_failed_with(1009);
    // What reached the receive queue is at most the limit, and no line ended.
    assert!(h.lines.len() <= 16 * 1024, "{}", h.lines.len());
    assert!(!h.lines.contains(&b'\n'));
}

#[test]
fn a_compressed_frame_far_longer_than_the_limit_closes_1009_from_its_header() {
    let mut config = deflate_config();
    config.limits.max_message_bytes = 1024;
    let mut h = Harness::with_config(config);
    h.feed(&deflate_request());
    h.out.clear();
    // The header alone: 1 MiB announced, nothing sent.
    let mut header = vec![0x80 | RSV1_BIT | BINARY, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&MASK);
    h.feed(&header);
    h.assert_failed_with(1009);
}

#[test]
fn server_lines_are_compressed_with_context_takeover() {
    let mut h = open_deflate();
    let line = b":nick!user@host.example.com PRIVMSG #channel :hello there\r\n";
    for _ in 0..3 {
        assert!(h.session.send(line, h.now_ms, &mut h.out));
    }
    let frames = server_frames_allowing(&h.out, RSV1_BIT);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.rsv1() && f.fin && f.opcode == TEXT));
    // The second refers back to the first.
    assert!(
        frames[1].payload.len() < frames[0].payload.len() / 2,
        "{frames:?}"
    );
    let mut inflater = Inflater::new().expect("inflater");
    for f in &frames {
        let mut text = Vec::new();
        let mut take = |p: &[u8]| {
            text.extend_from_slice(p);
            Ok::<(), ()>(())
        };
        inflater.inflate(&f.payload, &mut take).expect("inflates");
        inflater.finish_message(&mut take).expect("inflates");
        assert_eq!(text, &line[..line.len() - 2]);
    }
}

#[test]
fn short_server_lines_are_sent_uncompressed() {
    let mut h = open_deflate();
    assert!(h.session.send(b"PING :a\r\n", h.now_ms, &mut h.out));
    let frames = server_frames_allowing(&h.out, RSV1_BIT);
    assert_eq!(frames.len(), 1);
    assert!(!frames[0].rsv1());
    assert_eq!(frames[0].payload, b"PING :a");
}

/// The request with `header` added before its blank line.
fn request_with_header(header: &str) -> Vec<u8> {
    let request = std::str::from_utf8(REQUEST).unwrap();
    let head = request.strip_suffix("\r\n\r\n").unwrap();
    format!("{head}\r\n{header}\r\n\r\n").into_bytes()
}

fn behind_loopback_proxy() -> Config {
    let mut config = Config::with_origins(&["https://*.example.com"]);
    config.proxy_ranges = crate::proxy::ProxyRanges::parse("127.0.0.0/8").unwrap();
    config
}

#[test]
fn a_trusted_proxys_address_is_reported_with_a_note_for_the_log() {
    let mut h = Harness::with_config(behind_loopback_proxy());
    h.feed(&request_with_header("X-Real-IP: 192.0.2.7"));
    assert!(h.upgrade.is_some());
    let proxied = h.proxied.expect("proxied");
    assert_eq!(proxied.address, Some(("192.0.2.7".parse().unwrap(), None)));
    assert_eq!(
        proxied.note.as_deref(),
        Some("Real address of 127.0.0.1 from a trusted proxy: 192.0.2.7")
    );
    assert_eq!(proxied.secure, SecurePlan::KEEP);
}

#[test]
fn a_proxy_naming_the_peer_itself_changes_nothing() {
    for same in ["127.0.0.1", "::ffff:127.0.0.1"] {
        let mut h = Harness::with_config(behind_loopback_proxy());
        h.feed(&request_with_header(&format!("X-Forwarded-For: {same}")));
        assert!(h.upgrade.is_some());
        assert_eq!(h.proxied, None, "{same}");
    }
}

#[test]
fn disagreeing_headers_are_refused_with_a_warning_naming_proxyheader() {
    let mut h = Harness::with_config(behind_loopback_proxy());
    let mut request = request_with_header("X-Real-IP: 192.0.2.7");
    let at = request.len() - 2;
    request.splice(at..at, b"X-Forwarded-For: 192.0.2.8\r\n".iter().copied());
    h.feed(&request);
    assert_eq!(
        h.ending,
        Some(Ending::Rejected(RejectReason::ProxyHeadersDisagree))
    );
    assert!(h.out.starts_with(b"HTTP/1.1 400 "));
    let warning = h.warning.expect("a warning");
    assert!(warning.starts_with("WARNING: trusted proxy 127.0.0.1 sent X-Real-IP 192.0.2.7 and X-Forwarded-For 192.0.2.8"), "{warning}");
    assert!(warning.contains("proxyheader"), "{warning}");
}

fn behind_proxy_protocol() -> Config {
    let mut config = behind_loopback_proxy();
    config.proxy_protocol = true;
    config
}

fn proxy_v2(source: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut out = crate::proxy_protocol::V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, 0x11]);
    out.extend_from_slice(&u16::try_from(12 + tlvs.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&source);
    out.extend_from_slice(&[127, 0, 0, 1]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&8080u16.to_be_bytes());
    out.extend_from_slice(tlvs);
    out
}

/// The PROXY header, the request and a first frame, split anywhere: the address is
/// reported once, before the upgrade, and the request's own X-Real-IP is not read.
#[test]
fn a_proxy_header_gives_the_address_whatever_the_split() {
    let mut bytes = b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 8080\r\n".to_vec();
    bytes.extend(request_with_header("X-Real-IP: 203.0.113.66"));
    bytes.extend(frame(0x1, true, b"NICK x"));
    for cut in 0..bytes.len() {
        let mut h = Harness::with_config(behind_proxy_protocol());
        h.feed(&bytes[..cut]);
        h.feed(&bytes[cut..]);
        assert!(h.upgrade.is_some(), "cut {cut}: {:?}", h.ending);
        let proxied = h.proxied.clone().expect("proxied");
        assert_eq!(
            proxied.address,
            Some(("192.0.2.9".parse().unwrap(), Some(40000)))
        );
        assert_eq!(h.lines(), "NICK x\r\n");
        assert!(h.pending.is_empty());
    }
}

#[test]
fn proxy_refusals_send_nothing_and_name_the_reason() {
    let line = b"PROXY TCP4 192.0.2.9 127.0.0.1 40000 8080\r\n";
    for (config, peer, bytes, refusal) in [
        (
            behind_proxy_protocol(),
            "192.0.2.1",
            &line[..],
            Refusal::UntrustedPeer,
        ),
        (
            behind_loopback_proxy(),
            "127.0.0.1",
            line,
            Refusal::NotEnabled,
        ),
        (
            behind_proxy_protocol(),
            "127.0.0.1",
            REQUEST,
            Refusal::Missing,
        ),
        (
            behind_proxy_protocol(),
            "127.0.0.1",
            b"PROXY TCP4 1.2.3.4\r\n",
            Refusal::V1Malformed,
        ),
    ] {
        let mut h = Harness::with_config(config);
        h.session = Session::new(
            Arc::clone(&h.session.config),
            peer.parse().ok(),
            SocketKind::User,
        );
        h.feed(bytes);
        assert_eq!(
            h.ending,
            Some(Ending::ProxyRefused(refusal)),
            "{peer} {}",
            bytes.escape_ascii()
        );
        assert!(h.out.is_empty(), "sent {:?}", h.out);
        assert!(h.pending.is_empty());
        assert!(h.ending.unwrap().reason().contains(refusal.text()));
    }
}

#[test]
fn a_proxy_v2_ssl_tlv_makes_a_secure_user_on_a_loopback_or_tls_link() {
    // PP2_TYPE_SSL with the client bit, and verify.
    let ssl = [0x20, 0, 5, 0x01, 0, 0, 0, 0];
    let mut bytes = proxy_v2([192, 0, 2, 9], 1, &ssl);
    bytes.extend_from_slice(REQUEST);
    let mut h = Harness::with_config(behind_proxy_protocol());
    h.feed(&bytes);
    let secure = h.proxied.expect("proxied").secure;
    assert!(secure.set_certificate, "{secure:?}");
    // Through a TLS link, sslinfo's own rule through the WebIRC event.
    let mut h = Harness::with_config(behind_proxy_protocol());
    h.session.note_tls_below(true);
    h.feed(&bytes);
    assert_eq!(
        h.proxied.expect("proxied").secure.event_flags,
        crate::secure::EventFlags::Secure
    );
    // Without the TLV: nothing about TLS.
    let mut bytes = proxy_v2([192, 0, 2, 9], 1, &[]);
    bytes.extend_from_slice(REQUEST);
    let mut h = Harness::with_config(behind_proxy_protocol());
    h.feed(&bytes);
    assert_eq!(h.proxied.expect("proxied").secure, SecurePlan::KEEP);
}

#[test]
fn a_health_check_is_answered_and_ends_quietly() {
    let mut config = behind_loopback_proxy();
    config.health_check = Some("/health".to_owned());
    let mut h = Harness::with_config(config.clone());
    h.feed(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(h.out, HEALTH_RESPONSE);
    assert_eq!(
        h.ending,
        Some(Ending::HealthChecked {
            from_trusted_proxy: true
        })
    );
    // Behind PROXY too (HAProxy's checks send a LOCAL header).
    config.proxy_protocol = true;
    let mut h = Harness::with_config(config);
    let mut local = crate::proxy_protocol::V2_SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    local.extend_from_slice(b"GET /health HTTP/1.0\r\n\r\n");
    h.feed(&local);
    assert_eq!(h.out, HEALTH_RESPONSE);
    assert_eq!(h.proxied, None);
}

#[test]
fn row_46_a_length_not_in_its_shortest_form_closes_1002_before_the_payload() {
    // 5 in the 16-bit form, 200 in the 64-bit form: refused once the length is in.
    for header in [
        &[0x81, 0xFE, 0, 5][..],
        &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 200],
    ] {
        let mut h = Harness::open();
        h.feed(header);
        h.assert_failed_with(1002);
        assert!(h.lines.is_empty());
    }
}
