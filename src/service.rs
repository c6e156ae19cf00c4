//! The [`BearerAuth`] service.

use std::{
    fmt,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response, header::AUTHORIZATION};
use tower_service::Service;

use crate::{
    BoxError,
    cache::{Carried, Lookup, TokenCache},
    error::{TokenError, TokenErrorKind},
    future::{ResponseFuture, Wait, token_for},
    origin::Reach,
    policy::Recover,
    replay,
};

/// The per-service settings, copied from the layer.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) overwrite: bool,
    pub(crate) replay: bool,
    pub(crate) buffer_limit: usize,
    /// Which answers count as a refused token.
    pub(crate) recover: Recover,
    /// Where the token may be sent.
    pub(crate) reach: Reach,
}

impl Settings {
    /// Whether the token goes with a request to `uri`. A URI without an authority (a tonic
    /// channel's, say) has its origin set further down the stack, so it is allowed once any
    /// origin is.
    #[inline]
    fn allows(&self, uri: &http::Uri) -> bool {
        match &self.reach {
            Reach::Any => true,
            Reach::Only(origins) => {
                uri.authority().is_none() || origins.iter().any(|o| o.matches(uri))
            }
            Reach::Unchosen => false,
        }
    }
}

/// Sets `Authorization: value`. A request without the header (all of them, unless
/// `overwrite` is set) gets it appended: inlined, `append` costs about 33 instructions per
/// request less than an out-of-line `insert` (`BENCHMARKS.md`), which must look for a header
/// to replace.
#[inline]
fn set_authorization(headers: &mut HeaderMap, value: http::HeaderValue, overwrite: bool) {
    if overwrite && has_authorization(headers) {
        replace_authorization(headers, value);
    } else {
        headers.append(AUTHORIZATION, value);
    }
}

/// Replaces the request's own `Authorization` header with `value` (`overwrite_existing`).
#[cold]
#[inline(never)]
fn replace_authorization(headers: &mut HeaderMap, value: http::HeaderValue) {
    headers.insert(AUTHORIZATION, value);
}

/// Whether `headers` hold an `Authorization` header: the answer of `contains_key`, found by
/// comparing names while there are few of them, which costs less than hashing one.
#[inline]
fn has_authorization(headers: &HeaderMap) -> bool {
    if headers.keys_len() <= 8 {
        headers.keys().any(|name| name == AUTHORIZATION)
    } else {
        headers.contains_key(AUTHORIZATION)
    }
}

/// Adds `Authorization: Bearer <token>` to every request, obtaining and refreshing the token
/// through a [`TokenProvider`](crate::provider::TokenProvider).
///
/// Built by [`BearerAuthLayer`](crate::BearerAuthLayer), which also holds the settings; see there for how the token is
/// cached and refreshed, and how a `401 Unauthorized` is recovered from. A request that
/// already carries an `Authorization` header is sent as it is, unless
/// [`BearerAuthLayer::overwrite_existing`](crate::BearerAuthLayer::overwrite_existing) is set.
///
/// A request to an origin the layer does not allow (see [`BearerAuthLayer::allow_origin`](crate::BearerAuthLayer::allow_origin)) is
/// sent as it is, without the token.
///
/// The inner service takes `http::Request<B>` for any body type `B` (a hyper-util client's,
/// `hyper::body::Incoming`, axum's, reqwest's, a tonic channel's, your own) and answers
/// `http::Response<R>` for any `R`. Which bodies can be replayed after a `401` is decided by
/// their type; see [Recovering from `401`](crate::BearerAuthLayer#recovering-from-401).
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
/// so `S` must be [`Clone`]; wrap a service that is not in `tower::buffer::Buffer`. Capacity
/// the inner service reserved in `poll_ready` (a concurrency-limit permit, a buffer slot) is
/// held while the token is fetched. When the token is cached, `call` calls the inner service
/// directly; it clones it only to keep a spare for a replay after `401` (see
/// [`BearerAuthLayer::replay_unauthorized`](crate::BearerAuthLayer::replay_unauthorized)).
///
/// Clones of a `BearerAuth` share one token cache.
///
/// # Example
///
/// ```
/// use http::{Request, Response, header::AUTHORIZATION};
/// use std::convert::Infallible;
/// use tower::{Layer, service_fn, ServiceExt};
/// use tower_bearer_auth::{BearerAuthLayer, Origin, provider::StaticToken};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_bearer_auth::BoxError> {
/// let inner = service_fn(|req: Request<()>| async move {
///     assert_eq!(req.headers()[AUTHORIZATION], "Bearer abc");
///     Ok::<_, Infallible>(Response::new(()))
/// });
/// let service = BearerAuthLayer::new(StaticToken::new("abc"))
///     .allow_origin(Origin::try_from("https://api.example.com")?)
///     .layer(inner);
/// service.oneshot(Request::new(())).await?;
/// # Ok(())
/// # }
/// ```
pub struct BearerAuth<S> {
    inner: S,
    cache: TokenCache,
    settings: Settings,
}

impl<S> BearerAuth<S> {
    pub(crate) fn from_parts(inner: S, cache: TokenCache, settings: Settings) -> Self {
        Self {
            inner,
            cache,
            settings,
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
            settings: self.settings.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("settings", &self.settings)
            .finish()
    }
}

impl<S, B, R> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: 'static,
{
    type Response = Response<R>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        call(&mut self.inner, &self.cache, &self.settings, request)
    }
}

/// Sends `request` through `inner`, which was polled ready, with `cache`'s token: what
/// [`BearerAuth::call`] does, for the services that hold a cache and settings without being a
/// `BearerAuth` (the tenants' service, which borrows them from the request's key).
#[inline]
pub(crate) fn call<S, B, R>(
    inner: &mut S,
    cache: &TokenCache,
    settings: &Settings,
    mut request: Request<B>,
) -> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    B: 'static,
{
    let skip = !settings.overwrite && has_authorization(request.headers());
    if skip || !settings.allows(request.uri()) {
        if !skip && matches!(settings.reach, Reach::Unchosen) {
            return ResponseFuture::failed(TokenError::new(TokenErrorKind::Unbound).into());
        }
        return ResponseFuture::called(inner, request, None, Recover::No);
    }
    // The hot path: no copy to keep (replay is off, or this body type is never replayed; both
    // known without looking at the request), and this thread holds a current copy of the
    // header. Kept apart from the rest so that the request is moved once, into the inner
    // service.
    if !settings.replay || !replay::replayable::<B>() {
        if let Some(local) = cache.cached() {
            set_authorization(
                request.headers_mut(),
                local.header.clone(),
                settings.overwrite,
            );
            return ResponseFuture::called(
                inner,
                request,
                Some(Carried::Copy(local)),
                settings.recover,
            );
        }
    }
    call_slow(inner, cache, settings, request)
}

/// Everything but the hot path: a copy of the request kept for a replay after `401`, or no
/// current copy of the header on this thread.
fn call_slow<S, B, R>(
    inner: &mut S,
    cache: &TokenCache,
    settings: &Settings,
    request: Request<B>,
) -> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    B: 'static,
{
    let (request, replay) = match keep_copy(request, settings) {
        Kept::Ready(request, replay) => (request, replay),
        Kept::Buffering(fut, parts) => {
            return ResponseFuture::waiting(
                take_ready(inner),
                None,
                None,
                cache,
                Wait::Buffer(fut, parts),
                settings.recover,
            );
        }
    };
    send_with_token(inner, cache, settings, request, replay)
}

/// A request on the slow path, and the copy kept to send it again after `401`.
enum Kept<B> {
    /// The request, with a copy when its body was cloned; without one when replay is off,
    /// the request opted out, or its body can be neither cloned nor read into memory.
    Ready(Request<B>, Option<replay::RequestCopy<B>>),
    /// The body is being read into memory, to be sent and kept once it is.
    Buffering(replay::Buffered<B>, http::request::Parts),
}

/// Keeps a copy of `request` for a replay after `401`, when replay is on and the request has
/// not opted out: its body cloned if it can be, or else read into memory when its type and
/// size allow (see `replay::buffer`).
fn keep_copy<B: 'static>(request: Request<B>, settings: &Settings) -> Kept<B> {
    if !settings.replay || replay::opted_out(request.extensions()) {
        return Kept::Ready(request, None);
    }
    let (parts, body) = request.into_parts();
    match replay::try_clone(&body) {
        Some(copy) => {
            // Send the original head and keep the copy.
            let kept = replay::RequestCopy::new(&parts, copy);
            Kept::Ready(Request::from_parts(parts, body), Some(kept))
        }
        None => match replay::buffer(body, settings.buffer_limit) {
            Ok(fut) => Kept::Buffering(fut, parts),
            Err(body) => Kept::Ready(Request::from_parts(parts, body), None),
        },
    }
}

/// Sends `request` with the cache's token, keeping a spare service for `replay` if there is
/// one; or, while the token is being fetched, a future that waits for it.
fn send_with_token<S, B, R>(
    inner: &mut S,
    cache: &TokenCache,
    settings: &Settings,
    mut request: Request<B>,
    replay: Option<replay::RequestCopy<B>>,
) -> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    B: 'static,
{
    match token_for(cache) {
        Lookup::Ready(header, carried) => {
            request.headers_mut().insert(AUTHORIZATION, header);
            match replay {
                Some(replay) => {
                    let spare = inner.clone();
                    ResponseFuture::replayable(
                        inner,
                        request,
                        spare,
                        replay,
                        carried,
                        settings.recover,
                    )
                }
                None => ResponseFuture::called(inner, request, Some(carried), settings.recover),
            }
        }
        Lookup::Wait(fut) => ResponseFuture::waiting(
            take_ready(inner),
            Some(request),
            replay,
            cache,
            Wait::Token(fut),
            settings.recover,
        ),
    }
}

/// The instance polled ready, for a request that waits, and a clone left in its place: see
/// "Be careful when cloning inner services" in the `tower-service` documentation.
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{
            Arc, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use http::StatusCode;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::{layer::BearerAuthLayer, provider::provider_fn, token::TokenResponse};

    /// A body type this crate knows nothing about, as a tonic channel's is.
    struct Opaque;

    #[tokio::test]
    async fn any_body_type_is_taken_and_an_unknown_one_is_never_replayed() {
        let logins = Arc::new(AtomicUsize::new(0));
        let counter = logins.clone();
        let provider = provider_fn(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, BoxError>(TokenResponse::new(format!("token-{n}"))) }
        });
        // The server refuses the first token with a bare `401` and takes the second.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = service_fn(move |req: Request<Opaque>| {
            let header = req.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
            let status = if header == "Bearer token-1" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            log.lock().unwrap().push(header);
            let mut response = Response::new(());
            *response.status_mut() = status;
            async move { Ok::<_, Infallible>(response) }
        });
        // Replay on (the default), but this body type cannot be copied.
        let layer = BearerAuthLayer::new(provider).any_origin();
        let client: BearerAuth<_> = layer.layer_service(server);

        let first = client.clone().oneshot(Request::new(Opaque)).await.unwrap();
        assert_eq!(first.status(), StatusCode::UNAUTHORIZED, "not replayed");
        let second = client.oneshot(Request::new(Opaque)).await.unwrap();
        assert_eq!(second.status(), StatusCode::OK);
        // The `401` still invalidated the refused token.
        assert_eq!(*seen.lock().unwrap(), ["Bearer token-1", "Bearer token-2"]);
        assert_eq!(logins.load(Ordering::SeqCst), 2);
    }
}
