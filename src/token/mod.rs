//! What providers return ([`TokenResponse`]) and what the cache keeps and sends ([`Token`]).

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use http::HeaderValue;
use serde_json::{Map, Value};
use tokio::time::Instant;
use zeroize::Zeroize;

use crate::{
    clock,
    error::{Reason, TokenError, TokenErrorKind},
    policy::RefreshPolicy,
};

mod response;

pub use response::TokenResponse;
#[cfg_attr(not(feature = "oauth2"), allow(unused_imports))]
pub(crate) use response::{seconds, unix_seconds, unix_time};

/// What the header value starts with.
const BEARER: &str = "Bearer ";

/// The most that a token response's `Date` (see [`TokenResponse::with_server_date`]) may
/// lengthen the life read from its `expires_at`: a day.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether `token` can be sent as a bearer token: RFC 6750's `b64token`,
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`, widened to the other
/// visible ASCII characters that neither separate nor quote the parts of an `Authorization`
/// header (tokens with a `:` or a `@` are met in the wild). Refused: anything but visible
/// ASCII (a space or a tab among them), `,` (which starts another credential: `abc, Basic
/// …`), `;`, `"` and `\`, and `=` anywhere but in the trailing padding (where `abc=def`
/// reads as a parameter).
fn is_bearer_token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b';' | b'"' | b'\\' | b'='))
}

/// A `TokenError` of kind [`InvalidResponse`](TokenErrorKind::InvalidResponse), for `why`.
fn invalid_response(why: &'static str) -> TokenError {
    TokenError::with_source(TokenErrorKind::InvalidResponse, Reason(why))
}

/// Refuses a response with an empty access token or a token type other than bearer.
fn check_bearer_response(response: &TokenResponse) -> Result<(), TokenError> {
    if response.access_token.is_empty() {
        return Err(invalid_response("the access token is empty"));
    }
    match response.token_type.as_deref() {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("bearer") => Ok(()),
        Some(_) => Err(invalid_response("the token type is not bearer")),
    }
}

/// When the token of `response`, requested at `issued`, expires: the earlier of what
/// `expires_in` and `expires_at` say, or `None` when neither does (or the lifetime overflows
/// the clock). A lifetime that has already run out is an error.
fn expiry(response: &TokenResponse, issued: Instant) -> Result<Option<Instant>, TokenError> {
    let mut expires_at = None;
    if let Some(expires_in) = response.expires_in {
        if expires_in.is_zero() {
            return Err(invalid_response("the token has already expired"));
        }
        // An absurd lifetime that overflows the clock is treated as no expiry.
        expires_at = issued.checked_add(expires_in);
    }
    if let Some(at) = response.expires_at {
        // Read against the server's clock when it said what time it was; the remaining
        // life then counts from when the request left, like `expires_in`.
        let (server_now, from) = match response.server_date {
            Some(date) => (within_skew(date, SystemTime::now()), issued),
            None => (SystemTime::now(), clock::now()),
        };
        let remaining = at
            .duration_since(server_now)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| invalid_response("the token has already expired"))?;
        if let Some(at) = from.checked_add(remaining) {
            expires_at = Some(expires_at.map_or(at, |e: Instant| e.min(at)));
        }
    }
    Ok(expires_at)
}

/// `Bearer <access_token>`, marked sensitive; an access token that is not a bearer token
/// (RFC 6750's b64token) is an error of kind [`InvalidToken`](TokenErrorKind::InvalidToken).
fn bearer_header(access_token: &str) -> Result<HeaderValue, TokenError> {
    // `HeaderValue` accepts bytes above 0x7F (obs-text), but a bearer token is ASCII
    // (RFC 6750's b64token) and servers refuse or misread anything else, so require what
    // `HeaderValue::to_str` accepts: visible ASCII, space and tab.
    let mut header = HeaderValue::try_from(format!("{BEARER}{access_token}"))
        .ok()
        .filter(|h| h.to_str().is_ok())
        .ok_or_else(|| {
            TokenError::with_source(
                TokenErrorKind::InvalidToken,
                Reason("the access token holds characters not allowed in a header"),
            )
        })?;
    // And a bearer token only: a comma, a space or a tab would let a token add
    // credentials of another scheme to the header (`abc, Basic …`), and servers split on
    // them.
    if !is_bearer_token(access_token) {
        return Err(TokenError::with_source(
            TokenErrorKind::InvalidToken,
            Reason("the access token is not a bearer token (RFC 6750 b64token)"),
        ));
    }
    header.set_sensitive(true);
    Ok(header)
}

/// A token held by the cache and sent with requests.
///
/// Read it through [`TokenCache`](crate::TokenCache). Its `Debug` output hides the access
/// and refresh tokens; [`access_token`](Token::access_token) reveals the access token when
/// asked explicitly.
#[derive(Clone)]
pub struct Token {
    /// `Bearer <access token>`: the one copy of the access token the cache holds (besides
    /// each thread's copy of this header).
    pub(crate) header: HeaderValue,
    pub(crate) refresh_token: Option<String>,
    token_type: Option<String>,
    scope: Option<String>,
    extra: Map<String, Value>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) refresh_at: Option<Instant>,
    pub(crate) generation: u64,
}

impl Token {
    /// Turns a provider's response into a token ready to send.
    ///
    /// `issued` is when the token request was sent: the server started the token's clock no
    /// earlier, so lifetimes counted from it never overrun the real expiry. A response
    /// without a refresh token keeps `previous_refresh_token`.
    pub(crate) fn from_response(
        mut response: TokenResponse,
        issued: Instant,
        policy: &RefreshPolicy,
        previous_refresh_token: Option<String>,
        random: f64,
    ) -> Result<Self, TokenError> {
        check_bearer_response(&response)?;
        let expires_at = expiry(&response, issued)?;
        let now = clock::now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(invalid_response("the token has already expired"));
        }
        let header = bearer_header(&response.access_token)?;
        Ok(Self {
            header,
            refresh_at: expires_at.map(|e| policy.refresh_at(now, e, random)),
            expires_at,
            refresh_token: response.refresh_token.take().or(previous_refresh_token),
            token_type: response.token_type.take(),
            scope: response.scope.take(),
            extra: std::mem::take(&mut response.extra),
            generation: 0,
        })
    }

    /// The token as a response again, with an absolute expiry, for a
    /// [`TokenStore`](crate::store::TokenStore).
    pub(crate) fn to_response(&self) -> TokenResponse {
        let expires_at = self
            .expires_at
            .and_then(|e| SystemTime::now().checked_add(e.saturating_duration_since(clock::now())));
        TokenResponse {
            access_token: self.access_token().to_owned(),
            token_type: self.token_type.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_in: None,
            expires_at,
            server_date: None,
            scope: self.scope.clone(),
            extra: self.extra.clone(),
        }
    }

    /// The access token. This is a secret: don't log it.
    pub fn access_token(&self) -> &str {
        // The header was made from `Bearer ` and a token of visible ASCII.
        std::str::from_utf8(&self.header.as_bytes()[BEARER.len()..]).unwrap_or_default()
    }

    /// Whether the cache holds a refresh token for this token.
    pub fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// When the token expires, or `None` if the server gave no expiry. For the time left,
    /// see [`expires_in`](Self::expires_in).
    ///
    /// The instant is a [`tokio::time::Instant`], not a `std::time::Instant` (convert with
    /// [`into_std`](tokio::time::Instant::into_std)), on the cache's clock, which counts the time the
    /// machine spent suspended: it is tokio's clock moved on by that time, and equals it on a
    /// machine that never slept. A token's expiry and refresh point are therefore reached
    /// after a suspend, although tokio's own clock (the monotonic clock) stood still.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The time left before the token expires: zero once it has, `None` if the server gave
    /// no expiry. Reads the cache's clock (a system call, well under a microsecond).
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_at
            .map(|at| at.saturating_duration_since(clock::now()))
    }

    /// When the cache will start refreshing the token, or `None` if it never expires; on the
    /// cache's clock, as for [`expires_at`](Self::expires_at).
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// The token type the server sent, if any.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// The granted scope, if the server sent one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Every non-standard field of the token response (PortSIP's user role, say).
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// A number that grows with every token the cache obtains.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The `Authorization` header value sent with requests, marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }
}

/// The refresh token is wiped from memory when the token is dropped.
impl Drop for Token {
    fn drop(&mut self) {
        if let Some(refresh_token) = &mut self.refresh_token {
            refresh_token.zeroize();
        }
    }
}

/// `server_date`, or [`MAX_CLOCK_SKEW`] before `now` if it is earlier than that: a server
/// clock behind ours lengthens the token's life, and by no more than a day.
fn within_skew(server_date: SystemTime, now: SystemTime) -> SystemTime {
    let earliest = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(now);
    server_date.max(earliest)
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &Redacted)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| Redacted),
            )
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .field("generation", &self.generation)
            .finish()
    }
}

/// Printed in place of a secret.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let err =
                Token::from_response(TokenResponse::new(bad), Instant::now(), &POLICY, None, 0.5)
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
}
