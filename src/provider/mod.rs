//! Token providers: where tokens come from.
//!
//! A [`TokenProvider`] logs in and refreshes; the cache inside
//! [`BearerAuthLayer`](crate::BearerAuthLayer) decides when to call it. This module holds the
//! trait and the simple providers, [`StaticToken`] for a fixed token and [`provider_fn`] for a
//! closure. With the `oauth2` feature (on by default) it also has:
//!
//! - [`oauth2`]: [`OAuth2Provider`](oauth2::OAuth2Provider), a client for OAuth 2.0 token
//!   endpoints, with its options and its error type;
//! - [`portsip`]: [`PortSip`](portsip::PortSip), which builds a
//!   [`PortSipProvider`](portsip::PortSipProvider) for a PortSIP PBX (its sign-in API or its
//!   OAuth token endpoint), and PortSIP's published constants;
//! - [`BuildError`], what building either of them (or an
//!   [`HttpClient`](crate::client::HttpClient)) fails with.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use crate::{BoxError, origin::Origin, token::TokenResponse};

#[cfg(feature = "oauth2")]
mod build_error;
mod classify;
mod combinators;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod oauth2;
#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod portsip;
#[cfg(feature = "oauth2")]
pub(crate) mod secret;
mod static_token;

#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub use build_error::{BuildError, BuildErrorKind};
pub use combinators::{Call, Inspect, MapResponse, TokenProviderExt};
pub use static_token::StaticToken;

/// A boxed, `Send` future, as returned by [`TokenProvider`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Obtains tokens: logs in, and exchanges refresh tokens for new tokens.
///
/// The trait is object safe; the layer stores providers as `Arc<dyn TokenProvider>`, and
/// `Arc<P>` and `Box<P>` are providers when `P` is (`P` may be `dyn TokenProvider`). The cache
/// never calls two methods at once and bounds each call with a timeout.
///
/// Errors may be any [`BoxError`]; they reach callers as the
/// [`source`](std::error::Error::source) of a [`TokenError`](crate::TokenError), whose
/// message quotes theirs. Keep passwords and tokens out of their messages and `Debug` output.
///
/// # Wrapping a provider
///
/// [`origin`](Self::origin), [`revoke`](Self::revoke) and [`retry_after`](Self::retry_after)
/// have no default: each changes what the layer does (where the token may be sent, what a
/// logout does, how long to wait after a failure), so a provider says what it does, and a
/// wrapper that forgets to forward one does not compile instead of quietly dropping it.
/// Reach for the combinators of [`TokenProviderExt`] first ([`inspect`](TokenProviderExt::inspect)
/// to count or log results, [`map_response`](TokenProviderExt::map_response) to adjust them):
/// they forward everything else.
///
/// ```compile_fail,E0046
/// use tower_bearer_auth::{BoxError, TokenResponse, provider::{BoxFuture, TokenProvider}};
///
/// // Counts logins, but forgets that the wrapped provider's tokens are for one server.
/// struct Logged<P>(P);
///
/// impl<P: TokenProvider> TokenProvider for Logged<P> {
///     fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
///         self.0.login()
///     }
///
///     fn refresh<'a>(&'a self, refresh_token: &'a str) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
///         self.0.refresh(refresh_token)
///     }
/// }
/// ```
///
/// # Example
///
/// A provider for an API whose login returns `{"token": "…", "ttl": 600}`, and whose tokens
/// are for `https://api.example.com`:
///
/// ```
/// use std::{error::Error, time::Duration};
/// use tower_bearer_auth::{
///     BoxError, Origin, TokenResponse,
///     provider::{BoxFuture, TokenProvider},
/// };
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
///
///     fn origin(&self) -> Option<Origin> {
///         Origin::try_from("https://api.example.com").ok()
///     }
///
///     // This API has no logout, and no `Retry-After` to read.
///     fn revoke<'a>(&'a self, _: &'a str, _: Option<&'a str>) -> BoxFuture<'a, Result<(), BoxError>> {
///         Box::pin(async { Ok(()) })
///     }
///
///     fn retry_after(&self, _: &(dyn Error + 'static)) -> Option<Duration> {
///         None
///     }
/// }
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// Obtains a new token, by logging in with whatever credentials the provider holds.
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>>;

    /// Exchanges `refresh_token` for a new token.
    ///
    /// The cache calls it when the current token nears expiry and has a refresh token; when
    /// it fails the cache logs in once. A response without a refresh token keeps the old one.
    /// The default logs in again (a provider whose tokens come with no refresh token is never
    /// asked).
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        let _ = refresh_token;
        self.login()
    }

    /// How long to wait before asking this provider again after it failed with `error`, when
    /// the provider knows (a `Retry-After` header, say); `None` when it doesn't.
    ///
    /// After a failed login or refresh the cache starts no new one for a short, growing pause
    /// (see [`TokenCacheBuilder::backoff`](crate::TokenCacheBuilder::backoff)); a duration returned
    /// here lengthens that pause, up to five minutes.
    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration>;

    /// Revokes the tokens at the server, for a clean logout: `access_token` and, when the
    /// token came with one, `refresh_token`. A provider whose server has no logout returns
    /// `Ok(())`.
    ///
    /// Called by [`TokenCache::revoke`](crate::TokenCache::revoke) with the current token. A
    /// provider should try to revoke both even when the first attempt fails, and report the
    /// first error.
    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// The origin (scheme, host and port) the tokens are meant for, if the provider knows it;
    /// `None` if it doesn't.
    ///
    /// A provider that knows which server its tokens belong to (such as one built by
    /// [`PortSip`](portsip::PortSip), whose tokens are for the PBX that issued them) returns
    /// that server's origin, and the layer binds the token to it, as
    /// [`BearerAuthLayer::allow_origin`](crate::BearerAuthLayer::allow_origin) does. With
    /// `None`, the layer must be told where the token may go
    /// ([`allow_origin`](crate::BearerAuthLayer::allow_origin) or
    /// [`any_origin`](crate::BearerAuthLayer::any_origin)), or it sends it nowhere.
    fn origin(&self) -> Option<Origin>;
}

/// `Arc<P>` and `Box<P>` forward every method to `P`, so a shared or boxed provider, or a
/// `dyn TokenProvider`, is a provider too.
macro_rules! forward_token_provider {
    ($($pointer:ident),+) => {$(
        impl<P: TokenProvider + ?Sized> TokenProvider for $pointer<P> {
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

            fn revoke<'a>(
                &'a self,
                access_token: &'a str,
                refresh_token: Option<&'a str>,
            ) -> BoxFuture<'a, Result<(), BoxError>> {
                (**self).revoke(access_token, refresh_token)
            }

            fn origin(&self) -> Option<Origin> {
                (**self).origin()
            }
        }
    )+};
}

forward_token_provider!(Arc, Box);

/// Makes a [`TokenProvider`] from a closure that logs in.
///
/// The closure runs for every login and every refresh (there is no refresh token to use).
/// The provider names no origin, revokes nothing and reads no `Retry-After`: give the layer
/// [`allow_origin`](crate::BearerAuthLayer::allow_origin) or
/// [`any_origin`](crate::BearerAuthLayer::any_origin).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_auth::{BearerAuthLayer, BoxError, Origin, TokenResponse, provider::provider_fn};
///
/// let layer = BearerAuthLayer::new(provider_fn(|| async {
///     // Ask your secret store or identity service here.
///     Ok::<_, BoxError>(TokenResponse::new("abc").with_expires_in(Duration::from_secs(300)))
/// }))
/// .allow_origin(Origin::try_from("https://api.example.com")?);
/// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
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

    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        None
    }

    /// Nothing to revoke: the closure only logs in.
    fn revoke<'a>(&'a self, _: &'a str, _: Option<&'a str>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    /// None: choose where the token goes on the layer.
    fn origin(&self) -> Option<Origin> {
        None
    }
}

#[cfg(test)]
fn _object_safe(_: Arc<dyn TokenProvider>) {}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bound;

    impl TokenProvider for Bound {
        fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
            Box::pin(async { Ok(TokenResponse::new("t")) })
        }

        fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<Duration> {
            None
        }

        fn revoke<'a>(
            &'a self,
            _: &'a str,
            _: Option<&'a str>,
        ) -> BoxFuture<'a, Result<(), BoxError>> {
            Box::pin(async { Ok(()) })
        }

        fn origin(&self) -> Option<Origin> {
            Origin::try_from("https://pbx.example.com:8887").ok()
        }
    }

    #[test]
    fn pointers_forward_every_method() {
        let origin = Origin::try_from("https://pbx.example.com:8887").unwrap();
        let arc: Arc<dyn TokenProvider> = Arc::new(Bound);
        let boxed: Box<dyn TokenProvider> = Box::new(Bound);
        assert_eq!(arc.origin(), Some(origin.clone()));
        assert_eq!(boxed.origin(), Some(origin.clone()));
        assert_eq!(Arc::new(boxed).origin(), Some(origin));
        assert_eq!(StaticToken::new("t").origin(), None);
    }
}
