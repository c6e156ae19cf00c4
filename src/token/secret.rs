//! A [`Token`]'s secrets kept out of sight: its refresh token is wiped from memory when it is
//! dropped, and its `Debug` output prints [`Redacted`] in place of either token.

use std::fmt;

use zeroize::Zeroize;

use super::Token;

/// The refresh token is wiped from memory when the token is dropped.
impl Drop for Token {
    fn drop(&mut self) {
        if let Some(refresh_token) = &mut self.refresh_token {
            refresh_token.zeroize();
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &Redacted)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| Redacted),
            )
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.refresh_at)
            .field("generation", &self.generation)
            .finish()
    }
}

/// Printed in place of a secret.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
