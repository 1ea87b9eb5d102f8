//! The test kit's RFC 6455 client codec with soak's upgrade requests, an xorshift
//! RNG, and blocking IRC / WebSocket clients with deadlines for the stress scenarios.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::server::ORIGIN;

use testkit::irc::take_line;
pub use testkit::ws::{
    close_payload, encode_frame, find, parse_frame, Frame, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
    OP_PONG, OP_TEXT, SAMPLE_ACCEPT,
};

/// xorshift64*: deterministic per seed, good enough for scheduling.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        Duration::from_millis(self.range(lo.as_millis() as u64, hi.as_millis() as u64))
    }
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next() as u32).to_ne_bytes()
    }
}

pub fn upgrade_request(port: u16, origin: &str, protocol: Option<&str>) -> Vec<u8> {
    upgrade_request_with(port, origin, protocol, &[])
}

/// An upgrade request with extra "Name: value" header lines.
pub fn upgrade_request_with(
    port: u16,
    origin: &str,
    protocol: Option<&str>,
    extra: &[&str],
) -> Vec<u8> {
    let protocol = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}"));
    let lines: Vec<&str> = protocol
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    testkit::ws::upgrade_request(&format!("127.0.0.1:{port}"), origin, &lines)
}

/// Checks a response head: `Ok(())` for a 101 with the right accept value.
pub fn check_101(head: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(head);
    if !text.starts_with("HTTP/1.1 101") {
        return Err(format!(
            "handshake refused: {:?}",
            text.lines().next().unwrap_or_default()
        ));
    }
    let ok = text.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == SAMPLE_ACCEPT
        })
    });
    if !ok {
        return Err(format!(
            "101 without the right Sec-WebSocket-Accept: {text:?}"
        ));
    }
    Ok(())
}

/// The command or numeric of a server line (":prefix CMD ...").
pub fn command(line: &str) -> &str {
    // A slice between ASCII spaces of a str is a str.
    std::str::from_utf8(testkit::irc::command(line.as_bytes())).unwrap()
}

/// A chat payload whose filler can be checked by any receiver: "<nick> <seq> <filler>".
pub fn chat_text(nick: &str, seq: u64) -> String {
    format!("{nick} {seq} {}", filler(nick, seq))
}

fn filler(nick: &str, seq: u64) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in nick.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    h ^= seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let len = 8 + (h % 180) as usize;
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut r = Rng::new(h);
    (0..len)
        .map(|_| alphabet[(r.next() % alphabet.len() as u64) as usize] as char)
        .collect()
}

/// Checks "<nick> <seq> <filler>"; returns (nick, seq) when intact.
pub fn check_chat(text: &str) -> Option<(String, u64)> {
    let mut it = text.splitn(3, ' ');
    let nick = it.next()?;
    let seq: u64 = it.next()?.parse().ok()?;
    let f = it.next()?;
    (f == filler(nick, seq)).then(|| (nick.to_string(), seq))
}

/// ":nick!user@host PRIVMSG #chan :text" -> (nick, chan, text).
pub fn parse_privmsg(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix(':')?;
    let (prefix, rest) = rest.split_once(' ')?;
    let nick = prefix.split('!').next()?;
    let rest = rest.strip_prefix("PRIVMSG ")?;
    let (chan, text) = rest.split_once(" :")?;
    Some((nick, chan, text))
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

// ---------------------------------------------------------------------------------------
// Blocking clients (stress scenarios)
// ---------------------------------------------------------------------------------------

pub enum Got<T> {
    Item(T),
    Eof,
    Timeout,
}

/// The last lines or frames a client received, for failure messages (at most 400).
#[derive(Default)]
pub struct Seen(Vec<String>);

impl Seen {
    pub fn push(&mut self, s: String) {
        if self.0.len() > 400 {
            self.0.drain(..200);
        }
        self.0.push(s);
    }

    /// The last 15.
    pub fn recent(&self) -> String {
        let n = self.0.len();
        self.0[n.saturating_sub(15)..].join("\n")
    }
}

/// A plain IRC client.
pub struct Irc {
    pub nick: String,
    stream: TcpStream,
    buf: Vec<u8>,
    pub seen: Seen,
}

impl Irc {
    pub fn start(port: u16, nick: &str) -> Result<Irc, String> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect IRC: {e}"))?;
        stream.set_nodelay(true).ok();
        let mut c = Irc {
            nick: nick.to_string(),
            stream,
            buf: Vec::new(),
            seen: Seen::default(),
        };
        c.send(&format!("NICK {nick}"))?;
        c.send("USER u 0 * :soak plain user")?;
        Ok(c)
    }

    pub fn send(&mut self, line: &str) -> Result<(), String> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| format!("[{}] write: {e}", self.nick))
    }

    pub fn read_line(&mut self, deadline: Instant) -> Got<String> {
        loop {
            if let Some(line) = take_line(&mut self.buf) {
                let s = String::from_utf8_lossy(&line).into_owned();
                self.seen.push(s.clone());
                return Got::Item(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return Got::Timeout;
            }
            self.stream.set_read_timeout(Some(deadline - now)).ok();
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Got::Eof,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if is_timeout(&e) => return Got::Timeout,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Got::Eof,
            }
        }
    }

    /// Waits for a line matching `pred`, answering server PINGs.
    pub fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_line(deadline) {
                Got::Item(l) => {
                    if pred(&l) {
                        return Ok(l);
                    }
                    if let Some(t) = l.strip_prefix("PING ") {
                        self.send(&format!("PONG {t}"))?;
                    }
                }
                Got::Eof => {
                    return Err(format!(
                        "[{}] connection closed while waiting for {what}; last lines:\n{}",
                        self.nick,
                        self.recent()
                    ))
                }
                Got::Timeout => {
                    return Err(format!(
                        "[{}] timed out ({timeout:?}) waiting for {what}; last lines:\n{}",
                        self.nick,
                        self.recent()
                    ))
                }
            }
        }
    }

    pub fn recent(&self) -> String {
        self.seen.recent()
    }

    /// The lines of `/STATS W` (the module's counters), without the numeric prefix.
    pub fn stats_w(&mut self, timeout: Duration) -> Result<Vec<String>, String> {
        self.send("STATS W")?;
        let mut lines = Vec::new();
        self.expect("219 (end of STATS W)", timeout, |l| {
            if command(l) == "210" {
                lines.push(
                    l.splitn(4, ' ')
                        .nth(3)
                        .unwrap_or_default()
                        .trim_start_matches(':')
                        .to_string(),
                );
            }
            command(l) == "219"
        })?;
        Ok(lines)
    }

    pub fn wait_welcome(&mut self, timeout: Duration) -> Result<(), String> {
        self.expect("001", timeout, |l| command(l) == "001")
            .map(|_| ())
    }

    pub fn oper(&mut self, timeout: Duration) -> Result<(), String> {
        self.send(&format!(
            "OPER {} {}",
            crate::server::OPER_NAME,
            crate::server::OPER_PASS
        ))?;
        self.expect("381 (you are now an IRC operator)", timeout, |l| {
            command(l) == "381"
        })
        .map(|_| ())
    }
}

/// What the plain and the WebSocket client share: an IRC line out, and a wait for a
/// line in that satisfies a predicate.
pub trait IrcLines {
    fn send_irc(&mut self, line: &str) -> Result<(), String>;
    fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String, String>;

    fn join(&mut self, chan: &str, timeout: Duration) -> Result<(), String> {
        self.send_irc(&format!("JOIN {chan}"))?;
        self.wait_line(&format!("366 for {chan}"), timeout, &mut |l| {
            command(l) == "366"
        })
        .map(|_| ())
    }

    /// Round trip: when it returns, the server has processed every earlier line.
    /// Returns the lines seen before the PONG.
    fn sync(&mut self, token: &str, timeout: Duration) -> Result<Vec<String>, String> {
        self.send_irc(&format!("PING :{token}"))?;
        let want = format!(":{token}");
        let mut before = Vec::new();
        self.wait_line(&format!("PONG {token}"), timeout, &mut |l| {
            if command(l) == "PONG" && l.ends_with(&want) {
                true
            } else {
                before.push(l.to_string());
                false
            }
        })?;
        Ok(before)
    }
}

impl IrcLines for Irc {
    fn send_irc(&mut self, line: &str) -> Result<(), String> {
        self.send(line)
    }
    fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String, String> {
        self.expect(what, timeout, pred)
    }
}

impl IrcLines for Ws {
    fn send_irc(&mut self, line: &str) -> Result<(), String> {
        self.send_line(line)
    }
    fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String, String> {
        self.expect_line(what, timeout, pred)
    }
}

/// A raw WebSocket client on a blocking socket.
pub struct Ws {
    pub name: String,
    pub stream: TcpStream,
    buf: Vec<u8>,
    rng: Rng,
    pub seen: Seen,
}

impl Ws {
    pub fn connect(port: u16, name: &str) -> Result<Ws, String> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("[{name}] connect: {e}"))?;
        stream.set_nodelay(true).ok();
        Ok(Ws {
            name: name.to_string(),
            stream,
            buf: Vec::new(),
            rng: Rng::new(
                name.bytes()
                    .fold(7u64, |h, b| h.wrapping_mul(31) ^ b as u64),
            ),
            seen: Seen::default(),
        })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("[{}] write: {e}", self.name))
    }

    /// Sends the upgrade request and reads the response head; returns the status code.
    pub fn handshake(
        &mut self,
        port: u16,
        origin: &str,
        protocol: Option<&str>,
        timeout: Duration,
    ) -> Result<u16, String> {
        self.handshake_with(port, origin, protocol, &[], timeout)
    }

    pub fn handshake_with(
        &mut self,
        port: u16,
        origin: &str,
        protocol: Option<&str>,
        extra: &[&str],
        timeout: Duration,
    ) -> Result<u16, String> {
        let req = upgrade_request_with(port, origin, protocol, extra);
        self.send_raw(&req)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let text = String::from_utf8_lossy(&head).into_owned();
                let status = text
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok())
                    .ok_or_else(|| format!("[{}] bad status line: {text:?}", self.name))?;
                if status == 101 {
                    check_101(&head).map_err(|e| format!("[{}] {e}", self.name))?;
                }
                return Ok(status);
            }
            match self.fill(deadline) {
                Got::Item(()) => {}
                Got::Eof => {
                    return Err(format!(
                        "[{}] EOF before the response head: {:?}",
                        self.name,
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Got::Timeout => {
                    return Err(format!(
                        "[{}] timed out waiting for the response head",
                        self.name
                    ))
                }
            }
        }
    }

    /// Connects and upgrades with the soak origin; Err unless 101.
    pub fn upgrade(
        port: u16,
        name: &str,
        protocol: Option<&str>,
        timeout: Duration,
    ) -> Result<Ws, String> {
        Ws::upgrade_with(port, name, protocol, &[], timeout)
    }

    pub fn upgrade_with(
        port: u16,
        name: &str,
        protocol: Option<&str>,
        extra: &[&str],
        timeout: Duration,
    ) -> Result<Ws, String> {
        let mut c = Ws::connect(port, name)?;
        let st = c.handshake_with(port, ORIGIN, protocol, extra, timeout)?;
        if st != 101 {
            return Err(format!("[{name}] expected 101, got {st}"));
        }
        Ok(c)
    }

    fn fill(&mut self, deadline: Instant) -> Got<()> {
        let now = Instant::now();
        if now >= deadline {
            return Got::Timeout;
        }
        self.stream.set_read_timeout(Some(deadline - now)).ok();
        let mut tmp = [0u8; 65536];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return Got::Eof,
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Got::Item(());
                }
                Err(e) if is_timeout(&e) => return Got::Timeout,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Got::Eof,
            }
        }
    }

    pub fn read_frame(&mut self, deadline: Instant) -> Got<Frame> {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                self.seen.push(match f.opcode {
                    OP_TEXT | OP_BINARY => String::from_utf8_lossy(&f.payload).into_owned(),
                    OP_CLOSE => format!("<close {:?} {:?}>", f.close_code(), f.close_reason()),
                    op => format!("<opcode {op} {:?}>", String::from_utf8_lossy(&f.payload)),
                });
                return Got::Item(f);
            }
            match self.fill(deadline) {
                Got::Item(()) => {}
                Got::Eof => return Got::Eof,
                Got::Timeout => return Got::Timeout,
            }
        }
    }

    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let m = self.rng.mask();
        self.send_raw(&encode_frame(fin, opcode, payload, Some(m)))
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        self.send_frame(true, OP_TEXT, line.as_bytes())
    }

    /// Waits for a data frame whose text satisfies `pred`; answers IRC PINGs and
    /// WebSocket pings. A close frame or EOF is an error.
    pub fn expect_line(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline) {
                Got::Item(f) if f.is_data() => {
                    let l = String::from_utf8_lossy(&f.payload).into_owned();
                    if pred(&l) {
                        return Ok(l);
                    }
                    if let Some(t) = l.strip_prefix("PING ") {
                        self.send_line(&format!("PONG {t}"))?;
                    }
                }
                Got::Item(f) if f.opcode == OP_PING => {
                    self.send_frame(true, OP_PONG, &f.payload.clone())?
                }
                Got::Item(f) if f.opcode == OP_CLOSE => {
                    return Err(format!(
                        "[{}] close frame {:?} {:?} while waiting for {what}; last frames:\n{}",
                        self.name,
                        f.close_code(),
                        f.close_reason(),
                        self.recent()
                    ))
                }
                Got::Item(_) => {}
                Got::Eof => {
                    return Err(format!(
                        "[{}] EOF while waiting for {what}; last frames:\n{}",
                        self.name,
                        self.recent()
                    ))
                }
                Got::Timeout => {
                    return Err(format!(
                        "[{}] timed out ({timeout:?}) waiting for {what}; last frames:\n{}",
                        self.name,
                        self.recent()
                    ))
                }
            }
        }
    }

    pub fn recent(&self) -> String {
        self.seen.recent()
    }

    /// Reads for `d`, answering WebSocket and IRC pings; returns the WebSocket pings
    /// answered. A close frame or EOF is an error.
    pub fn answer_pings_for(&mut self, d: Duration) -> Result<u32, String> {
        let deadline = Instant::now() + d;
        let mut n = 0;
        loop {
            match self.read_frame(deadline) {
                Got::Item(f) if f.opcode == OP_PING => {
                    n += 1;
                    self.send_frame(true, OP_PONG, &f.payload.clone())?;
                }
                Got::Item(f) if f.opcode == OP_CLOSE => {
                    return Err(format!(
                        "[{}] close frame {:?} {:?}",
                        self.name,
                        f.close_code(),
                        f.close_reason()
                    ))
                }
                Got::Item(f) if f.is_data() => {
                    let l = String::from_utf8_lossy(&f.payload).into_owned();
                    if let Some(t) = l.strip_prefix("PING ") {
                        self.send_line(&format!("PONG {t}"))?;
                    }
                }
                Got::Item(_) => {}
                Got::Eof => return Err(format!("[{}] EOF", self.name)),
                Got::Timeout => return Ok(n),
            }
        }
    }

    /// Sends NICK and USER (with `realname`) without waiting for 001.
    pub fn start_register(&mut self, nick: &str, realname: &str) -> Result<(), String> {
        self.send_line(&format!("NICK {nick}"))?;
        self.send_line(&format!("USER ws 0 * :{realname}"))
    }

    pub fn register(&mut self, nick: &str, timeout: Duration) -> Result<(), String> {
        self.start_register(nick, "soak web user")?;
        self.expect_line("001", timeout, |l| command(l) == "001")
            .map(|_| ())
    }

    /// Reads every frame until EOF (or the timeout); returns them.
    pub fn frames_until_eof(&mut self, timeout: Duration) -> Result<Vec<Frame>, String> {
        let deadline = Instant::now() + timeout;
        let mut v = Vec::new();
        loop {
            match self.read_frame(deadline) {
                Got::Item(f) => v.push(f),
                Got::Eof => {
                    if !self.buf.is_empty() {
                        return Err(format!(
                            "[{}] EOF inside a frame ({} bytes buffered)",
                            self.name,
                            self.buf.len()
                        ));
                    }
                    return Ok(v);
                }
                Got::Timeout => {
                    return Err(format!(
                    "[{}] the server did not close the connection within {timeout:?}; frames: {}",
                    self.name,
                    v.iter()
                        .map(|f| format!(
                            "op{} {:?}",
                            f.opcode,
                            String::from_utf8_lossy(&f.payload)
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                }
            }
        }
    }

    /// Bytes (of any kind) until EOF, for connections that were never upgraded.
    pub fn bytes_until_eof(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Got::Item(()) => {}
                Got::Eof => return Ok(std::mem::take(&mut self.buf)),
                Got::Timeout => {
                    return Err(format!(
                        "[{}] not closed within {timeout:?}; got {:?}",
                        self.name,
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
