//! Form bodies (urlencoded, any `multipart/` type, a `POST` without a type) of requests
//! seen in plain text, for hosts whose interceptor asks for them
//! ([`Interceptor::reads_forms`](super::Interceptor::reads_forms)): read whole, up to
//! [`MAX_FORM`], before anything of the request goes upstream, and shown to
//! [`Interceptor::form`](super::Interceptor::form). A server may take a method from a
//! form (`_method=DELETE` on a `POST`: Rails, Symfony, Laravel); the rules decide it too.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::HeaderMap;

use super::{Deny, Engine, RequestParts};

/// The largest form body read; a larger one is refused (its method could not be read).
pub(crate) const MAX_FORM: usize = 1024 * 1024;

/// The rule of a form refused because it could not be read whole.
pub(crate) const RULE_FORM: &str = "proxy.form";

/// The most all the form bodies being read at once hold, in this process (its proxies
/// serve every call of a session, or of a `serve`): a form past it is refused. Without it
/// a call held 1 MiB on each of hundreds of streams it never ended, in paddock's memory,
/// outside the call's `max_memory` (found by an attack: 2.5 GB in 2,400 streams).
const HELD_MAX: usize = 64 * 1024 * 1024;

/// Bytes held by the forms being read, against a ceiling.
struct Budget {
    held: AtomicUsize,
    max: usize,
}

static FORMS: Budget = Budget { held: AtomicUsize::new(0), max: HELD_MAX };

/// One form's share of a [`Budget`], given back when dropped.
struct Share<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Budget {
    fn share(&self) -> Share<'_> {
        Share { budget: self, bytes: 0 }
    }
}

impl Share<'_> {
    /// Takes `n` more bytes; false (nothing taken) when the budget has not that many left.
    fn take(&mut self, n: usize) -> bool {
        let max = self.budget.max;
        let taken = self
            .budget
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_add(n).filter(|t| *t <= max));
        if taken.is_ok() {
            self.bytes += n;
        }
        taken.is_ok()
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Whether the request's body is a form some server may read a method from: urlencoded,
/// any `multipart/` type (CGI and Rack parse `multipart/mixed` as a form), a `POST`
/// without a type (CGI and Rack read it as urlencoded), or a type with a byte other than
/// printable ASCII (a server may strip it: Python's `strip` takes `\xa0` and `\x85`).
pub(crate) fn is_form(method: &hyper::Method, headers: &HeaderMap) -> bool {
    let odd = |v: &[u8]| !v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    if headers.get_all(CONTENT_TYPE).iter().any(|v| odd(v.as_bytes())) {
        return true;
    }
    let types: Vec<String> = headers
        .get_all(CONTENT_TYPE)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_ascii_lowercase())
        .collect();
    let untyped = types.iter().all(|t| t.is_empty());
    (untyped && method == hyper::Method::POST)
        || types.iter().any(|t| t.starts_with("application/x-www-form-urlencoded") || t.starts_with("multipart/"))
}

/// Reads the form (when the interceptor wants it for this host) and has it decided:
/// `Ok(None)`: not read, stream the body as it is; `Ok(Some(bytes))`: read and let
/// through, send these; `Err(deny)`: refused, nothing goes upstream.
pub(crate) async fn check(
    engine: &Engine,
    req: &mut RequestParts<'_>,
    body: Incoming,
) -> Result<Result<Bytes, Incoming>, Deny> {
    if !is_form(req.method, req.headers) || !engine.interceptor().reads_forms(req.host, req.port) {
        return Ok(Err(body));
    }
    let bytes = match read(body).await {
        Ok(b) => b,
        Err(e) => {
            let reason = format!(
                "a form body to a host with request rules is read whole, up to {} KiB, before it is sent (a server may take a method from it): {e}",
                MAX_FORM / 1024
            );
            return Err(Deny { rule: RULE_FORM.into(), reason, exfiltration: false });
        }
    };
    match engine.interceptor().form(req, &bytes) {
        Some(deny) => Err(deny),
        None => Ok(Ok(bytes)),
    }
}

/// The whole body, or why it could not be had within [`MAX_FORM`] and this process's
/// share for forms ([`HELD_MAX`]).
async fn read(mut body: Incoming) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    let mut share = FORMS.share();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| format!("reading it failed: {e}"))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > MAX_FORM {
                return Err(format!("it is longer than {} KiB", MAX_FORM / 1024));
            }
            if !share.take(data.len()) {
                return Err(format!(
                    "the form bodies being read at once already hold {} MiB, the most paddock holds for them",
                    HELD_MAX / (1024 * 1024)
                ));
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn typed(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_bytes(value).unwrap());
        h
    }

    #[test]
    fn forms_read_at_once_share_one_ceiling_and_give_back_what_they_held() {
        let budget = Budget { held: AtomicUsize::new(0), max: 100 };
        let mut a = budget.share();
        let mut b = budget.share();
        assert!(a.take(60) && b.take(40), "up to the ceiling");
        assert!(!b.take(1), "past it: refused");
        assert!(!a.take(usize::MAX), "no overflow");
        assert_eq!(budget.held.load(Ordering::Acquire), 100, "a refusal takes nothing");
        drop(a);
        assert!(b.take(60), "what a finished form held is free again");
        drop(b);
        assert_eq!(budget.held.load(Ordering::Acquire), 0);
    }

    #[test]
    fn forms_are_known_by_their_type_or_its_odd_bytes() {
        let post = hyper::Method::POST;
        assert!(is_form(&post, &HeaderMap::new()), "untyped POST");
        assert!(!is_form(&hyper::Method::PUT, &HeaderMap::new()));
        assert!(is_form(&post, &typed(b"application/x-www-form-urlencoded; charset=utf-8")));
        assert!(is_form(&post, &typed(b"Multipart/Mixed; boundary=x")));
        assert!(!is_form(&post, &typed(b"application/json")));
        // Python strips `\xa0` and `\x85` and then reads a form (found by an attack).
        assert!(is_form(&post, &typed(b"\xa0application/x-www-form-urlencoded")));
        assert!(is_form(&post, &typed(b"\x85multipart/form-data; boundary=x")));
    }
}
