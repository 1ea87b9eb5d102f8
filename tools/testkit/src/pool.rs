//! Many client connections driven by one thread, for soak and loadbench: non-blocking
//! sockets on one poller (mio), plain IRC or WebSocket (the upgrade request out, the
//! 101 checked, frames decoded by [`crate::messages::Decoder`], compressed messages
//! inflated). Built for tens of thousands of connections: connections live in a slot
//! map addressed by the event's [`Id`] (versioned, so that an event of a closed
//! connection finds none), and an idle one holds its socket and a few hundred bytes
//! (its buffers are kept only while they hold bytes, up to [`KEPT_BUFFER`]). One
//! descriptor each: raise RLIMIT_NOFILE first ([`crate::process::raise_nofile`]); past
//! ~28,000 connections, spread them over loopback source addresses ([`Pool::sources`]).
//!
//! The pool calls a [`Handler`] with each connection's [`Event`]s in order; the handler
//! answers through the pool (send, close). [`Pool::turn`] waits once for readiness and
//! handles every ready connection, so that the caller keeps its own timers between
//! turns; [`Pool::run`] turns until a condition holds:
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use testkit::pool::{Event, Handler, Id, Pool, Proto};
//!
//! /// Counts the connections the server upgraded.
//! struct Upgraded(usize);
//!
//! impl Handler for Upgraded {
//!     fn on_event(&mut self, _pool: &mut Pool, _id: Id, _tag: usize, event: Event<'_>) {
//!         self.0 += usize::from(matches!(event, Event::Open(_)));
//!     }
//! }
//!
//! let mut pool = Pool::new(8080).unwrap().sources(testkit::net::loopback_sources(2));
//! for tag in 0..1000 {
//!     let request = testkit::ws::upgrade_request("127.0.0.1", "https://a.example", &[]);
//!     pool.connect(Proto::websocket(request), tag).unwrap();
//! }
//! let deadline = Instant::now() + Duration::from_secs(60);
//! pool.run(&mut Upgraded(0), deadline, |u| u.0 == 1000).unwrap();
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slotmap::{DefaultKey, Key, KeyData, SlotMap};

use crate::deflate::Inflater;
use crate::http::HttpResponse;
use crate::irc::take_line;
use crate::messages::{Decoder, Message, Received};
use crate::rng::Rng;
use crate::ws::{encode_frame_into, parse_frame, Frame, OP_TEXT};

/// Readiness events taken from the kernel per wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Bytes read per read call, into one buffer all connections share.
const READ_CHUNK: usize = 256 * 1024;
/// A connection's buffers keep their memory between uses up to this size.
const KEPT_BUFFER: usize = 16 * 1024;
/// The longest wait of one [`Pool::run`] turn, so that its deadline is kept.
const RUN_TURN: Duration = Duration::from_millis(50);

/// A connection of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Id(DefaultKey);

impl Id {
    fn token(self) -> Token {
        Token(self.0.data().as_ffi() as usize)
    }
}

/// What a connection speaks.
#[derive(Clone, Debug)]
pub enum Proto {
    /// Plain IRC: lines ending in CR LF. Open as soon as TCP connects.
    Irc,
    /// WebSocket: `request` goes out once TCP connects (a test may cut it short); the
    /// connection is open when a 101 with the right accept value (for
    /// [`crate::ws::SAMPLE_KEY`]) arrives, and inflates what it receives if that 101
    /// agreed to permessage-deflate. [`Pool::send_line`] sends `data_opcode` messages.
    WebSocket { request: Vec<u8>, data_opcode: u8 },
}

impl Proto {
    /// A WebSocket connection sending text messages.
    pub fn websocket(request: Vec<u8>) -> Proto {
        let data_opcode = OP_TEXT;
        Proto::WebSocket {
            request,
            data_opcode,
        }
    }
}

/// Why a connection ended (the pool's own [`Pool::close`] and [`Pool::reset`] report
/// nothing).
#[derive(Debug)]
pub enum Cause {
    /// The server closed it (EOF, or a reset).
    Eof,
    /// The connect or a read failed.
    Io(io::Error),
    /// The server broke the protocol (a bad response head, a frame a client must
    /// refuse, deflate data that does not inflate).
    Protocol(String),
    /// The server answered the upgrade request with something else than a good 101.
    Refused(HttpResponse),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Eof => f.write_str("closed by the server"),
            Cause::Io(e) => write!(f, "{e}"),
            Cause::Protocol(e) => f.write_str(e),
            Cause::Refused(r) => write!(f, "refused: {}", r.status_line),
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub struct Closed {
    pub cause: Cause,
    /// Bytes received but not parsed (half a line, a frame or a response head).
    pub buffered: usize,
}

/// What happened on a connection.
#[derive(Debug)]
pub enum Event<'a> {
    /// TCP connected (a WebSocket connection's request goes out after this).
    Connected,
    /// Ready for IRC: a plain connection at once, a WebSocket one with its 101.
    Open(Option<&'a HttpResponse>),
    /// A plain connection's line, without CR LF.
    Line(&'a [u8]),
    /// A WebSocket data message.
    Message(&'a Message),
    /// A WebSocket ping, pong or close frame (the pool answers none of them).
    Control(&'a Frame),
    /// The connection is gone; its [`Id`] means nothing from now on.
    Closed(Closed),
}

/// What a workload does with its connections' events.
pub trait Handler {
    /// One event of connection `id`, which was opened with `tag`.
    fn on_event(&mut self, pool: &mut Pool, id: Id, tag: usize, event: Event<'_>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Handshaking,
    Open,
}

struct Conn {
    stream: TcpStream,
    tag: usize,
    state: State,
    /// `Some(data opcode)` for a WebSocket connection.
    websocket: Option<u8>,
    /// Bytes received and not yet parsed.
    rx: Vec<u8>,
    /// Bytes queued and not yet written, from `tx_pos` on.
    tx: Vec<u8>,
    tx_pos: usize,
    decoder: Decoder,
    /// The 101 agreed to permessage-deflate (the decoder is out while a handler runs).
    deflate: bool,
    masks: Rng,
}

/// Client connections to one server port; see the module's documentation.
pub struct Pool {
    poll: Poll,
    events: Events,
    target: SocketAddrV4,
    sources: Vec<Ipv4Addr>,
    next_source: usize,
    conns: SlotMap<DefaultKey, Conn>,
    read_buf: Vec<u8>,
    /// Bytes the connections received, response heads included.
    pub rx_bytes: u64,
}

impl Pool {
    /// A pool of connections to 127.0.0.1:`port`.
    pub fn new(port: u16) -> io::Result<Pool> {
        Ok(Pool {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            target: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            sources: Vec::new(),
            next_source: 0,
            conns: SlotMap::new(),
            read_buf: vec![0; READ_CHUNK],
            rx_bytes: 0,
        })
    }

    /// New connections come from these source addresses in turn (by default the
    /// kernel's choice, 127.0.0.1).
    pub fn sources(mut self, sources: Vec<Ipv4Addr>) -> Pool {
        self.sources = sources;
        self
    }

    /// Open connections (connecting ones included).
    pub fn live(&self) -> usize {
        self.conns.len()
    }

    /// Starts a connection (non-blocking); its events carry `tag`.
    pub fn connect(&mut self, proto: Proto, tag: usize) -> io::Result<Id> {
        let src = (self
            .sources
            .get(self.next_source % self.sources.len().max(1)))
        .copied();
        self.next_source = self.next_source.wrapping_add(1);
        let stream = TcpStream::from_std(crate::net::start_connect(src, self.target)?);
        let (websocket, tx) = match proto {
            Proto::Irc => (None, Vec::new()),
            Proto::WebSocket {
                request,
                data_opcode,
            } => (Some(data_opcode), request),
        };
        let key = self.conns.insert_with_key(|key| Conn {
            stream,
            tag,
            state: State::Connecting,
            websocket,
            rx: Vec::new(),
            tx,
            tx_pos: 0,
            decoder: Decoder::new(),
            deflate: false,
            masks: Rng::new(key.data().as_ffi()),
        });
        let (id, interest) = (Id(key), Interest::READABLE | Interest::WRITABLE);
        let stream = &mut self.conns[key].stream;
        if let Err(e) = self.poll.registry().register(stream, id.token(), interest) {
            self.conns.remove(key);
            return Err(e);
        }
        Ok(id)
    }

    fn conn(&mut self, id: Id) -> Option<&mut Conn> {
        self.conns.get_mut(id.0)
    }

    /// Bytes it received and has not parsed yet.
    pub fn buffered(&mut self, id: Id) -> usize {
        self.conn(id).map_or(0, |c| c.rx.len())
    }

    /// permessage-deflate was agreed on it.
    pub fn deflate(&mut self, id: Id) -> bool {
        self.conn(id).is_some_and(|c| c.deflate)
    }

    /// Queues bytes as they are and writes what the socket takes now (the rest when
    /// it is writable again). Nothing goes out before TCP has connected.
    pub fn send_raw(&mut self, id: Id, bytes: &[u8]) {
        if let Some(c) = self.conn(id) {
            c.tx.extend_from_slice(bytes);
            c.flush();
        }
    }

    /// Sends one masked frame whose first byte (FIN, RSV, opcode) is `first`.
    pub fn send_frame(&mut self, id: Id, first: u8, payload: &[u8]) {
        if let Some(c) = self.conn(id) {
            let mask = c.masks.mask();
            encode_frame_into(&mut c.tx, first, payload, Some(mask));
            c.flush();
        }
    }

    /// Sends one IRC line: a plain connection's line with CR LF, or a WebSocket
    /// connection's data message.
    pub fn send_line(&mut self, id: Id, line: &[u8]) {
        let Some(c) = self.conn(id) else { return };
        if let Some(opcode) = c.websocket {
            let mask = c.masks.mask();
            encode_frame_into(&mut c.tx, 0x80 | opcode, line, Some(mask));
        } else {
            c.tx.extend_from_slice(line);
            c.tx.extend_from_slice(b"\r\n");
        }
        c.flush();
    }

    /// Answers a server's `PING <token>` line with `PONG <token>`; false for any
    /// other line.
    pub fn answer_ping(&mut self, id: Id, line: &[u8]) -> bool {
        let pong = crate::client::pong_for(line);
        if let Some(pong) = &pong {
            self.send_line(id, pong);
        }
        pong.is_some()
    }

    /// Closes the connection (FIN); no event follows.
    pub fn close(&mut self, id: Id) {
        self.conns.remove(id.0);
    }

    /// Closes the connection with a reset (RST); no event follows.
    pub fn reset(&mut self, id: Id) {
        if let Some(c) = self.conns.remove(id.0) {
            let _ = crate::net::set_linger_zero(&c.stream);
        }
    }

    /// Closes every connection; no events follow.
    pub fn close_all(&mut self) {
        self.conns.clear();
    }

    /// One turn: waits at most `wait` for readiness, then handles every ready
    /// connection. Returns how many were ready.
    pub fn turn(&mut self, h: &mut dyn Handler, wait: Duration) -> io::Result<usize> {
        match self.poll.poll(&mut self.events, Some(wait)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            other => other?,
        }
        let ready: Vec<(Id, bool)> = (self.events.iter())
            .map(|e| {
                let id = Id(KeyData::from_ffi(e.token().0 as u64).into());
                (id, e.is_readable() || e.is_read_closed() || e.is_error())
            })
            .collect();
        for &(id, readable) in &ready {
            self.on_ready(h, id, readable);
        }
        Ok(ready.len())
    }

    /// Turns until `done(handler)` holds; an error when `deadline` passes first.
    pub fn run<H: Handler>(
        &mut self,
        h: &mut H,
        deadline: Instant,
        mut done: impl FnMut(&H) -> bool,
    ) -> Result<(), String> {
        while !done(h) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(format!(
                    "deadline passed with {} connections open",
                    self.conns.len()
                ));
            };
            self.turn(h, RUN_TURN.min(left))
                .map_err(|e| format!("poll: {e}"))?;
        }
        Ok(())
    }

    fn on_ready(&mut self, h: &mut dyn Handler, id: Id, readable: bool) {
        let Some(c) = self.conn(id) else {
            return; // an event of a connection closed meanwhile
        };
        if c.state == State::Connecting {
            // Connected (or failed) once writable: mio's way to learn the outcome.
            match c.stream.take_error().unwrap_or_else(Some) {
                Some(e) => return self.end(h, id, Cause::Io(e)),
                None if c.stream.peer_addr().is_err() => return,
                None => {}
            }
            let (tag, websocket) = (c.tag, c.websocket.is_some());
            c.state = if websocket {
                State::Handshaking
            } else {
                State::Open
            };
            h.on_event(self, id, tag, Event::Connected);
            if !websocket && self.conn(id).is_some() {
                h.on_event(self, id, tag, Event::Open(None));
            }
        }
        if let Some(c) = self.conn(id) {
            c.flush();
        }
        if readable {
            self.read_ready(h, id);
        }
    }

    /// Reads everything the socket has, hands what it completes to the handler, and
    /// reports the end of the connection if it came.
    fn read_ready(&mut self, h: &mut dyn Handler, id: Id) {
        let mut end = None;
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        while end.is_none() {
            match c.stream.read(&mut self.read_buf) {
                Ok(0) => end = Some(Cause::Eof),
                Ok(n) => {
                    c.rx.extend_from_slice(&self.read_buf[..n]);
                    self.rx_bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if crate::net::is_reset(&e) => end = Some(Cause::Eof),
                Err(e) => end = Some(Cause::Io(e)),
            }
        }
        self.process(h, id);
        if let Some(cause) = end {
            self.end(h, id, cause);
        }
    }

    /// Ends connection `id` (if it is still there) for `cause` and tells the handler.
    fn end(&mut self, h: &mut dyn Handler, id: Id, cause: Cause) {
        if let Some(c) = self.conns.remove(id.0) {
            let (tag, buffered) = (c.tag, c.rx.len());
            drop(c);
            h.on_event(self, id, tag, Event::Closed(Closed { cause, buffered }));
        }
    }

    /// Parses what connection `id` has received. Its buffer and decoder are taken out
    /// while the handler runs (which may send, or close this or any connection), and
    /// put back with what is left unparsed.
    fn process(&mut self, h: &mut dyn Handler, id: Id) {
        let Some(c) = self.conn(id) else { return };
        let (tag, websocket) = (c.tag, c.websocket.is_some());
        let mut rx = std::mem::take(&mut c.rx);
        let mut decoder = std::mem::take(&mut c.decoder);
        let mut failure = None;
        if c.state == State::Handshaking {
            match HttpResponse::take_head(&mut rx) {
                Ok(None) => {}
                Ok(Some(r)) => match r.check_101().and_then(|()| r.deflate()) {
                    Ok(agreed) => {
                        if let Some(agreed) = agreed {
                            decoder = Decoder::with_inflater(Inflater::for_agreement(&agreed));
                        }
                        (c.state, c.deflate) = (State::Open, decoder.deflate());
                        h.on_event(self, id, tag, Event::Open(Some(&r)));
                    }
                    Err(_) => failure = Some(Cause::Refused(r)),
                },
                Err(e) => failure = Some(Cause::Protocol(e)),
            }
        }
        let open = self.conn(id).is_some_and(|c| c.state == State::Open);
        if open && failure.is_none() && websocket {
            let mut pos = 0;
            while let Some((frame, used)) = rx.get(pos..).and_then(parse_frame) {
                pos += used;
                match decoder.push(frame) {
                    Ok(None) => continue,
                    Ok(Some(Received::Message(m))) => h.on_event(self, id, tag, Event::Message(&m)),
                    Ok(Some(Received::Control(f))) => h.on_event(self, id, tag, Event::Control(&f)),
                    Err(e) => failure = Some(Cause::Protocol(e)),
                }
                if failure.is_some() || self.conn(id).is_none() {
                    break;
                }
            }
            rx.drain(..pos.min(rx.len()));
        } else if open {
            while let Some(line) = take_line(&mut rx) {
                h.on_event(self, id, tag, Event::Line(&line));
                if self.conn(id).is_none() {
                    break;
                }
            }
        }
        let Some(c) = self.conn(id) else { return };
        if rx.is_empty() && rx.capacity() > KEPT_BUFFER {
            rx = Vec::new();
        }
        (c.rx, c.decoder) = (rx, decoder);
        if let Some(cause) = failure {
            self.end(h, id, cause);
        }
    }
}

impl Conn {
    /// Writes what is queued until the socket takes no more; errors are left to the
    /// read side, which sees the connection end.
    fn flush(&mut self) {
        if self.state == State::Connecting {
            return;
        }
        while let Some(rest) = self.tx.get(self.tx_pos..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => break,
                Ok(n) => self.tx_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        if self.tx_pos >= self.tx.len() {
            self.tx_pos = 0;
            if self.tx.capacity() > KEPT_BUFFER {
                self.tx = Vec::new();
            }
            self.tx.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::loopback_sources;
    use crate::ws::{encode_frame, upgrade_request, OP_CLOSE, OP_PING, SAMPLE_ACCEPT};
    use std::collections::HashMap;
    use std::io::BufRead;
    use std::net::TcpListener;

    /// Serves `conns` connections on a new port: a WebSocket one gets its 101 (or a
    /// 403 with `refuse`), a text message, a ping and a close; a plain one a PING,
    /// then a line quoting the PONG. Returns the port and the peers' addresses.
    fn serve(
        conns: usize,
        websocket: bool,
        refuse: bool,
    ) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut peers = Vec::new();
            for _ in 0..conns {
                let (mut s, peer) = l.accept().unwrap();
                peers.push(peer.ip().to_string());
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if !websocket {
                    s.write_all(b"PING :tok\r\n").unwrap();
                    r.read_line(&mut line).unwrap();
                    s.write_all(format!(":s 001 n :got {line}").as_bytes())
                        .unwrap();
                    continue;
                }
                while line != "\r\n" {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                }
                if refuse {
                    s.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").unwrap();
                    continue;
                }
                let mut out =
                    format!("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n\r\n")
                        .into_bytes();
                out.extend(encode_frame(true, OP_TEXT, b"hello", None));
                out.extend(encode_frame(true, OP_PING, b"p", None));
                out.extend(encode_frame(true, OP_CLOSE, &1000u16.to_be_bytes(), None));
                s.write_all(&out).unwrap();
            }
            peers
        });
        (port, server)
    }

    /// Every connection's events, by tag; answers PINGs.
    #[derive(Default)]
    struct Log(HashMap<usize, Vec<String>>);

    impl Handler for Log {
        fn on_event(&mut self, pool: &mut Pool, id: Id, tag: usize, event: Event<'_>) {
            let entry = match &event {
                Event::Connected => "connected".to_string(),
                Event::Open(r) => format!("open {:?}", r.map(|r| r.status)),
                Event::Line(l) if pool.answer_ping(id, l) => "pinged".to_string(),
                Event::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Event::Message(m) => m.text(),
                Event::Control(f) => f.describe(),
                Event::Closed(c) => format!("closed {:?} {}", c.cause, c.buffered),
            };
            self.0.entry(tag).or_default().push(entry);
        }
    }

    /// Runs `conns` connections of `proto` until each has `events` events.
    fn run(port: u16, conns: usize, proto: &Proto, sources: u8, events: usize) -> (Pool, Log) {
        let mut pool = Pool::new(port).unwrap().sources(loopback_sources(sources));
        for tag in 0..conns {
            pool.connect(proto.clone(), tag).unwrap();
        }
        let mut log = Log::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        pool.run(&mut log, deadline, |l| {
            l.0.values().filter(|v| v.len() >= events).count() == conns
        })
        .unwrap();
        (pool, log)
    }

    #[test]
    fn websocket_connections_from_two_sources() {
        let (port, server) = serve(20, true, false);
        let request = upgrade_request("127.0.0.1", "https://x.example", &[]);
        let (pool, log) = run(port, 20, &Proto::websocket(request), 2, 6);
        let want = ["connected", "open Some(101)", "hello", "<opcode 9 \"p\">"];
        for v in log.0.values() {
            assert_eq!(v[..4], want);
            assert_eq!(v[4..], ["<close Some(1000) \"\">", "closed Eof 0"]);
        }
        let mut peers = server.join().unwrap();
        peers.sort();
        peers.dedup();
        assert_eq!(peers, ["127.0.0.1", "127.0.0.2"]);
        assert_eq!(pool.live(), 0);
    }

    #[test]
    fn irc_connections_and_refusals() {
        let (port, server) = serve(3, false, false);
        let (_, log) = run(port, 3, &Proto::Irc, 1, 5);
        for v in log.0.values() {
            let want = [
                "connected",
                "open None",
                "pinged",
                ":s 001 n :got PONG :tok",
                "closed Eof 0",
            ];
            assert_eq!(v[..], want);
        }
        server.join().unwrap();
        let (port, server) = serve(1, true, true);
        let request = upgrade_request("127.0.0.1", "https://x.example", &[]);
        let (pool, log) = run(port, 1, &Proto::websocket(request), 1, 2);
        assert!(
            log.0[&0][1].contains("Refused") && log.0[&0][1].contains("403"),
            "{log:?}",
            log = log.0
        );
        assert_eq!(pool.live(), 0);
        server.join().unwrap();
    }
}
