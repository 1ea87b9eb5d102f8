//! A real browser against the real server: Debian's headless Chromium loads
//! tests/web/browser.html from a static HTTP server on 127.0.0.1 (an origin the
//! server's `<wsorigin>` allows), and the page speaks IRC over Chromium's own
//! `WebSocket` with the `text.ircv3.net` subprotocol to InspIRCd with this module,
//! over ws:// and over wss:// (m_ssl_gnutls, a self-signed certificate).
//!
//! The test drives the page through the DevTools protocol (headless_chrome): it calls
//! the page's functions and reads what the page saw as JSON. A plain TCP IRC client
//! that the test controls sits in the same channel. Two browser connections run side by
//! side: one leaves with QUIT, one with `ws.close(1000)`; both must see a close event
//! with code 1000 and `wasClean` (the stock module gives browsers 1006).
//!
//! Needs /usr/bin/chromium (Debian's `chromium` package); `CHROMIUM` overrides the path.
//! Without it the tests fail, saying so.

#[allow(unused_macros)]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use headless_chrome::{Browser, Tab};
use serde_json::Value;

/// Upper bound for every wait on the browser.
const WAIT: Duration = Duration::from_secs(20);
const CHAN: &str = "#browser";
/// Sent by the browser, checked byte-exact by the plain client.
const FROM_BROWSER: &str = "héllo from Chromium ✓ 日本語 🎉";
/// Sent by the plain client, checked exact in the page.
const FROM_PLAIN: &str = "ünïcödé reply ☃ — 🚀";
const QUIT_MESSAGE: &str = "leaving: bye ✌";

fn web_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web"))
}

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
// Chromium
// ---------------------------------------------------------------------------------------

fn chromium_path() -> PathBuf {
    let p = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !p.exists() {
        panic!(
            "Chromium is required for the browser tests and was not found at {}: \
             install Debian's package (apt-get install chromium) or set CHROMIUM=/path/to/chromium",
            p.display()
        );
    }
    p
}

/// A headless Chromium with a fresh profile, started as this test's child and driven
/// over the DevTools protocol (headless_chrome). On drop: the DevTools connection is
/// closed, then the process gets SIGTERM by its PID (a clean shutdown that also ends
/// its zygote, renderer and crashpad processes), and SIGKILL if it has not exited
/// within 10 s; then it is reaped and the profile removed. Also when the test panics.
struct Chromium {
    browser: Option<Browser>,
    child: Child,
    profile: tempfile::TempDir,
}

impl Chromium {
    fn launch() -> Chromium {
        let path = chromium_path();
        let profile = tempfile::Builder::new()
            .prefix("wstest-chromium-")
            .tempdir()
            .expect("profile dir");
        let log_path = profile.path().join("chromium.log");
        let log = std::fs::File::create(&log_path).expect("chromium log file");
        let child = Command::new(&path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                // For the test's self-signed wss:// certificate.
                "--ignore-certificate-errors",
                // 0: Chromium picks a free port and prints it; no port race.
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", path.display()));
        let mut chromium = Chromium {
            browser: None,
            child,
            profile,
        };
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let deadline = Instant::now() + WAIT;
        let ws_url = loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find_map(|l| l.strip_prefix("DevTools listening on "))
            {
                break url.trim().to_string();
            }
            if let Ok(Some(st)) = chromium.child.try_wait() {
                panic!("Chromium exited during startup ({st}); its output:\n{text}");
            }
            if Instant::now() >= deadline {
                panic!("Chromium did not report its DevTools address within {WAIT:?}; its output:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let browser = Browser::connect_with_timeout(ws_url.clone(), Duration::from_secs(120))
            .unwrap_or_else(|e| {
                panic!("could not connect to Chromium's DevTools at {ws_url}: {e:#}")
            });
        browser.set_default_timeout(WAIT);
        chromium.browser = Some(browser);
        chromium
    }

    fn browser(&self) -> &Browser {
        self.browser.as_ref().unwrap()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        drop(self.browser.take());
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own unreaped child's PID.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page, loaded in a tab.
struct Page {
    tab: Arc<Tab>,
    chromium_log: PathBuf,
}

impl Page {
    fn open(chromium: &Chromium, url: &str) -> Page {
        let tab = chromium.browser().new_tab().expect("open a tab");
        tab.set_default_timeout(WAIT);
        tab.navigate_to(url)
            .and_then(|t| t.wait_until_navigated())
            .unwrap_or_else(|e| panic!("Chromium could not load {url}: {e:#}"));
        let page = Page {
            tab,
            chromium_log: chromium.profile.path().join("chromium.log"),
        };
        let ready = page.eval("typeof window.irc === 'object'");
        assert_eq!(
            ready,
            Value::Bool(true),
            "the test page did not load its script"
        );
        page
    }

    fn eval(&self, js: &str) -> Value {
        let r = self
            .tab
            .evaluate(js, false)
            .unwrap_or_else(|e| panic!("evaluating {js:?} in the page failed: {e:#}"));
        r.value.unwrap_or(Value::Null)
    }

    /// Calls `window.irc.<f>(args...)` with JSON-encoded arguments.
    fn call(&self, f: &str, args: &[Value]) {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.eval(&format!("window.irc.{f}({}); true", args.join(", ")));
    }

    /// Everything the page saw, per connection id.
    fn state(&self) -> Value {
        match self.eval("window.irc.snapshot()") {
            Value::String(s) => serde_json::from_str(&s).expect("page state is JSON"),
            other => panic!("unexpected page state {other:?}"),
        }
    }

    fn page_log(&self) -> String {
        match self.eval("document.getElementById('log').textContent") {
            Value::String(s) => s,
            other => format!("{other:?}"),
        }
    }

    /// Polls the page state until `pred` holds for it; fails after [`WAIT`] with the
    /// page's state and log.
    fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let st = self.state();
            if pred(&st) {
                return st;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting in the browser for {what}\npage state: {}\npage log:\n{}\nChromium output (tail):\n{}",
                    serde_json::to_string_pretty(&st).unwrap(),
                    self.page_log(),
                    tail(&std::fs::read_to_string(&self.chromium_log).unwrap_or_default(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
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
// The test
// ---------------------------------------------------------------------------------------

/// Waits until the plain client has seen one line per browser nick ("webq", "webc"),
/// in any order; returns them in that nick order.
fn expect_each<F: Fn(&str) -> bool>(
    plain: &mut IrcClient,
    what: &str,
    matcher: impl Fn(&str) -> F,
) -> Vec<String> {
    let nicks = ["webq", "webc"];
    let preds: Vec<F> = nicks.iter().map(|n| matcher(n)).collect();
    let mut got: Vec<Option<String>> = vec![None; nicks.len()];
    while got.iter().any(Option::is_none) {
        let line = plain.expect_str(&format!("{what} of {nicks:?} (have {got:?})"), |l| {
            preds.iter().any(|p| p(l))
        });
        let i = preds.iter().position(|p| p(&line)).unwrap();
        got[i] = Some(line);
    }
    got.into_iter().map(Option::unwrap).collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Ws,
    Wss,
}

fn chromium_chat(transport: Transport) {
    chromium_path(); // fails first, and clearly, without Chromium
    let pages = StaticServer::start(web_dir());
    let origin = pages.origin();
    let mut conf = Conf::new(Module::Ours).origins(&[&origin]);
    if transport == Transport::Wss {
        conf = conf.tls();
    }
    let mut server = Server::start(conf);
    let ws_url = match transport {
        Transport::Ws => format!("ws://127.0.0.1:{}/", server.ws_port),
        Transport::Wss => format!("wss://127.0.0.1:{}/", server.wss_port),
    };

    let chromium = Chromium::launch();
    let page = Page::open(&chromium, &format!("{origin}/browser.html"));

    // Two browser connections: "webq" will leave with QUIT, "webc" with ws.close(1000).
    // All three users register at once (InspIRCd completes registrations on a tick).
    let mut plain = IrcClient::start(server.irc_port, "plain");
    let users = [("q", "webq"), ("c", "webc")];
    for (id, nick) in users {
        page.call(
            "connect",
            &[id.into(), ws_url.as_str().into(), nick.into(), CHAN.into()],
        );
    }
    plain.wait_welcome();
    plain.join(CHAN);

    let st = page.wait("both connections registered and in the channel", |st| {
        users
            .iter()
            .all(|(id, _)| st[id]["joined"] == Value::Bool(true) || !st[id]["close"].is_null())
    });
    for (id, nick) in users {
        let s = &st[id];
        assert!(
            s["close"].is_null(),
            "[{nick}] the connection closed before joining: {s}"
        );
        assert_eq!(s["opened"], Value::Bool(true), "[{nick}] never opened: {s}");
        assert_eq!(
            s["protocol"],
            Value::String("text.ircv3.net".into()),
            "[{nick}] subprotocol the browser saw"
        );
        assert_eq!(s["welcomed"], Value::Bool(true), "[{nick}] no 001: {s}");
        let lines = lines_of(&st, id);
        assert!(
            lines
                .iter()
                .any(|l| l.split(' ').nth(1) == Some("001") && l.split(' ').nth(2) == Some(nick)),
            "[{nick}] 001 for {nick} not among the lines the browser got: {lines:#?}"
        );
    }
    // The plain user sees both arrive (in either order).
    expect_each(&mut plain, "JOIN", |nick| {
        let a = format!(":{nick}!web@127.0.0.1 JOIN :{CHAN}");
        let b = format!(":{nick}!web@127.0.0.1 JOIN {CHAN}");
        move |l: &str| l == a || l == b
    });

    // Browser -> plain, exact bytes (UTF-8 with 2-, 3- and 4-byte characters).
    for (id, nick) in users {
        let text = format!("{FROM_BROWSER} [{nick}]");
        page.call(
            "send",
            &[id.into(), format!("PRIVMSG {CHAN} :{text}").into()],
        );
        let got = plain.expect(&format!("PRIVMSG from {nick}"), |l| {
            show(l).contains(" PRIVMSG ")
        });
        assert_eq!(
            show(&got),
            format!(":{nick}!web@127.0.0.1 PRIVMSG {CHAN} :{text}"),
            "what the plain client got from the browser"
        );
        assert_eq!(
            got,
            format!(":{nick}!web@127.0.0.1 PRIVMSG {CHAN} :{text}").into_bytes(),
            "byte-exact"
        );
    }

    // Plain -> browser: one channel message both connections must see exactly. Each
    // browser connection has also seen the other's message (browser -> browser).
    plain.send(&format!("PRIVMSG {CHAN} :{FROM_PLAIN}"));
    let want = format!(":plain!u@127.0.0.1 PRIVMSG {CHAN} :{FROM_PLAIN}");
    let st = page.wait("the plain client's message in both connections", |st| {
        users.iter().all(|(id, _)| lines_of(st, id).contains(&want))
    });
    for ((id, nick), other) in users.iter().zip(["webc", "webq"]) {
        let privmsgs: Vec<String> = lines_of(&st, id)
            .into_iter()
            .filter(|l| l.contains(" PRIVMSG "))
            .collect();
        let from_other = format!(":{other}!web@127.0.0.1 PRIVMSG {CHAN} :{FROM_BROWSER} [{other}]");
        assert_eq!(
            privmsgs,
            vec![from_other, want.clone()],
            "[{nick}] PRIVMSG lines the browser received"
        );
    }
    // And a private message to one of them.
    plain.send(&format!("PRIVMSG webq :{FROM_PLAIN} (private)"));
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
            "[{nick}] close code the browser reported (1006 = no close frame); state: {s}"
        );
        assert_eq!(
            close["wasClean"],
            Value::Bool(true),
            "[{nick}] the browser did not see a clean closing handshake: {s}"
        );
        assert_eq!(s["errors"], Value::from(0), "[{nick}] error events: {s}");
        assert_eq!(
            s["nonText"],
            Value::from(0),
            "[{nick}] binary messages: {s}"
        );
        for l in lines_of(&st, id) {
            assert!(
                !l.contains('\r') && !l.contains('\n') && !l.is_empty(),
                "[{nick}] a message is not exactly one IRC line: {l:?}"
            );
        }
    }
    let q_reason = st["q"]["close"]["reason"].as_str().unwrap_or_default();
    assert!(
        q_reason.contains(QUIT_MESSAGE),
        "the close reason after QUIT should carry the quit message {QUIT_MESSAGE:?}; got {q_reason:?}"
    );

    // The plain client sees both leave (in either order).
    let quits = expect_each(&mut plain, "QUIT", |nick| {
        let prefix = format!(":{nick}!web@127.0.0.1 QUIT :");
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
    chromium_chat(Transport::Ws);
}

#[test]
fn chromium_chat_over_wss() {
    chromium_chat(Transport::Wss);
}
