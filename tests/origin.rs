//! The token stays with the origins it was issued for.

mod support;

use bytes::Bytes;
use http::{Response, StatusCode, header::LOCATION};
use http_body_util::Full;
use support::{Api, Issuer, client, get, serve};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_bearer_auth::{BearerAuthLayer, Origin};
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
    let svc = BearerAuthLayer::new(Issuer::new(&api)).layer(client());
    svc.clone().oneshot(get(api_addr)).await.unwrap();
    svc.oneshot(get(other_addr)).await.unwrap();
    assert!(other.seen()[0].is_some());
}
