//! What the module writes to InspIRCd's log, worded here once: the shim logs these
//! lines as they are (InspIRCd adds the time and the module's name).

use std::net::IpAddr;

/// The module closes a connection: `from` is the user's mask (`nick!ident@host`), or
/// `None` for a server link.
pub fn closing(from: Option<&str>, reason: &str) -> String {
    format!(
        "Closing connection from {}: {reason}",
        from.unwrap_or("server link")
    )
}

/// Something an admin should look at: a configuration or a proxy that may let clients
/// lie about their address, say.
pub fn warning(text: &str) -> String {
    format!("WARNING: {text}")
}

/// A trusted proxy's word on the client's address is applied (a debug line).
pub fn real_address(proxy: Option<IpAddr>, real: IpAddr) -> String {
    match proxy {
        Some(proxy) => format!("Real address of {proxy} from a trusted proxy: {real}"),
        None => format!("Real address from a trusted proxy: {real}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_who_and_why() {
        assert_eq!(
            closing(Some("n!i@h"), "WebSocket: ping flood (close 1008)"),
            "Closing connection from n!i@h: WebSocket: ping flood (close 1008)"
        );
        assert_eq!(
            closing(None, "Connection closed"),
            "Closing connection from server link: Connection closed"
        );
        assert_eq!(warning("x"), "WARNING: x");
        assert_eq!(
            real_address("127.0.0.1".parse().ok(), "192.0.2.7".parse().unwrap()),
            "Real address of 127.0.0.1 from a trusted proxy: 192.0.2.7"
        );
    }
}
