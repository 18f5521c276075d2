//! A zygote: the namespaces and mount view of one filesystem/network template, set up
//! once, from which each call forks a confined child (a session's calls cost little more
//! than a fork and `execve`).
//!
//! Order of application, split between the zygote (once) and each call:
//!
//! | step | where | once / per call |
//! |------|-------|-----------------|
//! | 1. `setsid` | zygote | once |
//! | 2. user, mount, net, ipc, uts namespaces; `lo` up | zygote | once |
//! | 3. mount view of the template (binds, deny masks, minimal /dev, private /tmp, `pivot_root`); the host's /proc stays bound beneath an empty tmpfs on `/proc`, since a user namespace may mount a proc only where one is fully visible | zygote | once |
//! | 4. cgroup made by the caller (its descriptors passed in; the call's helper removes it once the pid namespace is gone, the caller if that helper died) | caller | per call |
//! | 5. fork of the call's helper; new pid, mount, ipc and cgroup namespaces; proxy listener on the call's own port | call helper | per call |
//! | 6. reaper (pid 1): into the cgroup; fresh `/proc` of the call's pid namespace, fresh `/tmp` (when private) and `/dev/shm`; signal forwarding | reaper | per call |
//! | 7. target: Landlock, rlimits, capabilities, `no_new_privs`, seccomp, descriptors, release, `execve` | target | per call, exactly as [`crate::spawn`] |
//!
//! What a zygote's calls share: the filesystem view (so the deny, protect and hidden masks
//! and the masked sockets are those of the zygote's start: a file created later beneath a deny glob is not masked
//! until the next zygote; Landlock still applies the paths' rights per call), the network
//! namespace (`lo` only; Landlock limits each call's TCP to its own proxy port and scopes
//! its abstract unix sockets, both required of a strict call, so ABI ≥ 6; but UDP on `lo`,
//! and under best-effort below ABI 6 abstract unix sockets, can reach a concurrent call),
//! the uts namespace and the user namespace (the caller's uid, mapped to itself).
//! Each call has its own pid namespace and `/proc`, its own SysV IPC, `/tmp` (when the
//! view's is private) and `/dev/shm`, its own cgroup, Landlock domain and seccomp filter.
//!
//! The zygote reads one `Spawn` message at a time from its control socket (concurrent
//! [`Zygote::spawn`] calls are separate datagrams) and forks; the call's helper then talks
//! to the caller on the call's own socket exactly as [`crate::spawn`]'s helper does, so the
//! returned [`Running`] behaves the same: parked before `execve` until [`Running::wait`],
//! the timeout kills the call's pid namespace, output captured and capped, a report per
//! call. If the zygote dies, [`Zygote::spawn`] fails; calls already started go on.

mod client;
pub(crate) mod server;

pub use client::Zygote;
