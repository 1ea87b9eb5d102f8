//! docs/PROXIES.md's proxy recipes that end in secure web users or a CDN's header, each run
//! against real proxies: wss terminated at HAProxy (TCP mode, `send-proxy-v2-ssl`),
//! nginx terminating https with `X-Forwarded-Proto` (`proxyprotoheader`), and a CDN
//! that sets `CF-Connecting-IP` in front of nginx (`proxyheader="cf-connecting-ip"`).
//!
//! Clients connect to the proxies from 127.0.0.2 and up, so their real addresses are
//! loopback addresses. InspIRCd 4's `<sslinfo localsecure>` (on by default) counts every
//! user with a loopback address as secure whatever the module decides, so these servers
//! turn it off: what WHOIS and `+z` show is then the module's decision.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::common::deploy::*;
use crate::common::*;
use crate::proxy_protocol::{oper, whois_address_and_secure};

/// sslinfo and sslmodes (`+z`), with InspIRCd 4's `localsecure` off. `tls()` only
/// for the certificate the proxies use (the server's own wss listener is not used).
fn secure_users(websocket: &str) -> Conf {
    let conf = Conf::new(Module::Ours)
        .websocket(websocket)
        .tls()
        .module("sslinfo")
        .module("sslmodes");
    match dialect() {
        Dialect::V3 => conf,
        Dialect::V4 => conf.extra(r#"<sslinfo localsecure="no">"#),
    }
}

/// The certificate and key of `server`'s TLS files.
fn cert_and_key(server: &Server) -> (PathBuf, PathBuf) {
    (server.dir().join("cert.pem"), server.dir().join("key.pem"))
}

/// A registered user over wss:// through the proxy on `port` from `src`.
fn wss_user(port: u16, src: Ipv4Addr, nick: &str, cert: &Path) -> WsClient {
    let mut c = wss_via(port, src, &WsOpts::default(), cert).unwrap_or_else(|e| {
        panic!(
            "[{nick}] wss handshake through the proxy from {src}: {}",
            describe_ws_error(&e)
        )
    });
    c.register(nick).expect("registration");
    c
}

/// A registered user over ws:// through `port` from `src`, sending `headers`.
fn ws_user(port: u16, src: Ipv4Addr, nick: &str, headers: &[(&str, &str)]) -> WsClient {
    let mut opts = WsOpts::default();
    for (k, v) in headers {
        opts = opts.header(k, v);
    }
    attempt_via(port, src, nick, &opts).registered(&format!("{nick} from {src} with {headers:?}"))
}

/// An nginx configuration (one process, its files in `dir`) with one `server` that
/// listens on `ready` (answering the harness's `/__ready` with `token`) and `listen`
/// more, and passes every other path on with `location` directives.
fn nginx_conf(dir: &Path, ready: u16, token: &str, listen: &str, location: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n\
         http {{\naccess_log {d}/access.log;\nclient_body_temp_path {d}/cb;\nproxy_temp_path {d}/p;\n\
         fastcgi_temp_path {d}/f;\nuwsgi_temp_path {d}/u;\nscgi_temp_path {d}/s;\n\
         server {{\nlisten 127.0.0.1:{ready};\n{listen}\n\
         location = /__ready {{ return 200 \"{token}\"; }}\n\
         location / {{\n{location}\n}}\n}}\n}}\n"
    )
}

/// nginx's WebSocket proxying to InspIRCd's port `ws` (docs/PROXIES.md's recipe).
fn ws_proxying(ws: u16) -> String {
    format!(
        "proxy_pass http://127.0.0.1:{ws};\nproxy_http_version 1.1;\n\
         proxy_set_header Upgrade $http_upgrade;\nproxy_set_header Connection \"upgrade\";"
    )
}

/// WHOIS by `o` shows each user with its address and (671) whether it is secure.
fn assert_whois(o: &mut Client, users: &[(&str, Ipv4Addr, bool)]) {
    for &(nick, address, is_secure) in users {
        assert_eq!(
            whois_address_and_secure(o, nick),
            (address.to_string(), is_secure),
            "{nick}"
        );
    }
}

/// `c` joins `#secure`; the line that answered (its JOIN, or 489: a secure channel).
fn try_join_secure(c: &mut WsClient) -> String {
    c.send_line("JOIN #secure").expect("send JOIN");
    let nick = c.nick.clone();
    let answer = c
        .expect_msg(&format!("{nick}'s JOIN of #secure or 489"), |l| {
            show(l).contains(" JOIN ") || is_numeric(l, "489")
        })
        .expect("the answer to JOIN");
    show(&answer.into_data())
}

/// `owner` (secure) makes `#secure` +z; every one of `admitted` joins it, every one of
/// `refused` gets 489.
fn secure_channel(
    owner: &mut WsClient,
    admitted: &mut [&mut WsClient],
    refused: &mut [&mut WsClient],
) {
    owner.join("#secure").expect("JOIN");
    owner.send_line("MODE #secure +z").expect("send MODE");
    owner
        .expect_str("+z set", |l| {
            l.contains(" MODE #secure ") && l.contains("+z")
        })
        .expect("+z set");
    for c in admitted.iter_mut() {
        let answer = try_join_secure(c);
        assert!(
            answer.contains(" JOIN "),
            "{} refused by +z: {answer}",
            c.nick
        );
    }
    for c in refused.iter_mut() {
        let answer = try_join_secure(c);
        assert!(
            answer.split(' ').nth(1) == Some("489"),
            "{} admitted to the +z channel: {answer}",
            c.nick
        );
    }
}

/// wss:// terminated at HAProxy in TCP mode, `send-proxy-v2-ssl` to InspIRCd
/// (`proxyprotocol`): a user over TLS is secure (WHOIS 671, `+z` admits it); a user of
/// the same HAProxy's plain listener is not.
#[test]
fn wss_at_haproxy_with_send_proxy_v2_ssl_makes_secure_users() {
    let server = Server::start(secure_users(&format!(
        r#"proxyranges="{PROXY_ADDR}" proxyprotocol="yes""#
    )));
    let (cert, key) = cert_and_key(&server);
    let ws = server.ws_port;
    let tls = testkit::ports::free_port();
    let plain = testkit::ports::free_port();
    let _haproxy = start_custom_proxy("haproxy", &server, &|dir, ready, token| {
        // HAProxy reads the certificate and its key from one file.
        let pem = dir.join("site.pem");
        let mut both = std::fs::read(&cert).unwrap();
        both.extend(std::fs::read(&key).unwrap());
        std::fs::write(&pem, both).unwrap();
        format!(
            "global\n    nbthread 1\ndefaults\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
             frontend ready\n    mode http\n    bind 127.0.0.1:{ready}\n    http-request return status 200 content-type text/plain string \"{token}\"\n\
             frontend wss\n    mode tcp\n    bind 127.0.0.1:{tls} ssl crt {pem}\n    default_backend ircd\n\
             frontend ws\n    mode tcp\n    bind 127.0.0.1:{plain}\n    default_backend ircd\n\
             backend ircd\n    mode tcp\n    server ircd 127.0.0.1:{ws} send-proxy-v2-ssl\n",
            pem = pem.display()
        )
    });
    let mut o = oper(&server);
    let mut secure = wss_user(tls, ip(30), "tlsone", &cert);
    let mut second = wss_user(tls, ip(31), "tlstwo", &cert);
    let mut plain_user = ws_user(plain, ip(32), "plainone", &[]);
    assert_whois(
        &mut o,
        &[
            ("tlsone", ip(30), true),
            ("tlstwo", ip(31), true),
            ("plainone", ip(32), false),
        ],
    );
    secure_channel(&mut secure, &mut [&mut second], &mut [&mut plain_user]);
}

/// nginx terminates https and passes ws:// to InspIRCd with `proxy_set_header
/// X-Forwarded-Proto $scheme`, believed with `proxyprotoheader="x-forwarded-proto"`: its
/// https users are secure; its plain-http users are not, nor one that forges
/// `X-Forwarded-Proto: https` through it (nginx overwrites it), nor one that forges it
/// (and an address) connecting to InspIRCd directly from outside `proxyranges`.
#[test]
fn nginx_https_with_x_forwarded_proto_makes_secure_users_and_nothing_else_does() {
    let server = Server::start(secure_users(&format!(
        r#"proxyranges="{PROXY_ADDR}" proxyprotoheader="x-forwarded-proto""#
    )));
    let (cert, key) = cert_and_key(&server);
    let ws = server.ws_port;
    let https = testkit::ports::free_port();
    let (http, _dir, _nginx) = start_custom_proxy("nginx", &server, &|dir, ready, token| {
        nginx_conf(
            dir,
            ready,
            token,
            &format!(
                "listen 127.0.0.1:{https} ssl;\nssl_certificate {};\nssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
            &format!(
                "{}\nproxy_set_header X-Real-IP $remote_addr;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Forwarded-Proto $scheme;",
                ws_proxying(ws)
            ),
        )
    });
    let mut o = oper(&server);
    let forged = [("X-Forwarded-Proto", "https")];
    let mut secure = wss_user(https, ip(40), "httpsone", &cert);
    let mut second = wss_user(https, ip(41), "httpstwo", &cert);
    let mut plain_user = ws_user(http, ip(42), "httpone", &[]);
    let mut forger = ws_user(http, ip(43), "forger", &forged);
    // With `proxyranges` set every request must carry an address header (the stock
    // rule); an untrusted peer's is not read.
    let mut direct = ws_user(
        ws,
        ip(44),
        "direct",
        &[("X-Forwarded-Proto", "https"), ("X-Real-IP", "192.0.2.9")],
    );
    assert_whois(
        &mut o,
        &[
            ("httpsone", ip(40), true),
            ("httpstwo", ip(41), true),
            ("httpone", ip(42), false),
            ("forger", ip(43), false),
            ("direct", ip(44), false),
        ],
    );
    secure_channel(
        &mut secure,
        &mut [&mut second],
        &mut [&mut plain_user, &mut forger, &mut direct],
    );
}

/// A CDN in front of nginx: the CDN (HAProxy here, as a CDN does it) overwrites
/// `CF-Connecting-IP` with its client's address and reaches nginx from its own address,
/// the only one nginx admits; nginx passes the header on, and InspIRCd reads it
/// (`proxyheader="cf-connecting-ip"`, `proxyranges` = nginx). A client's own
/// `CF-Connecting-IP`, X-Real-IP or X-Forwarded-For changes nothing, and a client that
/// goes around the CDN is refused by nginx.
#[test]
fn a_cdn_setting_cf_connecting_ip_in_front_of_nginx() {
    let server = Server::start(Conf::new(Module::Ours).websocket(&format!(
        r#"proxyranges="{PROXY_ADDR}" proxyheader="cf-connecting-ip""#
    )));
    let ws = server.ws_port;
    let cdn_addr = ip(50);
    let (site, _site_dir, _nginx) = start_custom_proxy("nginx", &server, &|dir, ready, token| {
        nginx_conf(
            dir,
            ready,
            token,
            "",
            &format!("allow {cdn_addr};\ndeny all;\n{}", ws_proxying(ws)),
        )
    });
    let (cdn, _cdn_dir, _haproxy) = start_custom_proxy("haproxy", &server, &|_, ready, token| {
        format!(
            "global\n    nbthread 1\ndefaults\n    mode http\n    option forwardfor\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n    timeout tunnel 1h\n\
             frontend cdn\n    bind 127.0.0.1:{ready}\n    http-request return status 200 content-type text/plain string \"{token}\" if {{ path /__ready }}\n\
             http-request set-header CF-Connecting-IP %[src]\n    default_backend site\n\
             backend site\n    server site 127.0.0.1:{site} source {cdn_addr}\n"
        )
    });
    let mut o = oper(&server);
    let _honest = ws_user(cdn, ip(60), "honest", &[]);
    let forged = [
        ("CF-Connecting-IP", "192.0.2.1"),
        ("X-Real-IP", "192.0.2.2"),
        ("X-Forwarded-For", "192.0.2.3"),
    ];
    let _forger = ws_user(cdn, ip(61), "forger", &forged);
    assert_whois(
        &mut o,
        &[("honest", ip(60), false), ("forger", ip(61), false)],
    );
    match attempt_via(
        site,
        ip(62),
        "around",
        &WsOpts::default().header("CF-Connecting-IP", "192.0.2.1"),
    ) {
        Attempt::HandshakeFailed(e) => assert!(e.contains("403"), "around the CDN: {e}"),
        other => panic!("a client around the CDN: {}", other.describe()),
    }
}
