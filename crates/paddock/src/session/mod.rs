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
//! starts. The check reads the stamp's inotify queue, where the stamp could watch the
//! directories, else stats each of them (about 1 ms for 2,000). A revocation
//! reload starts a new zygote too; Landlock still grants per path. Without Landlock ABI 4
//! (TCP confinement), or when a zygote cannot start, each call gets a sandbox of its own.
//! `Session::run` always does.
//!
//! The files, in the order the imports flow (each imports only files after it):
//! `mod.rs` the [`Session`] API; `approvals` asks to a person; `outcome` the API's view
//! of a call's result; `execute` runs a planned child (proxy, exec supervisor,
//! `call.start`/`call.end`); `inner` the shared state and its audit log; `zygote` the
//! per-policy zygote and its port leases; `revocations` the revocation list; `plan`
//! decides a call into a plan and its child (pure); `config` what a session is built from.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use paddock_audit::{Event, SessionEnd, SessionStart, Target};
use paddock_policy::{Decision, Policy};
use paddock_sandbox::{RunOutcome, StdioMode};

mod approvals;
mod config;
mod execute;
pub(crate) mod inner;
mod notes;
mod outcome;
mod plan;
mod revocations;
mod zygote;

pub use config::{ConnectionObserver, ExecObserver, SessionConfig, StartObserver};
pub use revocations::{apply_revocations, revocation_of};

use crate::approvals::Broker;
use crate::call::{CallOutcome, ToolCall};
use crate::{spec, SessionError};
use execute::Executed;
use inner::Inner;
use outcome::{http_outcome, outcome};
use plan::{plan, Child, Plan};
use zygote::SessionZygote;

/// The device and inode of directory `dir` now (symlinks followed, as `chdir` follows them).
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// How many times a call is decided when the revocation list keeps changing between its
/// decision and its `call.start` (each time nothing ran); the last time, the call fails.
const DECIDE_TRIES: u32 = 4;

/// The result of [`Session::run`]: the decision and, when the call ran, how it ended.
#[derive(Debug)]
pub struct RunResult {
    /// The decision on the call.
    pub decision: Decision,
    /// How the child ended; `None` when the call was denied.
    pub outcome: Option<RunOutcome>,
    /// `seq` of the call's `call.start` record.
    pub audit_seq: u64,
    /// Paths a `deny` or `protect` rule names that the call created (they did not exist
    /// when it started, so no mask could hold them): moved aside, each named in `call.end`.
    pub moved_aside: Vec<paddock_audit::MovedAside>,
    /// Directories where a `deny` or `protect` glob can match that could not be checked
    /// for what the call left there (named in `call.end` too).
    pub unchecked: Vec<paddock_audit::Unchecked>,
}

/// A supervisor session. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl Session {
    /// Opens the audit log (an error here means no call may run), loads the revocation
    /// list, and records `session.start` (except for `run`).
    pub fn new(cfg: SessionConfig) -> Result<Session, SessionError> {
        let inner = Inner::open(cfg)?;
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
    pub fn enable_approvals(&self, state: &Path) -> std::io::Result<Arc<Broker>> {
        self.inner.enable_approvals(state)
    }

    /// The broker of this session's questions, once [`Session::enable_approvals`] made it.
    pub fn approvals(&self) -> Option<Arc<Broker>> {
        self.inner.approvals.get().cloned()
    }

    /// Sets the callback that sees every `exec` record of this session's calls, as it is
    /// written (`paddock run` prints a line for each refused one); once: a second call
    /// returns `false` and changes nothing.
    pub fn set_exec_observer(&self, observer: ExecObserver) -> bool {
        self.inner.exec_observer.set(observer).is_ok()
    }

    /// Sets the callback that sees each call's enforcement report once its `call.start` is
    /// written, before its program runs (`paddock run` says what a best-effort policy ran
    /// without); once: a second call returns `false` and changes nothing.
    pub fn set_start_observer(&self, observer: StartObserver) -> bool {
        self.inner.start_observer.set(observer).is_ok()
    }

    /// Gives the session a sandbox helper forked ahead ([`paddock_sandbox::prestart`],
    /// before the policy was loaded): the next call that gets a sandbox of its own (not a
    /// zygote's) takes it, so that the helper's namespaces were made while the policy
    /// loaded. `paddock run` does this; a helper no call takes exits with the session.
    pub fn give_helper(&self, helper: paddock_sandbox::Prestarted) {
        *self.inner.ahead.lock().unwrap_or_else(|e| e.into_inner()) = Some(helper);
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
        let mut answer = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let t = Instant::now();
            let (policy, decided) = self.inner.decide_asked(argv, cwd, None, &mut answer);
            let decision = decided.decision();
            let call = self.inner.call_record(Target::command(argv), &decision, cwd, &policy);
            paddock_sandbox::phase("decision", t);
            let t = Instant::now();
            let child = if decision.is_allow() {
                let program = argv.first().and_then(|p| policy.resolve_program(p, cwd));
                // The view cache comes with the session's own touch (`Inner::adorn`).
                Child::of(program, |program| {
                    spec::build_with(&policy, &spec::fs_view(&policy), program, argv.to_vec(), cwd, stdio.clone())
                })
            } else {
                Child::Denied
            };
            paddock_sandbox::phase("sandbox spec built", t);
            match self.inner.execute(call, &policy, &decision, child, &rt, None) {
                Ok(Executed { audit_seq, outcome, moved_aside, unchecked }) => {
                    return Ok(RunResult { decision, outcome, audit_seq, moved_aside, unchecked })
                }
                Err(f) if f.stale && attempt < DECIDE_TRIES => continue,
                Err(f) => return Err(f.into()),
            }
        }
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
            let mut answer = None;
            let mut attempt = 0;
            loop {
                attempt += 1;
                // A command call that asks waits here, before its sandbox starts; its answer
                // is decided under the policy in force once it came.
                // A command is decided, asked about and run in one directory: where it will
                // run, as it is now (device and inode: a symlink or rename that re-points its
                // path meanwhile fails the start). One the sandbox cannot see is refused by
                // the plan, unasked.
                let mut decided_in: Option<(PathBuf, Option<(u64, u64)>)> = None;
                let dir = match &call {
                    ToolCall::Command { argv, cwd, .. } if !argv.is_empty() => {
                        spec::call_dir(&inner.policy(), cwd.as_deref()).ok()
                    }
                    _ => None,
                };
                let (policy, answered) = match (&call, dir) {
                    (ToolCall::Command { argv, stdin, .. }, Some(dir)) => {
                        decided_in = Some((dir.clone(), identity(&dir)));
                        // No input given is empty input (it reads `/dev/null`), never the
                        // unknown input of an exec in a call's tree: an answer about one
                        // does not stand for the other (found by an attack: a session answer
                        // about `python3` given nothing allowed `echo CODE | python3`).
                        let given = Some(stdin.as_deref().unwrap_or(""));
                        let (policy, decided) = inner.decide_asked(argv, &dir, given, &mut answer);
                        (policy, decided.answered())
                    }
                    _ => (inner.policy(), None),
                };
                // The zygote (and its filesystem view) only once a call is allowed to run.
                let mut zygote: Option<Option<Arc<SessionZygote>>> = None;
                let mut this = call.clone();
                if let (ToolCall::Command { cwd, .. }, Some((dir, _))) = (&mut this, &decided_in) {
                    if let Some(d) = dir.to_str() {
                        *cwd = Some(d.to_string());
                    }
                }
                let this = match (this, inner.broker()) {
                    (ToolCall::HttpRequest { url, method, headers: Some(h), body }, Some(b)) => {
                        let headers = Some(h.into_iter().map(|(k, v)| (k, b.expand(&policy, &v))).collect());
                        ToolCall::HttpRequest { url, method, headers, body }
                    }
                    (call, _) => call,
                };
                let Plan { decision, target, cwd, mut child } = plan(&policy, this, answered, &mut || match zygote
                    .get_or_insert_with(|| inner.zygote_for(&policy))
                {
                    Some(z) => z.view(),
                    None => Arc::new(spec::fs_view(&policy)),
                });
                // Started with the program the person was asked about, or not at all (the
                // answer was checked against it; this is the path it starts by).
                let mut decision = decision;
                if let (Child::Run(spec), Some((_, asked))) = (&child, &answer) {
                    if let Some(d) = approvals::changed(asked, &spec.program) {
                        (decision, child) = (d, Child::Denied);
                    }
                }
                if let (Child::Run(spec), Some((dir, Some(id)))) = (&mut child, &decided_in) {
                    // Where the call can write (a bind of the host's directory, so the same
                    // device and inode), it could have re-pointed the path: it starts in
                    // the directory it was decided in, or not at all.
                    if spec.write_paths.iter().any(|w| dir.starts_with(w)) {
                        spec.cwd = dir.clone();
                        spec.cwd_identity = Some(*id);
                    }
                }
                let record = inner.call_record(target, &decision, &cwd, &policy);
                let call_id = record.call_id.clone();
                if is_http {
                    crate::net::watch_refusals(&call_id);
                }
                let result =
                    inner.execute(record, &policy, &decision, child, &|| Ok(rt.clone()), zygote.flatten().as_ref());
                if matches!(&result, Err(f) if f.stale && attempt < DECIDE_TRIES) {
                    if is_http {
                        crate::net::take_refusals(&call_id);
                    }
                    continue;
                }
                let mut o = outcome(decision, result, is_read, t0);
                if inner.stopping.load(Ordering::SeqCst) && o.exit_code == Some(128 + 9) {
                    o.stderr.push_str("paddock: killed: the supervisor stopped before the call ended\n");
                }
                if is_http {
                    http_outcome(&mut o, crate::net::take_refusals(&call_id));
                }
                return Ok::<_, SessionError>(o);
            }
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
