//! The generated configuration: [`Conf`] says what a run wants, [`render`] writes it in
//! the server's [`Dialect`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Dialect;

/// The origin the default `<wsorigin>` allows.
pub const DEFAULT_ORIGIN: &str = "https://good.example";
/// The operator account every generated configuration has.
pub const OPER_NAME: &str = "admin";
pub const OPER_PASS: &str = "secret";
/// The password both ends of a test link use.
pub const LINK_PASSWORD: &str = "linkpass";

/// The `m_websocket.so` a server loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsModule {
    /// The stock module of the installation (with the modules it needs, e.g. `sha1`).
    Stock,
    /// Another build, e.g. this project's.
    File(PathBuf),
}

/// A spanningtree link between two servers on 127.0.0.1.
#[derive(Clone, Debug)]
pub struct Link {
    /// This server's name and server ID.
    pub name: String,
    pub sid: String,
    /// The other server's name.
    pub peer: String,
    /// The other server's `type="servers"` port, when this one connects to it.
    pub connect_to: Option<u16>,
}

/// What a run wants in the server's configuration. The defaults are the integration
/// tests': a server `test.example`, the websocket module on a port of its own beside a
/// plain IRC port, one `<wsorigin allow="https://good.example">`, a debug log flushed
/// at every line, one connect class with the limits out of the way.
#[derive(Clone, Debug)]
pub struct Conf {
    /// The websocket module; `None` loads none and binds no WebSocket port.
    pub websocket_module: Option<WsModule>,
    /// Attributes of the `<websocket ...>` tag; `None` for no tag.
    pub websocket: Option<String>,
    /// One `<wsorigin allow="...">` per entry.
    pub origins: Vec<String>,
    /// Free-form configuration text at the end (e.g. a `<wsorigin>` without allow).
    pub extra: String,
    /// Adds `ssl_gnutls` and a TLS WebSocket listener (a fresh self-signed
    /// certificate for 127.0.0.1 and localhost).
    pub tls: bool,
    /// Links this server to another (spanningtree).
    pub link: Option<Link>,
    /// Attributes (`key="value" ...`) of the one default `<connect>` class, `main`,
    /// overriding or adding to [`Dialect::connect_defaults`].
    pub connect_attrs: String,
    /// Replaces the default `<connect>` class when set (e.g. several classes, made
    /// with [`connect_tag`]).
    pub connect: Option<String>,
    /// `<server name description network>`; the admin's address is `admin@name`.
    pub server: [String; 3],
    /// `<log level>`, and whether the log is flushed at every line.
    pub log_level: String,
    pub log_flush: bool,
    /// Attributes of `<performance>`.
    pub performance: String,
}

impl Conf {
    /// The defaults with `module` loaded.
    pub fn new(module: impl Into<WsModule>) -> Conf {
        Conf {
            websocket_module: Some(module.into()),
            websocket: None,
            origins: vec![DEFAULT_ORIGIN.to_string()],
            extra: String::new(),
            tls: false,
            link: None,
            connect_attrs: String::new(),
            connect: None,
            server: ["test.example".into(), "Test server".into(), "Test".into()],
            log_level: "debug".into(),
            log_flush: true,
            // 65534 is the largest netbuffersize InspIRCd accepts (out of range falls
            // back to 10240). With more data pending than one buffer, 3.15 reads one
            // buffer per socket per second, so a bigger buffer keeps bursts fast.
            performance: r#"netbuffersize="65534""#.into(),
        }
    }

    /// The defaults without any websocket module (plain IRC only).
    pub fn plain() -> Conf {
        Conf {
            websocket_module: None,
            ..Conf::new(WsModule::Stock)
        }
    }

    pub fn websocket(mut self, attrs: &str) -> Conf {
        self.websocket = Some(attrs.to_string());
        self
    }
    pub fn origins(mut self, origins: &[&str]) -> Conf {
        self.origins = origins.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Appends a line of configuration text.
    pub fn extra(mut self, text: &str) -> Conf {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }
    /// Loads another module (`<module name="...">`, appended like `extra`).
    pub fn module(self, name: &str) -> Conf {
        self.extra(&format!("<module name=\"{name}\">"))
    }
    pub fn tls(mut self) -> Conf {
        self.tls = true;
        self
    }
    /// Adds attributes to the default `<connect>` class (a later key wins).
    pub fn connect_attrs(mut self, attrs: &str) -> Conf {
        self.connect_attrs.push(' ');
        self.connect_attrs.push_str(attrs);
        self
    }
    /// Replaces the default `<connect>` class with `text` (one or more tags).
    pub fn connect(mut self, text: &str) -> Conf {
        self.connect = Some(text.to_string());
        self
    }
    pub fn server(mut self, name: &str, description: &str, network: &str) -> Conf {
        self.server = [name.into(), description.into(), network.into()];
        self
    }
    pub fn log(mut self, level: &str, flush: bool) -> Conf {
        self.log_level = level.into();
        self.log_flush = flush;
        self
    }
    pub fn performance(mut self, attrs: &str) -> Conf {
        self.performance = attrs.into();
        self
    }
}

impl From<PathBuf> for WsModule {
    fn from(p: PathBuf) -> WsModule {
        WsModule::File(p)
    }
}

/// Parses `key="value" key2="value2"` (values without quotes inside).
fn parse_attrs(attrs: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = attrs.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad attributes {attrs:?} at {rest:?}"));
        let (value, after) = after
            .split_once('"')
            .unwrap_or_else(|| panic!("unterminated value in {attrs:?}"));
        out.push((key.trim().to_string(), value.to_string()));
        rest = after.trim_start();
    }
    out
}

/// A `<connect name="...">` tag: the dialect's defaults, `attrs` (`key="value" ...`)
/// overriding (the last of a key wins) or adding keys. A `deny` key drops the default
/// `allow`.
pub fn connect_tag(dialect: Dialect, name: &str, attrs: &str) -> String {
    let overrides = parse_attrs(attrs);
    let last = |key: &str| {
        overrides
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let denies = last("deny").is_some();
    let mut pairs: Vec<(String, String)> = vec![("name".into(), name.into())];
    for (k, v) in dialect.connect_defaults() {
        if denies && *k == "allow" {
            continue;
        }
        pairs.push((k.to_string(), last(k).unwrap_or_else(|| v.to_string())));
    }
    for (k, _) in &overrides {
        if !pairs.iter().any(|(pk, _)| pk == k) {
            pairs.push((k.clone(), last(k).unwrap()));
        }
    }
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("<connect {}>", body.join(" "))
}

/// The listening ports of one server.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ports {
    pub irc: u16,
    pub ws: u16,
    pub wss: u16,
    /// `type="servers"` (listening when the server is linked).
    pub link: u16,
}

/// The configuration file for `conf` in `dir` (the server's directory) on `ports`.
pub(super) fn render(dialect: Dialect, conf: &Conf, dir: &Path, ports: Ports) -> String {
    let [name, description, network] = &conf.server;
    let mut s = dialect.paths(dir);
    writeln!(
        s,
        r#"<server name="{server}" description="{description}" network="{network}"{sid}>
<admin name="Admin" nick="admin" email="admin@{name}">"#,
        server = conf
            .link
            .as_ref()
            .map_or(name.as_str(), |l| l.name.as_str()),
        sid = conf
            .link
            .as_ref()
            .map(|l| format!(r#" id="{}""#, l.sid))
            .unwrap_or_default(),
    )
    .unwrap();
    s.push_str(&dialect.log(&dir.join("ircd.log"), &conf.log_level, conf.log_flush));
    writeln!(
        s,
        r#"<bind address="127.0.0.1" port="{}" type="clients">"#,
        ports.irc
    )
    .unwrap();
    if conf.websocket_module.is_some() {
        writeln!(
            s,
            r#"<bind address="127.0.0.1" port="{}" type="clients" hook="websocket">"#,
            ports.ws
        )
        .unwrap();
    }
    let connect = match &conf.connect {
        Some(text) => text.clone(),
        None => connect_tag(dialect, "main", &conf.connect_attrs),
    };
    writeln!(s, "{connect}").unwrap();
    s.push_str(&dialect.oper(OPER_NAME, OPER_PASS));
    writeln!(s, r#"<channels users="100" opers="100">"#).unwrap();
    writeln!(s, "<performance {}>", conf.performance).unwrap();
    if conf.tls {
        s.push_str(&dialect.tls_listener(ports.wss, &dir.join("cert.pem"), &dir.join("key.pem")));
    }
    if let Some(link) = &conf.link {
        s.push_str(&dialect.link(
            ports.link,
            &link.peer,
            link.connect_to.unwrap_or(ports.link),
            LINK_PASSWORD,
            link.connect_to.is_some(),
        ));
    }
    if let Some(module) = &conf.websocket_module {
        if *module == WsModule::Stock {
            for m in dialect.stock_websocket_needs() {
                writeln!(s, "<module name=\"{m}\">").unwrap();
            }
        }
        s.push_str("<module name=\"websocket\">\n");
        if let Some(ws) = &conf.websocket {
            writeln!(s, "<websocket {ws}>").unwrap();
        }
        for o in &conf.origins {
            writeln!(s, "<wsorigin allow=\"{o}\">").unwrap();
        }
    }
    s.push_str(&conf.extra);
    s
}
