//! A PortSIP REST API client behind `BearerAuthLayer`, printing a timeline of its requests,
//! logins and refreshes.
//!
//! With no arguments it starts an embedded PortSIP-compatible server on 127.0.0.1 that, like
//! a v22.3 PBX, serves both the sign-in API and the OAuth token endpoint (tokens live 5 s,
//! refresh tokens rotate), and runs the client against it. The output says which API the
//! preset chose; `--server-api oauth` makes the server an older PBX without the sign-in API
//! (the preset then falls back after one `404`), `--server-api sign-in` a v22 PBX without
//! the OAuth endpoint:
//!
//! ```sh
//! cargo run --example portsip
//! cargo run --example portsip -- --duration 6
//! cargo run --example portsip -- --duration 6 --server-api oauth
//! ```
//!
//! Against a real PBX (or any compatible server), with the API chosen automatically or by
//! `--api`:
//!
//! ```sh
//! cargo run --example portsip -- --base-url https://pbx.example.com:8887 \
//!     --username admin --password 's3cret' [--domain tenant.example.com] \
//!     [--api auto|sign-in|oauth] [--prompt-code] [--path /api/...] [--ca-cert pbx-ca.pem]
//! ```
//!
//! A user with two-factor sign-in fails at once with a message saying so, unless
//! `--prompt-code` is given: the example then asks for the code PortSIP e-mails.
//!
//! Each request is labelled with a fingerprint of the token it carried (the first six hex
//! digits of a hash, never the token), and each login and refresh with the fingerprint of the
//! token it brought, so the timeline shows which token each request used. A token is
//! refreshed ahead of its expiry: 30 s before it by default, but never later than half its
//! life, so the embedded server's 5 s tokens are refreshed after at most 2.5 s (and a little
//! earlier, at random, so that clients started together don't refresh together), while the
//! requests go on with the still-valid token.
//!
//! Exits 0 only when every request succeeded; a refused login ends it at once with exit code
//! 1 and the server's error text.

use std::{
    error::Error,
    hash::{DefaultHasher, Hash, Hasher},
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use http::{Request, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError, Origin, TokenError, TokenResponse,
    client::HttpClient,
    provider::{
        BoxFuture, TokenProvider,
        portsip::{PortSip, PortSipApi, PortSipProvider},
    },
    test_server::{TestServer, TestServerConfig},
};

const USAGE: &str = "\
usage: portsip [--duration SECS] [--interval MS] [--revoke-every MS]
               [--server-api both|sign-in|oauth] [--api auto|sign-in|oauth]
       portsip --base-url URL --username U --password P [--domain D] [--path /api/...]
               [--api auto|sign-in|oauth] [--prompt-code] [--ca-cert PEM]
               [--duration SECS] [--interval MS]

With no --base-url, runs against an embedded PortSIP-compatible server.
  --duration SECS   how long to send requests (default 15)
  --interval MS     pause between requests (default 500)
  --api API         the login API: auto (the default: the sign-in API, or the OAuth
                    token endpoint if the PBX has no sign-in API), sign-in or oauth
  --server-api APIS what the embedded server serves: both (the default, as v22.3 does),
                    sign-in (a v22 PBX without the OAuth endpoint) or oauth (a PBX
                    before v22.2.11)
  --revoke-every MS the embedded server ends every session this often, as a PBX that
                    restarts does: the layer replays each refused request with a new token
  --prompt-code     for a user with two-factor sign-in: ask for the e-mailed code
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
    revoke_every: Option<Duration>,
    api: PortSipApi,
    /// What the embedded server serves: the sign-in API, the OAuth token endpoint.
    server_apis: (bool, bool),
    prompt_code: bool,
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
        revoke_every: None,
        api: PortSipApi::Auto,
        server_apis: (true, true),
        prompt_code: false,
    };
    let mut server_api_given = false;
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
            "--api" => {
                args.api = match value()?.as_str() {
                    "auto" => PortSipApi::Auto,
                    "sign-in" => PortSipApi::SignIn,
                    "oauth" => PortSipApi::OAuth,
                    _ => return Err("--api takes auto, sign-in or oauth".into()),
                }
            }
            "--server-api" => {
                server_api_given = true;
                args.server_apis = match value()?.as_str() {
                    "both" => (true, true),
                    "sign-in" => (true, false),
                    "oauth" => (false, true),
                    _ => return Err("--server-api takes both, sign-in or oauth".into()),
                }
            }
            "--prompt-code" => args.prompt_code = true,
            "--revoke-every" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|_| "--revoke-every needs a number of milliseconds")?;
                args.revoke_every = Some(Duration::from_millis(ms.max(1)));
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
    if args.base_url.is_some() && server_api_given {
        return Err("--server-api is for the embedded server".into());
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

/// A short label for a token, safe to print: the first six hex digits of a hash of it.
fn fingerprint(token: &str) -> String {
    let mut hasher = DefaultHasher::new();
    token.hash(&mut hasher);
    format!("{:016x}", hasher.finish())[..6].to_owned()
}

/// The fingerprint of the bearer token a request carried, put on its response by
/// [`tagged`].
#[derive(Clone)]
struct Carried(Option<String>);

/// The HTTP client under the layer, which notes on each response the token its request
/// carried: the layer set the header, so this is the token the server really saw.
fn tagged(
    http: HttpClient,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<hyper::body::Incoming>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |request: Request<Full<Bytes>>| {
        let carried = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(fingerprint);
        let response = http.clone().oneshot(request);
        async move {
            let mut response = response.await?;
            response.extensions_mut().insert(Carried(carried));
            Ok::<_, BoxError>(response)
        }
    })
}

/// The PortSIP provider, printing and counting every login, refresh and revoke, and saying
/// which API it uses.
struct Observed {
    inner: PortSipProvider<HttpClient>,
    timeline: Timeline,
    /// Whether the API in use has been announced.
    announced: AtomicBool,
    logins: AtomicUsize,
    refreshes: AtomicUsize,
    failed: AtomicUsize,
    /// When the current token arrived, and how long it was valid for.
    current: Mutex<Option<(Instant, Option<Duration>)>>,
}

impl Observed {
    fn new(inner: PortSipProvider<HttpClient>, timeline: Timeline) -> Self {
        Self {
            inner,
            timeline,
            announced: AtomicBool::new(false),
            logins: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            current: Mutex::new(None),
        }
    }

    /// What a login or refresh is called on the API in use.
    fn call(&self, refresh: bool) -> &'static str {
        match (self.inner.chosen_api(), refresh) {
            (Some(PortSipApi::OAuth), false) => "login (OAuth token endpoint, password grant)",
            (Some(PortSipApi::OAuth), true) => {
                "refresh (OAuth token endpoint, refresh_token grant)"
            }
            (_, false) => "sign-in (POST /api/auth/sign_in)",
            (_, true) => "refresh (POST /api/auth/refresh_token)",
        }
    }

    /// Says, once, which API the preset uses.
    fn announce(&self) {
        let Some(api) = self.inner.chosen_api() else {
            return;
        };
        if self.announced.swap(true, Ordering::SeqCst) {
            return;
        }
        let how = match (self.inner.api(), api) {
            (PortSipApi::Auto, PortSipApi::OAuth) => {
                "the PBX has no sign-in API (404 at /api/auth/sign_in): the preset uses the \
                 OAuth token endpoint from now on"
            }
            (PortSipApi::Auto, _) => "the PBX serves the sign-in API: the preset uses it",
            (_, PortSipApi::OAuth) => {
                "the preset uses the OAuth token endpoint, as told (--api oauth)"
            }
            _ => "the preset uses the sign-in API, as told (--api sign-in)",
        };
        self.timeline.log(format_args!("  API: {how}"));
    }

    fn report(&self, what: &str, result: &Result<TokenResponse, BoxError>) {
        match result {
            Ok(token) => {
                let lifetime = token.expires_in().or_else(|| {
                    let at = token.expires_at()?;
                    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
                });
                let life = match lifetime {
                    Some(d) => format!("valid {} s", d.as_secs()),
                    None => "no expiry given".to_owned(),
                };
                let refresh = if token.refresh_token().is_some() {
                    "with a refresh token"
                } else {
                    "without a refresh token"
                };
                *self.current.lock().unwrap() = Some((Instant::now(), lifetime));
                self.timeline.log(format_args!(
                    "  {what} → new access token {}, {life}, {refresh}",
                    fingerprint(token.access_token())
                ));
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                self.timeline.log(format_args!("  {what} → failed: {e}"));
            }
        }
        self.announce();
    }

    /// Why the cache is refreshing now: how old the token is, against its life.
    fn explain_refresh(&self) {
        let current = *self.current.lock().unwrap();
        if let Some((issued, Some(life))) = current {
            self.timeline.log(format_args!(
                "  the token is {:.2} s old of its {} s: past its refresh point (30 s before \
                 expiry, or half its life if that comes first, a little earlier at random)",
                issued.elapsed().as_secs_f64(),
                life.as_secs()
            ));
        }
    }
}

impl TokenProvider for Observed {
    fn login(&self) -> BoxFuture<'_, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            self.logins.fetch_add(1, Ordering::SeqCst);
            let result = self.inner.login().await;
            self.report(self.call(false), &result);
            result
        })
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a str,
    ) -> BoxFuture<'a, Result<TokenResponse, BoxError>> {
        Box::pin(async move {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            self.explain_refresh();
            let result = self.inner.refresh(refresh_token).await;
            self.report(self.call(true), &result);
            result
        })
    }

    fn retry_after(&self, error: &(dyn Error + 'static)) -> Option<Duration> {
        self.inner.retry_after(error)
    }

    fn revoke<'a>(
        &'a self,
        access_token: &'a str,
        refresh_token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let result = self.inner.revoke(access_token, refresh_token).await;
            match &result {
                Ok(()) => self.timeline.log(format_args!(
                    "  {} → token {} revoked (logged out)",
                    match self.inner.chosen_api() {
                        Some(PortSipApi::OAuth) => "revoke (POST /api/login/oauth/revoke)",
                        _ => "sign-out (POST /api/auth/sign_out)",
                    },
                    fingerprint(access_token)
                )),
                Err(e) => self.timeline.log(format_args!("  revoke → failed: {e}")),
            }
            result
        })
    }

    fn origin(&self) -> Option<Origin> {
        self.inner.origin()
    }
}

/// The error, when the PBX refused the login for good: wrong credentials, an unknown
/// client, a refused one-time code, or a two-factor user without `--prompt-code`.
fn refused_login(err: &BoxError) -> Option<&TokenError> {
    let token_error = TokenError::find(&**err)?;
    token_error.credentials_rejected().then_some(token_error)
}

/// Reads the one-time code a two-factor sign-in needs from the terminal.
async fn prompt_code(user: String) -> Result<String, BoxError> {
    let line = tokio::task::spawn_blocking(move || {
        eprint!("two-factor sign-in: the one-time code PortSIP e-mailed to {user}: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    Ok(line.await??)
}

fn plural(n: usize, what: &str) -> String {
    match (n, what.ends_with('h')) {
        (1, _) => format!("1 {what}"),
        (_, true) => format!("{n} {what}es"),
        (_, false) => format!("{n} {what}s"),
    }
}

/// An error's message and those of its sources, each left out when the message before it
/// already ends with it (a `TokenError` quotes its cause).
fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let message = e.to_string();
        if !out.ends_with(&message) {
            out.push_str(": ");
            out.push_str(&message);
        }
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
            let (sign_in, oauth) = args.server_apis;
            let mut config = TestServerConfig::new("admin", password)
                .sign_in_api(sign_in)
                .oauth_api(oauth);
            if let Some(domain) = &args.domain {
                config = config.domain(domain.clone());
            }
            let server = Arc::new(TestServer::start(config).await?);
            let serves = match args.server_apis {
                (true, true) => "the sign-in API and the OAuth token endpoint, as v22.3 does",
                (true, false) => "the sign-in API only, as a v22 PBX without the OAuth endpoint",
                _ => "the OAuth token endpoint only, as a PBX before v22.2.11",
            };
            timeline.log(format_args!(
                "embedded PortSIP-compatible server at {} serving {serves} (tokens live 5 s, \
                 refresh tokens rotate)",
                server.base_url()
            ));
            if let Some(every) = args.revoke_every {
                timeline.log(format_args!(
                    "the server ends every session each {} ms",
                    every.as_millis()
                ));
                let server = Arc::downgrade(&server);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        let Some(server) = server.upgrade() else {
                            break;
                        };
                        server.revoke_all();
                        timeline.log("server: every session ended");
                    }
                });
            }
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
    let mut portsip = PortSip::new(base_url.clone(), username.clone(), password).api(args.api);
    if let Some(domain) = domain {
        portsip = portsip.domain(domain);
    }
    if args.prompt_code {
        portsip = portsip.one_time_code(|challenge| prompt_code(challenge.username().to_owned()));
    }
    let provider = Arc::new(Observed::new(portsip.build_with(http.clone())?, timeline));
    // Time to read an e-mail and type the code, with --prompt-code.
    let timeout = Duration::from_secs(if args.prompt_code { 300 } else { 10 });
    let layer = BearerAuthLayer::new(
        TokenCache::builder(provider.clone())
            .timeout(timeout)
            .build(),
    );
    let cache = layer.cache();
    let mut pbx = ServiceBuilder::new().layer(layer).service(tagged(http));

    timeline.log(format_args!(
        "client: {username} at {base_url}, login API {} ({}), GET {} every {} ms for {} s",
        args.api,
        match args.api {
            PortSipApi::SignIn => "the sign-in API",
            PortSipApi::OAuth => "the OAuth token endpoint",
            _ => "the sign-in API, or the OAuth token endpoint if the PBX lacks it",
        },
        args.path,
        args.interval.as_millis(),
        args.duration.as_secs_f64()
    ));
    timeline.log(
        "tokens are refreshed 30 s before they expire, or at half their life if that comes \
         first (a little earlier at random), while requests go on with the current one",
    );

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
                let carried = match response.extensions().get::<Carried>() {
                    Some(Carried(Some(fingerprint))) => format!("token {fingerprint}"),
                    _ => "no token".to_owned(),
                };
                let body = response.into_body().collect().await.map(|b| b.to_bytes());
                if status.is_success() {
                    ok += 1;
                    timeline.log(format_args!(
                        "GET {} → {status} in {ms} ms, with {carried}",
                        args.path
                    ));
                } else {
                    failed += 1;
                    let text: String = body
                        .map(|b| String::from_utf8_lossy(&b).chars().take(200).collect())
                        .unwrap_or_default();
                    timeline.log(format_args!(
                        "GET {} → {status} in {ms} ms, with {carried}: {}",
                        args.path,
                        text.trim()
                    ));
                    if status == StatusCode::UNAUTHORIZED {
                        // The layer has already dropped the refused token.
                        timeline
                            .log("  the layer dropped that token; the next request gets a new one");
                    }
                }
            }
            Ok(Err(e)) => {
                failed += 1;
                timeline.log(format_args!("GET {} → error: {}", args.path, chain(&*e)));
                if let Some(error) = refused_login(&e) {
                    let why = if error.two_factor_required() {
                        "the user signs in with a one-time code (try --prompt-code)"
                    } else {
                        "refused credentials"
                    };
                    eprintln!("error: the PBX refused the login, {why}: {error}");
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

    let api = match provider.inner.chosen_api() {
        Some(PortSipApi::SignIn) => "the sign-in API",
        Some(PortSipApi::OAuth) => "the OAuth token endpoint",
        _ => "no API yet",
    };
    let logins = provider.logins.load(Ordering::SeqCst);
    let refreshes = provider.refreshes.load(Ordering::SeqCst);
    let token_failures = provider.failed.load(Ordering::SeqCst);
    println!();
    println!(
        "summary: {}, {ok} succeeded, {failed} failed; {}, {}, {}, through {api}",
        plural(sent, "request"),
        plural(logins, "login"),
        plural(refreshes, "refresh"),
        plural(token_failures, "failed token call"),
    );
    let mut consistent = true;
    if let Some(server) = &server {
        let counts = server.counts();
        println!(
            "server:  {} ({} at the sign-in API), {} ({}), {}, {} answered 401, {} ({}), \
             {} answered 404",
            plural(counts.password_grants, "login"),
            counts.sign_ins,
            plural(counts.refresh_grants, "refresh"),
            counts.sign_in_refreshes,
            plural(counts.api_requests, "API request"),
            counts.unauthorized,
            plural(counts.revocations, "logout"),
            counts.sign_outs,
            counts.not_found,
        );
        // The API the preset chose got every call; the other, none but one 404 at most.
        let on_sign_in = provider.inner.chosen_api() == Some(PortSipApi::SignIn);
        let sign_in_calls = counts.sign_ins + counts.sign_in_refreshes + counts.sign_outs;
        let one_api = if on_sign_in {
            sign_in_calls == counts.password_grants + counts.refresh_grants + counts.revocations
        } else {
            sign_in_calls == 0
        };
        consistent = counts.password_grants == logins
            && counts.refresh_grants == refreshes
            && one_api
            && counts.not_found <= 1
            && (args.revoke_every.is_some() || counts.failed_token_requests == 0)
            // Each refused request was sent once more.
            && counts.api_requests == sent + counts.unauthorized
            && (args.revoke_every.is_some() || counts.unauthorized == 0);
        if !consistent {
            println!("the server's counters disagree with the client's");
        }
    }
    let success = sent > 0 && failed == 0 && consistent && !refused;
    println!("{}", if success { "ok" } else { "FAILED" });
    Ok(success)
}
