//! The workspace's test kit: what the integration tests (`tests/it`), the benches, the
//! fuzz harness, the core's unit tests and the tools (`tools/soak`, `tools/loadbench`)
//! share: a real InspIRCd per run ([`inspircd`]), the blocking client ([`client`]) and
//! the client pool ([`pool`]) with the client side of RFC 6455 ([`ws`], [`messages`]),
//! RFC 7692 ([`deflate`]) and HTTP ([`http`]), and process, /proc and timing helpers.
//! It depends on no crate of the workspace, so that all of them can depend on it.

pub mod chat;
pub mod client;
pub mod deflate;
pub mod http;
pub mod inspircd;
pub mod irc;
pub mod messages;
pub mod net;
pub mod pool;
pub mod ports;
pub mod process;
pub mod procfs;
pub mod rng;
pub mod stats;
pub mod wait;
pub mod ws;
