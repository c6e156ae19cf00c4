//! The cache's clock: tokio's, plus the time the machine spent suspended.
//!
//! Expiry is about wall time passing. Tokio's `Instant`, like `std`'s, reads the monotonic
//! clock, which on Linux stops while the machine is suspended: a laptop that sleeps for two
//! hours wakes up with a token its monotonic clock still calls fresh. So every instant the
//! cache compares with a token's expiry or refresh point is tokio's `Instant::now()` plus
//! the time spent suspended since the process first asked ([`now`]). Tokio's part keeps
//! paused-clock tests (`tokio::time::pause`, `advance`) working; the suspended part is read
//! from `CLOCK_BOOTTIME`, which counts suspend, against `CLOCK_MONOTONIC`, which does not.
//! Elsewhere than Linux and Android the suspended part is zero.
//!
//! The hot path does not call [`now`]: a thread's copy of the header keeps a [`Deadline`],
//! checked with one read of the clock that counts suspend (and of tokio's too when tokio's
//! clock is paused; see [`Deadline`]).
//!
//! Timers (a timeout, a sleep) stay on tokio's own clock: they measure how long a step may
//! take, which suspend should not shorten.

use std::time::Duration;

use tokio::time::Instant;

/// Now, on the cache's clock: tokio's instant, moved on by the time spent suspended.
pub(crate) fn now() -> Instant {
    Instant::now() + suspended()
}

/// A refresh point, as the hot path checks it: on the clock that counts suspend, which never
/// runs slower than tokio's; and on tokio's own clock too when that one is paused (tests),
/// since a paused clock moves without real time passing.
///
/// Whether tokio's clock is paused is found when the deadline is made, on the slow path: two
/// reads of a running clock differ, two reads of a paused one don't. (A deadline made on a
/// running clock that is paused later is checked by real time alone.) The hot path then reads
/// one clock, or two when paused.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    /// On the clock that counts suspend, in nanoseconds since its start.
    boot: u64,
    /// On tokio's clock, when that clock was paused.
    paused: Option<Instant>,
}

impl Deadline {
    /// The deadline `at`, an instant on the cache's clock ([`now`]).
    pub(crate) fn new(at: Instant) -> Self {
        let (tokio_now, boot_now) = (Instant::now(), boottime());
        let paused = Instant::now() == tokio_now;
        let slept = suspended();
        let left = at.saturating_duration_since(tokio_now + slept);
        Self {
            boot: nanos(boot_now.saturating_add(left)),
            paused: paused.then(|| tokio_now + left),
        }
    }

    /// Whether the deadline has passed: one clock read, two when tokio's clock is paused.
    #[inline]
    pub(crate) fn passed(&self) -> bool {
        nanos(boottime()) >= self.boot || self.paused.is_some_and(|at| Instant::now() >= at)
    }
}

/// Whole nanoseconds, saturating (in 584 years).
#[inline]
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod raw {
    use std::{sync::OnceLock, time::Duration};

    use rustix::time::{ClockId, Timespec, clock_gettime};

    fn read(id: ClockId) -> Duration {
        let Timespec { tv_sec, tv_nsec } = clock_gettime(id);
        Duration::new(
            u64::try_from(tv_sec).unwrap_or(0),
            u32::try_from(tv_nsec).unwrap_or(0),
        )
    }

    /// The clock that counts suspend.
    #[inline]
    pub(super) fn boottime() -> Duration {
        read(ClockId::Boottime) + super::simulated()
    }

    /// How much longer the machine has been up than running, less what it was when first
    /// asked: the time spent suspended since.
    pub(super) fn suspended() -> Duration {
        static AT_START: OnceLock<Duration> = OnceLock::new();
        let gap = read(ClockId::Boottime).saturating_sub(read(ClockId::Monotonic));
        gap.saturating_sub(*AT_START.get_or_init(|| gap)) + super::simulated()
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod raw {
    use std::time::Duration;

    /// No clock that counts suspend: the monotonic clock stands in for it.
    #[inline]
    pub(super) fn boottime() -> Duration {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed() + super::simulated()
    }

    pub(super) fn suspended() -> Duration {
        super::simulated()
    }
}

use raw::{boottime, suspended};

#[cfg(not(test))]
#[inline]
fn simulated() -> Duration {
    Duration::ZERO
}

#[cfg(test)]
thread_local! {
    static SIMULATED: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Time this thread pretends the machine spent suspended: the injected part of the clock.
#[cfg(test)]
fn simulated() -> Duration {
    SIMULATED.with(std::cell::Cell::get)
}

/// Pretends, on this thread, that the machine was suspended for `slept` more.
#[cfg(test)]
pub(crate) fn suspend(slept: Duration) {
    SIMULATED.with(|s| s.set(s.get() + slept));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspend_moves_the_clock_and_passes_deadlines() {
        let before = now();
        let deadline = Deadline::new(before + Duration::from_secs(60));
        assert!(!deadline.passed());
        suspend(Duration::from_secs(2 * 3600));
        assert!(
            deadline.passed(),
            "two hours asleep pass a minute's deadline"
        );
        assert!(now() >= before + Duration::from_secs(2 * 3600));
    }

    #[tokio::test]
    async fn a_running_clock_is_read_once() {
        let deadline = Deadline::new(now() + Duration::from_secs(60));
        assert!(deadline.paused.is_none());
        assert!(!deadline.passed());
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_s_paused_clock_passes_deadlines() {
        let deadline = Deadline::new(now() + Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!deadline.passed());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(deadline.passed());
    }
}
