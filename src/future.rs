//! The response future of [`BearerAuth`](crate::BearerAuth).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{BoxError, cache::TokenFuture};

pin_project! {
    /// Response future for [`BearerAuth`](crate::BearerAuth).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, F> {
        // Waiting for a login or refresh; holds the service that was polled ready.
        Token {
            fut: TokenFuture,
            service: Option<S>,
            request: Option<Request<B>>,
        },
        // Waiting for the inner service's response.
        Call {
            #[pin]
            fut: F,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn token(fut: TokenFuture, service: S, request: Request<B>) -> Self {
        Self {
            state: State::Token {
                fut,
                service: Some(service),
                request: Some(request),
            },
        }
    }

    pub(crate) fn call(fut: S::Future) -> Self {
        Self {
            state: State::Call { fut },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Token {
                    fut,
                    service,
                    request,
                } => {
                    let token = ready!(fut.as_mut().poll(cx))?;
                    let mut request = request.take().expect("polled after completion");
                    let mut service = service.take().expect("polled after completion");
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, token.header.clone());
                    let fut = service.call(request);
                    this.state.set(State::Call { fut });
                }
                StateProj::Call { fut } => return fut.poll(cx).map_err(Into::into),
            }
        }
    }
}
