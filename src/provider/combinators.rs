//! [`TokenProviderExt`]: wrap a provider without losing what it says.

use std::{
    error::Error,
    fmt,
    time::{Duration, Instant},
};

use crate::{BoxError, origin::Origin, token::TokenResponse};

use super::{BoxFuture, TokenProvider};

/// Which of a provider's calls a result answers.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// [`TokenProvider::login`].
    Login,
    /// [`TokenProvider::refresh`].
    Refresh,
}

/// Wrappers for any [`TokenProvider`] that see or change its results and forward everything
/// else ([`origin`](TokenProvider::origin), [`revoke`](TokenProvider::revoke),
/// [`retry_after`](TokenProvider::retry_after)) unchanged, so the layer binds, revokes and
/// backs off as it would with the provider itself.
///
/// Each wrapped call costs one more boxed future, and the closure's own work.
///
/// # Example
///
/// Counting a PortSIP provider's logins keeps its token bound to the PBX:
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use tower_bearer_auth::{
///     BearerAuthLayer, Origin,
///     provider::{Call, TokenProvider, TokenProviderExt, portsip::PortSip},
/// };
///
/// # fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let logins = Arc::new(AtomicU64::new(0));
/// let counted = logins.clone();
/// let provider = PortSip::new("https://pbx.example.com:8887", "admin", "s3cret")
///     .build()?
///     .inspect(move |call, result, elapsed| {
///         if call == Call::Login {
///             counted.fetch_add(1, Ordering::Relaxed);
///         }
///         println!("{call:?} took {elapsed:?}: {}", if result.is_ok() { "ok" } else { "failed" });
///     });
/// assert_eq!(provider.origin(), Some(Origin::try_from("https://pbx.example.com:8887")?));
/// let layer = BearerAuthLayer::new(provider);
/// # Ok(())
/// # }
/// ```
pub trait TokenProviderExt: TokenProvider + Sized {
    /// Calls `f` with the result of every login and refresh, and how long the call took.
    ///
    /// `f` runs on the task that fetched the token; keep it short. The response it sees holds
    /// the secrets: keep them out of logs.
    fn inspect<F>(self, f: F) -> Inspect<Self, F>
    where
        F: Fn(Call, Result<&TokenResponse, &BoxError>, Duration) + Send + Sync + 'static,
    {
        Inspect { inner: self, f }
    }

    /// Passes every successful login and refresh response through `f`, which may change it
    /// (set a lifetime the server leaves out, say) or refuse it with an error, which counts
    /// as the call's failure.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bearer_auth::provider::{StaticToken, TokenProviderExt};
    ///
    /// // The server's tokens last an hour, but its answers don't say so.
    /// let provider = StaticToken::new("abc")
    ///     .map_response(|_, response| Ok(response.with_expires_in(Duration::from_secs(3600))));
    /// ```
    fn map_response<F>(self, f: F) -> MapResponse<Self, F>
    where
        F: Fn(Call, TokenResponse) -> Result<TokenResponse, BoxError> + Send + Sync + 'static,
    {
        MapResponse { inner: self, f }
    }
}

impl<P: TokenProvider> TokenProviderExt for P {}

/// A provider whose results are seen by a closure; see [`TokenProviderExt::inspect`].
#[derive(Clone)]
pub struct Inspect<P, F> {
    inner: P,
    f: F,
}

/// A provider whose responses pass through a closure; see
/// [`TokenProviderExt::map_response`].
#[derive(Clone)]
pub struct MapResponse<P, F> {
    inner: P,
    f: F,
}

/// `origin`, `revoke` and `retry_after`, forwarded to `self.inner`.
macro_rules! forward_the_rest {
    () => {
        fn retry_after(&self, error: &(dyn Error + 'static)) -> Option<Duration> {
            self.inner.retry_after(error)
        }

        fn revoke<'a>(
            &'a self,
            access_token: &'a str,
            refresh_token: Option<&'a str>,
        ) -> BoxFuture<'a, Result<(), BoxError>> {
            self.inner.revoke(access_token, refresh_token)
        }

        fn origin(&self) -> Option<Origin> {
            self.inner.origin()
        }
    };
}

impl<P, F> TokenProvider for Inspect<P, F>
where
    P: TokenProvider,
    F: Fn(Call, Result<&TokenResponse, &BoxError>, Duration) + Send + Sync + 'static,
{
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        self.seen(Call::Login, self.inner.login())
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        self.seen(Call::Refresh, self.inner.refresh(refresh_token))
    }

    forward_the_rest!();
}

impl<P, F> Inspect<P, F>
where
    P: TokenProvider,
    F: Fn(Call, Result<&TokenResponse, &BoxError>, Duration) + Send + Sync + 'static,
{
    fn seen<'a>(
        &'a self,
        call: Call,
        fut: BoxFuture<'a, Result<TokenResponse, BoxError>>,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            let start = Instant::now();
            let result = fut.await;
            (self.f)(call, result.as_ref(), start.elapsed());
            result
        })
    }
}

impl<P, F> TokenProvider for MapResponse<P, F>
where
    P: TokenProvider,
    F: Fn(Call, TokenResponse) -> Result<TokenResponse, BoxError> + Send + Sync + 'static,
{
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let fut = self.inner.login();
        Box::pin(async move { (self.f)(Call::Login, fut.await?) })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        let fut = self.inner.refresh(refresh_token);
        Box::pin(async move { (self.f)(Call::Refresh, fut.await?) })
    }

    forward_the_rest!();
}

impl<P: fmt::Debug, F> fmt::Debug for Inspect<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspect")
            .field("inner", &self.inner)
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

impl<P: fmt::Debug, F> fmt::Debug for MapResponse<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResponse")
            .field("inner", &self.inner)
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// A provider that says something through every method.
    struct Full;

    impl TokenProvider for Full {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
            Box::pin(async { Ok(TokenResponse::new("login")) })
        }

        fn refresh<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
            Box::pin(async { Err("refused".into()) })
        }

        fn retry_after(&self, _: &(dyn Error + 'static)) -> Option<Duration> {
            Some(Duration::from_secs(7))
        }

        fn revoke<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async { Err("revoked".into()) })
        }

        fn origin(&self) -> Option<Origin> {
            Origin::try_from("https://pbx.example.com:8887").ok()
        }
    }

    async fn assert_forwards(provider: impl TokenProvider) {
        let error: BoxError = "e".into();
        assert_eq!(provider.retry_after(&*error), Some(Duration::from_secs(7)));
        assert_eq!(
            provider.revoke("a", None).await.unwrap_err().to_string(),
            "revoked"
        );
        assert_eq!(provider.origin(), Full.origin());
    }

    #[tokio::test]
    async fn inspect_sees_every_result_and_forwards_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let provider = Full.inspect(move |call, result, _| {
            log.lock().unwrap().push((call, result.is_ok()));
        });
        assert!(provider.login().await.is_ok());
        assert!(provider.refresh("r").await.is_err());
        assert_eq!(
            *seen.lock().unwrap(),
            [(Call::Login, true), (Call::Refresh, false)]
        );
        assert_forwards(provider).await;
    }

    #[tokio::test]
    async fn map_response_changes_successes_only_and_forwards_the_rest() {
        let calls = Arc::new(AtomicUsize::new(0));
        let count = calls.clone();
        let provider = Full.map_response(move |call, response| {
            count.fetch_add(1, Ordering::SeqCst);
            assert_eq!(call, Call::Login);
            Ok(response.with_expires_in(Duration::from_secs(60)))
        });
        let response = provider.login().await.unwrap();
        assert_eq!(response.expires_in(), Some(Duration::from_secs(60)));
        assert!(provider.refresh("r").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_forwards(provider).await;
    }
}
