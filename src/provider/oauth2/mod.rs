//! An OAuth 2.0 token-endpoint client: [`OAuth2Provider`].
//!
//! The provider logs in with the `password` or `client_credentials` grant, refreshes with the
//! `refresh_token` grant and revokes tokens (RFC 6749, RFC 7009). It sends its requests through
//! any tower HTTP service you give it, so it uses your own client, TLS, proxy and timeouts;
//! [`HttpClient`](crate::client::HttpClient) (feature `client`) is a ready-made one. For
//! PortSIP PBXs, see [`PortSip`](super::portsip::PortSip).
//!
//! [`OAuth2Provider::password`] and [`OAuth2Provider::client_credentials`] return an
//! [`OAuth2ProviderBuilder`]; its [`build`](OAuth2ProviderBuilder::build) checks the URLs and
//! refuses a plain-`http` endpoint that is not on loopback, where the password or client
//! secret would travel in cleartext, unless
//! [`allow_insecure_http(true)`](OAuth2ProviderBuilder::allow_insecure_http) says otherwise.
//!
//! # Example
//!
//! ```no_run
//! use tower::ServiceBuilder;
//! use tower_bearer_auth::{BearerAuthLayer, client::HttpClient, provider::oauth2::OAuth2Provider};
//!
//! # fn main() -> Result<(), tower_bearer_auth::BoxError> {
//! let provider = OAuth2Provider::password(
//!     HttpClient::new(),
//!     "https://auth.example.com/oauth/token",
//!     "alice",
//!     "correct horse battery staple",
//! )
//! .client_id("my-app")
//! .scope("read write")
//! .build()?;
//!
//! let api = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(provider))
//!     .service(HttpClient::new());
//! # Ok(())
//! # }
//! ```
//!
//! # Servers of other shapes
//!
//! Some PBXs log in with a JSON body and name their fields differently. Instead of forking the
//! provider, describe the differences: [`BodyFormat::Json`], [`map_params`] to rename or drop
//! request fields, [`map_response`] to turn a vendor's error convention into an RFC 6749
//! error, and a [`TokenShape`] for the response's field names. A Yeastar-style API, with a
//! stand-in for the server:
//!
//! [`map_params`]: OAuth2ProviderBuilder::map_params
//! [`map_response`]: OAuth2ProviderBuilder::map_response
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use serde_json::{json, Value};
//! use std::{convert::Infallible, time::Duration};
//! use tower::service_fn;
//! use tower_bearer_auth::provider::oauth2::{BodyFormat, OAuth2Provider, TokenShape};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
//! // Stands in for the PBX: checks the JSON login body, answers in Yeastar's shape.
//! let pbx = service_fn(|req: Request<Full<Bytes>>| async move {
//!     assert_eq!(req.headers()["content-type"], "application/json");
//!     let body: Value = serde_json::from_slice(&req.into_body().collect().await?.to_bytes())?;
//!     let reply = if body == json!({"username": "api", "password": "s3cret"}) {
//!         json!({"errcode": 0, "errmsg": "SUCCESS", "token": "abc",
//!                "access_token_expire_time": 1800, "refreshtoken": "def"})
//!     } else {
//!         json!({"errcode": 10004, "errmsg": "AUTHENTICATION FAILED"})
//!     };
//!     Ok::<_, tower_bearer_auth::BoxError>(Response::new(Full::new(Bytes::from(reply.to_string()))))
//! });
//!
//! let provider = OAuth2Provider::password(
//!     pbx,
//!     "https://pbx.example.com/openapi/v1.0/get_token",
//!     "api",
//!     "s3cret",
//! )
//! .refresh_url("https://pbx.example.com/openapi/v1.0/refresh_token")
//! .body_format(BodyFormat::Json)
//! // No `grant_type` field: the URL says what is asked for.
//! .map_params(|_kind, params| params.retain(|(name, _)| name != "grant_type"))
//! // `errcode` other than 0 is an error: restate it as RFC 6749's `error`.
//! .map_response(|json| {
//!     if json.get("errcode").and_then(Value::as_i64).is_some_and(|code| code != 0) {
//!         let message = json.get("errmsg").cloned().unwrap_or(Value::Null);
//!         json.insert("error".into(), json!("invalid_grant"));
//!         json.insert("error_description".into(), message);
//!     }
//! })
//! .token_shape(
//!     TokenShape::new()
//!         .access_token("token")
//!         .refresh_token("refreshtoken")
//!         .expires_in("access_token_expire_time"),
//! )
//! .build()?;
//!
//! let token = provider.login().await?;
//! assert_eq!(token.access_token(), "abc");
//! assert_eq!(token.refresh_token(), Some("def"));
//! assert_eq!(token.expires_in(), Some(Duration::from_secs(1800)));
//! # Ok(())
//! # }
//! ```
//!
//! PortSIP v16 and earlier answered with `expires` instead of `expires_in`:
//! `TokenShape::new().expires_in("expires")`.

mod builder;
mod client_auth;
mod error;
mod provider;
mod redact;
mod request;
mod response;
mod shape;
#[cfg(test)]
pub(crate) mod test_helpers;
mod time;
mod transport;

pub use builder::{DEFAULT_MAX_BODY_SIZE, OAuth2ProviderBuilder};
pub use client_auth::ClientAuth;
#[cfg(feature = "test-server")]
pub(crate) use client_auth::decode_basic;
pub use error::{OAuth2Error, OAuth2ErrorKind};
pub use provider::OAuth2Provider;
#[cfg(feature = "reqwest")]
pub(crate) use request::CredentialRequest;
pub use request::{BodyFormat, RequestKind};
pub(crate) use request::{bearer_value, json_body, post};
pub use shape::TokenShape;
#[cfg(feature = "reqwest")]
pub(crate) use transport::RedirectedTo;
pub(crate) use transport::{HttpService, Reply};
