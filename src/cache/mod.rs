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
//! as the *flight* (see `flight/`). Requests that need a token wait for it, each for at
//! most the cache's timeout; a request that is dropped stops waiting, and the fetch finishes
//! for the others. A flight whose runtime shuts down, or that runs past the bounds of its
//! steps (its runtime is no longer driven), is started again by the next request. With a
//! [`TokenStore`], the flight also takes the store's lock and reads the store first, so caches
//! sharing the store share one flight too (see [`crate::store`]).

use std::{
    fmt,
    sync::{Arc, PoisonError},
};

use http::HeaderValue;
use tokio::time::Instant;

use crate::{
    clock,
    error::TokenError,
    metrics::{self, Labels},
    provider::{BoxFuture, TokenProvider},
    rt::{Mutex, MutexGuard},
    store::{OnChange, TokenChange, TokenStore},
    token::Token,
    trace,
};

mod builder;
mod config;
mod flight;
mod local;
mod revoke;
mod shared_store;
mod slot;
mod state;
mod wait;

pub use builder::TokenCacheBuilder;

pub(crate) use config::{Config, next_id};
use local::Local;
use slot::Slot;
use state::State;
use wait::{Next, wait};

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

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something ever does, the state is still
        // consistent field by field, so carry on rather than poison every request.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
        Self {
            shared: Arc::new(Shared {
                id: next_id(),
                slot: local::slot(),
                provider,
                state: Mutex::new(State::new(config, store, on_change)),
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
    /// [`Timeout`](crate::TokenErrorKind::Timeout) when no token came in time.
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
    /// [`Timeout`](crate::TokenErrorKind::Timeout) when no token came in time.
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
