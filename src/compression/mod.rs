//! permessage-deflate (RFC 7692), off unless `<websocket compression="yes">`.
//!
//! - [`negotiation`]: the client's offers and the 101's answer.
//! - [`Compressor`]: the server's messages, through a deflate encoder of our own
//!   ([`lz77`], [`fixed_huffman`]; why not zlib: see there): per connection its window
//!   (which carries over from message to message, which is what makes IRC lines small:
//!   each repeats its predecessors' prefixes) and a hash table, made at the first
//!   message worth compressing.
//! - [`PooledInflater`]: a client's messages. The answer asks the client to compress
//!   each message on its own, so an inflater is needed only while a compressed message
//!   arrives; it comes from the module's [`Spares`] and goes back at the message's end.
//! - [`Spares`]: what the module's compressing connections share (spare inflaters, a
//!   scratch buffer), owned by the module rather than by a thread-local.
//! - [`zlib`]: the C zlib stream under the inflater (and the tests' compressor).

mod fixed_huffman;
mod incoming;
mod lz77;
pub mod negotiation;
mod outgoing;
mod spares;
pub(crate) mod zlib;

pub use incoming::PooledInflater;
pub use negotiation::{negotiate, Agreed};
pub use outgoing::Compressor;
pub use spares::Spares;
pub use zlib::InflateStop;

/// The configured compression (`<websocket compression...>`, see
/// [`crate::config::keys`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Offers are accepted at all.
    pub enabled: bool,
    /// The server's LZ77 window, 8 to 15 bits (lowered when the client asks).
    pub window_bits: u8,
    /// The match finder's hash table, 8 to 14 bits: with the window, what a
    /// connection keeps.
    pub hash_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    pub min_size: usize,
}

impl Default for Settings {
    /// The defaults of [`crate::config::keys`].
    fn default() -> Settings {
        Settings {
            enabled: false,
            window_bits: 12,
            hash_bits: 10,
            min_size: 16,
        }
    }
}
