//! Token stores: where the cache keeps its token beyond its own memory.
//!
//! By default a cache keeps its token in memory only, and a restarted process logs in again.
//! A [`TokenStore`] given to [`TokenCacheBuilder::store`](crate::TokenCacheBuilder::store) is read
//! before every login or refresh and written after every new token, so that
//!
//! - a restarted process that finds a still-valid token in its store sends it without logging
//!   in;
//! - several caches (several layers in one process with [`MemoryStore`], or several processes
//!   with a shared store such as `RedisStore`, feature `redis`, or, on one machine,
//!   `FileStore`, feature `file-store`) share one login: the one that takes the store's
//!   [lock](TokenStore::lock) first refreshes, and the others, taking the lock after it,
//!   find the new token in the store and use it instead of refreshing again.
//!   A refresh token that the server accepts only once is never spent twice.
//!
//! # What the cache does with a store
//!
//! When a cache needs a token (it has none, the one it has is due for refresh, or the server
//! refused it with `401`), its single flight
//!
//! 1. reads the stored record ([`TokenStore::load`]). If it holds a token newer than any the
//!    cache has had or revoked (its [version](StoredToken::version) is greater) that is
//!    neither expired nor due for refresh, the cache adopts it and asks the provider nothing;
//! 2. otherwise tries to take the store's lock ([`TokenStore::try_lock`]). While another
//!    cache holds it, the cache waits, reading the store every 10 to 100 ms, and adopts a
//!    newer token as soon as the holder saves it (even one due for refresh, as long as it has
//!    not expired: the cache's requests send it meanwhile);
//! 3. under the lock, reads the store again (a holder before it may have saved since), and
//!    adopts a newer token as in step 1; otherwise refreshes with the *stored* refresh token
//!    (the newest one, which may be another process's), or logs in;
//! 4. saves the new token with a version above both the stored record's and every version
//!    the cache has seen ([`TokenStore::save`]); a store that already holds that version or
//!    a newer one keeps it;
//! 5. releases the lock.
//!
//! [`TokenCache::revoke`](crate::TokenCache::revoke) goes through the same lock, waiting for
//! it the same way: it saves a *revoked* record ([`StoredToken::revoked`]), a version above
//! the newest with no token, so that the versions go on counting from there and no cache
//! adopts the revoked token. While it does, the cache's requests wait for it as for a login;
//! a login the revoke discarded never saves its token. A cache never adopts a version at or
//! below one it has revoked, even when the revoked record could not be saved.
//!
//! # The lock is a lease
//!
//! A store shared by processes grants its lock as a short *lease*
//! ([`StoreLock::leased`]): the lock expires a lease after it was taken or last renewed. The
//! cache holding it renews it every third of the lease for as long as its flight runs
//! ([`StoreLock::renew`]), checks it once more right before it calls the provider, and
//! releases it as soon as its flight ends (by dropping the [`StoreLock`]). Renewing and
//! releasing compare and set on the holder's own token: a cache never extends or releases
//! another cache's lock. So:
//!
//! - **a holder that crashes or stalls** (a killed process, a paused VM, a runtime no longer
//!   driven) stops renewing, and costs the others at most one lease: then its lease runs
//!   out and a waiting cache takes the lock;
//! - **a holder that finds its lease lost** (a renewal says another cache holds the lock, or
//!   none does) stops being the holder: it drops its call to the provider, before the
//!   refresh token is spent if it can, and waits again, reading the store for the new
//!   holder's token;
//! - **a waiter never races a live holder.** A lock held for longer than a lease is held by a
//!   live holder that renews it, so a waiter keeps waiting: it gives up only after twice the
//!   cache's [timeout](crate::TokenCacheBuilder::timeout), and then its fetch fails with
//!   [`TokenErrorKind::Timeout`](crate::TokenErrorKind::Timeout) rather than log in beside
//!   the holder. Keep the lease well below twice the timeout (the defaults: 3 s and 20 s), or
//!   waiters give up on a crashed holder before its lease runs out;
//! - **waiting never costs a request while a valid token exists in the fleet:** a waiter
//!   reads the store before it waits and between tries, and adopts a newer token there.
//!
//! A store that fails is not fatal: a token that cannot be read is fetched from the provider,
//! a token that cannot be saved is still used. Without the lock (the store is unreachable:
//! the lock, or a read while waiting for it, fails) the cache logs in rather than
//! refreshing, because a refresh token shared with other processes must not be spent
//! without it; once the store answers again, the next fetch shares its token as before. A
//! renewal that fails leaves the holder holding what it believes to be its lease: the store
//! is likely unreachable for the others too.
//!
//! The waiting, renewing and checking are the cache's, the same for every store: a store
//! only has to take the lease without waiting ([`TokenStore::try_lock`]), renew it
//! ([`Lease::renew`]) and release it (the [`Lease`]'s `Drop`), each comparing and setting on
//! the holder's token. [`MemoryStore`] and `RedisStore` do.
//!
//! A lock that the operating system releases when its holder dies, such as `FileStore`'s
//! lock file, needs no lease ([`StoreLock::new`]): a crashed holder frees it at once. It does
//! not run out while its holder lives, stalled or not: a waiter then gives up after twice its
//! timeout, as with a live holder.
//!
//! For users who only want to be told (to persist the token somewhere, say), there is
//! [`TokenCacheBuilder::on_token_change`](crate::TokenCacheBuilder::on_token_change).
//!
//! # Secrets
//!
//! A store holds the access token and the refresh token in plain text: whatever keeps them
//! (a file, a Redis server) must be protected like the password. [`StoredToken`]'s `Debug`
//! output hides them; [`StoredToken::to_json`] does not, as its purpose is to write them.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use serde_json::{Map, Value};

use crate::{BoxError, provider::BoxFuture, token::TokenResponse};

#[cfg(feature = "file-store")]
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "file-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "file-store")))]
#[doc(inline)]
pub use file::{FileStore, FileStoreError, FileStoreErrorKind};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use redis::RedisStore;

/// Keeps the cache's token where other caches, other processes or a restarted process find
/// it; see the [module documentation](self) for how the cache uses it.
///
/// For a file, use `FileStore` (feature `file-store`): it creates the file readable by its
/// owner only, writes it atomically, keeps the version rule below and locks across processes.
///
/// Implement it for your own storage: `load` and `save` are required; the lock defaults to no
/// lock, which is right for storage only one cache writes at a time. A store shared by
/// processes must lock, or two of them may refresh at once, and its lock must be a lease
/// ([`StoreLock::leased`], see "The lock is a lease" in the [module documentation](self)) or
/// one the operating system releases when its holder dies ([`StoreLock::new`]): implement
/// [`try_lock`](Self::try_lock) and [`lock`](Self::lock).
///
/// `save` must keep the version rule: a record replaces only a record of a smaller
/// [version](StoredToken::version), or none.
///
/// Errors may be any [`BoxError`]; keep tokens out of their messages.
///
/// # Example
///
/// A store in a table of the application's own (a map stands in for it here), for caches of
/// one process:
///
/// ```
/// use std::{collections::HashMap, sync::Mutex};
/// use tower_bearer_auth::{
///     BearerAuthLayer, BoxError, Origin, TokenCache,
///     provider::{BoxFuture, StaticToken},
///     store::{StoredToken, TokenStore},
/// };
///
/// #[derive(Default)]
/// struct TableStore {
///     rows: Mutex<HashMap<&'static str, StoredToken>>,
/// }
///
/// impl TokenStore for TableStore {
///     fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
///         let row = self.rows.lock().unwrap().get("pbx").cloned();
///         Box::pin(async move { Ok(row) })
///     }
///
///     fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<bool, BoxError>> {
///         let mut rows = self.rows.lock().unwrap();
///         // The version rule: never over the same or a newer version.
///         let newer = rows.get("pbx").is_none_or(|row| token.version() > row.version());
///         if newer {
///             rows.insert("pbx", token.clone());
///         }
///         Box::pin(async move { Ok(newer) })
///     }
/// }
///
/// # fn main() -> Result<(), BoxError> {
/// let cache = TokenCache::builder(StaticToken::new("abc")).store(TableStore::default()).build();
/// let layer = BearerAuthLayer::new(cache).allow_origin(Origin::try_from("https://api.example.com")?);
/// # Ok(())
/// # }
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

    /// Takes the store's lock, waiting while another cache holds it; the lock is held by the
    /// returned [`StoreLock`] until it is dropped. For callers of the store's own: the cache
    /// calls [`try_lock`](Self::try_lock), and waits itself.
    ///
    /// A store shared by processes grants a lease ([`StoreLock::leased`]) and bounds the wait:
    /// a lock held longer than a lease is held by a live holder that renews it.
    ///
    /// The default takes no lock.
    fn lock(&self) -> BoxFuture<'_, Result<StoreLock, BoxError>> {
        Box::pin(async { Ok(StoreLock::none()) })
    }

    /// Takes the store's lock if no other cache holds it, without waiting: `Ok(None)` while
    /// another does. The cache calls it before it logs in or refreshes, and again every 10 to
    /// 100 ms while it gets `Ok(None)`, reading the store in between; once it has the lock,
    /// no other cache sharing the store logs in or refreshes until it drops it (or, for a
    /// lease, until the lease runs out).
    ///
    /// A store shared by processes must grant a lease ([`StoreLock::leased`]), and a try
    /// whose answer never came (it timed out, or the future was dropped) must not leave a
    /// lock behind: release it by the try's token once the store answers again, or at the
    /// least let it expire within one lease.
    ///
    /// An error means the store cannot be reached: the cache then logs in without the lock.
    ///
    /// The default waits for [`lock`](Self::lock); implement this for a lock that can be taken
    /// without waiting.
    fn try_lock(&self) -> BoxFuture<'_, Result<Option<StoreLock>, BoxError>> {
        Box::pin(async move { self.lock().await.map(Some) })
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

    fn try_lock(&self) -> BoxFuture<'_, Result<Option<StoreLock>, BoxError>> {
        (**self).try_lock()
    }
}

/// A held [`TokenStore`] lock; dropping it releases the lock.
///
/// A lock shared by processes is a *lease* ([`leased`](Self::leased)): it runs out a lease
/// after it was taken or last [renewed](Self::renew), so that a holder that crashed or
/// stalled blocks the others for one lease at most. The cache renews it while it holds it.
pub struct StoreLock {
    /// Never locked: the mutex only makes the guard `Sync`, so that the lock can be
    /// borrowed across `.await`s in a `Send` future.
    guard: Option<Mutex<Box<dyn Send>>>,
    lease: Option<(Duration, Box<dyn Lease>)>,
}

/// The holder's side of a [`StoreLock`] granted as a lease: see
/// [`StoreLock::leased`].
///
/// Dropping it releases the lock, if the lock still holds this holder's token (compare and
/// set): at once, or in a task of its own for a store that must be called. A release that
/// fails leaves the lock to run out on its own.
///
/// # Example
///
/// A lease on a lock in memory, as a key-value store would keep it:
///
/// ```
/// use std::{sync::{Arc, Mutex}, time::{Duration, Instant}};
/// use tower_bearer_auth::{BoxError, provider::BoxFuture, store::{Lease, StoreLock}};
///
/// /// The lock: the holder's token, and when the lease runs out.
/// type Slot = Arc<Mutex<Option<(u64, Instant)>>>;
///
/// struct MyLease { slot: Slot, token: u64, length: Duration }
///
/// impl Lease for MyLease {
///     fn renew(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
///         let mut slot = self.slot.lock().unwrap();
///         let now = Instant::now();
///         let ours = matches!(*slot, Some((t, until)) if t == self.token && now < until);
///         if ours {
///             *slot = Some((self.token, now + self.length));
///         }
///         Box::pin(async move { Ok(ours) })
///     }
/// }
///
/// impl Drop for MyLease {
///     fn drop(&mut self) {
///         let mut slot = self.slot.lock().unwrap();
///         if matches!(*slot, Some((t, _)) if t == self.token) {
///             *slot = None;
///         }
///     }
/// }
///
/// fn try_lock(slot: &Slot, token: u64) -> Option<StoreLock> {
///     let length = Duration::from_secs(3);
///     let mut held = slot.lock().unwrap();
///     let now = Instant::now();
///     if matches!(*held, Some((_, until)) if now < until) {
///         return None; // another holder's lease is running
///     }
///     *held = Some((token, now + length));
///     let lease = MyLease { slot: slot.clone(), token, length };
///     Some(StoreLock::leased(length, lease))
/// }
/// # let slot = Slot::default();
/// # let lock = try_lock(&slot, 1).unwrap();
/// # assert!(try_lock(&slot, 2).is_none());
/// # drop(lock);
/// # assert!(try_lock(&slot, 3).is_some());
/// ```
pub trait Lease: Send + Sync + 'static {
    /// Extends the lease to a whole lease from now, if the lock still holds this holder's
    /// token and has not run out (compare and set): `Ok(true)`. `Ok(false)` once the lease is
    /// lost: it ran out, or another holder took the lock since. An error means the store
    /// could not be asked.
    fn renew(&self) -> BoxFuture<'_, Result<bool, BoxError>>;
}

impl StoreLock {
    /// A lock held until `guard` is dropped: the store releases its lock in `guard`'s `Drop`.
    /// It never runs out: for locks in one process, or that the operating system releases
    /// when their holder dies (a lock file, say).
    pub fn new(guard: impl Send + 'static) -> Self {
        Self {
            guard: Some(Mutex::new(Box::new(guard))),
            lease: None,
        }
    }

    /// A lock granted as a lease of `length`: it runs out `length` after it was taken or last
    /// renewed through `lease`, and dropping `lease` releases it. The cache renews it every
    /// third of `length` while it holds it.
    pub fn leased(length: Duration, lease: impl Lease) -> Self {
        Self {
            guard: None,
            lease: Some((length, Box::new(lease))),
        }
    }

    /// No lock at all, for stores only one cache writes to.
    pub fn none() -> Self {
        Self {
            guard: None,
            lease: None,
        }
    }

    /// The length of the lease, for a lock granted as one.
    pub fn lease(&self) -> Option<Duration> {
        self.lease.as_ref().map(|(length, _)| *length)
    }

    /// Extends a lease to a whole lease from now, if it is still this holder's: `Ok(true)`;
    /// `Ok(false)` once it is lost (it ran out, or another holder took the lock). A lock that
    /// is not a lease is held until dropped: `Ok(true)`.
    ///
    /// # Errors
    ///
    /// The store's error, when it could not be asked.
    pub fn renew(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        match &self.lease {
            Some((_, lease)) => lease.renew(),
            None => Box::pin(async { Ok(true) }),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLock")
            .field("held", &(self.guard.is_some() || self.lease.is_some()))
            .field("lease", &self.lease())
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

/// A change of a cache's token, and where the new token came from, as
/// [`TokenCacheBuilder::on_token_change`](crate::TokenCacheBuilder::on_token_change) tells it.
///
/// A new token comes as the [`StoredToken`] saved to the cache's [store](TokenStore) (or, without
/// a store, as it would be saved), whose [`version`](StoredToken::version) is then the token's
/// [generation](crate::Token::generation). It holds the secrets: keep them out of logs.
///
/// ```
/// use tower_bearer_auth::store::TokenChange;
///
/// fn describe(change: TokenChange<'_>) -> &'static str {
///     match change {
///         TokenChange::Login(_) => "logged in",
///         TokenChange::Refresh(_) => "refreshed",
///         TokenChange::Store(_) => "taken from the store",
///         TokenChange::Invalidated => "invalidated",
///         TokenChange::Revoked => "revoked",
///         _ => "changed",
///     }
/// }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub enum TokenChange<'a> {
    /// A login gave the cache this token (after a failed refresh too).
    Login(&'a StoredToken),
    /// The refresh token gave the cache this token.
    Refresh(&'a StoredToken),
    /// The cache took this token from its store, where another cache saved it, instead of
    /// fetching one.
    Store(&'a StoredToken),
    /// The cache stopped sending its token: the server refused it (a `401`), or
    /// [`TokenCache::invalidate`](crate::TokenCache::invalidate) was called. The next request
    /// refreshes it or logs in.
    Invalidated,
    /// [`TokenCache::revoke`](crate::TokenCache::revoke) forgot the token.
    Revoked,
}

impl<'a> TokenChange<'a> {
    /// The new token; `None` when the token was invalidated or revoked.
    pub fn token(&self) -> Option<&'a StoredToken> {
        match *self {
            Self::Login(token) | Self::Refresh(token) | Self::Store(token) => Some(token),
            Self::Invalidated | Self::Revoked => None,
        }
    }
}

/// A hook called with every change of the token; see
/// [`TokenCacheBuilder::on_token_change`](crate::TokenCacheBuilder::on_token_change).
pub(crate) type OnChange = Arc<dyn Fn(TokenChange<'_>) + Send + Sync>;

#[cfg(test)]
fn _object_safe(_: Arc<dyn TokenStore>) {}

#[cfg(test)]
mod tests {
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
