//! Keepalive pings for idle connections (`<websocket nativeping pinginterval>`).
//!
//! Reverse proxies drop WebSocket connections that stay idle past their own timer:
//! nginx's `proxy_read_timeout` (60 s by default) counts only what the server sends,
//! Cloudflare's 100 s any traffic. So the server sends a ping frame when it has received
//! nothing, or sent nothing, for `pinginterval`; any frame from the client counts as
//! life. A client that sends nothing for a further `pinginterval` after the ping is
//! considered gone.

/// How often the shim polls every connection's keepalive (and the lingering sockets'
/// timeouts), in seconds: the resolution of `pinginterval` and `closetimeout`.
pub const POLL_PERIOD_SECONDS: u32 = 1;

/// What the caller should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepaliveAction {
    /// Nothing to do.
    Idle,
    /// Send a ping frame.
    Ping,
    /// The client did not answer the ping in time: close the connection.
    TimedOut,
}

/// Tracks when the client was last heard from and when it was last sent something.
#[derive(Clone, Debug)]
pub struct Keepalive {
    interval_ms: u64,
    last_heard_ms: u64,
    last_sent_ms: u64,
    /// Something was sent since the last [`Keepalive::poll`]. The write path has no
    /// clock and is the hottest path of a busy channel, so a send only sets this flag;
    /// the next poll ([`POLL_PERIOD_SECONDS`]) takes it as the time of the send.
    sent_since_poll: bool,
    /// When the unanswered ping went out.
    ping_sent_ms: Option<u64>,
}

impl Keepalive {
    /// Starts the clock at `now_ms` with an idle interval of `interval_ms`.
    pub fn new(interval_ms: u64, now_ms: u64) -> Keepalive {
        Keepalive {
            interval_ms: interval_ms.max(1),
            last_heard_ms: now_ms,
            last_sent_ms: now_ms,
            sent_since_poll: false,
            ping_sent_ms: None,
        }
    }

    /// The client sent something.
    pub fn heard(&mut self, now_ms: u64) {
        self.last_heard_ms = now_ms;
        self.ping_sent_ms = None;
    }

    /// Something was sent to the client.
    pub fn sent(&mut self) {
        self.sent_since_poll = true;
    }

    /// Decides, at `now_ms`, whether to ping or give up.
    pub fn poll(&mut self, now_ms: u64) -> KeepaliveAction {
        if std::mem::take(&mut self.sent_since_poll) {
            self.last_sent_ms = now_ms;
        }
        let idle = |since: u64| now_ms.saturating_sub(since) >= self.interval_ms;
        match self.ping_sent_ms {
            Some(sent) if idle(sent) => KeepaliveAction::TimedOut,
            None if idle(self.last_heard_ms) || idle(self.last_sent_ms) => {
                self.ping_sent_ms = Some(now_ms);
                self.last_sent_ms = now_ms;
                KeepaliveAction::Ping
            }
            Some(_) | None => KeepaliveAction::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_connection_is_pinged_after_the_interval_then_times_out() {
        let mut k = Keepalive::new(60_000, 0);
        assert_eq!(k.poll(59_999), KeepaliveAction::Idle);
        assert_eq!(k.poll(60_000), KeepaliveAction::Ping);
        assert_eq!(k.poll(61_000), KeepaliveAction::Idle);
        assert_eq!(k.poll(119_999), KeepaliveAction::Idle);
        assert_eq!(k.poll(120_000), KeepaliveAction::TimedOut);
    }

    #[test]
    fn traffic_both_ways_resets_the_clock_and_answers_the_ping() {
        let mut k = Keepalive::new(1000, 0);
        k.heard(900);
        k.sent();
        assert_eq!(k.poll(900), KeepaliveAction::Idle);
        assert_eq!(k.poll(1500), KeepaliveAction::Idle);
        assert_eq!(k.poll(1900), KeepaliveAction::Ping);
        // The pong: the ping itself counted as sending.
        k.heard(2000);
        assert_eq!(k.poll(2899), KeepaliveAction::Idle);
        assert_eq!(k.poll(2900), KeepaliveAction::Ping);
    }

    #[test]
    fn a_busy_connection_is_never_pinged() {
        let mut k = Keepalive::new(1000, 0);
        for t in (0..100_000).step_by(500) {
            k.heard(t);
            k.sent();
            assert_eq!(k.poll(t), KeepaliveAction::Idle);
        }
    }

    #[test]
    fn clock_going_backwards_does_not_ping_or_time_out() {
        let mut k = Keepalive::new(1000, 5000);
        assert_eq!(k.poll(0), KeepaliveAction::Idle);
    }

    #[test]
    fn a_client_that_talks_but_is_sent_nothing_is_pinged() {
        // nginx drops a connection the server has been silent on for 60 s, however
        // much the client sends.
        let mut k = Keepalive::new(1000, 0);
        for t in (0..1000).step_by(100) {
            k.heard(t);
            assert_eq!(k.poll(t), KeepaliveAction::Idle);
        }
        k.heard(1000);
        assert_eq!(k.poll(1000), KeepaliveAction::Ping);
        // It keeps talking, which answers the ping.
        k.heard(1500);
        assert_eq!(k.poll(1999), KeepaliveAction::Idle);
        assert_eq!(k.poll(2000), KeepaliveAction::Ping);
    }

    #[test]
    fn sending_counts_from_the_poll_that_sees_it() {
        let mut k = Keepalive::new(1000, 0);
        k.heard(0);
        k.sent();
        assert_eq!(k.poll(500), KeepaliveAction::Idle);
        // Heard nothing since 0: a ping is due at 1000 whatever was sent.
        assert_eq!(k.poll(1000), KeepaliveAction::Ping);
        k.heard(1100);
        k.sent();
        assert_eq!(k.poll(1200), KeepaliveAction::Idle);
        k.heard(1900);
        assert_eq!(k.poll(2199), KeepaliveAction::Idle);
        // Last send seen at 1200.
        assert_eq!(k.poll(2200), KeepaliveAction::Ping);
    }
}
