//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! The validation itself is `simdutf8::compat::from_utf8`, which agrees with
//! `std::str::from_utf8` and tells an invalid sequence (`error_len() == Some(_)`) from
//! one that was merely cut off by the end of the piece (`error_len() == None`). The
//! validator only keeps the at most three bytes of such a cut-off sequence and
//! completes them with the first bytes of the next piece.

use crate::protocol_error::ProtocolError;

/// Longest UTF-8 sequence.
const MAX_SEQ: usize = 4;

/// Validates a text message piece by piece, failing on the first piece that contains a
/// byte no continuation could make valid.
///
/// For any split of a message into pieces, the pieces fail exactly when
/// `std::str::from_utf8` on the message fails: `feed` fails on the piece holding the
/// first byte that no continuation can make valid (so `ED A0`, the start of a
/// surrogate, fails at once), and `finish` fails if the message ends inside a sequence.
/// After an error, and after every `finish`, the validator is ready for a new message.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    /// The start of a sequence cut off by the end of the previous piece.
    pending: [u8; MAX_SEQ],
    /// How many bytes of `pending` are in use (0 to 3); a byte, as every open
    /// connection keeps a validator.
    pending_len: u8,
}

impl Utf8Validator {
    /// Validates the next piece of the message.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        let result = self.feed_inner(piece);
        if result.is_err() {
            self.reset();
        }
        result
    }

    /// The message ended: an unfinished sequence is an error. Resets for the next message.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let complete = self.pending_len == 0;
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(ProtocolError::InvalidUtf8)
        }
    }

    /// Forgets any partial sequence, ready for a new message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// True while the bytes fed so far end inside a multi-byte sequence.
    pub fn is_incomplete(&self) -> bool {
        self.pending_len != 0
    }

    fn feed_inner(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        let mut rest = piece;
        if self.pending_len != 0 {
            // Complete the cut-off sequence with the first bytes of this piece. Four
            // bytes always decide a sequence, so only a too short piece leaves it open.
            let have = usize::from(self.pending_len);
            let (head, after) = piece.split_at(piece.len().min(MAX_SEQ - have));
            let mut joined = self.pending;
            for (slot, &byte) in joined.iter_mut().skip(have).zip(head) {
                *slot = byte;
            }
            let filled = have + head.len();
            // `head` was cut to the room left after `have`: `filled` is at most 4.
            let (joined_bytes, _) = joined.split_at(filled);
            match simdutf8::compat::from_utf8(joined_bytes) {
                Ok(_) => {
                    self.pending_len = 0;
                    rest = after;
                }
                Err(e) if e.valid_up_to() > 0 => {
                    // The pending sequence is complete (longer than `have`, and the
                    // first of the joined bytes to fail is past it); what follows it is
                    // checked again below with the rest of the piece.
                    self.pending_len = 0;
                    rest = e
                        .valid_up_to()
                        .checked_sub(have)
                        .and_then(|from| piece.get(from..))
                        .ok_or(ProtocolError::InvalidUtf8)?;
                }
                Err(e) => {
                    if e.error_len().is_some() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    // Still cut off: the whole piece was too short to finish it.
                    self.pending = joined;
                    self.pending_len = seq_len(filled);
                    return Ok(());
                }
            }
        }

        match simdutf8::compat::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(ProtocolError::InvalidUtf8),
            Err(e) => {
                // valid_up_to() is an index into `rest`, at most its length.
                let (_, tail) = rest.split_at(e.valid_up_to());
                // An incomplete sequence is at most three bytes long.
                let Some(slot) = self.pending.get_mut(..tail.len()) else {
                    return Err(ProtocolError::InvalidUtf8);
                };
                slot.copy_from_slice(tail);
                self.pending_len = seq_len(tail.len());
                Ok(())
            }
        }
    }
}

/// A length of at most [`MAX_SEQ`] bytes, as stored in `pending_len`.
fn seq_len(len: usize) -> u8 {
    #[expect(clippy::cast_possible_truncation, reason = "at most MAX_SEQ")]
    let len = len.min(MAX_SEQ) as u8;
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_pieces(pieces: &[&[u8]]) -> Result<(), ProtocolError> {
        let mut v = Utf8Validator::default();
        for p in pieces {
            v.feed(p)?;
        }
        v.finish()
    }

    /// Feeds `data` split at every pair of points and checks agreement with std.
    fn agrees_with_std_for_every_split(data: &[u8]) {
        let expected = std::str::from_utf8(data).is_ok();
        for i in 0..=data.len() {
            for j in i..=data.len() {
                let got = validate_pieces(&[&data[..i], &data[i..j], &data[j..]]).is_ok();
                assert_eq!(got, expected, "{data:02x?} split at {i}, {j}");
            }
        }
    }

    #[test]
    fn ascii_message_is_valid() {
        assert_eq!(validate_pieces(&[b"PRIVMSG #a :hi"]), Ok(()));
    }

    #[test]
    fn empty_message_and_empty_pieces_are_valid() {
        assert_eq!(validate_pieces(&[]), Ok(()));
        assert_eq!(validate_pieces(&[b"", b"", b""]), Ok(()));
    }

    #[test]
    fn multibyte_characters_split_across_pieces_are_valid() {
        let text = "é€😀 über";
        agrees_with_std_for_every_split(text.as_bytes());
    }

    #[test]
    fn four_byte_character_fed_one_byte_at_a_time_is_valid() {
        let mut v = Utf8Validator::default();
        for b in "😀".as_bytes() {
            assert_eq!(v.feed(std::slice::from_ref(b)), Ok(()));
        }
        assert!(!v.is_incomplete());
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn pending_bytes_are_completed_and_rest_of_piece_is_checked() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[b'a', 0xE2, 0x82]), Ok(()));
        assert!(v.is_incomplete());
        // Completes the euro sign, then a valid character, then an invalid byte.
        assert_eq!(
            v.feed(&[0xAC, 0xC3, 0xA9, 0xFF]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn row31_invalid_byte_fails_in_the_piece_that_carries_it() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(b"hello "), Ok(()));
        assert_eq!(v.feed(&[0xC3]), Ok(()));
        // 0x41 cannot continue C3: fail now, without waiting for the end of the message.
        assert_eq!(v.feed(&[0x41, b'x']), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn row31_invalid_utf8_is_rejected_at_every_split() {
        for bad in [
            &b"ab\xFFcd"[..],
            b"\xC3\x28",
            b"a\xE2\x82\x28",
            b"\xF0\x9F\x98",
            b"\x80",
            b"x\xBFy",
        ] {
            agrees_with_std_for_every_split(bad);
        }
    }

    #[test]
    fn row32_overlong_encodings_are_rejected() {
        for bad in [
            &b"\xC0\x80"[..],
            b"\xC1\xBF",
            b"\xE0\x80\x80",
            b"\xE0\x9F\xBF",
            b"\xF0\x80\x80\x80",
            b"\xF0\x8F\xBF\xBF",
        ] {
            assert_eq!(
                validate_pieces(&[bad]),
                Err(ProtocolError::InvalidUtf8),
                "{bad:02x?}"
            );
            agrees_with_std_for_every_split(bad);
        }
    }

    #[test]
    fn row32_surrogates_are_rejected() {
        for bad in [&b"\xED\xA0\x80"[..], b"\xED\xBF\xBF", b"\xED\xB0\x80"] {
            assert_eq!(
                validate_pieces(&[bad]),
                Err(ProtocolError::InvalidUtf8),
                "{bad:02x?}"
            );
            agrees_with_std_for_every_split(bad);
        }
    }

    #[test]
    fn row32_surrogate_fails_as_soon_as_its_second_byte_arrives() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xED]), Ok(()));
        assert_eq!(v.feed(&[0xA0]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn row32_code_points_above_u10ffff_are_rejected() {
        for bad in [
            &b"\xF4\x90\x80\x80"[..],
            b"\xF5\x80\x80\x80",
            b"\xF7\xBF\xBF\xBF",
            b"\xF8\x88\x80\x80\x80",
        ] {
            assert_eq!(
                validate_pieces(&[bad]),
                Err(ProtocolError::InvalidUtf8),
                "{bad:02x?}"
            );
            agrees_with_std_for_every_split(bad);
        }
        // F4 90 is already beyond U+10FFFF.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xF4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn largest_code_point_is_valid() {
        agrees_with_std_for_every_split("\u{10FFFF}\u{FFFF}\u{D7FF}\u{E000}".as_bytes());
    }

    #[test]
    fn message_ending_inside_a_sequence_fails_at_finish() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[b'a', 0xF0, 0x9F, 0x98]), Ok(()));
        assert_eq!(v.finish(), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn finish_resets_for_the_next_message() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xE2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(ProtocolError::InvalidUtf8));
        // The leftover E2 82 must not leak into the next message.
        assert_eq!(v.feed(b"plain"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn an_error_resets_for_the_next_message() {
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xE2, 0x82, 0xFF]), Err(ProtocolError::InvalidUtf8));
        assert!(!v.is_incomplete());
        assert_eq!(v.feed(b"ok"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    /// Byte strings that are mostly UTF-8 with some damage: whole characters, cut-off
    /// characters and stray bytes.
    fn arb_nearly_utf8() -> impl Strategy<Value = Vec<u8>> {
        let segment = prop_oneof![
            4 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
            1 => (any::<char>(), any::<prop::sample::Index>()).prop_map(|(c, i)| {
                let b = c.to_string().into_bytes();
                let cut = i.index(b.len());
                b[..cut].to_vec()
            }),
            1 => any::<u8>().prop_map(|b| vec![b]),
            1 => prop::sample::select(vec![0x80u8, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]).prop_map(|b| vec![b]),
        ];
        prop::collection::vec(segment, 0..12).prop_map(|v| v.concat())
    }

    fn split_points(len: usize, cuts: &[prop::sample::Index]) -> Vec<usize> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(len + 1)).collect();
        points.push(0);
        points.push(len);
        points.sort_unstable();
        points
    }

    /// Feeds the pieces one by one; after each piece the validator must have failed
    /// exactly when std reports a definite error (not just an early end) for the prefix.
    fn check_step_by_step(data: &[u8], points: &[usize]) -> Result<(), TestCaseError> {
        let mut v = Utf8Validator::default();
        for w in points.windows(2) {
            let got = v.feed(&data[w[0]..w[1]]);
            let definite_error =
                matches!(std::str::from_utf8(&data[..w[1]]), Err(e) if e.error_len().is_some());
            prop_assert_eq!(got.is_err(), definite_error, "prefix up to {}", w[1]);
            if got.is_err() {
                return Ok(());
            }
        }
        prop_assert_eq!(v.finish().is_ok(), std::str::from_utf8(data).is_ok());
        Ok(())
    }

    proptest! {
        #[test]
        fn incremental_validation_agrees_with_std_for_arbitrary_bytes(
            data in prop::collection::vec(any::<u8>(), 0..40),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            check_step_by_step(&data, &split_points(data.len(), &cuts))?;
        }

        #[test]
        fn incremental_validation_agrees_with_std_for_damaged_utf8(
            data in arb_nearly_utf8(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            check_step_by_step(&data, &split_points(data.len(), &cuts))?;
        }

        #[test]
        fn damaged_utf8_agrees_with_std_for_every_split(data in arb_nearly_utf8()) {
            agrees_with_std_for_every_split(&data);
        }

        #[test]
        fn valid_utf8_split_anywhere_is_accepted(
            text in any::<String>(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let data = text.as_bytes();
            let points = split_points(data.len(), &cuts);
            let mut v = Utf8Validator::default();
            for w in points.windows(2) {
                prop_assert_eq!(v.feed(&data[w[0]..w[1]]), Ok(()));
            }
            prop_assert_eq!(v.finish(), Ok(()));
        }

        #[test]
        fn validator_is_reusable_across_messages(
            first in prop::collection::vec(any::<u8>(), 0..20),
            second in any::<String>(),
        ) {
            let mut v = Utf8Validator::default();
            let _ = v.feed(&first).and_then(|()| v.finish());
            prop_assert_eq!(v.feed(second.as_bytes()), Ok(()));
            prop_assert_eq!(v.finish(), Ok(()));
        }
    }
}
