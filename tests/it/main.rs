//! The integration tests against the real InspIRCd, one binary: a module per area, the
//! harness in [`common`] (the server per test from the test kit, plain IRC, tungstenite
//! and raw WebSocket clients, nginx and HAProxy, Node.js).
//!
//! Where a behaviour is shared with the stock module, [`both_modules!`] runs a test's
//! body against each: `proxy::x_real_ip_preferred::ours` and `::stock`.

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

/// Two `#[test]`s for one body that takes a [`common::Module`]: `both_modules!(name)`
/// runs `fn name(m: Module)`, and `both_modules!(name, |m| expr)` an expression of `m`,
/// as `name::ours` and `name::stock`.
macro_rules! both_modules {
    ($name:ident) => {
        both_modules!($name, |m| super::$name(m));
    };
    ($name:ident, |$m:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($m: $crate::common::Module) {
                $body
            }

            #[test]
            fn ours() {
                run($crate::common::Module::Ours)
            }

            #[test]
            fn stock() {
                run($crate::common::Module::Stock)
            }
        }
    };
}

mod common;

mod browser;
mod chat;
mod close_handshake;
mod compression;
mod config_lifecycle;
mod control_frames;
mod deployment;
mod example_run;
mod gateway_features;
mod handshake;
mod irc_framework;
mod ping_timer;
mod proxy;
mod proxy_bursts;
mod proxy_protocol;
mod proxy_recipes;
mod smoke;
mod subprotocols;
mod tls;
mod upstream_changes;
