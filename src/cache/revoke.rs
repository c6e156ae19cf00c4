//! [`TokenCache::revoke`]: a clean logout, in three steps: the cache forgets the token, the
//! store records the revoke, the provider revokes the token at the server.

use std::{sync::Arc, time::Duration};

use super::{TokenCache, flight::FlightTask};
use crate::{
    BoxError, clock,
    error::{TokenError, TokenErrorKind},
    metrics, rt,
    store::TokenChange,
    token::Token,
    trace::{self, Chain},
};

/// What [`TokenCache::revoke`] took from the cache under its lock.
struct Forgotten {
    /// The token to revoke at the server, if there was one.
    token: Option<Arc<Token>>,
    timeout: Duration,
    /// The revoke's own flight, which the cache's requests wait for.
    task: FlightTask,
    /// Whether the cache has a store, to write the revoke to.
    store: bool,
}

impl TokenCache {
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
        let Forgotten {
            token,
            timeout,
            task,
            store,
        } = self.forget();
        // Both steps run even if the first fails; the first failure is reported.
        let cleared = self.clear_store(task, store).await;
        let revoked = self.revoke_at_server(token.as_deref(), timeout).await;
        cleared.and(revoked)
    }

    /// The first step of a revoke: forgets the token and its copies, replaces the flight
    /// under way with the revoke's own, and tells the metrics and the change hook.
    fn forget(&self) -> Forgotten {
        let (forgotten, on_change, labels) = {
            let now = clock::now();
            let mut state = self.shared.lock();
            state.usable = false;
            state.retire_locals();
            let token = state.token.take();
            // The revoke's own flight replaces the one under way: new requests wait for it.
            let task = super::flight::register_revoke(&self.shared, &mut state, now);
            let forgotten = Forgotten {
                token,
                timeout: state.config.timeout,
                task,
                store: state.store().is_some(),
            };
            (
                forgotten,
                state.on_change().cloned(),
                state.config.labels.clone(),
            )
        };
        metrics::dropped(&labels);
        if let Some(on_change) = on_change {
            on_change(TokenChange::Revoked);
        }
        forgotten
    }

    /// The second step of a revoke: runs its flight, which writes the revoke to the store (if
    /// `store`) and then lets the waiting requests log in anew.
    async fn clear_store(&self, task: FlightTask, store: bool) -> Result<(), TokenError> {
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
        cleared
    }

    /// The last step of a revoke: asks the provider to revoke `token` at the server.
    async fn revoke_at_server(
        &self,
        token: Option<&Token>,
        timeout: Duration,
    ) -> Result<(), TokenError> {
        let cache = self.shared.id;
        let generation = token.map(|t| t.generation);
        let revoked = match token {
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
        revoked
    }
}

/// One step of [`TokenCache::revoke`], bounded by `timeout`.
async fn revoke_step(
    timeout: Duration,
    step: impl std::future::Future<Output = Result<(), BoxError>>,
) -> Result<(), TokenError> {
    match rt::timeout(timeout, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(TokenError::with_source(TokenErrorKind::Revoke, e)),
        Err(_) => Err(TokenError::new(TokenErrorKind::Timeout)),
    }
}
