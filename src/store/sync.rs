//! How a cache's flight goes through a [`TokenStore`]: the protocol the
//! [module documentation](super) describes, step by step.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use super::{StoredToken, TokenStore};
use crate::{
    BoxError,
    cache::{Config, Failure, Fetched, fetch as fetch_from_provider},
    error::Reason,
    provider::TokenProvider,
    token::Token,
    trace::{self, Chain, Started, Step},
};

/// Fetches a token for a cache that shares `store`: under the store's lock, adopts a newer
/// stored token, or else refreshes with the newest refresh token (or logs in) and saves the
/// result before the lock is released.
///
/// `replaces` is the store version of the token being replaced (0 for none), `known` the
/// greatest version the cache has seen (kept across `revoke`, so that versions never go
/// back). `revoked` tells whether the cache was revoked since the flight started: a token
/// saved by then is cleared again before the lock is released, so no cache adopts it.
///
/// The store failing is not fatal: nothing loaded means a fetch, and a token that cannot be
/// saved is still used. Without the lock, a shared refresh token is not spent: the cache logs
/// in.
pub(crate) async fn fetch(
    store: &dyn TokenStore,
    provider: &dyn TokenProvider,
    refresh_token: Option<String>,
    replaces: u64,
    known: u64,
    config: &Config,
    revoked: impl Fn() -> bool,
) -> Result<Fetched, Failure> {
    let timeout = config.timeout;
    let started = Started::now();
    // The holder may legitimately take a refresh, a login and the store calls.
    let lock = match bounded(timeout.saturating_mul(3), store.lock()).await {
        Ok(lock) => {
            trace::trace!(name: "store_lock", elapsed_ms = started.ms(), "store lock taken");
            Some(lock)
        }
        Err(error) => {
            trace::warn!(
                name: "store_lock",
                elapsed_ms = started.ms(),
                error = %Chain(&*error),
                "store lock failed; a refresh token is not spent without it"
            );
            None
        }
    };
    let stored = match bounded(timeout, store.load()).await {
        Ok(stored) => stored,
        Err(error) => {
            trace::warn!(name: "store_load", error = %Chain(&*error), "store load failed");
            None
        }
    };
    // Only a newer token: an older one may still be in a store whose save is under way.
    if let Some(stored) = stored.as_ref().filter(|s| s.version() > replaces) {
        let now = Instant::now();
        let token = Token::from_response(
            stored.token().clone(),
            now,
            &config.policy,
            None,
            (config.jitter)(),
        );
        match token {
            Ok(token) if token.refresh_at.is_none_or(|r| now < r) => {
                return Ok(Fetched {
                    token,
                    stored: Some(stored.clone()),
                    step: Step::Stored,
                    started,
                });
            }
            // Expired, due or unusable: replace it.
            _ => {}
        }
    }
    trace::debug!(
        name: "store_load",
        adopted = false,
        version = stored.as_ref().map(StoredToken::version),
        replaces,
        "no usable token in the store"
    );
    // The stored refresh token is the newest: another cache may have spent ours.
    let newest = stored.as_ref().filter(|s| s.version() >= replaces);
    let refresh_token = match newest {
        Some(s) => s.token().refresh_token().map(str::to_owned),
        None => refresh_token,
    }
    .filter(|_| lock.is_some());
    let mut fetched = fetch_from_provider(provider, refresh_token, config).await?;
    let version = stored
        .as_ref()
        .map_or(0, StoredToken::version)
        .max(replaces)
        .max(known)
        + 1;
    let record = StoredToken::new(version, fetched.token.to_response());
    // Saved before anyone gets it: a process that stops once it has its token leaves the
    // newest refresh token to the others.
    save(store, &record, timeout).await;
    if revoked() {
        // `revoke` ran while this flight was under way: its token must not be adopted.
        let _ = bounded(timeout, store.clear()).await;
    }
    drop(lock);
    fetched.stored = Some(record);
    Ok(fetched)
}

/// Saves a new token; not saved (a newer token is there, or the store failed), it is still
/// good.
async fn save(store: &dyn TokenStore, record: &StoredToken, timeout: Duration) {
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
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, BoxError>>,
) -> Result<T, BoxError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(Reason("store call timed out").into()),
    }
}
