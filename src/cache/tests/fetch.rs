//! Logins and refreshes: when they start, who waits for them, and what a wait comes to.

use super::*;

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
