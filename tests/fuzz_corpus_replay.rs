//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through the same
//! harness functions the cargo-fuzz targets run (`tests/fuzz_harness/mod.rs`), so the
//! seeds and every reproducer saved there are checked by `cargo test` on stable Rust.

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

mod fuzz_harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no corpus files", dir.display());
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} corpus files fail: {failed:#?}",
        failed.len(),
        files.len()
    );
}

#[test]
fn handshake_corpus() {
    replay("handshake", fuzz_harness::handshake);
}

#[test]
fn frame_header_corpus() {
    replay("frame_header", fuzz_harness::frame_header);
}

#[test]
fn session_corpus() {
    replay("session", fuzz_harness::session);
}

#[test]
fn messages_corpus() {
    replay("messages", fuzz_harness::messages);
}

#[test]
fn compression_corpus() {
    replay("compression", fuzz_harness::compression::compression);
}

#[test]
fn proxy_protocol_corpus() {
    replay(
        "proxy_protocol",
        fuzz_harness::proxy_protocol::proxy_protocol,
    );
}
