//! The PROXY protocol stage of a connection, before the HTTP request: whether the first
//! bytes must, may or must not be a PROXY header, and what the client's address is.
//!
//! A PROXY header is believed only from a peer in `proxyranges` with `proxyprotocol`
//! on; from such a peer it is then required (the specification's "the receiver must not
//! guess"). A header anyone else sends is refused by name, and nothing is sent back.

use std::net::IpAddr;

use crate::config::Config;
use crate::proxy_protocol::{self, Header, Parsed, Refusal};

/// What the first bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prefix {
    /// Wait for more bytes.
    Partial,
    /// No PROXY header, and none is needed: the HTTP request starts here.
    Absent,
    /// A PROXY header from a trusted proxy.
    Read(Header),
    Refused(Refusal),
}

/// Decides on the bytes received so far from `peer`.
pub(super) fn read(input: &[u8], config: &Config, peer: Option<IpAddr>) -> Prefix {
    let trusted = peer.is_some_and(|ip| config.proxy_ranges.trusts_ip(ip));
    let required = config.proxy_protocol && trusted;
    match proxy_protocol::parse(input) {
        Parsed::Partial => Prefix::Partial,
        Parsed::Absent if required => Prefix::Refused(Refusal::Missing),
        Parsed::Absent => Prefix::Absent,
        // Whatever its form, a header from anyone who may not send one says so first.
        Parsed::Header(_) | Parsed::Refused(_) if !config.proxy_protocol => {
            Prefix::Refused(Refusal::NotEnabled)
        }
        Parsed::Header(_) | Parsed::Refused(_) if !trusted => {
            Prefix::Refused(Refusal::UntrustedPeer)
        }
        Parsed::Header(header) => Prefix::Read(header),
        Parsed::Refused(refusal) => Prefix::Refused(refusal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyRanges;

    fn config(proxy_protocol: bool) -> Config {
        let mut config = Config::with_origins(&["https://chat.example.com"]);
        config.proxy_ranges = ProxyRanges::parse("127.0.0.1").unwrap();
        config.proxy_protocol = proxy_protocol;
        config
    }

    const LINE: &[u8] = b"PROXY TCP4 192.0.2.9 127.0.0.1 5000 8080\r\nGET";
    const HTTP: &[u8] = b"GET / HTTP/1.1\r\n";

    fn peer(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn a_trusted_proxy_must_send_one_when_enabled() {
        let on = config(true);
        assert!(matches!(
            read(LINE, &on, peer("127.0.0.1")),
            Prefix::Read(h) if h.len == LINE.len() - 3
        ));
        assert_eq!(
            read(HTTP, &on, peer("127.0.0.1")),
            Prefix::Refused(Refusal::Missing)
        );
        assert_eq!(read(b"PRO", &on, peer("127.0.0.1")), Prefix::Partial);
        assert_eq!(
            read(b"PROXY TCP9 x\r\n", &on, peer("127.0.0.1")),
            Prefix::Refused(Refusal::V1UnknownFamily)
        );
    }

    #[test]
    fn anyone_else_speaks_http_and_a_header_from_them_is_refused() {
        let on = config(true);
        assert_eq!(read(HTTP, &on, peer("192.0.2.1")), Prefix::Absent);
        assert_eq!(read(HTTP, &on, None), Prefix::Absent);
        assert_eq!(
            read(LINE, &on, peer("192.0.2.1")),
            Prefix::Refused(Refusal::UntrustedPeer)
        );
        assert_eq!(
            read(b"PROXY garbage\r\n", &on, peer("192.0.2.1")),
            Prefix::Refused(Refusal::UntrustedPeer)
        );
        let off = config(false);
        for from in ["127.0.0.1", "192.0.2.1"] {
            assert_eq!(read(HTTP, &off, peer(from)), Prefix::Absent);
            assert_eq!(
                read(LINE, &off, peer(from)),
                Prefix::Refused(Refusal::NotEnabled)
            );
        }
    }
}
