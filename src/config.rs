//! Validated module settings built from the raw `<wsorigin>` and `<websocket>` tags. STUB.
use crate::origin::OriginAllowList;
use crate::proxy::ProxyRanges;

/// One configuration tag as the shim read it: every key/value pair, and where it is.
#[derive(Clone, Debug, Default)]
pub struct RawTag {
    /// "file:line" as InspIRCd prints it.
    pub location: String,
    pub items: Vec<(String, String)>,
}

/// All tags the module reads.
#[derive(Clone, Debug, Default)]
pub struct RawConfig {
    /// Every `<wsorigin>` tag in file order.
    pub origins: Vec<RawTag>,
    /// The first `<websocket>` tag, if any.
    pub websocket: Option<RawTag>,
}

/// What to do when the client requests no known subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultMode {
    Text,
    Binary,
    Reject,
}

/// Resource limits; each is a `<websocket>` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_handshake_bytes: usize,
    pub max_handshake_headers: usize,
    pub max_message_bytes: usize,
    pub max_fragments: usize,
    pub ping_burst: u32,
    pub ping_refill_ms: u64,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub origins: OriginAllowList,
    pub allow_missing_origin: bool,
    pub default_mode: DefaultMode,
    pub proxy_ranges: ProxyRanges,
    pub limits: Limits,
    pub native_ping: bool,
    pub ping_interval_ms: u64,
    /// Non-fatal remarks for the log (unknown keys, deprecated keys, permissive origins).
    pub warnings: Vec<String>,
}

/// A configuration error naming the tag, key, bad value, accepted values and location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("stub")]
    Stub,
}

impl Config {
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let _ = raw;
        unimplemented!()
    }
}
