//! Writing server frames: one unmasked FIN frame per call, header then payload.

use super::close::encode_close_payload;
use super::header::{FrameHeader, OpCode, FIN_BIT, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::sink::ByteSink;

/// RSV1 as [`FrameHeader::rsv`] holds it: a permessage-deflate message (RFC 7692).
pub const RSV1: u8 = 0b100;

/// Writes one unmasked FIN frame with `opcode` and `payload` into `out`.
#[inline]
pub fn write_frame(opcode: OpCode, payload: &[u8], out: &mut impl ByteSink) {
    write_frame_with_rsv(opcode, 0, payload, out);
}

/// [`write_frame`] with RSV bits (the low three bits of `rsv`, RSV1 = [`RSV1`]).
#[inline]
pub fn write_frame_with_rsv(opcode: OpCode, rsv: u8, payload: &[u8], out: &mut impl ByteSink) {
    // The usual IRC line fits the 2-byte header: a fixed-size write, no memcpy call.
    if let Ok(len) = u8::try_from(payload.len()) {
        if usize::from(len) <= MAX_CONTROL_PAYLOAD {
            out.put(&[FIN_BIT | ((rsv & 0b111) << 4) | opcode.as_u8(), len]);
            out.put(payload);
            return;
        }
    }
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut buf);
    out.put(buf.get(..n).unwrap_or_default());
    out.put(payload);
}

/// Writes a close frame with `code` and `reason` (cut to fit at a character boundary).
pub fn write_close_frame(code: u16, reason: &str, out: &mut impl ByteSink) {
    let mut payload = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
    encode_close_payload(code, reason, &mut payload);
    write_frame(OpCode::Close, &payload, out);
}
