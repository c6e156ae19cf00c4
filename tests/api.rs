//! The public API as a tower user meets it: layers that are plain values, any request body
//! type, recovery from `401` by default, and a PortSIP token bound to its PBX.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use tokio::task::JoinSet;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, NoReplay, TokenCache, TokenResponse,
    client::HttpClient,
    provider::{StaticToken, portsip::PortSip, provider_fn},
    test_server::{TestServer, TestServerConfig},
};

/// Compiles only if `S` takes `Request<B>`.
fn takes<B, S: Service<Request<B>>>(_: &S) {}

/// A body type of the user's own, which the crate knows nothing about.
struct Upload;

#[test]
fn the_default_layer_takes_any_request_body() {
    let layer = BearerAuthLayer::new(StaticToken::new("abc")).any_origin();
    macro_rules! check {
        ($($body:ty),* $(,)?) => {$(
            let svc = layer.layer(service_fn(|_: Request<$body>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
            takes::<$body, _>(&svc);
        )*};
    }
    check!(
        Incoming,
        Upload,
        tonic::body::Body,
        UnsyncBoxBody<Bytes, BoxError>,
        Full<Bytes>,
        String,
        (),
    );
}

#[test]
fn configuring_a_clone_leaves_the_original_alone_and_keeps_its_cache() {
    let base = BearerAuthLayer::new(StaticToken::new("abc")).any_origin();
    let before = format!("{base:?}");
    let built = base.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let other = base
        .clone()
        .replay_unauthorized(false)
        .overwrite_existing(true);
    assert_eq!(format!("{base:?}"), before, "the original is unchanged");
    assert_ne!(format!("{other:?}"), before);
    // A layer's settings are about requests: its clones keep the one cache, whose settings
    // were fixed when it was built.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        built.clone().oneshot(Request::new(())).await.unwrap();
        assert!(base.cache().token().is_some());
        assert!(
            other.cache().token().is_some(),
            "the clone shares the original's cache"
        );
    });
}

#[test]
fn two_caches_from_one_builder_are_apart() {
    let builder = TokenCache::builder(StaticToken::new("abc")).timeout(Duration::from_secs(1));
    let (a, b) = (builder.clone().build(), builder.build());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        a.get().await.unwrap();
        assert!(a.token().is_some());
        assert!(b.token().is_none(), "each build makes a cache of its own");
    });
}

#[tokio::test]
async fn services_of_one_layer_share_one_cache() {
    let logins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = logins.clone();
    let layer = BearerAuthLayer::new(provider_fn(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { Ok::<_, BoxError>(TokenResponse::new("abc")) }
    }))
    .any_origin();
    let echo = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let (a, b) = (layer.layer(echo), layer.layer(echo));
    a.oneshot(Request::new(())).await.unwrap();
    b.oneshot(Request::new(())).await.unwrap();
    assert_eq!(logins.load(std::sync::atomic::Ordering::SeqCst), 1);
}

async fn server() -> TestServer {
    TestServer::start(TestServerConfig::new("admin", "pw").lifetime(Duration::from_secs(3600)))
        .await
        .unwrap()
}

fn get<B>(url: &str, body: B) -> Request<B> {
    Request::get(url).body(body).unwrap()
}

/// With the defaults, a revocation while 20 requests are in flight costs none of them: each
/// refused request is sent again with a new token, after one login.
#[tokio::test]
async fn a_revocation_costs_no_request_by_default() {
    let server = server().await;
    let provider = PortSip::new(server.base_url(), "admin", "pw")
        .build()
        .unwrap();
    let client = BearerAuthLayer::new(provider).layer(HttpClient::new());
    let url = server.url("/api/account/extensions");
    let first = client
        .clone()
        .oneshot(get(&url, Full::default()))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    server.revoke_all();
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { client.oneshot(get(&url, Full::default())).await });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().unwrap().status(), StatusCode::OK);
    }
    let counts = server.counts();
    assert!(counts.unauthorized >= 1, "the revocation was seen");
    // One flight for all of them: a refused refresh, then one login.
    assert_eq!(counts.password_grants, 2, "one new login");
    assert!(
        counts.refresh_grants <= 1,
        "{} refreshes",
        counts.refresh_grants
    );
}

/// A body type that cannot be copied, or a request that opts out, is sent once: the caller
/// gets the `401`, and the next request carries a new token.
#[tokio::test]
async fn unreplayable_bodies_and_no_replay_requests_are_sent_once() {
    let server = server().await;
    let provider = PortSip::new(server.base_url(), "admin", "pw")
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(provider);
    let streaming = layer.layer(HttpClient::new().for_body::<streaming::Once>());
    let url = server.url("/api/account/extensions");
    let ok = streaming
        .clone()
        .oneshot(get(&url, streaming::once()))
        .await;
    assert_eq!(ok.unwrap().status(), StatusCode::OK);
    server.revoke_all();
    let refused = streaming
        .clone()
        .oneshot(get(&url, streaming::once()))
        .await;
    assert_eq!(
        refused.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "not replayed"
    );
    let next = streaming
        .clone()
        .oneshot(get(&url, streaming::once()))
        .await;
    assert_eq!(next.unwrap().status(), StatusCode::OK, "a new token");

    let copyable = layer.layer(HttpClient::new().for_body::<Empty<Bytes>>());
    server.revoke_all();
    let mut request = get(&url, Empty::new());
    request.extensions_mut().insert(NoReplay);
    let refused = copyable.clone().oneshot(request).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "opted out");
    assert_eq!(server.counts().unauthorized, 2);
}

/// A streaming body of one frame, of a type the crate does not replay.
mod streaming {
    use super::*;
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    pub struct Once(Option<Bytes>);

    pub fn once() -> Once {
        Once(Some(Bytes::from_static(b"{}")))
    }

    impl http_body::Body for Once {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
        }
    }
}

/// A PortSIP layer binds its token to the PBX: a request to another origin goes without it.
#[tokio::test]
async fn a_portsip_token_stays_with_its_pbx() {
    let (pbx, other) = (server().await, server().await);
    let provider = PortSip::new(pbx.base_url(), "admin", "pw").build().unwrap();
    let client = BearerAuthLayer::new(provider).layer(HttpClient::new());
    let to_pbx = client
        .clone()
        .oneshot(get(&pbx.url("/api/account/extensions"), Full::default()))
        .await
        .unwrap();
    assert_eq!(to_pbx.status(), StatusCode::OK);
    let elsewhere = client
        .oneshot(get(&other.url("/api/account/extensions"), Full::default()))
        .await
        .unwrap();
    assert_eq!(
        elsewhere.status(),
        StatusCode::UNAUTHORIZED,
        "sent without the token"
    );
    assert_eq!(other.counts().unauthorized, 1, "and not replayed");
    let _ = elsewhere.into_body().collect().await;
}
