//! Trusted reverse proxies (`<websocket proxyranges>`) and the real client address
//! they report in `X-Real-IP` / `X-Forwarded-For`.
//!
//! # Ranges
//!
//! `proxyranges` is a space-separated list. Each entry is, as with InspIRCd's
//! `MatchCIDR` (which falls back to glob matching):
//!
//! - a CIDR range, IPv4 or IPv6: `192.0.2.0/24`, `2001:db8::/32`;
//! - a bare address, meaning `/32` or `/128`: `203.0.113.5`, `::1` (also `[::1]`);
//! - otherwise a glob over the peer's address text, with `*` and `?` as in
//!   `<wsorigin>`: `198.51.100.*`, `2001:db8:*`. To catch typos, a glob must contain a
//!   wildcard and consist only of characters that occur in address text (hex digits,
//!   `.`, `:`); `10.0.0.0/33` or `proxy.example` are refused rather than silently
//!   never matching.
//!
//! A peer given as an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a dual-stack
//! listener) is also checked as its IPv4 form, so IPv4 ranges apply to it.
//!
//! # Headers
//!
//! With ranges configured every client must send a well-formed header (stock
//! behaviour; 400 otherwise), and it is applied only when the peer is trusted.
//! `<websocket proxyheader>` ([`ProxyHeader`]) names the header the proxies set; an
//! address from a header is given in canonical form (IPv4-mapped IPv6 as plain IPv4).
//! See [`ProxyRanges::real_client_ip`].

use std::net::IpAddr;

use ipnet::IpNet;

use crate::wildcard::WildcardSet;

/// IPv4 and IPv6 probe addresses: a glob entry matching every probe of one family is
/// reported by [`ProxyRanges::trusts_everyone_entries`].
const PROBES_V4: [&str; 4] = ["192.0.2.1", "10.255.3.4", "203.0.113.200", "1.1.1.1"];
const PROBES_V6: [&str; 4] = ["2001:db8::1", "fe80::abcd", "::1", "2606:4700::1111"];

/// The parsed `proxyranges` value.
#[derive(Clone, Debug, Default)]
pub struct ProxyRanges {
    /// Every entry as written, in order.
    entries: Vec<String>,
    /// The entries that are CIDR ranges or bare addresses.
    nets: Vec<IpNet>,
    /// The entries that are globs over the address text, as written.
    glob_patterns: Vec<String>,
    /// `glob_patterns` compiled.
    globs: WildcardSet,
}

/// Why a proxied request is refused (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no X-Real-IP or X-Forwarded-For header")]
    MissingHeader,
    #[error("malformed X-Real-IP or X-Forwarded-For header")]
    MalformedHeader,
}

/// A `proxyranges` entry that is neither a CIDR range, an address nor a usable glob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry \"{entry}\" is {problem}")]
pub struct ProxyRangeError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it, e.g. "not a valid CIDR range".
    pub problem: String,
}

/// What one entry turned out to be.
enum Entry {
    Net(IpNet),
    Glob,
}

fn parse_entry(entry: &str) -> Result<Entry, ProxyRangeError> {
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(Entry::Net(net));
    }
    if let Some(ip) = parse_ip(entry) {
        return Ok(Entry::Net(IpNet::from(ip)));
    }
    let has_wildcard = entry.contains(['*', '?']);
    let address_chars_only = entry
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '*' | '?'));
    if has_wildcard && address_chars_only {
        return match crate::wildcard::validate(entry) {
            Ok(()) => Ok(Entry::Glob),
            Err(e) => Err(ProxyRangeError {
                entry: entry.to_owned(),
                problem: format!("a glob that cannot be compiled ({e})"),
            }),
        };
    }
    let problem = if entry.contains('/') {
        "not a valid CIDR range (address/prefix length, e.g. 192.0.2.0/24 or 2001:db8::/32)"
    } else if has_wildcard {
        "a glob with characters that never occur in an IP address (only hex digits, '.', ':', '*' and '?' are allowed)"
    } else {
        "neither an IP address, a CIDR range nor a glob of address text (e.g. 198.51.100.*)"
    };
    Err(ProxyRangeError {
        entry: entry.to_owned(),
        problem: problem.to_owned(),
    })
}

/// Parses an IP address as it appears in a header or a peer string: surrounding
/// spaces/tabs trimmed, optional `[...]` brackets around it removed.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim_matches([' ', '\t']);
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    text.parse().ok()
}

/// Which real-IP header the trusted proxies set (`<websocket proxyheader>`).
///
/// No fixed precedence between the two headers is safe for every proxy: a proxy that
/// only appends to `X-Forwarded-For` passes a client's own `X-Real-IP` through, and one
/// that only sets `X-Real-IP` passes a client's `X-Forwarded-For` through. Naming the
/// header the proxies set (as nginx's `real_ip_header` does) makes the other one
/// irrelevant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, strum::EnumIter)]
pub enum ProxyHeader {
    /// Only `X-Real-IP` is read.
    RealIp,
    /// Only `X-Forwarded-For` is read.
    ForwardedFor,
    /// `X-Real-IP` when it is a well-formed address, else `X-Forwarded-For`: the stock
    /// module's rule, and the default.
    #[default]
    Any,
}

impl ProxyHeader {
    /// The configuration value naming this choice.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyHeader::RealIp => "x-real-ip",
            ProxyHeader::ForwardedFor => "x-forwarded-for",
            ProxyHeader::Any => "any",
        }
    }
}

impl crate::config::keys::Choice for ProxyHeader {
    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// The real-IP headers of one request, as received (several X-Forwarded-For lines
/// joined into one list).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyHeaders<'a> {
    pub x_real_ip: Option<&'a [u8]>,
    pub x_forwarded_for: Option<&'a [u8]>,
}

/// The client address a trusted proxy reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealAddress {
    /// The address; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
    /// proxy listener reports for IPv4 clients) is given as plain IPv4, so that bans,
    /// clone counts and WHOIS see one form of each IPv4 address.
    pub ip: IpAddr,
    /// Set when the request carried both headers and they named different addresses:
    /// a client trying to choose its own address through a proxy that sets only one of
    /// them, or a proxy configuration to look at.
    pub conflict: Option<HeaderConflict>,
}

/// Both real-IP headers were sent by a trusted proxy, and they disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderConflict {
    /// What `X-Real-IP` said.
    pub x_real_ip: IpAddr,
    /// What `X-Forwarded-For` said (its rightmost address not itself trusted).
    pub x_forwarded_for: IpAddr,
    /// The header whose address was used.
    pub used: ProxyHeader,
}

impl HeaderConflict {
    /// The warning for the log, naming the proxy (`peer`).
    pub fn warning(&self, peer: &str) -> String {
        let used = match self.used {
            ProxyHeader::RealIp => "X-Real-IP",
            _ => "X-Forwarded-For",
        };
        format!(
            "trusted proxy {peer} sent X-Real-IP {} and X-Forwarded-For {} which disagree; \
             using {used} as <websocket:proxyheader> says. If the proxy sets only one of \
             them, a client can send the other: set proxyheader to the one the proxy sets",
            self.x_real_ip, self.x_forwarded_for
        )
    }
}

fn parse_x_real_ip(value: &[u8]) -> Option<IpAddr> {
    parse_ip(std::str::from_utf8(value).ok()?)
}

/// Returns the header text when every comma-separated element is an IP address.
fn parse_x_forwarded_for(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?;
    text.split(',')
        .all(|element| parse_ip(element).is_some())
        .then_some(text)
}

/// The header [`ProxyHeader`] names: `sent` (present at all) and `parsed` (well formed).
fn require(sent: bool, parsed: bool) -> Result<(), ProxyError> {
    match (sent, parsed) {
        (false, _) => Err(ProxyError::MissingHeader),
        (true, false) => Err(ProxyError::MalformedHeader),
        (true, true) => Ok(()),
    }
}

impl ProxyRanges {
    /// Parses the space-separated `proxyranges` value (empty or blank: no proxies).
    pub fn parse(value: &str) -> Result<ProxyRanges, ProxyRangeError> {
        let mut ranges = ProxyRanges::default();
        for entry in value.split_ascii_whitespace() {
            match parse_entry(entry)? {
                Entry::Net(net) => ranges.nets.push(net),
                Entry::Glob => ranges.glob_patterns.push(entry.to_owned()),
            }
            ranges.entries.push(entry.to_owned());
        }
        ranges.globs = WildcardSet::new(&ranges.glob_patterns).map_err(|e| ProxyRangeError {
            entry: ranges.glob_patterns.join(" "),
            problem: format!("a set of globs that cannot be compiled ({e})"),
        })?;
        Ok(ranges)
    }

    /// True when no proxy is configured (proxy headers are then not looked at).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as written, in order.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// The entries that trust every address of IPv4 or IPv6 (`*`, `0.0.0.0/0`, `::/0`,
    /// `*.*.*.*`, …), for a configuration warning: any client of such a range can claim
    /// any address.
    pub fn trusts_everyone_entries(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|entry| match parse_entry(entry) {
                Ok(Entry::Net(net)) => net.prefix_len() == 0,
                Ok(Entry::Glob) => match WildcardSet::new([entry.as_str()]) {
                    Ok(set) => {
                        PROBES_V4.iter().all(|p| set.is_match(p.as_bytes()))
                            || PROBES_V6.iter().all(|p| set.is_match(p.as_bytes()))
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            })
            .cloned()
            .collect()
    }

    /// Whether `peer` (the address text InspIRCd shows, e.g. `192.0.2.7` or
    /// `2001:db8::7`) is a trusted proxy. CIDR entries match when the text parses as an
    /// address inside the range (an IPv4-mapped IPv6 address also as its IPv4 form);
    /// glob entries match the text as given or the address's canonical text.
    pub fn trusts(&self, peer: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let text = peer.trim_matches([' ', '\t']);
        let text = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if self.globs.is_match(text.as_bytes()) {
            return true;
        }
        match text.parse::<IpAddr>() {
            Ok(ip) => self.trusts_ip(ip),
            Err(_) => false,
        }
    }

    /// Whether the address is trusted (CIDR entries, then globs over its canonical text;
    /// an IPv4-mapped IPv6 address is also checked as its IPv4 form).
    pub fn trusts_ip(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        let forms: &[IpAddr] = if canonical == ip {
            &[ip]
        } else {
            &[ip, canonical]
        };
        forms.iter().any(|form| {
            self.nets.iter().any(|net| net.contains(form))
                || (!self.globs.is_empty() && self.globs.is_match(form.to_string().as_bytes()))
        })
    }

    /// From a validated `X-Forwarded-For` list: the rightmost address that is not
    /// itself a trusted proxy (each proxy appends the address it received from), or the
    /// leftmost when every address in the chain is trusted.
    fn forwarded_for_client(&self, list: &str) -> Option<IpAddr> {
        list.rsplit(',')
            .filter_map(parse_ip)
            .find(|ip| !self.trusts_ip(*ip))
            .or_else(|| list.split(',').next().and_then(parse_ip))
    }

    /// The real client address reported by a trusted proxy.
    ///
    /// With ranges configured every client must send the header `header` names, well
    /// formed, whether or not its peer is trusted (stock behaviour):
    ///
    /// - `X-Real-IP`: one IP address (spaces trimmed, IPv6 with or without brackets);
    /// - `X-Forwarded-For`: a comma-separated list whose every element (trimmed) is an
    ///   IP address;
    /// - [`ProxyHeader::Any`]: `X-Real-IP` when well formed, else `X-Forwarded-For`.
    ///
    /// A missing header is [`ProxyError::MissingHeader`] (for `Any`: both absent), one
    /// that is not well formed [`ProxyError::MalformedHeader`] (garbage, empty,
    /// non-UTF-8, an address with a port or zone, an empty list element …).
    ///
    /// Then `Ok(None)` when `peer` is not trusted, or not an IP address (the header is
    /// ignored and the peer address kept). When it is trusted: the `X-Real-IP` address, or from
    /// `X-Forwarded-For` the rightmost address that is not itself a trusted proxy, or
    /// the leftmost when every address in the chain is trusted; in canonical form (see
    /// [`RealAddress::ip`]), with a [`HeaderConflict`] when both headers were sent and
    /// disagree. Without ranges this returns `Ok(None)` and looks at nothing.
    pub fn real_client_ip(
        &self,
        peer: Option<IpAddr>,
        header: ProxyHeader,
        headers: ProxyHeaders<'_>,
    ) -> Result<Option<RealAddress>, ProxyError> {
        if self.is_empty() {
            return Ok(None);
        }
        let real_ip = headers.x_real_ip.and_then(parse_x_real_ip);
        let forwarded_for = headers.x_forwarded_for.and_then(parse_x_forwarded_for);
        let used = match header {
            ProxyHeader::RealIp => {
                require(headers.x_real_ip.is_some(), real_ip.is_some())?;
                ProxyHeader::RealIp
            }
            ProxyHeader::ForwardedFor => {
                require(headers.x_forwarded_for.is_some(), forwarded_for.is_some())?;
                ProxyHeader::ForwardedFor
            }
            ProxyHeader::Any if real_ip.is_some() => ProxyHeader::RealIp,
            ProxyHeader::Any if forwarded_for.is_some() => ProxyHeader::ForwardedFor,
            ProxyHeader::Any
                if headers.x_real_ip.is_none() && headers.x_forwarded_for.is_none() =>
            {
                return Err(ProxyError::MissingHeader)
            }
            ProxyHeader::Any => return Err(ProxyError::MalformedHeader),
        };
        if !peer.is_some_and(|ip| self.trusts_ip(ip)) {
            return Ok(None);
        }
        let real_ip = real_ip.map(|ip| ip.to_canonical());
        let forwarded_for = forwarded_for
            .and_then(|list| self.forwarded_for_client(list))
            .map(|ip| ip.to_canonical());
        let ip = match used {
            ProxyHeader::RealIp => real_ip,
            _ => forwarded_for,
        }
        .ok_or(ProxyError::MalformedHeader)?;
        let conflict = match (real_ip, forwarded_for) {
            (Some(x_real_ip), Some(x_forwarded_for)) if x_real_ip != x_forwarded_for => {
                Some(HeaderConflict {
                    x_real_ip,
                    x_forwarded_for,
                    used,
                })
            }
            _ => None,
        };
        Ok(Some(RealAddress { ip, conflict }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ranges(value: &str) -> ProxyRanges {
        ProxyRanges::parse(value).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers<'a>(
        x_real_ip: Option<&'a [u8]>,
        x_forwarded_for: Option<&'a [u8]>,
    ) -> ProxyHeaders<'a> {
        ProxyHeaders {
            x_real_ip,
            x_forwarded_for,
        }
    }

    /// The address with `proxyheader="any"` (the default).
    fn any(
        r: &ProxyRanges,
        peer: &str,
        x_real_ip: Option<&[u8]>,
        x_forwarded_for: Option<&[u8]>,
    ) -> Result<Option<IpAddr>, ProxyError> {
        r.real_client_ip(
            parse_ip(peer),
            ProxyHeader::Any,
            headers(x_real_ip, x_forwarded_for),
        )
        .map(|a| a.map(|a| a.ip))
    }

    #[test]
    fn empty_value_means_no_proxies() {
        assert!(ranges("").is_empty());
        assert!(ranges("   ").is_empty());
        assert!(ProxyRanges::default().is_empty());
        assert!(!ranges("").trusts("127.0.0.1"));
    }

    #[test]
    fn ipv4_cidr_trusts_addresses_inside_only() {
        let r = ranges("192.0.2.0/24");
        assert!(!r.is_empty());
        assert!(r.trusts("192.0.2.0"));
        assert!(r.trusts("192.0.2.255"));
        assert!(!r.trusts("192.0.3.1"));
        assert!(!r.trusts("2001:db8::1"));
        assert!(!r.trusts("not an address"));
    }

    #[test]
    fn ipv6_cidr_trusts_addresses_inside_only() {
        let r = ranges("2001:db8::/32");
        assert!(r.trusts("2001:db8::1"));
        assert!(r.trusts("2001:db8:ffff::1"));
        assert!(r.trusts("[2001:db8::1]"));
        assert!(!r.trusts("2001:db9::1"));
        assert!(!r.trusts("192.0.2.1"));
    }

    #[test]
    fn bare_addresses_are_single_host_ranges() {
        let r = ranges("203.0.113.5 ::1 [2001:db8::7]");
        assert!(r.trusts("203.0.113.5"));
        assert!(!r.trusts("203.0.113.6"));
        assert!(r.trusts("::1"));
        assert!(r.trusts("0:0:0:0:0:0:0:1"));
        assert!(!r.trusts("::2"));
        assert!(r.trusts("2001:db8::7"));
    }

    #[test]
    fn glob_entries_match_the_address_text() {
        let r = ranges("198.51.100.*");
        assert!(r.trusts("198.51.100.9"));
        assert!(r.trusts("198.51.100.250"));
        assert!(!r.trusts("198.51.101.9"));
        let r6 = ranges("2001:DB8:*");
        assert!(r6.trusts("2001:db8::1"));
        assert!(!r6.trusts("2001:db9::1"));
        let q = ranges("10.0.0.?");
        assert!(q.trusts("10.0.0.7"));
        assert!(!q.trusts("10.0.0.17"));
    }

    #[test]
    fn documented_example_parses() {
        let r = ranges("192.0.2.0/24 198.51.100.*");
        assert_eq!(r.entries(), ["192.0.2.0/24", "198.51.100.*"]);
        assert!(r.trusts("192.0.2.1"));
        assert!(r.trusts("198.51.100.1"));
        assert!(!r.trusts("203.0.113.1"));
    }

    #[test]
    fn ipv4_mapped_peer_is_checked_as_ipv4() {
        let r = ranges("192.0.2.0/24 198.51.100.*");
        assert!(r.trusts("::ffff:192.0.2.1"));
        assert!(r.trusts("::ffff:198.51.100.3"));
        assert!(!r.trusts("::ffff:203.0.113.1"));
    }

    #[test]
    fn bad_entries_are_refused_with_the_entry_named() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "2001:db8::/129",
            "proxy.example",
            "localhost",
            "10.0.0.0/*",
            "10.0.0.x*",
            "1.2.3.4.5",
        ] {
            let err = ProxyRanges::parse(&format!("127.0.0.1 {bad}")).unwrap_err();
            assert_eq!(err.entry, bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = ProxyRanges::parse("10.0.0.0/33").unwrap_err();
        assert!(err.problem.contains("CIDR"), "{err}");
    }

    #[test]
    fn everyone_trusting_entries_are_reported() {
        let r = ranges("* 0.0.0.0/0 ::/0 *.*.*.* *:* 192.0.2.0/24 198.51.100.*");
        assert_eq!(
            r.trusts_everyone_entries(),
            ["*", "0.0.0.0/0", "::/0", "*.*.*.*", "*:*"]
        );
    }

    #[test]
    fn x_real_ip_is_preferred_over_x_forwarded_for() {
        let r = ranges("127.0.0.0/8");
        let got = any(
            &r,
            "127.0.0.1",
            Some(b" 203.0.113.7 "),
            Some(b"198.51.100.9"),
        );
        assert_eq!(got, Ok(Some(ip("203.0.113.7"))));
    }

    #[test]
    fn garbage_x_real_ip_falls_back_to_x_forwarded_for() {
        let r = ranges("127.0.0.0/8");
        let got = any(&r, "127.0.0.1", Some(b"garbage"), Some(b"198.51.100.9"));
        assert_eq!(got, Ok(Some(ip("198.51.100.9"))));
    }

    // BAD_INPUT row 16: a proxy header from a peer outside proxyranges is ignored.
    #[test]
    fn bad_input_16_header_from_untrusted_peer_is_ignored() {
        let r = ranges("127.0.0.0/8 198.51.100.*");
        assert_eq!(any(&r, "203.0.113.50", Some(b"192.0.2.1"), None), Ok(None));
        assert_eq!(
            any(&r, "2001:db8::50", None, Some(b"192.0.2.1, 127.0.0.1")),
            Ok(None)
        );
    }

    // BAD_INPUT row 17: multi-hop X-Forwarded-For -> rightmost untrusted address.
    #[test]
    fn bad_input_17_multi_hop_forwarded_for_uses_rightmost_untrusted() {
        let r = ranges("127.0.0.0/8");
        assert_eq!(
            any(&r, "127.0.0.1", None, Some(b"198.51.100.9, 127.0.0.1")),
            Ok(Some(ip("198.51.100.9")))
        );
        // A spoofed leftmost entry is not believed: only the hop our proxy saw counts.
        assert_eq!(
            any(
                &r,
                "127.0.0.1",
                None,
                Some(b"6.6.6.6,198.51.100.9,127.0.0.2")
            ),
            Ok(Some(ip("198.51.100.9")))
        );
        assert_eq!(
            any(&r, "127.0.0.1", None, Some(b"198.51.100.9")),
            Ok(Some(ip("198.51.100.9")))
        );
    }

    #[test]
    fn all_trusted_forwarded_for_chain_yields_the_leftmost() {
        let r = ranges("127.0.0.0/8 10.0.0.*");
        assert_eq!(
            any(
                &r,
                "127.0.0.1",
                None,
                Some(b"10.0.0.5, 127.0.0.3,127.0.0.1")
            ),
            Ok(Some(ip("10.0.0.5")))
        );
    }

    // BAD_INPUT row 18: trusted peer, missing or garbage proxy header -> 400.
    #[test]
    fn bad_input_18_missing_or_garbage_header_is_an_error() {
        let r = ranges("127.0.0.0/8");
        let peer = "127.0.0.1";
        assert_eq!(any(&r, peer, None, None), Err(ProxyError::MissingHeader));
        for (real, xff) in [
            (Some(&b"garbage"[..]), None),
            (None, Some(&b"garbage"[..])),
            (Some(&b""[..]), None),
            (None, Some(&b""[..])),
            (Some(&b"garbage"[..]), Some(&b"also garbage"[..])),
            (None, Some(&b"198.51.100.9, garbage"[..])),
            (None, Some(&b"198.51.100.9,,127.0.0.1"[..])),
            (None, Some(&b"198.51.100.9,"[..])),
            (Some(&b"198.51.100.9:1234"[..]), None),
            (Some(&b"fe80::1%eth0"[..]), None),
            (Some(&b"\xff\xfe"[..]), None),
            (None, Some(&b"198.51.100.9\xff"[..])),
            (Some(&b"1.2.3.4 5.6.7.8"[..]), None),
        ] {
            assert_eq!(
                any(&r, peer, real, xff),
                Err(ProxyError::MalformedHeader),
                "{real:?} {xff:?}"
            );
        }
    }

    #[test]
    fn untrusted_peer_must_still_send_a_well_formed_header() {
        let r = ranges("127.0.0.0/8");
        assert_eq!(
            any(&r, "203.0.113.1", None, None),
            Err(ProxyError::MissingHeader)
        );
        assert_eq!(
            any(&r, "203.0.113.1", Some(b"nope"), None),
            Err(ProxyError::MalformedHeader)
        );
    }

    // BAD_INPUT row 19: IPv6 addresses in the header are accepted.
    #[test]
    fn bad_input_19_ipv6_addresses_in_headers_are_accepted() {
        let r = ranges("::1 127.0.0.0/8");
        assert_eq!(
            any(&r, "::1", Some(b"2001:db8::1"), None),
            Ok(Some(IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, 1
            ))))
        );
        assert_eq!(
            any(&r, "::1", Some(b"[2001:db8::2]"), None),
            Ok(Some(ip("2001:db8::2")))
        );
        assert_eq!(
            any(&r, "127.0.0.1", None, Some(b"2001:db8::3, [::1]")),
            Ok(Some(ip("2001:db8::3")))
        );
        assert_eq!(
            any(&r, "[::1]", None, Some(b"::ffff:192.0.2.9")),
            Ok(Some(ip("192.0.2.9")))
        );
        assert_eq!(
            any(&r, "::1", Some(b"192.0.2.10"), None),
            Ok(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))))
        );
    }

    #[test]
    fn no_ranges_means_headers_are_not_looked_at() {
        let r = ProxyRanges::default();
        assert_eq!(any(&r, "127.0.0.1", None, None), Ok(None));
        assert_eq!(any(&r, "127.0.0.1", Some(b"x"), None), Ok(None));
    }

    #[test]
    fn glob_trusted_hops_are_skipped_in_forwarded_for() {
        let r = ranges("198.51.100.*");
        assert_eq!(
            any(&r, "198.51.100.1", None, Some(b"203.0.113.4, 198.51.100.2")),
            Ok(Some(ip("203.0.113.4")))
        );
    }

    fn with(
        r: &ProxyRanges,
        header: ProxyHeader,
        x_real_ip: Option<&[u8]>,
        x_forwarded_for: Option<&[u8]>,
    ) -> Result<Option<RealAddress>, ProxyError> {
        r.real_client_ip(
            parse_ip("127.0.0.1"),
            header,
            headers(x_real_ip, x_forwarded_for),
        )
    }

    #[test]
    fn proxyheader_x_forwarded_for_ignores_a_forged_x_real_ip() {
        let r = ranges("127.0.0.1");
        let got = with(
            &r,
            ProxyHeader::ForwardedFor,
            Some(b"127.0.0.66"),
            Some(b"127.0.0.5"),
        );
        let got = got.unwrap().unwrap();
        assert_eq!(got.ip, ip("127.0.0.5"));
        assert_eq!(
            got.conflict,
            Some(HeaderConflict {
                x_real_ip: ip("127.0.0.66"),
                x_forwarded_for: ip("127.0.0.5"),
                used: ProxyHeader::ForwardedFor,
            })
        );
        // The other header is not even checked for form.
        let got = with(
            &r,
            ProxyHeader::ForwardedFor,
            Some(b"garbage"),
            Some(b"127.0.0.5"),
        );
        assert_eq!(got.unwrap().unwrap().ip, ip("127.0.0.5"));
        assert_eq!(
            with(&r, ProxyHeader::ForwardedFor, Some(b"127.0.0.66"), None),
            Err(ProxyError::MissingHeader)
        );
        assert_eq!(
            with(&r, ProxyHeader::ForwardedFor, None, Some(b"nope")),
            Err(ProxyError::MalformedHeader)
        );
    }

    #[test]
    fn proxyheader_x_real_ip_ignores_a_forged_x_forwarded_for() {
        let r = ranges("127.0.0.1");
        let got = with(
            &r,
            ProxyHeader::RealIp,
            Some(b"127.0.0.5"),
            Some(b"127.0.0.77"),
        );
        let got = got.unwrap().unwrap();
        assert_eq!(got.ip, ip("127.0.0.5"));
        assert_eq!(got.conflict.map(|c| c.used), Some(ProxyHeader::RealIp));
        assert_eq!(
            with(&r, ProxyHeader::RealIp, None, Some(b"127.0.0.77")),
            Err(ProxyError::MissingHeader)
        );
        assert_eq!(
            with(&r, ProxyHeader::RealIp, Some(b"x"), Some(b"127.0.0.77")),
            Err(ProxyError::MalformedHeader)
        );
    }

    #[test]
    fn agreeing_headers_are_no_conflict() {
        let r = ranges("127.0.0.1");
        for header in [
            ProxyHeader::Any,
            ProxyHeader::RealIp,
            ProxyHeader::ForwardedFor,
        ] {
            let got = with(
                &r,
                header,
                Some(b"192.0.2.4"),
                Some(b"192.0.2.4, 127.0.0.1"),
            );
            assert_eq!(
                got,
                Ok(Some(RealAddress {
                    ip: ip("192.0.2.4"),
                    conflict: None
                })),
                "{header:?}"
            );
        }
    }

    #[test]
    fn any_reports_the_conflict_it_resolved_for_x_real_ip() {
        let r = ranges("127.0.0.1");
        let got = with(
            &r,
            ProxyHeader::Any,
            Some(b"127.0.0.66"),
            Some(b"127.0.0.5"),
        );
        let got = got.unwrap().unwrap();
        assert_eq!(got.ip, ip("127.0.0.66"));
        let warning = got.conflict.unwrap().warning("127.0.0.1");
        for part in [
            "127.0.0.1",
            "127.0.0.66",
            "127.0.0.5",
            "X-Real-IP",
            "proxyheader",
        ] {
            assert!(warning.contains(part), "{part} not in {warning:?}");
        }
    }

    #[test]
    fn untrusted_peers_report_no_address_whatever_the_mode() {
        let r = ranges("192.0.2.0/24");
        for header in [
            ProxyHeader::Any,
            ProxyHeader::RealIp,
            ProxyHeader::ForwardedFor,
        ] {
            let got = r.real_client_ip(
                parse_ip("127.0.0.1"),
                header,
                headers(Some(b"198.51.100.1"), Some(b"198.51.100.2")),
            );
            assert_eq!(got, Ok(None), "{header:?}");
        }
    }

    // A dual-stack proxy listener reports IPv4 clients as IPv4-mapped IPv6 addresses.
    #[test]
    fn ipv4_mapped_addresses_become_plain_ipv4() {
        let r = ranges("127.0.0.1 ::1");
        assert_eq!(
            any(&r, "127.0.0.1", Some(b"::ffff:127.0.0.5"), None),
            Ok(Some(ip("127.0.0.5")))
        );
        assert_eq!(
            any(
                &r,
                "::1",
                None,
                Some(b"::ffff:198.51.100.9, ::ffff:127.0.0.1")
            ),
            Ok(Some(ip("198.51.100.9")))
        );
        // Mapped and plain forms of one address agree.
        let got = with(
            &r,
            ProxyHeader::Any,
            Some(b"::ffff:127.0.0.5"),
            Some(b"127.0.0.5"),
        );
        assert_eq!(got.unwrap().unwrap().conflict, None);
        // Plain IPv6 stays as it is.
        assert_eq!(
            any(&r, "::1", Some(b"2001:db8::5"), None),
            Ok(Some(ip("2001:db8::5")))
        );
    }

    #[test]
    fn proxyheader_values_parse_case_insensitively() {
        use crate::config::keys::Choice;
        let parse = ProxyHeader::from_word;
        assert_eq!(parse("X-Real-IP"), Some(ProxyHeader::RealIp));
        assert_eq!(parse(" x-forwarded-for "), Some(ProxyHeader::ForwardedFor));
        assert_eq!(parse("ANY"), Some(ProxyHeader::Any));
        assert_eq!(parse("forwarded"), None);
        assert_eq!(ProxyHeader::words(), "x-real-ip, x-forwarded-for, any");
    }
}
