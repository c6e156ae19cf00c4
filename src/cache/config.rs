//! The cache's settings and defaults.

use std::{
    hash::{BuildHasher, RandomState},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::{
    metrics::Labels,
    policy::{Pause, RefreshPolicy},
};

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
/// Default pause after the first refusal of the credentials: long enough that a wrong
/// password does not lock the account.
pub(crate) const DEFAULT_REFUSED_BACKOFF_INITIAL: Duration = Duration::from_secs(30);
/// Default longest pause after refusals of the credentials.
pub(crate) const DEFAULT_REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);
/// The longest pause or timeout the cache arms: a year is "never" for a token, and keeps
/// every `Instant + Duration` far from overflowing.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A source of numbers in `[0, 1)`: spreads refreshes and pauses across a fleet. Injected, as
/// smithy-rs injects its time source, so that tests can assert exact instants.
pub(crate) type Random = fn() -> f64;

/// The cache's settings, set through [`TokenCacheBuilder`](super::TokenCacheBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) policy: RefreshPolicy,
    pub(crate) timeout: Duration,
    /// After failures.
    pub(crate) backoff: Pause,
    /// After failures that refused the credentials.
    pub(crate) refused_backoff: Pause,
    pub(crate) random: Random,
    /// The labels of the cache's metrics: none by default, a tenant's origin (and id) for a
    /// tenant's cache.
    pub(crate) labels: Labels,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            policy: RefreshPolicy {
                refresh_ahead: DEFAULT_REFRESH_AHEAD,
                jitter: DEFAULT_JITTER,
            },
            timeout: DEFAULT_TIMEOUT,
            backoff: Pause::new(DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX),
            refused_backoff: Pause::new(
                DEFAULT_REFUSED_BACKOFF_INITIAL,
                DEFAULT_REFUSED_BACKOFF_MAX,
            ),
            random,
            labels: Labels::default(),
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
            backoff: Pause::new(Duration::MAX, Duration::MAX),
            policy: RefreshPolicy {
                refresh_ahead: Duration::MAX,
                jitter: Duration::MAX,
            },
            ..Config::default()
        }
        .clamped();
        for d in [
            config.timeout,
            config.policy.refresh_ahead,
            config.policy.jitter,
        ] {
            assert_eq!(d, MAX_DURATION);
        }
        // A pause is kept in milliseconds: the longest is about 49 days.
        assert_eq!(
            config.backoff.after(1),
            Duration::from_millis(u64::from(u32::MAX))
        );
    }
}
