//! Compiles the `cxx` bridge and the C++ shim against the InspIRCd headers it is pointed
//! at into the staticlib; the Makefile links that into `m_websocket.so`.
//!
//! - `INSPIRCD_SOURCE`: an InspIRCd source tree, configured or not (its `include/` and,
//!   for InspIRCd 4, its `vendor/` {fmt}); `buildscript/headers.rs` says how an
//!   unconfigured tree's `config.h` is made.
//! - `INSPIRCD_INCLUDE_DIR`: installed headers instead (default /usr/include/inspircd,
//!   from Debian's inspircd-dev package). Their config.h says which InspIRCd they are:
//!   3.x or 4.x.
//! - `INSPIRCD_FMT_DIR` (InspIRCd 4 only): the directory holding `fmt/format.h`, the
//!   {fmt} that InspIRCd 4 vendors and its headers include; by default a source tree's
//!   `vendor/` (`tools/inspircd4/fetch.sh` puts Debian 13's in target/inspircd4/fmt). It
//!   must be the server's own {fmt} version.
//!
//! A module is built for one minor version of InspIRCd: the ABI number it exports comes
//! from these headers (`MODULE_INIT`), and the server refuses any other. Which hook API
//! the headers declare is found by compiling (`buildscript/api_probe.rs`).

// A build script reports its failures on stderr, which cargo shows.
#![allow(clippy::print_stderr)]

#[path = "buildscript/api_probe.rs"]
mod api_probe;
#[path = "buildscript/headers.rs"]
mod headers;

use std::path::PathBuf;

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

fn main() {
    for var in [
        "INSPIRCD_SOURCE",
        "INSPIRCD_INCLUDE_DIR",
        "INSPIRCD_FMT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for input in BRIDGE_INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    let out_dir =
        PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR unset")));

    let headers = headers::Headers::from_env(&out_dir);
    for input in headers.inputs() {
        println!("cargo:rerun-if-changed={}", input.display());
    }

    let mut build = cxx_build::bridge("src/ffi/mod.rs");
    build
        .file("cpp/m_websocket.cpp")
        .include(&headers.include)
        .include(&headers.config)
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
    match headers.major_version() {
        3 => {}
        4 => {
            let fmt_dir = headers
                .fmt
                .clone()
                .filter(|d| d.join("fmt/format.h").is_file())
                .unwrap_or_else(|| {
                    fail(
                        "InspIRCd 4's headers include {fmt}, which inspircd-dev does not ship: \
                         set INSPIRCD_FMT_DIR to the directory holding fmt/format.h from the \
                         same InspIRCd source (vendor/; tools/inspircd4/fetch.sh puts \
                         Debian 13's in target/inspircd4/fmt), or build from the source tree \
                         (INSPIRCD_SOURCE)",
                    )
                });
            // As InspIRCd builds its modules: {fmt} comes from the server binary.
            build.include(fmt_dir).define("FMT_SHARED", None);
            let compiler = build.get_compiler();
            let ping = api_probe::ping_api(|| compiler.to_command(), &out_dir.join("api-probe"));
            build.define("WSGATE_PING_TAKES_SOCKET", ping.takes_socket());
        }
        other => fail(&format!(
            "InspIRCd {other} is not supported (the headers in {} are InspIRCd {other}); \
             this module builds for InspIRCd 3 and 4",
            headers.include.display()
        )),
    }
    build.compile("m_websocket_shim");
}
