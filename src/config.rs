//! Validated module settings built from the raw `<wsorigin>` and `<websocket>` tags.
//!
//! The shim reads every key/value pair of the tags as written and hands them over in a
//! [`RawConfig`]; [`Config::from_raw`] validates them. Errors name the tag, the key, the
//! bad value, what would be accepted and the tag's location, and refuse the load or
//! rehash. Keys are matched case-insensitively (as InspIRCd does).
//!
//! # `<wsorigin>` (at least one)
//!
//! | key   | default          | meaning |
//! |-------|------------------|---------|
//! | allow | none, required   | Glob pattern for the origin (`scheme://host[:port]`) of a web page allowed to connect. `*` matches any run of characters, `?` one byte; letters compare ASCII case-insensitively; every other character is literal; the whole Origin must match. Example: `https://*.example.com`. A pattern admitting every website (`*`, `https://*`, …) loads with a warning. |
//!
//! # `<websocket>` (at most once; every key optional)
//!
//! | key | default | accepted | meaning |
//! |---|---|---|---|
//! | defaultmode | `text` | `text`, `binary`, `reject` | What to do when the client requests no known subprotocol: send text frames (lines transcoded to UTF-8), send binary frames, or refuse the connection (400). |
//! | sendastext | `yes` | boolean | Deprecated (InspIRCd 3.12): used only when `defaultmode` is absent; `yes` = `text`, `no` = `binary`. Using it logs a warning. |
//! | proxyranges | none | space-separated CIDR ranges, addresses, or globs of address text | Peers whose `X-Real-IP` / `X-Forwarded-For` headers are trusted, e.g. `192.0.2.0/24 2001:db8::/32 198.51.100.*`. When set, every client must send one of these headers (400 otherwise); it is applied only for trusted peers. With `X-Forwarded-For` the rightmost address that is not itself trusted is used. |
//! | allowmissingorigin | `no` | boolean | Accept upgrade requests without an `Origin` header (non-browser clients; browsers always send it). `no` answers them with 400 like the stock module. |
//! | nativeping | `yes` | boolean | Send WebSocket ping frames to idle clients so proxies (e.g. Cloudflare) do not drop the connection. |
//! | proxyheader | `any` | `x-real-ip`, `x-forwarded-for`, `any` | Which header the trusted proxies set: only `X-Real-IP`, only `X-Forwarded-For`, or `any` (the stock module's rule: `X-Real-IP` when present, else `X-Forwarded-For`). Name the header your proxy sets: a proxy that sets only one of them passes the other through from the client. A trusted request whose two headers disagree is logged with a warning. |
//! | pinginterval | `30s` | duration, 1 second to 1 day | How long a connection may go without receiving or without sending anything before a keepalive ping frame is sent (with `nativeping`); half of nginx's default 60 s `proxy_read_timeout`. |
//! | maxhandshake | `40K` | size, 1K to 256K | Largest HTTP upgrade request in bytes (request line and headers). Larger requests are refused (431). The default admits what nginx's default header buffers pass on (up to 32 KiB) and browsers with large cookies. |
//! | maxheaders | `64` | 8 to 256 | Most header lines an upgrade request may have. |
//! | maxmessage | `16K` | size, 512 to 16M | Largest WebSocket message in bytes after its fragments are reassembled; larger ones close the connection with 1009. |
//! | maxfragments | `64` | 1 to 1000000 | Most frames one message may be split into; more close the connection with 1008 (policy violation). |
//! | pingburst | `10` | 1 to 1000 | How many ping frames a client may send back to back; a sustained faster flood closes the connection with 1008. |
//! | closetimeout | `2s` | duration, 0 to 1 minute | After the server's close frame (QUIT, unload, a protocol error, a keepalive timeout), how long the socket stays open for the client's close frame before TCP is closed (RFC 6455 7.1.1; closing at once makes Firefox report an unclean close). `0` closes at once, as the stock module does. |
//! | pingrate | `1s` | duration, 1 second to 1 hour | A client regains one ping of its burst per this duration, so with the defaults a client pinging once a second is never limited. |
//!
//! Booleans: `yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0` (case-insensitive).
//! Sizes and counts: a decimal number, optionally with a `K` (×1024) or `M` (×1024²)
//! suffix. Durations (InspIRCd syntax): a plain number of seconds, or numbers with
//! units `y` (365 days), `w`, `d`, `h`, `m`, `s`, e.g. `1m30s`. Unknown keys are
//! ignored with a warning.

use std::ops::RangeInclusive;

use crate::origin::{is_permissive_pattern, OriginAllowList};
use crate::proxy::{ProxyHeader, ProxyRanges};

/// Default `maxhandshake`: largest upgrade request, in bytes (40 KiB). nginx's default
/// `large_client_header_buffers 4 8k` passes requests of up to 32 KiB, to which it adds
/// its own headers when it forwards them; a browser sending a site's large cookies
/// directly is admitted too.
pub const DEFAULT_MAX_HANDSHAKE_BYTES: usize = 40 * 1024;
/// Accepted `maxhandshake` values, in bytes (1 KiB to 256 KiB).
pub const MAX_HANDSHAKE_BYTES_RANGE: RangeInclusive<u64> = 1024..=256 * 1024;
/// Default `maxheaders`: most header lines in an upgrade request.
pub const DEFAULT_MAX_HANDSHAKE_HEADERS: usize = 64;
/// Accepted `maxheaders` values.
pub const MAX_HANDSHAKE_HEADERS_RANGE: RangeInclusive<u64> = 8..=256;
/// Default `maxmessage`: largest reassembled message, in bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16384;
/// Accepted `maxmessage` values, in bytes (512 to 16 MiB).
pub const MAX_MESSAGE_BYTES_RANGE: RangeInclusive<u64> = 512..=16 * 1024 * 1024;
/// Default `maxfragments`: most frames per message.
pub const DEFAULT_MAX_FRAGMENTS: u64 = 64;
/// Accepted `maxfragments` values.
pub const MAX_FRAGMENTS_RANGE: RangeInclusive<u64> = 1..=1_000_000;
/// Default `pingburst`: ping frames a client may send back to back.
pub const DEFAULT_PING_BURST: u32 = 10;
/// Accepted `pingburst` values.
pub const PING_BURST_RANGE: RangeInclusive<u64> = 1..=1000;
/// Default `pingrate`: one ping token regained per this many milliseconds (1 s).
pub const DEFAULT_PING_REFILL_MS: u64 = 1000;
/// Accepted `pingrate` values, in seconds (1 second to 1 hour).
pub const PING_REFILL_SECS_RANGE: RangeInclusive<u64> = 1..=3600;
/// Default `pinginterval`: time without receiving or without sending before a keepalive
/// ping, in milliseconds (30 s: half of nginx's default 60 s `proxy_read_timeout`, which
/// counts only what the server sends, and well below Cloudflare's 100 s).
pub const DEFAULT_PING_INTERVAL_MS: u64 = 30_000;
/// Accepted `pinginterval` values, in seconds (1 second to 1 day).
pub const PING_INTERVAL_SECS_RANGE: RangeInclusive<u64> = 1..=86_400;
/// Default `closetimeout`: how long a socket waits for the client's close frame after
/// the server's, in milliseconds (2 s; browsers answer within a round trip).
pub const DEFAULT_CLOSE_TIMEOUT_MS: u64 = 2000;
/// Accepted `closetimeout` values, in seconds (0, no waiting, to 1 minute).
pub const CLOSE_TIMEOUT_SECS_RANGE: RangeInclusive<u64> = 0..=60;
/// Default `allowmissingorigin`.
pub const DEFAULT_ALLOW_MISSING_ORIGIN: bool = false;
/// Default `nativeping`.
pub const DEFAULT_NATIVE_PING: bool = true;

/// Every key `<websocket>` knows (lower case).
const WEBSOCKET_KEYS: [&str; 14] = [
    "defaultmode",
    "sendastext",
    "proxyranges",
    "proxyheader",
    "allowmissingorigin",
    "nativeping",
    "pinginterval",
    "maxhandshake",
    "maxheaders",
    "maxmessage",
    "maxfragments",
    "pingburst",
    "pingrate",
    "closetimeout",
];
/// Every key `<wsorigin>` knows.
const WSORIGIN_KEYS: [&str; 1] = ["allow"];

const BOOLEAN_VALUES: &str = "yes, no, true, false, on, off, 1, 0";
const DEFAULT_MODE_VALUES: &str = "text, binary, reject";
const DURATION_SYNTAX: &str =
    "a number of seconds or numbers with units y, w, d, h, m, s (e.g. 1m30s)";

/// One configuration tag as the shim read it: every key/value pair, and where it is.
#[derive(Clone, Debug, Default)]
pub struct RawTag {
    /// "file:line" as InspIRCd prints it.
    pub location: String,
    /// Key/value pairs in file order, keys as written.
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

/// What to do when the client requests no known subprotocol (`<websocket:defaultmode>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Resource limits; each is a `<websocket>` key (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `maxhandshake`: largest upgrade request (request line + headers + blank line),
    /// in bytes. Default [`DEFAULT_MAX_HANDSHAKE_BYTES`], range
    /// [`MAX_HANDSHAKE_BYTES_RANGE`].
    pub max_handshake_bytes: usize,
    /// `maxheaders`: most header lines in an upgrade request. Default
    /// [`DEFAULT_MAX_HANDSHAKE_HEADERS`], range [`MAX_HANDSHAKE_HEADERS_RANGE`].
    pub max_handshake_headers: usize,
    /// `maxmessage`: largest message after reassembling its fragments, in bytes.
    /// Default [`DEFAULT_MAX_MESSAGE_BYTES`], range [`MAX_MESSAGE_BYTES_RANGE`].
    pub max_message_bytes: u64,
    /// `maxfragments`: most frames per message. Default [`DEFAULT_MAX_FRAGMENTS`],
    /// range [`MAX_FRAGMENTS_RANGE`].
    pub max_fragments: u64,
    /// `pingburst`: ping frames a client may send back to back (token bucket size).
    /// Default [`DEFAULT_PING_BURST`], range [`PING_BURST_RANGE`].
    pub ping_burst: u32,
    /// `pingrate`: one ping token is regained per this many milliseconds. Default
    /// [`DEFAULT_PING_REFILL_MS`], range [`PING_REFILL_SECS_RANGE`] seconds.
    pub ping_refill_ms: u64,
    /// `closetimeout`: how long a socket waits for the client's close frame after the
    /// server's, in milliseconds; 0: not at all. Default [`DEFAULT_CLOSE_TIMEOUT_MS`],
    /// range [`CLOSE_TIMEOUT_SECS_RANGE`] seconds.
    pub close_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_handshake_bytes: DEFAULT_MAX_HANDSHAKE_BYTES,
            max_handshake_headers: DEFAULT_MAX_HANDSHAKE_HEADERS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            ping_burst: DEFAULT_PING_BURST,
            ping_refill_ms: DEFAULT_PING_REFILL_MS,
            close_timeout_ms: DEFAULT_CLOSE_TIMEOUT_MS,
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `<wsorigin allow>` patterns, in file order.
    pub origins: OriginAllowList,
    /// `allowmissingorigin`: accept requests without an Origin header. Default no.
    pub allow_missing_origin: bool,
    /// `defaultmode` (or the deprecated `sendastext`). Default text.
    pub default_mode: DefaultMode,
    /// `proxyranges`: trusted reverse proxies. Default none.
    pub proxy_ranges: ProxyRanges,
    /// `proxyheader`: which real-IP header the trusted proxies set. Default any.
    pub proxy_header: ProxyHeader,
    /// Resource limits.
    pub limits: Limits,
    /// `nativeping`: send keepalive ping frames to idle clients. Default yes.
    pub native_ping: bool,
    /// `pinginterval` in milliseconds: time without receiving or sending before a
    /// keepalive ping. Default 30 s.
    pub ping_interval_ms: u64,
    /// Non-fatal remarks for the log (unknown keys, deprecated keys, permissive origins).
    pub warnings: Vec<String>,
}

/// A configuration error naming the tag, key, bad value, accepted values and location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No `<wsorigin>` tag at all.
    #[error(
        "You have loaded the websocket module but not configured any allowed origins (<wsorigin allow=...>)"
    )]
    NoOrigins,
    /// A `<wsorigin>` without `allow`, or with an empty one.
    #[error("<wsorigin:allow> is a mandatory field and must not be empty, at {location}")]
    MissingAllow { location: String },
    /// An allow pattern globset cannot compile (only absurdly long ones).
    #[error("<wsorigin:allow> has an unusable pattern \"{value}\" at {location}: {reason}")]
    BadOriginPattern {
        value: String,
        location: String,
        reason: String,
    },
    /// A value outside a fixed set (booleans, `defaultmode`).
    #[error(
        "<{tag}:{key}> has an invalid value \"{value}\" at {location}; accepted values: {accepted}"
    )]
    InvalidValue {
        tag: &'static str,
        key: &'static str,
        value: String,
        location: String,
        accepted: &'static str,
    },
    /// A size or count that is not a number.
    #[error("<{tag}:{key}> has an invalid value \"{value}\" at {location}: not a number; accepted range: {range}")]
    NotANumber {
        tag: &'static str,
        key: &'static str,
        value: String,
        location: String,
        range: String,
    },
    /// A size, count or duration outside its range.
    #[error("<{tag}:{key}> has an out-of-range value \"{value}\" at {location}; accepted range: {range}")]
    OutOfRange {
        tag: &'static str,
        key: &'static str,
        value: String,
        location: String,
        range: String,
    },
    /// A duration that does not parse.
    #[error("<{tag}:{key}> has an invalid duration \"{value}\" at {location}; accepted: {syntax}, range {range}")]
    InvalidDuration {
        tag: &'static str,
        key: &'static str,
        value: String,
        location: String,
        syntax: &'static str,
        range: String,
    },
    /// A `proxyranges` entry that is neither a CIDR range, an address nor a usable glob.
    #[error(
        "<websocket:proxyranges> has an invalid entry \"{entry}\" at {location}: it is {problem}"
    )]
    InvalidProxyRange {
        entry: String,
        location: String,
        problem: String,
    },
    /// The same key twice in one tag.
    #[error("<{tag}:{key}> is set more than once at {location}")]
    DuplicateKey {
        tag: &'static str,
        key: String,
        location: String,
    },
}

/// How a range is described in errors.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Bytes,
    Seconds,
}

fn range_text(range: &RangeInclusive<u64>, unit: Unit) -> String {
    let (start, end) = (*range.start(), *range.end());
    match unit {
        Unit::Count => format!("{start} to {end}"),
        Unit::Bytes => format!("{start} to {end} bytes (K and M suffixes allowed)"),
        Unit::Seconds => format!("{start} to {end} seconds"),
    }
}

/// A decimal number with an optional `K` (×1024) or `M` (×1024²) suffix.
fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, multiplier) = if let Some(digits) = value.strip_suffix(['k', 'K']) {
        (digits, 1024)
    } else if let Some(digits) = value.strip_suffix(['m', 'M']) {
        (digits, 1024 * 1024)
    } else {
        (value, 1)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

/// An InspIRCd duration in seconds: a plain number of seconds, or numbers each followed
/// by a unit (`y` 365 days, `w`, `d`, `h`, `m`, `s`, either case); a trailing number
/// without a unit counts as seconds (`1m30` = 90). `None` when malformed or overflowing.
fn parse_duration(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut pending: Option<u64> = None;
    for c in value.chars() {
        if let Some(digit) = c.to_digit(10) {
            let so_far = pending.unwrap_or(0);
            pending = Some(so_far.checked_mul(10)?.checked_add(u64::from(digit))?);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            'y' => 365 * 86_400,
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let count = pending.take()?;
        total = total.checked_add(count.checked_mul(unit)?)?;
    }
    if let Some(seconds) = pending {
        total = total.checked_add(seconds)?;
    }
    Some(total)
}

fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["yes", "true", "on", "1"];
    const FALSE: [&str; 4] = ["no", "false", "off", "0"];
    let value = value.trim();
    if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// The items of one tag with keys lower-cased, duplicates refused and unknown keys
/// reported as warnings.
struct TagReader<'a> {
    tag: &'static str,
    location: &'a str,
    items: Vec<(String, &'a str)>,
}

impl<'a> TagReader<'a> {
    fn new(
        tag: &'static str,
        raw: &'a RawTag,
        known: &[&str],
        warnings: &mut Vec<String>,
    ) -> Result<TagReader<'a>, ConfigError> {
        let mut items: Vec<(String, &'a str)> = Vec::with_capacity(raw.items.len());
        for (key, value) in &raw.items {
            let key = key.to_ascii_lowercase();
            if items.iter().any(|(k, _)| *k == key) {
                return Err(ConfigError::DuplicateKey {
                    tag,
                    key,
                    location: raw.location.clone(),
                });
            }
            if !known.contains(&key.as_str()) {
                warnings.push(format!(
                    "<{tag}> at {} has an unknown key \"{key}\"; it is ignored",
                    raw.location
                ));
            }
            items.push((key, value.as_str()));
        }
        Ok(TagReader {
            tag,
            location: &raw.location,
            items,
        })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| *value)
    }

    fn invalid_value(&self, key: &'static str, value: &str, accepted: &'static str) -> ConfigError {
        ConfigError::InvalidValue {
            tag: self.tag,
            key,
            value: value.to_owned(),
            location: self.location.to_owned(),
            accepted,
        }
    }

    fn out_of_range(&self, key: &'static str, value: &str, range: String) -> ConfigError {
        ConfigError::OutOfRange {
            tag: self.tag,
            key,
            value: value.to_owned(),
            location: self.location.to_owned(),
            range,
        }
    }

    fn bool(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => {
                parse_bool(value).ok_or_else(|| self.invalid_value(key, value, BOOLEAN_VALUES))
            }
        }
    }

    /// A size or count within `range`.
    fn number(
        &self,
        key: &'static str,
        default: u64,
        range: &RangeInclusive<u64>,
        unit: Unit,
    ) -> Result<u64, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        let Some(number) = parse_size(value) else {
            return Err(ConfigError::NotANumber {
                tag: self.tag,
                key,
                value: value.to_owned(),
                location: self.location.to_owned(),
                range: range_text(range, unit),
            });
        };
        if range.contains(&number) {
            Ok(number)
        } else {
            Err(self.out_of_range(key, value, range_text(range, unit)))
        }
    }

    /// A duration within `range` (seconds), returned in milliseconds.
    fn duration_ms(
        &self,
        key: &'static str,
        default_ms: u64,
        range: &RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(default_ms);
        };
        let Some(seconds) = parse_duration(value) else {
            return Err(ConfigError::InvalidDuration {
                tag: self.tag,
                key,
                value: value.to_owned(),
                location: self.location.to_owned(),
                syntax: DURATION_SYNTAX,
                range: range_text(range, Unit::Seconds),
            });
        };
        if range.contains(&seconds) {
            Ok(seconds.saturating_mul(1000))
        } else {
            Err(self.out_of_range(key, value, range_text(range, Unit::Seconds)))
        }
    }
}

/// Converts a value already checked against a range that fits `usize`/`u32`.
fn narrow<T: TryFrom<u64>>(value: u64, fallback: T) -> T {
    T::try_from(value).unwrap_or(fallback)
}

impl Config {
    /// Validates the raw tags. See the module docs for every key.
    pub fn from_raw(raw: &RawConfig) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();

        // <wsorigin>
        if raw.origins.is_empty() {
            return Err(ConfigError::NoOrigins);
        }
        let mut patterns = Vec::with_capacity(raw.origins.len());
        for tag in &raw.origins {
            let reader = TagReader::new("wsorigin", tag, &WSORIGIN_KEYS, &mut warnings)?;
            let allow = match reader.get("allow") {
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
        let origins =
            OriginAllowList::new(&patterns).map_err(|e| ConfigError::BadOriginPattern {
                value: patterns.join(" "),
                location: raw
                    .origins
                    .first()
                    .map(|t| t.location.clone())
                    .unwrap_or_default(),
                reason: e.to_string(),
            })?;

        let mut config = Config::with_allow_list(origins);

        // <websocket>
        let Some(tag) = &raw.websocket else {
            config.warnings = warnings;
            return Ok(config);
        };
        let reader = TagReader::new("websocket", tag, &WEBSOCKET_KEYS, &mut warnings)?;

        let send_as_text = reader.bool("sendastext", true)?;
        config.default_mode = match (reader.get("defaultmode"), reader.get("sendastext")) {
            (Some(value), sendastext) => {
                let mode = match value.trim().to_ascii_lowercase().as_str() {
                    "text" => DefaultMode::Text,
                    "binary" => DefaultMode::Binary,
                    "reject" => DefaultMode::Reject,
                    _ => {
                        return Err(reader.invalid_value("defaultmode", value, DEFAULT_MODE_VALUES))
                    }
                };
                if sendastext.is_some() {
                    warnings.push(format!(
                        "<websocket:sendastext> at {} is deprecated and ignored because <websocket:defaultmode> is set",
                        tag.location
                    ));
                }
                mode
            }
            (None, Some(_)) => {
                let mode = if send_as_text {
                    DefaultMode::Text
                } else {
                    DefaultMode::Binary
                };
                warnings.push(format!(
                    "<websocket:sendastext> at {} is deprecated; use <websocket defaultmode=\"{}\"> instead",
                    tag.location,
                    mode.as_str()
                ));
                mode
            }
            (None, None) => DefaultMode::Text,
        };

        if let Some(value) = reader.get("proxyranges") {
            config.proxy_ranges =
                ProxyRanges::parse(value).map_err(|e| ConfigError::InvalidProxyRange {
                    entry: e.entry,
                    location: tag.location.clone(),
                    problem: e.problem,
                })?;
            for entry in config.proxy_ranges.trusts_everyone_entries() {
                warnings.push(format!(
                    "<websocket:proxyranges> entry \"{entry}\" at {} trusts every IPv4 or IPv6 peer: any client can claim any address with X-Real-IP or X-Forwarded-For",
                    tag.location
                ));
            }
        }

        if let Some(value) = reader.get("proxyheader") {
            config.proxy_header = ProxyHeader::parse(value)
                .ok_or_else(|| reader.invalid_value("proxyheader", value, ProxyHeader::VALUES))?;
        }

        config.allow_missing_origin =
            reader.bool("allowmissingorigin", DEFAULT_ALLOW_MISSING_ORIGIN)?;
        config.native_ping = reader.bool("nativeping", DEFAULT_NATIVE_PING)?;
        config.ping_interval_ms = reader.duration_ms(
            "pinginterval",
            DEFAULT_PING_INTERVAL_MS,
            &PING_INTERVAL_SECS_RANGE,
        )?;

        let defaults = Limits::default();
        let limits = &mut config.limits;
        limits.max_handshake_bytes = narrow(
            reader.number(
                "maxhandshake",
                DEFAULT_MAX_HANDSHAKE_BYTES as u64,
                &MAX_HANDSHAKE_BYTES_RANGE,
                Unit::Bytes,
            )?,
            defaults.max_handshake_bytes,
        );
        limits.max_handshake_headers = narrow(
            reader.number(
                "maxheaders",
                DEFAULT_MAX_HANDSHAKE_HEADERS as u64,
                &MAX_HANDSHAKE_HEADERS_RANGE,
                Unit::Count,
            )?,
            defaults.max_handshake_headers,
        );
        limits.max_message_bytes = narrow(
            reader.number(
                "maxmessage",
                DEFAULT_MAX_MESSAGE_BYTES as u64,
                &MAX_MESSAGE_BYTES_RANGE,
                Unit::Bytes,
            )?,
            defaults.max_message_bytes,
        );
        limits.max_fragments = narrow(
            reader.number(
                "maxfragments",
                DEFAULT_MAX_FRAGMENTS as u64,
                &MAX_FRAGMENTS_RANGE,
                Unit::Count,
            )?,
            defaults.max_fragments,
        );
        limits.ping_burst = narrow(
            reader.number(
                "pingburst",
                u64::from(DEFAULT_PING_BURST),
                &PING_BURST_RANGE,
                Unit::Count,
            )?,
            defaults.ping_burst,
        );
        limits.ping_refill_ms =
            reader.duration_ms("pingrate", DEFAULT_PING_REFILL_MS, &PING_REFILL_SECS_RANGE)?;
        limits.close_timeout_ms = reader.duration_ms(
            "closetimeout",
            DEFAULT_CLOSE_TIMEOUT_MS,
            &CLOSE_TIMEOUT_SECS_RANGE,
        )?;

        config.warnings = warnings;
        Ok(config)
    }

    /// A configuration with the given `<wsorigin allow>` patterns and every other
    /// setting at its default, for tests and embedders.
    ///
    /// # Panics
    ///
    /// If globset cannot compile a pattern, which only happens for absurdly long ones;
    /// use [`Config::from_raw`] for patterns from untrusted sources.
    pub fn with_origins(origins: &[&str]) -> Config {
        #[allow(clippy::expect_used)]
        let origins = OriginAllowList::new(origins).expect("origin patterns compile");
        Config::with_allow_list(origins)
    }

    /// A configuration with the given allow list and every other setting at its default.
    pub fn with_allow_list(origins: OriginAllowList) -> Config {
        Config {
            origins,
            allow_missing_origin: DEFAULT_ALLOW_MISSING_ORIGIN,
            default_mode: DefaultMode::Text,
            proxy_ranges: ProxyRanges::default(),
            proxy_header: ProxyHeader::default(),
            limits: Limits::default(),
            native_ping: DEFAULT_NATIVE_PING,
            ping_interval_ms: DEFAULT_PING_INTERVAL_MS,
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOC: &str = "/etc/inspircd/inspircd.conf:12";
    const ORIGIN_LOC: &str = "/etc/inspircd/inspircd.conf:10";

    fn tag(location: &str, items: &[(&str, &str)]) -> RawTag {
        RawTag {
            location: location.to_owned(),
            items: items
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn raw(websocket: Option<&[(&str, &str)]>) -> RawConfig {
        RawConfig {
            origins: vec![tag(ORIGIN_LOC, &[("allow", "https://*.example.com")])],
            websocket: websocket.map(|items| tag(LOC, items)),
        }
    }

    fn load(items: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_raw(&raw(Some(items)))
    }

    fn error(items: &[(&str, &str)]) -> String {
        load(items).unwrap_err().to_string()
    }

    fn assert_names(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }

    #[test]
    fn defaults_without_websocket_tag() {
        let c = Config::from_raw(&raw(None)).unwrap();
        assert_eq!(c.default_mode, DefaultMode::Text);
        assert!(!c.allow_missing_origin);
        assert!(c.native_ping);
        assert_eq!(c.ping_interval_ms, 30_000);
        assert_eq!(c.proxy_header, ProxyHeader::Any);
        assert!(c.proxy_ranges.is_empty());
        assert_eq!(c.limits, Limits::default());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.origins.allows(b"https://www.example.com"));
        assert!(!c.origins.allows(b"https://evil.test"));
    }

    #[test]
    fn default_limits_have_the_documented_values() {
        let l = Limits::default();
        assert_eq!(l.max_handshake_bytes, 40 * 1024);
        assert_eq!(l.max_handshake_headers, 64);
        assert_eq!(l.max_message_bytes, 16384);
        assert_eq!(l.max_fragments, 64);
        assert_eq!(l.ping_burst, 10);
        assert_eq!(l.ping_refill_ms, 1000);
        assert_eq!(l.close_timeout_ms, 2000);
    }

    #[test]
    fn proxyheader_names_the_header_the_proxies_set() {
        for (value, header) in [
            ("x-real-ip", ProxyHeader::RealIp),
            ("X-Forwarded-For", ProxyHeader::ForwardedFor),
            ("any", ProxyHeader::Any),
        ] {
            assert_eq!(
                load(&[("proxyheader", value)]).unwrap().proxy_header,
                header
            );
        }
        assert_eq!(
            error(&[("proxyheader", "forwarded")]),
            format!("<websocket:proxyheader> has an invalid value \"forwarded\" at {LOC}; accepted values: x-real-ip, x-forwarded-for, any")
        );
    }

    #[test]
    fn empty_websocket_tag_gives_defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.default_mode, DefaultMode::Text);
        assert_eq!(c.limits, Limits::default());
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn with_origins_uses_defaults() {
        let c = Config::with_origins(&["https://a.example", "http://localhost:*"]);
        assert!(c.origins.allows(b"https://a.example"));
        assert!(c.origins.allows(b"http://localhost:8080"));
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.default_mode, DefaultMode::Text);
        assert!(c.native_ping);
        assert!(!c.allow_missing_origin);
        assert_eq!(c.ping_interval_ms, DEFAULT_PING_INTERVAL_MS);
    }

    #[test]
    fn no_wsorigin_is_an_error() {
        let err = Config::from_raw(&RawConfig::default()).unwrap_err();
        assert_eq!(err, ConfigError::NoOrigins);
        assert_eq!(
            err.to_string(),
            "You have loaded the websocket module but not configured any allowed origins (<wsorigin allow=...>)"
        );
    }

    #[test]
    fn wsorigin_without_allow_is_an_error_naming_its_location() {
        for items in [
            &[][..],
            &[("allow", "")][..],
            &[("allow", "  ")][..],
            &[("alow", "x")][..],
        ] {
            let cfg = RawConfig {
                origins: vec![
                    tag(ORIGIN_LOC, &[("allow", "https://a.example")]),
                    tag("/etc/inspircd/ws.conf:3", items),
                ],
                websocket: None,
            };
            let message = Config::from_raw(&cfg).unwrap_err().to_string();
            assert_eq!(
                message,
                "<wsorigin:allow> is a mandatory field and must not be empty, at /etc/inspircd/ws.conf:3"
            );
        }
    }

    #[test]
    fn several_wsorigin_tags_are_all_allowed() {
        let cfg = RawConfig {
            origins: vec![
                tag(ORIGIN_LOC, &[("allow", "https://a.example")]),
                tag(LOC, &[("ALLOW", "https://b.example")]),
            ],
            websocket: None,
        };
        let c = Config::from_raw(&cfg).unwrap();
        assert!(c.origins.allows(b"https://a.example"));
        assert!(c.origins.allows(b"https://b.example"));
        assert_eq!(c.origins.len(), 2);
    }

    #[test]
    fn permissive_origin_patterns_warn_with_location() {
        let cfg = RawConfig {
            origins: vec![
                tag(ORIGIN_LOC, &[("allow", "*")]),
                tag(LOC, &[("allow", "https://*")]),
                tag(LOC, &[("allow", "https://irc.example")]),
            ],
            websocket: None,
        };
        let c = Config::from_raw(&cfg).unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].starts_with(&format!(
            "<wsorigin:allow> \"*\" at {ORIGIN_LOC} admits every website"
        )));
        assert!(c.warnings[1].starts_with(&format!(
            "<wsorigin:allow> \"https://*\" at {LOC} admits every website"
        )));
    }

    #[test]
    fn unknown_wsorigin_key_warns() {
        let cfg = RawConfig {
            origins: vec![tag(
                ORIGIN_LOC,
                &[("allow", "https://a.example"), ("deny", "x")],
            )],
            websocket: None,
        };
        let c = Config::from_raw(&cfg).unwrap();
        assert_eq!(
            c.warnings,
            [format!(
                "<wsorigin> at {ORIGIN_LOC} has an unknown key \"deny\"; it is ignored"
            )]
        );
    }

    #[test]
    fn defaultmode_accepts_each_mode_case_insensitively() {
        for (value, mode) in [
            ("text", DefaultMode::Text),
            ("binary", DefaultMode::Binary),
            ("reject", DefaultMode::Reject),
            ("BINARY", DefaultMode::Binary),
            ("Reject", DefaultMode::Reject),
        ] {
            assert_eq!(load(&[("defaultmode", value)]).unwrap().default_mode, mode);
        }
    }

    #[test]
    fn invalid_defaultmode_names_key_value_location_and_accepted_values() {
        assert_eq!(
            error(&[("defaultmode", "foo")]),
            "<websocket:defaultmode> has an invalid value \"foo\" at /etc/inspircd/inspircd.conf:12; accepted values: text, binary, reject"
        );
        assert_names(
            &error(&[("defaultmode", "")]),
            &["defaultmode", "\"\"", LOC],
        );
    }

    #[test]
    fn sendastext_no_means_binary_with_a_deprecation_warning() {
        let c = load(&[("sendastext", "no")]).unwrap();
        assert_eq!(c.default_mode, DefaultMode::Binary);
        assert_eq!(c.warnings.len(), 1);
        assert_names(
            &c.warnings[0],
            &["sendastext", "deprecated", LOC, "defaultmode=\"binary\""],
        );
    }

    #[test]
    fn sendastext_yes_means_text_with_a_deprecation_warning() {
        let c = load(&[("SendAsText", "yes")]).unwrap();
        assert_eq!(c.default_mode, DefaultMode::Text);
        assert_eq!(c.warnings.len(), 1);
        assert_names(
            &c.warnings[0],
            &["sendastext", "deprecated", "defaultmode=\"text\""],
        );
    }

    #[test]
    fn defaultmode_wins_over_sendastext_with_a_warning() {
        let c = load(&[("sendastext", "no"), ("defaultmode", "text")]).unwrap();
        assert_eq!(c.default_mode, DefaultMode::Text);
        assert_eq!(c.warnings.len(), 1);
        assert_names(&c.warnings[0], &["sendastext", "ignored", LOC]);
    }

    #[test]
    fn invalid_sendastext_is_an_error() {
        assert_eq!(
            error(&[("sendastext", "maybe")]),
            format!("<websocket:sendastext> has an invalid value \"maybe\" at {LOC}; accepted values: yes, no, true, false, on, off, 1, 0")
        );
    }

    #[test]
    fn booleans_accept_all_spellings_case_insensitively() {
        for (value, expected) in [
            ("yes", true),
            ("YES", true),
            ("true", true),
            ("On", true),
            ("1", true),
            ("no", false),
            ("False", false),
            ("off", false),
            ("0", false),
        ] {
            let c = load(&[("allowmissingorigin", value), ("nativeping", value)]).unwrap();
            assert_eq!(c.allow_missing_origin, expected, "{value}");
            assert_eq!(c.native_ping, expected, "{value}");
        }
    }

    #[test]
    fn invalid_booleans_name_key_value_and_location() {
        for key in ["allowmissingorigin", "nativeping", "sendastext"] {
            for value in ["2", "yess", "", "nope"] {
                let message = error(&[(key, value)]);
                assert_eq!(
                    message,
                    format!("<websocket:{key}> has an invalid value \"{value}\" at {LOC}; accepted values: {BOOLEAN_VALUES}")
                );
            }
        }
    }

    #[test]
    fn proxyranges_are_parsed() {
        let c = load(&[("proxyranges", "192.0.2.0/24 198.51.100.* ::1")]).unwrap();
        assert!(c.proxy_ranges.trusts("192.0.2.9"));
        assert!(c.proxy_ranges.trusts("198.51.100.9"));
        assert!(c.proxy_ranges.trusts("::1"));
        assert!(!c.proxy_ranges.trusts("203.0.113.1"));
        assert!(c.warnings.is_empty());
        assert!(load(&[("proxyranges", "")])
            .unwrap()
            .proxy_ranges
            .is_empty());
    }

    #[test]
    fn invalid_proxyrange_names_entry_and_location() {
        let message = error(&[("proxyranges", "192.0.2.0/24 10.0.0.0/33")]);
        assert_names(
            &message,
            &["<websocket:proxyranges>", "\"10.0.0.0/33\"", LOC, "CIDR"],
        );
        assert!(message.starts_with(&format!(
            "<websocket:proxyranges> has an invalid entry \"10.0.0.0/33\" at {LOC}: it is not a valid CIDR range"
        )));
        assert_names(
            &error(&[("proxyranges", "proxy.example")]),
            &["\"proxy.example\"", LOC],
        );
    }

    #[test]
    fn proxyranges_trusting_everyone_warn() {
        let c = load(&[("proxyranges", "* 192.0.2.0/24")]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert_names(&c.warnings[0], &["proxyranges", "\"*\"", LOC, "every"]);
    }

    #[test]
    fn unknown_websocket_keys_warn_not_fail() {
        let c = load(&[("maxmesage", "1K"), ("foo", "bar")]).unwrap();
        assert_eq!(
            c.warnings,
            [
                format!("<websocket> at {LOC} has an unknown key \"maxmesage\"; it is ignored"),
                format!("<websocket> at {LOC} has an unknown key \"foo\"; it is ignored"),
            ]
        );
    }

    #[test]
    fn keys_are_matched_case_insensitively() {
        let c = load(&[
            ("DefaultMode", "binary"),
            ("MAXMESSAGE", "1K"),
            ("NativePing", "no"),
        ])
        .unwrap();
        assert_eq!(c.default_mode, DefaultMode::Binary);
        assert_eq!(c.limits.max_message_bytes, 1024);
        assert!(!c.native_ping);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        assert_eq!(
            error(&[("maxmessage", "1K"), ("MaxMessage", "2K")]),
            format!("<websocket:maxmessage> is set more than once at {LOC}")
        );
    }

    #[test]
    fn limits_are_read_with_k_and_m_suffixes() {
        let c = load(&[
            ("maxhandshake", "16K"),
            ("maxheaders", "100"),
            ("maxmessage", "1M"),
            ("maxfragments", "1000"),
            ("pingburst", "5"),
            ("pingrate", "2"),
            ("closetimeout", "5s"),
        ])
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                max_handshake_bytes: 16 * 1024,
                max_handshake_headers: 100,
                max_message_bytes: 1024 * 1024,
                max_fragments: 1000,
                ping_burst: 5,
                ping_refill_ms: 2000,
                close_timeout_ms: 5000,
            }
        );
        assert_eq!(
            load(&[("maxmessage", "16m")])
                .unwrap()
                .limits
                .max_message_bytes,
            16 << 20
        );
        assert_eq!(
            load(&[("maxhandshake", " 2k ")])
                .unwrap()
                .limits
                .max_handshake_bytes,
            2048
        );
    }

    #[test]
    fn limits_accept_their_range_bounds() {
        for (key, low, high) in [
            ("maxhandshake", "1024", "262144"),
            ("maxheaders", "8", "256"),
            ("maxmessage", "512", "16M"),
            ("maxfragments", "1", "1000000"),
            ("pingburst", "1", "1000"),
            ("pingrate", "1s", "1h"),
            ("pinginterval", "1", "1d"),
            ("closetimeout", "0", "1m"),
        ] {
            assert!(load(&[(key, low)]).is_ok(), "{key}={low}");
            assert!(load(&[(key, high)]).is_ok(), "{key}={high}");
        }
    }

    #[test]
    fn out_of_range_limits_name_key_value_range_and_location() {
        for (key, value, range) in [
            ("maxhandshake", "1023", "1024 to 262144 bytes"),
            ("maxhandshake", "257K", "1024 to 262144 bytes"),
            ("maxheaders", "7", "8 to 256"),
            ("maxheaders", "257", "8 to 256"),
            ("maxmessage", "511", "512 to 16777216 bytes"),
            ("maxmessage", "17M", "512 to 16777216 bytes"),
            ("maxfragments", "0", "1 to 1000000"),
            ("maxfragments", "1000001", "1 to 1000000"),
            ("pingburst", "0", "1 to 1000"),
            ("pingburst", "1001", "1 to 1000"),
        ] {
            let message = error(&[(key, value)]);
            assert!(
                message.starts_with(&format!(
                    "<websocket:{key}> has an out-of-range value \"{value}\" at {LOC}; accepted range: {range}"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn non_numeric_limits_name_key_value_range_and_location() {
        for value in [
            "",
            "abc",
            "1.5K",
            "-1",
            "+5",
            "10G",
            "K",
            "1 K",
            "99999999999999999999",
        ] {
            let message = error(&[("maxmessage", value)]);
            assert!(
                message.starts_with(&format!(
                    "<websocket:maxmessage> has an invalid value \"{value}\" at {LOC}: not a number; accepted range: 512 to 16777216 bytes"
                )),
                "{message}"
            );
        }
        // A huge number times the suffix overflows: still "not a number", never a panic.
        assert_names(
            &error(&[("maxmessage", "18446744073709551615M")]),
            &["not a number"],
        );
    }

    #[test]
    fn durations_use_inspircd_syntax() {
        for (value, ms) in [
            ("90", 90_000),
            ("1m30s", 90_000),
            ("1m30", 90_000),
            ("2M", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("1s", 1000),
        ] {
            assert_eq!(
                load(&[("pinginterval", value)]).unwrap().ping_interval_ms,
                ms,
                "{value}"
            );
        }
        assert_eq!(parse_duration("1w"), Some(604_800));
        assert_eq!(parse_duration("1y"), Some(31_536_000));
        assert_eq!(
            parse_duration("1y1w1d1h1m1s"),
            Some(31_536_000 + 604_800 + 86_400 + 3661)
        );
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("99999999999999999999"), None);
        assert_eq!(parse_duration("999999999999999999y"), None);
    }

    #[test]
    fn invalid_durations_name_key_value_syntax_and_location() {
        for key in ["pinginterval", "pingrate"] {
            for value in ["soon", "", "1.5s", "-1", "s"] {
                let message = error(&[(key, value)]);
                assert!(
                    message.starts_with(&format!(
                        "<websocket:{key}> has an invalid duration \"{value}\" at {LOC}; accepted: a number of seconds"
                    )),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn out_of_range_durations_name_key_value_range_and_location() {
        for (key, value, range) in [
            ("pinginterval", "0", "1 to 86400 seconds"),
            ("pinginterval", "1d1s", "1 to 86400 seconds"),
            ("pinginterval", "1y", "1 to 86400 seconds"),
            ("pingrate", "0s", "1 to 3600 seconds"),
            ("pingrate", "1h1s", "1 to 3600 seconds"),
            ("closetimeout", "61", "0 to 60 seconds"),
        ] {
            assert_eq!(
                error(&[(key, value)]),
                format!("<websocket:{key}> has an out-of-range value \"{value}\" at {LOC}; accepted range: {range}")
            );
        }
    }

    #[test]
    fn errors_are_reported_even_with_a_valid_default_elsewhere() {
        // The first bad key in the tag is reported; the config is not half-applied.
        assert!(load(&[("defaultmode", "binary"), ("maxheaders", "1")]).is_err());
    }

    #[test]
    fn bad_input_10_configured_allow_list_refuses_other_origins() {
        let c = Config::from_raw(&raw(None)).unwrap();
        assert!(!c.allow_missing_origin);
        assert!(!c.origins.allows(b"https://example.com.evil.test"));
        assert!(c.origins.allows(b"https://irc.example.com"));
    }
}
