//! Compiles the `cxx` bridge and the C++ shim against the InspIRCd headers it is pointed
//! at into the staticlib; the Makefile links that into `m_websocket.so`.
//!
//! - `INSPIRCD_INCLUDE_DIR`: the headers (default /usr/include/inspircd, from Debian's
//!   inspircd-dev package). Their config.h says which InspIRCd they are: 3.x or 4.x.
//! - `INSPIRCD_FMT_DIR` (InspIRCd 4 only): the directory holding `fmt/format.h`, the
//!   {fmt} that InspIRCd 4 vendors and its headers include (vendor/fmt of the same
//!   InspIRCd source; `tools/inspircd4/fetch.sh` puts Debian 13's in
//!   target/inspircd4/fmt). It must be the server's own {fmt} version.
//!
//! A module is built for one minor version of InspIRCd: the ABI number it exports comes
//! from these headers (`MODULE_INIT`), and the server refuses any other.

// A build script reports its failures on stderr, which cargo shows.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};

const DEFAULT_INCLUDE_DIR: &str = "/usr/include/inspircd";

/// The bridge, the shim and its headers: a change to any rebuilds the C++ side.
const BRIDGE_INPUTS: [&str; 5] = [
    "src/ffi/mod.rs",
    "cpp/m_websocket.cpp",
    "include/m_websocket.h",
    "include/compat.h",
    "include/send_queue.h",
];

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// The major version config.h names (`#define INSPIRCD_VERSION "InspIRCd-4.7.0..."`).
fn major_version(include_dir: &Path) -> u32 {
    let config = std::fs::read_to_string(include_dir.join("config.h")).unwrap_or_else(|e| {
        fail(&format!(
            "cannot read {}: {e}; INSPIRCD_INCLUDE_DIR must hold InspIRCd's headers, config.h included",
            include_dir.join("config.h").display()
        ))
    });
    config
        .lines()
        .filter_map(|l| l.strip_prefix("#define INSPIRCD_VERSION \"InspIRCd-"))
        .find_map(|v| v.split('.').next()?.parse().ok())
        .unwrap_or_else(|| {
            fail(&format!(
                "{} does not define INSPIRCD_VERSION \"InspIRCd-X.Y.Z\"",
                include_dir.join("config.h").display()
            ))
        })
}

fn main() {
    println!("cargo:rerun-if-env-changed=INSPIRCD_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=INSPIRCD_FMT_DIR");
    for input in BRIDGE_INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }

    let include_dir = PathBuf::from(
        std::env::var("INSPIRCD_INCLUDE_DIR").unwrap_or_else(|_| DEFAULT_INCLUDE_DIR.to_owned()),
    );
    if !include_dir.join("inspircd.h").is_file() {
        fail(&format!(
            "InspIRCd headers not found in {} (no inspircd.h).\n\
             Install Debian's inspircd-dev package (apt-get install inspircd-dev) or set \
             INSPIRCD_INCLUDE_DIR to the directory holding inspircd.h.",
            include_dir.display()
        ));
    }
    println!(
        "cargo:rerun-if-changed={}",
        include_dir.join("config.h").display()
    );

    let mut build = cxx_build::bridge("src/ffi/mod.rs");
    build
        .file("cpp/m_websocket.cpp")
        .include(&include_dir)
        .include("include")
        .std("c++17")
        // InspIRCd modules are built without RTTI; with it the module fails to load
        // (undefined symbol _ZTI12refcountbase on 3, _ZTI6Module on 4).
        .flag("-fno-rtti")
        .flag("-fPIC")
        .flag("-fvisibility=hidden")
        .flag("-fvisibility-inlines-hidden")
        .flag("-Wno-unused-parameter")
        .flag("-ffunction-sections")
        .flag("-fdata-sections")
        .define("MODNAME", "\"m_websocket\"");
    match major_version(&include_dir) {
        3 => {}
        4 => {
            let fmt_dir = std::env::var_os("INSPIRCD_FMT_DIR").map(PathBuf::from);
            let fmt_dir = fmt_dir
                .filter(|d| d.join("fmt/format.h").is_file())
                .unwrap_or_else(|| {
                    fail(
                        "InspIRCd 4's headers include {fmt}, which inspircd-dev does not ship: \
                         set INSPIRCD_FMT_DIR to the directory holding fmt/format.h from the \
                         same InspIRCd source (vendor/fmt; tools/inspircd4/fetch.sh puts \
                         Debian 13's in target/inspircd4/fmt)",
                    )
                });
            println!(
                "cargo:rerun-if-changed={}",
                fmt_dir.join("fmt/format.h").display()
            );
            // As InspIRCd builds its modules: {fmt} comes from the server binary.
            build.include(fmt_dir).define("FMT_SHARED", None);
        }
        other => fail(&format!(
            "InspIRCd {other} is not supported (the headers in {} are InspIRCd {other}); \
             this module builds for InspIRCd 3 and 4",
            include_dir.display()
        )),
    }
    build.compile("m_websocket_shim");
}
