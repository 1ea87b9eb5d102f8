//! `stress`: lifecycle stress of the module in a real InspIRCd (3 or 4).
//!
//! (a) cycles: N × UNLOADMODULE/LOADMODULE with WebSocket clients connected each cycle
//!     (registered ones in a channel with a plain user, an upgraded unregistered one,
//!     one half-way through its upgrade request); a plain user and an oper stay
//!     connected throughout.
//! (b) rehash: WebSocket clients chat in channels while an oper rehashes repeatedly with
//!     changing `<wsorigin>`s (and now and then a bad configuration that must be
//!     refused); every message must arrive, no client may be disturbed.
//! (c) valgrind: see valgrind.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use testkit::client::{self, Client, IrcLines};
use testkit::irc::command;
use testkit::ws::{close_payload, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

use crate::chat::{chat_text, check_chat, parse_privmsg};
use crate::server::{self, describe_exit, mib, welcome_and_join, Server, ORIGIN, PROTOCOLS};

#[derive(clap::Args, Debug)]
pub struct Settings {
    #[command(flatten)]
    pub common: crate::Common,
    /// The module the valgrind run loads: the same build not stripped, so that stacks
    /// through it are named (default: --module).
    #[arg(long, value_parser = crate::existing)]
    pub valgrind_module: Option<PathBuf>,
    /// UNLOADMODULE/LOADMODULE cycles.
    #[arg(long, env = "STRESS_CYCLES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    cycles: u32,
    /// REHASHes under load.
    #[arg(long, env = "STRESS_REHASHES", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    rehashes: u32,
    /// Only this part.
    #[arg(long, value_enum)]
    only: Option<Part>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Cycles,
    Rehash,
    Valgrind,
}

/// A part of the stress run.
type Scenario = fn(&Settings) -> anyhow::Result<()>;
/// How long a client waits for anything.
const T: Duration = Duration::from_secs(30);
const UNLOAD_REASON: &str = "WebSocket module unloading";
/// Chatting clients in (b), and the channels they share.
const CHATTERS: usize = 24;
const CHANNELS: usize = 4;

pub fn run(s: &Settings) -> bool {
    let t0 = Instant::now();
    server::raise_nofile(4096);
    let parts: [(Part, &str, Scenario); 3] = [
        (Part::Cycles, "(a) UNLOADMODULE/LOADMODULE cycles", cycles),
        (Part::Rehash, "(b) REHASH under load", rehash_under_load),
        (
            Part::Valgrind,
            "(c) valgrind memcheck",
            crate::valgrind::run,
        ),
    ];
    let mut passed = true;
    let mut summary = String::new();
    for (_, name, scenario) in parts
        .into_iter()
        .filter(|p| s.only.is_none_or(|o| o == p.0))
    {
        let t = Instant::now();
        let result = scenario(s);
        if let Err(e) = &result {
            println!("FAIL ({name}): {e:#}");
        }
        passed &= result.is_ok();
        let verdict = if result.is_ok() { "PASS" } else { "FAIL" };
        summary += &format!(
            "\n  {name:<40} {verdict}  ({:.0} s)",
            t.elapsed().as_secs_f64()
        );
    }
    let verdict = if passed { "PASS" } else { "FAIL" };
    println!(
        "\n== stress summary =={summary}\nSTRESS {verdict} ({:.0} s)",
        t0.elapsed().as_secs_f64()
    );
    passed
}

/// `r`, with the server's state, files and log tail added when it failed (its files
/// are then kept).
pub fn keep_on_failure<T>(server: &mut Server, r: anyhow::Result<T>) -> anyhow::Result<T> {
    if r.is_ok() {
        return r;
    }
    server.keep = true;
    let state = if server.is_alive() {
        "alive".into()
    } else {
        describe_exit(server.exit_status())
    };
    let log = testkit::wait::tail(&server.log(), 15);
    let dir = server.dir().display().to_string();
    r.with_context(|| format!("server {state}, its files kept in {dir}; log tail:\n{log}\n"))
}

/// Runs `scenario` against a fresh server with `module`, then stops the server with
/// SIGTERM; fails if it crashed. Returns the stopped server.
fn with_server(
    tag: &str,
    module: &Path,
    keep: bool,
    scenario: impl FnOnce(&mut Server) -> anyhow::Result<()>,
) -> anyhow::Result<Server> {
    let conf = server::conf(module.to_path_buf(), 120);
    let mut server = server::start(tag, conf, Vec::new(), Duration::from_secs(30), keep)?;
    let result = scenario(&mut server);
    let result = keep_on_failure(&mut server, result);
    let exit = server.stop(Duration::from_secs(20));
    result?;
    ensure!(
        !server::crashed(exit),
        "the server crashed on SIGTERM: {}",
        describe_exit(exit)
    );
    Ok(server)
}

/// REHASH as `oper`: the lines up to the rehash-finished notice, and the module's
/// complaints that follow it.
pub fn rehash(oper: &mut Client, token: &str) -> client::Result<Vec<String>> {
    oper.send_line("REHASH")?;
    oper.expect_str("382 (rehashing)", |l| command(l) == b"382")?;
    let mut lines = Vec::new();
    oper.expect_str("the rehash-finished notice", |l| {
        lines.push(l.to_string());
        l.contains("NOTICE") && l.contains("rehashed server")
    })?;
    // Module errors follow the notice in the same loop pass; a round trip collects them.
    lines.extend(oper.sync(token)?);
    Ok(lines)
}

// ---------------------------------------------------------------------------------------
// (a) UNLOADMODULE / LOADMODULE cycles
// ---------------------------------------------------------------------------------------

/// What the cycles saw besides their checks, with how often.
type Observed = BTreeMap<String, u64>;

#[derive(Clone, Copy)]
struct Sample {
    cycle: u32,
    rss: u64,
    fds: usize,
}

fn cycles(s: &Settings) -> anyhow::Result<()> {
    println!(
        "\n== (a) {} UNLOADMODULE/LOADMODULE cycles with WebSocket clients connected ==",
        s.cycles
    );
    let server = with_server("cycles", &s.common.module, s.common.keep, |server| {
        cycles_on(s, server)
    })?;
    let alarming = server::alarming_output(&server);
    ensure!(alarming.is_empty(), "alarming server output: {alarming:?}");
    println!(
        "  server exit on SIGTERM: {}\n  (a) PASS",
        describe_exit(server.exit_status())
    );
    Ok(())
}

fn cycles_on(s: &Settings, server: &mut Server) -> anyhow::Result<()> {
    let mut oper = server::irc(server.irc_port, "oper", T)?;
    let mut friend = server::irc(server.irc_port, "friend", T)?;
    oper.wait_welcome()?;
    oper.oper()?;
    welcome_and_join(&mut friend, "#room")?;
    let module = s
        .common
        .module
        .file_name()
        .context("the module's file name")?;
    let module = module.to_string_lossy();
    let (mut samples, mut seen, t0) = (Vec::new(), Observed::new(), Instant::now());
    for cycle in 1..=s.cycles {
        let clients = (&mut oper, &mut friend);
        one_cycle(cycle, server, clients, &module, &mut seen)
            .with_context(|| format!("cycle {cycle}"))?;
        let (rss, fds) = (server.proc().rss_kib(), server.proc().fd_count());
        samples.push(Sample { cycle, rss, fds });
        if cycle % 10 == 0 {
            println!(
                "  cycle {cycle:>4}: RSS {} fds {fds} ({:.0} s)",
                mib(rss),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    // After the last cycle the module still serves WebSocket users.
    let mut again = server::ws(server.ws_port, "after", PROTOCOLS[1], &[], T)?;
    again.register("after")?;
    again.join("#room")?;
    again.send_line("PRIVMSG #room :after the cycles")?;
    friend.expect_str("after's PRIVMSG", |l| {
        l.ends_with("PRIVMSG #room :after the cycles")
    })?;
    let stats = oper.stats_w()?;
    again.send_line("QUIT :done")?;
    let _ = again.frames_until_eof();

    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let tenth = *samples.get(9).unwrap_or(&first);
    println!(
        "  {} cycles in {:.1} s; {} WebSocket clients closed by the unloads, each with close 1001 {UNLOAD_REASON:?}; the plain user saw every QUIT :{UNLOAD_REASON}",
        s.cycles, t0.elapsed().as_secs_f64(), 4 * s.cycles
    );
    for (what, n) in &seen {
        println!("  observed: {what} ({n}x)");
    }
    let at = |x: Sample| format!("cycle {} {} {} fds", x.cycle, mib(x.rss), x.fds);
    println!(
        "  server RSS after {} | {} | {}",
        at(first),
        at(tenth),
        at(last)
    );
    let growth = last.rss as f64 - tenth.rss as f64;
    let per_cycle = growth / f64::from((last.cycle - tenth.cycle).max(1));
    println!(
        "  RSS growth from cycle {} to {}: {per_cycle:+.1} KiB per cycle",
        tenth.cycle, last.cycle
    );
    println!(
        "  STATS W after the cycles (counters of the last load): {}",
        stats.join(" | ")
    );
    let more_fds = last.fds.saturating_sub(first.fds);
    ensure!(
        more_fds == 0,
        "the server holds {more_fds} more fds after {} cycles than after the first",
        s.cycles
    );
    // A leak of a few KiB per load (e.g. a static allocated on each dlopen) shows here.
    let allowed_kib = 2048.0 + tenth.rss as f64 * 0.05;
    ensure!(
        growth <= allowed_kib,
        "RSS grew {growth} KiB from cycle {} to cycle {} (allowed {allowed_kib:.0} KiB)",
        tenth.cycle,
        last.cycle
    );
    Ok(())
}

/// One cycle: clients of every kind, UNLOADMODULE, what each of them must see,
/// LOADMODULE.
fn one_cycle(
    cycle: u32,
    server: &mut Server,
    (oper, friend): (&mut Client, &mut Client),
    module: &str,
    seen: &mut Observed,
) -> anyhow::Result<()> {
    let wsp = server.ws_port;
    // Registered clients, one per subprotocol, in #room with the plain user.
    let mut reg = server::one_per_protocol(wsp, |k| format!("w{k}c{cycle}"), T)?;
    for c in &mut reg {
        welcome_and_join(c, "#room")?;
    }
    // Traffic both ways across the module, and a WebSocket ping.
    let text = chat_text(&reg[0].name, cycle.into());
    reg[0].send_line(&format!("PRIVMSG #room :{text}"))?;
    friend.expect_str("the first client's PRIVMSG", |l| l.ends_with(&text))?;
    let text = chat_text("friend", cycle.into());
    friend.send_line(&format!("PRIVMSG #room :{text}"))?;
    for c in &mut reg {
        c.expect_str("friend's PRIVMSG", |l| l.ends_with(&text))?;
    }
    let ping = format!("cycle {cycle}");
    reg[1].send_frame(true, OP_PING, ping.as_bytes())?;
    reg[1].expect_frame("the pong", |f| {
        f.opcode == OP_PONG && f.payload == ping.as_bytes()
    })?;
    // An upgraded, unregistered client, and one half-way through its request.
    let unregistered = server::ws(wsp, &format!("unreg{cycle}"), None, &[], T)?;
    let mut half = server::raw(wsp, &format!("half{cycle}"), T)?;
    let request = server::request(None, None, &[]);
    half.send(&request[..request.len() / 2])?;
    // The server has accepted all of them before the unload.
    oper.sync(&format!("pre{cycle}"))?;

    oper.send_line("UNLOADMODULE m_websocket.so")?;
    let l = oper.expect_str("973/972 (unloaded or not)", |l| {
        matches!(command(l), b"973" | b"972")
    })?;
    ensure!(command(&l) == b"973", "UNLOADMODULE refused: {l}");
    // Every upgraded client: a close frame 1001 with the reason as its last frame, EOF.
    let mut quitting: Vec<String> = reg.iter().map(|c| c.name.clone()).collect();
    for mut c in reg.into_iter().chain([unregistered]) {
        let frames = c.frames_until_eof()?;
        let last = frames
            .last()
            .with_context(|| format!("[{}] no close frame before EOF", c.name))?;
        let unloading = last.close_code() == Some(1001) && last.close_reason() == UNLOAD_REASON;
        ensure!(
            unloading,
            "[{}] the last frame before EOF is {}, not close 1001 {UNLOAD_REASON:?}",
            c.name,
            last.describe()
        );
    }
    // The plain user sees each registered one quit with the reason.
    while !quitting.is_empty() {
        let l = friend.expect_str("QUIT of a WebSocket user", |l| command(l) == b"QUIT")?;
        ensure!(
            l.ends_with(&format!("QUIT :{UNLOAD_REASON}")),
            "quit line {l:?}"
        );
        let nick = l
            .trim_start_matches(':')
            .split('!')
            .next()
            .unwrap_or_default();
        quitting.retain(|n| n != nick);
    }
    // The half-way client is closed; what it got is recorded.
    let got = half.bytes_until_eof()?;
    let first_line = String::from_utf8_lossy(&got)
        .lines()
        .next()
        .map(|l| format!("{l:?}"));
    let first_line = first_line.unwrap_or_else(|| "no bytes".into());
    *seen
        .entry(format!(
            "half-way client at unload: closed after {first_line}"
        ))
        .or_default() += 1;
    // While unloaded, InspIRCd itself refuses the WebSocket port's clients: "ERROR
    // :Closing link: ... (misconfigured hook)", never registered.
    let mut probe = server::raw(wsp, &format!("probe{cycle}"), T)?;
    let _ = probe.send(&request);
    let _ = probe.send(b"NICK sneaky\r\nUSER s 0 * :s\r\n");
    let got = probe
        .bytes_until_eof()
        .context("a connection while unloaded was not closed")?;
    let text = String::from_utf8_lossy(&got);
    let refused =
        |l: &str| l.starts_with("ERROR :Closing link:") && l.contains("misconfigured hook");
    ensure!(
        text.lines().all(refused),
        "a connection to the WebSocket port while unloaded got {text:?}"
    );
    let how = match text.is_empty() {
        true => "closed with no bytes",
        false => "closed by InspIRCd with \"ERROR :Closing link: (...) [Internal error handling connection (misconfigured hook)]\", never registered",
    };
    *seen
        .entry(format!(
            "connection to the WebSocket port while unloaded: {how}"
        ))
        .or_default() += 1;
    // The module is unmapped once culled; a round trip lets the cull run.
    oper.sync(&format!("unloaded{cycle}"))?;
    let maps = server.proc().mappings_of(module);
    let mapped = match maps {
        0 => format!("{module} unmapped from the server after UNLOADMODULE"),
        n => format!("{module} still mapped after UNLOADMODULE ({n} mappings)"),
    };
    *seen.entry(mapped.clone()).or_default() += 1;
    ensure!(maps == 0 || cycle < 3, "{mapped}");
    oper.send_line("LOADMODULE websocket")?;
    let l = oper.expect_str("975/974 (loaded or not)", |l| {
        matches!(command(l), b"975" | b"974")
    })?;
    ensure!(command(&l) == b"975", "LOADMODULE failed: {l}");
    ensure!(
        server.proc().mappings_of(module) > 0,
        "LOADMODULE succeeded but {module} is not mapped"
    );
    friend.sync(&format!("f{cycle}"))?;
    oper.sync(&format!("o{cycle}"))?;
    ensure!(
        server.is_alive(),
        "the server died: {}",
        describe_exit(server.exit_status())
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (b) REHASH under load
// ---------------------------------------------------------------------------------------

/// What one chatting client sent and received, and what went wrong for it.
struct Chatter {
    name: String,
    chan: usize,
    sent: u64,
    received: BTreeMap<String, u64>,
    error: Option<String>,
}

fn rehash_under_load(s: &Settings) -> anyhow::Result<()> {
    println!(
        "\n== (b) {} REHASHes while WebSocket clients chat ==",
        s.rehashes
    );
    with_server("rehash", &s.common.module, s.common.keep, |server| {
        rehash_on(s, server)
    })?;
    println!("  (b) PASS");
    Ok(())
}

fn rehash_on(s: &Settings, server: &mut Server) -> anyhow::Result<()> {
    let mut oper = server::irc(server.irc_port, "oper", T)?;
    let mut clients = Vec::new();
    for k in 0..CHATTERS {
        let mut c = server::ws(
            server.ws_port,
            &format!("chat{k}"),
            PROTOCOLS[k % 3],
            &[],
            T,
        )?;
        c.start_register(&format!("chat{k}"))?;
        clients.push(c);
    }
    oper.wait_welcome()?;
    oper.oper()?;
    for (k, c) in clients.iter_mut().enumerate() {
        welcome_and_join(c, &format!("#r{}", k % CHANNELS))?;
    }
    // The clients and this thread meet three times: start, stop sending, drained.
    let (meet, stop) = (
        Arc::new(Barrier::new(CHATTERS + 1)),
        Arc::new(AtomicBool::new(false)),
    );
    let threads: Vec<_> = (clients.into_iter().enumerate())
        .map(|(k, c)| {
            let (meet, stop) = (meet.clone(), stop.clone());
            let op = if k % 3 == 2 { OP_BINARY } else { OP_TEXT };
            std::thread::spawn(move || chat(c, k % CHANNELS, op, &meet, &stop))
        })
        .collect();
    meet.wait();
    let t0 = Instant::now();
    let rehashed = rehashes(s, server, &mut oper);
    let load_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    meet.wait();
    meet.wait();
    let results: Vec<Chatter> = threads
        .into_iter()
        .map(|t| t.join().expect("a chat thread"))
        .collect();
    let (applied, refused) = rehashed?;
    // Every receiver got every message of every other member of its channel.
    let mut errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    let (mut total_sent, mut total_received) = (0, 0);
    for r in &results {
        total_sent += r.sent;
        for sender in results
            .iter()
            .filter(|o| o.chan == r.chan && o.name != r.name)
        {
            let got = r.received.get(&sender.name).copied().unwrap_or(0);
            total_received += got;
            if got != sender.sent {
                errors.push(format!(
                    "{} got {got} of {} messages from {}",
                    r.name, sender.sent, sender.name
                ));
            }
        }
    }
    println!(
        "  {} rehashes in {load_secs:.1} s ({applied} applied, {refused} refused as bad), {} handshake probes matched the origins in force",
        applied + refused, 3 * (applied + refused)
    );
    println!(
        "  {CHATTERS} WebSocket clients in {CHANNELS} channels sent {total_sent} messages; {total_received} deliveries, every one expected arrived intact; no client was disturbed: {}",
        errors.is_empty()
    );
    errors.truncate(10);
    ensure!(errors.is_empty(), "client errors:\n{}", errors.join("\n"));
    ensure!(server.is_alive(), "the server died");
    Ok(())
}

/// The oper's REHASHes, each with other `<wsorigin>`s and `<websocket>` settings (every
/// fifth a bad one, which must be refused and reported), each followed by handshake
/// probes that must get what the configuration in force says. Returns how many were
/// applied and refused.
fn rehashes(s: &Settings, server: &mut Server, oper: &mut Client) -> anyhow::Result<(u32, u32)> {
    let (mut in_force, mut applied, mut refused) = (vec![ORIGIN.to_string()], 0, 0);
    for i in 1..=s.rehashes {
        let new_origin = format!("https://r{i}.example");
        let bad = i % 5 == 0;
        // The same configuration but for the origins and the <websocket> tag.
        let mut conf = server.conf.clone();
        conf.origins = match i % 2 {
            0 => vec![new_origin.clone(), "https://*.spare.example".into()],
            _ => vec![ORIGIN.into(), new_origin.clone()],
        };
        conf.websocket = Some(match bad {
            true => r#"defaultmode="bogus""#.into(),
            false => format!(
                r#"pingburst="{}" pinginterval="{}s""#,
                5 + i % 10,
                30 + i % 30
            ),
        });
        let origins = conf.origins.clone();
        server.rewrite_config(conf);
        let lines = rehash(oper, &format!("rehash{i}")).with_context(|| format!("rehash {i}"))?;
        if bad {
            let reported = lines
                .iter()
                .any(|l| l.contains("defaultmode") && l.contains("bogus"));
            ensure!(
                reported,
                "rehash {i}: the bad defaultmode was not reported: {lines:?}"
            );
            refused += 1;
        } else {
            let complaint = |l: &String| {
                let low = l.to_ascii_lowercase();
                low.contains("websocket") && (l.contains("defaultmode") || low.contains("error"))
            };
            ensure!(
                !lines.iter().any(complaint),
                "rehash {i}: a complaint about a good config: {lines:?}"
            );
            (applied, in_force) = (applied + 1, origins);
        }
        // New connections follow the configuration in force.
        let two_back = format!("https://r{}.example", i.saturating_sub(2));
        for origin in [new_origin.as_str(), ORIGIN, &two_back] {
            let want = if in_force.iter().any(|o| o == origin) {
                101
            } else {
                403
            };
            let got = server::handshake_status(server.ws_port, origin, T)?;
            let what = if bad { "refused" } else { "applied" };
            ensure!(
                got == want,
                "rehash {i} ({what}): origin {origin} got {got}, want {want}"
            );
        }
        ensure!(server.is_alive(), "rehash {i}: the server died");
        std::thread::sleep(Duration::from_millis(150));
    }
    Ok((applied, refused))
}

/// One chatting client: sends a checkable message to its channel, reads for 40 ms,
/// again, until `stop`; then, once everyone has stopped, reads until its own PING
/// comes back, by which time every message sent is in its queue.
fn chat(mut c: Client, chan: usize, op: u8, meet: &Barrier, stop: &AtomicBool) -> Chatter {
    let (name, mut sent, mut corrupt) = (c.name.clone(), 0, Vec::new());
    let mut received = BTreeMap::<String, u64>::new();
    // Counts an intact chat message; true for the PONG that ends the drain.
    let mut take = |l: &str| {
        match parse_privmsg(l).map(|(_, _, text)| check_chat(text)) {
            Some(Some((nick, _))) => *received.entry(nick).or_default() += 1,
            Some(None) => corrupt.push(l.to_string()),
            None => {}
        }
        command(l) == b"PONG" && l.ends_with(":drained")
    };
    meet.wait();
    c.timeout = Duration::from_millis(40);
    let mut error = None;
    while error.is_none() && !stop.load(Ordering::Relaxed) {
        let line = format!("PRIVMSG #r{chan} :{}", chat_text(&name, sent + 1));
        error = c.send_frame(true, op, line.as_bytes()).err();
        sent += u64::from(error.is_none());
        let read = c.expect_str("chat messages", &mut take).err();
        error = error.or(read.filter(|e| !e.is_timeout()));
    }
    meet.wait();
    if error.is_none() {
        c.timeout = T;
        error = (c.send_frame(true, op, b"PING :drained").err()).or_else(|| {
            c.expect_str("the PONG after the others' last messages", &mut take)
                .err()
        });
    }
    meet.wait();
    let _ = c.send_frame(true, OP_CLOSE, &close_payload(1000, "done"));
    let error = error.map(|e| format!("[{name}] {e}"));
    let error = error.or_else(|| {
        (!corrupt.is_empty()).then(|| format!("[{name}] corrupt messages: {corrupt:?}"))
    });
    Chatter {
        name,
        chan,
        sent,
        received,
        error,
    }
}
