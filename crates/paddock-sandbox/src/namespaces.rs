//! Step 2 of the order (after `setsid`, before the reaper forks): new user, mount, pid, net,
//! ipc, uts and cgroup namespaces, in the helper.
//!
//! One `unshare(2)` for all of them; if that fails, each is tried on its own so the report
//! says exactly which one is missing. The user namespace maps the caller's own uid and gid
//! (`0 → 0` for root, `65534 → 65534` for nobody), with `setgroups` denied; as root the
//! supplementary groups are dropped first. Then, inside: hostname `paddock`, `lo` up, and,
//! in proxy mode, the TCP listener on `127.0.0.1:port` that is passed to the parent.
//! The pid namespace applies to the helper's children: the reaper is its pid 1.
//! A [`crate::Zygote`] enters [`ZYGOTE`] once and each of its calls [`PER_CALL`]. A
//! one-shot run's pid 1 forked ahead ([`crate::prestart`]) is cloned into [`CLONED`] (its
//! caller is not root, or holds no supplementary group to drop) and enters the others itself
//! ([`cloned_then_entered`]): there is no helper then.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;

use crate::layer::{Layer, LayerState};
use crate::report::EnforcementReport;
use crate::sys;

/// Which namespaces this process now lives in (pid: its children).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub cgroup: bool,
}

/// Every namespace layer, in the order of the report, with its `clone(2)` flag.
const ALL: &[(Layer, libc::c_int)] = &[
    (Layer::UserNs, libc::CLONE_NEWUSER),
    (Layer::MountNs, libc::CLONE_NEWNS),
    (Layer::PidNs, libc::CLONE_NEWPID),
    (Layer::NetNs, libc::CLONE_NEWNET),
    (Layer::IpcNs, libc::CLONE_NEWIPC),
    (Layer::UtsNs, libc::CLONE_NEWUTS),
    (Layer::CgroupNs, libc::CLONE_NEWCGROUP),
];

/// The helper is single-threaded, as `CLONE_NEWUSER` needs.
fn unshare(flags: libc::c_int) -> io::Result<()> {
    sys::unshare(flags)
}

/// Enters the namespaces and records each in `report`.
pub(crate) fn enter(report: &mut EnforcementReport) -> Namespaces {
    enter_only(report, &[])
}

/// The namespaces a zygote ([`crate::Zygote`]) enters once for all its calls.
pub(crate) const ZYGOTE: &[Layer] = &[Layer::UserNs, Layer::MountNs, Layer::NetNs, Layer::IpcNs, Layer::UtsNs];
/// The namespaces each call of a zygote gets of its own (inside the zygote's user
/// namespace): pid (and so a fresh `/proc`, hence mount), ipc (SysV IPC needs no
/// privilege) and cgroup.
pub(crate) const PER_CALL: &[Layer] = &[Layer::PidNs, Layer::MountNs, Layer::IpcNs, Layer::CgroupNs];

/// Enters the namespaces named in `only` (all of them when empty) and records each.
pub(crate) fn enter_only(report: &mut EnforcementReport, only: &[Layer]) -> Namespaces {
    let (uid, gid) = sys::ids();
    enter_after(report, only, &[], uid, gid)
}

/// What a one-shot run's pid 1 forked ahead is cloned into ([`crate::prestart`],
/// [`crate::sys::fork_into`] with [`flags_of`]): its user namespace, and the pid
/// namespace it is pid 1 of. The caller's clone makes them; the other namespaces, whose
/// making costs more (the network namespace's above all), the pid 1 enters itself
/// ([`cloned_then_entered`]), beside the caller's own work.
pub(crate) const CLONED: &[Layer] = &[Layer::UserNs, Layer::PidNs];

/// In a process cloned into [`CLONED`] by a caller whose ids were `uid` and `gid` (inside,
/// until the maps are written, they read as the overflow ids), not root or root without
/// supplementary groups ([`crate::sys::no_supplementary_groups`]; a user other than root
/// keeps its groups either way): enters the other
/// namespaces, writes the id maps, and records each, as [`enter_only`] does.
pub(crate) fn cloned_then_entered(report: &mut EnforcementReport, uid: libc::uid_t, gid: libc::gid_t) -> Namespaces {
    enter_after(report, &[], CLONED, uid, gid)
}

/// [`enter_only`], where the namespaces of `cloned` are already this process's (from its
/// clone): the others are unshared, then each is set up inside and recorded, in the
/// report's order.
fn enter_after(
    report: &mut EnforcementReport,
    only: &[Layer],
    cloned: &[Layer],
    uid: libc::uid_t,
    gid: libc::gid_t,
) -> Namespaces {
    let wanted: Vec<(Layer, libc::c_int)> =
        ALL.iter().copied().filter(|(n, _)| only.is_empty() || only.contains(n)).collect();
    let mut groups_note = String::new();
    if uid == 0 && wanted.iter().any(|(n, _)| *n == Layer::UserNs) {
        if cloned.contains(&Layer::UserNs) {
            groups_note = ", no supplementary groups".into();
        } else if sys::drop_supplementary_groups() {
            groups_note = ", supplementary groups dropped".into();
        }
    }
    let to_enter: Vec<(Layer, libc::c_int)> = wanted.iter().copied().filter(|(n, _)| !cloned.contains(n)).collect();
    let all = to_enter.iter().fold(0, |acc, (_, f)| acc | f);
    let mut ok: Vec<(Layer, Result<(), io::Error>)> = Vec::new();
    match unshare(all) {
        Ok(()) => ok.extend(to_enter.iter().map(|(n, _)| (*n, Ok(())))),
        Err(e) => {
            tracing::debug!("unshare of all namespaces failed ({e}); trying one by one");
            for (name, flag) in &to_enter {
                ok.push((*name, unshare(*flag)));
            }
        }
    }
    ok.extend(cloned.iter().filter(|n| wanted.iter().any(|(w, _)| w == *n)).map(|n| (*n, Ok(()))));
    // In the report's order (the user namespace's maps first).
    ok.sort_by_key(|(n, _)| ALL.iter().position(|(a, _)| a == n));
    let has = |n: Layer| ok.iter().any(|(m, r)| *m == n && r.is_ok());
    let mut ns = Namespaces {
        user: has(Layer::UserNs),
        mount: has(Layer::MountNs),
        pid: has(Layer::PidNs),
        cgroup: has(Layer::CgroupNs),
    };
    for (name, r) in &ok {
        let (state, detail) = match r {
            Err(e) => (LayerState::Unavailable, unshare_failed(*name, e)),
            Ok(()) => entered(*name, uid, gid, &groups_note, &mut ns),
        };
        report.set(*name, state, detail);
    }
    ns
}

/// The `CLONE_NEW*` flags of the namespaces named in `only`.
pub(crate) fn flags_of(only: &[Layer]) -> libc::c_int {
    ALL.iter().filter(|(n, _)| only.contains(n)).fold(0, |acc, (_, f)| acc | f)
}

/// Records the namespaces named in `only` as entered: this process was forked into them
/// ([`crate::sys::fork_into`] with [`flags_of`]). None of them is a user namespace.
pub(crate) fn forked_into(report: &mut EnforcementReport, only: &[Layer]) -> Namespaces {
    let (uid, gid) = sys::ids();
    let mut ns = Namespaces {
        user: false,
        mount: only.contains(&Layer::MountNs),
        pid: only.contains(&Layer::PidNs),
        cgroup: only.contains(&Layer::CgroupNs),
    };
    for name in ALL.iter().map(|(n, _)| *n).filter(|n| only.contains(n) && *n != Layer::UserNs) {
        let (state, detail) = entered(name, uid, gid, "", &mut ns);
        report.set(name, state, detail);
    }
    ns
}

/// Why `unshare` of `name` failed, with the likely cause when there is one.
fn unshare_failed(name: Layer, e: &io::Error) -> String {
    if name == Layer::UserNs && e.raw_os_error() == Some(libc::EINVAL) && sys::thread_count().is_some_and(|n| n > 1) {
        return format!("unshare failed: {e}: the helper process is multi-threaded; call paddock_sandbox::helper_main_if_requested() first in main, before any thread starts (not inside #[tokio::main])");
    }
    format!("unshare failed: {e}")
}

/// What the new namespace `name` holds once set up inside (id maps, `lo`, hostname).
fn entered(
    name: Layer,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups_note: &str,
    ns: &mut Namespaces,
) -> (LayerState, String) {
    match name {
        Layer::UserNs => match map_ids(uid, gid) {
            Ok(()) => (
                LayerState::Enforced,
                format!("uid {uid} and gid {gid} mapped to themselves, setgroups denied{groups_note}"),
            ),
            Err(e) => {
                ns.user = false;
                (LayerState::Unavailable, format!("writing the id maps failed: {e}"))
            }
        },
        Layer::PidNs => (LayerState::Enforced, "the reaper is pid 1, the command pid 2".into()),
        Layer::NetNs => match loopback_up() {
            Ok(()) => (LayerState::Enforced, "only lo, up".into()),
            Err(e) => (LayerState::Partial, format!("only lo, which could not be brought up: {e}")),
        },
        Layer::UtsNs => {
            let host = match rustix::system::sethostname(b"paddock") {
                Ok(()) => "hostname paddock",
                Err(_) => "hostname unchanged",
            };
            (LayerState::Enforced, host.into())
        }
        _ => (LayerState::Enforced, "new namespace".into()),
    }
}

fn map_ids(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    match fs::write("/proc/self/setgroups", "deny") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))
}

fn inet_dgram_socket() -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, None)?)
}

/// `ip link set lo up`.
fn loopback_up() -> io::Result<()> {
    use std::os::fd::AsFd;
    let sock = inet_dgram_socket()?;
    sys::set_link_up(sock.as_fd(), c"lo")
}

/// A listening TCP socket on `127.0.0.1:port` in this (the child's) network namespace.
pub(crate) fn proxy_listener(port: u16) -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let sock = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    rustix::net::sockopt::set_socket_reuseaddr(&sock, true)?;
    rustix::net::bind(&sock, &std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port))?;
    rustix::net::listen(&sock, 128)?;
    Ok(sock)
}
