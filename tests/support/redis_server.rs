//! A `redis-server` of a test's own, on a free loopback port, for the tests of `RedisStore`.
//! [`Redis::require`] fails the test when `redis-server` cannot be started, with a message
//! that says how to install it; the tests that use it are `#[ignore]`d with the reason, and
//! CI runs them with `--ignored`.

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
    /// Starts one, or fails the test when `redis-server` cannot be started: a test that needs
    /// it never passes without it.
    pub fn require() -> Self {
        Self::spawn().unwrap_or_else(|e| {
            panic!(
                "this test needs a `redis-server` binary on the PATH, and it could not be \
                 started ({e}); install it (`apt-get install redis-server` on Debian or \
                 Ubuntu, `brew install redis` on macOS) and run the test again"
            )
        })
    }

    /// Starts one and waits until it answers; the error if it cannot be started.
    fn spawn() -> std::io::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::on_port(port)
    }

    /// Starts one on `port` (that of one that was stopped, say) and waits until it answers.
    #[allow(dead_code)] // Used by the fleet tests only.
    pub fn on_port(port: u16) -> std::io::Result<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
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
                "redis-server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
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
