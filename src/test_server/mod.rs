//! An embedded PortSIP-compatible server, for your tests and for demos.
//!
//! [`TestServer`] listens on `127.0.0.1` on a free port and serves, over plain HTTP/1.1, the
//! two login APIs of a v22.3 PBX and a protected resource:
//!
//! - The sign-in API (PortSIP v22.2.11 and later), JSON bodies:
//!   - `POST /api/auth/sign_in`, `{"username", "password", "domain"?}`: the tokens,
//!     `{"token_type", "access_token", "refresh_token", "expires_in"}`; or, with
//!     [two-factor sign-in](TestServerConfig::two_factor) on for the user,
//!     `{"two_factor_enabled": true, "token": "…"}`, a session token for
//!   - `POST /api/auth/verify_otp`, `{"token", "code"}`: the tokens, when the code is right;
//!   - `POST /api/auth/refresh_token`, `{"refresh_token"}`: new tokens;
//!   - `POST /api/auth/sign_out` with the bearer token: ends its session.
//!
//!   Its failures are PortSIP's error bodies, `{"errors": [{"code", "message", "detail"}]}`
//!   (`400` with code `UNAUTHORIZED` for a wrong password, refresh token or one-time code).
//! - The OAuth token endpoint:
//!   - `POST /api/login/oauth/token`: the password, refresh-token and (when a client secret
//!     is configured) client-credentials grants, with form or JSON bodies. Errors are
//!     RFC 6749 §5.2 bodies (`invalid_grant` with status 400 for a wrong password or refresh
//!     token, `invalid_client` with 401 for a wrong client id or secret), or PortSIP's error
//!     bodies with [`portsip_error_bodies`](TestServerConfig::portsip_error_bodies).
//!   - `POST /api/login/oauth/revoke`: revokes the token sent as the `token` field
//!     (RFC 7009), or else as `Authorization: Bearer` (PortSIP's logout). An access token is
//!     revoked with its refresh token; a refresh token alone, whatever `token_type_hint` says.
//! - every other path: a protected resource. A valid bearer token gets `200` and a small JSON
//!   body; a missing, unknown, revoked or expired one gets `401` with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), and one without the scope
//!   the path [requires](TestServer::require_scope) gets `403` with
//!   `error="insufficient_scope"`.
//!
//! Either API can be switched off ([`sign_in_api`](TestServerConfig::sign_in_api),
//! [`oauth_api`](TestServerConfig::oauth_api)): its paths then answer `404`, as on a PBX
//! before v22.2.11 or a v22 PBX without the OAuth endpoint. Both APIs share the tokens: they
//! are random, short-lived (5 s by default), and refresh tokens are single-use: each refresh
//! returns a new one.
//!
//! [`counts`](TestServer::counts) tells what happened, endpoint by endpoint,
//! [`revoke_all`](TestServer::revoke_all) and friends change state on demand, and
//! [`respond_next`](TestServer::respond_next) makes the next token request answer with a
//! canned response (a `502` page, an oversized body, an error that
//! [echoes the request](CannedResponse::echo_request)) to test error handling. Outages
//! ([`set_token_outage`](TestServer::set_token_outage),
//! [`set_api_outage`](TestServer::set_api_outage)) make the token endpoint or the API paths
//! close connections, answer `503`, or hang, until switched off (from a spawned task too:
//! share the server with an `Arc`), and [`respond_next_api`](TestServer::respond_next_api)
//! queues answers for the API paths (`500`, `502`, `503`, `429` with `Retry-After`) to test a
//! retry middleware. The server stops when the [`TestServer`] is dropped.
//!
//! It is not a secure server: it keeps everything in memory and compares secrets naively. It
//! does keep itself small, for long runs in shared CI: a connection that sends no request head
//! within [`header_read_timeout`](TestServerConfig::header_read_timeout) (10 seconds by
//! default; idle keep-alive connections too) is closed, and it remembers at most
//! [`MAX_TOKENS`] tokens of each kind and [`MAX_LOG_RECORDS`] request records, forgetting the
//! oldest first (a client whose token was forgotten gets `401` and logs in again).
//!
//! # Example
//!
//! ```
//! use tower_bearer_auth::test_server::{TestServer, TestServerConfig};
//! use tower_bearer_auth::{BearerAuthLayer, client::HttpClient, provider::portsip::PortSip};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
//! let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
//!
//! let provider = PortSip::new(server.base_url(), "admin", "s3cret").build()?;
//! let pbx = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(provider))
//!     .service(HttpClient::new());
//!
//! let request = http::Request::get(server.url("/api/account/extensions"))
//!     .body(Default::default())?;
//! let response = pbx.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(server.counts().password_grants, 1);
//! # Ok(())
//! # }
//! ```

mod answer;
mod bounded;
mod config;
mod counts;
mod fields;
mod oauth;
mod outage;
mod protected;
mod route;
mod scopes;
mod server;
mod sign_in;
mod state;
mod token_request;
mod tokens;

pub use config::{
    CannedResponse, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_LIFETIME, ECHO_PLACEHOLDER, ExpiryFormat,
    TestServerConfig,
};
pub use counts::{Counts, TokenRequestRecord};
pub use outage::Outage;
pub use scopes::DEFAULT_SCOPE;
pub use server::TestServer;
pub use state::{MAX_LOG_RECORDS, MAX_TOKENS};
