//! What differs between InspIRCd versions: how the server is started and what its
//! configuration says. Every difference is a `match` on [`Dialect`] in this file, so a
//! new version is a new variant and the compiler points at each place it must answer.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

/// The configuration language and command line of one InspIRCd major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// InspIRCd 3 (Debian 12's 3.15).
    #[default]
    V3,
    /// InspIRCd 4 (Debian 13's 4.7; 4.0 to 4.11 and the 4.x branch built from source).
    /// Its configuration still reads every key these
    /// configurations use (it warns about none); only the TLS profile differs.
    V4,
}

/// The `<connect>` keys every class gets unless told otherwise: no hostname lookups or
/// ident, no flood limits, generous clone limits, a 60 s registration timeout and no
/// IRC ping for 600 s.
const V3_CONNECT_DEFAULTS: &[(&str, &str)] = &[
    ("allow", "*"),
    ("resolvehostnames", "no"),
    ("useident", "no"),
    ("timeout", "60"),
    ("pingfreq", "600"),
    ("threshold", "1000000"),
    ("commandrate", "1000000000"),
    ("fakelag", "no"),
    ("recvq", "1M"),
    ("softsendq", "65536"),
    ("hardsendq", "64M"),
    ("localmax", "10000"),
    ("globalmax", "10000"),
    ("limit", "10000"),
    ("maxchans", "50"),
];

impl Dialect {
    /// The dialect of the InspIRCd whose `--version` says `version`
    /// (`InspIRCd-4.11.0`, `InspIRCd-3.15.0-debian`): by its major version.
    pub fn from_version(version: &str) -> Option<Dialect> {
        let major = version.strip_prefix("InspIRCd-")?.split('.').next()?;
        match major {
            "3" => Some(Dialect::V3),
            "4" => Some(Dialect::V4),
            _ => None,
        }
    }

    /// The server's arguments after the binary: in the foreground, as root if need be,
    /// with this configuration file.
    pub fn args(self, config: &Path) -> Vec<OsString> {
        match self {
            Dialect::V3 | Dialect::V4 => {
                let mut config_arg = OsString::from("--config=");
                config_arg.push(config);
                vec!["--nofork".into(), "--runasroot".into(), config_arg]
            }
        }
    }

    /// What the console says once every listener is up: "InspIRCd is now running as
    /// 'name'[SID]" up to 4.11, "InspIRCd-4.11.0 [PID n] is now running as name [SID]"
    /// on the 4.x branch after it.
    pub fn running_banner(self) -> &'static str {
        match self {
            Dialect::V3 | Dialect::V4 => " is now running as ",
        }
    }

    /// What the console says when a listener's port is taken.
    pub fn bind_failure(self) -> &'static str {
        match self {
            Dialect::V3 | Dialect::V4 => "failed to bind",
        }
    }

    /// What the debug log says when a listener on `address` (`ip:port`) accepts a
    /// connection.
    pub fn accepted_log(self, address: &str) -> String {
        match self {
            Dialect::V3 => format!("Accepting connection on socket {address} "),
            Dialect::V4 => format!("Accepted connection to {address} "),
        }
    }

    /// The modules the stock websocket module needs loaded before it.
    pub fn stock_websocket_needs(self) -> &'static [&'static str] {
        match self {
            Dialect::V3 | Dialect::V4 => &["sha1"],
        }
    }

    /// Where the server keeps everything: configuration, data, logs, modules
    /// (`dir/modules`), its PID file.
    pub fn paths(self, dir: &Path) -> String {
        let d = dir.display();
        match self {
            Dialect::V3 | Dialect::V4 => format!(
                "<path configdir=\"{d}\" datadir=\"{d}\" logdir=\"{d}\" moduledir=\"{d}/modules\" runtimedir=\"{d}\">\n\
                 <pid file=\"{d}/inspircd.pid\">\n"
            ),
        }
    }

    /// A log file of everything but user I/O at `level`, flushed at every line if
    /// `flush`.
    pub fn log(self, file: &Path, level: &str, flush: bool) -> String {
        match self {
            Dialect::V3 | Dialect::V4 => format!(
                "<log method=\"file\" type=\"* -USERINPUT -USEROUTPUT\" level=\"{level}\"{} target=\"{}\">\n",
                if flush { " flush=\"1\"" } else { "" },
                file.display()
            ),
        }
    }

    /// The `<connect>` keys of every class unless overridden.
    pub fn connect_defaults(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Dialect::V3 | Dialect::V4 => V3_CONNECT_DEFAULTS,
        }
    }

    /// An operator account with every privilege.
    pub fn oper(self, name: &str, password: &str) -> String {
        match self {
            Dialect::V3 | Dialect::V4 => format!(
                "<class name=\"All\" commands=\"*\" privs=\"*\" usermodes=\"*\" chanmodes=\"*\" snomasks=\"*\">\n\
                 <type name=\"Admin\" classes=\"All\">\n\
                 <oper name=\"{name}\" password=\"{password}\" host=\"*@*\" type=\"Admin\">\n"
            ),
        }
    }

    /// A TLS WebSocket listener on `port` with `cert` and `key` (PEM files).
    pub fn tls_listener(self, port: u16, cert: &Path, key: &Path) -> String {
        // InspIRCd 3 loads DH parameters unless `dhfile` is empty; 4 has no such key.
        let dhfile = match self {
            Dialect::V3 => " dhfile=\"\"",
            Dialect::V4 => "",
        };
        format!(
            "<module name=\"ssl_gnutls\">\n\
             <sslprofile name=\"wss\" provider=\"gnutls\" certfile=\"{}\" keyfile=\"{}\"{dhfile} requestclientcert=\"no\">\n\
             <bind address=\"127.0.0.1\" port=\"{port}\" type=\"clients\" hook=\"websocket\" sslprofile=\"wss\">\n",
            cert.display(),
            key.display()
        )
    }

    /// A server link (spanningtree) listening on `port`, to `peer` at `peer_port` on
    /// 127.0.0.1, connected to every second if `autoconnect`.
    pub fn link(
        self,
        port: u16,
        peer: &str,
        peer_port: u16,
        password: &str,
        autoconnect: bool,
    ) -> String {
        match self {
            Dialect::V3 | Dialect::V4 => {
                let mut s = format!(
                    "<module name=\"spanningtree\">\n\
                     <bind address=\"127.0.0.1\" port=\"{port}\" type=\"servers\">\n\
                     <link name=\"{peer}\" ipaddr=\"127.0.0.1\" port=\"{peer_port}\" allowmask=\"127.0.0.1/32\" sendpass=\"{password}\" recvpass=\"{password}\">\n"
                );
                if autoconnect {
                    writeln!(s, "<autoconnect period=\"1s\" server=\"{peer}\">").unwrap();
                }
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn dialect_from_what_the_binary_reports() {
        assert_eq!(
            Dialect::from_version("InspIRCd-3.15.0-debian"),
            Some(Dialect::V3)
        );
        assert_eq!(Dialect::from_version("InspIRCd-4.0.0"), Some(Dialect::V4));
        assert_eq!(Dialect::from_version("InspIRCd-4.11.0"), Some(Dialect::V4));
        assert_eq!(Dialect::from_version("InspIRCd-5.0.0"), None);
        assert_eq!(Dialect::from_version("inspircd 4.11"), None);
    }
}
