//! [`TenantsLayer`] and the [`Tenants`] service.

use std::{
    fmt,
    future::Future,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{
    TenantCaches, TenantError, TenantKey,
    future::ResponseFuture,
    key::read::{Choice, Written},
    registry::{Configure, Factory, Registry, Settings},
};
use crate::{
    BoxError,
    cache::TokenCacheBuilder,
    future::ResponseFuture as CoreFuture,
    layer::BearerAuthLayer,
    provider::{BoxFuture, TokenProvider},
    service,
};

/// Default cap on the number of keys kept.
pub const DEFAULT_MAX_TENANTS: usize = 10_000;
/// Default time after which a key unused is evicted.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How many requests a service sends between two checks for a sweep of idle keys.
const SWEEP_CHECK_EVERY: u32 = 64;

/// Applies [`Tenants`] to services: each request gets the token of its tenant, chosen by its
/// [`TenantKey`]. See the [module documentation](super) for an example.
///
/// The layer owns the key map, shared by every service it builds and all their clones. As
/// with [`BearerAuthLayer`], the layer is a plain value: a setter gives the layer a new, empty
/// key map with the new settings, so configure the layer first, then build services and take
/// its [`caches`](Self::caches) handle.
#[derive(Clone)]
pub struct TenantsLayer {
    registry: Arc<Registry>,
}

impl TenantsLayer {
    /// A layer whose keys get their provider from `factory`, called once for each new key
    /// (and again after the key is evicted). Concurrent first requests for a key share one
    /// call. The factory may be async (to read credentials from a vault); an error refuses
    /// the key, and the request fails with a [`TenantError`] of kind
    /// [`Refused`](super::TenantErrorKind::Refused), without reaching the inner service. A
    /// refused key is not kept: its next request calls the factory again.
    ///
    /// The token is bound to the key's origin whatever the provider's own origin.
    pub fn new<F, Fut, P, E>(factory: F) -> Self
    where
        F: Fn(&TenantKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P, E>> + Send + 'static,
        P: TokenProvider,
        E: Into<BoxError>,
    {
        let factory: Factory = Arc::new(move |key: &TenantKey| {
            let fut = factory(key);
            Box::pin(async move {
                match fut.await {
                    Ok(provider) => Ok(Arc::new(provider) as Arc<dyn TokenProvider>),
                    Err(error) => Err(error.into()),
                }
            }) as BoxFuture<'static, _>
        });
        Self::from_settings(Settings {
            factory,
            configure: None,
            max_tenants: DEFAULT_MAX_TENANTS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            tenant_label: false,
        })
    }

    fn from_settings(settings: Settings) -> Self {
        Self {
            registry: Registry::new(settings),
        }
    }

    fn reconfigure(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.registry.settings.clone();
        change(&mut settings);
        Self::from_settings(settings)
    }

    /// Makes each key's [`BearerAuthLayer`] before its first request, from `cache`: the
    /// builder of the key's cache, for the key's provider. Set the cache's settings on it
    /// ([`timeout`](TokenCacheBuilder::timeout), [`backoff`](TokenCacheBuilder::backoff),
    /// [`refresh_ahead`](TokenCacheBuilder::refresh_ahead), a
    /// [store](TokenCacheBuilder::store)), build it, and set the layer's (replay and the
    /// rest). Whatever it sets, the key's token goes only with requests to the key's origin.
    /// By default each key's layer is `BearerAuthLayer::new(cache.build())`.
    ///
    /// With a store, give each key a store of its own, or one whose entry is named after the
    /// key ([`TenantKey`]'s `Display` form): keys sharing one stored token would share one
    /// login, whatever their credentials. Build the layer on the cache given: a layer on
    /// another cache would not be the key's, and would ignore
    /// [`replace_provider`](TenantCaches::replace_provider).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bearer_auth::{BearerAuthLayer, BoxError, provider::StaticToken, tenants::TenantsLayer};
    ///
    /// let layer = TenantsLayer::new(|_key: &_| async { Ok::<_, BoxError>(StaticToken::new("abc")) })
    ///     .configure(|_key, cache| {
    ///         let cache = cache
    ///             .timeout(Duration::from_secs(5))
    ///             .backoff(Duration::from_millis(200), Duration::from_secs(60))
    ///             .build();
    ///         BearerAuthLayer::new(cache).replay_unauthorized(false)
    ///     });
    /// ```
    pub fn configure(
        self,
        configure: impl Fn(&TenantKey, TokenCacheBuilder) -> BearerAuthLayer + Send + Sync + 'static,
    ) -> Self {
        let configure: Configure = Arc::new(configure);
        self.reconfigure(|s| s.configure = Some(configure))
    }

    /// The most keys kept. A new key beyond it evicts idle keys, then the least recently used
    /// ones (as of the last sweep; a key whose provider is being built goes last).
    ///
    /// Defaults to [`DEFAULT_MAX_TENANTS`] (10,000). At least 1.
    pub fn max_tenants(self, max: usize) -> Self {
        self.reconfigure(|s| s.max_tenants = max.max(1))
    }

    /// How long a key may go unused before it is evicted; see
    /// [`TenantCaches::evict_idle`] for when that happens. While the layer has keys, one task
    /// on the runtime sweeps for idle ones every quarter of this (at most a minute).
    ///
    /// Defaults to [`DEFAULT_IDLE_TIMEOUT`] (30 minutes).
    pub fn idle_timeout(self, idle: Duration) -> Self {
        self.reconfigure(|s| s.idle_timeout = idle)
    }

    /// Whether each key's [metrics](crate::metrics) carry a `tenant` label with its
    /// [`TenantId`](super::TenantId), besides the `origin` label they always carry. Turn it on only when the
    /// tenant ids are few: each one makes a series of every metric.
    ///
    /// Defaults to `false`.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_tenant_label(self, on: bool) -> Self {
        self.reconfigure(|s| s.tenant_label = on)
    }

    /// The handle to the keys shared by this layer and every service it builds.
    pub fn caches(&self) -> TenantCaches {
        TenantCaches {
            registry: self.registry.clone(),
        }
    }
}

impl TenantsLayer {
    /// The key map.
    #[cfg(feature = "reqwest-middleware")]
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

impl<S> Layer<S> for TenantsLayer {
    type Service = Tenants<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tenants {
            inner,
            registry: self.registry.clone(),
            calls: 0,
        }
    }
}

impl fmt::Debug for TenantsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantsLayer")
            .field("registry", &self.registry)
            .finish()
    }
}

/// Adds `Authorization: Bearer <token>` to every request, with the token of the request's
/// tenant. Built by [`TenantsLayer`]; see the [module documentation](super).
///
/// Each key is served as a [`BearerAuth`](crate::BearerAuth) of the key's layer over this
/// service's inner service would serve it: see [`BearerAuthLayer`] for how tokens are cached
/// and refreshed and what happens after `401`. The response future is the one
/// `BearerAuth` returns.
///
/// # Errors
///
/// The error type is [`BoxError`]. Errors of the inner service and
/// [`TokenError`](crate::TokenError)s pass through as from [`BearerAuth`](crate::BearerAuth);
/// a request whose URI has no origin, or whose key the factory refused, fails with a
/// [`TenantError`] without reaching the inner service.
///
/// # Clone
///
/// As for [`BearerAuth`](crate::BearerAuth): `S` must be [`Clone`], and a request that waits
/// (for the factory, or for a token) keeps the instance polled ready and leaves a clone in its
/// place. A request whose key and token are ready clones nothing. Clones share one key map.
pub struct Tenants<S> {
    inner: S,
    registry: Arc<Registry>,
    // Requests sent by this instance, to check for a sweep now and then.
    calls: u32,
}

impl<S> Tenants<S> {
    /// The handle to the keys this service shares with its layer and clones.
    pub fn caches(&self) -> TenantCaches {
        TenantCaches {
            registry: self.registry.clone(),
        }
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Tenants<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            registry: self.registry.clone(),
            calls: 0,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Tenants<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenants")
            .field("inner", &self.inner)
            .field("registry", &self.registry)
            .finish()
    }
}

impl<S, B, R> Service<Request<B>> for Tenants<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.calls = self.calls.wrapping_add(1);
        if self.calls % SWEEP_CHECK_EVERY == 0 {
            self.registry.maybe_sweep();
        }
        // The hot path: a request spelt as this one found its key before. The key's layer
        // sends the request as its `BearerAuth` would, borrowing the inner service.
        if let Some(written) = Written::of(request.uri()) {
            let choice = Choice::of(request.extensions());
            let entry = self.registry.find(written, choice);
            if let Some(ready) = entry.as_ref().and_then(|entry| entry.ready()) {
                ready.touch();
                return ResponseFuture::sent(ready.layer.call(&mut self.inner, request));
            }
        }
        self.call_slow(request)
    }
}

impl<S> Tenants<S> {
    /// The first request for a key, or for a spelling of it: finds or makes the key, and
    /// remembers the spelling.
    #[inline(never)]
    fn call_slow<B, R>(&mut self, request: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>, Response = Response<R>> + Clone,
        B: 'static,
    {
        let choice = Choice::of(request.extensions());
        let written = Written::of(request.uri());
        let Some((written, entry)) =
            written.and_then(|written| Some((written, self.registry.entry(written, choice)?)))
        else {
            return ResponseFuture::sent(CoreFuture::failed(TenantError::no_origin().into()));
        };
        self.registry.maybe_sweep();
        if let Some(ready) = entry.ready() {
            ready.touch();
            self.registry.remember(&entry, written, choice);
            return ResponseFuture::sent(ready.layer.call(&mut self.inner, request));
        }
        // The factory has not answered yet: the request keeps the instance polled ready.
        let ready = service::take_ready(&mut self.inner);
        let registry = self.registry.clone();
        let layer = Box::pin(async move {
            match registry.ready(&entry).await {
                Ok(ready) => Ok(ready.layer.clone()),
                Err(error) => Err(error.into()),
            }
        });
        ResponseFuture::creating(ready, request, layer)
    }
}
