//! `ask` entries an `allow` or `deny` entry decides first, so nobody is ever asked (allow
//! and deny come before ask): worth a lint warning. Only the clear cases: the same
//! command pattern, or the same host pattern (a deny without a port covers every port of
//! the ask entry; an allow covers the ports it allows). No glob subsumption.

use crate::commands::CommandRule;
use crate::error::Origin;
use crate::network::{HostRule, DEFAULT_ALLOW_PORTS};
use crate::policy::Policy;

impl Policy {
    /// Each `ask` entry that an `allow` or `deny` entry of the same pattern shadows: its
    /// origin and a warning naming both.
    pub fn shadowed_asks(&self) -> Vec<(Origin, String)> {
        let mut out = Vec::new();
        for ask in &self.ask.commands.allow {
            let mut rules = self.commands.iter().flat_map(|c| c.deny.iter().chain(&c.allow));
            if let Some(r) = rules.find(|r| same_command(r, ask)) {
                out.push((ask.origin.clone(), never_asked(&ask.id, &ask.raw, &r.id, &r.raw, &r.origin, "")));
            }
        }
        for ask in &self.ask.network.deny {
            let deny = self.network.deny.iter().find(|r| same_host(r, ask) && (r.port.is_none() || r.port == ask.port));
            if let Some(r) = deny {
                out.push((ask.origin.clone(), never_asked(&ask.id, &ask.raw, &r.id, &r.raw, &r.origin, "")));
                continue;
            }
            let allow = self.network.allow.iter().find(|r| same_host(r, ask) && covers_allowed(r.port, ask.port));
            if let Some(r) = allow {
                // An allow without a port takes 80 and 443 only: the ask entry still asks
                // for the others.
                let partly = if ask.port.is_none() { " on ports 80 and 443 (other ports are asked)" } else { "" };
                out.push((ask.origin.clone(), never_asked(&ask.id, &ask.raw, &r.id, &r.raw, &r.origin, partly)));
            }
        }
        out
    }
}

fn never_asked(id: &str, raw: &str, by: &str, by_raw: &str, by_origin: &Origin, partly: &str) -> String {
    format!(
        "{id} `{raw}` is never asked{partly}: {by} `{by_raw}` (at {}:{}) decides it first (allow and deny come before ask)",
        by_origin.line, by_origin.col
    )
}

/// The same command pattern: the same program as written and the same arguments.
fn same_command(a: &CommandRule, b: &CommandRule) -> bool {
    let words = |r: &CommandRule| shell_words::split(&r.raw).ok();
    a.program == b.program && words(a).is_some() && words(a) == words(b)
}

/// The same host pattern, ports aside.
fn same_host(a: &HostRule, b: &HostRule) -> bool {
    a.wildcard == b.wildcard && a.host == b.host
}

/// Whether an allow entry of port `allow` takes every port an ask entry of port `ask`
/// names (an ask without a port: at least the allowed default ports).
fn covers_allowed(allow: Option<u16>, ask: Option<u16>) -> bool {
    match (allow, ask) {
        (a, b) if a == b => true,
        (None, Some(p)) => DEFAULT_ALLOW_PORTS.contains(&p),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, Vars};

    fn warnings(text: &str) -> Vec<String> {
        let vars = Vars { workspace: "/w".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let p = Policy::from_toml_str("p.toml", text, &vars).unwrap_or_else(|e| panic!("{e}"));
        p.shadowed_asks().into_iter().map(|(o, m)| format!("{o}: {m}")).collect()
    }

    #[test]
    fn an_ask_entry_that_allow_or_deny_decides_first_is_named() {
        let w = warnings("version = 1\n[network]\nallow = [\"a.test\"]\nask = [\"b.test\", \"a.test\"]\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("p.toml:4:18: network.ask[1] `a.test` is never asked on ports 80 and 443 (other ports are asked): network.allow[0] `a.test` (at 3:10)"),
            "{w:?}"
        );
        let w = warnings("version = 1\n[network]\ndeny = [\"*.a.test\"]\nask = [\"*.a.test:22\"]\n");
        assert!(w.len() == 1 && w[0].contains("network.ask[0] `*.a.test:22` is never asked: network.deny[0]"), "{w:?}");
        let w = warnings(
            "version = 1\n[commands]\nallow = [\"ls **\"]\ndeny = [\"rm  -rf **\"]\nask = [\"ls **\", \"rm -rf **\"]\n",
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("commands.ask[0] `ls **` is never asked: commands.allow[0] `ls **` (at 3:10)"), "{w:?}");
        assert!(w[1].contains("commands.ask[1] `rm -rf **` is never asked: commands.deny[0]"), "{w:?}");
    }

    #[test]
    fn only_the_clear_cases_warn() {
        // Another port, a deny of one port under an ask of all, a wildcard and its apex,
        // other arguments: each asks for something.
        for text in [
            "version = 1\n[network]\nallow = [\"a.test:8080\"]\nask = [\"a.test\"]\n",
            "version = 1\n[network]\ndeny = [\"a.test:22\"]\nask = [\"a.test\"]\n",
            "version = 1\n[network]\nallow = [\"*.a.test\"]\nask = [\"a.test\"]\n",
            "version = 1\n[network]\nallow = [\"a.test\"]\nask = [\"a.test:22\"]\n",
            "version = 1\n[commands]\nallow = [\"ls *\"]\nask = [\"ls **\"]\n",
        ] {
            assert!(warnings(text).is_empty(), "{text}: {:?}", warnings(text));
        }
    }
}
