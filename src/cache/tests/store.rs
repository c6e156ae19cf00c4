//! Caches sharing a store: one login and one refresh between them, and a store that lags or
//! fails.

use super::*;

fn shared_cache(store: &crate::store::MemoryStore) -> (TokenCache, Arc<Counting>) {
    shared_cache_with_hook(store, None)
}

fn shared_cache_with_hook(
    store: &crate::store::MemoryStore,
    on_change: Option<OnChange>,
) -> (TokenCache, Arc<Counting>) {
    let provider = Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    };
    configured(
        provider,
        Config::default(),
        Some(Arc::new(store.clone())),
        on_change,
    )
}

#[tokio::test]
async fn caches_sharing_a_store_share_one_login_and_one_refresh() {
    let store = crate::store::MemoryStore::new();
    let (a, pa) = shared_cache(&store);
    let (b, pb) = shared_cache(&store);

    assert_eq!(header(&a).await.unwrap(), "Bearer login-1");
    assert_eq!(
        header(&b).await.unwrap(),
        "Bearer login-1",
        "adopted from the store"
    );
    assert_eq!(pb.logins.load(Ordering::SeqCst), 0);
    assert_eq!(store.get().unwrap().version(), 1);

    // The server refused the token: `a` refreshes (the stored token is the refused one)…
    a.invalidate();
    assert_eq!(header(&a).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(pa.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(store.get().unwrap().version(), 2);
    // …and `b`, refused too, finds `a`'s new token instead of spending the refresh token.
    b.invalidate();
    assert_eq!(header(&b).await.unwrap(), "Bearer refresh-1-from-rt-1");
    assert_eq!(pb.refreshes.load(Ordering::SeqCst), 0);
    assert_eq!(pb.logins.load(Ordering::SeqCst), 0);

    // `b` refreshes next with the newest refresh token, which `a` left in the store.
    b.invalidate();
    header(&b).await.unwrap();
    assert_eq!(pb.refreshes.load(Ordering::SeqCst), 1);
    assert_eq!(store.get().unwrap().version(), 3);
}

#[tokio::test]
async fn revoke_clears_the_store_and_tells_the_hook() {
    let store = crate::store::MemoryStore::new();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook: OnChange = Arc::new({
        let seen = seen.clone();
        move |change: TokenChange<'_>| {
            let entry = match change {
                TokenChange::Login(t) => format!("login {}", t.version()),
                TokenChange::Refresh(t) => format!("refresh {}", t.version()),
                TokenChange::Store(t) => format!("store {}", t.version()),
                TokenChange::Invalidated => "invalidated".to_owned(),
                TokenChange::Revoked => "revoked".to_owned(),
            };
            seen.lock().unwrap().push(entry)
        }
    });
    let (cache, _) = shared_cache_with_hook(&store, Some(hook));
    header(&cache).await.unwrap();
    cache.invalidate();
    header(&cache).await.unwrap();
    cache.revoke().await.unwrap();
    assert!(store.get().unwrap().token().is_none(), "no token stored");
    assert_eq!(
        *seen.lock().unwrap(),
        ["login 1", "invalidated", "refresh 2", "revoked"]
    );
}

/// A store that keeps answering with version 1, as one whose saves lag behind.
struct Lagging;

impl TokenStore for Lagging {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        let old = TokenResponse::new("old")
            .with_refresh_token("rt-old")
            .with_expires_in(Duration::from_secs(3600));
        Box::pin(async move { Ok(Some(StoredToken::new(1, old))) })
    }
    fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async { Ok(true) })
    }
}

#[tokio::test]
async fn an_older_stored_token_is_never_adopted() {
    let provider = Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    };
    let (cache, p) = configured(provider, Config::default(), Some(Arc::new(Lagging)), None);
    assert_eq!(
        header(&cache).await.unwrap(),
        "Bearer old",
        "newer than nothing"
    );
    cache.invalidate();
    assert_eq!(
        header(&cache).await.unwrap(),
        "Bearer refresh-1-from-rt-old"
    );
    // The store still holds version 1; the cache's token is version 2.
    cache.invalidate();
    assert_eq!(
        header(&cache).await.unwrap(),
        "Bearer refresh-2-from-rt-old"
    );
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 2);
}

/// A store whose every call fails.
struct Broken;

impl TokenStore for Broken {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
    fn save<'a>(&'a self, _: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
    fn lock(&self) -> BoxFuture<'_, Result<crate::store::StoreLock, BoxError>> {
        Box::pin(async { Err("store down".into()) })
    }
}

#[tokio::test]
async fn a_broken_store_costs_refreshes_not_tokens() {
    let provider = Counting {
        lifetime: Some(Duration::from_secs(3600)),
        ..Counting::default()
    };
    let (cache, p) = configured(provider, Config::default(), Some(Arc::new(Broken)), None);
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-1");
    // Without the lock a shared refresh token is not spent: the cache logs in.
    cache.invalidate();
    assert_eq!(header(&cache).await.unwrap(), "Bearer login-2");
    assert_eq!(p.refreshes.load(Ordering::SeqCst), 0);
    // Clearing the store is part of a clean logout: its failure is reported.
    let err = cache.revoke().await.unwrap_err();
    assert_eq!(err.kind(), TokenErrorKind::Revoke);
    assert!(
        cache.token().is_none(),
        "the token is forgotten all the same"
    );
}
