//! One connection's state machine: handshake, then frames in both directions, then
//! closed.
//!
//! The caller hands [`Session::receive`] every byte it has not yet seen consumed and
//! gets back how many bytes were used; IRC lines go to one sink (InspIRCd's receive
//! queue), protocol output (the 101, an HTTP error, pongs, close frames) to another.
//! [`Session::send`] frames the server's outgoing lines. Time is an argument.

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

/// RSV bits a client may set: none, as no extension is negotiated.
const NO_EXTENSION_RSV: u8 = 0;

/// Where the connection is in its life.
#[derive(Debug)]
enum State {
    /// Waiting for the complete HTTP upgrade request.
    Handshake(HandshakeScanner),
    /// Upgraded: frames flow both ways.
    Open(Box<OpenState>),
    /// A close frame or HTTP error has been sent; everything received is ignored.
    Closed,
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
    header: FrameHeader,
    mask: [u8; 4],
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
    /// Whether any byte other than CR/LF reached the IRC line.
    delivered: bool,
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
    /// Complete messages delivered as IRC lines.
    pub messages: usize,
    /// How many of those were empty (nothing but CR/LF): InspIRCd ignores empty lines
    /// without any flood penalty, so the caller charges them.
    pub empty_messages: usize,
    /// Set on the call that completed the handshake.
    pub upgrade: Option<Upgrade>,
    /// Set when the connection must now be closed.
    pub ending: Option<Ending>,
}

/// One WebSocket connection.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    peer_address: String,
    socket: SocketKind,
    state: State,
    framer: LineFramer,
    /// A close the server asked for, sent after the lines already queued.
    pending_close: Option<(u16, String)>,
}

impl Session {
    /// A new connection from `peer_address` (as InspIRCd prints it).
    pub fn new(config: Arc<Config>, peer_address: &str, socket: SocketKind) -> Session {
        Session {
            config,
            peer_address: peer_address.to_owned(),
            socket,
            state: State::Handshake(HandshakeScanner::default()),
            framer: LineFramer::default(),
            pending_close: None,
        }
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
        let mut report = ReadReport::default();
        if let State::Handshake(scanner) = &mut self.state {
            let peer = Peer {
                address: &self.peer_address,
                socket: self.socket,
            };
            match scanner.poll(input, &self.config, peer) {
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
                    report.upgrade = Some(Upgrade {
                        subprotocol: accepted.subprotocol,
                        mode: accepted.mode,
                        real_ip: accepted.real_ip,
                        origin: accepted.origin,
                    });
                    self.state = State::Open(Box::new(OpenState {
                        mode: accepted.mode,
                        frame: None,
                        message: None,
                        control: Vec::with_capacity(usize::from(MAX_CONTROL_PAYLOAD)),
                        pings: PingBudget::new(&self.config.limits, now_ms),
                        keepalive: self
                            .config
                            .native_ping
                            .then(|| Keepalive::new(self.config.ping_interval_ms, now_ms)),
                    }));
                }
            }
        }
        let State::Open(open) = &mut self.state else {
            // Closed: whatever arrives after the close is ignored.
            report.consumed = input.len();
            return report;
        };
        let start = report.consumed;
        let rest = input.get_mut(start..).unwrap_or_default();
        if let (Some(keepalive), false) = (open.keepalive.as_mut(), rest.is_empty()) {
            keepalive.heard(now_ms);
        }
        let result = open.read_frames(rest, &self.config.limits, now_ms, lines, out);
        report.messages = result.messages;
        report.empty_messages = result.empty_messages;
        report.consumed = start + result.consumed;
        if let Some(ending) = result.ending {
            self.state = State::Closed;
            report.consumed = input.len();
            report.ending = Some(ending);
        }
        report
    }

    /// Frames the server's outgoing bytes (one element of InspIRCd's send queue).
    /// Returns false, consuming nothing, while the handshake is not done. After the
    /// close, output is dropped.
    pub fn send(&mut self, upper: &[u8], out: &mut impl ByteSink) -> bool {
        match &self.state {
            State::Handshake(_) => false,
            State::Open(open) => {
                self.framer.frame_lines(upper, open.mode, out);
                true
            }
            State::Closed => true,
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
                self.state = State::Closed;
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
            self.pending_close = Some((code.code(), reason.to_owned()));
        }
    }

    /// Ends a round of [`Session::send`] calls: writes a requested close frame.
    pub fn finish_send(&mut self, out: &mut impl ByteSink) {
        if !self.is_open() {
            return;
        }
        if let Some((code, reason)) = self.pending_close.take() {
            write_close_frame(code, &reason, out);
            self.state = State::Closed;
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
    empty_messages: usize,
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
    /// A message was completed; true if it was empty.
    Message {
        empty: bool,
    },
    /// The client closed; the echo has been written.
    ClientClosed(Option<u16>),
}

impl OpenState {
    fn read_frames(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        now_ms: u64,
        lines: &mut impl ByteSink,
        out: &mut impl ByteSink,
    ) -> FrameReadResult {
        let mut result = FrameReadResult::default();
        match self.read_loop(input, limits, now_ms, lines, out, &mut result) {
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
        lines: &mut impl ByteSink,
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
                    self.begin_frame(&header, limits)?;
                    IncomingFrame {
                        mask: header.mask.unwrap_or_default(),
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
            apply_mask(chunk, frame.mask, offset);
            self.take_payload(&frame.header, chunk, lines)?;
            result.consumed += take;
            frame.received += take as u64;
            if frame.remaining() > 0 {
                self.frame = Some(frame);
                return Ok(());
            }
            match self.end_frame(&frame.header, limits, now_ms, lines, out)? {
                FrameDone::Continue => {}
                FrameDone::Message { empty } => {
                    result.messages += 1;
                    result.empty_messages += usize::from(empty);
                }
                FrameDone::ClientClosed(code) => {
                    result.ending = Some(Ending::ClientClosed { code });
                    return Ok(());
                }
            }
        }
    }

    /// Checks a new frame against the message in progress and the limits, before any
    /// of its payload is looked at.
    fn begin_frame(&mut self, header: &FrameHeader, limits: &Limits) -> Result<(), Failure> {
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
                    delivered: false,
                });
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
        lines: &mut impl ByteSink,
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
        // One message is one IRC line: CR and LF inside it are dropped so that it can
        // never become two commands.
        for segment in chunk.split(|&b| b == b'\r' || b == b'\n') {
            if !segment.is_empty() {
                lines.put(segment);
                message.delivered = true;
            }
        }
        Ok(())
    }

    /// Acts on a frame whose payload is complete.
    fn end_frame(
        &mut self,
        header: &FrameHeader,
        limits: &Limits,
        now_ms: u64,
        lines: &mut impl ByteSink,
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
                lines.put(b"\r\n");
                Ok(FrameDone::Message {
                    empty: !message.delivered,
                })
            }
            OpCode::Ping => {
                if !self.pings.take(limits, now_ms) {
                    return Err(Failure::new(CloseCode::PolicyViolation, "ping flood"));
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
