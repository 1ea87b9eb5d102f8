//! soak's blocking clients: the test kit's, with soak's Origin and Host, named, and
//! bounded by the scenario's timeout.

use std::time::Duration;

use testkit::client::{Client, IrcLines};

use crate::server::ORIGIN;

/// An upgrade request for soak's server: Host `127.0.0.1:port`, Origin `origin`, the
/// subprotocol `protocol` if any.
pub fn upgrade_request(port: u16, origin: &str, protocol: Option<&str>) -> Vec<u8> {
    upgrade_request_with(port, origin, protocol, &[])
}

/// An upgrade request with extra "Name: value" header lines.
pub fn upgrade_request_with(
    port: u16,
    origin: &str,
    protocol: Option<&str>,
    extra: &[&str],
) -> Vec<u8> {
    let protocol = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}"));
    let lines: Vec<&str> = protocol
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    testkit::ws::upgrade_request(&format!("127.0.0.1:{port}"), origin, &lines)
}

/// A raw client connected to the WebSocket port (not upgraded), named `name`, its
/// waits bounded by `timeout`; its line waits answer pings.
pub fn ws_connect(port: u16, name: &str, timeout: Duration) -> Result<Client, String> {
    Ok(Client::raw(None, port)
        .map_err(|e| e.context(name))?
        .named(name)
        .with_timeout(timeout)
        .answering_pings()
        .ident("ws", "soak web user"))
}

/// The status of the answer to an upgrade request from `origin`.
pub fn handshake_status(
    port: u16,
    name: &str,
    origin: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let mut c = ws_connect(port, name, timeout)?;
    let status = c.handshake(&upgrade_request(port, origin, None))?.status;
    c.shutdown();
    Ok(status)
}

/// [`ws_connect`], upgraded with soak's Origin, `protocol` and the `extra` header lines.
pub fn ws_upgrade(
    port: u16,
    name: &str,
    protocol: Option<&str>,
    extra: &[&str],
    timeout: Duration,
) -> Result<Client, String> {
    let mut c = ws_connect(port, name, timeout)?;
    c.upgrade_with(&upgrade_request_with(port, ORIGIN, protocol, extra))?;
    Ok(c)
}

/// A plain IRC client that has sent NICK and USER, its waits bounded by `timeout`.
pub fn irc_start(port: u16, nick: &str, timeout: Duration) -> Result<Client, String> {
    let mut c = Client::irc(None, port)?
        .with_timeout(timeout)
        .ident("u", "soak plain user");
    c.start_register(nick)?;
    Ok(c)
}

/// Registers `c` as `nick` with `realname` and waits for 001.
pub fn register(c: &mut Client, nick: &str, realname: &str) -> Result<(), String> {
    c.start_register_as(nick, "ws", realname)?;
    Ok(c.wait_welcome()?)
}
