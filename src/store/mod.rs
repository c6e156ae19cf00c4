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

use std::sync::Arc;

use crate::{BoxError, provider::BoxFuture};

mod change;
#[cfg(feature = "file-store")]
mod file;
mod lock;
mod memory;
mod record;
#[cfg(feature = "redis")]
mod redis;

pub(crate) use change::OnChange;
pub use change::TokenChange;
#[cfg(feature = "file-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "file-store")))]
#[doc(inline)]
pub use file::{FileStore, FileStoreError, FileStoreErrorKind};
pub use lock::{Lease, StoreLock};
pub use memory::MemoryStore;
pub use record::StoredToken;
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

#[cfg(test)]
fn _object_safe(_: Arc<dyn TokenStore>) {}
