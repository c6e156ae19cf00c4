//! [`TenantsMiddleware`]: the tenants engine as a `reqwest_middleware::Middleware`.

use std::{fmt, future::Future, time::Duration};

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use ::reqwest::{Request, Response};

use super::middleware::Auth;
use crate::{
    BoxError,
    cache::TokenCacheBuilder,
    layer::BearerAuthLayer,
    provider::TokenProvider,
    tenants::{
        TenantCaches, TenantError, TenantKey, TenantsLayer,
        key::read::{Choice, Written},
        ready::Ready,
    },
};

/// Sets `Authorization: Bearer <token>` on the requests of a
/// [`reqwest_middleware::ClientWithMiddleware`], with the token of each request's tenant: the
/// engine behind [`TenantsLayer`], for reqwest's own request builder.
///
/// A request's key is its URL's origin and the [`TenantId`](crate::tenants::TenantId) and
/// [`Scope`](crate::tenants::Scope) it carries as reqwest-middleware extensions
/// (`client.get(url).with_extension(Scope::new("read"))`), read as [`TenantsLayer`] reads
/// them; the first request for a key asks the factory for the key's provider, and the key
/// gets a token cache of its own. The [`tenants`](crate::tenants) module says how keys are
/// kept, found without a lock, limited ([`max_tenants`](Self::max_tenants)) and evicted
/// ([`idle_timeout`](Self::idle_timeout)); [`caches`](Self::caches) lists and evicts them.
///
/// Each key's requests are sent as a [`BearerAuthMiddleware`](super::BearerAuthMiddleware)
/// of the key's cache, bound to the key's origin, would send them: one login at a time,
/// refresh ahead, backoff, the parsed challenge of a `401` or `403` in the response's
/// extensions, and after a `401` that rejects the token, its invalidation and one replay.
/// [`configure`](Self::configure) sets each key's cache (timeout, backoff, store) and its
/// [`replay_unauthorized`](BearerAuthLayer::replay_unauthorized) and
/// [`overwrite_existing`](BearerAuthLayer::overwrite_existing); the layer's other
/// request-side settings (the gRPC status, the replay buffer) do not apply to reqwest.
///
/// Redirects are followed inside `reqwest::Client`, below every middleware: reqwest removes
/// `Authorization` from a redirected request to another scheme, host or port, so a key's
/// token never reaches another origin that way.
///
/// # Costs
///
/// A request for a key that its thread has sent before takes no lock, allocates nothing but
/// what [`BearerAuthMiddleware`](super::BearerAuthMiddleware) allocates, and reads its key
/// from the URL's scheme and authority as written. A thread's first request for a key (or
/// for another spelling of it) takes the key map's lock. Idle keys are swept by a task on the
/// runtime, and by those first requests.
///
/// # Errors
///
/// A request whose URL has no host or known port, or whose key the factory refused, fails
/// with [`reqwest_middleware::Error::Middleware`] holding a [`TenantError`], without being
/// sent. A request that got no token fails as with
/// [`BearerAuthMiddleware`](super::BearerAuthMiddleware) ([`token_error`](super::token_error)
/// finds why).
///
/// # Example
///
/// ```
/// # #[cfg(feature = "test-server")] {
/// use reqwest_middleware::ClientBuilder;
/// use tower_bearer_auth::{
///     BoxError, provider::portsip::{PortSip, PortSipApi},
///     reqwest::{ReqwestService, TenantsMiddleware},
///     tenants::{Scope, TenantKey},
///     test_server::{TestServer, TestServerConfig},
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), BoxError> {
/// # let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
/// # let pbx_url = server.base_url();
/// let http = reqwest::Client::new();
/// let logins = http.clone();
/// // One provider per key, asking for the key's scope (on PortSIP's OAuth token endpoint).
/// let tenants = TenantsMiddleware::new(move |key: &TenantKey| {
///     let mut provider =
///         PortSip::new(key.origin().to_string(), "admin", "s3cret").api(PortSipApi::OAuth);
///     if let Some(scope) = key.scope() {
///         provider = provider.scope(scope.as_str());
///     }
///     let provider = provider.build_with(ReqwestService::new(logins.clone()));
///     async move { provider }
/// })
/// .max_tenants(1_000);
/// let caches = tenants.caches();
/// let client = ClientBuilder::new(http).with(tenants).build();
///
/// let read = client
///     .get(format!("{pbx_url}/api/account/extensions"))
///     .with_extension(Scope::new("read"))
///     .send()
///     .await?;
/// assert_eq!(read.status(), 200);
/// let write = client
///     .post(format!("{pbx_url}/api/account/extensions"))
///     .with_extension(Scope::new("write"))
///     .send()
///     .await?;
/// assert_eq!(write.status(), 200);
/// assert_eq!(caches.len(), 2); // two keys, two tokens
/// # assert_eq!(server.counts().password_grants, 2);
/// # Ok(())
/// # }
/// # }
/// ```
#[derive(Clone)]
pub struct TenantsMiddleware {
    layer: TenantsLayer,
}

impl TenantsMiddleware {
    /// A middleware whose keys get their provider from `factory`, called once for each new
    /// key (and again after the key is evicted), as with [`TenantsLayer::new`]. An error
    /// refuses the key: the request fails with a [`TenantError`], without being sent.
    ///
    /// The token is bound to the key's origin whatever the provider's own origin.
    pub fn new<F, Fut, P, E>(factory: F) -> Self
    where
        F: Fn(&TenantKey) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P, E>> + Send + 'static,
        P: TokenProvider,
        E: Into<BoxError>,
    {
        Self {
            layer: TenantsLayer::new(factory),
        }
    }

    /// Makes each key's [`BearerAuthLayer`] from its cache's builder before its first request,
    /// as [`TenantsLayer::configure`] does; see the type's documentation for the settings that
    /// apply to reqwest.
    pub fn configure(
        self,
        configure: impl Fn(&TenantKey, TokenCacheBuilder) -> BearerAuthLayer + Send + Sync + 'static,
    ) -> Self {
        Self {
            layer: self.layer.configure(configure),
        }
    }

    /// The most keys kept, as [`TenantsLayer::max_tenants`].
    ///
    /// Defaults to [`DEFAULT_MAX_TENANTS`](crate::tenants::DEFAULT_MAX_TENANTS) (10,000).
    pub fn max_tenants(self, max: usize) -> Self {
        Self {
            layer: self.layer.max_tenants(max),
        }
    }

    /// How long a key may go unused before it is evicted, as
    /// [`TenantsLayer::idle_timeout`].
    ///
    /// Defaults to [`DEFAULT_IDLE_TIMEOUT`](crate::tenants::DEFAULT_IDLE_TIMEOUT) (30
    /// minutes).
    pub fn idle_timeout(self, idle: Duration) -> Self {
        Self {
            layer: self.layer.idle_timeout(idle),
        }
    }

    /// The handle to the keys shared by this middleware and its clones.
    pub fn caches(&self) -> TenantCaches {
        self.layer.caches()
    }
}

/// How a key's requests are sent: as a `BearerAuthMiddleware` of the key's layer.
fn auth(ready: &Ready) -> Auth<'_> {
    let (cache, settings) = ready.layer.parts();
    Auth {
        cache,
        reach: &settings.reach,
        replay: settings.replay,
        overwrite: settings.overwrite,
    }
}

/// A request's scheme and authority, as its URL writes them.
fn written(request: &Request) -> Written<'_> {
    let url = request.url();
    Written {
        scheme: url.scheme(),
        authority: url.authority(),
    }
}

#[async_trait::async_trait]
impl Middleware for TenantsMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let registry = self.layer.registry();
        // The hot path: a request spelt as this one found its key before.
        let entry = registry.find(written(&request), Choice::of(extensions));
        if let Some(ready) = entry.as_ref().and_then(|entry| entry.ready()) {
            ready.touch();
            return auth(ready).send(request, extensions, next).await;
        }
        // The slow path: the key is found (or made) under the map's lock.
        let entry = registry.entry(written(&request), Choice::of(extensions));
        let Some(entry) = entry else {
            let error = TenantError::no_origin();
            return Err(reqwest_middleware::Error::middleware(error));
        };
        registry.maybe_sweep();
        let ready = match registry.ready(&entry).await {
            Ok(ready) => ready,
            Err(error) => return Err(reqwest_middleware::Error::middleware(error)),
        };
        ready.touch();
        registry.remember(&entry, written(&request), Choice::of(extensions));
        auth(ready).send(request, extensions, next).await
    }
}

impl fmt::Debug for TenantsMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantsMiddleware")
            .field("layer", &self.layer)
            .finish()
    }
}
