//! Reading one tag's values through the key table.

use super::error::ConfigError;
use super::keys::{Choice, Key, ServerVersion};
use super::values::{
    parse_bool, parse_duration, parse_size, range_text, BOOLEAN_VALUES, DURATION_SYNTAX,
};
use super::RawTag;

/// The items of one tag with keys lower-cased, duplicates refused and unknown keys
/// reported as warnings. A key the tag does not set reads as its default on the server
/// version the tag was read on, through the same parser.
pub(super) struct TagReader<'a> {
    tag: &'static str,
    location: &'a str,
    items: Vec<(String, &'a str)>,
    server: ServerVersion,
}

impl<'a> TagReader<'a> {
    /// Reads `raw`, a `tag` tag whose keys are `known`.
    pub(super) fn new(
        tag: &'static str,
        raw: &'a RawTag,
        known: &[&Key],
        server: ServerVersion,
        warnings: &mut Vec<String>,
    ) -> Result<TagReader<'a>, ConfigError> {
        let mut items: Vec<(String, &'a str)> = Vec::with_capacity(raw.items.len());
        for (key, value) in &raw.items {
            let key = key.to_ascii_lowercase();
            if items.iter().any(|(k, _)| *k == key) {
                return Err(ConfigError::DuplicateKey {
                    tag,
                    key,
                    location: raw.location.clone(),
                });
            }
            if !known.iter().any(|k| k.name == key) {
                warnings.push(format!(
                    "<{tag}> at {} has an unknown key \"{key}\"; it is ignored",
                    raw.location
                ));
            }
            items.push((key, value.as_str()));
        }
        Ok(TagReader {
            tag,
            location: &raw.location,
            items,
            server,
        })
    }

    /// A reader of a tag that sets nothing: every key reads as its default.
    pub(super) fn empty(tag: &'static str, server: ServerVersion) -> TagReader<'static> {
        TagReader {
            tag,
            location: "(defaults)",
            items: Vec::new(),
            server,
        }
    }

    pub(super) fn location(&self) -> &'a str {
        self.location
    }

    /// The value as written, if the tag sets the key.
    pub(super) fn get(&self, key: &Key) -> Option<&'a str> {
        self.items
            .iter()
            .find(|(k, _)| k == key.name)
            .map(|(_, value)| *value)
    }

    /// The value as written, or the default.
    fn value(&self, key: &Key) -> &'a str {
        self.get(key).unwrap_or(key.default_on(self.server))
    }

    fn invalid_value(&self, key: &Key, value: &str, accepted: String) -> ConfigError {
        ConfigError::InvalidValue {
            tag: self.tag,
            key: key.name,
            value: value.to_owned(),
            location: self.location.to_owned(),
            accepted,
        }
    }

    fn out_of_range(&self, key: &Key, value: &str) -> ConfigError {
        ConfigError::OutOfRange {
            tag: self.tag,
            key: key.name,
            value: value.to_owned(),
            location: self.location.to_owned(),
            range: range_text(&key.range, key.kind),
        }
    }

    /// A [`Kind::Boolean`] key.
    pub(super) fn boolean(&self, key: &Key) -> Result<bool, ConfigError> {
        let value = self.value(key);
        parse_bool(value).ok_or_else(|| self.invalid_value(key, value, BOOLEAN_VALUES.into()))
    }

    /// A [`super::keys::Kind::Choice`] key: the value its word names.
    pub(super) fn choice<C: Choice>(&self, key: &Key) -> Result<C, ConfigError> {
        let value = self.value(key);
        C::from_word(value).ok_or_else(|| self.invalid_value(key, value, C::words()))
    }

    /// A [`super::keys::Kind::Text`] key its own parser reads; an error names what the
    /// parser said and what is `accepted`.
    pub(super) fn text<T, E: std::fmt::Display>(
        &self,
        key: &Key,
        parse: impl FnOnce(&'a str) -> Result<T, E>,
        accepted: &str,
    ) -> Result<T, ConfigError> {
        let value = self.value(key);
        parse(value)
            .map_err(|e| self.invalid_value(key, value, format!("{accepted} (this value {e})")))
    }

    /// A [`Kind::Size`] or [`Kind::Count`] key, within its range.
    pub(super) fn number(&self, key: &Key) -> Result<u64, ConfigError> {
        let value = self.value(key);
        let Some(number) = parse_size(value) else {
            return Err(ConfigError::NotANumber {
                tag: self.tag,
                key: key.name,
                value: value.to_owned(),
                location: self.location.to_owned(),
                range: range_text(&key.range, key.kind),
            });
        };
        if key.range.contains(&number) {
            Ok(number)
        } else {
            Err(self.out_of_range(key, value))
        }
    }

    /// A [`Kind::Duration`] key within its range (seconds), in milliseconds.
    pub(super) fn duration_ms(&self, key: &Key) -> Result<u64, ConfigError> {
        let value = self.value(key);
        let Some(seconds) = parse_duration(value) else {
            return Err(ConfigError::InvalidDuration {
                tag: self.tag,
                key: key.name,
                value: value.to_owned(),
                location: self.location.to_owned(),
                syntax: DURATION_SYNTAX,
                range: range_text(&key.range, key.kind),
            });
        };
        if key.range.contains(&seconds) {
            Ok(seconds.saturating_mul(1000))
        } else {
            Err(self.out_of_range(key, value))
        }
    }
}
