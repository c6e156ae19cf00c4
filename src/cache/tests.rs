use std::sync::atomic::{AtomicUsize, Ordering};

use super::config::{DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX};
use super::*;
use crate::store::StoredToken;
use crate::{BoxError, provider::provider_fn, token::TokenResponse};

/// A provider that counts logins and refreshes and hands out numbered tokens.
#[derive(Default)]
struct Counting {
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    fail_refresh: bool,
    fail_login: std::sync::atomic::AtomicBool,
    lifetime: Option<Duration>,
    delay: Duration,
}

impl TokenProvider for Counting {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_login.load(Ordering::SeqCst) {
                return Err("login refused".into());
            }
            let mut r =
                TokenResponse::new(format!("login-{n}")).with_refresh_token(format!("rt-{n}"));
            if let Some(l) = self.lifetime {
                r = r.with_expires_in(l);
            }
            Ok(r)
        })
    }

    fn refresh<'a>(&'a self, rt: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_refresh {
                return Err("invalid_grant".into());
            }
            let mut r = TokenResponse::new(format!("refresh-{n}-from-{rt}"));
            if let Some(l) = self.lifetime {
                r = r.with_expires_in(l);
            }
            Ok(r)
        })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn revoke<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> crate::provider::BoxFuture<'a, Result<(), crate::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<crate::Origin> {
        None
    }
}

fn cache(p: Counting) -> (TokenCache, Arc<Counting>) {
    configured(p, Config::default(), None, None)
}

fn configured(
    p: Counting,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<OnChange>,
) -> (TokenCache, Arc<Counting>) {
    let p = Arc::new(p);
    (TokenCache::with(p.clone(), config, store, on_change), p)
}

async fn header(cache: &TokenCache) -> Result<HeaderValue, TokenError> {
    if let Some(local) = cache.cached() {
        return Ok(local.header.clone());
    }
    match cache.lookup() {
        Lookup::Ready(h, _) => Ok(h),
        Lookup::Wait(fut) => fut.await.map(|t| t.header.clone()),
    }
}

#[tokio::test(start_paused = true)]
async fn logs_in_once_and_reuses() {
    let (cache, p) = cache(Counting::default());
    for _ in 0..5 {
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    }
    assert_eq!(p.logins.load(Ordering::SeqCst), 1);
    assert!(cache.cached().is_some(), "the hot path is served");
}

#[tokio::test(start_paused = true)]
async fn refreshes_ahead_in_the_background_and_keeps_refresh_token() {
    let (cache, p) = cache(Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Default::default()
    });
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    // 10 s before expiry: past the refresh point (30 s plus up to 10 s jitter).
    tokio::time::advance(Duration::from_secs(3590)).await;
    assert!(cache.cached().is_none(), "the timer replaced the epoch");
    // The stale but valid token is sent at once while the refresh runs.
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(p.logins.load(Ordering::SeqCst), 1);
    // The refresh response had no refresh token: the old one is kept.
    assert!(cache.token().unwrap().has_refresh_token());
    tokio::time::advance(Duration::from_secs(3590)).await;
    tokio::task::yield_now().await;
    assert!(
        cache.cached().is_none(),
        "the new token's timer replaced the epoch"
    );
    assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
    tokio::time::sleep(Duration::from_millis(1)).await;
    let h = header(&cache).await.unwrap();
    assert_eq!(
        h.to_str().unwrap(),
        "Bearer refresh-2-from-rt-1",
        "{:?}",
        p.refreshes
    );
}

#[tokio::test(start_paused = true)]
async fn expired_token_makes_requests_wait() {
    let (cache, p) = cache(Counting {
        lifetime: Some(Duration::from_secs(60)),
        delay: Duration::from_secs(1),
        ..Default::default()
    });
    header(&cache).await.unwrap();
    tokio::time::advance(Duration::from_secs(120)).await;
    assert!(matches!(cache.lookup(), Lookup::Wait(_)));
    assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn failed_refresh_falls_back_to_one_login() {
    let (cache, p) = cache(Counting {
        lifetime: Some(Duration::from_secs(60)),
        fail_refresh: true,
        ..Default::default()
    });
    header(&cache).await.unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(p.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_login_is_typed_and_not_cached() {
    let (cache, p) = cache(Counting::default());
    p.fail_login.store(true, Ordering::SeqCst);
    let err = header(&cache).await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Login);
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "login refused"
    );
    p.fail_login.store(false, Ordering::SeqCst);
    // During the backoff the same error comes back at once, without a provider call.
    let again = header(&cache).await.unwrap_err();
    assert_eq!(again.kind(), TokenErrorKind::Login);
    assert_eq!(p.logins.load(Ordering::SeqCst), 1);
    tokio::time::sleep(DEFAULT_BACKOFF_INITIAL).await;
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_and_resets() {
    let (cache, p) = cache(Counting::default());
    p.fail_login.store(true, Ordering::SeqCst);
    let started = Instant::now();
    // Hammer the cache every millisecond through 10 s of an outage.
    while started.elapsed() < Duration::from_secs(10) {
        let _ = header(&cache).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // 100 ms doubling, each pause jittered to 50-100 %: a handful of calls, not 10,000.
    let calls = p.logins.load(Ordering::SeqCst);
    assert!(
        (5..=12).contains(&calls),
        "{calls} logins during the outage"
    );
    p.fail_login.store(false, Ordering::SeqCst);
    tokio::time::sleep(DEFAULT_BACKOFF_MAX).await;
    header(&cache).await.unwrap();
    // The success reset the streak: the next failure pauses 100 ms at most.
    cache.revoke().await.unwrap();
    p.fail_login.store(true, Ordering::SeqCst);
    let _ = header(&cache).await.unwrap_err();
    let before = p.logins.load(Ordering::SeqCst);
    tokio::time::sleep(DEFAULT_BACKOFF_INITIAL).await;
    let _ = header(&cache).await;
    assert_eq!(p.logins.load(Ordering::SeqCst), before + 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_provider_lengthens_the_pause() {
    struct Busy(AtomicUsize);
    impl TokenProvider for Busy {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err("busy".into()) })
        }
        fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<Duration> {
            Some(Duration::from_secs(20))
        }
        fn revoke<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
        ) -> crate::provider::BoxFuture<'a, Result<(), crate::BoxError>> {
            Box::pin(async { Ok(()) })
        }

        fn origin(&self) -> Option<crate::Origin> {
            None
        }
    }
    let p = Arc::new(Busy(AtomicUsize::new(0)));
    let cache = TokenCache::new(p.clone());
    let _ = header(&cache).await.unwrap_err();
    tokio::time::sleep(Duration::from_secs(19)).await;
    let _ = header(&cache).await.unwrap_err();
    assert_eq!(p.0.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = header(&cache).await.unwrap_err();
    assert_eq!(p.0.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_valid_token_and_retries_later() {
    let (cache, p) = cache(Counting {
        lifetime: Some(Duration::from_secs(100)),
        fail_refresh: true,
        ..Default::default()
    });
    header(&cache).await.unwrap();
    tokio::time::advance(Duration::from_secs(80)).await; // past the refresh point
    p.fail_login.store(true, Ordering::SeqCst);
    for _ in 0..50 {
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Refresh and fallback login failed, then paused: a few tries in 0.5 s, not 50.
    let tries = p.refreshes.load(Ordering::SeqCst);
    assert!((1..=4).contains(&tries), "{tries}");
    // Never past expiry.
    tokio::time::advance(Duration::from_secs(20)).await;
    assert!(header(&cache).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn provider_timeout() {
    let config = Config {
        timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let provider = Counting {
        delay: Duration::from_secs(60),
        ..Default::default()
    };
    let (cache, _p) = configured(provider, config, None, None);
    let started = Instant::now();
    let err = header(&cache).await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_login() {
    let (cache, p) = cache(Counting {
        delay: Duration::from_millis(50),
        ..Default::default()
    });
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { header(&cache).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "Bearer login-1");
    }
    assert_eq!(p.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropped_waiter_does_not_cancel_the_login() {
    let (cache, p) = cache(Counting {
        delay: Duration::from_millis(50),
        ..Default::default()
    });
    let Lookup::Wait(first) = cache.lookup() else {
        panic!("expected a wait")
    };
    drop(first);
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    assert_eq!(p.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn token_without_expiry_is_kept_until_invalidated() {
    let (cache, p) = cache(Counting::default());
    header(&cache).await.unwrap();
    tokio::time::advance(Duration::from_secs(10 * 365 * 86400)).await;
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    cache.invalidate();
    assert!(cache.cached().is_none());
    // Invalidation keeps the refresh token.
    assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(p.logins.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn revoke_forgets_everything() {
    let (cache, p) = cache(Counting::default());
    header(&cache).await.unwrap();
    cache.revoke().await.unwrap();
    assert!(cache.token().is_none());
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 0);
}

#[test]
fn a_wait_started_without_a_runtime_logs_in_on_the_runtime_that_polls_it() {
    let cache = TokenCache::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new("a"))
    }));
    // No runtime here: nothing can be spawned, so no flight is left behind.
    let Lookup::Wait(fut) = cache.lookup() else {
        panic!("expected a wait")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(fut).unwrap().header, "Bearer a");
}

#[test]
fn polled_outside_any_runtime_a_wait_fails_instead_of_panicking() {
    let cache = TokenCache::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new("a"))
    }));
    let Lookup::Wait(fut) = cache.lookup() else {
        panic!("expected a wait")
    };
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let std::task::Poll::Ready(Err(err)) = fut.as_mut().poll(&mut cx) else {
        panic!("expected an error at once")
    };
    assert_eq!(err.kind(), TokenErrorKind::Aborted);
}

#[tokio::test(start_paused = true)]
async fn a_late_401_keeps_the_newer_token() {
    let (cache, p) = cache(Counting::default());
    header(&cache).await.unwrap();
    let first = cache.token().unwrap().generation();
    cache.invalidate_generation(first);
    assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
    let second = cache.token().unwrap().generation();
    assert!(second > first);
    header(&cache).await.unwrap(); // fills this thread's copy
    assert!(cache.cached().is_some());
    // A 401 for the first token arrives late: the second stays.
    cache.invalidate_generation(first);
    assert_eq!(cache.token().unwrap().generation(), second);
    assert!(cache.cached().is_some());
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_dropped_cache_frees_its_copies() {
    let (first, _) = cache(Counting::default());
    header(&first).await.unwrap(); // logs in
    header(&first).await.unwrap(); // makes this thread's copy
    let copy = Arc::downgrade(&first.cached().expect("this thread's copy"));
    drop(first);
    assert!(copy.upgrade().is_none(), "the copy went with its cache");
    // The slot may be reused (other tests take slots too): the new cache's copy is its own.
    let (second, _) = cache(Counting::default());
    assert!(second.cached().is_none());
    assert_eq!(header(&second).await.unwrap(), "Bearer login-1");
    header(&second).await.unwrap();
    assert!(second.cached().is_some());
}

#[test]
fn copies_stop_at_the_refresh_point_without_any_runtime() {
    let cache = TokenCache::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new("a").with_expires_in(Duration::from_secs(3600)))
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        header(&cache).await.unwrap();
        header(&cache).await.unwrap();
        assert!(cache.cached().is_some());
        // Past the refresh point, with no task of the cache's running: the copy is not
        // sent, the slow path starts the refresh and sends the valid token meanwhile.
        tokio::time::advance(Duration::from_secs(3590)).await;
        assert!(cache.cached().is_none());
        assert!(matches!(cache.lookup(), Lookup::Ready(..)));
    });
    drop(rt);
    // Nothing of the cache's ran on that runtime but the refresh.
    assert!(cache.token().is_some());
}

#[tokio::test]
async fn invalidate_and_revoke_retire_every_copy_at_once() {
    let (cache, _) = cache(Counting::default());
    header(&cache).await.unwrap();
    header(&cache).await.unwrap();
    let copy = Arc::downgrade(&cache.cached().unwrap());
    cache.invalidate();
    assert!(copy.upgrade().is_none(), "freed");
    assert!(cache.cached().is_none());
    header(&cache).await.unwrap();
    header(&cache).await.unwrap();
    let copy = Arc::downgrade(&cache.cached().unwrap());
    cache.revoke().await.unwrap();
    assert!(copy.upgrade().is_none(), "freed");
    assert!(cache.shared.lock().locals.is_empty());
}

fn shared_cache(store: &crate::store::MemoryStore) -> (TokenCache, Arc<Counting>) {
    shared_cache_with_hook(store, None)
}

fn shared_cache_with_hook(
    store: &crate::store::MemoryStore,
    on_change: Option<OnChange>,
) -> (TokenCache, Arc<Counting>) {
    let provider = Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    };
    configured(
        provider,
        Config::default(),
        Some(Arc::new(store.clone())),
        on_change,
    )
}

#[tokio::test]
async fn caches_sharing_a_store_share_one_login_and_one_refresh() {
    let store = crate::store::MemoryStore::new();
    let (a, pa) = shared_cache(&store);
    let (b, pb) = shared_cache(&store);

    assert_eq!(header(&a).await.unwrap(), "Bearer login-1");
    assert_eq!(
        header(&b).await.unwrap(),
        "Bearer login-1",
        "adopted from the store"
    );
    assert_eq!(pb.logins.load(Ordering::SeqCst), 0);
    assert_eq!(store.get().unwrap().version(), 1);

    // The server refused the token: `a` refreshes (the stored token is the refused one)…
    a.invalidate();
    assert_eq!(header(&a).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(pa.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(store.get().unwrap().version(), 2);
    // …and `b`, refused too, finds `a`'s new token instead of spending the refresh token.
    b.invalidate();
    assert_eq!(header(&b).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(pb.refreshes.load(Ordering::SeqCst), 0);
    assert_eq!(pb.logins.load(Ordering::SeqCst), 0);

    // `b` refreshes next with the newest refresh token, which `a` left in the store.
    b.invalidate();
    header(&b).await.unwrap();
    assert_eq!(pb.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(store.get().unwrap().version(), 3);
}

#[tokio::test]
async fn revoke_clears_the_store_and_tells_the_hook() {
    let store = crate::store::MemoryStore::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook: OnChange = Arc::new({
        let seen = seen.clone();
        move |change: TokenChange<'_>| {
            let entry = match change {
                TokenChange::Login(t) => format!("login {}", t.version()),
                TokenChange::Refresh(t) => format!("refresh {}", t.version()),
                TokenChange::Store(t) => format!("store {}", t.version()),
                TokenChange::Invalidated => "invalidated".to_owned(),
                TokenChange::Revoked => "revoked".to_owned(),
            };
            seen.lock().unwrap().push(entry)
        }
    });
    let (cache, _) = shared_cache_with_hook(&store, Some(hook));
    header(&cache).await.unwrap();
    cache.invalidate();
    header(&cache).await.unwrap();
    cache.revoke().await.unwrap();
    assert!(store.get().unwrap().token().is_none(), "no token stored");
    assert_eq!(
        *seen.lock().unwrap(),
        ["login 1", "invalidated", "refresh 2", "revoked"]
    );
}

/// A store that keeps answering with version 1, as one whose saves lag behind.
struct Lagging;

impl TokenStore for Lagging {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        let old = TokenResponse::new("old")
            .with_refresh_token("rt-old")
            .with_expires_in(Duration::from_secs(3600));
        Box::pin(async move { Ok(Some(StoredToken::new(1, old))) })
    }
    fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async { Ok(true) })
    }
}

#[tokio::test]
async fn an_older_stored_token_is_never_adopted() {
    let provider = Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    };
    let (cache, p) = configured(provider, Config::default(), Some(Arc::new(Lagging)), None);
    assert_eq!(
        header(&cache).await.unwrap(),
        "Bearer old",
        "newer than nothing"
    );
    cache.invalidate();
    assert_eq!(
        header(&cache).await.unwrap(),
        "Bearer refresh-1-from-rt-old"
    );
    // The store still holds version 1; the cache's token is version 2.
    cache.invalidate();
    assert_eq!(
        header(&cache).await.unwrap(),
        "Bearer refresh-2-from-rt-old"
    );
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 2);
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
    fn lock(&self) -> BoxFuture<'_, Result<crate::store::StoreLock, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
}

#[tokio::test]
async fn a_broken_store_costs_refreshes_not_tokens() {
    let provider = Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    };
    let (cache, p) = configured(provider, Config::default(), Some(Arc::new(Broken)), None);
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    // Without the lock a shared refresh token is not spent: the cache logs in.
    cache.invalidate();
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 0);
    // Clearing the store is part of a clean logout: its failure is reported.
    let err = cache.revoke().await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Revoke);
    assert!(
        cache.token().is_none(),
        "the token is forgotten all the same"
    );
}

/// A token that never expires, sent from 50 short-lived threads: the cache keeps the copies
/// of live threads only.
#[test]
fn copies_of_exited_threads_are_freed() {
    let (cache, _) = cache(Counting::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(header(&cache)).unwrap();
    for _ in 0..50 {
        let cache = cache.clone();
        std::thread::spawn(move || {
            assert!(matches!(cache.lookup(), Lookup::Ready(_, Carried::Copy(_))));
        })
        .join()
        .unwrap();
    }
    assert!(matches!(cache.lookup(), Lookup::Ready(_, Carried::Copy(_))));
    let kept = cache.shared.lock().locals.len();
    assert!(kept <= 2, "{kept} copies kept for 1 live thread");
}

/// Two hours of suspend pass a one-hour token's expiry, although tokio's clock stood still:
/// this thread's copy is not sent, and the next request waits for a new token.
#[tokio::test]
async fn a_suspend_longer_than_the_token_s_life_expires_it() {
    let (cache, p) = cache(Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    });
    header(&cache).await.unwrap();
    header(&cache).await.unwrap();
    assert!(cache.cached().is_some());
    crate::clock::suspend(Duration::from_secs(2 * 3600));
    assert!(cache.cached().is_none(), "the copy outlived its token");
    assert!(cache.token().is_none(), "an expired token is usable");
    assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
}
