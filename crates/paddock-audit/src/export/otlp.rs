//! Audit records as OpenTelemetry logs: the OTLP/HTTP JSON body of an
//! `ExportLogsServiceRequest`.
//!
//! Each record becomes one log record:
//!
//! | OTLP field | from the record |
//! |---|---|
//! | `timeUnixNano` | `ts` |
//! | `severityNumber` / `severityText` | 13 `WARN` for a denial (`decision` or `verdict` = `deny`), else 9 `INFO` |
//! | `body` | the line exactly as stored, so a receiver can recompute the chain (`prev` is the SHA-256 of the previous line's body) |
//! | `attributes` | `paddock.seq`, `paddock.prev`, `paddock.hash` (this line's SHA-256), `event.name`, and every other top-level field as `paddock.FIELD` |
//!
//! Records are grouped by session into `resourceLogs` whose resource names
//! `service.name` (`paddock`), `host.name`, `user.name`, `paddock.workspace` and
//! `session.id`. 64-bit integers are strings, as the protobuf JSON mapping has them.
//!
//! The encoding is written here on `serde_json` rather than with the
//! `opentelemetry-proto` crate: its serde support sits on its prost-generated types and
//! brings the opentelemetry API and SDK crates (and, in several versions, tonic's
//! codegen) into a crate that is otherwise synchronous and small, for one message shape
//! of a dozen fields that the collector's JSON receiver documents. No new dependency.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::resource::Resource;
use crate::record::line_hash;
use crate::time::parse_ts;

/// The instrumentation scope name of paddock's log records.
pub const SCOPE: &str = "paddock.audit";

/// Builds the request body for `lines` (records as stored, without `\n`), in order.
/// `workspaces` maps session ids to their workspace (from their `session.start`).
pub fn logs_request(resource: &Resource, workspaces: &HashMap<String, String>, lines: &[&[u8]]) -> Value {
    let observed = nanos(SystemTime::now());
    // Groups in order of first appearance: (session, records).
    let mut groups: Vec<(Option<String>, Vec<Value>)> = Vec::new();
    for line in lines {
        let parsed: Option<Map<String, Value>> = serde_json::from_slice(line).ok();
        let session = parsed.as_ref().and_then(|m| m.get("session")).and_then(Value::as_str).map(str::to_owned);
        let record = log_record(line, parsed.as_ref(), &observed);
        match groups.iter_mut().find(|(s, _)| *s == session) {
            Some((_, v)) => v.push(record),
            None => groups.push((session, vec![record])),
        }
    }
    let resource_logs: Vec<Value> = groups
        .into_iter()
        .map(|(session, records)| {
            let mut attrs = vec![
                kv("service.name", json!({"stringValue": "paddock"})),
                kv("service.version", json!({"stringValue": env!("CARGO_PKG_VERSION")})),
                kv("host.name", json!({"stringValue": resource.host})),
                kv("user.name", json!({"stringValue": resource.user})),
            ];
            let ws = session.as_ref().and_then(|s| workspaces.get(s)).or(resource.workspace.as_ref());
            if let Some(ws) = ws {
                attrs.push(kv("paddock.workspace", json!({"stringValue": ws})));
            }
            if let Some(s) = session {
                attrs.push(kv("session.id", json!({"stringValue": s})));
            }
            json!({
                "resource": {"attributes": attrs},
                "scopeLogs": [{
                    "scope": {"name": SCOPE, "version": env!("CARGO_PKG_VERSION")},
                    "logRecords": records,
                }],
            })
        })
        .collect();
    json!({ "resourceLogs": resource_logs })
}

fn log_record(line: &[u8], parsed: Option<&Map<String, Value>>, observed: &str) -> Value {
    let mut attrs = vec![kv("paddock.hash", json!({"stringValue": line_hash(line)}))];
    let mut time = None;
    let mut denied = false;
    match parsed {
        Some(m) => {
            for (k, v) in m {
                match k.as_str() {
                    "seq" => attrs.push(kv("paddock.seq", any_value(v))),
                    "prev" => attrs.push(kv("paddock.prev", any_value(v))),
                    "event" => attrs.push(kv("event.name", any_value(v))),
                    "ts" => time = v.as_str().and_then(parse_ts).map(nanos),
                    _ if v.is_null() => {}
                    _ => attrs.push(kv(&format!("paddock.{k}"), any_value(v))),
                }
                if (k == "decision" || k == "verdict") && v == "deny" {
                    denied = true;
                }
            }
        }
        None => attrs.push(kv("paddock.unreadable", json!({"boolValue": true}))),
    }
    let (number, text) = if denied { (13, "WARN") } else { (9, "INFO") };
    let mut r = json!({
        "observedTimeUnixNano": observed,
        "severityNumber": number,
        "severityText": text,
        "body": {"stringValue": String::from_utf8_lossy(line)},
        "attributes": attrs,
    });
    if let Some(t) = time {
        r["timeUnixNano"] = Value::String(t);
    }
    r
}

fn kv(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// A JSON value as an OTLP `AnyValue`.
fn any_value(v: &Value) -> Value {
    match v {
        Value::Null => json!({}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({"intValue": i.to_string()}),
            None => json!({"doubleValue": n.as_f64().unwrap_or(0.0)}),
        },
        Value::String(s) => json!({"stringValue": s}),
        Value::Array(a) => json!({"arrayValue": {"values": a.iter().map(any_value).collect::<Vec<_>>()}}),
        Value::Object(o) => {
            json!({"kvlistValue": {"values": o.iter().map(|(k, v)| kv(k, any_value(v))).collect::<Vec<_>>()}})
        }
    }
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_seq_prev_and_body() {
        let line = br#"{"seq":7,"ts":"2026-03-01T12:00:00.123Z","event":"call.start","prev":"ab","call_id":"c","session":"s1","tool":"command","argv":["ls","-l"],"decision":"deny"}"#;
        let res = Resource { host: "h".into(), user: "u".into(), workspace: Some("/w".into()) };
        let v = logs_request(&res, &HashMap::new(), &[&line[..], b"not json"]);
        let rl = v["resourceLogs"].as_array().unwrap();
        assert_eq!(rl.len(), 2);
        let attrs = rl[0]["resource"]["attributes"].to_string();
        for want in ["host.name", "user.name", "\"/w\"", "session.id", "\"s1\""] {
            assert!(attrs.contains(want), "{attrs}");
        }
        let r = &rl[0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(r["timeUnixNano"], "1772366400123000000");
        assert_eq!(r["severityText"], "WARN");
        assert_eq!(r["body"]["stringValue"], std::str::from_utf8(line).unwrap());
        let a = r["attributes"].to_string();
        assert!(a.contains(r#"{"key":"paddock.seq","value":{"intValue":"7"}}"#), "{a}");
        assert!(a.contains(r#"{"key":"paddock.prev","value":{"stringValue":"ab"}}"#), "{a}");
        assert!(a.contains(r#""arrayValue":{"values":[{"stringValue":"ls"},{"stringValue":"-l"}]}"#), "{a}");
        assert!(rl[1]["scopeLogs"][0]["logRecords"][0]["attributes"].to_string().contains("paddock.unreadable"));
    }
}
