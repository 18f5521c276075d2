//! The review as one self-contained HTML page ([`review_html`]): inline CSS, no
//! script, nothing fetched (a Content-Security-Policy forbids all of it, so even a
//! mistake here could not load or run anything).
//!
//! Every text that came from the log is escaped twice over: first as the terminal
//! form escapes it ([`escape`](crate::escape()): control, bidi and invisible characters
//! shown as `\x..`/`\u{..}`), then as HTML (`& < > " '`). An agent's argv cannot add
//! markup, close the style sheet, or reorder what the reviewer reads.

use std::fmt::Write;

use super::report::Review;
use super::timeline::Timeline;
use crate::escape::escape;

const STYLE: &str = "\
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;color:#1b1f24;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.3em 0}th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12.5px ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
code.cmd{user-select:all;background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:.1em .35em;display:inline-block}
.deny{color:#a40e26;font-weight:600}.allow{color:#116329}.muted{color:#57606a}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:6px;padding:.5em 1em;min-width:9em}
.card b{display:block;font-size:1.4em}
";

/// The page for `review` and `timeline` (the same log and window).
pub fn review_html(review: &Review, timeline: &Timeline) -> String {
    let mut h = String::with_capacity(16 * 1024);
    head(&mut h, review);
    summary(&mut h, review);
    denials(&mut h, review);
    grants(&mut h, review);
    hosts(&mut h, review);
    secrets(&mut h, timeline);
    calls(&mut h, timeline);
    revocations(&mut h, review);
    h.push_str("<p class=\"muted\">Written by paddock audit review --html. Text from the log is escaped: control and bidi characters show as \\x.. and \\u{..}.</p>\n</body></html>\n");
    h
}

/// The page's head and the log's line: path, records, window, unreadable lines.
fn head(h: &mut String, review: &Review) {
    let path = review.path.to_string_lossy();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(h, "<title>paddock audit review: {}</title>\n<style>\n{STYLE}</style></head><body>", t(&path));
    let _ = writeln!(h, "<h1>paddock audit review</h1>\n<p class=\"muted\">{}", t(&path));
    match (&review.first_ts, &review.last_ts) {
        (Some(a), Some(b)) => {
            let _ = write!(h, " &middot; {} records, {} .. {}", review.records, t(a), t(b));
        }
        _ => h.push_str(" &middot; no records"),
    }
    if let Some(s) = &review.since {
        let _ = write!(h, " &middot; since {}", t(s));
    }
    h.push_str("</p>\n");
    if !review.unreadable_lines.is_empty() || review.torn_tail {
        let _ = writeln!(
            h,
            "<p class=\"deny\">{} unreadable line(s){}: run <code>paddock audit verify</code>.</p>",
            review.unreadable_lines.len(),
            if review.torn_tail { " and a torn last line" } else { "" }
        );
    }
}

/// Summary cards: calls, allowed, denied, connections, refused.
fn summary(h: &mut String, review: &Review) {
    h.push_str("<section id=\"summary\"><div class=\"cards\">\n");
    for (n, label, class) in [
        (review.calls, "calls", ""),
        (review.allowed_calls, "allowed", "allow"),
        (review.denied_calls, "denied calls", "deny"),
        (review.connections, "connections", ""),
        (review.denied_connections, "refused connections", "deny"),
    ] {
        let class = if n > 0 { class } else { "" };
        let _ = writeln!(h, "<div class=\"card\"><b class=\"{class}\">{n}</b>{label}</div>");
    }
    h.push_str("</div></section>\n");
}

/// Denials first: what a reviewer must see.
fn denials(h: &mut String, review: &Review) {
    let _ = writeln!(h, "<section id=\"denials\"><h2>Denials ({})</h2>", review.denied.len());
    if review.denied.is_empty() {
        h.push_str("<p class=\"muted\">nothing denied</p>\n");
    } else {
        h.push_str("<table><tr><th>tool</th><th>what was tried</th><th>times</th><th>rule</th><th>reason</th><th>first</th><th>last</th></tr>\n");
        for d in &review.denied {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td class=\"n deny\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t(&d.tool.to_string()),
                t(&d.summary),
                d.count,
                t(&d.rules.join(", ")),
                t(d.reason.as_deref().unwrap_or("")),
                t(&d.first),
                t(&d.last)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// Grants, with the command that revokes each.
fn grants(h: &mut String, review: &Review) {
    let _ = writeln!(h, "<section id=\"grants\"><h2>Grants used ({})</h2>", review.grants.len());
    if review.grants.is_empty() {
        h.push_str("<p class=\"muted\">no grant was used</p>\n");
    } else {
        h.push_str("<table><tr><th>grant</th><th>uses</th><th>last use</th><th>first use</th><th>used for</th><th>revoke</th></tr>\n");
        for g in &review.grants {
            let mut used: Vec<&str> = Vec::new();
            for u in &g.used_by {
                if !used.contains(&u.summary.as_str()) && used.len() < 5 {
                    used.push(&u.summary);
                }
            }
            let used: Vec<String> = used.iter().map(|s| format!("<code>{}</code>", t(s))).collect();
            let revoke = match &g.revoked {
                Some(sel) => format!("<span class=\"deny\">revoked ({})</span>", t(sel)),
                None => revoke_cmd(&g.rule),
            };
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{revoke}</td></tr>",
                t(&g.rule),
                g.uses,
                t(&g.last_use),
                t(&g.first_use),
                used.join("<br>")
            );
        }
        h.push_str("</table>\n");
    }
    if !review.in_view.is_empty() {
        h.push_str("<h3>Held in calls' views (filesystem grants)</h3>\n<table><tr><th>grant</th><th>calls</th><th>last</th><th>revoke</th></tr>\n");
        for v in &review.in_view {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                t(&v.rule),
                v.calls,
                t(&v.last),
                revoke_cmd(&v.rule)
            );
        }
        h.push_str("</table>\n");
    }
    if !review.unused_grants.is_empty() {
        let _ = writeln!(
            h,
            "<h3>Never used ({})</h3>\n<table><tr><th>grant</th><th>revoke</th></tr>",
            review.unused_grants.len()
        );
        for r in &review.unused_grants {
            let _ = writeln!(h, "<tr><td><code>{}</code></td><td>{}</td></tr>", t(r), revoke_cmd(r));
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// Hosts by bytes.
fn hosts(h: &mut String, review: &Review) {
    let mut hosts: Vec<_> = review.hosts.iter().collect();
    hosts.sort_by(|a, b| {
        (b.bytes_up + b.bytes_down).cmp(&(a.bytes_up + a.bytes_down)).then_with(|| a.host.cmp(&b.host))
    });
    let _ = writeln!(h, "<section id=\"hosts\"><h2>Hosts by bytes ({})</h2>", hosts.len());
    if hosts.is_empty() {
        h.push_str("<p class=\"muted\">no connections</p>\n");
    } else {
        h.push_str("<table><tr><th>host</th><th>ports</th><th>bytes</th><th>sent</th><th>received</th><th>allowed</th><th>refused</th><th>rules</th></tr>\n");
        for x in hosts {
            let ports: Vec<String> = x.ports.iter().map(u16::to_string).collect();
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td>{}</td></tr>",
                t(&x.host),
                ports.join(", "),
                x.bytes_up + x.bytes_down,
                x.bytes_up,
                x.bytes_down,
                x.allowed,
                if x.denied > 0 { " deny" } else { "" },
                x.denied,
                t(&x.rules.join(", "))
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// Secrets by use.
fn secrets(h: &mut String, timeline: &Timeline) {
    let _ = writeln!(h, "<section id=\"secrets\"><h2>Secrets by use ({})</h2>", timeline.secrets.len());
    if timeline.secrets.is_empty() {
        h.push_str("<p class=\"muted\">no request used a secret</p>\n");
    } else {
        h.push_str("<table><tr><th>secret</th><th>uses</th><th>hosts</th><th>last use</th></tr>\n");
        for s in &timeline.secrets {
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                t(&s.secret),
                s.uses,
                t(&s.hosts.join(", ")),
                t(&s.last_use)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// The timeline of calls.
fn calls(h: &mut String, timeline: &Timeline) {
    let _ = writeln!(h, "<section id=\"timeline\"><h2>Timeline of calls ({})</h2>", timeline.calls.len());
    if timeline.calls.is_empty() {
        h.push_str("<p class=\"muted\">no calls</p>\n");
    } else {
        h.push_str("<table><tr><th>seq</th><th>time</th><th>session</th><th>tool</th><th>call</th><th>decision</th><th>rule</th><th>exit</th><th>ms</th></tr>\n");
        for c in &timeline.calls {
            let class = if c.decision == "deny" { "deny" } else { "allow" };
            let _ = writeln!(
                h,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"{class}\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                c.seq,
                t(&c.ts),
                t(&c.session),
                t(&c.tool),
                t(&c.summary),
                t(&c.decision),
                t(c.rule.as_deref().unwrap_or("")),
                c.exit_code.map(|x| x.to_string()).unwrap_or_default(),
                c.duration_ms.map(|x| x.to_string()).unwrap_or_default()
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// The revocations in force.
fn revocations(h: &mut String, review: &Review) {
    if !review.revocations.is_empty() {
        let _ = writeln!(h, "<section id=\"revocations\"><h2>Revocations in force ({})</h2><table><tr><th>selector</th><th>reason</th><th>since</th><th>undo</th></tr>", review.revocations.len());
        for r in &review.revocations {
            let sel = r.selector.to_string();
            let _ = writeln!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><code class=\"cmd\">paddock unrevoke {}</code></td></tr>",
                t(&sel),
                t(r.reason.as_deref().unwrap_or("")),
                t(&r.ts),
                t(&sh_quote(&sel))
            );
        }
        h.push_str("</table></section>\n");
    }
}

/// `paddock revoke 'rule:RULE'`, selectable with one click.
fn revoke_cmd(rule: &str) -> String {
    format!("<code class=\"cmd\">paddock revoke {}</code>", t(&sh_quote(&format!("rule:{rule}"))))
}

/// Quotes for a POSIX shell unless plainly safe (rule ids hold `[` and `]`, which a
/// shell would glob).
fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-/".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Text from the log, for HTML: control and bidi characters shown, then markup escaped.
fn t(s: &str) -> String {
    let s = escape(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{review, AuditLog, Call, Decision, Target};

    #[test]
    fn agent_text_cannot_add_markup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&p).unwrap();
        let evil = ["echo", "<img src=x onerror=alert(1)>", "</style><script>alert(2)</script>", "a\u{202e}b"];
        log.append(
            &Call::new("c1", "s<1>", Target::command(evil), Decision::Deny).with_rule("commands.deny[0]").start(),
        )
        .unwrap();
        log.append(
            &Call::new("c2", "s", Target::command(["ls"]), Decision::Allow).with_rule("commands.allow[1]").start(),
        )
        .unwrap();
        drop(log);
        let r = review(&p, None, &[]).unwrap();
        let html = review_html(&r, &super::super::timeline::timeline(&p, None).unwrap());
        assert!(!html.contains("<img") && !html.contains("<script"), "{html}");
        assert_eq!(html.matches("</style>").count(), 1);
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(html.contains(r"a\u{202e}b"));
        assert!(html.contains("paddock revoke &#39;rule:commands.allow[1]&#39;"), "{html}");
        for id in ["summary", "denials", "grants", "hosts", "secrets", "timeline"] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert!(!html.contains("http://") && !html.contains("https://"), "nothing to fetch");
    }
}
