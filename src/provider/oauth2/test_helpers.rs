//! Helpers for the module's unit tests.

use super::{builder::OAuth2ProviderBuilder, provider::OAuth2Provider};

/// A password-grant builder with no HTTP client, for `https://h/t`, user `user`, password
/// `pa&ss`.
pub(super) fn builder() -> OAuth2ProviderBuilder<()> {
    OAuth2Provider::password((), "https://h/t", "user", "pa&ss")
}

/// [`builder`], built.
pub(super) fn provider() -> OAuth2Provider<()> {
    builder().build().unwrap()
}
