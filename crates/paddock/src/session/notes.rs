//! What a call's start notes about the deny and protect rules' ways, kept for the next
//! calls of a session's zygote while nothing on those ways changed.
//!
//! Before its child runs, every call notes the literal rule paths that are absent (or
//! symlinks, or `.git` files) where it can write ([`crate::absent`]), and after the running
//! calls' notes, checks that the rules still resolve as when the policy was compiled
//! ([`paddock_policy::FsRules::drift`]). Both only look things up: each is a function of
//! the paths it looked at. So a start that found no drift keeps its notes and the paths
//! both looked at, and a [`PathsWatch`] on them (each path not followed, every directory
//! above it, the mount table) says when any may have changed. A later call takes the kept
//! notes instead of looking again while the watch said nothing since they were taken, and
//! skips the drift check while it still says nothing after that call's registry notes.
//!
//! The order of the checks is kept: the watch is read before the notes are taken and again
//! where the drift check was, after the running calls' notes. Notes are kept only when the
//! watch was on every path before they were looked up (a path first watched now vouches
//! for the next start), and only when nothing happened meanwhile: every reading of the
//! watch that saw something, and every keeping that added a watch, moves a generation on;
//! a start keeps its notes only if the generation is the one it began in, and notes are
//! taken only under the generation they were kept in. A watch that cannot vouch (a rule's way on a network or
//! FUSE filesystem, a directory this process may search but not read, an encrypted or
//! case-insensitive directory, the inotify limits reached) ends the keeping: every call
//! looks again, as without a zygote. What inotify does not report is taken from the kept
//! notes until something else changes: a file written through a shared memory mapping or
//! by Linux AIO (the view keeps the `.git` files read here read-only to calls), and a link
//! count changed by a hard link made elsewhere to a file this process cannot read
//! ([`PathsWatch`]'s docs).

use std::path::PathBuf;
use std::sync::Mutex;

use paddock_sandbox::PathsWatch;

use crate::absent::AbsentPaths;

/// The notes of one zygote's calls (its policy's rules).
#[derive(Debug, Default)]
pub(super) struct KeptNotes {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Started with the first start that has notes to keep.
    watch: Option<PathsWatch>,
    /// The watch could not vouch: nothing is kept any more.
    off: bool,
    /// Moved on by each reading of the watch that saw something, and by each keeping that
    /// added a watch.
    generation: u64,
    /// The notes, and the generation they were kept in.
    kept: Option<(u64, AbsentPaths)>,
}

/// What [`KeptNotes::begin`] found.
pub(super) struct Begun {
    /// The generation now.
    pub generation: u64,
    /// The kept notes, when nothing happened since they were taken.
    pub notes: Option<AbsentPaths>,
}

impl State {
    /// Reads the watch: the generation moves on when it saw something.
    fn read(&mut self) {
        if let Some(w) = &mut self.watch {
            if !w.quiet() {
                self.generation += 1;
            }
        }
    }
}

impl KeptNotes {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At a start, before its notes: the kept ones when nothing on their ways changed since
    /// they were taken. `None`: nothing is kept any more (look every time).
    pub(super) fn begin(&self) -> Option<Begun> {
        let mut s = self.lock();
        if s.off {
            return None;
        }
        s.read();
        let generation = s.generation;
        let notes = match &s.kept {
            Some((g, notes)) if *g == generation => Some(notes.clone()),
            _ => None,
        };
        Some(Begun { generation, notes })
    }

    /// After the running calls' notes, where the drift check was: whether still nothing
    /// changed since `begun`'s generation.
    pub(super) fn still(&self, generation: u64) -> bool {
        let mut s = self.lock();
        s.read();
        !s.off && s.generation == generation
    }

    /// Keeps `notes`, taken in `generation` and followed by a drift check that found none,
    /// `looked` being every path the two looked at: only when each was watched before
    /// they were looked up, and nothing happened since.
    pub(super) fn keep(&self, generation: u64, notes: AbsentPaths, looked: &[PathBuf]) {
        let mut s = self.lock();
        if s.off {
            return;
        }
        if s.watch.is_none() {
            match PathsWatch::new() {
                Ok(w) => s.watch = Some(w),
                Err(e) => return s.stop(&e),
            }
        }
        let Some(w) = &mut s.watch else { return };
        match w.add(looked.iter().map(PathBuf::as_path)) {
            Ok(true) => {
                s.read();
                if s.generation == generation {
                    s.kept = Some((generation, notes));
                }
            }
            // Watched from now on: the next start's notes are kept, not those of a start
            // that looked before (found by an attack: two starts at once, the first to keep
            // adding the watches, the second keeping what it saw before they were on).
            Ok(false) => {
                s.generation += 1;
                s.kept = None;
            }
            Err(e) => s.stop(&e),
        }
    }
}

impl State {
    fn stop(&mut self, why: &std::io::Error) {
        tracing::debug!(%why, "a call's notes of the rules' ways are not kept: each call looks again");
        self.off = true;
        self.kept = None;
        self.watch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_kept_from_a_start_whose_paths_were_watched_and_taken_while_nothing_changed() {
        let _mounts = crate::HOST_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        let looked = [p.clone()];
        let k = KeptNotes::default();
        let taken = |k: &KeptNotes| k.begin().expect("keeping is on").notes.is_some();
        // Watched from now on only: not kept.
        let b = k.begin().unwrap();
        assert!(b.notes.is_none());
        k.keep(b.generation, AbsentPaths::default(), &looked);
        assert!(!taken(&k), "its paths were not watched while it looked");
        let b = k.begin().unwrap();
        k.keep(b.generation, AbsentPaths::default(), &looked);
        let b = k.begin().unwrap();
        assert!(b.notes.is_some(), "kept");
        assert!(k.still(b.generation));
        // A change after they were taken: not taken, and not still.
        std::fs::write(&p, "").unwrap();
        assert!(!k.still(b.generation));
        assert!(!taken(&k));
        // The object there now is watched from now on; a change between a start's look and
        // its keeping: not kept.
        let b = k.begin().unwrap();
        k.keep(b.generation, AbsentPaths::default(), &looked);
        let b = k.begin().unwrap();
        std::fs::write(&p, "changed").unwrap();
        k.keep(b.generation, AbsentPaths::default(), &looked);
        assert!(!taken(&k), "changed while it looked");
        let b = k.begin().unwrap();
        k.keep(b.generation, AbsentPaths::default(), &looked);
        assert!(taken(&k), "kept again once nothing changed");
        // Two starts at once: the first to keep adds a path's watch; the second looked
        // before it was on.
        let more = [p.clone(), dir.path().join("y")];
        let (first, second) = (k.begin().unwrap(), k.begin().unwrap());
        k.keep(first.generation, AbsentPaths::default(), &more);
        k.keep(second.generation, AbsentPaths::default(), &more);
        assert!(!taken(&k), "not kept from a look made before its paths were watched");
    }
}
