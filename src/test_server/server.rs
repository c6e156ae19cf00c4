//! [`TestServer`]: starting the server, and what its owner reads from it or changes on it
//! while it runs.

use std::{fmt, io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use super::{
    config::{CannedResponse, ExpiryFormat, TestServerConfig},
    counts::{Counts, TokenRequestRecord},
    outage::{Outage, Paths},
    route::accept_loop,
    state::Shared,
};

/// A running embedded PortSIP-compatible server; see the [module documentation](super).
///
/// Every method takes `&self` and the server is `Send` and `Sync`: share it with an `Arc` to
/// change it from a spawned task (end an [outage](Self::set_token_outage), say).
pub struct TestServer {
    addr: SocketAddr,
    pub(super) shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server on `127.0.0.1` on a free port. Needs a Tokio runtime.
    ///
    /// # Errors
    ///
    /// Fails when no port can be bound.
    pub async fn start(config: TestServerConfig) -> io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, such as `http://127.0.0.1:41234`, to give to
    /// [`PortSip::new`](crate::provider::portsip::PortSip::new).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The counters, as they stand: what the server has seen so far.
    pub fn counts(&self) -> Counts {
        self.shared.counters.snapshot()
    }

    /// Makes every token request, on either API, wait `delay` before it is answered (the
    /// request is counted when it arrives; refresh tokens are spent when the answer is made).
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared.lock().token_delay = delay;
    }

    /// What each token request carried, oldest first (no passwords, secrets or tokens): the
    /// last [`MAX_LOG_RECORDS`](super::MAX_LOG_RECORDS) requests.
    pub fn token_request_log(&self) -> Vec<TokenRequestRecord> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Access tokens currently valid.
    pub fn live_tokens(&self) -> usize {
        let now = std::time::Instant::now();
        let state = self.shared.lock();
        state.access.values().filter(|a| a.expires > now).count()
    }

    /// Revokes every access and refresh token: the next API request gets `401`, the next
    /// refresh `invalid_grant` (or PortSIP's `UNAUTHORIZED`).
    pub fn revoke_all(&self) {
        let mut state = self.shared.lock();
        state.access.clear();
        state.refresh.clear();
    }

    /// Revokes every refresh token but leaves access tokens valid: the next refresh gets
    /// `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.lock().refresh.clear();
    }

    /// Revokes one access token (and its refresh token). Returns whether it was known.
    pub fn revoke_token(&self, access_token: &str) -> bool {
        self.shared.lock().revoke(access_token)
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.shared.lock().config.lifetime = lifetime;
    }

    /// Changes the user's password; tokens already issued stay valid.
    pub fn set_password(&self, password: impl Into<String>) {
        self.shared.lock().config.password = password.into();
    }

    /// Changes how token responses state the lifetime.
    pub fn set_expiry_format(&self, format: ExpiryFormat) {
        self.shared.lock().config.expiry_format = format;
    }

    /// Changes whether refreshes rotate the refresh token.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.shared.lock().config.rotate_refresh_tokens = rotate;
    }

    /// Checks an `Authorization` header value as the server checks a request to a protected
    /// path, and counts it the same way (in [`Counts::api_requests`],
    /// [`Counts::unauthorized`] and [`Counts::expired_token_requests`]). Returns the user the bearer
    /// token was issued to, or `None` when the header is missing or not `Bearer`, or the token
    /// is unknown, revoked or expired.
    ///
    /// For a protected service of your own that takes this server's tokens: a gRPC server in
    /// a test, say.
    pub fn authorize(&self, authorization: Option<&str>) -> Option<String> {
        self.shared.authorize(authorization)
    }

    /// Makes the next token request, on either API (the OAuth token endpoint, or the sign-in
    /// API's `sign_in`, `verify_otp` or `refresh_token`), be answered with `response`,
    /// whatever it asked. Calls queue up: each canned response is used once, in order, after
    /// any [outage](Self::set_token_outage) ends. A request answered so is counted when it
    /// arrives, as every token request is (in [`Counts::token_requests`] and its grant's
    /// counter), and, with an error status, in [`Counts::failed_token_requests`];
    /// [`clear_queued_responses`](Self::clear_queued_responses) drops those not used yet.
    pub fn respond_next(&self, response: CannedResponse) {
        self.shared.lock().canned.push_back(response);
    }
}

/// The switches that make the server fail. `TestServer` is `Send` and `Sync` and every method
/// takes `&self`, so an `Arc<TestServer>` lets a spawned task end an outage.
impl TestServer {
    /// Switches an outage of the token endpoint on (`Some`) or off (`None`): token requests on
    /// either login API (the OAuth token endpoint, `sign_in`, `verify_otp`, `refresh_token`)
    /// are answered as `outage` says until it is switched off or changed. Revocation and
    /// sign-out are not affected. A request that arrives during an outage is counted as any
    /// token request (see [`Counts`](super::Counts)).
    ///
    /// An outage comes before a [canned response](Self::respond_next), which stays queued.
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use tower_bearer_auth::test_server::{Outage, TestServer, TestServerConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
    /// let server = Arc::new(TestServer::start(TestServerConfig::new("admin", "s3cret")).await?);
    /// // The token endpoint is down for two seconds.
    /// server.set_token_outage(Some(Outage::Unavailable));
    /// let healer = Arc::clone(&server);
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_secs(2)).await;
    ///     healer.set_token_outage(None);
    /// });
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_token_outage(&self, outage: Option<Outage>) {
        self.shared
            .outages
            .send_modify(|o| o.set(Paths::Token, outage));
    }

    /// Switches an outage of the API paths (every path but the login APIs') on (`Some`) or
    /// off (`None`), until switched off or changed. Requests answered by it are counted in
    /// [`Counts::failed_api_requests`](super::Counts::failed_api_requests), not in
    /// `api_requests`; a request held by [`Outage::Hang`] is counted when it is answered.
    pub fn set_api_outage(&self, outage: Option<Outage>) {
        self.shared
            .outages
            .send_modify(|o| o.set(Paths::Api, outage));
    }

    /// Makes the next request to an API path be answered with `response` whatever its token,
    /// so that a retry middleware can be tested: `500`, `502`, `503`, or `429` with
    /// `Retry-After`. Calls queue up: each response is used once, in order, after any
    /// [API outage](Self::set_api_outage) ends. A request answered so is counted in
    /// [`Counts::failed_api_requests`](super::Counts::failed_api_requests) only.
    /// [`echo_request`](CannedResponse::echo_request) has no effect here.
    ///
    /// ```
    /// use http::{StatusCode, header::RETRY_AFTER, HeaderValue};
    /// use tower_bearer_auth::test_server::{CannedResponse, TestServer, TestServerConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
    /// let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
    /// server.respond_next_api(CannedResponse::new(StatusCode::BAD_GATEWAY, "bad gateway"));
    /// server.respond_next_api(
    ///     CannedResponse::new(StatusCode::TOO_MANY_REQUESTS, "")
    ///         .header(RETRY_AFTER, HeaderValue::from_static("1")),
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn respond_next_api(&self, response: CannedResponse) {
        self.shared.lock().api_canned.push_back(response);
    }

    /// Drops every queued response, those for token requests
    /// ([`respond_next`](Self::respond_next)) and those for the API paths
    /// ([`respond_next_api`](Self::respond_next_api)).
    pub fn clear_queued_responses(&self) {
        let mut state = self.shared.lock();
        state.canned.clear();
        state.api_canned.clear();
    }
}

impl TestServer {
    /// Makes `path`, and every path below it, require `scope` (one scope or several,
    /// separated by spaces, all required): a request whose valid token was not granted it
    /// gets `403 Forbidden` with `WWW-Authenticate: Bearer error="insufficient_scope",
    /// scope="…"` (RFC 6750 §3.1). Calls add up: a path under several prefixes needs each one's
    /// scope.
    ///
    /// A token is granted the scope its OAuth token request asked for (the `scope` field), or
    /// [`DEFAULT_SCOPE`](super::DEFAULT_SCOPE) if it asked for none; a refreshed token keeps
    /// its refresh token's scope; a token of the sign-in API has
    /// [`DEFAULT_SCOPE`](super::DEFAULT_SCOPE). No path requires a scope by default. Scopes
    /// are granted as asked: the server refuses none.
    ///
    /// ```
    /// use tower_bearer_auth::test_server::{TestServer, TestServerConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
    /// server.require_scope("/api/orders", "orders:write");
    /// # Ok(())
    /// # }
    /// ```
    pub fn require_scope(&self, path: impl Into<String>, scope: impl Into<String>) {
        let mut state = self.shared.lock();
        state.scopes.require(path.into(), scope.into());
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its `JoinSet`, which aborts every connection.
        self.accept.abort();
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("config", &self.shared.lock().config)
            .finish_non_exhaustive()
    }
}
