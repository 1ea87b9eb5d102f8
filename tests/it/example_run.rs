//! `make run`'s script (example/run.sh): the real server with the example configuration,
//! and the shell client it prints to try it, run as printed (Debian's python3 and
//! python3-websockets) until the server welcomes it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;

/// How long the server and the client may take.
const STARTUP: Duration = Duration::from_secs(30);

/// Lines from a child's stdout, read on a thread so that a wait can have a deadline.
fn lines_of(out: ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Lines until one passes `done` (returned), failing after `deadline` with what came.
fn read_until(lines: &mpsc::Receiver<String>, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + STARTUP;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if done(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no {what}; the output was:\n{}", seen.join("\n")),
        }
    }
}

/// The script and everything it started (the server, the page server), stopped as a
/// process group when the test ends.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        let group = -i32::try_from(self.0.id()).expect("a pid");
        // SAFETY: signals the process group the script leads (process_group(0) below).
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; whatever is left of the group.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

#[test]
fn the_printed_shell_client_is_welcomed_by_the_example_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let install = install();
    // run.sh takes one program as the server: a wrapper for servers run through a
    // loader (Debian 13's on this host).
    let dir = tempfile::tempdir().expect("temp dir");
    let server = dir.path().join("inspircd");
    std::fs::write(
        &server,
        format!(
            "#!/bin/sh\nexec {} \"$@\"\n",
            install.command_line().join(" ")
        ),
    )
    .expect("wrapper");
    Command::new("chmod")
        .arg("+x")
        .arg(&server)
        .status()
        .expect("chmod");

    let [irc_port, ws_port, page_port] = testkit::ports::free_ports::<3>();
    let mut command = Command::new(root.join("example/run.sh"));
    command
        .args([irc_port, ws_port, page_port].map(|p| p.to_string()))
        .env("INSPIRCD_BINARY", &server)
        .env("STOCK_MODULES", &install.modules)
        .env("WS_MODULE", Module::Ours.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut script = Script(command.spawn().expect("example/run.sh"));
    let printed = lines_of(script.0.stdout.take().expect("stdout"));

    // The command as printed, on the line after "Try it from a shell".
    read_until(&printed, "'Try it from a shell'", |l| {
        l.contains("Try it from a shell")
    });
    let client_line = read_until(&printed, "the client's command line", |l| {
        !l.trim().is_empty()
    });
    let words: Vec<&str> = client_line.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "python3",
            "-m",
            "websockets",
            &format!("ws://127.0.0.1:{ws_port}/")
        ],
        "printed: {client_line}"
    );
    poll_until(Instant::now() + STARTUP, || {
        std::net::TcpStream::connect(("127.0.0.1", ws_port)).ok()
    })
    .expect("the server listens on the WebSocket port");

    // Debian's python3 first, as on a Debian machine.
    let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
    let mut client = Command::new(words[0])
        .args(&words[1..])
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the printed client");
    let replies = lines_of(client.stdout.take().expect("stdout"));
    let mut input = client.stdin.take().expect("stdin");
    input
        .write_all(b"NICK guest\nUSER guest 0 * :Guest\n")
        .expect("typed lines");
    let welcome = read_until(&replies, "RPL_WELCOME (001)", |l| l.contains(" 001 guest "));
    assert!(welcome.contains("Welcome"), "{welcome}");
    // End of input closes the connection.
    drop(input);
    let status = client.wait().expect("the client ends");
    assert!(status.success(), "{status}");
    drop(script);
}
