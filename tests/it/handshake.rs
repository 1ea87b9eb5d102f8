//! The HTTP upgrade: accepted requests, the stock module's HTTP errors, and the
//! RFC 6455 strictness only this project's module has.

use crate::common::*;

/// Starts a server, sends `req` raw, returns the response (the server stays up).
fn exchange(conf: Conf, req: &[u8]) -> (Server, HttpResponse) {
    let mut server = Server::start(conf);
    let r = http_exchange(server.ws_port, req).expect("the response");
    server.assert_alive();
    (server, r)
}

/// For shared error rows: the stock-compatible part for both modules; for ours also the
/// plain-text body naming the reason and the "WebSocket: <reason>" quit in the log.
fn shared_error(m: Module, conf: Conf, req: &[u8], status: u16, keywords: &[&str]) {
    let (server, r) = exchange(conf, req);
    assert_error_closed(&r, status);
    if m == Module::Ours {
        assert_ours_error(&r, status, keywords);
        assert_quit_logged(&server, keywords);
    }
}

/// For ours-only rows.
fn ours_error(req: &[u8], statuses: &[u16], keywords: &[&str]) -> HttpResponse {
    let (server, r) = exchange(Conf::new(Module::Ours), req);
    assert!(
        statuses.contains(&r.status),
        "expected status in {statuses:?}, got {r:?}"
    );
    assert_ours_error(&r, r.status, keywords);
    assert_quit_logged(&server, keywords);
    r
}

fn ours_accepts(req: &[u8]) -> HttpResponse {
    let (_server, r) = exchange(Conf::new(Module::Ours), req);
    assert_eq!(r.status, 101, "expected 101, got {r:?}");
    r
}

// ---------------------------------------------------------------------------------------
// Accepted upgrades (both modules)
// ---------------------------------------------------------------------------------------

fn upgrade_101_exact(m: Module) {
    let server = Server::start(Conf::new(m));
    let (_c, r) = Client::upgrade(server.ws_port, &[]).expect("upgrade");
    assert_eq!(r.status_line, "HTTP/1.1 101 Switching Protocols");
    assert_eq!(r.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    assert_eq!(accept_for(SAMPLE_KEY), SAMPLE_ACCEPT);
    assert!(r
        .header("Upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert!(r
        .header("Connection")
        .unwrap()
        .eq_ignore_ascii_case("Upgrade"));
    assert_eq!(r.header_count("Sec-WebSocket-Protocol"), 0, "{r:?}");
    assert_eq!(r.header_count("Sec-WebSocket-Extensions"), 0, "{r:?}");
}
both_modules!(upgrade_101_exact);

/// tungstenite (a real client) upgrades and registers.
fn tungstenite_registers(m: Module) {
    let server = Server::start(Conf::new(m));
    let mut c = server.ws("wsuser").expect("wsuser");
    c.sync("t1").expect("round trip");
}
both_modules!(tungstenite_registers);

fn origin_glob_case_insensitive(m: Module) {
    let server =
        Server::start(Conf::new(m).origins(&["https://*.example.com", "http://exact.test"]));
    for origin in [
        "https://app.example.com",
        "HTTPS://Chat.Example.COM",
        "http://exact.test",
    ] {
        let c = WsClient::connect(server.ws_port, &WsOpts::default().origin(Some(origin)));
        assert!(
            c.is_ok(),
            "origin {origin} refused: {}",
            describe_ws_error(&c.err().unwrap())
        );
    }
    for origin in [
        "https://example.com",
        "http://exact.test.evil",
        "https://app.example.com.evil",
    ] {
        let r = http_exchange(server.ws_port, &upgrade_request_from(Some(origin)))
            .expect("the response");
        assert_error_closed(&r, 403);
    }
}
both_modules!(origin_glob_case_insensitive);

/// BAD_INPUT 13: a request trickled one byte at a time still upgrades.
fn trickled_request_upgrades(m: Module) {
    let server = Server::start(Conf::new(m));
    let mut c = Client::raw(None, server.ws_port).expect("connect");
    for b in upgrade_request(&[]) {
        c.send(&[b]).expect("send");
    }
    let r = c.read_response().expect("the response");
    assert_eq!(r.status, 101, "{r:?}");
    assert_eq!(r.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    c.register("trickle").expect("registration");
}
both_modules!(trickled_request_upgrades);

/// BAD_INPUT 14: request and first frames in one write; the frames are not lost.
fn request_and_frames_in_one_write(m: Module) {
    let server = Server::start(Conf::new(m));
    let mut c = Client::raw(None, server.ws_port).expect("connect");
    let mut bytes = upgrade_request(&[]);
    bytes.extend(encode_frame(true, OP_TEXT, b"NICK onewrite", Some(MASK)));
    bytes.extend(encode_frame(
        true,
        OP_TEXT,
        b"USER u 0 * :one write",
        Some(MASK),
    ));
    c.send(&bytes).expect("send");
    let r = c.read_response().expect("the response");
    assert_eq!(r.status, 101, "{r:?}");
    let f = c
        .expect_frame("numeric 001", |f| is_numeric(&f.payload, "001"))
        .expect("numeric 001");
    assert!(
        show(&f.payload).starts_with(":test.example 001 onewrite :"),
        "{f:?}"
    );
}
both_modules!(request_and_frames_in_one_write);

// ---------------------------------------------------------------------------------------
// HTTP errors shared with the stock module
// ---------------------------------------------------------------------------------------

/// With `allowmissingorigin="no"`: InspIRCd 4's default is yes (3's module has no key and
/// always refuses).
fn missing_origin_400(m: Module) {
    let req = upgrade_request_from(None);
    let conf = Conf::new(m).websocket(r#"allowmissingorigin="no""#);
    shared_error(m, conf, &req, 400, &["origin"]);
}
both_modules!(missing_origin_400);

fn origin_not_allowed_403(m: Module) {
    let req = upgrade_request_from(Some("https://evil.example"));
    shared_error(m, Conf::new(m), &req, 403, &["origin"]);
}
both_modules!(origin_not_allowed_403);

/// tungstenite sees the 403 as an HTTP error, not an upgrade.
fn origin_not_allowed_tungstenite(m: Module) {
    let server = Server::start(Conf::new(m));
    let r = WsClient::connect(
        server.ws_port,
        &WsOpts::default().origin(Some("https://evil.example")),
    );
    assert_http_refusal(r, 403);
}
both_modules!(origin_not_allowed_tungstenite);

fn proxy_header_missing_400(m: Module) {
    let conf = Conf::new(m).websocket(r#"proxyranges="127.0.0.0/8""#);
    shared_error(
        m,
        conf,
        &upgrade_request(&[]),
        400,
        &["x-real-ip", "x-forwarded-for", "proxy", "real ip"],
    );
}
both_modules!(proxy_header_missing_400);

fn proxy_header_malformed_400(m: Module) {
    let conf = Conf::new(m).websocket(r#"proxyranges="127.0.0.0/8""#);
    shared_error(
        m,
        conf,
        &upgrade_request(&["X-Real-IP: not-an-address"]),
        400,
        &["x-real-ip", "x-forwarded-for", "proxy", "address"],
    );
}
both_modules!(proxy_header_malformed_400);

/// BAD_INPUT 18: with proxyranges set, a client outside them must still send a header.
fn proxy_header_missing_untrusted_peer_400(m: Module) {
    let conf = Conf::new(m).websocket(r#"proxyranges="192.0.2.0/24""#);
    shared_error(
        m,
        conf,
        &upgrade_request(&[]),
        400,
        &["x-real-ip", "x-forwarded-for", "proxy", "real ip"],
    );
}
both_modules!(proxy_header_missing_untrusted_peer_400);

fn reject_mode_without_subprotocol_400(m: Module) {
    let conf = Conf::new(m).websocket(r#"defaultmode="reject""#);
    shared_error(
        m,
        conf,
        &upgrade_request(&[]),
        400,
        &["subprotocol", "sec-websocket-protocol"],
    );
}
both_modules!(reject_mode_without_subprotocol_400);

/// BAD_INPUT 8: no Sec-WebSocket-Key -> 501 (stock compatibility).
fn missing_key_501(m: Module) {
    let req = request(
        "GET / HTTP/1.1",
        &[
            "Host: 127.0.0.1",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            &format!("Origin: {ORIGIN}"),
        ],
    );
    shared_error(
        m,
        Conf::new(m),
        &req,
        501,
        &["sec-websocket-key", "upgrade"],
    );
}
both_modules!(missing_key_501);

/// BAD_INPUT 15: a request line that is not HTTP at all; ours must name the reason.
/// Stock answers 400 on InspIRCd 3 (it finds no Origin header) and 501 on 4 (whose
/// default lets a request without Origin through to the Upgrade check).
fn not_http_400(m: Module) {
    let status = match (m, dialect()) {
        (Module::Stock, Dialect::V4) => 501,
        _ => 400,
    };
    shared_error(
        m,
        Conf::new(m),
        b"NICK foo\r\n\r\n",
        status,
        &["request", "http", "method"],
    );
}
both_modules!(not_http_400);

// ---------------------------------------------------------------------------------------
// RFC 6455 strictness: ours only
// ---------------------------------------------------------------------------------------

fn with_request_line(line: &str) -> Vec<u8> {
    let r = upgrade_request(&[]);
    let s = String::from_utf8(r).unwrap();
    let rest = s.split_once("\r\n").unwrap().1;
    format!("{line}\r\n{rest}").into_bytes()
}

fn without_header(name: &str) -> Vec<u8> {
    let s = String::from_utf8(upgrade_request(&[])).unwrap();
    s.split("\r\n")
        .filter(|l| {
            !l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

fn replace_header(name: &str, line: &str) -> Vec<u8> {
    let s = String::from_utf8(upgrade_request(&[])).unwrap();
    s.split("\r\n")
        .map(|l| {
            if l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

/// BAD_INPUT 1. Stock answers 101 to any method.
#[test]
fn post_405_with_allow_get_ours() {
    let r = ours_error(
        &with_request_line("POST / HTTP/1.1"),
        &[405],
        &["method", "get"],
    );
    assert_eq!(r.header("Allow"), Some("GET"), "{r:?}");
}

/// BAD_INPUT 2. Stock ignores the HTTP version.
#[test]
fn http10_rejected_ours() {
    ours_error(
        &with_request_line("GET / HTTP/1.0"),
        &[400, 505],
        &["http/1.1", "version"],
    );
}

/// BAD_INPUT 3. Stock does not look at Host.
#[test]
fn missing_host_400_ours() {
    ours_error(&without_header("Host"), &[400], &["host"]);
}

/// BAD_INPUT 4. Stock does not look at Upgrade.
#[test]
fn missing_upgrade_rejected_ours() {
    ours_error(&without_header("Upgrade"), &[400, 426], &["upgrade"]);
}

/// BAD_INPUT 4. Stock does not look at Upgrade.
#[test]
fn upgrade_not_websocket_rejected_ours() {
    ours_error(
        &replace_header("Upgrade", "Upgrade: h2c"),
        &[400, 426],
        &["upgrade", "websocket"],
    );
}

/// BAD_INPUT 6. Stock does not look at Connection.
#[test]
fn connection_without_upgrade_token_400_ours() {
    ours_error(
        &replace_header("Connection", "Connection: keep-alive"),
        &[400],
        &["connection", "upgrade"],
    );
}

/// BAD_INPUT 6: a missing Connection header. Stock does not look at Connection.
#[test]
fn missing_connection_400_ours() {
    ours_error(
        &without_header("Connection"),
        &[400],
        &["connection", "upgrade"],
    );
}

/// BAD_INPUT 5: token list, case-insensitive (stock accepts too, since it never checks).
#[test]
fn connection_token_list_accepted_ours() {
    let r = ours_accepts(&replace_header(
        "Connection",
        "Connection: keep-alive, Upgrade",
    ));
    assert_eq!(r.header("Sec-WebSocket-Accept"), Some(SAMPLE_ACCEPT));
    ours_accepts(&replace_header(
        "Connection",
        "Connection: upgrade,keep-alive",
    ));
}

/// BAD_INPUT 11: header names in any case, values trimmed. Stock matches header names
/// case-sensitively and refuses `origin:` with 400.
#[test]
fn header_names_any_case_values_trimmed_ours() {
    let req = request(
        "GET /irc HTTP/1.1",
        &[
            "host: 127.0.0.1",
            "UPGRADE:   WebSocket  ",
            "connection: keep-alive,   UPGRADE",
            &format!("sec-websocket-key:   {SAMPLE_KEY}   "),
            "SEC-WEBSOCKET-VERSION: 13",
            &format!("origin: \t{ORIGIN}"),
        ],
    );
    let r = ours_accepts(&req);
    assert_eq!(
        r.header("Sec-WebSocket-Accept"),
        Some(SAMPLE_ACCEPT),
        "{r:?}"
    );
}

/// BAD_INPUT 7. Stock hashes whatever it gets.
#[test]
fn key_not_base64_400_ours() {
    ours_error(
        &replace_header(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: not*base64*at*all!!",
        ),
        &[400],
        &["sec-websocket-key", "key"],
    );
}

/// BAD_INPUT 7: 15 bytes. Stock accepts.
#[test]
fn key_15_bytes_400_ours() {
    // base64 of 15 bytes "0123456789abcde"
    ours_error(
        &replace_header(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2Rl",
        ),
        &[400],
        &["sec-websocket-key", "key"],
    );
}

/// BAD_INPUT 7: 17 bytes. Stock accepts.
#[test]
fn key_17_bytes_400_ours() {
    // base64 of 17 bytes "0123456789abcdefg"
    ours_error(
        &replace_header(
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZmc=",
        ),
        &[400],
        &["sec-websocket-key", "key"],
    );
}

/// BAD_INPUT 7: two keys. Stock uses the first.
#[test]
fn two_keys_400_ours() {
    ours_error(
        &upgrade_request(&["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA=="]),
        &[400],
        &["sec-websocket-key", "key"],
    );
}

/// BAD_INPUT 9. Stock ignores the version.
#[test]
fn missing_version_426_ours() {
    let r = ours_error(
        &without_header("Sec-WebSocket-Version"),
        &[426],
        &["version"],
    );
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"), "{r:?}");
}

/// BAD_INPUT 9. Stock ignores the version.
#[test]
fn wrong_version_426_ours() {
    let r = ours_error(
        &replace_header("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8"),
        &[426],
        &["version"],
    );
    assert_eq!(r.header("Sec-WebSocket-Version"), Some("13"), "{r:?}");
}

/// BAD_INPUT 12: a 70 KiB request. Stock buffers without bound until the recvq limit.
#[test]
fn oversized_request_rejected_ours() {
    let server = Server::start(Conf::new(Module::Ours));
    let filler = format!("X-Filler: {}", "a".repeat(70 * 1024));
    let req = upgrade_request(&[&filler]);
    let mut c = Client::raw(None, server.ws_port).expect("connect");
    // The server may answer and close before it has read everything; write from a
    // thread and ignore write errors.
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = w.write_all(&req);
    });
    let r = c.read_response().expect("the response");
    writer.join().unwrap();
    assert!(
        r.status == 431 || r.status == 400,
        "expected 431 or 400: {r:?}"
    );
    assert_ours_error(&r, r.status, &["large", "long", "size", "limit", "too"]);
    assert_quit_logged(&server, &["large", "long", "size", "limit", "too"]);
    let mut server = server;
    server.assert_alive();
}

/// BAD_INPUT 12: 200 headers. Stock has no header count limit.
#[test]
fn too_many_headers_rejected_ours() {
    let extra: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
    let extra_refs: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
    let r = ours_error(
        &upgrade_request(&extra_refs),
        &[431, 400],
        &["header", "large", "many", "too"],
    );
    assert!(r.status == 431 || r.status == 400);
}

/// Ours sends the reason as a plain-text body on every error; the status line carries
/// the standard reason phrase.
#[test]
fn error_status_lines_ours() {
    let r = ours_error(
        &with_request_line("PUT / HTTP/1.1"),
        &[405],
        &["method", "get"],
    );
    assert_eq!(r.status_line, "HTTP/1.1 405 Method Not Allowed");
    let r = ours_error(
        &without_header("Sec-WebSocket-Version"),
        &[426],
        &["version"],
    );
    assert_eq!(r.status_line, "HTTP/1.1 426 Upgrade Required");
}

/// A second Origin header: which one the browser sent cannot be told, so ours refuses
/// (400) rather than pick one. Stock takes the first.
fn second_origin(m: Module) {
    let req = upgrade_request(&["Origin: https://evil.example"]);
    let (server, r) = exchange(Conf::new(m), &req);
    match m {
        Module::Ours => {
            assert_ours_error(&r, 400, &["origin", "twice"]);
            assert_quit_logged(&server, &["origin"]);
        }
        Module::Stock => assert_eq!(r.status, 101, "{r:?}"),
    }
}
both_modules!(second_origin);

/// A GET with a body: an upgrade request has none, and its bytes would be read as
/// WebSocket frames (stock upgrades, then reads the body as frames).
fn request_with_a_body(m: Module) {
    let mut req = upgrade_request(&["Content-Length: 11"]);
    req.extend_from_slice(b"hello world");
    let (server, r) = exchange(Conf::new(m), &req);
    match m {
        Module::Ours => {
            assert_ours_error(&r, 400, &["body"]);
            assert_quit_logged(&server, &["body"]);
        }
        Module::Stock => assert_eq!(r.status, 101, "{r:?}"),
    }
    let chunked = upgrade_request(&["Transfer-Encoding: chunked"]);
    if m == Module::Ours {
        ours_error(&chunked, &[400], &["body"]);
    }
}
both_modules!(request_with_a_body);

/// A browser sends its site's cookies with the handshake: 12 KiB of them is admitted
/// by the default maxhandshake (40K; it was 8K). nginx passes up to 32 KiB of headers.
fn large_cookies_upgrade(m: Module) {
    let cookie = format!("Cookie: {}", "session=x; ".repeat(12 * 1024 / 11));
    let (_server, r) = exchange(Conf::new(m), &upgrade_request(&[&cookie]));
    assert_eq!(r.status, 101, "{r:?}");
    let near_limit = format!("Cookie: c={}", "x".repeat(39 * 1024));
    let (_server, r) = exchange(Conf::new(m), &upgrade_request(&[&near_limit]));
    assert_eq!(r.status, 101, "a 39 KiB request: {r:?}");
}
both_modules!(large_cookies_upgrade);
