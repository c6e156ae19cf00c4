//! The embedded test server under abuse: a client that sends part of a request and stops
//! is disconnected, and a long run of logins does not grow its request log without bound.
#![cfg(feature = "test-server")]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header::CONTENT_TYPE};
use http_body_util::Full;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tower_bearer_auth::{
    provider::portsip::{PORTSIP_CLIENT_ID, PORTSIP_TOKEN_PATH},
    test_server::{
        DEFAULT_HEADER_READ_TIMEOUT, MAX_LOG_RECORDS, MAX_TOKENS, TestServer, TestServerConfig,
    },
};

/// Reads until the server closes the connection; returns how long that took, or `None` if it
/// is still open after `limit`.
async fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_halfway_through_its_headers_is_disconnected() {
    let server = TestServer::start(TestServerConfig::new("admin", "pw"))
        .await
        .unwrap();
    let mut stuck = TcpStream::connect(server.addr()).await.unwrap();
    stuck
        .write_all(b"POST /api/auth/sign_in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .await
        .unwrap();
    // A connection that sends nothing at all.
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let limit = DEFAULT_HEADER_READ_TIMEOUT + Duration::from_secs(10);
    let (stuck, silent) = tokio::join!(
        time_to_close(&mut stuck, limit),
        time_to_close(&mut silent, limit)
    );
    for closed in [stuck, silent] {
        let closed = closed.expect("the server still waits for the headers");
        assert!(
            closed >= DEFAULT_HEADER_READ_TIMEOUT / 2,
            "closed after {closed:?}"
        );
    }

    // Meanwhile the server answers others.
    let client = support::client();
    let response = client
        .request(
            Request::get(server.url("/api/x"))
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_header_read_timeout_can_be_set() {
    let timeout = Duration::from_millis(300);
    let config = TestServerConfig::new("admin", "pw").header_read_timeout(timeout);
    let server = TestServer::start(config).await.unwrap();
    let mut stuck = TcpStream::connect(server.addr()).await.unwrap();
    stuck.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let closed = time_to_close(&mut stuck, Duration::from_secs(5)).await;
    let closed = closed.expect("still open after 5 s");
    assert!(
        closed >= timeout / 2 && closed < Duration::from_secs(3),
        "{closed:?}"
    );
}

#[tokio::test]
async fn a_long_run_of_logins_keeps_the_request_log_bounded() {
    let server = TestServer::start(TestServerConfig::new("admin", "pw"))
        .await
        .unwrap();
    let client = support::client();
    let body =
        format!("grant_type=password&username=admin&password=pw&client_id={PORTSIP_CLIENT_ID}");
    let logins = 3000;
    for _ in 0..logins {
        let request = Request::post(server.url(PORTSIP_TOKEN_PATH))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(server.counts().password_grants, logins);
    let log = server.token_request_log();
    assert!(log.len() <= MAX_LOG_RECORDS, "{} records kept", log.len());
    assert!(!log.is_empty());
    // The newest records are kept.
    assert_eq!(log.last().unwrap().status, 200);
    assert!(
        server.live_tokens() <= MAX_TOKENS,
        "{} live tokens",
        server.live_tokens()
    );
}
