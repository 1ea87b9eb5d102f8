//! permessage-deflate (RFC 7692) from the client's side, on crates that share no code
//! with the module's compressor or its zlib: compressing a client's message (flate2),
//! reading what the server's 101 agreed to ([`Agreement`]), and inflating the server's
//! messages within the agreed window ([`Inflater`], miniz_oxide's core inflater).
//!
//! Why miniz_oxide's core and not flate2's `Decompress`: a client that agreed to a
//! window of 2^N bytes keeps only that much history, and the server must never refer
//! further back (RFC 7692 7.1.2.1). flate2's inflater always keeps 32 KiB, so it would
//! accept such a reference; miniz_oxide's core inflates into a ring buffer the caller
//! sizes, and fails a back-reference longer than that buffer ("distance out of
//! bounds"). The ring of 2^N bytes is the client's window.

use flate2::{Compress, Compression, FlushCompress};
use miniz_oxide::inflate::core::inflate_flags::TINFL_FLAG_HAS_MORE_INPUT;
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// RSV1 in a frame's first byte: the message is compressed.
pub const RSV1: u8 = 0x40;
/// RSV1 as [`crate::ws::Frame::rsv`] holds it.
pub const RSV1_LOW: u8 = 0b100;
/// What ends every compressed message, removed by the sender, put back by the receiver.
pub const SYNC_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION: &str = "permessage-deflate";
/// The largest window (and the one a server that states none may use): 2^15 bytes.
pub const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window RFC 7692 allows: 2^8 bytes.
pub const MIN_WINDOW_BITS: u8 = 8;

/// One message compressed on its own at flate2's default level (a fresh window, as a
/// client whose server asked for `client_no_context_takeover` must), the sync tail
/// removed: a frame's payload.
pub fn deflate_message(payload: &[u8]) -> Vec<u8> {
    deflate_message_level(payload, Compression::default().level())
}

/// [`deflate_message`] at compression level `level` (0 stores, 9 is the best; larger
/// values count as 9).
pub fn deflate_message_level(payload: &[u8], level: u32) -> Vec<u8> {
    let mut deflate = Compress::new(Compression::new(level.min(9)), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    loop {
        let before = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
        let rest = payload.get(before..).unwrap_or_default();
        deflate
            .compress_vec(rest, &mut out, FlushCompress::Sync)
            .expect("flate2 compresses into a Vec");
        if deflate.total_in() == payload.len() as u64 && out.ends_with(&SYNC_TAIL) {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    out.truncate(out.len() - SYNC_TAIL.len());
    out
}

/// What a server's 101 agreed to in its `Sec-WebSocket-Extensions` answer, as the
/// client reads it (RFC 7692 7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The server's window: `server_max_window_bits`, or 15 when the answer states none.
    pub server_window_bits: u8,
    /// The server compresses each message on its own.
    pub server_no_context_takeover: bool,
    /// The client must compress each message on its own.
    pub client_no_context_takeover: bool,
    /// `client_max_window_bits`, when stated.
    pub client_window_bits: Option<u8>,
}

impl Agreement {
    /// Parses one answer (`permessage-deflate; client_no_context_takeover; ...`). An
    /// unknown or repeated parameter, or a window outside 8-15, is an error: a client
    /// must fail such a connection (RFC 7692 5).
    pub fn parse(value: &str) -> Result<Agreement, String> {
        let mut parts = value.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        if !name.eq_ignore_ascii_case(EXTENSION) {
            return Err(format!("not {EXTENSION}: {value:?}"));
        }
        let mut agreed = Agreement {
            server_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            client_window_bits: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for part in parts {
            let (key, val) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (part, None),
            };
            let key = key.to_ascii_lowercase();
            if seen.contains(&key) {
                return Err(format!("{key} repeated in {value:?}"));
            }
            let bits = |v: Option<&str>| -> Result<u8, String> {
                v.and_then(|v| v.parse::<u8>().ok())
                    .filter(|b| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(b))
                    .ok_or(format!("bad {key} in {value:?}"))
            };
            match (key.as_str(), val) {
                ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
                ("server_max_window_bits", v) => agreed.server_window_bits = bits(v)?,
                ("client_max_window_bits", v) => agreed.client_window_bits = Some(bits(v)?),
                _ => return Err(format!("unknown parameter {part:?} in {value:?}")),
            }
            seen.push(key);
        }
        Ok(agreed)
    }
}

/// The receiving side of one connection: the server's raw-deflate stream, inflated in
/// a window of the agreed size, message by message (the window carried over from one
/// message to the next unless the server agreed to `server_no_context_takeover`).
pub struct Inflater {
    /// miniz_oxide's state (about 11 KiB of tables), boxed to keep the struct small.
    state: Box<DecompressorOxide>,
    /// The window: a ring buffer of 2^bits bytes.
    window: Box<[u8]>,
    /// Where the next inflated byte goes in `window`.
    pos: usize,
    fresh_each_message: bool,
    input: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// The largest window (15 bits) with context takeover: what a client must expect
    /// when the server's answer states no window.
    pub fn new() -> Inflater {
        Inflater::with_window_bits(MAX_WINDOW_BITS)
    }

    /// A window of 2^`bits` bytes (8 to 15; clamped into that range).
    pub fn with_window_bits(bits: u8) -> Inflater {
        let bits = bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Inflater {
            state: Box::default(),
            window: vec![0; 1 << bits].into_boxed_slice(),
            pos: 0,
            fresh_each_message: false,
            input: Vec::new(),
        }
    }

    /// The inflater a client keeps for what `agreed` says.
    pub fn for_agreement(agreed: &Agreement) -> Inflater {
        let mut inflater = Inflater::with_window_bits(agreed.server_window_bits);
        inflater.fresh_each_message = agreed.server_no_context_takeover;
        inflater
    }

    /// The window in bytes.
    pub fn window_len(&self) -> usize {
        self.window.len()
    }

    /// Appends the inflated payload of one compressed message (all its frames'
    /// payloads joined) to `out`. An error says what was wrong with the server's data:
    /// not deflate, a back-reference beyond the window, or a final block (BFINAL),
    /// which ends the stream RFC 7692 keeps open.
    pub fn inflate_message(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        if self.fresh_each_message {
            // A reference before the message's start then reads zeros, not history.
            self.state.init();
            self.window.fill(0);
            self.pos = 0;
        }
        self.input.clear();
        self.input.extend_from_slice(payload);
        self.input.extend_from_slice(&SYNC_TAIL);
        let mask = self.window.len() - 1;
        let mut consumed = 0;
        loop {
            let rest = self.input.get(consumed..).unwrap_or_default();
            let (status, used, written) = decompress(
                &mut self.state,
                rest,
                &mut self.window,
                self.pos,
                TINFL_FLAG_HAS_MORE_INPUT,
            );
            let produced = self
                .window
                .get(self.pos..self.pos + written)
                .ok_or("the inflater wrote past its window")?;
            out.extend_from_slice(produced);
            self.pos = (self.pos + written) & mask;
            consumed += used;
            match status {
                TINFLStatus::NeedsMoreInput if consumed == self.input.len() => return Ok(()),
                TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput
                    if used > 0 || written > 0 => {}
                TINFLStatus::Done => {
                    return Err("the server ended its deflate stream (BFINAL)".into())
                }
                other => {
                    return Err(format!(
                        "the server's deflate data does not inflate in a window of {} bytes \
                         past byte {consumed} of {} ({other:?})",
                        self.window.len(),
                        self.input.len()
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data` compressed as one stream with flate2 (32 KiB window), message by
    /// message, sync tails removed.
    fn server_stream(messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut server = Compress::new(Compression::default(), false);
        messages
            .iter()
            .map(|m| {
                let mut wire = Vec::with_capacity(m.len() + 256);
                server
                    .compress_vec(m, &mut wire, FlushCompress::Sync)
                    .expect("deflate");
                assert!(wire.ends_with(&SYNC_TAIL));
                wire.truncate(wire.len() - 4);
                wire
            })
            .collect()
    }

    #[test]
    fn messages_round_trip_through_one_stream() {
        let lines: Vec<Vec<u8>> = (0..50)
            .map(|i| {
                format!(":nick!u@host PRIVMSG #chan :message {i} ünïcödé, again and again")
                    .into_bytes()
            })
            .collect();
        let mut inflater = Inflater::new();
        for (wire, line) in server_stream(&lines).iter().zip(&lines) {
            let mut out = Vec::new();
            inflater.inflate_message(wire, &mut out).expect("inflates");
            assert_eq!(&out, line);
        }
        // A client message, alone, inflates in a fresh stream, past the window's size.
        let big = "x".repeat(100_000);
        let mut out = Vec::new();
        Inflater::new()
            .inflate_message(&deflate_message(big.as_bytes()), &mut out)
            .expect("inflates");
        assert_eq!(out, big.as_bytes());
        assert!(Inflater::new()
            .inflate_message(&[0xff, 0xff, 0xff], &mut Vec::new())
            .is_err());
    }

    #[test]
    fn a_reference_beyond_the_window_fails() {
        // 600 random-looking bytes, then the same again: the second copy refers back
        // 600 bytes, beyond a 512-byte window but within a 1024-byte one.
        let mut rng = crate::rng::Rng::new(3);
        let block: Vec<u8> = (0..600).map(|_| rng.next_u64() as u8).collect();
        let twice = [block.clone(), block].concat();
        let wire = deflate_message(&twice);
        assert!(wire.len() < 800, "the copy was not a back-reference");
        let mut out = Vec::new();
        Inflater::with_window_bits(10)
            .inflate_message(&wire, &mut out)
            .expect("inflates in 1 KiB");
        assert_eq!(out, twice);
        let e = Inflater::with_window_bits(9)
            .inflate_message(&wire, &mut Vec::new())
            .expect_err("a 600-byte distance in a 512-byte window");
        assert!(e.contains("512 bytes"), "{e}");
        // Across messages: the second message refers to the first, 600 bytes back.
        let (first, second) = twice.split_at(600);
        let wires = server_stream(&[first.to_vec(), second.to_vec()]);
        let mut small = Inflater::with_window_bits(9);
        small
            .inflate_message(&wires[0], &mut Vec::new())
            .expect("first");
        assert!(small.inflate_message(&wires[1], &mut Vec::new()).is_err());
        // And a fresh window per message refuses what context takeover allows.
        let no_takeover =
            Agreement::parse("permessage-deflate; server_no_context_takeover").expect("an answer");
        let mut fresh = Inflater::for_agreement(&no_takeover);
        fresh
            .inflate_message(&wires[0], &mut Vec::new())
            .expect("first");
        let mut out = Vec::new();
        let second_alone = fresh.inflate_message(&wires[1], &mut out);
        assert!(second_alone.is_err() || out != second, "{second_alone:?}");
    }

    #[test]
    fn agreements() {
        let a = Agreement::parse(
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10",
        )
        .expect("valid");
        assert_eq!(
            a,
            Agreement {
                server_window_bits: 10,
                server_no_context_takeover: false,
                client_no_context_takeover: true,
                client_window_bits: None,
            }
        );
        assert_eq!(Inflater::for_agreement(&a).window_len(), 1024);
        let a = Agreement::parse("permessage-deflate").expect("valid");
        assert_eq!(a.server_window_bits, 15);
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ] {
            assert!(Agreement::parse(bad).is_err(), "{bad}");
        }
    }
}
