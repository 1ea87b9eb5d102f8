//! RFC 6455 framing: headers, masking, UTF-8 checks and close payloads.
//!
//! Everything here works on byte slices and knows nothing of connections; the session
//! state machine (`crate::session`) decides what a frame means.

pub mod close;
pub mod header;
pub mod mask;
pub mod outgoing;
pub mod utf8;

pub use close::{encode_close_payload, is_valid_close_code, parse_close_payload};
pub use close::{CloseCode, ClosePayloadError};
pub use header::MAX_HEADER_LEN;
pub use header::{FrameHeader, HeaderError, OpCode};
pub use mask::apply_mask;
pub use outgoing::MAX_PENDING_LINE_BYTES;
pub use outgoing::{LineFramer, MessageMode};
pub use utf8::{Utf8Error, Utf8Validator};
