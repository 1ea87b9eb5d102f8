//! Validated module settings built from the raw `<wsorigin>` and `<websocket>` tags.
//!
//! The shim reads every key/value pair of the tags as written and hands them over in a
//! [`RawConfig`]; [`Config::from_raw`] validates them. Every key, with its default,
//! range and unit, is in [`keys`]; README.md and modules.conf.example document the same
//! keys (a test holds them to it). Errors ([`ConfigError`]) name the tag, the key, the
//! bad value, what would be accepted and the tag's location, and refuse the load or
//! rehash. Keys are matched case-insensitively (as InspIRCd does); unknown keys are
//! ignored with a warning.

mod error;
pub mod keys;
mod reader;
mod values;

pub use error::ConfigError;

use crate::origin::{is_permissive_pattern, OriginAllowList};
use crate::proxy::{ProxyHeader, ProxyRanges};
use crate::proxy_clones::ServerFacts;
use crate::secure::ProtoHeader;
use keys::{ServerVersion, WEBSOCKET, WEBSOCKET_KEYS, WSORIGIN, WSORIGIN_KEYS};
use reader::TagReader;

/// One configuration tag as the shim read it: every key/value pair, and where it is.
#[derive(Clone, Debug, Default)]
pub struct RawTag {
    /// `file:line`, as InspIRCd prints it.
    pub location: String,
    /// Key/value pairs in file order, keys as written.
    pub items: Vec<(String, String)>,
}

/// All tags the module reads, and the server they were read on (whose defaults apply).
#[derive(Clone, Debug, Default)]
pub struct RawConfig {
    /// Every `<wsorigin>` tag in file order.
    pub origins: Vec<RawTag>,
    /// The first `<websocket>` tag, if any.
    pub websocket: Option<RawTag>,
    pub server: ServerVersion,
    /// What the server read that decides whether bursts through a proxy meet its clone
    /// limits ([`crate::proxy_clones`]); `None` (tests, embedders): not checked.
    pub server_facts: Option<ServerFacts>,
}

/// What to do when the client requests no known subprotocol (`<websocket:defaultmode>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, strum::EnumIter)]
pub enum DefaultMode {
    /// Send text frames; outgoing lines are transcoded to UTF-8 (the default).
    #[default]
    Text,
    /// Send binary frames with the lines as they are.
    Binary,
    /// Refuse the connection with 400.
    Reject,
}

impl DefaultMode {
    /// The configuration value naming this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultMode::Text => "text",
            DefaultMode::Binary => "binary",
            DefaultMode::Reject => "reject",
        }
    }
}

impl keys::Choice for DefaultMode {
    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// Resource limits; each is a `<websocket>` key of [`keys`], in the unit and type it is
/// used in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// [`keys::MAX_HANDSHAKE`]: largest upgrade request (request line + headers +
    /// blank line), in bytes.
    pub max_handshake_bytes: usize,
    /// [`keys::MAX_HEADERS`]: most header lines in an upgrade request.
    pub max_handshake_headers: usize,
    /// [`keys::MAX_MESSAGE`]: largest message after reassembling its fragments, in
    /// bytes.
    pub max_message_bytes: u64,
    /// [`keys::MAX_FRAGMENTS`]: most frames per message.
    pub max_fragments: u64,
    /// [`keys::PING_BURST`]: ping frames a client may send back to back (token bucket
    /// size).
    pub ping_burst: u32,
    /// [`keys::PING_RATE`]: one ping token is regained per this many milliseconds.
    pub ping_refill_ms: u64,
    /// [`keys::CLOSE_TIMEOUT`]: how long a socket waits for the client's close frame
    /// after the server's, in milliseconds; 0: not at all.
    pub close_timeout_ms: u64,
}

/// A count already checked against a range that fits the target type.
fn narrow<T: TryFrom<u64> + Bounded>(value: u64) -> T {
    T::try_from(value).unwrap_or(T::MAX)
}

/// The largest value of a numeric type (what a value that cannot occur turns into).
trait Bounded {
    const MAX: Self;
}

impl Bounded for usize {
    const MAX: usize = usize::MAX;
}

impl Bounded for u32 {
    const MAX: u32 = u32::MAX;
}

impl Bounded for u8 {
    const MAX: u8 = u8::MAX;
}

impl Limits {
    fn read(reader: &TagReader<'_>) -> Result<Limits, ConfigError> {
        Ok(Limits {
            max_handshake_bytes: narrow(reader.number(&keys::MAX_HANDSHAKE)?),
            max_handshake_headers: narrow(reader.number(&keys::MAX_HEADERS)?),
            max_message_bytes: reader.number(&keys::MAX_MESSAGE)?,
            max_fragments: reader.number(&keys::MAX_FRAGMENTS)?,
            ping_burst: narrow(reader.number(&keys::PING_BURST)?),
            ping_refill_ms: reader.duration_ms(&keys::PING_RATE)?,
            close_timeout_ms: reader.duration_ms(&keys::CLOSE_TIMEOUT)?,
        })
    }
}

impl Default for Limits {
    /// The defaults of [`keys`].
    fn default() -> Limits {
        #[expect(clippy::expect_used, reason = "the key table's own defaults: tested")]
        Limits::read(&TagReader::empty(WEBSOCKET, ServerVersion::V3))
            .expect("the key table's defaults are valid")
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `<wsorigin allow>` patterns, in file order.
    pub origins: OriginAllowList,
    /// [`keys::ALLOW_MISSING_ORIGIN`]: accept requests without an Origin header.
    pub allow_missing_origin: bool,
    /// [`keys::DEFAULT_MODE`] (or the deprecated [`keys::SEND_AS_TEXT`]).
    pub default_mode: DefaultMode,
    /// [`keys::PROXY_RANGES`]: trusted reverse proxies.
    pub proxy_ranges: ProxyRanges,
    /// [`keys::PROXY_HEADER`]: which real-address header the trusted proxies set.
    pub proxy_header: ProxyHeader,
    /// [`keys::PROXY_PROTOCOL`]: trusted peers begin with a PROXY header.
    pub proxy_protocol: bool,
    /// [`keys::PROXY_PROTO_HEADER`]: the header that says the client used TLS.
    pub proto_header: ProtoHeader,
    /// [`keys::HEALTH_CHECK`]: the health check's path, if any.
    pub health_check: Option<String>,
    /// Resource limits.
    pub limits: Limits,
    /// [`keys::NATIVE_PING`]: send keepalive ping frames to idle clients.
    pub native_ping: bool,
    /// [`keys::PING_INTERVAL`] in milliseconds: time without receiving or sending
    /// before a keepalive ping.
    pub ping_interval_ms: u64,
    /// permessage-deflate ([`keys::COMPRESSION`] and the keys after it).
    pub compression: crate::compression::Settings,
    /// Non-fatal remarks for the log (unknown keys, deprecated keys, permissive origins).
    pub warnings: Vec<String>,
}

impl Config {
    /// Validates the raw tags. See [`keys`] for every key.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let origins = read_origins(&raw.origins, &mut warnings)?;
        let reader = match &raw.websocket {
            Some(tag) => {
                TagReader::new(WEBSOCKET, tag, &WEBSOCKET_KEYS, raw.server, &mut warnings)?
            }
            None => TagReader::empty(WEBSOCKET, raw.server),
        };
        let mut config = Config::read(origins, &reader, &mut warnings)?;
        if let Some(facts) = &raw.server_facts {
            warnings.extend(crate::proxy_clones::warnings(
                &config.proxy_ranges,
                facts,
                reader.location(),
            ));
        }
        config.warnings = warnings;
        Ok(config)
    }

    /// The `<websocket>` settings from `reader`, with `origins`.
    fn read(
        origins: OriginAllowList,
        reader: &TagReader<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Config, ConfigError> {
        let location = reader.location();
        let default_mode = match (
            reader.get(&keys::DEFAULT_MODE),
            reader.get(&keys::SEND_AS_TEXT),
        ) {
            (Some(_), sendastext) => {
                let mode = reader.choice(&keys::DEFAULT_MODE)?;
                reader.boolean(&keys::SEND_AS_TEXT)?;
                if sendastext.is_some() {
                    warnings.push(format!(
                        "<websocket:sendastext> at {location} is deprecated and ignored because <websocket:defaultmode> is set"
                    ));
                }
                mode
            }
            (None, Some(_)) => {
                let mode = if reader.boolean(&keys::SEND_AS_TEXT)? {
                    DefaultMode::Text
                } else {
                    DefaultMode::Binary
                };
                warnings.push(format!(
                    "<websocket:sendastext> at {location} is deprecated; use <websocket defaultmode=\"{}\"> instead",
                    mode.as_str()
                ));
                mode
            }
            (None, None) => reader.choice(&keys::DEFAULT_MODE)?,
        };

        let proxy_ranges = read_proxy_ranges(reader, warnings)?;
        let proxy_header = reader.text(
            &keys::PROXY_HEADER,
            ProxyHeader::parse,
            "any, x-real-ip, x-forwarded-for, forwarded, or the name of the header your proxies set",
        )?;
        let health_check = reader.text(
            &keys::HEALTH_CHECK,
            parse_health_check,
            "a path such as /health, or nothing",
        )?;

        Ok(Config {
            origins,
            allow_missing_origin: reader.boolean(&keys::ALLOW_MISSING_ORIGIN)?,
            default_mode,
            proxy_ranges,
            proxy_header,
            proxy_protocol: reader.boolean(&keys::PROXY_PROTOCOL)?,
            proto_header: reader.choice(&keys::PROXY_PROTO_HEADER)?,
            health_check,
            limits: Limits::read(reader)?,
            native_ping: reader.boolean(&keys::NATIVE_PING)?,
            ping_interval_ms: reader.duration_ms(&keys::PING_INTERVAL)?,
            compression: crate::compression::Settings {
                enabled: reader.boolean(&keys::COMPRESSION)?,
                window_bits: narrow(reader.number(&keys::COMPRESSION_WINDOW)?),
                hash_bits: narrow(reader.number(&keys::COMPRESSION_HASH)?),
                min_size: narrow(reader.number(&keys::COMPRESSION_MIN_SIZE)?),
            },
            warnings: Vec::new(),
        })
    }

    /// A configuration with the given `<wsorigin allow>` patterns and every other
    /// setting at its default, for tests and embedders.
    ///
    /// # Panics
    ///
    /// If globset cannot compile a pattern, which only happens for absurdly long ones;
    /// use [`Config::from_raw`] for patterns from untrusted sources.
    pub fn with_origins(origins: &[&str]) -> Config {
        #[expect(clippy::expect_used, reason = "for tests and embedders, as documented")]
        let origins = OriginAllowList::new(origins).expect("origin patterns compile");
        Config::with_allow_list(origins)
    }

    /// A configuration with the given allow list and every other setting at its
    /// default ([`keys`]).
    pub fn with_allow_list(origins: OriginAllowList) -> Config {
        #[expect(clippy::expect_used, reason = "the key table's own defaults: tested")]
        Config::read(
            origins,
            &TagReader::empty(WEBSOCKET, ServerVersion::V3),
            &mut Vec::new(),
        )
        .expect("the key table's defaults are valid")
    }
}

/// A `healthcheck` path: empty for none, else `/` and visible ASCII.
fn parse_health_check(value: &str) -> Result<Option<String>, &'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !value.starts_with('/') {
        return Err("does not start with /");
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("has characters a request path cannot have");
    }
    Ok(Some(value.to_owned()))
}

/// Every `<wsorigin>` tag's pattern, checked.
fn read_origins(
    tags: &[RawTag],
    warnings: &mut Vec<String>,
) -> Result<OriginAllowList, ConfigError> {
    if tags.is_empty() {
        return Err(ConfigError::NoOrigins);
    }
    let mut patterns = Vec::with_capacity(tags.len());
    for tag in tags {
        let reader = TagReader::new(WSORIGIN, tag, &WSORIGIN_KEYS, ServerVersion::V3, warnings)?;
        let allow = match reader.get(&keys::ALLOW) {
            Some(allow) if !allow.trim().is_empty() => allow,
            _ => {
                return Err(ConfigError::MissingAllow {
                    location: tag.location.clone(),
                })
            }
        };
        if let Err(e) = crate::wildcard::validate(allow) {
            return Err(ConfigError::BadOriginPattern {
                value: allow.to_owned(),
                location: tag.location.clone(),
                reason: e.to_string(),
            });
        }
        if is_permissive_pattern(allow) {
            warnings.push(format!(
                "<wsorigin:allow> \"{allow}\" at {} admits every website: any web page can make its visitors' browsers connect to this server",
                tag.location
            ));
        }
        patterns.push(allow);
    }
    OriginAllowList::new(&patterns).map_err(|e| ConfigError::BadOriginPattern {
        value: patterns.join(" "),
        location: tags.first().map(|t| t.location.clone()).unwrap_or_default(),
        reason: e.to_string(),
    })
}

/// [`keys::PROXY_RANGES`], with a warning for each entry that trusts everyone.
fn read_proxy_ranges(
    reader: &TagReader<'_>,
    warnings: &mut Vec<String>,
) -> Result<ProxyRanges, ConfigError> {
    let location = reader.location();
    let value = reader
        .get(&keys::PROXY_RANGES)
        .unwrap_or(keys::PROXY_RANGES.default_v3);
    let ranges = ProxyRanges::parse(value).map_err(|e| ConfigError::InvalidProxyRange {
        entry: e.entry,
        location: location.to_owned(),
        problem: e.problem,
    })?;
    for entry in ranges.trusts_everyone_entries() {
        warnings.push(format!(
            "<websocket:proxyranges> entry \"{entry}\" at {location} trusts every IPv4 or IPv6 peer: any client can claim any address with X-Real-IP or X-Forwarded-For"
        ));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests;
