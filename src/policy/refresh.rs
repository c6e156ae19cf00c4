//! When a token is refreshed: ahead of its expiry, by a margin capped at half its life.

use std::time::Duration;

use tokio::time::Instant;

/// How the cache decides when a token must be refreshed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RefreshPolicy {
    /// Refresh this long before expiry.
    pub(crate) refresh_ahead: Duration,
    /// Refresh up to this much earlier still, at random.
    pub(crate) jitter: Duration,
}

impl RefreshPolicy {
    /// When to refresh a token issued at `issued` that expires at `expires`. `random` is a
    /// number in `[0, 1)`.
    ///
    /// The margin is `refresh_ahead`, but at most half the token's life, and the jitter at
    /// most half the margin, so a short-lived token is refreshed at about half its life.
    pub(crate) fn refresh_at(&self, issued: Instant, expires: Instant, random: f64) -> Instant {
        let life = expires.saturating_duration_since(issued);
        let margin = self.refresh_ahead.min(life / 2);
        let jitter = self.jitter.min(margin / 2).mul_f64(random.clamp(0.0, 1.0));
        expires
            .checked_sub(margin + jitter)
            .unwrap_or(issued)
            .max(issued)
    }
}
