//! One call to the provider, as a flight makes it: bounded by the flight's deadline, with a
//! panic (in the call or its future) turned into an error.

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll},
};

use tokio::time::Instant;

use crate::{
    BoxError,
    error::{TokenError, TokenErrorKind},
    provider::BoxFuture,
    rt,
};

/// A provider call that panicked, as an error: a panic counts as a failure, with a backoff.
#[derive(Debug)]
struct Panicked;

impl std::fmt::Display for Panicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the token provider panicked")
    }
}

impl std::error::Error for Panicked {}

/// Runs a provider call, bounded by `deadline`, turning a panic (in the call or its future)
/// into an error.
pub(super) async fn call<'a, T>(
    deadline: Instant,
    make: impl FnOnce() -> BoxFuture<'a, Result<T, BoxError>>,
) -> Result<Result<T, BoxError>, TokenError> {
    let fut = match catch_unwind(AssertUnwindSafe(make)) {
        Ok(fut) => fut,
        Err(_) => return Ok(Err(Panicked.into())),
    };
    match rt::timeout_at(deadline, CatchUnwind(fut)).await {
        Ok(result) => Ok(result),
        Err(_) => Err(TokenError::new(TokenErrorKind::Timeout)),
    }
}

/// A boxed future whose panic becomes an error.
struct CatchUnwind<'a, T>(BoxFuture<'a, Result<T, BoxError>>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(_) => Poll::Ready(Err(Panicked.into())),
        }
    }
}
