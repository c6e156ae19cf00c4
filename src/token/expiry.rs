//! When a token expires: what a token response's `expires_in` and `expires_at` say, the latter
//! read against the server's clock, trusted within [`MAX_CLOCK_SKEW`].

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{TokenResponse, invalid_response};
use crate::{clock, error::TokenError};

/// The most that a token response's `Date` (see [`TokenResponse::with_server_date`]) may
/// lengthen the life read from its `expires_at`: a day.
pub(crate) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(24 * 60 * 60);

/// When the token of `response`, requested at `issued`, expires: the earlier of what
/// `expires_in` and `expires_at` say, or `None` when neither does (or the lifetime overflows
/// the clock). A lifetime that has already run out is an error.
pub(super) fn expiry(
    response: &TokenResponse,
    issued: Instant,
) -> Result<Option<Instant>, TokenError> {
    let mut expires_at = None;
    if let Some(expires_in) = response.expires_in {
        if expires_in.is_zero() {
            return Err(invalid_response("the token has already expired"));
        }
        // An absurd lifetime that overflows the clock is treated as no expiry.
        expires_at = issued.checked_add(expires_in);
    }
    if let Some(at) = response.expires_at {
        // Read against the server's clock when it said what time it was; the remaining
        // life then counts from when the request left, like `expires_in`.
        let (server_now, from) = match response.server_date {
            Some(date) => (within_skew(date, SystemTime::now()), issued),
            None => (SystemTime::now(), clock::now()),
        };
        let remaining = at
            .duration_since(server_now)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| invalid_response("the token has already expired"))?;
        if let Some(at) = from.checked_add(remaining) {
            expires_at = Some(expires_at.map_or(at, |e: Instant| e.min(at)));
        }
    }
    Ok(expires_at)
}

/// `server_date`, or [`MAX_CLOCK_SKEW`] before `now` if it is earlier than that: a server
/// clock behind ours lengthens the token's life, and by no more than a day.
pub(super) fn within_skew(server_date: SystemTime, now: SystemTime) -> SystemTime {
    let earliest = now.checked_sub(MAX_CLOCK_SKEW).unwrap_or(now);
    server_date.max(earliest)
}
