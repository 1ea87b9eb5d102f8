//! Waiting on a condition of a file or a process, and reading what a process wrote.
//!
//! Nothing here sleeps in place of an event: [`poll_until`] re-checks a condition (a
//! line in a file, a process state) until it holds or a deadline passes; the pause
//! between checks only paces the polling.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Calls `f` until it returns `Some` (then that) or `deadline` passes (then `None`).
pub fn poll_until<T>(deadline: Instant, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A file's text so far, lossily decoded; empty if it cannot be read.
pub fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
