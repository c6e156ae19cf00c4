use super::*;

#[test]
fn matches_scheme_host_and_port() {
    let o = Origin::try_from("https://pbx.example.com:8887").unwrap();
    for yes in [
        "https://pbx.example.com:8887/api/x",
        "HTTPS://PBX.EXAMPLE.COM:8887",
    ] {
        assert!(o.matches(&yes.parse().unwrap()), "{yes}");
    }
    for no in [
        "http://pbx.example.com:8887/",
        "https://pbx.example.com/",
        "https://evil.example.com:8887/",
        "https://pbx.example.com.evil.com:8887/",
        "/relative",
    ] {
        assert!(!o.matches(&no.parse().unwrap()), "{no}");
    }
    let default = Origin::try_from("http://127.0.0.1").unwrap();
    assert!(default.matches(&"http://127.0.0.1:80/x".parse().unwrap()));
    assert_eq!(default.to_string(), "http://127.0.0.1:80");
}

#[test]
fn a_port_is_read_as_http_reads_it() {
    let o = Origin::try_from("https://pbx.example.com:80").unwrap();
    for yes in [
        "https://pbx.example.com:000080/",
        "https://pbx.example.com:0000000000000080/",
        "https://pbx.example.com:+80/",
        "https://user:443@pbx.example.com:80/",
    ] {
        assert!(o.matches(&yes.parse().unwrap()), "{yes}");
        assert_eq!(Origin::try_from(yes).unwrap(), o, "{yes}");
    }
    let default = Origin::try_from("https://pbx.example.com").unwrap();
    for no_port in [
        "https://pbx.example.com:/",
        "https://pbx.example.com:65536/",
        "https://pbx.example.com:0000065536/",
        "https://user:80@pbx.example.com/",
    ] {
        assert!(!o.matches(&no_port.parse().unwrap()), "{no_port}");
        assert_eq!(Origin::try_from(no_port).unwrap(), default, "{no_port}");
    }
}

#[test]
fn odd_authorities_are_read_as_http_reads_them() {
    // A host not in brackets ends at its first `:`, even with a second one `http`
    // accepts after a `]`.
    for uri in [
        "http://[@::]/",
        "http://a@b::]/",
        "http://:80/",
        "http://[::1]@h:1/",
    ] {
        if let Ok(uri) = uri.parse::<Uri>() {
            assert_eq!(parts(&uri), as_http_reads(&uri), "{uri}");
        }
    }
}

/// What `http` reads: its accessors, one search each.
fn as_http_reads(uri: &Uri) -> Option<(&str, &str, u16)> {
    let scheme = uri.scheme_str()?;
    Some((
        scheme,
        uri.host()?,
        uri.port_u16().or_else(|| default_port(scheme))?,
    ))
}

/// Whether `origin` is where `uri` goes, as `http`'s accessors read it.
fn matches_as_http_reads(origin: &Origin, uri: &Uri) -> bool {
    as_http_reads(uri)
        .is_some_and(|(scheme, host, port)| Origin::from_parts(scheme, host, port) == *origin)
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(10_000))]

    /// Any authority `http` accepts, made of the bytes that matter to it (`@`, `:`,
    /// brackets, `+`, digits, `%`) and a few others.
    #[test]
    fn parts_are_what_http_reads(
        scheme in proptest::sample::select(vec!["http", "https", "ws", "WSS", "ftp"]),
        authority in "[a-cA-C0-9:@.%+\\[\\]-]{0,24}",
    ) {
        if let Ok(uri) = format!("{scheme}://{authority}/x").parse::<Uri>() {
            proptest::prop_assert_eq!(parts(&uri), as_http_reads(&uri), "{}", uri);
        }
    }

    /// Authorities shaped like real ones: user info, a name or an IP literal, and a port
    /// with zeros, a sign, or out of range.
    #[test]
    fn parts_of_real_looking_authorities_are_what_http_reads(
        user in proptest::sample::select(vec!["", "u@", "u:p@", "u:80@", "a@b@", ":@"]),
        host in proptest::sample::select(vec![
            "pbx.example.com", "PBX.Example.com", "127.0.0.1", "[::1]", "[2001:DB8::a]",
            "[::ffff:1.2.3.4]", "",
        ]),
        port in proptest::option::of("[+]?0{0,9}[0-9]{0,6}"),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        if let Ok(uri) = format!("https://{user}{host}{port}/").parse::<Uri>() {
            proptest::prop_assert_eq!(parts(&uri), as_http_reads(&uri), "{}", uri);
        }
    }

    /// `matches` (which reads most authorities without `parts`) says what `http` reads.
    #[test]
    fn matches_is_what_http_reads(
        scheme in proptest::sample::select(vec!["http", "https", "HTTPS", "wss", "ftp"]),
        user in proptest::sample::select(vec!["", "", "u@", "u:p@", "pbx.example.com:80@", "[::1]:443@"]),
        host in proptest::sample::select(vec![
            "pbx.example.com", "PBX.example.com", "pbx.example.co", "pbx.example.com.x",
            "[::1]", "[::1]]", "",
        ]),
        port in proptest::option::of("[+]?0{0,9}[0-9]{0,6}|[0-9]{0,3}[:@a-z][0-9]{0,3}"),
        origin in proptest::sample::select(vec![
            "https://pbx.example.com", "https://pbx.example.com:80", "http://pbx.example.com",
            "https://pbx.example.com:8887", "https://[::1]", "http://[::1]:8080",
            "ftp://pbx.example.com:21",
        ]),
    ) {
        let origin = Origin::try_from(origin).unwrap();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        if let Ok(uri) = format!("{scheme}://{user}{host}{port}/").parse::<Uri>() {
            proptest::prop_assert_eq!(
                origin.matches(&uri),
                matches_as_http_reads(&origin, &uri),
                "{} {}", origin, uri
            );
        }
    }
}

#[test]
fn same_bytes_is_slice_equality() {
    let a = b"abcdefghijklmnopqrstu";
    for n in 0..=a.len() {
        let mut b = a[..n].to_vec();
        assert!(same_bytes(&a[..n], &b), "{n}");
        for i in 0..n {
            b[i] ^= 1;
            assert!(!same_bytes(&a[..n], &b), "{n} {i}");
            b[i] ^= 1;
        }
        assert!(!same_bytes(&a[..n], &a[..n.saturating_sub(1)]) || n == 0);
    }
}

#[test]
fn short_words_are_the_bytes_zero_padded() {
    let bytes = b"abcdefghij";
    for n in 0..=10 {
        let (w, rest) = word(&bytes[..n]);
        let mut buf = [0; 8];
        let k = n.min(8);
        buf[..k].copy_from_slice(&bytes[..k]);
        assert_eq!(w, u64::from_le_bytes(buf), "{n}");
        assert_eq!(rest, &bytes[k..n]);
    }
}

#[test]
fn zero_bytes_are_found_exactly() {
    for b in 0..=255u8 {
        for at in 0..8 {
            let mut bytes = [b'x'; 8];
            bytes[at] = b;
            let found = zero_bytes(u64::from_le_bytes(bytes) ^ (ONES * u64::from(b':')));
            let want = if b == b':' { 0x80u64 << (8 * at) } else { 0 };
            assert_eq!(found, want, "{b} at {at}");
        }
    }
}

#[test]
fn rejects_what_is_not_an_origin() {
    for bad in ["", "/path", "pbx.example.com", "ftp2://x", "://x"] {
        assert!(Origin::try_from(bad).is_err(), "{bad}");
    }
}
