//! Audit records as OCSF 1.1 events, for SIEMs.
//!
//! | record | OCSF class |
//! |---|---|
//! | `call.start` / `call.end` of a `command` | Process Activity (1007): Launch / Terminate |
//! | `call.start` / `call.end` of `read_file`, `write_file` | File System Activity (1001): Read / Update |
//! | `call.start` / `call.end` of `http_request`, and `http.request` | HTTP Activity (4002), by method |
//! | `net.connect` | Network Activity (4001): Open (allowed) / Refuse (denied) |
//! | anything else (`revoke`, `session.start`, a type this version does not know) | Base Event (0), activity Other |
//!
//! Every event keeps the record as `raw_data`, its `seq` as `metadata.sequence`, and
//! `prev`, `rule`, `reason` and the other paddock fields under `unmapped`. A denial has
//! `action_id` 2 (Denied), `disposition_id` 2 (Blocked) and severity Medium.

use serde_json::{json, Map, Value};

use super::resource::Resource;
use crate::time::parse_ts;

/// The OCSF schema version written.
pub const OCSF_VERSION: &str = "1.1.0";

/// The OCSF event for one line of the log (as stored, without `\n`).
pub fn ocsf_event(line: &[u8], resource: &Resource) -> Value {
    let text = String::from_utf8_lossy(line).into_owned();
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(line) else {
        return base(resource, &text, 0, 99, "Other", "unreadable record", &Map::new(), false);
    };
    let str_of = |k: &str| m.get(k).and_then(Value::as_str);
    let event = str_of("event").unwrap_or("");
    let denied = str_of("decision") == Some("deny") || str_of("verdict") == Some("deny");
    let ending = event == "call.end";
    let mut e = match (event, str_of("tool")) {
        ("call.start" | "call.end", Some("command")) => {
            let argv: Vec<&str> = m
                .get("argv")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let (id, name) = if ending { (2, "Terminate") } else { (1, "Launch") };
            let mut e = base(resource, &text, 1007, id, name, "Process Activity", &m, denied);
            e["process"] = json!({
                "name": argv.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or(""),
                "cmd_line": argv.join(" "),
            });
            if let Some(cwd) = str_of("cwd") {
                e["process"]["file"] = json!({"path": cwd, "name": "cwd", "type_id": 2});
            }
            if let Some(code) = m.get("exit_code").and_then(Value::as_i64) {
                e["exit_code"] = json!(code);
            }
            e
        }
        ("call.start" | "call.end", Some(tool @ ("read_file" | "write_file"))) => {
            let (id, name) = if tool == "read_file" { (2, "Read") } else { (3, "Update") };
            let mut e = base(resource, &text, 1001, id, name, "File System Activity", &m, denied);
            let path = str_of("path").unwrap_or("");
            e["file"] = json!({"path": path, "name": path.rsplit('/').next().unwrap_or(path), "type_id": 1});
            e
        }
        ("call.start" | "call.end", Some("http_request")) | ("http.request", _) => http(resource, &text, &m, denied),
        ("net.connect", _) => {
            let (id, name) = if denied { (5, "Refuse") } else { (1, "Open") };
            let mut e = base(resource, &text, 4001, id, name, "Network Activity", &m, denied);
            e["dst_endpoint"] = json!({"hostname": str_of("host").unwrap_or(""), "port": m.get("port")});
            if let Some(a) = str_of("address") {
                e["dst_endpoint"]["ip"] =
                    json!(a.rsplit_once(':').map(|(ip, _)| ip.trim_matches(['[', ']'])).unwrap_or(a));
            }
            e["traffic"] = json!({"bytes_out": m.get("bytes_up"), "bytes_in": m.get("bytes_down")});
            e
        }
        _ => base(resource, &text, 0, 99, "Other", event, &m, denied),
    };
    if let Some(s) = str_of("session") {
        e["actor"]["session"] = json!({"uid": s});
    }
    e
}

fn http(resource: &Resource, text: &str, m: &Map<String, Value>, denied: bool) -> Value {
    let method = m.get("method").and_then(Value::as_str).unwrap_or("").to_ascii_uppercase();
    let id = match method.as_str() {
        "CONNECT" => 1,
        "DELETE" => 2,
        "GET" => 3,
        "HEAD" => 4,
        "OPTIONS" => 5,
        "POST" => 6,
        "PUT" => 7,
        "TRACE" => 8,
        _ => 99,
    };
    let name = if id == 99 { "Other" } else { method.as_str() };
    let mut e = base(resource, text, 4002, id, name, "HTTP Activity", m, denied);
    let url = m.get("url").and_then(Value::as_str).unwrap_or("");
    e["http_request"] = json!({"http_method": method, "url": {"url_string": url}});
    if let Some(status) = m.get("status").or_else(|| m.get("status_code")).and_then(Value::as_i64) {
        e["http_response"] = json!({"code": status});
    }
    e
}

#[allow(clippy::too_many_arguments)]
fn base(
    resource: &Resource,
    text: &str,
    class_uid: u32,
    activity_id: u32,
    activity_name: &str,
    class_name: &str,
    m: &Map<String, Value>,
    denied: bool,
) -> Value {
    let category_uid = class_uid / 1000;
    let time = m
        .get("ts")
        .and_then(Value::as_str)
        .and_then(parse_ts)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let unmapped: Map<String, Value> =
        m.iter().filter(|(k, _)| !matches!(k.as_str(), "ts")).map(|(k, v)| (k.clone(), v.clone())).collect();
    json!({
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": category_uid,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "time": time,
        "severity_id": if denied { 3 } else { 1 },
        "severity": if denied { "Medium" } else { "Informational" },
        "status_id": if denied { 2 } else { 1 },
        "status": if denied { "Failure" } else { "Success" },
        "action_id": if denied { 2 } else { 1 },
        "action": if denied { "Denied" } else { "Allowed" },
        "disposition_id": if denied { 2 } else { 1 },
        "message": m.get("reason").and_then(Value::as_str).unwrap_or(m.get("event").and_then(Value::as_str).unwrap_or("")),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "paddock", "vendor_name": "paddock", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "audit.jsonl",
            "sequence": m.get("seq"),
            "uid": m.get("seq").map(|s| s.to_string()),
        },
        "device": {"hostname": resource.host, "type_id": 0},
        "actor": {"user": {"name": resource.user}},
        "raw_data": text,
        "unmapped": unmapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let r = Resource { host: "h".into(), user: "u".into(), workspace: None };
        let e = ocsf_event(br#"{"seq":1,"ts":"2026-03-01T12:00:00.123Z","event":"call.start","prev":"0","call_id":"c","session":"s","tool":"command","argv":["/bin/ls","-l"],"decision":"deny","rule":"commands.deny[0]"}"#, &r);
        assert_eq!(
            (e["class_uid"].as_u64(), e["type_uid"].as_u64(), e["action"].as_str()),
            (Some(1007), Some(100701), Some("Denied"))
        );
        assert_eq!(e["process"]["cmd_line"], "/bin/ls -l");
        assert_eq!(e["process"]["name"], "ls");
        assert_eq!(e["time"], 1772366400123u64);
        assert_eq!(e["metadata"]["sequence"], 1);
        assert_eq!(e["unmapped"]["rule"], "commands.deny[0]");
        assert_eq!(e["actor"]["session"]["uid"], "s");
        let e = ocsf_event(br#"{"seq":2,"ts":"x","event":"net.connect","prev":"0","host":"a.example","port":443,"address":"[::1]:443","verdict":"allow","bytes_up":3,"bytes_down":4}"#, &r);
        assert_eq!((e["class_uid"].as_u64(), e["activity_id"].as_u64()), (Some(4001), Some(1)));
        assert_eq!(e["dst_endpoint"]["ip"], "::1");
        let e = ocsf_event(br#"{"seq":3,"ts":"x","event":"http.request","prev":"0","method":"post","url":"https://a/b","secret":"GH"}"#, &r);
        assert_eq!((e["class_uid"].as_u64(), e["activity_id"].as_u64()), (Some(4002), Some(6)));
        let e = ocsf_event(br#"{"seq":4,"ts":"x","event":"some.future","prev":"0"}"#, &r);
        assert_eq!((e["class_uid"].as_u64(), e["activity_id"].as_u64()), (Some(0), Some(99)));
        assert_eq!(ocsf_event(b"garbage", &r)["raw_data"], "garbage");
    }
}
