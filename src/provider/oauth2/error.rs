//! [`OAuth2Error`]: what a call to the token or revocation endpoint failed with.

use std::{error::Error, fmt, time::Duration};

use http::StatusCode;

use crate::error::Reason;
use crate::{BoxError, origin::Origin};

/// A token endpoint call that failed.
///
/// [`OAuth2Provider`](super::OAuth2Provider) returns it boxed as a [`BoxError`]; through the
/// layer it arrives as the [`source`](Error::source) of a [`TokenError`](crate::TokenError).
/// [`TokenError::oauth2_error`](crate::TokenError::oauth2_error) finds it there.
///
/// Neither its `Display` nor its `Debug` output holds a password, client secret or token: only
/// the server's error code and description (RFC 6749 §5.2) or the start of an error body, at
/// most 200 characters each. A server that echoes the request back does not change that: the
/// provider's password, client secret (also as the Base64 of `Authorization: Basic`), the
/// values of its [`login_param`](super::OAuth2ProviderBuilder::login_param)s and the refresh
/// or access token the request carried are replaced by `<redacted>` in everything quoted, and
/// the fields of a JSON error body whose names mention a token, secret or password are left
/// out. Nor does it hold a URL: a redirect is named by its origin only, and a transport
/// error's `reqwest::Error` source is stripped of its URL.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::{BoxError, TokenError};
///
/// /// Why a request failed, for a log line: "invalid_grant (HTTP 400)", say.
/// fn why(err: &BoxError) -> Option<String> {
///     let oauth = err.downcast_ref::<TokenError>()?.oauth2_error()?;
///     Some(match (oauth.error_code(), oauth.status()) {
///         (Some(code), Some(status)) => format!("{code} (HTTP {})", status.as_u16()),
///         _ => oauth.to_string(),
///     })
/// }
/// ```
pub struct OAuth2Error {
    kind: OAuth2ErrorKind,
    status: Option<StatusCode>,
    retry_after: Option<Duration>,
    /// Whether the call that failed was one whose refusal means the credentials are wrong,
    /// whatever the body said (a PortSIP sign-in answered with a `4xx`).
    refuses_credentials: bool,
    source: Option<BoxError>,
}

/// What went wrong in a call to the token or revocation endpoint.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuth2ErrorKind {
    /// The server answered with an RFC 6749 §5.2 error: `{"error": …}`, possibly with a
    /// success status.
    Server {
        /// The error code, such as `invalid_grant` or `invalid_client`.
        error: String,
        /// The server's human-readable `error_description`, at most 200 characters, the
        /// provider's secrets replaced by `<redacted>`.
        description: Option<String>,
        /// The server's `error_uri`, at most 200 characters.
        uri: Option<String>,
    },
    /// The server answered with PortSIP's error body, `{"errors": [{"code", "message",
    /// "detail"}]}`, possibly with a success status: its first entry.
    ErrorList {
        /// The error code, such as `UNAUTHORIZED`, kept as the server wrote it (at most 200
        /// characters); a code this crate does not know is kept too.
        code: String,
        /// The server's human-readable `message`, at most 200 characters, the provider's
        /// secrets replaced by `<redacted>`.
        message: Option<String>,
        /// The server's `detail`, likewise.
        detail: Option<String>,
    },
    /// The server answered with an error status and a body that is neither an RFC 6749 error
    /// nor PortSIP's error list.
    Status {
        /// The start of the body as text, at most 200 characters, control characters
        /// replaced and the provider's secrets replaced by `<redacted>`. A JSON body is
        /// quoted without its fields whose names mention a token, secret or password.
        body: String,
    },
    /// The server answered with a success status but the body is not a usable token response.
    InvalidResponse,
    /// The response body is larger than the configured limit; it was not read whole.
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request could not be sent or the response could not be read.
    Transport,
    /// The endpoint answered with a redirect (a `3xx` status), or the HTTP client followed
    /// one and the answer came from elsewhere. A request that carries credentials is never
    /// sent on to where a redirect points, and only the configured endpoint's own answer is
    /// taken, so this is an error: point the provider at the URL the redirect names, if it is
    /// the right one.
    Redirect {
        /// The origin (scheme, host and port) the redirect pointed to, if it said; never the
        /// rest of the URL, which may hold a code or a token.
        location: Option<String>,
        /// Whether the HTTP client followed the redirect itself (a reqwest client does,
        /// unless built with `redirect::Policy::none()`): the answer came from `location`, and
        /// was not used. The request's body was not sent there (this crate's clients never
        /// replay it), nor its `Authorization` header when `location` is another origin.
        followed: bool,
    },
}

impl OAuth2Error {
    pub(crate) fn new(kind: OAuth2ErrorKind, status: Option<StatusCode>) -> Self {
        Self {
            kind,
            status,
            retry_after: None,
            refuses_credentials: false,
            source: None,
        }
    }

    /// Marks a failure of a call whose refusal means wrong credentials (a PortSIP sign-in
    /// answered with a `4xx` other than `404`, `405`, `408` and `429`), so that
    /// [`credentials_rejected`](Self::credentials_rejected) says so whatever the body was.
    pub(crate) fn refusing_credentials(mut self) -> Self {
        self.refuses_credentials = true;
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn transport(source: impl Into<BoxError>) -> Self {
        Self::new(OAuth2ErrorKind::Transport, None).with_source(source)
    }

    pub(crate) fn invalid_response(status: StatusCode, why: &'static str) -> Self {
        Self::new(OAuth2ErrorKind::InvalidResponse, Some(status)).with_source(Reason(why))
    }

    /// A redirect to `location`, refused; `followed` when the HTTP client followed it.
    pub(crate) fn redirect(status: StatusCode, location: Option<Origin>, followed: bool) -> Self {
        let location = location.map(|origin| origin.to_string());
        Self::new(
            OAuth2ErrorKind::Redirect { location, followed },
            Some(status),
        )
    }

    /// What went wrong.
    pub fn kind(&self) -> &OAuth2ErrorKind {
        &self.kind
    }

    /// How long the server asked the client to wait before trying again: its `Retry-After`
    /// header (seconds, or an HTTP date), usually sent with `429` or `503`.
    ///
    /// The token cache honours it through
    /// [`TokenProvider::retry_after`](crate::provider::TokenProvider::retry_after).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status of the response, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The error code the server sent, if any: RFC 6749's `error` (`invalid_grant`,
    /// `invalid_client`, …), or the `code` of PortSIP's error list (`UNAUTHORIZED`, …).
    pub fn error_code(&self) -> Option<&str> {
        match &self.kind {
            OAuth2ErrorKind::Server { error, .. } => Some(error),
            OAuth2ErrorKind::ErrorList { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The server's words, if any: RFC 6749's `error_description`, or the `message` of
    /// PortSIP's error list.
    pub fn error_description(&self) -> Option<&str> {
        match &self.kind {
            OAuth2ErrorKind::Server { description, .. } => description.as_deref(),
            OAuth2ErrorKind::ErrorList { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// Whether the server refused the credentials, so that trying again with the same
    /// configuration will not help: the RFC 6749 error
    /// [`invalid_grant`](Self::is_invalid_grant) or an [invalid client](Self::is_invalid_client),
    /// PortSIP's error code `UNAUTHORIZED`, the status `401 Unauthorized`, or, from a
    /// PortSIP sign-in or one-time-code check, any `4xx` other than `404`, `405`, `408` and
    /// `429`.
    ///
    /// [`TokenError::credentials_rejected`](crate::TokenError::credentials_rejected) asks it.
    pub fn credentials_rejected(&self) -> bool {
        self.is_invalid_grant()
            || self.is_invalid_client()
            || matches!(&self.kind, OAuth2ErrorKind::ErrorList { code, .. } if code == "UNAUTHORIZED")
            || self.status == Some(StatusCode::UNAUTHORIZED)
            || self.refuses_credentials
    }

    /// Whether the server refused the grant: wrong user name or password, or a refresh token
    /// that is expired, revoked or already used.
    ///
    /// After a refused refresh the token cache logs in again.
    pub fn is_invalid_grant(&self) -> bool {
        self.error_code() == Some("invalid_grant")
    }

    /// Whether the server refused the client itself (`invalid_client` or
    /// `unauthorized_client`): a wrong client id or secret, or a client not allowed this
    /// grant. Trying again will not help; such errors are not [transient](Self::is_transient).
    pub fn is_invalid_client(&self) -> bool {
        matches!(
            self.error_code(),
            Some("invalid_client" | "unauthorized_client")
        )
    }

    /// Whether the same request may succeed later: a transport failure, a `5xx` or `429`
    /// status, or the error code `temporarily_unavailable`.
    ///
    /// Errors the server chose deliberately (`invalid_grant`, `invalid_client`,
    /// `unauthorized_client`, `invalid_request`, …) with a `4xx` status are not transient, so
    /// retry policies should not repeat them.
    pub fn is_transient(&self) -> bool {
        if matches!(self.kind, OAuth2ErrorKind::Transport) {
            return true;
        }
        if self.error_code() == Some("temporarily_unavailable") {
            return true;
        }
        self.status
            .is_some_and(|s| s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS)
    }
}

impl fmt::Display for OAuth2Error {
    /// Short enough to follow another message: `invalid_grant: bad password (HTTP 400)` for an
    /// RFC 6749 error, `UNAUTHORIZED: Login failed, authentication error (HTTP 400)` for
    /// PortSIP's error list (its `detail` after the message, when there is one), and
    /// `HTTP 502 from the token endpoint: <html>…` for another error status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            OAuth2ErrorKind::Server {
                error, description, ..
            } => {
                f.write_str(error)?;
                if let Some(description) = description.as_deref().filter(|d| !d.is_empty()) {
                    write!(f, ": {description}")?;
                }
                self.fmt_status(f)
            }
            OAuth2ErrorKind::ErrorList {
                code,
                message,
                detail,
            } => {
                f.write_str(code)?;
                for text in [message, detail].into_iter().flatten() {
                    if !text.is_empty() {
                        write!(f, ": {text}")?;
                    }
                }
                self.fmt_status(f)
            }
            OAuth2ErrorKind::Status { body } => {
                let code = self.status.map_or(0, |s| s.as_u16());
                write!(f, "HTTP {code} from the token endpoint")?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            OAuth2ErrorKind::InvalidResponse => self.fmt_invalid_response(f),
            OAuth2ErrorKind::BodyTooLarge { limit } => {
                write!(f, "token endpoint response exceeds {limit} bytes")?;
                self.fmt_status(f)
            }
            OAuth2ErrorKind::Transport => f.write_str("token endpoint request failed"),
            OAuth2ErrorKind::Redirect { location, followed } => {
                self.fmt_redirect(f, location.as_deref(), *followed)
            }
        }
    }
}

impl OAuth2Error {
    /// ` (HTTP 400)`, when there was a status.
    fn fmt_status(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, " (HTTP {})", status.as_u16()),
            None => Ok(()),
        }
    }

    fn fmt_invalid_response(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid token endpoint response")?;
        self.fmt_status(f)?;
        // What is wrong with it, when the crate said so itself: a fixed message that
        // names the field, never a value from the response.
        match self
            .source
            .as_deref()
            .and_then(|e| e.downcast_ref::<Reason>())
        {
            Some(reason) => write!(f, ": {reason}"),
            None => Ok(()),
        }
    }

    fn fmt_redirect(
        &self,
        f: &mut fmt::Formatter<'_>,
        location: Option<&str>,
        followed: bool,
    ) -> fmt::Result {
        if followed {
            f.write_str("the HTTP client followed a redirect from the token endpoint")?;
        } else {
            f.write_str("the token endpoint answered with a redirect")?;
        }
        if let Some(location) = location {
            write!(f, " to {location}")?;
        }
        if followed {
            f.write_str("; its answer is not used")
        } else {
            f.write_str(", which is not followed")?;
            self.fmt_status(f)
        }
    }
}

impl fmt::Debug for OAuth2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Error")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("retry_after", &self.retry_after)
            .field("refuses_credentials", &self.refuses_credentials)
            .field("source", &self.source)
            .finish()
    }
}

impl Error for OAuth2Error {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(error: &str, status: u16) -> OAuth2Error {
        crate::provider::oauth2::test_helpers::server_error(error, "bad password", status)
    }

    #[test]
    fn display() {
        assert_eq!(
            server("invalid_grant", 400).to_string(),
            "invalid_grant: bad password (HTTP 400)"
        );
        let status = OAuth2Error::new(
            OAuth2ErrorKind::Status {
                body: "<html>".into(),
            },
            Some(StatusCode::BAD_GATEWAY),
        );
        assert_eq!(
            status.to_string(),
            "HTTP 502 from the token endpoint: <html>"
        );
        assert_eq!(
            OAuth2Error::new(OAuth2ErrorKind::BodyTooLarge { limit: 10 }, None).to_string(),
            "token endpoint response exceeds 10 bytes"
        );
        let to = Origin::try_from("http://127.0.0.2:8080").ok();
        let refused = OAuth2Error::redirect(StatusCode::TEMPORARY_REDIRECT, to.clone(), false);
        assert_eq!(
            refused.to_string(),
            "the token endpoint answered with a redirect to http://127.0.0.2:8080, which is \
             not followed (HTTP 307)"
        );
        assert!(!refused.is_transient() && !refused.credentials_rejected());
        let followed = OAuth2Error::redirect(StatusCode::OK, to, true);
        assert_eq!(
            followed.to_string(),
            "the HTTP client followed a redirect from the token endpoint to \
             http://127.0.0.2:8080; its answer is not used"
        );
        let nowhere = OAuth2Error::redirect(StatusCode::FOUND, None, false);
        assert_eq!(
            nowhere.to_string(),
            "the token endpoint answered with a redirect, which is not followed (HTTP 302)"
        );
    }

    #[test]
    fn portsip_error_lists() {
        let list = |code: &str, detail: Option<&str>, status: u16| {
            OAuth2Error::new(
                OAuth2ErrorKind::ErrorList {
                    code: code.into(),
                    message: Some("Login failed, authentication error".into()),
                    detail: detail.map(Into::into),
                },
                Some(StatusCode::from_u16(status).unwrap()),
            )
        };
        let refused = list("UNAUTHORIZED", None, 400);
        assert_eq!(
            refused.to_string(),
            "UNAUTHORIZED: Login failed, authentication error (HTTP 400)"
        );
        assert!(refused.credentials_rejected());
        assert!(!refused.is_transient());
        assert_eq!(refused.error_code(), Some("UNAUTHORIZED"));
        assert_eq!(
            refused.error_description(),
            Some("Login failed, authentication error")
        );
        let detailed = list("SOMETHING_NEW", Some("wrong tenant"), 400);
        assert_eq!(
            detailed.to_string(),
            "SOMETHING_NEW: Login failed, authentication error: wrong tenant (HTTP 400)"
        );
        assert!(!detailed.credentials_rejected());
        assert!(
            detailed
                .clone_for_test()
                .refusing_credentials()
                .credentials_rejected()
        );
        assert!(list("INTERNAL", None, 503).is_transient());
        // Plain statuses: only 401 refuses the credentials by itself.
        let status = |code: u16| {
            OAuth2Error::new(
                OAuth2ErrorKind::Status {
                    body: String::new(),
                },
                Some(StatusCode::from_u16(code).unwrap()),
            )
        };
        assert!(status(401).credentials_rejected());
        assert!(!status(403).credentials_rejected());
        assert!(status(403).refusing_credentials().credentials_rejected());
    }

    impl OAuth2Error {
        fn clone_for_test(&self) -> Self {
            Self::new(self.kind.clone(), self.status)
        }
    }

    #[test]
    fn classification() {
        assert!(server("invalid_grant", 400).is_invalid_grant());
        assert!(!server("invalid_grant", 400).is_transient());
        assert!(server("invalid_client", 401).is_invalid_client());
        assert!(server("unauthorized_client", 400).is_invalid_client());
        assert!(!server("unauthorized_client", 400).is_transient());
        assert!(server("server_error", 503).is_transient());
        assert!(server("temporarily_unavailable", 400).is_transient());
        assert!(OAuth2Error::transport(Reason("refused")).is_transient());
        let too_many = OAuth2Error::new(
            OAuth2ErrorKind::Status {
                body: String::new(),
            },
            Some(StatusCode::TOO_MANY_REQUESTS),
        );
        assert!(too_many.is_transient());
        assert_eq!(too_many.to_string(), "HTTP 429 from the token endpoint");
    }
}
