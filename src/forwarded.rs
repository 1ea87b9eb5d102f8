//! RFC 7239's `Forwarded` header: `for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"`.
//!
//! Each proxy appends one element; each element is `;`-separated `name=value` pairs,
//! values a token or a quoted string. Only the pairs the module uses are kept: `for`
//! (the address the proxy received from) and `proto` (the scheme the client used).
//! Written by hand: the crates that parse it (`rfc7239`, `forwarded-header-value`)
//! accept `for=unknown` and obfuscated identifiers as nodes, which the module must
//! refuse, and would need their results re-read to tell which element a value came from.

use std::net::IpAddr;

use crate::quoted_list::split_outside_quotes;

/// One element's `for` and `proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Element<'a> {
    /// The node's address (any port dropped).
    pub for_ip: IpAddr,
    /// `proto`, as sent, when present.
    pub proto: Option<&'a str>,
}

/// Why a `Forwarded` value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// The elements of a `Forwarded` value (several header lines joined by `,`), in order.
/// Every element must have exactly one `for` whose node is an IP address: `unknown`,
/// an obfuscated identifier (`_hidden`), an unbracketed or unquoted IPv6 address, or a
/// syntax error refuse the whole value.
pub fn parse(value: &str) -> Result<Vec<Element<'_>>, Malformed> {
    split_outside_quotes(value, ',')
        .map(|element| parse_element(element.trim_matches([' ', '\t'])))
        .collect()
}

fn parse_element(element: &str) -> Result<Element<'_>, Malformed> {
    let mut for_ip = None;
    let mut proto = None;
    for pair in split_outside_quotes(element, ';') {
        let (name, value) = pair
            .trim_matches([' ', '\t'])
            .split_once('=')
            .ok_or(Malformed)?;
        let value = unquote(value)?;
        if name.eq_ignore_ascii_case("for") {
            // (IPv6 and ports need quoting: a ':' is not a token character.)
            if for_ip.replace(node_ip(value.text)?).is_some() {
                return Err(Malformed);
            }
        } else if name.eq_ignore_ascii_case("proto") {
            if proto.replace(value.text).is_some() {
                return Err(Malformed);
            }
        } else if !is_token(name) {
            return Err(Malformed);
        }
    }
    Ok(Element {
        for_ip: for_ip.ok_or(Malformed)?,
        proto,
    })
}

/// A value, without its quotes.
struct Value<'a> {
    text: &'a str,
}

fn unquote(value: &str) -> Result<Value<'_>, Malformed> {
    match value.strip_prefix('"') {
        // Escapes are never needed in the values used here; one refuses the value.
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains(['"', '\\']) => Ok(Value { text: inner }),
            _ => Err(Malformed),
        },
        None if is_token(value) => Ok(Value { text: value }),
        None => Err(Malformed),
    }
}

/// RFC 7230 `token`: one or more of the visible characters other than separators.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A node (`192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`) as its
/// address; `unknown` and obfuscated names are not addresses.
fn node_ip(node: &str) -> Result<IpAddr, Malformed> {
    let host = match node.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']').ok_or(Malformed)?;
            port_ok(after)?;
            return inside
                .parse::<std::net::Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| Malformed);
        }
        None => match node.split_once(':') {
            Some((host, port)) => {
                port_ok(&format!(":{port}"))?;
                host
            }
            None => node,
        },
    };
    host.parse::<std::net::Ipv4Addr>()
        .map(IpAddr::V4)
        .map_err(|_| Malformed)
}

/// Nothing, or `:` and a decimal port.
fn port_ok(text: &str) -> Result<(), Malformed> {
    match text.strip_prefix(':') {
        None if text.is_empty() => Ok(()),
        Some(port) if port.parse::<u16>().is_ok() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(())
        }
        _ => Err(Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn fors(value: &str) -> Result<Vec<IpAddr>, Malformed> {
        parse(value).map(|e| e.into_iter().map(|e| e.for_ip).collect())
    }

    #[test]
    fn the_rfcs_examples_and_ports() {
        assert_eq!(
            parse(r#"for="_gazonk""#),
            Err(Malformed),
            "obfuscated identifiers are refused"
        );
        assert_eq!(
            fors(r#"For="[2001:db8:cafe::17]:4711""#),
            Ok(vec![ip("2001:db8:cafe::17")])
        );
        let e = parse("for=192.0.2.60;proto=http;by=203.0.113.43").unwrap();
        assert_eq!(
            e,
            [Element {
                for_ip: ip("192.0.2.60"),
                proto: Some("http")
            }]
        );
        assert_eq!(
            fors("for=192.0.2.43, for=198.51.100.17"),
            Ok(vec![ip("192.0.2.43"), ip("198.51.100.17")])
        );
        assert_eq!(fors(r#"for="192.0.2.43:80""#), Ok(vec![ip("192.0.2.43")]));
        assert_eq!(fors(r#"for="[::1]""#), Ok(vec![ip("::1")]));
        assert_eq!(
            parse("proto=https;for=192.0.2.1")
                .unwrap()
                .first()
                .unwrap()
                .proto,
            Some("https")
        );
    }

    #[test]
    fn unusable_values_are_malformed() {
        for bad in [
            "",
            "for=unknown",
            "for=_hidden",
            r#"for="[2001:db8::1""#,
            "for=2001:db8::1",
            r#"for="2001:db8::1""#,
            "for=192.0.2.43:80",
            r#"for="192.0.2.43:x""#,
            r#"for="192.0.2.43:99999""#,
            "proto=https",
            "for=192.0.2.1;for=192.0.2.2",
            "for=192.0.2.1,",
            "for=192.0.2.1;;",
            "for",
            "for=192.0.2.1;proto=https;proto=http",
            r#"for="192.0.2.1"x"#,
            r#"for="192.0.2.1\"""#,
            "for=192.0.2.1 ;by=x y",
            "for=300.0.2.1",
        ] {
            assert_eq!(parse(bad), Err(Malformed), "{bad:?}");
        }
    }

    proptest! {
        /// Any text: no panic.
        #[test]
        fn any_text_is_parsed_or_refused(text in "\\PC{0,80}") {
            let _ = parse(&text);
        }

        /// Elements written as proxies write them come back in order.
        #[test]
        fn written_elements_come_back(
            addrs in proptest::collection::vec(any::<std::net::IpAddr>(), 1..5),
            with_port in any::<bool>(),
        ) {
            let value = addrs
                .iter()
                .map(|a| match (a, with_port) {
                    (IpAddr::V4(v4), false) => format!("for={v4};proto=https"),
                    (IpAddr::V4(v4), true) => format!("for=\"{v4}:443\""),
                    (IpAddr::V6(v6), false) => format!("for=\"[{v6}]\""),
                    (IpAddr::V6(v6), true) => format!("proto=wss; for=\"[{v6}]:1\""),
                })
                .collect::<Vec<_>>()
                .join(", ");
            prop_assert_eq!(fors(&value), Ok(addrs));
        }
    }
}
