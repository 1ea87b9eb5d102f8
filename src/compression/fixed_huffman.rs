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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Code {
    bits: u32,
    len: u32,
}

/// The fixed literal/length codes, by symbol (RFC 1951 3.2.6).
#[expect(
    clippy::indexing_slicing,
    reason = "compile-time: out of range fails the build"
)]
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

/// A back-reference's length, which deflate says in 3 to 258 bytes: kept as
/// `length - MIN_MATCH`, so that every value of the type is one deflate can say and
/// its code is a lookup that cannot miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MatchLength(u8);

impl MatchLength {
    /// `length` must be in `MIN_MATCH..=MAX_MATCH`: the match finder looks no further
    /// than [`MAX_MATCH`] and takes no match shorter than [`MIN_MATCH`], so anything else
    /// is a bug in it, which must not reach a client as a corrupt message.
    pub fn new(length: usize) -> MatchLength {
        assert!(
            (MIN_MATCH..=MAX_MATCH).contains(&length),
            "deflate cannot say a match of {length} bytes"
        );
        #[expect(clippy::cast_possible_truncation, reason = "0..=255, checked above")]
        let offset = (length - MIN_MATCH) as u8;
        MatchLength(offset)
    }

    fn code(self) -> Code {
        #[expect(clippy::indexing_slicing, reason = "a u8 indexes a 256-entry table")]
        LENGTH_CODES[usize::from(self.0)]
    }
}

/// How far back a back-reference reaches, which deflate says in 1 to 32768 bytes: kept
/// as `distance - 1`, so that every value of the type has a distance code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MatchDistance(u16);

impl MatchDistance {
    /// `distance` must be in `1..=MAX_DISTANCE`: the match finder reaches no farther
    /// than the agreed window (at most [`MAX_DISTANCE`]) and never to the byte itself.
    pub fn new(distance: usize) -> MatchDistance {
        assert!(
            (1..=MAX_DISTANCE).contains(&distance),
            "deflate cannot say a distance of {distance} bytes"
        );
        #[expect(clippy::cast_possible_truncation, reason = "0..=32767, checked above")]
        let offset = (distance - 1) as u16;
        MatchDistance(offset)
    }

    /// The 5-bit code and the extra bits together (RFC 1951 3.2.5: codes 0-29).
    fn code(self) -> Code {
        let offset = u32::from(self.0);
        let (symbol, extra_len) = if offset < 4 {
            (offset, 0)
        } else {
            // The highest set bit picks the pair of codes, the next one the code; the
            // bits below are sent as they are. `offset` < 2^15 gives codes up to 29.
            let top = offset.ilog2();
            (2 * top + ((offset >> (top - 1)) & 1), top - 1)
        };
        let extra = offset & ((1 << extra_len) - 1);
        #[expect(clippy::indexing_slicing, reason = "codes 0-29 of 30, as above")]
        let code = DISTANCE_CODES[symbol as usize];
        Code {
            bits: code | (extra << 5),
            len: 5 + extra_len,
        }
    }
}

/// The 30 distance codes, 5 bits each, reversed.
#[expect(
    clippy::indexing_slicing,
    reason = "compile-time: out of range fails the build"
)]
const DISTANCE_CODES: [u32; 30] = {
    let mut codes = [0; 30];
    let mut symbol = 0;
    while symbol < 30 {
        codes[symbol as usize] = reversed(symbol, 5);
        symbol += 1;
    }
    codes
};

/// A match length's symbol, code and extra bits together, by `length - MIN_MATCH`
/// (RFC 1951 3.2.5: symbols 257-285; lengths 11 and up carry 1-5 extra bits).
#[expect(
    clippy::indexing_slicing,
    reason = "compile-time: out of range fails the build"
)]
const LENGTH_CODES: [Code; 256] = {
    let mut codes = [Code { bits: 0, len: 0 }; 256];
    let mut offset: u32 = 0;
    while offset as usize <= MAX_MATCH - MIN_MATCH {
        let (symbol, extra_len) = if offset < 8 {
            (257 + offset, 0)
        } else if offset as usize == MAX_MATCH - MIN_MATCH {
            (285, 0)
        } else {
            // The highest set bit picks the group of four symbols, the next two the one
            // within it; the bits below are sent as they are.
            let top = offset.ilog2();
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
            #[expect(clippy::cast_possible_truncation, reason = "the 32 oldest bits")]
            let oldest = self.pending as u32;
            self.out.extend_from_slice(&oldest.to_le_bytes());
            self.pending >>= 32;
            self.pending_len -= 32;
        }
    }

    pub fn literal(&mut self, byte: u8) {
        #[expect(clippy::indexing_slicing, reason = "a u8 indexes a 288-entry table")]
        self.put(LITERAL_LENGTH_CODES[usize::from(byte)]);
    }

    /// A back-reference (its types hold only what deflate can say).
    pub fn back_reference(&mut self, length: MatchLength, distance: MatchDistance) {
        self.put(length.code());
        self.put(distance.code());
    }

    /// Ends the block, then starts an empty stored block (BFINAL 0, BTYPE 00) and pads
    /// to a byte: a sync flush without its `00 00 ff ff`, which the receiver adds back
    /// (RFC 7692 7.2.1).
    pub fn finish(mut self) {
        self.put(LITERAL_LENGTH_CODES[END_OF_BLOCK]);
        self.put(Code { bits: 0, len: 3 });
        // Fewer than 32 bits are pending after a put: at most 4 bytes.
        let bytes = self.pending_len.div_ceil(8) as usize;
        let pending = self.pending.to_le_bytes();
        #[expect(clippy::indexing_slicing, reason = "at most 4 of 8 bytes, as above")]
        self.out.extend_from_slice(&pending[..bytes]);
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
        #[expect(
            clippy::cast_possible_truncation,
            reason = "chunks of at most u16::MAX"
        )]
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

    /// RFC 1951 3.2.5's length table: (symbol, extra bits, shortest length).
    #[rustfmt::skip]
    const RFC_LENGTHS: [(u32, u32, usize); 29] = [
        (257, 0, 3), (258, 0, 4), (259, 0, 5), (260, 0, 6), (261, 0, 7), (262, 0, 8),
        (263, 0, 9), (264, 0, 10), (265, 1, 11), (266, 1, 13), (267, 1, 15), (268, 1, 17),
        (269, 2, 19), (270, 2, 23), (271, 2, 27), (272, 2, 31), (273, 3, 35), (274, 3, 43),
        (275, 3, 51), (276, 3, 59), (277, 4, 67), (278, 4, 83), (279, 4, 99),
        (280, 4, 115), (281, 5, 131), (282, 5, 163), (283, 5, 195), (284, 5, 227),
        (285, 0, 258),
    ];

    /// RFC 1951 3.2.5's distance table: (code, extra bits, shortest distance).
    #[rustfmt::skip]
    const RFC_DISTANCES: [(u32, u32, usize); 30] = [
        (0, 0, 1), (1, 0, 2), (2, 0, 3), (3, 0, 4), (4, 1, 5), (5, 1, 7), (6, 2, 9),
        (7, 2, 13), (8, 3, 17), (9, 3, 25), (10, 4, 33), (11, 4, 49), (12, 5, 65),
        (13, 5, 97), (14, 6, 129), (15, 6, 193), (16, 7, 257), (17, 7, 385),
        (18, 8, 513), (19, 8, 769), (20, 9, 1025), (21, 9, 1537), (22, 10, 2049),
        (23, 10, 3073), (24, 11, 4097), (25, 11, 6145), (26, 12, 8193),
        (27, 12, 12289), (28, 13, 16385), (29, 13, 24577),
    ];

    /// RFC 1951 3.2.6's fixed literal/length code of `symbol`, most significant bit
    /// first: (code, bits).
    fn rfc_fixed_code(symbol: u32) -> (u32, u32) {
        match symbol {
            0..=143 => (0b0011_0000 + symbol, 8),
            144..=255 => (0b1_1001_0000 + symbol - 144, 9),
            256..=279 => (symbol - 256, 7),
            280..=287 => (0b1100_0000 + symbol - 280, 8),
            _ => panic!("no symbol {symbol}"),
        }
    }

    /// What goes in the stream, first bit lowest: the code's bits in reverse (Huffman
    /// codes go most significant bit first), then the extra bits as they are.
    fn stream_code((code, bits): (u32, u32), extra: usize, extra_bits: u32) -> Code {
        let extra = u32::try_from(extra).unwrap();
        assert!(extra < 1 << extra_bits);
        Code {
            bits: (code.reverse_bits() >> (32 - bits)) | (extra << bits),
            len: bits + extra_bits,
        }
    }

    /// The table row whose range holds `value`: the last row starting at or before it.
    fn row(table: &[(u32, u32, usize)], value: usize) -> (u32, u32, usize) {
        *table.iter().rev().find(|row| row.2 <= value).unwrap()
    }

    #[test]
    fn every_length_is_coded_as_rfc_1951_says() {
        for length in MIN_MATCH..=MAX_MATCH {
            let (symbol, extra_bits, base) = row(&RFC_LENGTHS, length);
            let expected = stream_code(rfc_fixed_code(symbol), length - base, extra_bits);
            assert_eq!(MatchLength::new(length).code(), expected, "length {length}");
        }
    }

    #[test]
    fn every_distance_is_coded_as_rfc_1951_says() {
        for distance in 1..=MAX_DISTANCE {
            let (code, extra_bits, base) = row(&RFC_DISTANCES, distance);
            let expected = stream_code((code, 5), distance - base, extra_bits);
            assert_eq!(
                MatchDistance::new(distance).code(),
                expected,
                "distance {distance}"
            );
        }
    }

    #[test]
    fn every_literal_is_coded_as_rfc_1951_says() {
        for byte in 0..=255u8 {
            let expected = stream_code(rfc_fixed_code(u32::from(byte)), 0, 0);
            assert_eq!(LITERAL_LENGTH_CODES[usize::from(byte)], expected);
        }
    }

    #[test]
    #[should_panic(expected = "deflate cannot say a match of 259 bytes")]
    fn a_match_longer_than_deflate_allows_is_a_bug() {
        MatchLength::new(MAX_MATCH + 1);
    }

    #[test]
    #[should_panic(expected = "deflate cannot say a match of 2 bytes")]
    fn a_match_shorter_than_deflate_allows_is_a_bug() {
        MatchLength::new(MIN_MATCH - 1);
    }

    #[test]
    #[should_panic(expected = "deflate cannot say a distance of 32769 bytes")]
    fn a_distance_beyond_deflate_is_a_bug() {
        MatchDistance::new(MAX_DISTANCE + 1);
    }

    #[test]
    #[should_panic(expected = "deflate cannot say a distance of 0 bytes")]
    fn a_distance_of_zero_is_a_bug() {
        MatchDistance::new(0);
    }

    /// A block of `history` as literals, then the back-references, inflated by zlib and
    /// compared with what each must copy.
    fn assert_references_inflate(history: &[u8], references: &[(usize, usize)]) {
        let mut expected = history.to_vec();
        let mut message = Vec::new();
        let mut block = FixedBlock::start(&mut message);
        for &byte in history {
            block.literal(byte);
        }
        for &(length, distance) in references {
            block.back_reference(MatchLength::new(length), MatchDistance::new(distance));
            for _ in 0..length {
                expected.push(expected[expected.len() - distance]);
            }
        }
        block.finish();
        assert_eq!(inflate(&[message]), vec![expected]);
    }

    fn varied_bytes(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
            .collect()
    }

    #[test]
    fn every_length_inflates() {
        let distances = [
            1,
            2,
            3,
            4,
            5,
            9,
            13,
            25,
            256,
            257,
            1025,
            24577,
            MAX_DISTANCE,
        ];
        let references: Vec<(usize, usize)> = (MIN_MATCH..=MAX_MATCH)
            .map(|length| (length, distances[length % distances.len()]))
            .collect();
        assert_references_inflate(&varied_bytes(MAX_DISTANCE + MAX_MATCH), &references);
    }

    #[test]
    fn every_distance_inflates() {
        let references: Vec<(usize, usize)> = (1..=MAX_DISTANCE)
            .map(|distance| (MIN_MATCH + distance % 7, distance))
            .collect();
        assert_references_inflate(&varied_bytes(MAX_DISTANCE), &references);
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
