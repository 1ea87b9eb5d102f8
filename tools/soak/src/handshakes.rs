//! `soak handshakes`: memory with thousands of upgrade requests in flight.
//!
//! N clients each send an upgrade request that is never finished (no blank line), `fill`
//! bytes long. The server must hold each one until it is complete or too large, so its
//! memory grows with N: this measures how much, for this module (bounded by
//! `maxhandshake`) and the stock one (unbounded), in the same InspIRCd binary. Then each
//! client sends more, past `maxhandshake`: this module answers each with 431 and frees
//! the request at once, so a second round of N requests reuses that memory.
//!
//! The server has read everything when no socket on its WebSocket port has bytes
//! waiting in the kernel (`rx_queue` in /proc/net/tcp): that, not a pause, is what a
//! measurement waits for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use crate::server::{self, Conf, Server, WsModule};

#[derive(clap::Args, Debug)]
pub struct Settings {
    #[command(flatten)]
    common: crate::Common,
    /// Connections with a request in flight.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=20000))]
    conns: u32,
    /// Bytes of each unfinished request (default: just under `maxhandshake`, 40 KiB).
    #[arg(long, default_value_t = 39 * 1024,
          value_parser = clap::value_parser!(u32).range(256..=1 << 20))]
    fill: u32,
}

/// Bytes each client sends after its request is in flight, to take it past the default
/// `maxhandshake` (40 KiB) when `fill` is near it.
const PAST_LIMIT_BYTES: usize = 64 * 1024;
/// Longest wait for the server to read what was sent.
const READ_WAIT: Duration = Duration::from_secs(60);

/// The start of an upgrade request padded with header lines to `fill` bytes, without
/// the blank line that would end it.
fn unfinished_request(fill: usize) -> Vec<u8> {
    let mut r = server::request(None, None, &[]);
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
    let rx_queue = |cols: Vec<&str>| {
        let rx = cols.get(4)?.split(':').nth(1)?;
        cols.get(1)?
            .ends_with(&local)
            .then(|| u64::from_str_radix(rx, 16).ok())?
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| rx_queue(l.split_whitespace().collect()))
        .sum()
}

fn wait_until_read(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + READ_WAIT;
    while unread_bytes(port) > 0 {
        ensure!(
            Instant::now() < deadline,
            "the server did not read within {READ_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Opens `conns` connections, each sending `request`, and waits until the server has
/// read them all.
fn send_requests(server: &Server, conns: u32, request: &[u8]) -> anyhow::Result<Vec<TcpStream>> {
    let clients = (0..conns).map(|i| {
        let mut c = TcpStream::connect(("127.0.0.1", server.ws_port))?;
        c.write_all(request)
            .map(|()| c)
            .with_context(|| format!("connection {i}"))
    });
    let clients = clients.collect::<anyhow::Result<Vec<_>>>()?;
    wait_until_read(server.ws_port)?;
    Ok(clients)
}

/// Runs the rounds on a server with `conf`; prints the RSS at each step. Returns how
/// many clients got a 431, and whether the second round fit in the memory the first
/// one held past the limit (at most 10% more).
fn measure(label: &str, conf: Conf, s: &Settings) -> anyhow::Result<(u32, bool)> {
    let mut server = server::start(
        label,
        conf,
        Vec::new(),
        Duration::from_secs(20),
        s.common.keep,
    )?;
    let rss = || server.proc().rss_kib();
    let per_conn = |kib: u64, base: u64| kib.saturating_sub(base) * 1024 / u64::from(s.conns);
    let request = unfinished_request(s.fill as usize);
    let empty = rss();
    let mut clients = send_requests(&server, s.conns, &request)?;
    let in_flight = rss();
    for c in &mut clients {
        let _ = c.write_all(&[b'x'; PAST_LIMIT_BYTES]);
    }
    // Those still held (stock) have been read when this returns.
    wait_until_read(server.ws_port)?;
    let mut answered_431 = 0;
    for c in &mut clients {
        c.set_nonblocking(true)?;
        let mut head = [0u8; 12];
        answered_431 += u32::from(c.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 431");
    }
    let past_limit = rss();
    drop(clients);
    let second = send_requests(&server, s.conns, &request)?;
    let second_round = rss();
    drop(second);
    ensure!(server.is_alive(), "the server died");
    server.stop(Duration::from_secs(10));
    println!(
        "{label:5}: RSS {empty} KiB empty; in flight {in_flight} KiB ({} B per connection); past the limit {past_limit} KiB ({} B per connection, {answered_431} answered 431); a second round {second_round} KiB",
        per_conn(in_flight, empty),
        per_conn(past_limit, empty)
    );
    Ok((answered_431, second_round <= past_limit + past_limit / 10))
}

pub fn run(s: &Settings) -> bool {
    server::raise_nofile(u64::from(s.conns) * 4 + 1000);
    println!(
        "{} connections, each with an unfinished upgrade request of {} bytes, then {PAST_LIMIT_BYTES} bytes more",
        s.conns, s.fill
    );
    let ours = measure("ours", server::conf(s.common.module.clone(), 600), s);
    let stock = measure("stock", server::conf(WsModule::Stock, 600), s);
    if let Err(e) = &stock {
        println!("stock: {e:#}");
    }
    // Every request past maxhandshake is refused, and the memory it held is reused.
    match ours {
        Ok((answered_431, reused)) => stock.is_ok() && answered_431 == s.conns && reused,
        Err(e) => {
            println!("ours: {e:#}");
            false
        }
    }
}
