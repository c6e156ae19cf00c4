//! `OAuth2Provider` and `PortSip` over a real socket, against the embedded test server.

use std::{
    error::Error as _,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::WWW_AUTHENTICATE};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tower::ServiceExt;
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenCache, TokenError, TokenErrorKind,
    client::HttpClient,
    provider::{
        TokenProvider,
        oauth2::{
            BodyFormat, ClientAuth, OAuth2Error, OAuth2ErrorKind, OAuth2Provider,
            OAuth2ProviderBuilder,
        },
        portsip::{
            PORTSIP_CLIENT_ID, PORTSIP_REVOKE_PATH, PORTSIP_TOKEN_PATH, PortSip, PortSipApi,
        },
    },
    test_server::{CannedResponse, ExpiryFormat, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";

async fn server(config: TestServerConfig) -> TestServer {
    TestServer::start(config).await.expect("bind 127.0.0.1")
}

/// What `PortSip` builds for the OAuth token endpoint of `server`, as an `OAuth2Provider`,
/// whose calls return its `OAuth2Error`. (`tests/portsip_v22.rs` has the sign-in API.)
fn portsip(server: &TestServer, password: &str) -> OAuth2Provider<HttpClient> {
    portsip_builder(server, password).build().unwrap()
}

/// The `PortSip` preset, told to use the OAuth token endpoint.
fn preset(server: &TestServer, password: &str) -> PortSip {
    PortSip::new(server.base_url(), USER, password).api(PortSipApi::OAuth)
}

/// What `PortSip` builds for `server`, as a builder to change further.
fn portsip_builder(server: &TestServer, password: &str) -> OAuth2ProviderBuilder<HttpClient> {
    OAuth2Provider::password(
        HttpClient::new(),
        server.url(PORTSIP_TOKEN_PATH),
        USER,
        password,
    )
    .client_id(PORTSIP_CLIENT_ID)
    .scope("all")
    .revoke_url(server.url(PORTSIP_REVOKE_PATH))
    .revoke_with_bearer(true)
    .revoke_refresh_token(false)
}

/// A PortSIP client for `server`: the API service and its token cache.
fn client(server: &TestServer, password: &str) -> (BearerAuth<HttpClient>, TokenCache) {
    let layer = BearerAuthLayer::new(preset(server, password).build().unwrap()).any_origin();
    let cache = layer.cache();
    (tower::Layer::layer(&layer, HttpClient::new()), cache)
}

async fn get(
    client: &BearerAuth<HttpClient>,
    server: &TestServer,
) -> Result<Response<Incoming>, BoxError> {
    let request = Request::get(server.url(API)).body(Full::<Bytes>::default())?;
    client.clone().oneshot(request).await
}

/// The `OAuth2Error` behind a request or cache error.
fn oauth_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> &'a OAuth2Error {
    let token_error = err.downcast_ref::<TokenError>().expect("a TokenError");
    token_error
        .source()
        .and_then(|s| s.downcast_ref::<OAuth2Error>())
        .expect("an OAuth2Error source")
}

#[tokio::test]
async fn password_grant_through_the_layer() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let (client, cache) = client(&server, PASSWORD);
    for _ in 0..3 {
        let response = get(&client, &server).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(server.counts().password_grants, 1, "the token is re-used");
    assert_eq!(server.counts().api_requests, 3);
    assert_eq!(server.counts().unauthorized, 0);
    let token = cache.token().unwrap();
    assert!(token.has_refresh_token());
    assert_eq!(token.scope(), Some("all"));

    let log = server.token_request_log();
    assert_eq!(log.len(), 1);
    let record = &log[0];
    assert_eq!(record.grant_type.as_deref(), Some("password"));
    assert_eq!(record.username.as_deref(), Some(USER));
    assert_eq!(record.scope.as_deref(), Some("all"));
    assert_eq!(record.client_id.as_deref(), Some(PORTSIP_CLIENT_ID));
    assert_eq!(record.domain, None);
    assert!(!record.basic_auth);
    assert_eq!(
        record.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn refresh_token_grant_rotates_the_refresh_token() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = portsip(&server, PASSWORD);
    let first = provider.login().await.unwrap();
    let rt1 = first.refresh_token().unwrap().to_owned();
    let second = provider.refresh(&rt1).await.unwrap();
    let rt2 = second.refresh_token().unwrap();
    assert_ne!(rt1, rt2, "a new refresh token");
    assert_ne!(first.access_token(), second.access_token());
    assert_eq!(server.counts().refresh_grants, 1);

    // The used refresh token is retired.
    let err = provider.refresh(&rt1).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
    assert!(!err.is_transient());
    // The new one works.
    provider.refresh(rt2).await.unwrap();

    let log = server.token_request_log();
    assert_eq!(log[1].grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(log[1].client_id.as_deref(), Some(PORTSIP_CLIENT_ID));
}

#[tokio::test]
async fn refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let server = server(TestServerConfig::new(USER, PASSWORD).rotate_refresh_tokens(false)).await;
    let provider = portsip(&server, PASSWORD);
    let rt = provider
        .login()
        .await
        .unwrap()
        .refresh_token()
        .unwrap()
        .to_owned();
    let refreshed = provider.refresh(&rt).await.unwrap();
    assert_eq!(refreshed.refresh_token(), Some(rt.as_str()));

    // Through the cache: two refreshes with the same refresh token, no second login.
    let (client, cache) = client(&server, PASSWORD);
    get(&client, &server).await.unwrap();
    let a = cache.refresh().await.unwrap();
    let b = cache.refresh().await.unwrap();
    assert!(b.generation() > a.generation());
    assert!(b.has_refresh_token());
    assert_eq!(server.counts().password_grants, 2, "one per provider");
    assert_eq!(server.counts().refresh_grants, 3);
    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn client_credentials_grant_by_basic_and_by_form() {
    let secret = "s&cr=t+ %ü";
    let server = server(
        TestServerConfig::new(USER, PASSWORD)
            .client_id(Some("my client".into()))
            .client_secret(secret),
    )
    .await;
    let url = server.url(PORTSIP_TOKEN_PATH);
    let builder = OAuth2Provider::client_credentials(HttpClient::new(), url, "my client", secret)
        .scope("all");
    let basic = builder.clone().build().unwrap();
    let token = basic.login().await.unwrap();
    assert_eq!(token.refresh_token(), None);
    let form = builder
        .clone()
        .client_auth(ClientAuth::Form)
        .build()
        .unwrap();
    form.login().await.unwrap();
    assert_eq!(server.counts().client_credentials_grants, 2);
    let log = server.token_request_log();
    assert!(log[0].basic_auth);
    assert!(!log[1].basic_auth);
    assert_eq!(log[1].client_id.as_deref(), Some("my client"));

    // A wrong secret is the client's fault: not transient, status 401.
    let wrong = builder.client_secret("nope").build().unwrap();
    let err = wrong.login().await.unwrap_err();
    assert!(err.is_invalid_client(), "{err:?}");
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(!err.is_transient());
    assert!(!format!("{err} {err:?} {wrong:?}").contains("s&cr"));

    // The token is usable on the API.
    let layer = BearerAuthLayer::new(basic).any_origin();
    let api = tower::Layer::layer(&layer, HttpClient::new());
    assert_eq!(get(&api, &server).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn hostile_passwords_reach_the_server_unchanged() {
    let passwords = [
        "a&b=c",
        "plus+plus",
        "100%",
        "%41%2B",
        "with spaces  ",
        " leading",
        "ünïcødé – 日本語 🔑",
        "semi;colon,comma/slash?q#h",
        "quote\"'back\\slash",
        "line\r\nbreak\ttab",
        "&=+%",
    ];
    for password in passwords {
        let server = server(TestServerConfig::new(USER, password)).await;
        let provider = portsip(&server, password);
        let result = provider.login().await;
        assert!(result.is_ok(), "{password:?}: {result:?}");
        // A password that differs only in encoding is refused.
        let mangled = password.replace(' ', "+");
        if mangled != password {
            assert!(portsip(&server, &mangled).login().await.is_err());
        }
    }
}

#[tokio::test]
async fn expiry_formats() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(60))).await;
    let provider = portsip(&server, PASSWORD);
    let near = |at: SystemTime| {
        let d = at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_secs();
        (55..=61).contains(&d)
    };

    server.set_expiry_format(ExpiryFormat::ExpiresIn);
    let t = provider.login().await.unwrap();
    assert_eq!(t.expires_in(), Some(Duration::from_secs(60)));

    server.set_expiry_format(ExpiryFormat::ExpiresInString);
    let t = provider.login().await.unwrap();
    assert_eq!(t.expires_in(), Some(Duration::from_secs(60)));

    server.set_expiry_format(ExpiryFormat::ExpiresAt);
    let t = provider.login().await.unwrap();
    assert!(t.expires_at().is_some_and(near), "{t:?}");
    assert_eq!(t.expires_in(), None);

    server.set_expiry_format(ExpiryFormat::ExpiresAtRfc3339);
    let t = provider.login().await.unwrap();
    assert!(t.expires_at().is_some_and(near), "{t:?}");

    server.set_expiry_format(ExpiryFormat::None);
    let t = provider.login().await.unwrap();
    assert_eq!((t.expires_in(), t.expires_at()), (None, None));

    // Through the cache, an RFC 3339 expiry becomes the token's deadline.
    server.set_expiry_format(ExpiryFormat::ExpiresAtRfc3339);
    let (client, cache) = client(&server, PASSWORD);
    get(&client, &server).await.unwrap();
    let expires = cache.expires_at().expect("an expiry");
    let left = expires - tokio::time::Instant::now();
    assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(61));
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_they_expire() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(1))).await;
    let (client, _cache) = client(&server, PASSWORD);
    for _ in 0..8 {
        assert_eq!(
            get(&client, &server).await.unwrap().status(),
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(server.counts().unauthorized, 0);
    assert_eq!(server.counts().password_grants, 1);
    assert!(server.counts().refresh_grants >= 1);
}

#[tokio::test]
async fn wrong_password_is_a_typed_error() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let (client, cache) = client(&server, "not-the-password");
    let err = get(&client, &server).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TokenError>().unwrap().kind(),
        TokenErrorKind::Login
    );
    let oauth = oauth_error(&*err);
    assert_eq!(oauth.error_code(), Some("invalid_grant"));
    assert!(oauth.is_invalid_grant());
    assert_eq!(oauth.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        oauth.error_description(),
        Some("invalid username or password")
    );
    assert!(!oauth.is_transient());
    assert!(cache.token().is_none());
    assert_eq!(server.counts().api_requests, 0, "the request never left");

    let text = format!("{err} {err:?} {oauth} {oauth:?} {cache:?}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn refused_refresh_falls_back_to_one_login() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let (client, cache) = client(&server, PASSWORD);
    get(&client, &server).await.unwrap();
    server.revoke_refresh_tokens();
    let token = cache.refresh().await.unwrap();
    assert_eq!(token.generation(), 2);
    assert_eq!(server.counts().refresh_grants, 1);
    assert_eq!(server.counts().password_grants, 2);
    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counts().token_requests, 3);
}

#[tokio::test]
async fn non_json_error_bodies_are_reported_bounded() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = portsip(&server, PASSWORD);

    server.respond_next(
        CannedResponse::new(StatusCode::BAD_GATEWAY, "<html>upstream down</html>")
            .content_type("text/html"),
    );
    let err = provider.login().await.unwrap_err();
    assert_eq!(
        err.kind(),
        &OAuth2ErrorKind::Status {
            body: "<html>upstream down</html>".into()
        }
    );
    assert_eq!(err.status(), Some(StatusCode::BAD_GATEWAY));
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "HTTP 502 from the token endpoint: <html>upstream down</html>"
    );

    let long = "x".repeat(10_000);
    server.respond_next(CannedResponse::new(StatusCode::FORBIDDEN, long));
    let err = provider.login().await.unwrap_err();
    assert!(err.to_string().chars().count() < 300, "{err}");
    assert!(!err.is_transient());

    // JSON that is not an RFC 6749 error: reported as text too.
    server.respond_next(CannedResponse::json(
        StatusCode::UNAUTHORIZED,
        &json!({"message": "Unauthorized"}),
    ));
    let err = provider.login().await.unwrap_err();
    assert!(err.to_string().contains("Unauthorized"), "{err}");

    // A success that is not JSON.
    server.respond_next(CannedResponse::new(StatusCode::OK, "ok"));
    let err = provider.login().await.unwrap_err();
    assert_eq!(err.kind(), &OAuth2ErrorKind::InvalidResponse);

    // The server works again afterwards.
    provider.login().await.unwrap();
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = portsip(&server, PASSWORD);
    let big = format!(
        r#"{{"access_token":"a","pad":"{}"}}"#,
        "x".repeat(100 * 1024)
    );

    // With a Content-Length: refused up front.
    server.respond_next(CannedResponse::new(StatusCode::OK, big.clone()));
    let err = provider.login().await.unwrap_err();
    assert_eq!(
        err.kind(),
        &OAuth2ErrorKind::BodyTooLarge { limit: 64 * 1024 }
    );
    assert_eq!(
        err.to_string(),
        "token endpoint response exceeds 65536 bytes (HTTP 200)"
    );

    // Chunked, no length: refused while reading.
    server.respond_next(CannedResponse::new(StatusCode::OK, big).chunked());
    let err = provider.login().await.unwrap_err();
    assert!(matches!(err.kind(), OAuth2ErrorKind::BodyTooLarge { .. }));

    // A smaller limit applies to ordinary responses too.
    let tiny = portsip_builder(&server, PASSWORD)
        .max_body_size(16)
        .build()
        .unwrap();
    let err = tiny.login().await.unwrap_err();
    assert_eq!(err.kind(), &OAuth2ErrorKind::BodyTooLarge { limit: 16 });

    provider.login().await.unwrap();
}

#[tokio::test]
async fn an_error_inside_a_200_is_an_error() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let (client, cache) = client(&server, PASSWORD);
    server.respond_next(CannedResponse::json(
        StatusCode::OK,
        &json!({"error": "invalid_grant", "error_description": "account locked"}),
    ));
    let err = get(&client, &server).await.unwrap_err();
    let oauth = oauth_error(&*err);
    assert!(oauth.is_invalid_grant());
    assert_eq!(oauth.status(), Some(StatusCode::OK));
    assert_eq!(oauth.error_description(), Some("account locked"));
    // Nothing was cached. A refusal of the credentials waits its own, longer pause: requests
    // meanwhile fail at once without reaching the token endpoint…
    tokio::time::sleep(Duration::from_millis(150)).await;
    let calls = server.counts().token_requests;
    let again = get(&client, &server).await.unwrap_err();
    assert!(oauth_error(&*again).is_invalid_grant());
    assert_eq!(server.counts().token_requests, calls);
    // …and an explicit refresh, which ignores the pause, logs in.
    cache.refresh().await.unwrap();
    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoke_logs_out_and_the_next_request_logs_in() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let (client, cache) = client(&server, PASSWORD);
    get(&client, &server).await.unwrap();
    let old = cache.token().unwrap().access_token().to_owned();
    assert_eq!(server.live_tokens(), 1);

    cache.revoke().await.unwrap();
    assert_eq!(server.counts().revocations, 1);
    assert_eq!(server.live_tokens(), 0);
    assert!(cache.token().is_none());
    // The server no longer takes the old token.
    let request = Request::get(server.url(API))
        .header("authorization", format!("Bearer {old}"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = HttpClient::new().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counts().password_grants, 2);
    assert_eq!(
        server.counts().refresh_grants,
        0,
        "revoked refresh token not used"
    );
}

#[tokio::test]
async fn portsip_tenant_login_sends_the_domain() {
    let server = server(TestServerConfig::new(USER, PASSWORD).domain("tenant.example.com")).await;
    let without = portsip(&server, PASSWORD);
    assert!(without.login().await.unwrap_err().is_invalid_grant());

    let with = preset(&server, PASSWORD)
        .domain("tenant.example.com")
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(with).any_origin();
    let api = tower::Layer::layer(&layer, HttpClient::new());
    assert_eq!(get(&api, &server).await.unwrap().status(), StatusCode::OK);
    // Refreshes don't need it.
    layer.cache().refresh().await.unwrap();

    let log = server.token_request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].domain, None);
    assert_eq!(log[1].domain.as_deref(), Some("tenant.example.com"));
    assert_eq!(log[1].status, 200);
    assert_eq!(log[2].grant_type.as_deref(), Some("refresh_token"));
    assert_eq!(log[2].status, 200);
}

#[tokio::test]
async fn protected_endpoint_answers_401_with_www_authenticate() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    for auth in [None, Some("Bearer unknown"), Some("Basic abc")] {
        let mut request = Request::get(server.url(API));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = HttpClient::new()
            .oneshot(request.body(Full::<Bytes>::default()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "invalid_token");
    }
    assert_eq!(server.counts().unauthorized, 3);
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(1))).await;
    let token = portsip(&server, PASSWORD).login().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let status = |token: String| {
        let request = Request::get(server.url(API))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        async move { HttpClient::new().oneshot(request).await.unwrap().status() }
    };
    assert_eq!(
        status(token.access_token().to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.counts().expired_token_requests, 1);

    // Expired and revoked: still counted. Unknown, or revoked before it expired: not.
    server.revoke_all();
    assert_eq!(
        status(token.access_token().to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status("unknown".into()).await, StatusCode::UNAUTHORIZED);
    let fresh = portsip(&server, PASSWORD).login().await.unwrap();
    assert!(server.revoke_token(fresh.access_token()));
    assert_eq!(
        status(fresh.access_token().to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.counts().expired_token_requests, 2);
    assert_eq!(server.counts().unauthorized, 4);
}

#[tokio::test]
async fn unreachable_server_is_a_transient_transport_error() {
    // Bind and drop, so the port is very likely closed.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let provider = PortSip::new(format!("http://{addr}"), USER, PASSWORD)
        .build()
        .unwrap();
    let err = TokenProvider::login(&provider).await.unwrap_err();
    let err = err.downcast_ref::<OAuth2Error>().expect("an OAuth2Error");
    assert_eq!(err.kind(), &OAuth2ErrorKind::Transport);
    assert!(err.is_transient());
    assert_eq!(err.status(), None);
    assert!(err.source().is_some());
}

#[tokio::test]
async fn json_bodies_for_other_vendors() {
    let server = server(TestServerConfig::new(USER, PASSWORD).client_id(None)).await;
    let url = server.url(PORTSIP_TOKEN_PATH);
    let provider = OAuth2Provider::password(HttpClient::new(), url, USER, PASSWORD)
        .body_format(BodyFormat::Json)
        .build()
        .unwrap();
    provider.login().await.unwrap();
    let log = server.token_request_log();
    assert_eq!(log[0].content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let password = "PW-hunter2";
    let server = server(
        TestServerConfig::new(USER, password)
            .client_secret("CS-secret")
            .domain("tenant"),
    )
    .await;
    let provider = portsip_builder(&server, password)
        .login_param("domain", "tenant")
        .client_secret("CS-secret")
        .client_auth(ClientAuth::Form)
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(provider.clone()).any_origin();
    let cache = layer.cache();
    let api = tower::Layer::layer(&layer, HttpClient::new());
    get(&api, &server).await.unwrap();
    let token = cache.token().unwrap();
    let access = token.access_token().to_owned();
    let response = provider.login().await.unwrap();
    let refresh = response.refresh_token().unwrap().to_owned();

    // A refused refresh and a refused login.
    server.revoke_refresh_tokens();
    let refresh_err = provider.refresh(&refresh).await.unwrap_err();
    server.set_password("changed");
    cache.invalidate();
    server.revoke_all();
    let login_err = get(&api, &server).await.unwrap_err();

    let text = format!(
        "{provider:?} {layer:?} {cache:?} {token:?} {response:?} {api:?} {server:?} \
         {refresh_err} {refresh_err:?} {login_err} {login_err:?} {}",
        oauth_error(&*login_err)
    );
    for secret in [password, "CS-secret", access.as_str(), refresh.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[tokio::test]
async fn any_tower_http_service_will_do() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    use tower::ServiceBuilder;

    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    // The user's own client, with their own timeout.
    let http = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build_with(http.clone())
        .unwrap();
    let api = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(provider))
        .service(http);
    let request = Request::get(server.url(API))
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(api.oneshot(request).await.unwrap().status(), StatusCode::OK);
    assert_eq!(server.counts().password_grants, 1);
}

#[tokio::test]
async fn unknown_fields_are_kept() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let (_client, cache) = client(&server, PASSWORD);
    server.respond_next(CannedResponse::json(
        StatusCode::OK,
        &json!({
            "access_token": "AT-canned", "token_type": "bearer", "expires_in": "3600",
            "refresh_token": "RT-canned", "role": "admin", "extension": {"number": "101"}
        }),
    ));
    // The canned token is unknown to the server's API, so only look at the cache.
    let token = cache.get().await.unwrap();
    assert_eq!(token.extra()["role"], "admin");
    assert_eq!(token.extra()["extension"]["number"], "101");
    assert!(token.has_refresh_token());
    assert_eq!(server.counts().failed_token_requests, 0);
}

#[tokio::test]
async fn token_errors_say_what_happened_and_answer_the_usual_questions() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;

    // A wrong password: the message alone tells, and the helpers agree.
    let (wrong, _cache) = client(&server, "not-the-password");
    let err = get(&wrong, &server).await.unwrap_err();
    let token_error = err.downcast_ref::<TokenError>().unwrap();
    assert_eq!(
        token_error.to_string(),
        "token provider failed to log in: invalid_grant: invalid username or password (HTTP 400)"
    );
    assert!(token_error.credentials_rejected());
    assert!(!token_error.is_transient());
    assert_eq!(token_error.status(), Some(StatusCode::BAD_REQUEST));
    let oauth = token_error.oauth2_error().unwrap();
    assert_eq!(oauth.error_code(), Some("invalid_grant"));
    assert!(!err.to_string().contains("not-the-password"));

    // A password changed while a token was cached: the refresh is refused and so is the login
    // after it. Whatever kind that gets, the credentials were rejected.
    let (client, cache) = client(&server, PASSWORD);
    get(&client, &server).await.unwrap();
    server.set_password("changed");
    server.revoke_refresh_tokens();
    let err = cache.refresh().await.unwrap_err();
    assert!(err.credentials_rejected(), "{err}");
    assert!(!err.is_transient());
    assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));

    // An unknown client id: `invalid_client`, status 401.
    let provider = preset(&server, "changed")
        .client_id("someone-else")
        .build()
        .unwrap();
    let err = BearerAuthLayer::new(provider)
        .any_origin()
        .cache()
        .get()
        .await
        .unwrap_err();
    assert!(err.credentials_rejected(), "{err}");
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        err.oauth2_error().and_then(OAuth2Error::error_code),
        Some("invalid_client")
    );

    // A server in trouble: transient, not the credentials' fault.
    server.respond_next(CannedResponse::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "down for maintenance",
    ));
    let err = BearerAuthLayer::new(portsip(&server, "changed"))
        .cache()
        .get()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(!err.credentials_rejected());
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        err.to_string(),
        "token provider failed to log in: HTTP 503 from the token endpoint: down for maintenance"
    );

    // No server at all: transient, and no status.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let provider = PortSip::new(format!("http://{addr}"), USER, PASSWORD)
        .build()
        .unwrap();
    let err = BearerAuthLayer::new(provider)
        .cache()
        .get()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(!err.credentials_rejected());
    assert_eq!(err.status(), None);
}

#[test]
fn plain_http_off_loopback_is_refused_unless_allowed() {
    use tower_bearer_auth::provider::BuildErrorKind;

    let err = PortSip::new("http://pbx.example.com:8887", USER, PASSWORD)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);
    assert!(
        err.to_string().contains("http://pbx.example.com:8887"),
        "{err}"
    );
    assert!(!err.to_string().contains(PASSWORD));
    let err = OAuth2Provider::password(
        HttpClient::new(),
        "http://auth.example.com/token",
        USER,
        PASSWORD,
    )
    .build()
    .unwrap_err();
    assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint);

    // Opting in.
    PortSip::new("http://pbx.example.com:8887", USER, PASSWORD)
        .allow_insecure_http(true)
        .build()
        .unwrap();
    OAuth2Provider::password(
        HttpClient::new(),
        "http://auth.example.com/token",
        USER,
        PASSWORD,
    )
    .allow_insecure_http(true)
    .build()
    .unwrap();

    // https and loopback need no opt-in.
    PortSip::new("https://pbx.example.com:8887", USER, PASSWORD)
        .build()
        .unwrap();
    for loopback in [
        "http://127.0.0.1:8887",
        "http://[::1]:8887",
        "http://localhost",
    ] {
        PortSip::new(loopback, USER, PASSWORD).build().unwrap();
    }
}

#[tokio::test]
async fn the_embedded_server_works_over_plain_http_on_localhost() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let base = format!("http://localhost:{}", server.addr().port());
    let provider = PortSip::new(base, USER, PASSWORD).build().unwrap();
    TokenProvider::login(&provider).await.unwrap();
    assert_eq!(server.counts().password_grants, 1);
}

#[tokio::test]
async fn a_portsip_provider_is_bound_to_the_pbx() {
    use tower_bearer_auth::Origin;

    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let origin = Origin::try_from(server.base_url().as_str()).unwrap();
    for api in [PortSipApi::Auto, PortSipApi::SignIn, PortSipApi::OAuth] {
        let provider = preset(&server, PASSWORD).api(api).build().unwrap();
        assert_eq!(provider.bound_origin(), Some(&origin));
        assert_eq!(TokenProvider::origin(&provider), Some(origin.clone()));
    }
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build()
        .unwrap();
    // Through the pointers the layer keeps.
    let shared: std::sync::Arc<dyn TokenProvider> = std::sync::Arc::new(provider);
    assert_eq!(shared.origin(), Some(origin));
    // A generic provider says nothing unless told.
    let generic = portsip_builder(&server, PASSWORD).build().unwrap();
    assert_eq!(TokenProvider::origin(&generic), None);
    let pbx = Origin::try_from("https://pbx.example.com:8887").unwrap();
    let bound = portsip_builder(&server, PASSWORD)
        .bind_origin(pbx.clone())
        .build()
        .unwrap();
    assert_eq!(TokenProvider::origin(&bound), Some(pbx));
}

/// An RFC 7009 server's provider: the test server's endpoints, without PortSIP's bearer logout.
fn rfc7009(server: &TestServer) -> OAuth2Provider<HttpClient> {
    OAuth2Provider::password(
        HttpClient::new(),
        server.url(PORTSIP_TOKEN_PATH),
        USER,
        PASSWORD,
    )
    .client_id(PORTSIP_CLIENT_ID)
    .revoke_url(server.url(PORTSIP_REVOKE_PATH))
    .build()
    .unwrap()
}

#[tokio::test]
async fn revoke_revokes_the_refresh_token_and_the_access_token() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = rfc7009(&server);

    // Directly: both tokens are dead afterwards.
    let login = provider.login().await.unwrap();
    let access = login.access_token().to_owned();
    let refresh = login.refresh_token().unwrap().to_owned();
    provider.revoke(&access, Some(&refresh)).await.unwrap();
    let counts = server.counts();
    assert_eq!(counts.revocations, 2, "one request per token");
    assert_eq!(counts.refresh_token_revocations, 1);
    assert_eq!(server.live_tokens(), 0);
    let err = provider.refresh(&refresh).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err}");
    let log = server.token_request_log();
    assert_eq!(
        log.last().unwrap().grant_type.as_deref(),
        Some("refresh_token")
    );

    // Through the cache: `TokenCache::revoke` hands over both.
    let layer = BearerAuthLayer::new(provider).any_origin();
    let cache = layer.cache();
    let api = tower::Layer::layer(&layer, HttpClient::new());
    assert_eq!(get(&api, &server).await.unwrap().status(), StatusCode::OK);
    let before = server.counts();
    cache.revoke().await.unwrap();
    let after = server.counts();
    assert_eq!(after.revocations - before.revocations, 2);
    assert_eq!(
        after.refresh_token_revocations - before.refresh_token_revocations,
        1
    );
    assert_eq!(server.live_tokens(), 0);
}

#[tokio::test]
async fn a_failed_refresh_token_revocation_still_revokes_the_access_token() {
    use std::sync::{Arc, Mutex};

    // A revocation endpoint that refuses refresh tokens and notes what it was asked.
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let endpoint = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let seen = seen.clone();
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)?;
            let hint = fields
                .iter()
                .find(|(k, _)| k == "token_type_hint")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            seen.lock().unwrap().push(hint.clone());
            let (status, body) = if hint == "refresh_token" {
                (503, r#"{"error":"temporarily_unavailable"}"#)
            } else {
                (200, "{}")
            };
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, BoxError>(response)
        }
    });
    let provider = OAuth2Provider::password(endpoint, "https://auth.test/token", USER, PASSWORD)
        .revoke_url("https://auth.test/revoke")
        .build()
        .unwrap();
    let err = provider.revoke("at", Some("rt")).await.unwrap_err();
    assert_eq!(err.error_code(), Some("temporarily_unavailable"));
    assert_eq!(*asked.lock().unwrap(), ["refresh_token", "access_token"]);

    // Without a refresh token, or with the second request turned off: one request.
    asked.lock().unwrap().clear();
    provider.revoke("at", None).await.unwrap();
    assert_eq!(*asked.lock().unwrap(), ["access_token"]);
}

#[tokio::test]
async fn portsip_logs_out_with_one_request_that_ends_the_session() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = portsip(&server, PASSWORD);
    let login = provider.login().await.unwrap();
    let refresh = login.refresh_token().unwrap().to_owned();
    provider
        .revoke(login.access_token(), Some(&refresh))
        .await
        .unwrap();
    let counts = server.counts();
    assert_eq!(counts.revocations, 1, "PortSIP's logout is one request");
    assert_eq!(counts.refresh_token_revocations, 0);
    // The refresh token went with the session.
    assert!(
        provider
            .refresh(&refresh)
            .await
            .unwrap_err()
            .is_invalid_grant()
    );
    assert_eq!(server.live_tokens(), 0);
}
