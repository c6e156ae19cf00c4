use std::{fmt, time::Duration};

use crate::{
    BoxError,
    origin::Origin,
    provider::BoxFuture,
    token::{Redacted, TokenResponse},
};

use super::TokenProvider;

/// A [`TokenProvider`] that always hands out the same token, which never expires.
///
/// Useful for API keys sent as bearer tokens, for tests and for examples.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BearerAuthLayer, Origin, provider::StaticToken};
///
/// let layer = BearerAuthLayer::new(StaticToken::new("my-api-key"))
///     .allow_origin(Origin::try_from("https://api.example.com")?);
/// assert!(!format!("{layer:?}").contains("my-api-key"));
/// # Ok::<(), tower_bearer_auth::InvalidOrigin>(())
/// ```
#[derive(Clone)]
pub struct StaticToken {
    token: String,
}

impl StaticToken {
    /// A provider that always returns `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
        }
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("token", &Redacted)
            .finish()
    }
}

impl TokenProvider for StaticToken {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        let response = TokenResponse::new(self.token.clone());
        Box::pin(async move { Ok(response) })
    }

    fn retry_after(&self, _: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        None
    }

    /// Nothing to revoke: the token is fixed.
    fn revoke<'a>(&'a self, _: &'a str, _: Option<&'a str>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    /// None: choose where the token goes on the layer.
    fn origin(&self) -> Option<Origin> {
        None
    }
}
