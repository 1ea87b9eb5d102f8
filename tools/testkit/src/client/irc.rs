//! A plain IRC client over TCP.

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use super::{
    fill, pong_for, tcp, Error, ErrorKind, Filled, IrcLines, Result, Seen, DEFAULT_TIMEOUT,
};
use crate::irc::take_line;

/// A plain IRC client: lines with CR LF on a TCP connection.
pub struct IrcClient {
    pub nick: String,
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Every wait's bound unless a deadline is given.
    pub timeout: Duration,
    seen: Seen,
}

impl IrcClient {
    /// Connects to 127.0.0.1:`port`.
    pub fn connect(port: u16) -> Result<IrcClient> {
        Ok(IrcClient::over(tcp(None, port)?))
    }

    /// Connects to 127.0.0.1:`port` from `src` (see [`crate::net::connect_from`]).
    pub fn connect_from(src: Ipv4Addr, port: u16) -> Result<IrcClient> {
        Ok(IrcClient::over(tcp(Some(src), port)?))
    }

    /// A client on a connected stream.
    pub fn over(stream: TcpStream) -> IrcClient {
        IrcClient {
            nick: String::new(),
            stream,
            buf: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            seen: Seen::default(),
        }
    }

    /// Every wait of this client bounded by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> IrcClient {
        self.timeout = timeout;
        self
    }

    /// Connects and sends NICK/USER (`USER u 0 * :Plain user`) without waiting: InspIRCd
    /// completes registrations on a once-a-second tick, so tests start several before
    /// waiting for any.
    pub fn start(port: u16, nick: &str) -> Result<IrcClient> {
        IrcClient::connect(port)?.started(nick)
    }

    /// This client after NICK/USER (as [`IrcClient::start`]).
    pub fn started(mut self, nick: &str) -> Result<IrcClient> {
        self.nick = nick.to_string();
        self.start_register_as(nick, "u", "Plain user")?;
        Ok(self)
    }

    /// Connects, registers as `nick` and waits for 001.
    pub fn register(port: u16, nick: &str) -> Result<IrcClient> {
        let mut c = IrcClient::start(port, nick)?;
        c.wait_welcome()?;
        Ok(c)
    }

    /// Sends one line (CR LF added).
    pub fn send(&mut self, line: &str) -> Result<()> {
        self.send_raw(format!("{line}\r\n").as_bytes())
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("[{}] write to the IRC socket: {e}", self.nick),
            )
        })
    }

    /// The next line (without CR LF) within the timeout.
    pub fn line(&mut self) -> Result<Vec<u8>> {
        self.line_until(Instant::now() + self.timeout)
    }

    /// The next line before `deadline`; the end of the connection is an error of kind
    /// [`ErrorKind::Closed`], the deadline one of kind [`ErrorKind::Timeout`].
    pub fn line_until(&mut self, deadline: Instant) -> Result<Vec<u8>> {
        loop {
            if let Some(line) = take_line(&mut self.buf) {
                self.seen.push(String::from_utf8_lossy(&line).into_owned());
                return Ok(line);
            }
            let filled = fill(&mut self.stream, &mut self.buf, deadline).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("[{}] IRC read error: {e}", self.nick),
                )
            })?;
            match filled {
                Filled::Data => {}
                Filled::Eof => {
                    return Err(Error::new(
                        ErrorKind::Closed,
                        format!(
                            "[{}] connection closed; last lines:\n{}",
                            self.nick,
                            self.recent()
                        ),
                    ))
                }
                Filled::Timeout => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!("[{}] no line; last lines:\n{}", self.nick, self.recent()),
                    ))
                }
            }
        }
    }

    /// Reads (and drops) lines until the server closes the connection.
    pub fn expect_eof(&mut self, what: &str) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.line_until(deadline) {
                Ok(_) => {}
                Err(e) if e.is_closed() => return Ok(()),
                Err(e) if e.is_timeout() => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "[{}] connection not closed within {:?} ({what}); last lines:\n{}",
                            self.nick,
                            self.timeout,
                            self.recent()
                        ),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The lines received (the last few hundred), oldest first.
    pub fn seen(&self) -> &[String] {
        self.seen.all()
    }

    /// The last lines received, one a line.
    pub fn recent(&self) -> String {
        self.seen.recent()
    }
}

impl IrcLines for IrcClient {
    fn name(&self) -> &str {
        &self.nick
    }

    fn send_line(&mut self, line: &str) -> Result<()> {
        self.send(line)
    }

    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let line = self.line_until(deadline).map_err(|e| {
                let how = match e.kind() {
                    ErrorKind::Timeout => format!("timed out after {:?}", self.timeout),
                    ErrorKind::Closed => "connection closed".to_string(),
                    _ => e.message().to_string(),
                };
                Error::new(
                    e.kind(),
                    format!(
                        "[{}] {how} while waiting for {what}; last lines:\n{}",
                        self.nick,
                        self.recent()
                    ),
                )
            })?;
            if pred(&line) {
                return Ok(line);
            }
            if let Some(mut pong) = pong_for(&line) {
                pong.extend_from_slice(b"\r\n");
                self.send_raw(&pong)?;
            }
        }
    }
}
