//! Act on a plan: start the planned child (in the session's zygote or a sandbox of its
//! own), serve its network through the proxy and its execs through the exec supervisor,
//! and write `call.start` (durably, before it runs) and `call.end`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use paddock_audit::{Call, CallOutcome as AuditOutcome};
use paddock_policy::{Decision, Policy};
use paddock_proxy::ConnectionEvent;
use paddock_sandbox::{
    phase, EnforcementReport, ExitKind, NetworkMode, RunOutcome, Running, SandboxError, SandboxSpec,
};
use tokio::runtime::Handle;

use super::inner::Inner;
use super::plan::Child;
use super::zygote::SessionZygote;
use crate::net::{ProxyHost, ProxyTask};
use crate::SessionError;

/// Gives the runtime the call's proxy is served on: asked for only after the sandbox has
/// started, so a single-threaded caller can still have its helper forked directly.
pub(super) type RuntimeSource<'a> = &'a dyn Fn() -> Result<Handle, SessionError>;

/// What [`Inner::execute`] recorded and ran.
pub(super) struct Executed {
    /// The sequence number of the call's `call.start` record.
    pub audit_seq: u64,
    /// How the child ended (`None` for a denial: nothing ran).
    pub outcome: Option<RunOutcome>,
    /// What the call created under a `deny` or `protect` rule, moved aside.
    pub moved_aside: Vec<paddock_audit::MovedAside>,
    /// Directories the check for new glob matches could not read.
    pub unchecked: Vec<paddock_audit::Unchecked>,
}

/// Why [`Inner::execute`] failed, and the `seq` of the call's `call.start` when the call
/// was recorded before it failed (the API answers with it, as for a call that ran).
pub(super) struct Failed {
    pub error: SessionError,
    pub seq: Option<u64>,
    /// Nothing ran, and the call is to be decided and started again: the revocation list
    /// changed after the call was decided and before its `call.start` could be written
    /// (nothing was recorded), or its `call.start`, written while it was set up, did not hold
    /// the layers it reported (that record has its `call.end`).
    pub stale: bool,
}

impl Failed {
    fn recorded(error: impl Into<SessionError>, seq: u64) -> Failed {
        Failed { error: error.into(), seq: Some(seq), stale: false }
    }

    fn stale() -> Failed {
        let error = SessionError::Internal("the revocation list changed while the call started".into());
        Failed { error, seq: None, stale: true }
    }

    /// The call's `call.start` (`seq`), recorded while it was set up, did not hold the
    /// layers it then reported: it did not run (its `call.end` says 125), and starts again.
    fn again(seq: u64) -> Failed {
        let error = SessionError::Internal("the call's layers differed from those recorded for it".into());
        Failed { error, seq: Some(seq), stale: true }
    }
}

impl From<SessionError> for Failed {
    fn from(error: SessionError) -> Failed {
        Failed { error, seq: None, stale: false }
    }
}

impl From<Failed> for SessionError {
    fn from(f: Failed) -> SessionError {
        f.error
    }
}

/// `call` with what was enforced around its child: its `call.start`.
fn enforced(call: &Call, report: &EnforcementReport) -> Call {
    call.clone().with_enforcement(serde_json::to_value(report).unwrap_or_default())
}

/// The proxy sees the session through this: its policy, its log, its observer, its questions.
impl ProxyHost for Inner {
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

impl Inner {
    /// decide → audit start → confine and run → audit end. Blocking. `child` is what the
    /// decision lets run ([`Child::Denied`] for a denial). Proxied connections are served
    /// on the runtime `rt` gives.
    pub(super) fn execute(
        self: &Arc<Self>,
        call: Call,
        decided_under: &Arc<Policy>,
        decision: &Decision,
        child: Child,
        rt: RuntimeSource,
        zygote: Option<&Arc<SessionZygote>>,
    ) -> Result<Executed, Failed> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut spec = match (decision.is_allow(), child) {
            (true, Child::Run(spec)) => *spec,
            (true, Child::NotFound) => {
                // Allowed, but there is nothing to run (the program does not resolve).
                let code = Child::NOT_FOUND;
                let seq = self.record_unrun(call, None, code)?;
                return Err(Failed::recorded(SessionError::NotFound { seq, code }, seq));
            }
            _ => {
                let audit_seq = self.append(&call.start(), true)?;
                return Ok(Executed { audit_seq, outcome: None, moved_aside: Vec::new(), unchecked: Vec::new() });
            }
        };
        self.adorn(&mut spec);
        // Before the child can run: what is there now is the user's, unless another call
        // running now noted it otherwise (the registry of running calls, under its lock).
        // Done while the helper side builds the sandbox (the child is parked before
        // `execve` until `wait`), so on a second core it costs the start nothing.
        let (writes, view_cache) = (spec.write_paths.clone(), spec.view_cache.clone());
        let note = || {
            let t = Instant::now();
            let policy = self.policy();
            let noted = (|| {
                let t = Instant::now();
                let registry = crate::running::Registry::open(&policy, &writes, self.state_dir().as_deref())?;
                let locked = registry.as_ref().map(|r| r.lock()).transpose()?;
                phase("registry of running calls opened and locked", t);
                // In a session's zygote, the last start's notes stand for this one's while
                // nothing on the rules' ways changed since they were taken (`super::notes`).
                let t = Instant::now();
                let kept = zygote.and_then(|z| z.notes(&policy)).and_then(|k| Some((k, k.begin()?)));
                let mut looked = Vec::new();
                let (mut absent, fresh) = match kept.as_ref().and_then(|(_, b)| b.notes.clone()) {
                    Some(notes) => {
                        tracing::debug!("the last start's notes of the rules' ways stand for this call's: nothing on them changed since");
                        (notes, None)
                    }
                    None => {
                        let trace = kept.is_some().then_some(&mut looked);
                        let notes = crate::absent::AbsentPaths::before_traced(&policy, trace);
                        let pristine = kept.is_some().then(|| notes.clone());
                        (notes, pristine)
                    }
                };
                phase("absent deny/protect paths noted", t);
                // In a session's zygote, the last start's scan stands for this one while
                // nothing of the stamped directories changed since (`SessionZygote::scanned`).
                let t = Instant::now();
                let scanned = zygote.and_then(|z| z.scanned());
                let mut planted =
                    crate::planted::Planted::before_or(&policy, &writes, view_cache.as_deref(), scanned.as_deref());
                if let (None, Some(z)) = (&scanned, zygote) {
                    z.keep_scanned(&planted);
                }
                phase("glob matches noted", t);
                let registered = locked.map(|l| l.register(&mut absent, &mut planted, &writes)).transpose()?;
                // The view is made from the rules as resolved when the policy was loaded:
                // a symlink or `.git` file on a rule's way that changed since (a running
                // call's child removed it, and its end made it again) would leave the
                // user's file open. Checked right after the running calls' notes, so a
                // link (or its directory) moved away while this policy loaded and back
                // before that check is caught too (found by an attack that flipped
                // `.claude` during the scan above).
                // Kept notes: the watch, read again here, says nothing on those ways changed
                // since they were taken, when the rules resolved as compiled.
                let t = Instant::now();
                let unchanged = match &kept {
                    Some((k, b)) if fresh.is_none() => k.still(b.generation),
                    _ => false,
                };
                if !unchanged {
                    let trace = fresh.is_some().then_some(&mut looked);
                    if let Some(d) = policy.filesystem.drift_traced(trace) {
                        return Err(crate::running::NoteError::Unsettled(format!(
                            "{d}: a symlink or `.git` file on its way changed since (another call running then may have removed it; paddock makes such a link again when that call ends), so this call's view would not cover what the rule names now; run it again{}",
                            if self.mode == "run" { "" } else { " (a session: start it again, or load its policy again)" }
                        )));
                    }
                    if let (Some((k, b)), Some(notes)) = (&kept, fresh) {
                        k.keep(b.generation, notes, &looked);
                    }
                }
                phase("deny/protect rules resolved again", t);
                Ok::<_, crate::running::NoteError>((absent, planted, registered))
            })();
            phase("absent deny/protect paths and glob matches noted", t);
            // The tree's first exec record would start the log's sync thread on the way
            // of that exec's answer; started here, it costs the call nothing.
            self.log.start_sync_thread();
            noted
        };
        // Recorded ahead: where the session's zygote expects the call's report (its last
        // call of the same shape reported it), `call.start` with that report is written and
        // synced while the call is set up, once the notes are taken. It stands only if the
        // call then reports exactly that; else the child never runs (below).
        let mut ahead_record: Option<(Result<Option<u64>, SessionError>, EnforcementReport)> = None;
        let mut meanwhile = |expected: Option<&EnforcementReport>| {
            let noted = note();
            if let (Some(report), Ok(_)) = (expected, &noted) {
                let t = Instant::now();
                let started = enforced(&call, report);
                ahead_record = Some((self.append_start(&started.start(), decided_under), report.clone()));
                phase("call.start written and synced, while the call is set up", t);
            }
            noted
        };
        let ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (started, noted) = self.zygotes.start_child(&self.id, &mut spec, zygote, ahead, &mut meanwhile);
        let recorded = match ahead_record {
            None => None,
            // Not written (the log failed, or a revocation came since the decision): the
            // child, parked before `execve`, is killed as `started` is dropped.
            Some((Err(e), _)) => return Err(e.into()),
            Some((Ok(None), _)) => return Err(Failed::stale()),
            Some((Ok(Some(seq)), report)) => match &started {
                Ok((running, _)) if *running.report() == report => Some(seq),
                Ok(_) => {
                    drop(started); // kills the parked child: it never runs
                    tracing::warn!(call = %call.call_id, "the call's layers differed from those its call.start recorded: it did not run, and starts again");
                    self.append(&call.end(AuditOutcome::exited(125)), false)?;
                    return Err(Failed::again(seq));
                }
                Err(_) => Some(seq),
            },
        };
        let (mut running, _port) = match started {
            Ok(r) => r,
            Err(e) => {
                let code = match e {
                    SandboxError::LayerUnavailable { .. } => 71,
                    ref other => other.exit_code(),
                };
                drop(noted);
                let seq = self.record_unrun(call, recorded, code)?;
                return Err(Failed::recorded(e, seq));
            }
        };
        let (absent, mut planted, record) = match noted {
            Some(Ok(n)) => n,
            Some(Err(crate::running::NoteError::Unsettled(why))) => {
                drop(running); // kills the parked child
                tracing::debug!(%why, "the call's start is refused: the user's state its rules resolve through changed");
                let e = SessionError::Unsettled(why);
                let seq = self.record_unrun(call, recorded, e.exit_code())?;
                return Err(Failed::recorded(e, seq));
            }
            Some(Err(e)) => {
                drop(running); // kills the parked child
                let seq = self.record_unrun(call, recorded, 125)?;
                return Err(Failed::recorded(SessionError::Internal(e.to_string()), seq));
            }
            None => {
                drop(running);
                let seq = self.record_unrun(call, recorded, 125)?;
                let e = SessionError::Internal("the sandbox started without the registry's note".into());
                return Err(Failed::recorded(e, seq));
            }
        };
        let t = Instant::now();
        let proxy = match self.start_proxy(&spec, &mut running, &call, rt) {
            Ok(p) => p,
            Err(e) => {
                drop(running);
                return Err(Failed::recorded(e, self.record_unrun(call, recorded, 125)?));
            }
        };
        if proxy.is_some() {
            phase("proxy start", t);
        }
        // exec supervision (issue 16): every exec of the tree waits for this supervisor,
        // which decides and records it; stopped after the tree is gone, before `call.end`.
        let t = Instant::now();
        let exec_supervisor = match running.take_exec_listener() {
            Some(fd) => {
                let mut auditor = crate::exec_audit::ExecAuditor::new(Arc::clone(self), call.call_id.clone());
                if decision.is_allow() {
                    // The call's own program starting is the call: a person who answered
                    // its question is not asked again about that exec.
                    auditor = auditor.with_call(&spec.program, &spec.argv, decision.clone());
                }
                match paddock_sandbox::supervise(fd, Arc::new(auditor)) {
                    Ok(s) => {
                        phase("exec supervisor start", t);
                        Some(s)
                    }
                    Err(e) => {
                        drop(running);
                        return Err(Failed::recorded(e, self.record_unrun(call, recorded, 125)?));
                    }
                }
            }
            None => None,
        };
        // Every layer is in place and the child is parked before exec: record the call,
        // with what was enforced, durably, then let it run; unless its record, written while
        // it was set up, holds this very report (above). (`call.end` repeats the call's
        // fields; the report, large, stays on `call.start`.)
        // Written only under the policy the call was decided under: a revocation saved since
        // (its list is written before its `revoke` record) makes it stale, so no call
        // recorded after a `revoke` uses what it withdrew. On error or staleness, dropping
        // `running` kills the parked child.
        let written = match recorded {
            Some(seq) => Some(seq),
            None => {
                let t = Instant::now();
                let written = self.append_start(&enforced(&call, running.report()).start(), decided_under)?;
                phase("call.start written and synced", t);
                written
            }
        };
        let seq = match written {
            Some(seq) => seq,
            None => {
                drop(running);
                if let Some(s) = exec_supervisor {
                    s.stop();
                }
                if let Some((task, rt)) = proxy {
                    rt.block_on(task.stop());
                }
                return Err(Failed::stale());
            }
        };
        if let Some(observe) = self.start_observer.get() {
            observe(running.report());
        }
        let registered = self.register(&running);
        if self.mode == "run" {
            // This process only waits from here on: what it ran to get here is handed
            // back once the child has run a while (a short run does not pay for it).
            running.release_code_after(paddock_sandbox::RELEASE_CODE_AFTER);
        }
        // The program's own exec, read by the supervisor meanwhile, is decided, recorded and
        // answered here, as the child is released, without waiting for the supervisor's
        // thread to wake up.
        if let Some(s) = &exec_supervisor {
            s.answer_first();
        }
        let waited = running.wait();
        let t = Instant::now();
        if let Some(s) = exec_supervisor {
            s.stop();
            phase("exec supervisor stop", t);
        }
        if let Some(n) = registered {
            self.running.lock().unwrap_or_else(|e| e.into_inner()).1.retain(|(m, _)| *m != n);
        }
        if let Some((task, rt)) = proxy {
            let t = Instant::now();
            rt.block_on(task.stop());
            phase("proxy stop", t);
        }
        let t = Instant::now();
        let mut moved_aside = absent.settle();
        planted.handled(&moved_aside);
        // Nothing of the scanned directories changed since the zygote's stamp (so since the
        // start): the scan after the call would find what the start did.
        let (globs, unchecked) = match zygote {
            Some(z) if z.unchanged(planted.roots()) => planted.settled_unchanged(),
            _ => planted.settle(),
        };
        moved_aside.extend(globs);
        drop(record); // settled: this call's record goes
        phase("absent deny/protect paths and new glob matches settled", t);
        let outcome = match waited {
            Ok(o) => o,
            Err(e) => {
                let end = AuditOutcome::exited(125).with_moved_aside(moved_aside).with_unchecked(unchecked);
                self.append(&call.end(end), false)?;
                return Err(Failed::recorded(e, seq));
            }
        };
        let t = Instant::now();
        let end = ended(&outcome).with_moved_aside(moved_aside.clone()).with_unchecked(unchecked.clone());
        self.append(&call.end(end), false)?;
        phase("call.end written", t);
        Ok(Executed { audit_seq: seq, outcome: Some(outcome), moved_aside, unchecked })
    }

    /// Records a call that was allowed but ran nothing (`code`: why): `call.start` with no
    /// view (unless it was `recorded` already, with this `seq`), then `call.end`; the `seq`
    /// of `call.start`.
    fn record_unrun(&self, call: Call, recorded: Option<u64>, code: i32) -> Result<u64, SessionError> {
        if let Some(seq) = recorded {
            self.append(&call.end(AuditOutcome::exited(code)), false)?;
            return Ok(seq);
        }
        let call = call.with_view(Vec::new());
        let seq = self.append(&call.start(), true)?;
        self.append(&call.end(AuditOutcome::exited(code)), false)?;
        Ok(seq)
    }

    /// Serves the child's proxy listener (when its network is the proxy) on `rt`'s runtime,
    /// with the session's interception; the task and the runtime to stop it on.
    fn start_proxy(
        self: &Arc<Self>,
        spec: &SandboxSpec,
        running: &mut Running,
        call: &Call,
        rt: RuntimeSource,
    ) -> Result<Option<(ProxyTask, Handle)>, SessionError> {
        match (&spec.network, running.take_proxy_listener()) {
            (NetworkMode::Proxy { .. }, Some(fd)) => {
                let rt = rt()?;
                let intercept = self.intercept.as_ref().map(|i| paddock_proxy::Intercept {
                    ca: Arc::clone(&i.ca),
                    interceptor: Arc::new(crate::secrets::CallInterceptor {
                        inner: Arc::clone(self),
                        call_id: call.call_id.clone(),
                        taken: Default::default(),
                    }),
                    upstream_ca: self.policy().upstream_ca.clone(),
                });
                Ok(Some((ProxyTask::start(&rt, Arc::clone(self) as _, fd, call.call_id.clone(), intercept)?, rt)))
            }
            (NetworkMode::Proxy { .. }, None) => {
                Err(SessionError::Internal("the sandbox handed over no proxy listener".into()))
            }
            _ => Ok(None),
        }
    }

    /// Puts the child's killer on the list [`Session::kill_running`](super::Session::kill_running)
    /// kills; its number there, to take it off once the child is gone.
    fn register(&self, running: &Running) -> Option<u64> {
        running.killer().map(|k| {
            let mut list = self.running.lock().unwrap_or_else(|e| e.into_inner());
            list.0 += 1;
            let n = list.0;
            list.1.push((n, k));
            n
        })
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
