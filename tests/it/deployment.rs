//! The module as admins deploy it: behind a real nginx (Debian's 1.22) or HAProxy
//! (Debian's 2.6) on the same machine, with `proxyranges="127.0.0.1"` (the proxy's own
//! address), and users that reach the proxy from distinct loopback addresses
//! (127.0.0.2 and up), each a distinct "real user" as the proxy sees it.
//!
//! Each behaviour runs against this module (`::ours`, or a test named `_ours`) and the
//! stock one (`::stock`, `_stock`) where it means something; a stock test asserts what
//! the stock module really does (it is the reference we compare against), and says so.
//!
//! Waits are for concrete events (a line, a close, a log line) with bounded deadlines.
//! Two tests (`idle_behind_nginx_*`) hold connections idle for over two minutes on
//! purpose; the rest take seconds.

use std::net::{Ipv4Addr, TcpStream};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::deploy::*;
use crate::common::*;
use tungstenite::Message;

/// `<websocket>` trusting the proxy (127.0.0.1), plus `more` attributes.
fn behind_proxy(m: Module, more: &str) -> Conf {
    Conf::new(m).websocket(&format!(r#"proxyranges="{PROXY_ADDR}" {more}"#))
}

/// Registers through the proxy on `port` from `src` with extra request headers; returns
/// the address InspIRCd gave the user (WHOIS 378), checking that 001 shows it too.
fn proxied_ip(port: u16, src: Ipv4Addr, nick: &str, headers: &[(&str, &str)]) -> String {
    let mut opts = WsOpts::default();
    for (k, v) in headers {
        opts = opts.header(k, v);
    }
    let mut c = attempt_via(port, src, nick, &opts)
        .registered(&format!("{nick} from {src} with {headers:?}"));
    let welcome = c
        .seen
        .iter()
        .find(|l| is_numeric(l.as_bytes(), "001"))
        .cloned()
        .unwrap();
    let ip = c.own_ip().expect("the own address");
    assert!(
        welcome.ends_with(&format!("{nick}!ws@{ip}")),
        "001 {welcome:?} does not show the address {ip} that WHOIS shows"
    );
    ip
}

/// Waits for this module's WARNING naming both addresses a request's two headers gave.
fn assert_disagreement_warned(server: &Server, a: &str, b: &str) -> String {
    server.wait_log(
        &format!("a WARNING naming both {a} and {b} (X-Real-IP and X-Forwarded-For disagree)"),
        |l| l.contains("WARNING") && l.contains(a) && l.contains(b),
    )
}

/// Reads until the server ends the connection; returns what it said on the way.
/// Panics if it stays open for [`TIMEOUT`].
fn wait_closed(c: &mut WsClient, what: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match c.recv_until(deadline) {
            Ok(_) => {}
            Err(e) if e.is_timeout() => panic!(
                "[{}] still connected after {TIMEOUT:?}, expected {what}; seen:\n{}",
                c.nick,
                c.recent()
            ),
            Err(_) => return c.seen.join("\n"),
        }
    }
}

/// The displayed host of `nick` in a WHOIS (numeric 311) by a WebSocket client.
fn ws_whois_host(c: &mut WsClient, nick: &str) -> String {
    c.send_line(&format!("WHOIS {nick}")).expect("send");
    let l = show(
        &c.expect_line("numeric 311", |l| is_numeric(l, "311"))
            .expect("numeric 311"),
    );
    c.expect_line("end of WHOIS", |l| is_numeric(l, "318"))
        .expect("end of WHOIS");
    l.split(' ').nth(5).unwrap().to_string()
}

/// The displayed host of `nick` in a WHOIS (numeric 311) by a plain client.
fn irc_whois_host(c: &mut Client, nick: &str) -> String {
    c.send_line(&format!("WHOIS {nick}")).expect("send");
    let l = c
        .expect_str("numeric 311", |l| l.split(' ').nth(1) == Some("311"))
        .expect("numeric 311");
    c.expect_line("end of WHOIS", |l| is_numeric(l, "318"))
        .expect("end of WHOIS");
    l.split(' ').nth(5).unwrap().to_string()
}

// ---------------------------------------------------------------------------------------
// 1. connectban: the proxy's address must not collect every user's connection
// ---------------------------------------------------------------------------------------

const CONNECTBAN_MESSAGE: &str = "connect flood (deployment test)";

fn connectban_conf(m: Module) -> Conf {
    // bootwait defaults to 2 minutes after start, during which connectban counts nothing.
    behind_proxy(m, "").module("connectban").extra(&format!(
        r#"<connectban threshold="3" bootwait="0" duration="10m" banmessage="{CONNECTBAN_MESSAGE}">"#
    ))
}

/// The Z-line connectban adds on `addr` (its server notice, logged; a /32 mask is shown
/// as the bare address).
fn connectban_zline_lines(server: &Server, addr: &str) -> Vec<String> {
    let needle = format!("added a timed Z-line on {addr},");
    server.log_lines(|l| l.contains(&needle))
}

/// Ten users through one nginx, each from its own address, one after another: with this
/// module connectban counts each real address once (the module fires `event/webirc`, so
/// connectban takes back the proxy's count), and all ten get in. Then connections from
/// one real address, back to back: that address is Z-lined, everyone else still gets in.
///
/// The connections are made one after another (each handshake done before the next
/// starts): connectban counts the proxy's address at every accept and takes the count
/// back at the handshake, so `threshold` handshakes in flight at once through one proxy
/// would still Z-line the proxy (see `connectban_proxy_class` for the configuration
/// that prevents that).
#[test]
fn connectban_counts_real_addresses_ours() {
    within_one_hour(|| {
        let server = Server::start(connectban_conf(Module::Ours));
        let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
        let mut users = Vec::new();
        for i in 0..10u8 {
            let a = attempt_user_via(nginx.port, ip(10 + i), &format!("cb{i}"));
            users.push(a.registered(&format!(
                "user {} of 10 (from 127.0.0.{}) behind the proxy\n{}",
                i + 1,
                10 + i,
                nginx.logs()
            )));
        }
        assert!(
            connectban_zline_lines(&server, PROXY_ADDR).is_empty(),
            "connectban Z-lined the proxy"
        );

        // One real address, connection after connection: the third reaches the threshold.
        let flooder = ip(50);
        let first = attempt_user_via(nginx.port, flooder, "flood0").registered("flood0");
        let second = attempt_user_via(nginx.port, flooder, "flood1").registered("flood1");
        let third = attempt_user_via(nginx.port, flooder, "flood2");
        third.assert_refused("the third connection from 127.0.0.50");
        server.wait_log("connectban's Z-line on 127.0.0.50", |l| {
            l.contains("added a timed Z-line on 127.0.0.50,")
        });
        // The Z-line also removes the two already connected from that address.
        for mut c in [first, second] {
            let said = wait_closed(&mut c, "the Z-line on 127.0.0.50 to disconnect it");
            assert!(
                said.contains("Z-lined"),
                "[{}] closed without the Z-line's reason; seen:\n{said}",
                c.nick
            );
        }
        attempt_user_via(nginx.port, flooder, "flood3")
            .assert_refused("a fourth connection from the Z-lined 127.0.0.50");
        let quits = wait_log_count(&server, "four Z-lined quits (127.0.0.50)", 4, |l| {
            l.contains("QuitUser:") && l.contains(&format!("Z-lined: {CONNECTBAN_MESSAGE}"))
        });
        assert_eq!(quits.len(), 4, "Z-lined quits: {quits:#?}");

        // Others still get in through the same proxy, and the first ten are still here.
        attempt_user_via(nginx.port, ip(51), "other").registered("a user from 127.0.0.51");
        for c in &mut users {
            c.sync("still-connected").expect("round trip");
        }
        assert!(connectban_zline_lines(&server, PROXY_ADDR).is_empty());
    });
}

/// Stock (the reference): the stock module does not fire `event/webirc`, so connectban
/// counts every user against the proxy's 127.0.0.1 too; the third connection Z-lines
/// the proxy and only two of the ten users get in. After that nobody gets in through
/// that proxy.
#[test]
fn connectban_counts_the_proxy_stock() {
    within_one_hour(|| {
        let server = Server::start(connectban_conf(Module::Stock));
        let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
        let mut outcomes = Vec::new();
        let mut users = Vec::new();
        for i in 0..10u8 {
            let a = attempt_user_via(nginx.port, ip(10 + i), &format!("cb{i}"));
            outcomes.push(a.is_registered());
            if let Attempt::Registered(c) = a {
                users.push(*c);
            }
        }
        let mut expected = vec![true, true];
        expected.resize(10, false);
        assert_eq!(outcomes, expected, "who got in, in order\n{}", nginx.logs());
        assert_eq!(
            connectban_zline_lines(&server, PROXY_ADDR).len(),
            1,
            "connectban's Z-line on the proxy's address"
        );
        // The two who got in have their real addresses, so the proxy's Z-line spares them.
        for c in &mut users {
            c.sync("spared").expect("round trip");
        }
        attempt_user_via(nginx.port, ip(51), "other")
            .assert_refused("a user from another real address after the proxy's Z-line");
    });
}

/// The documented proxy class (`useconnectban="no"` for the proxy's address) keeps
/// connectban off the proxy even with many handshakes in flight at once: 30 concurrent
/// users from distinct addresses all get in, with either module (the stock one too: the
/// proxy's accept is exempt, and its SetClientIP counts the real address).
fn connectban_proxy_class(m: Module) {
    within_one_hour(|| {
        let conf = connectban_conf(m).connect(&format!(
            "{}\n{}",
            connect_tag(
                "proxy",
                r#"allow="127.0.0.1" localmax="1000" globalmax="1000" useconnectban="no""#
            ),
            connect_tag("main", "")
        ));
        let server = Server::start(conf);
        let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
        let users = concurrent_users(nginx.port, 0, 30, "cbp");
        for (i, a) in users.iter().enumerate() {
            assert!(
                a.is_registered(),
                "concurrent user {i} from {}: {}\n{}",
                real_addr(i as u32),
                a.describe(),
                nginx.logs()
            );
        }
        assert!(connectban_zline_lines(&server, PROXY_ADDR).is_empty());
        // The real addresses are still counted: three from one address are Z-lined.
        let flooder = ip(250);
        let _a = attempt_user_via(nginx.port, flooder, "fl0").registered("fl0");
        let _b = attempt_user_via(nginx.port, flooder, "fl1").registered("fl1");
        attempt_user_via(nginx.port, flooder, "fl2").assert_refused("the third from 127.0.0.250");
        server.wait_log("connectban's Z-line on 127.0.0.250", |l| {
            l.contains("added a timed Z-line on 127.0.0.250,")
        });
    });
}
both_modules!(connectban_proxy_class);

/// `n` users through the proxy on `port`, from `real_addr(first)` on, connecting and
/// registering at the same moment (one thread each, released together).
pub(crate) fn concurrent_users(port: u16, first: u32, n: u32, prefix: &str) -> Vec<Attempt> {
    let barrier = Barrier::new(n as usize);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    attempt_user_via(
                        port,
                        real_addr(first + i),
                        &format!("{prefix}{}", first + i),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

// ---------------------------------------------------------------------------------------
// 2. Spoofing: what a client's own X-Real-IP / X-Forwarded-For does, per proxy recipe
// ---------------------------------------------------------------------------------------

const FORGED_REAL_IP: &str = "127.0.0.66";
const FORGED_XFF: &str = "127.0.0.77";

/// (a) nginx sets both headers from the connection (the recipe to document) and the
/// default proxyheader: a client's forged headers change nothing. Stock agrees (it reads
/// X-Real-IP first, which nginx overwrote).
fn spoof_recipe_both_headers(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    assert_eq!(proxied_ip(nginx.port, ip(9), "honest", &[]), "127.0.0.9");
    let got = proxied_ip(
        nginx.port,
        ip(9),
        "forger",
        &[
            ("X-Real-IP", FORGED_REAL_IP),
            ("X-Forwarded-For", FORGED_XFF),
        ],
    );
    assert_eq!(got, "127.0.0.9", "the forged headers must not win");
    if m == Module::Ours {
        // nginx's X-Real-IP and the forwarded list's rightmost untrusted address agree.
        let warnings = server.log_lines(|l| l.contains("WARNING") && l.contains("127.0.0.9"));
        assert!(
            warnings.is_empty(),
            "no disagreement to warn about: {warnings:?}"
        );
    }
}
both_modules!(spoof_recipe_both_headers);

/// `<websocket proxyheader>` for proxies that set only X-Forwarded-For.
const PROXYHEADER_XFF: &str = r#"proxyheader="x-forwarded-for""#;

/// The address of a client from 127.0.0.`from` through the proxy on `port` that sends
/// a forged `header`.
fn forged(port: u16, from: u8, nick: &str, header: (&str, &str)) -> String {
    proxied_ip(port, ip(from), nick, &[header])
}

/// Through a proxy that leaves a client's X-Real-IP alone, with the default proxyheader:
/// the stock rule (X-Real-IP if present) lets the client's forged X-Real-IP WIN (stock,
/// the reference); this module's `any` refuses the request (400) with a warning naming
/// both addresses.
fn assert_forged_real_ip_refused_by_ours(m: Module, server: &Server, port: u16) {
    match m {
        Module::Stock => {
            let got = forged(port, 9, "forger", ("X-Real-IP", FORGED_REAL_IP));
            assert_eq!(got, FORGED_REAL_IP, "stock: the forged X-Real-IP wins");
        }
        Module::Ours => {
            let opts = WsOpts::default().header("X-Real-IP", FORGED_REAL_IP);
            match attempt_via(port, ip(9), "forger", &opts) {
                Attempt::HandshakeFailed(e) => assert!(e.contains("400"), "{e}"),
                other => panic!("the forged X-Real-IP was not refused: {}", other.describe()),
            }
            assert_disagreement_warned(server, FORGED_REAL_IP, "127.0.0.9");
        }
    }
}

/// (b) The old README recipe (nginx sets only X-Forwarded-For; a client's own X-Real-IP
/// passes through) with `proxyheader="x-forwarded-for"`: the forged X-Real-IP is ignored
/// and the disagreement logged. Stock (the reference) has no proxyheader key (an
/// unknown key is ignored) and reads X-Real-IP first, so with this recipe the client's
/// forged X-Real-IP wins.
fn spoof_xff_recipe_proxyheader_xff(m: Module) {
    let server = Server::start(behind_proxy(m, PROXYHEADER_XFF));
    let nginx = NginxConf::new(RECIPE_XFF_ONLY).start(&server);
    let got = forged(nginx.port, 9, "forger", ("X-Real-IP", FORGED_REAL_IP));
    if m == Module::Stock {
        assert_eq!(got, FORGED_REAL_IP, "stock takes the forged X-Real-IP");
        return;
    }
    assert_eq!(got, "127.0.0.9", "the forged X-Real-IP must be ignored");
    assert_disagreement_warned(&server, FORGED_REAL_IP, "127.0.0.9");
    // A forged X-Forwarded-For too: nginx appends the real address, which is rightmost.
    let got = proxied_ip(
        nginx.port,
        ip(21),
        "forger2",
        &[
            ("X-Real-IP", FORGED_REAL_IP),
            ("X-Forwarded-For", FORGED_XFF),
        ],
    );
    assert_eq!(got, "127.0.0.21");
}
both_modules!(spoof_xff_recipe_proxyheader_xff);

/// (c) The old README recipe with the default proxyheader: with stock the client's
/// forged X-Real-IP WINS; this module refuses it (400, and the log names the
/// `proxyheader` to set). An honest client gets in with both.
fn spoof_xff_recipe_default_forged_refused(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let nginx = NginxConf::new(RECIPE_XFF_ONLY).start(&server);
    assert_eq!(proxied_ip(nginx.port, ip(9), "honest", &[]), "127.0.0.9");
    assert_forged_real_ip_refused_by_ours(m, &server, nginx.port);
}
both_modules!(spoof_xff_recipe_default_forged_refused);

/// (d) nginx sets only X-Real-IP (a client's own X-Forwarded-For passes through) and
/// `proxyheader="x-real-ip"`: the forged X-Forwarded-For loses. Stock agrees (it reads
/// X-Real-IP first and has no proxyheader key).
fn spoof_real_ip_recipe(m: Module) {
    let server = Server::start(behind_proxy(m, r#"proxyheader="x-real-ip""#));
    let nginx = NginxConf::new(RECIPE_REAL_IP_ONLY).start(&server);
    let got = forged(nginx.port, 9, "forger", ("X-Forwarded-For", FORGED_XFF));
    assert_eq!(got, "127.0.0.9", "the forged X-Forwarded-For must lose");
    if m == Module::Ours {
        assert_disagreement_warned(&server, FORGED_XFF, "127.0.0.9");
    }
}
both_modules!(spoof_real_ip_recipe);

/// (e) HAProxy's `option forwardfor` ADDS an X-Forwarded-For line after the client's own
/// one; with `proxyheader="x-forwarded-for"` the lines are one list and the rightmost
/// untrusted address (HAProxy's) wins. Stock (the reference) reads only the FIRST
/// X-Forwarded-For line, which is the client's own, so the forged address wins.
fn spoof_haproxy_forwardfor(m: Module) {
    let server = Server::start(behind_proxy(m, PROXYHEADER_XFF));
    let haproxy = HaproxyConf::default().start(&server);
    assert_eq!(proxied_ip(haproxy.port, ip(9), "honest", &[]), "127.0.0.9");
    let got = forged(haproxy.port, 21, "forger", ("X-Forwarded-For", FORGED_XFF));
    match m {
        Module::Ours => assert_eq!(
            got, "127.0.0.21",
            "the client's own X-Forwarded-For line must lose"
        ),
        Module::Stock => assert_eq!(got, FORGED_XFF, "stock takes the first (forged) line"),
    }
}
both_modules!(spoof_haproxy_forwardfor);

/// HAProxy's `option forwardfor` leaves X-Real-IP alone, so with the stock module's rule
/// a client's own X-Real-IP WINS (stock, the reference). This module's default
/// `proxyheader="any"` refuses the request (400) with a warning naming both addresses.
fn spoof_haproxy_default_forged_real_ip_wins(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let haproxy = HaproxyConf::default().start(&server);
    assert_forged_real_ip_refused_by_ours(m, &server, haproxy.port);
}
both_modules!(spoof_haproxy_default_forged_real_ip_wins);

// ---------------------------------------------------------------------------------------
// 3. Dual-stack nginx: IPv4 users arrive as ::ffff:a.b.c.d
// ---------------------------------------------------------------------------------------

const ZLINE_REASON: &str = "dual-stack ban (deployment test)";

/// nginx on `[::]:PORT ipv6only=off` passes `$remote_addr` = `::ffff:127.0.0.5` for an
/// IPv4 client. This module makes it 127.0.0.5, so WHOIS and 001 show 127.0.0.5 and a
/// Z-line on 127.0.0.5 disconnects and then refuses the user.
///
/// Stock (the reference): the user gets `0::ffff:127.0.0.5` (InspIRCd prefixes a 0 to an
/// address starting with ':'), and a Z-line on 127.0.0.5 misses it: the proxied user
/// stays connected and a new one still gets in; only the direct user is disconnected.
fn dual_stack_zline(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF)
        .dual_stack()
        .start(&server);
    // The address a user from 127.0.0.5 gets.
    let five = match m {
        Module::Ours => "127.0.0.5",
        Module::Stock => "0::ffff:127.0.0.5",
    };
    assert_eq!(proxied_ip(nginx.port, ip(5), "five", &[]), five);
    let mut user = attempt_user_via(nginx.port, ip(5), "fiveagain").registered("fiveagain");
    let mut direct = irc_from(ip(5), server.irc_port, "fivedirect").expect("a plain user");

    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    oper.send_line(&format!("ZLINE 127.0.0.5 0 :{ZLINE_REASON}"))
        .expect("send");
    oper.sync("zlined").expect("round trip");

    if m == Module::Stock {
        direct
            .expect_eof("the Z-line on 127.0.0.5 to disconnect the direct user")
            .expect("the Z-line on 127.0.0.5 to disconnect the direct user");
        user.sync("missed-by-the-zline").expect("round trip");
        assert_eq!(
            proxied_ip(nginx.port, ip(5), "fivenew", &[]),
            "0::ffff:127.0.0.5",
            "stock admits a new proxied user from the Z-lined address"
        );
        return;
    }
    let said = wait_closed(
        &mut user,
        "the Z-line on 127.0.0.5 to disconnect the proxied user",
    );
    assert!(
        said.contains("Z-lined"),
        "proxied user closed without the Z-line: {said}"
    );
    direct
        .expect_eof("the Z-line on 127.0.0.5 to disconnect the direct user")
        .expect("the Z-line on 127.0.0.5 to disconnect the direct user");
    let again = attempt_user_via(nginx.port, ip(5), "fivenew");
    again.assert_refused("a new proxied user from 127.0.0.5 after the Z-line");
    wait_log_count(&server, "three Z-lined quits", 3, |l| {
        l.contains("QuitUser:") && l.contains(&format!("Z-lined: {ZLINE_REASON}"))
    });
    // Another address still gets in through the same listener.
    assert_eq!(proxied_ip(nginx.port, ip(6), "six", &[]), "127.0.0.6");
}
both_modules!(dual_stack_zline);

// ---------------------------------------------------------------------------------------
// 4. Cookies: large upgrade requests through nginx
// ---------------------------------------------------------------------------------------

/// An upgrade request (`upgrade_request`'s headers) padded with `Cookie` lines of at
/// most `line` bytes each (CR LF included) to exactly `total` bytes.
fn request_with_cookies(total: usize, line: usize) -> Vec<u8> {
    let mut headers = Vec::new();
    let mut size = upgrade_request(&[]).len();
    let mut i = 0;
    while size < total {
        let prefix = format!("Cookie: c{i}=");
        let min = prefix.len() + 3;
        let mut want = (total - size).min(line);
        // Keep the last line well-formed: take from the previous one if too short.
        if want < min {
            let prev: &mut String = headers.last_mut().expect("a total above the bare request");
            let give = min - want;
            prev.truncate(prev.len() - give);
            want = min;
        }
        headers.push(format!("{prefix}{}", "v".repeat(want - prefix.len() - 2)));
        size += want;
        i += 1;
    }
    let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let r = upgrade_request(&refs);
    assert_eq!(r.len(), total.max(upgrade_request(&[]).len()));
    r
}

/// Sends a hand-written request through the proxy from 127.0.0.9; the response.
fn via_nginx(port: u16, request: &[u8]) -> (Client, HttpResponse) {
    let mut c = Client::raw(Some(ip(9)), port).expect("connect to nginx");
    c.send(request).expect("send");
    let r = c
        .read_response_body(true)
        .expect("the response through the proxy");
    (c, r)
}

/// 12 KiB of cookies, as a browser sends them (one Cookie line), through an nginx whose
/// header buffers hold such a line (`large_client_header_buffers 4 16k`): 101 and
/// registration. With nginx's defaults (4 8k) nginx itself refuses that line with 400,
/// whatever the module: docs/PROXIES.md says so. Stock has no size limit and admits it.
fn cookies_12k(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let roomy = NginxConf::new(RECIPE_REAL_IP_AND_XFF)
        .server("large_client_header_buffers 4 16k;")
        .start(&server);
    let cookie = format!("session={}", "c".repeat(12 * 1024));
    let opts = WsOpts::default().header("Cookie", &cookie);
    let mut c = attempt_via(roomy.port, ip(9), "cookies", &opts).registered(&format!(
        "12 KiB of cookies in one line through nginx\n{}",
        roomy.logs()
    ));
    assert_eq!(c.own_ip().expect("the own address"), "127.0.0.9");

    let defaults = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let line = format!("Cookie: {cookie}");
    let (_c, r) = via_nginx(defaults.port, &upgrade_request(&[&line]));
    assert!(
        is_nginx_too_large(&r),
        "nginx's default buffers (8 KiB per line) should refuse a 12 KiB Cookie line: {r:?}"
    );
    // The same 12 KiB in three Cookie lines fits nginx's defaults.
    let (mut c, r) = via_nginx(defaults.port, &request_with_cookies(12 * 1024 + 200, 4096));
    assert_eq!(r.status, 101, "12 KiB of cookies in 4 KiB lines: {r:?}");
    c.register("cookies3").expect("registration");
}
both_modules!(cookies_12k);

/// The largest upgrade request nginx's default buffers pass (measured: cookies in 4 KiB
/// lines, the layout that fills its four 8 KiB buffers exactly; request line and the
/// other headers in its first 1 KiB buffer). Found by bisection on every run: that size
/// passes, one byte more gets nginx's own 400. This module must admit it (101 and
/// registration); nginx adds its X-Real-IP / X-Forwarded-For lines on the way.
/// Measured with nginx 1.22.1: 32,944 bytes.
fn largest_request_nginx_passes(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let passes = |n: usize| {
        let (_c, r) = via_nginx(nginx.port, &request_with_cookies(n, 4096));
        !is_nginx_too_large(&r)
    };
    let (mut lo, mut hi) = (16 * 1024, 64 * 1024);
    assert!(passes(lo) && !passes(hi), "bisection bounds");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if passes(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    eprintln!("largest upgrade request nginx passes with its default buffers: {lo} bytes");
    assert!(
        (31 * 1024..=33 * 1024).contains(&lo),
        "nginx's default large_client_header_buffers (4 8k) should pass about 32 KiB, found {lo}"
    );
    let (_c, r) = via_nginx(nginx.port, &request_with_cookies(lo + 1, 4096));
    assert!(is_nginx_too_large(&r), "{} bytes: {r:?}", lo + 1);
    let (mut c, r) = via_nginx(nginx.port, &request_with_cookies(lo, 4096));
    assert_eq!(
        r.status, 101,
        "the largest request nginx passes ({lo} bytes) must be admitted: {r:?}"
    );
    c.register("largest").expect("registration");
}
both_modules!(largest_request_nginx_passes);

// ---------------------------------------------------------------------------------------
// 5. Idle users behind nginx's proxy_read_timeout
// ---------------------------------------------------------------------------------------

/// How long the idle users are held: beyond nginx's default 60 s and the 100 s of
/// `proxy_read_timeout 100s` (and Cloudflare's 100 s), with margin.
const IDLE_HOLD: Duration = Duration::from_secs(130);

enum Idle {
    /// Still connected after the hold; WebSocket pings received on the way.
    Alive { client: Box<WsClient>, pings: usize },
    /// The connection ended after this long.
    Dropped {
        after: Duration,
        how: String,
        pings: usize,
    },
}

/// Holds `c` idle for [`IDLE_HOLD`]: reads only (tungstenite answers each ping with a
/// pong as it reads), sends nothing of its own.
fn hold_idle(mut c: WsClient) -> Idle {
    let start = Instant::now();
    let deadline = start + IDLE_HOLD;
    let mut pings = 0;
    loop {
        match c.recv_until(deadline) {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(_) => {}
            Err(e) if e.is_timeout() => {
                return Idle::Alive {
                    client: Box::new(c),
                    pings,
                }
            }
            Err(how) => {
                return Idle::Dropped {
                    after: start.elapsed(),
                    how: how.to_string(),
                    pings,
                }
            }
        }
    }
}

/// Two idle users, one behind nginx's defaults (proxy_read_timeout 60 s) and one behind
/// `proxy_read_timeout 100s`, held idle at the same time; the module's defaults.
struct IdlePair {
    _server: Server,
    nginx60: Nginx,
    nginx100: Nginx,
    behind60: Idle,
    behind100: Idle,
}

fn idle_pair(m: Module) -> IdlePair {
    let server = Server::start(behind_proxy(m, ""));
    let nginx60 = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let nginx100 = NginxConf::new(RECIPE_REAL_IP_AND_XFF)
        .location("proxy_read_timeout 100s;")
        .start(&server);
    let a = ws_user_via(nginx60.port, ip(30), "idle60").expect("a WebSocket user through nginx");
    let b = ws_user_via(nginx100.port, ip(31), "idle100").expect("a WebSocket user through nginx");
    let (behind60, behind100) = thread::scope(|s| {
        let ha = s.spawn(|| hold_idle(a));
        let hb = s.spawn(|| hold_idle(b));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    IdlePair {
        _server: server,
        nginx60,
        nginx100,
        behind60,
        behind100,
    }
}

/// With the module's defaults, the keepalive ping keeps both users through nginx's
/// timeouts; an IRC PING/PONG through each connection at the end proves it is alive.
#[test]
fn idle_behind_nginx_ours() {
    let p = idle_pair(Module::Ours);
    for (name, r, nginx) in [
        ("behind nginx's defaults (60 s)", p.behind60, &p.nginx60),
        ("behind proxy_read_timeout 100s", p.behind100, &p.nginx100),
    ] {
        match r {
            Idle::Alive { mut client, pings } => {
                eprintln!("idle user {name}: alive after {IDLE_HOLD:?}, {pings} keepalive pings");
                assert!(pings > 0, "{name}: alive, but no keepalive ping arrived");
                client.sync("alive-after-idle").expect("round trip");
            }
            Idle::Dropped { after, how, pings } => panic!(
                "idle user {name} was dropped after {after:?} ({how}; {pings} pings before)\n{}",
                nginx.logs()
            ),
        }
    }
}

/// Stock (the reference): it sends no keepalive, so nginx closes each idle connection
/// when its proxy_read_timeout runs out (about 60 s and 100 s after the last traffic),
/// before 130 s.
#[test]
fn idle_behind_nginx_stock() {
    let p = idle_pair(Module::Stock);
    let mut drops = Vec::new();
    for (name, r) in [
        ("behind nginx's defaults (60 s)", p.behind60),
        ("behind proxy_read_timeout 100s", p.behind100),
    ] {
        match r {
            Idle::Dropped { after, how, pings } => {
                eprintln!("stock idle user {name}: dropped after {after:?} ({how}), {pings} pings");
                assert_eq!(pings, 0, "stock sends no WebSocket ping");
                drops.push(after);
            }
            Idle::Alive { .. } => panic!("stock idle user {name} survived {IDLE_HOLD:?}"),
        }
    }
    assert!(
        drops[0] < drops[1],
        "the 60 s proxy should drop first: {drops:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Clone limits: checked at accept against the proxy's address
// ---------------------------------------------------------------------------------------

/// InspIRCd's quit message for a user over `<connect localmax>` (its own wording per
/// version).
pub(crate) fn clones_local() -> &'static str {
    match dialect() {
        Dialect::V3 => "No more connections allowed from your host via this connect class (local)",
        Dialect::V4 => "No more local connections allowed from your host via this connect class.",
    }
}

/// The documented configuration: a class for the proxy's own address before the class
/// for everyone (whose limits then apply to each real address).
fn proxy_class_connect() -> String {
    format!(
        "{}\n{}",
        connect_tag(
            "proxy",
            r#"allow="127.0.0.1" localmax="1000" globalmax="1000" useconnectban="no""#
        ),
        connect_tag("main", r#"localmax="2""#)
    )
}

/// Opens `n` connections to the WebSocket port from 127.0.0.1 that send nothing, as a
/// proxy's connections look while their handshakes are still on the way, and waits until
/// InspIRCd has accepted them.
pub(crate) fn handshakes_in_flight(server: &Server, n: usize) -> Vec<TcpStream> {
    let needle = dialect().accepted_log(&format!("127.0.0.1:{}", server.ws_port));
    let before = server.log_lines(|l| l.contains(&needle)).len();
    let conns: Vec<TcpStream> = (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", server.ws_port)).unwrap())
        .collect();
    wait_log_count(
        server,
        &format!("{n} more accepted connections on the WebSocket port"),
        before + n,
        |l| l.contains(&needle),
    );
    conns
}

/// With the proxy class: ten bursts of 30 concurrent users from distinct addresses all
/// get in (300 users), also while two handshakes are in flight; and the per-address
/// limit (localmax 2) applies to the real address: the third user from one address is
/// refused. Stock behaves the same here (its SetClientIP rechecks the class too).
fn clone_limits_proxy_class(m: Module) {
    let server = Server::start(behind_proxy(m, "").connect(&proxy_class_connect()));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let mut users = Vec::new();
    for burst in 0..10 {
        for (i, a) in concurrent_users(nginx.port, burst * 30, 30, "c")
            .into_iter()
            .enumerate()
        {
            users.push(a.registered(&format!(
                "burst {burst}, user {i} (from {})\n{}",
                real_addr(burst * 30 + i as u32),
                nginx.logs()
            )));
        }
    }
    assert_eq!(users.len(), 300);

    let _in_flight = handshakes_in_flight(&server, 2);
    attempt_user_via(nginx.port, real_addr(300), "whileinflight")
        .registered("a user while two handshakes are in flight");

    let same = real_addr(301);
    let _one = attempt_user_via(nginx.port, same, "same1").registered("first from one address");
    let _two = attempt_user_via(nginx.port, same, "same2").registered("second from one address");
    let third = attempt_user_via(nginx.port, same, "same3");
    third.assert_refused(&format!("the third user from {same} (localmax 2)"));
    let line = wait_quit(&server, clones_local());
    eprintln!(
        "third user from one address: {line}; the client saw: {}",
        third.describe()
    );
    if m == Module::Ours {
        // This module sends the 101 before it applies the real address, so the client
        // gets InspIRCd's ERROR with the reason; stock's client gets nginx's 502.
        assert!(
            third.text().contains(clones_local()),
            "the client was not told the reason: {}",
            third.describe()
        );
    }
    for c in users.iter_mut().step_by(37) {
        c.sync("still-here").expect("round trip");
    }
}
both_modules!(clone_limits_proxy_class);

/// Without the proxy class the one class (localmax 2) is checked at accept against the
/// proxy's 127.0.0.1: with two handshakes in flight through the proxy, the next user is
/// refused before its handshake is read, whatever its real address. (Made deterministic
/// by holding two connections from 127.0.0.1 open without a request: to InspIRCd they
/// are what two handshakes on the way through the proxy look like.) Once they are gone,
/// users get in again. Both modules.
fn clone_limits_without_proxy_class(m: Module) {
    let server =
        Server::start(behind_proxy(m, "").connect(&connect_tag("main", r#"localmax="2""#)));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let in_flight = handshakes_in_flight(&server, 2);
    let lost = attempt_user_via(nginx.port, ip(20), "lost");
    lost.assert_refused("a user while two handshakes are in flight through the proxy");
    let line = wait_quit(&server, clones_local());
    eprintln!(
        "without the proxy class: {}; the client saw: {}",
        line,
        lost.describe()
    );
    drop(in_flight);
    wait_log_count(&server, "the two idle connections' quits", 2, |l| {
        l.contains("QuitUser:") && !l.contains(clones_local())
    });
    attempt_user_via(nginx.port, ip(20), "back").registered("a user once nothing is in flight");
}
both_modules!(clone_limits_without_proxy_class);

// ---------------------------------------------------------------------------------------
// 7. InspIRCd acts on the real address
// ---------------------------------------------------------------------------------------

/// A K-line on `*@127.0.0.7` disconnects the proxied user from 127.0.0.7 and refuses it
/// at registration afterwards; a user from 127.0.0.8 is unaffected. Both modules.
fn kline_real_address(m: Module) {
    let server = Server::start(behind_proxy(m, ""));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let mut seven = attempt_user_via(nginx.port, ip(7), "seven").registered("seven");
    let mut eight = attempt_user_via(nginx.port, ip(8), "eight").registered("eight");
    let mut oper = server.irc("oper").expect("oper");
    oper.oper().expect("OPER");
    oper.send_line("KLINE *@127.0.0.7 0 :kline (deployment test)")
        .expect("send");
    oper.sync("klined").expect("round trip");
    let said = wait_closed(&mut seven, "the K-line on *@127.0.0.7");
    assert!(
        said.contains("K-lined"),
        "closed without the K-line: {said}"
    );
    let again = attempt_user_via(nginx.port, ip(7), "sevenagain");
    again.assert_refused("a new user from 127.0.0.7 after the K-line");
    // InspIRCd checks K-lines when the address changes (core_xline's OnSetUserIP), so the
    // new user is refused at the handshake already.
    wait_log_count(&server, "two K-lined quits", 2, |l| {
        l.contains("QuitUser:") && l.contains("'K-lined: kline (deployment test)'")
    });
    eight.sync("unaffected").expect("round trip");
}
both_modules!(kline_real_address);

/// `<connect deny="127.0.0.7">` refuses the proxied user from 127.0.0.7 (and only it).
/// Both modules.
fn connect_deny_real_address(m: Module) {
    let connect = format!(
        "<connect name=\"denied\" deny=\"127.0.0.7\" reason=\"denied (deployment test)\">\n{}",
        connect_tag("main", "")
    );
    let server = Server::start(behind_proxy(m, "").connect(&connect));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let denied = attempt_user_via(nginx.port, ip(7), "seven");
    denied.assert_refused("the proxied user from the denied 127.0.0.7");
    wait_quit(&server, "denied (deployment test)");
    attempt_user_via(nginx.port, ip(8), "eight").registered("a user from 127.0.0.8");
}
both_modules!(connect_deny_real_address);

/// With m_cloaking (half mode), user mode +x gives the proxied user from 127.0.0.7 the
/// same cloaked host as a plain TCP client connecting directly from 127.0.0.7 (and not
/// that of 127.0.0.8 or of the proxy's 127.0.0.1). Both modules.
fn cloak_real_address(m: Module) {
    // m_cloaking hashes with m_md5.
    let conf = behind_proxy(m, "").module("md5").module("cloaking").extra(
        r#"<cloak mode="half" key="deployment-test-cloak-key-0123456789abcdef" prefix="net-">"#,
    );
    let server = Server::start(conf);
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let mut proxied = attempt_user_via(nginx.port, ip(7), "proxied").registered("proxied");
    let mut direct = irc_from(ip(7), server.irc_port, "direct").expect("a plain user");
    let mut other = irc_from(ip(8), server.irc_port, "other").expect("a plain user");
    let mut local = server.irc("local").expect("local");
    proxied.send_line("MODE proxied +x").expect("send");
    proxied.sync("cloaked").expect("round trip");
    for (c, nick) in [
        (&mut direct, "direct"),
        (&mut other, "other"),
        (&mut local, "local"),
    ] {
        c.send_line(&format!("MODE {nick} +x")).expect("send");
        c.sync("cloaked").expect("round trip");
    }
    let p = ws_whois_host(&mut proxied, "proxied");
    let d = irc_whois_host(&mut direct, "direct");
    let o = irc_whois_host(&mut other, "other");
    let l = irc_whois_host(&mut local, "local");
    eprintln!("cloaks: proxied 127.0.0.7 {p}, direct 127.0.0.7 {d}, 127.0.0.8 {o}, 127.0.0.1 {l}");
    assert!(
        p.starts_with("net-"),
        "the proxied user is not cloaked: {p}"
    );
    assert_eq!(
        p, d,
        "proxied and direct users from 127.0.0.7 must share the cloak"
    );
    assert_ne!(p, o, "127.0.0.7 and 127.0.0.8 must have different cloaks");
    assert_ne!(p, l, "the proxied user must not get the proxy's cloak");
}
both_modules!(cloak_real_address);
