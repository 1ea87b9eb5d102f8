//! Fuzz target `compression`: see `tests/fuzz_harness/compression.rs` for the input
//! layout and the invariants checked.
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::compression::compression(data));
