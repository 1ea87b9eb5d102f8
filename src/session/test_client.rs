//! A test client's bytes, from the test kit (written independently of the crate's
//! encoder): the upgrade request and masked client frames. Shared by the session and
//! bridge tests.

/// A browser-like upgrade request that the default and `with_origins` configurations
/// accept (Origin `https://chat.example.com`); the masking key of every frame
/// [`frame_with`] masks.
pub(crate) use testkit::ws::{CHAT_EXAMPLE_REQUEST as REQUEST, MASK};

/// A client frame: `first_byte` (FIN, RSV, opcode) as given, the minimal length
/// encoding, masked with [`MASK`] if `masked`.
pub(crate) fn frame_with(first_byte: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    testkit::ws::encode_frame_byte(first_byte, payload, masked.then_some(MASK))
}
