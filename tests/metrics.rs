//! The `metrics` feature, over loopback sockets against the embedded PortSIP-compatible
//! server: a recorder kept by the test sees each metric move after a login, a refresh, a
//! failure and a `401`, and the labels carry the tenant's origin and no secret.
//!
//! Each test runs on a current-thread runtime inside `metrics::with_local_recorder`: the
//! server, the client and the cache's flights all run on the test's thread, so each test sees
//! its own metrics only, whatever the other tests do meanwhile.
#![cfg(all(
    feature = "metrics",
    feature = "test-server",
    feature = "client",
    feature = "reqwest-middleware"
))]

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, Origin, TokenErrorKind,
    client::HttpClient,
    metrics::{
        FAILURES, INVALIDATIONS, LOGINS, REFRESHES, REPLAYS, STORE_ADOPTIONS,
        TOKEN_ENDPOINT_DURATION, TOKEN_LIFETIME,
    },
    provider::portsip::PortSip,
    reqwest::BearerAuthMiddleware,
    store::MemoryStore,
    tenants::{TenantId, TenantKey, TenantsLayer},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-password";
const API: &str = "/api/account/extensions";
const LIFETIME: Duration = Duration::from_secs(60);

/// A metric's name and labels, the labels sorted.
type Series = (String, Vec<(String, String)>);

/// A recorder that keeps every counter, gauge and histogram it is given.
#[derive(Default)]
struct Kept {
    counters: Mutex<BTreeMap<Series, Arc<Value>>>,
    gauges: Mutex<BTreeMap<Series, Arc<Value>>>,
    histograms: Mutex<BTreeMap<Series, Arc<Samples>>>,
    described: Mutex<Vec<(String, Option<Unit>)>>,
}

/// A counter's count, or a gauge's `f64` bits.
#[derive(Default)]
struct Value(AtomicU64);

impl CounterFn for Value {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl GaugeFn for Value {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::SeqCst)) + value);
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn series(key: &Key) -> Series {
    let mut labels: Vec<_> = key
        .labels()
        .map(|l| (l.key().to_owned(), l.value().to_owned()))
        .collect();
    labels.sort();
    (key.name().to_owned(), labels)
}

impl Recorder for Kept {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push((key.as_str().to_owned(), unit));
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push((key.as_str().to_owned(), unit));
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .push((key.as_str().to_owned(), unit));
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(series(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(gauges.entry(series(key)).or_default().clone())
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(histograms.entry(series(key)).or_default().clone())
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<_> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    labels
}

impl Kept {
    /// A counter's count; 0 if it was never recorded.
    fn counter(&self, name: &str, pairs: &[(&str, &str)]) -> u64 {
        let key = (name.to_owned(), labels(pairs));
        let counters = self.counters.lock().unwrap();
        counters.get(&key).map_or(0, |v| v.0.load(Ordering::SeqCst))
    }

    /// A gauge's value, if it was ever set.
    fn gauge(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let key = (name.to_owned(), labels(pairs));
        let gauges = self.gauges.lock().unwrap();
        gauges
            .get(&key)
            .map(|v| f64::from_bits(v.0.load(Ordering::SeqCst)))
    }

    /// A histogram's samples.
    fn samples(&self, name: &str, pairs: &[(&str, &str)]) -> Vec<f64> {
        let key = (name.to_owned(), labels(pairs));
        let histograms = self.histograms.lock().unwrap();
        histograms
            .get(&key)
            .map_or_else(Vec::new, |s| s.0.lock().unwrap().clone())
    }

    /// Every series recorded, whatever its kind.
    fn all_series(&self) -> Vec<Series> {
        let mut all: Vec<Series> = self.counters.lock().unwrap().keys().cloned().collect();
        all.extend(self.gauges.lock().unwrap().keys().cloned());
        all.extend(self.histograms.lock().unwrap().keys().cloned());
        all
    }
}

/// Runs `test` on a current-thread runtime with `recorder` as this thread's recorder.
fn run<F: Future<Output = ()>>(recorder: &Kept, test: impl FnOnce() -> F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(recorder, || runtime.block_on(test()));
}

async fn server() -> TestServer {
    TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(LIFETIME))
        .await
        .unwrap()
}

fn get(server: &TestServer) -> Request<Full<Bytes>> {
    Request::get(server.url(API)).body(Full::default()).unwrap()
}

/// A latency sample: a call on loopback takes some time, and not ten seconds.
fn plausible(seconds: &[f64]) -> bool {
    seconds.iter().all(|s| *s > 0.0 && *s < 10.0)
}

#[test]
fn a_login_a_refresh_a_failure_and_a_401_each_move_their_metric() {
    let kept = Kept::default();
    run(&kept, || async {
        let server = server().await;
        let provider = PortSip::new(server.base_url(), USER, PASSWORD)
            .build()
            .unwrap();
        let layer = BearerAuthLayer::new(
            TokenCache::builder(provider)
                .refused_backoff(Duration::from_millis(1), Duration::from_millis(1))
                .backoff(Duration::from_millis(1), Duration::from_millis(1))
                .build(),
        )
        .allow_origin(Origin::try_from(server.base_url().as_str()).unwrap());
        let cache = layer.cache();
        let client = layer.layer(HttpClient::new());
        let login_ok = [("call", "login"), ("outcome", "ok")];
        let refresh_ok = [("call", "refresh"), ("outcome", "ok")];
        let refresh_error = [("call", "refresh"), ("outcome", "error")];
        let login_error = [("call", "login"), ("outcome", "error")];

        // A login: the first request.
        let status = client.clone().oneshot(get(&server)).await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kept.counter(LOGINS, &[]), 1);
        assert_eq!(kept.counter(REFRESHES, &[]), 0);
        let logins = kept.samples(TOKEN_ENDPOINT_DURATION, &login_ok);
        assert_eq!(logins.len(), 1);
        assert!(plausible(&logins), "{logins:?}");
        let lifetime = kept.gauge(TOKEN_LIFETIME, &[]).expect("set with the token");
        assert!(
            lifetime > LIFETIME.as_secs_f64() - 5.0 && lifetime <= LIFETIME.as_secs_f64(),
            "{lifetime}"
        );

        // A refresh.
        cache.refresh().await.unwrap();
        assert_eq!(kept.counter(REFRESHES, &[]), 1);
        let refreshes = kept.samples(TOKEN_ENDPOINT_DURATION, &refresh_ok);
        assert_eq!(refreshes.len(), 1);
        assert!(plausible(&refreshes), "{refreshes:?}");
        assert_eq!(kept.counter(LOGINS, &[]), 1);

        // A `401`: the server forgot every token. The token is invalidated, the refresh is
        // refused, a login follows, and the request is sent again.
        server.revoke_all();
        let status = client.clone().oneshot(get(&server)).await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kept.counter(INVALIDATIONS, &[]), 1);
        assert_eq!(kept.counter(REPLAYS, &[("client", "tower")]), 1);
        assert_eq!(kept.counter(FAILURES, &[("kind", "refresh")]), 1);
        assert_eq!(
            kept.samples(TOKEN_ENDPOINT_DURATION, &refresh_error).len(),
            1
        );
        assert_eq!(kept.counter(LOGINS, &[]), 2);
        assert_eq!(kept.samples(TOKEN_ENDPOINT_DURATION, &login_ok).len(), 2);
        assert_eq!(kept.counter(FAILURES, &[("kind", "login")]), 0);

        // A failure: a new password, every token forgotten, and the token invalidated. The
        // refresh is refused, then the login.
        server.set_password("changed");
        server.revoke_all();
        cache.invalidate();
        assert_eq!(
            kept.gauge(TOKEN_LIFETIME, &[]),
            Some(0.0),
            "no token to send"
        );
        let error = cache.get().await.unwrap_err();
        assert_eq!(error.kind(), TokenErrorKind::Login);
        assert_eq!(kept.counter(FAILURES, &[("kind", "refresh")]), 2);
        assert_eq!(kept.counter(FAILURES, &[("kind", "login")]), 1);
        assert_eq!(kept.samples(TOKEN_ENDPOINT_DURATION, &login_error).len(), 1);
        assert_eq!(
            kept.counter(LOGINS, &[]),
            2,
            "no token from a refused login"
        );
        assert_eq!(kept.gauge(TOKEN_LIFETIME, &[]), Some(0.0));
        // `invalidate` is no `401`.
        assert_eq!(kept.counter(INVALIDATIONS, &[]), 1);
        assert_eq!(kept.counter(STORE_ADOPTIONS, &[]), 0);
    });
}

#[test]
fn the_reqwest_middleware_counts_its_replays() {
    let kept = Kept::default();
    run(&kept, || async {
        let server = server().await;
        let provider = PortSip::new(server.base_url(), USER, PASSWORD)
            .build()
            .unwrap();
        let cache = BearerAuthLayer::new(provider).cache();
        let middleware = BearerAuthMiddleware::new(cache)
            .allow_origin(Origin::try_from(server.base_url().as_str()).unwrap());
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(middleware)
            .build();
        let status = client.get(server.url(API)).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
        server.revoke_all();
        let status = client.get(server.url(API)).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(kept.counter(INVALIDATIONS, &[]), 1);
        assert_eq!(kept.counter(REPLAYS, &[("client", "reqwest")]), 1);
        assert_eq!(kept.counter(REPLAYS, &[("client", "tower")]), 0);
        assert_eq!(kept.counter(LOGINS, &[]), 2);
    });
}

#[test]
fn a_token_taken_from_the_store_counts_as_an_adoption() {
    let kept = Kept::default();
    run(&kept, || async {
        let server = server().await;
        let store = MemoryStore::new();
        let cache = |store: &MemoryStore| {
            let provider = PortSip::new(server.base_url(), USER, PASSWORD)
                .build()
                .unwrap();
            BearerAuthLayer::new(TokenCache::builder(provider).store(store.clone()).build())
                .allow_origin(Origin::try_from(server.base_url().as_str()).unwrap())
                .cache()
        };
        let (a, b) = (cache(&store), cache(&store));
        a.get().await.unwrap();
        b.get().await.unwrap();
        assert_eq!(kept.counter(LOGINS, &[]), 1);
        assert_eq!(kept.counter(STORE_ADOPTIONS, &[]), 1);
        assert_eq!(
            server.counts().password_grants,
            1,
            "one login for the two caches"
        );
    });
}

/// A tenants layer for `server`'s origin whose keys log in with the test password, noting
/// every token they get in `secrets`.
fn tenants(secrets: &Arc<Mutex<Vec<String>>>) -> TenantsLayer {
    let secrets = secrets.clone();
    TenantsLayer::new(|key: &TenantKey| {
        let base = key.origin().to_string();
        async move { PortSip::new(base, USER, PASSWORD).build() }
    })
    .configure(move |_, cache| {
        let secrets = secrets.clone();
        let cache = cache.on_token_change(move |change| {
            if let Some(token) = change.token().and_then(|t| t.token()) {
                let mut secrets = secrets.lock().unwrap();
                secrets.push(token.access_token().to_owned());
                secrets.extend(token.refresh_token().map(str::to_owned));
            }
        });
        BearerAuthLayer::new(cache.build())
    })
}

/// A login and a `401` for `tenant`'s key.
async fn login_and_401(layer: TenantsLayer, server: &TestServer, tenant: &str) {
    let client = layer.layer(HttpClient::new());
    let request = || {
        let mut request = get(server);
        request.extensions_mut().insert(TenantId::new(tenant));
        request
    };
    let status = client.clone().oneshot(request()).await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
    server.revoke_all();
    let status = client.clone().oneshot(request()).await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
}

fn assert_no_secret(kept: &Kept, secrets: &[String]) {
    assert!(
        secrets.len() >= 4,
        "two tokens and their refresh tokens: {secrets:?}"
    );
    let mut secrets = secrets.to_vec();
    secrets.push(PASSWORD.to_owned());
    for (name, labels) in kept.all_series() {
        for text in std::iter::once(&name).chain(labels.iter().flat_map(|(k, v)| [k, v])) {
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{name} {labels:?}");
            }
        }
    }
}

#[test]
fn a_tenants_metrics_carry_its_origin_and_no_secret() {
    let kept = Kept::default();
    let secrets = Arc::new(Mutex::new(Vec::new()));
    run(&kept, || async {
        let server = server().await;
        let origin = server.base_url();
        login_and_401(tenants(&secrets), &server, "acme").await;

        let own = [("origin", origin.as_str())];
        assert_eq!(kept.counter(LOGINS, &own), 2);
        assert_eq!(kept.counter(INVALIDATIONS, &own), 1);
        assert_eq!(kept.counter(REPLAYS, &[own[0], ("client", "tower")]), 1);
        assert_eq!(kept.counter(FAILURES, &[own[0], ("kind", "refresh")]), 1);
        let login_ok = [own[0], ("call", "login"), ("outcome", "ok")];
        assert_eq!(kept.samples(TOKEN_ENDPOINT_DURATION, &login_ok).len(), 2);
        assert!(kept.gauge(TOKEN_LIFETIME, &own).is_some());
        // Every series carries the origin, and the tenant id only when asked.
        for (name, labels) in kept.all_series() {
            assert!(
                labels.contains(&("origin".into(), origin.clone())),
                "{name} {labels:?}"
            );
            assert!(
                !labels.iter().any(|(k, _)| k == "tenant"),
                "{name} {labels:?}"
            );
        }
    });
    assert_no_secret(&kept, &secrets.lock().unwrap());
}

#[test]
fn the_tenant_id_is_a_label_when_asked() {
    let kept = Kept::default();
    let secrets = Arc::new(Mutex::new(Vec::new()));
    run(&kept, || async {
        let server = server().await;
        let origin = server.base_url();
        let layer = tenants(&secrets).metrics_tenant_label(true);
        login_and_401(layer, &server, "acme").await;

        let own = [("origin", origin.as_str()), ("tenant", "acme")];
        assert_eq!(kept.counter(LOGINS, &own), 2);
        assert_eq!(kept.counter(INVALIDATIONS, &own), 1);
        for (name, labels) in kept.all_series() {
            assert!(
                labels.contains(&("tenant".into(), "acme".into())),
                "{name} {labels:?}"
            );
        }
    });
    assert_no_secret(&kept, &secrets.lock().unwrap());
}

#[test]
fn describe_gives_each_metric_its_unit() {
    let kept = Kept::default();
    metrics::with_local_recorder(&kept, tower_bearer_auth::metrics::describe);
    let described = kept.described.lock().unwrap().clone();
    let unit = |name: &str| {
        described
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} not described"))
            .1
    };
    for name in [
        LOGINS,
        REFRESHES,
        STORE_ADOPTIONS,
        FAILURES,
        INVALIDATIONS,
        REPLAYS,
    ] {
        assert_eq!(unit(name), Some(Unit::Count), "{name}");
    }
    assert_eq!(unit(TOKEN_ENDPOINT_DURATION), Some(Unit::Seconds));
    assert_eq!(unit(TOKEN_LIFETIME), Some(Unit::Seconds));
    assert_eq!(described.len(), 8);
}
