//! Frame header parsing and encoding (RFC 6455 section 5.2).
//!
//! [`FrameHeader::parse`] works like `httparse`: it looks at the bytes received so far,
//! returns `Ok(None)` when the header is not complete yet (consuming nothing), and
//! reports a protocol error as soon as the bytes that decide it have arrived, so a
//! hostile header is rejected before anything else of the frame is read or buffered.
//! Every read of the untrusted buffer goes through `get`, so no input can panic it.

use crate::protocol_error::ProtocolError;

/// Frame opcodes this implementation knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    /// True for close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }

    /// Text or binary: the opcodes that start a message.
    pub fn is_data_start(self) -> bool {
        matches!(self, OpCode::Text | OpCode::Binary)
    }

    /// The opcode for the 4-bit wire value `n`, or `None` for the reserved values
    /// 3-7 and 11-15 (and anything above 15).
    pub fn from_u8(n: u8) -> Option<OpCode> {
        match n {
            0 => Some(OpCode::Continuation),
            1 => Some(OpCode::Text),
            2 => Some(OpCode::Binary),
            8 => Some(OpCode::Close),
            9 => Some(OpCode::Ping),
            10 => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value of this opcode.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0,
            OpCode::Text => 1,
            OpCode::Binary => 2,
            OpCode::Close => 8,
            OpCode::Ping => 9,
            OpCode::Pong => 10,
        }
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// The FIN bit of a frame's first byte: the last frame of a message.
pub const FIN_BIT: u8 = 0x80;
/// The RSV1-3 bits of the first byte, for extensions.
pub const RSV_BITS: u8 = 0x70;
/// Where the RSV bits sit in the first byte.
const RSV_SHIFT: u8 = 4;
/// The opcode bits of the first byte.
pub const OPCODE_BITS: u8 = 0x0f;
/// The MASK bit of the second byte: a masking key follows the length.
pub const MASK_BIT: u8 = 0x80;
/// The 7-bit length field of the second byte.
const LENGTH_BITS: u8 = 0x7f;

/// Largest payload of a control frame (RFC 6455 section 5.5), which is also the largest
/// length the 7-bit length field holds directly.
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Length-field value announcing a 16-bit extended length.
const LEN_16: u8 = 126;
/// Length-field value announcing a 64-bit extended length.
const LEN_64: u8 = 127;
/// The top bit of a 64-bit length, which must be clear.
const LEN_64_TOP_BIT: u8 = 0x80;

impl FrameHeader {
    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are needed
    /// (nothing is consumed); `Ok(Some((header, header_len)))` otherwise.
    /// Checks only what the header alone decides and is role-neutral except that
    /// `require_mask` demands the mask bit (client-to-server frames).
    /// `allowed_rsv` is the RSV bits a negotiated extension permits (0 without one).
    ///
    /// Errors are reported as soon as the deciding bytes are present: RSV bits, the
    /// opcode and a fragmented control frame from the first byte; a missing mask and a
    /// too long control frame from the second; the top bit of a 64-bit length from the
    /// third; a length not in its shortest form once the length bytes are in (RFC 6455
    /// 5.2: "the minimal number of bytes MUST be used", as the stock module checks).
    pub fn parse(
        buf: &[u8],
        require_mask: bool,
        allowed_rsv: u8,
    ) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fin = b0 & FIN_BIT != 0;
        let rsv = (b0 & RSV_BITS) >> RSV_SHIFT;
        if rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let raw_opcode = b0 & OPCODE_BITS;
        let opcode = OpCode::from_u8(raw_opcode).ok_or(ProtocolError::UnknownOpcode(raw_opcode))?;
        if opcode.is_control() && !fin {
            return Err(ProtocolError::ControlFragmented);
        }

        let Some(&b1) = buf.get(1) else {
            return Ok(None);
        };
        let masked = b1 & MASK_BIT != 0;
        if require_mask && !masked {
            return Err(ProtocolError::Unmasked);
        }
        let len7 = b1 & LENGTH_BITS;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlTooLong);
        }

        let (payload_len, mut pos) = match len7 {
            LEN_16 => {
                let Some(bytes) = array_at::<2>(buf, 2) else {
                    return Ok(None);
                };
                let len = u16::from_be_bytes(bytes);
                if usize::from(len) <= MAX_CONTROL_PAYLOAD {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (u64::from(len), 4)
            }
            LEN_64 => {
                // The top bit is decided by the first length byte: report it at once.
                let Some(&first) = buf.get(2) else {
                    return Ok(None);
                };
                if first & LEN_64_TOP_BIT != 0 {
                    return Err(ProtocolError::LengthTopBit);
                }
                let Some(bytes) = array_at::<8>(buf, 2) else {
                    return Ok(None);
                };
                let len = u64::from_be_bytes(bytes);
                if u16::try_from(len).is_ok() {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };

        let mask = if masked {
            let Some(key) = array_at::<4>(buf, pos) else {
                return Ok(None);
            };
            pos += 4;
            Some(key)
        } else {
            None
        };

        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Encodes a header (2 to 14 bytes) into `out`, returning the number of bytes used.
    ///
    /// The length uses the minimal form; the mask key is written when `mask` is `Some`.
    /// Only the low three bits of `rsv` are used. The caller keeps `payload_len` below
    /// 2^63 (the 64-bit form's top bit must be clear) and control payloads at most 125.
    pub fn encode<'o>(&self, out: &'o mut [u8; MAX_HEADER_LEN]) -> &'o [u8] {
        let fin = if self.fin { FIN_BIT } else { 0 };
        let b0 = fin | ((self.rsv << RSV_SHIFT) & RSV_BITS) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { MASK_BIT } else { 0 };
        let (len16, len64);
        let (len_field, extended): (u8, &[u8]) = match u8::try_from(self.payload_len) {
            Ok(short) if usize::from(short) <= MAX_CONTROL_PAYLOAD => (short, &[]),
            _ => match u16::try_from(self.payload_len) {
                Ok(len) => {
                    len16 = len.to_be_bytes();
                    (LEN_16, &len16)
                }
                Err(_) => {
                    len64 = self.payload_len.to_be_bytes();
                    (LEN_64, &len64)
                }
            },
        };
        let mask: &[u8] = self.mask.as_ref().map_or(&[], |key| key);
        let parts = [&[b0, mask_bit | len_field][..], extended, mask];
        let bytes = parts.into_iter().flatten();
        // At most 2 + 8 + 4 bytes: `out` holds them all.
        let written = out
            .iter_mut()
            .zip(bytes)
            .map(|(slot, &byte)| *slot = byte)
            .count();
        let (header, _) = out.split_at(written);
        header
    }
}

/// The `N` bytes of `buf` starting at `at`, or `None` if they have not all arrived.
fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Largest header: 2 bytes + 8-byte length + 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL_OPCODES: [OpCode; 6] = [
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ];
    const UNKNOWN_OPCODES: [u8; 10] = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15];

    fn encoded(h: &FrameHeader) -> Vec<u8> {
        let mut out = [0u8; MAX_HEADER_LEN];
        h.encode(&mut out).to_vec()
    }

    fn client(opcode: OpCode, fin: bool, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin,
            rsv: 0,
            opcode,
            mask: Some([1, 2, 3, 4]),
            payload_len,
        }
    }

    // ---- plain parsing ----

    #[test]
    fn masked_text_frame_parses() {
        // RFC 6455 5.7: masked "Hello".
        let buf = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = FrameHeader::parse(&buf, true, 0).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(
            h,
            FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Text,
                mask: Some([0x37, 0xfa, 0x21, 0x3d]),
                payload_len: 5,
            }
        );
    }

    #[test]
    fn unmasked_server_frame_parses_when_mask_not_required() {
        let buf = [0x01, 0x03, b'H', b'e', b'l'];
        let (h, n) = FrameHeader::parse(&buf, false, 0).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(!h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 3);
    }

    #[test]
    fn sixteen_bit_length_parses() {
        let buf = [0x82, 0xFE, 0x01, 0x00, 9, 9, 9, 9];
        let (h, n) = FrameHeader::parse(&buf, true, 0).unwrap().unwrap();
        assert_eq!(n, 8);
        assert_eq!(h.payload_len, 256);
        assert_eq!(h.mask, Some([9, 9, 9, 9]));
    }

    #[test]
    fn sixty_four_bit_length_parses() {
        let buf = [0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        let (h, n) = FrameHeader::parse(&buf, true, 0).unwrap().unwrap();
        assert_eq!(n, 14);
        assert_eq!(h.payload_len, 1 << 32);
    }

    #[test]
    fn lengths_not_in_their_shortest_form_are_refused() {
        let refused = Err(ProtocolError::NonMinimalLength);
        // 5 and 125 in the 16-bit form; 5 and 65535 in the 64-bit form: refused as soon
        // as the length is in, before the mask key.
        for buf in [
            &[0x82, 0xFE, 0, 5][..],
            &[0x82, 0xFE, 0, 125],
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5],
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
        ] {
            assert_eq!(FrameHeader::parse(buf, true, 0), refused, "{buf:?}");
        }
        // The shortest lengths of each form are fine.
        let buf16 = [0x82, 0xFE, 0, 126, 1, 2, 3, 4];
        let (h, n) = FrameHeader::parse(&buf16, true, 0).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (126, 8));
        let buf64 = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let (h, n) = FrameHeader::parse(&buf64, true, 0).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 14));
    }

    #[test]
    fn empty_buffer_needs_more_bytes() {
        assert_eq!(FrameHeader::parse(&[], true, 0), Ok(None));
    }

    #[test]
    fn partial_headers_need_more_bytes() {
        // One byte, a missing extended length, a half mask key.
        assert_eq!(FrameHeader::parse(&[0x81], true, 0), Ok(None));
        assert_eq!(FrameHeader::parse(&[0x81, 0xFE, 0x01], true, 0), Ok(None));
        assert_eq!(
            FrameHeader::parse(&[0x81, 0xFF, 0, 0, 0], true, 0),
            Ok(None)
        );
        assert_eq!(FrameHeader::parse(&[0x81, 0x85, 1, 2], true, 0), Ok(None));
    }

    #[test]
    fn negotiated_rsv1_is_allowed() {
        let buf = [0xC1, 0x80, 1, 2, 3, 4];
        let (h, _) = FrameHeader::parse(&buf, true, 0b100).unwrap().unwrap();
        assert_eq!(h.rsv, 0b100);
        // But RSV2 is still refused when only RSV1 is negotiated.
        let buf = [0xA1, 0x80, 1, 2, 3, 4];
        assert_eq!(
            FrameHeader::parse(&buf, true, 0b100),
            Err(ProtocolError::ReservedBits)
        );
    }

    #[test]
    fn control_frame_of_exactly_125_bytes_is_accepted() {
        let h = client(OpCode::Ping, true, 125);
        let buf = encoded(&h);
        assert_eq!(FrameHeader::parse(&buf, true, 0), Ok(Some((h, 6))));
    }

    // ---- BAD_INPUT rows 22-25, 28 (header part) ----

    #[test]
    fn row22_unmasked_client_frame_is_rejected_for_every_opcode() {
        for op in ALL_OPCODES {
            let buf = [0x80 | op.as_u8(), 0x00];
            assert_eq!(
                FrameHeader::parse(&buf, true, 0),
                Err(ProtocolError::Unmasked),
                "{op:?}"
            );
        }
    }

    #[test]
    fn row22_unmasked_frame_is_rejected_from_the_second_byte() {
        // A 64-bit length announced but not yet sent: the missing mask decides already.
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7F], true, 0),
            Err(ProtocolError::Unmasked)
        );
    }

    #[test]
    fn row23_reserved_bits_without_extension_are_rejected() {
        for bit in [0x40u8, 0x20, 0x10] {
            let buf = [0x81 | bit, 0x80, 1, 2, 3, 4];
            assert_eq!(
                FrameHeader::parse(&buf, true, 0),
                Err(ProtocolError::ReservedBits),
                "{bit:#x}"
            );
        }
    }

    #[test]
    fn row23_reserved_bits_are_rejected_from_the_first_byte() {
        assert_eq!(
            FrameHeader::parse(&[0xF1], true, 0),
            Err(ProtocolError::ReservedBits)
        );
    }

    #[test]
    fn row24_unknown_opcodes_are_rejected() {
        for n in UNKNOWN_OPCODES {
            let buf = [0x80 | n, 0x80, 1, 2, 3, 4];
            assert_eq!(
                FrameHeader::parse(&buf, true, 0),
                Err(ProtocolError::UnknownOpcode(n))
            );
            // Decided by the first byte alone.
            assert_eq!(
                FrameHeader::parse(&buf[..1], true, 0),
                Err(ProtocolError::UnknownOpcode(n))
            );
        }
    }

    #[test]
    fn row25_control_frame_with_126_or_more_bytes_is_rejected() {
        for op in [OpCode::Close, OpCode::Ping, OpCode::Pong] {
            for len in [126u64, 127, 65535, 65536, 1 << 40] {
                let buf = encoded(&client(op, true, len));
                assert_eq!(
                    FrameHeader::parse(&buf, true, 0),
                    Err(ProtocolError::ControlTooLong),
                    "{op:?} {len}"
                );
                // Decided by the second byte, before any extended length arrives.
                assert_eq!(
                    FrameHeader::parse(&buf[..2], true, 0),
                    Err(ProtocolError::ControlTooLong)
                );
            }
        }
    }

    #[test]
    fn row25_fragmented_control_frame_is_rejected() {
        for op in [OpCode::Close, OpCode::Ping, OpCode::Pong] {
            let buf = encoded(&client(op, false, 0));
            assert_eq!(
                FrameHeader::parse(&buf, true, 0),
                Err(ProtocolError::ControlFragmented)
            );
            assert_eq!(
                FrameHeader::parse(&buf[..1], true, 0),
                Err(ProtocolError::ControlFragmented)
            );
        }
    }

    #[test]
    fn row25_fragmented_data_frames_are_fine_at_header_level() {
        for op in [OpCode::Continuation, OpCode::Text, OpCode::Binary] {
            let h = client(op, false, 1000);
            let buf = encoded(&h);
            assert_eq!(FrameHeader::parse(&buf, true, 0), Ok(Some((h, buf.len()))));
        }
    }

    #[test]
    fn row28_length_with_top_bit_set_is_rejected_before_payload() {
        let mut buf = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            FrameHeader::parse(&buf, true, 0),
            Err(ProtocolError::LengthTopBit)
        );
        // Decided by the first length byte, before the rest of the header.
        assert_eq!(
            FrameHeader::parse(&buf[..3], true, 0),
            Err(ProtocolError::LengthTopBit)
        );
        buf[2] = 0xFF;
        assert_eq!(
            FrameHeader::parse(&buf, true, 0),
            Err(ProtocolError::LengthTopBit)
        );
        // The largest legal length is accepted (the message limit is the session's job).
        buf[2] = 0x7F;
        buf[3..10].fill(0xFF);
        let (h, _) = FrameHeader::parse(&buf, true, 0).unwrap().unwrap();
        assert_eq!(h.payload_len, u64::MAX >> 1);
    }

    // ---- encoding ----

    #[test]
    fn encode_uses_minimal_length_forms() {
        let mut h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: None,
            payload_len: 125,
        };
        assert_eq!(encoded(&h), [0x82, 125]);
        h.payload_len = 126;
        assert_eq!(encoded(&h), [0x82, 126, 0, 126]);
        h.payload_len = 65535;
        assert_eq!(encoded(&h), [0x82, 126, 0xFF, 0xFF]);
        h.payload_len = 65536;
        assert_eq!(encoded(&h), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn encode_writes_mask_key_and_flags() {
        let h = FrameHeader {
            fin: false,
            rsv: 0b101,
            opcode: OpCode::Text,
            mask: Some([0xAA, 0xBB, 0xCC, 0xDD]),
            payload_len: 3,
        };
        assert_eq!(encoded(&h), [0x51, 0x83, 0xAA, 0xBB, 0xCC, 0xDD]);
    }

    #[test]
    fn largest_header_uses_all_fourteen_bytes() {
        let h = client(OpCode::Binary, true, u64::MAX >> 1);
        assert_eq!(encoded(&h).len(), MAX_HEADER_LEN);
    }

    #[test]
    fn opcode_wire_values_round_trip() {
        for op in ALL_OPCODES {
            assert_eq!(OpCode::from_u8(op.as_u8()), Some(op));
        }
        for n in UNKNOWN_OPCODES {
            assert_eq!(OpCode::from_u8(n), None);
        }
    }

    // ---- properties ----

    fn arb_opcode() -> impl Strategy<Value = OpCode> {
        prop::sample::select(ALL_OPCODES.to_vec())
    }

    fn arb_data_len() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(125),
            Just(126),
            Just(65535),
            Just(65536),
            0u64..=300,
            0u64..=70_000,
            0u64..=(u64::MAX >> 1),
        ]
    }

    /// Headers a peer may legally send (with every RSV bit allowed).
    fn arb_valid_header() -> impl Strategy<Value = FrameHeader> {
        (
            arb_opcode(),
            any::<bool>(),
            0u8..8,
            any::<Option<[u8; 4]>>(),
            arb_data_len(),
            0u64..=125,
        )
            .prop_map(|(opcode, fin, rsv, mask, data_len, control_len)| {
                let control = opcode.is_control();
                FrameHeader {
                    fin: fin || control,
                    rsv,
                    opcode,
                    mask,
                    payload_len: if control { control_len } else { data_len },
                }
            })
    }

    fn minimal_len(h: &FrameHeader) -> usize {
        let ext = match h.payload_len {
            0..=125 => 0,
            126..=65535 => 2,
            _ => 8,
        };
        2 + ext + if h.mask.is_some() { 4 } else { 0 }
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(h in arb_valid_header(), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
            let mut buf = encoded(&h);
            prop_assert_eq!(buf.len(), minimal_len(&h));
            let n = buf.len();
            buf.extend_from_slice(&trailing);
            let parsed = FrameHeader::parse(&buf, h.mask.is_some(), 0b111);
            prop_assert_eq!(parsed, Ok(Some((h, n))));
        }

        #[test]
        fn every_proper_prefix_of_a_header_needs_more_bytes(h in arb_valid_header()) {
            let buf = encoded(&h);
            for k in 0..buf.len() {
                prop_assert_eq!(FrameHeader::parse(&buf[..k], h.mask.is_some(), 0b111), Ok(None), "prefix {}", k);
            }
        }

        #[test]
        fn parse_of_arbitrary_bytes_never_panics_and_stays_in_bounds(
            buf in prop::collection::vec(any::<u8>(), 0..20),
            require_mask in any::<bool>(),
            allowed_rsv in 0u8..8,
        ) {
            if let Ok(Some((h, n))) = FrameHeader::parse(&buf, require_mask, allowed_rsv) {
                prop_assert!(n <= buf.len());
                prop_assert!((2..=MAX_HEADER_LEN).contains(&n));
                prop_assert!(h.payload_len >> 63 == 0);
                prop_assert!(!h.opcode.is_control() || (h.fin && h.payload_len <= 125));
                prop_assert!(h.rsv & !allowed_rsv == 0);
                prop_assert!(!require_mask || h.mask.is_some());
            }
        }

        #[test]
        fn a_parse_error_never_depends_on_later_bytes(
            buf in prop::collection::vec(any::<u8>(), 0..20),
            require_mask in any::<bool>(),
        ) {
            // Once a prefix is rejected, every longer buffer is rejected the same way.
            for k in 0..=buf.len() {
                if let Err(e) = FrameHeader::parse(&buf[..k], require_mask, 0) {
                    prop_assert_eq!(FrameHeader::parse(&buf, require_mask, 0), Err(e));
                    break;
                }
            }
        }

        #[test]
        fn encoded_headers_agree_with_tungstenite(h in arb_valid_header()) {
            use tungstenite::protocol::frame::FrameHeader as TH;
            let buf = encoded(&h);
            let mut cursor = std::io::Cursor::new(&buf);
            let (th, len) = TH::parse(&mut cursor).unwrap().unwrap();
            prop_assert_eq!(cursor.position() as usize, buf.len());
            prop_assert_eq!(len, h.payload_len);
            prop_assert_eq!(th.is_final, h.fin);
            prop_assert_eq!((th.rsv1, th.rsv2, th.rsv3), (h.rsv & 4 != 0, h.rsv & 2 != 0, h.rsv & 1 != 0));
            prop_assert_eq!(u8::from(th.opcode), h.opcode.as_u8());
            prop_assert_eq!(th.mask, h.mask);

            // And tungstenite's encoding parses back to the same header here.
            let mut theirs = Vec::new();
            th.format(len, &mut theirs).unwrap();
            prop_assert_eq!(FrameHeader::parse(&theirs, h.mask.is_some(), 0b111), Ok(Some((h, buf.len()))));
        }
    }
}
