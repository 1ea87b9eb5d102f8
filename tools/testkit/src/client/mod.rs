//! The blocking client, [`Client`] (plain IRC, or HTTP and RFC 6455 by hand with
//! permessage-deflate when the server agrees), and [`IrcLines`], the IRC conversation a
//! test has with it or with any other client (the integration tests' tungstenite one).
//!
//! Every call returns a [`Result`]; tests call `.expect()` on it, tools pass it on.
//! Every wait is bounded: by the client's `timeout` (from the call on) or by a deadline
//! given, and a failed wait's [`Error`] says what was awaited and what arrived instead
//! (the client's last lines or frames), so that `.expect()` prints all of it.

mod conn;

use std::fmt;
use std::time::Duration;

pub use conn::Client;

use crate::irc::{command_str, is_numeric};

/// How long a client waits for anything unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines or frames a client remembers for failure messages (the oldest half is
/// dropped when this many are kept).
const SEEN_LIMIT: usize = 400;
/// How many of them a failure message shows.
const SEEN_SHOWN: usize = 25;

/// Why a client call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The deadline passed first.
    Timeout,
    /// The server closed the connection (EOF, reset), or sent a close frame where a
    /// message was awaited.
    Closed,
    /// The server broke the protocol (HTTP, RFC 6455, RFC 7692), or refused the upgrade.
    Protocol,
    /// A socket call failed.
    Io,
}

/// A failed call: its kind and a message saying what was awaited and what was seen.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The result of every client call.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    pub fn is_closed(&self) -> bool {
        self.kind == ErrorKind::Closed
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context` in front of its message.
    pub fn context(self, context: &str) -> Error {
        Error {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }

    /// The same error with `detail` after its message.
    pub fn detail(self, detail: &str) -> Error {
        Error {
            kind: self.kind,
            message: format!("{}, {detail}", self.message),
        }
    }
}

/// The message as it is, so that `.expect()` shows it readably (line breaks and all).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Tools keep their errors as text.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message
    }
}

/// The last lines or frames a client received, for failure messages.
#[derive(Clone, Debug, Default)]
pub struct Seen(Vec<String>);

impl Seen {
    pub fn push(&mut self, s: String) {
        if self.0.len() >= SEEN_LIMIT {
            self.0.drain(..SEEN_LIMIT / 2);
        }
        self.0.push(s);
    }

    /// Everything kept, oldest first.
    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// The last few, one a line.
    pub fn recent(&self) -> String {
        let n = self.0.len();
        self.0
            .get(n.saturating_sub(SEEN_SHOWN)..)
            .unwrap_or_default()
            .join("\n")
    }
}

/// The IRC conversation a test has with the server over any client: lines out, a wait
/// for a line in (answering the server's PINGs on the way), and what is built on them.
pub trait IrcLines {
    /// Who this client is, in failure messages.
    fn name(&self) -> &str;

    /// Sends one IRC line (without CR LF).
    fn send_line(&mut self, line: &str) -> Result<()>;

    /// Reads lines until one satisfies `pred`, answering the server's PINGs; returns
    /// that line. An error (timeout, close) says what was awaited and the last lines.
    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) -> Result<Vec<u8>>;

    /// [`IrcLines::wait_line`] with a closure.
    fn expect_line(&mut self, what: &str, mut pred: impl FnMut(&[u8]) -> bool) -> Result<Vec<u8>>
    where
        Self: Sized,
    {
        self.wait_line(what, &mut pred)
    }

    /// [`IrcLines::wait_line`] on lines as text (lossily decoded).
    fn expect_str(&mut self, what: &str, mut pred: impl FnMut(&str) -> bool) -> Result<String>
    where
        Self: Sized,
    {
        self.wait_line(what, &mut |l| pred(&String::from_utf8_lossy(l)))
            .map(|l| String::from_utf8_lossy(&l).into_owned())
    }

    /// Sends NICK and USER (`ident`, `realname`) without waiting for 001.
    fn start_register_as(&mut self, nick: &str, ident: &str, realname: &str) -> Result<()> {
        self.send_line(&format!("NICK {nick}"))?;
        self.send_line(&format!("USER {ident} 0 * :{realname}"))
    }

    /// Waits for 001.
    fn wait_welcome(&mut self) -> Result<()> {
        self.wait_line("numeric 001", &mut |l| is_numeric(l, "001"))
            .map(drop)
    }

    /// Round trip: when it returns, the server has done everything it does for the
    /// lines sent before. Returns the lines that came before the PONG.
    fn sync(&mut self, token: &str) -> Result<Vec<String>> {
        self.send_line(&format!("PING :{token}"))?;
        let want = format!(":{token}");
        let mut before = Vec::new();
        self.wait_line(&format!("PONG {token}"), &mut |l| {
            let s = String::from_utf8_lossy(l);
            let pong = command_str(&s) == "PONG" && s.ends_with(&want);
            if !pong {
                before.push(s.into_owned());
            }
            pong
        })?;
        Ok(before)
    }

    /// JOINs `chan` and waits for the end of its NAMES (366).
    fn join(&mut self, chan: &str) -> Result<()> {
        self.send_line(&format!("JOIN {chan}"))?;
        self.wait_line(&format!("end of NAMES for {chan}"), &mut |l| {
            is_numeric(l, "366")
        })
        .map(drop)
    }

    /// OPERs up as the test kit's configured oper and waits for 381.
    fn oper(&mut self) -> Result<()> {
        self.send_line(&format!(
            "OPER {} {}",
            crate::inspircd::OPER_NAME,
            crate::inspircd::OPER_PASS
        ))?;
        self.wait_line("381 (you are now an IRC operator)", &mut |l| {
            is_numeric(l, "381")
        })
        .map(drop)
    }

    /// The numerics of a `WHOIS nick`, up to and including 318 (end of WHOIS).
    fn whois(&mut self, nick: &str) -> Result<Vec<String>> {
        self.send_line(&format!("WHOIS {nick}"))?;
        let mut lines = Vec::new();
        loop {
            let line = self.wait_line("a WHOIS reply", &mut |l| {
                let c = crate::irc::command(l);
                l.starts_with(b":") && c.len() == 3 && c.starts_with(b"3")
            })?;
            let end = is_numeric(&line, "318");
            lines.push(String::from_utf8_lossy(&line).into_owned());
            if end {
                return Ok(lines);
            }
        }
    }

    /// The lines of `/STATS W` (the module's counters), without the numeric prefix.
    fn stats_w(&mut self) -> Result<Vec<String>> {
        self.send_line("STATS W")?;
        let mut lines = Vec::new();
        self.wait_line("219 (end of STATS W)", &mut |l| {
            if is_numeric(l, "210") {
                let s = String::from_utf8_lossy(l);
                lines.push(
                    s.splitn(4, ' ')
                        .nth(3)
                        .unwrap_or_default()
                        .trim_start_matches(':')
                        .to_string(),
                );
            }
            is_numeric(l, "219")
        })?;
        Ok(lines)
    }
}

/// The PONG that answers a server's `PING <token>` line, if `line` is one.
pub fn pong_for(line: &[u8]) -> Option<Vec<u8>> {
    let token = line.strip_prefix(b"PING ")?;
    let mut pong = b"PONG ".to_vec();
    pong.extend_from_slice(token);
    Some(pong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_well() {
        let e = Error::new(ErrorKind::Timeout, "[x] timed out waiting for 001");
        assert!(e.is_timeout() && !e.is_closed());
        assert_eq!(
            format!("{:?}", e.clone().context("the plain user")),
            "Timeout: the plain user: [x] timed out waiting for 001"
        );
        assert_eq!(String::from(e), "[x] timed out waiting for 001");
        assert_eq!(pong_for(b"PING :abc"), Some(b"PONG :abc".to_vec()));
        assert_eq!(pong_for(b":s PING :abc"), None);
        let mut seen = Seen::default();
        for i in 0..1000 {
            seen.push(i.to_string());
        }
        assert!(seen.all().len() <= SEEN_LIMIT);
        assert!(seen.recent().ends_with("998\n999"));
    }
}
