//! Per-thread copies of the `Authorization` header: what keeps the hot path free of locks,
//! allocations and writes to memory other threads use.
//!
//! Each cache owns the copies of its current token, one per thread that sent it (the
//! cache's `State::locals`), and takes a small number, its *slot*, from a process-wide pool.
//! Each thread keeps a table of weak references indexed by slot. On the hot path a thread
//! upgrades its weak reference, checks that the copy belongs to this cache, has not been
//! retired and has not reached its refresh point, and clones the header: the reference counts
//! it touches are those of its own copy. The cost is the same for one cache or ten thousand.
//!
//! The cache retires all its copies (marks them and drops its strong references) whenever a
//! copy must stop being sent: a new token, [`invalidate`](super::TokenCache::invalidate),
//! [`revoke`](super::TokenCache::revoke). Dropping the cache drops them too. A copy's secret
//! then lives only as long as a request still carrying it; what stays in a thread's table is
//! a weak reference to freed memory, replaced the next time that thread uses the slot.

use std::{
    cell::RefCell,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, Ordering},
    },
};

use http::HeaderValue;

use super::{
    Shared,
    slot::{Pool, Slot},
};
use crate::{clock::Deadline, token::Token};

/// One thread's copy of one token's header.
pub(crate) struct Local {
    /// The id of the cache it belongs to: a slot is reused once its cache is gone.
    owner: u64,
    pub(crate) header: HeaderValue,
    pub(crate) generation: u64,
    /// The token's refresh point: from then on the slow path decides. `None`: never.
    fresh_until: Option<Deadline>,
    retired: AtomicBool,
    /// The cache, for a request refused with `401` (reached through the copy it carried).
    pub(crate) cache: Weak<Shared>,
}

impl Local {
    /// A copy of `token`'s header for the calling thread, owned by `shared`.
    pub(crate) fn new(shared: &Arc<Shared>, token: &Token) -> Option<Self> {
        // Bytes of our own, so this thread's clones never touch another thread's count.
        let mut header = HeaderValue::from_bytes(token.header.as_bytes()).ok()?;
        header.set_sensitive(true);
        Some(Self {
            owner: shared.id,
            header,
            generation: token.generation,
            fresh_until: token.refresh_at.map(Deadline::new),
            retired: AtomicBool::new(false),
            cache: Arc::downgrade(shared),
        })
    }

    /// Stops the hot path from using this copy.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether the hot path may send this copy now.
    #[inline]
    fn current(&self, owner: u64) -> bool {
        self.owner == owner
            && !self.retired.load(Ordering::Acquire)
            && self.fresh_until.is_none_or(|at| !at.passed())
    }

    /// Whether a thread's table still points to this copy: once its thread has exited, only
    /// the cache (and requests still carrying it) hold it.
    pub(crate) fn has_thread(self: &Arc<Self>) -> bool {
        Arc::weak_count(self) > 0
    }
}

thread_local! {
    static TABLE: RefCell<Vec<Weak<Local>>> = const { RefCell::new(Vec::new()) };
}

/// The hot path: this thread's copy for the cache `owner` in `slot`, if it may be sent now.
#[inline]
pub(crate) fn get(slot: usize, owner: u64) -> Option<Arc<Local>> {
    TABLE
        .try_with(|table| {
            let table = table.try_borrow().ok()?;
            let local = table.get(slot)?.upgrade()?;
            local.current(owner).then_some(local)
        })
        .ok()
        .flatten()
}

/// Makes `local` this thread's copy for `slot`. Returns whether it is (not while the
/// thread's table is being torn down).
pub(crate) fn set(slot: usize, local: &Arc<Local>) -> bool {
    TABLE
        .try_with(|table| {
            let Ok(mut table) = table.try_borrow_mut() else {
                return false;
            };
            if table.len() <= slot {
                table.resize_with(slot + 1, Weak::new);
            }
            table[slot] = Arc::downgrade(local);
            true
        })
        .unwrap_or(false)
}

/// Forgets this thread's copy for `slot`, if it has one.
fn clear(slot: usize) {
    let _ = TABLE.try_with(|table| {
        if let Ok(mut table) = table.try_borrow_mut() {
            if let Some(entry) = table.get_mut(slot) {
                *entry = Weak::new();
            }
        }
    });
}

/// The caches' slot numbers.
static POOL: Pool = Pool::new(clear);

/// A slot number for a new cache.
pub(crate) fn slot() -> Slot {
    Slot::take(&POOL)
}
