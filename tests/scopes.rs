//! Issue 22, item 3: tokens chosen per request by scope. A `Scope` in a request's extensions
//! is part of its tenant key, with the tower `TenantsLayer` and the reqwest
//! `TenantsMiddleware` alike; the embedded server grants the scope asked for and checks it on
//! the paths that require one, so `insufficient_scope` is tested end to end.
#![cfg(all(
    feature = "reqwest-middleware",
    feature = "test-server",
    feature = "client"
))]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use reqwest_middleware::ClientBuilder;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, BearerChallenge, BoxError, Origin,
    client::HttpClient,
    provider::{
        TokenProvider,
        portsip::{PortSip, PortSipApi, PortSipProvider},
    },
    reqwest::{ReqwestService, TenantsMiddleware},
    tenants::{Scope, TenantKey, TenantsLayer},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";
const READ_PATH: &str = "/api/read/extensions";
const WRITE_PATH: &str = "/api/write/extensions";

/// A server whose `/api/read` needs the `read` scope and `/api/write` the `write` scope.
async fn server() -> TestServer {
    let config = TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(600));
    let server = TestServer::start(config).await.unwrap();
    server.require_scope("/api/read", "read");
    server.require_scope("/api/write", "write");
    server
}

/// A PortSIP provider for the key's origin that asks for the key's scope (PortSIP's default,
/// `all`, when the key has none), logging in through `login`. Counts the calls.
fn factory<S>(
    login: S,
    builds: &Arc<AtomicUsize>,
) -> impl Fn(&TenantKey) -> std::future::Ready<Result<PortSipProvider<S>, BoxError>>
+ Send
+ Sync
+ 'static
where
    S: Clone + Send + Sync + 'static,
    PortSipProvider<S>: TokenProvider,
{
    let builds = builds.clone();
    move |key: &TenantKey| {
        builds.fetch_add(1, Ordering::SeqCst);
        // Scopes are asked for on the OAuth token endpoint; PortSIP's sign-in API has none.
        let mut provider =
            PortSip::new(key.origin().to_string(), USER, PASSWORD).api(PortSipApi::OAuth);
        if let Some(scope) = key.scope() {
            provider = provider.scope(scope.as_str());
        }
        std::future::ready(provider.build_with(login.clone()).map_err(BoxError::from))
    }
}

fn request(method: Method, url: String, scope: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::default())
        .unwrap();
    if let Some(scope) = scope {
        request.extensions_mut().insert(Scope::new(scope));
    }
    request
}

fn key(server: &TestServer, scope: &str) -> TenantKey {
    TenantKey::new(Origin::try_from(server.base_url().as_str()).unwrap(), None)
        .with_scope(Scope::new(scope))
}

/// Two scopes to one origin: two keys, two logins (one per scope), and each request carries
/// its scope's token, which the server checks on the path that needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scopes_to_one_origin_log_in_twice_with_the_tower_layer() {
    let server = server().await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = HttpClient::new();
    let layer = TenantsLayer::new(factory(http.clone(), &builds));
    let caches = layer.caches();
    let client = layer.layer(http);

    for _ in 0..5 {
        let read = request(Method::GET, server.url(READ_PATH), Some("read"));
        let write = request(Method::POST, server.url(WRITE_PATH), Some("write"));
        let (read, write) =
            tokio::join!(client.clone().oneshot(read), client.clone().oneshot(write));
        assert_eq!(read.unwrap().status(), StatusCode::OK);
        assert_eq!(write.unwrap().status(), StatusCode::OK);
    }
    // The read token does not open the write path: the keys hold different tokens.
    let crossed = request(Method::POST, server.url(WRITE_PATH), Some("read"));
    let crossed = client.clone().oneshot(crossed).await.unwrap();
    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);

    let counts = server.counts();
    assert_eq!(counts.password_grants, 2, "{counts:?}");
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    let mut asked: Vec<_> = server
        .token_request_log()
        .into_iter()
        .map(|r| r.scope.unwrap_or_default())
        .collect();
    asked.sort();
    assert_eq!(asked, ["read", "write"]);
    assert_eq!(caches.len(), 2);
    for scope in ["read", "write"] {
        let token = caches.cache(&key(&server, scope)).unwrap().token().unwrap();
        assert_eq!(
            token.scope(),
            Some(scope),
            "the server granted the key's scope"
        );
    }
}

/// The same through reqwest: `TenantsMiddleware` reads the scope from reqwest-middleware's
/// extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scopes_to_one_origin_log_in_twice_with_the_reqwest_middleware() {
    let server = server().await;
    let builds = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let tenants = TenantsMiddleware::new(factory(ReqwestService::new(http.clone()), &builds));
    let caches = tenants.caches();
    let client = ClientBuilder::new(http).with(tenants).build();

    for _ in 0..5 {
        let read = client
            .get(server.url(READ_PATH))
            .with_extension(Scope::new("read"))
            .send();
        let write = client
            .post(server.url(WRITE_PATH))
            .with_extension(Scope::new("write"))
            .send();
        let (read, write) = tokio::join!(read, write);
        assert_eq!(read.unwrap().status(), StatusCode::OK);
        assert_eq!(write.unwrap().status(), StatusCode::OK);
    }
    let crossed = client
        .post(server.url(WRITE_PATH))
        .with_extension(Scope::new("read"))
        .send()
        .await
        .unwrap();
    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);

    let counts = server.counts();
    assert_eq!(counts.password_grants, 2, "{counts:?}");
    assert_eq!(builds.load(Ordering::SeqCst), 2);
    assert_eq!(caches.len(), 2);
    for scope in ["read", "write"] {
        let token = caches.cache(&key(&server, scope)).unwrap().token().unwrap();
        assert_eq!(token.scope(), Some(scope));
    }
}

/// A token without the path's scope: the caller gets the server's `403` with its parsed
/// challenge, the request is not sent again, and the token stays (no new login after it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_scope_reaches_the_caller_and_invalidates_nothing() {
    let server = server().await;
    server.require_scope("/api/admin", "admin");
    let admin = server.url("/api/admin/users");
    let fine = server.url(READ_PATH);
    let check = |status: StatusCode, challenge: Option<&BearerChallenge>| {
        assert_eq!(status, StatusCode::FORBIDDEN);
        let challenge = challenge.expect("the challenge is parsed");
        assert_eq!(challenge.error(), Some("insufficient_scope"));
        assert_eq!(challenge.scope(), Some("admin"));
    };

    // A plain layer, the tower tenants layer and the reqwest tenants middleware, each with a
    // `read` token.
    let http = HttpClient::new();
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .api(PortSipApi::OAuth)
        .scope("read")
        .build_with(http.clone())
        .unwrap();
    let layer = BearerAuthLayer::new(provider);
    let cache = layer.cache();
    let plain = layer.layer(http.clone());
    let response = plain
        .clone()
        .oneshot(request(Method::GET, admin.clone(), None))
        .await
        .unwrap();
    check(response.status(), response.extensions().get());
    let kept = cache
        .token()
        .expect("the token is kept")
        .access_token()
        .to_owned();
    let response = plain
        .oneshot(request(Method::GET, fine.clone(), None))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(cache.token().unwrap().access_token(), kept);

    let builds = Arc::new(AtomicUsize::new(0));
    let layer = TenantsLayer::new(factory(http.clone(), &builds));
    let caches = layer.caches();
    let tenants = layer.layer(http);
    let response = tenants
        .clone()
        .oneshot(request(Method::GET, admin.clone(), Some("read")))
        .await
        .unwrap();
    check(response.status(), response.extensions().get());
    let cache = caches.cache(&key(&server, "read")).unwrap();
    let kept = cache
        .token()
        .expect("the token is kept")
        .access_token()
        .to_owned();
    let response = tenants
        .oneshot(request(Method::GET, fine.clone(), Some("read")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(cache.token().unwrap().access_token(), kept);

    let http = reqwest::Client::new();
    let middleware = TenantsMiddleware::new(factory(ReqwestService::new(http.clone()), &builds));
    let caches = middleware.caches();
    let client = ClientBuilder::new(http).with(middleware).build();
    let response = client
        .get(&admin)
        .with_extension(Scope::new("read"))
        .send()
        .await
        .unwrap();
    check(response.status(), response.extensions().get());
    let cache = caches.cache(&key(&server, "read")).unwrap();
    let kept = cache
        .token()
        .expect("the token is kept")
        .access_token()
        .to_owned();
    let response = client
        .get(&fine)
        .with_extension(Scope::new("read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(cache.token().unwrap().access_token(), kept);

    // Three logins (one per client), six API requests: none replayed, none refused as
    // unauthorized.
    let counts = server.counts();
    assert_eq!(counts.password_grants, 3, "{counts:?}");
    assert_eq!(counts.api_requests, 6, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "{counts:?}");
}

/// The README's "Scopes" example, compiled.
#[allow(dead_code)]
mod readme_scopes {
    use bytes::Bytes;
    use http::Request;
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt};
    use tower_bearer_auth::tenants::{Scope, TenantKey, Tenants, TenantsLayer};
    use tower_bearer_auth::{
        BoxError,
        client::HttpClient,
        provider::portsip::{PortSip, PortSipApi},
    };

    fn client() -> Tenants<HttpClient> {
        let layer = TenantsLayer::new(|key: &TenantKey| {
            // PortSIP takes a scope at its OAuth token endpoint.
            let mut pbx =
                PortSip::new(key.origin().to_string(), "admin", "s3cret").api(PortSipApi::OAuth);
            if let Some(scope) = key.scope() {
                pbx = pbx.scope(scope.as_str());
            }
            let provider = pbx.build();
            async move { provider }
        });
        ServiceBuilder::new()
            .layer(layer)
            .service(HttpClient::new())
    }

    fn create_order(url: &str) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut request = Request::post(url).body(Full::default())?;
        request.extensions_mut().insert(Scope::new("write"));
        Ok(request)
    }

    #[tokio::main]
    async fn main() -> Result<(), BoxError> {
        let request = create_order("https://pbx.example.com:8887/api/orders")?;
        let response = client().oneshot(request).await?;
        println!("{}", response.status());
        Ok(())
    }
}

/// The README's "Many tenants with reqwest" example, compiled.
#[allow(dead_code)]
mod readme_reqwest {
    use reqwest_middleware::ClientBuilder;
    use serde_json::json;
    use tower_bearer_auth::{
        BoxError,
        provider::oauth2::OAuth2Provider,
        reqwest::{ReqwestService, TenantsMiddleware},
        tenants::{Scope, TenantKey},
    };

    #[tokio::main]
    async fn main() -> Result<(), BoxError> {
        let http = reqwest::Client::new();
        let logins = ReqwestService::new(http.clone());
        // A token per origin and scope; each goes to its key's origin only.
        let tenants = TenantsMiddleware::new(move |key: &TenantKey| {
            let mut provider = OAuth2Provider::client_credentials(
                logins.clone(),
                "https://auth.example.com/oauth/token",
                "my-app",
                "client-secret",
            );
            if let Some(scope) = key.scope() {
                provider = provider.scope(scope.as_str());
            }
            let provider = provider.build();
            async move { provider }
        })
        .max_tenants(100);
        let client = ClientBuilder::new(http).with(tenants).build();

        let orders = client
            .get("https://api.example.com/v1/orders")
            .with_extension(Scope::new("orders:read"))
            .send()
            .await?;
        println!("{}", orders.status());
        let created = client
            .post("https://api.example.com/v1/orders")
            .with_extension(Scope::new("orders:write"))
            .json(&json!({ "item": "coffee", "quantity": 2 }))
            .send()
            .await?;
        println!("{}", created.status());
        Ok(())
    }
}
