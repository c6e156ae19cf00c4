//! The key map shared by a [`TenantsLayer`](super::TenantsLayer), its services and their
//! clones: one entry per key, each with its own [`BearerAuthLayer`].

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, BuildHasherDefault, RandomState},
    sync::{
        Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::Uri;
use tokio::{sync::OnceCell, time::Instant};

use super::{
    TenantError, TenantId, TenantKey,
    key::{Prehashed, Target},
};
use crate::{BearerAuthLayer, BoxError, BoxFuture, Origin, TokenProvider, TokenResponse, trace};

/// Builds a key's provider.
pub(crate) type Factory = Arc<
    dyn Fn(&TenantKey) -> BoxFuture<'static, Result<Arc<dyn TokenProvider>, BoxError>>
        + Send
        + Sync,
>;

/// Applies the user's settings to a key's layer.
pub(crate) type Configure =
    Arc<dyn Fn(&TenantKey, BearerAuthLayer) -> BearerAuthLayer + Send + Sync>;

/// The layer's settings.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) factory: Factory,
    pub(crate) configure: Option<Configure>,
    pub(crate) max_tenants: usize,
    pub(crate) idle_timeout: Duration,
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

/// A key's provider, which [`TenantCaches::replace_provider`](super::TenantCaches) can swap:
/// the cache keeps its token, and its next login or refresh asks the new provider.
pub(crate) struct Rotating {
    current: RwLock<Arc<dyn TokenProvider>>,
}

impl Rotating {
    fn current(&self) -> Arc<dyn TokenProvider> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn replace(&self, provider: Arc<dyn TokenProvider>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = provider;
    }
}

impl TokenProvider for Rotating {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let provider = self.current();
        Box::pin(async move { provider.login().await })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        let provider = self.current();
        Box::pin(async move { provider.refresh(refresh_token).await })
    }

    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        self.current().retry_after(error)
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        let provider = self.current();
        Box::pin(async move { provider.revoke(access_token, refresh_token).await })
    }

    /// None: the key's lookup binds the token to the key's origin, and to no other (whatever
    /// origin the provider's login URL has).
    fn origin(&self) -> Option<Origin> {
        None
    }
}

/// A key whose provider was built.
pub(crate) struct Ready {
    pub(crate) layer: BearerAuthLayer,
    pub(crate) provider: Arc<Rotating>,
}

/// One key.
pub(crate) struct Entry {
    pub(crate) key: TenantKey,
    hash: u64,
    // The key's origin as the hot path compares it: scheme and host lowercase, one after
    // the other in one allocation, and the port.
    scheme_host: Box<str>,
    scheme_len: usize,
    port: u16,
    /// Set once the factory gave a provider; concurrent first requests wait for one factory
    /// call.
    pub(crate) ready: OnceCell<Ready>,
    /// Whether a request used the key since the last sweep. Read on every request, written at
    /// most once per sweep period.
    used: AtomicBool,
    /// When a sweep last saw the key used, in milliseconds since the registry's epoch.
    last_seen: AtomicU64,
}

impl Entry {
    #[inline]
    fn is(&self, target: &Target<'_>, tenant: Option<&TenantId>) -> bool {
        let (scheme, host) = self.scheme_host.split_at(self.scheme_len);
        target.is(scheme, host, self.port) && self.key.tenant() == tenant
    }

    /// Marks the key used: a load, and a store only for the first request since a sweep.
    #[inline]
    pub(crate) fn touch(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}

type Buckets = HashMap<u64, Bucket, BuildHasherDefault<Prehashed>>;

/// The keys of one hash: almost always one, kept in the map's own slot (a `Vec` would cost
/// every lookup one more pointer to follow, a cache miss with thousands of keys).
enum Bucket {
    One(Arc<Entry>),
    Many(Vec<Arc<Entry>>),
}

impl Bucket {
    fn as_slice(&self) -> &[Arc<Entry>] {
        match self {
            Self::One(entry) => std::slice::from_ref(entry),
            Self::Many(entries) => entries,
        }
    }

    fn push(&mut self, entry: Arc<Entry>) {
        match self {
            Self::One(first) => *self = Self::Many(vec![first.clone(), entry]),
            Self::Many(entries) => entries.push(entry),
        }
    }

    /// Removes `entry`; returns whether it was here and whether the bucket is now empty.
    fn remove(&mut self, entry: &Arc<Entry>) -> (bool, bool) {
        match self {
            Self::One(only) => {
                let found = Arc::ptr_eq(only, entry);
                (found, found)
            }
            Self::Many(entries) => match entries.iter().position(|e| Arc::ptr_eq(e, entry)) {
                Some(at) => {
                    entries.swap_remove(at);
                    (true, entries.is_empty())
                }
                None => (false, false),
            },
        }
    }
}

#[derive(Default)]
struct Map {
    buckets: Buckets,
    len: usize,
}

impl Map {
    #[inline]
    fn find(
        &self,
        hash: u64,
        target: &Target<'_>,
        tenant: Option<&TenantId>,
    ) -> Option<&Arc<Entry>> {
        self.buckets
            .get(&hash)?
            .as_slice()
            .iter()
            .find(|entry| entry.is(target, tenant))
    }

    fn find_key(&self, seed: u64, key: &TenantKey) -> Option<&Arc<Entry>> {
        // An origin's `Display` form is a URI with scheme, host and port.
        let uri: Uri = key.origin().to_string().parse().ok()?;
        let target = Target::of(&uri)?;
        let hash = target.hash(seed, key.tenant());
        self.find(hash, &target, key.tenant())
    }

    fn remove(&mut self, entry: &Arc<Entry>) -> bool {
        let Some(bucket) = self.buckets.get_mut(&entry.hash) else {
            return false;
        };
        let (found, empty) = bucket.remove(entry);
        if empty {
            self.buckets.remove(&entry.hash);
        }
        if found {
            self.len -= 1;
        }
        found
    }

    /// Gives back the memory of many removed keys.
    fn shrink(&mut self) {
        if self.buckets.capacity() > 2 * self.buckets.len() + 64 {
            self.buckets.shrink_to_fit();
        }
    }

    fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.buckets.values().flat_map(Bucket::as_slice)
    }
}

/// The shared key map.
pub(crate) struct Registry {
    map: RwLock<Map>,
    seed: u64,
    pub(crate) settings: Settings,
    epoch: Instant,
    /// When the next sweep for idle keys is due, in milliseconds since `epoch`.
    next_sweep: AtomicU64,
}

impl Registry {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            map: RwLock::default(),
            seed: RandomState::new().hash_one(0u64),
            settings,
            epoch: Instant::now(),
            next_sweep: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        trace::ms(self.epoch.elapsed())
    }

    /// The hot path: `with` gets the key's ready entry, if there is one, under the read lock.
    /// `Err(None)` if the request has no origin.
    #[inline]
    pub(crate) fn with_ready<T>(
        &self,
        uri: &Uri,
        tenant: Option<&TenantId>,
        with: impl FnOnce(&Ready) -> T,
    ) -> Result<T, Option<u64>> {
        let target = Target::of(uri).ok_or(None)?;
        let hash = target.hash(self.seed, tenant);
        let map = self.read();
        match map.find(hash, &target, tenant) {
            Some(entry) => match entry.ready.get() {
                Some(ready) => {
                    entry.touch();
                    Ok(with(ready))
                }
                None => Err(Some(hash)),
            },
            None => Err(Some(hash)),
        }
    }

    /// The slow path: the key's entry, made if there is none (evicting others if the map is
    /// full). `None` if the request has no origin.
    pub(crate) fn entry(
        &self,
        hash: u64,
        uri: &Uri,
        tenant: Option<&TenantId>,
    ) -> Option<Arc<Entry>> {
        let mut evicted = Vec::new();
        let entry = {
            let mut map = self.write();
            let target = Target::of(uri)?;
            if let Some(entry) = map.find(hash, &target, tenant) {
                entry.touch();
                return Some(entry.clone());
            }
            let key = TenantKey::of(uri, tenant)?;
            let (scheme_host, scheme_len, port) = target.to_parts();
            let now = self.now_ms();
            if map.len >= self.settings.max_tenants.max(1) {
                self.sweep_locked(&mut map, now, &mut evicted);
            }
            while map.len >= self.settings.max_tenants.max(1) {
                // The least recently used key, as of the last sweep: one unused since then,
                // and seen longest ago, with a built provider if there is one.
                let victim = map
                    .entries()
                    .min_by_key(|e| {
                        (
                            !e.ready.initialized(),
                            e.used.load(Ordering::Relaxed),
                            e.last_seen.load(Ordering::Relaxed),
                        )
                    })
                    .cloned();
                let Some(victim) = victim else { break };
                map.remove(&victim);
                evicted.push((victim, "full"));
            }
            let entry = Arc::new(Entry {
                key,
                hash,
                scheme_host,
                scheme_len,
                port,
                ready: OnceCell::new(),
                used: AtomicBool::new(true),
                last_seen: AtomicU64::new(now),
            });
            match map.buckets.entry(hash) {
                std::collections::hash_map::Entry::Occupied(mut bucket) => {
                    bucket.get_mut().push(entry.clone())
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Bucket::One(entry.clone()));
                }
            }
            map.len += 1;
            entry
        };
        // Dropped outside the lock: a key's cache frees its secrets and per-thread copies.
        for (victim, reason) in evicted {
            trace::debug!(name: "tenant_evicted", key = %victim.key, reason, "tenant evicted");
        }
        Some(entry)
    }

    /// Builds `entry`'s provider and layer (once, for all the requests that wait for it).
    pub(crate) async fn ready<'a>(&self, entry: &'a Entry) -> Result<&'a Ready, TenantError> {
        entry
            .ready
            .get_or_try_init(|| async {
                let provider = (self.settings.factory)(&entry.key).await.map_err(|error| {
                    trace::warn!(
                        name: "tenant_refused",
                        key = %entry.key,
                        error = %trace::Chain(&*error),
                        "the factory refused the tenant"
                    );
                    TenantError::refused(entry.key.clone(), error)
                })?;
                let provider = Arc::new(Rotating {
                    current: RwLock::new(provider),
                });
                // The token is bound to the key's origin by the lookup itself: a request is
                // sent with the token of the key made from its own origin, never another's.
                // (`allow_origin` would only check that again, reading the URI once more.)
                let mut layer = BearerAuthLayer::from_arc(provider.clone());
                if let Some(configure) = &self.settings.configure {
                    layer = configure(&entry.key, layer);
                }
                trace::debug!(name: "tenant_created", key = %entry.key, "tenant created");
                Ok(Ready { layer, provider })
            })
            .await
    }

    /// Forgets `entry` if it is still in the map and has no provider: its factory refused it.
    pub(crate) fn forget_refused(&self, entry: &Arc<Entry>) {
        let mut map = self.write();
        if !entry.ready.initialized() {
            map.remove(entry);
        }
    }

    /// Evicts idle keys, if a sweep is due. Cheap when it is not: one clock read and one load.
    pub(crate) fn maybe_sweep(&self) {
        let now = self.now_ms();
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now + self.sweep_period_ms();
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.sweep();
        }
    }

    fn sweep_period_ms(&self) -> u64 {
        (trace::ms(self.settings.idle_timeout) / 4).clamp(10, 60_000)
    }

    /// Evicts every key unused for the idle timeout. Returns how many.
    pub(crate) fn sweep(&self) -> usize {
        let mut evicted = Vec::new();
        {
            let mut map = self.write();
            let now = self.now_ms();
            self.sweep_locked(&mut map, now, &mut evicted);
        }
        let n = evicted.len();
        for (victim, reason) in evicted {
            trace::debug!(name: "tenant_evicted", key = %victim.key, reason, "tenant evicted");
        }
        n
    }

    fn sweep_locked(&self, map: &mut Map, now: u64, evicted: &mut Vec<(Arc<Entry>, &'static str)>) {
        let idle = trace::ms(self.settings.idle_timeout);
        let mut idle_entries = Vec::new();
        for entry in map.entries() {
            if entry.used.swap(false, Ordering::Relaxed) {
                entry.last_seen.store(now, Ordering::Relaxed);
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

    /// Evicts `key`. Returns whether it was there.
    pub(crate) fn evict(&self, key: &TenantKey) -> bool {
        let removed = {
            let mut map = self.write();
            let found = map.find_key(self.seed, key).cloned();
            let removed = found.filter(|entry| map.remove(entry));
            map.shrink();
            removed
        };
        match removed {
            Some(entry) => {
                trace::debug!(name: "tenant_evicted", key = %entry.key, reason = "asked", "tenant evicted");
                drop(entry);
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
        self.read().len
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
