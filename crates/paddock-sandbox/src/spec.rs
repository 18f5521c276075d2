//! What to run and how to confine it: [`SandboxSpec`] and its parts.
//!
//! The spec is built by the caller (the supervisor, from a compiled policy), travels to the
//! helper as JSON over an inherited pipe, and is read by every later step. This module also
//! computes the [`PathPlan`], the one view of the filesystem rules that both the mount view
//! and Landlock apply, so the two layers can never disagree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// Exec supervision of one call ([`SandboxSpec::exec`]; the supervisor is
/// [`crate::supervise`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecControl {
    /// `None`: any program the view holds may run (each exec is still seen and decided by
    /// the supervisor). `Some`: Landlock grants execute on these files only (absolute
    /// paths in the view: the allowed programs, their interpreters, the dynamic loader);
    /// read and write grants carry no execute right.
    pub programs: Option<Vec<PathBuf>>,
}

/// Everything the sandbox needs to start and confine one child process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Absolute path of the program, already resolved by the caller.
    pub program: PathBuf,
    /// Arguments, `argv[0]` first (as the user typed it).
    pub argv: Vec<String>,
    /// Absolute working directory; the same path inside the sandbox.
    pub cwd: PathBuf,
    /// The device and inode `cwd` had when the call was decided: the child starts only
    /// in that very directory (a path a call could have re-pointed meanwhile, through a
    /// symlink or a rename, fails the start instead). `None`: not checked.
    #[serde(default)]
    pub cwd_identity: Option<(u64, u64)>,
    /// The complete environment of the child: nothing else is inherited.
    pub env: Vec<(String, String)>,
    /// Absolute, normalised paths the child may read and execute (recursive).
    /// A path that does not exist is skipped and noted in the report.
    pub read_paths: Vec<PathBuf>,
    /// Absolute, normalised paths the child may read and write (recursive).
    pub write_paths: Vec<PathBuf>,
    /// Literal paths to mask, with everything beneath them; they beat read and write.
    /// A path that is not in the view is skipped.
    pub deny_paths: Vec<PathBuf>,
    /// Absolute globs (`*` within a component, `**` across, `\` escapes) whose matches
    /// are masked, with everything beneath them, in the view at start. Expanded by the
    /// sandbox itself on the objects the child sees, completely, or the run fails closed.
    #[serde(default)]
    pub deny_globs: Vec<String>,
    /// Absolute globs whose matches, as they exist at start, are bound read-only (with
    /// everything beneath them) in the child's view, even under a write path.
    #[serde(default)]
    pub protect_globs: Vec<String>,
    /// A file (host path, in a directory of paddock's own that no view holds) where the
    /// sandbox keeps the listings of the directories it walked, so later starts read only
    /// the directories that changed. `None`: no cache. The file is masked in the view too.
    #[serde(default)]
    pub view_cache: Option<PathBuf>,
    /// Paths masked whatever read and write grant: paddock's own state (the audit log,
    /// revocations, the API token, a serve socket).
    pub hidden_paths: Vec<PathBuf>,
    /// What to do when a layer is unavailable.
    pub enforcement: Enforcement,
    /// The child's network.
    pub network: NetworkMode,
    /// Resource limits.
    pub limits: Limits,
    /// How standard input, output and error reach the child.
    pub stdio: StdioMode,
    /// Exec supervision (issue 16): every `execve`/`execveat` of the tree waits for the
    /// caller's supervisor ([`crate::Running::take_exec_listener`], [`crate::supervise`]);
    /// `None`: execs are not seen.
    #[serde(default)]
    pub exec: Option<ExecControl>,
}

impl SandboxSpec {
    /// The spec as the helper side gets it: without the bytes of a captured stdin, which
    /// the caller writes itself.
    pub(crate) fn for_helper(&self) -> SandboxSpec {
        let mut spec = self.clone();
        if let StdioMode::Capture { stdin } = &mut spec.stdio {
            *stdin = None;
        }
        spec
    }

    /// A strict spec that runs `program` with `argv` in `/`, with an empty environment, no
    /// filesystem access, no network, no limits and inherited standard input.
    pub fn new(program: impl Into<PathBuf>, argv: Vec<String>) -> Self {
        SandboxSpec {
            program: program.into(),
            argv,
            cwd: PathBuf::from("/"),
            cwd_identity: None,
            env: Vec::new(),
            read_paths: Vec::new(),
            write_paths: Vec::new(),
            deny_paths: Vec::new(),
            deny_globs: Vec::new(),
            protect_globs: Vec::new(),
            view_cache: None,
            hidden_paths: Vec::new(),
            enforcement: Enforcement::Strict,
            network: NetworkMode::None,
            limits: Limits::default(),
            stdio: StdioMode::Inherit,
            exec: None,
        }
    }

    /// Checks what the sandbox relies on: absolute paths, no NUL bytes, well-formed
    /// environment names, a non-empty argv.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |what: String| Err(SandboxError::InvalidSpec(what));
        if !self.program.is_absolute() {
            return bad(format!("program {:?} must be an absolute path", self.program));
        }
        if !self.cwd.is_absolute() {
            return bad(format!("cwd {:?} must be an absolute path", self.cwd));
        }
        if self.argv.is_empty() {
            return bad("argv must hold at least argv[0]".into());
        }
        for p in self
            .read_paths
            .iter()
            .chain(&self.write_paths)
            .chain(&self.deny_paths)
            .chain(&self.hidden_paths)
            .chain(&self.view_cache)
        {
            if !p.is_absolute() {
                return bad(format!("path {p:?} must be absolute"));
            }
        }
        for g in self.deny_globs.iter().chain(&self.protect_globs) {
            if !g.starts_with('/') || g.contains('\0') {
                return bad(format!("glob {g:?} must be absolute, without NUL bytes"));
            }
        }
        let has_nul = |s: &[u8]| s.contains(&0);
        use std::os::unix::ffi::OsStrExt;
        if has_nul(self.program.as_os_str().as_bytes())
            || has_nul(self.cwd.as_os_str().as_bytes())
            || self.argv.iter().any(|a| has_nul(a.as_bytes()))
        {
            return bad("program, cwd and argv must not contain NUL bytes".into());
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || has_nul(k.as_bytes()) || has_nul(v.as_bytes()) {
                return bad(format!("environment variable name {k:?} is not valid"));
            }
        }
        if let NetworkMode::Proxy { port: 0 } = self.network {
            return bad("proxy port must not be 0".into());
        }
        Ok(())
    }
}

/// What happens when a confinement layer is unavailable on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Enforcement {
    /// Refuse to run ([`SandboxError::LayerUnavailable`], the CLI exits 71).
    #[default]
    Strict,
    /// Run anyway and record what was missing in the report.
    BestEffort,
}

/// The child's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A network namespace with only `lo` (up) and nothing listening; Landlock (ABI ≥ 4)
    /// also denies every TCP bind and connect.
    #[default]
    None,
    /// As `None`, plus a TCP listener on `127.0.0.1:port` inside the namespace, handed to
    /// the caller ([`crate::Running::take_proxy_listener`]); TCP connect is allowed to that
    /// port only.
    Proxy {
        /// The port the proxy listens on inside the child's namespace.
        port: u16,
    },
}

/// Resource limits of the child's process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Wall clock for the whole process tree; then it is killed ([`crate::ExitKind::TimedOut`]).
    pub timeout: Option<Duration>,
    /// Bytes relayed per output stream; the rest is drained and dropped.
    pub max_output: Option<u64>,
    /// Processes of the whole tree (`pids.max` of the sandbox's cgroup, when one can be
    /// had) and `RLIMIT_NPROC` (processes of the child's uid; not enforced for root).
    pub max_processes: Option<u64>,
    /// Bytes of memory of the whole tree (the sandbox cgroup's memory limit, when one can
    /// be had) and `RLIMIT_AS` (per process); half of it is the size of each of the private
    /// `/tmp` and `/dev/shm` tmpfs ([`DEFAULT_TMPFS_SIZE`] without it).
    pub max_memory: Option<u64>,
    /// `RLIMIT_NOFILE`.
    pub max_open_files: Option<u64>,
    /// Bytes of one file (`RLIMIT_FSIZE`): a write past it fails with `EFBIG` (the child
    /// starts with `SIGXFSZ` ignored, so the write returns the error instead of killing it).
    #[serde(default)]
    pub max_file_size: Option<u64>,
}

/// The size of each of the private `/tmp` and `/dev/shm` tmpfs when `max_memory` is absent:
/// 1 GiB (a full one answers `ENOSPC`).
pub const DEFAULT_TMPFS_SIZE: u64 = 1 << 30;

/// The size of a private tmpfs (`/tmp`, `/dev/shm`) and where it comes from.
///
/// Half of `max_memory` each: tmpfs pages are memory the cgroup counts (when there is one),
/// so a full `/tmp` still leaves the processes room and the writer gets `ENOSPC` rather than
/// the OOM killer; without a cgroup (unprivileged) the size is the only bound, since
/// `RLIMIT_AS` does not count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TmpfsSize {
    /// Bytes (`size=` of the mount; the kernel rounds it up to whole pages).
    pub bytes: u64,
    /// Half of `max_memory` (else [`DEFAULT_TMPFS_SIZE`]).
    pub from_max_memory: bool,
}

impl TmpfsSize {
    /// The size without `max_memory`: [`DEFAULT_TMPFS_SIZE`].
    pub(crate) fn default_size() -> TmpfsSize {
        TmpfsSize { bytes: DEFAULT_TMPFS_SIZE, from_max_memory: false }
    }
}

impl Limits {
    /// The size of each private tmpfs: half of `max_memory` (at least one page), else
    /// [`DEFAULT_TMPFS_SIZE`].
    pub(crate) fn tmpfs_size(&self) -> TmpfsSize {
        match self.max_memory {
            Some(m) => TmpfsSize { bytes: (m / 2).max(4096), from_max_memory: true },
            None => TmpfsSize::default_size(),
        }
    }
}

impl std::fmt::Display for TmpfsSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1 << 20;
        if self.bytes % MIB == 0 {
            write!(f, "{} MiB", self.bytes / MIB)?;
        } else {
            write!(f, "{} bytes", self.bytes)?;
        }
        f.write_str(if self.from_max_memory { " (half of max_memory)" } else { " (the default without max_memory)" })
    }
}

/// How standard input, output and error reach the child.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum StdioMode {
    /// stdin is inherited; stdout and stderr are relayed through pipes (counted, capped).
    #[default]
    Inherit,
    /// A pseudo-terminal of the child's own, relayed to the caller's terminal (raw mode).
    /// Falls back to `Inherit` when the caller's stdin is not a terminal.
    Pty,
    /// stdout and stderr are collected into [`crate::RunOutcome`]; stdin is `stdin`'s bytes
    /// (or empty).
    Capture {
        /// Bytes written to the child's stdin, then closed.
        stdin: Option<Vec<u8>>,
    },
}

/// The filesystem rules after normalisation, shared by the mount view and Landlock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PathPlan {
    /// Read + execute, sorted parents first.
    pub reads: Vec<PathBuf>,
    /// Read + write, sorted parents first.
    pub writes: Vec<PathBuf>,
    /// Literal masks (deny and hidden paths), sorted parents first, none beneath another.
    pub denies: Vec<PathBuf>,
    /// Deny globs, expanded in the view ([`crate::view`]).
    pub deny_globs: Vec<String>,
    /// Protect globs, bound read-only in the view ([`crate::view`]).
    pub protect_globs: Vec<String>,
    /// The cache of the view walk (a host path).
    pub view_cache: Option<PathBuf>,
    /// What was dropped and why.
    pub notes: Vec<String>,
    /// The spec's absolute hidden paths that existed when the plan was made (the others
    /// are left out of `denies`).
    pub hidden_present: Vec<PathBuf>,
}

/// The spec's absolute hidden paths that `exists` finds (the plan masks only those).
fn hidden_present(spec: &SandboxSpec, exists: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    spec.hidden_paths.iter().filter(|p| p.is_absolute() && exists(p)).cloned().collect()
}

fn depth(p: &Path) -> usize {
    p.components().count()
}

/// Sorts `paths` parents first: by depth (counted once per path), stable.
fn sort_by_depth(paths: &mut [PathBuf]) {
    paths.sort_by_cached_key(|p| depth(p));
}

/// What two paths equal as `Path`s share: a plain path's bytes (its components are exactly
/// its slash-separated parts), else its components joined again.
fn path_key(p: &Path) -> std::borrow::Cow<'_, [u8]> {
    let b = p.as_os_str().as_encoded_bytes();
    if plain(b) {
        std::borrow::Cow::Borrowed(b)
    } else {
        std::borrow::Cow::Owned(p.components().collect::<PathBuf>().into_os_string().into_encoded_bytes())
    }
}

/// A path and whether it is plain (absolute, no empty or `.` component, no trailing
/// slash), as a spec's paths are: [`Keyed::beneath`] then compares bytes, where
/// `Path::starts_with` splits both paths into components on every call (a plan makes
/// thousands of these comparisons).
struct Keyed<'a> {
    path: &'a Path,
    plain: bool,
}

impl<'a> Keyed<'a> {
    fn new(path: &'a Path) -> Keyed<'a> {
        Keyed { path, plain: plain(path.as_os_str().as_encoded_bytes()) }
    }

    /// `self.path.starts_with(base.path)`.
    fn beneath(&self, base: &Keyed<'_>) -> bool {
        if !(self.plain && base.plain) {
            return self.path.starts_with(base.path);
        }
        let (a, b) = (self.path.as_os_str().as_encoded_bytes(), base.path.as_os_str().as_encoded_bytes());
        b == b"/" || (a.starts_with(b) && (a.len() == b.len() || a[b.len()] == b'/'))
    }
}

/// An absolute path whose components are exactly its slash-separated parts.
fn plain(b: &[u8]) -> bool {
    b.first() == Some(&b'/')
        && (b.len() == 1 || b.last() != Some(&b'/'))
        && !b.ends_with(b"/.")
        && !b.windows(2).any(|w| w == b"//")
        && !b.windows(3).any(|w| w == b"/./")
}

impl PathPlan {
    /// Normalises the spec's paths: a path in both read and write is written; a read or
    /// write path at or beneath a deny path is dropped (deny beats read/write); nested deny
    /// paths collapse into their ancestor.
    pub fn new(spec: &SandboxSpec) -> PathPlan {
        PathPlan::with_host_root(spec, Path::new("/"))
    }

    /// [`PathPlan::new`] where the host's root is at `host_root` (a helper that entered
    /// the mount view's scratch root ahead has it at `/oldroot`): the paths are the
    /// spec's, their existence is looked up there.
    pub(crate) fn with_host_root(spec: &SandboxSpec, host_root: &Path) -> PathPlan {
        let mut plan = PathPlan::default();
        // Beneath another root, looked up in it (an absolute symlink on the way resolves
        // there too); a root that cannot be opened keeps every path (masked if there).
        let root = (host_root != Path::new("/"))
            .then(|| crate::sys::openat_cwd(&crate::sys::cpath(host_root)?, libc::O_PATH | libc::O_DIRECTORY));
        let exists = |p: &Path| match &root {
            None => p.symlink_metadata().is_ok(),
            Some(Ok(fd)) => crate::sys::present_in_root(std::os::fd::AsFd::as_fd(fd), p),
            Some(Err(_)) => true,
        };
        // paddock's own state is masked whatever the grants: the view walk masks these like
        // deny paths (a missing one is left out: it would split Landlock's grants for nothing).
        let present = hidden_present(spec, exists);
        let mut denies: Vec<PathBuf> =
            spec.deny_paths.iter().chain(&present).chain(&spec.view_cache).cloned().collect();
        sort_by_depth(&mut denies);
        denies.dedup();
        let mut kept: Vec<Keyed<'_>> = Vec::new();
        for d in &denies {
            let k = Keyed::new(d);
            if !kept.iter().any(|a| k.beneath(a)) {
                kept.push(k);
            }
        }
        plan.denies = kept.iter().map(|k| k.path.to_path_buf()).collect();
        let denied = |p: &Path| {
            let p = Keyed::new(p);
            kept.iter().any(|d| p.beneath(d))
        };
        let mut notes = Vec::new();
        // Each path once (the first of equal ones), a written one never again as read.
        let mut seen = std::collections::HashSet::new();
        let mut writes: Vec<PathBuf> = Vec::new();
        for w in &spec.write_paths {
            if denied(w) {
                notes.push(format!("{} dropped: beneath a deny path", w.display()));
            } else if seen.insert(path_key(w)) {
                writes.push(w.clone());
            }
        }
        let mut reads: Vec<PathBuf> = Vec::new();
        for r in &spec.read_paths {
            if denied(r) {
                notes.push(format!("{} dropped: beneath a deny path", r.display()));
            } else if seen.insert(path_key(r)) {
                reads.push(r.clone());
            }
        }
        sort_by_depth(&mut reads);
        sort_by_depth(&mut writes);
        plan.reads = reads;
        plan.writes = writes;
        plan.notes = notes;
        plan.deny_globs = spec.deny_globs.clone();
        plan.protect_globs = spec.protect_globs.clone();
        plan.view_cache = spec.view_cache.clone();
        plan.hidden_present = present;
        plan
    }

    /// [`PathPlan::new`] for `spec`, a call of `template`, which `ahead` was made for: `ahead`
    /// itself when `spec` has the template's paths (every field the plan is made of) and the
    /// same hidden paths exist now (a `stat` each), else a plan made now.
    pub(crate) fn again(ahead: PathPlan, template: &SandboxSpec, spec: &SandboxSpec) -> PathPlan {
        let same = spec.read_paths == template.read_paths
            && spec.write_paths == template.write_paths
            && spec.deny_paths == template.deny_paths
            && spec.hidden_paths == template.hidden_paths
            && spec.view_cache == template.view_cache
            && spec.deny_globs == template.deny_globs
            && spec.protect_globs == template.protect_globs;
        if same && hidden_present(spec, |p| p.symlink_metadata().is_ok()) == ahead.hidden_present {
            ahead
        } else {
            PathPlan::new(spec)
        }
    }

    /// True when `p` is a write path or beneath one.
    pub fn is_writable(&self, p: &Path) -> bool {
        let p = Keyed::new(p);
        self.writes.iter().any(|w| p.beneath(&Keyed::new(w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec::new("/bin/true", vec!["true".into()])
    }

    #[test]
    fn write_beats_read_and_deny_beats_both() {
        let mut s = spec();
        s.read_paths = vec!["/usr".into(), "/home/u/ws".into(), "/home/u/.ssh/x".into()];
        s.write_paths = vec!["/home/u/ws".into(), "/home/u/.ssh".into()];
        s.deny_paths = vec!["/home/u/.ssh/id".into(), "/home/u/.ssh".into()];
        let p = PathPlan::new(&s);
        assert_eq!(p.reads, vec![PathBuf::from("/usr")]);
        assert_eq!(p.writes, vec![PathBuf::from("/home/u/ws")]);
        assert_eq!(p.denies, vec![PathBuf::from("/home/u/.ssh")]);
        assert_eq!(p.notes.len(), 2);
        assert!(p.is_writable(Path::new("/home/u/ws/a")));
        assert!(!p.is_writable(Path::new("/home/u/wsx")));
    }

    /// A path is kept once however it is spelled (a trailing slash, a `.` component, a
    /// doubled slash), first spelling first; one written is not read as well; each list
    /// is sorted parents first, paths of one depth in the spec's order.
    #[test]
    fn equal_paths_are_kept_once_whatever_their_spelling() {
        let mut s = spec();
        s.write_paths = vec!["/w/b/".into(), "/w".into(), "/w/b".into()];
        s.read_paths =
            vec!["/r//x".into(), "/w/./b".into(), "/r/x".into(), "/r/./y/".into(), "/a".into(), "/r/y".into()];
        let p = PathPlan::new(&s);
        assert_eq!(p.writes, vec![PathBuf::from("/w"), PathBuf::from("/w/b/")]);
        assert_eq!(p.reads, vec![PathBuf::from("/a"), PathBuf::from("/r//x"), PathBuf::from("/r/./y/")]);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    /// A helper that entered the view's scratch root ahead has the host's root beneath
    /// `/oldroot`: a hidden path is looked up there, an absolute symlink on its way
    /// resolved in that root too (joined naively, `link` would lead out of it, the path
    /// would look absent, and nothing would mask it).
    #[test]
    fn hidden_paths_are_looked_up_in_the_host_root_given() {
        let root = std::env::temp_dir().join(format!("paddock-hostroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("real/state")).unwrap();
        std::fs::write(root.join("real/state/audit.jsonl"), "").unwrap();
        std::os::unix::fs::symlink("/real", root.join("link")).unwrap();
        let mut s = spec();
        s.hidden_paths = vec!["/link/state/audit.jsonl".into(), "/link/state/absent".into(), "/real/state".into()];
        let p = PathPlan::with_host_root(&s, &root);
        assert_eq!(p.denies, vec![PathBuf::from("/real/state"), PathBuf::from("/link/state/audit.jsonl")]);
        // A root that cannot be opened keeps every hidden path.
        let p = PathPlan::with_host_root(&s, &root.join("nowhere"));
        assert_eq!(p.denies.len(), 3, "{:?}", p.denies);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A spare's plan serves the call that comes while the call's paths are the
    /// template's and the same hidden paths exist; a hidden path made meanwhile, or other
    /// paths, get a plan of their own (which masks it).
    #[test]
    fn a_plan_made_ahead_serves_a_call_until_its_hidden_paths_change() {
        let root = std::env::temp_dir().join(format!("paddock-again-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let token = root.join("token");
        let mut template = spec();
        template.read_paths = vec![root.clone()];
        template.hidden_paths = vec![token.clone()];
        let ahead = PathPlan::new(&template);
        let mut call = template.clone();
        call.argv = vec!["true".into(), "again".into()];
        assert_eq!(PathPlan::again(ahead.clone(), &template, &call), ahead);
        std::fs::write(&token, "").unwrap();
        let now = PathPlan::again(ahead.clone(), &template, &call);
        assert!(now.denies.contains(&token), "{now:?}");
        assert_eq!(now, PathPlan::new(&call));
        let mut other = call.clone();
        other.write_paths = vec![root.join("w")];
        assert_eq!(PathPlan::again(PathPlan::new(&template), &template, &other), PathPlan::new(&other));
        assert!(!PathPlan::new(&other).writes.is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn beneath_is_starts_with() {
        let paths = [
            "/", "/a", "/a/", "/a/b", "/ab", "/a//b", "/a/./b", "/a/.", "/a/..", "/a/../b", "//a", "/a/b/c", "a",
            "a/b", "", "./a", "/.", "/..", "/a/b/",
        ];
        for p in paths {
            for b in paths {
                let (p, b) = (Path::new(p), Path::new(b));
                assert_eq!(Keyed::new(p).beneath(&Keyed::new(b)), p.starts_with(b), "{p:?} beneath {b:?}");
            }
        }
    }

    #[test]
    fn validate_rejects_relative_paths() {
        let mut s = spec();
        assert!(s.validate().is_ok());
        s.cwd = "rel".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.env = vec![("A=B".into(), "c".into())];
        assert!(s.validate().is_err());
    }

    #[test]
    fn spec_roundtrips_through_json() {
        let mut s = spec();
        s.network = NetworkMode::Proxy { port: 8080 };
        s.limits.timeout = Some(Duration::from_millis(1500));
        s.stdio = StdioMode::Capture { stdin: Some(b"hi".to_vec()) };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SandboxSpec>(&j).unwrap(), s);
    }

    #[test]
    fn tmpfs_is_half_of_max_memory_or_the_default() {
        let mut l = Limits::default();
        assert_eq!(l.tmpfs_size(), TmpfsSize { bytes: DEFAULT_TMPFS_SIZE, from_max_memory: false });
        assert_eq!(l.tmpfs_size().to_string(), "1024 MiB (the default without max_memory)");
        l.max_memory = Some(64 << 20);
        assert_eq!(l.tmpfs_size(), TmpfsSize { bytes: 32 << 20, from_max_memory: true });
        assert_eq!(l.tmpfs_size().to_string(), "32 MiB (half of max_memory)");
        l.max_memory = Some(1);
        assert_eq!(l.tmpfs_size().bytes, 4096);
        assert_eq!(l.tmpfs_size().to_string(), "4096 bytes (half of max_memory)");
    }
}
