//! Writing one deflate block with the fixed Huffman codes (RFC 1951 3.2.6), ended the
//! way a zlib sync flush ends it, minus the 4 bytes permessage-deflate leaves off.
//!
//! Written by hand because no library writes deflate symbols without also keeping a
//! whole compressor's state (see [`super::lz77`] for why the server needs that). The
//! codes are the RFC's tables; the tests check the output against zlib's inflate.

/// The literal/length alphabet's end-of-block symbol.
const END_OF_BLOCK: usize = 256;
/// Deflate's shortest and longest back-reference.
pub const MIN_MATCH: usize = 3;
pub const MAX_MATCH: usize = 258;
/// Deflate's farthest back-reference (a 15-bit window).
pub const MAX_DISTANCE: usize = 32 * 1024;

/// `code`'s `len` low bits in reverse order: Huffman codes are sent most significant bit
/// first into a stream that is otherwise filled from the least significant bit.
const fn reversed(code: u32, len: u32) -> u32 {
    let mut out = 0;
    let mut i = 0;
    while i < len {
        out |= ((code >> i) & 1) << (len - 1 - i);
        i += 1;
    }
    out
}

/// A code ready to be put in the stream: its bits (already reversed) and their count.
#[derive(Clone, Copy)]
struct Code {
    bits: u32,
    len: u32,
}

/// The fixed literal/length codes, by symbol (RFC 1951 3.2.6).
const LITERAL_LENGTH_CODES: [Code; 288] = {
    let mut codes = [Code { bits: 0, len: 0 }; 288];
    let mut symbol = 0;
    while symbol < 288 {
        let (code, len) = match symbol {
            0..=143 => (0x30 + symbol, 8),
            144..=255 => (0x190 + symbol - 144, 9),
            256..=279 => (symbol - 256, 7),
            _ => (0xc0 + symbol - 280, 8),
        };
        codes[symbol as usize] = Code {
            bits: reversed(code, len),
            len,
        };
        symbol += 1;
    }
    codes
};

/// A match length's symbol, code and extra bits together, by `length - MIN_MATCH`
/// (RFC 1951 3.2.5: symbols 257-285; lengths 11 and up carry 1-5 extra bits).
const LENGTH_CODES: [Code; MAX_MATCH - MIN_MATCH + 1] = {
    let mut codes = [Code { bits: 0, len: 0 }; MAX_MATCH - MIN_MATCH + 1];
    let mut offset: u32 = 0;
    while offset as usize <= MAX_MATCH - MIN_MATCH {
        let (symbol, extra_len) = if offset < 8 {
            (257 + offset, 0)
        } else if offset as usize == MAX_MATCH - MIN_MATCH {
            (285, 0)
        } else {
            // The highest set bit picks the group of four symbols, the next two the one
            // within it; the bits below are sent as they are.
            let top = 31 - offset.leading_zeros();
            (257 + 4 * (top - 1) + ((offset >> (top - 2)) & 3), top - 2)
        };
        let code = LITERAL_LENGTH_CODES[symbol as usize];
        let extra = offset & ((1 << extra_len) - 1);
        codes[offset as usize] = Code {
            bits: code.bits | (extra << code.len),
            len: code.len + extra_len,
        };
        offset += 1;
    }
    codes
};

/// The 30 distance codes, 5 bits each, reversed.
const DISTANCE_CODES: [u32; 30] = {
    let mut codes = [0; 30];
    let mut symbol = 0;
    while symbol < 30 {
        codes[symbol as usize] = reversed(symbol, 5);
        symbol += 1;
    }
    codes
};

/// A distance's 5-bit code and extra bits together (RFC 1951 3.2.5: codes 0-29).
fn distance_code(distance: usize) -> Code {
    let offset = distance.saturating_sub(1) as u32;
    let (symbol, extra_len) = if offset < 4 {
        (offset, 0)
    } else {
        // The highest set bit picks the pair of codes, the next one the code; the bits
        // below are sent as they are.
        let top = 31 - offset.leading_zeros();
        (2 * top + ((offset >> (top - 1)) & 1), top - 1)
    };
    let extra = offset & ((1 << extra_len) - 1);
    Code {
        bits: DISTANCE_CODES.get(symbol as usize).copied().unwrap_or(0) | (extra << 5),
        len: 5 + extra_len,
    }
}

/// One fixed-Huffman block being written at the end of `out`.
pub struct FixedBlock<'a> {
    out: &'a mut Vec<u8>,
    /// Bits not yet in `out`, the oldest in the least significant position.
    pending: u64,
    pending_len: u32,
}

impl<'a> FixedBlock<'a> {
    /// Starts a block that is not the stream's last (BFINAL 0, BTYPE 01).
    pub fn start(out: &'a mut Vec<u8>) -> FixedBlock<'a> {
        let mut block = FixedBlock {
            out,
            pending: 0,
            pending_len: 0,
        };
        block.put(Code {
            bits: 0b010,
            len: 3,
        });
        block
    }

    /// At most 31 bits at a time (the longest length code, distance code and their
    /// extra bits take 31).
    fn put(&mut self, code: Code) {
        self.pending |= u64::from(code.bits) << self.pending_len;
        self.pending_len += code.len;
        if self.pending_len >= 32 {
            self.out
                .extend_from_slice(&(self.pending as u32).to_le_bytes());
            self.pending >>= 32;
            self.pending_len -= 32;
        }
    }

    pub fn literal(&mut self, byte: u8) {
        self.put(LITERAL_LENGTH_CODES[usize::from(byte)]);
    }

    /// A back-reference: `length` in MIN_MATCH..=MAX_MATCH, `distance` in
    /// 1..=MAX_DISTANCE (the caller's match finder keeps to both).
    pub fn back_reference(&mut self, length: usize, distance: usize) {
        debug_assert!((MIN_MATCH..=MAX_MATCH).contains(&length));
        debug_assert!((1..=MAX_DISTANCE).contains(&distance));
        if let Some(&code) = LENGTH_CODES.get(length.wrapping_sub(MIN_MATCH)) {
            self.put(code);
            self.put(distance_code(distance));
        }
    }

    /// Ends the block, then starts an empty stored block (BFINAL 0, BTYPE 00) and pads
    /// to a byte: a sync flush without its `00 00 ff ff`, which the receiver adds back
    /// (RFC 7692 7.2.1).
    pub fn finish(mut self) {
        self.put(LITERAL_LENGTH_CODES[END_OF_BLOCK]);
        self.put(Code { bits: 0, len: 3 });
        let bytes = self.pending_len.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&self.pending.to_le_bytes()[..bytes]);
    }
}

/// The longest stored block (its length field has 16 bits).
const STORED_BLOCK_MAX: usize = u16::MAX as usize;

/// What [`write_stored`] adds to a message of `len` bytes.
pub fn stored_overhead(len: usize) -> usize {
    // Per block a header byte and LEN/NLEN, then the ending block's header byte.
    len.div_ceil(STORED_BLOCK_MAX) * 5 + 1
}

/// Appends `message` as stored blocks (BTYPE 00: the bytes as they are), ended like
/// [`FixedBlock::finish`]: for a message that Huffman codes would make longer. It still
/// enters the receiver's window, which a message sent uncompressed would not.
pub fn write_stored(message: &[u8], out: &mut Vec<u8>) {
    for chunk in message.chunks(STORED_BLOCK_MAX) {
        let len = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::zlib::Inflater;

    fn inflate(messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut inflater = Inflater::new().expect("inflater");
        messages
            .iter()
            .map(|message| inflater.inflate_message(message).expect("inflates"))
            .collect()
    }

    #[test]
    fn every_literal_inflates() {
        let mut message = Vec::new();
        let mut block = FixedBlock::start(&mut message);
        for byte in 0..=255u8 {
            block.literal(byte);
        }
        block.finish();
        assert_eq!(inflate(&[message]), vec![(0..=255u8).collect::<Vec<u8>>()]);
    }

    #[test]
    fn every_length_and_distance_inflates() {
        // 300 distinct-ish bytes, then for each length and a spread of distances one
        // back-reference, each checked against what it must copy.
        let history: Vec<u8> = (0..MAX_DISTANCE + MAX_MATCH)
            .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
            .collect();
        let mut expected = history.clone();
        let mut message = Vec::new();
        let mut block = FixedBlock::start(&mut message);
        for &byte in &history {
            block.literal(byte);
        }
        let distances = [
            1,
            2,
            3,
            4,
            5,
            6,
            7,
            8,
            9,
            13,
            24,
            25,
            256,
            257,
            1025,
            4096,
            24577,
            MAX_DISTANCE,
        ];
        for length in MIN_MATCH..=MAX_MATCH {
            let distance = distances[length % distances.len()];
            block.back_reference(length, distance);
            for _ in 0..length {
                expected.push(expected[expected.len() - distance]);
            }
        }
        block.finish();
        assert_eq!(inflate(&[message]), vec![expected]);
    }

    #[test]
    fn stored_blocks_inflate() {
        let long: Vec<u8> = (0..150_000u32).map(|i| ((i * 31) >> 2) as u8).collect();
        let messages: Vec<Vec<u8>> = [&b""[..], b"x", &long]
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                write_stored(m, &mut out);
                assert_eq!(out.len(), m.len() + stored_overhead(m.len()));
                out
            })
            .collect();
        assert_eq!(inflate(&messages), vec![vec![], b"x".to_vec(), long]);
    }

    #[test]
    fn an_empty_block_is_a_valid_message() {
        let mut message = Vec::new();
        FixedBlock::start(&mut message).finish();
        assert_eq!(inflate(&[message.clone(), message]), vec![vec![], vec![]]);
    }
}
