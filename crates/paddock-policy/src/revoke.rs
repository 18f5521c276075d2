//! Revocations: grants a person withdrew after review (`paddock revoke`). Every decision
//! consults them: a call they cover is denied with a reason that says "revoked", whatever
//! the policy's rules say.
//!
//! The selectors are parsed and stored by `paddock-audit` (`$STATE/revocations.toml`); this
//! module only matches: `command:PATTERN` with the syntax of `[commands]` patterns,
//! `path:PATH` covering the path and what lies below it, `network:HOST[:PORT]` with the
//! syntax of `[network]` entries (no port: every port), `rule:RULE_ID` a grant of the policy
//! (a revoked `filesystem.read[N]` or `write[N]` also leaves every later sandbox view).
//! Revoking a restriction (`filesystem.deny[N]`, `protect[N]`, `commands.deny[N]`,
//! `network.deny[N]`) would widen access: it is an error, never silently ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::commands::{CommandRules, RawCommand};
use crate::decision::{Decision, DENY_ALL_RULE, HIDDEN_RULE};
use crate::error::PolicyError;
use crate::error::{Origin, Problems};
use crate::network::{Host, NetworkRules, RawEntry};
use crate::vars::Vars;

/// One revoked grant, as the policy engine applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// `command:PATTERN`.
    Command(String),
    /// `path:PATH` (variables and `~` allowed).
    Path(String),
    /// `network:HOST[:PORT]`.
    Network(String),
    /// `rule:RULE_ID`.
    Rule(String),
    /// `secret:NAME`: the secret is never injected again (`rule:secrets.NAME` is the same).
    Secret(String),
}

/// Whether a rule id names a restriction (`deny`, `protect`): revoking one would widen
/// access, so such a revocation is refused rather than silently ignored.
fn is_restriction(id: &str) -> bool {
    let kind = id.split('[').next().unwrap_or(id);
    matches!(kind, "filesystem.deny" | "filesystem.protect" | "commands.deny" | "network.deny")
        || (id.starts_with("network.http[") && id.contains("].deny["))
        || id == DENY_ALL_RULE
        || id == HIDDEN_RULE
}

/// The forms of the rule ids a `rule:` revocation can name (`N`, `M`: indexes).
pub const REVOCABLE_RULES: &str = "filesystem.read[N], filesystem.write[N], commands.allow[N], commands.ask[N], network.allow[N], network.ask[N], network.allow_private[N], network.http[N], network.http[N].allow[M], approved[N], secrets.NAME";

/// Whether `id` is the id of a grant some policy can have ([`REVOCABLE_RULES`], or a
/// restriction's, which the list refuses with its own reason); else what is wrong with it.
/// A `rule:` revocation of another id would never match, while `revoke` said it was in
/// force (found by a test: `rule:command.allow[0]`, `rule:commands.allow[-1]`).
pub fn check_rule_id(id: &str) -> Result<(), String> {
    if is_restriction(id) || id == "default" {
        return Ok(());
    }
    if let Some(name) = id.strip_prefix("secrets.") {
        return match name.is_empty() {
            true => Err("`secrets.` names no secret".into()),
            false => Ok(()),
        };
    }
    let index = |s: &str| -> Option<()> {
        let n = s.strip_prefix('[')?.strip_suffix(']')?;
        // As a policy writes its ids: decimal, no leading zero (`[01]` names no rule).
        let plain = !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit());
        (plain && (n == "0" || !n.starts_with('0'))).then_some(())
    };
    let (head, tail) = id.split_at(id.find('[').unwrap_or(id.len()));
    let ok = match head {
        "filesystem.read"
        | "filesystem.write"
        | "commands.allow"
        | "commands.ask"
        | "network.allow"
        | "network.ask"
        | "network.allow_private"
        | "approved" => index(tail).is_some(),
        "network.http" => match tail.split_once("].allow") {
            Some((n, m)) => index(&format!("{n}]")).and(index(m)).is_some(),
            None => index(tail).is_some(),
        },
        _ => false,
    };
    match ok {
        true => Ok(()),
        false if tail.is_empty() || index(tail).is_some() || head.contains('.') => {
            Err(format!("`{id}` is not the id of a rule any policy has, so its revocation would never match"))
        }
        false => Err(format!("`{id}` has no index a rule can have (a number from 0, in brackets)")),
    }
}

/// Revocations compiled against a policy's sandbox PATH and variables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Revocations {
    labels: Vec<String>,
    rules: HashMap<String, usize>,
    commands: CommandRules,
    command_index: Vec<usize>,
    paths: HashMap<PathBuf, usize>,
    network: NetworkRules,
    network_index: Vec<usize>,
    secrets: HashMap<String, usize>,
}

impl Revocations {
    /// Compiles `(revocation, reason)` pairs; `source` names the list in errors.
    pub(crate) fn compile(
        list: &[(Revocation, Option<String>)],
        source: &Path,
        vars: &Vars,
        sandbox_path: &str,
    ) -> Result<Revocations, PolicyError> {
        let file = Arc::new(source.to_path_buf());
        let mut problems = Problems::default();
        let mut r = Revocations::default();
        let mut commands = Vec::new();
        let mut hosts = Vec::new();
        for (i, (rev, reason)) in list.iter().enumerate() {
            let origin = Origin { file: Arc::clone(&file), line: i + 1, col: 1 };
            let (label, value) = match rev {
                Revocation::Command(p) => ("command", p),
                Revocation::Path(p) => ("path", p),
                Revocation::Network(p) => ("network", p),
                Revocation::Rule(p) => ("rule", p),
                Revocation::Secret(p) => ("secret", p),
            };
            r.labels.push(match reason {
                Some(why) if !why.is_empty() => format!("`{label}:{value}` ({why})"),
                _ => format!("`{label}:{value}`"),
            });
            match rev {
                Revocation::Rule(id) if is_restriction(id) => problems.push(
                    &origin,
                    format!("`rule:{id}` names a restriction: revoking it would widen what calls may do"),
                    Some("revocations only withdraw grants (`commands.allow[N]`, `network.allow[N]`, `filesystem.read[N]`, `filesystem.write[N]`); to lift a deny or protect rule, edit the policy".into()),
                ),
                Revocation::Rule(id) => {
                    // Kept even when no policy has it (a list written by hand, or before
                    // `revoke` checked ids): it matches nothing, as said when it is made.
                    r.rules.entry(id.clone()).or_insert(i);
                }
                Revocation::Secret(name) => {
                    r.secrets.entry(name.clone()).or_insert(i);
                }
                Revocation::Command(p) => {
                    commands.push(RawCommand { raw: p.clone(), origin });
                    r.command_index.push(i);
                }
                Revocation::Network(p) => {
                    hosts.push(RawEntry { raw: p.clone(), origin });
                    r.network_index.push(i);
                }
                Revocation::Path(p) => match vars.expand_path(p) {
                    Ok(path) => {
                        r.paths.entry(crate::paths::normalize(&path, Path::new("/"))).or_insert(i);
                    }
                    Err((msg, hint)) => problems.push(&origin, msg, Some(hint)),
                },
            }
        }
        r.commands = CommandRules::compile(commands, Vec::new(), sandbox_path, &mut problems);
        r.network = NetworkRules::compile(Vec::new(), hosts, Vec::new(), Vec::new(), None, &mut problems);
        problems.into_result()?;
        Ok(r)
    }

    /// Whether a `rule:` revocation withdrew the grant `id`.
    pub(crate) fn revokes_rule(&self, id: &str) -> bool {
        self.rules.contains_key(id)
    }

    /// The paths of `path:` revocations, normalised.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &Path> {
        self.paths.keys().map(PathBuf::as_path)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn revoke(&self, d: Decision, i: usize) -> Decision {
        let what = match d.verdict {
            crate::decision::Verdict::Allow => format!("allowed by {}", d.rule),
            crate::decision::Verdict::Ask => format!("asked about by {}", d.rule),
            _ => d.reason.clone(),
        };
        Decision {
            verdict: crate::decision::Verdict::Deny,
            rule: d.rule,
            reason: format!("revoked by {}: this was {what}", self.labels[i]),
        }
    }

    fn by_rule(&self, d: &Decision) -> Option<usize> {
        // An allow, or a question (a revoked `ask` entry asks no more: it denies).
        if d.is_allow() || d.verdict == crate::decision::Verdict::Ask {
            self.rules.get(&*d.rule).copied()
        } else {
            None
        }
    }

    /// An allowed request by a `[[network.http]]` rule: denied when its pattern
    /// (`network.http[N].allow[M]`) or its table (`network.http[N]`) is revoked.
    pub(crate) fn http(&self, d: Decision) -> Decision {
        let table = d.rule.split_once("].").map(|(t, _)| format!("{t}]"));
        let hit = self.rules.get(&*d.rule).or_else(|| table.and_then(|t| self.rules.get(&t))).copied();
        match hit {
            Some(i) => self.revoke(d, i),
            None => d,
        }
    }

    /// The denial of injecting the secret `name` (rule id `id`), when `secret:NAME` or
    /// `rule:secrets.NAME` revoked it.
    pub(crate) fn secret(&self, name: &str, id: &Arc<str>) -> Option<Decision> {
        let i = self.secrets.get(name).or_else(|| self.rules.get(&**id)).copied()?;
        Some(Decision::deny(id, format!("revoked by {}: the secret `{name}` is no longer injected", self.labels[i])))
    }

    pub(crate) fn command(&self, d: Decision, program: Option<&Path>, args: &[String]) -> Decision {
        // An allow, or a question: a revoked command is neither let run nor asked about.
        if !d.is_allow() && d.verdict != crate::decision::Verdict::Ask {
            return d;
        }
        let by_pattern = program.and_then(|_| {
            let hit = self.commands.decide(program, "", args);
            hit.is_allow()
                .then(|| self.commands.allow.iter().position(|r| r.id == hit.rule))
                .flatten()
                .map(|k| self.command_index[k])
        });
        match by_pattern.or_else(|| self.by_rule(&d)) {
            Some(i) => self.revoke(d, i),
            None => d,
        }
    }

    pub(crate) fn path(&self, d: Decision, path: &Path) -> Decision {
        if !d.is_allow() {
            return d;
        }
        let hit = path.ancestors().filter_map(|a| self.paths.get(a)).copied().min();
        match hit.or_else(|| self.by_rule(&d)) {
            Some(i) => self.revoke(d, i),
            None => d,
        }
    }

    pub(crate) fn connect(&self, d: Decision, host: &Host, port: u16) -> Decision {
        // An allow, or a question: a revoked host is neither let through nor asked about.
        if !d.is_allow() && d.verdict != crate::decision::Verdict::Ask {
            return d;
        }
        let hit = self.network.decide_host(host, port);
        let by_host = (!hit.is_allow() && &*hit.rule != "default")
            .then(|| self.network.deny.iter().position(|r| r.id == hit.rule))
            .flatten()
            .map(|k| self.network_index[k]);
        match by_host.or_else(|| self.by_rule(&d)) {
            Some(i) => self.revoke(d, i),
            None => d,
        }
    }
}

#[cfg(test)]
mod id_tests {
    use super::check_rule_id;

    #[test]
    fn rule_ids_a_policy_can_have_are_told_from_the_rest() {
        for ok in [
            "filesystem.read[0]",
            "filesystem.write[12]",
            "commands.allow[2]",
            "commands.ask[0]",
            "network.allow[3]",
            "network.ask[1]",
            "network.allow_private[0]",
            "network.http[0]",
            "network.http[1].allow[2]",
            "approved[4]",
            "secrets.github",
            "default",
            "filesystem.deny[0]",
        ] {
            assert_eq!(check_rule_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "command.allow[0]",
            "network.alow[0]",
            "nope[1]",
            "commands.allow[-1]",
            "commands.allow[99999999999999999999]",
            "commands.allow",
            "commands.allow[]",
            "commands.allow[01]",
            "network.http[00].allow[1]",
            "commands.allow[1]x",
            "network.http[0].allow",
            "secrets.",
            "x",
        ] {
            assert!(check_rule_id(bad).is_err(), "{bad}");
        }
    }
}
