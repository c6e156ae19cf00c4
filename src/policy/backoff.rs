//! How long the cache pauses after failed logins or refreshes.

use std::time::Duration;

/// The longest `Retry-After` honoured.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// A pause that grows with each failure in a row: `initial`, doubled each time, up to `max`.
/// Kept in whole milliseconds (up to 49 days), so that an idle cache stays small.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pause {
    initial_ms: u32,
    max_ms: u32,
}

impl Pause {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        Self {
            initial_ms: ms(initial),
            max_ms: ms(max),
        }
    }

    /// The pause after the `streak`th failure in a row (from 1).
    pub(crate) fn after(self, streak: u32) -> Duration {
        let doubled =
            u64::from(self.initial_ms).saturating_mul(1 << streak.saturating_sub(1).min(20));
        Duration::from_millis(doubled.min(u64::from(self.max_ms)))
    }
}

impl Pause {
    /// The pause after the `streak`th failure in a row: [`after`](Self::after), jittered to
    /// between half and all of it by `random` (in `[0, 1)`), and lengthened to what the
    /// provider asked for (`Retry-After`), up to [`MAX_RETRY_AFTER`].
    pub(crate) fn jittered(
        self,
        streak: u32,
        random: f64,
        retry_after: Option<Duration>,
    ) -> Duration {
        self.after(streak)
            .mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
            .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_doubles_up_to_its_max() {
        let pause = Pause::new(Duration::from_secs(30), Duration::from_secs(900));
        let secs: Vec<u64> = (1..=7).map(|n| pause.after(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900]);
        assert_eq!(pause.after(u32::MAX).as_secs(), 900);
    }

    #[test]
    fn a_pause_is_jittered_and_lengthened_by_retry_after() {
        let pause = Pause::new(Duration::from_secs(10), Duration::from_secs(60));
        assert_eq!(pause.jittered(1, 0.0, None), Duration::from_secs(5));
        assert_eq!(pause.jittered(1, 0.999_999, None).as_secs(), 9);
        assert_eq!(
            pause
                .jittered(1, 0.0, Some(Duration::from_secs(20)))
                .as_secs(),
            20
        );
        assert_eq!(
            pause.jittered(1, 0.0, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
    }
}
