//! wss: WebSocket over TLS from m_ssl_gnutls (`<bind hook="websocket" sslprofile=...>`),
//! with a self-signed certificate made by the test and a rustls client that trusts
//! exactly that certificate.

use crate::common::*;

fn wss_chat(m: Module) {
    let server = Server::start(Conf::new(m).tls());
    let cert = server.dir().join("cert.pem");
    let mut irc = Client::irc_start(server.irc_port, "plain").expect("a plain user");
    let mut ws = WsClient::connect_tls(
        server.wss_port,
        &WsOpts::default().protocols("text.inspircd.org"),
        &cert,
    )
    .unwrap_or_else(|e| panic!("wss handshake failed: {}", describe_ws_error(&e)));
    assert_eq!(ws.protocol().as_deref(), Some("text.inspircd.org"));
    ws.start_register("secure").expect("NICK/USER");
    irc.wait_welcome().expect("001");
    ws.wait_welcome().expect("001");
    irc.join("#tls").expect("JOIN");
    ws.join("#tls").expect("JOIN");
    irc.expect_line("secure's JOIN", |l| show(l).starts_with(":secure!"))
        .expect("secure's JOIN");

    ws.send_line("PRIVMSG #tls :over TLS ✓").expect("send");
    let got = irc
        .expect_str("PRIVMSG over TLS", |l| l.contains(" PRIVMSG "))
        .expect("PRIVMSG over TLS");
    assert_eq!(got, ":secure!ws@127.0.0.1 PRIVMSG #tls :over TLS ✓");

    irc.send_line("PRIVMSG #tls :back to TLS").expect("send");
    let got = ws
        .expect_msg("PRIVMSG to the TLS user", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG to the TLS user");
    assert_text(&got, ":plain!u@127.0.0.1 PRIVMSG #tls :back to TLS");

    // Ping/pong through both hooks.
    ws.ws
        .send(tungstenite::Message::Ping(b"tls-ping".to_vec()))
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match ws.recv_until(deadline) {
            Ok(tungstenite::Message::Pong(p)) => {
                assert_eq!(p, b"tls-ping");
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("no pong over TLS: {e}"),
        }
    }
}
both_modules!(wss_chat);

/// The TLS user is marked secure by InspIRCd (WHOIS 671), i.e. the WebSocket hook sits
/// above the TLS hook.
fn wss_user_is_secure(m: Module) {
    let server = Server::start(Conf::new(m).tls().extra(r#"<module name="sslinfo">"#));
    let cert = server.dir().join("cert.pem");
    let mut ws = WsClient::connect_tls(server.wss_port, &WsOpts::default(), &cert)
        .unwrap_or_else(|e| panic!("wss handshake failed: {}", describe_ws_error(&e)));
    ws.register("secure2").expect("registration");
    ws.send_line("WHOIS secure2").expect("send");
    ws.expect_line("671 (secure connection)", |l| is_numeric(l, "671"))
        .expect("671 (secure connection)");
}
both_modules!(wss_user_is_secure);

/// HTTP errors travel over TLS too (origin refused -> 403).
fn wss_origin_refused(m: Module) {
    let server = Server::start(Conf::new(m).tls());
    let cert = server.dir().join("cert.pem");
    let r = WsClient::connect_tls(
        server.wss_port,
        &WsOpts::default().origin(Some("https://evil.example")),
        &cert,
    );
    assert_http_refusal(r, 403);
}
both_modules!(wss_origin_refused);
