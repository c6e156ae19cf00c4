//! The requests [`OAuth2Provider`] sends: their fields, and the bodies and headers made from
//! them, in buffers wiped when the HTTP stack drops them.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Uri,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
};
use http_body_util::Full;
use zeroize::Zeroize;

use super::{
    error::OAuth2Error,
    provider::{Grant, OAuth2Provider, ParamsHook},
};
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

/// Marks a request that carries credentials (a login, refresh, revocation or sign-in), in
/// its extensions, so that an HTTP client of this crate sends its body in a way that cannot be
/// sent twice, and reports where the answer came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CredentialRequest;

impl<C> OAuth2Provider<C> {
    /// The fields of a login: the grant, the scope and the extra login fields.
    pub(super) fn login_fields(&self) -> Vec<(&str, &str)> {
        let mut fields = Vec::with_capacity(4 + self.login_params.len());
        match &self.grant {
            Grant::Password { username, password } => {
                fields.push(("grant_type", "password"));
                fields.push(("username", username.as_str()));
                fields.push(("password", password.expose()));
            }
            Grant::ClientCredentials => fields.push(("grant_type", "client_credentials")),
        }
        if let Some(scope) = &self.scope {
            fields.push(("scope", scope.as_str()));
        }
        for (name, value) in &self.login_params {
            fields.push((name.as_str(), value.expose()));
        }
        fields
    }

    /// Builds a request: client authentication, the hook, the body and headers.
    ///
    /// The fields are borrowed, not copied; the body and the `Authorization` value are made in
    /// buffers that are wiped when the HTTP client drops them. With a
    /// [`map_params`](super::OAuth2ProviderBuilder::map_params) hook the fields are copied
    /// for it, and the copies wiped once encoded.
    pub(super) fn build_request<'a>(
        &'a self,
        kind: RequestKind,
        url: &Uri,
        mut fields: Vec<(&'a str, &'a str)>,
        bearer: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, OAuth2Error> {
        self.add_client_auth(&mut fields);
        let authorization = self.authorization(bearer);
        let body = match &self.map_params {
            None => encode_body(self.body_format, &fields),
            Some(hook) => encode_mapped(self.body_format, hook, kind, fields),
        };
        let content_type = match self.body_format {
            BodyFormat::Form => "application/x-www-form-urlencoded",
            BodyFormat::Json => "application/json",
        };
        post(url, body?, content_type, authorization)
    }
}

/// Encodes `fields` after the [`map_params`](super::OAuth2ProviderBuilder::map_params) hook
/// has edited them: the hook gets copies, wiped once the body is encoded.
fn encode_mapped(
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
