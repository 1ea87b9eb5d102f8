//! Node.js and the npm packages of tests/web, shared by the tests that run Node scripts
//! (tests/it/irc_framework.rs, tests/it/browser.rs).
//!
//! The packages are pinned in tests/web/package.json and locked in
//! tests/web/package-lock.json. [`ensure_node_modules`] runs `npm ci` there when
//! tests/web/node_modules lacks one of them or has another version.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::process::KillOnDrop;
use testkit::wait::poll_until;

/// Upper bound for `npm ci`.
const NPM_WAIT: Duration = Duration::from_secs(300);

/// tests/web: the Node scripts, the test page and the npm packages.
pub fn web_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web"))
}

/// `node`'s major version; fails clearly without Node.
pub fn node_major() -> u32 {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "Node.js is required for this test and `node --version` failed ({e}): \
                 install Debian's nodejs and npm packages (apt-get install nodejs npm)"
            )
        });
    assert!(out.status.success(), "`node --version` failed: {out:?}");
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    v.trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse `node --version` output {v:?}"))
}

/// The packages pinned in tests/web/package.json, with their versions.
fn pinned() -> Vec<(String, String)> {
    let path = web_dir().join("package.json");
    let pkg: Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    )
    .expect("tests/web/package.json is JSON");
    pkg["dependencies"]
        .as_object()
        .expect("tests/web/package.json has dependencies")
        .iter()
        .map(|(name, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{name}'s version in package.json is not a string"));
            (name.clone(), v.to_string())
        })
        .collect()
}

/// The version of `name` in tests/web/node_modules, if installed.
fn installed(name: &str) -> Option<String> {
    let p = web_dir()
        .join("node_modules")
        .join(name)
        .join("package.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Holds an exclusive `flock` on tests/web/node_modules.lock while it lives. `npm ci`
/// first deletes node_modules, so two test processes (make test runs the integration
/// suite on several servers at once) must not check or install at the same time: one
/// would delete what the other is installing. std's `File::lock` is newer than the
/// crate's rust-version, so this is libc's `flock`, released when the file closes.
struct WebDirLock {
    _file: std::fs::File,
}

impl WebDirLock {
    fn acquire() -> WebDirLock {
        use std::os::fd::AsRawFd;
        let path = web_dir().join("node_modules.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        // Blocks while another process installs; its `npm ci` is bounded by NPM_WAIT.
        loop {
            // SAFETY: flock on a descriptor this function owns for as long as the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return WebDirLock { _file: file };
            }
            let err = io::Error::last_os_error();
            assert!(
                err.kind() == io::ErrorKind::Interrupted,
                "cannot lock {}: {err}",
                path.display()
            );
        }
    }
}

/// Installs the pinned packages into tests/web/node_modules when one of them is
/// missing or at another version, checked and installed under a lock held by one
/// thread of one process at a time (a mutex within this process, [`WebDirLock`]
/// between processes), so `npm ci` runs once however many tests and suites start
/// together. `npm ci` installs exactly package-lock.json and never rewrites it.
pub fn ensure_node_modules() {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _web_dir = WebDirLock::acquire();
    let wanted = pinned();
    if wanted
        .iter()
        .all(|(n, v)| installed(n).as_deref() == Some(v.as_str()))
    {
        return;
    }
    let dir = web_dir();
    let log_path = std::env::temp_dir().join(format!("wstest-npm-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "npm is required to install this test's packages and could not be run ({e}): \
                 install Debian's npm package (apt-get install npm), or run `npm ci` in {}",
                dir.display()
            )
        });
    let mut guard = KillOnDrop(child);
    let deadline = Instant::now() + NPM_WAIT;
    let status = loop {
        if let Some(st) = guard.0.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            panic!(
                "`npm ci` in {} did not finish within {NPM_WAIT:?}; output:\n{}",
                dir.display(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(guard);
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        status.success(),
        "`npm ci` in {} failed ({status}):\n{output}",
        dir.display()
    );
    for (n, v) in wanted {
        assert_eq!(
            installed(&n),
            Some(v),
            "after `npm ci`, {n} is not at the pinned version"
        );
    }
}

/// A Node.js script of tests/web run as the test's child, speaking JSON lines: its
/// configuration as its one argument, commands on its stdin, events on its stdout (a
/// line that is not JSON arrives as `{"event": "unparsed", "line": ...}`).
///
/// [`NodeScript::finish`] (and drop) closes its stdin, which the scripts take as the
/// signal to end, and kills it by its PID if it has not exited within `quit_wait`.
pub struct NodeScript {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub lines: Receiver<Value>,
    quit_wait: Duration,
}

impl NodeScript {
    /// `node [node_args] tests/web/<script> <config>` in tests/web, its stderr into
    /// `stderr`.
    pub fn spawn(
        node_args: &[&str],
        script: &str,
        config: &Value,
        stderr: &Path,
        quit_wait: Duration,
    ) -> NodeScript {
        let mut child = Command::new("node")
            .args(node_args)
            .arg(web_dir().join(script))
            .arg(config.to_string())
            .current_dir(web_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start node: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "unparsed", "line": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        NodeScript {
            child,
            stdin,
            lines: rx,
            quit_wait,
        }
    }

    /// Writes one command line.
    pub fn send(&mut self, cmd: &Value) -> io::Result<()> {
        let stdin = self.stdin.as_mut().expect("the script's stdin is open");
        writeln!(stdin, "{cmd}").and_then(|_| stdin.flush())
    }

    /// Closes stdin, waits at most `quit_wait` for the exit, then kills by PID.
    pub fn finish(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + self.quit_wait;
        poll_until(deadline, || {
            (!matches!(self.child.try_wait(), Ok(None))).then_some(())
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeScript {
    fn drop(&mut self) {
        self.finish();
    }
}
