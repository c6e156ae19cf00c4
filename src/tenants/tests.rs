//! The hot path's promises, counted: a known key takes no lock and clones no cache handle,
//! and evicted keys leave the map of spellings.

use std::{cell::Cell, convert::Infallible, sync::Arc, time::Duration};

use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};

use super::{TenantCaches, TenantKey, TenantsLayer, registry, spellings::SPELLINGS_PER_KEY};
use crate::{
    BoxError, cache::TokenCache, origin::Origin, provider::provider_fn, token::TokenResponse,
};

fn layer() -> TenantsLayer {
    TenantsLayer::new(|_: &TenantKey| async {
        Ok::<_, BoxError>(provider_fn(|| async {
            Ok::<_, BoxError>(TokenResponse::new("t").with_expires_in(Duration::from_secs(3600)))
        }))
    })
}

fn host(n: usize) -> String {
    format!("https://pbx-{n}.example.com")
}

fn get(n: usize) -> Request<()> {
    Request::get(format!("{}/api", host(n))).body(()).unwrap()
}

fn key(n: usize) -> TenantKey {
    TenantKey::new(Origin::try_from(host(n).as_str()).unwrap(), None)
}

/// How many times this thread took a key map's lock.
fn locks() -> usize {
    registry::tests::LOCKS.with(Cell::get)
}

fn cache(caches: &TenantCaches, n: usize) -> TokenCache {
    caches.cache(&key(n)).expect("the key is kept")
}

#[tokio::test]
async fn a_known_key_takes_no_lock_and_clones_no_handle() {
    const KEYS: usize = 3;
    let layer = layer();
    let caches = layer.caches();
    // Filled once the keys exist: the inner service reads, while each request is sent, how
    // many handles its key's cache has.
    let handles: Arc<std::sync::OnceLock<Vec<TokenCache>>> = Arc::default();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let inner = {
        let (handles, seen) = (handles.clone(), seen.clone());
        service_fn(move |req: Request<()>| {
            if let Some(handles) = handles.get() {
                let n: usize = req.uri().host().unwrap()["pbx-".len()..]
                    .split('.')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                seen.lock().unwrap().push(handles[n].handles());
            }
            async { Ok::<_, Infallible>(Response::new(())) }
        })
    };
    let mut client = layer.layer(inner);
    for n in 0..KEYS {
        // The first request makes the key and adds its spelling, the second finds it.
        for _ in 0..2 {
            client.ready().await.unwrap().call(get(n)).await.unwrap();
        }
    }
    assert_eq!(caches.registry.spellings(), KEYS);
    let held: Vec<TokenCache> = (0..KEYS).map(|n| cache(&caches, n)).collect();
    let idle: Vec<usize> = held.iter().map(TokenCache::handles).collect();
    handles.set(held).ok().unwrap();

    let before = locks();
    for i in 0..300 {
        client
            .ready()
            .await
            .unwrap()
            .call(get(i % KEYS))
            .await
            .unwrap();
    }
    assert_eq!(
        locks() - before,
        0,
        "locks taken by 300 requests to known keys"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 300);
    for (i, handles) in seen.iter().enumerate() {
        assert_eq!(*handles, idle[i % KEYS], "cache handles during request {i}");
    }
}

/// A tenant id and a scope make four keys of one origin, each with its own cache and
/// spelling; requests to them take no lock either.
#[tokio::test]
async fn tenants_and_scopes_are_keys_with_spellings() {
    use super::{Scope, TenantId};

    let layer = layer();
    let caches = layer.caches();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut client = layer.layer(inner);
    let request = |i: usize| {
        let mut request = get(0);
        if i & 1 != 0 {
            request.extensions_mut().insert(TenantId::new("a"));
        }
        if i & 2 != 0 {
            request.extensions_mut().insert(Scope::new("a"));
        }
        request
    };
    for i in 0..4 {
        for _ in 0..2 {
            client
                .ready()
                .await
                .unwrap()
                .call(request(i))
                .await
                .unwrap();
        }
    }
    assert_eq!(caches.len(), 4);
    assert_eq!(caches.registry.spellings(), 4);
    let scoped = key(0).with_scope(Scope::new("a"));
    let both = TenantKey::new(key(0).origin().clone(), Some(TenantId::new("a")))
        .with_scope(Scope::new("a"));
    let caches_of = [key(0), scoped, both].map(|k| caches.cache(&k).expect("kept"));
    let ids = caches_of.map(|c| c.id());
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);

    let before = locks();
    for i in 0..300 {
        client
            .ready()
            .await
            .unwrap()
            .call(request(i % 4))
            .await
            .unwrap();
    }
    assert_eq!(
        locks() - before,
        0,
        "locks taken by 300 requests to known keys"
    );
}

#[tokio::test]
async fn evicted_keys_leave_the_map_of_spellings() {
    const KEYS: usize = 8;
    let layer = layer();
    let caches = layer.caches();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut client = layer.layer(inner);
    for n in 0..KEYS {
        for _ in 0..2 {
            client.ready().await.unwrap().call(get(n)).await.unwrap();
        }
    }
    let registry = &caches.registry;
    assert_eq!(registry.spellings(), KEYS);
    // The map refers to entries weakly: an evicted key's entry (its cache and token with it)
    // is dropped at once, on whichever thread evicts it.
    let entry = Arc::downgrade(&registry.get(&key(0)).expect("kept"));
    std::thread::spawn({
        let caches = caches.clone();
        move || assert!(caches.evict(&key(0)))
    })
    .join()
    .unwrap();
    assert_eq!(entry.strong_count(), 0, "the evicted entry is dropped");
    assert_eq!(registry.spellings(), KEYS - 1);
    assert!(caches.evict(&key(1)));
    assert_eq!(registry.spellings(), KEYS - 2);
    // An evicted key comes back as a new key, found by its spelling again.
    for _ in 0..2 {
        client.ready().await.unwrap().call(get(0)).await.unwrap();
    }
    assert_eq!(registry.spellings(), KEYS - 1);
    assert_eq!(caches.len(), KEYS - 1);
    let before = locks();
    client.ready().await.unwrap().call(get(0)).await.unwrap();
    assert_eq!(locks() - before, 0, "found by its spelling");
}

/// Threads share the map of spellings: a key sent from many threads has one spelling.
#[tokio::test]
async fn threads_share_a_spelling() {
    let layer = layer();
    let caches = layer.caches();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut client = layer.layer(inner);
    client.ready().await.unwrap().call(get(0)).await.unwrap();
    for _ in 0..3 {
        let mut client = client.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                for _ in 0..2 {
                    client.ready().await.unwrap().call(get(0)).await.unwrap();
                }
            });
        })
        .join()
        .unwrap();
    }
    assert_eq!(caches.registry.spellings_of(&key(0)), 1);
    assert_eq!(caches.registry.spellings(), 1);
}

#[tokio::test]
async fn the_spellings_of_a_key_share_its_entry_and_a_few_places() {
    let layer = layer();
    let caches = layer.caches();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut client = layer.layer(inner);
    // 64 case variants of scheme and host, each with no port, `:443`, and `:443` after one
    // to seven zeros: 576 spellings of `https://pbx-0.example.com:443`.
    let mut spellings = Vec::new();
    for case in 0..64u32 {
        let url = format!(
            "{}://{}",
            cased("https", case),
            cased("pbx-0.example.com", case >> 3)
        );
        spellings.push(url.clone());
        for zeros in 0..8 {
            spellings.push(format!("{url}:{}443", "0".repeat(zeros)));
        }
    }
    for url in &spellings {
        for _ in 0..2 {
            let request = Request::get(format!("{url}/api")).body(()).unwrap();
            client.ready().await.unwrap().call(request).await.unwrap();
        }
    }
    assert_eq!(caches.len(), 1, "one key");
    // The spellings sent last are kept: their requests take no lock.
    let before = locks();
    for url in &spellings[spellings.len() - SPELLINGS_PER_KEY..] {
        let request = Request::get(format!("{url}/api")).body(()).unwrap();
        client.ready().await.unwrap().call(request).await.unwrap();
    }
    assert_eq!(locks() - before, 0, "locks taken by the latest spellings");
    let registry = &caches.registry;
    assert_eq!(registry.spellings_of(&key(0)), SPELLINGS_PER_KEY);
    assert_eq!(registry.spellings(), SPELLINGS_PER_KEY);
}

/// A URI with user info is not kept in the map of spellings (the map would keep a copy of a
/// password written in it): its requests find the key under the lock, every time.
#[tokio::test]
async fn a_spelling_with_user_info_is_not_kept() {
    let layer = layer();
    let caches = layer.caches();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut client = layer.layer(inner);
    let with_password = || {
        Request::get("https://user:pw@pbx-0.example.com/api")
            .body(())
            .unwrap()
    };
    let first = with_password();
    client.ready().await.unwrap().call(first).await.unwrap();
    let before = locks();
    let second = with_password();
    client.ready().await.unwrap().call(second).await.unwrap();
    assert!(locks() > before, "found under the lock");
    assert_eq!(caches.len(), 1);
    assert_eq!(caches.registry.spellings(), 0);
}

/// `s` with the letters whose bit in `mask` is set made capitals.
fn cased(s: &str, mask: u32) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 32) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[tokio::test]
async fn a_key_layer_sends_its_token_to_its_origin_only() {
    let layer = layer();
    let caches = layer.caches();
    let echo = service_fn(|req: Request<()>| async move {
        let sent = req.headers().contains_key(http::header::AUTHORIZATION);
        Ok::<_, Infallible>(Response::new(sent))
    });
    let mut client = layer.layer(echo);
    client.ready().await.unwrap().call(get(0)).await.unwrap();
    let entry = caches.registry.get(&key(0)).expect("the key is kept");
    let ready = entry.ready().expect("built");
    // The key's layer, given requests the lookup would never give it: it withholds the token
    // from every origin but the key's, however that origin is written.
    let mut inner = echo;
    for (uri, sent) in [
        ("https://pbx-0.example.com/api", true),
        ("HTTPS://PBX-0.Example.com:000443/api", true),
        ("https://user@pbx-0.example.com:443/api", true),
        ("https://pbx-0.example.com:000080/api", false),
        ("http://pbx-0.example.com/api", false),
        ("https://pbx-1.example.com/api", false),
        ("https://pbx-0.example.com@pbx-1.example.com/api", false),
        ("https://pbx-0.example.com.evil.example/api", false),
    ] {
        let request = Request::get(uri).body(()).unwrap();
        let response = ready.layer.call(&mut inner, request).await.unwrap();
        assert_eq!(*response.body(), sent, "{uri}");
    }
}
