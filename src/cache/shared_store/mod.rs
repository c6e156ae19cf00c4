//! How a cache's flight goes through a shared [`TokenStore`]: the cache's side of the
//! protocol the [`store` module documentation](crate::store) describes, step by step, with
//! the lease's renewal.

use std::time::Duration;

use tokio::time::Instant;

use super::{
    config::Config,
    flight::fetch::{Failure, Fetched, Refused, fetch as fetch_from_provider},
};
use crate::{
    BoxError, clock,
    error::{TokenError, TokenErrorKind},
    provider::TokenProvider,
    store::{StoredToken, TokenStore},
    token::Token,
    trace::{self, Started, Step},
};

mod acquire;
mod holding;
mod io;

use acquire::{Acquired, acquire};
use holding::{Holding, Lost};
use io::{bounded, load, save};

/// Bounds on the pause between two tries of a held lock; the store is read in each.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);
/// How many times a holder that lost its lease goes back to waiting, at most.
const MAX_ROUNDS: u32 = 4;

/// How long a cache waits for a held lock before it gives up: twice its timeout. A holder
/// that crashed is taken over within one lease, so a lock held that long is held by a live
/// holder that renews it; giving up then fails the fetch rather than race it.
///
/// The wait (the first read included) ends by this deadline, and so does the wait of a round
/// after a lost lease; a hold after it takes four timeouts at most (read, check, provider,
/// save), so a flight stays within its bound of six.
fn wait_bound(timeout: Duration) -> Duration {
    timeout.saturating_mul(2)
}

/// Fetches a token for a cache that shares `store`: adopts a newer stored token, read before
/// and while waiting for the store's lock, or else, under the lock, refreshes with the newest
/// refresh token (or logs in) and saves the result before the lock is released. The lock's
/// lease is renewed meanwhile; a holder that finds it lost stops and waits again.
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
    let fetch = Fetch {
        store,
        provider,
        refresh_token,
        known,
        refused,
        config,
        started: Started::now(),
        give_up: deadline(wait_bound(config.timeout)),
    };
    // Read before waiting: a token another cache saved needs no lock.
    let mut stored = load(store, config.timeout).await.unwrap_or(None);
    let mut rounds = 0;
    loop {
        match fetch.round(stored).await {
            Ok(result) => return result,
            Err(Lost) => {
                if !next_round(&mut rounds, fetch.give_up) {
                    return Err(gave_up());
                }
                stored = None;
            }
        }
    }
}

/// What every round of a [`fetch`] goes by.
struct Fetch<'a> {
    store: &'a dyn TokenStore,
    provider: &'a dyn TokenProvider,
    /// The cache's refresh token, for when the store holds none newer.
    refresh_token: Option<String>,
    known: u64,
    refused: Option<Refused>,
    config: &'a Config,
    started: Started,
    /// When waiting for the lock ends.
    give_up: Instant,
}

impl Fetch<'_> {
    /// One round, from `stored` (read last): adopts a newer token, or waits for the lock and,
    /// holding it, reads the store again, then fetches from the provider and saves. `Err` if
    /// the lease was lost on the way: the holder stopped, and may wait again.
    async fn round(
        &self,
        mut stored: Option<StoredToken>,
    ) -> Result<Result<Fetched, Failure>, Lost> {
        let timeout = self.config.timeout;
        if let Some(fetched) = self.adoptable(stored.as_ref(), false) {
            return Ok(Ok(fetched));
        }
        let waiting = acquire(self.store, timeout, self.give_up, self.started, |s| {
            self.adoptable(s, true)
        });
        let lock = match waiting.await {
            Acquired::Lock(lock) => Some(lock),
            Acquired::Adopted(fetched) => return Ok(Ok(fetched)),
            // The store is unreachable: without the lock, from what was read last.
            Acquired::Unreachable(last) => {
                stored = last.or(stored);
                None
            }
            Acquired::GaveUp => return Ok(Err(gave_up())),
        };
        let mut holding = lock.as_ref().map(|lock| Holding::new(lock, timeout));
        if let Some(holding) = &mut holding {
            // A holder before this one may have saved since the last read.
            stored = holding
                .guard(load(self.store, timeout))
                .await?
                .unwrap_or(None);
            if let Some(fetched) = self.adoptable(stored.as_ref(), false) {
                return Ok(Ok(fetched));
            }
        }
        let fetched = self
            .fetch_and_save(stored.as_ref(), holding.as_mut())
            .await?;
        drop(lock);
        Ok(fetched)
    }

    /// With no usable token in the store: refreshes with the newest refresh token (or logs
    /// in), and saves the new token before it is handed out. Holding the lock, the lease is
    /// renewed meanwhile; without it (`holding` is `None`), no refresh token is spent.
    async fn fetch_and_save(
        &self,
        stored: Option<&StoredToken>,
        mut holding: Option<&mut Holding<'_>>,
    ) -> Result<Result<Fetched, Failure>, Lost> {
        let timeout = self.config.timeout;
        trace::debug!(
            name: "store_load",
            adopted = false,
            version = stored.map(StoredToken::version),
            replaces = self.known,
            "no usable token in the store"
        );
        // The stored refresh token is the newest: another cache may have spent ours. A revoked
        // record has none, and its revoke ended the session of the refresh tokens before it.
        let refresh_token = match stored.filter(|s| s.version() >= self.known) {
            Some(s) => s.token().and_then(|t| t.refresh_token()).map(str::to_owned),
            None => self.refresh_token.clone(),
        }
        .filter(|_| holding.is_some());
        let fetching = fetch_from_provider(self.provider, refresh_token, self.refused, self.config);
        let fetched = match &mut holding {
            // The lease is checked right before the provider is called: a holder that lost
            // it spends no refresh token.
            Some(holding) => {
                holding.confirm().await?;
                holding.guard(fetching).await?
            }
            None => fetching.await,
        };
        let mut fetched = match fetched {
            Ok(fetched) => fetched,
            Err(failure) => return Ok(Err(failure)),
        };
        let version = stored.map_or(0, StoredToken::version).max(self.known) + 1;
        let record = StoredToken::new(version, fetched.token.to_response());
        // Saved before anyone gets it: a process that stops once it has its token leaves the
        // newest refresh token to the others. The lease is kept while saving, so that no one
        // refreshes with the refresh token just spent; a lost lease no longer matters: the
        // token is good, and the save only writes over older versions.
        match holding {
            Some(holding) => holding.keep(save(self.store, &record, timeout)).await,
            None => save(self.store, &record, timeout).await,
        }
        fetched.stored = Some(record);
        Ok(Ok(fetched))
    }

    /// The stored token, if this fetch adopts it (see [`adopt`]).
    fn adoptable(&self, stored: Option<&StoredToken>, due: bool) -> Option<Fetched> {
        adopt(stored, self.known, self.config, self.started, due)
    }
}

/// Saves a revoked record above every version in `store` and above `known`, under the
/// store's lock (waited for as a fetch waits, but for no token), so that no cache adopts the
/// revoked token and the versions go on from there. Without the lock (the store is
/// unreachable, or the lock stayed held), it is saved all the same: the save only writes
/// over older versions. Returns the record's version, or the store's error.
pub(crate) async fn revoke(
    store: &dyn TokenStore,
    known: u64,
    timeout: Duration,
) -> Result<u64, BoxError> {
    let started = Started::now();
    let give_up = deadline(wait_bound(timeout));
    let lock = match acquire(store, timeout, give_up, started, |_| None).await {
        Acquired::Lock(lock) => Some(lock),
        Acquired::Adopted(_) | Acquired::Unreachable(_) | Acquired::GaveUp => None,
    };
    let mut holding = lock.as_ref().map(|lock| Holding::new(lock, timeout));
    let revoking = async {
        let stored = load(store, timeout).await.unwrap_or(None);
        let version = stored.as_ref().map_or(0, StoredToken::version).max(known) + 1;
        let saved = bounded(timeout, store.save(&StoredToken::revoked(version))).await;
        saved.map(|_| version)
    };
    let result = match &mut holding {
        Some(holding) => holding.keep(revoking).await,
        None => revoking.await,
    };
    drop(lock);
    result
}

/// The stored token, as a fetch adopts it: newer than `known`, not expired, and not due for
/// refresh unless `due` (a waiter takes a token due for refresh, which its requests can send
/// while it waits for the lock to refresh it).
fn adopt(
    stored: Option<&StoredToken>,
    known: u64,
    config: &Config,
    started: Started,
    due: bool,
) -> Option<Fetched> {
    // Only a newer token: an older one may still be in a store whose save is under way.
    let stored = stored.filter(|s| s.version() > known)?;
    let now = clock::now();
    let token = Token::from_response(
        stored.token()?.clone(),
        now,
        &config.policy,
        None,
        (config.random)(),
    )
    .ok()?;
    let usable = if due {
        token.expires_at.is_none_or(|e| now < e)
    } else {
        token.refresh_at.is_none_or(|r| now < r)
    };
    usable.then(|| Fetched {
        token,
        stored: Some(stored.clone()),
        step: Step::Stored,
        started,
    })
}

/// Whether a holder that lost its lease may wait for the lock again.
fn next_round(rounds: &mut u32, give_up: Instant) -> bool {
    *rounds += 1;
    *rounds < MAX_ROUNDS && Instant::now() < give_up
}

/// A fetch that gave up waiting for the lock held by a live holder.
fn gave_up() -> Failure {
    TokenError::with_source(TokenErrorKind::Timeout, LockHeld).into()
}

/// `after` from now, or far off (a year) if that overflows.
fn deadline(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Why a fetch gave up waiting for the store's lock.
#[derive(Debug)]
struct LockHeld;

impl std::fmt::Display for LockHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the token store's lock stayed held by a live holder")
    }
}

impl std::error::Error for LockHeld {}

#[cfg(test)]
mod tests;
