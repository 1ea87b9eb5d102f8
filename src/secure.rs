//! Secure web users: when a user behind a trusted proxy counts as connected over TLS.
//!
//! InspIRCd's model (sslinfo): a user is secure when its `UserCertificateAPI` has a
//! certificate for it; WHOIS 671, `+z` channels and `sslonly` opers all ask that. A
//! WEBIRC gateway's `secure` flag is honoured only when the gateway's own link to the
//! server is TLS (sslinfo's `OnWebIRCAuth` replaces the link's certificate with one of
//! its own, or strips it when the flag is absent). This module follows the same model
//! for proxies: a trusted proxy whose link to the server cannot be read by others (TLS,
//! or loopback: the same machine) and that says its client used TLS makes a secure
//! user. What it says comes from the PROXY v2 SSL TLV, or, only when the admin names it
//! with `proxyprotoheader` (for a proxy that overwrites it), from `X-Forwarded-Proto` or
//! `Forwarded: proto=`. Nothing a client can send makes it secure.
//!
//! InspIRCd 4's `<sslinfo localsecure>` (on by default) also counts every user whose
//! address is a loopback address as secure: the module cannot change that, but it only
//! matters for users whose real address is loopback (a client on the server's own
//! machine), since the proxy's address is replaced by the client's.

use std::net::IpAddr;

/// What the proxy said about its client's connection to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTls {
    /// The client used TLS (https, wss).
    Yes,
    /// It did not (http, ws).
    No,
    /// Nothing said.
    Unstated,
}

/// Which header says what the client used (`<websocket proxyprotoheader>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, strum::EnumIter)]
pub enum ProtoHeader {
    /// No header is believed (the default).
    #[default]
    None,
    /// `X-Forwarded-Proto: https` (or `wss`; `http`, `ws`: not TLS).
    XForwardedProto,
    /// `Forwarded: proto=https`, in the element the client's address is taken from.
    Forwarded,
}

impl crate::config::keys::Choice for ProtoHeader {
    fn word(self) -> &'static str {
        match self {
            ProtoHeader::None => "none",
            ProtoHeader::XForwardedProto => "x-forwarded-proto",
            ProtoHeader::Forwarded => "forwarded",
        }
    }
}

/// A scheme value that is none of https, wss, http, ws (or a list of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownScheme;

/// What a scheme (`X-Forwarded-Proto`'s value, `Forwarded`'s `proto=`) says: one
/// value, ASCII case-insensitive. A list (`https, http`) means the proxy appended to
/// what its client sent rather than overwriting it: refused.
pub fn scheme_says(value: &str) -> Result<ClientTls, UnknownScheme> {
    let value = value.trim_matches([' ', '\t']);
    if ["https", "wss"]
        .iter()
        .any(|s| value.eq_ignore_ascii_case(s))
    {
        Ok(ClientTls::Yes)
    } else if ["http", "ws"].iter().any(|s| value.eq_ignore_ascii_case(s)) {
        Ok(ClientTls::No)
    } else {
        Err(UnknownScheme)
    }
}

/// The link between the proxy and the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// TLS terminated by InspIRCd (a TLS hook below this module's).
    Tls,
    /// Plain, from a loopback address (or a UNIX socket): the same machine.
    Loopback,
    /// Plain, over a network others may read.
    Network,
}

impl Link {
    /// The link of a connection from `peer` (`None`: a UNIX socket).
    pub fn of(peer: Option<IpAddr>, tls_below: bool) -> Link {
        match (tls_below, peer) {
            (true, _) => Link::Tls,
            (false, None) => Link::Loopback,
            (false, Some(ip)) if ip.to_canonical().is_loopback() => Link::Loopback,
            (false, Some(_)) => Link::Network,
        }
    }
}

/// The flag map the module passes with InspIRCd's `WebIRC` event (fired only when the
/// real address is applied; sslinfo reads it only when the link is TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFlags {
    /// No flag map: sslinfo leaves the user's TLS status as it is.
    None,
    /// `secure`: sslinfo gives the user its `WebIRC` certificate.
    Secure,
    /// An empty map: sslinfo strips the link's certificate.
    NotSecure,
}

/// What the shim does about the user's TLS status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurePlan {
    pub event_flags: EventFlags,
    /// Give the user a certificate through sslinfo's API (one that carries no
    /// fingerprint: [`CERTIFICATE_NOTE`] as its error), before the real address is
    /// applied, so that the connect class chosen for it sees the user as secure.
    pub set_certificate: bool,
}

/// What the certificate the module gives a secure web user says (sslinfo shows it as
/// the certificate's error: it carries no fingerprint).
pub const CERTIFICATE_NOTE: &str =
    "WebSocket proxy: the client's connection to a trusted proxy used TLS (no certificate)";

impl SecurePlan {
    /// Nothing to do.
    pub const KEEP: SecurePlan = SecurePlan {
        event_flags: EventFlags::None,
        set_certificate: false,
    };
}

/// Decides, for a trusted proxy on `link` that `says` this of its client, when the real
/// address is applied (`address_changes`) or not.
pub fn plan(link: Link, says: ClientTls, address_changes: bool) -> SecurePlan {
    let flags = |flags| SecurePlan {
        event_flags: if address_changes {
            flags
        } else {
            EventFlags::None
        },
        set_certificate: false,
    };
    match (link, says) {
        // Nothing said; or over a plain network link, where the proxy's word cannot
        // make the user secure and the user is not secure already; or a plain client
        // on a plain loopback link.
        (_, ClientTls::Unstated)
        | (Link::Network, ClientTls::Yes | ClientTls::No)
        | (Link::Loopback, ClientTls::No) => SecurePlan::KEEP,
        // sslinfo's own rule for a gateway on a TLS link. Without an address change the
        // client is the proxy's own machine, secure by the link.
        (Link::Tls, ClientTls::Yes) => flags(EventFlags::Secure),
        (Link::Tls, ClientTls::No) => flags(EventFlags::NotSecure),
        // sslinfo ignores a gateway's flags on a plain link: the certificate is set
        // directly.
        (Link::Loopback, ClientTls::Yes) => SecurePlan {
            event_flags: EventFlags::None,
            set_certificate: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn links() {
        assert_eq!(Link::of(ip("127.0.0.1"), false), Link::Loopback);
        assert_eq!(Link::of(ip("127.9.9.9"), false), Link::Loopback);
        assert_eq!(Link::of(ip("::1"), false), Link::Loopback);
        assert_eq!(Link::of(ip("::ffff:127.0.0.1"), false), Link::Loopback);
        assert_eq!(Link::of(None, false), Link::Loopback);
        assert_eq!(Link::of(ip("192.0.2.1"), false), Link::Network);
        assert_eq!(Link::of(ip("192.0.2.1"), true), Link::Tls);
        assert_eq!(Link::of(ip("127.0.0.1"), true), Link::Tls);
    }

    #[test]
    fn schemes() {
        for yes in ["https", "HTTPS", " wss ", "Wss"] {
            assert_eq!(scheme_says(yes), Ok(ClientTls::Yes), "{yes:?}");
        }
        for no in ["http", "ws", "HTTP"] {
            assert_eq!(scheme_says(no), Ok(ClientTls::No), "{no:?}");
        }
        for bad in [
            "",
            "https, http",
            "http,https",
            "ftp",
            "https;",
            "\"https\"",
        ] {
            assert_eq!(scheme_says(bad), Err(UnknownScheme), "{bad:?}");
        }
    }

    #[test]
    fn a_tls_claim_makes_a_secure_user_only_over_a_loopback_or_tls_link() {
        let secure = |p: SecurePlan| p.set_certificate || p.event_flags == EventFlags::Secure;
        assert!(secure(plan(Link::Loopback, ClientTls::Yes, true)));
        assert!(secure(plan(Link::Loopback, ClientTls::Yes, false)));
        assert!(secure(plan(Link::Tls, ClientTls::Yes, true)));
        assert!(!secure(plan(Link::Network, ClientTls::Yes, true)));
        for link in [Link::Loopback, Link::Tls, Link::Network] {
            for changes in [true, false] {
                assert!(!secure(plan(link, ClientTls::No, changes)));
                assert_eq!(plan(link, ClientTls::Unstated, changes), SecurePlan::KEEP);
            }
        }
    }

    #[test]
    fn plans_in_full() {
        let p = |flags, set_certificate| SecurePlan {
            event_flags: flags,
            set_certificate,
        };
        // On a loopback link sslinfo would ignore the flags: the certificate is set.
        assert_eq!(
            plan(Link::Loopback, ClientTls::Yes, true),
            p(EventFlags::None, true)
        );
        // On a TLS link, sslinfo's own rule, through the event that goes with the
        // address change.
        assert_eq!(
            plan(Link::Tls, ClientTls::Yes, true),
            p(EventFlags::Secure, false)
        );
        assert_eq!(
            plan(Link::Tls, ClientTls::No, true),
            p(EventFlags::NotSecure, false)
        );
        // Without an address change the event is not fired (connectban would take back
        // a count nobody adds again): the link decides.
        assert_eq!(plan(Link::Tls, ClientTls::No, false), SecurePlan::KEEP);
        assert_eq!(plan(Link::Tls, ClientTls::Yes, false), SecurePlan::KEEP);
        assert_eq!(plan(Link::Network, ClientTls::Yes, true), SecurePlan::KEEP);
    }
}
