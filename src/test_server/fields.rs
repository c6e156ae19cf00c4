//! The fields of a token request's body, form-encoded or JSON.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;

/// Largest request body the server reads.
pub(super) const MAX_REQUEST_BODY: usize = 64 * 1024;

/// A token request with its body read.
pub(super) type Received = Request<Full<Bytes>>;

/// Whether `headers` say the body is JSON.
pub(super) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Reads a form or JSON body into name-value pairs.
pub(super) async fn read_fields<B>(req: Request<B>) -> Option<HashMap<String, String>>
where
    B: http_body::Body,
    B::Error: Into<crate::BoxError>,
{
    let json = is_json(req.headers());
    let body = Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    parse_fields(json, &body)
}

/// A form or JSON body's name-value pairs (a JSON object's string members).
pub(super) fn parse_fields(json: bool, body: &[u8]) -> Option<HashMap<String, String>> {
    if json {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return None;
        };
        Some(
            map.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
        )
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(|pairs| pairs.into_iter().collect())
    }
}
