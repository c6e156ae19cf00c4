//! The requests [`OAuth2Provider`] sends: their fields, the client's authentication, and the
//! bodies and headers made from them, in buffers wiped when the HTTP stack drops them.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{
    HeaderValue, Method, Request, Uri,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE},
};
use http_body_util::Full;
use zeroize::Zeroize;

use super::{
    BodyFormat, ClientAuth, Grant, OAuth2Provider, RequestKind,
    error::{OAuth2Error, Reason},
};
use crate::provider::secret::{Secret, Wiped, form_encode, form_encoded_len};

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
        match (&self.client_id, &self.client_secret, self.client_auth) {
            (_, Some(_), ClientAuth::Basic) => {}
            (id, Some(secret), ClientAuth::Form) => {
                if let Some(id) = id {
                    fields.push(("client_id", id.as_str()));
                }
                fields.push(("client_secret", secret.expose()));
            }
            (Some(id), None, _) => fields.push(("client_id", id.as_str())),
            (None, None, _) => {}
        }
        let authorization = match (&self.basic_auth, bearer) {
            (Some(basic), _) => Some(copy(basic.expose())),
            (None, Some(token)) => Some(bearer_value(token)),
            (None, None) => None,
        };

        let body = match &self.map_params {
            None => encode_body(self.body_format, &fields),
            Some(hook) => {
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
                let body = encode_body(self.body_format, &borrowed);
                drop(borrowed);
                for (name, value) in &mut owned {
                    name.zeroize();
                    value.zeroize();
                }
                body
            }
        };
        let content_type = match self.body_format {
            BodyFormat::Form => "application/x-www-form-urlencoded",
            BodyFormat::Json => "application/json",
        };
        post(url, body?, content_type, authorization)
    }
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
fn copy(text: &str) -> Wiped {
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

/// `Basic` credentials per RFC 6749 §2.3.1: id and secret form-encoded, then Base64; the
/// whole value, `Basic …`, held as a [`Secret`].
pub(super) fn basic_auth(id: &str, secret: &str) -> Secret {
    let mut joined = Wiped::with_capacity(form_encoded_len(id) + 1 + form_encoded_len(secret));
    form_encode(id, &mut joined);
    joined.push(b":");
    form_encode(secret, &mut joined);
    let mut value = String::with_capacity("Basic ".len() + joined.as_bytes().len().div_ceil(3) * 4);
    value.push_str("Basic ");
    base64(joined.as_bytes(), &mut value);
    Secret::new(value)
}

/// Standard Base64 with padding, appended to `out`; a dozen lines, not worth a dependency.
pub(super) fn base64(input: &[u8], out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
}

/// Reads `Basic` credentials (the part after `Basic `) back into a client id and secret.
#[cfg(feature = "test-server")]
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = encoded.trim().trim_end_matches('=').as_bytes();
    let mut bits = 0u32;
    let mut count = 0;
    let mut bytes = Vec::with_capacity(input.len() * 3 / 4);
    for c in input {
        let value = ALPHABET.iter().position(|a| a == c)? as u32;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
        }
    }
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
    };
    Some((decode(id)?, decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64_of(input: &[u8]) -> String {
        let mut out = String::new();
        base64(input, &mut out);
        out
    }

    #[cfg(feature = "test-server")]
    #[test]
    fn basic_auth_round_trips() {
        let header = basic_auth("my id+1", "s&e=c%r ü");
        let decoded = decode_basic(header.expose().strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(decoded, ("my id+1".into(), "s&e=c%r ü".into()));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_of(input.as_bytes()), output);
        }
    }

    #[test]
    fn basic_auth_form_encodes_first() {
        // "a b:c&d" → "a+b:c%26d"
        assert_eq!(
            basic_auth("a b", "c&d").expose(),
            format!("Basic {}", base64_of(b"a+b:c%26d"))
        );
    }

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
