//! The protocol core of a drop-in replacement for InspIRCd 3 and 4's `websocket` module.
//!
//! The core does no I/O, reads no clock and knows nothing of InspIRCd; the C++ shim in
//! `cpp/` moves bytes between InspIRCd's queues and a [`session::Session`] through the
//! cxx bridge in `ffi/`, and acts on what the session reports.
//!
//! # Data flow
//!
//! ```text
//!  client bytes ─► IOHookMiddle recvq ─► Session::receive(&mut recvq, now_ms, lines, out)
//!                                          │  ├─ consumed: bytes the shim drops from recvq
//!                                          │  ├─ lines: "msg\r\n" appended to InspIRCd's recvq
//!                                          │  ├─ out: 101 / HTTP error / pong / close frame
//!                                          │  ├─ upgrade: subprotocol, real IP from a proxy
//!                                          │  └─ ending: close now, with a reason to log/quit
//!  server lines ─► Session::send(element, out) per send-queue element,
//!                  Session::finish_send(out) (a close requested on QUIT or unload)
//! ```
//!
//! A read's status maps onto InspIRCd's hook return codes: nothing new (0), lines
//! delivered (1), or an [`session::Ending`] (-1, after the output is flushed).
//!
//! # Modules
//!
//! - [`config`]: validated settings from the raw `<wsorigin>` / `<websocket>` tags.
//! - [`origin`]: the `<wsorigin allow>` list.
//! - [`proxy`]: `proxyranges` and the real address from X-Real-IP / X-Forwarded-For.
//! - [`forwarded`]: RFC 7239's `Forwarded` header.
//! - `quoted_list`: an HTTP header list split outside quoted strings (offers, `Forwarded`).
//! - [`proxy_protocol`]: the PROXY v1/v2 header a TCP-mode load balancer sends first.
//! - [`secure`]: when a proxied user counts as connected over TLS.
//! - [`proxy_clones`]: whether bursts through a proxy meet InspIRCd's clone limits.
//! - [`handshake`]: the HTTP/1.1 upgrade request, to a 101 or an HTTP error.
//! - [`compression`]: permessage-deflate (RFC 7692), when configured.
//! - [`frame`]: RFC 6455 headers, masking, UTF-8 checks, close payloads, writing frames.
//! - [`protocol_error`]: every way a client can break the protocol, with its close code.
//! - [`session`]: one connection's state machine ([`session`]'s `reader`: its frames).
//! - [`irc`]: one message is one IRC line, both ways.
//! - [`keepalive`]: pings to idle clients; [`linger`]: waiting for the client's close.
//! - [`connection`]: a session as the module keeps it, with its counters.
//! - [`log_line`], [`whois`]: what the module says in the log and to opers.
//! - [`sink`]: where output bytes go (a `Vec<u8>` in tests, a `std::string` in the module).

// Unit tests build their inputs with casts whose range they know.
#![cfg_attr(
    test,
    allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap
    )
)]

/// What MODULES and the module list say the module is.
pub const MODULE_DESCRIPTION: &str = "Provides WebSocket (RFC 6455) client connections; a drop-in replacement for the stock websocket module with a Rust protocol core";

pub mod compression;
pub mod config;
pub mod connection;
pub mod counters;
pub mod forwarded;
pub mod frame;
pub mod handshake;
pub mod irc;
pub mod keepalive;
pub mod linger;
pub mod log_line;
pub mod origin;
pub mod protocol_error;
pub mod proxy;
pub mod proxy_clones;
pub mod proxy_protocol;
mod quoted_list;
pub mod secure;
pub mod session;
pub mod sink;
pub mod whois;
mod wildcard;

#[expect(
    clippy::unnecessary_box_returns,
    clippy::fn_params_excessive_bools,
    reason = "cxx hands Rust objects to C++ in a Box, and has no Option of a slice: a \
              flag says whether each optional value is there"
)]
mod ffi;
