//! Payload masking (RFC 6455 section 5.3).
//!
//! Hand-written because no maintained crate offers this piece on its own: masking
//! lives inside the WebSocket crates (tungstenite keeps its routine private), tied to
//! their own frame types and starting at payload offset zero, while this session
//! unmasks bytes as they arrive and so must resume in the middle of a payload. It is a
//! few lines of safe code: the key is rotated by the offset, repeated into a `u64` and
//! XORed eight bytes at a time, with a scalar tail.

/// XORs `buf` with `key`, where `buf` starts `offset` bytes into the payload
/// (so a payload can be unmasked in pieces as it arrives). Applying it twice is identity.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    // The key as seen from buf[0]: byte i of the payload uses key[i % 4].
    let mut key = key;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);

    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` yields exactly 8 bytes; the fallback is never taken.
        let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) else {
            continue;
        };
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
    }
    // Every chunk is a multiple of 4 bytes long, so the tail starts at key[0] again.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
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
