//! The token stays with the origins it was issued for.

mod support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use http::{Response, StatusCode, header::LOCATION};
use http_body_util::Full;
use support::{Api, Issuer, client, get, serve};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, Origin, TokenCache, TokenError, TokenErrorKind,
    provider::{Call, TokenProviderExt, portsip::PortSip},
    reqwest::{BearerAuthMiddleware, token_error},
    test_server::{TestServer, TestServerConfig},
};
use tower_http::follow_redirect::FollowRedirectLayer;

#[tokio::test]
async fn a_redirect_to_another_host_does_not_carry_the_token() {
    // The second server stands for a host the token was not issued for.
    let (other, other_addr) = Api::start().await;
    // The API redirects everything to the other host.
    let api_addr = serve(move |_req| {
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::FOUND;
        res.headers_mut().insert(
            LOCATION,
            format!("http://{other_addr}/landing").parse().unwrap(),
        );
        res
    })
    .await;
    let (tokens, _) = Api::start().await;
    let issuer = Issuer::new(&tokens);
    let origin = Origin::try_from(format!("http://{api_addr}").as_str()).unwrap();

    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(BearerAuthLayer::new(issuer.clone()).allow_origin(origin))
        .service(client());
    let res = svc.oneshot(get(api_addr)).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the other host saw no token"
    );
    assert_eq!(other.seen(), vec![None]);
    assert_eq!(issuer.logins(), 1, "the first hop carried a token");
}

#[tokio::test]
async fn one_client_talking_to_two_hosts_sends_the_token_to_one() {
    let (api, api_addr) = Api::start().await;
    let (other, other_addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let origin = Origin::try_from(format!("http://{api_addr}").as_str()).unwrap();
    let svc = BearerAuthLayer::new(issuer.clone())
        .allow_origin(origin)
        .layer(client());
    assert_eq!(
        svc.clone().oneshot(get(api_addr)).await.unwrap().status(),
        200
    );
    assert_eq!(
        svc.clone().oneshot(get(other_addr)).await.unwrap().status(),
        401
    );
    assert_eq!(api.seen(), vec![Some("Bearer access-login-1".to_owned())]);
    assert_eq!(other.seen(), vec![None]);
    // The 401 from the other host, which got no token of ours, invalidated nothing.
    assert_eq!(svc.oneshot(get(api_addr)).await.unwrap().status(), 200);
    assert_eq!(issuer.logins() + issuer.refreshes(), 1);
}

#[tokio::test]
async fn without_an_allow_list_every_origin_gets_the_token() {
    let (api, api_addr) = Api::start().await;
    let (other, other_addr) = Api::start().await;
    let svc = BearerAuthLayer::new(Issuer::new(&api))
        .any_origin()
        .layer(client());
    svc.clone().oneshot(get(api_addr)).await.unwrap();
    svc.oneshot(get(other_addr)).await.unwrap();
    assert!(other.seen()[0].is_some());
}

/// Where the token may go is a choice: a layer told nothing, for a provider that names no
/// origin, sends no request with the token, and logs in for none.
#[tokio::test]
async fn a_layer_told_nowhere_sends_the_token_nowhere() {
    let (api, api_addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let svc = BearerAuthLayer::new(issuer.clone()).layer(client());
    let err = svc.oneshot(get(api_addr)).await.unwrap_err();
    let err = err.downcast_ref::<TokenError>().expect("a TokenError");
    assert_eq!(err.kind(), TokenErrorKind::Unbound);
    assert!(err.to_string().contains("any_origin()"), "{err}");
    assert_eq!(api.requests(), 0, "nothing was sent");
    assert_eq!(issuer.logins(), 0, "no token was fetched");
}

/// The same for the reqwest middleware.
#[tokio::test]
async fn a_middleware_told_nowhere_sends_the_token_nowhere() {
    let (api, api_addr) = Api::start().await;
    let issuer = Issuer::new(&api);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(TokenCache::new(issuer.clone())))
        .build();
    let err = client
        .get(format!("http://{api_addr}/"))
        .send()
        .await
        .unwrap_err();
    let err = token_error(&err).expect("a TokenError");
    assert_eq!(err.kind(), TokenErrorKind::Unbound);
    assert_eq!(api.requests(), 0, "nothing was sent");
    assert_eq!(issuer.logins(), 0, "no token was fetched");
}

/// A PortSIP provider wrapped to count its logins (the wrapper a user writes for metrics)
/// keeps its token bound to the PBX: the combinators forward its origin, its revoke and its
/// `Retry-After`. (A hand-written wrapper that forgets `origin` does not compile: see the
/// `compile_fail` example of `TokenProvider`.)
#[tokio::test]
async fn a_wrapped_portsip_provider_keeps_its_token_at_the_pbx() {
    let pbx = TestServer::start(TestServerConfig::new("admin", "s3cret"))
        .await
        .unwrap();
    let (other, other_addr) = Api::start().await;
    let logins = Arc::new(AtomicUsize::new(0));
    let counted = logins.clone();
    let provider = PortSip::new(pbx.base_url(), "admin", "s3cret")
        .build()
        .unwrap()
        .inspect(move |call, result, _| {
            assert!(result.is_ok());
            if call == Call::Login {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        })
        .map_response(|_, response| Ok(response));
    let svc = BearerAuthLayer::new(provider).layer(client());

    let to_pbx = http::Request::get(pbx.url("/api/account/extensions"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(svc.clone().oneshot(to_pbx).await.unwrap().status(), 200);
    // The other host gets the request, without the token.
    svc.clone().oneshot(get(other_addr)).await.unwrap();
    assert_eq!(other.seen(), vec![None]);
    assert_eq!(logins.load(Ordering::SeqCst), 1);
    assert_eq!(pbx.counts().password_grants, 1);
}
