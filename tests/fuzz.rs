//! Property tests of the parsers that read what servers send: token responses and
//! `WWW-Authenticate` challenges. Inputs are the seed corpus under `tests/corpus/`, mutated,
//! plus random bytes and generated JSON. Nothing may panic, and a parsed token response either
//! yields a token that can be sent or a typed error.
//!
//! The default run is short; run longer with, for example,
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz`.

use std::{fs, path::Path, sync::OnceLock};

use proptest::prelude::*;
use serde_json::{Value, json};
use tower_bearer_auth::{BearerAuthLayer, BearerChallenge, BoxError, TokenResponse, provider_fn};

fn seeds(dir: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut seeds: Vec<Vec<u8>> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A seed with a few random byte edits, or random bytes.
fn inputs(dir: &str) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8);
    let mutated = (prop::sample::select(seeds(dir)), edits).prop_map(|(mut s, edits)| {
        for (at, byte, op) in edits {
            let at = at % (s.len() + 1);
            match op {
                0 if at < s.len() => s[at] = byte,
                1 => s.insert(at, byte),
                _ if at < s.len() => {
                    s.remove(at);
                }
                _ => {}
            }
        }
        s
    });
    prop_oneof![3 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..256)]
}

/// JSON values of the kinds servers put in token fields, the odd ones included.
fn field() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[0-9]{0,25}".prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[ -~]{0,40}".prop_map(Value::from),
        Just(json!([1, 2])),
        Just(json!({"a": 1})),
    ]
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Puts `response` through a cache: a token that can be sent, or a typed error.
fn through_cache(response: TokenResponse) {
    runtime().block_on(async move {
        let layer = BearerAuthLayer::new(provider_fn(move || {
            let response = response.clone();
            async move { Ok::<_, BoxError>(response) }
        }));
        match layer.cache().get().await {
            Ok(token) => {
                let value = token.header_value();
                assert!(value.is_sensitive());
                assert!(value.as_bytes().starts_with(b"Bearer "));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    });
}

proptest! {
    #[test]
    fn token_responses_from_mutated_seeds(bytes in inputs("token_response")) {
        if let Ok(response) = serde_json::from_slice::<TokenResponse>(&bytes) {
            through_cache(response);
        }
    }

    #[test]
    fn token_responses_from_generated_json(
        access in field(),
        expires_in in field(),
        expires_at in field(),
        token_type in field(),
        refresh in field(),
    ) {
        let body = json!({
            "access_token": access,
            "expires_in": expires_in,
            "expires_at": expires_at,
            "token_type": token_type,
            "refresh_token": refresh,
        });
        if let Ok(response) = serde_json::from_value::<TokenResponse>(body) {
            through_cache(response);
        }
    }

    #[test]
    fn challenges_from_mutated_seeds(bytes in inputs("www_authenticate")) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = BearerChallenge::parse(&text);
        if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
            let mut headers = http::HeaderMap::new();
            headers.append(http::header::WWW_AUTHENTICATE, value);
            let _ = BearerChallenge::from_headers(&headers);
        }
    }

    #[test]
    fn long_challenges_are_cut_not_parsed_whole(n in 0usize..100_000) {
        let value = format!("Bearer realm=\"{}\"", "x".repeat(n));
        let challenge = BearerChallenge::parse(&value).unwrap();
        prop_assert!(challenge.realm().unwrap().len() <= 8 * 1024);
    }
}
