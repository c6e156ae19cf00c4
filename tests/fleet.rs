//! A fleet of processes sharing one token through `RedisStore`, under the faults production
//! meets: Redis paused, a lock holder killed mid-refresh, Redis killed and restarted, a revoke
//! in one member.
//!
//! Each test starts a `redis-server` of its own on a free loopback port and a `TestServer`
//! (3 s tokens), then four worker processes: this test binary started again to run only the
//! ignored test `fleet_worker`, which `FLEET_ROLE=worker` in its environment tells to work.
//! A worker sends requests through a `BearerAuthLayer` (refresh 500 ms ahead, 10 s timeout,
//! the store's default 3 s lease) until its standard input closes, and reports on standard
//! output, one `FLEET …` line per event: each new token (with its store version), each failed
//! request, and a summary. A line `revoke` on its standard input makes it revoke its token.
//!
//! The tests run one at a time (they share the machine's cores with each other's workers),
//! and every wait is bounded. Outside CI they skip, with a message, when `redis-server`
//! cannot be started; with `CI=true` they fail instead.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer,
    client::HttpClient,
    provider::portsip::PortSip,
    store::{RedisStore, TokenStore},
    test_server::{TestServer, TestServerConfig},
};

#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::Redis;
use tower_bearer_auth::TokenCache;

const USER: &str = "admin";
const PASSWORD: &str = "s3cret-pw";
const API: &str = "/api/account/extensions";
/// The store's name, the same in every worker.
const NAME: &str = "fleet";
const WORKERS: usize = 4;
/// The tokens' lifetime, and the cache's settings in every worker.
const LIFETIME: Duration = Duration::from_secs(3);
const REFRESH_AHEAD: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);
/// `RedisStore`'s default lease, which the workers use (checked in `the_lease_is_3_s`).
const LEASE: Duration = Duration::from_secs(3);
/// Request senders in each worker, and the pause between two requests of one.
const SENDERS: usize = 2;
const PACE: Duration = Duration::from_millis(50);
/// A worker stops on its own after this long, or after this many requests per sender,
/// whatever happens.
const WORKER_MAX: Duration = Duration::from_secs(60);
const REQUESTS_MAX: usize = 5_000;

/// The tests run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Now, as Unix milliseconds: the clock the workers and the test share.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------
// The worker.

/// A fleet member: runs only when started by the tests below.
#[test]
#[ignore = "a fleet member, started by the fleet tests as a process of its own"]
fn fleet_worker() {
    if std::env::var("FLEET_ROLE").as_deref() != Ok("worker") {
        return;
    }
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let (redis_url, base_url) = (env("FLEET_REDIS_URL"), env("FLEET_BASE_URL"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(work(&redis_url, &base_url));
}

/// What a worker's standard input tells it.
enum Order {
    Revoke,
    Stop,
}

async fn work(redis_url: &str, base_url: &str) {
    let store = RedisStore::new(redis_url, NAME).unwrap();
    let provider = PortSip::new(base_url, USER, PASSWORD).build().unwrap();
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider)
            .refresh_ahead(REFRESH_AHEAD)
            .timeout(TIMEOUT)
            .store(store)
            .on_token_change(|change| match change.token() {
                Some(token) => {
                    let expires = token
                        .token()
                        .and_then(|t| t.expires_at())
                        .and_then(|e| e.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis());
                    println!(
                        "FLEET token at={} version={} expires={expires}",
                        unix_ms(),
                        token.version()
                    );
                }
                None => println!("FLEET forgot at={}", unix_ms()),
            })
            .build(),
    );
    let client = layer.layer(HttpClient::new());
    let url = format!("{base_url}{API}");
    println!("FLEET started at={} pid={}", unix_ms(), std::process::id());

    // Orders come on standard input, read on a thread of their own; its end means stop.
    let (orders, mut ordered) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            match line.as_deref().map(str::trim) {
                Ok("revoke") => drop(orders.send(Order::Revoke)),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        drop(orders.send(Order::Stop));
    });

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let (mut sent, mut ok, mut failed, mut refused, mut slowest) = (0, 0, 0, 0, 0);
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && started.elapsed() < WORKER_MAX
                && sent < REQUESTS_MAX
            {
                let request = Request::get(&url).body(Full::<Bytes>::default()).unwrap();
                let at = Instant::now();
                let response = client.clone().oneshot(request).await;
                let took = at.elapsed().as_millis() as u64;
                slowest = slowest.max(took);
                sent += 1;
                match response {
                    Ok(response) if response.status() == StatusCode::OK => ok += 1,
                    // The server refused a token (a revoked one): counted apart.
                    Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                        refused += 1;
                        println!("FLEET refused at={} took={took}", unix_ms());
                    }
                    Ok(response) => {
                        failed += 1;
                        println!(
                            "FLEET fail at={} took={took} error=status {}",
                            unix_ms(),
                            response.status()
                        );
                    }
                    Err(error) => {
                        failed += 1;
                        println!("FLEET fail at={} took={took} error={error}", unix_ms());
                    }
                }
                tokio::time::sleep(PACE).await;
            }
            (sent, ok, failed, refused, slowest)
        }));
    }
    let cache = client.cache();
    let deadline = tokio::time::sleep(WORKER_MAX);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            order = ordered.recv() => match order {
                Some(Order::Revoke) => {
                    let revoked = cache.revoke().await;
                    println!("FLEET revoked at={} ok={}", unix_ms(), revoked.is_ok());
                }
                Some(Order::Stop) | None => break,
            },
            () = &mut deadline => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut sent, mut ok, mut failed, mut refused, mut slowest) = (0, 0, 0, 0, 0);
    for sender in senders {
        let (s, o, f, r, w) = sender.await.unwrap();
        (sent, ok, failed, refused) = (sent + s, ok + o, failed + f, refused + r);
        slowest = slowest.max(w);
    }
    println!("FLEET done sent={sent} ok={ok} failed={failed} refused={refused} slowest={slowest}");
}

// ---------------------------------------------------------------------------------------
// The test's side.

/// One `FLEET …` line of a worker.
#[derive(Debug, Clone)]
struct Event {
    worker: usize,
    kind: String,
    fields: HashMap<String, String>,
}

impl Event {
    fn parse(worker: usize, line: &str) -> Option<Self> {
        let mut rest = line.strip_prefix("FLEET ")?;
        let (kind, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        rest = tail;
        let mut fields = HashMap::new();
        while let Some((key, tail)) = rest.split_once('=') {
            // `error` takes the rest of the line.
            if key == "error" {
                fields.insert(key.to_owned(), tail.to_owned());
                break;
            }
            let (value, tail) = tail.split_once(' ').unwrap_or((tail, ""));
            fields.insert(key.to_owned(), value.to_owned());
            rest = tail;
        }
        Some(Self {
            worker,
            kind: kind.to_owned(),
            fields,
        })
    }

    fn num(&self, key: &str) -> u64 {
        self.fields[key].parse().unwrap()
    }
}

/// The workers: their processes, their standard inputs, and what they reported so far.
struct Fleet {
    children: Vec<Option<Child>>,
    inputs: Vec<Option<ChildStdin>>,
    events: Arc<Mutex<Vec<Event>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Fleet {
    fn start(redis_url: &str, base_url: &str) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (mut children, mut inputs, mut readers) = (Vec::new(), Vec::new(), Vec::new());
        for worker in 0..WORKERS {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["fleet_worker", "--exact", "--ignored", "--nocapture"])
                .args(["--test-threads", "1"])
                .env("FLEET_ROLE", "worker")
                .env("FLEET_REDIS_URL", redis_url)
                .env("FLEET_BASE_URL", base_url)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a worker");
            inputs.push(child.stdin.take());
            let stdout = child.stdout.take().unwrap();
            let events = events.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(event) = Event::parse(worker, &line) {
                        lock(&events).push(event);
                    }
                }
            }));
            children.push(Some(child));
        }
        Self {
            children,
            inputs,
            events,
            readers,
        }
    }

    fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The pid of each worker still running.
    fn pids(&self) -> Vec<(usize, u32)> {
        (self.children.iter().enumerate())
            .filter_map(|(i, c)| Some((i, c.as_ref()?.id())))
            .collect()
    }

    /// Waits until every worker still running has a token, the fleet's first.
    async fn wait_for_tokens(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.events();
            let running = self.pids();
            if running
                .iter()
                .all(|(w, _)| events.iter().any(|e| e.worker == *w && e.kind == "token"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not every worker got a token: {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn order(&mut self, worker: usize, order: &str) {
        let input = self.inputs[worker].as_mut().expect("a running worker");
        writeln!(input, "{order}").unwrap();
        input.flush().unwrap();
    }

    /// Kills a worker with `SIGKILL`.
    fn kill(&mut self, worker: usize) {
        let mut child = self.children[worker].take().expect("a running worker");
        child.kill().unwrap();
        child.wait().unwrap();
        self.inputs[worker] = None;
    }

    /// Tells every worker to stop, waits for them (20 s at most) and returns their reports.
    async fn stop(mut self) -> Report {
        self.inputs.clear();
        let children: Vec<_> = self.children.iter_mut().filter_map(Option::take).collect();
        let waited = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let mut statuses = Vec::new();
            for mut child in children {
                loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        statuses.push(status);
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        let _ = child.kill();
                        panic!("a worker did not stop");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            statuses
        })
        .await
        .unwrap();
        assert!(waited.iter().all(|s| s.success()), "a worker failed");
        for reader in std::mem::take(&mut self.readers) {
            reader.join().unwrap();
        }
        Report {
            events: self.events(),
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::as_mut) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the workers reported.
struct Report {
    events: Vec<Event>,
}

impl Report {
    fn of(&self, kind: &str) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.kind == kind)
    }

    /// The workers' summaries, one per worker that was not killed.
    fn done(&self) -> Vec<&Event> {
        self.of("done").collect()
    }

    fn total(&self, field: &str) -> u64 {
        self.done().iter().map(|e| e.num(field)).sum()
    }

    fn failures(&self) -> Vec<&Event> {
        self.of("fail").collect()
    }

    /// The longest time a worker went without a valid token between `from` and `to` (Unix
    /// ms): from one token's expiry to the next token's arrival.
    fn longest_gap(&self, from: u64, to: u64) -> u64 {
        let mut longest = 0;
        for worker in 0..WORKERS {
            let tokens: Vec<_> = self
                .of("token")
                .filter(|e| e.worker == worker)
                .map(|e| (e.num("at"), e.num("expires")))
                .collect();
            for pair in tokens.windows(2) {
                let ((_, expires), (at, _)) = (pair[0], pair[1]);
                if at > expires && at >= from && expires <= to {
                    longest = longest.max(at - expires);
                }
            }
        }
        longest
    }

    fn summary(&self) -> String {
        format!(
            "{} requests, {} ok, {} failed, {} refused, slowest {} ms",
            self.total("sent"),
            self.total("ok"),
            self.total("failed"),
            self.total("refused"),
            self.done()
                .iter()
                .map(|e| e.num("slowest"))
                .max()
                .unwrap_or(0)
        )
    }
}

/// The test's own view of Redis: its process, and a connection that gives up after a second.
struct Probe {
    url: String,
    lock_key: String,
}

impl Probe {
    fn new(redis: &Redis) -> Self {
        let store = redis.store(NAME);
        Self {
            url: redis.url.clone(),
            lock_key: store.keys().1.to_owned(),
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url.as_str())?;
        let connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
        connection.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(connection)
    }

    /// The Redis server's process id.
    fn pid(&self) -> String {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.connection().unwrap())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .expect("INFO tells the process id")
            .trim()
            .to_owned()
    }

    /// The lock's holder, if any.
    fn holder(&self) -> Option<String> {
        let mut connection = self.connection().ok()?;
        redis::cmd("GET")
            .arg(&self.lock_key)
            .query(&mut connection)
            .ok()?
    }

    /// The stored token's version (0 for none).
    fn version(&self) -> u64 {
        let Ok(mut connection) = self.connection() else {
            return 0;
        };
        let version: Option<u64> = redis::cmd("HGET")
            .arg(format!("tower-bearer-auth:{{{NAME}}}:token"))
            .arg("version")
            .query(&mut connection)
            .unwrap_or(None);
        version.unwrap_or(0)
    }
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to process `pid`, with the shell's `kill`.
fn signal(pid: &str, signal: &str) {
    assert!(pid.chars().all(|c| c.is_ascii_digit()), "{pid}");
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

async fn server() -> TestServer {
    TestServer::start(TestServerConfig::new(USER, PASSWORD).lifetime(LIFETIME))
        .await
        .unwrap()
}

/// Logins and refreshes the server has answered.
fn fetches(server: &TestServer) -> usize {
    let counts = server.counts();
    counts.password_grants + counts.refresh_grants
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn the_lease_is_3_s() {
    // The workers use the default lease; the tests below take it to be `LEASE`.
    let store = RedisStore::new("redis://127.0.0.1:1/", NAME).unwrap();
    assert!(format!("{store:?}").contains("lease: 3s"), "{store:?}");
}

/// Redis paused for 3 s (`SIGSTOP`), then resumed: no request fails, and no lock outlives a
/// lease afterwards (a lock request the stall cut short must not leave one behind).
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_fails_no_request_and_leaves_no_lock() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::require();
    let probe = Probe::new(&redis);
    let redis_pid = probe.pid();
    let server = server().await;
    let fleet = Fleet::start(&redis.url, &server.base_url());
    fleet.wait_for_tokens().await;
    // A token's life and more: the fleet refreshes once, sharing.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Stalled from a little before the token's refresh point (0.5 to 0.75 s before expiry) to
    // well after its expiry: every worker's refresh meets the stall, and then its requests.
    let expires = (fleet.events().iter())
        .filter(|e| e.kind == "token")
        .map(|e| e.num("expires"))
        .max()
        .unwrap();
    let stall_at = expires - 900;
    tokio::time::sleep(Duration::from_millis(stall_at.saturating_sub(unix_ms()))).await;
    let before = fetches(&server);

    signal(&redis_pid, "STOP");
    let stalled_at = unix_ms();
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&redis_pid, "CONT");
    let during = fetches(&server) - before;
    let (after, version) = (fetches(&server), probe.version());

    // Who holds the lock, every 20 ms for two token lifetimes: no one for longer than a lease.
    let watch = tokio::task::spawn_blocking(move || {
        let (mut longest, mut current, mut since) = (0, None::<String>, 0);
        let end = std::time::Instant::now() + 2 * LIFETIME;
        while std::time::Instant::now() < end {
            let holder = probe.holder();
            let now = unix_ms();
            if holder != current || holder.is_none() {
                (current, since) = (holder, now);
            }
            if current.is_some() {
                longest = longest.max(now - since);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (longest, probe)
    });
    let (longest_hold, probe) = watch.await.unwrap();
    let (after, saved) = (fetches(&server) - after, probe.version() - version);
    let report = fleet.stop().await;

    println!(
        "stall: {}; {during} logins or refreshes during the 3 s stall, {after} in the 6 s \
         after it ({saved} tokens saved); longest without a token {:.2} s; longest lock hold \
         after it {:.2} s",
        report.summary(),
        secs(report.longest_gap(stalled_at, unix_ms())),
        secs(longest_hold),
    );
    assert_eq!(report.done().len(), WORKERS);
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
    assert!(
        longest_hold <= (LEASE + Duration::from_millis(300)).as_millis() as u64,
        "a lock held {longest_hold} ms after the stall: an orphan"
    );
    assert_eq!(server.counts().reused_refresh_tokens, 0);
}

/// A lock request that Redis runs only after the client gave up on it (its answer timed
/// out, or its future was dropped) does not leave a lock behind: its release follows it.
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_request_cut_short_leaves_no_lock() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::require();
    let probe = Probe::new(&redis);
    let redis_pid = probe.pid();
    let store = redis.store(NAME);
    assert!(store.load().await.unwrap().is_none(), "connected");

    signal(&redis_pid, "STOP");
    // Dropped before any answer, and timed out (after 2 s).
    let dropped = tokio::time::timeout(Duration::from_millis(100), store.try_lock()).await;
    assert!(dropped.is_err());
    let timed_out = store.try_lock().await;
    assert!(timed_out.is_err(), "{timed_out:?}");
    signal(&redis_pid, "CONT");

    // Redis runs both requests, then their releases.
    let deadline = Instant::now() + Duration::from_secs(1);
    while probe.holder().is_some() {
        assert!(
            Instant::now() < deadline,
            "an orphan lock: {:?}",
            probe.holder()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lock = store.try_lock().await.unwrap();
    assert!(lock.is_some(), "the lock is free");
}

/// The lock holder killed (`SIGKILL`) mid-refresh, the token endpoint slowed to 5 s: the others
/// have a new token within one lease plus those 5 s, no request fails, the fleet logs in or
/// refreshes once, and no refresh token is spent twice.
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_costs_one_lease() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::require();
    let probe = Probe::new(&redis);
    let server = server().await;
    let mut fleet = Fleet::start(&redis.url, &server.base_url());
    fleet.wait_for_tokens().await;
    assert_eq!(
        server.counts().password_grants,
        1,
        "one login for the fleet"
    );

    // The next refresh meets a slow endpoint: its holder is killed while it waits. A client
    // counts a token's life from when it asked for it, so the tokens issued after a 5 s wait
    // live 5 s longer: 3 s, as the client sees them.
    let slow = Duration::from_secs(5);
    server.set_token_delay(slow);
    server.set_lifetime(LIFETIME + slow);
    let requested = server.counts().token_requests;
    let deadline = Instant::now() + LIFETIME + Duration::from_secs(2);
    let (holder, pid) = loop {
        if server.counts().token_requests > requested {
            if let Some(owner) = probe.holder() {
                let pid: u32 = owner.split(':').next().unwrap().parse().unwrap();
                let worker = fleet.pids().into_iter().find(|(_, p)| *p == pid);
                break worker.expect("the holder is a worker");
            }
        }
        assert!(Instant::now() < deadline, "no refresh started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let version = probe.version();
    let fetched = fetches(&server);
    fleet.kill(holder);
    let killed_at = unix_ms();

    // A survivor takes the lock when the lease runs out, and refreshes (5 s).
    let deadline = Instant::now() + LEASE + slow + Duration::from_secs(5);
    while probe.version() <= version {
        assert!(
            Instant::now() < deadline,
            "no new token in the store: {:?} {:#?}",
            server.counts(),
            fleet.events()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let saved_at = unix_ms();
    let fetched_after = fetches(&server) - fetched;
    server.set_token_delay(Duration::ZERO);
    // The survivors' requests that waited get their token; a little more traffic after.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = fleet.stop().await;

    let survivors: Vec<usize> = (0..WORKERS).filter(|w| *w != holder).collect();
    let recovered: Vec<u64> = survivors
        .iter()
        .map(|w| {
            report
                .of("token")
                .find(|e| e.worker == *w && e.num("version") > version)
                .map(|e| e.num("at") - killed_at)
                .unwrap_or_else(|| panic!("worker {w} got no new token"))
        })
        .collect();
    println!(
        "crash: holder {holder} (pid {pid}) killed; new token saved {:.2} s later, got by the \
         others after {:?} s; {fetched_after} logins or refreshes; longest without a token \
         {:.2} s; {}",
        secs(saved_at - killed_at),
        recovered.iter().map(|ms| secs(*ms)).collect::<Vec<_>>(),
        secs(report.longest_gap(killed_at, saved_at + 1000)),
        report.summary()
    );
    assert_eq!(report.done().len(), WORKERS - 1);
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
    // One lease and the 5 s refresh, from when the lock was taken (a moment before the
    // kill), plus the waiters' tries (every 0.1 s) and a process's scheduling.
    let bound = (LEASE + slow + Duration::from_secs(1)).as_millis() as u64;
    assert!(recovered.iter().all(|ms| *ms <= bound), "{recovered:?} ms");
    assert_eq!(fetched_after, 1, "one login or refresh for the fleet");
    assert_eq!(server.counts().reused_refresh_tokens, 0);
}

/// Redis killed for 4 s, then started again (empty): no request fails meanwhile, and once the
/// fleet has agreed again, one token fetch per token lifetime for the whole fleet.
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_no_request_and_sharing_resumes() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::require();
    let probe = Probe::new(&redis);
    let redis_pid = probe.pid();
    let server = server().await;
    let fleet = Fleet::start(&redis.url, &server.base_url());
    fleet.wait_for_tokens().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    signal(&redis_pid, "KILL");
    let down_at = unix_ms();
    let before = fetches(&server);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = fetches(&server) - before;
    let port = redis.url.trim_end_matches('/').rsplit(':').next().unwrap();
    let _back = Redis::on_port(port.parse().unwrap()).expect("redis-server came back");
    let back_at = unix_ms();

    // Three token lifetimes to agree on one token again (a process that logged in on its own
    // may count versions above the new store's, and refresh once more), then three to count.
    tokio::time::sleep(3 * LIFETIME).await;
    let (fetched, version) = (fetches(&server), probe.version());
    let window = 3 * LIFETIME;
    tokio::time::sleep(window).await;
    let (fetched, saved) = (fetches(&server) - fetched, probe.version() - version);
    let report = fleet.stop().await;

    println!(
        "outage: {during} logins or refreshes during the 4 s outage; after it, {fetched} \
         fetches and {saved} tokens saved in {:.0} s; longest without a token {:.2} s; {}",
        window.as_secs_f64(),
        secs(report.longest_gap(down_at, back_at)),
        report.summary()
    );
    assert_eq!(report.done().len(), WORKERS);
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
    // Refreshed 0.5 to 0.75 s before expiry: a token every 2.25 to 2.5 s, 4 in 9 s.
    let per_lifetime =
        window.as_millis() / (LIFETIME - REFRESH_AHEAD / 2 - REFRESH_AHEAD).as_millis();
    assert!(
        fetched as u128 <= per_lifetime + 1,
        "{fetched} fetches in {window:?}: not shared"
    );
    assert_eq!(saved as usize, fetched, "each fetch saved once");
    assert_eq!(server.counts().reused_refresh_tokens, 0);
}

/// A revoke in one member: the others converge on one new shared login.
#[ignore = "needs redis-server on the PATH; run with `cargo test -- --ignored`, as CI does"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_in_one_member_brings_one_new_shared_login() {
    let _serial = SERIAL.lock().await;
    let redis = Redis::require();
    let probe = Probe::new(&redis);
    let server = server().await;
    let mut fleet = Fleet::start(&redis.url, &server.base_url());
    fleet.wait_for_tokens().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let logins = server.counts().password_grants;
    // The revoke saves a revoked record above the newest version.
    let revoked = probe.version() + 1;
    fleet.order(0, "revoke");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fleet.events().iter().any(|e| e.kind == "revoked") {
        assert!(Instant::now() < deadline, "the revoke did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let revoked_at = unix_ms();
    // Every member converges on one token saved after the revoke.
    let deadline = Instant::now() + Duration::from_secs(10);
    let shared = loop {
        let events = fleet.events();
        let latest: Vec<Option<u64>> = (0..WORKERS)
            .map(|w| {
                (events.iter())
                    .filter(|e| e.worker == w && e.kind == "token")
                    .map(|e| e.num("version"))
                    .next_back()
            })
            .collect();
        if let Some(Some(first)) = latest.first() {
            if *first > revoked && latest.iter().all(|v| *v == Some(*first)) {
                break *first;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no convergence after the revoke: {latest:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let converged_at = unix_ms();
    let new_logins = server.counts().password_grants - logins;
    let report = fleet.stop().await;

    println!(
        "revoke: revoked at version {revoked}; every member on version {shared} after \
         {:.2} s; {new_logins} new login(s); {}",
        secs(converged_at - revoked_at),
        report.summary()
    );
    assert_eq!(report.done().len(), WORKERS);
    assert_eq!(
        report
            .of("revoked")
            .filter(|e| e.fields["ok"] == "true")
            .count(),
        1
    );
    assert_eq!(new_logins, 1, "one new login for the fleet");
    assert!(report.failures().is_empty(), "{:#?}", report.failures());
    assert_eq!(server.counts().reused_refresh_tokens, 0);
}
