//! Every configuration key, once: its name, how its value is written, its default on
//! each InspIRCd version, its range and unit, and which versions accept it. Parsing,
//! defaults, range errors, the unknown-key warning and the test that README.md and
//! modules.conf.example document exactly these keys all read this table.

use std::ops::RangeInclusive;

/// How a key's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0` (ASCII case-insensitive).
    Boolean,
    /// One word of a [`Choice`] type (ASCII case-insensitive).
    Choice,
    /// A number of bytes, with an optional `K` (×1024) or `M` (×1024²) suffix.
    Size,
    /// A count (the same suffixes are accepted).
    Count,
    /// An InspIRCd duration: seconds, or numbers with units `y w d h m s` (`1m30s`).
    Duration,
    /// Text that the key's own parser reads (`proxyranges`, `allow`).
    Text,
}

/// The values of a [`Kind::Choice`] key: an enum whose every variant has its word, so
/// that a new variant is a new accepted word with nothing else to keep in step.
pub trait Choice: Copy + strum::IntoEnumIterator {
    /// The word naming this value in the configuration.
    fn word(self) -> &'static str;

    /// The value `text` names (ASCII case-insensitive, spaces around it ignored).
    fn from_word(text: &str) -> Option<Self> {
        Self::iter().find(|value| text.trim().eq_ignore_ascii_case(value.word()))
    }

    /// Every word, for errors: "a, b, c".
    fn words() -> String {
        Self::iter().map(Self::word).collect::<Vec<_>>().join(", ")
    }
}

/// An InspIRCd major version, whose stock module defines the keys it knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerVersion {
    #[default]
    V3,
    V4,
}

/// Both versions.
const BOTH: &[ServerVersion] = &[ServerVersion::V3, ServerVersion::V4];

/// For keys whose value has no range.
const NO_RANGE: RangeInclusive<u64> = 0..=0;

/// One key of a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub tag: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    /// The default on InspIRCd 3, written as a value would be (and parsed the same
    /// way); empty for none.
    pub default_v3: &'static str,
    /// The default on InspIRCd 4 (its stock module's, where it has the key).
    pub default_v4: &'static str,
    /// Accepted values: bytes for sizes, a count, or seconds for durations.
    pub range: RangeInclusive<u64>,
    /// The versions whose configuration may have the key.
    pub servers: &'static [ServerVersion],
}

impl Key {
    /// The default on `server`.
    pub fn default_on(&self, server: ServerVersion) -> &'static str {
        match server {
            ServerVersion::V3 => self.default_v3,
            ServerVersion::V4 => self.default_v4,
        }
    }
}

/// `<websocket>`'s tag name.
pub const WEBSOCKET: &str = "websocket";
/// `<wsorigin>`'s tag name.
pub const WSORIGIN: &str = "wsorigin";

const fn key(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    range: RangeInclusive<u64>,
) -> Key {
    Key {
        tag: WEBSOCKET,
        name,
        kind,
        default_v3: default,
        default_v4: default,
        range,
        servers: BOTH,
    }
}

/// What to do when a client requests no known subprotocol.
pub const DEFAULT_MODE: Key = key("defaultmode", Kind::Choice, "text", NO_RANGE);
/// Deprecated (InspIRCd 3.12): `defaultmode` when that is absent (`no` = binary).
pub const SEND_AS_TEXT: Key = key("sendastext", Kind::Boolean, "yes", NO_RANGE);
/// Trusted reverse proxies.
pub const PROXY_RANGES: Key = key("proxyranges", Kind::Text, "", NO_RANGE);
/// Which real-address header the proxies set: `any` (every standard one sent must
/// agree), `x-real-ip`, `x-forwarded-for`, `forwarded` (RFC 7239) or any header name.
pub const PROXY_HEADER: Key = key("proxyheader", Kind::Text, "any", NO_RANGE);
/// Peers in `proxyranges` begin with a PROXY protocol header (v1 or v2), which gives
/// the client's address; their HTTP address headers are then not read. Named after
/// nginx's `proxy_protocol` and HAProxy's `send-proxy`: a boolean, since a TCP-mode
/// balancer sends it on every connection or on none.
pub const PROXY_PROTOCOL: Key = key("proxyprotocol", Kind::Boolean, "no", NO_RANGE);
/// The header a trusted proxy overwrites with the scheme its client used, which makes
/// TLS clients secure users: `none`, `x-forwarded-proto` or `forwarded` (its
/// `proto=`). Off by default: a proxy passes on the headers it does not set itself.
pub const PROXY_PROTO_HEADER: Key = key("proxyprotoheader", Kind::Choice, "none", NO_RANGE);
/// A request path answered `200` and closed, for load balancers' health checks
/// (`/health`, say); empty (the default): none.
pub const HEALTH_CHECK: Key = key("healthcheck", Kind::Text, "", NO_RANGE);
/// Accept upgrade requests without an Origin header. InspIRCd 4's stock module admits
/// them by default; InspIRCd 3's refused them with 400.
pub const ALLOW_MISSING_ORIGIN: Key = Key {
    default_v4: "yes",
    ..key("allowmissingorigin", Kind::Boolean, "no", NO_RANGE)
};
/// Send keepalive ping frames.
pub const NATIVE_PING: Key = key("nativeping", Kind::Boolean, "yes", NO_RANGE);
/// Time without receiving or without sending before a keepalive ping: half of nginx's
/// default 60 s `proxy_read_timeout` (which counts only what the server sends), well
/// below Cloudflare's 100 s. 1 second to 1 day.
pub const PING_INTERVAL: Key = key("pinginterval", Kind::Duration, "30s", 1..=86_400);
/// How long a socket waits for the client's close frame after the server's
/// ([`crate::linger`]); browsers answer within a round trip. 0 (at once) to 1 minute.
pub const CLOSE_TIMEOUT: Key = key("closetimeout", Kind::Duration, "2s", 0..=60);
/// Largest upgrade request: nginx's default `large_client_header_buffers 4 8k` passes
/// requests of up to 32 KiB, to which it adds its own headers; a browser sending a
/// site's large cookies directly is admitted too. 1 KiB to 256 KiB.
pub const MAX_HANDSHAKE: Key = key("maxhandshake", Kind::Size, "40K", 1024..=256 * 1024);
/// Most header lines in an upgrade request.
pub const MAX_HEADERS: Key = key("maxheaders", Kind::Count, "64", 8..=256);
/// Largest message after reassembly (close 1009 beyond). 512 bytes to 16 MiB.
pub const MAX_MESSAGE: Key = key("maxmessage", Kind::Size, "16K", 512..=16 * 1024 * 1024);
/// Most frames per message (close 1008 beyond).
pub const MAX_FRAGMENTS: Key = key("maxfragments", Kind::Count, "64", 1..=1_000_000);
/// Ping frames a client may send back to back.
pub const PING_BURST: Key = key("pingburst", Kind::Count, "10", 1..=1000);
/// One ping of the burst regained per this duration: a client pinging once a second
/// is never limited with the defaults. 1 second to 1 hour.
pub const PING_RATE: Key = key("pingrate", Kind::Duration, "1s", 1..=3600);

/// Accept permessage-deflate (RFC 7692) when a client offers it. Off by default: each
/// compressing connection keeps its window and a hash table ([`crate::compression`]).
pub const COMPRESSION: Key = key("compression", Kind::Boolean, "no", NO_RANGE);
/// The server's LZ77 window in bits, 8 to 15: what each message may refer back to,
/// and the bytes of history a connection keeps.
pub const COMPRESSION_WINDOW: Key = key("compressionwindow", Kind::Count, "12", 8..=15);
/// The match finder's hash table in bits, 8 to 14: 2^N entries of 2 bytes per
/// compressing connection; too small a table forgets text still in the window.
pub const COMPRESSION_HASH: Key = key("compressionhash", Kind::Count, "10", 8..=14);
/// Messages shorter than this many bytes are sent uncompressed. 0 to 64 KiB.
pub const COMPRESSION_MIN_SIZE: Key = key("compressionminsize", Kind::Size, "16", 0..=64 * 1024);

/// Every key of `<websocket>`.
pub const WEBSOCKET_KEYS: [&Key; 21] = [
    &DEFAULT_MODE,
    &SEND_AS_TEXT,
    &PROXY_RANGES,
    &PROXY_HEADER,
    &PROXY_PROTOCOL,
    &PROXY_PROTO_HEADER,
    &HEALTH_CHECK,
    &ALLOW_MISSING_ORIGIN,
    &NATIVE_PING,
    &PING_INTERVAL,
    &CLOSE_TIMEOUT,
    &MAX_HANDSHAKE,
    &MAX_HEADERS,
    &MAX_MESSAGE,
    &MAX_FRAGMENTS,
    &PING_BURST,
    &PING_RATE,
    &COMPRESSION,
    &COMPRESSION_WINDOW,
    &COMPRESSION_HASH,
    &COMPRESSION_MIN_SIZE,
];

/// A web page's origin allowed to connect (required, at least one tag).
pub const ALLOW: Key = Key {
    tag: WSORIGIN,
    ..key("allow", Kind::Text, "", NO_RANGE)
};

/// Every key of `<wsorigin>`.
pub const WSORIGIN_KEYS: [&Key; 1] = [&ALLOW];
