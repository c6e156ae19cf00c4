//! A wrong password never locks the account: refused credentials wait a backoff of their own,
//! much longer than a failure's, and requests meanwhile fail at once without reaching the
//! token endpoint. Over real sockets, against the embedded server, on tokio's paused clock.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, TokenCache, TokenCacheBuilder, TokenError,
    client::HttpClient,
    provider::portsip::{PORTSIP_SIGN_IN_PATH, PortSip},
    test_server::{TestServer, TestServerConfig},
};

const API: &str = "/api/account/profile";

async fn server() -> TestServer {
    TestServer::start(TestServerConfig::new("admin", "right"))
        .await
        .unwrap()
}

fn cache(server: &TestServer, password: &str) -> TokenCacheBuilder {
    let provider = PortSip::new(server.base_url(), "admin", password)
        .build()
        .unwrap();
    TokenCache::builder(provider)
}

/// Sends one request through `layer`; the error, if the token could not be had.
async fn send(layer: &BearerAuthLayer, server: &TestServer) -> Result<(), TokenError> {
    let request = Request::get(server.url(API))
        .body(Full::<Bytes>::default())
        .unwrap();
    match layer.layer(HttpClient::new()).oneshot(request).await {
        Ok(_) => Ok(()),
        Err(e) => Err(*e.downcast::<TokenError>().expect("a token error")),
    }
}

fn logins(server: &TestServer) -> usize {
    server
        .token_request_log()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("password") || r.path == PORTSIP_SIGN_IN_PATH)
        .count()
}

/// A request a second for ten minutes with a wrong password: the logins follow the refused
/// backoff (30 s doubling, jittered to between half and all of it: 5 or 6 logins in ten
/// minutes, where the ordinary backoff would make about 30), and every request fails at once
/// with the refusal. New credentials in a new layer work on the next request.
#[tokio::test(start_paused = true)]
async fn a_wrong_password_is_tried_on_the_refused_backoff() {
    let server = server().await;
    let wrong = BearerAuthLayer::new(cache(&server, "wrong").build());
    for _ in 0..600 {
        let error = send(&wrong, &server).await.unwrap_err();
        assert!(error.credentials_rejected(), "{error}");
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let attempts = logins(&server);
    assert!(
        (5..=6).contains(&attempts),
        "{attempts} logins with a wrong password in ten minutes"
    );

    let right = BearerAuthLayer::new(cache(&server, "right").build());
    send(&right, &server).await.unwrap();
}

/// Fifty concurrent requests with a wrong password make one login, and fail with its refusal.
#[tokio::test(start_paused = true)]
async fn concurrent_requests_share_one_refused_login() {
    let server = server().await;
    let wrong = BearerAuthLayer::new(cache(&server, "wrong").build());
    let mut requests = Vec::new();
    for _ in 0..50 {
        let (wrong, server) = (wrong.clone(), server.base_url());
        requests.push(tokio::spawn(async move {
            let request = Request::get(format!("{server}{API}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            wrong
                .layer(HttpClient::new())
                .oneshot(request)
                .await
                .is_err()
        }));
    }
    for request in requests {
        assert!(request.await.unwrap(), "a request went through");
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(send(&wrong, &server).await.is_err());
    assert_eq!(logins(&server), 1, "logins in five seconds");
}

/// The refused backoff is configurable, and an ordinary failure keeps the short one.
#[tokio::test(start_paused = true)]
async fn the_refused_backoff_is_configurable() {
    let server = server().await;
    let wrong = BearerAuthLayer::new(
        cache(&server, "wrong")
            .refused_backoff(Duration::from_secs(1), Duration::from_secs(1))
            .build(),
    );
    for _ in 0..10 {
        let _ = send(&wrong, &server).await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let attempts = logins(&server);
    assert!(
        (9..=10).contains(&attempts),
        "{attempts} logins in ten seconds"
    );
}
