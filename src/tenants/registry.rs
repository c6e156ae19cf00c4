//! The key map shared by a [`TenantsLayer`](super::TenantsLayer), its services and their
//! clones: one entry per key, each with its own [`BearerAuthLayer`].
//!
//! The map is behind a `std::sync::RwLock` that only the slow path takes: the first request
//! for a key (or for a new spelling of it), a new key, a sweep, the handle's calls. Requests
//! after the first find the key through the map of spellings (see `spellings.rs`).

use std::{
    error::Error,
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hashbrown::HashTable;
use tokio::{sync::OnceCell, time::Instant};

use super::{
    TenantError, TenantKey,
    key::read::{Choice, Spelling, Target, Written},
    ready::{Ready, Rotating},
    spellings::{Kept, Spellings},
};
use crate::{
    BoxError,
    cache::{TokenCache, TokenCacheBuilder},
    layer::BearerAuthLayer,
    metrics::Labels,
    provider::{BoxFuture, TokenProvider},
    rt::{self, AbortHandle, Handle, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard},
    trace,
};

/// Builds a key's provider.
pub(crate) type Factory = Arc<
    dyn Fn(&TenantKey) -> BoxFuture<'static, Result<Arc<dyn TokenProvider>, BoxError>>
        + Send
        + Sync,
>;

/// Makes a key's layer from its cache's builder, with the user's settings.
pub(crate) type Configure =
    Arc<dyn Fn(&TenantKey, TokenCacheBuilder) -> BearerAuthLayer + Send + Sync>;

/// The layer's settings.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) factory: Factory,
    pub(crate) configure: Option<Configure>,
    pub(crate) max_tenants: usize,
    pub(crate) idle_timeout: Duration,
    /// Whether the keys' metrics carry the tenant id (they carry the origin).
    pub(crate) tenant_label: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("max_tenants", &self.max_tenants)
            .field("idle_timeout", &self.idle_timeout)
            .field("configure", &self.configure.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the factory refused a key, shared by every request that waited for its answer.
pub(crate) type Refusal = Arc<dyn Error + Send + Sync>;

/// One key.
pub(crate) struct Entry {
    pub(crate) key: TenantKey,
    hash: u64,
    /// The factory's answer, once it gave one. Concurrent first requests wait for one call,
    /// and share its refusal.
    built: OnceCell<Result<Arc<Ready>, Refusal>>,
    /// When a sweep last saw the key used (or the key was made), in milliseconds since the
    /// registry's epoch, and the number of that sweep (which orders keys seen within one
    /// millisecond).
    last_seen: AtomicU64,
    last_sweep: AtomicU64,
    /// The key's spellings in the map of spellings.
    pub(crate) spellings: Mutex<Kept>,
}

impl Entry {
    #[inline]
    fn is(&self, target: &Target<'_>, choice: Choice<'_>) -> bool {
        target.is(self.key.origin()) && self.key.choice() == choice
    }

    /// The key's state, once its provider is built.
    pub(crate) fn ready(&self) -> Option<&Arc<Ready>> {
        self.built.get()?.as_ref().ok()
    }

    /// Whether a request used the key since the last sweep; clears the mark.
    fn take_used(&self) -> bool {
        self.ready()
            .is_some_and(|ready| ready.used.swap(false, Ordering::Relaxed))
    }
}

#[derive(Default)]
struct Map {
    /// The entries, by the hash of their key (`Target::hash`, seeded per map).
    entries: HashTable<Arc<Entry>>,
    /// How many sweeps ran.
    sweeps: u64,
    /// The task that sweeps for idle keys while there are keys.
    sweeper: Option<AbortHandle>,
}

impl Map {
    #[inline]
    fn find(&self, hash: u64, target: &Target<'_>, choice: Choice<'_>) -> Option<&Arc<Entry>> {
        self.entries.find(hash, |entry| entry.is(target, choice))
    }

    fn find_key(&self, seed: u64, key: &TenantKey) -> Option<&Arc<Entry>> {
        let target = Target::of_origin(key.origin());
        let hash = target.hash(seed, key.choice());
        self.find(hash, &target, key.choice())
    }

    fn insert(&mut self, entry: Arc<Entry>) {
        self.entries.insert_unique(entry.hash, entry, |e| e.hash);
    }

    /// Takes `entry` out of the map; `None` if it was not in it.
    fn remove(&mut self, entry: &Entry) -> Option<Arc<Entry>> {
        let found = self
            .entries
            .find_entry(entry.hash, |e| std::ptr::eq(Arc::as_ptr(e), entry))
            .ok()?;
        Some(found.remove().0)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Gives back the memory of many removed keys.
    fn shrink(&mut self) {
        if self.entries.capacity() > 2 * self.entries.len() + 64 {
            self.entries.shrink_to_fit(|e| e.hash);
        }
    }

    fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.entries.iter()
    }
}

/// Keys taken out of the map, dropped (with their caches and secrets) once the lock is
/// released.
type Evicted = Vec<(Arc<Entry>, &'static str)>;

/// The shared key map.
pub(crate) struct Registry {
    map: RwLock<Map>,
    /// The hot path's way to the keys: by the bytes of a request's spelling.
    spellings: Spellings<Entry>,
    seed: u64,
    pub(crate) settings: Settings,
    epoch: Instant,
    /// When the next sweep for idle keys is due, in milliseconds since `epoch`.
    next_sweep: AtomicU64,
    /// This registry, for the sweeper task (which must not keep it alive).
    me: Weak<Registry>,
}

impl Registry {
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            map: RwLock::default(),
            spellings: Spellings::new(),
            seed: RandomState::new().hash_one(0u64),
            settings,
            epoch: Instant::now(),
            next_sweep: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Map> {
        #[cfg(test)]
        tests::LOCKS.with(|n| n.set(n.get() + 1));
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        #[cfg(test)]
        tests::LOCKS.with(|n| n.set(n.get() + 1));
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many spellings of `key` the map of spellings holds.
    #[cfg(test)]
    pub(crate) fn spellings_of(&self, key: &TenantKey) -> usize {
        let entry = self.get(key).expect("the key is kept");
        entry.spellings.lock().unwrap().len()
    }

    /// How many spellings the map of spellings holds, of every key.
    #[cfg(test)]
    pub(crate) fn spellings(&self) -> usize {
        self.spellings.len()
    }

    fn now_ms(&self) -> u64 {
        trace::ms(self.epoch.elapsed())
    }

    /// The hot path: the entry of the request's key, found by its spelling if a request spelt
    /// the same way found the key before. Reads the request's scheme and authority, and
    /// writes only the entry's strong count.
    #[inline]
    pub(crate) fn find(&self, written: Written<'_>, choice: Choice<'_>) -> Option<Arc<Entry>> {
        let spelling = Spelling::of(written, choice);
        self.spellings.find(&spelling, spelling.hash(self.seed))
    }

    /// Lets the next requests spelt as this one find `entry` by their spelling. Not for a URI
    /// with user info (the map would keep a copy of it).
    pub(crate) fn remember(&self, entry: &Arc<Entry>, written: Written<'_>, choice: Choice<'_>) {
        let spelling = Spelling::of(written, choice);
        if !spelling.has_user_info() {
            let hash = spelling.hash(self.seed);
            self.spellings.add(entry, &entry.spellings, &spelling, hash);
        }
    }

    /// The slow path: the key's entry, made if there is none (evicting others if the map is
    /// full). `None` if the request has no origin.
    pub(crate) fn entry(&self, written: Written<'_>, choice: Choice<'_>) -> Option<Arc<Entry>> {
        let target = Target::of(written)?;
        let hash = target.hash(self.seed, choice);
        if let Some(entry) = self.read().find(hash, &target, choice) {
            return Some(entry.clone());
        }
        let mut evicted = Vec::new();
        let entry = {
            let mut map = self.write();
            if let Some(entry) = map.find(hash, &target, choice) {
                return Some(entry.clone());
            }
            // The key is the origin the request connects to, read once, here: every spelling
            // of it finds this entry, and its layer is bound to it.
            let mut key = TenantKey::new(target.to_origin(), choice.tenant.cloned());
            if let Some(scope) = choice.scope {
                key = key.with_scope(scope.clone());
            }
            let now = self.now_ms();
            let max = self.settings.max_tenants.max(1);
            if map.len() >= max {
                self.sweep_locked(&mut map, now, &mut evicted);
            }
            while map.len() >= max {
                // The least recently used key, as of the sweep just made: the one that sweeps
                // saw used longest ago, with a built provider if there is one.
                let victim = map
                    .entries()
                    .min_by_key(|e| (e.ready().is_none(), e.last_sweep.load(Ordering::Relaxed)))
                    .cloned();
                let Some(victim) = victim else { break };
                map.remove(&victim);
                evicted.push((victim, "full"));
            }
            let entry = Arc::new(Entry {
                key,
                hash,
                built: OnceCell::new(),
                last_seen: AtomicU64::new(now),
                last_sweep: AtomicU64::new(map.sweeps),
                spellings: Mutex::default(),
            });
            map.insert(entry.clone());
            self.keep_sweeping(&mut map);
            entry
        };
        self.evicted(evicted);
        Some(entry)
    }

    /// Builds `entry`'s provider and layer, once for all the requests that wait for it. A
    /// refusal is theirs too, and takes the key out of the map: the next request asks the
    /// factory again.
    pub(crate) async fn ready<'a>(&self, entry: &'a Entry) -> Result<&'a Arc<Ready>, TenantError> {
        let built = entry
            .built
            .get_or_init(|| async {
                let provider = (self.settings.factory)(&entry.key).await.map_err(|error| {
                    trace::warn!(
                        name: "tenant_refused",
                        key = %entry.key,
                        error = %trace::Chain(&*error),
                        "the factory refused the tenant"
                    );
                    Refusal::from(error)
                })?;
                let provider = Arc::new(Rotating::new(provider));
                // The token is bound to the key's origin twice: by the lookup, which sends a
                // request with the token of the key made from the origin it connects to; and
                // by the layer, whose `allow_origin` check reads every request's URI again, as
                // a `BearerAuth` bound to that origin would. Bound after `configure`, whatever
                // it set.
                let labels = Labels::tenant(
                    entry.key.origin(),
                    entry
                        .key
                        .tenant()
                        .filter(|_| self.settings.tenant_label)
                        .map(|t| t.as_str()),
                );
                let cache = TokenCache::builder_arc(provider.clone()).labels(labels);
                let layer = match &self.settings.configure {
                    Some(configure) => configure(&entry.key, cache),
                    None => BearerAuthLayer::new(cache.build()),
                };
                let layer = layer.allow_origin(entry.key.origin().clone());
                trace::debug!(name: "tenant_created", key = %entry.key, "tenant created");
                Ok(Arc::new(Ready::new(layer, provider)))
            })
            .await;
        match built {
            Ok(ready) => Ok(ready),
            Err(refusal) => {
                self.forget(entry);
                Err(TenantError::refused(entry.key.clone(), refusal.clone()))
            }
        }
    }

    /// Takes `entry` out of the map, if it is still there: its factory refused it.
    fn forget(&self, entry: &Entry) {
        self.spellings.remove(entry, &entry.spellings);
        let removed = {
            let mut map = self.write();
            let removed = map.remove(entry);
            self.keep_sweeping(&mut map);
            removed
        };
        // Dropped outside the lock.
        drop(removed);
    }

    /// Evicts idle keys, if a sweep is due. Cheap when it is not: one clock read and one load.
    pub(crate) fn maybe_sweep(&self) {
        let now = self.now_ms();
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now + trace::ms(self.sweep_period());
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.sweep();
        }
    }

    /// How often keys are checked for idleness: a quarter of the idle timeout, within 10 ms
    /// and a minute.
    fn sweep_period(&self) -> Duration {
        (self.settings.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(60))
    }

    /// Evicts every key unused for the idle timeout. Returns how many.
    pub(crate) fn sweep(&self) -> usize {
        let mut evicted = Vec::new();
        {
            let mut map = self.write();
            let now = self.now_ms();
            self.sweep_locked(&mut map, now, &mut evicted);
            self.keep_sweeping(&mut map);
        }
        let n = evicted.len();
        self.evicted(evicted);
        n
    }

    fn sweep_locked(&self, map: &mut Map, now: u64, evicted: &mut Evicted) {
        let idle = trace::ms(self.settings.idle_timeout);
        map.sweeps += 1;
        let mut idle_entries = Vec::new();
        for entry in map.entries() {
            if entry.take_used() {
                entry.last_seen.store(now, Ordering::Relaxed);
                entry.last_sweep.store(map.sweeps, Ordering::Relaxed);
            } else if now.saturating_sub(entry.last_seen.load(Ordering::Relaxed)) >= idle {
                idle_entries.push(entry.clone());
            }
        }
        for entry in idle_entries {
            map.remove(&entry);
            evicted.push((entry, "idle"));
        }
        map.shrink();
    }

    /// Starts the sweeper task if there are keys, none runs, and there is a runtime to run it
    /// on; stops it if there are no keys. Called with the lock held, whenever keys come or go.
    fn keep_sweeping(&self, map: &mut Map) {
        if map.len() == 0 {
            if let Some(sweeper) = map.sweeper.take() {
                sweeper.abort();
            }
            return;
        }
        if map.sweeper.as_ref().is_some_and(|s| !s.is_finished()) {
            return;
        }
        // Without a runtime (or once the sweeper's runtime is gone) sweeps run with requests.
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let sweeper = runtime.spawn(sweep_every(self.me.clone(), self.sweep_period()));
        map.sweeper = Some(sweeper.abort_handle());
    }

    /// Takes keys taken out of the map out of the map of spellings, logs them, and drops
    /// them (outside the lock: each drops its cache and secrets, but for requests in flight).
    fn evicted(&self, evicted: Evicted) {
        for (victim, reason) in evicted {
            self.spellings.remove(&victim, &victim.spellings);
            trace::debug!(name: "tenant_evicted", key = %victim.key, reason, "tenant evicted");
        }
    }

    /// Evicts `key`. Returns whether it was there.
    pub(crate) fn evict(&self, key: &TenantKey) -> bool {
        let removed = {
            let mut map = self.write();
            let found = map.find_key(self.seed, key).cloned();
            let removed = found.and_then(|entry| map.remove(&entry));
            map.shrink();
            self.keep_sweeping(&mut map);
            removed
        };
        match removed {
            Some(entry) => {
                self.evicted(vec![(entry, "asked")]);
                true
            }
            None => false,
        }
    }

    /// Every entry, for listing.
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.read().entries().cloned().collect()
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &TenantKey) -> Option<Arc<Entry>> {
        self.read().find_key(self.seed, key).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }
}

/// The sweeper task: sweeps every `period` while the registry lives (and has keys: the last
/// key to go stops it).
async fn sweep_every(registry: Weak<Registry>, period: Duration) {
    loop {
        rt::sleep(period).await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        registry.sweep();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let map = self.map.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(sweeper) = map.sweeper.take() {
            sweeper.abort();
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("tenants", &self.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    thread_local! {
        /// How many times this thread took the key map's lock.
        pub(crate) static LOCKS: Cell<usize> = const { Cell::new(0) };
    }
}
