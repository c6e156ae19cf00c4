//! The chain the README recommends, over loopback sockets: reqwest-retry's
//! `RetryTransientMiddleware` in front of `BearerAuthMiddleware`, against the embedded server.
//! `token_error` finds the crate's error behind `RetryError`.
#![cfg(all(feature = "reqwest-middleware", feature = "test-server"))]

use std::time::Duration;

use http::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
use tower_bearer_auth::{
    Origin, TokenCache, TokenError,
    provider::portsip::PortSip,
    reqwest::{BearerAuthMiddleware, ReqwestService, token_error},
    test_server::{CannedResponse, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-password";
const PATH: &str = "/api/account/extensions";

/// Retry outside, the token middleware next to the client, bound to the server's origin.
fn client(server: &TestServer, password: &str) -> ClientWithMiddleware {
    let http = reqwest::Client::new();
    let provider = PortSip::new(server.base_url(), USER, password)
        .build_with(ReqwestService::new(http.clone()))
        .unwrap();
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(10), Duration::from_millis(50))
        .build_with_max_retries(3);
    let auth = BearerAuthMiddleware::new(TokenCache::new(provider))
        .allow_origin(Origin::try_from(server.base_url().as_str()).unwrap());
    ClientBuilder::new(http)
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(auth)
        .build()
}

#[tokio::test]
async fn a_refused_login_is_found_behind_the_retry_middleware() {
    let server = TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap();
    let client = client(&server, "wrong password");
    let error = client.get(server.url(PATH)).send().await.unwrap_err();
    let token = token_error(&error).expect("the TokenError, behind RetryError");
    assert!(token.credentials_rejected(), "{token}");
    assert_eq!(token.status(), Some(StatusCode::BAD_REQUEST));
    assert!(
        error
            .to_string()
            .contains("token provider failed to log in"),
        "{error}"
    );
    // Through `std::error::Error` alone, too.
    assert!(TokenError::find(&error).is_some());
    // Refused credentials are not retried: one login, and nothing reached the API.
    let counts = server.counts();
    assert_eq!(counts.password_grants, 1, "{counts:?}");
    assert_eq!(counts.api_requests, 0, "{counts:?}");
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains("wrong password"), "{text}");
    }
}

#[tokio::test]
async fn a_server_side_revocation_is_recovered_behind_the_retry_middleware() {
    let server = TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap();
    let client = client(&server, PASSWORD);
    let url = server.url(PATH);
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    // Revoked: the `401` is replayed once with a new token, inside one attempt.
    server.revoke_all();
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counts().unauthorized, 1);
    assert_eq!(server.counts().password_grants, 2);

    // Revoked, and the password changed meanwhile: no new token; the refusal is found.
    server.revoke_all();
    server.set_password("changed on the server");
    let error = client.get(&url).send().await.unwrap_err();
    let token = token_error(&error).expect("the TokenError, behind RetryError");
    assert!(token.credentials_rejected(), "{token}");
}

#[tokio::test]
async fn transient_api_failures_are_retried_each_with_the_current_token() {
    let server = TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap();
    let client = client(&server, PASSWORD);
    for status in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        server.respond_next_api(CannedResponse::new(status, "try again"));
    }
    let response = client.get(server.url(PATH)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let counts = server.counts();
    assert_eq!(counts.failed_api_requests, 3, "{counts:?}");
    assert_eq!(counts.api_requests, 1, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "every attempt carried the token");
    assert_eq!(counts.password_grants, 1, "{counts:?}");
}
