//! Issue 20, bursts of users through one proxy against InspIRCd's clone limits: with
//! `<performance clonesonconnect>` on (InspIRCd's default) the limits of a connection's
//! `<connect>` class are checked when it is accepted, against the proxy's address; the
//! module warns at startup and rehash when that applies to the proxies and no class for
//! them lifts the limits (src/proxy_clones.rs). With `clonesonconnect="no"` a burst
//! through one real nginx gets in, and the limits still apply to each real address.
//!
//! The servers here use one class, `main`, with `localmax="2"`: small, so that the
//! proxy's own connections would reach it at once.

use crate::common::deploy::*;
use crate::common::*;
use crate::config_lifecycle::rehash;
use crate::deployment::{clones_local, concurrent_users, handshakes_in_flight};

/// The one class, limited.
fn limited_class() -> String {
    connect_tag("main", r#"localmax="2""#)
}

/// The class for the proxy before it, as the README shows.
fn proxy_class() -> String {
    format!(
        "{}\n{}",
        connect_tag(
            "proxy",
            r#"allow="127.0.0.1" localmax="1000" globalmax="1000""#
        ),
        limited_class()
    )
}

fn conf(performance: &str, connect: &str) -> Conf {
    Conf::new(Module::Ours)
        .websocket(&format!(r#"proxyranges="{PROXY_ADDR}""#))
        .performance(&format!(r#"netbuffersize="65534" {performance}"#))
        .connect(connect)
}

fn is_burst_warning(line: &str) -> bool {
    line.contains("WARNING: <websocket:proxyranges>") && line.contains("clonesonconnect")
}

fn burst_warnings(server: &Server) -> Vec<String> {
    server.log_lines(is_burst_warning)
}

/// The warning at startup names the proxy, the class and its limits and both fixes; it
/// comes again at every rehash while that holds, and not once either fix is in place.
#[test]
fn the_module_warns_when_the_proxy_limits_are_checked_at_accept() {
    let mut server = Server::start(conf("", &limited_class()));
    let warning = server.wait_log("the burst warning at startup", is_burst_warning);
    for part in [
        "proxy 127.0.0.1",
        &format!("port {}", server.ws_port),
        "class \"main\" (localmax 2, globalmax 10000)",
        "<performance clonesonconnect=\"no\">",
        "localmax and globalmax of at least 1000",
    ] {
        assert!(warning.contains(part), "{part:?} not in {warning}");
    }
    eprintln!("the warning: {warning}");
    let mut o = irc_from(ip(3), server.irc_port, "oper").expect("the oper's connection");
    o.oper().expect("OPER");
    let _ = rehash(&mut o);
    assert_eq!(
        burst_warnings(&server).len(),
        2,
        "not warned again at rehash"
    );

    for (fix, fixed) in [
        (
            "clonesonconnect=\"no\"",
            conf(r#"clonesonconnect="no""#, &limited_class()),
        ),
        ("a proxy class", conf("", &proxy_class())),
    ] {
        server.rewrite_config(fixed);
        let _ = rehash(&mut o);
        assert_eq!(
            burst_warnings(&server).len(),
            2,
            "warned with {fix}:\n{}",
            tail(&server.log(), 20)
        );
    }
}

/// With `clonesonconnect="no"`: while two handshakes from the proxy's address are in
/// flight (the limit of the class), a burst of 30 users through one real nginx all
/// register, and no warning is logged; the limit still applies to each real address (a
/// third user from one address is refused).
#[test]
fn with_clonesonconnect_off_a_burst_through_one_nginx_gets_in() {
    let server = Server::start(conf(r#"clonesonconnect="no""#, &limited_class()));
    let nginx = NginxConf::new(RECIPE_REAL_IP_AND_XFF).start(&server);
    let _in_flight = handshakes_in_flight(&server, 2);
    let users: Vec<WsClient> = concurrent_users(nginx.port, 0, 30, "b")
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.registered(&format!(
                "user {i} of the burst (from {})\n{}",
                real_addr(i as u32),
                nginx.logs()
            ))
        })
        .collect();
    assert_eq!(users.len(), 30);
    assert!(
        burst_warnings(&server).is_empty(),
        "{:?}",
        burst_warnings(&server)
    );

    let same = real_addr(40);
    let _one = attempt_user_via(nginx.port, same, "same1").registered("first from one address");
    let _two = attempt_user_via(nginx.port, same, "same2").registered("second from one address");
    attempt_user_via(nginx.port, same, "same3")
        .assert_refused(&format!("the third user from {same} (localmax 2)"));
    wait_quit(&server, clones_local());
}
