//! Shared harness for the integration tests: a real `/usr/sbin/inspircd` per test,
//! configured in a private temp dir with a private module directory, plus IRC, WebSocket
//! (tungstenite), raw HTTP and raw frame clients.
//!
//! Nothing here sleeps to wait for state: every wait is for a concrete event (a line on
//! a socket, a line in a file, a process exit) with a bounded deadline that fails the
//! test with a message saying what was awaited and what was seen instead.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// nginx and HAProxy in front of the server, clients from chosen source addresses.
pub mod deploy;
/// Node.js and the npm packages of tests/web (irc-framework, the browser driver).
pub mod node;

/// Upper bound for every wait in the suite.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The origin allowed by the default `<wsorigin>`.
pub const ORIGIN: &str = "https://good.example";
/// A key from RFC 6455 section 1.3 and its accept value.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const INSPIRCD: &str = "/usr/sbin/inspircd";
const STOCK_MODULE_DIR: &str = "/usr/lib/inspircd/modules";

// ---------------------------------------------------------------------------------------
// Module under test
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// This project's module: `$WS_MODULE`, else `<crate>/m_websocket.so`.
    Ours,
    /// Debian's InspIRCd 3.15 `m_websocket.so` (needs `m_sha1.so`).
    Stock,
}

impl Module {
    pub fn path(self) -> PathBuf {
        match self {
            Module::Ours => {
                let p = match std::env::var_os("WS_MODULE") {
                    Some(p) => PathBuf::from(p),
                    None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/m_websocket.so")),
                };
                if !p.exists() {
                    panic!(
                        "m_websocket.so not built: run `make` first (looked for {})",
                        p.display()
                    );
                }
                p
            }
            Module::Stock => PathBuf::from(STOCK_MODULE_DIR).join("m_websocket.so"),
        }
    }
}

/// Two `#[test]` wrappers for a body taking a [`Module`].
/// Use with `#[macro_use] mod common;`.
#[allow(unused_macros)]
macro_rules! both_modules {
    ($ours:ident, $stock:ident, $body:path) => {
        #[test]
        fn $ours() {
            $body(common::Module::Ours)
        }
        #[test]
        fn $stock() {
            $body(common::Module::Stock)
        }
    };
}

// ---------------------------------------------------------------------------------------
// Server configuration
// ---------------------------------------------------------------------------------------

/// TLS material for a `wss` listener.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the test wants in the server configuration.
#[derive(Clone, Debug)]
pub struct Conf {
    pub module: Module,
    /// Attributes of the `<websocket ...>` tag; `None` for no tag.
    pub websocket: Option<String>,
    /// One `<wsorigin allow="...">` per entry.
    pub origins: Vec<String>,
    /// Free-form config text appended at the end (e.g. a `<wsorigin>` without allow).
    pub extra: String,
    /// Whether to load the websocket module at all.
    pub load_module: bool,
    /// Adds `ssl_gnutls` and a `wss` listener.
    pub tls: bool,
    /// `<connect hardsendq>`.
    pub hardsendq: String,
    /// `<connect threshold>`: flood penalty (seconds) before "Excess Flood".
    pub threshold: String,
    /// Links this server to another (m_spanningtree); see [`Server::start_linked`].
    pub link: Option<Link>,
    /// Replaces the default `<connect name="main" ...>` block when set (e.g. several
    /// classes; see `deploy::connect_tag`).
    pub connect: Option<String>,
}

/// A spanningtree link between two test servers on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct Link {
    /// This server's name and server ID.
    pub name: String,
    pub sid: String,
    /// The other server's name.
    pub peer: String,
    /// The other server's `type="servers"` port, when this one connects to it.
    pub connect_to: Option<u16>,
}

/// The password both ends of a test link use.
const LINK_PASSWORD: &str = "linkpass";

impl Conf {
    pub fn new(module: Module) -> Conf {
        Conf {
            module,
            websocket: None,
            origins: vec![ORIGIN.to_string()],
            extra: String::new(),
            load_module: true,
            tls: false,
            hardsendq: "64M".to_string(),
            threshold: "1000000".to_string(),
            link: None,
            connect: None,
        }
    }
    pub fn websocket(mut self, attrs: &str) -> Conf {
        self.websocket = Some(attrs.to_string());
        self
    }
    pub fn origins(mut self, origins: &[&str]) -> Conf {
        self.origins = origins.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn extra(mut self, text: &str) -> Conf {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }
    pub fn threshold(mut self, v: &str) -> Conf {
        self.threshold = v.to_string();
        self
    }
    pub fn hardsendq(mut self, v: &str) -> Conf {
        self.hardsendq = v.to_string();
        self
    }
    pub fn tls(mut self) -> Conf {
        self.tls = true;
        self
    }
    /// Replaces the default `<connect>` block with `text` (one or more tags).
    pub fn connect(mut self, text: &str) -> Conf {
        self.connect = Some(text.to_string());
        self
    }
    /// Loads another InspIRCd module (`<module name="...">`, appended like `extra`).
    pub fn module(self, name: &str) -> Conf {
        self.extra(&format!("<module name=\"{name}\">"))
    }
}

#[derive(Clone, Copy, Debug)]
struct Ports {
    irc: u16,
    ws: u16,
    wss: u16,
    /// `type="servers"` (used when the server is linked).
    link: u16,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

fn free_ports() -> Ports {
    // Hold all the listeners at once so the ports differ.
    let held: Vec<TcpListener> = (0..4)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let port = |i: usize| held[i].local_addr().unwrap().port();
    Ports {
        irc: port(0),
        ws: port(1),
        wss: port(2),
        link: port(3),
    }
}

/// The harness's `<connect>` block: one class for everyone, limits out of the way.
fn default_connect(conf: &Conf) -> String {
    format!(
        r#"<connect name="main" allow="*" resolvehostnames="no" useident="no" timeout="60" pingfreq="600"
         threshold="{threshold}" commandrate="1000000000" fakelag="no" recvq="1M" softsendq="65536" hardsendq="{hardsendq}"
         localmax="10000" globalmax="10000" limit="10000" maxchans="50">"#,
        hardsendq = conf.hardsendq,
        threshold = conf.threshold,
    )
}

fn render_config(conf: &Conf, dir: &Path, ports: Ports) -> String {
    let d = dir.display();
    let mut s = String::new();
    writeln!(
        s,
        r#"<path configdir="{d}" datadir="{d}" logdir="{d}" moduledir="{d}/modules" runtimedir="{d}">
<server name="{name}" description="Test server" network="Test"{sid}>
<admin name="Admin" nick="admin" email="admin@test.example">
<pid file="{d}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="debug" flush="1" target="{d}/ircd.log">
<bind address="127.0.0.1" port="{irc}" type="clients">
<bind address="127.0.0.1" port="{ws}" type="clients" hook="websocket">
{connect}
<class name="All" commands="*" privs="*" usermodes="*" chanmodes="*" snomasks="*">
<type name="Admin" classes="All">
<oper name="admin" password="secret" host="*@*" type="Admin">
<channels users="100" opers="100">
<performance netbuffersize="65534">"#,
        // 65534 is the largest netbuffersize InspIRCd accepts (out of range falls back to
        // 10240). With more data pending than one buffer, 3.15 reads one buffer per socket
        // per second, so a bigger buffer keeps bursts fast.
        name = conf.link.as_ref().map_or("test.example", |l| l.name.as_str()),
        sid = conf
            .link
            .as_ref()
            .map(|l| format!(r#" id="{}""#, l.sid))
            .unwrap_or_default(),
        irc = ports.irc,
        ws = ports.ws,
        connect = conf.connect.clone().unwrap_or_else(|| default_connect(conf)),
    )
    .unwrap();
    if conf.tls {
        writeln!(
            s,
            r#"<module name="ssl_gnutls">
<sslprofile name="wss" provider="gnutls" certfile="{d}/cert.pem" keyfile="{d}/key.pem" dhfile="" requestclientcert="no">
<bind address="127.0.0.1" port="{wss}" type="clients" hook="websocket" sslprofile="wss">"#,
            wss = ports.wss
        )
        .unwrap();
    }
    if let Some(link) = &conf.link {
        writeln!(
            s,
            r#"<module name="spanningtree">
<bind address="127.0.0.1" port="{port}" type="servers">
<link name="{peer}" ipaddr="127.0.0.1" port="{to}" allowmask="127.0.0.1/32" sendpass="{LINK_PASSWORD}" recvpass="{LINK_PASSWORD}">"#,
            port = ports.link,
            peer = link.peer,
            to = link.connect_to.unwrap_or(ports.link),
        )
        .unwrap();
        if link.connect_to.is_some() {
            writeln!(s, r#"<autoconnect period="1s" server="{}">"#, link.peer).unwrap();
        }
    }
    if conf.module == Module::Stock {
        s.push_str("<module name=\"sha1\">\n");
    }
    if conf.load_module {
        s.push_str("<module name=\"websocket\">\n");
    }
    if let Some(ws) = &conf.websocket {
        writeln!(s, "<websocket {ws}>").unwrap();
    }
    for o in &conf.origins {
        writeln!(s, "<wsorigin allow=\"{o}\">").unwrap();
    }
    s.push_str(&conf.extra);
    s
}

fn make_module_dir(dir: &Path, module: Module) {
    let mdir = dir.join("modules");
    fs::create_dir_all(&mdir).unwrap();
    for e in fs::read_dir(STOCK_MODULE_DIR).expect("read stock module dir") {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "m_websocket.so" {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), mdir.join(&name)).unwrap();
    }
    std::os::unix::fs::symlink(module.path(), mdir.join("m_websocket.so")).unwrap();
}

fn make_tls_files(dir: &Path) {
    let out = Command::new("/usr/bin/openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

pub struct Server {
    pub conf: Conf,
    pub dir: tempfile::TempDir,
    pub irc_port: u16,
    pub ws_port: u16,
    pub wss_port: u16,
    /// The `type="servers"` port (listening when the server is linked).
    pub link_port: u16,
    pub config_path: PathBuf,
    child: Child,
}

enum Startup {
    Running,
    BindFailed,
    Exited(ExitStatus),
}

fn spawn(dir: &Path, config_path: &Path) -> Child {
    let out = fs::File::create(dir.join("stdout.txt")).unwrap();
    let err = out.try_clone().unwrap();
    Command::new(INSPIRCD)
        .arg("--nofork")
        .arg("--runasroot")
        .arg(format!("--config={}", config_path.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn /usr/sbin/inspircd")
}

fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Polls a condition on a file-backed or process state until it holds or the deadline
/// passes. The pause between polls only paces the polling; the wait ends on the event.
fn poll_until<T>(deadline: Instant, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Server {
    /// Starts a server and waits until it reports that it is running with every
    /// listener bound. Retries on port clashes.
    pub fn start(conf: Conf) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("wstest-")
            .tempdir()
            .expect("temp dir");
        make_module_dir(dir.path(), conf.module);
        if conf.tls {
            make_tls_files(dir.path());
        }
        let config_path = dir.path().join("inspircd.conf");
        for _attempt in 0..5 {
            let ports = free_ports();
            fs::write(&config_path, render_config(&conf, dir.path(), ports)).unwrap();
            let mut child = spawn(dir.path(), &config_path);
            let stdout = dir.path().join("stdout.txt");
            let deadline = Instant::now() + TIMEOUT;
            let state = poll_until(deadline, || {
                let out = read_lossy(&stdout);
                if out.contains("failed to bind") {
                    return Some(Startup::BindFailed);
                }
                if out.contains("InspIRCd is now running") {
                    return Some(Startup::Running);
                }
                if let Ok(Some(st)) = child.try_wait() {
                    return Some(Startup::Exited(st));
                }
                None
            });
            match state {
                Some(Startup::Running) => {
                    return Server {
                        conf,
                        irc_port: ports.irc,
                        ws_port: ports.ws,
                        wss_port: ports.wss,
                        link_port: ports.link,
                        config_path,
                        child,
                        dir,
                    };
                }
                Some(Startup::BindFailed) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    continue;
                }
                Some(Startup::Exited(st)) => panic!(
                    "inspircd exited during startup ({st}); output:\n{}\nlog tail:\n{}",
                    read_lossy(&stdout),
                    tail(&read_lossy(&dir.path().join("ircd.log")), 30)
                ),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "inspircd did not report 'now running' within {TIMEOUT:?}; output:\n{}",
                        read_lossy(&stdout)
                    );
                }
            }
        }
        panic!("could not start inspircd: listeners failed to bind 5 times");
    }

    /// Runs a server that must refuse to start: waits for it to exit non-zero and
    /// returns its console output.
    pub fn start_expect_failure(conf: Conf) -> String {
        let dir = tempfile::Builder::new()
            .prefix("wstest-")
            .tempdir()
            .unwrap();
        make_module_dir(dir.path(), conf.module);
        let config_path = dir.path().join("inspircd.conf");
        let ports = free_ports();
        fs::write(&config_path, render_config(&conf, dir.path(), ports)).unwrap();
        let mut child = spawn(dir.path(), &config_path);
        let stdout = dir.path().join("stdout.txt");
        let deadline = Instant::now() + TIMEOUT;
        let st = poll_until(deadline, || {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(Ok(st));
            }
            if read_lossy(&stdout).contains("InspIRCd is now running") {
                return Some(Err(()));
            }
            None
        });
        match st {
            Some(Ok(st)) => {
                let out = read_lossy(&stdout);
                assert!(
                    !st.success(),
                    "inspircd exited successfully but should have refused the config; output:\n{out}"
                );
                out
            }
            Some(Err(())) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "inspircd started although the config must be refused; output:\n{}",
                    read_lossy(&stdout)
                );
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "inspircd neither exited nor started within {TIMEOUT:?}; output:\n{}",
                    read_lossy(&stdout)
                );
            }
        }
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

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Console output (stdout + stderr) so far.
    pub fn output(&self) -> String {
        read_lossy(&self.dir().join("stdout.txt"))
    }

    /// The debug log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir().join("ircd.log"))
    }

    /// Waits until a log line satisfies `pred`; returns that line.
    pub fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        match poll_until(deadline, || {
            self.log().lines().find(|l| pred(l)).map(|l| l.to_string())
        }) {
            Some(l) => l,
            None => panic!(
                "timed out waiting for a log line: {what}\nlog tail:\n{}",
                tail(&self.log(), 40)
            ),
        }
    }

    /// Rewrites the config file (same ports) with a new `Conf`, for REHASH tests.
    pub fn rewrite_config(&mut self, conf: Conf) {
        let ports = Ports {
            irc: self.irc_port,
            ws: self.ws_port,
            wss: self.wss_port,
            link: self.link_port,
        };
        fs::write(&self.config_path, render_config(&conf, self.dir(), ports)).unwrap();
        self.conf = conf;
    }

    /// True while the process runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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

    pub fn wait_welcome(&mut self) {
        self.expect("numeric 001", |l| is_numeric(l, "001"));
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
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
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

    /// Round trip: everything the server did for earlier lines is done when this returns.
    pub fn sync(&mut self, token: &str) {
        self.send(&format!("PING :{token}"));
        let want = format!(":{token}");
        self.expect(&format!("PONG {token}"), |l| {
            let s = show(l);
            s.contains(" PONG ") && s.ends_with(&want)
        });
    }

    pub fn join(&mut self, chan: &str) {
        self.send(&format!("JOIN {chan}"));
        self.expect(&format!("end of NAMES for {chan}"), |l| {
            is_numeric(l, "366")
        });
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

    pub fn wait_welcome(&mut self) {
        self.expect("numeric 001", |l| is_numeric(l, "001"));
    }

    /// WHOIS self and return the IP from numeric 378 ("is connecting from *@host IP").
    pub fn own_ip(&mut self) -> String {
        let nick = self.nick.clone();
        self.send_line(&format!("WHOIS {nick}"));
        let m = self.expect("numeric 378", |l| is_numeric(l, "378"));
        let line = show(&m.into_data());
        self.expect("end of WHOIS", |l| is_numeric(l, "318"));
        line.rsplit(' ').next().unwrap().to_string()
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

    pub fn sync(&mut self, token: &str) {
        self.send_line(&format!("PING :{token}"));
        let want = format!(":{token}");
        self.expect(&format!("PONG {token}"), |l| {
            let s = show(l);
            s.contains(" PONG ") && s.ends_with(&want)
        });
    }

    pub fn join(&mut self, chan: &str) {
        self.send_line(&format!("JOIN {chan}"));
        self.expect(&format!("end of NAMES for {chan}"), |l| {
            is_numeric(l, "366")
        });
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

/// One parsed WebSocket frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl RawFrame {
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, 8, "not a close frame: {self:?}");
        if self.payload.len() >= 2 {
            Some(u16::from_be_bytes([self.payload[0], self.payload[1]]))
        } else {
            None
        }
    }
}

pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// Encodes a client frame; `mask` = None sends it unmasked (a protocol violation).
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (opcode & 0x0f)];
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n <= 125 {
        out.push(mbit | n as u8);
    } else if n <= 0xffff {
        out.push(mbit | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

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
        let deadline = Instant::now() + TIMEOUT;
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            match self.fill(deadline) {
                Ok(()) => {}
                Err(ReadEnd::Eof) => panic!(
                    "connection closed before a complete HTTP response head; got {:?}",
                    show(&self.buf)
                ),
                Err(ReadEnd::Timeout) => panic!(
                    "timed out waiting for an HTTP response head; got {:?}",
                    show(&self.buf)
                ),
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
        let mut resp = HttpResponse {
            status,
            status_line,
            headers,
            body: Vec::new(),
            closed: false,
        };
        if status == 101 {
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one server frame from the front of `b`.
pub fn parse_frame(b: &[u8]) -> Option<(RawFrame, usize)> {
    if b.len() < 2 {
        return None;
    }
    let fin = b[0] & 0x80 != 0;
    let rsv = (b[0] >> 4) & 0x7;
    let opcode = b[0] & 0x0f;
    let masked = b[1] & 0x80 != 0;
    let mut len = (b[1] & 0x7f) as u64;
    let mut pos = 2;
    if len == 126 {
        if b.len() < 4 {
            return None;
        }
        len = u16::from_be_bytes([b[2], b[3]]) as u64;
        pos = 4;
    } else if len == 127 {
        if b.len() < 10 {
            return None;
        }
        len = u64::from_be_bytes(b[2..10].try_into().unwrap());
        pos = 10;
    }
    let mut key = [0u8; 4];
    if masked {
        if b.len() < pos + 4 {
            return None;
        }
        key.copy_from_slice(&b[pos..pos + 4]);
        pos += 4;
    }
    let end = pos + len as usize;
    if b.len() < end {
        return None;
    }
    let mut payload = b[pos..end].to_vec();
    if masked {
        for (i, x) in payload.iter_mut().enumerate() {
            *x ^= key[i % 4];
        }
    }
    Some((
        RawFrame {
            fin,
            rsv,
            opcode,
            masked,
            payload,
        },
        end,
    ))
}

/// A valid upgrade request (Host, Upgrade, Connection, key, version 13, Origin) plus
/// `extra` header lines.
pub fn upgrade_request(extra: &[&str]) -> Vec<u8> {
    let mut s = String::from(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    s.push_str(&format!(
        "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\nOrigin: {ORIGIN}\r\n"
    ));
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
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

pub fn unused_port() -> u16 {
    free_port()
}
