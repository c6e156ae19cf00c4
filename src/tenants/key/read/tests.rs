use super::*;
use crate::tenants::key::TenantKey;

fn hash(uri: &str, tenant: Option<&str>) -> Option<u64> {
    let uri: Uri = uri.parse().unwrap();
    let tenant = tenant.map(TenantId::new);
    let choice = Choice {
        tenant: tenant.as_ref(),
        scope: None,
    };
    Some(Target::of(Written::of(&uri)?)?.hash(7, choice))
}

#[test]
fn tenants_and_scopes_hash_apart() {
    let uri: Uri = "https://pbx.example.com".parse().unwrap();
    let target = Target::of(Written::of(&uri).unwrap()).unwrap();
    let (a, b) = (TenantId::new("a"), Scope::new("a"));
    let choices = [
        Choice::default(),
        Choice {
            tenant: Some(&a),
            scope: None,
        },
        Choice {
            tenant: None,
            scope: Some(&b),
        },
        Choice {
            tenant: Some(&a),
            scope: Some(&b),
        },
    ];
    for (i, x) in choices.iter().enumerate() {
        for (j, y) in choices.iter().enumerate() {
            let written = Written::of(&uri).unwrap();
            let (sx, sy) = (Spelling::of(written, *x), Spelling::of(written, *y));
            assert_eq!(target.hash(7, *x) == target.hash(7, *y), i == j, "{i} {j}");
            assert_eq!(sx.hash(7) == sy.hash(7), i == j, "{i} {j}");
            assert_eq!(sx.is(&sy), i == j, "{i} {j}");
        }
    }
}

#[test]
fn equal_keys_hash_alike() {
    let h = hash;
    assert_eq!(
        h("https://PBX.example.com/x", None),
        h("https://pbx.example.com:443", None)
    );
    assert_ne!(
        h("https://pbx.example.com", None),
        h("http://pbx.example.com", None)
    );
    assert_ne!(
        h("https://pbx.example.com", None),
        h("https://pbx.example.com", Some("a"))
    );
    assert_ne!(
        h("https://pbx.example.com", Some("a")),
        h("https://pbx.example.com", Some("b"))
    );
    assert_ne!(
        h("https://pbx-a.example.com", None),
        h("https://pbx-b.example.com", None)
    );
    assert_eq!(h("/relative", None), None);
    assert_eq!(h("ftp://x.example.com/", None), None);
}

#[test]
fn spellings_are_compared_and_hashed_byte_for_byte() {
    let uris: Vec<Uri> = [
        "https://pbx.example.com/a",
        "https://pbx.example.com:443/b",
        "HTTPS://PBX.example.com/",
        "http://pbx.example.com/",
        "https://pbx.example.con/",
        "ws://pbx.example.com/",
        "chrome-extension://pbx.example.com/",
        "chrome-extensioN://pbx.example.com/",
    ]
    .iter()
    .map(|u| u.parse().unwrap())
    .collect();
    let acme = TenantId::new("acme");
    let read = Scope::new("read");
    let spellings: Vec<Spelling<'_>> = uris
        .iter()
        .flat_map(|u| {
            let written = Written::of(u).unwrap();
            [
                Spelling::of(written, Choice::default()),
                Spelling::of(
                    written,
                    Choice {
                        tenant: Some(&acme),
                        scope: None,
                    },
                ),
                Spelling::of(
                    written,
                    Choice {
                        tenant: Some(&acme),
                        scope: Some(&read),
                    },
                ),
            ]
        })
        .collect();
    for (i, a) in spellings.iter().enumerate() {
        for (j, b) in spellings.iter().enumerate() {
            // The first path differs from the others', which no spelling reads.
            assert_eq!(a.is(b), i == j, "{i} {j}");
            assert_eq!(a.hash(7) == b.hash(7), i == j, "{i} {j}");
        }
    }
    let again: Uri = "https://pbx.example.com/other".parse().unwrap();
    let again = Spelling::of(Written::of(&again).unwrap(), Choice::default());
    assert!(again.is(&spellings[0]));
    assert_eq!(again.hash(7), spellings[0].hash(7));
}

#[test]
fn words_are_lowercased_and_searched_as_bytes_are() {
    for b in 0..=255u8 {
        let w = u64::from_le_bytes([b, b'A', b'z', b'@', b'[', 0xc3, b'Z', b'`']);
        let want = u64::from_le_bytes(
            [b, b'A', b'z', b'@', b'[', 0xc3, b'Z', b'`'].map(|c| c.to_ascii_lowercase()),
        );
        assert_eq!(lowercase(w), want, "{b}");
        let bytes = [b, b'x', b'y'];
        assert_eq!(contains_at(&bytes), b == b'@', "{b}");
    }
    assert!(contains_at(b"user:pw-long-enough@host"));
    assert!(!contains_at(b"pbx.example.com:8887"));
}

#[test]
fn targets_read_as_http_does() {
    for (uri, want) in [
        (
            "https://pbx.example.com:8887/api",
            "https://pbx.example.com:8887",
        ),
        ("HTTP://PBX.example.com/", "http://pbx.example.com:80"),
        (
            "http://user:pw@pbx.example.com:8080/",
            "http://pbx.example.com:8080",
        ),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://[::1]/", "http://[::1]:80"),
        ("https://127.0.0.1/x?y=1", "https://127.0.0.1:443"),
        (
            "https://u@a-much-longer-host-name.example.com:65535/",
            "https://a-much-longer-host-name.example.com:65535",
        ),
        ("ws://pbx.example.com/", "ws://pbx.example.com:80"),
        ("WSS://pbx.example.com/", "wss://pbx.example.com:443"),
        ("http://pbx.example.com:/", "http://pbx.example.com:80"),
        // Leading zeros, however many, and a sign: the port `http` reads.
        (
            "https://pbx.example.com:000080/",
            "https://pbx.example.com:80",
        ),
        (
            "https://pbx.example.com:0443/",
            "https://pbx.example.com:443",
        ),
        (
            "https://pbx.example.com:+8887/",
            "https://pbx.example.com:8887",
        ),
        // A port `http` cannot read is none: the scheme's default.
        (
            "https://pbx.example.com:65536/",
            "https://pbx.example.com:443",
        ),
        // The colon in the user info is no port's.
        (
            "https://a:80@pbx.example.com/",
            "https://pbx.example.com:443",
        ),
    ] {
        let parsed: Uri = uri.parse().unwrap();
        let target = Target::of(Written::of(&parsed).unwrap()).unwrap();
        let origin = target.to_origin();
        assert_eq!(origin.to_string(), want, "{uri}");
        assert_eq!(
            Some(&origin),
            Origin::try_from(&parsed).ok().as_ref(),
            "{uri}"
        );
        assert!(origin.matches(&parsed), "{uri}");
        assert!(target.is(&origin), "{uri}");
        assert!(Target::of_origin(&origin).is(&origin), "{uri}");
        assert_eq!(
            target.hash(7, Choice::default()),
            Target::of_origin(&origin).hash(7, Choice::default()),
            "{uri}"
        );
    }
    let key = TenantKey::new(Origin::try_from("https://pbx.example.com").unwrap(), None);
    assert_eq!(key.to_string(), "https://pbx.example.com:443");
}
