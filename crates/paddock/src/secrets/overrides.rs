//! What a server may take from a request instead of its request line, decided by the
//! host's `[[network.http]]` rules as the request line is: a method in an override header
//! (`X-HTTP-Method-Override` and the like, each value of a list) or a `_method` query
//! parameter, a path in a rewrite header (`X-Original-URL`, `X-Rewrite-URL`).

use paddock_policy::Policy;
use paddock_proxy::{Deny, RequestParts};

/// A method or a path that a server may take from the request instead of its request
/// line's (override headers, `_method`, rewrite headers), refused by the host's rules:
/// the refusal. `rule`: the one that allowed the request as it stands.
pub(crate) fn refused(policy: &Policy, req: &RequestParts<'_>, rule: &str) -> Option<Deny> {
    // A method a server may take instead of the request line's is decided too.
    let overrides = match method_overrides(req.headers, req.path_and_query) {
        Ok(o) => o,
        Err(reason) => return Some(Deny { rule: rule.to_string(), reason, exfiltration: false }),
    };
    for (place, other) in overrides {
        let o = policy.decide_http(&other, req.host, req.port, req.path_and_query);
        if !o.is_allow() {
            let reason = format!("{place} asks for {other}: {}", o.reason);
            return Some(Deny { rule: o.rule.to_string(), reason, exfiltration: false });
        }
    }
    // So is a path a server may take from a header instead (IIS, Symfony, some proxies).
    for (name, value) in req.headers.iter().filter(|(n, _)| PATH_OVERRIDES.contains(&n.as_str())) {
        let Ok(path) = value.to_str() else {
            let reason = format!("a `{name}` header that is not text: the path a server would take is unknown");
            return Some(Deny { rule: rule.to_string(), reason, exfiltration: false });
        };
        let o = policy.decide_http(req.method.as_str(), req.host, req.port, path);
        if !o.is_allow() {
            let reason = format!("`{name}` asks for another path: {}", o.reason);
            return Some(Deny { rule: o.rule.to_string(), reason, exfiltration: false });
        }
    }
    None
}

/// Headers through which a client names another method than its request line's (Google
/// APIs, Rails, ASP.NET and others honour them on a `POST`), lower case as hyper keeps them.
const METHOD_OVERRIDES: &[&str] = &["x-http-method-override", "x-http-method", "x-method-override"];

/// Headers through which a client names another path than its request line's.
const PATH_OVERRIDES: &[&str] = &["x-original-url", "x-rewrite-url"];

/// Every method a server may take instead of the request line's, with where it was
/// written: each comma-separated value of an override header (middleware takes the first,
/// others the last) and each `_method` query parameter (Express, Laravel, Symfony). `Err`:
/// a header that is not text, whose method cannot be known.
fn method_overrides(headers: &paddock_proxy::http::HeaderMap, target: &str) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    for (name, value) in headers.iter().filter(|(n, _)| METHOD_OVERRIDES.contains(&n.as_str())) {
        let value = value
            .to_str()
            .map_err(|_| format!("a `{name}` header that is not text: the method a server would take is unknown"))?;
        for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            found.push((format!("`{name}: {value}`"), m.to_string()));
        }
    }
    let query = target.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or("")).unwrap_or("");
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decoded(key).eq_ignore_ascii_case("_method") {
            let m = decoded(value);
            if !m.trim().is_empty() {
                found.push(("the query's `_method`".to_string(), m.trim().to_string()));
            }
        }
    }
    Ok(found)
}

/// A query component as a server reads it: `+` a space, `%XX` its byte (lossy).
fn decoded(s: &str) -> String {
    String::from_utf8_lossy(&super::inspect::percent_decoded(&s.replace('+', " "))).into_owned()
}
