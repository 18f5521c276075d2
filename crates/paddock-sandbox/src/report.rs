//! What was enforced and how the child ended: [`EnforcementReport`] and [`RunOutcome`].
//!
//! The report is built up along the order of application: the helper records the session
//! and the namespaces, the reaper the mount view, the target process everything from
//! Landlock to the closing of descriptors; the target sends the whole report to the parent
//! just before `execve`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::layer::{Applied, Layer, LayerState};

/// The status of one confinement layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStatus {
    /// The layer (serialised as its name: `session`, `user_ns`, `mount_ns`, `pid_ns`,
    /// `net_ns`, `ipc_ns`, `uts_ns`, `cgroup_ns`, `mounts`, `landlock`, `rlimits`, `cgroup`,
    /// `caps`, `no_new_privs`, `seccomp`, `fds`, `env`).
    pub name: Layer,
    /// Enforced, partial or unavailable.
    pub state: LayerState,
    /// What exactly, e.g. `landlock ABI 7` or `cgroup v2 not delegated`.
    pub detail: String,
}

/// The status of every layer, in the order they were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementReport {
    /// One entry per layer.
    pub layers: Vec<LayerStatus>,
}

impl EnforcementReport {
    /// Records (or replaces) the status of `name`.
    pub fn set(&mut self, name: Layer, state: LayerState, detail: impl Into<String>) {
        let detail = detail.into();
        if let Some(l) = self.layers.iter_mut().find(|l| l.name == name) {
            l.state = state;
            l.detail = detail;
        } else {
            self.layers.push(LayerStatus { name, state, detail });
        }
    }

    /// Records (or replaces) what a step applied.
    pub(crate) fn record(&mut self, name: Layer, applied: Applied) {
        self.set(name, applied.state, applied.detail);
    }

    /// The status of `name`, if recorded.
    pub fn get(&self, name: Layer) -> Option<&LayerStatus> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// True when `name` is recorded as enforced or partial.
    pub fn is_active(&self, name: Layer) -> bool {
        self.get(name).is_some_and(|l| l.state != LayerState::Unavailable)
    }

    /// The first unavailable layer a strict run cannot do without (cgroup is optional while
    /// rlimits cover the limits). A partial layer is in force and does not stop it: under
    /// strict, what a layer must not lack is a hard requirement that makes it unavailable
    /// (Landlock: the rights nothing else covers, see the `landlock` module), so what a
    /// partial one lacks is covered, and its detail says by what.
    pub fn first_missing(&self) -> Option<&LayerStatus> {
        self.layers.iter().find(|l| l.state == LayerState::Unavailable && !l.name.is_optional())
    }

    /// [`first_missing`](Self::first_missing) for `spec`: exec supervision is required too
    /// when it decides which programs run (`[commands] scope = "tree"` with rules); when it
    /// only records, a kernel or an enclosing sandbox that refuses its listener (one
    /// seccomp listener per process tree) leaves the call without `exec` records, reported.
    pub fn first_missing_for(&self, spec: &crate::SandboxSpec) -> Option<&LayerStatus> {
        let decides = spec.exec.as_ref().is_some_and(|c| c.programs.is_some());
        self.first_missing().or_else(|| self.get(Layer::Exec).filter(|l| decides && l.state == LayerState::Unavailable))
    }
}

/// How the child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitKind {
    /// It exited with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
    /// The timeout killed the whole process tree.
    TimedOut,
}

impl ExitKind {
    /// How a process ended, from its raw wait status.
    pub(crate) fn from_wait_status(ws: i32) -> ExitKind {
        if libc::WIFSIGNALED(ws) {
            ExitKind::Signaled(libc::WTERMSIG(ws))
        } else {
            ExitKind::Exited(libc::WEXITSTATUS(ws))
        }
    }
}

/// A raw wait status in words (`exit status 1`, `killed by signal 9`).
pub(crate) fn describe_wait_status(ws: i32) -> String {
    match ExitKind::from_wait_status(ws) {
        ExitKind::Exited(c) => format!("exit status {c}"),
        ExitKind::Signaled(s) => format!("killed by signal {s}"),
        ExitKind::TimedOut => "timed out".into(),
    }
}

/// The result of one confined run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// How the child ended.
    pub status: ExitKind,
    /// What was enforced.
    pub report: EnforcementReport,
    /// Bytes the child wrote to stdout (all of them, relayed or not).
    pub stdout_bytes: u64,
    /// Bytes the child wrote to stderr (all of them, relayed or not).
    pub stderr_bytes: u64,
    /// stdout went past `max_output` and the rest was dropped.
    pub stdout_truncated: bool,
    /// stderr went past `max_output` and the rest was dropped.
    pub stderr_truncated: bool,
    /// Collected stdout (only in [`crate::StdioMode::Capture`]; at most `max_output` bytes).
    pub stdout: Vec<u8>,
    /// Collected stderr (only in [`crate::StdioMode::Capture`]; at most `max_output` bytes).
    pub stderr: Vec<u8>,
    /// Wall clock from the release of the child to its end.
    pub duration: Duration,
}

impl RunOutcome {
    /// The exit code a shell would show: the code, `128 + N` for signal N, 124 for timeout.
    pub fn exit_code(&self) -> i32 {
        match self.status {
            ExitKind::Exited(c) => c,
            ExitKind::Signaled(n) => 128 + n,
            ExitKind::TimedOut => 124,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let mut o = RunOutcome {
            status: ExitKind::Exited(3),
            report: EnforcementReport::default(),
            stdout_bytes: 0,
            stderr_bytes: 0,
            stdout_truncated: false,
            stderr_truncated: false,
            stdout: vec![],
            stderr: vec![],
            duration: Duration::ZERO,
        };
        assert_eq!(o.exit_code(), 3);
        o.status = ExitKind::Signaled(15);
        assert_eq!(o.exit_code(), 143);
        o.status = ExitKind::TimedOut;
        assert_eq!(o.exit_code(), 124);
    }

    #[test]
    fn cgroup_is_optional_for_strict() {
        let mut r = EnforcementReport::default();
        r.set(Layer::Cgroup, LayerState::Unavailable, "not delegated");
        assert!(r.first_missing().is_none());
        r.set(Layer::Seccomp, LayerState::Unavailable, "no");
        assert_eq!(r.first_missing().unwrap().name, Layer::Seccomp);
        r.set(Layer::Seccomp, LayerState::Enforced, "yes");
        assert!(r.first_missing().is_none());
    }

    #[test]
    fn exec_supervision_is_required_only_where_it_decides() {
        let mut r = EnforcementReport::default();
        r.set(Layer::Exec, LayerState::Unavailable, "a listener exists already");
        let mut spec = crate::SandboxSpec::new("/bin/true", vec!["true".into()]);
        assert!(r.first_missing_for(&spec).is_none(), "no exec control at all");
        spec.exec = Some(crate::ExecControl { programs: None });
        assert!(r.first_missing_for(&spec).is_none(), "it only records");
        spec.exec = Some(crate::ExecControl { programs: Some(vec!["/bin/true".into()]) });
        assert_eq!(r.first_missing_for(&spec).unwrap().name, Layer::Exec, "it decides");
    }

    #[test]
    fn partial_landlock_does_not_stop_strict_unavailable_does() {
        let mut r = EnforcementReport::default();
        r.set(Layer::Rlimits, LayerState::Partial, "RLIMIT_AS failed");
        r.set(Layer::Landlock, LayerState::Enforced, "fully enforced");
        assert!(r.first_missing().is_none());
        // Only best-effort rights can be missing from a partial Landlock: still in the report.
        r.set(
            Layer::Landlock,
            LayerState::Partial,
            "partially enforced; this kernel lacks signal scope (covered: ...)",
        );
        assert!(r.first_missing().is_none());
        assert_eq!(r.get(Layer::Landlock).unwrap().state, LayerState::Partial);
        // A required right missing fails the ruleset: unavailable, and strict stops.
        r.set(Layer::Landlock, LayerState::Unavailable, "strict requires abstract unix socket scope");
        assert_eq!(r.first_missing().unwrap().name, Layer::Landlock);
    }
}
