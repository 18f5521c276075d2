//! A session: one policy, one audit log, one egress proxy engine, and the calls that run
//! under them. `Session::call` = decide → audit `call.start` → confine and run → audit
//! `call.end`.
//!
//! `Session::call`s run in the session's zygote (`paddock_sandbox::Zygote`): namespaces
//! and mount view made once per policy, a fork per call with its own pid namespace,
//! /proc, /tmp, SysV IPC, cgroup, Landlock domain, seccomp filter and proxy port. The deny,
//! protect and hidden paths and the sockets are placed (by the sandbox, in the view) when
//! the zygote starts. Just before it starts, `paddock_sandbox::view_stamp` records every
//! directory the view walk visits (device, inode, ctime, mtime, size, link count of every
//! directory under the granted paths, in the read-only system trees only beneath a rule's
//! literal prefix); before each call the stamp is compared, and any change (a
//! file or socket created, renamed or removed, by the host or an earlier call), or a ctime
//! within two seconds of the stamp, retires the zygote and starts a new one. So a call's
//! view masks every deny/protect match, hidden path and socket that exists when the call
//! starts. The check stats each of those directories (about 1 ms for 2,000). A revocation
//! reload starts a new zygote too; Landlock still grants per path. Without Landlock ABI 4
//! (TCP confinement), or when a zygote cannot start, each call gets a sandbox of its own.
//! `Session::run` always does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use paddock_audit::{
    AuditLog, Call, CallOutcome as AuditOutcome, Decision as AuditDecision, Event, SessionEnd, SessionStart, Target,
};
use paddock_policy::{Decision, Policy};
use paddock_proxy::ConnectionEvent;
use paddock_sandbox::{ExitKind, Killer, NetworkMode, RunOutcome, SandboxError, SandboxSpec, StdioMode};

mod plan;
mod revocations;
mod zygote;

use plan::{deny, plan, resolve_cwd, Child, Plan};
use revocations::RevocationState;
pub use revocations::{apply_revocations, revocation_of};
use zygote::{SessionZygote, Zygotes};

use crate::call::{CallOutcome, ToolCall};
use crate::net::ProxyTask;
use crate::{spec, SessionError};

/// A callback that sees every proxied connection (for `paddock run -v`).
pub type ConnectionObserver = Arc<dyn Fn(&ConnectionEvent) + Send + Sync>;

/// What a session is built from.
pub struct SessionConfig {
    /// The policy, without revocations (the session loads and follows those itself).
    pub policy: Policy,
    /// The audit log file (`$STATE/audit.jsonl` by default).
    pub audit_log: PathBuf,
    /// The revocation list (`$STATE/revocations.toml`), re-read when it changes so a
    /// revocation applies from the next call; `None` for none. A list that cannot be read,
    /// parsed or compiled (at start or later) denies every call, with rule `revocations`,
    /// until it is fixed. The list and the audit log are hidden from every call's view
    /// (see [`Policy::hide_paths`] to hide more, e.g. their directory).
    pub revocations: Option<PathBuf>,
    /// `run`, `serve`, `mcp` or `library`: recorded on `session.start`. A `run` session
    /// holds one call and writes no session records.
    pub mode: String,
    /// Sees every proxied connection.
    pub on_connection: Option<ConnectionObserver>,
    /// A file of random bytes (made, 0600, when missing) that `[secrets]` placeholders
    /// derive from, so each secret's placeholder is the same from session to session: an
    /// agent that remembers the key it was given (Claude Code asks once per new key) is
    /// not asked again. `None`: new random placeholders every session. The CLI uses
    /// `$STATE/placeholder-seed`; keep it out of every view (`$STATE` is).
    pub placeholder_seed: Option<PathBuf>,
}

impl SessionConfig {
    /// A config with the audit log at `audit_log` and no revocation list.
    pub fn new(policy: Policy, audit_log: impl Into<PathBuf>) -> SessionConfig {
        SessionConfig {
            policy,
            audit_log: audit_log.into(),
            revocations: None,
            mode: "library".into(),
            on_connection: None,
            placeholder_seed: None,
        }
    }
}

pub(crate) struct Inner {
    pub id: String,
    base: Policy,
    current: Mutex<Arc<Policy>>,
    revocations: Mutex<Option<RevocationState>>,
    pub log: AuditLog,
    pub on_connection: Option<ConnectionObserver>,
    mode: String,
    calls: AtomicU64,
    started: Instant,
    zygotes: Zygotes,
    /// The calls running now, by a number of their own: what [`Session::kill_running`] kills.
    running: Mutex<(u64, Vec<(u64, Killer)>)>,
    /// Set by [`Session::kill_running`]: calls that end killed say why.
    stopping: AtomicBool,
    /// [`Session::call`]s not yet returned.
    in_flight: AtomicUsize,
    /// Where questions to a person go ([`Session::enable_approvals`]); none: an ask is a denial.
    approvals: OnceLock<Arc<crate::approvals::Broker>>,
    /// TLS interception and brokered secrets, when the policy has secrets or request rules.
    pub(crate) intercept: Option<crate::secrets::SessionIntercept>,
    /// Sees every `exec` record (issue 16; [`Session::set_exec_observer`]).
    exec_observer: OnceLock<crate::ExecObserver>,
}

impl crate::net::ProxyHost for Inner {
    fn session_id(&self) -> &str {
        &self.id
    }
    fn policy(&self) -> Arc<Policy> {
        Inner::policy(self)
    }
    fn log(&self, event: &paddock_audit::Event) -> Result<(), paddock_audit::AuditError> {
        self.log.append(event).map(drop)
    }
    fn observe(&self, e: &ConnectionEvent) {
        if let Some(cb) = &self.on_connection {
            cb(e);
        }
    }
    fn ask_connect(&self, host: &str, port: u16) -> Decision {
        Inner::ask_connect(self, host, port)
    }
}

/// The result of [`Session::run`]: the decision and, when the call ran, how it ended.
#[derive(Debug)]
pub struct RunResult {
    /// The decision on the call.
    pub decision: Decision,
    /// How the child ended; `None` when the call was denied.
    pub outcome: Option<RunOutcome>,
    /// `seq` of the call's `call.start` record.
    pub audit_seq: u64,
}

/// A supervisor session. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{:x}-{:x}-{}", nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl Inner {
    /// The session's secrets, if it has any.
    pub(crate) fn broker(&self) -> Option<&crate::secrets::Broker> {
        self.intercept.as_ref().and_then(|i| i.broker.as_ref())
    }

    /// Every spec of the session gets the CA bundle (a read path) and the secrets'
    /// placeholders and the bundle's variables (its environment).
    fn adorn(&self, spec: &mut SandboxSpec) {
        if let Some(i) = &self.intercept {
            i.adorn(&self.base, spec);
        }
    }

    /// The current policy, revocations included; re-reads the revocation list when it
    /// changed on disk. A list that cannot be read, parsed or compiled fails closed: every
    /// decision is denied (rule `revocations`) until it is fixed, however many calls come
    /// in between.
    pub(crate) fn policy(&self) -> Arc<Policy> {
        let mut revs = self.revocations.lock().unwrap_or_else(|e| e.into_inner());
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = revs.as_mut() {
            if let Some(refreshed) = state.refresh(&self.base) {
                state.settle(&self.base, refreshed, &mut current, true);
            }
        }
        Arc::clone(&current)
    }

    /// The zygote for calls under `policy` ([`Zygotes::for_policy`]); `None`: calls take the
    /// one-shot path.
    fn zygote_for(&self, policy: &Arc<Policy>) -> Option<Arc<SessionZygote>> {
        self.zygotes.for_policy(&self.id, policy, &|spec| self.adorn(spec))
    }

    fn call_record(&self, target: Target, d: &Decision, cwd: &Path, policy: &Policy) -> Call {
        let verdict = if d.is_allow() { AuditDecision::Allow } else { AuditDecision::Deny };
        // The filesystem grants bound into the child's view: in use by the call, as far as
        // a reviewer can know, whatever it reads (`execute` drops them if nothing runs).
        let view = if d.is_allow() { view_grants(policy) } else { Vec::new() };
        Call::new(new_id("c"), self.id.clone(), target, verdict)
            .with_cwd(cwd)
            .with_rule(&*d.rule)
            .with_reason(&d.reason)
            .with_policy_hash(policy.hash())
            .with_view(view)
    }

    /// `d` when it is not an ask; else a person's answer (or a denial when no one can be asked).
    fn resolve(&self, policy: &Policy, d: Decision, subject: crate::approvals::Subject) -> Decision {
        if d.verdict != paddock_policy::Verdict::Ask {
            return d;
        }
        match self.approvals.get() {
            Some(b) => b.resolve(policy, d, subject),
            None => Decision {
                verdict: paddock_policy::Verdict::Deny,
                reason: format!("{}; but nobody can be asked here (this session takes no questions): denied", d.reason),
                rule: d.rule,
            },
        }
    }

    /// [`Inner::resolve`] for a command call.
    fn ask_command(&self, policy: &Policy, d: Decision, argv: &[String], cwd: &Path) -> Decision {
        if d.verdict != paddock_policy::Verdict::Ask {
            return d;
        }
        match argv.first().and_then(|p| policy.resolve_program(p, cwd)) {
            Some(program) => {
                self.resolve(policy, d, crate::approvals::Subject::Command { argv: argv.to_vec(), program })
            }
            None => deny(format!("{}; but the program does not resolve", d.reason)),
        }
    }

    /// The decision on a connection the proxy holds: the policy's, or a person's.
    pub(crate) fn ask_connect(&self, host: &str, port: u16) -> Decision {
        let policy = self.policy();
        let d = policy.decide_connect(host, port);
        match paddock_proxy::normalise_host(host) {
            Ok(host) => self.resolve(&policy, d, crate::approvals::Subject::Network { host, port }),
            Err(e) => deny(format!("refused: {e}")),
        }
    }

    /// The observer of `exec` records, if one is set.
    pub(crate) fn exec_observer(&self) -> Option<&crate::ExecObserver> {
        self.exec_observer.get()
    }

    pub(crate) fn append(&self, event: &Event, durable: bool) -> Result<u64, SessionError> {
        let r = if durable { self.log.append_durable(event) } else { self.log.append(event) };
        Ok(r?.seq)
    }

    /// decide → audit start → confine and run → audit end. Blocking. `child` is what the
    /// decision lets run ([`Child::Denied`] for a denial). Proxied connections are served
    /// on `rt`.
    /// `rt` gives the runtime for the proxy; it is asked for only after the sandbox has
    /// started, so a single-threaded caller can still have its helper forked directly.
    fn execute(
        self: &Arc<Self>,
        call: Call,
        decision: &Decision,
        child: Child,
        rt: &dyn Fn() -> Result<tokio::runtime::Handle, SessionError>,
        zygote: Option<&Arc<SessionZygote>>,
    ) -> Result<Executed, SessionError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut spec = match (decision.is_allow(), child) {
            (true, Child::Run(spec)) => *spec,
            (true, Child::NotFound) => {
                // Allowed, but there is nothing to run (the program does not resolve).
                let code = Child::NOT_FOUND;
                let call = call.with_view(Vec::new());
                let seq = self.append(&call.start(), true)?;
                self.append(&call.end(AuditOutcome::exited(code)), false)?;
                return Err(SessionError::NotFound { seq, code });
            }
            _ => return Ok(Executed { audit_seq: self.append(&call.start(), true)?, outcome: None }),
        };
        self.adorn(&mut spec);
        let (mut running, _port) = match self.zygotes.start_child(&self.id, &mut spec, zygote) {
            Ok(r) => r,
            Err(e) => {
                let code = match e {
                    SandboxError::LayerUnavailable { .. } => 71,
                    ref other => other.exit_code(),
                };
                let call = call.with_view(Vec::new());
                self.append(&call.start(), true)?;
                self.append(&call.end(AuditOutcome::exited(code)), false)?;
                return Err(SessionError::Sandbox(e));
            }
        };
        let proxy = match (spec.network, running.take_proxy_listener()) {
            (NetworkMode::Proxy { .. }, Some(fd)) => {
                let rt = rt()?;
                let intercept = self.intercept.as_ref().map(|i| paddock_proxy::Intercept {
                    ca: Arc::clone(&i.ca),
                    interceptor: Arc::new(crate::secrets::CallInterceptor {
                        inner: Arc::clone(self),
                        call_id: call.call_id.clone(),
                    }),
                    upstream_ca: self.policy().upstream_ca.clone(),
                });
                Some((ProxyTask::start(&rt, Arc::clone(self) as _, fd, call.call_id.clone(), intercept)?, rt))
            }
            (NetworkMode::Proxy { .. }, None) => {
                return Err(SessionError::Internal("the sandbox handed over no proxy listener".into()))
            }
            _ => None,
        };
        // exec supervision (issue 16): every exec of the tree waits for this supervisor,
        // which decides and records it; stopped after the tree is gone, before `call.end`.
        let exec_supervisor = match running.take_exec_listener() {
            Some(fd) => {
                let auditor = crate::exec_audit::ExecAuditor::new(Arc::clone(self), call.call_id.clone());
                Some(paddock_sandbox::supervise(fd, Arc::new(auditor))?)
            }
            None => None,
        };
        // Every layer is in place and the child is parked before exec: record the call,
        // with what was enforced, durably, then let it run. (`call.end` repeats the call's
        // fields; the report, large, stays on `call.start`.)
        let started = call.clone().with_enforcement(serde_json::to_value(running.report()).unwrap_or_default());
        let seq = self.append(&started.start(), true)?; // on error, dropping `running` kills the parked child
        let registered = running.killer().map(|k| {
            let mut list = self.running.lock().unwrap_or_else(|e| e.into_inner());
            list.0 += 1;
            let n = list.0;
            list.1.push((n, k));
            n
        });
        let waited = running.wait();
        if let Some(s) = exec_supervisor {
            s.stop();
        }
        if let Some(n) = registered {
            self.running.lock().unwrap_or_else(|e| e.into_inner()).1.retain(|(m, _)| *m != n);
        }
        if let Some((task, rt)) = proxy {
            rt.block_on(task.stop());
        }
        let outcome = match waited {
            Ok(o) => o,
            Err(e) => {
                self.append(&call.end(AuditOutcome::exited(125)), false)?;
                return Err(SessionError::Sandbox(e));
            }
        };
        self.append(&call.end(ended(&outcome)), false)?;
        Ok(Executed { audit_seq: seq, outcome: Some(outcome) })
    }
}

/// How a child ended, as its `call.end` record says it.
fn ended(outcome: &RunOutcome) -> AuditOutcome {
    let ended = match outcome.status {
        ExitKind::Exited(c) => AuditOutcome::exited(c),
        ExitKind::Signaled(n) => AuditOutcome::signaled(n),
        ExitKind::TimedOut => AuditOutcome::exited(outcome.exit_code()).with_timed_out(true),
    };
    let truncated = outcome.stdout_truncated || outcome.stderr_truncated;
    ended.with_duration_ms(outcome.duration.as_millis() as u64).with_output(
        outcome.stdout_bytes,
        outcome.stderr_bytes,
        truncated,
    )
}

/// The rule ids of the filesystem grants a sandbox view under `policy` holds.
fn view_grants(policy: &Policy) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for r in policy.view_read_rules().into_iter().chain(policy.view_write_rules()) {
        if !ids.iter().any(|i| **i == *r.id) {
            ids.push(r.id.to_string());
        }
    }
    ids
}

impl Session {
    /// Opens the audit log (an error here means no call may run), loads the revocation
    /// list, and records `session.start` (except for `run`).
    pub fn new(cfg: SessionConfig) -> Result<Session, SessionError> {
        let log = AuditLog::open(&cfg.audit_log)?;
        // paddock's own state is never in a view, whatever the policy grants: the log, the
        // revocation list and its lock file (and what the caller hid in the policy).
        let mut base = cfg.policy;
        let own = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        base.hide_paths([own(&cfg.audit_log)]);
        let mut current = Arc::new(base.clone());
        let revocations = cfg.revocations.map(|path| RevocationState::open(path, &mut base, &mut current));
        let id = new_id(&cfg.mode);
        // The caller's environment is read for `env:` secrets now, once.
        let seed = cfg.placeholder_seed.as_deref().map(crate::secrets::read_seed).transpose()?;
        let intercept = crate::secrets::SessionIntercept::new(&base, &id, &|k| std::env::var(k).ok(), seed)?;
        let inner = Arc::new(Inner {
            id,
            intercept,
            current: Mutex::new(current),
            revocations: Mutex::new(revocations),
            log,
            on_connection: cfg.on_connection,
            mode: cfg.mode,
            calls: AtomicU64::new(0),
            started: Instant::now(),
            base,
            zygotes: Zygotes::new(),
            running: Mutex::new((0, Vec::new())),
            stopping: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            approvals: OnceLock::new(),
            exec_observer: OnceLock::new(),
        });
        if inner.mode != "run" {
            let start = SessionStart::new(inner.id.clone())
                .with_mode(inner.mode.clone())
                .with_policy_hash(inner.base.hash())
                .with_workspace(&inner.base.vars.workspace);
            inner.append(&Event::SessionStart(start), true)?;
        }
        Ok(Session { inner })
    }

    /// From now on, a call or connection that an `ask` entry matched waits for a person's
    /// answer through `$STATE/approvals/` (`state` is `$STATE`), instead of being denied.
    /// Idempotent; the broker, e.g. to show questions on a terminal.
    pub fn enable_approvals(&self, state: &Path) -> std::io::Result<Arc<crate::approvals::Broker>> {
        if let Some(b) = self.inner.approvals.get() {
            return Ok(Arc::clone(b));
        }
        let weak = Arc::downgrade(&self.inner);
        let record: crate::approvals::broker::RecordSink = Arc::new(move |e: &Event| match weak.upgrade() {
            Some(inner) => inner.append(e, true).map_err(|e| e.to_string()),
            None => Err("the session has ended".into()),
        });
        let broker = crate::approvals::Broker::new(state, &self.inner.id, &self.inner.base.vars.workspace, record)?;
        Ok(Arc::clone(self.inner.approvals.get_or_init(|| Arc::new(broker))))
    }

    /// The broker of this session's questions, once [`Session::enable_approvals`] made it.
    pub fn approvals(&self) -> Option<Arc<crate::approvals::Broker>> {
        self.inner.approvals.get().cloned()
    }

    /// Sets the callback that sees every `exec` record of this session's calls, as it is
    /// written (`paddock run` prints a line for each refused one); once: a second call
    /// returns `false` and changes nothing.
    pub fn set_exec_observer(&self, observer: crate::ExecObserver) -> bool {
        self.inner.exec_observer.set(observer).is_ok()
    }

    /// The session id (on every record of its calls).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The policy in force, revocations included.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner.policy()
    }

    /// The audit log file.
    pub fn audit_log(&self) -> &Path {
        self.inner.log.path()
    }

    /// Runs `argv` from `cwd` with the caller's terminal or streams (`stdio`), blocking:
    /// the path of `paddock run`. The proxy, when the policy allows any host, runs on a
    /// runtime of its own started after the sandbox.
    pub fn run(&self, argv: &[String], cwd: &Path, stdio: StdioMode) -> Result<RunResult, SessionError> {
        let policy = self.inner.policy();
        let decision = self.inner.ask_command(&policy, policy.check_runnable(argv, cwd), argv, cwd);
        let call = self.inner.call_record(Target::command(argv), &decision, cwd, &policy);
        let child = if decision.is_allow() {
            let program = argv.first().and_then(|p| policy.resolve_program(p, cwd));
            Child::of(program, |program| spec::build(&policy, program, argv.to_vec(), cwd, stdio))
        } else {
            Child::Denied
        };
        let runtime = std::sync::OnceLock::new();
        let rt = || -> Result<tokio::runtime::Handle, SessionError> {
            if let Some(r) = runtime.get() {
                return Ok(tokio::runtime::Runtime::handle(r).clone());
            }
            let r = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("paddock-proxy")
                .enable_all()
                .build()
                .map_err(|e| SessionError::Internal(format!("proxy runtime: {e}")))?;
            Ok(runtime.get_or_init(|| r).handle().clone())
        };
        let Executed { audit_seq, outcome } = self.inner.execute(call, &decision, child, &rt, None)?;
        Ok(RunResult { decision, outcome, audit_seq })
    }

    /// Decides `call` without running it (`POST /v1/check`).
    pub fn check(&self, call: &ToolCall) -> Decision {
        plan::check(&self.inner.policy(), call)
    }

    /// Runs one tool call: decide → audit start → confine and run → audit end. The
    /// child's output is captured. A denial is an outcome, not an error.
    pub async fn call(&self, call: ToolCall) -> Result<CallOutcome, SessionError> {
        let inner = Arc::clone(&self.inner);
        let rt = tokio::runtime::Handle::current();
        let t0 = Instant::now();
        let is_read = matches!(call, ToolCall::ReadFile { .. });
        let is_http = matches!(call, ToolCall::HttpRequest { .. });
        let _in_flight = InFlight::enter(&self.inner);
        tokio::task::spawn_blocking(move || {
            let policy = inner.policy();
            // A command call that asks waits here, before its sandbox starts.
            let answered = match &call {
                ToolCall::Command { argv, cwd, .. } if !argv.is_empty() => {
                    let cwd = resolve_cwd(&policy.vars.workspace, cwd.as_deref());
                    let d = policy.check_runnable(argv, &cwd);
                    (d.verdict == paddock_policy::Verdict::Ask).then(|| inner.ask_command(&policy, d, argv, &cwd))
                }
                _ => None,
            };
            // The zygote (and its filesystem view) only once a call is allowed to run.
            let mut zygote: Option<Option<Arc<SessionZygote>>> = None;
            let call = match (call, inner.broker()) {
                (ToolCall::HttpRequest { url, method, headers: Some(h), body }, Some(b)) => {
                    let headers = Some(h.into_iter().map(|(k, v)| (k, b.expand(&policy, &v))).collect());
                    ToolCall::HttpRequest { url, method, headers, body }
                }
                (call, _) => call,
            };
            let Plan { decision, target, cwd, child } =
                plan(&policy, call, answered, &mut || match zygote.get_or_insert_with(|| inner.zygote_for(&policy)) {
                    Some(z) => z.view(),
                    None => Arc::new(spec::fs_view(&policy)),
                });
            let record = inner.call_record(target, &decision, &cwd, &policy);
            let call_id = record.call_id.clone();
            if is_http {
                crate::net::watch_refusals(&call_id);
            }
            let result = inner.execute(record, &decision, child, &|| Ok(rt.clone()), zygote.flatten().as_ref());
            let mut o = outcome(decision, result, is_read, t0);
            if inner.stopping.load(Ordering::SeqCst) && o.exit_code == Some(128 + 9) {
                o.stderr.push_str("paddock: killed: the supervisor stopped before the call ended\n");
            }
            if is_http {
                http_outcome(&mut o, crate::net::take_refusals(&call_id));
            }
            Ok::<_, SessionError>(o)
        })
        .await
        .map_err(|e| SessionError::Internal(format!("call task: {e}")))?
    }

    /// Kills every call running now (its whole process tree, as a timeout does), so that
    /// each ends and is answered and recorded (`call.end`, exit 137) before a supervisor
    /// that stops exits; calls that end so say why on their stderr. Returns how many.
    pub fn kill_running(&self) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let list = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        list.1.iter().filter(|(_, k)| k.kill()).count()
    }

    /// Waits until no [`Session::call`] is in flight, for at most `limit`; whether none is.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.inner.in_flight.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        true
    }

    /// Records `session.end` with the number of calls and the session's duration.
    pub fn close(&self) -> Result<(), SessionError> {
        if self.inner.mode != "run" {
            let end = SessionEnd::new(self.inner.id.clone())
                .with_totals(self.inner.calls.load(Ordering::Relaxed), self.inner.started.elapsed().as_millis() as u64);
            self.inner.append(&Event::SessionEnd(end), true)?;
        }
        if let Some(i) = &self.inner.intercept {
            i.bundle.remove();
        }
        self.inner.log.sync()?;
        Ok(())
    }
}

/// Counts a [`Session::call`] in flight until dropped (when the call returns or its future
/// is dropped).
struct InFlight(Arc<Inner>);

impl InFlight {
    fn enter(inner: &Arc<Inner>) -> InFlight {
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(inner))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Inner::execute`] recorded and ran.
struct Executed {
    /// The sequence number of the call's `call.start` record.
    audit_seq: u64,
    /// How the child ended (`None` for a denial: nothing ran).
    outcome: Option<RunOutcome>,
}

/// An `http_request`'s outcome: a connection the proxy refused makes the call a denial
/// with the proxy's rule and reason (and the policy line that would allow it); else the
/// response curl printed becomes `status`, `headers` and `body`.
fn http_outcome(o: &mut CallOutcome, refused: Vec<ConnectionEvent>) {
    if let Some(r) = refused.into_iter().next() {
        o.decision = "deny".into();
        o.rule = r.rule;
        o.reason = match r.hint {
            Some(h) => format!("{}; {h}", r.reason),
            None => r.reason,
        };
        o.exit_code = None;
        o.stdout.clear();
        return;
    }
    if let Some(r) = crate::http::parse(o.stdout.as_bytes()) {
        o.status = Some(r.status);
        o.headers = Some(r.headers);
        o.body = Some(String::from_utf8_lossy(&r.body).into_owned());
        o.stdout.clear();
    }
}

/// The API's view of a call's result. For `read_file` the file goes to `content`.
fn outcome(decision: Decision, result: Result<Executed, SessionError>, read: bool, t0: Instant) -> CallOutcome {
    let mut o = CallOutcome {
        decision: decision.verdict.as_str().into(),
        rule: decision.rule.to_string(),
        reason: decision.reason.clone(),
        duration_ms: t0.elapsed().as_millis() as u64,
        ..CallOutcome::default()
    };
    match result {
        Ok(Executed { audit_seq: seq, outcome: run }) => {
            o.audit_seq = seq;
            if let Some(r) = run {
                o.exit_code = Some(r.exit_code());
                o.stderr = String::from_utf8_lossy(&r.stderr).into_owned();
                o.truncated = r.stdout_truncated || r.stderr_truncated;
                o.timed_out = r.status == ExitKind::TimedOut;
                if read && o.exit_code == Some(0) {
                    // The file's bytes, kept whole: text, or base64 when not UTF-8.
                    let (content, encoding) = crate::call::file_content(r.stdout);
                    (o.content, o.encoding) = (Some(content), encoding);
                } else {
                    o.stdout = String::from_utf8_lossy(&r.stdout).into_owned();
                }
            }
        }
        Err(SessionError::NotFound { seq, code }) => {
            o.audit_seq = seq;
            o.exit_code = Some(code);
            o.stderr = "paddock: the program is not found in the sandbox PATH".into();
        }
        Err(e) => {
            o.exit_code = Some(e.exit_code());
            o.stderr = format!("paddock: {e}");
        }
    }
    o
}
