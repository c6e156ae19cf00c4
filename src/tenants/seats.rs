//! Seats: what keeps the tenants' hot path free of locks and of writes to memory that other
//! threads use, the way per-thread header copies keep a single cache's (`cache/local.rs`).
//!
//! The key map is the truth, behind a lock that only the slow path takes. Each thread that
//! sends a key's requests gets a *seat* for the key: a small record owned by the key's entry
//! (`Entry::seats`), naming the key's [`Ready`] state and the spelling of the requests it
//! serves. The thread finds its seats through a per-thread table, one per key map (indexed
//! by the map's slot), that maps a spelling's hash to a weak reference. On the hot path a
//! thread hashes the request's spelling, upgrades its weak reference (the seat's counts are
//! its own: no other thread upgrades this seat), checks the spelling, and sends the request
//! with the key's layer. Nothing is locked, allocated or written that another thread reads.
//!
//! A thread has one seat per spelling of a key it sends, and at most [`SEATS_PER_KEY`]: the
//! seat for a new spelling beyond them takes the place of the thread's oldest seat for the
//! key, in the entry and in the table. So neither grows with the ways a client writes one
//! origin (letter case, `:443` or none, leading zeros), and making a seat costs a pass over
//! the key's few seats.
//!
//! A seat whose thread has exited (its table dropped) is dropped by the key's next new seat.
//! Evicting a key drops its entry's seats, and with them the last references to the key's
//! layer, cache and secrets, but for requests in flight. What stays in a thread's table is a
//! weak reference to a freed seat: the evicting thread forgets its own at once, and every
//! thread forgets its others when evictions reach a quarter of its table (so stale references
//! never outnumber a third of the live ones), or when its table would grow.

use std::{
    cell::RefCell,
    collections::HashMap,
    hash::BuildHasherDefault,
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{
    Scope, TenantId,
    key::{Choice, Prehashed, Spelling},
    registry::Ready,
};
use crate::slot::{Pool, Slot};

/// How many spellings of one key a thread keeps seats for. A client writes one, or a few
/// (`https://pbx.example.com` here, `https://pbx.example.com:443` there); a thread that sends
/// more than this many in turn takes the slow path for some of them.
pub(crate) const SEATS_PER_KEY: usize = 4;

/// One thread's way to one key, for one spelling.
pub(crate) struct Seat {
    pub(crate) ready: Arc<Ready>,
    scheme: Box<str>,
    scheme_word: u64,
    authority: Box<str>,
    tenant: Option<TenantId>,
    scope: Option<Scope>,
    /// The id of the thread's table that points to the seat.
    table: u64,
    /// The spelling's hash, the seat's key in that table.
    hash: u64,
}

impl Seat {
    pub(crate) fn new(ready: Arc<Ready>, spelling: &Spelling<'_>, table: u64, hash: u64) -> Self {
        Self {
            ready,
            scheme: spelling.scheme.into(),
            scheme_word: spelling.scheme_word,
            authority: spelling.authority.into(),
            tenant: spelling.choice.tenant.cloned(),
            scope: spelling.choice.scope.cloned(),
            table,
            hash,
        }
    }

    /// The id of the thread's table that points to the seat: the seats of one thread's
    /// spellings of a key have the same.
    pub(crate) fn table(&self) -> u64 {
        self.table
    }

    #[inline]
    fn is(&self, spelling: &Spelling<'_>) -> bool {
        spelling.is(&Spelling {
            scheme: &self.scheme,
            scheme_word: self.scheme_word,
            authority: &self.authority,
            choice: Choice {
                tenant: self.tenant.as_ref(),
                scope: self.scope.as_ref(),
            },
        })
    }
}

/// One thread's seats in one key map.
struct Table {
    /// The key map's id: a slot is reused once its map is gone.
    owner: u64,
    /// Unique in the process: which thread's seats are which.
    id: u64,
    /// The map's count of evictions when this table last forgot its freed seats.
    evictions: u64,
    /// By spelling hash. Two spellings with one hash (a 64-bit collision) share an entry: the
    /// latest wins, and the other's requests take the slow path.
    seats: HashMap<u64, Weak<Seat>, BuildHasherDefault<Prehashed>>,
}

impl Table {
    /// Forgets the seats that were freed.
    fn prune(&mut self, evictions: u64) {
        self.seats.retain(|_, seat| seat.strong_count() > 0);
        self.evictions = evictions;
    }
}

thread_local! {
    static TABLES: RefCell<Vec<Option<Table>>> = const { RefCell::new(Vec::new()) };
}

/// The hot path: this thread's seat for `spelling` (of `hash`) in the key map `owner`, which
/// is in `slot` and has evicted `evictions` keys so far.
#[inline]
pub(crate) fn find(
    slot: usize,
    owner: u64,
    evictions: u64,
    hash: u64,
    spelling: &Spelling<'_>,
) -> Option<Arc<Seat>> {
    TABLES
        .try_with(|tables| {
            let mut tables = tables.try_borrow_mut().ok()?;
            let table = tables
                .get_mut(slot)?
                .as_mut()
                .filter(|t| t.owner == owner)?;
            if table.evictions != evictions {
                maybe_prune(table, evictions);
            }
            let seat = table.seats.get(&hash)?.upgrade()?;
            seat.is(spelling).then_some(seat)
        })
        .ok()
        .flatten()
}

/// Forgets freed seats once the evictions since the last time reach a quarter of the table.
#[cold]
fn maybe_prune(table: &mut Table, evictions: u64) {
    let since = evictions.wrapping_sub(table.evictions);
    if since.saturating_mul(4) >= table.seats.len() as u64 {
        table.prune(evictions);
    }
}

/// Makes the seat that `make` builds, given the id of this thread's table, this thread's seat
/// for a spelling of `hash` in the key map `owner`. `None` if the thread has no table to keep
/// it in (it is exiting).
pub(crate) fn insert(
    slot: usize,
    owner: u64,
    evictions: u64,
    hash: u64,
    make: impl FnOnce(u64) -> Seat,
) -> Option<Arc<Seat>> {
    static TABLE_IDS: AtomicU64 = AtomicU64::new(0);
    TABLES
        .try_with(|tables| {
            let mut tables = tables.try_borrow_mut().ok()?;
            if tables.len() <= slot {
                tables.resize_with(slot + 1, || None);
            }
            let table = match &mut tables[slot] {
                Some(table) if table.owner == owner => table,
                other => other.insert(Table {
                    owner,
                    id: TABLE_IDS.fetch_add(1, Ordering::Relaxed),
                    evictions,
                    seats: HashMap::default(),
                }),
            };
            // Before the table grows, make room by forgetting freed seats.
            if table.seats.len() == table.seats.capacity() {
                table.prune(evictions);
            }
            let seat = Arc::new(make(table.id));
            table.seats.insert(hash, Arc::downgrade(&seat));
            Some(seat)
        })
        .ok()
        .flatten()
}

/// Forgets this thread's `seat` in the key map `owner`, which gave its place to another
/// spelling of its key.
pub(crate) fn forget(slot: usize, owner: u64, seat: &Arc<Seat>) {
    let _ = TABLES.try_with(|tables| {
        if let Ok(mut tables) = tables.try_borrow_mut() {
            if let Some(Some(table)) = tables.get_mut(slot) {
                let points_to_seat = table
                    .seats
                    .get(&seat.hash)
                    .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(seat)));
                if table.owner == owner && table.id == seat.table && points_to_seat {
                    table.seats.remove(&seat.hash);
                }
            }
        }
    });
}

/// Forgets this thread's freed seats in the key map `owner`, after it evicted keys.
pub(crate) fn prune(slot: usize, owner: u64, evictions: u64) {
    let _ = TABLES.try_with(|tables| {
        if let Ok(mut tables) = tables.try_borrow_mut() {
            if let Some(Some(table)) = tables.get_mut(slot) {
                if table.owner == owner {
                    table.prune(evictions);
                }
            }
        }
    });
}

/// How many seats this thread's table for `slot` holds, freed ones included.
#[cfg(test)]
pub(crate) fn len(slot: usize, owner: u64) -> usize {
    TABLES.with(|tables| match tables.borrow().get(slot) {
        Some(Some(table)) if table.owner == owner => table.seats.len(),
        _ => 0,
    })
}

/// Forgets this thread's table for `slot`, whose key map is gone.
fn clear(slot: usize) {
    let _ = TABLES.try_with(|tables| {
        if let Ok(mut tables) = tables.try_borrow_mut() {
            if let Some(table) = tables.get_mut(slot) {
                *table = None;
            }
        }
    });
}

/// The key maps' slot numbers.
static POOL: Pool = Pool::new(clear);

/// A slot number for a new key map.
pub(crate) fn slot() -> Slot {
    Slot::take(&POOL)
}
