//! [`RedisStore`]: a token store in Redis (feature `redis`).

use std::{
    fmt,
    hash::{BuildHasher, RandomState},
    time::Duration,
};

use redis::{Client, RedisError, Script, aio::ConnectionManager};
use tokio::time::Instant;

use super::{StoreLock, StoredToken, TokenStore};
use crate::{BoxError, BoxFuture};

/// Default lifetime of the lock: longer than the longest hold with the cache's default
/// 10-second timeout (load, the fetch and save, each bounded by it: 30 s), with room.
const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
/// The longest lock lifetime: a day is longer than any hold, and keeps the deadline
/// arithmetic from overflowing.
const MAX_LOCK_TTL: Duration = Duration::from_secs(24 * 3600);
/// Bounds on the pause between two attempts to take a held lock.
const POLL_MIN: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);

/// Writes the token only over an older version.
const SAVE: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'token', ARGV[2])
return 1
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
/// | `tower-bearer-auth:{name}:lock` | string | a random id of the process holding the lock, with an expiry ([`RedisStore::lock_ttl`]) |
///
/// The braces make both keys hash to one slot of a Redis Cluster. Neither key expires on its
/// own except the lock: the token stays until a newer record replaces it: a newer token, or the revoked record a revoke saves.
///
/// # Pointing several services at it
///
/// Give every process that logs in as one account the same Redis server and the same name:
/// `RedisStore::new("redis://redis.internal:6379/", "pbx-admin")`, with its own provider for
/// that account (same server, same user). Another account, or the same user on another PBX,
/// needs another name; two accounts under one name would hand each other their tokens. All
/// of them should use the same [`lock_ttl`](RedisStore::lock_ttl). Nothing else is shared:
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
/// `SET … NX PX` takes the lock with an expiry; a Lua script deletes it only if it still holds
/// this process's id. A process waiting for the lock polls for it (every 10 to 100 ms) for
/// a little more than the lock's lifetime, then gives up: the cache then logs in without spending the shared
/// refresh token. A holder that crashes blocks the others for at most the lock's lifetime.
/// A holder whose lock expired while it was still refreshing cannot overwrite a newer token:
/// saving is a Lua script that only writes a greater version.
///
/// # Example
///
/// ```no_run
/// use tower_bearer_auth::{BearerAuthLayer, provider::portsip::PortSip, store::RedisStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In every replica of the service:
/// let store = RedisStore::new("redis://redis.internal:6379/", "pbx-admin")?;
/// let provider = PortSip::new("https://pbx.example.com:8887", "admin", "secret").build()?;
/// let layer = BearerAuthLayer::new(provider).store(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    token_key: String,
    lock_key: String,
    lock_ttl: Duration,
}

impl RedisStore {
    /// A store on the Redis server at `url` (`redis://…`, or `rediss://…` if the `redis`
    /// crate's TLS support is on), for the account called `name`.
    ///
    /// Connects on first use, and reconnects after a lost connection.
    ///
    /// # Errors
    ///
    /// Fails when `url` is not a Redis URL.
    pub fn new(url: &str, name: &str) -> Result<Self, RedisError> {
        // Fail fast when the server is down: the cache then does without the store.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let connection = Client::open(url)?.get_connection_manager_lazy(config)?;
        Ok(Self::from_connection(connection, name))
    }

    /// A store using `connection`, for the account called `name`.
    pub fn from_connection(connection: ConnectionManager, name: &str) -> Self {
        Self {
            connection,
            token_key: format!("tower-bearer-auth:{{{name}}}:token"),
            lock_key: format!("tower-bearer-auth:{{{name}}}:lock"),
            lock_ttl: DEFAULT_LOCK_TTL,
        }
    }

    /// How long the lock lives when its holder does not release it (it crashed). A process
    /// waits for a held lock this long at most.
    ///
    /// Make it longer than the longest hold, three times the layer's
    /// [`timeout`](crate::BearerAuthLayer::timeout): the holder loads the stored token,
    /// refreshes (and logs in after a refused refresh, the two within one timeout) and saves,
    /// each step bounded by the timeout. A lock that expires under a live holder lets a
    /// second process spend the same refresh token.
    ///
    /// Defaults to 60 seconds, which covers the default 10-second timeout. Clamped to between
    /// a millisecond and a day.
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.clamp(Duration::from_millis(1), MAX_LOCK_TTL);
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
        let saved: i64 = Script::new(SAVE)
            .key(&self.token_key)
            .arg(token.version())
            .arg(token.to_json())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(saved == 1)
    }

    async fn lock(&self) -> Result<StoreLock, BoxError> {
        let owner = format!(
            "{:016x}{:016x}",
            RandomState::new().hash_one(std::process::id()),
            RandomState::new().hash_one(Instant::now())
        );
        let ttl_ms = u64::try_from(self.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        // A lock taken just before this call lives `lock_ttl` from then: one more poll after.
        let deadline = Instant::now() + self.lock_ttl + POLL_MAX;
        let mut pause = POLL_MIN;
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&self.lock_key)
                .arg(&owner)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut self.connection.clone())
                .await?;
            if taken.is_some() {
                return Ok(StoreLock::new(Held {
                    connection: self.connection.clone(),
                    key: self.lock_key.clone(),
                    owner,
                }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockTimeout(self.lock_ttl).into());
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

    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(self.lock())
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("token_key", &self.token_key)
            .field("lock_key", &self.lock_key)
            .field("lock_ttl", &self.lock_ttl)
            .finish_non_exhaustive()
    }
}

/// The lock, held until dropped.
struct Held {
    connection: ConnectionManager,
    key: String,
    owner: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return; // It expires on its own.
        };
        let (mut connection, key, owner) = (
            self.connection.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        drop(handle.spawn(async move {
            let released: Result<i64, _> = Script::new(RELEASE)
                .key(key)
                .arg(owner)
                .invoke_async(&mut connection)
                .await;
            // If this fails the lock expires on its own.
            drop(released);
        }));
    }
}

/// The lock stayed held by another process for its whole lifetime.
#[derive(Debug)]
struct LockTimeout(Duration);

impl fmt::Display for LockTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the token store's lock stayed held for {:?}, its whole lifetime",
            self.0
        )
    }
}

impl std::error::Error for LockTimeout {}
