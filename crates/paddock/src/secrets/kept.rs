//! What the requests of one call let through asked for besides their request lines (a
//! method in an override header or a `_method`, a path in a rewrite header), kept so that
//! a request still streaming is decided again with it ([`Interceptor::still`]): revoking
//! the rule only an override needed cuts that request too.
//!
//! Kept by request as its record names it (method, host, port, path without query
//! values), for the call's life: requests of one name may stream side by side, so the end
//! of one never drops what another took. At most [`MAX_KEPT`] names per call; a request
//! with overrides under a new name beyond them is refused.
//!
//! [`Interceptor::still`]: paddock_proxy::Interceptor::still

use std::collections::HashMap;
use std::sync::Mutex;

use paddock_policy::Policy;
use paddock_proxy::{Deny, HttpEvent, RequestParts};

use super::overrides::{decide_taken, Taken};

/// The most request names whose overrides one call keeps.
pub(crate) const MAX_KEPT: usize = 4096;

/// The rule of a request refused because its call keeps [`MAX_KEPT`] names already.
pub(crate) const RULE_KEPT: &str = "proxy.overrides";

/// The most method and path pairs kept under one request name (one request names at
/// most 64 methods with 8 paths; requests of one name together at most this).
pub(crate) const MAX_PAIRS: usize = 4096;

/// The most bytes of kept pairs (methods, paths, where they were written) in one call.
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// The overrides of one call's requests, by request name.
#[derive(Debug, Default)]
pub(crate) struct Kept(Mutex<(HashMap<String, Vec<Taken>>, usize)>);

impl Kept {
    /// Keeps what `req`, let through, asked for besides its request line (`pairs`, each
    /// kept once). `Err`: the call keeps [`MAX_KEPT`] names already (refuse `req`).
    pub(crate) fn keep(&self, req: &RequestParts<'_>, pairs: Vec<Taken>) -> Result<(), Deny> {
        if pairs.is_empty() {
            return Ok(());
        }
        let path = paddock_proxy::redact_path(req.path_and_query);
        let key = name(req.method.as_str(), req.host, req.port, &path);
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (kept, bytes) = &mut *guard;
        if !kept.contains_key(&key) && kept.len() >= MAX_KEPT {
            let reason = format!(
                "this call sent requests with method or path overrides under {MAX_KEPT} names already; each is kept to be decided again while it streams, and no more are"
            );
            return Err(Deny { rule: RULE_KEPT.into(), reason, exfiltration: false });
        }
        let entry = kept.entry(key).or_default();
        for p in pairs {
            if entry.contains(&p) {
                continue;
            }
            let size = p.by.len() + p.method.len() + p.path.len();
            if entry.len() >= MAX_PAIRS || *bytes + size > MAX_BYTES {
                let reason = format!(
                    "requests of this call took more methods and paths besides their own than are kept ({MAX_PAIRS} under one name, {} MiB in all) to be decided again while they stream",
                    MAX_BYTES >> 20
                );
                return Err(Deny { rule: RULE_KEPT.into(), reason, exfiltration: false });
            }
            *bytes += size;
            entry.push(p);
        }
        Ok(())
    }

    /// The refusal, under `policy` as it stands, of what any request named as `e` is
    /// asked for besides its request line.
    pub(crate) fn decide(&self, policy: &Policy, e: &HttpEvent) -> Option<Deny> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let pairs = guard.0.get(&name(&e.method, &e.host, e.port, &e.path))?;
        decide_taken(policy, &e.host, e.port, pairs)
    }
}

/// A request as its record names it: method, host, port, path without query values.
fn name(method: &str, host: &str, port: u16, path: &str) -> String {
    format!("{method} {host}:{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::{Revocation, Vars};
    use paddock_proxy::http::{HeaderMap, HeaderValue, Method};

    fn policy() -> Policy {
        let text = "version = 1\n[network]\nallow = [\"api.test\"]\n[[network.http]]\nhost = \"api.test\"\nallow = [\"POST /repos/**\", \"PUT /repos/**\"]\n";
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", text, &vars).unwrap()
    }

    /// Keeps what `POST target` with `override_to` in `X-HTTP-Method-Override` asked for.
    fn keep(kept: &Kept, target: &str, override_to: Option<&str>) -> Result<(), Deny> {
        let (method, mut headers) = (Method::POST, HeaderMap::new());
        if let Some(m) = override_to {
            headers.insert("x-http-method-override", HeaderValue::from_str(m).unwrap());
        }
        let req = RequestParts {
            method: &method,
            host: "api.test",
            port: 443,
            path_and_query: target,
            headers: &mut headers,
            tls: true,
        };
        let pairs = super::super::overrides::taken(&req, Vec::new()).unwrap();
        kept.keep(&req, pairs)
    }

    fn event(path: &str) -> HttpEvent {
        HttpEvent {
            method: "POST".into(),
            host: "api.test".into(),
            port: 443,
            path: path.into(),
            status: None,
            bytes_up: 0,
            bytes_down: 0,
            secret: None,
            denied: None,
            error: None,
        }
    }

    #[test]
    fn what_one_request_took_stays_while_others_of_its_name_come_and_go() {
        let mut p = policy();
        let kept = Kept::default();
        // A streams under `PUT`; B, of the same name, asks for nothing more.
        keep(&kept, "/repos/x?x=1", Some("PUT")).unwrap();
        keep(&kept, "/repos/x?x=2", None).unwrap();
        keep(&kept, "/repos/x?x=1", Some("PUT")).unwrap();
        assert_eq!(kept.0.lock().unwrap().0.values().map(Vec::len).sum::<usize>(), 1, "kept once");
        assert_eq!(kept.decide(&p, &event("/repos/x?x=")), None, "allowed as it stands");
        p.set_revocations(&[(Revocation::Rule("network.http[0].allow[1]".into()), None)], "r.toml".as_ref()).unwrap();
        let d = kept.decide(&p, &event("/repos/x?x=")).expect("the PUT rule revoked: refused");
        assert!(d.reason.contains("PUT /repos/x?x=1"), "{d:?}");
        assert_eq!(kept.decide(&p, &event("/repos/y")), None, "another name took nothing");
    }

    #[test]
    fn a_call_keeps_a_bounded_number_of_names() {
        let kept = Kept::default();
        for i in 0..MAX_KEPT {
            keep(&kept, &format!("/repos/{i}"), Some("PUT")).unwrap();
        }
        keep(&kept, "/repos/0", Some("PUT")).expect("a name kept already");
        keep(&kept, "/repos/new", None).expect("nothing to keep");
        let d = keep(&kept, "/repos/new", Some("PUT")).unwrap_err();
        assert_eq!(d.rule, RULE_KEPT);
    }
}
