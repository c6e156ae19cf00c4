//! [`ResponseFuture`]: the response future of [`Tenants`](super::Tenants).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    BoxError, future::ResponseFuture as Core, layer::BearerAuthLayer, provider::BoxFuture,
};

/// The layer of a key's first request, being made by the factory.
pub(crate) type LayerFuture = BoxFuture<'static, Result<BearerAuthLayer, BoxError>>;

pin_project! {
    /// Response future for [`Tenants`](super::Tenants): the key's
    /// [`BearerAuth`](crate::BearerAuth) response future, once the key's layer is known. A
    /// request for a key whose provider is being built first waits for the factory.
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // The key's layer sent the request (or failed it): its future.
        Sent {
            #[pin]
            fut: Core<S, B>,
        },
        // Waiting for the factory; boxed, so that it does not make every future larger.
        Creating {
            creating: Box<Creating<S, B>>,
        },
        // Between the two.
        Done,
    }
}

/// A request waiting for its key's layer.
struct Creating<S, B> {
    layer: LayerFuture,
    // The service polled ready, for the layer's call.
    service: S,
    request: Request<B>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// The future of a request the key's layer sent.
    #[inline]
    pub(crate) fn sent(fut: Core<S, B>) -> Self {
        Self {
            state: State::Sent { fut },
        }
    }

    /// A request whose layer is being made: `service` was polled ready.
    pub(crate) fn creating(service: S, request: Request<B>, layer: LayerFuture) -> Self {
        Self {
            state: State::Creating {
                creating: Box::new(Creating {
                    layer,
                    service,
                    request,
                }),
            },
        }
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
        loop {
            let mut state = self.as_mut().project().state;
            match state.as_mut().project() {
                StateProj::Sent { fut } => return fut.poll(cx),
                StateProj::Creating { creating } => {
                    let layer = ready!(creating.layer.as_mut().poll(cx))?;
                    let StateReplace::Creating { creating } = state.project_replace(State::Done)
                    else {
                        unreachable!("the state was `Creating`")
                    };
                    let Creating {
                        mut service,
                        request,
                        ..
                    } = *creating;
                    // `service` was polled ready: the layer's call takes it, or a clone of it.
                    let fut = layer.call(&mut service, request);
                    self.as_mut().project().state.set(State::Sent { fut });
                }
                StateProj::Done => panic!("polled after completion"),
            }
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Sent { .. } => "sent",
            State::Creating { .. } => "waiting for the key's layer",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
