//! Helpers for the module's unit tests.

use http::StatusCode;

use super::{
    builder::OAuth2ProviderBuilder,
    error::{OAuth2Error, OAuth2ErrorKind},
    provider::OAuth2Provider,
};

/// A password-grant builder with no HTTP client, for `https://h/t`, user `user`, password
/// `pa&ss`.
pub(crate) fn builder() -> OAuth2ProviderBuilder<()> {
    OAuth2Provider::password((), "https://h/t", "user", "pa&ss")
}

/// [`builder`], built.
pub(crate) fn provider() -> OAuth2Provider<()> {
    builder().build().unwrap()
}

/// An RFC 6749 error from the token endpoint: `code`, with `description`, under `status`.
pub(crate) fn server_error(code: &str, description: &str, status: u16) -> OAuth2Error {
    OAuth2Error::new(
        OAuth2ErrorKind::Server {
            error: code.into(),
            description: Some(description.into()),
            uri: None,
        },
        Some(StatusCode::from_u16(status).unwrap()),
    )
}
