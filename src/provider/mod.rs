//! Token providers: where tokens come from.
//!
//! A [`TokenProvider`] logs in and refreshes; the cache inside
//! [`BearerAuthLayer`](crate::BearerAuthLayer) decides when to call it. The crate ships
//! [`StaticToken`] for a fixed token and [`provider_fn`] for a closure; with the `oauth2`
//! feature (on by default), [`OAuth2Provider`] for OAuth 2.0 token
//! endpoints and the [`PortSip`] preset.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::{BoxError, TokenResponse};

#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod oauth2;
#[cfg(feature = "oauth2")]
mod portsip;
mod static_token;

#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
#[doc(inline)]
pub use oauth2::{
    BodyFormat, ClientAuth, OAuth2Error, OAuth2ErrorKind, OAuth2Provider, RequestKind, TokenShape,
};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
#[doc(inline)]
pub use oauth2::{HttpClient, HttpClientBuilder};
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub use portsip::{PORTSIP_CLIENT_ID, PORTSIP_REVOKE_PATH, PORTSIP_TOKEN_PATH, PortSip};
pub use static_token::StaticToken;

/// A boxed, `Send` future, as returned by [`TokenProvider`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Obtains tokens: logs in, and exchanges refresh tokens for new tokens.
///
/// The trait is object safe; the layer stores providers as `Arc<dyn TokenProvider>`. The cache
/// never calls two methods at once and bounds each call with a timeout.
///
/// Errors may be any [`BoxError`]; they reach callers as the
/// [`source`](std::error::Error::source) of a [`TokenError`](crate::TokenError). Keep
/// passwords and tokens out of their messages and `Debug` output.
///
/// # Example
///
/// A provider for an API whose login returns `{"token": "…", "ttl": 600}`:
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_auth::{BoxError, BoxFuture, TokenProvider, TokenResponse};
///
/// struct MyApi;
///
/// impl TokenProvider for MyApi {
///     fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
///         Box::pin(async {
///             // Send the login request with your HTTP client here.
///             let body: serde_json::Value = serde_json::from_str(r#"{"token":"abc","ttl":600}"#)?;
///             let token = body["token"].as_str().ok_or("no token in response")?;
///             let ttl = body["ttl"].as_u64().ok_or("no ttl in response")?;
///             Ok(TokenResponse::new(token).with_expires_in(Duration::from_secs(ttl)))
///         })
///     }
/// }
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// Obtains a new token, by logging in with whatever credentials the provider holds.
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>>;

    /// Exchanges `refresh_token` for a new token.
    ///
    /// The cache calls it when the current token nears expiry and has a refresh token; when
    /// it fails the cache calls [`login`](TokenProvider::login) once. A response without a
    /// refresh token keeps the old one. The default logs in again.
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        let _ = refresh_token;
        self.login()
    }

    /// How long to wait before asking this provider again after it failed with `error`, when
    /// the provider knows (a `Retry-After` header, say). The default is `None`.
    ///
    /// After a failed login or refresh the cache starts no new one for a short, growing pause
    /// (see [`BearerAuthLayer::backoff`](crate::BearerAuthLayer::backoff)); a duration returned
    /// here lengthens that pause, up to five minutes.
    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        let _ = error;
        None
    }

    /// Revokes `access_token` at the server, for a clean logout. The default does nothing.
    ///
    /// Called by [`TokenCache::revoke`](crate::TokenCache::revoke).
    fn revoke<'a>(&'a self, access_token: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        let _ = access_token;
        Box::pin(async { Ok(()) })
    }
}

impl<P: TokenProvider + ?Sized> TokenProvider for Arc<P> {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        (**self).login()
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        (**self).refresh(refresh_token)
    }

    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        (**self).retry_after(error)
    }

    fn revoke<'a>(&'a self, access_token: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        (**self).revoke(access_token)
    }
}

impl<P: TokenProvider + ?Sized> TokenProvider for Box<P> {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        (**self).login()
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        (**self).refresh(refresh_token)
    }

    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        (**self).retry_after(error)
    }

    fn revoke<'a>(&'a self, access_token: &'a str) -> BoxFuture<'a, Result<(), BoxError>> {
        (**self).revoke(access_token)
    }
}

/// Makes a [`TokenProvider`] from a closure that logs in.
///
/// The closure runs for every login and every refresh (there is no refresh token to use).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_auth::{provider_fn, BearerAuthLayer, BoxError, TokenResponse};
///
/// let layer = BearerAuthLayer::new(provider_fn(|| async {
///     // Ask your secret store or identity service here.
///     Ok::<_, BoxError>(TokenResponse::new("abc").with_expires_in(Duration::from_secs(300)))
/// }));
/// ```
pub fn provider_fn<F, Fut, E>(f: F) -> FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TokenResponse, E>> + Send + 'static,
    E: Into<BoxError>,
{
    FnProvider { f }
}

/// A [`TokenProvider`] made from a closure; see [`provider_fn`].
#[derive(Clone, Copy)]
pub struct FnProvider<F> {
    f: F,
}

impl<F> fmt::Debug for FnProvider<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnProvider")
            .field("f", &std::any::type_name::<F>())
            .finish()
    }
}

impl<F, Fut, E> TokenProvider for FnProvider<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TokenResponse, E>> + Send + 'static,
    E: Into<BoxError>,
{
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let fut = (self.f)();
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
fn _object_safe(_: Arc<dyn TokenProvider>) {}
