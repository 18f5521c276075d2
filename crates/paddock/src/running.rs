//! The calls running at once against one `$STATE`, so that what one call's child made
//! cannot pass for the user's in another call. A call takes what is there at its start
//! as the user's (a literal `deny`/`protect` path that exists is not noted as absent; a
//! glob match that exists is not moved after the call): with two calls in the same
//! workspace, what the first call's child made before the second started (a `.git` with
//! its `config`, a `d/.envrc` in the middle of a rename) would be "the user's" to the
//! second, and the first, which may rename it away before it ends, finds nothing to
//! move. The second's child then renames it back, or makes its own in its place.
//!
//! So each call records, in `$STATE/running/PID-START-N.json` (0600, `O_NOFOLLOW`,
//! `O_EXCL`, in a directory of the user's no view holds), what it noted at its start: its
//! absent literal paths (with the identities [`crate::absent`] notes) and the glob matches
//! it took as the user's ([`crate::planted`]). A call's start then:
//! - notes, beside its own, every absent path a running call noted (what that call's
//!   child could have created is not the user's; it is settled by both calls);
//! - takes a glob match as the user's only if every running call whose scan covered it
//!   took it as the user's too, as the same object (path, and [`crate::identity::Identity`]:
//!   device, inode, type and birth time).
//!
//! - does not start (71) while what a running call noted as the user's and the view
//!   leaves as it is (a symlink a rule resolves through, a `.git` file, the directories on
//!   the way to them) is not that object now: its policy may have been compiled with it
//!   away, the rule resolved to the absent name and the user's file left open. That call
//!   makes it again when it ends. (The policy compiled with it away but started after that
//!   call ended is refused too: `FsRules::drift`, checked under the same lock.)
//!
//! Each call records the union and the intersection it ends up with, so a chain of
//! overlapping calls carries them on. The start's noting (reading the registry, both
//! scans, writing its own record) runs under an exclusive `flock` of
//! `$STATE/running/lock`: a call whose child could have changed what a start scan sees
//! is registered before that scan begins (it registered under the lock, before its
//! child ran), and its record stays until after its own settling. The lock is held for
//! the start's noting only, never while a child runs or a call settles. A record whose
//! process is gone (pid and start time) is stale: ignored and removed. A record that
//! cannot be read, of a live process, fails the call (it is not the user's to guess).
//!
//! Without a trusted `$STATE` (none, or one a write grant holds and no view hides) there
//! is no registry: each call stands alone, as before.
//!
//! Why not something simpler: holding one lock for a whole call would serialise every
//! call of a workspace (a `serve` session runs them at once); marking what a child
//! creates needs a view of its writes paddock does not have (no fanotify in a user
//! namespace). The registry costs a directory read and one small file per call.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use paddock_policy::Policy;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::absent::{self, AbsentPaths};
use crate::planted::{self, Planted};

/// What one running call noted at its start.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    absent: Vec<absent::Record>,
    globs: planted::Record,
}

/// The records this process wrote and has not removed, by name: another of its calls (a
/// `serve` session's run at once) takes them from here instead of reading and parsing
/// the file and `/proc/PID/stat` again. A record never changes once written; one of this
/// process that is not here (another start time, or not its own) is read from its file.
static OWN: Mutex<Vec<(String, Arc<Entry>)>> = Mutex::new(Vec::new());

fn own_record(name: &str) -> Option<Arc<Entry>> {
    let own = OWN.lock().unwrap_or_else(|e| e.into_inner());
    own.iter().find(|(n, _)| n == name).map(|(_, e)| Arc::clone(e))
}

/// The registry in `$STATE/running`, open.
pub(crate) struct Registry {
    dir: OwnedFd,
    path: PathBuf,
}

/// The registry locked for a call's start.
pub(crate) struct Locked<'a> {
    registry: &'a Registry,
    lock: OwnedFd,
}

/// This call's record: removed when dropped (after the call settled).
pub(crate) struct Registered {
    dir: OwnedFd,
    name: String,
}

/// Why a call's start was refused: the registry failed, or the user's state that the
/// rules resolve through is not the user's now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NoteError {
    /// The registry could not be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A symlink or `.git` file a `deny` or `protect` rule resolves through is not what
    /// the user had (a running call's child removed, replaced or moved it; that call makes
    /// it again when it ends), or the rules resolve otherwise now than when the policy
    /// was loaded: the view would mask or bind other objects than the user's rules name.
    #[error("{0}")]
    Unsettled(String),
}

/// Why the registry failed the call.
#[derive(Debug, thiserror::Error)]
#[error("the registry of running calls ({path}): {error}")]
pub(crate) struct RegistryError {
    path: String,
    error: String,
}

impl Registry {
    /// The registry in `$STATE/running` (`state`, resolved and checked) when `$STATE` is
    /// one no call can write (outside every write grant of `writes`, or under a path every
    /// view hides); `None` otherwise. An error when `$STATE` is trusted but the registry
    /// cannot be opened.
    pub(crate) fn open(
        policy: &Policy,
        writes: &[PathBuf],
        state: Option<&Path>,
    ) -> Result<Option<Registry>, RegistryError> {
        let Some(state) = state else {
            tracing::debug!("no state directory: no registry of running calls");
            return Ok(None);
        };
        let trusted =
            !writes.iter().any(|w| state.starts_with(w)) || policy.hidden_paths().iter().any(|h| state.starts_with(h));
        if !trusted {
            tracing::debug!(state = %state.display(), "the state directory is under a write grant: no registry of running calls");
            return Ok(None);
        }
        Registry::at(state.join("running")).map(Some)
    }

    /// The registry in directory `path` (made 0700 when absent).
    fn at(path: PathBuf) -> Result<Registry, RegistryError> {
        let err = |e: Errno| RegistryError { path: path.display().to_string(), error: e.to_string() };
        match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(err(e)),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = rustix::fs::open(&path, flags, Mode::empty()).map_err(err)?;
        Ok(Registry { dir, path })
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> RegistryError {
        RegistryError { path: self.path.display().to_string(), error: format!("{what}: {e}") }
    }

    /// Takes the lock for a call's start (blocks while another start holds it).
    pub(crate) fn lock(&self) -> Result<Locked<'_>, RegistryError> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let lock = rustix::fs::openat(&self.dir, "lock", flags, Mode::from_raw_mode(0o600))
            .map_err(|e| self.err("lock", e))?;
        loop {
            match rustix::fs::flock(&lock, FlockOperation::LockExclusive) {
                Err(Errno::INTR) => continue,
                r => break r.map_err(|e| self.err("lock", e))?,
            }
        }
        Ok(Locked { registry: self, lock })
    }
}

impl Locked<'_> {
    /// Merges what the running calls noted into this call's `absent` and `planted`
    /// (noted just now, under this lock; `writes`: this call's write grants), records
    /// the result for calls that start later, and lets the lock go.
    pub(crate) fn register(
        self,
        absent: &mut AbsentPaths,
        planted: &mut Planted,
        writes: &[PathBuf],
    ) -> Result<Registered, NoteError> {
        let t = std::time::Instant::now();
        let r = self.registry;
        let mut names = Vec::new();
        let dir = rustix::fs::Dir::read_from(&r.dir).map_err(|e| r.err("read", e))?;
        for entry in dir {
            let entry = entry.map_err(|e| r.err("read", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") {
                names.push(name);
            }
        }
        for name in names {
            let Some((pid, start)) = owner(&name) else {
                return Err(r.err(&name, "not a record of this registry").into());
            };
            // This process is alive: its own records need no look at `/proc`.
            let own = pid == std::process::id() && own_start().is_ok_and(|s| s == start);
            if !own && !alive(pid, start) {
                match rustix::fs::unlinkat(&r.dir, name.as_str(), rustix::fs::AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => tracing::warn!(name, error = %e, "a stale record of a running call could not be removed"),
                }
                continue;
            }
            let entry = match own.then(|| own_record(&name)).flatten() {
                Some(entry) => Ok(entry),
                None => read_entry(&r.dir, &name).map(Arc::new),
            };
            let entry = match entry {
                Ok(entry) => entry,
                // Removed since the listing: that call has settled (a record goes only after).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(r.err(&name, e).into()),
            };
            // What that call took as the user's and the view leaves as it is (a symlink
            // a rule resolves through, a `.git` file), changed since by its child: this
            // call's policy may have been resolved without it (its target unmasked,
            // unprotected). Refused rather than guessed; that call makes it again at its end.
            let unsettled = entry.absent.iter().find_map(absent::Record::unsettled).or_else(|| entry.globs.unsettled());
            if let Some((path, how)) = unsettled {
                return Err(NoteError::Unsettled(format!(
                    "{} {how} since the start of a call still running (pid {pid}), which took it as the user's: a deny or protect rule resolves through it, so this call's view could leave the file the user's rule names open; that call makes it again when it ends: run this call again then",
                    path.display()
                )));
            }
            absent.adopt(&entry.absent, writes);
            planted.restrict(&entry.globs);
        }
        static N: AtomicU64 = AtomicU64::new(0);
        let start = own_start().map_err(|e| r.err("own start time", e))?;
        let name = format!("{}-{start}-{}.json", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let entry = Entry { absent: absent.records(), globs: planted.record() };
        let bytes = serde_json::to_vec(&entry).map_err(|e| r.err(&name, e))?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&r.dir, name.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(|e| r.err(&name, e))?;
        let dir = rustix::io::dup(&r.dir).map_err(|e| r.err("dup", e))?;
        // From here on the record is removed on every way out.
        let registered = Registered { dir, name };
        std::fs::File::from(fd).write_all(&bytes).map_err(|e| r.err(&registered.name, e))?;
        OWN.lock().unwrap_or_else(|e| e.into_inner()).push((registered.name.clone(), Arc::new(entry)));
        drop(self.lock); // the lock goes with its descriptor
        tracing::debug!(elapsed_us = t.elapsed().as_micros() as u64, "registered among the running calls");
        Ok(registered)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        OWN.lock().unwrap_or_else(|e| e.into_inner()).retain(|(n, _)| *n != self.name);
        match rustix::fs::unlinkat(&self.dir, self.name.as_str(), rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => {
                tracing::warn!(name = %self.name, error = %e, "this call's record in the registry of running calls could not be removed")
            }
        }
    }
}

fn read_entry(dir: &OwnedFd, name: &str) -> io::Result<Entry> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd).read_to_end(&mut bytes)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The pid and start time in a record's name (`PID-START-N.json`).
fn owner(name: &str) -> Option<(u32, u64)> {
    let mut parts = name.strip_suffix(".json")?.split('-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some((pid, start))
}

/// A process's start time (field 22 of `/proc/PID/stat`, in clock ticks since boot):
/// with the pid, it names one process (a pid is reused, the pair is not). `None`: no
/// such process.
fn start_time(pid: u32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name, in parentheses, may hold anything: fields follow the last `)`.
    let start = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(19))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no start time")))?;
    Ok(Some(start))
}

fn own_start() -> io::Result<u64> {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if let Some(s) = START.get() {
        return Ok(*s);
    }
    let s = start_time(std::process::id())?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "/proc/self/stat: no such process"))?;
    Ok(*START.get_or_init(|| s))
}

/// Whether the process that wrote a record still runs (one that cannot be told counts
/// as running: its record is kept and honoured).
fn alive(pid: u32, start: u64) -> bool {
    match start_time(pid) {
        Ok(s) => s == Some(start),
        Err(e) => {
            tracing::debug!(pid, error = %e, "whether a call still runs cannot be told: taken as running");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;
    use std::path::Path;

    fn policy(ws: &Path) -> Policy {
        let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nprotect = [\"${WORKSPACE}/.mcp.json\", \"${WORKSPACE}/**/.envrc\"]\n";
        let vars = Vars { workspace: ws.to_path_buf(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", text, &vars).unwrap()
    }

    /// A temporary directory with an empty workspace `ws`, a policy for it and a registry.
    fn fixture() -> (tempfile::TempDir, std::path::PathBuf, Policy, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        let p = policy(&ws);
        let reg = Registry::at(dir.path().join("running")).unwrap();
        (dir, ws, p, reg)
    }

    /// A call's start: noted under the registry's lock, then registered.
    fn start(reg: &Registry, p: &Policy, ws: &Path) -> (AbsentPaths, Planted, Registered) {
        let locked = reg.lock().unwrap();
        let mut absent = AbsentPaths::before(p);
        let mut planted = Planted::before(p, &[ws.to_path_buf()], None);
        let r = locked.register(&mut absent, &mut planted, &[ws.to_path_buf()]).unwrap();
        (absent, planted, r)
    }

    #[test]
    fn what_a_running_call_made_is_not_the_users_to_a_call_that_starts_after() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join("mine")).unwrap();
        std::fs::write(ws.join("mine/.envrc"), "the user's").unwrap();
        let p = policy(&ws);
        let reg = Registry::at(dir.path().join("running")).unwrap();
        let (absent_a, planted_a, rec_a) = start(&reg, &p, &ws);
        // A's child makes both; B starts; A's child takes them away and A ends.
        std::fs::write(ws.join(".mcp.json"), "{}").unwrap();
        std::fs::create_dir(ws.join("d")).unwrap();
        std::fs::write(ws.join("d/x"), "planted").unwrap();
        std::fs::hard_link(ws.join("d/x"), ws.join("d/.envrc")).unwrap();
        let (absent_b, planted_b, rec_b) = start(&reg, &p, &ws);
        std::fs::rename(ws.join(".mcp.json"), ws.join("mcp-a")).unwrap();
        std::fs::remove_file(ws.join("d/.envrc")).unwrap();
        assert!(absent_a.settle().is_empty() && planted_a.settle().0.is_empty(), "A finds nothing");
        drop(rec_a);
        // B's child puts them back.
        std::fs::write(ws.join(".mcp.json"), "{}").unwrap();
        std::fs::hard_link(ws.join("d/x"), ws.join("d/.envrc")).unwrap();
        let mut moved: Vec<String> =
            absent_b.settle().into_iter().chain(planted_b.settle().0).map(|m| m.from).collect();
        moved.sort();
        let want = [ws.join(".mcp.json"), ws.join("d/.envrc")].map(|p| p.to_string_lossy().into_owned());
        assert_eq!(moved, want);
        assert_eq!(std::fs::read_to_string(ws.join("mine/.envrc")).unwrap(), "the user's");
        drop(rec_b);
        // Control: with no call running, what is there at the start is the user's.
        std::fs::write(ws.join(".mcp.json"), "{}").unwrap();
        let (absent_c, planted_c, _rec) = start(&reg, &p, &ws);
        assert!(absent_c.settle().is_empty() && planted_c.settle().0.is_empty());
    }

    /// A call that starts while a running call's child has the user's symlink under a rule
    /// away does not start; once that call settled (the symlink made again), it does.
    #[test]
    fn a_call_does_not_start_while_a_running_call_has_the_users_link_away() {
        let (_dir, ws, p, reg) = fixture();
        std::fs::write(ws.join("real.json"), "{}").unwrap();
        std::os::unix::fs::symlink("real.json", ws.join(".mcp.json")).unwrap();
        let (absent_a, _planted_a, rec_a) = start(&reg, &p, &ws);
        let (_, _, rec_b) = start(&reg, &p, &ws);
        drop(rec_b); // the link as it was: B starts
        std::fs::remove_file(ws.join(".mcp.json")).unwrap();
        let locked = reg.lock().unwrap();
        let (mut a, mut g) = (AbsentPaths::before(&p), Planted::before(&p, std::slice::from_ref(&ws), None));
        let e = locked.register(&mut a, &mut g, std::slice::from_ref(&ws)).err().expect("refused");
        assert!(matches!(e, NoteError::Unsettled(_)), "{e}");
        assert!(e.to_string().contains(&format!("{} is gone", ws.join(".mcp.json").display())), "{e}");
        // Made again by another object, same target: still not the user's.
        std::os::unix::fs::symlink("real.json", ws.join(".mcp.json")).unwrap();
        let locked = reg.lock().unwrap();
        let (mut a, mut g) = (AbsentPaths::before(&p), Planted::before(&p, std::slice::from_ref(&ws), None));
        assert!(locked.register(&mut a, &mut g, std::slice::from_ref(&ws)).is_err());
        // A settles (its symlink made again) and goes: B starts.
        std::fs::remove_file(ws.join(".mcp.json")).unwrap();
        assert_eq!(absent_a.settle().len(), 1);
        drop(rec_a);
        let (_, _, _rec) = start(&reg, &p, &ws);
    }

    /// Another call of this process takes this process's records from memory (neither the
    /// file nor `/proc` is read again), and a removed record is gone from there too.
    #[test]
    fn this_processs_records_are_read_from_memory() {
        let (dir, ws, p, reg) = fixture();
        let (_, _, rec_a) = start(&reg, &p, &ws);
        // Were the record read from its file, this would fail the next start.
        std::fs::write(dir.path().join("running").join(&rec_a.name), "not even json").unwrap();
        let (_, _, rec_b) = start(&reg, &p, &ws);
        let name_a = rec_a.name.clone();
        drop(rec_a);
        assert!(own_record(&name_a).is_none(), "A's record left memory with its file");
        assert!(own_record(&rec_b.name).is_some());
        drop(rec_b);
    }

    #[test]
    fn stale_records_are_removed_and_strange_ones_fail() {
        let (dir, ws, p, reg) = fixture();
        // A pid that cannot be (above pid_max), and this process with another start time.
        let stale = ["4194305-1-0.json".to_string(), format!("{}-1-0.json", std::process::id())];
        for s in &stale {
            std::fs::write(dir.path().join("running").join(s), "not even json").unwrap();
        }
        let (_, _, rec) = start(&reg, &p, &ws);
        for s in &stale {
            assert!(!dir.path().join("running").join(s).exists(), "{s} removed");
        }
        assert!(dir.path().join("running").join(&rec.name).exists());
        drop(rec);
        // A live process's record that cannot be read fails the start.
        let name = format!("{}-{}-999.json", std::process::id(), own_start().unwrap());
        std::fs::write(dir.path().join("running").join(&name), "not even json").unwrap();
        let locked = reg.lock().unwrap();
        let (mut a, mut g) = (AbsentPaths::before(&p), Planted::before(&p, std::slice::from_ref(&ws), None));
        let e = locked.register(&mut a, &mut g, std::slice::from_ref(&ws)).err().expect("refused");
        assert!(e.to_string().contains(&name), "{e}");
        assert_eq!(owner("strange.json"), None);
        assert_eq!(owner("12-34-5.json"), Some((12, 34)));
    }
}
