//! A connection in the bridge's types.

use std::net::IpAddr;
use std::pin::Pin;

use cxx::CxxString;

use super::bridge::{
    queue_bytes, queue_views, EventFlags, KeepaliveDeadline, ProxiedResult, QueueView, ReadAction,
    ReadResult, SendQueue, ServerClose, UpgradeResult, WriteAction,
};
use super::cxx_sink::CxxSink;
use super::guard::caught;
use super::output;
use crate::connection::Connection;
use crate::linger::SocketState;
use crate::secure;
use crate::session::{self, Ending, Proxied, Upgrade};

/// What the shim holds for one connection.
pub struct WsSession(pub(super) Connection);

impl UpgradeResult {
    fn of(upgrade: Upgrade) -> UpgradeResult {
        UpgradeResult {
            done: true,
            has_origin: upgrade.origin.is_some(),
            origin: upgrade.origin.unwrap_or_default(),
        }
    }
}

impl ProxiedResult {
    fn none() -> ProxiedResult {
        ProxiedResult {
            done: false,
            real_ip: Vec::new(),
            real_port: 0,
            has_port: false,
            note: String::new(),
            event_flags: EventFlags::None,
            set_certificate: false,
        }
    }

    fn of(proxied: Proxied) -> ProxiedResult {
        let (ip, port) = match proxied.address {
            Some((ip, port)) => (Some(ip), port),
            None => (None, None),
        };
        ProxiedResult {
            done: true,
            real_ip: match ip {
                Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
                Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
                None => Vec::new(),
            },
            real_port: port.unwrap_or_default(),
            has_port: port.is_some(),
            note: proxied.note.unwrap_or_default(),
            event_flags: match proxied.secure.event_flags {
                secure::EventFlags::None => EventFlags::None,
                secure::EventFlags::Secure => EventFlags::Secure,
                secure::EventFlags::NotSecure => EventFlags::NotSecure,
            },
            set_certificate: proxied.secure.set_certificate,
        }
    }
}

/// The elements of InspIRCd's send queue in order, their views fetched
/// [`QueueElements::BATCH`] at a time (one call into the shim per batch rather than
/// per element).
struct QueueElements<'q> {
    queue: &'q SendQueue,
    views: [QueueView; QueueElements::BATCH],
    /// Index in the queue of the element after the last fetched.
    fetched: usize,
    /// How many of `views` hold elements of the last batch; `next` is the next to hand
    /// out.
    filled: usize,
    next: usize,
    /// The last batch was short: the queue holds no more.
    exhausted: bool,
}

impl<'q> QueueElements<'q> {
    /// Elements fetched per call: a write round of a busy channel holds a few dozen
    /// lines; a larger batch would only cost stack.
    const BATCH: usize = 32;

    fn new(queue: &'q SendQueue) -> QueueElements<'q> {
        let empty = QueueView {
            data: std::ptr::null(),
            len: 0,
        };
        QueueElements {
            queue,
            views: [empty; QueueElements::BATCH],
            fetched: 0,
            filled: 0,
            next: 0,
            exhausted: false,
        }
    }
}

impl<'q> Iterator for QueueElements<'q> {
    type Item = &'q [u8];

    fn next(&mut self) -> Option<&'q [u8]> {
        if self.next == self.filled {
            if self.exhausted {
                return None;
            }
            self.filled = queue_views(self.queue, self.fetched, &mut self.views);
            assert!(
                self.filled <= self.views.len(),
                "the shim overfilled the views"
            );
            self.fetched += self.filled;
            self.exhausted = self.filled < self.views.len();
            self.next = 0;
        }
        let view = *self.views.get(..self.filled)?.get(self.next)?;
        self.next += 1;
        // SAFETY: the shim filled `view` with `data()` and `size()` of a `std::string`
        // held by `queue`, which no one changes while it is borrowed for `'q` (InspIRCd
        // runs on one thread, and the queue is only read during this bridge call).
        Some(unsafe { std::slice::from_raw_parts(view.data, view.len) })
    }
}

impl WsSession {
    /// Runs `f` on the connection with the call's output sink. If it panics (a bug in
    /// the module), the call's output is discarded and the connection is failed with a
    /// close frame 1011 ([`Connection::fail_internally`]): the ending is the error.
    fn guarded<T>(
        &mut self,
        out: &mut CxxSink<'_>,
        f: impl FnOnce(&mut Connection, &mut CxxSink<'_>) -> T,
    ) -> Result<T, Ending> {
        if let Some(value) = caught(|| f(&mut self.0, out)) {
            return Ok(value);
        }
        out.discard();
        // A close frame into an emptied buffer: nothing left to panic over.
        Err(self.0.fail_internally(out))
    }

    pub(super) fn receive(
        &mut self,
        input: &mut [u8],
        tls_below: bool,
        now_ms: u64,
        lines: Pin<&mut CxxString>,
        out: Pin<&mut CxxString>,
    ) -> ReadResult {
        let mut out = output::fresh(out);
        let mut lines = CxxSink::new(lines);
        let consumed = input.len();
        let result = self.guarded(&mut out, |connection, out| {
            connection.note_tls_below(tls_below);
            let report = connection.receive(input, now_ms, &mut lines, out);
            ReadResult {
                consumed: report.consumed,
                heard: report.heard,
                write_now: report.upgrade.is_some(),
                action: match (&report.ending, report.messages) {
                    (Some(_), 0) => ReadAction::Close,
                    (Some(_), _) => ReadAction::DeliverThenClose,
                    (None, 0) => ReadAction::Wait,
                    (None, _) => ReadAction::Deliver,
                },
                upgrade: report.upgrade.map(UpgradeResult::of).unwrap_or_default(),
                proxied: report
                    .proxied
                    .map_or_else(ProxiedResult::none, ProxiedResult::of),
                warning: report.warning.unwrap_or_default(),
                quiet: matches!(report.ending, Some(Ending::HealthChecked { .. })),
                forget_peer: matches!(
                    report.ending,
                    Some(Ending::HealthChecked {
                        from_trusted_proxy: true
                    })
                ),
                reason: report
                    .ending
                    .as_ref()
                    .map(Ending::reason)
                    .unwrap_or_default(),
            }
        });
        result.unwrap_or_else(|ending| ReadResult {
            consumed,
            action: ReadAction::Close,
            heard: false,
            write_now: false,
            upgrade: UpgradeResult::default(),
            proxied: ProxiedResult::none(),
            warning: String::new(),
            quiet: false,
            forget_peer: false,
            reason: ending.reason(),
        })
    }

    pub(super) fn send(
        &mut self,
        queue: &SendQueue,
        now_ms: u64,
        out: Pin<&mut CxxString>,
    ) -> WriteAction {
        let mut out = output::fresh(out);
        let elements = QueueElements::new(queue);
        let bytes = queue_bytes(queue);
        match self.guarded(&mut out, |connection, out| {
            connection.send(elements, bytes, now_ms, out)
        }) {
            Ok(true) => WriteAction::Sent,
            Ok(false) => WriteAction::Hold,
            // A socket cannot be closed from inside its own write: the close frame goes
            // out now, and the next keepalive poll, due at once, quits the user.
            Err(ending) => {
                self.0.quit_at_next_poll(ending);
                WriteAction::SentThenQuit
            }
        }
    }

    pub(super) fn server_ping(&mut self, now_ms: u64, out: Pin<&mut CxxString>) -> bool {
        let mut out = output::fresh(out);
        match self.guarded(&mut out, |connection, out| {
            connection.server_ping(now_ms, out)
        }) {
            Ok(sent) => sent,
            // As for a write: the close frame is the output, the poll quits the user.
            Err(ending) => {
                self.0.quit_at_next_poll(ending);
                true
            }
        }
    }

    pub(super) fn request_close(&mut self, why: ServerClose, quit_message: &[u8]) {
        // Nothing is written now: the close frame goes out with the next write round.
        caught(|| {
            let why = match why {
                ServerClose::Quit => session::ServerClose::Quit,
                ServerClose::Unload => session::ServerClose::Unload,
                ServerClose { repr } => unreachable!("the shim asked a close for {repr}"),
            };
            self.0
                .request_close(why, &String::from_utf8_lossy(quit_message));
        });
    }

    pub(super) fn keepalive_deadline(&self) -> KeepaliveDeadline {
        match caught(|| self.0.keepalive_deadline()) {
            Some(Some(at_ms)) => KeepaliveDeadline {
                scheduled: true,
                at_ms,
            },
            Some(None) => KeepaliveDeadline {
                scheduled: false,
                at_ms: 0,
            },
            // A bug: poll at once, where the guard fails the connection if it recurs.
            None => KeepaliveDeadline {
                scheduled: true,
                at_ms: 0,
            },
        }
    }

    pub(super) fn poll_keepalive(&mut self, now_ms: u64, out: Pin<&mut CxxString>) -> String {
        let mut out = output::fresh(out);
        self.guarded(&mut out, |connection, out| {
            connection.poll_keepalive(now_ms, out).unwrap_or_default()
        })
        .unwrap_or_else(|ending| ending.reason())
    }

    pub(super) fn begin_linger(&mut self, opaque: bool, drained: bool, now_ms: u64) -> bool {
        let socket = SocketState { opaque, drained };
        caught(|| self.0.begin_linger(socket, now_ms)).unwrap_or(false)
    }

    pub(super) fn linger_read(&mut self, input: &mut [u8], now_ms: u64) -> bool {
        caught(|| self.0.linger_read(input, now_ms)).unwrap_or(true)
    }

    pub(super) fn linger_expired(&self, now_ms: u64) -> bool {
        caught(|| self.0.linger_expired(now_ms)).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use cxx::let_cxx_string;

    use super::*;
    use crate::ffi::bridge::SocketKind;
    use crate::ffi::config_builder::ConfigBuilder;
    use crate::ffi::module::{new_module, WsModule};
    use crate::session::test_client::REQUEST;
    use crate::sink::ByteSink;

    fn configured_module() -> Box<WsModule> {
        let mut module = new_module();
        let mut builder = ConfigBuilder::default();
        builder.begin_origin_tag(b"test.conf:1");
        builder.add_item(b"allow", b"https://chat.example.com");
        module.configure(&builder).expect("configured");
        module
    }

    /// A session past its handshake.
    fn open_session(module: &WsModule) -> Box<WsSession> {
        let mut session = module
            .new_session(&[127, 0, 0, 1], SocketKind::User)
            .expect("session");
        let_cxx_string!(lines = "");
        let_cxx_string!(out = "");
        let mut input = REQUEST.to_vec();
        let result = session.receive(&mut input, false, 0, lines.as_mut(), out.as_mut());
        assert!(result.upgrade.done, "{:?}", result.action);
        session
    }

    #[test]
    fn a_panic_inside_the_core_closes_that_connection_with_1011_and_is_counted() {
        let module = configured_module();
        let mut session = open_session(&module);
        let_cxx_string!(out = "");
        let mut sink = output::fresh(out.as_mut());
        sink.put(b"half a frame");
        let result: Result<(), Ending> = session.guarded(&mut sink, |_, out| {
            out.put(b"more of it");
            panic!("a broken invariant");
        });
        drop(sink);
        assert_eq!(result, Err(Ending::InternalError));
        // Only the close frame: 1011, "internal error".
        let mut expected = vec![0x88, 16, 0x03, 0xf3];
        expected.extend_from_slice(b"internal error");
        assert_eq!(out.as_bytes(), &expected[..]);
        assert!(module
            .stats()
            .contains(&"WebSocket closed by server after an internal error: 1".to_owned()));
        // The connection takes nothing more.
        let_cxx_string!(lines = "");
        let_cxx_string!(out = "");
        let mut ping = crate::session::test_client::frame_with(0x89, true, b"x");
        let read = session.receive(&mut ping, false, 0, lines.as_mut(), out.as_mut());
        assert!(out.as_bytes().is_empty() && lines.as_bytes().is_empty());
        assert_eq!(read.consumed, ping.len());
    }

    #[test]
    fn a_panic_while_writing_quits_the_user_at_the_next_poll() {
        let module = configured_module();
        let mut session = open_session(&module);
        let deadline = session.keepalive_deadline();
        assert!(deadline.scheduled && deadline.at_ms > 0);
        session.0.quit_at_next_poll(Ending::InternalError);
        // Due at once.
        let deadline = session.keepalive_deadline();
        assert!(deadline.scheduled);
        assert_eq!(deadline.at_ms, 0);
        let_cxx_string!(out = "");
        let reason = session.poll_keepalive(0, out.as_mut());
        assert_eq!(reason, "WebSocket: internal error (close 1011)");
        // Once.
        assert_eq!(session.poll_keepalive(0, out.as_mut()), "");
    }
}
