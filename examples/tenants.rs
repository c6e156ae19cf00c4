//! Three PBXs, one client: `TenantsLayer` picks each request's token by the PBX it goes to.
//!
//! Starts three embedded PortSIP-compatible servers on 127.0.0.1, each with its own password
//! and 3-second tokens, and sends requests spread across them for a few seconds through one
//! client. Each PBX's provider is built on its first request by a factory that reads the
//! password from a "vault" (a map here); one line is printed per login and per refresh, per
//! PBX, and at the end the keys and their token state.
//!
//! ```sh
//! cargo run --example tenants
//! cargo run --example tenants -- --duration 8
//! ```
//!
//! Exits 0 only when every request succeeded with exactly one login per PBX.

use std::{
    collections::HashMap,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin, TokenResponse,
    client::HttpClient,
    provider::{Call, TokenProviderExt, portsip::PortSip},
    tenants::{TenantKey, TenantsLayer},
    test_server::{TestServer, TestServerConfig},
};

const API: &str = "/api/account/extensions";

/// Prints a line for a login or refresh of the PBX `name`.
fn print(name: &str, started: Instant, call: Call, result: Result<&TokenResponse, &BoxError>) {
    let at = started.elapsed().as_secs_f64();
    let what = match call {
        Call::Login => "login",
        _ => "refresh",
    };
    match result {
        Ok(token) => println!(
            "{at:6.2}s  {name:<6} {what:<7} ok, expires in {:?}",
            token.expires_in().unwrap_or_default()
        ),
        Err(error) => println!("{at:6.2}s  {name:<6} {what:<7} failed: {error}"),
    }
}

fn duration_arg() -> Result<Duration, String> {
    let mut args = std::env::args().skip(1);
    let mut secs = 7.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--duration" => {
                secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--duration takes a number of seconds")?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: tenants [--duration SECS]"
                ));
            }
        }
    }
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    let duration = match duration_arg() {
        Ok(d) => d,
        Err(usage) => {
            eprintln!("{usage}");
            return Ok(ExitCode::from(2));
        }
    };
    let started = Instant::now();

    // Three PBXs, each with its own password, and the vault that knows them.
    let mut pbxs = Vec::new();
    let mut vault = HashMap::new();
    for name in ["pbx-a", "pbx-b", "pbx-c"] {
        let password = format!("{name}-s3cret");
        let config = TestServerConfig::new("admin", &password).lifetime(Duration::from_secs(3));
        let server = TestServer::start(config).await?;
        let origin = Origin::try_from(server.base_url().as_str())?;
        println!("{name} listens at {origin}");
        vault.insert(origin, (name.to_owned(), password));
        pbxs.push(server);
    }
    let vault = Arc::new(vault);

    // One client. The factory runs once per PBX, on its first request.
    let http = HttpClient::new();
    let factory_http = http.clone();
    let layer = TenantsLayer::new(move |key: &TenantKey| {
        let entry = vault.get(key.origin()).cloned();
        let (base, http) = (key.origin().to_string(), factory_http.clone());
        async move {
            let (name, password) = entry.ok_or("no credentials for this PBX")?;
            // `inspect` forwards the rest: the token stays bound to this PBX.
            let provider = PortSip::new(base, "admin", password)
                .build_with(http)?
                .inspect(move |call, result, _| print(&name, started, call, result));
            Ok::<_, BoxError>(provider)
        }
    })
    // Settings for every PBX's cache: refresh a second before expiry, give or take 200 ms.
    .configure(|_, cache| {
        let cache = cache
            .refresh_ahead(Duration::from_secs(1))
            .jitter(Duration::from_millis(200));
        BearerAuthLayer::new(cache.build())
    })
    .max_tenants(100)
    .idle_timeout(Duration::from_secs(600));
    let caches = layer.caches();
    let client = ServiceBuilder::new().layer(layer).service(http);

    // Requests spread across the PBXs: four at a time, one round every 100 ms.
    let mut sent = 0;
    let mut failed = 0;
    while started.elapsed() < duration {
        let mut round = tokio::task::JoinSet::new();
        for i in 0..4 {
            let server = &pbxs[(sent + i) % pbxs.len()];
            let request = Request::get(server.url(API)).body(Full::<Bytes>::default())?;
            round.spawn(client.clone().oneshot(request));
        }
        sent += 4;
        while let Some(result) = round.join_next().await {
            match result? {
                Ok(response) if response.status() == StatusCode::OK => {}
                Ok(response) => {
                    failed += 1;
                    println!("request answered {}", response.status());
                }
                Err(error) => {
                    failed += 1;
                    println!("request failed: {error}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("{sent} requests, {failed} failed; the keys:");
    let mut tenants = caches.tenants();
    tenants.sort_by_key(|t| t.key.to_string());
    for tenant in &tenants {
        println!(
            "  {}: token {}",
            tenant.key,
            if tenant.has_token { "cached" } else { "none" }
        );
    }
    let logins: Vec<usize> = pbxs.iter().map(|s| s.counts().password_grants).collect();
    println!("logins per PBX: {logins:?}");
    Ok(if failed == 0 && logins.iter().all(|&n| n == 1) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
