//! Real browsers against the real server: Debian's headless Chromium and Firefox ESR
//! load tests/web/browser.html from a static HTTP server on 127.0.0.1 (an origin the
//! server's `<wsorigin>` allows), and the page speaks IRC over the browser's own
//! `WebSocket` with the `text.ircv3.net` subprotocol to InspIRCd, over ws:// and over
//! wss:// (m_ssl_gnutls, a self-signed certificate the browsers are told to accept).
//!
//! One driver for both browsers: tests/web/browser_driver.js (puppeteer-core; Chromium
//! over the DevTools protocol, Firefox over WebDriver BiDi) runs as this test's child,
//! opens the page and evaluates the test's expressions in it, answering in JSON lines.
//! The page records what its connections saw; the test reads that as JSON.
//!
//! Two kinds of test, each for both browsers and both transports:
//! - `*_chat_over_*` (our module): two browser connections and a plain TCP IRC client
//!   in one channel; exact UTF-8 both ways, the subprotocol, 001; then one connection
//!   leaves with QUIT, one with `ws.close(1000)`, and both must see code 1000 with
//!   `wasClean`.
//! - `*_close_kinds_*::{ours,stock}`: three connections, closed three ways (QUIT,
//!   `ws.close(1000)`, UNLOADMODULE of the websocket module while open); the close event
//!   each browser reports is compared with what is expected of our module, and with what
//!   the stock module was measured to give (the reference).
//! - `*_compressed_chat` (our module, `compression="yes"`): the browser negotiates
//!   permessage-deflate (`ws.extensions`, and STATS W counts it), long and repetitive
//!   lines go both ways byte-exact, and a raw client in the channel that negotiates
//!   deflate too sees that the server compresses what it relays (RSV1).
//!
//! Needs /usr/bin/chromium and /usr/bin/firefox-esr (Debian's `chromium` and
//! `firefox-esr`; `CHROMIUM` and `FIREFOX` override the paths), and Node.js with npm
//! (the pinned puppeteer-core is installed into tests/web/node_modules by `npm ci` when
//! missing). Without them the tests fail, saying so.
//!
//! No wait depends on the relative timing of independent clients: the plain client is
//! in the channel (366) before any browser connection is opened, and every wait is for
//! a concrete event with a bounded deadline and a message saying what was awaited and
//! what was seen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::deflate::{assert_deflate_accepted, compressible_texts, deflate_client};
use crate::common::node::{ensure_node_modules, node_major, web_dir, NodeScript};
use crate::common::*;
use serde_json::{json, Value};

/// Upper bound for every wait on the page (and for one command to the driver).
const WAIT: Duration = Duration::from_secs(30);
/// Upper bound for starting a browser and loading the page (Firefox takes some
/// seconds on an idle machine, more on a busy one).
const LAUNCH_WAIT: Duration = Duration::from_secs(90);
const CHAN: &str = "#browser";
/// Sent by the browser (with the browser's name), checked byte-exact by the plain client.
const FROM_BROWSER: &str = "héllo from the browser ✓ 日本語 🎉";
/// Sent by the plain client, checked exact in the page.
const FROM_PLAIN: &str = "ünïcödé reply ☃ — 🚀";
const QUIT_MESSAGE: &str = "leaving: bye ✌";
/// What the websocket module says to its users when it is unloaded.
const UNLOAD_REASON: &str = "WebSocket module unloading";

// ---------------------------------------------------------------------------------------
// A static file server for the test page (a thread, stopped on drop)
// ---------------------------------------------------------------------------------------

struct StaticServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    /// Serves the files directly in `dir` (no subdirectories) on 127.0.0.1.
    fn start(dir: PathBuf) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    serve_one(conn, &dir);
                }
            }
        });
        StaticServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request per connection (`Connection: close`); GET only; plain file names only.
fn serve_one(conn: TcpStream, dir: &Path) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let name = target
        .split('?')
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    let ok_name = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    let file = if method == "GET" && ok_name {
        std::fs::read(dir.join(name)).ok()
    } else {
        None
    };
    let mut conn = conn;
    let (status, ctype, body) = match file {
        Some(b) => {
            let ctype = match name.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                _ => "application/octet-stream",
            };
            ("200 OK", ctype, b)
        }
        None => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    // Drain what the browser may still send so the close is clean.
    let mut sink = [0u8; 1024];
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
}

// ---------------------------------------------------------------------------------------
// The browsers and the driver process
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BrowserKind {
    Chromium,
    Firefox,
}

impl BrowserKind {
    /// The driver's name for it.
    fn name(self) -> &'static str {
        match self {
            BrowserKind::Chromium => "chromium",
            BrowserKind::Firefox => "firefox",
        }
    }

    /// The executable: `$CHROMIUM` / `$FIREFOX`, else Debian's. Fails clearly without it.
    fn executable(self) -> PathBuf {
        let (var, default, package) = match self {
            BrowserKind::Chromium => ("CHROMIUM", "/usr/bin/chromium", "chromium"),
            BrowserKind::Firefox => ("FIREFOX", "/usr/bin/firefox-esr", "firefox-esr"),
        };
        let p = std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default));
        if !p.exists() {
            panic!(
                "{self:?} is required for the browser tests and was not found at {}: \
                 install Debian's package (apt-get install {package}) or set {var}=/path/to/it",
                p.display()
            );
        }
        p
    }
}

/// tests/web/browser_driver.js with one browser and the page open in it.
///
/// On drop (also when the test panics): stdin is closed, which makes the driver close
/// the browser and exit; if it has not exited within 15 s it is killed by its PID. Then
/// the browser's process group (puppeteer starts the browser as a group leader; the
/// driver reports its PID) is killed by its ID if any process of it still runs, and
/// the profile and the browser's TMPDIR are removed.
struct Driver {
    kind: BrowserKind,
    node: NodeScript,
    browser_pid: Option<i32>,
    next_id: u64,
    /// Holds the browser profile (`profile/`), its TMPDIR (`tmp/`) and the driver's
    /// stderr.
    dir: tempfile::TempDir,
}

impl Driver {
    fn launch(kind: BrowserKind, url: &str) -> Driver {
        let exe = kind.executable();
        node_major(); // fails clearly without Node
        ensure_node_modules();
        let dir = tempfile::Builder::new()
            .prefix(&format!("wstest-{}-", kind.name()))
            .tempdir()
            .expect("temp dir for the browser");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).unwrap();
        // The browser's TMPDIR: Chromium keeps its singleton socket there, which it
        // leaves behind when puppeteer kills it at the end of browser.close().
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let config = json!({
            "browser": kind.name(),
            "executablePath": exe,
            "userDataDir": profile,
            "tmpDir": tmp,
            "url": url,
            "timeoutMs": LAUNCH_WAIT.as_millis() as u64,
        });
        // The end of stdin is the driver's quit: it closes the browser and exits; it
        // is killed by PID if still there 15 s on.
        let node = NodeScript::spawn(
            &[],
            "browser_driver.js",
            &config,
            &dir.path().join("driver-stderr.txt"),
            Duration::from_secs(15),
        );
        let mut driver = Driver {
            kind,
            node,
            browser_pid: None,
            next_id: 0,
            dir,
        };
        let ready = driver.next_line(LAUNCH_WAIT, "the browser to start and load the page");
        if ready["event"] != "ready" {
            panic!(
                "the driver did not report ready: {ready}{}",
                driver.context()
            );
        }
        driver.browser_pid = ready["browserPid"].as_i64().map(|p| p as i32);
        eprintln!(
            "[{}] {} ({})",
            kind.name(),
            ready["version"],
            ready["userAgent"]
        );
        let loaded = driver.eval("typeof window.irc === 'object'");
        assert_eq!(
            loaded,
            Value::Bool(true),
            "the test page did not load its script{}",
            driver.context()
        );
        driver
    }

    fn context(&self) -> String {
        format!(
            "\ndriver and browser output (tail):\n{}",
            tail(
                &std::fs::read_to_string(self.dir.path().join("driver-stderr.txt"))
                    .unwrap_or_default(),
                40
            )
        )
    }

    /// The driver's next line; fails on a "fatal" or unparsable one, on its exit, or
    /// after `limit`.
    fn next_line(&mut self, limit: Duration, what: &str) -> Value {
        match self.node.lines.recv_timeout(limit) {
            Ok(v) if v["event"] == "fatal" || v["event"] == "unparsed" => panic!(
                "[{}] the driver failed while waiting for {what}: {v}{}",
                self.kind.name(),
                self.context()
            ),
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!(
                "[{}] timed out after {limit:?} waiting for {what}{}",
                self.kind.name(),
                self.context()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "[{}] the driver exited ({:?}) while waiting for {what}{}",
                self.kind.name(),
                self.node.child.try_wait(),
                self.context()
            ),
        }
    }

    /// Evaluates a JS expression in the page; returns its JSON value (a promise is
    /// awaited). Fails on a JS exception, with the driver's output.
    fn eval(&mut self, js: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let cmd = json!({"id": id, "cmd": "eval", "expr": js});
        if let Err(e) = self.node.send(&cmd) {
            panic!(
                "[{}] writing to the driver failed ({e}){}",
                self.kind.name(),
                self.context()
            );
        }
        let answer = self.next_line(WAIT, &format!("the answer to {js:?}"));
        if answer["id"] != id {
            panic!(
                "[{}] answer out of order for {js:?} (id {id}): {answer}{}",
                self.kind.name(),
                self.context()
            );
        }
        if answer["ok"] != true {
            panic!(
                "[{}] evaluating {js:?} in the page failed: {}{}",
                self.kind.name(),
                answer["error"].as_str().unwrap_or_default(),
                self.context()
            );
        }
        answer["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // First the driver: it closes the browser.
        self.node.finish();
        let Some(pgid) = self.browser_pid.filter(|&p| p > 1) else {
            return;
        };
        let left = running_in_group(pgid);
        if !left.is_empty() {
            eprintln!(
                "[{}] processes of the browser's group {pgid} outlived its driver: {left:?}; killing the group",
                self.kind.name()
            );
            // SAFETY: kill(2) on the process group of the browser this test started;
            // it has running members, so its ID is still the browser's.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// PIDs of the processes in group `pgid` that are still running (not zombies: the
/// browser's helpers, orphaned when it exits, wait for init to reap them).
fn running_in_group(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------

/// The test page in a browser: calls its functions and reads what it saw.
struct Page {
    driver: Driver,
}

impl Page {
    fn open(kind: BrowserKind, url: &str) -> Page {
        Page {
            driver: Driver::launch(kind, url),
        }
    }

    fn name(&self) -> &'static str {
        self.driver.kind.name()
    }

    /// Calls `window.irc.<f>(args...)` with JSON-encoded arguments.
    fn call(&mut self, f: &str, args: &[Value]) {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.driver
            .eval(&format!("window.irc.{f}({}), true", args.join(", ")));
    }

    /// Everything the page saw, per connection id.
    fn state(&mut self) -> Value {
        self.driver.eval("JSON.parse(window.irc.snapshot())")
    }

    fn page_log(&mut self) -> String {
        match self
            .driver
            .eval("document.getElementById('log').textContent")
        {
            Value::String(s) => s,
            other => format!("{other:?}"),
        }
    }

    /// Polls the page state until `pred` holds for it; fails after [`WAIT`] with the
    /// page's state and log. (The pause between polls only paces the polling.)
    fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let st = self.state();
            if pred(&st) {
                return st;
            }
            if Instant::now() >= deadline {
                let log = self.page_log();
                panic!(
                    "[{}] timed out after {WAIT:?} waiting in the browser for {what}\npage state: {}\npage log:\n{log}{}",
                    self.name(),
                    serde_json::to_string_pretty(&st).unwrap(),
                    self.driver.context()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Opens connection `id` to `url`, offering the subprotocols `protocols`; it
    /// registers as `nick` and joins `CHAN`.
    fn connect(&mut self, id: &str, url: &str, nick: &str, protocols: &[&str]) {
        self.call(
            "connect",
            &[
                id.into(),
                url.into(),
                nick.into(),
                CHAN.into(),
                json!(protocols),
            ],
        );
    }

    /// Waits until each of `users` has registered and joined (366) or has closed;
    /// asserts it opened with the subprotocol `protocol`, got 001 for its nick and is
    /// still open.
    fn wait_joined(&mut self, users: &[(&str, &str)], protocol: &str) -> Value {
        let st = self.wait("every connection registered and in the channel", |st| {
            users
                .iter()
                .all(|(id, _)| st[id]["joined"] == Value::Bool(true) || !st[id]["close"].is_null())
        });
        let browser = self.name();
        for &(id, nick) in users {
            let s = &st[id];
            assert!(
                s["close"].is_null(),
                "[{browser} {nick}] the connection closed before joining: {s}"
            );
            assert_eq!(
                s["opened"],
                Value::Bool(true),
                "[{browser} {nick}] never opened: {s}"
            );
            assert_eq!(
                s["protocol"],
                Value::String(protocol.into()),
                "[{browser} {nick}] subprotocol the browser saw"
            );
            assert_eq!(
                s["welcomed"],
                Value::Bool(true),
                "[{browser} {nick}] no 001: {s}"
            );
            let lines = lines_of(&st, id);
            assert!(
                lines.iter().any(
                    |l| l.split(' ').nth(1) == Some("001") && l.split(' ').nth(2) == Some(nick)
                ),
                "[{browser} {nick}] 001 for {nick} not among the lines the browser got: {lines:#?}"
            );
        }
        st
    }
}

fn lines_of(st: &Value, id: &str) -> Vec<String> {
    st[id]["lines"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Shared steps
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Ws,
    Wss,
}

/// The server, the page server and the page in a browser, plus the plain client,
/// which is registered and in `CHAN` (366) before this returns, so it sees every
/// browser connection's JOIN.
struct Setup {
    _pages: StaticServer,
    server: Server,
    ws_url: String,
    plain: Client,
    page: Page,
}

fn setup(kind: BrowserKind, transport: Transport, module: Module, plain_nick: &str) -> Setup {
    setup_with(kind, transport, Conf::new(module), plain_nick)
}

/// [`setup`] with the server configuration `conf` (its origins are replaced by the
/// page's).
fn setup_with(kind: BrowserKind, transport: Transport, conf: Conf, plain_nick: &str) -> Setup {
    kind.executable(); // fails first, and clearly, without the browser
    let pages = StaticServer::start(web_dir());
    let origin = pages.origin();
    let mut conf = conf.origins(&[&origin]);
    if transport == Transport::Wss {
        conf = conf.tls();
    }
    let server = Server::start(conf);
    let ws_url = match transport {
        Transport::Ws => format!("ws://127.0.0.1:{}/", server.ws_port),
        Transport::Wss => format!("wss://127.0.0.1:{}/", server.wss_port),
    };
    // The plain client registers while the browser starts (InspIRCd completes
    // registrations on a one-second tick) ...
    let mut plain = Client::irc_start(server.irc_port, plain_nick).expect("a plain user");
    let page = Page::open(kind, &format!("{origin}/browser.html"));
    plain.wait_welcome().expect("001");
    // ... and is in the channel before any browser connection opens.
    plain.join(CHAN).expect("JOIN");
    Setup {
        _pages: pages,
        server,
        ws_url,
        plain,
        page,
    }
}

/// Waits until the plain client has seen one line matching `matcher(nick)` per nick,
/// in any order; returns them in `nicks` order.
fn expect_each<F: Fn(&str) -> bool>(
    plain: &mut Client,
    nicks: &[&str],
    what: &str,
    matcher: impl Fn(&str) -> F,
) -> Vec<String> {
    let preds: Vec<F> = nicks.iter().map(|n| matcher(n)).collect();
    let mut got: Vec<Option<String>> = vec![None; nicks.len()];
    while got.iter().any(Option::is_none) {
        let line = plain
            .expect_str(&format!("{what} of {nicks:?} (have {got:?})"), |l| {
                preds.iter().zip(&got).any(|(p, g)| g.is_none() && p(l))
            })
            .expect("the awaited line or frame");
        let i = preds
            .iter()
            .zip(&got)
            .position(|(p, g)| g.is_none() && p(&line))
            .unwrap();
        got[i] = Some(line);
    }
    got.into_iter().map(Option::unwrap).collect()
}

fn expect_joins(plain: &mut Client, nicks: &[&str]) {
    expect_each(plain, nicks, "JOIN", |nick| {
        let a = format!(":{nick}!web@127.0.0.1 JOIN :{CHAN}");
        let b = format!(":{nick}!web@127.0.0.1 JOIN {CHAN}");
        move |l: &str| l == a || l == b
    });
}

fn quit_prefix(nick: &str) -> String {
    format!(":{nick}!web@127.0.0.1 QUIT :")
}

// ---------------------------------------------------------------------------------------
// Chat: both ways, exact bytes, then QUIT and ws.close(1000)
// ---------------------------------------------------------------------------------------

fn chat(kind: BrowserKind, transport: Transport) {
    // Bound in this order so that the browser goes first (bindings drop in reverse).
    let Setup {
        _pages,
        mut server,
        ws_url,
        mut plain,
        mut page,
    } = setup(kind, transport, Module::Ours, "plain");
    let browser = kind.name();

    // Two browser connections: "webq" will leave with QUIT, "webc" with ws.close(1000).
    let users = [("q", "webq"), ("c", "webc")];
    let nicks = ["webq", "webc"];
    for (id, nick) in users {
        page.connect(id, &ws_url, nick, &["text.ircv3.net"]);
    }
    page.wait_joined(&users, "text.ircv3.net");
    // The plain user, in the channel before they connected, sees both arrive.
    expect_joins(&mut plain, &nicks);

    // Browser -> plain, exact bytes (UTF-8 with 2-, 3- and 4-byte characters). One
    // message at a time: the next is sent after the plain client got the previous one.
    for (id, nick) in users {
        let text = format!("{FROM_BROWSER} [{browser} {nick}]");
        page.call(
            "send",
            &[id.into(), format!("PRIVMSG {CHAN} :{text}").into()],
        );
        let got = plain
            .expect_line(&format!("PRIVMSG from {nick}"), |l| {
                show(l).contains(" PRIVMSG ")
            })
            .expect("the awaited line or frame");
        assert_eq!(
            show(&got),
            format!(":{nick}!web@127.0.0.1 PRIVMSG {CHAN} :{text}"),
            "what the plain client got from {browser}"
        );
        assert_eq!(
            got,
            format!(":{nick}!web@127.0.0.1 PRIVMSG {CHAN} :{text}").into_bytes(),
            "byte-exact"
        );
    }

    // Plain -> browser: one channel message both connections must see exactly. Each
    // browser connection has also seen the other's message (browser -> browser), and
    // before the plain client's: the server relayed it before the plain client got it,
    // and the plain client sent its message after that.
    plain
        .send_line(&format!("PRIVMSG {CHAN} :{FROM_PLAIN}"))
        .expect("send");
    let want = format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :{FROM_PLAIN}");
    let st = page.wait("the plain client's message in both connections", |st| {
        users.iter().all(|(id, _)| lines_of(st, id).contains(&want))
    });
    for ((id, nick), other) in users.iter().zip(["webc", "webq"]) {
        let privmsgs: Vec<String> = lines_of(&st, id)
            .into_iter()
            .filter(|l| l.contains(" PRIVMSG "))
            .collect();
        let from_other =
            format!(":{other}!web@127.0.0.1 PRIVMSG {CHAN} :{FROM_BROWSER} [{browser} {other}]");
        assert_eq!(
            privmsgs,
            vec![from_other, want.clone()],
            "[{browser} {nick}] PRIVMSG lines the browser received"
        );
    }
    // And a private message to one of them.
    plain
        .send_line(&format!("PRIVMSG webq :{FROM_PLAIN} (private)"))
        .expect("send");
    let want_private = format!(":plain!u@127.0.0.1 PRIVMSG webq :{FROM_PLAIN} (private)");
    page.wait("the private message in webq", |st| {
        lines_of(st, "q").contains(&want_private)
    });

    // Leave: webq with QUIT, webc with a close from the browser.
    page.call(
        "send",
        &["q".into(), format!("QUIT :{QUIT_MESSAGE}").into()],
    );
    page.call(
        "close",
        &["c".into(), 1000.into(), "bye from the page".into()],
    );
    let st = page.wait("close events on both connections", |st| {
        users.iter().all(|(id, _)| !st[id]["close"].is_null())
    });
    for (id, nick) in users {
        let s = &st[id];
        let close = &s["close"];
        assert_eq!(
            close["code"],
            Value::from(1000),
            "[{browser} {nick}] close code the browser reported (1006 = no close frame); state: {s}"
        );
        assert_eq!(
            close["wasClean"],
            Value::Bool(true),
            "[{browser} {nick}] the browser did not see a clean closing handshake: {s}"
        );
        assert_eq!(
            s["errors"],
            Value::from(0),
            "[{browser} {nick}] error events: {s}"
        );
        assert_eq!(
            s["nonText"],
            Value::from(0),
            "[{browser} {nick}] binary messages: {s}"
        );
        for l in lines_of(&st, id) {
            assert!(
                !l.contains('\r') && !l.contains('\n') && !l.is_empty(),
                "[{browser} {nick}] a message is not exactly one IRC line: {l:?}"
            );
        }
    }
    let q_reason = st["q"]["close"]["reason"].as_str().unwrap_or_default();
    assert!(
        q_reason.contains(QUIT_MESSAGE),
        "[{browser}] the close reason after QUIT should carry the quit message {QUIT_MESSAGE:?}; got {q_reason:?}"
    );

    // The plain client sees both leave (in either order).
    let quits = expect_each(&mut plain, &nicks, "QUIT", |nick| {
        let prefix = quit_prefix(nick);
        move |l: &str| l.starts_with(&prefix)
    });
    assert!(
        quits[0].ends_with(QUIT_MESSAGE),
        "webq's QUIT should end with its quit message {QUIT_MESSAGE:?}: {:?}",
        quits[0]
    );
    server.assert_alive();
}

#[test]
fn chromium_chat_over_ws() {
    chat(BrowserKind::Chromium, Transport::Ws);
}

#[test]
fn chromium_chat_over_wss() {
    chat(BrowserKind::Chromium, Transport::Wss);
}

#[test]
fn firefox_chat_over_ws() {
    chat(BrowserKind::Firefox, Transport::Ws);
}

#[test]
fn firefox_chat_over_wss() {
    chat(BrowserKind::Firefox, Transport::Wss);
}

// ---------------------------------------------------------------------------------------
// The clean-close matrix: {Firefox, Chromium} x {ws, wss} x {ours, stock}
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CloseKind {
    /// The page sends `QUIT :<message>`; the server ends the connection.
    Quit,
    /// The page calls `ws.close(1000, ...)`.
    ClientClose,
    /// An oper unloads the websocket module while the connection is open.
    Unload,
}

/// What the browser must report in its close event (and how many `error` events the
/// connection had).
#[derive(Clone, Debug)]
struct ExpectedClose {
    code: u64,
    was_clean: bool,
    reason: Reason,
    errors: u64,
}

#[derive(Clone, Debug)]
enum Reason {
    Exact(&'static str),
    Contains(&'static str),
    Any,
}

impl ExpectedClose {
    /// `got`: the page's record of one connection.
    fn mismatch(&self, got: &Value) -> Option<String> {
        let close = &got["close"];
        let reason = close["reason"].as_str().unwrap_or_default();
        let reason_ok = match self.reason {
            Reason::Exact(r) => reason == r,
            Reason::Contains(r) => reason.contains(r),
            Reason::Any => true,
        };
        if close["code"].as_u64() == Some(self.code)
            && close["wasClean"].as_bool() == Some(self.was_clean)
            && reason_ok
            && got["errors"].as_u64() == Some(self.errors)
        {
            None
        } else {
            Some(format!(
                "expected {self:?}, the browser reported {close} with {} error events",
                got["errors"]
            ))
        }
    }
}

fn expected_close(
    _kind: BrowserKind,
    _transport: Transport,
    module: Module,
    close: CloseKind,
) -> ExpectedClose {
    let exp = |code, was_clean, reason| ExpectedClose {
        code,
        was_clean,
        reason,
        errors: 0,
    };
    match module {
        // Our module: a close frame every time, then a closing handshake that both
        // browsers call clean, the same over ws:// and wss://.
        Module::Ours => match close {
            CloseKind::Quit => exp(1000, true, Reason::Contains(QUIT_MESSAGE)),
            CloseKind::ClientClose => exp(1000, true, Reason::Any),
            CloseKind::Unload => exp(1001, true, Reason::Exact(UNLOAD_REASON)),
        },
        // Debian's stock 3.15, as measured (the reference): it never sends a close
        // frame, it just closes TCP (after QUIT, on the browser's close frame, and when
        // unloaded), so Firefox and Chromium, over ws:// and wss:// alike, report 1006
        // ("closed abnormally"), no reason, wasClean false, and no error event.
        Module::Stock => exp(1006, false, Reason::Exact("")),
    }
}

fn close_kinds(kind: BrowserKind, transport: Transport, module: Module) {
    // Bound in this order so that the browser goes first (bindings drop in reverse).
    let Setup {
        _pages,
        mut server,
        ws_url,
        plain: mut oper,
        mut page,
    } = setup(kind, transport, module, "oper");
    let browser = kind.name();
    oper.oper().expect("OPER");

    // What a client that knows both names offers. Ours picks the first (the IRCv3
    // name), as stock does on InspIRCd 4; Debian's stock 3.15 knows only the second
    // (the ircv3.net names came in 3.18), and Chromium fails a connection whose offered
    // subprotocols the server ignores.
    let offered = ["text.ircv3.net", "text.inspircd.org"];
    let selected = match (module, dialect()) {
        (Module::Stock, Dialect::V3) => "text.inspircd.org",
        _ => "text.ircv3.net",
    };
    let users = [("q", "webq"), ("c", "webc"), ("u", "webu")];
    for (id, nick) in users {
        page.connect(id, &ws_url, nick, &offered);
    }
    page.wait_joined(&users, selected);
    expect_joins(&mut oper, &["webq", "webc", "webu"]);

    // q: QUIT. The oper sees the quit message; the browser gets its close event.
    page.call(
        "send",
        &["q".into(), format!("QUIT :{QUIT_MESSAGE}").into()],
    );
    let quit_q = oper
        .expect_str("webq's QUIT", |l| l.starts_with(&quit_prefix("webq")))
        .expect("webq's QUIT");
    assert!(
        quit_q.ends_with(QUIT_MESSAGE),
        "webq's QUIT should end with its quit message {QUIT_MESSAGE:?}: {quit_q:?}"
    );
    page.wait("the close event of q (after QUIT)", |st| {
        !st["q"]["close"].is_null()
    });

    // c: ws.close(1000) from the page.
    page.call(
        "close",
        &["c".into(), 1000.into(), "bye from the page".into()],
    );
    let quit_c = oper
        .expect_str("webc's QUIT", |l| l.starts_with(&quit_prefix("webc")))
        .expect("webc's QUIT");
    page.wait("the close event of c (after ws.close(1000))", |st| {
        !st["c"]["close"].is_null()
    });

    // u: still open; the oper unloads the module.
    let st = page.state();
    assert!(
        st["u"]["close"].is_null() && st["u"]["readyState"] == 1,
        "[{browser}] u should still be open before UNLOADMODULE: {}",
        st["u"]
    );
    oper.send_line("UNLOADMODULE m_websocket.so").expect("send");
    let st = page.wait("the close event of u (after UNLOADMODULE)", |st| {
        !st["u"]["close"].is_null()
    });

    // What each close looked like to the browser, against what is expected.
    let kinds = [
        ("q", CloseKind::Quit),
        ("c", CloseKind::ClientClose),
        ("u", CloseKind::Unload),
    ];
    let mut table = String::new();
    let mut mismatches = Vec::new();
    for (id, close) in kinds {
        let s = &st[id];
        let got = json!({
            "code": s["close"]["code"],
            "reason": s["close"]["reason"],
            "wasClean": s["close"]["wasClean"],
            "errors": s["errors"],
        });
        table.push_str(&format!("  {id} {close:?}: {got}\n"));
        if let Some(m) = expected_close(kind, transport, module, close).mismatch(s) {
            mismatches.push(format!("{id} ({close:?}): {m}"));
        }
    }
    eprintln!("[{browser} {transport:?} {module:?}] close events:\n{table}");
    assert!(
        mismatches.is_empty(),
        "[{browser} {transport:?} {module:?}] close events differ from the expected:\n{}\nall close events:\n{table}",
        mismatches.join("\n")
    );

    // The server unloaded the module, said why, and carries on.
    oper.expect_line("973 (module unloaded)", |l| is_numeric(l, "973"))
        .expect("973 (module unloaded)");
    let quit_u = oper
        .expect_str("webu's QUIT", |l| l.starts_with(&quit_prefix("webu")))
        .expect("webu's QUIT");
    assert!(
        quit_u.ends_with(&format!("QUIT :{UNLOAD_REASON}")),
        "webu's QUIT: {quit_u:?}"
    );
    eprintln!("[{browser} {transport:?} {module:?}] QUITs: {quit_q:?} {quit_c:?} {quit_u:?}");
    assert_server_answers(&mut server, &mut oper, "after UNLOADMODULE");
}

/// The server still answers `client` (a PING round trip) and runs. If the connection
/// ends or the answer does not come, says whether inspircd is still running (waiting
/// up to [`TIMEOUT`] for it to exit), with its output and log.
fn assert_server_answers(server: &mut Server, client: &mut Client, when: &str) {
    let token = "still-there";
    client.send_line(&format!("PING :{token}")).expect("send");
    let deadline = Instant::now() + TIMEOUT;
    let ended = loop {
        match client.line_until(deadline) {
            Ok(l) => {
                let l = show(&l);
                if l.contains(" PONG ") && l.ends_with(&format!(":{token}")) {
                    break None;
                }
            }
            Err(e) if e.is_closed() => break Some("the server closed the connection"),
            Err(_) => break Some("no answer"),
        }
    };
    if let Some(why) = ended {
        let exit_deadline = Instant::now() + TIMEOUT;
        while server.is_alive() && Instant::now() < exit_deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{when}: {why} to {}'s PING; inspircd is {}\nlast lines:\n{}\noutput:\n{}\nlog tail:\n{}",
            client.name,
            if server.is_alive() { "still running" } else { "gone (it died)" },
            client.recent(),
            tail(&server.output(), 20),
            tail(&server.log(), 40)
        );
    }
    server.assert_alive();
}

// One test per browser, transport and module: `<browser>_close_kinds_<transport>::<module>`.
both_modules!(firefox_close_kinds_ws, |m| close_kinds(
    BrowserKind::Firefox,
    Transport::Ws,
    m
));
both_modules!(firefox_close_kinds_wss, |m| close_kinds(
    BrowserKind::Firefox,
    Transport::Wss,
    m
));
both_modules!(chromium_close_kinds_ws, |m| close_kinds(
    BrowserKind::Chromium,
    Transport::Ws,
    m
));
both_modules!(chromium_close_kinds_wss, |m| close_kinds(
    BrowserKind::Chromium,
    Transport::Wss,
    m
));

// ---------------------------------------------------------------------------------------
// A site with large cookies
// ---------------------------------------------------------------------------------------

/// Cookies the page's site sets, in bytes: 4 cookies of 3 KiB (a cookie may hold 4 KiB).
const COOKIE_BYTES: usize = 12 * 1024;

/// Browsers send the site's cookies with the WebSocket handshake (cookies do not care
/// about the port, so the page's cookies for 127.0.0.1 go to the IRC server too). With
/// 12 KiB of them the request is over 12 KiB: the default `maxhandshake` (40K) admits
/// it; the old default of 8K refused it with 431, which the browser reports as a
/// failed connection (1006).
fn large_cookies(kind: BrowserKind, maxhandshake: Option<&str>) {
    let mut conf = Conf::new(Module::Ours);
    if let Some(limit) = maxhandshake {
        conf = conf.websocket(&format!(r#"maxhandshake="{limit}""#));
    }
    let Setup {
        _pages,
        server: _server,
        ws_url,
        plain: _plain,
        mut page,
    } = setup_with(kind, Transport::Ws, conf, "plain");
    let set = page.driver.eval(&format!(
        "for (let i = 0; i < 4; i++) document.cookie = `big${{i}}=${{'c'.repeat({} - 8)}}; path=/`; document.cookie.length",
        COOKIE_BYTES / 4
    ));
    assert!(
        set.as_u64().unwrap_or(0) >= COOKIE_BYTES as u64 - 64,
        "[{}] the page could not set its cookies: document.cookie has {set} bytes",
        page.name()
    );
    page.connect("k", &ws_url, "cookies", &["text.ircv3.net"]);
    match maxhandshake {
        None => {
            page.wait_joined(&[("k", "cookies")], "text.ircv3.net");
        }
        Some(limit) => {
            let st = page.wait("the failed connection", |st| !st["k"]["close"].is_null());
            assert_eq!(
                (
                    st["k"]["opened"].as_bool(),
                    st["k"]["close"]["code"].as_u64()
                ),
                (Some(false), Some(1006)),
                "[{}] with maxhandshake {limit} the request with its cookies should be refused: {}",
                page.name(),
                st["k"]
            );
        }
    }
}

#[test]
fn chromium_sends_large_cookies_and_connects() {
    large_cookies(BrowserKind::Chromium, None);
}

#[test]
fn firefox_sends_large_cookies_and_connects() {
    large_cookies(BrowserKind::Firefox, None);
}

#[test]
fn chromium_with_large_cookies_was_refused_with_an_8k_limit() {
    large_cookies(BrowserKind::Chromium, Some("8K"));
}

// ---------------------------------------------------------------------------------------
// permessage-deflate: the browser's own compression against the real server
// ---------------------------------------------------------------------------------------

/// `compression="yes"`: the browser negotiates permessage-deflate (the page's
/// `ws.extensions` and the server's STATS W say so), and every line arrives exactly,
/// both ways. A raw client that negotiates deflate too ([`deflate_client`]) sits in the
/// channel: it sees on the wire that the server compresses what it relays (RSV1), and
/// it sends the browser a compressed line of its own.
fn compressed_chat(kind: BrowserKind) {
    let conf = Conf::new(Module::Ours).websocket(r#"compression="yes""#);
    let Setup {
        _pages,
        mut server,
        ws_url,
        mut plain,
        mut page,
    } = setup_with(kind, Transport::Ws, conf, "plain");
    let browser = kind.name();

    // The wire client, in the channel (366) before the browser connects.
    let (mut wire, r) =
        deflate_client(server.ws_port, &_pages.origin()).expect("the deflate client");
    assert!(
        r.header("Sec-WebSocket-Extensions")
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "{r:?}"
    );
    wire.register("zwire").expect("registration");
    wire.join(CHAN).expect("JOIN");

    page.connect("z", &ws_url, "webz", &["text.ircv3.net"]);
    page.wait_joined(&[("z", "webz")], "text.ircv3.net");
    let extensions = page.driver.eval("window.irc.state.z.ws.extensions");
    assert!(
        extensions
            .as_str()
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "[{browser}] ws.extensions: {extensions}"
    );
    eprintln!("[{browser}] ws.extensions = {extensions}");
    expect_joins(&mut plain, &["webz"]);
    let join = [
        format!(":webz!web@127.0.0.1 JOIN :{CHAN}"),
        format!(":webz!web@127.0.0.1 JOIN {CHAN}"),
    ];
    wire.expect_str("webz's JOIN", |l| join.iter().any(|j| j == l))
        .expect("webz's JOIN");

    // Browser -> plain and wire, byte-exact; one at a time (the next goes when both
    // have the previous one).
    for text in compressible_texts(FROM_BROWSER, browser) {
        page.call(
            "send",
            &["z".into(), format!("PRIVMSG {CHAN} :{text}").into()],
        );
        let want = format!(":webz!web@127.0.0.1 PRIVMSG {CHAN} :{text}");
        let got = plain
            .expect_line("PRIVMSG from webz", |l| show(l).contains(" PRIVMSG "))
            .expect("PRIVMSG from webz");
        assert_eq!(
            got,
            want.as_bytes(),
            "[{browser}] what the plain client got: {:?}",
            show(&got)
        );
        let got = wire
            .expect_str("PRIVMSG from webz", |l| l.contains(" PRIVMSG "))
            .expect("PRIVMSG from webz");
        assert_eq!(got, want, "[{browser}] what the deflate client got");
        assert!(
            wire.last_compressed,
            "[{browser}] the server relayed {want:?} uncompressed to a client that negotiated deflate"
        );
    }

    // Plain -> browser (and wire), then wire -> browser: exact, in order.
    let mut want = Vec::new();
    for text in compressible_texts(FROM_PLAIN, "plain") {
        plain
            .send_line(&format!("PRIVMSG {CHAN} :{text}"))
            .expect("send");
        want.push(format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :{text}"));
        let got = wire
            .expect_str("PRIVMSG from plain", |l| l.contains(" PRIVMSG "))
            .expect("PRIVMSG from plain");
        assert_eq!(&got, want.last().unwrap());
        assert!(wire.last_compressed, "{got:?} came uncompressed");
    }
    let from_wire = format!("{} (from a deflate client)", "ä ✓ 🎉 ".repeat(30));
    wire.send_line(&format!("PRIVMSG {CHAN} :{from_wire}"))
        .expect("send");
    want.push(format!(":zwire!z@127.0.0.1 PRIVMSG {CHAN} :{from_wire}"));
    let got = plain
        .expect_line("PRIVMSG from zwire", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from zwire");
    assert_eq!(&got, want.last().unwrap().as_bytes());
    let st = page.wait("every PRIVMSG in the browser", |st| {
        lines_of(st, "z")
            .iter()
            .filter(|l| l.contains(" PRIVMSG "))
            .count()
            >= want.len()
    });
    let privmsgs: Vec<String> = lines_of(&st, "z")
        .into_iter()
        .filter(|l| l.contains(" PRIVMSG "))
        .collect();
    assert_eq!(
        privmsgs, want,
        "[{browser}] PRIVMSG lines the browser received"
    );
    let s = &st["z"];
    assert!(
        s["close"].is_null() && s["errors"] == 0 && s["nonText"] == 0,
        "[{browser}] {s}"
    );

    // The server's own count: the browser and the wire client negotiated deflate.
    assert_deflate_accepted(
        server.irc_port,
        2,
        &format!("{browser} and the deflate client"),
    );

    // A clean close after QUIT, compressed connection and all.
    page.call(
        "send",
        &["z".into(), format!("QUIT :{QUIT_MESSAGE}").into()],
    );
    let st = page.wait("the close event after QUIT", |st| {
        !st["z"]["close"].is_null()
    });
    let close = &st["z"]["close"];
    assert_eq!(
        (close["code"].as_u64(), close["wasClean"].as_bool()),
        (Some(1000), Some(true)),
        "[{browser}] {close}"
    );
    let quit = plain
        .expect_str("webz's QUIT", |l| l.starts_with(&quit_prefix("webz")))
        .expect("webz's QUIT");
    assert!(quit.ends_with(QUIT_MESSAGE), "{quit:?}");
    server.assert_alive();
}

#[test]
fn chromium_compressed_chat() {
    compressed_chat(BrowserKind::Chromium);
}

#[test]
fn firefox_compressed_chat() {
    compressed_chat(BrowserKind::Firefox);
}
