//! Deny masks, protected paths, hidden paths and sockets of the mount view (part of step 3,
//! in [`crate::mounts::build`] once the binds are in place under `/newroot` and before
//! `pivot_root`).
//!
//! The rules travel as rules ([`crate::SandboxSpec::deny_globs`], `protect_globs`,
//! `deny_paths`, `hidden_paths`), not as expanded paths: they are expanded here, on the very
//! objects the child will see, by one walk of every bind of the view ([`walk`]):
//!
//! 1. [`plan`] (pure) compiles the rules and names the roots: every outermost bind (a
//!    system tree mounted through an overlay only beneath the rules' prefixes: no host
//!    socket is reachable through an overlay);
//! 2. [`walk`] reads each directory relative to its parent's descriptor, never following a
//!    symlink, checks each listing is a consistent snapshot, opens every match `O_PATH`
//!    relative to its parent, and finds every socket by its file type;
//! 3. [`mask`] places a mask (deny, hidden, socket) or a read-only bind (protect) on that
//!    descriptor with `open_tree`/`move_mount`: a rename after the open moves the mask along;
//! 4. then, deepest first, every directory between a write grant and a match whose name the
//!    match depends on ([`plan::Rules::pins`]) is bound onto itself: a mount point, it cannot
//!    be renamed or removed, so a later call, the host and paddock find the match under the
//!    path its rule names (a masked or protected object is a mount point already).
//!
//! Complete or nothing: there is no cap; a directory that cannot be listed (while the child
//! could still reach into it), a listing that never holds still, or a mask that cannot be
//! placed (the kernel's `fs.mount-max` included) is a [`ViewError`], and the view is not
//! used under strict enforcement.

pub(crate) mod cache;

mod keeper;
pub(crate) mod mask;
pub(crate) mod mountinfo;
pub(crate) mod paths_watch;
pub(crate) mod plan;
pub(crate) mod stamp;
pub(crate) mod walk;
mod watch;

use std::io;
use std::path::PathBuf;

pub(crate) use mask::MaskStep;

/// Why the view's masks could not be completed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ViewError {
    /// A deny or protect glob does not compile.
    #[error(transparent)]
    Glob(#[from] plan::BadGlob),
    /// The view's root could not be opened.
    #[error("/newroot: {0}")]
    Root(io::Error),
    /// A directory the child could reach into could not be listed.
    #[error(
        "{}: cannot list the directory ({source}), so what it holds cannot be masked; make it readable (`chmod u+r`, by its owner) or deny it whole in the policy (`[filesystem] deny`)",
        path.display()
    )]
    ReadDir {
        /// The directory, as the child sees it.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// An entry could not be opened.
    #[error("{}: cannot open ({source})", path.display())]
    Open {
        /// The entry, as the child sees it.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// A directory kept changing while it was read, or entries kept moving.
    #[error("{}: kept changing while the view was walked ({tries} tries)", path.display())]
    Unstable {
        /// The directory or entry.
        path: PathBuf,
        /// How many times it was tried.
        tries: usize,
    },
    /// A mask could not be placed.
    #[error("{}: masking failed at {step}: {source}", path.display())]
    Mask {
        /// The object, as the child sees it.
        path: PathBuf,
        /// The step.
        step: MaskStep,
        /// The errno.
        source: io::Error,
    },
    /// The kernel's limit of mounts per namespace was reached.
    #[error("{}: no more masks can be placed after {placed}: the kernel's limit of mounts per namespace (fs.mount-max) is reached", path.display())]
    MountLimit {
        /// The object that could not be masked.
        path: PathBuf,
        /// Masks placed before.
        placed: usize,
    },
}

/// What the walk placed, for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Masks on deny and hidden matches.
    pub masks: usize,
    /// Read-only binds on protect matches.
    pub protects: usize,
    /// Masks on sockets (that no deny rule matched).
    pub sockets: usize,
    /// Directories pinned (bound onto themselves: not renamable) on the way to a match.
    pub pins: usize,
    /// How long the pins took (part of `elapsed`).
    pub pins_elapsed: std::time::Duration,
    /// Entries visited.
    pub entries: usize,
    /// Walks (more than one when entries moved during a walk).
    pub walks: usize,
    /// Directories whose cached listing was still exact.
    pub cached: usize,
    /// How long the walk and the masks took.
    pub elapsed: std::time::Duration,
    /// What was left alone and why (unreachable directories, symlinks matched by a deny).
    pub notes: Vec<String>,
}

impl Placed {
    /// One line for the report.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} deny masks, {} protected read-only, {} sockets hidden, {} directories pinned in {} µs ({} entries walked, {} directories from the cache, in {:.1} ms{})",
            self.masks,
            self.protects,
            self.sockets,
            self.pins,
            self.pins_elapsed.as_micros(),
            self.entries,
            self.cached,
            self.elapsed.as_secs_f64() * 1000.0,
            if self.walks > 1 { format!(", {} walks", self.walks) } else { String::new() }
        )
    }
}
