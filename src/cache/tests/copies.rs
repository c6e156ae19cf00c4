//! The threads' copies of the header: when they are sent, retired and freed.

use super::*;

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
