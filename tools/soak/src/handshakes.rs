//! `soak handshakes`: memory with thousands of upgrade requests in flight.
//!
//! N clients each send an upgrade request that is never finished: request line and
//! headers, `fill` bytes in all, without the blank line that ends it. The server must
//! hold each one until it is complete or too large, so its memory grows with N: this
//! measures how much, for this module (bounded by `maxhandshake`) and for the stock
//! module (unbounded), in the same InspIRCd binary. Then every client sends one more
//! header that takes it past `maxhandshake`: this module answers each with 431 and frees
//! the request at once.
//!
//! The server has read everything when no socket on its WebSocket port has bytes
//! waiting in the kernel (`rx_queue` in /proc/net/tcp): that, not a pause, is what the
//! measurement waits for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::server::{self, Conf, Server, WsModule};

pub struct Settings {
    pub module: PathBuf,
    /// Connections with a request in flight.
    pub conns: usize,
    /// Bytes of each unfinished request.
    pub fill: usize,
    pub keep: bool,
}

/// Bytes each client sends after its request is in flight, to take it past the default
/// `maxhandshake` (40 KiB) when `fill` is near it.
const PAST_LIMIT_BYTES: usize = 64 * 1024;
/// Longest wait for the server to read what was sent.
const READ_WAIT: Duration = Duration::from_secs(60);

/// The start of an upgrade request padded with header lines to `fill` bytes, without
/// the blank line that would end it.
fn unfinished_request(fill: usize) -> Vec<u8> {
    let mut r = testkit::ws::upgrade_request("127.0.0.1", server::ORIGIN, &[]);
    r.truncate(r.len() - 2);
    while r.len() < fill {
        let n = (fill - r.len()).clamp(8, 4000);
        r.extend_from_slice(b"Cookie: c=");
        r.extend(std::iter::repeat_n(b'x', n.saturating_sub(12)));
        r.extend_from_slice(b"\r\n");
    }
    r
}

/// Bytes waiting in the kernel for the server's sockets on `port`.
fn unread_bytes(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let queues = cols.get(4)?;
            cols.get(1)
                .filter(|a| a.ends_with(&local))
                .and_then(|_| queues.split(':').nth(1))
                .and_then(|rx| u64::from_str_radix(rx, 16).ok())
        })
        .sum()
}

fn wait_until_read(port: u16) -> bool {
    let deadline = Instant::now() + READ_WAIT;
    while Instant::now() < deadline {
        if unread_bytes(port) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Server RSS at each step, in KiB.
struct Measured {
    label: &'static str,
    empty_kib: u64,
    /// With every request `fill` bytes long.
    in_flight_kib: u64,
    /// After every client sent [`PAST_LIMIT_BYTES`] more.
    past_limit_kib: u64,
    /// Clients answered 431 (request larger than maxhandshake).
    answered_431: usize,
    /// After a second round of `fill`-byte requests on new connections: memory freed by
    /// the 431s is used again, not added to.
    second_round_kib: u64,
}

/// Opens `conns` connections, each sending `request`, and waits until the server has
/// read them all.
fn send_requests(server: &Server, conns: usize, request: &[u8]) -> Result<Vec<TcpStream>, String> {
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut c = TcpStream::connect(("127.0.0.1", server.ws_port))
            .map_err(|e| format!("connection {i}: {e}"))?;
        c.write_all(request)
            .map_err(|e| format!("connection {i}: {e}"))?;
        clients.push(c);
    }
    if !wait_until_read(server.ws_port) {
        return Err(format!(
            "the server did not read the requests within {READ_WAIT:?}"
        ));
    }
    Ok(clients)
}

/// Sends every client [`PAST_LIMIT_BYTES`] more; returns how many got a 431. Those that
/// are still held (stock) have been read when this returns.
fn go_past_the_limit(server: &Server, clients: &mut [TcpStream]) -> Result<usize, String> {
    let past = vec![b'x'; PAST_LIMIT_BYTES];
    for c in clients.iter_mut() {
        let _ = c.write_all(&past);
    }
    if !wait_until_read(server.ws_port) {
        return Err(format!("the server did not read within {READ_WAIT:?}"));
    }
    let mut answered_431 = 0;
    for c in clients.iter_mut() {
        c.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut head = [0u8; 12];
        if c.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 431" {
            answered_431 += 1;
        }
    }
    Ok(answered_431)
}

fn measure(label: &'static str, conf: Conf, s: &Settings) -> Result<Measured, String> {
    let mut server = server::start(label, conf, None, Duration::from_secs(20), s.keep)?;
    let empty_kib = server.proc().rss_kib();
    let request = unfinished_request(s.fill);
    let mut clients = send_requests(&server, s.conns, &request)?;
    let in_flight_kib = server.proc().rss_kib();
    let answered_431 = go_past_the_limit(&server, &mut clients)?;
    let past_limit_kib = server.proc().rss_kib();
    drop(clients);
    let second = send_requests(&server, s.conns, &request)?;
    let second_round_kib = server.proc().rss_kib();
    drop(second);
    if !server.is_alive() {
        return Err("the server died".into());
    }
    server.stop(Duration::from_secs(10));
    Ok(Measured {
        label,
        empty_kib,
        in_flight_kib,
        past_limit_kib,
        answered_431,
        second_round_kib,
    })
}

pub fn run(s: &Settings) -> bool {
    server::raise_nofile((s.conns as u64) * 4 + 1000);
    let ours_conf = server::reg_timeout(server::conf(s.module.clone()), 600);
    let stock_conf = server::reg_timeout(server::conf(WsModule::Stock), 600);
    let mut ok = true;
    println!(
        "{} connections, each with an unfinished upgrade request of {} bytes, then {} bytes more",
        s.conns, s.fill, PAST_LIMIT_BYTES
    );
    let per_conn = |kib: u64, base: u64| kib.saturating_sub(base) * 1024 / s.conns.max(1) as u64;
    for (label, conf) in [("ours", ours_conf), ("stock", stock_conf)] {
        match measure(label, conf, s) {
            Ok(m) => {
                println!(
                    "{:5}: RSS {} KiB empty; in flight {} KiB ({} B per connection); past the limit {} KiB ({} B per connection, {} answered 431); a second round {} KiB",
                    m.label,
                    m.empty_kib,
                    m.in_flight_kib,
                    per_conn(m.in_flight_kib, m.empty_kib),
                    m.past_limit_kib,
                    per_conn(m.past_limit_kib, m.empty_kib),
                    m.answered_431,
                    m.second_round_kib,
                );
                if m.label == "ours" {
                    // Every request past maxhandshake is refused, and the memory it held
                    // is reused: a second round adds little over the first.
                    let reused = m.second_round_kib <= m.past_limit_kib + m.past_limit_kib / 10;
                    ok &= m.answered_431 == s.conns && reused;
                }
            }
            Err(e) => {
                println!("{label}: {e}");
                ok = false;
            }
        }
    }
    ok
}
