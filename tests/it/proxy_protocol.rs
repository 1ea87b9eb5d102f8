//! Issue 20 against the real server: PROXY v1/v2 (`proxyprotocol`) from the test as a
//! proxy and from real HAProxy (TCP mode, `send-proxy`, `send-proxy-v2`) and nginx
//! (`stream`, `proxy_protocol on`); hostile PROXY inputs; secure web users (the v2 SSL
//! TLV, WHOIS 671, a `+z` channel); the default `proxyheader="any"` against every
//! header recipe of nginx and HAProxy; the health check behind HAProxy's `option
//! httpchk`.
//!
//! The test itself connects from 127.0.0.1, the address `proxyranges` trusts, when it
//! plays the proxy; clients behind a real proxy connect to it from 127.0.0.2 and up.

use std::time::{Duration, Instant};

use crate::common::deploy::*;
use crate::common::*;

fn behind_proxy_protocol() -> Conf {
    Conf::new(Module::Ours).websocket(r#"proxyranges="127.0.0.1" proxyprotocol="yes""#)
}

/// An oper on the plain port, to WHOIS web users.
pub(crate) fn oper(server: &Server) -> Client {
    let mut o = server.irc("oper").expect("the oper's connection");
    o.oper().expect("OPER");
    o
}

/// The address and whether WHOIS says 671 (secure) for `nick`.
pub(crate) fn whois_address_and_secure(o: &mut Client, nick: &str) -> (String, bool) {
    // Every numeric up to 318 (the kit's whois keeps only the 3xx ones).
    o.send_line(&format!("WHOIS {nick}")).expect("send WHOIS");
    let mut lines = Vec::new();
    loop {
        let line = o
            .expect_str("a WHOIS reply", |l| {
                l.split(' ')
                    .nth(1)
                    .is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .expect("the WHOIS reply");
        let end = line.split(' ').nth(1) == Some("318");
        lines.push(line);
        if end {
            break;
        }
    }
    let numeric = connecting_from_numeric();
    let address = lines
        .iter()
        .find(|l| l.split(' ').nth(1) == Some(numeric))
        .map(|l| connecting_from_address(l))
        .unwrap_or_else(|| panic!("no {numeric} in {lines:#?}"));
    let secure = lines.iter().any(|l| l.split(' ').nth(1) == Some("671"));
    (address, secure)
}

/// Waits for the server to close `c` and checks it sent nothing (a refused PROXY
/// header gets no HTTP reply); `what` names the input.
fn assert_closed_silently(c: &mut Client, what: &str) {
    let got = c
        .bytes_until_eof()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(got.is_empty(), "{what}: the server sent {}", show(&got));
}

/// A PROXY v2 header (PROXY command, TCP over IPv4) from `source`:`port`, with `tlvs`.
fn v2_header(source: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11]);
    out.extend_from_slice(&u16::try_from(12 + tlvs.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&source);
    out.extend_from_slice(&[127, 0, 0, 1]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out.extend_from_slice(tlvs);
    out
}

/// PP2_TYPE_SSL with `client` as its client field (1: the client used TLS).
fn ssl_tlv(client: u8) -> Vec<u8> {
    vec![0x20, 0, 5, client, 0, 0, 0, 0]
}

/// A user that sends `prefix`, an upgrade request with a forged X-Real-IP, and
/// registers as `nick` over raw frames.
fn raw_user(server: &Server, prefix: &[u8], nick: &str) -> Client {
    let mut c = server.raw().expect("connect");
    let mut bytes = prefix.to_vec();
    bytes.extend(upgrade_request(&["X-Real-IP: 192.0.2.66"]));
    c.upgrade_with(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", prefix.escape_ascii()));
    c.register(nick).expect("registration");
    c
}

#[test]
fn proxy_v1_and_v2_give_the_real_address_and_the_request_headers_are_not_read() {
    let server = Server::start(behind_proxy_protocol());
    let mut o = oper(&server);
    let cases: [(&[u8], &str, &str); 2] = [
        (
            b"PROXY TCP4 203.0.113.7 127.0.0.1 40001 8080\r\n",
            "v1four",
            "203.0.113.7",
        ),
        (
            b"PROXY TCP6 2001:db8::7 ::1 40002 8080\r\n",
            "v1six",
            "2001:db8::7",
        ),
    ];
    let mut users = Vec::new();
    for (prefix, nick, address) in cases {
        users.push(raw_user(&server, prefix, nick));
        assert_eq!(whois_address_and_secure(&mut o, nick).0, address);
    }
    let v2 = v2_header([198, 51, 100, 8], 40003, &[0x04, 0, 2, b'h', b'i']);
    users.push(raw_user(&server, &v2, "vtwo"));
    assert_eq!(whois_address_and_secure(&mut o, "vtwo").0, "198.51.100.8");
    // v1 UNKNOWN and v2 LOCAL keep the proxy's address.
    users.push(raw_user(&server, b"PROXY UNKNOWN\r\n", "unknown"));
    assert_eq!(whois_address_and_secure(&mut o, "unknown").0, "127.0.0.1");
    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    users.push(raw_user(&server, &local, "local"));
    assert_eq!(whois_address_and_secure(&mut o, "local").0, "127.0.0.1");
}

/// Each hostile input: the connection closes with nothing sent, a log line names the
/// refusal and `/STATS W` counts it.
#[test]
fn hostile_proxy_headers_get_nothing_and_are_logged_and_counted() {
    let server = Server::start(behind_proxy_protocol());
    let mut long_v1 = b"PROXY TCP4 ".to_vec();
    long_v1.resize(120, b'1');
    let mut v2_bad_version = v2_header([1, 2, 3, 4], 1, &[]);
    v2_bad_version[12] = 0x31;
    let mut v2_bad_family = v2_header([1, 2, 3, 4], 1, &[]);
    v2_bad_family[13] = 0x41;
    let mut v2_truncated = v2_header([1, 2, 3, 4], 1, &[]);
    v2_truncated[15] = 8;
    v2_truncated.truncate(16 + 8);
    let mut v2_too_long = v2_header([1, 2, 3, 4], 1, &[]);
    v2_too_long[14] = 0x10;
    let v2_bad_tlv = v2_header([1, 2, 3, 4], 1, &[0x04, 0, 9, 1]);
    let mut v2_bad_command = v2_header([1, 2, 3, 4], 1, &[]);
    v2_bad_command[12] = 0x22;
    let mut v2_udp = v2_header([1, 2, 3, 4], 1, &[]);
    v2_udp[13] = 0x12;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            "begin like a PROXY signature",
        ),
        (long_v1, "without CRLF within 107 bytes"),
        (
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            "other than TCP4, TCP6 or UNKNOWN",
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
            "malformed PROXY v1 line",
        ),
        (v2_bad_version, "unknown version"),
        (v2_bad_command, "unknown command"),
        (v2_udp, "transport other than TCP"),
        (v2_bad_family, "unknown address family"),
        (v2_truncated, "too short for its addresses"),
        (v2_too_long, "longer than 2048 bytes"),
        (v2_bad_tlv, "malformed TLV"),
        (
            upgrade_request(&[]),
            "no PROXY header from a peer in proxyranges",
        ),
    ];
    for (bytes, text) in &cases {
        let mut c = server.raw().expect("connect");
        // A peer may have closed before all of it was written.
        let _ = c.write(bytes);
        assert_closed_silently(&mut c, text);
        server.wait_log(&format!("the refusal: {text}"), |l| {
            l.contains("PROXY header refused") && l.contains(text)
        });
    }
    // From a peer outside proxyranges.
    let mut c = Client::raw(Some(ip(9)), server.ws_port).expect("connect from 127.0.0.9");
    let _ = c.write(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    assert_closed_silently(&mut c, "a header from outside proxyranges");
    server.wait_log("the refusal of an untrusted peer's header", |l| {
        l.contains("PROXY header refused: a PROXY header from a peer outside proxyranges")
    });
    let mut o = oper(&server);
    let stats = o.stats_w().expect("STATS W");
    for (_, text) in &cases {
        assert!(
            stats.iter().any(|l| l.contains("refused PROXY header")
                && l.contains(text)
                && l.ends_with(": 1")),
            "{text} not counted once in {stats:#?}"
        );
    }
    assert!(
        !stats.iter().any(|l| l.starts_with("WebSocket refused 4")),
        "an HTTP refusal counted: {stats:#?}"
    );

    // A PROXY header where none is expected (proxyprotocol off) gets no HTTP reply.
    let off =
        Server::start(Conf::new(Module::Ours).websocket(&format!(r#"proxyranges="{PROXY_ADDR}""#)));
    let mut c = off.raw().expect("connect");
    let _ = c.write(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    assert_closed_silently(&mut c, "a header with proxyprotocol off");
    off.wait_log("the refusal of a header with proxyprotocol off", |l| {
        l.contains("PROXY header refused: a PROXY header, but <websocket:proxyprotocol> is off")
    });
}

/// From a trusted proxy, a `Forwarded` header InspIRCd cannot take an address from
/// (`for=unknown`, an obfuscated node, bad syntax), and with `proxyprotoheader` an
/// `X-Forwarded-Proto` that is a list, repeated or an unknown scheme: 400 naming it.
#[test]
fn malformed_forwarded_and_proto_headers_get_400() {
    let server = Server::start(Conf::new(Module::Ours).websocket(&format!(
        r#"proxyranges="{PROXY_ADDR}" proxyheader="forwarded" proxyprotoheader="x-forwarded-proto""#
    )));
    let cases: [(&[&str], &str); 7] = [
        (
            &["Forwarded: for=unknown"],
            "malformed real IP address header",
        ),
        (
            &["Forwarded: for=_hidden"],
            "malformed real IP address header",
        ),
        (
            &["Forwarded: for=\"198.51.100.7"],
            "malformed real IP address header",
        ),
        (
            &["Forwarded: for=198.51.100.7:80"],
            "malformed real IP address header",
        ),
        (
            &[
                "Forwarded: for=198.51.100.7",
                "X-Forwarded-Proto: https, http",
            ],
            "malformed X-Forwarded-Proto",
        ),
        (
            &[
                "Forwarded: for=198.51.100.7",
                "X-Forwarded-Proto: https",
                "X-Forwarded-Proto: https",
            ],
            "malformed X-Forwarded-Proto",
        ),
        (
            &["Forwarded: for=198.51.100.7", "X-Forwarded-Proto: gopher"],
            "malformed X-Forwarded-Proto",
        ),
    ];
    for (headers, words) in cases {
        let r = http_exchange(server.ws_port, &upgrade_request(headers)).expect("the answer");
        assert_eq!(r.status, 400, "{headers:?}: {r:?}");
        assert!(r.body_str().contains(words), "{headers:?}: {r:?}");
    }
    // The same headers, well formed, get in.
    let ok = http_exchange(
        server.ws_port,
        &upgrade_request(&[
            "Forwarded: for=\"[2001:db8::7]:4711\";proto=https",
            "X-Forwarded-Proto: https",
        ]),
    )
    .expect("the answer");
    assert_eq!(ok.status, 101, "{ok:?}");
}

/// A header that never completes is ended by InspIRCd's registration timeout.
#[test]
fn a_slow_proxy_header_is_ended_by_the_registration_timeout() {
    let server = Server::start(behind_proxy_protocol().connect_attrs(r#"timeout="3""#));
    let mut c = server.raw().expect("connect");
    let start = Instant::now();
    c.send(b"PROXY TCP4 203.0.113.").expect("send");
    assert_closed_silently(&mut c, "an incomplete header");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "closed after {waited:?}, before the timeout"
    );
}

/// The PROXY v2 SSL TLV from a trusted loopback proxy makes a secure user (WHOIS 671,
/// a `+z` channel admits it); without it, or with the client bit clear, the user is not.
#[test]
fn the_v2_ssl_tlv_makes_a_secure_user() {
    let server = Server::start(behind_proxy_protocol().module("sslinfo").module("sslmodes"));
    let mut o = oper(&server);
    let mut secure = raw_user(
        &server,
        &v2_header([203, 0, 113, 20], 1, &ssl_tlv(1)),
        "tlsweb",
    );
    let mut plain = raw_user(
        &server,
        &v2_header([203, 0, 113, 21], 1, &ssl_tlv(0)),
        "plainweb",
    );
    let mut silent = raw_user(&server, &v2_header([203, 0, 113, 22], 1, &[]), "silentweb");
    assert_eq!(
        whois_address_and_secure(&mut o, "tlsweb"),
        ("203.0.113.20".into(), true)
    );
    assert_eq!(
        whois_address_and_secure(&mut o, "plainweb"),
        ("203.0.113.21".into(), false)
    );
    assert_eq!(
        whois_address_and_secure(&mut o, "silentweb"),
        ("203.0.113.22".into(), false)
    );
    // The secure web user opens the channel and makes it +z (every member must be
    // secure for that).
    secure.join("#secure").expect("JOIN");
    secure.send_line("MODE #secure +z").expect("send MODE");
    secure
        .expect_str("+z set", |l| l.contains("MODE #secure") && l.contains("+z"))
        .expect("+z set");
    for c in [&mut plain, &mut silent] {
        c.send_line("JOIN #secure").expect("send JOIN");
        c.expect_line("489 (secure channel)", |l| is_numeric(l, "489"))
            .expect("489");
    }
}

/// A real HAProxy in TCP mode (`send-proxy`, `send-proxy-v2`) and a real nginx
/// `stream` block (`proxy_protocol on`): users get their own addresses.
#[test]
fn haproxy_tcp_mode_and_nginx_stream_send_the_client_address() {
    let server = Server::start(behind_proxy_protocol());
    let mut o = oper(&server);
    let ws = server.ws_port;
    let mut running = Vec::new();
    let mut ports = Vec::new();
    for send in ["send-proxy", "send-proxy-v2"] {
        let tcp = testkit::ports::free_port();
        running.push(start_custom_proxy("haproxy", &server, &|_, ready, token| {
            format!(
                "global\n    nbthread 1\ndefaults\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
                 frontend ready\n    mode http\n    bind 127.0.0.1:{ready}\n    http-request return status 200 content-type text/plain string \"{token}\"\n\
                 frontend ws\n    mode tcp\n    bind 127.0.0.1:{tcp}\n    default_backend ircd\n\
                 backend ircd\n    mode tcp\n    server ircd 127.0.0.1:{ws} {send}\n"
            )
        }));
        ports.push((send, tcp));
    }
    let stream = testkit::ports::free_port();
    running.push(start_custom_proxy("nginx", &server, &|dir, ready, token| {
        let d = dir.display();
        format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\ndaemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n\
             stream {{ server {{ listen 127.0.0.1:{stream}; proxy_pass 127.0.0.1:{ws}; proxy_protocol on; }} }}\n\
             http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
             server {{ listen 127.0.0.1:{ready}; location = /__ready {{ return 200 \"{token}\"; }} }} }}\n"
        )
    }));
    ports.push(("nginx stream", stream));
    for (i, (what, port)) in ports.iter().enumerate() {
        let src = ip(20 + i as u8);
        let nick = format!("tcp{i}");
        let forged = WsOpts::default().header("X-Real-IP", "192.0.2.66");
        let c = attempt_via(*port, src, &nick, &forged).registered(what);
        assert_eq!(
            whois_address_and_secure(&mut o, &nick).0,
            src.to_string(),
            "{what}"
        );
        drop(c);
    }
}

/// Issue 20 point 4 against real proxies: with the default `proxyheader`, nginx setting
/// X-Real-IP only, X-Forwarded-For only or both, and HAProxy's `option forwardfor`;
/// clients sending none, one forged or both forged headers. A forged address is never
/// given; a refusal is a 400 with a log line naming `proxyheader`.
#[test]
fn the_default_proxyheader_is_safe_for_every_recipe() {
    let server =
        Server::start(Conf::new(Module::Ours).websocket(&format!(r#"proxyranges="{PROXY_ADDR}""#)));
    let mut o = oper(&server);
    let nginx_recipes = [
        ("nginx X-Real-IP only", RECIPE_REAL_IP_ONLY),
        ("nginx X-Forwarded-For only", RECIPE_XFF_ONLY),
        ("nginx both", RECIPE_REAL_IP_AND_XFF),
    ];
    let mut proxies: Vec<(String, u16, Box<dyn std::any::Any>)> = Vec::new();
    for (name, recipe) in nginx_recipes {
        let n = NginxConf::new(recipe).start(&server);
        proxies.push((name.to_owned(), n.port, Box::new(n)));
    }
    let h = HaproxyConf::default().start(&server);
    proxies.push(("HAProxy option forwardfor".to_owned(), h.port, Box::new(h)));
    let clients: [(&str, &[(&str, &str)]); 4] = [
        ("no header", &[]),
        ("a forged X-Real-IP", &[("X-Real-IP", "203.0.113.66")]),
        (
            "a forged X-Forwarded-For",
            &[("X-Forwarded-For", "203.0.113.67")],
        ),
        (
            "both forged",
            &[
                ("X-Real-IP", "203.0.113.66"),
                ("X-Forwarded-For", "203.0.113.67"),
            ],
        ),
    ];
    let mut n = 0u32;
    for (proxy, port, _) in &proxies {
        for (client, headers) in clients {
            n += 1;
            let src = real_addr(n);
            let nick = format!("r{n}");
            let mut opts = WsOpts::default();
            for (k, v) in headers {
                opts = opts.header(k, v);
            }
            let what = format!("{proxy}, client with {client}");
            match attempt_via(*port, src, &nick, &opts) {
                Attempt::Registered(c) => {
                    assert_eq!(
                        whois_address_and_secure(&mut o, &nick).0,
                        src.to_string(),
                        "{what}"
                    );
                    drop(c);
                }
                Attempt::HandshakeFailed(e) => {
                    assert!(e.contains("400"), "{what}: {e}");
                    assert!(!headers.is_empty(), "{what}: an honest client refused");
                    assert!(
                        !proxy.ends_with("both"),
                        "{what}: refused where the proxy sets both"
                    );
                    server.wait_log(&format!("the refusal's warning ({what})"), |l| {
                        l.contains("WARNING")
                            && l.contains(&src.to_string())
                            && l.contains("proxyheader")
                    });
                }
                other => panic!("{what}: {}", other.describe()),
            }
        }
    }
}

/// `healthcheck="/health"` behind HAProxy's `option httpchk`: the server is marked up
/// (checks answered 200, never a user, never a refusal), and down once InspIRCd stops.
#[test]
fn haproxy_health_checks_mark_the_server_up_then_down() {
    let mut server = Server::start(
        Conf::new(Module::Ours)
            .websocket(&format!(
                r#"proxyranges="{PROXY_ADDR}" healthcheck="/health""#
            ))
            .module("connectban")
            .extra(r#"<connectban threshold="3" bootwait="0" duration="10m">"#),
    );
    let ws = server.ws_port;
    let (port, dir, proc_) = start_custom_proxy("haproxy", &server, &|_, ready, token| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n    timeout check 1s\n\
             frontend ready\n    bind 127.0.0.1:{ready}\n    http-request return status 200 content-type text/plain string \"{token}\" if {{ path /__ready }}\n\
             stats enable\n    stats uri /stats\n    default_backend ircd\n\
             backend ircd\n    option httpchk GET /health\n    http-check expect status 200\n\
             server ircd 127.0.0.1:{ws} check inter 200ms fall 1 rise 1\n"
        )
    });
    let _ = dir;
    // The server's row once its state is `want` after a check that ended with
    // `check_status` (HAProxy's stats CSV: field 17 the state, field 36 the last check).
    let state = |want: &str, check_status: &str| -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            use std::io::{Read, Write};
            s.write_all(b"GET /stats;csv HTTP/1.0\r\n\r\n").unwrap();
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            let row = body
                .lines()
                .find(|l| l.starts_with("ircd,ircd,"))
                .unwrap_or("")
                .to_owned();
            let fields: Vec<&str> = row.split(',').collect();
            if fields.get(17) == Some(&want) && fields.get(36) == Some(&check_status) {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy did not mark the server {want} after a check ending {check_status}: {row}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    state("UP", "L7OK");
    // More checks than connectban's threshold have been answered by now.
    // The oper comes from an address of its own: connectban counts only the balancer's.
    let mut o = irc_from(ip(3), server.irc_port, "oper").expect("the oper's connection");
    o.oper().expect("OPER");
    let answered = wait_for_health_checks(&mut o, 5);
    let stats = o.stats_w().expect("STATS W");
    assert!(!stats.iter().any(|l| l.contains("refused")), "{stats:#?}");
    assert!(answered >= 5);
    assert!(
        server
            .log_lines(|l| l.contains("added a timed Z-line on 127.0.0.1"))
            .is_empty(),
        "connectban Z-lined the balancer"
    );
    drop(o);
    server.stop(Duration::from_secs(5));
    // Down, and once InspIRCd is gone its port refuses the checks' connections (a check
    // that connected while it was shutting down may have failed otherwise first).
    state("DOWN", "L4CON");
    drop(proc_);
}

/// Waits until `/STATS W` reports at least `n` health checks; returns the count.
fn wait_for_health_checks(o: &mut Client, n: u64) -> u64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stats = o.stats_w().expect("STATS W");
        let count = stats
            .iter()
            .find_map(|l| l.strip_prefix("WebSocket health checks answered: "))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if count >= n {
            return count;
        }
        assert!(
            Instant::now() < deadline,
            "{count} health checks answered: {stats:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
