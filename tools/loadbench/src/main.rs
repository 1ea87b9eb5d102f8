//! loadbench: one InspIRCd binary (Debian 12's InspIRCd 3, or with `INSPIRCD=4` Debian
//! 13's InspIRCd 4) with (A) this m_websocket.so, (B) that server's stock m_websocket.so
//! and m_sha1.so, (C) plain TCP clients only (and with `--before PATH` another build of
//! this module), alternated in every round, measuring the server's CPU time, wall time
//! and memory (or with `--callgrind` its instructions) in these phases: idle, connect,
//! fanout, fanout-deflate, both again with realistic chat (fanout-realistic,
//! fanout-deflate-realistic) and ingest; or with `--scale N,N,...` many users at once
//! ([`scale`]). tools/loadbench/README.md says what each phase does, how `--callgrind`
//! brackets a phase with `callgrind_control --dump` requests, and what the table's
//! ratios mean.
//!
//! Every loop is bounded by a count and a deadline; servers are stopped by their PID.
//! The clients are the test kit's pool ([`testkit::pool`]): one thread driving
//! non-blocking sockets, WebSocket or plain IRC.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod scale;

use clap::Parser;
use testkit::chat::Chatter;
use testkit::inspircd::{Conf, Install, Launcher, Stop, WsModule};
use testkit::irc::command;
use testkit::pool::{Cause, Event, Handler, Id, Pool, Proto};
use testkit::process::{raise_nofile, signal_then_kill};
use testkit::procfs::{clk_tck, Proc};
use testkit::stats::median;
use testkit::ws::{upgrade_request, BROWSER_DEFLATE_OFFER, OP_CLOSE};

// ---------------------------------------------------------------------------------
// Settings

/// The sizes of one server round's phases.
#[derive(Clone, Copy, Debug)]
struct Workload {
    /// Connections of the idle-memory phase; 0 skips that phase.
    idle_conns: usize,
    connect_total: usize,
    connect_concurrency: usize,
    fanout_receivers: usize,
    fanout_messages: usize,
    ingest_senders: usize,
    ingest_messages: usize,
}

/// The default: each phase costs the server roughly 0.5-2 s of CPU, long enough to
/// time with clock ticks.
const FULL_WORKLOAD: Workload = Workload {
    idle_conns: 2000,
    connect_total: 2000,
    connect_concurrency: 400,
    fanout_receivers: 200,
    fanout_messages: 5000,
    ingest_senders: 100,
    ingest_messages: 4000,
};

/// `--quick`: a smoke run.
const QUICK_WORKLOAD: Workload = Workload {
    idle_conns: 500,
    connect_total: 300,
    connect_concurrency: 100,
    fanout_receivers: 50,
    fanout_messages: 500,
    ingest_senders: 20,
    ingest_messages: 500,
};

/// `--callgrind`: valgrind runs the server ~50× slower, and instruction counts need
/// no long phase to average out noise, so each phase is a few seconds under valgrind.
/// No idle phase: RSS under valgrind is valgrind's.
const CALLGRIND_WORKLOAD: Workload = Workload {
    idle_conns: 0,
    connect_total: 200,
    connect_concurrency: 50,
    fanout_receivers: 50,
    fanout_messages: 300,
    ingest_senders: 20,
    ingest_messages: 500,
};

/// PRIVMSGs the fanout sender sends between PINGs.
const FANOUT_BATCH: usize = 20;
/// PRIVMSGs an ingest sender sends between PINGs (~4 KiB).
const INGEST_BATCH: usize = 40;
/// Length of every PRIVMSG line, CRLF included.
const LINE_LEN: usize = 100;
/// Connections a phase's setup (fanout, ingest) has opening and registering at once
/// (setup is not measured).
const SETUP_CONCURRENCY: usize = 250;
/// The same for the idle phase, whose users only register.
const IDLE_SETUP_CONCURRENCY: usize = 500;

const DEFAULT_ROUNDS: usize = 5;
const QUICK_ROUNDS: usize = 3;
/// Instruction counts repeat closely, so one round tells as much as five.
const CALLGRIND_ROUNDS: usize = 1;
const MAX_ROUNDS: u8 = 20;

/// How long inspircd may take to print "InspIRCd is now running".
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait for the server to go idle before (and, with --callgrind, after) a
/// measured phase.
const SETTLE_LIMIT: Duration = Duration::from_secs(3);
/// How long the server must use no CPU to count as idle between phases.
const SETTLE_QUIET: Duration = Duration::from_millis(150);
/// The deadline of one phase or one setup step.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// From SIGTERM to SIGKILL when stopping a server.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Under valgrind every timeout above is this many times longer: the server is ~50×
/// slower, its workload ~10-20× smaller, and callgrind writes a profile when it exits.
const VALGRIND_TIME_FACTOR: u32 = 10;

const VALGRIND: &str = "valgrind";
const CALLGRIND_CONTROL: &str = "callgrind_control";

/// The command line (`loadbench --help`); tools/loadbench/README.md says what each
/// phase measures.
#[derive(Parser, Debug)]
#[command(about = "This m_websocket.so against the stock one and plain TCP in one InspIRCd")]
struct Settings {
    /// The m_websocket.so under test, "ours".
    #[arg(long, default_value = "m_websocket.so", value_parser = existing)]
    module: PathBuf,
    /// Another build of it, measured as "before" in the same rounds.
    #[arg(long, value_parser = existing)]
    before: Option<PathBuf>,
    /// Rounds of every kind [default: 5; 3 with --quick, 1 with --callgrind].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_ROUNDS)))]
    rounds: Option<u8>,
    /// Small workloads: a smoke run.
    #[arg(long)]
    quick: bool,
    /// Count the server's instructions under valgrind instead of timing it (its own
    /// workload, whatever --quick says).
    #[arg(long, conflicts_with = "perf")]
    callgrind: bool,
    /// The server [default: /usr/sbin/inspircd; with INSPIRCD=4 in the environment,
    /// Debian 13's InspIRCd 4 from make INSPIRCD=4].
    #[arg(long)]
    inspircd: Option<PathBuf>,
    /// The stock modules [default: the server's].
    #[arg(long, value_name = "DIR")]
    stock_dir: Option<PathBuf>,
    /// Keep the servers' directories (configs, logs, callgrind dumps).
    #[arg(long)]
    keep: bool,
    /// Record every measured phase with perf record -g into DIR.
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
    /// Instead of the phases: N concurrent users per size, for each kind (RSS per user,
    /// CPU per registration, idle CPU, a checked fanout).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    scale: Vec<usize>,
    /// How long the users of --scale sit idle.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    scale_idle: u64,
    /// The server and its stock modules: `INSPIRCD` (3 or 4) chooses, `--inspircd` and
    /// `--stock-dir` override.
    #[arg(skip)]
    install: Install,
}

/// A file that exists, as an absolute path (the server runs elsewhere).
fn existing(path: &str) -> Result<PathBuf, String> {
    fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))
}

impl Settings {
    fn parse_checked() -> Result<Settings, String> {
        let mut s = Settings::parse();
        s.install = Install::from_env()?;
        if let Some(binary) = &s.inspircd {
            s.install.binary.clone_from(binary);
        }
        if let Some(dir) = &s.stock_dir {
            s.install.modules.clone_from(dir);
        }
        for p in [
            &s.install.binary,
            &s.install.stock_websocket(),
            &s.install.modules.join("m_sha1.so"),
        ] {
            if !p.exists() {
                return Err(format!("{} is missing", p.display()));
            }
        }
        Ok(s)
    }

    fn work(&self) -> Workload {
        if self.callgrind {
            CALLGRIND_WORKLOAD
        } else if self.quick {
            QUICK_WORKLOAD
        } else {
            FULL_WORKLOAD
        }
    }

    fn rounds(&self) -> usize {
        let default = if self.callgrind {
            CALLGRIND_ROUNDS
        } else if self.quick {
            QUICK_ROUNDS
        } else {
            DEFAULT_ROUNDS
        };
        self.rounds.map_or(default, usize::from)
    }

    /// The kinds of server each round runs, in order.
    fn kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .into_iter()
            .filter(|&k| k != Kind::Before || self.before.is_some())
            .collect()
    }

    /// A timeout, stretched when the server runs under valgrind.
    fn wait(&self, base: Duration) -> Duration {
        if self.callgrind {
            base * VALGRIND_TIME_FACTOR
        } else {
            base
        }
    }
}

// ---------------------------------------------------------------------------------
// The server under test

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Ours,
    Before,
    Stock,
    Plain,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Ours, Kind::Before, Kind::Stock, Kind::Plain];
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Before => "before",
            Kind::Stock => "stock",
            Kind::Plain => "plain",
        }
    }
    fn websocket(self) -> bool {
        self != Kind::Plain
    }
    /// Builds of this module, which compress when configured to.
    fn compresses(self) -> bool {
        matches!(self, Kind::Ours | Kind::Before)
    }
    /// The server's configuration for this kind: all kinds the same but for the
    /// websocket module (plain loads none). One class for everyone with the limits out
    /// of the way; a sparse log; netbuffersize 65536, which InspIRCd 3.15 takes as out
    /// of range and replaces with its default 10240.
    fn conf(self, s: &Settings) -> Conf {
        let conf = match (self, &s.before) {
            (Kind::Ours, _) => Conf::new(s.module.clone()),
            (Kind::Before, Some(before)) => Conf::new(before.clone()),
            (Kind::Plain, _) => Conf::plain(),
            _ => Conf::new(WsModule::Stock),
        };
        // Compression is used only by clients that offer it: those of fanout-deflate.
        let conf = if self.compresses() {
            conf.websocket(r#"compression="yes""#)
        } else {
            conf
        };
        conf.server("bench.local", "loadbench", "Bench")
            .origins(&["*"])
            .log("sparse", false)
            .connect_attrs(
                r#"softsendq="1M" hardsendq="256M" localmax="100000" globalmax="100000" limit="100000""#,
            )
            .performance(r#"netbuffersize="65536" somaxconn="1024""#)
    }
}

/// A server of the test kit and the port this kind's clients use (the WebSocket port,
/// or the plain IRC one for `plain`).
struct Server {
    server: testkit::inspircd::Server,
    port: u16,
}

/// Where callgrind writes (its dumps add `.1`, `.2`, ...), in the server's directory.
const CALLGRIND_OUT: &str = "callgrind.out";
/// vgdb's FIFOs live in the server's directory, so that they go with it.
const VGDB_PREFIX: &str = "vgdb";

impl Server {
    fn start(kind: Kind, s: &Settings, tag: &str) -> Result<Server, String> {
        Server::start_with(kind, s, tag, kind.conf(s))
    }

    /// [`Server::start`] with a configuration of the caller's.
    fn start_with(kind: Kind, s: &Settings, tag: &str, conf: Conf) -> Result<Server, String> {
        let mut launcher = Launcher::new(s.install.clone())
            .prefix(&format!("loadbench-{tag}-"))
            .startup(s.wait(START_TIMEOUT))
            .stop(Stop::Term(s.wait(STOP_GRACE)))
            .keep(s.keep);
        if s.callgrind {
            // valgrind execs the tool in place: the PID we get is the server's. vgdb is
            // how callgrind_control reaches the server; per-instruction and per-line
            // costs are not needed, and leaving them out keeps the dumps small and
            // quick. Uncompressed names make each dump readable on its own by
            // callgrind_annotate (with --keep).
            launcher = launcher.wrapper([
                VALGRIND.to_string(),
                "--tool=callgrind".into(),
                format!("--callgrind-out-file={{dir}}/{CALLGRIND_OUT}"),
                format!("--vgdb-prefix={{dir}}/{VGDB_PREFIX}"),
                "--vgdb=yes".into(),
                "--dump-instr=no".into(),
                "--dump-line=no".into(),
                "--compress-strings=no".into(),
            ]);
        }
        // Under valgrind its "==PID==" banner comes first; "now running" is the same.
        let server = launcher
            .start(conf)
            .map_err(|e| format!("{} server: {e}", kind.name()))?;
        let port = if kind.websocket() {
            server.ws_port
        } else {
            server.irc_port
        };
        Ok(Server { server, port })
    }

    fn proc(&self) -> Proc {
        self.server.proc()
    }

    /// Waits (at most `limit`) until the server has used no CPU for [`SETTLE_QUIET`].
    /// Under valgrind that includes valgrind's own work (translating code), which also
    /// stops when the server idles in epoll_wait.
    fn settle(&self, limit: Duration) {
        self.proc().settle(SETTLE_QUIET, limit);
    }

    /// Asks callgrind to dump its counters (which zeroes them) and returns the Ir of
    /// that dump: the instructions the server executed since the previous dump.
    fn callgrind_dump(&self, tag: &str) -> Result<u64, String> {
        let out = Command::new(CALLGRIND_CONTROL)
            .arg(format!(
                "--vgdb-prefix={}",
                self.server.dir().join(VGDB_PREFIX).display()
            ))
            .arg(format!("--dump={tag}"))
            .arg(self.server.pid.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{CALLGRIND_CONTROL}: {e}"))?;
        // callgrind_control exits 0 whether or not it reached the process, so look for
        // the dump itself; it is written before vgdb gets its answer, the short wait
        // is only a safety margin.
        let trigger = format!("desc: Trigger: dump {tag}");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(ir) = self.find_callgrind_dump(&trigger)? {
                return Ok(ir);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{CALLGRIND_CONTROL} --dump={tag} {} wrote no dump: {}{}",
                    self.server.pid,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The Ir of the dump file in the server's directory whose header has `trigger`.
    fn find_callgrind_dump(&self, trigger: &str) -> Result<Option<u64>, String> {
        let dir = self.server.dir();
        let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name();
            let is_dump = name
                .to_str()
                .and_then(|n| n.strip_prefix(CALLGRIND_OUT))
                .is_some_and(|n| n.starts_with('.'));
            if !is_dump {
                continue;
            }
            let Ok(text) = fs::read_to_string(e.path()) else {
                continue;
            };
            if text.lines().any(|l| l == trigger) {
                return callgrind_ir(&text)
                    .map(Some)
                    .ok_or(format!("{}: no Ir in its summary", e.path().display()));
            }
        }
        Ok(None)
    }

    fn alive(&mut self) -> bool {
        self.server.is_alive()
    }
}

/// The Ir of a callgrind dump: its `events:` line names the columns of its `summary:`
/// line (or of `totals:`, which older formats have instead).
fn callgrind_ir(dump: &str) -> Option<u64> {
    let field = |key: &str| dump.lines().find_map(|l| l.strip_prefix(key));
    let column = field("events:")?
        .split_whitespace()
        .position(|e| e == "Ir")?;
    let values = field("summary:").or_else(|| field("totals:"))?;
    values.split_whitespace().nth(column)?.parse().ok()
}

// ---------------------------------------------------------------------------------
// Clients: the test kit's pool (non-blocking sockets on one epoll, WebSocket or plain)

/// How clients connect: to the server's port, as WebSocket clients (then offering
/// permessage-deflate when `deflate`) or plain IRC ones.
#[derive(Clone, Copy)]
struct Dial {
    port: u16,
    ws: bool,
    deflate: bool,
}

impl Dial {
    fn proto(&self) -> Proto {
        if !self.ws {
            return Proto::Irc;
        }
        let host = format!("127.0.0.1:{}", self.port);
        let offer: &[&str] = if self.deflate {
            &[BROWSER_DEFLATE_OFFER]
        } else {
            &[]
        };
        Proto::websocket(upgrade_request(&host, "http://bench.local", offer))
    }

    /// Opens connection number `n` (its tag).
    fn open(&self, pool: &mut Pool, n: usize) -> Result<Id, String> {
        pool.connect(self.proto(), n)
            .map_err(|e| format!("connect: {e}"))
    }
}

/// What a phase does with its connections' events.
trait Scenario {
    /// The connection is ready for IRC (plain: connected; WebSocket: upgraded).
    fn on_open(&mut self, pool: &mut Pool, id: Id, n: usize);
    /// A line from the server (its PINGs are answered before).
    fn on_line(&mut self, pool: &mut Pool, id: Id, n: usize, line: &[u8]);
    /// The server ended the connection.
    fn on_close(&mut self, _pool: &mut Pool, _id: Id, _n: usize) {}
    fn done(&self) -> bool;
}

/// A phase: what every scenario does with an event before its own logic. The server's
/// PINGs are answered; a close frame closes the connection (the server is closing
/// it); a refused handshake or a protocol error is reported. Such ends, and the
/// server's own, count as lost.
struct Phase<S> {
    scenario: S,
    /// Connections whose 101 agreed to permessage-deflate.
    negotiated: usize,
    lost: usize,
}

impl<S: Scenario> Phase<S> {
    fn new(scenario: S) -> Phase<S> {
        Phase {
            scenario,
            negotiated: 0,
            lost: 0,
        }
    }

    /// Runs the pool until the scenario is done or the deadline passes.
    fn run(&mut self, pool: &mut Pool, deadline: Instant) -> Result<(), String> {
        pool.run(self, deadline, |p| p.scenario.done())
            .map_err(|e| format!("phase deadline passed ({e})"))
    }

    /// An error naming the phase if any connection was lost.
    fn check_none_lost(&self, name: &str) -> Result<(), String> {
        match self.lost {
            0 => Ok(()),
            lost => Err(format!("{name}: {lost} connections lost")),
        }
    }

    fn lose(&mut self, pool: &mut Pool, id: Id, n: usize) {
        self.lost += 1;
        self.scenario.on_close(pool, id, n);
    }
}

impl<S: Scenario> Handler for Phase<S> {
    fn on_event(&mut self, pool: &mut Pool, id: Id, n: usize, event: Event<'_>) {
        match event {
            Event::Connected => {}
            Event::Open(_) => {
                if pool.deflate(id) {
                    self.negotiated += 1;
                }
                self.scenario.on_open(pool, id, n);
            }
            Event::Line(line) => {
                if !pool.answer_ping(id, line) {
                    self.scenario.on_line(pool, id, n, line);
                }
            }
            Event::Message(m) => {
                if !pool.answer_ping(id, &m.payload) {
                    self.scenario.on_line(pool, id, n, &m.payload);
                }
            }
            // WebSocket pings and pongs: none expected in a short run.
            Event::Control(f) if f.opcode != OP_CLOSE => {}
            Event::Control(_) => {
                pool.close(id);
                self.lose(pool, id, n);
            }
            Event::Closed(c) => {
                if !matches!(c.cause, Cause::Eof) {
                    eprintln!("connection {n}: {}", c.cause);
                }
                self.lose(pool, id, n);
            }
        }
    }
}

fn register(pool: &mut Pool, id: Id, nick: &str) {
    pool.send_line(id, format!("NICK {nick}").as_bytes());
    pool.send_line(id, format!("USER u{nick} 0 * :loadbench").as_bytes());
}

/// A PRIVMSG of exactly [`LINE_LEN`] bytes with its CRLF.
fn message(target: &str, seq: usize) -> Vec<u8> {
    let mut m = format!("PRIVMSG {target} :{seq} ").into_bytes();
    let filler = b"lorem ipsum dolor sit amet consectetur adipiscing elit ";
    let fill = LINE_LEN.saturating_sub(m.len() + 2);
    m.extend(filler.iter().cycle().take(fill));
    m
}

// ---------------------------------------------------------------------------------
// Scenarios

/// Opens `total` connections, at most `concurrency` of them not yet settled (a count
/// the scenario keeps) at a time.
struct Opener {
    dial: Dial,
    total: usize,
    concurrency: usize,
    started: usize,
}

impl Opener {
    fn new(dial: Dial, total: usize, concurrency: usize) -> Opener {
        Opener {
            dial,
            total,
            concurrency,
            started: 0,
        }
    }

    /// Opens more while fewer than `concurrency` of those started are unsettled;
    /// `opened(id, n)` for the n-th connection (from 0, its tag).
    fn open_more(
        &mut self,
        pool: &mut Pool,
        settled: usize,
        mut opened: impl FnMut(Id, usize),
    ) -> Result<(), String> {
        while self.started < self.total && self.started - settled < self.concurrency {
            let id = self.dial.open(pool, self.started)?;
            opened(id, self.started);
            self.started += 1;
        }
        Ok(())
    }
}

/// Opens `total` connections, `concurrency` at a time, and registers each (001) and,
/// if `channel` gives one, joins it (366). The connections stay open; `ids[n]` is the
/// n-th.
struct OpenAndRegister {
    prefix: String,
    total: usize,
    open: Opener,
    ready: usize,
    channel: Option<fn(usize) -> String>,
    ids: Vec<Id>,
    failed: Option<String>,
}

impl OpenAndRegister {
    fn new(
        dial: Dial,
        prefix: &str,
        total: usize,
        concurrency: usize,
        channel: Option<fn(usize) -> String>,
    ) -> Self {
        OpenAndRegister {
            prefix: prefix.into(),
            total,
            open: Opener::new(dial, total, concurrency),
            ready: 0,
            channel,
            ids: Vec::with_capacity(total),
            failed: None,
        }
    }

    fn start_more(&mut self, pool: &mut Pool) {
        let ids = &mut self.ids;
        if let Err(e) = self.open.open_more(pool, self.ready, |id, _| ids.push(id)) {
            self.failed = Some(e);
        }
    }

    /// Opens, registers (and joins) them all; the setup of a phase.
    fn setup(mut self, pool: &mut Pool, deadline: Instant) -> Result<(Vec<Id>, usize), String> {
        self.start_more(pool);
        let mut phase = Phase::new(self);
        phase.run(pool, deadline)?;
        if let Some(f) = &phase.scenario.failed {
            return Err(f.clone());
        }
        Ok((phase.scenario.ids, phase.negotiated))
    }
}

impl Scenario for OpenAndRegister {
    fn on_open(&mut self, pool: &mut Pool, id: Id, n: usize) {
        register(pool, id, &format!("{}{n}", self.prefix));
    }
    fn on_line(&mut self, pool: &mut Pool, id: Id, n: usize, line: &[u8]) {
        let cmd = command(line);
        if cmd == b"001" {
            match self.channel {
                Some(ch) => pool.send_line(id, format!("JOIN {}", ch(n)).as_bytes()),
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
    fn on_close(&mut self, _pool: &mut Pool, _id: Id, _n: usize) {
        self.failed = Some("a connection closed while registering".into());
    }
    fn done(&self) -> bool {
        self.ready >= self.total || self.failed.is_some()
    }
}

/// K × (connect, handshake, register, QUIT, server closes), C at a time.
struct ConnectQuit {
    total: usize,
    open: Opener,
    finished: usize,
    round: usize,
    failed: Option<String>,
}

impl ConnectQuit {
    fn start_more(&mut self, pool: &mut Pool) {
        if let Err(e) = self.open.open_more(pool, self.finished, |_, _| {}) {
            self.failed = Some(e);
        }
    }
}

impl Scenario for ConnectQuit {
    fn on_open(&mut self, pool: &mut Pool, id: Id, n: usize) {
        register(pool, id, &format!("k{}x{n}", self.round));
    }
    fn on_line(&mut self, pool: &mut Pool, id: Id, _n: usize, line: &[u8]) {
        if command(line) == b"001" {
            pool.send_line(id, b"QUIT :bye");
        }
    }
    fn on_close(&mut self, pool: &mut Pool, _id: Id, _n: usize) {
        self.finished += 1;
        self.start_more(pool);
    }
    fn done(&self) -> bool {
        self.finished >= self.total || self.failed.is_some()
    }
}

/// The `sender` sends `messages` PRIVMSGs to #fan in batches (PING/PONG between);
/// the others count what they receive.
struct Fanout {
    sender: Id,
    messages: usize,
    /// Realistic chat text (`testkit::chat`) instead of lines that differ only in
    /// their sequence number.
    chat: Option<Chatter>,
    sent: usize,
    received: Vec<usize>,
    complete: usize,
    receivers: usize,
}

impl Fanout {
    fn send_batch(&mut self, pool: &mut Pool) {
        let end = (self.sent + FANOUT_BATCH).min(self.messages);
        while self.sent < end {
            let line = match self.chat.as_mut() {
                Some(chat) => format!("PRIVMSG #fan :{}", chat.next_text()).into_bytes(),
                None => message("#fan", self.sent),
            };
            pool.send_line(self.sender, &line);
            self.sent += 1;
        }
        if self.sent < self.messages {
            pool.send_line(self.sender, b"PING :batch");
        }
    }
}

impl Scenario for Fanout {
    fn on_open(&mut self, _pool: &mut Pool, _id: Id, _n: usize) {}
    fn on_line(&mut self, pool: &mut Pool, id: Id, n: usize, line: &[u8]) {
        let cmd = command(line);
        if id == self.sender {
            if cmd == b"PONG" {
                self.send_batch(pool);
            }
        } else if cmd == b"PRIVMSG" {
            if let Some(r) = self.received.get_mut(n) {
                *r += 1;
                if *r == self.messages {
                    self.complete += 1;
                }
            }
        }
    }
    fn done(&self) -> bool {
        self.complete >= self.receivers
    }
}

/// Every sender sends `messages` PRIVMSGs into its own channel, [`INGEST_BATCH`] lines
/// at a time, each batch followed by a PING; the next batch goes when the PONG is back.
struct Ingest {
    senders: Vec<Id>,
    messages: usize,
    sent: Vec<usize>,
    finished: usize,
}

impl Ingest {
    fn send_batch(&mut self, pool: &mut Pool, n: usize) {
        let (Some(&id), Some(sent)) = (self.senders.get(n), self.sent.get_mut(n)) else {
            return;
        };
        let target = format!("#in{n}");
        let end = (*sent + INGEST_BATCH).min(self.messages);
        while *sent < end {
            pool.send_line(id, &message(&target, *sent));
            *sent += 1;
        }
        pool.send_line(id, b"PING :batch");
    }
}

impl Scenario for Ingest {
    fn on_open(&mut self, _pool: &mut Pool, _id: Id, _n: usize) {}
    fn on_line(&mut self, pool: &mut Pool, _id: Id, n: usize, line: &[u8]) {
        if command(line) == b"PONG" {
            if self.sent.get(n).is_some_and(|&s| s >= self.messages) {
                self.finished += 1;
            } else {
                self.send_batch(pool, n);
            }
        }
    }
    fn done(&self) -> bool {
        self.finished >= self.senders.len()
    }
}
// ---------------------------------------------------------------------------------
// Measurement

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    cpu: f64,
    /// The user-time part of `cpu`.
    user_cpu: f64,
    wall: f64,
    hwm_mib: f64,
    /// write-family system calls the server made (/proc/PID/io syscw; its syscr does
    /// not count recv()).
    syscw: f64,
    /// With --callgrind: the instructions the server executed in the phase.
    ir: f64,
    /// Bytes the clients received in the phase (fanout phases only).
    rx_bytes: f64,
}

/// Measures the server while `f` runs one phase. `name` (kind-phase-round) names the
/// phase's perf profile and its callgrind dumps.
fn measure(
    server: &Server,
    s: &Settings,
    name: &str,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<Sample, String> {
    server.settle(s.wait(SETTLE_LIMIT));
    server.proc().reset_hwm();
    if s.callgrind {
        // Zeroes the counters; what it counted (startup, setup) is not wanted.
        server.callgrind_dump(&format!("{name}-start"))?;
    }
    let mut recorder = match &s.perf {
        Some(dir) => {
            let _ = fs::create_dir_all(dir);
            let child = Command::new("perf")
                .args([
                    "record",
                    "-g",
                    "-q",
                    "-p",
                    &server.server.pid.to_string(),
                    "-o",
                ])
                .arg(dir.join(format!("{name}.data")))
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
    let (user0, system0) = server.proc().user_system_seconds();
    let w0 = server.proc().syscalls().1;
    let t0 = Instant::now();
    let result = f();
    let wall = t0.elapsed().as_secs_f64();
    let (user1, system1) = server.proc().user_system_seconds();
    let user_cpu = user1 - user0;
    let cpu = user_cpu + system1 - system0;
    let w1 = server.proc().syscalls().1;
    if let Some(mut child) = recorder.take() {
        // perf writes its file on SIGINT.
        signal_then_kill(&mut child, libc::SIGINT, Duration::from_secs(20));
    }
    result?;
    let ir = if s.callgrind {
        // Once the server is idle again, so that work it finishes after the client
        // is done (closing, culling users) counts here whatever the timing.
        server.settle(s.wait(SETTLE_LIMIT));
        server.callgrind_dump(&format!("{name}-end"))? as f64
    } else {
        f64::NAN
    };
    Ok(Sample {
        cpu,
        user_cpu,
        wall,
        hwm_mib: server.proc().hwm_kib() as f64 / 1024.0,
        syscw: w1.saturating_sub(w0) as f64,
        ir,
        rx_bytes: f64::NAN,
    })
}

/// A sample of NaNs: a phase a kind does not run.
const NOT_RUN: Sample = Sample {
    cpu: f64::NAN,
    user_cpu: f64::NAN,
    wall: f64::NAN,
    hwm_mib: f64::NAN,
    syscw: f64::NAN,
    ir: f64::NAN,
    rx_bytes: f64::NAN,
};

/// What a measured phase runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Handshake + registration + QUIT, C at a time.
    Connect,
    /// 1 sender + R receivers in #fan, all offering permessage-deflate when `deflate`
    /// (this module's builds only: the others do not run it), the lines realistic chat
    /// (`testkit::chat`) when `realistic`, or else lines that differ only in a number.
    Fanout { deflate: bool, realistic: bool },
    /// R senders, N messages each into a channel of their own.
    Ingest,
}

/// The measured phases, in the order they run and print.
const PHASES: [(&str, Work); 6] = [
    ("connect", Work::Connect),
    ("fanout", fanout_of(false, false)),
    ("fanout-deflate", fanout_of(true, false)),
    ("fanout-realistic", fanout_of(false, true)),
    ("fanout-deflate-realistic", fanout_of(true, true)),
    ("ingest", Work::Ingest),
];

const fn fanout_of(deflate: bool, realistic: bool) -> Work {
    Work::Fanout { deflate, realistic }
}

impl Work {
    /// What the phase does `units` of, for the per-unit rows: connections, deliveries
    /// or ingested messages.
    fn units(self, w: &Workload) -> (&'static str, usize) {
        match self {
            Work::Connect => ("connection", w.connect_total),
            Work::Fanout { .. } => ("delivery", w.fanout_receivers * w.fanout_messages),
            Work::Ingest => ("message", w.ingest_senders * w.ingest_messages),
        }
    }
}

#[derive(Default, Debug)]
struct RoundResult {
    idle_kib_per_conn: f64,
    idle_base_mib: f64,
    /// One per [`PHASES`] entry, in that order; [`NOT_RUN`] for a phase the kind does
    /// not run.
    phases: Vec<Sample>,
}

impl RoundResult {
    /// The sample of the phase named `name`.
    fn phase(&self, name: &str) -> Sample {
        let index = PHASES.iter().position(|(n, _)| *n == name);
        index
            .and_then(|i| self.phases.get(i))
            .copied()
            .unwrap_or(NOT_RUN)
    }
}

fn run_server_round(kind: Kind, s: &Settings, round: usize) -> Result<RoundResult, String> {
    let mut server = Server::start(kind, s, &format!("{}-{round}", kind.name()))?;
    let dial = Dial {
        port: server.port,
        ws: kind.websocket(),
        deflate: false,
    };
    let w = &s.work();
    let deadline = || Instant::now() + s.wait(PHASE_TIMEOUT);
    let new_pool = || Pool::new(server.port).map_err(|e| e.to_string());
    let mut r = RoundResult::default();

    // idle: RSS growth per registered idle connection, on a fresh server.
    if w.idle_conns > 0 {
        server.settle(s.wait(SETTLE_LIMIT));
        let rss0 = server.proc().rss_kib();
        r.idle_base_mib = rss0 as f64 / 1024.0;
        let mut pool = new_pool()?;
        OpenAndRegister::new(
            dial,
            &format!("i{round}x"),
            w.idle_conns,
            IDLE_SETUP_CONCURRENCY,
            None,
        )
        .setup(&mut pool, deadline())
        .map_err(|e| format!("idle: {e}"))?;
        server.settle(s.wait(SETTLE_LIMIT));
        let rss1 = server.proc().rss_kib();
        r.idle_kib_per_conn = (rss1 as f64 - rss0 as f64) / w.idle_conns as f64;
        pool.close_all();
    }

    for (phase, work) in PHASES {
        let name = format!("{}-{phase}-r{}", kind.name(), round + 1);
        let mut pool = new_pool()?;
        let sample = match work {
            Work::Connect => {
                let mut phase = Phase::new(ConnectQuit {
                    total: w.connect_total,
                    open: Opener::new(dial, w.connect_total, w.connect_concurrency),
                    finished: 0,
                    round,
                    failed: None,
                });
                measure(&server, s, &name, || {
                    phase.scenario.start_more(&mut pool);
                    phase.run(&mut pool, deadline())?;
                    phase.scenario.failed.clone().map_or(Ok(()), Err)
                })?
            }
            Work::Fanout { deflate, .. } if deflate && !kind.compresses() => NOT_RUN,
            Work::Fanout { deflate, realistic } => {
                let dial = Dial { deflate, ..dial };
                let prefix = format!("f{}{}{round}x", u8::from(deflate), u8::from(realistic));
                fanout(&server, s, &mut pool, dial, &name, &prefix, realistic)?
            }
            Work::Ingest => ingest(&server, s, &mut pool, dial, &name, round)?,
        };
        r.phases.push(sample);
        pool.close_all();
    }

    if !server.alive() {
        return Err("the server died".into());
    }
    Ok(r)
}

/// The fanout phase ([`Work::Fanout`]): every client offering permessage-deflate when
/// the dial says so (and then every one must have agreed); the lines are realistic
/// chat when `realistic`. Nicks start with `prefix`.
fn fanout(
    server: &Server,
    s: &Settings,
    pool: &mut Pool,
    dial: Dial,
    name: &str,
    prefix: &str,
    realistic: bool,
) -> Result<Sample, String> {
    let w = &s.work();
    let deadline = || Instant::now() + s.wait(PHASE_TIMEOUT);
    let setup = OpenAndRegister::new(
        dial,
        prefix,
        w.fanout_receivers + 1,
        SETUP_CONCURRENCY,
        Some(|_| "#fan".to_string()),
    );
    let (ids, negotiated) = setup
        .setup(pool, deadline())
        .map_err(|e| format!("{name} setup: {e}"))?;
    if dial.deflate && negotiated != w.fanout_receivers + 1 {
        return Err(format!(
            "{name}: {negotiated} of {} connections negotiated permessage-deflate",
            w.fanout_receivers + 1
        ));
    }
    // The sender is the first connection opened.
    let sender = *ids.first().ok_or("no connections")?;
    let mut phase = Phase::new(Fanout {
        sender,
        messages: w.fanout_messages,
        chat: realistic.then(Chatter::default),
        sent: 0,
        received: vec![0; ids.len()],
        complete: 0,
        receivers: w.fanout_receivers,
    });
    let mut rx_bytes = 0;
    let mut sample = measure(server, s, name, || {
        let before = pool.rx_bytes;
        phase.scenario.send_batch(pool);
        phase.run(pool, deadline())?;
        rx_bytes = pool.rx_bytes - before;
        phase.check_none_lost(name)
    })?;
    sample.rx_bytes = rx_bytes as f64;
    Ok(sample)
}

/// The ingest phase ([`Work::Ingest`]): the senders join `#in<n>` each, then send.
fn ingest(
    server: &Server,
    s: &Settings,
    pool: &mut Pool,
    dial: Dial,
    name: &str,
    round: usize,
) -> Result<Sample, String> {
    let w = &s.work();
    let deadline = || Instant::now() + s.wait(PHASE_TIMEOUT);
    let setup = OpenAndRegister::new(
        dial,
        &format!("g{round}x"),
        w.ingest_senders,
        SETUP_CONCURRENCY,
        Some(|n| format!("#in{n}")),
    );
    let (senders, _) = setup
        .setup(pool, deadline())
        .map_err(|e| format!("ingest setup: {e}"))?;
    let mut phase = Phase::new(Ingest {
        sent: vec![0; senders.len()],
        senders,
        messages: w.ingest_messages,
        finished: 0,
    });
    measure(server, s, name, || {
        for n in 0..w.ingest_senders {
            phase.scenario.send_batch(pool, n);
        }
        phase.run(pool, deadline())?;
        phase.check_none_lost(name)
    })
}

/// Instructions per million, as the tables print them.
const MEGA: f64 = 1e6;

/// `v` with `decimals` decimals, or "-" for a phase not run.
fn or_dash(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.decimals$}")
    }
}

/// One server round's progress line: every phase's instructions, or its server CPU
/// and wall time.
fn round_line(s: &Settings, r: &RoundResult) -> String {
    let phases = PHASES.iter().zip(&r.phases).map(|((name, _), x)| {
        if s.callgrind {
            format!("{name} {} MIr", or_dash(x.ir / MEGA, 3))
        } else {
            format!(
                "{name} cpu {}s wall {}s",
                or_dash(x.cpu, 2),
                or_dash(x.wall, 2)
            )
        }
    });
    let idle = (!s.callgrind).then(|| format!("idle {:.1} KiB/conn", r.idle_kib_per_conn));
    idle.into_iter()
        .chain(phases)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn main() {
    let s = match Settings::parse_checked() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadbench: {e}");
            std::process::exit(2);
        }
    };
    if !s.scale.is_empty() {
        match scale::run(&s, &s.scale, Duration::from_secs(s.scale_idle)) {
            Ok(report) => {
                println!("{report}");
                return;
            }
            Err(e) => {
                eprintln!("loadbench --scale: {e}");
                std::process::exit(1);
            }
        }
    }
    let w = s.work();
    let want = (w.idle_conns + w.fanout_receivers + 1000) as u64;
    if raise_nofile(want) < want {
        eprintln!("loadbench: could not raise the open-file limit to {want}");
    }
    let kinds = s.kinds();
    let kind_names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let started = Instant::now();
    eprintln!(
        "loadbench: {} rounds of {}{}; module {}; idle {} conns, connect {}×(c{}), \
         fanout 1→{} × {} msgs, ingest {} × {} msgs, {}-byte lines",
        s.rounds(),
        kind_names.join("/"),
        if s.callgrind { " under callgrind" } else { "" },
        s.module.display(),
        w.idle_conns,
        w.connect_total,
        w.connect_concurrency,
        w.fanout_receivers,
        w.fanout_messages,
        w.ingest_senders,
        w.ingest_messages,
        LINE_LEN
    );
    let mut results: HashMap<Kind, Vec<RoundResult>> = HashMap::new();
    let mut failures = 0;
    for round in 0..s.rounds() {
        for &kind in &kinds {
            let t = Instant::now();
            match run_server_round(kind, &s, round) {
                Ok(r) => {
                    eprintln!(
                        "round {} {:<6} {}  ({:.0}s)",
                        round + 1,
                        kind.name(),
                        round_line(&s, &r),
                        t.elapsed().as_secs_f64()
                    );
                    results.entry(kind).or_default().push(r);
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("round {} {}: FAILED: {e}", round + 1, kind.name());
                }
            }
        }
    }
    print!("{}", report(&s, &results));
    if s.callgrind {
        println!(
            "loadbench took {:.0} s; Ir = user-space instructions of the server process (inspircd, modules, libraries), counted by callgrind from a dump when the server is idle before the phase to one when it is idle again after it.",
            started.elapsed().as_secs_f64()
        );
    } else {
        let cores = std::thread::available_parallelism().map_or("?".into(), |n| n.to_string());
        println!(
            "loadbench took {:.0} s on {cores} cores (clients and server share them); CPU figures are the server's utime+stime (/proc/PID/stat, {} ticks/s).",
            started.elapsed().as_secs_f64(),
            clk_tck()
        );
    }
    if failures > 0 {
        eprintln!("loadbench: {failures} server rounds failed");
        std::process::exit(1);
    }
}

/// The median table: a column per kind (ours, stock, plain), the comparisons of ours
/// and stock against each other and against plain, and with --before a "before" column
/// and ours/before at the end (so the other columns keep their places).
struct Table<'a> {
    results: &'a HashMap<Kind, Vec<RoundResult>>,
    before: bool,
    /// Decimals of the ratios: 2 for timings, whose noise is several %; 3 for
    /// instruction counts, which repeat to a few tenths of a %.
    ratio_decimals: usize,
    out: String,
}

impl Table<'_> {
    fn header(&mut self) {
        let _ = write!(
            self.out,
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
        if self.before {
            let _ = write!(self.out, " {:>9} {:>11}", "before", "ours/before");
        }
        let _ = writeln!(self.out);
    }

    /// A row of medians over rounds of `value`, printed with `decimals` decimals.
    fn row(
        &mut self,
        label: &str,
        unit: &str,
        decimals: usize,
        value: impl Fn(&RoundResult) -> f64,
    ) {
        let results = self.results;
        let get = |kind: Kind| {
            median(
                results
                    .get(&kind)
                    .map(|v| v.iter().map(&value).collect())
                    .unwrap_or_default(),
            )
        };
        let (o, st, p) = (get(Kind::Ours), get(Kind::Stock), get(Kind::Plain));
        let (oo, so) = (o - p, st - p);
        let over = if so.abs() > 1e-9 { oo / so } else { f64::NAN };
        // A phase a kind does not run shows as "-".
        let num = or_dash;
        let r = self.ratio_decimals;
        let _ = write!(
            self.out,
            "{:<34} {:>9} {:>9} {:>9} {:>11} {:>10} {:>10} {:>13}",
            format!("{label} ({unit})"),
            num(o, decimals),
            num(st, decimals),
            num(p, decimals),
            num(o / st, r),
            num(oo, decimals),
            num(so, decimals),
            num(over, r),
        );
        if self.before {
            let b = get(Kind::Before);
            let _ = write!(self.out, " {:>9} {:>11}", num(b, decimals), num(o / b, r));
        }
        let _ = writeln!(self.out);
    }
}

fn report(s: &Settings, results: &HashMap<Kind, Vec<RoundResult>>) -> String {
    let w = &s.work();
    let mut t = Table {
        results,
        before: s.before.is_some(),
        ratio_decimals: if s.callgrind { 3 } else { 2 },
        out: String::new(),
    };
    let rounds: Vec<String> = s
        .kinds()
        .iter()
        .map(|&k| format!("{} {}", k.name(), results.get(&k).map_or(0, Vec::len)))
        .collect();
    let _ = writeln!(t.out);
    let _ = writeln!(
        t.out,
        "=== loadbench{}: medians over rounds ({} rounds) ===",
        if s.callgrind { " --callgrind" } else { "" },
        rounds.join(" / ")
    );
    let _ = writeln!(t.out, "ours = {}, stock = m_websocket.so + m_sha1.so from {}, plain = TCP clients, no WebSocket module; same {}", s.module.display(), s.install.modules.display(), s.install.binary.display());
    if let Some(before) = &s.before {
        let _ = writeln!(t.out, "before = {}", before.display());
    }
    let _ = writeln!(t.out);
    t.header();
    for (name, work) in PHASES {
        let (unit, n) = work.units(w);
        let n = n as f64;
        if s.callgrind {
            t.row(&format!("{name} instructions"), "MIr", 3, |r| {
                r.phase(name).ir / MEGA
            });
            t.row(&format!("{name} per {unit}"), "Ir", 0, |r| {
                r.phase(name).ir / n
            });
        } else {
            t.row(&format!("{name} server CPU"), "s", 3, |r| r.phase(name).cpu);
            t.row(&format!("{name} of which user"), "s", 3, |r| {
                r.phase(name).user_cpu
            });
            t.row(&format!("{name} wall"), "s", 3, |r| r.phase(name).wall);
            t.row(&format!("{name} peak RSS"), "MiB", 3, |r| {
                r.phase(name).hwm_mib
            });
            t.row(&format!("{name} write syscalls"), "k", 3, |r| {
                r.phase(name).syscw / 1000.0
            });
            t.row(&format!("{name} CPU per {unit}"), "us", 3, |r| {
                r.phase(name).cpu / n * 1e6
            });
        }
    }
    if !s.callgrind {
        t.row("idle memory per connection", "KiB", 3, |r| {
            r.idle_kib_per_conn
        });
        t.row("RSS of a fresh server", "MiB", 3, |r| r.idle_base_mib);
    }
    for (name, work) in PHASES {
        if let Work::Fanout { .. } = work {
            let (_, n) = work.units(w);
            t.row(&format!("{name} bytes per delivery"), "B", 1, |r| {
                r.phase(name).rx_bytes / n as f64
            });
        }
    }
    let (metric, cost): (&str, fn(Sample) -> f64) = if s.callgrind {
        ("instructions", |x| x.ir)
    } else {
        ("server CPU", |x| x.cpu)
    };
    let mut out = t.out;
    // Compressed against uncompressed, same lines: the best case (lines that differ in
    // a number), then realistic chat.
    for (plain, compressed) in [
        ("fanout", "fanout-deflate"),
        ("fanout-realistic", "fanout-deflate-realistic"),
    ] {
        let ratio = |f: fn(Sample) -> f64| {
            let of = |name: &str| {
                median(
                    results
                        .get(&Kind::Ours)
                        .map(|v| v.iter().map(|r| f(r.phase(name))).collect())
                        .unwrap_or_default(),
                )
            };
            of(compressed) / of(plain)
        };
        let _ = writeln!(
            out,
            "{}ours, {compressed} / {plain}: {metric} {:.2}x, bytes {:.3}x",
            if plain == "fanout" { "\n" } else { "" },
            ratio(cost),
            ratio(|x| x.rx_bytes)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "ours/stock: ratio of medians. ours-plain, stock-plain: what the WebSocket layer adds over plain TCP clients doing the same; overhead o/s = (ours-plain)/(stock-plain), below 1 means our module costs less than the stock one.{}",
        if s.before.is_some() {
            " ours/before: this build against the --before one, below 1 means this one costs less."
        } else {
            ""
        }
    );
    let idle = if w.idle_conns > 0 {
        format!("; idle {} connections", w.idle_conns)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "Work per phase: connect {} × (connect + handshake + NICK/USER + 001 + QUIT), {} at a time; fanout (and fanout-deflate: compression=\"yes\", every client offering permessage-deflate; ours and before only) 1 sender → {} receivers × {} messages ({} deliveries), lines differing only in a number, then again (-realistic) with testkit::chat's chat text; ingest {} senders × {} messages in batches of {} + PING{idle}.",
        w.connect_total,
        w.connect_concurrency,
        w.fanout_receivers,
        w.fanout_messages,
        w.fanout_receivers * w.fanout_messages,
        w.ingest_senders,
        w.ingest_messages,
        INGEST_BATCH,
    );
    out
}
