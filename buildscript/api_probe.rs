//! Which hook API the headers declare, found by compiling: InspIRCd 4.0 to 4.11 call
//! `IOHook::Ping()`, the 4.x branch after 4.11.0 calls `IOHook::Ping(StreamSocket*)`
//! (upstream commit 9d3f34a0a) with the same ABI number in its headers, so no version
//! number tells them apart. Each candidate is a class that overrides one signature; the
//! one that compiles is the API (the shim then declares its `Ping` with `override`, so
//! a header that changes again fails the build instead of leaving the ping unused).

use std::path::Path;
use std::process::Command;

use super::fail;

/// How the native ping (`<websocket nativeping>`, InspIRCd 4) is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingApi {
    /// `virtual bool Ping()`: InspIRCd 4.0 to 4.11.
    NoArgument,
    /// `virtual bool Ping(StreamSocket* sock)`: the 4.x branch after 4.11.0.
    Socket,
}

impl PingApi {
    /// The value of `WSGATE_PING_TAKES_SOCKET`, which include/compat.h reads.
    pub fn takes_socket(self) -> &'static str {
        match self {
            PingApi::NoArgument => "0",
            PingApi::Socket => "1",
        }
    }

    fn declaration(self) -> &'static str {
        match self {
            PingApi::NoArgument => "bool Ping() override;",
            PingApi::Socket => "bool Ping(StreamSocket* sock) override;",
        }
    }
}

/// Compiles (syntax only) a class overriding each signature with `compiler()`, the
/// shim's own compiler command and flags; `probe_dir` holds the probe sources.
pub fn ping_api(compiler: impl Fn() -> Command, probe_dir: &Path) -> PingApi {
    std::fs::create_dir_all(probe_dir)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", probe_dir.display())));
    let mut errors = String::new();
    let mut found = Vec::new();
    for api in [PingApi::NoArgument, PingApi::Socket] {
        let source = probe_dir.join(format!("ping_{}.cpp", api.takes_socket()));
        let text = format!(
            "#include \"inspircd.h\"\n#include \"iohook.h\"\n\
             struct WsgatePingProbe : IOHook {{ {} }};\n",
            api.declaration()
        );
        std::fs::write(&source, text)
            .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", source.display())));
        let mut cmd = compiler();
        cmd.arg("-fsyntax-only").arg(&source);
        let out = cmd
            .output()
            .unwrap_or_else(|e| fail(&format!("cannot run the C++ compiler ({cmd:?}): {e}")));
        if out.status.success() {
            found.push(api);
        } else {
            errors.push_str(&String::from_utf8_lossy(&out.stderr));
        }
    }
    match found.as_slice() {
        [api] => *api,
        [] => fail(&format!(
            "these InspIRCd 4 headers declare neither IOHook::Ping() nor \
             IOHook::Ping(StreamSocket*), or do not compile; the compiler said:\n{errors}"
        )),
        _ => {
            fail("both IOHook::Ping() and IOHook::Ping(StreamSocket*) compile: cannot tell the API")
        }
    }
}
