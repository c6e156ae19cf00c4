//! What a [`TokenError`]'s cause says: refused credentials, a failure worth trying again, a
//! PortSIP two-factor sign-in, the token endpoint's status.
//!
//! The questions are methods of [`TokenError`], answered here rather than next to the type, so
//! that `error.rs` stays plain data that knows no provider: this module knows the providers'
//! errors ([`OAuth2Error`](super::oauth2::OAuth2Error) and
//! [`PortSipError`](super::portsip::PortSipError), which classify themselves) and asks the
//! first of each found among the sources.

use http::StatusCode;

#[cfg(feature = "oauth2")]
use super::{
    oauth2::OAuth2Error,
    portsip::{PortSipError, PortSipErrorKind},
};
use crate::error::{TokenError, TokenErrorKind};

/// A provider's error, asked [`TokenError`]'s questions. `None` means it has no answer, and
/// the next cause is asked.
trait Classify {
    fn credentials_rejected(&self) -> Option<bool>;
    fn is_transient(&self) -> Option<bool>;
    fn two_factor_required(&self) -> Option<bool>;
    fn status(&self) -> Option<StatusCode>;
}

#[cfg(feature = "oauth2")]
impl Classify for PortSipError {
    fn credentials_rejected(&self) -> Option<bool> {
        Some(PortSipError::credentials_rejected(self))
    }

    fn is_transient(&self) -> Option<bool> {
        // A failing one-time-code callback is judged by its own error, further down the chain.
        (self.kind() != PortSipErrorKind::OneTimeCode).then_some(false)
    }

    fn two_factor_required(&self) -> Option<bool> {
        Some(self.is_two_factor_required())
    }

    fn status(&self) -> Option<StatusCode> {
        None
    }
}

#[cfg(feature = "oauth2")]
impl Classify for OAuth2Error {
    fn credentials_rejected(&self) -> Option<bool> {
        Some(OAuth2Error::credentials_rejected(self))
    }

    fn is_transient(&self) -> Option<bool> {
        Some(OAuth2Error::is_transient(self))
    }

    fn two_factor_required(&self) -> Option<bool> {
        None
    }

    fn status(&self) -> Option<StatusCode> {
        OAuth2Error::status(self)
    }
}

impl TokenError {
    /// Whether the server refused the credentials: the token endpoint answered a login (or a
    /// refresh) with `invalid_grant`, `invalid_client` or `unauthorized_client`, with
    /// PortSIP's error code `UNAUTHORIZED`, or with `401 Unauthorized`; or a PortSIP sign-in
    /// was answered with another `4xx` (but `404`, `405`, `408` and `429`). A wrong or changed
    /// password, an unknown client id or a wrong client secret; trying again with the same
    /// configuration will not help. A PortSIP user whose two-factor sign-in nothing can
    /// finish ([`two_factor_required`](Self::two_factor_required)), and a refused one-time
    /// code, count too: the password alone will not do.
    ///
    /// It does not depend on the [`kind`](Self::kind): a password changed while a token was
    /// cached shows up when the refresh is refused and the login after it too. Only this
    /// crate's [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider) and
    /// [`PortSipProvider`](crate::provider::portsip::PortSipProvider) say why they failed, so
    /// with another provider (or without the `oauth2` feature) this is `false`.
    pub fn credentials_rejected(&self) -> bool {
        self.causes()
            .find_map(Classify::credentials_rejected)
            .unwrap_or(false)
    }

    /// Whether the PortSIP user must sign in with a one-time code and nothing supplies it:
    /// the sign-in answered that two-factor authentication is on, and no callback was given
    /// to [`PortSip::one_time_code`](crate::provider::portsip::PortSip::one_time_code).
    /// Always `false` without the `oauth2` feature.
    pub fn two_factor_required(&self) -> bool {
        self.causes()
            .find_map(Classify::two_factor_required)
            .unwrap_or(false)
    }

    /// Whether the same request may succeed later: the provider timed out
    /// ([`TokenErrorKind::Timeout`]), or the cause is a transport failure (a connection
    /// refused, reset or timed out, found as a [`std::io::Error`] in the chain of sources)
    /// or, from the token endpoint, a `5xx` or `429` status or the error code
    /// `temporarily_unavailable`.
    ///
    /// The cache already retries on its own after a pause (see
    /// [`TokenCacheBuilder::backoff`](crate::TokenCacheBuilder::backoff)); this tells a caller
    /// whether to retry the request, or to give up and report.
    pub fn is_transient(&self) -> bool {
        if self.kind() == TokenErrorKind::Timeout {
            return true;
        }
        if let Some(transient) = self.causes().find_map(Classify::is_transient) {
            return transient;
        }
        self.sources().any(|e| {
            e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| is_transient_io(e.kind()))
        })
    }

    /// The token endpoint's error, when the provider is an
    /// [`OAuth2Provider`](crate::provider::oauth2::OAuth2Provider) or a
    /// [`PortSipProvider`](crate::provider::portsip::PortSipProvider) (or wraps their errors):
    /// the first [`OAuth2Error`](crate::provider::oauth2::OAuth2Error) among the sources,
    /// with the [`error_code`](crate::provider::oauth2::OAuth2Error::error_code) and
    /// description (RFC 6749's, or PortSIP's error list) and the HTTP
    /// [`status`](crate::provider::oauth2::OAuth2Error::status).
    #[cfg(feature = "oauth2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
    pub fn oauth2_error(&self) -> Option<&OAuth2Error> {
        self.sources().find_map(|e| e.downcast_ref())
    }

    /// PortSIP's own failure, when the provider is a
    /// [`PortSipProvider`](crate::provider::portsip::PortSipProvider): the first
    /// [`PortSipError`](crate::provider::portsip::PortSipError) among the sources (two-factor
    /// sign-in, an API the PBX does not serve).
    #[cfg(feature = "oauth2")]
    #[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
    pub fn portsip_error(&self) -> Option<&PortSipError> {
        self.sources().find_map(|e| e.downcast_ref())
    }

    /// The HTTP status the token endpoint answered with, when the cause says (see
    /// [`oauth2_error`](Self::oauth2_error)). `None` without the `oauth2` feature, and when no
    /// response was received.
    pub fn status(&self) -> Option<StatusCode> {
        self.causes().find_map(Classify::status)
    }

    /// The providers' errors that answer the questions above, in the order they are asked:
    /// the first [`PortSipError`] among the sources (it knows what its sign-in meant), then
    /// the first [`OAuth2Error`]. None without the `oauth2` feature.
    fn causes(&self) -> impl Iterator<Item = &dyn Classify> {
        #[cfg(feature = "oauth2")]
        let causes = [
            self.portsip_error().map(|e| e as &dyn Classify),
            self.oauth2_error().map(|e| e as &dyn Classify),
        ];
        #[cfg(not(feature = "oauth2"))]
        let causes: [Option<&dyn Classify>; 0] = [];
        causes.into_iter().flatten()
    }
}

/// I/O failures that a later attempt may not meet.
fn is_transient_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | NotConnected
            | BrokenPipe
            | TimedOut
            | Interrupted
            | UnexpectedEof
            | WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use std::{error::Error, fmt};

    use super::*;
    use crate::error::Reason;

    #[test]
    fn transient_without_oauth2() {
        assert!(TokenError::new(TokenErrorKind::Timeout).is_transient());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let err = TokenError::with_source(TokenErrorKind::Login, refused);
        assert!(err.is_transient());
        assert!(!err.credentials_rejected());
        assert_eq!(err.status(), None);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!TokenError::with_source(TokenErrorKind::Login, denied).is_transient());
        assert!(!TokenError::new(TokenErrorKind::InvalidResponse).is_transient());
    }

    #[cfg(feature = "oauth2")]
    #[test]
    fn helpers_find_the_token_endpoint_error() {
        use crate::provider::oauth2::{OAuth2Error, OAuth2ErrorKind, test_helpers::server_error};

        let server =
            |code: &str, status: u16| server_error(code, "user credentials are invalid", status);
        let err = TokenError::with_source(TokenErrorKind::Login, server("invalid_grant", 400));
        assert_eq!(
            err.to_string(),
            "token provider failed to log in: invalid_grant: user credentials are invalid (HTTP 400)"
        );
        assert!(err.credentials_rejected());
        assert!(!err.is_transient());
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            err.oauth2_error().unwrap().error_code(),
            Some("invalid_grant")
        );

        // Whatever the step: a refused fallback login after a refused refresh.
        let err = TokenError::with_source(TokenErrorKind::Refresh, server("invalid_client", 401));
        assert!(err.credentials_rejected());
        let err =
            TokenError::with_source(TokenErrorKind::Login, server("unauthorized_client", 400));
        assert!(err.credentials_rejected());
        let status_401 = OAuth2Error::new(
            OAuth2ErrorKind::Status {
                body: String::new(),
            },
            Some(StatusCode::UNAUTHORIZED),
        );
        assert!(TokenError::with_source(TokenErrorKind::Login, status_401).credentials_rejected());

        // Transient: 5xx, 429, temporarily_unavailable, transport.
        for transient in [
            server("server_error", 503),
            server("temporarily_unavailable", 400),
            server("slow_down", 429),
            OAuth2Error::transport(Reason("connection refused")),
        ] {
            let err = TokenError::with_source(TokenErrorKind::Login, transient);
            assert!(err.is_transient(), "{err}");
            assert!(!err.credentials_rejected(), "{err}");
        }

        // Found however deep it sits: a provider that wraps the error.
        #[derive(Debug)]
        struct Wrapped(OAuth2Error);
        impl fmt::Display for Wrapped {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("my provider failed")
            }
        }
        impl Error for Wrapped {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let err =
            TokenError::with_source(TokenErrorKind::Login, Wrapped(server("invalid_grant", 400)));
        assert!(err.credentials_rejected());
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            err.to_string(),
            "token provider failed to log in: my provider failed"
        );
    }

    #[cfg(feature = "oauth2")]
    #[test]
    fn helpers_find_portsip_failures() {
        use crate::provider::{
            oauth2::{OAuth2Error, OAuth2ErrorKind},
            portsip::{PortSipError, PortSipErrorKind},
        };
        use http::StatusCode;

        let two_factor = TokenError::with_source(
            TokenErrorKind::Login,
            PortSipError::new(PortSipErrorKind::TwoFactorRequired),
        );
        assert!(two_factor.two_factor_required());
        assert!(two_factor.credentials_rejected());
        assert!(!two_factor.is_transient());
        assert!(
            two_factor.to_string().starts_with(
                "token provider failed to log in: two-factor authentication is required"
            )
        );

        // A sign-in's 403 with a body of no known shape: refused credentials all the same.
        let forbidden = || {
            OAuth2Error::new(
                OAuth2ErrorKind::Status {
                    body: "forbidden".into(),
                },
                Some(StatusCode::FORBIDDEN),
            )
        };
        let err = TokenError::with_source(TokenErrorKind::Login, forbidden());
        assert!(!err.credentials_rejected());
        let err =
            TokenError::with_source(TokenErrorKind::Login, forbidden().refusing_credentials());
        assert!(err.credentials_rejected());
        assert!(!err.two_factor_required());

        // A refused one-time code: rejected, its status and answer found.
        let refused = PortSipError::with_source(
            PortSipErrorKind::OneTimeCodeRejected,
            forbidden().refusing_credentials(),
        );
        let err = TokenError::with_source(TokenErrorKind::Login, refused);
        assert!(err.credentials_rejected());
        assert!(!err.two_factor_required());
        assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
        assert!(err.oauth2_error().is_some());

        // A callback that failed on the network is worth trying again.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let callback = PortSipError::with_source(PortSipErrorKind::OneTimeCode, refused);
        let err = TokenError::with_source(TokenErrorKind::Login, callback);
        assert!(err.is_transient());
        assert!(!err.credentials_rejected());
    }
}
