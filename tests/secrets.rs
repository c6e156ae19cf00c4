//! No secret reaches a message: runs login, refresh, 401 recovery, failures and the
//! client-credentials grant against the embedded server, collects the `Debug` and `Display`
//! output of every error (with its whole source chain), every type involved and every token
//! handed to the change hook or kept in the token store, and checks that none of it holds a
//! password, client secret, access token or refresh token used or issued in the run. The
//! events of the `tracing` feature are checked in `tests/tracing.rs`.

mod support;

use std::{
    error::Error,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BearerChallenge, BoxError, TokenError, TokenErrorKind,
    client::HttpClient,
    provider::{
        BoxFuture, TokenProvider,
        oauth2::{ClientAuth, OAuth2Provider},
        portsip::{
            PORTSIP_CLIENT_ID, PORTSIP_REVOKE_PATH, PORTSIP_TOKEN_PATH, PortSip, PortSipApi,
        },
    },
    store::MemoryStore,
    test_server::{CannedResponse, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "S3cr3t-pw-7f1c";
const NEW_PASSWORD: &str = "S3cr3t-pw-changed-04d2";
const CLIENT_SECRET: &str = "S3cr3t-client-9a2e";
const WRONG_SECRET: &str = "S3cr3t-client-wrong-51b0";
const BOGUS_REFRESH: &str = "S3cr3t-rt-bogus-8c3d";
const API: &str = "/api/account/extensions";

/// Everything secret seen in the run, and everything printed.
#[derive(Clone, Default)]
struct Capture {
    secrets: Arc<Mutex<Vec<String>>>,
    output: Arc<Mutex<Vec<String>>>,
    /// The kinds of the request errors seen.
    errors: Arc<Mutex<Vec<TokenErrorKind>>>,
}

impl Capture {
    fn secret(&self, s: &str) {
        if !s.is_empty() {
            self.secrets.lock().unwrap().push(s.to_owned());
        }
    }

    fn print(&self, what: &str, text: String) {
        self.output.lock().unwrap().push(format!("{what}: {text}"));
    }

    fn debug(&self, what: &str, value: &dyn std::fmt::Debug) {
        self.print(what, format!("{value:?}"));
        self.print(what, format!("{value:#?}"));
    }

    /// An error's `Display` and `Debug`, and those of each of its sources.
    fn error(&self, what: &str, err: &(dyn Error + 'static)) {
        let mut current = Some(err);
        while let Some(e) = current {
            self.print(what, e.to_string());
            self.debug(what, &e);
            current = e.source();
        }
    }
}

/// The token endpoint's client: a real one that also notes every token in the responses.
#[derive(Clone)]
struct Tap {
    client: HttpClient,
    capture: Capture,
}

impl Service<Request<Full<Bytes>>> for Tap {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        let response = self.client.call(req);
        let capture = self.capture.clone();
        Box::pin(async move {
            let (parts, body) = response.await?.into_parts();
            let body = body.collect().await?.to_bytes();
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&body) {
                for field in ["access_token", "refresh_token"] {
                    if let Some(Value::String(s)) = map.get(field) {
                        capture.secret(s);
                    }
                }
            }
            Ok(Response::from_parts(parts, Full::new(body)))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output() {
    let capture = Capture::default();
    for s in [
        PASSWORD,
        NEW_PASSWORD,
        CLIENT_SECRET,
        WRONG_SECRET,
        BOGUS_REFRESH,
    ] {
        capture.secret(s);
    }
    let config = TestServerConfig::new(USER, PASSWORD)
        .client_secret(CLIENT_SECRET)
        .domain("tenant.example")
        .lifetime(Duration::from_secs(1));
    capture.debug("server config", &config);
    let server = TestServer::start(config).await.unwrap();
    let tap = Tap {
        client: HttpClient::new(),
        capture: capture.clone(),
    };

    let portsip = PortSip::new(server.base_url(), USER, PASSWORD).domain("tenant.example");
    capture.debug("portsip builder", &portsip);
    capture.debug(
        "portsip provider",
        &portsip.build_with(tap.clone()).unwrap(),
    );
    // PortSIP's settings, plus a client secret sent in the form.
    let builder =
        OAuth2Provider::password(tap.clone(), server.url(PORTSIP_TOKEN_PATH), USER, PASSWORD)
            .client_id(PORTSIP_CLIENT_ID)
            .scope("all")
            .login_param("domain", "tenant.example")
            .revoke_url(server.url(PORTSIP_REVOKE_PATH))
            .revoke_with_bearer(true)
            .client_secret(CLIENT_SECRET)
            .client_auth(ClientAuth::Form);
    capture.debug("provider builder", &builder);
    let provider = builder.build().unwrap();
    capture.debug("provider", &provider);
    let store = MemoryStore::new();
    let hook = capture.clone();
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .backoff(Duration::from_millis(1), Duration::from_millis(5))
            .refused_backoff(Duration::from_millis(1), Duration::from_millis(5))
            .store(store.clone())
            .on_token_change(move |change| {
                let token = change.token();
                if let Some(token) = token {
                    hook.secret(token.token().unwrap().access_token());
                    hook.debug("changed token", token);
                }
                hook.debug("store", &token);
            })
            .build(),
    )
    .any_origin()
    .replay_unauthorized(true);
    let cache = layer.cache();

    // The API's client notes how each request looks on the way out.
    let http = support::client();
    let out = capture.clone();
    let api = layer.layer(service_fn(move |req: Request<Full<Bytes>>| {
        if let Some(value) = req.headers().get(AUTHORIZATION) {
            assert!(value.is_sensitive(), "the header is marked sensitive");
        }
        out.debug("api request", &req);
        out.debug("api request headers", req.headers());
        http.request(req)
    }));
    capture.debug("layer", &layer);
    capture.debug("service", &api);

    let send = || {
        let api = api.clone();
        let capture = capture.clone();
        let cache = cache.clone();
        let url = server.url(API);
        async move {
            let request = Request::get(url).body(Full::<Bytes>::default()).unwrap();
            let result = api.oneshot(request).await;
            match &result {
                Ok(response) => {
                    capture.debug("response", response);
                    if let Some(c) = response.extensions().get::<BearerChallenge>() {
                        capture.debug("challenge", c);
                    }
                }
                Err(e) => {
                    let kind = e.downcast_ref::<TokenError>().expect("a TokenError").kind();
                    capture.errors.lock().unwrap().push(kind);
                    capture.error("request error", &**e);
                }
            }
            capture.debug("cache", &cache);
            if let Some(token) = cache.token() {
                capture.secret(token.access_token());
                capture.debug("token", &token);
                capture.debug("header value", token.header_value());
            }
            result.map(|r| r.status())
        }
    };

    // Login.
    assert_eq!(send().await.unwrap(), StatusCode::OK);
    // Refresh ahead of expiry (1 s tokens), then on demand.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(send().await.unwrap(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(100)).await;
    match cache.refresh().await {
        Ok(token) => capture.debug("refreshed", &token),
        Err(e) => panic!("refresh failed: {e}"),
    }
    assert_eq!(send().await.unwrap(), StatusCode::OK);
    assert!(
        server.counts().refresh_grants >= 2,
        "{}",
        server.counts().refresh_grants
    );

    // 401 recovery: the server forgets every token.
    server.revoke_all();
    assert_eq!(send().await.unwrap(), StatusCode::OK);
    assert!(server.counts().unauthorized >= 1);

    // A changed password: the refresh is refused, then the login.
    server.set_password(NEW_PASSWORD);
    server.revoke_all();
    cache.invalidate();
    assert!(send().await.is_err());
    server.set_password(PASSWORD);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(send().await.unwrap(), StatusCode::OK);

    // A 500 with a body, for the refresh and the login after it.
    let oops = CannedResponse::new(StatusCode::INTERNAL_SERVER_ERROR, "database unavailable");
    let bad_bodies = [
        json!({"access_token": "S3cr3t-at-crlf\r\nX-Evil: 1"}),
        json!({"access_token": "S3cr3t-at-t\u{f6}k\u{e9}n"}),
        json!({"access_token": "S3cr3t-at-mac", "token_type": "mac"}),
        json!({"access_token": "S3cr3t-at-exp", "expires_in": "S3cr3t-not-a-number"}),
        json!({"access_token": "S3cr3t-at-past", "expires_at": 1_000_000_000}),
        json!({"access_token": "S3cr3t-at-zero", "expires_in": 0}),
        json!({"access_token": "S3cr3t-at-rt", "refresh_token": 5}),
        json!({"refresh_token": "S3cr3t-rt-alone"}),
        json!({"access_token": ""}),
    ];
    let mut canned = vec![oops];
    canned.extend(
        bad_bodies
            .iter()
            .map(|body| CannedResponse::json(StatusCode::OK, body)),
    );
    for response in canned {
        // Both the refresh and the login after it get the bad answer.
        server.respond_next(response.clone());
        server.respond_next(response.clone());
        cache.invalidate();
        assert!(send().await.is_err());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for body in &bad_bodies {
        for field in ["access_token", "refresh_token"] {
            if let Some(Value::String(s)) = body.get(field) {
                capture.secret(s);
            }
        }
    }
    assert_eq!(send().await.unwrap(), StatusCode::OK);

    // The provider called directly.
    let response = provider.login().await.unwrap();
    capture.debug("token response", &response);
    let refresh_token = response.refresh_token().unwrap().to_owned();
    let refreshed = provider.refresh(&refresh_token).await.unwrap();
    capture.debug("token response", &refreshed);
    for err in [
        provider.refresh(BOGUS_REFRESH).await.unwrap_err(),
        provider.refresh(&refresh_token).await.unwrap_err(), // already used
    ] {
        capture.error("provider error", &err);
    }

    // Logout, then a login.
    cache.revoke().await.unwrap();
    assert_eq!(send().await.unwrap(), StatusCode::OK);

    // The client-credentials grant, with the right and a wrong secret.
    let url = server.url(PORTSIP_TOKEN_PATH);
    let credentials =
        OAuth2Provider::client_credentials(tap.clone(), url, PORTSIP_CLIENT_ID, CLIENT_SECRET);
    capture.debug("credentials builder", &credentials);
    let wrong = credentials
        .clone()
        .client_secret(WRONG_SECRET)
        .build()
        .unwrap();
    let credentials = credentials.build().unwrap();
    capture.debug("credentials provider", &credentials);
    let cc_layer = BearerAuthLayer::new(credentials.clone()).any_origin();
    let cc_api = cc_layer.layer(support::client());
    let request = Request::get(server.url(API))
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = cc_api.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cc_token = cc_layer.cache().token().unwrap();
    capture.secret(cc_token.access_token());
    capture.debug("credentials token", &cc_token);
    capture.debug("credentials layer", &cc_layer);
    capture.debug("credentials service", &cc_api);
    capture.debug("wrong credentials provider", &wrong);
    capture.error("credentials error", &wrong.login().await.unwrap_err());
    let wrong_layer = BearerAuthLayer::new(wrong).any_origin();
    let wrong_api = wrong_layer.layer(support::client());
    let request = Request::get(server.url(API))
        .body(Full::<Bytes>::default())
        .unwrap();
    let err = wrong_api.oneshot(request).await.unwrap_err();
    assert!(err.downcast_ref::<TokenError>().is_some());
    capture.error("credentials request error", &*err);
    capture.debug("credentials cache", &wrong_layer.cache());

    capture.debug("server", &server);
    capture.debug("token request log", &server.token_request_log());

    capture.debug("memory store", &store);

    // Nothing printed holds a secret.
    let secrets = capture.secrets.lock().unwrap().clone();
    let output = capture.output.lock().unwrap().clone();
    let issued = secrets.iter().filter(|s| s.starts_with("AT")).count();
    let refresh = secrets.iter().filter(|s| s.starts_with("RT")).count();
    assert!(
        issued >= 8 && refresh >= 5,
        "{issued} access and {refresh} refresh tokens seen"
    );
    assert!(output.len() > 200, "{} outputs", output.len());
    let errors = capture.errors.lock().unwrap().len();
    assert!(errors >= 11, "{errors} request errors seen");
    let mut leaks = Vec::new();
    for text in &output {
        for secret in &secrets {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{secret:?} in {text}"));
            }
        }
        if text.contains("S3cr3t") {
            leaks.push(format!("marker in {text}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    eprintln!(
        "{} outputs checked against {} secrets",
        output.len(),
        secrets.len()
    );
}

/// The forms in which a careless server could echo `secret`: as sent in a form body
/// (percent-encoded, space as `+` or `%20`), as it was, and escaped in JSON.
fn leaks_of(secret: &str) -> Vec<String> {
    let form = serde_urlencoded::to_string([("x", secret)]).unwrap()[2..].to_owned();
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        form.clone(),
        form.replace('+', "%20"),
        json[1..json.len() - 1].to_owned(),
    ]
}

/// `err`'s `Display` and `Debug`, and those of its sources.
fn everything_printed(err: &(dyn Error + 'static)) -> String {
    let mut out = String::new();
    let mut current = Some(err);
    while let Some(e) = current {
        out.push_str(&format!("{e} | {e:?} | "));
        current = e.source();
    }
    out
}

fn assert_no_leak(text: &str, secrets: &[&str]) {
    for secret in secrets {
        for leak in leaks_of(secret) {
            assert!(!text.contains(&leak), "{leak:?} leaked: {text}");
        }
    }
    assert!(text.contains("<redacted>"), "nothing was echoed: {text}");
}

/// A password with every character that form encoding or JSON escapes.
const HOSTILE_PASSWORD: &str = "p&ss=w+rd \"q\" 100% ü";

#[tokio::test]
async fn an_echoing_token_endpoint_never_gets_a_secret_into_an_error() {
    let server = TestServer::start(
        TestServerConfig::new(USER, HOSTILE_PASSWORD).client_secret(CLIENT_SECRET),
    )
    .await
    .unwrap();
    let provider = PortSip::new(server.base_url(), USER, HOSTILE_PASSWORD)
        .api(PortSipApi::OAuth)
        .build()
        .unwrap();
    let echoes = [
        // An RFC 6749 error quoting the request in its description.
        CannedResponse::json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": "cannot parse {request}"}),
        )
        .echo_request(),
        // The request in the error code itself.
        CannedResponse::json(StatusCode::BAD_REQUEST, &json!({"error": "{request}"}))
            .echo_request(),
        // A JSON body of another shape, with the request under an innocent name.
        CannedResponse::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"message": "{request}"}),
        )
        .echo_request(),
        // A proxy's page.
        CannedResponse::new(StatusCode::BAD_GATEWAY, "<pre>{request}</pre>").echo_request(),
    ];

    // Logins: the password.
    for echo in echoes.clone() {
        server.respond_next(echo);
        let err = provider.login().await.unwrap_err();
        assert_no_leak(&everything_printed(&*err), &[HOSTILE_PASSWORD]);
    }

    // Through the layer: the password, and the token error's message quoting the cause.
    server.respond_next(echoes[0].clone());
    let layer = BearerAuthLayer::new(provider.clone());
    let err = layer.cache().get().await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("token provider failed to log in: invalid_request")
    );
    assert_no_leak(&everything_printed(&err), &[HOSTILE_PASSWORD]);

    // Refreshes: the refresh token.
    let refresh_token = provider
        .login()
        .await
        .unwrap()
        .refresh_token()
        .unwrap()
        .to_owned();
    for echo in echoes.clone() {
        server.respond_next(echo);
        let err = provider.refresh(&refresh_token).await.unwrap_err();
        assert_no_leak(&everything_printed(&*err), &[&refresh_token]);
    }

    // The client-credentials grant with the secret in the form: the client secret.
    let credentials = OAuth2Provider::client_credentials(
        HttpClient::new(),
        server.url(PORTSIP_TOKEN_PATH),
        PORTSIP_CLIENT_ID,
        CLIENT_SECRET,
    )
    .client_auth(ClientAuth::Form)
    .build()
    .unwrap();
    for echo in echoes {
        server.respond_next(echo);
        let err = credentials.login().await.unwrap_err();
        assert_no_leak(&everything_printed(&err), &[CLIENT_SECRET]);
    }
}

/// What a careless sign-in API could echo: each request's JSON body, into JSON strings (where
/// it breaks the JSON) and into plain text.
fn sign_in_echoes() -> Vec<CannedResponse> {
    vec![
        CannedResponse::json(
            StatusCode::BAD_REQUEST,
            &json!({"errors": [{"code": "INVALID_ARGUMENT", "message": "cannot parse {request}"}]}),
        )
        .echo_request(),
        CannedResponse::json(
            StatusCode::BAD_REQUEST,
            &json!({"errors": [{"code": "{request}", "detail": "{request}"}]}),
        )
        .echo_request(),
        CannedResponse::new(StatusCode::FORBIDDEN, "refused: {request}").echo_request(),
        CannedResponse::new(StatusCode::BAD_GATEWAY, "<pre>{request}</pre>").echo_request(),
    ]
}

#[tokio::test]
async fn an_echoing_sign_in_api_never_gets_a_secret_into_an_error() {
    const SESSION: &str = "S3cr3t-session-5e1d";
    const CODE: &str = "S3cr3t-code-771";
    let server = TestServer::start(TestServerConfig::new(USER, HOSTILE_PASSWORD).oauth_api(false))
        .await
        .unwrap();
    let provider = PortSip::new(server.base_url(), USER, HOSTILE_PASSWORD)
        .api(PortSipApi::SignIn)
        .one_time_code(|challenge| async move {
            assert_eq!(challenge.session_token(), SESSION);
            assert!(!format!("{challenge:?}").contains(SESSION));
            Ok::<_, BoxError>(format!(" {CODE}\n"))
        })
        .build()
        .unwrap();

    // Sign-ins: the password.
    for echo in sign_in_echoes() {
        server.respond_next(echo);
        let err = provider.login().await.unwrap_err();
        assert_no_leak(&everything_printed(&*err), &[HOSTILE_PASSWORD]);
    }

    // Two-factor sign-ins: the password, the session token and the code sent to verify_otp.
    let two_factor = json!({"two_factor_enabled": true, "token": SESSION});
    for echo in sign_in_echoes() {
        server.respond_next(CannedResponse::json(StatusCode::OK, &two_factor));
        server.respond_next(echo);
        let err = provider.login().await.unwrap_err();
        assert_no_leak(
            &everything_printed(&*err),
            &[HOSTILE_PASSWORD, SESSION, CODE],
        );
    }

    // Refreshes: the refresh token; sign-outs: the access token.
    let token = provider.login().await.unwrap();
    let refresh_token = token.refresh_token().unwrap().to_owned();
    for echo in sign_in_echoes() {
        server.respond_next(echo);
        let err = provider.refresh(&refresh_token).await.unwrap_err();
        assert_no_leak(&everything_printed(&*err), &[&refresh_token]);
    }

    // Through the layer, with the provider's Debug output too.
    server.respond_next(sign_in_echoes()[0].clone());
    let layer = BearerAuthLayer::new(provider.clone()).any_origin();
    let err = layer.cache().get().await.unwrap_err();
    let printed = format!("{} {provider:?} {layer:?}", everything_printed(&err));
    assert_no_leak(&printed, &[HOSTILE_PASSWORD]);
}

/// A token endpoint that reads the form and quotes its fields, decoded, in its errors:
/// `wrong password "…" for refresh token "…"`.
async fn quoting_server() -> String {
    use hyper::{server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let fields: Vec<(String, String)> =
                        serde_urlencoded::from_bytes(&body).unwrap_or_default();
                    let quoted: Vec<String> =
                        fields.iter().map(|(k, v)| format!("{k} {v:?}")).collect();
                    let error = json!({
                        "error": "invalid_grant",
                        "error_description": format!("refused: {}", quoted.join(", ")),
                    });
                    let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    Ok::<_, hyper::Error>(response)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_server_that_quotes_decoded_fields_never_gets_a_secret_into_an_error() {
    let base = quoting_server().await;
    let provider = OAuth2Provider::password(
        HttpClient::new(),
        format!("{base}/token"),
        USER,
        HOSTILE_PASSWORD,
    )
    .client_secret(CLIENT_SECRET)
    .client_auth(ClientAuth::Form)
    .revoke_url(format!("{base}/revoke"))
    .build()
    .unwrap();

    let err = provider.login().await.unwrap_err();
    let description = err.error_description().unwrap();
    assert!(description.contains("username \"admin\""), "{description}");
    assert_no_leak(
        &everything_printed(&err),
        &[HOSTILE_PASSWORD, CLIENT_SECRET],
    );

    let err = provider.refresh(BOGUS_REFRESH).await.unwrap_err();
    assert_no_leak(&everything_printed(&err), &[BOGUS_REFRESH, CLIENT_SECRET]);

    let access = "S3cr3t-at-revoked-77aa";
    let err = provider
        .revoke(access, Some(BOGUS_REFRESH))
        .await
        .unwrap_err();
    assert_no_leak(
        &everything_printed(&err),
        &[access, BOGUS_REFRESH, CLIENT_SECRET],
    );

    // And through the layer, whose message quotes the provider's.
    let err = BearerAuthLayer::new(provider)
        .any_origin()
        .cache()
        .get()
        .await
        .unwrap_err();
    assert!(err.credentials_rejected());
    assert_no_leak(
        &everything_printed(&err),
        &[HOSTILE_PASSWORD, CLIENT_SECRET],
    );
}

/// Standard Base64 with padding, as `Authorization: Basic` carries the client's credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A token endpoint that quotes the request's `Authorization` header in its errors: in an
/// RFC 6749 `error_description` at `/json/…`, in a plain-text body elsewhere.
async fn header_quoting_server() -> String {
    use hyper::{server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let header = req
                        .headers()
                        .get(AUTHORIZATION)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default();
                    let body = if req.uri().path().starts_with("/json") {
                        json!({
                            "error": "invalid_client",
                            "error_description": format!("cannot use {header}"),
                        })
                        .to_string()
                    } else {
                        format!("refused: authorization: {header}")
                    };
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    Ok::<_, hyper::Error>(response)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_echoed_basic_authorization_header_never_gets_into_an_error() {
    let base = header_quoting_server().await;
    // An id and a secret that form encoding changes before Base64 does.
    let client_id = "app?>";
    let secret = "S3cr3t-client-~~~?>";
    let basic = base64(format!("{}:{}", "app%3F%3E", "S3cr3t-client-%7E%7E%7E%3F%3E").as_bytes());
    for path in ["/json", "/text"] {
        let provider = OAuth2Provider::client_credentials(
            HttpClient::new(),
            format!("{base}{path}/token"),
            client_id,
            secret,
        )
        .revoke_url(format!("{base}{path}/revoke"))
        .build()
        .unwrap();
        let login = provider.login().await.unwrap_err();
        let revoke = provider.revoke("at-1", Some("rt-1")).await.unwrap_err();
        for err in [login, revoke] {
            let text = everything_printed(&err);
            assert!(text.contains("Basic"), "the header was not echoed: {text}");
            assert_no_leak(&text, &[&basic, secret]);
        }
    }
}

#[tokio::test]
async fn login_param_values_never_get_into_an_error() {
    const API_KEY: &str = "S3cr3t-login-param-0e7b";
    let base = quoting_server().await;
    let provider =
        OAuth2Provider::password(HttpClient::new(), format!("{base}/token"), USER, PASSWORD)
            .login_param("api_key", API_KEY)
            .build()
            .unwrap();
    let err = provider.login().await.unwrap_err();
    let description = err.error_description().unwrap();
    assert!(description.contains("api_key"), "{description}");
    assert_no_leak(&everything_printed(&err), &[API_KEY, PASSWORD]);
}

#[test]
fn debug_output_shows_only_the_origin_of_each_url() {
    let url = |path: &str| {
        format!("https://svc:S3cr3t-userinfo@auth.example:8443/{path}?api_key=S3cr3t-query")
    };
    let builder = OAuth2Provider::password((), url("token"), USER, PASSWORD)
        .refresh_url(url("refresh"))
        .revoke_url(url("revoke"));
    let provider = builder.clone().build().unwrap();
    let portsip = PortSip::new(
        "https://admin:S3cr3t-userinfo@pbx.example:8887/S3cr3t-path",
        USER,
        PASSWORD,
    );
    let portsip_provider = portsip.clone().build_with(()).unwrap();
    for out in [
        format!("{builder:?}"),
        format!("{provider:?}"),
        format!("{portsip:?}"),
        format!("{portsip_provider:?}"),
    ] {
        for leak in ["S3cr3t", "api_key", "svc:", "admin:"] {
            assert!(!out.contains(leak), "{leak} in {out}");
        }
        assert!(
            out.contains("https://auth.example:8443") || out.contains("https://pbx.example:8887"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn a_transport_error_through_reqwest_never_shows_the_url() {
    use tower_bearer_auth::reqwest::ReqwestService;

    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let provider = OAuth2Provider::password(
        ReqwestService::new(reqwest::Client::new()),
        format!("http://{addr}/token?api_key=S3cr3t-query"),
        USER,
        PASSWORD,
    )
    .build()
    .unwrap();
    let err = provider.login().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let layer = BearerAuthLayer::new(provider).any_origin();
    let through_layer = layer.cache().get().await.unwrap_err();
    for text in [everything_printed(&err), everything_printed(&through_layer)] {
        assert!(!text.contains("S3cr3t"), "{text}");
        assert!(!text.contains("api_key"), "{text}");
        assert!(!text.contains("/token"), "{text}");
    }
}
