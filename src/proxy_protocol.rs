//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a TCP-mode load balancer
//! (HAProxy `send-proxy`/`send-proxy-v2`, nginx `stream` with `proxy_protocol on`)
//! writes before the client's first byte, naming the client's address.
//!
//! [`parse`] is push-parsed like httparse: it looks at every byte received so far and
//! answers [`Parsed::Partial`] (not an error: wait for more), [`Parsed::Header`] with
//! the header's length, or a [`Refusal`] naming what is wrong. Every length is bounded
//! before it is waited for: a v1 line must end with CRLF within
//! [`V1_MAX_LINE`] bytes; a v2 header declares its length in its 16-byte prefix, and a
//! declared length above [`V2_MAX_PAYLOAD`] is refused at once. A slow header is bounded
//! by InspIRCd's registration timeout (the connection is an unregistered user).
//!
//! Written here rather than taken from a crate: `ppp` is Apache-2.0 licensed, which
//! cannot be linked into this GPL-2.0-only module, and `proxy-header` reports every
//! refusal as one `Invalid` (the module names each reason in its log and `/STATS`) and
//! accepts a v1 line whose sixth byte is not a space. The format is small: the v1 line
//! is six space-separated fields, the v2 header a fixed prefix and a TLV list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::secure::ClientTls;

/// What a v1 header starts with.
pub const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the specification's own bound).
pub const V1_MAX_LINE: usize = 107;
/// What a v2 header starts with.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version and command, family and
/// transport, payload length.
pub const V2_PREFIX_LEN: usize = 16;
/// The largest v2 payload (addresses and TLVs) accepted. HAProxy's own headers stay
/// well under it (addresses, SSL details and a unique ID); the format allows 65,535,
/// which would let a peer make the module wait for and hold 64 KiB per connection.
pub const V2_MAX_PAYLOAD: usize = 2048;

/// The v2 version nibble (high half of byte 12).
const V2_VERSION: u8 = 0x2;
/// v2 commands (low half of byte 12).
const V2_COMMAND_LOCAL: u8 = 0x0;
const V2_COMMAND_PROXY: u8 = 0x1;
/// v2 address families (high half of byte 13).
const V2_FAMILY_UNSPEC: u8 = 0x0;
const V2_FAMILY_INET: u8 = 0x1;
const V2_FAMILY_INET6: u8 = 0x2;
const V2_FAMILY_UNIX: u8 = 0x3;
/// v2 transports (low half of byte 13).
const V2_TRANSPORT_UNSPEC: u8 = 0x0;
const V2_TRANSPORT_STREAM: u8 = 0x1;
/// Bytes of the address block per family: two addresses, two ports (UNIX: two
/// 108-byte paths).
const V2_INET_ADDRESSES_LEN: usize = 12;
const V2_INET6_ADDRESSES_LEN: usize = 36;
const V2_UNIX_ADDRESSES_LEN: usize = 216;
/// A TLV's type and 16-bit length.
const TLV_HEADER_LEN: usize = 3;
/// `PP2_TYPE_SSL`: the client's connection to the proxy used TLS, or did not.
const PP2_TYPE_SSL: u8 = 0x20;
/// `PP2_CLIENT_SSL`: in the SSL TLV's first byte, the client connected over TLS.
const PP2_CLIENT_SSL: u8 = 0x01;

/// Which version of the protocol a header was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumIter)]
pub enum Version {
    V1,
    V2,
}

/// Whose connection a header describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A proxied client at this address and port.
    Client { ip: IpAddr, port: u16 },
    /// The proxy's own connection (v2 LOCAL: a health check), or a client whose address
    /// the proxy could not express (v1 UNKNOWN, v2 UNSPEC or UNIX): the peer's address
    /// stays, as the specification asks.
    Proxy,
}

/// A complete, valid header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    /// Bytes the header took; what follows is the client's own.
    pub len: usize,
    pub source: Source,
    pub client_tls: ClientTls,
}

/// Why a PROXY header is refused. Each is logged and counted by name; nothing is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, strum::EnumIter)]
pub enum Refusal {
    /// A PROXY header while `proxyprotocol` is off.
    NotEnabled,
    /// A PROXY header from a peer outside `proxyranges`.
    UntrustedPeer,
    /// A peer in `proxyranges` began without a PROXY header (`proxyprotocol` on).
    Missing,
    /// The bytes began like a signature and then differed.
    BadSignature,
    /// A v1 line without CRLF within [`V1_MAX_LINE`] bytes.
    V1TooLong,
    /// A v1 line that is not `PROXY TCP4|TCP6 src dst sport dport` or `PROXY UNKNOWN`.
    V1Malformed,
    /// A v1 protocol other than TCP4, TCP6 or UNKNOWN.
    V1UnknownFamily,
    /// A v2 version other than 2.
    V2UnknownVersion,
    /// A v2 command other than LOCAL or PROXY.
    V2UnknownCommand,
    /// A v2 address family other than UNSPEC, INET, INET6 or UNIX.
    V2UnknownFamily,
    /// A v2 transport other than UNSPEC or STREAM (DGRAM is UDP, which is not us).
    V2UnsupportedTransport,
    /// A v2 declared length above [`V2_MAX_PAYLOAD`].
    V2TooLong,
    /// A v2 payload shorter than its family's addresses.
    V2Truncated,
    /// A v2 TLV that runs past the payload's end, or an SSL TLV too short for its
    /// fields.
    V2BadTlv,
}

impl Refusal {
    /// What the log says (after "PROXY header refused: ").
    pub fn text(self) -> &'static str {
        match self {
            Refusal::NotEnabled => "a PROXY header, but <websocket:proxyprotocol> is off",
            Refusal::UntrustedPeer => "a PROXY header from a peer outside proxyranges",
            Refusal::Missing => {
                "no PROXY header from a peer in proxyranges (<websocket:proxyprotocol> is on)"
            }
            Refusal::BadSignature => "bytes that begin like a PROXY signature, then differ",
            Refusal::V1TooLong => "a PROXY v1 line without CRLF within 107 bytes",
            Refusal::V1Malformed => "a malformed PROXY v1 line",
            Refusal::V1UnknownFamily => "a PROXY v1 protocol other than TCP4, TCP6 or UNKNOWN",
            Refusal::V2UnknownVersion => "a PROXY v2 header with an unknown version",
            Refusal::V2UnknownCommand => "a PROXY v2 header with an unknown command",
            Refusal::V2UnknownFamily => "a PROXY v2 header with an unknown address family",
            Refusal::V2UnsupportedTransport => "a PROXY v2 header for a transport other than TCP",
            Refusal::V2TooLong => "a PROXY v2 header longer than 2048 bytes",
            Refusal::V2Truncated => "a PROXY v2 header too short for its addresses",
            Refusal::V2BadTlv => "a PROXY v2 header with a malformed TLV",
        }
    }
}

/// The result of looking at the bytes received so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes do not begin with either signature: no PROXY header.
    Absent,
    /// A header may be complete with more bytes.
    Partial,
    Header(Header),
    Refused(Refusal),
}

/// How many bytes of a signature must match before a difference is a bad header
/// rather than no header: no HTTP method begins `PROX` (`WebDAV`'s `PROPFIND` and `POST`,
/// `PUT`, `PATCH` share less), and no request begins with an empty line and another.
const DECISIVE_LEN: usize = 4;

/// Looks for a PROXY header at the start of `buf` (every byte received so far).
pub fn parse(buf: &[u8]) -> Parsed {
    for signature in [V1_SIGNATURE, &V2_SIGNATURE[..]] {
        match match_signature(buf, signature) {
            Signature::Other => {}
            Signature::Prefix => return Parsed::Partial,
            Signature::Differs => return Parsed::Refused(Refusal::BadSignature),
            Signature::Whole if signature == V1_SIGNATURE => return parse_v1(buf),
            Signature::Whole => return parse_v2(buf),
        }
    }
    Parsed::Absent
}

/// How the start of the input compares with a signature.
enum Signature {
    /// Not this signature (it differs within its first [`DECISIVE_LEN`] bytes).
    Other,
    /// What came so far is a prefix of it.
    Prefix,
    /// Its first [`DECISIVE_LEN`] bytes came, then a difference.
    Differs,
    /// All of it.
    Whole,
}

fn match_signature(buf: &[u8], signature: &[u8]) -> Signature {
    let seen = buf.len().min(signature.len());
    let same = buf
        .iter()
        .zip(signature)
        .take_while(|(a, b)| a == b)
        .count();
    match (same == seen, seen == signature.len()) {
        (true, true) => Signature::Whole,
        (true, false) => Signature::Prefix,
        (false, _) if same >= DECISIVE_LEN => Signature::Differs,
        (false, _) => Signature::Other,
    }
}

/// A v1 line: `PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n`, `TCP6` likewise, or
/// `PROXY UNKNOWN` with anything up to CRLF.
fn parse_v1(buf: &[u8]) -> Parsed {
    // The CR must come by the line's last-but-one byte.
    let window = buf.get(..V1_MAX_LINE - 1).unwrap_or(buf);
    let Some(cr) = memchr::memchr(b'\r', window) else {
        return if window.len() == V1_MAX_LINE - 1 {
            Parsed::Refused(Refusal::V1TooLong)
        } else {
            Parsed::Partial
        };
    };
    match buf.get(cr + 1) {
        None => return Parsed::Partial,
        Some(b'\n') => {}
        Some(_) => return Parsed::Refused(Refusal::V1Malformed),
    }
    let len = cr + 2;
    let Some(line) = buf
        .get(V1_SIGNATURE.len()..cr)
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return Parsed::Refused(Refusal::V1Malformed);
    };
    let mut fields = line.split(' ');
    let source = match fields.next() {
        Some("UNKNOWN") => Some(Source::Proxy),
        Some("TCP4") => v1_addresses::<Ipv4Addr>(&mut fields).map(|(ip, port)| Source::Client {
            ip: IpAddr::V4(ip),
            port,
        }),
        Some("TCP6") => v1_addresses::<Ipv6Addr>(&mut fields).map(|(ip, port)| Source::Client {
            ip: IpAddr::V6(ip),
            port,
        }),
        Some(_) | None => return Parsed::Refused(Refusal::V1UnknownFamily),
    };
    match source {
        Some(source) => Parsed::Header(Header {
            version: Version::V1,
            len,
            source,
            client_tls: ClientTls::Unstated,
        }),
        None => Parsed::Refused(Refusal::V1Malformed),
    }
}

/// The source address and port of a TCP4/TCP6 line (the destination is checked for
/// form and dropped); `None` unless there are exactly four well-formed fields.
fn v1_addresses<'a, A: std::str::FromStr>(
    fields: &mut impl Iterator<Item = &'a str>,
) -> Option<(A, u16)> {
    let source = fields.next()?.parse::<A>().ok()?;
    fields.next()?.parse::<A>().ok()?;
    let port = v1_port(fields.next()?)?;
    v1_port(fields.next()?)?;
    fields.next().is_none().then_some((source, port))
}

/// A v1 port: decimal without leading zeros (the specification's form), 0 to 65535.
fn v1_port(text: &str) -> Option<u16> {
    let canonical = text == "0" || (!text.starts_with('0') && !text.is_empty());
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    (canonical && digits).then(|| text.parse().ok()).flatten()
}

/// A v2 header: the 16-byte prefix, then the addresses and TLVs it declares.
fn parse_v2(buf: &[u8]) -> Parsed {
    // An array, so that the fixed offsets below are checked at compile time.
    let Some(prefix) = buf.first_chunk::<V2_PREFIX_LEN>() else {
        return Parsed::Partial;
    };
    let (version, command) = (prefix[12] >> 4, prefix[12] & 0x0f);
    let (family, transport) = (prefix[13] >> 4, prefix[13] & 0x0f);
    let declared = usize::from(u16::from_be_bytes([prefix[14], prefix[15]]));
    if version != V2_VERSION {
        return Parsed::Refused(Refusal::V2UnknownVersion);
    }
    if !matches!(command, V2_COMMAND_LOCAL | V2_COMMAND_PROXY) {
        return Parsed::Refused(Refusal::V2UnknownCommand);
    }
    let addresses_len = match family {
        V2_FAMILY_UNSPEC => 0,
        V2_FAMILY_INET => V2_INET_ADDRESSES_LEN,
        V2_FAMILY_INET6 => V2_INET6_ADDRESSES_LEN,
        V2_FAMILY_UNIX => V2_UNIX_ADDRESSES_LEN,
        _ => return Parsed::Refused(Refusal::V2UnknownFamily),
    };
    match transport {
        V2_TRANSPORT_UNSPEC | V2_TRANSPORT_STREAM => {}
        // DGRAM (UDP), or unknown.
        _ => return Parsed::Refused(Refusal::V2UnsupportedTransport),
    }
    if declared > V2_MAX_PAYLOAD {
        return Parsed::Refused(Refusal::V2TooLong);
    }
    // LOCAL carries no addresses worth reading; its payload only has to be whole.
    if command == V2_COMMAND_PROXY && declared < addresses_len {
        return Parsed::Refused(Refusal::V2Truncated);
    }
    let len = V2_PREFIX_LEN + declared;
    let Some(payload) = buf.get(V2_PREFIX_LEN..len) else {
        return Parsed::Partial;
    };
    let (addresses, tlvs) = payload.split_at(addresses_len.min(payload.len()));
    let Some(client_tls) = client_tls(tlvs) else {
        return Parsed::Refused(Refusal::V2BadTlv);
    };
    let source = match (command, family) {
        (V2_COMMAND_PROXY, V2_FAMILY_INET) => v2_client::<4>(addresses),
        (V2_COMMAND_PROXY, V2_FAMILY_INET6) => v2_client::<16>(addresses),
        _ => Some(Source::Proxy),
    };
    match source {
        Some(source) => Parsed::Header(Header {
            version: Version::V2,
            len,
            source,
            client_tls,
        }),
        None => Parsed::Refused(Refusal::V2Truncated),
    }
}

/// The client in an INET (`N` = 4) or INET6 (16) address block: the source address
/// first, then the destination's, then the source port.
fn v2_client<const N: usize>(addresses: &[u8]) -> Option<Source>
where
    IpAddr: From<[u8; N]>,
{
    let ip: [u8; N] = addresses.get(..N)?.try_into().ok()?;
    let port: [u8; 2] = addresses.get(2 * N..2 * N + 2)?.try_into().ok()?;
    Some(Source::Client {
        ip: IpAddr::from(ip),
        port: u16::from_be_bytes(port),
    })
}

/// Walks the TLVs (each within the payload); what the SSL TLV says, `None` when a TLV
/// is malformed. Other TLVs are skipped.
fn client_tls(mut tlvs: &[u8]) -> Option<ClientTls> {
    let mut said = ClientTls::Unstated;
    while !tlvs.is_empty() {
        let (&kind, rest) = tlvs.split_first()?;
        let length: [u8; 2] = rest.get(..2)?.try_into().ok()?;
        let value_len = usize::from(u16::from_be_bytes(length));
        let value = tlvs.get(TLV_HEADER_LEN..TLV_HEADER_LEN + value_len)?;
        if kind == PP2_TYPE_SSL {
            // client (1 byte), verify (4 bytes), then sub-TLVs.
            let client = *value.first()?;
            value.get(..5)?;
            said = if client & PP2_CLIENT_SSL != 0 {
                ClientTls::Yes
            } else {
                ClientTls::No
            };
        }
        tlvs = tlvs.get(TLV_HEADER_LEN + value_len..)?;
    }
    Some(said)
}

#[cfg(test)]
mod tests;
