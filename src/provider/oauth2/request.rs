//! The requests [`OAuth2Provider`](super::OAuth2Provider) sends: what each is for, the hook
//! that may edit its fields, and the bodies and headers made from them, in buffers wiped when
//! the HTTP stack drops them.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Uri,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
};
use http_body_util::Full;
use zeroize::Zeroize;

use super::error::OAuth2Error;
use crate::{
    error::Reason,
    provider::secret::{Wiped, form_encode, form_encoded_len},
};

/// The encoding of request bodies.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`, as RFC 6749 requires. The default.
    #[default]
    Form,
    /// A JSON object of strings, `application/json`, as some vendors' login APIs expect.
    Json,
}

/// Which call a request is for, as passed to [`OAuth2ProviderBuilder::map_params`](super::OAuth2ProviderBuilder::map_params).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// A login: the password or client-credentials grant.
    Login,
    /// A refresh-token grant.
    Refresh,
    /// A token revocation.
    Revoke,
}

/// A hook that edits request fields; see [`OAuth2ProviderBuilder::map_params`](super::OAuth2ProviderBuilder::map_params).
pub(super) type ParamsHook = Arc<dyn Fn(RequestKind, &mut Vec<(String, String)>) + Send + Sync>;

/// Marks a request that carries credentials (a login, refresh, revocation or sign-in), in
/// its extensions, so that an HTTP client of this crate sends its body in a way that cannot be
/// sent twice, and reports where the answer came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialRequest;

/// Encodes `fields` after the [`map_params`](super::OAuth2ProviderBuilder::map_params) hook
/// has edited them: the hook gets copies, wiped once the body is encoded.
pub(super) fn encode_mapped(
    format: BodyFormat,
    hook: &ParamsHook,
    kind: RequestKind,
    fields: Vec<(&str, &str)>,
) -> Result<Wiped, OAuth2Error> {
    let mut owned: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    drop(fields);
    hook(kind, &mut owned);
    let borrowed: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = encode_body(format, &borrowed);
    drop(borrowed);
    for (name, value) in &mut owned {
        name.zeroize();
        value.zeroize();
    }
    body
}

/// A `POST` of `body` to `url`, marked as a [`CredentialRequest`], with `authorization` as
/// its sensitive `Authorization` header.
pub(crate) fn post(
    url: &Uri,
    body: Wiped,
    content_type: &'static str,
    authorization: Option<Wiped>,
) -> Result<Request<Full<Bytes>>, OAuth2Error> {
    let mut request = Request::new(Full::new(body.into_bytes()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.clone();
    request.extensions_mut().insert(CredentialRequest);
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(value) = authorization {
        let value = value
            .into_header()
            .map_err(|_| OAuth2Error::transport(Reason("the token is not a valid header value")))?;
        headers.insert(AUTHORIZATION, value);
    }
    Ok(request)
}

/// `text`, in a buffer of its own that is wiped when dropped.
pub(super) fn copy(text: &str) -> Wiped {
    let mut out = Wiped::with_capacity(text.len());
    out.push(text.as_bytes());
    out
}

/// `Bearer <token>`, in a buffer wiped when dropped.
pub(crate) fn bearer_value(token: &str) -> Wiped {
    let mut out = Wiped::with_capacity("Bearer ".len() + token.len());
    out.push(b"Bearer ");
    out.push(token.as_bytes());
    out
}

/// Encodes `fields` in `format`, into a buffer large enough from the start, so that it never
/// moves and leaves a copy behind.
pub(crate) fn encode_body(
    format: BodyFormat,
    fields: &[(&str, &str)],
) -> Result<Wiped, OAuth2Error> {
    match format {
        BodyFormat::Form => {
            let size = fields
                .iter()
                .map(|(k, v)| form_encoded_len(k) + form_encoded_len(v) + 2)
                .sum();
            let mut out = Wiped::with_capacity(size);
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b"&");
                }
                form_encode(name, &mut out);
                out.push(b"=");
                form_encode(value, &mut out);
            }
            Ok(out)
        }
        BodyFormat::Json => Ok(json_body(fields)?),
    }
}

/// A JSON object of strings: a field named twice keeps its last value, and the fields come
/// in the order of their names, as a `serde_json::Map` writes them.
pub(crate) fn json_body(fields: &[(&str, &str)]) -> Result<Wiped, OAuth2Error> {
    let object: BTreeMap<&str, &str> = fields.iter().copied().collect();
    // A character takes at most six bytes escaped (`\u001f`), plus quotes and separators.
    let size = 2 + object
        .iter()
        .map(|(k, v)| 6 * (k.len() + v.len()) + 6)
        .sum::<usize>();
    let mut out = Wiped::with_capacity(size);
    serde_json::to_writer(&mut out, &object)
        .map_err(|_| OAuth2Error::transport(Reason("failed to encode the request body")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_serde() {
        let fields = [
            ("grant_type", "password"),
            ("password", "p&ss=w+rd \"q\" 100% ü\u{1}"),
            ("scope", "a b"),
            ("grant_type", "twice"),
        ];
        let form = encode_body(BodyFormat::Form, &fields).unwrap();
        assert_eq!(
            std::str::from_utf8(form.as_bytes()).unwrap(),
            serde_urlencoded::to_string(fields).unwrap()
        );
        let json = encode_body(BodyFormat::Json, &fields).unwrap();
        let expected: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        assert_eq!(
            std::str::from_utf8(json.as_bytes()).unwrap(),
            serde_json::Value::Object(expected).to_string()
        );
        assert_eq!(json_body(&[]).unwrap().as_bytes(), b"{}");
    }
}
