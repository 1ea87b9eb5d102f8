//! The server's messages to one client, compressed: each message is LZ77-matched
//! against what this connection's client has inflated before (its window) and written
//! as one fixed-Huffman block ([`super::fixed_huffman`]).
//!
//! Why by hand and not zlib: a zlib deflate stream keeps kilobytes of Huffman-tree
//! state on top of its window and hash, and builds dynamic trees at every flush, that
//! is at every message, which cost far more memory per connection and time per line
//! (docs/PERFORMANCE.md). IRC lines are too short for dynamic trees to
//! repay their own header, so a fixed block loses little, and what a connection then
//! keeps is its window and a small hash table. Only the server's own output takes this
//! path; what clients send is inflated by zlib ([`super::zlib`]).
//!
//! Matching takes one candidate per hash bucket, with one step of lazy matching (like
//! zlib's fast levels): the next line's prefix (`:nick!ident@host PRIVMSG #channel :`)
//! finds its last occurrence, and chat words their recent ones.

use super::fixed_huffman::{
    stored_overhead, write_stored, FixedBlock, MatchDistance, MatchLength, MAX_DISTANCE, MAX_MATCH,
};

/// Bytes hashed to find a candidate; a match must be at least this long (deflate's
/// own minimum is 3, but 3-byte matches rarely beat literals with fixed codes).
const HASHED_BYTES: usize = 4;

/// A match at least this long is taken without looking for a longer one a byte later.
const LAZY_ENOUGH: usize = 32;

/// Positions inside a match entered in the table, from its start (as zlib's fast
/// levels do): the rest of a match is found again from its first bytes, and leaving
/// it out keeps older text in the table. Measured on the benchmark's burst, 4 did
/// better than 0 or 16, in bytes and in time.
const ENTERED_PER_MATCH: usize = 4;

/// The window is trimmed back to its size only once it has grown this much past it
/// (a memmove per message otherwise), as a fraction of the window: 1/8.
const TRIM_SLACK_SHIFT: u32 = 3;

/// `len` bytes as a distance in the stream's wrapping 32-bit positions.
fn stream_offset(len: usize) -> u32 {
    #[expect(clippy::cast_possible_truncation, reason = "positions wrap at 2^32")]
    let offset = len as u32;
    offset
}

/// What the client's inflater holds of this connection's compressed messages.
#[derive(Debug)]
pub struct MessageDeflater {
    /// The agreed LZ77 window in bytes: no back-reference reaches farther.
    window: usize,
    /// The most recent bytes the client inflated (at least `window` of them once that
    /// many were sent), then, while a message is compressed, the message.
    history: Vec<u8>,
    /// Stream position of `history[0]`, wrapping.
    history_start: u32,
    /// For each hash of [`HASHED_BYTES`] bytes, the stream position (its low 16 bits)
    /// where they last started. Entries may be stale or collide: a candidate is used
    /// only after its bytes are compared, so a wrong one costs a miss, never a wrong
    /// reference.
    head: Box<[u16]>,
    hash_shift: u32,
}

impl MessageDeflater {
    /// `window_bits` 8-15 (the agreed window), `hash_bits` the table's size (2 bytes
    /// per entry).
    pub fn new(window_bits: u8, hash_bits: u8) -> MessageDeflater {
        let window = (1usize << window_bits).min(MAX_DISTANCE);
        MessageDeflater {
            window,
            history: Vec::new(),
            history_start: 0,
            head: vec![0; 1 << hash_bits].into_boxed_slice(),
            hash_shift: 32 - u32::from(hash_bits),
        }
    }

    /// Appends `message` compressed to `out`, as one permessage-deflate message (without
    /// the sync flush's last 4 bytes). Where the matches found do not make up for the
    /// fixed codes' 9-bit bytes, the message goes in stored blocks (a few bytes more
    /// than it is), so that it is in the client's window all the same.
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let out_start = out.len();
        let message_start = self.history.len();
        // Exactly: doubling would leave up to twice the window in every connection.
        self.history.reserve_exact(message.len());
        self.history.extend_from_slice(message);
        let mut block = FixedBlock::start(out);
        let end = self.history.len();
        let mut at = message_start;
        // The match found at `at` (found, and `at` entered, one step early when the
        // previous position's match was passed over for it).
        let mut found = None;
        while at + HASHED_BYTES <= end {
            let Some((length, distance)) = found.take().or_else(|| self.find(at, end)) else {
                block.literal(self.byte_at(at));
                at += 1;
                continue;
            };
            // Lazy matching: a longer match starting one byte later is worth a literal.
            let looked_ahead = length < LAZY_ENOUGH && at + 1 + HASHED_BYTES <= end;
            if looked_ahead {
                if let Some(next) = self.find(at + 1, end).filter(|next| next.0 > length) {
                    block.literal(self.byte_at(at));
                    at += 1;
                    found = Some(next);
                    continue;
                }
            }
            block.back_reference(MatchLength::new(length), MatchDistance::new(distance));
            let first_not_entered = at + if looked_ahead { 2 } else { 1 };
            let entered_end = (at + 1 + ENTERED_PER_MATCH)
                .min(at + length)
                .min(end + 1 - HASHED_BYTES);
            self.enter(first_not_entered, entered_end);
            at += length;
        }
        for &byte in self.history_between(at, end) {
            block.literal(byte);
        }
        block.finish();
        if out.len() - out_start > message.len() + stored_overhead(message.len()) {
            out.truncate(out_start);
            write_stored(message, out);
        }
        self.trim();
    }

    /// Forgets everything sent so far: the next message refers to nothing before it
    /// (the client asked `server_no_context_takeover`).
    pub fn forget(&mut self) {
        self.history_start = self
            .history_start
            .wrapping_add(stream_offset(self.history.len()));
        self.history.clear();
    }

    /// Keeps only the window's worth of history once it has grown a slack past it, and
    /// gives back what a long message made the buffer grow to.
    fn trim(&mut self) {
        let slack = self.window >> TRIM_SLACK_SHIFT;
        if self.history.len() > self.window + slack {
            let dropped = self.history.len() - self.window;
            self.history.drain(..dropped);
            self.history_start = self.history_start.wrapping_add(stream_offset(dropped));
        }
        if self.history.capacity() > 2 * (self.window + slack) {
            self.history.shrink_to(self.window + slack);
        }
    }

    // Positions in this file come from the encoder's own loops over its history, never
    // from the bytes in it: one past the history is a bug in those loops, and must panic
    // (the bridge closes that connection) rather than hash or send made-up bytes.

    /// The history from `from` to `to`.
    #[expect(clippy::indexing_slicing, reason = "the encoder's own positions")]
    fn history_between(&self, from: usize, to: usize) -> &[u8] {
        &self.history[from..to]
    }

    /// The [`HASHED_BYTES`] bytes at `at`, as one number.
    #[expect(
        clippy::inline_always,
        reason = "called per byte; measured faster inlined"
    )]
    #[inline(always)]
    fn key_at(&self, at: usize) -> u32 {
        let mut key = [0; HASHED_BYTES];
        key.copy_from_slice(self.history_between(at, at + HASHED_BYTES));
        u32::from_le_bytes(key)
    }

    #[expect(clippy::indexing_slicing, reason = "the encoder's own positions")]
    fn byte_at(&self, at: usize) -> u8 {
        self.history[at]
    }

    /// The low 16 bits of `at`'s stream position: what the table keeps.
    fn table_position(&self, at: usize) -> u16 {
        #[expect(clippy::cast_possible_truncation, reason = "the low 16 bits are kept")]
        let position = self.history_start.wrapping_add(stream_offset(at)) as u16;
        position
    }

    /// Enters `at` in the table and returns the match its previous entry gives, if it
    /// is a real one of at least [`HASHED_BYTES`] within the window: (length, distance).
    #[expect(
        clippy::inline_always,
        reason = "called per byte; measured faster inlined"
    )]
    #[inline(always)]
    fn find(&mut self, at: usize, end: usize) -> Option<(usize, usize)> {
        let key = self.key_at(at);
        let slot = self.slot(key);
        let position = self.table_position(at);
        let entry = self.head.get_mut(slot)?;
        let distance = usize::from(position.wrapping_sub(*entry));
        *entry = position;
        // Most candidates are collisions or stale: their first bytes settle it.
        if distance == 0 || distance > self.window || distance > at {
            return None;
        }
        if self.key_at(at - distance) != key {
            return None;
        }
        let length = self.match_length(at - distance, at, end);
        (length >= HASHED_BYTES).then_some((length, distance))
    }

    /// Fibonacci hashing: the key's top bits after a multiply by 2^32 / phi.
    #[expect(
        clippy::inline_always,
        reason = "called per byte; measured faster inlined"
    )]
    #[inline(always)]
    fn slot(&self, key: u32) -> usize {
        (key.wrapping_mul(0x9e37_79b1) >> self.hash_shift) as usize
    }

    /// Enters positions `from..to` (each with [`HASHED_BYTES`] bytes after it).
    fn enter(&mut self, from: usize, to: usize) {
        for at in from..to {
            let slot = self.slot(self.key_at(at));
            let position = self.table_position(at);
            if let Some(entry) = self.head.get_mut(slot) {
                *entry = position;
            }
        }
    }

    /// How many bytes from `earlier` equal those from `at` (the copy may run into the
    /// bytes it produces, as deflate allows), at most [`MAX_MATCH`] and not past `end`.
    /// Eight bytes at a time: the first differing bit of their XOR ends the match.
    fn match_length(&self, earlier: usize, at: usize, end: usize) -> usize {
        let limit = MAX_MATCH.min(end - at);
        let from = self.history_between(earlier, earlier + limit);
        let here = self.history_between(at, at + limit);
        let word = |bytes: &[u8]| {
            let mut word = [0; 8];
            word.copy_from_slice(bytes);
            u64::from_le_bytes(word)
        };
        let mut length = 0;
        for (a, b) in from.chunks_exact(8).zip(here.chunks_exact(8)) {
            let differ = word(a) ^ word(b);
            if differ != 0 {
                return length + (differ.trailing_zeros() / 8) as usize;
            }
            length += 8;
        }
        let rest = from.iter().zip(here).skip(length);
        length + rest.take_while(|(a, b)| a == b).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::zlib::Inflater;

    /// A client's view: one inflater across messages (context takeover), each message
    /// inflated with the sync flush's tail put back.
    struct Client(Inflater);

    impl Client {
        fn new() -> Client {
            Client(Inflater::new().expect("inflater"))
        }
        fn receive(&mut self, compressed: &[u8]) -> Vec<u8> {
            self.0.inflate_message(compressed).expect("inflates")
        }
    }

    fn line(i: usize) -> Vec<u8> {
        format!(
            ":nick{}!~ident@cloak-{}.example.net PRIVMSG #channel :message number {} with some words\r\n",
            i % 7,
            i % 5,
            i
        )
        .into_bytes()
    }

    proptest::proptest! {
        /// Any messages, from a small alphabet so that matches of every length and
        /// distance occur, inflate to themselves through a client whose window is the
        /// agreed one.
        #[test]
        fn any_messages_round_trip_within_the_window(
            window_bits in 8u8..=15,
            hash_bits in 8u8..=14,
            forget in proptest::bool::ANY,
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&b"ab c\r\xe9"[..]), 0..1500),
                1..12,
            ),
        ) {
            let mut deflater = MessageDeflater::new(window_bits, hash_bits);
            let mut client = Client(Inflater::with_window_bits(window_bits.into()).expect("inflater"));
            for message in &messages {
                let mut out = Vec::new();
                deflater.compress(message, &mut out);
                if forget {
                    deflater.forget();
                    client = Client(Inflater::with_window_bits(window_bits.into()).expect("inflater"));
                }
                proptest::prop_assert_eq!(&client.receive(&out), message);
                proptest::prop_assert!(out.len() <= message.len() + stored_overhead(message.len()));
            }
        }
    }

    #[test]
    fn repeated_lines_round_trip_and_shrink() {
        let mut deflater = MessageDeflater::new(11, 10);
        let mut client = Client::new();
        let (mut plain, mut sent) = (0, 0);
        for i in 0..500 {
            let message = line(i);
            let mut out = Vec::new();
            deflater.compress(&message, &mut out);
            assert_eq!(client.receive(&out), message, "line {i}");
            plain += message.len();
            sent += out.len();
        }
        assert!(sent * 2 < plain, "{sent} of {plain} bytes");
    }

    #[test]
    fn an_incompressible_message_is_stored_and_still_in_the_window() {
        let mut deflater = MessageDeflater::new(9, 9);
        let mut client = Client::new();
        // Bytes of 144 and above take 9 bits each with the fixed codes.
        let mut state = 0x2545_f491u32;
        let noise: Vec<u8> = (0..200)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                0x90 | (state >> 24) as u8
            })
            .collect();
        let mut out = Vec::new();
        deflater.compress(&noise, &mut out);
        assert_eq!(out.len(), noise.len() + stored_overhead(noise.len()));
        assert_eq!(client.receive(&out), noise);
        // Sent again, it is one back-reference away.
        let mut out = Vec::new();
        deflater.compress(&noise, &mut out);
        assert!(out.len() < 10, "{} bytes", out.len());
        assert_eq!(client.receive(&out), noise);
    }

    #[test]
    fn no_reference_reaches_past_the_window() {
        // Inflated with the smallest window RFC 7692 allows (8 bits): a reference
        // farther back than 256 bytes would fail as "invalid distance too far back".
        let mut deflater = MessageDeflater::new(8, 12);
        let mut client = Client(Inflater::with_window_bits(8).expect("inflater"));
        for i in 0..300 {
            // Lines that repeat those about 600 bytes back.
            let message = line(i % 8);
            let mut out = Vec::new();
            deflater.compress(&message, &mut out);
            assert_eq!(client.receive(&out), message, "line {i}");
        }
    }

    #[test]
    fn after_forget_messages_stand_alone() {
        let mut deflater = MessageDeflater::new(15, 10);
        for i in 0..20 {
            let mut out = Vec::new();
            deflater.compress(&line(i).repeat(3), &mut out);
            deflater.forget();
            assert_eq!(Client::new().receive(&out), line(i).repeat(3));
        }
    }

    #[test]
    fn a_long_message_then_short_ones_keeps_the_buffer_small() {
        let mut deflater = MessageDeflater::new(10, 10);
        let mut client = Client::new();
        let long = line(3).repeat(2000);
        let mut out = Vec::new();
        deflater.compress(&long, &mut out);
        assert_eq!(client.receive(&out), long);
        for i in 0..10 {
            let mut out = Vec::new();
            deflater.compress(&line(i), &mut out);
            assert_eq!(client.receive(&out), line(i));
        }
        assert!(
            deflater.history.capacity() <= 2 * (1024 + 256),
            "{}",
            deflater.history.capacity()
        );
    }
}
