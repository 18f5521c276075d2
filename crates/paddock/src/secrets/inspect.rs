//! Finding placeholders in a request and replacing them by values (pure: no policy, no
//! sources, no I/O).
//!
//! A placeholder is looked for in every header value (case-insensitively), inside
//! `Authorization: Basic base64(user:password)`, in the path and query (raw and
//! percent-decoded), in the host, in every header's name and in the method. Replacement: a header that holds the placeholder
//! alone, and is the secret's `header`, gets the secret's `format` (`Bearer {}` by
//! default, or `Basic base64(user:value)`); anywhere else in a header value (`token
//! PLACEHOLDER`, a Basic pair) the placeholder becomes the bare value.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use paddock_policy::SecretFormat;
use paddock_proxy::http::header::AUTHORIZATION;
use paddock_proxy::http::{HeaderMap, HeaderName, HeaderValue};

/// Where a placeholder was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// In this header's value.
    Header(String),
    /// Inside `Authorization: Basic ...` (a URL's `user:password@`).
    BasicAuth,
    /// In the path or the query.
    Target,
    /// In the host name.
    Host,
    /// In a header's name.
    HeaderName,
    /// In the method.
    Method,
}

impl Place {
    /// Words for a refusal.
    pub(crate) fn describe(&self) -> String {
        match self {
            Place::Header(h) => format!("in the `{h}` header"),
            Place::BasicAuth => "in the Basic credentials (a URL's user:password)".into(),
            Place::Target => "in the path or query".into(),
            Place::Host => "in the host name".into(),
            Place::HeaderName => "in a header's name".into(),
            Place::Method => "in the method".into(),
        }
    }
}

fn contains_ci(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.len() >= n.len() && hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// `Authorization: Basic X` → the decoded `user:password`, if it is one.
fn basic_pair(name: &HeaderName, value: &HeaderValue) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    if name != AUTHORIZATION {
        return None;
    }
    let v = value.as_bytes();
    if !v.get(..6).is_some_and(|p| p.eq_ignore_ascii_case(b"basic ")) {
        return None;
    }
    STANDARD.decode(v[6..].trim_ascii()).ok().map(zeroize::Zeroizing::new)
}

/// `%XX` escapes decoded (others left as they are).
pub(crate) fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%').then(|| s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())).flatten();
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Every `(index into placeholders, place)` where a placeholder appears.
pub(crate) fn find(
    placeholders: &[&str],
    method: &str,
    host: &str,
    target: &str,
    headers: &HeaderMap,
) -> Vec<(usize, Place)> {
    let mut out = Vec::new();
    let decoded = percent_decoded(target);
    for (i, p) in placeholders.iter().enumerate() {
        if contains_ci(host.as_bytes(), p) {
            out.push((i, Place::Host));
        }
        if contains_ci(method.as_bytes(), p) {
            out.push((i, Place::Method));
        }
        if headers.keys().any(|name| contains_ci(name.as_str().as_bytes(), p)) {
            out.push((i, Place::HeaderName));
        }
        if contains_ci(target.as_bytes(), p) || contains_ci(&decoded, p) {
            out.push((i, Place::Target));
        }
        for (name, value) in headers {
            if contains_ci(value.as_bytes(), p) {
                out.push((i, Place::Header(name.as_str().to_string())));
            } else if basic_pair(name, value).is_some_and(|pair| contains_ci(&pair, p)) {
                out.push((i, Place::BasicAuth));
            }
        }
    }
    out
}

/// One secret to put in: its placeholder, where and how, and the value.
pub(crate) struct Substitution<'a> {
    pub name: &'a str,
    pub placeholder: &'a str,
    pub header: &'a str,
    pub format: &'a SecretFormat,
    pub value: &'a str,
}

/// Replaces `needle` (ASCII, any case) in `hay` by `with`.
fn replace_ci(hay: &[u8], needle: &str, with: &[u8]) -> Vec<u8> {
    let n = needle.len();
    let mut out = Vec::with_capacity(hay.len() + with.len());
    let mut i = 0;
    while i < hay.len() {
        if hay.len() - i >= n && hay[i..i + n].eq_ignore_ascii_case(needle.as_bytes()) {
            out.extend_from_slice(with);
            i += n;
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

fn formatted(s: &Substitution<'_>) -> Vec<u8> {
    match s.format {
        SecretFormat::Template(t) => t.replacen("{}", s.value, 1).into_bytes(),
        SecretFormat::Basic { user } => {
            let pair = zeroize::Zeroizing::new(format!("{user}:{}", s.value));
            format!("Basic {}", STANDARD.encode(pair.as_bytes())).into_bytes()
        }
    }
}

/// The new value of one header, or `None` when no placeholder is in it.
fn rewrite_value(
    name: &HeaderName,
    value: &HeaderValue,
    subs: &[Substitution<'_>],
) -> Result<Option<HeaderValue>, String> {
    let bytes = value.as_bytes();
    let mut out: Option<zeroize::Zeroizing<Vec<u8>>> = None;
    if let Some(pair) = basic_pair(name, value) {
        if subs.iter().any(|s| contains_ci(&pair, s.placeholder)) {
            let mut p = pair.to_vec();
            for s in subs {
                p = replace_ci(&p, s.placeholder, s.value.as_bytes());
            }
            let p = zeroize::Zeroizing::new(p);
            out = Some(zeroize::Zeroizing::new(format!("Basic {}", STANDARD.encode(&*p)).into_bytes()));
        }
    }
    if out.is_none() {
        for s in subs.iter().filter(|s| contains_ci(bytes, s.placeholder)) {
            let current = out.as_ref().map_or(bytes, |o| o.as_slice());
            let whole = current.trim_ascii().eq_ignore_ascii_case(s.placeholder.as_bytes())
                && name.as_str().eq_ignore_ascii_case(s.header);
            let next = if whole { formatted(s) } else { replace_ci(current, s.placeholder, s.value.as_bytes()) };
            out = Some(zeroize::Zeroizing::new(next));
        }
    }
    let Some(new) = out else { return Ok(None) };
    let mut v = HeaderValue::from_bytes(&new).map_err(|_| {
        let names: Vec<&str> = subs.iter().map(|s| s.name).collect();
        format!(
            "the value of secret `{}` cannot be carried in a header (it has control characters)",
            names.join("`, `")
        )
    })?;
    v.set_sensitive(true);
    Ok(Some(v))
}

/// Replaces every placeholder of `subs` in `headers`; `Err` names the secret whose value
/// cannot go into a header (never the value).
pub(crate) fn rewrite(headers: &mut HeaderMap, subs: &[Substitution<'_>]) -> Result<(), String> {
    let names: Vec<HeaderName> = headers.keys().cloned().collect();
    for name in names {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        let mut changed = false;
        let mut new = Vec::with_capacity(values.len());
        for v in &values {
            match rewrite_value(&name, v, subs)? {
                Some(n) => {
                    changed = true;
                    new.push(n);
                }
                None => new.push(v.clone()),
            }
        }
        if changed {
            headers.remove(&name);
            for v in new {
                headers.append(name.clone(), v);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PH: &str = "paddock-secret-gh-00112233445566778899aabbccddeeff";

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn sub<'a>(format: &'a SecretFormat, header: &'a str) -> Substitution<'a> {
        Substitution { name: "gh", placeholder: PH, header, format, value: "ghp_REAL" }
    }

    #[test]
    fn found_everywhere() {
        let basic = format!("Basic {}", STANDARD.encode(format!("x-access-token:{PH}")));
        let h = headers(&[("authorization", &basic), ("x-other", &format!("a {} b", PH.to_uppercase()))]);
        let f = find(&[PH], "GET", "api.test", &format!("/a?t={}", PH.replace('-', "%2D")), &h);
        assert!(f.contains(&(0, Place::BasicAuth)), "{f:?}");
        assert!(f.contains(&(0, Place::Header("x-other".into()))), "{f:?}");
        assert!(f.contains(&(0, Place::Target)), "{f:?}");
        let f = find(&[PH], "GET", &format!("{PH}.evil.test"), "/", &HeaderMap::new());
        assert_eq!(f, vec![(0, Place::Host)]);
        assert!(find(&[PH], "GET", "api.test", "/x", &headers(&[("authorization", "Bearer other")])).is_empty());
        // A header's name and the method (found by an attack: neither was looked at).
        let f = find(&[PH], "GET", "api.test", "/x", &headers(&[(&PH.to_uppercase(), "1")]));
        assert_eq!(f, vec![(0, Place::HeaderName)]);
        let f = find(&[PH], PH, "api.test", "/x", &HeaderMap::new());
        assert_eq!(f, vec![(0, Place::Method)]);
    }

    #[test]
    fn replaced_by_format_or_in_place() {
        let bearer = SecretFormat::Template("Bearer {}".into());
        let mut h = headers(&[("authorization", PH)]);
        rewrite(&mut h, &[sub(&bearer, "Authorization")]).unwrap();
        assert_eq!(h["authorization"], "Bearer ghp_REAL");
        assert!(h["authorization"].is_sensitive());
        let mut h = headers(&[("authorization", &format!("token {PH}")), ("x-keep", "v")]);
        rewrite(&mut h, &[sub(&bearer, "Authorization")]).unwrap();
        assert_eq!((h["authorization"].to_str().unwrap(), h["x-keep"].to_str().unwrap()), ("token ghp_REAL", "v"));
        let basic = SecretFormat::Basic { user: "x-access-token".into() };
        let mut h = headers(&[("authorization", PH)]);
        rewrite(&mut h, &[sub(&basic, "authorization")]).unwrap();
        assert_eq!(h["authorization"], format!("Basic {}", STANDARD.encode("x-access-token:ghp_REAL")));
        // git: a URL's user:PLACEHOLDER arrives as Basic; the value goes inside.
        let mut h = headers(&[("authorization", &format!("Basic {}", STANDARD.encode(format!("git:{PH}"))))]);
        rewrite(&mut h, &[sub(&bearer, "Authorization")]).unwrap();
        assert_eq!(h["authorization"], format!("Basic {}", STANDARD.encode("git:ghp_REAL")));
        let key = SecretFormat::Template("{}".into());
        let mut h = headers(&[("x-api-key", PH)]);
        rewrite(&mut h, &[sub(&key, "X-Api-Key")]).unwrap();
        assert_eq!(h["x-api-key"], "ghp_REAL");
    }

    #[test]
    fn a_value_with_a_newline_is_refused_by_name() {
        let bearer = SecretFormat::Template("Bearer {}".into());
        let s = Substitution {
            name: "gh",
            placeholder: PH,
            header: "authorization",
            format: &bearer,
            value: "a\r\nX-Evil: 1",
        };
        let mut h = headers(&[("authorization", PH)]);
        let e = rewrite(&mut h, &[s]).unwrap_err();
        assert!(e.contains("secret `gh`") && !e.contains("X-Evil"), "{e}");
    }
}
