//! One connection's state machine: handshake, then frames in both directions, then
//! closed.
//!
//! The caller hands [`Session::receive`] every byte it has not yet seen consumed and
//! gets back how many bytes were used; IRC lines go to one sink (InspIRCd's receive
//! queue), protocol output (the 101, an HTTP error, pongs, close frames) to another.
//! [`Session::send`] frames the server's outgoing lines. Time is an argument.
//!
//! [`Session::receive_messages`] runs the same state machine but hands each data
//! message, with its type and exact payload, to a [`MessageSink`] instead of turning it
//! into an IRC line (the Autobahn echo server in `examples/` uses it).

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{Config, Limits};
use crate::frame::close::{encode_close_payload, parse_close_payload};
use crate::frame::{
    apply_mask, CloseCode, ClosePayloadError, FrameHeader, LineFramer, MessageMode, OpCode,
    Utf8Validator,
};
use crate::handshake::{
    HandshakeScanner, HandshakeStatus, Peer, RejectReason, SocketKind, Subprotocol,
};
use crate::keepalive::{Keepalive, KeepaliveAction};
use crate::sink::ByteSink;

/// Where [`Session::receive_messages`] delivers data messages, as their payload
/// arrives.
///
/// For each complete message the sink sees one [`MessageSink::begin`], zero or more
/// [`MessageSink::payload`] calls with the unmasked bytes in order (exactly as sent: CR,
/// LF and empty messages included; fragment boundaries are not kept), then one
/// [`MessageSink::end`]. A text message's bytes have passed the UTF-8 check so far (fail
/// fast), but the message may still fail later (UTF-8 cut off at its end, a limit): then
/// `end` is never called and the session reports an [`Ending`], so a sink that buffers
/// simply drops what it has. Output written to `out` by the same call (pongs, close
/// frames) is written at the point the frame is read, so a sink that replies through
/// the buffer behind `out` keeps the order of events.
pub trait MessageSink {
    /// A message of type `opcode` ([`OpCode::Text`] or [`OpCode::Binary`]) begins.
    fn begin(&mut self, opcode: OpCode);
    /// Unmasked payload bytes of the message in progress.
    fn payload(&mut self, bytes: &[u8]);
    /// The message is complete (and, if text, valid UTF-8).
    fn end(&mut self);

    /// `frame_bytes` bytes of frames are about to be read: their messages may take
    /// up to that much room.
    fn expect(&mut self, _frame_bytes: usize) {}
}

/// The IRC delivery of [`Session::receive`]: each message becomes one line. CR and LF
/// inside it are dropped, so that it can never become two commands, and "\r\n" is
/// appended.
/// An empty message becomes an empty line, which InspIRCd charges like a command, so a
/// flood of them meets the server's flood control.
struct IrcLines<'a, S: ByteSink> {
    lines: &'a mut S,
}

impl<S: ByteSink> MessageSink for IrcLines<'_, S> {
    fn begin(&mut self, _opcode: OpCode) {}

    fn payload(&mut self, bytes: &[u8]) {
        // memchr2 finds CR/LF a vector at a time; messages rarely contain either.
        let mut start = 0;
        for end in memchr::memchr2_iter(b'\r', b'\n', bytes).chain([bytes.len()]) {
            if let Some(segment) = bytes.get(start..end).filter(|s| !s.is_empty()) {
                self.lines.put(segment);
            }
            start = end + 1;
        }
    }

    fn end(&mut self) {
        self.lines.put(b"\r\n");
    }

    /// Every frame has at least 6 bytes of header and its line gains 2 (CR LF), so
    /// the lines never take more room than the frames: one allocation at most, as
    /// InspIRCd's own reads make, instead of growing piece by piece.
    fn expect(&mut self, frame_bytes: usize) {
        self.lines.reserve(frame_bytes);
    }
}

/// RSV bits a client may set: none, as no extension is negotiated.
const NO_EXTENSION_RSV: u8 = 0;

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
    Frames(OpenState),
    /// The stream cannot be followed (after a protocol error, or under TLS, which the
    /// core does not see): the first bytes from the client count as its reply.
    AnyBytes,
}

/// What the handshake needs, kept only until the upgrade (boxed: small while open).
#[derive(Debug)]
struct Handshaking {
    scanner: HandshakeScanner,
    /// The peer's address as InspIRCd prints it (matched against `proxyranges`).
    peer_address: Box<str>,
    socket: SocketKind,
}

/// Reading state of an open connection.
#[derive(Debug)]
struct OpenState {
    mode: MessageMode,
    /// The frame whose payload is arriving, if any.
    frame: Option<IncomingFrame>,
    /// The data message being assembled (across fragments), if any.
    message: Option<IncomingMessage>,
    /// Payload of the control frame being received (at most 125 bytes).
    control: Vec<u8>,
    pings: PingBudget,
    /// Keepalive pings to idle clients (`nativeping`), if enabled.
    keepalive: Option<Keepalive>,
}

#[derive(Debug)]
struct IncomingFrame {
    /// The header, with the masking key.
    header: FrameHeader,
    /// Payload bytes received so far (the masking offset).
    received: u64,
}

impl IncomingFrame {
    fn remaining(&self) -> u64 {
        self.header.payload_len - self.received
    }
}

#[derive(Debug)]
struct IncomingMessage {
    /// Text messages are validated as UTF-8.
    utf8: Option<Utf8Validator>,
    /// Payload bytes so far, against `maxmessage`.
    len: u64,
    /// Frames so far, against `maxfragments`.
    fragments: usize,
}

/// A token bucket for client pings: `ping_burst` pings at once, one more every
/// `ping_refill_ms`. A client pinging once a second is never limited with the defaults;
/// the stock module kills any client that pings twice within 10 seconds.
#[derive(Debug)]
struct PingBudget {
    tokens: u32,
    refilled_at_ms: u64,
}

impl PingBudget {
    fn new(limits: &Limits, now_ms: u64) -> PingBudget {
        PingBudget {
            tokens: limits.ping_burst,
            refilled_at_ms: now_ms,
        }
    }

    fn take(&mut self, limits: &Limits, now_ms: u64) -> bool {
        let period = limits.ping_refill_ms.max(1);
        let earned = now_ms.saturating_sub(self.refilled_at_ms) / period;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(limits.ping_burst);
            self.refilled_at_ms = now_ms;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// The connection was upgraded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub subprotocol: Option<Subprotocol>,
    pub mode: MessageMode,
    /// The address a trusted proxy reported; the caller applies it.
    pub real_ip: Option<IpAddr>,
    /// That proxy's own address (the peer's), when `real_ip` is set.
    pub proxy_address: Option<Box<str>>,
    /// A warning for the log: the proxy sent both real-IP headers and they disagree.
    pub proxy_warning: Option<String>,
    pub origin: Option<String>,
}

/// Why the connection ends. The caller sends what was written to the output sink,
/// then closes TCP, logging [`Ending::reason`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The handshake was refused with an HTTP error.
    Rejected(RejectReason),
    /// The client broke the protocol; a close frame with `code` was sent.
    Failed {
        code: CloseCode,
        reason: &'static str,
    },
    /// The client sent a close frame (with this code, if any); it was echoed.
    ClientClosed { code: Option<u16> },
}

impl Ending {
    /// The reason for the log and the IRC quit message.
    pub fn reason(&self) -> String {
        match self {
            Ending::Rejected(reason) => format!("WebSocket: {reason}"),
            Ending::Failed { code, reason } => {
                format!("WebSocket: {reason} (close {})", code.code())
            }
            Ending::ClientClosed { .. } => "Connection closed".to_owned(),
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
    /// Set when the connection must now be closed.
    pub ending: Option<Ending>,
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

impl Session {
    /// A new connection from `peer_address` (as InspIRCd prints it).
    pub fn new(config: Arc<Config>, peer_address: &str, socket: SocketKind) -> Session {
        Session {
            config,
            state: State::Handshake(Box::new(Handshaking {
                scanner: HandshakeScanner::default(),
                peer_address: peer_address.into(),
                socket,
            })),
            framer: LineFramer::default(),
            pending_close: None,
        }
    }

    /// The configuration the connection was accepted under.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Gives up on the connection (after an internal error): nothing more is read or
    /// sent.
    pub fn abandon(&mut self) {
        self.state = State::Closed;
        self.pending_close = None;
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
        self.receive_messages(input, now_ms, &mut IrcLines { lines }, out)
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
        if let State::Handshake(handshaking) = &mut self.state {
            let peer = Peer {
                address: &handshaking.peer_address,
                socket: handshaking.socket,
            };
            match handshaking.scanner.poll(input, &self.config, peer) {
                HandshakeStatus::Partial => return report,
                HandshakeStatus::Rejected(reason) => {
                    out.put(&reason.response());
                    self.state = State::Closed;
                    report.consumed = input.len();
                    report.ending = Some(Ending::Rejected(reason));
                    return report;
                }
                HandshakeStatus::Accepted(accepted) => {
                    out.put(&accepted.response);
                    report.consumed = accepted.request_len;
                    let proxy_warning = accepted
                        .header_conflict
                        .map(|c| c.warning(&handshaking.peer_address));
                    report.upgrade = Some(Upgrade {
                        subprotocol: accepted.subprotocol,
                        mode: accepted.mode,
                        proxy_warning,
                        real_ip: accepted.real_ip,
                        proxy_address: accepted
                            .real_ip
                            .map(|_| std::mem::take(&mut handshaking.peer_address)),
                        origin: accepted.origin,
                    });
                    self.state = State::Open(OpenState {
                        mode: accepted.mode,
                        frame: None,
                        message: None,
                        // Allocated on the first control frame: most idle connections never see one.
                        control: Vec::new(),
                        pings: PingBudget::new(&self.config.limits, now_ms),
                        keepalive: self
                            .config
                            .native_ping
                            .then(|| Keepalive::new(self.config.ping_interval_ms, now_ms)),
                    });
                }
            }
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
        let start = report.consumed;
        let rest = input.get_mut(start..).unwrap_or_default();
        if !rest.is_empty() {
            if let Some(keepalive) = open.keepalive.as_mut() {
                keepalive.heard(now_ms);
            }
            messages.expect(rest.len());
        }
        let result = open.read_frames(rest, &self.config.limits, now_ms, messages, out);
        report.messages = result.messages;
        report.consumed = start + result.consumed;
        if let Some(ending) = result.ending {
            self.state = match ending {
                // The close handshake is complete: the client's close was echoed.
                Ending::ClientClosed { .. } => State::Closed,
                // Our close frame went out in the middle of what the client sent.
                _ => State::Closing(CloseReply::AnyBytes),
            };
            report.consumed = input.len();
            report.ending = Some(ending);
        }
        report
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

    /// Frames the server's outgoing bytes (one element of InspIRCd's send queue).
    /// Returns false, consuming nothing, while the handshake is not done. After the
    /// close, output is dropped.
    pub fn send(&mut self, upper: &[u8], out: &mut impl ByteSink) -> bool {
        match &mut self.state {
            State::Handshake(_) => false,
            State::Open(open) => {
                if let Some(keepalive) = open.keepalive.as_mut() {
                    keepalive.sent();
                }
                self.framer.frame_lines(upper, open.mode, out);
                true
            }
            State::Closing(_) | State::Closed => true,
        }
    }

    /// Keepalive: called periodically. Writes a ping to an idle client, or a close frame
    /// (1001) to one that did not answer the last ping; the latter is an ending.
    pub fn poll_keepalive(&mut self, now_ms: u64, out: &mut impl ByteSink) -> Option<Ending> {
        let State::Open(open) = &mut self.state else {
            return None;
        };
        match open.keepalive.as_mut()?.poll(now_ms) {
            KeepaliveAction::Idle => None,
            KeepaliveAction::Ping => {
                LineFramer::write_frame(OpCode::Ping, KEEPALIVE_PING_PAYLOAD, out);
                None
            }
            KeepaliveAction::TimedOut => {
                let reason = "no answer to a keepalive ping";
                write_close_frame(CloseCode::GoingAway.code(), reason, out);
                self.begin_closing();
                Some(Ending::Failed {
                    code: CloseCode::GoingAway,
                    reason,
                })
            }
        }
    }

    /// Asks for a close frame with `code` and `reason` (e.g. on QUIT or unload). It is
    /// written by [`Session::finish_send`], after the lines queued before it. The first
    /// request wins.
    pub fn request_close(&mut self, code: CloseCode, reason: &str) {
        if self.pending_close.is_none() {
            self.pending_close = Some((code.code(), reason.into()));
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
            State::Open(open) => State::Closing(CloseReply::Frames(open)),
            other => other,
        };
    }
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
            CloseReply::Frames(open) => open
                .read_frames(input, limits, now_ms, &mut NoMessages, &mut NoOutput)
                .ending
                .is_some(),
        }
    }
}

/// Payload of keepalive pings; clients echo it in their pong.
const KEEPALIVE_PING_PAYLOAD: &[u8] = b"keepalive";

/// Largest control frame payload (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: u8 = 125;

/// What [`OpenState::read_frames`] did.
#[derive(Default)]
struct FrameReadResult {
    consumed: usize,
    messages: usize,
    ending: Option<Ending>,
}

/// The connection must fail with a close frame.
struct Failure {
    code: CloseCode,
    reason: &'static str,
}

impl Failure {
    fn new(code: CloseCode, reason: &'static str) -> Failure {
        Failure { code, reason }
    }
}

/// The outcome of a completed frame.
enum FrameDone {
    Continue,
    /// A message was completed.
    Message,
    /// The client closed; the echo has been written.
    ClientClosed(Option<u16>),
}

impl OpenState {
    fn read_frames(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
    ) -> FrameReadResult {
        let mut result = FrameReadResult::default();
        match self.read_loop(input, limits, now_ms, messages, out, &mut result) {
            Ok(()) => {}
            Err(failure) => {
                write_close_frame(failure.code.code(), failure.reason, out);
                result.ending = Some(Ending::Failed {
                    code: failure.code,
                    reason: failure.reason,
                });
            }
        }
        result
    }

    fn read_loop(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
        result: &mut FrameReadResult,
    ) -> Result<(), Failure> {
        loop {
            let pos = result.consumed;
            let available = input.get_mut(pos..).unwrap_or_default();
            let mut frame = match self.frame.take() {
                Some(frame) => frame,
                None => {
                    let parsed = FrameHeader::parse(available, true, NO_EXTENSION_RSV)
                        .map_err(header_failure)?;
                    let Some((header, header_len)) = parsed else {
                        return Ok(());
                    };
                    result.consumed += header_len;
                    self.begin_frame(&header, limits, messages)?;
                    IncomingFrame {
                        header,
                        received: 0,
                    }
                }
            };
            let available = input.get_mut(result.consumed..).unwrap_or_default();
            let take = usize::try_from(frame.remaining())
                .unwrap_or(usize::MAX)
                .min(available.len());
            let (chunk, _) = available.split_at_mut(take);
            let offset = usize::try_from(frame.received % 4).unwrap_or(0);
            apply_mask(chunk, frame.header.mask.unwrap_or_default(), offset);
            self.take_payload(&frame.header, chunk, messages)?;
            result.consumed += take;
            frame.received += take as u64;
            if frame.remaining() > 0 {
                self.frame = Some(frame);
                return Ok(());
            }
            match self.end_frame(&frame.header, limits, now_ms, messages, out)? {
                FrameDone::Continue => {}
                FrameDone::Message => result.messages += 1,
                FrameDone::ClientClosed(code) => {
                    result.ending = Some(Ending::ClientClosed { code });
                    return Ok(());
                }
            }
        }
    }

    /// Checks a new frame against the message in progress and the limits, before any
    /// of its payload is looked at.
    fn begin_frame(
        &mut self,
        header: &FrameHeader,
        limits: &Limits,
        messages: &mut impl MessageSink,
    ) -> Result<(), Failure> {
        let too_big = || Failure::new(CloseCode::TooBig, "message larger than the limit");
        match header.opcode {
            OpCode::Ping | OpCode::Pong | OpCode::Close => {
                self.control.clear();
                return Ok(());
            }
            OpCode::Continuation => {
                if self.message.is_none() {
                    return Err(Failure::new(
                        CloseCode::ProtocolError,
                        "continuation frame with no message to continue",
                    ));
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(Failure::new(
                        CloseCode::ProtocolError,
                        "new message while a fragmented message is unfinished",
                    ));
                }
                if header.payload_len > limits.max_message_bytes as u64 {
                    return Err(too_big());
                }
                self.message = Some(IncomingMessage {
                    utf8: (header.opcode == OpCode::Text).then(Utf8Validator::default),
                    len: 0,
                    fragments: 0,
                });
                messages.begin(header.opcode);
            }
        }
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        message.fragments += 1;
        if message.fragments > limits.max_fragments {
            return Err(Failure::new(
                CloseCode::PolicyViolation,
                "message split into more fragments than the limit",
            ));
        }
        message.len = message.len.saturating_add(header.payload_len);
        if message.len > limits.max_message_bytes as u64 {
            return Err(too_big());
        }
        Ok(())
    }

    /// Handles unmasked payload bytes as they arrive.
    fn take_payload(
        &mut self,
        header: &FrameHeader,
        chunk: &[u8],
        messages: &mut impl MessageSink,
    ) -> Result<(), Failure> {
        if header.opcode.is_control() {
            self.control.extend_from_slice(chunk);
            return Ok(());
        }
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        if let Some(utf8) = message.utf8.as_mut() {
            utf8.feed(chunk).map_err(|_| {
                Failure::new(CloseCode::InvalidPayload, "invalid UTF-8 in a text message")
            })?;
        }
        messages.payload(chunk);
        Ok(())
    }

    /// Acts on a frame whose payload is complete.
    fn end_frame(
        &mut self,
        header: &FrameHeader,
        limits: &Limits,
        now_ms: u64,
        messages: &mut impl MessageSink,
        out: &mut impl ByteSink,
    ) -> Result<FrameDone, Failure> {
        match header.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if !header.fin {
                    return Ok(FrameDone::Continue);
                }
                let Some(message) = self.message.take() else {
                    return Ok(FrameDone::Continue);
                };
                if let Some(mut utf8) = message.utf8 {
                    utf8.finish().map_err(|_| {
                        Failure::new(CloseCode::InvalidPayload, "invalid UTF-8 in a text message")
                    })?;
                }
                messages.end();
                Ok(FrameDone::Message)
            }
            OpCode::Ping => {
                if !self.pings.take(limits, now_ms) {
                    return Err(Failure::new(CloseCode::PolicyViolation, "ping flood"));
                }
                if let Some(keepalive) = self.keepalive.as_mut() {
                    keepalive.sent();
                }
                LineFramer::write_frame(OpCode::Pong, &self.control, out);
                Ok(FrameDone::Continue)
            }
            OpCode::Pong => Ok(FrameDone::Continue),
            OpCode::Close => match parse_close_payload(&self.control) {
                Ok(Some((code, _reason))) => {
                    write_close_frame(code, "", out);
                    Ok(FrameDone::ClientClosed(Some(code)))
                }
                Ok(None) => {
                    LineFramer::write_frame(OpCode::Close, &[], out);
                    Ok(FrameDone::ClientClosed(None))
                }
                Err(ClosePayloadError::BadCode) => {
                    Err(Failure::new(CloseCode::ProtocolError, "invalid close code"))
                }
                Err(ClosePayloadError::BadReason) => Err(Failure::new(
                    CloseCode::InvalidPayload,
                    "close reason is not valid UTF-8",
                )),
            },
        }
    }
}

/// The close a bad header earns: a length that cannot be real is "too big" (1009), as
/// any length past the limit is; everything else breaks the protocol (1002).
fn header_failure(error: crate::frame::HeaderError) -> Failure {
    use crate::frame::HeaderError;
    match error {
        HeaderError::ReservedBits => Failure::new(
            CloseCode::ProtocolError,
            "reserved bits set without a negotiated extension",
        ),
        HeaderError::UnknownOpcode(_) => Failure::new(CloseCode::ProtocolError, "unknown opcode"),
        HeaderError::Unmasked => Failure::new(CloseCode::ProtocolError, "unmasked client frame"),
        HeaderError::ControlTooLong => Failure::new(
            CloseCode::ProtocolError,
            "control frame longer than 125 bytes",
        ),
        HeaderError::ControlFragmented => {
            Failure::new(CloseCode::ProtocolError, "fragmented control frame")
        }
        HeaderError::LengthTopBit => Failure::new(
            CloseCode::TooBig,
            "frame length with the most significant bit set",
        ),
    }
}

fn write_close_frame(code: u16, reason: &str, out: &mut impl ByteSink) {
    let mut payload = Vec::with_capacity(usize::from(MAX_CONTROL_PAYLOAD));
    encode_close_payload(code, reason, &mut payload);
    LineFramer::write_frame(OpCode::Close, &payload, out);
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
        let mut session = Session::new(Arc::new(config), "192.0.2.1", SocketKind::User);
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
            Some(Ending::Failed {
                code: CloseCode::InvalidPayload,
                ..
            })
        ));
        assert_eq!(log.0, ["begin Text", "payload ok", r"payload \xc3"]);
    }
}
