//! IRC over WebSocket, both ways: one message is one IRC line.
//!
//! - [`incoming`]: a client's message becomes a line for InspIRCd's receive queue, CR
//!   and LF inside it dropped so that it can never become two commands.
//! - [`outgoing`]: each line InspIRCd queues becomes one message, in text or binary
//!   frames as the connection's [`MessageMode`] says.

pub mod incoming;
pub mod line_scan;
pub mod outgoing;

pub use incoming::IrcLines;
pub use outgoing::{LineFramer, MessageMode, MAX_PENDING_LINE_BYTES};
