//! Per-request overhead of adding a bearer token, against a trivial inner service.
//!
//! Variants, all with the same request and the same inner service:
//!
//! - `bare`: the inner service alone.
//! - `add_authorization`: tower-http's `AddAuthorizationLayer::bearer`, a static header whose
//!   one shared `HeaderValue` is cloned for every request.
//! - `bearer_auth`: `BearerAuthLayer` with `replay_unauthorized(false)` and a cached token
//!   that expires in an hour (the hot path reads the clock against its refresh point, as for
//!   any refreshing token): the token alone, no allocation.
//! - `bearer_auth_replay`: the default settings, with replay after a `401` on: a copy of each
//!   request's head is kept to replay it.
//! - `mutex_baseline`: a naive shared-token layer written here: every request locks an
//!   `Arc<std::sync::Mutex<…>>`, checks the expiry against the clock and clones the header.
//! - `bearer_auth_overwrite` (for information): no replay, and `overwrite_existing(true)`,
//!   which skips looking for an `Authorization` header already present, as tower-http does.
//! - `bearer_auth_no_timer` (for information): no replay, and the runtime that fetched the
//!   token gone. Named for the timer task earlier versions kept per token; since the cache
//!   keeps none, it measures the same hot path as `bearer_auth`: a copy needs no runtime.
//!
//! Each is measured on one thread and on two OS threads, each driving its own clone of one
//! layered service. Futures are polled with a no-op waker, no runtime in the loop. After the
//! criterion groups, a separate timing pass prints medians and the target ratios.
//!
//! ```text
//! cargo bench --bench overhead -- --warm-up-time 1 --measurement-time 2
//! ```

use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    sync::{Arc, Barrier, Mutex},
    task::{Context, Poll, Waker},
    thread,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion};
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::{BearerAuthLayer, BoxError, TokenResponse, provider::provider_fn};
use tower_http::auth::AddAuthorizationLayer;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJl";

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

/// The request every variant sends. It already carries a header, as real requests do, so the
/// header map is allocated before any auth layer inserts into it.
#[inline(always)]
fn request() -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req
}

/// One request: `poll_ready`, `call`, and the response future polled once with a no-op waker.
#[inline(always)]
fn send<S>(svc: &mut S)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("the inner service is always ready"),
    }
    let fut = pin!(svc.call(request()));
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(res)) => {
            black_box(res);
        }
        _ => panic!("the request did not complete on its first poll"),
    }
}

/// The naive baseline: one token behind a mutex, checked and cloned on every request.
#[derive(Clone)]
struct MutexAuth<S> {
    inner: S,
    shared: Arc<Mutex<MutexToken>>,
}

struct MutexToken {
    header: HeaderValue,
    expires_at: Instant,
}

impl<S> MutexAuth<S> {
    fn new(inner: S) -> Self {
        let mut header = HeaderValue::try_from(format!("Bearer {TOKEN}")).unwrap();
        header.set_sensitive(true);
        Self {
            inner,
            shared: Arc::new(Mutex::new(MutexToken {
                header,
                expires_at: Instant::now() + Duration::from_secs(3600),
            })),
        }
    }
}

impl<S: Service<Request<()>>> Service<Request<()>> for MutexAuth<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<()>) -> S::Future {
        let header = {
            let token = self.shared.lock().unwrap();
            assert!(
                Instant::now() < token.expires_at,
                "a real one would refresh"
            );
            token.header.clone()
        };
        req.headers_mut().insert(header::AUTHORIZATION, header);
        self.inner.call(req)
    }
}

/// A provider whose token lasts an hour, so the hot path checks its refresh point as for any refreshing
/// token.
fn hour_token_layer() -> BearerAuthLayer {
    BearerAuthLayer::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new(TOKEN).with_expires_in(Duration::from_secs(3600)))
    }))
    .any_origin()
}

/// A service under test, plus whatever must stay alive while it is measured.
struct Variant {
    name: &'static str,
    svc: Variant2,
    _rt: Option<tokio::runtime::Runtime>,
}

/// Concrete service types, so that the measured calls are not boxed.
#[derive(Clone)]
enum Variant2 {
    Bare(Echo),
    AddAuthorization(tower_http::auth::AddAuthorization<Echo>),
    BearerAuth(tower_bearer_auth::BearerAuth<Echo>),
    Mutex(MutexAuth<Echo>),
}

impl Variant2 {
    #[inline(always)]
    fn run(&mut self, iters: u64) {
        match self {
            Variant2::Bare(s) => (0..iters).for_each(|_| send(s)),
            Variant2::AddAuthorization(s) => (0..iters).for_each(|_| send(s)),
            Variant2::BearerAuth(s) => (0..iters).for_each(|_| send(s)),
            Variant2::Mutex(s) => (0..iters).for_each(|_| send(s)),
        }
    }
}

fn variants() -> Vec<Variant> {
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };

    // (c): warm the cache inside a runtime that stays alive (earlier versions needed it for
    // their timer task)
    // and every thread may keep its copy of the header.
    let layer = hour_token_layer().replay_unauthorized(false);
    let mut bearer = layer.layer(Echo);
    let runtime = rt();
    runtime
        .block_on(bearer.ready().await_call())
        .expect("first login");
    check(&layer);
    let token = layer.cache().token().expect("a cached token");
    assert!(token.expires_at().is_some(), "an expiring token");
    // The first request after the login fills this thread's slot; later ones hit it.
    send(&mut bearer);

    // (c'): the same with replay after a `401` turned on, which keeps a copy of each request's
    // head.
    let replay_layer = hour_token_layer();
    let mut replaying = replay_layer.layer(Echo);
    runtime.block_on(replaying.ready().await_call()).unwrap();
    send(&mut replaying);

    // For information: no replay, and tower-http's semantics (replace any `Authorization`
    // header instead of first looking for one).
    let overwrite_layer = hour_token_layer()
        .replay_unauthorized(false)
        .overwrite_existing(true);
    let mut overwrite = overwrite_layer.layer(Echo);
    runtime.block_on(overwrite.ready().await_call()).unwrap();
    send(&mut overwrite);

    // For information: the same layer once the runtime that fetched its token is gone.
    let no_timer_layer = hour_token_layer().replay_unauthorized(false);
    let mut no_timer = no_timer_layer.layer(Echo);
    rt().block_on(no_timer.ready().await_call()).unwrap();
    assert!(no_timer_layer.cache().token().is_some());

    vec![
        Variant {
            name: "bare",
            svc: Variant2::Bare(Echo),
            _rt: None,
        },
        Variant {
            name: "add_authorization",
            svc: Variant2::AddAuthorization(
                AddAuthorizationLayer::bearer(TOKEN)
                    .as_sensitive(true)
                    .layer(Echo),
            ),
            _rt: None,
        },
        Variant {
            name: "bearer_auth",
            svc: Variant2::BearerAuth(bearer),
            _rt: Some(runtime),
        },
        Variant {
            name: "bearer_auth_replay",
            svc: Variant2::BearerAuth(replaying),
            _rt: None,
        },
        Variant {
            name: "mutex_baseline",
            svc: Variant2::Mutex(MutexAuth::new(Echo)),
            _rt: None,
        },
        Variant {
            name: "bearer_auth_overwrite",
            svc: Variant2::BearerAuth(overwrite),
            _rt: None,
        },
        Variant {
            name: "bearer_auth_no_timer",
            svc: Variant2::BearerAuth(no_timer),
            _rt: None,
        },
    ]
}

/// Small helper so a warm-up reads as one expression.
trait AwaitCall {
    fn await_call(self) -> impl Future<Output = Result<Response<()>, BoxError>>;
}

impl<'a, S> AwaitCall for tower::util::Ready<'a, S, Request<()>>
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: Into<BoxError>,
{
    async fn await_call(self) -> Result<Response<()>, BoxError> {
        let svc = self.await.map_err(Into::into)?;
        svc.call(request()).await.map_err(Into::into)
    }
}

/// Checks that each layer, as configured here, sends the bearer header.
fn check(bearer: &BearerAuthLayer) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let expected = format!("Bearer {TOKEN}");
    let recorder = || {
        let expected = expected.clone();
        tower::service_fn(move |req: Request<()>| {
            let sent = req.headers().get(header::AUTHORIZATION).cloned();
            assert_eq!(
                sent.as_ref().map(|h| h.as_bytes()),
                Some(expected.as_bytes())
            );
            async { Ok::<_, BoxError>(Response::new(())) }
        })
    };
    rt.block_on(async {
        let add = AddAuthorizationLayer::bearer(TOKEN)
            .as_sensitive(true)
            .layer(recorder());
        add.oneshot(request()).await.unwrap();
        bearer.layer(recorder()).oneshot(request()).await.unwrap();
        let mutex = MutexAuth {
            inner: recorder(),
            shared: MutexAuth::new(Echo).shared,
        };
        mutex.oneshot(request()).await.unwrap();
    });
}

/// Runs `iters` requests on each of `threads` threads, each with its own clone of `svc`,
/// started together. Returns the longest thread's time.
fn run_threads(svc: &Variant2, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                // Untimed: fills this thread's slot (a new thread starts with none).
                svc.run(16);
                barrier.wait();
                let start = Instant::now();
                svc.run(iters);
                start.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .max()
        .unwrap()
}

fn bench(c: &mut Criterion, variants: &mut [Variant]) {
    let mut group = c.benchmark_group("one_thread");
    for v in variants.iter_mut() {
        group.bench_function(v.name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                v.svc.run(iters);
                start.elapsed()
            })
        });
    }
    group.finish();

    // Reported per request per thread: each thread sends `iters` requests.
    let mut group = c.benchmark_group("two_threads");
    for v in variants.iter() {
        group.bench_with_input(BenchmarkId::from_parameter(v.name), &v.svc, |b, svc| {
            b.iter_custom(|iters| run_threads(svc, 2, iters))
        });
    }
    group.finish();
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The timing pass behind the printed ratios: `ROUNDS` rounds, variants interleaved within
/// each round so that load from elsewhere hits them alike; the median of each.
fn summary(variants: &mut [Variant]) {
    const ROUNDS: usize = 9;
    const ONE: u64 = 2_000_000;
    const TWO: u64 = 1_000_000;
    let mut one = vec![Vec::new(); variants.len()];
    let mut two = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, v) in variants.iter_mut().enumerate() {
            let start = Instant::now();
            v.svc.run(ONE);
            one[i].push(start.elapsed().as_nanos() as f64 / ONE as f64);
            let t = run_threads(&v.svc, 2, TWO);
            two[i].push(t.as_nanos() as f64 / TWO as f64);
        }
    }
    let one: Vec<f64> = one.into_iter().map(median).collect();
    let two: Vec<f64> = two.into_iter().map(median).collect();
    println!();
    println!(
        "response future sizes: BearerAuth {} bytes, AddAuthorization {} bytes",
        std::mem::size_of::<tower_bearer_auth::future::ResponseFuture<Echo, ()>>(),
        std::mem::size_of::<<Echo as Service<Request<()>>>::Future>(),
    );
    println!("median ns per request ({ROUNDS} rounds; two threads: per request per thread)");
    let idx = |name| variants.iter().position(|v| v.name == name).unwrap();
    let (a, b, c, c2, d) = (
        idx("bare"),
        idx("add_authorization"),
        idx("bearer_auth"),
        idx("bearer_auth_replay"),
        idx("mutex_baseline"),
    );
    println!(
        "{:<22} {:>10} {:>12} {:>16} {:>16}",
        "variant", "1 thread", "2 threads", "1 thr - bare", "2 thr - bare"
    );
    for (i, v) in variants.iter().enumerate() {
        println!(
            "{:<22} {:>10.1} {:>12.1} {:>16.1} {:>16.1}",
            v.name,
            one[i],
            two[i],
            one[i] - one[a],
            two[i] - two[a]
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    for (c, label) in [(c, "replay off (default)"), (c2, "replay on")] {
        let r1 = one[c] / one[b];
        let r2 = two[c] / two[b];
        let r3 = two[d] / two[c];
        println!();
        println!("(c) = {}, {label}", variants[c].name);
        println!(
            "  (c)/(b) one thread:  {r1:.2} (target <= 1.05: {})",
            verdict(r1 <= 1.05)
        );
        println!(
            "  (c)/(b) two threads: {r2:.2} (target <= 0.60: {})",
            verdict(r2 <= 0.6)
        );
        println!(
            "  (d)/(c) two threads: {r3:.2} (target >= 3: {})",
            verdict(r3 >= 3.0)
        );
        println!(
            "  cost above bare, (c-a)/(b-a): {:.2} one thread, {:.2} two threads; \
             (d-a)/(c-a) two threads: {:.2}",
            (one[c] - one[a]) / (one[b] - one[a]),
            (two[c] - two[a]) / (two[b] - two[a]),
            (two[d] - two[a]) / (two[c] - two[a]),
        );
    }
}

fn main() {
    let mut variants = variants();
    // `OVERHEAD_PROFILE=<variant>[:<requests>]`: send that many requests through one variant
    // on this thread and exit, for a profiler (perf, callgrind) to attribute the cost.
    if let Ok(spec) = std::env::var("OVERHEAD_PROFILE") {
        let (name, n) = spec.split_once(':').unwrap_or((&spec, "1000000"));
        let n: u64 = n.parse().expect("a number of requests");
        let v = variants
            .iter_mut()
            .find(|v| v.name == name)
            .expect("a variant name");
        v.svc.run(n);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &mut variants);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: skip the long pass.
    if std::env::args().any(|a| a == "--bench") && std::env::var_os("NO_SUMMARY").is_none() {
        summary(&mut variants);
    }
}
