//! Answers interception gives by itself: a refusal by the [`Interceptor`](super::Interceptor)
//! (403 with `paddock-rule`), an upstream failure (502/504) inside an intercepted
//! connection, and the gate refusal for a tunnel the interceptor denied.

use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::Deny;
use crate::body::ProxyBody;
use crate::gate::{describe, Refusal};
use crate::target::Target;

/// The header that names the rule of a refusal.
pub(crate) const RULE_HEADER: HeaderName = HeaderName::from_static("paddock-rule");

/// Text that another party chose, safe for one line: control characters escaped.
pub(crate) fn one_line(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// A plain-text answer that keeps the connection open (inside an intercepted
/// connection every request stands alone).
pub(crate) fn text(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// 403, `paddock-rule: RULE`, body `paddock: REASON`.
pub(crate) fn denied(deny: &Deny) -> Response<ProxyBody> {
    let mut resp = text(StatusCode::FORBIDDEN, format!("paddock: {}\n", one_line(&deny.reason)));
    let rule = HeaderValue::from_str(&deny.rule).unwrap_or_else(|_| {
        HeaderValue::from_str(&one_line(&deny.rule).replace(|c: char| !c.is_ascii(), "?"))
            .unwrap_or(HeaderValue::from_static("unprintable"))
    });
    resp.headers_mut().insert(RULE_HEADER, rule);
    resp
}

/// The refusal of a CONNECT (or SOCKS5) target that the interceptor denied.
pub(crate) fn tunnel_refusal(method: &str, target: &Target, deny: Deny) -> Refusal {
    Refusal {
        status: StatusCode::FORBIDDEN,
        message: format!(
            "paddock: {} refused by {} ({:?})\n",
            describe(method, target),
            one_line(&deny.rule),
            one_line(&deny.reason)
        )
        .into(),
        rule: deny.rule.into(),
        reason: deny.reason,
        hint: None,
        allowed: false,
        address: None,
        via: None,
    }
}
