//! `soak`: N concurrent WebSocket connections to a real InspIRCd with the module,
//! churned for a bounded time with a mix of operations, on one thread driving
//! non-blocking sockets through epoll. A plain IRC oper (another thread) watches the
//! server's own counts (LUSERS, STATS W). Reports the server's RSS, fds and CPU, every
//! operation and every error; returns whether the run passed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::server::{self, Server};
use crate::ws::*;

#[derive(Clone, Debug)]
pub struct Settings {
    pub module: PathBuf,
    pub conns: usize,
    pub seconds: u64,
    pub channels: usize,
    /// Lifetime of a registered connection during the churn.
    pub life: (Duration, Duration),
    pub chat_every: (Duration, Duration),
    pub ping_every: (Duration, Duration),
    /// Connections between connect and joined at once.
    pub inflight: usize,
    pub phase_timeout: Duration,
    pub ramp_timeout: Duration,
    /// Pass: RSS at end <= start * (1 + pct/100) + mib.
    pub rss_tolerance_pct: f64,
    pub rss_tolerance_mib: f64,
    /// A first ramp to N and back to zero before "start" is measured.
    pub warmup: bool,
    pub keep: bool,
    /// `<websocket pinginterval>` of the soak server.
    pub keepalive_secs: u64,
    /// `<connect timeout>` of the soak server.
    pub reg_timeout_secs: u32,
}

impl Settings {
    pub fn new(module: PathBuf) -> Settings {
        Settings {
            module,
            conns: 5000,
            seconds: 120,
            channels: 250,
            life: (Duration::from_secs(20), Duration::from_secs(60)),
            chat_every: (Duration::from_secs(10), Duration::from_secs(40)),
            ping_every: (Duration::from_secs(10), Duration::from_secs(40)),
            inflight: 300,
            phase_timeout: Duration::from_secs(45),
            ramp_timeout: Duration::from_secs(240),
            rss_tolerance_pct: 10.0,
            rss_tolerance_mib: 4.0,
            warmup: true,
            keep: false,
            keepalive_secs: 20,
            reg_timeout_secs: 30,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting,
    Handshake,
    Register,
    Join,
    Active,
    /// Sent a close frame; waiting for the echo (1000).
    CloseWait,
    /// Sent QUIT; waiting for the close frame (1000).
    QuitWait,
    /// Sent an unmasked frame; waiting for the close frame (1002).
    ProtoWait,
    /// Got the expected close frame; waiting for the server to close TCP.
    EofWait,
    /// Sent half an upgrade request; closes at end_at.
    HalfHandshake,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// Close frame 1000, expects the echo and the TCP close.
    Clean,
    /// QUIT, expects a close frame 1000 and the TCP close.
    Quit,
    /// close(2) without a close frame (FIN).
    Abrupt,
    /// close(2) with SO_LINGER 0 (RST).
    Reset,
    /// Part of a frame, then close(2).
    HalfFrame,
    /// An unmasked frame; expects close 1002 and the TCP close.
    ProtoError,
    /// Half an upgrade request, then close(2).
    HalfHandshake,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Clean => "clean close (close frame 1000, echo awaited)",
            End::Quit => "QUIT (close frame 1000 awaited)",
            End::Abrupt => "abrupt TCP close (FIN, no close frame)",
            End::Reset => "abrupt TCP reset (RST, SO_LINGER 0)",
            End::HalfFrame => "half-sent frame, then TCP close",
            End::ProtoError => "protocol error: unmasked frame (close 1002 awaited)",
            End::HalfHandshake => "half-sent upgrade request, then TCP close",
        }
    }
}

/// A run with this many errors stops early.
const ERROR_BUDGET: u64 = 1000;

const PROTOCOLS: [Option<&str>; 3] = [None, Some("text.ircv3.net"), Some("binary.ircv3.net")];

struct Slot {
    phase: Phase,
    stream: Option<TcpStream>,
    serial: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tx_pos: usize,
    deadline: Instant,
    end: End,
    end_at: Option<Instant>,
    next_chat: Instant,
    next_ping: Instant,
    ping_out: Option<(Vec<u8>, Instant)>,
    reconnect_at: Option<Instant>,
    nick: String,
    chan: usize,
    gen: u64,
    seq: u64,
    protocol: Option<&'static str>,
    rng: Rng,
}

#[derive(Default, Debug)]
struct Counts {
    connects: u64,
    upgraded: u64,
    registered: u64,
    joined: u64,
    chats_sent: u64,
    chats_fragmented: u64,
    chats_received: u64,
    other_lines: u64,
    ws_pings: u64,
    ws_pongs: u64,
    server_pings: u64,
    irc_pings: u64,
    quit_error_lines: u64,
    ends: BTreeMap<End, u64>,
    by_protocol: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
struct Errors {
    by_kind: BTreeMap<String, (u64, Vec<String>)>,
}

impl Errors {
    fn add(&mut self, kind: &str, detail: String) {
        let e = self.by_kind.entry(kind.to_string()).or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(detail);
        }
    }
    fn total(&self) -> u64 {
        self.by_kind.values().map(|v| v.0).sum()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Ramp,
    Churn,
    Drain,
}

struct Engine {
    port: u16,
    epfd: i32,
    slots: Vec<Slot>,
    stage: Stage,
    counts: Counts,
    errors: Errors,
    settings: Settings,
    open: usize,
    active: usize,
    inflight: usize,
    peak_open: usize,
    peak_active: usize,
    serial: u32,
    rng: Rng,
    /// Allow HalfHandshake and end times (false while ramping).
    churning: bool,
}

fn connect_nb(port: u16) -> io::Result<TcpStream> {
    // SAFETY: plain syscalls on a descriptor we own; it is wrapped in a TcpStream
    // (which closes it) before any early return after the connect.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket and option struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

impl Engine {
    fn new(port: u16, settings: &Settings) -> Engine {
        // SAFETY: plain syscall; closed in Drop.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epfd >= 0, "epoll_create1: {}", io::Error::last_os_error());
        let now = Instant::now();
        let slots = (0..settings.conns)
            .map(|i| Slot {
                phase: Phase::Idle,
                stream: None,
                serial: 0,
                rx: Vec::new(),
                tx: Vec::new(),
                tx_pos: 0,
                deadline: now,
                end: End::Clean,
                end_at: None,
                next_chat: now,
                next_ping: now,
                ping_out: None,
                reconnect_at: Some(now),
                nick: String::new(),
                chan: i % settings.channels.max(1),
                gen: 0,
                seq: 0,
                protocol: None,
                rng: Rng::new(0x5eed ^ (i as u64).wrapping_mul(0x1000_0001)),
            })
            .collect();
        Engine {
            port,
            epfd,
            slots,
            stage: Stage::Ramp,
            counts: Counts::default(),
            errors: Errors::default(),
            settings: settings.clone(),
            open: 0,
            active: 0,
            inflight: 0,
            peak_open: 0,
            peak_active: 0,
            serial: 0,
            rng: Rng::new(42),
            churning: false,
        }
    }

    fn is_inflight(p: Phase) -> bool {
        matches!(
            p,
            Phase::Connecting | Phase::Handshake | Phase::Register | Phase::Join
        )
    }

    fn set_phase(&mut self, i: usize, p: Phase) {
        let old = self.slots[i].phase;
        if old == p {
            return;
        }
        if Self::is_inflight(old) {
            self.inflight -= 1;
        }
        if Self::is_inflight(p) {
            self.inflight += 1;
        }
        if old == Phase::Active {
            self.active -= 1;
        }
        if p == Phase::Active {
            self.active += 1;
            self.peak_active = self.peak_active.max(self.active);
        }
        self.slots[i].phase = p;
        self.slots[i].deadline = Instant::now() + self.settings.phase_timeout;
    }

    fn pick_end(&mut self) -> End {
        let r = self.rng.range(0, 99);
        let e = match r {
            0..=21 => End::Clean,
            22..=43 => End::Quit,
            44..=57 => End::Abrupt,
            58..=65 => End::Reset,
            66..=79 => End::HalfFrame,
            80..=89 => End::ProtoError,
            _ => End::HalfHandshake,
        };
        if e == End::HalfHandshake && !self.churning {
            End::Clean
        } else {
            e
        }
    }

    fn start(&mut self, i: usize) {
        let end = self.pick_end();
        let stream = match connect_nb(self.port) {
            Ok(s) => s,
            Err(e) => {
                self.errors.add("connect failed", format!("slot {i}: {e}"));
                self.slots[i].reconnect_at = Some(Instant::now() + Duration::from_millis(500));
                return;
            }
        };
        self.serial = self.serial.wrapping_add(1);
        let serial = self.serial;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: (i as u64) | ((serial as u64) << 32),
        };
        // SAFETY: valid epoll fd and socket fd; ev is a valid epoll_event.
        let rc =
            unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, stream.as_raw_fd(), &mut ev) };
        if rc < 0 {
            self.errors
                .add("epoll_ctl failed", io::Error::last_os_error().to_string());
            return;
        }
        self.counts.connects += 1;
        self.open += 1;
        self.peak_open = self.peak_open.max(self.open);
        let s = &mut self.slots[i];
        s.stream = Some(stream);
        s.serial = serial;
        s.rx.clear();
        s.tx.clear();
        s.tx_pos = 0;
        s.end = end;
        s.end_at = None;
        s.ping_out = None;
        s.reconnect_at = None;
        s.gen += 1;
        s.seq = 0;
        s.nick = format!("s{i}g{}", s.gen);
        s.protocol = PROTOCOLS[(s.rng.next() % 3) as usize];
        self.set_phase(i, Phase::Connecting);
    }

    /// Closes slot `i`'s connection (if any) and schedules the reconnect.
    fn finish(&mut self, i: usize, reset: bool) {
        if let Some(st) = self.slots[i].stream.take() {
            if reset {
                set_linger_zero(&st);
            }
            drop(st);
            self.open -= 1;
        }
        self.set_phase(i, Phase::Idle);
        let s = &mut self.slots[i];
        s.rx = Vec::new();
        s.tx = Vec::new();
        s.tx_pos = 0;
        s.end_at = None;
        s.ping_out = None;
        s.reconnect_at = match self.stage {
            Stage::Ramp => Some(Instant::now()),
            Stage::Churn => Some(Instant::now() + Duration::from_millis(s.rng.range(0, 1000))),
            Stage::Drain => None,
        };
    }

    fn fail(&mut self, i: usize, kind: &str, detail: String) {
        let s = &self.slots[i];
        self.errors.add(
            kind,
            format!(
                "{} ({:?}, {:?}, {}): {detail}",
                s.nick,
                s.phase,
                s.end,
                s.protocol.unwrap_or("none")
            ),
        );
        self.finish(i, false);
        // Back off after a failure instead of hammering a broken server.
        if self.slots[i].reconnect_at.is_some() {
            let s = &mut self.slots[i];
            s.reconnect_at = Some(Instant::now() + Duration::from_millis(s.rng.range(500, 2000)));
        }
    }

    /// Too many errors to go on: the run stops early and fails.
    fn aborted(&self) -> bool {
        self.errors.total() >= ERROR_BUDGET
    }

    fn ended(&mut self, i: usize) {
        let e = self.slots[i].end;
        *self.counts.ends.entry(e).or_default() += 1;
    }

    fn queue(&mut self, i: usize, bytes: &[u8]) {
        self.slots[i].tx.extend_from_slice(bytes);
        self.flush(i);
    }

    fn send_frame(&mut self, i: usize, fin: bool, opcode: u8, payload: &[u8]) {
        let m = self.slots[i].rng.mask();
        let f = encode_frame(fin, opcode, payload, Some(m));
        self.queue(i, &f);
    }

    fn data_opcode(&self, i: usize) -> u8 {
        if self.slots[i].protocol == Some("binary.ircv3.net") {
            OP_BINARY
        } else {
            OP_TEXT
        }
    }

    fn send_line(&mut self, i: usize, line: &str) {
        let op = self.data_opcode(i);
        self.send_frame(i, true, op, line.as_bytes());
    }

    fn flush(&mut self, i: usize) {
        let s = &mut self.slots[i];
        let Some(st) = s.stream.as_mut() else { return };
        if s.phase == Phase::Connecting {
            return;
        }
        while s.tx_pos < s.tx.len() {
            match st.write(&s.tx[s.tx_pos..]) {
                Ok(0) => break,
                Ok(n) => s.tx_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return, // the read side reports the close
            }
        }
        s.tx.clear();
        s.tx_pos = 0;
    }

    fn on_event(&mut self, tag: u64, flags: u32, buf: &mut [u8]) {
        let i = (tag & 0xffff_ffff) as usize;
        let serial = (tag >> 32) as u32;
        if i >= self.slots.len() || self.slots[i].serial != serial || self.slots[i].stream.is_none()
        {
            return; // stale
        }
        let flags = flags as i32;
        if self.slots[i].phase == Phase::Connecting {
            if flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) == 0 {
                return;
            }
            let err = self.slots[i].stream.as_ref().unwrap().take_error();
            match err {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.fail(i, "connect failed", e.to_string());
                    return;
                }
            }
            let port = self.port;
            let proto = self.slots[i].protocol;
            let req = upgrade_request(port, server::ORIGIN, proto);
            if self.slots[i].end == End::HalfHandshake {
                self.set_phase(i, Phase::HalfHandshake);
                let cut = 10 + (self.slots[i].rng.next() as usize % (req.len() - 20));
                let at = Instant::now() + Duration::from_millis(self.slots[i].rng.range(0, 2000));
                self.slots[i].end_at = Some(at);
                self.queue(i, &req[..cut]);
            } else {
                self.set_phase(i, Phase::Handshake);
                self.queue(i, &req);
            }
        }
        if flags & libc::EPOLLOUT != 0 {
            self.flush(i);
        }
        if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) != 0 {
            self.read_ready(i, buf);
        }
    }

    fn read_ready(&mut self, i: usize, buf: &mut [u8]) {
        let mut eof = false;
        let mut err = None;
        {
            let s = &mut self.slots[i];
            let Some(st) = s.stream.as_mut() else { return };
            loop {
                match st.read(buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => s.rx.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eof = true;
                        err = Some(e);
                        break;
                    }
                }
            }
        }
        self.process(i);
        if eof && self.slots[i].stream.is_some() {
            let phase = self.slots[i].phase;
            match phase {
                Phase::EofWait => {
                    if !self.slots[i].rx.is_empty() {
                        let n = self.slots[i].rx.len();
                        self.fail(i, "EOF inside a frame", format!("{n} bytes buffered"));
                    } else {
                        self.ended(i);
                        self.finish(i, false);
                    }
                }
                _ => {
                    let what = match &err {
                        Some(e) => format!("read error {e}"),
                        None => "EOF".to_string(),
                    };
                    let kind = match phase {
                        Phase::CloseWait | Phase::QuitWait | Phase::ProtoWait => {
                            "TCP close without the expected close frame"
                        }
                        _ => "unexpected TCP close by the server",
                    };
                    self.fail(
                        i,
                        kind,
                        format!("{what}; {} bytes buffered", self.slots[i].rx.len()),
                    );
                }
            }
        }
    }

    fn process(&mut self, i: usize) {
        if self.slots[i].rx.is_empty() {
            return;
        }
        match self.slots[i].phase {
            Phase::HalfHandshake => {
                let got = String::from_utf8_lossy(&self.slots[i].rx).into_owned();
                self.fail(i, "response to a half-sent upgrade request", got);
                return;
            }
            Phase::Handshake => {
                let Some(end) = find(&self.slots[i].rx, b"\r\n\r\n") else {
                    return;
                };
                let head: Vec<u8> = self.slots[i].rx.drain(..end + 4).collect();
                if let Err(e) = check_101(&head) {
                    self.fail(i, "handshake refused", e);
                    return;
                }
                self.counts.upgraded += 1;
                *self
                    .counts
                    .by_protocol
                    .entry(self.slots[i].protocol.unwrap_or("none"))
                    .or_default() += 1;
                self.set_phase(i, Phase::Register);
                let nick = self.slots[i].nick.clone();
                self.send_line(i, &format!("NICK {nick}"));
                self.send_line(i, "USER soak 0 * :soak client");
            }
            _ => {}
        }
        let mut rx = std::mem::take(&mut self.slots[i].rx);
        let mut pos = 0;
        while let Some((f, used)) = parse_frame(&rx[pos..]) {
            pos += used;
            if !self.on_frame(i, f) {
                return; // the slot was closed
            }
            if self.slots[i].stream.is_none() {
                return;
            }
        }
        rx.drain(..pos);
        self.slots[i].rx = rx;
    }

    /// Handles one server frame; false when the slot got closed.
    fn on_frame(&mut self, i: usize, f: Frame) -> bool {
        if f.masked || f.rsv != 0 {
            self.fail(
                i,
                "invalid server frame",
                format!("masked={} rsv={}", f.masked, f.rsv),
            );
            return false;
        }
        match f.opcode {
            OP_TEXT | OP_BINARY if f.fin => {
                let line = String::from_utf8_lossy(&f.payload).into_owned();
                self.on_line(i, &line)
            }
            OP_TEXT | OP_BINARY | OP_CONT => {
                self.fail(
                    i,
                    "fragmented server message",
                    format!("opcode {} fin {}", f.opcode, f.fin),
                );
                false
            }
            OP_PING => {
                self.counts.server_pings += 1;
                self.send_frame(i, true, OP_PONG, &f.payload);
                true
            }
            OP_PONG => match self.slots[i].ping_out.take() {
                Some((p, _)) if p == f.payload => {
                    self.counts.ws_pongs += 1;
                    true
                }
                other => {
                    self.fail(
                        i,
                        "unexpected pong",
                        format!(
                            "got {:?}, awaited {:?}",
                            String::from_utf8_lossy(&f.payload),
                            other.map(|o| String::from_utf8_lossy(&o.0).into_owned())
                        ),
                    );
                    false
                }
            },
            OP_CLOSE => {
                let code = f.close_code();
                let reason = f.close_reason();
                let want = match self.slots[i].phase {
                    Phase::CloseWait | Phase::QuitWait => Some(1000),
                    Phase::ProtoWait => Some(1002),
                    _ => None,
                };
                match want {
                    Some(w) if code == Some(w) => {
                        self.set_phase(i, Phase::EofWait);
                        true
                    }
                    Some(w) => {
                        self.fail(
                            i,
                            "wrong close code",
                            format!("awaited {w}, got {code:?} {reason:?}"),
                        );
                        false
                    }
                    None => {
                        self.fail(i, "unexpected close frame", format!("{code:?} {reason:?}"));
                        false
                    }
                }
            }
            op => {
                self.fail(i, "unknown server opcode", format!("{op}"));
                false
            }
        }
    }

    fn on_line(&mut self, i: usize, line: &str) -> bool {
        if let Some(t) = line.strip_prefix("PING ") {
            self.counts.irc_pings += 1;
            self.send_line(i, &format!("PONG {t}"));
            return true;
        }
        if line.starts_with("ERROR ") {
            if self.slots[i].phase == Phase::QuitWait {
                self.counts.quit_error_lines += 1;
                return true;
            }
            // The server is closing us; the close frame that follows decides.
            self.errors.add(
                "ERROR line from the server",
                format!("{}: {line}", self.slots[i].nick),
            );
            return true;
        }
        let cmd = command(line);
        match cmd {
            "001" if self.slots[i].phase == Phase::Register => {
                self.counts.registered += 1;
                self.set_phase(i, Phase::Join);
                let chan = self.slots[i].chan;
                self.send_line(i, &format!("JOIN #c{chan}"));
            }
            "366" if self.slots[i].phase == Phase::Join => {
                self.counts.joined += 1;
                self.set_phase(i, Phase::Active);
                let now = Instant::now();
                let (c, p) = (self.settings.chat_every, self.settings.ping_every);
                let s = &mut self.slots[i];
                s.next_chat = now + s.rng.duration(Duration::ZERO, c.1);
                s.next_ping = now + s.rng.duration(Duration::ZERO, p.1);
                s.end_at = match self.stage {
                    Stage::Ramp => None,
                    Stage::Churn => {
                        Some(now + s.rng.duration(self.settings.life.0, self.settings.life.1))
                    }
                    Stage::Drain => {
                        Some(now + s.rng.duration(Duration::ZERO, Duration::from_secs(2)))
                    }
                };
            }
            "432" | "433" | "436" | "437" | "471" | "473" | "474" | "475" | "405" | "451"
            | "421" => {
                self.fail(i, "IRC error numeric", line.to_string());
                return false;
            }
            "PRIVMSG" => match parse_privmsg(line) {
                Some((_, _, text)) if check_chat(text).is_some() => self.counts.chats_received += 1,
                _ => {
                    self.fail(i, "corrupt chat message", line.chars().take(200).collect());
                    return false;
                }
            },
            _ => self.counts.other_lines += 1,
        }
        true
    }

    fn do_end(&mut self, i: usize) {
        let e = self.slots[i].end;
        match e {
            End::Clean => {
                let p = close_payload(1000, "soak bye");
                self.send_frame(i, true, OP_CLOSE, &p);
                self.set_phase(i, Phase::CloseWait);
            }
            End::Quit => {
                self.send_line(i, "QUIT :soak bye");
                self.set_phase(i, Phase::QuitWait);
            }
            End::Abrupt => {
                self.ended(i);
                self.finish(i, false);
            }
            End::Reset => {
                self.ended(i);
                self.finish(i, true);
            }
            End::HalfFrame => {
                let m = self.slots[i].rng.mask();
                let payload = format!(
                    "PRIVMSG #c{} :this frame is never finished, the socket closes first",
                    self.slots[i].chan
                );
                let f = encode_frame(true, OP_TEXT, payload.as_bytes(), Some(m));
                let cut = 1 + (self.slots[i].rng.next() as usize % (f.len() - 2));
                self.queue(i, &f[..cut]);
                self.ended(i);
                self.finish(i, false);
            }
            End::ProtoError => {
                let f = encode_frame(true, OP_TEXT, b"PRIVMSG #nowhere :unmasked", None);
                self.queue(i, &f);
                self.set_phase(i, Phase::ProtoWait);
            }
            End::HalfHandshake => {
                self.ended(i);
                self.finish(i, false);
            }
        }
    }

    fn send_chat(&mut self, i: usize) {
        let s = &mut self.slots[i];
        s.seq += 1;
        let line = format!("PRIVMSG #c{} :{}", s.chan, chat_text(&s.nick, s.seq));
        let fragment = s.rng.range(0, 4) == 0;
        let op = self.data_opcode(i);
        if fragment {
            let b = line.as_bytes();
            let cut = b.len() / 2;
            self.send_frame(i, false, op, &b[..cut]);
            self.send_frame(i, true, OP_CONT, &b[cut..]);
            self.counts.chats_fragmented += 1;
        } else {
            self.send_line(i, &line);
        }
        self.counts.chats_sent += 1;
    }

    /// Timers: reconnects, phase deadlines, chat, pings, ends.
    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let phase = self.slots[i].phase;
            match phase {
                Phase::Idle => {
                    if let Some(at) = self.slots[i].reconnect_at {
                        if at <= now
                            && self.inflight < self.settings.inflight
                            && self.stage != Stage::Drain
                        {
                            self.start(i);
                        }
                    }
                }
                Phase::HalfHandshake => {
                    if self.slots[i].end_at.is_some_and(|t| t <= now) {
                        self.ended(i);
                        self.finish(i, false);
                    }
                }
                Phase::Active => {
                    if let Some((_, sent)) = &self.slots[i].ping_out {
                        if now.duration_since(*sent) > self.settings.phase_timeout {
                            self.fail(i, "timeout", "no pong to a WebSocket ping".into());
                            continue;
                        }
                    }
                    if self.slots[i].end_at.is_some_and(|t| t <= now) {
                        self.do_end(i);
                        continue;
                    }
                    if self.slots[i].next_chat <= now {
                        self.send_chat(i);
                        let c = self.settings.chat_every;
                        let s = &mut self.slots[i];
                        s.next_chat = now + s.rng.duration(c.0, c.1);
                    }
                    if self.slots[i].next_ping <= now && self.slots[i].ping_out.is_none() {
                        let s = &mut self.slots[i];
                        s.seq += 1;
                        let payload = format!("soak-ping {} {}", s.nick, s.seq).into_bytes();
                        s.ping_out = Some((payload.clone(), now));
                        let p = self.settings.ping_every;
                        s.next_ping = now + s.rng.duration(p.0, p.1);
                        self.send_frame(i, true, OP_PING, &payload);
                        self.counts.ws_pings += 1;
                    }
                }
                _ => {
                    if now > self.slots[i].deadline {
                        let t = self.settings.phase_timeout;
                        self.fail(
                            i,
                            "timeout",
                            format!("no progress in {phase:?} within {t:?}"),
                        );
                    }
                }
            }
        }
    }

    /// Drives sockets and timers until `until` returns true or the deadline passes.
    fn run(&mut self, deadline: Instant, mut on_second: impl FnMut(&mut Engine) -> bool) -> bool {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = vec![0u8; 256 * 1024];
        let mut last_tick = Instant::now() - Duration::from_secs(1);
        let mut last_second = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if now.duration_since(last_tick) >= Duration::from_millis(50) {
                last_tick = now;
                self.tick();
            }
            if now.duration_since(last_second) >= Duration::from_secs(1) {
                last_second = now;
                if on_second(self) {
                    return true;
                }
            }
            // SAFETY: events has room for its length in epoll_events.
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), events.len() as i32, 20)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                panic!("epoll_wait: {e}");
            }
            for ev in events.iter().take(n as usize).copied() {
                self.on_event(ev.u64, ev.events, &mut buf);
            }
        }
    }

    fn begin_churn(&mut self) {
        self.stage = Stage::Churn;
        self.churning = true;
        let now = Instant::now();
        let life = self.settings.life;
        for s in &mut self.slots {
            if s.phase == Phase::Active {
                // Spread the first ends over [0, life max] so the churn is steady at once.
                s.end_at = Some(now + s.rng.duration(Duration::from_millis(500), life.1));
            }
        }
    }

    fn begin_drain(&mut self) {
        self.stage = Stage::Drain;
        let now = Instant::now();
        for s in &mut self.slots {
            s.reconnect_at = None;
            if s.phase == Phase::Active {
                s.end_at = Some(now + s.rng.duration(Duration::ZERO, Duration::from_secs(5)));
            }
        }
    }

    fn all_idle(&self) -> bool {
        self.open == 0 && self.slots.iter().all(|s| s.phase == Phase::Idle)
    }

    fn reset_for_next_round(&mut self) {
        self.stage = Stage::Ramp;
        self.churning = false;
        let now = Instant::now();
        for s in &mut self.slots {
            s.reconnect_at = Some(now);
        }
    }

    fn phase_histogram(&self) -> String {
        let mut h: BTreeMap<String, usize> = BTreeMap::new();
        for s in &self.slots {
            *h.entry(format!("{:?}", s.phase)).or_default() += 1;
        }
        h.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for s in &mut self.slots {
            s.stream = None;
        }
        // SAFETY: our own epoll fd.
        unsafe {
            libc::close(self.epfd);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The server's own view: a plain IRC oper polling LUSERS and STATS W.
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone, Debug)]
struct MonState {
    local_users: Option<u64>,
    ws_open: Option<u64>,
    max_local_users: u64,
    max_ws_open: u64,
    polls: u64,
    error: Option<String>,
    stats_w: Vec<String>,
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn monitor(port: u16, state: Arc<Mutex<MonState>>, stop: Arc<AtomicBool>) {
    let t = Duration::from_secs(60);
    let run = || -> Result<(), String> {
        let mut c = crate::ws::Irc::start(port, "monitor")?;
        c.wait_welcome(t)?;
        c.oper(t)?;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            c.send("LUSERS")?;
            let l = c.expect("265 (local users)", t, |l| command(l) == "265")?;
            let local = number_after(&l, "Current local users:");
            let lines = c.stats_w(t)?;
            let open = lines
                .iter()
                .find_map(|l| number_after(l, "WebSocket open connections:"));
            {
                let mut s = state.lock().unwrap();
                s.local_users = local;
                s.ws_open = open;
                s.max_local_users = s.max_local_users.max(local.unwrap_or(0));
                s.max_ws_open = s.max_ws_open.max(open.unwrap_or(0));
                s.polls = n;
                s.stats_w = lines;
            }
            for _ in 0..10 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        c.send("QUIT :monitor done")?;
        Ok(())
    };
    if let Err(e) = run() {
        state.lock().unwrap().error = Some(e);
    }
}

/// Waits until the monitor has polled at least `after` + 1 times and `pred` holds.
fn wait_monitor(
    state: &Arc<Mutex<MonState>>,
    limit: Duration,
    pred: impl Fn(&MonState) -> bool,
) -> Option<MonState> {
    let start_poll = state.lock().unwrap().polls;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        {
            let s = state.lock().unwrap();
            if s.error.is_some() {
                return None;
            }
            if s.polls > start_poll && pred(&s) {
                return Some(s.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The server's sockets on `port` in CLOSE-WAIT (the client closed; the server has not
/// noticed yet), from `ss`.
fn close_wait_sockets(port: u16) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-tanH", "state", "close-wait"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let local = format!("127.0.0.1:{port}");
    out.lines()
        .filter(|l| l.split_whitespace().nth(2) == Some(local.as_str()))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

struct RssTrack {
    max_sampled: u64,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Waits until the server used no CPU for `quiet` (at most `limit`).
fn settle(server: &Server, quiet: Duration, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = server.proc().cpu_seconds();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = server.proc().cpu_seconds();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

pub fn run(s: &Settings) -> bool {
    let t0 = Instant::now();
    let want_fds = (s.conns as u64) * 2 + 1024;
    let nofile = server::raise_nofile(want_fds.max(65536));
    println!(
        "soak: RLIMIT_NOFILE raised to {nofile} (wanted {}; capped by the hard limit without CAP_SYS_RESOURCE); the server inherits it",
        want_fds.max(65536)
    );
    if nofile < s.conns as u64 + 256 {
        println!("FAIL: RLIMIT_NOFILE {nofile} is too low for {} connections; run as root or raise `ulimit -Hn`", s.conns);
        return false;
    }
    // InspIRCd 3 misses a FIN that arrives right behind a partial line (plain TCP too);
    // such sockets stay until a write fails or the registration timeout. A 20 s
    // keepalive and a 30 s registration timeout bound that (tools/soak/README.md).
    let mut conf = server::reg_timeout(server::conf(s.module.clone()), s.reg_timeout_secs)
        .websocket(&format!("pinginterval=\"{}s\"", s.keepalive_secs));
    if std::env::var_os("SOAK_DEBUG").is_some() {
        conf = conf.log("debug", false);
    }
    let mut server = match server::start("soak", conf, None, Duration::from_secs(30), s.keep) {
        Ok(sv) => sv,
        Err(e) => {
            println!("FAIL: {e}");
            return false;
        }
    };
    let banner = server.output();
    let max_sockets = banner
        .lines()
        .find(|l| l.contains("max open sockets"))
        .unwrap_or_default()
        .to_string();
    println!(
        "soak: server PID {} on ws://127.0.0.1:{}/ ({}); module {}",
        server.pid,
        server.ws_port,
        max_sockets.trim(),
        s.module.display()
    );
    println!(
        "soak: {} connections, churn {} s, {} channels, lifetime {:?}..{:?}, chat every {:?}..{:?}, ping every {:?}..{:?}",
        s.conns, s.seconds, s.channels, s.life.0, s.life.1, s.chat_every.0, s.chat_every.1, s.ping_every.0, s.ping_every.1
    );

    let mon = Arc::new(Mutex::new(MonState::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mon_thread = {
        let (m, st, port) = (mon.clone(), stop.clone(), server.irc_port);
        std::thread::spawn(move || monitor(port, m, st))
    };
    let mut failures: Vec<String> = Vec::new();
    if wait_monitor(&mon, Duration::from_secs(30), |m| m.local_users.is_some()).is_none() {
        println!(
            "FAIL: the monitor could not register: {:?}",
            mon.lock().unwrap().error
        );
        stop.store(true, Ordering::Relaxed);
        let _ = mon_thread.join();
        return false;
    }
    settle(&server, Duration::from_secs(1), Duration::from_secs(10));
    let rss_initial = server.proc().rss_kib();
    let fd_initial = server.proc().fd_count();
    let mut track = RssTrack {
        max_sampled: rss_initial,
    };
    let cpu0 = server.proc().cpu_seconds();
    let own0 = server::own_cpu_seconds();

    let mut eng = Engine::new(server.ws_port, s);
    let mut server_dead = false;
    let mut last_report = Instant::now();

    // One closure for the per-second checks of every stage.
    macro_rules! second {
        ($eng:expr, $label:expr) => {{
            let rss = server.proc().rss_kib();
            track.max_sampled = track.max_sampled.max(rss);
            if !server.is_alive() {
                server_dead = true;
            }
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                let m = mon.lock().unwrap().clone();
                println!(
                    "  [{:>4.0}s {}] open {} active {} inflight {} | server: users {:?} ws open {:?} RSS {} fds {} | chats {} sent {} recv | errors {}",
                    t0.elapsed().as_secs_f64(),
                    $label,
                    $eng.open,
                    $eng.active,
                    $eng.inflight,
                    m.local_users,
                    m.ws_open,
                    mib(rss),
                    server.proc().fd_count(),
                    $eng.counts.chats_sent,
                    $eng.counts.chats_received,
                    $eng.errors.total()
                );
            }
        }};
    }

    // Warm-up: ramp to N, release all, so that "start" is measured with the allocator's
    // arenas and InspIRCd's tables grown once (see README).
    let mut warm_secs = 0.0;
    let mut rss_warm_peak = 0;
    if s.warmup {
        let w0 = Instant::now();
        println!("soak: warm-up: ramp to {} and release", s.conns);
        let n = s.conns;
        let reached = eng.run(Instant::now() + s.ramp_timeout, |e| {
            second!(e, "warm-up");
            server_dead || e.aborted() || e.active >= n
        });
        if !reached {
            failures.push(format!(
                "warm-up: only {} of {n} connections registered within {:?}",
                eng.active, s.ramp_timeout
            ));
        }
        rss_warm_peak = server.proc().rss_kib();
        eng.begin_drain();
        let done = eng.run(Instant::now() + Duration::from_secs(120), |e| {
            second!(e, "warm-up release");
            server_dead || e.aborted() || e.all_idle()
        });
        if !done {
            failures.push(format!(
                "warm-up release incomplete: {}",
                eng.phase_histogram()
            ));
        }
        eng.reset_for_next_round();
        warm_secs = w0.elapsed().as_secs_f64();
    }
    let quick = |e: &Engine, secs: u64| Duration::from_secs(if e.aborted() { 3 } else { secs });
    let _ = wait_monitor(&mon, quick(&eng, 60), |m| {
        m.ws_open == Some(0) && m.local_users == Some(1)
    });
    settle(&server, Duration::from_secs(2), Duration::from_secs(20));
    let rss_start = server.proc().rss_kib();
    let fd_start = server.proc().fd_count();
    let warm_counts_connects = eng.counts.connects;

    // Ramp.
    let ramp0 = Instant::now();
    println!("soak: ramp to {} concurrent WebSocket connections", s.conns);
    let n = s.conns;
    let reached = eng.run(Instant::now() + s.ramp_timeout, |e| {
        second!(e, "ramp");
        server_dead || e.aborted() || e.active >= n
    });
    let ramp_secs = ramp0.elapsed().as_secs_f64();
    let full = wait_monitor(&mon, quick(&eng, 30), |m| {
        m.ws_open.unwrap_or(0) >= n as u64
    });
    let rss_full = server.proc().rss_kib();
    if !reached {
        failures.push(format!(
            "ramp: only {} of {n} connections registered and joined within {:?}",
            eng.active, s.ramp_timeout
        ));
    }
    match &full {
        Some(m) => println!(
            "soak: {} concurrent registered WebSocket clients after {:.1} s; the server counts {} open WebSocket connections, {} local users; RSS {}",
            eng.active, ramp_secs, m.ws_open.unwrap_or(0), m.local_users.unwrap_or(0), mib(rss_full)
        ),
        None => failures.push("the server never reported N open WebSocket connections (STATS W)".into()),
    }

    // Churn.
    if eng.aborted() {
        failures.push(format!("stopped early after {} errors", eng.errors.total()));
    }
    if !server_dead && !eng.aborted() {
        println!("soak: churn for {} s", s.seconds);
        eng.begin_churn();
        let churn_end = Instant::now() + Duration::from_secs(s.seconds);
        eng.run(churn_end, |e| {
            second!(e, "churn");
            server_dead || e.aborted()
        });
    }
    let min_active_note = eng.active;

    // Drain.
    println!("soak: drain (every client leaves with its planned ending)");
    eng.begin_drain();
    let drain_limit = Duration::from_secs(if eng.aborted() { 30 } else { 180 });
    let drained = eng.run(Instant::now() + drain_limit, |e| {
        second!(e, "drain");
        server_dead || e.all_idle()
    });
    if !drained {
        failures.push(format!("drain incomplete: {}", eng.phase_histogram()));
    }
    let gone_pred = |m: &MonState| m.ws_open == Some(0) && m.local_users == Some(1);
    let drained_at = Instant::now();
    let lingering = close_wait_sockets(server.ws_port);
    let reap_limit = if eng.aborted() || !failures.is_empty() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(2 * s.keepalive_secs + s.reg_timeout_secs as u64 + 30)
    };
    let gone = wait_monitor(&mon, reap_limit, gone_pred);
    let reap_secs = drained_at.elapsed().as_secs_f64();
    match &gone {
        Some(_) => println!(
            "soak: server clean {reap_secs:.1} s after the last client socket closed ({} server sockets were in CLOSE-WAIT at that moment)",
            lingering.len()
        ),
        None => {
            let m = mon.lock().unwrap().clone();
            failures.push(format!(
                "{reap_limit:?} after the last client socket was closed the server still counts {:?} WebSocket connections and {:?} local users (1 = the monitor)",
                m.ws_open, m.local_users
            ));
            for l in close_wait_sockets(server.ws_port) {
                println!("  still in CLOSE-WAIT: {l}");
            }
        }
    }
    settle(&server, Duration::from_secs(2), Duration::from_secs(30));
    let rss_end = server.proc().rss_kib();
    // VmHWM is updated lazily by the kernel; the sampled maximum can be a little higher.
    let hwm = server.proc().hwm_kib().max(track.max_sampled);
    let fd_end = server.proc().fd_count();
    let cpu_server = server.proc().cpu_seconds() - cpu0;
    let cpu_own = server::own_cpu_seconds() - own0;
    let mon_final = mon.lock().unwrap().clone();

    stop.store(true, Ordering::Relaxed);
    let _ = mon_thread.join();
    if let Some(e) = &mon_final.error {
        failures.push(format!(
            "the plain IRC monitor lost its connection or timed out: {e}"
        ));
    }
    let alive_at_end = server.is_alive();
    let exit = server.stop(Duration::from_secs(20));
    let output = server.output();
    let alarming = server::alarming_output(&output);

    // ---- report ----
    let c = &eng.counts;
    println!();
    println!("== soak report ==");
    println!("connections: target {} concurrent; peak open (client side) {}; peak registered+joined {}; server peak: {} open WebSocket connections, {} local users",
        s.conns, eng.peak_open, eng.peak_active, mon_final.max_ws_open, mon_final.max_local_users);
    println!("time: warm-up {warm_secs:.1} s, ramp {ramp_secs:.1} s, churn {} s, total {:.1} s; active at churn end: {min_active_note}", s.seconds, t0.elapsed().as_secs_f64());
    println!(
        "operations (warm-up included; {} of the connects were the warm-up's):",
        warm_counts_connects
    );
    println!(
        "  TCP connects {}  upgrades (101) {}  registered (001) {}  joined (366) {}",
        c.connects, c.upgraded, c.registered, c.joined
    );
    println!(
        "  subprotocols: {}",
        c.by_protocol
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  chat sent {} (fragmented {})  chat received {}  other lines {}",
        c.chats_sent, c.chats_fragmented, c.chats_received, c.other_lines
    );
    println!("  WebSocket pings {} / pongs {}  server keepalive pings {}  IRC PINGs answered {}  ERROR lines after QUIT {}", c.ws_pings, c.ws_pongs, c.server_pings, c.irc_pings, c.quit_error_lines);
    println!("  endings:");
    for (e, n) in &c.ends {
        println!("    {:>7}  {}", n, e.name());
    }
    println!("server: RSS initial {} | start {} (after warm-up, no clients) | with {} clients {} | peak {} (VmHWM / sampled max) | end {}",
        mib(rss_initial), mib(rss_start), s.conns, mib(rss_full), mib(hwm), mib(rss_end));
    if s.warmup {
        println!("        warm-up peak {}", mib(rss_warm_peak));
    }
    println!("        fds initial {fd_initial} start {fd_start} end {fd_end}; CPU server {cpu_server:.1} s, soak client {cpu_own:.1} s");
    println!("        after the drain: {:?} open WebSocket connections, {:?} local users (1 = the monitor); STATS W: {}",
        mon_final.ws_open, mon_final.local_users, mon_final.stats_w.join(" | "));
    println!("        exit on SIGTERM: {}", server::describe_exit(exit));

    let measured_conns = c.connects - warm_counts_connects;
    println!(
        "        growth end - start: {:+.1} KiB over {} connections after the warm-up = {:+.1} bytes per connection",
        rss_end as f64 - rss_start as f64,
        measured_conns,
        (rss_end as f64 - rss_start as f64) * 1024.0 / measured_conns.max(1) as f64
    );
    let allowed =
        rss_start as f64 * (1.0 + s.rss_tolerance_pct / 100.0) + s.rss_tolerance_mib * 1024.0;
    println!("errors: {}", eng.errors.total());
    for (k, (n, samples)) in &eng.errors.by_kind {
        println!("  {n:>6}  {k}");
        for d in samples {
            println!("            e.g. {d}");
        }
    }

    // ---- pass criteria ----
    if server_dead || !alive_at_end {
        failures.push(format!(
            "the server died during the run: {}",
            server::describe_exit(exit)
        ));
    }
    if server::crashed(exit) {
        failures.push(format!(
            "the server crashed on SIGTERM: {}",
            server::describe_exit(exit)
        ));
    }
    if !alarming.is_empty() {
        failures.push(format!("alarming server output: {alarming:?}"));
    }
    if eng.peak_active < s.conns || mon_final.max_ws_open < s.conns as u64 {
        failures.push(format!(
            "{} concurrent connections not reached (client {}, server {})",
            s.conns, eng.peak_active, mon_final.max_ws_open
        ));
    }
    if eng.errors.total() > 0 {
        failures.push(format!("{} errors", eng.errors.total()));
    }
    if fd_end > fd_start {
        failures.push(format!(
            "the server holds {} more fds than at start",
            fd_end - fd_start
        ));
    }
    if (rss_end as f64) > allowed {
        failures.push(format!(
            "RSS at end {} exceeds start {} + {}% + {} MiB = {}",
            mib(rss_end),
            mib(rss_start),
            s.rss_tolerance_pct,
            s.rss_tolerance_mib,
            mib(allowed as u64)
        ));
    }
    if c.chats_received == 0 || c.ends.len() < 6 {
        failures
            .push("the operation mix did not happen (no chat received or endings missing)".into());
    }
    println!();
    println!("pass criteria: no crash and clean SIGTERM exit; {} concurrent reached (client and server count); zero errors; after the drain 0 WebSocket connections and only the monitor left; fds end <= start; RSS end <= start x {:.2} + {} MiB = {}",
        s.conns, 1.0 + s.rss_tolerance_pct / 100.0, s.rss_tolerance_mib, mib(allowed as u64));
    if failures.is_empty() {
        println!("SOAK PASS ({:.0} s)", t0.elapsed().as_secs_f64());
        true
    } else {
        for f in &failures {
            println!("FAIL: {f}");
        }
        println!("server files: {} (kept)", server.dir().display());
        server.keep = true;
        println!("SOAK FAIL ({:.0} s)", t0.elapsed().as_secs_f64());
        false
    }
}
