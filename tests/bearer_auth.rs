//! End-to-end tests of `BearerAuthLayer` through hyper-util's client and a hyper server on
//! 127.0.0.1.

mod support;

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::Full;
use support::{Api, Issuer, client, get};
use tower::{
    BoxError, Layer, Service, ServiceBuilder, ServiceExt, retry::RetryLayer, timeout::TimeoutLayer,
    util::BoxCloneService,
};
use tower_bearer_auth::{
    BearerAuthLayer, TokenError, TokenErrorKind, TokenResponse,
    provider::{StaticToken, provider_fn},
};

fn token_error(err: &BoxError) -> &TokenError {
    err.downcast_ref::<TokenError>()
        .unwrap_or_else(|| panic!("expected a TokenError, got {err:?}"))
}

#[tokio::test]
async fn first_request_logs_in_and_the_token_is_reused() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api).lifetime(Duration::from_secs(3600));
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());
    for _ in 0..5 {
        let res = svc.clone().oneshot(get(addr)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(issuer.logins(), 1);
    assert_eq!(issuer.refreshes(), 0);
    let expected = Some("Bearer access-login-1".to_owned());
    assert_eq!(api.seen(), vec![expected; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_on_an_empty_cache_cause_one_login() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api)
        .lifetime(Duration::from_secs(3600))
        .delay(Duration::from_millis(100));
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());
    let tasks: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(addr))))
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(issuer.logins(), 1);
    assert_eq!(api.requests(), 1000);
}

#[tokio::test]
async fn the_request_that_triggered_the_login_can_be_dropped() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api).delay(Duration::from_millis(200));
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());

    // Poll the first request once, so it starts the login, then drop it.
    let mut first = Box::pin(svc.clone().oneshot(get(addr)));
    let waker = std::task::Waker::noop();
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    drop(first);

    let others: Vec<_> = (0..10)
        .map(|_| tokio::spawn(svc.clone().oneshot(get(addr))))
        .collect();
    for task in others {
        assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(issuer.logins(), 1);
}

#[tokio::test]
async fn refreshes_before_expiry_without_making_requests_wait() {
    let (api, addr) = Api::start().await;
    // A 2 s token is refreshed between 0.5 s and 1 s into its life.
    let issuer = Issuer::new(&api).lifetime(Duration::from_secs(2));
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // Still valid: sent at once with the old token, while the refresh starts.
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    assert_eq!((issuer.logins(), issuer.refreshes()), (1, 1));
    let seen = api.seen();
    assert_eq!(seen[1].as_deref(), Some("Bearer access-login-1"));
    assert_eq!(seen[2].as_deref(), Some("Bearer access-refresh-1"));
}

#[tokio::test]
async fn a_refused_refresh_falls_back_to_one_login() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api).lifetime(Duration::from_secs(1));
    issuer.refuse_refresh(true);
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The token has expired: this request waits for the refresh, then the login.
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    assert_eq!((issuer.logins(), issuer.refreshes()), (2, 1));
    assert_eq!(api.seen()[1].as_deref(), Some("Bearer access-login-2"));
}

#[tokio::test]
async fn a_failed_login_is_a_typed_error_and_the_next_call_works() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    issuer.fail_logins(true);
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());
    let err = svc.clone().oneshot(get(addr)).await.unwrap_err();
    let err = token_error(&err);
    assert_eq!(err.kind(), TokenErrorKind::Login);
    assert_eq!(
        err.to_string(),
        "token provider failed to log in: wrong password for user admin"
    );
    let source = std::error::Error::source(err).unwrap().to_string();
    assert_eq!(source, "wrong password for user admin");
    assert_eq!(api.requests(), 0, "nothing was sent without a token");

    issuer.fail_logins(false);
    // Right after a failure the cache backs off: the same error, without asking the provider.
    let err = svc.clone().oneshot(get(addr)).await.unwrap_err();
    assert_eq!(token_error(&err).kind(), TokenErrorKind::Login);
    assert_eq!(issuer.logins(), 1);
    // After the first pause (at most 100 ms) the next call logs in.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
    assert_eq!(issuer.logins(), 2);
}

#[tokio::test]
async fn token_type_is_matched_case_insensitively() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api).token_type("bearer");
    let svc = BearerAuthLayer::new(issuer).any_origin().layer(client());
    assert_eq!(svc.oneshot(get(addr)).await.unwrap().status(), 200);
    assert_eq!(api.seen()[0].as_deref(), Some("Bearer access-login-1"));
}

#[tokio::test]
async fn an_unsupported_token_type_is_an_error_not_a_wrong_header() {
    let (api, addr) = Api::start().await;
    let issuer = Issuer::new(&api).token_type("MAC");
    let layer = BearerAuthLayer::new(issuer).any_origin();
    let err = layer.layer(client()).oneshot(get(addr)).await.unwrap_err();
    assert_eq!(token_error(&err).kind(), TokenErrorKind::InvalidResponse);
    assert_eq!(api.requests(), 0);
    assert!(layer.cache().token().is_none(), "nothing broken is cached");
}

#[tokio::test]
async fn an_existing_authorization_header_is_kept_unless_overwriting() {
    let (api, addr) = Api::start().await;
    api.accept("mine");
    let issuer = Issuer::new(&api);
    let mut req = get(addr);
    req.headers_mut()
        .insert(AUTHORIZATION, "Bearer mine".parse().unwrap());
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .layer(client());
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    assert_eq!(issuer.logins(), 0, "no token was fetched");

    let mut req = get(addr);
    req.headers_mut()
        .insert(AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
    let svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .overwrite_existing(true)
        .layer(client());
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    assert_eq!(
        api.seen(),
        vec![
            Some("Bearer mine".to_owned()),
            Some("Bearer access-login-1".to_owned())
        ]
    );
}

/// With `overwrite_existing`, a request sent with the cached token (the hot path: replay off,
/// this thread's copy of the header) has its own header replaced, not joined by a second one;
/// without it, the request's own header is the only one sent.
#[tokio::test]
async fn overwriting_replaces_the_header_when_the_token_is_cached() {
    let (api, addr) = Api::start().await;
    api.accept("mine");
    let issuer = Issuer::new(&api);
    let with_basic = || {
        let mut req = get(addr);
        req.headers_mut()
            .insert(AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        req
    };
    let mut svc = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .overwrite_existing(true)
        .replay_unauthorized(false)
        .layer(client());
    for _ in 0..3 {
        let response = svc.ready().await.unwrap().call(with_basic()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let mut mine = get(addr);
    mine.headers_mut()
        .insert(AUTHORIZATION, "Bearer mine".parse().unwrap());
    let mut keep = BearerAuthLayer::new(issuer.clone())
        .any_origin()
        .replay_unauthorized(false)
        .layer(client());
    keep.ready().await.unwrap().call(get(addr)).await.unwrap();
    assert_eq!(
        keep.ready()
            .await
            .unwrap()
            .call(mine)
            .await
            .unwrap()
            .status(),
        200
    );
    let sent: Vec<Vec<String>> = api
        .received()
        .iter()
        .map(|r| {
            r.headers
                .get_all(AUTHORIZATION)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        sent,
        [
            vec!["Bearer access-login-1"],
            vec!["Bearer access-login-1"],
            vec!["Bearer access-login-1"],
            vec!["Bearer access-login-2"],
            vec!["Bearer mine"],
        ]
    );
    assert_eq!(issuer.logins(), 2);
}

#[tokio::test]
async fn errors_of_the_inner_service_pass_through() {
    // Nothing listens on this port once the listener is dropped.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let svc = BearerAuthLayer::new(StaticToken::new("abc"))
        .any_origin()
        .layer(client());
    let err = svc.oneshot(get(addr)).await.unwrap_err();
    assert!(err.downcast_ref::<TokenError>().is_none());
    assert!(
        err.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(|e| e.is_connect()),
        "{err:?}"
    );
}

/// A service that checks what the layer hands it.
#[derive(Clone)]
struct Inspect;

impl Service<Request<()>> for Inspect {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        let value = &req.headers()[AUTHORIZATION];
        assert!(value.is_sensitive());
        assert_eq!(value, "Bearer abc");
        ready(Ok(Response::new(())))
    }
}

#[tokio::test]
async fn the_header_is_marked_sensitive_on_both_paths() {
    let svc = BearerAuthLayer::new(StaticToken::new("abc"))
        .any_origin()
        .layer(Inspect);
    // The first request waits for the login, the second takes the cached copy.
    svc.clone().oneshot(Request::new(())).await.unwrap();
    svc.clone().oneshot(Request::new(())).await.unwrap();
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_display() {
    let (api, addr) = Api::start().await;
    let provider = provider_fn(|| async {
        Ok::<_, BoxError>(
            TokenResponse::new("s3cret-access")
                .with_refresh_token("s3cret-refresh")
                .with_expires_in(Duration::from_secs(60))
                .with_extra("role", "admin"),
        )
    });
    api.accept("s3cret-access");
    let layer = BearerAuthLayer::new(provider).any_origin();
    let svc = layer.layer(client());
    svc.clone().oneshot(get(addr)).await.unwrap();
    let cache = layer.cache();
    let token = cache.token().unwrap();

    let failing = BearerAuthLayer::new(provider_fn(|| async {
        Ok::<_, BoxError>(TokenResponse::new("s3cret\r\nbroken"))
    }))
    .any_origin();
    let err = failing
        .layer(client())
        .oneshot(get(addr))
        .await
        .unwrap_err();

    let outputs = [
        format!("{layer:?}"),
        format!("{svc:?}"),
        format!("{cache:?}"),
        format!("{token:?}"),
        format!("{:?}", token.header_value()),
        format!("{:?}", StaticToken::new("s3cret-static")),
        format!(
            "{:?}",
            TokenResponse::new("s3cret-x").with_refresh_token("s3cret-y")
        ),
        format!("{err:?}"),
        format!("{err}"),
        format!("{:?}", std::error::Error::source(&*err)),
    ];
    for out in &outputs {
        assert!(!out.contains("s3cret"), "secret leaked: {out}");
    }
    // The placeholder is there, and the expiry is readable without the secret.
    assert!(outputs[3].contains("<redacted>"));
    assert!(cache.expires_at().is_some());
    assert_eq!(token.extra()["role"], "admin");
}

mod stacking {
    use super::*;
    use tower::retry::Policy;

    /// Retries once after any error, after a pause.
    #[derive(Clone)]
    struct RetryOnce(bool, Duration);

    impl<Res, E> Policy<Request<Full<Bytes>>, Res, E> for RetryOnce {
        type Future = tokio::time::Sleep;

        fn retry(
            &mut self,
            _: &mut Request<Full<Bytes>>,
            result: &mut Result<Res, E>,
        ) -> Option<Self::Future> {
            (result.is_err() && !std::mem::replace(&mut self.0, true))
                .then(|| tokio::time::sleep(self.1))
        }

        fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
            let mut clone = Request::new(req.body().clone());
            *clone.uri_mut() = req.uri().clone();
            *clone.headers_mut() = req.headers().clone();
            Some(clone)
        }
    }

    type Svc = BoxCloneService<Request<Full<Bytes>>, Response<hyper::body::Incoming>, BoxError>;

    fn boxed<S>(svc: S) -> Svc
    where
        S: Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>>
            + Clone
            + Send
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        BoxCloneService::new(svc.map_err(Into::into))
    }

    #[tokio::test]
    async fn timeout_outside_bounds_the_token_fetch_which_still_completes() {
        let (api, addr) = Api::start().await;
        let issuer = Issuer::new(&api).delay(Duration::from_millis(500));
        let svc = boxed(
            ServiceBuilder::new()
                .layer(TimeoutLayer::new(Duration::from_millis(100)))
                .layer(BearerAuthLayer::new(issuer.clone()).any_origin())
                .service(client()),
        );
        let err = svc.clone().oneshot(get(addr)).await.unwrap_err();
        assert!(err.is::<tower::timeout::error::Elapsed>(), "{err:?}");
        // The login went on without the request that started it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(svc.oneshot(get(addr)).await.unwrap().status(), 200);
        assert_eq!(issuer.logins(), 1);
    }

    #[tokio::test]
    async fn timeout_inside_bounds_only_the_call_to_the_server() {
        let (api, addr) = Api::start().await;
        let issuer = Issuer::new(&api).delay(Duration::from_millis(300));
        let svc = boxed(
            ServiceBuilder::new()
                .layer(BearerAuthLayer::new(issuer.clone()).any_origin())
                .layer(TimeoutLayer::new(Duration::from_millis(150)))
                .service(client()),
        );
        // The login takes longer than the timeout, but the timeout doesn't cover it.
        assert_eq!(svc.clone().oneshot(get(addr)).await.unwrap().status(), 200);
        // A slow server is cut off, and the timeout's error passes through.
        api.set_delay(Duration::from_millis(500));
        let err = svc.oneshot(get(addr)).await.unwrap_err();
        assert!(err.is::<tower::timeout::error::Elapsed>(), "{err:?}");
    }

    #[tokio::test]
    async fn retry_outside_retries_a_failed_login_after_the_backoff() {
        let (api, addr) = Api::start().await;
        let issuer = Issuer::new(&api);
        issuer.fail_logins(true);
        let retrying = |pause| {
            boxed(
                ServiceBuilder::new()
                    .layer(RetryLayer::new(RetryOnce(false, pause)))
                    .layer(BearerAuthLayer::new(issuer.clone()).any_origin())
                    .service(client()),
            )
        };
        // An immediate retry falls into the cache's backoff: same error, no second login.
        let err = retrying(Duration::ZERO)
            .oneshot(get(addr))
            .await
            .unwrap_err();
        assert_eq!(token_error(&err).kind(), TokenErrorKind::Login);
        assert_eq!(issuer.logins(), 1);
        // A retry that waits out the pause logs in again.
        let svc = retrying(Duration::from_millis(150));
        let err = svc.clone().oneshot(get(addr)).await.unwrap_err();
        assert_eq!(token_error(&err).kind(), TokenErrorKind::Login);
        assert_eq!(issuer.logins(), 3, "the retry logged in again");

        issuer.fail_logins(false);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(svc.oneshot(get(addr)).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn retry_inside_never_sees_token_errors() {
        let (api, addr) = Api::start().await;
        let issuer = Issuer::new(&api);
        issuer.fail_logins(true);
        let svc = boxed(
            ServiceBuilder::new()
                .layer(BearerAuthLayer::new(issuer.clone()).any_origin())
                .layer(RetryLayer::new(RetryOnce(false, Duration::ZERO)))
                .service(client()),
        );
        let err = svc.oneshot(get(addr)).await.unwrap_err();
        assert_eq!(token_error(&err).kind(), TokenErrorKind::Login);
        assert_eq!(issuer.logins(), 1);
        assert_eq!(api.requests(), 0);
    }
}
