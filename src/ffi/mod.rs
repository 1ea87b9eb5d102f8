//! The cxx bridge to the C++ shim, and nothing else: thin wrappers over the core, with
//! the core's own verbs.
//!
//! Every function the shim calls stops panics ([`guard`]), since a panic crossing into
//! C++ would abort the whole IRC server: a panic in a connection gives that connection
//! up, a panic while building the configuration becomes a configuration error. Byte
//! data crosses as slices over the shim's own `std::string`s (never `rust::Str`, which
//! throws on invalid UTF-8), addresses as their 4 or 16 bytes. IRC lines are appended
//! straight into InspIRCd's receive queue; what goes to the client is written into one
//! `std::string` the shim keeps for the whole module and copies into the socket's queue
//! ([`output`]). One call of each kind per event: one per read, one per write round (the
//! send queue is read through [`bridge::SendQueue`]).

mod config_builder;
mod cxx_sink;
mod guard;
mod module;
mod output;
mod session;

use config_builder::{new_config_builder, ConfigBuilder};
use module::{new_module, WsModule};
use session::WsSession;

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

    /// What the shim does after a write round.
    #[derive(Debug)]
    enum WriteAction {
        /// Before the upgrade: the server's lines wait in their queue (nothing framed).
        Hold,
        /// The output replaces the server's lines: queue it, empty the upper queue.
        Sent,
        /// As `Sent`, but the output is a close frame after an internal error: the
        /// user quits at the next keepalive poll, which is due at once (schedule it).
        SentThenQuit,
    }

    /// When the shim's timer should next poll a connection's keepalive.
    struct KeepaliveDeadline {
        /// False: never (keepalive off, not a user, or the connection not open).
        scheduled: bool,
        /// The time, in the milliseconds of the calls' `now_ms`, when `scheduled`.
        at_ms: u64,
    }

    /// InspIRCd socket types.
    enum SocketKind {
        User,
        Server,
    }

    /// Why the server closes a connection that is still open; the core picks the close
    /// code and its words.
    enum ServerClose {
        /// The user quits (QUIT, a kill, a ban).
        Quit,
        /// The module is being unloaded.
        Unload,
    }

    /// The result of [`WsSession::receive`]. Strings are empty (no allocation) unless
    /// the matching event happened.
    struct ReadResult {
        consumed: usize,
        action: ReadAction,
        /// Frames came from the client after the upgrade: it is alive (InspIRCd 4's ping
        /// timer counts that as the answer to its ping).
        heard: bool,
        /// Set on the read that completed the handshake.
        upgrade: UpgradeResult,
        /// Set on the read where a trusted proxy's word on the client became known.
        proxied: ProxiedResult,
        /// A warning line for the log (a proxy's headers disagree), or empty.
        warning: String,
        /// Log the closing line at debug level only (a health check).
        quiet: bool,
        /// Before closing, fire InspIRCd's WebIRC event without changing the address, so
        /// that connectban takes back the peer's count (a trusted balancer's health
        /// check).
        forget_peer: bool,
        /// Write now even if the output is empty: the lines the server queued before
        /// the upgrade can go.
        write_now: bool,
        /// Why the connection closes (for the log and the quit message).
        reason: String,
    }

    /// A `<connect>` class's kind ([`crate::proxy_clones::ClassKind`]).
    enum ConnectClassKind {
        Allow,
        Deny,
        Named,
    }

    /// What the handshake established; `done` is false on every other read.
    #[derive(Default)]
    struct UpgradeResult {
        done: bool,
        /// The Origin header (for WHOIS), when `has_origin`.
        origin: String,
        has_origin: bool,
    }

    /// The flag map to fire InspIRCd's WebIRC event with ([`crate::secure::EventFlags`]).
    #[derive(Debug)]
    enum EventFlags {
        /// A null map.
        None,
        /// `{ "secure": "" }`.
        Secure,
        /// An empty map.
        NotSecure,
    }

    /// What a trusted proxy established ([`crate::session::Proxied`]); `done` is false
    /// when there is nothing to apply. In order: a certificate (`set_certificate`),
    /// then when `real_ip` is set the WebIRC event with `event_flags` and the address
    /// change.
    struct ProxiedResult {
        done: bool,
        /// The client's address as 4 or 16 bytes; empty: the peer's stays.
        real_ip: Vec<u8>,
        /// The client's port, when `has_port` (from a PROXY header); else the peer's.
        real_port: u16,
        has_port: bool,
        /// A debug line for the log when `real_ip` is set.
        note: String,
        event_flags: EventFlags,
        /// Give the user a certificate through sslinfo's API, its error
        /// [`certificate_note`].
        set_certificate: bool,
    }

    /// A WHOIS 350 (`RPL_WHOISGATEWAY`) line's fields, when `show`.
    struct WhoisGateway {
        show: bool,
        host: String,
        ip: String,
        text: String,
    }

    /// Where one element of InspIRCd's send queue lies (its `std::string`'s `data()` and
    /// `size()`), as [`queue_views`] fills it.
    #[derive(Clone, Copy)]
    struct QueueView {
        data: *const u8,
        len: usize,
    }

    unsafe extern "C++" {
        include!("send_queue.h");

        /// InspIRCd's `StreamSocket::SendQueue`: the server's lines for one socket.
        type SendQueue;
        /// The queue's bytes in all.
        fn queue_bytes(queue: &SendQueue) -> usize;
        /// Fills `views` with the elements (strings) from index `start` on, as many as
        /// fit; returns how many (0 past the end).
        fn queue_views(queue: &SendQueue, start: usize, views: &mut [QueueView]) -> usize;
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
        /// The server's major version (3 or 4), whose defaults apply.
        fn set_server_version(self: &mut ConfigBuilder, major: u32);
        /// `<performance clonesonconnect>` as the server reads it.
        fn set_clones_on_connect(self: &mut ConfigBuilder, on: bool);
        /// The next `<connect>` class, in the order the server tries them; its masks
        /// and ports follow. `registered_only`: only for users that have registered.
        fn add_connect_class(
            self: &mut ConfigBuilder,
            name: &[u8],
            kind: ConnectClassKind,
            registered_only: bool,
            local_max: u64,
            global_max: u64,
        ) -> Result<()>;
        /// An `allow`/`deny` mask of the class added last.
        fn add_connect_class_host(self: &mut ConfigBuilder, mask: &[u8]);
        /// A port of the class added last.
        fn add_connect_class_port(self: &mut ConfigBuilder, port: u16);
        /// The port of a listener whose hook is this module.
        fn add_websocket_port(self: &mut ConfigBuilder, port: u16);

        /// The configuration in force and the counters.
        type WsModule;
        fn new_module() -> Box<WsModule>;
        /// Validates the tags and puts them in force, returning the warnings to log;
        /// the error names tag, key, value and location, and the old configuration
        /// stays.
        fn configure(self: &mut WsModule, builder: &ConfigBuilder) -> Result<Vec<String>>;
        /// A connection from `peer` (its address as 4 or 16 bytes; empty if none);
        /// an error before the first configuration.
        fn new_session(self: &WsModule, peer: &[u8], kind: SocketKind) -> Result<Box<WsSession>>;
        /// The `/STATS W` lines.
        fn stats(self: &WsModule) -> Vec<String>;

        /// One connection.
        type WsSession;
        /// Processes received bytes (unmasked in place), appending IRC lines to `lines`;
        /// `out` is replaced by the protocol output (see [`Output`]).
        /// `tls_below`: InspIRCd terminates TLS below this hook.
        fn receive(
            self: &mut WsSession,
            input: &mut [u8],
            tls_below: bool,
            now_ms: u64,
            lines: Pin<&mut CxxString>,
            out: Pin<&mut CxxString>,
        ) -> ReadResult;
        /// One write round at `now_ms`: `out` is replaced by the frames of the server's
        /// queued lines, then a requested close frame.
        fn send(
            self: &mut WsSession,
            queue: &SendQueue,
            now_ms: u64,
            out: Pin<&mut CxxString>,
        ) -> WriteAction;
        /// InspIRCd 4's ping timer: writes a ping frame into `out` and returns true with
        /// `nativeping`; false otherwise (the server then sends an IRC PING).
        fn server_ping(self: &mut WsSession, now_ms: u64, out: Pin<&mut CxxString>) -> bool;
        /// Asks for a close frame after the lines already queued.
        fn request_close(self: &mut WsSession, why: ServerClose, quit_message: &[u8]);
        /// When to call [`poll_keepalive`] next. Never earlier than a deadline told
        /// before, unless a write failed (`WriteAction::SentThenQuit`).
        fn keepalive_deadline(self: &WsSession) -> KeepaliveDeadline;
        /// Called at the keepalive deadline (earlier does nothing): may write a
        /// keepalive ping, or a close frame for a client that did not answer one,
        /// returning then the reason to quit with (empty otherwise).
        fn poll_keepalive(self: &mut WsSession, now_ms: u64, out: Pin<&mut CxxString>) -> String;

        /// The socket is about to close. True when the caller should keep it open,
        /// reading, for the client's close frame ([`crate::linger`]): only when all its
        /// output was written (`drained`); `opaque` when the caller cannot pass the
        /// client's bytes as they are (TLS below this hook).
        fn begin_linger(self: &mut WsSession, opaque: bool, drained: bool, now_ms: u64) -> bool;
        /// Bytes that arrived while lingering; true once the wait is over.
        fn linger_read(self: &mut WsSession, input: &mut [u8], now_ms: u64) -> bool;
        /// True once the linger timeout has passed.
        fn linger_expired(self: &WsSession, now_ms: u64) -> bool;
        /// How long, at most, a module unload waits for lingering sockets, in ms.
        fn unload_linger_ms() -> u64;
        /// What users quit with when the module is unloaded.
        fn unload_quit_message() -> &'static str;
        /// Most capacity the shim's output buffer keeps between calls.
        fn output_keep_bytes() -> usize;
        /// Longest string the shim adds to a send queue: longer output goes in pieces.
        fn output_piece_bytes() -> usize;
        /// How often, in seconds, the shim's timer runs: the keepalives that are due, and
        /// the lingering sockets.
        fn poll_period_seconds() -> u32;
        /// What MODULES and the module list say the module is.
        fn module_description() -> &'static str;
        /// The error text of the certificate a secure web user is given.
        fn certificate_note() -> &'static str;
        /// The `/STATS` letter of the module's counters.
        fn stats_letter() -> u8;

        /// The log line for a connection the module closes: `from` is the user's mask
        /// (`is_user`) or nothing for a server link.
        fn closing_log_line(from: &[u8], is_user: bool, reason: &[u8]) -> String;

        /// WHOIS 350 for a user, from what the server knows: the synced origin, proxy
        /// host and proxy address items (each when its `has_`), and whether the user
        /// is connected here through the module.
        fn whois_gateway(
            origin: &[u8],
            has_origin: bool,
            proxy_host: &[u8],
            has_proxy_host: bool,
            proxy_ip: &[u8],
            has_proxy_ip: bool,
            local_websocket: bool,
        ) -> WhoisGateway;
    }
}

fn unload_linger_ms() -> u64 {
    crate::linger::UNLOAD_LINGER_MS
}

fn unload_quit_message() -> &'static str {
    crate::session::UNLOAD_REASON
}

fn output_keep_bytes() -> usize {
    output::KEEP_BYTES
}

fn output_piece_bytes() -> usize {
    output::PIECE_BYTES
}

fn poll_period_seconds() -> u32 {
    crate::keepalive::POLL_PERIOD_SECONDS
}

fn module_description() -> &'static str {
    crate::MODULE_DESCRIPTION
}

fn certificate_note() -> &'static str {
    crate::secure::CERTIFICATE_NOTE
}

fn stats_letter() -> u8 {
    crate::counters::STATS_LETTER
}

fn closing_log_line(from: &[u8], is_user: bool, reason: &[u8]) -> String {
    let from = is_user.then(|| String::from_utf8_lossy(from));
    crate::log_line::closing(from.as_deref(), &String::from_utf8_lossy(reason))
}

fn whois_gateway(
    origin: &[u8],
    has_origin: bool,
    proxy_host: &[u8],
    has_proxy_host: bool,
    proxy_ip: &[u8],
    has_proxy_ip: bool,
    local_websocket: bool,
) -> bridge::WhoisGateway {
    let facts = crate::whois::WhoisFacts {
        origin: has_origin.then_some(origin),
        proxy_host: has_proxy_host.then_some(proxy_host),
        proxy_ip: has_proxy_ip.then_some(proxy_ip),
        local_websocket,
    };
    match guard::caught(|| crate::whois::gateway_line(&facts)).flatten() {
        Some(line) => bridge::WhoisGateway {
            show: true,
            host: line.host,
            ip: line.ip,
            text: line.text,
        },
        None => bridge::WhoisGateway {
            show: false,
            host: String::new(),
            ip: String::new(),
            text: String::new(),
        },
    }
}
