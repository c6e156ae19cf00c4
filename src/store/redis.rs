//! [`RedisStore`]: a token store in Redis (feature `redis`).

use std::{
    fmt,
    hash::{BuildHasher, RandomState},
    time::Duration,
};

use redis::{Client, RedisError, aio::ConnectionManager};
use tokio::time::Instant;

use super::{
    TokenStore,
    lock::{Lease, StoreLock},
    record::StoredToken,
};
use crate::{BoxError, provider::BoxFuture};

/// Default length of the lock's lease: a holder renews it every second, so one renewal may
/// fail (a call times out after 2 s) without losing it, and a holder that crashes blocks the
/// others for 3 s at most.
const DEFAULT_LEASE: Duration = Duration::from_secs(3);
/// The shortest and longest leases: a day is longer than any hold, and keeps the deadline
/// arithmetic from overflowing.
const MIN_LEASE: Duration = Duration::from_millis(10);
const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);
/// Bounds on the pause between two attempts to take a held lock, in [`RedisStore::lock`].
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);
/// How long a call waits for Redis's answer, and for a connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes the token only over an older version.
const SAVE: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'token', ARGV[2])
return 1
";

/// Extends the lease only if the lock is still ours.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Releases the lock only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A [`TokenStore`] in Redis, shared by every process that uses the same server and name:
/// at most one of them logs in or refreshes at a time, and the others use the token it
/// saved.
///
/// # Key layout
///
/// For a store named `name` (one per account: every process logging in as the same user
/// with the same provider uses the same name), under the prefix `tower-bearer-auth`:
///
/// | key | type | holds |
/// | --- | --- | --- |
/// | `tower-bearer-auth:{name}:token` | hash | `version`: the last version saved (an integer); `token`: the [`StoredToken`] as JSON ([`StoredToken::to_json`]), a revoked record after a revoke |
/// | `tower-bearer-auth:{name}:lock` | string | the holder's token: its process id and a random number (`4242:9f86d081884c7d65`), with an expiry: the [lease](RedisStore::lease) |
///
/// The braces make both keys hash to one slot of a Redis Cluster. Neither key expires on its
/// own except the lock: the token stays until a newer record replaces it: a newer token, or
/// the revoked record a revoke saves.
///
/// # Pointing several services at it
///
/// Give every process that logs in as one account the same Redis server and the same name:
/// `RedisStore::new("redis://redis.internal:6379/", "pbx-admin")`, with its own provider for
/// that account (same server, same user). Another account, or the same user on another PBX,
/// needs another name; two accounts under one name would hand each other their tokens. All
/// of them should use the same [`lease`](RedisStore::lease). Nothing else is shared:
/// each process keeps its own cache and its own provider, and its settings (refresh margin,
/// timeouts) may differ.
///
/// # What is stored
///
/// **The access token and the refresh token are stored unencrypted**, in the `token` field,
/// with their expiry, type, scope and any other fields the server sent. Anyone who can read
/// the key can use the account until the tokens expire or are revoked: protect the Redis
/// server as you would the password (authentication, TLS with a `rediss://` URL, a network only
/// the services reach, an ACL limiting the user to the `tower-bearer-auth:*` keys).
///
/// # Locking
///
/// The lock is a lease (see "The lock is a lease" in the [module documentation](super)):
/// `SET … NX PX` takes it for one lease, a Lua script extends it (`PEXPIRE`) only while it
/// holds the holder's token, and another deletes it only then. The cache holding it renews
/// it every third of the lease while it refreshes, and releases it as soon as it has saved
/// the new token; the others try for it every 10 to 100 ms, reading the stored token each
/// time. Saving is a Lua script that only writes a greater version, so a holder that lost its
/// lease cannot overwrite a newer token.
///
/// A lock request whose answer the client did not wait for (it timed out, or the request
/// was dropped) may still be run by Redis later: such a request is followed at once by a
/// release by its token, sent on the same connection, which Redis runs after it. If the
/// connection is replaced in between, the orphan lock runs out within one lease of when
/// Redis ran the request.
///
/// # What faults cost
///
/// With the defaults (a 3 s lease renewed every second, 2 s for Redis to answer each call,
/// the cache's 10 s [timeout](crate::TokenCacheBuilder::timeout)):
///
/// - **A holder that crashes** (killed, or its machine gone) blocks the others for the rest
///   of its lease, 3 s at most, plus 0.1 s until a waiter tries again; that waiter then
///   refreshes with the stored refresh token. Nothing else: no refresh token is spent twice,
///   no one logs in beside the holder, and a request fails only if the lease and the
///   refresh together outlast its timeout. With a token endpoint that takes 5 s, the others
///   have their new token about 8 s after the crash.
/// - **Redis stalling** (paused, swapping, a slow command) holds each call until it resumes,
///   2 s at most, after which the call fails. A stall of up to 2 s delays a fetch by that
///   much; a longer one costs it 6 s at most (its read, its lock request and its save give
///   up after 2 s each), and then the fetch logs in without the lock, as in an outage. A lock
///   request the stall cut short is released right after Redis runs it, so no lock is left
///   behind (at worst, if the connection was replaced meanwhile, one for one lease after
///   Redis resumes). A holder caught in a stall longer than its lease loses it and stops.
/// - **Redis down** makes each call fail at once (connection refused), or after 2 s (no
///   answer to connect): every process logs in on its own whenever it needs a token, as
///   without a store, and keeps using its token. When Redis is back, the next fetch is
///   shared again; after a restart that lost the data, the processes agree on one token
///   again within a token's lifetime or two.
///
/// # Example
///
/// ```no_run
/// use tower_bearer_auth::{BearerAuthLayer, TokenCache, provider::portsip::PortSip, store::RedisStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In every replica of the service:
/// let store = RedisStore::new("redis://redis.internal:6379/", "pbx-admin")?;
/// let provider = PortSip::new("https://pbx.example.com:8887", "admin", "secret").build()?;
/// let layer = BearerAuthLayer::new(TokenCache::builder(provider).store(store).build());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    token_key: String,
    lock_key: String,
    lease: Duration,
}

impl RedisStore {
    /// A store on the Redis server at `url` (`redis://…`, or `rediss://…` if the `redis`
    /// crate's TLS support is on), for the account called `name`.
    ///
    /// Connects on first use, and reconnects after a lost connection. Each call waits 2 s at
    /// most for a connection and for Redis's answer.
    ///
    /// # Errors
    ///
    /// Fails when `url` is not a Redis URL.
    pub fn new(url: &str, name: &str) -> Result<Self, RedisError> {
        // Fail fast when the server is down: the cache then does without the store.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connection = Client::open(url)?.get_connection_manager_lazy(config)?;
        Ok(Self::from_connection(connection, name))
    }

    /// A store using `connection`, for the account called `name`.
    ///
    /// Give the connection a response timeout shorter than the lease, as [`new`](Self::new)
    /// does: a renewal that waits longer may lose the lease.
    pub fn from_connection(connection: ConnectionManager, name: &str) -> Self {
        Self {
            connection,
            token_key: format!("tower-bearer-auth:{{{name}}}:token"),
            lock_key: format!("tower-bearer-auth:{{{name}}}:lock"),
            lease: DEFAULT_LEASE,
        }
    }

    /// How long the lock's lease lasts after it is taken or renewed: what a holder that
    /// crashed or stalled costs the others at most. The holder renews it every third of
    /// that for as long as it refreshes, however long that takes.
    ///
    /// Make it longer than a few of Redis's answers (a renewal may fail once without losing
    /// the lease), and much shorter than twice the layer's
    /// [`timeout`](crate::TokenCacheBuilder::timeout), after which a waiter gives up; every
    /// process sharing the store should use the same.
    ///
    /// Defaults to 3 seconds. Clamped to between 10 ms and a day.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(MIN_LEASE, MAX_LEASE);
        self
    }

    /// The keys this store uses: the token's and the lock's.
    pub fn keys(&self) -> (&str, &str) {
        (&self.token_key, &self.lock_key)
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        let json: Option<String> = redis::cmd("HGET")
            .arg(&self.token_key)
            .arg("token")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(json.map(|json| StoredToken::from_json(&json)).transpose()?)
    }

    async fn save(&self, token: &StoredToken) -> Result<bool, BoxError> {
        let saved: i64 = eval(SAVE, &self.token_key)
            .arg(token.version())
            .arg(token.to_json())
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(saved == 1)
    }

    /// One try: `SET NX PX` with a new token.
    async fn try_lock(&self) -> Result<Option<StoreLock>, BoxError> {
        let owner = format!(
            "{}:{:016x}",
            std::process::id(),
            RandomState::new().hash_one(Instant::now())
        );
        // Until Redis has answered, the request may leave a lock behind: released if so.
        let mut attempt = Attempt(Some(Release {
            connection: self.connection.clone(),
            key: self.lock_key.clone(),
            owner,
        }));
        let release = attempt.0.as_ref().expect("just set");
        let taken: Option<String> = redis::cmd("SET")
            .arg(&self.lock_key)
            .arg(&release.owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(self.lease))
            .query_async(&mut self.connection.clone())
            .await?;
        let release = attempt.0.take().expect("not taken before");
        Ok(taken.is_some().then(|| {
            StoreLock::leased(
                self.lease,
                RedisLease {
                    release,
                    lease: self.lease,
                },
            )
        }))
    }

    async fn lock(&self) -> Result<StoreLock, BoxError> {
        // A lock taken just before this call is held for a lease from then, unless renewed:
        // one more poll after.
        let deadline = Instant::now() + self.lease + POLL_MAX;
        let mut pause = POLL_MIN;
        loop {
            if let Some(lock) = self.try_lock().await? {
                return Ok(lock);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockHeld(self.lease).into());
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }
}

impl TokenStore for RedisStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(self.load())
    }

    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        Box::pin(self.save(token))
    }

    /// Waits for the lock for one lease at most: a lock held longer is renewed by a live
    /// holder.
    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(self.lock())
    }

    fn try_lock(&self) -> BoxFuture<'_, Result<Option<StoreLock>, BoxError>> {
        Box::pin(self.try_lock())
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("token_key", &self.token_key)
            .field("lock_key", &self.lock_key)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// `EVAL` of `script` on `key`; its arguments follow.
///
/// The script's text goes with every call, instead of `EVALSHA` and a second request when
/// Redis does not know it yet: one request, which Redis runs in order with the others on the
/// connection even when the client no longer waits for its answer (a release after a lock
/// request cut short).
fn eval(script: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(1).arg(key);
    cmd
}

/// Whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Releases the lock if it still holds `owner`.
struct Release {
    connection: ConnectionManager,
    key: String,
    owner: String,
}

impl Release {
    /// Sends the release from a task of its own, on the connection the lock was taken on: a
    /// connection runs its requests in order, so Redis runs it after the lock's.
    fn spawn(self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // It runs out on its own.
        };
        let Self {
            mut connection,
            key,
            owner,
        } = self;
        drop(handle.spawn(async move {
            let released: Result<i64, _> = eval(RELEASE, &key)
                .arg(owner)
                .query_async(&mut connection)
                .await;
            // If this fails, the lock runs out on its own.
            drop(released);
        }));
    }
}

/// A lock request under way: dropped before Redis answered (it failed, or the future was
/// dropped), it releases what the request may have taken.
struct Attempt(Option<Release>);

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release.spawn();
        }
    }
}

/// The lease on the lock, released when dropped.
struct RedisLease {
    release: Release,
    lease: Duration,
}

impl Lease for RedisLease {
    fn renew(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async move {
            let renewed: i64 = eval(RENEW, &self.release.key)
                .arg(&self.release.owner)
                .arg(millis(self.lease))
                .query_async(&mut self.release.connection.clone())
                .await?;
            Ok(renewed == 1)
        })
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        let release = Release {
            connection: self.release.connection.clone(),
            key: std::mem::take(&mut self.release.key),
            owner: std::mem::take(&mut self.release.owner),
        };
        release.spawn();
    }
}

/// The lock stayed held by another process for a whole lease: its holder renews it.
#[derive(Debug)]
struct LockHeld(Duration);

impl fmt::Display for LockHeld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token store's lock stayed held for {:?}, a whole lease: its holder renews it",
            self.0
        )
    }
}

impl std::error::Error for LockHeld {}
