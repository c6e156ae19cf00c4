//! Issue 22, item 3: the tenants engine for reqwest. `reqwest::TenantsMiddleware` passes the
//! tenants tests that apply to it, over loopback sockets: one login per key under
//! concurrency, eviction by count and by idleness, a key's token bound to the key's origin,
//! a redirect that carries no token, recovery from `401`, and refused keys.
#![cfg(all(feature = "reqwest-middleware", feature = "test-server"))]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::net::TcpListener;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin,
    provider::{StaticToken, portsip::PortSip},
    reqwest::{ReqwestService, TenantsMiddleware},
    tenants::{TenantError, TenantErrorKind, TenantId, TenantKey},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";
const API: &str = "/api/account/extensions";

async fn server() -> TestServer {
    let config = TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(600));
    TestServer::start(config).await.unwrap()
}

/// A middleware whose factory logs in to the key's origin through `http`, after a moment (so
/// that concurrent first requests overlap), and refuses the tenant `unknown`. Counts the
/// factory's calls.
fn portsip_tenants(http: &reqwest::Client, builds: &Arc<AtomicUsize>) -> TenantsMiddleware {
    let (http, builds) = (http.clone(), builds.clone());
    TenantsMiddleware::new(move |key: &TenantKey| {
        builds.fetch_add(1, Ordering::SeqCst);
        let refused = key.tenant().is_some_and(|t| t.as_str() == "unknown");
        let provider = PortSip::new(key.origin().to_string(), USER, PASSWORD)
            .build_with(ReqwestService::new(http.clone()));
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if refused {
                return Err(BoxError::from("no credentials for this tenant"));
            }
            provider.map_err(BoxError::from)
        }
    })
}

/// The token a [`static_tenants`] key gets: its key, in characters a header takes.
fn token_of(key: &TenantKey) -> String {
    key.to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// A middleware whose keys get a static token naming the key, told to send it anywhere (the
/// key's origin binds it all the same).
fn static_tenants(builds: &Arc<AtomicUsize>) -> TenantsMiddleware {
    let builds = builds.clone();
    TenantsMiddleware::new(move |key: &TenantKey| {
        builds.fetch_add(1, Ordering::SeqCst);
        let token = token_of(key);
        async move { Ok::<_, BoxError>(StaticToken::new(token)) }
    })
    .configure(|_, cache| BearerAuthLayer::new(cache.build()).any_origin())
}

fn client(middleware: TenantsMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build()
}

async fn get(
    client: &ClientWithMiddleware,
    server: &TestServer,
    tenant: &str,
) -> Result<StatusCode, reqwest_middleware::Error> {
    let response = client
        .get(server.url(API))
        .with_extension(TenantId::new(tenant))
        .send()
        .await?;
    Ok(response.status())
}

fn key(server: &TestServer, tenant: &str) -> TenantKey {
    let origin = Origin::try_from(server.base_url().as_str()).unwrap();
    TenantKey::new(origin, Some(TenantId::new(tenant)))
}

/// 200 concurrent first requests for two keys: two factory calls, two logins, all `200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_log_in_once_per_key() {
    let server = server().await;
    server.set_token_delay(Duration::from_millis(100));
    let builds = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let tenants = portsip_tenants(&http, &builds);
    let caches = tenants.caches();
    let client = ClientBuilder::new(http).with(tenants).build();
    let url = server.url(API);
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let tenant = if n % 2 == 0 { "a" } else { "b" };
            let request = client
                .get(&url)
                .with_extension(TenantId::new(tenant))
                .send();
            tokio::spawn(async move { request.await.map(|r| r.status()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), StatusCode::OK);
    }
    let counts = server.counts();
    assert_eq!(counts.password_grants, 2, "{counts:?}");
    assert_eq!(counts.api_requests, 200, "{counts:?}");
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    assert_eq!(caches.len(), 2);
    assert!(caches.cache(&key(&server, "a")).is_some());
    assert!(caches.cache(&key(&server, "b")).is_some());
}

/// `max_tenants` evicts the least recently used key for a new one, and `idle_timeout`
/// evicts unused keys: an evicted key's next request builds its provider and logs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_evicted_by_count_and_by_idleness() {
    let server = server().await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let tenants = portsip_tenants(&http, &builds).max_tenants(1);
    let caches = tenants.caches();
    let client = ClientBuilder::new(http.clone()).with(tenants).build();
    assert_eq!(get(&client, &server, "a").await.unwrap(), StatusCode::OK);
    assert_eq!(get(&client, &server, "a").await.unwrap(), StatusCode::OK);
    assert_eq!(get(&client, &server, "b").await.unwrap(), StatusCode::OK);
    assert_eq!(caches.len(), 1);
    assert!(caches.cache(&key(&server, "a")).is_none(), "a was evicted");
    assert_eq!(get(&client, &server, "a").await.unwrap(), StatusCode::OK);
    assert_eq!(builds.load(Ordering::SeqCst), 3);
    assert_eq!(server.counts().password_grants, 3);

    let idle = Duration::from_millis(100);
    let tenants = portsip_tenants(&http, &builds).idle_timeout(idle);
    let caches = tenants.caches();
    let client = ClientBuilder::new(http).with(tenants).build();
    assert_eq!(get(&client, &server, "a").await.unwrap(), StatusCode::OK);
    assert_eq!(caches.len(), 1);
    // The sweeper task runs every quarter of the idle timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !caches.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(caches.is_empty(), "the idle key was swept");
    assert_eq!(get(&client, &server, "a").await.unwrap(), StatusCode::OK);
    assert_eq!(builds.load(Ordering::SeqCst), 5);
    assert_eq!(server.counts().password_grants, 5);
}

/// A loopback server that records every request's path and headers, and answers with
/// `answer`.
type Seen = Arc<Mutex<Vec<(String, http::HeaderMap)>>>;

async fn recorder(
    answer: impl Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let (log, answer) = (seen.clone(), Arc::new(answer));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, answer) = (log.clone(), answer.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    log.lock()
                        .unwrap()
                        .push((req.uri().path().to_owned(), req.headers().clone()));
                    let response = answer(&req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A server that redirects `/redirect` to `to` and answers `200` to everything else.
async fn redirecting(to: String) -> (SocketAddr, Seen) {
    recorder(move |req| {
        let mut response = Response::new(Full::default());
        if req.uri().path() == "/redirect" {
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            response
                .headers_mut()
                .insert("location", to.parse().unwrap());
        }
        response
    })
    .await
}

/// Every header value of `headers` that holds a token of the static tenants.
fn tokens_in(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .values()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains("http---127-0-0-1-"))
        .map(str::to_owned)
        .collect()
}

fn origin(addr: SocketAddr) -> Origin {
    Origin::try_from(format!("http://{addr}").as_str()).unwrap()
}

/// Each key's token goes to its own origin and no other, for three keys on two origins (one
/// of them with a tenant id), whatever order their requests come in, and although each key's
/// layer was told `any_origin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_token_goes_to_its_origin_only() {
    let (a, a_seen) = recorder(|_| Response::new(Full::default())).await;
    let (b, b_seen) = recorder(|_| Response::new(Full::default())).await;
    let builds = Arc::new(AtomicUsize::new(0));
    let client = client(static_tenants(&builds));
    let keys = [
        (a, TenantKey::new(origin(a), None)),
        (b, TenantKey::new(origin(b), None)),
        (a, TenantKey::new(origin(a), Some(TenantId::new("t")))),
    ];
    for round in 0..3 {
        for (addr, key) in keys.iter().cycle().skip(round).take(3) {
            let mut request = client.get(format!("http://{addr}/api/{round}"));
            if let Some(tenant) = key.tenant() {
                request = request.with_extension(tenant.clone());
            }
            assert_eq!(request.send().await.unwrap().status(), StatusCode::OK);
        }
    }
    assert_eq!(builds.load(Ordering::SeqCst), 3);
    let want = |key: &TenantKey| vec![format!("Bearer {}", token_of(key))];
    let a_seen = a_seen.lock().unwrap().clone();
    let b_seen = b_seen.lock().unwrap().clone();
    assert_eq!(a_seen.len(), 6);
    assert_eq!(b_seen.len(), 3);
    let (to_a, to_a_tenant): (Vec<_>, Vec<_>) = a_seen
        .iter()
        .map(|(_, headers)| tokens_in(headers))
        .partition(|tokens| *tokens == want(&keys[0].1));
    assert_eq!(to_a.len(), 3, "{a_seen:?}");
    assert!(
        to_a_tenant.iter().all(|t| *t == want(&keys[2].1)),
        "{a_seen:?}"
    );
    for (_, headers) in &b_seen {
        assert_eq!(tokens_in(headers), want(&keys[1].1));
    }
}

/// reqwest follows a redirect below the middleware: to another origin, the redirected
/// request carries no token (and that origin's key is never made); within the origin, it
/// keeps the key's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_carries_no_token() {
    let (second, second_seen) = redirecting(String::new()).await;
    let (first, first_seen) = redirecting(format!("http://{second}/landing")).await;
    let builds = Arc::new(AtomicUsize::new(0));
    let client = client(static_tenants(&builds));
    let response = client
        .post(format!("http://{first}/redirect"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().port(), Some(second.port()), "followed");
    let first_seen = first_seen.lock().unwrap().clone();
    let second_seen = second_seen.lock().unwrap().clone();
    assert_eq!(first_seen.len(), 1);
    let first_key = TenantKey::new(origin(first), None);
    assert_eq!(
        tokens_in(&first_seen[0].1),
        [format!("Bearer {}", token_of(&first_key))]
    );
    assert_eq!(second_seen.len(), 1);
    assert_eq!(second_seen[0].0, "/landing");
    assert_eq!(
        tokens_in(&second_seen[0].1),
        Vec::<String>::new(),
        "no token"
    );
    assert_eq!(
        builds.load(Ordering::SeqCst),
        1,
        "no key made for the second origin"
    );

    let (same, same_seen) = redirecting("/landing".to_owned()).await;
    client
        .get(format!("http://{same}/redirect"))
        .send()
        .await
        .unwrap();
    let same_key = TenantKey::new(origin(same), None);
    let token = vec![format!("Bearer {}", token_of(&same_key))];
    let same_seen = same_seen.lock().unwrap().clone();
    assert_eq!(same_seen.len(), 2);
    for (_, headers) in &same_seen {
        assert_eq!(tokens_in(headers), token);
    }
}

/// A `401` invalidates the key's token and the request is sent once more with a new one; the
/// other key keeps its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_invalidates_the_keys_token_and_is_replayed_once() {
    let server = server().await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let tenants = portsip_tenants(&http, &builds);
    let caches = tenants.caches();
    let client = ClientBuilder::new(http).with(tenants).build();
    assert_eq!(get(&client, &server, "a").await.unwrap(), StatusCode::OK);
    assert_eq!(get(&client, &server, "b").await.unwrap(), StatusCode::OK);
    let a_token = caches.cache(&key(&server, "a")).unwrap().token().unwrap();
    let b_token = caches.cache(&key(&server, "b")).unwrap().token().unwrap();
    assert!(server.revoke_token(a_token.access_token()));

    let response = client
        .post(server.url(API))
        .with_extension(TenantId::new("a"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "replayed with a new token"
    );
    let counts = server.counts();
    assert_eq!(counts.unauthorized, 1, "{counts:?}");
    assert_eq!(counts.api_requests, 4, "{counts:?}");
    // The revoked token's refresh token went with it: a refresh refused, then a login.
    assert_eq!(counts.password_grants, 3, "{counts:?}");
    let a_now = caches.cache(&key(&server, "a")).unwrap().token().unwrap();
    assert_ne!(a_now.access_token(), a_token.access_token());
    let b_now = caches.cache(&key(&server, "b")).unwrap().token().unwrap();
    assert_eq!(b_now.access_token(), b_token.access_token(), "b untouched");
}

/// A key the factory refuses, and a URL with no known port, fail with a `TenantError` and
/// send nothing.
#[tokio::test]
async fn refused_keys_fail_with_a_tenant_error_and_send_nothing() {
    let server = server().await;
    let builds = Arc::new(AtomicUsize::new(0));
    let client = client(portsip_tenants(&reqwest::Client::new(), &builds));
    let error = get(&client, &server, "unknown").await.unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("{error:?}")
    };
    let tenant_error = error.downcast_ref::<TenantError>().expect("a TenantError");
    assert_eq!(tenant_error.kind(), TenantErrorKind::Refused);
    assert_eq!(tenant_error.key(), Some(&key(&server, "unknown")));
    assert_eq!(server.counts().api_requests, 0);

    let error = client.get("ftp://127.0.0.1/x").send().await.unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("{error:?}")
    };
    let tenant_error = error.downcast_ref::<TenantError>().expect("a TenantError");
    assert_eq!(tenant_error.kind(), TenantErrorKind::NoOrigin);
    assert_eq!(builds.load(Ordering::SeqCst), 1);
}
