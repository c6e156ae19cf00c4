//! reqwest: the same token engine behind a `reqwest::Client` (feature `reqwest`) and a
//! `reqwest_middleware::ClientWithMiddleware` (feature `reqwest-middleware`).
//!
//! - [`ReqwestService`] (feature `reqwest`) makes a `reqwest::Client` a tower HTTP service:
//!   give it to [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider) or
//!   [`PortSip::build_with`](crate::provider::portsip::PortSip::build_with) so that logins go
//!   through your client (its TLS, proxy and pool), or put
//!   [`BearerAuthLayer`](crate::BearerAuthLayer) in front of it for a tower stack with reqwest
//!   at the bottom.
//! - [`BearerAuthMiddleware`] (feature `reqwest-middleware`) is a
//!   `reqwest_middleware::Middleware` backed by a [`TokenCache`](crate::TokenCache): requests
//!   keep reqwest's builder, `client.get(url).json(&body).send().await`, and get the cache's
//!   single flight, refresh ahead, backoff, origin binding and recovery from `401`.
//!   [`token_error`] finds the [`TokenError`](crate::TokenError) in a
//!   `reqwest_middleware::Error`.
//! - [`TenantsMiddleware`] (feature `reqwest-middleware`) is the
//!   [`tenants`](crate::tenants) engine as a `reqwest_middleware::Middleware`: a token per
//!   origin, [`TenantId`](crate::tenants::TenantId) and [`Scope`](crate::tenants::Scope),
//!   chosen per request with `with_extension`, each key served as `BearerAuthMiddleware`
//!   would serve it.
//!
//! A provider never follows a redirect from the token endpoint nor takes an answer that came
//! from one; [`ReqwestService`]'s "Redirects" section says what reqwest itself still does
//! with one, and how to build a client that does nothing.
//!
//! This crate turns none of reqwest's default features on: choose its TLS (`rustls`,
//! `native-tls`) in your own `Cargo.toml`. `cargo run --example reqwest` shows both at work
//! against the embedded test server.

#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod service;
#[cfg(feature = "reqwest-middleware")]
mod tenants;
#[cfg(feature = "reqwest-middleware")]
mod unsent;

#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use middleware::{BearerAuthMiddleware, token_error};
pub use service::{ReqwestService, ResponseFuture};
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use tenants::TenantsMiddleware;
