//! The review's sections on requests the proxy saw in plain text (`http.request`) and on
//! exfiltration attempts: per secret (which calls used which key for which host and path),
//! per host (requests, bytes, statuses), and every attempt to send a placeholder elsewhere.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::escape::Escaped;
use crate::payload::{Decision, Exfiltration, HttpRequest};

/// One secret and the requests it was injected into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretUsage {
    /// The secret's name.
    pub secret: String,
    /// Requests it was injected into.
    pub requests: u64,
    /// Timestamp of the first.
    pub first: String,
    /// Timestamp of the last.
    pub last: String,
    /// What it was used for, grouped by host, method and path, most used first.
    pub targets: Vec<SecretTarget>,
}

/// Requests with one secret to one `METHOD host path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretTarget {
    /// `host:port`.
    pub host: String,
    /// The method.
    pub method: String,
    /// The path (query values dropped).
    pub path: String,
    /// How many requests.
    pub count: u64,
    /// The calls that sent them (distinct, in log order).
    pub calls: Vec<String>,
    /// `seq` of the last one.
    pub last_seq: u64,
}

/// Requests to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpHostTraffic {
    /// `host:port`.
    pub host: String,
    /// Requests seen.
    pub requests: u64,
    /// Of which refused by paddock.
    pub refused: u64,
    /// Request body bytes.
    pub bytes_up: u64,
    /// Response body bytes.
    pub bytes_down: u64,
    /// Count per upstream status (`"200"`), plus `"refused"` and `"failed"`.
    pub statuses: BTreeMap<String, u64>,
}

/// One refused attempt to send a secret's placeholder to a host it does not belong to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExfiltrationAttempt {
    /// The record's `seq`.
    pub seq: u64,
    /// The record's timestamp.
    pub ts: String,
    /// The call, if known.
    pub call_id: Option<String>,
    /// The secret whose placeholder it was.
    pub secret: String,
    /// `host:port` it went to.
    pub host: String,
    /// `METHOD path`, when it was a request.
    pub request: Option<String>,
    /// Why it was refused.
    pub reason: String,
}

#[derive(Default)]
pub(super) struct HttpBuilder {
    secrets: BTreeMap<String, SecretUsage>,
    hosts: BTreeMap<String, HttpHostTraffic>,
    exfiltration: Vec<ExfiltrationAttempt>,
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl HttpBuilder {
    pub(super) fn request(&mut self, seq: u64, ts: &str, r: &HttpRequest) {
        let host = authority(&r.host, r.port);
        let h = self.hosts.entry(host.clone()).or_insert_with(|| HttpHostTraffic {
            host: host.clone(),
            requests: 0,
            refused: 0,
            bytes_up: 0,
            bytes_down: 0,
            statuses: BTreeMap::new(),
        });
        h.requests += 1;
        h.bytes_up += r.bytes_up;
        h.bytes_down += r.bytes_down;
        let status = match (r.verdict, r.status, &r.error) {
            (Decision::Deny, _, _) => "refused".to_string(),
            (_, Some(s), _) => s.to_string(),
            (_, None, _) => "failed".to_string(),
        };
        if r.verdict == Decision::Deny {
            h.refused += 1;
        }
        *h.statuses.entry(status).or_default() += 1;
        let (Some(secret), Decision::Allow) = (&r.secret, r.verdict) else { return };
        let s = self.secrets.entry(secret.clone()).or_insert_with(|| SecretUsage {
            secret: secret.clone(),
            requests: 0,
            first: ts.to_string(),
            last: ts.to_string(),
            targets: Vec::new(),
        });
        s.requests += 1;
        s.last = ts.to_string();
        let t = match s.targets.iter_mut().find(|t| t.host == host && t.method == r.method && t.path == r.path) {
            Some(t) => t,
            None => {
                s.targets.push(SecretTarget {
                    host,
                    method: r.method.clone(),
                    path: r.path.clone(),
                    count: 0,
                    calls: Vec::new(),
                    last_seq: seq,
                });
                s.targets.last_mut().expect("just pushed")
            }
        };
        t.count += 1;
        t.last_seq = seq;
        if let Some(c) = &r.call_id {
            if !t.calls.contains(c) {
                t.calls.push(c.clone());
            }
        }
    }

    pub(super) fn exfiltration(&mut self, seq: u64, ts: &str, e: &Exfiltration) {
        self.exfiltration.push(ExfiltrationAttempt {
            seq,
            ts: ts.to_string(),
            call_id: e.call_id.clone(),
            secret: e.secret.clone(),
            host: authority(&e.host, e.port),
            request: e.method.as_ref().map(|m| format!("{m} {}", e.path.as_deref().unwrap_or(""))),
            reason: e.reason.clone(),
        });
    }

    pub(super) fn finish(self) -> (Vec<SecretUsage>, Vec<HttpHostTraffic>, Vec<ExfiltrationAttempt>) {
        let mut secrets: Vec<SecretUsage> = self.secrets.into_values().collect();
        for s in &mut secrets {
            s.targets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.host, &a.path).cmp(&(&b.host, &b.path))));
        }
        secrets.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.secret.cmp(&b.secret)));
        let mut hosts: Vec<HttpHostTraffic> = self.hosts.into_values().collect();
        hosts.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.host.cmp(&b.host)));
        (secrets, hosts, self.exfiltration)
    }
}

/// The human form of the three sections.
pub(super) fn render(
    f: &mut fmt::Formatter<'_>,
    secrets: &[SecretUsage],
    hosts: &[HttpHostTraffic],
    exfiltration: &[ExfiltrationAttempt],
) -> fmt::Result {
    writeln!(f, "\nSecrets used ({}):", secrets.len())?;
    if secrets.is_empty() {
        writeln!(f, "  none")?;
    }
    for s in secrets {
        writeln!(
            f,
            "  {}: {} requests, first {}, last {}",
            Escaped(&s.secret),
            s.requests,
            Escaped(&s.first),
            Escaped(&s.last)
        )?;
        for t in s.targets.iter().take(8) {
            let calls = t.calls.len();
            writeln!(
                f,
                "      {:>4}x  {} {}{}  by {calls} call{}  (last seq {})",
                t.count,
                Escaped(&t.method),
                Escaped(&t.host),
                Escaped(&t.path),
                if calls == 1 { "" } else { "s" },
                t.last_seq
            )?;
        }
        if s.targets.len() > 8 {
            writeln!(f, "      ... and {} more (see --json)", s.targets.len() - 8)?;
        }
    }
    writeln!(f, "\nRequests by host ({}):", hosts.len())?;
    if hosts.is_empty() {
        writeln!(f, "  none")?;
    }
    for h in hosts {
        let statuses: Vec<String> = h.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        writeln!(
            f,
            "  {}: {} requests ({} refused), {} B up, {} B down; {}",
            Escaped(&h.host),
            h.requests,
            h.refused,
            h.bytes_up,
            h.bytes_down,
            statuses.join(", ")
        )?;
    }
    writeln!(f, "\nExfiltration attempts ({}):", exfiltration.len())?;
    if exfiltration.is_empty() {
        writeln!(f, "  none")?;
    }
    for e in exfiltration {
        let req = e.request.as_deref().map(|r| format!(" {}", Escaped(r))).unwrap_or_default();
        writeln!(
            f,
            "  seq {} {}: secret {} to {}{req}: {}",
            e.seq,
            Escaped(&e.ts),
            Escaped(&e.secret),
            Escaped(&e.host),
            Escaped(&e.reason)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::payload::{Decision, Exfiltration, HttpRequest};
    use crate::{review, AuditLog, Event};

    #[test]
    fn sections_per_secret_per_host_and_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let ok = |c: &str, p: &str| {
            HttpRequest::new("GET", "api.test", 443, p, Decision::Allow)
                .with_call("s", c)
                .with_rule("network.http[0].allow[0]", None)
                .with_response(Some(200), 3, 10)
                .with_secret(Some("gh".into()))
        };
        log.append(&Event::HttpRequest(ok("c1", "/repos/x?token=abc"))).unwrap();
        log.append(&Event::HttpRequest(ok("c2", "/repos/x?token=def"))).unwrap();
        let denied = HttpRequest::new("DELETE", "api.test", 443, "/repos/x", Decision::Deny)
            .with_rule("network.http[0].deny[0]", Some("denied".into()));
        log.append(&Event::HttpRequest(denied)).unwrap();
        let ex = Exfiltration::new("gh", "evil.test", 443, "secrets.gh", "placeholder in header \u{1b}[31m")
            .with_request("POST", "/steal");
        log.append(&Event::Exfiltration(ex)).unwrap();
        drop(log);
        let rules = vec!["secrets.gh".to_string(), "secrets.unused".to_string()];
        let r = review(&path, None, &rules).unwrap();
        assert_eq!(r.secrets.len(), 1);
        let s = &r.secrets[0];
        assert_eq!((s.secret.as_str(), s.requests), ("gh", 2));
        assert_eq!(s.targets[0].path, "/repos/x?token=", "query values are dropped");
        assert_eq!((s.targets[0].count, s.targets[0].calls.clone()), (2, vec!["c1".to_string(), "c2".to_string()]));
        let h = &r.http_hosts[0];
        assert_eq!((h.host.as_str(), h.requests, h.refused, h.bytes_down), ("api.test:443", 3, 1, 20));
        assert_eq!((h.statuses["200"], h.statuses["refused"]), (2, 1));
        assert_eq!(r.exfiltration.len(), 1);
        assert_eq!(r.unused_grants, ["secrets.unused"], "an injected secret is a used grant");
        assert!(r.denied.iter().any(|d| d.summary == "DELETE api.test:443/repos/x"));
        let text = r.to_string();
        assert!(
            text.contains("Secrets used (1):") && text.contains("2x  GET api.test:443/repos/x?token=  by 2 calls"),
            "{text}"
        );
        assert!(
            text.contains("Exfiltration attempts (1):") && text.contains("secret gh to evil.test:443 POST /steal"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "escaped: {text}");
        assert!(!text.contains("abc") && !text.contains("def"));
    }
}
