//! Server-to-client framing of IRC lines.
//!
//! InspIRCd hands the hook its send queue: IRC lines, each ending in `\r\n` (or `\n`),
//! possibly with the last line still incomplete. Every complete line becomes exactly
//! one unmasked WebSocket message in a single FIN frame, with no CR or LF in it, so a
//! client never sees two commands in one message or one command in two.
use crate::compression::Compressor;
use crate::frame::{write_frame, OpCode, MAX_HEADER_LEN};
use crate::sink::ByteSink;

use super::line_scan::scan_line;

/// The frame type used for IRC lines on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageMode {
    /// Text frames; invalid UTF-8 is replaced with U+FFFD.
    Text,
    /// Binary frames; bytes pass through.
    Binary,
}

/// Most bytes of an incomplete line [`LineFramer`] keeps while waiting for its newline.
///
/// IRC lines are at most 512 bytes plus 8191 bytes of message tags, so only a broken or
/// hostile byte stream reaches this. When a further byte without a newline arrives while
/// this many bytes are pending, the pending bytes are sent as one message of their own
/// (after CR removal; in text mode a character cut at that point becomes U+FFFD) and
/// the line continues in a new message. The same rule applies whether or not the bytes
/// were buffered, so the output never depends on how the input was chunked.
pub const MAX_PENDING_LINE_BYTES: usize = 64 * 1024;

/// Turns the server's outgoing byte stream into one unmasked FIN frame per IRC line.
#[derive(Clone, Debug, Default)]
pub struct LineFramer {
    /// The incomplete trailing line waiting for its newline (at most
    /// [`MAX_PENDING_LINE_BYTES`]). InspIRCd queues whole lines, so this is almost
    /// never used; it is freed once the line is complete, so that an idle connection
    /// holds no buffer.
    pending: Vec<u8>,
}

impl LineFramer {
    /// Frames every complete line in `input` (CR/LF removed) into `out`; an incomplete
    /// trailing line is kept until a later call completes it.
    ///
    /// A line is everything up to a `\n`; every `\r` in it is dropped, wherever it is.
    /// Lines that are empty after that produce no frame. In text mode a line that is
    /// not valid UTF-8 is sent with each invalid sequence replaced by U+FFFD. See
    /// [`MAX_PENDING_LINE_BYTES`] for overlong lines.
    pub fn frame_lines(&mut self, input: &[u8], mode: MessageMode, out: &mut impl ByteSink) {
        self.frame_lines_limited(input, mode, None, out, MAX_PENDING_LINE_BYTES);
    }

    /// [`LineFramer::frame_lines`], each message through `compressor` when the
    /// connection negotiated permessage-deflate.
    pub fn frame_lines_with(
        &mut self,
        input: &[u8],
        mode: MessageMode,
        compressor: Option<&mut Compressor>,
        out: &mut impl ByteSink,
    ) {
        self.frame_lines_limited(input, mode, compressor, out, MAX_PENDING_LINE_BYTES);
    }

    /// About how many bytes of frames `line_bytes` bytes of IRC lines become: up to
    /// 125 bytes a line's 2-byte header takes the place of its CR LF, and a longer
    /// line's 4-byte header adds 2 bytes per at least 126. A size to reserve, not a
    /// bound (a line ending in a bare LF, or repaired UTF-8, takes a little more).
    pub fn framed_size_hint(line_bytes: usize) -> usize {
        line_bytes + line_bytes / 63 + MAX_HEADER_LEN
    }

    /// True while an incomplete line is waiting for its newline.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// `frame_lines` with the pending-line bound as a parameter (small in tests).
    fn frame_lines_limited(
        &mut self,
        mut input: &[u8],
        mode: MessageMode,
        mut compressor: Option<&mut Compressor>,
        out: &mut impl ByteSink,
        limit: usize,
    ) {
        // A zero bound would never make progress.
        let limit = limit.max(1);
        // The usual send-queue element is one whole line: one pass over it tells that
        // (no CR or LF before its end) along with whether it is ASCII, and such a line
        // is framed as it is.
        if self.pending.is_empty() && input.len() <= limit {
            if let Some(line) = input.strip_suffix(b"\n") {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let scan = scan_line(line);
                if !scan.cr_or_lf {
                    emit_payload(line, scan.ascii, mode, compressor, out);
                    return;
                }
            }
        }
        while !input.is_empty() {
            // Invariant: pending.len() <= limit.
            let room = limit.saturating_sub(self.pending.len());
            // Look for the newline only as far as it could still end this line, so a
            // long input without newlines is scanned once, not once per flush.
            let (window, _) = input.split_at(input.len().min(room + 1));
            match memchr::memchr(b'\n', window) {
                Some(nl) => {
                    let (line, rest) = input.split_at(nl);
                    if self.pending.is_empty() {
                        emit_line(line, mode, compressor.as_deref_mut(), out);
                    } else {
                        self.pending.extend_from_slice(line);
                        emit_line(
                            &std::mem::take(&mut self.pending),
                            mode,
                            compressor.as_deref_mut(),
                            out,
                        );
                    }
                    // `rest` starts with the newline.
                    input = rest.split_at(1).1;
                }
                None if input.len() <= room => {
                    self.pending.extend_from_slice(input);
                    return;
                }
                None => {
                    // More than `room` bytes without a newline: flush at the bound.
                    let (head, rest) = input.split_at(room);
                    if self.pending.is_empty() {
                        emit_line(head, mode, compressor.as_deref_mut(), out);
                    } else {
                        self.pending.extend_from_slice(head);
                        emit_line(
                            &std::mem::take(&mut self.pending),
                            mode,
                            compressor.as_deref_mut(),
                            out,
                        );
                    }
                    input = rest;
                }
            }
        }
    }
}

/// Sends `line` (without its `\n`) as one message: CRs removed, empty lines dropped,
/// made valid UTF-8 in text mode.
fn emit_line(
    line: &[u8],
    mode: MessageMode,
    compressor: Option<&mut Compressor>,
    out: &mut impl ByteSink,
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // One pass tells whether a CR is left inside (the line holds no LF: it ends at
    // one) and whether the line is pure ASCII (most IRC lines): such a line is valid
    // UTF-8 without asking simdutf8.
    let scan = scan_line(line);
    // A CR inside a line is rare (servers do not send one): the copy without it is
    // allocated then rather than kept in every connection.
    let without_cr: Vec<u8>;
    let payload: &[u8] = if scan.cr_or_lf {
        without_cr = line.split(|&b| b == b'\r').flatten().copied().collect();
        &without_cr
    } else {
        line
    };
    emit_payload(payload, scan.ascii, mode, compressor, out);
}

/// Sends `payload` (a line without CR or LF; `ascii` if every byte is) as one message,
/// unless it is empty: made valid UTF-8 in text mode.
#[expect(clippy::inline_always, reason = "per line of every write round")]
#[inline(always)]
fn emit_payload(
    payload: &[u8],
    ascii: bool,
    mode: MessageMode,
    compressor: Option<&mut Compressor>,
    out: &mut impl ByteSink,
) {
    if payload.is_empty() {
        return;
    }
    match mode {
        MessageMode::Binary => write_message(OpCode::Binary, payload, compressor, out),
        MessageMode::Text => {
            if ascii || simdutf8::basic::from_utf8(payload).is_ok() {
                write_message(OpCode::Text, payload, compressor, out);
            } else {
                let fixed = String::from_utf8_lossy(payload);
                write_message(OpCode::Text, fixed.as_bytes(), compressor, out);
            }
        }
    }
}

/// One message, compressed if the connection negotiated it.
#[expect(clippy::inline_always, reason = "per line of every write round")]
#[inline(always)]
fn write_message(
    opcode: OpCode,
    payload: &[u8],
    compressor: Option<&mut Compressor>,
    out: &mut impl ByteSink,
) {
    match compressor {
        Some(compressor) => compressor.write_message(opcode, payload, out),
        None => write_frame(opcode, payload, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits framer output back into (opcode, payload) with the test kit's decoder
    /// (written independently of this crate's parser), checking every frame is a
    /// complete unmasked FIN frame without RSV bits.
    fn decode(bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
        testkit::ws::decode_frames(bytes)
            .expect("whole frames")
            .into_iter()
            .map(|f| {
                assert!(f.fin, "every frame has FIN");
                assert!(!f.masked, "server frames are unmasked");
                assert_eq!(f.rsv, 0);
                (
                    OpCode::from_u8(f.opcode).expect("a known opcode"),
                    f.payload,
                )
            })
            .collect()
    }

    fn frame_all(chunks: &[&[u8]], mode: MessageMode, limit: usize) -> (Vec<u8>, LineFramer) {
        let mut framer = LineFramer::default();
        let mut out = Vec::new();
        for c in chunks {
            framer.frame_lines_limited(c, mode, None, &mut out, limit);
        }
        (out, framer)
    }

    fn payloads(chunks: &[&[u8]], mode: MessageMode) -> Vec<Vec<u8>> {
        let (out, _) = frame_all(chunks, mode, MAX_PENDING_LINE_BYTES);
        decode(&out).into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn crlf_line_becomes_one_text_frame() {
        let (out, framer) = frame_all(&[b"PING :x\r\n"], MessageMode::Text, MAX_PENDING_LINE_BYTES);
        assert_eq!(out, b"\x81\x07PING :x");
        assert!(!framer.has_pending());
    }

    #[test]
    fn lf_only_line_becomes_one_frame() {
        assert_eq!(payloads(&[b"PING :x\n"], MessageMode::Text), [b"PING :x"]);
    }

    #[test]
    fn binary_mode_uses_binary_frames() {
        let (out, _) = frame_all(&[b"PING\r\n"], MessageMode::Binary, MAX_PENDING_LINE_BYTES);
        assert_eq!(decode(&out), [(OpCode::Binary, b"PING".to_vec())]);
    }

    #[test]
    fn several_lines_in_one_call_become_several_frames() {
        assert_eq!(
            payloads(&[b"A 1\r\nB 2\nC 3\r\n"], MessageMode::Text),
            [&b"A 1"[..], b"B 2", b"C 3"]
        );
    }

    #[test]
    fn carriage_returns_anywhere_are_removed() {
        assert_eq!(payloads(&[b"\rA\rB\r\r\n"], MessageMode::Binary), [b"AB"]);
    }

    #[test]
    fn empty_lines_produce_no_frame() {
        assert_eq!(
            payloads(&[b"\r\n\n\r\r\nX\r\n\r\n"], MessageMode::Text),
            [b"X"]
        );
    }

    #[test]
    fn incomplete_line_is_kept_until_completed() {
        let mut framer = LineFramer::default();
        let mut out = Vec::new();
        framer.frame_lines(b"PRIVMSG #a :hel", MessageMode::Text, &mut out);
        assert!(out.is_empty());
        assert!(framer.has_pending());
        framer.frame_lines(b"lo\r", MessageMode::Text, &mut out);
        assert!(out.is_empty());
        framer.frame_lines(b"\nNEXT", MessageMode::Text, &mut out);
        assert_eq!(
            decode(&out),
            [(OpCode::Text, b"PRIVMSG #a :hello".to_vec())]
        );
        assert!(framer.has_pending());
        out.clear();
        framer.frame_lines(b"\n", MessageMode::Text, &mut out);
        assert_eq!(decode(&out), [(OpCode::Text, b"NEXT".to_vec())]);
        assert!(!framer.has_pending());
    }

    #[test]
    fn pending_buffer_is_freed_once_the_line_completes() {
        let mut framer = LineFramer::default();
        let mut out = Vec::new();
        framer.frame_lines(b"first partial", MessageMode::Text, &mut out);
        assert!(framer.pending.capacity() >= 13);
        framer.frame_lines(b"\n", MessageMode::Text, &mut out);
        assert_eq!(framer.pending.capacity(), 0);
        assert_eq!(decode(&out), [(OpCode::Text, b"first partial".to_vec())]);
    }

    #[test]
    fn row40_line_with_embedded_cr_is_never_two_commands() {
        // A bare CR inside a line does not end it: one message, CR dropped.
        assert_eq!(
            payloads(&[b"PRIVMSG #a :x\rQUIT\r\n"], MessageMode::Text),
            [b"PRIVMSG #a :xQUIT"]
        );
    }

    #[test]
    fn row42_invalid_utf8_is_replaced_in_text_mode() {
        let got = payloads(&[b"PRIVMSG #a :caf\xE9 \xFF\r\n"], MessageMode::Text);
        assert_eq!(got, ["PRIVMSG #a :caf\u{FFFD} \u{FFFD}".as_bytes()]);
    }

    #[test]
    fn row42_invalid_utf8_passes_through_in_binary_mode() {
        let got = payloads(&[b"PRIVMSG #a :caf\xE9\r\n"], MessageMode::Binary);
        assert_eq!(got, [b"PRIVMSG #a :caf\xE9"]);
    }

    #[test]
    fn cr_removal_happens_before_utf8_check() {
        // C3 A9 with a CR between them is a valid "é" once the CR is gone.
        assert_eq!(
            payloads(&[b"\xC3\r\xA9\r\n"], MessageMode::Text),
            ["é".as_bytes()]
        );
    }

    #[test]
    fn row43_one_line_is_exactly_one_message_without_cr_or_lf() {
        let (out, _) = frame_all(
            &[b":srv 001 nick :Welcome\r\n"],
            MessageMode::Text,
            MAX_PENDING_LINE_BYTES,
        );
        let frames = decode(&out);
        assert_eq!(frames.len(), 1);
        assert!(!frames[0].1.contains(&b'\r') && !frames[0].1.contains(&b'\n'));
    }

    #[test]
    fn write_frame_uses_minimal_headers() {
        for (len, header_len) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let mut out = Vec::new();
            write_frame(OpCode::Binary, &vec![7u8; len], &mut out);
            assert_eq!(out.len(), header_len + len, "{len}");
            assert_eq!(decode(&out), [(OpCode::Binary, vec![7u8; len])]);
        }
    }

    #[test]
    fn write_frame_writes_control_frames() {
        let mut out = Vec::new();
        write_frame(OpCode::Pong, b"abc", &mut out);
        assert_eq!(out, b"\x8A\x03abc");
    }

    #[test]
    fn long_line_without_newline_is_flushed_at_the_bound() {
        let mut framer = LineFramer::default();
        let mut out = Vec::new();
        let big = vec![b'a'; MAX_PENDING_LINE_BYTES + 10];
        framer.frame_lines(&big, MessageMode::Text, &mut out);
        assert_eq!(
            decode(&out),
            [(OpCode::Text, vec![b'a'; MAX_PENDING_LINE_BYTES])]
        );
        assert_eq!(framer.pending.len(), 10);
        out.clear();
        framer.frame_lines(b"b\r\n", MessageMode::Text, &mut out);
        let mut rest = vec![b'a'; 10];
        rest.push(b'b');
        assert_eq!(decode(&out), [(OpCode::Text, rest)]);
    }

    #[test]
    fn line_of_exactly_the_bound_is_one_message() {
        let mut input = vec![b'a'; MAX_PENDING_LINE_BYTES];
        input.push(b'\n');
        for chunks in [vec![&input[..]], vec![&input[..100], &input[100..]]] {
            let (out, framer) = frame_all(&chunks, MessageMode::Binary, MAX_PENDING_LINE_BYTES);
            assert_eq!(
                decode(&out),
                [(OpCode::Binary, vec![b'a'; MAX_PENDING_LINE_BYTES])]
            );
            assert!(!framer.has_pending());
        }
    }

    #[test]
    fn pending_line_never_exceeds_the_bound() {
        let mut framer = LineFramer::default();
        let mut out = Vec::new();
        for _ in 0..100 {
            framer.frame_lines(&[b'x'; 1000], MessageMode::Binary, &mut out);
            assert!(framer.pending.len() <= MAX_PENDING_LINE_BYTES);
        }
    }

    /// The model: split on LF, drop CRs, skip empty lines, then cut every line
    /// (counting raw bytes, CRs included) into pieces of at most `limit` bytes, the
    /// last piece of a complete line may be exactly `limit` long.
    fn model(input: &[u8], limit: usize) -> Vec<Vec<u8>> {
        let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let incomplete = segments.pop().unwrap_or(&[]);
        let mut frames = Vec::new();
        let mut push = |raw: &[u8]| {
            let p: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
            if !p.is_empty() {
                frames.push(p);
            }
        };
        for mut line in segments {
            while line.len() > limit {
                push(&line[..limit]);
                line = &line[limit..];
            }
            push(line);
        }
        let mut line = incomplete;
        while line.len() > limit {
            push(&line[..limit]);
            line = &line[limit..];
        }
        frames
    }

    fn arb_irc_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            6 => prop::sample::select(b"abc :#".to_vec()),
            2 => Just(b'\n'),
            2 => Just(b'\r'),
            1 => any::<u8>(),
        ];
        let segment = prop_oneof![
            4 => byte.prop_map(|b| vec![b]),
            1 => any::<String>().prop_map(String::into_bytes),
        ];
        prop::collection::vec(segment, 0..60).prop_map(|v| v.concat())
    }

    fn chunked<'a>(input: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.push(0);
        points.push(input.len());
        points.sort_unstable();
        points.windows(2).map(|w| &input[w[0]..w[1]]).collect()
    }

    fn arb_mode() -> impl Strategy<Value = MessageMode> {
        prop_oneof![Just(MessageMode::Text), Just(MessageMode::Binary)]
    }

    proptest! {
        #[test]
        fn framed_size_hint_holds_the_frames_of_crlf_lines(
            lengths in proptest::collection::vec(1usize..70_000, 1..12),
        ) {
            let input: Vec<u8> = lengths
                .iter()
                .flat_map(|&len| std::iter::repeat_n(b'x', len).chain(*b"\r\n"))
                .collect();
            let mut out = Vec::new();
            LineFramer::default().frame_lines(&input, MessageMode::Text, &mut out);
            prop_assert!(out.len() <= LineFramer::framed_size_hint(input.len()));
        }

        #[test]
        fn output_is_independent_of_input_chunking(
            input in arb_irc_bytes(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            mode in arb_mode(),
            limit in prop_oneof![Just(MAX_PENDING_LINE_BYTES), 1usize..12],
        ) {
            let (whole, whole_framer) = frame_all(&[&input], mode, limit);
            let (pieces, piece_framer) = frame_all(&chunked(&input, &cuts), mode, limit);
            prop_assert_eq!(&whole, &pieces);
            prop_assert_eq!(whole_framer.pending, piece_framer.pending);
        }

        #[test]
        fn binary_output_matches_the_line_model(
            input in arb_irc_bytes(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            limit in prop_oneof![Just(MAX_PENDING_LINE_BYTES), 1usize..12],
        ) {
            let (out, framer) = frame_all(&chunked(&input, &cuts), MessageMode::Binary, limit);
            let got: Vec<Vec<u8>> = decode(&out).into_iter().map(|(op, p)| {
                assert_eq!(op, OpCode::Binary);
                p
            }).collect();
            prop_assert_eq!(got, model(&input, limit));
            prop_assert!(framer.pending.len() <= limit);
            let trailing = input.rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
            prop_assert_eq!(framer.has_pending(), !trailing.is_empty());
        }

        #[test]
        fn text_mode_payloads_are_valid_utf8_without_cr_or_lf(
            input in arb_irc_bytes(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            limit in prop_oneof![Just(MAX_PENDING_LINE_BYTES), 1usize..12],
        ) {
            let (out, _) = frame_all(&chunked(&input, &cuts), MessageMode::Text, limit);
            let frames = decode(&out);
            let expected = model(&input, limit);
            prop_assert_eq!(frames.len(), expected.len());
            for ((op, payload), raw) in frames.iter().zip(&expected) {
                prop_assert_eq!(*op, OpCode::Text);
                prop_assert!(std::str::from_utf8(payload).is_ok());
                prop_assert!(!payload.is_empty());
                prop_assert!(!payload.contains(&b'\r') && !payload.contains(&b'\n'));
                let fixed = String::from_utf8_lossy(raw);
                prop_assert_eq!(payload.as_slice(), fixed.as_bytes());
            }
        }
    }
}
