//! soak: soak and lifecycle stress of this project's m_websocket.so in a real InspIRCd
//! (3, or 4 with `INSPIRCD=4`: the test kit's launcher) on free 127.0.0.1 ports. What
//! each command checks: tools/soak/README.md; `soak help COMMAND` lists its options.

mod chat;
mod handshakes;
mod server;
mod soak;
mod stress;
mod valgrind;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Soak and lifecycle stress of m_websocket.so in a real InspIRCd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Concurrent WebSocket connections churned with every way of ending.
    Soak(soak::Settings),
    /// UNLOADMODULE/LOADMODULE cycles, REHASH under load, a valgrind memcheck run.
    Stress(stress::Settings),
    /// Server memory with unfinished upgrade requests in flight, this module and stock.
    Handshakes(handshakes::Settings),
}

/// What every command takes.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// The module under test.
    #[arg(long, default_value = "m_websocket.so", value_parser = existing)]
    pub module: PathBuf,
    /// Keep the servers' directories (configuration, log, console output).
    #[arg(long)]
    pub keep: bool,
}

/// A file that exists, as an absolute path (the server runs elsewhere).
pub fn existing(path: &str) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| format!("{path}: {e} (run `make` first)"))
}

fn main() -> ExitCode {
    let passed = match Cli::parse().command {
        Command::Soak(s) => soak::run(&s),
        Command::Stress(s) => stress::run(&s),
        Command::Handshakes(s) => handshakes::run(&s),
    };
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
