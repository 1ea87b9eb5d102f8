//! Keepalive pings for idle connections (`<websocket nativeping pinginterval>`).
//!
//! Reverse proxies drop WebSocket connections that stay idle past their own timer:
//! nginx's `proxy_read_timeout` (60 s by default) counts only what the server sends,
//! Cloudflare's 100 s any traffic. So the server sends a ping frame when it has received
//! nothing, or sent nothing, for `pinginterval`; any frame from the client counts as
//! life. A client that sends nothing for a further `pinginterval` after the ping is
//! considered gone.

/// How often the shim's timer runs, in seconds: the resolution of `pinginterval` and
/// `closetimeout`. Each run visits only the connections whose
/// [`Keepalive::deadline`] has come (and the lingering sockets).
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
///
/// Times only move forward here (an earlier time than one already seen changes
/// nothing), so [`Keepalive::deadline`] never moves earlier: a caller that polls at a
/// deadline it was told before is never late, only sometimes early (then the poll
/// does nothing and the new deadline says when to come back).
#[derive(Clone, Debug)]
#[expect(
    clippy::struct_field_names,
    reason = "every field is a time or a span in milliseconds: the unit belongs in each name"
)]
pub struct Keepalive {
    interval_ms: u64,
    last_heard_ms: u64,
    last_sent_ms: u64,
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
            ping_sent_ms: None,
        }
    }

    /// The client sent something at `now_ms`.
    pub fn heard(&mut self, now_ms: u64) {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
        self.ping_sent_ms = None;
    }

    /// Something was sent to the client at `now_ms`.
    pub fn sent(&mut self, now_ms: u64) {
        self.last_sent_ms = self.last_sent_ms.max(now_ms);
    }

    /// The earliest time [`Keepalive::poll`] can do anything: a ping when nothing has
    /// been received, or nothing sent, for the interval; the timeout an interval after
    /// an unanswered ping.
    pub fn deadline(&self) -> u64 {
        let since = match self.ping_sent_ms {
            Some(ping) => ping,
            None => self.last_heard_ms.min(self.last_sent_ms),
        };
        since.saturating_add(self.interval_ms)
    }

    /// Decides, at `now_ms`, whether to ping or give up.
    pub fn poll(&mut self, now_ms: u64) -> KeepaliveAction {
        if now_ms < self.deadline() {
            return KeepaliveAction::Idle;
        }
        if self.ping_sent_ms.is_some() {
            return KeepaliveAction::TimedOut;
        }
        self.ping_sent_ms = Some(now_ms);
        self.sent(now_ms);
        KeepaliveAction::Ping
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        k.sent(900);
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
            k.sent(t);
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
    fn a_send_counts_from_its_own_time_however_late_the_poll() {
        let mut k = Keepalive::new(1000, 0);
        k.heard(0);
        k.sent(100);
        // Heard nothing since 0: a ping is due at 1000 whatever was sent.
        assert_eq!(k.deadline(), 1000);
        assert_eq!(k.poll(1000), KeepaliveAction::Ping);
        k.heard(1100);
        k.sent(1150);
        k.heard(1900);
        // Last send at 1150 (not when a poll saw it): a ping is due at 2150.
        assert_eq!(k.deadline(), 2150);
        assert_eq!(k.poll(2149), KeepaliveAction::Idle);
        assert_eq!(k.poll(2150), KeepaliveAction::Ping);
    }

    #[test]
    fn the_deadline_says_when_a_poll_acts_and_never_moves_earlier() {
        let mut k = Keepalive::new(1000, 0);
        assert_eq!(k.deadline(), 1000);
        k.sent(500);
        assert_eq!(k.deadline(), 1000);
        // An earlier time than one seen changes nothing.
        k.heard(700);
        k.heard(600);
        k.sent(400);
        assert_eq!(k.deadline(), 1500);
        assert_eq!(k.poll(1499), KeepaliveAction::Idle);
        assert_eq!(k.poll(1500), KeepaliveAction::Ping);
        // After the ping, the timeout.
        assert_eq!(k.deadline(), 2500);
        assert_eq!(k.poll(2500), KeepaliveAction::TimedOut);
    }

    proptest! {
        /// Polling only at the deadlines it is told does exactly what polling every
        /// millisecond does: the same pings and the same timeout, at the same times.
        #[test]
        fn polling_at_the_deadline_is_polling_every_millisecond(
            interval in 1u64..200,
            events in proptest::collection::vec((0u64..300, any::<bool>()), 0..40),
        ) {
            let mut every = Keepalive::new(interval, 0);
            let mut lazy = Keepalive::new(interval, 0);
            let mut next_visit = lazy.deadline();
            let (mut acts_every, mut acts_lazy) = (Vec::new(), Vec::new());
            let mut events = events.into_iter().peekable();
            let mut now = 0;
            let mut at = 0;
            while now < 3000 {
                // Events happen at their time, before that millisecond's polls.
                while let Some(&(gap, heard)) = events.peek() {
                    if at + gap != now {
                        break;
                    }
                    at += gap;
                    events.next();
                    if heard {
                        every.heard(now);
                        lazy.heard(now);
                    } else {
                        every.sent(now);
                        lazy.sent(now);
                    }
                }
                let act = every.poll(now);
                if act != KeepaliveAction::Idle {
                    acts_every.push((now, act));
                }
                if now >= next_visit {
                    let act = lazy.poll(now);
                    if act != KeepaliveAction::Idle {
                        acts_lazy.push((now, act));
                    }
                    next_visit = lazy.deadline();
                }
                if acts_every.last().map(|a| a.1) == Some(KeepaliveAction::TimedOut) {
                    break;
                }
                now += 1;
            }
            prop_assert_eq!(acts_every, acts_lazy);
        }
    }
}
