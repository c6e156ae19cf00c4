//! [`BearerAuthLayer`]: the middleware's configuration.

use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use crate::{BearerAuth, TokenCache, TokenProvider};

/// Applies [`BearerAuth`] to services: every request gets `Authorization: Bearer <token>`.
///
/// The layer owns one token cache, shared by every service it builds and all their clones, so
/// however many requests are in flight there is at most one login or refresh at a time.
///
/// # How tokens are cached
///
/// - The first request logs in through the provider; requests arriving meanwhile wait for that
///   one login.
/// - The token is re-used until it nears expiry. A token with no expiry is used until it is
///   [invalidated](TokenCache::invalidate).
/// - [`refresh_ahead`](Self::refresh_ahead) (30 s by default, at most half the token's
///   life) before expiry, plus a random part of up to [`jitter`](Self::jitter), the next
///   request starts a refresh in the background and is itself sent with the still-valid token.
///   Requests only wait when there is no valid token.
/// - A refresh uses the refresh token when there is one; if that fails the cache logs in once.
///   A refresh response without a refresh token keeps the old one.
/// - Each provider call is bounded by [`timeout`](Self::timeout) (10 s by default).
/// - A failed login hands every waiting request a [`TokenError`](crate::TokenError) and caches
///   nothing; the next request tries again.
/// - The login or refresh runs as a task of its own on the current Tokio runtime, so a
///   request dropped while waiting (by a timeout, say) does not cancel it for the others.
///
/// The service needs a Tokio runtime with the time driver enabled.
///
/// # Example
///
/// ```
/// use http::{Request, Response, header::AUTHORIZATION};
/// use std::{convert::Infallible, time::Duration};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_bearer_auth::{BearerAuthLayer, StaticToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let http_client = service_fn(|req: Request<String>| async move {
///     assert_eq!(req.headers()[AUTHORIZATION], "Bearer abc123");
///     Ok::<_, Infallible>(Response::new(String::new()))
/// });
/// let client = ServiceBuilder::new()
///     .layer(
///         BearerAuthLayer::new(StaticToken::new("abc123"))
///             .refresh_ahead(Duration::from_secs(60))
///             .timeout(Duration::from_secs(5)),
///     )
///     .service(http_client);
/// let response = client.oneshot(Request::new(String::new())).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BearerAuthLayer {
    cache: TokenCache,
    overwrite: bool,
}

impl BearerAuthLayer {
    /// A layer with a new, empty token cache for tokens from `provider`.
    pub fn new(provider: impl TokenProvider) -> Self {
        Self::from_arc(Arc::new(provider))
    }

    /// A layer for a provider already shared as `Arc<dyn TokenProvider>`.
    pub fn from_arc(provider: Arc<dyn TokenProvider>) -> Self {
        Self {
            cache: TokenCache::new(provider),
            overwrite: false,
        }
    }

    /// How long before expiry the token is refreshed. The margin is capped at half the token's
    /// life, so a short-lived token is refreshed at about half its life.
    ///
    /// Defaults to 30 seconds. Applies to tokens obtained from now on, by every service that
    /// shares this layer's cache.
    pub fn refresh_ahead(self, margin: Duration) -> Self {
        self.cache.configure(|c| c.policy.refresh_ahead = margin);
        self
    }

    /// The upper bound of a random extra margin added to
    /// [`refresh_ahead`](Self::refresh_ahead), so that many clients given tokens at the same
    /// moment don't refresh in lockstep. Capped at half the margin.
    ///
    /// Defaults to 10 seconds.
    pub fn jitter(self, jitter: Duration) -> Self {
        self.cache.configure(|c| c.policy.jitter = jitter);
        self
    }

    /// How long each login, refresh or revoke call to the provider may take before it fails
    /// with [`TokenErrorKind::Timeout`](crate::TokenErrorKind::Timeout).
    ///
    /// Defaults to 10 seconds. A refresh that times out is followed by a login, so a request
    /// may wait up to twice this long.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.cache.configure(|c| c.timeout = timeout);
        self
    }

    /// Whether to replace an `Authorization` header the request already carries.
    ///
    /// Defaults to `false`: such a request is sent as it is, and no token is fetched for it.
    pub fn overwrite_existing(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// The handle to the token cache shared by this layer and every service it builds.
    pub fn cache(&self) -> TokenCache {
        self.cache.clone()
    }

    pub(crate) fn layer_service<S>(&self, inner: S) -> BearerAuth<S> {
        BearerAuth::from_parts(inner, self.cache.clone(), self.overwrite)
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.layer_service(inner)
    }
}

impl fmt::Debug for BearerAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuthLayer")
            .field("config", &self.cache.config())
            .field("overwrite", &self.overwrite)
            .finish()
    }
}
