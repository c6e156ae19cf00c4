//! [`BearerAuthLayer`]: the middleware's configuration.

use std::fmt;

use tower_layer::Layer;

use crate::{
    cache::TokenCache,
    future::ResponseFuture,
    origin::{Origin, Reach},
    policy::Recover,
    provider::TokenProvider,
    service::{BearerAuth, Settings},
};

/// Applies [`BearerAuth`] to services: every request gets `Authorization: Bearer <token>`.
///
/// The layer holds one token cache, shared by every service it builds and all their clones, so
/// however many requests are in flight there is at most one login or refresh at a time. The
/// cache's settings (how early to refresh, timeouts, backoff, a store) are set on its
/// [`TokenCacheBuilder`](crate::TokenCacheBuilder), before the cache exists; the layer's own
/// settings are about requests (where the token may go, replay after `401`). Layers given
/// the same cache share one token.
///
/// The layer is a plain value, as tower-http's are: configuring a clone never changes the
/// original or a service built before, and never its cache.
///
/// # Where the token goes
///
/// Only where it was meant to: the layer must be told. A provider that knows its server (a
/// [`PortSip`](crate::provider::portsip::PortSip) provider knows its PBX) binds the token to
/// that origin; [`allow_origin`](Self::allow_origin) binds it to more, and
/// [`any_origin`](Self::any_origin) sends it everywhere. With none of these, no request is
/// sent with the token: each fails with
/// [`TokenErrorKind::Unbound`](crate::TokenErrorKind::Unbound). A request to an origin not
/// allowed is sent as it is, without the token.
///
/// # How tokens are cached
///
/// - The first request logs in through the provider; requests arriving meanwhile wait for that
///   one login.
/// - The token is re-used until it nears expiry. A token with no expiry is used until it is
///   [invalidated](TokenCache::invalidate).
/// - [`refresh_ahead`](crate::TokenCacheBuilder::refresh_ahead) (30 s by default, at most half the token's
///   life) before expiry, plus a random part of up to [`jitter`](crate::TokenCacheBuilder::jitter), the next
///   request starts a refresh in the background and is itself sent with the still-valid token.
///   Requests only wait when there is no valid token.
/// - A refresh uses the refresh token when there is one; if that fails the cache logs in once.
///   A refresh response without a refresh token keeps the old one.
/// - Each provider call, and each request's wait for a token, is bounded by
///   [`timeout`](crate::TokenCacheBuilder::timeout) (10 s by default).
/// - A failed login hands every waiting request a [`TokenError`](crate::TokenError) and caches
///   nothing. For a short, growing pause (see [`backoff`](crate::TokenCacheBuilder::backoff)) requests then fail
///   at once with that error instead of calling the provider again; after it the next request
///   tries again. A failed refresh keeps the still-valid token in use.
/// - The login or refresh runs as a task of its own on the runtime of the request that
///   started it, so a request dropped while waiting (by a timeout, say) does not cancel it for
///   the others. Requests on other runtimes wait for it too. If that runtime shuts down, or
///   stops being driven (a current-thread runtime whose `block_on` returned), the next request
///   starts the login again on its own runtime; no runtime needs to be chosen or supplied.
/// - A panic in the provider counts as a failed login, with its backoff.
///
/// The service needs a Tokio runtime with the time driver enabled. No background task or
/// timer outlives a login: a token reaching its refresh point is noticed by the next request.
/// A layer and its services cost nothing once dropped.
///
/// # Recovering from `401`
///
/// A server may reject a token the cache believes fresh: it restarted, the token was revoked,
/// the clocks disagree. Each token carries a generation number. When a request is answered
/// `401 Unauthorized` with a `Bearer` challenge asking for a new token (`error="invalid_token"`
/// or no error code) or with no challenge at all, the token of that generation is
/// invalidated, unless the cache already holds a newer one, so fifty concurrent `401`s cause
/// one refresh and the next request carries a new token. `insufficient_scope` (and any other
/// error code) is about the request, not the token: such responses change nothing. The
/// parsed challenge is added to the response's extensions as a
/// [`BearerChallenge`](crate::BearerChallenge).
///
/// By default the refused request is also sent once more with the new token, if its body can
/// be replayed without reading it again: `()`, `String`, `Vec<u8>`, `Bytes`, `&'static str`,
/// `&'static [u8]`, `Full<Bytes>` and `Empty<Bytes>`, and `BoxBody<Bytes, E>` or
/// `UnsyncBoxBody<Bytes, E>` (`E` being `BoxError` or `Infallible`) read into memory when their
/// size hint promises at most [`replay_buffer_limit`](Self::replay_buffer_limit). The body's
/// type decides, so any other body type (`hyper::body::Incoming`, axum's, reqwest's, tonic's,
/// your own) is sent once, and the caller gets its `401` as it came; so does a request whose
/// second attempt is refused too. A request is never sent more than twice. Replaying is safe
/// because a `401` means the server refused the request before acting on it (RFC 9110
/// §15.5.2); turn it off with [`replay_unauthorized(false)`](Self::replay_unauthorized) (or
/// with [`NoReplay`](crate::NoReplay) per request) for servers that act first and check
/// later, or when an outer `tower::retry` layer should decide (the `retry` feature has a
/// policy for that).
///
/// What replay costs: for every request whose body can be replayed, a copy of its head
/// (method, URI, headers in a plain list, extensions) and a clone of the inner service, kept
/// in one box until the response arrives: two allocations per request with headers, and in
/// the crate's benchmark (`BENCHMARKS.md`, one header, a trivial inner service) about 2,400
/// instructions per request against 1,320 with replay off and 1,070 for tower-http's
/// `AddAuthorization`. Requests whose body type is never replayed pay nothing, and with replay off a
/// request with a cached token allocates nothing. The cache lives as long as the layer or any
/// service built from it: a request still in flight when the last of them is dropped is not
/// replayed.
///
/// # Example
///
/// ```
/// use http::{Request, Response, header::AUTHORIZATION};
/// use std::{convert::Infallible, time::Duration};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
/// use tower_bearer_auth::{BearerAuthLayer, Origin, TokenCache, provider::StaticToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let http_client = service_fn(|req: Request<String>| async move {
///     assert_eq!(req.headers()[AUTHORIZATION], "Bearer abc123");
///     Ok::<_, Infallible>(Response::new(String::new()))
/// });
/// let cache = TokenCache::builder(StaticToken::new("abc123"))
///     .refresh_ahead(Duration::from_secs(60))
///     .timeout(Duration::from_secs(5))
///     .build();
/// let client = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(cache).allow_origin(Origin::try_from("https://api.example.com")?))
///     .service(http_client);
/// let request = Request::get("https://api.example.com/users").body(String::new())?;
/// let response = client.oneshot(request).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BearerAuthLayer {
    cache: TokenCache,
    settings: Settings,
}

/// Default cap on a body read into memory so it can be replayed.
const DEFAULT_REPLAY_BUFFER_LIMIT: usize = 64 * 1024;

impl BearerAuthLayer {
    /// A layer whose services take their tokens from `cache`: a provider (for a new cache
    /// with the default settings), a cache built with
    /// [`TokenCache::builder`](crate::TokenCache::builder), or one shared with other layers,
    /// which then share its token.
    ///
    /// Unless the provider names its [origin](TokenProvider::origin) (a
    /// [`PortSip`](crate::provider::portsip::PortSip) provider does: its token is bound to the
    /// PBX, as with [`allow_origin`](Self::allow_origin)), choose where the token may go with
    /// [`allow_origin`](Self::allow_origin) or [`any_origin`](Self::any_origin).
    pub fn new(cache: impl Into<TokenCache>) -> Self {
        let cache = cache.into();
        let reach = Reach::of(cache.provider().origin());
        Self {
            cache,
            settings: Settings {
                overwrite: false,
                replay: true,
                buffer_limit: DEFAULT_REPLAY_BUFFER_LIMIT,
                recover: Recover::Unauthorized,
                reach,
            },
        }
    }

    /// Binds the token to `origin`: requests to any origin not allowed are sent without it.
    /// Call it once per origin the token is meant for; the provider's own
    /// [origin](TokenProvider::origin), when it names one, is allowed already.
    ///
    /// Where the token may go must be chosen: a layer whose provider names no origin, and
    /// that is given neither this nor [`any_origin`](Self::any_origin), sends no request that
    /// would carry the token. Each such request fails with
    /// [`TokenErrorKind::Unbound`](crate::TokenErrorKind::Unbound), without a login.
    ///
    /// Bind the token whenever the client can reach more than one host: a redirect to another
    /// host (with a redirect-following layer outside this one) or a shared client must not
    /// hand the token to a server it was not issued for. Requests whose URI has no authority
    /// (a tonic channel sets it further down) are treated as going to an allowed origin.
    /// After [`any_origin`](Self::any_origin), this allows `origin` alone.
    ///
    /// ```
    /// use tower_bearer_auth::{BearerAuthLayer, Origin, provider::StaticToken};
    ///
    /// let layer = BearerAuthLayer::new(StaticToken::new("abc"))
    ///     .allow_origin(Origin::try_from("https://pbx.example.com:8887")?);
    /// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
    /// ```
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        self.settings.reach.allow(origin);
        self
    }

    /// Sends the token with every request, whatever its origin, the provider's own
    /// [origin](TokenProvider::origin) included: the explicit choice for a client that only
    /// ever talks to the server its token is for. Prefer
    /// [`allow_origin`](Self::allow_origin) whenever the client (or a redirect) may reach
    /// another host.
    ///
    /// ```
    /// use tower_bearer_auth::{BearerAuthLayer, provider::StaticToken};
    ///
    /// // A client built for one API, and nothing else.
    /// let layer = BearerAuthLayer::new(StaticToken::new("abc")).any_origin();
    /// ```
    pub fn any_origin(mut self) -> Self {
        self.settings.reach = Reach::Any;
        self
    }

    /// Whether a gRPC `UNAUTHENTICATED` answer counts as a refused token, as `401` does: the
    /// token the call carried is invalidated, so the next call gets a new one.
    ///
    /// A gRPC server refuses a token with the status `UNAUTHENTICATED` (16) in an HTTP `200`
    /// response. When the call fails before any message, the status comes in the response's
    /// headers (`grpc-status: 16`), where this layer reads it; a status that comes later, in
    /// the trailers of a stream, is not seen. Defaults to `false`: reading the header costs
    /// every response a header lookup, which HTTP clients need not pay.
    ///
    /// ```
    /// use tower_bearer_auth::{BearerAuthLayer, provider::StaticToken};
    ///
    /// // For a tonic channel.
    /// let layer = BearerAuthLayer::new(StaticToken::new("abc")).grpc_unauthenticated(true);
    /// ```
    pub fn grpc_unauthenticated(mut self, recover: bool) -> Self {
        self.settings.recover = if recover {
            Recover::Grpc
        } else {
            Recover::Unauthorized
        };
        self
    }

    /// Whether to replace an `Authorization` header the request already carries.
    ///
    /// Defaults to `false`: such a request is sent as it is, and no token is fetched for it.
    pub fn overwrite_existing(mut self, overwrite: bool) -> Self {
        self.settings.overwrite = overwrite;
        self
    }

    /// Whether to send a request a second time, with a new token, when the server answers
    /// `401 Unauthorized` to the first; see [Recovering from `401`](Self#recovering-from-401).
    ///
    /// Defaults to `true`: a revoked session or a restarted server costs no request. Off, a
    /// `401` still invalidates the rejected token, so only that one request fails and the next
    /// gets a new one, and a request with a cached token allocates nothing. On,
    /// [`NoReplay`](crate::NoReplay) turns it off for one request.
    pub fn replay_unauthorized(mut self, replay: bool) -> Self {
        self.settings.replay = replay;
        self
    }

    /// The largest body, in bytes, read into memory so it can be replayed, for the boxed body
    /// types that must be read to be copied (see [Recovering from
    /// `401`](Self#recovering-from-401)). Reading stops at the limit whatever the body's size
    /// hint promised, and fails the request.
    ///
    /// Defaults to 64 KiB.
    pub fn replay_buffer_limit(mut self, limit: usize) -> Self {
        self.settings.buffer_limit = limit;
        self
    }

    /// The handle to the token cache shared by this layer and every service it builds.
    pub fn cache(&self) -> TokenCache {
        self.cache.clone()
    }

    /// Sends `request` through `inner` (polled ready) as a [`BearerAuth`] made of this layer
    /// would, without making one: nothing is cloned on the hot path.
    #[inline]
    pub(crate) fn call<S, B, R>(
        &self,
        inner: &mut S,
        request: http::Request<B>,
    ) -> ResponseFuture<S, B>
    where
        S: tower_service::Service<http::Request<B>, Response = http::Response<R>> + Clone,
        B: 'static,
    {
        crate::service::call(inner, &self.cache, &self.settings, request)
    }

    /// The cache and the request-side settings, for a middleware that sends requests as this
    /// layer's services would.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn parts(&self) -> (&TokenCache, &Settings) {
        (&self.cache, &self.settings)
    }

    pub(crate) fn layer_service<S>(&self, inner: S) -> BearerAuth<S> {
        BearerAuth::from_parts(inner, self.cache.clone(), self.settings.clone())
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
            .field("cache", &self.cache)
            .field("settings", &self.settings)
            .finish()
    }
}
