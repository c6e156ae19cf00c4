//! A `redis-server` of a test's own, on a free loopback port, for the tests of `RedisStore`.
//! Outside CI a missing `redis-server` skips the test (the message goes to stderr, shown with
//! `--nocapture`); in CI it fails it.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tower_bearer_auth::store::RedisStore;

/// A `redis-server` of this test's own, stopped when dropped.
pub struct Redis {
    child: Child,
    pub url: String,
}

impl Redis {
    /// Starts one, or returns `None` (outside CI) when it cannot be started.
    pub fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "skipping: redis-server could not be started ({e}); install the \
                     redis-server package to run this test"
                );
                return None;
            }
            Err(e) => panic!("redis-server could not be started: {e}"),
        };
        let redis = Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while client
            .get_connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    pub fn store(&self, name: &str) -> RedisStore {
        RedisStore::new(&self.url, name).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
