//! [`PortSip`]: an [`OAuth2Provider`] set up for the PortSIP PBX REST API, and the constants
//! PortSIP publishes for it.

use std::fmt;

use http::Uri;

use super::{
    BuildError, BuildErrorKind,
    build_error::{check_endpoint, to_uri},
    oauth2::OAuth2Provider,
};
#[cfg(feature = "client")]
use crate::client::HttpClient;
use crate::{Origin, token::Redacted};

/// The `client_id` PortSIP publishes for its REST API.
pub const PORTSIP_CLIENT_ID: &str = "9d806019-75b2-4b3d-bb8b-f5a3a412cc0a";
/// The token endpoint's path, below the PBX's base URL.
pub const PORTSIP_TOKEN_PATH: &str = "/api/login/oauth/token";
/// The revocation endpoint's path, below the PBX's base URL.
pub const PORTSIP_REVOKE_PATH: &str = "/api/login/oauth/revoke";
/// The sign-in API's login path (REST API v22.2.11 and later), below the PBX's base URL.
pub const PORTSIP_SIGN_IN_PATH: &str = "/api/auth/sign_in";
/// The sign-in API's refresh path, below the PBX's base URL.
pub const PORTSIP_REFRESH_PATH: &str = "/api/auth/refresh_token";
/// The sign-in API's path for the one-time code of a two-factor sign-in, below the PBX's
/// base URL.
pub const PORTSIP_VERIFY_OTP_PATH: &str = "/api/auth/verify_otp";
/// The sign-in API's logout path, below the PBX's base URL.
pub const PORTSIP_SIGN_OUT_PATH: &str = "/api/auth/sign_out";

/// Builds an [`OAuth2Provider`] for a PortSIP PBX (REST API v22 and later).
///
/// It knows the token and revocation endpoints, the published
/// [`client_id`](PORTSIP_CLIENT_ID) and `scope=all`; you give the PBX's base URL (usually
/// `https://HOST:8887`), a user name and password and, for a tenant user, the tenant's SIP
/// `domain`. Logins use the password grant, refreshes the refresh-token grant, and
/// [`TokenCache::revoke`](crate::TokenCache::revoke) logs out at `/api/login/oauth/revoke`
/// with the current token as `Authorization: Bearer`, which ends the session, refresh token
/// included (PortSIP offers no separate revocation of the refresh token).
///
/// The provider it builds is bound to the PBX's [`origin`](Self::origin): it reports it from
/// [`TokenProvider::origin`](super::TokenProvider::origin), so that the layer can keep the
/// PBX's tokens from other servers.
///
/// A base URL with plain `http` is refused unless it is on loopback (the embedded
/// [test server](crate::test_server), say) or
/// [`allow_insecure_http(true)`](Self::allow_insecure_http) is set: the login sends the
/// password.
///
/// # Example
///
/// A PortSIP-ready client, with the `client` and `rustls` features:
///
/// ```no_run
/// use tower::ServiceBuilder;
/// use tower_bearer_auth::{BearerAuthLayer, client::HttpClient, provider::portsip::PortSip};
///
/// # fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let provider = PortSip::new("https://pbx.example.com:8887", "admin", "s3cret")
///     .domain("tenant.example.com")
///     .build()?;
/// let pbx = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(provider))
///     .service(HttpClient::new());
/// # Ok(())
/// # }
/// ```
///
/// For a PBX whose certificate comes from a private CA, build the client yourself and pass it
/// to [`build_with`](Self::build_with):
///
/// ```no_run
/// # use tower_bearer_auth::{client::HttpClient, provider::portsip::PortSip};
/// # fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let client = HttpClient::builder().add_ca_pem_file("pbx-ca.pem").build()?;
/// let provider = PortSip::new("https://pbx.example.com:8887", "admin", "s3cret")
///     .build_with(client.clone())?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PortSip {
    base_url: Result<Uri, BuildError>,
    username: String,
    password: String,
    domain: Option<String>,
    client_id: String,
    scope: String,
    allow_insecure_http: bool,
}

impl PortSip {
    /// A PortSIP login as `username` at the PBX reachable at `base_url`, such as
    /// `https://pbx.example.com:8887`: a [`Uri`] or anything that converts to one (a `&str`,
    /// a `String`). A path in `base_url` (a reverse proxy's prefix) is kept. A URL that
    /// cannot be parsed is reported by [`build`](Self::build).
    pub fn new<U>(base_url: U, username: impl Into<String>, password: impl Into<String>) -> Self
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        Self {
            base_url: to_uri(base_url, "base"),
            username: username.into(),
            password: password.into(),
            domain: None,
            client_id: PORTSIP_CLIENT_ID.to_owned(),
            scope: "all".to_owned(),
            allow_insecure_http: false,
        }
    }

    /// The tenant's SIP domain, sent as `domain` with each login, for a tenant user.
    /// Defaults to none (a system administrator).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `client_id`. Defaults to [`PORTSIP_CLIENT_ID`].
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The scope asked for. Defaults to `all`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Whether a base URL with plain `http` on a host that is not loopback is accepted.
    /// Defaults to `false`: the password would travel in cleartext, so
    /// [`build`](Self::build) fails with [`BuildErrorKind::InsecureEndpoint`]. Loopback
    /// (`127.0.0.0/8`, `::1`, `localhost`) is always accepted.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The PBX's origin (scheme, host and port of the base URL), which the built provider's
    /// tokens are bound to; `None` when the base URL is not an absolute URL.
    ///
    /// ```
    /// use tower_bearer_auth::{Origin, provider::portsip::PortSip};
    ///
    /// let pbx = PortSip::new("https://pbx.example.com:8887/proxy", "admin", "s3cret");
    /// assert_eq!(pbx.origin(), Origin::try_from("https://pbx.example.com:8887").ok());
    /// ```
    pub fn origin(&self) -> Option<Origin> {
        Origin::try_from(self.base_url.as_ref().ok()?).ok()
    }

    /// Builds the provider with a new [`HttpClient`].
    ///
    /// # Errors
    ///
    /// Fails when the base URL cannot be parsed or is not an absolute `http` or `https` URL
    /// ([`BuildErrorKind::InvalidUrl`]), or is plain `http` on a host that is not loopback
    /// without [`allow_insecure_http`](Self::allow_insecure_http)
    /// ([`BuildErrorKind::InsecureEndpoint`]).
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn build(self) -> Result<OAuth2Provider<HttpClient>, BuildError> {
        self.build_with(HttpClient::new())
    }

    /// Builds the provider, sending its requests through `client`; see [`OAuth2Provider`] for
    /// what `client` may be.
    ///
    /// # Errors
    ///
    /// As for [`build`](Self::build).
    pub fn build_with<C>(self, client: C) -> Result<OAuth2Provider<C>, BuildError> {
        let base = self.base_url.clone()?;
        check_endpoint(&base, "base", self.allow_insecure_http)?;
        let origin = self.origin();
        let token_url = join(&base, PORTSIP_TOKEN_PATH)?;
        let revoke_url = join(&base, PORTSIP_REVOKE_PATH)?;
        let mut builder = OAuth2Provider::password(client, token_url, self.username, self.password)
            .client_id(self.client_id)
            .scope(self.scope)
            .revoke_url(revoke_url)
            .revoke_with_bearer(true)
            .revoke_refresh_token(false)
            .allow_insecure_http(self.allow_insecure_http);
        if let Some(origin) = origin {
            builder = builder.bind_origin(origin);
        }
        if let Some(domain) = self.domain {
            builder = builder.login_param("domain", domain);
        }
        builder.build()
    }
}

impl fmt::Debug for PortSip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSip")
            .field("base_url", &self.base_url.as_ref().ok())
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("domain", &self.domain)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

/// `base` with `path` appended after its own path, without its query.
fn join(base: &Uri, path: &str) -> Result<Uri, BuildError> {
    let invalid = || {
        BuildError::new(
            BuildErrorKind::InvalidUrl,
            "the base url is not an absolute http or https url without a query",
        )
    };
    if base.query().is_some() {
        return Err(invalid());
    }
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(invalid());
    };
    let prefix = base.path().trim_end_matches('/');
    format!("{scheme}://{authority}{prefix}{path}")
        .parse()
        .map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_str(base: &str, path: &str) -> Result<Uri, BuildError> {
        let base = to_uri(base, "base")?;
        check_endpoint(&base, "base", true)?;
        join(&base, path)
    }

    #[test]
    fn joins_paths() {
        assert_eq!(
            join_str("https://pbx:8887", PORTSIP_TOKEN_PATH).unwrap(),
            "https://pbx:8887/api/login/oauth/token"
        );
        assert_eq!(
            join_str("http://h/prefix/", PORTSIP_REVOKE_PATH).unwrap(),
            "http://h/prefix/api/login/oauth/revoke"
        );
        assert_eq!(
            join_str("https://pbx:8887/", PORTSIP_TOKEN_PATH).unwrap(),
            "https://pbx:8887/api/login/oauth/token"
        );
        for bad in [
            "pbx:8887",
            "/api",
            "ftp://h",
            "https://h?x=1",
            "",
            "http://",
        ] {
            assert!(join_str(bad, PORTSIP_TOKEN_PATH).is_err(), "{bad}");
        }
    }

    #[test]
    fn takes_a_uri_or_a_string() {
        let uri: Uri = "https://pbx.example.com:8887".parse().unwrap();
        for portsip in [
            PortSip::new(uri.clone(), "admin", "pw"),
            PortSip::new("https://pbx.example.com:8887", "admin", "pw"),
            PortSip::new(String::from("https://pbx.example.com:8887"), "admin", "pw"),
        ] {
            let provider = portsip.build_with(()).unwrap();
            assert_eq!(
                provider.token_url(),
                "https://pbx.example.com:8887/api/login/oauth/token"
            );
        }
        let err = PortSip::new("https://bad host", "admin", "pw")
            .build_with(())
            .unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InvalidUrl);
    }

    #[test]
    fn plain_http_needs_loopback_or_consent() {
        let remote = PortSip::new("http://pbx.example.com:8887", "admin", "pw");
        let err = remote.clone().build_with(()).unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(remote.allow_insecure_http(true).build_with(()).is_ok());
        for loopback in [
            "http://127.0.0.1:8887",
            "http://127.9.9.9",
            "http://[::1]:8887",
            "http://localhost:8887",
        ] {
            let built = PortSip::new(loopback, "admin", "pw").build_with(());
            assert!(built.is_ok(), "{loopback}");
        }
    }

    #[test]
    fn origin_is_the_pbx() {
        let pbx = PortSip::new("https://PBX.example.com:8887/prefix/", "admin", "pw");
        let expected = Origin::try_from("https://pbx.example.com:8887").unwrap();
        assert_eq!(pbx.origin(), Some(expected.clone()));
        assert_eq!(
            PortSip::new("https://pbx.example.com", "a", "p").origin(),
            Origin::try_from("https://pbx.example.com:443").ok()
        );
        assert_eq!(PortSip::new("not a url", "a", "p").origin(), None);
        assert_eq!(PortSip::new("/relative", "a", "p").origin(), None);
        let provider = pbx.build_with(()).unwrap();
        assert_eq!(provider.bound_origin(), Some(&expected));
    }

    #[test]
    fn debug_hides_the_password() {
        let p = PortSip::new("https://pbx", "admin", "hunter2").domain("t.example");
        let out = format!("{p:?}");
        assert!(!out.contains("hunter2"), "{out}");
        let provider = p.build_with(()).unwrap();
        let out = format!("{provider:?}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains(PORTSIP_CLIENT_ID));
    }
}
