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
//! | 4. cgroup made by the caller (its descriptors passed in; the caller removes it once the call's pid 1 has ended) | caller | per call |
//! | 5. the call's pid 1, forked ahead of its call straight into new pid, mount, ipc and cgroup namespaces (a spare, [`spare`]; two are kept ready) | spare | per call, before the call comes |
//! | 6. the spare, ahead too: fresh `/proc` of the call's pid namespace, fresh `/tmp` (when private) and `/dev/shm` at the template's size; the Landlock ruleset | spare | per call, before the call comes |
//! | 7. the spare takes the `Spawn`: the call's stdio; its own pidfd to the caller (it is the call's helper and reaper at once; the caller's end of the call's socket closing ends it), the proxy listener on the call's own port; the zygote told to fork the next spare; into the cgroup (moving itself), the tmpfs resized if the call's limits differ, signal forwarding | spare (the reaper) | per call |
//! | 8. target: Landlock, rlimits, capabilities, `no_new_privs`, seccomp, descriptors, release, `execve` | target | per call, exactly as [`crate::spawn`] |
//!
//! When no spare is there (the kernel refused the spare's `clone`, or the spares were
//! killed before a call), the zygote reads the next `Spawn` itself and forks that call's
//! helper, which enters the call's namespaces, forks the reaper and waits for it, as
//! [`crate::spawn`]'s helper does ([`call`]).
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
//! A call's caller may record the call while it is set up: [`Zygote::spawn_meanwhile`]
//! gives it the report the call is expected to start with (the last report of a call of
//! the same shape, with this call's cgroup status; [`expect`]), and the caller lets the
//! call run only if [`Running::report`](crate::Running::report) is that report. A call
//! that reported otherwise turns the zygote's expectations off.
//!
//! One `Spawn` message is read at a time from the zygote's control socket (concurrent
//! [`Zygote::spawn`] calls are separate datagrams, each taken by one of the spares); the
//! call's side then talks to the caller on the call's own socket as [`crate::spawn`]'s
//! helper does, so the returned [`Running`](crate::Running) behaves the same: parked
//! before `execve` until [`Running::wait`](crate::Running::wait), the timeout kills the
//! call's pid namespace, output captured and capped, a report per call. If the zygote
//! dies, [`Zygote::spawn`] fails; calls already started go on.

mod call;
mod client;
mod expect;
pub(crate) mod server;
mod spare;

pub use client::Zygote;
