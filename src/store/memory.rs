//! [`MemoryStore`]: a store shared by caches in one process.

use std::{
    fmt,
    pin::pin,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    TokenStore,
    lock::{Lease, StoreLock},
    record::StoredToken,
};
use crate::{BoxError, provider::BoxFuture, rt};

/// Default length of the lock's lease: as `RedisStore`'s.
const DEFAULT_LEASE: Duration = Duration::from_secs(3);
/// The shortest and longest leases: a day is longer than any hold, and keeps the deadline
/// arithmetic from overflowing.
const MIN_LEASE: Duration = Duration::from_millis(10);
const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);

/// A [`TokenStore`] in memory, for several caches in one process that should share one login:
/// say, an HTTP client and a gRPC client of the same account, each with its own
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// Clones share the store. Its lock is a lease, as a store shared by processes grants it (see
/// "The lock is a lease" in the [module documentation](super)): caches sharing it never log
/// in or refresh at the same time, and a cache whose flight stalls (its runtime is no longer
/// driven) holds it for one [lease](MemoryStore::lease) at most.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{TokenCache, provider::StaticToken, store::MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::TokenError> {
/// let store = MemoryStore::new();
/// let http = TokenCache::builder(StaticToken::new("abc")).store(store.clone()).build();
/// let grpc = TokenCache::builder(StaticToken::new("abc")).store(store.clone()).build();
///
/// let first = http.get().await?; // logs in and saves the token
/// let second = grpc.get().await?; // finds it in the store
/// assert_eq!(first.access_token(), second.access_token());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    lease: Duration,
}

#[derive(Default)]
struct Inner {
    /// The last record saved.
    token: Mutex<Option<StoredToken>>,
    /// The lock's holder, if any: its lease may have run out.
    holder: Mutex<Option<Holder>>,
    /// The source of the holders' tokens.
    next: AtomicU64,
    /// Wakes [`MemoryStore::lock`]'s waiters when a lease ends early.
    released: Notify,
}

#[derive(Clone, Copy, Debug)]
struct Holder {
    token: u64,
    until: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            lease: DEFAULT_LEASE,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the lock's lease lasts after it is taken or renewed. The cache holding the
    /// lock renews it every third of that while its flight runs, and releases it when the
    /// flight ends; a flight that stalls holds it this long at most.
    ///
    /// Defaults to 3 seconds. Clamped to between 10 ms and a day. Applies to locks taken
    /// through this handle and its clones made from now on.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(MIN_LEASE, MAX_LEASE);
        self
    }

    /// The stored record, if any: a token, or a [revoked](StoredToken::revoked) record.
    pub fn get(&self) -> Option<StoredToken> {
        self.slot().clone()
    }

    /// Whether a cache holds the lock now, its lease still running.
    pub fn is_locked(&self) -> bool {
        let now = Instant::now();
        self.inner.holder().is_some_and(|h| now < h.until)
    }

    /// Ends the lease under way, as if its holder had stalled until it ran out: the next try
    /// takes the lock, the holder's next renewal finds its lease lost, and its release leaves
    /// the new holder's lock alone. For tests of what a stalled holder costs.
    pub fn expire_lock(&self) {
        *self.inner.holder() = None;
        self.inner.released.notify_waiters();
    }

    fn slot(&self) -> MutexGuard<'_, Option<StoredToken>> {
        self.inner
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the lock if it is free or its lease has run out.
    fn take(&self) -> Result<StoreLock, Holder> {
        let now = Instant::now();
        let mut holder = self.inner.holder();
        if let Some(held) = *holder {
            if now < held.until {
                return Err(held);
            }
        }
        let token = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        *holder = Some(Holder {
            token,
            until: now + self.lease,
        });
        let lease = MemoryLease {
            inner: self.inner.clone(),
            token,
            lease: self.lease,
        };
        Ok(StoreLock::leased(self.lease, lease))
    }
}

impl Inner {
    fn holder(&self) -> MutexGuard<'_, Option<Holder>> {
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TokenStore for MemoryStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        let token = self.get();
        Box::pin(async move { Ok(token) })
    }

    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        let saved = {
            let mut slot = self.slot();
            let newer = slot.as_ref().is_none_or(|s| token.version() > s.version());
            if newer {
                *slot = Some(token.clone());
            }
            newer
        };
        Box::pin(async move { Ok(saved) })
    }

    /// Waits until the lock is released or its lease runs out, and takes it.
    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(async move {
            loop {
                // Registered before the try, so that a release between the two wakes it.
                let mut released = pin!(self.inner.released.notified());
                released.as_mut().enable();
                let held = match self.take() {
                    Ok(lock) => return Ok(lock),
                    Err(held) => held,
                };
                let left = held.until.saturating_duration_since(Instant::now());
                // Woken by a release, or when the lease runs out.
                let _ = rt::timeout(left, released).await;
            }
        })
    }

    fn try_lock(&self) -> BoxFuture<'_, Result<Option<StoreLock>, BoxError>> {
        let lock = self.take().ok();
        Box::pin(async move { Ok(lock) })
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("token", &*self.slot())
            .field("locked", &self.is_locked())
            .field("lease", &self.lease)
            .finish()
    }
}

/// A holder's lease on a [`MemoryStore`]'s lock.
struct MemoryLease {
    inner: Arc<Inner>,
    token: u64,
    lease: Duration,
}

impl Lease for MemoryLease {
    fn renew(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        let now = Instant::now();
        let renewed = {
            let mut holder = self.inner.holder();
            match &mut *holder {
                Some(held) if held.token == self.token && now < held.until => {
                    held.until = now + self.lease;
                    true
                }
                _ => false,
            }
        };
        Box::pin(async move { Ok(renewed) })
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        let mut holder = self.inner.holder();
        if holder.is_some_and(|h| h.token == self.token) {
            *holder = None;
            drop(holder);
            self.inner.released.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TokenResponse;

    #[tokio::test]
    async fn keeps_the_newest_version() {
        let store = MemoryStore::new();
        let token = |v| StoredToken::new(v, TokenResponse::new(format!("t{v}")));
        assert!(store.save(&token(2)).await.unwrap());
        assert!(!store.save(&token(1)).await.unwrap());
        assert!(!store.save(&token(2)).await.unwrap());
        assert_eq!(store.load().await.unwrap().unwrap().version(), 2);

        assert!(store.save(&StoredToken::revoked(3)).await.unwrap());
        assert!(store.load().await.unwrap().unwrap().is_revoked());
        // Versions keep counting after a revoke.
        assert!(!store.save(&token(3)).await.unwrap());
        assert!(store.save(&token(4)).await.unwrap());
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_until_dropped() {
        let store = MemoryStore::new();
        let held = store.lock().await.unwrap();
        assert_eq!(held.lease(), Some(DEFAULT_LEASE));
        assert!(store.try_lock().await.unwrap().is_none());
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.lock().await.map(drop).is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        assert!(waiting.await.unwrap());
        assert!(!store.is_locked());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_runs_out_unless_renewed() {
        let store = MemoryStore::new().lease(Duration::from_secs(3));
        let held = store.try_lock().await.unwrap().unwrap();
        // Renewed every second: held for as long as that goes on.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(held.renew().await.unwrap());
            assert!(store.try_lock().await.unwrap().is_none());
        }
        // Not renewed (its holder stalled): it runs out after one lease, and a waiter gets it.
        let started = Instant::now();
        let waiter = store.lock().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // The stalled holder can neither renew nor release the new holder's lock.
        assert!(!held.renew().await.unwrap());
        drop(held);
        assert!(store.is_locked());
        assert!(waiter.renew().await.unwrap());
        drop(waiter);
        assert!(!store.is_locked());
    }

    #[tokio::test]
    async fn an_expired_lock_is_lost_to_its_holder() {
        let store = MemoryStore::new();
        let stalled = store.try_lock().await.unwrap().unwrap();
        store.expire_lock();
        let next = store.try_lock().await.unwrap().expect("the lock is free");
        assert!(!stalled.renew().await.unwrap());
        drop(stalled);
        assert!(
            store.is_locked(),
            "the stalled holder released the new lock"
        );
        assert!(next.renew().await.unwrap());
    }

    #[test]
    fn the_lease_is_clamped() {
        assert_eq!(MemoryStore::new().lease(Duration::ZERO).lease, MIN_LEASE);
        assert_eq!(MemoryStore::new().lease(Duration::MAX).lease, MAX_LEASE);
    }
}
