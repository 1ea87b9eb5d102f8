//! RFC 6455 framing: headers, masking, UTF-8 checks and close payloads.
//!
//! Everything here works on byte slices and knows nothing of connections; the session
//! state machine (`crate::session`) decides what a frame means.

pub mod close;
pub mod header;
pub mod mask;
pub mod outgoing;
pub mod utf8;

pub use close::{CloseCode, ClosePayloadError};
pub use header::{FrameHeader, HeaderError, OpCode};
pub use mask::apply_mask;
pub use outgoing::{LineFramer, MessageMode};
pub use utf8::{Utf8Error, Utf8Validator};
