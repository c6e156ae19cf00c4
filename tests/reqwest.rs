//! reqwest over loopback sockets: `BearerAuthMiddleware` in a `reqwest_middleware` client and
//! `BearerAuthLayer` over `ReqwestService`, against the embedded PortSIP-compatible server,
//! with logins through reqwest too.
#![cfg(all(feature = "reqwest-middleware", feature = "test-server"))]

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Extensions, Request, Response, StatusCode, header::AUTHORIZATION};
use http_body::Frame;
use http_body_util::{Full, StreamBody};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, BearerChallenge, BoxError, NoReplay, Origin, TokenCache, TokenError,
    provider::{
        StaticToken, TokenProvider,
        oauth2::{OAuth2Error, OAuth2ErrorKind},
        portsip::{PortSip, PortSipProvider},
    },
    reqwest::{BearerAuthMiddleware, ReqwestService, token_error},
    test_server::{CannedResponse, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-password";
const PATH: &str = "/api/account/extensions";

async fn server(config: TestServerConfig) -> TestServer {
    TestServer::start(config).await.unwrap()
}

/// A PortSIP provider for `server` that logs in through `http`.
fn portsip(server: &TestServer, http: &reqwest::Client) -> PortSipProvider<ReqwestService> {
    PortSip::new(server.base_url(), USER, PASSWORD)
        .build_with(ReqwestService::new(http.clone()))
        .unwrap()
}

/// A reqwest-middleware client with `middleware` next to the client.
fn with(http: reqwest::Client, middleware: BearerAuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(http).with(middleware).build()
}

/// The usual client: the middleware over the cache of a PortSIP login through the same client.
fn client(server: &TestServer) -> ClientWithMiddleware {
    let http = reqwest::Client::new();
    let cache = TokenCache::new(portsip(server, &http));
    with(http, BearerAuthMiddleware::new(cache))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_of_1000_concurrent_requests_logs_in_once() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    // The login takes a while, so that every request arrives while it runs.
    server.set_token_delay(Duration::from_millis(200));
    let client = client(&server);
    let url = server.url(PATH);
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let request = client.get(&url).send();
            tokio::spawn(async move { request.await.map(|r| r.status()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), StatusCode::OK);
    }
    let counts = server.counts();
    assert_eq!(counts.password_grants, 1, "{counts:?}");
    assert_eq!(counts.token_requests, 1, "{counts:?}");
    assert_eq!(counts.api_requests, 1000);
    assert_eq!(counts.unauthorized, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_through_the_tower_layer_logs_in_once() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    server.set_token_delay(Duration::from_millis(200));
    let http = ReqwestService::new(reqwest::Client::new());
    let pbx = BearerAuthLayer::new(portsip(&server, http.get_ref())).layer(http);
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let request = Request::get(server.url(PATH))
                .body(Full::<Bytes>::default())
                .unwrap();
            tokio::spawn(pbx.clone().oneshot(request))
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(server.counts().password_grants, 1);
    assert_eq!(server.counts().token_requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_ahead_with_rotating_refresh_tokens_refuses_no_token_request() {
    // Two-second tokens, refreshed at about half their life, each refresh spending the
    // refresh token it used.
    let config = TestServerConfig::new(USER, PASSWORD)
        .lifetime(Duration::from_secs(2))
        .rotate_refresh_tokens(true);
    let server = server(config).await;
    let http = reqwest::Client::new();
    // The cache of a configured layer.
    let cache = BearerAuthLayer::new(
        TokenCache::builder(portsip(&server, &http))
            .refresh_ahead(Duration::from_secs(1))
            .jitter(Duration::from_millis(200))
            .build(),
    )
    .cache();
    let client = with(http, BearerAuthMiddleware::new(cache));
    let url = server.url(PATH);
    let until = Instant::now() + Duration::from_millis(5500);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut sent = 0;
                while Instant::now() < until {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    let counts = server.counts();
    assert!(sent > 100, "{sent} requests");
    assert_eq!(counts.failed_token_requests, 0, "{counts:?}");
    assert_eq!(counts.reused_refresh_tokens, 0, "{counts:?}");
    assert_eq!(counts.password_grants, 1, "{counts:?}");
    assert!(counts.refresh_grants >= 3, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "{counts:?}");
    assert_eq!(counts.expired_token_requests, 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_all_costs_replayable_requests_no_401() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600))).await;
    let client = client(&server);
    let url = server.url(PATH);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    server.revoke_all();
    let before = server.counts();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let request = if i % 2 == 0 {
                client.get(&url)
            } else {
                client.post(&url).json(&json!({ "extension": 100 + i }))
            };
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().unwrap(),
            StatusCode::OK,
            "no 401 reaches the caller"
        );
    }
    let after = server.counts();
    let refused = after.unauthorized - before.unauthorized;
    assert!(refused >= 1, "the server refused the revoked token");
    // One new token for all of them: the refused refresh, then one login.
    assert_eq!(
        after.password_grants - before.password_grants,
        1,
        "{after:?}"
    );
    assert_eq!(after.refresh_grants - before.refresh_grants, 1, "{after:?}");
    assert_eq!(after.api_requests - before.api_requests, 50 + refused);
}

/// A body that reqwest streams, so it cannot copy it.
fn streaming_body() -> reqwest::Body {
    let chunks = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"{\"extension\":"))),
        Ok(Frame::data(Bytes::from_static(b"101}"))),
    ];
    reqwest::Body::wrap(StreamBody::new(futures_util::stream::iter(chunks)))
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_and_its_401_returned() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600))).await;
    let client = client(&server);
    let url = server.url(PATH);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    server.revoke_all();
    let before = server.counts();
    let response = client
        .post(&url)
        .body(streaming_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.extensions().get::<BearerChallenge>().unwrap();
    assert_eq!(challenge.error(), Some("invalid_token"));
    let after = server.counts();
    assert_eq!(after.api_requests - before.api_requests, 1, "sent once");
    assert_eq!(after.token_requests, before.token_requests, "not replayed");

    // The 401 invalidated the refused token: the next request carries a new one.
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(server.counts().password_grants, 2);
}

#[tokio::test]
async fn no_replay_keeps_one_request_from_being_sent_again() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600))).await;
    let client = client(&server);
    let url = server.url(PATH);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    server.revoke_all();
    let before = server.counts();
    let response = client
        .post(&url)
        .json(&json!({ "call": "once" }))
        .with_extension(NoReplay)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.counts().api_requests - before.api_requests, 1);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn insufficient_scope_is_returned_and_keeps_the_token() {
    // A server that refuses every request for lack of scope.
    let (api, seen) = Recorder::start(|_| {
        let mut response = Response::new(Full::default());
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().insert(
            "www-authenticate",
            "Bearer error=\"insufficient_scope\", scope=\"admin\""
                .parse()
                .unwrap(),
        );
        response
    })
    .await;
    let cache = TokenCache::new(StaticToken::new("t0k3n"));
    let client = with(
        reqwest::Client::new(),
        BearerAuthMiddleware::new(cache.clone()).any_origin(),
    );
    let response = client.get(format!("http://{api}/x")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.extensions().get::<BearerChallenge>().unwrap();
    assert_eq!(challenge.scope(), Some("admin"));
    assert_eq!(seen.lock().unwrap().len(), 1, "not replayed");
    assert!(cache.token().is_some(), "the token is still good");
}

/// A loopback server that records the `Authorization` header of each request it gets, by path.
struct Recorder;

type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

impl Recorder {
    async fn start(
        answer: impl Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> (SocketAddr, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Seen::default();
        let (log, answer) = (seen.clone(), Arc::new(answer));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let authorization = req
                            .headers()
                            .get(AUTHORIZATION)
                            .map(|v| v.to_str().unwrap().to_owned());
                        log.lock()
                            .unwrap()
                            .push((req.uri().path().to_owned(), authorization));
                        let response = answer(&req);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, seen)
    }

    /// A server that redirects `/redirect` to `to` (`307`, so a body goes along) and answers
    /// `200` to everything else.
    async fn redirecting(to: String) -> (SocketAddr, Seen) {
        Self::start(move |req| {
            let mut response = Response::new(Full::default());
            if req.uri().path() == "/redirect" {
                *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                response
                    .headers_mut()
                    .insert("location", to.parse().unwrap());
            }
            response
        })
        .await
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_never_carries_the_token() {
    let (second, second_seen) = Recorder::redirecting(String::new()).await;
    let (first, first_seen) = Recorder::redirecting(format!("http://{second}/landing")).await;
    let first_origin = Origin::try_from(format!("http://{first}").as_str()).unwrap();
    let cache = TokenCache::new(StaticToken::new("t0k3n"));

    // Bound to the first origin, and not bound at all: reqwest follows the redirect below the
    // middleware and drops `Authorization` on the way to another origin, either way.
    let bound = BearerAuthMiddleware::new(cache.clone()).allow_origin(first_origin);
    let unbound = BearerAuthMiddleware::new(cache.clone()).any_origin();
    for middleware in [bound.clone(), unbound] {
        let client = with(reqwest::Client::new(), middleware);
        let response = client
            .post(format!("http://{first}/redirect"))
            .json(&json!({ "to": "second" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.url().port(), Some(second.port()), "followed");
    }
    let first_seen = first_seen.lock().unwrap().clone();
    let expected = ("/redirect".to_owned(), Some("Bearer t0k3n".to_owned()));
    assert_eq!(first_seen, [expected.clone(), expected]);
    let landing = ("/landing".to_owned(), None);
    assert_eq!(
        *second_seen.lock().unwrap(),
        [landing.clone(), landing.clone()]
    );

    // Bound: a request straight to the second origin goes without the token too.
    let client = with(reqwest::Client::new(), bound);
    let response = client
        .get(format!("http://{second}/landing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(second_seen.lock().unwrap().last(), Some(&landing));

    // A redirect within the origin keeps it.
    let (same, same_seen) = Recorder::redirecting("/landing".to_owned()).await;
    let client = with(
        reqwest::Client::new(),
        BearerAuthMiddleware::new(cache.clone()).any_origin(),
    );
    client
        .get(format!("http://{same}/redirect"))
        .send()
        .await
        .unwrap();
    let token = Some("Bearer t0k3n".to_owned());
    assert_eq!(
        *same_seen.lock().unwrap(),
        [
            ("/redirect".to_owned(), token.clone()),
            ("/landing".to_owned(), token)
        ]
    );

    // The tower layer over `ReqwestService`: the same.
    let before = second_seen.lock().unwrap().len();
    let pbx = BearerAuthLayer::new(cache)
        .any_origin()
        .layer(ReqwestService::default());
    let request = Request::post(format!("http://{first}/redirect"))
        .body(String::from("{}"))
        .unwrap();
    assert_eq!(pbx.oneshot(request).await.unwrap().status(), StatusCode::OK);
    assert_eq!(second_seen.lock().unwrap()[before..], [landing]);
}

#[tokio::test]
async fn a_wrong_password_is_a_typed_error() {
    let server = server(TestServerConfig::new(USER, "another password")).await;
    let client = client(&server);
    let error = client.get(server.url(PATH)).send().await.unwrap_err();
    assert!(error.is_middleware());
    let token = token_error(&error).expect("a TokenError");
    assert!(token.credentials_rejected(), "{token}");
    assert!(!token.is_transient());
    assert_eq!(token.status(), Some(StatusCode::BAD_REQUEST));
    let oauth2 = token.oauth2_error().unwrap();
    assert!(oauth2.credentials_rejected());
    assert_eq!(oauth2.error_code(), Some("UNAUTHORIZED"));
    for text in [
        error.to_string(),
        format!("{error:?}"),
        format!("{error:#}"),
    ] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert_eq!(server.counts().api_requests, 0, "never sent");

    // The same error through the tower layer, boxed.
    let http = ReqwestService::default();
    let pbx = BearerAuthLayer::new(portsip(&server, http.get_ref())).layer(http);
    let request = Request::get(server.url(PATH)).body(String::new()).unwrap();
    let error: BoxError = pbx.oneshot(request).await.unwrap_err();
    assert!(
        error
            .downcast_ref::<TokenError>()
            .unwrap()
            .credentials_rejected()
    );
}

#[tokio::test]
async fn the_token_endpoint_over_reqwest_caps_bodies_and_maps_transport_errors() {
    let server = server(TestServerConfig::new(USER, PASSWORD)).await;
    let provider = portsip(&server, &reqwest::Client::new());
    server.respond_next(CannedResponse::new(StatusCode::OK, vec![b'x'; 100_000]));
    let error = provider.login().await.unwrap_err();
    let error = error.downcast_ref::<OAuth2Error>().unwrap();
    assert!(
        matches!(error.kind(), OAuth2ErrorKind::BodyTooLarge { limit: 65536 }),
        "{error:?}"
    );
    // Chunked, so the size shows only while reading.
    server.respond_next(CannedResponse::new(StatusCode::OK, vec![b'x'; 100_000]).chunked());
    let error = provider.login().await.unwrap_err();
    let error = error.downcast_ref::<OAuth2Error>().unwrap();
    assert!(matches!(error.kind(), OAuth2ErrorKind::BodyTooLarge { .. }));

    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let provider = PortSip::new(format!("http://{addr}"), USER, PASSWORD)
        .build_with(ReqwestService::default())
        .unwrap();
    let error = provider.login().await.unwrap_err();
    let error = error.downcast_ref::<OAuth2Error>().unwrap();
    assert!(
        matches!(error.kind(), OAuth2ErrorKind::Transport),
        "{error:?}"
    );
    assert!(error.is_transient());
    let source = std::error::Error::source(error).unwrap();
    assert!(
        source
            .downcast_ref::<reqwest::Error>()
            .unwrap()
            .is_connect()
    );

    // And a good login still works.
    let token = portsip(&server, &reqwest::Client::new())
        .login()
        .await
        .unwrap();
    assert!(!token.access_token().is_empty());
}

/// Records what the middleware before it handed on: whether the header is marked sensitive.
#[derive(Clone, Default)]
struct Inspect(Arc<Mutex<Vec<bool>>>);

#[async_trait::async_trait]
impl Middleware for Inspect {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let sensitive = req.headers()[AUTHORIZATION].is_sensitive();
        self.0.lock().unwrap().push(sensitive);
        next.run(req, extensions).await
    }
}

#[tokio::test]
async fn the_header_is_sensitive_and_an_existing_one_is_kept() {
    let (api, seen) = Recorder::redirecting(String::new()).await;
    let inspect = Inspect::default();
    let cache = TokenCache::new(StaticToken::new("t0k3n"));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(cache.clone()).any_origin())
        .with(inspect.clone())
        .build();
    let url = format!("http://{api}/x");
    client.get(&url).send().await.unwrap();
    client.get(&url).send().await.unwrap(); // the hot path
    client.get(&url).bearer_auth("mine").send().await.unwrap();
    assert_eq!(*inspect.0.lock().unwrap(), [true, true, true]);
    let headers: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, h)| h.clone())
        .collect();
    let ours = Some("Bearer t0k3n".to_owned());
    assert_eq!(
        headers,
        [ours.clone(), ours.clone(), Some("Bearer mine".to_owned())]
    );

    let client = with(
        reqwest::Client::new(),
        BearerAuthMiddleware::new(cache)
            .any_origin()
            .overwrite_existing(true),
    );
    client.get(&url).bearer_auth("mine").send().await.unwrap();
    assert_eq!(seen.lock().unwrap().last().unwrap().1, ours);
}

#[tokio::test]
async fn replay_off_returns_the_401_and_the_next_request_gets_a_new_token() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600))).await;
    let http = reqwest::Client::new();
    let middleware = BearerAuthMiddleware::new(TokenCache::new(portsip(&server, &http)))
        .replay_unauthorized(false);
    let client = with(http, middleware);
    let url = server.url(PATH);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    server.revoke_all();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(server.counts().password_grants, 2);
}

/// The middleware's `unauthorized` event, and the cache's `invalidated`, as the layer emits
/// them; no captured text holds the token or password.
#[cfg(feature = "tracing")]
#[tokio::test]
async fn a_refused_token_is_traced_like_the_layer_does() {
    use tracing::{
        Event, Metadata, Subscriber,
        field::{Field, Visit},
        span,
    };

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(String, String, String)>>>);

    struct Text(String);

    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = Text(String::new());
            event.record(&mut text);
            let metadata = event.metadata();
            let entry = (
                metadata.name().to_owned(),
                metadata.target().to_owned(),
                text.0,
            );
            self.0.lock().unwrap().push(entry);
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600))).await;
    let client = client(&server);
    let url = server.url(PATH);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    server.revoke_all();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);

    let events = capture.0.lock().unwrap().clone();
    let names: Vec<_> = events
        .iter()
        .map(|(name, ..)| name.as_str())
        .filter(|name| ["login", "refresh", "unauthorized", "invalidated"].contains(name))
        .collect();
    assert_eq!(
        names,
        ["login", "unauthorized", "invalidated", "refresh", "login"]
    );
    let (_, target, fields) = events
        .iter()
        .find(|(name, ..)| name == "unauthorized")
        .unwrap();
    assert_eq!(target, "tower_bearer_auth::reqwest::middleware");
    assert!(fields.contains("generation=1 "), "{fields}");
    assert!(fields.contains("replay=true "), "{fields}");
    for (_, _, fields) in &events {
        assert!(!fields.contains(PASSWORD), "{fields}");
    }
}

#[tokio::test]
async fn the_tower_layer_over_reqwest_replays_reqwest_bodies_made_of_bytes() {
    let server =
        server(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(3600))).await;
    let http = ReqwestService::default();
    let pbx = BearerAuthLayer::new(portsip(&server, http.get_ref()))
        .replay_unauthorized(true)
        .layer(http);
    let post = |body: reqwest::Body| Request::post(server.url(PATH)).body(body).unwrap();
    let response = pbx.clone().oneshot(post("{}".into())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    server.revoke_all();
    let before = server.counts();
    let response = pbx.clone().oneshot(post("{}".into())).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "replayed with a new token"
    );
    assert_eq!(server.counts().api_requests - before.api_requests, 2);

    // A streaming body is sent once, its 401 returned.
    server.revoke_all();
    let before = server.counts();
    let response = pbx.oneshot(post(streaming_body())).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.counts().api_requests - before.api_requests, 1);
}
