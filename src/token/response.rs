//! [`TokenResponse`]: a token as a provider obtained it, and how one is read from JSON.

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::{Map, Value};
use zeroize::Zeroize;

use super::Redacted;

/// A token as a provider obtained it from the server: the access token, its lifetime and
/// whatever else the server sent.
///
/// Providers build one with [`TokenResponse::new`] and the `with_…` setters, or deserialize it
/// from a JSON token response (RFC 6749 §5.1): `access_token`, `token_type`, `refresh_token`,
/// `scope`, `expires_in` (seconds, as a number or a numeric string) and `expires_at` (a Unix
/// time, as a number or a numeric string). Every other field is kept in
/// [`extra`](TokenResponse::extra).
///
/// An `expires_at` is read as seconds since 1970, unless as seconds it would lie beyond the
/// year 3000: then it is read as milliseconds, as some servers send it
/// (`1794628257920`). A value that is neither (negative, or beyond the year 3000 even as
/// milliseconds) is refused with an error that says so.
///
/// A response without either field is taken as never expiring. `OAuth2Provider` and the
/// `PortSip` preset then read the expiry from a JWT access token's `exp` claim (see
/// `OAuth2ProviderBuilder::expiry_from_jwt`); a provider of your own states it with
/// [`with_expires_in`](Self::with_expires_in) or [`with_expires_at`](Self::with_expires_at).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_auth::TokenResponse;
///
/// let from_json: TokenResponse = serde_json::from_str(
///     r#"{"access_token":"abc","expires_in":"3600","token_type":"bearer","role":"admin"}"#,
/// )?;
/// assert_eq!(from_json.expires_in(), Some(Duration::from_secs(3600)));
/// assert_eq!(from_json.extra()["role"], "admin");
///
/// let built = TokenResponse::new("abc")
///     .with_refresh_token("def")
///     .with_expires_in(Duration::from_secs(1800));
/// assert_eq!(built.access_token(), "abc");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct TokenResponse {
    pub(super) access_token: String,
    pub(super) token_type: Option<String>,
    pub(super) refresh_token: Option<String>,
    pub(super) expires_in: Option<Duration>,
    pub(super) expires_at: Option<SystemTime>,
    pub(super) server_date: Option<SystemTime>,
    pub(super) scope: Option<String>,
    pub(super) extra: Map<String, Value>,
}

impl TokenResponse {
    /// A response carrying `access_token` and nothing else: no refresh token, no expiry.
    pub fn new(access_token: impl Into<String>) -> Self {
        let mut response = Self::default();
        response.access_token = access_token.into();
        response
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// Sets the lifetime, counted from when the token request was sent.
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// Sets the absolute expiry time.
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Sets the time on the server's clock when it answered: the `Date` header of the token
    /// response.
    ///
    /// With it, an absolute [`expires_at`](Self::with_expires_at) is read against the
    /// server's clock rather than ours, so a client whose clock runs fast or slow neither
    /// keeps a token past its expiry nor refreshes it too early.
    ///
    /// The correction lengthens a token's life by at most a day: a server whose clock is
    /// further behind ours (a `Date` of the year 2000, say) is taken to be a day behind, so
    /// that it cannot make a token that expires in a minute look valid for years. A server
    /// whose clock is ahead of ours shortens the token's life by as much as it says; the token
    /// is then refreshed earlier, never used past its expiry.
    pub fn with_server_date(mut self, date: SystemTime) -> Self {
        self.server_date = Some(date);
        self
    }

    /// Sets the token type (`Bearer`, compared case-insensitively, is the only one sent).
    pub fn with_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = Some(token_type.into());
        self
    }

    /// Sets the granted scope.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Adds a vendor-specific field, kept for the caller to read.
    pub fn with_extra(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// The access token. This is a secret: don't log it.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token, if the server sent one. This is a secret: don't log it.
    pub fn refresh_token(&self) -> Option<&str> {
        self.refresh_token.as_deref()
    }

    /// The lifetime, if the server sent `expires_in`.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// The absolute expiry time, if the server sent `expires_at`.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The token type, if the server sent one.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// The server's clock when it answered, if known.
    pub fn server_date(&self) -> Option<SystemTime> {
        self.server_date
    }

    /// The granted scope, if the server sent one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Every field of the server's response other than the standard ones above.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

/// The access and refresh tokens are wiped from memory when the response is dropped.
impl Drop for TokenResponse {
    fn drop(&mut self) {
        self.access_token.zeroize();
        if let Some(refresh_token) = &mut self.refresh_token {
            refresh_token.zeroize();
        }
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &Redacted)
            .field("token_type", &self.token_type)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| Redacted),
            )
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("server_date", &self.server_date)
            .field("scope", &self.scope)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'de> Deserialize<'de> for TokenResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            access_token: String,
            #[serde(default)]
            token_type: Option<String>,
            #[serde(default)]
            refresh_token: Option<String>,
            #[serde(default)]
            expires_in: Option<Value>,
            #[serde(default)]
            expires_at: Option<Value>,
            #[serde(default)]
            scope: Option<String>,
            #[serde(flatten)]
            extra: Map<String, Value>,
        }

        let raw = Raw::deserialize(deserializer)?;
        let expires_in = raw
            .expires_in
            .as_ref()
            .map(|v| {
                seconds(v)
                    .ok_or_else(|| D::Error::custom("`expires_in` is not a number of seconds"))
            })
            .transpose()?;
        let expires_at = raw
            .expires_at
            .as_ref()
            .map(|v| unix_time(v).map_err(D::Error::custom))
            .transpose()?;
        Ok(Self {
            access_token: raw.access_token,
            token_type: raw.token_type,
            refresh_token: raw.refresh_token,
            expires_in: expires_in.flatten(),
            expires_at: expires_at.flatten(),
            server_date: None,
            scope: raw.scope,
            extra: raw.extra,
        })
    }
}

/// Reads a non-negative number of seconds from a JSON number or numeric string.
/// `Some(None)` means `null`; `None` means the value is not a usable number.
///
/// A number too large for a `Duration` (`1e300`, or anything from 2^64 up) saturates at
/// `Duration::MAX`, which [`Token::from_response`] reads as no expiry, as it does any lifetime
/// that overflows the clock.
pub(crate) fn seconds(value: &Value) -> Option<Option<Duration>> {
    let secs = match value {
        Value::Null => return Some(None),
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    match Duration::try_from_secs_f64(secs) {
        Ok(d) => Some(Some(d)),
        Err(_) if secs.is_finite() && secs > 0.0 => Some(Some(Duration::MAX)),
        Err(_) => None,
    }
}

/// The year 3000, in Unix seconds: a larger `expires_at` is read as milliseconds.
const YEAR_3000: f64 = 32_503_680_000.0;

/// Reads an `expires_at`: Unix seconds, or milliseconds when as seconds it would lie beyond the
/// year 3000, from a JSON number or numeric string. `Ok(None)` means `null`; the error is a
/// message naming the field and the reason, which quotes nothing of the value.
pub(crate) fn unix_time(value: &Value) -> Result<Option<SystemTime>, &'static str> {
    let number = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let number = number
        .filter(|n| n.is_finite())
        .ok_or("`expires_at` is not a Unix time: not a number")?;
    if number < 0.0 {
        return Err("`expires_at` is not a Unix time: it lies before 1970");
    }
    let seconds = if number > YEAR_3000 {
        number / 1000.0
    } else {
        number
    };
    unix_seconds(seconds).map(Some).ok_or(
        "`expires_at` is not a Unix time: it lies beyond the year 3000 even read as milliseconds",
    )
}

/// `seconds` since 1970 as a time, if it lies between 1970 and the year 3000.
pub(crate) fn unix_seconds(seconds: f64) -> Option<SystemTime> {
    if !(0.0..=YEAR_3000).contains(&seconds) {
        return None;
    }
    SystemTime::UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}
