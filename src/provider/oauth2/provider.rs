//! [`OAuth2Provider`]: its settings, its calls to the token and revocation endpoints, and its
//! [`TokenProvider`] implementation.

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use serde_json::{Map, Value};
use tower_service::Service;

use super::{
    client_auth::{ClientAuth, authorization},
    error::OAuth2Error,
    redact::{MIN_PARAM_CHARS, Secrets},
    request::{BodyFormat, ParamsHook, RequestKind, encode_body, encode_mapped, post},
    shape::TokenShape,
};
use crate::{
    BoxError,
    origin::Origin,
    provider::{BoxFuture, TokenProvider, build_error::ShowOrigin, secret::Secret},
    token::{Redacted, TokenResponse},
};

/// A hook that edits a JSON response; see [`OAuth2ProviderBuilder::map_response`](super::OAuth2ProviderBuilder::map_response).
pub(super) type ResponseHook = Arc<dyn Fn(&mut Map<String, Value>) + Send + Sync>;

/// A [`TokenProvider`] that talks to an OAuth 2.0 token endpoint through the HTTP service `C`.
///
/// Build one with [`password`](Self::password) or
/// [`client_credentials`](Self::client_credentials), the options of the
/// [`OAuth2ProviderBuilder`](super::OAuth2ProviderBuilder) they return, and its [`build`](super::OAuth2ProviderBuilder::build).
///
/// `C` is any tower service taking `http::Request<Full<Bytes>>` and returning an
/// `http::Response` with any body: a hyper-util client, a `tower::ServiceBuilder` stack with
/// your own timeouts, or [`HttpClient`](crate::client::HttpClient).
///
/// Requests are `POST`s with an `application/x-www-form-urlencoded` body (or JSON, see
/// [`body_format`](super::OAuth2ProviderBuilder::body_format)) and `Accept: application/json`:
///
/// | call | fields |
/// |---|---|
/// | [`login`](Self::login), password grant | `grant_type=password`, `username`, `password`, `scope`, extra [`login_param`](super::OAuth2ProviderBuilder::login_param)s |
/// | [`login`](Self::login), client credentials | `grant_type=client_credentials`, `scope`, extra [`login_param`](super::OAuth2ProviderBuilder::login_param)s |
/// | [`refresh`](Self::refresh) | `grant_type=refresh_token`, `refresh_token` |
/// | [`revoke`](Self::revoke), the refresh token | `token`, `token_type_hint=refresh_token` |
/// | [`revoke`](Self::revoke), the access token | `token`, `token_type_hint=access_token` |
///
/// plus the client's identity (RFC 6749 §2.3.1): with a
/// [`client_secret`](super::OAuth2ProviderBuilder::client_secret), HTTP Basic (the default) or
/// `client_id` and `client_secret` fields, as [`client_auth`](super::OAuth2ProviderBuilder::client_auth)
/// says; without one, a `client_id` field if a [`client_id`](super::OAuth2ProviderBuilder::client_id)
/// is set.
///
/// # Responses
///
/// A success (RFC 6749 §5.1) is read into a [`TokenResponse`]: `access_token`, `token_type`,
/// `expires_in` (a number or a numeric string), `expires_at` (Unix seconds, Unix milliseconds
/// when as seconds it would lie beyond the year 3000, or an RFC 3339 time), `refresh_token`,
/// `scope`; other fields are kept in [`TokenResponse::extra`]. A refresh response without
/// `refresh_token` keeps the one just used. A field that cannot be read fails the response
/// with [`OAuth2ErrorKind::InvalidResponse`](crate::provider::oauth2::OAuth2ErrorKind::InvalidResponse), whose message names the field and the reason
/// (`invalid token endpoint response (HTTP 200): ` then `` `expires_at` is not a Unix time: `` and
/// why), never its value.
///
/// When the response states no lifetime (neither `expires_in` nor `expires_at`) and the
/// access token is a JWT with an `exp` claim, the token expires then: its payload is
/// base64url-decoded and parsed, and nothing is verified (the signature, the issuer and the
/// other claims are the resource server's business). Turn this off with
/// [`expiry_from_jwt(false)`](super::OAuth2ProviderBuilder::expiry_from_jwt).
///
/// # Errors
///
/// Every failure is an [`OAuth2Error`] (boxed, when reached through the [`TokenProvider`]
/// trait): an RFC 6749 §5.2 error body, even with a `200` status, becomes
/// [`OAuth2ErrorKind::Server`](crate::provider::oauth2::OAuth2ErrorKind::Server) with the status; another error status becomes
/// [`OAuth2ErrorKind::Status`](crate::provider::oauth2::OAuth2ErrorKind::Status) with the start of the body; a body larger than
/// [`max_body_size`](super::OAuth2ProviderBuilder::max_body_size) is refused without being read whole.
/// What the error quotes of the server's answer never holds the provider's password or client
/// secret, nor the token the request carried, even when the server echoes them back.
///
/// A redirect (any `3xx`) from the token or revocation endpoint is an error,
/// [`OAuth2ErrorKind::Redirect`](crate::provider::oauth2::OAuth2ErrorKind::Redirect), never followed: a request that carries credentials goes to
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
/// See the [module documentation](crate::provider::oauth2).
pub struct OAuth2Provider<C> {
    pub(super) client: C,
    pub(super) token_url: Uri,
    pub(super) refresh_url: Option<Uri>,
    pub(super) revoke_url: Option<Uri>,
    pub(super) grant: Grant,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<Secret>,
    /// `Basic …`, made from the client id and secret by `build` when HTTP Basic is used.
    pub(super) basic_auth: Option<Secret>,
    pub(super) client_auth: ClientAuth,
    pub(super) scope: Option<String>,
    pub(super) login_params: Vec<(String, Secret)>,
    pub(super) body_format: BodyFormat,
    pub(super) shape: TokenShape,
    pub(super) revoke_with_bearer: bool,
    pub(super) revoke_refresh_token: bool,
    pub(super) max_body_size: usize,
    /// Whether a response without a lifetime takes it from a JWT access token's `exp`.
    pub(super) expiry_from_jwt: bool,
    pub(super) map_params: Option<ParamsHook>,
    pub(super) map_response: Option<ResponseHook>,
    pub(super) origin: Option<Origin>,
}

#[derive(Clone)]
pub(super) enum Grant {
    Password { username: String, password: Secret },
    ClientCredentials,
}

impl<C> OAuth2Provider<C> {
    /// The origin the tokens are bound to, if any; see
    /// [`bind_origin`](super::OAuth2ProviderBuilder::bind_origin).
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
            if value.chars().count() >= MIN_PARAM_CHARS {
                secrets.add(Some(value));
            }
        }
        for token in sent {
            secrets.add(Some(token));
        }
        secrets
    }
}

impl<C> OAuth2Provider<C> {
    /// The fields of a login: the grant, the scope and the extra login fields.
    pub(super) fn login_fields(&self) -> Vec<(&str, &str)> {
        let mut fields = Vec::with_capacity(4 + self.login_params.len());
        match &self.grant {
            Grant::Password { username, password } => {
                fields.push(("grant_type", "password"));
                fields.push(("username", username.as_str()));
                fields.push(("password", password.expose()));
            }
            Grant::ClientCredentials => fields.push(("grant_type", "client_credentials")),
        }
        if let Some(scope) = &self.scope {
            fields.push(("scope", scope.as_str()));
        }
        for (name, value) in &self.login_params {
            fields.push((name.as_str(), value.expose()));
        }
        fields
    }

    /// Builds a request: client authentication, the hook, the body and headers.
    ///
    /// The fields are borrowed, not copied; the body and the `Authorization` value are made in
    /// buffers that are wiped when the HTTP client drops them. With a
    /// [`map_params`](super::OAuth2ProviderBuilder::map_params) hook the fields are copied
    /// for it, and the copies wiped once encoded.
    pub(super) fn build_request<'a>(
        &'a self,
        kind: RequestKind,
        url: &Uri,
        mut fields: Vec<(&'a str, &'a str)>,
        bearer: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, OAuth2Error> {
        self.client_auth.add_fields(
            self.client_id.as_deref(),
            self.client_secret.as_ref(),
            &mut fields,
        );
        let authorization = authorization(self.basic_auth.as_ref(), bearer);
        let body = match &self.map_params {
            None => encode_body(self.body_format, &fields),
            Some(hook) => encode_mapped(self.body_format, hook, kind, fields),
        };
        let content_type = match self.body_format {
            BodyFormat::Form => "application/x-www-form-urlencoded",
            BodyFormat::Json => "application/json",
        };
        post(url, body?, content_type, authorization)
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
    /// and [`revoke_refresh_token`](super::OAuth2ProviderBuilder::revoke_refresh_token) is on (the
    /// default), then `access_token`. Both are attempted even when the first fails. Does
    /// nothing when no [`revoke_url`](super::OAuth2ProviderBuilder::revoke_url) is set.
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
    /// `Authorization: Bearer` when [`revoke_with_bearer`](super::OAuth2ProviderBuilder::revoke_with_bearer)
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
