//! Shared harness for the integration tests: a real InspIRCd per test (the test kit's
//! launcher: a private temp dir with a private module directory), plus IRC, WebSocket
//! (tungstenite), raw HTTP and raw frame clients.
//!
//! Nothing here sleeps to wait for state: every wait is for a concrete event (a line on
//! a socket, a line in a file, a process exit) with a bounded deadline that fails the
//! test with a message saying what was awaited and what was seen instead.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

pub use testkit::inspircd::{Conf, Dialect, Link, WsModule};
pub use testkit::irc::take_line;
pub use testkit::wait::{poll_until, read_lossy, tail};
pub use testkit::ws::{
    encode_frame, find, parse_frame, Frame as RawFrame, MASK, OP_BINARY, OP_CLOSE, OP_CONT,
    OP_PING, OP_PONG, OP_TEXT, SAMPLE_ACCEPT, SAMPLE_KEY,
};

/// A raw client that negotiates permessage-deflate.
pub mod deflate;
/// nginx and HAProxy in front of the server, clients from chosen source addresses.
pub mod deploy;
/// Node.js and the npm packages of tests/web (irc-framework, the browser driver).
pub mod node;

/// Upper bound for every wait in the suite.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The origin allowed by the default `<wsorigin>`.
pub const ORIGIN: &str = testkit::inspircd::DEFAULT_ORIGIN;

// ---------------------------------------------------------------------------------------
// Module under test
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// This project's module: `$WS_MODULE`, else the one `make` built for the server
    /// under test (`<crate>/m_websocket.so`, `make INSPIRCD=4`'s
    /// `<crate>/target/inspircd4/m_websocket.so`; with `INSPIRCD=source` only
    /// `$WS_MODULE`).
    Ours,
    /// The installation's stock `m_websocket.so` (InspIRCd 3's needs `m_sha1.so`).
    Stock,
}

impl Module {
    pub fn path(self) -> PathBuf {
        match self {
            Module::Ours => {
                // What `make` builds for the server INSPIRCD names; one built from source
                // (INSPIRCD=source) has its module named by WS_MODULE.
                let (built, make) = match std::env::var("INSPIRCD").as_deref() {
                    Ok("4") => ("target/inspircd4/m_websocket.so", "make INSPIRCD=4"),
                    Ok("source") => (
                        "",
                        "make INSPIRCD_SOURCE=... and set WS_MODULE=target/NAME/m_websocket.so",
                    ),
                    _ => ("m_websocket.so", "make"),
                };
                let p = match std::env::var_os("WS_MODULE") {
                    Some(p) => PathBuf::from(p),
                    None => Path::new(env!("CARGO_MANIFEST_DIR")).join(built),
                };
                if !p.is_file() {
                    panic!(
                        "m_websocket.so not built: run `{make}` first (looked for {})",
                        p.display()
                    );
                }
                p
            }
            Module::Stock => launcher().install.stock_websocket(),
        }
    }
}

impl From<Module> for WsModule {
    fn from(m: Module) -> WsModule {
        match m {
            Module::Ours => WsModule::File(m.path()),
            Module::Stock => WsModule::Stock,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// The server every test runs: `INSPIRCD=3` (or unset) Debian 12's InspIRCd 3,
/// `INSPIRCD=4` Debian 13's InspIRCd 4, `INSPIRCD=source` one built from source under
/// `INSPIRCD_PREFIX` (`make test` runs the suite with each it has).
pub fn install() -> testkit::inspircd::Install {
    // Found once per test binary: a source-built server is asked for its version.
    static INSTALL: std::sync::OnceLock<Result<testkit::inspircd::Install, String>> =
        std::sync::OnceLock::new();
    INSTALL
        .get_or_init(testkit::inspircd::Install::from_env)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Which InspIRCd the suite runs against, for the few expectations where InspIRCd
/// itself differs between versions.
pub fn dialect() -> Dialect {
    install().dialect
}

/// The WHOIS numeric that tells the user's address (its own WHOIS shows it): InspIRCd 3
/// sends 378 `:is connecting from *@host IP`, InspIRCd 4 338 `user@host IP :is
/// connecting from`.
pub fn connecting_from_numeric() -> &'static str {
    match dialect() {
        Dialect::V3 => "378",
        Dialect::V4 => "338",
    }
}

/// The address in a [`connecting_from_numeric`] line.
pub fn connecting_from_address(line: &str) -> String {
    let address = match dialect() {
        Dialect::V3 => line.rsplit(' ').next(),
        Dialect::V4 => line
            .split(" :")
            .next()
            .and_then(|params| params.rsplit(' ').next()),
    };
    address
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string()
}

/// How every test's server runs: [`install`], [`TIMEOUT`] to start, killed by its PID
/// at the end of the test.
pub fn launcher() -> testkit::inspircd::Launcher {
    testkit::inspircd::Launcher::new(install())
        .prefix("wstest-")
        .startup(TIMEOUT)
}

/// A server of the test kit, with the harness's clients and waits (which fail the test
/// with a message instead of returning an error).
pub struct Server(testkit::inspircd::Server);

impl Deref for Server {
    type Target = testkit::inspircd::Server;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Server {
    /// Starts a server and waits until it reports that it is running with every
    /// listener bound. Retries on port clashes.
    pub fn start(conf: Conf) -> Server {
        Server(launcher().start(conf).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Runs a server that must refuse to start: waits for it to exit non-zero and
    /// returns its console output.
    pub fn start_expect_failure(conf: Conf) -> String {
        launcher()
            .start_expect_failure(conf)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Two servers, `a.test` and `b.test`, linked by spanningtree on 127.0.0.1; `a`
    /// connects to `b`. Returns once each has the other in its server list.
    pub fn start_linked(a: Conf, b: Conf) -> (Server, Server) {
        let mut b = b;
        b.link = Some(Link {
            name: "b.test".into(),
            sid: "2BB".into(),
            peer: "a.test".into(),
            connect_to: None,
        });
        let b = Server::start(b);
        let mut a = a;
        a.link = Some(Link {
            name: "a.test".into(),
            sid: "1AA".into(),
            peer: "b.test".into(),
            connect_to: Some(b.link_port),
        });
        let a = Server::start(a);
        for (server, peer, probe_nick) in [(&a, "b.test", "probea"), (&b, "a.test", "probeb")] {
            // A nick of its own on each server: the network knows both.
            let mut probe = server.irc(probe_nick);
            let deadline = Instant::now() + TIMEOUT;
            loop {
                probe.send("LINKS");
                let mut servers = Vec::new();
                loop {
                    let l = probe.expect_str("the LINKS list", |l| {
                        is_numeric(l.as_bytes(), "364") || is_numeric(l.as_bytes(), "365")
                    });
                    if is_numeric(l.as_bytes(), "365") {
                        break;
                    }
                    servers.push(l.split(' ').nth(3).unwrap_or_default().to_string());
                }
                if servers.iter().any(|s| s == peer) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the servers did not link within {TIMEOUT:?} (LINKS: {servers:?})\nlog tail:\n{}",
                    tail(&server.log(), 30)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            probe.send("QUIT");
        }
        (a, b)
    }

    /// Waits until a log line satisfies `pred`; returns that line.
    pub fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.0
            .wait_log(what, TIMEOUT, pred)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn assert_alive(&mut self) {
        assert!(
            self.is_alive(),
            "inspircd died; output:\n{}\nlog tail:\n{}",
            self.output(),
            tail(&self.log(), 40)
        );
    }

    pub fn irc(&self, nick: &str) -> IrcClient {
        IrcClient::register(self.irc_port, nick)
    }

    /// A tungstenite client with the allowed Origin, registered as `nick`.
    pub fn ws(&self, nick: &str) -> WsClient {
        let mut c = WsClient::connect(self.ws_port, &WsOpts::default())
            .unwrap_or_else(|e| panic!("WebSocket handshake failed: {}", describe_ws_error(&e)));
        c.register(nick);
        c
    }

    /// A plain user and a WebSocket user, registered concurrently.
    pub fn pair(&self, irc_nick: &str, ws_nick: &str) -> (IrcClient, WsClient) {
        self.pair_with(irc_nick, ws_nick, &WsOpts::default())
    }

    pub fn pair_with(&self, irc_nick: &str, ws_nick: &str, opts: &WsOpts) -> (IrcClient, WsClient) {
        let mut irc = IrcClient::start(self.irc_port, irc_nick);
        let mut ws = WsClient::connect(self.ws_port, opts)
            .unwrap_or_else(|e| panic!("WebSocket handshake failed: {}", describe_ws_error(&e)));
        ws.start_register(ws_nick);
        irc.wait_welcome();
        ws.wait_welcome();
        (irc, ws)
    }

    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.ws_port)
    }
}

// ---------------------------------------------------------------------------------------
// Plain IRC client
// ---------------------------------------------------------------------------------------

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub struct IrcClient {
    pub nick: String,
    stream: TcpStream,
    buf: Vec<u8>,
    /// Every line received, for failure messages.
    pub seen: Vec<Vec<u8>>,
}

impl IrcClient {
    pub fn connect(port: u16) -> IrcClient {
        IrcClient::over(TcpStream::connect(("127.0.0.1", port)).expect("connect IRC port"))
    }

    /// A client on a connected stream (e.g. one bound to a chosen source address).
    pub fn over(stream: TcpStream) -> IrcClient {
        stream.set_nodelay(true).unwrap();
        IrcClient {
            nick: String::new(),
            stream,
            buf: Vec::new(),
            seen: Vec::new(),
        }
    }

    pub fn register(port: u16, nick: &str) -> IrcClient {
        let mut c = IrcClient::start(port, nick);
        c.wait_welcome();
        c
    }

    /// Connects and sends NICK/USER without waiting. InspIRCd completes registrations
    /// on a once-a-second tick, so tests start several before waiting for any.
    pub fn start(port: u16, nick: &str) -> IrcClient {
        let mut c = IrcClient::connect(port);
        c.nick = nick.to_string();
        c.send(&format!("NICK {nick}"));
        c.send("USER u 0 * :Plain user");
        c
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to IRC socket");
    }

    /// Next line (without CR LF) before `deadline`; `Ok(None)` on EOF.
    pub fn read_line(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>, &'static str> {
        loop {
            if let Some(line) = take_line(&mut self.buf) {
                self.seen.push(line.clone());
                return Ok(Some(line));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("timeout");
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if is_timeout(&e) => return Err("timeout"),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => panic!("IRC read error: {e}"),
            }
        }
    }

    /// Waits for a line matching `pred` (answering server PINGs); returns it.
    pub fn expect(&mut self, what: &str, mut pred: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.read_line(deadline) {
                Ok(Some(line)) => {
                    if pred(&line) {
                        return line;
                    }
                    if line.starts_with(b"PING ") {
                        let mut pong = b"PONG ".to_vec();
                        pong.extend_from_slice(&line[5..]);
                        pong.extend_from_slice(b"\r\n");
                        self.send_raw(&pong);
                    }
                }
                Ok(None) => panic!(
                    "[{}] connection closed while waiting for {what}; last lines:\n{}",
                    self.nick,
                    self.recent()
                ),
                Err(_) => panic!(
                    "[{}] timed out after {TIMEOUT:?} waiting for {what}; last lines:\n{}",
                    self.nick,
                    self.recent()
                ),
            }
        }
    }

    pub fn expect_str(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        show(&self.expect(what, |l| pred(&String::from_utf8_lossy(l))))
    }

    pub fn recent(&self) -> String {
        let n = self.seen.len();
        self.seen[n.saturating_sub(25)..]
            .iter()
            .map(|l| show(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn oper(&mut self) {
        self.send("OPER admin secret");
        self.expect("381 (you are now an IRC operator)", |l| {
            is_numeric(l, "381")
        });
    }

    /// The numerics of a `WHOIS nick`, up to and including 318 (end of WHOIS).
    pub fn whois(&mut self, nick: &str) -> Vec<String> {
        self.send(&format!("WHOIS {nick}"));
        let mut lines = Vec::new();
        loop {
            let line = self.expect_str("a WHOIS reply", |l| {
                l.split(' ')
                    .nth(1)
                    .is_some_and(|n| n.len() == 3 && n.starts_with('3'))
            });
            let end = is_numeric(line.as_bytes(), "318");
            lines.push(line);
            if end {
                return lines;
            }
        }
    }

    /// The lines of `/STATS W` (the module's counters), without the numeric prefix.
    pub fn stats_w(&mut self) -> Vec<String> {
        self.send("STATS W");
        let mut lines = Vec::new();
        loop {
            let line = self.expect_str("STATS W output", |l| {
                is_numeric(l.as_bytes(), "210") || is_numeric(l.as_bytes(), "219")
            });
            if is_numeric(line.as_bytes(), "219") {
                return lines;
            }
            lines.push(line.split(" :").nth(1).unwrap_or_default().to_string());
        }
    }

    /// Waits for EOF (or reset), failing on timeout.
    pub fn expect_closed(&mut self, what: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.read_line(deadline) {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_) => panic!(
                    "[{}] connection not closed ({what}); last lines:\n{}",
                    self.nick,
                    self.recent()
                ),
            }
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `:server NNN ...`
pub fn is_numeric(line: &[u8], num: &str) -> bool {
    let s = String::from_utf8_lossy(line);
    let mut it = s.split(' ');
    matches!((it.next(), it.next()), (Some(p), Some(n)) if p.starts_with(':') && n == num)
}

// ---------------------------------------------------------------------------------------
// WebSocket client (tungstenite)
// ---------------------------------------------------------------------------------------

/// A TCP stream, optionally wrapped in TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Handshake options for [`WsClient::connect`].
#[derive(Clone, Debug)]
pub struct WsOpts {
    pub origin: Option<String>,
    /// Value of `Sec-WebSocket-Protocol`, if any.
    pub protocols: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Default for WsOpts {
    fn default() -> Self {
        WsOpts {
            origin: Some(ORIGIN.to_string()),
            protocols: None,
            headers: Vec::new(),
        }
    }
}

impl WsOpts {
    pub fn protocols(mut self, p: &str) -> WsOpts {
        self.protocols = Some(p.to_string());
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> WsOpts {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    pub fn origin(mut self, o: Option<&str>) -> WsOpts {
        self.origin = o.map(|s| s.to_string());
        self
    }
}

pub fn describe_ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => format!(
            "HTTP {} {:?} body={:?}",
            resp.status(),
            resp.headers(),
            resp.body().as_ref().map(|b| show(b))
        ),
        other => format!("{other:?}"),
    }
}

pub struct WsClient {
    pub nick: String,
    pub ws: WebSocket<Stream>,
    pub response: Response,
    /// Every message received (data messages as raw bytes), for failure output.
    pub seen: Vec<String>,
}

// Tests match on tungstenite's own error (e.g. an HTTP refusal with its status), so it
// is returned as the library gives it, large as it is.
#[allow(clippy::result_large_err)]
impl WsClient {
    pub fn connect(port: u16, opts: &WsOpts) -> Result<WsClient, tungstenite::Error> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect WebSocket port");
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        Self::handshake(Stream::Plain(tcp), "ws", port, opts)
    }

    pub fn connect_tls(
        port: u16,
        opts: &WsOpts,
        cert_pem: &Path,
    ) -> Result<WsClient, tungstenite::Error> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect wss port");
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        let conn = tls_client(cert_pem);
        Self::handshake(
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
            "wss",
            port,
            opts,
        )
    }

    fn handshake(
        stream: Stream,
        scheme: &str,
        port: u16,
        opts: &WsOpts,
    ) -> Result<WsClient, tungstenite::Error> {
        let mut req = format!("{scheme}://127.0.0.1:{port}/")
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        if let Some(o) = &opts.origin {
            h.insert("Origin", HeaderValue::from_str(o).unwrap());
        }
        if let Some(p) = &opts.protocols {
            h.insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
        }
        for (k, v) in &opts.headers {
            h.append(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let cfg = WebSocketConfig::default();
        match tungstenite::client::client_with_config(req, stream, Some(cfg)) {
            Ok((ws, response)) => Ok(WsClient {
                nick: String::new(),
                ws,
                response,
                seen: Vec::new(),
            }),
            Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                panic!("WebSocket handshake timed out after {TIMEOUT:?}")
            }
        }
    }

    /// The subprotocol the server selected (`Sec-WebSocket-Protocol` of the 101).
    pub fn protocol(&self) -> Option<String> {
        self.response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn register(&mut self, nick: &str) {
        self.start_register(nick);
        self.wait_welcome();
    }

    /// Sends NICK/USER without waiting for 001.
    pub fn start_register(&mut self, nick: &str) {
        self.nick = nick.to_string();
        self.send_line(&format!("NICK {nick}"));
        self.send_line("USER ws 0 * :WebSocket user");
    }

    /// WHOIS self and return the address InspIRCd has for the user.
    pub fn own_ip(&mut self) -> String {
        let nick = self.nick.clone();
        self.send_line(&format!("WHOIS {nick}"));
        let numeric = connecting_from_numeric();
        let m = self.expect(&format!("numeric {numeric}"), |l| is_numeric(l, numeric));
        let line = show(&m.into_data());
        self.expect("end of WHOIS", |l| is_numeric(l, "318"));
        connecting_from_address(&line)
    }

    /// Sends one IRC line as one text message (no CR LF).
    pub fn send_line(&mut self, line: &str) {
        self.ws
            .send(Message::Text(line.to_string()))
            .expect("WebSocket send");
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec()))
            .expect("WebSocket send");
    }

    /// Queues a message without flushing (for bursts).
    pub fn queue_line(&mut self, line: &str) {
        self.ws
            .write(Message::Text(line.to_string()))
            .expect("WebSocket write");
    }

    pub fn flush(&mut self) {
        self.ws.flush().expect("WebSocket flush");
    }

    /// Next message before `deadline`; Err with a description on timeout or error.
    pub fn recv_until(&mut self, deadline: Instant) -> Result<Message, String> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err("timeout".into());
            }
            self.ws
                .get_ref()
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .unwrap();
            match self.ws.read() {
                Ok(m) => {
                    self.seen.push(match &m {
                        Message::Text(t) => t.clone(),
                        Message::Binary(b) => format!("(binary) {}", show(b)),
                        other => format!("{other:?}"),
                    });
                    return Ok(m);
                }
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => continue,
                Err(e) => return Err(format!("{e:?}")),
            }
        }
    }

    pub fn recv(&mut self) -> Message {
        let deadline = Instant::now() + TIMEOUT;
        match self.recv_until(deadline) {
            Ok(m) => m,
            Err(e) => panic!(
                "[{}] no WebSocket message: {e}; seen:\n{}",
                self.nick,
                self.recent()
            ),
        }
    }

    /// Waits for a data message whose payload matches `pred`; asserts on the way that
    /// every data message is exactly one IRC line without CR or LF, and answers IRC PINGs.
    pub fn expect(&mut self, what: &str, mut pred: impl FnMut(&[u8]) -> bool) -> Message {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let m = match self.recv_until(deadline) {
                Ok(m) => m,
                Err(e) => panic!(
                    "[{}] while waiting for {what}: {e}; seen:\n{}",
                    self.nick,
                    self.recent()
                ),
            };
            let data: &[u8] = match &m {
                Message::Text(t) => t.as_bytes(),
                Message::Binary(b) => b,
                _ => continue,
            };
            assert!(
                !data.contains(&b'\r') && !data.contains(&b'\n'),
                "[{}] WebSocket message contains CR/LF: {:?}",
                self.nick,
                show(data)
            );
            assert!(!data.is_empty(), "[{}] empty WebSocket message", self.nick);
            if pred(data) {
                return m;
            }
            if data.starts_with(b"PING ") {
                let reply = format!("PONG {}", show(&data[5..]));
                self.send_line(&reply);
            }
        }
    }

    pub fn recent(&self) -> String {
        let n = self.seen.len();
        self.seen[n.saturating_sub(25)..].join("\n")
    }
}

/// What the plain and the WebSocket client share: an IRC line out, and a wait for a
/// line in that satisfies a predicate (failing the test on EOF or timeout).
pub trait IrcLines {
    fn send_irc(&mut self, line: &str);
    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool);

    fn wait_welcome(&mut self) {
        self.wait_line("numeric 001", &mut |l| is_numeric(l, "001"));
    }

    /// Round trip: everything the server did for earlier lines is done when this returns.
    fn sync(&mut self, token: &str) {
        self.send_irc(&format!("PING :{token}"));
        let want = format!(":{token}");
        self.wait_line(&format!("PONG {token}"), &mut |l| {
            let s = show(l);
            s.contains(" PONG ") && s.ends_with(&want)
        });
    }

    fn join(&mut self, chan: &str) {
        self.send_irc(&format!("JOIN {chan}"));
        self.wait_line(&format!("end of NAMES for {chan}"), &mut |l| {
            is_numeric(l, "366")
        });
    }
}

impl IrcLines for IrcClient {
    fn send_irc(&mut self, line: &str) {
        self.send(line);
    }
    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) {
        self.expect(what, pred);
    }
}

impl IrcLines for WsClient {
    fn send_irc(&mut self, line: &str) {
        self.send_line(line);
    }
    fn wait_line(&mut self, what: &str, pred: &mut dyn FnMut(&[u8]) -> bool) {
        self.expect(what, pred);
    }
}

/// Asserts that tungstenite's handshake failed with an HTTP answer of `status`.
pub fn assert_http_refusal(r: Result<WsClient, tungstenite::Error>, status: u16) {
    match r.err().expect("handshake must fail") {
        tungstenite::Error::Http(resp) => assert_eq!(resp.status().as_u16(), status),
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

/// Asserts that a message is a text message with exactly `text`.
pub fn assert_text(m: &Message, text: &str) {
    match m {
        Message::Text(t) => assert_eq!(t, text, "text message differs"),
        other => panic!("expected text message {text:?}, got {other:?}"),
    }
}

pub fn assert_binary(m: &Message, bytes: &[u8]) {
    match m {
        Message::Binary(b) => {
            assert_eq!(show(b), show(bytes), "binary message differs (shown lossy)")
        }
        other => panic!("expected binary message {:?}, got {other:?}", show(bytes)),
    }
    if let Message::Binary(b) = m {
        assert_eq!(b.as_slice(), bytes, "binary message differs byte-wise");
    }
}

// ---------------------------------------------------------------------------------------
// TLS client that trusts exactly the test's own certificate
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct PinnedCert {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn tls_client(cert_pem: &Path) -> rustls::ClientConnection {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem)
        .expect("read test certificate")
        .as_ref()
        .to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCert {
        der,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
        .expect("TLS client")
}

// ---------------------------------------------------------------------------------------
// Raw HTTP and raw frames
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server closed the connection (EOF or reset) after the response.
    pub closed: bool,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
    pub fn body_str(&self) -> String {
        show(&self.body)
    }
}

/// A raw TCP connection to a WebSocket listener.
///
/// Like a real client (RFC 6455 5.5.1), it answers the server's close frame with one
/// of its own as soon as it reads it, unless it sent a close first or was made
/// [`RawConn::silent_on_close`]: the server waits for that reply before it closes TCP.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// A close frame has gone from this client (its own or its reply).
    close_sent: bool,
    /// Answer the server's close frame.
    answers_close: bool,
}

pub enum ReadEnd {
    Eof,
    Timeout,
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        RawConn::over(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    /// A raw client on a connected stream (e.g. one bound to a chosen source address).
    pub fn over(stream: TcpStream) -> RawConn {
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            buf: Vec::new(),
            close_sent: false,
            answers_close: true,
        }
    }

    /// Never answers the server's close frame (a client that has gone away): the
    /// server then closes TCP after its linger timeout.
    pub fn silent_on_close(&mut self) {
        self.answers_close = false;
    }

    /// Writes bytes; errors (the server may already have closed) are returned.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.write(bytes).expect("write to raw socket");
    }

    /// Reads more bytes into the buffer; `Err(Eof|Timeout)`.
    fn fill(&mut self, deadline: Instant) -> Result<(), ReadEnd> {
        let now = Instant::now();
        if now >= deadline {
            return Err(ReadEnd::Timeout);
        }
        self.stream.set_read_timeout(Some(deadline - now)).unwrap();
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => Err(ReadEnd::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
            Err(e) if is_timeout(&e) => Err(ReadEnd::Timeout),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                Err(ReadEnd::Eof)
            }
            Err(e) => panic!("raw read error: {e}"),
        }
    }

    /// Reads an HTTP response head; for non-101 responses also reads the body until the
    /// server closes (or Content-Length is satisfied and then waits for the close).
    pub fn read_response(&mut self) -> HttpResponse {
        let mut resp = self.read_head("");
        if resp.status == 101 {
            return resp;
        }
        // Body: everything until EOF (the server must close after an error).
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.fill(deadline) {
                Ok(()) => {}
                Err(ReadEnd::Eof) => {
                    resp.closed = true;
                    break;
                }
                Err(ReadEnd::Timeout) => break,
            }
        }
        resp.body = std::mem::take(&mut self.buf);
        resp
    }

    /// Reads an HTTP response head (status line and headers, no body); `via` says
    /// where it came from in the failure message.
    pub fn read_head(&mut self, via: &str) -> HttpResponse {
        let deadline = Instant::now() + TIMEOUT;
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            if let Err(e) = self.fill(deadline) {
                panic!(
                    "no complete HTTP response head{via} ({}); got {:?}",
                    match e {
                        ReadEnd::Eof => "closed",
                        ReadEnd::Timeout => "timed out",
                    },
                    show(&self.buf)
                );
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII response head");
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_string();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap();
        assert_eq!(version, "HTTP/1.1", "status line {status_line:?}");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (k.to_string(), v.trim().to_string())
            })
            .collect();
        HttpResponse {
            status,
            status_line,
            headers,
            body: Vec::new(),
            closed: false,
        }
    }

    /// Next frame; `None` on EOF. Panics on timeout.
    pub fn read_frame(&mut self) -> Option<RawFrame> {
        let deadline = Instant::now() + TIMEOUT;
        self.read_frame_until(deadline)
            .unwrap_or_else(|| panic!("timed out waiting for a frame; buffered {:?}", self.buf))
    }

    /// `Some(Some(frame))`, `Some(None)` on EOF, `None` on timeout.
    pub fn read_frame_until(&mut self, deadline: Instant) -> Option<Option<RawFrame>> {
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                assert!(!f.masked, "the server sent a masked frame: {f:?}");
                if f.opcode == OP_CLOSE && self.answers_close && !self.close_sent {
                    // The server may already have closed (the stock module does).
                    let code = f.payload.get(..2).unwrap_or_default().to_vec();
                    self.close_sent = true;
                    let _ = self.write(&encode_frame(true, OP_CLOSE, &code, Some(MASK)));
                }
                return Some(Some(f));
            }
            match self.fill(deadline) {
                Ok(()) => {}
                Err(ReadEnd::Eof) => {
                    assert!(
                        self.buf.is_empty(),
                        "EOF inside a frame; buffered {:?}",
                        self.buf
                    );
                    return Some(None);
                }
                Err(ReadEnd::Timeout) => return None,
            }
        }
    }

    /// Reads frames until one satisfies `pred`; skips others. Panics on EOF/timeout.
    pub fn expect_frame(&mut self, what: &str, pred: impl Fn(&RawFrame) -> bool) -> RawFrame {
        let deadline = Instant::now() + TIMEOUT;
        let mut skipped = Vec::new();
        loop {
            match self.read_frame_until(deadline) {
                Some(Some(f)) if pred(&f) => return f,
                Some(Some(f)) => skipped.push(format!("op={} {:?}", f.opcode, show(&f.payload))),
                Some(None) => panic!(
                    "EOF while waiting for {what}; frames before:\n{}",
                    skipped.join("\n")
                ),
                None => panic!(
                    "timed out waiting for {what}; frames before:\n{}",
                    skipped.join("\n")
                ),
            }
        }
    }

    /// Reads and returns all frames until EOF; panics on timeout.
    pub fn frames_until_eof(&mut self) -> Vec<RawFrame> {
        let deadline = Instant::now() + TIMEOUT;
        let mut v = Vec::new();
        loop {
            match self.read_frame_until(deadline) {
                Some(Some(f)) => v.push(f),
                Some(None) => return v,
                None => panic!("the server did not close the connection; frames: {v:?}"),
            }
        }
    }

    /// Sends a masked client frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.close_sent |= opcode == OP_CLOSE;
        self.send(&encode_frame(fin, opcode, payload, Some(MASK)));
    }

    pub fn send_text(&mut self, line: &str) {
        self.send_frame(true, OP_TEXT, line.as_bytes());
    }

    /// Performs a WebSocket handshake with the default headers plus `extra` lines
    /// (each "Name: value"); asserts 101.
    pub fn upgrade(port: u16, extra: &[&str]) -> (RawConn, HttpResponse) {
        let mut c = RawConn::connect(port);
        c.send(&upgrade_request(extra));
        let r = c.read_response();
        assert_eq!(r.status, 101, "expected 101, got {r:?}");
        (c, r)
    }

    /// Registers over raw text frames; waits for 001.
    pub fn register(&mut self, nick: &str) {
        self.send_text(&format!("NICK {nick}"));
        self.send_text("USER raw 0 * :Raw user");
        self.expect_frame("numeric 001", |f| {
            (f.opcode == OP_TEXT || f.opcode == OP_BINARY) && is_numeric(&f.payload, "001")
        });
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A valid upgrade request (Host, Upgrade, Connection, key, version 13, Origin) plus
/// `extra` header lines.
pub fn upgrade_request(extra: &[&str]) -> Vec<u8> {
    testkit::ws::upgrade_request("127.0.0.1", ORIGIN, extra)
}

/// A valid upgrade request with `Origin: origin`, or without an Origin header.
pub fn upgrade_request_from(origin: Option<&str>) -> Vec<u8> {
    match origin {
        Some(o) => testkit::ws::upgrade_request("127.0.0.1", o, &[]),
        None => request(
            "GET / HTTP/1.1",
            &[
                "Host: 127.0.0.1",
                "Upgrade: websocket",
                "Connection: Upgrade",
                &format!("Sec-WebSocket-Key: {SAMPLE_KEY}"),
                "Sec-WebSocket-Version: 13",
            ],
        ),
    }
}

/// Builds a request from explicit header lines (nothing added).
pub fn request(request_line: &str, headers: &[&str]) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Sends `bytes` to a WebSocket port and reads the response.
pub fn http_exchange(port: u16, bytes: &[u8]) -> HttpResponse {
    let mut c = RawConn::connect(port);
    c.send(bytes);
    c.read_response()
}

/// Asserts an error response of this project's module: exact status, `Connection:
/// close`, a plain-text body naming the reason (one of `keywords`, case-insensitive), a
/// matching Content-Length if present, and the connection closed by the server.
pub fn assert_ours_error(r: &HttpResponse, status: u16, keywords: &[&str]) {
    assert_eq!(r.status, status, "status; response: {r:?}");
    assert!(
        r.header("Connection")
            .map(|v| v.eq_ignore_ascii_case("close"))
            .unwrap_or(false),
        "error response lacks `Connection: close`: {r:?}"
    );
    let ct = r.header("Content-Type").unwrap_or("");
    assert!(
        ct.to_ascii_lowercase().starts_with("text/plain"),
        "error response should have Content-Type text/plain: {r:?}"
    );
    if let Some(cl) = r.header("Content-Length") {
        assert_eq!(
            cl.parse::<usize>().ok(),
            Some(r.body.len()),
            "Content-Length does not match the body: {r:?}"
        );
    }
    let body = r.body_str().to_ascii_lowercase();
    assert!(
        !body.trim().is_empty(),
        "error response has an empty body: {r:?}"
    );
    assert!(
        keywords
            .iter()
            .any(|k| body.contains(&k.to_ascii_lowercase())),
        "error body {:?} names none of {keywords:?}",
        r.body_str()
    );
    assert!(
        r.closed,
        "the server did not close the connection after {status}: {r:?}"
    );
}

/// Asserts the stock-compatible part of an error response: status, `Connection: close`,
/// and the server closing the connection.
pub fn assert_error_closed(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "status; response: {r:?}");
    assert!(
        r.header("Connection")
            .map(|v| v.eq_ignore_ascii_case("close"))
            .unwrap_or(false),
        "error response lacks `Connection: close`: {r:?}"
    );
    assert!(
        r.closed,
        "the server did not close the connection after {status}: {r:?}"
    );
    assert!(
        r.header_count("Sec-WebSocket-Accept") == 0,
        "error response carries Sec-WebSocket-Accept: {r:?}"
    );
}

/// Waits until the server logs a quit whose reason starts with "WebSocket:" and names
/// one of `keywords`.
pub fn assert_quit_logged(server: &Server, keywords: &[&str]) -> String {
    server.wait_log(
        &format!("QuitUser with a 'WebSocket: ...' reason naming one of {keywords:?}"),
        |l| {
            l.contains("QuitUser:") && l.contains("'WebSocket: ") && {
                let low = l.to_ascii_lowercase();
                keywords
                    .iter()
                    .any(|k| low.contains(&k.to_ascii_lowercase()))
            }
        },
    )
}

/// Base64 of the SHA-1 of key + GUID (RFC 6455 4.2.2).
pub fn accept_for(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Caps a socket's receive buffer (disables autotuning), so a client that stops reading
/// pushes back on the server quickly.
pub fn set_rcvbuf(stream: &TcpStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_RCVBUF");
}
