//! RFC 7692 negotiation: the client's `Sec-WebSocket-Extensions` offers, in order, and
//! the response for the first permessage-deflate offer the server can meet.
//!
//! Written by hand: the grammar is a few lines (RFC 6455 9.1: extensions separated by
//! commas, parameters by semicolons, values tokens or quoted strings) and the crates
//! that parse it come with a whole WebSocket implementation.
//!
//! The answer always asks `client_no_context_takeover` (RFC 7692 7.1.1.2 lets the
//! server add it): each client message is then compressed on its own, so the server
//! keeps no inflate state between a client's messages. The server's own window is the
//! configured one, or smaller when the client limits it.

use super::Settings;
use crate::quoted_list::split_outside_quotes;

/// What was agreed for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The window the server compresses with (8-15 bits: the module's own compressor
    /// keeps to any window RFC 7692 allows, 8 bits included, which zlib cannot).
    pub server_window_bits: u8,
    /// The client asked the server to compress each message on its own.
    pub server_no_context_takeover: bool,
    /// The client limited the server's window (so the answer states the value).
    server_window_limited: bool,
}

/// The extension's name.
const NAME: &str = "permessage-deflate";

impl Agreed {
    /// The `Sec-WebSocket-Extensions` value of the 101.
    pub fn response(&self) -> String {
        let mut value = format!("{NAME}; client_no_context_takeover");
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.server_window_limited {
            value.push_str("; server_max_window_bits=");
            value.push_str(&self.server_window_bits.to_string());
        }
        value
    }
}

/// The first offer among the header values (each a comma-separated list) the server
/// accepts, if any.
pub fn negotiate<'a>(
    header_values: impl Iterator<Item = &'a [u8]>,
    settings: &Settings,
) -> Option<Agreed> {
    for value in header_values {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        for offer in split_outside_quotes(value, ',') {
            if let Some(agreed) = accept(offer, settings) {
                return Some(agreed);
            }
        }
    }
    None
}

/// The offer's terms if the server can meet them; `None` for another extension, an
/// unknown or repeated parameter, or a bad value (RFC 7692 5: such offers are declined).
fn accept(offer: &str, settings: &Settings) -> Option<Agreed> {
    let mut parts = split_outside_quotes(offer, ';');
    if !parts.next()?.trim().eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut seen = Vec::new();
    let mut server_no_context_takeover = false;
    let mut server_max = None;
    for part in parts {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (part.trim(), None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover", None) => server_no_context_takeover = true,
            // The client's window does not matter: the server inflates with the largest.
            ("client_no_context_takeover" | "client_max_window_bits", None) => {}
            ("server_max_window_bits", Some(bits)) => server_max = Some(window_bits(&bits)?),
            ("client_max_window_bits", Some(bits)) => {
                window_bits(&bits)?;
            }
            _ => return None,
        }
        seen.push(name);
    }
    Some(Agreed {
        server_window_bits: server_max
            .map_or(settings.window_bits, |max| max.min(settings.window_bits)),
        server_no_context_takeover,
        server_window_limited: server_max.is_some(),
    })
}

/// A window size value: 8-15 in decimal without a leading zero (RFC 7692 7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// A token, or a quoted string's content (with `\` escapes); `None` for a broken quote.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            window_bits: 11,
            ..Settings::default()
        }
    }

    fn agree(offers: &[&str]) -> Option<String> {
        negotiate(offers.iter().map(|o| o.as_bytes()), &settings()).map(|a| a.response())
    }

    #[test]
    fn a_browsers_offer_is_accepted_with_client_no_context_takeover() {
        // What Chromium and Firefox send.
        assert_eq!(
            agree(&["permessage-deflate; client_max_window_bits"]).as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
    }

    #[test]
    fn no_offer_no_extension() {
        assert_eq!(agree(&[]), None);
        assert_eq!(agree(&["x-webkit-deflate-frame"]), None);
    }

    #[test]
    fn server_no_context_takeover_is_honoured_and_answered() {
        let offer = "permessage-deflate; server_no_context_takeover";
        let agreed = negotiate([offer.as_bytes()].into_iter(), &settings()).expect("accepted");
        assert!(agreed.server_no_context_takeover);
        assert_eq!(
            agreed.response(),
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
        );
    }

    #[test]
    fn server_max_window_bits_lowers_the_window_and_is_answered() {
        let offer = "permessage-deflate; server_max_window_bits=10";
        let agreed = negotiate([offer.as_bytes()].into_iter(), &settings()).expect("accepted");
        assert_eq!(agreed.server_window_bits, 10);
        assert!(agreed.response().ends_with("; server_max_window_bits=10"));
        // A larger limit than the configured window keeps the configured one.
        let offer = "permessage-deflate; server_max_window_bits=15";
        let agreed = negotiate([offer.as_bytes()].into_iter(), &settings()).expect("accepted");
        assert_eq!(agreed.server_window_bits, 11);
        assert!(agreed.response().ends_with("; server_max_window_bits=11"));
    }

    #[test]
    fn an_8_bit_server_window_is_accepted() {
        // zlib cannot compress with a true 8-bit window (it turns 8 into 9); the
        // module's compressor can (lz77.rs tests it against an 8-bit inflater).
        let offer = "permessage-deflate; server_max_window_bits=8";
        let agreed = negotiate([offer.as_bytes()].into_iter(), &settings()).expect("accepted");
        assert_eq!(agreed.server_window_bits, 8);
        assert!(agreed.response().ends_with("; server_max_window_bits=8"));
    }

    #[test]
    fn a_client_window_of_8_is_fine() {
        assert!(agree(&["permessage-deflate; client_max_window_bits=8"]).is_some());
    }

    #[test]
    fn bad_offers_are_declined() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1a",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; unknown_parameter",
            "permessage-deflate; server_max_window_bits=\"10",
        ] {
            assert_eq!(agree(&[offer]), None, "{offer}");
        }
    }

    #[test]
    fn quoted_values_and_case_and_spacing_are_read() {
        assert_eq!(
            agree(&["Permessage-Deflate ;Server_Max_Window_Bits=\"10\""]).as_deref(),
            Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=10")
        );
    }

    #[test]
    fn offers_across_header_lines_are_taken_in_order() {
        assert_eq!(
            agree(&[
                "foo; bar=\"a,b\"",
                "permessage-deflate; unknown, permessage-deflate; server_no_context_takeover"
            ])
            .as_deref(),
            Some("permessage-deflate; client_no_context_takeover; server_no_context_takeover")
        );
    }
}
