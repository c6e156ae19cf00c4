//! The token cache shared by a layer, every service it builds and all their clones.
//!
//! # How a request finds its token
//!
//! The current token lives behind a `std::sync::Mutex` that only the slow path takes. Each
//! thread that sends it keeps its own copy of the `Authorization` header, owned by the cache
//! and found through a per-thread table indexed by the cache's slot (see `local.rs`): the hot
//! path finds its copy, checks that it is current and has not reached the token's refresh
//! point (one clock read, none for a token that never expires), and clones it. The reference
//! counts it touches are its own copy's, so two threads never write to the same memory, and
//! nothing is locked or allocated; the cost is the same whether a thread uses one cache or
//! ten thousand. A new token, [`TokenCache::invalidate`] and [`TokenCache::revoke`] retire
//! every copy at once, and dropping the cache frees them.
//!
//! No timer or background task watches the token: the first request past the refresh point
//! takes the slow path, which starts the refresh and sends the still-valid token meanwhile,
//! and no copy is sent past its refresh point whatever runtime is or isn't running.
//!
//! # Single flight
//!
//! A login or refresh runs as a task spawned on the current runtime, registered in the state
//! as the *flight* (see `flight.rs`). Requests that need a token wait for it, each for at
//! most the cache's timeout; a request that is dropped stops waiting, and the fetch finishes
//! for the others. A flight whose runtime shuts down, or that runs past the bounds of its
//! steps (its runtime is no longer driven), is started again by the next request. With a
//! [`TokenStore`], the flight also takes the store's lock and reads the store first, so caches
//! sharing the store share one flight too (see [`crate::store`]).

use std::{
    fmt,
    sync::{Arc, PoisonError},
    time::Duration,
};

use http::HeaderValue;
use tokio::time::Instant;

use crate::{
    clock,
    error::{TokenError, TokenErrorKind},
    metrics::{self, Labels},
    provider::{BoxFuture, TokenProvider},
    rt::{self, Handle, Mutex, MutexGuard},
    slot::Slot,
    store::{OnChange, TokenChange, TokenStore},
    token::Token,
    trace::{self, Chain},
};

mod builder;
mod config;
mod flight;
mod local;
mod shared_store;

pub use builder::TokenCacheBuilder;

use config::MAX_DURATION;
pub(crate) use config::{Config, next_id};
pub(crate) use flight::{Failure, Fetched, Refused, fetch};
use flight::{Flight, FlightTask, Landing, Outcome};
use local::Local;

/// The token future handed to requests that must wait for a login or refresh.
pub(crate) type TokenFuture = BoxFuture<'static, Result<Arc<Token>, TokenError>>;

/// What a request does next.
pub(crate) enum Lookup {
    /// Send with this header value now.
    Ready(HeaderValue, Carried),
    /// Wait for a login or refresh.
    Wait(TokenFuture),
}

/// Which token a request carries, and how to find its cache again if the server refuses it.
pub(crate) enum Carried {
    /// This thread's copy of the header (the hot path): it knows its cache and generation.
    Copy(Arc<Local>),
    /// A token handed out by the slow path, of this generation.
    Token(TokenCache, u64),
}

impl Carried {
    /// The generation of the token carried.
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Self::Copy(local) => local.generation,
            Self::Token(_, generation) => *generation,
        }
    }

    /// The cache, if it still exists.
    pub(crate) fn cache(&self) -> Option<TokenCache> {
        match self {
            Self::Copy(local) => local.cache.upgrade().map(|shared| TokenCache { shared }),
            Self::Token(cache, _) => Some(cache.clone()),
        }
    }
}

/// A handle to the token cache behind a [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// The layer, every service it builds and all their clones share one cache; so do all clones
/// of this handle. Get it with [`BearerAuthLayer::cache`](crate::BearerAuthLayer::cache) or
/// [`BearerAuth::cache`](crate::BearerAuth::cache), or make one of your own with
/// [`TokenCache::new`] for a client that is not a tower stack.
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

pub(crate) struct Shared {
    /// Unique in the process, for tracing and to tell a reused slot's copies apart.
    id: u64,
    slot: Slot,
    provider: Arc<dyn TokenProvider>,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    config: Config,
    /// The latest token. Kept after it expires or is invalidated, for its refresh token.
    token: Option<Arc<Token>>,
    /// Whether `token` may be sent (false after `invalidate`).
    usable: bool,
    /// The login or refresh under way (boxed, like the other fields an idle cache rarely
    /// has, to keep idle caches small).
    flight: Option<Box<Flight>>,
    /// The last generation handed out.
    generation: u64,
    /// The failures in a row, and until when no new fetch starts.
    backoff: Option<Box<Backoff>>,
    /// The store and the change hook, when there is either.
    hooks: Option<Box<Hooks>>,
    /// The threads' copies of `token`'s header.
    locals: Vec<Arc<Local>>,
}

/// What a cache with a [`TokenStore`] or a change hook keeps besides.
struct Hooks {
    /// Where tokens are also kept, and the greatest version seen there: that of `token`, or
    /// of the revoked record the last `revoke` saved (versions never go back). No token of
    /// this version or below is adopted from the store.
    store: Option<Arc<dyn TokenStore>>,
    store_version: u64,
    /// Called with every new token.
    on_change: Option<OnChange>,
}

struct Backoff {
    error: TokenError,
    until: Instant,
    streak: u32,
    /// The last refresh token the server refused since the last success: never sent again.
    refused: Option<Refused>,
}

/// What a request that needs a token does now, decided under the lock.
enum Next {
    /// Send this token; `true` if threads may copy it (it has not reached its refresh point).
    Token(Arc<Token>, bool),
    /// Wait for this flight.
    Wait(Outcome),
    /// Fail at once: backing off after a failure.
    Fail(TokenError),
}

impl State {
    pub(crate) fn store(&self) -> Option<&Arc<dyn TokenStore>> {
        self.hooks.as_ref()?.store.as_ref()
    }

    pub(crate) fn on_change(&self) -> Option<&OnChange> {
        self.hooks.as_ref()?.on_change.as_ref()
    }

    /// The greatest store version seen (0 without a store).
    pub(crate) fn store_version(&self) -> u64 {
        self.hooks.as_ref().map_or(0, |h| h.store_version)
    }

    pub(crate) fn set_store_version(&mut self, version: u64) {
        if let Some(hooks) = &mut self.hooks {
            hooks.store_version = version;
        }
    }

    /// Whether `token` is still the one to send: not replaced, invalidated or revoked.
    fn is_current(&self, token: &Token) -> bool {
        self.usable
            && self
                .token
                .as_ref()
                .is_some_and(|t| t.generation == token.generation)
    }

    /// The token to send at `now`, and whether it has reached its refresh point.
    fn usable_token(&self, now: Instant) -> Option<(&Arc<Token>, bool)> {
        let token = self.token.as_ref().filter(|_| self.usable)?;
        if token.expires_at.is_some_and(|e| now >= e) {
            return None;
        }
        let stale = token.refresh_at.is_some_and(|r| now >= r);
        Some((token, stale))
    }

    /// The last refresh token the server refused, since the last token fetched.
    pub(crate) fn refused(&self) -> Option<Refused> {
        self.backoff.as_ref()?.refused
    }

    /// The last failure, while new fetches must wait.
    fn backing_off(&self, now: Instant) -> Option<&TokenError> {
        self.backoff
            .as_ref()
            .filter(|b| now < b.until)
            .map(|b| &b.error)
    }

    /// The flight under way, unless it is stuck.
    fn live_flight(&self, now: Instant) -> Option<&Flight> {
        self.flight.as_deref().filter(|f| !f.stuck(now))
    }

    /// Stops every thread's copy of the header from being sent, and frees them.
    fn retire_locals(&mut self) {
        for local in self.locals.drain(..) {
            local.retire();
        }
    }

    /// Remembers a failed fetch: no new fetch starts for a growing, jittered pause, or for as
    /// long as the provider asked (`Retry-After`, up to five minutes). Returns the pause and
    /// the failures in a row.
    fn record_failure(&mut self, failure: &Failure) -> (Duration, u32) {
        let Failure {
            error,
            retry_after,
            refused,
        } = failure;
        let streak = self
            .backoff
            .as_ref()
            .map_or(0, |b| b.streak)
            .saturating_add(1);
        // Refused credentials wait longer: a wrong password retried every few seconds locks
        // the account on many servers.
        let schedule = if error.credentials_rejected() {
            self.config.refused_backoff
        } else {
            self.config.backoff
        };
        let pause = schedule
            .jittered(streak, (self.config.random)(), *retry_after)
            .min(MAX_DURATION);
        let now = clock::now();
        self.backoff = Some(Box::new(Backoff {
            error: error.clone(),
            until: now.checked_add(pause).unwrap_or(now),
            streak,
            refused: refused.or(self.refused()),
        }));
        (pause, streak)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever does, the state is still
        // consistent field by field, so carry on rather than poison every request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides what a request that needs a token does, starting a login or refresh when one is
    /// due. The task returned must be spawned once the lock is released.
    fn next(self: &Arc<Self>, state: &mut State, now: Instant) -> (Next, Option<FlightTask>) {
        if let Some((token, stale)) = state.usable_token(now) {
            let token = token.clone();
            // A due token is sent while its refresh runs; a failed refresh waits for the
            // backoff, the token still being sent.
            let task =
                (stale && state.live_flight(now).is_none() && state.backing_off(now).is_none())
                    .then(|| flight::register(self, state, now));
            return (Next::Token(token, !stale), task);
        }
        if let Some(flight) = state.live_flight(now) {
            return (Next::Wait(flight.subscribe()), None);
        }
        if let Some(error) = state.backing_off(now) {
            trace::trace!(
                name: "backoff",
                cache = self.id,
                error_kind = ?error.kind(),
                "failing at once: backing off after a failed fetch"
            );
            return (Next::Fail(error.clone()), None);
        }
        let task = flight::register(self, state, now);
        let rx = state.flight.as_ref().expect("just registered").subscribe();
        (Next::Wait(rx), Some(task))
    }

    /// A copy of `token`'s header for this thread, kept by the cache.
    fn copy_for_this_thread(
        self: &Arc<Self>,
        state: &mut State,
        token: &Token,
    ) -> Option<Arc<Local>> {
        let local = Arc::new(Local::new(self, token)?);
        local::set(self.slot.index(), &local).then(|| {
            // The copies of threads that have exited go: a token that never expires, sent
            // from short-lived threads, would otherwise keep one copy per thread ever seen.
            state.locals.retain(Local::has_thread);
            // Room for one more at a time: most caches are used by one thread, or a few.
            state.locals.reserve_exact(1);
            state.locals.push(local.clone());
            local
        })
    }
}

/// Waits for a token: for the flight `first`, and for the flights after it if that one goes
/// away without a token. Gives up after `timeout`.
async fn wait(
    shared: Arc<Shared>,
    first: Option<Outcome>,
    timeout: Duration,
) -> Result<Arc<Token>, TokenError> {
    if Handle::try_current().is_err() {
        // No runtime to run a flight on, or to time the wait.
        return Err(TokenError::new(TokenErrorKind::Aborted));
    }
    let mut rx = first;
    let waiting = async {
        loop {
            let mut outcome = match rx.take() {
                Some(outcome) => outcome,
                None => {
                    let (next, task) = {
                        let mut state = shared.lock();
                        shared.next(&mut state, clock::now())
                    };
                    if let Some(task) = task {
                        task.spawn();
                    }
                    match next {
                        Next::Token(token, _) => return Ok(token),
                        Next::Fail(error) => return Err(error),
                        Next::Wait(outcome) => outcome,
                    }
                }
            };
            let landing = match outcome.wait_for(|l| !matches!(l, Landing::Pending)).await {
                Ok(landing) => landing.clone(),
                Err(_) => Landing::Restart,
            };
            match landing {
                // Unless a revoke or invalidate came between the landing and this turn.
                Landing::Token(token) if shared.lock().is_current(&token) => return Ok(token),
                Landing::Token(_) => {}
                Landing::Failed(error) => return Err(error),
                // Gone without a token: ask the cache again, after letting others run.
                Landing::Restart | Landing::Pending => rt::yield_now().await,
            }
        }
    };
    rt::timeout(timeout, waiting)
        .await
        .unwrap_or_else(|_| Err(TokenError::new(TokenErrorKind::Timeout)))
}

/// A provider makes a cache with the default settings, so that
/// [`BearerAuthLayer::new`](crate::BearerAuthLayer::new) takes either.
impl<P: TokenProvider> From<P> for TokenCache {
    fn from(provider: P) -> Self {
        Self::new(provider)
    }
}

impl TokenCache {
    /// How many handles to this cache exist.
    #[cfg(test)]
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.shared)
    }
}

impl TokenCache {
    /// A cache for tokens from `provider`, with the default settings; the same as
    /// `TokenCache::builder(provider).build()`. Hand it to
    /// [`BearerAuthLayer::new`](crate::BearerAuthLayer::new) or
    /// [`BearerAuthMiddleware::new`](crate::reqwest::BearerAuthMiddleware::new) (which also take
    /// the provider itself), or use it directly with [`get`](Self::get).
    pub fn new(provider: impl TokenProvider) -> Self {
        Self::builder(provider).build()
    }

    /// The settings of a cache for tokens from `provider`, each at its default: set what you
    /// need, then [`build`](TokenCacheBuilder::build) the cache.
    pub fn builder(provider: impl TokenProvider) -> TokenCacheBuilder {
        TokenCacheBuilder::new(Arc::new(provider))
    }

    /// The builder of a cache for a provider already shared.
    pub(crate) fn builder_arc(provider: Arc<dyn TokenProvider>) -> TokenCacheBuilder {
        TokenCacheBuilder::new(provider)
    }

    pub(crate) fn with(
        provider: Arc<dyn TokenProvider>,
        config: Config,
        store: Option<Arc<dyn TokenStore>>,
        on_change: Option<OnChange>,
    ) -> Self {
        let hooks = (store.is_some() || on_change.is_some()).then(|| {
            Box::new(Hooks {
                store,
                store_version: 0,
                on_change,
            })
        });
        let state = State {
            config: config.clamped(),
            hooks,
            ..State::default()
        };
        Self {
            shared: Arc::new(Shared {
                id: next_id(),
                slot: local::slot(),
                provider,
                state: Mutex::new(state),
            }),
        }
    }

    pub(crate) fn provider(&self) -> &Arc<dyn TokenProvider> {
        &self.shared.provider
    }

    /// The hot path: this thread's copy of the header, if it may be sent now.
    #[inline]
    pub(crate) fn cached(&self) -> Option<Arc<Local>> {
        local::get(self.shared.slot.index(), self.shared.id)
    }

    /// The slow path: checks the token under the lock, starts a login or refresh if needed.
    pub(crate) fn lookup(&self) -> Lookup {
        let now = clock::now();
        let mut state = self.shared.lock();
        let (next, task) = self.shared.next(&mut state, now);
        let lookup = match next {
            Next::Token(token, copy) => {
                let local = if copy {
                    self.shared.copy_for_this_thread(&mut state, &token)
                } else {
                    None
                };
                drop(state);
                let carried = match local {
                    Some(local) => Carried::Copy(local),
                    None => Carried::Token(self.clone(), token.generation),
                };
                Lookup::Ready(token.header.clone(), carried)
            }
            Next::Wait(rx) => {
                let timeout = state.config.timeout;
                drop(state);
                Lookup::Wait(Box::pin(wait(self.shared.clone(), Some(rx), timeout)))
            }
            Next::Fail(error) => {
                drop(state);
                Lookup::Wait(Box::pin(async move { Err(error) }))
            }
        };
        if let Some(task) = task {
            task.spawn();
        }
        lookup
    }

    /// The current token, if there is one that may be sent now.
    ///
    /// This never fetches a token; see [`get`](TokenCache::get).
    pub fn token(&self) -> Option<Token> {
        let state = self.shared.lock();
        state
            .usable_token(clock::now())
            .map(|(token, _)| Token::clone(token))
    }

    /// When the current token expires: `None` if there is no usable token or it never expires.
    pub fn expires_at(&self) -> Option<Instant> {
        self.token().and_then(|t| t.expires_at())
    }

    /// The token a request would be sent with now, logging in first if there is none.
    ///
    /// As for a request, a token past its refresh point is returned at once while the refresh
    /// runs in the background, and one whose refresh failed is returned for as long as it is
    /// valid. Waits at most the cache's [timeout](crate::TokenCacheBuilder::timeout).
    ///
    /// # Errors
    ///
    /// Returns the [`TokenError`] of a failed login or refresh, or of kind
    /// [`Timeout`](TokenErrorKind::Timeout) when no token came in time.
    pub async fn get(&self) -> Result<Token, TokenError> {
        let fut = {
            let mut state = self.shared.lock();
            let timeout = state.config.timeout;
            let (next, task) = self.shared.next(&mut state, clock::now());
            drop(state);
            if let Some(task) = task {
                task.spawn();
            }
            match next {
                Next::Token(token, _) => return Ok(Token::clone(&token)),
                Next::Fail(error) => return Err(error),
                Next::Wait(rx) => wait(self.shared.clone(), Some(rx), timeout),
            }
        };
        fut.await.map(|t| Token::clone(&t))
    }

    /// Refreshes the token now (or logs in if there is no refresh token), whatever its expiry
    /// and even while the cache is backing off after failures.
    ///
    /// Joins a login or refresh already under way instead of starting another. With a
    /// [store](crate::TokenCacheBuilder::store), a newer token that another cache saved there
    /// counts as the refresh.
    ///
    /// # Errors
    ///
    /// Returns the [`TokenError`] of a failed login or refresh, or of kind
    /// [`Timeout`](TokenErrorKind::Timeout) when no token came in time.
    pub async fn refresh(&self) -> Result<Token, TokenError> {
        let fut = {
            let now = clock::now();
            let mut state = self.shared.lock();
            let timeout = state.config.timeout;
            let task = state
                .live_flight(now)
                .is_none()
                .then(|| flight::register(&self.shared, &mut state, now));
            let rx = state
                .flight
                .as_ref()
                .expect("a flight is registered")
                .subscribe();
            drop(state);
            if let Some(task) = task {
                task.spawn();
            }
            wait(self.shared.clone(), Some(rx), timeout)
        };
        fut.await.map(|t| Token::clone(&t))
    }

    /// Stops sending the current token. The next request refreshes it (with its refresh
    /// token, if any) or logs in.
    pub fn invalidate(&self) {
        let mut state = self.shared.lock();
        let was_usable = std::mem::replace(&mut state.usable, false);
        state.retire_locals();
        if !was_usable {
            return;
        }
        let on_change = state.on_change().cloned();
        let labels = state.config.labels.clone();
        drop(state);
        metrics::dropped(&labels);
        if let Some(on_change) = on_change {
            on_change(TokenChange::Invalidated);
        }
    }

    /// Stops sending the token of `generation` (see [`Token::generation`]), if it is still the
    /// current one: the answer to a server that refused it. A late refusal of a token already
    /// replaced does not throw its successor away, so fifty requests refused at once cause one
    /// refresh.
    pub fn invalidate_generation(&self, generation: u64) {
        let mut state = self.shared.lock();
        if state.usable
            && state
                .token
                .as_ref()
                .is_some_and(|t| t.generation == generation)
        {
            state.usable = false;
            state.retire_locals();
            let on_change = state.on_change().cloned();
            let labels = state.config.labels.clone();
            drop(state);
            trace::debug!(
                name: "invalidated",
                cache = self.shared.id,
                generation,
                "token invalidated after a 401"
            );
            metrics::invalidated(&labels);
            metrics::dropped(&labels);
            if let Some(on_change) = on_change {
                on_change(TokenChange::Invalidated);
            }
        }
    }

    /// The labels of the cache's metrics: a lock and a clone with the `metrics` feature,
    /// nothing without it.
    #[inline]
    pub(crate) fn labels(&self) -> Labels {
        #[cfg(feature = "metrics")]
        return self.shared.lock().config.labels.clone();
        #[cfg(not(feature = "metrics"))]
        Labels::default()
    }

    /// The cache's process-wide number, for tracing.
    pub(crate) fn id(&self) -> u64 {
        self.shared.id
    }

    /// Revokes the current token at the server and empties the cache, for a clean logout.
    ///
    /// The cache forgets the token and its refresh token before anything else, so no request
    /// sends it again: once `revoke` is called, a request that has not yet been given the
    /// token, including one already waiting for a login, never is. A login or refresh under
    /// way is discarded: it stops at its next step, its token is never sent, saved or
    /// adopted, and the requests waiting for it wait for a new login instead, which starts
    /// once the discarded one has stopped.
    ///
    /// With a [store](crate::TokenCacheBuilder::store), the cache then saves a revoked record
    /// there, under the store's lock (see [`crate::store`]): the cache's requests wait for it
    /// as for a login, no cache adopts the revoked token from the store, and the next login is
    /// saved and shared as before. Last, the provider is asked to revoke the token at the
    /// server. The next request logs in.
    ///
    /// # Errors
    ///
    /// Returns a [`TokenError`] of kind [`Revoke`](TokenErrorKind::Revoke) when the provider
    /// fails to revoke the token or the store cannot be written, or
    /// [`Timeout`](TokenErrorKind::Timeout). The token is forgotten all the same.
    pub async fn revoke(&self) -> Result<(), TokenError> {
        let (token, timeout, on_change, task, store, labels) = {
            let now = clock::now();
            let mut state = self.shared.lock();
            state.usable = false;
            state.retire_locals();
            let token = state.token.take();
            // The revoke's own flight replaces the one under way: new requests wait for it.
            let task = flight::register_revoke(&self.shared, &mut state, now);
            (
                token,
                state.config.timeout,
                state.on_change().cloned(),
                task,
                state.store().is_some(),
                state.config.labels.clone(),
            )
        };
        metrics::dropped(&labels);
        if let Some(on_change) = on_change {
            on_change(TokenChange::Revoked);
        }
        // Both steps run even if the first fails; the first failure is reported.
        let cache = self.shared.id;
        let cleared = task.revoke().await;
        match &cleared {
            _ if !store => {}
            Ok(()) => trace::debug!(name: "store_clear", cache, "revoke written to the store"),
            Err(error) => trace::debug!(
                name: "store_clear",
                cache,
                error_kind = ?error.kind(),
                error = %Chain(error),
                "writing the revoke to the store failed"
            ),
        }
        let generation = token.as_ref().map(|t| t.generation);
        let revoked = match &token {
            Some(token) => {
                let refresh_token = token.refresh_token.as_deref();
                let revoking = self
                    .shared
                    .provider
                    .revoke(token.access_token(), refresh_token);
                revoke_step(timeout, revoking).await
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
    step: impl std::future::Future<Output = Result<(), crate::BoxError>>,
) -> Result<(), TokenError> {
    match rt::timeout(timeout, step).await {
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
            .field("store", &state.store().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests;
