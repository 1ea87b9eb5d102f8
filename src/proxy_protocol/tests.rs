use super::*;
use proptest::prelude::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn header(buf: &[u8]) -> Header {
    match parse(buf) {
        Parsed::Header(h) => h,
        other => panic!("{:?}: {other:?}", buf.escape_ascii().to_string()),
    }
}

fn refused(buf: &[u8]) -> Refusal {
    match parse(buf) {
        Parsed::Refused(r) => r,
        other => panic!("{:?}: {other:?}", buf.escape_ascii().to_string()),
    }
}

/// A v2 header: `ver_cmd`, `fam`, the payload (addresses and TLVs).
fn v2(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn inet(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut a = src.to_vec();
    a.extend_from_slice(&[127, 0, 0, 1]);
    a.extend_from_slice(&port.to_be_bytes());
    a.extend_from_slice(&443u16.to_be_bytes());
    a
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn ssl_tlv(client: u8) -> Vec<u8> {
    let mut value = vec![client, 0, 0, 0, 0];
    // A sub-TLV (PP2_SUBTYPE_SSL_VERSION), as HAProxy sends.
    value.extend(tlv(0x21, b"TLSv1.3"));
    tlv(PP2_TYPE_SSL, &value)
}

#[test]
fn v1_tcp4_and_tcp6_name_the_client() {
    let line = b"PROXY TCP4 192.0.2.7 127.0.0.1 56324 8080\r\nGET / HTTP/1.1\r\n";
    let h = header(line);
    assert_eq!(h.version, Version::V1);
    assert_eq!(h.len, line.iter().position(|&b| b == b'\n').unwrap() + 1);
    assert_eq!(
        h.source,
        Source::Client {
            ip: ip("192.0.2.7"),
            port: 56324
        }
    );
    assert_eq!(h.client_tls, ClientTls::Unstated);
    let h = header(b"PROXY TCP6 2001:db8::7 ::1 65535 443\r\n");
    assert_eq!(
        h.source,
        Source::Client {
            ip: ip("2001:db8::7"),
            port: 65535
        }
    );
}

#[test]
fn v1_unknown_keeps_the_peer() {
    for line in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n",
    ] {
        let h = header(line);
        assert_eq!(h.source, Source::Proxy);
        assert_eq!(h.len, line.len());
    }
}

#[test]
fn v1_bad_lines_are_named() {
    for (line, why) in [
        (
            &b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"[..],
            Refusal::V1UnknownFamily,
        ),
        (
            b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
            Refusal::V1UnknownFamily,
        ),
        (
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            Refusal::V1UnknownFamily,
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", Refusal::V1Malformed),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            Refusal::V1Malformed,
        ),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", Refusal::V1Malformed),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", Refusal::V1Malformed),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", Refusal::V1Malformed),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", Refusal::V1Malformed),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
            Refusal::V1Malformed,
        ),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            Refusal::V1Malformed,
        ),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", Refusal::V1Malformed),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", Refusal::V1Malformed),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", Refusal::V1Malformed),
        (
            b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
            Refusal::V1Malformed,
        ),
        (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", Refusal::BadSignature),
        (b"PROXZ TCP4", Refusal::BadSignature),
    ] {
        assert_eq!(refused(line), why, "{}", line.escape_ascii());
    }
}

#[test]
fn v1_needs_crlf_within_107_bytes() {
    // 107 bytes with the CRLF: accepted (UNKNOWN takes anything up to CRLF).
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(105, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(line.len(), V1_MAX_LINE);
    assert_eq!(header(&line).len, V1_MAX_LINE);
    // One more: refused, whether the CRLF comes or not.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(105, b'x');
    assert_eq!(parse(&long), Parsed::Partial);
    long.push(b'x');
    assert_eq!(refused(&long), Refusal::V1TooLong);
    long.extend_from_slice(b"\r\n");
    assert_eq!(refused(&long), Refusal::V1TooLong);
    // No CR at all in 107 bytes.
    let mut endless = b"PROXY TCP4 ".to_vec();
    endless.resize(V1_MAX_LINE, b'1');
    assert_eq!(refused(&endless), Refusal::V1TooLong);
    endless.truncate(V1_MAX_LINE - 2);
    assert_eq!(parse(&endless), Parsed::Partial);
}

#[test]
fn v2_inet_inet6_with_and_without_the_ssl_tlv() {
    let mut payload = inet([203, 0, 113, 9], 40000);
    payload.extend(tlv(0x04, b"noop"));
    payload.extend(ssl_tlv(PP2_CLIENT_SSL | 0x02));
    let mut bytes = v2(0x21, 0x11, &payload);
    let len = bytes.len();
    bytes.extend_from_slice(b"GET /");
    let h = header(&bytes);
    assert_eq!(h.version, Version::V2);
    assert_eq!(h.len, len);
    assert_eq!(
        h.source,
        Source::Client {
            ip: ip("203.0.113.9"),
            port: 40000
        }
    );
    assert_eq!(h.client_tls, ClientTls::Yes);

    let mut payload = inet([203, 0, 113, 9], 1);
    payload.extend(ssl_tlv(0));
    assert_eq!(header(&v2(0x21, 0x11, &payload)).client_tls, ClientTls::No);

    let mut six = ip("2001:db8::9")
        .to_string()
        .parse::<Ipv6Addr>()
        .unwrap()
        .octets()
        .to_vec();
    six.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    six.extend_from_slice(&[0x1f, 0x90, 0x01, 0xbb]);
    let h = header(&v2(0x21, 0x21, &six));
    assert_eq!(
        h.source,
        Source::Client {
            ip: ip("2001:db8::9"),
            port: 8080
        }
    );
    assert_eq!(h.client_tls, ClientTls::Unstated);
}

#[test]
fn v2_local_unspec_and_unix_keep_the_peer() {
    // LOCAL (a health check), with or without addresses.
    assert_eq!(header(&v2(0x20, 0x00, &[])).source, Source::Proxy);
    assert_eq!(
        header(&v2(0x20, 0x11, &inet([1, 2, 3, 4], 5))).source,
        Source::Proxy
    );
    // PROXY with UNSPEC, and with UNIX paths.
    assert_eq!(header(&v2(0x21, 0x00, &[])).source, Source::Proxy);
    assert_eq!(header(&v2(0x21, 0x31, &[0; 216])).source, Source::Proxy);
}

#[test]
fn v2_bad_headers_are_named() {
    let addresses = inet([1, 2, 3, 4], 5);
    for (bytes, why) in [
        (v2(0x11, 0x11, &addresses), Refusal::V2UnknownVersion),
        (v2(0x31, 0x11, &addresses), Refusal::V2UnknownVersion),
        (v2(0x22, 0x11, &addresses), Refusal::V2UnknownCommand),
        (v2(0x21, 0x41, &addresses), Refusal::V2UnknownFamily),
        (v2(0x21, 0x12, &addresses), Refusal::V2UnsupportedTransport),
        (v2(0x21, 0x13, &addresses), Refusal::V2UnsupportedTransport),
        (v2(0x21, 0x11, &addresses[..11]), Refusal::V2Truncated),
        (v2(0x21, 0x21, &addresses), Refusal::V2Truncated),
        (v2(0x21, 0x31, &[0; 215]), Refusal::V2Truncated),
        (
            v2(
                0x21,
                0x11,
                &[addresses.clone(), vec![0x04, 0, 9, 1]].concat(),
            ),
            Refusal::V2BadTlv,
        ),
        (
            v2(0x21, 0x11, &[addresses.clone(), vec![0x04, 0]].concat()),
            Refusal::V2BadTlv,
        ),
        (
            v2(
                0x21,
                0x11,
                &[addresses.clone(), tlv(PP2_TYPE_SSL, &[1, 0, 0])].concat(),
            ),
            Refusal::V2BadTlv,
        ),
        (
            v2(
                0x21,
                0x11,
                &[addresses.clone(), vec![0; V2_MAX_PAYLOAD]].concat(),
            ),
            Refusal::V2TooLong,
        ),
    ] {
        assert_eq!(
            refused(&bytes),
            why,
            "{:?}",
            bytes.escape_ascii().to_string()
        );
    }
    let mut bad = V2_SIGNATURE.to_vec();
    bad[5] = b'X';
    assert_eq!(refused(&bad), Refusal::BadSignature);
}

#[test]
fn v2_declared_length_is_judged_from_the_prefix_alone() {
    // Too long: refused before the payload arrives.
    let mut prefix = V2_SIGNATURE.to_vec();
    prefix.extend_from_slice(&[0x21, 0x11, 0x08, 0x01]);
    assert_eq!(refused(&prefix), Refusal::V2TooLong);
    // The largest accepted length waits for its bytes.
    let mut prefix = V2_SIGNATURE.to_vec();
    prefix.extend_from_slice(&[0x21, 0x11]);
    prefix.extend_from_slice(&u16::try_from(V2_MAX_PAYLOAD).unwrap().to_be_bytes());
    assert_eq!(parse(&prefix), Parsed::Partial);
}

#[test]
fn other_bytes_are_no_proxy_header() {
    for bytes in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"\x16\x03\x01",
        b"POST / HTTP/1.1\r\n",
        b"PROPFIND / HTTP/1.1\r\n",
        b"PUT / HTTP/1.1\r\n",
        b"\r\nGET / HTTP/1.1\r\n",
    ] {
        assert_eq!(parse(bytes), Parsed::Absent, "{}", bytes.escape_ascii());
    }
    // Prefixes of a signature wait for more.
    for bytes in [&b""[..], b"P", b"PROX", b"PROXY", b"\r", b"\r\n\r\n\0"] {
        assert_eq!(parse(bytes), Parsed::Partial, "{}", bytes.escape_ascii());
    }
    assert_eq!(refused(b"\r\n\r\nGET"), Refusal::BadSignature);
}

/// Well-formed headers of both versions, as the proxies write them.
fn good_header() -> impl Strategy<Value = (Vec<u8>, Source)> {
    let v4 = (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, port)| {
        let ip = IpAddr::V4(Ipv4Addr::from(a));
        (
            format!("PROXY TCP4 {ip} 127.0.0.1 {port} 443\r\n").into_bytes(),
            Source::Client { ip, port },
        )
    });
    let v6 = (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, port)| {
        let ip = IpAddr::V6(Ipv6Addr::from(a));
        (
            format!("PROXY TCP6 {ip} ::1 {port} 443\r\n").into_bytes(),
            Source::Client { ip, port },
        )
    });
    let bin = (
        any::<[u8; 4]>(),
        any::<u16>(),
        proptest::collection::vec(
            (3u8..0x20, proptest::collection::vec(any::<u8>(), 0..40)),
            0..5,
        ),
    )
        .prop_map(|(a, port, tlvs)| {
            let mut payload = inet(a, port);
            for (kind, value) in tlvs {
                payload.extend(tlv(kind, &value));
            }
            (
                v2(0x21, 0x11, &payload),
                Source::Client {
                    ip: IpAddr::V4(Ipv4Addr::from(a)),
                    port,
                },
            )
        });
    prop_oneof![v4, v6, bin]
}

proptest! {
    /// Split anywhere, a good header is Partial until its last byte, then whole, and
    /// what follows is not part of it.
    #[test]
    fn good_headers_parse_whatever_the_split((bytes, source) in good_header(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        for cut in 0..bytes.len() {
            let got = parse(&bytes[..cut]);
            prop_assert!(
                got == Parsed::Partial || (cut == 0 && got == Parsed::Absent),
                "cut {} of {:?}: {:?}", cut, bytes.escape_ascii().to_string(), got
            );
        }
        let mut whole = bytes.clone();
        whole.extend_from_slice(&tail);
        match parse(&whole) {
            Parsed::Header(h) => {
                prop_assert_eq!(h.len, bytes.len());
                prop_assert_eq!(h.source, source);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    /// Any bytes: no panic, and a verdict that more bytes cannot change once given
    /// (only Partial may become something else).
    #[test]
    fn any_bytes_get_a_stable_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..300), more in proptest::collection::vec(any::<u8>(), 0..64)) {
        let first = parse(&bytes);
        let mut longer = bytes.clone();
        longer.extend_from_slice(&more);
        let later = parse(&longer);
        match first {
            Parsed::Partial => {}
            Parsed::Absent | Parsed::Refused(_) => prop_assert_eq!(first, later),
            Parsed::Header(h) => match later {
                Parsed::Header(l) => prop_assert_eq!(h, l),
                other => prop_assert!(false, "{:?} then {:?}", first, other),
            },
        }
    }

    /// Bytes after a signature: never Partial beyond the bounds.
    #[test]
    fn partial_is_bounded(tail in proptest::collection::vec(any::<u8>(), 0..4000), v2_sig in any::<bool>()) {
        let mut bytes = if v2_sig { V2_SIGNATURE.to_vec() } else { V1_SIGNATURE.to_vec() };
        bytes.extend_from_slice(&tail);
        if parse(&bytes) == Parsed::Partial {
            let bound = if v2_sig { V2_PREFIX_LEN + V2_MAX_PAYLOAD } else { V1_MAX_LINE - 1 };
            prop_assert!(bytes.len() < bound, "Partial at {} bytes", bytes.len());
        }
    }
}
