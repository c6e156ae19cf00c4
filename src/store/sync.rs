//! How a cache's flight goes through a [`TokenStore`]: the protocol the
//! [module documentation](super) describes, step by step.

use std::{future::Future, time::Duration};

use super::{StoreLock, StoredToken, TokenStore};
use crate::{
    BoxError,
    cache::{Config, Failure, Fetched, Refused, fetch as fetch_from_provider},
    clock,
    error::Reason,
    provider::TokenProvider,
    rt,
    token::Token,
    trace::{self, Chain, Started, Step},
};

/// Fetches a token for a cache that shares `store`: under the store's lock, adopts a newer
/// stored token, or else refreshes with the newest refresh token (or logs in) and saves the
/// result before the lock is released.
///
/// `known` is the greatest version the cache has seen: that of the token being replaced, or
/// of the revoked record its last revoke saved (0 for none). Only a stored token above it is
/// adopted, so a cache never adopts a token it has replaced or revoked.
///
/// The store failing is not fatal: nothing loaded means a fetch, and a token that cannot be
/// saved is still used. Without the lock, a shared refresh token is not spent: the cache logs
/// in.
pub(crate) async fn fetch(
    store: &dyn TokenStore,
    provider: &dyn TokenProvider,
    refresh_token: Option<String>,
    known: u64,
    refused: Option<Refused>,
    config: &Config,
) -> Result<Fetched, Failure> {
    let timeout = config.timeout;
    let started = Started::now();
    let lock = lock(store, timeout, started).await;
    let stored = load(store, timeout).await;
    // Only a newer token: an older one may still be in a store whose save is under way.
    let newer = stored.as_ref().filter(|s| s.version() > known);
    if let Some((stored, token)) = newer.and_then(|s| Some((s, s.token()?))) {
        let now = clock::now();
        let token =
            Token::from_response(token.clone(), now, &config.policy, None, (config.jitter)());
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
        replaces = known,
        "no usable token in the store"
    );
    // The stored refresh token is the newest: another cache may have spent ours. A revoked
    // record has none, and its revoke ended the session of the refresh tokens before it.
    let refresh_token = match stored.as_ref().filter(|s| s.version() >= known) {
        Some(s) => s.token().and_then(|t| t.refresh_token()).map(str::to_owned),
        None => refresh_token,
    }
    .filter(|_| lock.is_some());
    let mut fetched = fetch_from_provider(provider, refresh_token, refused, config).await?;
    let version = stored.as_ref().map_or(0, StoredToken::version).max(known) + 1;
    let record = StoredToken::new(version, fetched.token.to_response());
    // Saved before anyone gets it: a process that stops once it has its token leaves the
    // newest refresh token to the others.
    save(store, &record, timeout).await;
    drop(lock);
    fetched.stored = Some(record);
    Ok(fetched)
}

/// Saves a revoked record above every version in `store` and above `known`, under the
/// store's lock, so that no cache adopts the revoked token and the versions go on from there.
/// Returns the record's version, or the store's error.
pub(crate) async fn revoke(
    store: &dyn TokenStore,
    known: u64,
    timeout: Duration,
) -> Result<u64, BoxError> {
    let started = Started::now();
    let lock = lock(store, timeout, started).await;
    let stored = load(store, timeout).await;
    let version = stored.as_ref().map_or(0, StoredToken::version).max(known) + 1;
    let saved = bounded(timeout, store.save(&StoredToken::revoked(version))).await;
    drop(lock);
    saved.map(|_| version)
}

/// Takes the store's lock, or `None` if the store fails or it stays held too long.
async fn lock(store: &dyn TokenStore, timeout: Duration, started: Started) -> Option<StoreLock> {
    // The holder may legitimately take a refresh, a login and the store calls.
    match bounded(timeout.saturating_mul(3), store.lock()).await {
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
    }
}

/// The stored record, or `None` if there is none or the store fails.
async fn load(store: &dyn TokenStore, timeout: Duration) -> Option<StoredToken> {
    match bounded(timeout, store.load()).await {
        Ok(stored) => stored,
        Err(error) => {
            trace::warn!(name: "store_load", error = %Chain(&*error), "store load failed");
            None
        }
    }
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
    match rt::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(Reason("store call timed out").into()),
    }
}
