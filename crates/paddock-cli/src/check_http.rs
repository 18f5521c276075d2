//! `paddock check --http 'METHOD URL'`: a request decided as the session's proxy would,
//! without sending it: the connection (the policy by name, then the address), the host's
//! `[[network.http]]` rules, and the secrets that would be injected (those whose `hosts`
//! name it, when the request carries their placeholder), revoked ones said so.

use std::sync::Arc;

use paddock_audit::Escaped;
use paddock_policy::{Decision, Policy};

/// A parsed `--http` argument.
pub struct Request {
    method: String,
    target: paddock::proxy::Target,
    path: String,
}

/// `METHOD URL` or `URL` (GET): an absolute `http://` or `https://` URL without userinfo.
pub fn parse(raw: &str) -> Result<Request, String> {
    let mut words = raw.split_whitespace();
    let (method, url) = match (words.next(), words.next(), words.next()) {
        (Some(url), None, None) => ("GET".to_string(), url),
        (Some(m), Some(url), None) => (m.to_string(), url),
        _ => return Err("expected 'METHOD URL'".into()),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("`{method}` is not a method (upper case, e.g. GET or POST)"));
    }
    let (scheme, rest) = url.split_once("://").ok_or("not an absolute URL (http:// or https://)")?;
    let port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        other => return Err(format!("scheme `{other}` is not http or https")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err("the URL has userinfo (`user@host`): name the host only".into());
    }
    let target = paddock::proxy::parse_authority(authority, Some(port)).map_err(|e| e.to_string())?;
    let path = path.split('#').next().unwrap_or("");
    let path = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    Ok(Request { method, target, path })
}

/// The answer.
pub struct HttpCheck {
    /// The decision on the request.
    pub decision: Decision,
    request: String,
    address: Option<String>,
    intercepted: bool,
    secrets: Vec<String>,
    revoked: Vec<(String, String)>,
    /// Secrets whose `env:` source variable is unset or empty here: a session started
    /// with this environment has no value for them, and injects nothing.
    unset: Vec<(String, String)>,
}

/// Decides `r` under `policy`.
pub fn decide(policy: Arc<Policy>, r: &Request) -> HttpCheck {
    let host = r.target.host.to_string();
    let port = r.target.port;
    let request = format!("{} {}{}", r.method, r.target.authority(), r.path);
    let c = paddock::decide_connection(&policy, &r.target);
    let mut out = HttpCheck {
        decision: c.decision.clone(),
        request,
        address: c.address.map(|a| a.to_string()),
        intercepted: policy.intercepts(&host, port),
        secrets: Vec::new(),
        revoked: Vec::new(),
        unset: Vec::new(),
    };
    if !c.decision.is_allow() {
        return out;
    }
    let http = policy.decide_http(&r.method, &host, port, &r.path);
    if !http.is_allow() || http.rule.starts_with("network.http[") {
        out.decision = http.clone();
    }
    if http.is_allow() {
        // A `_method` in the query is decided as the proxy decides it.
        let (method, mut headers) = (paddock::proxy::http::Method::from_bytes(r.method.as_bytes()), Default::default());
        if let Ok(method) = method {
            let req = paddock::proxy::RequestParts {
                method: &method,
                host: &host,
                port,
                path_and_query: &r.path,
                headers: &mut headers,
                tls: true,
            };
            if let Some(d) = paddock::secrets::override_refusal(&policy, &req, &http.rule) {
                let verdict = paddock_policy::Verdict::Deny;
                out.decision = paddock_policy::Decision { verdict, rule: d.rule.into(), reason: d.reason };
            }
        }
    }
    if let Ok(h) = paddock_policy::normalize_host(&host) {
        // The session reads the variable when it starts, as this does.
        let unset: Vec<(&str, &str)> = policy.secrets.unset_here().map(|(s, var)| (s.name.as_str(), var)).collect();
        for s in policy.secrets.for_host(&h, port) {
            match (policy.secret_refusal(&s.name), unset.iter().find(|(n, _)| *n == s.name)) {
                (Some(d), _) => out.revoked.push((s.name.clone(), d.reason)),
                (None, Some((_, var))) => out.unset.push((s.name.clone(), var.to_string())),
                (None, None) => out.secrets.push(s.name.clone()),
            }
        }
    }
    out
}

impl HttpCheck {
    /// `{"decision","rule","reason","intercepted","secrets","revoked_secrets","unset_secrets"}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "decision": self.decision.verdict.as_str(),
            "rule": &*self.decision.rule,
            "reason": self.decision.reason,
            "request": self.request,
            "address": self.address,
            "intercepted": self.intercepted,
            "secrets": self.secrets,
            "revoked_secrets": self.revoked.iter().map(|(n, why)| serde_json::json!({"secret": n, "reason": why})).collect::<Vec<_>>(),
            "unset_secrets": self.unset.iter().map(|(n, var)| serde_json::json!({"secret": n, "variable": var})).collect::<Vec<_>>(),
        })
    }

    /// One line for the decision, then what interception would do.
    pub fn human(&self) -> String {
        let d = &self.decision;
        let mut s = format!("{}: {} ({})", d.verdict.as_str(), Escaped(&d.reason), Escaped(&d.rule));
        if let Some(a) = &self.address {
            s += &format!("; address {a}");
        }
        if d.is_allow() {
            s += if self.intercepted {
                "\n  intercepted: the proxy terminates TLS for this host and sees the request"
            } else {
                "\n  not intercepted: an end-to-end tunnel (only its name is checked)"
            };
            for n in &self.secrets {
                s +=
                    &format!("\n  secret `{}` would be injected where the request carries its placeholder", Escaped(n));
            }
            for (n, var) in &self.unset {
                s += &format!(
                    "\n  secret `{}` would not be injected: its source variable {} is unset (or empty) here, so a session started like this has no value for it",
                    Escaped(n),
                    Escaped(var)
                );
            }
            for (n, why) in &self.revoked {
                s += &format!("\n  secret `{}` would be refused: {}", Escaped(n), Escaped(why));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn requests_parse() {
        let r = parse("POST https://API.github.com/repos/acme/x?a=1#f").unwrap();
        assert_eq!((r.method.as_str(), r.target.port, r.path.as_str()), ("POST", 443, "/repos/acme/x?a=1"));
        let r = parse("http://h.test:8080").unwrap();
        assert_eq!((r.method.as_str(), r.target.port, r.path.as_str()), ("GET", 8080, "/"));
        for bad in ["", "get https://h.test/", "GET ftp://h.test/", "GET https://u:p@h.test/", "GET h.test", "A B C"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
