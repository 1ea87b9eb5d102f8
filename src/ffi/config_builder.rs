//! The raw `<wsorigin>` and `<websocket>` tags, as the shim reads them, and what the
//! server has read that the module's checks need ([`crate::proxy_clones`]).

use super::bridge::ConnectClassKind;
use crate::config::keys::ServerVersion;
use crate::config::{RawConfig, RawTag};
use crate::proxy_clones::{ClassKind, ConnectClass, ServerFacts};

/// Collects every key/value pair of the tags, with their locations, for
/// [`super::module::WsModule::configure`].
#[derive(Default)]
pub struct ConfigBuilder {
    pub(super) raw: RawConfig,
    /// Which tag `add_item` fills.
    filling_websocket: bool,
}

pub(super) fn new_config_builder() -> Box<ConfigBuilder> {
    Box::default()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl ConfigBuilder {
    pub(super) fn begin_origin_tag(&mut self, location: &[u8]) {
        self.raw.origins.push(RawTag {
            location: text(location),
            items: Vec::new(),
        });
        self.filling_websocket = false;
    }

    pub(super) fn begin_websocket_tag(&mut self, location: &[u8]) {
        self.raw.websocket = Some(RawTag {
            location: text(location),
            items: Vec::new(),
        });
        self.filling_websocket = true;
    }

    pub(super) fn set_server_version(&mut self, major: u32) {
        self.raw.server = if major >= 4 {
            ServerVersion::V4
        } else {
            ServerVersion::V3
        };
    }

    /// Begins the server's facts: `<performance clonesonconnect>` as it reads it.
    pub(super) fn set_clones_on_connect(&mut self, on: bool) {
        self.facts().clones_on_connect = on;
    }

    /// Adds the next `<connect>` class (its masks and ports follow).
    pub(super) fn add_connect_class(
        &mut self,
        name: &[u8],
        kind: ConnectClassKind,
        registered_only: bool,
        local_max: u64,
        global_max: u64,
    ) -> Result<(), String> {
        let kind = match kind {
            ConnectClassKind::Allow => ClassKind::Allow,
            ConnectClassKind::Deny => ClassKind::Deny,
            ConnectClassKind::Named => ClassKind::Named,
            ConnectClassKind { repr } => {
                return Err(format!("WebSocket: unknown connect class kind {repr}"))
            }
        };
        self.facts().classes.push(ConnectClass {
            name: text(name),
            kind,
            hosts: Vec::new(),
            ports: Vec::new(),
            registered_only,
            local_max,
            global_max,
        });
        Ok(())
    }

    /// Adds an `allow`/`deny` mask to the class added last.
    pub(super) fn add_connect_class_host(&mut self, mask: &[u8]) {
        if let Some(class) = self.facts().classes.last_mut() {
            class.hosts.push(text(mask));
        }
    }

    /// Adds a port to the class added last.
    pub(super) fn add_connect_class_port(&mut self, port: u16) {
        if let Some(class) = self.facts().classes.last_mut() {
            class.ports.push(port);
        }
    }

    /// Adds the port of a listener whose hook is this module.
    pub(super) fn add_websocket_port(&mut self, port: u16) {
        self.facts().websocket_ports.push(port);
    }

    fn facts(&mut self) -> &mut ServerFacts {
        self.raw
            .server_facts
            .get_or_insert_with(ServerFacts::default)
    }

    pub(super) fn add_item(&mut self, key: &[u8], value: &[u8]) {
        let tag = if self.filling_websocket {
            self.raw.websocket.as_mut()
        } else {
            self.raw.origins.last_mut()
        };
        if let Some(tag) = tag {
            tag.items.push((text(key), text(value)));
        }
    }
}
