//! The `metrics` feature at work, against an embedded PortSIP-compatible server on 127.0.0.1:
//! a login, a refresh, a `401` after the server forgets every token, and a refused password,
//! then every metric the cache recorded, printed by a small recorder written here (an
//! application installs an exporter instead: Prometheus, OpenTelemetry, …).
//!
//! ```sh
//! cargo run --example metrics
//! ```
//!
//! Exits 0 only when each step moved its metric.

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::Request;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin,
    client::HttpClient,
    provider::portsip::PortSip,
    test_server::{TestServer, TestServerConfig},
};

const PATH: &str = "/api/account/extensions";

/// One metric: a count, a gauge's value, or a histogram's samples.
#[derive(Default)]
struct Metric {
    bits: AtomicU64,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Metric {
    fn increment(&self, value: u64) {
        self.bits.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.bits.store(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Metric {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.bits.load(Ordering::Relaxed)) + value);
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for Metric {
    fn record(&self, value: f64) {
        self.samples.lock().unwrap().push(value);
    }
}

/// Keeps every metric by its name and labels, as Prometheus' text format writes them.
#[derive(Default, Clone)]
struct Printing {
    counters: Arc<Mutex<BTreeMap<String, Arc<Metric>>>>,
    gauges: Arc<Mutex<BTreeMap<String, Arc<Metric>>>>,
    histograms: Arc<Mutex<BTreeMap<String, Arc<Metric>>>>,
}

fn series(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
        .collect();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

fn entry(map: &Mutex<BTreeMap<String, Arc<Metric>>>, key: &Key) -> Arc<Metric> {
    map.lock().unwrap().entry(series(key)).or_default().clone()
}

impl Recorder for Printing {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(entry(&self.counters, key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(entry(&self.gauges, key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(entry(&self.histograms, key))
    }
}

impl Printing {
    fn print(&self) {
        for (name, metric) in self.counters.lock().unwrap().iter() {
            println!("{name} {}", metric.bits.load(Ordering::Relaxed));
        }
        for (name, metric) in self.gauges.lock().unwrap().iter() {
            println!(
                "{name} {}",
                f64::from_bits(metric.bits.load(Ordering::Relaxed))
            );
        }
        for (name, metric) in self.histograms.lock().unwrap().iter() {
            let samples = metric.samples.lock().unwrap();
            let ms: Vec<String> = samples.iter().map(|s| format!("{:.3}", s * 1e3)).collect();
            println!("{name} {} calls, ms: {}", samples.len(), ms.join(" "));
        }
    }

    fn count(&self, series: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        counters
            .get(series)
            .map_or(0, |m| m.bits.load(Ordering::Relaxed))
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let recorder = Printing::default();
    metrics::set_global_recorder(recorder.clone()).map_err(|_| "a recorder is installed")?;
    tower_bearer_auth::metrics::describe();

    let config = TestServerConfig::new("admin", "s3cret").lifetime(Duration::from_secs(60));
    let server = TestServer::start(config).await?;
    let provider = PortSip::new(server.base_url(), "admin", "s3cret").build()?;
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider)
            .refused_backoff(Duration::from_millis(10), Duration::from_millis(10))
            .build(),
    )
    .allow_origin(Origin::try_from(server.base_url().as_str())?);
    let cache = layer.cache();
    let client = layer.layer(HttpClient::new());
    let get = || Request::get(server.url(PATH)).body(Default::default());

    println!("a login:");
    client.clone().oneshot(get()?).await?;
    println!("a refresh:");
    cache.refresh().await?;
    println!("a 401: the server forgets every token; the request is sent again");
    server.revoke_all();
    client.clone().oneshot(get()?).await?;
    println!("a failure: the password changed");
    server.set_password("changed");
    server.revoke_all();
    cache.invalidate();
    let error = cache.get().await.expect_err("the password changed");
    println!("  {error}");

    println!();
    recorder.print();

    let expected = [
        ("tower_bearer_auth_logins_total", 2),
        ("tower_bearer_auth_refreshes_total", 1),
        ("tower_bearer_auth_invalidations_total", 1),
        ("tower_bearer_auth_replays_total{client=\"tower\"}", 1),
        ("tower_bearer_auth_failures_total{kind=\"refresh\"}", 2),
        ("tower_bearer_auth_failures_total{kind=\"login\"}", 1),
    ];
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(series, n)| recorder.count(series) != *n)
        .collect();
    if wrong.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("unexpected counts: {wrong:?}");
        Ok(ExitCode::FAILURE)
    }
}
