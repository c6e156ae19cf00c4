//! A command-line tool that keeps its token in a file (`FileStore`), so that it does not log
//! in on every run.
//!
//! With no arguments it starts an embedded PortSIP-compatible server on 127.0.0.1 (tokens
//! live 2 s, refresh tokens rotate) and runs itself three times against it, as a cron job
//! would: the first run logs in, the second finds the token in the file, the third, after the
//! token has expired, refreshes it with the refresh token in the file. One login in all:
//!
//! ```sh
//! cargo run --example cli_file_store
//! ```
//!
//! One run against a real PBX (or any compatible server), with the password in the
//! environment rather than on the command line, where other users could see it:
//!
//! ```sh
//! CLI_FILE_STORE_PASSWORD='s3cret' cargo run --example cli_file_store -- \
//!     --base-url https://pbx.example.com:8887 --username admin \
//!     --token-file ~/.cache/pbx-cli/token.json [--path /api/...]
//! ```
//!
//! Exits 0 when every run's request succeeded (and, with the embedded server, the three runs
//! logged in once).

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer_auth::TokenCache;
use tower_bearer_auth::{
    BearerAuthLayer, BoxError,
    client::HttpClient,
    provider::portsip::PortSip,
    store::{FileStore, TokenStore},
    test_server::{TestServer, TestServerConfig},
};

const USAGE: &str = "\
usage: cli_file_store
       cli_file_store --base-url URL --username U --token-file PATH [--path /api/...]
                      (the password in CLI_FILE_STORE_PASSWORD)

With no arguments, runs itself three times against an embedded PortSIP-compatible server.";

const DEFAULT_PATH: &str = "/api/account/extensions";
const PASSWORD_VAR: &str = "CLI_FILE_STORE_PASSWORD";
/// The embedded server's user, and its tokens' lifetime.
const DEMO_USER: &str = "admin";
const DEMO_PASSWORD: &str = "s3cret";
const DEMO_LIFETIME: Duration = Duration::from_secs(2);

/// One run's settings.
struct Run {
    base_url: String,
    username: String,
    token_file: PathBuf,
    path: String,
}

fn parse_args() -> Result<Option<Run>, String> {
    let mut args = std::env::args().skip(1);
    let (mut base_url, mut username, mut token_file) = (None, None, None);
    let mut path = DEFAULT_PATH.to_owned();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--base-url" => base_url = Some(value()?),
            "--username" => username = Some(value()?),
            "--token-file" => token_file = Some(PathBuf::from(value()?)),
            "--path" => path = value()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    match (base_url, username, token_file) {
        (None, None, None) => Ok(None),
        (Some(base_url), Some(username), Some(token_file)) => Ok(Some(Run {
            base_url,
            username,
            token_file,
            path,
        })),
        _ => Err("--base-url, --username and --token-file go together".to_owned()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match parse_args() {
        Ok(Some(run)) => one_run(run).await,
        Ok(None) => demo().await,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// One run of the tool: one request, with the token from the file if it is usable.
async fn one_run(run: Run) -> Result<(), BoxError> {
    let password = std::env::var(PASSWORD_VAR).map_err(|_| format!("{PASSWORD_VAR} is not set"))?;
    let store = FileStore::new(&run.token_file);
    // Only to tell what the run found; the cache reads the file itself.
    let found = match store.load().await {
        Ok(Some(stored)) => format!("version {} in the file", stored.version()),
        Ok(None) => "no token file".to_owned(),
        Err(error) => format!("an unusable token file ({error})"),
    };

    // The PortSIP provider binds the token to the PBX's origin: it is sent nowhere else.
    let provider = PortSip::new(&run.base_url, &run.username, password).build()?;
    let layer = BearerAuthLayer::new(TokenCache::builder(provider).store(store).build());
    let client = ServiceBuilder::new()
        .layer(layer)
        .service(HttpClient::new());

    let request =
        Request::get(format!("{}{}", run.base_url, run.path)).body(Full::<Bytes>::default())?;
    let response = client.oneshot(request).await?;
    let stored = FileStore::new(&run.token_file).load().await?;
    let version = stored.as_ref().map(|s| s.version());
    let left = (stored.as_ref())
        .and_then(|s| s.token()?.expires_at())
        .map(|e| e.duration_since(SystemTime::now()).unwrap_or_default());
    println!(
        "  found {found}; GET {} -> {}; now version {} in the file, {} left",
        run.path,
        response.status(),
        version.map_or("none".to_owned(), |v| v.to_string()),
        left.map_or("no expiry".to_owned(), |l| format!(
            "{:.1} s",
            l.as_secs_f64()
        )),
    );
    if !response.status().is_success() {
        return Err(format!("the server answered {}", response.status()).into());
    }
    Ok(())
}

/// Runs this program three times against an embedded server.
async fn demo() -> Result<(), BoxError> {
    let config = TestServerConfig::new(DEMO_USER, DEMO_PASSWORD).lifetime(DEMO_LIFETIME);
    let server = TestServer::start(config).await?;
    let dir = std::env::temp_dir().join(format!("cli-file-store-{}", std::process::id()));
    let token_file = dir.join("token.json");
    println!(
        "embedded server at {}, tokens live {} s; token file {}",
        server.base_url(),
        DEMO_LIFETIME.as_secs(),
        token_file.display()
    );

    let mut ok = true;
    for run in 1..=3 {
        if run == 3 {
            println!("(waiting until the stored token has expired)");
            wait_for_expiry(&token_file).await?;
        }
        println!("run {run}:");
        ok &= run_self(&server, &token_file).await?;
        let counts = server.counts();
        println!(
            "  server so far: {} login(s), {} refresh(es)",
            counts.password_grants, counts.refresh_grants
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)?.permissions().mode();
        println!("token file mode: {:04o}", mode & 0o7777);
    }
    let _ = std::fs::remove_dir_all(&dir);

    let counts = server.counts();
    println!(
        "three runs: {} login, {} refresh",
        counts.password_grants, counts.refresh_grants
    );
    if !ok {
        return Err("a run failed".into());
    }
    if counts.password_grants != 1 {
        return Err(format!("expected 1 login, saw {}", counts.password_grants).into());
    }
    Ok(())
}

/// Starts this program again for one run, and waits for it.
async fn run_self(server: &TestServer, token_file: &Path) -> Result<bool, BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--base-url", &server.base_url()])
        .args(["--username", DEMO_USER])
        .arg("--token-file")
        .arg(token_file)
        .env(PASSWORD_VAR, DEMO_PASSWORD);
    let status = tokio::task::spawn_blocking(move || command.status()).await??;
    Ok(status.success())
}

/// Sleeps until the token in `token_file` has expired.
async fn wait_for_expiry(token_file: &Path) -> Result<(), BoxError> {
    let stored = FileStore::new(token_file).load().await?;
    let expires = stored
        .as_ref()
        .and_then(|s| s.token())
        .and_then(|t| t.expires_at());
    if let Some(left) = expires.and_then(|e| e.duration_since(SystemTime::now()).ok()) {
        tokio::time::sleep(left + Duration::from_millis(100)).await;
    }
    Ok(())
}
