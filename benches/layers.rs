//! Per-request cost with many layers, each with its own token, sent to round-robin: a service
//! that talks to many APIs or tenants. The cost must not grow with the number of layers or
//! with the token's length.
//!
//! Variants, each built `n` times (one layer per API) over the same trivial inner service:
//!
//! - `add_authorization`: tower-http's `AddAuthorizationLayer::bearer`, a static header per
//!   layer;
//! - `bearer_auth`: `BearerAuthLayer` with `replay_unauthorized(false)` and a cached token
//!   that expires in an hour: the token alone.
//!
//! Every request is `poll_ready`, `call` and one poll of the response future, on one thread,
//! no runtime in the loop; request `i` goes to layer `i % n`.
//!
//! ```text
//! cargo bench --bench layers                      # timing pass: ns per request and ratios
//! LAYERS_PROFILE=bearer_auth:64:1200:200000 valgrind --tool=callgrind \
//!     target/release/deps/layers-<hash>            # one variant, for instruction counts
//! ```
//!
//! `LAYERS_PROFILE=<variant>:<layers>:<token length>:<requests>` runs one variant alone after
//! warming every layer, then prints the allocations per request it counted. Instructions per
//! request are the difference of two callgrind totals (say 100 000 and 200 000 requests)
//! divided by the difference of the counts, which cancels the set-up.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    convert::Infallible,
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenResponse, provider::provider_fn,
};
use tower_http::auth::{AddAuthorization, AddAuthorizationLayer};

/// Counts allocations, to report them per request.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The trivial inner service: drops the request, answers at once.
#[derive(Clone, Copy, Debug)]
struct Echo;

impl Service<Request<()>> for Echo {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        drop(black_box(req));
        ready(Ok(Response::new(())))
    }
}

#[inline(always)]
fn request() -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req
}

#[inline(always)]
fn send<S>(svc: &mut S)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(request()));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => {
            black_box(res);
        }
        _ => panic!("the request did not complete on its first poll"),
    }
}

/// A token of `len` characters, different for each layer.
fn token(layer: usize, len: usize) -> String {
    let mut token = format!("t{layer}-");
    while token.len() < len {
        token.push('x');
    }
    token.truncate(len);
    token
}

enum Services {
    AddAuthorization(Vec<AddAuthorization<Echo>>),
    BearerAuth {
        services: Vec<BearerAuth<Echo>>,
        // The runtime that fetched the tokens, kept alive as a real client's would be.
        _runtime: tokio::runtime::Runtime,
    },
}

impl Services {
    fn build(variant: &str, n: usize, len: usize) -> Self {
        match variant {
            "add_authorization" => Self::AddAuthorization(
                (0..n)
                    .map(|i| {
                        AddAuthorizationLayer::bearer(&token(i, len))
                            .as_sensitive(true)
                            .layer(Echo)
                    })
                    .collect(),
            ),
            "bearer_auth" => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let services = (0..n)
                    .map(|i| {
                        let token = token(i, len);
                        let layer = BearerAuthLayer::new(provider_fn(move || {
                            let token = token.clone();
                            async move {
                                Ok::<_, BoxError>(
                                    TokenResponse::new(token)
                                        .with_expires_in(Duration::from_secs(3600)),
                                )
                            }
                        }))
                        .any_origin()
                        // The token alone: replay after `401` (the default) is measured in
                        // benches/overhead.rs.
                        .replay_unauthorized(false);
                        let mut svc = layer.layer(Echo);
                        runtime
                            .block_on(async {
                                let ready = svc.ready().await?;
                                ready.call(request()).await
                            })
                            .expect("first login");
                        svc
                    })
                    .collect();
                Self::BearerAuth {
                    services,
                    _runtime: runtime,
                }
            }
            other => panic!("unknown variant {other}"),
        }
    }

    /// Sends `requests` requests round-robin.
    #[inline(never)]
    fn run(&mut self, requests: u64) {
        match self {
            Self::AddAuthorization(s) => round_robin(s, requests),
            Self::BearerAuth { services, .. } => round_robin(services, requests),
        }
    }
}

#[inline(always)]
fn round_robin<S>(services: &mut [S], requests: u64)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let n = services.len();
    let mut i = 0;
    for _ in 0..requests {
        send(&mut services[i]);
        i += 1;
        if i == n {
            i = 0;
        }
    }
}

fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [variant, n, len, requests] = parts[..] else {
        panic!("LAYERS_PROFILE=<variant>:<layers>:<token length>:<requests>")
    };
    let (n, len, requests) = (
        n.parse().unwrap(),
        len.parse().unwrap(),
        requests.parse().unwrap(),
    );
    let mut services = Services::build(variant, n, len);
    // Warm every layer twice: the first request after the login makes this thread's copy.
    services.run(2 * n as u64);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    services.run(requests);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "{variant} layers={n} token={len} requests={requests}: {:.3} allocations per request",
        allocations as f64 / requests as f64
    );
}

fn time(services: &mut Services, requests: u64) -> f64 {
    let started = Instant::now();
    services.run(requests);
    started.elapsed().as_nanos() as f64 / requests as f64
}

fn main() {
    if let Ok(spec) = std::env::var("LAYERS_PROFILE") {
        return profile(&spec);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    const REQUESTS: u64 = 1_000_000;
    println!("ns per request, one thread, median of 5 interleaved rounds of {REQUESTS}");
    println!("layers token  add_authorization  bearer_auth  ratio");
    for len in [80, 1200] {
        for n in [1, 5, 64, 1024, 10_000] {
            let mut ours = Services::build("bearer_auth", n, len);
            let mut theirs = Services::build("add_authorization", n, len);
            ours.run(2 * n as u64);
            theirs.run(2 * n as u64);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..5 {
                a.push(time(&mut theirs, REQUESTS));
                b.push(time(&mut ours, REQUESTS));
            }
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            println!(
                "{n:>6} {len:>5}  {:>17.1}  {:>11.1}  {:>5.2}",
                a[2],
                b[2],
                b[2] / a[2]
            );
        }
    }
}
