//! What the review page shows beyond a [`Review`](super::Review): the calls in order,
//! and the secrets HTTP requests used. Read from the raw lines, so record types this
//! version does not parse (such as `http.request`) still count.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Since;
use crate::error::AuditError;
use crate::payload::Target;
use crate::reader::{Line, LineReader};
use crate::time::parse_ts;

/// One call, from its `call.start` (and `call.end`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRow {
    /// `seq` of its first record.
    pub seq: u64,
    /// When it was decided.
    pub ts: String,
    /// The session.
    pub session: String,
    /// The tool.
    pub tool: String,
    /// What it asked for (argv shell-quoted, path, `METHOD url`).
    pub summary: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The rule that decided.
    pub rule: Option<String>,
    /// Exit code, once ended.
    pub exit_code: Option<i64>,
    /// Duration, once ended.
    pub duration_ms: Option<u64>,
}

/// Uses of one secret by HTTP requests (`http.request` records with a `secret`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretUse {
    /// The secret's name (never its value: the log holds none).
    pub secret: String,
    /// Requests that used it.
    pub uses: u64,
    /// Hosts it was sent to (distinct, sorted).
    pub hosts: Vec<String>,
    /// Last use.
    pub last_use: String,
}

/// The calls and secrets of a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Calls in log order.
    pub calls: Vec<CallRow>,
    /// Secrets, most used first.
    pub secrets: Vec<SecretUse>,
}

/// Reads the calls and secret uses of the log at `path` from `since` on.
pub fn timeline(path: impl AsRef<Path>, since: Option<Since>) -> Result<Timeline, AuditError> {
    let cutoff = since.map(|s| s.cutoff(SystemTime::now()));
    let mut lines = LineReader::open(path.as_ref())?;
    let mut t = Timeline::default();
    let mut by_call: HashMap<String, usize> = HashMap::new();
    let mut secrets: BTreeMap<String, SecretUse> = BTreeMap::new();
    while let Some(line) = lines.next_line()? {
        let Line::Complete { bytes, .. } = line else { continue };
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&bytes) else { continue };
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        let ts = s("ts").unwrap_or_default();
        if let (Some(c), Some(t)) = (cutoff, parse_ts(&ts)) {
            if t < c {
                continue;
            }
        }
        let seq = m.get("seq").and_then(Value::as_u64).unwrap_or(0);
        match s("event").as_deref() {
            Some(ev @ ("call.start" | "call.end")) => {
                let id = s("call_id").unwrap_or_default();
                let i = match by_call.get(&id) {
                    Some(&i) => i,
                    None => {
                        t.calls.push(CallRow {
                            seq,
                            ts: ts.clone(),
                            session: s("session").unwrap_or_default(),
                            tool: s("tool").unwrap_or_default(),
                            summary: summary(&m),
                            decision: s("decision").unwrap_or_default(),
                            rule: s("rule"),
                            exit_code: None,
                            duration_ms: None,
                        });
                        by_call.insert(id, t.calls.len() - 1);
                        t.calls.len() - 1
                    }
                };
                if ev == "call.end" {
                    t.calls[i].exit_code = m.get("exit_code").and_then(Value::as_i64);
                    t.calls[i].duration_ms = m.get("duration_ms").and_then(Value::as_u64);
                }
            }
            Some("http.request") => {
                let Some(secret) = s("secret").filter(|x| !x.is_empty()) else { continue };
                let e = secrets.entry(secret.clone()).or_insert_with(|| SecretUse {
                    secret,
                    uses: 0,
                    hosts: Vec::new(),
                    last_use: ts.clone(),
                });
                e.uses += 1;
                e.last_use = ts;
                if let Some(h) = s("host").or_else(|| s("url").map(|u| host_of(&u))) {
                    if let Err(i) = e.hosts.binary_search(&h) {
                        e.hosts.insert(i, h);
                    }
                }
            }
            _ => {}
        }
    }
    t.secrets = secrets.into_values().collect();
    t.secrets.sort_by(|a, b| b.uses.cmp(&a.uses).then_with(|| a.secret.cmp(&b.secret)));
    Ok(t)
}

fn summary(m: &Map<String, Value>) -> String {
    match serde_json::from_value::<Target>(Value::Object(m.clone())) {
        Ok(t) => t.describe(),
        Err(_) => String::new(),
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    auth.rsplit('@').next().unwrap_or(auth).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_by_use_and_calls_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let lines = [
            r#"{"seq":1,"ts":"2026-03-01T12:00:00.000Z","event":"call.start","prev":"0","call_id":"c1","session":"s","tool":"command","argv":["git","push"],"decision":"allow","rule":"commands.allow[0]"}"#,
            r#"{"seq":2,"ts":"2026-03-01T12:00:01.000Z","event":"http.request","prev":"0","method":"POST","url":"https://api.github.com/x","secret":"GITHUB_TOKEN"}"#,
            r#"{"seq":3,"ts":"2026-03-01T12:00:02.000Z","event":"http.request","prev":"0","method":"GET","host":"registry.npmjs.org","secret":"NPM_TOKEN"}"#,
            r#"{"seq":4,"ts":"2026-03-01T12:00:03.000Z","event":"http.request","prev":"0","method":"GET","url":"https://u:p@api.github.com/y","secret":"GITHUB_TOKEN"}"#,
            r#"{"seq":5,"ts":"2026-03-01T12:00:04.000Z","event":"http.request","prev":"0","method":"GET","url":"https://a/","secret":""}"#,
            r#"{"seq":6,"ts":"2026-03-01T12:00:05.000Z","event":"call.end","prev":"0","call_id":"c1","session":"s","tool":"command","argv":["git","push"],"decision":"allow","exit_code":1,"signal":null,"duration_ms":7}"#,
        ];
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let t = timeline(&p, None).unwrap();
        assert_eq!(t.calls.len(), 1);
        assert_eq!(
            (t.calls[0].summary.as_str(), t.calls[0].exit_code, t.calls[0].duration_ms),
            ("git push", Some(1), Some(7))
        );
        let s: Vec<_> =
            t.secrets.iter().map(|s| (s.secret.as_str(), s.uses, s.hosts.join(","), s.last_use.as_str())).collect();
        assert_eq!(
            s,
            [
                ("GITHUB_TOKEN", 2, "api.github.com".to_owned(), "2026-03-01T12:00:03.000Z"),
                ("NPM_TOKEN", 1, "registry.npmjs.org".to_owned(), "2026-03-01T12:00:02.000Z")
            ]
        );
    }
}
