//! A session's shared state ([`Inner`]): the policy in force (revocations applied), the
//! audit log and how records go to it, the session's zygote, the calls running now.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use paddock_audit::{AuditLog, Call, Decision as AuditDecision, Event, Target};
use paddock_policy::{Decision, Policy};
use paddock_sandbox::{Killer, SandboxSpec};

use super::config::{ConnectionObserver, ExecObserver, SessionConfig, StartObserver};
use super::revocations::RevocationState;
use super::zygote::{SessionZygote, Zygotes};
use crate::SessionError;

/// What every holder of a session shares: its [`Session`](super::Session) handles, its
/// calls, the proxy tasks, exec supervisors and interceptors of those calls.
pub(crate) struct Inner {
    pub id: String,
    /// The policy as given, paddock's own state hidden, without revocations; the policy in
    /// force is this one itself while no revocation applies.
    pub(super) base: Arc<Policy>,
    pub(super) current: Mutex<Arc<Policy>>,
    pub(super) revocations: Mutex<Option<RevocationState>>,
    pub log: AuditLog,
    pub on_connection: Option<ConnectionObserver>,
    pub(super) mode: String,
    pub(super) calls: AtomicU64,
    pub(super) started: Instant,
    pub(super) zygotes: Zygotes,
    /// The calls running now, by a number of their own: what [`Session::kill_running`] kills.
    pub(super) running: Mutex<(u64, Vec<(u64, Killer)>)>,
    /// Set by [`Session::kill_running`]: calls that end killed say why.
    pub(super) stopping: AtomicBool,
    /// [`Session::call`]s not yet returned.
    pub(super) in_flight: AtomicUsize,
    /// Where questions to a person go ([`Session::enable_approvals`]); none: an ask is a denial.
    pub(super) approvals: OnceLock<Arc<crate::approvals::Broker>>,
    /// TLS interception and brokered secrets, when the policy has secrets or request rules.
    pub(crate) intercept: Option<crate::secrets::SessionIntercept>,
    /// Sees every `exec` record (issue 16; [`Session::set_exec_observer`]).
    pub(super) exec_observer: OnceLock<ExecObserver>,
    /// Sees each call's report before its program runs ([`Session::set_start_observer`]).
    pub(super) start_observer: OnceLock<StartObserver>,
    /// A sandbox helper forked ahead ([`Session::give_helper`]): the next call that gets a
    /// sandbox of its own takes it.
    pub(super) ahead: Mutex<Option<paddock_sandbox::Prestarted>>,
    /// `$STATE` as the caller resolved and checked it ([`SessionConfig::state_dir`]).
    state_dir: Option<PathBuf>,
}

fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}-{:x}-{:x}-{}", nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

impl Inner {
    /// The state of a new session: opens the audit log (an error here means no call may
    /// run), loads the revocation list and sets up interception and secrets.
    pub(super) fn open(cfg: SessionConfig) -> Result<Arc<Inner>, SessionError> {
        let t = Instant::now();
        let log = AuditLog::open(&cfg.audit_log)?;
        paddock_sandbox::phase("audit log open", t);
        let t = Instant::now();
        // paddock's own state is never in a view, whatever the policy grants: the log, the
        // revocation list and its lock file (and what the caller hid in the policy).
        let mut base = cfg.policy;
        let own = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut revocations = cfg.revocations.map(RevocationState::new);
        let own_revocations = revocations.iter().flat_map(RevocationState::own_paths);
        base.hide_paths([own(&cfg.audit_log)].into_iter().chain(own_revocations));
        // No copy of the policy unless a revocation applies: the policy in force is the
        // base itself until the list names something.
        let base = Arc::new(base);
        let mut current = Arc::clone(&base);
        if let Some(state) = revocations.as_mut() {
            state.load(&base, &mut current);
        }
        paddock_sandbox::phase("revocation list applied", t);
        let t = Instant::now();
        let id = new_id(&cfg.mode);
        // The caller's environment is read for `env:` secrets now, once. The seed only
        // matters to placeholders: a policy that intercepts nothing has none to derive.
        let seed = match cfg.placeholder_seed.as_deref() {
            Some(path) if base.intercepts_any() => Some(crate::secrets::read_seed(path)?),
            _ => None,
        };
        let intercept = crate::secrets::SessionIntercept::new(&base, &id, &|k| std::env::var(k).ok(), seed)?;
        paddock_sandbox::phase("secrets and interception set up", t);
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
            start_observer: OnceLock::new(),
            ahead: Mutex::new(None),
            state_dir: cfg.state_dir,
        });
        Ok(inner)
    }

    /// The session's secrets, if it has any.
    pub(crate) fn broker(&self) -> Option<&crate::secrets::Broker> {
        self.intercept.as_ref().and_then(|i| i.broker.as_ref())
    }

    /// Every spec of the session gets the CA bundle (a read path) and the secrets'
    /// placeholders and the bundle's variables (its environment), and its view cache in
    /// `$STATE` ([`crate::spec::view_cache`]).
    pub(super) fn adorn(&self, spec: &mut SandboxSpec) {
        if let Some(i) = &self.intercept {
            i.adorn(&self.base, spec);
        }
        spec.view_cache = crate::spec::view_cache(self.state_dir().as_deref(), &spec.write_paths);
    }

    /// `$STATE`: the one the caller resolved and checked, else resolved (created and
    /// checked) from the environment now; `None` without a usable one.
    pub(crate) fn state_dir(&self) -> Option<PathBuf> {
        match &self.state_dir {
            Some(d) => Some(d.clone()),
            None => paddock_audit::state::state_dir().ok(),
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
    pub(super) fn zygote_for(&self, policy: &Arc<Policy>) -> Option<Arc<SessionZygote>> {
        self.zygotes.for_policy(&self.id, policy, &|spec| self.adorn(spec))
    }

    /// The `call.start` record of a decided call (its view: the grants the child holds).
    pub(super) fn call_record(&self, target: Target, d: &Decision, cwd: &Path, policy: &Policy) -> Call {
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

    /// The observer of `exec` records, if one is set.
    pub(crate) fn exec_observer(&self) -> Option<&ExecObserver> {
        self.exec_observer.get()
    }

    /// Appends a call's `call.start` (durably) if the policy in force is still `decided_under`,
    /// asked under the log's lock (the revocation list re-read if it changed); its `seq`,
    /// or `None` when a revocation changed the policy since the call was decided.
    pub(super) fn append_start(&self, event: &Event, decided_under: &Arc<Policy>) -> Result<Option<u64>, SessionError> {
        let mut still = || Arc::ptr_eq(&self.policy(), decided_under);
        Ok(self.log.append_durable_if(event, &mut still)?.map(|r| r.seq))
    }

    /// Appends `event` to the session's audit log (`durable`: synced before it returns); its `seq`.
    pub(crate) fn append(&self, event: &Event, durable: bool) -> Result<u64, SessionError> {
        let r = if durable { self.log.append_durable(event) } else { self.log.append(event) };
        Ok(r?.seq)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;

    fn open(text: &str, dir: &Path) -> Arc<Inner> {
        let vars = Vars { workspace: dir.to_path_buf(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let policy = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let mut cfg = SessionConfig::new(policy, dir.join("audit.jsonl"));
        cfg.placeholder_seed = Some(dir.join("placeholder-seed"));
        Inner::open(cfg).unwrap()
    }

    #[test]
    fn the_placeholder_seed_is_read_only_for_a_policy_that_has_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("placeholder-seed");
        let plain = open("version = 1\n[filesystem]\nread = [\"/usr\"]\n", dir.path());
        assert!(plain.intercept.is_none());
        assert!(!seed.exists(), "no secrets: the seed is neither read nor made");
        let text = "version = 1\n[network]\nallow = [\"api.test\"]\n[secrets.gh]\nfrom = \"env:PADDOCK_TEST_UNSET_GH\"\nhosts = [\"api.test\"]\nenv = \"GITHUB_TOKEN\"\n";
        let with_secrets = open(text, dir.path());
        if let Some(i) = &with_secrets.intercept {
            i.bundle.remove();
        }
        assert!(with_secrets.intercept.is_some());
        assert_eq!(std::fs::read(&seed).unwrap().len(), 32, "secrets: the seed is made and read");
    }

    #[test]
    fn a_call_start_is_written_only_under_the_policy_its_call_was_decided_under() {
        let dir = tempfile::tempdir().unwrap();
        let vars = Vars { workspace: dir.path().to_path_buf(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let text = "version = 1\n[commands]\nallow = [\"cat **\"]\n";
        let policy = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let mut cfg = SessionConfig::new(policy, dir.path().join("audit.jsonl"));
        let list = dir.path().join("revocations.toml");
        cfg.revocations = Some(list.clone());
        let inner = Inner::open(cfg).unwrap();
        let argv = ["cat".to_string(), "x".to_string()];
        let decided_under = inner.policy();
        assert!(decided_under.check_command(&argv, dir.path()).is_allow());
        let start = |p: &Policy| {
            let d = p.check_command(&argv, dir.path());
            inner.call_record(Target::command(argv.clone()), &d, dir.path(), p).start()
        };
        // Unchanged: written.
        assert!(inner.append_start(&start(&decided_under), &decided_under).unwrap().is_some());
        // A revocation saved after the decision (as `paddock revoke` saves it, before its
        // record): the call decided before it is not recorded as started...
        let mut revs = paddock_audit::Revocations::load(&list).unwrap();
        revs.add("command:cat **".parse().unwrap(), None);
        revs.save().unwrap();
        let before = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap().lines().count();
        assert!(inner.append_start(&start(&decided_under), &decided_under).unwrap().is_none());
        assert_eq!(std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap().lines().count(), before);
        // ...and decided again, it is denied.
        let now = inner.policy();
        assert!(!Arc::ptr_eq(&now, &decided_under));
        assert!(!now.check_command(&argv, dir.path()).is_allow());
        assert!(inner.append_start(&start(&now), &now).unwrap().is_some());
    }
}
