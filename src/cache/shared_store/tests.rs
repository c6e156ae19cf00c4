use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use super::*;
use crate::{
    provider::BoxFuture,
    store::{MemoryStore, TokenStore},
    token::TokenResponse,
};

/// Logs in after `delay`, counting the calls begun and the calls that ended.
#[derive(Clone, Default)]
struct Slow {
    delay: Duration,
    begun: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
}

impl Slow {
    fn new(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }
}

impl TokenProvider for Slow {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            let n = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.delay).await;
            self.ended.fetch_add(1, Ordering::SeqCst);
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
    ) -> crate::provider::BoxFuture<'a, Result<(), crate::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<crate::Origin> {
        None
    }
}

fn stored(version: u64) -> StoredToken {
    let expires = std::time::SystemTime::now() + Duration::from_secs(3600);
    StoredToken::new(
        version,
        TokenResponse::new(format!("stored-{version}")).with_expires_at(expires),
    )
}

async fn fetch_from(store: &MemoryStore, provider: &Slow) -> Result<Fetched, Failure> {
    fetch(store, provider, None, 0, None, &Config::default()).await
}

#[tokio::test(start_paused = true)]
async fn a_waiter_adopts_what_the_holder_saves() {
    let store = MemoryStore::new();
    let provider = Slow::default();
    let held = store.try_lock().await.unwrap().unwrap();
    let waiting = tokio::spawn({
        let (store, provider) = (store.clone(), provider.clone());
        async move { fetch_from(&store, &provider).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished());
    // Saved, lock still held: the waiter takes the token without waiting for the lock.
    store.save(&stored(1)).await.unwrap();
    let fetched = waiting.await.unwrap().ok().unwrap();
    assert!(matches!(fetched.step, Step::Stored));
    assert_eq!(fetched.token.access_token(), "stored-1");
    assert_eq!(provider.begun.load(Ordering::SeqCst), 0);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn a_crashed_holder_costs_one_lease() {
    let store = MemoryStore::new().lease(Duration::from_secs(3));
    let provider = Slow::default();
    // Taken and never renewed nor released: its holder died.
    std::mem::forget(store.try_lock().await.unwrap().unwrap());
    let started = Instant::now();
    let fetched = fetch_from(&store, &provider).await.ok().unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_millis(3100),
        "{waited:?}"
    );
    assert_eq!(fetched.token.access_token(), "login-1");
    assert_eq!(fetched.stored.unwrap().version(), 1);
    assert!(!store.is_locked(), "released once saved");
}

#[tokio::test(start_paused = true)]
async fn a_live_holder_is_never_raced() {
    let store = MemoryStore::new().lease(Duration::from_secs(3));
    let provider = Slow::default();
    let held = store.try_lock().await.unwrap().unwrap();
    let renewing = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(held.renew().await.unwrap());
        }
    });
    let started = Instant::now();
    let error = fetch_from(&store, &provider).await.err().unwrap().error;
    assert_eq!(error.kind(), TokenErrorKind::Timeout);
    assert_eq!(started.elapsed(), wait_bound(Config::default().timeout));
    assert_eq!(provider.begun.load(Ordering::SeqCst), 0, "raced the holder");
    renewing.abort();
}

#[tokio::test(start_paused = true)]
async fn a_holder_keeps_its_lease_while_the_provider_is_slow() {
    let store = MemoryStore::new().lease(Duration::from_secs(3));
    let provider = Slow::new(Duration::from_secs(8));
    let fetching = tokio::spawn({
        let (store, provider) = (store.clone(), provider.clone());
        async move { fetch_from(&store, &provider).await }
    });
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(store.is_locked(), "the lease ran out under its holder");
    }
    let fetched = fetching.await.unwrap().ok().unwrap();
    assert_eq!(fetched.token.access_token(), "login-1");
    assert!(!store.is_locked(), "released once saved");
}

#[tokio::test(start_paused = true)]
async fn a_holder_that_lost_its_lease_stops_and_waits() {
    let store = MemoryStore::new().lease(Duration::from_secs(3));
    let provider = Slow::new(Duration::from_secs(5));
    let fetching = tokio::spawn({
        let (store, provider) = (store.clone(), provider.clone());
        async move { fetch_from(&store, &provider).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(provider.begun.load(Ordering::SeqCst), 1);
    // It stalled past its lease, say: another holder takes over, and saves.
    store.expire_lock();
    let other = store.try_lock().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    store.save(&stored(1)).await.unwrap();
    drop(other);
    let fetched = fetching.await.unwrap().ok().unwrap();
    assert!(matches!(fetched.step, Step::Stored), "{:?}", fetched.step);
    assert_eq!(provider.ended.load(Ordering::SeqCst), 0, "its call went on");
}

#[tokio::test(start_paused = true)]
async fn a_revoke_waits_for_the_lock() {
    let store = MemoryStore::new();
    store.save(&stored(4)).await.unwrap();
    let held = store.try_lock().await.unwrap().unwrap();
    let revoking = tokio::spawn({
        let store = store.clone();
        async move { revoke(&store, 2, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!revoking.is_finished());
    store.save(&stored(5)).await.unwrap();
    drop(held);
    assert_eq!(revoking.await.unwrap().unwrap(), 6);
    assert!(store.get().unwrap().is_revoked());
    assert!(!store.is_locked());
}
