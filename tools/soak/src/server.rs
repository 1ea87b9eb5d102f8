//! The server under test: `/usr/sbin/inspircd --nofork --runasroot` with a private
//! module directory (links to the stock modules, `m_websocket.so` pointing at the module
//! under test) and a generated configuration, on free 127.0.0.1 ports; optionally under
//! valgrind. Stopped by its PID only.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const INSPIRCD: &str = "/usr/sbin/inspircd";
pub const STOCK_MODULE_DIR: &str = "/usr/lib/inspircd/modules";
pub const SERVER_NAME: &str = "soak.example";
/// The origin every client of this tool sends.
pub const ORIGIN: &str = "https://soak.example";
pub const OPER_NAME: &str = "admin";
pub const OPER_PASS: &str = "secret";

/// What goes into the generated configuration.
#[derive(Clone, Debug)]
pub struct Conf {
    /// `<websocket ...>` attributes; None for no tag.
    pub websocket: Option<String>,
    /// One `<wsorigin allow>` each.
    pub origins: Vec<String>,
    /// `<log level>`.
    pub log_level: &'static str,
    /// `<connect timeout>`: seconds an unregistered connection may live.
    pub reg_timeout: u32,
    /// Modules loaded before websocket (e.g. `sha1` for the stock module).
    pub extra_modules: Vec<String>,
}

impl Conf {
    pub fn new() -> Conf {
        Conf {
            websocket: None,
            origins: vec![ORIGIN.to_string()],
            log_level: "default",
            reg_timeout: 120,
            extra_modules: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Valgrind {
    pub log: PathBuf,
    pub error_exitcode: i32,
}

pub struct Server {
    child: Child,
    pub pid: i32,
    pub dir: PathBuf,
    pub irc_port: u16,
    pub ws_port: u16,
    pub config_path: PathBuf,
    pub keep: bool,
    pub exit: Option<ExitStatus>,
}

fn free_ports() -> io::Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

pub fn render_config(conf: &Conf, dir: &Path, irc: u16, ws: u16) -> String {
    let d = dir.display();
    let mut s = String::new();
    // localmax/globalmax/limit: every client comes from 127.0.0.1, so the per-IP clone
    // limits must exceed the connection count. softlimit: the server's connection cap
    // (defaults to its RLIMIT_NOFILE). somaxconn: the accept backlog during the ramp.
    // whowas off: InspIRCd's history of quit nicks (10240 by default) would grow the RSS
    // with every unique nick and hide what the module does.
    // timeout: registration timeout (also reaps unregistered sockets whose FIN InspIRCd
    // missed, see the README).
    // commandrate/threshold/fakelag: no flood penalties for the chatting clients.
    writeln!(
        s,
        r#"<path configdir="{d}" datadir="{d}" logdir="{d}" moduledir="{d}/modules" runtimedir="{d}">
<server name="{SERVER_NAME}" description="soak" network="Soak">
<admin name="Admin" nick="admin" email="admin@soak.example">
<pid file="{d}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="{level}" target="{d}/ircd.log">
<bind address="127.0.0.1" port="{irc}" type="clients">
<bind address="127.0.0.1" port="{ws}" type="clients" hook="websocket">
<connect name="main" allow="*" resolvehostnames="no" useident="no" timeout="{reg_timeout}" pingfreq="600"
         threshold="1000000" commandrate="1000000000" fakelag="no" recvq="1M" softsendq="1M"
         hardsendq="64M" localmax="100000" globalmax="100000" limit="100000" maxconnwarn="no" maxchans="50">
<class name="All" commands="*" privs="*" usermodes="*" chanmodes="*" snomasks="*">
<type name="Admin" classes="All">
<oper name="{OPER_NAME}" password="{OPER_PASS}" host="*@*" type="Admin">
<channels users="100" opers="100">
<whowas groupsize="0" maxgroups="0">
<performance netbuffersize="65534" somaxconn="4096" softlimit="60000">"#,
        level = conf.log_level,
        reg_timeout = conf.reg_timeout,
    )
    .unwrap();
    for m in &conf.extra_modules {
        writeln!(s, "<module name=\"{m}\">").unwrap();
    }
    s.push_str("<module name=\"websocket\">\n");
    if let Some(ws) = &conf.websocket {
        writeln!(s, "<websocket {ws}>").unwrap();
    }
    for o in &conf.origins {
        writeln!(s, "<wsorigin allow=\"{o}\">").unwrap();
    }
    s
}

pub fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl Server {
    /// Starts a server and waits (at most `startup`) for "InspIRCd is now running".
    pub fn start(
        tag: &str,
        module: &Path,
        conf: &Conf,
        valgrind: Option<&Valgrind>,
        startup: Duration,
        keep: bool,
    ) -> Result<Server, String> {
        let dir = std::env::temp_dir().join(format!("soak-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mdir = dir.join("modules");
        fs::create_dir_all(&mdir).map_err(|e| format!("{}: {e}", mdir.display()))?;
        for e in fs::read_dir(STOCK_MODULE_DIR).map_err(|e| format!("{STOCK_MODULE_DIR}: {e}"))? {
            let e = e.map_err(|e| e.to_string())?;
            if e.file_name() == "m_websocket.so" {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), mdir.join(e.file_name()))
                .map_err(|e| e.to_string())?;
        }
        std::os::unix::fs::symlink(module, mdir.join("m_websocket.so"))
            .map_err(|e| e.to_string())?;

        let config_path = dir.join("inspircd.conf");
        for _attempt in 0..5 {
            let (irc, ws) = free_ports().map_err(|e| e.to_string())?;
            fs::write(&config_path, render_config(conf, &dir, irc, ws))
                .map_err(|e| e.to_string())?;
            let out = fs::File::create(dir.join("stdout.txt")).map_err(|e| e.to_string())?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = match valgrind {
                None => Command::new(INSPIRCD),
                Some(v) => {
                    let mut c = Command::new("valgrind");
                    c.arg("--tool=memcheck")
                        .arg("--leak-check=full")
                        .arg("--show-leak-kinds=definite,possible")
                        .arg("--errors-for-leak-kinds=definite")
                        .arg("--track-origins=no")
                        // Keep the symbols of unloaded modules (UNLOADMODULE, and every
                        // module at exit) so that stacks through them are named.
                        .arg("--keep-debuginfo=yes")
                        .arg("--num-callers=40")
                        .arg(format!("--error-exitcode={}", v.error_exitcode))
                        .arg(format!("--log-file={}", v.log.display()))
                        .arg(INSPIRCD);
                    c
                }
            };
            cmd.arg("--nofork")
                .arg("--runasroot")
                .arg(format!("--config={}", config_path.display()))
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let mut child = cmd.spawn().map_err(|e| format!("spawn {INSPIRCD}: {e}"))?;
            let pid = child.id() as i32;
            let deadline = Instant::now() + startup;
            loop {
                let text = read_lossy(&dir.join("stdout.txt"));
                if text.contains("InspIRCd is now running") {
                    return Ok(Server {
                        child,
                        pid,
                        dir,
                        irc_port: irc,
                        ws_port: ws,
                        config_path,
                        keep,
                        exit: None,
                    });
                }
                let exited = matches!(child.try_wait(), Ok(Some(_)));
                if text.contains("failed to bind") || exited || Instant::now() > deadline {
                    terminate(&mut child, pid, Duration::from_secs(10));
                    if text.contains("failed to bind") {
                        break; // another port
                    }
                    return Err(format!(
                        "inspircd did not start within {startup:?}:\n{text}\n(files in {})",
                        dir.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err("inspircd: could not bind free ports in 5 attempts".into())
    }

    pub fn rewrite_config(&self, conf: &Conf) {
        fs::write(
            &self.config_path,
            render_config(conf, &self.dir, self.irc_port, self.ws_port),
        )
        .expect("rewrite config");
    }

    fn proc_file(&self, name: &str) -> String {
        fs::read_to_string(format!("/proc/{}/{name}", self.pid)).unwrap_or_default()
    }

    pub fn status_kib(&self, key: &str) -> u64 {
        self.proc_file("status")
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    pub fn hwm_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Open file descriptors of the server.
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Lines of /proc/PID/maps naming `needle`.
    pub fn mappings_of(&self, needle: &str) -> usize {
        self.proc_file("maps")
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// utime + stime in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&self.proc_file("stat"))
    }

    pub fn alive(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(st)) => {
                self.exit = Some(st);
                false
            }
            Err(_) => false,
        }
    }

    pub fn output(&self) -> String {
        read_lossy(&self.dir.join("stdout.txt"))
    }

    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("ircd.log"))
    }

    /// Sends SIGTERM to the server's PID and waits at most `limit` for the exit; then
    /// SIGKILL (to the same PID). Returns the exit status.
    pub fn stop(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(st) = self.exit {
            return Some(st);
        }
        let st = terminate(&mut self.child, self.pid, limit);
        self.exit = st;
        st
    }

    /// Waits at most `limit` for the server to exit on its own (after DIE).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !self.alive() {
                return self.exit;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

pub fn cpu_seconds_of(stat: &str) -> f64 {
    let Some(end) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[end + 1..].split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = if tck > 0 { tck as f64 } else { 100.0 };
    (ticks(11) + ticks(12)) as f64 / tck
}

/// This process's CPU seconds.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds_of(&fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

pub fn describe_exit(st: Option<ExitStatus>) -> String {
    match st {
        None => "did not exit".into(),
        Some(st) => match (st.code(), st.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (_, Some(s)) => format!(
                "killed by signal {s}{}",
                if st.core_dumped() {
                    " (core dumped)"
                } else {
                    ""
                }
            ),
            _ => format!("{st}"),
        },
    }
}

/// True when the status means a crash (death by a signal other than our SIGTERM/SIGKILL).
pub fn crashed(st: Option<ExitStatus>) -> bool {
    match st.and_then(|s| s.signal()) {
        Some(s) => s != libc::SIGTERM && s != libc::SIGKILL,
        None => false,
    }
}

fn terminate(child: &mut Child, pid: i32, limit: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL to the same PID
    child.wait().ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() {
            terminate(&mut self.child, self.pid, Duration::from_secs(10));
        }
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Raises this process's RLIMIT_NOFILE (soft and, as root, hard) to at least `want`;
/// the server inherits it. Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur >= want {
            return lim.rlim_cur;
        }
        let try_both = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &try_both) != 0 {
            // Not root: up to the hard limit.
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
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
