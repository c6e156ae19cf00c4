//! The cache's promises, each broken once by a short reproduction: what `revoke()` and
//! `invalidate` guarantee to requests already waiting, what a revoke leaves in a shared store,
//! that nothing outlives a dropped cache, and that a refused refresh token is not sent again.
//!
//! The providers are written by hand (the point is the cache) and number their tokens in the
//! order their logins start. The interleavings are driven by hand: a waiting request's future
//! is polled once, so that it is waiting, and polled again only after the step under test.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::Poll,
    time::Duration,
};

use tokio::sync::Semaphore;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, TokenCache, TokenResponse,
    provider::{
        BoxFuture, TokenProvider,
        portsip::{PORTSIP_REFRESH_PATH, PortSip, PortSipApi},
    },
    store::{MemoryStore, StoreLock, StoredToken, TokenStore},
    test_server::{TestServer, TestServerConfig},
};

/// A provider whose logins are named `login-{n}` and wait for a permit of `gate` each.
#[derive(Clone)]
struct Gated {
    gate: Arc<Semaphore>,
    logins: Arc<AtomicUsize>,
    /// Dropped with the last clone: tells whether the provider outlived its cache.
    alive: Arc<()>,
}

impl Gated {
    fn new(permits: usize) -> Self {
        Self {
            gate: Arc::new(Semaphore::new(permits)),
            logins: Arc::new(AtomicUsize::new(0)),
            alive: Arc::new(()),
        }
    }

    fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }
}

impl TokenProvider for Gated {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            self.gate.acquire().await?.forget();
            Ok(TokenResponse::new(format!("login-{n}")).with_expires_in(Duration::from_secs(3600)))
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

/// Polls `fut` once, so that it starts waiting.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Yields until `done` holds (a bounded number of times).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened");
}

/// A request waits for a login; the login lands; before the request's next turn the token is
/// revoked. The request must not get the revoked token.
#[tokio::test(flavor = "current_thread")]
async fn a_waiter_never_gets_a_token_revoked_after_its_login_landed() {
    let provider = Gated::new(0);
    let cache = TokenCache::new(provider.clone());
    let mut waiting = Box::pin(cache.get());
    assert!(poll_once(&mut waiting).await.is_pending());

    provider.gate.add_permits(1);
    until(|| cache.token().is_some()).await; // landed; the waiter has not run since
    cache.revoke().await.unwrap();

    provider.gate.add_permits(1);
    let token = waiting.await.unwrap();
    assert_ne!(token.access_token(), "login-1", "sent the revoked token");
    assert_eq!(provider.logins(), 2);
}

/// The same with `invalidate_generation`, the answer to a `401`.
#[tokio::test(flavor = "current_thread")]
async fn a_waiter_never_gets_a_token_invalidated_after_its_login_landed() {
    let provider = Gated::new(0);
    let cache = TokenCache::new(provider.clone());
    let mut waiting = Box::pin(cache.get());
    assert!(poll_once(&mut waiting).await.is_pending());

    provider.gate.add_permits(1);
    until(|| cache.token().is_some()).await;
    let generation = cache.token().unwrap().generation();
    cache.invalidate_generation(generation);

    provider.gate.add_permits(1);
    let token = waiting.await.unwrap();
    assert_ne!(
        token.access_token(),
        "login-1",
        "sent the invalidated token"
    );
}

/// A [`MemoryStore`] whose saves of revoked records wait for `gate`, or fail.
#[derive(Clone)]
struct SlowRevoke {
    inner: MemoryStore,
    gate: Arc<Semaphore>,
    fail: bool,
}

impl TokenStore for SlowRevoke {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        self.inner.load()
    }

    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            if token.is_revoked() {
                self.gate.acquire().await?.forget();
                if self.fail {
                    return Err("store down".into());
                }
            }
            self.inner.save(token).await
        })
    }

    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        self.inner.lock()
    }
}

/// A request made while `revoke()` is still writing to a slow store must not adopt the
/// revoked token from it.
#[tokio::test(flavor = "current_thread")]
async fn a_login_during_a_revoke_never_adopts_the_revoked_token() {
    let provider = Gated::new(10);
    let store = SlowRevoke {
        inner: MemoryStore::new(),
        gate: Arc::new(Semaphore::new(0)),
        fail: false,
    };
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .store(store.clone())
            .build(),
    )
    .any_origin()
    .cache();
    assert_eq!(cache.get().await.unwrap().access_token(), "login-1");

    let mut revoking = Box::pin(cache.revoke());
    assert!(poll_once(&mut revoking).await.is_pending()); // writing to the store
    let during = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get().await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await; // the request's login, if it runs, ends meanwhile
    }

    store.gate.add_permits(1);
    revoking.await.unwrap();
    let token = during.await.unwrap().unwrap();
    assert_eq!(token.access_token(), "login-2", "adopted the revoked token");
    assert_eq!(
        store.inner.get().unwrap().token().unwrap().access_token(),
        "login-2",
        "the login after the revoke is saved"
    );
}

/// If the store cannot be written during `revoke()`, the revoked token stays there: the cache
/// must still never adopt it.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_revoke_in_the_store_never_lets_the_revoked_token_back() {
    let provider = Gated::new(10);
    let store = SlowRevoke {
        inner: MemoryStore::new(),
        gate: Arc::new(Semaphore::new(10)),
        fail: true,
    };
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .store(store.clone())
            .build(),
    )
    .any_origin()
    .cache();
    cache.get().await.unwrap();
    assert!(
        cache.revoke().await.is_err(),
        "the store could not be written"
    );
    let token = cache.get().await.unwrap();
    assert_eq!(token.access_token(), "login-2", "adopted the revoked token");
}

/// Cache A logs in, refreshes twice and revokes. Fresh caches C and D on the same store must
/// then share one login: C's is saved, and D adopts it.
#[tokio::test(flavor = "current_thread")]
async fn after_a_revoke_fresh_caches_share_one_login_again() {
    let store = MemoryStore::new();
    let a = BearerAuthLayer::new(
        TokenCache::builder(Gated::new(10))
            .store(store.clone())
            .build(),
    )
    .any_origin()
    .cache();
    a.get().await.unwrap();
    a.refresh().await.unwrap();
    a.refresh().await.unwrap();
    a.revoke().await.unwrap();

    let (c, d) = (Gated::new(10), Gated::new(10));
    let cache_c = BearerAuthLayer::new(TokenCache::builder(c.clone()).store(store.clone()).build())
        .any_origin()
        .cache();
    let cache_d = BearerAuthLayer::new(TokenCache::builder(d.clone()).store(store.clone()).build())
        .any_origin()
        .cache();
    let token_c = cache_c.get().await.unwrap();
    let token_d = cache_d.get().await.unwrap();
    assert_eq!((c.logins(), d.logins()), (1, 0), "D logged in on its own");
    assert_eq!(token_d.access_token(), token_c.access_token());
}

/// Every handle dropped while a login hangs: the flight, the provider and its credentials go
/// at once, not when the login ends.
#[tokio::test(flavor = "current_thread")]
async fn a_login_does_not_outlive_its_dropped_cache() {
    let provider = Gated::new(0);
    let alive = Arc::downgrade(&provider.alive);
    let cache = TokenCache::new(provider);
    let mut waiting = Box::pin(cache.get());
    assert!(poll_once(&mut waiting).await.is_pending());
    drop(waiting);
    drop(cache);
    until(|| alive.strong_count() == 0).await;
}

/// The token endpoint refuses the refresh token, and the password too: each attempt after the
/// backoff must log in without sending the refused refresh token again. On both of PortSIP's
/// APIs.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_refresh_token_is_never_sent_again() {
    for api in [PortSipApi::SignIn, PortSipApi::OAuth] {
        a_refused_refresh_token_is_never_sent_again_on(api).await;
    }
}

async fn a_refused_refresh_token_is_never_sent_again_on(api: PortSipApi) {
    let server = TestServer::start(TestServerConfig::new("admin", "s3cret"))
        .await
        .unwrap();
    let provider = PortSip::new(server.base_url(), "admin", "s3cret")
        .api(api)
        .build()
        .unwrap();
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider)
            .backoff(Duration::from_millis(1), Duration::from_millis(1))
            .build(),
    )
    .cache();
    cache.get().await.unwrap();
    server.revoke_refresh_tokens();
    server.set_password("changed");

    for _ in 0..3 {
        let error = cache.refresh().await.unwrap_err();
        assert!(error.credentials_rejected(), "{error}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refreshes = server
        .token_request_log()
        .iter()
        .filter(|r| {
            r.grant_type.as_deref() == Some("refresh_token") || r.path == PORTSIP_REFRESH_PATH
        })
        .count();
    assert_eq!(
        refreshes, 1,
        "{api}: the refused refresh token was sent again"
    );

    // A new password recovers on the next call.
    server.set_password("s3cret");
    cache.refresh().await.unwrap();
}
