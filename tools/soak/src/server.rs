//! The server under test: the test kit's InspIRCd (a private module directory with
//! `m_websocket.so` pointing at the module under test, a generated configuration, free
//! 127.0.0.1 ports, stopped by its PID) with soak's configuration; optionally under
//! valgrind memcheck.

use std::path::PathBuf;
use std::time::Duration;

pub use testkit::inspircd::{Conf, Server, WsModule};
use testkit::inspircd::{Install, Launcher, Stop};
pub use testkit::process::{crashed, describe_exit, raise_nofile};
pub use testkit::wait::{read_lossy, tail};

pub const SERVER_NAME: &str = "soak.example";
/// The origin every client of this tool sends.
pub const ORIGIN: &str = "https://soak.example";

/// soak's configuration with `module` loaded.
///
/// localmax/globalmax/limit: every client comes from 127.0.0.1, so the per-IP clone
/// limits must exceed the connection count. softlimit: the server's connection cap
/// (defaults to its RLIMIT_NOFILE). somaxconn: the accept backlog during the ramp.
/// whowas off: InspIRCd's history of quit nicks (10240 by default) would grow the RSS
/// with every unique nick and hide what the module does. timeout: the registration
/// timeout, 120 s unless a scenario says otherwise (it also reaps unregistered sockets
/// whose FIN InspIRCd missed, see the README). No flood penalties for the chatting
/// clients (the kit's defaults).
pub fn conf(module: impl Into<WsModule>) -> Conf {
    Conf::new(module)
        .server(SERVER_NAME, "soak", "Soak")
        .origins(&[ORIGIN])
        .log("default", false)
        .connect_attrs(
            r#"timeout="120" softsendq="1M" localmax="100000" globalmax="100000" limit="100000" maxconnwarn="no""#,
        )
        .performance(r#"netbuffersize="65534" somaxconn="4096" softlimit="60000""#)
        .extra(r#"<whowas groupsize="0" maxgroups="0">"#)
}

/// `conf` with a registration timeout of `secs`.
pub fn reg_timeout(conf: Conf, secs: u32) -> Conf {
    conf.connect_attrs(&format!(r#"timeout="{secs}""#))
}

#[derive(Clone, Debug)]
pub struct Valgrind {
    pub log: PathBuf,
    pub error_exitcode: i32,
}

/// Starts a server (its directory `soak-<tag>-*` in the temp dir, kept with `keep`) and
/// waits at most `startup` for "InspIRCd is now running". Stopped by SIGTERM, then
/// SIGKILL after 10 s.
pub fn start(
    tag: &str,
    conf: Conf,
    valgrind: Option<&Valgrind>,
    startup: Duration,
    keep: bool,
) -> Result<Server, String> {
    let mut launcher = Launcher::new(Install::from_env()?)
        .prefix(&format!("soak-{tag}-"))
        .startup(startup)
        .stop(Stop::Term(Duration::from_secs(10)))
        .keep(keep);
    if let Some(v) = valgrind {
        launcher = launcher.wrapper([
            "valgrind".to_string(),
            "--tool=memcheck".into(),
            "--leak-check=full".into(),
            "--show-leak-kinds=definite,possible".into(),
            "--errors-for-leak-kinds=definite".into(),
            "--track-origins=no".into(),
            // Keep the symbols of unloaded modules (UNLOADMODULE, and every module at
            // exit) so that stacks through them are named.
            "--keep-debuginfo=yes".into(),
            "--num-callers=40".into(),
            format!("--error-exitcode={}", v.error_exitcode),
            format!("--log-file={}", v.log.display()),
        ]);
    }
    launcher.start(conf)
}

/// This process's CPU seconds.
pub fn own_cpu_seconds() -> f64 {
    testkit::procfs::Proc::own().cpu_seconds()
}

/// Lines of the server's console output that signal trouble in the module or the server.
pub fn alarming_output(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            let low = l.to_ascii_lowercase();
            low.contains("panicked")
                || low.contains("panic")
                || low.contains("segmentation")
                || low.contains("terminate called")
                || low.contains("abort")
                || low.contains("assert")
        })
        .map(|l| l.to_string())
        .collect()
}
