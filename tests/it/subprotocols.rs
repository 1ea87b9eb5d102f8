//! Subprotocol negotiation and the text/binary frame mode it selects.

use crate::common::*;
use tungstenite::Message;

/// Upgrades with an optional raw `Sec-WebSocket-Protocol` value and returns the 101
/// response and the opcode of the first server message (the answer to a command sent
/// before registration, so no registration delay is paid).
fn negotiate(server: &Server, protocols: Option<&str>) -> (HttpResponse, u8) {
    let line = protocols.map(|p| format!("Sec-WebSocket-Protocol: {p}"));
    let extra: Vec<&str> = line.iter().map(|s| s.as_str()).collect();
    let (mut c, r) = Client::upgrade(server.ws_port, &extra).expect("upgrade");
    c.send_text("PING :mode").expect("send");
    let f = c
        .expect_frame("an answer to PING (451 or PONG)", |f| {
            f.opcode == OP_TEXT || f.opcode == OP_BINARY
        })
        .expect("an answer to PING (451 or PONG)");
    assert!(show(&f.payload).starts_with(":test.example "), "{f:?}");
    assert!(
        f.fin && f.rsv == 0 && !f.masked,
        "server frame flags: {f:?}"
    );
    (r, f.opcode)
}

fn assert_selected(r: &HttpResponse, proto: Option<&str>) {
    match proto {
        Some(p) => {
            assert_eq!(r.header_count("Sec-WebSocket-Protocol"), 1, "{r:?}");
            assert_eq!(r.header("Sec-WebSocket-Protocol"), Some(p), "{r:?}");
        }
        None => assert_eq!(
            r.header_count("Sec-WebSocket-Protocol"),
            0,
            "no subprotocol may be echoed: {r:?}"
        ),
    }
}

/// tungstenite client requesting exactly `proto`; returns the first server message.
fn tungstenite_with(server: &Server, proto: &str) -> (WsClient, Message) {
    let mut c = WsClient::connect(server.ws_port, &WsOpts::default().protocols(proto))
        .unwrap_or_else(|e| panic!("handshake with {proto}: {}", describe_ws_error(&e)));
    assert_eq!(c.protocol().as_deref(), Some(proto));
    c.send_line("PING :mode").expect("send");
    let m = c
        .expect_msg("an answer to PING", |l| l.starts_with(b":test.example "))
        .expect("an answer to PING");
    (c, m)
}

// ---------------------------------------------------------------------------------------
// The inspircd.org names: both modules
// ---------------------------------------------------------------------------------------

fn binary_inspircd_org(m: Module) {
    let server = Server::start(Conf::new(m));
    let (r, op) = negotiate(&server, Some("binary.inspircd.org"));
    assert_selected(&r, Some("binary.inspircd.org"));
    assert_eq!(op, OP_BINARY);
    let (_c, msg) = tungstenite_with(&server, "binary.inspircd.org");
    assert!(msg.is_binary(), "{msg:?}");
}
both_modules!(binary_inspircd_org);

fn text_inspircd_org(m: Module) {
    // defaultmode binary, so text frames can only come from the subprotocol.
    let server = Server::start(Conf::new(m).websocket(r#"defaultmode="binary""#));
    let (r, op) = negotiate(&server, Some("text.inspircd.org"));
    assert_selected(&r, Some("text.inspircd.org"));
    assert_eq!(op, OP_TEXT);
    let (_c, msg) = tungstenite_with(&server, "text.inspircd.org");
    assert!(msg.is_text(), "{msg:?}");
}
both_modules!(text_inspircd_org);

/// The first known name in the client's list wins.
fn preference_order_inspircd_org(m: Module) {
    let server = Server::start(Conf::new(m));
    let (r, op) = negotiate(&server, Some("foo, text.inspircd.org, binary.inspircd.org"));
    assert_selected(&r, Some("text.inspircd.org"));
    assert_eq!(op, OP_TEXT);
    let (r, op) = negotiate(&server, Some("foo, binary.inspircd.org, text.inspircd.org"));
    assert_selected(&r, Some("binary.inspircd.org"));
    assert_eq!(op, OP_BINARY);
}
both_modules!(preference_order_inspircd_org);

/// BAD_INPUT 21: only unknown names -> defaultmode (text by default), nothing echoed.
fn unknown_only_uses_default_text(m: Module) {
    let server = Server::start(Conf::new(m));
    let (r, op) = negotiate(&server, Some("foo, bar.example"));
    assert_selected(&r, None);
    assert_eq!(op, OP_TEXT);
    let (r, op) = negotiate(&server, None);
    assert_selected(&r, None);
    assert_eq!(op, OP_TEXT);
}
both_modules!(unknown_only_uses_default_text);

fn defaultmode_binary(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"defaultmode="binary""#));
    let (r, op) = negotiate(&server, Some("foo"));
    assert_selected(&r, None);
    assert_eq!(op, OP_BINARY);
    let (r, op) = negotiate(&server, None);
    assert_selected(&r, None);
    assert_eq!(op, OP_BINARY);
}
both_modules!(defaultmode_binary);

fn defaultmode_text(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"defaultmode="text""#));
    let (r, op) = negotiate(&server, None);
    assert_selected(&r, None);
    assert_eq!(op, OP_TEXT);
}
both_modules!(defaultmode_text);

/// BAD_INPUT 21: reject mode refuses unknown-only lists but accepts a known name.
fn defaultmode_reject(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"defaultmode="reject""#));
    let r = http_exchange(
        server.ws_port,
        &upgrade_request(&["Sec-WebSocket-Protocol: foo, bar"]),
    )
    .expect("the response");
    assert_error_closed(&r, 400);
    let (r, op) = negotiate(&server, Some("binary.inspircd.org"));
    assert_selected(&r, Some("binary.inspircd.org"));
    assert_eq!(op, OP_BINARY);
}
both_modules!(defaultmode_reject);

/// Deprecated sendastext="no" with no defaultmode means binary.
fn sendastext_no_means_binary(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"sendastext="no""#));
    let (r, op) = negotiate(&server, None);
    assert_selected(&r, None);
    assert_eq!(op, OP_BINARY);
}
both_modules!(sendastext_no_means_binary);

fn sendastext_yes_means_text(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"sendastext="yes""#));
    let (r, op) = negotiate(&server, None);
    assert_selected(&r, None);
    assert_eq!(op, OP_TEXT);
}
both_modules!(sendastext_yes_means_text);

/// defaultmode wins over the deprecated key.
fn defaultmode_overrides_sendastext(m: Module) {
    let server = Server::start(Conf::new(m).websocket(r#"sendastext="no" defaultmode="text""#));
    let (_r, op) = negotiate(&server, None);
    assert_eq!(op, OP_TEXT);
}
both_modules!(defaultmode_overrides_sendastext);

// ---------------------------------------------------------------------------------------
// The ircv3.net names: ours on every server. Debian's stock 3.15 does not know them (they
// came in 3.18): it echoes nothing and applies defaultmode; stock 4.7 knows them.
// ---------------------------------------------------------------------------------------

/// What stock does with an ircv3.net name depends on the server: the one expectation
/// here that follows the InspIRCd version, not the module.
#[test]
fn ircv3_net_names_stock() {
    let server = Server::start(Conf::new(Module::Stock).websocket(r#"defaultmode="text""#));
    let (r, op) = negotiate(&server, Some("binary.ircv3.net"));
    match dialect() {
        Dialect::V3 => {
            assert_selected(&r, None);
            assert_eq!(op, OP_TEXT);
        }
        Dialect::V4 => {
            assert_selected(&r, Some("binary.ircv3.net"));
            assert_eq!(op, OP_BINARY);
        }
    }
}

#[test]
fn binary_ircv3_net_ours() {
    let server = Server::start(Conf::new(Module::Ours));
    let (r, op) = negotiate(&server, Some("binary.ircv3.net"));
    assert_selected(&r, Some("binary.ircv3.net"));
    assert_eq!(op, OP_BINARY);
    let (_c, msg) = tungstenite_with(&server, "binary.ircv3.net");
    assert!(msg.is_binary(), "{msg:?}");
}

#[test]
fn text_ircv3_net_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"defaultmode="binary""#));
    let (r, op) = negotiate(&server, Some("text.ircv3.net"));
    assert_selected(&r, Some("text.ircv3.net"));
    assert_eq!(op, OP_TEXT);
    let (_c, msg) = tungstenite_with(&server, "text.ircv3.net");
    assert!(msg.is_text(), "{msg:?}");
}

#[test]
fn preference_order_ircv3_net_ours() {
    let server = Server::start(Conf::new(Module::Ours));
    let (r, op) = negotiate(&server, Some("foo, text.ircv3.net, binary.ircv3.net"));
    assert_selected(&r, Some("text.ircv3.net"));
    assert_eq!(op, OP_TEXT);
    // BAD_INPUT 20
    let (r, op) = negotiate(&server, Some("foo, binary.ircv3.net"));
    assert_selected(&r, Some("binary.ircv3.net"));
    assert_eq!(op, OP_BINARY);
    let (r, _op) = negotiate(&server, Some("binary.ircv3.net, text.inspircd.org"));
    assert_selected(&r, Some("binary.ircv3.net"));
}

/// Reject mode accepts the ircv3.net names too.
#[test]
fn reject_mode_accepts_ircv3_net_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"defaultmode="reject""#));
    let (r, op) = negotiate(&server, Some("text.ircv3.net"));
    assert_selected(&r, Some("text.ircv3.net"));
    assert_eq!(op, OP_TEXT);
}

/// Several Sec-WebSocket-Protocol header lines form one list (RFC 7230 3.2.2). Stock
/// only reads the first line.
#[test]
fn protocol_list_over_two_header_lines_ours() {
    let server = Server::start(Conf::new(Module::Ours).websocket(r#"defaultmode="reject""#));
    let (mut c, r) = Client::upgrade(
        server.ws_port,
        &[
            "Sec-WebSocket-Protocol: foo",
            "Sec-WebSocket-Protocol: binary.ircv3.net",
        ],
    )
    .expect("upgrade");
    assert_selected(&r, Some("binary.ircv3.net"));
    c.register("twolines").expect("registration");
}
