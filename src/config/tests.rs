//! Configuration tests: every key, its default, range and errors, and the docs.

use super::keys::{Key, Kind, ServerVersion, ALLOW, WEBSOCKET_KEYS, WSORIGIN_KEYS};
use super::values::{parse_duration, BOOLEAN_VALUES};
use super::*;

const LOC: &str = "/etc/inspircd/inspircd.conf:12";
const ORIGIN_LOC: &str = "/etc/inspircd/inspircd.conf:10";

fn tag(location: &str, items: &[(&str, &str)]) -> RawTag {
    RawTag {
        location: location.to_owned(),
        items: items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn raw(websocket: Option<&[(&str, &str)]>) -> RawConfig {
    RawConfig {
        origins: vec![tag(ORIGIN_LOC, &[("allow", "https://*.example.com")])],
        websocket: websocket.map(|items| tag(LOC, items)),
        ..RawConfig::default()
    }
}

fn load(items: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_raw(&raw(Some(items)))
}

fn error(items: &[(&str, &str)]) -> String {
    load(items).unwrap_err().to_string()
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

#[test]
fn defaults_without_websocket_tag() {
    let c = Config::from_raw(&raw(None)).unwrap();
    assert_eq!(c.default_mode, DefaultMode::Text);
    assert!(!c.allow_missing_origin);
    assert!(c.native_ping);
    assert_eq!(c.ping_interval_ms, 30_000);
    assert_eq!(c.proxy_header, ProxyHeader::Any);
    assert!(c.proxy_ranges.is_empty());
    assert_eq!(c.limits, Limits::default());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.origins.allows(b"https://www.example.com"));
    assert!(!c.origins.allows(b"https://evil.test"));
}

#[test]
fn default_limits_have_the_documented_values() {
    let l = Limits::default();
    assert_eq!(l.max_handshake_bytes, 40 * 1024);
    assert_eq!(l.max_handshake_headers, 64);
    assert_eq!(l.max_message_bytes, 16384);
    assert_eq!(l.max_fragments, 64);
    assert_eq!(l.ping_burst, 10);
    assert_eq!(l.ping_refill_ms, 1000);
    assert_eq!(l.close_timeout_ms, 2000);
}

#[test]
fn proxyheader_names_the_header_the_proxies_set() {
    use crate::proxy::AddressHeader;
    for (value, header) in [
        ("x-real-ip", ProxyHeader::Only(AddressHeader::XRealIp)),
        (
            "X-Forwarded-For",
            ProxyHeader::Only(AddressHeader::XForwardedFor),
        ),
        ("Forwarded", ProxyHeader::Only(AddressHeader::Forwarded)),
        (
            "CF-Connecting-IP",
            ProxyHeader::Only(AddressHeader::Named("cf-connecting-ip".into())),
        ),
        ("any", ProxyHeader::Any),
    ] {
        assert_eq!(
            load(&[("proxyheader", value)]).unwrap().proxy_header,
            header
        );
    }
    assert_eq!(
        error(&[("proxyheader", "x real ip")]),
        format!("<websocket:proxyheader> has an invalid value \"x real ip\" at {LOC}; accepted values: any, x-real-ip, x-forwarded-for, forwarded, or the name of the header your proxies set (this value is not an HTTP header name)")
    );
    assert!(
        error(&[("proxyheader", "Origin")]).contains("a header of the WebSocket handshake itself")
    );
}

#[test]
fn proxy_protocol_proto_header_and_health_check() {
    use crate::secure::ProtoHeader;
    let c = load(&[]).unwrap();
    assert!(!c.proxy_protocol);
    assert_eq!(c.proto_header, ProtoHeader::None);
    assert_eq!(c.health_check, None);
    let c = load(&[
        ("proxyprotocol", "yes"),
        ("proxyprotoheader", "X-Forwarded-Proto"),
        ("healthcheck", "/health"),
    ])
    .unwrap();
    assert!(c.proxy_protocol);
    assert_eq!(c.proto_header, ProtoHeader::XForwardedProto);
    assert_eq!(c.health_check.as_deref(), Some("/health"));
    assert_eq!(
        load(&[("proxyprotoheader", "forwarded")])
            .unwrap()
            .proto_header,
        ProtoHeader::Forwarded
    );
    assert!(error(&[("proxyprotoheader", "yes")])
        .contains("accepted values: none, x-forwarded-proto, forwarded"));
    assert!(error(&[("healthcheck", "health")]).contains("does not start with /"));
    assert!(error(&[("healthcheck", "/a b")]).contains("cannot have"));
    assert!(error(&[("proxyprotocol", "maybe")]).contains("<websocket:proxyprotocol>"));
}

#[test]
fn empty_websocket_tag_gives_defaults() {
    let c = load(&[]).unwrap();
    assert_eq!(c.default_mode, DefaultMode::Text);
    assert_eq!(c.limits, Limits::default());
    assert!(c.warnings.is_empty());
}

#[test]
fn with_origins_uses_defaults() {
    let c = Config::with_origins(&["https://a.example", "http://localhost:*"]);
    assert!(c.origins.allows(b"https://a.example"));
    assert!(c.origins.allows(b"http://localhost:8080"));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.default_mode, DefaultMode::Text);
    assert!(c.native_ping);
    assert!(!c.allow_missing_origin);
    assert_eq!(c.ping_interval_ms, 30_000);
}

#[test]
fn no_wsorigin_is_an_error() {
    let err = Config::from_raw(&RawConfig::default()).unwrap_err();
    assert_eq!(err, ConfigError::NoOrigins);
    assert_eq!(
        err.to_string(),
        "You have loaded the websocket module but not configured any allowed origins (<wsorigin allow=...>)"
    );
}

#[test]
fn wsorigin_without_allow_is_an_error_naming_its_location() {
    for items in [
        &[][..],
        &[("allow", "")][..],
        &[("allow", "  ")][..],
        &[("alow", "x")][..],
    ] {
        let cfg = RawConfig {
            origins: vec![
                tag(ORIGIN_LOC, &[("allow", "https://a.example")]),
                tag("/etc/inspircd/ws.conf:3", items),
            ],
            websocket: None,
            ..RawConfig::default()
        };
        let message = Config::from_raw(&cfg).unwrap_err().to_string();
        assert_eq!(
            message,
            "<wsorigin:allow> is a mandatory field and must not be empty, at /etc/inspircd/ws.conf:3"
        );
    }
}

#[test]
fn several_wsorigin_tags_are_all_allowed() {
    let cfg = RawConfig {
        origins: vec![
            tag(ORIGIN_LOC, &[("allow", "https://a.example")]),
            tag(LOC, &[("ALLOW", "https://b.example")]),
        ],
        websocket: None,
        ..RawConfig::default()
    };
    let c = Config::from_raw(&cfg).unwrap();
    assert!(c.origins.allows(b"https://a.example"));
    assert!(c.origins.allows(b"https://b.example"));
    assert_eq!(c.origins.len(), 2);
}

#[test]
fn permissive_origin_patterns_warn_with_location() {
    let cfg = RawConfig {
        origins: vec![
            tag(ORIGIN_LOC, &[("allow", "*")]),
            tag(LOC, &[("allow", "https://*")]),
            tag(LOC, &[("allow", "https://irc.example")]),
        ],
        websocket: None,
        ..RawConfig::default()
    };
    let c = Config::from_raw(&cfg).unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with(&format!(
        "<wsorigin:allow> \"*\" at {ORIGIN_LOC} admits every website"
    )));
    assert!(c.warnings[1].starts_with(&format!(
        "<wsorigin:allow> \"https://*\" at {LOC} admits every website"
    )));
}

/// The catch-all values stock InspIRCd 4.11 warns about (`*`, `http://*`, `https://*`,
/// in any case) warn here too, each with its value and location; an origin with a host
/// does not.
#[test]
fn catch_all_origins_of_stock_4_11_warn() {
    for allow in ["*", "http://*", "https://*", "HTTP://*", "Https://*"] {
        let cfg = RawConfig {
            origins: vec![tag(ORIGIN_LOC, &[("allow", allow)])],
            websocket: None,
            ..RawConfig::default()
        };
        let c = Config::from_raw(&cfg).unwrap();
        assert_eq!(
            c.warnings,
            vec![format!(
                "<wsorigin:allow> \"{allow}\" at {ORIGIN_LOC} admits every website: any web page can make its visitors' browsers connect to this server"
            )],
            "{allow}"
        );
    }
    for allow in [
        "https://*.example",
        "http://irc.example",
        "https://irc.example:*",
    ] {
        let cfg = RawConfig {
            origins: vec![tag(ORIGIN_LOC, &[("allow", allow)])],
            websocket: None,
            ..RawConfig::default()
        };
        let c = Config::from_raw(&cfg).unwrap();
        assert!(c.warnings.is_empty(), "{allow}: {:?}", c.warnings);
    }
}

#[test]
fn unknown_wsorigin_key_warns() {
    let cfg = RawConfig {
        origins: vec![tag(
            ORIGIN_LOC,
            &[("allow", "https://a.example"), ("deny", "x")],
        )],
        websocket: None,
        ..RawConfig::default()
    };
    let c = Config::from_raw(&cfg).unwrap();
    assert_eq!(
        c.warnings,
        [format!(
            "<wsorigin> at {ORIGIN_LOC} has an unknown key \"deny\"; it is ignored"
        )]
    );
}

#[test]
fn defaultmode_accepts_each_mode_case_insensitively() {
    for (value, mode) in [
        ("text", DefaultMode::Text),
        ("binary", DefaultMode::Binary),
        ("reject", DefaultMode::Reject),
        ("BINARY", DefaultMode::Binary),
        ("Reject", DefaultMode::Reject),
    ] {
        assert_eq!(load(&[("defaultmode", value)]).unwrap().default_mode, mode);
    }
}

#[test]
fn invalid_defaultmode_names_key_value_location_and_accepted_values() {
    assert_eq!(
        error(&[("defaultmode", "foo")]),
        "<websocket:defaultmode> has an invalid value \"foo\" at /etc/inspircd/inspircd.conf:12; accepted values: text, binary, reject"
    );
    assert_names(
        &error(&[("defaultmode", "")]),
        &["defaultmode", "\"\"", LOC],
    );
}

#[test]
fn sendastext_no_means_binary_with_a_deprecation_warning() {
    let c = load(&[("sendastext", "no")]).unwrap();
    assert_eq!(c.default_mode, DefaultMode::Binary);
    assert_eq!(c.warnings.len(), 1);
    assert_names(
        &c.warnings[0],
        &["sendastext", "deprecated", LOC, "defaultmode=\"binary\""],
    );
}

#[test]
fn sendastext_yes_means_text_with_a_deprecation_warning() {
    let c = load(&[("SendAsText", "yes")]).unwrap();
    assert_eq!(c.default_mode, DefaultMode::Text);
    assert_eq!(c.warnings.len(), 1);
    assert_names(
        &c.warnings[0],
        &["sendastext", "deprecated", "defaultmode=\"text\""],
    );
}

#[test]
fn defaultmode_wins_over_sendastext_with_a_warning() {
    let c = load(&[("sendastext", "no"), ("defaultmode", "text")]).unwrap();
    assert_eq!(c.default_mode, DefaultMode::Text);
    assert_eq!(c.warnings.len(), 1);
    assert_names(&c.warnings[0], &["sendastext", "ignored", LOC]);
}

#[test]
fn invalid_sendastext_is_an_error() {
    assert_eq!(
        error(&[("sendastext", "maybe")]),
        format!("<websocket:sendastext> has an invalid value \"maybe\" at {LOC}; accepted values: yes, no, true, false, on, off, 1, 0")
    );
}

#[test]
fn booleans_accept_all_spellings_case_insensitively() {
    for (value, expected) in [
        ("yes", true),
        ("YES", true),
        ("true", true),
        ("On", true),
        ("1", true),
        ("no", false),
        ("False", false),
        ("off", false),
        ("0", false),
    ] {
        let c = load(&[("allowmissingorigin", value), ("nativeping", value)]).unwrap();
        assert_eq!(c.allow_missing_origin, expected, "{value}");
        assert_eq!(c.native_ping, expected, "{value}");
    }
}

#[test]
fn invalid_booleans_name_key_value_and_location() {
    for key in ["allowmissingorigin", "nativeping", "sendastext"] {
        for value in ["2", "yess", "", "nope"] {
            let message = error(&[(key, value)]);
            assert_eq!(
                message,
                format!("<websocket:{key}> has an invalid value \"{value}\" at {LOC}; accepted values: {BOOLEAN_VALUES}")
            );
        }
    }
}

#[test]
fn proxyranges_are_parsed() {
    let c = load(&[("proxyranges", "192.0.2.0/24 198.51.100.* ::1")]).unwrap();
    assert!(c.proxy_ranges.trusts("192.0.2.9"));
    assert!(c.proxy_ranges.trusts("198.51.100.9"));
    assert!(c.proxy_ranges.trusts("::1"));
    assert!(!c.proxy_ranges.trusts("203.0.113.1"));
    assert!(c.warnings.is_empty());
    assert!(load(&[("proxyranges", "")])
        .unwrap()
        .proxy_ranges
        .is_empty());
}

#[test]
fn invalid_proxyrange_names_entry_and_location() {
    let message = error(&[("proxyranges", "192.0.2.0/24 10.0.0.0/33")]);
    assert_names(
        &message,
        &["<websocket:proxyranges>", "\"10.0.0.0/33\"", LOC, "CIDR"],
    );
    assert!(message.starts_with(&format!(
        "<websocket:proxyranges> has an invalid entry \"10.0.0.0/33\" at {LOC}: it is not a valid CIDR range"
    )));
    assert_names(
        &error(&[("proxyranges", "proxy.example")]),
        &["\"proxy.example\"", LOC],
    );
}

#[test]
fn proxyranges_trusting_everyone_warn() {
    let c = load(&[("proxyranges", "* 192.0.2.0/24")]).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_names(&c.warnings[0], &["proxyranges", "\"*\"", LOC, "every"]);
}

#[test]
fn unknown_websocket_keys_warn_not_fail() {
    let c = load(&[("maxmesage", "1K"), ("foo", "bar")]).unwrap();
    assert_eq!(
        c.warnings,
        [
            format!("<websocket> at {LOC} has an unknown key \"maxmesage\"; it is ignored"),
            format!("<websocket> at {LOC} has an unknown key \"foo\"; it is ignored"),
        ]
    );
}

#[test]
fn keys_are_matched_case_insensitively() {
    let c = load(&[
        ("DefaultMode", "binary"),
        ("MAXMESSAGE", "1K"),
        ("NativePing", "no"),
    ])
    .unwrap();
    assert_eq!(c.default_mode, DefaultMode::Binary);
    assert_eq!(c.limits.max_message_bytes, 1024);
    assert!(!c.native_ping);
    assert!(c.warnings.is_empty());
}

#[test]
fn duplicate_keys_are_an_error() {
    assert_eq!(
        error(&[("maxmessage", "1K"), ("MaxMessage", "2K")]),
        format!("<websocket:maxmessage> is set more than once at {LOC}")
    );
}

#[test]
fn limits_are_read_with_k_and_m_suffixes() {
    let c = load(&[
        ("maxhandshake", "16K"),
        ("maxheaders", "100"),
        ("maxmessage", "1M"),
        ("maxfragments", "1000"),
        ("pingburst", "5"),
        ("pingrate", "2"),
        ("closetimeout", "5s"),
    ])
    .unwrap();
    assert_eq!(
        c.limits,
        Limits {
            max_handshake_bytes: 16 * 1024,
            max_handshake_headers: 100,
            max_message_bytes: 1024 * 1024,
            max_fragments: 1000,
            ping_burst: 5,
            ping_refill_ms: 2000,
            close_timeout_ms: 5000,
        }
    );
    assert_eq!(
        load(&[("maxmessage", "16m")])
            .unwrap()
            .limits
            .max_message_bytes,
        16 << 20
    );
    assert_eq!(
        load(&[("maxhandshake", " 2k ")])
            .unwrap()
            .limits
            .max_handshake_bytes,
        2048
    );
}

#[test]
fn limits_accept_their_range_bounds() {
    for (key, low, high) in [
        ("maxhandshake", "1024", "262144"),
        ("maxheaders", "8", "256"),
        ("maxmessage", "512", "16M"),
        ("maxfragments", "1", "1000000"),
        ("pingburst", "1", "1000"),
        ("pingrate", "1s", "1h"),
        ("pinginterval", "1", "1d"),
        ("closetimeout", "0", "1m"),
    ] {
        assert!(load(&[(key, low)]).is_ok(), "{key}={low}");
        assert!(load(&[(key, high)]).is_ok(), "{key}={high}");
    }
}

#[test]
fn out_of_range_limits_name_key_value_range_and_location() {
    for (key, value, range) in [
        ("maxhandshake", "1023", "1024 to 262144 bytes"),
        ("maxhandshake", "257K", "1024 to 262144 bytes"),
        ("maxheaders", "7", "8 to 256"),
        ("maxheaders", "257", "8 to 256"),
        ("maxmessage", "511", "512 to 16777216 bytes"),
        ("maxmessage", "17M", "512 to 16777216 bytes"),
        ("maxfragments", "0", "1 to 1000000"),
        ("maxfragments", "1000001", "1 to 1000000"),
        ("pingburst", "0", "1 to 1000"),
        ("pingburst", "1001", "1 to 1000"),
    ] {
        let message = error(&[(key, value)]);
        assert!(
            message.starts_with(&format!(
                "<websocket:{key}> has an out-of-range value \"{value}\" at {LOC}; accepted range: {range}"
            )),
            "{message}"
        );
    }
}

#[test]
fn non_numeric_limits_name_key_value_range_and_location() {
    for value in [
        "",
        "abc",
        "1.5K",
        "-1",
        "+5",
        "10G",
        "K",
        "1 K",
        "99999999999999999999",
    ] {
        let message = error(&[("maxmessage", value)]);
        assert!(
            message.starts_with(&format!(
                "<websocket:maxmessage> has an invalid value \"{value}\" at {LOC}: not a number; accepted range: 512 to 16777216 bytes"
            )),
            "{message}"
        );
    }
    // A huge number times the suffix overflows: still "not a number", never a panic.
    assert_names(
        &error(&[("maxmessage", "18446744073709551615M")]),
        &["not a number"],
    );
}

#[test]
fn durations_use_inspircd_syntax() {
    for (value, ms) in [
        ("90", 90_000),
        ("1m30s", 90_000),
        ("1m30", 90_000),
        ("2M", 120_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("1s", 1000),
    ] {
        assert_eq!(
            load(&[("pinginterval", value)]).unwrap().ping_interval_ms,
            ms,
            "{value}"
        );
    }
    assert_eq!(parse_duration("1w"), Some(604_800));
    assert_eq!(parse_duration("1y"), Some(31_536_000));
    assert_eq!(
        parse_duration("1y1w1d1h1m1s"),
        Some(31_536_000 + 604_800 + 86_400 + 3661)
    );
    assert_eq!(parse_duration("m"), None);
    assert_eq!(parse_duration("1x"), None);
    assert_eq!(parse_duration("99999999999999999999"), None);
    assert_eq!(parse_duration("999999999999999999y"), None);
}

#[test]
fn invalid_durations_name_key_value_syntax_and_location() {
    for key in ["pinginterval", "pingrate"] {
        for value in ["soon", "", "1.5s", "-1", "s"] {
            let message = error(&[(key, value)]);
            assert!(
                message.starts_with(&format!(
                    "<websocket:{key}> has an invalid duration \"{value}\" at {LOC}; accepted: a number of seconds"
                )),
                "{message}"
            );
        }
    }
}

#[test]
fn out_of_range_durations_name_key_value_range_and_location() {
    for (key, value, range) in [
        ("pinginterval", "0", "1 to 86400 seconds"),
        ("pinginterval", "1d1s", "1 to 86400 seconds"),
        ("pinginterval", "1y", "1 to 86400 seconds"),
        ("pingrate", "0s", "1 to 3600 seconds"),
        ("pingrate", "1h1s", "1 to 3600 seconds"),
        ("closetimeout", "61", "0 to 60 seconds"),
    ] {
        assert_eq!(
            error(&[(key, value)]),
            format!("<websocket:{key}> has an out-of-range value \"{value}\" at {LOC}; accepted range: {range}")
        );
    }
}

#[test]
fn errors_are_reported_even_with_a_valid_default_elsewhere() {
    // The first bad key in the tag is reported; the config is not half-applied.
    assert!(load(&[("defaultmode", "binary"), ("maxheaders", "1")]).is_err());
}

#[test]
fn bad_input_10_configured_allow_list_refuses_other_origins() {
    let c = Config::from_raw(&raw(None)).unwrap();
    assert!(!c.allow_missing_origin);
    assert!(!c.origins.allows(b"https://example.com.evil.test"));
    assert!(c.origins.allows(b"https://irc.example.com"));
}

// -------------------------------------------------------------------------------------
// The key table
// -------------------------------------------------------------------------------------

#[test]
fn every_default_in_the_table_reads_without_error_on_both_versions() {
    for key in WEBSOCKET_KEYS {
        for default in [key.default_v3, key.default_v4] {
            let items = [(key.name, default)];
            let loaded = load(if default.is_empty() { &[] } else { &items });
            assert!(loaded.is_ok(), "{}={default:?}: {loaded:?}", key.name);
        }
        assert!(key.servers.contains(&ServerVersion::V3), "{}", key.name);
    }
    // The only default InspIRCd 4's stock module changed.
    let differ: Vec<&str> = WEBSOCKET_KEYS
        .iter()
        .filter(|k| k.default_v3 != k.default_v4)
        .map(|k| k.name)
        .collect();
    assert_eq!(differ, ["allowmissingorigin"]);
}

#[test]
fn range_bounds_of_the_table_are_accepted_and_beyond_them_refused() {
    for key in WEBSOCKET_KEYS
        .iter()
        .filter(|k| matches!(k.kind, Kind::Size | Kind::Count | Kind::Duration))
    {
        let (low, high) = (*key.range.start(), *key.range.end());
        for ok in [low, high] {
            assert!(
                load(&[(key.name, &ok.to_string())]).is_ok(),
                "{}={ok}",
                key.name
            );
        }
        let beyond = error(&[(key.name, &(high + 1).to_string())]);
        assert!(beyond.contains("out-of-range"), "{beyond}");
        if low > 0 {
            let below = error(&[(key.name, &(low - 1).to_string())]);
            assert!(below.contains("out-of-range"), "{below}");
        }
    }
}

/// The keys a document names: the first word of lines that look like `start` + key.
fn documented(text: &str, start: &str, end: &[char]) -> Vec<String> {
    let mut keys: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(start))
        .filter_map(|rest| rest.split(end).next())
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn names(table: &[&Key]) -> Vec<String> {
    let mut names: Vec<String> = table.iter().map(|k| k.name.to_owned()).collect();
    names.sort();
    names
}

/// README.md's `<websocket>` table and modules.conf.example's key paragraphs and
/// example tag document exactly the keys of the table, and the README's defaults are
/// the table's.
#[test]
fn the_docs_document_exactly_the_table_keys() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("`<websocket>` (optional, once):")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").nth(1))
        .expect("README has the <websocket> key table");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| key"))
        .map(|l| {
            l.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let mut readme_keys: Vec<String> = rows.iter().map(|r| r[0].to_owned()).collect();
    readme_keys.sort();
    assert_eq!(
        readme_keys,
        names(&WEBSOCKET_KEYS),
        "README.md's <websocket> table"
    );
    for row in &rows {
        let key = WEBSOCKET_KEYS.iter().find(|k| k.name == row[0]).unwrap();
        let shown = |default: &'static str| if default.is_empty() { "none" } else { default };
        // A default that differs between the servers is given for each.
        let default = if key.default_v3 == key.default_v4 {
            shown(key.default_v3).to_owned()
        } else {
            format!(
                "{} on InspIRCd 3, {} on 4",
                shown(key.default_v3),
                shown(key.default_v4)
            )
        };
        assert_eq!(row[1], default, "README.md's default for {}", key.name);
    }

    let example = include_str!("../../modules.conf.example");
    let (websocket_part, origin_part) = example
        .split_once("# If you use the websocket module you MUST specify")
        .expect("modules.conf.example has its <wsorigin> part");
    assert_eq!(
        documented(websocket_part, "# ", &[':']),
        names(&WEBSOCKET_KEYS),
        "modules.conf.example's <websocket> paragraphs"
    );
    let example_tag = documented(
        &websocket_part.replace("#<websocket ", "#           "),
        "#           ",
        &['='],
    );
    // The example shows every key but the deprecated one.
    let mut shown = names(&WEBSOCKET_KEYS);
    shown.retain(|k| k != keys::SEND_AS_TEXT.name);
    assert_eq!(example_tag, shown, "the example <websocket> tag");
    assert_eq!(
        documented(origin_part, "# ", &[':']),
        names(&WSORIGIN_KEYS),
        "modules.conf.example's <wsorigin> paragraph"
    );
    assert_eq!(ALLOW.tag, "wsorigin");
}

/// InspIRCd 4's stock module admits upgrades without an Origin by default; on 4 this
/// module keeps that default, and InspIRCd 3's refusal on 3.
#[test]
fn defaults_follow_the_server_version() {
    let on = |server, items: &[(&str, &str)]| {
        Config::from_raw(&RawConfig {
            server,
            ..raw(Some(items))
        })
        .unwrap()
        .allow_missing_origin
    };
    assert!(!on(ServerVersion::V3, &[]));
    assert!(on(ServerVersion::V4, &[]));
    assert!(!on(ServerVersion::V4, &[("allowmissingorigin", "no")]));
    let without_tag = RawConfig {
        server: ServerVersion::V4,
        ..raw(None)
    };
    assert!(Config::from_raw(&without_tag).unwrap().allow_missing_origin);
}

/// `compression::Settings::default()` (what embedders get) says what the key table says.
#[test]
fn compression_settings_default_to_the_key_table() {
    assert_eq!(
        Config::with_origins(&["https://x"]).compression,
        crate::compression::Settings::default()
    );
    let c = load(&[
        ("compression", "yes"),
        ("compressionwindow", "9"),
        ("compressionminsize", "1K"),
    ])
    .unwrap();
    assert!(c.compression.enabled);
    assert_eq!(c.compression.window_bits, 9);
    assert_eq!(c.compression.min_size, 1024);
    assert!(error(&[("compressionwindow", "7")]).contains("compressionwindow"));
    assert!(error(&[("compressionhash", "15")]).contains("compressionhash"));
}

#[test]
fn proxies_limited_at_accept_are_warned_about_with_the_websocket_tag_location() {
    use crate::proxy_clones::{ClassKind, ConnectClass, ServerFacts};
    let facts = |clones_on_connect| ServerFacts {
        clones_on_connect,
        classes: vec![ConnectClass {
            name: "main".to_owned(),
            kind: ClassKind::Allow,
            hosts: vec!["*".to_owned()],
            ports: Vec::new(),
            registered_only: false,
            local_max: 3,
            global_max: 3,
        }],
        websocket_ports: vec![8080],
    };
    let with = |facts, ranges| {
        let mut r = raw(Some(&[("proxyranges", ranges)]));
        r.server_facts = Some(facts);
        Config::from_raw(&r).unwrap().warnings
    };
    let warnings = with(facts(true), "127.0.0.1");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_names(
        &warnings[0],
        &[LOC, "127.0.0.1", "\"main\"", "clonesonconnect=\"no\""],
    );
    assert!(with(facts(false), "127.0.0.1").is_empty());
    assert!(with(facts(true), "").is_empty());
}
