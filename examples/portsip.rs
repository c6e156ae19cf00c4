//! A PortSIP REST API client behind `BearerAuthLayer`, printing a timeline of its requests,
//! logins and refreshes.
//!
//! With no arguments it starts an embedded PortSIP-compatible server on 127.0.0.1 (tokens
//! live 5 s, refresh tokens rotate) and runs the client against it:
//!
//! ```sh
//! cargo run --example portsip
//! cargo run --example portsip -- --duration 6
//! ```
//!
//! Against a real PBX (or any compatible server):
//!
//! ```sh
//! cargo run --example portsip -- --base-url https://pbx.example.com:8887 \
//!     --username admin --password 's3cret' [--domain tenant.example.com] \
//!     [--path /api/...] [--ca-cert pbx-ca.pem]
//! ```
//!
//! Exits 0 only when every request succeeded; a refused login ends it at once with exit code
//! 1 and the server's error text.

use std::{
    error::Error,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, TokenError, TokenResponse,
    client::HttpClient,
    provider::{BoxFuture, TokenProvider, oauth2::OAuth2Error, portsip::PortSip},
    test_server::{TestServer, TestServerConfig},
};

const USAGE: &str = "\
usage: portsip [--duration SECS] [--interval MS]
       portsip --base-url URL --username U --password P [--domain D] [--path /api/...]
               [--ca-cert PEM] [--duration SECS] [--interval MS]

With no --base-url, runs against an embedded PortSIP-compatible server.
  --duration SECS   how long to send requests (default 15)
  --interval MS     pause between requests (default 500)
  --path PATH       the protected resource to GET (default /api/account/extensions)
  --ca-cert PEM     also trust the CA certificates in this PEM file";

const DEFAULT_PATH: &str = "/api/account/extensions";

struct Args {
    base_url: Option<String>,
    username: Option<String>,
    password: Option<String>,
    domain: Option<String>,
    path: String,
    ca_cert: Option<String>,
    duration: Duration,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        base_url: None,
        username: None,
        password: None,
        domain: None,
        path: DEFAULT_PATH.to_owned(),
        ca_cert: None,
        duration: Duration::from_secs(15),
        interval: Duration::from_millis(500),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--base-url" => args.base_url = Some(value()?),
            "--username" => args.username = Some(value()?),
            "--password" => args.password = Some(value()?),
            "--domain" => args.domain = Some(value()?),
            "--path" => args.path = value()?,
            "--ca-cert" => args.ca_cert = Some(value()?),
            "--duration" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|_| "--duration needs a number of seconds")?;
                args.duration = Duration::try_from_secs_f64(secs)
                    .map_err(|_| "--duration needs a number of seconds")?;
            }
            "--interval" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|_| "--interval needs a number of milliseconds")?;
                args.interval = Duration::from_millis(ms.max(1));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.base_url.is_some() && (args.username.is_none() || args.password.is_none()) {
        return Err("--base-url needs --username and --password".into());
    }
    if args.base_url.is_none() && (args.username.is_some() || args.password.is_some()) {
        return Err("--username and --password need --base-url".into());
    }
    if !args.path.starts_with('/') {
        return Err("--path must start with `/`".into());
    }
    Ok(args)
}

/// Prints lines stamped with the time since the start.
#[derive(Clone, Copy)]
struct Timeline {
    start: Instant,
}

impl Timeline {
    fn log(&self, message: impl std::fmt::Display) {
        let t = self.start.elapsed().as_secs_f64();
        println!("[{t:>7.3}s] {message}");
    }
}

/// A provider that prints and counts every login, refresh and revoke of the one it wraps.
struct Observed<P> {
    inner: P,
    timeline: Timeline,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    failed: AtomicUsize,
}

impl<P> Observed<P> {
    fn report(&self, what: &str, result: &Result<TokenResponse, BoxError>) {
        match result {
            Ok(token) => {
                let life = match (token.expires_in(), token.expires_at()) {
                    (Some(d), _) => format!("valid {} s", d.as_secs()),
                    (None, Some(at)) => format!(
                        "valid {} s",
                        at.duration_since(SystemTime::now())
                            .unwrap_or_default()
                            .as_secs()
                    ),
                    (None, None) => "no expiry given".to_owned(),
                };
                let refresh = if token.refresh_token().is_some() {
                    "with a refresh token"
                } else {
                    "without a refresh token"
                };
                self.timeline.log(format_args!(
                    "  {what} → new access token, {life}, {refresh}"
                ));
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                self.timeline.log(format_args!("  {what} → failed: {e}"));
            }
        }
    }
}

impl<P: TokenProvider> TokenProvider for Observed<P> {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            self.logins.fetch_add(1, Ordering::SeqCst);
            let result = self.inner.login().await;
            self.report("login (password grant)", &result);
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
            self.report("refresh (refresh_token grant)", &result);
            result
        })
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let result = self.inner.revoke(access_token, refresh_token).await;
            match &result {
                Ok(()) => self.timeline.log("  revoke → token revoked (logged out)"),
                Err(e) => self.timeline.log(format_args!("  revoke → failed: {e}")),
            }
            result
        })
    }
}

/// Whether `err` is a login the server refused for good (wrong credentials, unknown client).
fn refused_login(err: &BoxError) -> Option<&OAuth2Error> {
    let token_error = err.downcast_ref::<TokenError>()?;
    let oauth = token_error.source()?.downcast_ref::<OAuth2Error>()?;
    (!oauth.is_transient()).then_some(oauth)
}

fn plural(n: usize, what: &str) -> String {
    match (n, what.ends_with('h')) {
        (1, _) => format!("1 {what}"),
        (_, true) => format!("{n} {what}es"),
        (_, false) => format!("{n} {what}s"),
    }
}

fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprintln!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {}", chain(&*e));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool, BoxError> {
    let timeline = Timeline {
        start: Instant::now(),
    };

    // The server: embedded, or the one given on the command line.
    let (server, base_url, username, password, domain) = match &args.base_url {
        Some(url) => (
            None,
            url.clone(),
            args.username.clone().unwrap_or_default(),
            args.password.clone().unwrap_or_default(),
            args.domain.clone(),
        ),
        None => {
            // A password that must survive form encoding: & = + % space and non-ASCII.
            let password = "p&ss=w+rd %20 ünïcødé";
            let mut config = TestServerConfig::new("admin", password);
            if let Some(domain) = &args.domain {
                config = config.domain(domain.clone());
            }
            let server = TestServer::start(config).await?;
            timeline.log(format_args!(
                "embedded PortSIP-compatible server at {} (tokens live 5 s, refresh tokens rotate)",
                server.base_url()
            ));
            let base = server.base_url();
            (
                Some(server),
                base,
                "admin".to_owned(),
                password.to_owned(),
                args.domain.clone(),
            )
        }
    };

    // The HTTP client, shared by the token endpoint and the API calls.
    let mut builder = HttpClient::builder();
    if server.is_none() {
        builder = builder.native_roots(true);
    }
    if let Some(pem) = &args.ca_cert {
        builder = builder.add_ca_pem_file(pem);
    }
    let http = builder.build()?;

    // The five lines a PortSIP user writes, plus the observing wrapper.
    let mut portsip = PortSip::new(base_url.clone(), username.clone(), password);
    if let Some(domain) = domain {
        portsip = portsip.domain(domain);
    }
    let provider = Arc::new(Observed {
        inner: portsip.build_with(http.clone())?,
        timeline,
        logins: AtomicUsize::new(0),
        refreshes: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    let layer = BearerAuthLayer::new(provider.clone()).timeout(Duration::from_secs(10));
    let cache = layer.cache();
    let mut pbx = ServiceBuilder::new().layer(layer).service(http);

    timeline.log(format_args!(
        "client: {username} at {base_url}, GET {} every {} ms for {} s",
        args.path,
        args.interval.as_millis(),
        args.duration.as_secs_f64()
    ));

    let url = format!("{}{}", base_url.trim_end_matches('/'), args.path);
    let (mut sent, mut ok, mut failed) = (0usize, 0usize, 0usize);
    let deadline = timeline.start + args.duration;
    let mut refused = false;
    while Instant::now() < deadline {
        let request = Request::get(&url).body(Full::<Bytes>::default())?;
        sent += 1;
        let started = Instant::now();
        let call = pbx.ready().await?.call(request);
        let result = tokio::time::timeout(Duration::from_secs(15), call).await;
        let ms = started.elapsed().as_millis();
        match result {
            Ok(Ok(response)) => {
                let status = response.status();
                let body = response.into_body().collect().await.map(|b| b.to_bytes());
                let generation = cache.token().map_or(0, |t| t.generation());
                if status.is_success() {
                    ok += 1;
                    timeline.log(format_args!(
                        "GET {} → {status} in {ms} ms (cached token #{generation})",
                        args.path
                    ));
                } else {
                    failed += 1;
                    let text: String = body
                        .map(|b| String::from_utf8_lossy(&b).chars().take(200).collect())
                        .unwrap_or_default();
                    timeline.log(format_args!(
                        "GET {} → {status} in {ms} ms: {}",
                        args.path,
                        text.trim()
                    ));
                    if status == StatusCode::UNAUTHORIZED {
                        // The server no longer takes the token: get another one.
                        cache.invalidate();
                        timeline.log("  token invalidated; the next request gets a new one");
                    }
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                timeline.log(format_args!("GET {} → error: {}", args.path, chain(&*e)));
                if let Some(oauth) = refused_login(&e) {
                    let text = oauth
                        .error_description()
                        .map(str::to_owned)
                        .unwrap_or_else(|| oauth.to_string());
                    eprintln!(
                        "error: the server refused the login ({}): {text}",
                        oauth.error_code().unwrap_or("no error code")
                    );
                    refused = true;
                    break;
                }
            }
            Err(_) => {
                failed += 1;
                timeline.log(format_args!("GET {} → timed out after {ms} ms", args.path));
            }
        }
        tokio::time::sleep(args.interval).await;
    }

    // A clean logout.
    if !refused {
        if let Err(e) = cache.revoke().await {
            timeline.log(format_args!("revoke failed: {}", chain(&e)));
        }
    }

    let logins = provider.logins.load(Ordering::SeqCst);
    let refreshes = provider.refreshes.load(Ordering::SeqCst);
    let token_failures = provider.failed.load(Ordering::SeqCst);
    println!();
    println!(
        "summary: {}, {ok} succeeded, {failed} failed; {}, {}, {}",
        plural(sent, "request"),
        plural(logins, "login"),
        plural(refreshes, "refresh"),
        plural(token_failures, "failed token call"),
    );
    let mut consistent = true;
    if let Some(server) = &server {
        println!(
            "server:  {}, {}, {}, {} answered 401, {}",
            plural(server.counts().password_grants, "password grant"),
            plural(server.counts().refresh_grants, "refresh grant"),
            plural(server.counts().api_requests, "API request"),
            server.counts().unauthorized,
            plural(server.counts().revocations, "revocation"),
        );
        consistent = server.counts().password_grants == logins
            && server.counts().refresh_grants == refreshes
            && server.counts().api_requests == sent
            && server.counts().unauthorized == 0;
        if !consistent {
            println!("the server's counters disagree with the client's");
        }
    }
    let success = sent > 0 && failed == 0 && consistent && !refused;
    println!("{}", if success { "ok" } else { "FAILED" });
    Ok(success)
}
