//! Errors produced while obtaining a token.

use std::{error::Error, fmt, sync::Arc};

use crate::BoxError;

/// The error returned when no token could be obtained for a request.
///
/// [`BearerAuth`](crate::BearerAuth) returns it boxed as a [`BoxError`]; recover it with
/// `downcast_ref::<TokenError>()` and inspect [`kind`](TokenError::kind). The cause, if any,
/// is available through [`Error::source`]. Neither the message nor the cause ever contains a
/// token, refresh token or password.
///
/// A `TokenError` is cheap to clone: every request that waited for the same failed login
/// receives a clone of one error.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BoxError, TokenError, TokenErrorKind};
///
/// fn is_login_failure(err: &BoxError) -> bool {
///     err.downcast_ref::<TokenError>()
///         .is_some_and(|e| e.kind() == TokenErrorKind::Login)
/// }
/// ```
#[derive(Clone)]
pub struct TokenError {
    kind: TokenErrorKind,
    source: Option<Arc<dyn Error + Send + Sync>>,
}

/// What went wrong while obtaining a token.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenErrorKind {
    /// The provider failed to log in.
    Login,
    /// The provider failed to refresh the token, and the login tried after it failed too.
    Refresh,
    /// The provider returned a token response the cache cannot use: an empty token, a
    /// lifetime that has already run out, or a token type other than bearer.
    InvalidResponse,
    /// The token contains characters that cannot be sent in an HTTP header.
    InvalidToken,
    /// The provider did not answer within the configured timeout.
    Timeout,
    /// The provider failed to revoke the token.
    Revoke,
    /// The token fetch was abandoned before it finished: the runtime it ran on shut down, or
    /// there was no Tokio runtime to run it on.
    Aborted,
}

impl TokenError {
    pub(crate) fn new(kind: TokenErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn with_source(kind: TokenErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(Arc::from(source.into())),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            TokenErrorKind::Login => "token provider failed to log in",
            TokenErrorKind::Refresh => "token refresh and the fallback login failed",
            TokenErrorKind::InvalidResponse => "token provider returned an unusable token",
            TokenErrorKind::InvalidToken => "token is not a valid header value",
            TokenErrorKind::Timeout => "token provider timed out",
            TokenErrorKind::Revoke => "token provider failed to revoke the token",
            TokenErrorKind::Aborted => "token fetch was abandoned",
        })
    }
}

impl fmt::Debug for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source is printed through its own `Debug`, which for this crate's errors never
        // holds a secret. Providers are asked to keep it that way (see `TokenProvider`).
        f.debug_struct("TokenError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for TokenError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// A fixed message used as the source of an error when there is no underlying error, so
/// that no value taken from a response (which might be a token) reaches an error message.
#[derive(Debug)]
pub(crate) struct Reason(pub(crate) &'static str);

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Error for Reason {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_short_and_source_is_chained() {
        let err = TokenError::with_source(TokenErrorKind::Login, Reason("connection refused"));
        assert_eq!(err.to_string(), "token provider failed to log in");
        assert_eq!(err.source().unwrap().to_string(), "connection refused");
        let boxed: BoxError = Box::new(err.clone());
        assert_eq!(
            boxed.downcast_ref::<TokenError>().unwrap().kind(),
            TokenErrorKind::Login
        );
    }

    #[test]
    fn every_message_is_lowercase_without_period() {
        for kind in [
            TokenErrorKind::Login,
            TokenErrorKind::Refresh,
            TokenErrorKind::InvalidResponse,
            TokenErrorKind::InvalidToken,
            TokenErrorKind::Timeout,
            TokenErrorKind::Revoke,
            TokenErrorKind::Aborted,
        ] {
            let msg = TokenError::new(kind).to_string();
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }
}
