//! Lingering close: after the server's close frame, the socket stays open until the
//! client's close frame arrives or `<websocket closetimeout>` passes.
//!
//! RFC 6455 7.1.1 has the server close TCP once it has received the client's close. A
//! server that closes at once makes the client's close reply meet a closed socket (the
//! kernel answers it with a reset), and Firefox then reports every server-initiated
//! close, after QUIT or an unload, as unclean (`wasClean: false`). The IRC side of the
//! quit is not held up: the user is gone from the network at once; only the socket
//! waits, in the shim's hands, reading and dropping what the client still sends
//! ([`crate::session::Session::awaits_close_reply`] says when the reply has come).
//!
//! The wait is bounded three ways: per socket by `closetimeout`
//! ([`crate::config::Limits::close_timeout_ms`], 2 s by default), in number by
//! [`MAX_LINGERING_CLOSES`] (beyond it a socket closes at once, as before), and on
//! module unload by [`UNLOAD_LINGER_MS`], the longest the server pauses so that no
//! socket outlives the module's code.

use crate::counters::Counters;
use crate::session::Session;

/// Most sockets that may wait for a close reply at once; one more closes at once. Each
/// holds a file descriptor and a few hundred bytes for at most `closetimeout` (the shim
/// checks timeouts every [`crate::keepalive::POLL_PERIOD_SECONDS`], so up to that
/// much longer).
pub const MAX_LINGERING_CLOSES: u64 = 4096;

/// On module unload (or server shutdown) the server waits at most this long, in
/// milliseconds, for the close replies of the sockets still lingering, then closes
/// them: the module's code cannot outlive its unloading.
pub const UNLOAD_LINGER_MS: u64 = 1000;

/// What the shim knows of a closing socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketState {
    /// The client's bytes cannot be handed over as they are (TLS below the hook): any
    /// bytes count as its close reply.
    pub opaque: bool,
    /// Everything queued for the client was written.
    pub drained: bool,
}

/// One socket waiting for its client's close frame.
#[derive(Debug)]
pub struct Linger {
    deadline_ms: u64,
}

impl Linger {
    /// Starts waiting, at `now_ms`, for at most the session's `closetimeout`, if it
    /// awaits a close reply and the number of lingering sockets allows; `opaque` when
    /// the caller cannot hand over the client's bytes as they are (TLS), so that any
    /// bytes count as the reply.
    pub fn begin(
        session: &mut Session,
        counters: &Counters,
        socket: SocketState,
        now_ms: u64,
    ) -> Option<Linger> {
        let timeout_ms = session.config().limits.close_timeout_ms;
        // Output still queued (a client that stopped reading) may hold the close frame
        // itself: the client cannot answer what it has not got.
        if timeout_ms == 0 || !socket.drained || !session.awaits_close_reply() {
            return None;
        }
        if counters.lingering() >= MAX_LINGERING_CLOSES {
            counters.linger_refused();
            return None;
        }
        if socket.opaque {
            session.close_reply_is_opaque();
        }
        counters.linger_started();
        Some(Linger {
            deadline_ms: now_ms.saturating_add(timeout_ms),
        })
    }

    /// Whether the wait is over at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.deadline_ms
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::handshake::SocketKind;
    use crate::session::test_client::REQUEST;
    use crate::session::ServerClose;

    const PLAIN: SocketState = SocketState {
        opaque: false,
        drained: true,
    };

    fn closing_session(close_timeout_ms: u64) -> Session {
        let mut config = Config::with_origins(&["https://chat.example.com"]);
        config.limits.close_timeout_ms = close_timeout_ms;
        let mut session =
            Session::new(Arc::new(config), "192.0.2.1".parse().ok(), SocketKind::User);
        let mut request = REQUEST.to_vec();
        session.receive(&mut request, 0, &mut Vec::new(), &mut Vec::new());
        session.request_close(ServerClose::Quit, "bye");
        session.finish_send(&mut Vec::new());
        session
    }

    #[test]
    fn a_closing_session_lingers_until_its_timeout() {
        let counters = Counters::default();
        let mut session = closing_session(2000);
        let linger = Linger::begin(&mut session, &counters, PLAIN, 1000).expect("lingers");
        assert_eq!(counters.lingering(), 1);
        assert!(!linger.expired(2999));
        assert!(linger.expired(3000));
    }

    #[test]
    fn no_linger_with_a_zero_timeout_or_nothing_to_wait_for() {
        let counters = Counters::default();
        assert!(Linger::begin(&mut closing_session(0), &counters, PLAIN, 0).is_none());
        let mut open = closing_session(2000);
        // The client's close arrives before the socket closes.
        let mut reply = crate::session::test_client::frame_with(0x88, true, b"\x03\xe8");
        open.receive(&mut reply, 0, &mut Vec::new(), &mut Vec::new());
        assert!(Linger::begin(&mut open, &counters, PLAIN, 0).is_none());
        assert_eq!(counters.lingering(), 0);
    }

    #[test]
    fn no_linger_while_output_is_still_queued() {
        let counters = Counters::default();
        let undrained = SocketState {
            drained: false,
            ..PLAIN
        };
        assert!(Linger::begin(&mut closing_session(2000), &counters, undrained, 0).is_none());
        assert_eq!(counters.lingering(), 0);
    }

    #[test]
    fn beyond_the_limit_sockets_close_at_once() {
        let counters = Counters::default();
        for _ in 0..MAX_LINGERING_CLOSES {
            counters.linger_started();
        }
        assert!(Linger::begin(&mut closing_session(2000), &counters, PLAIN, 0).is_none());
        assert_eq!(counters.lingering(), MAX_LINGERING_CLOSES);
        assert!(counters
            .report()
            .contains(&"WebSocket close replies not awaited (too many waiting): 1".to_owned()));
    }

    #[test]
    fn an_opaque_linger_ends_at_the_first_bytes() {
        let counters = Counters::default();
        let mut session = closing_session(2000);
        let tls = SocketState {
            opaque: true,
            ..PLAIN
        };
        Linger::begin(&mut session, &counters, tls, 0).expect("lingers");
        let mut bytes = *b"\x17\x03\x03";
        session.receive(&mut bytes, 0, &mut Vec::new(), &mut Vec::new());
        assert!(!session.awaits_close_reply());
    }
}
