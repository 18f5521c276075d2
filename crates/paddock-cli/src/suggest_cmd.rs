//! `paddock policy suggest`: from the denied calls and connections in the audit log, the
//! narrowest policy lines that would have allowed them: exact argv (every argument
//! literal), exact paths (never a directory above the one denied), exact hosts (with the
//! port unless 80 or 443). A block for a person to read and paste; it parses as a policy
//! (`version = 1` and the tables), so `paddock check` can try it.
//!
//! Only denials no rule made are suggested (the default, or a question nobody allowed):
//! a denial by a `deny` entry, a revocation, paddock's own state or an address class is a
//! decision a person already took, and a line under it would change nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use paddock_audit::{Decision, Event, Since, Target};
use paddock_policy::{normalize_host, split_host_port, Proposal};

use crate::args::SuggestArgs;
use crate::exit::{self, fail};
use crate::output;
use crate::state::State;

/// Entries of one list with how many denials each covers, in first-seen order.
#[derive(Default)]
struct List {
    order: Vec<String>,
    counts: BTreeMap<String, u64>,
}

impl List {
    fn add(&mut self, entry: String) {
        let n = self.counts.entry(entry.clone()).or_insert(0);
        if *n == 0 {
            self.order.push(entry);
        }
        *n += 1;
    }
}

#[derive(Default)]
struct Suggestion {
    commands: List,
    read: List,
    write: List,
    network: List,
    skipped: Vec<String>,
    denials: u64,
}

/// Whether a denial was made by no rule a person wrote: the default, or an unanswered ask.
fn suggestible(rule: Option<&str>, reason: Option<&str>) -> bool {
    let rule = rule.unwrap_or("default");
    let asked = rule.starts_with("commands.ask[") || rule.starts_with("network.ask[");
    (rule == "default" || asked) && !reason.unwrap_or("").contains("revoked")
}

impl Suggestion {
    fn call(&mut self, target: &Target, cwd: Option<&str>) {
        match target {
            Target::Command { argv } if !argv.is_empty() => {
                let cwd = Path::new(cwd.unwrap_or("/"));
                let path = std::env::var("PATH").unwrap_or_else(|_| paddock_policy::DEFAULT_PATH.into());
                match paddock_policy::resolve_program(&argv[0], &path, cwd) {
                    Some(program) => {
                        let p = Proposal::command(argv, &program);
                        match p.check() {
                            Ok(()) => self.commands.add(p.entry),
                            Err(e) => self.skipped.push(format!("`{}`: {e}", shell_words::join(argv))),
                        }
                    }
                    None => {
                        self.skipped.push(format!("`{}`: the program does not resolve here", shell_words::join(argv)))
                    }
                }
            }
            Target::ReadFile { path } => self.read.add(path.clone()),
            Target::WriteFile { path } => self.write.add(path.clone()),
            Target::HttpRequest { url, .. } => match host_port_of(url) {
                Some(e) => self.network.add(e),
                None => self.skipped.push(format!("`{url}`: no host in the URL")),
            },
            _ => {}
        }
    }
}

/// The allow entry of an http(s) URL's host and port.
fn host_port_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = if scheme.eq_ignore_ascii_case("http") { 80 } else { 443 };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_host_port(authority).ok()?;
    let host = normalize_host(host.trim_start_matches('[').trim_end_matches(']')).ok()?;
    Some(Proposal::connect(&host, port.unwrap_or(default)).entry)
}

/// `list` with each group of two or more hosts that are subdomains of one domain (of at
/// least two labels, on the same port) replaced by that domain's wildcard entry, its count
/// the group's: what `--widen` asks for. IP literals and lone hosts stay as they are.
fn widen(list: &List) -> List {
    let parent = |entry: &str| -> Option<(String, String)> {
        let (host, port) = match entry.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => (h, format!(":{p}")),
            _ => (entry, String::new()),
        };
        if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() || host.starts_with("*.") {
            return None;
        }
        let (_, rest) = host.split_once('.')?;
        rest.contains('.').then(|| (format!("*.{rest}"), port))
    };
    let mut groups: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for e in &list.order {
        if let Some((wild, port)) = parent(e) {
            groups.entry(format!("{wild}{port}")).or_default().push(e);
        }
    }
    let mut out = List::default();
    for e in &list.order {
        let wide = parent(e).map(|(w, p)| format!("{w}{p}")).filter(|w| groups[w].len() >= 2);
        let entry = wide.unwrap_or_else(|| e.clone());
        let n = list.counts[e];
        if !out.counts.contains_key(&entry) {
            out.order.push(entry.clone());
        }
        *out.counts.entry(entry).or_insert(0) += n;
    }
    out
}

/// A TOML basic string in which every character a terminal could misread is escaped.
fn quoted(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if paddock_audit::escape::needs_escape(c) && (c as u32) <= 0xffff => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c if paddock_audit::escape::needs_escape(c) => out.push_str(&format!("\\U{:08X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn block(out: &mut String, key: &str, list: &List, unit: &str) {
    if list.order.is_empty() {
        return;
    }
    out.push_str(&format!("{key} = [\n"));
    for e in &list.order {
        let n = list.counts[e];
        let s = if n == 1 { "" } else { "s" };
        out.push_str(&format!("  {},  # {n} denied {unit}{s}\n", quoted(e)));
    }
    out.push_str("]\n");
}

/// Runs `paddock policy suggest`.
pub fn suggest(a: SuggestArgs) -> i32 {
    let since = match a.since.as_deref().map(Since::parse).transpose() {
        Ok(s) => s,
        Err(e) => return fail(exit::USAGE, format_args!("--since: {e}")),
    };
    let cutoff = since.map(|s| match s {
        Since::Ago(d) => SystemTime::now().checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
        Since::At(t) => t,
    });
    let path = match State::new().audit_file(a.audit.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let records = match paddock_audit::records(&path) {
        Ok(r) => r,
        Err(e) => return fail(exit::INTERNAL, format_args!("cannot read {}: {e}", path.display())),
    };
    // What follows is pasted into a policy: a log that is not what was recorded is said.
    crate::audit_cmd::warn_if_chain_broken(&path);
    let mut s = Suggestion::default();
    for r in records {
        let Ok(r) = r else { continue }; // `audit verify` reports unreadable lines
        if let (Some(cutoff), Some(ts)) = (cutoff, paddock_audit::record::parse_ts(&r.ts)) {
            if ts < cutoff {
                continue;
            }
        }
        match &r.event {
            Event::CallStart(c)
                if c.decision == Decision::Deny && suggestible(c.rule.as_deref(), c.reason.as_deref()) =>
            {
                s.denials += 1;
                s.call(&c.target, c.cwd.as_deref());
            }
            Event::NetConnect(n)
                if n.verdict == Decision::Deny && suggestible(n.rule.as_deref(), n.reason.as_deref()) =>
            {
                s.denials += 1;
                match normalize_host(&n.host) {
                    Ok(h) => s.network.add(Proposal::connect(&h, n.port).entry),
                    Err(_) => s.skipped.push(format!("connection to `{}`: not a host name", n.host)),
                }
            }
            _ => {}
        }
    }
    let mut out = format!(
        "# paddock policy suggest: {} denied call(s) and connection(s) in {}{}\n# Each line allows exactly what was denied, no more: read every one before you paste it.\nversion = 1\n",
        s.denials,
        path.display(),
        a.since.as_deref().map(|d| format!(" (since {d})")).unwrap_or_default()
    );
    if !s.commands.order.is_empty() {
        out.push_str("\n[commands]\n");
        block(&mut out, "allow", &s.commands, "call");
    }
    if !s.read.order.is_empty() || !s.write.order.is_empty() {
        out.push_str("\n[filesystem]\n");
        block(&mut out, "read", &s.read, "read");
        block(&mut out, "write", &s.write, "write");
    }
    if !s.network.order.is_empty() {
        out.push_str("\n[network]\n");
        let network = if a.widen { widen(&s.network) } else { std::mem::take(&mut s.network) };
        block(&mut out, "allow", &network, "connection");
    }
    for why in &s.skipped {
        out.push_str(&format!("# not suggested: {}\n", paddock_audit::escape(why)));
    }
    output::print(out).err().unwrap_or(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen_groups_subdomains_only() {
        let mut l = List::default();
        for e in
            ["a.x.test", "b.x.test", "a.x.test", "c.y.test", "a.x.test:8080", "b.x.test:8080", "x.test", "10.0.0.1"]
        {
            l.add(e.to_string());
        }
        let w = widen(&l);
        assert_eq!(w.order, vec!["*.x.test", "c.y.test", "*.x.test:8080", "x.test", "10.0.0.1"]);
        assert_eq!(w.counts["*.x.test"], 3);
        assert_eq!(w.counts["*.x.test:8080"], 2);
        let mut one = List::default();
        one.add("a.b.test".into());
        assert_eq!(widen(&one).order, vec!["a.b.test"], "a lone host is never widened");
    }

    #[test]
    fn hosts_of_urls_and_quoting() {
        assert_eq!(host_port_of("https://A.test/x").as_deref(), Some("a.test"));
        assert_eq!(host_port_of("http://a.test:8080/").as_deref(), Some("a.test:8080"));
        assert_eq!(host_port_of("http://[::1]:81/").as_deref(), Some("[::1]:81"));
        assert_eq!(quoted("a\"b\u{202e}\n"), "\"a\\\"b\\u202E\\u000A\"");
        assert!(suggestible(None, None) && suggestible(Some("network.ask[2]"), Some("no answer")));
        assert!(!suggestible(Some("network.deny[0]"), None));
        assert!(!suggestible(Some("default"), Some("revoked by `x`")));
    }
}
