//! The embedded test server's failure switches, over loopback sockets: outages of the token
//! endpoint and of the API paths (refused, `503`, hanging) until switched off from another
//! task, queued API answers, and counts that match their documentation whatever the answer.
#![cfg(all(feature = "test-server", feature = "client"))]

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header::RETRY_AFTER};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, Origin, TokenError, TokenErrorKind,
    client::HttpClient,
    provider::{
        TokenProvider,
        portsip::{PortSip, PortSipApi, PortSipProvider},
    },
    test_server::{CannedResponse, Outage, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "pw";
const PATH: &str = "/api/account/extensions";

async fn server() -> TestServer {
    TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap()
}

fn provider(server: &TestServer, api: PortSipApi) -> PortSipProvider<HttpClient> {
    PortSip::new(server.base_url(), USER, PASSWORD)
        .api(api)
        .build()
        .unwrap()
}

/// A GET of `PATH` through the layer over `HttpClient`, bound to the server's origin.
async fn get(server: &TestServer, layer: &BearerAuthLayer) -> Result<StatusCode, TokenError> {
    let service = layer.layer(HttpClient::new());
    let request = Request::get(server.url(PATH))
        .body(Full::<Bytes>::default())
        .unwrap();
    match service.oneshot(request).await {
        Ok(response) => Ok(response.status()),
        Err(e) => Err(TokenError::find(&*e).expect("a TokenError").clone()),
    }
}

fn layer(server: &TestServer) -> BearerAuthLayer {
    BearerAuthLayer::new(provider(server, PortSipApi::SignIn))
        .allow_origin(Origin::try_from(server.base_url().as_str()).unwrap())
}

/// Logins that hang until the client gives up are counted as what they are: in the issue
/// that led here, `password_grants` stayed 1 while `token_requests` was 4.
#[tokio::test]
async fn logins_the_client_gave_up_on_are_counted_as_password_grants() {
    for api in [PortSipApi::SignIn, PortSipApi::OAuth] {
        let server = server().await;
        server.set_token_delay(Duration::from_secs(30));
        let provider = provider(&server, api);
        for _ in 0..3 {
            let attempt = tokio::time::timeout(Duration::from_millis(500), provider.login());
            assert!(
                attempt.await.is_err(),
                "{api:?}: answered despite the delay"
            );
        }
        server.set_token_delay(Duration::ZERO);
        provider.login().await.unwrap();
        let counts = server.counts();
        assert_eq!(counts.token_requests, 4, "{api:?}: {counts:?}");
        assert_eq!(counts.password_grants, 4, "{api:?}: {counts:?}");
        assert_eq!(counts.failed_token_requests, 0, "{api:?}: {counts:?}");
    }
}

#[tokio::test]
async fn an_unavailable_token_endpoint_is_healed_from_another_task() {
    let server = Arc::new(server().await);
    server.set_token_outage(Some(Outage::Unavailable));
    let provider = provider(&server, PortSipApi::SignIn);
    let error = provider.login().await.unwrap_err();
    let error = TokenError::find(&*error).cloned();
    // The provider's own error: not wrapped in a TokenError outside the cache.
    assert!(error.is_none());
    let layer = layer(&server);
    let error = get(&server, &layer).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));

    let healer = Arc::clone(&server);
    tokio::spawn(async move { healer.set_token_outage(None) })
        .await
        .unwrap();
    provider.login().await.unwrap();
    let counts = server.counts();
    assert_eq!(counts.failed_token_requests, 2, "{counts:?}");
    assert_eq!(counts.password_grants, counts.token_requests, "{counts:?}");
}

#[tokio::test]
async fn a_refusing_token_endpoint_is_a_transient_transport_failure() {
    let server = server().await;
    server.set_token_outage(Some(Outage::Refuse));
    let layer = layer(&server);
    let error = get(&server, &layer).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.status(), None, "no answer: {error}");
    assert_eq!(server.counts().password_grants, 1);
    server.set_token_outage(None);
    provider(&server, PortSipApi::SignIn).login().await.unwrap();
}

#[tokio::test]
async fn a_hanging_token_endpoint_answers_once_switched_back() {
    let server = Arc::new(server().await);
    server.set_token_outage(Some(Outage::Hang));
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider(&server, PortSipApi::SignIn))
            .timeout(Duration::from_millis(500))
            .build(),
    )
    .allow_origin(Origin::try_from(server.base_url().as_str()).unwrap());
    let error = get(&server, &layer).await.unwrap_err();
    assert_eq!(error.kind(), TokenErrorKind::Timeout, "{error}");

    // A login held by the hang is answered when a spawned task ends it.
    let provider = provider(&server, PortSipApi::SignIn);
    let healer = Arc::clone(&server);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        healer.set_token_outage(None);
    });
    provider.login().await.unwrap();
    let counts = server.counts();
    assert_eq!(counts.token_requests, 2, "{counts:?}");
    assert_eq!(counts.password_grants, 2, "{counts:?}");
}

#[tokio::test]
async fn api_outages_and_queued_answers() {
    let server = server().await;
    let layer = layer(&server);
    assert_eq!(get(&server, &layer).await.unwrap(), StatusCode::OK);

    server.set_api_outage(Some(Outage::Unavailable));
    assert_eq!(
        get(&server, &layer).await.unwrap(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Refused: the HTTP client's error, not a TokenError.
    server.set_api_outage(Some(Outage::Refuse));
    let service = layer.layer(HttpClient::new());
    let request = Request::get(server.url(PATH))
        .body(Full::<Bytes>::default())
        .unwrap();
    let error = service.oneshot(request).await.unwrap_err();
    assert!(TokenError::find(&*error).is_none(), "{error}");

    // Hanging until switched back.
    server.set_api_outage(Some(Outage::Hang));
    let request = get(&server, &layer);
    tokio::pin!(request);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut request)
            .await
            .is_err()
    );
    server.set_api_outage(None);
    assert_eq!(request.await.unwrap(), StatusCode::OK);

    // Queued answers, in order, then the real one.
    server.respond_next_api(CannedResponse::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "oops",
    ));
    server.respond_next_api(
        CannedResponse::new(StatusCode::TOO_MANY_REQUESTS, "slow down")
            .header(RETRY_AFTER, HeaderValue::from_static("1")),
    );
    let service = layer.layer(HttpClient::new());
    let request = || {
        Request::get(server.url(PATH))
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let first = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(first.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let second = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()[RETRY_AFTER], "1");
    assert_eq!(
        service.clone().oneshot(request()).await.unwrap().status(),
        StatusCode::OK
    );

    // Cleared: neither queue answers any more.
    server.respond_next_api(CannedResponse::new(StatusCode::BAD_GATEWAY, ""));
    server.respond_next(CannedResponse::new(StatusCode::BAD_GATEWAY, ""));
    server.clear_queued_responses();
    assert_eq!(get(&server, &layer).await.unwrap(), StatusCode::OK);
    provider(&server, PortSipApi::SignIn).login().await.unwrap();

    let counts = server.counts();
    // 503, refused, 500, 429.
    assert_eq!(counts.failed_api_requests, 4, "{counts:?}");
    // The first, the one held by the hang, the one after the queue, the one after clearing.
    assert_eq!(counts.api_requests, 4, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "{counts:?}");
}
