use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use super::config::{DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX};
use super::*;
use crate::error::TokenErrorKind;
use crate::store::StoredToken;
use crate::{BoxError, provider::provider_fn, token::TokenResponse};

/// A provider that counts logins and refreshes and hands out numbered tokens.
#[derive(Default)]
struct Counting {
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    fail_refresh: bool,
    fail_login: std::sync::atomic::AtomicBool,
    lifetime: Option<Duration>,
    delay: Duration,
}

impl TokenProvider for Counting {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_login.load(Ordering::SeqCst) {
                return Err("login refused".into());
            }
            let mut r =
                TokenResponse::new(format!("login-{n}")).with_refresh_token(format!("rt-{n}"));
            if let Some(l) = self.lifetime {
                r = r.with_expires_in(l);
            }
            Ok(r)
        })
    }

    fn refresh<'a>(&'a self, rt: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_refresh {
                return Err("invalid_grant".into());
            }
            let mut r = TokenResponse::new(format!("refresh-{n}-from-{rt}"));
            if let Some(l) = self.lifetime {
                r = r.with_expires_in(l);
            }
            Ok(r)
        })
    }
    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<std::time::Duration> {
        None
    }

    fn revoke<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
    ) -> crate::provider::BoxFuture<'a, Result<(), crate::BoxError>> {
        Box::pin(async { Ok(()) })
    }

    fn origin(&self) -> Option<crate::Origin> {
        None
    }
}

fn cache(p: Counting) -> (TokenCache, Arc<Counting>) {
    configured(p, Config::default(), None, None)
}

fn configured(
    p: Counting,
    config: Config,
    store: Option<Arc<dyn TokenStore>>,
    on_change: Option<OnChange>,
) -> (TokenCache, Arc<Counting>) {
    let p = Arc::new(p);
    (TokenCache::with(p.clone(), config, store, on_change), p)
}

async fn header(cache: &TokenCache) -> Result<HeaderValue, TokenError> {
    if let Some(local) = cache.cached() {
        return Ok(local.header.clone());
    }
    match cache.lookup() {
        Lookup::Ready(h, _) => Ok(h),
        Lookup::Wait(fut) => fut.await.map(|t| t.header.clone()),
    }
}

mod backoff;
mod copies;
mod fetch;
mod store;
