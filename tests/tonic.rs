//! End to end over loopback sockets: a tonic gRPC client whose `Channel` is wrapped in
//! `BearerAuthLayer`, a tonic server that checks each call's bearer token with the embedded
//! PortSIP-compatible token server, and short-lived tokens refreshed while calls go on.
//!
//! The messages and the service plumbing are written by hand (no `protoc`), as in
//! `examples/tonic.rs`.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::uri::PathAndQuery;
use tokio::{net::TcpListener, task::JoinSet};
use tonic::{
    Code, Request, Response, Status,
    body::Body,
    client::{Grpc, GrpcService},
    codegen::tokio_stream,
    server::NamedService,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_prost::ProstCodec;
use tower::{Service, ServiceBuilder, service_fn};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, BoxError,
    provider::{BoxFuture, portsip::PortSip},
    test_server::{TestServer, TestServerConfig},
};

// package demo;
// service Greeter {
//   rpc SayHello (HelloRequest) returns (HelloReply);
//   rpc Count (CountRequest) returns (stream Tick);
// }

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

#[derive(Clone, PartialEq, prost::Message)]
struct CountRequest {
    #[prost(uint32, tag = "1")]
    to: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Tick {
    #[prost(uint32, tag = "1")]
    n: u32,
}

const SAY_HELLO: &str = "/demo.Greeter/SayHello";
const COUNT: &str = "/demo.Greeter/Count";

/// The server: every call must carry a bearer token the token server accepts.
#[derive(Clone)]
struct Greeter {
    tokens: Arc<TestServer>,
}

impl Greeter {
    fn authorize<M>(&self, request: &Request<M>) -> Result<String, Status> {
        let authorization = request.metadata().get("authorization");
        self.tokens
            .authorize(authorization.and_then(|v| v.to_str().ok()))
            .ok_or_else(|| Status::unauthenticated("missing, unknown or expired bearer token"))
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
            let response = match request.uri().path() {
                SAY_HELLO => {
                    let method = service_fn(move |r: Request<HelloRequest>| {
                        let reply = greeter.authorize(&r).map(|user| {
                            let message = format!("Hello, {} ({user})", r.get_ref().name);
                            Response::new(HelloReply { message })
                        });
                        std::future::ready(reply)
                    });
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::<HelloReply, _>::new());
                    grpc.unary(method, request).await
                }
                COUNT => {
                    let method = service_fn(move |r: Request<CountRequest>| {
                        let ticks = greeter.authorize(&r).map(|_| {
                            let ticks = (1..=r.get_ref().to).map(|n| Ok(Tick { n }));
                            Response::new(tokio_stream::iter(ticks))
                        });
                        std::future::ready(ticks)
                    });
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::<Tick, _>::new());
                    grpc.server_streaming(method, request).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

impl NamedService for Greeter {
    const NAME: &'static str = "demo.Greeter";
}

async fn ready<T>(grpc: &mut Grpc<T>) -> Result<(), Status>
where
    T: GrpcService<Body>,
{
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))
}

async fn say_hello<T>(grpc: &mut Grpc<T>, name: &str) -> Result<String, Status>
where
    T: GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError>,
{
    ready(grpc).await?;
    let request = Request::new(HelloRequest { name: name.into() });
    let path = PathAndQuery::from_static(SAY_HELLO);
    let codec = ProstCodec::<_, HelloReply>::new();
    Ok(grpc.unary(request, path, codec).await?.into_inner().message)
}

async fn count<T>(grpc: &mut Grpc<T>, to: u32) -> Result<Vec<u32>, Status>
where
    T: GrpcService<Body>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError>,
{
    ready(grpc).await?;
    let path = PathAndQuery::from_static(COUNT);
    let codec = ProstCodec::<_, Tick>::new();
    let response = grpc.server_streaming(Request::new(CountRequest { to }), path, codec);
    let mut stream = response.await?.into_inner();
    let mut ticks = Vec::new();
    while let Some(tick) = stream.message().await? {
        ticks.push(tick.n);
    }
    Ok(ticks)
}

type Client = Grpc<BearerAuth<Channel>>;

/// The token server (tokens living `lifetime`), the gRPC server on a port of its own, and a
/// channel to it; both servers stop with the test's runtime.
async fn start(lifetime: Duration) -> (Arc<TestServer>, Channel) {
    let config = TestServerConfig::new("admin", "s3cret").lifetime(lifetime);
    let tokens = Arc::new(TestServer::start(config).await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let greeter = Greeter {
        tokens: tokens.clone(),
    };
    let serve = Server::builder()
        .add_service(greeter)
        .serve_with_incoming(TcpIncoming::from(listener));
    tokio::spawn(serve);
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (tokens, channel)
}

fn layer(tokens: &TestServer) -> BearerAuthLayer {
    let provider = PortSip::new(tokens.base_url(), "admin", "s3cret")
        .build()
        .unwrap();
    BearerAuthLayer::new(
        TokenCache::builder(provider)
            .refresh_ahead(Duration::from_secs(1))
            .build(),
    )
}

fn client(layer: BearerAuthLayer, channel: Channel) -> Client {
    Grpc::new(ServiceBuilder::new().layer(layer).service(channel))
}

#[tokio::test]
async fn calls_without_the_layer_are_refused() {
    let (tokens, channel) = start(Duration::from_secs(60)).await;
    let mut bare = Grpc::new(channel);
    let status = say_hello(&mut bare, "anonymous").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = count(&mut bare, 3).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(tokens.counts().unauthorized, 2);
    assert_eq!(tokens.counts().token_requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_and_streams_across_token_refreshes_all_succeed() {
    // Tokens live 2 s and are refreshed half a second to a second before they expire.
    let (tokens, channel) = start(Duration::from_secs(2)).await;
    let layer = layer(&tokens);
    let cache = layer.cache();
    let client = client(layer, channel);

    // Twenty calls at once on an empty cache: one login.
    let mut calls = JoinSet::new();
    for i in 0..20 {
        let mut client = client.clone();
        calls.spawn(async move { say_hello(&mut client, &format!("caller {i}")).await });
    }
    let mut unary = 0;
    while let Some(reply) = calls.join_next().await {
        let reply = reply.unwrap().unwrap();
        assert!(reply.ends_with("(admin)"), "{reply}");
        unary += 1;
    }
    assert_eq!(tokens.counts().password_grants, 1);

    // Then, for 2.5 s, rounds of four concurrent calls and a stream.
    let (mut streams, deadline) = (0, Instant::now() + Duration::from_millis(2500));
    while Instant::now() < deadline {
        for i in 0..4 {
            let mut client = client.clone();
            calls.spawn(async move { say_hello(&mut client, &format!("round caller {i}")).await });
        }
        let mut streaming = client.clone();
        let ticks = tokio::spawn(async move { count(&mut streaming, 5).await });
        while let Some(reply) = calls.join_next().await {
            let reply = reply.unwrap();
            assert!(reply.is_ok(), "a call failed: {reply:?}");
            unary += 1;
        }
        assert_eq!(ticks.await.unwrap().unwrap(), [1, 2, 3, 4, 5]);
        streams += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every call reached the server with a token it accepted: one login, refreshes, no
    // expired token, nothing refused.
    assert!(streams >= 10, "only {streams} rounds ran");
    assert_eq!(tokens.counts().api_requests, unary + streams);
    assert_eq!(tokens.counts().unauthorized, 0);
    assert_eq!(tokens.counts().expired_token_requests, 0);
    assert_eq!(tokens.counts().password_grants, 1, "exactly one login");
    assert!(
        tokens.counts().refresh_grants >= 1,
        "no refresh in 2.5 s of 2 s tokens"
    );
    assert_eq!(tokens.counts().failed_token_requests, 0);
    assert!(cache.token().unwrap().generation() >= 2);
}

/// gRPC refuses a call with a status in an HTTP `200` response, which the layer does not read
/// by default (it recovers from HTTP `401`s only): the caller invalidates the token itself.
#[tokio::test]
async fn after_unauthenticated_invalidating_the_cache_gets_a_new_token() {
    let (tokens, channel) = start(Duration::from_secs(60)).await;
    let layer = layer(&tokens);
    let cache = layer.cache();
    let mut client = client(layer, channel);
    say_hello(&mut client, "before").await.unwrap();

    tokens.revoke_all();
    for _ in 0..2 {
        let status = say_hello(&mut client, "revoked").await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    cache.invalidate();
    say_hello(&mut client, "after").await.unwrap();
    // The refresh token was revoked too, so a refresh was tried and a login followed.
    assert_eq!(tokens.counts().password_grants, 2);
    assert_eq!(tokens.counts().refresh_grants, 1);
    assert_eq!(tokens.counts().unauthorized, 2);
}

/// With `grpc_unauthenticated(true)` the layer reads `grpc-status: 16` itself: one refused call,
/// then the next one carries a new token, with no help from the caller.
#[tokio::test]
async fn grpc_unauthenticated_invalidates_the_refused_token() {
    let (tokens, channel) = start(Duration::from_secs(60)).await;
    let provider = PortSip::new(tokens.base_url(), "admin", "s3cret")
        .build()
        .unwrap();
    let layer = BearerAuthLayer::new(provider).grpc_unauthenticated(true);
    let cache = layer.cache();
    let mut client = client(layer, channel);
    say_hello(&mut client, "before").await.unwrap();
    let first = cache.token().unwrap().generation();

    tokens.revoke_all();
    let status = say_hello(&mut client, "revoked").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(cache.token().is_none(), "the refused token was invalidated");
    say_hello(&mut client, "after").await.unwrap();
    assert!(cache.token().unwrap().generation() > first);
    assert_eq!(
        tokens.counts().unauthorized,
        1,
        "only the one call was refused"
    );
    assert_eq!(tokens.counts().password_grants, 2);

    // Other statuses leave the token alone: `UNIMPLEMENTED`, for a method the server lacks.
    let token = cache.token().unwrap().generation();
    ready(&mut client).await.unwrap();
    let status = client
        .unary(
            Request::new(HelloRequest::default()),
            PathAndQuery::from_static("/demo.Greeter/NoSuchMethod"),
            ProstCodec::<_, HelloReply>::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert_eq!(cache.token().unwrap().generation(), token);
}
