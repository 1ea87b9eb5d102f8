//! `soak`: N concurrent WebSocket connections to a real InspIRCd with the module,
//! churned for a bounded time with a mix of operations and every way of ending, on one
//! thread driving the test kit's client pool; a plain IRC oper on another thread
//! watches the server's own counts (LUSERS, STATS W). Reports the server's RSS, fds
//! and CPU, every operation and every error (the README says what passes).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use testkit::client::IrcLines;
use testkit::irc::command;
use testkit::pool::{Cause, Closed, Event, Handler, Id, Pool, Proto};
use testkit::procfs::Proc;
use testkit::rng::Rng;
use testkit::ws::{close_payload, encode_frame, first_byte, Frame, OP_BINARY, OP_CLOSE};
use testkit::ws::{OP_CONT, OP_PING, OP_PONG, OP_TEXT};

use crate::chat::{chat_text, check_chat, parse_privmsg};
use crate::server::{self, mib, number_after, Server, PROTOCOLS};

#[derive(clap::Args, Debug)]
pub struct Settings {
    #[command(flatten)]
    common: crate::Common,
    /// Concurrent connections (each needs a descriptor on both sides).
    #[arg(long, env = "SOAK_CONNS", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..=20000))]
    conns: u32,
    /// Seconds of churn.
    #[arg(long, env = "SOAK_SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(..=3600))]
    seconds: u64,
    /// Measure "start" on the fresh server, without a first ramp and release.
    #[arg(long)]
    no_warmup: bool,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
/// Lifetime of a registered connection during the churn.
const LIFE: (Duration, Duration) = (secs(20), secs(60));
/// Time between a connection's chat messages, and between its WebSocket pings.
const CHAT_EVERY: (Duration, Duration) = (secs(10), secs(40));
const PING_EVERY: (Duration, Duration) = (secs(10), secs(40));
/// Connections between connect and joined at once.
const INFLIGHT: usize = 300;
/// Longest a connection may stay in one phase, or wait for a pong.
const PHASE_TIMEOUT: Duration = secs(45);
/// Longest a ramp to N connections may take.
const RAMP_TIMEOUT: Duration = secs(240);
/// Pass: RSS at end <= start * (1 + RSS_SLACK_PCT / 100) + RSS_SLACK_MIB: the percentage
/// absorbs allocator noise proportional to the heap, the MiB a few arenas or pages.
const RSS_SLACK_PCT: f64 = 10.0;
const RSS_SLACK_MIB: f64 = 4.0;
/// `<websocket pinginterval>` and `<connect timeout>`: they bound how long InspIRCd
/// keeps a socket whose FIN it missed behind a partial line (README).
const KEEPALIVE_SECS: u64 = 20;
const REG_TIMEOUT_SECS: u64 = 30;
/// A run with this many errors stops early.
const ERROR_BUDGET: u64 = 1000;
/// Connections per channel.
const PER_CHANNEL: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting,
    /// Sent half an upgrade request; closes at `end_at`, having received nothing.
    HalfHandshake,
    Handshake,
    Register,
    Join,
    Active,
    /// Ended with a close frame, QUIT or an unmasked frame: awaits a close frame with
    /// this code.
    Closing(u16),
    /// Got the awaited close frame; awaits the server's TCP close.
    EofWait,
}

impl Phase {
    fn in_flight(self) -> bool {
        matches!(
            self,
            Phase::Connecting | Phase::Handshake | Phase::Register | Phase::Join
        )
    }
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Clean,
    Quit,
    Abrupt,
    Reset,
    HalfFrame,
    ProtoError,
    HalfHandshake,
}

/// Each ending, its share of the connections in percent, and what it is.
const ENDS: [(End, u64, &str); 7] = [
    (End::Clean, 22, "close frame 1000, echo awaited"),
    (End::Quit, 22, "QUIT, close frame 1000 awaited"),
    (End::Abrupt, 14, "TCP FIN, no close frame"),
    (End::Reset, 8, "TCP RST (SO_LINGER 0)"),
    (End::HalfFrame, 14, "half-sent frame, then FIN"),
    (End::ProtoError, 10, "unmasked frame, close 1002 awaited"),
    (
        End::HalfHandshake,
        10,
        "half-sent upgrade request, then FIN",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Ramp,
    Churn,
    Drain,
}

/// One concurrent connection's place: it reconnects after each ending.
struct Slot {
    id: Option<Id>,
    phase: Phase,
    /// When the current phase times out.
    deadline: Instant,
    end: End,
    end_at: Option<Instant>,
    next_chat: Instant,
    next_ping: Instant,
    /// The payload of the WebSocket ping awaiting its pong, and when it went.
    ping_out: Option<(Vec<u8>, Instant)>,
    reconnect_at: Option<Instant>,
    nick: String,
    chan: usize,
    generation: u64,
    seq: u64,
    protocol: Option<&'static str>,
    rng: Rng,
}

/// Errors by kind, with the first few details of each.
#[derive(Default)]
struct Errors(BTreeMap<String, (u64, Vec<String>)>);

impl Errors {
    fn add(&mut self, kind: &str, detail: String) {
        let e = self.0.entry(kind.to_string()).or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(detail);
        }
    }
    fn total(&self) -> u64 {
        self.0.values().map(|v| v.0).sum()
    }
}

/// The workload: a [`Slot`] per concurrent connection living through [`Phase`]s; the
/// connections themselves are the test kit's [`Pool`]'s, whose events this handles.
struct Engine {
    slots: Vec<Slot>,
    stage: Stage,
    /// Operations by name (the report lists them all).
    counts: BTreeMap<String, u64>,
    errors: Errors,
    open: usize,
    active: usize,
    in_flight: usize,
    peak_open: usize,
    peak_active: usize,
    rng: Rng,
}

impl Engine {
    fn new(conns: usize) -> Engine {
        let now = Instant::now();
        let slots = (0..conns).map(|i| Slot {
            id: None,
            phase: Phase::Idle,
            deadline: now,
            end: End::Clean,
            end_at: None,
            next_chat: now,
            next_ping: now,
            ping_out: None,
            reconnect_at: Some(now),
            nick: String::new(),
            chan: i % (conns / PER_CHANNEL).max(1),
            generation: 0,
            seq: 0,
            protocol: None,
            rng: Rng::new(0x5eed ^ (i as u64).wrapping_mul(0x1000_0001)),
        });
        Engine {
            slots: slots.collect(),
            stage: Stage::Ramp,
            counts: BTreeMap::new(),
            errors: Errors::default(),
            open: 0,
            active: 0,
            in_flight: 0,
            peak_open: 0,
            peak_active: 0,
            rng: Rng::new(42),
        }
    }

    fn count(&mut self, what: &str) {
        *self.counts.entry(what.to_string()).or_default() += 1;
    }

    fn counted(&self, what: &str) -> u64 {
        self.counts.get(what).copied().unwrap_or(0)
    }

    /// Too many errors to go on: the run stops early and fails.
    fn aborted(&self) -> bool {
        self.errors.total() >= ERROR_BUDGET
    }

    fn at<'a>(&'a mut self, pool: &'a mut Pool, i: usize) -> At<'a> {
        At { e: self, pool, i }
    }

    /// Drives the pool and the timers until `on_second` (called once a second)
    /// returns true (then true) or the deadline passes (then false).
    fn run(
        &mut self,
        pool: &mut Pool,
        until: Instant,
        mut on_second: impl FnMut(&mut Engine) -> bool,
    ) -> bool {
        let (mut last_tick, mut last_second) = (Instant::now() - secs(1), Instant::now());
        while Instant::now() < until {
            if last_tick.elapsed() >= Duration::from_millis(50) {
                last_tick = Instant::now();
                for i in 0..self.slots.len() {
                    self.at(pool, i).tick(last_tick);
                }
            }
            if last_second.elapsed() >= secs(1) {
                last_second = Instant::now();
                if on_second(self) {
                    return true;
                }
            }
            if let Err(e) = pool.turn(self, Duration::from_millis(20)) {
                self.errors.add("epoll_wait failed", e.to_string());
                return false;
            }
        }
        false
    }

    /// Every active connection ends within `within`, and no new one starts (`drain`),
    /// or starts once it has ended (`!drain`, the churn).
    fn plan_ends(&mut self, stage: Stage, within: (Duration, Duration)) {
        self.stage = stage;
        let now = Instant::now();
        for s in &mut self.slots {
            if stage == Stage::Drain {
                s.reconnect_at = None;
            }
            if s.phase == Phase::Active {
                s.end_at = Some(now + s.rng.duration(within.0, within.1));
            }
        }
    }

    /// After a drain: ramp again.
    fn begin_ramp(&mut self) {
        self.stage = Stage::Ramp;
        let now = Instant::now();
        self.slots
            .iter_mut()
            .for_each(|s| s.reconnect_at = Some(now));
    }

    fn all_idle(&self) -> bool {
        self.open == 0 && self.slots.iter().all(|s| s.phase == Phase::Idle)
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
        // Events of a connection this slot no longer has are dropped.
        if self.slots[i].id == Some(id) {
            self.at(pool, i).on_event(event);
        }
    }
}

/// Slot `i` of the engine, with the pool, while one of its events or timers is handled.
struct At<'a> {
    e: &'a mut Engine,
    pool: &'a mut Pool,
    i: usize,
}

impl At<'_> {
    fn s(&mut self) -> &mut Slot {
        &mut self.e.slots[self.i]
    }

    fn set_phase(&mut self, p: Phase) {
        let old = self.s().phase;
        let e = &mut *self.e;
        e.in_flight = e.in_flight + usize::from(p.in_flight()) - usize::from(old.in_flight());
        e.active = e.active + usize::from(p == Phase::Active) - usize::from(old == Phase::Active);
        e.peak_active = e.peak_active.max(e.active);
        if old != p {
            (self.s().phase, self.s().deadline) = (p, Instant::now() + PHASE_TIMEOUT);
        }
    }

    /// An ending by [`ENDS`]' shares; a half-sent request only during the churn.
    fn pick_end(&mut self) -> End {
        let (mut r, mut end) = (self.e.rng.range(0, 99), End::Clean);
        for (e, share, _) in ENDS {
            if r < share {
                end = e;
                break;
            }
            r -= share;
        }
        let churn = self.e.stage == Stage::Churn;
        if end == End::HalfHandshake && !churn {
            End::Clean
        } else {
            end
        }
    }

    fn start(&mut self) {
        let (end, i) = (self.pick_end(), self.i);
        let s = &mut self.e.slots[i];
        let protocol = PROTOCOLS[s.rng.below(PROTOCOLS.len())];
        let mut request = server::request(None, protocol, &[]);
        if end == End::HalfHandshake {
            request.truncate(10 + s.rng.below(request.len() - 20));
        }
        let data_opcode = if protocol == PROTOCOLS[2] {
            OP_BINARY
        } else {
            OP_TEXT
        };
        match self.pool.connect(
            Proto::WebSocket {
                request,
                data_opcode,
            },
            i,
        ) {
            Ok(id) => s.id = Some(id),
            Err(e) => {
                s.reconnect_at = Some(Instant::now() + Duration::from_millis(500));
                return self
                    .e
                    .errors
                    .add("connect failed", format!("slot {i}: {e}"));
            }
        }
        (s.end, s.end_at, s.ping_out, s.reconnect_at) = (end, None, None, None);
        (s.generation, s.seq, s.protocol) = (s.generation + 1, 0, protocol);
        s.nick = format!("s{i}g{}", s.generation);
        self.e.count("TCP connects");
        self.e.open += 1;
        self.e.peak_open = self.e.peak_open.max(self.e.open);
        self.set_phase(Phase::Connecting);
    }

    /// Closes the connection (FIN, or RST with `reset`) if the pool still has it, and
    /// schedules the reconnect.
    fn finish(&mut self, reset: bool) {
        if let Some(id) = self.s().id.take() {
            if reset {
                self.pool.reset(id);
            } else {
                self.pool.close(id);
            }
            self.e.open -= 1;
        }
        self.set_phase(Phase::Idle);
        let stage = self.e.stage;
        let s = self.s();
        (s.ping_out, s.end_at) = (None, None);
        s.reconnect_at = match stage {
            Stage::Ramp => Some(Instant::now()),
            Stage::Churn => Some(Instant::now() + s.rng.duration(Duration::ZERO, secs(1))),
            Stage::Drain => None,
        };
    }

    /// The connection ended its planned way.
    fn ended(&mut self, reset: bool) {
        let end = self.s().end;
        let what = ENDS.iter().find(|e| e.0 == end).map_or("?", |e| e.2);
        self.e.count(&format!("ending: {what}"));
        self.finish(reset);
    }

    fn fail(&mut self, kind: &str, detail: impl std::fmt::Display) {
        let s = self.s();
        let protocol = s.protocol.unwrap_or("none");
        let who = format!("{} ({:?}, {:?}, {protocol})", s.nick, s.phase, s.end);
        self.e.errors.add(kind, format!("{who}: {detail}"));
        self.finish(false);
        // Back off after a failure instead of hammering a broken server.
        let s = self.s();
        if s.reconnect_at.is_some() {
            let back_off = s.rng.duration(Duration::from_millis(500), secs(2));
            s.reconnect_at = Some(Instant::now() + back_off);
        }
    }

    fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        if let Some(id) = self.s().id {
            self.pool.send_frame(id, first_byte(fin, opcode), payload);
        }
    }

    fn send_line(&mut self, line: &str) {
        if let Some(id) = self.s().id {
            self.pool.send_line(id, line.as_bytes());
        }
    }

    fn on_event(&mut self, event: Event<'_>) {
        match event {
            Event::Connected if self.s().end == End::HalfHandshake => {
                let s = self.s();
                s.end_at = Some(Instant::now() + s.rng.duration(Duration::ZERO, secs(2)));
                self.set_phase(Phase::HalfHandshake);
            }
            Event::Connected => self.set_phase(Phase::Handshake),
            Event::Open(r) => self.on_open(r.map_or("", |r| &r.status_line)),
            // The module never fragments what it sends.
            Event::Message(m) if m.frames > 1 => {
                let what = format!("opcode {} in {} frames", m.opcode, m.frames);
                self.fail("fragmented server message", what);
            }
            Event::Message(m) => self.on_line(&m.text()),
            Event::Line(l) => self.on_line(&String::from_utf8_lossy(l)),
            Event::Control(f) => self.on_control(f),
            Event::Closed(c) => self.on_closed(c),
        }
    }

    /// The connection ended without this client closing it (the pool has closed it).
    fn on_closed(&mut self, closed: Closed) {
        let phase = self.s().phase;
        self.s().id = None;
        self.e.open -= 1;
        let how = match closed.cause {
            Cause::Refused(r) if phase == Phase::HalfHandshake => {
                return self.fail("response to a half-sent upgrade request", r.status_line);
            }
            Cause::Refused(r) => {
                let why = r.check_101().and_then(|()| r.deflate().map(drop));
                return self.fail("handshake refused", format!("{why:?}: {}", r.status_line));
            }
            Cause::Protocol(e) => return self.fail("invalid server frame", e),
            Cause::Io(e) if phase == Phase::Connecting => return self.fail("connect failed", e),
            Cause::Io(e) => format!("read error {e}"),
            Cause::Eof => "EOF".to_string(),
        };
        let detail = format!("{how}; {} bytes buffered", closed.buffered);
        match phase {
            Phase::EofWait if closed.buffered > 0 => self.fail("EOF inside a frame", detail),
            Phase::EofWait => self.ended(false),
            Phase::Closing(_) => self.fail("TCP close without the expected close frame", detail),
            _ => self.fail("unexpected TCP close by the server", detail),
        }
    }

    /// The 101 arrived (checked by the pool).
    fn on_open(&mut self, status_line: &str) {
        if self.s().phase == Phase::HalfHandshake {
            return self.fail("response to a half-sent upgrade request", status_line);
        }
        self.e.count("upgrades (101)");
        let protocol = self.s().protocol.unwrap_or("none");
        self.e.count(&format!("subprotocol {protocol}"));
        self.set_phase(Phase::Register);
        let nick = self.s().nick.clone();
        self.send_line(&format!("NICK {nick}"));
        self.send_line("USER soak 0 * :soak client");
    }

    fn on_control(&mut self, f: &Frame) {
        let (code, reason) = (f.close_code(), f.close_reason());
        match (f.opcode, self.s().phase) {
            (OP_PING, _) => {
                self.e.count("server keepalive pings answered");
                self.send_frame(true, OP_PONG, &f.payload);
            }
            (OP_PONG, _) => match self.s().ping_out.take() {
                Some((p, _)) if p == f.payload => self.e.count("WebSocket pongs"),
                other => {
                    let awaited = other.map(|o| String::from_utf8_lossy(&o.0).into_owned());
                    self.fail(
                        "unexpected pong",
                        format!("{:?}, awaited {awaited:?}", f.text()),
                    );
                }
            },
            (_, Phase::Closing(want)) if code == Some(want) => self.set_phase(Phase::EofWait),
            (_, Phase::Closing(want)) => {
                self.fail(
                    "wrong close code",
                    format!("awaited {want}, got {code:?} {reason:?}"),
                );
            }
            _ => self.fail("unexpected close frame", format!("{code:?} {reason:?}")),
        }
    }

    fn on_line(&mut self, line: &str) {
        let id = self.s().id.expect("an event of a live connection");
        if self.pool.answer_ping(id, line.as_bytes()) {
            return self.e.count("IRC PINGs answered");
        }
        let (phase, end) = (self.s().phase, self.s().end);
        if line.starts_with("ERROR ") {
            if phase == Phase::Closing(1000) && end == End::Quit {
                return self.e.count("ERROR lines after QUIT");
            }
            // The server is closing us; the close frame that follows decides.
            let nick = self.s().nick.clone();
            return self
                .e
                .errors
                .add("ERROR line from the server", format!("{nick}: {line}"));
        }
        match command(line) {
            b"001" if phase == Phase::Register => {
                self.e.count("registered (001)");
                self.set_phase(Phase::Join);
                let chan = self.s().chan;
                self.send_line(&format!("JOIN #c{chan}"));
            }
            b"366" if phase == Phase::Join => {
                self.e.count("joined (366)");
                self.set_phase(Phase::Active);
                let (now, stage) = (Instant::now(), self.e.stage);
                let s = self.s();
                s.next_chat = now + s.rng.duration(Duration::ZERO, CHAT_EVERY.1);
                s.next_ping = now + s.rng.duration(Duration::ZERO, PING_EVERY.1);
                s.end_at = match stage {
                    Stage::Ramp => None,
                    Stage::Churn => Some(now + s.rng.duration(LIFE.0, LIFE.1)),
                    Stage::Drain => Some(now + s.rng.duration(Duration::ZERO, secs(2))),
                };
            }
            b"432" | b"433" | b"436" | b"437" | b"471" | b"473" | b"474" | b"475" | b"405"
            | b"451" | b"421" => {
                self.fail("IRC error numeric", line);
            }
            b"PRIVMSG" => match parse_privmsg(line).and_then(|(_, _, text)| check_chat(text)) {
                Some(_) => self.e.count("chat received"),
                None => self.fail(
                    "corrupt chat message",
                    line.chars().take(200).collect::<String>(),
                ),
            },
            _ => self.e.count("other lines"),
        }
    }

    fn do_end(&mut self) {
        let id = self.s().id.expect("an active connection");
        match self.s().end {
            End::Clean => {
                self.send_frame(true, OP_CLOSE, &close_payload(1000, "soak bye"));
                self.set_phase(Phase::Closing(1000));
            }
            End::Quit => {
                self.send_line("QUIT :soak bye");
                self.set_phase(Phase::Closing(1000));
            }
            End::Abrupt | End::HalfHandshake => self.ended(false),
            End::Reset => self.ended(true),
            End::HalfFrame => {
                let s = &mut self.e.slots[self.i];
                let line = format!(
                    "PRIVMSG #c{} :a frame never finished: the socket closes",
                    s.chan
                );
                let f = encode_frame(true, OP_TEXT, line.as_bytes(), Some(s.rng.mask()));
                self.pool.send_raw(id, &f[..1 + s.rng.below(f.len() - 2)]);
                self.ended(false);
            }
            End::ProtoError => {
                let unmasked = encode_frame(true, OP_TEXT, b"PRIVMSG #nowhere :unmasked", None);
                self.pool.send_raw(id, &unmasked);
                self.set_phase(Phase::Closing(1002));
            }
        }
    }

    /// A chat message to the slot's channel, a quarter of them in two fragments.
    fn send_chat(&mut self) {
        let s = self.s();
        s.seq += 1;
        let line = format!("PRIVMSG #c{} :{}", s.chan, chat_text(&s.nick, s.seq));
        let op = if s.protocol == PROTOCOLS[2] {
            OP_BINARY
        } else {
            OP_TEXT
        };
        if s.rng.below(4) == 0 {
            let (a, b) = line.as_bytes().split_at(line.len() / 2);
            self.send_frame(false, op, a);
            self.send_frame(true, OP_CONT, b);
            self.e.count("chat sent fragmented");
        } else {
            self.send_line(&line);
        }
        self.e.count("chat sent");
    }

    /// The slot's timers: reconnect, phase deadline, chat, ping, end.
    fn tick(&mut self, now: Instant) {
        let room = self.e.in_flight < INFLIGHT && self.e.stage != Stage::Drain;
        let s = &self.e.slots[self.i];
        let (phase, id, timed_out) = (s.phase, s.id, now > s.deadline);
        let reconnect = s.reconnect_at.is_some_and(|t| t <= now);
        let due = s.end_at.is_some_and(|t| t <= now);
        let late = s
            .ping_out
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) > PHASE_TIMEOUT);
        match phase {
            Phase::Idle if room && reconnect => self.start(),
            Phase::Idle | Phase::HalfHandshake | Phase::Active if !due && !late => {}
            // Nothing may have come back, not even part of an answer.
            Phase::HalfHandshake => match id.map_or(0, |id| self.pool.buffered(id)) {
                0 => self.ended(false),
                got => self.fail(
                    "response to a half-sent upgrade request",
                    format!("{got} bytes"),
                ),
            },
            Phase::Active if late => self.fail("timeout", "no pong to a WebSocket ping"),
            Phase::Active => return self.do_end(),
            _ if timed_out => {
                self.fail(
                    "timeout",
                    format!("no progress in {phase:?} within {PHASE_TIMEOUT:?}"),
                );
            }
            _ => {}
        }
        if self.s().phase != Phase::Active {
            return;
        }
        if self.s().next_chat <= now {
            self.send_chat();
            let s = self.s();
            s.next_chat = now + s.rng.duration(CHAT_EVERY.0, CHAT_EVERY.1);
        }
        let s = self.s();
        if s.next_ping <= now && s.ping_out.is_none() {
            s.seq += 1;
            let payload = format!("soak-ping {} {}", s.nick, s.seq).into_bytes();
            s.next_ping = now + s.rng.duration(PING_EVERY.0, PING_EVERY.1);
            s.ping_out = Some((payload.clone(), now));
            self.send_frame(true, OP_PING, &payload);
            self.e.count("WebSocket pings");
        }
    }
}

/// The server's own view, from a plain IRC oper polling LUSERS and STATS W.
#[derive(Default, Clone, Debug)]
struct Seen {
    local_users: Option<u64>,
    ws_open: Option<u64>,
    max_local_users: u64,
    max_ws_open: u64,
    polls: u64,
    error: Option<String>,
    stats_w: Vec<String>,
}

impl Seen {
    /// Only the monitor is left, and no WebSocket connection.
    fn clean(&self) -> bool {
        self.ws_open == Some(0) && self.local_users == Some(1)
    }
}

struct Monitor {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let (seen, stop) = (
            Arc::new(Mutex::new(Seen::default())),
            Arc::new(AtomicBool::new(false)),
        );
        let (shared, stopped) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            if let Err(e) = Monitor::poll(port, &shared, &stopped) {
                shared.lock().unwrap().error = Some(e.to_string());
            }
        });
        Monitor { seen, stop, thread }
    }

    fn poll(port: u16, seen: &Mutex<Seen>, stop: &AtomicBool) -> testkit::client::Result<()> {
        let mut c = server::irc(port, "monitor", secs(60))?;
        c.wait_welcome()?;
        c.oper()?;
        while !stop.load(Ordering::Relaxed) {
            c.send_line("LUSERS")?;
            let l = c.expect_str("265 (local users)", |l| command(l) == b"265")?;
            let stats_w = c.stats_w()?;
            let mut s = seen.lock().unwrap();
            s.local_users = number_after(&l, "Current local users:");
            s.ws_open = stats_w
                .iter()
                .find_map(|l| number_after(l, "WebSocket open connections:"));
            s.max_local_users = s.max_local_users.max(s.local_users.unwrap_or(0));
            s.max_ws_open = s.max_ws_open.max(s.ws_open.unwrap_or(0));
            (s.polls, s.stats_w) = (s.polls + 1, stats_w);
            drop(s);
            std::thread::sleep(Duration::from_millis(500));
        }
        c.send_line("QUIT :monitor done")
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits at most `limit` for a poll after this call that satisfies `pred`.
    fn wait(&self, limit: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let (after, deadline) = (self.seen().polls, Instant::now() + limit);
        while Instant::now() < deadline {
            let s = self.seen();
            if s.error.is_some() {
                return None;
            }
            if s.polls > after && pred(&s) {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.seen.lock().unwrap().clone()
    }
}

/// The server's sockets on `port` in CLOSE-WAIT (the client closed; the server has not
/// noticed yet), from `ss`.
fn close_wait_sockets(port: u16) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .args(["-tanH", "state", "close-wait"])
        .output();
    let out = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let local = format!("127.0.0.1:{port}");
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.get(2) == Some(&local.as_str()))
        .map(|cols| cols.join(" "))
        .collect()
}

/// A run: the server, its monitor, the workload and what failed so far.
struct Run {
    server: Server,
    monitor: Monitor,
    engine: Engine,
    pool: Pool,
    t0: Instant,
    max_rss: u64,
    server_dead: bool,
    failures: Vec<String>,
}

impl Run {
    /// Drives the workload for at most `limit` until `done` holds or the server dies;
    /// samples the server each second and reports every 10 s.
    fn drive(&mut self, label: &str, limit: Duration, done: impl Fn(&Engine) -> bool) -> bool {
        let mut last_report = Instant::now();
        let (server, monitor, t0) = (&mut self.server, &self.monitor, self.t0);
        let (max_rss, dead) = (&mut self.max_rss, &mut self.server_dead);
        self.engine.run(&mut self.pool, Instant::now() + limit, |e| {
            let (rss, fds) = (server.proc().rss_kib(), server.proc().fd_count());
            *max_rss = (*max_rss).max(rss);
            *dead |= !server.is_alive();
            if last_report.elapsed() >= secs(10) {
                last_report = Instant::now();
                let (m, t, rss, errors) = (monitor.seen(), t0.elapsed().as_secs(), mib(rss), e.errors.total());
                let (users, ws) = (m.local_users.unwrap_or(0), m.ws_open.unwrap_or(0));
                let (sent, received) = (e.counted("chat sent"), e.counted("chat received"));
                let (open, active, in_flight) = (e.open, e.active, e.in_flight);
                println!("  [{t:>4}s {label}] open {open} active {active} in flight {in_flight} | server: users {users} ws open {ws} RSS {rss} fds {fds} | chats {sent} sent {received} recv | errors {errors}");
            }
            *dead || done(e)
        })
    }

    /// Ramps to `n` connections (a failure if not all of them got there).
    fn ramp(&mut self, label: &str, n: usize) {
        if !self.drive(label, RAMP_TIMEOUT, |e| e.aborted() || e.active >= n) {
            let active = self.engine.active;
            self.failures.push(format!("{label}: only {active} of {n} connections registered and joined within {RAMP_TIMEOUT:?}"));
        }
    }

    /// Every client ends its planned way.
    fn drain(&mut self, label: &str, limit: Duration) {
        self.engine
            .plan_ends(Stage::Drain, (Duration::ZERO, secs(5)));
        if !self.drive(label, limit, Engine::all_idle) {
            let phases = self.engine.phase_histogram();
            self.failures.push(format!("{label} incomplete: {phases}"));
        }
    }

    /// A monitor wait that gives up quickly once the run is failing anyway.
    fn wait_monitor(&self, secs_if_healthy: u64, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let limit = if self.engine.aborted() {
            3
        } else {
            secs_if_healthy
        };
        self.monitor.wait(secs(limit), pred)
    }
}

pub fn run(s: &Settings) -> bool {
    let t0 = Instant::now();
    let result = soak(s, t0);
    let secs = t0.elapsed().as_secs_f64();
    match &result {
        Ok(()) => println!("SOAK PASS ({secs:.0} s)"),
        Err(e) => println!("FAIL: {e:#}\nSOAK FAIL ({secs:.0} s)"),
    }
    result.is_ok()
}

fn soak(s: &Settings, t0: Instant) -> anyhow::Result<()> {
    let n = s.conns as usize;
    let want = (n as u64 * 2 + 1024).max(65536);
    let nofile = server::raise_nofile(want);
    println!("soak: RLIMIT_NOFILE raised to {nofile} (wanted {want}; capped by the hard limit without CAP_SYS_RESOURCE); the server inherits it");
    ensure!(
        nofile >= n as u64 + 256,
        "RLIMIT_NOFILE {nofile} is too low for {n} connections; run as root or raise `ulimit -Hn`"
    );
    // InspIRCd 3 misses a FIN right behind a partial line: a keepalive and a registration
    // timeout bound how long such sockets stay (README).
    let mut conf = server::conf(s.common.module.clone(), REG_TIMEOUT_SECS)
        .websocket(&format!("pinginterval=\"{KEEPALIVE_SECS}s\""));
    if std::env::var_os("SOAK_DEBUG").is_some() {
        conf = conf.log("debug", false);
    }
    let server = server::start("soak", conf, Vec::new(), secs(30), s.common.keep)?;
    let (pid, port, module) = (server.pid, server.ws_port, s.common.module.display());
    let banner = server.output();
    let sockets = banner
        .lines()
        .find(|l| l.contains("max open sockets"))
        .unwrap_or_default();
    println!(
        "soak: server PID {pid} on ws://127.0.0.1:{port}/ ({}); module {module}",
        sockets.trim()
    );
    let (churn, channels) = (s.seconds, (n / PER_CHANNEL).max(1));
    println!("soak: {n} connections, churn {churn} s, {channels} channels, lifetime {LIFE:?}, chat every {CHAT_EVERY:?}, ping every {PING_EVERY:?}");
    let mut r = Run {
        monitor: Monitor::start(server.irc_port),
        engine: Engine::new(n),
        pool: Pool::new(port).context("epoll")?,
        t0,
        max_rss: 0,
        server_dead: false,
        failures: Vec::new(),
        server,
    };
    if r.monitor
        .wait(secs(30), |m| m.local_users.is_some())
        .is_none()
    {
        bail!(
            "the monitor could not register: {:?}",
            r.monitor.stop().error
        );
    }
    r.server.proc().settle(secs(1), secs(10));
    let proc = r.server.proc();
    let (rss_initial, fds_initial) = (proc.rss_kib(), proc.fd_count());
    r.max_rss = rss_initial;
    let (cpu0, own0) = (proc.cpu_seconds(), Proc::own().cpu_seconds());

    // Warm-up: ramp to N and release all, so that "start" is measured with the
    // allocator's arenas and InspIRCd's tables grown once (see README).
    let mut warm_up = String::new();
    if !s.no_warmup {
        println!("soak: warm-up: ramp to {n} and release");
        r.ramp("warm-up", n);
        let peak = mib(proc.rss_kib());
        r.drain("warm-up release", secs(120));
        r.engine.begin_ramp();
        warm_up = format!(
            "warm-up {:.1} s (RSS peak {peak}), ",
            t0.elapsed().as_secs_f64()
        );
    }
    r.wait_monitor(60, Seen::clean);
    r.server.proc().settle(secs(2), secs(20));
    let (rss_start, fds_start) = (proc.rss_kib(), proc.fd_count());
    let warm_connects = r.engine.counted("TCP connects");

    println!("soak: ramp to {n} concurrent WebSocket connections");
    let ramp0 = Instant::now();
    r.ramp("ramp", n);
    let ramp_secs = ramp0.elapsed().as_secs_f64();
    let rss_full = proc.rss_kib();
    match r.wait_monitor(30, |m| m.ws_open.unwrap_or(0) >= n as u64) {
        Some(m) => {
            let (active, ws, users) = (
                r.engine.active,
                m.ws_open.unwrap_or(0),
                m.local_users.unwrap_or(0),
            );
            println!("soak: {active} concurrent registered WebSocket clients after {ramp_secs:.1} s; the server counts {ws} open WebSocket connections, {users} local users; RSS {}", mib(rss_full));
        }
        None => r
            .failures
            .push("the server never reported N open WebSocket connections (STATS W)".into()),
    }

    if r.engine.aborted() {
        r.failures.push(format!(
            "stopped early after {} errors",
            r.engine.errors.total()
        ));
    } else if !r.server_dead {
        println!("soak: churn for {churn} s");
        // The first ends spread over the longest lifetime: the churn is steady at once.
        r.engine
            .plan_ends(Stage::Churn, (Duration::from_millis(500), LIFE.1));
        r.drive("churn", secs(churn), Engine::aborted);
    }
    let active_at_churn_end = r.engine.active;

    println!("soak: drain (every client leaves with its planned ending)");
    r.drain("drain", secs(if r.engine.aborted() { 30 } else { 180 }));
    let (drained_at, lingering) = (Instant::now(), close_wait_sockets(port).len());
    let healthy = !r.engine.aborted() && r.failures.is_empty();
    let reap_limit = if healthy {
        2 * KEEPALIVE_SECS + REG_TIMEOUT_SECS + 30
    } else {
        10
    };
    if r.monitor.wait(secs(reap_limit), Seen::clean).is_some() {
        let t = drained_at.elapsed().as_secs_f64();
        println!("soak: server clean {t:.1} s after the last client socket closed ({lingering} server sockets were in CLOSE-WAIT at that moment)");
    } else {
        let m = r.monitor.seen();
        r.failures.push(format!("{reap_limit} s after the last client socket was closed the server still counts {:?} WebSocket connections and {:?} local users (1 = the monitor)", m.ws_open, m.local_users));
        for l in close_wait_sockets(port) {
            println!("  still in CLOSE-WAIT: {l}");
        }
    }
    r.server.proc().settle(secs(2), secs(30));
    let (rss_end, fds_end) = (proc.rss_kib(), proc.fd_count());
    // VmHWM is updated lazily by the kernel; the sampled maximum can be a little higher.
    let hwm = mib(proc.hwm_kib().max(r.max_rss));
    let cpu_server = proc.cpu_seconds() - cpu0;
    let cpu_own = Proc::own().cpu_seconds() - own0;
    let m = r.monitor.stop();
    let alive_at_end = r.server.is_alive();
    let exit = r.server.stop(secs(20));
    let (crashed, exit) = (server::crashed(exit), server::describe_exit(exit));
    let alarming = server::alarming_output(&r.server);

    let e = &r.engine;
    let (peak_open, peak_active, errors) = (e.peak_open, e.peak_active, e.errors.total());
    let (ws_peak, users_peak, total) =
        (m.max_ws_open, m.max_local_users, t0.elapsed().as_secs_f64());
    println!("\n== soak report ==\nconnections: target {n} concurrent; peak open (client side) {peak_open}; peak registered+joined {peak_active}; server peak: {ws_peak} open WebSocket connections, {users_peak} local users");
    println!("time: {warm_up}ramp {ramp_secs:.1} s, churn {churn} s, total {total:.1} s; active at churn end: {active_at_churn_end}");
    println!("operations (warm-up included; {warm_connects} of the connects were the warm-up's):");
    for (what, count) in &e.counts {
        println!("  {count:>8}  {what}");
    }
    let [initial, start, full, end] = [rss_initial, rss_start, rss_full, rss_end].map(mib);
    println!("server: RSS initial {initial} | start {start} (after warm-up, no clients) | with {n} clients {full} | peak {hwm} (VmHWM / sampled max) | end {end}");
    println!("        fds initial {fds_initial} start {fds_start} end {fds_end}; CPU server {cpu_server:.1} s, soak client {cpu_own:.1} s");
    let (ws, users, stats_w) = (m.ws_open, m.local_users, m.stats_w.join(" | "));
    println!("        after the drain: {ws:?} open WebSocket connections, {users:?} local users (1 = the monitor); STATS W: {stats_w}");
    let measured = e.counted("TCP connects") - warm_connects;
    let growth = rss_end as f64 - rss_start as f64;
    let per_connection = growth * 1024.0 / measured.max(1) as f64;
    println!("        exit on SIGTERM: {exit}\n        growth end - start: {growth:+.1} KiB over {measured} connections after the warm-up = {per_connection:+.1} bytes per connection");
    println!("errors: {errors}");
    for (kind, (count, samples)) in &e.errors.0 {
        println!("  {count:>6}  {kind}");
        for d in samples {
            println!("            e.g. {d}");
        }
    }

    let allowed = rss_start as f64 * (1.0 + RSS_SLACK_PCT / 100.0) + RSS_SLACK_MIB * 1024.0;
    let allowed_mib = mib(allowed as u64);
    let checks = [
        (m.error.is_some(), format!("the plain IRC monitor lost its connection or timed out: {:?}", m.error)),
        (r.server_dead || !alive_at_end, format!("the server died during the run: {exit}")),
        (crashed, format!("the server crashed on SIGTERM: {exit}")),
        (!alarming.is_empty(), format!("alarming server output: {alarming:?}")),
        (peak_active < n || ws_peak < n as u64, format!("{n} concurrent connections not reached (client {peak_active}, server {ws_peak})")),
        (errors > 0, format!("{errors} errors")),
        (fds_end > fds_start, format!("the server holds {} more fds than at start", fds_end.saturating_sub(fds_start))),
        (rss_end as f64 > allowed, format!("RSS at end {end} exceeds start {start} + {RSS_SLACK_PCT}% + {RSS_SLACK_MIB} MiB = {allowed_mib}")),
        (e.counted("chat received") == 0 || e.counts.keys().filter(|k| k.starts_with("ending")).count() < 6, "the operation mix did not happen (no chat received or endings missing)".into()),
    ];
    let mut failures = r.failures.clone();
    failures.extend(checks.into_iter().filter(|c| c.0).map(|c| c.1));
    let factor = 1.0 + RSS_SLACK_PCT / 100.0;
    println!("\npass criteria: no crash and clean SIGTERM exit; {n} concurrent reached (client and server count); zero errors; after the drain 0 WebSocket connections and only the monitor left; fds end <= start; RSS end <= start x {factor:.2} + {RSS_SLACK_MIB} MiB = {allowed_mib}");
    if !failures.is_empty() {
        r.server.keep = true;
        bail!(
            "{}\nserver files: {} (kept)",
            failures.join("\nFAIL: "),
            r.server.dir().display()
        );
    }
    Ok(())
}
