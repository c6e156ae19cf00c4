//! What the cache keeps under its lock: the token, the flight under way, the backoff after
//! failures, the store and change hook, and the threads' copies of the header.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use super::{
    config::{Config, MAX_DURATION},
    flight::{
        fetch::{Failure, Refused},
        record::Flight,
    },
    local::Local,
};
use crate::{
    clock,
    error::TokenError,
    store::{OnChange, TokenStore},
    token::Token,
};

#[derive(Default)]
pub(crate) struct State {
    pub(super) config: Config,
    /// The latest token. Kept after it expires or is invalidated, for its refresh token.
    pub(super) token: Option<Arc<Token>>,
    /// Whether `token` may be sent (false after `invalidate`).
    pub(super) usable: bool,
    /// The login or refresh under way (boxed, like the other fields an idle cache rarely
    /// has, to keep idle caches small).
    pub(super) flight: Option<Box<Flight>>,
    /// The last generation handed out.
    pub(super) generation: u64,
    /// The failures in a row, and until when no new fetch starts.
    backoff: Option<Box<Backoff>>,
    /// The store and the change hook, when there is either.
    hooks: Option<Box<Hooks>>,
    /// The threads' copies of `token`'s header.
    pub(super) locals: Vec<Arc<Local>>,
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

impl State {
    /// The state of a new cache: no token yet, `config` clamped, and the store and change
    /// hook, if any.
    pub(super) fn new(
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
        Self {
            config: config.clamped(),
            hooks,
            ..Self::default()
        }
    }

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
    pub(super) fn is_current(&self, token: &Token) -> bool {
        self.usable
            && self
                .token
                .as_ref()
                .is_some_and(|t| t.generation == token.generation)
    }

    /// The token to send at `now`, and whether it has reached its refresh point.
    pub(super) fn usable_token(&self, now: Instant) -> Option<(&Arc<Token>, bool)> {
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
    pub(super) fn backing_off(&self, now: Instant) -> Option<&TokenError> {
        self.backoff
            .as_ref()
            .filter(|b| now < b.until)
            .map(|b| &b.error)
    }

    /// Forgets the failures in a row: a token was fetched.
    pub(super) fn clear_backoff(&mut self) {
        self.backoff = None;
    }

    /// The flight under way, unless it is stuck.
    pub(super) fn live_flight(&self, now: Instant) -> Option<&Flight> {
        self.flight.as_deref().filter(|f| !f.stuck(now))
    }

    /// Stops every thread's copy of the header from being sent, and frees them.
    pub(super) fn retire_locals(&mut self) {
        for local in self.locals.drain(..) {
            local.retire();
        }
    }

    /// Remembers a failed fetch: no new fetch starts for a growing, jittered pause, or for as
    /// long as the provider asked (`Retry-After`, up to five minutes). Returns the pause and
    /// the failures in a row.
    pub(super) fn record_failure(&mut self, failure: &Failure) -> (Duration, u32) {
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
