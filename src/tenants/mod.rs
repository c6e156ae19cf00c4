//! Many tenants, one client: a token per tenant, chosen per request.
//!
//! A service that talks to many PBXs (or many tenants of one PBX), each with its own
//! credentials, wraps its HTTP client in one [`TenantsLayer`]. Each request is sent with the
//! token of its tenant, found by its [`TenantKey`]: the request's [`Origin`] (the scheme, host
//! and port it connects to, read from its URI as `http` and hyper's connector read them, so
//! `https://PBX.example.com:000080` is port 80 of `pbx.example.com`) and, when the request
//! carries them in its extensions, a [`TenantId`] and a [`Scope`].
//!
//! The first request for a key asks the factory given to [`TenantsLayer::new`] for that key's
//! provider (it may be async, to read credentials from a vault, and it may refuse the key:
//! the request then fails with a [`TenantError`] without reaching the inner service). The key
//! then gets a [`BearerAuthLayer`](crate::BearerAuthLayer) of its own, with every guarantee
//! of one: one login at a time, refresh ahead of expiry, backoff after failures, recovery from
//! `401`, and a [store](crate::store) when [`TenantsLayer::configure`] gives it one. Its token
//! is bound to the key's origin, as with
//! [`allow_origin`](crate::BearerAuthLayer::allow_origin): the layer adds it only to requests
//! that connect there, whatever the spelling of their URI.
//!
//! A redirect followed *above* the layer (a redirect-following layer outside this one) comes
//! back through it, and gets the token of its new origin's key. One followed *below* it
//! never does: the redirected request is rebuilt from the one this layer sent, token
//! included, and only the redirect layer can take it out. tower-http's `FollowRedirect` does
//! with its default policy, which drops `Authorization` on a redirect to another origin;
//! with a policy of your own, filter credentials too.
//!
//! At most [`max_tenants`](TenantsLayer::max_tenants) keys are kept; keys unused for
//! [`idle_timeout`](TenantsLayer::idle_timeout) are evicted. An evicted key's cache is
//! dropped with its token (which is not revoked), and its next request starts over with the
//! factory. [`TenantCaches`] lists the keys and their token state, replaces a key's provider
//! (when its credentials change) and evicts keys.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, header::AUTHORIZATION};
//! use std::{convert::Infallible, time::Duration};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer_auth::{BoxError, TokenResponse, provider::provider_fn};
//! use tower_bearer_auth::tenants::{TenantKey, TenantsLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Any tower HTTP client; this one echoes the token it is sent.
//! let http_client = service_fn(|req: Request<()>| async move {
//!     let token = req.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
//!     Ok::<_, Infallible>(Response::new(token))
//! });
//!
//! // One provider per PBX, built on first use; with PortSIP, something like
//! // `PortSip::new(key.origin().to_string(), user, password).build()`.
//! let layer = TenantsLayer::new(|key: &TenantKey| {
//!     let host = key.origin().to_string();
//!     async move {
//!         if host.contains("unknown") {
//!             return Err(BoxError::from("no credentials for this PBX"));
//!         }
//!         let token = format!("token-for-{host}");
//!         Ok(provider_fn(move || {
//!             let token = token.clone();
//!             async move {
//!                 Ok::<_, BoxError>(TokenResponse::new(token).with_expires_in(Duration::from_secs(3600)))
//!             }
//!         }))
//!     }
//! })
//! .max_tenants(1_000)
//! .idle_timeout(Duration::from_secs(600));
//! let caches = layer.caches();
//!
//! let client = ServiceBuilder::new().layer(layer).service(http_client);
//! let a = client.clone().oneshot(Request::get("https://pbx-a.example.com/api").body(())?).await?;
//! assert_eq!(a.body(), "Bearer token-for-https://pbx-a.example.com:443");
//! let b = client.clone().oneshot(Request::get("https://pbx-b.example.com/api").body(())?).await?;
//! assert_eq!(b.body(), "Bearer token-for-https://pbx-b.example.com:443");
//! assert!(client.oneshot(Request::get("https://unknown.example.com/").body(())?).await.is_err());
//! assert_eq!(caches.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Several tenants on one PBX
//!
//! Put a [`TenantId`] in the request's extensions: requests to the same origin with different
//! ids get different tokens (the factory sees the id in the key, and can log in with that
//! tenant's user and SIP domain).
//!
//! ```
//! use http::Request;
//! use tower_bearer_auth::tenants::TenantId;
//!
//! let mut request = Request::get("https://pbx.example.com:8887/api/account/extensions")
//!     .body(())
//!     .unwrap();
//! request.extensions_mut().insert(TenantId::new("acme"));
//! ```
//!
//! # Scopes
//!
//! Put a [`Scope`] in the request's extensions to choose, for one origin (and tenant), among
//! tokens of different scopes or audiences: a `read` token for some requests and a `write`
//! token for others. Each scope is a key of its own, with its own login, cache and token; the
//! factory reads it with [`TenantKey::scope`] and builds a provider that asks for it (with
//! [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider), its builder's `scope`).
//!
//! ```
//! use http::Request;
//! use std::time::Duration;
//! use tower::{ServiceExt, service_fn};
//! use tower_bearer_auth::{BoxError, TokenResponse, provider::provider_fn};
//! use tower_bearer_auth::tenants::{Scope, TenantKey, TenantsLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! let layer = TenantsLayer::new(|key: &TenantKey| {
//!     // With OAuth 2.0: `OAuth2Provider::client_credentials(..).scope(scope)`.
//!     let scope = key.scope().map_or("default", |s| s.as_str()).to_owned();
//!     async move {
//!         Ok::<_, BoxError>(provider_fn(move || {
//!             let token = format!("token-for-{scope}");
//!             async move {
//!                 Ok::<_, BoxError>(TokenResponse::new(token).with_expires_in(Duration::from_secs(3600)))
//!             }
//!         }))
//!     }
//! });
//! let echo = service_fn(|req: Request<()>| async move {
//!     Ok::<_, BoxError>(http::Response::new(req.headers()["authorization"].clone()))
//! });
//! let client = tower::Layer::layer(&layer, echo);
//!
//! let mut write = Request::post("https://api.example.com/orders").body(())?;
//! write.extensions_mut().insert(Scope::new("write"));
//! let response = client.clone().oneshot(write).await?;
//! assert_eq!(response.body(), "Bearer token-for-write");
//! let read = Request::get("https://api.example.com/orders").body(())?;
//! let response = client.oneshot(read).await?;
//! assert_eq!(response.body(), "Bearer token-for-default");
//! # Ok(())
//! # }
//! ```
//!
//! Reading the key's parts costs a request without extensions two tests of its empty
//! extension map, and the hot path about 20 instructions in all (`BENCHMARKS.md`); a request
//! with extensions, two lookups in its map.
//!
//! # With reqwest
//!
//! [`reqwest::TenantsMiddleware`](crate::reqwest::TenantsMiddleware) (feature
//! `reqwest-middleware`) is this engine for reqwest-middleware clients, with the same factory,
//! limits, hot path and [`TenantCaches`]; the [`TenantId`] and [`Scope`] come from
//! reqwest-middleware's extensions (`.with_extension(Scope::new("write"))`).
//!
//! # The hot path
//!
//! A request spelt as an earlier request for its key was takes no lock. The key map lives
//! behind a lock that only the slow path takes; once a request has found its key there, the
//! way it wrote the key (scheme and authority byte for byte, tenant id and scope) goes into a
//! concurrent map (`papaya`) that names the key's entry. The next
//! request written the same way hashes those bytes, finds the entry without a lock, and goes
//! through the key's layer the way a [`BearerAuth`](crate::BearerAuth) of it would,
//! borrowing the inner service: nothing is cloned or allocated, and the one shared memory
//! written is the key's reference count. The key's layer then reads the URI's origin once
//! more, as [`allow_origin`](crate::BearerAuthLayer::allow_origin) does, to check that it is
//! the key's. Measured on one thread with 10,000 keys round-robin: about 1,900 instructions
//! per request, 1.7 times tower-http's `AddAuthorization` in the same binary;
//! `BENCHMARKS.md` has the numbers.
//!
//! The slow path (the first request for a key, or for another spelling of it such as
//! `https://PBX.example.com` after `https://pbx.example.com:443`) takes the lock, reads the
//! key from the URI as `http` does (every spelling of an origin finds its one key), makes the
//! key if it is new and adds the spelling. A key keeps at most four spellings: a fifth takes
//! the place of the oldest, so a client that writes its URIs in many ways costs a slow path
//! now and then, not memory. A URI with user info (`user:pw@host`) is not added, so as not
//! to keep a copy of it, and always takes the slow path.
//!
//! # Eviction and what it frees
//!
//! While the layer has keys, one task on the runtime that made its first key sweeps for idle
//! keys every quarter of the [idle timeout](TenantsLayer::idle_timeout) (at most a minute); it
//! stops when the last key goes, and is started again by the next key, or by a request after
//! its runtime shut down. Requests check for a due sweep too, so keys are also evicted
//! without a runtime to run the task. Evicting a key takes its spellings out of the map of
//! spellings, which refers to entries weakly: the key's entry, provider, cache and token are
//! dropped (the token is not revoked) as soon as no request in flight holds them.

mod caches;
mod error;
pub mod future;
pub(crate) mod key;
pub(crate) mod ready;
pub(crate) mod registry;
mod service;
mod spellings;
#[cfg(test)]
mod tests;

pub use self::{
    caches::{TenantCaches, TenantInfo},
    error::{TenantError, TenantErrorKind},
    key::{Scope, TenantId, TenantKey},
    service::{DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_TENANTS, Tenants, TenantsLayer},
};

#[cfg(doc)]
use crate::origin::Origin;
