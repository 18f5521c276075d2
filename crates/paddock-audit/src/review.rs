//! Reviewing what grants were used for: [`review`].
//!
//! A *grant* is a policy rule id that allowed something: a call
//! (`call.start` with `decision = "allow"`) or a connection (`net.connect`
//! with `verdict = "allow"`). The review lists, for the records in a window:
//! each grant with its uses; the grants of the policy never used; the denied
//! calls grouped by what was tried; the connections by host; and the
//! revocations in force. Uses are counted from `call.start` (a call that ran
//! always has one); `call.end` only adds the exit code, or counts the call if
//! its `call.start` is nowhere in the log.
//!
//! Denied attempts include refused connections (`net.connect` with
//! `verdict = "deny"`), grouped by `host:port`.
//!
//! A filesystem grant is *decided* for the read or write call it allowed, but
//! every call's sandbox view holds the filesystem grants of its policy (the
//! `view` of `call.start`): a `run` of `cat src/x` uses `filesystem.read[3]`
//! without any decision naming it. The review counts those separately
//! ([`Review::in_view`]) and never lists a grant that was in a view among the
//! grants never used: a reviewer acting on that list would revoke what is in use.
//!
//! The review does not check the chain ([`verify`](crate::verify()) does);
//! lines that are not records are skipped and counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::AuditError;
use crate::payload::{Decision, Target, Tool};
use crate::reader::{Line, LineReader};
use crate::record::{Event, Record};
use crate::revocations::Revocation;
use crate::selector::Selector;
use crate::time::{format_ts, parse_ts};

mod render;

/// The start of a review window: `--since 24h` or `--since 2026-03-01T00:00:00Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Records from this long ago on.
    Ago(Duration),
    /// Records from this instant on.
    At(SystemTime),
}

impl Since {
    /// Parses a duration (`90m`, `24h`, `7days`, humantime syntax), an RFC
    /// 3339 UTC timestamp, or a date (`2026-03-01`, midnight UTC).
    pub fn parse(input: &str) -> Result<Self, AuditError> {
        let s = input.trim();
        if let Ok(d) = humantime::parse_duration(s) {
            return Ok(Since::Ago(d));
        }
        if let Some(t) = parse_ts(s) {
            return Ok(Since::At(t));
        }
        // A bare date: midnight UTC.
        if s.len() == 10 {
            if let Some(t) = parse_ts(&format!("{s}T00:00:00Z")) {
                return Ok(Since::At(t));
            }
        }
        Err(AuditError::InvalidSince { input: input.to_owned() })
    }

    /// The cutoff instant, relative to `now` for [`Since::Ago`].
    pub fn cutoff(&self, now: SystemTime) -> SystemTime {
        match *self {
            Since::Ago(d) => now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
            Since::At(t) => t,
        }
    }
}

impl From<Duration> for Since {
    fn from(d: Duration) -> Self {
        Since::Ago(d)
    }
}

impl From<SystemTime> for Since {
    fn from(t: SystemTime) -> Self {
        Since::At(t)
    }
}

/// The grant name under which allowed calls that name no rule are listed.
pub const NO_RULE: &str = "(no rule)";

/// The result of [`review`]. `Serialize` gives the `--json` form;
/// `Display` the human one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// The log reviewed.
    pub path: PathBuf,
    /// Start of the window (RFC 3339), if any.
    pub since: Option<String>,
    /// Records in the window.
    pub records: u64,
    /// Timestamp of the first record in the window.
    pub first_ts: Option<String>,
    /// Timestamp of the last record in the window.
    pub last_ts: Option<String>,
    /// Calls in the window.
    pub calls: u64,
    /// Of which allowed.
    pub allowed_calls: u64,
    /// Of which denied.
    pub denied_calls: u64,
    /// Connections in the window.
    pub connections: u64,
    /// Of which refused (by the policy, the address class or a limit).
    pub denied_connections: u64,
    /// Grants used, most used first.
    pub grants: Vec<GrantUsage>,
    /// Grants held in the sandbox view of calls (filesystem grants), most
    /// held first: in use as far as a reviewer can know, whether or not a
    /// decision named them.
    pub in_view: Vec<GrantInView>,
    /// Rules of the policy (as passed in) neither used nor in any call's view
    /// in the window.
    pub unused_grants: Vec<String>,
    /// Denied calls and refused connections grouped by what was tried, most
    /// frequent first.
    pub denied: Vec<DeniedAttempt>,
    /// Connections grouped by host, busiest first.
    pub hosts: Vec<HostTraffic>,
    /// Revocations in force: replayed from the log's `revoke`/`unrevoke`
    /// records, or as set by [`Review::with_revocations`].
    pub revocations: Vec<Revocation>,
    /// Line numbers that are not records (skipped; `verify` says more).
    pub unreadable_lines: Vec<u64>,
    /// Whether the log ends with a torn line (skipped).
    pub torn_tail: bool,
}

/// One grant and what used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUsage {
    /// The rule id.
    pub rule: String,
    /// How many calls and connections it allowed.
    pub uses: u64,
    /// Timestamp of the first use.
    pub first_use: String,
    /// Timestamp of the last use.
    pub last_use: String,
    /// The `rule:` selector revoking it, if one is in force.
    pub revoked: Option<String>,
    /// Every use, in log order.
    pub used_by: Vec<GrantUse>,
}

/// One use of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUse {
    /// The record's `seq` (its `call.start` for a call).
    pub seq: u64,
    /// The record's timestamp.
    pub ts: String,
    /// The call's id (calls only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// What the call asked for: `tool` and `argv` / `path` / `url` (calls only).
    #[serde(flatten)]
    pub target: Option<Target>,
    /// `host:port` (connections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// One-line description.
    pub summary: String,
    /// Exit code from the matching `call.end`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// A grant that calls' sandbox views held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantInView {
    /// The rule id (`filesystem.read[3]`).
    pub rule: String,
    /// How many calls ran with it in their view.
    pub calls: u64,
    /// How many decisions named it (its uses in [`Review::grants`]).
    pub decided_uses: u64,
    /// Timestamp of the first such call.
    pub first: String,
    /// Timestamp of the last such call.
    pub last: String,
    /// `seq` of the last such call's `call.start`.
    pub last_seq: u64,
}

/// Denied calls (or refused connections) that asked for the same thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeniedAttempt {
    /// The tool (`connect` for a refused connection).
    pub tool: Tool,
    /// What was tried (argv shell-quoted, path, `METHOD url`, or `host:port`).
    pub summary: String,
    /// How many times.
    pub count: u64,
    /// The rules that denied it (distinct, sorted).
    pub rules: Vec<String>,
    /// The reason of the latest denial.
    pub reason: Option<String>,
    /// Timestamp of the first attempt.
    pub first: String,
    /// Timestamp of the last attempt.
    pub last: String,
    /// `seq` of each attempt.
    pub seqs: Vec<u64>,
}

/// Connections to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostTraffic {
    /// The host name asked for.
    pub host: String,
    /// Ports asked for (distinct, sorted).
    pub ports: Vec<u16>,
    /// Connections allowed.
    pub allowed: u64,
    /// Connections denied.
    pub denied: u64,
    /// Bytes sent upstream.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Rules that decided (distinct, sorted).
    pub rules: Vec<String>,
}

/// Reviews the log at `path`: records whose `ts` is at or after `since`
/// (all if `None`), with `policy_rules` the rule ids of the policy in force
/// (for the grants never used; pass `&[]` if unknown).
pub fn review(path: impl AsRef<Path>, since: Option<Since>, policy_rules: &[String]) -> Result<Review, AuditError> {
    let path = path.as_ref();
    let cutoff = since.map(|s| s.cutoff(SystemTime::now()));
    let mut b = Builder::default();
    let mut lines = LineReader::open(path)?;
    while let Some(line) = lines.next_line()? {
        match line {
            Line::Torn { .. } => b.torn_tail = true,
            Line::Complete { number, bytes, .. } => match Record::from_line(&bytes) {
                Ok(r) => b.add(r, cutoff),
                Err(_) => b.unreadable.push(number),
            },
        }
    }
    Ok(b.finish(path, cutoff, policy_rules))
}

#[derive(Default)]
struct Builder {
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
    unreadable: Vec<u64>,
    torn_tail: bool,
}

impl Builder {
    fn add(&mut self, r: Record, cutoff: Option<SystemTime>) {
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
            Event::CallEnd(e) => {
                if let Some((rule, i)) = self.call_uses.get(&e.call.call_id) {
                    if let Some(g) = self.grants.get_mut(rule) {
                        g.used_by[*i].exit_code = e.outcome.exit_code;
                    }
                } else if !self.started.contains(&e.call.call_id) {
                    let c = e.call;
                    self.add_view(r.seq, &r.ts, &c.view);
                    self.add_call(
                        r.seq,
                        &r.ts,
                        &c.call_id,
                        c.target,
                        c.decision,
                        c.rule,
                        c.reason,
                        e.outcome.exit_code,
                    );
                }
            }
            Event::NetConnect(n) => {
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
                        self.add_denied(Tool::Connect, summary, &r.ts, r.seq, n.rule.clone(), reason);
                    }
                    Decision::Allow => {
                        h.allowed += 1;
                        if let Some(rule) = n.rule {
                            let connection = authority(&n.host, n.port);
                            let u = GrantUse {
                                seq: r.seq,
                                ts: r.ts.clone(),
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
            Event::Revoke(_) | Event::Unrevoke(_) | Event::SessionStart(_) | Event::SessionEnd(_) => {}
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

    fn finish(self, path: &Path, cutoff: Option<SystemTime>, policy_rules: &[String]) -> Review {
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
            revocations: self.revocations,
            unreadable_lines: self.unreadable,
            torn_tail: self.torn_tail,
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

impl Review {
    /// Replaces the revocations (replayed from the log) by the list in force,
    /// normally [`Revocations::entries`](crate::Revocations::entries).
    pub fn with_revocations(mut self, revocations: &[Revocation]) -> Self {
        self.revocations = revocations.to_vec();
        self.mark_revoked();
        self
    }

    /// Marks grants revoked by a `rule:` selector (exact rule id; other
    /// selectors are matched by the policy, not here).
    fn mark_revoked(&mut self) {
        for g in &mut self.grants {
            let sel = Selector::Rule(g.rule.clone());
            g.revoked = self.revocations.iter().any(|r| r.selector == sel).then(|| sel.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_durations_and_timestamps() {
        assert_eq!(Since::parse("24h").unwrap(), Since::Ago(Duration::from_secs(86_400)));
        assert_eq!(Since::parse("90m").unwrap(), Since::Ago(Duration::from_secs(5_400)));
        let t = Since::parse("2026-03-01T00:00:00Z").unwrap();
        assert_eq!(format_ts(t.cutoff(SystemTime::now())), "2026-03-01T00:00:00.000Z");
        assert_eq!(Since::parse("2026-03-01").unwrap(), t);
        assert_eq!(Since::parse("2026-03-01T00:00:00.000Z").unwrap(), t);
        let e = Since::parse("yesterday").unwrap_err();
        assert!(e.to_string().contains("24h"), "{e}");
        let now = SystemTime::now();
        assert_eq!(Since::Ago(Duration::from_secs(60)).cutoff(now), now - Duration::from_secs(60));
    }
}
