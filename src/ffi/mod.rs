//! The cxx bridge to the C++ shim, and nothing else: thin wrappers over the core.
//!
//! Every function the shim calls catches panics, since a panic crossing into C++ would
//! abort the whole IRC server: a panic while reading fails the connection, a panic while
//! building the configuration becomes a configuration error. Byte data crosses as
//! slices over the shim's own `std::string`s (never `rust::Str`, which throws on
//! invalid UTF-8), and output is appended straight into `std::string`s the shim owns.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use cxx::CxxString;

use crate::config::{Config, RawConfig, RawTag};
use crate::counters::Counters;
use crate::frame::{CloseCode, LineFramer};
use crate::handshake;
use crate::linger::Linger;
use crate::session::{Ending, Session, Upgrade};
use cxx_sink::CxxSink;

#[cxx::bridge(namespace = "wsgate")]
mod bridge {
    /// What the shim does after a read.
    #[derive(Debug)]
    enum ReadAction {
        /// Nothing new for InspIRCd (0).
        Wait,
        /// New IRC lines were appended (1).
        Deliver,
        /// Send the output, then close the connection with `reason` (-1).
        Close,
        /// New IRC lines were appended before the connection ended (e.g. QUIT then a
        /// close frame in one read): send the output and mark the socket failed with
        /// `reason`, but report the lines (1) so InspIRCd runs them before it closes.
        DeliverThenClose,
    }

    /// InspIRCd socket types.
    enum SocketKind {
        User,
        Server,
    }

    /// The result of [`WsSession::read`]. Strings are empty (no allocation) unless the
    /// matching event happened.
    struct ReadResult {
        consumed: usize,
        action: ReadAction,
        /// Set on the read that completed the handshake.
        upgrade: UpgradeResult,
        /// Why the connection closes (for the log and the quit message).
        reason: String,
    }

    /// What the handshake established; `done` is false on every other read.
    #[derive(Default)]
    struct UpgradeResult {
        done: bool,
        /// Subprotocol negotiated, or empty.
        subprotocol: String,
        /// Real client address from a trusted proxy, or empty.
        real_ip: String,
        /// The Origin header (for WHOIS), when `has_origin`.
        origin: String,
        has_origin: bool,
        /// A warning for the log about the proxy's headers, or empty.
        proxy_warning: String,
    }

    extern "Rust" {
        /// Raw configuration tags, filled by the shim.
        type ConfigBuilder;
        fn new_config_builder() -> Box<ConfigBuilder>;
        /// Starts a new `<wsorigin>` tag read at `location`.
        fn begin_origin_tag(self: &mut ConfigBuilder, location: &[u8]);
        /// Starts the `<websocket>` tag read at `location`.
        fn begin_websocket_tag(self: &mut ConfigBuilder, location: &[u8]);
        /// Adds a key/value pair to the tag begun last.
        fn add_item(self: &mut ConfigBuilder, key: &[u8], value: &[u8]);
        /// Validates the tags; the error message names tag, key, value and location.
        fn build(self: &ConfigBuilder) -> Result<Box<WsConfig>>;

        /// A validated configuration, shared by the sessions created with it.
        type WsConfig;
        fn warnings(self: &WsConfig) -> Vec<String>;

        /// Counters since the module was loaded (for STATS).
        type WsCounters;
        fn new_counters() -> Box<WsCounters>;
        /// One line per counter.
        fn report(self: &WsCounters) -> Vec<String>;

        /// One connection.
        type WsSession;
        fn new_session(
            config: &WsConfig,
            counters: &WsCounters,
            peer: &[u8],
            kind: SocketKind,
        ) -> Box<WsSession>;
        /// Processes received bytes (unmasked in place), appending IRC lines to `lines`
        /// and protocol output to `out`.
        fn read(
            self: &mut WsSession,
            input: &mut [u8],
            now_ms: u64,
            lines: Pin<&mut CxxString>,
            out: Pin<&mut CxxString>,
        ) -> ReadResult;
        /// Before the upgrade the server's lines must wait in their queue.
        fn holds_output(self: &WsSession) -> bool;
        /// Before the `write`s of a round: makes room in `out` for the frames of
        /// `line_bytes` bytes of the server's lines.
        fn begin_write(self: &WsSession, line_bytes: usize, out: Pin<&mut CxxString>);
        /// Frames one element of the server's send queue into `out`.
        fn write(self: &mut WsSession, upper: &[u8], out: Pin<&mut CxxString>);
        /// After the last `write` of a round: writes a requested close frame.
        fn finish_write(self: &mut WsSession, out: Pin<&mut CxxString>);
        /// Asks for a close frame (1000 on QUIT, 1001 on unload) after queued lines.
        fn request_close(self: &mut WsSession, going_away: bool, reason: &[u8]);
        fn is_open(self: &WsSession) -> bool;
        /// Called about once a second: may write a keepalive ping, or a close frame for a
        /// client that did not answer one, returning then the reason to quit with
        /// (empty otherwise).
        fn keepalive(self: &mut WsSession, now_ms: u64, out: Pin<&mut CxxString>) -> String;

        /// The socket is about to close; its output has all been written. True when the
        /// caller should keep it open, reading, for the client's close frame
        /// ([`crate::linger`]); `opaque` when the caller cannot pass the client's bytes
        /// as they are (TLS below this hook).
        fn begin_linger(self: &mut WsSession, opaque: bool, now_ms: u64) -> bool;
        /// Bytes that arrived while lingering; true once the wait is over.
        fn linger_read(self: &mut WsSession, input: &mut [u8], now_ms: u64) -> bool;
        /// True once the linger timeout has passed.
        fn linger_expired(self: &mut WsSession, now_ms: u64) -> bool;
        /// How long, at most, a module unload waits for lingering sockets, in ms.
        fn unload_linger_ms() -> u64;

        /// WHOIS text for a WebSocket user (numeric 350, RPL_WHOISGATEWAY) from the
        /// synced origin, if the user sent one.
        fn whois_gateway_text(origin: &[u8], has_origin: bool) -> String;
    }
}

pub use bridge::{ReadAction, ReadResult, SocketKind, UpgradeResult};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Raw tags as the shim reads them.
#[derive(Default)]
pub struct ConfigBuilder {
    raw: RawConfig,
    /// Which tag `add_item` fills.
    filling_websocket: bool,
}

fn new_config_builder() -> Box<ConfigBuilder> {
    Box::default()
}

impl ConfigBuilder {
    fn begin_origin_tag(&mut self, location: &[u8]) {
        self.raw.origins.push(RawTag {
            location: text(location),
            items: Vec::new(),
        });
        self.filling_websocket = false;
    }

    fn begin_websocket_tag(&mut self, location: &[u8]) {
        self.raw.websocket = Some(RawTag {
            location: text(location),
            items: Vec::new(),
        });
        self.filling_websocket = true;
    }

    fn add_item(&mut self, key: &[u8], value: &[u8]) {
        let tag = if self.filling_websocket {
            self.raw.websocket.as_mut()
        } else {
            self.raw.origins.last_mut()
        };
        if let Some(tag) = tag {
            tag.items.push((text(key), text(value)));
        }
    }

    fn build(&self) -> Result<Box<WsConfig>, String> {
        match catch_unwind(|| Config::from_raw(&self.raw)) {
            Ok(Ok(config)) => Ok(Box::new(WsConfig(Arc::new(config)))),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("internal error while validating the configuration".to_owned()),
        }
    }
}

/// A validated configuration; sessions keep the one they were accepted under.
pub struct WsConfig(Arc<Config>);

impl WsConfig {
    fn warnings(&self) -> Vec<String> {
        self.0.warnings.clone()
    }
}

/// Counters shared by the module and its sessions.
pub struct WsCounters(Rc<Counters>);

fn new_counters() -> Box<WsCounters> {
    Box::new(WsCounters(Rc::default()))
}

impl WsCounters {
    fn report(&self) -> Vec<String> {
        self.0.report()
    }
}

/// One connection as the shim holds it, with what the counters need.
pub struct WsSession {
    session: Session,
    counters: Rc<Counters>,
    upgraded: bool,
    /// While the socket lingers for the client's close frame.
    linger: Option<Linger>,
}

fn new_session(
    config: &WsConfig,
    counters: &WsCounters,
    peer: &[u8],
    kind: SocketKind,
) -> Box<WsSession> {
    let kind = match kind {
        SocketKind::Server => handshake::SocketKind::Server,
        _ => handshake::SocketKind::User,
    };
    Box::new(WsSession {
        session: Session::new(Arc::clone(&config.0), &String::from_utf8_lossy(peer), kind),
        counters: Rc::clone(&counters.0),
        upgraded: false,
        linger: None,
    })
}

impl Drop for WsSession {
    fn drop(&mut self) {
        if self.upgraded {
            self.counters.gone();
        }
        if self.linger.is_some() {
            self.counters.linger_ended();
        }
    }
}

/// The read result after an internal error: close at once.
fn internal_error(consumed: usize) -> ReadResult {
    ReadResult {
        consumed,
        action: ReadAction::Close,
        upgrade: UpgradeResult::default(),
        reason: "WebSocket: internal error".to_owned(),
    }
}

impl UpgradeResult {
    fn of(upgrade: Upgrade) -> UpgradeResult {
        UpgradeResult {
            done: true,
            subprotocol: upgrade
                .subprotocol
                .map(|p| p.name().to_owned())
                .unwrap_or_default(),
            real_ip: upgrade.real_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            has_origin: upgrade.origin.is_some(),
            origin: upgrade.origin.unwrap_or_default(),
            proxy_warning: upgrade.proxy_warning.unwrap_or_default(),
        }
    }
}

impl WsSession {
    fn read(
        &mut self,
        input: &mut [u8],
        now_ms: u64,
        lines: Pin<&mut CxxString>,
        out: Pin<&mut CxxString>,
    ) -> ReadResult {
        let input_len = input.len();
        let mut lines = CxxSink::new(lines);
        let mut out = CxxSink::new(out);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            self.session.receive(input, now_ms, &mut lines, &mut out)
        }));
        let report = match caught {
            Ok(report) => report,
            Err(_) => {
                self.session.abandon();
                return internal_error(input_len);
            }
        };
        if let Some(upgrade) = &report.upgrade {
            self.upgraded = true;
            self.counters.upgraded(upgrade.subprotocol);
        }
        if let Some(ending) = &report.ending {
            self.counters.ended(ending);
        }
        ReadResult {
            consumed: report.consumed,
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
    }

    fn holds_output(&self) -> bool {
        self.session.holds_output()
    }

    fn begin_write(&self, line_bytes: usize, out: Pin<&mut CxxString>) {
        out.reserve(LineFramer::framed_size_hint(line_bytes));
    }

    fn write(&mut self, upper: &[u8], out: Pin<&mut CxxString>) {
        let mut out = CxxSink::new(out);
        if catch_unwind(AssertUnwindSafe(|| self.session.send(upper, &mut out))).is_err() {
            self.session.abandon();
        }
    }

    fn finish_write(&mut self, out: Pin<&mut CxxString>) {
        let mut out = CxxSink::new(out);
        if catch_unwind(AssertUnwindSafe(|| self.session.finish_send(&mut out))).is_err() {
            self.session.abandon();
        }
    }

    fn request_close(&mut self, going_away: bool, reason: &[u8]) {
        let code = if going_away {
            CloseCode::GoingAway
        } else {
            CloseCode::Normal
        };
        let reason = String::from_utf8_lossy(reason);
        if catch_unwind(AssertUnwindSafe(|| {
            self.session.request_close(code, &reason)
        }))
        .is_err()
        {
            self.session.abandon();
        }
    }

    fn is_open(&self) -> bool {
        self.session.is_open()
    }

    fn keepalive(&mut self, now_ms: u64, out: Pin<&mut CxxString>) -> String {
        let mut out = CxxSink::new(out);
        match catch_unwind(AssertUnwindSafe(|| {
            self.session.poll_keepalive(now_ms, &mut out)
        })) {
            Ok(None) => String::new(),
            Ok(Some(ending)) => {
                self.counters.ended(&ending);
                ending.reason()
            }
            Err(_) => {
                self.session.abandon();
                "WebSocket: internal error".to_owned()
            }
        }
    }

    fn begin_linger(&mut self, opaque: bool, now_ms: u64) -> bool {
        let session = &mut self.session;
        let counters = &self.counters;
        let started = catch_unwind(AssertUnwindSafe(|| {
            Linger::begin(session, counters, opaque, now_ms)
        }));
        match started {
            Ok(linger) => {
                self.linger = linger;
                self.linger.is_some()
            }
            Err(_) => false,
        }
    }

    fn linger_read(&mut self, input: &mut [u8], now_ms: u64) -> bool {
        let session = &mut self.session;
        catch_unwind(AssertUnwindSafe(|| {
            // While closing nothing is delivered or sent: the sinks stay empty.
            let (mut lines, mut out) = (Vec::new(), Vec::new());
            session.receive(input, now_ms, &mut lines, &mut out);
            !session.awaits_close_reply()
        }))
        .unwrap_or(true)
    }

    fn linger_expired(&mut self, now_ms: u64) -> bool {
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

fn unload_linger_ms() -> u64 {
    crate::linger::UNLOAD_LINGER_MS
}

fn whois_gateway_text(origin: &[u8], has_origin: bool) -> String {
    if has_origin {
        format!(
            "is connected from the {} WebSocket origin",
            String::from_utf8_lossy(origin)
        )
    } else {
        "is connected from a non-web WebSocket origin".to_owned()
    }
}

mod cxx_sink;

#[cfg(test)]
mod idle_memory_tests;
