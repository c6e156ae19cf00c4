//! The cache's settings and defaults.

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::token::RefreshPolicy;

/// Default margin before expiry at which a token is refreshed.
pub(crate) const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(30);
/// Default upper bound of the random extra margin.
pub(crate) const DEFAULT_JITTER: Duration = Duration::from_secs(10);
/// Default bound on each provider call, and on how long a request waits for a token.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default pause after the first failed fetch; it doubles with each failure in a row.
pub(crate) const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default longest pause after failed fetches.
pub(crate) const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest pause or timeout the cache arms: a year is "never" for a token, and keeps
/// every `Instant + Duration` far from overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A source of numbers in `[0, 1)`: spreads refreshes and pauses across a fleet. Injected, as
/// smithy-rs injects its time source, so that tests can assert exact instants.
pub(crate) type Jitter = fn() -> f64;

/// The cache's settings, set through [`BearerAuthLayer`](crate::BearerAuthLayer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) policy: RefreshPolicy,
    pub(crate) timeout: Duration,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) jitter: Jitter,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: RefreshPolicy {
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                jitter: DEFAULT_JITTER,
            },
            timeout: DEFAULT_TIMEOUT,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            jitter: random,
        }
    }
}

impl Config {
    /// The same settings with every duration clamped to [`MAX_DURATION`], so that no
    /// arithmetic on them can overflow.
    pub(crate) fn clamped(mut self) -> Self {
        let clamp = |d: &mut Duration| *d = (*d).min(MAX_DURATION);
        clamp(&mut self.policy.refresh_ahead);
        clamp(&mut self.policy.jitter);
        clamp(&mut self.timeout);
        clamp(&mut self.backoff_initial);
        clamp(&mut self.backoff_max);
        self
    }
}

/// Process-wide source of unique numbers: cache ids and flight ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A number in `[0, 1)`, random enough to spread refreshes across a fleet.
pub(crate) fn random() -> f64 {
    let bits = RandomState::new().hash_one(next_id());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_in_range() {
        for _ in 0..1000 {
            let r = random();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn clamped_bounds_every_duration() {
        let config = Config {
            timeout: Duration::MAX,
            backoff_initial: Duration::MAX,
            backoff_max: Duration::MAX,
            policy: RefreshPolicy {
                refresh_ahead: Duration::MAX,
                jitter: Duration::MAX,
            },
            ..Config::default()
        }
        .clamped();
        for d in [
            config.timeout,
            config.backoff_initial,
            config.backoff_max,
            config.policy.refresh_ahead,
            config.policy.jitter,
        ] {
            assert_eq!(d, MAX_DURATION);
        }
    }
}
