//! [`CallInterceptor`]: the proxy's [`Interceptor`] for one call of a session: the
//! session's policy (revocations re-read as for hosts), its secrets, and its audit log.

use std::sync::Arc;

use paddock_audit::{Decision as AuditDecision, Event, Exfiltration, HttpRequest};
use paddock_policy::{normalize_host, Policy};
use paddock_proxy::{ConnectionEvent, Deny, HttpEvent, Interceptor, RequestParts, RequestVerdict};

use super::inspect::{self, Place, Substitution};
use super::kept::Kept;
use super::overrides::taken;
use super::Broker;
use crate::net::blocking;
use crate::session::inner::Inner;

/// The interceptor of one call (its records carry the call's id).
pub(crate) struct CallInterceptor {
    pub inner: Arc<Inner>,
    pub call_id: String,
    /// What the requests let through asked for besides their request lines, decided
    /// again with them while they stream (`still`).
    pub taken: Kept,
}

impl CallInterceptor {
    fn policy(&self) -> Arc<Policy> {
        blocking(|| self.inner.policy())
    }
}

fn exfiltration(name: &str, reason: String) -> Deny {
    Deny { rule: format!("secrets.{name}"), reason, exfiltration: true }
}

/// Decides one request seen in plain text and, when it may go, puts the secrets in:
/// placeholders where they must never be (exfiltration), then the host's request rules,
/// then each secret's revocation and source, then the substitution.
// Long on purpose: that order is the security property (no value is read for a request
// that leaks a placeholder or that the rules refuse), easiest to check in one function.
pub(crate) fn decide_request(policy: &Policy, broker: Option<&Broker>, req: &mut RequestParts<'_>) -> RequestVerdict {
    let method = req.method.as_str();
    let entries = broker.map(|b| b.entries.as_slice()).unwrap_or_default();
    let placeholders: Vec<&str> = entries.iter().map(|e| e.placeholder.as_str()).collect();
    let found = inspect::find(&placeholders, method, req.host, req.path_and_query, req.headers);
    let host = normalize_host(req.host).ok();
    let authority = match &host {
        Some(h) => h.authority(req.port),
        None => format!("{}:{}", req.host, req.port),
    };
    for (i, place) in &found {
        let name = &entries[*i].name;
        let covered = host.as_ref().is_some_and(|h| policy.secrets.get(name).is_some_and(|s| s.covers(h, req.port)));
        match place {
            Place::Target | Place::Host | Place::HeaderName | Place::Method => {
                return RequestVerdict::Deny(exfiltration(
                    name,
                    format!(
                        "the placeholder of secret `{name}` is {} of a request to {authority}: a secret goes in a header's value only",
                        place.describe()
                    ),
                ))
            }
            _ if !covered => {
                return RequestVerdict::Deny(exfiltration(
                    name,
                    format!(
                        "the placeholder of secret `{name}` was sent to {authority} ({}), which is not among its hosts",
                        place.describe()
                    ),
                ))
            }
            Place::Header(_) | Place::BasicAuth => {
                // Only in the secret's own header: an API that echoes another header's
                // bad value in its error would hand the value to the child.
                let header = policy.secrets.get(name).map(|s| s.header.as_str()).unwrap_or_default();
                let named = match place {
                    Place::Header(h) => h.as_str(),
                    _ => "authorization",
                };
                if !named.eq_ignore_ascii_case(header) {
                    return RequestVerdict::Deny(Deny {
                        rule: format!("secrets.{name}"),
                        reason: format!(
                            "the placeholder of secret `{name}` is {}; it goes in the `{header}` header only (`header` in [secrets.{name}])",
                            place.describe()
                        ),
                        exfiltration: false,
                    });
                }
            }
        }
    }
    let d = policy.decide_http(method, req.host, req.port, req.path_and_query);
    if !d.is_allow() {
        return RequestVerdict::Deny(Deny { rule: d.rule.to_string(), reason: d.reason, exfiltration: false });
    }
    if let Some(deny) = super::overrides::refused(policy, req, &d.rule) {
        return RequestVerdict::Deny(deny);
    }
    let mut used: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
    used.sort_unstable();
    used.dedup();
    if used.is_empty() {
        return RequestVerdict::Allow { secret: None };
    }
    if !req.tls {
        let name = &entries[used[0]].name;
        return RequestVerdict::Deny(Deny {
            rule: format!("secrets.{name}"),
            reason: format!(
                "secret `{name}` goes only over TLS: this is a plain-HTTP request to {authority} (use https://)"
            ),
            exfiltration: false,
        });
    }
    let mut values = Vec::with_capacity(used.len());
    for &i in &used {
        let e = &entries[i];
        if let Some(refusal) = policy.secret_refusal(&e.name) {
            return RequestVerdict::Deny(Deny {
                rule: refusal.rule.to_string(),
                reason: refusal.reason,
                exfiltration: false,
            });
        }
        match blocking(|| e.value()) {
            Ok(v) => values.push((i, v)),
            Err(err) => {
                return RequestVerdict::Deny(Deny {
                    rule: format!("secrets.{}", e.name),
                    reason: format!("secret `{}` has no value: {err}", e.name),
                    exfiltration: false,
                })
            }
        }
    }
    let rules: Vec<_> = values.iter().filter_map(|(i, _)| policy.secrets.get(&entries[*i].name)).collect();
    let subs: Vec<Substitution<'_>> = values
        .iter()
        .zip(&rules)
        .map(|((i, v), r)| Substitution {
            name: &entries[*i].name,
            placeholder: &entries[*i].placeholder,
            header: &r.header,
            format: &r.format,
            value: v.expose(),
        })
        .collect();
    if subs.len() != used.len() {
        return RequestVerdict::Deny(Deny {
            rule: "secrets".into(),
            reason: "a secret of this session is no longer in the policy".into(),
            exfiltration: false,
        });
    }
    if let Err(why) = inspect::rewrite(req.headers, &subs) {
        let rule = format!("secrets.{}", subs[0].name);
        return RequestVerdict::Deny(Deny { rule, reason: why, exfiltration: false });
    }
    let names: Vec<&str> = subs.iter().map(|s| s.name).collect();
    RequestVerdict::Allow { secret: Some(names.join(",")) }
}

/// A request let through, still streaming, decided again: its host's request rules and
/// every secret put in it, as the policy (its revocations) stands now.
fn still_allowed(policy: &Policy, e: &HttpEvent) -> Option<Deny> {
    let d = policy.decide_http(&e.method, &e.host, e.port, &e.path);
    if !d.is_allow() {
        return Some(Deny { rule: d.rule.to_string(), reason: d.reason, exfiltration: false });
    }
    let names = e.secret.as_deref().unwrap_or_default().split(',').filter(|n| !n.is_empty());
    names.filter_map(|n| policy.secret_refusal(n)).next().map(|r| Deny {
        rule: r.rule.to_string(),
        reason: r.reason,
        exfiltration: false,
    })
}

/// A tunnel that stays opaque: refused when its CONNECT target or SNI holds a placeholder.
pub(crate) fn decide_tunnel(broker: Option<&Broker>, host: &str, port: u16, sni: Option<&str>) -> Option<Deny> {
    for e in broker.map(|b| b.entries.as_slice()).unwrap_or_default() {
        let p = e.placeholder.to_ascii_lowercase();
        let (h, s) = (host.to_ascii_lowercase(), sni.map(str::to_ascii_lowercase));
        let place = if h.contains(&p) {
            "in the CONNECT target"
        } else if s.as_deref().is_some_and(|s| s.contains(&p)) {
            "in the TLS server name (SNI)"
        } else {
            continue;
        };
        return Some(exfiltration(
            &e.name,
            format!("the placeholder of secret `{}` is {place} of a tunnel to port {port}: refused", e.name),
        ));
    }
    None
}

impl Interceptor for CallInterceptor {
    fn intercepts(&self, host: &str, port: u16) -> bool {
        self.policy().intercepts(host, port)
    }

    fn request(&self, req: &mut RequestParts<'_>) -> RequestVerdict {
        let policy = self.policy();
        let verdict = decide_request(&policy, self.inner.broker(), req);
        if let (RequestVerdict::Allow { .. }, Ok(pairs)) = (&verdict, taken(req, Vec::new())) {
            if let Err(deny) = self.taken.keep(req, pairs) {
                return RequestVerdict::Deny(deny);
            }
        }
        verdict
    }

    fn tunnel(&self, host: &str, port: u16, sni: Option<&str>) -> Option<Deny> {
        decide_tunnel(self.inner.broker(), host, port, sni)
    }

    fn still(&self, e: &HttpEvent) -> Option<Deny> {
        let policy = self.policy();
        still_allowed(&policy, e).or_else(|| self.taken.decide(&policy, e))
    }

    fn reads_forms(&self, host: &str, port: u16) -> bool {
        let policy = self.policy();
        normalize_host(host).is_ok_and(|h| policy.http.for_host(&h, port).next().is_some())
    }

    fn form(&self, req: &RequestParts<'_>, body: &[u8]) -> Option<Deny> {
        match super::overrides::decide_form(&self.policy(), req, body) {
            Ok(pairs) => self.taken.keep(req, pairs).err(),
            Err(deny) => Some(deny),
        }
    }

    fn record(&self, e: HttpEvent) {
        let verdict = if e.denied.is_some() { AuditDecision::Deny } else { AuditDecision::Allow };
        let (rule, reason) = match &e.denied {
            Some(d) => (Some(d.rule.clone()), Some(d.reason.clone())),
            // The rule that let it go, for the review (the query never decides).
            None => (Some(self.policy().decide_http(&e.method, &e.host, e.port, &e.path).rule.to_string()), None),
        };
        let mut r = HttpRequest::new(e.method.clone(), e.host.clone(), e.port, &e.path, verdict)
            .with_call(self.inner.id.clone(), self.call_id.clone())
            .with_response(e.status, e.bytes_up, e.bytes_down)
            .with_secret(e.secret.clone())
            .with_error(e.error.clone());
        if let Some(rule) = rule {
            r = r.with_rule(rule, reason);
        }
        let mut events = vec![Event::HttpRequest(r)];
        if let Some(d) = e.denied.as_ref().filter(|d| d.exfiltration) {
            let name = d.rule.strip_prefix("secrets.").unwrap_or(&d.rule);
            let x = Exfiltration::new(name, e.host.clone(), e.port, d.rule.clone(), d.reason.clone())
                .with_call(self.inner.id.clone(), self.call_id.clone())
                .with_request(e.method.clone(), &e.path);
            events.push(Event::Exfiltration(x));
        }
        for ev in &events {
            if let Err(err) = blocking(|| self.inner.log.append(ev)) {
                tracing::error!("audit log: {} not recorded: {err}", ev.kind());
            }
        }
        if let Some(d) = &e.denied {
            // An `http_request` call reports the proxy's refusal as its decision.
            crate::net::keep_refusal(&self.call_id, &refusal_event(&e, d));
        }
        tracing::debug!(method = %e.method, host = %e.host, port = e.port, status = ?e.status, secret = ?e.secret, "request");
    }
}

fn refusal_event(e: &HttpEvent, d: &Deny) -> ConnectionEvent {
    ConnectionEvent {
        host: e.host.clone(),
        port: e.port,
        address: None,
        verdict: paddock_proxy::Verdict::Denied,
        rule: d.rule.clone(),
        reason: d.reason.clone(),
        bytes_up: e.bytes_up,
        bytes_down: e.bytes_down,
        duration: std::time::Duration::ZERO,
        kind: paddock_proxy::Kind::Http,
        status: 403,
        error: None,
        hint: None,
        via: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::overrides::decide_taken;
    use paddock_policy::Vars;
    use paddock_proxy::http::{HeaderMap, HeaderValue, Method};

    /// A policy of `api.test` with these `[[network.http]]` lines.
    fn rules(http: &str) -> Policy {
        let text =
            format!("version = 1\n[network]\nallow = [\"api.test\"]\n[[network.http]]\nhost = \"api.test\"\n{http}\n");
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", &text, &vars).unwrap()
    }

    /// `f` of `POST /repos/x` to api.test with `headers`.
    fn post_to_repos<R>(headers: &mut HeaderMap, f: impl FnOnce(&RequestParts<'_>) -> R) -> R {
        let method = Method::POST;
        f(&RequestParts {
            method: &method,
            host: "api.test",
            port: 443,
            path_and_query: "/repos/x",
            headers,
            tls: true,
        })
    }

    /// Decides `method target` to api.test with `headers`, without secrets.
    fn decide(p: &Policy, method: Method, target: &str, headers: &[(&'static str, &str)]) -> RequestVerdict {
        let mut h = HeaderMap::new();
        for (name, value) in headers {
            h.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let parts = &mut RequestParts {
            method: &method,
            host: "api.test",
            port: 443,
            path_and_query: target,
            headers: &mut h,
            tls: true,
        };
        decide_request(p, None, parts)
    }

    fn policy() -> Policy {
        let text = r#"version = 1
[network]
allow = ["api.test", "other.test"]
[secrets.gh]
from = "env:GH_SOURCE"
hosts = ["api.test"]
env = "GITHUB_TOKEN"
[[network.http]]
host = "api.test"
deny = ["DELETE **"]
"#;
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", text, &vars).unwrap()
    }

    fn ask(p: &Policy, b: &Broker, method: Method, host: &str, path: &str, auth: &str) -> (RequestVerdict, HeaderMap) {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(auth).unwrap());
        let v = decide_request(
            p,
            Some(b),
            &mut RequestParts { method: &method, host, port: 443, path_and_query: path, headers: &mut h, tls: true },
        );
        (v, h)
    }

    #[test]
    fn injected_for_its_hosts_refused_elsewhere() {
        let p = policy();
        let b = Broker::new(&p, &|k| (k == "GH_SOURCE").then(|| "ghp_REAL".to_string())).unwrap().unwrap();
        let ph = b.placeholder("gh").unwrap().to_string();
        assert_eq!(b.child_env(&p), vec![("GITHUB_TOKEN".to_string(), ph.clone())]);
        let (v, h) = ask(&p, &b, Method::GET, "api.test", "/x", &format!("Bearer {ph}"));
        assert_eq!(v, RequestVerdict::Allow { secret: Some("gh".into()) });
        assert_eq!(h["authorization"], "Bearer ghp_REAL");
        let (v, h) = ask(&p, &b, Method::GET, "other.test", "/x", &format!("Bearer {ph}"));
        let RequestVerdict::Deny(d) = v else { panic!("{v:?}") };
        assert!(d.exfiltration && d.rule == "secrets.gh" && d.reason.contains("other.test:443"), "{d:?}");
        assert!(!h["authorization"].to_str().unwrap().contains("ghp_REAL"));
        let (v, _) = ask(&p, &b, Method::GET, "api.test", &format!("/x?t={ph}"), "none");
        assert!(matches!(v, RequestVerdict::Deny(Deny { exfiltration: true, .. })), "{v:?}");
        let (v, _) = ask(&p, &b, Method::DELETE, "api.test", "/x", &format!("Bearer {ph}"));
        assert!(
            matches!(&v, RequestVerdict::Deny(Deny { rule, exfiltration: false, .. }) if rule == "network.http[0].deny[0]"),
            "{v:?}"
        );
        let (v, _) = ask(&p, &b, Method::GET, "api.test", "/x", "Bearer something-else");
        assert_eq!(v, RequestVerdict::Allow { secret: None });
        assert!(decide_tunnel(Some(&b), &format!("{ph}.other.test"), 443, None).is_some_and(|d| d.exfiltration));
        assert!(decide_tunnel(Some(&b), "other.test", 443, Some(&ph.to_uppercase())).is_some());
        assert!(decide_tunnel(Some(&b), "other.test", 443, Some("other.test")).is_none());
    }

    #[test]
    fn a_method_named_in_an_override_header_is_decided_too() {
        let p = policy();
        for (name, value, target, allowed) in [
            ("x-http-method-override", "DELETE", "/x", false),
            ("x-http-method", " delete ", "/x", false),
            ("x-method-override", "DELETE", "/x", false),
            // A list: middleware takes the first value, others the last.
            ("x-http-method-override", "DELETE, GET", "/x", false),
            ("x-http-method-override", "GET,DELETE", "/x", false),
            // `_method` in the query (Express, Laravel, Symfony), encoded or not.
            ("x-other", "", "/x?a=1&_method=DELETE", false),
            ("x-other", "", "/x?_METHOD=del%45te", false),
            ("x-other", "", "/x?%5Fmethod=DELETE", false),
            // As PHP reads a key: `.` and ` ` made `_`, leading spaces dropped; `;` between.
            ("x-other", "", "/x?.method=DELETE", false),
            ("x-other", "", "/x?+_method=DELETE", false),
            ("x-other", "", "/x?%20_method=DELETE", false),
            ("x-other", "", "/x?a=1;_method=DELETE", false),
            // As CGI, WSGI and PHP read a header's name: `_` for `-`.
            ("x_http_method_override", "DELETE", "/x", false),
            ("X_Http_Method", "DELETE", "/x", false),
            // lighttpd makes every byte of a name but letters and digits `_`.
            ("x.http.method.override", "DELETE", "/x", false),
            ("x~http~method~override", "DELETE", "/x", false),
            ("x*http-method_override", "DELETE", "/x", false),
            // PHP cuts a key at a NUL.
            ("x-other", "", "/x?_method%00x=DELETE", false),
            // As `qs` (Express) and Rack read a key: `[_method]`, an array's first value.
            ("x-other", "", "/x?%5B_method%5D=DELETE", false),
            ("x-other", "", "/x?[_method]=DELETE", false),
            ("x-other", "", "/x?_method[]=DELETE", false),
            ("x-other", "", "/x?_method[0]=DELETE", false),
            ("x-other", "", "/x?payment_method=DELETE", false),
            ("x-http-method-override", "PATCH", "/x?_method=GET", true),
            // A method under any key that mentions `method` is decided too.
            ("x-other", "", "/x?method=DELETE", false),
            ("x-other", "", "/x?http_method=delete", false),
            ("x-other", "", "/x?method=card", true),
        ] {
            match decide(&p, Method::POST, target, &[(name, value)]) {
                RequestVerdict::Allow { .. } => assert!(allowed, "{name}: {value} {target}"),
                RequestVerdict::Deny(d) => {
                    assert!(!allowed, "{name}: {value} {target}: {d:?}");
                    assert_eq!(d.rule, "network.http[0].deny[0]");
                    assert!(d.reason.contains(name) || d.reason.contains("_method"), "{d:?}");
                }
            }
        }
    }

    #[test]
    fn override_fields_are_known_by_name_and_ordinary_fields_pass() {
        let p = rules("allow = [\"POST /x\", \"GET /x\"]");
        // Flask's `__METHOD_OVERRIDE__` is an override field: decided under the allow list.
        for target in ["/x?__METHOD_OVERRIDE__=DELETE", "/x?__method_override__=delete"] {
            assert!(matches!(decide(&p, Method::POST, target, &[]), RequestVerdict::Deny(_)), "{target}");
        }
        // A bare `method` as an array, and keys that only start with `_method_`, are
        // ordinary fields (a checkbox list, an id): not refused for what they hold.
        for target in ["/x?method[]=credit%20card", "/x?method[0]=card", "/x?method[]=a,b", "/x?_method_id=12"] {
            assert!(matches!(decide(&p, Method::POST, target, &[]), RequestVerdict::Allow { .. }), "{target}");
        }
    }

    #[test]
    fn a_request_naming_too_many_methods_or_paths_is_refused() {
        let p = rules("deny = [\"DELETE **\"]");
        // Distinct override values: each would be decided with every path.
        let many: Vec<String> = (0..100).map(|i| format!("_method=V{}", "A".repeat(i + 1))).collect();
        let target = format!("/x?{}", many.join("&"));
        let RequestVerdict::Deny(d) = decide(&p, Method::POST, &target, &[]) else { panic!("100 methods") };
        assert!(d.reason.contains("at most 64"), "{d:?}");
        // The same value a thousand times is one method.
        let same = vec!["shipping_method=fast"; 1000].join("&");
        assert!(matches!(decide(&p, Method::POST, &format!("/x?{same}"), &[]), RequestVerdict::Allow { .. }));
    }

    #[test]
    fn a_method_override_and_a_path_override_are_decided_together() {
        let p = rules("deny = [\"DELETE /admin\"]");
        let both = [("x-http-method-override", "DELETE"), ("x-original-url", "/admin")];
        assert!(matches!(decide(&p, Method::POST, "/x", &both[..1]), RequestVerdict::Allow { .. }));
        assert!(matches!(decide(&p, Method::POST, "/x", &both[1..]), RequestVerdict::Allow { .. }));
        let RequestVerdict::Deny(d) = decide(&p, Method::POST, "/x", &both) else {
            panic!("each alone is allowed, together not")
        };
        assert!(d.rule == "network.http[0].deny[0]" && d.reason.contains("`DELETE /admin`"), "{d:?}");
    }

    /// Whether the rules of `p` refuse a form `body` of `content_type` (none: untyped).
    fn form_refused(p: &Policy, content_type: &str, body: &str) -> Option<Deny> {
        let mut h = HeaderMap::new();
        if !content_type.is_empty() {
            h.append("content-type", HeaderValue::from_str(content_type).unwrap());
        }
        post_to_repos(&mut h, |req| super::super::overrides::refused_in_form(p, req, body.as_bytes()))
    }

    /// A multipart body of these parts (headers, value) under the boundary `BB`.
    fn multipart(parts: &[(&str, &str)]) -> String {
        let mut body = String::new();
        for (headers, value) in parts {
            body += &format!("--BB\r\n{headers}\r\n\r\n{value}\r\n");
        }
        body + "--BB--\r\n"
    }

    #[test]
    fn a_method_in_a_form_body_is_decided_too() {
        let allow_list = rules("allow = [\"POST /repos/**\"]\ndeny = [\"DELETE **\"]");
        let deny_only = rules("deny = [\"DELETE **\"]");
        let mp = "multipart/form-data; boundary=BB";
        let l1 = "application/x-www-form-urlencoded; charset=iso-8859-1";
        let twilio = "To=%2B15558675310&From=%2B15017122661&Url=http%3A%2F%2Fdemo.twilio.com%2Fdocs%2Fvoice.xml&Method=GET&StatusCallbackMethod=GET";
        let method = multipart(&[
            ("Content-Disposition: form-data; name=\"f\"", "v"),
            ("Content-Disposition: form-data; name=\"_method\"", "DELETE"),
        ]);
        for (content_type, body, allowed) in [
            ("application/x-www-form-urlencoded", "a=1&_method=DELETE".to_string(), false),
            ("application/x-www-form-urlencoded; charset=utf-8", "_method=delete".into(), false),
            ("application/x-www-form-urlencoded", "_method%5B%5D=DELETE".into(), false),
            ("", "_method=DELETE".into(), false),
            // `qs` (Express's `urlencoded({extended: true})`) reads `[_method]` as `_method`.
            ("application/x-www-form-urlencoded", "[_method]=DELETE".into(), false),
            ("application/x-www-form-urlencoded", "%5B_method%5D=DELETE".into(), false),
            ("application/x-www-form-urlencoded", "_method[0]=DELETE".into(), false),
            (mp, method.clone(), false),
            ("multipart/form-data; boundary=\"BB\"", method.clone(), false),
            ("multipart/mixed; boundary=BB", method.clone(), false),
            (mp, multipart(&[("Content-Disposition: form-data; name=_method", "DELETE")]), false),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"[_method]\"", "DELETE")]), false),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"%5Fmethod\"", "DELETE")]), false),
            // Ordinary forms go.
            ("application/x-www-form-urlencoded", "a=1&method=DELETE".into(), false),
            ("application/x-www-form-urlencoded", "a=1&payment_method=card".into(), true),
            // Found by a fourteenth attack: bytes a server trims that Rust's `trim` keeps,
            // Unicode upper-casing, character references (`qs`); and a method in lower case
            // is the method (an allow list's `POST` lets `post` through).
            ("application/x-www-form-urlencoded", "_method=DELETE%1F".into(), false),
            ("application/x-www-form-urlencoded", "_method=%00DELETE".into(), false),
            ("application/x-www-form-urlencoded", "_method=%EF%BB%BFDELETE%E2%80%8B".into(), false),
            ("application/x-www-form-urlencoded", "_method=%26%2368%3BELETE".into(), false),
            ("application/x-www-form-urlencoded", "_method=d%C4%B1elete".into(), false),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"_method\"", "DELETE\u{1f}")]), false),
            ("application/x-www-form-urlencoded", "delivery_method=post&_method=post".into(), true),
            // Found by a seventeenth attack (body-parser's `interpretNumericEntities` under
            // a latin-1 form; `qs` splits at `&` only and keeps `&#65604;` as `D`): an
            // override field's value that is not letters and `-` is refused outright; a
            // field that mentions `method` is read under both splits, its references both
            // ways.
            (l1, "_method=%26%2368;ELETE&a=".into(), false),
            (l1, "_method=%26%2368;%26%2369;%26%2376;%26%2369;%26%2384;E".into(), false),
            (l1, "_method=%26%231114180%3BELETE".into(), false),
            (l1, "_method=%26%234294967364%3BELETE".into(), false),
            (l1, "_method=%26%2365604%3BELETE".into(), false),
            (l1, "share_method=%26%2368;ELETE".into(), false),
            (l1, "share_method=%26%231114180%3BELETE".into(), false),
            (l1, "share_method=%26%234294967364%3BELETE".into(), false),
            ("application/x-www-form-urlencoded", "_method=PUT;a=1".into(), false),
            ("application/x-www-form-urlencoded", "_method=+DELETE+".into(), false),
            ("application/x-www-form-urlencoded", "__method=DELETE".into(), false),
            ("application/x-www-form-urlencoded", "x-http-method-override=DELETE".into(), false),
            // The Kelvin sign lower-cases to `k` (`method-override` lower-cases).
            ("application/x-www-form-urlencoded", "_method=DEL%E2%84%AAETE".into(), false),
            ("application/x-www-form-urlencoded", "_method=%C7%B0".into(), false),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"_method\"", "DELETE ")]), false),
            // An override field without a value names no method.
            ("application/x-www-form-urlencoded", "_method=&a=1".into(), true),
            // A field that only mentions `method` need not be on the allow list (Twilio's
            // `Method`, `StatusCallbackMethod`); only a denied method there is refused.
            ("application/x-www-form-urlencoded", twilio.into(), true),
            ("application/x-www-form-urlencoded", "share_method=link".into(), true),
            ("application/x-www-form-urlencoded", "share_method=Link1".into(), true),
            ("application/x-www-form-urlencoded", "shipping_method=post".into(), true),
            ("application/x-www-form-urlencoded", "Method=GET&StatusCallbackMethod=delete".into(), false),
            ("application/x-www-form-urlencoded; charset=ISO-8859-1", "_charset_=utf-8&a=1".into(), true),
            ("application/x-www-form-urlencoded; charset=windows-1251", "a=1".into(), true),
            ("application/x-www-form-urlencoded; charset=KOI8-R", "a=1".into(), true),
            ("application/x-www-form-urlencoded; charset=windows-874", "a=1".into(), true),
            ("application/x-www-form-urlencoded; charset=ISO-8859-8-I", "a=1".into(), true),
            ("application/x-www-form-urlencoded; charset=macintosh", "a=1".into(), true),
            ("application/x-www-form-urlencoded; charset=latin2", "a=1".into(), true),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"payment_method\"", "card")]), true),
            ("application/json", "{\"_method\":\"DELETE\"}".into(), true),
            // Charsets that do not keep ASCII as it is.
            ("application/x-www-form-urlencoded; charset=utf-16", "a=1".into(), false),
            ("application/x-www-form-urlencoded; charset=\"UTF-7\"", "a=1".into(), false),
            ("application/x-www-form-urlencoded; charset=Shift_JIS", "a=1".into(), false),
            ("application/x-www-form-urlencoded; charset=iso-2022-jp", "a=1".into(), false),
            ("application/x-www-form-urlencoded", "_charset_=cp037&a=1".into(), false),
            (mp, multipart(&[("Content-Disposition: form-data; name=_charset_", "utf-7")]), false),
            (
                mp,
                multipart(&[(
                    "Content-Disposition: form-data; name=f\r\nContent-Type: text/plain; charset=utf-16",
                    "a",
                )]),
                false,
            ),
        ] {
            // Each refused by the deny list alone too (an allow list hides what `DELETE`
            // reads as otherwise: any unknown method is off it).
            for p in [&allow_list, &deny_only] {
                let refused = form_refused(p, content_type, &body);
                assert_eq!(refused.is_none(), allowed, "{content_type}: {body:?}: {refused:?}");
            }
        }
        // Multipart bodies parsers read differently (each found by an attack to hide a
        // `_method` from a reader, or from one parser but not another), refused whatever
        // the rules; the same bodies with plain names and boundaries are read and decided.
        for (content_type, body) in [
            // Part headers: broken by white space, folded, ended by a lone CR or LF.
            (mp, "--BB\r\nX-A: 1\r\n \r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--BB--\r\n".to_string()),
            (mp, "--BB\r\nContent-Disposition: form-data;\r\n\tname=_method\r\n\r\nDELETE\r\n--BB--\r\n".into()),
            (mp, "--BB\rContent-Disposition: form-data; name=\"_method\"\r\rDELETE\r--BB--\r".into()),
            (mp, "--BB\nContent-Disposition: form-data; name=\"_method\"\n\nDELETE\n--BB--\n".into()),
            (mp, "--BB\r\nContent-Disposition: form-data; name=f\r\n\r\nx\n--BB\r\nContent-Disposition: form-data; name=_method\r\n\r\nDELETE\r\n--BB--\r\n".into()),
            // Names: RFC 2231, continued, in a foreign charset, RFC 2047, comments, escapes.
            (mp, multipart(&[("Content-Disposition: form-data; name*=UTF-8''%5Fmethod", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name*0=\"_me\"; name*1=\"thod\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name*=utf-7''+AF8-method", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"=?utf-8?b?X21ldGhvZA==?=\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=_method(c)", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=(c)_method", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=(x)\"_method\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"\\_method\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=f; name=_method", "DELETE")])),
            // Values in a transfer encoding, behind a decoy header or not.
            (mp, multipart(&[("Content-Disposition: form-data; name=_method\r\nContent-Transfer-Encoding: base64", "REVMRVRF")])),
            (mp, multipart(&[("X-Content-Transfer-Encoding: 7bit\r\nContent-Disposition: form-data; name=_method\r\nContent-Transfer-Encoding: base64", "REVMRVRF")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=_method\r\nContent-Transfer-Encoding: quoted-printable", "=44ELETE")])),
            // Boundaries: several, a list, RFC 2231, comments, escapes, white space, none
            // that the body begins with, a preamble.
            ("multipart/form-data; boundary=AA; boundary=BB", method.clone()),
            ("multipart/form-data; boundary=BB,CC", method.clone()),
            ("multipart/form-data; boundary*=UTF-8''BB", method.clone()),
            ("multipart/form-data; boundary=BB(c)", method.clone()),
            ("multipart/form-data; boundary=(c)BB", method.clone()),
            ("multipart/form-data; boundary=\"\\BB\"", method.clone()),
            ("multipart/form-data; boundary=BB abc", method.clone()),
            ("multipart/form-data; boundary=YY", method.clone()),
            ("multipart/form-data", method.clone()),
            ("multipart/form-data; BOUNDARY=BB", method.clone()),
            // Found by an eleventh attack: werkzeug and Python's `email` end an unquoted
            // boundary at `/`, `:`, `=`, `?` or `,`; `email` reads `x'y'z` as RFC 2231;
            // Rack and PHP look for `boundary=` anywhere in the type.
            ("multipart/form-data; boundary=BB/CC", format!("--BB/CC\r\nContent-Disposition: form-data; name=a\r\n\r\n{method}\r\n--BB/CC--\r\n")),
            ("multipart/form-data; boundary=BB:CC", method.clone()),
            ("multipart/form-data; boundary=us-ascii'en'BB", method.clone()),
            ("multipart/form-data; boundary=\"BB,CC\"", method.clone()),
            ("multipart/form-data; boundary=\"xboundary=BB\"", method.clone()),
            // Found by a twelfth attack: a part without headers (werkzeug and Rack read its
            // first lines as headers), `name=` inside a filename (formidable takes the
            // first), a `filename*` not in RFC 8187 form (busboy, Rack), a part named by
            // its `Content-ID` (Rack).
            (mp, format!("--BB\r\n\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n{method}")),
            (mp, "--BB\n\nContent-Disposition: form-data; name=\"_method\"\n\nDELETE\n--BB--\n".into()),
            (mp, multipart(&[("Content-Disposition: form-data; filename*=utf-8'\"'; name=_method; x=\"y\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; filename*= \"x;name=_method;y\"; name=\"b\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; filename=\"x; name=_method\"; name=\"b\"", "DELETE")])),
            (mp, multipart(&[("Content-ID: <_method>", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; filename=\"_method\"", "DELETE")])),
            // Found by a thirteenth attack: where a name ends (`]`, `*`: werkzeug, email,
            // formidable), a long disposition Rack ignores for the `Content-ID`, `name=`
            // in a filename (formidable), escaped quotes Django and Rack read otherwise.
            (mp, multipart(&[("Content-Disposition: form-data; name=_method]x", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; name=_method*x", "DELETE")])),
            (mp, multipart(&[(&format!("Content-Disposition: form-data; name=\"{}\"\r\nContent-ID: _method", "a".repeat(1600)), "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; filename=\"x; name=_method\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; filename=\"x name=_method\"; filename*=utf-8''y", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; filename=\"a\"\\\"; name=_method; filename=\"\"", "DELETE")])),
            (mp, multipart(&[("Content-Disposition: form-data; FILENAME=\"a\"\\\"; name=_method; x=\"\"", "DELETE")])),
            (mp, format!("{method}--BB\r\nContent-Disposition: form-data; name=_method\r\n\r\nDELETE\r\n--BB--\r\n")),
        ] {
            for p in [&allow_list, &deny_only] {
                let refused = form_refused(p, content_type, &body);
                assert!(refused.is_some(), "{content_type}: {body:?} let through");
            }
        }
        // What clients send goes: curl -F, a browser's file upload, undici's boundary; a
        // file's text is not read as the form's (`--` lines, `$method =`, `method=REQUEST`,
        // a charset, a header).
        let browser = "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW";
        let browser_body = "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.sql\"\r\nContent-Type: application/sql\r\n\r\n-- schema\r\nCREATE TABLE t (a int) DEFAULT CHARSET=utf8mb4;\r\n--\r\n$method = $_SERVER['REQUEST_METHOD'];\r\nBEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nContent-Type: text/calendar; charset=\"ISO-2022-JP\"; method=REQUEST\r\nname=_method\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n";
        let method_free = multipart(&[("Content-Disposition: form-data; name=\"a\"", "1")]);
        let go = multipart(&[(
            "Content-Disposition: form-data; name=\"file\"; filename=\"C:\\\\dir\\\\a\\\"b.txt\"; filename*=UTF-8''a%C3%A9.txt",
            "x",
        )]);
        let email = "--===============123==\nContent-Type: application/json\n\n{}\n--===============123==\nContent-Type: text/plain\n\ndata\n--===============123==--\n";
        let undici = "multipart/form-data; boundary=----formdata-undici-032818516151";
        let undici_body = "------formdata-undici-032818516151\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n------formdata-undici-032818516151--";
        for (content_type, body) in [
            (browser, browser_body.to_string()),
            (undici, undici_body.to_string()),
            (mp, multipart(&[("Content-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary", "\u{1}\u{2}--x")])),
            ("multipart/related; boundary=BB", multipart(&[("Content-Type: application/json; charset=UTF-8", "{\"name\":\"x\"}"), ("Content-Type: text/plain", "data")])),
            (mp, go),
            // `name=` in a file's name (undici writes it as given).
            (mp, multipart(&[("Content-Disposition: form-data; name=\"f\"; filename=\"last name=Smith.txt\"\r\nContent-Type: text/plain", "hello")])),
            ("multipart/related; boundary=\"===============123==\"", email.to_string()),
            (mp, format!("This is a multi-part message in MIME format.\r\n{method_free}\r\n")),
        ] {
            for p in [&allow_list, &deny_only] {
                let refused = form_refused(p, content_type, &body);
                assert!(refused.is_none(), "{content_type}: {body:?}: {refused:?}");
            }
        }
        // A field name in a page's legacy charset (not UTF-8) is read.
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("multipart/form-data; boundary=BB"));
        let latin1 = b"--BB\r\nContent-Disposition: form-data; name=\"pr\xe9nom\"\r\n\r\nx\r\n--BB--\r\n";
        assert!(
            post_to_repos(&mut h, |req| super::super::overrides::refused_in_form(&deny_only, req, latin1)).is_none()
        );
        // A type with a byte Python strips (`\xa0`): read, and refused.
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_bytes(b"\xa0application/x-www-form-urlencoded").unwrap());
        assert!(
            post_to_repos(&mut h, |req| super::super::overrides::refused_in_form(&deny_only, req, b"a=1")).is_some()
        );
        // Two types: a server may read either.
        let mut h = HeaderMap::new();
        h.append("content-type", HeaderValue::from_static("application/json"));
        h.append("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
        assert!(
            post_to_repos(&mut h, |req| super::super::overrides::refused_in_form(&deny_only, req, b"a=1")).is_some()
        );
        // A body a server would decode first (body-parser inflates gzip and deflate).
        for (coding, allowed) in [("gzip", false), ("deflate", false), ("br", false), ("identity", true)] {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
            h.insert("content-encoding", HeaderValue::from_static(coding));
            let refused =
                post_to_repos(&mut h, |req| super::super::overrides::refused_in_form(&allow_list, req, b"a=1"));
            assert_eq!(refused.is_none(), allowed, "{coding}: {refused:?}");
        }
    }

    /// Whether the rules of `p` refuse a `POST /repos/x` with a form `body` of
    /// `content_type` and the query of `target`.
    fn refused_bytes(p: &Policy, content_type: &str, target: &str, body: &[u8]) -> Option<Deny> {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_str(content_type).unwrap());
        let method = Method::POST;
        let req = RequestParts {
            method: &method,
            host: "api.test",
            port: 443,
            path_and_query: target,
            headers: &mut h,
            tls: true,
        };
        super::super::overrides::refused_in_form(p, &req, body)
    }

    #[test]
    fn a_method_is_read_as_the_most_lenient_server_reads_it() {
        // Found by a seventeenth attack against Express 5, body-parser 2 (`qs`) and
        // `method-override`; and Rack, whose multipart parts carry their charset.
        let deny_only = rules("deny = [\"DELETE **\", \"LOCK **\", \"LINK **\", \"GET /repos/x\"]");
        let allow_list = rules("allow = [\"POST /repos/**\"]\ndeny = [\"DELETE **\", \"LOCK **\", \"LINK **\"]");
        let form = "application/x-www-form-urlencoded";
        let mp = "multipart/form-data; boundary=BB";
        let part = |head: &str, value: &[u8]| {
            [format!("--BB\r\n{head}\r\n\r\n").as_bytes(), value, b"\r\n--BB--\r\n"].concat()
        };
        for (content_type, target, body, refused_deny_only, refused_allow_list) in [
            // A `HEAD` runs the `GET` handler: decided as `GET`.
            (form, "/repos/x", b"_method=HEAD".to_vec(), true, true),
            (form, "/repos/x", b"_method=head".to_vec(), true, true),
            (form, "/repos/x?_method=HEAD", Vec::new(), true, true),
            (form, "/repos/x", b"share_method=head".to_vec(), true, false),
            // The Kelvin sign: refused in an override field, read as `K` elsewhere.
            (form, "/repos/x", b"_method=LOC%E2%84%AA".to_vec(), true, true),
            (form, "/repos/x?_method=loc%E2%84%AA", Vec::new(), true, true),
            (mp, "/repos/x", part("Content-Disposition: form-data; name=\"_method\"", "loc\u{212a}".as_bytes()), true, true),
            (form, "/repos/x", b"share_method=loc%E2%84%AA".to_vec(), true, true),
            (form, "/repos/x?share_method=LOC%E2%84%AA", Vec::new(), true, true),
            (form, "/repos/x", b"share_method=%C5%BF".to_vec(), false, false),
            // A byte above 127 in a declared single-byte charset may be a letter
            // (windows-1254's `\xfd` is `\u{131}`, `I` to Ruby's `upcase`).
            ("application/x-www-form-urlencoded; charset=windows-1254", "/repos/x", b"share_method=L%FDNK".to_vec(), true, true),
            (form, "/repos/x", b"_charset_=windows-1254&share_method=L%FDNK".to_vec(), true, true),
            (mp, "/repos/x", part("Content-Disposition: form-data; name=\"share_method\"\r\nContent-Type: text/plain; charset=windows-1254", b"L\xfdNK"), true, true),
            (mp, "/repos/x", part("Content-Disposition: form-data; name=\"_method\"\r\nContent-Type: text/plain; charset=windows-1254", b"L\xfdNK"), true, true),
            ("multipart/form-data; boundary=BB; charset=windows-1254", "/repos/x", part("Content-Disposition: form-data; name=\"share_method\"", b"\xfdL\xfdNK\xa0"), true, true),
            // In UTF-8 such a byte is no letter to any server.
            (form, "/repos/x", b"share_method=L%FDNK".to_vec(), false, false),
            (mp, "/repos/x", part("Content-Disposition: form-data; name=\"share_method\"", b"L\xfdNK"), false, false),
            // A field that only mentions `method`: its denied methods only.
            (form, "/repos/x", b"To=1&Method=GET&StatusCallbackMethod=GET".to_vec(), true, false),
            (form, "/repos/x", b"share_method=link".to_vec(), true, true),
            (form, "/repos/x", b"share_method=copy".to_vec(), false, false),
            // An override field: as the request line.
            (form, "/repos/x", b"_method=PATCH".to_vec(), false, true),
            (form, "/repos/x", b"_method=post".to_vec(), false, false),
            (form, "/repos/x", b"_HttpMethod=PATCH".to_vec(), false, true),
            (form, "/repos/x", b"X_HTTP_METHOD=PATCH".to_vec(), false, true),
            // A long legacy value (a file) is not read letter by letter.
            ("multipart/form-data; boundary=BB; charset=windows-1254", "/repos/x", part("Content-Disposition: form-data; name=f; filename=x\r\nContent-Type: text/calendar; method=REQUEST", &[b"\xfd".repeat(4000), b"x".repeat(40)].concat()), false, false),
        ] {
            for (p, refused) in [(&deny_only, refused_deny_only), (&allow_list, refused_allow_list)] {
                let d = refused_bytes(p, content_type, target, &body);
                assert_eq!(d.is_some(), refused, "{content_type} {target} {:?}: {d:?}", String::from_utf8_lossy(&body));
            }
        }
        // The reason names what is wrong with an override's value.
        let d = refused_bytes(
            &deny_only,
            "application/x-www-form-urlencoded; charset=iso-8859-1",
            "/repos/x",
            b"_method=%26%2368;ELETE",
        )
        .unwrap();
        assert!(d.reason.contains("`_method` is `&#68;ELETE`") && d.reason.contains("not a plain method"), "{d:?}");
        // Headers too: a plain method, `HEAD` as `GET`.
        for (value, refused) in
            [("HEAD", true), ("head", true), ("PATCH", false), ("DELETE;x", true), ("PUT, GET", true), ("PUT", false)]
        {
            let v = decide(&deny_only, Method::POST, "/repos/x", &[("x-http-method-override", value)]);
            assert_eq!(matches!(v, RequestVerdict::Deny(_)), refused, "{value}: {v:?}");
        }
    }

    #[test]
    fn what_an_override_took_is_decided_again_once_its_rule_is_revoked() {
        let mut p = rules("allow = [\"POST /repos/**\", \"PUT /repos/**\"]");
        let mut h = HeaderMap::new();
        h.insert("x-http-method-override", HeaderValue::from_static("PUT"));
        let pairs = post_to_repos(&mut h, |req| taken(req, Vec::new())).unwrap();
        assert_eq!(
            pairs.iter().map(|t| (t.method.as_str(), t.path.as_str())).collect::<Vec<_>>(),
            [("PUT", "/repos/x")]
        );
        assert_eq!(decide_taken(&p, "api.test", 443, &pairs), None, "let through");
        p.set_revocations(
            &[(paddock_policy::Revocation::Rule("network.http[0].allow[1]".into()), None)],
            "r.toml".as_ref(),
        )
        .unwrap();
        let d = decide_taken(&p, "api.test", 443, &pairs).expect("refused once the PUT rule is revoked");
        assert!(d.reason.contains("revoked by `rule:network.http[0].allow[1]`"), "{d:?}");
    }

    #[test]
    fn a_path_named_in_a_rewrite_header_is_decided_too() {
        let p = rules("allow = [\"GET /ok/**\"]");
        for (name, path, allowed) in [
            ("x-original-url", "/admin", false),
            ("x-rewrite-url", "/ok/../admin", false),
            ("X_Original_URL", "/admin", false),
            ("x-original-url", "/ok/x", true),
        ] {
            let v = decide(&p, Method::GET, "/ok/y", &[(name, path)]);
            assert_eq!(matches!(v, RequestVerdict::Allow { .. }), allowed, "{name}: {path}: {v:?}");
        }
    }

    #[test]
    fn a_request_still_streaming_is_refused_once_its_rule_or_secret_is_revoked() {
        let mut p = policy();
        let e = |path: &str, secret: Option<&str>| HttpEvent {
            method: "GET".into(),
            host: "api.test".into(),
            port: 443,
            path: path.into(),
            status: Some(200),
            bytes_up: 0,
            bytes_down: 0,
            secret: secret.map(str::to_string),
            denied: None,
            error: None,
        };
        assert_eq!(still_allowed(&p, &e("/x", Some("gh"))), None);
        p.set_revocations(&[(paddock_policy::Revocation::Secret("gh".into()), None)], "r.toml".as_ref()).unwrap();
        let d = still_allowed(&p, &e("/x", Some("gh"))).expect("its secret revoked");
        assert!(d.reason.contains("revoked by `secret:gh`"), "{d:?}");
        assert_eq!(still_allowed(&p, &e("/x", None)), None, "a request without the secret stands");
        p.set_revocations(&[(paddock_policy::Revocation::Network("api.test".into()), None)], "r.toml".as_ref())
            .unwrap();
        assert!(still_allowed(&p, &e("/x", None)).is_some(), "its host revoked");
    }

    #[test]
    fn revoked_or_missing_secrets_are_refused_naming_them() {
        let mut p = policy();
        let b = Broker::new(&p, &|_| None).unwrap().unwrap();
        let ph = b.placeholder("gh").unwrap().to_string();
        let (v, _) = ask(&p, &b, Method::GET, "api.test", "/x", &format!("Bearer {ph}"));
        let RequestVerdict::Deny(d) = v else { panic!("{v:?}") };
        assert!(d.reason.contains("secret `gh` has no value") && d.reason.contains("GH_SOURCE"), "{d:?}");
        p.set_revocations(&[(paddock_policy::Revocation::Secret("gh".into()), None)], "r.toml".as_ref()).unwrap();
        let (v, _) = ask(&p, &b, Method::GET, "api.test", "/x", &format!("Bearer {ph}"));
        let RequestVerdict::Deny(d) = v else { panic!("{v:?}") };
        assert!(d.reason.contains("revoked by `secret:gh`"), "{d:?}");
    }
}
