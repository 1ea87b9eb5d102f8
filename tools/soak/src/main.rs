//! soak: soak and lifecycle stress tests of this project's m_websocket.so in a real
//! InspIRCd (3, or 4 with `INSPIRCD=4`; the test kit's launcher), on free 127.0.0.1 ports.
//!
//!   soak   [--module PATH] [--conns N] [--seconds S] [--no-warmup] [--keep]
//!   stress [--module PATH] [--valgrind-module PATH] [--cycles N] [--rehashes N]
//!          [--only cycles|rehash|valgrind] [--keep]
//!   handshakes [--module PATH] [--conns N] [--fill BYTES] [--keep]
//!
//! Environment: SOAK_CONNS, SOAK_SECONDS (defaults 5000, 120) for `soak`;
//! STRESS_CYCLES (100), STRESS_REHASHES for `stress`.

mod chat;
mod clients;
mod handshakes;
mod server;
mod soak;
mod stress;

use std::path::PathBuf;

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn usage() -> ! {
    eprintln!(
        "usage: soak soak [--module PATH] [--conns N] [--seconds S] [--no-warmup] [--keep]\n       soak stress [--module PATH] [--valgrind-module PATH] [--cycles N] [--rehashes N] [--only cycles|rehash|valgrind] [--keep]\n       soak handshakes [--module PATH] [--conns N] [--fill BYTES] [--keep]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_else(|| usage());
    let mut module = PathBuf::from("m_websocket.so");
    let mut vg_module: Option<PathBuf> = None;
    let mut conns = env_num("SOAK_CONNS").unwrap_or(5000) as usize;
    let mut seconds = env_num("SOAK_SECONDS").unwrap_or(120);
    let mut cycles = env_num("STRESS_CYCLES").unwrap_or(100) as usize;
    let mut rehashes = env_num("STRESS_REHASHES").unwrap_or(100) as usize;
    let mut only: Option<String> = None;
    let mut fill: usize = 39 * 1024;
    let mut warmup = true;
    let mut keep = false;
    while let Some(a) = args.next() {
        let mut val = |n: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("{n} needs a value");
                usage()
            })
        };
        match a.as_str() {
            "--module" => module = PathBuf::from(val("--module")),
            "--valgrind-module" => vg_module = Some(PathBuf::from(val("--valgrind-module"))),
            "--conns" => conns = val("--conns").parse().unwrap_or_else(|_| usage()),
            "--seconds" => seconds = val("--seconds").parse().unwrap_or_else(|_| usage()),
            "--cycles" => cycles = val("--cycles").parse().unwrap_or_else(|_| usage()),
            "--rehashes" => rehashes = val("--rehashes").parse().unwrap_or_else(|_| usage()),
            "--only" => only = Some(val("--only")),
            "--fill" => fill = val("--fill").parse().unwrap_or_else(|_| usage()),
            "--no-warmup" => warmup = false,
            "--keep" => keep = true,
            _ => usage(),
        }
    }
    let module = std::fs::canonicalize(&module).unwrap_or_else(|e| {
        eprintln!("module {}: {e} (run `make` first)", module.display());
        std::process::exit(2)
    });
    let ok = match cmd.as_str() {
        "soak" => {
            if conns == 0 || conns > 20000 || seconds > 3600 {
                eprintln!("--conns must be 1..=20000 and --seconds at most 3600");
                std::process::exit(2);
            }
            let mut s = soak::Settings::new(module);
            s.conns = conns;
            s.seconds = seconds;
            s.warmup = warmup;
            s.keep = keep;
            s.channels = (conns / 20).max(1);
            soak::run(&s)
        }
        "stress" => {
            let vg = vg_module
                .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
                .unwrap_or_else(|| module.clone());
            stress::run(&stress::Settings {
                module,
                valgrind_module: vg,
                cycles: cycles.clamp(1, 1000),
                rehashes: rehashes.clamp(1, 500),
                only,
                keep,
            })
        }
        "handshakes" => handshakes::run(&handshakes::Settings {
            module,
            conns: conns.clamp(1, 20000),
            fill: fill.clamp(256, 1 << 20),
            keep,
        }),
        _ => usage(),
    };
    std::process::exit(if ok { 0 } else { 1 });
}
