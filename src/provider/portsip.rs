//! [`PortSip`]: an [`OAuth2Provider`] set up for the PortSIP PBX REST API.

use std::fmt;

use http::Uri;

#[cfg(feature = "client")]
use super::oauth2::HttpClient;
use super::oauth2::{BuildError, OAuth2Provider};
use crate::token::Redacted;

/// The `client_id` PortSIP publishes for its REST API.
pub const PORTSIP_CLIENT_ID: &str = "9d806019-75b2-4b3d-bb8b-f5a3a412cc0a";
/// The token endpoint's path, below the PBX's base URL.
pub const PORTSIP_TOKEN_PATH: &str = "/api/login/oauth/token";
/// The revocation endpoint's path, below the PBX's base URL.
pub const PORTSIP_REVOKE_PATH: &str = "/api/login/oauth/revoke";

/// Builds an [`OAuth2Provider`] for a PortSIP PBX (REST API v22 and later).
///
/// It knows the token and revocation endpoints, the published
/// [`client_id`](PORTSIP_CLIENT_ID) and `scope=all`; you give the PBX's base URL (usually
/// `https://HOST:8887`), a user name and password and, for a tenant user, the tenant's SIP
/// `domain`. Logins use the password grant, refreshes the refresh-token grant, and
/// [`TokenCache::revoke`](crate::TokenCache::revoke) logs out at
/// `/api/login/oauth/revoke` with the current token.
///
/// # Example
///
/// A PortSIP-ready client, with the `client` and `rustls` features:
///
/// ```no_run
/// use tower::ServiceBuilder;
/// use tower_bearer_auth::{BearerAuthLayer, HttpClient, PortSip};
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
/// # use tower_bearer_auth::{HttpClient, PortSip};
/// # fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let client = HttpClient::builder().add_ca_pem_file("pbx-ca.pem").build()?;
/// let provider = PortSip::new("https://pbx.example.com:8887", "admin", "s3cret")
///     .build_with(client.clone())?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PortSip {
    base_url: String,
    username: String,
    password: String,
    domain: Option<String>,
    client_id: String,
    scope: String,
}

impl PortSip {
    /// A PortSIP login as `username` at the PBX reachable at `base_url`, such as
    /// `https://pbx.example.com:8887`. A path in `base_url` (a reverse proxy's prefix) is
    /// kept.
    pub fn new(
        base_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            username: username.into(),
            password: password.into(),
            domain: None,
            client_id: PORTSIP_CLIENT_ID.to_owned(),
            scope: "all".to_owned(),
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

    /// Builds the provider with a new [`HttpClient`].
    ///
    /// # Errors
    ///
    /// Fails when the base URL is not an absolute `http` or `https` URL.
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
    /// Fails when the base URL is not an absolute `http` or `https` URL.
    pub fn build_with<C>(self, client: C) -> Result<OAuth2Provider<C>, BuildError> {
        let token_url = join(&self.base_url, PORTSIP_TOKEN_PATH)?;
        let revoke_url = join(&self.base_url, PORTSIP_REVOKE_PATH)?;
        let mut provider =
            OAuth2Provider::password(client, token_url, self.username, self.password)
                .client_id(self.client_id)
                .scope(self.scope)
                .revoke_url(revoke_url)
                .revoke_with_bearer(true);
        if let Some(domain) = self.domain {
            provider = provider.login_param("domain", domain);
        }
        Ok(provider)
    }
}

impl fmt::Debug for PortSip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSip")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("domain", &self.domain)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish()
    }
}

/// `base` with `path` appended, checked to be an absolute HTTP(S) URL.
fn join(base: &str, path: &str) -> Result<Uri, BuildError> {
    let invalid = || BuildError::new("the base url is not an absolute http or https url");
    let base = base.trim().trim_end_matches('/');
    if base.contains(['?', '#']) {
        return Err(invalid());
    }
    let uri: Uri = format!("{base}{path}").parse().map_err(|_| invalid())?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths() {
        assert_eq!(
            join("https://pbx:8887", PORTSIP_TOKEN_PATH).unwrap(),
            "https://pbx:8887/api/login/oauth/token"
        );
        assert_eq!(
            join("http://h/prefix/", PORTSIP_REVOKE_PATH).unwrap(),
            "http://h/prefix/api/login/oauth/revoke"
        );
        for bad in [
            "pbx:8887",
            "/api",
            "ftp://h",
            "https://h?x=1",
            "",
            "http://",
        ] {
            assert!(join(bad, PORTSIP_TOKEN_PATH).is_err(), "{bad}");
        }
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
