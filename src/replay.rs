//! Which request bodies can be sent a second time after a `401 Unauthorized`.

use bytes::Bytes;
use http_body::Body;
use http_body_util::{
    BodyExt, Empty, Full, Limited,
    combinators::{BoxBody, UnsyncBoxBody},
};

use crate::{BoxError, BoxFuture};

/// A request body that [`BearerAuth`](crate::BearerAuth) may send again, with a new token,
/// after the server answered `401 Unauthorized`.
///
/// The body type decides:
///
/// - Bodies that can be copied without reading them implement
///   [`try_clone`](ReplayBody::try_clone): `()`, `String`, `Vec<u8>`, [`Bytes`], `&'static str`,
///   `&'static [u8]`, [`Full`] and [`Empty`] here. The copy is kept until the response arrives.
/// - Type-erased bodies that can be rebuilt from bytes implement
///   [`buffer`](ReplayBody::buffer): [`BoxBody`] and [`UnsyncBoxBody`] here (an empty one is
///   simply copied). The layer reads
///   such a body into memory before sending it, but only when its size hint promises at most
///   the layer's [`replay_buffer_limit`](crate::BearerAuthLayer::replay_buffer_limit) (64 KiB
///   by default); a longer or unbounded stream is sent once, as it comes. A body that yields
///   more than the limit its size hint promised fails the request with
///   `http_body_util::LengthLimitError` once the limit is reached, without reading further.
/// - Any other body is never replayed. A body type of your own needs one line,
///   `impl ReplayBody for MyBody {}`, to be sent through the layer; implement `try_clone` if it
///   can be copied cheaply.
/// - A body type of another crate that lacks an implementation (a tonic channel's
///   `tonic::body::Body`) cannot be given one outside this crate. For such a client, build the
///   layer with [`any_body`](crate::BearerAuthLayer::any_body): it takes any body type and
///   never replays.
///
/// # Example
///
/// ```
/// use tower_bearer_auth::ReplayBody;
///
/// #[derive(Clone)]
/// struct JsonBody(std::sync::Arc<[u8]>);
///
/// impl ReplayBody for JsonBody {
///     fn try_clone(&self) -> Option<Self> {
///         Some(self.clone())
///     }
/// }
///
/// // A streaming body that cannot be replayed.
/// struct Upload;
/// impl ReplayBody for Upload {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a request body `BearerAuth` knows how to replay",
    label = "this body type does not implement `ReplayBody`",
    note = "for a body type of your own, add `impl tower_bearer_auth::ReplayBody for {Self} {{}}`",
    note = "for a body type of another crate (a tonic channel's, say), build the layer with \
            `BearerAuthLayer::any_body()`"
)]
pub trait ReplayBody: Sized {
    /// A copy of this body, if it can be made without reading the body. Defaults to `None`.
    fn try_clone(&self) -> Option<Self> {
        None
    }

    /// Reads the whole body, which promises at most `limit` bytes, and returns two bodies with
    /// the same content: one to send now and one to keep for a replay.
    ///
    /// Returns the body unchanged (`Err(self)`) when this type cannot be rebuilt from bytes or
    /// the body may be longer than `limit`. This is the default.
    #[allow(clippy::type_complexity)]
    fn buffer(
        self,
        limit: usize,
    ) -> Result<BoxFuture<'static, Result<(Self, Self), BoxError>>, Self> {
        let _ = limit;
        Err(self)
    }
}

macro_rules! clone_bodies {
    ($($ty:ty),* $(,)?) => {
        $(
            impl ReplayBody for $ty {
                fn try_clone(&self) -> Option<Self> {
                    Some(self.clone())
                }
            }
        )*
    };
}

clone_bodies!((), String, Vec<u8>, Bytes, &'static str, &'static [u8]);

impl<D: Clone> ReplayBody for Full<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(*self)
    }
}

fn fits(body: &impl Body, limit: usize) -> bool {
    body.size_hint()
        .upper()
        .is_some_and(|upper| upper <= limit as u64)
}

/// Type-erased bodies: buffered when small, rebuilt as a boxed [`Full`].
macro_rules! buffered_bodies {
    ($($ty:ident => $boxed:ident),* $(,)?) => {
        $(
            impl<E> ReplayBody for $ty<Bytes, E>
            where
                E: Into<BoxError> + 'static,
            {
                /// An empty body is copied as a new empty one, without buffering.
                fn try_clone(&self) -> Option<Self> {
                    self.is_end_stream()
                        .then(|| Empty::new().map_err(|never| match never {}).$boxed())
                }

                fn buffer(
                    self,
                    limit: usize,
                ) -> Result<BoxFuture<'static, Result<(Self, Self), BoxError>>, Self> {
                    if !fits(&self, limit) {
                        return Err(self);
                    }
                    Ok(Box::pin(async move {
                        // The size hint is the body's word; the limit is enforced on what
                        // it yields, so a body that lied fails instead of filling memory.
                        let bytes = Limited::new(self, limit).collect().await?.to_bytes();
                        let body = |b| Full::new(b).map_err(|never| match never {}).$boxed();
                        Ok((body(bytes.clone()), body(bytes)))
                    }))
                }
            }
        )*
    };
}

buffered_bodies!(BoxBody => boxed, UnsyncBoxBody => boxed_unsync);

/// How a [`BearerAuth`](crate::BearerAuth) service treats request bodies, chosen on its
/// layer: [`Replayable`] (the default) or [`AnyBody`].
///
/// Sealed: only this crate implements it.
pub trait BodyMode<B>: sealed::Sealed {
    /// As [`ReplayBody::try_clone`].
    #[doc(hidden)]
    fn try_clone(body: &B) -> Option<B>;

    /// As [`ReplayBody::buffer`].
    #[doc(hidden)]
    #[allow(clippy::type_complexity)]
    fn buffer(body: B, limit: usize) -> Result<BoxFuture<'static, Result<(B, B), BoxError>>, B>;
}

/// The default [`BodyMode`]: the request body type must implement [`ReplayBody`], so that a
/// request refused with `401` can be sent again when
/// [`replay_unauthorized`](crate::BearerAuthLayer::replay_unauthorized) is on.
///
/// A type-level marker: it has no values.
#[derive(Debug, Clone, Copy)]
pub enum Replayable {}

/// The [`BodyMode`] set by [`BearerAuthLayer::any_body`](crate::BearerAuthLayer::any_body):
/// any request body type, never replayed.
///
/// For clients whose body type does not implement [`ReplayBody`] and cannot be given an
/// implementation, because neither the type nor the trait belongs to the crate that needs it
/// (the orphan rule): a tonic channel's `tonic::body::Body`, say.
///
/// A type-level marker: it has no values.
#[derive(Debug, Clone, Copy)]
pub enum AnyBody {}

impl<B: ReplayBody> BodyMode<B> for Replayable {
    fn try_clone(body: &B) -> Option<B> {
        body.try_clone()
    }

    fn buffer(body: B, limit: usize) -> Result<BoxFuture<'static, Result<(B, B), BoxError>>, B> {
        body.buffer(limit)
    }
}

impl<B> BodyMode<B> for AnyBody {
    fn try_clone(_: &B) -> Option<B> {
        None
    }

    fn buffer(body: B, _: usize) -> Result<BoxFuture<'static, Result<(B, B), BoxError>>, B> {
        Err(body)
    }
}

#[allow(unreachable_pub)] // the supertrait that seals `BodyMode`: public, but not nameable
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Replayable {}
    impl Sealed for super::AnyBody {}
}

/// A request extension that stops [`BearerAuth`](crate::BearerAuth) from replaying this
/// request after a `401`. The token is still invalidated, so the next request gets a new one.
///
/// # Example
///
/// ```
/// use http::Request;
/// use tower_bearer_auth::NoReplay;
///
/// let mut request = Request::post("https://pbx.example.com/api/calls").body(String::new())?;
/// request.extensions_mut().insert(NoReplay);
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoReplay;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_boxed_bodies_are_copied_without_buffering() {
        let empty: BoxBody<Bytes, BoxError> = Full::new(Bytes::new()).map_err(Into::into).boxed();
        assert!(empty.try_clone().is_some());
        let full: BoxBody<Bytes, BoxError> = Full::new(Bytes::from_static(b"x"))
            .map_err(Into::into)
            .boxed();
        assert!(full.try_clone().is_none());
        assert!(full.buffer(1).is_ok());
    }
}
