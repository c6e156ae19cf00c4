//! Per-request cost of `TenantsLayer` with many keys, round-robin: a service that talks to
//! thousands of PBXs through one client, against tower-http's `AddAuthorization` (one layer per
//! PBX, the request sent to its PBX's layer) and this crate's `BearerAuth` used the same way.
//!
//! Variants, each over the same trivial inner service, request `i` going to key `i % n` (the
//! origin `http://pbx-<i % n>.example.com`):
//!
//! - `add_authorization`: `n` tower-http `AddAuthorizationLayer::bearer` services, a static
//!   header each; request `i` goes to service `i % n`;
//! - `bearer_auth`: `n` `BearerAuthLayer` services with a cached one-hour token, replay after
//!   `401` off; request `i` goes to service `i % n`;
//! - `tenants`: one `Tenants` service whose `n` keys each have a cached one-hour token, replay
//!   after `401` off; the service finds the key from the request's URI.
//!
//! Every request gets the same head (its key's URI, one `Accept` header) and is `poll_ready`,
//! `call` and one poll of the response future, on one thread, no runtime in the loop.
//!
//! ```text
//! cargo bench --bench tenants                      # timing pass: ns per request and ratios
//! TENANTS_PROFILE=10000:200000 valgrind --tool=callgrind \
//!     target/release/deps/tenants-<hash>            # `tenants` alone, for instruction counts
//! TENANTS_PROFILE=add_authorization:10000:200000 valgrind --tool=callgrind \
//!     target/release/deps/tenants-<hash>            # another variant
//! ```
//!
//! `TENANTS_PROFILE=[<variant>:]<keys>:<requests>` runs one variant alone (`tenants` by
//! default) after warming every key, then prints the allocations per request it counted.
//! Instructions per request are the difference of two callgrind totals (say 100 000 and
//! 200 000 requests) divided by the difference of the counts, which cancels the set-up.

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

use http::{HeaderValue, Request, Response, Uri, header};
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError, TokenResponse,
    provider::provider_fn,
    tenants::{TenantKey, Tenants, TenantsLayer},
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

/// The URI of key `i`'s requests.
fn uri(i: usize) -> Uri {
    format!("http://pbx-{i}.example.com/api/account/extensions")
        .parse()
        .unwrap()
}

#[inline(always)]
fn request(uri: &Uri) -> Request<()> {
    let mut req = Request::new(());
    *req.uri_mut() = uri.clone();
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req
}

#[inline(always)]
fn send<S>(svc: &mut S, uri: &Uri)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let fut = pin!(svc.call(request(uri)));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => {
            black_box(res);
        }
        _ => panic!("the request did not complete on its first poll"),
    }
}

/// An 80-character token, different for each key.
fn token(key: usize) -> String {
    let mut token = format!("t{key}-");
    while token.len() < 80 {
        token.push('x');
    }
    token
}

fn one_hour(token: String) -> impl Fn() -> Ready<Result<TokenResponse, BoxError>> + Send + Sync {
    move || {
        ready(Ok(
            TokenResponse::new(token.clone()).with_expires_in(Duration::from_secs(3600))
        ))
    }
}

enum Services {
    AddAuthorization(Vec<AddAuthorization<Echo>>),
    BearerAuth(Vec<BearerAuth<Echo>>),
    Tenants(Tenants<Echo>),
}

struct Bench {
    services: Services,
    uris: Vec<Uri>,
    // The runtime that fetched the tokens, kept alive as a real client's would be.
    runtime: tokio::runtime::Runtime,
}

impl Bench {
    fn build(variant: &str, n: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let uris: Vec<Uri> = (0..n).map(uri).collect();
        let services = match variant {
            "add_authorization" => Services::AddAuthorization(
                (0..n)
                    .map(|i| {
                        AddAuthorizationLayer::bearer(&token(i))
                            .as_sensitive(true)
                            .layer(Echo)
                    })
                    .collect(),
            ),
            "bearer_auth" => Services::BearerAuth(
                (0..n)
                    .map(|i| {
                        BearerAuthLayer::new(provider_fn(one_hour(token(i))))
                            .any_origin()
                            .replay_unauthorized(false)
                            .layer(Echo)
                    })
                    .collect(),
            ),
            "tenants" => {
                let layer = TenantsLayer::new(|key: &TenantKey| {
                    let host = key.origin().to_string();
                    let i: usize = host["http://pbx-".len()..host.find(".example").unwrap()]
                        .parse()
                        .unwrap();
                    ready(Ok::<_, BoxError>(provider_fn(one_hour(token(i)))))
                })
                .max_tenants(n)
                .configure(|_, cache| {
                    BearerAuthLayer::new(cache.build()).replay_unauthorized(false)
                });
                Services::Tenants(layer.layer(Echo))
            }
            other => panic!("unknown variant {other}"),
        };
        let mut bench = Self {
            services,
            uris,
            runtime,
        };
        bench.warm();
        bench
    }

    /// Logs every key in, on the runtime; then two rounds make this thread's copies.
    fn warm(&mut self) {
        let n = self.uris.len();
        for i in 0..n {
            let uri = self.uris[i].clone();
            match &mut self.services {
                Services::AddAuthorization(_) => {}
                Services::BearerAuth(s) => {
                    let svc = &mut s[i];
                    self.runtime
                        .block_on(async { svc.ready().await?.call(request(&uri)).await })
                        .expect("first login");
                }
                Services::Tenants(svc) => {
                    self.runtime
                        .block_on(async { svc.ready().await?.call(request(&uri)).await })
                        .expect("first login");
                }
            }
        }
        self.run(2 * n as u64);
    }

    /// Sends `requests` requests round-robin.
    #[inline(never)]
    fn run(&mut self, requests: u64) {
        let uris = &self.uris;
        let n = uris.len();
        let mut i = 0;
        match &mut self.services {
            Services::AddAuthorization(s) => {
                for _ in 0..requests {
                    send(&mut s[i], &uris[i]);
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
            }
            Services::BearerAuth(s) => {
                for _ in 0..requests {
                    send(&mut s[i], &uris[i]);
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
            }
            Services::Tenants(svc) => {
                for _ in 0..requests {
                    send(svc, &uris[i]);
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
            }
        }
    }
}

fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let (variant, n, requests) = match parts[..] {
        [n, requests] => ("tenants", n, requests),
        [variant, n, requests] => (variant, n, requests),
        _ => panic!("TENANTS_PROFILE=[<variant>:]<keys>:<requests>"),
    };
    let (n, requests): (usize, u64) = (n.parse().unwrap(), requests.parse().unwrap());
    let mut bench = Bench::build(variant, n);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    bench.run(requests);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!(
        "{variant} keys={n} requests={requests}: {:.3} allocations per request",
        allocations as f64 / requests as f64
    );
}

fn time(bench: &mut Bench, requests: u64) -> f64 {
    let started = Instant::now();
    bench.run(requests);
    started.elapsed().as_nanos() as f64 / requests as f64
}

fn main() {
    if let Ok(spec) = std::env::var("TENANTS_PROFILE") {
        return profile(&spec);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    const REQUESTS: u64 = 1_000_000;
    println!("ns per request, one thread, median of 5 interleaved rounds of {REQUESTS}");
    println!("  keys  add_authorization  bearer_auth  tenants  tenants/add_authorization");
    for n in [1, 64, 10_000] {
        let mut benches =
            ["add_authorization", "bearer_auth", "tenants"].map(|v| Bench::build(v, n));
        let mut times = [(); 3].map(|_| Vec::new());
        for _ in 0..5 {
            for (bench, times) in benches.iter_mut().zip(&mut times) {
                times.push(time(bench, REQUESTS));
            }
        }
        let [a, b, c] = times.map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[2]
        });
        println!("{n:>6}  {a:>17.1}  {b:>11.1}  {c:>7.1}  {:>5.2}", c / a);
    }
}
