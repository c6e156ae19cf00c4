//! Reproductions of issue 12, part A: one cache used from several Tokio runtimes.
//!
//! A request must end within the layer's `timeout` of starting to wait, with a token or a
//! `TokenError` of kind `Timeout`, whatever runtime runs or does not; no token may be sent
//! after its expiry; and a login whose runtime is gone is started again by the next request.
//!
//! Each test runs the embedded PortSIP server on a multi-thread runtime of its own, which
//! keeps serving whatever the runtimes under test do, and drives the clients on current-thread
//! runtimes built by hand, over real sockets. A watchdog turns a hang into a failure; no test
//! asserts on how long something took.

use std::{
    future::{Future, poll_fn},
    ops::Deref,
    sync::LazyLock,
    task::Poll,
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::runtime::{Builder, Runtime};
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenError, TokenErrorKind,
    provider::portsip::PortSip,
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";

/// How long a request may take before the test calls it hung. Far more than the layer's
/// timeout (1 s), so that only a hang trips it.
const WATCHDOG: Duration = Duration::from_secs(10);

type Http = Client<HttpConnector, Full<Bytes>>;

/// A hyper-util client that keeps no idle connection.
///
/// A pooled connection is driven by a task on the runtime that opened it; handed to a request
/// on another runtime, it stalls that request whatever the layer does. That is hyper-util's
/// affair, not this crate's, so these tests keep it out of the way.
fn unpooled() -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http()
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

/// The embedded server, on a runtime of its own that serves it until the test ends.
struct Server {
    // Declared first, so it is dropped (and stops) before its runtime.
    server: TestServer,
    _runtime: Runtime,
}

impl Server {
    fn start(lifetime: Duration) -> Self {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = TestServerConfig::new(USER, PASSWORD).lifetime(lifetime);
        let server = runtime.block_on(TestServer::start(config)).unwrap();
        Self {
            server,
            _runtime: runtime,
        }
    }
}

impl Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

/// A PortSIP layer for `server` whose provider calls time out after 1 s.
fn layer(server: &TestServer) -> BearerAuthLayer {
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build_with(unpooled())
        .unwrap();
    BearerAuthLayer::new(
        TokenCache::builder(provider)
            .timeout(Duration::from_secs(1))
            .build(),
    )
}

fn request(server: &TestServer) -> Request<Full<Bytes>> {
    Request::get(server.url(API)).body(Full::default()).unwrap()
}

fn kind(err: &BoxError) -> TokenErrorKind {
    err.downcast_ref::<TokenError>()
        .unwrap_or_else(|| panic!("expected a TokenError, got {err:?}"))
        .kind()
}

/// Runs `fut` on `runtime` under the watchdog; panics if it hangs.
fn within_watchdog<F: Future>(runtime: &Runtime, what: &str, fut: F) -> F::Output {
    // The timer is made inside the runtime: `timeout` needs one.
    runtime
        .block_on(async { tokio::time::timeout(WATCHDOG, fut).await })
        .unwrap_or_else(|_| panic!("{what}: no answer within {WATCHDOG:?}"))
}

/// Polls `fut` once on `runtime` and returns whether it is still pending.
fn poll_once<F: Future + Unpin>(runtime: &Runtime, fut: &mut F) -> bool {
    runtime.block_on(poll_fn(|cx| {
        Poll::Ready(std::pin::Pin::new(&mut *fut).poll(cx).is_pending())
    }))
}

/// Starts a request on `runtime` and returns once it has started a login, which the server
/// holds longer than the 20 ms this allows: the login is left under way on `runtime`.
fn start_a_login(runtime: &Runtime, client: &BearerAuth<Http>, server: &TestServer) {
    let cut_short = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(20),
            client.clone().oneshot(request(server)),
        )
        .await
    });
    assert!(
        cut_short.is_err(),
        "the login must still be under way: {cut_short:?}"
    );
}

/// A1. Runtime A starts a login and is then left idle (alive, never driven again). A request
/// on runtime B must end with a token or a `Timeout` error, not wait for A forever.
#[test]
fn a_login_stalled_on_an_idle_runtime_does_not_hang_another() {
    let server = Server::start(Duration::from_secs(60));
    server.set_token_delay(Duration::from_millis(500));
    let layer = layer(&server);

    let rt_a = current_thread();
    start_a_login(&rt_a, &layer.layer(unpooled()), &server);

    let rt_b = current_thread();
    let client_b = layer.layer(unpooled());
    let outcome = within_watchdog(&rt_b, "a request on runtime B", async {
        client_b.oneshot(request(&server)).await
    });
    match outcome {
        Ok(response) => assert_eq!(response.status(), StatusCode::OK),
        Err(err) => assert_eq!(kind(&err), TokenErrorKind::Timeout, "{err:?}"),
    }
    drop(rt_b);
    drop(rt_a);
}

/// A2. Runtime A obtains a 2 s token, then goes idle (alive, never driven again). Runtime B
/// sends a request every 250 ms for 3.25 s: every one must be answered `200`, and none may
/// carry an expired token, although whatever would retire the token lives on A.
#[test]
fn no_expired_token_is_sent_while_the_runtime_that_fetched_it_is_idle() {
    let server = Server::start(Duration::from_secs(2));
    let layer = layer(&server);

    let rt_a = current_thread();
    let first = within_watchdog(&rt_a, "the first request, on runtime A", async {
        layer.layer(unpooled()).oneshot(request(&server)).await
    });
    assert_eq!(first.unwrap().status(), StatusCode::OK);

    let rt_b = current_thread();
    let client_b = layer.layer(unpooled());
    let outcomes = rt_b.block_on(async {
        let mut outcomes = Vec::new();
        for _ in 0..14 {
            let sent = tokio::time::timeout(WATCHDOG, client_b.clone().oneshot(request(&server)));
            let outcome = match sent.await {
                Ok(Ok(response)) => response.status().as_u16().to_string(),
                Ok(Err(err)) => format!("{err:?}"),
                Err(_) => "hung".to_owned(),
            };
            outcomes.push(outcome);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        outcomes
    });
    assert_eq!(
        server.counts().expired_token_requests,
        0,
        "requests sent with an expired token; outcomes on B: {outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|o| o == "200"),
        "outcomes on B: {outcomes:?}"
    );
    drop(rt_b);
    drop(rt_a);
}

/// A3. A login under way on runtime A, a request on runtime B waiting for it, then A is
/// dropped: B must get a token (the login is tried again), not a `TokenError` of kind
/// `Aborted`.
#[test]
fn a_login_whose_runtime_is_dropped_is_started_again_for_its_waiters() {
    let server = Server::start(Duration::from_secs(60));
    server.set_token_delay(Duration::from_millis(300));
    let layer = layer(&server);

    let rt_a = current_thread();
    start_a_login(&rt_a, &layer.layer(unpooled()), &server);

    let rt_b = current_thread();
    let mut waiting = Box::pin(layer.layer(unpooled()).oneshot(request(&server)));
    assert!(
        poll_once(&rt_b, &mut waiting),
        "B's request waits for the login under way on A"
    );
    drop(rt_a);

    let outcome = within_watchdog(&rt_b, "the request waiting on runtime B", waiting);
    let response = outcome.unwrap_or_else(|err| panic!("B got no token: {err:?}"));
    assert_eq!(response.status(), StatusCode::OK);
}

/// A client kept in a `static`, as one shared by several `#[tokio::test]`s is, each of which
/// runs on a runtime of its own that ends with its test.
struct Shared {
    server: Server,
    client: BearerAuth<Http>,
}

static SHARED: LazyLock<Shared> = LazyLock::new(|| {
    // On a thread of its own: the first user may be inside a runtime, where `block_on` panics.
    std::thread::spawn(|| {
        let server = Server::start(Duration::from_secs(60));
        let client = layer(&server).layer(unpooled());
        Shared { server, client }
    })
    .join()
    .unwrap()
});

/// A4. Three runtimes in turn send requests through one static client; each is dropped right
/// after its requests, the first two with a login under way, and the second starts waiting
/// for the first one's login before the first is dropped (as a test starting while another
/// ends would). Every request must succeed.
#[test]
fn a_static_client_serves_runtimes_that_come_and_go() {
    let Shared { server, client } = &*SHARED;
    let cache = client.cache();
    let send = |runtime: &Runtime, what: &str| {
        let outcome = within_watchdog(runtime, what, client.clone().oneshot(request(server)));
        let response = outcome.unwrap_or_else(|err| panic!("{what}: {err:?}"));
        assert_eq!(response.status(), StatusCode::OK, "{what}");
    };

    let rt_1 = current_thread();
    send(&rt_1, "runtime 1, first request");
    send(&rt_1, "runtime 1, second request");
    cache.invalidate();
    server.set_token_delay(Duration::from_millis(300));
    start_a_login(&rt_1, client, server);

    let rt_2 = current_thread();
    let mut waiting = Box::pin(client.clone().oneshot(request(server)));
    assert!(
        poll_once(&rt_2, &mut waiting),
        "runtime 2's request waits for the login under way on runtime 1"
    );
    drop(rt_1);
    let outcome = within_watchdog(&rt_2, "runtime 2, first request", waiting);
    let response = outcome.unwrap_or_else(|err| panic!("runtime 2, first request: {err:?}"));
    assert_eq!(response.status(), StatusCode::OK);
    send(&rt_2, "runtime 2, second request");
    cache.invalidate();
    start_a_login(&rt_2, client, server);
    drop(rt_2);

    server.set_token_delay(Duration::ZERO);
    let rt_3 = current_thread();
    send(&rt_3, "runtime 3, first request");
    send(&rt_3, "runtime 3, second request");
    drop(rt_3);
}
