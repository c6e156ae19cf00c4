//! Parsing the `WWW-Authenticate` challenges of RFC 6750 §3.

use http::{HeaderMap, header::WWW_AUTHENTICATE};

/// A `Bearer` challenge from a `WWW-Authenticate` response header (RFC 6750 §3).
///
/// When a response carries one, [`BearerAuth`](crate::BearerAuth) parses it and adds it to the
/// response's extensions, so callers can tell why the server refused the token:
///
/// ```
/// use http::Response;
/// use tower_bearer_auth::BearerChallenge;
///
/// fn why_refused<B>(response: &Response<B>) -> Option<&str> {
///     response.extensions().get::<BearerChallenge>()?.error()
/// }
/// ```
///
/// It can also be parsed directly:
///
/// ```
/// use tower_bearer_auth::BearerChallenge;
///
/// let c = BearerChallenge::parse(r#"Bearer realm="pbx", error="insufficient_scope", scope="admin""#)
///     .unwrap();
/// assert_eq!(c.error(), Some("insufficient_scope"));
/// assert_eq!(c.scope(), Some("admin"));
/// assert!(!c.asks_for_new_token());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    realm: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    error_uri: Option<String>,
}

/// Longest header value the parser looks at; longer ones are cut there.
const MAX_LEN: usize = 8 * 1024;

impl BearerChallenge {
    /// The first `Bearer` challenge among the `WWW-Authenticate` headers, if any.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .find_map(|v| Self::parse_bytes(v.as_bytes()))
    }

    /// The first `Bearer` challenge in one `WWW-Authenticate` header value, if any.
    pub fn parse(value: &str) -> Option<Self> {
        Self::parse_bytes(value.as_bytes())
    }

    fn parse_bytes(value: &[u8]) -> Option<Self> {
        let mut p = Parser {
            s: &value[..value.len().min(MAX_LEN)],
            pos: 0,
        };
        loop {
            p.skip(|c| c == b',' || is_space(c));
            if p.pos >= p.s.len() {
                return None;
            }
            let Some(scheme) = p.token() else {
                // Not a challenge: skip to the next comma.
                p.skip(|c| c != b',');
                continue;
            };
            let bearer = scheme.eq_ignore_ascii_case(b"bearer");
            let mut challenge = Self::default();
            // Parameters (or one token68) until the next challenge begins.
            loop {
                p.skip(is_space);
                let start = p.pos;
                let Some(name) = p.token() else {
                    // A token68 such as `abc==`, or stray characters: skip to the next comma.
                    p.skip(|c| c != b',');
                    if p.eat(b',') {
                        continue;
                    }
                    break;
                };
                p.skip(is_space);
                if !p.eat(b'=') {
                    // `name` was the next challenge's scheme.
                    p.pos = start;
                    break;
                }
                p.skip(is_space);
                let value = if p.peek() == Some(b'"') {
                    p.quoted()
                } else {
                    p.token().map(|t| String::from_utf8_lossy(t).into_owned())
                };
                if let (true, Some(value)) = (bearer, value) {
                    challenge.set(name, value);
                }
                p.skip(|c| c != b',');
                if !p.eat(b',') {
                    break;
                }
            }
            if bearer {
                return Some(challenge);
            }
        }
    }

    fn set(&mut self, name: &[u8], value: String) {
        let field = match name.to_ascii_lowercase().as_slice() {
            b"realm" => &mut self.realm,
            b"scope" => &mut self.scope,
            b"error" => &mut self.error,
            b"error_description" => &mut self.error_description,
            b"error_uri" => &mut self.error_uri,
            _ => return,
        };
        field.get_or_insert(value);
    }

    /// The `realm` parameter.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The `scope` parameter: the scope the resource needs.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `error` code: `invalid_request`, `invalid_token` or `insufficient_scope`.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The `error_description` parameter.
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// The `error_uri` parameter.
    pub fn error_uri(&self) -> Option<&str> {
        self.error_uri.as_deref()
    }

    /// Whether a new token could help: no error code (a bare challenge) or `invalid_token`.
    ///
    /// `insufficient_scope` and `invalid_request` are about the request, not the token.
    pub fn asks_for_new_token(&self) -> bool {
        match self.error() {
            None => true,
            Some(e) => e.eq_ignore_ascii_case("invalid_token"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        self.skip(is_tchar);
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// A quoted-string, starting at its opening quote; unterminated ones run to the end.
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

fn is_space(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc6750_examples() {
        let c = BearerChallenge::parse(r#"Bearer realm="example""#).unwrap();
        assert_eq!(c.realm(), Some("example"));
        assert!(c.asks_for_new_token());

        let c = BearerChallenge::parse(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        )
        .unwrap();
        assert_eq!(c.error(), Some("invalid_token"));
        assert_eq!(c.error_description(), Some("The access token expired"));
        assert!(c.asks_for_new_token());
    }

    #[test]
    fn bare_scheme_and_case() {
        assert_eq!(
            BearerChallenge::parse("Bearer"),
            Some(BearerChallenge::default())
        );
        assert_eq!(
            BearerChallenge::parse("bearer"),
            Some(BearerChallenge::default())
        );
        let c = BearerChallenge::parse("BEARER Error=insufficient_scope").unwrap();
        assert_eq!(c.error(), Some("insufficient_scope"));
        assert!(!c.asks_for_new_token());
    }

    #[test]
    fn finds_bearer_among_other_challenges() {
        let c = BearerChallenge::parse(
            r#"Basic realm="a, b", Newauth abc==, Bearer error="invalid_token", Digest nonce=1"#,
        )
        .unwrap();
        assert_eq!(c.error(), Some("invalid_token"));
        assert_eq!(c.realm(), None);
        assert_eq!(BearerChallenge::parse(r#"Basic realm="x""#), None);
    }

    #[test]
    fn escapes_and_unterminated_quotes() {
        let c = BearerChallenge::parse(r#"Bearer error_description="say \"hi\"""#).unwrap();
        assert_eq!(c.error_description(), Some(r#"say "hi""#));
        let c = BearerChallenge::parse(r#"Bearer realm="open"#).unwrap();
        assert_eq!(c.realm(), Some("open"));
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            ",",
            "=",
            "Bearer =",
            "Bearer ,,, ,",
            "Bearer a=",
            "Bearer a=\"",
            "\"",
            "Bearer realm=\"\\",
            "Bearer \u{e9}=1",
            "Bearer a b c",
            "=====",
            "Bearer error=,x",
        ] {
            let _ = BearerChallenge::parse(s);
        }
        let _ = BearerChallenge::parse_bytes(&[0xff, b' ', b'=', 0x80]);
    }
}
