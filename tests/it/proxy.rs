//! `<websocket proxyranges>` and the X-Real-IP / X-Forwarded-For headers: the user's
//! address as InspIRCd sees it (WHOIS numeric 378 and the 001 welcome mask).

use crate::common::*;

/// Registers a WebSocket user with extra request headers and returns the IP the server
/// assigned to it, checking that the welcome mask shows the same address.
fn ip_with_headers(server: &Server, nick: &str, headers: &[(&str, &str)]) -> String {
    let mut opts = WsOpts::default();
    for (k, v) in headers {
        opts = opts.header(k, v);
    }
    let mut c = WsClient::connect(server.ws_port, &opts)
        .unwrap_or_else(|e| panic!("handshake failed: {}", describe_ws_error(&e)));
    c.start_register(nick).expect("NICK/USER");
    let welcome = show(
        &c.expect_line("numeric 001", |l| is_numeric(l, "001"))
            .expect("numeric 001"),
    );
    let ip = c.own_ip().expect("the own address");
    assert!(
        welcome.ends_with(&format!("{nick}!ws@{ip}")),
        "001 {welcome:?} does not show address {ip}"
    );
    ip
}

fn conf(m: Module, ranges: &str) -> Conf {
    Conf::new(m).websocket(&format!(r#"proxyranges="{ranges}""#))
}

fn x_real_ip_from_trusted_proxy(m: Module) {
    let server = Server::start(conf(m, "127.0.0.0/8"));
    let ip = ip_with_headers(&server, "realip", &[("X-Real-IP", "198.51.100.7")]);
    assert_eq!(ip, "198.51.100.7");
}
both_modules!(x_real_ip_from_trusted_proxy);

fn x_forwarded_for_single(m: Module) {
    let server = Server::start(conf(m, "127.0.0.0/8"));
    let ip = ip_with_headers(&server, "xff", &[("X-Forwarded-For", "203.0.113.44")]);
    assert_eq!(ip, "203.0.113.44");
}
both_modules!(x_forwarded_for_single);

/// The documented glob form of a range.
fn glob_range(m: Module) {
    let server = Server::start(conf(m, "192.0.2.0/24 127.0.0.*"));
    let ip = ip_with_headers(&server, "globbed", &[("X-Real-IP", "198.51.100.8")]);
    assert_eq!(ip, "198.51.100.8");
}
both_modules!(glob_range);

/// BAD_INPUT 19: IPv6 real address.
fn ipv6_real_ip(m: Module) {
    let server = Server::start(conf(m, "127.0.0.0/8"));
    let ip = ip_with_headers(&server, "six", &[("X-Real-IP", "2001:db8::5")]);
    assert_eq!(ip, "2001:db8::5");
}
both_modules!(ipv6_real_ip);

/// Both headers, naming different clients: stock takes X-Real-IP; this module's default
/// (`proxyheader="any"`) refuses with 400 and a warning naming `proxyheader`.
fn x_real_ip_preferred(m: Module) {
    let server = Server::start(conf(m, "127.0.0.0/8"));
    let headers = [
        ("X-Forwarded-For", "203.0.113.1"),
        ("X-Real-IP", "198.51.100.70"),
    ];
    if m == Module::Stock {
        assert_eq!(ip_with_headers(&server, "both", &headers), "198.51.100.70");
        return;
    }
    let r = http_exchange(
        server.ws_port,
        &upgrade_request(&["X-Forwarded-For: 203.0.113.1", "X-Real-IP: 198.51.100.70"]),
    )
    .expect("the refusal");
    assert_ours_error(&r, 400, &["different clients"]);
    server.wait_log("the warning naming proxyheader", |l| {
        l.contains("WARNING") && l.contains("198.51.100.70") && l.contains("proxyheader")
    });
}
both_modules!(x_real_ip_preferred);

/// BAD_INPUT 16: a proxy header from a peer outside proxyranges is ignored.
fn untrusted_peer_keeps_its_address(m: Module) {
    let server = Server::start(conf(m, "192.0.2.0/24"));
    let ip = ip_with_headers(&server, "untrusted", &[("X-Real-IP", "198.51.100.7")]);
    assert_eq!(ip, "127.0.0.1");
}
both_modules!(untrusted_peer_keeps_its_address);

/// Without proxyranges the headers are not looked at.
fn no_proxyranges_ignores_headers(m: Module) {
    let server = Server::start(Conf::new(m));
    let ip = ip_with_headers(&server, "plainip", &[("X-Real-IP", "198.51.100.7")]);
    assert_eq!(ip, "127.0.0.1");
}
both_modules!(no_proxyranges_ignores_headers);

/// BAD_INPUT 17: multi-hop X-Forwarded-For -> the rightmost untrusted address.
/// Stock takes the value up to the first whitespace ("198.51.100.9,"), fails to parse it
/// and answers 400 (see `multi_hop_x_forwarded_for_rejected_stock`).
#[test]
fn multi_hop_x_forwarded_for_ours() {
    let server = Server::start(conf(Module::Ours, "127.0.0.0/8"));
    let ip = ip_with_headers(
        &server,
        "hops",
        &[("X-Forwarded-For", "198.51.100.9, 127.0.0.1")],
    );
    assert_eq!(ip, "198.51.100.9");
}

/// BAD_INPUT 17: a client-supplied (spoofed) leftmost entry is not trusted: the
/// rightmost address not in proxyranges is used. Stock rejects multi-hop values.
#[test]
fn multi_hop_spoofed_left_entry_ignored_ours() {
    let server = Server::start(conf(Module::Ours, "127.0.0.0/8 198.51.100.0/24"));
    let ip = ip_with_headers(
        &server,
        "spoof",
        &[("X-Forwarded-For", "1.2.3.4, 203.0.113.5, 198.51.100.9")],
    );
    assert_eq!(ip, "203.0.113.5");
}

/// BAD_INPUT 19: IPv6 inside a multi-hop list. Stock rejects multi-hop values.
#[test]
fn multi_hop_ipv6_ours() {
    let server = Server::start(conf(Module::Ours, "127.0.0.0/8"));
    let ip = ip_with_headers(
        &server,
        "hopsix",
        &[("X-Forwarded-For", "2001:db8::7,127.0.0.1")],
    );
    assert_eq!(ip, "2001:db8::7");
}

/// Documents the stock behaviour the multi-hop tests above differ from.
#[test]
fn multi_hop_x_forwarded_for_rejected_stock() {
    let server = Server::start(conf(Module::Stock, "127.0.0.0/8"));
    let r = http_exchange(
        server.ws_port,
        &upgrade_request(&["X-Forwarded-For: 198.51.100.9, 127.0.0.1"]),
    )
    .expect("the response");
    assert_error_closed(&r, 400);
}

/// BAD_INPUT 18: garbage in X-Forwarded-For from a trusted peer -> 400.
fn garbage_x_forwarded_for_400(m: Module) {
    let server = Server::start(conf(m, "127.0.0.0/8"));
    let r = http_exchange(
        server.ws_port,
        &upgrade_request(&["X-Forwarded-For: definitely-not-an-ip"]),
    )
    .expect("the response");
    assert_error_closed(&r, 400);
    if m == Module::Ours {
        assert_ours_error(
            &r,
            400,
            &[
                "x-forwarded-for",
                "x-real-ip",
                "address",
                "real ip",
                "proxy",
            ],
        );
    }
}
both_modules!(garbage_x_forwarded_for_400);

/// An IPv4-mapped address (what a dual-stack proxy listener reports for IPv4 clients)
/// becomes plain IPv4 with ours, so that bans and clone counts see one form of the
/// address; stock gives the user the IPv6 form.
fn ipv4_mapped_real_ip(m: Module) {
    let server = Server::start(conf(m, "127.0.0.0/8"));
    let ip = ip_with_headers(&server, "mapped", &[("X-Real-IP", "::ffff:198.51.100.9")]);
    match m {
        Module::Ours => assert_eq!(ip, "198.51.100.9"),
        // InspIRCd writes an IPv6 address that starts with ":" with a leading "0".
        Module::Stock => assert_eq!(ip, "0::ffff:198.51.100.9"),
    }
}
both_modules!(ipv4_mapped_real_ip);

/// `proxyheader="x-forwarded-for"`: a client's own X-Real-IP, passed through by a proxy
/// that only appends to X-Forwarded-For, is ignored, and the disagreement is logged.
#[test]
fn proxyheader_x_forwarded_for_ignores_a_forged_x_real_ip_ours() {
    let server = Server::start(
        Conf::new(Module::Ours)
            .websocket(r#"proxyranges="127.0.0.1" proxyheader="x-forwarded-for""#),
    );
    let ip = ip_with_headers(
        &server,
        "honest",
        &[
            ("X-Real-IP", "127.0.0.66"),
            ("X-Forwarded-For", "198.51.100.5"),
        ],
    );
    assert_eq!(ip, "198.51.100.5");
    let warning = server.wait_log("the warning about disagreeing headers", |l| {
        l.contains("WARNING") && l.contains("127.0.0.66")
    });
    assert!(warning.contains("198.51.100.5"), "{warning}");
    assert!(warning.contains("proxyheader"), "{warning}");
}

/// `proxyheader="x-real-ip"`: a forged X-Forwarded-For loses; a request without
/// X-Real-IP is refused even if it has X-Forwarded-For.
#[test]
fn proxyheader_x_real_ip_ignores_a_forged_x_forwarded_for_ours() {
    let server = Server::start(
        Conf::new(Module::Ours).websocket(r#"proxyranges="127.0.0.1" proxyheader="x-real-ip""#),
    );
    let ip = ip_with_headers(
        &server,
        "honest",
        &[
            ("X-Forwarded-For", "127.0.0.77"),
            ("X-Real-IP", "198.51.100.6"),
        ],
    );
    assert_eq!(ip, "198.51.100.6");
    let r = http_exchange(
        server.ws_port,
        &upgrade_request(&["X-Forwarded-For: 198.51.100.6"]),
    )
    .expect("the response");
    assert_ours_error(&r, 400, &["real ip"]);
}

/// The real address is applied before the lines that came in the same read run, even
/// when that read also ends the connection (upgrade, lines and a close frame in one
/// write): a Z-line on the real address takes effect at the upgrade.
#[test]
fn lines_that_come_with_a_close_are_handled_under_the_real_address_ours() {
    let server = Server::start(
        conf(Module::Ours, "127.0.0.1")
            .extra(r#"<badip ipmask="198.51.100.44" reason="no entry">"#),
    );
    let mut bytes = upgrade_request(&["X-Real-IP: 198.51.100.44"]);
    for line in ["NICK zlined", "USER z 0 * :z", "QUIT :bye"] {
        bytes.extend(encode_frame(true, OP_TEXT, line.as_bytes(), Some(MASK)));
    }
    bytes.extend(encode_frame(
        true,
        OP_CLOSE,
        &1000u16.to_be_bytes(),
        Some(MASK),
    ));
    let mut conn = Client::raw(None, server.ws_port).expect("connect");
    conn.send(&bytes).expect("send");
    let quit = server.wait_log("the user's quit", |l| l.contains("QuitUser:"));
    assert!(
        quit.contains("Z-lined") && quit.contains("no entry"),
        "the Z-line on the real address did not apply first: {quit}"
    );
}
