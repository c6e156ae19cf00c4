//! The store's calls, each bounded by the cache's timeout: a load and a save that trace what
//! they did, a store that fails or does not answer being an error like another.

use std::{future::Future, time::Duration};

use crate::{
    BoxError,
    error::Reason,
    rt,
    store::{StoredToken, TokenStore},
    trace::{self, Chain},
};

/// The stored record (`Ok(None)` if there is none), or `Err` if the store fails.
pub(super) async fn load(
    store: &dyn TokenStore,
    timeout: Duration,
) -> Result<Option<StoredToken>, ()> {
    match bounded(timeout, store.load()).await {
        Ok(stored) => Ok(stored),
        Err(error) => {
            trace::warn!(name: "store_load", error = %Chain(&*error), "store load failed");
            Err(())
        }
    }
}

/// Saves a new token; not saved (a newer token is there, or the store failed), it is still
/// good.
pub(super) async fn save(store: &dyn TokenStore, record: &StoredToken, timeout: Duration) {
    let version = record.version();
    match bounded(timeout, store.save(record)).await {
        Ok(true) => trace::debug!(name: "store_save", version, saved = true, "token saved"),
        Ok(false) => trace::debug!(
            name: "store_save",
            version,
            saved = false,
            "token not saved: the store holds a newer one"
        ),
        Err(error) => trace::warn!(
            name: "store_save",
            version,
            error = %Chain(&*error),
            "store save failed"
        ),
    }
}

/// A store call, bounded by `timeout`.
pub(super) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, BoxError>>,
) -> Result<T, BoxError> {
    match rt::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(Reason("store call timed out").into()),
    }
}
