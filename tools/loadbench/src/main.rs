//! loadbench: the same /usr/sbin/inspircd with (A) this m_websocket.so, (B) the stock
//! m_websocket.so + m_sha1.so, (C) plain TCP clients only, alternated A B C A B C ...
//! for several rounds, measuring the server's CPU time, wall time and memory under:
//!
//! - idle: RSS growth per registered, idle connection (N connections);
//! - connect: K × (TCP connect, WebSocket handshake, NICK/USER, 001, QUIT, close),
//!   C at a time;
//! - fanout: one sender, R receivers in one channel, M messages; until every receiver
//!   has every message;
//! - ingest: R senders, N messages each into a channel of their own (nobody reads it),
//!   closed loop: a batch of a few KiB, then PING, wait for the PONG, next batch.
//!
//! Every loop is bounded by a count and a deadline; servers are stopped by their PID.
//! The client side is one thread driving non-blocking sockets through epoll, with a
//! minimal RFC 6455 client (masked frames out, unmasked frames in).
//!
//! Usage: loadbench [--module PATH] [--rounds N] [--quick] [--inspircd PATH]
//!                  [--stock-dir DIR] [--keep] [--perf DIR]
//!
//! `--perf DIR` records every measured phase of the server with `perf record -g -p PID`
//! into DIR/<kind>-<phase>-r<round>.data (for `perf report -i`); the figures of such a
//! run include perf's own cost.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// Settings

#[derive(Clone, Debug)]
struct Settings {
    module: PathBuf,
    stock_dir: PathBuf,
    inspircd: PathBuf,
    rounds: usize,
    keep: bool,
    idle_conns: usize,
    connect_total: usize,
    connect_concurrency: usize,
    fanout_receivers: usize,
    fanout_messages: usize,
    fanout_batch: usize,
    ingest_senders: usize,
    ingest_messages: usize,
    ingest_batch: usize,
    line_len: usize,
    phase_timeout: Duration,
    /// `--perf DIR`: record each measured phase with `perf record -g -p PID`.
    perf_dir: Option<PathBuf>,
}

impl Settings {
    fn parse() -> Result<Settings, String> {
        let mut s = Settings {
            module: PathBuf::from("m_websocket.so"),
            stock_dir: PathBuf::from("/usr/lib/inspircd/modules"),
            inspircd: PathBuf::from("/usr/sbin/inspircd"),
            rounds: 5,
            keep: false,
            idle_conns: 2000,
            connect_total: 2000,
            connect_concurrency: 400,
            fanout_receivers: 200,
            fanout_messages: 5000,
            fanout_batch: 20,
            ingest_senders: 100,
            ingest_messages: 4000,
            ingest_batch: 40,
            line_len: 100,
            phase_timeout: Duration::from_secs(60),
            perf_dir: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match a.as_str() {
                "--module" => s.module = PathBuf::from(value("--module")?),
                "--stock-dir" => s.stock_dir = PathBuf::from(value("--stock-dir")?),
                "--inspircd" => s.inspircd = PathBuf::from(value("--inspircd")?),
                "--rounds" => {
                    s.rounds = value("--rounds")?
                        .parse()
                        .map_err(|e| format!("--rounds: {e}"))?
                }
                "--keep" => s.keep = true,
                "--perf" => s.perf_dir = Some(PathBuf::from(value("--perf")?)),
                "--quick" => {
                    s.rounds = s.rounds.min(3);
                    s.idle_conns = 500;
                    s.connect_total = 300;
                    s.connect_concurrency = 100;
                    s.fanout_receivers = 50;
                    s.fanout_messages = 500;
                    s.ingest_senders = 20;
                    s.ingest_messages = 500;
                }
                "-h" | "--help" => {
                    println!(
                        "loadbench [--module PATH] [--rounds N] [--quick] [--inspircd PATH] [--stock-dir DIR] [--keep] [--perf DIR]"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if s.rounds == 0 || s.rounds > 20 {
            return Err("--rounds must be 1..=20".into());
        }
        s.module = fs::canonicalize(&s.module)
            .map_err(|e| format!("module {}: {e}", s.module.display()))?;
        for p in [
            &s.inspircd,
            &s.stock_dir.join("m_websocket.so"),
            &s.stock_dir.join("m_sha1.so"),
        ] {
            if !p.exists() {
                return Err(format!("{} is missing", p.display()));
            }
        }
        Ok(s)
    }
}

// ---------------------------------------------------------------------------------
// The server under test

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ours,
    Stock,
    Plain,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Ours, Kind::Stock, Kind::Plain];
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Stock => "stock",
            Kind::Plain => "plain",
        }
    }
    fn websocket(self) -> bool {
        self != Kind::Plain
    }
}

struct Server {
    child: Child,
    pid: i32,
    port: u16,
    dir: PathBuf,
    keep: bool,
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

impl Server {
    fn start(kind: Kind, s: &Settings, tag: &str) -> Result<Server, String> {
        let dir = std::env::temp_dir().join(format!("loadbench-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mdir = dir.join("modules");
        fs::create_dir_all(&mdir).map_err(|e| format!("{}: {e}", mdir.display()))?;
        // A private module directory: links to the stock modules, m_websocket.so
        // pointing at the module under test.
        for e in fs::read_dir(&s.stock_dir).map_err(|e| e.to_string())? {
            let e = e.map_err(|e| e.to_string())?;
            if e.file_name() == "m_websocket.so" {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), mdir.join(e.file_name()))
                .map_err(|e| e.to_string())?;
        }
        let module = match kind {
            Kind::Ours => s.module.clone(),
            Kind::Stock | Kind::Plain => s.stock_dir.join("m_websocket.so"),
        };
        std::os::unix::fs::symlink(module, mdir.join("m_websocket.so"))
            .map_err(|e| e.to_string())?;

        for _attempt in 0..5 {
            let port = free_port().map_err(|e| e.to_string())?;
            let conf = config(kind, &dir, port);
            let conf_path = dir.join("inspircd.conf");
            fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
            let out = fs::File::create(dir.join("stdout.txt")).map_err(|e| e.to_string())?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let mut child = Command::new(&s.inspircd)
                .arg("--nofork")
                .arg("--runasroot")
                .arg(format!("--config={}", conf_path.display()))
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("spawn {}: {e}", s.inspircd.display()))?;
            let pid = child.id() as i32;
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let text = fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default();
                if text.contains("InspIRCd is now running") {
                    return Ok(Server {
                        child,
                        pid,
                        port,
                        dir,
                        keep: s.keep,
                    });
                }
                let exited = matches!(child.try_wait(), Ok(Some(_)));
                if text.contains("failed to bind") || exited || Instant::now() > deadline {
                    terminate(&mut child, pid);
                    if text.contains("failed to bind") {
                        break; // try another port
                    }
                    return Err(format!("inspircd ({}) did not start:\n{text}", kind.name()));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Err("inspircd: could not bind a free port in 5 attempts".into())
    }

    fn proc_file(&self, name: &str) -> String {
        fs::read_to_string(format!("/proc/{}/{name}", self.pid)).unwrap_or_default()
    }

    /// utime + stime in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = self.proc_file("stat");
        let Some(end) = stat.rfind(')') else {
            return 0.0;
        };
        let f: Vec<&str> = stat[end + 1..].split_whitespace().collect();
        // After the command: field 3 (state) is f[0]; utime is field 14, stime 15.
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (ticks(11) + ticks(12)) as f64 / clk_tck()
    }

    fn status_kib(&self, key: &str) -> u64 {
        self.proc_file("status")
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// (syscr, syscw) from /proc/PID/io: read- and write-family system calls so far.
    fn syscalls(&self) -> (u64, u64) {
        let io = self.proc_file("io");
        let field = |key: &str| {
            io.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("syscr:"), field("syscw:"))
    }

    fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    fn hwm_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Resets VmHWM to the current RSS (Linux: "5" > clear_refs).
    fn reset_hwm(&self) {
        let _ = fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }

    /// Waits (at most `limit`) until the server has used no CPU for 150 ms, so that
    /// work left over from the previous phase (e.g. closing connections) is not
    /// counted in the next one.
    fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = self.cpu_seconds();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(150));
            let now = self.cpu_seconds();
            if now == last {
                return;
            }
            last = now;
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn terminate(child: &mut Child, pid: i32) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL to the same PID
    let _ = child.wait();
}

impl Drop for Server {
    fn drop(&mut self) {
        terminate(&mut self.child, self.pid);
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn config(kind: Kind, dir: &Path, port: u16) -> String {
    let d = dir.display();
    let hook = if kind.websocket() {
        r#" hook="websocket""#
    } else {
        ""
    };
    let mut c = format!(
        r#"<path configdir="{d}" datadir="{d}" logdir="{d}" moduledir="{d}/modules" runtimedir="{d}">
<server name="bench.local" description="loadbench" network="Bench">
<admin name="Admin" nick="admin" email="admin@bench.local">
<pid file="{d}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="sparse" target="{d}/ircd.log">
<bind address="127.0.0.1" port="{port}" type="clients"{hook}>
<connect name="main" allow="*" resolvehostnames="no" useident="no" timeout="60" pingfreq="600"
         threshold="1000000" commandrate="1000000000" fakelag="no" recvq="1M" softsendq="1M"
         hardsendq="256M" localmax="100000" globalmax="100000" limit="100000" maxchans="50">
<channels users="100" opers="100">
<performance netbuffersize="65536" somaxconn="1024">
"#
    );
    match kind {
        Kind::Ours => c.push_str("<module name=\"websocket\">\n<wsorigin allow=\"*\">\n"),
        Kind::Stock => c.push_str(
            "<module name=\"sha1\">\n<module name=\"websocket\">\n<wsorigin allow=\"*\">\n",
        ),
        Kind::Plain => {}
    }
    c
}

// ---------------------------------------------------------------------------------
// Clients: non-blocking sockets on one epoll, a minimal WebSocket client

struct Client {
    stream: TcpStream,
    /// Still waiting for the 101 (WebSocket only).
    handshaking: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tx_pos: usize,
    mask_seed: u32,
}

struct Pool {
    epfd: i32,
    port: u16,
    ws: bool,
    clients: Vec<Option<Client>>,
    opened: Vec<usize>,
    live: usize,
    /// Connections the server or the network closed (not by us).
    lost: usize,
}

/// What a scenario does with connection events.
trait Handler {
    fn on_open(&mut self, pool: &mut Pool, i: usize);
    fn on_line(&mut self, pool: &mut Pool, i: usize, line: &[u8]);
    fn on_close(&mut self, _pool: &mut Pool, _i: usize) {}
    fn done(&self) -> bool;
}

const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

impl Pool {
    fn new(port: u16, ws: bool) -> io::Result<Pool> {
        // SAFETY: plain syscall; the fd is closed in Drop.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pool {
            epfd,
            port,
            ws,
            clients: Vec::new(),
            opened: Vec::new(),
            live: 0,
            lost: 0,
        })
    }

    /// Opens a connection; WebSocket clients send the upgrade request at once and are
    /// "open" when the 101 arrives, plain ones immediately.
    fn connect(&mut self) -> io::Result<usize> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let i = self.clients.len();
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        // SAFETY: valid epoll fd and socket fd; ev is a valid epoll_event.
        let rc =
            unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut c = Client {
            stream,
            handshaking: self.ws,
            rx: Vec::with_capacity(4096),
            tx: Vec::new(),
            tx_pos: 0,
            mask_seed: 0x9e37_79b9 ^ (i as u32).wrapping_mul(2_654_435_761),
        };
        if self.ws {
            let req = format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\
                 Origin: http://bench.local\r\n\r\n",
                self.port
            );
            c.tx.extend_from_slice(req.as_bytes());
        } else {
            self.opened.push(i);
        }
        self.clients.push(Some(c));
        self.live += 1;
        self.flush(i);
        Ok(i)
    }

    /// Queues one IRC line (without CRLF) and tries to write it now.
    fn send(&mut self, i: usize, line: &[u8]) {
        let ws = self.ws;
        let Some(Some(c)) = self.clients.get_mut(i) else {
            return;
        };
        if ws {
            // FIN + text, masked.
            c.tx.push(0x81);
            let n = line.len();
            if n < 126 {
                c.tx.push(0x80 | n as u8);
            } else {
                c.tx.push(0x80 | 126);
                c.tx.extend_from_slice(&(n as u16).to_be_bytes());
            }
            c.mask_seed ^= c.mask_seed << 13;
            c.mask_seed ^= c.mask_seed >> 17;
            c.mask_seed ^= c.mask_seed << 5;
            let key = c.mask_seed.to_ne_bytes();
            c.tx.extend_from_slice(&key);
            c.tx.extend(line.iter().enumerate().map(|(k, b)| b ^ key[k & 3]));
        } else {
            c.tx.extend_from_slice(line);
            c.tx.extend_from_slice(b"\r\n");
        }
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let Some(Some(c)) = self.clients.get_mut(i) else {
            return;
        };
        while c.tx_pos < c.tx.len() {
            match c.stream.write(&c.tx[c.tx_pos..]) {
                Ok(0) => break,
                Ok(n) => c.tx_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return, // the read side reports the close
            }
        }
        c.tx.clear();
        c.tx_pos = 0;
    }

    /// Closes our side (no callback).
    fn close(&mut self, i: usize) {
        if let Some(slot) = self.clients.get_mut(i) {
            if slot.take().is_some() {
                self.live -= 1;
            }
        }
    }

    fn close_all(&mut self) {
        for i in 0..self.clients.len() {
            self.close(i);
        }
    }

    /// Drives the connections until `h.done()` or the deadline.
    fn run(&mut self, h: &mut dyn Handler, deadline: Instant) -> Result<(), String> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            while let Some(i) = self.opened.pop() {
                h.on_open(self, i);
            }
            if h.done() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("phase deadline passed".into());
            }
            // SAFETY: events has room for its length in epoll_events.
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), events.len() as i32, 50)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("epoll_wait: {e}"));
            }
            for ev in &events[..n as usize] {
                let i = ev.u64 as usize;
                let flags = ev.events as i32;
                if flags & libc::EPOLLOUT != 0 {
                    self.flush(i);
                }
                if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0
                {
                    self.read_ready(i, h, &mut buf);
                }
            }
        }
    }

    fn read_ready(&mut self, i: usize, h: &mut dyn Handler, buf: &mut [u8]) {
        let mut eof = false;
        {
            let Some(Some(c)) = self.clients.get_mut(i) else {
                return;
            };
            loop {
                match c.stream.read(buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => c.rx.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
        }
        self.process(i, h);
        if eof && matches!(self.clients.get(i), Some(Some(_))) {
            self.close(i);
            self.lost += 1;
            h.on_close(self, i);
        }
    }

    /// Parses what client `i` has received and hands each line to the handler.
    fn process(&mut self, i: usize, h: &mut dyn Handler) {
        let ws = self.ws;
        let Some(Some(c)) = self.clients.get_mut(i) else {
            return;
        };
        let mut rx = std::mem::take(&mut c.rx);
        let mut pos = 0;
        if c.handshaking {
            let Some(end) = find(&rx, b"\r\n\r\n") else {
                c.rx = rx;
                return;
            };
            if !rx.starts_with(b"HTTP/1.1 101") {
                eprintln!("handshake refused: {}", String::from_utf8_lossy(&rx[..end]));
                self.close(i);
                self.lost += 1;
                h.on_close(self, i);
                return;
            }
            c.handshaking = false;
            pos = end + 4;
            h.on_open(self, i);
        }
        let mut pongs: Vec<Vec<u8>> = Vec::new();
        loop {
            if !matches!(self.clients.get(i), Some(Some(_))) {
                return; // the handler closed it
            }
            let rest = &rx[pos..];
            if ws {
                if rest.len() < 2 {
                    break;
                }
                let opcode = rest[0] & 0x0f;
                let (len, hdr) = match rest[1] & 0x7f {
                    126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
                    127 if rest.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&rest[2..10]);
                        (u64::from_be_bytes(b) as usize, 10)
                    }
                    126 | 127 => break,
                    n => (n as usize, 2),
                };
                if rest.len() < hdr + len {
                    break;
                }
                let payload = &rest[hdr..hdr + len];
                pos += hdr + len;
                match opcode {
                    0x0..=0x2 => {
                        let line = payload.strip_suffix(b"\r\n").unwrap_or(payload);
                        if line.starts_with(b"PING ") {
                            let mut p = b"PONG ".to_vec();
                            p.extend_from_slice(&line[5..]);
                            pongs.push(p);
                        } else {
                            h.on_line(self, i, line);
                        }
                    }
                    0x8 => {
                        self.close(i);
                        self.lost += 1;
                        h.on_close(self, i);
                        return;
                    }
                    _ => {} // WebSocket ping/pong: none expected in a short run
                }
            } else {
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    break;
                };
                let raw = &rest[..nl];
                let line = raw.strip_suffix(b"\r").unwrap_or(raw);
                pos += nl + 1;
                if line.starts_with(b"PING ") {
                    let mut p = b"PONG ".to_vec();
                    p.extend_from_slice(&line[5..]);
                    pongs.push(p);
                } else {
                    h.on_line(self, i, line);
                }
            }
        }
        for p in pongs {
            self.send(i, &p);
        }
        if let Some(Some(c)) = self.clients.get_mut(i) {
            rx.drain(..pos);
            c.rx = rx;
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.clients.clear();
        // SAFETY: our own epoll fd.
        unsafe {
            libc::close(self.epfd);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The command or numeric of a server line (":prefix CMD ...").
fn command(line: &[u8]) -> &[u8] {
    let mut it = line.split(|&b| b == b' ');
    let first = it.next().unwrap_or_default();
    if first.starts_with(b":") {
        it.next().unwrap_or_default()
    } else {
        first
    }
}

fn register(pool: &mut Pool, i: usize, nick: &str) {
    pool.send(i, format!("NICK {nick}").as_bytes());
    pool.send(i, format!("USER u{nick} 0 * :loadbench").as_bytes());
}

/// A PRIVMSG of exactly `len` bytes with its CRLF.
fn message(target: &str, seq: usize, len: usize) -> Vec<u8> {
    let mut m = format!("PRIVMSG {target} :{seq} ").into_bytes();
    let filler = b"lorem ipsum dolor sit amet consectetur adipiscing elit ";
    let mut k = 0;
    while m.len() + 2 < len {
        m.push(filler[k % filler.len()]);
        k += 1;
    }
    m
}

// ---------------------------------------------------------------------------------
// Scenarios

/// Opens `total` connections, `concurrency` at a time, and registers each (001) and,
/// if `channel` gives one, joins it (366). The connections stay open.
struct OpenAndRegister {
    prefix: String,
    total: usize,
    concurrency: usize,
    started: usize,
    ready: usize,
    channel: Option<fn(usize) -> String>,
    index: HashMap<usize, usize>,
    failed: Option<String>,
}

impl OpenAndRegister {
    fn new(
        prefix: &str,
        total: usize,
        concurrency: usize,
        channel: Option<fn(usize) -> String>,
    ) -> Self {
        OpenAndRegister {
            prefix: prefix.into(),
            total,
            concurrency,
            started: 0,
            ready: 0,
            channel,
            index: HashMap::new(),
            failed: None,
        }
    }

    fn start_more(&mut self, pool: &mut Pool) {
        while self.started < self.total && self.started - self.ready < self.concurrency {
            match pool.connect() {
                Ok(i) => {
                    self.index.insert(i, self.started);
                    self.started += 1;
                }
                Err(e) => {
                    self.failed = Some(format!("connect: {e}"));
                    return;
                }
            }
        }
    }
}

impl Handler for OpenAndRegister {
    fn on_open(&mut self, pool: &mut Pool, i: usize) {
        let n = self.index.get(&i).copied().unwrap_or(i);
        register(pool, i, &format!("{}{n}", self.prefix));
    }
    fn on_line(&mut self, pool: &mut Pool, i: usize, line: &[u8]) {
        let cmd = command(line);
        let n = self.index.get(&i).copied().unwrap_or(i);
        if cmd == b"001" {
            match self.channel {
                Some(ch) => pool.send(i, format!("JOIN {}", ch(n)).as_bytes()),
                None => {
                    self.ready += 1;
                    self.start_more(pool);
                }
            }
        } else if cmd == b"366" {
            self.ready += 1;
            self.start_more(pool);
        } else if cmd == b"433" || cmd == b"ERROR" {
            self.failed = Some(format!("registration: {}", String::from_utf8_lossy(line)));
        }
    }
    fn on_close(&mut self, _pool: &mut Pool, _i: usize) {
        self.failed = Some("a connection closed while registering".into());
    }
    fn done(&self) -> bool {
        self.ready >= self.total || self.failed.is_some()
    }
}

/// K × (connect, handshake, register, QUIT, server closes), C at a time.
struct ConnectQuit {
    total: usize,
    concurrency: usize,
    started: usize,
    finished: usize,
    round: usize,
    failed: Option<String>,
}

impl ConnectQuit {
    fn start_more(&mut self, pool: &mut Pool) {
        while self.started < self.total && self.started - self.finished < self.concurrency {
            if let Err(e) = pool.connect() {
                self.failed = Some(format!("connect: {e}"));
                return;
            }
            self.started += 1;
        }
    }
}

impl Handler for ConnectQuit {
    fn on_open(&mut self, pool: &mut Pool, i: usize) {
        register(pool, i, &format!("k{}x{i}", self.round));
    }
    fn on_line(&mut self, pool: &mut Pool, i: usize, line: &[u8]) {
        if command(line) == b"001" {
            pool.send(i, b"QUIT :bye");
        }
    }
    fn on_close(&mut self, pool: &mut Pool, _i: usize) {
        self.finished += 1;
        self.start_more(pool);
    }
    fn done(&self) -> bool {
        self.finished >= self.total || self.failed.is_some()
    }
}

/// Connection 0 sends `messages` PRIVMSGs to #fan in batches (PING/PONG between);
/// the others count what they receive.
struct Fanout {
    messages: usize,
    batch: usize,
    line_len: usize,
    sent: usize,
    received: Vec<usize>,
    complete: usize,
    receivers: usize,
}

impl Fanout {
    fn send_batch(&mut self, pool: &mut Pool) {
        let end = (self.sent + self.batch).min(self.messages);
        while self.sent < end {
            pool.send(0, &message("#fan", self.sent, self.line_len));
            self.sent += 1;
        }
        if self.sent < self.messages {
            pool.send(0, b"PING :batch");
        }
    }
}

impl Handler for Fanout {
    fn on_open(&mut self, _pool: &mut Pool, _i: usize) {}
    fn on_line(&mut self, pool: &mut Pool, i: usize, line: &[u8]) {
        let cmd = command(line);
        if i == 0 {
            if cmd == b"PONG" {
                self.send_batch(pool);
            }
        } else if cmd == b"PRIVMSG" {
            let r = &mut self.received[i];
            *r += 1;
            if *r == self.messages {
                self.complete += 1;
            }
        }
    }
    fn done(&self) -> bool {
        self.complete >= self.receivers
    }
}

/// Every connection sends `messages` PRIVMSGs into its own channel, `batch` lines at a
/// time, each batch followed by a PING; the next batch goes when the PONG is back.
struct Ingest {
    messages: usize,
    batch: usize,
    line_len: usize,
    sent: Vec<usize>,
    finished: usize,
    senders: usize,
}

impl Ingest {
    fn send_batch(&mut self, pool: &mut Pool, i: usize) {
        let target = format!("#in{i}");
        let end = (self.sent[i] + self.batch).min(self.messages);
        let mut seq = self.sent[i];
        while seq < end {
            pool.send(i, &message(&target, seq, self.line_len));
            seq += 1;
        }
        self.sent[i] = seq;
        pool.send(i, b"PING :batch");
    }
}

impl Handler for Ingest {
    fn on_open(&mut self, _pool: &mut Pool, _i: usize) {}
    fn on_line(&mut self, pool: &mut Pool, i: usize, line: &[u8]) {
        if command(line) == b"PONG" {
            if self.sent[i] >= self.messages {
                self.finished += 1;
            } else {
                self.send_batch(pool, i);
            }
        }
    }
    fn done(&self) -> bool {
        self.finished >= self.senders
    }
}

// ---------------------------------------------------------------------------------
// Measurement

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    cpu: f64,
    wall: f64,
    hwm_mib: f64,
    /// write-family system calls the server made (/proc/PID/io syscw; its syscr does
    /// not count recv()).
    syscw: f64,
}

/// Where `perf record` writes a phase's profile, when `--perf` is given.
struct PerfTarget<'a> {
    dir: Option<&'a Path>,
    name: String,
}

fn measure(
    server: &Server,
    perf: PerfTarget<'_>,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<Sample, String> {
    server.settle(Duration::from_secs(3));
    server.reset_hwm();
    let mut recorder = match perf.dir {
        Some(dir) => {
            let _ = fs::create_dir_all(dir);
            let child = Command::new("perf")
                .args(["record", "-g", "-q", "-p", &server.pid.to_string(), "-o"])
                .arg(dir.join(format!("{}.data", perf.name)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("perf record: {e}"))?;
            std::thread::sleep(Duration::from_millis(300));
            Some(child)
        }
        None => None,
    };
    let cpu0 = server.cpu_seconds();
    let w0 = server.syscalls().1;
    let t0 = Instant::now();
    let result = f();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu0;
    let w1 = server.syscalls().1;
    if let Some(mut child) = recorder.take() {
        // SAFETY: kill(2) on our own child's PID; perf writes its file on SIGINT.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(child.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    result?;
    Ok(Sample {
        cpu,
        wall,
        hwm_mib: server.hwm_kib() as f64 / 1024.0,
        syscw: w1.saturating_sub(w0) as f64,
    })
}

#[derive(Default, Debug)]
struct RoundResult {
    idle_kib_per_conn: f64,
    idle_base_mib: f64,
    connect: Sample,
    fanout: Sample,
    ingest: Sample,
}

fn run_server_round(kind: Kind, s: &Settings, round: usize) -> Result<RoundResult, String> {
    let mut server = Server::start(kind, s, &format!("{}-{round}", kind.name()))?;
    let ws = kind.websocket();
    let deadline = || Instant::now() + s.phase_timeout;
    let mut r = RoundResult::default();
    let perf = |phase: &str| PerfTarget {
        dir: s.perf_dir.as_deref(),
        name: format!("{}-{phase}-r{}", kind.name(), round + 1),
    };

    // idle: RSS growth per registered idle connection, on a fresh server.
    server.settle(Duration::from_secs(2));
    let rss0 = server.rss_kib();
    r.idle_base_mib = rss0 as f64 / 1024.0;
    {
        let mut pool = Pool::new(server.port, ws).map_err(|e| e.to_string())?;
        let mut h = OpenAndRegister::new(&format!("i{round}x"), s.idle_conns, 500, None);
        h.start_more(&mut pool);
        pool.run(&mut h, deadline())?;
        if let Some(f) = &h.failed {
            return Err(format!("idle: {f}"));
        }
        server.settle(Duration::from_secs(2));
        let rss1 = server.rss_kib();
        r.idle_kib_per_conn = (rss1 as f64 - rss0 as f64) / s.idle_conns as f64;
        pool.close_all();
    }

    // connect: handshake + registration + QUIT, C at a time.
    {
        let mut pool = Pool::new(server.port, ws).map_err(|e| e.to_string())?;
        let mut h = ConnectQuit {
            total: s.connect_total,
            concurrency: s.connect_concurrency,
            started: 0,
            finished: 0,
            round,
            failed: None,
        };
        r.connect = measure(&server, perf("connect"), || {
            h.start_more(&mut pool);
            pool.run(&mut h, deadline())?;
            h.failed.clone().map_or(Ok(()), Err)
        })?;
    }

    // fanout: 1 sender + R receivers in #fan.
    {
        let mut pool = Pool::new(server.port, ws).map_err(|e| e.to_string())?;
        let mut setup = OpenAndRegister::new(
            &format!("f{round}x"),
            s.fanout_receivers + 1,
            250,
            Some(|_| "#fan".to_string()),
        );
        setup.start_more(&mut pool);
        pool.run(&mut setup, deadline())?;
        if let Some(f) = &setup.failed {
            return Err(format!("fanout setup: {f}"));
        }
        // Connection 0 is the sender (the first one opened).
        let mut h = Fanout {
            messages: s.fanout_messages,
            batch: s.fanout_batch,
            line_len: s.line_len,
            sent: 0,
            received: vec![0; pool.clients.len()],
            complete: 0,
            receivers: s.fanout_receivers,
        };
        r.fanout = measure(&server, perf("fanout"), || {
            h.send_batch(&mut pool);
            pool.run(&mut h, deadline())?;
            if pool.lost > 0 {
                return Err(format!("fanout: {} connections lost", pool.lost));
            }
            Ok(())
        })?;
        pool.close_all();
    }

    // ingest: R senders, N messages each into a channel of their own.
    {
        let mut pool = Pool::new(server.port, ws).map_err(|e| e.to_string())?;
        let mut setup = OpenAndRegister::new(
            &format!("g{round}x"),
            s.ingest_senders,
            250,
            Some(|n| format!("#in{n}")),
        );
        setup.start_more(&mut pool);
        pool.run(&mut setup, deadline())?;
        if let Some(f) = &setup.failed {
            return Err(format!("ingest setup: {f}"));
        }
        // Pool slots are in opening order, so slot i joined #in{i}.
        let mut h = Ingest {
            messages: s.ingest_messages,
            batch: s.ingest_batch,
            line_len: s.line_len,
            sent: vec![0; pool.clients.len()],
            finished: 0,
            senders: s.ingest_senders,
        };
        r.ingest = measure(&server, perf("ingest"), || {
            for i in 0..s.ingest_senders {
                h.send_batch(&mut pool, i);
            }
            pool.run(&mut h, deadline())?;
            if pool.lost > 0 {
                return Err(format!("ingest: {} connections lost", pool.lost));
            }
            Ok(())
        })?;
        pool.close_all();
    }

    if !server.alive() {
        return Err("the server died".into());
    }
    Ok(r)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let s = match Settings::parse() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadbench: {e}");
            std::process::exit(2);
        }
    };
    raise_fd_limit(s.idle_conns + s.fanout_receivers + 1000);
    let started = Instant::now();
    eprintln!(
        "loadbench: {} rounds of ours/stock/plain; module {}; idle {} conns, connect {}×(c{}), \
         fanout 1→{} × {} msgs, ingest {} × {} msgs, {}-byte lines",
        s.rounds,
        s.module.display(),
        s.idle_conns,
        s.connect_total,
        s.connect_concurrency,
        s.fanout_receivers,
        s.fanout_messages,
        s.ingest_senders,
        s.ingest_messages,
        s.line_len
    );
    let mut results: HashMap<&'static str, Vec<RoundResult>> = HashMap::new();
    let mut failures = 0;
    for round in 0..s.rounds {
        for kind in Kind::ALL {
            let t = Instant::now();
            match run_server_round(kind, &s, round) {
                Ok(r) => {
                    eprintln!(
                        "round {} {:<5} idle {:6.1} KiB/conn | connect cpu {:.2}s wall {:.2}s | fanout cpu {:.2}s wall {:.2}s | ingest cpu {:.2}s wall {:.2}s  ({:.0}s)",
                        round + 1,
                        kind.name(),
                        r.idle_kib_per_conn,
                        r.connect.cpu,
                        r.connect.wall,
                        r.fanout.cpu,
                        r.fanout.wall,
                        r.ingest.cpu,
                        r.ingest.wall,
                        t.elapsed().as_secs_f64()
                    );
                    results.entry(kind.name()).or_default().push(r);
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("round {} {}: FAILED: {e}", round + 1, kind.name());
                }
            }
        }
    }
    print!("{}", report(&s, &results));
    println!(
        "loadbench took {:.0} s on a 2-core machine shared with other work; CPU figures are the server's utime+stime (/proc/PID/stat, {} ticks/s).",
        started.elapsed().as_secs_f64(),
        clk_tck()
    );
    if failures > 0 {
        eprintln!("loadbench: {failures} server rounds failed");
        std::process::exit(1);
    }
}

fn raise_fd_limit(want: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && (lim.rlim_cur as usize) < want {
            lim.rlim_cur = lim.rlim_max.max(want as libc::rlim_t);
            lim.rlim_max = lim.rlim_max.max(want as libc::rlim_t);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                eprintln!("loadbench: could not raise the open-file limit to {want}");
            }
        }
    }
}

fn report(s: &Settings, results: &HashMap<&'static str, Vec<RoundResult>>) -> String {
    let get = |kind: Kind, f: &dyn Fn(&RoundResult) -> f64| -> f64 {
        median(
            results
                .get(kind.name())
                .map(|v| v.iter().map(f).collect())
                .unwrap_or_default(),
        )
    };
    let n = |kind: Kind| results.get(kind.name()).map_or(0, Vec::len);
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "=== loadbench: medians over rounds (ours {} / stock {} / plain {} rounds) ===",
        n(Kind::Ours),
        n(Kind::Stock),
        n(Kind::Plain)
    );
    let _ = writeln!(out, "ours = {}, stock = Debian's m_websocket.so + m_sha1.so, plain = TCP clients, no WebSocket module; same /usr/sbin/inspircd", s.module.display());
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<34} {:>9} {:>9} {:>9} {:>11} {:>10} {:>10} {:>13}",
        "phase / metric",
        "ours",
        "stock",
        "plain",
        "ours/stock",
        "ours-plain",
        "stock-plain",
        "overhead o/s"
    );
    type Pick = fn(&RoundResult) -> Sample;
    let phases: [(&str, Pick); 3] = [
        ("connect", |r| r.connect),
        ("fanout", |r| r.fanout),
        ("ingest", |r| r.ingest),
    ];
    let row = |out: &mut String, label: &str, o: f64, st: f64, p: f64, unit: &str| {
        let ratio = o / st;
        let (oo, so) = (o - p, st - p);
        let over = if so.abs() > 1e-9 {
            format!("{:.2}", oo / so)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "{:<34} {:>9.3} {:>9.3} {:>9.3} {:>11.2} {:>10.3} {:>10.3} {:>13}",
            format!("{label} ({unit})"),
            o,
            st,
            p,
            ratio,
            oo,
            so,
            over
        );
    };
    for (name, pick) in phases {
        let cpu = |k| get(k, &|r: &RoundResult| pick(r).cpu);
        let wall = |k| get(k, &|r: &RoundResult| pick(r).wall);
        let hwm = |k| get(k, &|r: &RoundResult| pick(r).hwm_mib);
        let syscw = |k| get(k, &|r: &RoundResult| pick(r).syscw) / 1000.0;
        row(
            &mut out,
            &format!("{name} server CPU"),
            cpu(Kind::Ours),
            cpu(Kind::Stock),
            cpu(Kind::Plain),
            "s",
        );
        row(
            &mut out,
            &format!("{name} wall"),
            wall(Kind::Ours),
            wall(Kind::Stock),
            wall(Kind::Plain),
            "s",
        );
        row(
            &mut out,
            &format!("{name} peak RSS"),
            hwm(Kind::Ours),
            hwm(Kind::Stock),
            hwm(Kind::Plain),
            "MiB",
        );
        row(
            &mut out,
            &format!("{name} write syscalls"),
            syscw(Kind::Ours),
            syscw(Kind::Stock),
            syscw(Kind::Plain),
            "k",
        );
    }
    let idle = |k| get(k, &|r: &RoundResult| r.idle_kib_per_conn);
    row(
        &mut out,
        "idle memory per connection",
        idle(Kind::Ours),
        idle(Kind::Stock),
        idle(Kind::Plain),
        "KiB",
    );
    let base = |k| get(k, &|r: &RoundResult| r.idle_base_mib);
    row(
        &mut out,
        "RSS of a fresh server",
        base(Kind::Ours),
        base(Kind::Stock),
        base(Kind::Plain),
        "MiB",
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "ours/stock: ratio of medians. ours-plain, stock-plain: what the WebSocket layer adds over plain TCP clients doing the same; overhead o/s = (ours-plain)/(stock-plain), below 1 means our module costs less than the stock one."
    );
    let _ = writeln!(
        out,
        "Work per phase: connect {} × (connect + handshake + NICK/USER + 001 + QUIT), {} at a time; fanout 1 sender → {} receivers × {} messages ({} deliveries); ingest {} senders × {} messages in batches of {} + PING; idle {} connections.",
        s.connect_total,
        s.connect_concurrency,
        s.fanout_receivers,
        s.fanout_messages,
        s.fanout_receivers * s.fanout_messages,
        s.ingest_senders,
        s.ingest_messages,
        s.ingest_batch,
        s.idle_conns
    );
    out
}
