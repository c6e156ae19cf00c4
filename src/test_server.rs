//! An embedded PortSIP-compatible server, for your tests and for demos.
//!
//! [`TestServer`] listens on `127.0.0.1` on a free port and serves, over plain HTTP/1.1:
//!
//! - `POST /api/login/oauth/token`: the password, refresh-token and (when a client secret is
//!   configured) client-credentials grants, with form or JSON bodies. Tokens are random,
//!   short-lived (5 s by default) and refresh tokens are single-use: each refresh returns a
//!   new one. Errors are RFC 6749 §5.2 bodies (`invalid_grant` with status 400 for a wrong
//!   password or refresh token, `invalid_client` with 401 for a wrong client id or secret).
//! - `POST /api/login/oauth/revoke`: revokes the token sent as the `token` field (RFC 7009),
//!   or else as `Authorization: Bearer` (PortSIP's logout). An access token is revoked with
//!   its refresh token; a refresh token alone, whatever `token_type_hint` says.
//! - every other path: a protected resource. A valid bearer token gets `200` and a small JSON
//!   body; a missing, unknown, revoked or expired one gets `401` with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750).
//!
//! [`counts`](TestServer::counts) tells what happened, [`revoke_all`](TestServer::revoke_all)
//! and friends change state on demand, and [`respond_next`](TestServer::respond_next) makes
//! the token endpoint answer with a canned response (a `502` page, an oversized body, an
//! error that [echoes the request](CannedResponse::echo_request)) to test error handling.
//! The server stops when the [`TestServer`] is dropped.
//!
//! It is not a secure server: it keeps everything in memory and compares secrets naively.
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

use std::{
    collections::{HashMap, HashSet, VecDeque},
    convert::Infallible,
    fmt,
    hash::{BuildHasher, RandomState},
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Response, StatusCode,
    header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE},
};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinSet};

use crate::{
    provider::portsip::{PORTSIP_CLIENT_ID, PORTSIP_REVOKE_PATH, PORTSIP_TOKEN_PATH},
    token::Redacted,
};

/// Default token lifetime: 5 seconds.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5);

/// Largest request body the server reads.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// How a [`TestServer`] states a token's lifetime in its token responses.
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
    /// No expiry field at all (the token still expires on the server).
    None,
}

/// The settings a [`TestServer`] starts with.
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
/// ```
#[derive(Clone)]
pub struct TestServerConfig {
    username: String,
    password: String,
    domain: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    lifetime: Duration,
    expiry_format: ExpiryFormat,
    rotate_refresh_tokens: bool,
}

impl TestServerConfig {
    /// A server with one user, `username` with `password`, expecting PortSIP's published
    /// client id, issuing tokens valid for [`DEFAULT_LIFETIME`].
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
        }
    }

    /// The user's tenant: logins must then send this `domain`. Defaults to none (any or no
    /// domain is accepted).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The client id every token request must carry, or `None` to accept any. Defaults to
    /// [`PORTSIP_CLIENT_ID`].
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

    fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs().max(1)
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
            .finish()
    }
}

/// A canned answer for the token endpoint; see [`TestServer::respond_next`].
#[derive(Debug, Clone)]
pub struct CannedResponse {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
    chunked: bool,
    echo: bool,
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

    /// Sends the body with chunked encoding and no `Content-Length`, so a client learns its
    /// size only by reading it.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Makes the response echo the request: each [`ECHO_PLACEHOLDER`] (`{request}`) in the
    /// body is replaced by the body of the request answered, as it arrived (form-encoded,
    /// say), as careless servers quote what they were sent. For testing that error messages
    /// never repeat a password or token.
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

/// A snapshot of a [`TestServer`]'s counters, from [`TestServer::counts`].
///
/// Compare two snapshots, or read one field:
///
/// ```
/// # use tower_bearer_auth::test_server::{TestServer, TestServerConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// # let server = TestServer::start(TestServerConfig::new("admin", "s3cret")).await?;
/// let before = server.counts();
/// // ... nothing reaches the server ...
/// assert_eq!(server.counts(), before);
/// assert_eq!(before.password_grants, 0);
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counts {
    /// Calls to the token endpoint, whatever their outcome.
    pub token_requests: usize,
    /// Password-grant requests, successful or not.
    pub password_grants: usize,
    /// Refresh-token-grant requests, successful or not.
    pub refresh_grants: usize,
    /// Client-credentials-grant requests, successful or not.
    pub client_credentials_grants: usize,
    /// Token requests answered with an error status (canned responses included).
    pub failed_token_requests: usize,
    /// Calls to the revocation endpoint.
    pub revocations: usize,
    /// Calls to the revocation endpoint that revoked a refresh token sent as the `token`
    /// field (RFC 7009 §2.1), the server still honouring it.
    pub refresh_token_revocations: usize,
    /// Requests to protected paths, answered `200` or `401`, and calls to
    /// [`TestServer::authorize`].
    pub api_requests: usize,
    /// Requests to protected paths answered `401`, and calls to [`TestServer::authorize`]
    /// that returned `None`.
    pub unauthorized: usize,
    /// Requests to protected paths (and [`TestServer::authorize`] calls) refused because their
    /// token, issued by this server, had expired (whether or not it was also revoked). A
    /// client that refreshes its tokens ahead of expiry sends none.
    pub expired_token_requests: usize,
    /// Refresh-token grants refused because the refresh token had already been exchanged
    /// (with [rotation](TestServerConfig::rotate_refresh_tokens) on): a client, or a fleet of
    /// clients sharing one login, spent a single-use refresh token twice.
    pub reused_refresh_tokens: usize,
}

/// What the server saw in one token request; secrets left out.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// The `grant_type` field.
    pub grant_type: Option<String>,
    /// The `username` field.
    pub username: Option<String>,
    /// The `domain` field (a PortSIP tenant).
    pub domain: Option<String>,
    /// The client id, from the form or HTTP Basic.
    pub client_id: Option<String>,
    /// The `scope` field.
    pub scope: Option<String>,
    /// Whether the client authenticated with HTTP Basic.
    pub basic_auth: bool,
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The status the server answered with.
    pub status: u16,
}

/// A running embedded PortSIP-compatible server; see the [module documentation](self).
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    token_requests: AtomicUsize,
    password_grants: AtomicUsize,
    refresh_grants: AtomicUsize,
    client_credentials_grants: AtomicUsize,
    failed_token_requests: AtomicUsize,
    revocations: AtomicUsize,
    refresh_token_revocations: AtomicUsize,
    api_requests: AtomicUsize,
    unauthorized: AtomicUsize,
    expired_token_requests: AtomicUsize,
    reused_refresh_tokens: AtomicUsize,
    next_id: AtomicU64,
}

struct State {
    config: TestServerConfig,
    access: HashMap<String, Access>,
    refresh: HashMap<String, String>,
    canned: VecDeque<CannedResponse>,
    log: Vec<TokenRequestRecord>,
    /// When each access token ever issued expires, kept after it is revoked, so that
    /// [`Counts::expired_token_requests`] counts expired tokens that were also revoked.
    expiry: HashMap<String, Instant>,
    /// Refresh tokens already exchanged (with rotation on).
    spent: HashSet<String>,
    /// How long the token endpoint waits before answering.
    token_delay: Duration,
}

struct Access {
    expires: Instant,
    username: String,
    refresh_token: Option<String>,
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
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                config,
                access: HashMap::new(),
                refresh: HashMap::new(),
                canned: VecDeque::new(),
                log: Vec::new(),
                expiry: HashMap::new(),
                spent: HashSet::new(),
                token_delay: Duration::ZERO,
            }),
            token_requests: AtomicUsize::new(0),
            password_grants: AtomicUsize::new(0),
            refresh_grants: AtomicUsize::new(0),
            client_credentials_grants: AtomicUsize::new(0),
            failed_token_requests: AtomicUsize::new(0),
            revocations: AtomicUsize::new(0),
            refresh_token_revocations: AtomicUsize::new(0),
            api_requests: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
            expired_token_requests: AtomicUsize::new(0),
            reused_refresh_tokens: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        });
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
        let shared = &*self.shared;
        let load = |counter: &AtomicUsize| counter.load(Ordering::SeqCst);
        Counts {
            token_requests: load(&shared.token_requests),
            password_grants: load(&shared.password_grants),
            refresh_grants: load(&shared.refresh_grants),
            client_credentials_grants: load(&shared.client_credentials_grants),
            failed_token_requests: load(&shared.failed_token_requests),
            revocations: load(&shared.revocations),
            refresh_token_revocations: load(&shared.refresh_token_revocations),
            api_requests: load(&shared.api_requests),
            unauthorized: load(&shared.unauthorized),
            expired_token_requests: load(&shared.expired_token_requests),
            reused_refresh_tokens: load(&shared.reused_refresh_tokens),
        }
    }

    /// Makes the token endpoint wait `delay` before answering each request (the request is
    /// counted at once; refresh tokens are spent when the answer is made).
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared.lock().token_delay = delay;
    }

    /// What each token request carried, oldest first (no passwords, secrets or tokens).
    pub fn token_request_log(&self) -> Vec<TokenRequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Access tokens currently valid.
    pub fn live_tokens(&self) -> usize {
        let now = Instant::now();
        let state = self.shared.lock();
        state.access.values().filter(|a| a.expires > now).count()
    }

    /// Revokes every access and refresh token: the next API request gets `401`, the next
    /// refresh `invalid_grant`.
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

    /// Makes the token endpoint answer its next request with `response`, whatever the
    /// request. Calls queue up: each canned response is used once, in order.
    pub fn respond_next(&self, response: CannedResponse) {
        self.shared.lock().canned.push_back(response);
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

impl Shared {
    /// Checks a request to a protected resource, and counts it.
    fn authorize(&self, authorization: Option<&str>) -> Option<String> {
        self.api_requests.fetch_add(1, Ordering::SeqCst);
        let user = authorization.and_then(bearer_token).and_then(|token| {
            let now = Instant::now();
            let state = self.lock();
            match state.access.get(token) {
                Some(access) if access.expires > now => Some(access.username.clone()),
                _ => {
                    if state.expiry.get(token).is_some_and(|e| *e <= now) {
                        self.expired_token_requests.fetch_add(1, Ordering::SeqCst);
                    }
                    None
                }
            }
        });
        if user.is_none() {
            self.unauthorized.fetch_add(1, Ordering::SeqCst);
        }
        user
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_token(&self, prefix: &str) -> String {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let random = RandomState::new();
        format!(
            "{prefix}{:016X}{:016X}",
            random.hash_one(id),
            random.hash_one(id.wrapping_add(1))
        )
    }
}

impl State {
    fn revoke(&mut self, access_token: &str) -> bool {
        match self.access.remove(access_token) {
            Some(access) => {
                if let Some(rt) = access.refresh_token {
                    self.refresh.remove(&rt);
                }
                true
            }
            None => false,
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The server's response body: in one piece with a known length, or of unknown length.
#[derive(Debug)]
struct ServerBody {
    data: Option<Bytes>,
    chunked: bool,
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.data, self.chunked) {
            (_, true) => SizeHint::default(),
            (Some(d), false) => SizeHint::with_exact(d.len() as u64),
            (None, false) => SizeHint::with_exact(0),
        }
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<ServerBody> {
    let mut response = Response::new(ServerBody {
        data: Some(Bytes::from(body.to_string())),
        chunked: false,
    });
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<ServerBody> {
    respond(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::POST, PORTSIP_TOKEN_PATH) => token_endpoint(shared, req).await,
        (&Method::POST, PORTSIP_REVOKE_PATH) => revoke_endpoint(shared, req).await,
        (_, PORTSIP_TOKEN_PATH | PORTSIP_REVOKE_PATH) => oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "use POST",
        ),
        _ => protected(shared, &req, &path),
    }
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    bearer_token(value).map(str::to_owned)
}

fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn protected(shared: &Shared, req: &Request<Incoming>, path: &str) -> Response<ServerBody> {
    let authorization = req.headers().get(AUTHORIZATION);
    match shared.authorize(authorization.and_then(|v| v.to_str().ok())) {
        Some(user) => respond(StatusCode::OK, &json!({ "path": path, "username": user })),
        None => {
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is missing, unknown or expired",
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            response
        }
    }
}

/// Reads a form or JSON body into name-value pairs.
async fn read_fields(req: Request<Incoming>) -> Option<HashMap<String, String>> {
    let json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    if json {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) else {
            return None;
        };
        Some(
            map.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
        )
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .ok()
            .map(|pairs| pairs.into_iter().collect())
    }
}

async fn token_endpoint(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    let delay = shared.lock().token_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let canned = shared.lock().canned.pop_front();
    if let Some(canned) = canned {
        if !canned.status.is_success() {
            shared.failed_token_requests.fetch_add(1, Ordering::SeqCst);
        }
        let body = if canned.echo {
            let request = Limited::new(req.into_body(), MAX_REQUEST_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let template = String::from_utf8_lossy(&canned.body);
            let echoed = template.replace(ECHO_PLACEHOLDER, &String::from_utf8_lossy(&request));
            Bytes::from(echoed)
        } else {
            canned.body
        };
        let mut response = Response::new(ServerBody {
            data: Some(body),
            chunked: canned.chunked,
        });
        *response.status_mut() = canned.status;
        if let Some(ct) = canned.content_type {
            response.headers_mut().insert(CONTENT_TYPE, ct);
        }
        return response;
    }

    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fields = read_fields(req).await;
    let mut record = TokenRequestRecord {
        grant_type: None,
        username: None,
        domain: None,
        client_id: None,
        scope: None,
        basic_auth: false,
        content_type,
        status: 0,
    };
    let response = match fields {
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not a form or a JSON object",
        ),
        Some(fields) => grant(shared, &fields, authorization.as_deref(), &mut record),
    };
    record.status = response.status().as_u16();
    if !response.status().is_success() {
        shared.failed_token_requests.fetch_add(1, Ordering::SeqCst);
    }
    shared.lock().log.push(record);
    response
}

fn grant(
    shared: &Shared,
    fields: &HashMap<String, String>,
    authorization: Option<&str>,
    record: &mut TokenRequestRecord,
) -> Response<ServerBody> {
    let field = |name: &str| fields.get(name).cloned();
    record.grant_type = field("grant_type");
    record.username = field("username");
    record.domain = field("domain");
    record.scope = field("scope");
    let config = shared.lock().config.clone();

    // Client authentication: HTTP Basic, or form fields.
    let mut client_id = field("client_id");
    let mut client_secret = field("client_secret");
    if let Some(basic) = authorization.and_then(|a| a.strip_prefix("Basic ")) {
        record.basic_auth = true;
        let decoded = crate::provider::oauth2::decode_basic(basic);
        let Some((id, secret)) = decoded else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "malformed basic credentials",
            );
        };
        client_id = Some(id);
        client_secret = Some(secret);
    }
    record.client_id = client_id.clone();
    if let Some(expected) = &config.client_id {
        if client_id.as_ref() != Some(expected) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client_id",
            );
        }
    }
    if client_secret.is_some() && client_secret != config.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "wrong client secret",
        );
    }

    let mut state = shared.lock();
    match record.grant_type.as_deref() {
        Some("password") => {
            shared.password_grants.fetch_add(1, Ordering::SeqCst);
            let tenant_ok = config.domain.is_none() || record.domain == config.domain;
            if field("username").as_ref() != Some(&config.username)
                || field("password").as_ref() != Some(&config.password)
                || !tenant_ok
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "invalid username or password",
                );
            }
            issue(
                shared,
                &mut state,
                &config,
                config.username.clone(),
                Refresh::New,
            )
        }
        Some("refresh_token") => {
            shared.refresh_grants.fetch_add(1, Ordering::SeqCst);
            let token = field("refresh_token").unwrap_or_default();
            let Some(username) = state.refresh.get(&token).cloned() else {
                if state.spent.contains(&token) {
                    shared.reused_refresh_tokens.fetch_add(1, Ordering::SeqCst);
                }
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the refresh token is invalid, expired or already used",
                );
            };
            if config.rotate_refresh_tokens {
                state.refresh.remove(&token);
                state.spent.insert(token.clone());
                // Access tokens issued with it stay valid until they expire.
                for access in state.access.values_mut() {
                    if access.refresh_token.as_deref() == Some(token.as_str()) {
                        access.refresh_token = None;
                    }
                }
                issue(shared, &mut state, &config, username, Refresh::New)
            } else {
                issue(shared, &mut state, &config, username, Refresh::Keep(token))
            }
        }
        Some("client_credentials") => {
            shared
                .client_credentials_grants
                .fetch_add(1, Ordering::SeqCst);
            if config.client_secret.is_none() || client_secret.is_none() {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    "this client may not use the client_credentials grant",
                );
            }
            let user = client_id.unwrap_or_default();
            issue(shared, &mut state, &config, user, Refresh::None)
        }
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "the grant type is not supported",
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is missing",
        ),
    }
}

/// What refresh token goes with a new access token.
enum Refresh {
    /// A new one, sent in the response.
    New,
    /// The one just used, still valid and not sent again.
    Keep(String),
    /// None.
    None,
}

/// Issues an access token (and maybe a refresh token) and builds the token response.
fn issue(
    shared: &Shared,
    state: &mut State,
    config: &TestServerConfig,
    username: String,
    refresh: Refresh,
) -> Response<ServerBody> {
    let secs = config.lifetime_secs();
    let access_token = shared.new_token("AT");
    let (refresh_token, send) = match refresh {
        Refresh::New => (Some(shared.new_token("RT")), true),
        Refresh::Keep(rt) => (Some(rt), false),
        Refresh::None => (None, false),
    };
    if let Some(rt) = &refresh_token {
        state.refresh.insert(rt.clone(), username.clone());
    }
    let expires = Instant::now() + Duration::from_secs(secs);
    state.expiry.insert(access_token.clone(), expires);
    state.access.insert(
        access_token.clone(),
        Access {
            expires,
            username,
            refresh_token: refresh_token.clone(),
        },
    );
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "scope": "all",
    });
    if let (Some(rt), true) = (refresh_token, send) {
        body["refresh_token"] = Value::String(rt);
    }
    let expires_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + secs;
    match config.expiry_format {
        ExpiryFormat::ExpiresIn => body["expires_in"] = json!(secs),
        ExpiryFormat::ExpiresInString => body["expires_in"] = json!(secs.to_string()),
        ExpiryFormat::ExpiresAt => body["expires_at"] = json!(expires_at),
        ExpiryFormat::ExpiresAtRfc3339 => body["expires_at"] = json!(rfc3339(expires_at)),
        ExpiryFormat::None => {}
    }
    let mut response = respond(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn revoke_endpoint(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    shared.revocations.fetch_add(1, Ordering::SeqCst);
    let header_token = bearer(&req);
    let fields = read_fields(req).await.unwrap_or_default();
    // RFC 7009 names the token in the body; PortSIP's logout sends only the bearer token.
    let token = fields.get("token").cloned().or(header_token);
    let Some(token) = token else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no token to revoke",
        );
    };
    // RFC 7009 §2.2: an unknown token is not an error. The hint only says where to look first.
    let mut state = shared.lock();
    if !state.revoke(&token) && state.refresh.remove(&token).is_some() {
        shared
            .refresh_token_revocations
            .fetch_add(1, Ordering::SeqCst);
    }
    drop(state);
    respond(StatusCode::OK, &json!({}))
}

/// Unix seconds as an RFC 3339 UTC time.
fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(2_000_000_000), "2033-05-18T03:33:20Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[tokio::test]
    async fn authorize_checks_and_counts_like_a_protected_request() {
        let server = TestServer::start(TestServerConfig::new("alice", "pw"))
            .await
            .unwrap();
        let now = Instant::now();
        for (token, expires) in [("live", now + Duration::from_secs(60)), ("old", now)] {
            let mut state = server.shared.lock();
            let access = Access {
                expires,
                username: "alice".into(),
                refresh_token: None,
            };
            state.access.insert(token.into(), access);
            state.expiry.insert(token.into(), expires);
        }
        assert_eq!(
            server.authorize(Some("Bearer live")).as_deref(),
            Some("alice")
        );
        assert_eq!(
            server.authorize(Some("bearer live")).as_deref(),
            Some("alice")
        );
        assert_eq!(server.authorize(Some("Bearer old")), None);
        assert_eq!(server.authorize(Some("Bearer unknown")), None);
        assert_eq!(server.authorize(Some("Basic live")), None);
        assert_eq!(server.authorize(None), None);
        let counts = server.counts();
        assert_eq!(counts.api_requests, 6);
        assert_eq!(counts.unauthorized, 4);
        assert_eq!(counts.expired_token_requests, 1);
        assert_eq!(
            counts,
            Counts {
                api_requests: 6,
                unauthorized: 4,
                expired_token_requests: 1,
                ..Counts::default()
            }
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let config = TestServerConfig::new("u", "hunter2").client_secret("s3cr3t");
        let out = format!("{config:?}");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
    }
}
