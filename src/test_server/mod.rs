//! An embedded PortSIP-compatible server, for your tests and for demos.
//!
//! [`TestServer`] listens on `127.0.0.1` on a free port and serves, over plain HTTP/1.1, the
//! two login APIs of a v22.3 PBX and a protected resource:
//!
//! - The sign-in API (PortSIP v22.2.11 and later), JSON bodies:
//!   - `POST /api/auth/sign_in`, `{"username", "password", "domain"?}`: the tokens,
//!     `{"token_type", "access_token", "refresh_token", "expires_in"}`; or, with
//!     [two-factor sign-in](TestServerConfig::two_factor) on for the user,
//!     `{"two_factor_enabled": true, "token": "…"}`, a session token for
//!   - `POST /api/auth/verify_otp`, `{"token", "code"}`: the tokens, when the code is right;
//!   - `POST /api/auth/refresh_token`, `{"refresh_token"}`: new tokens;
//!   - `POST /api/auth/sign_out` with the bearer token: ends its session.
//!
//!   Its failures are PortSIP's error bodies, `{"errors": [{"code", "message", "detail"}]}`
//!   (`400` with code `UNAUTHORIZED` for a wrong password, refresh token or one-time code).
//! - The OAuth token endpoint:
//!   - `POST /api/login/oauth/token`: the password, refresh-token and (when a client secret
//!     is configured) client-credentials grants, with form or JSON bodies. Errors are
//!     RFC 6749 §5.2 bodies (`invalid_grant` with status 400 for a wrong password or refresh
//!     token, `invalid_client` with 401 for a wrong client id or secret), or PortSIP's error
//!     bodies with [`portsip_error_bodies`](TestServerConfig::portsip_error_bodies).
//!   - `POST /api/login/oauth/revoke`: revokes the token sent as the `token` field
//!     (RFC 7009), or else as `Authorization: Bearer` (PortSIP's logout). An access token is
//!     revoked with its refresh token; a refresh token alone, whatever `token_type_hint` says.
//! - every other path: a protected resource. A valid bearer token gets `200` and a small JSON
//!   body; a missing, unknown, revoked or expired one gets `401` with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750), and one without the scope
//!   the path [requires](TestServer::require_scope) gets `403` with
//!   `error="insufficient_scope"`.
//!
//! Either API can be switched off ([`sign_in_api`](TestServerConfig::sign_in_api),
//! [`oauth_api`](TestServerConfig::oauth_api)): its paths then answer `404`, as on a PBX
//! before v22.2.11 or a v22 PBX without the OAuth endpoint. Both APIs share the tokens: they
//! are random, short-lived (5 s by default), and refresh tokens are single-use: each refresh
//! returns a new one.
//!
//! [`counts`](TestServer::counts) tells what happened, endpoint by endpoint,
//! [`revoke_all`](TestServer::revoke_all) and friends change state on demand, and
//! [`respond_next`](TestServer::respond_next) makes the next token request answer with a
//! canned response (a `502` page, an oversized body, an error that
//! [echoes the request](CannedResponse::echo_request)) to test error handling. Outages
//! ([`set_token_outage`](TestServer::set_token_outage),
//! [`set_api_outage`](TestServer::set_api_outage)) make the token endpoint or the API paths
//! close connections, answer `503`, or hang, until switched off (from a spawned task too:
//! share the server with an `Arc`), and [`respond_next_api`](TestServer::respond_next_api)
//! queues answers for the API paths (`500`, `502`, `503`, `429` with `Retry-After`) to test a
//! retry middleware. The server stops when the [`TestServer`] is dropped.
//!
//! It is not a secure server: it keeps everything in memory and compares secrets naively. It
//! does keep itself small, for long runs in shared CI: a connection that sends no request head
//! within [`header_read_timeout`](TestServerConfig::header_read_timeout) (10 seconds by
//! default; idle keep-alive connections too) is closed, and it remembers at most
//! [`MAX_TOKENS`] tokens of each kind and [`MAX_LOG_RECORDS`] request records, forgetting the
//! oldest first (a client whose token was forgotten gets `401` and logs in again).
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
    collections::VecDeque,
    fmt,
    hash::{BuildHasher, RandomState},
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Response, StatusCode,
    header::{AUTHORIZATION, WWW_AUTHENTICATE},
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::{net::TcpListener, task::JoinSet};

use crate::provider::portsip::{
    PORTSIP_REFRESH_PATH, PORTSIP_REVOKE_PATH, PORTSIP_SIGN_IN_PATH, PORTSIP_SIGN_OUT_PATH,
    PORTSIP_TOKEN_PATH, PORTSIP_VERIFY_OTP_PATH,
};

mod answer;
mod bounded;
mod config;
mod counts;
mod fields;
mod oauth;
mod outage;
mod scopes;
mod sign_in;
mod tokens;

use answer::{Api, Failure, ServerBody, oauth_error, respond};
use bounded::Bounded;
pub use config::{
    CannedResponse, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_LIFETIME, ECHO_PLACEHOLDER, ExpiryFormat,
    TestServerConfig,
};
use counts::{Counters, bump};
pub use counts::{Counts, TokenRequestRecord};
use fields::{Received, is_json, parse_fields, read_fields};
pub use outage::Outage;
use outage::{Outages, canned_response, refuse_marked};
pub use scopes::DEFAULT_SCOPE;

/// Largest request body the server reads.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// The most access tokens, refresh tokens, spent refresh tokens, expiry records and
/// two-factor sessions the server keeps, each: beyond it, the oldest go first.
pub const MAX_TOKENS: usize = 4096;

/// The most records [`TestServer::token_request_log`] keeps: beyond it, the oldest go first.
pub const MAX_LOG_RECORDS: usize = 1024;

/// A running embedded PortSIP-compatible server; see the [module documentation](self).
///
/// Every method takes `&self` and the server is `Send` and `Sync`: share it with an `Arc` to
/// change it from a spawned task (end an [outage](Self::set_token_outage), say).
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    counters: Counters,
    next_id: AtomicU64,
    /// The outages switched on; requests held by a hang wait for a change.
    outages: tokio::sync::watch::Sender<Outages>,
}

/// What the server remembers. Every map keeps at most [`MAX_TOKENS`] entries and the log
/// [`MAX_LOG_RECORDS`], the oldest going first, so that a long run cannot grow it without
/// limit.
struct State {
    config: TestServerConfig,
    access: Bounded<Access>,
    /// The user each refresh token was issued to.
    refresh: Bounded<String>,
    canned: VecDeque<CannedResponse>,
    /// Answers queued for the API paths.
    api_canned: VecDeque<CannedResponse>,
    log: VecDeque<TokenRequestRecord>,
    /// When each access token issued expires, kept after it is revoked, so that
    /// [`Counts::expired_token_requests`] counts expired tokens that were also revoked.
    expiry: Bounded<Instant>,
    /// Refresh tokens already exchanged (with rotation on).
    spent: Bounded<()>,
    /// How long token requests wait before they are answered.
    token_delay: Duration,
    /// Two-factor sign-ins waiting for their one-time code, by session token.
    sessions: Bounded<sign_in::Session>,
    scopes: scopes::Scopes,
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
                access: Bounded::new(MAX_TOKENS),
                refresh: Bounded::new(MAX_TOKENS),
                canned: VecDeque::new(),
                api_canned: VecDeque::new(),
                log: VecDeque::new(),
                expiry: Bounded::new(MAX_TOKENS),
                spent: Bounded::new(MAX_TOKENS),
                token_delay: Duration::ZERO,
                sessions: Bounded::new(MAX_TOKENS),
                scopes: scopes::Scopes::new(),
            }),
            counters: Counters::default(),
            next_id: AtomicU64::new(1),
            outages: outage::switches(),
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
        self.shared.counters.snapshot()
    }

    /// Makes every token request, on either API, wait `delay` before it is answered (the
    /// request is counted when it arrives; refresh tokens are spent when the answer is made).
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared.lock().token_delay = delay;
    }

    /// What each token request carried, oldest first (no passwords, secrets or tokens): the
    /// last [`MAX_LOG_RECORDS`] requests.
    pub fn token_request_log(&self) -> Vec<TokenRequestRecord> {
        self.shared.lock().log.iter().cloned().collect()
    }

    /// Access tokens currently valid.
    pub fn live_tokens(&self) -> usize {
        let now = Instant::now();
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
        bump(&self.counters.api_requests);
        let user = authorization.and_then(bearer_token).and_then(|token| {
            let now = Instant::now();
            let state = self.lock();
            match state.access.get(token) {
                Some(access) if access.expires > now => Some(access.username.clone()),
                _ => {
                    if state.expiry.get(token).is_some_and(|e| *e <= now) {
                        bump(&self.counters.expired_token_requests);
                    }
                    None
                }
            }
        });
        if user.is_none() {
            bump(&self.counters.unauthorized);
        }
        user
    }

    /// Starts a token request on either API: reads its body, counts it, waits the
    /// [token delay](TestServer::set_token_delay), and answers it as an
    /// [outage](TestServer::set_token_outage) or the next
    /// [canned response](TestServer::respond_next) says, if either does (`Err`).
    async fn begin_token_request(
        &self,
        req: Request<Incoming>,
    ) -> Result<Received, Response<ServerBody>> {
        bump(&self.counters.token_requests);
        let (parts, body) = req.into_parts();
        // A body that cannot be read is answered as an empty one: a refusal.
        let body = Limited::new(body, MAX_REQUEST_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // Counted now, whatever the answer or however long it takes.
        let api = if parts.uri.path() == PORTSIP_TOKEN_PATH {
            let fields = parse_fields(is_json(&parts.headers), &body).unwrap_or_default();
            self.counters
                .oauth_grant(fields.get("grant_type").map(String::as_str));
            Api::OAuth
        } else {
            self.counters.sign_in_request(parts.uri.path());
            Api::SignIn
        };
        let delay = self.lock().token_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(response) = self.token_outage(api).await {
            return Err(response);
        }
        let Some(canned) = self.lock().canned.pop_front() else {
            return Ok(Request::from_parts(parts, Full::new(body)));
        };
        if !canned.status.is_success() {
            bump(&self.counters.failed_token_requests);
        }
        let body = if canned.echo {
            let template = String::from_utf8_lossy(&canned.body);
            let echoed = template.replace(ECHO_PLACEHOLDER, &String::from_utf8_lossy(&body));
            Bytes::from(echoed)
        } else {
            canned.body.clone()
        };
        Err(canned_response(canned, body))
    }

    /// Ends a token request: records it, and counts a failure.
    fn end_token_request(
        &self,
        mut record: TokenRequestRecord,
        response: Response<ServerBody>,
    ) -> Response<ServerBody> {
        record.status = response.status().as_u16();
        if !response.status().is_success() {
            bump(&self.counters.failed_token_requests);
        }
        let mut state = self.lock();
        if state.log.len() >= MAX_LOG_RECORDS {
            state.log.pop_front();
        }
        state.log.push_back(record);
        drop(state);
        response
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
    let header_read_timeout = shared.lock().config.header_read_timeout;
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
            // A response marked by an outage's `Refuse` becomes an error: hyper then closes
            // the connection without answering.
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { refuse_marked(handle(&shared, req).await) }
            });
            // A client that does not send a whole request head in time, or keeps a connection
            // idle that long, is disconnected.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl TestServerConfig {
    /// Whether a login with these fields is the user's.
    fn accepts(
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

/// Routes a request: the paths of each API when it is served (`404` when not, `405` for
/// another method), and the protected resource everywhere else.
async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let path = req.uri().path().to_owned();
    let api = match path.as_str() {
        PORTSIP_TOKEN_PATH | PORTSIP_REVOKE_PATH => Api::OAuth,
        PORTSIP_SIGN_IN_PATH
        | PORTSIP_VERIFY_OTP_PATH
        | PORTSIP_REFRESH_PATH
        | PORTSIP_SIGN_OUT_PATH => Api::SignIn,
        _ => {
            if let Some(response) = shared.api_fault().await {
                return response;
            }
            return protected(shared, &req, &path);
        }
    };
    let served = {
        let config = &shared.lock().config;
        match api {
            Api::SignIn => config.sign_in_api,
            Api::OAuth => config.oauth_api,
        }
    };
    if !served {
        bump(&shared.counters.not_found);
        return respond(
            StatusCode::NOT_FOUND,
            &json!({ "errors": [{ "code": "NOT_FOUND", "message": format!("no route {path}") }] }),
        );
    }
    if req.method() != Method::POST {
        let config = shared.lock().config.clone();
        let failure = Failure {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: "invalid_request",
            code: "METHOD_NOT_ALLOWED",
            message: "Method not allowed",
            detail: "use POST",
        };
        return failure.answer(api, &config);
    }
    match path.as_str() {
        PORTSIP_TOKEN_PATH => oauth::token_endpoint(shared, req).await,
        PORTSIP_REVOKE_PATH => oauth::revoke_endpoint(shared, req).await,
        PORTSIP_SIGN_IN_PATH => sign_in::sign_in(shared, req).await,
        PORTSIP_VERIFY_OTP_PATH => sign_in::verify_otp(shared, req).await,
        PORTSIP_REFRESH_PATH => sign_in::refresh_token(shared, req).await,
        _ => sign_in::sign_out(shared, req).await,
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
        Some(user) => scopes::refuse(shared, path, authorization)
            .unwrap_or_else(|| respond(StatusCode::OK, &json!({ "path": path, "username": user }))),
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[cfg(feature = "client")]
    #[tokio::test]
    async fn a_long_run_keeps_every_map_bounded() {
        use crate::provider::{
            TokenProvider,
            portsip::{PortSip, PortSipApi},
        };

        const LIMIT: usize = 16;
        let config = TestServerConfig::new("alice", "pw").two_factor("123456");
        let server = TestServer::start(config).await.unwrap();
        {
            let mut state = server.shared.lock();
            state.access = Bounded::new(LIMIT);
            state.refresh = Bounded::new(LIMIT);
            state.expiry = Bounded::new(LIMIT);
            state.spent = Bounded::new(LIMIT);
            state.sessions = Bounded::new(LIMIT);
        }
        // Password grants and refreshes on the OAuth endpoint; two-factor sign-ins that never
        // finish on the sign-in API.
        let oauth = PortSip::new(server.base_url(), "alice", "pw")
            .api(PortSipApi::OAuth)
            .build()
            .unwrap();
        let sign_in = PortSip::new(server.base_url(), "alice", "pw")
            .api(PortSipApi::SignIn)
            .build()
            .unwrap();
        for _ in 0..5 * LIMIT {
            let token = oauth.login().await.unwrap();
            oauth.refresh(token.refresh_token().unwrap()).await.unwrap();
            assert!(sign_in.login().await.is_err());
        }
        let state = server.shared.lock();
        for (name, len) in [
            ("access", state.access.len()),
            ("refresh", state.refresh.len()),
            ("expiry", state.expiry.len()),
            ("spent", state.spent.len()),
            ("sessions", state.sessions.len()),
        ] {
            assert!(len <= LIMIT, "{name}: {len}");
            assert!(len > 0, "{name}: empty");
        }
        assert_eq!(state.log.len(), 15 * LIMIT);
    }

    #[test]
    fn debug_hides_secrets() {
        let config = TestServerConfig::new("u", "hunter2").client_secret("s3cr3t");
        let out = format!("{config:?}");
        assert!(!out.contains("hunter2") && !out.contains("s3cr3t"), "{out}");
    }
}
