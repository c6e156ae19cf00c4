//! Recovery from `401 Unauthorized`, over a loopback hyper server.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::{Api, Issuer, client, get};
use tower::{BoxError, Layer, ServiceExt};
use tower_bearer_auth::{BearerAuthLayer, BearerChallenge, NoReplay};

/// A layer that replays a request refused with `401`.
fn replaying(issuer: &Issuer) -> BearerAuthLayer {
    BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .replay_unauthorized(true)
}

/// Logins plus refreshes: how many tokens the provider handed out.
fn tokens(issuer: &Issuer) -> usize {
    issuer.logins() + issuer.refreshes()
}

#[tokio::test]
async fn a_revoked_token_is_replaced_and_the_request_replayed_once() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api).lifetime(Duration::from_secs(3600));
    let svc = replaying(&issuer).layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);

    api.revoke("access-login-1");
    let res = svc.clone().oneshot(get(addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!((issuer.logins(), issuer.refreshes()), (1, 1));
    let seen = api.seen();
    assert_eq!(seen.len(), 3, "one transparent replay");
    assert_eq!(seen[1].as_deref(), Some("Bearer access-login-1"));
    assert_eq!(seen[2].as_deref(), Some("Bearer access-refresh-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_401s_for_one_token_cause_one_new_token() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api)
        .lifetime(Duration::from_secs(3600))
        .delay(Duration::from_millis(50));
    let svc = replaying(&issuer).layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);

    api.revoke("access-login-1");
    // The server holds each answer, so all 50 requests leave with the revoked token before
    // the first 401 comes back.
    api.set_delay(Duration::from_millis(300));
    let tasks: Vec<_> = (0..50)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(addr))))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(tokens(&issuer), 2, "one login, then exactly one refresh");
    let stale = api
        .seen()
        .iter()
        .filter(|a| a.as_deref() == Some("Bearer access-login-1"))
        .count();
    assert_eq!(stale, 51, "each request carried the revoked token once");
}

#[tokio::test]
async fn a_replayed_post_arrives_byte_identical() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let svc = replaying(&issuer).layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    api.revoke("access-login-1");

    let body = Bytes::from_static(b"{\"caller\":\"101\",\"callee\":\"102\",\"note\":\"\xc3\xa9\"}");
    let req = Request::post(format!("http://{addr}/api/calls?async=1"))
        .header("content-type", "application/json")
        .header("x-request-id", "abc-123")
        .header("x-multi", "one")
        .body(Full::new(body.clone()))
        .unwrap();
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 200);

    let received = api.received();
    let (first, replay) = (&received[1], &received[2]);
    assert_eq!(replay.method, http::Method::POST);
    assert_eq!(replay.uri, first.uri);
    assert_eq!(replay.body, body);
    assert_eq!(first.body, body);
    let without_auth = |h: &http::HeaderMap| {
        let mut h = h.clone();
        h.remove(AUTHORIZATION);
        h
    };
    assert_eq!(without_auth(&replay.headers), without_auth(&first.headers));
    assert_eq!(replay.headers[AUTHORIZATION], "Bearer access-refresh-1");
}

type Boxed = BoxBody<Bytes, BoxError>;

/// A body that arrives in chunks and doesn't say how long it is.
struct Chunks(std::collections::VecDeque<&'static [u8]>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let chunk = self.0.pop_front();
        std::task::Poll::Ready(chunk.map(|c| Ok(http_body::Frame::data(Bytes::from_static(c)))))
    }
}

fn streaming(chunks: &'static [&'static [u8]]) -> Boxed {
    Chunks(chunks.iter().copied().collect()).boxed()
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_and_the_next_request_succeeds() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let client = Client::builder(TokioExecutor::new()).build_http::<Boxed>();
    let svc = replaying(&issuer).layer(client);
    let post = |body| {
        Request::post(format!("http://{addr}/api/upload"))
            .body(body)
            .unwrap()
    };
    assert_eq!(
        svc.clone()
            .oneshot(post(streaming(&[b"a"])))
            .await
            .unwrap()
            .status(),
        200
    );
    api.revoke("access-login-1");

    let res = svc
        .clone()
        .oneshot(post(streaming(&[b"part1", b"part2"])))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "not replayed");
    assert_eq!(api.requests(), 2);
    assert_eq!(api.received()[1].body, "part1part2");
    // The token was invalidated all the same: the next request gets a new one.
    assert_eq!(
        svc.clone()
            .oneshot(post(streaming(&[b"b"])))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(tokens(&issuer), 2);
}

#[tokio::test]
async fn a_small_boxed_body_is_buffered_and_replayed() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let client = Client::builder(TokioExecutor::new()).build_http::<Boxed>();
    let svc = replaying(&issuer).layer(client);
    let post = |body: &'static str| {
        let body = Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(Into::into)
            .boxed();
        Request::post(format!("http://{addr}/api/upload"))
            .body(body)
            .unwrap()
    };
    assert_eq!(
        svc.clone().oneshot(post("first")).await.unwrap().status(),
        200
    );
    api.revoke("access-login-1");
    assert_eq!(
        svc.clone().oneshot(post("second")).await.unwrap().status(),
        200
    );
    let received = api.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[1].body, "second");
    assert_eq!(received[2].body, "second");

    // Over the limit: sent once.
    let svc = replaying(&issuer)
        .replay_buffer_limit(3)
        .layer(Client::builder(TokioExecutor::new()).build_http::<Boxed>());
    assert_eq!(svc.clone().oneshot(post("x")).await.unwrap().status(), 200);
    api.reject_all();
    assert_eq!(svc.oneshot(post("too long")).await.unwrap().status(), 401);
    assert_eq!(api.received().len(), 5);
}

#[tokio::test]
async fn a_server_that_rejects_everything_costs_exactly_two_attempts() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    api.deny_all(true);
    let svc = replaying(&issuer).layer(client());
    for round in 1..=3 {
        let res = svc.clone().oneshot(get(addr)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.extensions().get::<BearerChallenge>().unwrap();
        assert_eq!(challenge.error(), Some("invalid_token"));
        assert_eq!(api.requests(), 2 * round);
    }
}

#[tokio::test]
async fn insufficient_scope_is_returned_at_once() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let svc = replaying(&issuer).layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    api.deny_all(true);
    api.set_challenge(r#"Bearer realm="pbx", error="insufficient_scope", scope="admin""#);
    let res = svc.clone().oneshot(get(addr)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.extensions().get::<BearerChallenge>().unwrap();
    assert_eq!(challenge.scope(), Some("admin"));
    assert_eq!(api.requests(), 2, "no replay");
    api.deny_all(false);
    assert_eq!(svc.oneshot(get(addr)).await.unwrap().status(), 200);
    assert_eq!(tokens(&issuer), 1, "the token was kept");
}

#[tokio::test]
async fn a_bare_challenge_or_none_at_all_triggers_recovery() {
    for challenge in ["Bearer", "", r#"Bearer realm="pbx""#] {
        let (api, addr) = Api::start().await;
        api.set_challenge(challenge);
        let issuer = Issuer::new(&api);
        let svc = replaying(&issuer).layer(client());
        assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
        api.revoke("access-login-1");
        let res = svc.clone().oneshot(get(addr)).await.unwrap();
        assert_eq!(res.status(), 200, "{challenge:?}");
        assert_eq!(api.requests(), 3, "{challenge:?}");
    }
}

#[tokio::test]
async fn a_late_401_for_an_old_token_keeps_the_new_one() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let layer = replaying(&issuer);
    let svc = layer.layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);

    // A slow request leaves with token 1.
    api.set_delay(Duration::from_millis(300));
    let slow = tokio::spawn(svc.clone().oneshot(get(addr)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Meanwhile token 1 is revoked and replaced by token 2.
    api.revoke("access-login-1");
    layer.cache().invalidate();
    let fresh = layer.cache().get().await.unwrap();
    assert_eq!(fresh.access_token(), "access-refresh-1");
    api.set_delay(Duration::ZERO);

    // The slow request's 401 names token 1: token 2 stays, and the replay uses it.
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert_eq!(
        layer.cache().token().unwrap().generation(),
        fresh.generation()
    );
    assert_eq!(tokens(&issuer), 2);
    assert_eq!(
        api.seen().last().unwrap().as_deref(),
        Some("Bearer access-refresh-1")
    );
}

#[tokio::test]
async fn without_replay_a_401_still_invalidates_and_noreplay_opts_out_per_request() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .replay_unauthorized(false)
        .layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    api.revoke("access-login-1");
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 401);
    assert_eq!(
        svc.clone().oneshot(get(addr)).await.unwrap().status(),
        200,
        "invalidated"
    );
    assert_eq!(api.requests(), 3);

    let svc = replaying(&issuer).layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    api.reject_all();
    let mut req = get(addr);
    req.extensions_mut().insert(NoReplay);
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 401);
    assert_eq!(api.requests(), 5);
}

#[tokio::test]
async fn an_outer_retry_layer_with_the_exported_policy_retries_once() {
    use tower::{ServiceBuilder, retry::RetryLayer};
    use tower_bearer_auth::retry::RetryUnauthorized;

    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryUnauthorized::default()))
        .layer(
            BearerAuthLayer::new(issuer.clone())
                .any_origin()
                .replay_unauthorized(false),
        )
        .service(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    api.revoke("access-login-1");
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    assert_eq!(api.requests(), 3);
    assert_eq!(api.seen()[2].as_deref(), Some("Bearer access-refresh-1"));

    api.deny_all(true);
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 401);
    assert_eq!(api.requests(), 5, "exactly two attempts");
}
