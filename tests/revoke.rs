//! Reproductions of issue 12, part C: `TokenCache::revoke` and what it leaves in a store.
//!
//! After `revoke()` returns, no token obtained by a login or refresh that started before it
//! may be sent, saved or adopted; store versions keep growing across a revoke, with
//! `MemoryStore` and with `RedisStore`; and the first login after a revoke is saved and shared.
//! Also here, because it needs a Redis server: a `RedisStore` lock lifetime of `Duration::MAX`.
//!
//! The providers are written by hand (the point is the cache): they number their tokens in
//! the order their logins and refreshes start, so a token tells which call produced it. The
//! Redis tests start a `redis-server` of their own on a free loopback port, and fail, saying
//! how to install it, when it cannot be started.

use std::{
    cell::Cell,
    convert::Infallible,
    future::Future,
    sync::{
        Arc, Mutex, Once,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, header::AUTHORIZATION};
use tower::{Layer, ServiceExt, service_fn};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, TokenResponse,
    provider::{BoxFuture, TokenProvider},
    store::{MemoryStore, TokenStore},
};

/// Turns a hang into a failure; under the paused clock it fires as soon as all is idle.
async fn watchdog<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("hung: no answer within 20 s")
}

/// A provider that hands out one-hour tokens named `{prefix}-login-{n}` and
/// `{prefix}-refresh-{n}`, `n` counting the calls of each kind in the order they start, each
/// after `delay`.
#[derive(Clone)]
struct Numbered {
    inner: Arc<NumberedInner>,
}

struct NumberedInner {
    prefix: &'static str,
    delay: Duration,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
}

impl Numbered {
    fn new(prefix: &'static str, delay: Duration) -> Self {
        Self {
            inner: Arc::new(NumberedInner {
                prefix,
                delay,
                logins: AtomicUsize::new(0),
                refreshes: AtomicUsize::new(0),
            }),
        }
    }

    /// Logins started.
    fn logins(&self) -> usize {
        self.inner.logins.load(Ordering::SeqCst)
    }

    /// Refreshes started.
    fn refreshes(&self) -> usize {
        self.inner.refreshes.load(Ordering::SeqCst)
    }

    /// Yields until `n` logins have started (a bounded number of times).
    async fn until_logins(&self, n: usize) {
        for _ in 0..100 {
            if self.logins() >= n {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(self.logins(), n, "logins started");
    }

    fn token(&self, access: String, refresh: String) -> TokenResponse {
        TokenResponse::new(access)
            .with_refresh_token(refresh)
            .with_expires_in(Duration::from_secs(3600))
    }
}

impl TokenProvider for Numbered {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let n = self.inner.logins.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::time::sleep(self.inner.delay).await;
            let prefix = self.inner.prefix;
            Ok(self.token(format!("{prefix}-login-{n}"), format!("{prefix}-rt-{n}")))
        })
    }

    fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        let n = self.inner.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::time::sleep(self.inner.delay).await;
            let prefix = self.inner.prefix;
            Ok(self.token(
                format!("{prefix}-refresh-{n}"),
                format!("{prefix}-rt-refresh-{n}"),
            ))
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

const SLOW: Duration = Duration::from_secs(1);

/// C1. A login under way when `revoke()` is called finishes afterwards: its token must not
/// reach the store, and the next `get()` must log in anew instead of adopting it.
#[tokio::test(start_paused = true)]
async fn a_login_under_way_at_revoke_is_neither_saved_nor_adopted() {
    let store = MemoryStore::new();
    let provider = Numbered::new("a", SLOW);
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .store(store.clone())
            .build(),
    )
    .any_origin()
    .cache();

    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get().await }
    });
    provider.until_logins(1).await;
    cache.revoke().await.unwrap();
    // Whatever the waiter got (C2's business), the old login has finished by now.
    let _ = watchdog(waiter).await.unwrap();

    let stored = store
        .get()
        .and_then(|s| Some(s.token()?.access_token().to_owned()));
    assert_ne!(
        stored.as_deref(),
        Some("a-login-1"),
        "the store holds the token of a login started before the revoke"
    );
    let token = watchdog(cache.get()).await.unwrap();
    assert_ne!(
        token.access_token(),
        "a-login-1",
        "adopted the token of a login started before the revoke"
    );
    assert_eq!(
        provider.logins(),
        2,
        "one login before the revoke, one after"
    );
}

/// C2. Without a store: the requests waiting for a login when `revoke()` is called must not
/// get that login's token; a token from a login started after the revoke, or an error.
#[tokio::test(start_paused = true)]
async fn waiters_at_revoke_never_get_the_old_logins_token() {
    let provider = Numbered::new("a", SLOW);
    let layer = BearerAuthLayer::new(provider.clone()).any_origin();
    let cache = layer.cache();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let server = service_fn({
        let sent = sent.clone();
        move |req: Request<()>| {
            let header = req.headers().get(AUTHORIZATION).cloned();
            sent.lock().unwrap().push(header);
            async { Ok::<_, Infallible>(Response::new(())) }
        }
    });
    let client = layer.layer(server);

    let waiter = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get().await }
    });
    let request = tokio::spawn(client.oneshot(Request::new(())));
    provider.until_logins(1).await;
    cache.revoke().await.unwrap();

    if let Ok(token) = watchdog(waiter).await.unwrap() {
        assert_ne!(
            token.access_token(),
            "a-login-1",
            "get() returned the token of a login started before the revoke"
        );
    }
    let _ = watchdog(request).await.unwrap();
    let sent = sent.lock().unwrap().clone();
    assert!(
        !sent.iter().flatten().any(|h| h == "Bearer a-login-1"),
        "a request was sent with the token of a login started before the revoke ({} sent)",
        sent.len()
    );
}

/// The version of the token in `store`, if it holds one.
async fn stored<S: TokenStore>(store: &S) -> Option<(u64, String)> {
    let stored = store.load().await.unwrap()?;
    Some((stored.version(), stored.token()?.access_token().to_owned()))
}

/// C3 and C4: cache A logs in and refreshes three times (versions 1 to 4) and revokes. Its
/// next login must be saved with a version above 4, and cache B, on the same store, must
/// adopt it without a login of its own.
async fn the_login_after_a_revoke_is_saved_and_shared<S: TokenStore + Clone>(store: S) {
    let a = Numbered::new("a", Duration::ZERO);
    let cache_a = BearerAuthLayer::new(TokenCache::builder(a.clone()).store(store.clone()).build())
        .any_origin()
        .cache();
    cache_a.get().await.unwrap();
    for _ in 0..3 {
        cache_a.refresh().await.unwrap();
    }
    let (before, _) = stored(&store).await.expect("a token is stored");
    assert_eq!(before, 4, "one login and three refreshes");
    assert_eq!((a.logins(), a.refreshes()), (1, 3));

    cache_a.revoke().await.unwrap();
    assert_eq!(stored(&store).await, None, "revoke cleared the store");

    let token = cache_a.get().await.unwrap();
    assert_eq!(token.access_token(), "a-login-2");
    let after = stored(&store).await;
    assert!(
        after
            .as_ref()
            .is_some_and(|(v, t)| *v > before && t == "a-login-2"),
        "the login after the revoke was not saved: the store holds {after:?} (version before \
         the revoke: {before})"
    );

    let b = Numbered::new("b", Duration::ZERO);
    let cache_b = BearerAuthLayer::new(TokenCache::builder(b.clone()).store(store.clone()).build())
        .any_origin()
        .cache();
    let shared = cache_b.get().await.unwrap();
    assert_eq!(
        (shared.access_token(), b.logins()),
        ("a-login-2", 0),
        "cache B adopts A's token without a login of its own"
    );
}

/// Cache A logs in, refreshes twice and revokes. Fresh caches C and D on the same store, which
/// never saw A's versions, must share one login again: C's is saved, and D adopts it.
async fn fresh_caches_share_one_login_after_a_revoke<S: TokenStore + Clone>(store: S) {
    let cache_a = BearerAuthLayer::new(
        TokenCache::builder(Numbered::new("a", Duration::ZERO))
            .store(store.clone())
            .build(),
    )
    .any_origin()
    .cache();
    cache_a.get().await.unwrap();
    cache_a.refresh().await.unwrap();
    cache_a.refresh().await.unwrap();
    cache_a.revoke().await.unwrap();

    let (c, d) = (
        Numbered::new("c", Duration::ZERO),
        Numbered::new("d", Duration::ZERO),
    );
    let cache_c = BearerAuthLayer::new(TokenCache::builder(c.clone()).store(store.clone()).build())
        .any_origin()
        .cache();
    let cache_d = BearerAuthLayer::new(TokenCache::builder(d.clone()).store(store.clone()).build())
        .any_origin()
        .cache();
    let token_c = cache_c.get().await.unwrap();
    assert_eq!(
        stored(&store).await.map(|(_, t)| t).as_deref(),
        Some(token_c.access_token()),
        "C's login was not saved"
    );
    let token_d = cache_d.get().await.unwrap();
    assert_eq!((c.logins(), d.logins()), (1, 0), "D logged in on its own");
    assert_eq!(token_d.access_token(), token_c.access_token());
}

#[tokio::test]
async fn memory_store_fresh_caches_share_one_login_after_a_revoke() {
    fresh_caches_share_one_login_after_a_revoke(MemoryStore::new()).await;
}

/// C3.
#[tokio::test]
async fn memory_store_versions_go_on_after_a_revoke() {
    the_login_after_a_revoke_is_saved_and_shared(MemoryStore::new()).await;
}

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::Redis;
use tower_bearer_auth::TokenCache;

/// C4.
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test]
async fn redis_store_versions_go_on_after_a_revoke() {
    let redis = Redis::require();
    the_login_after_a_revoke_is_saved_and_shared(redis.store("revoke")).await;
}

#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test]
async fn redis_store_fresh_caches_share_one_login_after_a_revoke() {
    let redis = Redis::require();
    fresh_caches_share_one_login_after_a_revoke(redis.store("fresh")).await;
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

/// D2, with a store: `RedisStore::lease(Duration::MAX)` used for a login must not panic,
/// and the login must give a token.
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test]
async fn a_redis_lease_of_duration_max_does_not_panic() {
    let redis = Redis::require();
    let provider = Numbered::new("a", Duration::ZERO);
    let cache = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .store(redis.store("ttl").lease(Duration::MAX))
            .build(),
    )
    .any_origin()
    .cache();
    let before = panics();
    let token = watchdog(cache.get()).await;
    assert_eq!(
        panics() - before,
        0,
        "a task panicked; the login gave {token:?}"
    );
    assert_eq!(token.unwrap().access_token(), "a-login-1");
}
