//! Two-factor sign-in: what the callback that supplies the one-time code is given,
//! [`TwoFactorChallenge`], and how the callback is kept.

use std::{fmt, future::Future, sync::Arc};

use crate::{BoxError, provider::BoxFuture, token::Redacted};

/// The callback that supplies a one-time code, boxed.
pub(super) type OneTimeCodeFn =
    Arc<dyn Fn(TwoFactorChallenge) -> BoxFuture<'static, Result<String, BoxError>> + Send + Sync>;

/// Boxes a callback given to [`PortSip::one_time_code`](super::PortSip::one_time_code).
pub(super) fn boxed<F, Fut, E>(f: F) -> OneTimeCodeFn
where
    F: Fn(TwoFactorChallenge) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, E>> + Send + 'static,
    E: Into<BoxError>,
{
    Arc::new(move |challenge| {
        let code = f(challenge);
        Box::pin(async move { code.await.map_err(Into::into) })
    })
}

/// A sign-in waiting for its one-time code: what the callback given to
/// [`PortSip::one_time_code`](super::PortSip::one_time_code) receives.
///
/// The PBX has just e-mailed the user a code; the callback finds it (in a mailbox it reads,
/// a queue, a prompt) and returns it, and the provider finishes the sign-in with
/// `POST /api/auth/verify_otp`.
///
/// Its `Debug` output hides the session token.
pub struct TwoFactorChallenge {
    session_token: String,
    username: String,
    domain: Option<String>,
}

impl TwoFactorChallenge {
    pub(super) fn new(session_token: String, username: &str, domain: Option<&str>) -> Self {
        Self {
            session_token,
            username: username.to_owned(),
            domain: domain.map(str::to_owned),
        }
    }

    /// The session token the sign-in answered with, which `verify_otp` takes with the code.
    /// A secret for as long as the session lasts: don't log it.
    pub fn session_token(&self) -> &str {
        &self.session_token
    }

    /// The user signing in.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The tenant's SIP domain the user signs in to, if one was configured.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }
}

impl fmt::Debug for TwoFactorChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactorChallenge")
            .field("session_token", &Redacted)
            .field("username", &self.username)
            .field("domain", &self.domain)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_session_token() {
        let challenge = TwoFactorChallenge::new("S3SSION".into(), "alice", Some("t.example"));
        let out = format!("{challenge:?}");
        assert!(!out.contains("S3SSION"), "{out}");
        assert!(out.contains("alice") && out.contains("t.example"), "{out}");
        assert_eq!(challenge.session_token(), "S3SSION");
    }
}
