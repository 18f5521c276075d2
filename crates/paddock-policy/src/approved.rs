//! The approved layer: `$STATE/approved.toml`, the answers a person gave "always" to a
//! question (`paddock approve ID --scope always`, `paddock deny ID --scope always`).
//!
//! paddock writes it, one `[[approved]]` table per answer, appended, so that each entry
//! keeps its rule id `approved[N]` (N counts the tables from 0, in file order) for as long
//! as the file is only appended to; `policy show` lists them, `revoke rule:approved[N]`
//! withdraws an allowing one. Each entry names the list it belongs to and a pattern in the
//! syntax of that list:
//!
//! ```toml
//! version = 1
//! [[approved]]
//! rule = "network.allow"          # or commands.allow, commands.deny, network.deny
//! entry = "api.example.test:8080"
//! answered = "2026-01-01T00:00:00Z"   # informative
//! by = "uid 1000 pid 4242 tty /dev/pts/3"
//! ```
//!
//! It is merged after the policy: its deny entries after the policy's deny, its allow
//! entries after the policy's allow (see `ask.rs` for the whole order).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::ask::{index_of, toml_string};
use crate::commands::{CommandRules, RawCommand};
use crate::decision::{Decision, Verdict};
use crate::error::{Origin, PolicyError, Problems};
use crate::network::{Host, NetworkRules, RawEntry};

/// The list an approved entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovedList {
    /// `commands.allow`.
    CommandsAllow,
    /// `commands.deny`.
    CommandsDeny,
    /// `network.allow`.
    NetworkAllow,
    /// `network.deny`.
    NetworkDeny,
}

impl ApprovedList {
    /// `commands.allow` and so on.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovedList::CommandsAllow => "commands.allow",
            ApprovedList::CommandsDeny => "commands.deny",
            ApprovedList::NetworkAllow => "network.allow",
            ApprovedList::NetworkDeny => "network.deny",
        }
    }

    /// The list for a table (`commands`, `network`) and an answer (allow or not).
    pub fn of(table: &str, allow: bool) -> Option<ApprovedList> {
        Some(match (table, allow) {
            ("commands", true) => ApprovedList::CommandsAllow,
            ("commands", false) => ApprovedList::CommandsDeny,
            ("network", true) => ApprovedList::NetworkAllow,
            ("network", false) => ApprovedList::NetworkDeny,
            _ => return None,
        })
    }

    fn parse(s: &str) -> Option<ApprovedList> {
        let (table, list) = s.split_once('.')?;
        match list {
            "allow" => ApprovedList::of(table, true),
            "deny" => ApprovedList::of(table, false),
            _ => None,
        }
    }
}

/// One answer kept "always".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedEntry {
    /// Its list.
    pub list: ApprovedList,
    /// The pattern.
    pub entry: String,
    /// When it was answered (informative).
    pub answered: Option<String>,
    /// Who answered (informative).
    pub by: Option<String>,
    /// Where it is written.
    pub origin: Origin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    approved: Vec<Spanned<RawApproved>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproved {
    rule: Spanned<String>,
    entry: Spanned<String>,
    answered: Option<String>,
    by: Option<String>,
}

const FILE_HINT: &str = "each [[approved]] table has `rule` (commands.allow, commands.deny, network.allow or network.deny) and `entry`; paddock writes this file, `paddock revoke rule:approved[N]` withdraws an entry";

/// The first lines of a new approved file.
pub const APPROVED_HEADER: &str = "# Written by paddock: answers given \"always\" to its questions. Each [[approved]] table is\n# rule approved[N], N counting from 0 in file order: append only, or the ids move.\nversion = 1\n";

/// Parses the text of an approved file; `source` names it in errors.
pub fn parse_approved(source: &Path, text: &str) -> Result<Vec<ApprovedEntry>, PolicyError> {
    let file = Arc::new(source.to_path_buf());
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let origin = Origin::at(&file, text, e.span().map(|s| s.start).unwrap_or(0));
        PolicyError::one(origin, e.message().trim().to_string(), Some(FILE_HINT.into()))
    })?;
    let mut problems = Problems::default();
    if let Some(v) = &raw.version {
        if *v.get_ref() != 1 {
            problems.push(
                &Origin::at(&file, text, v.span().start),
                "unsupported version",
                Some("`version = 1`".into()),
            );
        }
    }
    let mut out = Vec::new();
    for a in raw.approved {
        let a = a.into_inner();
        let origin = Origin::at(&file, text, a.entry.span().start);
        match ApprovedList::parse(a.rule.get_ref()) {
            Some(list) => {
                out.push(ApprovedEntry { list, entry: a.entry.into_inner(), answered: a.answered, by: a.by, origin })
            }
            None => problems.push(
                &Origin::at(&file, text, a.rule.span().start),
                format!("unknown rule `{}` in [[approved]]", a.rule.get_ref()),
                Some(FILE_HINT.into()),
            ),
        }
    }
    problems.into_result()?;
    Ok(out)
}

/// The `[[approved]]` table to append for one answer.
pub fn approved_entry_text(list: ApprovedList, entry: &str, answered: &str, by: &str) -> String {
    format!(
        "\n[[approved]]\nrule = {}\nentry = {}\nanswered = {}\nby = {}\n",
        toml_string(list.as_str()),
        toml_string(entry),
        toml_string(answered),
        toml_string(by)
    )
}

/// The approved layer, compiled against a policy's sandbox PATH.
#[derive(Debug, Clone, Default)]
pub(crate) struct Approved {
    pub(crate) entries: Vec<ApprovedEntry>,
    commands: CommandRules,
    network: NetworkRules,
}

impl Approved {
    /// The programs the approved `commands.allow` entries name now.
    pub(crate) fn command_allow_programs(&self) -> Vec<std::path::PathBuf> {
        self.commands.allowed_programs()
    }
}

impl Approved {
    pub(crate) fn compile(entries: Vec<ApprovedEntry>, path_var: &str, problems: &mut Problems) -> Approved {
        let (mut ca, mut cd, mut na, mut nd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut ca_n, mut cd_n, mut na_n, mut nd_n) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (n, e) in entries.iter().enumerate() {
            let cmd = || RawCommand { raw: e.entry.clone(), origin: e.origin.clone() };
            let net = || RawEntry { raw: e.entry.clone(), origin: e.origin.clone() };
            match e.list {
                ApprovedList::CommandsAllow => (ca.push(cmd()), ca_n.push(n)),
                ApprovedList::CommandsDeny => (cd.push(cmd()), cd_n.push(n)),
                ApprovedList::NetworkAllow => (na.push(net()), na_n.push(n)),
                ApprovedList::NetworkDeny => (nd.push(net()), nd_n.push(n)),
            };
        }
        let mut commands = CommandRules::compile(ca, cd, path_var, problems);
        let mut network = NetworkRules::compile(na, nd, Vec::new(), Vec::new(), None, problems);
        let rename = |id: &mut Arc<str>, numbers: &[usize]| {
            let k = index_of(id);
            *id = format!("approved[{}]", numbers.get(k).copied().unwrap_or(k)).into();
        };
        commands.allow.iter_mut().for_each(|r| rename(&mut r.id, &ca_n));
        commands.deny.iter_mut().for_each(|r| rename(&mut r.id, &cd_n));
        network.allow.iter_mut().for_each(|r| rename(&mut r.id, &na_n));
        network.deny.iter_mut().for_each(|r| rename(&mut r.id, &nd_n));
        Approved { entries, commands, network }
    }

    pub(crate) fn any_network(&self) -> bool {
        self.network.any_allowed()
    }

    /// The approved entry deciding a command: only allowing ones with `allow`, only
    /// denying ones without.
    pub(crate) fn command(&self, program: &Path, shown: &str, args: &[String], allow: bool) -> Option<Decision> {
        if self.entries.is_empty() {
            return None;
        }
        let d = self.commands.decide(Some(program), shown, args);
        self.pick(d, allow, shown)
    }

    /// The approved entry deciding a connection (see [`Approved::command`]).
    pub(crate) fn connect(&self, host: &Host, port: u16, allow: bool) -> Option<Decision> {
        if self.entries.is_empty() {
            return None;
        }
        let d = self.network.decide_host(host, port);
        self.pick(d, allow, &host.authority(port))
    }

    fn pick(&self, d: Decision, allow: bool, shown: &str) -> Option<Decision> {
        if &*d.rule == "default" || d.is_allow() != allow {
            return None;
        }
        let e = self.entries.get(index_of(&d.rule))?;
        let how = if allow { "allowed" } else { "denied" };
        let reason = format!(
            "`{shown}` is {how} by {} (`{}`, answered \"always\" in {})",
            d.rule,
            e.entry,
            e.origin.file.display()
        );
        Some(Decision { verdict: if allow { Verdict::Allow } else { Verdict::Deny }, rule: d.rule, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Vars};

    fn policy() -> Policy {
        let vars = Vars { workspace: "/ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str(
            "p.toml",
            "version = 1\n[network]\nallow = [\"ok.test\"]\nask = [\"*\"]\n[commands]\nallow = []\nask = [\"*\"]\n",
            &vars,
        )
        .unwrap()
    }

    #[test]
    fn approved_entries_decide_with_their_ids() {
        let mut text = APPROVED_HEADER.to_string();
        text += &approved_entry_text(ApprovedList::NetworkAllow, "a.test:8080", "t", "me");
        text += &approved_entry_text(ApprovedList::NetworkDeny, "b.test", "t", "me");
        text += &approved_entry_text(ApprovedList::CommandsAllow, "/bin/echo hi", "t", "me");
        let entries = parse_approved(Path::new("approved.toml"), &text).unwrap();
        let mut p = policy();
        p.set_approved(entries).unwrap();
        let d = p.decide_connect("a.test", 8080);
        assert_eq!((d.verdict, d.rule.as_ref()), (Verdict::Allow, "approved[0]"));
        assert_eq!(p.decide_connect("a.test", 8081).verdict, Verdict::Ask, "exactly the port answered");
        let d = p.decide_connect("b.test", 1);
        assert_eq!((d.verdict, d.rule.as_ref()), (Verdict::Deny, "approved[1]"));
        let d = p.check_command(&["/bin/echo".into(), "hi".into()], Path::new("/"));
        assert_eq!((d.verdict, d.rule.as_ref()), (Verdict::Allow, "approved[2]"));
        assert_eq!(p.check_command(&["/bin/echo".into(), "ho".into()], Path::new("/")).verdict, Verdict::Ask);
        assert!(
            p.approved_listing().contains("# approved[1]: [network] deny = [\"b.test\"]"),
            "{}",
            p.approved_listing()
        );
        // A revocation of the grant denies, and says so.
        p.set_revocations(&[(crate::Revocation::Rule("approved[0]".into()), None)], Path::new("r.toml")).unwrap();
        let d = p.decide_connect("a.test", 8080);
        assert!(d.verdict == Verdict::Deny && d.reason.contains("revoked"), "{d:?}");
    }

    #[test]
    fn bad_approved_file_is_located() {
        let e =
            parse_approved(Path::new("a.toml"), "version = 1\n[[approved]]\nrule = \"network.ask\"\nentry = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("a.toml:3:8: error: unknown rule `network.ask`"), "{e}");
        let entries =
            parse_approved(Path::new("a.toml"), "[[approved]]\nrule = \"network.allow\"\nentry = \"*x\"\n").unwrap();
        let e = policy().set_approved(entries).unwrap_err().to_string();
        assert!(e.starts_with("a.toml:3:9: error: bad host pattern"), "{e}");
    }
}
