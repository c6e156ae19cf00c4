//! [`OAuth2ProviderBuilder`]: the constructors of an [`OAuth2Provider`], its options, and the
//! checks [`build`](OAuth2ProviderBuilder::build) makes.

use std::{fmt, sync::Arc};

use http::Uri;
use serde_json::{Map, Value};

use super::{
    client_auth::{self, ClientAuth},
    provider::{Grant, OAuth2Provider},
    request::{BodyFormat, RequestKind},
    shape::TokenShape,
};
use crate::{
    origin::Origin,
    provider::{
        build_error::{BuildError, ShowOrigin, check_endpoint, to_uri},
        secret::Secret,
    },
};

/// Default limit on the size of a token endpoint's response body: 64 KiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024;

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
    /// [`OAuth2ErrorKind::BodyTooLarge`](crate::provider::oauth2::OAuth2ErrorKind::BodyTooLarge) without being read whole. Defaults to
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
    /// Defaults to `true`; [`PortSip`](crate::provider::portsip::PortSip) turns it off, as PortSIP ends
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
    /// [`TokenProvider::origin`](crate::provider::TokenProvider::origin), so the layer can keep the tokens from other servers.
    /// Defaults to none: the provider does not say where its tokens go.
    /// [`PortSip`](crate::provider::portsip::PortSip) binds the PBX's origin.
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
            (Some(secret), ClientAuth::Basic) => Some(client_auth::basic_auth(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::oauth2::test_helpers::{builder, provider};

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
