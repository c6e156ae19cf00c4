//! The [`BearerAuth`] service.

use std::{
    fmt,
    task::{Context, Poll},
};

use http::{Request, header::AUTHORIZATION};
use tower_service::Service;

use crate::{
    BearerAuthLayer, BoxError, TokenCache, TokenProvider, cache::Lookup, future::ResponseFuture,
};

/// Adds `Authorization: Bearer <token>` to every request, obtaining and refreshing the token
/// through a [`TokenProvider`].
///
/// Built by [`BearerAuthLayer`], which also holds the settings; see there for how the token is
/// cached and refreshed. A request that already carries an `Authorization` header is sent as
/// it is, unless [`BearerAuthLayer::overwrite_existing`] is set.
///
/// # Errors
///
/// The error type is [`BoxError`]. Errors of the inner service pass through unchanged; a
/// request for which no token could be obtained fails with a
/// [`TokenError`](crate::TokenError), without reaching the inner service.
///
/// # Clone
///
/// The token fetch may need to wait, so on that slow path the response future must own a
/// service. `call` keeps the instance that was polled ready and leaves a clone in its place,
/// so `S` must be [`Clone`]; wrap a service that is not in [`tower::buffer::Buffer`]. Capacity
/// the inner service reserved in `poll_ready` (a concurrency-limit permit, a buffer slot) is
/// held while the token is fetched. When the token is cached, `call` calls the inner service
/// directly and clones nothing.
///
/// Clones of a `BearerAuth` share one token cache.
///
/// [`tower::buffer::Buffer`]: https://docs.rs/tower/latest/tower/buffer/struct.Buffer.html
///
/// # Example
///
/// ```
/// use http::{Request, Response, header::AUTHORIZATION};
/// use std::convert::Infallible;
/// use tower::{service_fn, ServiceExt};
/// use tower_bearer_auth::{BearerAuth, StaticToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let inner = service_fn(|req: Request<()>| async move {
///     assert_eq!(req.headers()[AUTHORIZATION], "Bearer abc");
///     Ok::<_, Infallible>(Response::new(()))
/// });
/// let service = BearerAuth::new(inner, StaticToken::new("abc"));
/// service.oneshot(Request::new(())).await?;
/// # Ok(())
/// # }
/// ```
pub struct BearerAuth<S> {
    inner: S,
    cache: TokenCache,
    overwrite: bool,
}

impl<S> BearerAuth<S> {
    /// Wraps `inner`, with a new cache for tokens from `provider` and default settings.
    pub fn new(inner: S, provider: impl TokenProvider) -> Self {
        BearerAuthLayer::new(provider).layer_service(inner)
    }

    /// A [`BearerAuthLayer`] for tokens from `provider`, for use with
    /// [`tower::ServiceBuilder`](https://docs.rs/tower/latest/tower/struct.ServiceBuilder.html).
    pub fn layer(provider: impl TokenProvider) -> BearerAuthLayer {
        BearerAuthLayer::new(provider)
    }

    pub(crate) fn from_parts(inner: S, cache: TokenCache, overwrite: bool) -> Self {
        Self {
            inner,
            cache,
            overwrite,
        }
    }

    /// The handle to the token cache this service shares with its layer and clones.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// A reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// A mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for BearerAuth<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            overwrite: self.overwrite,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("overwrite", &self.overwrite)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if !self.overwrite && req.headers().contains_key(AUTHORIZATION) {
            return ResponseFuture::call(self.inner.call(req));
        }
        // The hot path: this thread holds a copy of the current header.
        let header = match self.cache.cached_header() {
            Some(header) => header,
            None => match self.cache.lookup() {
                Lookup::Ready(header) => header,
                Lookup::Wait(fut) => {
                    // The future must own the service that was polled ready; keep it and leave
                    // a clone in its place. See "Be careful when cloning inner services" in
                    // the `tower-service` documentation.
                    let clone = self.inner.clone();
                    let ready = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture::token(fut, ready, req);
                }
            },
        };
        req.headers_mut().insert(AUTHORIZATION, header);
        ResponseFuture::call(self.inner.call(req))
    }
}
