use std::fmt;

use crate::{BoxError, TokenResponse, provider::BoxFuture, token::Redacted};

use super::TokenProvider;

/// A [`TokenProvider`] that always hands out the same token, which never expires.
///
/// Useful for API keys sent as bearer tokens, for tests and for examples.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BearerAuthLayer, provider::StaticToken};
///
/// let layer = BearerAuthLayer::new(StaticToken::new("my-api-key"));
/// assert!(!format!("{layer:?}").contains("my-api-key"));
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
}
