//! The HTTP/1.1 upgrade request: from the bytes received so far to a 101 response or an
//! HTTP error (RFC 6455 section 4.2, plus the stock module's own checks).
//!
//! Parsing is incremental but linear: [`HandshakeScanner`] remembers how far it has
//! looked for the blank line that ends the request, so a request trickled one byte at a
//! time is scanned once, and httparse runs at most twice (once when the request line is
//! complete, to turn away non-HTTP clients early, and once on the whole request).

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use memchr::memmem::Finder;
use sha1::{Digest, Sha1};
use strum::IntoEnumIterator;

use crate::compression::{negotiate, Agreed};
use crate::config::{Config, DefaultMode};
use crate::irc::MessageMode;
use crate::proxy::{HeaderConflict, ProxyError, RealAddress, RequestHeaders};
use crate::secure::{scheme_says, ClientTls, ProtoHeader};

/// The GUID every server appends to the client's key (RFC 6455 section 1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version RFC 6455 defines.
const WEBSOCKET_VERSION: &[u8] = b"13";

/// Bytes in a decoded Sec-WebSocket-Key.
const KEY_LEN: usize = 16;

/// What kind of InspIRCd socket the connection is. The `*.ircv3.net` subprotocols are
/// only for client connections, as in the stock module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    User,
    Server,
}

/// The subprotocols InspIRCd 3.18 knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumIter)]
pub enum Subprotocol {
    BinaryIrcv3,
    TextIrcv3,
    BinaryInspircd,
    TextInspircd,
}

impl Subprotocol {
    /// The registered name.
    pub fn name(self) -> &'static str {
        match self {
            Subprotocol::BinaryIrcv3 => "binary.ircv3.net",
            Subprotocol::TextIrcv3 => "text.ircv3.net",
            Subprotocol::BinaryInspircd => "binary.inspircd.org",
            Subprotocol::TextInspircd => "text.inspircd.org",
        }
    }

    /// The frame type the subprotocol asks for.
    pub fn mode(self) -> MessageMode {
        match self {
            Subprotocol::BinaryIrcv3 | Subprotocol::BinaryInspircd => MessageMode::Binary,
            Subprotocol::TextIrcv3 | Subprotocol::TextInspircd => MessageMode::Text,
        }
    }

    fn offered_on(self, socket: SocketKind) -> bool {
        match self {
            Subprotocol::BinaryIrcv3 | Subprotocol::TextIrcv3 => socket == SocketKind::User,
            Subprotocol::BinaryInspircd | Subprotocol::TextInspircd => true,
        }
    }

    fn from_token(token: &[u8], socket: SocketKind) -> Option<Subprotocol> {
        Subprotocol::iter()
            .find(|p| p.offered_on(socket) && token.eq_ignore_ascii_case(p.name().as_bytes()))
    }
}

/// Why a handshake was refused. Each reason has one HTTP status; the text is what the
/// response body, the log and the quit reason say. Ordered as declared (the `/STATS`
/// lines follow that order); `RejectReason::iter()` gives every reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, strum::EnumIter)]
pub enum RejectReason {
    /// The request is larger than `maxhandshake` bytes.
    TooLarge,
    /// The request has more than `maxheaders` header lines.
    TooManyHeaders,
    /// The bytes are not an HTTP request at all (e.g. a plain IRC client).
    NotHttp,
    /// A method other than GET.
    MethodNotAllowed,
    /// HTTP/1.0: WebSocket needs HTTP/1.1.
    HttpVersion,
    /// No Host header.
    MissingHost,
    /// No Origin header (stock behaviour: 400).
    MissingOrigin,
    /// More than one Origin header: which one a browser sent cannot be told.
    DuplicateOrigin,
    /// A body (Content-Length other than 0, or Transfer-Encoding): an upgrade request
    /// has none, and its bytes would otherwise be read as WebSocket frames.
    RequestBody,
    /// The Origin matches no `<wsorigin>`.
    OriginNotAllowed,
    /// proxyranges is set and no real-address header was sent (the one `proxyheader`
    /// names; with `any`, none of X-Real-IP, X-Forwarded-For, Forwarded).
    MissingProxyHeader,
    /// proxyranges is set and a real-address header is not an address (list).
    MalformedProxyHeader,
    /// `proxyheader="any"` and a trusted proxy's headers name different clients.
    ProxyHeadersDisagree,
    /// `proxyprotoheader` is set and a trusted proxy's value is not one scheme.
    MalformedProtoHeader,
    /// defaultmode is reject and no known subprotocol was requested.
    NoSubprotocol,
    /// No Sec-WebSocket-Key: not a WebSocket upgrade (stock behaviour: 501).
    MissingKey,
    /// No `Upgrade: websocket`.
    NotUpgrade,
    /// Connection does not contain the `Upgrade` token.
    ConnectionNotUpgrade,
    /// The key does not decode to 16 bytes of base64.
    InvalidKey,
    /// More than one Sec-WebSocket-Key.
    DuplicateKey,
    /// Sec-WebSocket-Version missing or not 13.
    UnsupportedVersion,
}

impl RejectReason {
    /// The HTTP status sent for this reason.
    pub fn http_status(self) -> HttpStatus {
        match self {
            RejectReason::TooLarge | RejectReason::TooManyHeaders => {
                HttpStatus::RequestHeaderFieldsTooLarge
            }
            RejectReason::MethodNotAllowed => HttpStatus::MethodNotAllowed,
            RejectReason::OriginNotAllowed => HttpStatus::Forbidden,
            RejectReason::MissingKey => HttpStatus::NotImplemented,
            RejectReason::UnsupportedVersion => HttpStatus::UpgradeRequired,
            RejectReason::NotHttp
            | RejectReason::HttpVersion
            | RejectReason::MissingHost
            | RejectReason::MissingOrigin
            | RejectReason::DuplicateOrigin
            | RejectReason::RequestBody
            | RejectReason::MissingProxyHeader
            | RejectReason::MalformedProxyHeader
            | RejectReason::ProxyHeadersDisagree
            | RejectReason::MalformedProtoHeader
            | RejectReason::NoSubprotocol
            | RejectReason::NotUpgrade
            | RejectReason::ConnectionNotUpgrade
            | RejectReason::InvalidKey
            | RejectReason::DuplicateKey => HttpStatus::BadRequest,
        }
    }

    /// The code of [`RejectReason::http_status`].
    pub fn status(self) -> u16 {
        self.http_status().code()
    }

    /// Human-readable reason, used in the response body, the log and the quit message.
    pub fn text(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "HTTP request is larger than the handshake limit",
            RejectReason::TooManyHeaders => "HTTP request has more headers than the limit",
            RejectReason::NotHttp => "received data that is not an HTTP request",
            RejectReason::MethodNotAllowed => "HTTP method is not GET",
            RejectReason::HttpVersion => "HTTP version is not 1.1",
            RejectReason::MissingHost => "HTTP request did not send the Host header",
            RejectReason::MissingOrigin => "HTTP request did not send the Origin header",
            RejectReason::DuplicateOrigin => "HTTP request sent the Origin header twice",
            RejectReason::RequestBody => "HTTP request has a body",
            RejectReason::OriginNotAllowed => "HTTP request from a non-whitelisted origin",
            RejectReason::MissingProxyHeader => {
                "HTTP request did not send a real IP address header"
            }
            RejectReason::MalformedProxyHeader => {
                "HTTP request sent a malformed real IP address header"
            }
            RejectReason::ProxyHeadersDisagree => {
                "HTTP request's real IP address headers name different clients"
            }
            RejectReason::MalformedProtoHeader => {
                "HTTP request sent a malformed X-Forwarded-Proto or Forwarded proto"
            }
            RejectReason::NoSubprotocol => {
                "HTTP request did not send a known Sec-WebSocket-Protocol"
            }
            RejectReason::MissingKey => "HTTP request which is not a websocket upgrade",
            RejectReason::NotUpgrade => "HTTP request did not send Upgrade: websocket",
            RejectReason::ConnectionNotUpgrade => "HTTP request did not send Connection: Upgrade",
            RejectReason::InvalidKey => "Sec-WebSocket-Key is not 16 bytes of base64",
            RejectReason::DuplicateKey => "HTTP request sent Sec-WebSocket-Key twice",
            RejectReason::UnsupportedVersion => "Sec-WebSocket-Version is not 13",
        }
    }

    /// The complete HTTP response: status line, `Connection: close`, a plain-text body
    /// naming the reason, and the extra header some statuses require.
    pub fn response(self) -> Vec<u8> {
        let status = self.http_status();
        let body = self.text();
        let extra = match status {
            HttpStatus::MethodNotAllowed => "Allow: GET\r\n",
            HttpStatus::UpgradeRequired => "Sec-WebSocket-Version: 13\r\n",
            HttpStatus::BadRequest
            | HttpStatus::Forbidden
            | HttpStatus::RequestHeaderFieldsTooLarge
            | HttpStatus::NotImplemented => "",
        };
        format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n{extra}\r\n{body}\n",
            status.code(),
            status.phrase(),
            body.len() + 1,
        )
        .into_bytes()
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// The HTTP statuses a refused handshake gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpStatus {
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    /// With `Sec-WebSocket-Version: 13` (RFC 6455 4.4).
    UpgradeRequired,
    RequestHeaderFieldsTooLarge,
    /// No Sec-WebSocket-Key (the stock module's answer).
    NotImplemented,
}

impl HttpStatus {
    pub fn code(self) -> u16 {
        match self {
            HttpStatus::BadRequest => 400,
            HttpStatus::Forbidden => 403,
            HttpStatus::MethodNotAllowed => 405,
            HttpStatus::UpgradeRequired => 426,
            HttpStatus::RequestHeaderFieldsTooLarge => 431,
            HttpStatus::NotImplemented => 501,
        }
    }

    /// The reason phrase of the status line.
    pub fn phrase(self) -> &'static str {
        match self {
            HttpStatus::BadRequest => "Bad Request",
            HttpStatus::Forbidden => "Forbidden",
            HttpStatus::MethodNotAllowed => "Method Not Allowed",
            HttpStatus::UpgradeRequired => "Upgrade Required",
            HttpStatus::RequestHeaderFieldsTooLarge => "Request Header Fields Too Large",
            HttpStatus::NotImplemented => "Not Implemented",
        }
    }
}

/// A successful upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The 101 Switching Protocols response.
    pub response: Vec<u8>,
    /// Length of the request; bytes after it are WebSocket frames.
    pub request_len: usize,
    /// Frame type for IRC lines.
    pub mode: MessageMode,
    /// The negotiated subprotocol, if any.
    pub subprotocol: Option<Subprotocol>,
    /// The client's address as a trusted proxy reported it.
    pub real_ip: Option<IpAddr>,
    /// The proxy's headers disagree with the one `proxyheader` names (for a warning).
    pub header_conflict: Option<HeaderConflict>,
    /// What a trusted proxy's `proxyprotoheader` says the client used.
    pub client_tls: ClientTls,
    /// The Origin header, if sent (for WHOIS).
    pub origin: Option<String>,
    /// permessage-deflate, when configured and offered.
    pub compression: Option<Agreed>,
}

/// Result of looking at the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// The request is not complete yet; nothing is consumed.
    Partial,
    Accepted(Accepted),
    Rejected(RejectReason),
    /// A trusted proxy's headers named different clients with `proxyheader="any"`:
    /// refused like [`RejectReason::ProxyHeadersDisagree`], and the log says which
    /// `proxyheader` to set.
    Disagreed(HeaderConflict),
    /// A request for the `healthcheck` path: answered with [`HEALTH_RESPONSE`] (only
    /// its head for HEAD).
    HealthCheck {
        head_only: bool,
    },
}

/// The answer to a health check: short, and the connection closes.
pub const HEALTH_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\
    Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nOK\n";

/// The head of [`HEALTH_RESPONSE`], the answer to HEAD (the body is the last 3 bytes;
/// cut at compile time, so a wrong length fails the build).
pub const HEALTH_RESPONSE_HEAD: &[u8] = HEALTH_RESPONSE.split_at(HEALTH_RESPONSE.len() - 3).0;

/// Who is connecting, as the caller knows it.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The peer's address (matched against proxyranges); `None` when it is not an IP
    /// address (a UNIX socket).
    pub address: Option<IpAddr>,
    pub socket: SocketKind,
    /// A PROXY header already gave the client's address: the request's own address
    /// headers were written by the client (a TCP proxy passes them on) and are not read.
    pub proxy_protocol: bool,
}

/// Finds the end of the request in a growing buffer without rescanning.
#[derive(Clone, Debug, Default)]
pub struct HandshakeScanner {
    /// Bytes already searched for the terminator.
    scanned: usize,
    /// Whether the request line has been checked.
    request_line_checked: bool,
}

impl HandshakeScanner {
    /// Looks at `buf` (every byte received since the connection opened).
    pub fn poll(&mut self, buf: &[u8], config: &Config, peer: Peer) -> HandshakeStatus {
        let limits = &config.limits;
        // Only the first `maxhandshake` bytes are ever looked at, so the decision does
        // not depend on how the bytes were split into reads.
        let received = buf.len();
        let buf = buf.get(..limits.max_handshake_bytes).unwrap_or(buf);
        // Resume the search a few bytes back: the terminator may straddle two reads.
        let from = self.scanned.saturating_sub(3).min(buf.len());
        let (_, window) = buf.split_at(from);
        if !self.request_line_checked {
            if let Some(line_end) = LINE_END.find(window).map(|i| from + i + 2) {
                self.request_line_checked = true;
                if let Some(reason) = check_request_line(buf.split_at(line_end).0) {
                    return HandshakeStatus::Rejected(reason);
                }
            }
        }
        let Some(request_len) = REQUEST_END.find(window).map(|i| from + i + 4) else {
            self.scanned = buf.len();
            return if received > limits.max_handshake_bytes {
                HandshakeStatus::Rejected(RejectReason::TooLarge)
            } else {
                HandshakeStatus::Partial
            };
        };
        self.scanned = request_len;
        match evaluate(buf.split_at(request_len).0, config, peer) {
            Ok(HandshakeStatus::Accepted(mut accepted)) => {
                accepted.request_len = request_len;
                HandshakeStatus::Accepted(accepted)
            }
            Ok(other) => other,
            Err(reason) => HandshakeStatus::Rejected(reason),
        }
    }
}

/// The end of the request line and of the request: `memchr`'s searchers, made once
/// (making one per search, or searching by `windows`, measured slower: the codec
/// benchmark).
static LINE_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n"));
static REQUEST_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));

/// Parses the request line alone so that non-HTTP bytes are refused at once (with no
/// room for headers: a valid line then reads as incomplete).
fn check_request_line(line: &[u8]) -> Option<RejectReason> {
    let mut request = httparse::Request::new(&mut []);
    match request.parse(line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => None,
        Err(_) => Some(RejectReason::NotHttp),
    }
}

/// The most header slots a request is parsed with: the top of `maxheaders`' range. On
/// the stack and uninitialised, so that a handshake costs no allocation for them.
const MOST_HEADERS: usize = 256;

/// The headers the handshake looks at, gathered in one pass without allocating:
/// single-valued ones with how often they came; the values of list headers are read
/// again from the parsed headers when needed ([`values`]).
#[derive(Default)]
struct Headers<'a> {
    host: bool,
    origin: Option<&'a [u8]>,
    origins: usize,
    /// A Content-Length other than 0, or a Transfer-Encoding: a body.
    body: bool,
    key: Option<&'a [u8]>,
    keys: usize,
    version: Option<&'a [u8]>,
}

/// Content-Length 0 (or 00 …) announces no body.
fn no_body(length: &[u8]) -> bool {
    std::str::from_utf8(length)
        .ok()
        .and_then(|l| l.parse::<u64>().ok())
        == Some(0)
}

impl<'a> Headers<'a> {
    fn collect(parsed: &[httparse::Header<'a>]) -> Headers<'a> {
        let mut h = Headers::default();
        for header in parsed {
            let value = trim(header.value);
            let name = header.name;
            if name.eq_ignore_ascii_case("host") {
                h.host = true;
            } else if name.eq_ignore_ascii_case("origin") {
                h.origin.get_or_insert(value);
                h.origins += 1;
            } else if name.eq_ignore_ascii_case("content-length") {
                h.body |= !no_body(value);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                h.body = true;
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                h.key.get_or_insert(value);
                h.keys += 1;
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                h.version.get_or_insert(value);
            }
        }
        h
    }
}

/// The trimmed values of every header called `name`.
fn values<'a>(
    parsed: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    parsed
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| trim(h.value))
}

/// Trims spaces and tabs (HTTP optional whitespace) from both ends.
fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Comma-separated tokens of a header (or several headers of the same name), trimmed,
/// empty ones skipped.
fn tokens<'a>(
    parsed: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values(parsed, name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim)
        .filter(|t| !t.is_empty())
}

/// The parsed headers, as the proxy rules read them.
struct Parsed<'p, 'b>(&'p [httparse::Header<'b>]);

impl RequestHeaders for Parsed<'_, '_> {
    fn lines<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> {
        values(self.0, name)
    }
}

fn has_token(parsed: &[httparse::Header<'_>], name: &str, wanted: &str) -> bool {
    tokens(parsed, name).any(|t| t.eq_ignore_ascii_case(wanted.as_bytes()))
}

/// Decides on a complete request. Checks run in the stock module's order where it has
/// a check (Origin, proxy, subprotocol, key), after the HTTP basics.
fn evaluate(request: &[u8], config: &Config, peer: Peer) -> Result<HandshakeStatus, RejectReason> {
    let mut storage =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MOST_HEADERS];
    let slots = config.limits.max_handshake_headers.min(MOST_HEADERS);
    let (headers, _) = storage.split_at_mut(slots);
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(request, headers) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(RejectReason::TooManyHeaders),
        Ok(httparse::Status::Partial) | Err(_) => return Err(RejectReason::NotHttp),
    }
    if let Some(path) = &config.health_check {
        let head_only = req.method == Some("HEAD");
        let path_only = req
            .path
            .map(|p| p.split_once('?').map_or(p, |(path, _query)| path));
        if (head_only || req.method == Some("GET")) && path_only == Some(path.as_str()) {
            return Ok(HandshakeStatus::HealthCheck { head_only });
        }
    }
    if req.method != Some("GET") {
        return Err(RejectReason::MethodNotAllowed);
    }
    if req.version != Some(1) {
        return Err(RejectReason::HttpVersion);
    }
    let parsed: &[httparse::Header<'_>] = req.headers;
    let headers = Headers::collect(parsed);
    if !headers.host {
        return Err(RejectReason::MissingHost);
    }
    if headers.body {
        return Err(RejectReason::RequestBody);
    }

    let origin = match (headers.origin, headers.origins) {
        (None, _) if !config.allow_missing_origin => return Err(RejectReason::MissingOrigin),
        (None, _) => None,
        (Some(_), 2..) => return Err(RejectReason::DuplicateOrigin),
        (Some(origin), _) if !config.origins.allows(origin) => {
            return Err(RejectReason::OriginNotAllowed)
        }
        (Some(origin), _) => Some(origin),
    };

    let (real_address, client_tls) = match proxy_facts(parsed, config, peer)? {
        Ok(facts) => facts,
        Err(conflict) => return Ok(HandshakeStatus::Disagreed(conflict)),
    };

    let chosen = tokens(parsed, "sec-websocket-protocol")
        .find_map(|t| Subprotocol::from_token(t, peer.socket).map(|p| (p, t)));
    let mode = match (chosen, config.default_mode) {
        (Some((protocol, _)), _) => protocol.mode(),
        (None, DefaultMode::Text) => MessageMode::Text,
        (None, DefaultMode::Binary) => MessageMode::Binary,
        (None, DefaultMode::Reject) => return Err(RejectReason::NoSubprotocol),
    };

    let key = match (headers.key, headers.keys) {
        (None, _) => return Err(RejectReason::MissingKey),
        (Some(key), 1) => key,
        (Some(_), _) => return Err(RejectReason::DuplicateKey),
    };
    if !has_token(parsed, "upgrade", "websocket") {
        return Err(RejectReason::NotUpgrade);
    }
    if !has_token(parsed, "connection", "upgrade") {
        return Err(RejectReason::ConnectionNotUpgrade);
    }
    // 24 base64 characters decode to 16 bytes; a longer key does not fit (18 bytes of
    // room: base64's own bound for 24 characters).
    let mut decoded = [0u8; KEY_LEN + 2];
    if BASE64.decode_slice(key, &mut decoded) != Ok(KEY_LEN) {
        return Err(RejectReason::InvalidKey);
    }
    if headers.version != Some(WEBSOCKET_VERSION) {
        return Err(RejectReason::UnsupportedVersion);
    }

    let compression = if config.compression.enabled {
        negotiate(
            values(parsed, "sec-websocket-extensions"),
            &config.compression,
        )
    } else {
        None
    };

    // Echo the client's own spelling: browsers compare it byte for byte.
    let echoed = chosen.map(|(_, token)| token);
    let (real_ip, header_conflict) = match real_address {
        Some(address) => (Some(address.ip), address.conflict),
        None => (None, None),
    };
    Ok(HandshakeStatus::Accepted(Accepted {
        response: switching_protocols(key, echoed, compression.as_ref()),
        request_len: request.len(),
        mode,
        subprotocol: chosen.map(|(p, _)| p),
        real_ip,
        header_conflict,
        client_tls,
        origin: origin.map(|o| String::from_utf8_lossy(o).into_owned()),
        compression,
    }))
}

/// What a trusted proxy's headers say: the client's address and what it used to reach
/// the proxy; or, with `proxyheader="any"`, the headers' disagreement.
fn proxy_facts(
    parsed: &[httparse::Header<'_>],
    config: &Config,
    peer: Peer,
) -> Result<Result<(Option<RealAddress>, ClientTls), HeaderConflict>, RejectReason> {
    if config.proxy_ranges.is_empty() || peer.socket != SocketKind::User || peer.proxy_protocol {
        return Ok(Ok((None, ClientTls::Unstated)));
    }
    let request = Parsed(parsed);
    let real_address =
        match config
            .proxy_ranges
            .real_client_ip(peer.address, &config.proxy_header, &request)
        {
            Ok(address) => address,
            Err(ProxyError::MissingHeader) => return Err(RejectReason::MissingProxyHeader),
            Err(ProxyError::MalformedHeader) => return Err(RejectReason::MalformedProxyHeader),
            Err(ProxyError::Disagree(conflict)) => return Ok(Err(conflict)),
        };
    let trusted = peer
        .address
        .is_some_and(|ip| config.proxy_ranges.trusts_ip(ip));
    let client_tls = if trusted {
        proto_header_says(config, &request)?
    } else {
        ClientTls::Unstated
    };
    Ok(Ok((real_address, client_tls)))
}

/// What the header `proxyheader` names says the client used (a trusted proxy's
/// request); a value that is not one scheme is refused.
fn proto_header_says(config: &Config, request: &Parsed<'_, '_>) -> Result<ClientTls, RejectReason> {
    let value = match config.proto_header {
        ProtoHeader::None => return Ok(ClientTls::Unstated),
        ProtoHeader::XForwardedProto => {
            let lines: Vec<&[u8]> = request.lines("x-forwarded-proto").collect();
            match lines.as_slice() {
                [] => None,
                [one] => Some(String::from_utf8_lossy(one).into_owned()),
                [_, _, ..] => return Err(RejectReason::MalformedProtoHeader),
            }
        }
        ProtoHeader::Forwarded => config
            .proxy_ranges
            .forwarded_proto(request)
            .map_err(|_| RejectReason::MalformedProtoHeader)?,
    };
    match value {
        None => Ok(ClientTls::Unstated),
        Some(value) => scheme_says(&value).map_err(|_| RejectReason::MalformedProtoHeader),
    }
}

/// Length of a Sec-WebSocket-Accept value: base64 of a 20-byte SHA-1.
const ACCEPT_LEN: usize = 28;

/// Sec-WebSocket-Accept for a client key (RFC 6455 section 4.2.2).
pub fn accept_key(key: &[u8]) -> [u8; ACCEPT_LEN] {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(ACCEPT_GUID);
    let mut accept = [0u8; ACCEPT_LEN];
    // 20 bytes always encode to exactly 28 characters.
    let _ = BASE64.encode_slice(sha1.finalize(), &mut accept);
    accept
}

fn switching_protocols(
    key: &[u8],
    protocol: Option<&[u8]>,
    compression: Option<&Agreed>,
) -> Vec<u8> {
    let mut response = Vec::with_capacity(160);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    response.extend_from_slice(&accept_key(key));
    response.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        response.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        response.extend_from_slice(protocol);
        response.extend_from_slice(b"\r\n");
    }
    if let Some(agreed) = compression {
        response.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        response.extend_from_slice(agreed.response().as_bytes());
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"\r\n");
    response
}

#[cfg(test)]
mod tests;
