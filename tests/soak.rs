//! A soak test, ignored by default: `cargo test -- --ignored soak --nocapture`.
//!
//! For 60 s (`SOAK_SECS` to change it), 32 tasks share 4 clients, each a `BearerAuthLayer`
//! over `PortSip`, against the embedded server issuing 1 s tokens, while the server revokes
//! a client's current token, or every token, every 200-500 ms. No request may fail, the
//! server must see no expired token, and the process's resident memory must stay flat.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::{task::JoinSet, time::Instant};
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, TokenCache,
    client::HttpClient,
    provider::portsip::PortSip,
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "soak-pw";
const CLIENTS: usize = 4;
const TASKS: usize = 32;

/// A random number below `n`.
fn below(n: u64) -> u64 {
    RandomState::new().hash_one(0u8) % n
}

/// The resident set size, in KiB, from `/proc/self/status`.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Stats {
    requests: AtomicUsize,
    failures: Mutex<Vec<String>>,
    revoked_one: AtomicUsize,
    revoked_all: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 60 s soak; run with `cargo test -- --ignored soak --nocapture`"]
async fn soak() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rss_start = rss_kib();
    let server = Arc::new(
        TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(1)))
            .await
            .unwrap(),
    );
    let clients: Vec<(BearerAuth<HttpClient>, TokenCache)> = (0..CLIENTS)
        .map(|_| {
            let provider = PortSip::new(server.base_url(), USER, PASSWORD)
                .build()
                .unwrap();
            // Revocations at random: each refused request is replayed with a new token.
            let layer = BearerAuthLayer::new(provider).replay_unauthorized(true);
            (layer.layer(HttpClient::new()), layer.cache())
        })
        .collect();
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);

    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let (client, _) = clients[i % CLIENTS].clone();
        let url = server.url("/api/account/extensions");
        let stats = stats.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let request = Request::get(&url).body(Full::<Bytes>::default()).unwrap();
                let outcome = client.clone().oneshot(request).await;
                stats.requests.fetch_add(1, Ordering::Relaxed);
                let failure = match outcome {
                    Ok(response) if response.status() == StatusCode::OK => None,
                    Ok(response) => Some(format!("status {}", response.status())),
                    Err(e) => Some(format!("error {e}: {:?}", std::error::Error::source(&*e))),
                };
                if let Some(why) = failure {
                    let at = started.elapsed();
                    stats
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("{at:?}: {why}"));
                }
                tokio::time::sleep(Duration::from_millis(below(5))).await;
            }
        });
    }

    // The server revokes at random: mostly one client's current token, sometimes everything.
    let revoker = {
        let server = server.clone();
        let caches: Vec<TokenCache> = clients.iter().map(|(_, c)| c.clone()).collect();
        let stats = stats.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200 + below(300))).await;
                if Instant::now() >= deadline {
                    return;
                }
                if below(4) == 0 {
                    server.revoke_all();
                    stats.revoked_all.fetch_add(1, Ordering::Relaxed);
                } else if let Some(token) = caches[below(CLIENTS as u64) as usize].token() {
                    server.revoke_token(token.access_token());
                    stats.revoked_one.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // Memory after warming up, then at the end.
    tokio::time::sleep(Duration::from_secs(secs.min(5))).await;
    let rss_warm = rss_kib();
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }
    revoker.await.unwrap();
    let rss_end = rss_kib();

    let requests = stats.requests.load(Ordering::Relaxed);
    let failures = stats.failures.lock().unwrap().clone();
    eprintln!(
        "soak: {secs} s, {TASKS} tasks on {CLIENTS} clients, {requests} requests ({:.0}/s), \
         {} failed",
        requests as f64 / started.elapsed().as_secs_f64(),
        failures.len()
    );
    eprintln!(
        "server: {} token requests ({} password, {} refresh, {} failed), {} API requests, \
         {} answered 401, {} with an expired token",
        server.counts().token_requests,
        server.counts().password_grants,
        server.counts().refresh_grants,
        server.counts().failed_token_requests,
        server.counts().api_requests,
        server.counts().unauthorized,
        server.counts().expired_token_requests,
    );
    eprintln!(
        "revocations: {} single tokens, {} of everything",
        stats.revoked_one.load(Ordering::Relaxed),
        stats.revoked_all.load(Ordering::Relaxed)
    );
    eprintln!("rss: {rss_start:?} KiB at start, {rss_warm:?} KiB warm, {rss_end:?} KiB at the end");

    assert!(requests > 1000, "only {requests} requests");
    assert!(server.counts().refresh_grants > 0);
    assert!(
        failures.is_empty(),
        "{} failed requests:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    assert_eq!(
        server.counts().expired_token_requests,
        0,
        "expired tokens sent"
    );
    if let (Some(warm), Some(end)) = (rss_warm, rss_end) {
        assert!(
            end < warm + 20 * 1024,
            "rss grew from {warm} KiB to {end} KiB"
        );
    }
}
