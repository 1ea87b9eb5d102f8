//! What /proc tells about a process: memory, descriptors, CPU time, system calls.
//! A reader returns 0 (or nothing) once the process is gone.

use std::fs;
use std::time::{Duration, Instant};

/// How often [`Proc::settle`] samples the CPU time, at most.
const SETTLE_POLL: Duration = Duration::from_millis(250);

/// A process by its PID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc(pub i32);

impl Proc {
    /// This process.
    pub fn own() -> Proc {
        Proc(std::process::id() as i32)
    }

    fn file(&self, name: &str) -> String {
        fs::read_to_string(format!("/proc/{}/{name}", self.0)).unwrap_or_default()
    }

    /// A `kB` field of /proc/PID/status, e.g. `"VmRSS:"`.
    fn status_kib(&self, key: &str) -> u64 {
        self.file("status")
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Resident set size.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The peak resident set size (since the start or the last [`Proc::reset_hwm`]).
    pub fn hwm_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Resets VmHWM to the current RSS (Linux: "5" > clear_refs).
    pub fn reset_hwm(&self) {
        let _ = fs::write(format!("/proc/{}/clear_refs", self.0), "5");
    }

    /// Open file descriptors.
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.0))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Lines of /proc/PID/maps naming `needle` (e.g. a shared object still mapped).
    pub fn mappings_of(&self, needle: &str) -> usize {
        self.file("maps")
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// (utime, stime) in seconds.
    pub fn user_system_seconds(&self) -> (f64, f64) {
        let stat = self.file("stat");
        // The command (field 2) is in parentheses and may hold spaces: count from the
        // last ')'. After it, field 3 (state) is f[0]; utime is field 14, stime 15.
        let Some(end) = stat.rfind(')') else {
            return (0.0, 0.0);
        };
        let f: Vec<&str> = stat[end + 1..].split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let tck = clk_tck();
        (ticks(11) as f64 / tck, ticks(12) as f64 / tck)
    }

    /// utime + stime in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let (user, system) = self.user_system_seconds();
        user + system
    }

    /// Waits (at most `limit`) until the process has used no CPU for `quiet`, so that
    /// work left over from one step (closing connections, culling users) is not
    /// counted in the next.
    pub fn settle(&self, quiet: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (mut last, mut since) = (self.cpu_seconds(), Instant::now());
        while Instant::now() < deadline && since.elapsed() < quiet {
            std::thread::sleep(quiet.min(SETTLE_POLL));
            let now = self.cpu_seconds();
            if now != last {
                (last, since) = (now, Instant::now());
            }
        }
    }

    /// (syscr, syscw) from /proc/PID/io: read- and write-family system calls so far.
    pub fn syscalls(&self) -> (u64, u64) {
        let io = self.file("io");
        let field = |key: &str| {
            io.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        (field("syscr:"), field("syscw:"))
    }
}

/// Clock ticks per second (the unit of /proc/PID/stat's times).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
