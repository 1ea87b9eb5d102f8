//! Handshake tests; `BAD_INPUT` rows 1-13, 15, 20-21 are named `row_NN_...`.

use super::*;
use crate::config::Config;
use crate::proxy::ProxyRanges;
use proptest::prelude::*;

const ORIGIN: &str = "https://chat.example.com";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn config() -> Config {
    Config::with_origins(&["https://*.example.com"])
}

fn user_peer() -> Peer {
    Peer {
        address: "127.0.0.1".parse().ok(),
        socket: SocketKind::User,
        proxy_protocol: false,
    }
}

/// A browser-like request with `extra` header lines, and `skip` header names left out.
fn request_with(extra: &[&str], skip: &[&str]) -> Vec<u8> {
    let base = [
        ("Host", "irc.example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
        ("Origin", ORIGIN),
    ];
    let mut text = String::from("GET / HTTP/1.1\r\n");
    for (name, value) in base {
        if !skip.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            text.push_str(name);
            text.push_str(": ");
            text.push_str(value);
            text.push_str("\r\n");
        }
    }
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fn request() -> Vec<u8> {
    request_with(&[], &[])
}

fn poll_with(buf: &[u8], config: &Config, peer: Peer) -> HandshakeStatus {
    HandshakeScanner::default().poll(buf, config, peer)
}

fn poll(buf: &[u8]) -> HandshakeStatus {
    poll_with(buf, &config(), user_peer())
}

fn rejected(buf: &[u8]) -> RejectReason {
    match poll(buf) {
        HandshakeStatus::Rejected(reason) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn accepted_with(buf: &[u8], config: &Config, peer: Peer) -> Accepted {
    match poll_with(buf, config, peer) {
        HandshakeStatus::Accepted(accepted) => accepted,
        other => panic!("expected an upgrade, got {other:?}"),
    }
}

fn accepted(buf: &[u8]) -> Accepted {
    accepted_with(buf, &config(), user_peer())
}

fn response_text(accepted: &Accepted) -> String {
    String::from_utf8(accepted.response.clone()).expect("response is ASCII")
}

#[test]
fn accept_key_matches_rfc6455_example() {
    assert_eq!(&accept_key(KEY.as_bytes()), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn valid_request_gets_101_with_accept_key_and_no_protocol() {
    let accepted = accepted(&request());
    assert_eq!(
        response_text(&accepted),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
    assert_eq!(accepted.request_len, request().len());
    assert_eq!(accepted.mode, MessageMode::Text);
    assert_eq!(accepted.subprotocol, None);
    assert_eq!(accepted.origin.as_deref(), Some(ORIGIN));
    assert_eq!(accepted.real_ip, None);
}

#[test]
fn incomplete_request_is_partial() {
    let full = request();
    for cut in 0..full.len() {
        assert_eq!(poll(&full[..cut]), HandshakeStatus::Partial, "cut at {cut}");
    }
}

#[test]
fn row_01_non_get_method_gets_405_with_allow_get() {
    let mut req = request();
    req.splice(0..3, b"POST".iter().copied());
    let reason = rejected(&req);
    assert_eq!(reason, RejectReason::MethodNotAllowed);
    let response = String::from_utf8(reason.response()).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nAllow: GET\r\n"), "{response}");
}

#[test]
fn row_02_http_1_0_gets_400() {
    let mut req = request();
    let text = String::from_utf8(req.clone())
        .unwrap()
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    req = text.into_bytes();
    assert_eq!(rejected(&req), RejectReason::HttpVersion);
    assert_eq!(RejectReason::HttpVersion.status(), 400);
}

#[test]
fn row_03_missing_host_gets_400() {
    assert_eq!(
        rejected(&request_with(&[], &["Host"])),
        RejectReason::MissingHost
    );
    assert_eq!(RejectReason::MissingHost.status(), 400);
}

#[test]
fn row_04_missing_or_wrong_upgrade_gets_400() {
    assert_eq!(
        rejected(&request_with(&[], &["Upgrade"])),
        RejectReason::NotUpgrade
    );
    assert_eq!(
        rejected(&request_with(&["Upgrade: h2c"], &["Upgrade"])),
        RejectReason::NotUpgrade
    );
    assert_eq!(RejectReason::NotUpgrade.status(), 400);
}

#[test]
fn row_05_connection_token_list_with_upgrade_is_accepted() {
    accepted(&request_with(
        &["Connection: keep-alive, Upgrade"],
        &["Connection"],
    ));
    accepted(&request_with(
        &["connection: KEEP-ALIVE,upgrade"],
        &["Connection"],
    ));
}

#[test]
fn row_06_connection_without_upgrade_token_gets_400() {
    assert_eq!(
        rejected(&request_with(&["Connection: keep-alive"], &["Connection"])),
        RejectReason::ConnectionNotUpgrade
    );
    assert_eq!(
        rejected(&request_with(&["Connection: upgrades"], &["Connection"])),
        RejectReason::ConnectionNotUpgrade
    );
}

#[test]
fn row_07_key_not_16_bytes_of_base64_or_given_twice_gets_400() {
    let fifteen = BASE64.encode([7u8; 15]);
    for bad in ["not base64!!", fifteen.as_str()] {
        let line = format!("Sec-WebSocket-Key: {bad}");
        assert_eq!(
            rejected(&request_with(&[&line], &["Sec-WebSocket-Key"])),
            RejectReason::InvalidKey,
            "{bad}"
        );
    }
    // 17 bytes.
    let seventeen = BASE64.encode([7u8; 17]);
    let line = format!("Sec-WebSocket-Key: {seventeen}");
    assert_eq!(
        rejected(&request_with(&[&line], &["Sec-WebSocket-Key"])),
        RejectReason::InvalidKey
    );
    assert_eq!(
        rejected(&request_with(
            &["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="],
            &[]
        )),
        RejectReason::DuplicateKey
    );
    assert_eq!(RejectReason::InvalidKey.status(), 400);
    assert_eq!(RejectReason::DuplicateKey.status(), 400);
}

#[test]
fn row_08_missing_key_gets_501_like_stock() {
    assert_eq!(
        rejected(&request_with(&[], &["Sec-WebSocket-Key"])),
        RejectReason::MissingKey
    );
    // A browser navigating to the port: no Upgrade and no key is still the stock 501.
    assert_eq!(
        rejected(&request_with(
            &[],
            &["Sec-WebSocket-Key", "Upgrade", "Connection"]
        )),
        RejectReason::MissingKey
    );
    assert!(RejectReason::MissingKey
        .response()
        .starts_with(b"HTTP/1.1 501 Not Implemented\r\n"));
}

#[test]
fn row_09_version_other_than_13_or_missing_gets_426_with_version_header() {
    for req in [
        request_with(&["Sec-WebSocket-Version: 8"], &["Sec-WebSocket-Version"]),
        request_with(&[], &["Sec-WebSocket-Version"]),
    ] {
        let reason = rejected(&req);
        assert_eq!(reason, RejectReason::UnsupportedVersion);
        let response = String::from_utf8(reason.response()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{response}"
        );
        assert!(
            response.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{response}"
        );
    }
}

#[test]
fn row_10_missing_origin_gets_400_and_foreign_origin_403() {
    assert_eq!(
        rejected(&request_with(&[], &["Origin"])),
        RejectReason::MissingOrigin
    );
    assert_eq!(RejectReason::MissingOrigin.status(), 400);
    assert_eq!(
        rejected(&request_with(&["Origin: https://evil.test"], &["Origin"])),
        RejectReason::OriginNotAllowed
    );
    assert_eq!(RejectReason::OriginNotAllowed.status(), 403);
}

#[test]
fn missing_origin_is_accepted_when_allowmissingorigin_is_set() {
    let mut config = config();
    config.allow_missing_origin = true;
    let accepted = accepted_with(&request_with(&[], &["Origin"]), &config, user_peer());
    assert_eq!(accepted.origin, None);
}

#[test]
fn row_11_header_names_in_any_case_and_padded_values_are_parsed_the_same() {
    let text = format!(
        "GET /irc HTTP/1.1\r\nhOsT: x\r\nUPGRADE:   WebSocket  \r\nconnection:\tupgrade\r\n\
         sec-websocket-key:  {KEY}\t\r\nSEC-WEBSOCKET-VERSION: 13 \r\norigin:  {ORIGIN}  \r\n\r\n"
    );
    let accepted = accepted(text.as_bytes());
    assert!(response_text(&accepted).contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(accepted.origin.as_deref(), Some(ORIGIN));
}

#[test]
fn row_12_oversized_request_gets_431_before_the_end_arrives() {
    let limit = config().limits.max_handshake_bytes;
    let mut req = b"GET / HTTP/1.1\r\nX-Filler: ".to_vec();
    req.resize(limit + 1, b'a');
    assert_eq!(rejected(&req), RejectReason::TooLarge);
    assert!(RejectReason::TooLarge
        .response()
        .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

#[test]
fn row_12_too_many_headers_gets_431() {
    let filler: Vec<String> = (0..200).map(|i| format!("X-{i}: y")).collect();
    let filler: Vec<&str> = filler.iter().map(String::as_str).collect();
    let mut config = config();
    config.limits.max_handshake_bytes = 65536;
    match poll_with(&request_with(&filler, &[]), &config, user_peer()) {
        HandshakeStatus::Rejected(reason) => assert_eq!(reason, RejectReason::TooManyHeaders),
        other => panic!("{other:?}"),
    }
}

#[test]
fn row_13_request_trickled_one_byte_at_a_time_upgrades() {
    let full = request();
    let mut scanner = HandshakeScanner::default();
    let config = config();
    for end in 1..full.len() {
        assert_eq!(
            scanner.poll(&full[..end], &config, user_peer()),
            HandshakeStatus::Partial
        );
    }
    match scanner.poll(&full, &config, user_peer()) {
        HandshakeStatus::Accepted(accepted) => assert_eq!(accepted.request_len, full.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn row_13_trickled_request_is_scanned_linearly() {
    // The scanner resumes where it stopped: after n one-byte polls, it has looked at
    // each byte a bounded number of times (the window restarts 3 bytes back).
    let full = request();
    let mut scanner = HandshakeScanner::default();
    let config = config();
    for end in 1..full.len() {
        scanner.poll(&full[..end], &config, user_peer());
        assert_eq!(scanner.scanned, end);
    }
}

#[test]
fn row_14_bytes_after_the_request_are_left_for_the_frame_reader() {
    let mut buf = request();
    let request_len = buf.len();
    buf.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
    assert_eq!(accepted(&buf).request_len, request_len);
}

#[test]
fn row_15_plain_irc_client_gets_400_at_the_first_line() {
    assert_eq!(rejected(b"NICK foo\r\n"), RejectReason::NotHttp);
    assert_eq!(rejected(b"NICK foo\r\n\r\n"), RejectReason::NotHttp);
    assert_eq!(RejectReason::NotHttp.status(), 400);
}

#[test]
fn row_20_first_known_subprotocol_in_client_order_is_chosen_and_echoed() {
    let accepted = accepted(&request_with(
        &["Sec-WebSocket-Protocol: foo, binary.ircv3.net, text.ircv3.net"],
        &[],
    ));
    assert_eq!(accepted.subprotocol, Some(Subprotocol::BinaryIrcv3));
    assert_eq!(accepted.mode, MessageMode::Binary);
    assert!(response_text(&accepted).contains("\r\nSec-WebSocket-Protocol: binary.ircv3.net\r\n"));
}

#[test]
fn subprotocols_in_several_headers_are_one_list() {
    let accepted = accepted(&request_with(
        &[
            "Sec-WebSocket-Protocol: foo",
            "Sec-WebSocket-Protocol: text.inspircd.org",
        ],
        &[],
    ));
    assert_eq!(accepted.subprotocol, Some(Subprotocol::TextInspircd));
}

#[test]
fn each_subprotocol_selects_its_mode() {
    for protocol in Subprotocol::iter() {
        let line = format!("Sec-WebSocket-Protocol: {}", protocol.name());
        let accepted = accepted(&request_with(&[&line], &[]));
        assert_eq!(accepted.subprotocol, Some(protocol));
        assert_eq!(accepted.mode, protocol.mode());
    }
}

#[test]
fn subprotocol_is_echoed_in_the_clients_spelling() {
    let accepted = accepted(&request_with(
        &["Sec-WebSocket-Protocol: Text.IRCv3.net"],
        &[],
    ));
    assert_eq!(accepted.subprotocol, Some(Subprotocol::TextIrcv3));
    assert!(response_text(&accepted).contains("Sec-WebSocket-Protocol: Text.IRCv3.net\r\n"));
}

#[test]
fn ircv3_subprotocols_are_only_offered_on_user_sockets() {
    let server = Peer {
        address: "127.0.0.1".parse().ok(),
        socket: SocketKind::Server,
        proxy_protocol: false,
    };
    let req = request_with(
        &["Sec-WebSocket-Protocol: binary.ircv3.net, text.inspircd.org"],
        &[],
    );
    let accepted = accepted_with(&req, &config(), server);
    assert_eq!(accepted.subprotocol, Some(Subprotocol::TextInspircd));
}

#[test]
fn row_21_unknown_subprotocols_fall_back_to_defaultmode_without_echo() {
    let req = request_with(&["Sec-WebSocket-Protocol: foo, bar"], &[]);
    let mut config = config();
    for (mode, expected) in [
        (DefaultMode::Text, MessageMode::Text),
        (DefaultMode::Binary, MessageMode::Binary),
    ] {
        config.default_mode = mode;
        let accepted = accepted_with(&req, &config, user_peer());
        assert_eq!(accepted.mode, expected);
        assert!(!response_text(&accepted).contains("Sec-WebSocket-Protocol"));
    }
    config.default_mode = DefaultMode::Reject;
    match poll_with(&req, &config, user_peer()) {
        HandshakeStatus::Rejected(reason) => {
            assert_eq!(reason, RejectReason::NoSubprotocol);
            assert_eq!(reason.status(), 400);
        }
        other => panic!("{other:?}"),
    }
}

fn proxied_config(ranges: &str) -> Config {
    let mut config = config();
    config.proxy_ranges = ProxyRanges::parse(ranges).expect("valid ranges");
    config
}

#[test]
fn trusted_proxy_reports_the_real_address() {
    let config = proxied_config("127.0.0.0/8");
    let req = request_with(&["X-Forwarded-For: 198.51.100.9, 127.0.0.1"], &[]);
    let accepted = accepted_with(&req, &config, user_peer());
    assert_eq!(accepted.real_ip, Some("198.51.100.9".parse().unwrap()));
}

#[test]
fn proxy_header_is_required_when_proxyranges_is_set() {
    let config = proxied_config("192.0.2.0/24");
    match poll_with(&request(), &config, user_peer()) {
        HandshakeStatus::Rejected(reason) => assert_eq!(reason, RejectReason::MissingProxyHeader),
        other => panic!("{other:?}"),
    }
    let req = request_with(&["X-Real-IP: garbage"], &[]);
    match poll_with(&req, &config, user_peer()) {
        HandshakeStatus::Rejected(reason) => {
            assert_eq!(reason, RejectReason::MalformedProxyHeader);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn proxyheader_decides_which_header_counts_and_a_disagreement_is_reported() {
    let mut config = proxied_config("127.0.0.1");
    let req = request_with(
        &["X-Real-IP: 127.0.0.66", "X-Forwarded-For: 127.0.0.5"],
        &[],
    );
    // The default refuses headers that disagree.
    match poll_with(&req, &config, user_peer()) {
        HandshakeStatus::Disagreed(conflict) => {
            assert_eq!(conflict.used.ip, "127.0.0.66".parse::<IpAddr>().unwrap());
            assert_eq!(conflict.other.ip, "127.0.0.5".parse::<IpAddr>().unwrap());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(RejectReason::ProxyHeadersDisagree.status(), 400);
    config.proxy_header = crate::proxy::ProxyHeader::parse("x-forwarded-for").unwrap();
    let accepted = accepted_with(&req, &config, user_peer());
    assert_eq!(accepted.real_ip, Some("127.0.0.5".parse().unwrap()));
    let conflict = accepted.header_conflict.expect("a conflict");
    assert_eq!(conflict.other.ip, "127.0.0.66".parse::<IpAddr>().unwrap());
}

#[test]
fn after_a_proxy_protocol_header_the_requests_address_headers_are_not_read() {
    let config = proxied_config("127.0.0.1");
    let peer = Peer {
        proxy_protocol: true,
        ..user_peer()
    };
    // Not even required.
    assert_eq!(accepted_with(&request(), &config, peer).real_ip, None);
    let req = request_with(&["X-Real-IP: 198.51.100.1"], &[]);
    assert_eq!(accepted_with(&req, &config, peer).real_ip, None);
}

#[test]
fn proto_header_is_read_only_when_named_and_only_from_a_trusted_proxy() {
    use crate::secure::ProtoHeader;
    let mut config = proxied_config("127.0.0.1");
    let https = request_with(
        &["X-Real-IP: 198.51.100.1", "X-Forwarded-Proto: https"],
        &[],
    );
    assert_eq!(
        accepted_with(&https, &config, user_peer()).client_tls,
        ClientTls::Unstated
    );
    config.proto_header = ProtoHeader::XForwardedProto;
    assert_eq!(
        accepted_with(&https, &config, user_peer()).client_tls,
        ClientTls::Yes
    );
    let http = request_with(&["X-Real-IP: 198.51.100.1", "X-Forwarded-Proto: http"], &[]);
    assert_eq!(
        accepted_with(&http, &config, user_peer()).client_tls,
        ClientTls::No
    );
    let none = request_with(&["X-Real-IP: 198.51.100.1"], &[]);
    assert_eq!(
        accepted_with(&none, &config, user_peer()).client_tls,
        ClientTls::Unstated
    );
    let outsider = Peer {
        address: "192.0.2.1".parse().ok(),
        ..user_peer()
    };
    assert_eq!(
        accepted_with(&https, &config, outsider).client_tls,
        ClientTls::Unstated
    );
    for bad in [
        &["X-Real-IP: 198.51.100.1", "X-Forwarded-Proto: https, http"][..],
        &[
            "X-Real-IP: 198.51.100.1",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Proto: https",
        ],
        &["X-Real-IP: 198.51.100.1", "X-Forwarded-Proto: gopher"],
    ] {
        match poll_with(&request_with(bad, &[]), &config, user_peer()) {
            HandshakeStatus::Rejected(reason) => {
                assert_eq!(reason, RejectReason::MalformedProtoHeader);
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    config.proto_header = ProtoHeader::Forwarded;
    let forwarded = request_with(&["Forwarded: for=198.51.100.1;proto=https"], &[]);
    assert_eq!(
        accepted_with(&forwarded, &config, user_peer()).client_tls,
        ClientTls::Yes
    );
}

#[test]
fn the_health_check_path_is_answered_before_any_other_check() {
    let mut config = proxied_config("127.0.0.1");
    config.health_check = Some("/health".to_owned());
    for (request, head_only) in [
        (&b"GET /health HTTP/1.0\r\n\r\n"[..], false),
        (b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (b"GET /health?probe=1 HTTP/1.1\r\n\r\n", false),
    ] {
        assert_eq!(
            poll_with(request, &config, user_peer()),
            HandshakeStatus::HealthCheck { head_only },
            "{}",
            request.escape_ascii()
        );
    }
    // Other paths and methods are WebSocket requests as before.
    for request in [
        &b"GET /healthz HTTP/1.0\r\n\r\n"[..],
        b"POST /health HTTP/1.1\r\n\r\n",
    ] {
        assert!(matches!(
            poll_with(request, &config, user_peer()),
            HandshakeStatus::Rejected(_)
        ));
    }
    config.health_check = None;
    assert!(matches!(
        poll_with(b"GET /health HTTP/1.0\r\n\r\n", &config, user_peer()),
        HandshakeStatus::Rejected(RejectReason::HttpVersion)
    ));
    assert!(HEALTH_RESPONSE.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(HEALTH_RESPONSE_HEAD.ends_with(b"\r\n\r\n"));
    assert_eq!(
        HEALTH_RESPONSE.strip_prefix(HEALTH_RESPONSE_HEAD),
        Some(&b"OK\n"[..])
    );
}

#[test]
fn a_mapped_address_from_a_dual_stack_proxy_becomes_ipv4() {
    let config = proxied_config("127.0.0.1");
    let req = request_with(&["X-Real-IP: ::ffff:127.0.0.5"], &[]);
    let accepted = accepted_with(&req, &config, user_peer());
    assert_eq!(accepted.real_ip, Some("127.0.0.5".parse().unwrap()));
}

#[test]
fn a_second_origin_header_gets_400() {
    let req = request_with(&["Origin: https://evil.test"], &[]);
    assert_eq!(rejected(&req), RejectReason::DuplicateOrigin);
    assert_eq!(RejectReason::DuplicateOrigin.status(), 400);
    // Even two allowed ones: which one the browser sent cannot be told.
    let req = request_with(&["Origin: https://www.example.com"], &[]);
    assert_eq!(rejected(&req), RejectReason::DuplicateOrigin);
    let mut config = config();
    config.allow_missing_origin = true;
    let req = request_with(&["Origin: https://www.example.com"], &[]);
    match poll_with(&req, &config, user_peer()) {
        HandshakeStatus::Rejected(reason) => assert_eq!(reason, RejectReason::DuplicateOrigin),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_request_with_a_body_gets_400() {
    for extra in [
        &["Content-Length: 5"][..],
        &["Content-Length: -0"][..],
        &["Content-Length: x"][..],
        &["Content-Length: 0", "Content-Length: 4"][..],
        &["Transfer-Encoding: chunked"][..],
        &["Transfer-Encoding: identity"][..],
    ] {
        let mut req = request_with(extra, &[]);
        req.extend_from_slice(b"hello");
        assert_eq!(rejected(&req), RejectReason::RequestBody, "{extra:?}");
    }
    assert_eq!(RejectReason::RequestBody.status(), 400);
    for zero in ["Content-Length: 0", "Content-Length: 00"] {
        let req = request_with(&[zero], &[]);
        assert!(matches!(poll(&req), HandshakeStatus::Accepted(_)), "{zero}");
    }
}

#[test]
fn untrusted_peer_proxy_header_is_ignored() {
    let config = proxied_config("192.0.2.0/24");
    let req = request_with(&["X-Real-IP: 198.51.100.7"], &[]);
    assert_eq!(accepted_with(&req, &config, user_peer()).real_ip, None);
}

#[test]
fn every_rejection_response_closes_and_names_the_reason() {
    for reason in RejectReason::iter() {
        let response = String::from_utf8(reason.response()).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("header end");
        assert!(head.starts_with(&format!("HTTP/1.1 {} ", reason.status())));
        assert!(head.contains("\r\nConnection: close"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert_eq!(body.trim_end(), reason.text());
    }
}

proptest! {
    #[test]
    fn any_chunking_of_a_request_gives_the_same_result(
        cuts in proptest::collection::vec(0usize..400, 0..12),
        with_frame in any::<bool>(),
    ) {
        let mut full = request_with(&["Sec-WebSocket-Protocol: text.ircv3.net"], &[]);
        if with_frame {
            full.extend_from_slice(&[0x81, 0x80, 9, 9, 9, 9]);
        }
        let expected = poll(&full);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (full.len() + 1)).collect();
        cuts.sort_unstable();
        let mut scanner = HandshakeScanner::default();
        let config = config();
        for cut in cuts {
            let status = scanner.poll(&full[..cut], &config, user_peer());
            if status != HandshakeStatus::Partial {
                prop_assert_eq!(status, expected.clone());
                return Ok(());
            }
        }
        prop_assert_eq!(scanner.poll(&full, &config, user_peer()), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let status = poll(&bytes);
        if let HandshakeStatus::Accepted(accepted) = status {
            prop_assert!(accepted.request_len <= bytes.len());
        }
    }
}

#[test]
fn oversized_request_line_gets_the_same_answer_however_it_is_split() {
    let config = config();
    let limit = config.limits.max_handshake_bytes;
    let mut line = b"GET /".to_vec();
    line.resize(limit + 10, b'a');
    line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let whole = poll(&line);
    assert_eq!(whole, HandshakeStatus::Rejected(RejectReason::TooLarge));
    let mut scanner = HandshakeScanner::default();
    assert_eq!(
        scanner.poll(&line[..limit - 1], &config, user_peer()),
        HandshakeStatus::Partial
    );
    assert_eq!(scanner.poll(&line, &config, user_peer()), whole);
}
