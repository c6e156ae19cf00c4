//! The error a request fails with when no token could be had for it.

use std::{error::Error, fmt};

use crate::error::TokenError;

/// A request of a `ClientWithMiddleware` was not sent: no token could be had for it.
///
/// Private: [`token_error`](super::token_error) and [`TokenError::find`] reach the
/// [`TokenError`], its [`source`](Error::source). The `TokenError` is not handed to
/// `reqwest_middleware` directly because middleware above this one often wraps errors in a
/// transparent variant (reqwest-retry's `RetryError::Error`, `#[error(transparent)]` enums),
/// whose `source()` is the wrapped error's `source()`: the first error of the chain is skipped.
/// With this one first, what is skipped is this wrapper, and the chain still reaches the
/// `TokenError`.
#[derive(Debug)]
pub(crate) struct Unsent(pub(crate) TokenError);

impl fmt::Display for Unsent {
    /// `request not sent: ` and the `TokenError`'s message, so that a log line with only the
    /// `Display` of the outermost error still says what happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request not sent: {}", self.0)
    }
}

impl Error for Unsent {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// `error` as the `reqwest_middleware::Error` a request without a token fails with.
pub(crate) fn unsent(error: TokenError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(Unsent(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Reason, TokenErrorKind};

    /// reqwest-retry's `RetryError::Error`: transparent, so its `source()` skips one level.
    #[derive(Debug)]
    struct Transparent(reqwest_middleware::Error);

    impl fmt::Display for Transparent {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Display::fmt(&self.0, f)
        }
    }

    impl Error for Transparent {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.0.source()
        }
    }

    #[test]
    fn the_token_error_survives_transparent_wrappers() {
        let error = || TokenError::with_source(TokenErrorKind::Login, Reason("refused"));
        let wrapped = reqwest_middleware::Error::middleware(Transparent(unsent(error())));
        let found = super::super::token_error(&wrapped).expect("found");
        assert_eq!(found.kind(), TokenErrorKind::Login);
        assert_eq!(
            wrapped.to_string(),
            "request not sent: token provider failed to log in: refused"
        );
        let twice = reqwest_middleware::Error::middleware(Transparent(wrapped));
        assert!(TokenError::find(&twice).is_some());
        // A `TokenError` handed over as it is stays findable too.
        let bare = reqwest_middleware::Error::middleware(error());
        assert!(super::super::token_error(&bare).is_some());
    }
}
