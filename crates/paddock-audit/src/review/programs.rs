//! The programs a call's tree started (`exec` records), grouped per call program and per
//! command: "claude → git status ×41, cargo test ×6, curl ×2, denied: git push ×1".

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Serialize;

use crate::escape::Escaped;
use crate::payload::{Decision, Exec, Target};

/// The execs of the calls of one program (the program each call started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramTree {
    /// The call's program name (`claude`), or `(unknown call)` when the log holds no
    /// `call.start` for the execs' call.
    pub call_program: String,
    /// Execs in its trees.
    pub execs: u64,
    /// Of which refused.
    pub denied: u64,
    /// The commands, most frequent first (allowed and denied apart).
    pub commands: Vec<ExecCommand>,
}

/// Execs of one command (program name and subcommand) with one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecCommand {
    /// `git status`, `cargo test`, `curl`.
    pub command: String,
    /// Refused (`EACCES`).
    pub denied: bool,
    /// How many.
    pub count: u64,
    /// The rules that decided (distinct, sorted).
    pub rules: Vec<String>,
    /// `seq` of the last one.
    pub last_seq: u64,
}

/// One call program's execs: how many, how many refused, and per (refused, command).
type Tally = (u64, u64, BTreeMap<(bool, String), ExecCommand>);

/// Collects `exec` records.
#[derive(Default)]
pub(super) struct ExecGroups {
    /// call_id -> the call's program name.
    roots: HashMap<String, String>,
    trees: BTreeMap<String, Tally>,
    pub(super) execs: u64,
}

/// The last component of a path.
fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// A program name and, when the first argument looks like a subcommand (a plain word),
/// that too: `git status`, `cargo test`, but `curl`, `ls`, `sh`.
pub(super) fn command_of(e: &Exec) -> String {
    let name = e.program.as_deref().or(e.argv.first().map(String::as_str)).map(base).unwrap_or("?");
    let name = if name.is_empty() { e.path.as_str() } else { name };
    match e.argv.get(1) {
        Some(a)
            if !a.is_empty()
                && a.len() <= 32
                && a.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            format!("{name} {a}")
        }
        _ => name.to_string(),
    }
}

impl ExecGroups {
    /// A `call.start`: remembers the call's program for its execs.
    pub(super) fn call(&mut self, call_id: &str, target: &Target) {
        if let Target::Command { argv } = target {
            if let Some(p) = argv.first() {
                self.roots.insert(call_id.to_string(), base(p).to_string());
            }
        }
    }

    pub(super) fn add(&mut self, seq: u64, e: &Exec) {
        self.execs += 1;
        let root = self.roots.get(&e.call_id).cloned().unwrap_or_else(|| "(unknown call)".into());
        let denied = e.decision == Decision::Deny;
        let command = command_of(e);
        let tree = self.trees.entry(root).or_default();
        tree.0 += 1;
        tree.1 += u64::from(denied);
        let c = tree.2.entry((denied, command.clone())).or_insert_with(|| ExecCommand {
            command,
            denied,
            count: 0,
            rules: Vec::new(),
            last_seq: seq,
        });
        c.count += 1;
        c.last_seq = seq;
        if !c.rules.contains(&e.rule) {
            c.rules.push(e.rule.clone());
            c.rules.sort();
        }
    }

    pub(super) fn finish(self) -> Vec<ProgramTree> {
        let mut out: Vec<ProgramTree> = self
            .trees
            .into_iter()
            .map(|(call_program, (execs, denied, cmds))| {
                let mut commands: Vec<ExecCommand> = cmds.into_values().collect();
                commands.sort_by(|a, b| {
                    a.denied.cmp(&b.denied).then(b.count.cmp(&a.count)).then_with(|| a.command.cmp(&b.command))
                });
                ProgramTree { call_program, execs, denied, commands }
            })
            .collect();
        out.sort_by(|a, b| b.execs.cmp(&a.execs).then_with(|| a.call_program.cmp(&b.call_program)));
        out
    }
}

/// How many commands of one tree the human form lists on its line.
const SHOWN_PER_TREE: usize = 12;

/// The human form: one line per call program, every text escaped.
pub(super) fn render(f: &mut fmt::Formatter<'_>, trees: &[ProgramTree]) -> fmt::Result {
    let execs: u64 = trees.iter().map(|t| t.execs).sum();
    let denied: u64 = trees.iter().map(|t| t.denied).sum();
    writeln!(f, "\nPrograms started in the calls' trees ({execs} execs, {denied} refused):")?;
    if trees.is_empty() {
        writeln!(f, "  none")?;
    }
    for t in trees {
        let part = |c: &ExecCommand| format!("{} \u{d7}{}", Escaped(&c.command), c.count);
        let allowed: Vec<String> = t.commands.iter().filter(|c| !c.denied).take(SHOWN_PER_TREE).map(part).collect();
        let refused: Vec<String> = t.commands.iter().filter(|c| c.denied).take(SHOWN_PER_TREE).map(part).collect();
        write!(f, "  {} \u{2192} {}", Escaped(&t.call_program), allowed.join(", "))?;
        if !refused.is_empty() {
            write!(f, "{}denied: {}", if allowed.is_empty() { "" } else { ", " }, refused.join(", "))?;
        }
        let listed = allowed.len() + refused.len();
        if t.commands.len() > listed {
            write!(f, " ... and {} more (see --json)", t.commands.len() - listed)?;
        }
        writeln!(f)?;
        for c in t.commands.iter().filter(|c| c.denied) {
            writeln!(f, "      denied {} \u{d7}{} [{}]", Escaped(&c.command), c.count, Escaped(&c.rules.join(", ")))?;
        }
    }
    Ok(())
}
