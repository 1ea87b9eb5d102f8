//! What the module holds for all its connections: the configuration in force and the
//! counters.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::Arc;

use super::bridge::SocketKind;
use super::config_builder::ConfigBuilder;
use super::guard::caught;
use super::session::WsSession;
use crate::compression::Spares;
use crate::config::Config;
use crate::connection::Connection;
use crate::counters::Counters;
use crate::handshake;
use crate::log_line;

/// The one owner of the configuration: none until the first load succeeds, then the
/// one in force. Sessions keep the configuration they were accepted under (an `Arc`),
/// so a rehash never changes a connection half way.
pub struct WsModule {
    config: Option<Arc<Config>>,
    counters: Rc<Counters>,
    /// What compressing connections share (never a thread-local: see [`Spares`]).
    spares: Rc<Spares>,
}

pub(super) fn new_module() -> Box<WsModule> {
    Box::new(WsModule {
        config: None,
        counters: Rc::default(),
        spares: Rc::default(),
    })
}

/// The address in `bytes`: 4 bytes are IPv4, 16 IPv6, anything else (a UNIX socket)
/// no address.
fn peer_address(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

impl WsModule {
    /// Validates the tags and puts them in force, returning the new configuration's
    /// warnings; on an error the configuration in force stays.
    pub(super) fn configure(&mut self, builder: &ConfigBuilder) -> Result<Vec<String>, String> {
        match caught(|| Config::from_raw(&builder.raw)) {
            Some(Ok(config)) => {
                let warnings = config
                    .warnings
                    .iter()
                    .map(|w| log_line::warning(w))
                    .collect();
                self.config = Some(Arc::new(config));
                Ok(warnings)
            }
            Some(Err(error)) => Err(error.to_string()),
            None => Err("internal error while validating the configuration".to_owned()),
        }
    }

    /// A session for a connection from `peer` (its address as 4 or 16 bytes).
    pub(super) fn new_session(
        &self,
        peer: &[u8],
        kind: SocketKind,
    ) -> Result<Box<WsSession>, String> {
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| "WebSocket: module not configured".to_owned())?;
        let kind = match kind {
            SocketKind::User => handshake::SocketKind::User,
            SocketKind::Server => handshake::SocketKind::Server,
            SocketKind { repr } => return Err(format!("WebSocket: unknown socket kind {repr}")),
        };
        Ok(Box::new(WsSession(Connection::new(
            Arc::clone(config),
            Rc::clone(&self.counters),
            Rc::clone(&self.spares),
            peer_address(peer),
            kind,
        ))))
    }

    /// The `/STATS W` lines.
    pub(super) fn stats(&self) -> Vec<String> {
        caught(|| self.counters.report()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_come_as_their_bytes() {
        assert_eq!(
            peer_address(&[192, 0, 2, 7]),
            Some("192.0.2.7".parse().unwrap())
        );
        let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
        assert_eq!(peer_address(&v6.octets()), Some(IpAddr::V6(v6)));
        assert_eq!(peer_address(b""), None);
        assert_eq!(peer_address(b"/run/ircd.sock"), None);
    }

    #[test]
    fn no_session_before_a_configuration_and_a_bad_rehash_keeps_the_old_one() {
        let mut module = new_module();
        assert!(module
            .new_session(&[127, 0, 0, 1], SocketKind::User)
            .is_err());
        let mut builder = ConfigBuilder::default();
        builder.begin_origin_tag(b"a.conf:1");
        builder.add_item(b"allow", b"https://*.example.com");
        assert_eq!(module.configure(&builder), Ok(Vec::new()));
        let mut warned = ConfigBuilder::default();
        warned.begin_origin_tag(b"a.conf:1");
        warned.add_item(b"allow", b"*");
        let warnings = module.configure(&warned).unwrap();
        assert!(warnings[0].starts_with("WARNING: <wsorigin:allow> \"*\" at a.conf:1"));
        module.configure(&builder).unwrap();
        let mut bad = ConfigBuilder::default();
        bad.begin_origin_tag(b"a.conf:1");
        bad.add_item(b"allow", b"https://*.example.com");
        bad.begin_websocket_tag(b"a.conf:2");
        bad.add_item(b"maxheaders", b"1");
        assert!(module.configure(&bad).unwrap_err().contains("maxheaders"));
        assert!(module
            .new_session(&[127, 0, 0, 1], SocketKind::User)
            .is_ok());
        assert_eq!(module.stats(), ["WebSocket open connections: 0"]);
    }
}
