//! Shared harness for the integration tests: a real InspIRCd per test (the test kit's
//! launcher: a private temp dir with a private module directory), the test kit's plain
//! IRC and raw WebSocket clients ([`Client`], [`Client`]), and a tungstenite client
//! ([`WsClient`]) for what a WebSocket library does.
//!
//! Nothing here sleeps to wait for state: every wait is for a concrete event (a line on
//! a socket, a line in a file, a process exit) with a bounded deadline. A client's wait
//! returns a `Result` whose error says what was awaited and what was seen instead; the
//! tests call `.expect()` on it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

pub use testkit::client::{Client, Error as ClientError, ErrorKind, IrcLines};
pub use testkit::http::{request, HttpResponse};
pub use testkit::inspircd::{Conf, Dialect, Link, WsModule};
pub use testkit::irc::is_numeric;
pub use testkit::net::{connect_from, set_rcvbuf};
pub use testkit::wait::{poll_until, read_lossy, tail};
pub use testkit::ws::{
    encode_frame, Frame as RawFrame, MASK, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
    SAMPLE_ACCEPT, SAMPLE_KEY,
};

/// What the harness's client calls return.
pub type ClientResult<T> = testkit::client::Result<T>;

/// A raw client that negotiates permessage-deflate.
pub mod deflate;
/// nginx and HAProxy in front of the server, clients from chosen source addresses.
pub mod deploy;
/// Node.js and the npm packages of tests/web (irc-framework, the browser driver).
pub mod node;

/// Upper bound for every wait in the suite.
pub const TIMEOUT: Duration = testkit::client::DEFAULT_TIMEOUT;
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
    /// A raw WebSocket user registered as `nick` that has joined `chan`, as `watcher`
    /// (in `chan`) saw.
    pub fn raw_user_in(&self, watcher: &mut Client, chan: &str, nick: &str) -> Client {
        let (mut conn, _) = Client::upgrade(self.ws_port, &[]).expect("upgrade");
        conn.register(nick).expect("registration");
        conn.send_text(&format!("JOIN {chan}")).expect("JOIN");
        let joined = format!(":{nick}!");
        watcher
            .expect_str(&format!("{nick}'s JOIN"), |l| {
                l.starts_with(&joined) && l.contains(" JOIN ")
            })
            .expect("the JOIN");
        conn
    }

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
            let mut probe = server.irc(probe_nick).expect("a probe on each server");
            let deadline = Instant::now() + TIMEOUT;
            loop {
                probe.send_line("LINKS").expect("LINKS");
                let mut servers = Vec::new();
                loop {
                    let l = probe
                        .expect_str("the LINKS list", |l| {
                            is_numeric(l.as_bytes(), "364") || is_numeric(l.as_bytes(), "365")
                        })
                        .expect("the LINKS list");
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
            probe.send_line("QUIT").expect("QUIT");
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

    /// A plain IRC user registered as `nick`.
    pub fn irc(&self, nick: &str) -> ClientResult<Client> {
        Client::irc_register(self.irc_port, nick)
    }

    /// A tungstenite client with the allowed Origin, registered as `nick`.
    pub fn ws(&self, nick: &str) -> ClientResult<WsClient> {
        let mut c = WsClient::connect(self.ws_port, &WsOpts::default()).map_err(|e| {
            ClientError::new(
                ErrorKind::Protocol,
                format!(
                    "[{nick}] WebSocket handshake failed: {}",
                    describe_ws_error(&e)
                ),
            )
        })?;
        c.register(nick)?;
        Ok(c)
    }

    /// A plain user and a WebSocket user, registered concurrently.
    pub fn pair(&self, irc_nick: &str, ws_nick: &str) -> ClientResult<(Client, WsClient)> {
        self.pair_with(irc_nick, ws_nick, &WsOpts::default())
    }

    pub fn pair_with(
        &self,
        irc_nick: &str,
        ws_nick: &str,
        opts: &WsOpts,
    ) -> ClientResult<(Client, WsClient)> {
        let mut irc = Client::irc_start(self.irc_port, irc_nick)?;
        let mut ws = WsClient::connect(self.ws_port, opts).map_err(|e| {
            ClientError::new(
                ErrorKind::Protocol,
                format!(
                    "[{ws_nick}] WebSocket handshake failed: {}",
                    describe_ws_error(&e)
                ),
            )
        })?;
        ws.start_register(ws_nick)?;
        irc.wait_welcome()?;
        ws.wait_welcome()?;
        Ok((irc, ws))
    }

    /// A raw connection to the WebSocket port.
    pub fn raw(&self) -> ClientResult<Client> {
        Client::raw(None, self.ws_port)
    }
}

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
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
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        Self::handshake(Stream::Plain(tcp), "ws", port, opts)
    }

    pub fn connect_tls(
        port: u16,
        opts: &WsOpts,
        cert_pem: &Path,
    ) -> Result<WsClient, tungstenite::Error> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(TIMEOUT))?;
        let conn = tls_client(cert_pem);
        Self::handshake(
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
            "wss",
            port,
            opts,
        )
    }

    pub fn handshake(
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

    pub fn register(&mut self, nick: &str) -> ClientResult<()> {
        self.start_register(nick)?;
        self.wait_welcome()
    }

    /// Sends NICK/USER without waiting for 001.
    pub fn start_register(&mut self, nick: &str) -> ClientResult<()> {
        self.nick = nick.to_string();
        self.start_register_as(nick, "ws", "WebSocket user")
    }

    /// WHOIS self and return the address InspIRCd has for the user.
    pub fn own_ip(&mut self) -> ClientResult<String> {
        let nick = self.nick.clone();
        self.send_line(&format!("WHOIS {nick}"))?;
        let numeric = connecting_from_numeric();
        let m = self.expect_msg(&format!("numeric {numeric}"), |l| is_numeric(l, numeric))?;
        let line = show(&m.into_data());
        self.expect_msg("end of WHOIS", |l| is_numeric(l, "318"))?;
        Ok(connecting_from_address(&line))
    }

    /// An error of this client's for a failed tungstenite call.
    fn failed(&self, what: &str, e: tungstenite::Error) -> ClientError {
        ClientError::new(ErrorKind::Io, format!("[{}] {what}: {e:?}", self.nick))
    }

    pub fn send_binary(&mut self, bytes: &[u8]) -> ClientResult<()> {
        self.ws
            .send(Message::Binary(bytes.to_vec()))
            .map_err(|e| self.failed("WebSocket send", e))
    }

    /// Queues a message without flushing (for bursts).
    pub fn queue_line(&mut self, line: &str) -> ClientResult<()> {
        self.ws
            .write(Message::Text(line.to_string()))
            .map_err(|e| self.failed("WebSocket write", e))
    }

    pub fn flush(&mut self) -> ClientResult<()> {
        self.ws
            .flush()
            .map_err(|e| self.failed("WebSocket flush", e))
    }

    /// Next message before `deadline`. The error's kind says why: the deadline
    /// ([`ErrorKind::Timeout`]), the connection's end (closed, reset:
    /// [`ErrorKind::Closed`]), or another failure; its message has tungstenite's.
    pub fn recv_until(&mut self, deadline: Instant) -> ClientResult<Message> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::new(
                    ErrorKind::Timeout,
                    format!("[{}] timeout", self.nick),
                ));
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
                Err(e) => {
                    let kind = match &e {
                        tungstenite::Error::ConnectionClosed
                        | tungstenite::Error::AlreadyClosed
                        | tungstenite::Error::Io(_)
                        | tungstenite::Error::Protocol(
                            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                        ) => ErrorKind::Closed,
                        _ => ErrorKind::Protocol,
                    };
                    return Err(ClientError::new(kind, format!("[{}] {e:?}", self.nick)));
                }
            }
        }
    }

    /// The next message within [`TIMEOUT`].
    pub fn recv(&mut self) -> ClientResult<Message> {
        let deadline = Instant::now() + TIMEOUT;
        self.recv_until(deadline).map_err(|e| {
            ClientError::new(
                e.kind(),
                format!("no WebSocket message: {e}; seen:\n{}", self.recent()),
            )
        })
    }

    /// Waits for a data message whose payload matches `pred`; checks on the way that
    /// every data message is exactly one IRC line without CR or LF, and answers IRC
    /// PINGs.
    pub fn expect_msg(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> ClientResult<Message> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let m = self.recv_until(deadline).map_err(|e| {
                ClientError::new(
                    e.kind(),
                    format!(
                        "[{}] while waiting for {what}: {e}; seen:\n{}",
                        self.nick,
                        self.recent()
                    ),
                )
            })?;
            let data: &[u8] = match &m {
                Message::Text(t) => t.as_bytes(),
                Message::Binary(b) => b,
                _ => continue,
            };
            if data.is_empty() || data.contains(&b'\r') || data.contains(&b'\n') {
                return Err(ClientError::new(
                    ErrorKind::Protocol,
                    format!(
                        "[{}] a WebSocket message that is not one IRC line: {:?}",
                        self.nick,
                        show(data)
                    ),
                ));
            }
            if pred(data) {
                return Ok(m);
            }
            if let Some(pong) = testkit::client::pong_for(data) {
                self.send_line(&show(&pong))?;
            }
        }
    }

    pub fn recent(&self) -> String {
        let n = self.seen.len();
        self.seen[n.saturating_sub(25)..].join("\n")
    }
}

/// The test kit's IRC conversation over tungstenite: every line one text message.
impl IrcLines for WsClient {
    fn name(&self) -> &str {
        &self.nick
    }

    fn send_line(&mut self, line: &str) -> ClientResult<()> {
        self.ws
            .send(Message::Text(line.to_string()))
            .map_err(|e| self.failed("WebSocket send", e))
    }

    fn wait_line(
        &mut self,
        what: &str,
        pred: &mut dyn FnMut(&[u8]) -> bool,
    ) -> ClientResult<Vec<u8>> {
        self.expect_msg(what, pred).map(Message::into_data)
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
// Raw HTTP
// ---------------------------------------------------------------------------------------

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

/// Sends `bytes` to a WebSocket port and reads the response.
pub fn http_exchange(port: u16, bytes: &[u8]) -> ClientResult<HttpResponse> {
    let mut c = Client::raw(None, port)?;
    c.send(bytes)?;
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
