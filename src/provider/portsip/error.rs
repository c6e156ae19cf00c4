//! [`PortSipError`]: the failures only PortSIP has, two-factor sign-in and a missing API.

use std::{error::Error, fmt};

use http::StatusCode;

use super::{PORTSIP_SIGN_IN_PATH, PORTSIP_TOKEN_PATH, PortSipApi};
use crate::{BoxError, provider::oauth2::OAuth2Error};

/// A PortSIP login that failed for a reason of PortSIP's own: two-factor sign-in, or an API
/// the PBX does not serve.
///
/// A [`PortSipProvider`](super::PortSipProvider) fails with it, boxed as a [`BoxError`], in
/// those cases; every other failure (a refused password, an error status, a transport error)
/// is an [`OAuth2Error`], on either API. Through the layer it arrives as the
/// [`source`](Error::source) of a [`TokenError`](crate::TokenError):
/// [`TokenError::portsip_error`](crate::TokenError::portsip_error) finds it, and
/// [`TokenError::two_factor_required`](crate::TokenError::two_factor_required) asks the usual
/// question.
///
/// Like [`TokenError`](crate::TokenError)'s, its message quotes its cause's (the callback's
/// error, or the PBX's refusal of a one-time code), so that a log line that prints only
/// `Display` says what happened. It never holds the password, a token, the two-factor session
/// token or the one-time code.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BoxError, TokenError};
///
/// fn advice(err: &BoxError) -> Option<&'static str> {
///     let err = err.downcast_ref::<TokenError>()?;
///     Some(if err.two_factor_required() {
///         "this user signs in with a one-time code: configure a callback, or use another user"
///     } else if err.credentials_rejected() {
///         "the PBX refused the user name, password or one-time code"
///     } else {
///         "no token could be had"
///     })
/// }
/// ```
pub struct PortSipError {
    kind: PortSipErrorKind,
    source: Option<BoxError>,
}

/// What went wrong, in a [`PortSipError`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSipErrorKind {
    /// The sign-in answered `{"two_factor_enabled": true, …}`: the user signs in with a
    /// one-time code the PBX e-mails, and no callback to supply it was configured (see
    /// [`PortSip::one_time_code`](super::PortSip::one_time_code)).
    TwoFactorRequired,
    /// The callback that supplies the one-time code failed; its error is the source.
    OneTimeCode,
    /// The PBX refused the one-time code (`POST /api/auth/verify_otp`); its answer, an
    /// [`OAuth2Error`], is the source.
    OneTimeCodeRejected,
    /// The PBX answered `404` (or `405`) at the API the provider was told to use
    /// ([`PortSipApi::SignIn`] or [`PortSipApi::OAuth`]); its answer is the source.
    ApiNotServed {
        /// The API asked for.
        api: PortSipApi,
    },
    /// With [`PortSipApi::Auto`], the PBX answered `404` (or `405`) at both APIs: the base
    /// URL is probably wrong. The OAuth token endpoint's answer is the source.
    NeitherApiServed,
}

impl PortSipError {
    pub(crate) fn new(kind: PortSipErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn with_source(kind: PortSipErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> PortSipErrorKind {
        self.kind
    }

    /// Whether the user must sign in with a one-time code and no callback supplies one.
    pub fn is_two_factor_required(&self) -> bool {
        self.kind == PortSipErrorKind::TwoFactorRequired
    }

    /// Whether trying again with the same configuration will not help, as for refused
    /// credentials: two-factor sign-in without a callback (each attempt would e-mail the user
    /// another code), and a refused one-time code.
    pub fn credentials_rejected(&self) -> bool {
        matches!(
            self.kind,
            PortSipErrorKind::TwoFactorRequired | PortSipErrorKind::OneTimeCodeRejected
        )
    }

    /// The PBX's answer, when the error has one: for a refused one-time code, or an API not
    /// served.
    pub fn oauth2_error(&self) -> Option<&OAuth2Error> {
        self.source.as_deref()?.downcast_ref()
    }

    /// The HTTP status of the PBX's answer, if the error has one.
    pub fn status(&self) -> Option<StatusCode> {
        self.oauth2_error()?.status()
    }
}

impl fmt::Display for PortSipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status().map_or(404, |s| s.as_u16());
        match self.kind {
            PortSipErrorKind::TwoFactorRequired => f.write_str(
                "two-factor authentication is required for this user: the PBX e-mails a \
                 one-time code, which only a callback given to `PortSip::one_time_code` can \
                 supply; configure one, or sign in as a user without two-factor authentication",
            ),
            PortSipErrorKind::OneTimeCode => {
                f.write_str("the callback supplying the one-time code failed")?;
                self.quote_source(f)
            }
            PortSipErrorKind::OneTimeCodeRejected => {
                f.write_str("the PBX refused the one-time code")?;
                self.quote_source(f)
            }
            PortSipErrorKind::ApiNotServed {
                api: PortSipApi::OAuth,
            } => write!(
                f,
                "the PBX does not serve the OAuth token endpoint (HTTP {status} at \
                 {PORTSIP_TOKEN_PATH}): use `PortSipApi::SignIn` or `PortSipApi::Auto`"
            ),
            PortSipErrorKind::ApiNotServed { .. } => write!(
                f,
                "the PBX does not serve the sign-in API (HTTP {status} at \
                 {PORTSIP_SIGN_IN_PATH}), which PBXs before v22.2.11 lack: use \
                 `PortSipApi::OAuth` or `PortSipApi::Auto`"
            ),
            PortSipErrorKind::NeitherApiServed => write!(
                f,
                "the PBX serves neither the sign-in API nor the OAuth token endpoint (HTTP \
                 {status} at {PORTSIP_SIGN_IN_PATH} and {PORTSIP_TOKEN_PATH}): check the base URL"
            ),
        }
    }
}

impl PortSipError {
    fn quote_source(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, ": {source}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for PortSipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The sources are this crate's errors or the callback's, which the callback's
        // documentation asks to keep free of the code.
        f.debug_struct("PortSipError")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for PortSipError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{error::Reason, provider::oauth2::OAuth2ErrorKind};

    fn answer(status: u16) -> OAuth2Error {
        OAuth2Error::new(
            OAuth2ErrorKind::ErrorList {
                code: "UNAUTHORIZED".into(),
                message: Some("Verification failed".into()),
                detail: None,
            },
            Some(StatusCode::from_u16(status).unwrap()),
        )
    }

    #[test]
    fn messages_say_what_to_do() {
        let two_factor = PortSipError::new(PortSipErrorKind::TwoFactorRequired);
        let text = two_factor.to_string();
        assert!(
            text.starts_with("two-factor authentication is required for this user"),
            "{text}"
        );
        assert!(text.contains("PortSip::one_time_code"), "{text}");
        assert!(two_factor.is_two_factor_required());
        assert!(two_factor.credentials_rejected());
        assert_eq!(two_factor.status(), None);

        let rejected =
            PortSipError::with_source(PortSipErrorKind::OneTimeCodeRejected, answer(400));
        assert_eq!(
            rejected.to_string(),
            "the PBX refused the one-time code: UNAUTHORIZED: Verification failed (HTTP 400)"
        );
        assert!(rejected.credentials_rejected());
        assert_eq!(rejected.status(), Some(StatusCode::BAD_REQUEST));

        let callback =
            PortSipError::with_source(PortSipErrorKind::OneTimeCode, Reason("mailbox unreachable"));
        assert_eq!(
            callback.to_string(),
            "the callback supplying the one-time code failed: mailbox unreachable"
        );
        assert!(!callback.credentials_rejected());
        assert!(callback.oauth2_error().is_none());

        let missing = PortSipError::with_source(
            PortSipErrorKind::ApiNotServed {
                api: PortSipApi::SignIn,
            },
            answer(404),
        );
        assert!(
            missing
                .to_string()
                .contains("HTTP 404 at /api/auth/sign_in")
        );
        assert!(missing.to_string().contains("PortSipApi::OAuth"));
        let missing = PortSipError::with_source(
            PortSipErrorKind::ApiNotServed {
                api: PortSipApi::OAuth,
            },
            answer(405),
        );
        assert!(
            missing
                .to_string()
                .contains("HTTP 405 at /api/login/oauth/token")
        );
        let neither = PortSipError::with_source(PortSipErrorKind::NeitherApiServed, answer(404));
        assert!(neither.to_string().contains("check the base URL"));
        for error in [missing, neither] {
            assert!(!error.credentials_rejected());
            let text = error.to_string();
            assert!(text.chars().next().unwrap().is_lowercase() && !text.ends_with('.'));
        }
    }
}
