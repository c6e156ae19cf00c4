//! The response future of [`BearerAuth`](crate::BearerAuth).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Request, Response, header::AUTHORIZATION, request::Parts};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    BoxError,
    cache::{Carried, Lookup, TokenCache, TokenFuture},
    error::{TokenError, TokenErrorKind},
    metrics,
    policy::{self, Recover, Verdict},
    provider::BoxFuture,
    replay::RequestCopy,
    trace,
};

pin_project! {
    /// Response future for [`BearerAuth`](crate::BearerAuth); a
    /// [`Tenants`](crate::tenants::Tenants) request's once its key's layer is known.
    #[project = ResponseFutureProj]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, S::Future, B>,
        // The token the request carries, which finds the cache again after a `401`: on the
        // hot path this thread's copy of the header, whose reference count no other thread
        // touches (cloning the cache's handle would write to one that every thread shares).
        // `None` for a request that carries no token of ours.
        carried: Option<Carried>,
        // Which answers invalidate the token (and maybe replay).
        recover: Recover,
    }
}

pin_project! {
    // The hot path is `Call`: the inner future and nothing else to move, poll or drop. What the
    // other states keep is boxed, so that it does not make every future larger: a request
    // kept for a replay only its copy and a service (`Kept`, made for every such request, so
    // as small as it can be); a request waiting before its call everything else (`Slow`).
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<S, F, B> {
        // Waiting for the response.
        Call {
            #[pin]
            fut: F,
        },
        // Waiting for the response, with a service and a copy of the request to send again
        // after a `401`.
        Replayable {
            #[pin]
            fut: F,
            kept: Box<Kept<S, B>>,
        },
        // Waiting before the call: for a body, a token, or the service.
        Waiting {
            slow: Box<Slow<S, B>>,
        },
        // Failed before the call: a request that no token may go with (no origin chosen), or
        // a tenant's request that no key can be found for.
        Failed {
            error: Option<BoxError>,
        },
        // Completed.
        Done,
    }
}

/// What a request keeps to be sent again after a `401`.
struct Kept<S, B> {
    // A clone of the service, or the one that was called, polled ready again before the
    // replay.
    service: S,
    copy: RequestCopy<B>,
}

/// What a request keeps while it waits before its call.
struct Slow<S, B> {
    step: Step<B>,
    // The service that was polled ready, or a clone for a replay.
    service: S,
    // The request waiting for its token or for the service.
    request: Option<Request<B>>,
    // A copy of the request to send again after a `401`.
    replay: Option<RequestCopy<B>>,
}

#[allow(clippy::large_enum_variant)] // lives in `Slow`, boxed, and only on the slow paths
enum Step<B> {
    // Reading a small body into memory, so it can be sent twice.
    Buffer(BoxFuture<'static, Result<(B, B), BoxError>>, Option<Parts>),
    // Waiting for a login or refresh.
    Token(TokenFuture),
    // Waiting for the service to be ready (it already is, unless this is a replay).
    Ready,
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
    /// The hot path: calls `service` at once. `carried` is the token the request carries
    /// (with `recover` saying which answers refuse it), `None` if it carries none of ours.
    #[inline]
    pub(crate) fn called(
        service: &mut S,
        request: Request<B>,
        carried: Option<Carried>,
        recover: Recover,
    ) -> Self {
        Self {
            state: State::Call {
                fut: service.call(request),
            },
            recover: if carried.is_some() {
                recover
            } else {
                Recover::No
            },
            carried,
        }
    }

    /// Calls `service` at once, keeping `spare` (a clone of it) and `replay` (a copy of the
    /// request) to send the request again after a `401`.
    pub(crate) fn replayable(
        service: &mut S,
        request: Request<B>,
        spare: S,
        replay: RequestCopy<B>,
        carried: Carried,
        recover: Recover,
    ) -> Self {
        Self {
            state: State::Replayable {
                fut: service.call(request),
                kept: Box::new(Kept {
                    service: spare,
                    copy: replay,
                }),
            },
            carried: Some(carried),
            recover,
        }
    }

    /// The slow path: owns the service that was polled ready and waits before calling it.
    pub(crate) fn waiting(
        ready: S,
        request: Option<Request<B>>,
        replay: Option<RequestCopy<B>>,
        cache: &TokenCache,
        wait: Wait<B>,
        recover: Recover,
    ) -> Self {
        let step = match wait {
            Wait::Token(fut) => Step::Token(fut),
            Wait::Buffer(fut, parts) => Step::Buffer(fut, Some(parts)),
        };
        let slow = Slow {
            step,
            service: ready,
            request,
            replay,
        };
        Self {
            state: State::Waiting {
                slow: Box::new(slow),
            },
            // No token yet: its generation is set when it comes.
            carried: Some(Carried::Token(cache.clone(), 0)),
            recover,
        }
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A request that failed before its call.
    pub(crate) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
            carried: None,
            recover: Recover::No,
        }
    }
}

impl<S, B> Slow<S, B>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    /// Waits until the request has its token and the service is ready; then calls it.
    fn poll_call(
        &mut self,
        carried: &mut Option<Carried>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<S::Future, BoxError>> {
        loop {
            match &mut self.step {
                Step::Buffer(fut, parts) => {
                    let (body, copy) = ready!(fut.as_mut().poll(cx))?;
                    let parts = parts.take().expect("polled after completion");
                    self.replay = Some(RequestCopy::new(&parts, copy));
                    self.request = Some(Request::from_parts(parts, body));
                    let cache = carried.as_ref().and_then(Carried::cache).ok_or_else(gone)?;
                    match token_for(&cache) {
                        Lookup::Ready(header, sent) => {
                            set_token(&mut self.request, carried, header, sent);
                            self.step = Step::Ready;
                        }
                        Lookup::Wait(fut) => self.step = Step::Token(fut),
                    }
                }
                Step::Token(fut) => {
                    let token = ready!(fut.as_mut().poll(cx))?;
                    let cache = carried.as_ref().and_then(Carried::cache).ok_or_else(gone)?;
                    let sent = Carried::Token(cache, token.generation);
                    set_token(&mut self.request, carried, token.header.clone(), sent);
                    self.step = Step::Ready;
                }
                Step::Ready => {
                    ready!(self.service.poll_ready(cx)).map_err(Into::into)?;
                    let request = self.request.take().expect("polled after completion");
                    return Poll::Ready(Ok(self.service.call(request)));
                }
            }
        }
    }
}

/// The token for a request that has none yet: this thread's copy, or the cache's answer.
pub(crate) fn token_for(cache: &TokenCache) -> Lookup {
    match cache.cached() {
        Some(local) => Lookup::Ready(local.header.clone(), Carried::Copy(local)),
        None => cache.lookup(),
    }
}

impl<S, B, R> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: 'static,
{
    type Output = Result<Response<R>, BoxError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The hot path, small enough to inline: the call under way, nothing kept to send again.
        let mut this = self.as_mut().project();
        if let StateProj::Call { fut } = this.state.as_mut().project() {
            // Returned as polled: taking the response out first would copy it once more.
            match fut.poll(cx).map_err(Into::into) {
                Poll::Ready(Ok(response))
                    if policy::may_refuse(response.status(), *this.recover) =>
                {
                    if let Some(response) = this.on_refusal(response) {
                        return Poll::Ready(Ok(response));
                    }
                }
                output => return output,
            }
        }
        self.poll_slow(cx)
    }
}

impl<S, B, R> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone,
    S::Error: Into<BoxError>,
    B: 'static,
{
    /// Every state but the hot path's.
    #[inline(never)]
    fn poll_slow(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<R>, BoxError>> {
        loop {
            let mut this = self.as_mut().project();
            let response = match this.state.as_mut().project() {
                StateProj::Call { fut } | StateProj::Replayable { fut, .. } => {
                    ready!(fut.poll(cx)).map_err(Into::into)?
                }
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
                StateProj::Waiting { slow } => {
                    let fut = ready!(slow.poll_call(this.carried, cx))?;
                    match this.state.as_mut().project_replace(State::Done) {
                        StateReplace::Waiting { slow } => match *slow {
                            Slow {
                                service,
                                replay: Some(copy),
                                ..
                            } => {
                                let kept = Box::new(Kept { service, copy });
                                this.state.set(State::Replayable { fut, kept });
                            }
                            _ => this.state.set(State::Call { fut }),
                        },
                        _ => unreachable!("the state was `Waiting`"),
                    }
                    continue;
                }
                StateProj::Done => panic!("polled after completion"),
            };
            if !policy::may_refuse(response.status(), *this.recover) {
                return Poll::Ready(Ok(response));
            }
            if let Some(response) = this.on_refusal(response) {
                return Poll::Ready(Ok(response));
            }
        }
    }
}

impl<S, B> ResponseFutureProj<'_, S, B>
where
    S: Service<Request<B>>,
{
    /// After a `401` or `403` (or any answer, for gRPC): invalidates the token if the server
    /// rejected it, and sends the request again if a copy was kept (`None`: poll again), else
    /// returns the response with the parsed challenge.
    #[inline(never)]
    fn on_refusal<R>(&mut self, mut response: Response<R>) -> Option<Response<R>> {
        let Verdict {
            challenge,
            rejected,
        } = policy::judge(response.status(), response.headers(), *self.recover);
        // Every refusal invalidates the token it refused, a replay's too: the token the
        // replay carried is just as refused. A request is sent again once at most: only the
        // first attempt keeps a copy.
        let cache = rejected
            .then_some(self.carried.as_ref())
            .flatten()
            .and_then(|carried| Some((carried.cache()?, carried.generation())));
        if let Some((cache, generation)) = cache {
            trace::debug!(
                name: "unauthorized",
                cache = cache.id(),
                generation,
                replay = matches!(*self.state, State::Replayable { .. }),
                "the server refused the request's token"
            );
            cache.invalidate_generation(generation);
            if let StateReplace::Replayable { kept, .. } =
                self.state.as_mut().project_replace(State::Done)
            {
                metrics::replayed(&cache.labels(), metrics::Client::Tower);
                // The copy becomes the request.
                let Kept { service, copy } = *kept;
                let mut request = Some(copy.into_request());
                let step = match token_for(&cache) {
                    Lookup::Ready(header, sent) => {
                        set_token(&mut request, self.carried, header, sent);
                        Step::Ready
                    }
                    Lookup::Wait(fut) => {
                        *self.carried = Some(Carried::Token(cache, 0));
                        Step::Token(fut)
                    }
                };
                let slow = Box::new(Slow {
                    step,
                    service,
                    request,
                    replay: None,
                });
                self.state.set(State::Waiting { slow });
                return None;
            }
        }
        if let Some(challenge) = challenge {
            response.extensions_mut().insert(challenge);
        }
        Some(response)
    }
}

fn set_token<B>(
    request: &mut Option<Request<B>>,
    carried: &mut Option<Carried>,
    header: HeaderValue,
    sent: Carried,
) {
    if let Some(request) = request.as_mut() {
        request.headers_mut().insert(AUTHORIZATION, header);
    }
    *carried = Some(sent);
}

fn gone() -> TokenError {
    TokenError::new(TokenErrorKind::Aborted)
}
