//! Loopback end to end: requests per second through a hyper-util client to a hyper server on
//! 127.0.0.1, with and without `BearerAuthLayer`.
//!
//! Clients: the plain hyper-util client (`without`), tower-http's `AddAuthorizationLayer` (a
//! static bearer header: what any bearer header costs end to end), `BearerAuthLayer` with its
//! defaults, and `BearerAuthLayer` with replay after a `401` on (which copies each request's
//! head). Client and server share one two-worker Tokio runtime (the machine has two
//! cores). Two workloads: one task sending requests one after another over a kept-alive
//! connection, and `TASKS` tasks sending at once. Each round runs every client once, in an
//! order that rotates from round to round, and yields one paired loss per client,
//! `1 - client / without`. Throughput on a shared
//! two-core machine drifts by tens of percent between processes and over seconds, so the table
//! shows the median of the `ROUNDS` paired losses (with their quartiles), next to the median
//! requests per second of each client.
//!
//! ```text
//! cargo bench --bench loopback
//! ```
//!
//! For a profiler, `LOOPBACK_PROFILE=<client>[:<requests>]` sends that many requests through
//! one client after the warm-up, and nothing else.

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
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Empty};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::{BearerAuthLayer, BoxError, TokenResponse, provider::provider_fn};
use tower_http::auth::AddAuthorizationLayer;

const SEQUENTIAL: usize = 2_000;
const CONCURRENT: usize = 6_400;
const TASKS: usize = 32;
const ROUNDS: usize = 21;

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

/// Sends `n` requests, `tasks` at a time; returns requests per second.
async fn drive<S>(svc: S, uri: &str, n: usize, tasks: usize) -> f64
where
    S: Service<Request<Empty<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut svc = svc.clone();
            let uri = uri.to_owned();
            tokio::spawn(async move {
                for _ in 0..n / tasks {
                    let req = Request::get(&uri).body(Empty::new()).unwrap();
                    let res = svc
                        .ready()
                        .await
                        .map_err(Into::into)
                        .unwrap()
                        .call(req)
                        .await
                        .map_err(Into::into)
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    res.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    (n / tasks * tasks) as f64 / start.elapsed().as_secs_f64()
}

/// The size of the response future of `_svc`, for the requests sent here.
fn future_size<S: Service<Request<Empty<Bytes>>>>(_svc: &S) -> usize {
    std::mem::size_of::<S::Future>()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
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
    rt.block_on(async {
        let authorized = Arc::new(AtomicUsize::new(0));
        let addr = serve(authorized.clone()).await;
        let uri = format!("http://{addr}/");

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        // A token that expires in an hour, as for any refreshing token.
        let layer = BearerAuthLayer::new(provider_fn(|| async {
            Ok::<_, BoxError>(
                TokenResponse::new("loopback-token").with_expires_in(Duration::from_secs(3600)),
            )
        }))
        .any_origin()
        .replay_unauthorized(false);
        let authed = layer.layer(plain.clone());
        // The same with replay after a `401`, which copies each request's head.
        let replay_layer = BearerAuthLayer::new(provider_fn(|| async {
            Ok::<_, BoxError>(
                TokenResponse::new("loopback-token").with_expires_in(Duration::from_secs(3600)),
            )
        }))
        .any_origin();
        let replaying = replay_layer.layer(plain.clone());
        // tower-http's static header: what sending any bearer header costs end to end.
        let static_header = AddAuthorizationLayer::bearer("loopback-token")
            .as_sensitive(true)
            .layer(plain.clone());

        let names = [
            "without",
            "add_authorization",
            "bearer_auth",
            "bearer_auth_replay",
        ];
        let run = |i: usize, n: usize, tasks: usize| {
            let uri = uri.clone();
            let (plain, static_header, authed, replaying) = (
                plain.clone(),
                static_header.clone(),
                authed.clone(),
                replaying.clone(),
            );
            async move {
                match i {
                    0 => drive(plain, &uri, n, tasks).await,
                    1 => drive(static_header, &uri, n, tasks).await,
                    2 => drive(authed, &uri, n, tasks).await,
                    _ => drive(replaying, &uri, n, tasks).await,
                }
            }
        };

        // Warm up: connections, the tokens, every worker's copy of the header.
        for i in 0..names.len() {
            run(i, 2_000, TASKS).await;
        }
        assert!(layer.cache().token().is_some());
        assert!(replay_layer.cache().token().is_some());
        assert_eq!(
            authorized.load(Ordering::Relaxed),
            3 * (2_000 / TASKS * TASKS)
        );

        println!(
            "response future sizes: plain {} bytes, AddAuthorization {} bytes, BearerAuth {} bytes",
            future_size(&plain),
            future_size(&static_header),
            future_size(&authed),
        );

        // `LOOPBACK_PROFILE=<client>[:<requests>]`: after the warm-up, send that many requests
        // one after another through one client and exit, for a profiler to count what each
        // request costs end to end (client, server and the runtime they share).
        if let Ok(spec) = std::env::var("LOOPBACK_PROFILE") {
            let (name, n) = spec.split_once(':').unwrap_or((&spec, "20000"));
            let n: usize = n.parse().expect("a number of requests");
            let i = names
                .iter()
                .position(|c| *c == name)
                .expect("a client name");
            println!("{name}: {:.0} req/s", run(i, n, 1).await);
            return;
        }

        println!(
            "{ROUNDS} rounds, each running every client once in rotating order; requests/s: \
             median; loss = 1 - client / without, paired per round: median [quartiles]"
        );
        for (workload, n, tasks) in [
            ("sequential (1 task)", SEQUENTIAL, 1),
            ("concurrent (32 tasks)", CONCURRENT, TASKS),
        ] {
            let mut rps = vec![Vec::new(); names.len()];
            for round in 0..ROUNDS {
                for k in 0..names.len() {
                    let i = (round + k) % names.len();
                    rps[i].push(run(i, n, tasks).await);
                }
            }
            println!("{workload}");
            for i in 0..names.len() {
                let mut loss: Vec<f64> = (0..ROUNDS)
                    .map(|r| (1.0 - rps[i][r] / rps[0][r]) * 100.0)
                    .collect();
                loss.sort_by(f64::total_cmp);
                println!(
                    "  {:<24} {:>10.0} req/s  loss {:>6.2}% [{:.1}% .. {:.1}%]",
                    names[i],
                    median(rps[i].clone()),
                    median(loss.clone()),
                    loss[ROUNDS / 4],
                    loss[ROUNDS - 1 - ROUNDS / 4]
                );
            }
        }
    });
}
