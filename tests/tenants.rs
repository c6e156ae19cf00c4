//! Issue 15: many PBXs, one client. A token per tenant, chosen per request by
//! `tower_bearer_auth::tenants`.
//!
//! Most tests run over real sockets, with several embedded `TestServer`s standing in for PBXs
//! with different credentials, and the crate's `HttpClient`. The cold-start test uses 100
//! servers with 10 tenant ids each (1,000 keys): a thousand servers, each with its accept
//! loop and connections, would test the machine more than the layer. The memory test is in
//! `tenants_memory.rs`, the tracing test in `tenants_tracing.rs`.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin, TokenError, TokenErrorKind, TokenResponse,
    client::HttpClient,
    provider::{portsip::PortSip, provider_fn},
    tenants::{TenantError, TenantErrorKind, TenantId, TenantKey, TenantsLayer},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const API: &str = "/api/account/extensions";

/// Credentials per PBX, as a vault would hold them: read by the factory at each provider
/// build.
#[derive(Clone, Default)]
struct Vault(Arc<Mutex<HashMap<Origin, String>>>);

impl Vault {
    fn set(&self, server: &TestServer, password: &str) {
        let origin = Origin::try_from(server.base_url().as_str()).unwrap();
        self.0.lock().unwrap().insert(origin, password.to_owned());
    }

    fn password(&self, origin: &Origin) -> Option<String> {
        self.0.lock().unwrap().get(origin).cloned()
    }
}

/// A server with its own password, and the vault entry for it.
async fn pbx(vault: &Vault, n: usize) -> TestServer {
    let password = format!("pw-{n}");
    let config = TestServerConfig::new(USER, &password).lifetime(Duration::from_secs(600));
    let server = TestServer::start(config).await.unwrap();
    vault.set(&server, &password);
    server
}

/// A layer whose factory logs in to the key's origin with the vault's password for it, and
/// refuses origins the vault does not know. Counts factory calls.
fn layer(vault: &Vault, http: &HttpClient, builds: &Arc<AtomicUsize>) -> TenantsLayer {
    let (vault, http, builds) = (vault.clone(), http.clone(), builds.clone());
    TenantsLayer::new(move |key: &TenantKey| {
        builds.fetch_add(1, Ordering::SeqCst);
        let password = vault.password(key.origin());
        let base = key.origin().to_string();
        let http = http.clone();
        async move {
            let password = password.ok_or("unknown PBX")?;
            // A credentials store that takes a moment, so concurrent first requests overlap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            PortSip::new(base, USER, password)
                .build_with(http)
                .map_err(BoxError::from)
        }
    })
    .configure(|_, cache| {
        let cache = cache
            .timeout(Duration::from_secs(30))
            .backoff(Duration::from_secs(5), Duration::from_secs(30));
        BearerAuthLayer::new(cache.build())
    })
}

fn get(server: &TestServer, tenant: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(server.url(API)).body(Full::default()).unwrap();
    if let Some(tenant) = tenant {
        request.extensions_mut().insert(TenantId::new(tenant));
    }
    request
}

fn key(server: &TestServer, tenant: Option<&str>) -> TenantKey {
    TenantKey::new(
        Origin::try_from(server.base_url().as_str()).unwrap(),
        tenant.map(TenantId::new),
    )
}

/// 1,000 keys (100 PBXs × 10 tenant ids) × 20 concurrent requests at a cold start: exactly one
/// factory call and one login per key, and every request gets `200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_logs_in_once_per_key() {
    const SERVERS: usize = 100;
    const TENANTS: usize = 10;
    const CONCURRENT: usize = 20;
    let vault = Vault::default();
    let mut servers = Vec::new();
    for n in 0..SERVERS {
        servers.push(pbx(&vault, n).await);
    }
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let layer = layer(&vault, &http, &builds);
    let caches = layer.caches();
    // Every request enters the layer at once; only their sending, after the token is set, is
    // limited, so that 20,000 requests don't open 20,000 connections (and twice the files).
    // The pool keeps a few idle connections per PBX: hyper's client opens a connection for a
    // request that finds none idle and keeps it even when another one came back first, and
    // with no cap this test once held more connections than the process may open files.
    let sending = Arc::new(tokio::sync::Semaphore::new(256));
    let api = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4)
        .build_http::<Full<Bytes>>();
    let inner = service_fn(move |req: Request<Full<Bytes>>| {
        let (api, sending) = (api.clone(), sending.clone());
        async move {
            let _permit = sending.acquire().await.expect("never closed");
            api.request(req).await
        }
    });
    let client = layer.layer(inner);

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        for server in &servers {
            for t in 0..TENANTS {
                let request = get(server, Some(&format!("tenant-{t}")));
                let client = client.clone();
                tasks.spawn(async move { client.oneshot(request).await.map(|r| r.status()) });
            }
        }
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
    }
    assert_eq!(builds.load(Ordering::SeqCst), SERVERS * TENANTS);
    for server in &servers {
        assert_eq!(
            server.counts().password_grants,
            TENANTS,
            "one login per key"
        );
        assert_eq!(server.counts().unauthorized, 0);
    }
    assert_eq!(caches.len(), SERVERS * TENANTS);
    let tenants = caches.tenants();
    assert!(tenants.iter().all(|t| t.ready && t.has_token));
    // The token state is listed, never a secret.
    assert!(!format!("{tenants:?}").contains("Bearer"));
}

/// Many keys through a small limit, sequentially and concurrently: never more keys than the
/// limit, and every request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_limit_holds_under_churn() {
    const LIMIT: usize = 16;
    let vault = Vault::default();
    let server = pbx(&vault, 0).await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let layer = layer(&vault, &http, &builds).max_tenants(LIMIT);
    let caches = layer.caches();
    let client = layer.layer(http);
    for round in 0..5 {
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..100 {
            let request = get(&server, Some(&format!("tenant-{round}-{t}")));
            let client = client.clone();
            tasks.spawn(async move { client.oneshot(request).await.map(|r| r.status()) });
        }
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
            assert!(caches.len() <= LIMIT, "{} keys", caches.len());
        }
    }
    assert!(caches.len() <= LIMIT);
    assert_eq!(builds.load(Ordering::SeqCst), 500);
}

/// A factory that refuses a key fails its requests with a `TenantError`, and never reaches the
/// inner service; a request with no origin fails too.
#[tokio::test]
async fn a_refused_key_fails_without_reaching_the_server() {
    let reached = Arc::new(AtomicUsize::new(0));
    let seen = reached.clone();
    let inner = service_fn(move |_: Request<()>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(())) }
    });
    let layer = TenantsLayer::new(|key: &TenantKey| {
        let known = key.origin().to_string() == "https://known.example.com:443";
        async move {
            if known {
                Ok(provider_fn(|| async {
                    Ok::<_, BoxError>(TokenResponse::new("t"))
                }))
            } else {
                Err(BoxError::from("no credentials for s3cret-vault-path"))
            }
        }
    });
    let caches = layer.caches();
    let client = layer.layer(inner);
    let refused = Request::get("https://other.example.com/").body(()).unwrap();
    let err = client.clone().oneshot(refused).await.unwrap_err();
    let err = err.downcast_ref::<TenantError>().expect("a TenantError");
    assert_eq!(err.kind(), TenantErrorKind::Refused);
    assert_eq!(
        err.to_string(),
        "no provider for tenant https://other.example.com:443"
    );
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    assert!(caches.is_empty(), "a refused key is not kept");

    let relative = Request::get("/no/origin").body(()).unwrap();
    let err = client.clone().oneshot(relative).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TenantError>().unwrap().kind(),
        TenantErrorKind::NoOrigin
    );

    let ok = Request::get("https://known.example.com/").body(()).unwrap();
    client.oneshot(ok).await.unwrap();
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    assert_eq!(caches.len(), 1);
}

/// One PBX down: its requests fail fast (the second within the backoff without trying again),
/// and the others are served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pbx_down_leaves_the_others_alone() {
    let vault = Vault::default();
    let up = [pbx(&vault, 0).await, pbx(&vault, 1).await];
    let down = pbx(&vault, 2).await;
    let down_request = || get(&down, None);
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let client = layer(&vault, &http, &builds).layer(http);
    for server in &up {
        let response = client.clone().oneshot(get(server, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let first = down_request();
    let second = down_request();
    drop(down); // the PBX stops: connections are refused

    let err = client.clone().oneshot(first).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TokenError>().unwrap().kind(),
        TokenErrorKind::Login
    );
    let started = Instant::now();
    let err = client.clone().oneshot(second).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TokenError>().unwrap().kind(),
        TokenErrorKind::Login
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "failed at once, backing off"
    );

    for server in &up {
        for _ in 0..10 {
            let response = client.clone().oneshot(get(server, None)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(server.counts().password_grants, 1);
    }
}

/// A password rotated on one PBX: after the vault and the key's provider are updated, only
/// that PBX's next login uses the new password; the other PBX is untouched. Evicting the key
/// instead makes the factory read the vault again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_is_used_by_that_pbx_next_login_only() {
    let vault = Vault::default();
    let a = pbx(&vault, 0).await;
    let b = pbx(&vault, 1).await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let layer = layer(&vault, &http, &builds);
    let caches = layer.caches();
    let client = layer.layer(http.clone());
    for server in [&a, &b] {
        let response = client.clone().oneshot(get(server, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    // Rotate A's password: the server, the vault, and the key's provider.
    a.set_password("rotated-1");
    vault.set(&a, "rotated-1");
    let provider = PortSip::new(a.base_url(), USER, "rotated-1")
        .build_with(http.clone())
        .unwrap();
    assert!(caches.replace_provider(&key(&a, None), provider));
    // The token is kept: the next request needs no login.
    let response = client.clone().oneshot(get(&a, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(a.counts().password_grants, 1);
    // Its next login uses the new password.
    caches
        .cache(&key(&a, None))
        .unwrap()
        .revoke()
        .await
        .unwrap();
    let response = client.clone().oneshot(get(&a, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let log = a.token_request_log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        log[1].path, "/api/auth/sign_in",
        "a login with the password"
    );
    assert_eq!(log[1].status, 200);

    // Rotate again, and evict instead: the factory reads the vault anew.
    a.set_password("rotated-2");
    vault.set(&a, "rotated-2");
    assert!(caches.evict(&key(&a, None)));
    let response = client.clone().oneshot(get(&a, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(a.token_request_log().last().unwrap().status, 200);
    assert_eq!(builds.load(Ordering::SeqCst), 3);

    // B saw one login, and its token still works.
    let response = client.clone().oneshot(get(&b, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(b.counts().token_requests, 1);
}

/// An inner service standing in front of the real client: A answers its API path with a
/// redirect to B's, and every `Authorization` sent to A's API and to B is recorded (A's from
/// the redirected path's first request; B's whatever the path). With `forward_to_b`, B's
/// requests go on to B, which checks their token; without, the stand-in answers `200` itself.
#[derive(Clone)]
struct Redirecting {
    http: HttpClient,
    a: Origin,
    b: Origin,
    b_url: String,
    forward_to_b: bool,
    sent_to_a: Arc<Mutex<Vec<Option<String>>>>,
    sent_to_b: Arc<Mutex<Vec<Option<String>>>>,
}

impl Redirecting {
    fn new(http: &HttpClient, a: &TestServer, b: &TestServer, forward_to_b: bool) -> Self {
        Self {
            http: http.clone(),
            a: Origin::try_from(a.base_url().as_str()).unwrap(),
            b: Origin::try_from(b.base_url().as_str()).unwrap(),
            b_url: b.url(API),
            forward_to_b,
            sent_to_a: Arc::default(),
            sent_to_b: Arc::default(),
        }
    }

    fn service(
        &self,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = BoxError,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        service_fn(move |req: Request<Full<Bytes>>| {
            let this = this.clone();
            async move {
                let header = req
                    .headers()
                    .get(AUTHORIZATION)
                    .map(|h| h.to_str().unwrap().to_owned());
                if this.a.matches(req.uri()) && req.uri().path() == API {
                    this.sent_to_a.lock().unwrap().push(header);
                    let response = Response::builder()
                        .status(StatusCode::FOUND)
                        .header("location", &this.b_url)
                        .body(Full::<Bytes>::default())
                        .unwrap();
                    return Ok::<_, BoxError>(response);
                }
                if this.b.matches(req.uri()) {
                    this.sent_to_b.lock().unwrap().push(header);
                    if !this.forward_to_b {
                        return Ok(Response::new(Full::default()));
                    }
                }
                let mut http = this.http.clone();
                let response = http.ready().await?.call(req).await?;
                let (parts, _) = response.into_parts();
                Ok(Response::from_parts(parts, Full::default()))
            }
        })
    }

    fn sent_to_a(&self) -> Vec<Option<String>> {
        self.sent_to_a.lock().unwrap().clone()
    }

    fn sent_to_b(&self) -> Vec<Option<String>> {
        self.sent_to_b.lock().unwrap().clone()
    }
}

/// A redirect from PBX A to PBX B followed *above* the layer: the redirected request goes
/// through the layer again, as a request of B's key, and carries B's own token.
///
/// `FollowRedirect` rebuilds the request to B from the one it was given, before this layer
/// added A's token, so A's token is never in it whatever the layer does; what this shows is
/// that the new hop gets the token of the origin it goes to (a login to B), not A's, and not
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_followed_above_the_layer_gets_the_token_of_the_new_pbx() {
    use tower_http::follow_redirect::{FollowRedirectLayer, policy};

    let vault = Vault::default();
    let a = pbx(&vault, 0).await;
    let b = pbx(&vault, 1).await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let layer = layer(&vault, &http, &builds);
    let stand_in = Redirecting::new(&http, &a, &b, true);
    // Credentials kept by the policy: were the layer's token in the request it rebuilds, it
    // would reach B.
    let client = tower::ServiceBuilder::new()
        .layer(FollowRedirectLayer::with_policy(policy::Limited::new(3)))
        .layer(layer)
        .service(stand_in.service());

    let response = client.oneshot(get(&a, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "B served the request");
    let to_a = stand_in.sent_to_a();
    let a_token = to_a[0].as_deref().expect("A's token, to A");
    assert_eq!(a.authorize(Some(a_token)).as_deref(), Some(USER));
    let to_b = stand_in.sent_to_b();
    assert_eq!(to_b.len(), 1);
    let b_token = to_b[0].as_deref().expect("B's own token");
    assert_eq!(
        b.authorize(Some(b_token)).as_deref(),
        Some(USER),
        "issued by B"
    );
    assert_eq!(a.authorize(Some(b_token)), None, "not A's");
    assert_eq!(a.counts().password_grants, 1);
    assert_eq!(b.counts().password_grants, 1);
}

/// A redirect from PBX A to PBX B followed *below* the layer: the layer adds A's token to
/// the request to A, and the redirect layer under it sends the request to B without it.
///
/// What keeps A's token from B here is tower-http's `FollowRedirect` alone, not this crate:
/// the redirected request is rebuilt from the one the layer sent, token included, and never
/// comes back through the layer. Its default policy (`Standard`, with `FilterCredentials`)
/// drops `Authorization` on a redirect to another origin. With `policy::Limited` alone, B
/// receives A's token, and this test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_followed_below_the_layer_is_stripped_by_the_redirect_policy() {
    use tower_http::follow_redirect::FollowRedirectLayer;

    let vault = Vault::default();
    let a = pbx(&vault, 0).await;
    let b = pbx(&vault, 1).await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let layer = layer(&vault, &http, &builds);
    let stand_in = Redirecting::new(&http, &a, &b, false);
    let client = tower::ServiceBuilder::new()
        .layer(layer)
        .layer(FollowRedirectLayer::new())
        .service(stand_in.service());

    let response = client.oneshot(get(&a, None)).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the stand-in for B answered"
    );
    let to_a = stand_in.sent_to_a();
    assert_eq!(to_a.len(), 1);
    let a_token = to_a[0].as_deref().expect("A's token, to A");
    assert_eq!(a.authorize(Some(a_token)).as_deref(), Some(USER));
    assert_eq!(stand_in.sent_to_b(), [None], "what B received");
    assert_eq!(builds.load(Ordering::SeqCst), 1, "B's key never made");
    assert_eq!(b.counts().token_requests, 0);
}

/// Concurrent first requests for one key share one factory call, and an async factory that
/// takes its time is waited for.
#[tokio::test(start_paused = true)]
async fn concurrent_first_requests_share_one_factory_call() {
    let builds = Arc::new(AtomicUsize::new(0));
    let logins = Arc::new(AtomicUsize::new(0));
    let (b, l) = (builds.clone(), logins.clone());
    let layer = TenantsLayer::new(move |_: &TenantKey| {
        b.fetch_add(1, Ordering::SeqCst);
        let l = l.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, BoxError>(provider_fn(move || {
                let n = l.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, BoxError>(TokenResponse::new(format!("t{n}"))) }
            }))
        }
    });
    let inner = service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(req.headers()[AUTHORIZATION].clone()))
    });
    let client = layer.layer(inner);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let request = Request::get("https://pbx.example.com/").body(()).unwrap();
        tasks.spawn(client.clone().oneshot(request));
    }
    while let Some(response) = tasks.join_next().await {
        assert_eq!(response.unwrap().unwrap().body(), "Bearer t0");
    }
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    assert_eq!(logins.load(Ordering::SeqCst), 1);
}

/// The README's "Many tenants" example, compiled.
#[allow(dead_code)]
mod readme {
    use std::time::Duration;
    use tower::ServiceBuilder;
    use tower_bearer_auth::tenants::{TenantKey, Tenants, TenantsLayer};
    use tower_bearer_auth::{
        BearerAuthLayer, BoxError, client::HttpClient, provider::portsip::PortSip,
    };

    async fn password_for(key: &TenantKey) -> Result<String, BoxError> {
        // Read it from your vault; an unknown PBX is an error.
        let _ = key;
        Ok("s3cret".into())
    }

    fn client() -> Tenants<HttpClient> {
        let layer = TenantsLayer::new(|key: &TenantKey| {
            let key = key.clone();
            async move {
                let password = password_for(&key).await?; // an error refuses the key
                Ok::<_, BoxError>(
                    PortSip::new(key.origin().to_string(), "admin", password).build()?,
                )
            }
        })
        .configure(|_key, cache| {
            BearerAuthLayer::new(cache.timeout(Duration::from_secs(5)).build())
        })
        .max_tenants(5_000)
        .idle_timeout(Duration::from_secs(30 * 60));
        ServiceBuilder::new()
            .layer(layer)
            .service(HttpClient::new())
    }
}

/// At the key limit, a new key evicts a key whose provider is built before one still being
/// built, and an unused key before a used one.
#[tokio::test(start_paused = true)]
async fn the_limit_evicts_built_and_unused_keys_first() {
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let layer = TenantsLayer::new(|key: &TenantKey| {
        let slow = key.origin().to_string().contains("slow");
        async move {
            if slow {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok::<_, BoxError>(provider_fn(|| async {
                Ok::<_, BoxError>(TokenResponse::new("t"))
            }))
        }
    })
    .max_tenants(2);
    let caches = layer.caches();
    let client = layer.layer(inner);
    let get = |host: &str| Request::get(format!("https://{host}/")).body(()).unwrap();
    let key = |host: &str| {
        TenantKey::new(
            Origin::try_from(format!("https://{host}").as_str()).unwrap(),
            None,
        )
    };

    client
        .clone()
        .oneshot(get("built.example.com"))
        .await
        .unwrap();
    let pending = tokio::spawn(client.clone().oneshot(get("slow.example.com")));
    tokio::task::yield_now().await;
    assert_eq!(caches.len(), 2);
    client
        .clone()
        .oneshot(get("third.example.com"))
        .await
        .unwrap();
    let kept: Vec<TenantKey> = caches.tenants().into_iter().map(|t| t.key).collect();
    assert!(kept.contains(&key("slow.example.com")), "{kept:?}");
    assert!(kept.contains(&key("third.example.com")), "{kept:?}");
    pending.await.unwrap().unwrap();

    // Both built now; a sweep marks them unused, then one is used again.
    caches.evict_idle();
    client
        .clone()
        .oneshot(get("third.example.com"))
        .await
        .unwrap();
    client
        .clone()
        .oneshot(get("fourth.example.com"))
        .await
        .unwrap();
    let kept: Vec<TenantKey> = caches.tenants().into_iter().map(|t| t.key).collect();
    assert!(kept.contains(&key("third.example.com")), "{kept:?}");
    assert!(kept.contains(&key("fourth.example.com")), "{kept:?}");
}
