//! Keepalive pings for idle connections (`<websocket nativeping pinginterval>`).
//!
//! Reverse proxies drop WebSocket connections that stay idle past their own timer
//! (100 s on Cloudflare). When nothing has been received for `pinginterval`, the server
//! sends a ping frame; any frame from the client counts as life. A client that sends
//! nothing for a further `pinginterval` after the ping is considered gone.

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

/// Tracks when the client was last heard from.
#[derive(Clone, Debug)]
pub struct Keepalive {
    interval_ms: u64,
    last_heard_ms: u64,
    /// When the unanswered ping went out.
    ping_sent_ms: Option<u64>,
}

impl Keepalive {
    /// Starts the clock at `now_ms` with an idle interval of `interval_ms`.
    pub fn new(interval_ms: u64, now_ms: u64) -> Keepalive {
        Keepalive {
            interval_ms: interval_ms.max(1),
            last_heard_ms: now_ms,
            ping_sent_ms: None,
        }
    }

    /// The client sent something.
    pub fn heard(&mut self, now_ms: u64) {
        self.last_heard_ms = now_ms;
        self.ping_sent_ms = None;
    }

    /// Decides, at `now_ms`, whether to ping or give up.
    pub fn poll(&mut self, now_ms: u64) -> KeepaliveAction {
        match self.ping_sent_ms {
            Some(sent) if now_ms.saturating_sub(sent) >= self.interval_ms => {
                KeepaliveAction::TimedOut
            }
            Some(_) => KeepaliveAction::Idle,
            None if now_ms.saturating_sub(self.last_heard_ms) >= self.interval_ms => {
                self.ping_sent_ms = Some(now_ms);
                KeepaliveAction::Ping
            }
            None => KeepaliveAction::Idle,
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
    fn any_traffic_resets_the_clock_and_answers_the_ping() {
        let mut k = Keepalive::new(1000, 0);
        k.heard(900);
        assert_eq!(k.poll(1500), KeepaliveAction::Idle);
        assert_eq!(k.poll(1900), KeepaliveAction::Ping);
        k.heard(2000);
        assert_eq!(k.poll(2899), KeepaliveAction::Idle);
        assert_eq!(k.poll(3000), KeepaliveAction::Ping);
    }

    #[test]
    fn a_busy_connection_is_never_pinged() {
        let mut k = Keepalive::new(1000, 0);
        for t in (0..100_000).step_by(500) {
            k.heard(t);
            assert_eq!(k.poll(t), KeepaliveAction::Idle);
        }
    }

    #[test]
    fn clock_going_backwards_does_not_ping_or_time_out() {
        let mut k = Keepalive::new(1000, 5000);
        assert_eq!(k.poll(0), KeepaliveAction::Idle);
    }
}
