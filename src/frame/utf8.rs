//! Incremental UTF-8 validation for text messages that arrive in pieces. STUB.

/// The message is not valid UTF-8 (close 1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid UTF-8 in a text message")]
pub struct Utf8Error;

/// Validates a text message piece by piece, failing on the first piece that contains a
/// byte no continuation could make valid.
#[derive(Clone, Debug, Default)]
pub struct Utf8Validator {
    // private state chosen by the implementation
}

impl Utf8Validator {
    /// Validates the next piece of the message.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), Utf8Error> {
        let _ = piece;
        unimplemented!()
    }
    /// The message ended: an unfinished sequence is an error. Resets for the next message.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        unimplemented!()
    }
}
