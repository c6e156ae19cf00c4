//! The single flight: one login or refresh at a time, run detached from the requests that
//! wait for it, on whichever runtime is there to run it.
//!
//! A flight is a task spawned on the runtime of the request that needed a token, registered
//! in the cache's state with a `watch` channel on which it *lands*: with a token, with an
//! error, or with [`Landing::Restart`]. Waiting requests hold receivers; a request that is
//! dropped drops only its receiver.
//!
//! Nothing here relies on the flight's runtime being driven:
//!
//! - a waiter gives up after the cache's `timeout`, on its own runtime's clock, with
//!   [`TokenErrorKind::Timeout`];
//! - a flight that has run past its deadline (the sum of the bounds of its steps) is taken to
//!   be stuck on a runtime nobody drives, and the next request starts another;
//! - a flight whose task is dropped unfinished (its runtime shut down) lands as `Restart`, and
//!   its waiters start a new one on their own runtimes;
//! - a flight that is no longer the cache's (replaced, or discarded by `revoke`) lands as
//!   `Restart` too, and its task stops at its next step: its token is never handed out or
//!   saved;
//! - the task holds the cache weakly: once every handle to the cache is dropped, the flight's
//!   record goes with the cache's state, and the task stops, dropping the provider's call.
//!
//! A waiter that sees a token land checks that it is still the cache's before sending it: a
//! `revoke` or `invalidate` may have come between the landing and the waiter's turn.

use std::{
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    num::NonZeroU64,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::{Pin, pin},
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::{Config, Shared, State, shared_store};
use crate::{
    BoxError, clock,
    error::{TokenError, TokenErrorKind},
    metrics,
    provider::TokenProvider,
    rt::{self, Handle},
    store::{OnChange, StoredToken, TokenChange, TokenStore},
    token::Token,
    trace::{self, Chain, Started, Step},
};

/// How a flight ended, as its waiters see it.
#[derive(Clone)]
pub(crate) enum Landing {
    /// Still under way.
    Pending,
    Token(Arc<Token>),
    Failed(TokenError),
    /// The flight is gone without a token for its waiters: ask the cache again.
    Restart,
}

/// A waiting request's end of a flight's channel.
pub(crate) type Outcome = watch::Receiver<Landing>;

/// The flight under way, as the cache's state keeps it.
pub(crate) struct Flight {
    pub(crate) id: u64,
    tx: watch::Sender<Landing>,
    /// Closed once the flight's task has ended (finished, stopped, or dropped unspawned).
    ended: watch::Receiver<()>,
    /// Past this instant the flight is taken to be stuck and may be replaced.
    deadline: Instant,
}

impl Flight {
    pub(crate) fn subscribe(&self) -> Outcome {
        self.tx.subscribe()
    }

    pub(crate) fn stuck(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Tells the waiters.
    pub(crate) fn land(&self, landing: Landing) {
        self.tx.send_replace(landing);
    }
}

/// The longest a flight can legitimately take.
fn flight_bound(config: &Config, store: bool) -> Duration {
    // The provider's calls share one `timeout`; with a store, the wait for its lock (two),
    // the read, the lease check and the save come on top (see `shared_store`).
    let steps = if store { 6 } else { 1 };
    config.timeout.saturating_mul(steps) + Duration::from_millis(100)
}

/// A fetched token, and how it was got.
pub(crate) struct Fetched {
    pub(crate) token: Token,
    /// What was saved to or adopted from the store.
    pub(crate) stored: Option<StoredToken>,
    pub(crate) step: Step,
    pub(crate) started: Started,
}

/// A failed fetch, with how long the provider asked the cache to wait.
pub(crate) struct Failure {
    pub(crate) error: TokenError,
    pub(crate) retry_after: Option<Duration>,
    /// The refresh token the server refused on the way, if it did.
    pub(crate) refused: Option<Refused>,
}

impl From<TokenError> for Failure {
    fn from(error: TokenError) -> Self {
        Self {
            error,
            retry_after: None,
            refused: None,
        }
    }
}

/// A refresh token the server refused, known by a fingerprint (the secret is not kept): once
/// refused it is never sent again, and the next fetch logs in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused(NonZeroU64);

impl Refused {
    fn of(refresh_token: &str) -> Self {
        let mut hasher = DefaultHasher::new();
        refresh_token.hash(&mut hasher);
        Self(NonZeroU64::new(hasher.finish()).unwrap_or(NonZeroU64::MIN))
    }
}

/// Registers a new flight in `state` and returns the task to spawn once the lock is released.
/// A flight it replaces (stuck: its runtime is not driven) lands as `Restart`, and its task
/// stops at its next step.
pub(crate) fn register(shared: &Arc<Shared>, state: &mut State, now: Instant) -> FlightTask {
    register_with(shared, state, now, false)
}

/// Registers the flight of a `revoke`, which the cache's requests wait for as for a login: it
/// waits for the task of the flight it discards to end (so that no two logins ever run at
/// once), then writes the revoke to the store, if any. Run it with [`FlightTask::revoke`].
pub(crate) fn register_revoke(shared: &Arc<Shared>, state: &mut State, now: Instant) -> FlightTask {
    register_with(shared, state, now, true)
}

fn register_with(
    shared: &Arc<Shared>,
    state: &mut State,
    now: Instant,
    after_replaced: bool,
) -> FlightTask {
    let id = super::next_id();
    let (tx, gone) = watch::channel(Landing::Pending);
    let (ended_tx, ended) = watch::channel(());
    let bound = flight_bound(&state.config, state.store().is_some());
    let replaced = state.flight.replace(Box::new(Flight {
        id,
        tx,
        ended,
        deadline: now + bound,
    }));
    let after = replaced.map(|replaced| {
        replaced.land(Landing::Restart);
        replaced.ended
    });
    FlightTask {
        shared: Arc::downgrade(shared),
        provider: shared.provider.clone(),
        id,
        cache: shared.id,
        refresh_token: state.token.as_ref().and_then(|t| t.refresh_token.clone()),
        known: state.store_version(),
        refused: state.refused(),
        store: state.store().cloned(),
        on_change: state.on_change().cloned(),
        config: state.config.clone(),
        bound,
        gone: Some(gone),
        after: after.filter(|_| after_replaced),
        _ended: ended_tx,
        done: false,
    }
}

/// One login or refresh (or a revoke's step in the store), run detached from the requests
/// waiting for it.
///
/// Dropped before it finished (its runtime shut down, or there was none to spawn it on), it
/// lands as [`Landing::Restart`] and unregisters itself, so that the next request starts
/// another.
pub(crate) struct FlightTask {
    /// Weak: a flight does not keep its cache alive.
    shared: Weak<Shared>,
    provider: Arc<dyn TokenProvider>,
    id: u64,
    /// The cache's id, for tracing.
    cache: u64,
    refresh_token: Option<String>,
    /// The greatest store version the cache has seen (0 without a store).
    known: u64,
    refused: Option<Refused>,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<OnChange>,
    config: Config,
    bound: Duration,
    /// Ends when the flight's record is dropped: replaced, discarded, or gone with the cache.
    gone: Option<Outcome>,
    /// For a revoke: closed once the task of the flight it discarded has ended.
    after: Option<watch::Receiver<()>>,
    /// Dropped with the task: tells a revoke that replaced this flight that it has ended.
    _ended: watch::Sender<()>,
    done: bool,
}

impl FlightTask {
    /// Spawns the flight on the current runtime; without one, it is dropped and lands as
    /// `Restart`, and the waiters start it from their own runtime.
    pub(crate) fn spawn(self) {
        if let Ok(handle) = Handle::try_current() {
            let cache = self.cache;
            drop(handle.spawn(trace::instrument!(self.run(), "token_fetch", cache)));
        }
    }

    async fn run(mut self) {
        let gone = self.gone.take();
        let fetch = rt::timeout(self.bound, self.fetch());
        let Some(result) = unless_gone(fetch, gone).await else {
            // No longer the cache's: whoever removed the flight told its waiters.
            return;
        };
        let result =
            result.unwrap_or_else(|_| Err(TokenError::new(TokenErrorKind::Timeout).into()));
        self.finish(result);
    }

    async fn fetch(&self) -> Result<Fetched, Failure> {
        let refresh_token = self.refresh_token.clone();
        let provider = &*self.provider;
        let Some(store) = &self.store else {
            return fetch(provider, refresh_token, self.refused, &self.config).await;
        };
        shared_store::fetch(
            &**store,
            provider,
            refresh_token,
            self.known,
            self.refused,
            &self.config,
        )
        .await
    }

    /// A revoke's flight, run in place by `TokenCache::revoke` while the cache's requests wait
    /// for it: waits for the flight it discarded to end, saves a revoked record under the
    /// store's lock (with a store), then lands as `Restart` so that they log in anew.
    pub(crate) async fn revoke(mut self) -> Result<(), TokenError> {
        let (after, store, known) = (self.after.take(), self.store.clone(), self.known);
        let timeout = self.config.timeout;
        let step = async move {
            if let Some(mut after) = after {
                while after.changed().await.is_ok() {}
            }
            match store {
                Some(store) => shared_store::revoke(&*store, known, timeout)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let result = match rt::timeout(self.bound, step).await {
            Ok(Ok(version)) => Ok(version),
            Ok(Err(e)) => Err(TokenError::with_source(TokenErrorKind::Revoke, e)),
            Err(_) => Err(TokenError::new(TokenErrorKind::Timeout)),
        };
        self.done = true;
        if let Some(shared) = self.shared.upgrade() {
            let mut state = shared.lock();
            if let Ok(Some(version)) = result {
                let version = version.max(state.store_version());
                state.set_store_version(version);
            }
            if state.flight.as_ref().is_some_and(|f| f.id == self.id) {
                let flight = state.flight.take().expect("checked above");
                drop(state);
                flight.land(Landing::Restart);
            }
        }
        result.map(drop)
    }

    fn finish(&mut self, result: Result<Fetched, Failure>) {
        self.done = true;
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut state = shared.lock();
        // A flight replaced or discarded by `revoke` hands out nothing: whoever replaced it
        // told its waiters to ask again.
        if state.flight.as_ref().is_none_or(|f| f.id != self.id) {
            return;
        }
        let flight = state.flight.take().expect("checked above");
        let mut changed = None;
        let mut backoff = None;
        let landing = match result {
            Ok(fetched) => {
                let Fetched {
                    mut token,
                    stored,
                    step,
                    started,
                } = fetched;
                state.generation += 1;
                token.generation = state.generation;
                let token = Arc::new(token);
                state.retire_locals();
                state.token = Some(token.clone());
                state.usable = true;
                state.backoff = None;
                if let Some(stored) = &stored {
                    state.set_store_version(stored.version());
                }
                if let Some(on_change) = &self.on_change {
                    let stored = stored
                        .clone()
                        .unwrap_or_else(|| StoredToken::new(token.generation, token.to_response()));
                    changed = Some((on_change.clone(), stored, step));
                }
                drop(state);
                log_success(&token, stored.as_ref(), step, started);
                metrics::obtained(&self.config.labels, step, token.expires_at);
                Landing::Token(token)
            }
            Err(failure) => {
                backoff = Some(state.record_failure(&failure));
                drop(state);
                metrics::failed(&self.config.labels, failure.error.kind());
                Landing::Failed(failure.error)
            }
        };
        if let (Some((pause, streak)), Landing::Failed(error)) = (backoff, &landing) {
            trace::debug!(
                name: "backoff",
                error_kind = ?error.kind(),
                backoff_ms = trace::ms(pause),
                streak,
                "backing off after a failed fetch"
            );
        }
        flight.land(landing);
        // Last: the waiting requests have their token whatever the hook does.
        if let Some((on_change, stored, step)) = changed {
            on_change(match step {
                Step::Login { .. } => TokenChange::Login(&stored),
                Step::Refresh => TokenChange::Refresh(&stored),
                Step::Stored => TokenChange::Store(&stored),
            });
        }
    }
}

impl Drop for FlightTask {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut state = shared.lock();
        if state.flight.as_ref().is_some_and(|f| f.id == self.id) {
            let flight = state.flight.take().expect("checked above");
            drop(state);
            flight.land(Landing::Restart);
        }
    }
}

/// Runs `work` until it ends or the flight's record is dropped (`None`); without a record to
/// watch, to the end.
async fn unless_gone<F: Future>(work: F, gone: Option<Outcome>) -> Option<F::Output> {
    let mut work = pin!(work);
    let Some(mut gone) = gone else {
        return Some(work.await);
    };
    let mut dropped = pin!(async move { while gone.changed().await.is_ok() {} });
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        dropped.as_mut().poll(cx).map(|()| None)
    })
    .await
}

fn log_success(token: &Token, stored: Option<&StoredToken>, step: Step, started: Started) {
    let (generation, version) = (token.generation, stored.map(StoredToken::version));
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

/// A provider call that panicked, as an error: a panic counts as a failure, with a backoff.
#[derive(Debug)]
struct Panicked;

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the token provider panicked")
    }
}

impl std::error::Error for Panicked {}

/// Runs a provider call, bounded by `deadline`, turning a panic (in the call or its future)
/// into an error.
async fn call<'a, T>(
    deadline: Instant,
    make: impl FnOnce() -> crate::provider::BoxFuture<'a, Result<T, BoxError>>,
) -> Result<Result<T, BoxError>, TokenError> {
    let fut = match catch_unwind(AssertUnwindSafe(make)) {
        Ok(fut) => fut,
        Err(_) => return Ok(Err(Panicked.into())),
    };
    match rt::timeout_at(deadline, CatchUnwind(fut)).await {
        Ok(result) => Ok(result),
        Err(_) => Err(TokenError::new(TokenErrorKind::Timeout)),
    }
}

/// A boxed future whose panic becomes an error.
struct CatchUnwind<'a, T>(crate::provider::BoxFuture<'a, Result<T, BoxError>>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(Panicked.into())),
        }
    }
}

/// Refreshes with `refresh_token` if there is one, else (or if that fails) logs in, the two
/// within one `timeout`: a fetch never outlasts the wait of the request that started it.
///
/// A refresh token the server has `refused` is not sent again: the fetch logs in.
pub(crate) async fn fetch(
    provider: &dyn TokenProvider,
    refresh_token: Option<String>,
    refused: Option<Refused>,
    config: &Config,
) -> Result<Fetched, Failure> {
    let now = Instant::now();
    let deadline = now.checked_add(config.timeout).unwrap_or(now);
    let mut refresh_failed = false;
    let mut refused_now = None;
    let refresh_token = refresh_token.filter(|t| refused != Some(Refused::of(t)));
    if let Some(refresh_token) = refresh_token {
        let issued = clock::now();
        let fingerprint = Refused::of(&refresh_token);
        let called = call(deadline, || provider.refresh(&refresh_token)).await;
        let ok = matches!(called, Ok(Ok(_)));
        metrics::endpoint_call(&config.labels, metrics::Call::Refresh, issued, ok);
        let refreshed = match called {
            // A response without a refresh token keeps the one just used.
            Ok(Ok(response)) => Token::from_response(
                response,
                issued,
                &config.policy,
                Some(refresh_token),
                (config.random)(),
            ),
            Ok(Err(e)) => Err(TokenError::with_source(TokenErrorKind::Refresh, e)),
            Err(timed_out) => Err(timed_out),
        };
        match refreshed {
            Ok(token) => {
                return Ok(Fetched {
                    token,
                    stored: None,
                    step: Step::Refresh,
                    started: Started::at(issued),
                });
            }
            // Refused, failed, timed out or unusable: log in instead. One the server refused
            // (`invalid_grant`, say) is never sent again.
            Err(error) => {
                if error.credentials_rejected() {
                    refused_now = Some(fingerprint);
                }
                metrics::failed(&config.labels, error.kind());
                trace::debug!(
                    name: "refresh",
                    elapsed_ms = trace::elapsed_ms(issued),
                    error_kind = ?error.kind(),
                    error = %Chain::refresh(&error),
                    "token refresh failed; logging in instead"
                )
            }
        }
        refresh_failed = true;
    }
    let issued = clock::now();
    let called = call(deadline, || provider.login()).await;
    let ok = matches!(called, Ok(Ok(_)));
    metrics::endpoint_call(&config.labels, metrics::Call::Login, issued, ok);
    let result = match called {
        Ok(Ok(response)) => {
            Token::from_response(response, issued, &config.policy, None, (config.random)())
                .map_err(Failure::from)
        }
        // After a refused refresh too: what failed last, and what the caller must fix, is
        // the login (a changed password, say).
        Ok(Err(e)) => {
            let retry_after = provider.retry_after(&*e);
            Err(Failure {
                error: TokenError::with_source(TokenErrorKind::Login, e),
                retry_after,
                refused: None,
            })
        }
        Err(timed_out) => Err(timed_out.into()),
    };
    let result = result.map_err(|failure| Failure {
        refused: refused_now,
        ..failure
    });
    if let Err(failure) = &result {
        trace::warn!(
            name: "login",
            elapsed_ms = trace::elapsed_ms(issued),
            fallback = refresh_failed,
            error_kind = ?failure.error.kind(),
            error = %Chain(&failure.error),
            retry_after_ms = failure.retry_after.map(trace::ms),
            "login failed"
        );
    }
    result.map(|token| Fetched {
        token,
        stored: None,
        step: Step::Login {
            fallback: refresh_failed,
        },
        started: Started::at(issued),
    })
}
