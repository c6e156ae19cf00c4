//! A tonic gRPC client behind `BearerAuthLayer`, printing a timeline of its calls, logins and
//! refreshes.
//!
//! ```sh
//! cargo run --example tonic
//! cargo run --example tonic -- --duration 10
//! ```
//!
//! One process runs three things on 127.0.0.1: the embedded PortSIP-compatible token server
//! (tokens live 2 s), a gRPC service `demo.Greeter` that asks the token server about each
//! call's bearer token and answers `UNAUTHENTICATED` to a missing or stale one, and a client
//! whose tonic channel is wrapped in the layer.
//!
//! No `protoc` and no build script: the messages derive `prost::Message` by hand, and client
//! and server call tonic's `client::Grpc` and `server::Grpc` directly, as generated code does.
//!
//! Exits 0 only when a call without the layer was refused and every call through it
//! succeeded, with one login and at least one refresh.

use std::{
    convert::Infallible,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tonic::{
    Code, Request, Response, Status,
    body::Body,
    client::{Grpc, GrpcService},
    server::NamedService,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_prost::ProstCodec;
use tower::{Service, ServiceBuilder, service_fn};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin, TokenResponse,
    provider::{BoxFuture, TokenProvider, portsip::PortSip},
    test_server::{TestServer, TestServerConfig},
};

const USAGE: &str = "usage: tonic [--duration SECS]   (how long to keep calling; default 3)";

// The protocol, as a `.proto` file would state it:
//
//     package demo;
//     service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//     message HelloRequest { string name = 1; }
//     message HelloReply { string message = 1; }

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

const SAY_HELLO: &str = "/demo.Greeter/SayHello";

/// The server: `demo.Greeter`, for callers with a token from the token server.
#[derive(Clone)]
struct Greeter {
    tokens: Arc<TestServer>,
}

impl Greeter {
    fn say_hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let authorization = request.metadata().get("authorization");
        let user = self
            .tokens
            .authorize(authorization.and_then(|v| v.to_str().ok()))
            .ok_or_else(|| Status::unauthenticated("missing, unknown or expired bearer token"))?;
        let message = format!("Hello, {}! (token of {user})", request.get_ref().name);
        Ok(Response::new(HelloReply { message }))
    }
}

impl Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let greeter = self.clone();
        Box::pin(async move {
            if request.uri().path() != SAY_HELLO {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let method = service_fn(move |r| std::future::ready(greeter.say_hello(r)));
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<HelloReply, HelloRequest>::new());
            Ok(grpc.unary(method, request).await)
        })
    }
}

impl NamedService for Greeter {
    const NAME: &'static str = "demo.Greeter";
}

/// The client side of `SayHello`, through any service tonic can send requests with: a bare
/// channel or one wrapped in the layer.
async fn say_hello<T>(grpc: &mut Grpc<T>, name: &str) -> Result<String, Status>
where
    T: GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError>,
{
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
    let request = Request::new(HelloRequest {
        name: name.to_owned(),
    });
    let path = PathAndQuery::from_static(SAY_HELLO);
    let codec = ProstCodec::<HelloRequest, HelloReply>::new();
    Ok(grpc.unary(request, path, codec).await?.into_inner().message)
}

/// Prints lines stamped with the time since the start.
#[derive(Clone, Copy)]
struct Timeline(Instant);

impl Timeline {
    fn log(&self, message: impl std::fmt::Display) {
        println!("[{:>6.3}s] {message}", self.0.elapsed().as_secs_f64());
    }
}

/// A provider that prints and counts the logins and refreshes of the one it wraps.
struct Observed<P> {
    inner: P,
    timeline: Timeline,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
}

impl<P> Observed<P> {
    fn report(&self, what: &str, result: &Result<TokenResponse, BoxError>) {
        match result {
            Ok(token) => {
                let life = token.expires_in().unwrap_or_default().as_secs();
                self.timeline
                    .log(format_args!("  {what} → new token, valid {life} s"));
            }
            Err(e) => self.timeline.log(format_args!("  {what} → failed: {e}")),
        }
    }
}

impl<P: TokenProvider> TokenProvider for Observed<P> {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            self.logins.fetch_add(1, Ordering::SeqCst);
            let result = self.inner.login().await;
            self.report("login", &result);
            result
        })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            let result = self.inner.refresh(refresh_token).await;
            self.report("refresh", &result);
            result
        })
    }

    // The rest is the wrapped provider's: its origin (the token server's; the channel's
    // requests carry no authority, so they are let through), its revoke, its `Retry-After`.
    fn retry_after(&self, error: &(dyn std::error::Error + 'static)) -> Option<Duration> {
        self.inner.retry_after(error)
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        self.inner.revoke(access_token, refresh_token)
    }

    fn origin(&self) -> Option<Origin> {
        self.inner.origin()
    }
}

fn parse_duration() -> Result<Duration, String> {
    let mut duration = Duration::from_secs(3);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg != "--duration" {
            return Err(format!("unknown argument `{arg}`"));
        }
        duration = args
            .next()
            .and_then(|v| v.parse().ok())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .ok_or("--duration needs a number of seconds")?;
    }
    Ok(duration)
}

#[tokio::main]
async fn main() -> ExitCode {
    let duration = match parse_duration() {
        Ok(duration) => duration,
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(duration).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(duration: Duration) -> Result<bool, BoxError> {
    let timeline = Timeline(Instant::now());

    // The token server, and the gRPC server that takes its tokens.
    let config = TestServerConfig::new("admin", "s3cret").lifetime(Duration::from_secs(2));
    let tokens = Arc::new(TestServer::start(config).await?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let greeter = Greeter {
        tokens: tokens.clone(),
    };
    let serve = Server::builder()
        .add_service(greeter)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(serve);
    timeline.log(format_args!(
        "token server at {}, tokens live 2 s; gRPC server at {addr}",
        tokens.base_url()
    ));

    // The client: a tonic channel wrapped in the layer (which takes tonic's body type like any
    // other, and never replays it), with `grpc_unauthenticated` so that a call refused with
    // `UNAUTHENTICATED` invalidates the token it carried.
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let provider = Arc::new(Observed {
        inner: PortSip::new(tokens.base_url(), "admin", "s3cret").build()?,
        timeline,
        logins: AtomicUsize::new(0),
        refreshes: AtomicUsize::new(0),
    });
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .refresh_ahead(Duration::from_secs(1))
            .build(),
    )
    .grpc_unauthenticated(true);
    let cache = layer.cache();
    let mut client = Grpc::new(ServiceBuilder::new().layer(layer).service(channel.clone()));

    // Without the layer, the server refuses the call.
    let refused = match say_hello(&mut Grpc::new(channel), "anonymous").await {
        Err(status) if status.code() == Code::Unauthenticated => {
            timeline.log(format_args!(
                "SayHello without the layer → UNAUTHENTICATED ({}), as it should",
                status.message()
            ));
            true
        }
        other => {
            timeline.log(format_args!(
                "SayHello without the layer → {other:?}, expected UNAUTHENTICATED"
            ));
            false
        }
    };

    // Five calls at once on an empty cache share one login; then one call every 100 ms while
    // the token is refreshed in the background.
    let (mut calls, mut failed) = (0, 0);
    let mut report = |result: Result<String, Status>| {
        calls += 1;
        let generation = cache.token().map_or(0, |t| t.generation());
        match result {
            Ok(message) => timeline.log(format_args!(
                "SayHello → {message:?} (cached token #{generation})"
            )),
            Err(status) => {
                failed += 1;
                timeline.log(format_args!(
                    "SayHello → {:?}: {}",
                    status.code(),
                    status.message()
                ));
            }
        }
    };
    let burst: Vec<_> = (1..=5)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move { say_hello(&mut client, &format!("caller {i}")).await })
        })
        .collect();
    for call in burst {
        report(call.await?);
    }
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        report(say_hello(&mut client, "admin").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let logins = provider.logins.load(Ordering::SeqCst);
    let refreshes = provider.refreshes.load(Ordering::SeqCst);
    println!();
    println!(
        "summary: {calls} calls through the layer, {failed} failed; logins: {logins}, \
         refreshes: {refreshes}"
    );
    println!(
        "server:  {} token checks, {} refused, {} with an expired token",
        tokens.counts().api_requests,
        tokens.counts().unauthorized,
        tokens.counts().expired_token_requests
    );
    let ok = refused
        && failed == 0
        && logins == 1
        && refreshes >= 1
        && tokens.counts().api_requests == calls + 1
        && tokens.counts().unauthorized == 1;
    println!("{}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}
