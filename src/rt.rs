//! The runtime and the locks the token core runs on: tokio's and `std`'s, or, in the
//! model-checking build (`RUSTFLAGS="--cfg shuttle"`), the model checker's stand-ins for them,
//! with the same API.
//!
//! This is the only seam between the two builds: spawning (the flights, the tenants' sweeper),
//! timeouts, sleeping and yielding, which need a runtime, and the locks of the cache's state
//! and of the tenants' map, so that the checker can switch tasks while one is held instead of
//! blocking the thread it runs them all on. Everything else (the landing channel, the clock)
//! is the same code in both builds; tokio's channels need no runtime. Under the model checker
//! timeouts never fire, so a waiter that is never woken shows up as a deadlock, and a sleep
//! only yields.

#[cfg(not(shuttle))]
pub(crate) use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(not(shuttle))]
pub(crate) use tokio::{
    runtime::Handle,
    task::{AbortHandle, yield_now},
    time::{sleep, timeout, timeout_at},
};

#[cfg(shuttle)]
pub(crate) use shuttle::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(shuttle)]
pub(crate) use shuttle_tokio::{
    runtime::Handle,
    task::{AbortHandle, yield_now},
    time::{sleep, timeout, timeout_at},
};
