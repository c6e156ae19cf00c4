//! [`PortSip`]: the settings of a PortSIP login, and the [`PortSipProvider`] it builds from them.

use std::{fmt, future::Future};

use http::Uri;

use super::{
    PORTSIP_CLIENT_ID, PORTSIP_REFRESH_PATH, PORTSIP_REVOKE_PATH, PORTSIP_SIGN_IN_PATH,
    PORTSIP_SIGN_OUT_PATH, PORTSIP_TOKEN_PATH, PORTSIP_VERIFY_OTP_PATH, PortSipApi,
    provider::PortSipProvider,
    sign_in,
    two_factor::{self, OneTimeCodeFn, TwoFactorChallenge},
};
#[cfg(feature = "client")]
use crate::client::HttpClient;
use crate::{
    BoxError,
    origin::Origin,
    provider::{
        build_error::{BuildError, BuildErrorKind, ShowOrigin, check_endpoint, to_uri},
        oauth2::OAuth2Provider,
        secret::Secret,
    },
    token::Redacted,
};

/// Builds a [`PortSipProvider`] for a PortSIP PBX (REST API v22).
///
/// You give the PBX's base URL (usually `https://HOST:8887`), a user name and password and,
/// for a tenant user, the tenant's SIP `domain`; it knows the rest: both login APIs' paths,
/// and for the OAuth token endpoint the published [`client_id`](PORTSIP_CLIENT_ID) and
/// `scope=all`. Which API it speaks is [`api`](Self::api)'s choice, by default automatic (see
/// the [module documentation](crate::provider::portsip) for which PortSIP versions serve which). Logins sign in
/// (or use the password grant), refreshes exchange the refresh token, and
/// [`TokenCache::revoke`](crate::TokenCache::revoke) logs out with the current token as
/// `Authorization: Bearer` (`sign_out`, or `/api/login/oauth/revoke`), which ends the session,
/// refresh token included.
///
/// The provider it builds is bound to the PBX's [`origin`](Self::origin): it reports it from
/// [`TokenProvider::origin`](crate::provider::TokenProvider::origin), so that the layer can keep the
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
    password: Secret,
    domain: Option<Secret>,
    client_id: String,
    scope: String,
    allow_insecure_http: bool,
    api: PortSipApi,
    one_time_code: Option<OneTimeCodeFn>,
    expiry_from_jwt: bool,
}

impl PortSip {
    /// A PortSIP login as `username` at the PBX reachable at `base_url`, such as
    /// `https://pbx.example.com:8887`: a [`Uri`] or anything that converts to one (a `&str`,
    /// a `String`). A path in `base_url` (a reverse proxy's prefix) is kept. A URL that
    /// cannot be parsed is reported by [`build`](Self::build).
    ///
    /// The password is kept in one copy, shared by clones (of this builder and of the
    /// provider it builds) and wiped from memory when the last is dropped; a `String` passed
    /// in is moved, not copied.
    pub fn new<U>(base_url: U, username: impl Into<String>, password: impl Into<String>) -> Self
    where
        U: TryInto<Uri>,
        U::Error: Into<http::Error>,
    {
        Self {
            base_url: to_uri(base_url, "base"),
            username: username.into(),
            password: Secret::new(password),
            domain: None,
            client_id: PORTSIP_CLIENT_ID.to_owned(),
            scope: "all".to_owned(),
            allow_insecure_http: false,
            api: PortSipApi::default(),
            one_time_code: None,
            expiry_from_jwt: true,
        }
    }

    /// The tenant's SIP domain, sent as `domain` with each login, for a tenant user.
    /// Defaults to none (a system administrator).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(Secret::new(domain));
        self
    }

    /// Which login API to use. Defaults to [`PortSipApi::Auto`]: the sign-in API, or the
    /// OAuth token endpoint if the PBX answers `404` (or `405`) at the sign-in API, which
    /// costs an older PBX one `404` per provider.
    ///
    /// ```
    /// use tower_bearer_auth::provider::portsip::{PortSip, PortSipApi};
    ///
    /// // A PBX before v22.2.11: no detour through the sign-in API.
    /// let pbx = PortSip::new("https://pbx.example.com:8887", "admin", "s3cret")
    ///     .api(PortSipApi::OAuth);
    /// ```
    pub fn api(mut self, api: PortSipApi) -> Self {
        self.api = api;
        self
    }

    /// A callback that supplies the one-time code of a two-factor sign-in. Defaults to none:
    /// a user with two-factor authentication then fails to log in with
    /// [`PortSipErrorKind::TwoFactorRequired`](super::PortSipErrorKind::TwoFactorRequired).
    ///
    /// When a sign-in answers that a code is needed, the PBX e-mails one to the user and the
    /// provider calls `callback` with a [`TwoFactorChallenge`] (the session token, the user);
    /// the code it returns (surrounding whitespace trimmed) goes to
    /// `POST /api/auth/verify_otp`, whose answer holds the tokens. A callback that fails, or
    /// returns an empty code, fails the login with [`PortSipErrorKind::OneTimeCode`](super::PortSipErrorKind::OneTimeCode); a code
    /// the PBX refuses, with [`PortSipErrorKind::OneTimeCodeRejected`](super::PortSipErrorKind::OneTimeCodeRejected). Either way the layer
    /// waits out its backoff before it signs in again, which e-mails a new code.
    ///
    /// The callback runs inside the login, so the layer's
    /// [`timeout`](crate::TokenCacheBuilder::timeout) (10 seconds by default) bounds it too:
    /// raise it for a callback that waits for mail. Keep the code and the session token out
    /// of the callback's errors and logs. Only the sign-in API asks for a code.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_bearer_auth::{BearerAuthLayer, BoxError, TokenCache, provider::portsip::PortSip};
    ///
    /// /// Waits for PortSIP's e-mail and reads the code in it.
    /// async fn code_from_mailbox(user: &str) -> Result<String, BoxError> {
    ///     # let _ = user;
    ///     // Poll your mailbox (IMAP, a mail API) here.
    ///     Ok("493817".to_owned())
    /// }
    ///
    /// # fn main() -> Result<(), BoxError> {
    /// let provider = PortSip::new("https://pbx.example.com:8887", "ops", "s3cret")
    ///     .one_time_code(|challenge| async move {
    ///         code_from_mailbox(challenge.username()).await
    ///     })
    ///     .build()?;
    /// let cache = TokenCache::builder(provider).timeout(Duration::from_secs(120)).build();
    /// let layer = BearerAuthLayer::new(cache);
    /// # Ok(())
    /// # }
    /// ```
    pub fn one_time_code<F, Fut, E>(mut self, callback: F) -> Self
    where
        F: Fn(TwoFactorChallenge) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.one_time_code = Some(two_factor::boxed(callback));
        self
    }

    /// The `client_id` sent to the OAuth token endpoint. Defaults to [`PORTSIP_CLIENT_ID`].
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// The scope asked for at the OAuth token endpoint. Defaults to `all`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Whether a token response that states no lifetime takes it from the access token's
    /// `exp` claim when the token is a JWT; see
    /// [`OAuth2ProviderBuilder::expiry_from_jwt`](crate::provider::oauth2::OAuth2ProviderBuilder::expiry_from_jwt).
    /// Nothing is verified.
    ///
    /// Defaults to `true`.
    pub fn expiry_from_jwt(mut self, enabled: bool) -> Self {
        self.expiry_from_jwt = enabled;
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
    pub fn build(self) -> Result<PortSipProvider<HttpClient>, BuildError> {
        self.build_with(HttpClient::new())
    }

    /// Builds the provider, sending its requests through `client`; see [`PortSipProvider`]
    /// for what `client` may be.
    ///
    /// # Errors
    ///
    /// As for [`build`](Self::build).
    pub fn build_with<C>(self, client: C) -> Result<PortSipProvider<C>, BuildError> {
        let base = self.base_url.clone()?;
        check_endpoint(&base, "base", self.allow_insecure_http)?;
        let origin = self.origin();
        let token_url = join(&base, PORTSIP_TOKEN_PATH)?;
        let revoke_url = join(&base, PORTSIP_REVOKE_PATH)?;
        let mut builder = OAuth2Provider::password_secret(
            client,
            token_url,
            &self.username,
            self.password.clone(),
        )
        .client_id(self.client_id)
        .scope(self.scope)
        .revoke_url(revoke_url)
        .revoke_with_bearer(true)
        .revoke_refresh_token(false)
        .expiry_from_jwt(self.expiry_from_jwt)
        .allow_insecure_http(self.allow_insecure_http);
        if let Some(origin) = origin {
            builder = builder.bind_origin(origin);
        }
        if let Some(domain) = &self.domain {
            builder = builder.login_param_secret("domain", domain.clone());
        }
        let sign_in = sign_in::SignIn {
            sign_in_url: join(&base, PORTSIP_SIGN_IN_PATH)?,
            verify_otp_url: join(&base, PORTSIP_VERIFY_OTP_PATH)?,
            refresh_url: join(&base, PORTSIP_REFRESH_PATH)?,
            sign_out_url: join(&base, PORTSIP_SIGN_OUT_PATH)?,
            username: self.username,
            password: self.password,
            domain: self.domain,
            one_time_code: self.one_time_code,
        };
        Ok(PortSipProvider::new(builder.build()?, sign_in, self.api))
    }
}

impl fmt::Debug for PortSip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The base URL's origin only: it may hold user information.
        f.debug_struct("PortSip")
            .field("base_url", &self.base_url.as_ref().ok().map(ShowOrigin))
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("domain", &self.domain.as_ref().map(Secret::expose))
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("api", &self.api)
            .field("one_time_code", &self.one_time_code.is_some())
            .field("expiry_from_jwt", &self.expiry_from_jwt)
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
            assert_eq!(
                provider.sign_in_url(),
                "https://pbx.example.com:8887/api/auth/sign_in"
            );
        }
        let proxied = PortSip::new("https://h/pbx/", "admin", "pw")
            .build_with(())
            .unwrap();
        assert_eq!(proxied.sign_in_url(), "https://h/pbx/api/auth/sign_in");
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
        let p = PortSip::new("https://pbx", "admin", "hunter2")
            .domain("t.example")
            .one_time_code(|_| async { Ok::<_, BoxError>("123456".to_owned()) });
        let out = format!("{p:?}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("one_time_code: true"), "{out}");
        let provider = p.build_with(()).unwrap();
        let out = format!("{provider:?}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains(PORTSIP_CLIENT_ID));
        // URLs show their origin only.
        assert!(out.contains("\"https://pbx:443\""), "{out}");
        assert!(!out.contains("/api/"), "{out}");
    }

    #[test]
    fn the_api_is_automatic_unless_chosen() {
        let pbx = PortSip::new("https://pbx", "admin", "pw");
        let auto = pbx.clone().build_with(()).unwrap();
        assert_eq!(auto.api(), PortSipApi::Auto);
        assert_eq!(auto.chosen_api(), None);
        for api in [PortSipApi::SignIn, PortSipApi::OAuth] {
            let chosen = pbx.clone().api(api).build_with(()).unwrap();
            assert_eq!((chosen.api(), chosen.chosen_api()), (api, Some(api)));
        }
        let names: Vec<_> = [PortSipApi::Auto, PortSipApi::SignIn, PortSipApi::OAuth]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["auto", "sign-in", "oauth"]);
    }
}
