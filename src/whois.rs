//! WHOIS numeric 350 (`RPL_WHOISGATEWAY`) for WebSocket users, as opers with
//! `users/auspex` see it: the web page's origin and, for a user behind a trusted proxy,
//! the proxy's host and address. What InspIRCd 4's stock module sends, so that opers
//! on other servers of the network, which know a user by the synced extension items
//! alone, see the same line.

/// What the server knows of a user.
#[derive(Clone, Copy, Debug, Default)]
pub struct WhoisFacts<'a> {
    /// The Origin header the user's browser sent (a synced item).
    pub origin: Option<&'a [u8]>,
    /// The proxy's host and address, for a proxied user (synced items).
    pub proxy_host: Option<&'a [u8]>,
    pub proxy_ip: Option<&'a [u8]>,
    /// The user is connected to this server through the module (a native client sends
    /// no Origin and may not be proxied, and is still a WebSocket user).
    pub local_websocket: bool,
}

/// The fields of the 350 line after the target's nick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayLine {
    pub host: String,
    pub ip: String,
    pub text: String,
}

/// The line for a WebSocket user; `None` for anyone else.
pub fn gateway_line(facts: &WhoisFacts<'_>) -> Option<GatewayLine> {
    let known = facts.origin.is_some()
        || facts.proxy_host.is_some()
        || facts.proxy_ip.is_some()
        || facts.local_websocket;
    if !known {
        return None;
    }
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    // "*" stands for "not proxied", as in the cgiirc module's 350.
    let (host, ip) = match (facts.proxy_host, facts.proxy_ip) {
        (Some(host), Some(ip)) => (text(host), text(ip)),
        _ => ("*".to_owned(), "*".to_owned()),
    };
    let text = match facts.origin {
        Some(origin) => format!("is connected from the {} WebSocket origin", text(origin)),
        None => "is connected from a non-web WebSocket origin".to_owned(),
    };
    Some(GatewayLine { host, ip, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_the_module_does_not_know_gets_no_line() {
        assert_eq!(gateway_line(&WhoisFacts::default()), None);
    }

    #[test]
    fn a_browser_user_shows_its_origin_and_no_proxy() {
        let line = gateway_line(&WhoisFacts {
            origin: Some(b"https://chat.example.com"),
            ..WhoisFacts::default()
        });
        assert_eq!(
            line,
            Some(GatewayLine {
                host: "*".into(),
                ip: "*".into(),
                text: "is connected from the https://chat.example.com WebSocket origin".into(),
            })
        );
    }

    #[test]
    fn a_proxied_native_client_shows_the_proxy() {
        let line = gateway_line(&WhoisFacts {
            proxy_host: Some(b"proxy.example.net"),
            proxy_ip: Some(b"198.51.100.4"),
            local_websocket: true,
            ..WhoisFacts::default()
        })
        .unwrap();
        assert_eq!(
            (line.host.as_str(), line.ip.as_str()),
            ("proxy.example.net", "198.51.100.4")
        );
        assert_eq!(line.text, "is connected from a non-web WebSocket origin");
    }

    #[test]
    fn a_remote_user_is_known_by_its_synced_items_alone() {
        let line = gateway_line(&WhoisFacts {
            origin: Some(b"https://a.example"),
            local_websocket: false,
            ..WhoisFacts::default()
        });
        assert!(line.is_some());
        // Half of the proxy pair is not a proxy.
        let line = gateway_line(&WhoisFacts {
            proxy_host: Some(b"proxy"),
            ..WhoisFacts::default()
        })
        .unwrap();
        assert_eq!((line.host.as_str(), line.ip.as_str()), ("*", "*"));
    }
}
