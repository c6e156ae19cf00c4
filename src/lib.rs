//! Bearer-token authentication for tower HTTP clients: log in once, refresh before expiry,
//! never stampede the token endpoint.
//!
//! [`BearerAuthLayer`] wraps any tower HTTP service (a hyper-util client, a
//! `tower::ServiceBuilder` stack, a tonic channel) and sets `Authorization: Bearer <token>` on
//! every outgoing request, the header marked sensitive. Tokens come from a pluggable
//! [`provider::TokenProvider`]: it logs in and refreshes, and the layer's cache
//! decides when.
//!
//! - Tokens are re-used until they near expiry, then refreshed in the background with the
//!   refresh token while requests keep using the still-valid one; a refused refresh is
//!   followed by a fresh login.
//! - However many requests run at once, at most one login or refresh runs at a time; the
//!   others wait for its result. (A login discarded by [`TokenCache::revoke`] stops at its
//!   next step, and its result is never used.)
//! - [`TokenCache::revoke`] is final: from the call on, no request is given the revoked token,
//!   including requests already waiting for a login, and no cache adopts it from a shared
//!   store. A dropped cache leaves nothing behind: its login stops, and the provider goes.
//! - When the token is cached, a request takes no lock and writes no memory shared with other
//!   threads, at the same cost whether a thread uses one layer or ten thousand. It allocates
//!   nothing unless it is kept to be sent again after a `401` (the default, for bodies that
//!   can be copied; see [`BearerAuthLayer`]'s section on recovering from `401`).
//! - Nothing depends on one runtime being driven: a request waits at most the layer's
//!   timeout, a login stranded on a runtime that shut down or went idle is started again,
//!   and no token is sent past its expiry, counting the time the machine spent suspended.
//! - The promises about interleavings above (single flight, `revoke`, invalidation, a dropped
//!   cache) are checked by a model checker over many schedules of real requests, logins and
//!   store calls, besides the example tests (`tests/model.rs`).
//! - The token goes only where it is meant to: to the origins the layer is bound to (the
//!   provider's own, and those given to [`BearerAuthLayer::allow_origin`]), or everywhere
//!   after [`BearerAuthLayer::any_origin`]. A layer told neither sends it nowhere.
//! - Failures are typed ([`TokenError`]), nothing broken is cached, and the next request tries
//!   again. Tokens, refresh tokens and passwords never appear in `Debug`, `Display` or errors.
//!
//! # Example
//!
//! ```
//! use http::{Request, Response, header::AUTHORIZATION};
//! use std::{convert::Infallible, time::Duration};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer_auth::{BearerAuthLayer, BoxError, Origin, TokenResponse, provider::provider_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), BoxError> {
//! // Any tower HTTP client; this one checks what it is sent.
//! let http_client = service_fn(|req: Request<String>| async move {
//!     assert_eq!(req.headers()[AUTHORIZATION], "Bearer abc123");
//!     Ok::<_, Infallible>(Response::new(String::new()))
//! });
//!
//! // A provider that logs in somewhere and returns a token valid for an hour.
//! let provider = provider_fn(|| async {
//!     Ok::<_, BoxError>(TokenResponse::new("abc123").with_expires_in(Duration::from_secs(3600)))
//! });
//!
//! let client = ServiceBuilder::new()
//!     // The token goes to this API and nowhere else.
//!     .layer(BearerAuthLayer::new(provider).allow_origin(Origin::try_from("https://api.example.com")?))
//!     .service(http_client);
//! let request = Request::get("https://api.example.com/users").body(String::new())?;
//! let response = client.oneshot(request).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Where things are
//!
//! Each item has one path. The crate root holds the layer and what its services take and
//! return: [`BearerAuthLayer`], [`BearerAuth`], [`TokenCache`] and its [`TokenCacheBuilder`], [`Token`], [`TokenResponse`],
//! [`TokenError`] and [`TokenErrorKind`], [`BoxError`], the [`Origin`] a token is bound to
//! ([`InvalidOrigin`]), the [`BearerChallenge`] added to responses, and the [`NoReplay`]
//! request extension. Everything else lives in a module named for what it is, as in
//! tower-http, each module exporting its own items:
//!
//! | module | what it holds |
//! |---|---|
//! | [`provider`] | [`provider::TokenProvider`], [`provider::BoxFuture`], [`provider::StaticToken`], [`provider::provider_fn`] and [`provider::FnProvider`], [`provider::TokenProviderExt`] and its wrappers; `BuildError` (feature `oauth2`) |
//! | `provider::oauth2` | `OAuth2Provider`, its builder, options and `OAuth2Error` (feature `oauth2`) |
//! | `provider::portsip` | `PortSip`, `PortSipProvider`, `PortSipApi`, `PortSipError`, `TwoFactorChallenge` and the `PORTSIP_*` constants (feature `oauth2`) |
//! | `client` | `HttpClient` and its builder (feature `client`) |
//! | `reqwest` | `ReqwestService` (feature `reqwest`); `BearerAuthMiddleware` and `token_error` (feature `reqwest-middleware`) |
//! | [`store`] | [`TokenStore`](store::TokenStore) and the stores |
//! | `retry` | `RetryUnauthorized` (feature `retry`) |
//! | `test_server` | the embedded PortSIP-compatible server (feature `test-server`) |
//! | [`tenants`] | [`tenants::TenantsLayer`]: a token per tenant, chosen per request |
//! | [`metrics`] | the metrics' names and, with the feature `metrics`, `describe` |
//! | [`future`] | the services' response future |
//!
//! # When the server refuses a token
//!
//! A `401 Unauthorized` to a token the cache believed fresh invalidates that token (only that
//! one: a late `401` never discards its successor), so the next request gets a new one, and
//! the refused request itself is replayed once with the new token when its body's type
//! allows ([`BearerAuthLayer::replay_unauthorized`], on by default); see [`BearerAuthLayer`]'s
//! section on recovering from `401`.
//!
//! # In application state
//!
//! A web application keeps one client in its state and clones it per request: clones of a
//! [`BearerAuth`] share one token cache (and, with `client::HttpClient`, one connection
//! pool). A type alias names the client; with axum, `State<AppState>` hands it to handlers,
//! and the crate needs no axum dependency for it:
//!
//! ```
//! # #[cfg(feature = "client")] {
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use tower::ServiceExt;
//! use tower_bearer_auth::{BearerAuth, client::HttpClient};
//!
//! /// The PBX client, behind the auth layer.
//! type Pbx = BearerAuth<HttpClient>;
//!
//! /// The application's state: axum's `Router::with_state(AppState { pbx })`.
//! #[derive(Clone)]
//! struct AppState {
//!     pbx: Pbx,
//! }
//!
//! /// A handler's body; with axum its argument is `State(state): State<AppState>`.
//! async fn extensions(state: AppState) -> Result<StatusCode, tower_bearer_auth::BoxError> {
//!     let request = Request::get("https://pbx.example.com:8887/api/account/extensions")
//!         .body(Full::<Bytes>::default())?;
//!     Ok(state.pbx.oneshot(request).await?.status())
//! }
//! # }
//! ```
//!
//! The README shows the whole axum program.
//!
//! # Beyond one process
//!
//! By default the token lives in the cache's memory. With [`TokenCacheBuilder::store`] it is
//! also kept in a [`TokenStore`](store::TokenStore), read before every login or refresh and
//! written after every new token: a restarted process finds its still-valid token, and
//! caches sharing the store (several layers of one process with
//! [`MemoryStore`](store::MemoryStore), replicas of a service with `RedisStore`, feature
//! `redis`, runs of a CLI with `FileStore`, feature `file-store`) share one login, with one
//! refresh per token across all of them.
//! [`TokenCacheBuilder::on_token_change`] tells code that only wants to know. See [`store`].
//!
//! # Secrets
//!
//! The header value is marked sensitive, so `http` hides it in `Debug` and HTTP/2 never
//! indexes it. Every type of this crate that holds a token, refresh token, password or client
//! secret prints `<redacted>` in its place, and no error message carries one.
//!
//! Nothing is zeroized: tokens live in `String`s and in `HeaderValue`s, which share their
//! bytes between clones and cannot be wiped reliably. The cache holds the access token once,
//! in its `Authorization` header value, plus one copy of that header per thread that sent it
//! (the lock-free hot path's). Those copies belong to the cache: a new token,
//! [`TokenCache::invalidate`] and [`TokenCache::revoke`] retire and free them all at once, and
//! dropping the cache frees them with it. A replaced token is dropped when the last request
//! carrying it is done. No task or timer of the cache's outlives it.
//! Providers keep their passwords for as long as they live.
//!
//! # Many tenants
//!
//! A client of many PBXs, each with its own credentials, uses one
//! [`TenantsLayer`](tenants::TenantsLayer): each request gets the token of its
//! [`TenantKey`](tenants::TenantKey), its origin and, if it carries them, a
//! [`TenantId`](tenants::TenantId) and a [`Scope`](tenants::Scope) (the scope or audience the
//! token must carry). A factory builds each key's provider on first use, each key has a cache
//! of its own, and keys are bounded in number and evicted when idle. See [`tenants`]; for
//! reqwest-middleware clients, `reqwest::TenantsMiddleware` (feature `reqwest-middleware`).
//!
//! # Stacking with other layers
//!
//! Layers listed first in a `ServiceBuilder` run first (outermost):
//!
//! - `TimeoutLayer` **outside** `BearerAuthLayer` bounds the whole request, token fetch
//!   included; a request that times out while a login runs is dropped, and the login still
//!   finishes for the requests after it. **Inside**, the timeout bounds only the call to the
//!   server; the token fetch is bounded by [`TokenCacheBuilder::timeout`].
//! - `RetryLayer` **outside** retries the whole request. A retry within the cache's
//!   [backoff](TokenCacheBuilder::backoff) after a failed login gets the same error at once; a
//!   retry policy that waits longer than that logs in again. **Inside**, retries re-send the
//!   request with the same token and never see token errors.
//! - A concurrency limit **inside** holds its permit while the token is fetched (see
//!   [`BearerAuth`]'s `# Clone` section); **outside**, waiting requests count against it.
//!
//! # gRPC with tonic
//!
//! A tonic `Channel` sends `http::Request<tonic::body::Body>`, which the layer takes like any
//! other body type (and never replays: it cannot be copied). Hand the wrapped channel,
//! `ServiceBuilder::new().layer(layer).service(channel)`, to `tonic::client::Grpc::new` or to
//! a generated client's `new`.
//!
//! gRPC refuses a token with the status `UNAUTHENTICATED` in an HTTP `200` response, which
//! the layer reads only when asked, with
//! [`grpc_unauthenticated(true)`](BearerAuthLayer::grpc_unauthenticated): the refused token is
//! then invalidated and the next call gets a new one. Otherwise, call
//! [`TokenCache::invalidate`] when a call fails with it. `cargo run --example tonic` shows a
//! client and server at work.
//!
//! # Feature flags
//!
//! The core (layer, cache, [`provider::StaticToken`],
//! [`provider::provider_fn`]) has no optional parts.
//!
//! - `oauth2` (default): `provider::oauth2::OAuth2Provider`, an OAuth 2.0 token-endpoint
//!   client over any tower HTTP service you supply, and the `provider::portsip::PortSip`
//!   preset for PortSIP's sign-in API and OAuth token endpoint, whose documentation shows
//!   the few lines that make a PortSIP-ready layer.
//! - `client`: `client::HttpClient`, a ready-made hyper-util client over plain HTTP. Implies
//!   `oauth2`.
//! - `rustls`: HTTPS for `HttpClient` with rustls, webpki or system roots and extra CA
//!   certificates from PEM files. Implies `client`. A PortSIP user wants this one
//!   (`cargo run --example portsip` shows it at work).
//! - `test-server`: `test_server`, an embedded PortSIP-compatible server for tests and
//!   demos. Not for production.
//! - `reqwest`: `reqwest::ReqwestService`, a `reqwest::Client` as a tower HTTP service, for the
//!   token endpoint and below the layer. Implies `oauth2`; turns on none of reqwest's TLS
//!   features, which you choose.
//! - `reqwest-middleware`: `reqwest::BearerAuthMiddleware`, the token cache as a
//!   `reqwest_middleware::Middleware`, for reqwest's own request builder. Implies `reqwest`.
//! - `retry`: `retry::RetryUnauthorized`, a `tower::retry::Policy` that retries once after
//!   `401`, for stacks with their own retry layer.
//! - `redis`: `RedisStore`, a [token store](store) in Redis that replicas share: one login,
//!   one refresh at a time across processes (a lock with an expiry), never a single-use
//!   refresh token spent twice. Tokens are stored unencrypted; see its documentation.
//! - `file-store`: `FileStore`, a [token store](store) in a file of mode `0600`, written
//!   atomically, for a CLI or a cron job that should not log in on every run; a lock file
//!   shares it between the processes of one user. Tokens are stored unencrypted; see its
//!   documentation.
//! - `tracing`: events for logins, refreshes, backoff, `401` recovery and the token store,
//!   through the `tracing` crate; see [Tracing](#tracing).
//! - `metrics`: counters of logins, refreshes, store adoptions, failures, `401` invalidations
//!   and replays, a histogram of the token endpoint's latency and a gauge of the token's
//!   lifetime, through the `metrics` facade, to the recorder (exporter) you install; see
//!   [`metrics`]. Nothing is recorded on the path of a request sent with the cached token.
//!
//! # Tracing
//!
//! With the `tracing` feature the cache tells what it does through `tracing` events, whose
//! target is the module emitting them (`tower_bearer_auth::cache`, one of its submodules,
//! `tower_bearer_auth::future`, `tower_bearer_auth::reqwest::middleware` for
//! `BearerAuthMiddleware`, or, for the PortSIP provider, a module under
//! `tower_bearer_auth::provider::portsip`), so the filter `tower_bearer_auth=debug` shows
//! them all. A
//! request sent with the cached token emits nothing; without a subscriber that wants them,
//! each event costs a check of its call site's cached interest, and only on the slow paths.
//!
//! Each login or refresh runs in a `token_fetch` span (`DEBUG`, field `cache`), which also
//! holds the events of the provider's HTTP client. The events, by name:
//!
//! | name | level | fields | when |
//! |---|---|---|---|
//! | `login` | `DEBUG` | `generation`, `version`, `expires_in_ms`, `elapsed_ms`, `fallback` | a login gave a token; `fallback` after a failed refresh |
//! | `login` | `WARN` | `elapsed_ms`, `fallback`, `error_kind`, `error`, `retry_after_ms` | the login failed, and with it the fetch |
//! | `refresh` | `DEBUG` | `generation`, `version`, `expires_in_ms`, `elapsed_ms` | a refresh gave a token |
//! | `refresh` | `DEBUG` | `elapsed_ms`, `error_kind`, `error` | a refresh failed; a login follows |
//! | `backoff` | `DEBUG` | `error_kind`, `backoff_ms`, `streak` | a failed fetch starts a pause |
//! | `backoff` | `TRACE` | `cache`, `error_kind` | a request fails at once during the pause |
//! | `unauthorized` | `DEBUG` | `cache`, `generation`, `replay` | a `401` (or gRPC's `UNAUTHENTICATED`, see [`BearerAuthLayer::grpc_unauthenticated`]) refused the token a request carried; `replay` if the request is sent again |
//! | `invalidated` | `DEBUG` | `cache`, `generation` | that refusal invalidated the current token (not for a token already replaced) |
//! | `store_lock` | `TRACE`, `WARN` | `elapsed_ms`, `tries`; `held_ms`, `error` | the [store]'s lock was taken after `elapsed_ms` and `tries` tries; or the store failed, the wait gave up, the lease was lost after `held_ms`, or could not be renewed |
//! | `store_load` | `DEBUG` | `adopted`, `version`, `generation`, `expires_in_ms`, `elapsed_ms` | `adopted = true`: the stored token is used |
//! | `store_load` | `DEBUG` | `adopted`, `version`, `replaces` | `adopted = false`: nothing usable stored (none, the one replaced, or due) |
//! | `store_load` | `WARN` | `error` | the store could not be read |
//! | `store_save` | `DEBUG`, `WARN` | `version`, `saved`; `error` | `saved = false`: the store holds a newer token; or the store failed |
//! | `store_clear` | `DEBUG` | `cache`; `error_kind`, `error` | [`TokenCache::revoke`] wrote its revoked record to the store, or failed to |
//! | `revoke` | `DEBUG` | `cache`, `generation`; `error_kind`, `error` | [`TokenCache::revoke`] revoked the token, or failed to |
//! | `tenant_created` | `DEBUG` | `key` | a [`tenants::TenantsLayer`] key got its provider from the factory |
//! | `tenant_refused` | `WARN` | `key`, `error` | the factory refused the key |
//! | `tenant_evicted` | `DEBUG` | `key`, `reason` | a key was evicted: `idle`, `full` (the key limit) or `asked` |
//! | `portsip_call` | `DEBUG` | `api`, `call` | a [`PortSipProvider`](provider::portsip::PortSipProvider) calls the PBX: `api` is `sign-in` (`call`: `sign_in`, `refresh_token`, `sign_out`) or `oauth` (`password_grant`, `refresh_grant`, `revoke`) |
//! | `portsip_api` | `DEBUG` | `api`, `status` | the automatic choice is made: `sign-in` when the PBX answered there, `oauth` when it answered `status` (`404` or `405`) |
//! | `portsip_two_factor` | `DEBUG` | `callback` | a sign-in answered that a one-time code is needed; `callback` if one is configured to supply it |
//!
//! - `generation` is the token's [`Token::generation`]; `version` its version in the store,
//!   when there is one; `replaces` the version of the token being replaced (0 for none).
//! - `expires_in_ms` is the token's remaining lifetime, absent if it never expires;
//!   `elapsed_ms` the duration of the step, in milliseconds to the microsecond (a float,
//!   such as `0.412`; the other `…_ms` fields are whole milliseconds); `backoff_ms` the pause; `streak` the failures in
//!   a row; `retry_after_ms` how long the provider asked to wait, if it did.
//! - `error_kind` is the [`TokenErrorKind`]; `error` the error's message followed by those of
//!   its sources, `: `-separated.
//! - `cache` tells caches apart: a number unique in the process.
//! - `key` is a [`tenants::TenantKey`]: the origin, and the tenant id if there is one.
//! - The `portsip_*` events' targets are modules under `tower_bearer_auth::provider::portsip`;
//!   those of a login or refresh fall in its `token_fetch` span.
//!
//! `WARN` marks failures that fail requests or that the cache works around on its own (a
//! store that is down); failures returned to the caller and recoveries are `DEBUG`.
//!
//! No event or span carries a token, refresh token, password, client secret, header value or
//! body. `error` holds messages only: this crate's never contain a secret, and those of your
//! [`provider::TokenProvider`] and [`TokenStore`](store::TokenStore) must not
//! either. A [`TokenError`]'s message already quotes its cause, so `error` shows the cause's
//! message twice.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::all
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod challenge;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod clock;
mod error;
pub mod future;
#[cfg(feature = "oauth2")]
mod jwt;
mod layer;
pub mod metrics;
mod origin;
mod policy;
pub mod provider;
mod replay;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub mod retry;
mod rt;
mod service;
pub mod store;
pub mod tenants;
#[cfg(feature = "test-server")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-server")))]
pub mod test_server;
mod token;
mod trace;

pub use crate::{
    cache::{TokenCache, TokenCacheBuilder},
    challenge::BearerChallenge,
    error::{TokenError, TokenErrorKind},
    layer::BearerAuthLayer,
    origin::{InvalidOrigin, Origin},
    replay::NoReplay,
    service::BearerAuth,
    token::{Token, TokenResponse},
};

/// Alias for a type-erased error type, as used by tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
