//! A raw WebSocket client: HTTP and RFC 6455 written out by hand on a TCP connection,
//! so that a test can send anything (malformed requests, unmasked or oversized frames,
//! half a frame) and see every byte and frame the server sends.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::{
    fill, pong_for, tcp, Error, ErrorKind, Filled, IrcLines, Result, Seen, DEFAULT_TIMEOUT,
};
use crate::deflate::{deflate_message, Inflater, RSV1};
use crate::http::HttpResponse;
use crate::messages::{Decoder, Message, Received};
use crate::rng::Rng;
use crate::ws::{
    encode_frame_byte, first_byte, parse_frame, upgrade_request, Frame, OP_CLOSE, OP_PING, OP_PONG,
    OP_TEXT,
};

/// A raw TCP connection to a WebSocket listener.
///
/// Like a real client (RFC 6455 5.5.1), it answers the server's close frame with one of
/// its own as soon as it reads it, unless it sent a close first or was made
/// [`RawConn::silent_on_close`]: the server waits for that reply before it closes TCP.
/// It answers pings only in line waits, and only when made
/// [`RawConn::answering_pings`]. Every frame it sends is masked with a key of its own.
pub struct RawConn {
    pub stream: TcpStream,
    /// Who this client is, in failure messages (its nick once registered).
    pub name: String,
    buf: Vec<u8>,
    /// Every wait's bound unless a deadline is given.
    pub timeout: Duration,
    seen: Seen,
    masks: Rng,
    /// A close frame has gone from this client (its own or its reply).
    close_sent: bool,
    answers_close: bool,
    answers_pings: bool,
    /// Server frames into messages; inflates once permessage-deflate is agreed.
    decoder: Decoder,
    /// Lines go out compressed (permessage-deflate agreed).
    compress: bool,
    /// The opcode of [`IrcLines::send_line`]'s messages.
    data_opcode: u8,
    /// The opcode line waits require of the server's messages, if any.
    wanted_opcode: Option<u8>,
    ident: String,
    realname: String,
    /// Server messages that arrived compressed, and uncompressed.
    pub compressed_seen: usize,
    pub plain_seen: usize,
    /// Whether the last message a line wait returned came compressed.
    pub last_compressed: bool,
}

impl RawConn {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Result<RawConn> {
        Ok(RawConn::over(tcp(None, port)?))
    }

    /// Connects to 127.0.0.1:`port` from `src` (see [`crate::net::connect_from`]).
    pub fn connect_from(src: Ipv4Addr, port: u16) -> Result<RawConn> {
        Ok(RawConn::over(tcp(Some(src), port)?))
    }

    /// A raw client on a connected stream.
    pub fn over(stream: TcpStream) -> RawConn {
        let seed = stream
            .local_addr()
            .map(|a| u64::from(a.port()))
            .unwrap_or_default();
        RawConn {
            stream,
            name: "raw client".into(),
            buf: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            seen: Seen::default(),
            masks: Rng::new(seed),
            close_sent: false,
            answers_close: true,
            answers_pings: false,
            decoder: Decoder::new(),
            compress: false,
            data_opcode: OP_TEXT,
            wanted_opcode: None,
            ident: "raw".into(),
            realname: "Raw user".into(),
            compressed_seen: 0,
            plain_seen: 0,
            last_compressed: false,
        }
    }

    /// Connects to `port`, sends an upgrade request (the kit's default Origin, Host
    /// 127.0.0.1, then the `extra` header lines) and waits for a 101 with the right
    /// accept value; a refusal is an error of kind [`ErrorKind::Protocol`].
    pub fn upgrade(port: u16, extra: &[&str]) -> Result<(RawConn, HttpResponse)> {
        let mut c = RawConn::connect(port)?;
        let request = upgrade_request("127.0.0.1", crate::inspircd::DEFAULT_ORIGIN, extra);
        let r = c.upgrade_with(&request)?;
        Ok((c, r))
    }

    /// This client named `name` in failure messages.
    pub fn named(mut self, name: &str) -> RawConn {
        self.name = name.to_string();
        self.masks = Rng::new(
            name.bytes()
                .fold(7, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
        );
        self
    }

    /// Every wait of this client bounded by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> RawConn {
        self.timeout = timeout;
        self
    }

    /// The ident and realname [`RawConn::register`] sends (default `raw`, `Raw user`).
    pub fn ident(mut self, ident: &str, realname: &str) -> RawConn {
        self.ident = ident.to_string();
        self.realname = realname.to_string();
        self
    }

    /// Line waits answer the server's ping frames with pongs.
    pub fn answering_pings(mut self) -> RawConn {
        self.answers_pings = true;
        self
    }

    /// [`IrcLines::send_line`] sends `opcode` (text by default) messages.
    pub fn set_data_opcode(&mut self, opcode: u8) {
        self.data_opcode = opcode;
    }

    /// Line waits fail on a server message of another opcode than `opcode`.
    pub fn requiring_opcode(mut self, opcode: u8) -> RawConn {
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

    // --- bytes -------------------------------------------------------------------

    /// Writes bytes; the error is returned as it is (the server may have closed).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let name = &self.name;
        self.stream
            .write_all(bytes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("[{name}] write: {e}")))
    }

    /// Half-closes the connection (FIN; reading goes on).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Closes both directions now.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads more bytes, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<Filled> {
        fill(&mut self.stream, &mut self.buf, deadline)
            .map_err(|e| Error::new(ErrorKind::Io, format!("[{}] read error: {e}", self.name)))
    }

    /// Every byte until the server closes the connection (for connections that were
    /// never upgraded).
    pub fn bytes_until_eof(&mut self) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline)? {
                Filled::Data => {}
                Filled::Eof => return Ok(std::mem::take(&mut self.buf)),
                Filled::Timeout => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "[{}] not closed within {:?}; got {:?}",
                            self.name,
                            self.timeout,
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ))
                }
            }
        }
    }

    // --- HTTP --------------------------------------------------------------------

    /// Sends an upgrade request and reads the response head, whatever its status; a
    /// 101 must carry the right accept value (for [`crate::ws::SAMPLE_KEY`]).
    pub fn handshake(&mut self, request: &[u8]) -> Result<HttpResponse> {
        self.send(request)?;
        let r = self.read_head()?;
        if r.status == 101 {
            r.check_101()
                .map_err(|e| Error::new(ErrorKind::Protocol, format!("[{}] {e}", self.name)))?;
        }
        Ok(r)
    }

    /// [`RawConn::handshake`] that must end in a 101.
    pub fn upgrade_with(&mut self, request: &[u8]) -> Result<HttpResponse> {
        let r = self.handshake(request)?;
        if r.status != 101 {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("[{}] expected 101, got {r:?}", self.name),
            ));
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
                .map_err(|e| Error::new(ErrorKind::Protocol, format!("[{}] {e}", self.name)))?;
            if let Some(r) = head {
                if r.status == 101 {
                    // A test may look at an answer this client would refuse: only an
                    // answer it understands turns compression on.
                    if let Ok(Some(agreed)) = r.deflate() {
                        self.decoder = Decoder::with_inflater(Inflater::for_agreement(&agreed));
                        self.compress = true;
                    }
                }
                return Ok(r);
            }
            let how = match self.fill(deadline)? {
                Filled::Data => continue,
                Filled::Eof => (ErrorKind::Closed, "closed"),
                Filled::Timeout => (ErrorKind::Timeout, "timed out"),
            };
            return Err(Error::new(
                how.0,
                format!(
                    "[{}] no complete HTTP response head ({}); got {:?}",
                    self.name,
                    how.1,
                    String::from_utf8_lossy(&self.buf)
                ),
            ));
        }
    }

    /// Reads an HTTP response; after anything but a 101 also its body: everything until
    /// the server closes (it must, after an error). When it does not close within the
    /// timeout, the response says so (`closed` false).
    pub fn read_response(&mut self) -> Result<HttpResponse> {
        let mut resp = self.read_head()?;
        if resp.status == 101 {
            return Ok(resp);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline)? {
                Filled::Data => {}
                Filled::Eof => {
                    resp.closed = true;
                    break;
                }
                Filled::Timeout => break,
            }
        }
        resp.body = std::mem::take(&mut self.buf);
        Ok(resp)
    }

    /// Reads an HTTP response whose body ends by its Content-Length or by the close, as
    /// a proxy sends it (a proxy keeps its client's connection open after an
    /// upstream's error answer, where the server itself would close). A body that does
    /// not arrive within the timeout is an error.
    pub fn read_response_sized(&mut self) -> Result<HttpResponse> {
        let mut resp = self.read_head()?;
        if resp.status == 101 {
            return Ok(resp);
        }
        let want = resp
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok());
        let deadline = Instant::now() + self.timeout;
        loop {
            if want.is_some_and(|n| self.buf.len() >= n) {
                break;
            }
            match self.fill(deadline)? {
                Filled::Data => {}
                Filled::Eof => {
                    resp.closed = true;
                    break;
                }
                Filled::Timeout => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "[{}] the body of {:?} did not arrive within {:?} (Content-Length {want:?}); got {:?}",
                            self.name,
                            resp.status_line,
                            self.timeout,
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ))
                }
            }
        }
        resp.body = std::mem::take(&mut self.buf);
        Ok(resp)
    }

    // --- frames ------------------------------------------------------------------

    /// The next frame within the timeout.
    pub fn frame(&mut self) -> Result<Frame> {
        self.frame_until(Instant::now() + self.timeout)
    }

    /// The next frame before `deadline`, as the server sent it. The end of the
    /// connection is an error of kind [`ErrorKind::Closed`] (of kind
    /// [`ErrorKind::Protocol`] inside a frame), the deadline one of kind
    /// [`ErrorKind::Timeout`]; so is a masked frame, which a server must not send.
    pub fn frame_until(&mut self, deadline: Instant) -> Result<Frame> {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                self.seen.push(f.describe());
                if f.masked {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!("[{}] the server sent a masked frame: {f:?}", self.name),
                    ));
                }
                if f.opcode == OP_CLOSE && self.answers_close && !self.close_sent {
                    // The server may already have closed (the stock module does).
                    let code = f.payload.get(..2).unwrap_or_default().to_vec();
                    self.close_sent = true;
                    let mask = self.masks.mask();
                    let _ = self.write(&encode_frame_byte(
                        first_byte(true, OP_CLOSE),
                        &code,
                        Some(mask),
                    ));
                }
                return Ok(f);
            }
            match self.fill(deadline)? {
                Filled::Data => {}
                Filled::Eof if self.buf.is_empty() => {
                    return Err(Error::new(
                        ErrorKind::Closed,
                        format!("[{}] connection closed", self.name),
                    ))
                }
                Filled::Eof => {
                    return Err(Error::new(
                        ErrorKind::Protocol,
                        format!(
                            "[{}] EOF inside a frame; buffered {:?}",
                            self.name, self.buf
                        ),
                    ))
                }
                Filled::Timeout => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!("[{}] no frame; buffered {:?}", self.name, self.buf),
                    ))
                }
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
                    let how = match e.kind() {
                        ErrorKind::Timeout => format!("timed out after {:?}", self.timeout),
                        ErrorKind::Closed => "EOF".to_string(),
                        _ => e.message().to_string(),
                    };
                    return Err(Error::new(
                        e.kind(),
                        format!(
                            "[{}] {how} while waiting for {what}; frames before:\n{}",
                            self.name,
                            skipped.join("\n")
                        ),
                    ));
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
                Err(e) if e.is_timeout() => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "[{}] the server did not close the connection within {:?}; frames: {}",
                            self.name,
                            self.timeout,
                            v.iter().map(Frame::describe).collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
                Err(e) => return Err(e),
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

    // --- messages ----------------------------------------------------------------

    /// The next data message before `deadline` (fragments joined, inflated if it came
    /// compressed). Control frames on the way: a ping is answered when the client
    /// answers pings, a close frame ends the wait with an error of kind
    /// [`ErrorKind::Closed`].
    pub fn message_until(&mut self, deadline: Instant) -> Result<Message> {
        loop {
            let f = self.frame_until(deadline)?;
            let received = self
                .decoder
                .push(f)
                .map_err(|e| Error::new(ErrorKind::Protocol, format!("[{}] {e}", self.name)))?;
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
        Error::new(
            ErrorKind::Closed,
            format!(
                "[{}] close frame {:?} {:?}",
                self.name,
                f.close_code(),
                f.close_reason()
            ),
        )
    }

    /// The next data message within the timeout.
    pub fn message(&mut self) -> Result<Message> {
        self.message_until(Instant::now() + self.timeout)
    }

    /// Registers (NICK, then USER with this client's ident) and waits for 001.
    pub fn register(&mut self, nick: &str) -> Result<()> {
        self.start_register(nick)?;
        self.wait_welcome()
    }

    /// Sends NICK and USER without waiting for 001; names the client `nick`.
    pub fn start_register(&mut self, nick: &str) -> Result<()> {
        self.name = nick.to_string();
        let (ident, realname) = (self.ident.clone(), self.realname.clone());
        self.start_register_as(nick, &ident, &realname)
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

    /// The frames and messages received (the last few hundred), oldest first.
    pub fn seen(&self) -> &[String] {
        self.seen.all()
    }

    /// The last frames received, one a line.
    pub fn recent(&self) -> String {
        self.seen.recent()
    }
}

impl IrcLines for RawConn {
    fn name(&self) -> &str {
        &self.name
    }

    /// One message: compressed when permessage-deflate was agreed.
    fn send_line(&mut self, line: &str) -> Result<()> {
        if self.compress {
            let payload = deflate_message(line.as_bytes());
            self.send_frame_byte(0x80 | RSV1 | self.data_opcode, &payload)
        } else {
            self.send_frame(true, self.data_opcode, line.as_bytes())
        }
    }

    /// Also checks that every data message is one IRC line in one frame: not empty,
    /// without CR or LF (and of the required opcode, if one is).
    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let m = self.message_until(deadline).map_err(|e| {
                let how = match e.kind() {
                    ErrorKind::Timeout => format!("timed out after {:?}", self.timeout),
                    _ => e.message().to_string(),
                };
                Error::new(
                    e.kind(),
                    format!(
                        "[{}] {how} while waiting for {what}; last frames:\n{}",
                        self.name,
                        self.recent()
                    ),
                )
            })?;
            let one_line = !m.payload.is_empty()
                && !m.payload.contains(&b'\r')
                && !m.payload.contains(&b'\n')
                && m.frames == 1
                && self.wanted_opcode.is_none_or(|op| op == m.opcode);
            if !one_line {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "[{}] while waiting for {what}: a message that is not one IRC line \
                         in one frame (of opcode {:?}): {m:?}",
                        self.name, self.wanted_opcode
                    ),
                ));
            }
            self.last_compressed = m.compressed;
            if pred(&m.payload) {
                return Ok(m.payload);
            }
            if let Some(pong) = pong_for(&m.payload) {
                self.send_line(&String::from_utf8_lossy(&pong))?;
            }
        }
    }
}
