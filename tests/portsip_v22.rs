//! The `PortSip` preset against the embedded server in each of its configurations: a v22 PBX
//! that serves only the sign-in API, an older one that serves only the OAuth token endpoint,
//! one that serves both, two-factor sign-in, and PortSIP's error bodies. Real sockets on
//! 127.0.0.1; short token lifetimes where time matters.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenCache, TokenError, TokenErrorKind,
    client::HttpClient,
    provider::{
        TokenProvider,
        portsip::{
            PORTSIP_REFRESH_PATH, PORTSIP_SIGN_IN_PATH, PORTSIP_SIGN_OUT_PATH, PORTSIP_TOKEN_PATH,
            PORTSIP_VERIFY_OTP_PATH, PortSip, PortSipApi, PortSipErrorKind,
        },
    },
    test_server::{CannedResponse, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "p&ss=w+rd \"q\" ü";
const API: &str = "/api/account/extensions";
const CODE: &str = "493817";

/// A v22 PBX without the OAuth token endpoint.
fn v22_only() -> TestServerConfig {
    TestServerConfig::new(USER, PASSWORD).oauth_api(false)
}

/// A PBX older than v22.2.11: the OAuth token endpoint only.
fn oauth_only() -> TestServerConfig {
    TestServerConfig::new(USER, PASSWORD).sign_in_api(false)
}

async fn start(config: TestServerConfig) -> TestServer {
    TestServer::start(config).await.expect("bind 127.0.0.1")
}

/// A client of `server` through the preset as `portsip` configures it.
fn client(server: &TestServer, portsip: PortSip) -> (BearerAuth<HttpClient>, TokenCache) {
    let _ = server;
    let layer = BearerAuthLayer::new(portsip.build().unwrap());
    let cache = layer.cache();
    (tower::Layer::layer(&layer, HttpClient::new()), cache)
}

fn preset(server: &TestServer, password: &str) -> PortSip {
    PortSip::new(server.base_url(), USER, password)
}

async fn get(
    client: &BearerAuth<HttpClient>,
    server: &TestServer,
) -> Result<Response<Incoming>, BoxError> {
    let request = Request::get(server.url(API)).body(Full::<Bytes>::default())?;
    client.clone().oneshot(request).await
}

fn token_error(err: &BoxError) -> &TokenError {
    err.downcast_ref::<TokenError>()
        .unwrap_or_else(|| panic!("not a TokenError: {err:?}"))
}

#[tokio::test]
async fn a_v22_only_pbx_signs_in_refreshes_and_signs_out() {
    let server = start(v22_only().lifetime(Duration::from_secs(1))).await;
    let (client, cache) = client(&server, preset(&server, PASSWORD));
    // More than three token lifetimes of requests.
    let mut sent = 0;
    for _ in 0..35 {
        let response = get(&client, &server).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = server.counts();
    assert_eq!(counts.api_requests, sent, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "{counts:?}");
    assert_eq!(counts.expired_token_requests, 0, "{counts:?}");
    assert_eq!(counts.failed_token_requests, 0, "{counts:?}");
    assert_eq!(counts.not_found, 0, "{counts:?}");
    assert_eq!(counts.sign_ins, 1, "{counts:?}");
    assert_eq!(counts.password_grants, 1, "no OAuth login: {counts:?}");
    assert!(counts.sign_in_refreshes >= 3, "{counts:?}");
    assert_eq!(
        counts.refresh_grants, counts.sign_in_refreshes,
        "{counts:?}"
    );
    assert_eq!(counts.reused_refresh_tokens, 0, "{counts:?}");

    // Each refresh rotated the refresh token, and each went to the sign-in API as JSON.
    let log = server.token_request_log();
    assert_eq!(log[0].path, PORTSIP_SIGN_IN_PATH);
    assert_eq!(log[0].username.as_deref(), Some(USER));
    assert_eq!(log[0].content_type.as_deref(), Some("application/json"));
    assert!(log[1..].iter().all(|r| r.path == PORTSIP_REFRESH_PATH));
    assert!(log.iter().all(|r| r.status == 200));

    // A clean logout goes to `sign_out`, with the token, which the server then refuses.
    let token = cache.token().unwrap().access_token().to_owned();
    cache.revoke().await.unwrap();
    assert_eq!(server.counts().sign_outs, 1);
    assert_eq!(server.counts().revocations, 1);
    assert_eq!(server.authorize(Some(&format!("Bearer {token}"))), None);
}

#[tokio::test]
async fn an_oauth_only_pbx_is_found_after_one_404_and_kept() {
    let server = start(oauth_only()).await;
    let (client, cache) = client(&server, preset(&server, PASSWORD));
    for _ in 0..3 {
        assert_eq!(
            get(&client, &server).await.unwrap().status(),
            StatusCode::OK
        );
    }
    cache.refresh().await.unwrap();
    cache.revoke().await.unwrap();
    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
    let counts = server.counts();
    assert_eq!(
        counts.not_found, 1,
        "one 404, then the OAuth endpoint: {counts:?}"
    );
    assert_eq!(counts.sign_ins, 0, "{counts:?}");
    assert_eq!(counts.password_grants, 2, "{counts:?}");
    assert_eq!(counts.refresh_grants, 1, "{counts:?}");
    assert_eq!(counts.revocations, 1, "{counts:?}");
    assert_eq!(counts.failed_token_requests, 0, "{counts:?}");
    let log = server.token_request_log();
    assert!(log.iter().all(|r| r.path == PORTSIP_TOKEN_PATH), "{log:?}");
}

/// A wrong password, through the layer: the server's words, and refused credentials.
async fn refused(server: &TestServer, portsip: PortSip) -> String {
    let (client, cache) = client(server, portsip);
    let err = get(&client, server).await.unwrap_err();
    let error = token_error(&err);
    assert!(error.credentials_rejected(), "{error}");
    assert!(!error.is_transient(), "{error}");
    assert!(cache.token().is_none());
    assert_eq!(server.counts().api_requests, 0, "the request never left");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("not-the-password"), "{text}");
    error.to_string()
}

#[tokio::test]
async fn a_wrong_password_is_refused_credentials_on_the_sign_in_api() {
    let server = start(v22_only()).await;
    let message = refused(&server, preset(&server, "not-the-password")).await;
    assert!(
        message.contains("Login failed, authentication error"),
        "{message}"
    );
    assert!(message.contains("UNAUTHORIZED"), "{message}");
    assert!(
        message.contains("invalid username or password"),
        "{message}"
    );
    assert_eq!(server.counts().sign_ins, 1);
}

#[tokio::test]
async fn a_wrong_password_is_refused_credentials_on_the_oauth_api() {
    // PortSIP's error bodies.
    let server = start(oauth_only().portsip_error_bodies(true)).await;
    let message = refused(&server, preset(&server, "not-the-password")).await;
    assert!(
        message.contains("Login failed, authentication error"),
        "{message}"
    );
    assert!(message.contains("(HTTP 400)"), "{message}");
    // RFC 6749 error bodies.
    let server = start(oauth_only()).await;
    let message = refused(&server, preset(&server, "not-the-password")).await;
    assert!(
        message.contains("invalid username or password"),
        "{message}"
    );
}

#[tokio::test]
async fn two_factor_without_a_callback_fails_at_once_and_says_so() {
    let server = start(TestServerConfig::new(USER, PASSWORD).two_factor(CODE)).await;
    // Within a second: a login still under way then would fail with `Timeout` instead.
    let layer = BearerAuthLayer::new(
        TokenCache::builder(preset(&server, PASSWORD).build().unwrap())
            .timeout(Duration::from_secs(1))
            .build(),
    )
    .any_origin();
    let client = tower::Layer::layer(&layer, HttpClient::new());
    let err = get(&client, &server).await.unwrap_err();
    let error = token_error(&err);
    assert_eq!(error.kind(), TokenErrorKind::Login, "{error}");
    assert!(error.two_factor_required(), "{error}");
    assert_eq!(
        error.portsip_error().map(|e| e.kind()),
        Some(PortSipErrorKind::TwoFactorRequired)
    );
    assert!(error.credentials_rejected(), "no use trying again as is");
    assert!(!error.is_transient());
    let message = error.to_string();
    assert!(
        message.contains("two-factor authentication is required for this user"),
        "{message}"
    );
    assert!(message.contains("PortSip::one_time_code"), "{message}");
    let counts = server.counts();
    assert_eq!(counts.api_requests, 0, "{counts:?}");
    assert_eq!(counts.sign_ins, 1, "one attempt: {counts:?}");
    assert_eq!(counts.otp_verifications, 0, "{counts:?}");
    // Nothing secret in what the caller sees.
    assert!(!format!("{err} {err:?}").contains("2FA"), "{err:?}");
}

#[tokio::test]
async fn a_refused_refresh_on_the_sign_in_api_falls_back_to_one_sign_in() {
    let server = start(v22_only()).await;
    let (client, cache) = client(&server, preset(&server, PASSWORD));
    get(&client, &server).await.unwrap();
    server.revoke_refresh_tokens();
    let token = cache.refresh().await.unwrap();
    assert_eq!(token.generation(), 2);
    let counts = server.counts();
    assert_eq!(counts.sign_in_refreshes, 1, "{counts:?}");
    assert_eq!(counts.sign_ins, 2, "{counts:?}");
    assert_eq!(
        counts.failed_token_requests, 1,
        "the refused refresh: {counts:?}"
    );
    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counts().token_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_requests_share_one_sign_in() {
    let server = start(TestServerConfig::new(USER, PASSWORD)).await;
    server.set_token_delay(Duration::from_millis(200));
    let (client, _cache) = client(&server, preset(&server, PASSWORD));
    let url = server.url(API);
    let requests = (0..1000).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            let request = Request::get(url).body(Full::<Bytes>::default()).unwrap();
            client.oneshot(request).await.map(|r| r.status())
        })
    });
    let requests: Vec<_> = requests.collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), StatusCode::OK);
    }
    let counts = server.counts();
    assert_eq!(counts.sign_ins, 1, "{counts:?}");
    assert_eq!(counts.token_requests, 1, "{counts:?}");
    assert_eq!(counts.api_requests, 1000, "{counts:?}");
}

/// Fifty callers with a wrong password for five seconds: at most three sign-ins reach the PBX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_not_hammered() {
    let server = start(v22_only()).await;
    let (client, _cache) = client(&server, preset(&server, "not-the-password"));
    let failures = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = client.clone();
            let url = server.url(API);
            let failures = failures.clone();
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    let request = Request::get(&url).body(Full::<Bytes>::default()).unwrap();
                    if client.clone().oneshot(request).await.is_err() {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(failures.load(Ordering::SeqCst) > 50);
    let sign_ins = server.counts().sign_ins;
    assert!(sign_ins <= 3, "{sign_ins} sign-ins in 5 s");
}

/// POSTs `body` as JSON to `path`, with `bearer` if given; the status and the JSON answer.
async fn post(server: &TestServer, path: &str, body: Value, bearer: Option<&str>) -> (u16, Value) {
    let mut request = Request::post(server.url(path)).header("content-type", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = HttpClient::new().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_embedded_server_speaks_the_sign_in_api() {
    let server = start(TestServerConfig::new(USER, PASSWORD).two_factor(CODE)).await;
    let login = json!({"username": USER, "password": PASSWORD});
    let (status, body) = post(&server, PORTSIP_SIGN_IN_PATH, login.clone(), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["two_factor_enabled"], true);
    let session = body["token"].as_str().unwrap().to_owned();
    assert!(body.get("access_token").is_none());

    let wrong = json!({"token": session, "code": "000000"});
    let (status, body) = post(&server, PORTSIP_VERIFY_OTP_PATH, wrong, None).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    let right = json!({"token": session, "code": CODE});
    let (status, body) = post(&server, PORTSIP_VERIFY_OTP_PATH, right.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64());
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    // The session is used up.
    let (status, _) = post(&server, PORTSIP_VERIFY_OTP_PATH, right, None).await;
    assert_eq!(status, 400);

    let (status, body) = post(
        &server,
        PORTSIP_REFRESH_PATH,
        json!({"refresh_token": refresh}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(body["refresh_token"].as_str(), Some(refresh.as_str()));
    let (status, body) = post(
        &server,
        PORTSIP_REFRESH_PATH,
        json!({"refresh_token": refresh}),
        None,
    )
    .await;
    assert_eq!(status, 400, "refresh tokens are single-use: {body}");
    assert_eq!(server.counts().reused_refresh_tokens, 1);

    let (status, _) = post(&server, PORTSIP_SIGN_OUT_PATH, json!({}), None).await;
    assert_eq!(status, 401, "sign_out needs the token");
    let (status, _) = post(&server, PORTSIP_SIGN_OUT_PATH, json!({}), Some(&access)).await;
    assert_eq!(status, 200);

    // Not JSON.
    let request = Request::post(server.url(PORTSIP_SIGN_IN_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from("username=admin")))
        .unwrap();
    let response = HttpClient::new().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let counts = server.counts();
    assert_eq!(counts.sign_ins, 2, "{counts:?}");
    assert_eq!(counts.two_factor_challenges, 1, "{counts:?}");
    assert_eq!(counts.otp_verifications, 3, "{counts:?}");
    assert_eq!(counts.sign_in_refreshes, 2, "{counts:?}");
    assert_eq!(counts.sign_outs, 2, "{counts:?}");
    assert_eq!(counts.password_grants, 2, "{counts:?}");
    assert_eq!(counts.not_found, 0, "{counts:?}");

    // Switched off: 404, counted apart.
    let old = start(oauth_only()).await;
    let (status, body) = post(&old, PORTSIP_SIGN_IN_PATH, login, None).await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], "NOT_FOUND");
    assert_eq!(old.counts().not_found, 1);
    assert_eq!(old.counts().token_requests, 0);
    let v22 = start(v22_only()).await;
    let request = Request::post(v22.url(PORTSIP_TOKEN_PATH))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = HttpClient::new().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// A `PortSip` for a two-factor user whose callback answers `code`, counting its calls.
fn with_code(server: &TestServer, code: &'static str, calls: &Arc<AtomicUsize>) -> PortSip {
    let calls = calls.clone();
    preset(server, PASSWORD)
        .domain("tenant.example")
        .one_time_code(move |challenge| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(challenge.username(), USER);
            assert_eq!(challenge.domain(), Some("tenant.example"));
            assert!(challenge.session_token().starts_with("2FA"));
            async move { Ok::<_, BoxError>(format!("{code}\r\n")) }
        })
}

#[tokio::test]
async fn two_factor_with_a_callback_signs_in_headless() {
    let server = start(v22_only().two_factor(CODE).lifetime(Duration::from_secs(1))).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (client, cache) = client(&server, with_code(&server, CODE, &calls));
    for _ in 0..15 {
        assert_eq!(
            get(&client, &server).await.unwrap().status(),
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = server.counts();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{counts:?}");
    assert_eq!(counts.sign_ins, 1, "{counts:?}");
    assert_eq!(counts.two_factor_challenges, 1, "{counts:?}");
    assert_eq!(counts.otp_verifications, 1, "{counts:?}");
    assert!(
        counts.sign_in_refreshes >= 1,
        "refreshes need no code: {counts:?}"
    );
    assert_eq!(counts.failed_token_requests, 0, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "{counts:?}");
    assert!(cache.token().unwrap().has_refresh_token());
}

#[tokio::test]
async fn two_factor_with_a_wrong_code_is_a_typed_error() {
    let server = start(v22_only().two_factor(CODE)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (client, cache) = client(&server, with_code(&server, "000000", &calls));
    let err = get(&client, &server).await.unwrap_err();
    let error = token_error(&err);
    assert_eq!(
        error.portsip_error().map(|e| e.kind()),
        Some(PortSipErrorKind::OneTimeCodeRejected)
    );
    assert!(error.credentials_rejected(), "{error}");
    assert!(!error.two_factor_required());
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    let message = error.to_string();
    assert!(message.contains("refused the one-time code"), "{message}");
    assert!(message.contains("Verification failed"), "{message}");
    assert!(
        !format!("{message} {err:?}").contains("000000"),
        "{message}"
    );
    assert!(cache.token().is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.counts().otp_verifications, 1);
    assert_eq!(server.counts().api_requests, 0);
}

#[tokio::test]
async fn a_failing_callback_is_a_typed_error() {
    let server = start(v22_only().two_factor(CODE)).await;
    let provider = preset(&server, PASSWORD)
        .one_time_code(|_| async { Err::<String, _>("the mailbox is unreachable") })
        .build()
        .unwrap();
    let err = BearerAuthLayer::new(provider)
        .any_origin()
        .cache()
        .get()
        .await
        .unwrap_err();
    assert_eq!(
        err.portsip_error().map(|e| e.kind()),
        Some(PortSipErrorKind::OneTimeCode)
    );
    assert!(!err.credentials_rejected());
    assert!(
        err.to_string().contains("the mailbox is unreachable"),
        "{err}"
    );
    assert_eq!(server.counts().otp_verifications, 0);
}

#[tokio::test]
async fn the_choice_is_made_once_and_shared_by_clones() {
    // Both APIs: the sign-in API.
    let server = start(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = preset(&server, PASSWORD).build().unwrap();
    assert_eq!(provider.api(), PortSipApi::Auto);
    assert_eq!(provider.chosen_api(), None);
    let clone = provider.clone();
    provider.login().await.unwrap();
    assert_eq!(clone.chosen_api(), Some(PortSipApi::SignIn));
    assert_eq!(server.counts().sign_ins, 1);
    assert_eq!(server.counts().password_grants, 1);

    // The OAuth endpoint only: one 404, for every clone.
    let old = start(oauth_only()).await;
    let provider = preset(&old, PASSWORD).build().unwrap();
    let clone = provider.clone();
    provider.login().await.unwrap();
    assert_eq!(clone.chosen_api(), Some(PortSipApi::OAuth));
    let token = clone.login().await.unwrap();
    clone.refresh(token.refresh_token().unwrap()).await.unwrap();
    assert_eq!(old.counts().not_found, 1);
    assert_eq!(old.counts().password_grants, 2);

    // A wrong password on the sign-in API is an answer from it: no detour to OAuth.
    let provider = preset(&server, "not-the-password").build().unwrap();
    provider.login().await.unwrap_err();
    assert_eq!(provider.chosen_api(), Some(PortSipApi::SignIn));
    assert_eq!(server.counts().not_found, 0);
}

#[tokio::test]
async fn an_explicit_choice_is_kept_and_explained() {
    // OAuth on a PBX that serves both: never the sign-in API.
    let server = start(TestServerConfig::new(USER, PASSWORD)).await;
    let portsip = preset(&server, PASSWORD).api(PortSipApi::OAuth);
    let (client, cache) = client(&server, portsip);
    assert_eq!(
        get(&client, &server).await.unwrap().status(),
        StatusCode::OK
    );
    cache.refresh().await.unwrap();
    cache.revoke().await.unwrap();
    let counts = server.counts();
    assert_eq!(
        counts.sign_ins + counts.sign_in_refreshes + counts.sign_outs,
        0,
        "{counts:?}"
    );
    assert_eq!(counts.password_grants, 1, "{counts:?}");
    assert_eq!(counts.revocations, 1, "{counts:?}");
    let log = server.token_request_log();
    assert_eq!(log[0].grant_type.as_deref(), Some("password"));

    // The sign-in API on a PBX without it: a clear error, not refused credentials.
    let old = start(oauth_only()).await;
    let provider = preset(&old, PASSWORD)
        .api(PortSipApi::SignIn)
        .build()
        .unwrap();
    assert_eq!(provider.chosen_api(), Some(PortSipApi::SignIn));
    let err = BearerAuthLayer::new(provider)
        .cache()
        .get()
        .await
        .unwrap_err();
    assert_eq!(
        err.portsip_error().map(|e| e.kind()),
        Some(PortSipErrorKind::ApiNotServed {
            api: PortSipApi::SignIn
        })
    );
    assert!(!err.credentials_rejected());
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert!(err.to_string().contains("v22.2.11"), "{err}");
    assert_eq!(old.counts().password_grants, 0);

    // OAuth on a v22 PBX without it.
    let v22 = start(v22_only()).await;
    let provider = preset(&v22, PASSWORD)
        .api(PortSipApi::OAuth)
        .build()
        .unwrap();
    let err = BearerAuthLayer::new(provider)
        .cache()
        .get()
        .await
        .unwrap_err();
    assert_eq!(
        err.portsip_error().map(|e| e.kind()),
        Some(PortSipErrorKind::ApiNotServed {
            api: PortSipApi::OAuth
        })
    );

    // Automatic, at a server that serves neither API (a wrong base URL, say): say so.
    let neither = start(oauth_only().oauth_api(false)).await;
    let wrong = preset(&neither, PASSWORD).build().unwrap();
    let err = BearerAuthLayer::new(wrong)
        .any_origin()
        .cache()
        .get()
        .await
        .unwrap_err();
    assert_eq!(
        err.portsip_error().map(|e| e.kind()),
        Some(PortSipErrorKind::NeitherApiServed)
    );
    assert!(err.to_string().contains("check the base URL"), "{err}");
}

#[tokio::test]
async fn any_4xx_from_a_sign_in_is_refused_credentials() {
    let server = start(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = preset(&server, PASSWORD).build().unwrap();
    let layer = BearerAuthLayer::new(provider).any_origin();
    // A body of no known shape.
    server.respond_next(CannedResponse::new(StatusCode::FORBIDDEN, "account locked"));
    let err = layer.cache().get().await.unwrap_err();
    assert!(err.credentials_rejected(), "{err}");
    assert!(err.to_string().contains("account locked"), "{err}");
    // Not a rate limit, nor a server in trouble.
    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        server.respond_next(CannedResponse::new(status, "busy"));
        let provider = preset(&server, PASSWORD).build().unwrap();
        let err = BearerAuthLayer::new(provider)
            .any_origin()
            .cache()
            .get()
            .await
            .unwrap_err();
        assert!(!err.credentials_rejected(), "{err}");
        assert!(err.is_transient(), "{err}");
    }
}

#[tokio::test]
async fn a_domain_goes_with_the_sign_in() {
    let server = start(v22_only().domain("tenant.example.com")).await;
    let without = preset(&server, PASSWORD).build().unwrap();
    let err = without.login().await.unwrap_err();
    assert!(err.to_string().contains("Login failed"), "{err}");
    let with = preset(&server, PASSWORD)
        .domain("tenant.example.com")
        .build()
        .unwrap();
    let token = with.login().await.unwrap();
    with.refresh(token.refresh_token().unwrap()).await.unwrap();
    let log = server.token_request_log();
    assert_eq!(log[0].domain, None);
    assert_eq!(log[1].domain.as_deref(), Some("tenant.example.com"));
    assert_eq!(log[1].status, 200);
    assert_eq!(log[2].path, PORTSIP_REFRESH_PATH);
    assert_eq!(log[2].status, 200);
}
