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
#[expect(clippy::inline_always, reason = "per message of every write round")]
#[inline(always)]
pub fn write_frame_with_rsv(opcode: OpCode, rsv: u8, payload: &[u8], out: &mut impl ByteSink) {
    // The usual IRC line fits the 2-byte header: a fixed-size write, no memcpy call.
    match short_header(opcode, rsv, payload.len()) {
        Some(header) => {
            out.put(&header);
            out.put(payload);
        }
        None => write_long_frame(opcode, rsv, payload, out),
    }
}

/// The 2-byte header of an unmasked FIN frame whose payload is `len` bytes long, when
/// it fits one (up to 125 bytes); RSV bits as in [`write_frame_with_rsv`].
#[expect(clippy::inline_always, reason = "per message of every write round")]
#[inline(always)]
fn short_header(opcode: OpCode, rsv: u8, len: usize) -> Option<[u8; 2]> {
    let len = u8::try_from(len)
        .ok()
        .filter(|&len| usize::from(len) <= MAX_CONTROL_PAYLOAD)?;
    Some([FIN_BIT | ((rsv & 0b111) << 4) | opcode.as_u8(), len])
}

/// [`write_frame_with_rsv`] of a payload too long for the 2-byte header.
#[inline(never)]
fn write_long_frame(opcode: OpCode, rsv: u8, payload: &[u8], out: &mut impl ByteSink) {
    let header = FrameHeader {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    out.put(header.encode(&mut buf));
    out.put(payload);
}

/// Writes a close frame with `code` and `reason` (cut to fit at a character boundary).
pub fn write_close_frame(code: u16, reason: &str, out: &mut impl ByteSink) {
    let mut payload = Vec::with_capacity(MAX_CONTROL_PAYLOAD);
    encode_close_payload(code, reason, &mut payload);
    write_frame(OpCode::Close, &payload, out);
}
