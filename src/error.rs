//! Errors produced while obtaining a token.
//!
//! [`TokenError`] is plain data: a kind and a chain of sources. It knows no provider; the
//! questions it answers about its cause (refused credentials, a transient failure, the token
//! endpoint's status) are asked of the providers' errors in `provider/classify.rs`.

use std::{error::Error, fmt, sync::Arc};

use crate::BoxError;

/// The error returned when no token could be obtained for a request.
///
/// [`BearerAuth`](crate::BearerAuth) returns it boxed as a [`BoxError`]; recover it with
/// [`TokenError::find`], which also looks behind the error types of the layers above (yours,
/// or a library's) that keep it as a source. Then ask it what you want to know:
///
/// - [`credentials_rejected`](Self::credentials_rejected): did the server refuse the
///   credentials (a wrong password, an unknown client)? Trying again will not help; the user
///   must fix the configuration.
/// - [`is_transient`](Self::is_transient): may the same request succeed later (a timeout, a
///   connection error, `5xx`, `429`)?
/// - [`two_factor_required`](Self::two_factor_required): does the PortSIP user sign in with
///   a one-time code that nothing supplies?
/// - [`oauth2_error`](Self::oauth2_error) (feature `oauth2`) and [`status`](Self::status):
///   the token endpoint's error code and description (RFC 6749's, or PortSIP's error list),
///   and its HTTP status; [`portsip_error`](Self::portsip_error) for PortSIP's own failures.
/// - [`kind`](Self::kind): which step failed.
///
/// Ask these rather than the kind: a password changed on the server shows as a refused login
/// whether the cache was logging in or refreshing (a refused refresh is followed by a login),
/// and the kind a given failure gets may be refined in later releases.
///
/// # Messages
///
/// The message names the step and quotes its cause's message, so that a log line that prints
/// only `Display` still says what happened: `token provider failed to log in: invalid_grant:
/// user credentials are invalid (HTTP 400)`. The cause stays available through
/// [`Error::source`], so a reporter that walks the chain of sources (`anyhow`'s `{:#}`, the
/// `tracing` events' `error` field) prints the cause's message twice. Neither the message nor
/// the cause ever contains a token, refresh token or password.
///
/// A `TokenError` is cheap to clone: every request that waited for the same failed login
/// receives a clone of one error.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BoxError, TokenError};
///
/// /// What to tell the operator when a request fails for want of a token.
/// fn advice(err: &BoxError) -> Option<&'static str> {
///     let err = TokenError::find(&**err)?;
///     Some(if err.credentials_rejected() {
///         "the server refused the user name, password or client id: fix the configuration"
///     } else if err.is_transient() {
///         "the token endpoint is unreachable or overloaded: the next request tries again"
///     } else {
///         "no token could be obtained"
///     })
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
    /// No token could be waited for: the request was polled outside any Tokio runtime (a
    /// login whose runtime shut down is started again instead).
    Aborted,
    /// The layer or middleware was never told where its token may go: the provider names no
    /// [origin](crate::provider::TokenProvider::origin), and neither
    /// [`allow_origin`](crate::BearerAuthLayer::allow_origin) nor
    /// [`any_origin`](crate::BearerAuthLayer::any_origin) was called. The request was not
    /// sent, and no token was fetched for it.
    Unbound,
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

    /// The `TokenError` in `error` or among its sources, nearest first: the one a request
    /// failed with, behind whatever wrapped it on the way up: a layer's or your own error type
    /// whose [`source`](Error::source) leads to it, an `anyhow` context, a
    /// `reqwest_middleware::Error`. `None` if the request failed for another reason.
    ///
    /// For a [`BoxError`] `err`, call `TokenError::find(&*err)`; for an `anyhow::Error`,
    /// `TokenError::find(err.as_ref())`. It walks the chain once and allocates nothing.
    ///
    /// A wrapper whose `source()` skips the error it wraps (`#[error(transparent)]` around a
    /// `BoxError` holding the `TokenError` itself) hides it: downcast that wrapper's field
    /// instead. The errors of [`BearerAuthMiddleware`](crate::reqwest::BearerAuthMiddleware)
    /// are built so that such wrappers (reqwest-retry's `RetryError`) do not hide it.
    ///
    /// ```
    /// use std::{convert::Infallible, error::Error, fmt};
    ///
    /// use http::{Request, Response};
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// use tower_bearer_auth::{BearerAuthLayer, BoxError, Origin, TokenError, provider::StaticToken};
    ///
    /// /// A layer above wraps every error in its own type.
    /// #[derive(Debug)]
    /// struct ApiError(BoxError);
    ///
    /// impl fmt::Display for ApiError {
    ///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    ///         f.write_str("the API call failed")
    ///     }
    /// }
    ///
    /// impl Error for ApiError {
    ///     fn source(&self) -> Option<&(dyn Error + 'static)> {
    ///         Some(&*self.0)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), BoxError> {
    /// let client = ServiceBuilder::new()
    ///     .map_err(ApiError)
    ///     // An empty token is refused before any request is sent.
    ///     .layer(
    ///         BearerAuthLayer::new(StaticToken::new(""))
    ///             .allow_origin(Origin::try_from("https://api.example.com")?),
    ///     )
    ///     .service(service_fn(|_: Request<String>| async {
    ///         Ok::<_, Infallible>(Response::new(String::new()))
    ///     }));
    /// let request = Request::get("https://api.example.com/v1").body(String::new())?;
    /// let err: ApiError = client.oneshot(request).await.unwrap_err();
    /// assert!(TokenError::find(&err).is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn find<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a TokenError> {
        fn next<'a>(error: &&'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
            Error::source(*error)
        }
        std::iter::successors(Some(error), next).find_map(|e| e.downcast_ref())
    }

    /// Which step went wrong.
    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The sources, nearest first.
    pub(crate) fn sources(&self) -> impl Iterator<Item = &(dyn Error + 'static)> {
        fn next<'a>(error: &&'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
            Error::source(*error)
        }
        std::iter::successors(Error::source(self), next)
    }

    /// The kind's phrase, without the cause.
    fn phrase(&self) -> &'static str {
        match self.kind {
            TokenErrorKind::Login => "token provider failed to log in",
            TokenErrorKind::Refresh => "token refresh and the fallback login failed",
            TokenErrorKind::InvalidResponse => "token provider returned an unusable token",
            TokenErrorKind::InvalidToken => "token is not a valid header value",
            TokenErrorKind::Timeout => "token provider timed out",
            TokenErrorKind::Revoke => "token provider failed to revoke the token",
            TokenErrorKind::Aborted => "token fetch was abandoned",
            TokenErrorKind::Unbound => {
                "the token is bound to no origin: call allow_origin(..) or any_origin() on the layer or middleware"
            }
        }
    }
}

impl fmt::Display for TokenError {
    /// The kind's phrase, then the cause's message: `token provider failed to log in:
    /// invalid_grant: user credentials are invalid (HTTP 400)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())?;
        match &self.source {
            Some(source) => write!(f, ": {source}"),
            None => Ok(()),
        }
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
    fn display_quotes_the_cause_and_source_is_chained() {
        let err = TokenError::with_source(TokenErrorKind::Login, Reason("connection refused"));
        assert_eq!(
            err.to_string(),
            "token provider failed to log in: connection refused"
        );
        assert_eq!(err.source().unwrap().to_string(), "connection refused");
        let boxed: BoxError = Box::new(err.clone());
        assert_eq!(
            boxed.downcast_ref::<TokenError>().unwrap().kind(),
            TokenErrorKind::Login
        );
        assert_eq!(
            TokenError::new(TokenErrorKind::Timeout).to_string(),
            "token provider timed out"
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
            TokenErrorKind::Unbound,
        ] {
            let msg = TokenError::new(kind).to_string();
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }
}
