//! The PortSIP PBX REST API: [`PortSip`], which builds a [`PortSipProvider`], and the
//! constants PortSIP publishes.
//!
//! # Which API, which PortSIP version
//!
//! PortSIP documents two ways to log in, and the provider speaks both:
//!
//! - **The sign-in API** (`/api/auth/sign_in`, `refresh_token`, `sign_out`, JSON bodies):
//!   the login of the v22 REST API reference, added in v22.2.11. Some v22 PBXs serve only
//!   this one.
//! - **The OAuth token endpoint** (`/api/login/oauth/token` and `revoke`, form bodies, the
//!   published [`client_id`](PORTSIP_CLIENT_ID)): described in PortSIP's developer guide,
//!   and the only login of v22 PBXs before v22.2.11. Later ones, such as v22.3, may serve it
//!   next to the sign-in API.
//!
//! By default ([`PortSipApi::Auto`]) the provider tries the sign-in API, and if the PBX
//! answers `404` (or `405`) there, uses the OAuth token endpoint from then on: a PBX of
//! either kind works with no setting, at the cost of one `404` for an older PBX.
//! [`PortSip::api`] chooses one API for good. PortSIP v16 and earlier had neither (their
//! login was `/account/credentials/verify`); for them, see
//! [`OAuth2Provider`](super::oauth2::OAuth2Provider)'s "Servers of other shapes".
//!
//! # Two-factor sign-in
//!
//! A user with two-factor authentication (by e-mail, since v22.2.11; for system
//! administrators and dealers too since v22.6) gets no tokens from a sign-in: the PBX
//! answers `{"two_factor_enabled": true, "token": "…"}` and e-mails a one-time code. The
//! provider then fails with [`PortSipErrorKind::TwoFactorRequired`], whose message says so,
//! after that one attempt (the layer waits out its usual backoff before the next), unless a
//! callback given to [`PortSip::one_time_code`] supplies the code: the provider then
//! finishes the sign-in at `/api/auth/verify_otp`, unattended if the callback can read the
//! mailbox. The OAuth token endpoint has no step for a code.
//!
//! # Errors
//!
//! PortSIP's error bodies, `{"errors": [{"code", "message", "detail"}]}`, are read on both
//! APIs into [`OAuth2ErrorKind::ErrorList`](super::oauth2::OAuth2ErrorKind::ErrorList), whose
//! message quotes the PBX's `message` and `detail`. A refused sign-in (code `UNAUTHORIZED`, or
//! a `4xx` answer to a sign-in) makes
//! [`TokenError::credentials_rejected`](crate::TokenError::credentials_rejected) true.

use std::fmt;

mod builder;
mod error;
mod provider;
mod sign_in;
mod two_factor;

pub use builder::PortSip;
pub use error::{PortSipError, PortSipErrorKind};
pub use provider::PortSipProvider;
pub use two_factor::TwoFactorChallenge;

/// The `client_id` PortSIP publishes for its REST API.
pub const PORTSIP_CLIENT_ID: &str = "9d806019-75b2-4b3d-bb8b-f5a3a412cc0a";
/// The OAuth token endpoint's path, below the PBX's base URL.
pub const PORTSIP_TOKEN_PATH: &str = "/api/login/oauth/token";
/// The OAuth revocation endpoint's path, below the PBX's base URL.
pub const PORTSIP_REVOKE_PATH: &str = "/api/login/oauth/revoke";
/// The sign-in API's login path (REST API v22.2.11 and later), below the PBX's base URL.
pub const PORTSIP_SIGN_IN_PATH: &str = "/api/auth/sign_in";
/// The sign-in API's refresh path, below the PBX's base URL.
pub const PORTSIP_REFRESH_PATH: &str = "/api/auth/refresh_token";
/// The sign-in API's path for the one-time code of a two-factor sign-in, below the PBX's
/// base URL.
pub const PORTSIP_VERIFY_OTP_PATH: &str = "/api/auth/verify_otp";
/// The sign-in API's logout path, below the PBX's base URL.
pub const PORTSIP_SIGN_OUT_PATH: &str = "/api/auth/sign_out";

/// Which of PortSIP's two login APIs a [`PortSipProvider`] uses; see the
/// [module documentation](self).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PortSipApi {
    /// The sign-in API, unless the PBX answers `404` or `405` there: then the OAuth token
    /// endpoint, for the provider's life. The default.
    #[default]
    Auto,
    /// The sign-in API (`/api/auth/…`, v22.2.11 and later) only.
    SignIn,
    /// The OAuth token endpoint (`/api/login/oauth/…`) only.
    OAuth,
}

impl PortSipApi {
    /// A short name: `auto`, `sign-in` or `oauth`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::SignIn => "sign-in",
            Self::OAuth => "oauth",
        }
    }
}

impl fmt::Display for PortSipApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
