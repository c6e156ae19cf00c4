//! Property tests of the parsers that read what servers send: token responses (PortSIP's
//! two-factor answer among them), OAuth 2.0 and PortSIP error responses and
//! `WWW-Authenticate` challenges. Inputs are the seed corpus under
//! `tests/corpus/`, mutated, plus random bytes and generated JSON. Nothing may panic, a parsed
//! token response either yields a token that can be sent or a typed error, and error messages
//! stay short. A response that cannot be used, whether `serde` rejects it or the cache does,
//! fails with a `TokenError` of the kind its step gives, leaves no token in the cache, and the
//! next healthy login is used.
//!
//! The default run is short; run longer with, for example,
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz`.

use std::{
    collections::VecDeque,
    fs,
    path::Path,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::service_fn;
use tower_bearer_auth::{
    BearerAuthLayer, BearerChallenge, BoxError, TokenCache, TokenError, TokenErrorKind,
    TokenResponse,
    provider::{
        TokenProvider,
        oauth2::{OAuth2Error, OAuth2ErrorKind, OAuth2Provider},
        portsip::{
            PORTSIP_CLIENT_ID, PORTSIP_REVOKE_PATH, PORTSIP_TOKEN_PATH, PortSip, PortSipApi,
        },
        provider_fn,
    },
};

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut seeds: Vec<Vec<u8>> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A seed with a few random byte edits, or random bytes.
fn inputs(dir: &str) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8);
    let mutated = (prop::sample::select(seeds(dir)), edits).prop_map(|(mut s, edits)| {
        for (at, byte, op) in edits {
            let at = at % (s.len() + 1);
            match op {
                0 if at < s.len() => s[at] = byte,
                1 => s.insert(at, byte),
                _ if at < s.len() => {
                    s.remove(at);
                }
                _ => {}
            }
        }
        s
    });
    prop_oneof![3 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..256)]
}

/// JSON values of the kinds servers put in token fields, the odd ones included.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[0-9]{0,25}".prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::from),
        Just(json!([1, 2])),
        Just(json!({"a": 1})),
    ]
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The token a provider gives once it is healthy again.
const HEALTHY: &str = "healthy-token";

fn healthy() -> TokenResponse {
    TokenResponse::new(HEALTHY).with_expires_in(Duration::from_secs(3600))
}

/// Checks what follows a failed first login: a `TokenError` of one of `kinds`, no token in
/// the cache, and, once `healthy` is set, the next login's token.
async fn check_refused(
    cache: &TokenCache,
    err: &TokenError,
    kinds: &[TokenErrorKind],
    healthy: &AtomicBool,
) -> Result<(), TestCaseError> {
    prop_assert!(kinds.contains(&err.kind()), "{:?}: {err}", err.kind());
    prop_assert!(!err.to_string().is_empty());
    prop_assert!(cache.token().is_none(), "a token cached after {err}");
    // The provider answers well now: the next login (now, despite the backoff) is used.
    healthy.store(true, Ordering::SeqCst);
    let token = cache
        .refresh()
        .await
        .map_err(|e| TestCaseError::fail(format!("the healthy login failed: {e}")))?;
    prop_assert_eq!(token.header_value(), &format!("Bearer {HEALTHY}"));
    prop_assert!(cache.token().is_some());
    Ok(())
}

/// Puts `response` through a cache: a token that can be sent, or a typed error that caches
/// nothing.
fn through_cache(response: TokenResponse) -> Result<(), TestCaseError> {
    runtime().block_on(async move {
        let ok = Arc::new(AtomicBool::new(false));
        let layer = BearerAuthLayer::new(provider_fn({
            let ok = ok.clone();
            move || {
                let response = if ok.load(Ordering::SeqCst) {
                    healthy()
                } else {
                    response.clone()
                };
                async move { Ok::<_, BoxError>(response) }
            }
        }))
        .any_origin();
        let cache = layer.cache();
        match cache.get().await {
            Ok(token) => {
                let value = token.header_value();
                prop_assert!(value.is_sensitive());
                prop_assert!(value.as_bytes().starts_with(b"Bearer "));
                prop_assert!(cache.token().is_some());
            }
            Err(err) => {
                let kinds = [
                    TokenErrorKind::InvalidResponse,
                    TokenErrorKind::InvalidToken,
                ];
                check_refused(&cache, &err, &kinds, &ok).await?;
            }
        }
        Ok(())
    })
}

/// Puts a body that `serde` rejects as a token response through a provider that parses it as
/// a hand-written one would: the login fails with the parser's error as its cause.
fn rejected_by_serde(body: Vec<u8>) -> Result<(), TestCaseError> {
    runtime().block_on(async move {
        let ok = Arc::new(AtomicBool::new(false));
        let layer = BearerAuthLayer::new(provider_fn({
            let ok = ok.clone();
            move || {
                let parsed = if ok.load(Ordering::SeqCst) {
                    Ok(healthy())
                } else {
                    serde_json::from_slice::<TokenResponse>(&body).map_err(BoxError::from)
                };
                async move { parsed }
            }
        }))
        .any_origin();
        let cache = layer.cache();
        let err = match cache.get().await {
            Ok(_) => return Err(TestCaseError::fail("a token from a body serde rejects")),
            Err(err) => err,
        };
        let cause =
            std::error::Error::source(&err).and_then(|e| e.downcast_ref::<serde_json::Error>());
        prop_assert!(cause.is_some(), "the parser's error is the cause: {err:?}");
        check_refused(&cache, &err, &[TokenErrorKind::Login], &ok).await
    })
}

/// Puts `body` through `OAuth2Provider`, as a token endpoint's `200` answer: a token that can
/// be sent, or a typed error that caches nothing. The provider reads more than `serde` does
/// (`expires_in` as a string, say), so a body `serde` rejects may still give a token.
fn from_token_endpoint(body: Vec<u8>) -> Result<(), TestCaseError> {
    let ok = Arc::new(AtomicBool::new(false));
    let client = service_fn({
        let ok = ok.clone();
        move |_: Request<Full<Bytes>>| {
            let body = if ok.load(Ordering::SeqCst) {
                Bytes::from(format!(
                    r#"{{"access_token":"{HEALTHY}","expires_in":3600}}"#
                ))
            } else {
                Bytes::from(body.clone())
            };
            async move { Ok::<_, BoxError>(Response::new(Full::new(body))) }
        }
    });
    let provider = OAuth2Provider::password(client, "https://pbx.test:8887/token", "admin", "pw")
        .build()
        .unwrap();
    runtime().block_on(async move {
        let cache = BearerAuthLayer::new(provider).any_origin().cache();
        match cache.get().await {
            Ok(token) => {
                prop_assert!(token.header_value().is_sensitive());
                prop_assert!(cache.token().is_some());
            }
            Err(err) => {
                if err.kind() == TokenErrorKind::Login {
                    let kind = err.oauth2_error().map(|e| e.kind());
                    prop_assert!(
                        matches!(
                            kind,
                            Some(OAuth2ErrorKind::InvalidResponse | OAuth2ErrorKind::Server { .. })
                        ),
                        "{kind:?}"
                    );
                }
                let kinds = [
                    TokenErrorKind::Login,
                    TokenErrorKind::InvalidResponse,
                    TokenErrorKind::InvalidToken,
                ];
                check_refused(&cache, &err, &kinds, &ok).await?;
            }
        }
        Ok(())
    })
}

proptest! {
    #[test]
    fn token_responses_from_mutated_seeds(bytes in inputs("token_response")) {
        match serde_json::from_slice::<TokenResponse>(&bytes) {
            Ok(response) => through_cache(response)?,
            Err(_) => rejected_by_serde(bytes.clone())?,
        }
        from_token_endpoint(bytes)?;
    }

    #[test]
    fn token_responses_from_generated_json(
        access in field(),
        expires_in in field(),
        expires_at in field(),
        token_type in field(),
        refresh in field(),
    ) {
        let body = json!({
            "access_token": access,
            "expires_in": expires_in,
            "expires_at": expires_at,
            "token_type": token_type,
            "refresh_token": refresh,
        });
        match serde_json::from_value::<TokenResponse>(body.clone()) {
            Ok(response) => through_cache(response)?,
            Err(_) => rejected_by_serde(body.to_string().into_bytes())?,
        }
        from_token_endpoint(body.to_string().into_bytes())?;
    }

    #[test]
    fn challenges_from_mutated_seeds(bytes in inputs("www_authenticate")) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = BearerChallenge::parse(&text);
        if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::WWW_AUTHENTICATE, value);
            let _ = BearerChallenge::from_headers(&headers);
        }
    }

    #[test]
    fn long_challenges_are_cut_not_parsed_whole(n in 0usize..100_000) {
        let value = format!("Bearer realm=\"{}\"", "x".repeat(n));
        let challenge = BearerChallenge::parse(&value).unwrap();
        prop_assert!(challenge.realm().unwrap().len() <= 8 * 1024);
    }
}

/// A response body delivered in the given pieces, possibly failing after the last one.
#[derive(Clone)]
struct Pieces {
    pieces: VecDeque<Bytes>,
    fail: bool,
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        Poll::Ready(match this.pieces.pop_front() {
            Some(piece) => Some(Ok(Frame::data(piece))),
            None if this.fail => {
                this.fail = false;
                Some(Err("connection reset mid-body".into()))
            }
            None => None,
        })
    }
}

/// What the token endpoint answers.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    date: Option<String>,
    content_length: Option<Length>,
    body: Vec<u8>,
    cuts: Vec<usize>,
    fail: bool,
    limit: usize,
}

#[derive(Debug, Clone)]
enum Length {
    Exact,
    Value(u64),
    Text(String),
}

impl Answer {
    fn header(&self, value: &str) -> Option<HeaderValue> {
        HeaderValue::from_str(value).ok()
    }

    fn response(&self) -> Response<Pieces> {
        let body = Bytes::from(self.body.clone());
        let mut cuts: Vec<usize> = self.cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = VecDeque::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            pieces.push_back(body.slice(start..cut));
            start = cut;
        }
        let mut response = Response::new(Pieces {
            pieces,
            fail: self.fail,
        });
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap();
        let headers = response.headers_mut();
        if let Some(v) = self.retry_after.as_deref().and_then(|v| self.header(v)) {
            headers.insert(http::header::RETRY_AFTER, v);
        }
        if let Some(v) = self.date.as_deref().and_then(|v| self.header(v)) {
            headers.insert(http::header::DATE, v);
        }
        let length = match &self.content_length {
            None => None,
            Some(Length::Exact) => Some(self.body.len().to_string()),
            Some(Length::Value(n)) => Some(n.to_string()),
            Some(Length::Text(t)) => Some(t.clone()),
        };
        if let Some(v) = length.as_deref().and_then(|v| self.header(v)) {
            headers.insert(http::header::CONTENT_LENGTH, v);
        }
        response
    }

    /// Whether the declared length alone exceeds the limit.
    fn declared_too_large(&self) -> bool {
        let declared = match &self.content_length {
            None => None,
            Some(Length::Exact) => Some(self.body.len() as u64),
            Some(Length::Value(n)) => Some(*n),
            Some(Length::Text(t)) => t.parse::<u64>().ok(),
        };
        declared.is_some_and(|n| n > self.limit as u64)
    }
}

fn http_date() -> impl Strategy<Value = String> {
    any::<u32>().prop_map(|t| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t.into())))
}

fn answers() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        3 => prop::sample::select(vec![200u16, 201, 204, 301, 400, 401, 403, 429, 500, 502, 503]),
        1 => 100u16..1000,
    ];
    let retry_after = prop::option::of(prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        http_date(),
        Just("99999999999999999999999".to_owned()),
        Just(" 7 ".to_owned()),
        "[ -~]{0,40}",
    ]);
    let date = prop::option::of(prop_oneof![http_date(), "[ -~]{0,40}"]);
    let content_length = prop::option::of(prop_oneof![
        2 => Just(Length::Exact),
        1 => any::<u64>().prop_map(Length::Value),
        1 => "[ -~]{0,12}".prop_map(Length::Text),
    ]);
    let body = prop_oneof![inputs("oauth2_error"), inputs("token_response")];
    let limit = prop_oneof![3 => Just(64 * 1024), 1 => 0usize..512];
    (
        status,
        retry_after,
        date,
        content_length,
        body,
        prop::collection::vec(any::<usize>(), 0..4),
        prop::bool::weighted(0.1),
        limit,
    )
        .prop_map(
            |(status, retry_after, date, content_length, body, cuts, fail, limit)| Answer {
                status,
                retry_after,
                date,
                content_length,
                body,
                cuts,
                fail,
                limit,
            },
        )
}

/// Checks an error from the provider: a short, non-empty message all along its chain.
fn check_error(err: &(dyn std::error::Error + 'static)) -> Result<(), TestCaseError> {
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        prop_assert!(!text.is_empty(), "empty message: {e:?}");
        prop_assert!(text.chars().count() < 1024, "{} chars: {text}", text.len());
        current = e.source();
    }
    Ok(())
}

fn check_oauth2(answer: &Answer, err: &OAuth2Error) -> Result<(), TestCaseError> {
    check_error(err)?;
    if answer.declared_too_large() {
        prop_assert_eq!(
            err.kind(),
            &OAuth2ErrorKind::BodyTooLarge {
                limit: answer.limit
            }
        );
    }
    if let OAuth2ErrorKind::Server { .. }
    | OAuth2ErrorKind::ErrorList { .. }
    | OAuth2ErrorKind::Status { .. } = err.kind()
    {
        prop_assert_eq!(err.status().map(|s| s.as_u16()), Some(answer.status));
        let seconds = answer.retry_after.as_deref().and_then(|v| {
            HeaderValue::from_str(v).ok()?;
            v.trim().parse::<u64>().ok()
        });
        if let Some(seconds) = seconds {
            prop_assert_eq!(err.retry_after(), Some(Duration::from_secs(seconds)));
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn oauth2_responses_from_mutated_seeds(answer in answers()) {
        let reply = answer.clone();
        let client = service_fn(move |_: Request<Full<Bytes>>| {
            let response = reply.response();
            async move { Ok::<_, BoxError>(response) }
        });
        // PortSIP's settings, with a body limit of its own.
        let provider = OAuth2Provider::password(
            client,
            format!("https://pbx.test:8887{PORTSIP_TOKEN_PATH}"),
            "admin",
            "pw",
        )
        .client_id(PORTSIP_CLIENT_ID)
        .scope("all")
        .revoke_url(format!("https://pbx.test:8887{PORTSIP_REVOKE_PATH}"))
        .revoke_with_bearer(true)
        .max_body_size(answer.limit)
        .build()
        .unwrap();
        runtime().block_on(async {
            let too_large = answer.body.len() > answer.limit && !answer.fail;
            for result in [provider.login().await, provider.refresh("rt").await] {
                match result {
                    Ok(token) => {
                        prop_assert!(!token.access_token().is_empty());
                        prop_assert!(!too_large, "a body over the limit was read");
                        prop_assert!(!answer.declared_too_large());
                    }
                    Err(err) => check_oauth2(&answer, &err)?,
                }
            }
            if let Err(err) = provider.revoke("at", Some("rt")).await {
                check_oauth2(&answer, &err)?;
            }
            // Through the cache, which also reads `retry_after` for its backoff.
            let layer = BearerAuthLayer::new(provider).any_origin();
            match layer.cache().get().await {
                Ok(token) => prop_assert!(token.header_value().is_sensitive()),
                Err(err) => check_error(&err)?,
            }
            Ok(())
        })?;
    }
}

proptest! {
    #[test]
    fn portsip_sign_in_responses_from_mutated_seeds(answer in answers()) {
        let reply = answer.clone();
        let client = service_fn(move |_: Request<Full<Bytes>>| {
            let response = reply.response();
            async move { Ok::<_, BoxError>(response) }
        });
        // The sign-in API, with a callback for two-factor answers (whose `verify_otp` then
        // gets the same answer).
        let provider = PortSip::new("https://pbx.test:8887", "admin", "pw")
            .api(PortSipApi::SignIn)
            .one_time_code(|_| async { Ok::<_, BoxError>("123456".to_owned()) })
            .build_with(client)
            .unwrap();
        runtime().block_on(async {
            for result in [provider.login().await, provider.refresh("rt").await] {
                match result {
                    Ok(token) => prop_assert!(!token.access_token().is_empty()),
                    Err(err) => check_error(&*err)?,
                }
            }
            if let Err(err) = provider.revoke("at", Some("rt")).await {
                check_error(&*err)?;
            }
            let layer = BearerAuthLayer::new(provider);
            match layer.cache().get().await {
                Ok(token) => prop_assert!(token.header_value().is_sensitive()),
                Err(err) => check_error(&err)?,
            }
            Ok(())
        })?;
    }
}
