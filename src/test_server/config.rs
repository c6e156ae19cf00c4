//! What a [`TestServer`](super::TestServer) starts with: [`TestServerConfig`], and the
//! [`CannedResponse`]s it can be told to answer with.

use std::{fmt, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use crate::{provider::portsip::PORTSIP_CLIENT_ID, token::Redacted};

/// Default token lifetime: 5 seconds.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5);

/// Default time a connection may take to send a request's head (or stay idle between
/// requests) before the server closes it: 10 seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`TestServer`](super::TestServer) states a token's lifetime in its token responses.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpiryFormat {
    /// `"expires_in": 5`. The default.
    #[default]
    ExpiresIn,
    /// `"expires_in": "5"`, a number in a string.
    ExpiresInString,
    /// `"expires_at": 1767225600`, Unix seconds.
    ExpiresAt,
    /// `"expires_at": "2026-01-01T00:00:00Z"`, RFC 3339.
    ExpiresAtRfc3339,
    /// `"expires_at": 1767225600000`, Unix milliseconds.
    ExpiresAtMillis,
    /// No expiry field at all (the token still expires on the server).
    None,
    /// No expiry field, and the access token is an unsigned JWT (`alg: none`) whose `exp`
    /// claim holds the expiry.
    Jwt,
}

/// The settings a [`TestServer`](super::TestServer) starts with.
///
/// By default the server is like a v22.3 PBX: it serves both the sign-in API and the OAuth
/// token endpoint, and the user has no two-factor sign-in.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_auth::test_server::TestServerConfig;
///
/// let config = TestServerConfig::new("alice", "p&ss=w0rd ü")
///     .domain("tenant.example.com")
///     .lifetime(Duration::from_secs(2));
/// // A v22 PBX without the OAuth token endpoint, and a user with two-factor sign-in.
/// let v22 = TestServerConfig::new("alice", "pw")
///     .oauth_api(false)
///     .two_factor("493817");
/// ```
#[derive(Clone)]
pub struct TestServerConfig {
    pub(super) username: String,
    pub(super) password: String,
    pub(super) domain: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) lifetime: Duration,
    pub(super) expiry_format: ExpiryFormat,
    pub(super) rotate_refresh_tokens: bool,
    pub(super) sign_in_api: bool,
    pub(super) oauth_api: bool,
    pub(super) two_factor_code: Option<String>,
    pub(super) portsip_error_bodies: bool,
    pub(super) header_read_timeout: Duration,
}

impl TestServerConfig {
    /// A server with one user, `username` with `password`, expecting PortSIP's published
    /// client id at the OAuth token endpoint, issuing tokens valid for [`DEFAULT_LIFETIME`],
    /// serving both APIs.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            domain: None,
            client_id: Some(PORTSIP_CLIENT_ID.to_owned()),
            client_secret: None,
            lifetime: DEFAULT_LIFETIME,
            expiry_format: ExpiryFormat::default(),
            rotate_refresh_tokens: true,
            sign_in_api: true,
            oauth_api: true,
            two_factor_code: None,
            portsip_error_bodies: false,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }

    /// The user's tenant: logins must then send this `domain`. Defaults to none (any or no
    /// domain is accepted).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The client id every request to the OAuth token endpoint must carry, or `None` to
    /// accept any. Defaults to [`PORTSIP_CLIENT_ID`]. The sign-in API takes no client id.
    pub fn client_id(mut self, client_id: Option<String>) -> Self {
        self.client_id = client_id;
        self
    }

    /// A client secret: enables the client-credentials grant, for the configured client id,
    /// with the secret sent by HTTP Basic or in the form. Defaults to none.
    pub fn client_secret(mut self, client_secret: impl Into<String>) -> Self {
        self.client_secret = Some(client_secret.into());
        self
    }

    /// How long access tokens live, in whole seconds (at least one). Defaults to
    /// [`DEFAULT_LIFETIME`].
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How token responses state the lifetime. Defaults to [`ExpiryFormat::ExpiresIn`].
    pub fn expiry_format(mut self, format: ExpiryFormat) -> Self {
        self.expiry_format = format;
        self
    }

    /// Whether each refresh returns a new refresh token and retires the old one. When
    /// `false`, refresh responses carry no refresh token and the old one stays valid.
    /// Defaults to `true`.
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Whether the sign-in API is served (`/api/auth/sign_in`, `refresh_token`, `verify_otp`
    /// and `sign_out`). When `false` its paths answer `404`, as on a PBX older than v22.2.11.
    /// Defaults to `true`.
    pub fn sign_in_api(mut self, serve: bool) -> Self {
        self.sign_in_api = serve;
        self
    }

    /// Whether the OAuth token endpoint is served (`/api/login/oauth/token` and `revoke`).
    /// When `false` its paths answer `404`, as on a v22 PBX that serves only the sign-in API.
    /// Defaults to `true`.
    pub fn oauth_api(mut self, serve: bool) -> Self {
        self.oauth_api = serve;
        self
    }

    /// Turns two-factor sign-in on for the user, with `code` as the one-time code it would
    /// have e-mailed: a sign-in then answers `{"two_factor_enabled": true, "token": "…"}`
    /// instead of tokens, and `POST /api/auth/verify_otp` with that session token and `code`
    /// finishes it. Defaults to off.
    ///
    /// Only the sign-in API asks for the code; the OAuth token endpoint's password grant,
    /// which has no step for it, is not changed (what a PBX does there is not documented).
    pub fn two_factor(mut self, code: impl Into<String>) -> Self {
        self.two_factor_code = Some(code.into());
        self
    }

    /// Whether the OAuth token endpoint's failures carry PortSIP's error bodies,
    /// `{"errors": [{"code", "message", "detail"}]}` (a wrong password: `400` with code
    /// `UNAUTHORIZED` and message `Login failed, authentication error`), instead of
    /// RFC 6749 §5.2 bodies. Defaults to `false`. The sign-in API always answers failures
    /// with PortSIP's error bodies.
    pub fn portsip_error_bodies(mut self, enabled: bool) -> Self {
        self.portsip_error_bodies = enabled;
        self
    }

    /// How long a connection may take to send a request's head, and stay idle between two
    /// requests, before the server closes it, so that a stuck client does not hold a
    /// connection for ever. Defaults to [`DEFAULT_HEADER_READ_TIMEOUT`], 10 seconds.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    pub(super) fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs().max(1)
    }

    /// Whether a login with these fields is the user's.
    pub(super) fn accepts(
        &self,
        username: Option<&str>,
        password: Option<&str>,
        domain: Option<&str>,
    ) -> bool {
        let tenant_ok = self.domain.is_none() || domain == self.domain.as_deref();
        username == Some(self.username.as_str())
            && password == Some(self.password.as_str())
            && tenant_ok
    }
}

impl fmt::Debug for TestServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServerConfig")
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("domain", &self.domain)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| Redacted),
            )
            .field("lifetime", &self.lifetime)
            .field("expiry_format", &self.expiry_format)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("sign_in_api", &self.sign_in_api)
            .field("oauth_api", &self.oauth_api)
            .field(
                "two_factor_code",
                &self.two_factor_code.as_ref().map(|_| Redacted),
            )
            .field("portsip_error_bodies", &self.portsip_error_bodies)
            .field("header_read_timeout", &self.header_read_timeout)
            .finish()
    }
}

/// A canned answer for the next token request, or the next request to an API path; see
/// [`TestServer::respond_next`](super::TestServer::respond_next) and
/// [`TestServer::respond_next_api`](super::TestServer::respond_next_api).
#[derive(Debug, Clone)]
pub struct CannedResponse {
    pub(super) status: StatusCode,
    pub(super) content_type: Option<HeaderValue>,
    pub(super) body: Bytes,
    pub(super) chunked: bool,
    pub(super) echo: bool,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
}

/// What [`CannedResponse::echo_request`] replaces with the request's body.
pub const ECHO_PLACEHOLDER: &str = "{request}";

impl CannedResponse {
    /// A response with `status` and `body`, sent with a `Content-Length` and no
    /// `Content-Type`.
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type: None,
            body: body.into(),
            chunked: false,
            echo: false,
            headers: Vec::new(),
        }
    }

    /// A JSON response: `body` with `Content-Type: application/json`.
    pub fn json(status: StatusCode, body: &Value) -> Self {
        Self::new(status, body.to_string()).content_type("application/json")
    }

    /// Sets the `Content-Type`. Invalid header values are ignored.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = HeaderValue::from_str(content_type).ok();
        self
    }

    /// Adds a header, such as `Retry-After` to a `429` or `503`. Called again with the same
    /// name, it adds another value.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sends the body with chunked encoding and no `Content-Length`, so a client learns its
    /// size only by reading it.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Makes the response echo the request: each [`ECHO_PLACEHOLDER`] (`{request}`) in the
    /// body is replaced by the body of the request answered, as it arrived (form-encoded or
    /// JSON, say), as careless servers quote what they were sent. For testing that error
    /// messages never repeat a password or token.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_bearer_auth::test_server::CannedResponse;
    ///
    /// let echo = CannedResponse::new(StatusCode::BAD_REQUEST, "cannot parse: {request}")
    ///     .echo_request();
    /// ```
    pub fn echo_request(mut self) -> Self {
        self.echo = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let config = TestServerConfig::new("u", "hunter2").client_secret("s3cr3t");
        let out = format!("{config:?}");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
    }
}
