//! Helpers shared by the integration tests: a hyper server on 127.0.0.1 that accepts only
//! the tokens it was told about, a hyper-util client, and a counting provider.
#![allow(dead_code, unreachable_pub)]

use std::{
    collections::HashSet,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;
use tower_bearer_auth::{
    BoxError, TokenResponse,
    provider::{BoxFuture, TokenProvider},
};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A protected API: answers 200 to requests carrying an accepted token, 401 otherwise.
#[derive(Clone, Default)]
pub struct Api {
    inner: Arc<ApiInner>,
}

#[derive(Default)]
struct ApiInner {
    accepted: Mutex<HashSet<String>>,
    seen: Mutex<Vec<Option<String>>>,
    received: Mutex<Vec<Received>>,
    requests: AtomicUsize,
    delay: Mutex<Duration>,
    deny_all: Mutex<bool>,
    challenge: Mutex<Option<String>>,
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Api {
    /// Starts the server on a free loopback port; it runs until the runtime shuts down.
    pub async fn start() -> (Self, SocketAddr) {
        let api = Api::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let api = server.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.handle(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (api, addr)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        self.inner.requests.fetch_add(1, Ordering::SeqCst);
        let delay = *self.inner.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let auth = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.inner.seen.lock().unwrap().push(auth.clone());
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        self.inner.received.lock().unwrap().push(Received {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        });
        let ok = !*self.inner.deny_all.lock().unwrap()
            && auth
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|t| self.inner.accepted.lock().unwrap().contains(t));
        let (status, body) = if ok {
            (StatusCode::OK, "hello")
        } else {
            (StatusCode::UNAUTHORIZED, "who are you")
        };
        let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *res.status_mut() = status;
        if !ok {
            let challenge = self.inner.challenge.lock().unwrap().clone();
            let challenge = challenge.unwrap_or_else(|| "Bearer error=\"invalid_token\"".into());
            if !challenge.is_empty() {
                res.headers_mut()
                    .insert("www-authenticate", challenge.parse().unwrap());
            }
        }
        res
    }

    /// Stops accepting `token`.
    pub fn revoke(&self, token: &str) {
        self.inner.accepted.lock().unwrap().remove(token);
    }

    /// Refuses every request, whatever its token.
    pub fn deny_all(&self, deny: bool) {
        *self.inner.deny_all.lock().unwrap() = deny;
    }

    /// The `WWW-Authenticate` value sent with 401s; empty for none.
    pub fn set_challenge(&self, challenge: &str) {
        *self.inner.challenge.lock().unwrap() = Some(challenge.to_owned());
    }

    /// Every request the server received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    pub fn accept(&self, token: &str) {
        self.inner.accepted.lock().unwrap().insert(token.to_owned());
    }

    pub fn reject_all(&self) {
        self.inner.accepted.lock().unwrap().clear();
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    pub fn requests(&self) -> usize {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// The `Authorization` headers the server received, in order.
    pub fn seen(&self) -> Vec<Option<String>> {
        self.inner.seen.lock().unwrap().clone()
    }
}

/// A provider that issues numbered tokens, registers them with an [`Api`], and counts calls.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<IssuerInner>,
}

struct IssuerInner {
    api: Api,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    lifetime: Mutex<Option<Duration>>,
    delay: Mutex<Duration>,
    fail_logins: Mutex<bool>,
    refuse_refresh: Mutex<bool>,
    token_type: Mutex<Option<String>>,
}

impl Issuer {
    pub fn new(api: &Api) -> Self {
        Self {
            inner: Arc::new(IssuerInner {
                api: api.clone(),
                logins: AtomicUsize::new(0),
                refreshes: AtomicUsize::new(0),
                lifetime: Mutex::new(None),
                delay: Mutex::new(Duration::ZERO),
                fail_logins: Mutex::new(false),
                refuse_refresh: Mutex::new(false),
                token_type: Mutex::new(None),
            }),
        }
    }

    pub fn lifetime(self, lifetime: Duration) -> Self {
        *self.inner.lifetime.lock().unwrap() = Some(lifetime);
        self
    }

    pub fn delay(self, delay: Duration) -> Self {
        *self.inner.delay.lock().unwrap() = delay;
        self
    }

    pub fn token_type(self, token_type: &str) -> Self {
        *self.inner.token_type.lock().unwrap() = Some(token_type.to_owned());
        self
    }

    pub fn fail_logins(&self, fail: bool) {
        *self.inner.fail_logins.lock().unwrap() = fail;
    }

    pub fn refuse_refresh(&self, refuse: bool) {
        *self.inner.refuse_refresh.lock().unwrap() = refuse;
    }

    pub fn logins(&self) -> usize {
        self.inner.logins.load(Ordering::SeqCst)
    }

    pub fn refreshes(&self) -> usize {
        self.inner.refreshes.load(Ordering::SeqCst)
    }

    fn issue(&self, access: String, refresh: String) -> TokenResponse {
        self.inner.api.accept(&access);
        let mut r = TokenResponse::new(access).with_refresh_token(refresh);
        if let Some(l) = *self.inner.lifetime.lock().unwrap() {
            r = r.with_expires_in(l);
        }
        if let Some(t) = self.inner.token_type.lock().unwrap().clone() {
            r = r.with_token_type(t);
        }
        r
    }
}

impl TokenProvider for Issuer {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            let delay = *self.inner.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let n = self.inner.logins.fetch_add(1, Ordering::SeqCst) + 1;
            if *self.inner.fail_logins.lock().unwrap() {
                return Err("wrong password for user admin".into());
            }
            Ok(self.issue(format!("access-login-{n}"), format!("refresh-login-{n}")))
        })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            let delay = *self.inner.delay.lock().unwrap();
            tokio::time::sleep(delay).await;
            let n = self.inner.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            if *self.inner.refuse_refresh.lock().unwrap() {
                return Err("invalid_grant".into());
            }
            assert!(refresh_token.starts_with("refresh-"));
            Ok(self.issue(
                format!("access-refresh-{n}"),
                format!("refresh-refresh-{n}"),
            ))
        })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn revoke<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> tower_bearer_auth::provider::BoxFuture<'a, Result<(), tower_bearer_auth::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<tower_bearer_auth::Origin> {
        None
    }
}

/// A GET request to `addr` with an empty body.
pub fn get(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}/api/things"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Serves `handler` on a free loopback port until the runtime shuts down.
pub async fn serve<F>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let res = handler(req);
                    async move { Ok::<_, Infallible>(res) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}
