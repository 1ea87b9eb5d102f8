//! RFC 6455 framing: headers, masking, UTF-8 checks, close payloads, and writing
//! frames.
//!
//! Everything here works on byte slices and knows nothing of connections; the session
//! state machine (`crate::session`) decides what a frame means.

pub mod close;
pub mod header;
pub mod mask;
pub mod utf8;
pub mod writer;

pub use close::{encode_close_payload, is_valid_close_code, parse_close_payload, CloseCode};
pub use header::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
pub use mask::apply_mask;
pub use utf8::Utf8Validator;
pub use writer::{write_close_frame, write_frame, write_frame_with_rsv, RSV1};
