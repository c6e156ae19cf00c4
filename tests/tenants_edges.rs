//! Edge cases of `tower_bearer_auth::tenants`: idle keys evicted with no traffic at all,
//! concurrent requests for a refused key sharing one factory call, one login per PBX from a
//! multi-threaded client, and the token of the origin each request connects to, however its
//! URI is spelt.
//!
//! The first two run on a paused clock without sockets; the third over real sockets, with
//! embedded `TestServer`s standing in for PBXs with different credentials; the last through
//! an inner service that echoes the `Authorization` it was sent.

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
use http::{Request, Response, StatusCode, Uri, header::AUTHORIZATION};
use http_body_util::Full;
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin, TokenResponse,
    client::HttpClient,
    provider::{StaticToken, portsip::PortSip, provider_fn},
    tenants::{TenantError, TenantErrorKind, TenantId, TenantKey, Tenants, TenantsLayer},
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
    .configure(|_, cache| BearerAuthLayer::new(cache.timeout(Duration::from_secs(30)).build()));
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

/// A layer whose factory gives each key a provider of a token that names the key: its origin,
/// and its tenant id after a `|`.
fn tokens_naming_their_key() -> TenantsLayer {
    TenantsLayer::new(|key: &TenantKey| {
        let token = format!(
            "{}|{}",
            key.origin(),
            key.tenant().map_or("", |t| t.as_str())
        );
        async move {
            Ok::<_, BoxError>(provider_fn(move || {
                let token = token.clone();
                async move {
                    Ok::<_, BoxError>(
                        TokenResponse::new(token).with_expires_in(Duration::from_secs(3600)),
                    )
                }
            }))
        }
    })
}

/// The client under test: requests go through `layer` to an inner service that answers with
/// the `Authorization` header it was sent, if any.
fn echoing(
    layer: &TenantsLayer,
) -> Tenants<
    impl Service<Request<()>, Response = Response<Option<String>>, Error = Infallible> + Clone,
> {
    layer.layer(service_fn(|req: Request<()>| async move {
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .map(|h| h.to_str().unwrap().to_owned());
        Ok::<_, Infallible>(Response::new(header))
    }))
}

/// The origin a request to `uri` connects to, as `http` (and so hyper's connector) reads it:
/// the scheme and host in lowercase, and `port_u16()` or the scheme's default port.
fn connects_to(uri: &Uri) -> Option<String> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri.port_u16().or(match scheme.as_str() {
        "https" | "wss" => Some(443),
        "http" | "ws" => Some(80),
        _ => None,
    })?;
    Some(format!("{scheme}://{host}:{port}"))
}

/// Sends a GET to `uri` (with `tenant` in its extensions) and returns the `Authorization` it
/// carried, or the error.
async fn send<S>(
    client: &mut Tenants<S>,
    uri: &str,
    tenant: Option<&str>,
) -> Result<Option<String>, BoxError>
where
    S: Service<Request<()>, Response = Response<Option<String>>, Error = Infallible> + Clone,
{
    let mut request = Request::get(uri).body(()).unwrap();
    if let Some(tenant) = tenant {
        request.extensions_mut().insert(TenantId::new(tenant));
    }
    let response = client.ready().await?.call(request).await?;
    Ok(response.into_body())
}

/// A port written with leading zeros is the port `http` reads: `https://pbx.example.com:000080`
/// connects to port 80, and gets the token of `https://pbx.example.com:80`, never the one of
/// `:443`; and the other way round.
#[tokio::test]
async fn a_port_with_leading_zeros_is_the_port_connected_to() {
    const DEFAULT: &str = "https://pbx.example.com/api";
    const ZEROS: &str = "https://pbx.example.com:000080/api";
    let as_key = |origin: &str| Some(format!("Bearer {origin}|"));
    let zeros: Uri = ZEROS.parse().unwrap();
    assert_eq!(zeros.port_u16(), Some(80), "what the connector reads");

    // `:443` first, then `:000080`.
    let layer = tokens_naming_their_key();
    let mut client = echoing(&layer);
    for _ in 0..2 {
        let header = send(&mut client, DEFAULT, None).await.unwrap();
        assert_eq!(header, as_key("https://pbx.example.com:443"));
    }
    for _ in 0..2 {
        let header = send(&mut client, ZEROS, None).await.unwrap();
        assert_eq!(header, as_key("https://pbx.example.com:80"), "to port 80");
    }
    assert_eq!(layer.caches().len(), 2);

    // `:000080` first, then `:443`.
    let layer = tokens_naming_their_key();
    let mut client = echoing(&layer);
    for _ in 0..2 {
        let header = send(&mut client, ZEROS, None).await.unwrap();
        assert_eq!(header, as_key("https://pbx.example.com:80"), "to port 80");
    }
    for _ in 0..2 {
        let header = send(&mut client, DEFAULT, None).await.unwrap();
        assert_eq!(header, as_key("https://pbx.example.com:443"));
    }
    let mut keys: Vec<String> = layer
        .caches()
        .tenants()
        .iter()
        .map(|t| t.key.to_string())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["https://pbx.example.com:443", "https://pbx.example.com:80"]
    );
}

/// One request of a generated sequence: a URI as written, and a tenant id.
#[derive(Debug, Clone)]
struct Sent {
    uri: String,
    tenant: Option<&'static str>,
}

/// URIs that `http::Uri` accepts, written in many ways: scheme and host in any case, user
/// info or none, IPv4 and IPv6 literals, no port, an empty port, the default port written
/// out, ports with leading zeros (past five digits too), a `+` sign, and ports out of range.
/// Few hosts, so that a sequence holds several spellings of one origin.
fn spellings() -> impl Strategy<Value = Sent> {
    let scheme = prop::sample::select(vec!["http", "https", "ws", "wss", "ftp"]);
    let user = prop::sample::select(vec!["", "", "", "user@", "user:pw@", "a:443@", "%41@"]);
    let host = prop::sample::select(vec![
        "pbx.example.com",
        "pbx-b.example.com",
        "127.0.0.1",
        "[::1]",
        "[2001:db8::a]",
    ]);
    let number = prop::sample::select(vec![80u32, 443, 8080, 8887, 0, 65535, 65536, 99999]);
    let port = prop_oneof![
        3 => Just(None),
        1 => Just(Some(String::new())),
        4 => (0usize..8, prop::bool::weighted(0.1), number)
            .prop_map(|(zeros, plus, n)| {
                let sign = if plus { "+" } else { "" };
                Some(format!("{sign}{}{n}", "0".repeat(zeros)))
            }),
    ];
    let tenant = prop::sample::select(vec![None, None, Some("acme"), Some("Acme")]);
    (scheme, any::<u64>(), user, host, any::<u64>(), port, tenant).prop_map(
        |(scheme, scheme_case, user, host, host_case, port, tenant)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let uri = format!(
                "{}://{user}{}{port}/api",
                mixed_case(scheme, scheme_case),
                mixed_case(host, host_case)
            );
            Sent { uri, tenant }
        },
    )
}

/// `s` with the letters whose bit in `mask` is set made capitals.
fn mixed_case(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    /// Whatever the spelling, each request that `http::Uri` accepts carries the token of the
    /// origin it connects to (and of its tenant id), on the slow path and on the hot path,
    /// whichever spellings of its origin came before it; a request with no origin fails.
    #[test]
    fn the_token_sent_is_the_one_of_the_origin_connected_to(
        sequence in prop::collection::vec(spellings(), 1..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let layer = tokens_naming_their_key();
            let mut client = echoing(&layer);
            // Every request twice in a row (the second finds the thread's seat, if it got
            // one), and the whole sequence twice.
            for sent in sequence.iter().chain(&sequence) {
                let Ok(uri) = sent.uri.parse::<Uri>() else { continue };
                for _ in 0..2 {
                    let result = send(&mut client, &sent.uri, sent.tenant).await;
                    match connects_to(&uri) {
                        Some(origin) => {
                            let want = format!("Bearer {origin}|{}", sent.tenant.unwrap_or(""));
                            let header = result.map_err(|e| TestCaseError::fail(format!("{}: {e}", sent.uri)))?;
                            prop_assert_eq!(header, Some(want), "{}", sent.uri);
                        }
                        None => {
                            let err = result.expect_err("no origin");
                            prop_assert_eq!(
                                err.downcast_ref::<TenantError>().unwrap().kind(),
                                TenantErrorKind::NoOrigin
                            );
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}
