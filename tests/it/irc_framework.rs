//! A real IRC client library on its WebSocket transport: irc-framework (the library
//! behind the KiwiIRC web client, from the npm registry, pinned in tests/web/package.json)
//! runs in Node.js (tests/web/irc_framework_client.js) against the real InspIRCd with
//! this module. A plain TCP IRC client that the test controls shares a channel with it.
//!
//! Three WebSocket implementations under irc-framework:
//! - the `ws` package over ws:// (sends an allowed Origin),
//! - the `ws` package over wss:// (m_ssl_gnutls; the test's certificate is the only CA),
//! - Node's built-in WebSocket (undici), which sends no Origin: `allowmissingorigin`.
//!
//! Needs `node` and `npm` (Debian's `nodejs` and `npm`, or any Node >= 20). If
//! tests/web/node_modules lacks the pinned packages, the test runs `npm ci` there first.
//! Without Node the tests fail, saying so.

use std::path::{Path, PathBuf};

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::common::deflate::{assert_deflate_accepted, compressible_texts};
use crate::common::node::{ensure_node_modules, node_major, NodeScript};
use crate::common::*;
use serde_json::{json, Value};

/// Upper bound for every wait on the Node client.
const WAIT: Duration = Duration::from_secs(20);
const CHAN: &str = "#kiwi";
const NICK: &str = "kiwi";
const PAGE_ORIGIN: &str = "https://kiwi.example";
const FROM_NODE: &str = "héllo from irc-framework ✓ 日本語 🎉";
const FROM_PLAIN: &str = "ünïcödé reply ☃ — 🚀";
const QUIT_MESSAGE: &str = "kiwi leaving ✌";

// ---------------------------------------------------------------------------------------
// The Node client process
// ---------------------------------------------------------------------------------------

struct NodeClient {
    node: NodeScript,
    seen: Vec<Value>,
    stderr_path: PathBuf,
}

impl NodeClient {
    fn spawn(config: Value, dir: &Path) -> NodeClient {
        // Node 20 and 21 have the built-in WebSocket behind a flag.
        let flags: &[&str] = if config["websocket"] == "native" && node_major() < 22 {
            &["--experimental-websocket"]
        } else {
            &[]
        };
        let stderr_path = dir.join("node-stderr.txt");
        // Closing stdin makes the script exit; it is killed by PID if still there 2 s on.
        let node = NodeScript::spawn(
            flags,
            "irc_framework_client.js",
            &config,
            &stderr_path,
            Duration::from_secs(2),
        );
        NodeClient {
            node,
            seen: Vec::new(),
            stderr_path,
        }
    }

    fn command(&mut self, cmd: Value) {
        if let Err(e) = self.node.send(&cmd) {
            panic!("writing to the node client failed ({e}){}", self.context());
        }
    }

    fn context(&self) -> String {
        format!(
            "\nevents so far:\n{}\nnode stderr:\n{}",
            self.seen
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// The next event named `name` that satisfies `pred`; fails on an "error" event,
    /// on the script's exit, or after [`WAIT`].
    fn expect(&mut self, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.node.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == "error" || v["event"] == "unparsed" {
                        panic!(
                            "the node client reported a problem while waiting for {what}: {v}{}",
                            self.context()
                        );
                    }
                    if v["event"] == name && pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out after {WAIT:?} waiting for the node client: {what}{}",
                    self.context()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the node client exited ({:?}) while waiting for {what}{}",
                    self.node.child.try_wait(),
                    self.context()
                ),
            }
        }
    }

    /// Waits for the script to exit by itself; returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.node.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() >= deadline {
                panic!(
                    "the node client did not exit within {WAIT:?}{}",
                    self.context()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// The `ws` package, ws://, with an allowed Origin.
    WsPackage,
    /// The `ws` package, wss://, trusting the test's certificate only.
    WsPackageTls,
    /// Node's built-in WebSocket (no Origin header), ws://.
    NodeBuiltin,
}

/// `compression`: the server has `compression="yes"`, and the client must have
/// negotiated permessage-deflate (the server's STATS W counts it); long and repetitive
/// lines then go both ways, byte-exact.
fn irc_framework_chat(variant: Variant, compression: bool) {
    node_major(); // fails first, and clearly, without Node
    ensure_node_modules();

    let mut conf = Conf::new(Module::Ours).origins(&[PAGE_ORIGIN]);
    let mut websocket = Vec::new();
    match variant {
        Variant::WsPackage => {}
        Variant::WsPackageTls => conf = conf.tls(),
        Variant::NodeBuiltin => websocket.push(r#"allowmissingorigin="yes""#),
    }
    if compression {
        websocket.push(r#"compression="yes""#);
    }
    if !websocket.is_empty() {
        conf = conf.websocket(&websocket.join(" "));
    }
    let mut server = Server::start(conf);
    let config = match variant {
        Variant::WsPackage => json!({
            "websocket": "ws", "origin": PAGE_ORIGIN,
            "host": "127.0.0.1", "port": server.ws_port, "tls": false,
        }),
        Variant::WsPackageTls => json!({
            "websocket": "ws", "origin": PAGE_ORIGIN,
            "ca": server.dir().join("cert.pem"),
            "host": "127.0.0.1", "port": server.wss_port, "tls": true,
        }),
        Variant::NodeBuiltin => json!({
            "websocket": "native",
            "host": "127.0.0.1", "port": server.ws_port, "tls": false,
        }),
    };
    let mut config = config;
    config["nick"] = NICK.into();
    config["channel"] = CHAN.into();
    config["path"] = "/".into();

    // The plain client is in the channel (366) before the Node client starts, so it
    // sees kiwi's JOIN whichever of the two the server would have handled first.
    let mut plain = Client::irc_start(server.irc_port, "plain").expect("a plain user");
    plain.wait_welcome().expect("001");
    plain.join(CHAN).expect("JOIN");
    let mut node = NodeClient::spawn(config, server.dir());

    // The WebSocket opened with the IRCv3 text subprotocol.
    let open = node.expect("ws_open", "the WebSocket to open", |_| true);
    assert_eq!(
        open["protocol"], "text.ircv3.net",
        "subprotocol the client got: {open}"
    );
    // irc-framework registered (it saw 001) and joined.
    let reg = node.expect("registered", "registration (001)", |_| true);
    assert_eq!(reg["nick"], NICK, "registered nick: {reg}");
    let join = node.expect("join", "its own JOIN", |v| v["nick"] == NICK);
    assert_eq!(join["channel"], CHAN, "joined channel: {join}");
    assert_eq!(
        join["ident"], "fw",
        "its ident as the server reports it: {join}"
    );
    assert_eq!(join["hostname"], "127.0.0.1", "its host: {join}");
    let want_join = [
        format!(":{NICK}!fw@127.0.0.1 JOIN :{CHAN}"),
        format!(":{NICK}!fw@127.0.0.1 JOIN {CHAN}"),
    ];
    plain
        .expect_str("kiwi's JOIN", |l| want_join.iter().any(|w| w == l))
        .expect("kiwi's JOIN");

    // irc-framework -> plain, byte-exact.
    node.command(json!({"cmd": "say", "target": CHAN, "text": FROM_NODE}));
    let got = plain
        .expect_line("PRIVMSG from kiwi", |l| show(l).contains(" PRIVMSG "))
        .expect("PRIVMSG from kiwi");
    assert_eq!(
        got,
        format!(":{NICK}!fw@127.0.0.1 PRIVMSG {CHAN} :{FROM_NODE}").into_bytes(),
        "what the plain client got from irc-framework: {:?}",
        show(&got)
    );

    // plain -> irc-framework: a channel message and a private one, exact text.
    plain
        .send_line(&format!("PRIVMSG {CHAN} :{FROM_PLAIN}"))
        .expect("send");
    let m = node.expect("privmsg", "the plain client's channel message", |_| true);
    assert_eq!(
        (
            &m["nick"],
            &m["ident"],
            &m["hostname"],
            &m["target"],
            &m["message"]
        ),
        (
            &json!("plain"),
            &json!("u"),
            &json!("127.0.0.1"),
            &json!(CHAN),
            &json!(FROM_PLAIN)
        ),
        "channel message as irc-framework parsed it: {m}"
    );
    let private = format!("{FROM_PLAIN} (private)");
    plain
        .send_line(&format!("PRIVMSG {NICK} :{private}"))
        .expect("send");
    let m = node.expect("privmsg", "the plain client's private message", |_| true);
    assert_eq!(
        (&m["nick"], &m["target"], &m["message"]),
        (&json!("plain"), &json!(NICK), &json!(private)),
        "private message as irc-framework parsed it: {m}"
    );

    if compression {
        compressed_lines(&server, &mut plain, &mut node);
    }

    // irc-framework quits: QUIT, then it closes the WebSocket itself right away.
    node.command(json!({"cmd": "quit", "message": QUIT_MESSAGE}));
    let close = node.expect("ws_close", "the WebSocket close event", |_| true);
    // 1000 when the server's close after QUIT (carrying the quit message) arrives
    // before irc-framework's own close frame; 1005 when the server echoes
    // irc-framework's close frame, which carries no status code. Never 1006 (no close
    // frame), which is what the stock module gives.
    let code = close["code"].as_u64().unwrap_or(0);
    // Node's built-in WebSocket (undici 6) inflates a compressed message asynchronously
    // and parses no further frame until that is done (lib/web/websocket/receiver.js:
    // `this.#loop = false` after `decompress(...)`). After QUIT the server sends the
    // ERROR line (compressed) and its close frame, and closes TCP when irc-framework's
    // own close frame arrives; when TCP's end reaches undici before its inflate of the
    // ERROR line is done, undici never parses the close frame it already holds and
    // reports 1006 (the ERROR line is never delivered either). A client-side race.
    let undici_inflating = code == 1006 && compression && variant == Variant::NodeBuiltin && {
        let error_seen = node.seen.iter().any(|v| {
            v["event"] == "ws_message"
                && v["data"].as_str().is_some_and(|d| d.starts_with("ERROR "))
        });
        !error_seen
    };
    if undici_inflating {
        eprintln!(
            "note: undici reported 1006 with the compressed ERROR line still inflating: {close}"
        );
    }
    assert!(
        code == 1000 || code == 1005 || undici_inflating,
        "close code the client reported should be 1000 or 1005 (1006 = no close frame): {close}{}",
        node.context()
    );
    if code == 1000 {
        let reason = close["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(QUIT_MESSAGE),
            "a 1000 close after QUIT should carry the quit message: {close}"
        );
    }
    assert_eq!(
        close["wasClean"],
        Value::Bool(!undici_inflating),
        "the closing handshake was not clean: {close}"
    );
    node.expect("socket_close", "irc-framework's socket close", |_| true);
    let quit = plain
        .expect_str("kiwi's QUIT", |l| {
            l.starts_with(&format!(":{NICK}!fw@127.0.0.1 QUIT :"))
        })
        .expect("kiwi's QUIT");
    eprintln!("[{variant:?}] close event {close}; the plain client saw {quit:?}");
    let quit_message_kept = quit.ends_with(&format!(" QUIT :{QUIT_MESSAGE}"));
    if code == 1000 {
        assert!(
            quit_message_kept,
            "the server closed with 1000 after QUIT, so the QUIT must carry its message \
             {QUIT_MESSAGE:?}: {quit:?}{}",
            node.context()
        );
    } else if !quit_message_kept {
        // Known limitation (the stock module has it too): when the QUIT text frame and
        // irc-framework's close frame arrive in one read, the close ends the connection
        // before InspIRCd processes the QUIT line, and the quit reason is the
        // connection's. Rare; seen with Node's built-in WebSocket.
        assert!(
            quit.ends_with(" QUIT :Connection closed"),
            "kiwi's QUIT has neither its message {QUIT_MESSAGE:?} nor the close reason: {quit:?}{}",
            node.context()
        );
        eprintln!(
            "note: the QUIT line and the close frame were handled together; quit message lost"
        );
    }
    assert_eq!(
        node.wait_exit(),
        Some(0),
        "node client exit code{}",
        node.context()
    );

    // Every data message was a text message holding exactly one IRC line.
    for v in &node.seen {
        if v["event"] == "ws_message" {
            let data = v["data"].as_str().unwrap_or_default();
            assert_eq!(v["text"], Value::Bool(true), "a binary message: {v}");
            assert!(
                !data.is_empty() && !data.contains('\r') && !data.contains('\n'),
                "a message is not exactly one IRC line: {v}"
            );
        }
    }
    server.assert_alive();
}

/// With compression on: irc-framework's WebSocket negotiated permessage-deflate (the
/// server counts it in STATS W: it is the only WebSocket client), and long,
/// repetitive, non-ASCII lines arrive exactly both ways. The `ws` package inflates
/// what the server compresses; it compresses only messages of 1 KiB and more (its
/// `threshold`), so what it sends goes uncompressed within the negotiated connection;
/// Node's built-in WebSocket (undici) offers and inflates deflate too.
fn compressed_lines(server: &Server, plain: &mut Client, node: &mut NodeClient) {
    assert_deflate_accepted(server.irc_port, 1, "irc-framework's connection");
    for text in compressible_texts(FROM_PLAIN, "plain") {
        plain
            .send_line(&format!("PRIVMSG {CHAN} :{text}"))
            .expect("send");
        let m = node.expect("privmsg", "the plain client's long line", |_| true);
        assert_eq!(
            (&m["nick"], &m["target"], &m["message"]),
            (&json!("plain"), &json!(CHAN), &json!(text)),
            "channel message as irc-framework parsed it: {m}"
        );
    }
    // irc-framework splits a message longer than its `message_max_length` (350) into
    // several PRIVMSGs, so the long text goes one way only.
    for text in compressible_texts(FROM_NODE, NICK)
        .into_iter()
        .filter(|t| t.len() < 300)
    {
        node.command(json!({"cmd": "say", "target": CHAN, "text": text}));
        let got = plain
            .expect_line("PRIVMSG from kiwi", |l| show(l).contains(" PRIVMSG "))
            .expect("PRIVMSG from kiwi");
        assert_eq!(
            got,
            format!(":{NICK}!fw@127.0.0.1 PRIVMSG {CHAN} :{text}").into_bytes(),
            "what the plain client got from irc-framework: {:?}",
            show(&got)
        );
    }
}

#[test]
fn irc_framework_ws_package_over_ws() {
    irc_framework_chat(Variant::WsPackage, false);
}

#[test]
fn irc_framework_ws_package_over_wss() {
    irc_framework_chat(Variant::WsPackageTls, false);
}

#[test]
fn irc_framework_node_builtin_websocket() {
    irc_framework_chat(Variant::NodeBuiltin, false);
}

#[test]
fn irc_framework_ws_package_compressed() {
    irc_framework_chat(Variant::WsPackage, true);
}

#[test]
fn irc_framework_ws_package_over_wss_compressed() {
    irc_framework_chat(Variant::WsPackageTls, true);
}

#[test]
fn irc_framework_node_builtin_websocket_compressed() {
    irc_framework_chat(Variant::NodeBuiltin, true);
}
