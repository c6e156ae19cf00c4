use super::{
    expiry::{MAX_CLOCK_SKEW, within_skew},
    *,
};

const POLICY: RefreshPolicy = RefreshPolicy {
    refresh_ahead: Duration::from_secs(30),
    jitter: Duration::from_secs(10),
};

fn parse(json: &str) -> Result<TokenResponse, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn parses_expires_in_as_number_or_string() {
    let a = parse(r#"{"access_token":"t","expires_in":3600}"#).unwrap();
    let b = parse(r#"{"access_token":"t","expires_in":"1800"}"#).unwrap();
    assert_eq!(a.expires_in(), Some(Duration::from_secs(3600)));
    assert_eq!(b.expires_in(), Some(Duration::from_secs(1800)));
}

#[test]
fn parses_expires_at_and_missing_expiry() {
    let a = parse(r#"{"access_token":"t","expires_at":2000000000}"#).unwrap();
    assert_eq!(
        a.expires_at(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
    );
    let b = parse(r#"{"access_token":"t"}"#).unwrap();
    assert_eq!(b.expires_in(), None);
    assert_eq!(b.expires_at(), None);
    let c = parse(r#"{"access_token":"t","expires_in":null}"#).unwrap();
    assert_eq!(c.expires_in(), None);
}

#[test]
fn keeps_extra_fields() {
    let r = parse(
        r#"{"access_token":"t","refresh_token":"r","scope":"all","token_type":"Bearer","role":"admin","n":1}"#,
    )
    .unwrap();
    assert_eq!(r.refresh_token(), Some("r"));
    assert_eq!(r.scope(), Some("all"));
    assert_eq!(r.extra().len(), 2);
    assert_eq!(r.extra()["role"], "admin");
}

#[test]
fn rejects_unusable_numbers() {
    for bad in [r#"-5"#, r#""soon""#, r#"true"#, r#"1e400"#] {
        let json = format!(r#"{{"access_token":"t","expires_in":{bad}}}"#);
        assert!(parse(&json).is_err(), "{bad}");
    }
    assert!(parse(r#"{"expires_in":5}"#).is_err());
}

#[tokio::test(start_paused = true)]
async fn margin_is_capped_at_half_the_life() {
    let now = Instant::now();
    let long = POLICY.refresh_at(now, now + Duration::from_secs(3600), 0.0);
    assert_eq!(long, now + Duration::from_secs(3570));
    let short = POLICY.refresh_at(now, now + Duration::from_secs(10), 0.0);
    assert_eq!(short, now + Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn jitter_stays_within_bounds() {
    let now = Instant::now();
    let exp = now + Duration::from_secs(3600);
    let earliest = POLICY.refresh_at(now, exp, 0.999_999);
    assert!(earliest >= now + Duration::from_secs(3560));
    assert!(earliest < now + Duration::from_secs(3570));
    // A short token's jitter is at most half its margin.
    let exp = now + Duration::from_secs(4);
    let t = POLICY.refresh_at(now, exp, 0.999_999);
    assert!(t >= now + Duration::from_secs(1) && t <= now + Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn builds_a_sensitive_bearer_header() {
    let resp = TokenResponse::new("abc").with_token_type("bEaReR");
    let token = Token::from_response(resp, Instant::now(), &POLICY, None, 0.5).unwrap();
    assert_eq!(token.header_value(), "Bearer abc");
    assert!(token.header_value().is_sensitive());
    assert_eq!(token.expires_at(), None);
    assert_eq!(token.refresh_at(), None);
}

#[tokio::test(start_paused = true)]
async fn rejects_what_cannot_be_sent() {
    let cases = [
        (TokenResponse::new(""), TokenErrorKind::InvalidResponse),
        (
            TokenResponse::new("a").with_token_type("mac"),
            TokenErrorKind::InvalidResponse,
        ),
        (TokenResponse::new("a\r\nb"), TokenErrorKind::InvalidToken),
        (
            TokenResponse::new("t\u{f6}k\u{e9}n"),
            TokenErrorKind::InvalidToken,
        ),
        (TokenResponse::new("a\u{7f}b"), TokenErrorKind::InvalidToken),
        (
            TokenResponse::new("a").with_expires_in(Duration::ZERO),
            TokenErrorKind::InvalidResponse,
        ),
        (
            TokenResponse::new("a").with_expires_at(SystemTime::now() - Duration::from_secs(5)),
            TokenErrorKind::InvalidResponse,
        ),
    ];
    for (resp, kind) in cases {
        let err = Token::from_response(resp, Instant::now(), &POLICY, None, 0.5).unwrap_err();
        assert_eq!(err.kind(), kind);
    }
}

#[tokio::test(start_paused = true)]
async fn expires_in_counts_from_when_the_request_left() {
    let issued = Instant::now();
    // The token endpoint took 5 s to answer.
    tokio::time::advance(Duration::from_secs(5)).await;
    let resp = TokenResponse::new("a").with_expires_in(Duration::from_secs(60));
    let token = Token::from_response(resp, issued, &POLICY, None, 0.0).unwrap();
    assert_eq!(token.expires_at(), Some(issued + Duration::from_secs(60)));
}

#[tokio::test(start_paused = true)]
async fn expires_at_is_read_against_the_servers_clock() {
    let hour = Duration::from_secs(3600);
    let skew = Duration::from_secs(600);
    for server_now in [SystemTime::now() + skew, SystemTime::now() - skew] {
        let issued = Instant::now();
        let resp = TokenResponse::new("a")
            .with_expires_at(server_now + hour)
            .with_server_date(server_now);
        let token = Token::from_response(resp, issued, &POLICY, None, 0.0).unwrap();
        assert_eq!(token.expires_at(), Some(issued + hour), "{server_now:?}");
    }
    // Without the server's date, a server clock 10 minutes ahead would make us hold
    // the token 10 minutes too long; this is what the correction prevents.
    let resp = TokenResponse::new("a").with_expires_at(SystemTime::now() + skew + hour);
    let token = Token::from_response(resp, Instant::now(), &POLICY, None, 0.0).unwrap();
    assert!(token.expires_at().unwrap() > Instant::now() + hour);
    // A server clock far behind ours no longer makes every token look expired.
    let server_now = SystemTime::now() - 2 * hour;
    let resp = TokenResponse::new("a")
        .with_expires_at(server_now + hour)
        .with_server_date(server_now);
    assert!(Token::from_response(resp, Instant::now(), &POLICY, None, 0.0).is_ok());
}

#[tokio::test(start_paused = true)]
async fn access_tokens_must_be_bearer_tokens() {
    for bad in [
        "abc, Basic Zm9vOmJhcg==",
        "abc\tdef",
        " ",
        "abc def",
        "a,b",
        "a;b",
        "=",
        "=abc",
        "a=b",
        "\"abc\"",
        "a\\b",
    ] {
        let err = Token::from_response(TokenResponse::new(bad), Instant::now(), &POLICY, None, 0.5)
            .unwrap_err();
        assert_eq!(err.kind(), TokenErrorKind::InvalidToken, "{bad:?}");
    }
    for good in [
        "a",
        "A-b.c_d~e+f/g",
        "Zm9vOmJhcg==",
        "eyJ0.eyJ1.c2ln",
        "x=",
        "token-for-https://pbx-a.example.com:443",
        "user@realm!#$%&'()*<>?[]^`{|}",
    ] {
        let token =
            Token::from_response(TokenResponse::new(good), Instant::now(), &POLICY, None, 0.5)
                .unwrap();
        assert_eq!(token.access_token(), good);
    }
}

#[tokio::test(start_paused = true)]
async fn the_clock_correction_is_at_most_a_day() {
    let minute = Duration::from_secs(60);
    // A server clock in the year 2000 and a token that expires a minute from now.
    let year_2000 = SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800);
    let resp = TokenResponse::new("a")
        .with_expires_at(SystemTime::now() + minute)
        .with_server_date(year_2000);
    let issued = Instant::now();
    let token = Token::from_response(resp, issued, &POLICY, None, 0.0).unwrap();
    let life = token.expires_at().unwrap() - issued;
    assert!(life <= MAX_CLOCK_SKEW + minute, "{life:?}");
    assert!(life >= MAX_CLOCK_SKEW, "{life:?}");
    // A server clock years ahead only shortens: an hour on its clock is an hour.
    let far_ahead = SystemTime::now() + 1000 * MAX_CLOCK_SKEW;
    let hour = Duration::from_secs(3600);
    let resp = TokenResponse::new("a")
        .with_expires_at(far_ahead + hour)
        .with_server_date(far_ahead);
    let issued = Instant::now();
    let token = Token::from_response(resp, issued, &POLICY, None, 0.0).unwrap();
    assert_eq!(token.expires_at(), Some(issued + hour));
    let now = SystemTime::UNIX_EPOCH + 2 * MAX_CLOCK_SKEW;
    assert_eq!(
        within_skew(SystemTime::UNIX_EPOCH, now),
        SystemTime::UNIX_EPOCH + MAX_CLOCK_SKEW
    );
    assert_eq!(within_skew(now + hour, now), now + hour);
}

#[test]
fn lifetimes_too_long_for_a_duration_saturate() {
    for huge in [
        "1e300",
        "18446744073709551616",
        r#""99999999999999999999999""#,
    ] {
        let json = format!(r#"{{"access_token":"t","expires_in":{huge}}}"#);
        let r = parse(&json).unwrap();
        assert_eq!(r.expires_in(), Some(Duration::MAX), "{huge}");
    }
    for bad in [r#""inf""#, r#""NaN""#, r#""-1e300""#] {
        let json = format!(r#"{{"access_token":"t","expires_in":{bad}}}"#);
        assert!(parse(&json).is_err(), "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn absurd_lifetime_does_not_overflow() {
    let resp = TokenResponse::new("a").with_expires_in(Duration::MAX);
    let token = Token::from_response(resp, Instant::now(), &POLICY, None, 0.5).unwrap();
    assert_eq!(token.expires_at(), None);
}

#[tokio::test(start_paused = true)]
async fn keeps_previous_refresh_token_when_none_is_sent() {
    let issued = Instant::now();
    let t = Token::from_response(
        TokenResponse::new("a"),
        issued,
        &POLICY,
        Some("old".into()),
        0.0,
    )
    .unwrap();
    assert_eq!(t.refresh_token.as_deref(), Some("old"));
    let resp = TokenResponse::new("a").with_refresh_token("new");
    let t = Token::from_response(resp, issued, &POLICY, Some("old".into()), 0.0).unwrap();
    assert_eq!(t.refresh_token.as_deref(), Some("new"));
}

#[test]
fn debug_hides_secrets() {
    let resp = TokenResponse::new("s3cret-access").with_refresh_token("s3cret-refresh");
    let out = format!("{resp:?}");
    assert!(!out.contains("s3cret"), "{out}");
}
