//! [`TokenChange`]: what the hook given to
//! [`TokenCacheBuilder::on_token_change`](crate::TokenCacheBuilder::on_token_change) is told.

use std::sync::Arc;

use super::StoredToken;

/// A change of a cache's token, and where the new token came from, as
/// [`TokenCacheBuilder::on_token_change`](crate::TokenCacheBuilder::on_token_change) tells it.
///
/// A new token comes as the [`StoredToken`] saved to the cache's [store](super::TokenStore)
/// (or, without a store, as it would be saved), whose [`version`](StoredToken::version) is
/// then the token's [generation](crate::Token::generation). It holds the secrets: keep them
/// out of logs.
///
/// ```
/// use tower_bearer_auth::store::TokenChange;
///
/// fn describe(change: TokenChange<'_>) -> &'static str {
///     match change {
///         TokenChange::Login(_) => "logged in",
///         TokenChange::Refresh(_) => "refreshed",
///         TokenChange::Store(_) => "taken from the store",
///         TokenChange::Invalidated => "invalidated",
///         TokenChange::Revoked => "revoked",
///         _ => "changed",
///     }
/// }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub enum TokenChange<'a> {
    /// A login gave the cache this token (after a failed refresh too).
    Login(&'a StoredToken),
    /// The refresh token gave the cache this token.
    Refresh(&'a StoredToken),
    /// The cache took this token from its store, where another cache saved it, instead of
    /// fetching one.
    Store(&'a StoredToken),
    /// The cache stopped sending its token: the server refused it (a `401`), or
    /// [`TokenCache::invalidate`](crate::TokenCache::invalidate) was called. The next request
    /// refreshes it or logs in.
    Invalidated,
    /// [`TokenCache::revoke`](crate::TokenCache::revoke) forgot the token.
    Revoked,
}

impl<'a> TokenChange<'a> {
    /// The new token; `None` when the token was invalidated or revoked.
    pub fn token(&self) -> Option<&'a StoredToken> {
        match *self {
            Self::Login(token) | Self::Refresh(token) | Self::Store(token) => Some(token),
            Self::Invalidated | Self::Revoked => None,
        }
    }
}

/// A hook called with every change of the token; see
/// [`TokenCacheBuilder::on_token_change`](crate::TokenCacheBuilder::on_token_change).
pub(crate) type OnChange = Arc<dyn Fn(TokenChange<'_>) + Send + Sync>;
