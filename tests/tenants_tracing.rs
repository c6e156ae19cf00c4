//! Issue 15: the tenants' tracing events carry the key and never a secret.
//!
//! Alone in its test binary, because it captures events with a subscriber set as this
//! thread's default, and `tracing` decides once per callsite, for the whole process, whether
//! any subscriber wants its events. While this test's subscriber is the only one alive,
//! `tracing-core` asks the *registering thread's* default: a test running beside this one,
//! on another thread with no subscriber, that reaches a callsite first (`tenant_created`,
//! say) has it registered as wanted by no one, and this test then never sees its events. In
//! a binary of its own, the only thread that reaches the crate's callsites is this test's.
//! Do not add tests that send requests through the crate to this file.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};
use tower_bearer_auth::{
    BoxError, Origin, TokenResponse,
    provider::provider_fn,
    tenants::{TenantId, TenantKey, TenantsLayer},
};

/// Tracing: creating, refusing and evicting keys emit events that carry the key (its origin
/// and tenant id), and none carries the token.
#[tokio::test(start_paused = true)]
async fn tenant_events_carry_the_key_and_no_secret() {
    use tracing::{
        Event, Metadata, Subscriber,
        field::{Field, Visit},
        span,
    };

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(&'static str, String)>>>);

    struct Text(String);

    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    impl Subscriber for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0
                .lock()
                .unwrap()
                .push((event.metadata().name(), text.0));
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    const TOKEN: &str = "tok-3f9a1c-never-logged";
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let layer = TenantsLayer::new(|key: &TenantKey| {
        let known = key.origin().to_string().starts_with("https://a.");
        async move {
            if known {
                Ok(provider_fn(|| async {
                    Ok::<_, BoxError>(TokenResponse::new(TOKEN))
                }))
            } else {
                Err(BoxError::from("unknown PBX"))
            }
        }
    })
    .idle_timeout(Duration::from_secs(60));
    let caches = layer.caches();
    let client = layer.layer(inner);
    let mut a = Request::get("https://a.example.com/").body(()).unwrap();
    a.extensions_mut().insert(TenantId::new("acme"));
    client.clone().oneshot(a).await.unwrap();
    let b = Request::get("https://b.example.com/").body(()).unwrap();
    client.clone().oneshot(b).await.unwrap_err();
    let plain_a = Request::get("https://a.example.com/").body(()).unwrap();
    client.clone().oneshot(plain_a).await.unwrap();
    let acme = TenantKey::new(
        Origin::try_from("https://a.example.com").unwrap(),
        Some(TenantId::new("acme")),
    );
    assert!(caches.evict(&acme));
    caches.evict_idle();
    tokio::time::advance(Duration::from_secs(61)).await;
    // Swept by the layer's task while the clock moved, or now.
    caches.evict_idle();
    assert!(caches.is_empty());

    let events = capture.0.lock().unwrap().clone();
    let of = |name: &str| -> Vec<String> {
        events
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, text)| text.clone())
            .collect()
    };
    let created = of("tenant_created");
    assert_eq!(created.len(), 2, "{events:?}");
    assert!(
        created[0].contains("key=https://a.example.com:443 (tenant acme)"),
        "{created:?}"
    );
    assert!(
        created[1].contains("key=https://a.example.com:443"),
        "{created:?}"
    );
    let refused = of("tenant_refused");
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("key=https://b.example.com:443"),
        "{refused:?}"
    );
    assert!(refused[0].contains("unknown PBX"), "{refused:?}");
    let evicted = of("tenant_evicted");
    assert_eq!(evicted.len(), 2, "{events:?}");
    assert!(evicted[0].contains("(tenant acme)") && evicted[0].contains("reason=\"asked\""));
    assert!(evicted[1].contains("reason=\"idle\""), "{evicted:?}");
    assert!(
        !format!("{events:?}").contains(TOKEN),
        "a token in an event"
    );
    // Nor in the handles' and the service's `Debug`.
    let mut c = Request::get("https://a.example.com/").body(()).unwrap();
    c.extensions_mut().insert(TenantId::new("c"));
    client.clone().oneshot(c).await.unwrap();
    let debug = format!("{caches:?} {client:?} {:?}", caches.tenants());
    assert!(debug.contains("tenants: 1"), "{debug}");
    assert!(!debug.contains(TOKEN), "{debug}");
}
