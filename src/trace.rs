//! Events and spans for the `tracing` feature; see "Tracing" in the crate documentation.
//!
//! The macros take `tracing`'s syntax, limited to what this crate uses: an optional
//! `name: "…"`, then fields (`field`, `field = value`, `field = %value`, `field = ?value`),
//! then a message. Without the feature they expand to `if false { … }` blocks that only
//! borrow the field values: nothing is evaluated, yet every value counts as used, so call
//! sites need no `#[cfg]` of their own.

use std::{error::Error, fmt, time::Duration};

use tokio::time::Instant;

use crate::{
    clock,
    error::{TokenError, TokenErrorKind},
};

#[cfg(feature = "tracing")]
macro_rules! trace {
    ($($args:tt)+) => { ::tracing::trace!($($args)+) };
}

#[cfg(feature = "tracing")]
macro_rules! debug {
    ($($args:tt)+) => { ::tracing::debug!($($args)+) };
}

#[cfg(feature = "tracing")]
macro_rules! warn_ {
    ($($args:tt)+) => { ::tracing::warn!($($args)+) };
}

/// Runs `$fut` in a `DEBUG` span named `$name` with the given fields.
#[cfg(feature = "tracing")]
macro_rules! instrument {
    ($fut:expr, $name:literal, $($fields:tt)*) => {
        ::tracing::Instrument::instrument($fut, ::tracing::debug_span!($name, $($fields)*))
    };
}

#[cfg(not(feature = "tracing"))]
macro_rules! trace {
    ($($args:tt)+) => { if false { $crate::trace::unused!($($args)+) } };
}

#[cfg(not(feature = "tracing"))]
macro_rules! debug {
    ($($args:tt)+) => { if false { $crate::trace::unused!($($args)+) } };
}

#[cfg(not(feature = "tracing"))]
macro_rules! warn_ {
    ($($args:tt)+) => { if false { $crate::trace::unused!($($args)+) } };
}

#[cfg(not(feature = "tracing"))]
macro_rules! instrument {
    ($fut:expr, $name:literal, $($fields:tt)*) => {{
        if false {
            $crate::trace::unused!($($fields)*)
        }
        $fut
    }};
}

/// Borrows every field value of an event, without the feature.
#[cfg(not(feature = "tracing"))]
macro_rules! unused {
    () => { () };
    ($message:literal $(,)?) => { () };
    (name: $name:literal, $($rest:tt)*) => { $crate::trace::unused!($($rest)*) };
    ($field:ident = % $value:expr $(, $($rest:tt)*)?) => {{
        let _ = &$value;
        $($crate::trace::unused!($($rest)*);)?
    }};
    ($field:ident = ? $value:expr $(, $($rest:tt)*)?) => {{
        let _ = &$value;
        $($crate::trace::unused!($($rest)*);)?
    }};
    ($field:ident = $value:expr $(, $($rest:tt)*)?) => {{
        let _ = &$value;
        $($crate::trace::unused!($($rest)*);)?
    }};
    ($field:ident $(, $($rest:tt)*)?) => {{
        let _ = &$field;
        $($crate::trace::unused!($($rest)*);)?
    }};
}

#[cfg(not(feature = "tracing"))]
pub(crate) use unused;
// `warn` alone would be ambiguous with the built-in attribute.
pub(crate) use {debug, instrument, trace, warn_ as warn};

/// When a step started, for its `elapsed_ms`; without the feature, nothing (and no clock read).
#[derive(Clone, Copy)]
pub(crate) struct Started {
    #[cfg(feature = "tracing")]
    at: Instant,
}

impl Started {
    /// Now.
    pub(crate) fn now() -> Self {
        Self {
            #[cfg(feature = "tracing")]
            at: clock::now(),
        }
    }

    /// At `at`, an instant the caller read anyway.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn at(at: Instant) -> Self {
        Self {
            #[cfg(feature = "tracing")]
            at,
        }
    }

    /// Milliseconds since the start, to the microsecond, for `elapsed_ms`.
    #[cfg(feature = "tracing")]
    pub(crate) fn ms(self) -> f64 {
        elapsed_ms(self.at)
    }

    #[cfg(not(feature = "tracing"))]
    pub(crate) fn ms(self) -> f64 {
        0.0
    }
}

/// Milliseconds since `since`, to the microsecond, for `elapsed_ms` fields: a fraction, so
/// that fast steps (a token endpoint on loopback) do not all read 0.
pub(crate) fn elapsed_ms(since: Instant) -> f64 {
    let micros = clock::now().saturating_duration_since(since).as_micros();
    // Exact up to 2^53 microseconds (285 years).
    micros as f64 / 1000.0
}

/// Whole milliseconds, for `…_ms` fields.
pub(crate) fn ms(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Milliseconds until `at`, for `expires_in_ms`; `None` (no field) for a token that never
/// expires.
pub(crate) fn until(at: Option<Instant>) -> Option<u64> {
    at.map(|at| ms(at.saturating_duration_since(clock::now())))
}

/// How a flight got its token, for the event that announces it with its generation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Logged in; `fallback` after a failed refresh.
    Login { fallback: bool },
    /// Refreshed with the refresh token.
    Refresh,
    /// Adopted the token in the store.
    Stored,
}

/// An error and its sources, `: `-separated, for `error` fields. This crate's errors never
/// hold a secret, and providers and stores are asked to keep theirs free of them too.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A message that already ends with its source's (as `TokenError`'s does) is not
        // followed by it again.
        let mut text = self.0.to_string();
        let mut source = self.0.source();
        while let Some(error) = source {
            let next = error.to_string();
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = error.source();
        }
        f.write_str(&text)
    }
}

impl<'a> Chain<'a> {
    /// A failed refresh step, before the fallback login: for a provider's error, that error
    /// alone, as the `Refresh` kind's message speaks of a login not tried yet.
    pub(crate) fn refresh(error: &'a TokenError) -> Self {
        match error.source() {
            Some(source) if error.kind() == TokenErrorKind::Refresh => Self(source),
            _ => Self(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;

    #[test]
    fn a_chain_does_not_repeat_a_cause_the_message_already_holds() {
        let error = TokenError::with_source(TokenErrorKind::Login, Reason("connection refused"));
        assert!(error.to_string().ends_with("connection refused"), "{error}");
        assert_eq!(Chain(&error).to_string(), error.to_string());
        let plain = std::io::Error::other(Reason("inner"));
        assert_eq!(Chain(&plain).to_string(), "inner");
    }
}
