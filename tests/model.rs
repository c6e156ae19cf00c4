//! The model-checking suite: the token core's promises checked over many interleavings of
//! real requests, logins, revokes and store calls, chosen by `shuttle`'s randomised and PCT
//! schedulers.
//!
//! Runs only in the model-checking build, which routes the core's runtime calls to the model
//! checker (`src/rt.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg shuttle" cargo test --release --test model
//! ```
//!
//! `MODEL_ITERATIONS` sets the schedules per test (default 500). A failure prints the schedule;
//! `shuttle::replay(test, "<schedule>")` runs it again.
//!
//! The invariants:
//!
//! - at most one live login per cache, and per store for caches sharing one;
//! - once `revoke()` or `invalidate_generation(g)` has forgotten a token, no request is sent
//!   with it, including requests already waiting, and no flight installs, saves or adopts it;
//! - every request ends with a response or an error (a lost wake-up is a deadlock, which the
//!   checker reports: timeouts never fire in this build);
//! - a tenant's token is only ever sent to its own origin, however the request spells it,
//!   while keys are created, looked up and evicted;
//! - once every handle is dropped and the schedule has run, nothing of the cache remains: no
//!   flight, no provider, no copy of the header.
#![cfg(shuttle)]

use std::{
    collections::HashSet,
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, header::AUTHORIZATION};
use shuttle::future::{block_on, spawn, yield_now};
use tower::{Layer, ServiceExt, service_fn};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin, TokenCache, TokenResponse,
    provider::{BoxFuture, TokenProvider},
    store::{MemoryStore, StoreLock, StoredToken, TokenStore},
    tenants::{Scope, TenantKey, TenantsLayer},
};

/// Schedules per test and scheduler.
fn iterations() -> usize {
    std::env::var("MODEL_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500)
}

/// Runs `test` under the random and the PCT scheduler, each task with a stack of 1 MiB (the
/// checker's default, 32 KiB, is too small for a request through hyper's types).
fn check(test: impl Fn() + Send + Sync + 'static) {
    use shuttle::scheduler::{PctScheduler, RandomScheduler};

    let config = || {
        let mut config = shuttle::Config::new();
        config.stack_size = 1 << 20;
        config
    };
    let test = Arc::new(test);
    let random = test.clone();
    shuttle::Runner::new(RandomScheduler::new(iterations()), config()).run(move || random());
    shuttle::Runner::new(PctScheduler::new(3, iterations()), config()).run(move || test());
}

/// What the checks share: the tokens one cache forgot so far, and the provider calls under
/// way (across the caches of one store).
#[derive(Clone, Default)]
struct World {
    /// Tokens that the cache's `revoke` or `invalidate_generation` forgot: never to be sent
    /// through that cache from then on. (A cache sharing its store learns of a revoke from
    /// the server's `401`, not before.)
    forgotten: Arc<Mutex<HashSet<String>>>,
    /// Provider calls under way, for all the providers of one store (or of one cache).
    live: Arc<AtomicUsize>,
    /// Tokens handed out, across providers.
    issued: Arc<AtomicUsize>,
    /// Set once a holder of the store's lock has stalled past its lease: from then on its
    /// call may still be under way when the next holder's starts.
    stalled: Arc<std::sync::atomic::AtomicBool>,
}

impl World {
    fn forget(&self, token: Option<String>) {
        if let Some(token) = token {
            self.forgotten.lock().unwrap().insert(token);
        }
    }

    fn check_sent(&self, token: &str) {
        assert!(
            !self.forgotten.lock().unwrap().contains(token),
            "a request was sent with the forgotten token {token}"
        );
    }
}

/// A provider whose calls take a few steps, so that others run meanwhile, and that asserts
/// there is never more than one call under way in its world.
#[derive(Clone)]
struct Stepping {
    world: World,
    name: &'static str,
    /// Held by every clone: tells whether anything still holds the provider.
    alive: Arc<()>,
}

impl Stepping {
    fn new(world: &World, name: &'static str) -> Self {
        Self {
            world: world.clone(),
            name,
            alive: Arc::new(()),
        }
    }
}

impl Stepping {
    async fn issue(&self, kind: &str) -> Result<TokenResponse, BoxError> {
        let live = self.world.live.fetch_add(1, Ordering::SeqCst) + 1;
        // Counted down when the call ends or is dropped.
        let _guard = Decrement(self.world.live.clone());
        assert!(
            live == 1 || self.world.stalled.load(Ordering::SeqCst),
            "two logins or refreshes at once, and no lease ran out"
        );
        yield_now().await;
        yield_now().await;
        let n = self.world.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(TokenResponse::new(format!("{}-{kind}-{n}", self.name))
            .with_refresh_token(format!("rt-{n}"))
            .with_expires_in(Duration::from_secs(3600)))
    }
}

struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TokenProvider for Stepping {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(self.issue("login"))
    }

    fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(self.issue("refresh"))
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        _: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        // The token the cache forgot: the one it revokes at the server. (The one the revoking
        // task read just before may already have been replaced.)
        self.world.forget(Some(access_token.to_owned()));
        Box::pin(async { Ok(()) })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn origin(&self) -> Option<tower_bearer_auth::Origin> {
        None
    }
}

/// A store over [`MemoryStore`] whose calls take a step each, and whose saves of revoked
/// records may fail (the revoked token then stays in it).
#[derive(Clone)]
struct SlowStore {
    inner: MemoryStore,
    fail_revokes: bool,
}

impl TokenStore for SlowStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(async move {
            yield_now().await;
            self.inner.load().await
        })
    }

    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            yield_now().await;
            if self.fail_revokes && token.is_revoked() {
                return Err("store down".into());
            }
            self.inner.save(token).await
        })
    }

    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(async move {
            yield_now().await;
            self.inner.lock().await
        })
    }

    fn try_lock(&self) -> BoxFuture<'_, Result<Option<StoreLock>, BoxError>> {
        Box::pin(async move {
            yield_now().await;
            self.inner.try_lock().await
        })
    }
}

/// A client of `cache` whose server checks every token it is sent against `world`.
async fn send(layer: &BearerAuthLayer, world: &World) -> Result<(), BoxError> {
    let world = world.clone();
    let server = service_fn(move |request: Request<()>| {
        let header = request.headers()[AUTHORIZATION]
            .to_str()
            .unwrap()
            .to_owned();
        world.check_sent(header.trim_start_matches("Bearer "));
        async { Ok::<_, Infallible>(Response::new(())) }
    });
    layer.layer(server).oneshot(Request::new(())).await?;
    Ok(())
}

/// Revokes `cache`'s token. The provider's `revoke`, which the cache calls once it has forgotten
/// the token, records it as forgotten.
async fn revoke(cache: &TokenCache) {
    let _ = cache.revoke().await;
}

/// Requests, a revoke and a `401`'s invalidation on one cache without a store.
#[test]
fn revoke_and_invalidate_are_final_for_every_request() {
    check(|| {
        block_on(async {
            let world = World::default();
            let provider = Stepping::new(&world, "a");
            let layer = BearerAuthLayer::new(provider.clone()).any_origin();
            let cache = layer.cache();
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let (layer, world) = (layer.clone(), world.clone());
                tasks.push(spawn(async move { send(&layer, &world).await.unwrap() }));
            }
            tasks.push(spawn({
                let cache = cache.clone();
                async move { revoke(&cache).await }
            }));
            tasks.push(spawn({
                let (cache, world) = (cache.clone(), world.clone());
                async move {
                    if let Some(token) = cache.token() {
                        // Forgotten once this returns: invalidated, or already replaced.
                        cache.invalidate_generation(token.generation());
                        world.forget(Some(token.access_token().to_owned()));
                    }
                }
            }));
            for task in tasks {
                task.await.unwrap();
            }
            send(&layer, &world).await.unwrap();
            nothing_remains(layer, cache, provider).await;
        })
    });
}

/// Two caches sharing a slow store: requests on both, and a revoke on one.
#[test]
fn caches_sharing_a_store_share_one_flight_and_revoke_finally() {
    check(|| store_world(false));
}

/// The same with a store that cannot record the revoke: the revoked token stays in it, and is
/// never adopted back by the cache that revoked it.
#[test]
fn a_store_that_fails_never_brings_a_revoked_token_back() {
    check(|| store_world(true));
}

fn store_world(fail_revokes: bool) {
    block_on(async move {
        let world = World::default();
        // B forgets nothing: its own set, the same count of provider calls.
        let world_b = World {
            forgotten: Arc::default(),
            ..world.clone()
        };
        let store = SlowStore {
            inner: MemoryStore::new(),
            fail_revokes,
        };
        let (a, b) = (Stepping::new(&world, "a"), Stepping::new(&world_b, "b"));
        let layer_a =
            BearerAuthLayer::new(TokenCache::builder(a.clone()).store(store.clone()).build())
                .any_origin();
        let layer_b =
            BearerAuthLayer::new(TokenCache::builder(b.clone()).store(store.clone()).build())
                .any_origin();
        let mut tasks = Vec::new();
        for (layer, world) in [(&layer_a, &world), (&layer_a, &world), (&layer_b, &world_b)] {
            let (layer, world) = (layer.clone(), world.clone());
            tasks.push(spawn(async move { send(&layer, &world).await.unwrap() }));
        }
        tasks.push(spawn({
            let cache = layer_a.cache();
            async move { revoke(&cache).await }
        }));
        for task in tasks {
            task.await.unwrap();
        }
        send(&layer_a, &world).await.unwrap();
        let cache_a = layer_a.cache();
        nothing_remains(layer_a, cache_a, a).await;
        let cache_b = layer_b.cache();
        nothing_remains(layer_b, cache_b, b).await;
    })
}

/// Drops every handle, lets the schedule run, and checks that nothing holds the provider any
/// more: not the cache, not a flight (a task), not a request.
async fn nothing_remains(layer: BearerAuthLayer, cache: TokenCache, provider: Stepping) {
    let alive = Arc::downgrade(&provider.alive);
    drop((layer, cache, provider));
    for _ in 0..1_000 {
        if alive.strong_count() == 0 {
            return;
        }
        yield_now().await;
    }
    panic!("the provider outlived every handle to its cache");
}

/// Requests to two tenants under several spellings of their origins, one of them with a
/// scope too, while one key is evicted and created again: each token goes only to its own
/// key's origin and scope, each key's provider runs one login at a time, and nothing remains
/// once the layer is dropped.
#[test]
fn tenants_send_each_token_to_its_own_origin_while_keys_come_and_go() {
    check(|| {
        block_on(async {
            let providers: Arc<Mutex<Vec<std::sync::Weak<()>>>> = Arc::default();
            let made = providers.clone();
            let layer = TenantsLayer::new(move |key: &TenantKey| {
                let provider = Stepping::new(&World::default(), "tenant");
                made.lock().unwrap().push(Arc::downgrade(&provider.alive));
                let scope = key.scope().map_or("", Scope::as_str);
                let origin = format!("{}#{scope}", key.origin());
                async move { Ok::<_, BoxError>(Named { origin, provider }) }
            });
            let caches = layer.caches();
            let server = service_fn(|request: Request<()>| {
                let header = request.headers()[AUTHORIZATION]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let scope = request
                    .extensions()
                    .get::<Scope>()
                    .map_or("", Scope::as_str);
                let origin = Origin::try_from(request.uri()).unwrap();
                let sent_to = format!("{origin}#{scope}");
                assert!(
                    header.starts_with(&format!("Bearer {sent_to}|")),
                    "{header} was sent to {sent_to}"
                );
                async { Ok::<_, Infallible>(Response::new(())) }
            });
            let spellings = [
                ("http://a.example/", None),
                ("http://A.EXAMPLE:80/", None),
                ("http://a.example:000080/", Some("w")),
                ("http://b.example/", None),
                ("http://a.example:8080/", None),
                ("http://a.example/", Some("w")),
            ];
            let mut tasks = Vec::new();
            for (uri, scope) in spellings {
                let service = tower::Layer::layer(&layer, server.clone());
                tasks.push(spawn(async move {
                    let mut request = Request::get(uri).body(()).unwrap();
                    if let Some(scope) = scope {
                        request.extensions_mut().insert(Scope::new(scope));
                    }
                    service.oneshot(request).await.unwrap();
                }));
            }
            tasks.push(spawn({
                let caches = caches.clone();
                async move {
                    let a = Origin::try_from("http://a.example").unwrap();
                    caches.evict(&TenantKey::new(a, None));
                }
            }));
            for task in tasks {
                task.await.unwrap();
            }
            drop((layer, caches, server));
            for _ in 0..1_000 {
                if providers
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|p| p.strong_count() == 0)
                {
                    return;
                }
                yield_now().await;
            }
            panic!("a tenant's provider outlived the layer");
        })
    });
}

/// A provider whose tokens name the origin of the key it was made for.
struct Named {
    origin: String,
    provider: Stepping,
}

impl TokenProvider for Named {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            let token = self.provider.issue("login").await?;
            Ok(
                TokenResponse::new(format!("{}|{}", self.origin, token.access_token()))
                    .with_expires_in(Duration::from_secs(3600)),
            )
        })
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

/// Two caches on a store whose lock is a lease: requests and explicit refreshes on both, while
/// the holder of the lock, at any point, stalls past its lease (the lease is ended under it).
/// Every request ends; no two provider calls overlap unless a lease ran out; a holder that
/// lost its lease never releases the next holder's lock; and once every flight has ended, the
/// lock is free.
#[test]
fn a_stalled_lease_holder_costs_one_lease_and_releases_nothing_of_others() {
    check(|| {
        block_on(async {
            let world = World::default();
            let store = SlowStore {
                inner: MemoryStore::new(),
                fail_revokes: false,
            };
            let (a, b) = (Stepping::new(&world, "a"), Stepping::new(&world, "b"));
            let layer_a =
                BearerAuthLayer::new(TokenCache::builder(a.clone()).store(store.clone()).build())
                    .any_origin();
            let layer_b =
                BearerAuthLayer::new(TokenCache::builder(b.clone()).store(store.clone()).build())
                    .any_origin();
            let mut tasks = Vec::new();
            for layer in [&layer_a, &layer_b, &layer_a, &layer_b] {
                let (layer, world) = (layer.clone(), world.clone());
                tasks.push(spawn(async move { send(&layer, &world).await.unwrap() }));
            }
            for layer in [&layer_a, &layer_b] {
                let cache = layer.cache();
                tasks.push(spawn(async move {
                    let _ = cache.refresh().await;
                }));
            }
            tasks.push(spawn({
                let (store, world) = (store.clone(), world.clone());
                async move {
                    if store.inner.is_locked() {
                        world.stalled.store(true, Ordering::SeqCst);
                        store.inner.expire_lock();
                    }
                }
            }));
            for task in tasks {
                task.await.unwrap();
            }
            for _ in 0..1_000 {
                if !store.inner.is_locked() {
                    break;
                }
                yield_now().await;
            }
            assert!(!store.inner.is_locked(), "the lock outlived every flight");
            let cache_a = layer_a.cache();
            nothing_remains(layer_a, cache_a, a).await;
            let cache_b = layer_b.cache();
            nothing_remains(layer_b, cache_b, b).await;
        })
    });
}
