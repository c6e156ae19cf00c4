//! The `tracing` feature's events over a real socket, against the embedded server: login,
//! refresh, the fallback from a refused refresh to a login, `401` recovery, a failed login and
//! its backoff, and the token store. Each test captures events with a subscriber of its own
//! (the default for its thread; a current-thread runtime polls the spawned logins there too),
//! checks that the expected events come with the expected fields, and that no captured text
//! holds the password or any token the cache held.

#![cfg(feature = "tracing")]

use std::{
    collections::BTreeMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenError, TokenErrorKind,
    client::HttpClient,
    provider::{BoxFuture, portsip::PortSip},
    store::{MemoryStore, StoreLock, StoredToken, TokenChange, TokenStore},
    test_server::{TestServer, TestServerConfig},
};
use tower_bearer_auth::{TokenCache, TokenCacheBuilder};
use tracing::{
    Event, Level, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

const USER: &str = "admin";
const PASSWORD: &str = "S3cr3t-pw-trace-41d7";
const NEW_PASSWORD: &str = "S3cr3t-pw-trace-new-9be0";
const API: &str = "/api/account/extensions";

/// One captured event.
#[derive(Debug, Clone)]
struct Captured {
    name: &'static str,
    level: Level,
    target: &'static str,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// A field that must be there, parsed.
    fn num(&self, name: &str) -> u64 {
        let value = self
            .field(name)
            .unwrap_or_else(|| panic!("no {name}: {self:?}"));
        value.parse().unwrap_or_else(|_| panic!("{name}: {self:?}"))
    }

    /// A duration field that must be there: milliseconds, to the microsecond.
    fn ms(&self, name: &str) -> f64 {
        let value = self
            .field(name)
            .unwrap_or_else(|| panic!("no {name}: {self:?}"));
        let ms: f64 = value.parse().unwrap_or_else(|_| panic!("{name}: {self:?}"));
        assert!(ms.is_finite() && ms >= 0.0, "{name}: {self:?}");
        assert_eq!(
            (ms * 1000.0).round() / 1000.0,
            ms,
            "whole microseconds: {self:?}"
        );
        ms
    }

    fn is_error(&self) -> bool {
        self.fields.contains_key("error")
    }
}

/// A subscriber keeping every event and span field it is given.
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    /// Span names and fields, as text.
    spans: Arc<Mutex<Vec<String>>>,
    next_span: Arc<AtomicU64>,
    /// What must never be captured.
    secrets: Arc<Mutex<Vec<String>>>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        let mut fields = Fields::default();
        span.record(&mut fields);
        let text = format!("{} {:?}", span.metadata().name(), fields.0);
        self.spans.lock().unwrap().push(text);
        span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &span::Id, values: &span::Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.spans.lock().unwrap().push(format!("{:?}", fields.0));
    }

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        self.events.lock().unwrap().push(Captured {
            name: metadata.name(),
            level: *metadata.level(),
            target: metadata.target(),
            fields: fields.0,
        });
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

impl Capture {
    /// This crate's events so far, but the providers'.
    fn ours(&self) -> Vec<Captured> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.target.starts_with("tower_bearer_auth"))
            .filter(|e| !e.target.starts_with("tower_bearer_auth::provider"))
            .cloned()
            .collect()
    }

    /// The events of the PortSIP provider so far: `(name, api, call or status)`.
    fn portsip(&self) -> Vec<(&'static str, String, String)> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.target.starts_with("tower_bearer_auth::provider::portsip"))
            .map(|e| {
                let api = e.field("api").unwrap_or_default().to_owned();
                let more = e.field("call").or(e.field("status")).unwrap_or_default();
                (e.name, api, more.to_owned())
            })
            .collect()
    }

    /// This crate's events named `name`.
    fn named(&self, name: &str) -> Vec<Captured> {
        self.ours().into_iter().filter(|e| e.name == name).collect()
    }

    /// The one event named `name` at `level` whose fields include `with`.
    fn one(&self, name: &str, level: Level, with: &[(&str, &str)]) -> Captured {
        let found: Vec<_> = self
            .named(name)
            .into_iter()
            .filter(|e| e.level == level && with.iter().all(|(k, v)| e.field(k) == Some(*v)))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name} {level} {with:?} in {:#?}",
            self.ours()
        );
        found.into_iter().next().unwrap()
    }

    fn secret(&self, secret: &str) {
        assert!(!secret.is_empty());
        self.secrets.lock().unwrap().push(secret.to_owned());
    }

    /// A hook noting every token the cache holds as a secret.
    fn hook(&self) -> impl Fn(TokenChange<'_>) + Send + Sync + 'static {
        let capture = self.clone();
        move |change| {
            if let Some(token) = change.token() {
                let token = token.token().unwrap();
                capture.secret(token.access_token());
                if let Some(refresh) = token.refresh_token() {
                    capture.secret(refresh);
                }
            }
        }
    }

    /// Checks that no event (any crate's) or span holds a secret, and that there were
    /// `at_least` secrets to look for.
    fn assert_no_secret(&self, at_least: usize) {
        let secrets = self.secrets.lock().unwrap().clone();
        assert!(secrets.len() >= at_least, "{} secrets", secrets.len());
        let mut texts: Vec<String> = self.spans.lock().unwrap().clone();
        for event in self.events.lock().unwrap().iter() {
            texts.push(format!("{} {:?}", event.name, event.fields));
        }
        assert!(!texts.is_empty());
        for text in &texts {
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "a secret in {text}");
            }
        }
    }
}

async fn server(lifetime: Duration) -> TestServer {
    TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(lifetime))
        .await
        .expect("bind 127.0.0.1")
}

fn builder(server: &TestServer, capture: &Capture) -> TokenCacheBuilder {
    capture.secret(PASSWORD);
    capture.secret(NEW_PASSWORD);
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build()
        .unwrap();
    TokenCache::builder(provider)
        .jitter(Duration::from_millis(100))
        .on_token_change(capture.hook())
}

async fn get(client: &BearerAuth<HttpClient>, server: &TestServer) -> Result<StatusCode, BoxError> {
    let request = Request::get(server.url(API)).body(Full::<Bytes>::default())?;
    Ok(client.clone().oneshot(request).await?.status())
}

#[tokio::test]
async fn login_refresh_and_fallback() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = server(Duration::from_secs(1)).await;
    let layer = BearerAuthLayer::new(builder(&server, &capture).build());
    let cache = layer.cache();
    let client = layer.layer(HttpClient::new());

    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    let login = capture.one("login", Level::DEBUG, &[("generation", "1")]);
    assert_eq!(login.field("fallback"), Some("false"));
    assert!(
        (1..=1000).contains(&login.num("expires_in_ms")),
        "{login:?}"
    );
    // To the microsecond: a login on loopback, often under a millisecond, does not read 0.
    let elapsed = login.ms("elapsed_ms");
    assert!(elapsed > 0.0 && elapsed < 10_000.0, "{login:?}");
    assert!(!login.is_error());
    assert!(
        capture
            .spans
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.starts_with("token_fetch") && s.contains("cache")),
        "the login ran in a span"
    );

    // Requests with the cached token say nothing.
    let before = capture.ours().len();
    for _ in 0..3 {
        assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    }
    assert_eq!(capture.ours().len(), before, "{:#?}", capture.ours());

    // Past the refresh point (at most half of the second's life): a refresh.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    cache.get().await.unwrap();
    let refresh = capture.one("refresh", Level::DEBUG, &[("generation", "2")]);
    assert!(
        (1..=1000).contains(&refresh.num("expires_in_ms")),
        "{refresh:?}"
    );
    refresh.ms("elapsed_ms");
    assert_eq!(server.counts().refresh_grants, 1);

    // A refused refresh falls back to a login.
    server.revoke_refresh_tokens();
    cache.refresh().await.unwrap();
    let refused = capture.one("refresh", Level::DEBUG, &[("error_kind", "Refresh")]);
    let error = refused.field("error").unwrap();
    assert!(
        error.starts_with(
            "UNAUTHORIZED: Refresh failed, invalid token: the refresh token is invalid, expired \
             or already used (HTTP 400)"
        ),
        "the provider's error, without the message of a failed fallback: {error}"
    );
    refused.ms("elapsed_ms");
    assert_eq!(refused.field("generation"), None);
    let fallback = capture.one("login", Level::DEBUG, &[("fallback", "true")]);
    assert_eq!(fallback.num("generation"), 3);
    assert!(!fallback.is_error());
    assert_eq!(server.counts().password_grants, 2);

    capture.assert_no_secret(2 + 3 + 2);
}

#[tokio::test]
async fn unauthorized_recovery() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = server(Duration::from_secs(3600)).await;
    let client = BearerAuthLayer::new(builder(&server, &capture).build())
        .replay_unauthorized(true)
        .layer(HttpClient::new());
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    assert!(capture.named("unauthorized").is_empty());

    server.revoke_all();
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(server.counts().unauthorized, 1);
    let refused = capture.one("unauthorized", Level::DEBUG, &[("generation", "1")]);
    assert_eq!(refused.field("replay"), Some("true"));
    let invalidated = capture.one("invalidated", Level::DEBUG, &[]);
    assert_eq!(invalidated.num("generation"), 1);
    assert_eq!(invalidated.field("cache"), refused.field("cache"));
    // The refresh token went with the revocation: a refused refresh, then a login.
    capture.one("refresh", Level::DEBUG, &[("error_kind", "Refresh")]);
    capture.one(
        "login",
        Level::DEBUG,
        &[("fallback", "true"), ("generation", "2")],
    );

    // The order in which they happened.
    let names: Vec<_> = capture.ours().iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        ["login", "unauthorized", "invalidated", "refresh", "login"]
    );
    capture.assert_no_secret(2 + 2 * 2);
}

#[tokio::test]
async fn failed_login_and_backoff() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = server(Duration::from_secs(3600)).await;
    server.set_password(NEW_PASSWORD);
    // A wrong password is a refusal of the credentials: its pause is the refused backoff.
    let layer = BearerAuthLayer::new(
        builder(&server, &capture)
            .backoff(Duration::from_secs(10), Duration::from_secs(10))
            .refused_backoff(Duration::from_secs(10), Duration::from_secs(10))
            .build(),
    );
    let client = layer.layer(HttpClient::new());

    let err = get(&client, &server).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TokenError>().unwrap().kind(),
        TokenErrorKind::Login
    );
    let failed = capture.one("login", Level::WARN, &[("error_kind", "Login")]);
    let error = failed.field("error").unwrap();
    assert!(
        error.starts_with("token provider failed to log in: "),
        "{error}"
    );
    assert!(
        error.contains("UNAUTHORIZED: Login failed, authentication error"),
        "{error}"
    );
    assert_eq!(failed.field("fallback"), Some("false"));
    assert_eq!(failed.field("generation"), None);
    failed.ms("elapsed_ms");
    let pause = capture.one("backoff", Level::DEBUG, &[("streak", "1")]);
    assert!(
        (5000..=10_000).contains(&pause.num("backoff_ms")),
        "{pause:?}"
    );
    assert_eq!(pause.field("error_kind"), Some("Login"));

    // During the pause, requests fail at once, each with a trace event.
    for _ in 0..2 {
        assert!(get(&client, &server).await.is_err());
    }
    assert_eq!(server.counts().password_grants, 1);
    let fast = capture.named("backoff");
    let fast: Vec<_> = fast.iter().filter(|e| e.level == Level::TRACE).collect();
    assert_eq!(fast.len(), 2, "{fast:?}");
    assert!(fast.iter().all(|e| e.field("error_kind") == Some("Login")));
    assert!(fast.iter().all(|e| e.field("cache").is_some()));

    capture.assert_no_secret(2);
}

#[tokio::test]
async fn the_portsip_provider_says_which_api_it_uses() {
    use tower_bearer_auth::provider::portsip::PortSipApi;

    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    capture.secret(PASSWORD);
    let event = |name, api: &str, more: &str| (name, api.to_owned(), more.to_owned());

    // Both APIs: the sign-in API, found at the first answer.
    let server = server(Duration::from_secs(3600)).await;
    let cache = BearerAuthLayer::new(builder(&server, &capture).build()).cache();
    cache.get().await.unwrap();
    cache.refresh().await.unwrap();
    cache.revoke().await.unwrap();
    assert_eq!(
        capture.portsip(),
        [
            event("portsip_call", "sign-in", "sign_in"),
            event("portsip_api", "sign-in", ""),
            event("portsip_call", "sign-in", "refresh_token"),
            event("portsip_call", "sign-in", "sign_out"),
        ]
    );

    // The OAuth token endpoint only: the `404`, then the OAuth endpoint from then on.
    capture.events.lock().unwrap().clear();
    let old = TestServer::start(TestServerConfig::new(USER, PASSWORD).sign_in_api(false))
        .await
        .unwrap();
    let cache = BearerAuthLayer::new(builder(&old, &capture).build()).cache();
    cache.get().await.unwrap();
    cache.refresh().await.unwrap();
    assert_eq!(
        capture.portsip(),
        [
            event("portsip_call", "sign-in", "sign_in"),
            event("portsip_api", "oauth", "404"),
            event("portsip_call", "oauth", "password_grant"),
            event("portsip_call", "oauth", "refresh_grant"),
        ]
    );

    // An explicit choice: no search.
    capture.events.lock().unwrap().clear();
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .api(PortSipApi::OAuth)
        .build()
        .unwrap();
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider)
            .on_token_change(capture.hook())
            .build(),
    )
    .cache();
    cache.get().await.unwrap();
    assert_eq!(
        capture.portsip(),
        [event("portsip_call", "oauth", "password_grant")]
    );
    capture.assert_no_secret(1 + 2);
}

/// A store whose every call fails.
struct Broken;

impl TokenStore for Broken {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
    fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
}

/// A store that always holds a newer token than the one saved, and lends none.
struct Newer;

impl TokenStore for Newer {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(async { Ok(None) })
    }
    fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async { Ok(false) })
    }
}

#[tokio::test]
async fn store_operations() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = server(Duration::from_secs(3600)).await;
    let store = MemoryStore::new();
    let a = BearerAuthLayer::new(builder(&server, &capture).store(store.clone()).build());
    let b = BearerAuthLayer::new(builder(&server, &capture).store(store.clone()).build());

    // `a` finds nothing, logs in and saves version 1.
    a.cache().get().await.unwrap();
    capture
        .one("store_lock", Level::TRACE, &[])
        .ms("elapsed_ms");
    let load = capture.one("store_load", Level::DEBUG, &[("adopted", "false")]);
    assert_eq!(load.field("version"), None);
    assert_eq!(load.num("replaces"), 0);
    capture.one(
        "store_save",
        Level::DEBUG,
        &[("version", "1"), ("saved", "true")],
    );
    let login = capture.one("login", Level::DEBUG, &[("generation", "1")]);
    assert_eq!(login.num("version"), 1);

    // `b` adopts it.
    b.cache().get().await.unwrap();
    let adopted = capture.one("store_load", Level::DEBUG, &[("adopted", "true")]);
    assert_eq!(adopted.num("version"), 1);
    assert_eq!(adopted.num("generation"), 1);
    assert!(adopted.num("expires_in_ms") > 3_000_000, "{adopted:?}");
    adopted.ms("elapsed_ms");
    assert_eq!(server.counts().password_grants, 1);

    // A logout clears the store.
    b.cache().revoke().await.unwrap();
    assert!(!capture.one("store_clear", Level::DEBUG, &[]).is_error());
    let revoke = capture.one("revoke", Level::DEBUG, &[]);
    assert_eq!(revoke.num("generation"), 1);
    assert!(!revoke.is_error());

    // A store that holds a newer token keeps it.
    let newer = BearerAuthLayer::new(builder(&server, &capture).store(Newer).build());
    newer.cache().get().await.unwrap();
    capture
        .one("store_save", Level::DEBUG, &[("saved", "false")])
        .num("version");

    // A store that is down: every step says so, and the token is still fetched.
    let broken = BearerAuthLayer::new(builder(&server, &capture).store(Broken).build());
    broken.cache().get().await.unwrap();
    for name in ["store_lock", "store_load", "store_save"] {
        let event = capture.one(name, Level::WARN, &[]);
        assert!(
            event.field("error").unwrap().contains("store down"),
            "{event:?}"
        );
    }
    assert!(broken.cache().revoke().await.is_err());
    let clear = capture.one("store_clear", Level::DEBUG, &[("error_kind", "Revoke")]);
    assert!(
        clear.field("error").unwrap().ends_with("store down"),
        "{clear:?}"
    );

    capture.assert_no_secret(2 + 3 * 2);
}
