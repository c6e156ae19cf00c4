//! Token stores and the change hook over a real socket, against the embedded test server:
//! a restarted process finds its token, caches sharing a store share one login and one
//! refresh per token, and single-use refresh tokens are never spent twice.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError,
    client::HttpClient,
    provider::{BoxFuture, portsip::PortSip},
    store::{MemoryStore, StoredToken, TokenChange, TokenStore},
    test_server::{TestServer, TestServerConfig},
};
use tower_bearer_auth::{TokenCache, TokenCacheBuilder};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";

async fn server(lifetime: Duration) -> TestServer {
    TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(lifetime))
        .await
        .expect("bind 127.0.0.1")
}

/// A PortSIP layer for `server`, refreshing at about half a short token's life.
fn cache(server: &TestServer) -> TokenCacheBuilder {
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build()
        .unwrap();
    TokenCache::builder(provider).jitter(Duration::from_millis(100))
}

async fn get(client: &BearerAuth<HttpClient>, server: &TestServer) -> Result<StatusCode, BoxError> {
    let request = Request::get(server.url(API)).body(Full::<Bytes>::default())?;
    Ok(client.clone().oneshot(request).await?.status())
}

/// A store in a file, as a user would write one.
struct FileStore(PathBuf);

impl TokenStore for FileStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(async move {
            match tokio::fs::read_to_string(&self.0).await {
                Ok(json) => Ok(Some(StoredToken::from_json(&json)?)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async move {
            tokio::fs::write(&self.0, token.to_json()).await?;
            Ok(true)
        })
    }
}

#[tokio::test]
async fn a_restarted_process_finds_its_token_in_the_store() {
    let server = server(Duration::from_secs(3600)).await;
    let path = std::env::temp_dir().join(format!("tower-bearer-auth-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);

    let first = BearerAuthLayer::new(cache(&server).store(FileStore(path.clone())).build());
    let client = first.layer(HttpClient::new());
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    let token = first.cache().token().unwrap();
    drop((first, client));
    assert_eq!(server.counts().password_grants, 1);

    // The file holds the token (in plain text, as documented).
    let stored = StoredToken::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stored.token().unwrap().access_token(), token.access_token());

    // "Restart": a new cache with the same store sends the stored token without logging in.
    let second = BearerAuthLayer::new(cache(&server).store(FileStore(path.clone())).build());
    let client = second.layer(HttpClient::new());
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(
        server.counts().password_grants,
        1,
        "no login after the restart"
    );
    assert_eq!(server.counts().token_requests, 1);
    assert_eq!(
        second.cache().token().unwrap().access_token(),
        token.access_token()
    );

    // A clean logout leaves no token in the store, only a revoked record: the next start logs
    // in.
    second.cache().revoke().await.unwrap();
    let record = StoredToken::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(record.is_revoked() && record.token().is_none());
    let third = BearerAuthLayer::new(cache(&server).store(FileStore(path.clone())).build());
    let client = third.layer(HttpClient::new());
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(server.counts().password_grants, 2);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn an_expired_stored_token_is_not_used() {
    let server = server(Duration::from_secs(1)).await;
    let store = MemoryStore::new();
    let first = BearerAuthLayer::new(cache(&server).store(store.clone()).build());
    first.cache().get().await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let second = BearerAuthLayer::new(cache(&server).store(store.clone()).build());
    let client = second.layer(HttpClient::new());
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    // The stored refresh token is the newest one: it is used rather than the password.
    assert_eq!(server.counts().refresh_grants, 1);
    assert_eq!(server.counts().password_grants, 1);
    assert_eq!(server.counts().expired_token_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_sharing_a_store_refresh_each_token_once() {
    let server = server(Duration::from_secs(1)).await;
    let store = MemoryStore::new();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            BearerAuthLayer::new(cache(&server).store(store.clone()).build())
                .layer(HttpClient::new())
        })
        .collect();

    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..4 {
            let (client, url) = (client.clone(), server.url(API));
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                while tokio::time::Instant::now() < until {
                    let request = Request::get(&url).body(Full::<Bytes>::default()).unwrap();
                    let status = client.clone().oneshot(request).await.unwrap().status();
                    assert_eq!(status, StatusCode::OK);
                    ok += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ok
            }));
        }
    }
    let mut sent = 0;
    for task in tasks {
        sent += task.await.unwrap();
    }
    // Let a refresh under way finish, so every token counted is saved.
    for client in &clients {
        client.cache().get().await.unwrap();
    }

    assert!(sent > 100, "{sent} requests");
    assert_eq!(
        server.counts().password_grants,
        1,
        "one login for all three caches"
    );
    assert_eq!(
        server.counts().reused_refresh_tokens,
        0,
        "no refresh token spent twice"
    );
    assert_eq!(server.counts().failed_token_requests, 0);
    assert_eq!(server.counts().expired_token_requests, 0);
    // 1 s tokens refreshed at about half their life: about 8 tokens in 4 s, whichever cache
    // refreshed them. Three caches refreshing on their own would need three times as many.
    let refreshes = server.counts().refresh_grants;
    assert!((5..=10).contains(&refreshes), "{refreshes} refreshes");
    assert_eq!(
        store.get().unwrap().version() as usize,
        1 + refreshes,
        "every token was saved once"
    );
}

#[tokio::test]
async fn caches_sharing_a_store_recover_from_a_revocation_with_one_login() {
    let server = server(Duration::from_secs(3600)).await;
    let store = MemoryStore::new();
    let a =
        BearerAuthLayer::new(cache(&server).store(store.clone()).build()).layer(HttpClient::new());
    let b =
        BearerAuthLayer::new(cache(&server).store(store.clone()).build()).layer(HttpClient::new());
    assert_eq!(get(&a, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(get(&b, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(server.counts().password_grants, 1);

    server.revoke_all();
    // Each cache is refused once and replays its request (the default): the first to recover
    // logs in, the other finds its token in the store.
    assert_eq!(get(&a, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(get(&b, &server).await.unwrap(), StatusCode::OK);
    assert_eq!(server.counts().unauthorized, 2);
    assert_eq!(
        server.counts().password_grants,
        2,
        "one login after the revocation"
    );
    assert_eq!(
        server.counts().refresh_grants,
        1,
        "one refused refresh before it"
    );
}

#[tokio::test]
async fn the_hook_sees_every_new_token_and_the_logout() {
    let server = server(Duration::from_secs(2)).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = BearerAuthLayer::new(
        cache(&server)
            .on_token_change({
                let seen = seen.clone();
                move |change: TokenChange<'_>| {
                    let entry = change.token().map(|t| {
                        (
                            t.version(),
                            t.token().unwrap().access_token().to_owned(),
                            format!("{t:?}"),
                        )
                    });
                    seen.lock().unwrap().push(entry);
                }
            })
            .build(),
    );
    let client = layer.layer(HttpClient::new());
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(&client, &server).await.unwrap(), StatusCode::OK); // starts the refresh
    layer.cache().get().await.unwrap(); // waits for it
    layer.cache().revoke().await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "login, refresh, logout");
    let (first, second) = (seen[0].as_ref().unwrap(), seen[1].as_ref().unwrap());
    assert!(first.0 < second.0, "versions grow");
    assert_ne!(first.1, second.1, "a new token each time");
    for (_, token, debug) in [first, second] {
        assert!(!debug.contains(token.as_str()), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }
    assert!(seen[2].is_none());
    assert_eq!(server.counts().refresh_grants, 1);
}
