//! One connection's state machine: handshake, then frames in both directions, then the
//! closing handshake.
//!
//! The caller hands [`Session::receive`] every byte it has not yet seen consumed and
//! gets back how many bytes were used; IRC lines go to one sink (InspIRCd's receive
//! queue), protocol output (the 101, an HTTP error, pongs, close frames) to another.
//! [`Session::send`] frames the server's outgoing lines. Time is an argument.
//!
//! [`Session::receive_messages`] runs the same state machine but hands each data
//! message, with its type and exact payload, to a [`MessageSink`] instead of turning it
//! into an IRC line (the Autobahn echo server in `examples/` uses it). The frames
//! themselves are read by [`reader`].

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::compression::{Agreed, Compressor, Spares};
use crate::config::{Config, Limits};
use crate::frame::{write_close_frame, write_frame, CloseCode, OpCode};
use crate::handshake::{
    HandshakeScanner, HandshakeStatus, Peer, RejectReason, SocketKind, Subprotocol,
    HEALTH_RESPONSE, HEALTH_RESPONSE_HEAD,
};
use crate::irc::{IrcLines, LineFramer, MessageMode};
use crate::keepalive::{Keepalive, KeepaliveAction};
use crate::log_line;
use crate::protocol_error::ProtocolError;
use crate::proxy_protocol::{self, Refusal};
use crate::secure::{self, ClientTls, Link, SecurePlan};
use crate::sink::ByteSink;

mod proxy_prefix;
mod reader;

pub use reader::MessageSink;
use reader::{FrameReader, ReadEnd};

/// Where the connection is in its life.
#[derive(Debug)]
enum State {
    /// Waiting for the complete HTTP upgrade request.
    Handshake(Box<Handshaking>),
    /// Upgraded: frames flow both ways. Inline rather than boxed: one allocation per
    /// connection instead of two.
    Open(OpenState),
    /// The server has sent its close frame and awaits the client's (RFC 6455 7.1.1: the
    /// server closes TCP once it has the client's close, or after a timeout; closing
    /// at once makes browsers such as Firefox report an unclean close). Nothing more is
    /// sent or delivered.
    Closing(CloseReply),
    /// The close handshake is over, or an HTTP error was sent, or the connection was
    /// abandoned; everything received is ignored.
    Closed,
}

/// How the client's close frame is recognised while [`State::Closing`].
#[derive(Debug)]
enum CloseReply {
    /// The frame reader is in step with the client: frames are read and dropped until
    /// the client's close frame.
    Frames(FrameReader),
    /// The stream cannot be followed (after a protocol error, or under TLS, which the
    /// core does not see): the first bytes from the client count as its reply.
    AnyBytes,
}

/// What the handshake needs, kept only until the upgrade (boxed: small while open).
#[derive(Debug)]
struct Handshaking {
    scanner: HandshakeScanner,
    /// The peer's address (matched against `proxyranges`); `None` when it is not an IP
    /// address (a UNIX socket).
    peer: Option<IpAddr>,
    socket: SocketKind,
    /// Where the connection is in its PROXY protocol stage.
    prefix: PrefixStage,
    /// InspIRCd terminates TLS below this module ([`Session::note_tls_below`]).
    tls_below: bool,
    /// What compressing connections share, handed on if compression is agreed.
    spares: Rc<Spares>,
}

/// The PROXY protocol stage ([`proxy_prefix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrefixStage {
    /// The first bytes have not been judged yet.
    Pending,
    /// No PROXY header: the request's own headers may name the client.
    Absent,
    /// A PROXY header named the client (or the proxy itself): the request's address
    /// headers are not read.
    Read,
}

/// An open connection.
#[derive(Debug)]
struct OpenState {
    reader: FrameReader,
    /// The frame type of the server's lines.
    mode: MessageMode,
    /// Keepalive pings to idle clients (`nativeping`), if enabled.
    keepalive: Option<Keepalive>,
    /// permessage-deflate for the server's messages, if negotiated (boxed: most
    /// connections do without).
    compressor: Option<Box<Compressor>>,
}

/// The connection was upgraded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub subprotocol: Option<Subprotocol>,
    pub mode: MessageMode,
    pub origin: Option<String>,
    /// permessage-deflate, if negotiated.
    pub compression: Option<Agreed>,
}

/// What a trusted proxy established about the client, for the caller to apply (on the
/// read that completed the PROXY header or the handshake): InspIRCd's `WebIRC` event
/// with [`SecurePlan::event_flags`] then the address change when there is an
/// address, a certificate first when [`SecurePlan::set_certificate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxied {
    /// The client's address and, from a PROXY header, port, when not the peer's own.
    pub address: Option<(IpAddr, Option<u16>)>,
    /// A debug line for the log when `address` is set.
    pub note: Option<String>,
    pub secure: SecurePlan,
}

impl Proxied {
    /// What a PROXY header from a trusted proxy on `link` establishes.
    fn from_header(
        peer: Option<IpAddr>,
        link: Link,
        header: &proxy_protocol::Header,
    ) -> Option<Proxied> {
        let real = match header.source {
            proxy_protocol::Source::Client { ip, port } => Some((ip.to_canonical(), Some(port))),
            proxy_protocol::Source::Proxy => None,
        };
        Proxied::of(peer, link, real, header.client_tls)
    }

    /// What to apply for a client a trusted proxy on `link` reported at `real` (from
    /// `peer`), saying `says` of its TLS; `None` when there is nothing to do.
    fn of(
        peer: Option<IpAddr>,
        link: Link,
        real: Option<(IpAddr, Option<u16>)>,
        says: ClientTls,
    ) -> Option<Proxied> {
        // A proxy naming the peer itself changes nothing.
        let canonical = |ip: IpAddr| ip.to_canonical();
        let address = real.filter(|(ip, _)| Some(canonical(*ip)) != peer.map(canonical));
        let secure = secure::plan(link, says, address.is_some());
        if address.is_none() && secure == SecurePlan::KEEP {
            return None;
        }
        Some(Proxied {
            note: address.map(|(ip, _)| log_line::real_address(peer, ip)),
            address,
            secure,
        })
    }
}

/// Why the connection ends. The caller sends what was written to the output sink,
/// then closes TCP, logging [`Ending::reason`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The handshake was refused with an HTTP error.
    Rejected(RejectReason),
    /// The PROXY protocol header was refused; nothing was sent.
    ProxyRefused(Refusal),
    /// A load balancer's health check was answered (not a refusal, and never a user;
    /// logged at debug level only). `from_trusted_proxy`: the caller takes back the
    /// proxy's connection count (InspIRCd's `WebIRC` event), so that connectban never
    /// counts a balancer's checks.
    HealthChecked { from_trusted_proxy: bool },
    /// The client broke the protocol; a close frame with its code was sent.
    Failed(ProtocolError),
    /// The client sent a close frame (with this code, if any); it was echoed.
    ClientClosed { code: Option<u16> },
    /// A bug in the module (a broken invariant, caught at the bridge): the connection
    /// was closed with 1011 ([`Session::fail_internally`]).
    InternalError,
}

impl Ending {
    /// The reason for the log and the IRC quit message.
    pub fn reason(&self) -> String {
        match self {
            Ending::Rejected(reason) => format!("WebSocket: {reason}"),
            Ending::ProxyRefused(refusal) => {
                format!("WebSocket: PROXY header refused: {}", refusal.text())
            }
            Ending::HealthChecked { .. } => "WebSocket: health check answered".to_owned(),
            Ending::Failed(error) => {
                format!("WebSocket: {error} (close {})", error.close_code().code())
            }
            Ending::ClientClosed { .. } => "Connection closed".to_owned(),
            Ending::InternalError => format!(
                "WebSocket: internal error (close {})",
                CloseCode::InternalError.code()
            ),
        }
    }
}

/// Why the server closes a connection that is still open; the code and words of the
/// close frame follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerClose {
    /// The user quit (QUIT, a kill, a ban): 1000 with the quit message.
    Quit,
    /// The module is being unloaded: 1001 with [`UNLOAD_REASON`].
    Unload,
}

/// What a user unloaded away quits with, and the reason of its close frame.
pub const UNLOAD_REASON: &str = "WebSocket module unloading";

impl ServerClose {
    fn code(self) -> CloseCode {
        match self {
            ServerClose::Quit => CloseCode::Normal,
            ServerClose::Unload => CloseCode::GoingAway,
        }
    }
}

/// What one call to [`Session::receive`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Bytes of the input that were used; the caller drops them.
    pub consumed: usize,
    /// Complete messages delivered (as IRC lines, or to the [`MessageSink`]).
    pub messages: usize,
    /// Set on the call that completed the handshake.
    pub upgrade: Option<Upgrade>,
    /// Set on the call where a trusted proxy's word on the client became known (its
    /// PROXY header, or the handshake).
    pub proxied: Option<Proxied>,
    /// A warning line for the log about the proxy's headers (they disagree).
    pub warning: Option<String>,
    /// Set when the connection must now be closed.
    pub ending: Option<Ending>,
    /// Frames were read from the client on the open connection.
    pub heard: bool,
}

/// One WebSocket connection.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    state: State,
    framer: LineFramer,
    /// A close the server asked for, sent after the lines already queued.
    pending_close: Option<(u16, Box<str>)>,
}

/// Payload of keepalive pings; clients echo it in their pong.
const KEEPALIVE_PING_PAYLOAD: &[u8] = b"keepalive";

impl Session {
    /// A new connection from `peer` (`None` when it is not an IP address).
    pub fn new(config: Arc<Config>, peer: Option<IpAddr>, socket: SocketKind) -> Session {
        Session::sharing(config, Rc::default(), peer, socket)
    }

    /// [`Session::new`], sharing `spares` with the module's other connections.
    pub fn sharing(
        config: Arc<Config>,
        spares: Rc<Spares>,
        peer: Option<IpAddr>,
        socket: SocketKind,
    ) -> Session {
        Session {
            config,
            state: State::Handshake(Box::new(Handshaking {
                scanner: HandshakeScanner::default(),
                peer,
                socket,
                prefix: PrefixStage::Pending,
                tls_below: false,
                spares,
            })),
            framer: LineFramer::default(),
            pending_close: None,
        }
    }

    /// The configuration the connection was accepted under.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Gives up on the connection after a bug in the module (a panic the bridge
    /// caught): a close frame with 1011 if it is open, then nothing more is read or
    /// sent. `out` must hold no partial output of the failed call.
    pub fn fail_internally(&mut self, out: &mut impl ByteSink) {
        if let State::Open(_) = self.state {
            let code = CloseCode::InternalError;
            write_close_frame(code.code(), "internal error", out);
        }
        self.state = State::Closed;
        self.pending_close = None;
    }

    /// Before the upgrade: whether InspIRCd terminates TLS below this module (the shim
    /// tells on every read; a TLS hook is attached after this one).
    pub fn note_tls_below(&mut self, tls_below: bool) {
        if let State::Handshake(handshaking) = &mut self.state {
            handshaking.tls_below = tls_below;
        }
    }

    /// True once upgraded and until closed.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// True before the upgrade: the server's output must wait (it is not framed yet).
    pub fn holds_output(&self) -> bool {
        matches!(self.state, State::Handshake(_))
    }

    /// Processes received bytes. `input` is every byte not yet consumed; payloads are
    /// unmasked in place. Complete messages are written to `lines` as IRC lines
    /// (CR/LF removed, "\r\n" appended); protocol output goes to `out`.
    pub fn receive(
        &mut self,
        input: &mut [u8],
        now_ms: u64,
        lines: &mut impl ByteSink,
        out: &mut impl ByteSink,
    ) -> ReadReport {
        self.receive_messages(input, now_ms, &mut IrcLines::new(lines), out)
    }

    /// Like [`Session::receive`], but each data message goes to `messages` as it is
    /// (type and exact payload) instead of becoming an IRC line.
    pub fn receive_messages(
        &mut self,
        input: &mut [u8],
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
    ) -> ReadReport {
        let mut report = ReadReport::default();
        if self.receive_handshake(input, now_ms, out, &mut report) {
            return report;
        }
        let open = match &mut self.state {
            State::Open(open) => open,
            State::Closing(reply) => {
                if reply.finished_by(input, &self.config.limits, now_ms) {
                    self.state = State::Closed;
                }
                report.consumed = input.len();
                return report;
            }
            // Whatever arrives after the close is ignored.
            State::Handshake(_) | State::Closed => {
                report.consumed = input.len();
                return report;
            }
        };
        // What the handshake or a PROXY header took, never past the input's end.
        let start = report.consumed;
        let (_, rest) = input.split_at_mut(start);
        if !rest.is_empty() {
            if let Some(keepalive) = open.keepalive.as_mut() {
                keepalive.heard(now_ms);
            }
            messages.expect(rest.len());
        }
        let read = open
            .reader
            .read_frames(rest, &self.config.limits, now_ms, messages, out);
        if read.replied {
            if let Some(keepalive) = open.keepalive.as_mut() {
                keepalive.sent(now_ms);
            }
        }
        report.messages = read.messages;
        // Only bytes of frames count: a partial frame header left from an earlier call
        // is not news.
        report.heard = read.consumed > 0;
        report.consumed = start + read.consumed;
        if let Some(end) = read.end {
            report.ending = Some(match end {
                // The close handshake is complete: the client's close was echoed.
                ReadEnd::ClientClosed(code) => {
                    self.state = State::Closed;
                    Ending::ClientClosed { code }
                }
                // Our close frame went out in the middle of what the client sent.
                ReadEnd::Failed(error) => {
                    self.state = State::Closing(CloseReply::AnyBytes);
                    Ending::Failed(error)
                }
            });
            report.consumed = input.len();
        }
        report
    }

    /// Before the upgrade: the PROXY header and the HTTP request. True when the read
    /// is over (waiting for more, or the connection ended).
    fn receive_handshake(
        &mut self,
        input: &mut [u8],
        now_ms: u64,
        out: &mut impl ByteSink,
        report: &mut ReadReport,
    ) -> bool {
        if let State::Handshake(handshaking) = &mut self.state {
            let link = Link::of(handshaking.peer, handshaking.tls_below);
            if handshaking.prefix == PrefixStage::Pending {
                match proxy_prefix::read(input, &self.config, handshaking.peer) {
                    proxy_prefix::Prefix::Partial => return true,
                    proxy_prefix::Prefix::Refused(refusal) => {
                        self.state = State::Closed;
                        report.consumed = input.len();
                        report.ending = Some(Ending::ProxyRefused(refusal));
                        return true;
                    }
                    proxy_prefix::Prefix::Absent => handshaking.prefix = PrefixStage::Absent,
                    proxy_prefix::Prefix::Read(header) => {
                        handshaking.prefix = PrefixStage::Read;
                        report.consumed = header.len;
                        report.proxied = Proxied::from_header(handshaking.peer, link, &header);
                    }
                }
            }
            // A PROXY header's length counts bytes of `input`.
            let offset = report.consumed;
            let (_, request) = input.split_at(offset);
            let peer = Peer {
                address: handshaking.peer,
                socket: handshaking.socket,
                proxy_protocol: handshaking.prefix == PrefixStage::Read,
            };
            match handshaking.scanner.poll(request, &self.config, peer) {
                HandshakeStatus::Partial => return true,
                HandshakeStatus::Rejected(reason) => {
                    out.put(&reason.response());
                    self.state = State::Closed;
                    report.consumed = input.len();
                    report.ending = Some(Ending::Rejected(reason));
                    return true;
                }
                HandshakeStatus::Disagreed(conflict) => {
                    let reason = RejectReason::ProxyHeadersDisagree;
                    report.warning = Some(log_line::warning(
                        &conflict.refusal(&display_peer(handshaking.peer)),
                    ));
                    out.put(&reason.response());
                    self.state = State::Closed;
                    report.consumed = input.len();
                    report.ending = Some(Ending::Rejected(reason));
                    return true;
                }
                HandshakeStatus::HealthCheck { head_only } => {
                    out.put(health_response(head_only));
                    let from_trusted_proxy = handshaking
                        .peer
                        .is_some_and(|ip| self.config.proxy_ranges.trusts_ip(ip));
                    self.state = State::Closed;
                    report.consumed = input.len();
                    report.ending = Some(Ending::HealthChecked { from_trusted_proxy });
                    return true;
                }
                HandshakeStatus::Accepted(accepted) => {
                    out.put(&accepted.response);
                    report.consumed = offset + accepted.request_len;
                    let peer = handshaking.peer;
                    // The proxy's address in words only for a warning: rare.
                    report.warning = accepted
                        .header_conflict
                        .map(|c| log_line::warning(&c.warning(&display_peer(peer))));
                    if handshaking.prefix == PrefixStage::Absent {
                        report.proxied = Proxied::of(
                            peer,
                            link,
                            accepted.real_ip.map(|ip| (ip, None)),
                            accepted.client_tls,
                        );
                    }
                    report.upgrade = Some(Upgrade {
                        subprotocol: accepted.subprotocol,
                        mode: accepted.mode,
                        origin: accepted.origin,
                        compression: accepted.compression,
                    });
                    let spares = Rc::clone(&handshaking.spares);
                    self.state = State::Open(OpenState {
                        reader: FrameReader::new(
                            &self.config.limits,
                            now_ms,
                            accepted.compression.map(|_| Rc::clone(&spares)),
                        ),
                        compressor: accepted.compression.map(|agreed| {
                            Box::new(Compressor::new(&self.config.compression, &agreed, spares))
                        }),
                        mode: accepted.mode,
                        keepalive: self
                            .config
                            .native_ping
                            .then(|| Keepalive::new(self.config.ping_interval_ms, now_ms)),
                    });
                }
            }
        }
        false
    }

    /// True while the server's close frame has been sent and the client's has not yet
    /// arrived: the caller should keep the socket open, reading, until
    /// [`Session::awaits_close_reply`] turns false or a timeout passes.
    pub fn awaits_close_reply(&self) -> bool {
        matches!(self.state, State::Closing(_))
    }

    /// The client's bytes can no longer be followed frame by frame (the caller sees
    /// them through TLS, say): while closing, the first bytes that arrive count as the
    /// client's close.
    pub fn close_reply_is_opaque(&mut self) {
        if let State::Closing(reply) = &mut self.state {
            *reply = CloseReply::AnyBytes;
        }
    }

    /// Frames the server's outgoing bytes (one element of InspIRCd's send queue), sent
    /// at `now_ms`. Returns false, consuming nothing, while the handshake is not done.
    /// After the close, output is dropped.
    pub fn send(&mut self, upper: &[u8], now_ms: u64, out: &mut impl ByteSink) -> bool {
        match &mut self.state {
            State::Handshake(_) => false,
            State::Open(open) => {
                if let Some(keepalive) = open.keepalive.as_mut() {
                    keepalive.sent(now_ms);
                }
                self.framer
                    .frame_lines_with(upper, open.mode, open.compressor.as_deref_mut(), out);
                true
            }
            State::Closing(_) | State::Closed => true,
        }
    }

    /// When [`Session::poll_keepalive`] next has something to do (a ping or the
    /// timeout); `None` when never (keepalive off, or the connection not open). Never
    /// earlier than a deadline told before.
    pub fn keepalive_deadline(&self) -> Option<u64> {
        match &self.state {
            State::Open(open) => open.keepalive.as_ref().map(Keepalive::deadline),
            _ => None,
        }
    }

    /// Keepalive: called at [`Session::keepalive_deadline`] (earlier does nothing).
    /// Writes a ping to an idle client, or a close frame (1001) to one that did not
    /// answer the last ping; the latter is an ending.
    pub fn poll_keepalive(&mut self, now_ms: u64, out: &mut impl ByteSink) -> Option<Ending> {
        let State::Open(open) = &mut self.state else {
            return None;
        };
        match open.keepalive.as_mut()?.poll(now_ms) {
            KeepaliveAction::Idle => None,
            KeepaliveAction::Ping => {
                write_frame(OpCode::Ping, KEEPALIVE_PING_PAYLOAD, out);
                None
            }
            KeepaliveAction::TimedOut => {
                let error = ProtocolError::NoKeepaliveAnswer;
                write_close_frame(error.close_code().code(), &error.to_string(), out);
                self.begin_closing();
                Some(Ending::Failed(error))
            }
        }
    }

    /// The server's own ping of the client at `now_ms` (InspIRCd 4's ping timer, every
    /// `<connect pingfreq>`): with `nativeping`, writes a ping frame and returns true, so that the
    /// server sends no IRC PING; false otherwise (also before the upgrade).
    pub fn server_ping(&mut self, now_ms: u64, out: &mut impl ByteSink) -> bool {
        let State::Open(open) = &mut self.state else {
            return false;
        };
        if !self.config.native_ping {
            return false;
        }
        if let Some(keepalive) = open.keepalive.as_mut() {
            keepalive.sent(now_ms);
        }
        write_frame(OpCode::Ping, KEEPALIVE_PING_PAYLOAD, out);
        true
    }

    /// Asks for a close frame (on QUIT or unload), with the quit message as its reason
    /// for [`ServerClose::Quit`]. It is written by [`Session::finish_send`], after the
    /// lines queued before it. The first request wins.
    pub fn request_close(&mut self, why: ServerClose, quit_message: &str) {
        if self.pending_close.is_none() {
            let reason = match why {
                ServerClose::Quit => quit_message,
                ServerClose::Unload => UNLOAD_REASON,
            };
            self.pending_close = Some((why.code().code(), reason.into()));
        }
    }

    /// Ends a round of [`Session::send`] calls: writes a requested close frame.
    pub fn finish_send(&mut self, out: &mut impl ByteSink) {
        if !self.is_open() {
            return;
        }
        if let Some((code, reason)) = self.pending_close.take() {
            write_close_frame(code, &reason, out);
            self.begin_closing();
        }
    }

    /// The server's close frame has just been written on an open connection: from now
    /// on the client's close is awaited.
    fn begin_closing(&mut self) {
        self.state = match std::mem::replace(&mut self.state, State::Closed) {
            State::Open(open) => State::Closing(CloseReply::Frames(open.reader)),
            other => other,
        };
    }
}

/// The answer to a health check: the whole [`HEALTH_RESPONSE`], or its head for HEAD.
fn health_response(head_only: bool) -> &'static [u8] {
    if head_only {
        HEALTH_RESPONSE_HEAD
    } else {
        HEALTH_RESPONSE
    }
}

/// A peer's address as the log shows it (empty for a UNIX socket).
fn display_peer(peer: Option<IpAddr>) -> String {
    peer.map(|ip| ip.to_string()).unwrap_or_default()
}

/// Drops every message (frames read while closing).
struct NoMessages;

impl MessageSink for NoMessages {
    fn begin(&mut self, _opcode: OpCode) {}
    fn payload(&mut self, _bytes: &[u8]) {}
    fn end(&mut self) {}
}

/// Drops every byte: nothing is sent after the server's close frame.
struct NoOutput;

impl ByteSink for NoOutput {
    fn put(&mut self, _bytes: &[u8]) {}
}

impl CloseReply {
    /// Reads what the client sent while closing; true once its close has arrived (or,
    /// when the stream cannot be followed, anything at all), or when it broke the
    /// protocol again, which ends the wait as well.
    fn finished_by(&mut self, input: &mut [u8], limits: &Limits, now_ms: u64) -> bool {
        match self {
            CloseReply::AnyBytes => !input.is_empty(),
            CloseReply::Frames(reader) => reader
                .read_frames(input, limits, now_ms, &mut NoMessages, &mut NoOutput)
                .end
                .is_some(),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_client;

#[cfg(test)]
mod message_sink_tests {
    //! [`Session::receive_messages`]: exact messages, in order with the protocol output.
    use super::*;

    /// Records events in one log, as the Autobahn echo server orders its output.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl MessageSink for Log {
        fn begin(&mut self, opcode: OpCode) {
            self.0.push(format!("begin {opcode:?}"));
        }
        fn payload(&mut self, bytes: &[u8]) {
            self.0.push(format!("payload {}", bytes.escape_ascii()));
        }
        fn end(&mut self) {
            self.0.push("end".to_owned());
        }
    }

    fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
        test_client::frame_with(first_byte, true, payload)
    }

    fn open_session() -> Session {
        let config = Config::with_origins(&["https://chat.example.com"]);
        let mut session =
            Session::new(Arc::new(config), "192.0.2.1".parse().ok(), SocketKind::User);
        let mut request = test_client::REQUEST.to_vec();
        let report = session.receive(&mut request, 0, &mut Vec::new(), &mut Vec::new());
        assert!(report.upgrade.is_some());
        session
    }

    #[test]
    fn messages_arrive_with_their_type_and_exact_bytes() {
        let mut session = open_session();
        let mut input = [
            frame(0x81, b"a\r\nb\n"),
            frame(0x82, b"\x00\xff\r"),
            frame(0x81, b""),
            frame(0x01, b"frag"),
            frame(0x89, b"p"),
            frame(0x80, b"ment"),
        ]
        .concat();
        let mut log = Log::default();
        let mut out = Vec::new();
        let report = session.receive_messages(&mut input, 0, &mut log, &mut out);
        assert_eq!(report.consumed, input.len());
        assert_eq!(report.messages, 4);
        assert_eq!(report.ending, None);
        #[rustfmt::skip]
        let expected = [
            "begin Text", r"payload a\r\nb\n", "end",
            "begin Binary", r"payload \x00\xff\r", "end",
            "begin Text", "payload ", "end",
            "begin Text", "payload frag", "payload ment", "end",
        ];
        assert_eq!(log.0, expected);
        // The pong for the ping between the fragments.
        assert_eq!(out, [0x8a, 1, b'p']);
    }

    #[test]
    fn a_message_that_fails_is_never_ended() {
        let mut session = open_session();
        let mut input = [frame(0x01, b"ok"), frame(0x80, b"\xc3")].concat();
        let mut log = Log::default();
        let mut out = Vec::new();
        let report = session.receive_messages(&mut input, 0, &mut log, &mut out);
        assert_eq!(report.messages, 0);
        assert!(matches!(
            report.ending,
            Some(Ending::Failed(ProtocolError::InvalidUtf8))
        ));
        assert_eq!(log.0, ["begin Text", "payload ok", r"payload \xc3"]);
    }
}
