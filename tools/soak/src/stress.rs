//! `stress`: lifecycle stress of the module in a real InspIRCd (3 or 4).
//!
//! (a) cycles: N × UNLOADMODULE/LOADMODULE with WebSocket clients connected each cycle
//!     (registered ones in a channel with a plain user, an upgraded unregistered one,
//!     one half-way through its upgrade request); a plain TCP user and an oper stay
//!     connected throughout.
//! (b) rehash: WebSocket clients chat in channels while an oper rehashes repeatedly with
//!     changing `<wsorigin>`s (and now and then a bad configuration that must be
//!     refused); every message must arrive, no client may be disturbed.
//! (c) valgrind: the real server under memcheck, a short scenario touching every path
//!     of the module, then DIE; the valgrind log is parsed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use testkit::client::{Client, IrcLines};
use testkit::irc::command_str as command;
use testkit::ws::{
    close_payload, encode_frame, Frame, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
};

use crate::chat::{chat_text, check_chat, parse_privmsg};
use crate::clients::{
    handshake_status, irc_start, register, upgrade_request, ws_connect, ws_upgrade,
};
use crate::server::{self, Server, Valgrind, WsModule, ORIGIN, SERVER_NAME};

pub struct Settings {
    pub module: PathBuf,
    pub valgrind_module: PathBuf,
    pub cycles: usize,
    pub rehashes: usize,
    pub only: Option<String>,
    pub keep: bool,
}

const T: Duration = Duration::from_secs(30);
const UNLOAD_REASON: &str = "WebSocket module unloading";

pub fn run(s: &Settings) -> bool {
    let t0 = Instant::now();
    server::raise_nofile(4096);
    let want = |name: &str| s.only.as_deref().is_none_or(|o| o == name);
    let mut results: Vec<(&str, bool, f64)> = Vec::new();
    if want("cycles") {
        let t = Instant::now();
        let ok = report("cycles", cycles(s));
        results.push((
            "(a) UNLOADMODULE/LOADMODULE cycles",
            ok,
            t.elapsed().as_secs_f64(),
        ));
    }
    if want("rehash") {
        let t = Instant::now();
        let ok = report("rehash", rehash_under_load(s));
        results.push(("(b) REHASH under load", ok, t.elapsed().as_secs_f64()));
    }
    if want("valgrind") {
        let t = Instant::now();
        let ok = report("valgrind", valgrind(s));
        results.push(("(c) valgrind memcheck", ok, t.elapsed().as_secs_f64()));
    }
    println!();
    println!("== stress summary ==");
    for (name, ok, secs) in &results {
        println!(
            "  {:<40} {}  ({secs:.0} s)",
            name,
            if *ok { "PASS" } else { "FAIL" }
        );
    }
    let all = results.iter().all(|r| r.1);
    println!(
        "STRESS {} ({:.0} s)",
        if all { "PASS" } else { "FAIL" },
        t0.elapsed().as_secs_f64()
    );
    all
}

fn report(name: &str, r: Result<(), String>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => {
            println!("FAIL ({name}): {e}");
            false
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn start_server(tag: &str, module: &std::path::Path, keep: bool) -> Result<Server, String> {
    server::start(
        tag,
        server::conf(module.to_path_buf()),
        None,
        Duration::from_secs(30),
        keep,
    )
}

/// Runs `inner` against a fresh server (its files kept if it fails), then stops the
/// server with SIGTERM; fails if it crashed. Returns the stopped server and its exit.
fn scenario(
    tag: &str,
    s: &Settings,
    inner: fn(&Settings, &mut Server) -> Result<(), String>,
) -> Result<(Server, Option<ExitStatus>), String> {
    let mut server = start_server(tag, &s.module, s.keep)?;
    let r = inner(s, &mut server);
    let r = keep_on_failure(&mut server, r);
    let exit = server.stop(Duration::from_secs(20));
    r?;
    if server::crashed(exit) {
        return Err(format!(
            "the server crashed on SIGTERM: {}",
            server::describe_exit(exit)
        ));
    }
    Ok((server, exit))
}

/// Keeps the server's files when the scenario fails.
fn keep_on_failure<T>(server: &mut Server, r: Result<T, String>) -> Result<T, String> {
    if r.is_err() {
        server.keep = true;
        let log = server.log();
        return r.map_err(|e| {
            format!(
                "{e}\n  server: {}\n  log tail:\n{}\n  server files kept in {}",
                if server.is_alive() {
                    "alive".to_string()
                } else {
                    server::describe_exit(server.exit_status())
                },
                server::tail(&log, 15),
                server.dir().display()
            )
        });
    }
    r
}

// ---------------------------------------------------------------------------------------
// (a) UNLOADMODULE / LOADMODULE cycles
// ---------------------------------------------------------------------------------------

const PROTOS: [Option<&str>; 3] = [None, Some("text.ircv3.net"), Some("binary.ircv3.net")];

/// A client per entry of [`PROTOS`] (the `k`th named `name(k)`), upgraded and with
/// NICK and USER sent.
fn one_per_protocol(
    wsp: u16,
    name: impl Fn(usize) -> String,
    realname: &str,
    timeout: Duration,
) -> Result<Vec<Client>, String> {
    let mut clients = Vec::new();
    for (k, p) in PROTOS.iter().enumerate() {
        let name = name(k);
        let mut c = ws_upgrade(wsp, &name, *p, &[], timeout)?;
        c.start_register_as(&name, "ws", realname)?;
        clients.push(c);
    }
    Ok(clients)
}

struct CycleSample {
    cycle: usize,
    rss: u64,
    fds: usize,
}

fn cycles(s: &Settings) -> Result<(), String> {
    println!();
    println!(
        "== (a) {} UNLOADMODULE/LOADMODULE cycles with WebSocket clients connected ==",
        s.cycles
    );
    let (server, exit) = scenario("cycles", s, cycles_inner)?;
    let alarming = server::alarming_output(&server.output());
    if !alarming.is_empty() {
        return Err(format!("alarming server output: {alarming:?}"));
    }
    println!("  server exit on SIGTERM: {}", server::describe_exit(exit));
    println!("  (a) PASS");
    Ok(())
}

fn cycles_inner(s: &Settings, server: &mut Server) -> Result<(), String> {
    let irc = server.irc_port;
    let wsp = server.ws_port;
    let mut oper = irc_start(irc, "oper", T)?;
    let mut friend = irc_start(irc, "friend", T)?;
    oper.wait_welcome()?;
    friend.wait_welcome()?;
    oper.oper()?;
    friend.join("#room")?;
    let module_file = std::fs::canonicalize(&s.module).unwrap_or(s.module.clone());
    let module_name = module_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut samples: Vec<CycleSample> = Vec::new();
    let mut observations: BTreeMap<String, u64> = BTreeMap::new();
    let mut ws_closed = 0usize;
    let t0 = Instant::now();

    for cycle in 1..=s.cycles {
        // Registered clients, one per subprotocol, in #room with the plain user.
        let mut reg = one_per_protocol(wsp, |k| format!("w{k}c{cycle}"), "cycle client", T)?;
        for c in &mut reg {
            c.expect_str("001", |l| command(l) == "001")?;
            c.join("#room")?;
        }
        // Traffic both ways across the module.
        let text = chat_text(&reg[0].name.clone(), cycle as u64);
        reg[0].send_line(&format!("PRIVMSG #room :{text}"))?;
        friend.expect_str(&format!("{}'s PRIVMSG", reg[0].name), |l| {
            l.ends_with(&text)
        })?;
        let ftext = chat_text("friend", cycle as u64);
        friend.send_line(&format!("PRIVMSG #room :{ftext}"))?;
        for c in &mut reg {
            c.expect_str("friend's PRIVMSG", |l| l.ends_with(&ftext))?;
        }
        reg[1].send_frame(true, OP_PING, format!("cycle {cycle}").as_bytes())?;
        let want = format!("cycle {cycle}");
        let deadline = Instant::now() + T;
        loop {
            match reg[1].frame_until(deadline) {
                Ok(f) if f.opcode == OP_PONG && f.payload == want.as_bytes() => break,
                Ok(_) => {}
                Err(e) => return Err(format!("cycle {cycle}: no pong ({e})")),
            }
        }
        // An upgraded, unregistered client, and one half-way through its request.
        let unreg = ws_upgrade(wsp, &format!("unreg{cycle}"), None, &[], T)?;
        let mut half = ws_connect(wsp, &format!("half{cycle}"), T)?;
        let req = upgrade_request(wsp, ORIGIN, None);
        half.send(&req[..req.len() / 2])?;
        // Make sure the server has accepted all of them before the unload.
        oper.sync(&format!("pre{cycle}"))?;

        oper.send_line("UNLOADMODULE m_websocket.so")?;
        let l = oper.expect_str("973/972 (module unloaded or not)", |l| {
            matches!(command(l), "973" | "972")
        })?;
        if command(&l) != "973" {
            return Err(format!("cycle {cycle}: UNLOADMODULE refused: {l}"));
        }
        // Every registered WebSocket client: a close frame 1001 with the reason, then EOF.
        let mut quits_wanted: Vec<String> = reg.iter().map(|c| c.name.clone()).collect();
        let mut all: Vec<Client> = reg;
        all.push(unreg);
        for c in &mut all {
            let frames = c
                .frames_until_eof()
                .map_err(|e| format!("cycle {cycle}: {e}"))?;
            let last = frames
                .last()
                .ok_or_else(|| format!("cycle {cycle}: [{}] no close frame before EOF", c.name))?;
            if last.opcode != OP_CLOSE
                || last.close_code() != Some(1001)
                || last.close_reason() != UNLOAD_REASON
            {
                return Err(format!(
                    "cycle {cycle}: [{}] last frame before EOF is op{} {:?} {:?}; want close 1001 {UNLOAD_REASON:?}",
                    c.name,
                    last.opcode,
                    last.close_code(),
                    last.close_reason()
                ));
            }
            ws_closed += 1;
        }
        // The plain user sees each registered one quit with the reason.
        while !quits_wanted.is_empty() {
            let l = friend.expect_str("QUIT of a WebSocket user", |l| command(l) == "QUIT")?;
            let nick = l
                .trim_start_matches(':')
                .split('!')
                .next()
                .unwrap_or_default()
                .to_string();
            if !l.ends_with(&format!("QUIT :{UNLOAD_REASON}")) {
                return Err(format!("cycle {cycle}: quit line {l:?}"));
            }
            quits_wanted.retain(|n| *n != nick);
        }
        // The half-way client: closed; what it got is recorded.
        let got = half
            .bytes_until_eof()
            .map_err(|e| format!("cycle {cycle}: {e}"))?;
        *observations
            .entry(format!(
                "half-way client at unload: closed after {}",
                if got.is_empty() {
                    "no bytes".to_string()
                } else {
                    format!(
                        "{:?}",
                        String::from_utf8_lossy(&got)
                            .lines()
                            .next()
                            .unwrap_or_default()
                    )
                }
            ))
            .or_default() += 1;
        // While unloaded, the WebSocket port must not take anyone as a plain IRC client.
        let mut probe = ws_connect(wsp, &format!("probe{cycle}"), T)?;
        let _ = probe.send(&upgrade_request(wsp, ORIGIN, None));
        let _ = probe.send(b"NICK sneaky\r\nUSER s 0 * :s\r\n");
        // InspIRCd itself refuses it: "ERROR :Closing link: ... (misconfigured hook)".
        match probe.bytes_until_eof() {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b).into_owned();
                let only_error = text.lines().all(|l| l.starts_with("ERROR :Closing link:") && l.contains("misconfigured hook"));
                if !only_error {
                    return Err(format!(
                        "cycle {cycle}: a connection to the WebSocket port while the module is unloaded got {text:?}"
                    ));
                }
                let what = if text.is_empty() {
                    "closed with no bytes"
                } else {
                    "closed by InspIRCd with \"ERROR :Closing link: (...) [Internal error handling connection (misconfigured hook)]\", never registered"
                };
                *observations.entry(format!("connection to the WebSocket port while unloaded: {what}")).or_default() += 1;
            }
            Err(e) => return Err(format!("cycle {cycle}: a connection to the WebSocket port while unloaded was not closed: {e}")),
        }
        // The module is unmapped once culled; a round trip lets the cull run.
        oper.sync(&format!("unloaded{cycle}"))?;
        let maps = server.proc().mappings_of(&module_name);
        if maps == 0 {
            *observations
                .entry(format!(
                    "{module_name} unmapped from the server after UNLOADMODULE"
                ))
                .or_default() += 1;
        } else {
            *observations
                .entry(format!(
                    "{module_name} still mapped after UNLOADMODULE ({maps} mappings)"
                ))
                .or_default() += 1;
            if cycle >= 3 {
                return Err(format!("cycle {cycle}: {module_name} is still mapped ({maps} mappings) after UNLOADMODULE"));
            }
        }
        oper.send_line("LOADMODULE websocket")?;
        let l = oper.expect_str("975/974 (module loaded or not)", |l| {
            matches!(command(l), "975" | "974")
        })?;
        if command(&l) != "975" {
            return Err(format!("cycle {cycle}: LOADMODULE failed: {l}"));
        }
        if server.proc().mappings_of(&module_name) == 0 {
            return Err(format!(
                "cycle {cycle}: LOADMODULE succeeded but {module_name} is not mapped"
            ));
        }
        friend.sync(&format!("f{cycle}"))?;
        oper.sync(&format!("o{cycle}"))?;
        if !server.is_alive() {
            return Err(format!(
                "cycle {cycle}: the server died: {}",
                server::describe_exit(server.exit_status())
            ));
        }
        samples.push(CycleSample {
            cycle,
            rss: server.proc().rss_kib(),
            fds: server.proc().fd_count(),
        });
        if cycle % 10 == 0 {
            let last = samples.last().unwrap();
            println!(
                "  cycle {cycle:>4}: RSS {} fds {} ({:.0} s)",
                mib(last.rss),
                last.fds,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    // After the last cycle the module still serves WebSocket users.
    let mut again = ws_upgrade(wsp, "after", Some("text.ircv3.net"), &[], T)?;
    register(&mut again, "after", "soak web user")?;
    again.join("#room")?;
    again.send_line("PRIVMSG #room :after the cycles")?;
    friend.expect_str("after's PRIVMSG", |l| {
        l.ends_with("PRIVMSG #room :after the cycles")
    })?;
    let stats = oper.stats_w()?;
    again.send_line("QUIT :done")?;
    let _ = again.frames_until_eof();

    let first = &samples[0];
    let tenth = samples.get(9).unwrap_or(first);
    let last = samples.last().unwrap();
    println!("  {} cycles in {:.1} s; {} WebSocket clients closed by the unloads, each with close 1001 {UNLOAD_REASON:?}; the plain user saw every QUIT :{UNLOAD_REASON}",
        s.cycles, t0.elapsed().as_secs_f64(), ws_closed);
    for (k, v) in &observations {
        println!("  observed: {k} ({v}x)");
    }
    println!(
        "  server RSS after cycle 1 {} | cycle {} {} | cycle {} {}; fds {} / {} / {}",
        mib(first.rss),
        tenth.cycle,
        mib(tenth.rss),
        last.cycle,
        mib(last.rss),
        first.fds,
        tenth.fds,
        last.fds
    );
    let per_cycle = (last.rss as f64 - tenth.rss as f64) / (last.cycle - tenth.cycle).max(1) as f64;
    println!(
        "  RSS growth from cycle {} to {}: {:+.1} KiB per cycle",
        tenth.cycle, last.cycle, per_cycle
    );
    println!(
        "  STATS W after the cycles (counters of the last load): {}",
        stats.join(" | ")
    );
    if last.fds > first.fds {
        return Err(format!(
            "the server holds {} more fds after {} cycles than after the first",
            last.fds - first.fds,
            s.cycles
        ));
    }
    // A leak of a few KiB per load (e.g. a static allocated on each dlopen) shows here.
    let allowed_kib = 2048.0 + tenth.rss as f64 * 0.05;
    if (last.rss as f64 - tenth.rss as f64) > allowed_kib {
        return Err(format!(
            "RSS grew {} from cycle {} to cycle {} (allowed {:.0} KiB)",
            mib(last.rss - tenth.rss),
            tenth.cycle,
            last.cycle,
            allowed_kib
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (b) REHASH under load
// ---------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct ClientResult {
    name: String,
    chan: usize,
    sent: u64,
    received: BTreeMap<String, u64>,
    errors: Vec<String>,
}

fn chat_client(
    mut c: Client,
    chan: usize,
    start: Arc<Barrier>,
    stop: Arc<AtomicBool>,
    done: Arc<Barrier>,
    drained: Arc<Barrier>,
    op: u8,
) -> ClientResult {
    let mut r = ClientResult {
        name: c.name.clone(),
        chan,
        ..Default::default()
    };
    let handle = |f: Frame, r: &mut ClientResult, c: &mut Client| -> Result<bool, String> {
        match f.opcode {
            OP_TEXT | OP_BINARY => {
                let l = String::from_utf8_lossy(&f.payload).into_owned();
                if let Some(t) = l.strip_prefix("PING ") {
                    c.send_frame(true, op, format!("PONG {t}").as_bytes())?;
                } else if command(&l) == "PRIVMSG" {
                    match parse_privmsg(&l).and_then(|(_, _, t)| check_chat(t)) {
                        Some((nick, _)) => *r.received.entry(nick).or_default() += 1,
                        None => return Err(format!("corrupt message {l:?}")),
                    }
                } else if command(&l) == "PONG" {
                    return Ok(l.ends_with(":drained"));
                }
                Ok(false)
            }
            OP_PING => {
                c.send_frame(true, OP_PONG, &f.payload)?;
                Ok(false)
            }
            OP_CLOSE => Err(format!(
                "close frame {:?} {:?}",
                f.close_code(),
                f.close_reason()
            )),
            _ => Ok(false),
        }
    };
    start.wait();
    let mut seq = 0u64;
    let mut err: Option<String> = None;
    while !stop.load(Ordering::Relaxed) && err.is_none() {
        seq += 1;
        let line = format!("PRIVMSG #r{chan} :{}", chat_text(&r.name, seq));
        if let Err(e) = c.send_frame(true, op, line.as_bytes()) {
            err = Some(e.into());
            break;
        }
        r.sent += 1;
        let until = Instant::now() + Duration::from_millis(40);
        loop {
            match c.frame_until(until) {
                Ok(f) => {
                    if let Err(e) = handle(f, &mut r, &mut c) {
                        err = Some(e);
                        break;
                    }
                }
                Err(e) if e.is_timeout() => break,
                Err(e) => {
                    err = Some(e.into());
                    break;
                }
            }
        }
    }
    // Everyone stops sending, then each drains until its own PING comes back after
    // everyone has stopped: every message sent is in the receivers' queues by then.
    done.wait();
    if err.is_none() {
        let _ = c.send_frame(true, op, b"PING :drained");
        let until = Instant::now() + T;
        loop {
            match c.frame_until(until) {
                Ok(f) => match handle(f, &mut r, &mut c) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                },
                Err(e) if e.is_timeout() => {
                    err = Some("timed out draining".into());
                    break;
                }
                Err(e) => {
                    err = Some(format!("while draining: {e}"));
                    break;
                }
            }
        }
    }
    drained.wait();
    if let Some(e) = err {
        r.errors
            .push(format!("[{}] {e}; last frames:\n{}", r.name, c.recent()));
    }
    let _ = c.send_frame(true, OP_CLOSE, &close_payload(1000, "done"));
    r
}

fn origin_status(port: u16, origin: &str) -> Result<u16, String> {
    handshake_status(port, "probe", origin, T)
}

fn rehash(oper: &mut Client, token: &str) -> Result<Vec<String>, String> {
    oper.send_line("REHASH")?;
    oper.expect_str("382 (rehashing)", |l| command(l) == "382")?;
    let mut lines = Vec::new();
    oper.expect_str("the rehash-finished notice", |l| {
        lines.push(l.to_string());
        l.contains("NOTICE") && l.contains("rehashed server")
    })?;
    // Module errors follow the notice in the same loop pass; a round trip collects them.
    lines.extend(oper.sync(token)?);
    Ok(lines)
}

fn rehash_under_load(s: &Settings) -> Result<(), String> {
    println!();
    println!(
        "== (b) {} REHASHes while WebSocket clients chat ==",
        s.rehashes
    );
    scenario("rehash", s, rehash_inner)?;
    println!("  (b) PASS");
    Ok(())
}

fn rehash_inner(s: &Settings, server: &mut Server) -> Result<(), String> {
    const CLIENTS: usize = 24;
    const CHANNELS: usize = 4;
    let wsp = server.ws_port;
    let mut oper = irc_start(server.irc_port, "oper", T)?;
    let mut clients = Vec::new();
    for k in 0..CLIENTS {
        let name = format!("chat{k}");
        let p = PROTOS[k % 3];
        let mut c = ws_upgrade(wsp, &name, p, &[], T)?;
        c.start_register_as(&name, "ws", "chatter")?;
        clients.push((c, p));
    }
    oper.wait_welcome()?;
    oper.oper()?;
    for (k, (c, _)) in clients.iter_mut().enumerate() {
        c.expect_str("001", |l| command(l) == "001")?;
        c.join(&format!("#r{}", k % CHANNELS))?;
    }
    let start = Arc::new(Barrier::new(CLIENTS + 1));
    let done = Arc::new(Barrier::new(CLIENTS + 1));
    let drained = Arc::new(Barrier::new(CLIENTS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (k, (c, p)) in clients.into_iter().enumerate() {
        let (st, sp, dn, dr) = (start.clone(), stop.clone(), done.clone(), drained.clone());
        let op = if p == Some("binary.ircv3.net") {
            OP_BINARY
        } else {
            OP_TEXT
        };
        threads.push(std::thread::spawn(move || {
            chat_client(c, k % CHANNELS, st, sp, dn, dr, op)
        }));
    }
    start.wait();
    let t0 = Instant::now();
    let mut good = vec![ORIGIN.to_string()];
    let mut refused = 0;
    let mut applied = 0;
    let mut probes = 0;
    let mut failure: Option<String> = None;
    for i in 1..=s.rehashes {
        let new_origin = format!("https://r{i}.example");
        let bad = i % 5 == 0;
        // The same configuration but for the origins and the <websocket> tag.
        let mut conf = server.conf.clone();
        let origins: Vec<String> = if i % 2 == 0 {
            vec![new_origin.clone(), "https://*.spare.example".into()]
        } else {
            vec![ORIGIN.to_string(), new_origin.clone()]
        };
        conf.origins = origins.clone();
        conf.websocket = Some(if bad {
            r#"defaultmode="bogus""#.to_string()
        } else {
            format!(
                r#"pingburst="{}" pinginterval="{}s""#,
                5 + i % 10,
                30 + i % 30
            )
        });
        server.rewrite_config(conf);
        let lines = match rehash(&mut oper, &format!("rehash{i}")) {
            Ok(l) => l,
            Err(e) => {
                failure = Some(format!("rehash {i}: {e}"));
                break;
            }
        };
        let complaint = lines.iter().any(|l| {
            l.to_ascii_lowercase().contains("websocket")
                && (l.contains("defaultmode") || l.to_ascii_lowercase().contains("error"))
        });
        if bad {
            if !lines
                .iter()
                .any(|l| l.contains("defaultmode") && l.contains("bogus"))
            {
                failure = Some(format!(
                    "rehash {i}: the bad defaultmode was not reported: {lines:?}"
                ));
                break;
            }
            refused += 1;
        } else {
            if complaint {
                failure = Some(format!(
                    "rehash {i}: the module complained about a good config: {lines:?}"
                ));
                break;
            }
            applied += 1;
            good = origins;
        }
        // New connections follow the configuration in force.
        let check = |origin: &str, want: u16| -> Result<(), String> {
            let st = origin_status(wsp, origin)?;
            if st != want {
                return Err(format!(
                    "rehash {i} ({}): origin {origin} got {st}, want {want}",
                    if bad { "refused" } else { "applied" }
                ));
            }
            Ok(())
        };
        let r = (|| {
            check(&new_origin, if bad { 403 } else { 101 })?;
            check(
                ORIGIN,
                if good.iter().any(|o| o == ORIGIN) {
                    101
                } else {
                    403
                },
            )?;
            check(
                &format!("https://r{}.example", i.saturating_sub(2)),
                if good
                    .iter()
                    .any(|o| *o == format!("https://r{}.example", i.saturating_sub(2)))
                {
                    101
                } else {
                    403
                },
            )?;
            Ok::<(), String>(())
        })();
        probes += 3;
        if let Err(e) = r {
            failure = Some(e);
            break;
        }
        if !server.is_alive() {
            failure = Some(format!("rehash {i}: the server died"));
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let load_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    done.wait();
    drained.wait();
    let results: Vec<ClientResult> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    if let Some(f) = failure {
        return Err(f);
    }
    // Every receiver got every message of every other member of its channel.
    let mut errors: Vec<String> = results.iter().flat_map(|r| r.errors.clone()).collect();
    let sent: BTreeMap<&str, (usize, u64)> = results
        .iter()
        .map(|r| (r.name.as_str(), (r.chan, r.sent)))
        .collect();
    let mut total_sent = 0;
    let mut total_received = 0;
    for r in &results {
        total_sent += r.sent;
        for (sender, (chan, n)) in &sent {
            if *sender == r.name || *chan != r.chan {
                continue;
            }
            let got = r.received.get(*sender).copied().unwrap_or(0);
            total_received += got;
            if got != *n {
                errors.push(format!(
                    "{} got {got} of {n} messages from {sender}",
                    r.name
                ));
            }
        }
    }
    println!(
        "  {} rehashes in {load_secs:.1} s ({applied} applied, {refused} refused as bad), {probes} handshake probes matched the origins in force",
        applied + refused
    );
    println!(
        "  {CLIENTS} WebSocket clients in {CHANNELS} channels sent {total_sent} messages; {total_received} deliveries, every one expected arrived intact; no client was disturbed: {}",
        errors.is_empty()
    );
    if !errors.is_empty() {
        return Err(format!(
            "{} client errors:\n{}",
            errors.len(),
            errors
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    if !server.is_alive() {
        return Err("the server died".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (c) valgrind
// ---------------------------------------------------------------------------------------

const VG_EXIT: i32 = 42;
const VT: Duration = Duration::from_secs(90);

fn valgrind_log_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("soak-{}-{tag}.log", std::process::id()))
}

/// The stock module under valgrind: start, UNLOADMODULE, LOADMODULE, DIE. What InspIRCd
/// itself reports there is InspIRCd's.
fn valgrind_baseline(s: &Settings) -> Result<VgReport, String> {
    let vlog = valgrind_log_path("valgrind-stock");
    let vg = Valgrind {
        log: vlog.clone(),
        error_exitcode: VG_EXIT,
    };
    let conf = server::conf(WsModule::Stock);
    let t0 = Instant::now();
    let mut server = server::start(
        "valgrind-stock",
        conf,
        Some(&vg),
        Duration::from_secs(180),
        s.keep,
    )?;
    let r = (|| {
        let mut oper = irc_start(server.irc_port, "oper", VT)?;
        oper.wait_welcome()?;
        oper.oper()?;
        let mut c = ws_upgrade(server.ws_port, "stockvg", None, &[], VT)?;
        register(&mut c, "stockvg", "soak web user")?;
        oper.send_line("UNLOADMODULE m_websocket.so")?;
        oper.expect_str("973", |l| command(l) == "973")?;
        let _ = c.bytes_until_eof();
        oper.send_line("LOADMODULE websocket")?;
        oper.expect_str("975", |l| command(l) == "975")?;
        oper.send_line(&format!("DIE {SERVER_NAME}"))?;
        Ok::<(), String>(())
    })();
    let r = keep_on_failure(&mut server, r);
    if let Err(e) = r {
        let _ = server.stop(Duration::from_secs(60));
        return Err(format!("baseline with the stock module: {e}"));
    }
    if server.wait_exit(Duration::from_secs(240)).is_none() {
        let _ = server.stop(Duration::from_secs(60));
        return Err("baseline: the stock server did not exit after DIE".into());
    }
    let v = parse_valgrind(&server::read_lossy(&vlog));
    println!(
        "  baseline, stock module (start, UNLOADMODULE, LOADMODULE, DIE) in {:.1} s: {}",
        t0.elapsed().as_secs_f64(),
        v.error_summary
    );
    for b in &v.blocks {
        println!("    InspIRCd with the stock module: {}", b.signature());
    }
    if !s.keep {
        let _ = std::fs::remove_file(&vlog);
    }
    Ok(v)
}

fn valgrind(s: &Settings) -> Result<(), String> {
    println!();
    println!("== (c) valgrind memcheck of the real server ==");
    let baseline = valgrind_baseline(s)?;
    let known: std::collections::BTreeSet<String> =
        baseline.blocks.iter().map(|b| b.signature()).collect();
    let vlog = valgrind_log_path("valgrind");
    let vg = Valgrind {
        log: vlog.clone(),
        error_exitcode: VG_EXIT,
    };
    let t0 = Instant::now();
    let conf = server::reg_timeout(server::conf(s.valgrind_module.clone()), 300);
    let mut server = server::start(
        "valgrind",
        conf,
        Some(&vg),
        Duration::from_secs(180),
        s.keep,
    )?;
    println!(
        "  this module under valgrind started in {:.1} s ({})",
        t0.elapsed().as_secs_f64(),
        s.valgrind_module.display()
    );
    let r = valgrind_scenario(&mut server);
    let r = keep_on_failure(&mut server, r);
    if let Err(e) = r {
        let _ = server.stop(Duration::from_secs(120));
        return Err(format!("{e}\n  valgrind log: {}", vlog.display()));
    }
    let exit = server.wait_exit(Duration::from_secs(240));
    if exit.is_none() {
        server.keep = true;
        let _ = server.stop(Duration::from_secs(60));
        return Err(format!(
            "the server did not exit within 240 s of DIE; valgrind log {}",
            vlog.display()
        ));
    }
    println!(
        "  scenario + exit in {:.1} s; exit status {} ({VG_EXIT} = valgrind counted errors, 1 = InspIRCd's DIE status)",
        t0.elapsed().as_secs_f64(),
        server::describe_exit(exit)
    );
    let text = server::read_lossy(&vlog);
    let v = parse_valgrind(&text);
    if !v.found_summary {
        server.keep = true;
        return Err(format!(
            "no ERROR SUMMARY in the valgrind log {}",
            vlog.display()
        ));
    }
    print_valgrind(&v);
    let mut problems = String::new();
    for b in &v.blocks {
        let ours_bad = b.ours && (b.is_memory_error() || b.kind == "definitely lost");
        let new_core = !b.ours && b.is_memory_error() && !known.contains(&b.signature());
        if b.is_memory_error() && !b.ours && !new_core {
            println!(
                "    InspIRCd's own, also with the stock module: {}",
                b.signature()
            );
        }
        if ours_bad || new_core {
            problems.push_str(&format!(
                "\n--- {} ({}):\n{}\n",
                b.signature(),
                if b.ours {
                    "stack through the module"
                } else {
                    "not in the stock baseline"
                },
                b.text
            ));
        }
    }
    if crate::server::crashed(exit) {
        problems.push_str(&format!(
            "\nthe server crashed: {}",
            server::describe_exit(exit)
        ));
    }
    if !problems.is_empty() {
        server.keep = true;
        return Err(format!(
            "valgrind found problems:{problems}\n  valgrind log kept: {}",
            vlog.display()
        ));
    }
    if !s.keep {
        let _ = std::fs::remove_file(&vlog);
    } else {
        println!("  valgrind log: {}", vlog.display());
    }
    println!("  no invalid read/write, no uninitialised use, no definite leak with a stack through the module");
    println!("  (c) PASS");
    Ok(())
}

fn expect_close_then_eof(c: &mut Client, want: u16, what: &str) -> Result<(), String> {
    let frames = c.frames_until_eof()?;
    match frames.iter().rev().find(|f| f.opcode == OP_CLOSE) {
        Some(f) if f.close_code() == Some(want) => Ok(()),
        Some(f) => Err(format!(
            "{what}: close {:?} {:?}, want {want}",
            f.close_code(),
            f.close_reason()
        )),
        None => Err(format!("{what}: no close frame before EOF")),
    }
}

fn valgrind_scenario(server: &mut Server) -> Result<(), String> {
    let irc = server.irc_port;
    let wsp = server.ws_port;
    let mut oper = irc_start(irc, "oper", VT)?;
    let mut friend = irc_start(irc, "friend", VT)?;
    let mut w = one_per_protocol(wsp, |k| format!("vg{k}"), "valgrind client", VT)?;
    oper.wait_welcome()?;
    friend.wait_welcome()?;
    oper.oper()?;
    friend.join("#v")?;
    for c in &mut w {
        c.expect_str("001", |l| command(l) == "001")?;
        c.join("#v")?;
    }
    println!(
        "  3 WebSocket clients (none / text / binary subprotocol) and 2 plain users registered"
    );
    // Chat both ways, one fragmented message, pings of both kinds.
    w[0].send_line("PRIVMSG #v :hello from vg0")?;
    friend.expect_str("vg0's message", |l| {
        l.ends_with("PRIVMSG #v :hello from vg0")
    })?;
    w[1].send_frame(false, OP_TEXT, b"PRIVMSG #v :frag")?;
    w[1].send_frame(false, OP_CONT, b"mented ")?;
    w[1].send_frame(true, OP_CONT, b"message")?;
    friend.expect_str("vg1's fragmented message", |l| {
        l.ends_with("PRIVMSG #v :fragmented message")
    })?;
    friend.send_line("PRIVMSG #v :hello from friend")?;
    for c in &mut w {
        c.expect_str("friend's message", |l| {
            l.ends_with("PRIVMSG #v :hello from friend")
        })?;
    }
    w[2].send_frame(true, OP_PING, b"vg-ping")?;
    let deadline = Instant::now() + VT;
    loop {
        match w[2].frame_until(deadline) {
            Ok(f) if f.opcode == OP_PONG => break,
            Ok(_) => {}
            _ => return Err("no pong".into()),
        }
    }
    w[0].sync("irc-ping")?;
    // WHOIS and STATS W through the module.
    oper.send_line("WHOIS vg0")?;
    oper.expect_str("318 (end of WHOIS)", |l| command(l) == "318")?;
    oper.send_line("STATS W")?;
    oper.expect_str("219", |l| command(l) == "219")?;
    // Refused handshakes and a half-way one.
    let st = origin_status(wsp, "https://evil.example")?;
    if st != 403 {
        return Err(format!("bad origin got {st}"));
    }
    {
        let mut c = ws_connect(wsp, "nokey", VT)?;
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nOrigin: https://soak.example\r\n\r\n")?;
        let _ = c.bytes_until_eof()?;
        let mut h = ws_connect(wsp, "half", VT)?;
        h.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpg")?;
        std::thread::sleep(Duration::from_millis(300));
        drop(h);
    }
    // An oversized message (1009) from a fourth client.
    {
        let mut big = ws_upgrade(wsp, "big", None, &[], VT)?;
        big.send_frame(true, OP_TEXT, &vec![b'a'; 20000])?;
        expect_close_then_eof(&mut big, 1009, "oversized message")?;
    }
    println!(
        "  chat, fragmented message, pings, WHOIS, STATS W, 403, 501, half-sent request, 1009 done"
    );
    // Endings: protocol error, clean close, QUIT.
    let mut c0 = w.remove(0);
    c0.send(&encode_frame(true, OP_TEXT, b"PRIVMSG #v :unmasked", None))?;
    expect_close_then_eof(&mut c0, 1002, "unmasked frame")?;
    let mut c1 = w.remove(0);
    c1.send_frame(true, OP_CLOSE, &close_payload(1000, "bye"))?;
    expect_close_then_eof(&mut c1, 1000, "clean close")?;
    let mut c2 = w.remove(0);
    c2.send_frame(true, OP_BINARY, b"QUIT :leaving")?;
    expect_close_then_eof(&mut c2, 1000, "QUIT")?;
    println!("  endings: protocol error (1002), clean close (1000 echo), QUIT (1000) done");
    // UNLOADMODULE with a client connected, LOADMODULE, a REHASH.
    let mut u = ws_upgrade(wsp, "vgu", None, &[], VT)?;
    register(&mut u, "vgu", "soak web user")?;
    oper.send_line("UNLOADMODULE m_websocket.so")?;
    oper.expect_str("973", |l| command(l) == "973")?;
    expect_close_then_eof(&mut u, 1001, "unload")?;
    oper.send_line("LOADMODULE websocket")?;
    oper.expect_str("975", |l| command(l) == "975")?;
    // REHASH to trusted proxies and a 2 s keepalive.
    // The configuration it started with (registration timeout 300 s), one more origin.
    let mut conf = server.conf.clone();
    conf.origins.push("https://second.example".into());
    conf.websocket = Some(r#"proxyranges="127.0.0.0/8" pinginterval="2s""#.into());
    server.rewrite_config(conf);
    let lines = rehash(&mut oper, "vg-rehash")?;
    if lines.iter().any(|l| l.contains("m_websocket")) {
        return Err(format!("rehash complaint: {lines:?}"));
    }
    println!("  UNLOADMODULE (1001 to a connected client), LOADMODULE, REHASH (proxyranges, pinginterval 2s) done");
    // Without a proxy header: 400 now. A multi-hop X-Forwarded-For: the real address.
    {
        let st = handshake_status(wsp, "noproxyheader", ORIGIN, VT)?;
        if st != 400 {
            return Err(format!(
                "no proxy header with proxyranges set: {st}, want 400"
            ));
        }
    }
    let mut px = ws_upgrade(
        wsp,
        "vgpx",
        None,
        &["X-Forwarded-For: 203.0.113.7, 127.0.0.1"],
        VT,
    )?;
    register(&mut px, "vgpx", "soak web user")?;
    px.join("#v")?;
    px.send_line("PRIVMSG #v :through a proxy")?;
    let l = friend.expect_str("vgpx's message", |l| {
        l.ends_with("PRIVMSG #v :through a proxy")
    })?;
    if !l.starts_with(":vgpx!ws@203.0.113.7 ") {
        return Err(format!("the proxied client's address was not applied: {l}"));
    }
    // Keepalive: a client that answers pings stays; one that does not is closed (1001).
    let answered = px.answer_pings_for(Duration::from_secs(7))?;
    if answered == 0 {
        return Err("no keepalive ping in 7 s with pinginterval 2s".into());
    }
    px.sync("px-alive")?;
    px.send_line("QUIT :proxied bye")?;
    expect_close_then_eof(&mut px, 1000, "proxied QUIT")?;
    let mut idle = ws_upgrade(wsp, "vgidle", None, &["X-Real-IP: 198.51.100.9"], VT)?;
    register(&mut idle, "vgidle", "soak web user")?;
    idle.timeout = Duration::from_secs(60);
    let frames = idle.frames_until_eof()?;
    let pinged = frames.iter().any(|f| f.opcode == OP_PING);
    match frames.last() {
        Some(f) if pinged && f.opcode == OP_CLOSE && f.close_code() == Some(1001) => {}
        _ => {
            return Err(format!(
                "idle client: want a keepalive ping, then close 1001; got {:?}",
                frames
                    .iter()
                    .map(|f| (f.opcode, String::from_utf8_lossy(&f.payload).into_owned()))
                    .collect::<Vec<_>>()
            ))
        }
    }
    println!("  trusted proxy (400 without header, X-Forwarded-For applied), keepalive (ping answered; unanswered -> 1001) done");
    // A client still connected when the server goes down.
    let mut last = ws_upgrade(
        wsp,
        "vglast",
        Some("text.ircv3.net"),
        &["X-Real-IP: 192.0.2.1"],
        VT,
    )?;
    register(&mut last, "vglast", "soak web user")?;
    last.join("#v")?;
    last.send_line("PRIVMSG #v :still here")?;
    friend.expect_str("vglast's message", |l| {
        l.ends_with("PRIVMSG #v :still here")
    })?;
    oper.send_line(&format!("DIE {SERVER_NAME}"))?;
    last.timeout = Duration::from_secs(180);
    let frames = last.frames_until_eof()?;
    println!(
        "  DIE with a WebSocket client connected; it got: {}",
        frames
            .iter()
            .map(|f| if f.opcode == OP_CLOSE {
                format!("close {:?} {:?}", f.close_code(), f.close_reason())
            } else {
                format!("{:?}", String::from_utf8_lossy(&f.payload))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

#[derive(Debug)]
struct VgBlock {
    kind: String,
    ours: bool,
    bytes: u64,
    text: String,
}

impl VgBlock {
    /// Kind + the function of the first frame: the same error in another run.
    fn signature(&self) -> String {
        let top = self
            .text
            .lines()
            .find(|l| l.trim_start().starts_with("at 0x"))
            .and_then(|l| l.split_once(": "))
            .map(|(_, f)| f.split(" (").next().unwrap_or(f).to_string())
            .unwrap_or_default();
        format!("{} in {top}", self.kind)
    }
    fn is_memory_error(&self) -> bool {
        !self.kind.contains("lost") && self.kind != "still reachable"
    }
}

#[derive(Debug, Default)]
struct VgReport {
    found_summary: bool,
    error_summary: String,
    leak_summary: Vec<String>,
    blocks: Vec<VgBlock>,
}

/// A stack through the module: its file, its crate, the shim's namespace, the cxx
/// bridge, Rust's core/alloc/std.
const OURS: [&str; 8] = [
    "m_websocket",
    "inspircd_websocket",
    "wsgate",
    "cxxbridge",
    "rust::",
    "core::",
    "alloc::",
    "std::rt::",
];

fn parse_valgrind(text: &str) -> VgReport {
    let mut r = VgReport::default();
    // Strip the "==PID== " prefix; blocks are separated by empty lines.
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.starts_with("==") {
                l.splitn(3, "==")
                    .nth(2)
                    .map(|x| x.strip_prefix(' ').unwrap_or(x))
                    .unwrap_or("")
            } else {
                l
            }
        })
        .collect();
    let mut blocks: Vec<Vec<&str>> = vec![Vec::new()];
    for l in &lines {
        if l.trim().is_empty() {
            blocks.push(Vec::new());
        } else {
            blocks.last_mut().unwrap().push(l);
        }
    }
    if let Some(l) = lines.iter().find(|l| l.starts_with("ERROR SUMMARY:")) {
        r.found_summary = true;
        r.error_summary = l.to_string();
    }
    for b in blocks.iter().filter(|b| !b.is_empty()) {
        let head = b[0];
        if head.starts_with("LEAK SUMMARY:") {
            r.leak_summary = b[1..].iter().map(|l| l.trim().to_string()).collect();
            continue;
        }
        let kind = if head.contains("are definitely lost") {
            "definitely lost"
        } else if head.contains("are possibly lost") {
            "possibly lost"
        } else if head.contains("are indirectly lost") {
            "indirectly lost"
        } else if head.contains("are still reachable") {
            "still reachable"
        } else if head.starts_with("Invalid read") {
            "Invalid read"
        } else if head.starts_with("Invalid write") {
            "Invalid write"
        } else if head.starts_with("Invalid free") {
            "Invalid free"
        } else if head.starts_with("Mismatched free") {
            "Mismatched free"
        } else if head.starts_with("Conditional jump") {
            "Conditional jump on uninitialised value"
        } else if head.starts_with("Use of uninitialised") {
            "Use of uninitialised value"
        } else if head.starts_with("Syscall param") {
            "Syscall param"
        } else if head.starts_with("Source and destination overlap") {
            "Source and destination overlap"
        } else {
            continue;
        };
        let body = b.join("\n");
        let bytes = head
            .split_whitespace()
            .next()
            .map(|n| n.replace(',', ""))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // Only the stack of the allocation/access counts, not the summary text.
        let ours = b[1..].iter().any(|l| OURS.iter().any(|o| l.contains(o)));
        r.blocks.push(VgBlock {
            kind: kind.to_string(),
            ours,
            bytes,
            text: body,
        });
    }
    r
}

fn print_valgrind(v: &VgReport) {
    println!("  {}", v.error_summary);
    for l in &v.leak_summary {
        println!("    {l}");
    }
    let mut by: BTreeMap<(String, bool), (usize, u64)> = BTreeMap::new();
    for b in &v.blocks {
        let e = by.entry((b.kind.clone(), b.ours)).or_default();
        e.0 += 1;
        e.1 += b.bytes;
    }
    if by.is_empty() {
        println!("  no error or leak records");
    }
    for ((kind, ours), (n, bytes)) in &by {
        let bytes = if kind.contains("lost") {
            format!(", {bytes} bytes")
        } else {
            String::new()
        };
        println!(
            "  {kind}: {n} record(s){bytes} with a stack {}",
            if *ours {
                "through the module (m_websocket/Rust/cxx)"
            } else {
                "in InspIRCd or libraries only"
            }
        );
    }
    for b in v
        .blocks
        .iter()
        .filter(|b| !b.ours && b.kind == "definitely lost")
        .take(3)
    {
        let first: Vec<&str> = b.text.lines().take(6).collect();
        println!("    InspIRCd's own: {}", first.join(" / "));
    }
}
