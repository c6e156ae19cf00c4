//! Waiting for the store's lock: tries it, and while another cache holds it, reads the store
//! between two tries for a token that cache may have saved.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use super::{LockHeld, POLL_MAX, POLL_MIN};
use crate::{
    BoxError,
    cache::flight::fetch::Fetched,
    error::Reason,
    rt,
    store::{StoreLock, StoredToken, TokenStore},
    trace::{self, Chain, Started},
};

/// What waiting for the lock came to.
pub(super) enum Acquired {
    Lock(StoreLock),
    /// A newer token was read while waiting.
    Adopted(Fetched),
    /// The store failed: the lock, or a read while waiting for it. Holds the last record
    /// read while waiting, if any.
    Unreachable(Option<StoredToken>),
    /// The lock stayed held until `give_up`.
    GaveUp,
}

/// Takes the store's lock, or waits while another cache holds it, reading the store between
/// two tries and adopting what `adopt` takes from it.
pub(super) async fn acquire(
    store: &dyn TokenStore,
    timeout: Duration,
    give_up: Instant,
    started: Started,
    adopt: impl Fn(Option<&StoredToken>) -> Option<Fetched>,
) -> Acquired {
    let mut pause = POLL_MIN;
    let mut last = None;
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            trace::warn!(
                name: "store_lock",
                elapsed_ms = started.ms(),
                tries,
                error = %Chain(&LockHeld),
                "gave up waiting for the store's lock"
            );
            return Acquired::GaveUp;
        }
        match try_lock(store, timeout, left, started, tries).await {
            Tried::Taken(lock) => return Acquired::Lock(lock),
            Tried::Held => {}
            Tried::OutOfTime => continue,
            Tried::Failed => return Acquired::Unreachable(last),
        }
        // Held by another cache: read what it may have saved meanwhile.
        pause_for(pause.min(left)).await;
        pause = pause.saturating_mul(2).min(POLL_MAX);
        let left = give_up.saturating_duration_since(Instant::now());
        match within(timeout, left, store.load()).await {
            // Out of time: given up at the top of the loop.
            None => {}
            Some(Ok(stored)) => {
                if let Some(fetched) = adopt(stored.as_ref()) {
                    return Acquired::Adopted(fetched);
                }
                last = stored;
            }
            Some(Err(error)) => {
                trace::warn!(name: "store_load", error = %Chain(&*error), "store load failed");
                return Acquired::Unreachable(last);
            }
        }
    }
}

/// One try of the store's lock.
enum Tried {
    Taken(StoreLock),
    /// Another cache holds it.
    Held,
    /// No answer by `give_up`.
    OutOfTime,
    /// The store failed, or did not answer within the timeout.
    Failed,
}

/// Tries the store's lock once. A store that waits in `try_lock` (the default) may take until
/// `give_up`, `left` from now; one that does not answer within the timeout is taken to be
/// unreachable.
async fn try_lock(
    store: &dyn TokenStore,
    timeout: Duration,
    left: Duration,
    started: Started,
    tries: u32,
) -> Tried {
    match within(timeout, left, store.try_lock()).await {
        Some(Ok(Some(lock))) => {
            trace::trace!(
                name: "store_lock",
                elapsed_ms = started.ms(),
                tries,
                "store lock taken"
            );
            Tried::Taken(lock)
        }
        Some(Ok(None)) => Tried::Held,
        None => Tried::OutOfTime,
        Some(Err(error)) => {
            trace::warn!(
                name: "store_lock",
                elapsed_ms = started.ms(),
                error = %Chain(&*error),
                "store lock failed; a refresh token is not spent without it"
            );
            Tried::Failed
        }
    }
}

/// A store call while waiting for the lock, bounded by `timeout` and by what is `left` until
/// the wait gives up: `None` if that ran out first.
async fn within<T>(
    timeout: Duration,
    left: Duration,
    call: impl Future<Output = Result<T, BoxError>>,
) -> Option<Result<T, BoxError>> {
    let bound = timeout.min(left);
    match rt::timeout(bound, call).await {
        Ok(result) => Some(result),
        Err(_) if bound == left => None,
        Err(_) => Some(Err(Reason("store call timed out").into())),
    }
}

/// The pause between two tries of a held lock. Under the model checker, which does not model
/// time, a yield that lets the holder run.
async fn pause_for(pause: Duration) {
    rt::sleep(pause).await;
}
