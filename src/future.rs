//! The response future of [`BearerAuth`](crate::BearerAuth).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION, request::Parts};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    BearerChallenge, BoxError, BoxFuture, TokenCache, TokenError,
    cache::{Lookup, TokenFuture},
    challenge::token_rejected,
    error::TokenErrorKind,
    trace,
};

pin_project! {
    /// Response future for [`BearerAuth`](crate::BearerAuth).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, B>,
        // The service for the next call: the one polled ready, or a clone for a replay.
        service: Option<S>,
        // The request waiting for its token or for the service.
        request: Option<Request<B>>,
        // A copy of the request to send again after a `401`.
        replay: Option<Request<B>>,
        // The cache: a handle on the slow paths, which need it; on the hot path only its id
        // (see `TokenCache::find`), since cloning the handle would write to a reference count
        // that every thread shares. And the generation of the token sent.
        handle: Option<TokenCache>,
        cache: u64,
        generation: u64,
        // Whether a `401` should still invalidate the token (and maybe replay).
        recover: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Reading a small body into memory, so it can be sent twice.
        Buffer {
            fut: BoxFuture<'static, Result<(B, B), BoxError>>,
            parts: Option<Parts>,
        },
        // Waiting for a login or refresh.
        Token {
            fut: TokenFuture,
        },
        // Waiting for the service to be ready (it already is, unless this is a replay).
        Ready,
        // Waiting for the response.
        Call {
            #[pin]
            fut: F,
        },
    }
}

/// What a request waits for before it is sent.
#[allow(clippy::large_enum_variant)] // built once per request on the slow path, then moved
pub(crate) enum Wait<B> {
    /// A login or refresh.
    Token(TokenFuture),
    /// Its body, read into memory so it can be sent twice.
    Buffer(BoxFuture<'static, Result<(B, B), BoxError>>, Parts),
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// The hot path: calls `service` at once.
    pub(crate) fn called(
        service: &mut S,
        request: Request<B>,
        spare: Option<(S, Request<B>)>,
        cache: &TokenCache,
        generation: Option<u64>,
    ) -> Self {
        let fut = service.call(request);
        let (service, replay) = spare.unzip();
        Self {
            state: State::Call { fut },
            service,
            request: None,
            replay,
            handle: None,
            cache: cache.id(),
            generation: generation.unwrap_or(0),
            recover: generation.is_some(),
        }
    }

    /// The slow path: owns the service that was polled ready and waits before calling it.
    pub(crate) fn waiting(
        ready: S,
        request: Option<Request<B>>,
        replay: Option<Request<B>>,
        cache: &TokenCache,
        wait: Wait<B>,
    ) -> Self {
        let state = match wait {
            Wait::Token(fut) => State::Token { fut },
            Wait::Buffer(fut, parts) => State::Buffer {
                fut,
                parts: Some(parts),
            },
        };
        Self {
            state,
            service: Some(ready),
            request,
            replay,
            handle: Some(cache.clone()),
            cache: cache.id(),
            generation: 0,
            recover: true,
        }
    }
}

/// The token for a request that has none yet: this thread's copy, or the cache's answer.
pub(crate) fn token_for(cache: &TokenCache) -> Lookup {
    match cache.cached_header() {
        Some((header, generation)) => Lookup::Ready(header, generation),
        None => cache.lookup(),
    }
}

impl<S, B, R> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<R>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Buffer { fut, parts } => {
                    let (body, copy) = ready!(fut.as_mut().poll(cx))?;
                    let parts = parts.take().expect("polled after completion");
                    *this.request = Some(Request::from_parts(parts.clone(), body));
                    *this.replay = Some(Request::from_parts(parts, copy));
                    let cache = this.handle.as_ref().ok_or_else(gone)?;
                    match token_for(cache) {
                        Lookup::Ready(header, generation) => {
                            set_token(this.request, this.generation, header, generation);
                            this.state.set(State::Ready);
                        }
                        Lookup::Wait(fut) => this.state.set(State::Token { fut }),
                    }
                }
                StateProj::Token { fut } => {
                    let token = ready!(fut.as_mut().poll(cx))?;
                    let header = token.header.clone();
                    set_token(this.request, this.generation, header, token.generation);
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let service = this.service.as_mut().expect("polled after completion");
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let request = this.request.take().expect("polled after completion");
                    let fut = service.call(request);
                    if this.replay.is_none() {
                        *this.service = None;
                    }
                    this.state.set(State::Call { fut });
                }
                StateProj::Call { fut } => {
                    let mut response = ready!(fut.poll(cx)).map_err(Into::into)?;
                    let status = response.status();
                    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                        return Poll::Ready(Ok(response));
                    }
                    let challenge = BearerChallenge::from_headers(response.headers());
                    if status == StatusCode::UNAUTHORIZED
                        && *this.recover
                        && token_rejected(response.headers(), challenge.as_ref())
                    {
                        // Only the first `401` of a request invalidates, and only once.
                        *this.recover = false;
                        let cache = this
                            .handle
                            .clone()
                            .or_else(|| TokenCache::find(*this.cache));
                        if let Some(cache) = cache {
                            trace::debug!(
                                name: "unauthorized",
                                cache = *this.cache,
                                generation = *this.generation,
                                replay = this.replay.is_some(),
                                "request refused with 401"
                            );
                            cache.invalidate_generation(*this.generation);
                            if let Some(replay) = this.replay.take() {
                                *this.request = Some(replay);
                                match token_for(&cache) {
                                    Lookup::Ready(header, generation) => {
                                        set_token(
                                            this.request,
                                            this.generation,
                                            header,
                                            generation,
                                        );
                                        this.state.set(State::Ready);
                                    }
                                    Lookup::Wait(fut) => this.state.set(State::Token { fut }),
                                }
                                continue;
                            }
                        }
                    }
                    if let Some(challenge) = challenge {
                        response.extensions_mut().insert(challenge);
                    }
                    return Poll::Ready(Ok(response));
                }
            }
        }
    }
}

fn set_token<B>(
    request: &mut Option<Request<B>>,
    slot: &mut u64,
    header: HeaderValue,
    generation: u64,
) {
    if let Some(request) = request.as_mut() {
        request.headers_mut().insert(AUTHORIZATION, header);
    }
    *slot = generation;
}

fn gone() -> TokenError {
    TokenError::new(TokenErrorKind::Aborted)
}
