//! The human form of a [`Review`]: readable at a glance, each section
//! headed with its count, identical uses of a grant grouped.

use std::fmt;

use super::Review;

/// How many distinct things per grant the human form lists.
const SHOWN_PER_GRANT: usize = 8;

impl fmt::Display for Review {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Audit review of {}", self.path.display())?;
        match (&self.first_ts, &self.last_ts) {
            (Some(a), Some(b)) => write!(f, "  {} records, {a} .. {b}", self.records)?,
            _ => write!(f, "  no records")?,
        }
        match &self.since {
            Some(s) => writeln!(f, " (since {s})")?,
            None => writeln!(f)?,
        }
        writeln!(
            f,
            "  {} ({} allowed, {} denied), {}",
            plural(self.calls, "call"),
            self.allowed_calls,
            self.denied_calls,
            plural(self.connections, "connection")
        )?;

        writeln!(f, "\nGrants used ({}):", self.grants.len())?;
        if self.grants.is_empty() {
            writeln!(f, "  none")?;
        }
        for g in &self.grants {
            let revoked = if g.revoked.is_some() { "  [REVOKED]" } else { "" };
            let uses = if g.uses == 1 { "use" } else { "uses" };
            writeln!(f, "  {}{revoked}: {} {uses}, first {}, last {}", g.rule, g.uses, g.first_use, g.last_use)?;
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
                writeln!(f, "      {n:>4}x  {summary}  (last seq {seq})")?;
            }
            if groups.len() > SHOWN_PER_GRANT {
                writeln!(f, "      ... and {} more distinct uses (see --json)", groups.len() - SHOWN_PER_GRANT)?;
            }
        }

        writeln!(f, "\nGrants never used ({}):", self.unused_grants.len())?;
        if self.unused_grants.is_empty() {
            writeln!(f, "  none")?;
        }
        for r in &self.unused_grants {
            writeln!(f, "  {r}")?;
        }

        writeln!(f, "\nDenied attempts ({}):", self.denied.len())?;
        if self.denied.is_empty() {
            writeln!(f, "  none")?;
        }
        for d in &self.denied {
            let rules = if d.rules.is_empty() { "no rule".to_owned() } else { d.rules.join(", ") };
            write!(f, "  {:>4}x  {} {}  [{rules}]", d.count, d.tool, d.summary)?;
            match &d.reason {
                Some(r) => writeln!(f, ": {r}")?,
                None => writeln!(f)?,
            }
        }

        writeln!(f, "\nConnections by host ({}):", self.hosts.len())?;
        if self.hosts.is_empty() {
            writeln!(f, "  none")?;
        }
        for h in &self.hosts {
            let ports = h.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
            writeln!(
                f,
                "  {} (port {ports}): {} allowed, {} denied, {} up, {} down",
                h.host,
                h.allowed,
                h.denied,
                human_bytes(h.bytes_up),
                human_bytes(h.bytes_down)
            )?;
        }

        writeln!(f, "\nRevocations in force ({}):", self.revocations.len())?;
        if self.revocations.is_empty() {
            writeln!(f, "  none")?;
        }
        for r in &self.revocations {
            write!(f, "  {}  (since {})", r.selector, r.ts)?;
            match &r.reason {
                Some(reason) => writeln!(f, ": {reason}")?,
                None => writeln!(f)?,
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
