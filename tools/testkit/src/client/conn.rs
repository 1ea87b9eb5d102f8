//! The one blocking client: a TCP connection on which a test speaks plain IRC, or HTTP
//! and RFC 6455 by hand (so that it can send anything: malformed requests, unmasked or
//! oversized frames, half a frame; and see every byte and frame the server sends).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::{pong_for, Error, ErrorKind, IrcLines, Result, Seen, DEFAULT_TIMEOUT};
use crate::deflate::{deflate_message, Inflater, RSV1};
use crate::http::HttpResponse;
use crate::irc::take_line;
use crate::messages::{Decoder, Message, Received};
use crate::rng::Rng;
use crate::ws::{
    encode_frame_byte, first_byte, parse_frame, upgrade_request, Frame, OP_CLOSE, OP_PING, OP_PONG,
    OP_TEXT,
};

/// A blocking client. Its IRC lines ([`IrcLines`]) are lines with CR LF on a plain
/// connection ([`Client::irc`]), or WebSocket messages ([`Client::raw`],
/// [`Client::upgrade`]), compressed once the server agrees to permessage-deflate.
///
/// Like a real WebSocket client (RFC 6455 5.5.1) it answers the server's close frame at
/// once, unless it sent a close first or is [`Client::silent_on_close`]: the server
/// waits for that reply before it closes TCP. It answers ping frames only in line waits
/// of a client [`Client::answering_pings`], and masks each frame with a key of its own.
pub struct Client {
    pub stream: TcpStream,
    /// Who this client is in failure messages (its nick once registered).
    pub name: String,
    /// Every wait's bound unless a deadline is given.
    pub timeout: Duration,
    buf: Vec<u8>,
    seen: Seen,
    /// Lines are WebSocket messages (else lines with CR LF).
    websocket: bool,
    ident: String,
    realname: String,
    masks: Rng,
    /// A close frame has gone from this client (its own or its reply).
    close_sent: bool,
    answers_close: bool,
    answers_pings: bool,
    /// Server frames into messages; inflates once permessage-deflate is agreed.
    decoder: Decoder,
    /// The opcode line waits require of the server's messages, if any.
    wanted_opcode: Option<u8>,
    /// Server messages that arrived compressed, and uncompressed.
    pub compressed_seen: usize,
    pub plain_seen: usize,
    /// Whether the last line a wait returned came compressed.
    pub last_compressed: bool,
}

impl Client {
    /// A plain IRC client connected to 127.0.0.1:`port` (from `src`, if given).
    pub fn irc(src: Option<Ipv4Addr>, port: u16) -> Result<Client> {
        Client::connect(src, port, false)
    }

    /// A plain IRC client that has sent NICK and USER (`u`, `Plain user`) without
    /// waiting: InspIRCd completes registrations on a once-a-second tick, so tests
    /// start several before waiting for any.
    pub fn irc_start(port: u16, nick: &str) -> Result<Client> {
        let mut c = Client::irc(None, port)?.ident("u", "Plain user");
        c.start_register(nick)?;
        Ok(c)
    }

    /// A plain IRC user registered as `nick` (001 arrived).
    pub fn irc_register(port: u16, nick: &str) -> Result<Client> {
        let mut c = Client::irc_start(port, nick)?;
        c.wait_welcome()?;
        Ok(c)
    }

    /// A raw client connected to 127.0.0.1:`port` (from `src`, if given), its lines
    /// WebSocket messages once upgraded.
    pub fn raw(src: Option<Ipv4Addr>, port: u16) -> Result<Client> {
        Client::connect(src, port, true)
    }

    /// A raw client upgraded with the kit's default Origin, Host 127.0.0.1 and the
    /// `extra` header lines: a 101 with the right accept value, or an error.
    pub fn upgrade(port: u16, extra: &[&str]) -> Result<(Client, HttpResponse)> {
        let mut c = Client::raw(None, port)?;
        let request = upgrade_request("127.0.0.1", crate::inspircd::DEFAULT_ORIGIN, extra);
        let r = c.upgrade_with(&request)?;
        Ok((c, r))
    }

    fn connect(src: Option<Ipv4Addr>, port: u16, websocket: bool) -> Result<Client> {
        let stream = match src {
            Some(src) => crate::net::connect_from(src, port),
            None => TcpStream::connect(("127.0.0.1", port)),
        }
        .and_then(|s| s.set_nodelay(true).map(|()| s))
        .map_err(|e| Error::new(ErrorKind::Io, format!("connect to port {port}: {e}")))?;
        let seed = stream.local_addr().map_or(0, |a| u64::from(a.port()));
        Ok(Client {
            stream,
            name: if websocket {
                "raw client"
            } else {
                "IRC client"
            }
            .into(),
            timeout: DEFAULT_TIMEOUT,
            buf: Vec::new(),
            seen: Seen::default(),
            websocket,
            ident: "raw".into(),
            realname: "Raw user".into(),
            masks: Rng::new(seed),
            close_sent: false,
            answers_close: true,
            answers_pings: false,
            decoder: Decoder::new(),
            wanted_opcode: None,
            compressed_seen: 0,
            plain_seen: 0,
            last_compressed: false,
        })
    }

    /// This client named `name` in failure messages (and its masks seeded by it).
    pub fn named(mut self, name: &str) -> Client {
        self.name = name.to_string();
        self.masks = Rng::new(
            name.bytes()
                .fold(7, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
        );
        self
    }

    /// Every wait of this client bounded by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// The ident and realname [`Client::start_register`] sends.
    pub fn ident(mut self, ident: &str, realname: &str) -> Client {
        self.ident = ident.to_string();
        self.realname = realname.to_string();
        self
    }

    /// Line waits answer the server's ping frames with pongs.
    pub fn answering_pings(mut self) -> Client {
        self.answers_pings = true;
        self
    }

    /// Line waits fail on a server message of another opcode than `opcode`.
    pub fn requiring_opcode(mut self, opcode: u8) -> Client {
        self.wanted_opcode = Some(opcode);
        self
    }

    /// Never answers the server's close frame (a client that has gone away): the
    /// server then closes TCP after its linger timeout.
    pub fn silent_on_close(&mut self) {
        self.answers_close = false;
    }

    /// permessage-deflate was agreed.
    pub fn deflate(&self) -> bool {
        self.decoder.deflate()
    }

    /// An error of `kind` naming this client.
    fn error(&self, kind: ErrorKind, message: impl std::fmt::Display) -> Error {
        Error::new(kind, format!("[{}] {message}", self.name))
    }

    /// Writes bytes; the error is returned as it is (the server may have closed).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .map_err(|e| self.error(ErrorKind::Io, format!("write: {e}")))
    }

    /// Half-closes the connection (FIN; reading goes on).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Closes both directions now.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads what the socket has into the buffer, waiting at most until `deadline`.
    /// The end of the connection (EOF, reset) is an error of kind
    /// [`ErrorKind::Closed`], the deadline one of kind [`ErrorKind::Timeout`].
    fn fill(&mut self, deadline: Instant) -> Result<()> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(self.error(ErrorKind::Timeout, "timed out"));
            };
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| self.error(ErrorKind::Io, e))?;
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(self.error(ErrorKind::Closed, "connection closed")),
                Ok(n) => {
                    self.buf.extend_from_slice(tmp.get(..n).unwrap_or_default());
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.error(ErrorKind::Timeout, "timed out"))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if crate::net::is_reset(&e) => {
                    return Err(self.error(ErrorKind::Closed, "connection reset"))
                }
                Err(e) => return Err(self.error(ErrorKind::Io, format!("read error: {e}"))),
            }
        }
    }

    /// Every byte until the server closes the connection (for connections that were
    /// never upgraded).
    pub fn bytes_until_eof(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(e) if e.is_closed() => return Ok(std::mem::take(&mut self.buf)),
                Err(e) => {
                    let got = String::from_utf8_lossy(&self.buf).into_owned();
                    return Err(e.detail(&format!("not closed; got {got:?}")));
                }
            }
        }
    }

    /// Sends an upgrade request and reads the response head, whatever its status; a
    /// 101 must carry the right accept value (for [`crate::ws::SAMPLE_KEY`]).
    pub fn handshake(&mut self, request: &[u8]) -> Result<HttpResponse> {
        self.send(request)?;
        let r = self.read_head()?;
        if r.status == 101 {
            r.check_101()
                .map_err(|e| self.error(ErrorKind::Protocol, e))?;
        }
        Ok(r)
    }

    /// [`Client::handshake`] that must end in a 101.
    pub fn upgrade_with(&mut self, request: &[u8]) -> Result<HttpResponse> {
        let r = self.handshake(request)?;
        if r.status != 101 {
            return Err(self.error(ErrorKind::Protocol, format!("expected 101, got {r:?}")));
        }
        Ok(r)
    }

    /// Reads an HTTP response head (status line and headers, no body). After a 101
    /// that agreed to permessage-deflate, the connection's messages inflate and its
    /// lines go out compressed.
    pub fn read_head(&mut self) -> Result<HttpResponse> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let head = HttpResponse::take_head(&mut self.buf)
                .map_err(|e| self.error(ErrorKind::Protocol, e))?;
            if let Some(r) = head {
                // A test may look at an answer this client would refuse: only an
                // answer it understands turns compression on.
                if let (101, Ok(Some(agreed))) = (r.status, r.deflate()) {
                    self.decoder = Decoder::with_inflater(Inflater::for_agreement(&agreed));
                }
                return Ok(r);
            }
            if let Err(e) = self.fill(deadline) {
                let got = String::from_utf8_lossy(&self.buf).into_owned();
                return Err(e.detail(&format!("no complete HTTP response head; got {got:?}")));
            }
        }
    }

    /// Reads an HTTP response; after anything but a 101 also its body. The body ends
    /// when the server closes (it must, after an error; `closed` says it did within
    /// the timeout), or with `sized` at its Content-Length, as a proxy sends it (a
    /// proxy keeps its client's connection open after an upstream's error answer);
    /// then a body that does not arrive in time is an error.
    pub fn read_response_body(&mut self, sized: bool) -> Result<HttpResponse> {
        let mut resp = self.read_head()?;
        if resp.status == 101 {
            return Ok(resp);
        }
        let want = resp
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|_| sized);
        let deadline = Instant::now() + self.timeout;
        while want.is_none_or(|n| self.buf.len() < n) {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(e) if e.is_closed() => {
                    resp.closed = true;
                    break;
                }
                Err(e) if e.is_timeout() && !sized => break,
                Err(e) => {
                    let got = String::from_utf8_lossy(&self.buf).into_owned();
                    return Err(e.detail(&format!(
                        "the body of {:?} (Content-Length {want:?}); got {got:?}",
                        resp.status_line
                    )));
                }
            }
        }
        resp.body = std::mem::take(&mut self.buf);
        Ok(resp)
    }

    /// [`Client::read_response_body`] up to the close.
    pub fn read_response(&mut self) -> Result<HttpResponse> {
        self.read_response_body(false)
    }

    /// The next frame within the timeout ([`Client::frame_until`]).
    pub fn frame(&mut self) -> Result<Frame> {
        self.frame_until(Instant::now() + self.timeout)
    }

    /// The next frame before `deadline`, as the server sent it. Errors: the end of the
    /// connection ([`ErrorKind::Closed`]; [`ErrorKind::Protocol`] inside a frame), the
    /// deadline ([`ErrorKind::Timeout`]), a masked frame, which a server must not send.
    pub fn frame_until(&mut self, deadline: Instant) -> Result<Frame> {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                self.seen.push(f.describe());
                if f.masked {
                    return Err(self.error(ErrorKind::Protocol, format!("a masked frame: {f:?}")));
                }
                if f.opcode == OP_CLOSE && self.answers_close && !self.close_sent {
                    // The server may already have closed (the stock module does).
                    let code = f.payload.get(..2).unwrap_or_default().to_vec();
                    self.close_sent = true;
                    let mask = self.masks.mask();
                    let _ = self.write(&encode_frame_byte(0x80 | OP_CLOSE, &code, Some(mask)));
                }
                return Ok(f);
            }
            match self.fill(deadline) {
                Err(e) if e.is_closed() && !self.buf.is_empty() => {
                    let buffered = format!("EOF inside a frame; buffered {:?}", self.buf);
                    return Err(self.error(ErrorKind::Protocol, buffered));
                }
                other => other?,
            }
        }
    }

    /// Reads frames until one satisfies `pred` (skipping others) within the timeout.
    pub fn expect_frame(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Frame) -> bool,
    ) -> Result<Frame> {
        let deadline = Instant::now() + self.timeout;
        let mut skipped = Vec::new();
        loop {
            match self.frame_until(deadline) {
                Ok(f) if pred(&f) => return Ok(f),
                Ok(f) => skipped.push(format!("op={} {:?}", f.opcode, f.text())),
                Err(e) => {
                    let before = skipped.join("\n");
                    return Err(e.detail(&format!("waiting for {what}; frames before:\n{before}")));
                }
            }
        }
    }

    /// Every frame until the server closes the connection.
    pub fn frames_until_eof(&mut self) -> Result<Vec<Frame>> {
        let deadline = Instant::now() + self.timeout;
        let mut v = Vec::new();
        loop {
            match self.frame_until(deadline) {
                Ok(f) => v.push(f),
                Err(e) if e.is_closed() => return Ok(v),
                Err(e) => {
                    let frames: Vec<String> = v.iter().map(Frame::describe).collect();
                    let frames = frames.join(", ");
                    return Err(e.detail(&format!(
                        "the server did not close the connection; frames: {frames}"
                    )));
                }
            }
        }
    }

    /// Sends a masked frame: FIN if `fin`, no RSV bits, `opcode`.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> Result<()> {
        self.send_frame_byte(first_byte(fin, opcode), payload)
    }

    /// Sends a masked frame whose first byte (FIN, RSV, opcode) is `first_byte`.
    pub fn send_frame_byte(&mut self, first_byte: u8, payload: &[u8]) -> Result<()> {
        self.close_sent |= first_byte & 0x0f == OP_CLOSE;
        let mask = self.masks.mask();
        self.send(&encode_frame_byte(first_byte, payload, Some(mask)))
    }

    /// Sends one uncompressed text frame.
    pub fn send_text(&mut self, line: &str) -> Result<()> {
        self.send_frame(true, OP_TEXT, line.as_bytes())
    }

    /// Reads for `d`, answering pings of both kinds; returns the ping frames answered.
    /// The end of the connection or a close frame is an error.
    pub fn answer_pings_for(&mut self, d: Duration) -> Result<u32> {
        let deadline = Instant::now() + d;
        let mut n = 0;
        loop {
            match self.frame_until(deadline) {
                Ok(f) if f.opcode == OP_PING => {
                    n += 1;
                    self.send_frame(true, OP_PONG, &f.payload)?;
                }
                Ok(f) if f.opcode == OP_CLOSE => return Err(self.closed_by(&f)),
                Ok(f) if f.is_data() => {
                    if let Some(pong) = pong_for(&f.payload) {
                        self.send_line(&String::from_utf8_lossy(&pong))?;
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_timeout() => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next data message before `deadline` (fragments joined, inflated if it came
    /// compressed). On the way a ping frame is answered if the client answers pings,
    /// and a close frame ends the wait ([`ErrorKind::Closed`]).
    fn message_until(&mut self, deadline: Instant) -> Result<Message> {
        loop {
            let f = self.frame_until(deadline)?;
            let received = self
                .decoder
                .push(f)
                .map_err(|e| self.error(ErrorKind::Protocol, e))?;
            match received {
                None => {}
                Some(Received::Message(m)) => {
                    if m.compressed {
                        self.compressed_seen += 1;
                        self.seen.push(format!("(inflated) {}", m.text()));
                    } else {
                        self.plain_seen += 1;
                    }
                    return Ok(m);
                }
                Some(Received::Control(f)) => match f.opcode {
                    OP_PING if self.answers_pings => self.send_frame(true, OP_PONG, &f.payload)?,
                    OP_CLOSE => return Err(self.closed_by(&f)),
                    _ => {}
                },
            }
        }
    }

    /// The error for a close frame where the server was to send something else.
    fn closed_by(&self, f: &Frame) -> Error {
        let why = format!("close frame {:?} {:?}", f.close_code(), f.close_reason());
        self.error(ErrorKind::Closed, why)
    }

    /// The next IRC line (without CR LF) before `deadline`: a plain line, or one
    /// WebSocket message, which must be one line in one frame: not empty, without CR
    /// or LF (and of the required opcode, if one is).
    pub fn line_until(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        if !self.websocket {
            loop {
                if let Some(line) = take_line(&mut self.buf) {
                    self.seen.push(String::from_utf8_lossy(&line).into_owned());
                    return Ok(line);
                }
                self.fill(deadline)?;
            }
        }
        let m = self.message_until(deadline)?;
        let one_line = !m.payload.is_empty()
            && !m.payload.contains(&b'\r')
            && !m.payload.contains(&b'\n')
            && m.frames == 1
            && self.wanted_opcode.is_none_or(|op| op == m.opcode);
        if !one_line {
            let why = format!(
                "a message that is not one IRC line in one frame (of opcode {:?}): {m:?}",
                self.wanted_opcode
            );
            return Err(self.error(ErrorKind::Protocol, why));
        }
        self.last_compressed = m.compressed;
        Ok(m.payload)
    }

    /// Reads (and drops) lines until the server closes the connection.
    pub fn expect_eof(&mut self, what: &str) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.line_until(deadline) {
                Ok(_) => {}
                Err(e) if e.is_closed() => return Ok(()),
                Err(e) => {
                    let last = self.recent();
                    return Err(e.detail(&format!("waiting for the close ({what}); last:\n{last}")));
                }
            }
        }
    }

    /// Sends NICK and USER with this client's ident without waiting for 001; names
    /// the client `nick`.
    pub fn start_register(&mut self, nick: &str) -> Result<()> {
        self.name = nick.to_string();
        let (ident, realname) = (self.ident.clone(), self.realname.clone());
        self.start_register_as(nick, &ident, &realname)
    }

    /// [`Client::start_register`], then waits for 001.
    pub fn register(&mut self, nick: &str) -> Result<()> {
        self.start_register(nick)?;
        self.wait_welcome()
    }

    /// The lines and frames received (the last few hundred), oldest first.
    pub fn seen(&self) -> &[String] {
        self.seen.all()
    }

    /// The last lines or frames received, one a line.
    pub fn recent(&self) -> String {
        self.seen.recent()
    }
}

impl IrcLines for Client {
    fn name(&self) -> &str {
        &self.name
    }

    /// A line with CR LF, or one text message (compressed when permessage-deflate
    /// was agreed).
    fn send_line(&mut self, line: &str) -> Result<()> {
        if !self.websocket {
            self.send(format!("{line}\r\n").as_bytes())
        } else if self.deflate() {
            let payload = deflate_message(line.as_bytes());
            self.send_frame_byte(0x80 | RSV1 | OP_TEXT, &payload)
        } else {
            self.send_text(line)
        }
    }

    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let line = self.line_until(deadline).map_err(|e| {
                let last = self.recent();
                e.detail(&format!(
                    "waiting for {what} ({:?}); last:\n{last}",
                    self.timeout
                ))
            })?;
            if pred(&line) {
                return Ok(line);
            }
            if let Some(pong) = pong_for(&line) {
                self.send_line(&String::from_utf8_lossy(&pong))?;
            }
        }
    }
}
