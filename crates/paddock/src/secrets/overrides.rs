//! What a server may take from a request instead of its request line, decided by the
//! host's `[[network.http]]` rules as the request line is: a method in an override header
//! (`X-HTTP-Method-Override` and the like, each value of a list), a `_method` query
//! parameter or form field (urlencoded or multipart), a path in a rewrite header
//! (`X-Original-URL`, `X-Rewrite-URL`).

use paddock_policy::Policy;
use paddock_proxy::{Deny, RequestParts};

use super::form::{encoded_methods, in_form, override_value, Named, Scope};

/// A method or a path that a server may take from the request instead of its request
/// line's (override headers, `_method`, rewrite headers), refused by the host's rules:
/// the refusal. Every method is decided with every path (a server that honours both takes
/// both). `rule`: the one that allowed the request as it stands.
///
/// ```
/// use paddock::policy::{Policy, Vars};
/// use paddock::proxy::{http::{HeaderMap, Method}, RequestParts};
///
/// let text = "version = 1\n[network]\nallow = [\"api.test\"]\n[[network.http]]\nhost = \"api.test\"\ndeny = [\"DELETE **\"]\n";
/// let vars = Vars { workspace: "/ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
/// let policy = Policy::from_toml_str("p.toml", text, &vars).unwrap();
/// let (method, mut headers) = (Method::POST, HeaderMap::new());
/// let req = RequestParts { method: &method, host: "api.test", port: 443, path_and_query: "/x?_method=DELETE", headers: &mut headers, tls: true };
/// let deny = paddock::secrets::override_refusal(&policy, &req, "network.http[0]").unwrap();
/// assert_eq!(deny.rule, "network.http[0].deny[0]");
/// ```
pub fn refused(policy: &Policy, req: &RequestParts<'_>, rule: &str) -> Option<Deny> {
    refused_with(policy, req, rule, Ok(Vec::new()))
}

/// [`refused`], with the methods a form body names besides (`_method` in a form).
#[cfg(test)]
pub(crate) fn refused_in_form(policy: &Policy, req: &RequestParts<'_>, body: &[u8]) -> Option<Deny> {
    decide_form(policy, req, body).err()
}

/// What a request with this form body may take instead of its request line (to keep
/// while it streams), or its refusal: [`refused`], with the methods the form names.
pub(crate) fn decide_form(policy: &Policy, req: &RequestParts<'_>, body: &[u8]) -> Result<Vec<Taken>, Deny> {
    let rule = || policy.decide_http(req.method.as_str(), req.host, req.port, req.path_and_query).rule.to_string();
    decided(policy, req, &rule, in_form(req, body))
}

fn refused_with(
    policy: &Policy,
    req: &RequestParts<'_>,
    rule: &str,
    extra: Result<Vec<Named>, String>,
) -> Option<Deny> {
    decided(policy, req, &|| rule.to_string(), extra).err()
}

/// The pairs `req` may take (with `extra` methods), or the refusal of the first one the
/// host's rules refuse; `rule` names the refusal of a request whose pairs cannot be known.
fn decided(
    policy: &Policy,
    req: &RequestParts<'_>,
    rule: &dyn Fn() -> String,
    extra: Result<Vec<Named>, String>,
) -> Result<Vec<Taken>, Deny> {
    let pairs = extra.and_then(|extra| taken(req, extra)).map_err(|reason| Deny {
        rule: rule(),
        reason,
        exfiltration: false,
    })?;
    match decide_taken(policy, req.host, req.port, &pairs) {
        Some(deny) => Err(deny),
        None => Ok(pairs),
    }
}

/// One method and path a server may take instead of the request line's, where the
/// request says so, and how it is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taken {
    pub by: String,
    pub method: String,
    pub path: String,
    pub scope: Scope,
}

/// Every method a server may take (`extra`: a form's besides) with every path it may
/// take, but the request line's own pair. `Err`: a header whose value cannot be known, or
/// an override that holds no plain method.
pub(crate) fn taken(req: &RequestParts<'_>, extra: Vec<Named>) -> Result<Vec<Taken>, String> {
    let line = Named { place: String::new(), method: req.method.as_str().to_string(), scope: Scope::Full };
    // Each method once (where it was first written), each path once: a request that names
    // thousands (a 1 MiB form of `method=` pairs) costs one decision per distinct one.
    let mut seen = std::collections::HashSet::new();
    let mut methods = Vec::new();
    let all = std::iter::once(line).chain(method_overrides(req.headers, req.path_and_query)?).chain(extra);
    for m in all {
        if seen.insert((m.method.clone(), m.scope)) {
            methods.push(m);
        }
    }
    let mut paths = vec![(String::new(), req.path_and_query.to_string())];
    for (name, value) in req.headers.iter().filter(|(n, _)| named(n.as_str(), PATH_OVERRIDES)) {
        let Ok(path) = value.to_str() else {
            return Err(format!("a `{name}` header that is not text: the path a server would take is unknown"));
        };
        if !paths.iter().any(|(_, p)| p == path) {
            paths.push((format!("`{name}`"), path.to_string()));
        }
    }
    if methods.len() > MAX_METHODS || paths.len() > MAX_PATHS {
        return Err(format!(
            "the request names {} methods and {} paths a server could take instead of its own (at most {MAX_METHODS} and {MAX_PATHS} are decided): refused",
            methods.len(),
            paths.len()
        ));
    }
    let mut pairs = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        for (j, (pplace, path)) in paths.iter().enumerate() {
            if i == 0 && j == 0 {
                continue; // the request as it stands, decided on its own
            }
            let by: Vec<&str> = [m.place.as_str(), pplace.as_str()].into_iter().filter(|p| !p.is_empty()).collect();
            pairs.push(Taken { by: by.join(" with "), method: m.method.clone(), path: path.clone(), scope: m.scope });
        }
    }
    Ok(pairs)
}

/// The refusal of the first pair the host's rules refuse (a [`Scope::DenyOnly`] one by
/// the deny patterns alone).
pub(crate) fn decide_taken(policy: &Policy, host: &str, port: u16, pairs: &[Taken]) -> Option<Deny> {
    pairs.iter().find_map(|t| {
        let refusal = match t.scope {
            Scope::Full => Some(policy.decide_http(&t.method, host, port, &t.path)).filter(|o| !o.is_allow()),
            Scope::DenyOnly => policy.denied_http(&t.method, host, port, &t.path),
        };
        refusal.map(|o| Deny {
            rule: o.rule.to_string(),
            reason: format!("{} asks for `{} {}`: {}", t.by, t.method, t.path, o.reason),
            exfiltration: false,
        })
    })
}

/// The most distinct methods (the request line's included) and paths one request may name
/// for a server to take: every pair is decided, and kept while the request streams.
const MAX_METHODS: usize = 64;
const MAX_PATHS: usize = 8;

/// Headers through which a client names another method than its request line's (Google
/// APIs, Rails, ASP.NET and others honour them on a `POST`), lower case as hyper keeps them.
const METHOD_OVERRIDES: &[&str] = &["x-http-method-override", "x-http-method", "x-method-override"];

/// Headers through which a client names another path than its request line's.
const PATH_OVERRIDES: &[&str] = &["x-original-url", "x-rewrite-url"];

/// Whether header `name` is one of `list`, as a CGI, WSGI or PHP server reads a name: by
/// its letters and digits only, in any case (lighttpd makes every other byte `_`, so
/// `X.HTTP.Method.Override` and `X_HTTP_METHOD_OVERRIDE` are `HTTP_X_HTTP_METHOD_OVERRIDE`).
fn named(name: &str, list: &[&str]) -> bool {
    let letters =
        |s: &str| s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect::<String>();
    let name = letters(name);
    list.iter().any(|l| letters(l) == name)
}

/// Every method a server may take instead of the request line's, with where it was
/// written: each comma-separated value of an override header (middleware takes the first,
/// others the last), which must be a plain method ([`override_value`]), and each method a
/// query's pairs name (Express, Laravel, Symfony read `_method` there: [`encoded_methods`]).
/// `Err`: a header that is not text or not a plain method, whose method cannot be known.
fn method_overrides(headers: &paddock_proxy::http::HeaderMap, target: &str) -> Result<Vec<Named>, String> {
    let mut found = Vec::new();
    for (name, value) in headers.iter().filter(|(n, _)| named(n.as_str(), METHOD_OVERRIDES)) {
        let value = value
            .to_str()
            .map_err(|_| format!("a `{name}` header that is not text: the method a server would take is unknown"))?;
        let place = format!("`{name}: {value}`");
        for m in value.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()) {
            if let Some(method) = override_value(m.as_bytes()).map_err(|why| format!("{place} {why}"))? {
                found.push(Named { place: place.clone(), method, scope: Scope::Full });
            }
        }
    }
    let query = target.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or("")).unwrap_or("");
    found.extend(encoded_methods(query, "the query's", false)?);
    Ok(found)
}
