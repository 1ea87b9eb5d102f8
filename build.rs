//! Compiles the cxx bridge and the C++ shim against the InspIRCd 3 headers into the
//! staticlib; the Makefile links that into m_websocket.so.
//!
//! `INSPIRCD_INCLUDE_DIR` overrides the header location (default /usr/include/inspircd,
//! from Debian's inspircd-dev package).

use std::path::PathBuf;

const DEFAULT_INCLUDE_DIR: &str = "/usr/include/inspircd";

/// The bridge, the shim and its headers: a change to any rebuilds the C++ side.
const BRIDGE_INPUTS: [&str; 4] = [
    "src/ffi/mod.rs",
    "cpp/m_websocket.cpp",
    "include/m_websocket.h",
    "include/send_queue.h",
];

fn main() {
    println!("cargo:rerun-if-env-changed=INSPIRCD_INCLUDE_DIR");
    for input in BRIDGE_INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }

    let include_dir = PathBuf::from(
        std::env::var("INSPIRCD_INCLUDE_DIR").unwrap_or_else(|_| DEFAULT_INCLUDE_DIR.to_owned()),
    );
    if !include_dir.join("inspircd.h").is_file() {
        eprintln!(
            "error: InspIRCd headers not found in {} (no inspircd.h).\n\
             Install Debian's inspircd-dev package (apt-get install inspircd-dev) or set \
             INSPIRCD_INCLUDE_DIR to the directory holding inspircd.h.",
            include_dir.display()
        );
        std::process::exit(1);
    }

    cxx_build::bridge("src/ffi/mod.rs")
        .file("cpp/m_websocket.cpp")
        .include(&include_dir)
        .include("include")
        .std("c++17")
        // InspIRCd 3 modules are built without RTTI; with it the module fails to load
        // (undefined symbol _ZTI12refcountbase).
        .flag("-fno-rtti")
        .flag("-fPIC")
        .flag("-fvisibility=hidden")
        .flag("-fvisibility-inlines-hidden")
        .flag("-Wno-unused-parameter")
        .flag("-ffunction-sections")
        .flag("-fdata-sections")
        .define("MODNAME", "\"m_websocket\"")
        .compile("m_websocket_shim");
}
