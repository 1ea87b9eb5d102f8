//! Close frame payloads and close codes (RFC 6455 sections 5.5.1 and 7.4). STUB.

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

/// Why a received close payload is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClosePayloadError {
    /// 1-byte payload or a code that may not be sent (close 1002).
    #[error("invalid close code or payload length")]
    BadCode,
    /// Reason is not UTF-8 (close 1007).
    #[error("close reason is not valid UTF-8")]
    BadReason,
}

/// Parses a received close payload: `Ok(None)` for an empty payload, otherwise the code
/// and the reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, ClosePayloadError> {
    let _ = payload;
    unimplemented!()
}

/// Writes a close payload (code + reason truncated at a UTF-8 boundary to fit 125 bytes).
pub fn encode_close_payload(code: u16, reason: &str, out: &mut Vec<u8>) {
    let _ = (code, reason, out);
    unimplemented!()
}
