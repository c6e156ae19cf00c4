//! Inputs the crate refuses: a loopback name with a trailing dot (which the resolver sends to
//! DNS), access tokens that are not bearer tokens (RFC 6750 `b64token`s, give or take the
//! characters that do not split an `Authorization` header), and a server clock so far off
//! that correcting for it would keep a token for years.
#![cfg(all(feature = "client", feature = "test-server"))]

mod support;

use std::{
    convert::Infallible,
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{
    Request, Response, StatusCode,
    header::{CONTENT_TYPE, DATE},
};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, TokenError, TokenErrorKind,
    client::HttpClient,
    provider::{
        BuildErrorKind, StaticToken,
        oauth2::OAuth2Provider,
        portsip::{PORTSIP_TOKEN_PATH, PortSip, PortSipApi},
    },
    test_server::{CannedResponse, TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret";

#[tokio::test]
async fn a_loopback_name_with_a_trailing_dot_is_not_loopback() {
    // A server on loopback that would answer, to show nothing is sent to it.
    let server = TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap();
    let port = server.addr().port();
    for host in ["localhost.", "LOCALHOST.", "localhost.."] {
        let base = format!("http://{host}:{port}");
        let err = PortSip::new(base.as_str(), USER, PASSWORD)
            .build_with(HttpClient::new())
            .unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint, "{host}");
        let err = OAuth2Provider::password(
            HttpClient::new(),
            format!("{base}{PORTSIP_TOKEN_PATH}"),
            USER,
            PASSWORD,
        )
        .build()
        .unwrap_err();
        assert_eq!(err.kind(), BuildErrorKind::InsecureEndpoint, "{host}");
    }
    // Without the dot, and with https, it is fine.
    assert!(
        PortSip::new(format!("http://localhost:{port}"), USER, PASSWORD)
            .build_with(HttpClient::new())
            .is_ok()
    );
    assert!(
        PortSip::new("https://localhost.:8887", USER, PASSWORD)
            .build_with(HttpClient::new())
            .is_ok()
    );
    assert_eq!(server.counts().token_requests, 0);
}

/// Access tokens a server might send that are not `b64token`s, and would split or extend
/// the `Authorization` header.
const NOT_B64TOKEN: [&str; 9] = [
    "abc, Basic Zm9vOmJhcg==",
    "abc\tdef",
    " ",
    "abc def",
    "abc,def",
    "abc;def",
    "=abc",
    "abc=def",
    "\"abc\"",
];

#[tokio::test]
async fn access_tokens_that_would_split_the_header_are_refused() {
    let server = TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap();
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .api(PortSipApi::OAuth)
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider)
            .backoff(Duration::from_millis(1), Duration::from_millis(2))
            .build(),
    );
    let api = layer.clone().layer(HttpClient::new());
    for token in NOT_B64TOKEN {
        let body = json!({"access_token": token, "token_type": "Bearer", "expires_in": 60});
        server.respond_next(CannedResponse::json(StatusCode::OK, &body));
        let request = Request::get(server.url("/api/account/extensions"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let err = api.clone().oneshot(request).await.unwrap_err();
        let err = err.downcast_ref::<TokenError>().expect("a TokenError");
        assert_eq!(err.kind(), TokenErrorKind::InvalidToken, "{token:?}: {err}");
        let shown = token.trim();
        assert!(
            shown.is_empty() || !err.to_string().contains(shown),
            "{err}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.counts().api_requests, 0, "a request was sent");

    // A fixed token is checked the same way.
    for token in NOT_B64TOKEN {
        let err = BearerAuthLayer::new(StaticToken::new(token))
            .any_origin()
            .cache()
            .get()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), TokenErrorKind::InvalidToken, "{token:?}");
    }

    // What b64token allows still goes: JWTs, Base64 with padding, `~+/-._`; and so do the
    // other visible characters that do not split the header, such as `:` and `@`.
    for token in [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "Zm9vOmJhcg==",
        "a-b.c_d~e+f/g",
        "AT0123456789ABCDEF",
        "token-for-https://pbx.example.com:443",
        "user@realm",
    ] {
        let token = BearerAuthLayer::new(StaticToken::new(token))
            .any_origin()
            .cache()
            .get()
            .await
            .unwrap();
        assert!(token.header_value().is_sensitive());
    }
}

/// A token endpoint whose clock says `date` and whose tokens expire at `expires_at`.
async fn clock_skewed_endpoint(date: SystemTime, expires_at: SystemTime) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let expires_at = expires_at.duration_since(UNIX_EPOCH).unwrap().as_secs();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_: Request<Incoming>| async move {
                    let body = json!({"access_token": "skewed", "expires_at": expires_at});
                    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
                    headers.insert(DATE, httpdate::fmt_http_date(date).parse().unwrap());
                    Ok::<_, Infallible>(response)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_server_clock_years_behind_does_not_keep_a_token_for_years() {
    let day = Duration::from_secs(86_400);
    // `Date: Sat, 01 Jan 2000`, and a token that expires a minute from now.
    let year_2000 = UNIX_EPOCH + Duration::from_secs(946_684_800);
    let expires_at = SystemTime::now() + Duration::from_secs(60);
    let addr = clock_skewed_endpoint(year_2000, expires_at).await;
    let provider = OAuth2Provider::password(
        HttpClient::new(),
        format!("http://{addr}/token"),
        USER,
        PASSWORD,
    )
    .build()
    .unwrap();
    let cache = BearerAuthLayer::new(provider).any_origin().cache();
    let token = cache.get().await.unwrap();
    let life = token
        .expires_at()
        .expect("an expiry")
        .saturating_duration_since(tokio::time::Instant::now());
    assert!(life <= day + Duration::from_secs(60), "valid for {life:?}");

    // A clock a few minutes off is still corrected for.
    let ahead = SystemTime::now() + Duration::from_secs(600);
    let addr = clock_skewed_endpoint(ahead, ahead + Duration::from_secs(3600)).await;
    let provider = OAuth2Provider::password(
        HttpClient::new(),
        format!("http://{addr}/t"),
        USER,
        PASSWORD,
    )
    .build()
    .unwrap();
    let token = BearerAuthLayer::new(provider)
        .any_origin()
        .cache()
        .get()
        .await
        .unwrap();
    let life = token
        .expires_at()
        .unwrap()
        .saturating_duration_since(tokio::time::Instant::now());
    assert!(
        life <= Duration::from_secs(3600) && life > Duration::from_secs(3500),
        "{life:?}"
    );
}

#[test]
fn the_support_module_is_used() {
    let _ = support::client;
}
