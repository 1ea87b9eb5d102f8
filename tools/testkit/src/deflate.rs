//! permessage-deflate (RFC 7692) from the client's side, on flate2 (miniz_oxide), which
//! shares no code with the module's zlib: compressing a client's message, and inflating
//! a server's messages with the window carried over from one message to the next (the
//! server keeps its context unless the client asked for `server_no_context_takeover`).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// RSV1 in a frame's first byte: the message is compressed.
pub const RSV1: u8 = 0x40;
/// RSV1 as [`crate::ws::Header::rsv`] and [`crate::ws::Frame::rsv`] hold it.
pub const RSV1_LOW: u8 = 0b100;
/// What ends every compressed message, removed by the sender, put back by the receiver.
pub const SYNC_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// One message compressed on its own (a fresh window, as a client whose server asked
/// for `client_no_context_takeover` must), the sync tail removed: a frame's payload.
pub fn deflate_message(payload: &[u8]) -> Vec<u8> {
    let mut deflate = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    loop {
        let before = deflate.total_in() as usize;
        deflate
            .compress_vec(&payload[before..], &mut out, FlushCompress::Sync)
            .expect("deflate");
        if deflate.total_in() as usize == payload.len() && out.ends_with(&SYNC_TAIL) {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    out.truncate(out.len() - SYNC_TAIL.len());
    out
}

/// The receiving side of one connection: one raw-deflate stream for all its messages.
pub struct Inflater {
    inflate: Decompress,
    input: Vec<u8>,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    pub fn new() -> Inflater {
        Inflater {
            inflate: Decompress::new(false),
            input: Vec::new(),
        }
    }

    /// Appends the inflated payload of one compressed message (all its frames' payloads
    /// joined) to `out`. An error says what was wrong with the server's data.
    pub fn inflate_message(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.input.clear();
        self.input.extend_from_slice(payload);
        self.input.extend_from_slice(&SYNC_TAIL);
        out.reserve(payload.len() * 4 + 64);
        let mut consumed = 0;
        loop {
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let status = self
                .inflate
                .decompress_vec(&self.input[consumed..], out, FlushDecompress::Sync)
                .map_err(|e| format!("the server's deflate data: {e}"))?;
            consumed += (self.inflate.total_in() - in_before) as usize;
            if status == Status::StreamEnd {
                return Err("the server ended its deflate stream (BFINAL)".into());
            }
            if consumed == self.input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            } else if out.len() == out_before && self.inflate.total_in() == in_before {
                return Err(format!(
                    "the server's deflate data does not inflate past byte {consumed} of {}",
                    self.input.len()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_one_stream() {
        // Compressed with context takeover by a zlib-style stream, as the server does.
        let mut server = Compress::new(Compression::default(), false);
        let mut inflater = Inflater::new();
        for i in 0..50 {
            let line = format!(":nick!u@host PRIVMSG #chan :message {i} ünïcödé, again and again");
            let mut wire = Vec::with_capacity(256);
            server
                .compress_vec(line.as_bytes(), &mut wire, FlushCompress::Sync)
                .unwrap();
            assert!(wire.ends_with(&SYNC_TAIL));
            wire.truncate(wire.len() - 4);
            let mut out = Vec::new();
            inflater.inflate_message(&wire, &mut out).unwrap();
            assert_eq!(out, line.as_bytes());
        }
        // And a client message, alone, inflates in a fresh stream.
        let big = "x".repeat(100_000);
        let mut out = Vec::new();
        Inflater::new()
            .inflate_message(&deflate_message(big.as_bytes()), &mut out)
            .unwrap();
        assert_eq!(out, big.as_bytes());
        assert!(Inflater::new()
            .inflate_message(&[0xff, 0xff, 0xff], &mut Vec::new())
            .is_err());
    }
}
