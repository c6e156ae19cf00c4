//! A token or revocation endpoint that redirects: the credentials never reach the origin the
//! redirect names, and its answer is never taken for a token.
//!
//! Each test puts a token endpoint that answers every request with a redirect (`301`, `302`,
//! `303`, `307` or `308`) in front of another origin on loopback (another port, and
//! `127.0.0.2`) that records what it receives and answers with a token of its own. The
//! providers call through `HttpClient`, through reqwest's default client (which follows
//! redirects), and through a reqwest client that follows none.
#![cfg(all(feature = "client", feature = "reqwest", feature = "test-server"))]

mod support;

use std::{
    convert::Infallible,
    error::Error,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{
    HeaderMap, Method, Request, Response, StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE, LOCATION},
};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError,
    client::HttpClient,
    provider::{
        TokenProvider,
        oauth2::{ClientAuth, OAuth2Error, OAuth2ErrorKind, OAuth2Provider},
        portsip::{PortSip, PortSipApi},
    },
    reqwest::ReqwestService,
};

const USER: &str = "admin";
const PASSWORD: &str = "S3cr3t-pw-redirected-1f0a";
const CLIENT_ID: &str = "my-app";
const CLIENT_SECRET: &str = "S3cr3t-client-redirected-77c2";
const REFRESH: &str = "S3cr3t-rt-redirected-4b9e";
const ACCESS: &str = "S3cr3t-at-redirected-0d3c";
const DOMAIN: &str = "S3cr3t-tenant-redirected.example";
const ATTACKER_TOKEN: &str = "ATTACKER-TOKEN";
const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Every secret a request of these tests carries, in every form a server could see it.
fn secrets() -> Vec<String> {
    let mut forms = Vec::new();
    for secret in [PASSWORD, CLIENT_SECRET, REFRESH, ACCESS, DOMAIN] {
        forms.push(secret.to_owned());
    }
    forms
}

/// A request as a server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    /// Everything in it, as text.
    fn text(&self) -> String {
        format!(
            "{} {} {:?} {}",
            self.method,
            self.uri,
            self.headers,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// A server on `ip` that records every request and answers each with `answer`.
async fn server<F>(ip: Ipv4Addr, answer: F) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>)
where
    F: Fn(&Seen) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let answer = answer.clone();
                    let log = log.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes());
                        let seen = Seen {
                            method: parts.method,
                            uri: parts.uri.to_string(),
                            headers: parts.headers,
                            body: body.unwrap_or_default(),
                        };
                        let response = answer(&seen);
                        log.lock().unwrap().push(seen);
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// The other origin: takes whatever comes and answers with its own token.
async fn other_origin(ip: Ipv4Addr) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    server(ip, |_| {
        let body = json!({
            "access_token": ATTACKER_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "ATTACKER-REFRESH",
        });
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, "application/json".parse().unwrap());
        response
    })
    .await
}

/// A token endpoint that answers every request with `status` and `Location: location`.
async fn redirecting(status: u16, location: String) -> SocketAddr {
    let (addr, _) = server(Ipv4Addr::LOCALHOST, move |_| {
        let mut response = Response::new(Full::new(Bytes::from_static(b"moved")));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
            .headers_mut()
            .insert(LOCATION, location.parse().unwrap());
        response
    })
    .await;
    addr
}

/// The clients a provider can send through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Hyper,
    /// `reqwest::Client::new()`: follows up to ten redirects.
    ReqwestDefault,
    /// A reqwest client that follows no redirect.
    ReqwestNone,
}

const CLIENTS: [Client; 3] = [Client::Hyper, Client::ReqwestDefault, Client::ReqwestNone];

fn reqwest_client(client: Client) -> ReqwestService {
    let http = match client {
        Client::ReqwestNone => reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _ => reqwest::Client::new(),
    };
    ReqwestService::new(http)
}

/// An OAuth 2.0 provider at `base`, with every kind of secret, through `client`.
fn oauth2(client: Client, base: &str, auth: ClientAuth) -> Arc<dyn TokenProvider> {
    let token_url = format!("{base}/oauth/token");
    let revoke_url = format!("{base}/oauth/revoke");
    macro_rules! build {
        ($http:expr) => {
            Arc::new(
                OAuth2Provider::password($http, token_url, USER, PASSWORD)
                    .client_id(CLIENT_ID)
                    .client_secret(CLIENT_SECRET)
                    .client_auth(auth)
                    .login_param("domain", DOMAIN)
                    .revoke_url(revoke_url)
                    .build()
                    .unwrap(),
            )
        };
    }
    match client {
        Client::Hyper => build!(HttpClient::new()),
        _ => build!(reqwest_client(client)),
    }
}

/// A PortSIP provider for the PBX at `base`, through `client`.
fn portsip(client: Client, base: &str, api: PortSipApi) -> Arc<dyn TokenProvider> {
    let builder = PortSip::new(base, USER, PASSWORD).domain(DOMAIN).api(api);
    match client {
        Client::Hyper => Arc::new(builder.build_with(HttpClient::new()).unwrap()),
        _ => Arc::new(builder.build_with(reqwest_client(client)).unwrap()),
    }
}

/// The `OAuth2Error` in `err`'s chain.
fn oauth2_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a OAuth2Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<OAuth2Error>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// `err` and its sources, displayed.
fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut current = Some(err);
    while let Some(e) = current {
        out.push_str(&format!("{e} | "));
        current = e.source();
    }
    out
}

/// Checks that `err` is a refused redirect that names where it pointed.
fn assert_refused_redirect(err: &BoxError, other: SocketAddr, what: &str) {
    let text = chain(&**err);
    let oauth = oauth2_error(&**err).unwrap_or_else(|| panic!("{what}: no OAuth2Error: {text}"));
    assert!(
        matches!(oauth.kind(), OAuth2ErrorKind::Redirect { .. }),
        "{what}: {:?}",
        oauth.kind()
    );
    assert!(text.contains("redirect"), "{what}: {text}");
    assert!(text.contains(&other.to_string()), "{what}: {text}");
    assert!(
        !oauth.credentials_rejected() && !oauth.is_transient(),
        "{what}"
    );
    for secret in secrets() {
        assert!(!text.contains(&secret), "{what}: {secret} in {text}");
    }
}

/// Checks what the other origin received: nothing, or (when reqwest itself follows a `301`,
/// `302` or `303`, which turn the `POST` into a `GET` without a body) bare `GET`s that carry
/// no credential.
fn assert_nothing_reached(seen: &[Seen], client: Client, status: u16, what: &str) {
    let reqwest_follows = client == Client::ReqwestDefault && matches!(status, 301..=303);
    if !reqwest_follows {
        assert!(
            seen.is_empty(),
            "{what}: the other origin received {seen:?}"
        );
        return;
    }
    for request in seen {
        assert_eq!(request.method, Method::GET, "{what}: {request:?}");
        assert!(request.body.is_empty(), "{what}: {request:?}");
        assert!(!request.headers.contains_key(AUTHORIZATION), "{what}");
        let text = request.text();
        for secret in secrets() {
            assert!(!text.contains(&secret), "{what}: {secret} reached {text}");
        }
    }
}

/// The other origins: another port on 127.0.0.1, and 127.0.0.2.
const OTHER_HOSTS: [Ipv4Addr; 2] = [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_logins_refreshes_and_revocations_never_follow_a_redirect() {
    for ip in OTHER_HOSTS {
        for status in STATUSES {
            let (other, seen) = other_origin(ip).await;
            let endpoint = redirecting(status, format!("http://{other}/steal")).await;
            let base = format!("http://{endpoint}");
            for client in CLIENTS {
                for auth in [ClientAuth::Basic, ClientAuth::Form] {
                    let what = format!("{client:?} {status} to {other} {auth:?}");
                    let provider = oauth2(client, &base, auth);
                    let err = provider.login().await.unwrap_err();
                    assert_refused_redirect(&err, other, &format!("{what} login"));
                    let err = provider.refresh(REFRESH).await.unwrap_err();
                    assert_refused_redirect(&err, other, &format!("{what} refresh"));
                    let err = provider.revoke(ACCESS, Some(REFRESH)).await.unwrap_err();
                    assert_refused_redirect(&err, other, &format!("{what} revoke"));
                    let received = std::mem::take(&mut *seen.lock().unwrap());
                    assert_nothing_reached(&received, client, status, &what);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portsip_sign_ins_and_oauth_logins_never_follow_a_redirect() {
    for ip in OTHER_HOSTS {
        for status in STATUSES {
            let (other, seen) = other_origin(ip).await;
            let pbx = redirecting(status, format!("http://{other}/steal")).await;
            let base = format!("http://{pbx}");
            for client in CLIENTS {
                for api in [PortSipApi::Auto, PortSipApi::SignIn, PortSipApi::OAuth] {
                    let what = format!("{client:?} {api:?} {status} to {other}");
                    let provider = portsip(client, &base, api);
                    let err = provider.login().await.unwrap_err();
                    assert_refused_redirect(&err, other, &format!("{what} login"));
                    let err = provider.refresh(REFRESH).await.unwrap_err();
                    assert_refused_redirect(&err, other, &format!("{what} refresh"));
                    let err = provider.revoke(ACCESS, Some(REFRESH)).await.unwrap_err();
                    assert_refused_redirect(&err, other, &format!("{what} revoke"));
                    let received = std::mem::take(&mut *seen.lock().unwrap());
                    assert_nothing_reached(&received, client, status, &what);
                }
            }
        }
    }
}

/// A PBX whose login paths redirect to `location` with `status`, and whose other paths are
/// its API, answering `200` to any request.
async fn redirecting_pbx(status: u16, location: String) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    server(Ipv4Addr::LOCALHOST, move |request| {
        let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
        if request.uri.starts_with("/api/auth") || request.uri.starts_with("/api/login") {
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            response
                .headers_mut()
                .insert(LOCATION, location.parse().unwrap());
        }
        response
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_login_never_puts_the_other_origins_token_on_a_request() {
    for status in STATUSES {
        let (other, _) = other_origin(Ipv4Addr::new(127, 0, 0, 2)).await;
        let (pbx, seen) = redirecting_pbx(status, format!("http://{other}/token")).await;
        let base = format!("http://{pbx}");
        for client in CLIENTS {
            for api in [PortSipApi::Auto, PortSipApi::SignIn, PortSipApi::OAuth] {
                let layer = BearerAuthLayer::new(
                    TokenCache::builder(portsip(client, &base, api))
                        .backoff(Duration::from_millis(1), Duration::from_millis(2))
                        .refused_backoff(Duration::from_millis(1), Duration::from_millis(2))
                        .build(),
                );
                let svc = layer.layer(support::client());
                for _ in 0..2 {
                    let request = Request::get(format!("{base}/api/account/extensions"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let result = svc.clone().oneshot(request).await;
                    let what = format!("{client:?} {api:?} {status}");
                    assert!(
                        result.is_err(),
                        "{what}: the request was sent: {:?}",
                        result.map(|r| r.status())
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        let api_requests: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.uri.starts_with("/api/account"))
            .cloned()
            .collect();
        assert!(api_requests.is_empty(), "{status}: {api_requests:?}");
    }
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_refused_too() {
    for status in STATUSES {
        let (addr, seen) = server(Ipv4Addr::LOCALHOST, move |request| {
            let mut response = Response::new(Full::new(Bytes::new()));
            if request.uri.starts_with("/oauth/token") {
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response
                    .headers_mut()
                    .insert(LOCATION, "/elsewhere".parse().unwrap());
            } else {
                let body = json!({"access_token": ATTACKER_TOKEN, "expires_in": 60});
                *response.body_mut() = Full::new(Bytes::from(body.to_string()));
            }
            response
        })
        .await;
        for client in CLIENTS {
            let what = format!("{client:?} {status}");
            let provider = oauth2(client, &format!("http://{addr}"), ClientAuth::Form);
            let err = provider.login().await.unwrap_err();
            assert_refused_redirect(&err, addr, &what);
            // Whatever reached `/elsewhere` carried no credential.
            for request in seen.lock().unwrap().drain(..) {
                if request.uri.starts_with("/elsewhere") {
                    assert!(request.body.is_empty(), "{what}: {request:?}");
                    assert_eq!(request.method, Method::GET, "{what}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_redirect_names_only_the_origin_it_pointed_to() {
    let (other, _) = other_origin(Ipv4Addr::LOCALHOST).await;
    let endpoint = redirecting(
        307,
        format!("http://user:S3cr3t-userinfo@{other}/steal?code=S3cr3t-query"),
    )
    .await;
    let provider = oauth2(
        Client::Hyper,
        &format!("http://{endpoint}"),
        ClientAuth::Basic,
    );
    let err = provider.login().await.unwrap_err();
    let text = format!("{} {err:?}", chain(&*err));
    assert!(text.contains(&format!("http://{other}")), "{text}");
    assert!(!text.contains("S3cr3t"), "{text}");
    assert!(!text.contains("/steal"), "{text}");
}

#[test]
fn the_other_hosts_are_loopback() {
    for ip in OTHER_HOSTS {
        assert!(IpAddr::V4(ip).is_loopback());
    }
}
