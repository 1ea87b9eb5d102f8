//! Configuration errors: each names the tag, the key, the bad value, what would be
//! accepted and the tag's location, and refuses the load or the rehash.

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
        accepted: String,
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
