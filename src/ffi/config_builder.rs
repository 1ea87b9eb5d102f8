//! The raw `<wsorigin>` and `<websocket>` tags, as the shim reads them.

use crate::config::keys::ServerVersion;
use crate::config::{RawConfig, RawTag};

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
