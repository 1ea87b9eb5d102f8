//! permessage-deflate (RFC 7692), off unless `<websocket compression="yes">`.
//!
//! - [`negotiation`]: the client's offers and the 101's answer.
//! - [`Compressor`]: the server's messages; one zlib compressor per connection (the
//!   window carries over from message to message, which is what makes IRC lines
//!   small: each repeats its predecessors' prefixes), created at the first message
//!   worth compressing.
//! - [`PooledInflater`]: a client's messages. The answer asks the client to compress
//!   each message on its own, so an inflater is needed only while a compressed message
//!   arrives; it comes from a small per-thread pool and goes back at the message's end.
//! - [`zlib`]: the C zlib streams under both (why zlib: see there).

mod incoming;
pub mod negotiation;
mod outgoing;
pub(crate) mod zlib;

pub use incoming::PooledInflater;
pub use negotiation::{negotiate, Agreed};
pub use outgoing::Compressor;
pub use zlib::InflateStop;

/// The configured compression (`<websocket compression...>`, see
/// [`crate::config::keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Offers are accepted at all.
    pub enabled: bool,
    /// zlib's compression level, 1 (fastest) to 9 (smallest).
    pub level: u8,
    /// The server's LZ77 window, 9 to 15 bits (lowered when the client asks).
    pub window_bits: u8,
    /// zlib's memory level, 1 to 9: with the window, what a connection keeps.
    pub mem_level: u8,
    /// Messages shorter than this are sent uncompressed.
    pub min_size: usize,
}

impl Default for Settings {
    /// The defaults of [`crate::config::keys`].
    fn default() -> Settings {
        Settings {
            enabled: false,
            level: 6,
            window_bits: 11,
            mem_level: 1,
            min_size: 16,
        }
    }
}
