//! Slot numbers: small integers for caches, by which each thread finds its own copy of a
//! cache's header in its per-thread table (see `local.rs`).
//!
//! A slot is taken from a process-wide pool and given back when its owner is dropped, so a
//! thread's table is as long as the most owners alive at once, not as the number ever made.

use std::sync::{Mutex, PoisonError};

/// The slot numbers of one kind of owner.
pub(crate) struct Pool {
    numbers: Mutex<Numbers>,
    /// Forgets the calling thread's entry for a slot given back: the other threads' entries
    /// are replaced when they next use the slot.
    clear: fn(usize),
}

struct Numbers {
    next: usize,
    free: Vec<usize>,
}

impl Pool {
    pub(crate) const fn new(clear: fn(usize)) -> Self {
        Self {
            numbers: Mutex::new(Numbers {
                next: 0,
                free: Vec::new(),
            }),
            clear,
        }
    }
}

/// A slot number, given back to its pool when dropped.
pub(crate) struct Slot {
    index: usize,
    pool: &'static Pool,
}

impl Slot {
    pub(crate) fn take(pool: &'static Pool) -> Self {
        let mut numbers = pool.numbers.lock().unwrap_or_else(PoisonError::into_inner);
        let index = numbers.free.pop().unwrap_or_else(|| {
            numbers.next += 1;
            numbers.next - 1
        });
        Self { index, pool }
    }

    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        (self.pool.clear)(self.index);
        self.pool
            .numbers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free
            .push(self.index);
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Slot").field(&self.index).finish()
    }
}
