//! Reproductions of issue 12, part D: edge cases.
//!
//! A provider that panics, durations too large to add to an instant, `get()` while a refresh
//! fails, a replayed request refused again, and a body whose size hint lies. The providers
//! are written by hand where the point is the cache; the replay test runs over real sockets,
//! against the embedded PortSIP server. Clocks are paused where one runtime is involved, and a
//! watchdog turns a hang into a failure.

use std::{
    cell::Cell,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, Once,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use tokio::sync::oneshot;
use tower::{Layer, ServiceExt, service_fn};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, TokenError, TokenErrorKind, TokenResponse,
    client::HttpClient,
    provider::{BoxFuture, StaticToken, TokenProvider, portsip::PortSip},
    store::MemoryStore,
    test_server::{TestServer, TestServerConfig},
};

/// Turns a hang into a failure; under the paused clock it fires as soon as all is idle.
async fn watchdog<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("hung: no answer within 20 s")
}

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Panics so far on this thread, counted by a hook installed on first use (which then hands
/// over to the previous hook). A current-thread runtime runs its spawned tasks on the test's
/// thread, so a panic in one of them is counted too, though the runtime swallows it.
fn panics() -> usize {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICS.try_with(|n| n.set(n.get() + 1));
            previous(info);
        }));
    });
    PANICS.with(Cell::get)
}

/// A server that answers every request `200`.
fn ok_server() -> impl tower::Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|_: Request<()>| std::future::ready(Ok::<_, Infallible>(Response::new(()))))
}

/// A provider whose logins and refreshes are counted, and fail or succeed as told: tokens
/// `login-{n}` (with a refresh token) and `refresh-{n}`, living `lifetime`.
#[derive(Default)]
struct Scripted {
    failing: AtomicBool,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    lifetime: Option<Duration>,
}

impl Scripted {
    fn lasting(lifetime: Duration) -> Self {
        Self {
            lifetime: Some(lifetime),
            ..Self::default()
        }
    }

    fn fail(&self, fail: bool) {
        self.failing.store(fail, Ordering::SeqCst);
    }

    fn calls(&self) -> (usize, usize) {
        (
            self.logins.load(Ordering::SeqCst),
            self.refreshes.load(Ordering::SeqCst),
        )
    }

    fn answer(&self, access: String, refused: &'static str) -> Result<TokenResponse, BoxError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(refused.into());
        }
        let mut token = TokenResponse::new(access).with_refresh_token("rt");
        if let Some(lifetime) = self.lifetime {
            token = token.with_expires_in(lifetime);
        }
        Ok(token)
    }
}

impl TokenProvider for Scripted {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { self.answer(format!("login-{n}"), "login refused") })
    }

    fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { self.answer(format!("refresh-{n}"), "invalid_grant") })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn revoke<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> tower_bearer_auth::provider::BoxFuture<'a, Result<(), tower_bearer_auth::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<tower_bearer_auth::Origin> {
        None
    }
}

/// A provider whose login future panics; counts its calls.
#[derive(Default)]
struct Panicking {
    calls: AtomicUsize,
}

fn a_bug() -> Result<TokenResponse, BoxError> {
    panic!("the provider has a bug")
}

impl TokenProvider for Panicking {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            a_bug()
        })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn revoke<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> tower_bearer_auth::provider::BoxFuture<'a, Result<(), tower_bearer_auth::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<tower_bearer_auth::Origin> {
        None
    }
}

/// D1. A login that panics counts as a failure and starts the backoff: 50 requests in a row
/// cause one provider call, and each fails with a `TokenError` (no panic reaches the caller,
/// nothing hangs).
#[tokio::test(start_paused = true)]
async fn a_panicking_provider_is_called_once_then_backs_off() {
    let provider = Arc::new(Panicking::default());
    let client = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .backoff(Duration::from_secs(5), Duration::from_secs(5))
            .build(),
    )
    .any_origin()
    .layer(ok_server());
    for i in 0..50 {
        let err = watchdog(client.clone().oneshot(Request::new(())))
            .await
            .expect_err("no token, so no response");
        assert!(
            err.downcast_ref::<TokenError>().is_some(),
            "request {i}: {err:?}"
        );
    }
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        1,
        "provider calls for 50 requests within the 5 s backoff"
    );
}

/// D2. `backoff(Duration::MAX, Duration::MAX)`: a failed login, then another request. Neither
/// may panic; both fail with the login's error, and the second without a provider call.
#[tokio::test(start_paused = true)]
async fn a_backoff_of_duration_max_does_not_panic() {
    let provider = Arc::new(Scripted::default());
    provider.fail(true);
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .backoff(Duration::MAX, Duration::MAX)
            .build(),
    )
    .any_origin()
    .cache();
    let before = panics();
    let first = watchdog(cache.get()).await.map(drop);
    let second = watchdog(cache.get()).await.map(drop);
    assert_eq!(
        panics() - before,
        0,
        "a task panicked; the requests got {first:?} and {second:?}"
    );
    let kinds = (first.unwrap_err().kind(), second.unwrap_err().kind());
    assert_eq!(kinds, (TokenErrorKind::Login, TokenErrorKind::Login));
    assert_eq!(
        provider.calls(),
        (1, 0),
        "the second fails during the backoff"
    );
}

/// D2. `timeout`, `refresh_ahead` and `jitter` of `Duration::MAX`, with a provider that
/// works: logins, refreshes (through a store) and a revoke all go through without a panic.
#[tokio::test(start_paused = true)]
async fn timeout_refresh_ahead_and_jitter_of_duration_max_work() {
    let provider = Arc::new(Scripted::lasting(Duration::from_secs(3600)));
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .timeout(Duration::MAX)
            .refresh_ahead(Duration::MAX)
            .jitter(Duration::MAX)
            .store(MemoryStore::new())
            .build(),
    )
    .any_origin()
    .cache();
    let before = panics();
    let first = watchdog(cache.get()).await;
    // `refresh_ahead` is capped at half the token's life: due after 30 minutes at the latest.
    tokio::time::advance(Duration::from_secs(1900)).await;
    // The due token is still valid: `get()` returns it and the refresh runs meanwhile.
    let due = watchdog(cache.get()).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let second = watchdog(cache.get()).await;
    let revoked = watchdog(cache.revoke()).await;
    assert_eq!(
        panics() - before,
        0,
        "a task panicked: {first:?}, {second:?}, {revoked:?}"
    );
    assert_eq!(first.unwrap().access_token(), "login-1");
    assert_eq!(due.unwrap().access_token(), "login-1");
    assert_eq!(second.unwrap().access_token(), "refresh-1");
    revoked.unwrap();
}

/// D3. A 100 s token is past its refresh point (70 s) but still valid when the provider's
/// refresh and login start failing: `get()` must return that token, not the error.
#[tokio::test(start_paused = true)]
async fn get_returns_the_valid_token_when_its_refresh_fails() {
    let provider = Arc::new(Scripted::lasting(Duration::from_secs(100)));
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .refresh_ahead(Duration::from_secs(30))
            .jitter(Duration::ZERO)
            .build(),
    )
    .any_origin()
    .cache();
    assert_eq!(cache.get().await.unwrap().access_token(), "login-1");
    tokio::time::advance(Duration::from_secs(75)).await;
    provider.fail(true);
    let token = watchdog(cache.get()).await;
    assert_eq!(
        token
            .map(|t| t.access_token().to_owned())
            .map_err(|e| e.kind()),
        Ok("login-1".to_owned()),
        "the token is valid for another 25 s"
    );
}

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";

/// D4. A request leaves with token 1 while the cache refreshes to token 2, then the server
/// revokes both: the request is refused, replayed with token 2, and refused again. Token 2
/// must not stay cached: the next request must carry a new token at once and get `200`.
#[tokio::test]
async fn a_token_refused_on_replay_is_not_kept() {
    let server = TestServer::start(
        TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(provider).replay_unauthorized(true);
    let cache = layer.cache();

    // The HTTP client, behind a gate that holds one request (the next, once armed) until
    // released, after telling that it holds it.
    type Gate = Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>;
    let gate: Arc<Mutex<Gate>> = Arc::default();
    let http = HttpClient::new();
    let gated = service_fn({
        let gate = gate.clone();
        move |req: Request<Full<Bytes>>| {
            let held = gate.lock().unwrap().take();
            let http = http.clone();
            async move {
                if let Some((holding, release)) = held {
                    let _ = holding.send(());
                    let _ = release.await;
                }
                http.oneshot(req).await
            }
        }
    });
    let client = layer.layer(gated);
    let request = || {
        Request::get(server.url(API))
            .body(Full::<Bytes>::default())
            .unwrap()
    };

    let token_1 = watchdog(cache.get()).await.unwrap();
    let (holding_tx, holding) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    *gate.lock().unwrap() = Some((holding_tx, release_rx));
    let first = tokio::spawn(client.clone().oneshot(request()));
    watchdog(holding).await.unwrap();
    let token_2 = watchdog(cache.refresh()).await.unwrap();
    assert!(token_1.access_token() != token_2.access_token());
    server.revoke_all();
    release.send(()).unwrap();

    let first = watchdog(first).await.unwrap().unwrap();
    assert_eq!(
        (first.status(), server.counts().unauthorized),
        (StatusCode::UNAUTHORIZED, 2),
        "token 1 refused, then the replay with token 2"
    );
    // Compared, not printed: the tokens are secrets, even the test server's.
    let kept = cache
        .token()
        .is_some_and(|t| t.access_token() == token_2.access_token());
    assert!(!kept, "token 2 is still cached after the server refused it");
    let next = watchdog(client.clone().oneshot(request())).await.unwrap();
    assert_eq!(
        (next.status(), server.counts().unauthorized),
        (StatusCode::OK, 2),
        "the next request must carry a new token from the start"
    );
}

/// Bytes in each frame of [`Lying`].
const FRAME: usize = 16 * 1024;
/// The layer's replay buffer limit in D5.
const LIMIT: usize = 64 * 1024;

/// A body of 1 MiB whose size hint promises at most 10 bytes; counts the bytes pulled from it.
struct Lying {
    left: usize,
    pulled: Arc<AtomicUsize>,
}

impl Body for Lying {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = FRAME.min(self.left);
        self.left -= n;
        self.pulled.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = SizeHint::new();
        hint.set_upper(10);
        hint
    }
}

/// D5. With replay on and a 64 KiB buffer limit, a body whose size hint claims 10 bytes but
/// which holds 1 MiB must not be read into memory beyond the limit (and one frame) before it
/// is sent. Sending it once without a replay passes, and so does a clear error; collecting the
/// whole 1 MiB first fails.
#[tokio::test]
async fn a_lying_size_hint_does_not_buffer_past_the_limit() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let at_call = Arc::new(Mutex::new(None));
    let server = service_fn({
        let (pulled, at_call) = (pulled.clone(), at_call.clone());
        move |req: Request<BoxBody<Bytes, BoxError>>| {
            *at_call.lock().unwrap() = Some(pulled.load(Ordering::SeqCst));
            async move {
                let _ = req.into_body().collect().await;
                Ok::<_, Infallible>(Response::new(()))
            }
        }
    });
    let client = BearerAuthLayer::new(StaticToken::new("abc"))
        .any_origin()
        .replay_unauthorized(true)
        .replay_buffer_limit(LIMIT)
        .layer(server);
    let body = Lying {
        left: 1024 * 1024,
        pulled: pulled.clone(),
    };
    let outcome = watchdog(client.oneshot(Request::new(BoxBody::new(body)))).await;

    let at_call = *at_call.lock().unwrap();
    match at_call {
        Some(read) => assert!(
            read <= LIMIT + FRAME,
            "{read} bytes were read into memory before the request was sent (limit {LIMIT})"
        ),
        None => {
            let read = pulled.load(Ordering::SeqCst);
            assert!(outcome.is_err(), "not sent, yet {outcome:?}");
            assert!(
                read <= LIMIT + FRAME,
                "{read} bytes were read into memory, and then the request failed (limit {LIMIT})"
            );
        }
    }
}
