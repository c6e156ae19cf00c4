//! Token stores: where the cache keeps its token beyond its own memory.
//!
//! By default a cache keeps its token in memory only, and a restarted process logs in again.
//! A [`TokenStore`] given to [`BearerAuthLayer::store`](crate::BearerAuthLayer::store) is read
//! before every login or refresh and written after every new token, so that
//!
//! - a restarted process that finds a still-valid token in its store sends it without logging
//!   in;
//! - several caches (several layers in one process with [`MemoryStore`], or several processes
//!   with a shared store such as `RedisStore`, feature `redis`) share one login: the one that
//!   takes the store's [lock](TokenStore::lock) first refreshes, and the others, taking the
//!   lock after it, find the new token in the store and use it instead of refreshing again.
//!   A refresh token that the server accepts only once is never spent twice.
//!
//! # What the cache does with a store
//!
//! When a cache needs a token (it has none, the one it has is due for refresh, or the server
//! refused it with `401`), its single flight
//!
//! 1. takes the store's lock ([`TokenStore::lock`]);
//! 2. reads the stored record ([`TokenStore::load`]). If it holds a token newer than any the
//!    cache has had or revoked (its [version](StoredToken::version) is greater) that is
//!    neither expired nor due for refresh, the cache adopts it and asks the provider nothing;
//! 3. otherwise refreshes with the *stored* refresh token (the newest one, which may be
//!    another process's), or logs in;
//! 4. saves the new token with a version above both the stored record's and every version
//!    the cache has seen ([`TokenStore::save`]); a store that already holds that version or
//!    a newer one keeps it;
//! 5. releases the lock.
//!
//! [`TokenCache::revoke`](crate::TokenCache::revoke) goes through the same lock: it saves a
//! *revoked* record ([`StoredToken::revoked`]), a version above the newest with no token, so
//! that the versions go on counting from there and no cache adopts the revoked token. While
//! it does, the cache's requests wait for it as for a login; a login the revoke discarded
//! never saves its token. A cache never adopts a version at or below one it has revoked, even
//! when the revoked record could not be saved.
//!
//! A store that fails is not fatal: a token that cannot be read is fetched from the provider,
//! a token that cannot be saved is still used. Without the lock (the store is unreachable) the
//! cache logs in rather than refreshing, because a refresh token shared with other processes
//! must not be spent without it.
//!
//! For users who only want to be told (to persist the token somewhere, say), there is
//! [`BearerAuthLayer::on_token_change`](crate::BearerAuthLayer::on_token_change).
//!
//! # Secrets
//!
//! A store holds the access token and the refresh token in plain text: whatever keeps them
//! (a file, a Redis server) must be protected like the password. [`StoredToken`]'s `Debug`
//! output hides them; [`StoredToken::to_json`] does not, as its purpose is to write them.

use std::{fmt, sync::Arc, time::SystemTime};

use serde_json::{Map, Value};

use crate::{BoxError, BoxFuture, TokenResponse};

mod memory;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod sync;

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use redis::RedisStore;

/// Keeps the cache's token where other caches, other processes or a restarted process find
/// it; see the [module documentation](self) for how the cache uses it.
///
/// Implement it for your own storage: `load` and `save` are required; `lock` defaults to no
/// lock, which is right for storage only one cache writes at a time (a file of one process).
/// A store shared by processes must lock, or two of them may refresh at once.
///
/// Errors may be any [`BoxError`]; keep tokens out of their messages.
///
/// # Example
///
/// A store keeping the token in a file, so a restarted process does not log in again:
///
/// ```
/// use std::path::PathBuf;
/// use tower_bearer_auth::{
///     BearerAuthLayer, BoxError,
///     provider::{BoxFuture, StaticToken},
///     store::{StoredToken, TokenStore},
/// };
///
/// struct FileStore(PathBuf);
///
/// impl TokenStore for FileStore {
///     fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
///         Box::pin(async move {
///             match tokio::fs::read_to_string(&self.0).await {
///                 Ok(json) => Ok(Some(StoredToken::from_json(&json)?)),
///                 Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
///                 Err(e) => Err(e.into()),
///             }
///         })
///     }
///
///     fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
///         Box::pin(async move {
///             // Readable by its owner only: it holds secrets.
///             tokio::fs::write(&self.0, token.to_json()).await?;
///             Ok(true)
///         })
///     }
///
/// }
///
/// let layer = BearerAuthLayer::new(StaticToken::new("abc"))
///     .store(FileStore(PathBuf::from("/var/lib/my-app/token.json")));
/// ```
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token, if there is one.
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>>;

    /// Stores `token`, unless the store already holds a record of the same or a greater
    /// [version](StoredToken::version): a cache whose lock expired while it was refreshing
    /// must not overwrite a newer token. Returns whether `token` was stored.
    ///
    /// `token` may be a [revoked](StoredToken::revoked) record, saved by
    /// [`TokenCache::revoke`](crate::TokenCache::revoke): store it like any other, so that
    /// [`load`](Self::load) returns it and the versions go on from it.
    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>>;

    /// Takes the store's lock, held by the returned [`StoreLock`] until it is dropped, which
    /// the cache does once it has saved the new token. While one cache holds it, no other
    /// cache sharing the store logs in or refreshes.
    ///
    /// A store shared by processes must give the lock an expiry, so that a holder that dies
    /// does not block the others for longer, and must bound how long `lock` waits.
    ///
    /// The default takes no lock.
    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(async { Ok(StoreLock::none()) })
    }
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        (**self).load()
    }

    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
        (**self).save(token)
    }

    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        (**self).lock()
    }
}

/// A held [`TokenStore`] lock; dropping it releases the lock.
pub struct StoreLock {
    guard: Option<Box<dyn Send>>,
}

impl StoreLock {
    /// A lock held until `guard` is dropped: the store releases its lock in `guard`'s `Drop`.
    pub fn new(guard: impl Send + 'static) -> Self {
        Self {
            guard: Some(Box::new(guard)),
        }
    }

    /// No lock at all, for stores only one cache writes to.
    pub fn none() -> Self {
        Self { guard: None }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLock")
            .field("held", &self.guard.is_some())
            .finish()
    }
}

/// A token as a [`TokenStore`] keeps it: the token response with an absolute expiry, and a
/// version number that grows with every record saved.
///
/// A record may also be *revoked*: saved by [`TokenCache::revoke`](crate::TokenCache::revoke),
/// it holds no token, only the version the next token counts from.
///
/// Its `Debug` output hides the access and refresh tokens.
#[derive(Clone)]
pub struct StoredToken {
    version: u64,
    token: Option<TokenResponse>,
}

impl StoredToken {
    /// A stored token of `version` holding `token`.
    ///
    /// The cache saves tokens with [`expires_at`](TokenResponse::expires_at) set (when they
    /// expire at all) and no `expires_in`, which would mean nothing once stored.
    pub fn new(version: u64, token: TokenResponse) -> Self {
        Self {
            version,
            token: Some(token),
        }
    }

    /// A revoked record of `version`: no token, and no cache adopts the versions below it.
    pub fn revoked(version: u64) -> Self {
        Self {
            version,
            token: None,
        }
    }

    /// The version: each record the caches sharing a store save has a greater one.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The token; `None` for a [revoked](Self::revoked) record.
    pub fn token(&self) -> Option<&TokenResponse> {
        self.token.as_ref()
    }

    /// The token, taken out; `None` for a [revoked](Self::revoked) record.
    pub fn into_token(self) -> Option<TokenResponse> {
        self.token
    }

    /// Whether this is a [revoked](Self::revoked) record.
    pub fn is_revoked(&self) -> bool {
        self.token.is_none()
    }

    /// The record as JSON: the token response's fields (`access_token`, `refresh_token`,
    /// `expires_at` in Unix seconds with milliseconds, `token_type`, `scope` and any others)
    /// plus `version`; a revoked record is `{"version": N, "revoked": true}`.
    ///
    /// The result holds the secrets in plain text.
    pub fn to_json(&self) -> String {
        let mut object = Map::new();
        object.insert("version".into(), self.version.into());
        let Some(t) = &self.token else {
            object.insert("revoked".into(), true.into());
            return Value::Object(object).to_string();
        };
        object.insert("access_token".into(), t.access_token().into());
        let optional = [
            ("refresh_token", t.refresh_token()),
            ("token_type", t.token_type()),
            ("scope", t.scope()),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                object.insert(name.into(), value.into());
            }
        }
        if let Some(at) = t.expires_at() {
            // Seconds with milliseconds, rounded down: a token is never thought to live longer
            // than it does.
            let millis = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let secs = Value::from(millis as f64 / 1000.0);
            object.insert("expires_at".into(), secs);
        }
        for (name, value) in t.extra() {
            object.entry(name.clone()).or_insert_with(|| value.clone());
        }
        Value::Object(object).to_string()
    }

    /// Reads a record written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    ///
    /// Fails if `json` is not such an object: no `version`, no `access_token` in a record
    /// that is not revoked, or fields of the wrong type.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;

        let mut object: Map<String, Value> = serde_json::from_str(json)?;
        let version = object
            .remove("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| serde_json::Error::custom("no `version` in the stored token"))?;
        if object.get("revoked") == Some(&Value::Bool(true)) {
            return Ok(Self::revoked(version));
        }
        let token = serde_json::from_value(Value::Object(object))?;
        Ok(Self::new(version, token))
    }
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("version", &self.version)
            .field("token", &self.token)
            .finish()
    }
}

/// A hook called with every new token; see
/// [`BearerAuthLayer::on_token_change`](crate::BearerAuthLayer::on_token_change).
pub(crate) type OnChange = Arc<dyn Fn(Option<&StoredToken>) + Send + Sync>;

#[cfg(test)]
fn _object_safe(_: Arc<dyn TokenStore>) {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_millis(2_000_000_000_123);
        let token = TokenResponse::new("access")
            .with_refresh_token("refresh")
            .with_expires_at(expires)
            .with_token_type("Bearer")
            .with_scope("read")
            .with_extra("role", "admin");
        let json = StoredToken::new(7, token).to_json();
        let back = StoredToken::from_json(&json).unwrap();
        assert_eq!(back.version(), 7);
        let t = back.token().unwrap();
        assert_eq!(t.access_token(), "access");
        assert_eq!(t.refresh_token(), Some("refresh"));
        // Milliseconds survive; a float's rounding may take a few nanoseconds off, never add.
        let back = t.expires_at().unwrap();
        assert!(
            back <= expires && expires.duration_since(back).unwrap() < Duration::from_micros(1)
        );
        assert_eq!(t.token_type(), Some("Bearer"));
        assert_eq!(t.scope(), Some("read"));
        assert_eq!(t.extra()["role"], "admin");
        assert_eq!(t.extra().len(), 1);
    }

    #[test]
    fn a_revoked_record_round_trips_with_its_version() {
        let json = StoredToken::revoked(9).to_json();
        let back = StoredToken::from_json(&json).unwrap();
        assert!(back.is_revoked() && back.token().is_none());
        assert_eq!(back.version(), 9);
    }

    #[test]
    fn rejects_records_without_version_or_token() {
        assert!(StoredToken::from_json(r#"{"access_token":"a"}"#).is_err());
        assert!(StoredToken::from_json(r#"{"version":1}"#).is_err());
        assert!(StoredToken::from_json("[]").is_err());
    }

    #[test]
    fn debug_hides_secrets() {
        let stored = StoredToken::new(
            1,
            TokenResponse::new("s3cr3t-access").with_refresh_token("s3cr3t-refresh"),
        );
        let debug = format!("{stored:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("version: 1"), "{debug}");
    }
}
