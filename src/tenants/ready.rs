//! [`Ready`]: a key whose provider was built, and [`Rotating`], the provider it holds.

use std::{
    sync::{
        Arc, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::{
    BoxError,
    layer::BearerAuthLayer,
    origin::Origin,
    provider::{BoxFuture, TokenProvider},
    rt::RwLock,
    token::TokenResponse,
};

/// A key's provider, which [`TenantCaches::replace_provider`](super::TenantCaches) can swap:
/// the cache keeps its token, and its next login or refresh asks the new provider.
pub(crate) struct Rotating {
    current: RwLock<Arc<dyn TokenProvider>>,
}

impl Rotating {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>) -> Self {
        Self {
            current: RwLock::new(provider),
        }
    }

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

    /// None: the key's layer binds the token to the key's origin, and to no other (whatever
    /// origin the provider's login URL has).
    fn origin(&self) -> Option<Origin> {
        None
    }
}

/// A key whose provider was built.
pub(crate) struct Ready {
    pub(crate) layer: BearerAuthLayer,
    pub(crate) provider: Arc<Rotating>,
    /// Whether a request used the key since the last sweep. Read on every request, written at
    /// most once per sweep period.
    pub(crate) used: AtomicBool,
}

impl Ready {
    /// A key just built: `layer` over a cache of `provider`, counted as used.
    pub(crate) fn new(layer: BearerAuthLayer, provider: Arc<Rotating>) -> Self {
        Self {
            layer,
            provider,
            used: AtomicBool::new(true),
        }
    }

    /// Marks the key used: a load, and a store only for the first request since a sweep.
    #[inline]
    pub(crate) fn touch(&self) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}
