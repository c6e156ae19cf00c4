//! [`MemoryStore`]: a store shared by caches in one process.

use std::sync::{Arc, Mutex, PoisonError};

use super::{StoreLock, StoredToken, TokenStore};
use crate::{BoxError, BoxFuture};

/// A [`TokenStore`] in memory, for several caches in one process that should share one login:
/// say, an HTTP client and a gRPC client of the same account, each with its own
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// Clones share the store. Its lock is a Tokio mutex, so caches sharing it never log in or
/// refresh at the same time.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BearerAuthLayer, provider::StaticToken, store::MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::TokenError> {
/// let store = MemoryStore::new();
/// let http = BearerAuthLayer::new(StaticToken::new("abc")).store(store.clone());
/// let grpc = BearerAuthLayer::new(StaticToken::new("abc")).store(store.clone());
///
/// let first = http.cache().get().await?; // logs in and saves the token
/// let second = grpc.cache().get().await?; // finds it in the store
/// assert_eq!(first.access_token(), second.access_token());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last record saved.
    token: Mutex<Option<StoredToken>>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored record, if any: a token, or a [revoked](StoredToken::revoked) record.
    pub fn get(&self) -> Option<StoredToken> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<StoredToken>> {
        self.inner
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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

    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        let lock = self.inner.lock.clone();
        Box::pin(async move { Ok(StoreLock::new(lock.lock_owned().await)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenResponse;

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
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.lock().await.map(drop).is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        assert!(waiting.await.unwrap());
    }
}
