//! The stampede scenario on Tokio's paused clock: many concurrent requests cross a token's
//! expiry or its refresh point while the token endpoint takes 50 ms to answer.
//!
//! - Expired token: every request waits, and the provider is called exactly once per expiry.
//! - Refresh-ahead possible: no request waits; the provider is called once, in the background.

use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use http::{Request, Response, header::AUTHORIZATION};
use tokio::time::{Instant, sleep, sleep_until};
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenResponse,
    provider::{BoxFuture, TokenProvider},
};

const DELAY: Duration = Duration::from_millis(50);
const LIFETIME: Duration = Duration::from_secs(60);
const REQUESTS: usize = 1000;

/// A token endpoint that takes 50 ms to answer and counts its calls.
#[derive(Default)]
struct SlowEndpoint {
    logins: AtomicUsize,
    refreshes: AtomicUsize,
}

impl SlowEndpoint {
    fn calls(&self) -> usize {
        self.logins.load(Ordering::SeqCst) + self.refreshes.load(Ordering::SeqCst)
    }

    fn response(&self) -> TokenResponse {
        TokenResponse::new(format!("token-{}", self.calls()))
            .with_refresh_token("rt")
            .with_expires_in(LIFETIME)
    }
}

impl TokenProvider for SlowEndpoint {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            sleep(DELAY).await;
            self.logins.fetch_add(1, Ordering::SeqCst);
            Ok(self.response())
        })
    }

    fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            sleep(DELAY).await;
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            Ok(self.response())
        })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn revoke<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> tower_bearer_auth::provider::BoxFuture<'a, Result<(), tower_bearer_auth::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<tower_bearer_auth::Origin> {
        None
    }
}

/// The server: answers at once with the `Authorization` header it was sent, as the body.
#[derive(Clone, Copy)]
struct Server;

impl Service<Request<()>> for Server {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let auth = &req.headers()[AUTHORIZATION];
        ready(Ok(Response::new(auth.to_str().unwrap().to_owned())))
    }
}

fn setup(refresh_ahead: Duration) -> (BearerAuth<Server>, BearerAuthLayer, Arc<SlowEndpoint>) {
    let endpoint = Arc::new(SlowEndpoint::default());
    let layer = BearerAuthLayer::new(
        TokenCache::builder(endpoint.clone())
            .refresh_ahead(refresh_ahead)
            .jitter(Duration::ZERO)
            .build(),
    )
    .any_origin();
    (layer.layer(Server), layer, endpoint)
}

/// Sends one request; returns the header the server saw and how long the request took.
async fn timed(svc: BearerAuth<Server>) -> (String, Duration) {
    let start = Instant::now();
    let auth = svc.oneshot(Request::new(())).await.unwrap().into_body();
    (auth, start.elapsed())
}

/// Spawns `REQUESTS` concurrent requests and collects what they saw.
async fn burst(svc: &BearerAuth<Server>) -> Vec<(String, Duration)> {
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| tokio::spawn(timed(svc.clone())))
        .collect();
    let mut seen = Vec::with_capacity(REQUESTS);
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn expired_token_one_call_per_expiry() {
    // No refresh-ahead: the token is good until it expires, then every request must wait.
    let (svc, _layer, endpoint) = setup(Duration::ZERO);
    assert_eq!(timed(svc.clone()).await.0, "Bearer token-1");
    assert_eq!(endpoint.calls(), 1);

    for expiry in 1..=3 {
        sleep(LIFETIME).await;
        let seen = burst(&svc).await;
        assert_eq!(endpoint.calls(), 1 + expiry, "one token call per expiry");
        for (auth, took) in seen {
            assert_eq!(auth, format!("Bearer token-{}", expiry + 1));
            assert!(
                (DELAY..DELAY + Duration::from_millis(2)).contains(&took),
                "every request waited for the one call: {took:?}"
            );
        }
    }
    assert_eq!(endpoint.logins.load(Ordering::SeqCst), 1);
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn burst_before_first_login_shares_it() {
    let (svc, _layer, endpoint) = setup(Duration::from_secs(10));
    let seen = burst(&svc).await;
    assert_eq!(endpoint.calls(), 1);
    assert!(seen.iter().all(|(auth, _)| auth == "Bearer token-1"));
}

#[tokio::test(start_paused = true)]
async fn burst_at_refresh_point_waits_for_nothing() {
    let (svc, layer, endpoint) = setup(Duration::from_secs(10));
    timed(svc.clone()).await;

    for round in 1..=3 {
        let token = layer.cache().token().unwrap();
        let refresh_at = token.refresh_at().unwrap();
        assert_eq!(
            token.expires_at().unwrap() - refresh_at,
            Duration::from_secs(10)
        );
        sleep_until(refresh_at + Duration::from_millis(1)).await;
        let seen = burst(&svc).await;
        for (auth, took) in &seen {
            assert_eq!(*auth, format!("Bearer token-{round}"), "the old token");
            assert_eq!(*took, Duration::ZERO, "no request waited");
        }
        // The refresh finishes in the background.
        sleep(DELAY * 2).await;
        assert_eq!(
            endpoint.calls(),
            1 + round as usize,
            "one refresh per refresh point"
        );
        assert_eq!(
            timed(svc.clone()).await.0,
            format!("Bearer token-{}", round + 1)
        );
    }
    assert_eq!(endpoint.logins.load(Ordering::SeqCst), 1);
}

/// Requests sent every millisecond across the refresh point and the refresh that follows:
/// each completes on its first poll (it never waited), one refresh is made, and the new
/// token replaces the old one exactly once.
#[tokio::test(start_paused = true)]
async fn requests_across_refresh_point_complete_on_first_poll() {
    let (mut svc, layer, endpoint) = setup(Duration::from_secs(10));
    timed(svc.clone()).await;
    let refresh_at = layer.cache().token().unwrap().refresh_at().unwrap();
    sleep_until(refresh_at - Duration::from_millis(100)).await;

    let mut cx = Context::from_waker(Waker::noop());
    let mut seen = Vec::new();
    for _ in 0..300 {
        for _ in 0..10 {
            assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
            let fut = pin!(svc.call(Request::new(())));
            match fut.poll(&mut cx) {
                Poll::Ready(Ok(res)) => seen.push((Instant::now(), res.into_body())),
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => panic!("a request waited at {:?}", Instant::now() - refresh_at),
            }
        }
        // Lets the timer and the refresh run.
        sleep(Duration::from_millis(1)).await;
    }

    assert_eq!(endpoint.logins.load(Ordering::SeqCst), 1);
    assert_eq!(endpoint.refreshes.load(Ordering::SeqCst), 1);
    let switch = seen
        .iter()
        .position(|(_, a)| a == "Bearer token-2")
        .unwrap();
    assert!(seen[..switch].iter().all(|(_, a)| a == "Bearer token-1"));
    assert!(seen[switch..].iter().all(|(_, a)| a == "Bearer token-2"));
    // The new token arrived one endpoint delay after the refresh point.
    let at = seen[switch].0 - refresh_at;
    assert!((DELAY..DELAY * 2).contains(&at), "{at:?}");
}
