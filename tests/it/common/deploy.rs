//! Real reverse proxies in front of the test's InspIRCd: Debian's nginx and HAProxy, each
//! a child process of the test with a generated configuration in the server's temp dir,
//! stopped by PID on drop; and clients that reach them from distinct loopback source
//! addresses, so that each client is a distinct "real user" as the proxy sees it
//! (nginx's `$remote_addr`).
//!
//! A proxy reaches InspIRCd's WebSocket port from 127.0.0.1, which is therefore the
//! proxy's address as InspIRCd sees it (what `proxyranges` trusts). Clients use
//! 127.0.0.2 and up ([`ip`], [`real_addr`]), never 127.0.0.1.
//!
//! As everywhere in the harness, every wait is for a concrete event with a bounded
//! deadline and a message saying what was awaited and what was seen.

use super::*;

use std::fs;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use testkit::ports::{free_port, free_port_dual};
use testkit::process::KillOnDrop;

pub const NGINX: &str = "/usr/sbin/nginx";
pub const HAPROXY: &str = "/usr/sbin/haproxy";

/// The proxy's own address as InspIRCd sees it: its upstream connections come from here.
pub const PROXY_ADDR: &str = "127.0.0.1";

/// nginx recipe: both headers, each from the connection (`$remote_addr`), the forwarded
/// list appended to whatever the client sent.
pub const RECIPE_REAL_IP_AND_XFF: &str = "proxy_set_header X-Real-IP $remote_addr;\n\
     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;";
/// nginx recipe: only X-Forwarded-For (the old README recipe). A client's own X-Real-IP
/// passes through unchanged.
pub const RECIPE_XFF_ONLY: &str = "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;";
/// nginx recipe: only X-Real-IP. A client's own X-Forwarded-For passes through unchanged.
pub const RECIPE_REAL_IP_ONLY: &str = "proxy_set_header X-Real-IP $remote_addr;";

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A client source address 127.0.0.`last` (2 to 254; 127.0.0.1 is the proxy's).
pub fn ip(last: u8) -> Ipv4Addr {
    assert!(
        (2..=254).contains(&last),
        "127.0.0.{last} is not a client address (127.0.0.1 is the proxy's)"
    );
    Ipv4Addr::new(127, 0, 0, last)
}

/// The `n`th of many distinct client addresses: 127.0.0.2 ... 127.0.0.254, then
/// 127.0.1.2 ... 127.0.1.254, and so on (never x.x.x.0, .1 or .255).
pub fn real_addr(n: u32) -> Ipv4Addr {
    let third = n / 253;
    assert!(third < 256, "real_addr({n}): out of addresses");
    Ipv4Addr::new(127, 0, third as u8, (n % 253 + 2) as u8)
}

// ---------------------------------------------------------------------------------------
// <connect> classes
// ---------------------------------------------------------------------------------------

/// A `<connect name="...">` tag with the harness's defaults, `attrs` (`key="value" ...`)
/// overriding or adding keys. A `deny` key drops the default `allow`.
pub fn connect_tag(name: &str, attrs: &str) -> String {
    testkit::inspircd::connect_tag(launcher().install.dialect, name, attrs)
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

enum Ready {
    Yes,
    PortTaken,
}

/// Waits until the proxy on `port` answers `GET /__ready` with `token` (so it is this
/// proxy, listening), or exits. `bind_error` tells a port clash in its output.
fn wait_ready(
    what: &str,
    proc_: &mut KillOnDrop,
    port: u16,
    token: &str,
    output: &dyn Fn() -> String,
    bind_error: &str,
) -> Ready {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(Some(st)) = proc_.0.try_wait() {
            let out = output();
            if out.contains(bind_error) {
                return Ready::PortTaken;
            }
            panic!("{what} exited during startup ({st}); output:\n{out}");
        }
        let last = match probe(port) {
            Ok(body) if body.contains(token) => return Ready::Yes,
            Ok(body) => format!("an answer without the token: {body:?}"),
            Err(e) => format!("{e}"),
        };
        if Instant::now() >= deadline {
            panic!(
                "{what} on port {port} did not answer GET /__ready within {TIMEOUT:?} (last: {last}); output:\n{}",
                output()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `GET /__ready` on 127.0.0.1:port from 127.0.0.1; the whole answer.
fn probe(port: u16) -> io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /__ready HTTP/1.0\r\nHost: ready\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(show(&out))
}

fn new_dir(server: &Server, kind: &str) -> PathBuf {
    let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
    let dir = server.dir().join(format!("{kind}-{n}"));
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts a proxy of the test (`what`: nginx or haproxy) in a directory of its own in
/// the server's: writes its configuration (`render(dir, port, token)`) to `conf_file`,
/// runs `command(dir, conf path)` with its output in stdout.txt, and waits until it
/// answers on its port, trying other ports when one was taken. Its `logs` files
/// together are its output for failure messages.
fn start_proxy(
    what: &str,
    server: &Server,
    conf_file: &str,
    free: fn() -> u16,
    render: &dyn Fn(&Path, u16, &str) -> String,
    command: &dyn Fn(&Path, &Path) -> Command,
    logs: &[&str],
) -> (u16, PathBuf, KillOnDrop) {
    let dir = new_dir(server, what);
    let conf_path = dir.join(conf_file);
    for _attempt in 0..5 {
        let port = free();
        let token = format!("{what}-ready-{}", dir.display());
        fs::write(&conf_path, render(&dir, port, &token)).unwrap();
        let out = fs::File::create(dir.join("stdout.txt")).unwrap();
        let err = out.try_clone().unwrap();
        let child = command(&dir, &conf_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what} (apt-get install {what}): {e}"));
        let mut proc_ = KillOnDrop(child);
        let output = || logs.iter().map(|f| read_lossy(&dir.join(f))).collect();
        match wait_ready(
            what,
            &mut proc_,
            port,
            &token,
            &output,
            "Address already in use",
        ) {
            Ready::Yes => return (port, dir, proc_),
            Ready::PortTaken => continue,
        }
    }
    panic!("{what}: could not bind a free port 5 times");
}

// ---------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------

/// What goes into a test's nginx configuration besides the fixed WebSocket proxying.
#[derive(Clone, Debug, Default)]
pub struct NginxConf {
    /// The `proxy_set_header` lines for the real address (the `RECIPE_*` constants).
    pub recipe: String,
    /// More directives in the proxied location, e.g. `proxy_read_timeout 100s;`.
    pub location: String,
    /// More directives at server level, e.g. `large_client_header_buffers 4 16k;`.
    pub server: String,
    /// Also `listen [::]:PORT ipv6only=off;` instead of `listen 127.0.0.1:PORT;`: IPv4
    /// clients then appear to nginx as `::ffff:a.b.c.d`.
    pub dual_stack: bool,
}

impl NginxConf {
    pub fn new(recipe: &str) -> NginxConf {
        NginxConf {
            recipe: recipe.to_string(),
            ..NginxConf::default()
        }
    }
    pub fn location(mut self, directives: &str) -> NginxConf {
        self.location.push_str(directives);
        self.location.push('\n');
        self
    }
    pub fn server(mut self, directives: &str) -> NginxConf {
        self.server.push_str(directives);
        self.server.push('\n');
        self
    }
    pub fn dual_stack(mut self) -> NginxConf {
        self.dual_stack = true;
        self
    }

    fn render(&self, dir: &Path, port: u16, upstream: u16, token: &str) -> String {
        let d = dir.display();
        let listen = if self.dual_stack {
            format!("listen [::]:{port} ipv6only=off;")
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 4096; }}
http {{
    log_format upstream '$remote_addr "$request" $status $request_length upstream=$upstream_addr upstream_status=$upstream_status';
    access_log {d}/access.log upstream;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        {listen}
        {server}
        location = /__ready {{ return 200 "{token}"; }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            {recipe}
            {location}
        }}
    }}
}}
"#,
            server = self.server,
            recipe = self.recipe,
            location = self.location,
        )
    }

    /// Starts nginx in front of `server`'s WebSocket port; returns once it answers.
    pub fn start(&self, server: &Server) -> Nginx {
        let free = if self.dual_stack {
            free_port_dual
        } else {
            free_port
        };
        let (port, dir, proc_) = start_proxy(
            "nginx",
            server,
            "nginx.conf",
            free,
            &|dir, port, token| self.render(dir, port, server.ws_port, token),
            &|dir, conf| {
                let mut c = Command::new(NGINX);
                c.arg("-p").arg(dir).arg("-c").arg(conf);
                c.arg("-e").arg(dir.join("error.log"));
                c
            },
            &["stdout.txt", "error.log"],
        );
        Nginx {
            port,
            dir,
            _proc: proc_,
        }
    }
}

/// A running nginx (one process: `master_process off`).
pub struct Nginx {
    pub port: u16,
    pub dir: PathBuf,
    _proc: KillOnDrop,
}

impl Nginx {
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join("error.log"))
    }
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.join("access.log"))
    }
    /// Both logs' last lines, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "nginx access log:\n{}\nnginx error log:\n{}",
            tail(&self.access_log(), 10),
            tail(&self.error_log(), 10)
        )
    }
}

// ---------------------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------------------

/// What goes into a test's HAProxy configuration (mode http, WebSocket-capable
/// timeouts: `timeout tunnel` governs an upgraded connection).
#[derive(Clone, Debug)]
pub struct HaproxyConf {
    /// `option forwardfor`: adds an X-Forwarded-For line with the client's address,
    /// after (not merged with) any the client sent.
    pub forwardfor: bool,
    /// More lines for the backend section.
    pub backend: String,
}

impl Default for HaproxyConf {
    fn default() -> Self {
        HaproxyConf {
            forwardfor: true,
            backend: String::new(),
        }
    }
}

impl HaproxyConf {
    fn render(&self, port: u16, upstream: u16, token: &str) -> String {
        format!(
            r#"global
    maxconn 4096
    nbthread 1
defaults
    mode http
    {forwardfor}
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout tunnel 1h
frontend ws
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "{token}" if {{ path /__ready }}
    default_backend ircd
backend ircd
    server ircd 127.0.0.1:{upstream}
    {backend}
"#,
            forwardfor = if self.forwardfor {
                "option forwardfor"
            } else {
                ""
            },
            backend = self.backend,
        )
    }

    /// Starts HAProxy in front of `server`'s WebSocket port; returns once it answers.
    pub fn start(&self, server: &Server) -> Haproxy {
        let (port, dir, proc_) = start_proxy(
            "haproxy",
            server,
            "haproxy.cfg",
            free_port,
            &|_, port, token| self.render(port, server.ws_port, token),
            &|_, conf| {
                let mut c = Command::new(HAPROXY);
                c.arg("-db").arg("-f").arg(conf);
                c
            },
            &["stdout.txt"],
        );
        Haproxy {
            port,
            dir,
            _proc: proc_,
        }
    }
}

/// A running HAProxy.
pub struct Haproxy {
    pub port: u16,
    pub dir: PathBuf,
    _proc: KillOnDrop,
}

impl Haproxy {
    pub fn output(&self) -> String {
        read_lossy(&self.dir.join("stdout.txt"))
    }
}

/// A proxy of the test with a configuration of its own: `render(dir, ready_port, token)`
/// must make the proxy answer `GET /__ready` on `ready_port` with `token` (its other
/// listeners are the caller's to choose). `what` is "nginx" or "haproxy".
pub fn start_custom_proxy(
    what: &str,
    server: &Server,
    render: &dyn Fn(&Path, u16, &str) -> String,
) -> (u16, PathBuf, KillOnDrop) {
    let nginx = what == "nginx";
    start_proxy(
        what,
        server,
        if nginx { "nginx.conf" } else { "haproxy.cfg" },
        free_port,
        render,
        &|dir, conf| {
            let mut c = Command::new(if nginx { NGINX } else { HAPROXY });
            if nginx {
                c.arg("-p").arg(dir).arg("-c").arg(conf);
                c.arg("-e").arg(dir.join("error.log"));
            } else {
                c.arg("-db").arg("-f").arg(conf);
            }
            c
        },
        &["stdout.txt", "error.log"],
    )
}

// ---------------------------------------------------------------------------------------
// Clients from a chosen source address
// ---------------------------------------------------------------------------------------

/// A WebSocket handshake through the proxy on `port` from `src` (tungstenite's client
/// over the pre-bound socket).
// Tests match on tungstenite's own error, large as it is (as `WsClient::connect`).
#[allow(clippy::result_large_err)]
pub fn ws_via(port: u16, src: Ipv4Addr, opts: &WsOpts) -> Result<WsClient, tungstenite::Error> {
    let tcp = connect_from(src, port)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    WsClient::handshake(Stream::Plain(tcp), "ws", port, opts)
}

/// A wss:// handshake through the proxy on `port` (TLS terminated there, with the
/// certificate `cert_pem`) from `src`.
#[allow(clippy::result_large_err)]
pub fn wss_via(
    port: u16,
    src: Ipv4Addr,
    opts: &WsOpts,
    cert_pem: &Path,
) -> Result<WsClient, tungstenite::Error> {
    let tcp = connect_from(src, port)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    let tls = rustls::StreamOwned::new(tls_client(cert_pem), tcp);
    WsClient::handshake(Stream::Tls(Box::new(tls)), "wss", port, opts)
}

/// A WebSocket user through the proxy on `port` from `src`, registered as `nick`.
pub fn ws_user_via(port: u16, src: Ipv4Addr, nick: &str) -> ClientResult<WsClient> {
    let mut c = ws_via(port, src, &WsOpts::default()).map_err(|e| {
        ClientError::new(
            ErrorKind::Protocol,
            format!(
                "[{nick}] handshake through the proxy from {src} failed: {}",
                describe_ws_error(&e)
            ),
        )
    })?;
    c.register(nick)?;
    Ok(c)
}

/// A plain IRC client connected from `src` that has sent NICK/USER.
pub fn irc_start_from(src: Ipv4Addr, port: u16, nick: &str) -> ClientResult<Client> {
    let mut c = Client::irc(Some(src), port)?.ident("u", "Plain user");
    c.start_register(nick)?;
    Ok(c)
}

/// A plain IRC user connected from `src`, registered as `nick`.
pub fn irc_from(src: Ipv4Addr, port: u16, nick: &str) -> ClientResult<Client> {
    let mut c = irc_start_from(src, port, nick)?;
    c.wait_welcome()?;
    Ok(c)
}

/// How a user's attempt to connect and register through a proxy ended.
pub enum Attempt {
    /// 001 arrived.
    Registered(Box<WsClient>),
    /// No 101: the proxy's or the server's HTTP answer, or an I/O error, described.
    HandshakeFailed(String),
    /// 101, then the connection ended before 001; the messages received, and how it
    /// ended.
    Closed { seen: Vec<String>, end: String },
}

impl Attempt {
    pub fn is_registered(&self) -> bool {
        matches!(self, Attempt::Registered(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Attempt::Registered(c) => format!("registered as {}", c.nick),
            Attempt::HandshakeFailed(e) => format!("handshake failed: {e}"),
            Attempt::Closed { seen, end } => {
                format!("upgraded, then closed ({end}) after {seen:?}")
            }
        }
    }

    /// The client, or a panic naming `what` and how the attempt ended.
    pub fn registered(self, what: &str) -> WsClient {
        match self {
            Attempt::Registered(c) => *c,
            other => panic!(
                "{what}: expected registration, but the {}",
                other.describe()
            ),
        }
    }

    /// Asserts that the user did not get in; `what` names the attempt.
    pub fn assert_refused(&self, what: &str) {
        assert!(
            !self.is_registered(),
            "{what}: expected a refusal, but the user {}",
            self.describe()
        );
    }

    /// Everything the client was told, for matching a quit reason.
    pub fn text(&self) -> String {
        match self {
            Attempt::Registered(c) => c.seen.join("\n"),
            Attempt::HandshakeFailed(e) => e.clone(),
            Attempt::Closed { seen, end } => format!("{}\n{end}", seen.join("\n")),
        }
    }
}

/// Connects through the proxy on `port` from `src`, sends NICK/USER and waits for 001 or
/// the end of the connection (answering IRC PINGs). Fails only on a timeout.
pub fn attempt_via(port: u16, src: Ipv4Addr, nick: &str, opts: &WsOpts) -> Attempt {
    let mut c = match ws_via(port, src, opts) {
        Ok(c) => c,
        Err(e) => return Attempt::HandshakeFailed(describe_ws_error(&e)),
    };
    c.nick = nick.to_string();
    // The server may already be closing (a ban on the real address): ignore send errors
    // and read what it said.
    let _ = c.start_register(nick);
    match c.expect_msg("001 or the end of the connection", |l| is_numeric(l, "001")) {
        Ok(_) => Attempt::Registered(Box::new(c)),
        Err(e) if e.is_timeout() => panic!(
            "[{nick}] from {src}: neither 001 nor the end of the connection within {TIMEOUT:?}; seen:\n{}",
            c.recent()
        ),
        Err(end) => Attempt::Closed {
            seen: c.seen.clone(),
            end: end.to_string(),
        },
    }
}

/// [`attempt_via`] with the default handshake options.
pub fn attempt_user_via(port: u16, src: Ipv4Addr, nick: &str) -> Attempt {
    attempt_via(port, src, nick, &WsOpts::default())
}

// ---------------------------------------------------------------------------------------
// The server's log
// ---------------------------------------------------------------------------------------

/// Waits until at least `n` log lines satisfy `pred`; returns them.
pub fn wait_log_count(
    server: &Server,
    what: &str,
    n: usize,
    pred: impl Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    match poll_until(deadline, || {
        let v = server.log_lines(&pred);
        (v.len() >= n).then_some(v)
    }) {
        Some(v) => v,
        None => panic!(
            "timed out waiting for {n} log lines: {what}; found {:?}\nlog tail:\n{}",
            server.log_lines(&pred),
            tail(&server.log(), 40)
        ),
    }
}

/// Waits for the log line of a quit whose reason contains `reason`.
pub fn wait_quit(server: &Server, reason: &str) -> String {
    server.wait_log(&format!("a QuitUser line with reason {reason:?}"), |l| {
        l.contains("QuitUser:") && l.contains(reason)
    })
}

// ---------------------------------------------------------------------------------------
// Wall-clock hours
// ---------------------------------------------------------------------------------------

fn unix_hour(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() / 3600
}

/// Runs `scenario`; if it fails and the wall clock passed a full hour meanwhile, runs it
/// once more. InspIRCd calls OnGarbageCollect at every full hour (`TIME % 3600 == 0`),
/// and connectban then forgets its connection counts, so a scenario that counts
/// connections means something only within one hour.
pub fn within_one_hour(scenario: impl Fn()) {
    for attempt in 0..2 {
        let start = SystemTime::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&scenario));
        match r {
            Ok(()) => return,
            Err(e) if attempt == 0 && unix_hour(start) != unix_hour(SystemTime::now()) => {
                eprintln!("a full hour passed during the scenario (connectban's counts were cleared): running it again");
                drop(e);
            }
            Err(e) => std::panic::resume_unwind(e),
        }
    }
}

/// nginx's own refusal of a request head larger than its buffers (the module never
/// saw it).
pub fn is_nginx_too_large(r: &HttpResponse) -> bool {
    r.status == 400 && r.body_str().contains("Request Header Or Cookie Too Large")
}
