//! What a client can do wrong once the connection is upgraded, each with the close code
//! the server answers it with and the words the log and the quit message use.
//!
//! One type for every layer (frame header, UTF-8, close payload, message assembly,
//! limits, keepalive), in the manner of tungstenite's `ProtocolError` and wsproto's
//! `ParseFailed(message, code)`: the layer that finds the violation names it, and the
//! session ends with it ([`crate::session::Ending::Failed`]); nothing else spells the
//! message.

use crate::frame::CloseCode;

/// A violation of RFC 6455, or of one of the module's limits, by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// RSV1-3 set, and no extension was negotiated that allows it.
    #[error("reserved bits set without a negotiated extension")]
    ReservedBits,
    /// Opcodes 3-7 and 11-15.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    /// Every client-to-server frame must be masked.
    #[error("unmasked client frame")]
    Unmasked,
    /// Control frames carry at most [`crate::frame::MAX_CONTROL_PAYLOAD`] bytes.
    #[error("control frame longer than 125 bytes")]
    ControlTooLong,
    /// Control frames are never fragmented.
    #[error("fragmented control frame")]
    ControlFragmented,
    /// A 64-bit length must have its top bit clear; no message could be that long.
    #[error("frame length with the most significant bit set")]
    LengthTopBit,
    /// A payload length in a longer form than it needs (e.g. 5 in the 16-bit form).
    #[error("frame length not in its shortest form")]
    NonMinimalLength,
    /// A continuation frame arrived with no message to continue.
    #[error("continuation frame with no message to continue")]
    NothingToContinue,
    /// A new text or binary frame arrived while a fragmented message was unfinished.
    #[error("new message while a fragmented message is unfinished")]
    MessageUnfinished,
    /// The message would exceed `maxmessage`.
    #[error("message larger than the limit")]
    MessageTooBig,
    /// The message is split into more frames than `maxfragments`.
    #[error("message split into more fragments than the limit")]
    TooManyFragments,
    /// A text message is not UTF-8.
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// Pings beyond `pingburst` / `pingrate`.
    #[error("ping flood")]
    PingFlood,
    /// A close frame with a 1-byte payload or a code that may not be sent.
    #[error("invalid close code")]
    InvalidCloseCode,
    /// A close frame whose reason is not UTF-8.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// The client said nothing for `pinginterval` after a keepalive ping.
    #[error("no answer to a keepalive ping")]
    NoKeepaliveAnswer,
    /// RSV1 on a control frame or a continuation frame: only a message's first frame
    /// says it is compressed (RFC 7692 6.1).
    #[error("compression bit on a control or continuation frame")]
    MisplacedCompressionBit,
    /// A compressed message that is not raw deflate data.
    #[error("invalid compressed data")]
    BadCompressedData,
    /// The server could not get memory to decompress a message.
    #[error("no memory to decompress a message")]
    NoInflateMemory,
}

impl ProtocolError {
    /// The code of the close frame the server sends for it.
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::BadCompressedData => CloseCode::InvalidPayload,
            ProtocolError::NoInflateMemory => CloseCode::InternalError,
            // No message is that long: a length that cannot be real is "too big", as
            // any length past the limit is.
            ProtocolError::LengthTopBit | ProtocolError::MessageTooBig => CloseCode::TooBig,
            ProtocolError::TooManyFragments | ProtocolError::PingFlood => {
                CloseCode::PolicyViolation
            }
            ProtocolError::NoKeepaliveAnswer => CloseCode::GoingAway,
            ProtocolError::ReservedBits
            | ProtocolError::UnknownOpcode(_)
            | ProtocolError::Unmasked
            | ProtocolError::ControlTooLong
            | ProtocolError::ControlFragmented
            | ProtocolError::NonMinimalLength
            | ProtocolError::NothingToContinue
            | ProtocolError::MessageUnfinished
            | ProtocolError::InvalidCloseCode
            | ProtocolError::MisplacedCompressionBit => CloseCode::ProtocolError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_violation_has_the_close_code_rfc_6455_gives_it() {
        for (error, code) in [
            (ProtocolError::Unmasked, 1002),
            (ProtocolError::UnknownOpcode(3), 1002),
            (ProtocolError::NonMinimalLength, 1002),
            (ProtocolError::InvalidCloseCode, 1002),
            (ProtocolError::InvalidUtf8, 1007),
            (ProtocolError::InvalidCloseReason, 1007),
            (ProtocolError::PingFlood, 1008),
            (ProtocolError::TooManyFragments, 1008),
            (ProtocolError::MessageTooBig, 1009),
            (ProtocolError::LengthTopBit, 1009),
            (ProtocolError::NoKeepaliveAnswer, 1001),
        ] {
            assert_eq!(error.close_code().code(), code, "{error}");
        }
        assert_eq!(
            ProtocolError::UnknownOpcode(11).to_string(),
            "unknown opcode 11"
        );
    }
}
