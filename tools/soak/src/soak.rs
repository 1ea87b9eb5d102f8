//! `soak`: N concurrent WebSocket connections to a real InspIRCd with the module,
//! churned for a bounded time with a mix of operations, on one thread driving the test
//! kit's client pool (non-blocking sockets on epoll). A plain IRC oper (another thread)
//! watches the server's own counts (LUSERS, STATS W). Reports the server's RSS, fds and
//! CPU, every operation and every error; returns whether the run passed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::client::{Client, IrcLines};
use testkit::irc::command_str;
use testkit::messages::Message;
use testkit::pool::{Cause, Closed, Event, Handler, Id, Pool, Proto};
use testkit::rng::Rng;
use testkit::ws::{
    close_payload, encode_frame, first_byte, Frame, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG,
    OP_TEXT,
};

use crate::chat::{chat_text, check_chat, parse_privmsg};
use crate::clients::upgrade_request;
use crate::server::{self, Server};

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
    /// The slot's connection in the pool, while it has one.
    id: Option<Id>,
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

/// The workload: a slot per concurrent connection, each living through [`Phase`]s
/// and reconnecting after its [`End`]; the connections themselves are the test kit's
/// [`Pool`]'s, whose events this handles.
struct Engine {
    port: u16,
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
    rng: Rng,
    /// Allow HalfHandshake and end times (false while ramping).
    churning: bool,
}

impl Engine {
    fn new(port: u16, settings: &Settings) -> Engine {
        let now = Instant::now();
        let slots = (0..settings.conns)
            .map(|i| Slot {
                phase: Phase::Idle,
                id: None,
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

    fn start(&mut self, pool: &mut Pool, i: usize) {
        let end = self.pick_end();
        let protocol = PROTOCOLS[(self.slots[i].rng.next_u64() % 3) as usize];
        let mut request = upgrade_request(self.port, server::ORIGIN, protocol);
        if end == End::HalfHandshake {
            let cut = 10 + (self.slots[i].rng.next_u64() as usize % (request.len() - 20));
            request.truncate(cut);
        }
        let data_opcode = if protocol == Some("binary.ircv3.net") {
            OP_BINARY
        } else {
            OP_TEXT
        };
        let id = match pool.connect(
            Proto::WebSocket {
                request,
                data_opcode,
            },
            i,
        ) {
            Ok(id) => id,
            Err(e) => {
                self.errors.add("connect failed", format!("slot {i}: {e}"));
                self.slots[i].reconnect_at = Some(Instant::now() + Duration::from_millis(500));
                return;
            }
        };
        self.counts.connects += 1;
        self.open += 1;
        self.peak_open = self.peak_open.max(self.open);
        let s = &mut self.slots[i];
        s.id = Some(id);
        s.end = end;
        s.end_at = None;
        s.ping_out = None;
        s.reconnect_at = None;
        s.gen += 1;
        s.seq = 0;
        s.nick = format!("s{i}g{}", s.gen);
        s.protocol = protocol;
        self.set_phase(i, Phase::Connecting);
    }

    /// Closes slot `i`'s connection (if the pool still has it) and schedules the
    /// reconnect.
    fn finish(&mut self, pool: &mut Pool, i: usize, reset: bool) {
        if let Some(id) = self.slots[i].id.take() {
            if reset {
                pool.reset(id);
            } else {
                pool.close(id);
            }
            self.open -= 1;
        }
        self.set_phase(i, Phase::Idle);
        let s = &mut self.slots[i];
        s.end_at = None;
        s.ping_out = None;
        s.reconnect_at = match self.stage {
            Stage::Ramp => Some(Instant::now()),
            Stage::Churn => Some(Instant::now() + Duration::from_millis(s.rng.range(0, 1000))),
            Stage::Drain => None,
        };
    }

    fn fail(&mut self, pool: &mut Pool, i: usize, kind: &str, detail: String) {
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
        self.finish(pool, i, false);
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

    fn id(&self, i: usize) -> Option<Id> {
        self.slots[i].id
    }

    fn send_frame(&mut self, pool: &mut Pool, i: usize, fin: bool, opcode: u8, payload: &[u8]) {
        if let Some(id) = self.id(i) {
            pool.send_frame(id, first_byte(fin, opcode), payload);
        }
    }

    fn send_line(&mut self, pool: &mut Pool, i: usize, line: &str) {
        if let Some(id) = self.id(i) {
            pool.send_line(id, line.as_bytes());
        }
    }

    /// The connection ended without this client closing it.
    fn on_closed(&mut self, pool: &mut Pool, i: usize, closed: Closed) {
        let phase = self.slots[i].phase;
        // The pool has closed it already.
        self.slots[i].id = None;
        self.open -= 1;
        let buffered = closed.buffered;
        let what = match closed.cause {
            Cause::Refused(r) if phase == Phase::HalfHandshake => {
                return self.fail(
                    pool,
                    i,
                    "response to a half-sent upgrade request",
                    r.status_line,
                )
            }
            Cause::Refused(r) => {
                let why = r
                    .check_101()
                    .err()
                    .unwrap_or_else(|| format!("{:?}", r.deflate().err().unwrap_or_default()));
                return self.fail(pool, i, "handshake refused", why);
            }
            Cause::Protocol(e) => return self.fail(pool, i, "invalid server frame", e),
            Cause::Io(e) if phase == Phase::Connecting => {
                return self.fail(pool, i, "connect failed", e.to_string())
            }
            Cause::Io(e) => format!("read error {e}"),
            Cause::Eof => "EOF".to_string(),
        };
        match phase {
            Phase::EofWait if buffered > 0 => self.fail(
                pool,
                i,
                "EOF inside a frame",
                format!("{buffered} bytes buffered"),
            ),
            Phase::EofWait => {
                self.ended(i);
                self.finish(pool, i, false);
            }
            Phase::CloseWait | Phase::QuitWait | Phase::ProtoWait => self.fail(
                pool,
                i,
                "TCP close without the expected close frame",
                format!("{what}; {buffered} bytes buffered"),
            ),
            _ => self.fail(
                pool,
                i,
                "unexpected TCP close by the server",
                format!("{what}; {buffered} bytes buffered"),
            ),
        }
    }

    /// The 101 arrived (checked by the pool).
    fn on_open(&mut self, pool: &mut Pool, i: usize, status_line: &str) {
        if self.slots[i].phase == Phase::HalfHandshake {
            return self.fail(
                pool,
                i,
                "response to a half-sent upgrade request",
                status_line.to_string(),
            );
        }
        self.counts.upgraded += 1;
        *self
            .counts
            .by_protocol
            .entry(self.slots[i].protocol.unwrap_or("none"))
            .or_default() += 1;
        self.set_phase(i, Phase::Register);
        let nick = self.slots[i].nick.clone();
        self.send_line(pool, i, &format!("NICK {nick}"));
        self.send_line(pool, i, "USER soak 0 * :soak client");
    }

    /// Handles one server control frame.
    fn on_control(&mut self, pool: &mut Pool, i: usize, f: &Frame) {
        match f.opcode {
            OP_PING => {
                self.counts.server_pings += 1;
                self.send_frame(pool, i, true, OP_PONG, &f.payload);
            }
            OP_PONG => match self.slots[i].ping_out.take() {
                Some((p, _)) if p == f.payload => self.counts.ws_pongs += 1,
                other => self.fail(
                    pool,
                    i,
                    "unexpected pong",
                    format!(
                        "got {:?}, awaited {:?}",
                        String::from_utf8_lossy(&f.payload),
                        other.map(|o| String::from_utf8_lossy(&o.0).into_owned())
                    ),
                ),
            },
            _ => {
                let code = f.close_code();
                let reason = f.close_reason();
                let want = match self.slots[i].phase {
                    Phase::CloseWait | Phase::QuitWait => Some(1000),
                    Phase::ProtoWait => Some(1002),
                    _ => None,
                };
                match want {
                    Some(w) if code == Some(w) => self.set_phase(i, Phase::EofWait),
                    Some(w) => self.fail(
                        pool,
                        i,
                        "wrong close code",
                        format!("awaited {w}, got {code:?} {reason:?}"),
                    ),
                    None => self.fail(
                        pool,
                        i,
                        "unexpected close frame",
                        format!("{code:?} {reason:?}"),
                    ),
                }
            }
        }
    }

    /// Handles one server message: the module never fragments what it sends.
    fn on_message(&mut self, pool: &mut Pool, i: usize, m: &Message) {
        if m.frames > 1 {
            return self.fail(
                pool,
                i,
                "fragmented server message",
                format!("opcode {} in {} frames", m.opcode, m.frames),
            );
        }
        let line = String::from_utf8_lossy(&m.payload).into_owned();
        self.on_line(pool, i, &line);
    }

    fn on_line(&mut self, pool: &mut Pool, i: usize, line: &str) {
        if let Some(t) = line.strip_prefix("PING ") {
            self.counts.irc_pings += 1;
            self.send_line(pool, i, &format!("PONG {t}"));
            return;
        }
        if line.starts_with("ERROR ") {
            if self.slots[i].phase == Phase::QuitWait {
                self.counts.quit_error_lines += 1;
                return;
            }
            // The server is closing us; the close frame that follows decides.
            self.errors.add(
                "ERROR line from the server",
                format!("{}: {line}", self.slots[i].nick),
            );
            return;
        }
        match command_str(line) {
            "001" if self.slots[i].phase == Phase::Register => {
                self.counts.registered += 1;
                self.set_phase(i, Phase::Join);
                let chan = self.slots[i].chan;
                self.send_line(pool, i, &format!("JOIN #c{chan}"));
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
            | "421" => self.fail(pool, i, "IRC error numeric", line.to_string()),
            "PRIVMSG" => match parse_privmsg(line) {
                Some((_, _, text)) if check_chat(text).is_some() => self.counts.chats_received += 1,
                _ => self.fail(
                    pool,
                    i,
                    "corrupt chat message",
                    line.chars().take(200).collect(),
                ),
            },
            _ => self.counts.other_lines += 1,
        }
    }

    fn do_end(&mut self, pool: &mut Pool, i: usize) {
        let e = self.slots[i].end;
        match e {
            End::Clean => {
                let p = close_payload(1000, "soak bye");
                self.send_frame(pool, i, true, OP_CLOSE, &p);
                self.set_phase(i, Phase::CloseWait);
            }
            End::Quit => {
                self.send_line(pool, i, "QUIT :soak bye");
                self.set_phase(i, Phase::QuitWait);
            }
            End::Abrupt => {
                self.ended(i);
                self.finish(pool, i, false);
            }
            End::Reset => {
                self.ended(i);
                self.finish(pool, i, true);
            }
            End::HalfFrame => {
                let m = self.slots[i].rng.mask();
                let payload = format!(
                    "PRIVMSG #c{} :this frame is never finished, the socket closes first",
                    self.slots[i].chan
                );
                let f = encode_frame(true, OP_TEXT, payload.as_bytes(), Some(m));
                let cut = 1 + (self.slots[i].rng.next_u64() as usize % (f.len() - 2));
                if let Some(id) = self.id(i) {
                    pool.send_raw(id, &f[..cut]);
                }
                self.ended(i);
                self.finish(pool, i, false);
            }
            End::ProtoError => {
                let f = encode_frame(true, OP_TEXT, b"PRIVMSG #nowhere :unmasked", None);
                if let Some(id) = self.id(i) {
                    pool.send_raw(id, &f);
                }
                self.set_phase(i, Phase::ProtoWait);
            }
            End::HalfHandshake => {
                self.ended(i);
                self.finish(pool, i, false);
            }
        }
    }

    fn send_chat(&mut self, pool: &mut Pool, i: usize) {
        let s = &mut self.slots[i];
        s.seq += 1;
        let line = format!("PRIVMSG #c{} :{}", s.chan, chat_text(&s.nick, s.seq));
        let fragment = s.rng.range(0, 4) == 0;
        let op = if s.protocol == Some("binary.ircv3.net") {
            OP_BINARY
        } else {
            OP_TEXT
        };
        if fragment {
            let b = line.as_bytes();
            let cut = b.len() / 2;
            self.send_frame(pool, i, false, op, &b[..cut]);
            self.send_frame(pool, i, true, OP_CONT, &b[cut..]);
            self.counts.chats_fragmented += 1;
        } else {
            self.send_line(pool, i, &line);
        }
        self.counts.chats_sent += 1;
    }

    /// Timers: reconnects, phase deadlines, chat, pings, ends.
    fn tick(&mut self, pool: &mut Pool) {
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
                            self.start(pool, i);
                        }
                    }
                }
                Phase::HalfHandshake => {
                    if self.slots[i].end_at.is_some_and(|t| t <= now) {
                        // Nothing may have come back, not even part of an answer.
                        let got = self.id(i).map_or(0, |id| pool.buffered(id));
                        if got > 0 {
                            self.fail(
                                pool,
                                i,
                                "response to a half-sent upgrade request",
                                format!("{got} bytes"),
                            );
                        } else {
                            self.ended(i);
                            self.finish(pool, i, false);
                        }
                    }
                }
                Phase::Active => {
                    if let Some((_, sent)) = &self.slots[i].ping_out {
                        if now.duration_since(*sent) > self.settings.phase_timeout {
                            self.fail(pool, i, "timeout", "no pong to a WebSocket ping".into());
                            continue;
                        }
                    }
                    if self.slots[i].end_at.is_some_and(|t| t <= now) {
                        self.do_end(pool, i);
                        continue;
                    }
                    if self.slots[i].next_chat <= now {
                        self.send_chat(pool, i);
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
                        self.send_frame(pool, i, true, OP_PING, &payload);
                        self.counts.ws_pings += 1;
                    }
                }
                _ => {
                    if now > self.slots[i].deadline {
                        let t = self.settings.phase_timeout;
                        self.fail(
                            pool,
                            i,
                            "timeout",
                            format!("no progress in {phase:?} within {t:?}"),
                        );
                    }
                }
            }
        }
    }

    /// Drives the pool and the timers until `on_second` (called once a second)
    /// returns true (then true) or the deadline passes (then false).
    fn run(
        &mut self,
        pool: &mut Pool,
        deadline: Instant,
        mut on_second: impl FnMut(&mut Engine) -> bool,
    ) -> bool {
        let mut last_tick = Instant::now() - Duration::from_secs(1);
        let mut last_second = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            if now.duration_since(last_tick) >= Duration::from_millis(50) {
                last_tick = now;
                self.tick(pool);
            }
            if now.duration_since(last_second) >= Duration::from_secs(1) {
                last_second = now;
                if on_second(self) {
                    return true;
                }
            }
            if let Err(e) = pool.turn(self, Duration::from_millis(20)) {
                self.errors.add("epoll_wait failed", e.to_string());
                return false;
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

impl Handler for Engine {
    fn on_event(&mut self, pool: &mut Pool, id: Id, i: usize, event: Event<'_>) {
        if self.slots.get(i).and_then(|s| s.id) != Some(id) {
            return; // a connection this slot no longer has
        }
        match event {
            Event::Connected => {
                if self.slots[i].end == End::HalfHandshake {
                    self.set_phase(i, Phase::HalfHandshake);
                    let at =
                        Instant::now() + Duration::from_millis(self.slots[i].rng.range(0, 2000));
                    self.slots[i].end_at = Some(at);
                } else {
                    self.set_phase(i, Phase::Handshake);
                }
            }
            Event::Open(r) => {
                let status = r.map(|r| r.status_line.clone()).unwrap_or_default();
                self.on_open(pool, i, &status);
            }
            Event::Line(l) => {
                let line = String::from_utf8_lossy(l).into_owned();
                self.on_line(pool, i, &line);
            }
            Event::Message(m) => self.on_message(pool, i, m),
            Event::Control(f) => self.on_control(pool, i, f),
            Event::Closed(c) => self.on_closed(pool, i, c),
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
        let mut c = Client::irc_start(port, "monitor")?.with_timeout(t);
        c.wait_welcome()?;
        c.oper()?;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            c.send_line("LUSERS")?;
            let l = c.expect_str("265 (local users)", |l| command_str(l) == "265")?;
            let local = number_after(&l, "Current local users:");
            let lines = c.stats_w()?;
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
        c.send_line("QUIT :monitor done")?;
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
    let mut pool = match Pool::new(server.ws_port) {
        Ok(p) => p,
        Err(e) => {
            println!("FAIL: epoll: {e}");
            return false;
        }
    };
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
        let reached = eng.run(&mut pool, Instant::now() + s.ramp_timeout, |e| {
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
        let done = eng.run(&mut pool, Instant::now() + Duration::from_secs(120), |e| {
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
    let reached = eng.run(&mut pool, Instant::now() + s.ramp_timeout, |e| {
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
        eng.run(&mut pool, churn_end, |e| {
            second!(e, "churn");
            server_dead || e.aborted()
        });
    }
    let min_active_note = eng.active;

    // Drain.
    println!("soak: drain (every client leaves with its planned ending)");
    eng.begin_drain();
    let drain_limit = Duration::from_secs(if eng.aborted() { 30 } else { 180 });
    let drained = eng.run(&mut pool, Instant::now() + drain_limit, |e| {
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
