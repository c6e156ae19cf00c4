//! Edge cases of `tower_bearer_auth::tenants`: idle keys evicted with no traffic at all,
//! concurrent requests for a refused key sharing one factory call, and one login per PBX from
//! a multi-threaded client.
//!
//! The first two run on a paused clock without sockets; the last over real sockets, with
//! embedded `TestServer`s standing in for PBXs with different credentials.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};
use tower_bearer_auth::{
    BoxError, Origin, TokenResponse,
    client::HttpClient,
    provider::{StaticToken, portsip::PortSip, provider_fn},
    tenants::{TenantError, TenantErrorKind, TenantKey, Tenants, TenantsLayer},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const API: &str = "/api/account/extensions";

/// A layer whose factory gives every key a provider of one-hour tokens.
fn one_hour_tokens() -> TenantsLayer {
    TenantsLayer::new(|_: &TenantKey| async {
        Ok::<_, BoxError>(provider_fn(|| async {
            Ok::<_, BoxError>(TokenResponse::new("t").with_expires_in(Duration::from_secs(3600)))
        }))
    })
}

/// Tasks alive on the current runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Lets spawned tasks run.
async fn yield_a_few_times() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// The origin of `server`.
fn origin(server: &TestServer) -> Origin {
    Origin::try_from(server.base_url().as_str()).unwrap()
}

/// The key of requests to `server` with no tenant id.
fn key(server: &TestServer) -> TenantKey {
    TenantKey::new(origin(server), None)
}

/// A GET to `server`'s authenticated API.
fn get(server: &TestServer) -> Request<Full<Bytes>> {
    Request::get(server.url(API)).body(Full::default()).unwrap()
}

/// Sends one request from each of `count` spawned tasks, request `i` to server `i % n`, and
/// asserts that every one is answered `200`.
async fn send_spread(client: &Tenants<HttpClient>, servers: &[TestServer], count: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let request = get(&servers[i % servers.len()]);
        let client = client.clone();
        tasks.spawn(async move { client.oneshot(request).await.map(|r| r.status()) });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
    }
}

/// Idle keys are evicted by the clock alone, with no request and no `evict_idle()` call, and
/// nothing is left running once no key remains.
#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted_without_traffic() {
    const KEYS: usize = 10;
    let tasks_before = alive_tasks();
    let layer = one_hour_tokens().idle_timeout(Duration::from_secs(60));
    let caches = layer.caches();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let client = layer.layer(inner);
    for n in 0..KEYS {
        let request = Request::get(format!("https://pbx-{n}.example.com/api"))
            .body(())
            .unwrap();
        client.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(caches.len(), KEYS);

    // No more requests, no `evict_idle()`: only time passes, past the idle timeout.
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(30)).await;
        yield_a_few_times().await;
    }
    assert_eq!(
        caches.len(),
        0,
        "idle keys still kept {}s after their last request",
        5 * 30
    );
    assert!(caches.is_empty());
    yield_a_few_times().await;
    assert_eq!(
        alive_tasks(),
        tasks_before,
        "a task left behind once no key remains"
    );
}

/// Concurrent requests for a key the factory refuses share one factory call and its refusal;
/// a later request calls the factory again.
#[tokio::test(start_paused = true)]
async fn concurrent_refusals_share_one_factory_call() {
    const CONCURRENT: usize = 5;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let layer = TenantsLayer::new(move |_: &TenantKey| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<StaticToken, _>(BoxError::from("no credentials"))
        }
    });
    let caches = layer.caches();
    let reached = Arc::new(AtomicUsize::new(0));
    let seen = reached.clone();
    let inner = service_fn(move |_: Request<()>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(())) }
    });
    let client = layer.layer(inner);
    let request = || {
        Request::get("https://refused.example.com/api")
            .body(())
            .unwrap()
    };
    let assert_refused = |result: Result<Response<()>, BoxError>| {
        let err = result.expect_err("a refused key fails its request");
        let err = err.downcast_ref::<TenantError>().expect("a TenantError");
        assert_eq!(err.kind(), TenantErrorKind::Refused);
    };

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        tasks.spawn(client.clone().oneshot(request()));
    }
    let mut failed = 0;
    while let Some(result) = tasks.join_next().await {
        assert_refused(result.unwrap());
        failed += 1;
    }
    assert_eq!(failed, CONCURRENT);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "factory calls for {CONCURRENT} concurrent requests to one refused key"
    );
    assert!(caches.is_empty(), "a refused key is not kept");

    // A request after the refusal asks the factory again, and is refused the same way.
    assert_refused(client.clone().oneshot(request()).await);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(caches.is_empty(), "a refused key is not kept");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

/// A client shared by many tasks on four threads keeps one login per PBX, and an evicted key
/// logs in again once, on its own PBX only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multi_threaded_client_keeps_one_login_per_pbx() {
    const SERVERS: usize = 3;
    let mut servers = Vec::new();
    let mut passwords = HashMap::new();
    for n in 0..SERVERS {
        let password = format!("pw-{n}");
        let config = TestServerConfig::new(USER, &password).lifetime(Duration::from_secs(600));
        let server = TestServer::start(config).await.unwrap();
        passwords.insert(origin(&server), password);
        servers.push(server);
    }
    let passwords = Arc::new(passwords);
    let http = HttpClient::new();
    let factory_http = http.clone();
    let layer = TenantsLayer::new(move |key: &TenantKey| {
        let password = passwords.get(key.origin()).cloned();
        let base = key.origin().to_string();
        let http = factory_http.clone();
        async move {
            let password = password.ok_or("unknown PBX")?;
            PortSip::new(base, USER, password)
                .build_with(http)
                .map_err(BoxError::from)
        }
    })
    .configure(|_, layer| layer.timeout(Duration::from_secs(30)));
    let caches = layer.caches();
    let client: Tenants<HttpClient> = layer.layer(http);

    send_spread(&client, &servers, 600).await;
    for (n, server) in servers.iter().enumerate() {
        assert_eq!(server.counts().password_grants, 1, "logins on server {n}");
        assert_eq!(server.counts().unauthorized, 0, "401s on server {n}");
    }
    assert_eq!(caches.len(), SERVERS);

    assert!(caches.evict(&key(&servers[0])));
    send_spread(&client, &servers, 30).await;
    assert_eq!(
        servers[0].counts().password_grants,
        2,
        "logins on server 0 after its key was evicted"
    );
    for (n, server) in servers.iter().enumerate().skip(1) {
        assert_eq!(server.counts().password_grants, 1, "logins on server {n}");
    }
    assert_eq!(caches.len(), SERVERS);
}
