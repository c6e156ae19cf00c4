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
    pin::pin,
    sync::{Arc, Weak},
    task::Poll,
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::{Shared, config::Config, shared_store, state::State};
use crate::{
    error::{TokenError, TokenErrorKind},
    provider::TokenProvider,
    rt::{self, Handle},
    store::{OnChange, TokenStore},
    trace,
};

mod call;
pub(crate) mod fetch;
mod finish;
pub(crate) mod record;

use fetch::{Failure, Fetched, Refused, fetch};
use record::{Flight, Landing, Outcome};

/// The longest a flight can legitimately take.
fn flight_bound(config: &Config, store: bool) -> Duration {
    // The provider's calls share one `timeout`; with a store, the wait for its lock (two),
    // the read, the lease check and the save come on top (see `shared_store`).
    let steps = if store { 6 } else { 1 };
    config.timeout.saturating_mul(steps) + Duration::from_millis(100)
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
    let id = super::config::next_id();
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
