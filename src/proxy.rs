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
//! `<websocket proxyheader>` ([`ProxyHeader`]) names the header the proxies set
//! (X-Real-IP, X-Forwarded-For, RFC 7239 Forwarded, or any other such as
//! CF-Connecting-IP); by default every standard header sent must agree. An address
//! from a header is given in canonical form (IPv4-mapped IPv6 as plain IPv4). See
//! [`ProxyRanges::real_client_ip`].

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

/// A request header that names the client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressHeader {
    /// `X-Real-IP`: one address; more than one line is malformed.
    XRealIp,
    /// `X-Forwarded-For`: a list, each proxy appending the address it received from.
    XForwardedFor,
    /// RFC 7239 `Forwarded`: a list of elements, each with its `for=`.
    Forwarded,
    /// Another header an admin names (e.g. `CF-Connecting-IP`), read as a list like
    /// `X-Forwarded-For` (one address is a list of one). Lowercase.
    Named(Box<str>),
}

impl AddressHeader {
    /// The header's name as the log and the documentation write it.
    pub fn name(&self) -> &str {
        match self {
            AddressHeader::XRealIp => "X-Real-IP",
            AddressHeader::XForwardedFor => "X-Forwarded-For",
            AddressHeader::Forwarded => "Forwarded",
            AddressHeader::Named(name) => name,
        }
    }

    /// The `proxyheader` value naming it.
    pub fn word(&self) -> &str {
        match self {
            AddressHeader::XRealIp => "x-real-ip",
            AddressHeader::XForwardedFor => "x-forwarded-for",
            AddressHeader::Forwarded => "forwarded",
            AddressHeader::Named(name) => name,
        }
    }

    /// The headers `proxyheader="any"` reads.
    pub const STANDARD: [AddressHeader; 3] = [
        AddressHeader::XRealIp,
        AddressHeader::XForwardedFor,
        AddressHeader::Forwarded,
    ];
}

/// Which header the trusted proxies set (`<websocket proxyheader>`).
///
/// No fixed precedence between headers is safe for every proxy: a proxy passes on the
/// headers it does not set, so a client can send its own. Naming the header the proxy
/// sets (as nginx's `real_ip_header` does) makes the others irrelevant; the default
/// reads every standard header and refuses a request whose headers disagree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Every standard header present (X-Real-IP, X-Forwarded-For, Forwarded) must be well
    /// formed and name the same client, or the request is refused: safe whichever of
    /// them the proxy sets, since a forged one disagrees with the proxy's. The default.
    #[default]
    Any,
    /// Only this header is read.
    Only(AddressHeader),
}

/// Why a `proxyheader` value is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("is not an HTTP header name")]
    NotAHeaderName,
    #[error("is a header of the WebSocket handshake itself, which no proxy sets")]
    HandshakeHeader,
}

/// Headers of the upgrade request itself: never a real-address header.
const HANDSHAKE_HEADERS: [&str; 10] = [
    "host",
    "origin",
    "upgrade",
    "connection",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

impl ProxyHeader {
    /// Parses a `proxyheader` value: `any`, `x-real-ip`, `x-forwarded-for`, `forwarded`
    /// or another header name (ASCII case-insensitive, spaces around it ignored).
    pub fn parse(value: &str) -> Result<ProxyHeader, ProxyHeaderError> {
        let name = value.trim().to_ascii_lowercase();
        if name == "any" {
            return Ok(ProxyHeader::Any);
        }
        if let Some(known) = AddressHeader::STANDARD.iter().find(|h| h.word() == name) {
            return Ok(ProxyHeader::Only(known.clone()));
        }
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(ProxyHeaderError::NotAHeaderName);
        }
        if HANDSHAKE_HEADERS.contains(&name.as_str()) {
            return Err(ProxyHeaderError::HandshakeHeader);
        }
        Ok(ProxyHeader::Only(AddressHeader::Named(name.into())))
    }

    /// The configuration value naming this choice.
    pub fn word(&self) -> &str {
        match self {
            ProxyHeader::Any => "any",
            ProxyHeader::Only(header) => header.word(),
        }
    }

    /// The headers read.
    fn headers(&self) -> &[AddressHeader] {
        match self {
            ProxyHeader::Any => &AddressHeader::STANDARD,
            ProxyHeader::Only(header) => std::slice::from_ref(header),
        }
    }
}

/// The lines of one request, by header name; what [`ProxyRanges::real_client_ip`]
/// reads them through.
pub trait RequestHeaders {
    /// The trimmed values of every line called `name` (ASCII case-insensitive).
    fn lines<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]>;
}

/// The client address a trusted proxy reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealAddress {
    /// The address; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
    /// proxy listener reports for IPv4 clients) is given as plain IPv4, so that bans,
    /// clone counts and WHOIS see one form of each IPv4 address.
    pub ip: IpAddr,
    /// Set when another header named a different client (only with a `proxyheader`
    /// naming one header; with `any` that is a refusal).
    pub conflict: Option<HeaderConflict>,
}

/// One header's word on the client, with the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSays {
    pub header: AddressHeader,
    pub ip: IpAddr,
}

/// Two headers of a trusted request named different clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderConflict {
    /// The header `proxyheader` names (with `any`: the first that was sent).
    pub used: HeaderSays,
    /// One that disagrees.
    pub other: HeaderSays,
}

impl HeaderConflict {
    /// The warning for the log when `proxyheader` names the header used, naming the
    /// proxy (`peer`).
    pub fn warning(&self, peer: &str) -> String {
        let (used, other) = (&self.used, &self.other);
        format!(
            "trusted proxy {peer} sent {} {} and {} {} which disagree; using {} as \
             <websocket:proxyheader> says. If the proxy does not set {}, a client can: \
             nothing to do if proxyheader names the header the proxy sets",
            used.header.name(),
            used.ip,
            other.header.name(),
            other.ip,
            used.header.name(),
            other.header.name(),
        )
    }

    /// The warning for the log when the default `proxyheader="any"` refused the request.
    pub fn refusal(&self, peer: &str) -> String {
        let (used, other) = (&self.used, &self.other);
        format!(
            "trusted proxy {peer} sent {} {} and {} {}, which name different clients: \
             refused (400). A client can send any header its proxy does not set: set \
             <websocket proxyheader> to the one your proxy sets (\"{}\" or \"{}\")",
            used.header.name(),
            used.ip,
            other.header.name(),
            other.ip,
            used.header.word(),
            other.header.word(),
        )
    }
}

/// Why a proxied request is refused (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no real-address header")]
    MissingHeader,
    #[error("malformed real-address header")]
    MalformedHeader,
    /// `proxyheader="any"` and two headers named different clients.
    #[error("real-address headers disagree")]
    Disagree(HeaderConflict),
}

/// What one header says, read with the trust of `ranges`: `None` when absent.
fn read_header(
    ranges: &ProxyRanges,
    header: &AddressHeader,
    request: &impl RequestHeaders,
) -> Result<Option<IpAddr>, ProxyError> {
    let lines: Vec<&[u8]> = request.lines(header.word()).collect();
    if lines.is_empty() {
        return Ok(None);
    }
    let joined = lines.join(&b","[..]);
    let text = std::str::from_utf8(&joined).map_err(|_| ProxyError::MalformedHeader)?;
    let ip = match header {
        AddressHeader::XRealIp if lines.len() == 1 => parse_ip(text),
        AddressHeader::XRealIp => None,
        AddressHeader::XForwardedFor | AddressHeader::Named(_) => {
            let list: Option<Vec<IpAddr>> = text.split(',').map(parse_ip).collect();
            list.and_then(|list| ranges.rightmost_untrusted(&list))
        }
        AddressHeader::Forwarded => crate::forwarded::parse(text).ok().and_then(|elements| {
            let list: Vec<IpAddr> = elements.iter().map(|e| e.for_ip).collect();
            ranges.rightmost_untrusted(&list)
        }),
    };
    ip.map(|ip| Some(ip.to_canonical()))
        .ok_or(ProxyError::MalformedHeader)
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

    /// Each entry with one address it trusts, to stand for it where a configuration
    /// check needs an address ([`crate::proxy_clones`]): a range's first address, an
    /// address itself, a glob with its wildcards read as `0` (a glob that does not then
    /// read as an address is left out).
    pub fn first_addresses(&self) -> Vec<(&str, IpAddr)> {
        self.entries
            .iter()
            .filter_map(|entry| {
                let ip = match parse_entry(entry) {
                    Ok(Entry::Net(net)) => Some(net.network()),
                    Ok(Entry::Glob) => parse_ip(&entry.replace(['*', '?'], "0")),
                    Err(_) => None,
                }?;
                Some((entry.as_str(), ip))
            })
            .collect()
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

    /// From a list of addresses, each appended by one proxy: the rightmost that is not
    /// itself a trusted proxy, or the leftmost when every one is trusted.
    fn rightmost_untrusted(&self, list: &[IpAddr]) -> Option<IpAddr> {
        list.iter()
            .rev()
            .find(|ip| !self.trusts_ip(**ip))
            .or_else(|| list.first())
            .copied()
    }

    /// From `Forwarded`, the element [`AddressHeader::Forwarded`] takes the address
    /// from: its `proto` (what the client used to reach that proxy), if any. `None`
    /// when the header is absent; an error when malformed.
    pub fn forwarded_proto(
        &self,
        request: &impl RequestHeaders,
    ) -> Result<Option<String>, ProxyError> {
        let lines: Vec<&[u8]> = request.lines("forwarded").collect();
        if lines.is_empty() {
            return Ok(None);
        }
        let joined = lines.join(&b","[..]);
        let text = std::str::from_utf8(&joined).map_err(|_| ProxyError::MalformedHeader)?;
        let elements = crate::forwarded::parse(text).map_err(|_| ProxyError::MalformedHeader)?;
        let chosen = elements
            .iter()
            .rev()
            .find(|e| !self.trusts_ip(e.for_ip))
            .or_else(|| elements.first());
        Ok(chosen.and_then(|e| e.proto).map(str::to_owned))
    }

    /// The real client address reported by a trusted proxy.
    ///
    /// With ranges configured every client must send the header `header` names (with
    /// [`ProxyHeader::Any`], at least one standard header), well formed, whether or not
    /// its peer is trusted (stock behaviour):
    ///
    /// - `X-Real-IP`: one line, one IP address (spaces trimmed, IPv6 with or without
    ///   brackets);
    /// - `X-Forwarded-For` and a named header: a comma-separated list whose every
    ///   element (trimmed) is an IP address, several lines joined;
    /// - `Forwarded`: RFC 7239 elements, each with one `for=` naming an IP address
    ///   ([`crate::forwarded`]).
    ///
    /// A missing header is [`ProxyError::MissingHeader`], one that is not well formed
    /// [`ProxyError::MalformedHeader`] (garbage, empty, non-UTF-8, an address with a
    /// port or zone, an empty list element, `for=unknown` …).
    ///
    /// Then `Ok(None)` when `peer` is not trusted, or not an IP address (the headers are
    /// ignored and the peer address kept). When it is trusted: from a list, the
    /// rightmost address that is not itself a trusted proxy (or the leftmost when all
    /// are), in canonical form (see [`RealAddress::ip`]). With [`ProxyHeader::Any`],
    /// every header sent must name the same client, else [`ProxyError::Disagree`];
    /// with one header named, the standard headers that disagree with it are reported
    /// as a [`HeaderConflict`]. Without ranges this returns `Ok(None)` and looks at
    /// nothing.
    pub fn real_client_ip(
        &self,
        peer: Option<IpAddr>,
        header: &ProxyHeader,
        request: &impl RequestHeaders,
    ) -> Result<Option<RealAddress>, ProxyError> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut said = Vec::new();
        for read in header.headers() {
            if let Some(ip) = read_header(self, read, request)? {
                said.push(HeaderSays {
                    header: read.clone(),
                    ip,
                });
            }
        }
        let Some(first) = said.first().cloned() else {
            return Err(ProxyError::MissingHeader);
        };
        if !peer.is_some_and(|ip| self.trusts_ip(ip)) {
            return Ok(None);
        }
        let disagreeing = |others: Vec<HeaderSays>| {
            others
                .into_iter()
                .find(|other| other.ip != first.ip)
                .map(|other| HeaderConflict {
                    used: first.clone(),
                    other,
                })
        };
        match header {
            ProxyHeader::Any => match disagreeing(said) {
                Some(conflict) => Err(ProxyError::Disagree(conflict)),
                None => Ok(Some(RealAddress {
                    ip: first.ip,
                    conflict: None,
                })),
            },
            ProxyHeader::Only(_) => {
                // The others, read only to warn: one that is malformed says nothing.
                let others = AddressHeader::STANDARD
                    .iter()
                    .filter(|h| **h != first.header)
                    .filter_map(|h| {
                        read_header(self, h, request)
                            .ok()
                            .flatten()
                            .map(|ip| HeaderSays {
                                header: h.clone(),
                                ip,
                            })
                    })
                    .collect();
                Ok(Some(RealAddress {
                    ip: first.ip,
                    conflict: disagreeing(others),
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ranges(value: &str) -> ProxyRanges {
        ProxyRanges::parse(value).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A request's header lines, as (name, value).
    struct Lines(Vec<(&'static str, &'static [u8])>);

    impl RequestHeaders for Lines {
        fn lines<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> {
            self.0
                .iter()
                .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    fn xri_xff(x_real_ip: Option<&'static [u8]>, x_forwarded_for: Option<&'static [u8]>) -> Lines {
        let mut lines = Vec::new();
        lines.extend(x_real_ip.map(|v| ("X-Real-IP", v)));
        lines.extend(x_forwarded_for.map(|v| ("X-Forwarded-For", v)));
        Lines(lines)
    }

    /// The address with `proxyheader="any"` (the default).
    fn any(
        r: &ProxyRanges,
        peer: &str,
        x_real_ip: Option<&'static [u8]>,
        x_forwarded_for: Option<&'static [u8]>,
    ) -> Result<Option<IpAddr>, ProxyError> {
        r.real_client_ip(
            parse_ip(peer),
            &ProxyHeader::Any,
            &xri_xff(x_real_ip, x_forwarded_for),
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
    fn each_entry_stands_as_its_first_address() {
        let r = ranges("127.0.0.1 10.1.0.0/16 2001:db8::/32 198.51.100.* 2001:db8:*");
        let got: Vec<(&str, IpAddr)> = r.first_addresses();
        assert_eq!(
            got,
            [
                ("127.0.0.1", ip("127.0.0.1")),
                ("10.1.0.0/16", ip("10.1.0.0")),
                ("2001:db8::/32", ip("2001:db8::")),
                ("198.51.100.*", ip("198.51.100.0")),
            ]
        );
    }

    /// A peer, its X-Real-IP and X-Forwarded-For, and the client `any` must give.
    type AnyCase = (
        &'static str,
        Option<&'static [u8]>,
        Option<&'static [u8]>,
        &'static str,
    );

    fn assert_any_gives(r: &ProxyRanges, cases: &[AnyCase]) {
        for &(peer, x_real_ip, x_forwarded_for, client) in cases {
            assert_eq!(
                any(r, peer, x_real_ip, x_forwarded_for),
                Ok(Some(ip(client))),
                "{peer} {x_real_ip:?} {x_forwarded_for:?}"
            );
        }
    }

    #[test]
    fn any_takes_the_one_header_sent() {
        let r = ranges("127.0.0.0/8");
        assert_any_gives(
            &r,
            &[
                ("127.0.0.1", Some(b" 203.0.113.7 "), None, "203.0.113.7"),
                ("127.0.0.1", None, Some(b"198.51.100.9"), "198.51.100.9"),
            ],
        );
        let forwarded = Lines(vec![("Forwarded", b"for=198.51.100.3;proto=https")]);
        let got = r.real_client_ip(parse_ip("127.0.0.1"), &ProxyHeader::Any, &forwarded);
        assert_eq!(got.unwrap().unwrap().ip, ip("198.51.100.3"));
    }

    /// Point 4 of issue 20: with the default, headers that name different clients are
    /// refused, whichever the proxy set, and the refusal names what to set.
    #[test]
    fn any_refuses_headers_that_disagree() {
        let r = ranges("127.0.0.0/8");
        let got = r.real_client_ip(
            parse_ip("127.0.0.1"),
            &ProxyHeader::Any,
            &xri_xff(Some(b"127.0.0.66"), Some(b"127.0.0.5")),
        );
        let Err(ProxyError::Disagree(conflict)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(conflict.used.ip, ip("127.0.0.66"));
        assert_eq!(conflict.other.ip, ip("127.0.0.5"));
        let line = conflict.refusal("127.0.0.1");
        for part in [
            "127.0.0.1",
            "127.0.0.66",
            "127.0.0.5",
            "X-Real-IP",
            "X-Forwarded-For",
            "proxyheader",
            "\"x-real-ip\"",
            "\"x-forwarded-for\"",
            "refused",
        ] {
            assert!(line.contains(part), "{part} not in {line:?}");
        }
        // Forwarded takes part too.
        let lines = Lines(vec![
            ("X-Forwarded-For", b"198.51.100.1"),
            ("Forwarded", b"for=198.51.100.2"),
        ]);
        assert!(matches!(
            r.real_client_ip(parse_ip("127.0.0.1"), &ProxyHeader::Any, &lines),
            Err(ProxyError::Disagree(_))
        ));
    }

    /// Every proxy recipe (the proxy sets X-Real-IP only, X-Forwarded-For only
    /// (appending), or both) with every client (none, one forged, both forged): the
    /// default never gives the client a forged address, and an honest client behind its
    /// own proxy (an X-Forwarded-For it sent) gets in where the server's proxy sets both.
    #[test]
    fn any_is_safe_for_every_recipe_and_client() {
        #[derive(Clone, Copy, Debug)]
        enum Recipe {
            RealIpOnly,
            ForwardedForOnly,
            Both,
        }
        let r = ranges("127.0.0.1");
        let real: &'static [u8] = b"198.51.100.7";
        let forged: &'static [u8] = b"203.0.113.66";
        for recipe in [Recipe::RealIpOnly, Recipe::ForwardedForOnly, Recipe::Both] {
            for (client_xri, client_xff) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                // What reaches the server: the proxy overwrites X-Real-IP and appends
                // to X-Forwarded-For when its recipe sets them.
                let xri = match recipe {
                    Recipe::RealIpOnly | Recipe::Both => Some(real),
                    Recipe::ForwardedForOnly => client_xri.then_some(forged),
                };
                let xff: Option<&'static [u8]> = match (recipe, client_xff) {
                    (Recipe::ForwardedForOnly | Recipe::Both, true) => {
                        Some(b"203.0.113.66, 198.51.100.7")
                    }
                    (Recipe::ForwardedForOnly | Recipe::Both, false) => Some(real),
                    (Recipe::RealIpOnly, true) => Some(forged),
                    (Recipe::RealIpOnly, false) => None,
                };
                let got = any(&r, "127.0.0.1", xri, xff);
                let what = format!("{recipe:?}, client X-Real-IP {client_xri}, X-Forwarded-For {client_xff}: {got:?}");
                match got {
                    Ok(Some(address)) => assert_eq!(address, ip("198.51.100.7"), "{what}"),
                    Err(ProxyError::Disagree(_)) => {
                        assert!(client_xri || client_xff, "{what}");
                        assert!(!matches!(recipe, Recipe::Both), "{what}");
                    }
                    other => panic!("{other:?}: {what}"),
                }
            }
        }
    }

    #[test]
    fn any_refuses_a_malformed_header_even_beside_a_good_one() {
        let r = ranges("127.0.0.0/8");
        assert_eq!(
            any(&r, "127.0.0.1", Some(b"garbage"), Some(b"198.51.100.9")),
            Err(ProxyError::MalformedHeader)
        );
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
        // Disagreeing headers from an untrusted peer: ignored too.
        assert_eq!(
            any(&r, "203.0.113.50", Some(b"192.0.2.1"), Some(b"192.0.2.2")),
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
        // Several lines (HAProxy's option forwardfor adds its own) are one list.
        let lines = Lines(vec![
            ("X-Forwarded-For", b"6.6.6.6"),
            ("x-forwarded-for", b"198.51.100.9"),
        ]);
        let got = r.real_client_ip(parse_ip("127.0.0.1"), &ProxyHeader::Any, &lines);
        assert_eq!(got.unwrap().unwrap().ip, ip("198.51.100.9"));
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
        // Two X-Real-IP lines: which is the proxy's cannot be told.
        let twice = Lines(vec![
            ("X-Real-IP", b"198.51.100.1"),
            ("X-Real-IP", b"198.51.100.1"),
        ]);
        assert_eq!(
            r.real_client_ip(parse_ip(peer), &ProxyHeader::Any, &twice),
            Err(ProxyError::MalformedHeader)
        );
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
        assert_any_gives(
            &r,
            &[
                ("::1", Some(b"2001:db8::1"), None, "2001:db8::1"),
                ("::1", Some(b"[2001:db8::2]"), None, "2001:db8::2"),
                (
                    "127.0.0.1",
                    None,
                    Some(b"2001:db8::3, [::1]"),
                    "2001:db8::3",
                ),
                ("[::1]", None, Some(b"::ffff:192.0.2.9"), "192.0.2.9"),
                ("::1", Some(b"192.0.2.10"), None, "192.0.2.10"),
            ],
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

    fn only(word: &str) -> ProxyHeader {
        ProxyHeader::parse(word).unwrap()
    }

    fn with(
        r: &ProxyRanges,
        header: &ProxyHeader,
        lines: &Lines,
    ) -> Result<Option<RealAddress>, ProxyError> {
        r.real_client_ip(parse_ip("127.0.0.1"), header, lines)
    }

    #[test]
    fn proxyheader_x_forwarded_for_ignores_a_forged_x_real_ip() {
        let r = ranges("127.0.0.1");
        let header = only("x-forwarded-for");
        let got = with(
            &r,
            &header,
            &xri_xff(Some(b"127.0.0.66"), Some(b"127.0.0.5")),
        );
        let got = got.unwrap().unwrap();
        assert_eq!(got.ip, ip("127.0.0.5"));
        let conflict = got.conflict.unwrap();
        assert_eq!(conflict.used.header, AddressHeader::XForwardedFor);
        assert_eq!(conflict.other.header, AddressHeader::XRealIp);
        let warning = conflict.warning("127.0.0.1");
        for part in [
            "127.0.0.66",
            "127.0.0.5",
            "X-Real-IP",
            "using X-Forwarded-For",
        ] {
            assert!(warning.contains(part), "{part} not in {warning:?}");
        }
        // The other header is not even checked for form.
        let got = with(&r, &header, &xri_xff(Some(b"garbage"), Some(b"127.0.0.5")));
        assert_eq!(got.unwrap().unwrap().ip, ip("127.0.0.5"));
        assert_eq!(
            with(&r, &header, &xri_xff(Some(b"127.0.0.66"), None)),
            Err(ProxyError::MissingHeader)
        );
        assert_eq!(
            with(&r, &header, &xri_xff(None, Some(b"nope"))),
            Err(ProxyError::MalformedHeader)
        );
    }

    #[test]
    fn proxyheader_x_real_ip_ignores_a_forged_x_forwarded_for() {
        let r = ranges("127.0.0.1");
        let header = only("X-Real-IP");
        let got = with(
            &r,
            &header,
            &xri_xff(Some(b"127.0.0.5"), Some(b"127.0.0.77")),
        );
        let got = got.unwrap().unwrap();
        assert_eq!(got.ip, ip("127.0.0.5"));
        assert_eq!(
            got.conflict.map(|c| c.used.header),
            Some(AddressHeader::XRealIp)
        );
        assert_eq!(
            with(&r, &header, &xri_xff(None, Some(b"127.0.0.77"))),
            Err(ProxyError::MissingHeader)
        );
        assert_eq!(
            with(&r, &header, &xri_xff(Some(b"x"), Some(b"127.0.0.77"))),
            Err(ProxyError::MalformedHeader)
        );
    }

    /// `proxyheader="forwarded"`: RFC 7239, the rightmost `for=` not trusted.
    #[test]
    fn proxyheader_forwarded_reads_rfc_7239() {
        let r = ranges("127.0.0.1 10.0.0.0/8");
        let header = only("forwarded");
        let lines = Lines(vec![
            ("X-Real-IP", b"203.0.113.66"),
            (
                "Forwarded",
                b"for=203.0.113.1;proto=http, for=\"[2001:db8::7]:4711\";proto=https",
            ),
            ("Forwarded", b"for=10.1.2.3"),
        ]);
        let got = with(&r, &header, &lines).unwrap().unwrap();
        assert_eq!(got.ip, ip("2001:db8::7"));
        assert_eq!(got.conflict.unwrap().other.ip, ip("203.0.113.66"));
        assert_eq!(r.forwarded_proto(&lines), Ok(Some("https".to_owned())));
        for bad in [
            &b"for=unknown"[..],
            b"for=_hidden",
            b"for=2001:db8::1",
            b"by=1.2.3.4",
        ] {
            let lines = Lines(vec![(
                "Forwarded",
                Box::leak(bad.to_vec().into_boxed_slice()),
            )]);
            assert_eq!(
                with(&r, &header, &lines),
                Err(ProxyError::MalformedHeader),
                "{bad:?}"
            );
        }
    }

    /// Any header name, e.g. a CDN's CF-Connecting-IP, read as a list.
    #[test]
    fn proxyheader_names_any_header() {
        let r = ranges("127.0.0.1");
        let header = only("CF-Connecting-IP");
        assert_eq!(header.word(), "cf-connecting-ip");
        let lines = Lines(vec![
            ("X-Real-IP", b"127.0.0.1"),
            ("cf-connecting-ip", b"203.0.113.9"),
        ]);
        let got = with(&r, &header, &lines).unwrap().unwrap();
        assert_eq!(got.ip, ip("203.0.113.9"));
        assert_eq!(
            with(&r, &header, &Lines(vec![("X-Real-IP", b"203.0.113.9")])),
            Err(ProxyError::MissingHeader)
        );
    }

    #[test]
    fn agreeing_headers_are_no_conflict() {
        let r = ranges("127.0.0.1");
        for header in ["any", "x-real-ip", "x-forwarded-for", "forwarded"] {
            let lines = Lines(vec![
                ("X-Real-IP", b"192.0.2.4"),
                ("X-Forwarded-For", b"192.0.2.4, 127.0.0.1"),
                ("Forwarded", b"for=192.0.2.4"),
            ]);
            let got = with(&r, &only(header), &lines);
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
    fn untrusted_peers_report_no_address_whatever_the_mode() {
        let r = ranges("192.0.2.0/24");
        for header in ["any", "x-real-ip", "x-forwarded-for"] {
            let got = r.real_client_ip(
                parse_ip("127.0.0.1"),
                &only(header),
                &xri_xff(Some(b"198.51.100.1"), Some(b"198.51.100.2")),
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
        assert_eq!(
            any(
                &r,
                "127.0.0.1",
                Some(b"::ffff:127.0.0.5"),
                Some(b"127.0.0.5")
            ),
            Ok(Some(ip("127.0.0.5")))
        );
        // Plain IPv6 stays as it is.
        assert_eq!(
            any(&r, "::1", Some(b"2001:db8::5"), None),
            Ok(Some(ip("2001:db8::5")))
        );
    }

    #[test]
    fn proxyheader_values() {
        assert_eq!(only("X-Real-IP"), ProxyHeader::Only(AddressHeader::XRealIp));
        assert_eq!(
            only(" x-forwarded-for "),
            ProxyHeader::Only(AddressHeader::XForwardedFor)
        );
        assert_eq!(only("ANY"), ProxyHeader::Any);
        assert_eq!(
            only("Forwarded"),
            ProxyHeader::Only(AddressHeader::Forwarded)
        );
        assert_eq!(
            only("True-Client-IP"),
            ProxyHeader::Only(AddressHeader::Named("true-client-ip".into()))
        );
        for bad in ["", "x real ip", "x-real-ip:", "é"] {
            assert_eq!(
                ProxyHeader::parse(bad),
                Err(ProxyHeaderError::NotAHeaderName),
                "{bad:?}"
            );
        }
        for bad in ["Origin", "host", "Sec-WebSocket-Key"] {
            assert_eq!(
                ProxyHeader::parse(bad),
                Err(ProxyHeaderError::HandshakeHeader),
                "{bad:?}"
            );
        }
    }

    proptest::proptest! {
        /// Any list of addresses in X-Forwarded-For, a named header or Forwarded gives
        /// the same client: the rightmost untrusted (or the leftmost when all are
        /// trusted); and the three agree, so `any` accepts them together.
        #[test]
        fn list_headers_agree_on_the_rightmost_untrusted(
            hops in proptest::collection::vec((proptest::prelude::any::<[u8; 4]>(), proptest::prelude::any::<bool>()), 1..6),
        ) {
            let r = ranges("10.0.0.0/8");
            let list: Vec<IpAddr> = hops
                .iter()
                .map(|(a, trusted)| {
                    let mut a = *a;
                    if *trusted { a[0] = 10 } else if a[0] == 10 { a[0] = 11 }
                    IpAddr::V4(Ipv4Addr::from(a))
                })
                .collect();
            let expected = list.iter().rev().find(|ip| !r.trusts_ip(**ip)).or(list.first()).copied();
            let xff: &'static [u8] = Box::leak(list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ").into_bytes().into_boxed_slice());
            let fwd: &'static [u8] = Box::leak(list.iter().map(|ip| format!("for={ip}")).collect::<Vec<_>>().join(",").into_bytes().into_boxed_slice());
            let peer = parse_ip("10.0.0.1");
            for (header, lines) in [
                ("x-forwarded-for", Lines(vec![("X-Forwarded-For", xff)])),
                ("cf-connecting-ip", Lines(vec![("CF-Connecting-IP", xff)])),
                ("forwarded", Lines(vec![("Forwarded", fwd)])),
                ("any", Lines(vec![("X-Forwarded-For", xff), ("Forwarded", fwd)])),
            ] {
                let got = r.real_client_ip(peer, &only(header), &lines).map(|a| a.map(|a| a.ip));
                proptest::prop_assert_eq!(got, Ok(expected), "{}", header);
            }
        }
    }
}
