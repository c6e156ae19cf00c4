//! reqwest clients that get their bearer tokens from this crate, against an embedded
//! PortSIP-compatible server on 127.0.0.1 (tokens live 3 s here, refresh tokens rotate):
//!
//! 1. a `reqwest_middleware` client with `BearerAuthMiddleware`, sending GETs and JSON POSTs
//!    with reqwest's own builder while the token is refreshed ahead of its expiry, then
//!    carrying on, without a single `401` reaching it, after the server revokes every token;
//! 2. the same `reqwest::Client` below `BearerAuthLayer`, through `ReqwestService`;
//! 3. a wrong password, and the typed error it gives.
//!
//! Logins and refreshes go through the same `reqwest::Client` as the requests.
//!
//! ```sh
//! cargo run --example reqwest
//! cargo run --example reqwest -- --duration 10
//! ```
//!
//! Exits 0 only when every request succeeded and the wrong password was reported as such.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use http::Request;
use reqwest_middleware::ClientBuilder;
use serde_json::json;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError,
    provider::portsip::PortSip,
    reqwest::{BearerAuthMiddleware, ReqwestService, token_error},
    test_server::{TestServer, TestServerConfig},
};

const PATH: &str = "/api/account/extensions";

fn duration() -> Result<Duration, String> {
    let mut args = std::env::args().skip(1);
    let mut duration = Duration::from_secs(4);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                let secs = args.next().ok_or("--duration needs a value")?;
                let secs: u64 = secs.parse().map_err(|_| format!("bad --duration {secs}"))?;
                duration = Duration::from_secs(secs);
            }
            other => {
                return Err(format!(
                    "unknown argument {other}\nusage: reqwest [--duration SECS]"
                ));
            }
        }
    }
    Ok(duration)
}

#[tokio::main]
async fn main() -> ExitCode {
    let duration = match duration() {
        Ok(duration) => duration,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(duration).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(duration: Duration) -> Result<bool, BoxError> {
    let config = TestServerConfig::new("admin", "s3cret").lifetime(Duration::from_secs(3));
    let server = TestServer::start(config).await?;
    let base_url = server.base_url();
    println!("embedded PortSIP-compatible server at {base_url}");

    // One reqwest client for everything: its pool, TLS and proxy settings serve the logins too.
    let http = reqwest::Client::new();
    let provider = PortSip::new(base_url.as_str(), "admin", "s3cret")
        .build_with(ReqwestService::new(http.clone()))?;
    // The layer holds the cache's settings; the middleware and the layer share its cache.
    let layer = BearerAuthLayer::new(provider);
    let client = ClientBuilder::new(http.clone())
        .with(BearerAuthMiddleware::new(layer.cache()).any_origin())
        .build();

    // 1. reqwest's builder, as ever.
    let url = server.url(PATH);
    let start = Instant::now();
    let (mut sent, mut failed, mut revoked) = (0, 0, false);
    while start.elapsed() < duration {
        if !revoked && start.elapsed() >= duration / 2 {
            server.revoke_all();
            revoked = true;
            println!(
                "{:>6} ms  the server revokes every token",
                start.elapsed().as_millis()
            );
        }
        let request = if sent % 2 == 0 {
            client.get(&url)
        } else {
            client.post(&url).json(&json!({ "extension": 100 + sent }))
        };
        let status = request.send().await?.status();
        sent += 1;
        if !status.is_success() {
            failed += 1;
        }
        if sent % 10 == 1 || !status.is_success() {
            println!(
                "{:>6} ms  request {sent:>3}: {status}",
                start.elapsed().as_millis()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counts = server.counts();
    println!(
        "middleware: {sent} requests, {failed} failed; the server saw {} logins, {} refreshes, \
         {} refused token requests (refreshes with a revoked refresh token), {} 401s (each \
         replayed with a new token)",
        counts.password_grants,
        counts.refresh_grants,
        counts.failed_token_requests,
        counts.unauthorized,
    );

    // 2. The same client below the tower layer, for tower code.
    let pbx = layer.layer(ReqwestService::new(http));
    let request = Request::get(server.url(PATH)).body(String::new())?;
    let status = pbx.oneshot(request).await?.status();
    println!("tower layer over ReqwestService: {status}");
    let tower_ok = status.is_success();

    // 3. A wrong password fails the request, before it is sent, with a typed error.
    let wrong = PortSip::new(base_url.as_str(), "admin", "wrong password")
        .build_with(ReqwestService::default())?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(BearerAuthLayer::new(wrong).cache()).any_origin())
        .build();
    let rejected = match client.get(&url).send().await {
        Ok(response) => {
            println!("unexpected: {}", response.status());
            false
        }
        Err(error) => match token_error(&error) {
            Some(token) => {
                println!(
                    "wrong password: {token} (credentials rejected: {})",
                    token.credentials_rejected()
                );
                token.credentials_rejected()
            }
            None => {
                println!("unexpected error: {error}");
                false
            }
        },
    };
    Ok(failed == 0 && tower_ok && rejected)
}
