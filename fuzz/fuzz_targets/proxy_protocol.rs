//! Fuzz target `proxy_protocol`: see `tests/fuzz_harness/proxy_protocol.rs` for the input
//! layout and the invariants checked.
#![no_main]

#[path = "../../tests/fuzz_harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::proxy_protocol::proxy_protocol(data));
