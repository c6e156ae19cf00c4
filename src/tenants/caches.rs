//! [`TenantCaches`]: the handle to the keys of a [`TenantsLayer`](super::TenantsLayer).

use std::{fmt, sync::Arc};

use tokio::time::Instant;

use super::{TenantKey, registry::Registry};
use crate::{cache::TokenCache, provider::TokenProvider};

/// A handle to the keys of a [`TenantsLayer`](super::TenantsLayer), shared by the layer,
/// every service it builds and their clones: lists the keys and their token state, gives a
/// key's [`TokenCache`], replaces a key's provider and evicts keys.
///
/// Get it with [`TenantsLayer::caches`](super::TenantsLayer::caches) or
/// [`Tenants::caches`](super::Tenants::caches).
#[derive(Clone)]
pub struct TenantCaches {
    pub(crate) registry: Arc<Registry>,
}

/// One key and the state of its token, as [`TenantCaches::tenants`] lists them. No secret.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct TenantInfo {
    /// The key.
    pub key: TenantKey,
    /// Whether the factory has built the key's provider (`false` while it runs).
    pub ready: bool,
    /// Whether the key's cache holds a token that may be sent now.
    pub has_token: bool,
    /// When that token expires; `None` without one, or for a token that never expires.
    pub expires_at: Option<Instant>,
}

impl TenantCaches {
    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key kept, with the state of its token, in no particular order.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        self.registry
            .entries()
            .into_iter()
            .map(|entry| {
                let ready = entry.ready();
                let token = ready.and_then(|r| r.layer.cache().token());
                TenantInfo {
                    key: entry.key.clone(),
                    ready: ready.is_some(),
                    has_token: token.is_some(),
                    expires_at: token.and_then(|t| t.expires_at()),
                }
            })
            .collect()
    }

    /// The token cache of `key`, to [revoke](TokenCache::revoke) or
    /// [invalidate](TokenCache::invalidate) its token; `None` if the key is not kept or its
    /// provider is still being built.
    pub fn cache(&self, key: &TenantKey) -> Option<TokenCache> {
        Some(self.registry.get(key)?.ready()?.layer.cache())
    }

    /// Replaces the provider of `key` (new credentials, say). The key keeps its token; its
    /// next login or refresh asks `provider`, and no other key is touched. Returns `false`,
    /// and changes nothing, if the key is not kept or its provider is still being built: its
    /// next request asks the factory anyway.
    ///
    /// To drop the token too, [`evict`](Self::evict) the key instead: its next request asks
    /// the factory for a new provider and logs in.
    pub fn replace_provider(&self, key: &TenantKey, provider: impl TokenProvider) -> bool {
        let Some(entry) = self.registry.get(key) else {
            return false;
        };
        let Some(ready) = entry.ready() else {
            return false;
        };
        ready.provider.replace(Arc::new(provider));
        true
    }

    /// Evicts `key`: its cache is dropped with its token, which is not revoked (call
    /// [`TokenCache::revoke`] on [`cache`](Self::cache) first for that), and its next request
    /// asks the factory again. Requests in flight finish with the token they carry. Returns
    /// whether the key was kept.
    pub fn evict(&self, key: &TenantKey) -> bool {
        self.registry.evict(key)
    }

    /// Sweeps for idle keys now: evicts every key not used for the
    /// [idle timeout](super::TenantsLayer::idle_timeout). Returns how many were evicted.
    ///
    /// A request marks its key used, and a sweep notes the time of the keys marked since the
    /// sweep before: a key is evicted by the first sweep at least an idle timeout after the
    /// sweep that last saw it used. Sweeps run on their own every quarter of the idle timeout
    /// (at most a minute), on a task the layer keeps while it has keys, so an idle key goes
    /// between one and one and a quarter idle timeouts after its last request; requests check
    /// for a due sweep too (each service every 64 requests, and each new key), for layers
    /// used with no runtime to run the task. A key used since the last sweep counts as used
    /// now.
    pub fn evict_idle(&self) -> usize {
        self.registry.sweep()
    }
}

impl fmt::Debug for TenantCaches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantCaches")
            .field("registry", &self.registry)
            .finish()
    }
}
