//! A real InspIRCd per run: a private temp dir with a private module directory (links
//! to the installation's stock modules, `m_websocket.so` the module under test), a
//! generated configuration on free 127.0.0.1 ports, the server started as a child in
//! the foreground and waited for ("now running"), stopped by its PID on drop.
//!
//! [`Install`] names the server binary, the stock module directory and the
//! configuration [`Dialect`]; [`Launcher`] how a run starts and stops it (a wrapper
//! such as valgrind, the startup deadline, SIGKILL or SIGTERM at the end, whether the
//! directory is kept); [`Conf`] what the configuration says.

mod config;
mod dialect;

pub use config::{
    connect_tag, Conf, Link, WsModule, DEFAULT_ORIGIN, LINK_PASSWORD, OPER_NAME, OPER_PASS,
};
pub use dialect::Dialect;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use config::{render, Ports};

use crate::ports::free_ports;
use crate::process::{kill, terminate};
use crate::procfs::Proc;
use crate::wait::{poll_until, read_lossy, tail};

/// An InspIRCd installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    /// The server binary.
    pub binary: PathBuf,
    /// What the binary is run through, in front of it on the command line: empty to run
    /// it directly; for Debian 13's server on a Debian 12 host, Debian 13's own dynamic
    /// loader and library path (a wrapper script would hide the server from valgrind).
    pub loader: Vec<String>,
    /// The stock modules (`m_*.so`).
    pub modules: PathBuf,
    pub dialect: Dialect,
    /// Environment variables the server runs with, beside the inherited ones.
    pub env: Vec<(String, String)>,
}

/// coreutils' `stdbuf` library (Debian's path): preloaded, it makes a program's stdout
/// line-buffered, as `stdbuf -oL` does, without a program in front of the server.
const LIBSTDBUF: &str = "/usr/libexec/coreutils/libstdbuf.so";

impl Default for Install {
    /// Debian 12's InspIRCd 3.15.
    fn default() -> Install {
        Install {
            binary: "/usr/sbin/inspircd".into(),
            loader: Vec::new(),
            modules: "/usr/lib/inspircd/modules".into(),
            dialect: Dialect::V3,
            env: Vec::new(),
        }
    }
}

/// Where [`Install::debian13`] looks when `INSPIRCD4_DIR` is not set: what
/// `tools/inspircd4/fetch.sh` (run by `make INSPIRCD=4`) unpacks.
pub const DEFAULT_INSPIRCD4_DIR: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/inspircd4");

impl Install {
    /// Debian 13's InspIRCd 4.7 unpacked in `dir` by `tools/inspircd4/fetch.sh`, run
    /// with Debian 13's own loader and libraries (as its `dir/inspircd` wrapper does).
    pub fn debian13(dir: &Path) -> Install {
        let libdir = dir.join("root/usr/lib/x86_64-linux-gnu");
        Install {
            binary: dir.join("root/usr/sbin/inspircd"),
            loader: vec![
                libdir
                    .join("ld-linux-x86-64.so.2")
                    .to_string_lossy()
                    .into_owned(),
                "--library-path".into(),
                libdir.to_string_lossy().into_owned(),
            ],
            modules: dir.join("root/usr/lib/inspircd/modules"),
            dialect: Dialect::V4,
            env: Vec::new(),
        }
    }

    /// InspIRCd built from source and installed under `prefix` (`./configure
    /// --prefix=...`: `bin/inspircd`, `modules/`), as `tools/inspircd-source/source.sh
    /// server` does; the dialect from the major version the binary reports. Its stdout
    /// is made line-buffered ([`LIBSTDBUF`]): InspIRCd 4.0 to 4.6 print "now running"
    /// into a buffer that a file, unlike a terminal, gets only at exit (4.7 flushes it).
    pub fn source_built(prefix: &Path) -> Result<Install, String> {
        let binary = prefix.join("bin/inspircd");
        let out = Command::new(&binary)
            .arg("--version")
            .output()
            .map_err(|e| format!("InspIRCd not found at {}: {e}", binary.display()))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let dialect = Dialect::from_version(&version).ok_or_else(|| {
            format!(
                "{} --version said {version:?}: not an InspIRCd this kit speaks to (3 or 4)",
                binary.display()
            )
        })?;
        if !Path::new(LIBSTDBUF).is_file() {
            return Err(format!(
                "{LIBSTDBUF} not found (coreutils): a source-built InspIRCd's output is read through it"
            ));
        }
        Ok(Install {
            binary,
            loader: Vec::new(),
            modules: prefix.join("modules"),
            dialect,
            env: vec![
                ("LD_PRELOAD".into(), LIBSTDBUF.into()),
                ("_STDBUF_O".into(), "L".into()),
            ],
        })
    }

    /// The server `INSPIRCD` names: `3` (or unset) for Debian 12's InspIRCd 3, `4` for
    /// Debian 13's InspIRCd 4 in `INSPIRCD4_DIR` (default [`DEFAULT_INSPIRCD4_DIR`]),
    /// `source` for one built from source and installed under `INSPIRCD_PREFIX`
    /// ([`Install::source_built`]).
    pub fn from_env() -> Result<Install, String> {
        match std::env::var("INSPIRCD").as_deref() {
            Err(_) | Ok("") | Ok("3") => Ok(Install::default()),
            Ok("4") => {
                let dir = std::env::var_os("INSPIRCD4_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_INSPIRCD4_DIR));
                let install = Install::debian13(&dir);
                if !install.binary.exists() {
                    return Err(format!(
                        "InspIRCd 4 not found at {}: run `make INSPIRCD=4` (tools/inspircd4/fetch.sh) first",
                        install.binary.display()
                    ));
                }
                Ok(install)
            }
            Ok("source") => {
                let prefix = std::env::var_os("INSPIRCD_PREFIX").ok_or(
                    "INSPIRCD=source needs INSPIRCD_PREFIX, where InspIRCd is installed \
                     (tools/inspircd-source/source.sh server SOURCE prints it)",
                )?;
                Install::source_built(Path::new(&prefix))
            }
            Ok(other) => Err(format!(
                "INSPIRCD={other}: say INSPIRCD=3, INSPIRCD=4 or INSPIRCD=source"
            )),
        }
    }

    /// The command line that runs the server, without its arguments: the loader, if
    /// any, then the binary.
    pub fn command_line(&self) -> Vec<String> {
        let mut line = self.loader.clone();
        line.push(self.binary.to_string_lossy().into_owned());
        line
    }

    /// The stock `m_websocket.so`.
    pub fn stock_websocket(&self) -> PathBuf {
        self.modules.join("m_websocket.so")
    }
}

/// How the server of a run is stopped when its [`Server`] is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGKILL at once.
    Kill,
    /// SIGTERM, then SIGKILL after the grace period.
    Term(Duration),
}

impl Stop {
    fn apply(self, child: &mut Child) -> Option<ExitStatus> {
        match self {
            Stop::Kill => kill(child),
            Stop::Term(grace) => terminate(child, grace),
        }
    }
}

/// How runs start and end.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub install: Install,
    /// The temp dir's name prefix.
    pub prefix: String,
    /// How long the server may take to say it is running.
    pub startup: Duration,
    pub stop: Stop,
    /// A program (and its arguments) the server runs under, e.g. valgrind; empty for
    /// none. It must exec the server in place, so that the child's PID is the server's.
    /// `{dir}` in an argument stands for the run's directory.
    pub wrapper: Vec<String>,
    /// Keep the directory (configuration, logs) after the run.
    pub keep: bool,
}

/// The configuration file's name in the run's directory.
const CONFIG_FILE: &str = "inspircd.conf";
/// Tries with other ports when a listener's port was taken meanwhile.
const BIND_ATTEMPTS: usize = 5;

enum Startup {
    Running,
    BindFailed,
    Exited(ExitStatus),
}

impl Launcher {
    /// 10 s to start, SIGKILL at the end, no wrapper, the directory removed.
    pub fn new(install: Install) -> Launcher {
        Launcher {
            install,
            prefix: "inspircd-".into(),
            startup: Duration::from_secs(10),
            stop: Stop::Kill,
            wrapper: Vec::new(),
            keep: false,
        }
    }
    pub fn prefix(mut self, prefix: &str) -> Launcher {
        self.prefix = prefix.into();
        self
    }
    pub fn startup(mut self, limit: Duration) -> Launcher {
        self.startup = limit;
        self
    }
    pub fn stop(mut self, stop: Stop) -> Launcher {
        self.stop = stop;
        self
    }
    pub fn wrapper<S: Into<String>>(
        mut self,
        program_and_args: impl IntoIterator<Item = S>,
    ) -> Launcher {
        self.wrapper = program_and_args.into_iter().map(Into::into).collect();
        self
    }
    pub fn keep(mut self, keep: bool) -> Launcher {
        self.keep = keep;
        self
    }

    /// The run's directory with its module directory (and TLS files if wanted).
    fn prepare(&self, conf: &Conf) -> Result<tempfile::TempDir, String> {
        let dir = tempfile::Builder::new()
            .prefix(&self.prefix)
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        make_module_dir(&self.install, dir.path(), conf.websocket_module.as_ref())?;
        if conf.tls {
            make_tls_files(dir.path())?;
        }
        Ok(dir)
    }

    /// Writes the configuration for `conf` on free ports into `dir` and starts the
    /// server on it.
    fn spawn(&self, dir: &Path, conf: &Conf) -> Result<(Child, Ports), String> {
        let [irc, ws, wss, link] = free_ports::<4>();
        let ports = Ports { irc, ws, wss, link };
        let config = dir.join(CONFIG_FILE);
        fs::write(&config, render(self.install.dialect, conf, dir, ports))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        let out = fs::File::create(dir.join("stdout.txt")).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let dir_text = dir.to_string_lossy();
        let wrapper = self.wrapper.iter().map(|a| a.replace("{dir}", &dir_text));
        let line: Vec<String> = wrapper.chain(self.install.command_line()).collect();
        let (program, args) = line.split_first().ok_or("no server binary to run")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(self.install.env.iter().map(|(k, v)| (k, v)))
            .args(self.install.dialect.args(&config))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map(|child| (child, ports))
            .map_err(|e| format!("spawn {}: {e}", cmd.get_program().to_string_lossy()))
    }

    fn end(&self, child: &mut Child) {
        self.stop.apply(child);
    }

    /// Starts a server and waits until it reports that it is running with every
    /// listener bound (retrying with other ports when one was taken).
    pub fn start(&self, conf: Conf) -> Result<Server, String> {
        let dir = self.prepare(&conf)?;
        let dialect = self.install.dialect;
        let stdout = dir.path().join("stdout.txt");
        for _attempt in 0..BIND_ATTEMPTS {
            let (mut child, ports) = self.spawn(dir.path(), &conf)?;
            let deadline = Instant::now() + self.startup;
            let state = poll_until(deadline, || {
                let out = read_lossy(&stdout);
                if out.contains(dialect.bind_failure()) {
                    return Some(Startup::BindFailed);
                }
                if out.contains(dialect.running_banner()) {
                    return Some(Startup::Running);
                }
                if let Ok(Some(st)) = child.try_wait() {
                    return Some(Startup::Exited(st));
                }
                None
            });
            let failure = match state {
                Some(Startup::Running) => {
                    return Ok(Server {
                        pid: child.id() as i32,
                        child,
                        exit: None,
                        conf,
                        irc_port: ports.irc,
                        ws_port: ports.ws,
                        wss_port: ports.wss,
                        link_port: ports.link,
                        config_path: dir.path().join(CONFIG_FILE),
                        dir,
                        dialect,
                        stop: self.stop,
                        keep: self.keep,
                    });
                }
                Some(Startup::BindFailed) => {
                    self.end(&mut child);
                    continue;
                }
                Some(Startup::Exited(st)) => format!("inspircd exited during startup ({st})"),
                None => {
                    self.end(&mut child);
                    format!(
                        "inspircd did not report 'now running' within {:?}",
                        self.startup
                    )
                }
            };
            return Err(format!(
                "{failure}; output:\n{}\nlog tail:\n{}{}",
                read_lossy(&stdout),
                tail(&read_lossy(&dir.path().join("ircd.log")), 30),
                self.kept(dir)
            ));
        }
        Err(format!(
            "could not start inspircd: listeners failed to bind {BIND_ATTEMPTS} times{}",
            self.kept(dir)
        ))
    }

    /// With `keep`, keeps the directory and says where it is.
    fn kept(&self, mut dir: tempfile::TempDir) -> String {
        if !self.keep {
            return String::new();
        }
        dir.disable_cleanup(true);
        format!("\n(files in {})", dir.path().display())
    }

    /// Runs a server that must refuse to start: waits for it to exit unsuccessfully and
    /// returns its console output. An `Err` says what happened instead.
    pub fn start_expect_failure(&self, conf: Conf) -> Result<String, String> {
        let dir = self.prepare(&conf)?;
        let dialect = self.install.dialect;
        let (mut child, _) = self.spawn(dir.path(), &conf)?;
        let stdout = dir.path().join("stdout.txt");
        let deadline = Instant::now() + self.startup;
        let st = poll_until(deadline, || {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(Ok(st));
            }
            if read_lossy(&stdout).contains(dialect.running_banner()) {
                return Some(Err(()));
            }
            None
        });
        let out = read_lossy(&stdout);
        match st {
            Some(Ok(st)) if !st.success() => Ok(out),
            Some(Ok(_)) => Err(format!(
                "inspircd exited successfully but should have refused the config; output:\n{out}"
            )),
            Some(Err(())) => {
                self.end(&mut child);
                Err(format!(
                    "inspircd started although the config must be refused; output:\n{out}"
                ))
            }
            None => {
                self.end(&mut child);
                Err(format!(
                    "inspircd neither exited nor started within {:?}; output:\n{out}",
                    self.startup
                ))
            }
        }
    }
}

/// A private module directory: a link to each stock module, `m_websocket.so` the one
/// under test (the stock one unless another is given).
fn make_module_dir(install: &Install, dir: &Path, module: Option<&WsModule>) -> Result<(), String> {
    let mdir = dir.join("modules");
    fs::create_dir_all(&mdir).map_err(|e| format!("{}: {e}", mdir.display()))?;
    let entries = fs::read_dir(&install.modules)
        .map_err(|e| format!("{}: {e}", install.modules.display()))?;
    for e in entries {
        let e = e.map_err(|e| e.to_string())?;
        if e.file_name() == "m_websocket.so" {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), mdir.join(e.file_name()))
            .map_err(|e| e.to_string())?;
    }
    let websocket = match module {
        Some(WsModule::File(p)) => p.clone(),
        Some(WsModule::Stock) | None => install.stock_websocket(),
    };
    std::os::unix::fs::symlink(&websocket, mdir.join("m_websocket.so"))
        .map_err(|e| format!("link {}: {e}", websocket.display()))
}

/// A self-signed certificate for localhost and 127.0.0.1: `dir/cert.pem`, `dir/key.pem`.
fn make_tls_files(dir: &Path) -> Result<(), String> {
    let out = Command::new("/usr/bin/openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .map_err(|e| format!("run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A running server; stopped by its PID (as its [`Launcher`] says) when dropped.
pub struct Server {
    /// What the configuration file says now.
    pub conf: Conf,
    pub pid: i32,
    pub irc_port: u16,
    /// The WebSocket port (bound when a websocket module is loaded).
    pub ws_port: u16,
    /// The TLS WebSocket port (bound with [`Conf::tls`]).
    pub wss_port: u16,
    /// The `type="servers"` port (bound when the server is linked).
    pub link_port: u16,
    pub config_path: PathBuf,
    /// Keep the directory after the run.
    pub keep: bool,
    dir: tempfile::TempDir,
    child: Child,
    exit: Option<ExitStatus>,
    dialect: Dialect,
    stop: Stop,
}

impl Server {
    /// The run's directory (configuration, console output, log, module directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Console output (stdout and stderr) so far.
    pub fn output(&self) -> String {
        read_lossy(&self.dir().join("stdout.txt"))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir().join("ircd.log"))
    }

    /// The log lines that satisfy `pred`.
    pub fn log_lines(&self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| pred(l))
            .map(str::to_string)
            .collect()
    }

    /// Waits at most `limit` for a log line that satisfies `pred`; returns it, or says
    /// what was awaited (`what`) with the log's tail.
    pub fn wait_log(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        poll_until(deadline, || {
            self.log().lines().find(|l| pred(l)).map(str::to_string)
        })
        .ok_or_else(|| {
            format!(
                "timed out waiting for a log line: {what}\nlog tail:\n{}",
                tail(&self.log(), 40)
            )
        })
    }

    /// Rewrites the configuration file (same ports) for a REHASH.
    pub fn rewrite_config(&mut self, conf: Conf) {
        let ports = Ports {
            irc: self.irc_port,
            ws: self.ws_port,
            wss: self.wss_port,
            link: self.link_port,
        };
        fs::write(
            &self.config_path,
            render(self.dialect, &conf, self.dir(), ports),
        )
        .expect("rewrite the configuration");
        self.conf = conf;
    }

    /// The process, for /proc readings.
    pub fn proc(&self) -> Proc {
        Proc(self.pid)
    }

    /// True while the process runs (its exit status is kept once it has ended).
    pub fn is_alive(&mut self) -> bool {
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

    /// The exit status, once the process has ended and been seen to.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// SIGTERM, then SIGKILL after `grace`; the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = terminate(&mut self.child, grace);
        }
        self.exit
    }

    /// Waits at most `limit` for the server to exit on its own (after DIE, say).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        poll_until(deadline, || (!self.is_alive()).then_some(()))?;
        self.exit
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.stop.apply(&mut self.child);
        }
        self.dir.disable_cleanup(self.keep);
    }
}
