//! The broker of one session's questions: a call or connection that an `ask` entry
//! matched waits here for a person's answer (from any process of the same user, through
//! the store), until `[sandbox] ask_timeout`; no answer is a denial. Answers given for the
//! session are kept in memory; "always" is appended to `$STATE/approved.toml`, which each
//! question reads afresh first, so an entry another process wrote is honoured at once and
//! a revocation of it cuts it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paddock_audit::{ApprovalAnswer, ApprovalAsk, Event};
use paddock_policy::{approved_entry_text, ApprovedList, Decision, Host, Policy, Proposal, Verdict};

use super::question::{Answer, Question, Scope, Verdict as Said};
use super::store::{now_ms, Store};

/// The approved list's file name in `$STATE`.
pub const APPROVED_FILE: &str = "approved.toml";

/// What is asked for.
#[derive(Debug, Clone)]
pub enum Subject {
    /// A command call or exec: its argv, the program it resolved to, where it runs and
    /// what it is given on standard input.
    Command {
        /// As the agent gave it.
        argv: Vec<String>,
        /// Canonical.
        program: PathBuf,
        /// Its working directory.
        cwd: PathBuf,
        /// The bytes a call is given on standard input; `None` when it reads none the
        /// agent chose here (`run`'s terminal, an exec in a call's tree).
        stdin: Option<Vec<u8>>,
        /// Its argv is known only lossily (not UTF-8): an answer holds for it alone, never
        /// for the session or always (another argv could read the same).
        once_only: bool,
    },
    /// A connection.
    Network {
        /// Normalised.
        host: Host,
        /// The port.
        port: u16,
    },
}

/// A program's path, device and inode (0, 0 when it cannot be looked at): the file a
/// person's answer is about, never another renamed over its path.
pub(crate) type ProgramId = (PathBuf, u64, u64);

/// [`ProgramId`] of `program` now.
pub(crate) fn program_id(program: &Path) -> ProgramId {
    use std::os::unix::fs::MetadataExt;
    let (dev, ino) = std::fs::metadata(program).map_or((0, 0), |m| (m.dev(), m.ino()));
    (program.to_path_buf(), dev, ino)
}

impl Subject {
    fn kind(&self) -> &'static str {
        match self {
            Subject::Command { .. } => "command",
            Subject::Network { .. } => "network",
        }
    }

    /// What a person reads: the argv as shell words, or `host:port`.
    fn shown(&self) -> String {
        match self {
            Subject::Command { argv, .. } => shell_words::join(argv),
            Subject::Network { host, port } => host.authority(*port),
        }
    }

    /// The key of a session answer: exactly this program (its path and its file), argv
    /// (argv[0] included), directory and standard input, or this host and port. Every part is a JSON string (its length is told by its
    /// quotes), so no two subjects share a key (`["cat"]` and `["cat", ""]`, an argument
    /// holding what a separator would be).
    fn key(&self) -> String {
        match self {
            Subject::Command { argv, program, cwd, stdin, .. } => {
                use sha2::Digest;
                let stdin = stdin.as_ref().map(|b| paddock_audit::hex::to_hex(&sha2::Sha256::digest(b)));
                // The program's file too (device and inode): another file renamed over its
                // path is another program (found by a test: a later call ran one on the
                // session's answer). argv[0] too: a multi-call program acts as the name it
                // is called by (`unxz` and `xzcat` are one program).
                let (_, dev, ino) = program_id(program);
                let parts = (program.to_string_lossy(), (dev, ino), argv, cwd.to_string_lossy(), stdin);
                format!("command {}", serde_json::to_string(&parts).unwrap_or_default())
            }
            Subject::Network { host, port } => format!("network {}", host.authority(*port)),
        }
    }

    /// A command's directory, as a question shows it.
    fn cwd(&self) -> Option<String> {
        match self {
            Subject::Command { cwd, .. } => Some(cwd.to_string_lossy().into_owned()),
            Subject::Network { .. } => None,
        }
    }

    /// What a command call reads on standard input, as a question shows it: its size and
    /// its first bytes (lossy UTF-8; a person's terminal escapes them).
    fn stdin(&self) -> Option<String> {
        const SHOWN: usize = 200;
        let Subject::Command { stdin: Some(b), .. } = self else { return None };
        let head = String::from_utf8_lossy(&b[..b.len().min(SHOWN)]);
        let more = if b.len() > SHOWN { " …" } else { "" };
        Some(format!("{} bytes: {head}{more}", b.len()))
    }

    /// The entry an "always" answer adds: a command by the name it was called by only
    /// when `policy` resolves that name to the very program that runs (a `PATH` of the
    /// call's own can put another `cat` first), else by its path.
    fn proposal(&self, policy: &Policy) -> Proposal {
        match self {
            Subject::Command { argv, program, cwd, .. } => {
                let by_name = argv.first().is_some_and(|a| {
                    !a.contains('/') && policy.resolve_program(a, cwd).as_deref() == Some(program.as_path())
                });
                if by_name {
                    return Proposal::command(argv, program);
                }
                let mut by_path = argv.clone();
                if let Some(a0) = by_path.first_mut() {
                    *a0 = program.to_string_lossy().into_owned();
                }
                Proposal::command(&by_path, program)
            }
            Subject::Network { host, port } => Proposal::connect(host, *port),
        }
    }

    /// The program that runs, as a question names it.
    fn program(&self) -> Option<String> {
        match self {
            Subject::Command { program, .. } => Some(program.to_string_lossy().into_owned()),
            Subject::Network { .. } => None,
        }
    }

    /// Whether an answer about it can hold beyond this one call or exec.
    fn keepable(&self) -> bool {
        !matches!(self, Subject::Command { once_only: true, .. })
    }

    /// `policy`'s decision on it.
    fn decide(&self, policy: &Policy) -> Decision {
        match self {
            Subject::Command { argv, program, .. } => policy.decide_command(Some(program), argv),
            Subject::Network { host, port } => policy.decide_connect(&host.as_policy_str(), *port),
        }
    }
}

/// Writes one audit record; the session's log.
pub type RecordSink = Arc<dyn Fn(&Event) -> Result<u64, String> + Send + Sync>;

/// Shown a question as soon as it is up (the terminal of `paddock run`); answers, if
/// at all, through the store like any other process.
pub type Prompt = Arc<dyn Fn(&Question, &Store) + Send + Sync>;

/// The broker of one session.
pub struct Broker {
    store: Store,
    state: PathBuf,
    session: String,
    workspace: String,
    record: RecordSink,
    /// Answers given for the session: allow (true) or deny, by [`Subject::key`].
    session_answers: Mutex<HashMap<String, bool>>,
    prompt: Mutex<Option<Prompt>>,
}

/// How often a waiting question looks for its answer.
const POLL: Duration = Duration::from_millis(20);

/// How long after a question's deadline its asker still looks for an answer given just
/// before it.
const GRACE: Duration = Duration::from_secs(1);

impl Broker {
    /// A broker for `session` keeping its questions in `state` (`$STATE`).
    pub fn new(state: &Path, session: &str, workspace: &Path, record: RecordSink) -> std::io::Result<Broker> {
        Ok(Broker {
            store: Store::open(state)?,
            state: state.to_path_buf(),
            session: session.to_string(),
            workspace: workspace.display().to_string(),
            record,
            session_answers: Mutex::new(HashMap::new()),
            prompt: Mutex::new(None),
        })
    }

    /// The question store (`$STATE/approvals/`): every open question of this user.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Shows every question of this session to `prompt` too.
    pub fn set_prompt(&self, prompt: Prompt) {
        *self.prompt.lock().unwrap_or_else(|e| e.into_inner()) = Some(prompt);
    }

    fn approved_path(&self) -> PathBuf {
        self.state.join(APPROVED_FILE)
    }

    /// The final decision on `subject`, which `policy` answered with `asked` (an ask):
    /// an answer already given (for the session, or "always" in the approved list), else
    /// a person's, waited for until the policy's `ask_timeout`. Blocking.
    pub fn resolve(&self, policy: &Policy, asked: Decision, subject: Subject) -> Decision {
        debug_assert_eq!(asked.verdict, Verdict::Ask);
        let key = subject.key();
        let known = match subject.keepable() {
            true => self.session_answers.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied(),
            false => None,
        };
        if let Some(allow) = known {
            let how = if allow { "allowed" } else { "denied" };
            let d =
                decision(allow, &asked.rule, format!("`{}` was {how} for this session by a person", subject.shown()));
            return policy.recheck(d, &subject_ref(&subject));
        }
        // An "always" answer given since the policy was loaded (by this or another process).
        let mut fresh = policy.clone();
        match fresh.load_approved(&self.approved_path()) {
            Ok(()) => {
                let d = subject.decide(&fresh);
                if d.verdict != Verdict::Ask {
                    return d;
                }
            }
            Err(e) => tracing::warn!("the approved list cannot be used (asking instead): {e}"),
        }
        self.ask(policy, asked, subject, key)
    }

    fn ask(&self, policy: &Policy, asked: Decision, subject: Subject, key: String) -> Decision {
        let timeout = policy.ask_timeout();
        let proposal = subject.proposal(policy);
        // An entry no loader would take is never offered (nor written: it would stop every
        // later load of the approved list).
        let proposed = match proposal.check() {
            _ if !subject.keepable() => {
                "nothing: its arguments are not UTF-8 text, so an answer holds for this exec only".to_string()
            }
            Ok(()) => proposal.line("allow"),
            Err(e) => format!("nothing: no entry can name it ({e}); an answer holds once or for the session"),
        };
        let q = Question {
            id: new_id(),
            kind: subject.kind().into(),
            subject: subject.shown(),
            proposed,
            session: self.session.clone(),
            pid: std::process::id(),
            workspace: self.workspace.clone(),
            asked_at: paddock_audit::record::now_ts(),
            rule: asked.rule.to_string(),
            entry: proposal.entry.clone(),
            deadline_ms: now_ms() + timeout.as_millis() as u64,
            cwd: subject.cwd(),
            stdin: subject.stdin(),
            program: subject.program(),
        };
        let record = Event::ApprovalAsk(ApprovalAsk {
            id: q.id.clone(),
            session: q.session.clone(),
            kind: q.kind.clone(),
            subject: q.subject.clone(),
            rule: q.rule.clone(),
            proposed: q.proposed.clone(),
            pid: q.pid,
        });
        if let Err(e) = (self.record)(&record) {
            return decision(
                false,
                &asked.rule,
                format!("{}; the question cannot be recorded, so none is asked: {e}", asked.reason),
            );
        }
        let asking = match self.store.put(&q) {
            Ok(h) => h,
            Err(e) => {
                let d = decision(
                    false,
                    &asked.rule,
                    format!("{}; the question cannot be put up, so the answer is no: {e}", asked.reason),
                );
                self.answered(&q, None, "error", &d, None);
                return d;
            }
        };
        let prompt = self.prompt.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(p) = prompt {
            p(&q, &self.store);
        }
        let answer = self.wait_answer(&q.id, timeout);
        let Some(a) = answer else {
            self.store.remove(&q.id);
            let d = decision(
                false,
                &asked.rule,
                format!(
                    "`{}` needed a person's answer and none came within ask_timeout ({}): denied",
                    q.subject,
                    humantime_secs(timeout)
                ),
            );
            self.answered(&q, None, "timeout", &d, None);
            return d;
        };
        let allow = a.answer == Said::Allow;
        let how = if allow { "allowed" } else { "denied" };
        let mut d = decision(
            allow,
            &asked.rule,
            format!("`{}` was {how} {} by {} (question {})", q.subject, scope_words(a.scope), a.by, q.id),
        );
        let approved_rule = match subject.keepable() {
            true => self.keep(&q, &a, key, &proposal, &mut d),
            false => {
                if a.scope != Scope::Once {
                    d.reason =
                        format!("{}; its arguments are not UTF-8 text, so it holds for this exec only", d.reason);
                }
                None
            }
        };
        // Marked and down only now: its answerer reads "taken" from the mark.
        self.store.mark_taken(&q.id);
        self.store.remove(&q.id);
        drop(asking);
        self.answered(&q, Some(&a), a.scope.as_str(), &d, approved_rule);
        d
    }

    /// The answer to question `id`, polled every [`POLL`] until `timeout` passes, and
    /// [`GRACE`] after it: the store takes answers until the question's deadline, and one
    /// taken then is carried out, not left behind.
    fn wait_answer(&self, id: &str, timeout: Duration) -> Option<Answer> {
        let deadline = Instant::now() + timeout + GRACE;
        loop {
            if let Some(a) = self.store.answered(id) {
                return Some(a);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// Keeps answer `a` to `q` for as long as its scope says (the session's answers under
    /// `key`, or the approved list, whose rule `d` then names); the approved list's rule.
    fn keep(&self, q: &Question, a: &Answer, key: String, proposal: &Proposal, d: &mut Decision) -> Option<String> {
        let allow = a.answer == Said::Allow;
        match a.scope {
            Scope::Once => None,
            Scope::Session => {
                self.session_answers.lock().unwrap_or_else(|e| e.into_inner()).insert(key, allow);
                None
            }
            Scope::Always if proposal.check().is_err() => {
                // No entry can name it: the answer holds for the session, as said.
                self.session_answers.lock().unwrap_or_else(|e| e.into_inner()).insert(key, allow);
                d.reason =
                    format!("{}; no entry of the approved list can name it, so it holds for this session", d.reason);
                None
            }
            Scope::Always => match self.append_approved(proposal, allow, a) {
                Ok(n) => {
                    let rule = format!("approved[{n}]");
                    d.rule = rule.as_str().into();
                    d.reason = format!("{}; kept as {rule} in {}", d.reason, self.approved_path().display());
                    Some(rule)
                }
                Err(e) => {
                    // The answer holds for this call; that it is not kept is said, not hidden.
                    tracing::error!("cannot keep the answer to {} in {}: {e}", q.id, self.approved_path().display());
                    d.reason = format!("{}; it could not be kept in the approved list: {e}", d.reason);
                    None
                }
            },
        }
    }

    fn answered(&self, q: &Question, a: Option<&Answer>, scope: &str, d: &Decision, approved_rule: Option<String>) {
        let record = Event::ApprovalAnswer(ApprovalAnswer {
            id: q.id.clone(),
            session: q.session.clone(),
            answer: if d.is_allow() { "allow" } else { "deny" }.into(),
            scope: scope.into(),
            by: a.map(|a| a.by.clone()).unwrap_or_else(|| "nobody".into()),
            answered_at: a.map(|a| a.answered_at.clone()),
            approved_rule,
        });
        if let Err(e) = (self.record)(&record) {
            tracing::error!("cannot record the answer to question {}: {e}", q.id);
        }
    }

    /// Appends the entry to the approved list (under an exclusive lock, so concurrent
    /// answers each get their own number); the `N` of its rule id `approved[N]`.
    fn append_approved(&self, p: &Proposal, allow: bool, a: &Answer) -> std::io::Result<usize> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.approved_path();
        let lock = paddock_audit::state::open_private(&self.state.join("approved.toml.lock"), false)?;
        lock.lock()?;
        // Not through a symlink (nor below, the temporary file): `$STATE` holds no link
        // paddock writes through.
        let read = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path);
        let text = match read.and_then(|mut f| {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut f, &mut t).map(|_| t)
        }) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let n = paddock_policy::parse_approved(&path, &text).map_err(|e| std::io::Error::other(e.to_string()))?.len();
        let list = ApprovedList::of(p.table, allow).ok_or_else(|| std::io::Error::other("no such list"))?;
        let mut new = if text.is_empty() { paddock_policy::APPROVED_HEADER.to_string() } else { text };
        new.push_str(&approved_entry_text(list, &p.entry, &a.answered_at, &a.by));
        let tmp = self.state.join(format!(".approved.toml.{}", std::process::id()));
        {
            let mut f = paddock_audit::state::open_private(&tmp, true)?;
            f.write_all(new.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        Ok(n)
    }
}

impl Subject {
    /// What the policy's [`Policy::recheck`] takes.
    pub(crate) fn asked(&self) -> paddock_policy::Asked<'_> {
        subject_ref(self)
    }
}

fn subject_ref(s: &Subject) -> paddock_policy::Asked<'_> {
    match s {
        Subject::Command { argv, program, .. } => paddock_policy::Asked::Command { program, argv },
        Subject::Network { host, port } => paddock_policy::Asked::Network { host, port: *port },
    }
}

fn decision(allow: bool, rule: &Arc<str>, reason: String) -> Decision {
    Decision { verdict: if allow { Verdict::Allow } else { Verdict::Deny }, rule: Arc::clone(rule), reason }
}

fn scope_words(s: Scope) -> &'static str {
    match s {
        Scope::Once => "once",
        Scope::Session => "for this session",
        Scope::Always => "always",
    }
}

fn humantime_secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A new question id: short, unique on this machine, sortable by time.
fn new_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = now_ms();
    format!("{:x}-{:x}-{:x}", ms, std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}
