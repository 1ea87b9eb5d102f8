//! Target `proxy_protocol`: PROXY headers (BAD_INPUT rows 47-57). Input: `[flags][cut
//! count][cuts...]` then the bytes a balancer's connection begins with.
//!
//! Flags bit 0: the peer is outside `proxyranges`; bit 1: a valid upgrade request
//! follows the bytes (part of what the parser sees); bit 2: the bytes get a v2 signature and prefix in front, so that
//! the v2 parser sees more than its signature check (bits 3-7 then are the version and
//! command byte's low bits, the rest of the input the family byte, length and payload).
//!
//! Checked, for [`parse`] alone: the verdict is decided by the bytes so far and never
//! changes with more (every longer prefix gives the same `Header`, `Refused` or
//! `Absent`); a header is complete exactly when its last byte arrives; `Partial` never
//! holds more than a header can be ([`V1_MAX_LINE`], [`V2_PREFIX_LEN`] +
//! [`V2_MAX_PAYLOAD`]); a v1 IPv4 client's address is the one the line wrote. Through a
//! session behind a trusted balancer (`proxyprotocol="yes"`): the same report in any
//! chunking; a refused header ends the connection with that refusal and nothing sent;
//! a header's client is what the session reports to apply (only from a trusted peer).
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use inspircd_websocket::config::{Config, RawConfig};
use inspircd_websocket::handshake::SocketKind;
use inspircd_websocket::proxy_protocol::{
    parse, Header, Parsed, Refusal, Source, Version, V1_MAX_LINE, V2_MAX_PAYLOAD, V2_PREFIX_LEN,
    V2_SIGNATURE,
};
use inspircd_websocket::session::{Ending, Session};

use super::{assert_same_receive, chunks, receive_all, tag, Reader, REQUESTS};

/// The most bytes a header can take; `Partial` never holds more.
const MAX_HEADER: usize = V2_PREFIX_LEN + V2_MAX_PAYLOAD;

/// Behind a trusted balancer on loopback, as docs/PROXIES.md's recipes.
fn config() -> &'static Arc<Config> {
    static CONFIG: OnceLock<Arc<Config>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let raw = RawConfig {
            origins: vec![tag(&[("allow", "https://chat.example.com")])],
            websocket: Some(tag(&[
                ("proxyranges", "127.0.0.0/8"),
                ("proxyprotocol", "yes"),
            ])),
            ..RawConfig::default()
        };
        Arc::new(Config::from_raw(&raw).expect("fuzz config"))
    })
}

/// The verdict on `bytes`, checked against every shorter prefix up to the point where
/// it was decided.
fn decided(bytes: &[u8]) -> Parsed {
    let whole = parse(bytes);
    for n in 0..=bytes.len() {
        let prefix = parse(&bytes[..n]);
        match prefix {
            Parsed::Partial => {
                assert!(n <= MAX_HEADER, "Partial after {n} bytes");
                continue;
            }
            Parsed::Header(header) => {
                assert_eq!(header.len, n, "a header decided before its last byte");
            }
            Parsed::Absent | Parsed::Refused(_) => {}
        }
        assert_eq!(whole, prefix, "decided at {n} bytes, then changed");
        return whole;
    }
    assert_eq!(whole, Parsed::Partial);
    whole
}

/// What a complete header must be.
fn check_header(header: &Header, bytes: &[u8]) {
    match header.version {
        Version::V1 => {
            assert!(header.len <= V1_MAX_LINE);
            let line = &bytes[..header.len];
            assert!(line.starts_with(b"PROXY ") && line.ends_with(b"\r\n"));
            if let Source::Client {
                ip: IpAddr::V4(ip), ..
            } = header.source
            {
                let field = format!(" {ip} ");
                assert!(
                    line.windows(field.len()).any(|w| w == field.as_bytes()),
                    "{ip} is not in {}",
                    line.escape_ascii()
                );
            }
        }
        Version::V2 => {
            assert!((V2_PREFIX_LEN..=MAX_HEADER).contains(&header.len));
            assert!(bytes.starts_with(V2_SIGNATURE));
            let declared = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
            assert_eq!(header.len, V2_PREFIX_LEN + declared);
        }
    }
}

pub fn proxy_protocol(data: &[u8]) {
    let mut r = Reader::new(data);
    let flags = r.byte();
    let cuts = r.cuts();
    let mut bytes = Vec::new();
    if flags & 4 != 0 {
        bytes.extend_from_slice(V2_SIGNATURE);
        bytes.push(0x20 | (flags >> 3) & 0x1f);
    }
    bytes.extend_from_slice(r.rest());
    if flags & 2 != 0 {
        bytes.extend_from_slice(REQUESTS[0]);
    }

    // The parser sees everything the connection has brought so far.
    let verdict = decided(&bytes);
    if let Parsed::Header(header) = &verdict {
        check_header(header, &bytes);
    }

    // Through a session.
    let trusted = flags & 1 == 0;
    let peer: IpAddr = if trusted { "127.0.0.1" } else { "192.0.2.7" }
        .parse()
        .expect("address");
    let client = bytes;
    let config = config();
    let run = |pieces: &[&[u8]]| {
        let mut session = Session::new(Arc::clone(config), Some(peer), SocketKind::User);
        receive_all(&mut session, pieces, config)
    };
    let whole = run(&[&client]);
    assert_same_receive(&run(&chunks(&client, cuts)), &whole);

    match (&verdict, trusted) {
        (Parsed::Refused(refusal), true) => {
            assert_eq!(whole.ending, Some(Ending::ProxyRefused(*refusal)));
            assert!(whole.out.is_empty(), "sent something to a refused balancer");
        }
        // Whatever its form, a header from a peer that may not send one is refused as
        // that.
        (Parsed::Header(_) | Parsed::Refused(_), false) => {
            assert_eq!(
                whole.ending,
                Some(Ending::ProxyRefused(Refusal::UntrustedPeer))
            );
            assert!(whole.out.is_empty());
        }
        (Parsed::Absent, true) if !client.is_empty() => {
            assert_eq!(whole.ending, Some(Ending::ProxyRefused(Refusal::Missing)));
            assert!(whole.out.is_empty());
        }
        (Parsed::Header(header), true) => {
            let reported = whole.proxied.as_ref().and_then(|p| p.address);
            match header.source {
                Source::Client { ip, port } if ip.to_canonical() != peer => {
                    assert_eq!(reported, Some((ip.to_canonical(), Some(port))));
                }
                Source::Client { .. } | Source::Proxy => assert_eq!(reported, None),
            }
        }
        (Parsed::Absent, _) => assert!(whole.proxied.is_none()),
        (Parsed::Partial, _) => {
            assert!(whole.proxied.is_none() && whole.ending.is_none() && whole.out.is_empty());
        }
    }
}
