//! `[filesystem]`: path normalisation and the read / write / deny decision.
//!
//! Paths are normalised before matching: `.` and `..` are folded and symlinks are resolved
//! for the part of the path that exists, the way the kernel would walk it. `deny` entries
//! are globs (`*` stays inside one component, `**` crosses them) and beat `read` and
//! `write`; a deny entry covers what lies below it. `write` implies read.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use paddock_globs::{literal_prefix, PathGlobs};

use crate::decision::Decision;
use crate::error::{Origin, Problems};

/// How many symlinks one normalisation follows before it gives up (like the kernel's 40).
const MAX_LINKS: usize = 40;

/// The names and `..` of a path, in order (`/` and `.` dropped).
fn steps(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(s) => Some(s.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}

/// Normalises an absolute path: folds `.` and `..` and resolves the symlinks of the part
/// that exists. A relative `path` is taken relative to `cwd`.
pub fn normalize(path: &Path, cwd: &Path) -> PathBuf {
    Lookups::default().normalize(path, cwd)
}

/// What one `lstat` (and `readlink`) of a path said.
#[derive(Debug, Clone)]
enum Found {
    Missing,
    Present,
    Link(Option<PathBuf>),
}

/// The `lstat`s of one batch of normalisations (a policy's paths share most of their
/// prefixes: `/usr`, `$HOME`, the workspace), each path looked up once.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// By the path's bytes (hashing a `Path` parses its components: slower than the
    /// `lstat` it saves).
    seen: HashMap<OsString, Found>,
    /// The paths that could not be looked at (an error other than "not found": a directory
    /// made unsearchable), with the error: taken as absent, so where a rule through them
    /// leads is not known.
    unreadable: Vec<(PathBuf, std::io::ErrorKind)>,
}

impl Lookups {
    fn lookup(&mut self, path: &Path) -> Found {
        if let Some(f) = self.seen.get(path.as_os_str()) {
            return f.clone();
        }
        let found = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => match std::fs::read_link(path) {
                Ok(t) => Found::Link(Some(t)),
                Err(e) => {
                    self.unreadable.push((path.to_path_buf(), e.kind()));
                    Found::Link(None)
                }
            },
            Ok(_) => Found::Present,
            Err(e) => {
                // Its directory cannot be searched (or read): that is the one to name.
                if !matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) {
                    self.unreadable.push((path.parent().unwrap_or(path).to_path_buf(), e.kind()));
                }
                Found::Missing
            }
        };
        self.seen.insert(path.as_os_str().to_os_string(), found.clone());
        found
    }

    /// The first path of this batch that could not be looked at and lies beneath one of
    /// `writes` (a call could have made it so), with the error.
    pub(crate) fn unreadable_in(&self, writes: &[PathRule]) -> Option<&(PathBuf, std::io::ErrorKind)> {
        self.unreadable.iter().find(|(p, _)| writes.iter().any(|w| p.starts_with(&w.path)))
    }

    /// The symlinks this batch's lookups met (each where it lies: a path with no symlink
    /// on its way).
    pub(crate) fn links(&self) -> impl Iterator<Item = &Path> {
        self.seen.iter().filter(|(_, f)| matches!(f, Found::Link(_))).map(|(p, _)| Path::new(p.as_os_str()))
    }

    /// [`normalize`], with this batch's lookups.
    pub(crate) fn normalize(&mut self, path: &Path, cwd: &Path) -> PathBuf {
        let joined;
        let path = if path.is_absolute() {
            path
        } else {
            joined = cwd.join(path);
            &joined
        };
        let mut queue: VecDeque<OsString> = steps(path).collect();
        let mut out = PathBuf::from("/");
        let mut exists = true;
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c == ".." {
                out.pop();
                exists = true;
                continue;
            }
            out.push(&c);
            if !exists {
                continue;
            }
            match self.lookup(&out) {
                Found::Link(target) if links < MAX_LINKS => {
                    links += 1;
                    let Some(target) = target else { continue };
                    out.pop();
                    if target.is_absolute() {
                        out = PathBuf::from("/");
                    }
                    for t in steps(&target).collect::<Vec<_>>().into_iter().rev() {
                        queue.push_front(t);
                    }
                }
                Found::Link(_) | Found::Present => {}
                Found::Missing => exists = false,
            }
        }
        out
    }
}

/// A `deny` or `protect` rule the filesystem resolves otherwise now than when it was
/// compiled ([`FsRules::drift`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// The rule (`filesystem.protect[3]`), or what changed.
    pub rule: String,
    /// As written (for a `.git` file's directory: the directory that appeared or went).
    pub raw: String,
    /// What it resolved to when compiled.
    pub was: String,
    /// What it resolves to now (`None` for a `.git` file's directories).
    pub now: Option<String>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.now {
            Some(now) => write!(
                f,
                "`{}` ({}) named {} when the policy was loaded and names {} now",
                self.raw, self.rule, self.was, now
            ),
            None => write!(
                f,
                "the directories `.git` files name changed since the policy was loaded ({}; protected then: {})",
                self.raw,
                if self.was.is_empty() { "none" } else { &self.was }
            ),
        }
    }
}

/// One path entry of `read` or `write`.
#[derive(Debug, Clone)]
pub struct PathRule {
    /// `filesystem.read[0]` and so on.
    pub id: Arc<str>,
    /// As written in the policy.
    pub raw: String,
    /// Variables expanded, not normalised (may be a symlink such as `/bin`).
    pub expanded: PathBuf,
    /// Expanded and normalised.
    pub path: PathBuf,
    /// Where it was written.
    pub origin: Origin,
}

/// One `deny` entry.
#[derive(Debug, Clone)]
pub struct DenyRule {
    /// `filesystem.deny[0]` and so on.
    pub id: Arc<str>,
    /// As written in the policy.
    pub raw: String,
    /// Expanded, its literal prefix normalised; a glob when `is_glob`.
    pub pattern: String,
    /// Variables expanded, not normalised: the path as named, which differs from a literal
    /// `pattern` when a symlink on the way was resolved (`.claude/settings.json`, a link to
    /// a shared file, is `pattern` there; the name itself is this).
    pub expanded: PathBuf,
    /// Whether `pattern` has glob syntax.
    pub is_glob: bool,
    /// Where it was written.
    pub origin: Origin,
}

/// The compiled `[filesystem]` section.
#[derive(Debug, Clone, Default)]
pub struct FsRules {
    /// `read` entries in order.
    pub read: Vec<PathRule>,
    /// `write` entries in order.
    pub write: Vec<PathRule>,
    /// `deny` entries in order.
    pub deny: Vec<DenyRule>,
    /// `protect` entries in order (globs that stay read-only even under write).
    pub protect: Vec<DenyRule>,
    read_index: HashMap<PathBuf, usize>,
    write_index: HashMap<PathBuf, usize>,
    deny_match: Masks,
    protect_match: Masks,
    /// How many of `protect` the policy writes (then its `.git` files' entries, then its own files).
    written_protect: usize,
    /// How many protect entries after those come from `.git` files (the policy's own files
    /// follow them).
    gitdir_protect: usize,
}

/// The compiled matcher of one list of path globs (`deny` or `protect`): which entry, if
/// any, covers a path or one of its ancestors.
#[derive(Debug, Clone, Default)]
struct Masks {
    /// Literal paths (the common case): looked up for the path and each ancestor.
    literal: HashMap<PathBuf, usize>,
    /// Glob entries' patterns (normalised); a path is covered when it or one of its
    /// ancestors matches one. `glob_rule[k]` is the entry index of glob `k`.
    globs: Vec<String>,
    glob_rule: Vec<usize>,
    /// Each glob entry's literal prefix (its components before the first with glob
    /// syntax): what a glob matches lies at or beneath it, so a path beneath none of them
    /// needs no glob set (`paddock run` asks about its program, under `/usr`, while the
    /// default policy's globs lie in the workspace and the home directory).
    prefixes: Vec<PathBuf>,
    /// The globs compiled as the sandbox's view compiles them ([`PathGlobs`]: split at
    /// their literal prefix, so the common shapes need no regex), built on the first
    /// question that needs them. `Err` when they cannot be built (a regex over the size
    /// limit): then every path beneath a glob's literal prefix is covered by the first glob
    /// entry (fail closed).
    set: std::sync::OnceLock<Result<PathGlobs, ()>>,
}

impl Masks {
    /// Compiles `entries` as `filesystem.KIND[i]` rules; bad globs become problems.
    fn compile(
        kind: &str,
        entries: Vec<RawPathEntry>,
        lookups: &mut Lookups,
        problems: &mut Problems,
    ) -> (Vec<DenyRule>, Masks) {
        let (mut rules, mut masks) = (Vec::new(), Masks::default());
        masks.add(kind, 0, entries, &mut rules, lookups, problems);
        (rules, masks)
    }

    /// Compiles `entries` after `rules` (the entries compiled so far, of which there were
    /// `before`, bad ones included): as `filesystem.KIND[before + i]`, appended to `rules`
    /// and to this matcher (whose glob set, if built, is built again when next needed).
    fn add(
        &mut self,
        kind: &str,
        before: usize,
        entries: Vec<RawPathEntry>,
        rules: &mut Vec<DenyRule>,
        lookups: &mut Lookups,
        problems: &mut Problems,
    ) {
        self.set = std::sync::OnceLock::new();
        for (i, e) in entries.into_iter().enumerate() {
            let i = before + i;
            let s = e.expanded.to_string_lossy().into_owned();
            let is_glob = !e.literal && has_glob_meta(&s);
            let pattern = if is_glob {
                normalize_glob(&s, lookups)
            } else {
                lookups.normalize(&e.expanded, Path::new("/")).to_string_lossy().into_owned()
            };
            // Checked here to report a bad glob where it is written; compiled into the
            // set when a question needs it.
            let parsed = if is_glob { paddock_globs::check(&pattern).map(|()| true) } else { Ok(false) };
            match parsed {
                Ok(glob) => {
                    let rule = rules.len();
                    if glob {
                        self.globs.push(pattern.clone());
                        self.glob_rule.push(rule);
                        self.prefixes.push(literal_prefix(&pattern));
                    } else {
                        self.literal.entry(PathBuf::from(&pattern)).or_insert(rule);
                    }
                    rules.push(DenyRule {
                        id: format!("filesystem.{kind}[{i}]").into(),
                        raw: e.raw,
                        pattern,
                        is_glob,
                        expanded: e.expanded,
                        origin: e.origin,
                    });
                }
                Err(err) => problems.push(
                    &e.origin,
                    format!("bad glob `{}`: {err}", e.raw),
                    Some("`*` matches within one path component, `**` across components, `?` one character, `[abc]` a class".into()),
                ),
            }
        }
    }

    /// The glob set, built once ([`Masks::set`]).
    fn set(&self) -> &Result<PathGlobs, ()> {
        self.set.get_or_init(|| {
            PathGlobs::new(&self.globs)
                .map_err(|e| tracing::warn!("path globs could not be compiled ({e}): every path beneath their literal prefixes is taken as covered"))
        })
    }

    /// The index of the first entry covering `path` (normalised) or one of its ancestors.
    fn first(&self, path: &Path) -> Option<usize> {
        let literal = path.ancestors().filter_map(|a| self.literal.get(a)).copied().min();
        let beneath_a_glob = self.prefixes.iter().any(|p| path.starts_with(p));
        let glob = match beneath_a_glob.then(|| self.set()) {
            None => None,
            Some(Ok(set)) => path.ancestors().filter_map(|a| set.first_match(a)).map(|k| self.glob_rule[k]).min(),
            Some(Err(())) => self.glob_rule.first().copied(),
        };
        match (literal, glob) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

pub(crate) fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}'])
}

/// The normalised literal prefix of a glob, and the glob rebuilt on it.
fn normalize_glob(expanded: &str, lookups: &mut Lookups) -> String {
    let comps: Vec<&str> = expanded.split('/').collect();
    let first_glob = comps.iter().position(|c| has_glob_meta(c)).unwrap_or(comps.len());
    let prefix = comps[..first_glob].join("/");
    let prefix = if prefix.is_empty() { "/".to_string() } else { prefix };
    let norm = lookups.normalize(Path::new(&prefix), Path::new("/"));
    let mut out = norm.to_string_lossy().into_owned();
    for c in &comps[first_glob..] {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(c);
    }
    out
}

#[derive(Clone)]
pub(crate) struct RawPathEntry {
    pub raw: String,
    pub expanded: PathBuf,
    pub origin: Origin,
    /// A path read from disk (a `.git` file's, the policy's own): literal whatever glob
    /// characters it holds.
    pub literal: bool,
}

impl FsRules {
    pub(crate) fn compile(
        read: Vec<RawPathEntry>,
        write: Vec<RawPathEntry>,
        deny: Vec<RawPathEntry>,
        protect: Vec<RawPathEntry>,
        policy_files: &[PathBuf],
        problems: &mut Problems,
    ) -> FsRules {
        let mut rules = FsRules::default();
        let mut lookups = Lookups::default();
        for (kind, list) in [("read", read), ("write", write)] {
            for (i, e) in list.into_iter().enumerate() {
                let s = e.expanded.to_string_lossy();
                if has_glob_meta(&s) {
                    problems.push(
                        &e.origin,
                        format!("glob in `filesystem.{kind}` entry `{}`", e.raw),
                        Some(format!("`{kind}` takes directories or files (recursive); globs belong in `deny`")),
                    );
                    continue;
                }
                let path = lookups.normalize(&e.expanded, Path::new("/"));
                let rule = PathRule {
                    id: format!("filesystem.{kind}[{i}]").into(),
                    raw: e.raw,
                    expanded: e.expanded,
                    path,
                    origin: e.origin,
                };
                let (vec, index) = if kind == "read" {
                    (&mut rules.read, &mut rules.read_index)
                } else {
                    (&mut rules.write, &mut rules.write_index)
                };
                index.entry(rule.path.clone()).or_insert(vec.len());
                vec.push(rule);
            }
        }
        rules.refuse_grants_through_writable_links(problems);
        (rules.deny, rules.deny_match) = Masks::compile("deny", deny, &mut lookups, problems);
        // The rules as written first: what they cover already needs no entry of a `.git`
        // file's directory (one compile: the entries found are appended to it).
        let (mut protect_rules, mut protect_match) = Masks::compile("protect", protect.clone(), &mut lookups, problems);
        let extra = rules.gitdir_protects(&protect, &|p| protect_match.first(p).is_some(), &mut lookups);
        let own = rules.policy_file_protects(&protect, policy_files);
        rules.written_protect = protect.len();
        rules.gitdir_protect = extra.len();
        let found: Vec<RawPathEntry> = extra.into_iter().chain(own).collect();
        protect_match.add("protect", protect.len(), found, &mut protect_rules, &mut lookups, problems);
        (rules.protect, rules.protect_match) = (protect_rules, protect_match);
        // Fail closed: where a rule leads through a directory a call made unsearchable
        // (`chmod 000`) is not known, so the view could leave the user's file open (found
        // by an attack: the rule stayed on a symlink's name, its target writable).
        if let Some((path, kind)) = rules.unreadable(&lookups) {
            let w = rules.write.iter().find(|w| path.starts_with(&w.path)).map(|w| &w.origin);
            if let Some(origin) = w {
                problems.push(
                    origin,
                    format!("{} cannot be looked at ({kind}), so where the deny and protect rules through it lead is not known", path.display()),
                    Some(match kind {
                        std::io::ErrorKind::PermissionDenied => format!("it lies in a write path, where a call may have changed its permissions: look at it, then `chmod u+rx {}` (or remove it) and run again", path.display()),
                        _ => "it lies in a write path, where a call may have changed it: look at it (or remove it) and run again".to_string(),
                    }),
                );
            }
        }
        rules
    }

    /// [`Lookups::unreadable_in`] of this policy's write paths.
    fn unreadable(&self, lookups: &Lookups) -> Option<(PathBuf, std::io::ErrorKind)> {
        lookups.unreadable_in(&self.write).cloned()
    }

    /// A read or write entry whose path runs through a symlink that lies beneath a write
    /// path is refused: a call can point that link elsewhere, and the grant would follow
    /// it at the next load to anything on the host (found by an attack: `mv out out2;
    /// mkdir out; ln -s /elsewhere out/build` made `write = ["${WORKSPACE}/out/build"]`
    /// a grant of `/elsewhere`). Name the directory itself, or keep the link outside the
    /// write paths.
    fn refuse_grants_through_writable_links(&self, problems: &mut Problems) {
        for (kind, r) in self.read.iter().map(|r| ("read", r)).chain(self.write.iter().map(|r| ("write", r))) {
            // Normalised to itself: no symlink on its way (the load's lookups are not
            // done again for it).
            if r.expanded == r.path {
                continue;
            }
            let mut lookups = Lookups::default();
            lookups.normalize(&r.expanded, Path::new("/"));
            let mut links: Vec<&Path> = lookups.links().collect();
            links.sort();
            let writable = links.into_iter().find_map(|l| {
                let dir = l.parent()?;
                self.write.iter().find(|w| dir.starts_with(&w.path)).map(|w| (l.to_path_buf(), w))
            });
            if let Some((link, w)) = writable {
                problems.push(
                    &r.origin,
                    format!(
                        "`filesystem.{kind}` entry `{}` is reached through the symlink {}, which lies under the write path `{}` ({}): a call could point it elsewhere, and this grant would follow it",
                        r.raw,
                        link.display(),
                        w.raw,
                        w.id
                    ),
                    Some("name the directory the link points to, or keep the link out of the write paths".into()),
                );
            }
        }
    }

    /// Protect entries for the git directories that `.git` files in the write paths name
    /// ([`crate::gitfile`]), after `protect`'s own: each path not already covered by one
    /// of `protect` (`covered`: its compiled matcher), with the origin of the first rule
    /// inside a `.git`.
    fn gitdir_protects(
        &self,
        protect: &[RawPathEntry],
        covered: &dyn Fn(&Path) -> bool,
        lookups: &mut Lookups,
    ) -> Vec<RawPathEntry> {
        let expanded: Vec<String> = protect.iter().map(|e| e.expanded.to_string_lossy().into_owned()).collect();
        let Some(origin) = protect.iter().zip(&expanded).find(|(_, s)| s.contains("/.git/")).map(|(e, _)| &e.origin)
        else {
            return Vec::new();
        };
        let patterns: Vec<&str> = expanded.iter().map(String::as_str).collect();
        let files = crate::gitfile::places(&patterns, &has_glob_meta);
        if files.is_empty() {
            return Vec::new();
        }
        let writable = |p: &Path| self.write.iter().any(|w| p.starts_with(&w.path));
        let found = {
            let mut normalize = |p: &Path| lookups.normalize(p, Path::new("/"));
            crate::gitfile::protected(&files, &writable, &mut normalize)
        };
        found
            .into_iter()
            .filter_map(|e| {
                let (expanded, literal) = match e {
                    crate::gitfile::Entry::Path(p) => (p, true),
                    crate::gitfile::Entry::Glob(g) => (PathBuf::from(g), false),
                };
                // Covered already (a glob only: a literal path's links are noted as named).
                if !literal && covered(&expanded) {
                    return None;
                }
                let raw = format!("{} (a `.git` file names its directory)", expanded.display());
                Some(RawPathEntry { raw, expanded, origin: origin.clone(), literal })
            })
            .collect()
    }

    /// Protect entries for the policy's own files (`--policy ./mine.toml` and what it
    /// `extends`) that lie in a write path, after `protect`'s own and the git directories':
    /// a call that rewrote them would choose the policy of every later call.
    fn policy_file_protects(&self, protect: &[RawPathEntry], files: &[PathBuf]) -> Vec<RawPathEntry> {
        let mut out: Vec<RawPathEntry> = Vec::new();
        for f in files {
            // Wherever it leads (outside the write paths the protection costs nothing, and
            // the way there, a symlink or a directory left by `..`, may be writable).
            if out.iter().chain(protect).any(|e| e.expanded == *f) {
                continue;
            }
            out.push(RawPathEntry {
                raw: format!("{} (the policy's own file)", f.display()),
                expanded: f.clone(),
                origin: crate::error::Origin { file: std::sync::Arc::new(f.clone()), line: 1, col: 1 },
                literal: true,
            });
        }
        out
    }

    /// Whether the filesystem still resolves the `deny` and `protect` rules as it did
    /// when they were compiled: each literal path (and each glob's literal prefix) is
    /// normalised again, and the `.git` files' directories looked for again. The first
    /// difference when one is found (a symlink on a rule's way removed, added or
    /// re-pointed since; a `.git` file that appeared, went or names another directory):
    /// the mount view made from these rules would mask or bind other objects than the
    /// rules name now.
    pub fn drift(&self) -> Option<Drift> {
        self.drift_in(&mut Lookups::default())
    }

    /// [`FsRules::drift`]; adds to `looked`, when given, every path it looked at (`lstat`,
    /// `readlink`, or a `.git` or `commondir` file read, each with the way to it): the
    /// verdict holds while none of them, nor the directory entry naming it, changed (a
    /// session keeps it while an inotify watch on them says nothing did).
    pub fn drift_traced(&self, looked: Option<&mut Vec<PathBuf>>) -> Option<Drift> {
        let mut lookups = Lookups::default();
        let drift = self.drift_in(&mut lookups);
        if let Some(looked) = looked {
            looked.extend(lookups.seen.into_keys().map(PathBuf::from));
        }
        drift
    }

    fn drift_in(&self, lookups: &mut Lookups) -> Option<Drift> {
        for r in self.deny.iter().chain(&self.protect) {
            let s = r.expanded.to_string_lossy();
            let now = if r.is_glob {
                normalize_glob(&s, lookups)
            } else {
                lookups.normalize(&r.expanded, Path::new("/")).to_string_lossy().into_owned()
            };
            if now != r.pattern {
                return Some(Drift {
                    rule: r.id.to_string(),
                    raw: r.raw.clone(),
                    was: r.pattern.clone(),
                    now: Some(now),
                });
            }
        }
        // A directory on a rule's way, in a write path, that cannot be looked at now: where
        // the rule leads is not known (the load refuses the same).
        if let Some((path, kind)) = self.unreadable(lookups) {
            return Some(Drift {
                rule: "a directory on a deny or protect rule's way".into(),
                raw: path.display().to_string(),
                was: "looked at".into(),
                now: Some(format!("unsearchable ({kind})")),
            });
        }
        let written = &self.protect[..self.written_protect.min(self.protect.len())];
        let raw: Vec<RawPathEntry> = written
            .iter()
            .map(|r| RawPathEntry {
                raw: r.raw.clone(),
                expanded: r.expanded.clone(),
                origin: r.origin.clone(),
                literal: false,
            })
            .collect();
        // The rules as written resolve as they did (above), so their part of the compiled
        // matcher is what compiling them again would give: an entry they cover is one of
        // theirs (the first covering entry has the lowest index).
        let covered = |p: &Path| self.protect_match.first(p).is_some_and(|i| i < written.len());
        let extra: Vec<PathBuf> =
            self.gitdir_protects(&raw, &covered, lookups).into_iter().map(|e| e.expanded).collect();
        let gitdirs = &self.protect[written.len()..(written.len() + self.gitdir_protect).min(self.protect.len())];
        let had: Vec<&PathBuf> = gitdirs.iter().map(|r| &r.expanded).collect();
        if extra.iter().ne(had.iter().copied()) {
            let changed =
                extra.iter().find(|p| !had.contains(p)).or_else(|| had.iter().copied().find(|p| !extra.contains(p)));
            let was = gitdirs.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>().join(", ");
            return Some(Drift {
                rule: "a `.git` file's directory".into(),
                raw: changed.map_or_else(String::new, |p| p.display().to_string()),
                was,
                now: None,
            });
        }
        None
    }

    /// The first deny rule covering `path` (already normalised) or one of its ancestors.
    fn denied(&self, path: &Path) -> Option<&DenyRule> {
        self.deny_match.first(path).map(|i| &self.deny[i])
    }

    /// The first protect rule covering `path` (already normalised) or one of its ancestors.
    pub fn protected(&self, path: &Path) -> Option<&DenyRule> {
        self.protect_match.first(path).map(|i| &self.protect[i])
    }

    /// The deny decision for `path`, if a deny rule covers it.
    fn deny_decision(&self, path: &Path) -> Option<Decision> {
        self.denied(path).map(|d| Decision::deny(&d.id, format!("{} is denied by `{}`", path.display(), d.raw)))
    }

    /// The most specific rule granting `path` (a write path, or with `read` a read path
    /// too; at equal depth write wins), and its kind.
    fn granting(&self, path: &Path, read: bool) -> Option<(&PathRule, &'static str)> {
        path.ancestors().find_map(|anc| {
            let w = self.write_index.get(anc).map(|&i| (&self.write[i], "write"));
            w.or_else(|| if read { self.read_index.get(anc).map(|&i| (&self.read[i], "read")) } else { None })
        })
    }

    /// The denial of `path` when the grant `r` (of `kind`) covers it only from `/tmp` or
    /// above: unless a write path covers `/tmp`, the sandbox's `/tmp` is a private tmpfs
    /// of its own, and only grants beneath it are bound there, so `r` does not show the
    /// host's file (found by a test: `check` allowed what `run` could not see, under
    /// `read = ["/"]`).
    fn in_private_tmp(&self, path: &Path, r: &PathRule, kind: &str) -> Option<Decision> {
        let tmp = Path::new("/tmp");
        let shm = Path::new("/dev/shm");
        // `/dev` is the sandbox's own: its `/dev/shm` is private whatever is granted.
        if path.starts_with(shm) && path != shm {
            return Some(Decision::deny_default(format!(
                "{} is in the sandbox's private /dev/shm, where no grant shows the host's",
                path.display()
            )));
        }
        let hidden = path.starts_with(tmp)
            && path != tmp
            && tmp.starts_with(&r.path)
            && !self.write.iter().any(|w| tmp.starts_with(&w.path));
        hidden.then(|| {
            Decision::deny_default(format!(
                "{} is in the sandbox's private /tmp, where the {kind} path `{}` does not show the host's: grant it, or a directory beneath /tmp that holds it, by name",
                path.display(),
                r.raw
            ))
        })
    }

    /// Decides a read of `path`, which must already be normalised ([`normalize`]).
    pub fn decide_read(&self, path: &Path) -> Decision {
        if let Some(d) = self.deny_decision(path) {
            return d;
        }
        if let Some((r, kind)) = self.granting(path, true) {
            if let Some(d) = self.in_private_tmp(path, r, kind) {
                return d;
            }
            return Decision::allow(&r.id, format!("{} is under {kind} path `{}`", path.display(), r.raw));
        }
        Decision::deny_default(format!(
            "{} is not under any [filesystem] read or write path; add it to `read` to allow it",
            path.display()
        ))
    }

    /// Decides a write of `path`, which must already be normalised ([`normalize`]).
    pub fn decide_write(&self, path: &Path) -> Decision {
        if let Some(d) = self.deny_decision(path) {
            return d;
        }
        if let Some(p) = self.protected(path) {
            return Decision::deny(
                &p.id,
                format!("{} is protected by `{}`: read-only even under a write path", path.display(), p.raw),
            );
        }
        if let Some((r, kind)) = self.granting(path, false) {
            if let Some(d) = self.in_private_tmp(path, r, kind) {
                return d;
            }
            return Decision::allow(&r.id, format!("{} is under {kind} path `{}`", path.display(), r.raw));
        }
        let read_only = path.ancestors().find_map(|a| self.read_index.get(a)).map(|&i| &self.read[i]);
        Decision::deny_default(match read_only {
            Some(r) => format!(
                "{} is read-only (under `{}`, {}); add it to `write` to allow writing",
                path.display(),
                r.raw,
                r.id
            ),
            None => {
                format!("{} is not under any [filesystem] write path; add it to `write` to allow it", path.display())
            }
        })
    }

    /// Whether `path` (normalised) is covered by a deny rule.
    pub fn is_denied(&self, path: &Path) -> bool {
        self.denied(path).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A symlink on a rule's way, or a `.git` file, that changed between the policy's
    /// compiling and a call's start (another call's child removed it, and its end made it
    /// again) is a drift: the view made from the rules would not cover what they name.
    #[test]
    fn a_rule_resolved_otherwise_now_is_a_drift() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().canonicalize().unwrap().join("ws");
        std::fs::create_dir_all(ws.join(".claude")).unwrap();
        std::fs::create_dir_all(ws.join("cfg")).unwrap();
        std::fs::write(ws.join("cfg/real.json"), "{}").unwrap();
        let text = "version = 1\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\ndeny = [\"${WORKSPACE}/.env\"]\nprotect = [\"${WORKSPACE}/.claude/settings.json\", \"${WORKSPACE}/.git/config\"]\n";
        let vars = crate::Vars { workspace: ws.clone(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let compile = || crate::Policy::from_toml_str("p.toml", text, &vars).unwrap();
        // Compiled while the link was away: it is back now.
        let p = compile();
        assert_eq!(p.filesystem.drift(), None);
        std::os::unix::fs::symlink("../cfg/real.json", ws.join(".claude/settings.json")).unwrap();
        let d = p.filesystem.drift().expect("a drift");
        assert_eq!(d.rule, "filesystem.protect[0]");
        assert_eq!(
            (d.was.as_str(), d.now.as_deref()),
            (ws.join(".claude/settings.json").to_str().unwrap(), ws.join("cfg/real.json").to_str())
        );
        assert!(d.to_string().contains("names"), "{d}");
        // Compiled with the link: gone now.
        let p = compile();
        assert_eq!(p.filesystem.drift(), None);
        std::fs::remove_file(ws.join(".claude/settings.json")).unwrap();
        assert!(p.filesystem.drift().is_some());
        // A `.git` file that appeared since (its directory was not protected).
        let p = compile();
        std::fs::create_dir_all(ws.join(".bare")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ./.bare\n").unwrap();
        let d = p.filesystem.drift().expect("a drift");
        assert!(d.now.is_none() && d.raw.contains(".git"), "{d:?}");
        let p = compile();
        assert_eq!(p.filesystem.drift(), None);
        std::fs::remove_file(ws.join(".git")).unwrap();
        assert!(p.filesystem.drift().is_some(), "and one that went");
    }

    #[test]
    fn normalize_folds_dots() {
        let p = normalize(Path::new("/nonexistent-paddock/a/./b/../c"), Path::new("/"));
        assert_eq!(p, PathBuf::from("/nonexistent-paddock/a/c"));
        let p = normalize(Path::new("x/../y"), Path::new("/nonexistent-paddock"));
        assert_eq!(p, PathBuf::from("/nonexistent-paddock/y"));
        assert_eq!(normalize(Path::new("/../../.."), Path::new("/")), PathBuf::from("/"));
    }

    /// A tree with links: `link` (absolute, to `real/inner`), `rel` (relative, to `real`),
    /// `real/up` (to `../real/inner/..`) and `loop` (to itself).
    fn linked_tree() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        std::fs::create_dir_all(root.join("real/inner")).unwrap();
        symlink(root.join("real/inner"), root.join("link")).unwrap();
        symlink("real", root.join("rel")).unwrap();
        symlink("../real/inner/..", root.join("real/up")).unwrap();
        symlink(root.join("loop"), root.join("loop")).unwrap();
        (t, root)
    }

    #[test]
    fn normalize_resolves_symlinks_then_dotdot() {
        let (_t, root) = linked_tree();
        // link/.. is real/, not root/
        assert_eq!(normalize(&root.join("link/../x"), Path::new("/")), root.join("real/x"));
        assert_eq!(normalize(&root.join("rel/inner/f"), Path::new("/")), root.join("real/inner/f"));
        // a loop does not hang
        let _ = normalize(&root.join("loop/x"), Path::new("/"));
    }

    /// One batch's shared lookups answer as a lookup per normalisation does, through
    /// links, `..`, missing parts and a loop, in any order.
    #[test]
    fn a_batch_of_normalisations_answers_as_single_ones() {
        let (_t, root) = linked_tree();
        let paths = [
            "link/../x",
            "rel/inner/f",
            "real/up/inner",
            "missing/a/../b",
            "link",
            "rel/../rel/inner",
            "loop/x",
            "real/inner/../../link/y",
            "rel/up/up/inner",
        ];
        let mut batch = Lookups::default();
        for round in 0..2 {
            for p in paths.iter().chain(paths.iter().rev()) {
                let p = root.join(p);
                assert_eq!(batch.normalize(&p, Path::new("/")), normalize(&p, Path::new("/")), "{p:?}, round {round}");
            }
        }
        assert_eq!(batch.normalize(Path::new("rel/inner"), &root), root.join("real/inner"));
    }

    fn masks(globs: &[&str]) -> Masks {
        let entries = globs
            .iter()
            .map(|g| RawPathEntry {
                raw: g.to_string(),
                expanded: PathBuf::from(g),
                origin: Origin { file: Arc::new(PathBuf::from("test.toml")), line: 1, col: 1 },
                literal: false,
            })
            .collect();
        let mut problems = Problems::default();
        let (_, m) = Masks::compile("deny", entries, &mut Lookups::default(), &mut problems);
        assert!(problems.into_result().is_ok());
        m
    }

    /// A path beneath no glob's literal prefix is answered without building the set, and
    /// every path is answered as the whole set answers it.
    #[test]
    fn paths_beneath_no_glob_prefix_skip_the_set() {
        let globs = [
            "/nonexistent-paddock/ws/**/.env",
            "/nonexistent-paddock/ws/**/*.pem",
            "/nonexistent-paddock/home/.ssh",
            "/nonexistent-paddock/h*/x",
            "/nonexistent-paddock/ws/a\\*b/c",
            "/nonexistent-paddock/ws/{a/b,c}/d",
        ];
        let m = masks(&globs);
        assert_eq!(m.first(Path::new("/usr/bin/true")), None);
        assert_eq!(m.first(Path::new("/nonexistent-paddockx/ws/.env")), None);
        assert!(m.set.get().is_none(), "a path beneath no prefix built the set");
        let paths = [
            "/usr/bin/true",
            "/nonexistent-paddock",
            "/nonexistent-paddock/ws",
            "/nonexistent-paddock/ws/.env",
            "/nonexistent-paddock/ws/a/b/.env/inner",
            "/nonexistent-paddock/ws/k.pem",
            "/nonexistent-paddock/home/.ssh/id",
            "/nonexistent-paddock/home/x",
            "/nonexistent-paddock/hx/x/y",
            "/nonexistent-paddock/ws/a*b/c",
            "/nonexistent-paddock/ws/a/b/d",
            "/nonexistent-paddock/ws/c/d/e",
            "/nonexistent-paddockx/hx/x",
        ];
        // What each entry covers as one globset of `P` and `P/**` per entry says it.
        let mut whole = globset::GlobSetBuilder::new();
        for g in &m.globs {
            let build =
                |p: &str| globset::GlobBuilder::new(p).literal_separator(true).backslash_escape(true).build().unwrap();
            whole.add(build(g));
            whole.add(build(&format!("{}/**", g.trim_end_matches('/'))));
        }
        let whole = whole.build().unwrap();
        // And every path of a generated tree, four levels deep.
        let names = ["ws", "home", "hx", ".env", "x", "a", "b", "c", "d", "k.pem", ".ssh", "a*b", "id"];
        let mut tree = vec![PathBuf::from("/nonexistent-paddock")];
        let mut level = tree.clone();
        for _ in 0..4 {
            level = level.iter().flat_map(|p| names.iter().map(move |n| p.join(n))).collect();
            tree.extend(level.iter().cloned());
        }
        for p in paths.iter().map(Path::new).chain(tree.iter().map(PathBuf::as_path)) {
            let expected = whole.matches(p).into_iter().map(|k| m.glob_rule[k / 2]).min();
            let literal = p.ancestors().filter_map(|a| m.literal.get(a)).copied().min();
            let expected = match (literal, expected) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            assert_eq!(m.first(p), expected, "{}", p.display());
        }
        assert_eq!(m.first(Path::new("/nonexistent-paddock/ws/x/.env")), Some(0));
        // A glob with a trailing `/` covers the directories it names and what they hold.
        let dirs = masks(&["/nonexistent-paddock/ws/priv*/"]);
        for p in ["/nonexistent-paddock/ws/private", "/nonexistent-paddock/ws/private/key"] {
            assert_eq!(dirs.first(Path::new(p)), Some(0), "{p}");
        }
        assert_eq!(dirs.first(Path::new("/nonexistent-paddock/ws/public/key")), None);
        assert_eq!(m.first(Path::new("/nonexistent-paddock/hx/x")), Some(3));
    }
}
