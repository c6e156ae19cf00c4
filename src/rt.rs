//! The runtime the token core runs on: tokio, or, in the model-checking build
//! (`RUSTFLAGS="--cfg shuttle"`), the model checker's stand-in for it, with the same API.
//!
//! This is the only seam between the two: spawning, timeouts and yielding, the calls that
//! need a runtime. Everything else (the state's mutex, the landing channel, the clock) is the
//! same code in both builds; tokio's channels and `std`'s mutex need no runtime, and the
//! core never holds the mutex across an `.await`. Under the model checker timeouts never
//! fire, so a waiter that is never woken shows up as a deadlock.

#[cfg(not(shuttle))]
pub(crate) use tokio::{
    runtime::Handle,
    task::yield_now,
    time::{timeout, timeout_at},
};

#[cfg(shuttle)]
pub(crate) use shuttle_tokio::{
    runtime::Handle,
    task::yield_now,
    time::{timeout, timeout_at},
};
