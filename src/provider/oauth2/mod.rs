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

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Map, Value};
use tower_service::Service;

use crate::{
    BoxError, Origin, TokenResponse,
    provider::{
        BoxFuture, BuildError, TokenProvider,
        build_error::{ShowOrigin, check_endpoint, to_uri},
        secret::Secret,
    },
    token::Redacted,
};

mod error;
mod request;
mod time;
mod transport;

use error::Secrets;
pub use error::{OAuth2Error, OAuth2ErrorKind};
#[cfg(feature = "reqwest")]
pub(crate) use request::CredentialRequest;
#[cfg(feature = "test-server")]
pub(crate) use request::decode_basic;
pub(crate) use request::{bearer_value, json_body, post};
#[cfg(feature = "reqwest")]
pub(crate) use transport::RedirectedTo;
pub(crate) use transport::Reply;

/// Default limit on the size of a token endpoint's response body: 64 KiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;

/// A hook that edits request fields; see [`OAuth2ProviderBuilder::map_params`].
type ParamsHook = Arc<dyn Fn(RequestKind, &mut Vec<(String, String)>) + Send + Sync>;
/// A hook that edits a JSON response; see [`OAuth2ProviderBuilder::map_response`].
type ResponseHook = Arc<dyn Fn(&mut Map<String, Value>) + Send + Sync>;

/// A [`TokenProvider`] that talks to an OAuth 2.0 token endpoint through the HTTP service `C`.
///
/// Build one with [`password`](Self::password) or
/// [`client_credentials`](Self::client_credentials), the options of the
/// [`OAuth2ProviderBuilder`] they return, and its [`build`](OAuth2ProviderBuilder::build).
///
/// `C` is any tower service taking `http::Request<Full<Bytes>>` and returning an
/// `http::Response` with any body: a hyper-util client, a `tower::ServiceBuilder` stack with
/// your own timeouts, or [`HttpClient`](crate::client::HttpClient).
///
/// Requests are `POST`s with an `application/x-www-form-urlencoded` body (or JSON, see
/// [`body_format`](OAuth2ProviderBuilder::body_format)) and `Accept: application/json`:
///
/// | call | fields |
/// |---|---|
/// | [`login`](Self::login), password grant | `grant_type=password`, `username`, `password`, `scope`, extra [`login_param`](OAuth2ProviderBuilder::login_param)s |
/// | [`login`](Self::login), client credentials | `grant_type=client_credentials`, `scope`, extra [`login_param`](OAuth2ProviderBuilder::login_param)s |
/// | [`refresh`](Self::refresh) | `grant_type=refresh_token`, `refresh_token` |
/// | [`revoke`](Self::revoke), the refresh token | `token`, `token_type_hint=refresh_token` |
/// | [`revoke`](Self::revoke), the access token | `token`, `token_type_hint=access_token` |
///
/// plus the client's identity (RFC 6749 §2.3.1): with a
/// [`client_secret`](OAuth2ProviderBuilder::client_secret), HTTP Basic (the default) or
/// `client_id` and `client_secret` fields, as [`client_auth`](OAuth2ProviderBuilder::client_auth)
/// says; without one, a `client_id` field if a [`client_id`](OAuth2ProviderBuilder::client_id)
/// is set.
///
/// # Responses
///
/// A success (RFC 6749 §5.1) is read into a [`TokenResponse`]: `access_token`, `token_type`,
/// `expires_in` (a number or a numeric string), `expires_at` (Unix seconds, Unix milliseconds
/// when as seconds it would lie beyond the year 3000, or an RFC 3339 time), `refresh_token`,
/// `scope`; other fields are kept in [`TokenResponse::extra`]. A refresh response without
/// `refresh_token` keeps the one just used. A field that cannot be read fails the response
/// with [`OAuth2ErrorKind::InvalidResponse`], whose message names the field and the reason
/// (`invalid token endpoint response (HTTP 200): ` then `` `expires_at` is not a Unix time: `` and
/// why), never its value.
///
/// When the response states no lifetime (neither `expires_in` nor `expires_at`) and the
/// access token is a JWT with an `exp` claim, the token expires then: its payload is
/// base64url-decoded and parsed, and nothing is verified (the signature, the issuer and the
/// other claims are the resource server's business). Turn this off with
/// [`expiry_from_jwt(false)`](OAuth2ProviderBuilder::expiry_from_jwt).
///
/// # Errors
///
/// Every failure is an [`OAuth2Error`] (boxed, when reached through the [`TokenProvider`]
/// trait): an RFC 6749 §5.2 error body, even with a `200` status, becomes
/// [`OAuth2ErrorKind::Server`] with the status; another error status becomes
/// [`OAuth2ErrorKind::Status`] with the start of the body; a body larger than
/// [`max_body_size`](OAuth2ProviderBuilder::max_body_size) is refused without being read whole.
/// What the error quotes of the server's answer never holds the provider's password or client
/// secret, nor the token the request carried, even when the server echoes them back.
///
/// A redirect (any `3xx`) from the token or revocation endpoint is an error,
/// [`OAuth2ErrorKind::Redirect`], never followed: a request that carries credentials goes to
/// its endpoint only, and only that endpoint's answer is a token.
/// [`HttpClient`](crate::client::HttpClient) follows no redirect, and
/// [`ReqwestService`](crate::reqwest::ReqwestService) streams the provider's request bodies
/// (so reqwest cannot send them on) and reports an answer reqwest got by following one. A
/// client of your own that follows redirects (tower-http's `FollowRedirect`, say) hides them
/// from the provider: don't use one for the token endpoint.
///
/// How the layer's cache reacts: a refused refresh (`invalid_grant`, or any other failure) is
/// followed by one login. [`TokenError::credentials_rejected`](crate::TokenError::credentials_rejected)
/// and [`TokenError::is_transient`](crate::TokenError::is_transient) tell a caller what to do
/// about the error that reaches it: transport failures and `5xx` are worth repeating,
/// `invalid_grant`, `invalid_client` and `unauthorized_client` are not.
///
/// # Example
///
/// See the [module documentation](self).
pub struct OAuth2Provider<C> {
    client: C,
    token_url: Uri,
    refresh_url: Option<Uri>,
    revoke_url: Option<Uri>,
    grant: Grant,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    /// `Basic …`, made from the client id and secret by `build` when HTTP Basic is used.
    basic_auth: Option<Secret>,
    client_auth: ClientAuth,
    scope: Option<String>,
    login_params: Vec<(String, Secret)>,
    body_format: BodyFormat,
    shape: TokenShape,
    revoke_with_bearer: bool,
    revoke_refresh_token: bool,
    max_body_size: usize,
    /// Whether a response without a lifetime takes it from a JWT access token's `exp`.
    expiry_from_jwt: bool,
    map_params: Option<ParamsHook>,
    map_response: Option<ResponseHook>,
    origin: Option<Origin>,
}

/// Configures an [`OAuth2Provider`]: returned by [`OAuth2Provider::password`] and
/// [`OAuth2Provider::client_credentials`], turned into the provider by [`build`](Self::build).
///
/// Setters take and return `self`; a URL that cannot be parsed is reported by `build`.
pub struct OAuth2ProviderBuilder<C> {
    provider: OAuth2Provider<C>,
    token_url: Result<Uri, BuildError>,
    refresh_url: Option<Result<Uri, BuildError>>,
    revoke_url: Option<Result<Uri, BuildError>>,
    allow_insecure_http: bool,
}

#[derive(Clone)]
enum Grant {
    Password { username: String, password: Secret },
    ClientCredentials,
}

/// How the client proves its identity when it has a secret (RFC 6749 §2.3.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded client id and secret. The default, and
    /// what every server must support.
    #[default]
    Basic,
    /// `client_id` and `client_secret` fields in the request body.
    Form,
}

/// The encoding of request bodies.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 requires. The default.
    #[default]
    Form,
    /// A JSON object of strings, `application/json`, as some vendors' login APIs expect.
    Json,
}

/// Which call a request is for, as passed to [`OAuth2ProviderBuilder::map_params`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// A login: the password or client-credentials grant.
    Login,
    /// A refresh-token grant.
    Refresh,
    /// A token revocation.
    Revoke,
}

/// The names of the fields of a token response, for servers that don't use RFC 6749's.
///
/// Each setter names the field the server uses for a standard one; a response field by that
/// name is read as the standard field. Unset names keep the standard ones.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::provider::oauth2::TokenShape;
///
/// // Yeastar-style responses.
/// let yeastar = TokenShape::new()
///     .access_token("token")
///     .refresh_token("refreshtoken")
///     .expires_in("access_token_expire_time");
/// // PortSIP v16 and earlier.
/// let portsip_v16 = TokenShape::new().expires_in("expires");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenShape {
    access_token: Cow<'static, str>,
    refresh_token: Cow<'static, str>,
    expires_in: Cow<'static, str>,
    expires_at: Cow<'static, str>,
    token_type: Cow<'static, str>,
    scope: Cow<'static, str>,
}

impl Default for TokenShape {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenShape {
    /// RFC 6749's field names.
    pub fn new() -> Self {
        Self {
            access_token: Cow::Borrowed("access_token"),
            refresh_token: Cow::Borrowed("refresh_token"),
            expires_in: Cow::Borrowed("expires_in"),
            expires_at: Cow::Borrowed("expires_at"),
            token_type: Cow::Borrowed("token_type"),
            scope: Cow::Borrowed("scope"),
        }
    }

    /// The field holding the access token. Defaults to `access_token`.
    pub fn access_token(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.access_token = name.into();
        self
    }

    /// The field holding the refresh token. Defaults to `refresh_token`.
    pub fn refresh_token(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.refresh_token = name.into();
        self
    }

    /// The field holding the lifetime in seconds. Defaults to `expires_in`.
    pub fn expires_in(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.expires_in = name.into();
        self
    }

    /// The field holding the absolute expiry (Unix seconds or RFC 3339). Defaults to
    /// `expires_at`.
    pub fn expires_at(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.expires_at = name.into();
        self
    }

    /// The field holding the token type. Defaults to `token_type`.
    pub fn token_type(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.token_type = name.into();
        self
    }

    /// The field holding the granted scope. Defaults to `scope`.
    pub fn scope(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.scope = name.into();
        self
    }

    /// Renames the server's fields to the standard ones.
    fn apply(&self, map: &mut Map<String, Value>) {
        let pairs = [
            ("access_token", &self.access_token),
            ("refresh_token", &self.refresh_token),
            ("expires_in", &self.expires_in),
            ("expires_at", &self.expires_at),
            ("token_type", &self.token_type),
            ("scope", &self.scope),
        ];
        for (standard, custom) in pairs {
            if custom.as_ref() != standard {
                if let Some(value) = map.remove(custom.as_ref()) {
                    map.insert(standard.to_owned(), value);
                }
            }
        }
    }
}

impl<C> OAuth2ProviderBuilder<C> {
    fn new(client: C, token_url: Result<Uri, BuildError>, grant: Grant) -> Self {
        Self {
            provider: OAuth2Provider {
                client,
                token_url: Uri::default(),
                refresh_url: None,
                revoke_url: None,
                grant,
                client_id: None,
                client_secret: None,
                basic_auth: None,
                client_auth: ClientAuth::default(),
                scope: None,
                login_params: Vec::new(),
                body_format: BodyFormat::default(),
                shape: TokenShape::new(),
                revoke_with_bearer: false,
                revoke_refresh_token: true,
                max_body_size: DEFAULT_MAX_BODY_SIZE,
                expiry_from_jwt: true,
                map_params: None,
                map_response: None,
                origin: None,
            },
            token_url,
            refresh_url: None,
            revoke_url: None,
            allow_insecure_http: false,
        }
    }

    /// The client id sent with every request. Defaults to none.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.provider.client_id = Some(client_id.into());
        self
    }

    /// The client secret, for a confidential client. Defaults to none.
    ///
    /// The provider keeps one copy, shared by its clones and wiped from memory when the last
    /// is dropped; a `String` passed in is moved, not copied.
    pub fn client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.provider.client_secret = Some(Secret::new(client_secret));
        self
    }

    /// How the client id and secret are sent when there is a secret. Defaults to
    /// [`ClientAuth::Basic`].
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.provider.client_auth = client_auth;
        self
    }

    /// The scope asked for at login. Defaults to none (the server's default scope).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.provider.scope = Some(scope.into());
        self
    }

    /// Adds a field sent with every login, such as PortSIP's tenant `domain`.
    ///
    /// The value is treated as a secret: held like the password (one copy, wiped from memory
    /// when the last clone of the provider is dropped), hidden from `Debug` output, and
    /// replaced by `<redacted>` in what errors quote of the server's answers when it is four
    /// characters or longer (a shorter value is too common a string to take out of a message).
    pub fn login_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.provider
            .login_params
            .push((name.into(), Secret::new(value)));
        self
    }

    /// Adds a login field whose value is already held as a [`Secret`], shared rather than
    /// copied.
    pub(crate) fn login_param_secret(mut self, name: impl Into<String>, value: Secret) -> Self {
        self.provider.login_params.push((name.into(), value));
        self
    }

    /// Where refresh requests go, if not to the token URL. Defaults to the token URL.
    pub fn refresh_url<U>(mut self, url: U) -> Self
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        self.refresh_url = Some(to_uri(url, "refresh endpoint"));
        self
    }

    /// The revocation endpoint (RFC 7009). Defaults to none:
    /// [`revoke`](OAuth2Provider::revoke) then does nothing.
    pub fn revoke_url<U>(mut self, url: U) -> Self
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        self.revoke_url = Some(to_uri(url, "revocation endpoint"));
        self
    }

    /// Whether a revocation request carries the token being revoked as
    /// `Authorization: Bearer`, as PortSIP expects. HTTP Basic client authentication, when
    /// used, takes precedence. Defaults to `false`.
    pub fn revoke_with_bearer(mut self, enabled: bool) -> Self {
        self.provider.revoke_with_bearer = enabled;
        self
    }

    /// How request bodies are encoded. Defaults to [`BodyFormat::Form`].
    pub fn body_format(mut self, format: BodyFormat) -> Self {
        self.provider.body_format = format;
        self
    }

    /// The names of the response's fields. Defaults to [`TokenShape::new`], RFC 6749's.
    pub fn token_shape(mut self, shape: TokenShape) -> Self {
        self.provider.shape = shape;
        self
    }

    /// The largest response body accepted, in bytes. A larger one is refused with
    /// [`OAuth2ErrorKind::BodyTooLarge`] without being read whole. Defaults to
    /// [`DEFAULT_MAX_BODY_SIZE`], 64 KiB.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.provider.max_body_size = bytes;
        self
    }

    /// Whether a token response that states no lifetime (neither `expires_in` nor
    /// `expires_at`) takes it from the access token's `exp` claim when the token is a JWT. The
    /// payload is only decoded (base64url, then JSON), at the cost of a few microseconds per
    /// login; nothing is verified. Off, such a token is taken as never expiring, and is
    /// replaced only after the server refuses it with `401`.
    ///
    /// Defaults to `true`.
    pub fn expiry_from_jwt(mut self, enabled: bool) -> Self {
        self.provider.expiry_from_jwt = enabled;
        self
    }

    /// Edits the fields of each request just before it is encoded: rename, add or remove
    /// fields for a server that expects other names. The fields arrive in the order they are
    /// sent, client authentication included.
    ///
    /// The fields hold secrets (password, refresh token, client secret): don't log them. They
    /// are copies made for the hook, wiped from memory once the body is encoded; copies the
    /// hook makes itself (a renamed field, say) are not wiped.
    pub fn map_params<F>(mut self, f: F) -> Self
    where
        F: Fn(RequestKind, &mut Vec<(String, String)>) + Send + Sync + 'static,
    {
        self.provider.map_params = Some(Arc::new(f));
        self
    }

    /// Edits every JSON object response (success or error) before it is read. Use it to turn
    /// a vendor's error convention into RFC 6749's `error` and `error_description`, or to lift
    /// fields out of a nested object; field renames are simpler with a [`TokenShape`], which
    /// is applied after this.
    pub fn map_response<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Map<String, Value>) + Send + Sync + 'static,
    {
        self.provider.map_response = Some(Arc::new(f));
        self
    }

    /// Whether [`revoke`](OAuth2Provider::revoke) also revokes the refresh token, with a
    /// request of its own (`token_type_hint=refresh_token`, RFC 7009 §2.1) before the one for
    /// the access token, so that a server that keeps the two apart ends the whole session.
    /// Defaults to `true`; [`PortSip`](super::portsip::PortSip) turns it off, as PortSIP ends
    /// the session the access token belongs to, refresh token included.
    pub fn revoke_refresh_token(mut self, enabled: bool) -> Self {
        self.provider.revoke_refresh_token = enabled;
        self
    }

    /// Whether [`build`](Self::build) accepts plain-`http` endpoints on hosts that are not
    /// loopback. Defaults to `false`: logins carry a password or client secret, refreshes a
    /// refresh token, and over plain `http` anyone on the path can read them, so such an
    /// endpoint fails to build with
    /// [`BuildErrorKind::InsecureEndpoint`](crate::provider::BuildErrorKind::InsecureEndpoint).
    /// Loopback (`127.0.0.0/8`, `::1`, `localhost`) is always accepted.
    ///
    /// Set it only for a network you trust, such as a test PBX on a private segment.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Binds the provider's tokens to `origin`: the provider then reports it from
    /// [`TokenProvider::origin`], so the layer can keep the tokens from other servers.
    /// Defaults to none: the provider does not say where its tokens go.
    /// [`PortSip`](super::portsip::PortSip) binds the PBX's origin.
    pub fn bind_origin(mut self, origin: Origin) -> Self {
        self.provider.origin = Some(origin);
        self
    }

    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// Fails with [`BuildErrorKind::InvalidUrl`](crate::provider::BuildErrorKind::InvalidUrl)
    /// when the token, refresh or revocation URL cannot be parsed or is not an absolute `http`
    /// or `https` URL, and with
    /// [`BuildErrorKind::InsecureEndpoint`](crate::provider::BuildErrorKind::InsecureEndpoint)
    /// when one of them is plain `http` on a host that is not loopback, unless
    /// [`allow_insecure_http`](Self::allow_insecure_http) is set.
    pub fn build(self) -> Result<OAuth2Provider<C>, BuildError> {
        let allow = self.allow_insecure_http;
        let checked = |url: Result<Uri, BuildError>, what| {
            let url = url?;
            check_endpoint(&url, what, allow)?;
            Ok::<_, BuildError>(url)
        };
        let mut provider = self.provider;
        provider.basic_auth = match (&provider.client_secret, provider.client_auth) {
            (Some(secret), ClientAuth::Basic) => Some(request::basic_auth(
                provider.client_id.as_deref().unwrap_or_default(),
                secret.expose(),
            )),
            _ => None,
        };
        provider.token_url = checked(self.token_url, "token endpoint")?;
        provider.refresh_url = self
            .refresh_url
            .map(|url| checked(url, "refresh endpoint"))
            .transpose()?;
        provider.revoke_url = self
            .revoke_url
            .map(|url| checked(url, "revocation endpoint"))
            .transpose()?;
        Ok(provider)
    }
}

impl<C> OAuth2Provider<C> {
    /// A provider that logs in with the resource owner password grant (RFC 6749 §4.3) at
    /// `token_url`, sending requests through `client`. `token_url` is a [`Uri`] or anything
    /// that converts to one (a `&str`, a `String`); see [`OAuth2ProviderBuilder::build`] for
    /// what it may be.
    ///
    /// The provider keeps one copy of the password, shared by its clones and wiped from
    /// memory when the last is dropped; a `String` passed in is moved, not copied.
    pub fn password<U>(
        client: C,
        token_url: U,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> OAuth2ProviderBuilder<C>
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        Self::password_secret(client, token_url, username, Secret::new(password))
    }

    /// [`password`](Self::password), with the password already held as a [`Secret`].
    pub(crate) fn password_secret<U>(
        client: C,
        token_url: U,
        username: impl Into<String>,
        password: Secret,
    ) -> OAuth2ProviderBuilder<C>
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        OAuth2ProviderBuilder::new(
            client,
            to_uri(token_url, "token endpoint"),
            Grant::Password {
                username: username.into(),
                password,
            },
        )
    }

    /// A provider that logs in with the client credentials grant (RFC 6749 §4.4) at
    /// `token_url`, identifying itself with `client_id` and `client_secret` (by HTTP Basic
    /// unless [`client_auth`](OAuth2ProviderBuilder::client_auth) says otherwise).
    pub fn client_credentials<U>(
        client: C,
        token_url: U,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> OAuth2ProviderBuilder<C>
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        OAuth2ProviderBuilder::new(
            client,
            to_uri(token_url, "token endpoint"),
            Grant::ClientCredentials,
        )
        .client_id(client_id)
        .client_secret(client_secret)
    }

    /// The origin the tokens are bound to, if any; see
    /// [`bind_origin`](OAuth2ProviderBuilder::bind_origin).
    pub fn bound_origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Uri {
        &self.token_url
    }

    /// The HTTP service requests are sent through.
    pub fn get_ref(&self) -> &C {
        &self.client
    }

    /// The secrets a request may carry, `sent` (a refresh or access token) among them, to be
    /// kept out of what an error quotes of the answer: the password, the client secret (and
    /// the `Basic` credentials made from it), and the values of the extra login fields.
    pub(crate) fn secrets<'a>(&'a self, sent: &[&'a str]) -> Secrets<'a> {
        let mut secrets = Secrets::default();
        if let Grant::Password { password, .. } = &self.grant {
            secrets.add(Some(password.expose()));
        }
        secrets.add(self.client_secret.as_ref().map(Secret::expose));
        let basic = self.basic_auth.as_ref().map(Secret::expose);
        secrets.add(basic.and_then(|value| value.strip_prefix("Basic ")));
        for (_, value) in &self.login_params {
            let value = value.expose();
            if value.chars().count() >= error::MIN_PARAM_CHARS {
                secrets.add(Some(value));
            }
        }
        for token in sent {
            secrets.add(Some(token));
        }
        secrets
    }

    /// Reads a token endpoint's response.
    fn parse_token(
        &self,
        status: StatusCode,
        body: &[u8],
        secrets: &Secrets<'_>,
    ) -> Result<TokenResponse, OAuth2Error> {
        let map = self.parse_object(status, body, secrets)?;
        self.token_from_object(status, map)
    }

    /// Reads a token response from a successful answer's JSON object, as
    /// [`parse_object`](Self::parse_object) returned it.
    pub(crate) fn token_from_object(
        &self,
        status: StatusCode,
        mut map: Option<Map<String, Value>>,
    ) -> Result<TokenResponse, OAuth2Error> {
        let invalid = |why| OAuth2Error::invalid_response(status, why);
        let Some(map) = map.as_mut() else {
            return Err(invalid("the token response is not a JSON object"));
        };
        self.shape.apply(map);

        match map.get("access_token") {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(invalid("the token response has no access token")),
        }
        for (field, why) in [
            ("token_type", "`token_type` is not a string"),
            ("refresh_token", "`refresh_token` is not a string"),
            ("scope", "`scope` is not a string"),
        ] {
            match map.get(field) {
                None | Some(Value::String(_)) => {}
                Some(Value::Null) => {
                    map.remove(field);
                }
                Some(_) => return Err(invalid(why)),
            }
        }
        if let Some(Value::String(s)) = map.get("expires_at") {
            if s.trim().parse::<f64>().is_err() {
                let secs = time::parse_rfc3339(s).ok_or_else(|| {
                    invalid(
                        "`expires_at` is not a Unix time: neither a number nor an RFC 3339 time",
                    )
                })?;
                map.insert("expires_at".into(), Value::from(secs));
            }
        }
        // Checked here, so that the error names the field and the reason.
        if map
            .get("expires_in")
            .is_some_and(|v| crate::token::seconds(v).is_none())
        {
            return Err(invalid("`expires_in` is not a number of seconds"));
        }
        if let Some(value) = map.get("expires_at") {
            crate::token::unix_time(value).map_err(invalid)?;
        }
        let mut response =
            TokenResponse::deserialize(Value::Object(std::mem::take(map))).map_err(|e| {
                OAuth2Error::new(OAuth2ErrorKind::InvalidResponse, Some(status)).with_source(e)
            })?;
        if self.expiry_from_jwt
            && response.expires_in().is_none()
            && response.expires_at().is_none()
        {
            if let Some(exp) = crate::jwt::expiry(response.access_token()) {
                response = response.with_expires_at(exp);
            }
        }
        Ok(response)
    }

    /// Parses a body as a JSON object and applies the response hook. Returns the error the
    /// body describes (an RFC 6749 error, PortSIP's error list, or an error status), and
    /// `Ok(None)` for a success whose body is not a JSON object. What an error quotes of the
    /// body is cleaned of `secrets`.
    pub(crate) fn parse_object(
        &self,
        status: StatusCode,
        body: &[u8],
        secrets: &Secrets<'_>,
    ) -> Result<Option<Map<String, Value>>, OAuth2Error> {
        let mut map = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        if let (Some(map), Some(hook)) = (map.as_mut(), &self.map_response) {
            hook(map);
        }
        if let Some(Value::String(code)) = map.as_ref().and_then(|m| m.get("error")) {
            let map = map.as_ref().expect("checked above");
            let text = |name: &str| match map.get(name) {
                Some(Value::String(s)) => Some(secrets.excerpt(s)),
                _ => None,
            };
            return Err(OAuth2Error::new(
                OAuth2ErrorKind::Server {
                    error: secrets.excerpt(code),
                    description: text("error_description"),
                    uri: text("error_uri"),
                },
                Some(status),
            ));
        }
        if let Some(entry) = map.as_ref().and_then(error_list) {
            let text = |name: &str| match entry.get(name) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(secrets.excerpt(s)),
                _ => None,
            };
            let code = match entry.get("code") {
                Some(Value::String(code)) if !code.trim().is_empty() => secrets.excerpt(code),
                _ => "UNKNOWN".to_owned(),
            };
            return Err(OAuth2Error::new(
                OAuth2ErrorKind::ErrorList {
                    code,
                    message: text("message"),
                    detail: text("detail"),
                },
                Some(status),
            ));
        }
        if !status.is_success() {
            // A JSON body is quoted without the fields that could hold a secret.
            let body = match map {
                Some(map) => {
                    let mut quoted = map.clone();
                    quoted.retain(|name, _| !may_hold_secret(name));
                    secrets.excerpt(&Value::Object(quoted).to_string())
                }
                None => secrets.excerpt(&String::from_utf8_lossy(body)),
            };
            return Err(OAuth2Error::new(
                OAuth2ErrorKind::Status { body },
                Some(status),
            ));
        }
        Ok(map)
    }
}

impl<C, B> OAuth2Provider<C>
where
    C: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    B: Body + Send,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Logs in with the configured grant.
    ///
    /// # Errors
    ///
    /// See [`OAuth2Error`].
    pub async fn login(&self) -> Result<TokenResponse, OAuth2Error> {
        let request = self.build_request(
            RequestKind::Login,
            &self.token_url,
            self.login_fields(),
            None,
        )?;
        let reply = self.send(request).await?;
        reply.token(self.parse_token(reply.status, reply.body.as_bytes(), &self.secrets(&[])))
    }

    /// Exchanges `refresh_token` for a new token. A response without a refresh token keeps
    /// `refresh_token`.
    ///
    /// # Errors
    ///
    /// See [`OAuth2Error`]; a refresh token the server no longer accepts is usually
    /// [`invalid_grant`](OAuth2Error::is_invalid_grant).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, OAuth2Error> {
        let params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let url = self.refresh_url.as_ref().unwrap_or(&self.token_url);
        let request = self.build_request(RequestKind::Refresh, url, params, None)?;
        let reply = self.send(request).await?;
        let secrets = self.secrets(&[refresh_token]);
        let response =
            reply.token(self.parse_token(reply.status, reply.body.as_bytes(), &secrets))?;
        Ok(if response.refresh_token().is_none() {
            response.with_refresh_token(refresh_token)
        } else {
            response
        })
    }

    /// Revokes the tokens at the revocation endpoint (RFC 7009): `refresh_token`, if given
    /// and [`revoke_refresh_token`](OAuth2ProviderBuilder::revoke_refresh_token) is on (the
    /// default), then `access_token`. Both are attempted even when the first fails. Does
    /// nothing when no [`revoke_url`](OAuth2ProviderBuilder::revoke_url) is set.
    ///
    /// # Errors
    ///
    /// The first failure; see [`OAuth2Error`].
    pub async fn revoke(
        &self,
        access_token: &str,
        refresh_token: Option<&str>,
    ) -> Result<(), OAuth2Error> {
        let Some(url) = &self.revoke_url else {
            return Ok(());
        };
        let refresh = match refresh_token.filter(|_| self.revoke_refresh_token) {
            Some(token) => {
                self.revoke_one(url, token, "refresh_token", access_token)
                    .await
            }
            None => Ok(()),
        };
        let access = self
            .revoke_one(url, access_token, "access_token", access_token)
            .await;
        refresh.and(access)
    }

    /// One RFC 7009 request: revokes `token`, of type `hint`. `access_token` goes along as
    /// `Authorization: Bearer` when [`revoke_with_bearer`](OAuth2ProviderBuilder::revoke_with_bearer)
    /// says so.
    async fn revoke_one(
        &self,
        url: &Uri,
        token: &str,
        hint: &str,
        access_token: &str,
    ) -> Result<(), OAuth2Error> {
        let params = vec![("token", token), ("token_type_hint", hint)];
        let bearer = self.revoke_with_bearer.then_some(access_token);
        let request = self.build_request(RequestKind::Revoke, url, params, bearer)?;
        let reply = self.send(request).await?;
        let secrets = self.secrets(&[token, access_token]);
        self.parse_object(reply.status, reply.body.as_bytes(), &secrets)
            .map(drop)
            .map_err(|e| e.with_retry_after(reply.retry_after))
    }
}

/// The first entry of PortSIP's error list, `{"errors": [{"code", "message", "detail"}]}`,
/// when `map` has one.
fn error_list(map: &Map<String, Value>) -> Option<&Map<String, Value>> {
    match map.get("errors")? {
        Value::Array(errors) => match errors.first()? {
            Value::Object(entry)
                if ["code", "message"]
                    .iter()
                    .any(|name| matches!(entry.get(*name), Some(Value::String(_)))) =>
            {
                Some(entry)
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether a response field's name suggests it holds a token, a secret or a password.
fn may_hold_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "password", "passwd"]
        .iter()
        .any(|word| name.contains(word))
}

impl<C, B> TokenProvider for OAuth2Provider<C>
where
    C: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move { OAuth2Provider::login(self).await.map_err(Into::into) })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            OAuth2Provider::refresh(self, refresh_token)
                .await
                .map_err(Into::into)
        })
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            OAuth2Provider::revoke(self, access_token, refresh_token)
                .await
                .map_err(Into::into)
        })
    }

    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        error.downcast_ref::<OAuth2Error>()?.retry_after()
    }

    fn origin(&self) -> Option<Origin> {
        self.origin.clone()
    }
}

impl<C: Clone> Clone for OAuth2Provider<C> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            token_url: self.token_url.clone(),
            refresh_url: self.refresh_url.clone(),
            revoke_url: self.revoke_url.clone(),
            grant: self.grant.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            basic_auth: self.basic_auth.clone(),
            client_auth: self.client_auth,
            scope: self.scope.clone(),
            login_params: self.login_params.clone(),
            body_format: self.body_format,
            shape: self.shape.clone(),
            revoke_with_bearer: self.revoke_with_bearer,
            revoke_refresh_token: self.revoke_refresh_token,
            max_body_size: self.max_body_size,
            expiry_from_jwt: self.expiry_from_jwt,
            map_params: self.map_params.clone(),
            map_response: self.map_response.clone(),
            origin: self.origin.clone(),
        }
    }
}

impl<C: Clone> Clone for OAuth2ProviderBuilder<C> {
    fn clone(&self) -> Self {
        Self {
            provider: self.provider.clone(),
            token_url: self.token_url.clone(),
            refresh_url: self.refresh_url.clone(),
            revoke_url: self.revoke_url.clone(),
            allow_insecure_http: self.allow_insecure_http,
        }
    }
}

impl<C> fmt::Debug for OAuth2ProviderBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The origins only: a URL may hold user information or a key in its query.
        fn url(url: &Result<Uri, BuildError>) -> Option<ShowOrigin<'_>> {
            url.as_ref().ok().map(ShowOrigin)
        }
        f.debug_struct("OAuth2ProviderBuilder")
            .field("token_url", &url(&self.token_url))
            .field("refresh_url", &self.refresh_url.as_ref().map(url))
            .field("revoke_url", &self.revoke_url.as_ref().map(url))
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("provider", &self.provider)
            .finish()
    }
}

impl<C> fmt::Debug for OAuth2Provider<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("OAuth2Provider");
        // The origins only: a URL may hold user information or a key in its query.
        d.field("client", &std::any::type_name::<C>())
            .field("token_url", &ShowOrigin(&self.token_url))
            .field("refresh_url", &self.refresh_url.as_ref().map(ShowOrigin))
            .field("revoke_url", &self.revoke_url.as_ref().map(ShowOrigin));
        match &self.grant {
            Grant::Password { username, .. } => d
                .field("grant", &"password")
                .field("username", username)
                .field("password", &Redacted),
            Grant::ClientCredentials => d.field("grant", &"client_credentials"),
        };
        d.field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| Redacted),
            )
            .field("client_auth", &self.client_auth)
            .field("scope", &self.scope)
            // Extra login fields may be secrets too: names only.
            .field(
                "login_params",
                &self.login_params.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_format", &self.body_format)
            .field("token_shape", &self.shape)
            .field("revoke_with_bearer", &self.revoke_with_bearer)
            .field("revoke_refresh_token", &self.revoke_refresh_token)
            .field("max_body_size", &self.max_body_size)
            .field("expiry_from_jwt", &self.expiry_from_jwt)
            .field("map_params", &self.map_params.is_some())
            .field("map_response", &self.map_response.is_some())
            .field("origin", &self.origin)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn builder() -> OAuth2ProviderBuilder<()> {
        OAuth2Provider::password((), "https://h/t", "user", "pa&ss")
    }

    fn provider() -> OAuth2Provider<()> {
        builder().build().unwrap()
    }

    fn none() -> Secrets<'static> {
        Secrets::default()
    }

    #[test]
    fn shape_renames_fields() {
        let shape = TokenShape::new()
            .access_token("token")
            .expires_in("expires");
        let mut map: Map<String, Value> =
            serde_json::from_str(r#"{"token":"a","expires":60,"other":1}"#).unwrap();
        shape.apply(&mut map);
        assert_eq!(map["access_token"], "a");
        assert_eq!(map["expires_in"], 60);
        assert_eq!(map["other"], 1);
        assert!(!map.contains_key("token"));
    }

    #[test]
    fn parses_rfc3339_expires_at_and_nulls() {
        let p = provider();
        let r = p
            .parse_token(
                StatusCode::OK,
                br#"{"access_token":"a","expires_at":"2033-05-18T03:33:20Z","refresh_token":null}"#,
                &none(),
            )
            .unwrap();
        assert_eq!(
            r.expires_at(),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(r.refresh_token(), None);
    }

    #[test]
    fn invalid_responses_never_echo_values() {
        let p = provider();
        for body in [
            &br#"{"access_token":"SECRET","refresh_token":5}"#[..],
            br#"{"access_token":"SECRET","expires_in":"SECRETX"}"#,
            br#"{"access_token":"SECRET","expires_at":"SECRETX"}"#,
            br#"{"access_token":7}"#,
            br#"["SECRET"]"#,
        ] {
            let err = p.parse_token(StatusCode::OK, body, &none()).unwrap_err();
            assert_eq!(err.kind(), &OAuth2ErrorKind::InvalidResponse);
            let chain = format!(
                "{err} {:?} {}",
                err,
                std::error::Error::source(&err).unwrap()
            );
            assert!(!chain.contains("SECRET"), "{chain}");
        }
    }

    #[test]
    fn json_error_bodies_are_not_quoted() {
        let body =
            br#"{"access_token":"leaked-token","refreshToken":"leaked-too","message":"nope"}"#;
        let err = provider()
            .parse_token(StatusCode::BAD_GATEWAY, body, &none())
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
        assert!(!err.to_string().contains("leaked-token"), "{err}");
        assert!(!format!("{err:?}").contains("leaked"), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn portsip_error_lists_are_read() {
        let p = builder().build().unwrap();
        let secrets = p.secrets(&[]);
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"Login failed, authentication error","detail":"password pa&ss is wrong"},{"code":"OTHER"}]}"#;
        let err = p
            .parse_token(StatusCode::BAD_REQUEST, body, &secrets)
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &OAuth2ErrorKind::ErrorList {
                code: "UNAUTHORIZED".into(),
                message: Some("Login failed, authentication error".into()),
                detail: Some(format!("password {} is wrong", error::REDACTED)),
            }
        );
        assert!(err.credentials_rejected());
        assert!(!err.to_string().contains("pa&ss"), "{err}");

        // In a success too; an unknown code is kept, a missing one is UNKNOWN.
        let err = p
            .parse_token(
                StatusCode::OK,
                br#"{"errors":[{"code":"QUOTA_EXCEEDED","message":"too many"}]}"#,
                &secrets,
            )
            .unwrap_err();
        assert_eq!(err.error_code(), Some("QUOTA_EXCEEDED"));
        assert_eq!(err.to_string(), "QUOTA_EXCEEDED: too many (HTTP 200)");
        let err = p
            .parse_token(
                StatusCode::BAD_REQUEST,
                br#"{"errors":[{"message":"no"}]}"#,
                &secrets,
            )
            .unwrap_err();
        assert_eq!(err.error_code(), Some("UNKNOWN"));

        // Not an error list: an empty one, or entries without code or message.
        for body in [
            &br#"{"access_token":"a","errors":[]}"#[..],
            br#"{"access_token":"a","errors":[{"x":1}]}"#,
            br#"{"access_token":"a","errors":"none"}"#,
        ] {
            assert!(p.parse_token(StatusCode::OK, body, &secrets).is_ok());
        }
    }

    #[test]
    fn error_in_a_success_is_an_error() {
        let err = provider()
            .parse_token(
                StatusCode::OK,
                br#"{"error":"invalid_grant","access_token":"x"}"#,
                &none(),
            )
            .unwrap_err();
        assert!(err.is_invalid_grant());
        assert_eq!(err.status(), Some(StatusCode::OK));
    }

    #[test]
    fn debug_hides_secrets() {
        let b = builder()
            .client_secret("SECRET-C")
            .login_param("domain", "SECRET-D");
        let out = format!("{b:?}");
        assert!(!out.contains("pa&ss") && !out.contains("SECRET"), "{out}");
        let p = b.build().unwrap();
        let out = format!("{p:?}");
        assert!(!out.contains("pa&ss") && !out.contains("SECRET"), "{out}");
        assert!(out.contains("user"));
    }

    #[test]
    fn errors_never_quote_basic_credentials_or_login_params() {
        let p = builder()
            .client_id("app")
            .client_secret("CL-SECRET")
            .login_param("api_key", "PARAM-SECRET")
            .login_param("lang", "en")
            .build()
            .unwrap();
        let basic = p.basic_auth.as_ref().unwrap().expose()["Basic ".len()..].to_owned();
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"Basic {basic} and api_key=PARAM-SECRET, lang en"}}"#
        );
        let err = p
            .parse_token(StatusCode::UNAUTHORIZED, body.as_bytes(), &p.secrets(&[]))
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(&basic) && !text.contains("PARAM-SECRET"),
            "{text}"
        );
        // A value shorter than four characters is not taken out of messages.
        assert!(text.contains("lang en"), "{text}");
    }

    #[test]
    fn errors_never_quote_the_secrets_sent() {
        let p = builder().client_secret("CL-SECRET").build().unwrap();
        let secrets = p.secrets(&["RT-SECRET"]);
        let cases: [(u16, &[u8]); 4] = [
            (
                400,
                br#"{"error":"invalid_grant","error_description":"bad password pa&ss","error_uri":"https://x/?rt=RT-SECRET"}"#,
            ),
            (401, br#"{"error":"invalid_client CL-SECRET"}"#),
            (
                500,
                br#"{"message":"got grant_type=password&password=pa%26ss&refresh_token=RT-SECRET"}"#,
            ),
            (502, b"<html>password=pa%26ss client_secret=CL-SECRET</html>"),
        ];
        for (status, body) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            let err = p.parse_token(status, body, &secrets).unwrap_err();
            let text = format!("{err} {err:?}");
            for leak in ["pa&ss", "pa%26ss", "RT-SECRET", "CL-SECRET"] {
                assert!(!text.contains(leak), "{leak} in {text}");
            }
            assert!(text.contains(error::REDACTED), "{text}");
        }
    }

    #[test]
    fn insecure_endpoints_are_refused_unless_allowed() {
        use crate::provider::BuildErrorKind;

        let insecure = OAuth2Provider::password((), "http://auth.example.com/t", "u", "p");
        let err = insecure.clone().build().unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);
        assert!(insecure.allow_insecure_http(true).build().is_ok());
        for loopback in [
            "http://127.0.0.1:1/t",
            "http://[::1]:1/t",
            "http://localhost/t",
        ] {
            assert!(
                OAuth2Provider::password((), loopback, "u", "p")
                    .build()
                    .is_ok()
            );
        }
        // Every endpoint is checked, not only the token endpoint.
        let err = builder()
            .revoke_url("http://auth.example.com/revoke")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);
        let err = builder().refresh_url("not a url").build().unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InvalidUrl);
        let err = OAuth2Provider::password((), "/relative", "u", "p")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InvalidUrl);
    }

    #[test]
    fn the_origin_is_bound_only_when_asked() {
        assert_eq!(provider().bound_origin(), None);
        let origin = Origin::try_from("https://h").unwrap();
        let bound = builder().bind_origin(origin.clone()).build().unwrap();
        assert_eq!(bound.bound_origin(), Some(&origin));
    }
}
