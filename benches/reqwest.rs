//! What `BearerAuthMiddleware` adds to a request of a `reqwest_middleware` client, over a
//! middleware that sets a static `Authorization` header, on one loopback server.
//!
//! Clients, all over one `reqwest::Client` each (plain HTTP, kept-alive connections):
//!
//! - `bare`: reqwest-middleware with no middleware, for scale;
//! - `static`: a middleware that inserts a fixed bearer header (what any bearer header costs);
//! - `bearer`: `BearerAuthMiddleware` with its defaults (replay after `401` on, so each request
//!   is copied with `Request::try_clone`), the token cached;
//! - `bearer_no_replay`: the same with `replay_unauthorized(false)`.
//!
//! Client and server share one two-worker Tokio runtime (the machine has two cores). Two
//! workloads: one task sending requests one after another, and `TASKS` tasks at once. Each
//! round runs every client once, in an order that rotates from round to round, and yields one
//! paired ratio per client, `time per request / time per request of static`, and one paired
//! difference, `time per request - time per request of static`. The table shows, per client,
//! the median time per request over the rounds, the median paired ratio with its quartiles,
//! and the median paired difference.
//!
//! ```text
//! cargo bench --bench reqwest
//! ```

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Extensions, HeaderValue, Request, Response, header::AUTHORIZATION};
use http_body_util::Empty;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tokio::net::TcpListener;
use tower_bearer_auth::{TokenCache, provider::StaticToken, reqwest::BearerAuthMiddleware};

const SEQUENTIAL: usize = 3_000;
const CONCURRENT: usize = 6_400;
const TASKS: usize = 32;
const ROUNDS: usize = 31;
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6MTc2NzIyNTYwMH0.c2lnbmF0dXJl";

/// Starts the server; it counts the requests that carried a bearer token.
async fn serve(authorized: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let authorized = authorized.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    if req.headers().contains_key(AUTHORIZATION) {
                        authorized.fetch_add(1, Ordering::Relaxed);
                    }
                    async { Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// A fixed bearer header, marked sensitive like the crate's.
struct StaticAuthorization(HeaderValue);

#[async_trait::async_trait]
impl Middleware for StaticAuthorization {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        req.headers_mut().insert(AUTHORIZATION, self.0.clone());
        next.run(req, extensions).await
    }
}

fn clients() -> Vec<(&'static str, ClientWithMiddleware)> {
    let http = || {
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(TASKS)
            .build()
            .unwrap()
    };
    let mut header = HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap();
    header.set_sensitive(true);
    let cache = || TokenCache::new(StaticToken::new(TOKEN));
    vec![
        ("bare", ClientBuilder::new(http()).build()),
        (
            "static",
            ClientBuilder::new(http())
                .with(StaticAuthorization(header))
                .build(),
        ),
        (
            "bearer",
            ClientBuilder::new(http())
                .with(BearerAuthMiddleware::new(cache()).any_origin())
                .build(),
        ),
        (
            "bearer_no_replay",
            ClientBuilder::new(http())
                .with(
                    BearerAuthMiddleware::new(cache())
                        .any_origin()
                        .replay_unauthorized(false),
                )
                .build(),
        ),
    ]
}

/// Sends `n` requests, `tasks` at a time; returns the wall time per request.
async fn drive(client: &ClientWithMiddleware, url: &str, n: usize, tasks: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                for _ in 0..n / tasks {
                    let response = client.get(&url).send().await.unwrap();
                    assert!(response.status().is_success());
                    response.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    start.elapsed() / (n / tasks * tasks) as u32
}

fn median(values: &mut [f64]) -> f64 {
    quantile(values, 0.5)
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

async fn workload(name: &str, url: &str, n: usize, tasks: usize) {
    let clients = clients();
    // Warm-up: connections opened, the token fetched, caches and allocator warm.
    for (_, client) in &clients {
        drive(client, url, n / 4, tasks).await;
    }
    let mut times = vec![Vec::new(); clients.len()];
    let mut ratios = vec![Vec::new(); clients.len()];
    let mut added = vec![Vec::new(); clients.len()];
    for round in 0..ROUNDS {
        let mut this = vec![Duration::ZERO; clients.len()];
        for k in 0..clients.len() {
            let i = (round + k) % clients.len();
            this[i] = drive(&clients[i].1, url, n, tasks).await;
        }
        let reference = this[1].as_secs_f64();
        for (i, time) in this.iter().enumerate() {
            times[i].push(time.as_secs_f64() * 1e6);
            ratios[i].push(time.as_secs_f64() / reference);
            added[i].push((time.as_secs_f64() - reference) * 1e9);
        }
    }
    println!("\n{name}: {n} requests per client per round, {tasks} task(s), {ROUNDS} rounds");
    println!(
        "{:<18} {:>11} {:>26} {:>18}",
        "client", "µs/request", "ratio to static (IQR)", "added ns/request"
    );
    for (i, (client, _)) in clients.iter().enumerate() {
        let time = median(&mut times[i]);
        let (q1, q3) = (
            quantile(&mut ratios[i], 0.25),
            quantile(&mut ratios[i], 0.75),
        );
        let ratio = median(&mut ratios[i]);
        let added = median(&mut added[i]);
        println!("{client:<18} {time:>11.2} {ratio:>12.3} ({q1:.3}–{q3:.3}) {added:>18.0}");
    }
}

fn main() {
    // `cargo test --benches` runs benches with `--test`: build only.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let authorized = Arc::new(AtomicUsize::new(0));
        let addr = serve(authorized.clone()).await;
        let url = format!("http://{addr}/api/account/extensions");
        workload("sequential", &url, SEQUENTIAL, 1).await;
        workload("concurrent", &url, CONCURRENT, TASKS).await;
        assert!(authorized.load(Ordering::Relaxed) > 0);
    });
}
