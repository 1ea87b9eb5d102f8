//! `<wsorigin allow>` matching with `InspIRCd::Match` semantics.
//!
//! A browser sends the page's origin (`https://app.example:8443`, scheme + host +
//! optional port, no path) in the `Origin` header of the upgrade request. The request
//! is allowed when some `<wsorigin allow="...">` pattern matches the whole value:
//! `*` matches any run of characters (including none), `?` exactly one byte, letters
//! compare ASCII case-insensitively, and every other character (`[`, `{`, `\` …)
//! matches itself. A missing Origin is answered with 400 and a non-matching one with
//! 403 by the handshake (stock behaviour).

use crate::wildcard::WildcardSet;

/// Probe origins used by [`OriginAllowList::permissive_patterns`]: very different
/// websites under one scheme. A pattern that admits all of them, for `http` or for
/// `https`, is taken to admit every website.
const PROBE_HOSTS: [&str; 5] = [
    "a.example",
    "zz.invalid:8443",
    "192.0.2.1",
    "xn--bcher-kva.example",
    "evil-site.test",
];
const PROBE_SCHEMES: [&str; 2] = ["https://", "http://"];

/// The compiled `<wsorigin allow>` patterns.
#[derive(Clone, Debug, Default)]
pub struct OriginAllowList {
    patterns: Vec<String>,
    set: WildcardSet,
}

impl OriginAllowList {
    /// Compiles the allow patterns, in configuration order. An empty list allows
    /// nothing (the configuration layer refuses to load without a `<wsorigin>`).
    /// Errors only for patterns globset cannot compile (absurdly long ones).
    pub fn new<I, S>(patterns: I) -> Result<OriginAllowList, globset::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns: Vec<String> = patterns
            .into_iter()
            .map(|p| p.as_ref().to_owned())
            .collect();
        let set = WildcardSet::new(&patterns)?;
        Ok(OriginAllowList { patterns, set })
    }

    /// True when some pattern matches the whole Origin value. The value is the raw
    /// header bytes (already trimmed by the handshake parser); non-UTF-8 bytes are
    /// matched byte for byte and can only be matched by `*` or `?`.
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.set.is_match(origin)
    }

    /// The patterns as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// True when there is no pattern (nothing is allowed).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The patterns that admit every website, for a configuration warning.
    ///
    /// A pattern counts as permissive when, for `https://` or for `http://`, it matches
    /// every one of a handful of very different probe origins (`a.example`,
    /// `zz.invalid:8443`, `192.0.2.1`, an IDN name, `evil-site.test`). This flags `*`,
    /// `http://*`, `https://*`, `http*://*`, `*://*`, `https://*.*` and the like, and
    /// leaves alone anything that names a site (`https://*.example.com`,
    /// `https://irc.example:*`). It is a heuristic for a warning, not a security check.
    pub fn permissive_patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .filter(|p| is_permissive_pattern(p))
            .cloned()
            .collect()
    }
}

/// Whether one `<wsorigin allow>` pattern admits every website: it matches every probe
/// origin (see [`OriginAllowList::permissive_patterns`]) of `https://` or of `http://`.
pub fn is_permissive_pattern(pattern: &str) -> bool {
    let Ok(set) = WildcardSet::new([pattern]) else {
        return false;
    };
    PROBE_SCHEMES.iter().any(|scheme| {
        PROBE_HOSTS
            .iter()
            .all(|host| set.is_match(format!("{scheme}{host}").as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> OriginAllowList {
        OriginAllowList::new(patterns).unwrap()
    }

    #[test]
    fn exact_origin_is_allowed_case_insensitively() {
        let l = list(&["https://irc.example"]);
        assert!(l.allows(b"https://irc.example"));
        assert!(l.allows(b"HTTPS://IRC.Example"));
        assert!(!l.allows(b"https://irc.example:8443"));
        assert!(!l.allows(b"http://irc.example"));
    }

    #[test]
    fn subdomain_wildcard_allows_subdomains_only() {
        let l = list(&["https://*.example.com"]);
        assert!(l.allows(b"https://www.example.com"));
        assert!(l.allows(b"https://a.b.example.com"));
        assert!(!l.allows(b"https://example.com"));
        assert!(!l.allows(b"https://evilexample.com"));
        assert!(!l.allows(b"https://www.example.com.evil.test"));
    }

    // BAD_INPUT row 10 (allow-list part): an Origin not matched by any <wsorigin> is
    // refused (the handshake answers 403); a missing Origin never reaches this list.
    #[test]
    fn bad_input_10_origin_not_in_allow_list_is_refused() {
        let l = list(&["https://kiwi.example", "https://*.chat.example"]);
        assert!(!l.allows(b"https://evil.test"));
        assert!(!l.allows(b""));
        assert!(!l.allows(b"null"));
        assert!(!l.allows(b"https://kiwi.example.evil.test"));
        assert!(!l.allows(b"https://kiwi.example\xff"));
        assert!(l.allows(b"https://kiwi.example"));
        assert!(l.allows(b"https://web.chat.example"));
    }

    #[test]
    fn any_of_several_patterns_allows() {
        let l = list(&["https://a.example", "http://localhost:*"]);
        assert!(l.allows(b"https://a.example"));
        assert!(l.allows(b"http://localhost:8080"));
        assert!(!l.allows(b"http://localhost"));
        assert_eq!(l.len(), 2);
        assert_eq!(l.patterns(), ["https://a.example", "http://localhost:*"]);
    }

    #[test]
    fn glob_metacharacters_in_origins_are_literal() {
        let l = list(&["http://[2001:db8::1]:*", "https://{a,b}.example"]);
        assert!(l.allows(b"http://[2001:db8::1]:8080"));
        assert!(!l.allows(b"http://2:8080"));
        assert!(l.allows(b"https://{a,b}.example"));
        assert!(!l.allows(b"https://a.example"));
    }

    #[test]
    fn empty_list_allows_nothing() {
        let l = OriginAllowList::default();
        assert!(l.is_empty());
        assert!(!l.allows(b"https://a.example"));
        assert!(!list(&[]).allows(b""));
    }

    #[test]
    fn permissive_patterns_are_reported() {
        let l = list(&[
            "*",
            "https://*",
            "http://*",
            "http*://*",
            "*://*",
            "https://*.*",
            "HTTPS://*",
        ]);
        assert_eq!(l.permissive_patterns().len(), 7);
    }

    #[test]
    fn site_specific_patterns_are_not_reported_as_permissive() {
        let l = list(&[
            "https://*.example.com",
            "https://irc.example:*",
            "https://a.example",
            "http://localhost:*",
            "https://*.example",
            "*.invalid",
        ]);
        assert_eq!(l.permissive_patterns(), Vec::<String>::new());
    }

    #[test]
    fn permissive_patterns_keeps_configuration_order() {
        let l = list(&["https://a.example", "*", "https://b.example", "http://*"]);
        assert_eq!(l.permissive_patterns(), ["*", "http://*"]);
    }
}
