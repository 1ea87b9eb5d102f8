//! The workspace's test kit: what the integration tests (`tests/it`), the benches, the
//! fuzz harness (`tests/fuzz_harness`, `fuzz/`), the counting-allocator test, the core's
//! unit tests and the tools (`tools/soak`, `tools/loadbench`) share.
//!
//! - [`inspircd`]: a real InspIRCd per run (private directory and module directory,
//!   generated configuration in the installation's [`inspircd::Dialect`], free ports,
//!   stopped by PID);
//! - [`client`]: the blocking client, [`client::Client`] (plain IRC, or HTTP and
//!   WebSocket by hand), with [`client::IrcLines`];
//!   every call returns a `Result` whose error says what was awaited and what was seen;
//! - [`pool`]: many non-blocking client connections on one thread (epoll);
//! - [`ws`]: RFC 6455 framing from the client's side, the one copy every client here
//!   uses (masked frames out, server frames in), and upgrade requests;
//! - [`messages`]: the one decoder of server frames into messages (fragments,
//!   control frames, compressed messages inflated);
//! - [`deflate`]: the client side of permessage-deflate (RFC 7692): compressing,
//!   the agreement, inflating within the agreed window;
//! - [`http`]: HTTP responses and hand-built requests;
//! - [`irc`]: IRC lines as a client reads them;
//! - [`net`]: sockets from chosen source addresses, receive buffers, resets;
//! - [`rng`]: a deterministic random number generator;
//! - [`procfs`]: a process's memory, descriptors and CPU time from /proc;
//! - [`process`]: stopping children by PID, exit statuses, RLIMIT_NOFILE;
//! - [`stats`]: the median of repeated measurements (the benches, loadbench);
//! - [`wait`]: polling a file or process condition to a deadline, reading output;
//! - [`ports`]: free loopback ports.
//!
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
