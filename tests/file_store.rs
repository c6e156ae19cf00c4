//! `FileStore` across real processes: runs of a CLI one after another, processes started
//! together on a cold file, and a lock holder killed with `SIGKILL`.
//!
//! Each test starts a `TestServer` on 127.0.0.1 and runs this test binary again as worker
//! processes: the ignored test `file_store_worker`, which `FILE_STORE_ROLE=worker` in its
//! environment tells to work. A worker sends requests through a `BearerAuthLayer` whose
//! store is a `FileStore` (refresh halfway through a token's life, no jitter), and reports on
//! standard output, one `FILE_STORE …` line per event: each new token with its store version,
//! and a summary. With `FILE_STORE_FOR_MS` it goes on sending for that long; without, it sends
//! one request, as a CLI run does.
//!
//! The tests also check what a bad token file does, through the cache in this process: a
//! corrupt one is replaced after one login, a group-readable one is left alone and not used.
//!
//! The tests that start processes run one at a time, and every wait is bounded.
#![cfg(feature = "file-store")]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer,
    client::HttpClient,
    provider::portsip::PortSip,
    store::{FileStore, TokenStore},
    test_server::{TestServer, TestServerConfig},
};

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";
/// The workers refresh a token halfway through its life: the margin is capped there.
const REFRESH_AHEAD: Duration = Duration::from_secs(3600);
/// Pause between two requests of a worker that sends for a while.
const PACE: Duration = Duration::from_millis(50);

/// The tests that start processes run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------
// The worker.

/// A process of the tests below: runs only when started by them.
#[test]
#[ignore = "a worker, started by the file store tests as a process of its own"]
fn file_store_worker() {
    if std::env::var("FILE_STORE_ROLE").as_deref() != Ok("worker") {
        return;
    }
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (base_url, path) = (env("FILE_STORE_BASE_URL"), env("FILE_STORE_PATH"));
    let sending = std::env::var("FILE_STORE_FOR_MS")
        .ok()
        .map(|ms| Duration::from_millis(ms.parse().unwrap()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(work(&base_url, Path::new(&path), sending));
}

async fn work(base_url: &str, path: &Path, sending: Option<Duration>) {
    let provider = PortSip::new(base_url, USER, PASSWORD).build().unwrap();
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider)
            .refresh_ahead(REFRESH_AHEAD)
            .jitter(Duration::ZERO)
            .store(FileStore::new(path))
            .on_token_change(|change| {
                if let Some(token) = change.token() {
                    let expires = token
                        .token()
                        .and_then(|t| t.expires_at())
                        .and_then(|e| e.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis());
                    println!(
                        "FILE_STORE token at={} version={} expires={expires}",
                        unix_ms(),
                        token.version()
                    );
                }
            })
            .build(),
    );
    let client = layer.layer(HttpClient::new());
    let url = format!("{base_url}{API}");
    println!(
        "FILE_STORE started at={} pid={}",
        unix_ms(),
        std::process::id()
    );
    let started = Instant::now();
    let (mut ok, mut failed) = (0, 0);
    loop {
        let request = Request::get(&url).body(Full::<Bytes>::default()).unwrap();
        match client.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::OK => ok += 1,
            Ok(response) => {
                failed += 1;
                println!("FILE_STORE fail status={}", response.status());
            }
            Err(error) => {
                failed += 1;
                println!("FILE_STORE fail error={error}");
            }
        }
        match sending {
            Some(length) if started.elapsed() < length => tokio::time::sleep(PACE).await,
            _ => break,
        }
    }
    println!("FILE_STORE done at={} ok={ok} failed={failed}", unix_ms());
}

// ---------------------------------------------------------------------------------------
// The test's side.

/// One `FILE_STORE …` line of a worker.
#[derive(Debug, Clone)]
struct Event {
    kind: String,
    fields: HashMap<String, String>,
}

impl Event {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("FILE_STORE ")?;
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let fields = rest
            .split(' ')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(Self {
            kind: kind.to_owned(),
            fields,
        })
    }

    fn num(&self, key: &str) -> u64 {
        self.fields[key].parse().unwrap()
    }
}

/// A worker process, and a thread collecting its events.
struct Worker {
    child: Option<Child>,
    reader: Option<std::thread::JoinHandle<Vec<Event>>>,
}

impl Worker {
    fn start(server: &TestServer, path: &Path, sending: Option<Duration>) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["file_store_worker", "--exact", "--ignored", "--nocapture"])
            .args(["--test-threads", "1"])
            .env("FILE_STORE_ROLE", "worker")
            .env("FILE_STORE_BASE_URL", server.base_url())
            .env("FILE_STORE_PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(sending) = sending {
            command.env("FILE_STORE_FOR_MS", sending.as_millis().to_string());
        }
        let mut child = command.spawn().expect("start a worker");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            (BufReader::new(stdout).lines())
                .map_while(Result::ok)
                .filter_map(|line| Event::parse(&line))
                .collect()
        });
        Self {
            child: Some(child),
            reader: Some(reader),
        }
    }

    /// Waits for the worker to exit (30 s at most) and returns its events.
    async fn finish(mut self) -> Vec<Event> {
        let mut child = self.child.take().unwrap();
        let reader = self.reader.take().unwrap();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("a worker did not finish within 30 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            assert!(status.success(), "a worker failed: {status}");
            reader.join().unwrap()
        })
        .await
        .unwrap()
    }

    /// Kills the worker with `SIGKILL`.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running worker");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The events of one kind.
fn of<'a>(events: &'a [Event], kind: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
    events.iter().filter(move |e| e.kind == kind)
}

/// The worker's summary: `(ok, failed)` requests.
fn done(events: &[Event]) -> (u64, u64) {
    let done = of(events, "done").next().expect("a summary");
    (done.num("ok"), done.num("failed"))
}

/// A fresh directory for a token file, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tower-bearer-auth-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn token_file(&self) -> PathBuf {
        self.0.join("token.json")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn server(lifetime: Duration) -> TestServer {
    let config = TestServerConfig::new(USER, PASSWORD).lifetime(lifetime);
    TestServer::start(config).await.unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Three runs of a CLI: the first logs in, the second finds the token in the file, the third
/// (once the token has expired) refreshes it with the refresh token in the file. One login
/// in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runs_log_in_once() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("three-runs");
    let path = dir.token_file();
    let server = server(Duration::from_secs(3)).await;

    let first = Worker::start(&server, &path, None).finish().await;
    assert_eq!(done(&first), (1, 0));
    let token = of(&first, "token")
        .next()
        .expect("run 1 got a token")
        .clone();
    assert_eq!(token.num("version"), 1);
    let counts = server.counts();
    assert_eq!((counts.password_grants, counts.refresh_grants), (1, 0));
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);

    let second = Worker::start(&server, &path, None).finish().await;
    assert_eq!(done(&second), (1, 0));
    let adopted = of(&second, "token").next().expect("run 2 got a token");
    assert_eq!(
        adopted.num("version"),
        1,
        "run 2 did not reuse run 1's token"
    );
    let counts = server.counts();
    assert_eq!((counts.password_grants, counts.refresh_grants), (1, 0));

    // The token has expired: the next run refreshes it.
    let expired = token.num("expires") + 200;
    tokio::time::sleep(Duration::from_millis(expired.saturating_sub(unix_ms()))).await;
    let third = Worker::start(&server, &path, None).finish().await;
    assert_eq!(done(&third), (1, 0));
    let refreshed = of(&third, "token").next().expect("run 3 got a token");
    assert_eq!(refreshed.num("version"), 2);
    let counts = server.counts();
    assert_eq!(
        (counts.password_grants, counts.refresh_grants),
        (1, 1),
        "{counts:?}"
    );
    assert_eq!(counts.reused_refresh_tokens, 0);
    assert_eq!(counts.failed_token_requests, 0);
    assert_eq!(counts.unauthorized, 0);
    let stored = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(stored.version(), 2);
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
}

/// Four processes started together on a cold file, sending for 5 s with 2 s tokens: one
/// login, and every refresh after it done once, by one of them, with the newest refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_on_a_cold_file_log_in_once() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("four");
    let path = dir.token_file();
    let server = server(Duration::from_secs(2)).await;
    let sending = Some(Duration::from_secs(5));
    let workers: Vec<_> = (0..4)
        .map(|_| Worker::start(&server, &path, sending))
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        let events = worker.finish().await;
        let (ok, failed) = done(&events);
        assert!(ok > 0 && failed == 0, "ok={ok} failed={failed} {events:?}");
        all.extend(events);
    }
    let counts = server.counts();
    assert_eq!(counts.password_grants, 1, "{counts:?}");
    assert_eq!(counts.reused_refresh_tokens, 0, "{counts:?}");
    assert_eq!(counts.failed_token_requests, 0, "{counts:?}");
    assert_eq!(counts.unauthorized, 0, "{counts:?}");
    // 5 s of 2 s tokens refreshed after 1 s: a few refreshes, shared.
    assert!(counts.refresh_grants >= 2, "{counts:?}");
    // Every version was saved once: as many as logins and refreshes.
    let versions: std::collections::BTreeSet<_> =
        of(&all, "token").map(|e| e.num("version")).collect();
    let max = *versions.last().unwrap();
    assert_eq!(
        max as usize,
        counts.password_grants + counts.refresh_grants,
        "{versions:?} {counts:?}"
    );
    eprintln!(
        "four processes: {} logins, {} refreshes, {} requests",
        counts.password_grants, counts.refresh_grants, counts.api_requests
    );
}

/// A process killed with `SIGKILL` while it holds the lock (its login hangs at the server):
/// the OS releases the lock, and the process waiting for it logs in at its next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_releases_the_lock() {
    let _serial = SERIAL.lock().await;
    let dir = TempDir::new("killed");
    let path = dir.token_file();
    let server = server(Duration::from_secs(60)).await;
    let store = FileStore::new(&path);

    // The holder: its login waits at the server, holding the lock.
    server.set_token_delay(Duration::from_secs(60));
    let mut holder = Worker::start(&server, &path, None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.counts().token_requests == 0 {
        assert!(Instant::now() < deadline, "the holder sent no login");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        store.try_lock().await.unwrap().is_none(),
        "the holder logs in without the lock"
    );

    // The waiter: finds the lock held, and waits for it.
    let waiter = Worker::start(&server, &path, None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.counts().token_requests, 1, "the waiter did not wait");

    server.set_token_delay(Duration::ZERO);
    holder.kill();
    let killed = unix_ms();
    let events = waiter.finish().await;
    assert_eq!(done(&events), (1, 0));
    let token = of(&events, "token").next().expect("the waiter got a token");
    let took = token.num("at").saturating_sub(killed);
    eprintln!("the waiter had its token {took} ms after the holder was killed");
    assert!(took < 10_000, "the waiter took {took} ms");
    assert_eq!(token.num("version"), 1);
    let counts = server.counts();
    // The killed holder's login, and the waiter's.
    assert_eq!(counts.token_requests, 2, "{counts:?}");
    assert_eq!(counts.refresh_grants, 0, "{counts:?}");
    assert_eq!(counts.reused_refresh_tokens, 0);
    // The lock is free again.
    assert!(store.try_lock().await.unwrap().is_some());
}

/// A corrupt token file: the cache logs in as if the store were empty, and its save replaces
/// the file with a good one.
#[tokio::test]
async fn a_corrupt_file_costs_one_login_and_is_replaced() {
    let dir = TempDir::new("corrupt");
    let path = dir.token_file();
    std::fs::create_dir_all(&dir.0).unwrap();
    write_0600(&path, br#"{"format":1,"record":{"version":4,"access_tok"#);
    let server = server(Duration::from_secs(60)).await;

    let cache = layer(&server, &path).cache();
    cache.get().await.unwrap();
    assert_eq!(server.counts().password_grants, 1);
    let stored = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(stored.version(), 1);

    // The next run uses it.
    layer(&server, &path).cache().get().await.unwrap();
    assert_eq!(server.counts().password_grants, 1);
}

/// A group-readable token file: refused, so the cache logs in, and left as it is (neither
/// read nor replaced) for a person to look at.
#[cfg(unix)]
#[tokio::test]
async fn a_group_readable_file_is_refused_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    use tower_bearer_auth::store::{FileStoreError, FileStoreErrorKind};

    let dir = TempDir::new("group-readable");
    let path = dir.token_file();
    let server = server(Duration::from_secs(60)).await;
    layer(&server, &path).cache().get().await.unwrap();
    let before = std::fs::read(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();

    let error = FileStore::new(&path).load().await.unwrap_err();
    let error = error.downcast_ref::<FileStoreError>().unwrap();
    assert_eq!(error.kind(), FileStoreErrorKind::Permissions);
    assert!(error.to_string().contains("0640"), "{error}");

    // A new run does without the store: it logs in, and leaves the file alone.
    layer(&server, &path).cache().get().await.unwrap();
    assert_eq!(server.counts().password_grants, 2);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(mode(&path), 0o640);
}

fn layer(server: &TestServer, path: &Path) -> BearerAuthLayer {
    let provider = PortSip::new(server.base_url(), USER, PASSWORD)
        .build()
        .unwrap();
    BearerAuthLayer::new(
        TokenCache::builder(provider)
            .store(FileStore::new(path))
            .build(),
    )
}

fn write_0600(path: &Path, bytes: &[u8]) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path).unwrap(), bytes).unwrap();
}
