//! The token cache shared by a layer, every service it builds and all their clones.
//!
//! # How a request finds its token
//!
//! The current token lives behind a `std::sync::Mutex` that only the slow path takes. Each
//! thread keeps its own copy of the `Authorization` header value in a thread-local slot,
//! tagged with the cache's *epoch*: a number from a process-wide counter that the cache
//! replaces whenever a copy must be re-validated (a new token, the refresh point reached, the
//! token expired, invalidated or revoked). The hot path loads the epoch, finds the slot
//! carrying it and clones the header value. The clone bumps a reference count that only this
//! thread's copy uses, so two threads never write to the same memory, and nothing is locked
//! or allocated. The hot path never reads the clock: a timer task replaces the epoch when the
//! token reaches its refresh point and again when it expires. Without a live timer (no Tokio
//! runtime, or the runtime that ran it shut down) the slot is not filled and every request
//! checks the clock under the lock.
//!
//! # Single flight
//!
//! A login or refresh runs as a spawned task, registered in the state as the *flight*.
//! Requests that need a token subscribe to the flight's `watch` channel; a request that is
//! dropped only drops its receiver, so the fetch finishes for the others. With a
//! [`TokenStore`], the flight also takes the store's lock and reads the store first, so caches
//! sharing the store share one flight too (see [`crate::store`]).

use std::{
    cell::RefCell,
    collections::BTreeMap,
    fmt,
    future::Future,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::HeaderValue;
use tokio::{runtime::Handle, sync::watch, time::Instant};

use crate::{
    TokenError,
    error::{Reason, TokenErrorKind},
    provider::{BoxFuture, TokenProvider},
    store::{OnChange, StoreLock, StoredToken, TokenStore},
    token::{RefreshPolicy, Token},
    trace::{self, Chain, Started, Step},
};

/// Default margin before expiry at which a token is refreshed.
pub(crate) const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(30);
/// Default upper bound of the random extra margin.
pub(crate) const DEFAULT_JITTER: Duration = Duration::from_secs(10);
/// Default bound on each provider call.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default pause after the first failed fetch; it doubles with each failure in a row.
pub(crate) const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default longest pause after failed fetches.
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Number of caches whose header a thread keeps at once.
const SLOTS: usize = 4;

/// Every live cache by id; see [`TokenCache::find`].
static REGISTRY: Mutex<BTreeMap<u64, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// Process-wide source of unique numbers: cache ids, epochs, flight and timer ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A number in `[0, 1)`, random enough to spread refreshes across a fleet.
fn random() -> f64 {
    let bits = RandomState::new().hash_one(next_id());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

struct Slot {
    cache: u64,
    epoch: u64,
    header: HeaderValue,
    generation: u64,
}

thread_local! {
    static LOCAL: RefCell<[Option<Slot>; SLOTS]> =
        const { RefCell::new([const { None }; SLOTS]) };
}

/// The token future handed to requests that must wait for a login or refresh.
pub(crate) type TokenFuture = BoxFuture<'static, Result<Arc<Token>, TokenError>>;

/// Where a flight announces its result: `None` until it finishes.
type Outcome = watch::Receiver<Option<Result<Arc<Token>, TokenError>>>;

/// What a request does next.
pub(crate) enum Lookup {
    /// Send with this header value, of this token generation, now.
    Ready(HeaderValue, u64),
    /// Wait for a login or refresh.
    Wait(TokenFuture),
}

/// The cache's settings, changed through [`BearerAuthLayer`](crate::BearerAuthLayer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) policy: RefreshPolicy,
    pub(crate) timeout: Duration,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: RefreshPolicy {
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                jitter: DEFAULT_JITTER,
            },
            timeout: DEFAULT_TIMEOUT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

/// A handle to the token cache behind a [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// The layer, every service it builds and all their clones share one cache; so do all clones
/// of this handle. Get it with [`BearerAuthLayer::cache`](crate::BearerAuthLayer::cache) or
/// [`BearerAuth::cache`](crate::BearerAuth::cache).
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BearerAuthLayer, provider::StaticToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::TokenError> {
/// let layer = BearerAuthLayer::new(StaticToken::new("abc"));
/// let cache = layer.cache();
/// assert!(cache.token().is_none()); // nothing fetched yet
///
/// let token = cache.get().await?; // logs in
/// assert_eq!(token.expires_at(), None); // a static token never expires
/// assert_eq!(token.access_token(), "abc"); // the secret, asked for explicitly
///
/// cache.invalidate(); // the next request logs in again
/// assert!(cache.token().is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    id: u64,
    epoch: AtomicU64,
    provider: Arc<dyn TokenProvider>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    config: Config,
    /// The latest token. Kept after it expires or is invalidated, for its refresh token.
    token: Option<Arc<Token>>,
    /// Whether `token` may be sent (false after `invalidate`).
    usable: bool,
    /// The login or refresh under way.
    flight: Option<Flight>,
    /// The timer watching `token`'s refresh point and expiry.
    timer: Option<u64>,
    /// The last generation handed out.
    generation: u64,
    /// The failures in a row, and until when no new fetch starts.
    backoff: Option<Backoff>,
    /// Where tokens are also kept, and the version `token` has there.
    store: Option<Arc<dyn TokenStore>>,
    store_version: u64,
    /// Called with every new token.
    on_change: Option<OnChange>,
}

struct Backoff {
    error: TokenError,
    until: Instant,
    streak: u32,
}

struct Flight {
    id: u64,
    rx: Outcome,
}

impl State {
    /// The token to send at `now`, and whether it has reached its refresh point.
    fn usable_token(&self, now: Instant) -> Option<(&Arc<Token>, bool)> {
        let token = self.token.as_ref().filter(|_| self.usable)?;
        if token.expires_at.is_some_and(|e| now >= e) {
            return None;
        }
        let stale = token.refresh_at.is_some_and(|r| now >= r);
        Some((token, stale))
    }

    /// Whether threads may keep a copy of `token`: only while a timer will tell them when to
    /// stop.
    fn may_copy(&self, token: &Token) -> bool {
        token.expires_at.is_none() || self.timer.is_some()
    }

    /// The last failure, while new fetches must wait.
    fn backing_off(&self, now: Instant) -> Option<&TokenError> {
        self.backoff
            .as_ref()
            .filter(|b| now < b.until)
            .map(|b| &b.error)
    }

    /// Remembers a failed fetch: no new fetch starts for a growing, jittered pause, or for as
    /// long as the provider asked (`Retry-After`, up to five minutes). Returns the pause and
    /// the failures in a row.
    fn record_failure(
        &mut self,
        error: &TokenError,
        retry_after: Option<Duration>,
    ) -> (Duration, u32) {
        let streak = self
            .backoff
            .as_ref()
            .map_or(0, |b| b.streak)
            .saturating_add(1);
        let doubled = self
            .config
            .backoff_initial
            .saturating_mul(1 << (streak - 1).min(20));
        let pause = doubled
            .min(self.config.backoff_max)
            .mul_f64(0.5 + 0.5 * random())
            .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
        self.backoff = Some(Backoff {
            error: error.clone(),
            until: Instant::now() + pause,
            streak,
        });
        (pause, streak)
    }
}

impl TokenCache {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>) -> Self {
        let shared = Arc::new(Shared {
            id: next_id(),
            epoch: AtomicU64::new(next_id()),
            provider,
            state: Mutex::new(State::default()),
        });
        REGISTRY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(shared.id, Arc::downgrade(&shared));
        Self { shared }
    }

    pub(crate) fn configure(&self, f: impl FnOnce(&mut Config)) {
        f(&mut self.shared.lock().config);
    }

    pub(crate) fn config(&self) -> Config {
        self.shared.lock().config
    }

    pub(crate) fn set_store(&self, store: Arc<dyn TokenStore>) {
        self.shared.lock().store = Some(store);
    }

    pub(crate) fn set_on_change(&self, on_change: OnChange) {
        self.shared.lock().on_change = Some(on_change);
    }

    /// The hot path: this thread's copy of the header and its token's generation, if it is
    /// still current.
    #[inline]
    pub(crate) fn cached_header(&self) -> Option<(HeaderValue, u64)> {
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        LOCAL
            .try_with(|slots| {
                let slots = slots.try_borrow().ok()?;
                slots
                    .iter()
                    .flatten()
                    .find(|slot| slot.epoch == epoch)
                    .map(|slot| (slot.header.clone(), slot.generation))
            })
            .ok()
            .flatten()
    }

    /// The slow path: checks the token under the lock, starts a login or refresh if needed.
    pub(crate) fn lookup(&self) -> Lookup {
        // Read the epoch before the clock: a copy tagged with it is valid only if the state
        // read below is at least as new.
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let now = Instant::now();
        let mut state = self.shared.lock();
        match state.usable_token(now) {
            Some((token, stale)) => {
                let token = token.clone();
                // A due token is re-checked by every request until its refresh lands.
                let copy = !stale && state.may_copy(&token);
                let task = (stale && state.backing_off(now).is_none())
                    .then(|| self.shared.start_flight(&mut state).1)
                    .flatten();
                drop(state);
                if let Some(task) = task {
                    task.spawn();
                }
                if copy {
                    self.store_local(epoch, &token);
                }
                Lookup::Ready(token.header.clone(), token.generation)
            }
            None => Lookup::Wait(Box::pin(self.shared.fetch_or_fail(state, now))),
        }
    }

    fn store_local(&self, epoch: u64, token: &Token) {
        // A copy of our own, so this thread's clones never touch another thread's count.
        let Ok(mut header) = HeaderValue::from_bytes(token.header.as_bytes()) else {
            return;
        };
        header.set_sensitive(true);
        let slot = Slot {
            cache: self.shared.id,
            epoch,
            header,
            generation: token.generation,
        };
        let _ = LOCAL.try_with(|slots| {
            let Ok(mut slots) = slots.try_borrow_mut() else {
                return;
            };
            // Most recent first; this cache's old slot, or else the oldest, makes room.
            let end = slots
                .iter()
                .position(|s| s.as_ref().is_some_and(|s| s.cache == slot.cache))
                .unwrap_or(SLOTS - 1);
            slots[..=end].rotate_right(1);
            slots[0] = Some(slot);
        });
    }

    /// The current token, if there is one that may be sent now.
    ///
    /// This never fetches a token; see [`get`](TokenCache::get).
    pub fn token(&self) -> Option<Token> {
        let state = self.shared.lock();
        state
            .usable_token(Instant::now())
            .map(|(token, _)| Token::clone(token))
    }

    /// When the current token expires: `None` if there is no usable token or it never expires.
    pub fn expires_at(&self) -> Option<Instant> {
        self.token().and_then(|t| t.expires_at())
    }

    /// The current token, logging in or refreshing first if there is none or it is due.
    ///
    /// # Errors
    ///
    /// Returns the [`TokenError`] of a failed login or refresh.
    pub async fn get(&self) -> Result<Token, TokenError> {
        let fut = {
            let now = Instant::now();
            let state = self.shared.lock();
            if let Some((token, false)) = state.usable_token(now) {
                return Ok(Token::clone(token));
            }
            self.shared.fetch_or_fail(state, now)
        };
        fut.await.map(|t| Token::clone(&t))
    }

    /// Refreshes the token now (or logs in if there is no refresh token), whatever its expiry
    /// and even while the cache is backing off after failures.
    ///
    /// Joins a login or refresh already under way instead of starting another. With a
    /// [store](crate::BearerAuthLayer::store), a newer token that another cache saved there
    /// counts as the refresh.
    ///
    /// # Errors
    ///
    /// Returns the [`TokenError`] of a failed login or refresh.
    pub async fn refresh(&self) -> Result<Token, TokenError> {
        let fut = {
            let mut state = self.shared.lock();
            let (rx, task) = self.shared.start_flight(&mut state);
            drop(state);
            if let Some(task) = task {
                task.spawn();
            }
            wait(rx)
        };
        fut.await.map(|t| Token::clone(&t))
    }

    /// Stops sending the current token. The next request refreshes it (with its refresh
    /// token, if any) or logs in.
    pub fn invalidate(&self) {
        let mut state = self.shared.lock();
        state.usable = false;
        self.shared.bump_epoch();
    }

    /// Stops sending the token of `generation`, if it is still the current one: a late `401`
    /// for a token already replaced must not throw its successor away.
    pub(crate) fn invalidate_generation(&self, generation: u64) {
        let mut state = self.shared.lock();
        if state.usable
            && state
                .token
                .as_ref()
                .is_some_and(|t| t.generation == generation)
        {
            state.usable = false;
            self.shared.bump_epoch();
            drop(state);
            trace::debug!(
                name: "invalidated",
                cache = self.shared.id,
                generation,
                "token invalidated after a 401"
            );
        }
    }

    /// The cache's process-wide id, for [`find`](TokenCache::find).
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    /// The cache with this id, if it still exists.
    ///
    /// Response futures keep the id instead of a handle: cloning the handle for every request
    /// would write to a reference count shared by all threads.
    pub(crate) fn find(id: u64) -> Option<Self> {
        let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = registry.get(&id)?.upgrade()?;
        Some(Self { shared })
    }

    /// Revokes the current token at the server and empties the cache, for a clean logout.
    ///
    /// The cache forgets the token and its refresh token, and clears its
    /// [store](crate::BearerAuthLayer::store), before the provider is asked to revoke it, so no
    /// request sends it again; a login or refresh under way is discarded. The next request
    /// logs in.
    ///
    /// # Errors
    ///
    /// Returns a [`TokenError`] of kind [`Revoke`](TokenErrorKind::Revoke) when the provider
    /// fails to revoke the token or the store cannot be cleared, or
    /// [`Timeout`](TokenErrorKind::Timeout).
    pub async fn revoke(&self) -> Result<(), TokenError> {
        let (token, timeout, store, on_change, generation) = {
            let mut state = self.shared.lock();
            state.usable = false;
            state.flight = None;
            self.shared.bump_epoch();
            let generation = state.token.as_ref().map(|t| t.generation);
            (
                state.token.take(),
                state.config.timeout,
                state.store.clone(),
                state.on_change.clone(),
                generation,
            )
        };
        if let Some(on_change) = on_change {
            on_change(None);
        }
        // Both steps run even if the first fails; the first failure is reported.
        let cache = self.shared.id;
        let cleared = match store {
            Some(store) => {
                let cleared = revoke_step(timeout, store.clear()).await;
                match &cleared {
                    Ok(()) => trace::debug!(name: "store_clear", cache, "store cleared"),
                    Err(error) => trace::debug!(
                        name: "store_clear",
                        cache,
                        error_kind = ?error.kind(),
                        error = %Chain(error),
                        "store clear failed"
                    ),
                }
                cleared
            }
            None => Ok(()),
        };
        let revoked = match &token {
            Some(token) => {
                revoke_step(
                    timeout,
                    self.shared
                        .provider
                        .revoke(token.access_token(), token.refresh_token.as_deref()),
                )
                .await
            }
            None => Ok(()),
        };
        match &revoked {
            Ok(()) => trace::debug!(name: "revoke", cache, generation, "token revoked"),
            Err(error) => trace::debug!(
                name: "revoke",
                cache,
                generation,
                error_kind = ?error.kind(),
                error = %Chain(error),
                "token revocation failed"
            ),
        }
        cleared.and(revoked)
    }
}

/// One step of [`TokenCache::revoke`], bounded by `timeout`.
async fn revoke_step(
    timeout: Duration,
    step: impl Future<Output = Result<(), crate::BoxError>>,
) -> Result<(), TokenError> {
    match tokio::time::timeout(timeout, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(TokenError::with_source(TokenErrorKind::Revoke, e)),
        Err(_) => Err(TokenError::new(TokenErrorKind::Timeout)),
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("TokenCache")
            .field("config", &state.config)
            .field("token", &state.token)
            .field("usable", &state.usable)
            .field("fetching", &state.flight.is_some())
            .field("store", &state.store.is_some())
            .finish()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        REGISTRY
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever does, the state is still
        // consistent field by field, so carry on rather than poison every request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump_epoch(&self) {
        self.epoch.store(next_id(), Ordering::Release);
    }

    /// Waits for the flight under way, or starts one; while backing off after a failure with
    /// no flight under way, fails at once with the last error.
    fn fetch_or_fail(
        self: &Arc<Self>,
        mut state: MutexGuard<'_, State>,
        now: Instant,
    ) -> impl Future<Output = Result<Arc<Token>, TokenError>> + Send + 'static {
        let outcome = match state.backing_off(now) {
            Some(error) if state.flight.is_none() => Err(error.clone()),
            _ => Ok(self.start_flight(&mut state)),
        };
        drop(state);
        if let Err(error) = &outcome {
            trace::trace!(
                name: "backoff",
                cache = self.id,
                error_kind = ?error.kind(),
                "failing at once: backing off after a failed fetch"
            );
        }
        let rx = outcome.map(|(rx, task)| {
            if let Some(task) = task {
                task.spawn();
            }
            rx
        });
        async move { wait(rx?).await }
    }

    /// Joins the flight under way, or registers a new one and returns the task to spawn once
    /// the lock is released.
    fn start_flight(self: &Arc<Self>, state: &mut State) -> (Outcome, Option<FlightTask>) {
        if let Some(flight) = &state.flight {
            // A flight whose task vanished without reporting is replaced.
            if flight.rx.has_changed().is_ok() {
                return (flight.rx.clone(), None);
            }
        }
        let id = next_id();
        let (tx, rx) = watch::channel(None);
        state.flight = Some(Flight { id, rx: rx.clone() });
        let task = FlightTask {
            shared: self.clone(),
            id,
            refresh_token: state.token.as_ref().and_then(|t| t.refresh_token.clone()),
            replaces: state.token.as_ref().map_or(0, |_| state.store_version),
            store: state.store.clone(),
            on_change: state.on_change.clone(),
            config: state.config,
            tx,
            done: false,
        };
        (rx, Some(task))
    }
}

/// Waits for a flight's result.
async fn wait(mut rx: Outcome) -> Result<Arc<Token>, TokenError> {
    match rx.wait_for(Option::is_some).await {
        Ok(result) => result.clone().unwrap_or_else(|| Err(aborted())),
        Err(_) => Err(aborted()),
    }
}

fn aborted() -> TokenError {
    TokenError::new(TokenErrorKind::Aborted)
}

/// One login or refresh, run detached from the requests waiting for it.
///
/// Dropped before it finished (its runtime shut down, or there was none), it reports
/// [`TokenErrorKind::Aborted`] to the waiters and unregisters itself.
struct FlightTask {
    shared: Arc<Shared>,
    id: u64,
    refresh_token: Option<String>,
    /// The store version of the token being replaced (0 for none).
    replaces: u64,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<OnChange>,
    config: Config,
    tx: watch::Sender<Option<Result<Arc<Token>, TokenError>>>,
    done: bool,
}

impl FlightTask {
    fn spawn(self) {
        if let Ok(handle) = Handle::try_current() {
            let cache = self.shared.id;
            drop(handle.spawn(trace::instrument!(self.run(), "token_fetch", cache)));
        }
        // Otherwise `self` drops here and reports `Aborted`.
    }

    async fn run(mut self) {
        let refresh_token = self.refresh_token.take();
        let provider = &*self.shared.provider;
        let Some(store) = self.store.clone() else {
            let result = fetch(provider, refresh_token, &self.config).await;
            self.finish(result.map(|(token, via)| (token, None, via)));
            return;
        };
        let result = fetch_through_store(
            &*store,
            provider,
            refresh_token,
            self.replaces,
            &self.config,
        )
        .await;
        match result {
            Ok(Through::Adopted(fetched)) => self.finish(Ok(fetched)),
            Ok(Through::New(fetched, lock)) => {
                // Saved before anyone gets it: a process that stops once it has its token
                // leaves the newest refresh token to the others.
                if let Some(record) = &fetched.1 {
                    save(&*store, record, self.config.timeout).await;
                }
                drop(lock);
                self.finish(Ok(fetched));
            }
            Err(failure) => self.finish(Err(failure)),
        }
    }

    fn finish(&mut self, result: Result<Fetched, Failure>) {
        self.done = true;
        let mut state = self.shared.lock();
        // A flight discarded by `revoke` still answers its waiters but stores nothing.
        let current = state.flight.as_ref().is_some_and(|f| f.id == self.id);
        let result = result.map(|(mut token, stored, via)| {
            state.generation += 1;
            token.generation = state.generation;
            (Arc::new(token), stored, via)
        });
        let mut timer = None;
        let mut changed = None;
        let mut backoff = None;
        if current {
            state.flight = None;
            match &result {
                Ok((token, stored, _)) => {
                    state.token = Some(token.clone());
                    state.usable = true;
                    state.backoff = None;
                    state.store_version = stored.as_ref().map_or(0, StoredToken::version);
                    timer = TimerTask::arm(&self.shared, &mut state, token);
                    if let Some(on_change) = &self.on_change {
                        let stored = stored.clone().unwrap_or_else(|| {
                            StoredToken::new(token.generation, token.to_response())
                        });
                        changed = Some((on_change.clone(), stored));
                    }
                }
                // Without a runtime nothing was asked of the provider: no reason to wait.
                Err(failure) if failure.error.kind() != TokenErrorKind::Aborted => {
                    backoff = Some(state.record_failure(&failure.error, failure.retry_after));
                }
                Err(_) => {}
            }
            self.shared.bump_epoch();
        }
        drop(state);
        match &result {
            Ok((token, stored, (step, started))) => {
                let (generation, version) =
                    (token.generation, stored.as_ref().map(|s| s.version()));
                match step {
                    Step::Login { fallback } => trace::debug!(
                        name: "login",
                        generation,
                        version,
                        expires_in_ms = trace::until(token.expires_at),
                        elapsed_ms = started.ms(),
                        fallback,
                        "logged in"
                    ),
                    Step::Refresh => trace::debug!(
                        name: "refresh",
                        generation,
                        version,
                        expires_in_ms = trace::until(token.expires_at),
                        elapsed_ms = started.ms(),
                        "token refreshed"
                    ),
                    Step::Stored => trace::debug!(
                        name: "store_load",
                        adopted = true,
                        generation,
                        version,
                        expires_in_ms = trace::until(token.expires_at),
                        elapsed_ms = started.ms(),
                        "adopted the stored token"
                    ),
                }
            }
            Err(failure) => {
                if let Some((pause, streak)) = backoff {
                    trace::debug!(
                        name: "backoff",
                        error_kind = ?failure.error.kind(),
                        backoff_ms = trace::ms(pause),
                        streak,
                        "backing off after a failed fetch"
                    );
                }
            }
        }
        if let Some(timer) = timer {
            timer.spawn();
        }
        self.tx
            .send_replace(Some(result.map(|(token, ..)| token).map_err(|f| f.error)));
        // Last: the waiting requests have their token whatever the hook does.
        if let Some((on_change, stored)) = changed {
            on_change(Some(&stored));
        }
    }
}

impl Drop for FlightTask {
    fn drop(&mut self) {
        if !self.done {
            self.finish(Err(aborted().into()));
        }
    }
}

/// A fetched token, what was saved to or adopted from the store, and how it was got.
type Fetched = (Token, Option<StoredToken>, (Step, Started));

/// A failed fetch, with how long the provider asked the cache to wait.
struct Failure {
    error: TokenError,
    retry_after: Option<Duration>,
}

impl From<TokenError> for Failure {
    fn from(error: TokenError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// Refreshes with `refresh_token` if there is one, else (or if that fails) logs in.
async fn fetch(
    provider: &dyn TokenProvider,
    refresh_token: Option<String>,
    config: &Config,
) -> Result<(Token, (Step, Started)), Failure> {
    let timeout = config.timeout;
    let mut refresh_failed = false;
    if let Some(refresh_token) = refresh_token {
        let issued = Instant::now();
        let refreshed = match tokio::time::timeout(timeout, provider.refresh(&refresh_token)).await
        {
            // A response without a refresh token keeps the one just used.
            Ok(Ok(response)) => Token::from_response(
                response,
                issued,
                &config.policy,
                Some(refresh_token),
                0,
                random(),
            ),
            Ok(Err(e)) => Err(TokenError::with_source(TokenErrorKind::Refresh, e)),
            Err(_) => Err(TokenError::new(TokenErrorKind::Timeout)),
        };
        match refreshed {
            Ok(token) => return Ok((token, (Step::Refresh, Started::at(issued)))),
            // Refused, failed, timed out or unusable: log in instead.
            Err(error) => trace::debug!(
                name: "refresh",
                elapsed_ms = trace::ms(issued.elapsed()),
                error_kind = ?error.kind(),
                error = %Chain::refresh(&error),
                "token refresh failed; logging in instead"
            ),
        }
        refresh_failed = true;
    }
    let issued = Instant::now();
    let result = match tokio::time::timeout(timeout, provider.login()).await {
        Ok(Ok(response)) => {
            Token::from_response(response, issued, &config.policy, None, 0, random())
                .map_err(Failure::from)
        }
        Ok(Err(e)) => {
            let kind = if refresh_failed {
                TokenErrorKind::Refresh
            } else {
                TokenErrorKind::Login
            };
            let retry_after = provider.retry_after(&*e);
            Err(Failure {
                error: TokenError::with_source(kind, e),
                retry_after,
            })
        }
        Err(_) => Err(TokenError::new(TokenErrorKind::Timeout).into()),
    };
    if let Err(failure) = &result {
        trace::warn!(
            name: "login",
            elapsed_ms = trace::ms(issued.elapsed()),
            fallback = refresh_failed,
            error_kind = ?failure.error.kind(),
            error = %Chain(&failure.error),
            retry_after_ms = failure.retry_after.map(trace::ms),
            "login failed"
        );
    }
    let step = Step::Login {
        fallback: refresh_failed,
    };
    result.map(|token| (token, (step, Started::at(issued))))
}

/// What [`fetch_through_store`] found.
enum Through {
    /// A newer token, from the store.
    Adopted(Fetched),
    /// A token from the provider, to save while still holding the lock.
    New(Fetched, Option<StoreLock>),
}

/// Fetches a token for a cache that shares `store`: under the store's lock, adopts a newer
/// stored token, or else refreshes with the newest refresh token (or logs in).
///
/// The store failing is not fatal: nothing loaded means a fetch. Without the lock, a shared
/// refresh token is not spent: the cache logs in.
async fn fetch_through_store(
    store: &dyn TokenStore,
    provider: &dyn TokenProvider,
    refresh_token: Option<String>,
    replaces: u64,
    config: &Config,
) -> Result<Through, Failure> {
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
            0,
            random(),
        );
        match token {
            Ok(token) if token.refresh_at.is_none_or(|r| now < r) => {
                return Ok(Through::Adopted((
                    token,
                    Some(stored.clone()),
                    (Step::Stored, started),
                )));
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
    let (token, via) = fetch(provider, refresh_token, config).await?;
    let version = stored
        .as_ref()
        .map_or(0, StoredToken::version)
        .max(replaces)
        + 1;
    let record = StoredToken::new(version, token.to_response());
    Ok(Through::New((token, Some(record), via), lock))
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
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, crate::BoxError>>,
) -> Result<T, crate::BoxError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result,
        Err(_) => Err(Reason("store call timed out").into()),
    }
}

/// Replaces the epoch at a token's refresh point and at its expiry, so threads stop using
/// their copies. Dropped early (its runtime shut down), it marks the cache as unwatched.
struct TimerTask {
    shared: Weak<Shared>,
    id: u64,
    refresh_at: Instant,
    expires_at: Instant,
    done: bool,
}

impl TimerTask {
    fn arm(shared: &Arc<Shared>, state: &mut State, token: &Token) -> Option<Self> {
        let (refresh_at, expires_at) = (token.refresh_at?, token.expires_at?);
        let id = next_id();
        state.timer = Some(id);
        Some(Self {
            shared: Arc::downgrade(shared),
            id,
            refresh_at,
            expires_at,
            done: false,
        })
    }

    fn spawn(self) {
        if let Ok(handle) = Handle::try_current() {
            drop(handle.spawn(self.run()));
        }
    }

    async fn run(mut self) {
        tokio::time::sleep_until(self.refresh_at).await;
        if self.tick(false) {
            tokio::time::sleep_until(self.expires_at).await;
            self.tick(true);
        }
        self.done = true;
    }

    /// Replaces the epoch if this timer still watches the current token; `last` also retires
    /// the timer. Returns whether it still does.
    fn tick(&self, last: bool) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let mut state = shared.lock();
        if state.timer != Some(self.id) {
            return false;
        }
        if last {
            state.timer = None;
        }
        shared.bump_epoch();
        true
    }
}

impl Drop for TimerTask {
    fn drop(&mut self) {
        if !self.done {
            self.tick(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::{BoxError, TokenResponse, provider::provider_fn};

    /// A provider that counts logins and refreshes and hands out numbered tokens.
    #[derive(Default)]
    struct Counting {
        logins: AtomicUsize,
        refreshes: AtomicUsize,
        fail_refresh: bool,
        fail_login: std::sync::atomic::AtomicBool,
        lifetime: Option<Duration>,
        delay: Duration,
    }

    impl TokenProvider for Counting {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
                if self.fail_login.load(Ordering::SeqCst) {
                    return Err("login refused".into());
                }
                let mut r =
                    TokenResponse::new(format!("login-{n}")).with_refresh_token(format!("rt-{n}"));
                if let Some(l) = self.lifetime {
                    r = r.with_expires_in(l);
                }
                Ok(r)
            })
        }

        fn refresh<'a>(&'a self, rt: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
                if self.fail_refresh {
                    return Err("invalid_grant".into());
                }
                let mut r = TokenResponse::new(format!("refresh-{n}-from-{rt}"));
                if let Some(l) = self.lifetime {
                    r = r.with_expires_in(l);
                }
                Ok(r)
            })
        }
    }

    fn cache(p: Counting) -> (TokenCache, Arc<Counting>) {
        let p = Arc::new(p);
        (TokenCache::new(p.clone()), p)
    }

    async fn header(cache: &TokenCache) -> Result<HeaderValue, TokenError> {
        if let Some((h, _)) = cache.cached_header() {
            return Ok(h);
        }
        match cache.lookup() {
            Lookup::Ready(h, _) => Ok(h),
            Lookup::Wait(fut) => fut.await.map(|t| t.header.clone()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn logs_in_once_and_reuses() {
        let (cache, p) = cache(Counting::default());
        for _ in 0..5 {
            assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        }
        assert_eq!(p.logins.load(Ordering::SeqCst), 1);
        assert!(cache.cached_header().is_some(), "the hot path is served");
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_ahead_in_the_background_and_keeps_refresh_token() {
        let (cache, p) = cache(Counting {
            lifetime: Some(Duration::from_secs(3600)),
            ..Default::default()
        });
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        // 10 s before expiry: past the refresh point (30 s plus up to 10 s jitter).
        tokio::time::advance(Duration::from_secs(3590)).await;
        assert!(
            cache.cached_header().is_none(),
            "the timer replaced the epoch"
        );
        // The stale but valid token is sent at once while the refresh runs.
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
        assert_eq!(p.logins.load(Ordering::SeqCst), 1);
        // The refresh response had no refresh token: the old one is kept.
        assert!(cache.token().unwrap().has_refresh_token());
        tokio::time::advance(Duration::from_secs(3590)).await;
        tokio::task::yield_now().await;
        assert!(
            cache.cached_header().is_none(),
            "the new token's timer replaced the epoch"
        );
        assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let h = header(&cache).await.unwrap();
        assert_eq!(
            h.to_str().unwrap(),
            "Bearer refresh-2-from-rt-1",
            "{:?}",
            p.refreshes
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_token_makes_requests_wait() {
        let (cache, p) = cache(Counting {
            lifetime: Some(Duration::from_secs(60)),
            delay: Duration::from_secs(1),
            ..Default::default()
        });
        header(&cache).await.unwrap();
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(matches!(cache.lookup(), Lookup::Wait(_)));
        assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
        assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_refresh_falls_back_to_one_login() {
        let (cache, p) = cache(Counting {
            lifetime: Some(Duration::from_secs(60)),
            fail_refresh: true,
            ..Default::default()
        });
        header(&cache).await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
        assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(p.logins.load(Ordering::SeqCst), 2);
    }

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

    #[tokio::test(start_paused = true)]
    async fn provider_timeout() {
        let (cache, _p) = cache(Counting {
            delay: Duration::from_secs(60),
            ..Default::default()
        });
        cache.configure(|c| c.timeout = Duration::from_secs(5));
        let started = Instant::now();
        let err = header(&cache).await.unwrap_err();
        assert_eq!(err.kind(), TokenErrorKind::Timeout);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_login() {
        let (cache, p) = cache(Counting {
            delay: Duration::from_millis(50),
            ..Default::default()
        });
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { header(&cache).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "Bearer login-1");
        }
        assert_eq!(p.logins.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_waiter_does_not_cancel_the_login() {
        let (cache, p) = cache(Counting {
            delay: Duration::from_millis(50),
            ..Default::default()
        });
        let Lookup::Wait(first) = cache.lookup() else {
            panic!("expected a wait")
        };
        drop(first);
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        assert_eq!(p.logins.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn token_without_expiry_is_kept_until_invalidated() {
        let (cache, p) = cache(Counting::default());
        header(&cache).await.unwrap();
        tokio::time::advance(Duration::from_secs(10 * 365 * 86400)).await;
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        cache.invalidate();
        assert!(cache.cached_header().is_none());
        // Invalidation keeps the refresh token.
        assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
        assert_eq!(p.logins.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn revoke_forgets_everything() {
        let (cache, p) = cache(Counting::default());
        header(&cache).await.unwrap();
        cache.revoke().await.unwrap();
        assert!(cache.token().is_none());
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
        assert_eq!(p.refreshes.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn no_runtime_is_an_error_not_a_panic() {
        let cache = TokenCache::new(Arc::new(provider_fn(|| async {
            Ok::<_, BoxError>(TokenResponse::new("a"))
        })));
        let Lookup::Wait(fut) = cache.lookup() else {
            panic!("expected a wait")
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(fut).unwrap_err();
        assert_eq!(err.kind(), TokenErrorKind::Aborted);
        // The cache is not stuck: inside a runtime the next lookup logs in.
        let h = rt.block_on(async { header(&cache).await }).unwrap();
        assert_eq!(h, "Bearer a");
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_401_keeps_the_newer_token() {
        let (cache, p) = cache(Counting::default());
        header(&cache).await.unwrap();
        let first = cache.token().unwrap().generation();
        cache.invalidate_generation(first);
        assert_eq!(header(&cache).await.unwrap(), "Bearer refresh-1-from-rt-1");
        let second = cache.token().unwrap().generation();
        assert!(second > first);
        header(&cache).await.unwrap(); // fills this thread's copy
        assert!(cache.cached_header().is_some());
        // A 401 for the first token arrives late: the second stays.
        cache.invalidate_generation(first);
        assert_eq!(cache.token().unwrap().generation(), second);
        assert!(cache.cached_header().is_some());
        assert_eq!(p.refreshes.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_registry_finds_live_caches_only() {
        let cache = TokenCache::new(Arc::new(crate::StaticToken::new("a")));
        let id = cache.id();
        assert!(TokenCache::find(id).is_some());
        drop(cache);
        assert!(TokenCache::find(id).is_none());
    }

    #[test]
    fn random_is_in_range() {
        for _ in 0..1000 {
            let r = random();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn timer_dropped_with_its_runtime_stops_local_copies() {
        let cache = TokenCache::new(Arc::new(provider_fn(|| async {
            Ok::<_, BoxError>(TokenResponse::new("a").with_expires_in(Duration::from_secs(3600)))
        })));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            header(&cache).await.unwrap();
            header(&cache).await.unwrap();
        });
        assert!(cache.cached_header().is_some());
        drop(rt);
        assert!(
            cache.cached_header().is_none(),
            "no timer watches the copy any more"
        );
        // The token is still served, from the clock check under the lock.
        assert!(matches!(cache.lookup(), Lookup::Ready(..)));
        assert!(cache.cached_header().is_none());
    }

    fn shared_cache(store: &crate::store::MemoryStore) -> (TokenCache, Arc<Counting>) {
        let (cache, p) = cache(Counting {
            lifetime: Some(Duration::from_secs(3600)),
            ..Counting::default()
        });
        cache.set_store(Arc::new(store.clone()));
        (cache, p)
    }

    #[tokio::test]
    async fn caches_sharing_a_store_share_one_login_and_one_refresh() {
        let store = crate::store::MemoryStore::new();
        let (a, pa) = shared_cache(&store);
        let (b, pb) = shared_cache(&store);

        assert_eq!(header(&a).await.unwrap(), "Bearer login-1");
        assert_eq!(
            header(&b).await.unwrap(),
            "Bearer login-1",
            "adopted from the store"
        );
        assert_eq!(pb.logins.load(Ordering::SeqCst), 0);
        assert_eq!(store.get().unwrap().version(), 1);

        // The server refused the token: `a` refreshes (the stored token is the refused one)…
        a.invalidate();
        assert_eq!(header(&a).await.unwrap(), "Bearer refresh-1-from-rt-1");
        assert_eq!(pa.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(store.get().unwrap().version(), 2);
        // …and `b`, refused too, finds `a`'s new token instead of spending the refresh token.
        b.invalidate();
        assert_eq!(header(&b).await.unwrap(), "Bearer refresh-1-from-rt-1");
        assert_eq!(pb.refreshes.load(Ordering::SeqCst), 0);
        assert_eq!(pb.logins.load(Ordering::SeqCst), 0);

        // `b` refreshes next with the newest refresh token, which `a` left in the store.
        b.invalidate();
        header(&b).await.unwrap();
        assert_eq!(pb.refreshes.load(Ordering::SeqCst), 1);
        assert_eq!(store.get().unwrap().version(), 3);
    }

    #[tokio::test]
    async fn revoke_clears_the_store_and_tells_the_hook() {
        let store = crate::store::MemoryStore::new();
        let (cache, _) = shared_cache(&store);
        let seen = Arc::new(Mutex::new(Vec::new()));
        cache.set_on_change(Arc::new({
            let seen = seen.clone();
            move |t: Option<&StoredToken>| seen.lock().unwrap().push(t.map(|t| t.version()))
        }));
        header(&cache).await.unwrap();
        cache.invalidate();
        header(&cache).await.unwrap();
        cache.revoke().await.unwrap();
        assert!(store.get().is_none());
        assert_eq!(*seen.lock().unwrap(), [Some(1), Some(2), None]);
    }

    /// A store that keeps answering with version 1, as one whose saves lag behind.
    struct Lagging;

    impl TokenStore for Lagging {
        fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
            let old = TokenResponse::new("old")
                .with_refresh_token("rt-old")
                .with_expires_in(Duration::from_secs(3600));
            Box::pin(async move { Ok(Some(StoredToken::new(1, old))) })
        }
        fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
            Box::pin(async { Ok(true) })
        }
        fn clear(&self) -> BoxFuture<'_, Result<(), BoxError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn an_older_stored_token_is_never_adopted() {
        let (cache, p) = cache(Counting {
            lifetime: Some(Duration::from_secs(3600)),
            ..Counting::default()
        });
        cache.set_store(Arc::new(Lagging));
        assert_eq!(
            header(&cache).await.unwrap(),
            "Bearer old",
            "newer than nothing"
        );
        cache.invalidate();
        assert_eq!(
            header(&cache).await.unwrap(),
            "Bearer refresh-1-from-rt-old"
        );
        // The store still holds version 1; the cache's token is version 2.
        cache.invalidate();
        assert_eq!(
            header(&cache).await.unwrap(),
            "Bearer refresh-2-from-rt-old"
        );
        assert_eq!(p.refreshes.load(Ordering::SeqCst), 2);
    }

    /// A store whose every call fails.
    struct Broken;

    impl TokenStore for Broken {
        fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
            Box::pin(async { Err("store down".into()) })
        }
        fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
            Box::pin(async { Err("store down".into()) })
        }
        fn clear(&self) -> BoxFuture<'_, Result<(), BoxError>> {
            Box::pin(async { Err("store down".into()) })
        }
        fn lock(&self) -> BoxFuture<'_, Result<crate::store::StoreLock, BoxError>> {
            Box::pin(async { Err("store down".into()) })
        }
    }

    #[tokio::test]
    async fn a_broken_store_costs_refreshes_not_tokens() {
        let (cache, p) = cache(Counting {
            lifetime: Some(Duration::from_secs(3600)),
            ..Counting::default()
        });
        cache.set_store(Arc::new(Broken));
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
        // Without the lock a shared refresh token is not spent: the cache logs in.
        cache.invalidate();
        assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
        assert_eq!(p.refreshes.load(Ordering::SeqCst), 0);
        // Clearing the store is part of a clean logout: its failure is reported.
        let err = cache.revoke().await.unwrap_err();
        assert_eq!(err.kind(), TokenErrorKind::Revoke);
        assert!(
            cache.token().is_none(),
            "the token is forgotten all the same"
        );
    }
}
