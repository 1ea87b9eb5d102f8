//! InspIRCd-style wildcard patterns (`*` and `?`, ASCII case-insensitive), shared by
//! `<wsorigin allow>` and the glob form of `<websocket proxyranges>`.
//!
//! # Semantics (those of `InspIRCd::Match` with `ascii_case_insensitive_map`)
//!
//! - `*` matches any run of bytes, including an empty one and including `/`;
//! - `?` matches exactly one byte (InspIRCd works on bytes, so a multi-byte UTF-8
//!   character needs one `?` per byte);
//! - every other character matches itself, ASCII letters case-insensitively
//!   (`A`-`Z` = `a`-`z`; no Unicode case folding, so `É` does not match `é`);
//! - the pattern must match the whole candidate, not a part of it.
//!
//! # Why globset plus escaping, not a hand-written matcher
//!
//! A hand-written backtracking matcher for `*`/`?` is short, but the obvious versions
//! are quadratic or exponential on hostile input (`*a*a*a*a*b` against `aaaa…`), and the
//! candidate here is an Origin header chosen by whoever connects. globset compiles a
//! whole set of patterns into one regex automaton (regex-automata: lazy DFA with a
//! bounded cache), so a match is linear in the candidate length whatever the patterns
//! are, and it is well tested. The price is that globset's syntax is richer than
//! InspIRCd's, so each pattern is translated:
//!
//! - every character other than `*` and `?` is backslash-escaped (with
//!   `backslash_escape(true)`), so `[`, `]`, `{`, `}`, `,`, `\`, `!` and anything
//!   globset may ever treat specially are literals;
//! - runs of `*` collapse to one `*` (globset gives `**` a path meaning; for InspIRCd
//!   `**` is the same as `*`);
//! - `literal_separator(false)`, so `*` and `?` also match `/`;
//! - `case_insensitive(true)`: globset builds its regex with Unicode disabled
//!   (`(?-u)(?i)`), which folds ASCII letters only, exactly like InspIRCd's
//!   `ascii_case_insensitive_map`, and without copying the candidate per match.
//!   Case-insensitive globs also always use globset's plain regex strategy: its
//!   literal/extension/suffix shortcuts look at a candidate's "file name", which a
//!   path ending in `..` does not have, so `*.` would otherwise fail to match `..`.
//!
//! Candidates are byte strings and need not be UTF-8: they are matched byte for byte
//! (globset's `Candidate::from_bytes`). On non-Unix targets globset would rewrite `\`
//! in a candidate to `/`; the module is built for Unix (InspIRCd on Linux/BSD) only.

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled set of InspIRCd-style wildcard patterns; matches when any one does.
#[derive(Clone, Debug, Default)]
pub struct WildcardSet {
    set: GlobSet,
}

impl WildcardSet {
    /// Compiles `patterns` into one set. Fails only if globset refuses the translated
    /// pattern (in practice: a pattern so long that its automaton would exceed
    /// globset's 10 MiB size limit).
    pub fn new<I, S>(patterns: I) -> Result<WildcardSet, globset::Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            builder.add(compile(pattern.as_ref())?);
        }
        Ok(WildcardSet {
            set: builder.build()?,
        })
    }

    /// True when the set holds no pattern (it then matches nothing).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// True when some pattern matches the whole of `candidate` (any bytes, UTF-8 or not).
    pub fn is_match(&self, candidate: &[u8]) -> bool {
        self.set
            .is_match_candidate(&Candidate::from_bytes(candidate))
    }
}

/// Checks that one pattern compiles, with the same translation the set uses.
pub fn validate(pattern: &str) -> Result<(), globset::Error> {
    compile(pattern).map(drop)
}

fn compile(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(&translate(pattern))
        .literal_separator(false)
        .backslash_escape(true)
        .case_insensitive(true)
        .build()
}

/// Rewrites an InspIRCd pattern into globset syntax with the same meaning (see the
/// module docs): `*` (runs collapsed) and `?` stay, everything else is escaped.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut previous_was_star = false;
    for c in pattern.chars() {
        match c {
            '*' => {
                if !previous_was_star {
                    out.push('*');
                }
                previous_was_star = true;
                continue;
            }
            '?' => out.push('?'),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        previous_was_star = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(patterns: &[&str]) -> WildcardSet {
        WildcardSet::new(patterns).unwrap()
    }

    fn matches(pattern: &str, candidate: &str) -> bool {
        set(&[pattern]).is_match(candidate.as_bytes())
    }

    /// `InspIRCd::Match` with `ascii_case_insensitive_map`, written the slow obvious way
    /// (dynamic programming over bytes) as the oracle for the property tests.
    fn reference_match(pattern: &[u8], candidate: &[u8]) -> bool {
        let p: Vec<u8> = pattern.to_ascii_lowercase();
        let s: Vec<u8> = candidate.to_ascii_lowercase();
        // dp[j] = pattern prefix of length i matches candidate prefix of length j
        let mut dp = vec![false; s.len() + 1];
        dp[0] = true;
        for &pc in &p {
            let mut next = vec![false; s.len() + 1];
            if pc == b'*' {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= dp[j];
                    next[j] = any;
                }
            } else {
                for j in 1..=s.len() {
                    next[j] = dp[j - 1] && (pc == b'?' || pc == s[j - 1]);
                }
            }
            dp = next;
        }
        dp[s.len()]
    }

    #[test]
    fn star_matches_any_run_including_empty_and_slash() {
        assert!(matches("https://*", "https://"));
        assert!(matches("https://*", "https://a.example/path/x"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything/at:all"));
        assert!(matches("a*b*c", "a/x/b//c"));
        assert!(!matches("a*b", "a/x/c"));
    }

    #[test]
    fn question_mark_matches_exactly_one_byte() {
        assert!(matches("http://?.example", "http://a.example"));
        assert!(matches("http://?.example", "http:///.example"));
        assert!(!matches("http://?.example", "http://.example"));
        assert!(!matches("http://?.example", "http://ab.example"));
        // "é" is two bytes in UTF-8.
        assert!(matches("??", "é"));
        assert!(!matches("?", "é"));
    }

    #[test]
    fn whole_value_must_match_not_a_substring() {
        assert!(!matches("https://a.example", "https://a.example.evil.test"));
        assert!(!matches("https://a.example", "xhttps://a.example"));
        assert!(!matches("a.example", "https://a.example"));
        assert!(!matches("", "a"));
        assert!(matches("", ""));
    }

    #[test]
    fn brackets_in_patterns_match_literally() {
        assert!(matches("https://[x].example", "https://[x].example"));
        assert!(!matches("https://[x].example", "https://x.example"));
        assert!(matches(
            "http://[2001:db8::1]:*",
            "http://[2001:db8::1]:8080"
        ));
        assert!(matches("[!a]", "[!a]"));
        assert!(!matches("[!a]", "b"));
        assert!(matches("[", "["));
        assert!(matches("]", "]"));
    }

    #[test]
    fn braces_and_commas_in_patterns_match_literally() {
        assert!(matches("{a,b}", "{a,b}"));
        assert!(!matches("{a,b}", "a"));
        assert!(!matches("{a,b}", "b"));
        assert!(matches("x{", "x{"));
        assert!(matches("}", "}"));
        assert!(matches("a,b", "a,b"));
    }

    #[test]
    fn backslash_in_patterns_matches_literally() {
        assert!(matches(r"a\b", r"a\b"));
        assert!(!matches(r"a\b", "ab"));
        assert!(matches(r"\*", r"\anything"));
        assert!(!matches(r"\*", "*"));
        assert!(matches("\\", "\\"));
        assert!(matches(r"a\?", r"a\x"));
    }

    #[test]
    fn double_star_is_the_same_as_star() {
        assert!(matches("**", "a/b/c"));
        // globset's `a/**/b` would match `a/b`; InspIRCd's needs both slashes.
        assert!(!matches("a/**/b", "a/b"));
        assert!(matches("a/**/b", "a//b"));
        assert!(matches("a/**/b", "a/x/y/b"));
        assert!(!matches("a/**/b", "ab"));
        assert!(matches("https://**.example", "https://x.y.example"));
        assert!(matches("***", ""));
    }

    #[test]
    fn case_insensitive_for_ascii_only() {
        assert!(matches("HTTPS://A.Example", "https://a.EXAMPLE"));
        assert!(matches("https://*.EXAMPLE", "HTTPS://WWW.example"));
        assert!(!matches("https://é.example", "https://É.example"));
        // U+212A KELVIN SIGN folds to 'k' under Unicode rules, not under ASCII ones.
        assert!(!matches("k", "\u{212A}"));
        assert!(matches("é", "é"));
    }

    #[test]
    fn dotdot_candidates_match_like_inspircd() {
        assert!(matches("*.", ".."));
        assert!(matches("a/*.", "a/.."));
        assert!(matches("*..", ".."));
        assert!(matches("..", ".."));
    }

    #[test]
    fn non_utf8_candidates_are_matched_byte_for_byte() {
        let s = set(&["https://*", "x?y"]);
        assert!(s.is_match(b"https://\xff\xfe"));
        assert!(s.is_match(b"x\x80y"));
        assert!(!s.is_match(b"\xffhttps://"));
    }

    #[test]
    fn set_matches_when_any_pattern_matches() {
        let s = set(&["https://a.example", "https://*.b.example"]);
        assert!(s.is_match(b"https://a.example"));
        assert!(s.is_match(b"https://www.b.example"));
        assert!(!s.is_match(b"https://c.example"));
        assert!(!s.is_empty());
    }

    #[test]
    fn empty_set_matches_nothing() {
        let s = WildcardSet::default();
        assert!(s.is_empty());
        assert!(!s.is_match(b""));
        assert!(!s.is_match(b"x"));
        assert!(!set(&[]).is_match(b"x"));
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let s = set(&["*a*a*a*a*a*a*a*a*a*a*b"]);
        let candidate = vec![b'a'; 64 * 1024];
        assert!(!s.is_match(&candidate));
    }

    #[test]
    fn validate_accepts_any_ordinary_pattern() {
        for p in ["", "*", "[", "{", "}", "\\", "a{b,c}", "[!]"] {
            assert!(validate(p).is_ok(), "{p}");
        }
    }

    proptest! {
        #[test]
        fn is_match_never_panics_on_arbitrary_bytes(
            pattern in ".{0,40}",
            candidate in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let s = WildcardSet::new([pattern.as_str()]).unwrap();
            let _ = s.is_match(&candidate);
        }

        #[test]
        fn pattern_without_wildcards_matches_exactly_its_ascii_case_insensitive_equals(
            pattern in "[^*?]{0,30}",
            candidate in "[^*?]{0,30}",
        ) {
            let s = WildcardSet::new([pattern.as_str()]).unwrap();
            prop_assert!(s.is_match(pattern.as_bytes()));
            prop_assert!(s.is_match(pattern.to_ascii_uppercase().as_bytes()));
            prop_assert!(s.is_match(pattern.to_ascii_lowercase().as_bytes()));
            prop_assert_eq!(
                s.is_match(candidate.as_bytes()),
                pattern.eq_ignore_ascii_case(&candidate)
            );
        }

        #[test]
        fn agrees_with_inspircd_match_on_tricky_alphabets(
            pattern in "[aAb*?./\\[\\]{},!\\\\^-]{0,12}",
            candidate in "[aAbB./\\[\\]{},!\\\\^-]{0,12}",
        ) {
            let s = WildcardSet::new([pattern.as_str()]).unwrap();
            prop_assert_eq!(
                s.is_match(candidate.as_bytes()),
                reference_match(pattern.as_bytes(), candidate.as_bytes())
            );
        }

        #[test]
        fn agrees_with_inspircd_match_on_arbitrary_bytes(
            pattern in "[a.*?\u{e9}]{0,8}",
            candidate in proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'A'), Just(b'.'), Just(0xc3u8), Just(0xa9u8), any::<u8>()],
                0..16,
            ),
        ) {
            let s = WildcardSet::new([pattern.as_str()]).unwrap();
            prop_assert_eq!(
                s.is_match(&candidate),
                reference_match(pattern.as_bytes(), &candidate)
            );
        }
    }
}
