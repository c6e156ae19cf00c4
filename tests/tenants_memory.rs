//! Issue 15: what a key holds, and that eviction gives it back. Alone in its test binary:
//! slot numbers (which index each thread's tables of header copies and seats) are taken from
//! process-wide pools, so caches made by tests running beside this one would make this
//! thread's tables longer between the baseline and the end, and be counted as held.
//!
//! Runs without sockets, on a current-thread runtime, so that the counting allocator (per
//! thread) sees every byte of the keys and nothing of servers and connection pools.

use std::{convert::Infallible, time::Duration};

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_bearer_auth::{
    BoxError, TokenResponse,
    provider::provider_fn,
    tenants::{TenantId, TenantKey, TenantsLayer},
};

// A counting allocator: bytes held by this thread.
#[path = "support/live_bytes.rs"]
mod live_bytes;

use live_bytes::live_bytes;

/// Idle keys are evicted after the idle timeout, and eviction gives the memory back: 1,000
/// keys that each logged in, then evicted, leave the thread's heap where it was (but a small
/// slack), and no task behind. Also prints the bytes per idle key.
#[tokio::test(start_paused = true)]
async fn evicted_keys_give_their_memory_and_tasks_back() {
    const KEYS: usize = 1_000;
    const TOKEN: &str =
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJl";
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let layer = TenantsLayer::new(|_: &TenantKey| async {
        Ok::<_, BoxError>(provider_fn(|| async {
            Ok::<_, BoxError>(TokenResponse::new(TOKEN).with_expires_in(Duration::from_secs(3600)))
        }))
    })
    .idle_timeout(Duration::from_secs(60));
    let caches = layer.caches();
    let mut client = layer.layer(inner);
    let tenants: Vec<TenantId> = (0..KEYS)
        .map(|n| TenantId::new(format!("tenant-{n}")))
        .collect();
    let mut send = async |tenant: &TenantId| {
        let mut request = Request::get("https://pbx.example.com:8887/api")
            .body(())
            .unwrap();
        request.extensions_mut().insert(tenant.clone());
        client.ready().await.unwrap().call(request).await.unwrap();
    };
    // A first cycle, so that lazily made structures exist before the baseline: the runtime's,
    // and this thread's table of header copies, which grows to the number of caches alive at
    // once and keeps its size (as `Vec`s do).
    for tenant in &tenants {
        send(tenant).await;
        send(tenant).await;
    }
    assert_eq!(caches.evict_idle(), 0, "used since the last sweep");
    tokio::time::advance(Duration::from_secs(61)).await;
    // Swept by the layer's task while the clock moved, or now.
    caches.evict_idle();
    assert!(caches.is_empty());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let baseline = live_bytes();

    for tenant in &tenants {
        // The first request makes the key and logs in, the second makes this thread's copy.
        send(tenant).await;
        send(tenant).await;
    }
    let per_key = (live_bytes() - baseline) / KEYS as isize;
    println!("{per_key} bytes per idle key, its token and one thread's copy included");
    assert!(per_key <= 2048, "{per_key} bytes per idle key");
    assert_eq!(caches.len(), KEYS);

    // Keys used recently survive a sweep; idle ones go (swept by the layer's own task while
    // the clock moves, or by `evict_idle`).
    assert_eq!(caches.evict_idle(), 0);
    tokio::time::advance(Duration::from_secs(30)).await;
    send(&tenants[1]).await;
    assert_eq!(caches.evict_idle(), 0);
    assert_eq!(caches.len(), KEYS);
    tokio::time::advance(Duration::from_secs(31)).await;
    caches.evict_idle();
    assert_eq!(caches.len(), 1, "only the key used 31 s ago is left");
    tokio::time::advance(Duration::from_secs(61)).await;
    caches.evict_idle();
    assert!(caches.is_empty());
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let held = live_bytes() - baseline;
    println!("{held} bytes held after every key was evicted");
    assert!(held <= 4 * 1024, "{held} bytes still held");
    assert_eq!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
        tasks
    );
}
