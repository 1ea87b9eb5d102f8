//! Frame header parsing and encoding (RFC 6455 section 5.2).
//! STUB: signatures agreed with the session; the body is being written.

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

/// Why a header is not acceptable from a client. Every variant is a protocol error (1002).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    #[error("unmasked client frame")]
    Unmasked,
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    #[error("fragmented control frame")]
    ControlFragmented,
    #[error("64-bit length with the most significant bit set")]
    LengthTopBit,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are needed
    /// (nothing is consumed); `Ok(Some((header, header_len)))` otherwise.
    /// Checks only what the header alone decides and is role-neutral except that
    /// `require_mask` demands the mask bit (client-to-server frames).
    /// `allowed_rsv` is the RSV bits a negotiated extension permits (0 without one).
    pub fn parse(
        buf: &[u8],
        require_mask: bool,
        allowed_rsv: u8,
    ) -> Result<Option<(FrameHeader, usize)>, HeaderError> {
        let _ = (buf, require_mask, allowed_rsv);
        unimplemented!()
    }

    /// Encodes a header (2 to 14 bytes) into `out`, returning the number of bytes used.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let _ = out;
        unimplemented!()
    }
}

/// Largest header: 2 bytes + 8-byte length + 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;
