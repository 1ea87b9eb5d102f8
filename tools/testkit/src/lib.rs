//! The workspace's test kit: what the integration tests (`tests/it`), the benches, the
//! counting-allocator test, the core's unit tests and the tools (`tools/soak`,
//! `tools/loadbench`) share.
//!
//! - [`inspircd`]: a real InspIRCd per run (private directory and module directory,
//!   generated configuration in the installation's [`inspircd::Dialect`], free ports,
//!   stopped by PID);
//! - [`ws`]: the raw client side of RFC 6455 (masked frames out, server frames in,
//!   upgrade requests), the one copy every client here uses;
//! - [`deflate`]: the client side of permessage-deflate (RFC 7692) on flate2;
//! - [`irc`]: IRC lines as a client reads them;
//! - [`procfs`]: a process's memory, descriptors and CPU time from /proc;
//! - [`process`]: stopping children by PID, exit statuses, RLIMIT_NOFILE;
//! - [`stats`]: the median of repeated measurements (the benches, loadbench);
//! - [`wait`]: polling a file or process condition to a deadline, reading output;
//! - [`ports`]: free loopback ports.
//!
//! It depends on no crate of the workspace, so that all of them can depend on it.

pub mod deflate;
pub mod inspircd;
pub mod irc;
pub mod ports;
pub mod process;
pub mod procfs;
pub mod stats;
pub mod wait;
pub mod ws;
