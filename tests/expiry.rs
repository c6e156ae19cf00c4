//! Expiry formats read right, or refused loudly, over loopback against the embedded server:
//! `expires_at` in milliseconds, a JWT access token's `exp` when no lifetime is stated, and
//! errors that name the field and the reason.
#![cfg(all(feature = "test-server", feature = "client"))]

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tower_bearer_auth::{
    Token, TokenCache, TokenError,
    client::HttpClient,
    provider::{
        oauth2::{OAuth2Error, OAuth2ErrorKind, OAuth2Provider, OAuth2ProviderBuilder},
        portsip::{PORTSIP_CLIENT_ID, PORTSIP_TOKEN_PATH, PortSip, PortSipApi},
    },
    test_server::{CannedResponse, ExpiryFormat, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-password";
const LIFETIME: Duration = Duration::from_secs(600);

async fn server(format: ExpiryFormat) -> TestServer {
    let config = TestServerConfig::new(USER, PASSWORD)
        .lifetime(LIFETIME)
        .expiry_format(format);
    TestServer::start(config).await.unwrap()
}

fn builder(server: &TestServer) -> OAuth2ProviderBuilder<HttpClient> {
    OAuth2Provider::password(
        HttpClient::new(),
        server.url(PORTSIP_TOKEN_PATH),
        USER,
        PASSWORD,
    )
    .client_id(PORTSIP_CLIENT_ID)
}

/// What is left of the token's life, through `expires_at` (a `tokio::time::Instant`).
fn left(token: &Token) -> Option<Duration> {
    let at = token.expires_at()?;
    Some(at.saturating_duration_since(tokio::time::Instant::now()))
}

/// About the server's lifetime: it counts whole seconds, and a few pass during the test.
fn assert_about_lifetime(left: Option<Duration>) {
    let left = left.expect("an expiry");
    assert!(
        left <= LIFETIME + Duration::from_secs(1) && left >= LIFETIME - Duration::from_secs(10),
        "{left:?}"
    );
}

#[tokio::test]
async fn expires_at_in_milliseconds_is_read_as_milliseconds() {
    let server = server(ExpiryFormat::ExpiresAtMillis).await;
    let cache = TokenCache::new(builder(&server).build().unwrap());
    let token = cache.get().await.unwrap();
    assert_about_lifetime(left(&token));
    assert_about_lifetime(token.expires_in());
}

#[tokio::test]
async fn a_jwt_access_token_lends_its_exp_when_no_lifetime_is_stated() {
    let server = server(ExpiryFormat::Jwt).await;
    let token = TokenCache::new(builder(&server).build().unwrap())
        .get()
        .await
        .unwrap();
    assert_about_lifetime(left(&token));

    // Switched off: taken as never expiring, as before.
    let provider = builder(&server).expiry_from_jwt(false).build().unwrap();
    let token = TokenCache::new(provider).get().await.unwrap();
    assert_eq!(token.expires_in(), None);

    // The PortSIP preset, on either API, the same way.
    for api in [PortSipApi::SignIn, PortSipApi::OAuth] {
        let portsip = || PortSip::new(server.base_url(), USER, PASSWORD).api(api);
        let token = TokenCache::new(portsip().build().unwrap())
            .get()
            .await
            .unwrap();
        assert_about_lifetime(token.expires_in());
        let provider = portsip().expiry_from_jwt(false).build().unwrap();
        let token = TokenCache::new(provider).get().await.unwrap();
        assert_eq!(token.expires_in(), None, "{api:?}");
    }

    // An opaque token without a lifetime stays without one.
    server.set_expiry_format(ExpiryFormat::None);
    let token = TokenCache::new(builder(&server).build().unwrap())
        .get()
        .await
        .unwrap();
    assert_eq!(token.expires_in(), None);
}

#[tokio::test]
async fn an_expires_at_that_fits_neither_reading_is_refused_with_a_clear_message() {
    let server = server(ExpiryFormat::ExpiresAt).await;
    let provider = builder(&server).build().unwrap();
    for (expires_at, why) in [
        (
            json!(1e20),
            "it lies beyond the year 3000 even read as milliseconds",
        ),
        (json!(-5), "it lies before 1970"),
        (
            json!("SECRET-soon"),
            "neither a number nor an RFC 3339 time",
        ),
    ] {
        let body = json!({ "access_token": "SECRET-TOKEN", "expires_at": expires_at });
        server.respond_next(CannedResponse::json(StatusCode::OK, &body));
        let error = provider.login().await.unwrap_err();
        let error: OAuth2Error = error;
        assert_eq!(error.kind(), &OAuth2ErrorKind::InvalidResponse);
        let expected = format!(
            "invalid token endpoint response (HTTP 200): `expires_at` is not a Unix time: {why}"
        );
        assert_eq!(error.to_string(), expected);
        assert!(!format!("{error:?}").contains("SECRET"), "{error:?}");
    }

    // Through the cache, the `TokenError`'s message quotes it.
    let body = json!({ "access_token": "SECRET-TOKEN", "expires_at": 1e20 });
    server.respond_next(CannedResponse::json(StatusCode::OK, &body));
    let error = TokenCache::new(provider).get().await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("`expires_at` is not a Unix time"),
        "{message}"
    );
    assert!(!message.contains("SECRET"), "{message}");
    assert!(TokenError::find(&error).is_some());
}
