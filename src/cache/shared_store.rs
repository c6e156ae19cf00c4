//! How a cache's flight goes through a shared [`TokenStore`]: the cache's side of the
//! protocol the [`store` module documentation](crate::store) describes, step by step, with
//! the lease's renewal.

use std::{future::Future, pin::pin, task::Poll, time::Duration};

use tokio::time::Instant;

use super::{Config, Failure, Fetched, Refused, fetch as fetch_from_provider};
use crate::{
    BoxError, clock,
    error::{Reason, TokenError, TokenErrorKind},
    provider::TokenProvider,
    rt,
    store::{StoreLock, StoredToken, TokenStore},
    token::Token,
    trace::{self, Chain, Started, Step},
};

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
    let timeout = config.timeout;
    let started = Started::now();
    let give_up = deadline(wait_bound(timeout));
    let adoptable =
        |stored: Option<&StoredToken>, due: bool| adopt(stored, known, config, started, due);
    // Read before waiting: a token another cache saved needs no lock.
    let mut stored = load(store, timeout).await.unwrap_or(None);
    let mut rounds = 0;
    loop {
        if let Some(fetched) = adoptable(stored.as_ref(), false) {
            return Ok(fetched);
        }
        let lock = match acquire(store, timeout, give_up, started, |s| adoptable(s, true)).await {
            Acquired::Lock(lock) => Some(lock),
            Acquired::Adopted(fetched) => return Ok(fetched),
            // The store is unreachable: without the lock, from what was read last.
            Acquired::Unreachable(last) => {
                stored = last.or(stored);
                None
            }
            Acquired::GaveUp => return Err(gave_up()),
        };
        let mut holding = lock.as_ref().map(|lock| Holding::new(lock, timeout));
        if let Some(holding) = &mut holding {
            // A holder before this one may have saved since the last read.
            match holding.guard(load(store, timeout)).await {
                Ok(read) => stored = read.unwrap_or(None),
                Err(Lost) => {
                    stored = None;
                    if next_round(&mut rounds, give_up) {
                        continue;
                    }
                    return Err(gave_up());
                }
            }
            if let Some(fetched) = adoptable(stored.as_ref(), false) {
                return Ok(fetched);
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
            None => refresh_token.clone(),
        }
        .filter(|_| lock.is_some());
        let fetching = fetch_from_provider(provider, refresh_token, refused, config);
        let fetched = match &mut holding {
            // The lease is checked right before the provider is called: a holder that lost
            // it spends no refresh token.
            Some(holding) => match holding.confirm().await {
                Ok(()) => holding.guard(fetching).await,
                Err(lost) => Err(lost),
            },
            None => Ok(fetching.await),
        };
        let mut fetched = match fetched {
            Ok(fetched) => fetched?,
            Err(Lost) => {
                stored = None;
                if next_round(&mut rounds, give_up) {
                    continue;
                }
                return Err(gave_up());
            }
        };
        let version = stored.as_ref().map_or(0, StoredToken::version).max(known) + 1;
        let record = StoredToken::new(version, fetched.token.to_response());
        // Saved before anyone gets it: a process that stops once it has its token leaves the
        // newest refresh token to the others. The lease is kept while saving, so that no one
        // refreshes with the refresh token just spent; a lost lease no longer matters: the
        // token is good, and the save only writes over older versions.
        match &mut holding {
            Some(holding) => holding.keep(save(store, &record, timeout)).await,
            None => save(store, &record, timeout).await,
        }
        drop(lock);
        fetched.stored = Some(record);
        return Ok(fetched);
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

/// What waiting for the lock came to.
enum Acquired {
    Lock(StoreLock),
    /// A newer token was read while waiting.
    Adopted(Fetched),
    /// The store failed: the lock, or a read while waiting for it. Holds the last record
    /// read while waiting, if any.
    Unreachable(Option<StoredToken>),
    /// The lock stayed held until `give_up`.
    GaveUp,
}

/// Takes the store's lock, or waits while another cache holds it, reading the store between
/// two tries and adopting what `adopt` takes from it.
async fn acquire(
    store: &dyn TokenStore,
    timeout: Duration,
    give_up: Instant,
    started: Started,
    adopt: impl Fn(Option<&StoredToken>) -> Option<Fetched>,
) -> Acquired {
    let mut pause = POLL_MIN;
    let mut last = None;
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            trace::warn!(
                name: "store_lock",
                elapsed_ms = started.ms(),
                tries,
                error = %Chain(&LockHeld),
                "gave up waiting for the store's lock"
            );
            return Acquired::GaveUp;
        }
        // A store that waits in `try_lock` (the default) may take until `give_up`; one that
        // does not answer within the timeout is taken to be unreachable.
        let bound = timeout.min(left);
        let error = match rt::timeout(bound, store.try_lock()).await {
            Ok(Ok(Some(lock))) => {
                trace::trace!(
                    name: "store_lock",
                    elapsed_ms = started.ms(),
                    tries,
                    "store lock taken"
                );
                return Acquired::Lock(lock);
            }
            Ok(Ok(None)) => None,
            Ok(Err(error)) => Some(error),
            Err(_) if bound == left => continue,
            Err(_) => Some(Reason("store call timed out").into()),
        };
        if let Some(error) = error {
            trace::warn!(
                name: "store_lock",
                elapsed_ms = started.ms(),
                error = %Chain(&*error),
                "store lock failed; a refresh token is not spent without it"
            );
            return Acquired::Unreachable(last);
        }
        // Held by another cache: read what it may have saved meanwhile.
        pause_for(pause.min(left)).await;
        pause = pause.saturating_mul(2).min(POLL_MAX);
        let left = give_up.saturating_duration_since(Instant::now());
        let bound = timeout.min(left);
        let read = match rt::timeout(bound, store.load()).await {
            Ok(read) => read,
            // Out of time: given up at the top of the loop.
            Err(_) if bound == left => continue,
            Err(_) => Err(Reason("store call timed out").into()),
        };
        match read {
            Ok(stored) => {
                if let Some(fetched) = adopt(stored.as_ref()) {
                    return Acquired::Adopted(fetched);
                }
                last = stored;
            }
            Err(error) => {
                trace::warn!(name: "store_load", error = %Chain(&*error), "store load failed");
                return Acquired::Unreachable(last);
            }
        }
    }
}

/// The store's lock, held: renews its lease while the holder works.
struct Holding<'a> {
    lock: &'a StoreLock,
    /// The lease's length; `None` for a lock that does not run out.
    lease: Option<Duration>,
    /// Since when the lease is known to run (taken, or last renewed): it lasts a lease
    /// from there. Renewal is due a third of a lease after it.
    renewed: Instant,
    /// When to renew next: a third of a lease after `renewed`, sooner after a failed try.
    next: Instant,
    /// The lease was found lost.
    lost: bool,
    /// The cache's timeout, which bounds a renewal too.
    timeout: Duration,
}

/// The lease was found lost: another cache holds the lock, or none does.
struct Lost;

impl<'a> Holding<'a> {
    fn new(lock: &'a StoreLock, timeout: Duration) -> Self {
        // The lock was taken a moment ago: counting its lease from now is close enough for
        // scheduling renewals a third of a lease apart.
        let now = Instant::now();
        let lease = lock.lease();
        Self {
            lock,
            lease,
            renewed: now,
            next: now + lease.map_or(Duration::ZERO, |l| l / 3),
            lost: false,
            timeout,
        }
    }

    /// Renews the lease now: `Err(Lost)` if it is lost. A renewal that fails leaves the
    /// holder holding: the store is likely unreachable for the others too.
    async fn confirm(&mut self) -> Result<(), Lost> {
        if self.lease.is_none() {
            return Ok(());
        }
        self.renew().await;
        if self.lost { Err(Lost) } else { Ok(()) }
    }

    /// Runs `work` while renewing the lease; stops it (drops it) if the lease is lost.
    async fn guard<F: Future>(&mut self, work: F) -> Result<F::Output, Lost> {
        self.during(work, true).await
    }

    /// Runs `work` while renewing the lease, to its end even if the lease is lost.
    async fn keep<F: Future>(&mut self, work: F) -> F::Output {
        match self.during(work, false).await {
            Ok(output) => output,
            Err(Lost) => unreachable!("`during` runs to the end unless told to stop"),
        }
    }

    async fn during<F: Future>(&mut self, work: F, stop: bool) -> Result<F::Output, Lost> {
        let mut work = pin!(work);
        if self.lease.is_none() || self.lost {
            return if self.lost && stop {
                Err(Lost)
            } else {
                Ok(work.await)
            };
        }
        let mut renewing = pin!(self.renew_until_lost());
        let mut renewing_done = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            if !renewing_done && renewing.as_mut().poll(cx).is_ready() {
                renewing_done = true;
                if stop {
                    return Poll::Ready(Err(Lost));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Renews the lease when due, until it is found lost.
    async fn renew_until_lost(&mut self) {
        while !self.lost {
            renewal_due(self.next).await;
            self.renew().await;
        }
    }

    /// One renewal, bounded by a third of the lease (and the timeout): the next is due by
    /// then.
    async fn renew(&mut self) {
        let Some(lease) = self.lease else { return };
        let sent = Instant::now();
        match rt::timeout((lease / 3).min(self.timeout), self.lock.renew()).await {
            Ok(Ok(true)) => {
                self.renewed = sent;
                self.next = sent + lease / 3;
            }
            Ok(Ok(false)) => {
                self.lost = true;
                trace::warn!(
                    name: "store_lock",
                    held_ms = trace::ms(sent.saturating_duration_since(self.renewed)),
                    error = %Chain(&LeaseLost),
                    "the store's lock was lost; waiting for it again"
                );
            }
            failed => {
                let error: BoxError = match failed {
                    Ok(Err(error)) => error,
                    _ => Reason("store call timed out").into(),
                };
                trace::warn!(
                    name: "store_lock",
                    error = %Chain(&*error),
                    "the lease on the store's lock could not be renewed"
                );
                // Tried again soon: the lease may still be saved.
                self.next = Instant::now() + (lease / 10).max(POLL_MIN);
            }
        }
    }
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

/// The pause between two tries of a held lock. Under the model checker, which does not model
/// time, a yield that lets the holder run.
async fn pause_for(pause: Duration) {
    rt::sleep(pause).await;
}

/// Waits until a renewal is due. Under the model checker, which does not model time, never:
/// leases do not run out there unless a test ends them, and the holder's check before it
/// calls the provider finds that.
#[cfg(not(shuttle))]
async fn renewal_due(at: Instant) {
    tokio::time::sleep_until(at).await;
}

#[cfg(shuttle)]
async fn renewal_due(_: Instant) {
    std::future::pending::<()>().await;
}

/// The stored record (`Ok(None)` if there is none), or `Err` if the store fails.
async fn load(store: &dyn TokenStore, timeout: Duration) -> Result<Option<StoredToken>, ()> {
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

/// Why a fetch gave up waiting for the store's lock.
#[derive(Debug)]
struct LockHeld;

impl std::fmt::Display for LockHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the token store's lock stayed held by a live holder")
    }
}

impl std::error::Error for LockHeld {}

/// Why a holder stopped.
#[derive(Debug)]
struct LeaseLost;

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the lease on the token store's lock ran out or was taken over")
    }
}

impl std::error::Error for LeaseLost {}

#[cfg(test)]
mod tests {
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
                Ok(TokenResponse::new(format!("login-{n}"))
                    .with_expires_in(Duration::from_secs(3600)))
            })
        }
        fn retry_after(
            &self,
            _: &(dyn std::error::Error + 'static),
        ) -> Option<std::time::Duration> {
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
}
