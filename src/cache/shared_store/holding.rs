//! The store's lock, held: its lease renewed while the holder works, and the holder stopped
//! if the lease is found lost.

use std::{future::Future, pin::pin, task::Poll, time::Duration};

use tokio::time::Instant;

use super::POLL_MIN;
use crate::{
    BoxError,
    error::Reason,
    rt,
    store::StoreLock,
    trace::{self, Chain},
};

/// The store's lock, held: renews its lease while the holder works.
pub(super) struct Holding<'a> {
    lock: &'a StoreLock,
    /// The lease's length; `None` for a lock that does not run out.
    lease: Option<Duration>,
    /// Since when the lease is known to run (taken, or last renewed): it lasts a lease
    /// from there. Renewal is due a third of a lease after it.
    renewed: Instant,
    /// When to renew next: a third of a lease after `renewed`, sooner after a failed try.
    next: Instant,
    /// The lease was found lost.
    lost: bool,
    /// The cache's timeout, which bounds a renewal too.
    timeout: Duration,
}

/// The lease was found lost: another cache holds the lock, or none does.
pub(super) struct Lost;

impl<'a> Holding<'a> {
    pub(super) fn new(lock: &'a StoreLock, timeout: Duration) -> Self {
        // The lock was taken a moment ago: counting its lease from now is close enough for
        // scheduling renewals a third of a lease apart.
        let now = Instant::now();
        let lease = lock.lease();
        Self {
            lock,
            lease,
            renewed: now,
            next: now + lease.map_or(Duration::ZERO, |l| l / 3),
            lost: false,
            timeout,
        }
    }

    /// Renews the lease now: `Err(Lost)` if it is lost. A renewal that fails leaves the
    /// holder holding: the store is likely unreachable for the others too.
    pub(super) async fn confirm(&mut self) -> Result<(), Lost> {
        if self.lease.is_none() {
            return Ok(());
        }
        self.renew().await;
        if self.lost { Err(Lost) } else { Ok(()) }
    }

    /// Runs `work` while renewing the lease; stops it (drops it) if the lease is lost.
    pub(super) async fn guard<F: Future>(&mut self, work: F) -> Result<F::Output, Lost> {
        self.during(work, true).await
    }

    /// Runs `work` while renewing the lease, to its end even if the lease is lost.
    pub(super) async fn keep<F: Future>(&mut self, work: F) -> F::Output {
        match self.during(work, false).await {
            Ok(output) => output,
            Err(Lost) => unreachable!("`during` runs to the end unless told to stop"),
        }
    }

    async fn during<F: Future>(&mut self, work: F, stop: bool) -> Result<F::Output, Lost> {
        let mut work = pin!(work);
        if self.lease.is_none() || self.lost {
            return if self.lost && stop {
                Err(Lost)
            } else {
                Ok(work.await)
            };
        }
        let mut renewing = pin!(self.renew_until_lost());
        let mut renewing_done = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            if !renewing_done && renewing.as_mut().poll(cx).is_ready() {
                renewing_done = true;
                if stop {
                    return Poll::Ready(Err(Lost));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Renews the lease when due, until it is found lost.
    async fn renew_until_lost(&mut self) {
        while !self.lost {
            renewal_due(self.next).await;
            self.renew().await;
        }
    }

    /// One renewal, bounded by a third of the lease (and the timeout): the next is due by
    /// then.
    async fn renew(&mut self) {
        let Some(lease) = self.lease else { return };
        let sent = Instant::now();
        match rt::timeout((lease / 3).min(self.timeout), self.lock.renew()).await {
            Ok(Ok(true)) => {
                self.renewed = sent;
                self.next = sent + lease / 3;
            }
            Ok(Ok(false)) => {
                self.lost = true;
                trace::warn!(
                    name: "store_lock",
                    held_ms = trace::ms(sent.saturating_duration_since(self.renewed)),
                    error = %Chain(&LeaseLost),
                    "the store's lock was lost; waiting for it again"
                );
            }
            failed => {
                let error: BoxError = match failed {
                    Ok(Err(error)) => error,
                    _ => Reason("store call timed out").into(),
                };
                trace::warn!(
                    name: "store_lock",
                    error = %Chain(&*error),
                    "the lease on the store's lock could not be renewed"
                );
                // Tried again soon: the lease may still be saved.
                self.next = Instant::now() + (lease / 10).max(POLL_MIN);
            }
        }
    }
}

/// Waits until a renewal is due. Under the model checker, which does not model time, never:
/// leases do not run out there unless a test ends them, and the holder's check before it
/// calls the provider finds that.
#[cfg(not(shuttle))]
async fn renewal_due(at: Instant) {
    tokio::time::sleep_until(at).await;
}

#[cfg(shuttle)]
async fn renewal_due(_: Instant) {
    std::future::pending::<()>().await;
}

/// Why a holder stopped.
#[derive(Debug)]
struct LeaseLost;

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the lease on the token store's lock ran out or was taken over")
    }
}

impl std::error::Error for LeaseLost {}
