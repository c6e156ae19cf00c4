//! The slow path's decision, and the wait: what a request that needs a token does now (send
//! a token, wait for a flight, or fail), decided under the lock, and how it waits for a
//! flight to land.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    Shared,
    flight::{
        self, FlightTask,
        record::{Landing, Outcome},
    },
    state::State,
};
use crate::{
    clock,
    error::{TokenError, TokenErrorKind},
    rt::{self, Handle},
    token::Token,
    trace,
};

/// What a request that needs a token does now, decided under the lock.
pub(super) enum Next {
    /// Send this token; `true` if threads may copy it (it has not reached its refresh point).
    Token(Arc<Token>, bool),
    /// Wait for this flight.
    Wait(Outcome),
    /// Fail at once: backing off after a failure.
    Fail(TokenError),
}

impl Shared {
    /// Decides what a request that needs a token does, starting a login or refresh when one is
    /// due. The task returned must be spawned once the lock is released.
    pub(super) fn next(
        self: &Arc<Self>,
        state: &mut State,
        now: Instant,
    ) -> (Next, Option<FlightTask>) {
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
}

/// Waits for a token: for the flight `first`, and for the flights after it if that one goes
/// away without a token. Gives up after `timeout`.
pub(super) async fn wait(
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
