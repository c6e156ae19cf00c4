//! The excerpts of server text an [`OAuth2Error`](super::OAuth2Error) quotes: bounded, and
//! cleaned of the secrets the request carried in every encoding a server may echo them in.

use std::borrow::Cow;

use zeroize::Zeroizing;

use crate::provider::secret::{Wiped, form_encode, form_encoded_len};

/// Longest excerpt of a server's text kept in an error, in characters.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// The shortest [`login_param`](super::OAuth2ProviderBuilder::login_param) value taken out of
/// what errors quote: a shorter one is too common a string to remove from a message.
pub(crate) const MIN_PARAM_CHARS: usize = 4;

/// The start of `text`, at most [`EXCERPT_CHARS`] characters, with control characters replaced
/// by spaces and surrounding whitespace trimmed.
pub(crate) fn excerpt(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// What replaces a secret in an excerpt.
pub(crate) const REDACTED: &str = "<redacted>";

/// The secrets a request carried, to be kept out of what the error quotes of the answer: the
/// provider's password and client secret, and the refresh or access token sent.
#[derive(Default)]
pub(crate) struct Secrets<'a> {
    values: Vec<&'a str>,
}

impl<'a> Secrets<'a> {
    pub(crate) fn add(&mut self, secret: Option<&'a str>) -> &mut Self {
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            self.values.push(secret);
        }
        self
    }

    /// `text` with every secret replaced by [`REDACTED`], as it was sent and as a server
    /// would echo it: verbatim, form-encoded (either way of encoding a space) and
    /// percent-encoded, and escaped inside a JSON string.
    pub(crate) fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.values {
            for form in encodings(secret) {
                if out.contains(form.as_str()) {
                    out = Cow::Owned(out.replace(form.as_str(), REDACTED));
                }
            }
        }
        out
    }

    /// The scrubbed [`excerpt`] of `text`: scrubbed whole first, so that cutting it short
    /// never leaves the start of a secret behind.
    pub(crate) fn excerpt(&self, text: &str) -> String {
        excerpt(&self.scrub(text))
    }
}

/// The ways `secret` may appear in a server's text, longest first so that a form that
/// contains another is replaced whole. The copies are wiped when dropped.
fn encodings(secret: &str) -> Vec<Zeroizing<String>> {
    let owned = |s: &str| {
        let mut out = Zeroizing::new(String::with_capacity(s.len()));
        out.push_str(s);
        out
    };
    let mut form = Wiped::with_capacity(form_encoded_len(secret));
    form_encode(secret, &mut form);
    let form = owned(std::str::from_utf8(form.as_bytes()).unwrap_or_default());
    let mut percent = Zeroizing::new(String::with_capacity(form.len() * 3));
    for c in form.chars() {
        match c {
            '+' => percent.push_str("%20"),
            c => percent.push(c),
        }
    }
    let mut json = Wiped::with_capacity(6 * secret.len() + 2);
    let _ = serde_json::to_writer(&mut json, secret);
    let json = std::str::from_utf8(json.as_bytes()).unwrap_or_default();
    let json = owned(
        json.get(1..json.len().saturating_sub(1))
            .unwrap_or_default(),
    );
    let mut forms = vec![owned(secret), form, percent, json];
    forms.retain(|f| !f.is_empty());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_bounded_and_clean() {
        let long = "x".repeat(1000);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt("  a\r\nb  "), "a  b");
        assert_eq!(excerpt("é".repeat(10).as_str()), "é".repeat(10));
    }

    #[test]
    fn secrets_are_scrubbed_in_every_encoding() {
        let mut secrets = Secrets::default();
        secrets
            .add(Some("p&ss w\"rd ü"))
            .add(Some("RT-123"))
            .add(None)
            .add(Some(""));
        for echoed in [
            "bad password p&ss w\"rd ü for RT-123",
            "grant_type=password&password=p%26ss+w%22rd+%C3%BC&refresh_token=RT-123",
            "password=p%26ss%20w%22rd%20%C3%BC",
            r#"{"got":"p&ss w\"rd ü"}"#,
        ] {
            let scrubbed = secrets.scrub(echoed);
            assert!(scrubbed.contains(REDACTED), "{scrubbed}");
            for leak in ["p&ss", "p%26ss", "RT-123", "w\"rd", "w%22rd"] {
                assert!(!scrubbed.contains(leak), "{leak} in {scrubbed}");
            }
        }
        // Cut short only after scrubbing: no prefix of a secret is left at the end.
        let long = format!("{}RT-123", "x".repeat(EXCERPT_CHARS - 3));
        assert!(!secrets.excerpt(&long).contains("RT-"));
        assert_eq!(secrets.scrub("nothing here"), "nothing here");
    }
}
