//! [`TokenCacheBuilder`]: a cache's settings, apart from the live cache they make.

use std::{fmt, sync::Arc, time::Duration};

use super::{TokenCache, config::Config};
use crate::{
    metrics::Labels,
    policy::Pause,
    provider::TokenProvider,
    store::{OnChange, TokenChange, TokenStore},
};

/// The settings of a [`TokenCache`], and the provider its tokens come from: a plain value,
/// whose [`build`](Self::build) makes the cache. Clones share only the provider, the store and
/// the `on_token_change` hook; each build makes a cache of its own.
///
/// Every setting is fixed once the cache is built: a cache, and every layer or middleware
/// that holds it, keeps the settings it was built with. A layer has no setter that could
/// give it another cache:
///
/// ```compile_fail,E0599
/// use std::time::Duration;
/// use tower_bearer_auth::{BearerAuthLayer, TokenCache, provider::StaticToken};
///
/// let shared = TokenCache::new(StaticToken::new("abc"));
/// let layer = BearerAuthLayer::new(shared.clone()).timeout(Duration::from_secs(1));
/// ```
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_auth::{BearerAuthLayer, Origin, TokenCache, provider::StaticToken};
///
/// let cache = TokenCache::builder(StaticToken::new("abc"))
///     .refresh_ahead(Duration::from_secs(60))
///     .timeout(Duration::from_secs(5))
///     .build();
/// // Two layers (one for HTTP, one for gRPC, say) that share one token.
/// let http = BearerAuthLayer::new(cache.clone())
///     .allow_origin(Origin::try_from("https://api.example.com")?);
/// let grpc = BearerAuthLayer::new(cache).grpc_unauthenticated(true).any_origin();
/// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
/// ```
#[must_use = "a builder does nothing until `build` makes the cache"]
#[derive(Clone)]
pub struct TokenCacheBuilder {
    provider: Arc<dyn TokenProvider>,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<OnChange>,
}

impl TokenCacheBuilder {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>) -> Self {
        Self {
            provider,
            config: Config::default(),
            store: None,
            on_change: None,
        }
    }

    /// How long before expiry the token is refreshed. The margin is capped at half the token's
    /// life, so a short-lived token is refreshed at about half its life.
    ///
    /// Defaults to 30 seconds.
    pub fn refresh_ahead(mut self, margin: Duration) -> Self {
        self.config.policy.refresh_ahead = margin;
        self
    }

    /// The upper bound of a random extra margin added to
    /// [`refresh_ahead`](Self::refresh_ahead), so that many clients given tokens at the same
    /// moment don't refresh in lockstep. Capped at half the margin.
    ///
    /// Defaults to 10 seconds.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.config.policy.jitter = jitter;
        self
    }

    /// How long a request waits for a token, how long a fetch may take (a refresh and the
    /// login that follows a refused one share it), and how long a revoke call may take,
    /// before each fails with [`TokenErrorKind::Timeout`](crate::TokenErrorKind::Timeout).
    ///
    /// Defaults to 10 seconds. The wait is timed on the waiting request's own runtime, so it
    /// ends even when the login it waits for runs on a runtime that is no longer driven; the
    /// fetch goes on for the requests after it. With a [store](Self::store), the store's calls
    /// are bounded apart: waiting for a lock another cache holds takes at most two timeouts
    /// (reading the store meanwhile), each other call one; a request may stop waiting before
    /// such a fetch ends. Durations beyond a year count as a year.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The pause after a failed login or refresh during which no new one starts: requests that
    /// need a token fail at once with the last error, and a token that is due for refresh but
    /// still valid keeps being sent. The pause starts at `initial`, doubles with each failure
    /// in a row up to `max`, is jittered (between half and all of it), and is lengthened when
    /// the provider asks for more ([`TokenProvider::retry_after`]). A success resets it.
    /// [`TokenCache::refresh`] ignores it.
    ///
    /// Defaults to 100 milliseconds and 30 seconds. A failure that refused the credentials
    /// has a pause of its own: see [`refused_backoff`](Self::refused_backoff). Pauses beyond
    /// 49 days count as 49 days.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.backoff = Pause::new(initial, max);
        self
    }

    /// The pause after a login the server refused for its credentials (a wrong password or
    /// client secret: [`TokenError::credentials_rejected`](crate::TokenError::credentials_rejected)),
    /// which grows as [`backoff`](Self::backoff)'s does but from longer: many servers lock an
    /// account, or block an address, after a handful of failed logins. Meanwhile requests
    /// fail at once with the refusal, without contacting the server.
    ///
    /// Defaults to 30 seconds, doubling up to 15 minutes: about 7 attempts in the first hour.
    /// A new cache (or [`TenantCaches::replace_provider`](crate::tenants::TenantCaches::replace_provider)
    /// for a tenant) starts afresh, so give new credentials to a new provider.
    pub fn refused_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.refused_backoff = Pause::new(initial, max);
        self
    }

    /// Keeps tokens in `store` as well as in memory: the cache reads it before every login or
    /// refresh and saves every new token to it, so a restarted process finds its token again
    /// and caches sharing the store share one login. See [`crate::store`].
    ///
    /// By default tokens are kept in memory only.
    ///
    /// ```
    /// use tower_bearer_auth::{TokenCache, provider::StaticToken, store::MemoryStore};
    ///
    /// let store = MemoryStore::new();
    /// let cache = TokenCache::builder(StaticToken::new("abc")).store(store.clone()).build();
    /// ```
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Calls `on_change` whenever the token changes, saying how ([`TokenChange`]): a new
    /// token from a login, a refresh or the [store](Self::store); the token invalidated
    /// (after a `401`, or [`TokenCache::invalidate`]); or revoked by [`TokenCache::revoke`].
    ///
    /// For code that only wants to know, or to persist the token somewhere. The hook runs on
    /// the task that fetched the token; keep it short and don't block. The token it gets holds
    /// the secrets: keep them out of logs.
    ///
    /// ```
    /// use tower_bearer_auth::{TokenCache, provider::StaticToken, store::TokenChange};
    ///
    /// let cache = TokenCache::builder(StaticToken::new("abc"))
    ///     .on_token_change(|change| match change {
    ///         TokenChange::Login(token) => println!("logged in, version {}", token.version()),
    ///         TokenChange::Revoked => println!("token revoked"),
    ///         _ => {}
    ///     })
    ///     .build();
    /// ```
    pub fn on_token_change(
        mut self,
        on_change: impl Fn(TokenChange<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_change = Some(Arc::new(on_change));
        self
    }

    /// The labels of the cache's metrics (a tenant key's).
    pub(crate) fn labels(mut self, labels: Labels) -> Self {
        self.config.labels = labels;
        self
    }

    /// A new, empty cache with these settings. Each call makes a cache of its own.
    pub fn build(self) -> TokenCache {
        TokenCache::with(self.provider, self.config, self.store, self.on_change)
    }
}

impl fmt::Debug for TokenCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheBuilder")
            .field("config", &self.config)
            .field("store", &self.store.is_some())
            .field("on_token_change", &self.on_change.is_some())
            .finish()
    }
}
