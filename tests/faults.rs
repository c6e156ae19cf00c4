//! The fault matrix: each way a token endpoint can fail, injected over a real socket by a
//! hand-rolled HTTP/1.1 endpoint, through `BearerAuthLayer` and the `PortSip` provider.
//!
//! Every row runs twice: once on the first login, once on the refresh (and the login after
//! it) that follows a thrown-away token. Each time the request fails with a typed
//! `TokenError` whose message (and source chain) says what went wrong, the request never
//! reaches the API, no token is cached, nothing panics, and once the endpoint heals the next
//! request succeeds. Rows run concurrently; add a fault by adding a line to [`rows`].

mod support;

use std::{
    error::Error as _,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use http::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinSet,
    time::Instant,
};
use tower::{Layer, ServiceExt};
use tower_bearer_auth::{
    BearerAuth, BearerAuthLayer, Origin, TokenError, TokenErrorKind,
    provider::{
        oauth2::{OAuth2Error, OAuth2ErrorKind},
        portsip::{PortSip, PortSipApi, PortSipProvider},
    },
};

use support::{Api, HttpClient, client, get};

const USER: &str = "admin";
const PASSWORD: &str = "S3cr3t-faults-pw";
/// The provider timeout used by every row.
const TIMEOUT: Duration = Duration::from_millis(300);
/// The size of the oversized bodies.
const HUGE: usize = 10 * 1024 * 1024;
/// The body limit of `OAuth2Provider`.
const LIMIT: usize = 64 * 1024;

/// What the endpoint does with a token request.
#[derive(Debug, Clone)]
enum Fault {
    /// Nothing listens: the connection is refused.
    Refused,
    /// Reads the request and never answers.
    Hang,
    /// Sends the status line and headers, then nothing.
    HangAfterHeaders,
    /// Answers with this status, `Retry-After` and body.
    Reply {
        status: u16,
        retry_after: Option<RetryAfter>,
        body: &'static str,
    },
    /// Promises a 200-byte body, sends 20 bytes and closes.
    CloseMidBody,
    /// Sends a valid token response one byte every 50 ms.
    SlowDrip,
    /// Sends a 10 MiB body, with a `Content-Length` or chunked.
    Huge { content_length: bool },
}

#[derive(Debug, Clone, Copy)]
enum RetryAfter {
    /// `Retry-After: 1`.
    Seconds(u64),
    /// `Date: <now>` and `Retry-After: <now + n s>`, both HTTP dates.
    Date(u64),
}

fn reply(status: u16, body: &'static str) -> Fault {
    Fault::Reply {
        status,
        retry_after: None,
        body,
    }
}

fn busy(status: u16, retry_after: RetryAfter, body: &'static str) -> Fault {
    Fault::Reply {
        status,
        retry_after: Some(retry_after),
        body,
    }
}

/// What the caller must see.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A `TokenError` of this kind, whose message chain contains the fragment, and whose
    /// source is an `OAuth2Error` matching the check (or no `OAuth2Error` at all for `None`).
    Fails(TokenErrorKind, Source, &'static str),
    /// The response is accepted: an absurd lifetime is read as no expiry (or a far one).
    NoExpiry,
}

/// The `OAuth2Error` expected behind a `TokenError`.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// No `OAuth2Error` (the cache's own validation, or its timeout).
    None,
    /// `OAuth2ErrorKind::Transport`.
    Transport,
    /// `OAuth2ErrorKind::Status` with this status.
    Status(u16),
    /// `OAuth2ErrorKind::Server` with this code and status.
    Server(&'static str, u16),
    /// `OAuth2ErrorKind::InvalidResponse`.
    Invalid,
    /// `OAuth2ErrorKind::BodyTooLarge` at the default limit.
    TooLarge,
}

struct Row {
    name: &'static str,
    fault: Fault,
    expect: Expect,
}

fn row(name: &'static str, fault: Fault, expect: Expect) -> Row {
    Row {
        name,
        fault,
        expect,
    }
}

use Expect::{Fails, NoExpiry};
use TokenErrorKind::{InvalidResponse, InvalidToken, Login, Timeout};
use tower_bearer_auth::TokenCache;

/// The matrix: one line per fault.
#[rustfmt::skip]
fn rows() -> Vec<Row> {
    vec![
        row("connection refused", Fault::Refused, Fails(Login, Source::Transport, "token endpoint request failed")),
        row("hangs before answering", Fault::Hang, Fails(Timeout, Source::None, "timed out")),
        row("hangs after the headers", Fault::HangAfterHeaders, Fails(Timeout, Source::None, "timed out")),
        row("500", reply(500, "Internal Server Error"), Fails(Login, Source::Status(500), "HTTP 500 from the token endpoint: Internal Server Error")),
        row("502 html", reply(502, "<html><h1>Bad Gateway</h1></html>"), Fails(Login, Source::Status(502), "HTTP 502 from the token endpoint: <html>")),
        row("503 empty", reply(503, ""), Fails(Login, Source::Status(503), "HTTP 503 from the token endpoint")),
        row("429 retry-after seconds", busy(429, RetryAfter::Seconds(1), "slow down"), Fails(Login, Source::Status(429), "HTTP 429 from the token endpoint: slow down")),
        row("429 retry-after date", busy(429, RetryAfter::Date(1), "slow down"), Fails(Login, Source::Status(429), "HTTP 429")),
        row("503 retry-after seconds", busy(503, RetryAfter::Seconds(1), r#"{"error":"temporarily_unavailable"}"#), Fails(Login, Source::Server("temporarily_unavailable", 503), "temporarily_unavailable (HTTP 503)")),
        row("503 retry-after date", busy(503, RetryAfter::Date(1), "maintenance"), Fails(Login, Source::Status(503), "HTTP 503 from the token endpoint: maintenance")),
        row("error inside a 200", reply(200, r#"{"error":"invalid_grant","error_description":"locked"}"#), Fails(Login, Source::Server("invalid_grant", 200), "invalid_grant: locked (HTTP 200)")),
        row("non-json body", reply(200, "<html>please log in</html>"), Fails(Login, Source::Invalid, "not a JSON object")),
        row("json array", reply(200, r#"["a"]"#), Fails(Login, Source::Invalid, "not a JSON object")),
        row("no access_token", reply(200, r#"{"token_type":"Bearer","expires_in":60}"#), Fails(Login, Source::Invalid, "has no access token")),
        row("empty access_token", reply(200, r#"{"access_token":"","expires_in":60}"#), Fails(Login, Source::Invalid, "has no access token")),
        row("access_token not a string", reply(200, r#"{"access_token":42}"#), Fails(Login, Source::Invalid, "has no access token")),
        row("access_token with CR LF", reply(200, r#"{"access_token":"abc\r\nX-Evil: 1"}"#), Fails(InvalidToken, Source::None, "not allowed in a header")),
        row("access_token with LF", reply(200, r#"{"access_token":"abc\ndef"}"#), Fails(InvalidToken, Source::None, "not allowed in a header")),
        row("access_token with NUL", reply(200, r#"{"access_token":"abc\u0000def"}"#), Fails(InvalidToken, Source::None, "not allowed in a header")),
        row("access_token non-ascii", reply(200, r#"{"access_token":"t\u00f6k\u00e9n"}"#), Fails(InvalidToken, Source::None, "not allowed in a header")),
        row("expires_in 0", reply(200, r#"{"access_token":"a","expires_in":0}"#), Fails(InvalidResponse, Source::None, "already expired")),
        row("expires_in \"0\"", reply(200, r#"{"access_token":"a","expires_in":"0"}"#), Fails(InvalidResponse, Source::None, "already expired")),
        row("expires_in negative", reply(200, r#"{"access_token":"a","expires_in":-60}"#), Fails(Login, Source::Invalid, "`expires_in` is not a number of seconds")),
        row("expires_in non-numeric", reply(200, r#"{"access_token":"a","expires_in":"soon"}"#), Fails(Login, Source::Invalid, "`expires_in` is not a number of seconds")),
        row("expires_in boolean", reply(200, r#"{"access_token":"a","expires_in":true}"#), Fails(Login, Source::Invalid, "`expires_in` is not a number of seconds")),
        row("expires_in i64::MAX", reply(200, r#"{"access_token":"huge-1","expires_in":9223372036854775807}"#), NoExpiry),
        row("expires_in u64::MAX + 1", reply(200, r#"{"access_token":"huge-2","expires_in":18446744073709551616}"#), NoExpiry),
        row("expires_in 1e300", reply(200, r#"{"access_token":"huge-3","expires_in":1e300}"#), NoExpiry),
        row("expires_in huge string", reply(200, r#"{"access_token":"huge-4","expires_in":"99999999999999999999999"}"#), NoExpiry),
        row("expires_at in the past", reply(200, r#"{"access_token":"a","expires_at":1000000000}"#), Fails(InvalidResponse, Source::None, "already expired")),
        row("expires_at rfc3339 past", reply(200, r#"{"access_token":"a","expires_at":"2001-09-09T01:46:40Z"}"#), Fails(InvalidResponse, Source::None, "already expired")),
        row("expires_at garbage", reply(200, r#"{"access_token":"a","expires_at":"tomorrow"}"#), Fails(Login, Source::Invalid, "neither a number nor an RFC 3339 time")),
        row("token_type mac", reply(200, r#"{"access_token":"a","token_type":"mac"}"#), Fails(InvalidResponse, Source::None, "token type is not bearer")),
        row("token_type number", reply(200, r#"{"access_token":"a","token_type":1}"#), Fails(Login, Source::Invalid, "`token_type` is not a string")),
        row("closed mid-body", Fault::CloseMidBody, Fails(Login, Source::Transport, "token endpoint request failed")),
        row("slow drip", Fault::SlowDrip, Fails(Timeout, Source::None, "timed out")),
        row("10 MiB with content-length", Fault::Huge { content_length: true }, Fails(Login, Source::TooLarge, "exceeds 65536 bytes")),
        row("10 MiB chunked", Fault::Huge { content_length: false }, Fails(Login, Source::TooLarge, "exceeds 65536 bytes")),
    ]
}

/// A token endpoint that injects one fault until healed, then issues tokens the [`Api`]
/// accepts.
struct Endpoint {
    addr: SocketAddr,
    state: Arc<State>,
    /// Bound but not listening, while the endpoint refuses connections.
    unlistened: Mutex<Option<TcpSocket>>,
    /// The accept loop, while listening.
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct State {
    fault: Mutex<Option<Fault>>,
    api: Api,
    /// Token requests read.
    requests: AtomicUsize,
    /// Body bytes an oversized answer managed to write before the client hung up.
    written: AtomicUsize,
    /// Whether the oversized answer has stopped writing.
    finished: AtomicBool,
    /// The `grant_type` of each token request read.
    grants: Mutex<Vec<String>>,
}

fn socket(addr: SocketAddr) -> TcpSocket {
    let socket = TcpSocket::new_v4().unwrap();
    // Small buffers, so bytes the client never read can't hide in the kernel.
    socket.set_send_buffer_size(64 * 1024).unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket
}

impl Endpoint {
    async fn start(api: Api, fault: Option<Fault>) -> Self {
        let socket = socket("127.0.0.1:0".parse().unwrap());
        let addr = socket.local_addr().unwrap();
        let refused = matches!(fault, Some(Fault::Refused));
        let endpoint = Self {
            addr,
            state: Arc::new(State {
                fault: Mutex::new(fault),
                api,
                requests: AtomicUsize::new(0),
                written: AtomicUsize::new(0),
                finished: AtomicBool::new(false),
                grants: Mutex::new(Vec::new()),
            }),
            unlistened: Mutex::new(Some(socket)),
            accept: Mutex::new(None),
        };
        if !refused {
            endpoint.listen();
        }
        endpoint
    }

    fn listen(&self) {
        let mut accept = self.accept.lock().unwrap();
        if accept.is_some() {
            return;
        }
        // Bound at start, or bound again on the same port after `inject(Refused)`.
        let socket = self
            .unlistened
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| socket(self.addr));
        let listener = socket.listen(128).unwrap();
        let state = self.state.clone();
        *accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(state.clone(), stream));
            }
        }));
    }

    /// Starts failing with `fault`.
    async fn inject(&self, fault: Fault) {
        if let Fault::Refused = fault {
            let accept = self.accept.lock().unwrap().take();
            if let Some(accept) = accept {
                accept.abort();
                let _ = accept.await;
            }
        }
        *self.state.fault.lock().unwrap() = Some(fault);
    }

    fn heal(&self) {
        *self.state.fault.lock().unwrap() = None;
        self.listen();
    }

    /// The grant types of the token requests read from the `skip`th on.
    fn grants(&self, skip: usize) -> Vec<String> {
        self.state.grants.lock().unwrap()[skip..].to_vec()
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The preset, on the OAuth token endpoint this endpoint imitates.
    fn provider(&self) -> PortSipProvider<tower_bearer_auth::client::HttpClient> {
        PortSip::new(self.base_url(), USER, PASSWORD)
            .api(PortSipApi::OAuth)
            .build()
            .unwrap()
    }
}

/// Reads one request: the head, then as many body bytes as `Content-Length` says.
async fn read_request(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err(io::ErrorKind::InvalidData.into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

fn head(status: u16, extra: &str) -> String {
    format!("HTTP/1.1 {status} Whatever\r\nConnection: close\r\n{extra}\r\n")
}

async fn serve(state: Arc<State>, mut stream: TcpStream) {
    let Ok(request) = read_request(&mut stream).await else {
        return;
    };
    let text = String::from_utf8_lossy(&request);
    let grant = text
        .split(['&', '\n'])
        .find_map(|field| field.strip_prefix("grant_type="))
        .unwrap_or("none");
    state.grants.lock().unwrap().push(grant.trim().to_owned());
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let fault = state.fault.lock().unwrap().clone();
    let _ = answer(&state, &mut stream, fault, n).await;
}

async fn answer(
    state: &State,
    stream: &mut TcpStream,
    fault: Option<Fault>,
    n: usize,
) -> io::Result<()> {
    let Some(fault) = fault else {
        let token = format!("healed-{n}");
        state.api.accept(&token);
        let body = format!(
            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-{n}"}}"#
        );
        let extra = format!("Content-Length: {}\r\n", body.len());
        stream.write_all(head(200, &extra).as_bytes()).await?;
        return stream.write_all(body.as_bytes()).await;
    };
    match fault {
        // Not listening, so never reached.
        Fault::Refused => Ok(()),
        Fault::Hang => {
            // Until the client gives up and closes.
            let _ = stream.read(&mut [0u8; 1]).await;
            Ok(())
        }
        Fault::HangAfterHeaders => {
            stream
                .write_all(head(200, "Content-Length: 100\r\n").as_bytes())
                .await?;
            let _ = stream.read(&mut [0u8; 1]).await;
            Ok(())
        }
        Fault::Reply {
            status,
            retry_after,
            body,
        } => {
            // A token the row expects to be accepted must work on the API.
            if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(body) {
                if let Some(serde_json::Value::String(t)) = map.get("access_token") {
                    state.api.accept(t);
                }
            }
            let mut extra = format!(
                "Content-Length: {}\r\nContent-Type: application/json\r\n",
                body.len()
            );
            match retry_after {
                None => {}
                Some(RetryAfter::Seconds(s)) => extra.push_str(&format!("Retry-After: {s}\r\n")),
                Some(RetryAfter::Date(s)) => {
                    let now = SystemTime::now();
                    let later = now + Duration::from_secs(s);
                    extra.push_str(&format!(
                        "Date: {}\r\nRetry-After: {}\r\n",
                        httpdate::fmt_http_date(now),
                        httpdate::fmt_http_date(later)
                    ));
                }
            }
            stream.write_all(head(status, &extra).as_bytes()).await?;
            stream.write_all(body.as_bytes()).await
        }
        Fault::CloseMidBody => {
            stream
                .write_all(head(200, "Content-Length: 200\r\n").as_bytes())
                .await?;
            stream.write_all(br#"{"access_token":"abc"#).await?;
            stream.flush().await
            // Dropped: the connection closes with 180 bytes missing.
        }
        Fault::SlowDrip => {
            let body = br#"{"access_token":"drip","token_type":"Bearer","expires_in":3600}"#;
            let extra = format!("Content-Length: {}\r\n", body.len());
            stream.write_all(head(200, &extra).as_bytes()).await?;
            for byte in body {
                stream.write_all(&[*byte]).await?;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        }
        Fault::Huge { content_length } => {
            let result = huge(state, stream, content_length).await;
            state.finished.store(true, Ordering::SeqCst);
            result
        }
    }
}

/// Writes a 10 MiB token response in 16 KiB pieces, counting what got out.
async fn huge(state: &State, stream: &mut TcpStream, content_length: bool) -> io::Result<()> {
    let extra = if content_length {
        format!("Content-Length: {HUGE}\r\n")
    } else {
        "Transfer-Encoding: chunked\r\n".to_owned()
    };
    stream.write_all(head(200, &extra).as_bytes()).await?;
    let mut piece = vec![b'x'; 16 * 1024];
    piece[..20].copy_from_slice(br#"{"access_token":"a","#);
    let mut sent = 0;
    while sent < HUGE {
        if content_length {
            stream.write_all(&piece).await?;
        } else {
            let frame = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece, b"\r\n"].concat();
            stream.write_all(&frame).await?;
        }
        sent += piece.len();
        state.written.store(sent, Ordering::SeqCst);
        piece[..20].fill(b'x');
    }
    if !content_length {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// The `Display` of an error and of each of its sources, joined with `: `.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

fn check_source(expected: Source, oauth: Option<&OAuth2Error>) -> Result<(), String> {
    let ok = match (expected, oauth) {
        (Source::None, None) => true,
        (Source::None, Some(_)) | (_, None) => false,
        (Source::Transport, Some(e)) => e.kind() == &OAuth2ErrorKind::Transport,
        (Source::Status(s), Some(e)) => {
            matches!(e.kind(), OAuth2ErrorKind::Status { .. })
                && e.status().map(|s| s.as_u16()) == Some(s)
        }
        (Source::Server(code, s), Some(e)) => {
            e.error_code() == Some(code) && e.status().map(|s| s.as_u16()) == Some(s)
        }
        (Source::Invalid, Some(e)) => e.kind() == &OAuth2ErrorKind::InvalidResponse,
        (Source::TooLarge, Some(e)) => e.kind() == &OAuth2ErrorKind::BodyTooLarge { limit: LIMIT },
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected source {expected:?}, got {oauth:?}"))
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// The API runs apart from the token endpoint, whose origin a PortSIP provider binds the
/// token to: the API's origin is allowed too.
fn api_origin(api: SocketAddr) -> Origin {
    Origin::try_from(format!("http://{api}").as_str()).unwrap()
}

fn service(endpoint: &Endpoint, api: SocketAddr) -> (BearerAuth<HttpClient>, BearerAuthLayer) {
    let layer = BearerAuthLayer::new(
        TokenCache::builder(endpoint.provider())
            .timeout(TIMEOUT)
            .backoff(Duration::from_millis(1), Duration::from_millis(5))
            .refused_backoff(Duration::from_millis(1), Duration::from_millis(5))
            .build(),
    )
    .allow_origin(api_origin(api));
    (layer.layer(client()), layer)
}

/// Which fetch meets the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The first login.
    Login,
    /// A refresh with the refresh token of a token thrown away, and the login after it.
    Refresh,
}

/// Runs one row; returns how long the failing request took.
async fn run(row: &Row, via: Via) -> Result<Duration, String> {
    let (api, api_addr) = Api::start().await;
    let initial = (via == Via::Login).then(|| row.fault.clone());
    let endpoint = Endpoint::start(api.clone(), initial).await;
    let (svc, layer) = service(&endpoint, api_addr);
    let cache = layer.cache();
    if via == Via::Refresh {
        let response = svc
            .clone()
            .oneshot(get(api_addr))
            .await
            .map_err(|e| format!("first login: {}", chain(&*e)))?;
        ensure!(
            response.status() == StatusCode::OK,
            "first login: {}",
            response.status()
        );
        ensure!(
            cache.token().is_some_and(|t| t.has_refresh_token()),
            "no refresh token"
        );
        endpoint.inject(row.fault.clone()).await;
        cache.invalidate();
    }
    let api_before = api.requests();
    let calls_before = endpoint.requests();

    let started = Instant::now();
    let result = svc.clone().oneshot(get(api_addr)).await;
    let failed_at = Instant::now();
    let took = failed_at - started;
    // What reached the endpoint: a refresh first, if there was a refresh token.
    let grants = endpoint.grants(calls_before);
    let expected_first = match via {
        Via::Login => "password",
        Via::Refresh => "refresh_token",
    };
    ensure!(
        grants.first().is_none_or(|g| g == expected_first),
        "the endpoint saw {grants:?}"
    );
    ensure!(
        grants.is_empty() == matches!(row.fault, Fault::Refused),
        "the endpoint saw {grants:?}"
    );

    let (kind, source, fragment) = match row.expect {
        NoExpiry => {
            let response = result.map_err(|e| format!("failed: {}", chain(&*e)))?;
            ensure!(
                response.status() == StatusCode::OK,
                "status {}",
                response.status()
            );
            let token = cache.token().ok_or("no token cached")?;
            let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
            ensure!(
                token.expires_at().is_none_or(|e| e > far),
                "an absurd lifetime became a near expiry: {token:?}"
            );
            return Ok(took);
        }
        // A failed refresh is followed by a login; when that fails too, the error is the
        // login's, whichever step came first.
        Fails(kind, source, fragment) => (kind, source, fragment),
    };

    let err = match result {
        Ok(response) => return Err(format!("succeeded with {}", response.status())),
        Err(e) => e,
    };
    let token_error = err
        .downcast_ref::<TokenError>()
        .ok_or_else(|| format!("not a TokenError: {err:?}"))?;
    ensure!(
        token_error.kind() == kind,
        "kind {:?}, expected {kind:?}",
        token_error.kind()
    );
    let oauth = token_error
        .source()
        .and_then(|s| s.downcast_ref::<OAuth2Error>());
    check_source(source, oauth)?;
    let text = chain(&*err);
    ensure!(
        text.contains(fragment),
        "message {text:?} lacks {fragment:?}"
    );
    ensure!(text.chars().count() < 1024, "message too long: {text}");
    let display = token_error.to_string();
    // The message alone quotes the provider's error, as the chain does after it.
    if let Some(oauth) = oauth {
        ensure!(
            display.ends_with(&oauth.to_string()),
            "message {display:?} does not quote {oauth}"
        );
    }
    ensure!(
        display.starts_with(char::is_lowercase) && !display.ends_with('.'),
        "message style: {display:?}"
    );
    let debug = format!("{err:?}");
    ensure!(
        !debug.contains(PASSWORD) && !text.contains(PASSWORD),
        "password leaked: {debug}"
    );
    ensure!(
        cache.token().is_none(),
        "a token was cached: {:?}",
        cache.token()
    );
    ensure!(api.requests() == api_before, "the request reached the API");
    // Everything but a hung endpoint answers fast; a refresh and a login may both time out.
    if !matches!(kind, Timeout) {
        ensure!(took < Duration::from_secs(2), "took {took:?}");
    } else {
        ensure!(
            took >= TIMEOUT && took < TIMEOUT * 6,
            "timed out after {took:?}"
        );
    }

    if let Fault::Huge { .. } = row.fault {
        // Refused at the cap: the client hung up long before 10 MiB went out.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !endpoint.state.finished.load(Ordering::SeqCst) {
            ensure!(Instant::now() < deadline, "the endpoint is still writing");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let written = endpoint.state.written.load(Ordering::SeqCst);
        eprintln!("{} ({via:?}): {written} of {HUGE} bytes went out", row.name);
        ensure!(
            written < 2 * 1024 * 1024,
            "{written} bytes went out before the client hung up"
        );
    }

    if let Fault::Reply {
        retry_after: Some(asked),
        ..
    } = row.fault
    {
        let secs = match asked {
            RetryAfter::Seconds(s) | RetryAfter::Date(s) => s,
        };
        let wait = Duration::from_secs(secs);
        let oauth = oauth.ok_or("no OAuth2Error")?;
        ensure!(
            oauth.retry_after() == Some(wait),
            "retry_after {:?}",
            oauth.retry_after()
        );
        // Until the server's pause is over, requests fail at once with the same error and
        // the endpoint hears nothing.
        let calls = endpoint.requests();
        while failed_at.elapsed() < wait.mul_f64(0.8) {
            let err = svc
                .clone()
                .oneshot(get(api_addr))
                .await
                .err()
                .ok_or("succeeded early")?;
            let again = err.downcast_ref::<TokenError>().ok_or("not a TokenError")?;
            ensure!(
                again.kind() == kind,
                "kind {:?} during the pause",
                again.kind()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ensure!(
            endpoint.requests() == calls,
            "called again during Retry-After"
        );
        endpoint.heal();
        tokio::time::sleep_until(failed_at + wait + Duration::from_millis(50)).await;
    } else {
        endpoint.heal();
        // Past the (at most 5 ms) pause.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let response = svc
        .clone()
        .oneshot(get(api_addr))
        .await
        .map_err(|e| format!("after healing: {}", chain(&*e)))?;
    ensure!(
        response.status() == StatusCode::OK,
        "after healing: {}",
        response.status()
    );
    let token = cache.token().ok_or("no token after healing")?;
    ensure!(
        token.access_token().starts_with("healed-"),
        "unexpected token"
    );
    Ok(took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for row in rows() {
        let row = Arc::new(row);
        for via in [Via::Login, Via::Refresh] {
            let row = row.clone();
            tasks.spawn(async move { (row.name, via, run(&row, via).await) });
        }
    }
    let mut failures = Vec::new();
    let mut count = 0;
    while let Some(joined) = tasks.join_next().await {
        count += 1;
        match joined {
            Ok((_, _, Ok(_))) => {}
            Ok((name, via, Err(why))) => failures.push(format!("{name} ({via:?}): {why}")),
            Err(panic) => failures.push(format!("panicked: {panic}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{count} cases in {:?}", started.elapsed());
}

/// 1,000 requests during an outage make a handful of token calls, then the cache recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_costs_a_handful_of_token_calls() {
    let (api, api_addr) = Api::start().await;
    let endpoint = Endpoint::start(api, Some(reply(503, "down for maintenance"))).await;
    // The default backoff: 100 ms, doubling, up to 30 s.
    let layer = BearerAuthLayer::new(endpoint.provider()).allow_origin(api_origin(api_addr));
    let svc = layer.layer(client());

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let svc = svc.clone();
        tasks.spawn(async move {
            for _ in 0..100 {
                let err = svc.clone().oneshot(get(api_addr)).await.unwrap_err();
                let err = err.downcast_ref::<TokenError>().expect("a TokenError");
                assert_eq!(err.kind(), Login);
                let oauth = err.source().unwrap().downcast_ref::<OAuth2Error>().unwrap();
                assert_eq!(oauth.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
    }
    while let Some(task) = tasks.join_next().await {
        task.unwrap();
    }
    let outage = started.elapsed();
    let calls = endpoint.requests();
    eprintln!("1000 requests over {outage:?}: {calls} token calls");
    // Pauses of 50-100, 100-200, 200-400, 400-800 ms...: about five calls in 1.5 s.
    assert!((1..=8).contains(&calls), "{calls} token calls");
    assert!(layer.cache().token().is_none());

    endpoint.heal();
    // The pause in force may last up to 1.6 s; requests fail fast until it ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    let response = loop {
        match svc.clone().oneshot(get(api_addr)).await {
            Ok(response) => break response,
            Err(e) => {
                assert!(e.downcast_ref::<TokenError>().is_some());
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(endpoint.requests(), calls + 1, "one login after the pause");
}
