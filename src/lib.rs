//! The protocol core of a drop-in replacement for InspIRCd 3's `websocket` module.
//!
//! The core does no I/O, reads no clock and knows nothing of InspIRCd; the C++ shim
//! in `cpp/` moves bytes between InspIRCd's queues and a [`session::Session`].

pub mod config;
pub mod frame;
pub mod handshake;
pub mod origin;
pub mod proxy;
pub mod session;
pub mod sink;
mod wildcard;

mod ffi;
