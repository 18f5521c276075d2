//! `ask` in `[commands]` and `[network]`: what no allow or deny entry decides, but a
//! person may, is [`Verdict::Ask`] with the rule `commands.ask[N]` or `network.ask[N]`.
//!
//! The order of a decision is: the policy's deny, the approved layer's deny
//! (`$STATE/approved.toml`, see `approved.rs`), the policy's allow, the approved layer's
//! allow, ask, and the default deny. An ask entry has the syntax of its table's patterns;
//! a host entry without a port covers every port (as `deny` does); `"*"` alone asks for
//! every call or host that nothing else decided. The policy engine only says "ask": who
//! asks, and how long to wait (`[sandbox] ask_timeout`), is the supervisor's.

mod shadowed;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::commands::{CommandRules, RawCommand};
use crate::decision::{Decision, Verdict};
use crate::error::Problems;
use crate::network::{Host, NetworkRules, RawEntry};

/// How long a question waits for an answer when `[sandbox] ask_timeout` is not set.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// The compiled `ask` entries of `[commands]` and `[network]`.
#[derive(Debug, Clone, Default)]
pub struct AskRules {
    /// `[commands] ask` as written, in order.
    pub commands_raw: Vec<String>,
    /// `[network] ask` as written, in order.
    pub network_raw: Vec<String>,
    commands: CommandRules,
    /// Index into `commands_raw` of each compiled command entry.
    command_ids: Vec<usize>,
    network: NetworkRules,
    network_ids: Vec<usize>,
    any_command: Option<Arc<str>>,
    any_host: Option<Arc<str>>,
}

impl AskRules {
    /// Whether an `ask` entry covers every command (`"*"`).
    pub(crate) fn asks_any_command(&self) -> bool {
        self.any_command.is_some()
    }

    /// The compiled `[commands] ask` entries.
    /// The programs the `ask` command entries name now.
    pub(crate) fn command_programs(&self) -> Vec<std::path::PathBuf> {
        self.commands.allowed_programs()
    }

    pub(crate) fn compile(
        commands: Vec<RawCommand>,
        hosts: Vec<RawEntry>,
        path_var: &str,
        problems: &mut Problems,
    ) -> AskRules {
        let mut a = AskRules {
            commands_raw: commands.iter().map(|c| c.raw.clone()).collect(),
            network_raw: hosts.iter().map(|h| h.raw.clone()).collect(),
            ..AskRules::default()
        };
        let mut cmds = Vec::new();
        for (i, c) in commands.into_iter().enumerate() {
            if c.raw.trim() == "*" {
                a.any_command.get_or_insert_with(|| format!("commands.ask[{i}]").into());
            } else {
                cmds.push(c);
                a.command_ids.push(i);
            }
        }
        let mut net = Vec::new();
        for (i, h) in hosts.into_iter().enumerate() {
            if h.raw.trim() == "*" {
                a.any_host.get_or_insert_with(|| format!("network.ask[{i}]").into());
            } else {
                net.push(h);
                a.network_ids.push(i);
            }
        }
        // Compiled as an allow list (command patterns) and a deny list (host patterns: no
        // port covers every port), then renamed to their own ids.
        a.commands = CommandRules::compile(cmds, Vec::new(), path_var, problems);
        for r in a.commands.allow.iter_mut() {
            let k = index_of(&r.id);
            r.id = format!("commands.ask[{}]", a.command_ids.get(k).copied().unwrap_or(k)).into();
        }
        a.network = NetworkRules::compile(Vec::new(), net, Vec::new(), Vec::new(), None, problems);
        for r in a.network.deny.iter_mut() {
            let k = index_of(&r.id);
            r.id = format!("network.ask[{}]", a.network_ids.get(k).copied().unwrap_or(k)).into();
        }
        a
    }

    /// Whether there is no ask entry at all.
    pub fn is_empty(&self) -> bool {
        self.commands_raw.is_empty() && self.network_raw.is_empty()
    }

    pub(crate) fn command(&self, program: &Path, shown: &str, args: &[String]) -> Option<Decision> {
        let hit = self.commands.decide(Some(program), shown, args);
        let rule = if hit.is_allow() { Some(hit.rule) } else { self.any_command.clone() }?;
        Some(Decision {
            verdict: Verdict::Ask,
            reason: format!("`{shown}` is in no allow or deny list; {rule} asks a person"),
            rule,
        })
    }

    pub(crate) fn host(&self, host: &Host, port: u16) -> Option<Decision> {
        let hit = self.network.decide_host(host, port);
        let rule = if hit.rule.starts_with("network.ask") { Some(hit.rule) } else { self.any_host.clone() }?;
        Some(Decision {
            verdict: Verdict::Ask,
            reason: format!("{}:{port} is in no allow or deny list; {rule} asks a person", host),
            rule,
        })
    }
}

/// `N` of a rule id `kind[N]`.
pub(crate) fn index_of(id: &str) -> usize {
    id.rsplit_once('[').and_then(|(_, n)| n.trim_end_matches(']').parse().ok()).unwrap_or(0)
}

/// What a person would add to the policy to allow one call or connection: the narrowest
/// entry (exact argv; exact host, with its port unless 80 or 443).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// `commands` or `network`.
    pub table: &'static str,
    /// The pattern, in the syntax of that table's lists.
    pub entry: String,
}

impl Proposal {
    /// The entry as a policy line: `[network] allow = ["example.com:8080"]`.
    pub fn line(&self, list: &str) -> String {
        format!("[{}] {list} = [{}]", self.table, toml_string(&self.entry))
    }

    /// The entry that allows exactly `argv`, whose program resolved to `program`: every
    /// argument literal (glob characters escaped), the program by its bare name when the
    /// call named it so, else by its canonical path.
    pub fn command(argv: &[String], program: &Path) -> Proposal {
        let first = match argv.first() {
            Some(p) if !p.contains('/') && !p.is_empty() => p.clone(),
            _ => program.to_string_lossy().into_owned(),
        };
        let mut words = vec![first];
        words.extend(argv.iter().skip(1).map(|a| escape_glob(a)));
        Proposal { table: "commands", entry: shell_words::join(words) }
    }

    /// `Ok` when the entry is one its table takes (a command whose program's name holds a
    /// glob character is not: no pattern can name it), else why not. Offer and keep only
    /// an entry that passes.
    pub fn check(&self) -> Result<(), crate::PolicyError> {
        match self.table {
            "commands" => crate::commands::check_pattern(&self.entry),
            _ => Ok(()),
        }
    }

    /// The entry that allows exactly `host:port` (an allow entry without a port covers 80
    /// and 443, so those are left out).
    pub fn connect(host: &Host, port: u16) -> Proposal {
        let entry = match port {
            80 | 443 => host.to_string(),
            p => host.authority(p),
        };
        Proposal { table: "network", entry }
    }
}

/// An argument as a command-pattern token that matches only itself.
fn escape_glob(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    for c in arg.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A TOML basic string.
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What a person answered about, for [`Policy::recheck`](crate::Policy::recheck).
#[derive(Debug, Clone, Copy)]
pub enum Asked<'a> {
    /// A command call: the program it resolved to, and its argv.
    Command {
        /// Canonical.
        program: &'a Path,
        /// As given.
        argv: &'a [String],
    },
    /// A connection.
    Network {
        /// Normalised.
        host: &'a Host,
        /// The port.
        port: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Vars};

    fn vars() -> Vars {
        Vars { workspace: "/ws".into(), home: Some("/home/u".into()), tmpdir: "/tmp".into(), caller_path: None }
    }

    fn load(text: &str) -> Policy {
        Policy::from_toml_str("p.toml", text, &vars()).unwrap()
    }

    #[test]
    fn order_is_deny_allow_ask_default() {
        let p = load(
            "version = 1\n[network]\nallow = [\"ok.test\"]\ndeny = [\"bad.test\"]\nask = [\"*.bad.test\", \"ok.test:9\"]\n",
        );
        let d = |h: &str, port| {
            let d = p.decide_connect(h, port);
            (d.verdict, d.rule.to_string())
        };
        assert_eq!(d("bad.test", 443), (Verdict::Deny, "network.deny[0]".into()));
        assert_eq!(d("ok.test", 443), (Verdict::Allow, "network.allow[0]".into()));
        assert_eq!(d("x.bad.test", 8080), (Verdict::Ask, "network.ask[0]".into()), "no port: every port");
        assert_eq!(d("ok.test", 9), (Verdict::Ask, "network.ask[1]".into()));
        assert_eq!(d("other.example", 443), (Verdict::Deny, "default".into()));
        assert!(p.network_wanted());
    }

    #[test]
    fn star_asks_for_everything_else() {
        let p = load("version = 1\n[network]\nask = [\"*\"]\n[commands]\nallow = [\"/bin/true\"]\nask = [\"*\"]\n");
        assert_eq!(p.decide_connect("any.example", 1).verdict, Verdict::Ask);
        assert_eq!(p.decide_connect("any.example", 1).rule.as_ref(), "network.ask[0]");
        let d = p.check_command(&["/bin/false".into()], Path::new("/"));
        assert_eq!((d.verdict, d.rule.as_ref()), (Verdict::Ask, "commands.ask[0]"));
        let d = p.check_command(&["/bin/true".into()], Path::new("/"));
        assert_eq!(d.verdict, Verdict::Allow);
    }

    #[test]
    fn ask_timeout_parses_and_defaults() {
        assert_eq!(load("version = 1\n").ask_timeout(), DEFAULT_ASK_TIMEOUT);
        assert_eq!(load("version = 1\n[sandbox]\nask_timeout = \"2s\"\n").ask_timeout(), Duration::from_secs(2));
        let e = Policy::from_toml_str("p.toml", "version = 1\n[sandbox]\nask_timeout = 5\n", &vars()).unwrap_err();
        assert!(e.to_string().starts_with("p.toml:3:15: error: bad duration"), "{e}");
    }

    #[test]
    fn proposals_are_exact() {
        let p = Proposal::command(&["git".into(), "log".into(), "*.rs".into()], Path::new("/usr/bin/git"));
        assert_eq!(p.entry, "git log '\\*.rs'");
        assert_eq!(p.line("allow"), "[commands] allow = [\"git log '\\\\*.rs'\"]");
        let q = Proposal::connect(&Host::Name("a.test".into()), 443);
        assert_eq!(q.entry, "a.test");
        assert_eq!(Proposal::connect(&Host::Ip("::1".parse().unwrap()), 8080).entry, "[::1]:8080");
        // The proposal, as a policy, allows exactly that call.
        let entry = Proposal::command(&["/bin/echo".into(), "a*b".into()], Path::new("/bin/echo")).entry;
        let pol = load(&format!("version = 1\n[commands]\nallow = [{}]\n", toml_string(&entry)));
        let d = pol.check_command(&["/bin/echo".into(), "a*b".into()], Path::new("/"));
        assert!(d.is_allow(), "{d:?}");
        let d = pol.check_command(&["/bin/echo".into(), "axb".into()], Path::new("/"));
        assert!(!d.is_allow(), "{d:?}");
        assert!(Proposal::command(&["/bin/echo".into(), "a*b".into()], Path::new("/bin/echo")).check().is_ok());
    }

    #[test]
    fn a_program_no_pattern_can_name_is_never_proposed_as_an_entry() {
        for name in ["/ws/a*b", "/ws/x[1", "/ws/{a}", "/ws/a?"] {
            let p = Proposal::command(&[name.into(), "x".into()], Path::new(name));
            let e = p.check().expect_err(name).to_string();
            assert!(e.contains("bad program"), "{name}: {e}");
            // What the check refuses, the loader refuses too.
            let text = format!("version = 1\n[commands]\nallow = [{}]\n", toml_string(&p.entry));
            assert!(Policy::from_toml_str("p.toml", &text, &vars()).is_err(), "{name}");
        }
        assert!(Proposal::connect(&Host::Name("a.test".into()), 8080).check().is_ok());
    }

    #[test]
    fn a_call_with_a_nul_in_an_argument_is_refused_unasked() {
        let p = load("version = 1\n[commands]\nask = [\"*\"]\n");
        let d = p.check_runnable(&["/bin/true".into(), "a\0b".into()], Path::new("/"));
        assert_eq!(d.verdict, Verdict::Deny, "{d:?}");
        assert!(d.reason.contains("NUL"), "{d:?}");
    }

    #[test]
    fn a_duration_beyond_ten_years_is_refused_where_it_is_written() {
        let e = Policy::from_toml_str("p.toml", "version = 1\n[sandbox]\nask_timeout = \"99999y\"\n", &vars())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:3:") && e.contains("10 years"), "{e}");
        assert!(crate::parse_duration("3650days").is_ok());
        assert!(crate::parse_duration("3651days").is_err());
        assert!(crate::parse_duration("600000000000s").is_err());
    }
}
