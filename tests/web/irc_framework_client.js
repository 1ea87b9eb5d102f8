'use strict';
// An irc-framework client (the IRC library behind the KiwiIRC web client) on its
// WebSocket transport, driven by tests/it/irc_framework.rs.
//
//   node irc_framework_client.js '<config JSON>'
//
// config: { host, port, tls, path, nick, channel,
//           websocket: "ws" (the `ws` package; sends `origin`, trusts `ca`)
//                    | "native" (Node's built-in WebSocket; sends no Origin),
//           origin, ca (path of a PEM certificate to trust, for wss://) }
//
// Prints one JSON object per line on stdout ({"event": ...}); reads one JSON command
// per line on stdin: {"cmd":"say","target":...,"text":...} or {"cmd":"quit","message":...}.
// Exits on its own after the WebSocket closes, when stdin ends, or after 60 s.

const fs = require('fs');
const readline = require('readline');

const config = JSON.parse(process.argv[2]);

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message) {
    emit({ event: 'error', message: String(message) });
    process.exit(2);
}

process.on('uncaughtException', (e) => fail(e && e.stack || e));
setTimeout(() => fail('gave up after 60 s'), 60000).unref();

// The WebSocket class irc-framework's transport will use (it calls
// `new WebSocket(url, protocol)` on the global). The subclass reports the
// WebSocket-level events the IRC library hides: the subprotocol and the close code.
let Base;
let extra = {};
if (config.websocket === 'ws') {
    Base = require('ws');
    if (config.origin) extra.origin = config.origin;
    if (config.ca) extra.ca = fs.readFileSync(config.ca);
} else if (config.websocket === 'native') {
    if (typeof globalThis.WebSocket !== 'function') {
        fail('this Node.js has no built-in WebSocket (Node >= 22, or 20/21 with --experimental-websocket)');
    }
    Base = globalThis.WebSocket;
} else {
    fail('unknown websocket implementation ' + config.websocket);
}

class TracedWebSocket extends Base {
    constructor(url, protocols) {
        if (config.websocket === 'ws') {
            super(url, protocols, extra);
        } else {
            super(url, protocols);
        }
        emit({ event: 'ws_connecting', url: String(url), protocols: protocols === undefined ? null : protocols });
        this.addEventListener('open', () => {
            emit({ event: 'ws_open', protocol: this.protocol });
        });
        this.addEventListener('close', (ev) => {
            emit({ event: 'ws_close', code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
            // Let irc-framework see the close too, then leave.
            setTimeout(() => process.exit(0), 200);
        });
        this.addEventListener('message', (ev) => {
            emit({ event: 'ws_message', text: typeof ev.data === 'string', data: String(ev.data) });
        });
    }
}
globalThis.WebSocket = TracedWebSocket;

const IRC = require('irc-framework');
const client = new IRC.Client();

client.on('registered', (ev) => {
    emit({ event: 'registered', nick: ev.nick });
    client.join(config.channel);
});
client.on('join', (ev) => {
    emit({ event: 'join', nick: ev.nick, ident: ev.ident, hostname: ev.hostname, channel: ev.channel });
});
client.on('privmsg', (ev) => {
    emit({ event: 'privmsg', nick: ev.nick, ident: ev.ident, hostname: ev.hostname, target: ev.target, message: ev.message });
});
client.on('quit', (ev) => {
    emit({ event: 'quit', nick: ev.nick, message: ev.message });
});
client.on('socket close', (err) => {
    emit({ event: 'socket_close', error: err ? String(err.message || err) : null });
});
client.on('close', () => {
    emit({ event: 'close' });
});

client.connect({
    host: config.host,
    port: config.port,
    tls: !!config.tls,
    path: config.path || '/',
    nick: config.nick,
    username: 'fw',
    gecos: 'irc-framework user',
    transport: require('irc-framework/src/transports/websocket'),
    websocket_protocol: 'text.ircv3.net',
    auto_reconnect: false,
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    if (cmd.cmd === 'say') {
        client.say(cmd.target, cmd.text);
    } else if (cmd.cmd === 'quit') {
        client.quit(cmd.message);
    } else {
        fail('unknown command ' + line);
    }
});
// The test went away: do not linger.
rl.on('close', () => setTimeout(() => process.exit(3), 100));
