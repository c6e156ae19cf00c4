//! `RedisStore` against a real `redis-server`, which each test starts on a free loopback port.
//!
//! They need the `redis-server` binary on the PATH (`.ci/run` installs it), and fail with a
//! message saying how to install it when it cannot be started: a test that did not run never
//! passes.
//!
//! The fleet tests run caches in this process and in a second process: this test binary
//! started again to run only the ignored test `fleet_member`, which reads its orders from
//! environment variables.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, TokenResponse,
    client::HttpClient,
    provider::portsip::PortSip,
    store::{RedisStore, StoredToken, TokenStore},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::Redis;
use tower_bearer_auth::{TokenCache, TokenCacheBuilder};

/// The raw value of `key`, read with a connection of the test's own.
fn raw_value(redis: &Redis, key: &str) -> Option<String> {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut connection).unwrap()
}

fn token(version: u64, access: &str) -> StoredToken {
    StoredToken::new(
        version,
        TokenResponse::new(access).with_refresh_token(format!("rt-{access}")),
    )
}

#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test]
async fn saves_only_newer_versions_and_clears_without_forgetting_them() {
    let redis = Redis::require();
    let store = redis.store("versions");
    assert!(store.load().await.unwrap().is_none());

    assert!(store.save(&token(2, "two")).await.unwrap());
    assert!(!store.save(&token(1, "one")).await.unwrap(), "older");
    assert!(
        !store.save(&token(2, "again")).await.unwrap(),
        "same version"
    );
    let loaded = store.load().await.unwrap().unwrap();
    assert_eq!(
        (loaded.version(), loaded.token().unwrap().access_token()),
        (2, "two")
    );
    assert_eq!(loaded.token().unwrap().refresh_token(), Some("rt-two"));

    // A revoke saves a revoked record: no token, and the versions go on from it.
    assert!(store.save(&StoredToken::revoked(3)).await.unwrap());
    assert!(store.load().await.unwrap().unwrap().is_revoked());
    assert!(
        !store.save(&token(2, "late")).await.unwrap(),
        "a late holder"
    );
    assert!(
        !store.save(&token(3, "late")).await.unwrap(),
        "at the revoked version"
    );
    assert!(store.save(&token(4, "four")).await.unwrap());

    // Another name is another account.
    assert!(redis.store("other").load().await.unwrap().is_none());
}

#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test]
async fn the_lock_is_exclusive_expires_and_is_released_by_its_holder_only() {
    let redis = Redis::require();
    let store = redis.store("lock").lease(Duration::from_millis(600));
    let (_, lock_key) = store.keys();
    let lock_key = lock_key.to_owned();

    let held = store.lock().await.unwrap();
    let owner = raw_value(&redis, &lock_key).expect("the lock key is set");
    // A second taker waits for the release.
    let started = Instant::now();
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.lock().await.map(|l| (l, Instant::now())) }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiting.is_finished());
    drop(held);
    let (second, taken_at) = waiting.await.unwrap().unwrap();
    assert!(taken_at - started < Duration::from_millis(500));
    assert_ne!(raw_value(&redis, &lock_key).unwrap(), owner, "a new owner");

    // A holder that never releases (it crashed) blocks the others for the lock's life only.
    std::mem::forget(second);
    let started = Instant::now();
    let third = store.lock().await.unwrap();
    let waited = started.elapsed();
    assert!(waited <= Duration::from_millis(700), "waited {waited:?}");
    drop(third);

    // Held past its life by someone else, the lock makes takers give up.
    let stubborn = redis.store("lock").lease(Duration::from_secs(5));
    let _held = stubborn.lock().await.unwrap();
    let err = store.lock().await.unwrap_err();
    assert!(err.to_string().contains("lock"), "{err}");
}

#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test]
async fn the_store_holds_what_its_documentation_says() {
    let redis = Redis::require();
    let store = redis.store("layout");
    assert_eq!(
        store.keys(),
        (
            "tower-bearer-auth:{layout}:token",
            "tower-bearer-auth:{layout}:lock"
        )
    );
    store.save(&token(1, "plain")).await.unwrap();
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let (version, json): (u64, String) = redis::cmd("HMGET")
        .arg("tower-bearer-auth:{layout}:token")
        .arg("version")
        .arg("token")
        .query(&mut connection)
        .unwrap();
    assert_eq!(version, 1);
    assert!(
        json.contains("\"access_token\":\"plain\""),
        "unencrypted: {json}"
    );
    // Debug output names the keys and hides the tokens.
    let debug = format!("{store:?} {:?}", store.load().await.unwrap());
    assert!(!debug.contains("plain"), "{debug}");
}

#[tokio::test]
async fn an_unreachable_redis_costs_a_login_not_the_request() {
    // Nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = TestServer::start(TestServerConfig::new(USER, PASSWORD))
        .await
        .unwrap();
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}/"), "down").unwrap();
    let client = BearerAuthLayer::new(cache(&server).store(store).build()).layer(HttpClient::new());
    let status = get(&client, &server.url(API)).await;
    assert_eq!(status, StatusCode::OK);
    let cache = client.cache();
    cache.invalidate();
    assert_eq!(get(&client, &server.url(API)).await, StatusCode::OK);
    assert_eq!(
        server.counts().password_grants,
        2,
        "no lock: log in, don't refresh"
    );
    assert_eq!(server.counts().refresh_grants, 0);
}

fn cache(server: &TestServer) -> TokenCacheBuilder {
    cache_for(&server.base_url())
}

fn cache_for(base_url: &str) -> TokenCacheBuilder {
    let provider = PortSip::new(base_url, USER, PASSWORD).build().unwrap();
    TokenCache::builder(provider)
        .refresh_ahead(Duration::from_millis(300))
        .jitter(Duration::from_millis(100))
}

async fn get(client: &BearerAuth<HttpClient>, url: &str) -> StatusCode {
    let request = Request::get(url).body(Full::<Bytes>::default()).unwrap();
    client.clone().oneshot(request).await.unwrap().status()
}

/// Sends requests through `client` until `until`, a few at a time; returns how many.
async fn drive(client: &BearerAuth<HttpClient>, url: &str, until: Instant) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while Instant::now() < until {
                assert_eq!(get(&client, &url).await, StatusCode::OK);
                sent += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            sent
        }));
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    sent
}

/// The second process of the fleet tests: runs only when started by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by the fleet tests as a second process"]
async fn fleet_member() {
    let (Ok(redis), Ok(base_url)) = (
        std::env::var("FLEET_REDIS_URL"),
        std::env::var("FLEET_BASE_URL"),
    ) else {
        return;
    };
    let secs: f64 = std::env::var("FLEET_SECS").unwrap().parse().unwrap();
    let ttl: u64 = std::env::var("FLEET_LOCK_TTL_MS").unwrap().parse().unwrap();
    let store = RedisStore::new(&redis, "fleet")
        .unwrap()
        .lease(Duration::from_millis(ttl));
    let client =
        BearerAuthLayer::new(cache_for(&base_url).store(store).build()).layer(HttpClient::new());
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let sent = drive(&client, &format!("{base_url}{API}"), until).await;
    // A refresh under way is finished (and saved) before the process exits.
    client.cache().get().await.unwrap();
    println!("fleet member sent {sent} requests");
}

/// Starts the second process.
fn spawn_member(redis: &Redis, server: &TestServer, secs: f64, lock_ttl: Duration) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["fleet_member", "--exact", "--ignored", "--nocapture"])
        .env("FLEET_REDIS_URL", &redis.url)
        .env("FLEET_BASE_URL", server.base_url())
        .env("FLEET_SECS", secs.to_string())
        .env("FLEET_LOCK_TTL_MS", lock_ttl.as_millis().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the second process")
}

#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_refreshes_each_token_once() {
    let redis = Redis::require();
    let server =
        TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(1)))
            .await
            .unwrap();
    const SECS: f64 = 30.0;
    let lock_ttl = Duration::from_secs(5);
    let member = spawn_member(&redis, &server, SECS, lock_ttl);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            BearerAuthLayer::new(
                cache(&server)
                    .store(redis.store("fleet").lease(lock_ttl))
                    .build(),
            )
            .layer(HttpClient::new())
        })
        .collect();
    let until = Instant::now() + Duration::from_secs_f64(SECS);
    let url = server.url(API);
    let mut sent = 0;
    let runs: Vec<_> = clients
        .iter()
        .map(|c| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { drive(&c, &url, until).await })
        })
        .collect();
    for run in runs {
        sent += run.await.unwrap();
    }
    // Let a refresh under way finish, so every token counted is saved.
    for client in &clients {
        client.cache().get().await.unwrap();
    }
    let output = tokio::task::spawn_blocking(move || member.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "the second process failed");
    let member_out = String::from_utf8_lossy(&output.stdout);
    let member_out = member_out
        .lines()
        .find(|l| l.starts_with("fleet member sent"))
        .unwrap_or_else(|| panic!("no report from the second process: {member_out}"));

    let stored = redis.store("fleet").load().await.unwrap().unwrap();
    let refreshes = server.counts().refresh_grants;
    println!(
        "{sent} requests here, {member_out}; {} logins, {refreshes} refreshes, {} tokens saved",
        server.counts().password_grants,
        stored.version()
    );
    assert_eq!(
        server.counts().password_grants,
        1,
        "one login for the whole fleet"
    );
    assert_eq!(
        server.counts().reused_refresh_tokens,
        0,
        "no refresh token spent twice"
    );
    assert_eq!(server.counts().failed_token_requests, 0);
    assert_eq!(
        server.counts().expired_token_requests,
        0,
        "no request with an expired token"
    );
    assert_eq!(server.counts().unauthorized, 0);
    // One refresh per token: every token the fleet got was saved once, and none refreshed
    // twice. 1 s tokens refreshed 0.3 to 0.4 s before expiry: about 45 in 30 s.
    assert_eq!(stored.version() as usize, 1 + refreshes);
    assert!((30..=60).contains(&refreshes), "{refreshes} refreshes");
}

#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_lock_holder_blocks_the_others_no_longer_than_the_lock() {
    let redis = Redis::require();
    let server =
        TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(Duration::from_secs(2)))
            .await
            .unwrap();
    let lock_ttl = Duration::from_secs(2);
    let lock_key = redis.store("fleet").keys().1.to_owned();

    // A token in the store, which the second process adopts without logging in.
    let seed = BearerAuthLayer::new(
        cache(&server)
            .store(redis.store("fleet").lease(lock_ttl))
            .build(),
    );
    seed.cache().get().await.unwrap();
    drop(seed);
    let mut member = spawn_member(&redis, &server, 20.0, lock_ttl);
    // Its refresh, when due, meets a slow token endpoint: it holds the lock meanwhile.
    server.set_token_delay(Duration::from_secs(4));
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.counts().token_requests < 2 || raw_value(&redis, &lock_key).is_none() {
        assert!(
            Instant::now() < deadline,
            "the second process never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.counts().password_grants,
        1,
        "the second process adopted the token"
    );
    // Kill it mid-refresh, lock held.
    member.kill().unwrap();
    member.wait().unwrap();
    let killed = Instant::now();
    server.set_token_delay(Duration::ZERO);

    let client = BearerAuthLayer::new(
        cache(&server)
            .store(redis.store("fleet").lease(lock_ttl))
            .build(),
    )
    .layer(HttpClient::new());
    assert_eq!(get(&client, &server.url(API)).await, StatusCode::OK);
    let recovered = killed.elapsed();
    println!("recovered {recovered:?} after the kill");
    assert!(
        recovered <= lock_ttl + Duration::from_millis(500),
        "recovered after {recovered:?}"
    );
    // Saved before the request got it.
    assert!(redis.store("fleet").load().await.unwrap().is_some());
}
