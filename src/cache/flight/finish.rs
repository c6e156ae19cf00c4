//! How a flight ends: its token becomes the cache's, or its failure starts a backoff; the
//! waiters are told, and then the change hook.

use std::sync::Arc;

use super::{Failure, Fetched, FlightTask, Landing};
use crate::{
    cache::state::State,
    metrics,
    rt::MutexGuard,
    store::{OnChange, StoredToken, TokenChange},
    token::Token,
    trace::{self, Started, Step},
};

/// The change hook's call that a new token makes, once its waiters have it.
struct Change {
    on_change: OnChange,
    stored: StoredToken,
    step: Step,
}

impl Change {
    fn tell(self) {
        let Self {
            on_change,
            stored,
            step,
        } = self;
        on_change(match step {
            Step::Login { .. } => TokenChange::Login(&stored),
            Step::Refresh => TokenChange::Refresh(&stored),
            Step::Stored => TokenChange::Store(&stored),
        });
    }
}

impl FlightTask {
    /// Hands the fetch's result to the cache, if the flight is still the cache's, and lands
    /// the flight with it.
    pub(super) fn finish(&mut self, result: Result<Fetched, Failure>) {
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
        let (landing, changed) = match result {
            Ok(fetched) => self.succeeded(state, fetched),
            Err(failure) => (self.failed(state, failure), None),
        };
        flight.land(landing);
        // Last: the waiting requests have their token whatever the hook does.
        if let Some(change) = changed {
            change.tell();
        }
    }

    /// Makes the fetched token the cache's, and releases the lock. Returns the landing, and
    /// the change hook's call to make once the waiters have the token.
    fn succeeded(
        &self,
        mut state: MutexGuard<'_, State>,
        fetched: Fetched,
    ) -> (Landing, Option<Change>) {
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
        state.clear_backoff();
        if let Some(stored) = &stored {
            state.set_store_version(stored.version());
        }
        let changed = self.on_change.as_ref().map(|on_change| Change {
            on_change: on_change.clone(),
            stored: stored
                .clone()
                .unwrap_or_else(|| StoredToken::new(token.generation, token.to_response())),
            step,
        });
        drop(state);
        log_success(&token, stored.as_ref(), step, started);
        metrics::obtained(&self.config.labels, step, token.expires_at);
        (Landing::Token(token), changed)
    }

    /// Starts a backoff after a failed fetch, and releases the lock. Returns the landing.
    fn failed(&self, mut state: MutexGuard<'_, State>, failure: Failure) -> Landing {
        let (pause, streak) = state.record_failure(&failure);
        drop(state);
        metrics::failed(&self.config.labels, failure.error.kind());
        trace::debug!(
            name: "backoff",
            error_kind = ?failure.error.kind(),
            backoff_ms = trace::ms(pause),
            streak,
            "backing off after a failed fetch"
        );
        Landing::Failed(failure.error)
    }
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
