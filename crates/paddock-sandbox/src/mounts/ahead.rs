//! The parts of a one-shot run's view that depend on nothing of its spec, made by its
//! reaper forked ahead ([`crate::helper`]) while the caller still loads its policy: a
//! fresh `/proc` of the new pid namespace (only its pid 1 can mount that one) and `/dev`
//! (its `/dev/shm` of the size a spec without `max_memory` asks for, resized when the spec
//! asks for another), each in a directory of the scratch root. [`super::build`] then
//! moves them into the new root at the same point of the order as it would have mounted
//! them there (after the binds and masks, so nothing of those covers them), and a view
//! that never gets that far drops them with the scratch root. The namespace's mount table,
//! which the binds read to see which system trees have host mounts beneath them, is read
//! ahead too: the namespace's mounts are private, so nothing but this process changes it
//! from then on, and what it mounts ahead lies in the scratch root, beneath no tree.

use std::io;

use super::dev;
use super::paths::{dev_ahead as dev_dir, mkdir_one, proc_ahead as proc_dir};

/// What was made ahead, for [`super::build`] (`None`: not made ahead, made in place).
#[derive(Debug, Default)]
pub(crate) struct MadeAhead {
    /// The fresh `/proc` at [`super::paths::proc_ahead`] and what could not be made read-only in it.
    pub(super) proc: Option<io::Result<Vec<String>>>,
    /// `/dev` at [`super::paths::dev_ahead`], read-only, its `/dev/shm` of the default size.
    pub(super) dev: Option<io::Result<dev::Made>>,
    /// The namespace's `mountinfo` ([`super::binds::read_mountinfo`]), read after those.
    pub(super) mountinfo: Option<Option<Vec<u8>>>,
}

/// Makes `/proc`, then `/dev`, ahead, each only while `spec_came()` says the spec has not
/// come yet (once it has, what is left is made in place, as without this: waiting for
/// nothing is never slower); in the reaper (pid 1 of the new pid namespace), once the
/// scratch root is entered.
pub(crate) fn make(spec_came: impl Fn() -> bool) -> MadeAhead {
    let mut made = MadeAhead::default();
    if spec_came() {
        return made;
    }
    made.proc = Some(crate::timing::time("mounts: /proc, ahead", || {
        mkdir_one(proc_dir()).and_then(|()| {
            let mut notes = Vec::new();
            super::proc::mount_proc(proc_dir(), &mut notes).map(|()| notes)
        })
    }));
    if spec_came() {
        return made;
    }
    made.dev = Some(crate::timing::time("mounts: /dev, ahead", || dev::make_ahead(dev_dir())));
    if spec_came() {
        return made;
    }
    made.mountinfo = Some(crate::timing::time("mounts: mount table read, ahead", super::binds::read_mountinfo));
    made
}
