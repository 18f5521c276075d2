//! The human form of a [`Review`]: readable at a glance, each section
//! headed with its count, identical uses of a grant grouped. Every text
//! that came from the log (argv, paths, hosts, reasons, selectors) is
//! [`Escaped`]: an agent's argv cannot draw on the reviewer's terminal.

use std::fmt;

use super::report::Review;
use crate::escape::Escaped;

/// How many distinct things per grant the human form lists.
const SHOWN_PER_GRANT: usize = 8;

impl fmt::Display for Review {
    // Long on purpose: one section after another, in the order a reader sees them; each
    // section is a few lines, and splitting them apart would hide that order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Audit review of {}", Escaped(&self.path.to_string_lossy()))?;
        match (&self.first_ts, &self.last_ts) {
            (Some(a), Some(b)) => write!(f, "  {} records, {} .. {}", self.records, Escaped(a), Escaped(b))?,
            _ => write!(f, "  no records")?,
        }
        match &self.since {
            Some(s) => writeln!(f, " (since {s})")?,
            None => writeln!(f)?,
        }
        writeln!(
            f,
            "  {} ({} allowed, {} denied), {} ({} refused)",
            plural(self.calls, "call"),
            self.allowed_calls,
            self.denied_calls,
            plural(self.connections, "connection"),
            self.denied_connections
        )?;

        writeln!(f, "\nGrants used ({}):", self.grants.len())?;
        if self.grants.is_empty() {
            writeln!(f, "  none")?;
        }
        for g in &self.grants {
            let revoked = if g.revoked.is_some() { "  [REVOKED]" } else { "" };
            let uses = if g.uses == 1 { "use" } else { "uses" };
            write!(
                f,
                "  {}{revoked}: {} {uses}, first {}, last {}",
                Escaped(&g.rule),
                g.uses,
                Escaped(&g.first_use),
                Escaped(&g.last_use)
            )?;
            match self.in_view.iter().find(|v| v.rule == g.rule) {
                Some(v) => writeln!(f, "; in the view of {}", plural(v.calls, "call"))?,
                None => writeln!(f)?,
            }
            // Group identical uses: "3x git status (last seq 17)".
            let mut groups: Vec<(&str, u64, u64)> = Vec::new();
            for u in &g.used_by {
                match groups.iter_mut().find(|(s, _, _)| *s == u.summary) {
                    Some(e) => {
                        e.1 += 1;
                        e.2 = u.seq;
                    }
                    None => groups.push((&u.summary, 1, u.seq)),
                }
            }
            groups.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
            for (summary, n, seq) in groups.iter().take(SHOWN_PER_GRANT) {
                writeln!(f, "      {n:>4}x  {}  (last seq {seq})", Escaped(summary))?;
            }
            if groups.len() > SHOWN_PER_GRANT {
                writeln!(f, "      ... and {} more distinct uses (see --json)", groups.len() - SHOWN_PER_GRANT)?;
            }
        }

        writeln!(f, "\nGrants in a call's sandbox view ({}):", self.in_view.len())?;
        if self.in_view.is_empty() {
            writeln!(f, "  none")?;
        }
        for v in &self.in_view {
            writeln!(
                f,
                "  {}: in the view of {} ({} decided), first {}, last {} (seq {})",
                Escaped(&v.rule),
                plural(v.calls, "call"),
                plural(v.decided_uses, "use"),
                Escaped(&v.first),
                Escaped(&v.last),
                v.last_seq
            )?;
        }

        writeln!(f, "\nGrants never used ({}):", self.unused_grants.len())?;
        if self.unused_grants.is_empty() {
            writeln!(f, "  none")?;
        }
        for r in &self.unused_grants {
            writeln!(f, "  {}", Escaped(r))?;
        }

        writeln!(f, "\nDenied attempts ({}):", self.denied.len())?;
        if self.denied.is_empty() {
            writeln!(f, "  none")?;
        }
        for d in &self.denied {
            let rules = if d.rules.is_empty() { "no rule".to_owned() } else { d.rules.join(", ") };
            write!(f, "  {:>4}x  {} {}  [{}]", d.count, d.tool, Escaped(&d.summary), Escaped(&rules))?;
            match &d.reason {
                Some(r) => writeln!(f, ": {}", Escaped(r))?,
                None => writeln!(f)?,
            }
        }

        super::programs::render(f, &self.programs)?;

        writeln!(f, "\nConnections by host ({}):", self.hosts.len())?;
        if self.hosts.is_empty() {
            writeln!(f, "  none")?;
        }
        for h in &self.hosts {
            let ports = h.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
            writeln!(
                f,
                "  {} (port {ports}): {} allowed, {} denied, {} up, {} down",
                Escaped(&h.host),
                h.allowed,
                h.denied,
                human_bytes(h.bytes_up),
                human_bytes(h.bytes_down)
            )?;
        }

        super::http::render(f, &self.secrets, &self.http_hosts, &self.exfiltration)?;

        writeln!(f, "\nRevocations in force ({}):", self.revocations.len())?;
        if self.revocations.is_empty() {
            writeln!(f, "  none")?;
        }
        for r in &self.revocations {
            write!(f, "  {}  (since {})", Escaped(&r.selector.to_string()), Escaped(&r.ts))?;
            match &r.reason {
                Some(reason) => writeln!(f, ": {}", Escaped(reason))?,
                None => writeln!(f)?,
            }
        }

        let open = self.questions.iter().filter(|q| q.answer.is_none()).count();
        writeln!(f, "\nQuestions ({}, {open} open):", self.questions.len())?;
        if self.questions.is_empty() {
            writeln!(f, "  none")?;
        }
        for q in &self.questions {
            write!(
                f,
                "  {}  {} {} `{}` ({})",
                Escaped(&q.asked_at),
                Escaped(&q.id),
                Escaped(&q.kind),
                Escaped(&q.subject),
                Escaped(&q.rule)
            )?;
            match (&q.answer, &q.scope) {
                (Some(a), Some(s)) => {
                    let by = q.by.as_deref().unwrap_or("?");
                    let when = q.answered_at.as_deref().unwrap_or("?");
                    write!(f, ": {} {} by {} at {}", Escaped(a), Escaped(s), Escaped(by), Escaped(when))?;
                    match &q.approved_rule {
                        Some(r) => writeln!(f, ", kept as {}", Escaped(r))?,
                        None => writeln!(f)?,
                    }
                }
                _ => writeln!(f, ": open (no answer recorded)")?,
            }
        }

        if !self.unreadable_lines.is_empty() || self.torn_tail {
            writeln!(f)?;
        }
        if !self.unreadable_lines.is_empty() {
            let shown: Vec<String> = self.unreadable_lines.iter().take(10).map(u64::to_string).collect();
            writeln!(
                f,
                "warning: {} lines are not records and were skipped (lines {}{}); run `paddock audit verify`",
                self.unreadable_lines.len(),
                shown.join(", "),
                if self.unreadable_lines.len() > 10 { ", ..." } else { "" }
            )?;
        }
        if self.torn_tail {
            writeln!(f, "warning: the log ends with a torn line (an interrupted write), skipped")?;
        }
        Ok(())
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_readable() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
