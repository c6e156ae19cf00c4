//! What providers return ([`TokenResponse`]) and what the cache keeps and sends ([`Token`]).

use std::time::{Duration, SystemTime};

use http::HeaderValue;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::{
    clock,
    error::{Reason, TokenError, TokenErrorKind},
    policy::RefreshPolicy,
};

mod expiry;
mod header;
mod response;
mod secret;
#[cfg(test)]
mod tests;

use expiry::expiry;
use header::{BEARER, bearer_header, check_bearer_response};
pub use response::TokenResponse;
#[cfg_attr(not(feature = "oauth2"), allow(unused_imports))]
pub(crate) use response::{seconds, unix_seconds, unix_time};
pub(crate) use secret::Redacted;

/// A `TokenError` of kind [`InvalidResponse`](TokenErrorKind::InvalidResponse), for `why`.
fn invalid_response(why: &'static str) -> TokenError {
    TokenError::with_source(TokenErrorKind::InvalidResponse, Reason(why))
}

/// A token held by the cache and sent with requests.
///
/// Read it through [`TokenCache`](crate::TokenCache). Its `Debug` output hides the access
/// and refresh tokens; [`access_token`](Token::access_token) reveals the access token when
/// asked explicitly.
#[derive(Clone)]
pub struct Token {
    /// `Bearer <access token>`: the one copy of the access token the cache holds (besides
    /// each thread's copy of this header).
    pub(crate) header: HeaderValue,
    pub(crate) refresh_token: Option<String>,
    token_type: Option<String>,
    scope: Option<String>,
    extra: Map<String, Value>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) refresh_at: Option<Instant>,
    pub(crate) generation: u64,
}

impl Token {
    /// Turns a provider's response into a token ready to send.
    ///
    /// `issued` is when the token request was sent: the server started the token's clock no
    /// earlier, so lifetimes counted from it never overrun the real expiry. A response
    /// without a refresh token keeps `previous_refresh_token`.
    pub(crate) fn from_response(
        mut response: TokenResponse,
        issued: Instant,
        policy: &RefreshPolicy,
        previous_refresh_token: Option<String>,
        random: f64,
    ) -> Result<Self, TokenError> {
        check_bearer_response(&response)?;
        let expires_at = expiry(&response, issued)?;
        let now = clock::now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(invalid_response("the token has already expired"));
        }
        let header = bearer_header(&response.access_token)?;
        Ok(Self {
            header,
            refresh_at: expires_at.map(|e| policy.refresh_at(now, e, random)),
            expires_at,
            refresh_token: response.refresh_token.take().or(previous_refresh_token),
            token_type: response.token_type.take(),
            scope: response.scope.take(),
            extra: std::mem::take(&mut response.extra),
            generation: 0,
        })
    }

    /// The token as a response again, with an absolute expiry, for a
    /// [`TokenStore`](crate::store::TokenStore).
    pub(crate) fn to_response(&self) -> TokenResponse {
        let expires_at = self
            .expires_at
            .and_then(|e| SystemTime::now().checked_add(e.saturating_duration_since(clock::now())));
        TokenResponse {
            access_token: self.access_token().to_owned(),
            token_type: self.token_type.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_in: None,
            expires_at,
            server_date: None,
            scope: self.scope.clone(),
            extra: self.extra.clone(),
        }
    }

    /// The access token. This is a secret: don't log it.
    pub fn access_token(&self) -> &str {
        // The header was made from `Bearer ` and a token of visible ASCII.
        std::str::from_utf8(&self.header.as_bytes()[BEARER.len()..]).unwrap_or_default()
    }

    /// Whether the cache holds a refresh token for this token.
    pub fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// When the token expires, or `None` if the server gave no expiry. For the time left,
    /// see [`expires_in`](Self::expires_in).
    ///
    /// The instant is a [`tokio::time::Instant`], not a `std::time::Instant` (convert with
    /// [`into_std`](tokio::time::Instant::into_std)), on the cache's clock, which counts the time the
    /// machine spent suspended: it is tokio's clock moved on by that time, and equals it on a
    /// machine that never slept. A token's expiry and refresh point are therefore reached
    /// after a suspend, although tokio's own clock (the monotonic clock) stood still.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The time left before the token expires: zero once it has, `None` if the server gave
    /// no expiry. Reads the cache's clock (a system call, well under a microsecond).
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_at
            .map(|at| at.saturating_duration_since(clock::now()))
    }

    /// When the cache will start refreshing the token, or `None` if it never expires; on the
    /// cache's clock, as for [`expires_at`](Self::expires_at).
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// The token type the server sent, if any.
    pub fn token_type(&self) -> Option<&str> {
        self.token_type.as_deref()
    }

    /// The granted scope, if the server sent one.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// Every non-standard field of the token response (PortSIP's user role, say).
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// A number that grows with every token the cache obtains.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The `Authorization` header value sent with requests, marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }
}
