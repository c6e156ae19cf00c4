//! Which request bodies can be sent a second time after a `401 Unauthorized`.
//!
//! The layer takes requests of any body type `B`; whether one can be replayed is decided by
//! its type, checked through [`Any`] (request bodies are `'static`). The checks compare type
//! ids known at compile time, so they cost nothing at run time: each service keeps only the
//! branch for its own body type.
//!
//! - Copied without reading: `()`, `String`, `Vec<u8>`, [`Bytes`], `&'static str`,
//!   `&'static [u8]`, [`Full<Bytes>`](Full) and [`Empty<Bytes>`](Empty); with the `reqwest`
//!   feature, a `reqwest::Body` made from bytes.
//! - Read into memory first, when the body's size hint promises at most the layer's
//!   [`replay_buffer_limit`](crate::BearerAuthLayer::replay_buffer_limit) (and the reading
//!   stops at that limit whatever the hint said): [`BoxBody<Bytes, E>`](BoxBody) and
//!   [`UnsyncBoxBody<Bytes, E>`](UnsyncBoxBody) with `E` one of [`BoxError`] and
//!   [`Infallible`]. An empty one is copied without reading.
//! - Any other body type (`hyper::body::Incoming`, `axum::body::Body`, `reqwest::Body`,
//!   `tonic::body::Body`, a type of your own) is sent once; after a `401` the refused token is
//!   still invalidated, so the next request gets a new one. Convert such a body to one of the
//!   types above, where it is small and known, to have it replayed.

use std::{any::Any, convert::Infallible};

use bytes::Bytes;
use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, request::Parts,
};
use http_body::Body;
use http_body_util::{
    BodyExt, Empty, Full, Limited,
    combinators::{BoxBody, UnsyncBoxBody},
};

use crate::{BoxError, provider::BoxFuture};

/// A body read into memory, and its copy.
pub(crate) type Buffered<B> = BoxFuture<'static, Result<(B, B), BoxError>>;

/// `value` as a `U`, if `T` is `U`.
fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut slot = Some(value);
    match (&mut slot as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(u) => Ok(u.take().expect("just filled")),
        None => Err(slot.expect("left alone")),
    }
}

/// A copy of `body`, if its type can be copied without reading it.
#[inline]
pub(crate) fn try_clone<B: 'static>(body: &B) -> Option<B> {
    let any = body as &dyn Any;
    macro_rules! copied {
        ($($ty:ty),* $(,)?) => {
            $(
                if let Some(body) = any.downcast_ref::<$ty>() {
                    return cast(body.clone()).ok();
                }
            )*
        };
    }
    copied!(
        (),
        String,
        Vec<u8>,
        Bytes,
        &'static str,
        &'static [u8],
        Full<Bytes>,
        Empty<Bytes>
    );
    // A reqwest body made from bytes is copied; a streaming one cannot be.
    #[cfg(feature = "reqwest")]
    if let Some(body) = any.downcast_ref::<::reqwest::Body>() {
        let bytes = Bytes::copy_from_slice(body.as_bytes()?);
        return cast(::reqwest::Body::from(bytes)).ok();
    }
    macro_rules! empty_boxed {
        ($($ty:ident<$err:ty> => $boxed:ident),* $(,)?) => {
            $(
                if let Some(body) = any.downcast_ref::<$ty<Bytes, $err>>() {
                    return body
                        .is_end_stream()
                        .then(|| {
                            let empty = Empty::<Bytes>::new().map_err(|never| -> $err { match never {} });
                            cast::<$ty<Bytes, $err>, B>(empty.$boxed()).ok()
                        })
                        .flatten();
                }
            )*
        };
    }
    empty_boxed!(
        BoxBody<BoxError> => boxed,
        BoxBody<Infallible> => boxed,
        UnsyncBoxBody<BoxError> => boxed_unsync,
        UnsyncBoxBody<Infallible> => boxed_unsync,
    );
    None
}

/// Reads `body` into memory and returns it twice, if its type can be rebuilt from bytes and
/// its size hint promises at most `limit` bytes; otherwise gives it back.
pub(crate) fn buffer<B: 'static>(body: B, limit: usize) -> Result<Buffered<B>, B> {
    macro_rules! buffered {
        ($body:ident, $($ty:ident<$err:ty> => $boxed:ident),* $(,)?) => {
            $(
                let $body = match cast::<B, $ty<Bytes, $err>>($body) {
                    Ok(boxed) if fits(&boxed, limit) => {
                        let rebuild: fn(Bytes) -> B = |bytes| {
                            let body = Full::new(bytes).map_err(|never| -> $err { match never {} });
                            cast(body.$boxed()).ok().expect("B is this type")
                        };
                        return Ok(Box::pin(read_twice(boxed, limit, rebuild)));
                    }
                    Ok(boxed) => return Err(cast(boxed).ok().expect("B is this type")),
                    Err(body) => body,
                };
            )*
        };
    }
    buffered!(
        body,
        BoxBody<BoxError> => boxed,
        BoxBody<Infallible> => boxed,
        UnsyncBoxBody<BoxError> => boxed_unsync,
        UnsyncBoxBody<Infallible> => boxed_unsync,
    );
    Err(body)
}

/// Whether requests with bodies of type `B` may ever be replayed: lets a service skip keeping
/// anything for bodies that never are.
#[inline]
pub(crate) fn replayable<B: 'static>() -> bool {
    use std::any::TypeId;
    let id = TypeId::of::<B>();
    [
        TypeId::of::<()>(),
        TypeId::of::<String>(),
        TypeId::of::<Vec<u8>>(),
        TypeId::of::<Bytes>(),
        TypeId::of::<&'static str>(),
        TypeId::of::<&'static [u8]>(),
        TypeId::of::<Full<Bytes>>(),
        TypeId::of::<Empty<Bytes>>(),
        TypeId::of::<BoxBody<Bytes, BoxError>>(),
        TypeId::of::<BoxBody<Bytes, Infallible>>(),
        TypeId::of::<UnsyncBoxBody<Bytes, BoxError>>(),
        TypeId::of::<UnsyncBoxBody<Bytes, Infallible>>(),
        #[cfg(feature = "reqwest")]
        TypeId::of::<::reqwest::Body>(),
    ]
    .contains(&id)
}

/// Reads `body`, at most `limit` bytes of it whatever its size hint said, and rebuilds it
/// twice.
async fn read_twice<T, B>(
    body: T,
    limit: usize,
    rebuild: fn(Bytes) -> B,
) -> Result<(B, B), BoxError>
where
    T: Body<Data = Bytes>,
    T::Error: Into<BoxError>,
{
    let bytes = Limited::new(body, limit).collect().await?.to_bytes();
    Ok((rebuild(bytes.clone()), rebuild(bytes)))
}

fn fits(body: &impl Body, limit: usize) -> bool {
    body.size_hint()
        .upper()
        .is_some_and(|upper| upper <= limit as u64)
}

/// A copy of a request kept to send it again: its head with the headers in a plain list (one
/// allocation, where a copied `HeaderMap` takes two), and its body. The header map is
/// rebuilt only when the copy is sent.
pub(crate) struct RequestCopy<B> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Vec<(HeaderName, HeaderValue)>,
    extensions: Extensions,
    body: B,
}

impl<B> RequestCopy<B> {
    /// A copy of the request made of `parts` and a body already copied.
    #[inline]
    pub(crate) fn new(parts: &Parts, body: B) -> Self {
        let mut headers = Vec::with_capacity(parts.headers.len());
        headers.extend(parts.headers.iter().map(|(n, v)| (n.clone(), v.clone())));
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers,
            extensions: parts.extensions.clone(),
            body,
        }
    }

    /// The request to send.
    pub(crate) fn into_request(self) -> Request<B> {
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.extensions_mut() = self.extensions;
        // One more slot for the `Authorization` header the replay gets.
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 1);
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        *request.headers_mut() = headers;
        request
    }
}

/// Whether `extensions` opt the request out of a replay.
#[inline]
pub(crate) fn opted_out(extensions: &Extensions) -> bool {
    extensions.get::<NoReplay>().is_some()
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

    /// A body type this crate knows nothing about.
    struct Opaque;

    #[test]
    fn known_bodies_are_copied_and_others_are_not() {
        assert_eq!(try_clone(&String::from("x")).as_deref(), Some("x"));
        assert_eq!(
            try_clone(&Bytes::from_static(b"x")),
            Some(Bytes::from_static(b"x"))
        );
        assert!(try_clone(&()).is_some());
        assert!(try_clone(&Full::new(Bytes::from_static(b"x"))).is_some());
        assert!(try_clone(&Opaque).is_none());
        assert!(replayable::<String>() && !replayable::<Opaque>());
        assert!(buffer(Opaque, 1024).is_err());
    }

    #[test]
    fn empty_boxed_bodies_are_copied_without_buffering() {
        let empty: BoxBody<Bytes, BoxError> = Full::new(Bytes::new()).map_err(Into::into).boxed();
        assert!(try_clone(&empty).is_some());
        let full: BoxBody<Bytes, BoxError> = Full::new(Bytes::from_static(b"x"))
            .map_err(Into::into)
            .boxed();
        assert!(try_clone(&full).is_none());
        assert!(buffer(full, 1).is_ok());
    }

    #[tokio::test]
    async fn a_small_boxed_body_is_read_once_and_returned_twice() {
        let body: UnsyncBoxBody<Bytes, Infallible> =
            Full::new(Bytes::from_static(b"hello")).boxed_unsync();
        let Ok(read) = buffer(body, 64) else {
            panic!("fits")
        };
        let (a, b) = read.await.unwrap();
        assert_eq!(a.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
    }
}
