//! Close frame payloads and close codes (RFC 6455 sections 5.5.1 and 7.4).

use super::header::MAX_CONTROL_PAYLOAD;
use crate::protocol_error::ProtocolError;

/// Close codes this implementation sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    Normal = 1000,
    GoingAway = 1001,
    ProtocolError = 1002,
    InvalidPayload = 1007,
    PolicyViolation = 1008,
    TooBig = 1009,
    InternalError = 1011,
}

impl CloseCode {
    /// The numeric code sent on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.code()
    }
}

/// Longest close reason: a control frame's payload limit minus the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// True for the codes a peer may put in a close frame: 1000-1003 and 1007-1014
/// (defined by RFC 6455 and the IANA registry), 3000-4999 (registered and private use).
/// 1004 (reserved), 1005, 1006 and 1015 (never sent on the wire), other values below
/// 3000 (unassigned) and 5000 and up are not.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses a received close payload: `Ok(None)` for an empty payload, otherwise the code
/// and the reason.
///
/// A 1-byte payload or a code that [`is_valid_close_code`] refuses is
/// [`ProtocolError::InvalidCloseCode`]; a reason that is not UTF-8 is
/// [`ProtocolError::InvalidCloseReason`]. The code is checked first.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(None)
        } else {
            Err(ProtocolError::InvalidCloseCode)
        };
    };
    let code = u16::from_be_bytes(*code);
    if !is_valid_close_code(code) {
        return Err(ProtocolError::InvalidCloseCode);
    }
    let reason =
        simdutf8::basic::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
    Ok(Some((code, reason)))
}

/// Writes a close payload (code + reason truncated at a UTF-8 boundary to fit 125 bytes).
///
/// Appends to `out`: the code as 2 big-endian bytes, then the longest prefix of
/// `reason` that is at most [`MAX_CLOSE_REASON`] (123) bytes and ends on a character
/// boundary.
pub fn encode_close_payload(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let (kept, _) = reason.split_at(end);
    out.reserve(2 + kept.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(kept.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_CODES: [CloseCode; 7] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::InvalidPayload,
        CloseCode::PolicyViolation,
        CloseCode::TooBig,
        CloseCode::InternalError,
    ];

    fn payload(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        p
    }

    #[test]
    fn empty_close_payload_has_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn code_without_reason_parses() {
        assert_eq!(parse_close_payload(&[0x03, 0xE8]), Ok(Some((1000, ""))));
    }

    #[test]
    fn code_with_reason_parses() {
        assert_eq!(
            parse_close_payload(&payload(1001, "bye ✓".as_bytes())),
            Ok(Some((1001, "bye ✓")))
        );
    }

    #[test]
    fn row33_one_byte_close_payload_is_rejected() {
        for b in [0u8, 0x03, 0xFF] {
            assert_eq!(
                parse_close_payload(&[b]),
                Err(ProtocolError::InvalidCloseCode)
            );
        }
    }

    #[test]
    fn row33_forbidden_close_codes_are_rejected() {
        for code in [
            0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1999, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(
                parse_close_payload(&payload(code, b"")),
                Err(ProtocolError::InvalidCloseCode),
                "{code}"
            );
            assert_eq!(
                parse_close_payload(&payload(code, b"reason")),
                Err(ProtocolError::InvalidCloseCode),
                "{code}"
            );
        }
    }

    #[test]
    fn row33_every_permitted_close_code_is_accepted() {
        for code in (1000..=1003).chain(1007..=1014).chain(3000..=4999) {
            assert_eq!(
                parse_close_payload(&payload(code, b"x")),
                Ok(Some((code, "x")))
            );
        }
    }

    #[test]
    fn row33_valid_close_codes_are_exactly_the_permitted_ranges() {
        let valid = (0..=u16::MAX).filter(|&c| is_valid_close_code(c)).count();
        assert_eq!(valid, 4 + 8 + 2000);
    }

    #[test]
    fn row35_close_reason_with_invalid_utf8_is_rejected() {
        for reason in [&b"\xFF"[..], b"ok\xC3", b"\xED\xA0\x80", b"\xC0\x80"] {
            assert_eq!(
                parse_close_payload(&payload(1000, reason)),
                Err(ProtocolError::InvalidCloseReason),
                "{reason:02x?}"
            );
        }
    }

    #[test]
    fn bad_code_is_reported_before_bad_reason() {
        assert_eq!(
            parse_close_payload(&payload(1005, b"\xFF")),
            Err(ProtocolError::InvalidCloseCode)
        );
    }

    #[test]
    fn close_codes_we_send_are_valid_on_the_wire() {
        for code in ALL_CODES {
            assert!(is_valid_close_code(code.code()), "{code:?}");
            assert_eq!(u16::from(code), code.code());
        }
        assert_eq!(CloseCode::ProtocolError.code(), 1002);
        assert_eq!(CloseCode::InvalidPayload.code(), 1007);
        assert_eq!(CloseCode::TooBig.code(), 1009);
    }

    #[test]
    fn encode_writes_big_endian_code_and_reason() {
        let mut out = Vec::new();
        encode_close_payload(1002, "protocol error", &mut out);
        assert_eq!(out, payload(1002, b"protocol error"));
    }

    #[test]
    fn encode_appends_to_existing_bytes() {
        let mut out = vec![0xAA];
        encode_close_payload(1000, "", &mut out);
        assert_eq!(out, [0xAA, 0x03, 0xE8]);
    }

    #[test]
    fn long_reason_is_truncated_to_123_bytes() {
        let mut out = Vec::new();
        encode_close_payload(1000, &"a".repeat(500), &mut out);
        assert_eq!(out.len(), MAX_CONTROL_PAYLOAD);
    }

    #[test]
    fn truncation_never_splits_a_character() {
        // 122 ASCII bytes then a 2-byte character: byte 123 would split it.
        let reason = format!("{}é", "a".repeat(122));
        let mut out = Vec::new();
        encode_close_payload(1000, &reason, &mut out);
        assert_eq!(out.len(), 2 + 122);
        assert_eq!(parse_close_payload(&out), Ok(Some((1000, &reason[..122]))));
        // A 4-byte character straddling the limit.
        let reason = format!("{}😀", "a".repeat(121));
        out.clear();
        encode_close_payload(1000, &reason, &mut out);
        assert_eq!(out.len(), 2 + 121);
    }

    proptest! {
        #[test]
        fn encoded_close_payload_parses_back_to_a_prefix_of_the_reason(
            code in prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999],
            reason in any::<String>(),
        ) {
            let mut out = Vec::new();
            encode_close_payload(code, &reason, &mut out);
            prop_assert!(out.len() <= MAX_CONTROL_PAYLOAD);
            let (c, r) = parse_close_payload(&out).unwrap().unwrap();
            prop_assert_eq!(c, code);
            prop_assert!(reason.starts_with(r));
            // Nothing that would fit was cut.
            if reason.len() <= MAX_CLOSE_REASON {
                prop_assert_eq!(r, reason.as_str());
            } else {
                prop_assert!(r.len() > MAX_CLOSE_REASON - 4);
            }
        }

        #[test]
        fn close_payload_parse_never_panics(data in prop::collection::vec(any::<u8>(), 0..130)) {
            match parse_close_payload(&data) {
                Ok(None) => prop_assert!(data.is_empty()),
                Ok(Some((code, reason))) => {
                    prop_assert!(is_valid_close_code(code));
                    prop_assert_eq!(reason.len() + 2, data.len());
                }
                Err(_) => {}
            }
        }
    }
}
