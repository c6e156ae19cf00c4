//! Failed fetches: the error each request gets, and the pause before the next try.

use super::*;

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
