//! Step 3 of the order (in the reaper, pid 1 of the new pid namespace, before the target
//! forks): the mount view.
//!
//! `/` becomes recursively private; a tmpfs on `/tmp` (of this namespace only) becomes a
//! scratch root with the host's root under `/oldroot`; a second tmpfs, `/newroot`, receives
//! read-only binds of the read paths (`ro,nosuid,nodev`, recursive through `mount_setattr`;
//! the package manager's trees, only read, and a one-shot run's `/etc`, through a read-only
//! overlay instead: [`overlay`]),
//! read-write binds of the write paths (`nosuid,nodev`), then the masks ([`crate::view`]:
//! deny, hidden and protect rules and sockets, found by a walk of the view itself and placed
//! by descriptor; a read-only empty tmpfs of mode 000 on a directory, a bind of an empty
//! mode-000 file on anything else, a read-only clone of itself on a protected path), a fresh `/proc` of the new pid namespace (with `/proc/sys` and friends
//! read-only; for a [`crate::Zygote`], mounted by each call instead: [`per_call`](mod@per_call)), a minimal `/dev` (null zero full random urandom tty, a private devpts with
//! `ptmx`, `shm`), and a private `/tmp` unless `/tmp` is a write path. The new root is made
//! read-only, the old root is detached, and `pivot_root` moves in, like bubblewrap does.
//!
//! One file per stage, run top to bottom by [`build`]: [`scratch`] (the scratch root, and
//! the move into the view), [`binds`] (and [`overlay`]), [`masks`], [`proc`], [`dev`]; [`per_call`](mod@per_call) for a
//! zygote's calls; [`ahead`] for a one-shot run's reaper forked before its spec (its
//! `/proc` and most of its `/dev` made while it waits); [`paths`] makes mount points.

mod ahead;
mod binds;
mod dev;
mod links;
mod masks;
mod overlay;
mod paths;
mod per_call;
mod proc;
mod scratch;
mod view;

pub(crate) use ahead::{make as make_ahead, MadeAhead};
use paths::new_root;
pub(crate) use per_call::{per_call, resize as resize_per_call};
pub(crate) use view::MountView;

use crate::error::{MountError, MountStep};
use crate::layer::{Applied, LayerState};
use crate::spec::{PathPlan, TmpfsSize};

/// The mounts layer's detail without a mount namespace: what Landlock alone covers, and
/// what it does not ([`crate::landlock`] without a view).
pub(crate) const NO_VIEW: &str = "no mount namespace: the host's filesystem, Landlock only: the deny and protect globs' matches there at the start are covered, not those made later, and unix sockets outside the grants are reachable";

/// The state and detail of the `mounts` layer for `view`: a view whose masks are
/// incomplete is unavailable under strict enforcement (the run stops, 71, naming the path)
/// and partial otherwise (the run goes on and the report says what is missing).
pub(crate) fn layer(view: &MountView, strict: bool) -> Applied {
    match &view.masks_failed {
        Some(f) if strict => Applied::new(LayerState::Unavailable, f.clone()),
        Some(f) => Applied::new(LayerState::Partial, format!("{}; {f}", view.detail)),
        None if view.partial => Applied::new(LayerState::Partial, view.detail.clone()),
        None => Applied::new(LayerState::Enforced, view.detail.clone()),
    }
}

/// Enters the scratch root the view is built in (the host's root then at [`host_root`]),
/// in a helper forked ahead while it waits for its spec: it depends on none of it. Only
/// in a mount namespace of the helper's own. [`build`] is then given the outcome.
pub(crate) fn enter_scratch_ahead() -> std::io::Result<()> {
    scratch::enter()
}

/// Where the host's root is once the scratch root is entered.
pub(crate) fn host_root() -> &'static std::path::Path {
    paths::old_root()
}

/// Builds the view and moves into it. An error leaves the process in an unusable state:
/// the caller reports it and exits.
///
/// With `zygote`, the view is the one a [`crate::Zygote`] shares among its calls: no
/// /proc yet (see [`per_call`](mod@per_call)). `scratch`: how [`enter_scratch_ahead`] went, when this
/// process's helper entered the scratch root already; `ahead`: what this process (a
/// one-shot run's reaper forked ahead) made of `/proc` and `/dev` before its spec came
/// ([`make_ahead`]).
pub(crate) fn build(
    plan: &PathPlan,
    pty: bool,
    zygote: bool,
    tmp_size: TmpfsSize,
    scratch: Option<std::io::Result<()>>,
    ahead: Option<MadeAhead>,
) -> Result<MountView, MountError> {
    let MadeAhead { proc: proc_ahead, dev: dev_ahead, mountinfo } = ahead.unwrap_or_default();
    let mut view = MountView::default();
    let mut notes: Vec<String> = plan.notes.clone();
    // Everything is made in a scratch root, so no step resolves a path of the host's but
    // through /oldroot, and nothing of the scratch root stays once the view is entered.
    scratch.unwrap_or_else(scratch::enter).map_err(MountError::at(MountStep::ScratchRoot))?;
    let start = crate::timing::now_ns();
    let binds =
        binds::bind_all(plan, !zygote, tmp_size, mountinfo, &mut notes).map_err(MountError::at(MountStep::Binds))?;
    crate::timing::record("mounts: binds", start);
    view.private_tmp = binds.private_tmp;
    // Deny, hidden and protected paths and sockets, on the objects the child will see.
    let masks_summary = match crate::timing::time("mounts: view walk and masks", || {
        let mountinfo = binds.mountinfo.clone().unwrap_or_else(binds::read_mountinfo);
        masks::place(new_root(), plan, &binds.overlaid, &binds.overlay_devs, mountinfo.as_deref())
    }) {
        Ok(placed) => {
            let summary = placed.summary();
            notes.extend(placed.notes);
            summary
        }
        Err(e) => {
            let mut failed = format!("deny/protect masks incomplete: {e}");
            for why in &binds.not_overlaid {
                failed.push_str(&format!(" ({why})"));
            }
            view.masks_failed = Some(failed);
            view.partial = true;
            "masks incomplete".into()
        }
    };
    let start = crate::timing::now_ns();
    proc::mount_for(zygote, proc_ahead, &mut view, &mut notes).map_err(MountError::at(MountStep::Proc))?;
    crate::timing::record("mounts: /proc", start);
    let start = crate::timing::now_ns();
    dev::build(pty, tmp_size, dev_ahead, &mut view, &mut notes).map_err(MountError::at(MountStep::Dev))?;
    crate::timing::record("mounts: /dev", start);
    let start = crate::timing::now_ns();
    scratch::seal_and_enter().map_err(MountError::at(MountStep::Pivot))?;
    crate::timing::record("mounts: pivot_root, old root detached", start);
    view.detail = detail(&view, &binds, &masks_summary, zygote, tmp_size, &notes);
    Ok(view)
}

/// The `mounts` layer's detail for the view built.
fn detail(
    view: &MountView,
    binds: &binds::BindCounts,
    masks_summary: &str,
    zygote: bool,
    tmp_size: TmpfsSize,
    notes: &[String],
) -> String {
    let mut detail = format!(
        "new root: {} read-only, {} read-write binds{}, {masks_summary}, {}, minimal /dev, {}",
        binds.read_only,
        binds.writable,
        if binds.overlaid.is_empty() {
            String::new()
        } else {
            let trees: Vec<String> = binds.overlaid.iter().map(|p| p.display().to_string()).collect();
            format!(", read-only overlays (no host socket reachable) on {}", trees.join(" "))
        },
        if view.proc_ok {
            "fresh /proc"
        } else if zygote {
            "a fresh /proc per call"
        } else {
            "no /proc"
        },
        if view.private_tmp {
            format!("private /tmp and /dev/shm, tmpfs of {tmp_size} each")
        } else {
            format!("/tmp from the write paths, /dev/shm a tmpfs of {tmp_size}")
        }
    );
    if !notes.is_empty() {
        detail.push_str("; ");
        detail.push_str(&notes.join("; "));
    }
    detail
}
