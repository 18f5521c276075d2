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
//! | 5. the call's helper, forked ahead of its call (a spare, [`spare`]; two are kept ready): new pid, mount, ipc and cgroup namespaces; fork of the reaper | call helper | per call, before the call comes |
//! | 6. reaper (pid 1), ahead too: fresh `/proc` of the call's pid namespace, fresh `/tmp` (when private) and `/dev/shm` at the template's size | reaper | per call, before the call comes |
//! | 7. the reaper takes the `Spawn`: the call's stdio, into the cgroup (moving itself), the tmpfs resized if the call's limits differ, signal forwarding; the helper gets the call's socket and cgroup, creates the proxy listener on the call's own port, and tells the zygote to fork the next spare | reaper, call helper | per call |
//! | 8. target: Landlock, rlimits, capabilities, `no_new_privs`, seccomp, descriptors, release, `execve` | target | per call, exactly as [`crate::spawn`] |
//!
//! When no spare is there (its fork failed, or it was killed before a call), the zygote
//! reads the next `Spawn` itself and forks that call's helper, which then runs steps 5
//! to 8 in turn ([`call`]).
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
//! One `Spawn` message is read at a time from the zygote's control socket (concurrent
//! [`Zygote::spawn`] calls are separate datagrams, each taken by one of the spares); the call's helper then talks
//! to the caller on the call's own socket exactly as [`crate::spawn`]'s helper does, so the
//! returned [`Running`] behaves the same: parked before `execve` until [`Running::wait`],
//! the timeout kills the call's pid namespace, output captured and capped, a report per
//! call. If the zygote dies, [`Zygote::spawn`] fails; calls already started go on.

mod call;
mod client;
pub(crate) mod server;
mod spare;

pub use client::Zygote;
