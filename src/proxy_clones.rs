//! Bursts of users through one proxy against InspIRCd's clone limits.
//!
//! InspIRCd counts each connection against its address and, with `<performance
//! clonesonconnect>` on (the default of InspIRCd 3 and 4), checks the `localmax` and
//! `globalmax` of the connection's `<connect>` class as soon as it accepts it. For a
//! user behind a proxy that address is the proxy's: the module learns the real one
//! only from the handshake or the PROXY header that follows. When more users connect
//! through one proxy at once than its class allows, the rest are refused ("No more
//! connections allowed from your host via this connect class"). Nothing in InspIRCd
//! counts a connection by an address it does not know yet, but two settings avoid the
//! check against the proxy:
//!
//! - `<performance clonesonconnect="no">`: InspIRCd then checks the limits when the
//!   user registers (InspIRCd 4) or when the module changes its address (3), with the
//!   real address in place;
//! - a `<connect>` class that the proxies' connections fall in, with limits high enough:
//!   it governs only the connections still waiting for their real address (InspIRCd
//!   picks the class again, and checks its limits, when the address changes).
//!
//! The module cannot know how many users a proxy will bring at once: it warns, at
//! startup and on every rehash, when `proxyranges` is set, clones are checked at accept
//! and the class a proxy's connections fall in limits them below
//! [`LIFTED_CLONE_LIMIT`]. The shim passes what InspIRCd has read ([`ServerFacts`]);
//! the class is picked here as InspIRCd picks one at accept (see [`accept_class`]).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::proxy::ProxyRanges;
use crate::wildcard::WildcardSet;

/// A `localmax` or `globalmax` at least this high (or 0, no limit) counts as lifted for
/// the proxies' class: that many handshakes in flight through one proxy at once. The
/// README's proxy class uses it.
pub const LIFTED_CLONE_LIMIT: u64 = 1000;

/// What kind of `<connect>` class: `allow`, `deny`, or neither (named, for opers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassKind {
    Allow,
    Deny,
    Named,
}

/// One `<connect>` class as InspIRCd read it (parents applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectClass {
    pub name: String,
    pub kind: ClassKind,
    /// Its `allow` or `deny` masks: CIDR ranges or globs over the address or host.
    pub hosts: Vec<String>,
    /// The server ports it is for; empty: every port.
    pub ports: Vec<u16>,
    /// Only for users that have registered (`registered`/`connected="yes"`).
    pub registered_only: bool,
    /// `localmax`; 0: no limit.
    pub local_max: u64,
    /// `globalmax`; 0: no limit.
    pub global_max: u64,
}

/// What the server has read that decides whether a burst through a proxy can hit the
/// clone limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFacts {
    /// `<performance clonesonconnect>` as the server reads it.
    pub clones_on_connect: bool,
    /// Every `<connect>` class, in the order InspIRCd tries them.
    pub classes: Vec<ConnectClass>,
    /// The ports of the listeners whose hook is this module.
    pub websocket_ports: Vec<u16>,
}

/// A proxy whose connections are limited at accept: connections from `proxy` (a
/// `proxyranges` entry) to `port` fall in `class`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitedProxy<'a> {
    pub proxy: &'a str,
    pub port: u16,
    pub class: &'a ConnectClass,
}

/// Whether one `<connect>` mask matches the address as InspIRCd's `MatchCIDR` does at
/// accept (the host is still the address text then): a CIDR range, else a glob over
/// the address text. A mask globset cannot compile (absurdly long) matches nothing: the
/// check then errs towards a warning, never towards a wrong configuration.
fn mask_matches(mask: &str, ip: IpAddr) -> bool {
    if let Ok(net) = mask.parse::<IpNet>() {
        return net.contains(&ip);
    }
    WildcardSet::new([mask]).is_ok_and(|set| set.is_match(ip.to_string().as_bytes()))
}

/// The class InspIRCd puts a connection from `ip` to `port` in when it accepts it: the
/// first `allow` or `deny` class, in order, that is not only for registered users, is
/// for that port and has a mask matching the address. Modules that refuse classes
/// (sslinfo's `requiressl`, a class's user `limit` reached) are not considered.
pub fn accept_class(classes: &[ConnectClass], ip: IpAddr, port: u16) -> Option<&ConnectClass> {
    classes.iter().find(|class| {
        class.kind != ClassKind::Named
            && !class.registered_only
            && (class.ports.is_empty() || class.ports.contains(&port))
            && class.hosts.iter().any(|mask| mask_matches(mask, ip))
    })
}

/// Whether a clone limit lets a burst through: none (0) or at least
/// [`LIFTED_CLONE_LIMIT`].
fn is_lifted(limit: u64) -> bool {
    limit == 0 || limit >= LIFTED_CLONE_LIMIT
}

/// The proxies whose connections are checked against limits below
/// [`LIFTED_CLONE_LIMIT`] at accept, once per proxy entry and class. Each `proxyranges`
/// entry is checked as its first address ([`ProxyRanges::first_addresses`]).
pub fn limited_proxies<'a>(
    ranges: &'a ProxyRanges,
    facts: &'a ServerFacts,
) -> Vec<LimitedProxy<'a>> {
    let mut limited: Vec<LimitedProxy<'a>> = Vec::new();
    if !facts.clones_on_connect {
        return limited;
    }
    for (proxy, ip) in ranges.first_addresses() {
        for &port in &facts.websocket_ports {
            let Some(class) = accept_class(&facts.classes, ip, port) else {
                continue;
            };
            let checked = match class.kind {
                ClassKind::Allow => !is_lifted(class.local_max) || !is_lifted(class.global_max),
                // A deny class refuses the proxy outright, and a named class is never
                // picked at accept: no clone limit is reached.
                ClassKind::Deny | ClassKind::Named => false,
            };
            let seen = limited
                .iter()
                .any(|l| l.proxy == proxy && l.class.name == class.name);
            if checked && !seen {
                limited.push(LimitedProxy { proxy, port, class });
            }
        }
    }
    limited
}

/// The configuration warning for a limited proxy; `location` is the `<websocket>` tag's.
pub fn warning(limited: &LimitedProxy<'_>, location: &str) -> String {
    let class = limited.class;
    format!(
        "<websocket:proxyranges> at {location}: InspIRCd checks clone limits when it accepts a connection (<performance clonesonconnect> is on), before the module applies the real address, and connections from the proxy {proxy} to port {port} fall in the <connect> class \"{name}\" (localmax {local}, globalmax {global}): more users than that connecting through it at once are refused. Set <performance clonesonconnect=\"no\"> (InspIRCd then checks the limits against each user's real address), or give the proxies a <connect> class of their own before \"{name}\" with localmax and globalmax of at least {LIFTED_CLONE_LIMIT}",
        proxy = limited.proxy,
        port = limited.port,
        name = class.name,
        local = class.local_max,
        global = class.global_max,
    )
}

/// The warnings for `ranges` on a server with `facts` (none without proxies).
pub fn warnings(ranges: &ProxyRanges, facts: &ServerFacts, location: &str) -> Vec<String> {
    limited_proxies(ranges, facts)
        .iter()
        .map(|limited| warning(limited, location))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, kind: ClassKind, hosts: &[&str], local_max: u64) -> ConnectClass {
        ConnectClass {
            name: name.to_owned(),
            kind,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ports: Vec::new(),
            registered_only: false,
            local_max,
            global_max: local_max,
        }
    }

    fn main_class() -> ConnectClass {
        class("main", ClassKind::Allow, &["*"], 3)
    }

    fn facts(classes: Vec<ConnectClass>) -> ServerFacts {
        ServerFacts {
            clones_on_connect: true,
            classes,
            websocket_ports: vec![8080],
        }
    }

    fn limited(ranges: &str, facts: &ServerFacts) -> Vec<(String, String)> {
        let ranges = ProxyRanges::parse(ranges).unwrap();
        limited_proxies(&ranges, facts)
            .iter()
            .map(|l| (l.proxy.to_owned(), l.class.name.clone()))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn masks_match_as_inspircd_matches_an_address() {
        for (mask, address) in [
            ("*", "127.0.0.1"),
            ("127.0.0.1", "127.0.0.1"),
            ("127.0.0.*", "127.0.0.9"),
            ("127.0.0.0/8", "127.1.2.3"),
            ("127.0.0.1/8", "127.1.2.3"),
            ("::1", "::1"),
            ("2001:db8::/32", "2001:db8::7"),
            ("2001:DB8:*", "2001:db8::7"),
        ] {
            assert!(mask_matches(mask, ip(address)), "{mask} {address}");
        }
        for (mask, address) in [
            ("127.0.0.2", "127.0.0.1"),
            ("10.0.0.0/8", "127.0.0.1"),
            ("*.example.com", "127.0.0.1"),
            ("2001:db8::/32", "127.0.0.1"),
        ] {
            assert!(!mask_matches(mask, ip(address)), "{mask} {address}");
        }
    }

    #[test]
    fn the_accept_class_is_the_first_that_fits() {
        let mut for_registered = class("registered", ClassKind::Allow, &["*"], 1);
        for_registered.registered_only = true;
        let mut other_port = class("plain", ClassKind::Allow, &["*"], 2);
        other_port.ports = vec![6667];
        let classes = vec![
            class("opers", ClassKind::Named, &["*"], 9),
            for_registered,
            other_port,
            class("lan", ClassKind::Allow, &["192.0.2.0/24"], 5),
            main_class(),
        ];
        let name = |address: &str, port| {
            accept_class(&classes, ip(address), port).map(|c| c.name.as_str())
        };
        assert_eq!(name("127.0.0.1", 8080), Some("main"));
        assert_eq!(name("127.0.0.1", 6667), Some("plain"));
        assert_eq!(name("192.0.2.9", 8080), Some("lan"));
        assert_eq!(accept_class(&[], ip("127.0.0.1"), 8080), None);
    }

    #[test]
    fn bursts_are_limited_by_the_default_class() {
        assert_eq!(
            limited("127.0.0.1", &facts(vec![main_class()])),
            [("127.0.0.1".to_owned(), "main".to_owned())]
        );
        // A CIDR entry is checked as its first address, a glob with its wildcards as 0.
        let lan = facts(vec![class("lan", ClassKind::Allow, &["10.0.0.0/8"], 3)]);
        assert_eq!(limited("10.0.0.0/8", &lan).len(), 1);
        assert_eq!(limited("10.0.0.*", &lan).len(), 1);
        // Every entry, once per class, whatever the number of WebSocket ports.
        let mut two_ports = facts(vec![main_class()]);
        two_ports.websocket_ports = vec![8080, 8443];
        assert_eq!(limited("127.0.0.1 ::1", &two_ports).len(), 2);
    }

    #[test]
    fn no_warning_when_the_limits_do_not_apply_at_accept() {
        let proxy = |local, global| {
            let mut c = class("proxy", ClassKind::Allow, &["127.0.0.1"], local);
            c.global_max = global;
            c
        };
        // clonesonconnect="no".
        let mut off = facts(vec![main_class()]);
        off.clones_on_connect = false;
        assert!(limited("127.0.0.1", &off).is_empty());
        // A class for the proxies that lifts the limits, before the main class.
        for (local, global) in [(1000, 1000), (0, 0), (5000, 0)] {
            let f = facts(vec![proxy(local, global), main_class()]);
            assert!(limited("127.0.0.1", &f).is_empty(), "{local} {global}");
        }
        // No proxies, no WebSocket listener, a deny class, no class at all.
        assert!(limited("", &facts(vec![main_class()])).is_empty());
        let mut no_listener = facts(vec![main_class()]);
        no_listener.websocket_ports.clear();
        assert!(limited("127.0.0.1", &no_listener).is_empty());
        let deny = class("deny", ClassKind::Deny, &["127.0.0.1"], 3);
        assert!(limited("127.0.0.1", &facts(vec![deny, main_class()])).is_empty());
        assert!(limited("127.0.0.1", &facts(Vec::new())).is_empty());
    }

    #[test]
    fn a_proxy_class_that_still_limits_or_comes_too_late_is_named() {
        let proxy = class("proxy", ClassKind::Allow, &["127.0.0.1"], 1000);
        let mut half = proxy.clone();
        half.global_max = 50;
        assert_eq!(
            limited("127.0.0.1", &facts(vec![half, main_class()])),
            [("127.0.0.1".to_owned(), "proxy".to_owned())]
        );
        assert_eq!(
            limited("127.0.0.1", &facts(vec![main_class(), proxy])),
            [("127.0.0.1".to_owned(), "main".to_owned())]
        );
    }

    #[test]
    fn the_warning_names_the_proxy_the_class_its_limits_and_both_fixes() {
        let ranges = ProxyRanges::parse("127.0.0.1").unwrap();
        let lines = warnings(&ranges, &facts(vec![main_class()]), "inspircd.conf:12");
        assert_eq!(lines.len(), 1);
        for part in [
            "<websocket:proxyranges> at inspircd.conf:12",
            "clonesonconnect",
            "proxy 127.0.0.1 to port 8080",
            "class \"main\" (localmax 3, globalmax 3)",
            "<performance clonesonconnect=\"no\">",
            "before \"main\" with localmax and globalmax of at least 1000",
        ] {
            assert!(lines[0].contains(part), "{part} not in {:?}", lines[0]);
        }
    }
}
