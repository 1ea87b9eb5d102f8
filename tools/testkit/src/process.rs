//! Child processes stopped by their PID, exit statuses, the open-file limit.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Sends SIGTERM to the child's PID and waits at most `grace` for it to exit; then
/// SIGKILL (to the same PID) and reaps it. Returns its exit status.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    signal_then_kill(child, libc::SIGTERM, grace)
}

/// Sends `signal` to the child's PID and waits at most `grace` for it to exit; then
/// SIGKILL (to the same PID) and reaps it. Returns its exit status.
pub fn signal_then_kill(child: &mut Child, signal: i32, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(child)
}

/// SIGKILL to the child's PID (unless it has exited), then reaps it.
pub fn kill(child: &mut Child) -> Option<ExitStatus> {
    let _ = child.kill();
    child.wait().ok()
}

/// A child killed by its PID and reaped when this is dropped (no-op once it has
/// exited and been reaped).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// "exit code N", "killed by signal N", or "did not exit".
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

/// True when the status means a crash: death by a signal other than the SIGTERM or
/// SIGKILL that [`terminate`] sends.
pub fn crashed(st: Option<ExitStatus>) -> bool {
    match st.and_then(|s| s.signal()) {
        Some(s) => s != libc::SIGTERM && s != libc::SIGKILL,
        None => false,
    }
}

/// Raises this process's RLIMIT_NOFILE (soft and, as root, hard) to at least `want`;
/// children inherit it. Without the right to raise the hard limit, the soft one goes
/// up to the hard one. Returns the soft limit now in force.
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
        let both = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &both) != 0 {
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
