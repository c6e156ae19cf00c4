//! Reproductions of issue 12, part B: what a cache leaves behind.
//!
//! Once every handle to a cache is dropped, with its runtime still alive, none of its tasks
//! may remain, and a cache runs at most one timer at a time. The tests count the runtime's
//! live tasks (`RuntimeMetrics::num_alive_tasks`) against a baseline taken before, and the
//! bytes this thread holds on the heap, through a counting global allocator.
//!
//! A test binary of its own, because it installs that allocator. The counter is per thread
//! and each test runs on a current-thread runtime, so every allocation of a test's caches and
//! tasks is made and freed on its thread, and tests running in parallel don't disturb it.

use std::time::Duration;

use tokio::runtime::Handle;
use tower_bearer_auth::{BearerAuthLayer, BoxError, TokenResponse, provider::provider_fn};

#[path = "support/live_bytes.rs"]
mod live_bytes;

use live_bytes::live_bytes;

fn alive_tasks() -> usize {
    Handle::current().metrics().num_alive_tasks()
}

/// Lets the runtime run whatever the test's last steps woke (a cancelled task, say).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A layer whose provider hands out one-hour tokens at once.
fn layer() -> BearerAuthLayer {
    BearerAuthLayer::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new("t").with_expires_in(Duration::from_secs(3600)))
    }))
    .any_origin()
}

/// Creates `n` layers, each obtaining a token, and drops each right after.
async fn churn(n: usize) {
    for _ in 0..n {
        let layer = layer();
        layer.cache().get().await.unwrap();
    }
}

/// B1. Creating and dropping 10,000 layers, each after obtaining a token that expires in an
/// hour, leaves no task behind.
#[tokio::test]
async fn dropped_caches_leave_no_task_behind() {
    let baseline = alive_tasks();
    churn(10_000).await;
    settle().await;
    assert_eq!(
        alive_tasks(),
        baseline,
        "tasks still alive after every cache was dropped"
    );
}

/// B2. One cache, invalidated and asked for a token 5,000 times: at most one timer (task) of
/// its own is alive at the end.
#[tokio::test]
async fn a_cache_runs_at_most_one_timer() {
    let baseline = alive_tasks();
    let layer = layer();
    let cache = layer.cache();
    cache.get().await.unwrap();
    for _ in 0..5_000 {
        cache.invalidate();
        cache.get().await.unwrap();
    }
    settle().await;
    let alive = alive_tasks();
    assert!(
        alive <= baseline + 1,
        "{alive} tasks alive for one cache (baseline {baseline})"
    );
}

/// What may stay on the heap after the caches are gone, and was not there at the baseline: a
/// few small blocks that change hands between threads (the process-wide registry of caches is
/// a `BTreeMap` whose nodes other tests split and merge too) and the growth of runtime queues
/// whose capacity is kept. Caches whose tokens never expire (no timer) give back every byte
/// here; 2,000 leaked caches would hold over a megabyte.
const SLACK: isize = 16 * 1024;

/// B3. Creating and dropping 2,000 layers, each after obtaining a token, gives back every byte
/// but a small constant (`SLACK`).
#[tokio::test]
async fn dropped_caches_give_their_memory_back() {
    // A warm-up, so that the runtime's and this thread's lazily made structures (timer wheel
    // levels, queues, the thread's copies of headers) exist before the baseline.
    churn(100).await;
    settle().await;
    let baseline = live_bytes();
    churn(2_000).await;
    settle().await;
    let held = live_bytes() - baseline;
    assert!(
        held <= SLACK,
        "{held} bytes still held after 2,000 caches were dropped (allowed: {SLACK})"
    );
}

/// What an idle cache holds, per cache: its state, its token (the header value and the
/// `Token` around it) and this thread's copy of the header, measured over 1,000 layers that
/// each sent two requests and keep their service. Printed with `--nocapture` (736 bytes at
/// the time of writing: the token with its header value, 303; this thread's copy with its
/// header value, 215; the cache itself, 218). The bound guards the cache's own part: twice
/// tower-http's 119 bytes per layer, plus the token and the copy as measured here (see
/// BENCHMARKS.md, "Bytes per cache").
#[tokio::test]
async fn an_idle_cache_holds_little_beyond_its_token() {
    use http::{Request, Response};
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt, service_fn};

    const TOKEN: &str =
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJl";
    let echo = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    churn(100).await;
    settle().await;
    let baseline = live_bytes();
    let mut kept = Vec::with_capacity(1_000);
    let vec_bytes = live_bytes() - baseline;
    for _ in 0..1_000 {
        let layer = BearerAuthLayer::new(provider_fn(|| async {
            Ok::<_, BoxError>(TokenResponse::new(TOKEN).with_expires_in(Duration::from_secs(3600)))
        }))
        .any_origin();
        let service = layer.layer(echo);
        // The first request logs in, the second makes this thread's copy of the header.
        service.clone().oneshot(Request::new(())).await.unwrap();
        service.clone().oneshot(Request::new(())).await.unwrap();
        kept.push(service);
    }
    settle().await;
    let per_cache = (live_bytes() - baseline - vec_bytes) / 1_000;
    println!("{per_cache} bytes per idle cache with its token and one thread's copy");
    assert!(
        per_cache <= 2 * 119 + 303 + 215,
        "{per_cache} bytes per idle cache"
    );
    drop(kept);
}
