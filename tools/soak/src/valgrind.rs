//! `stress` (c): the real server under valgrind memcheck, a short scenario through
//! every path of the module, then DIE; then valgrind's report. A baseline with the
//! stock module first records InspIRCd's own errors (start, UNLOADMODULE, LOADMODULE,
//! DIE).
//!
//! The report is valgrind's XML (`--xml=yes`), read with a parser: its records are
//! whole, whatever else valgrind writes between them (its text log interleaves
//! warnings with the records).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use roxmltree::{Document, Node};
use testkit::client::{Client, IrcLines};
use testkit::irc::command;
use testkit::ws::{close_payload, encode_frame, Frame, OP_BINARY, OP_CLOSE, OP_CONT};
use testkit::ws::{OP_PING, OP_PONG, OP_TEXT};

use crate::server::{self, describe_exit, welcome_and_join, Server, WsModule};
use crate::server::{ORIGIN, PROTOCOLS, SERVER_NAME};
use crate::stress::{keep_on_failure, rehash, Settings};

/// valgrind's exit status when it counted errors.
const VG_EXIT: i32 = 42;
/// How long a client waits for anything from a server under valgrind.
const VT: Duration = Duration::from_secs(90);
/// A stack through the module: its file, its crate, the shim's namespace, the cxx
/// bridge, Rust's core, alloc and runtime.
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
const DEFINITELY_LOST: &str = "Leak_DefinitelyLost";

/// valgrind memcheck in front of the server, its report in the run's directory.
fn memcheck() -> Vec<String> {
    let args = [
        "valgrind",
        "--tool=memcheck",
        "--leak-check=full",
        "--show-leak-kinds=all",
        "--errors-for-leak-kinds=definite",
        "--track-origins=no",
        // Keep the symbols of unloaded modules (UNLOADMODULE, and every module at exit)
        // so that stacks through them are named.
        "--keep-debuginfo=yes",
        "--num-callers=40",
        "--xml=yes",
        "--xml-file={dir}/valgrind.xml",
    ];
    let exit = format!("--error-exitcode={VG_EXIT}");
    args.into_iter().map(String::from).chain([exit]).collect()
}

/// One record of valgrind's report: a memory error or a leak.
struct Record {
    /// valgrind's kind, e.g. `InvalidRead`, `Leak_DefinitelyLost`.
    kind: String,
    /// Bytes a leak record lost.
    bytes: u64,
    /// Every frame of every stack (where it happened, freed, allocated), as
    /// "function (object)".
    frames: Vec<String>,
}

impl Record {
    fn is_leak(&self) -> bool {
        self.kind.starts_with("Leak_")
    }
    fn ours(&self) -> bool {
        self.frames
            .iter()
            .any(|f| OURS.iter().any(|o| f.contains(o)))
    }
    /// The same record in another run: its kind and where it happened.
    fn signature(&self) -> String {
        format!(
            "{} in {}",
            self.kind,
            self.frames.first().map_or("?", String::as_str)
        )
    }
}

/// The records of the report `path`, and valgrind's count of (non-leak) errors.
fn read_report(path: &Path) -> anyhow::Result<(Vec<Record>, u64)> {
    let what = || format!("valgrind's report {}", path.display());
    let xml = std::fs::read_to_string(path).with_context(what)?;
    let doc = Document::parse(&xml).with_context(what)?;
    let text = |n: Node, tag: &str| {
        let child = n.descendants().find(|c| c.has_tag_name(tag));
        child.and_then(|c| c.text()).unwrap_or("?").to_string()
    };
    let tagged = |tag: &'static str| move |n: &Node| n.has_tag_name(tag);
    let records = doc
        .root_element()
        .children()
        .filter(tagged("error"))
        .map(|e| Record {
            kind: text(e, "kind"),
            bytes: text(e, "leakedbytes").parse().unwrap_or(0),
            frames: (e.descendants().filter(tagged("frame")))
                .map(|f| format!("{} ({})", text(f, "fn"), text(f, "obj")))
                .collect(),
        });
    let counts = doc
        .descendants()
        .filter(tagged("errorcounts"))
        .flat_map(|n| n.descendants());
    let errors = counts
        .filter(tagged("count"))
        .filter_map(|c| c.text()?.parse::<u64>().ok());
    Ok((records.collect(), errors.sum()))
}

/// Waits for the server to exit after the scenario's DIE, then reads its report.
fn after_die(
    server: &mut Server,
    scenario: anyhow::Result<()>,
) -> anyhow::Result<(Vec<Record>, u64, Option<ExitStatus>)> {
    let exited = scenario.and_then(|()| {
        let exit = server.wait_exit(Duration::from_secs(240));
        ensure!(
            exit.is_some(),
            "the server did not exit within 240 s of DIE"
        );
        Ok(exit)
    });
    let exit = keep_on_failure(server, exited).inspect_err(|_| {
        server.stop(Duration::from_secs(120));
    })?;
    let (records, errors) =
        read_report(&server.dir().join("valgrind.xml")).inspect_err(|_| server.keep = true)?;
    Ok((records, errors, exit))
}

/// The signatures of InspIRCd's own errors with the stock module.
fn baseline(keep: bool) -> anyhow::Result<BTreeSet<String>> {
    let t0 = Instant::now();
    let conf = server::conf(WsModule::Stock, 120);
    let mut server = server::start(
        "valgrind-stock",
        conf,
        memcheck(),
        Duration::from_secs(180),
        keep,
    )?;
    let (irc, wsp) = (server.irc_port, server.ws_port);
    let scenario = (|| {
        let mut oper = server::irc(irc, "oper", VT)?;
        oper.wait_welcome()?;
        oper.oper()?;
        let mut c = server::ws(wsp, "stockvg", None, &[], VT)?;
        c.register("stockvg")?;
        oper.send_line("UNLOADMODULE m_websocket.so")?;
        oper.expect_str("973", |l| command(l) == b"973")?;
        let _ = c.bytes_until_eof();
        oper.send_line("LOADMODULE websocket")?;
        oper.expect_str("975", |l| command(l) == b"975")?;
        Ok(oper.send_line(&format!("DIE {SERVER_NAME}"))?)
    })();
    let (records, errors, _) =
        after_die(&mut server, scenario).context("the baseline with the stock module")?;
    let secs = t0.elapsed().as_secs_f64();
    println!("  baseline, stock module (start, UNLOADMODULE, LOADMODULE, DIE) in {secs:.1} s: {errors} errors");
    let known: BTreeSet<String> = records
        .iter()
        .filter(|r| !r.is_leak())
        .map(Record::signature)
        .collect();
    for signature in &known {
        println!("    InspIRCd with the stock module: {signature}");
    }
    Ok(known)
}

pub fn run(s: &Settings) -> anyhow::Result<()> {
    println!("\n== (c) valgrind memcheck of the real server ==");
    let known = baseline(s.common.keep)?;
    let t0 = Instant::now();
    let module = s
        .valgrind_module
        .clone()
        .unwrap_or_else(|| s.common.module.clone());
    let conf = server::conf(module.clone(), 300);
    let mut server = server::start(
        "valgrind",
        conf,
        memcheck(),
        Duration::from_secs(180),
        s.common.keep,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "  this module under valgrind started in {secs:.1} s ({})",
        module.display()
    );
    let scenario = scenario(&mut server);
    let (records, errors, exit) = after_die(&mut server, scenario)?;
    println!(
        "  scenario + exit in {:.1} s; exit status {} ({VG_EXIT} = valgrind counted errors, 1 = InspIRCd's DIE status); {errors} errors",
        t0.elapsed().as_secs_f64(), describe_exit(exit)
    );
    let mut by_kind: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.is_leak()) {
        *by_kind.entry((r.kind.as_str(), r.ours())).or_default() += 1;
    }
    for ((kind, ours), n) in by_kind {
        let stack = if ours {
            "through the module (m_websocket/Rust/cxx)"
        } else {
            "in InspIRCd or libraries only"
        };
        println!("  {kind}: {n} record(s) with a stack {stack}");
    }
    let lost = |kind: &str| {
        records
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.bytes)
            .sum::<u64>()
    };
    let [definitely, indirectly, possibly, reachable] = [
        "DefinitelyLost",
        "IndirectlyLost",
        "PossiblyLost",
        "StillReachable",
    ]
    .map(|k| lost(&format!("Leak_{k}")));
    println!("  lost: definitely {definitely} B, indirectly {indirectly} B, possibly {possibly} B; still reachable {reachable} B");
    let mut problems = String::new();
    for r in &records {
        let error = !r.is_leak();
        if error && !r.ours() && known.contains(&r.signature()) {
            println!(
                "    InspIRCd's own, also with the stock module: {}",
                r.signature()
            );
        } else if (r.ours() && (error || r.kind == DEFINITELY_LOST)) || (error && !r.ours()) {
            let why = if r.ours() {
                "a stack through the module"
            } else {
                "not in the stock baseline"
            };
            problems += &format!(
                "\n--- {} ({why}):\n  {}",
                r.signature(),
                r.frames.join("\n  ")
            );
        }
    }
    if server::crashed(exit) {
        problems += &format!("\nthe server crashed: {}", describe_exit(exit));
    }
    let report = server.dir().join("valgrind.xml");
    if !problems.is_empty() {
        server.keep = true;
        bail!(
            "valgrind found problems:{problems}\n  valgrind's report kept: {}",
            report.display()
        );
    }
    if s.common.keep {
        println!("  valgrind's report: {}", report.display());
    }
    println!("  no invalid read/write, no uninitialised use, no definite leak with a stack through the module\n  (c) PASS");
    Ok(())
}

/// The close frame that ends `c`'s frames before EOF has `code`.
fn expect_close(c: &mut Client, code: u16, what: &str) -> anyhow::Result<()> {
    let frames = c.frames_until_eof()?;
    let close = frames.iter().rev().find(|f| f.opcode == OP_CLOSE);
    let close = close.with_context(|| format!("{what}: no close frame before EOF"))?;
    ensure!(
        close.close_code() == Some(code),
        "{what}: {}, want close {code}",
        close.describe()
    );
    Ok(())
}

fn describe(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(Frame::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every path of the module once, then DIE with a client connected.
fn scenario(server: &mut Server) -> anyhow::Result<()> {
    let (irc, wsp) = (server.irc_port, server.ws_port);
    let mut oper = server::irc(irc, "oper", VT)?;
    let mut friend = server::irc(irc, "friend", VT)?;
    let mut w = server::one_per_protocol(wsp, |k| format!("vg{k}"), VT)?;
    oper.wait_welcome()?;
    oper.oper()?;
    welcome_and_join(&mut friend, "#v")?;
    for c in &mut w {
        welcome_and_join(c, "#v")?;
    }
    println!(
        "  3 WebSocket clients (none / text / binary subprotocol) and 2 plain users registered"
    );
    // Chat both ways, one fragmented message, pings of both kinds.
    w[0].send_line("PRIVMSG #v :hello from vg0")?;
    friend.expect_str("vg0's message", |l| {
        l.ends_with("PRIVMSG #v :hello from vg0")
    })?;
    for (fin, op, part) in [
        (false, OP_TEXT, "PRIVMSG #v :frag"),
        (false, OP_CONT, "mented "),
        (true, OP_CONT, "message"),
    ] {
        w[1].send_frame(fin, op, part.as_bytes())?;
    }
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
    w[2].expect_frame("the pong", |f| f.opcode == OP_PONG)?;
    w[0].sync("irc-ping")?;
    // WHOIS and STATS W through the module.
    oper.whois("vg0")?;
    oper.stats_w()?;
    // Refused handshakes (a wrong origin, no key) and a half-sent one.
    let status = server::handshake_status(wsp, "https://evil.example", VT)?;
    ensure!(status == 403, "a bad origin got {status}");
    let mut no_key = server::raw(wsp, "nokey", VT)?;
    let origin = format!("Origin: {ORIGIN}");
    let headers = [
        "Host: x",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        &origin,
    ];
    no_key.send(&testkit::http::request("GET / HTTP/1.1", &headers))?;
    no_key.bytes_until_eof()?;
    let mut half = server::raw(wsp, "half", VT)?;
    half.send(b"GET / HTTP/1.1\r\nHost: x\r\nUpg")?;
    std::thread::sleep(Duration::from_millis(300));
    drop(half);
    // An oversized message (1009).
    let mut big = server::ws(wsp, "big", None, &[], VT)?;
    big.send_frame(true, OP_TEXT, &[b'a'; 20000])?;
    expect_close(&mut big, 1009, "oversized message")?;
    println!(
        "  chat, fragmented message, pings, WHOIS, STATS W, 403, 501, half-sent request, 1009 done"
    );
    // Endings: protocol error, clean close, QUIT.
    let (mut c0, mut c1, mut c2) = (w.remove(0), w.remove(0), w.remove(0));
    c0.send(&encode_frame(true, OP_TEXT, b"PRIVMSG #v :unmasked", None))?;
    expect_close(&mut c0, 1002, "unmasked frame")?;
    c1.send_frame(true, OP_CLOSE, &close_payload(1000, "bye"))?;
    expect_close(&mut c1, 1000, "clean close")?;
    c2.send_frame(true, OP_BINARY, b"QUIT :leaving")?;
    expect_close(&mut c2, 1000, "QUIT")?;
    println!("  endings: protocol error (1002), clean close (1000 echo), QUIT (1000) done");
    // UNLOADMODULE with a client connected, LOADMODULE, then a REHASH to trusted proxies
    // and a 2 s keepalive (the configuration it started with, one more origin).
    let mut u = server::ws(wsp, "vgu", None, &[], VT)?;
    u.register("vgu")?;
    oper.send_line("UNLOADMODULE m_websocket.so")?;
    oper.expect_str("973", |l| command(l) == b"973")?;
    expect_close(&mut u, 1001, "unload")?;
    oper.send_line("LOADMODULE websocket")?;
    oper.expect_str("975", |l| command(l) == b"975")?;
    let mut conf = server.conf.clone();
    conf.origins.push("https://second.example".into());
    conf.websocket = Some(r#"proxyranges="127.0.0.0/8" pinginterval="2s""#.into());
    server.rewrite_config(conf);
    let lines = rehash(&mut oper, "vg-rehash")?;
    ensure!(
        !lines.iter().any(|l| l.contains("m_websocket")),
        "rehash complaint: {lines:?}"
    );
    println!("  UNLOADMODULE (1001 to a connected client), LOADMODULE, REHASH (proxyranges, pinginterval 2s) done");
    // Without a proxy header: 400 now. A multi-hop X-Forwarded-For: the real address.
    let status = server::handshake_status(wsp, ORIGIN, VT)?;
    ensure!(
        status == 400,
        "no proxy header with proxyranges set: {status}, want 400"
    );
    let mut px = server::ws(
        wsp,
        "vgpx",
        None,
        &["X-Forwarded-For: 203.0.113.7, 127.0.0.1"],
        VT,
    )?;
    px.register("vgpx")?;
    px.join("#v")?;
    px.send_line("PRIVMSG #v :through a proxy")?;
    let l = friend.expect_str("vgpx's message", |l| {
        l.ends_with("PRIVMSG #v :through a proxy")
    })?;
    ensure!(
        l.starts_with(":vgpx!ws@203.0.113.7 "),
        "the proxied client's address was not applied: {l}"
    );
    // Keepalive: a client that answers pings stays; one that does not is closed (1001).
    let answered = px.answer_pings_for(Duration::from_secs(7))?;
    ensure!(
        answered > 0,
        "no keepalive ping in 7 s with pinginterval 2s"
    );
    px.sync("px-alive")?;
    px.send_line("QUIT :proxied bye")?;
    expect_close(&mut px, 1000, "proxied QUIT")?;
    let mut idle = server::ws(wsp, "vgidle", None, &["X-Real-IP: 198.51.100.9"], VT)?;
    idle.register("vgidle")?;
    idle.timeout = Duration::from_secs(60);
    let frames = idle.frames_until_eof()?;
    let pinged = frames.iter().any(|f| f.opcode == OP_PING);
    let closed = frames.last().and_then(Frame::close_code) == Some(1001);
    ensure!(
        pinged && closed,
        "idle client: want a keepalive ping, then close 1001; got {}",
        describe(&frames)
    );
    println!("  trusted proxy (400 without header, X-Forwarded-For applied), keepalive (ping answered; unanswered -> 1001) done");
    // A client still connected when the server goes down.
    let mut last = server::ws(wsp, "vglast", PROTOCOLS[1], &["X-Real-IP: 192.0.2.1"], VT)?;
    last.register("vglast")?;
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
        describe(&frames)
    );
    Ok(())
}
