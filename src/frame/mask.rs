//! Payload masking (RFC 6455 section 5.3).
//!
//! Hand-written because no maintained crate offers this piece on its own: masking
//! lives inside the WebSocket crates (tungstenite keeps its routine private), tied to
//! their own frame types and starting at payload offset zero, while this session
//! unmasks bytes as they arrive and so must resume in the middle of a payload. It is a
//! few lines of safe code: the key is rotated by the offset and repeated into a `u64`;
//! the payload is `XOR`ed 32 bytes per step (four independent `u64`s, which the compiler
//! turns into vector instructions), then at most one step each of 16, 8 and 4 bytes,
//! then single bytes. The `multiversion` crate compiles it a second time for AVX2 and
//! picks that copy at run time where the CPU has it: the same safe code then XORs 32
//! bytes per instruction instead of 16. `benches/codec.rs` compares it with a memcpy of
//! the same size (docs/PERFORMANCE.md).

/// XORs `buf` with `key`, where `buf` starts `offset` bytes into the payload
/// (so a payload can be unmasked in pieces as it arrives). Applying it twice is identity.
///
/// Deliberately not `#[inline]`: inlined into `Session::receive`'s frame loop it made
/// that loop slower (`benches/codec.rs`).
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as seen from buf[0]: byte i of the payload uses key[(offset + i) % 4].
    // As a little-endian u32 that is a rotation by whole bytes; repeated into a u64
    // for 8-byte steps. (Words below are read little-endian too, on any machine.)
    #[expect(clippy::cast_possible_truncation, reason = "0, 8, 16 or 24")]
    let shift = (8 * (offset % 4)) as u32;
    let key32 = u32::from_le_bytes(key).rotate_right(shift);
    let wide = u64::from(key32) * 0x1_0000_0001;
    let key = key32.to_le_bytes();

    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for word in block.chunks_exact_mut(8) {
            xor_word(word, wide);
        }
    }
    // Fewer than 32 bytes left: at most one step of each size, so a short payload
    // (most IRC lines are 50-200 bytes) costs a few branches, not a loop. Every step
    // is a multiple of 4 long, so each, and the last 0-3 bytes, start at key[0].
    let mut tail = blocks.into_remainder();
    if tail.len() >= 16 {
        let (head, rest) = tail.split_at_mut(16);
        for word in head.chunks_exact_mut(8) {
            xor_word(word, wide);
        }
        tail = rest;
    }
    if tail.len() >= 8 {
        let (head, rest) = tail.split_at_mut(8);
        xor_word(head, wide);
        tail = rest;
    }
    if tail.len() >= 4 {
        let (head, rest) = tail.split_at_mut(4);
        let mut bytes = [0; 4];
        bytes.copy_from_slice(head);
        head.copy_from_slice(&(u32::from_le_bytes(bytes) ^ key32).to_le_bytes());
        tail = rest;
    }
    for (byte, k) in tail.iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// `word ^= wide` for an 8-byte slice (callers pass exactly 8 bytes: the copies
/// panic otherwise, and compile to plain loads and stores).
#[expect(clippy::inline_always, reason = "the vector loop needs it inlined")]
#[inline(always)]
fn xor_word(word: &mut [u8], wide: u64) {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(word);
    word.copy_from_slice(&(u64::from_le_bytes(bytes) ^ wide).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition from RFC 6455 5.3, byte by byte.
    fn reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn rfc_example_hello_is_unmasked() {
        // RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
        let mut buf = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut buf, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&buf, b"Hello");
    }

    #[test]
    fn offset_rotates_the_key() {
        let mut buf = [0u8; 6];
        apply_mask(&mut buf, [1, 2, 3, 4], 1);
        assert_eq!(buf, [2, 3, 4, 1, 2, 3]);
        let mut buf = [0u8; 3];
        apply_mask(&mut buf, [1, 2, 3, 4], 7);
        assert_eq!(buf, [4, 1, 2]);
    }

    #[test]
    fn every_length_and_offset_matches_the_definition() {
        // Covers each path: 32-byte blocks, 8-byte words, the 4-byte step, single bytes.
        for len in 0..=100 {
            let original: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            for offset in 0..8 {
                let mut fast = original.clone();
                let mut slow = original.clone();
                apply_mask(&mut fast, [0x12, 0x34, 0x56, 0x78], offset);
                reference(&mut slow, [0x12, 0x34, 0x56, 0x78], offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn empty_buffer_is_left_alone() {
        let mut buf: [u8; 0] = [];
        apply_mask(&mut buf, [1, 2, 3, 4], 5);
    }

    #[test]
    fn long_buffer_matches_the_definition_at_every_offset() {
        let original: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for offset in 0..8 {
            let mut fast = original.clone();
            let mut slow = original.clone();
            apply_mask(&mut fast, [0xde, 0xad, 0xbe, 0xef], offset);
            reference(&mut slow, [0xde, 0xad, 0xbe, 0xef], offset);
            assert_eq!(fast, slow, "offset {offset}");
        }
    }

    proptest! {
        #[test]
        fn mask_matches_the_rfc_definition(
            data in prop::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let mut fast = data.clone();
            let mut slow = data;
            apply_mask(&mut fast, key, offset);
            reference(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn masking_twice_is_identity(
            data in prop::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            offset in any::<usize>(),
        ) {
            let mut buf = data.clone();
            apply_mask(&mut buf, key, offset);
            apply_mask(&mut buf, key, offset);
            prop_assert_eq!(buf, data);
        }

        #[test]
        fn masking_in_pieces_equals_masking_in_one_go(
            data in prop::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut whole = data.clone();
            apply_mask(&mut whole, key, 0);

            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.push(0);
            points.push(data.len());
            points.sort_unstable();
            let mut pieces = data;
            for w in points.windows(2) {
                apply_mask(&mut pieces[w[0]..w[1]], key, w[0]);
            }
            prop_assert_eq!(pieces, whole);
        }
    }
}
