//! `loadbench --scale N,N,...`: many concurrent users on one server, for each kind in
//! turn (ours, before, stock, plain). Per size: the server's CPU per registration
//! while they connect (half of this module's users offer permessage-deflate, as
//! browsers do, with `compression="yes"`), RSS per connection once they are all in,
//! the server's CPU while they all sit idle for `--scale-idle` seconds (answering
//! every ping: this module's keepalive pings each idle user every `pinginterval`), and
//! a fanout to the first [`FANOUT_MEMBERS`] of them, every delivery checked (text and
//! order) on a sample of receivers. The channel is `+D` (the delayjoin module): without
//! it every join would go to every member already in, N²/2 lines that would swamp the
//! client before the fanout starts. A benchmark: it prints figures and fails only when
//! the server or a check does.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use testkit::chat::Chatter;
use testkit::irc::command;
use testkit::net::loopback_sources;
use testkit::pool::{Event, Handler, Id, Pool};
use testkit::ws::{OP_CLOSE, OP_PING, OP_PONG};

use super::{Dial, Kind, Server, Settings};

/// Members of the fanout's channel (fewer when the size is smaller).
const FANOUT_MEMBERS: usize = 10_000;
/// Messages the fanout sends.
const FANOUT_MESSAGES: usize = 20;
/// Every this many members one checks every message it gets, text and order.
const SAMPLE_EVERY: usize = 100;
/// Connections opened and not yet registered at a time.
const RAMP_CONCURRENCY: usize = 500;
/// Connections per loopback source address: each has ~28,000 ephemeral ports.
const PER_SOURCE: usize = 20_000;
/// File descriptors the client and the server need beyond one per connection.
const FD_MARGIN: usize = 200;
/// Server CPU below this is too few clock ticks to divide by: the figure shows as `-`.
const MIN_MEASURABLE_CPU_SECONDS: f64 = 0.1;
/// Longest wait for one step (a ramp of tens of thousands, a fanout).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

/// One size and kind's figures.
struct Row {
    kind: Kind,
    users: usize,
    /// `None` when the ramp took too little CPU to tell.
    registrations_per_cpu_second: Option<f64>,
    rss_per_user: f64,
    idle_core_percent: f64,
    pings: usize,
    members: usize,
    /// `None` when the fanout took too little CPU to tell.
    fanout_us_per_delivery: Option<f64>,
    checked: usize,
}

/// What the crowd is doing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Ramp,
    Idle,
    Join,
    Fanout,
}

/// Every connection of one size and kind.
struct Crowd {
    step: Step,
    dial: Dial,
    /// Even tags offer permessage-deflate (this module's builds only).
    deflate_half: bool,
    users: usize,
    opened: usize,
    registered: usize,
    joined: usize,
    members: usize,
    /// The fanout's texts, as sent.
    sent: Vec<String>,
    /// The first member has seen its `MODE #scale +D`: the others may join.
    delayed: bool,
    /// Per member: messages received.
    received: Vec<usize>,
    complete: usize,
    checked: usize,
    pings: usize,
    failed: Option<String>,
    ids: Vec<Option<Id>>,
}

impl Crowd {
    fn open_more(&mut self, pool: &mut Pool) {
        while self.opened < self.users && self.opened - self.registered < RAMP_CONCURRENCY {
            let deflate = self.deflate_half && self.opened.is_multiple_of(2);
            let dial = Dial {
                deflate,
                ..self.dial
            };
            match pool.connect(dial.proto(), self.opened) {
                Ok(id) => {
                    if let Some(slot) = self.ids.get_mut(self.opened) {
                        *slot = Some(id);
                    }
                }
                Err(e) => {
                    self.failed = Some(format!("connect {}: {e}", self.opened));
                    return;
                }
            }
            self.opened += 1;
        }
    }

    fn on_line(&mut self, pool: &mut Pool, id: Id, tag: usize, line: &[u8]) {
        if pool.answer_ping(id, line) {
            self.pings += 1;
            return;
        }
        match command(line) {
            b"001" => {
                self.registered += 1;
                self.open_more(pool);
            }
            b"366" => self.joined += 1,
            b"MODE" if tag == 0 && line.ends_with(b"+D") => self.delayed = true,
            b"PRIVMSG" if self.step == Step::Fanout => self.delivered(tag, line),
            b"433" | b"ERROR" => {
                self.failed = Some(format!("user {tag}: {}", String::from_utf8_lossy(line)));
            }
            _ => {}
        }
    }

    /// A fanout message reached member `tag`; a sampled member checks it is the next
    /// one sent, exactly.
    fn delivered(&mut self, tag: usize, line: &[u8]) {
        let Some(count) = self.received.get_mut(tag) else {
            return;
        };
        if tag % SAMPLE_EVERY == 1 {
            let expected = self.sent.get(*count).map(String::as_bytes);
            let text = line
                .windows(2)
                .position(|w| w == b" :")
                .and_then(|at| line.get(at + 2..));
            if text != expected {
                self.failed = Some(format!(
                    "member {tag}, message {count}: got {:?}, expected {:?}",
                    String::from_utf8_lossy(line),
                    expected.map(String::from_utf8_lossy)
                ));
                return;
            }
            self.checked += 1;
        }
        *count += 1;
        if *count == self.sent.len() {
            self.complete += 1;
        }
    }
}

impl Handler for Crowd {
    fn on_event(&mut self, pool: &mut Pool, id: Id, tag: usize, event: Event<'_>) {
        match event {
            Event::Connected => {}
            Event::Open(_) => {
                pool.send_line(id, format!("NICK s{tag}").as_bytes());
                pool.send_line(id, format!("USER s{tag} 0 * :scale").as_bytes());
            }
            Event::Line(line) => self.on_line(pool, id, tag, line),
            Event::Message(m) => self.on_line(pool, id, tag, &m.payload),
            Event::Control(f) if f.opcode == OP_PING => {
                pool.send_frame(id, 0x80 | OP_PONG, &f.payload);
                self.pings += 1;
            }
            Event::Control(f) if f.opcode == OP_CLOSE => {
                self.failed = Some(format!("user {tag}: the server closed"));
            }
            Event::Control(_) => {}
            Event::Closed(c) => self.failed = Some(format!("user {tag}: {}", c.cause)),
        }
    }
}

/// Runs the pool until `done`, failing on the crowd's first failure.
fn run_until(
    pool: &mut Pool,
    crowd: &mut Crowd,
    what: &str,
    done: impl Fn(&Crowd) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    pool.run(crowd, deadline, |c| done(c) || c.failed.is_some())
        .map_err(|e| format!("{what}: {e}"))?;
    crowd
        .failed
        .clone()
        .map_or(Ok(()), |f| Err(format!("{what}: {f}")))
}

fn one(kind: Kind, s: &Settings, users: usize, idle: Duration) -> Result<Row, String> {
    // The limits out of the way of this many users; nobody pinged by the server.
    let conf = kind
        .conf(s)
        .module("delayjoin")
        .connect_attrs(r#"pingfreq="3600" maxconnwarn="no" recvq="64K" softsendq="1M""#)
        .performance(&format!(
            r#"netbuffersize="65536" somaxconn="4096" softlimit="{}""#,
            users + FD_MARGIN
        ));
    let server = Server::start_with(kind, s, &format!("scale-{}-{users}", kind.name()), conf)?;
    let proc = server.proc();
    let sources = u8::try_from(users / PER_SOURCE + 1).map_err(|_| "too many users")?;
    let mut pool = Pool::new(server.port)
        .map_err(|e| e.to_string())?
        .sources(loopback_sources(sources));
    let members = users.min(FANOUT_MEMBERS);
    let mut crowd = Crowd {
        step: Step::Ramp,
        dial: Dial {
            port: server.port,
            ws: kind.websocket(),
            deflate: false,
        },
        deflate_half: kind.compresses(),
        users,
        opened: 0,
        registered: 0,
        joined: 0,
        members,
        sent: Vec::new(),
        delayed: false,
        received: vec![0; members],
        complete: 0,
        checked: 0,
        pings: 0,
        failed: None,
        ids: vec![None; users],
    };

    server.settle(Duration::from_secs(3));
    let rss0 = proc.rss_kib();
    let cpu0 = proc.cpu_seconds();
    crowd.open_more(&mut pool);
    run_until(&mut pool, &mut crowd, "ramp", |c| c.registered >= c.users)?;
    let ramp_cpu = proc.cpu_seconds() - cpu0;
    server.settle(Duration::from_secs(10));
    let rss1 = proc.rss_kib();

    // Idle: every user connected, nothing said; pings answered.
    crowd.step = Step::Idle;
    crowd.pings = 0;
    let idle_cpu0 = proc.cpu_seconds();
    let idle_end = Instant::now() + idle;
    while Instant::now() < idle_end {
        pool.turn(&mut crowd, Duration::from_millis(200))
            .map_err(|e| format!("idle: {e}"))?;
        if let Some(f) = &crowd.failed {
            return Err(format!("idle: {f}"));
        }
    }
    let idle_cpu = proc.cpu_seconds() - idle_cpu0;
    let pings = crowd.pings;

    // Fanout: the first `members` join one channel, user 0 first, making it +D; user 0
    // speaks.
    crowd.step = Step::Join;
    let first = crowd.ids.first().copied().flatten().ok_or("no users")?;
    pool.send_line(first, b"JOIN #scale");
    pool.send_line(first, b"MODE #scale +D");
    run_until(&mut pool, &mut crowd, "join", |c| {
        c.joined >= 1 && c.delayed
    })?;
    for id in crowd.ids.iter().take(members).skip(1).flatten() {
        pool.send_line(*id, b"JOIN #scale");
    }
    run_until(&mut pool, &mut crowd, "join", |c| c.joined >= c.members)?;
    server.settle(Duration::from_secs(10));
    crowd.step = Step::Fanout;
    let mut chat = Chatter::default();
    crowd.sent = (0..FANOUT_MESSAGES)
        .map(|k| format!("scale {k} {}", chat.next_text()))
        .collect();
    let sender = crowd.ids.first().copied().flatten().ok_or("no users")?;
    let fan_cpu0 = proc.cpu_seconds();
    for text in &crowd.sent {
        pool.send_line(sender, format!("PRIVMSG #scale :{text}").as_bytes());
    }
    // The sender does not get its own messages.
    run_until(&mut pool, &mut crowd, "fanout", |c| {
        c.complete + 1 >= c.members
    })?;
    let fan_cpu = proc.cpu_seconds() - fan_cpu0;
    let deliveries = (members.saturating_sub(1) * FANOUT_MESSAGES) as f64;
    let sampled = members.saturating_sub(1).div_ceil(SAMPLE_EVERY);
    if crowd.checked < sampled * FANOUT_MESSAGES {
        return Err(format!(
            "fanout: {} deliveries checked, expected {}",
            crowd.checked,
            sampled * FANOUT_MESSAGES
        ));
    }
    pool.close_all();
    drop(server);

    let per_user = |kib_delta: f64| kib_delta * 1024.0 / users as f64;
    let measurable = |cpu: f64| (cpu >= MIN_MEASURABLE_CPU_SECONDS).then_some(cpu);
    Ok(Row {
        kind,
        users,
        registrations_per_cpu_second: measurable(ramp_cpu).map(|cpu| users as f64 / cpu),
        rss_per_user: per_user(rss1 as f64 - rss0 as f64),
        idle_core_percent: 100.0 * idle_cpu / idle.as_secs_f64(),
        pings,
        members,
        fanout_us_per_delivery: measurable(fan_cpu).map(|cpu| cpu / deliveries * 1e6),
        checked: crowd.checked,
    })
}

/// Runs every size for every kind; the report.
pub(super) fn run(s: &Settings, sizes: &[usize], idle: Duration) -> Result<String, String> {
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let want = (largest + FD_MARGIN) as u64;
    let got = testkit::process::raise_nofile(want);
    if got < want {
        return Err(format!(
            "{largest} users need {want} file descriptors for the client and as many for \
             the server; this process may open {got} (its hard limit): lower the sizes, or \
             raise the limit (ulimit -Hn, which needs CAP_SYS_RESOURCE)"
        ));
    }
    let mut rows = Vec::new();
    for &users in sizes {
        for kind in s.kinds() {
            let row = one(kind, s, users, idle)
                .map_err(|e| format!("{} with {users} users: {e}", kind.name()))?;
            eprintln!("{}", line(&row));
            rows.push(row);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== loadbench --scale: {} ===\n{:>6} {:<6} {:>15} {:>13} {:>20} {:>8} {:>15} {:>8}",
        s.install.binary.display(),
        "users",
        "kind",
        "regs per CPU s",
        "RSS/user (B)",
        "idle CPU (pings)",
        "members",
        "us/delivery",
        "checked"
    );
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    let _ = writeln!(
        out,
        "Half of this module's users offer permessage-deflate (compression=\"yes\"); <connect pingfreq> is an hour, so only this module's keepalive pings idle users (every pinginterval, 30 s by default). Idle: {} s. Fanout: {FANOUT_MESSAGES} chat messages from one member to the others; every {SAMPLE_EVERY}th member checks each message's text and order.",
        idle.as_secs()
    );
    Ok(out)
}

/// One row of the report.
fn line(r: &Row) -> String {
    let or_dash = |v: Option<f64>, decimals: usize| {
        v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
    };
    format!(
        "{:>6} {:<6} {:>15} {:>13.0} {:>12.2}% ({:>5}) {:>8} {:>15} {:>8}",
        r.users,
        r.kind.name(),
        or_dash(r.registrations_per_cpu_second, 0),
        r.rss_per_user,
        r.idle_core_percent,
        r.pings,
        r.members,
        or_dash(r.fanout_us_per_delivery, 2),
        r.checked
    )
}
