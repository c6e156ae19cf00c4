//! Spellings: the tenants' hot path, a concurrent map from the way requests write their key
//! to the key's entry.
//!
//! The key map (`registry.rs`) is the truth, behind a lock that only the slow path takes. Once
//! a request has found its key there, the way it wrote the key (its scheme and authority byte
//! for byte, its tenant id and scope) is added to this map, naming the key's entry. The next
//! request written the same way hashes those bytes, finds the entry in the map without a lock
//! (a [`papaya`] map: an epoch-protected read, no lock, no allocation) and upgrades its weak
//! reference, the one write to memory other threads read: the entry's strong count.
//!
//! The map holds weak references so that evicting a key drops its entry, provider, cache and
//! token at once (but for requests in flight), whenever the map's epoch reclamation frees its
//! own nodes. Each key keeps at most [`SPELLINGS_PER_KEY`] spellings in the map: a new one
//! beyond them takes the place of the oldest, so the map does not grow with the ways a client
//! writes one origin (letter case, `:443` or none, leading zeros). A spelling with user info
//! (`user:pw@host`) is not added, so as not to keep a copy of it: its requests take the slow
//! path.

use std::{
    hash::{BuildHasherDefault, Hash, Hasher},
    sync::{Arc, PoisonError, Weak},
};

use super::{
    Scope, TenantId,
    key::read::{Choice, Prehashed, Spelling},
};
use crate::rt::Mutex;

/// How many spellings of one key the map keeps. A client writes one, or a few
/// (`https://pbx.example.com` here, `https://pbx.example.com:443` there); a client that sends
/// more than this many in turn takes the slow path for some of them.
pub(crate) const SPELLINGS_PER_KEY: usize = 4;

/// A spelling, owned: the map's key.
struct Spelt {
    hash: u64,
    scheme: Box<str>,
    scheme_word: u64,
    authority: Box<str>,
    tenant: Option<TenantId>,
    scope: Option<Scope>,
}

impl Spelt {
    fn of(spelling: &Spelling<'_>, hash: u64) -> Self {
        Self {
            hash,
            scheme: spelling.scheme.into(),
            scheme_word: spelling.scheme_word,
            authority: spelling.authority.into(),
            tenant: spelling.choice.tenant.cloned(),
            scope: spelling.choice.scope.cloned(),
        }
    }

    fn spelling(&self) -> Spelling<'_> {
        Spelling {
            scheme: &self.scheme,
            scheme_word: self.scheme_word,
            authority: &self.authority,
            choice: Choice {
                tenant: self.tenant.as_ref(),
                scope: self.scope.as_ref(),
            },
        }
    }
}

/// A spelling in the map, shared with the list of its entry's spellings.
#[derive(Clone)]
pub(crate) struct Key(Arc<Spelt>);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.hash);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0.spelling().is(&other.0.spelling())
    }
}

impl Eq for Key {}

/// A request's spelling, as the hot path looks it up: hashed as its [`Key`] is.
struct Probe<'a> {
    hash: u64,
    spelling: &'a Spelling<'a>,
}

impl Hash for Probe<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl papaya::Equivalent<Key> for Probe<'_> {
    #[inline]
    fn equivalent(&self, key: &Key) -> bool {
        self.spelling.is(&key.0.spelling())
    }
}

/// An entry's spellings in the map, oldest first, and whether the entry left the key map (a
/// spelling added after that would keep naming it). Each entry keeps its own, behind a lock.
#[derive(Default)]
pub(crate) struct Kept {
    gone: bool,
    spellings: Vec<Key>,
}

impl Kept {
    /// How many spellings of the entry the map holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spellings.len()
    }
}

/// The hot path's map, from spellings to the entries `E` of their keys.
pub(crate) struct Spellings<E> {
    map: papaya::HashMap<Key, Weak<E>, BuildHasherDefault<Prehashed>>,
}

impl<E> Spellings<E> {
    pub(crate) fn new() -> Self {
        Self {
            // Nodes are freed as soon as no thread may still read them, not by batches: a
            // batch would keep the allocations of evicted entries (weakly referenced) and of
            // their spellings until more were removed.
            //
            // A resize completes on the slow path that starts it: an incremental one (the
            // default) moves entries a few at a time on later insertions, and until it is
            // done a lookup may search two tables.
            map: papaya::HashMap::builder()
                .hasher(BuildHasherDefault::default())
                .collector(seize::Collector::new().batch_size(1))
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
        }
    }

    /// The hot path: the entry of the key that requests spelt `spelling` (of `hash`) go to.
    #[inline]
    pub(crate) fn find(&self, spelling: &Spelling<'_>, hash: u64) -> Option<Arc<E>> {
        self.map.pin().get(&Probe { hash, spelling })?.upgrade()
    }

    /// Adds `spelling` (of `hash`) for `entry`, whose spellings `kept` lists, in place of the
    /// entry's oldest spelling if it has [`SPELLINGS_PER_KEY`] already. Nothing if the entry
    /// left the key map.
    pub(crate) fn add(
        &self,
        entry: &Arc<E>,
        kept: &Mutex<Kept>,
        spelling: &Spelling<'_>,
        hash: u64,
    ) {
        let key = Key(Arc::new(Spelt::of(spelling, hash)));
        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.gone || kept.spellings.contains(&key) {
            return;
        }
        let map = self.map.pin();
        if kept.spellings.len() >= SPELLINGS_PER_KEY {
            let oldest = kept.spellings.remove(0);
            let _ = map.remove_if(&oldest, |_, to| to.as_ptr() == Arc::as_ptr(entry));
        }
        map.insert(key.clone(), Arc::downgrade(entry));
        kept.spellings.push(key);
    }

    /// Takes the spellings of `entry`, which `kept` lists, out of the map: it left the key map.
    pub(crate) fn remove(&self, entry: &E, kept: &Mutex<Kept>) {
        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.gone = true;
        let map = self.map.pin();
        for key in kept.spellings.drain(..) {
            // A spelling now naming the key's next entry stays.
            let _ = map.remove_if(&key, |_, to| std::ptr::eq(to.as_ptr(), entry));
        }
    }

    /// How many spellings the map holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
