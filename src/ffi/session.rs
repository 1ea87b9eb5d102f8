//! A connection in the bridge's types.

use std::net::IpAddr;
use std::pin::Pin;

use cxx::CxxString;

use super::bridge::{
    queue_bytes, queue_element, queue_length, ReadAction, ReadResult, SendQueue, ServerClose,
    UpgradeResult,
};
use super::cxx_sink::CxxSink;
use super::guard::caught;
use super::output;
use crate::connection::Connection;
use crate::session::{self, Ending, Upgrade};

/// What the shim holds for one connection.
pub struct WsSession(pub(super) Connection);

impl UpgradeResult {
    fn of(upgrade: Upgrade) -> UpgradeResult {
        UpgradeResult {
            done: true,
            real_ip: match upgrade.real_ip {
                Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
                Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
                None => Vec::new(),
            },
            has_origin: upgrade.origin.is_some(),
            origin: upgrade.origin.unwrap_or_default(),
            proxy_warning: upgrade.proxy_warning.unwrap_or_default(),
        }
    }
}

impl WsSession {
    /// Runs `f` on the connection; if it panics, the connection is given up (nothing
    /// more is read or sent) and the result is `fallback`.
    fn guarded<T>(&mut self, fallback: T, f: impl FnOnce(&mut Connection) -> T) -> T {
        match caught(|| f(&mut self.0)) {
            Some(value) => value,
            None => {
                self.0.abandon();
                fallback
            }
        }
    }

    pub(super) fn receive(
        &mut self,
        input: &mut [u8],
        now_ms: u64,
        lines: Pin<&mut CxxString>,
        out: Pin<&mut CxxString>,
    ) -> ReadResult {
        let mut out = output::fresh(out);
        let failed = ReadResult {
            consumed: input.len(),
            action: ReadAction::Close,
            heard: false,
            upgrade: UpgradeResult::default(),
            reason: "WebSocket: internal error".to_owned(),
        };
        let mut lines = CxxSink::new(lines);
        self.guarded(failed, |connection| {
            let report = connection.receive(input, now_ms, &mut lines, &mut out);
            ReadResult {
                consumed: report.consumed,
                heard: report.heard,
                action: match (&report.ending, report.messages) {
                    (Some(_), 0) => ReadAction::Close,
                    (Some(_), _) => ReadAction::DeliverThenClose,
                    (None, 0) => ReadAction::Wait,
                    (None, _) => ReadAction::Deliver,
                },
                upgrade: report.upgrade.map(UpgradeResult::of).unwrap_or_default(),
                reason: report
                    .ending
                    .as_ref()
                    .map(Ending::reason)
                    .unwrap_or_default(),
            }
        })
    }

    pub(super) fn send(&mut self, queue: &SendQueue, out: Pin<&mut CxxString>) -> bool {
        let mut out = output::fresh(out);
        let elements = (0..queue_length(queue)).map(|i| queue_element(queue, i));
        let bytes = queue_bytes(queue);
        self.guarded(true, |connection| {
            connection.send(elements, bytes, &mut out)
        })
    }

    pub(super) fn server_ping(&mut self, out: Pin<&mut CxxString>) -> bool {
        let mut out = output::fresh(out);
        self.guarded(false, |connection| connection.server_ping(&mut out))
    }

    pub(super) fn request_close(&mut self, why: ServerClose, quit_message: &[u8]) {
        let why = match why {
            ServerClose::Unload => session::ServerClose::Unload,
            _ => session::ServerClose::Quit,
        };
        let message = String::from_utf8_lossy(quit_message);
        self.guarded((), |connection| connection.request_close(why, &message));
    }

    pub(super) fn poll_keepalive(&mut self, now_ms: u64, out: Pin<&mut CxxString>) -> String {
        let mut out = output::fresh(out);
        let failed = "WebSocket: internal error".to_owned();
        self.guarded(failed, |connection| {
            connection
                .poll_keepalive(now_ms, &mut out)
                .unwrap_or_default()
        })
    }

    pub(super) fn begin_linger(&mut self, opaque: bool, now_ms: u64) -> bool {
        self.guarded(false, |connection| connection.begin_linger(opaque, now_ms))
    }

    pub(super) fn linger_read(&mut self, input: &mut [u8], now_ms: u64) -> bool {
        self.guarded(true, |connection| connection.linger_read(input, now_ms))
    }

    pub(super) fn linger_expired(&self, now_ms: u64) -> bool {
        caught(|| self.0.linger_expired(now_ms)).unwrap_or(true)
    }
}
