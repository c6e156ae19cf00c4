//! Stampede: 10,000 concurrent requests cross a token boundary while the token endpoint takes
//! 50 ms to answer, in real time on a two-worker Tokio runtime.
//!
//! Two scenarios:
//!
//! - `hard_expiry`: no refresh-ahead margin, so at expiry there is no valid token and the
//!   requests must wait for the new one.
//! - `refresh_ahead`: a 1 s margin, so at the refresh point the token is still valid; the
//!   refresh runs in the background and no request should wait.
//!
//! The requests are spread evenly over the 500 ms around the boundary (20 per millisecond),
//! all spawned up front. Each measures its own latency, from just before the call to the
//! response, against a server that answers at once; that latency is what the layer adds.
//! Requests are grouped by when they were sent: `steady` in the 230 ms up to 20 ms before the
//! boundary, `boundary` from the boundary to 70 ms after it (the endpoint's 50 ms plus 20),
//! `after` from 100 ms after it on. Each scenario runs `RUNS` times; the table shows the
//! median of each figure.
//!
//! ```text
//! cargo bench --bench stampede
//! ```

use std::{
    convert::Infallible,
    future::{Ready, ready},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use tokio::time::{Instant, sleep, sleep_until};
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, TokenResponse,
    provider::{BoxFuture, TokenProvider},
};

const DELAY: Duration = Duration::from_millis(50);
const REQUESTS: usize = 10_000;
const SPREAD: Duration = Duration::from_millis(500);
const RUNS: usize = 5;

/// A token endpoint that takes 50 ms to answer and counts its calls.
struct SlowEndpoint {
    calls: AtomicUsize,
    lifetime: Duration,
}

impl SlowEndpoint {
    async fn answer(&self) -> Result<TokenResponse, BoxError> {
        sleep(DELAY).await;
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(TokenResponse::new(format!("token-{n}"))
            .with_refresh_token("rt")
            .with_expires_in(self.lifetime))
    }
}

impl TokenProvider for SlowEndpoint {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(self.answer())
    }

    fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(self.answer())
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

/// The server: answers at once.
#[derive(Clone, Copy)]
struct Server;

impl Service<Request<()>> for Server {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

#[derive(Clone, Copy)]
enum Scenario {
    HardExpiry,
    RefreshAhead,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::HardExpiry => "hard_expiry",
            Scenario::RefreshAhead => "refresh_ahead",
        }
    }
}

/// Latency figures of one group of requests.
#[derive(Clone, Copy, Default)]
struct Figures {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Requests that took at least half the endpoint's delay: they waited for it.
    waited: usize,
}

impl Figures {
    fn of(mut latencies: Vec<Duration>) -> Self {
        latencies.sort();
        let at = |q: f64| latencies[((q * latencies.len() as f64).ceil() as usize).max(1) - 1];
        Self {
            count: latencies.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: *latencies.last().unwrap(),
            waited: latencies.iter().filter(|l| **l >= DELAY / 2).count(),
        }
    }
}

struct Run {
    /// Token calls caused by crossing the boundary (the first login not counted).
    calls: usize,
    steady: Figures,
    boundary: Figures,
    after: Figures,
}

async fn run(scenario: Scenario) -> Run {
    let (lifetime, margin) = match scenario {
        Scenario::HardExpiry => (Duration::from_secs(2), Duration::ZERO),
        Scenario::RefreshAhead => (Duration::from_secs(4), Duration::from_secs(1)),
    };
    let endpoint = Arc::new(SlowEndpoint {
        calls: AtomicUsize::new(0),
        lifetime,
    });
    let layer = BearerAuthLayer::new(
        TokenCache::builder(endpoint.clone())
            .refresh_ahead(margin)
            .jitter(Duration::ZERO)
            .build(),
    )
    .any_origin();
    let svc = layer.layer(Server);
    svc.clone().oneshot(Request::new(())).await.unwrap();
    let token = layer.cache().token().expect("logged in");
    let boundary = match scenario {
        Scenario::HardExpiry => token.expires_at().unwrap(),
        Scenario::RefreshAhead => token.refresh_at().unwrap(),
    };
    assert!(
        boundary > Instant::now() + SPREAD,
        "time to spawn the requests"
    );

    let first = boundary - SPREAD / 2;
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let svc = svc.clone();
            let at = first + SPREAD * i as u32 / REQUESTS as u32;
            tokio::spawn(async move {
                sleep_until(at).await;
                let start = Instant::now();
                svc.oneshot(Request::new(())).await.unwrap();
                (at, start.elapsed())
            })
        })
        .collect();
    let mut seen = Vec::with_capacity(REQUESTS);
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    // Let a background refresh finish before counting.
    sleep(DELAY * 2).await;

    let ms = Duration::from_millis;
    let group = |from: Instant, to: Instant| {
        Figures::of(
            seen.iter()
                .filter(|(at, _)| (from..to).contains(at))
                .map(|(_, l)| *l)
                .collect(),
        )
    };
    Run {
        calls: endpoint.calls.load(Ordering::SeqCst) - 1,
        steady: group(first, boundary - ms(20)),
        boundary: group(boundary, boundary + DELAY + ms(20)),
        after: group(boundary + ms(100), first + SPREAD),
    }
}

fn median<T: Copy + Ord>(mut xs: Vec<T>) -> T {
    xs.sort();
    xs[xs.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // Built and run by `cargo test --benches`: nothing to check here.
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "{REQUESTS} requests spread over {SPREAD:?} around the boundary, token endpoint {DELAY:?}, \
         median of {RUNS} runs; latencies in µs"
    );
    println!(
        "{:<14} {:<9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>7}",
        "scenario", "group", "calls", "count", "p50", "p99", "max", "waited"
    );
    for scenario in [Scenario::HardExpiry, Scenario::RefreshAhead] {
        let runs: Vec<Run> = (0..RUNS).map(|_| rt.block_on(run(scenario))).collect();
        let calls: Vec<usize> = runs.iter().map(|r| r.calls).collect();
        for (name, pick) in [
            ("steady", (|r: &Run| r.steady) as fn(&Run) -> Figures),
            ("boundary", |r: &Run| r.boundary),
            ("after", |r: &Run| r.after),
        ] {
            let figs: Vec<Figures> = runs.iter().map(pick).collect();
            let m = |f: fn(&Figures) -> Duration| median(figs.iter().map(f).collect());
            println!(
                "{:<14} {:<9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>7}",
                scenario.name(),
                name,
                median(calls.clone()),
                median(figs.iter().map(|f| f.count).collect()),
                us(m(|f| f.p50)),
                us(m(|f| f.p99)),
                us(m(|f| f.max)),
                median(figs.iter().map(|f| f.waited).collect()),
            );
        }
        println!(
            "{:<14} token calls per boundary crossing in each run: {calls:?}",
            scenario.name()
        );
    }
}
