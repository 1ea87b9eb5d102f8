//! A connection as the module keeps it: the session, the counters it reports to, and
//! its lingering close. What the bridge hands the shim is this, behind a `Box`.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use crate::compression::Spares;
use crate::config::Config;
use crate::counters::Counters;
use crate::handshake::SocketKind;
use crate::irc::LineFramer;
use crate::linger::{Linger, SocketState};
use crate::session::{Ending, ReadReport, ServerClose, Session};
use crate::sink::ByteSink;

/// One connection, counted in the module's [`Counters`].
#[derive(Debug)]
pub struct Connection {
    session: Session,
    counters: Rc<Counters>,
    /// A user's connection, which the shim's timer visits for keepalive (a server
    /// link's is not: it has no user to quit).
    kind: SocketKind,
    upgraded: bool,
    /// While the socket lingers for the client's close frame.
    linger: Option<Linger>,
    /// An ending the next [`Connection::poll_keepalive`] reports, for a failure found
    /// where the shim cannot close the socket (inside a write).
    quit_pending: Option<Ending>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.upgraded {
            self.counters.gone();
        }
        if self.linger.is_some() {
            self.counters.linger_ended();
        }
    }
}

impl Connection {
    /// A connection from `peer` (`None` when it is not an IP address), accepted under
    /// `config`.
    /// `counters` and `spares` are the module's, shared by its connections.
    pub fn new(
        config: Arc<Config>,
        counters: Rc<Counters>,
        spares: Rc<Spares>,
        peer: Option<IpAddr>,
        kind: SocketKind,
    ) -> Connection {
        Connection {
            session: Session::sharing(config, spares, peer, kind),
            counters,
            kind,
            upgraded: false,
            linger: None,
            quit_pending: None,
        }
    }

    /// Gives up on the connection after a bug in the module, counted:
    /// [`Session::fail_internally`].
    pub fn fail_internally(&mut self, out: &mut impl ByteSink) -> Ending {
        self.session.fail_internally(out);
        let ending = Ending::InternalError;
        self.counters.ended(&ending);
        ending
    }

    /// [`Session::note_tls_below`].
    pub fn note_tls_below(&mut self, tls_below: bool) {
        self.session.note_tls_below(tls_below);
    }

    /// [`Session::receive`], counted.
    pub fn receive(
        &mut self,
        input: &mut [u8],
        now_ms: u64,
        lines: &mut impl ByteSink,
        out: &mut impl ByteSink,
    ) -> ReadReport {
        let report = self.session.receive(input, now_ms, lines, out);
        if let Some(upgrade) = &report.upgrade {
            self.upgraded = true;
            self.counters
                .upgraded(upgrade.subprotocol, upgrade.compression.is_some());
        }
        if let Some(ending) = &report.ending {
            self.counters.ended(ending);
        }
        report
    }

    /// `ending` (already counted) is reported by the next
    /// [`Connection::poll_keepalive`], which the shim quits the user on: the
    /// connection is due at once ([`Connection::keepalive_deadline`]).
    pub fn quit_at_next_poll(&mut self, ending: Ending) {
        self.quit_pending = Some(ending);
    }

    /// When the shim's timer should next call [`Connection::poll_keepalive`]: at once
    /// for a pending quit, else [`Session::keepalive_deadline`] (`None`: never). Only
    /// a user's connection is polled.
    pub fn keepalive_deadline(&self) -> Option<u64> {
        if self.kind != SocketKind::User {
            return None;
        }
        if self.quit_pending.is_some() {
            return Some(0);
        }
        self.session.keepalive_deadline()
    }

    /// One write round at `now_ms`: frames every element of the server's send queue
    /// (`bytes` of them in all), then a requested close frame. False while the
    /// handshake is not done: the queue must wait (nothing is framed).
    pub fn send<'a>(
        &mut self,
        elements: impl Iterator<Item = &'a [u8]>,
        bytes: usize,
        now_ms: u64,
        out: &mut impl ByteSink,
    ) -> bool {
        if self.session.holds_output() {
            return false;
        }
        out.reserve(LineFramer::framed_size_hint(bytes));
        for element in elements {
            self.session.send(element, now_ms, out);
        }
        self.session.finish_send(out);
        true
    }

    /// [`Session::server_ping`].
    pub fn server_ping(&mut self, now_ms: u64, out: &mut impl ByteSink) -> bool {
        self.session.server_ping(now_ms, out)
    }

    /// [`Session::request_close`].
    pub fn request_close(&mut self, why: ServerClose, quit_message: &str) {
        self.session.request_close(why, quit_message);
    }

    /// [`Session::poll_keepalive`], counted; the reason to quit with when the client
    /// did not answer.
    pub fn poll_keepalive(&mut self, now_ms: u64, out: &mut impl ByteSink) -> Option<String> {
        if let Some(ending) = self.quit_pending.take() {
            return Some(ending.reason());
        }
        let ending = self.session.poll_keepalive(now_ms, out)?;
        self.counters.ended(&ending);
        Some(ending.reason())
    }

    /// The socket is about to close with all its output written: true when it should
    /// stay open, reading, for the client's close frame ([`crate::linger`]).
    pub fn begin_linger(&mut self, socket: SocketState, now_ms: u64) -> bool {
        self.linger = Linger::begin(&mut self.session, &self.counters, socket, now_ms);
        self.linger.is_some()
    }

    /// Bytes that arrived while lingering; true once the wait is over.
    pub fn linger_read(&mut self, input: &mut [u8], now_ms: u64) -> bool {
        // While closing nothing is delivered or sent: the sinks stay empty.
        let (mut lines, mut out) = (Vec::new(), Vec::new());
        self.session.receive(input, now_ms, &mut lines, &mut out);
        !self.session.awaits_close_reply()
    }

    /// True once the linger timeout has passed (counted as a timeout).
    pub fn linger_expired(&self, now_ms: u64) -> bool {
        match &self.linger {
            Some(linger) if linger.expired(now_ms) => {
                self.counters.linger_timed_out();
                true
            }
            Some(_) => false,
            None => true,
        }
    }
}
