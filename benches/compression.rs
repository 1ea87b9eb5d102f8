//! permessage-deflate on a generated channel burst: bytes on the wire with and without
//! compression, and the time to frame each line, for the defaults and a few settings.
//! Prints figures; asserts nothing (`cargo bench --bench compression`).
//!
//! With `--once`, only the uncompressed pass and the defaults run, once each, in
//! functions of their own for counting instructions: `valgrind --tool=callgrind
//! --toggle-collect='*once_uncompressed*'` (or `'*once_defaults*'`) on the bench's
//! binary counts one pass; divided by the burst's lines, per line
//! (docs/PERFORMANCE.md).
//!
//! The burst is `testkit::chat::burst` (the same text loadbench's realistic fanout
//! sends): one receiver's view of a busy channel, every line in order.

#![allow(
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: clippy's default set; a broken expectation fails the run loudly"
)]

use std::hint::black_box;
use std::time::Instant;

use inspircd_websocket::compression::{negotiate, Compressor, Settings};
use inspircd_websocket::irc::{LineFramer, MessageMode};
use testkit::chat::{burst, NICKS};

/// Lines in the burst.
const LINES: usize = 20_000;

/// Frames the burst through one connection; returns (bytes on the wire, ns per line).
fn run(lines: &[Vec<u8>], settings: Option<&(Settings, &[u8])>) -> (usize, f64) {
    let mut framer = LineFramer::default();
    let mut compressor = settings.map(|(s, offer)| {
        let agreed = negotiate([*offer].into_iter(), s).expect("offer accepted");
        Compressor::new(s, &agreed, std::rc::Rc::default())
    });
    let mut out = Vec::with_capacity(1 << 20);
    let mut wire = 0;
    let start = Instant::now();
    for line in lines {
        framer.frame_lines_with(
            black_box(line),
            MessageMode::Text,
            compressor.as_mut(),
            &mut out,
        );
        wire += out.len();
        out.clear();
    }
    let ns = start.elapsed().as_nanos() as f64 / lines.len() as f64;
    (wire, ns)
}

/// The uncompressed pass of `--once` (a function of its own for callgrind).
#[inline(never)]
fn once_uncompressed(lines: &[Vec<u8>]) -> usize {
    run(lines, None).0
}

/// The defaults' pass of `--once`.
#[inline(never)]
fn once_defaults(lines: &[Vec<u8>], settings: &(Settings, &[u8])) -> usize {
    run(lines, Some(settings)).0
}

fn main() {
    let lines = burst(LINES);
    if std::env::args().any(|a| a == "--once") {
        let default = Settings {
            enabled: true,
            ..Settings::default()
        };
        let browser: &[u8] = b"permessage-deflate; client_max_window_bits";
        let plain = once_uncompressed(&lines);
        let compressed = once_defaults(&lines, &(default, browser));
        println!(
            "{} lines: uncompressed {plain} B, defaults {compressed} B ({:.1}%)",
            lines.len(),
            100.0 * compressed as f64 / plain as f64
        );
        return;
    }
    let raw: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "burst: {} lines, {} bytes of IRC ({:.1} per line); {NICKS} nicks, 1 channel",
        lines.len(),
        raw,
        raw as f64 / lines.len() as f64
    );
    let rounds = 5;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, _) = run(&lines, None);
    let plain_ns = median((0..rounds).map(|_| run(&lines, None).1).collect());
    println!(
        "\n{:<44} {:>10} {:>8} {:>9}",
        "setting", "wire B", "of plain", "ns/line"
    );
    println!(
        "{:<44} {:>10} {:>8} {:>9.0}",
        "uncompressed", plain, "100%", plain_ns
    );
    let default = Settings {
        enabled: true,
        ..Settings::default()
    };
    let browser: &[u8] = b"permessage-deflate; client_max_window_bits";
    let no_takeover: &[u8] = b"permessage-deflate; server_no_context_takeover";
    let setting = |window_bits, hash_bits| Settings {
        window_bits,
        hash_bits,
        ..default
    };
    let cases = [
        ("defaults (window 12, hash 10)", (default, browser)),
        ("window 9, hash 8", (setting(9, 8), browser)),
        ("window 11, hash 10", (setting(11, 10), browser)),
        ("window 12, hash 12", (setting(12, 12), browser)),
        ("window 13, hash 11", (setting(13, 11), browser)),
        ("window 15, hash 14", (setting(15, 14), browser)),
        (
            "defaults, server_no_context_takeover",
            (default, no_takeover),
        ),
    ];
    for (name, settings) in cases {
        let (wire, _) = run(&lines, Some(&settings));
        let ns = median(
            (0..rounds)
                .map(|_| run(&lines, Some(&settings)).1)
                .collect(),
        );
        println!(
            "{:<44} {:>10} {:>7.1}% {:>9.0}",
            name,
            wire,
            100.0 * wire as f64 / plain as f64,
            ns
        );
    }
    println!("\nns/line: median of {rounds} passes over the burst through one connection's framer (and compressor), this machine.");
}
