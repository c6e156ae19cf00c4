//! Counts heap allocations per request: with a warm cache, `BearerAuth` allocates nothing that
//! the bare service does not; with replay after a `401` turned on, exactly the copy of the
//! request head it keeps, and the one box that holds it.
//!
//! A test binary of its own, because it installs a counting global allocator. The counter is
//! per thread, so tests running in parallel do not disturb each other.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    convert::Infallible,
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, TokenResponse,
    provider::{StaticToken, provider_fn},
};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the only
// addition is a thread-local counter that allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

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

/// A request with one header already, so its header map is allocated before any layer
/// inserts into it (inserting the first header allocates the map, whoever does it).
fn request() -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    req
}

/// Sends `n` requests, each polled once with a no-op waker; all must complete at once.
fn send<S>(svc: &mut S, n: usize)
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..n {
        assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
        let fut = pin!(svc.call(request()));
        match fut.poll(&mut cx) {
            Poll::Ready(Ok(res)) => drop(black_box(res)),
            other => panic!("not completed on the first poll: {other:?}"),
        }
    }
}

const N: usize = 1000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Fills the cache and this thread's copy of the header.
fn warm_up<S>(rt: &tokio::runtime::Runtime, svc: &mut S)
where
    S: Service<Request<()>, Response = Response<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    rt.block_on(svc.clone().oneshot(request())).unwrap();
    send(svc, 10);
}

fn hour_token() -> BearerAuthLayer {
    BearerAuthLayer::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new("abc").with_expires_in(Duration::from_secs(3600)))
    }))
    .any_origin()
}

#[test]
fn cached_path_adds_no_allocation() {
    let rt = runtime();
    let mut bare = Echo;
    send(&mut bare, 10);
    let baseline = allocations(|| send(&mut bare, N));
    assert!(baseline >= N as u64, "the request's header map allocates");

    for (name, layer) in [
        ("expiring token", hour_token()),
        (
            "static token",
            BearerAuthLayer::new(StaticToken::new("abc")).any_origin(),
        ),
        ("overwrite_existing", hour_token().overwrite_existing(true)),
    ] {
        // Replay after a `401` off: the zero-allocation path (replay, the default, is
        // measured below).
        let mut svc = layer.replay_unauthorized(false).layer(Echo);
        warm_up(&rt, &mut svc);
        let layered = allocations(|| send(&mut svc, N));
        assert_eq!(
            layered, baseline,
            "{name}: {layered} allocations for {N} requests, the bare service makes {baseline}"
        );
    }
}

/// With replay on (the default), a request costs the copy of its head kept for a replay and
/// the box that holds it (with a clone of the service), and nothing more: the copy keeps the
/// headers in one list (one allocation for a request with headers, where a copied header map
/// takes two), and the box is not the future, so that the future stays small for requests
/// that keep no copy.
#[test]
fn replay_costs_only_the_head_copy_and_its_box() {
    let rt = runtime();
    let mut bare = Echo;
    send(&mut bare, 10);
    let baseline = allocations(|| send(&mut bare, N));
    // The request carries a header, so its copy has a list to allocate.
    assert!(!request().headers().is_empty());
    let head_copy = N as u64;

    let mut svc = hour_token().layer(Echo);
    warm_up(&rt, &mut svc);
    let layered = allocations(|| send(&mut svc, N));
    assert_eq!(
        layered,
        baseline + head_copy + N as u64,
        "{layered} allocations for {N} requests; bare {baseline}, head copies {head_copy}"
    );
}

#[test]
fn request_with_its_own_authorization_adds_no_allocation() {
    let rt = runtime();
    let mut svc = hour_token().layer(Echo);
    warm_up(&rt, &mut svc);
    let with_header = |svc: &mut dyn FnMut(Request<()>)| {
        for _ in 0..N {
            let mut req = request();
            req.headers_mut().insert(
                header::AUTHORIZATION,
                HeaderValue::from_static("Basic eA=="),
            );
            svc(req);
        }
    };
    let mut cx = Context::from_waker(Waker::noop());
    let baseline = allocations(|| {
        with_header(&mut |req| {
            let _ = pin!(Echo.call(req)).poll(&mut cx);
        })
    });
    let layered = allocations(|| {
        with_header(&mut |req| {
            let _ = pin!(svc.call(req)).poll(&mut cx);
        })
    });
    assert_eq!(layered, baseline);
}

/// The counter sees what a hot path that builds its header per request would cost, so the
/// tests above can fail.
#[test]
fn counter_catches_per_request_formatting() {
    #[derive(Clone)]
    struct FormatEachTime<S>(S);

    impl<S: Service<Request<()>>> Service<Request<()>> for FormatEachTime<S> {
        type Response = S::Response;
        type Error = S::Error;
        type Future = S::Future;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.0.poll_ready(cx)
        }

        fn call(&mut self, mut req: Request<()>) -> S::Future {
            let value = HeaderValue::try_from(format!("Bearer {}", "abc")).unwrap();
            req.headers_mut().insert(header::AUTHORIZATION, value);
            self.0.call(req)
        }
    }

    let mut bare = Echo;
    let baseline = allocations(|| send(&mut bare, N));
    let mut naive = FormatEachTime(Echo);
    let layered = allocations(|| send(&mut naive, N));
    assert!(
        layered >= baseline + N as u64,
        "{layered} vs {baseline}: one String per request at least"
    );
}

/// The first request (login, slot filled) does allocate: the counter counts this crate too.
#[test]
fn slow_path_allocates() {
    let rt = runtime();
    let logins = Arc::new(AtomicUsize::new(0));
    let counted = logins.clone();
    let layer = BearerAuthLayer::new(provider_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, BoxError>(TokenResponse::new("abc").with_expires_in(Duration::from_secs(3600)))
        }
    }))
    .any_origin();
    let mut svc = layer.replay_unauthorized(false).layer(Echo);
    let first = allocations(|| {
        rt.block_on(svc.clone().oneshot(request())).unwrap();
    });
    assert!(first > 1, "login, token and flight allocate: {first}");
    // The next request fills this thread's slot: one copy of the header.
    let second = allocations(|| send(&mut svc, 1));
    let mut bare = Echo;
    let one_bare = allocations(|| send(&mut bare, 1));
    assert!(second > one_bare, "{second} vs {one_bare}");
    assert_eq!(logins.load(Ordering::SeqCst), 1);
}
