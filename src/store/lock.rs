//! The store's lock: [`StoreLock`], held by the cache while it logs in or refreshes, and
//! [`Lease`], the holder's side of a lock granted as a lease.

use std::{fmt, sync::Mutex, time::Duration};

use crate::{BoxError, provider::BoxFuture};

/// A held [`TokenStore`](super::TokenStore) lock; dropping it releases the lock.
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
