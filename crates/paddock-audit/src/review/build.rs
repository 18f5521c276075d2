//! Building a [`Review`] record by record: what each event adds, in or out of the window.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use super::report::{DeniedAttempt, GrantInView, GrantUsage, GrantUse, HostTraffic, Review, NO_RULE};
use crate::payload::{CallEnd, Decision, HttpRequest, NetConnect, Target, Tool};
use crate::record::{Event, Record};
use crate::revocations::Revocation;
use crate::time::{format_ts, parse_ts};

#[derive(Default)]
pub(super) struct Builder {
    records: u64,
    first_ts: Option<String>,
    last_ts: Option<String>,
    calls: u64,
    allowed_calls: u64,
    denied_calls: u64,
    connections: u64,
    denied_connections: u64,
    grants: BTreeMap<String, GrantUsage>,
    in_view: BTreeMap<String, GrantInView>,
    /// call_id -> (rule, index in used_by) for exit codes.
    call_uses: HashMap<String, (String, usize)>,
    /// Every call_id with a `call.start`, in or before the window.
    started: HashSet<String>,
    denied: BTreeMap<(Tool, String), DeniedAttempt>,
    hosts: BTreeMap<String, HostTraffic>,
    revocations: Vec<Revocation>,
    http: super::http::HttpBuilder,
    pub(super) unreadable: Vec<u64>,
    pub(super) torn_tail: bool,
    questions: super::questions::Questions,
    /// `exec` records, per call program.
    execs: super::programs::ExecGroups,
}

impl Builder {
    pub(super) fn add(&mut self, r: Record, cutoff: Option<SystemTime>) {
        // Revocations are replayed over the whole log, whatever the window.
        match &r.event {
            Event::Revoke(e) if !self.revocations.iter().any(|x| x.selector == e.selector) => {
                self.revocations.push(Revocation {
                    selector: e.selector.clone(),
                    reason: e.reason.clone(),
                    ts: r.ts.clone(),
                });
            }
            Event::Unrevoke(e) => self.revocations.retain(|x| x.selector != e.selector),
            Event::CallStart(c) => {
                self.started.insert(c.call_id.clone());
                self.execs.call(&c.call_id, &c.target);
            }
            _ => {}
        }
        let in_window = match (cutoff, parse_ts(&r.ts)) {
            (Some(c), Some(t)) => t >= c,
            _ => true, // no window, or a timestamp we cannot read: show it
        };
        if !in_window {
            return;
        }
        self.records += 1;
        self.first_ts.get_or_insert_with(|| r.ts.clone());
        self.last_ts = Some(r.ts.clone());
        match r.event {
            Event::CallStart(c) => {
                self.add_view(r.seq, &r.ts, &c.view);
                self.add_call(r.seq, &r.ts, &c.call_id, c.target, c.decision, c.rule, c.reason, None)
            }
            Event::CallEnd(e) => self.add_call_end(r.seq, &r.ts, e),
            Event::NetConnect(n) => self.add_connection(r.seq, &r.ts, n),
            Event::HttpRequest(h) => self.add_request(r.seq, &r.ts, h),
            Event::Exfiltration(e) => {
                self.http.exfiltration(r.seq, &r.ts, &e);
                let summary = format!("secret {} to {}:{}", e.secret, e.host, e.port);
                self.add_denied(Tool::HttpRequest, summary, &r.ts, r.seq, Some(e.rule), Some(e.reason));
            }
            Event::Exec(e) => self.add_exec(r.seq, &r.ts, e),
            Event::Revoke(_) | Event::Unrevoke(_) | Event::SessionStart(_) | Event::SessionEnd(_) => {}
            Event::ApprovalAsk(a) => self.questions.ask(&r.ts, &a),
            Event::ApprovalAnswer(a) => self.questions.answer(&r.ts, &a),
        }
    }

    /// A `call.end`: the exit code of its call's use, or, when its `call.start` is not in
    /// the log (written before it, or lost), the call itself.
    fn add_call_end(&mut self, seq: u64, ts: &str, e: CallEnd) {
        if let Some((rule, i)) = self.call_uses.get(&e.call.call_id) {
            if let Some(g) = self.grants.get_mut(rule) {
                g.used_by[*i].exit_code = e.outcome.exit_code;
            }
        } else if !self.started.contains(&e.call.call_id) {
            let c = e.call;
            self.add_view(seq, ts, &c.view);
            self.add_call(seq, ts, &c.call_id, c.target, c.decision, c.rule, c.reason, e.outcome.exit_code);
        }
    }

    /// A `net.connect`: the host's traffic, and a use of the grant or a denied attempt.
    fn add_connection(&mut self, seq: u64, ts: &str, n: NetConnect) {
        self.connections += 1;
        let h = self.hosts.entry(n.host.clone()).or_insert_with(|| HostTraffic {
            host: n.host.clone(),
            ports: Vec::new(),
            allowed: 0,
            denied: 0,
            bytes_up: 0,
            bytes_down: 0,
            rules: Vec::new(),
        });
        insert_sorted(&mut h.ports, n.port);
        if let Some(rule) = &n.rule {
            insert_sorted(&mut h.rules, rule.clone());
        }
        h.bytes_up += n.bytes_up;
        h.bytes_down += n.bytes_down;
        match n.verdict {
            Decision::Deny => {
                h.denied += 1;
                self.denied_connections += 1;
                let summary = authority(&n.host, n.port);
                let reason = match (&n.reason, &n.address) {
                    (Some(r), _) => Some(r.clone()),
                    (None, Some(a)) => Some(format!("refused at {a}")),
                    (None, None) => None,
                };
                self.add_denied(Tool::Connect, summary, ts, seq, n.rule.clone(), reason);
            }
            Decision::Allow => {
                h.allowed += 1;
                if let Some(rule) = n.rule {
                    let connection = authority(&n.host, n.port);
                    let u = GrantUse {
                        seq,
                        ts: ts.to_string(),
                        call_id: n.call_id,
                        target: None,
                        summary: format!("connect {connection}"),
                        connection: Some(connection),
                        exit_code: None,
                    };
                    self.grant_use(rule, u);
                }
            }
        }
    }

    /// An `http.request`: the per-secret and per-host sections, and a use of the request
    /// rule and of the secret (grants), or a denied attempt.
    fn add_request(&mut self, seq: u64, ts: &str, h: HttpRequest) {
        self.http.request(seq, ts, &h);
        let summary = format!("{} {}{}", h.method, authority(&h.host, h.port), h.path);
        match h.verdict {
            Decision::Deny => self.add_denied(Tool::HttpRequest, summary, ts, seq, h.rule, h.reason),
            Decision::Allow => {
                let rules = h.rule.iter().filter(|r| r.starts_with("network.http[")).cloned();
                for rule in rules.chain(h.secret.iter().map(|s| format!("secrets.{s}"))) {
                    let u = GrantUse {
                        seq,
                        ts: ts.to_string(),
                        call_id: h.call_id.clone(),
                        target: None,
                        connection: Some(authority(&h.host, h.port)),
                        summary: summary.clone(),
                        exit_code: None,
                    };
                    self.grant_use(rule, u);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_call(
        &mut self,
        seq: u64,
        ts: &str,
        call_id: &str,
        target: Target,
        decision: Decision,
        rule: Option<String>,
        reason: Option<String>,
        exit_code: Option<i32>,
    ) {
        self.calls += 1;
        let summary = target.describe();
        match decision {
            Decision::Allow => {
                self.allowed_calls += 1;
                // Every decision should name its rule; if one does not, its
                // uses still show, under NO_RULE.
                let rule = rule.unwrap_or_else(|| NO_RULE.to_owned());
                let u = GrantUse {
                    seq,
                    ts: ts.to_owned(),
                    call_id: Some(call_id.to_owned()),
                    target: Some(target),
                    connection: None,
                    summary,
                    exit_code,
                };
                let i = self.grant_use(rule.clone(), u);
                self.call_uses.insert(call_id.to_owned(), (rule, i));
            }
            Decision::Deny => {
                self.denied_calls += 1;
                self.add_denied(target.tool(), summary, ts, seq, rule, reason);
            }
        }
    }

    fn add_denied(
        &mut self,
        tool: Tool,
        summary: String,
        ts: &str,
        seq: u64,
        rule: Option<String>,
        reason: Option<String>,
    ) {
        let d = self.denied.entry((tool, summary.clone())).or_insert_with(|| DeniedAttempt {
            tool,
            summary,
            count: 0,
            rules: Vec::new(),
            reason: None,
            first: ts.to_owned(),
            last: ts.to_owned(),
            seqs: Vec::new(),
        });
        d.count += 1;
        d.last = ts.to_owned();
        d.seqs.push(seq);
        if let Some(rule) = rule {
            insert_sorted(&mut d.rules, rule);
        }
        if reason.is_some() {
            d.reason = reason;
        }
    }

    /// Counts the grants a call's sandbox view held.
    fn add_view(&mut self, seq: u64, ts: &str, view: &[String]) {
        for rule in view {
            let v = self.in_view.entry(rule.clone()).or_insert_with(|| GrantInView {
                rule: rule.clone(),
                calls: 0,
                decided_uses: 0,
                first: ts.to_owned(),
                last: ts.to_owned(),
                last_seq: seq,
            });
            v.calls += 1;
            v.last = ts.to_owned();
            v.last_seq = seq;
        }
    }

    /// An `exec`: its call program's group, and, when a command rule decided it (scope
    /// "tree"), a use of that grant or a denied attempt.
    fn add_exec(&mut self, seq: u64, ts: &str, e: crate::payload::Exec) {
        self.execs.add(seq, &e);
        if e.rule == "commands.scope" {
            return; // scope "call": recorded, not decided by a rule
        }
        let summary = format!("exec {}", e.describe());
        match e.decision {
            Decision::Allow if !e.rule.starts_with("commands.") => {}
            Decision::Allow => {
                let u = GrantUse {
                    seq,
                    ts: ts.to_owned(),
                    call_id: Some(e.call_id.clone()),
                    target: None,
                    connection: None,
                    summary: format!("exec {}", super::programs::command_of(&e)),
                    exit_code: None,
                };
                self.grant_use(e.rule, u);
            }
            Decision::Deny => {
                let reason = (!e.reason.is_empty()).then_some(e.reason);
                self.add_denied(Tool::Command, summary, ts, seq, Some(e.rule), reason)
            }
        }
    }

    fn grant_use(&mut self, rule: String, u: GrantUse) -> usize {
        let g = self.grants.entry(rule.clone()).or_insert_with(|| GrantUsage {
            rule,
            uses: 0,
            first_use: u.ts.clone(),
            last_use: u.ts.clone(),
            revoked: None,
            used_by: Vec::new(),
        });
        g.uses += 1;
        g.last_use = u.ts.clone();
        g.used_by.push(u);
        g.used_by.len() - 1
    }

    pub(super) fn finish(self, path: &Path, cutoff: Option<SystemTime>, policy_rules: &[String]) -> Review {
        let mut grants: Vec<GrantUsage> = self.grants.into_values().collect();
        grants.sort_by(|a, b| b.uses.cmp(&a.uses).then_with(|| a.rule.cmp(&b.rule)));
        let mut in_view: Vec<GrantInView> = self.in_view.into_values().collect();
        for v in &mut in_view {
            v.decided_uses = grants.iter().find(|g| g.rule == v.rule).map_or(0, |g| g.uses);
        }
        in_view.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.rule.cmp(&b.rule)));
        let mut unused_grants = Vec::new();
        for rule in policy_rules {
            let used = grants.iter().any(|g| &g.rule == rule) || in_view.iter().any(|v| &v.rule == rule);
            if !used && !unused_grants.contains(rule) {
                unused_grants.push(rule.clone());
            }
        }
        let mut denied: Vec<DeniedAttempt> = self.denied.into_values().collect();
        denied.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (a.tool, &a.summary).cmp(&(b.tool, &b.summary))));
        let mut hosts: Vec<HostTraffic> = self.hosts.into_values().collect();
        hosts.sort_by(|a, b| (b.allowed + b.denied).cmp(&(a.allowed + a.denied)).then_with(|| a.host.cmp(&b.host)));
        let (secrets, http_hosts, exfiltration) = self.http.finish();
        let mut review = Review {
            path: path.to_path_buf(),
            since: cutoff.map(format_ts),
            records: self.records,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            calls: self.calls,
            allowed_calls: self.allowed_calls,
            denied_calls: self.denied_calls,
            connections: self.connections,
            denied_connections: self.denied_connections,
            grants,
            in_view,
            unused_grants,
            denied,
            hosts,
            secrets,
            http_hosts,
            exfiltration,
            revocations: self.revocations,
            questions: self.questions.list,
            unreadable_lines: self.unreadable,
            torn_tail: self.torn_tail,
            execs: self.execs.execs,
            programs: self.execs.finish(),
        };
        review.mark_revoked();
        review
    }
}

/// `host:port`, with brackets around an IPv6 literal.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}
