//! The server under test, the test kit's InspIRCd with soak's configuration, and the
//! blocking clients the scenarios use on it.

use std::time::Duration;

use testkit::client::{self, Client, IrcLines};
pub use testkit::inspircd::{Conf, Server, WsModule, DEFAULT_ORIGIN as ORIGIN};
use testkit::inspircd::{Install, Launcher, Stop};
pub use testkit::process::{crashed, describe_exit, raise_nofile};

pub const SERVER_NAME: &str = "soak.example";
/// The subprotocols a client asks for in turn (none, text, binary).
pub const PROTOCOLS: [Option<&str>; 3] = [None, Some("text.ircv3.net"), Some("binary.ircv3.net")];

/// soak's configuration with `module` loaded.
///
/// localmax/globalmax/limit: every client comes from 127.0.0.1, so the per-IP clone
/// limits must exceed the connection count. softlimit: the server's connection cap
/// (defaults to its RLIMIT_NOFILE). somaxconn: the accept backlog during the ramp.
/// whowas off: InspIRCd's history of quit nicks (10240 by default) would grow the RSS
/// with every unique nick and hide what the module does. timeout: the registration
/// timeout, 120 s unless a scenario says otherwise (it also reaps unregistered sockets
/// whose FIN InspIRCd missed, see the README).
pub fn conf(module: impl Into<WsModule>, reg_timeout_secs: u64) -> Conf {
    Conf::new(module)
        .server(SERVER_NAME, "soak", "Soak")
        .log("default", false)
        .connect_attrs(&format!(
            r#"timeout="{reg_timeout_secs}" softsendq="1M" localmax="100000" globalmax="100000" limit="100000" maxconnwarn="no""#
        ))
        .performance(r#"netbuffersize="65534" somaxconn="4096" softlimit="60000""#)
        .extra(r#"<whowas groupsize="0" maxgroups="0">"#)
}

/// Starts a server (its directory `soak-<tag>-*` in the temp dir, kept with `keep`), run
/// through `wrapper` (e.g. valgrind) if given, and waits at most `startup` for it.
/// Stopped by SIGTERM, then SIGKILL after 10 s.
pub fn start(
    tag: &str,
    conf: Conf,
    wrapper: Vec<String>,
    startup: Duration,
    keep: bool,
) -> anyhow::Result<Server> {
    Launcher::new(Install::from_env().map_err(anyhow::Error::msg)?)
        .prefix(&format!("soak-{tag}-"))
        .startup(startup)
        .stop(Stop::Term(Duration::from_secs(10)))
        .keep(keep)
        .wrapper(wrapper)
        .start(conf)
        .map_err(anyhow::Error::msg)
}

/// Lines of the server's console output that signal trouble in the module or the server.
pub fn alarming_output(server: &Server) -> Vec<String> {
    const SIGNS: [&str; 5] = [
        "panic",
        "segmentation",
        "terminate called",
        "abort",
        "assert",
    ];
    let out = server.output();
    out.lines()
        .filter(|l| SIGNS.iter().any(|s| l.to_ascii_lowercase().contains(s)))
        .map(str::to_string)
        .collect()
}

/// An upgrade request with the kit's Origin (or `origin`), `protocol` if any, and the
/// `extra` header lines.
pub fn request(origin: Option<&str>, protocol: Option<&str>, extra: &[&str]) -> Vec<u8> {
    let protocol = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}"));
    let lines: Vec<&str> = protocol
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    testkit::ws::upgrade_request("127.0.0.1", origin.unwrap_or(ORIGIN), &lines)
}

/// A plain IRC client that has sent NICK and USER, its waits bounded by `timeout`.
pub fn irc(port: u16, nick: &str, timeout: Duration) -> client::Result<Client> {
    let mut c = Client::irc(None, port)?
        .with_timeout(timeout)
        .ident("u", "soak plain user");
    c.start_register(nick)?;
    Ok(c)
}

/// A client connected to the WebSocket port, not upgraded, named `name`, its waits
/// bounded by `timeout`; its line waits answer pings.
pub fn raw(port: u16, name: &str, timeout: Duration) -> client::Result<Client> {
    let c = Client::raw(None, port).map_err(|e| e.context(name))?;
    Ok(c.named(name)
        .with_timeout(timeout)
        .answering_pings()
        .ident("ws", "soak web user"))
}

/// [`raw`], upgraded with `protocol` and the `extra` header lines.
pub fn ws(
    port: u16,
    name: &str,
    protocol: Option<&str>,
    extra: &[&str],
    timeout: Duration,
) -> client::Result<Client> {
    let mut c = raw(port, name, timeout)?;
    c.upgrade_with(&request(None, protocol, extra))?;
    Ok(c)
}

/// One WebSocket client per subprotocol ([`PROTOCOLS`]), the `k`th named `name(k)`,
/// upgraded, with NICK and USER sent.
pub fn one_per_protocol(
    port: u16,
    name: impl Fn(usize) -> String,
    timeout: Duration,
) -> client::Result<Vec<Client>> {
    let mut clients = Vec::new();
    for (k, p) in PROTOCOLS.iter().enumerate() {
        let mut c = ws(port, &name(k), *p, &[], timeout)?;
        c.start_register(&name(k))?;
        clients.push(c);
    }
    Ok(clients)
}

/// The status of the answer to an upgrade request from `origin`.
pub fn handshake_status(port: u16, origin: &str, timeout: Duration) -> client::Result<u16> {
    let mut c = raw(port, "probe", timeout)?;
    let status = c.handshake(&request(Some(origin), None, &[]))?.status;
    c.shutdown();
    Ok(status)
}

/// The number after `key` in `line` (e.g. `Current local users:` in LUSERS' 265).
pub fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = line.get(line.find(key)? + key.len()..)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `c` waits for 001 and joins `chan`.
pub fn welcome_and_join(c: &mut Client, chan: &str) -> client::Result<()> {
    c.wait_welcome()?;
    c.join(chan)
}

/// KiB as MiB, for reports.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
