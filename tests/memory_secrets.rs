//! What stays in freed memory: after logins, refreshes and a logout, with everything dropped,
//! how many freed heap blocks still hold the password, the client secret, a refresh token or
//! a `login_param` value.
//!
//! A test binary of its own, because it installs a global allocator that, when a block is
//! freed on a thread that asked for it, scans the block for each secret's bytes. The token
//! endpoint runs on a thread of its own, whose blocks are not scanned: only the client's
//! side, this crate and the HTTP stack under it, is counted.
//!
//! Run with `cargo test --test memory_secrets -- --nocapture` to see the counts.
#![cfg(all(feature = "client", feature = "reqwest"))]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    convert::Infallible,
    net::SocketAddr,
    sync::mpsc,
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tower_bearer_auth::{
    BearerAuthLayer,
    client::HttpClient,
    provider::{
        TokenProvider,
        oauth2::{ClientAuth, OAuth2Provider},
        portsip::{PortSip, PortSipApi},
    },
    reqwest::ReqwestService,
};

const USER: &str = "admin";
const PASSWORD: &str = "S3cr3tPasswordInMemory4f1c";
const CLIENT_SECRET: &str = "S3cr3tClientSecretInMemory9a2e";
const REFRESH_TOKEN: &str = "S3cr3tRefreshTokenInMemory77d0";
const LOGIN_PARAM: &str = "S3cr3tLoginParamInMemory5b31";

/// The secrets looked for, in the order of [`Counts`].
const NEEDLES: [&[u8]; 4] = [
    PASSWORD.as_bytes(),
    CLIENT_SECRET.as_bytes(),
    REFRESH_TOKEN.as_bytes(),
    LOGIN_PARAM.as_bytes(),
];

thread_local! {
    /// Whether blocks freed on this thread are scanned.
    static SCAN: Cell<bool> = const { Cell::new(false) };
    /// Freed blocks found holding each needle, on this thread.
    static FOUND: [Cell<usize>; 4] = const { [const { Cell::new(0) }; 4] };
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

struct Scanning;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged. `dealloc`
// first reads and then zeroes the block it is given, which is still allocated and
// `layout.size()` bytes long, and touches only thread-locals that allocate nothing. `realloc` is the trait's default
// (allocate, copy, free), so a block that moves is scanned as it is freed.
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCAN.try_with(Cell::get).unwrap_or(false) {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until freed below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            let _ = FOUND.try_with(|found| {
                for (needle, count) in NEEDLES.iter().zip(found) {
                    if contains(block, needle) {
                        count.set(count.get() + 1);
                    }
                }
            });
        }
        // Zeroed once scanned, on every thread: a block reused later and freed again is then
        // counted for what it held the second time only, not for what its last user left.
        // SAFETY: as above; then the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe {
            std::ptr::write_bytes(ptr, 0, layout.size());
            System.dealloc(ptr, layout)
        }
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Freed blocks holding each secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    password: usize,
    client_secret: usize,
    refresh_token: usize,
    login_param: usize,
}

/// Runs `work` on a runtime of this thread, drops the runtime, and counts the freed blocks
/// that held a secret meanwhile.
fn count<F: std::future::Future<Output = ()>>(work: impl FnOnce() -> F) -> Counts {
    FOUND.with(|found| found.iter().for_each(|c| c.set(0)));
    SCAN.with(|scan| scan.set(true));
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(work());
        // Dropping the runtime closes the connections and frees their buffers here.
    }
    SCAN.with(|scan| scan.set(false));
    let [password, client_secret, refresh_token, login_param] =
        FOUND.with(|found| found.each_ref().map(Cell::get));
    Counts {
        password,
        client_secret,
        refresh_token,
        login_param,
    }
}

/// A token endpoint on a thread of its own: every `POST` gets the same tokens; anything
/// else, `{}`.
fn token_endpoint() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let revoke = req.uri().path().contains("revoke")
                            || req.uri().path().contains("sign_out");
                        let _ = req.into_body().collect().await;
                        let body = if revoke {
                            json!({})
                        } else {
                            json!({
                                "access_token": "AT-in-memory",
                                "token_type": "Bearer",
                                "expires_in": 3600,
                                "refresh_token": REFRESH_TOKEN,
                            })
                        };
                        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
                        response
                            .headers_mut()
                            .insert(CONTENT_TYPE, "application/json".parse().unwrap());
                        Ok::<_, Infallible>(response)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// Three logins through clones of `provider`, a refresh, and a login, refresh and logout
/// through a layer's cache; then everything is dropped.
async fn exercise(provider: impl TokenProvider + Clone) {
    let clones: Vec<_> = (0..3).map(|_| provider.clone()).collect();
    for clone in &clones {
        let token = clone.login().await.unwrap();
        assert_eq!(token.refresh_token(), Some(REFRESH_TOKEN));
    }
    provider.refresh(REFRESH_TOKEN).await.unwrap();
    drop(clones);
    let layer = BearerAuthLayer::new(provider).any_origin();
    let cache = layer.cache();
    cache.get().await.unwrap();
    cache.refresh().await.unwrap();
    cache.revoke().await.unwrap();
}

/// The secrets as a user's program holds them: in `String`s it hands over.
fn owned(secret: &str) -> String {
    secret.to_owned()
}

fn oauth2<C>(client: C, addr: SocketAddr, auth: ClientAuth) -> OAuth2Provider<C> {
    OAuth2Provider::password(
        client,
        format!("http://{addr}/token"),
        USER,
        owned(PASSWORD),
    )
    .client_id("app")
    .client_secret(owned(CLIENT_SECRET))
    .client_auth(auth)
    .login_param("api_key", owned(LOGIN_PARAM))
    .revoke_url(format!("http://{addr}/revoke"))
    .build()
    .unwrap()
}

/// Prints what a scenario found, and returns a complaint if it is more than `most`.
fn check(name: &str, found: Counts, most: Counts) -> Option<String> {
    eprintln!("{name}: {found:?}");
    let within = found.password <= most.password
        && found.client_secret <= most.client_secret
        && found.refresh_token <= most.refresh_token
        && found.login_param <= most.login_param;
    (!within).then(|| format!("{name}: {found:?}, at most {most:?}"))
}

/// Fails with every complaint.
fn assert_within(complaints: impl IntoIterator<Item = Option<String>>) {
    let complaints: Vec<String> = complaints.into_iter().flatten().collect();
    assert!(
        complaints.is_empty(),
        "freed blocks still holding a secret:\n{}",
        complaints.join("\n")
    );
}

/// What is left: nothing of the password, the client secret or the `login_param` values.
/// Of the refresh token, eight blocks in each scenario: one per token response (six of
/// them), the 8 KiB buffer hyper read the answer into, which this crate cannot reach; and two
/// for the refresh through the cache, which keeps plain copies of the refresh token while it
/// refreshes (see the README's security section).
const EXPECTED: Counts = Counts {
    password: 0,
    client_secret: 0,
    refresh_token: 8,
    login_param: 0,
};

#[test]
fn oauth2_over_hyper_leaves_no_credential_in_freed_memory() {
    let addr = token_endpoint();
    assert_within([ClientAuth::Form, ClientAuth::Basic].map(|auth| {
        let found = count(|| exercise(oauth2(HttpClient::new(), addr, auth)));
        check(
            &format!("OAuth2Provider, HttpClient, {auth:?}"),
            found,
            EXPECTED,
        )
    }));
}

#[test]
fn oauth2_over_reqwest_leaves_no_credential_in_freed_memory() {
    let addr = token_endpoint();
    let found = count(|| {
        exercise(oauth2(
            ReqwestService::new(reqwest::Client::new()),
            addr,
            ClientAuth::Form,
        ))
    });
    assert_within([check(
        "OAuth2Provider, ReqwestService, Form",
        found,
        EXPECTED,
    )]);
}

#[test]
fn portsip_leaves_no_credential_in_freed_memory() {
    let addr = token_endpoint();
    assert_within([PortSipApi::SignIn, PortSipApi::OAuth].map(|api| {
        let found = count(|| async move {
            let provider = PortSip::new(format!("http://{addr}"), USER, owned(PASSWORD))
                .domain(owned(LOGIN_PARAM))
                .api(api)
                .build_with(HttpClient::new())
                .unwrap();
            exercise(provider).await;
        });
        // The domain is held like a `login_param` value on both APIs.
        check(
            &format!("PortSipProvider, HttpClient, {api:?}"),
            found,
            EXPECTED,
        )
    }));
}

#[test]
fn the_scanner_finds_what_is_left() {
    let found = count(|| async {
        let leaked = format!("prefix {PASSWORD} suffix");
        drop(leaked);
    });
    assert_eq!(found.password, 1, "{found:?}");
}
