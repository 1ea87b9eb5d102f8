//! An echo server on the session core, for the Autobahn|Testsuite fuzzing client
//! (`conformance/run.sh`).
//!
//! ```text
//! cargo run --release --example autobahn_echo -- <port>
//! ```
//!
//! Listens on 127.0.0.1:`port` (0 picks a free port) and prints `listening on ADDR` once
//! it accepts connections. Every connection gets a [`Session`] with any Origin (or none)
//! allowed and limits raised to the top of their configurable ranges (16 MiB messages,
//! 1,000,000 fragments, a 1000-ping burst), and each complete message is echoed with
//! its type and exact payload through [`Session::receive_messages`]; the IRC line
//! delivery of [`Session::receive`] is not used. permessage-deflate is accepted whenever
//! a client offers it (the module's negotiation and defaults otherwise), and echoes are
//! compressed then. The I/O is plain blocking std::net, one thread per connection.

#![allow(
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: clippy's default set; a broken expectation fails the run loudly"
)]

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inspircd_websocket::compression::Compressor;
use inspircd_websocket::config::Config;
use inspircd_websocket::frame::{write_frame, OpCode};
use inspircd_websocket::handshake::SocketKind;
use inspircd_websocket::session::{MessageSink, Session};
use inspircd_websocket::sink::ByteSink;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;

/// How long to wait for the client's own close after the session ended the connection
/// (see [`linger`]).
const LINGER: Duration = Duration::from_secs(2);

/// Everything written back to the client during one read: the session's protocol
/// output and the echoes, in the order they were produced.
type Output = RefCell<Vec<u8>>;

/// The session's side of [`Output`].
struct ProtocolOut<'a>(&'a Output);

impl ByteSink for ProtocolOut<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.borrow_mut().extend_from_slice(bytes);
    }
}

/// Collects a message and writes it back, whole, in one frame of the same type.
struct Echo<'a> {
    out: &'a Output,
    opcode: OpCode,
    payload: Vec<u8>,
    /// Set once the upgrade negotiated compression (a message that arrived with the
    /// request itself is echoed uncompressed, which RFC 7692 allows).
    compressor: Option<Compressor>,
}

impl MessageSink for Echo<'_> {
    fn begin(&mut self, opcode: OpCode) {
        self.opcode = opcode;
        self.payload.clear();
    }

    fn payload(&mut self, bytes: &[u8]) {
        self.payload.extend_from_slice(bytes);
    }

    fn end(&mut self) {
        let out = &mut *self.out.borrow_mut();
        match self.compressor.as_mut() {
            Some(compressor) => compressor.write_message(self.opcode, &self.payload, out),
            None => write_frame(self.opcode, &self.payload, out),
        }
        self.payload.clear();
    }
}

fn config() -> Config {
    let mut config = Config::with_origins(&["*"]);
    config.allow_missing_origin = true;
    config.native_ping = false;
    config.limits.max_handshake_bytes = 65536;
    config.limits.max_message_bytes = 16 * 1024 * 1024;
    config.limits.max_fragments = 1_000_000;
    config.limits.ping_burst = 1000;
    // With the module's default window and table: what an admin gets.
    config.compression.enabled = true;
    config
}

fn serve(mut stream: TcpStream, config: Arc<Config>, start: Instant) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?.ip();
    let compression = config.compression;
    let mut session = Session::new(config, Some(peer), SocketKind::User);
    let out = Output::default();
    let mut echo = Echo {
        out: &out,
        opcode: OpCode::Binary,
        payload: Vec::new(),
        compressor: None,
    };
    // Bytes received and not yet consumed by the session, then room for the next read.
    let mut input = Vec::with_capacity(READ_SIZE);
    loop {
        let kept = input.len();
        input.resize(kept + READ_SIZE, 0);
        let n = stream.read(&mut input[kept..])?;
        input.truncate(kept + n);
        if n == 0 {
            return Ok(()); // the client went away without a close handshake
        }
        let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let report =
            session.receive_messages(&mut input, now_ms, &mut echo, &mut ProtocolOut(&out));
        input.drain(..report.consumed);
        if let Some(agreed) = report.upgrade.as_ref().and_then(|u| u.compression) {
            echo.compressor = Some(Compressor::new(&compression, &agreed, Rc::default()));
        }
        let mut bytes = out.borrow_mut();
        stream.write_all(&bytes)?;
        bytes.clear();
        if let Some(ending) = report.ending {
            eprintln!("{peer}: {}", ending.reason());
            return linger(stream);
        }
    }
}

/// Closes TCP after the session's last output: the server closes first (RFC 6455
/// section 7.1.1), by a FIN; what the client still sends (its close frame, usually) is
/// read and dropped until it closes too or [`LINGER`] passes. Dropping the socket with
/// unread data would send a reset, which can destroy the close frame in flight to the
/// client.
fn linger(mut stream: TcpStream) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(LINGER))?;
    let deadline = Instant::now() + LINGER;
    let mut discard = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut discard) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("not a port: {arg}"))
        })?,
        None => 9001,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let config = Arc::new(config());
    let start = Instant::now();
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let config = Arc::clone(&config);
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, config, start) {
                eprintln!("connection: {e}");
            }
        });
    }
    Ok(())
}
