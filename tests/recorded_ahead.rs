//! End-to-end: a session records a call durably while its zygote sets the call up, with
//! the report the zygote's last call of the same shape started with and this call's own
//! cgroup, and lets it run only if it then reports exactly that. Until 2026-12-05 every
//! call's `call.start` was written and synced only once the call was set up: the sync's
//! 0.3–0.5 ms came on top of the set-up's.

#[macro_use]
mod common;
use common::*;

both_users!(a_calls_record_written_while_it_is_set_up_holds_its_own_layers);

/// The timing line of a `call.start` written while its call was set up.
const AHEAD: &str = "call.start written and synced, while the call is set up";

fn a_calls_record_written_while_it_is_set_up_holds_its_own_layers(user: User) {
    let f = Fixture::new(user);
    let log = f.root.join("mcp.log");
    let mut s = McpSession::start(&f, Some(&log));
    let scripts = ["echo one", "echo two", "echo three"];
    for script in scripts {
        let a = s.call(script);
        assert!(a.contains(r#"\"exit_code\":0"#), "{script}: {a}");
    }
    s.end();
    let log = read(&log);
    // The first call of its shape is recorded once set up; the next ones while set up.
    assert_eq!(log.matches(AHEAD).count(), 2, "{log}");
    assert_eq!(log.matches("zygote started").count(), 1, "one zygote: {log}");
    assert!(!log.contains("differed"), "{log}");
    let audit = read(&f.root.join("state/audit.jsonl"));
    let records: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let starts: Vec<&serde_json::Value> = records.iter().filter(|r| r["event"] == "call.start").collect();
    assert_eq!(starts.len(), 3, "{audit}");
    let layer = |r: &serde_json::Value, name: &str| {
        r["enforcement"]["layers"].as_array().unwrap().iter().find(|l| l["name"] == name).cloned().unwrap()
    };
    let cgroups: Vec<serde_json::Value> = starts.iter().map(|r| layer(r, "cgroup")).collect();
    let mut others: Vec<serde_json::Value> = starts.iter().map(|r| r["enforcement"].clone()).collect();
    for o in &mut others {
        o["layers"].as_array_mut().unwrap().retain(|l| l["name"] != "cgroup");
    }
    // Every layer but the cgroup is the zygote's and the shape's: the same for the three.
    assert!(others.iter().all(|o| *o == others[0]), "{audit}");
    for name in ["landlock", "seccomp", "caps", "no_new_privs", "exec", "fds", "env"] {
        assert_eq!(layer(starts[0], name)["state"], "enforced", "{name}: {audit}");
    }
    if cgroups[0]["detail"].as_str().unwrap().contains("/paddock-") {
        // Each call's own cgroup (made, or tried as uid 65534 where the pids hierarchy is
        // root's): a record written ahead names its own, not its predecessor's.
        let details: std::collections::BTreeSet<&str> = cgroups.iter().map(|c| c["detail"].as_str().unwrap()).collect();
        assert_eq!(details.len(), 3, "{cgroups:?}");
    } else {
        assert!(cgroups.iter().all(|c| *c == cgroups[0]), "{cgroups:?}");
    }
    // Each call's record comes before its program's exec record and its end.
    for start in &starts {
        let id = &start["call_id"];
        let seq = |event: &str| {
            records.iter().find(|r| r["event"] == event && r["call_id"] == *id).map(|r| r["seq"].as_u64().unwrap())
        };
        let (s, e, end) = (start["seq"].as_u64().unwrap(), seq("exec").unwrap(), seq("call.end").unwrap());
        assert!(s < e && e < end, "{s} {e} {end}: {audit}");
    }
}
