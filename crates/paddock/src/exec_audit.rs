//! The exec supervisor's decisions and records (issue 16): every program started in a
//! call's tree is an `exec` audit record; under `[commands] scope = "tree"` each is
//! decided by the policy's command rules, the current ones (a revocation reaches a running
//! tree at its next exec).

use std::sync::Arc;

use paddock_audit::{Decision as AuditDecision, Event, Exec};
use paddock_policy::{CommandScope, Decision, Policy, Verdict};
use paddock_sandbox::{ExecDecider, ExecRequest, ExecVerdict};

use crate::approvals::broker::{program_id, ProgramId};
use crate::session::inner::Inner;

/// The rule of an exec that scope "call" lets through undecided (it is recorded).
pub const SCOPE_CALL_RULE: &str = "commands.scope";

/// Decides and records the execs of one call.
pub(crate) struct ExecAuditor {
    inner: Arc<Inner>,
    call_id: String,
    /// The last exec a person was asked about (pid, the `ask` entry, argv) and the answer: a
    /// shell that tries the same program in the next `PATH` directory (`/usr/bin/id`, then
    /// `/bin/id`) gets that answer again instead of a second question; an exec another
    /// entry asks about, or from another directory, is asked again.
    last_asked: std::sync::Mutex<Option<(AskedExec, Decision)>>,
    /// The call's own program, argv and decision, until its exec comes: an exec an `ask`
    /// entry matches that is exactly that gets the call's decision (checked again against
    /// the revocations) instead of a second question.
    call: std::sync::Mutex<Option<(std::path::PathBuf, Vec<String>, Decision)>>,
}

/// An exec a person was asked about: its pid, the rule that asked, its argv, its cwd, and
/// what runs: the program and its interpreters, each by path, device and inode (an answer
/// about one program never stands for another under the same argv; found by an attack: an
/// exec allowed once that the kernel then failed, `E2BIG`, was followed by one of the
/// agent's own file under the same argv, which ran on that answer).
type AskedExec = (i32, String, Vec<String>, std::path::PathBuf, Vec<ProgramId>);

/// What `e` runs, by [`ProgramId`]: its program, then its interpreters.
fn programs_of(e: &ExecRequest) -> Vec<ProgramId> {
    e.program.iter().chain(e.interpreters.iter().map(|i| &i.program)).map(|p| program_id(p)).collect()
}

impl ExecAuditor {
    pub(crate) fn new(inner: Arc<Inner>, call_id: String) -> ExecAuditor {
        ExecAuditor { inner, call_id, last_asked: std::sync::Mutex::new(None), call: std::sync::Mutex::new(None) }
    }

    /// The call's program (as its spec names it), argv and decision (see `call`).
    pub(crate) fn with_call(self, program: &std::path::Path, argv: &[String], d: Decision) -> ExecAuditor {
        let program = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
        *self.call.lock().unwrap_or_else(|p| p.into_inner()) = Some((program, argv.to_vec(), d));
        self
    }

    /// A person's answer on an exec an `ask` entry matched, once per (pid, argv).
    fn ask(&self, policy: &Policy, d: Decision, e: &ExecRequest) -> Decision {
        {
            let mut call = self.call.lock().unwrap_or_else(|p| p.into_inner());
            let is_the_call = |(program, argv, _): &(std::path::PathBuf, Vec<String>, Decision)| {
                e.program.as_ref() == Some(program) && *argv == e.argv && !e.argv_lossy && e.interpreters.is_empty()
            };
            if let Some((program, argv, decided)) = call.take_if(|c| is_the_call(c)) {
                let argv = argv.as_slice();
                return self
                    .inner
                    .policy()
                    .recheck(decided, &paddock_policy::Asked::Command { program: &program, argv });
            }
        }
        let key = (e.pid, d.rule.to_string(), e.argv.clone(), e.cwd.clone(), programs_of(e));
        let mut last = self.last_asked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, answer)) = last.as_ref() {
            // Not for an argv that is not UTF-8: two such argvs can read the same here. And
            // decided again against the revocations (one since the answer withdraws it).
            if *k == key && !e.argv_lossy {
                if let Some(program) = &e.program {
                    let asked = paddock_policy::Asked::Command { program, argv: &e.argv };
                    return self.inner.policy().recheck(answer.clone(), &asked);
                }
            }
        }
        let answer = match &e.program {
            Some(program) => self.inner.ask_exec(policy, d, e, program),
            None => deny("default", format!("{}; but the program does not resolve", d.reason)),
        };
        *last = Some((key, answer.clone()));
        answer
    }
}

impl ExecDecider for ExecAuditor {
    fn decide(&self, e: &ExecRequest) -> ExecVerdict {
        let policy = self.inner.policy();
        let mut d = decide(&policy, e);
        if d.verdict == Verdict::Ask {
            // An `ask` entry matched: the exec waits (in the kernel) for a person's answer.
            d = self.ask(&policy, d, e);
        }
        let (argv, argv_omitted, cut) = Exec::bound_argv(&e.argv);
        let show = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let record = Exec {
            session: self.inner.id.clone(),
            call_id: self.call_id.clone(),
            pid: e.pid,
            ppid: e.ppid,
            program: e.program.as_deref().map(show),
            interpreter: e.interpreters.last().map(|i| show(&i.program)),
            interpreters: chain(&e.interpreters),
            path: e.path.clone(),
            argv,
            argv_omitted,
            argv_truncated: cut || e.argv_truncated,
            cwd: show(&e.cwd),
            decision: if d.is_allow() { AuditDecision::Allow } else { AuditDecision::Deny },
            rule: d.rule.to_string(),
            reason: d.reason.clone(),
        };
        // Written before the answer, so in the file before the program runs; on disk with the
        // log's group commit (within its `SyncPolicy`), a refused one before its answer.
        let event = Event::Exec(record);
        let written = self.inner.append(&event, !d.is_allow());
        if let (Some(observe), Event::Exec(record)) = (self.inner.exec_observer(), &event) {
            observe(record);
        }
        match written {
            Ok(_) if d.is_allow() => ExecVerdict::Allow,
            Ok(_) => ExecVerdict::Deny,
            Err(err) => {
                // No program runs unaudited.
                tracing::error!(call = %self.call_id, "exec refused: its audit record could not be written: {err}");
                ExecVerdict::Deny
            }
        }
    }
}

/// A chain of more than one interpreter for the record: each as its program, then the
/// arguments the kernel gives it after argv[0] (bounded as an exec's argv is).
fn chain(levels: &[paddock_sandbox::ScriptInterpreter]) -> Vec<Vec<String>> {
    if levels.len() < 2 {
        return Vec::new();
    }
    levels
        .iter()
        .map(|i| {
            let mut argv = vec![i.program.to_string_lossy().into_owned()];
            argv.extend(i.argv.iter().skip(1).cloned());
            Exec::bound_argv(&argv).0
        })
        .collect()
}

fn deny(rule: &str, reason: String) -> Decision {
    Decision { verdict: Verdict::Deny, rule: Arc::from(rule), reason }
}

/// The verdict on one exec under `policy` (pure): scope "call" lets every exec through
/// (recorded); scope "tree" asks the command rules about the program the kernel will open
/// and its argv, and about a script's interpreter too.
pub(crate) fn decide(policy: &Policy, e: &ExecRequest) -> Decision {
    if policy.command_scope == CommandScope::Call {
        return Decision {
            verdict: Verdict::Allow,
            rule: Arc::from(SCOPE_CALL_RULE),
            reason: "scope \"call\": recorded, not decided".into(),
        };
    }
    let rules = policy.commands.is_some();
    let Some(program) = &e.program else {
        let problem = e.problem.as_deref().unwrap_or("it names no program");
        if !rules && policy.denies_all().is_none() {
            return policy.decide_command(None, &e.argv).with_reason_if_allowed(problem);
        }
        return deny("default", format!("exec of `{}` refused: {problem}", e.path));
    };
    if rules && e.argv_truncated {
        return deny("default", "its arguments are too long or unreadable to be checked against [commands]".into());
    }
    let d = decide_one(policy, program, &e.argv, rules);
    // An `ask` gets the checks an `allow` does before a person is asked: the question
    // names the program and argv the rules matched, which is what must run.
    if d.verdict == Verdict::Deny {
        return d;
    }
    if let Some(problem) = &e.problem {
        if rules {
            return deny("default", format!("`{}`: {problem}", program.display()));
        }
    }
    // A script: every interpreter of its chain runs (the last one as the process), each
    // with the argv the kernel gives it, so each is decided as an exec of its own.
    for (level, i) in e.interpreters.iter().enumerate() {
        let di = decide_one(policy, &i.program, &i.argv, rules);
        if !di.is_allow() {
            let which = if level == 0 {
                "the script's interpreter".to_string()
            } else {
                format!("its interpreter's interpreter (level {})", level + 1)
            };
            return Decision { verdict: Verdict::Deny, rule: di.rule, reason: format!("{which}: {}", di.reason) };
        }
    }
    d
}

/// One program of an exec (the program itself, or an interpreter of its `#!` chain) with
/// the argv it is given: the command rules, then (under rules) argv[0] naming another
/// program.
fn decide_one(policy: &Policy, program: &std::path::Path, argv: &[String], rules: bool) -> Decision {
    let d = policy.decide_command(Some(program), argv);
    if d.verdict == Verdict::Deny || !rules {
        return d;
    }
    if let Some(a0) = foreign_argv0(policy, argv, program) {
        return deny(
            "default",
            format!(
                "argv[0] `{a0}` names another program than `{}`: a multi-call program (git's `git-commit`, busybox) acts as the one argv[0] names, which the rules did not decide",
                program.display()
            ),
        );
    }
    d
}

/// argv[0], when its last component (a login shell's leading `-` dropped) names another
/// program: neither the program's own name nor a name the sandbox's `PATH` resolves to the
/// same program (`sh` for `/usr/bin/dash`). Multi-call programs choose what to do by it
/// (`exec -a git-commit git log` commits; busybox runs the applet it names), and the rules
/// match the program and its arguments, so under `"tree"` such an exec is refused. The name
/// the exec asked for does not count: the agent can make a symlink `git-commit` to git.
fn foreign_argv0<'a>(policy: &Policy, argv: &'a [String], program: &std::path::Path) -> Option<&'a str> {
    let a0 = argv.first()?;
    let name = a0.rsplit('/').next().unwrap_or(a0);
    let name = name.strip_prefix('-').unwrap_or(name);
    if program.file_name().is_some_and(|n| n.as_encoded_bytes() == name.as_bytes()) {
        return None;
    }
    let same = resolve_in_trusted_path(policy, name).is_some_and(|p| p == program);
    (!same).then_some(a0.as_str())
}

/// `name` looked up in the sandbox's `PATH` as the sandbox sees it, in the directories a
/// call can neither write (it could plant the name there: a `git-commit` link to git in
/// an activated `.venv/bin`) nor not see (a pyenv shim outside the view would stand for a
/// program the sandbox never runs); the program it names, canonical.
fn resolve_in_trusted_path(policy: &Policy, name: &str) -> Option<std::path::PathBuf> {
    policy
        .sandbox_path()
        .split(':')
        .map(std::path::Path::new)
        .filter(|d| d.is_absolute())
        // Normalised as the grants are (symlinks and `..` resolved): an entry written
        // through a symlink into a write grant is that grant.
        .filter(|d| {
            let root = std::path::Path::new("/");
            policy.check_read(d, root).is_allow() && !policy.check_write(d, root).is_allow()
        })
        .find_map(|d| paddock_policy::resolve_program(name, &d.to_string_lossy(), std::path::Path::new("/")))
}

trait AllowedNote {
    fn with_reason_if_allowed(self, note: &str) -> Decision;
}

impl AllowedNote for Decision {
    fn with_reason_if_allowed(mut self, note: &str) -> Decision {
        if self.is_allow() {
            self.reason = format!("{} (the exec {note})", self.reason);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;
    use std::path::PathBuf;

    fn policy(text: &str) -> Policy {
        let vars = Vars::from_env(std::env::temp_dir());
        Policy::from_toml_str("t.toml", text, &vars).unwrap()
    }

    fn exec(program: Option<&str>, argv: &[&str]) -> ExecRequest {
        ExecRequest {
            pid: 2,
            ppid: 1,
            syscall: "execve",
            path: program.unwrap_or("").into(),
            program: program.map(|p| std::fs::canonicalize(p).unwrap()),
            interpreters: Vec::new(),
            problem: program.is_none().then(|| "a descriptor with no path".into()),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            argv_truncated: false,
            argv_lossy: false,
            cwd: PathBuf::from("/"),
        }
    }

    #[test]
    fn argv0_naming_another_program_is_refused_under_tree() {
        let p = policy("version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\"]\n[commands]\nscope = \"tree\"\nallow = [\"ls **\", \"sh **\"]\n");
        // The control: the program's own name, a path to it, a login shell's dash.
        assert!(decide(&p, &exec(Some("/bin/ls"), &["ls", "-l"])).is_allow());
        assert!(decide(&p, &exec(Some("/bin/ls"), &["/bin/ls", "-l"])).is_allow());
        assert!(decide(&p, &exec(Some("/bin/sh"), &["-sh"])).is_allow());
        // A name PATH resolves to the program (`sh` is dash here, or bash).
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert!(decide(&p, &exec(Some(sh.to_str().unwrap()), &["sh", "-c", "true"])).is_allow());
        // A symlink the agent named after another program: the name asked for does not count.
        let mut e = exec(Some("/bin/ls"), &["/tmp/rm", "-l"]);
        e.path = "/tmp/rm".into();
        assert!(!decide(&p, &e).is_allow());
        for a0 in ["ls-remove", "/usr/bin/rm", "-rm"] {
            let d = decide(&p, &exec(Some("/bin/ls"), &[a0, "-l"]));
            assert_eq!((d.is_allow(), &*d.rule), (false, "default"), "{a0}: {}", d.reason);
            assert!(d.reason.contains("argv[0]"), "{}", d.reason);
        }
        // A name the call could plant in a PATH directory it may write (an activated
        // `.venv/bin`) does not make argv[0] the program's; the same name in a directory
        // it may only read does; a PATH directory outside the view does not count.
        let ws = tempfile::tempdir().unwrap();
        let bin = ws.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink("/bin/ls", bin.join("ls-remove")).unwrap();
        let text = |write: &str| {
            format!(
                "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", {b:?}]\nwrite = [{write}]\n[env]\nset = {{ PATH = \"/nonexistent-shims:{b}:/usr/bin:/bin\" }}\n[commands]\nscope = \"tree\"\nallow = [\"/bin/ls **\"]\n",
                b = bin.display()
            )
        };
        let planted = policy(&text(&format!("{:?}", ws.path().display().to_string())));
        let d = decide(&planted, &exec(Some("/bin/ls"), &["ls-remove", "-l"]));
        assert!(!d.is_allow() && d.reason.contains("argv[0]"), "{}", d.reason);
        let kept = policy(&text(""));
        assert!(decide(&kept, &exec(Some("/bin/ls"), &["ls-remove", "-l"])).is_allow());
        // The same write grant reached through a symlink, or `..`, in the PATH entry.
        std::os::unix::fs::symlink(ws.path(), ws.path().with_extension("link")).unwrap();
        for entry in [ws.path().with_extension("link").join("bin"), ws.path().join("bin/../bin")] {
            let text = format!(
                "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/tmp\"]\nwrite = [{:?}]\n[env]\nset = {{ PATH = \"{}:/usr/bin:/bin\" }}\n[commands]\nscope = \"tree\"\nallow = [\"/bin/ls **\"]\n",
                ws.path().display().to_string(),
                entry.display()
            );
            let d = decide(&policy(&text), &exec(Some("/bin/ls"), &["ls-remove", "-l"]));
            assert!(!d.is_allow(), "{}: {}", entry.display(), d.reason);
        }
        std::fs::remove_file(ws.path().with_extension("link")).unwrap();
        // A PATH of `/bin` alone on a merged-/usr system still finds `sh`.
        let bin_only = policy(
            "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\"]\n[env]\nset = { PATH = \"/bin\" }\n[commands]\nscope = \"tree\"\nallow = [\"sh **\"]\n",
        );
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert!(decide(&bin_only, &exec(Some(sh.to_str().unwrap()), &["sh", "-c", "true"])).is_allow());
        // Recorded only under "call".
        let p = policy("version = 1\n[commands]\nallow = [\"ls **\"]\n");
        assert!(decide(&p, &exec(Some("/bin/ls"), &["git-commit"])).is_allow());
    }

    /// An exec an `ask` entry matches gets the checks an allowed one gets before a person
    /// is asked: a person approving `ls -l` must not approve what argv[0] makes another
    /// program of, nor a script whose interpreter the rules refuse.
    #[test]
    fn an_ask_is_checked_as_an_allow_before_anyone_is_asked() {
        let p = policy("version = 1\n[commands]\nscope = \"tree\"\nallow = [\"sh **\"]\nask = [\"ls **\"]\n");
        let d = decide(&p, &exec(Some("/bin/ls"), &["ls", "-l"]));
        assert_eq!((d.verdict, &*d.rule), (Verdict::Ask, "commands.ask[0]"), "the control: {}", d.reason);
        for a0 in ["ls-remove", "/usr/bin/rm"] {
            let d = decide(&p, &exec(Some("/bin/ls"), &[a0, "-l"]));
            assert_eq!((d.verdict, &*d.rule), (Verdict::Deny, "default"), "{a0}: {}", d.reason);
            assert!(d.reason.contains("argv[0]"), "{}", d.reason);
        }
        let mut script = exec(Some("/bin/ls"), &["ls", "-l"]);
        script.interpreters = vec![paddock_sandbox::ScriptInterpreter {
            program: std::fs::canonicalize("/bin/true").unwrap(),
            argv: vec!["/bin/true".into(), "/bin/ls".into(), "-l".into()],
        }];
        assert_eq!(decide(&p, &script).verdict, Verdict::Deny, "an interpreter the rules do not allow");
        let mut unresolved = exec(Some("/bin/ls"), &["ls", "-l"]);
        unresolved.problem = Some("a /proc magic link".into());
        assert_eq!(decide(&p, &unresolved).verdict, Verdict::Deny);
    }

    /// A script's interpreter may be a script in turn: every level runs (the kernel follows
    /// five), each is decided with the argv the kernel gives it (its `#!` argument
    /// included), and argv[0] (the name on the `#!` line) must name the program.
    #[test]
    fn every_interpreter_of_a_chain_is_decided_with_its_argv() {
        let level = |program: &str, argv: &[&str]| paddock_sandbox::ScriptInterpreter {
            program: std::fs::canonicalize(program).unwrap(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
        };
        let p = policy("version = 1\n[commands]\nscope = \"tree\"\nallow = [\"ls **\", \"cat **\"]\n");
        let mut e = exec(Some("/bin/ls"), &["ls", "-l"]);
        e.interpreters = vec![level("/bin/cat", &["/bin/cat", "./s", "-l"])];
        assert!(decide(&p, &e).is_allow(), "the control: {}", decide(&p, &e).reason);
        e.interpreters.push(level("/bin/true", &["/bin/true", "-x", "/bin/cat", "./s", "-l"]));
        let d = decide(&p, &e);
        assert_eq!(d.verdict, Verdict::Deny, "{}", d.reason);
        assert!(d.reason.contains("level 2"), "{}", d.reason);
        let all = policy("version = 1\n[commands]\nscope = \"tree\"\nallow = [\"ls **\", \"cat **\", \"true **\"]\n");
        assert!(decide(&all, &e).is_allow(), "{}", decide(&all, &e).reason);
        // The `#!` argument is decided: `true -x` is denied by its own rule.
        let no_x = policy(
            "version = 1\n[commands]\nscope = \"tree\"\nallow = [\"ls **\", \"cat **\", \"true **\"]\ndeny = [\"true -x **\"]\n",
        );
        assert_eq!(decide(&no_x, &e).verdict, Verdict::Deny);
        // A `#!` name that makes another program of the interpreter (a link named git-commit).
        e.interpreters = vec![level("/bin/cat", &["/ws/git-commit", "./s", "-l"])];
        let d = decide(&p, &e);
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(d.reason.contains("argv[0]"), "{}", d.reason);
        // A problem found while reading the exec (a dead working directory) refuses it.
        let mut dead = exec(Some("/bin/ls"), &["ls"]);
        dead.problem = Some("its working directory has no path in the view (/ws/a (deleted))".into());
        assert_eq!(decide(&p, &dead).verdict, Verdict::Deny);
    }

    #[test]
    fn scope_call_records_and_lets_through() {
        let p = policy("version = 1\n[commands]\nallow = [\"ls **\"]\n");
        let d = decide(&p, &exec(Some("/bin/sh"), &["sh"]));
        assert!(d.is_allow());
        assert_eq!(&*d.rule, SCOPE_CALL_RULE);
    }

    #[test]
    fn scope_tree_decides_program_argv_and_fileless() {
        let p = policy(
            "version = 1\n[commands]\nscope = \"tree\"\nallow = [\"ls **\", \"sh **\"]\ndeny = [\"ls -R **\"]\n",
        );
        assert!(decide(&p, &exec(Some("/bin/ls"), &["ls", "-l"])).is_allow());
        let d = decide(&p, &exec(Some("/bin/ls"), &["ls", "-R", "/"]));
        assert_eq!((d.is_allow(), &*d.rule), (false, "commands.deny[0]"));
        assert!(!decide(&p, &exec(Some("/bin/true"), &["true"])).is_allow());
        assert!(!decide(&p, &exec(None, &["x"])).is_allow());
        let mut truncated = exec(Some("/bin/ls"), &["ls"]);
        truncated.argv_truncated = true;
        assert!(!decide(&p, &truncated).is_allow());
    }

    #[test]
    fn scope_tree_without_rules_lets_everything_through_on_the_record() {
        let p = policy("version = 1\n[commands]\nscope = \"tree\"\n");
        assert!(p.commands.is_none());
        assert!(decide(&p, &exec(Some("/bin/true"), &["true"])).is_allow());
        assert!(decide(&p, &exec(None, &["x"])).is_allow());
    }
}
