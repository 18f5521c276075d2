//! [`Layer`]: the confinement layers, in the order the report lists them; what each one
//! is called in the report is derived from it, never written as a string elsewhere.
//!
//! Adding a layer: a variant here (with its name in [`Layer::as_str`] and its place in
//! [`Layer::ALL`]), the module that applies it, and the step that records it (the compiler
//! names the `match`es that must learn it).

use serde::{Deserialize, Serialize};

/// How far one layer is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerState {
    /// In force as requested.
    Enforced,
    /// In force, with gaps the detail names.
    Partial,
    /// Not in force on this machine.
    Unavailable,
}

/// One confinement layer, as named in the [`crate::EnforcementReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// `setsid`: a new session without a controlling terminal.
    Session,
    /// The user namespace (the caller's uid and gid mapped to themselves).
    UserNs,
    /// The mount namespace.
    MountNs,
    /// The pid namespace (the reaper is its pid 1).
    PidNs,
    /// The network namespace (`lo` only).
    NetNs,
    /// The SysV IPC namespace.
    IpcNs,
    /// The uts namespace (hostname `paddock`).
    UtsNs,
    /// The cgroup namespace (rooted at the sandbox's cgroup).
    CgroupNs,
    /// The mount view (binds, masks, `/proc`, `/dev`, `/tmp`, `pivot_root`).
    Mounts,
    /// Landlock (filesystem, TCP, scopes).
    Landlock,
    /// Resource limits.
    Rlimits,
    /// The sandbox's cgroup (pids, memory).
    Cgroup,
    /// Every capability dropped.
    Caps,
    /// `no_new_privs`.
    NoNewPrivs,
    /// Exec supervision: every `execve`/`execveat` of the tree waits for the supervisor
    /// (seccomp user notification), which records and decides it.
    Exec,
    /// The seccomp filter.
    Seccomp,
    /// No inherited descriptors beyond 0, 1, 2.
    Fds,
    /// The environment is the spec's only.
    Env,
}

impl Layer {
    /// Every layer, in the order of the report.
    pub const ALL: [Layer; 18] = [
        Layer::Session,
        Layer::UserNs,
        Layer::MountNs,
        Layer::PidNs,
        Layer::NetNs,
        Layer::IpcNs,
        Layer::UtsNs,
        Layer::CgroupNs,
        Layer::Mounts,
        Layer::Landlock,
        Layer::Rlimits,
        Layer::Cgroup,
        Layer::Caps,
        Layer::NoNewPrivs,
        Layer::Exec,
        Layer::Seccomp,
        Layer::Fds,
        Layer::Env,
    ];

    /// The layer's name in the report (`user_ns`, `no_new_privs`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Session => "session",
            Layer::UserNs => "user_ns",
            Layer::MountNs => "mount_ns",
            Layer::PidNs => "pid_ns",
            Layer::NetNs => "net_ns",
            Layer::IpcNs => "ipc_ns",
            Layer::UtsNs => "uts_ns",
            Layer::CgroupNs => "cgroup_ns",
            Layer::Mounts => "mounts",
            Layer::Landlock => "landlock",
            Layer::Rlimits => "rlimits",
            Layer::Cgroup => "cgroup",
            Layer::Caps => "caps",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Exec => "exec",
            Layer::Seccomp => "seccomp",
            Layer::Fds => "fds",
            Layer::Env => "env",
        }
    }

    /// Whether a strict run may go without it: the cgroup, while rlimits cover the limits;
    /// exec supervision while it only records (a spec whose exec control decides which
    /// programs run requires it: [`crate::EnforcementReport::first_missing_for`]).
    pub fn is_optional(self) -> bool {
        matches!(self, Layer::Cgroup | Layer::Exec)
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for Layer {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What one step applied: its state and the detail the report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Applied {
    pub state: LayerState,
    pub detail: String,
}

impl Applied {
    /// A status of `state` with `detail`.
    pub fn new(state: LayerState, detail: impl Into<String>) -> Applied {
        Applied { state, detail: detail.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialised_names() {
        for l in Layer::ALL {
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{}\"", l.as_str()));
            assert_eq!(format!("{l:<13}|").len(), 14);
        }
    }
}
