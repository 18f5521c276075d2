//! What a call leaves behind under a `deny` or `protect` glob. The mount view makes every
//! match that exists at a call's start read-only (protect) or masks it (deny), but it
//! cannot hold a name that is not there: under a write grant, a call can create a new
//! match (`sub/.envrc` for the user's direnv, `.git/modules/x/config` with
//! `core.fsmonitor`, a hook), link one, or rename a file or a directory so that it, or
//! something inside it, lands as one. Literal paths are handled by [`crate::absent`];
//! this handles the globs the same way: every match present after the call that was not
//! the same object at its start (path, and [`crate::identity::Identity`]: device, inode,
//! type and birth time, so an object made under a freed inode number is not taken for the
//! one removed) is moved aside (renamed beside itself, never deleted) and named in
//! `call.end` (`moved_aside`); but a match of the start that the call carried elsewhere by
//! renaming a directory above it, where the same rule still matches it, is the user's
//! object and stays ([`Planted::carried`]). A match that was a symlink at the start (the
//! view leaves a symlink as it is, so the call could remove it) and is not that very
//! symlink after the call is made again with its target, once what the call put there is
//! moved aside.
//!
//! How: one scan of the places a glob can match under the call's write grants before the
//! child runs, one after it ends ([`scan`]), and the difference. Only directories on the
//! way to a glob's literal prefix, or beneath it, are read (`.git/modules` for
//! `.git/modules/**/config`; the whole workspace for `**/.envrc`); every directory is read
//! relative to its parent's descriptor, no symlink is followed, and a match is moved by its
//! parent's descriptor. A symlink on the way to a prefix (`.git/modules` made a link
//! elsewhere) counts as a match of that rule.
//!
//! Why a scan at both ends rather than ctime alone: ctime does move on every create, link
//! and rename, and the agent cannot set it, but a directory renamed into place keeps the
//! old ctimes of what it holds, and a directory's ctime moves both when it is renamed and
//! when an entry is added: "new" would then take in the user's own `.envrc` beside any
//! file the call wrote. Identity at start is exact: a match that existed at the start, at
//! the same path, is never moved. Cost: each scan lists the directories the globs can
//! reach, but keeps their listings ([`scan::Listings`], in memory, for the process: a
//! session's calls share them): a directory whose status is unchanged is not read again,
//! so the scan after a call reads only what changed, and a session's next call the same.
//! A `paddock run` (one call a process) keeps them in `$STATE` ([`file`]).
//!
//! Fail closed: a directory that cannot be read at either end, while the child could reach
//! into it, is reported (`call.end` `unchecked`, and the caller's notice), never skipped
//! silently; nothing beneath it is moved.

mod file;
mod scan;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use paddock_audit::{MovedAside, Restored, Unchecked};
use paddock_globs::{literal_prefix, PathGlobs};
use paddock_policy::Policy;

use scan::{beneath, Listings};

use crate::identity::Identity;

/// Listings of earlier scans in this process, by [`Planted::key`] (the rules and roots
/// they were made for): each scan takes them and leaves its own.
static KEPT: Mutex<Option<HashMap<u64, Listings>>> = Mutex::new(None);

fn kept() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Listings>>> {
    KEPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `deny` and `protect` globs of a policy, compiled as the view compiles them.
pub(crate) struct Globs {
    /// Rule id, glob, literal prefix.
    rules: Vec<(String, String, PathBuf)>,
    /// The rules' globs, compiled as the view compiles them.
    set: Arc<PathGlobs>,
    /// The globs' texts, sorted, each once (as a [`Record`] keeps them).
    texts: Vec<String>,
}

/// `patterns` sorted, each once.
fn texts(patterns: &[&str]) -> Vec<String> {
    let mut texts: Vec<String> = patterns.iter().map(|g| g.to_string()).collect();
    texts.sort();
    texts.dedup();
    texts
}

/// The globs of another running call (`texts`, as its [`Record`] keeps them) compiled as
/// this call's are: `own`'s set when they are its texts (a session's calls share one
/// policy), else compiled once per set of texts ([`THEIRS`]). `None` when they do not
/// compile: then they cover every path.
fn their_globs(own: &Globs, texts: &[String]) -> Option<Arc<PathGlobs>> {
    if own.texts == texts {
        return Some(Arc::clone(&own.set));
    }
    let mut theirs = THEIRS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, g)) = theirs.as_ref().filter(|(k, _)| k.as_slice() == texts) {
        return g.clone();
    }
    let g = PathGlobs::new(texts).ok().map(Arc::new);
    *theirs = Some((texts.to_vec(), g.clone()));
    g
}

/// The other globs [`their_globs`] compiled last, by their texts.
type TheirGlobs = (Vec<String>, Option<Arc<PathGlobs>>);
static THEIRS: Mutex<Option<TheirGlobs>> = Mutex::new(None);

/// The globs compiled last, by their rules' ids and patterns: a session's calls share one
/// policy, and compiling its globs was most of a call's scan.
type CompiledGlobs = (Vec<(String, String)>, Arc<Globs>);
static COMPILED: Mutex<Option<CompiledGlobs>> = Mutex::new(None);

impl Globs {
    /// The globs of `policy`, compiled once per set of rules ([`COMPILED`]).
    fn of(policy: &Policy) -> Result<Arc<Globs>, (String, String)> {
        let key = glob_rules(policy);
        let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, g)) = compiled.as_ref() {
            if *k == key {
                return Ok(Arc::clone(g));
            }
        }
        let g = Arc::new(Globs::new(&key)?);
        *compiled = Some((key, Arc::clone(&g)));
        Ok(g)
    }

    /// The globs of `rules` ([`glob_rules`]; a glob that does not compile: its rule and
    /// the reason).
    fn new(rules: &[(String, String)]) -> Result<Globs, (String, String)> {
        let rules: Vec<(String, String, PathBuf)> =
            rules.iter().map(|(id, g)| (id.clone(), g.clone(), literal_prefix(g))).collect();
        let patterns: Vec<&str> = rules.iter().map(|(_, g, _)| g.as_str()).collect();
        let set = PathGlobs::new(&patterns).map_err(|e| (rules[e.index].0.clone(), e.reason))?;
        Ok(Globs { texts: texts(&patterns), rules, set: Arc::new(set) })
    }

    /// The first rule `path` matches (deny rules come first).
    fn matching(&self, path: &Path) -> Option<usize> {
        self.set.first_match(path)
    }

    /// The first rule whose prefix is `path` or beneath it (a symlink there leads a host
    /// tool that follows it elsewhere).
    fn on_the_way(&self, path: &Path) -> Option<usize> {
        self.rules.iter().position(|(_, _, p)| beneath(p, path))
    }

    /// Whether a match can lie in directory `dir` or beneath it.
    fn relevant(&self, dir: &Path) -> bool {
        self.rules.iter().any(|(_, _, p)| beneath(dir, p) || beneath(p, dir))
    }
}

/// The `deny` and `protect` globs of `policy` (rule id, glob), deny rules first: each as
/// normalised, and as named where a symlink on its literal prefix made them differ
/// (`${WORKSPACE}/.git/modules/**/config` with `.git/modules` the user's link elsewhere: the
/// view protects what it leads to, and the symlink itself is checked here, on the way to
/// the named prefix).
fn glob_rules(policy: &Policy) -> Vec<(String, String)> {
    let fs = &policy.filesystem;
    let mut out = Vec::new();
    for r in fs.deny.iter().chain(&fs.protect).filter(|r| r.is_glob && r.pattern.starts_with('/')) {
        out.push((r.id.to_string(), r.pattern.clone()));
        let named = crate::absent::as_named(r, &fs.write).map(|n| n.to_string_lossy().into_owned());
        if let Some(n) = named.filter(|n| *n != r.pattern) {
            out.push((r.id.to_string(), n));
        }
    }
    out
}

/// A call's start matches as the registry of running calls keeps them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Record {
    /// The roots scanned and the globs (their text).
    roots: Vec<Vec<u8>>,
    globs: Vec<String>,
    /// Path and identity of each match taken as the user's.
    matches: Vec<(Vec<u8>, Identity)>,
    /// Path and target of each of those that is a symlink (a record written before this
    /// field has none: identities alone are compared).
    #[serde(default)]
    links: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A match at a call's start taken as the user's.
#[derive(Debug, Clone)]
struct Start {
    /// What it was.
    id: Identity,
    /// The rule it matched.
    rule: usize,
    /// Its target, when it was a symlink: made again where the call replaced or removed it.
    link: Option<Vec<u8>>,
}

impl Record {
    /// The first symlink this record took as the user's (a match, or a link on the way to
    /// a glob's literal prefix as named, `.git/modules` → elsewhere) that is not that very
    /// symlink now (removed, replaced, or moved away and back is fine: the same object), and
    /// how: a glob a call compiles with it away has its prefix resolved to the absent name.
    pub(crate) fn unsettled(&self) -> Option<(PathBuf, &'static str)> {
        use std::os::unix::ffi::OsStrExt;
        self.matches.iter().filter(|(_, id)| id.file_type() == rustix::fs::FileType::Symlink).find_map(|(p, id)| {
            let path = Path::new(std::ffi::OsStr::from_bytes(p));
            // The target too: where timestamps are coarse, a symlink made within the tick
            // the user's was made in, under its freed inode number, has its identity.
            let target = self.links.iter().find(|(l, _)| l == p).map(|(_, t)| t);
            let same_target = || {
                target.is_none_or(|t| {
                    crate::identity::link_target(rustix::fs::CWD, path.as_os_str()).is_ok_and(|now| now == *t)
                })
            };
            match crate::identity::status_at(rustix::fs::CWD, path.as_os_str()) {
                Ok(st) if st.id == *id && same_target() => None,
                Ok(_) => Some((path.to_path_buf(), "was replaced or changed")),
                Err(rustix::io::Errno::NOENT) => Some((path.to_path_buf(), "is gone")),
                Err(_) => Some((path.to_path_buf(), "cannot be looked at")),
            }
        })
    }
}

/// The matches of the globs at a call's start, to compare with those after it.
pub(crate) struct Planted {
    globs: Arc<Globs>,
    roots: Vec<PathBuf>,
    /// paddock's own state beneath the roots ([`Policy::hidden_paths`]): every view masks
    /// it, so no call can plant anything there, and nothing there is ever moved aside; the
    /// scans do not look in.
    own: Vec<PathBuf>,
    /// Each match at the start taken as the user's, by path.
    start: HashMap<PathBuf, Start>,
    /// Directories the start scan could not read.
    failed: Vec<(PathBuf, String)>,
    /// The listings of the start scan, and what they are kept under.
    listings: Listings,
    key: u64,
    /// Where the listings are kept on disk, when no call can write there, how many
    /// listings were loaded, and how many the start scan read and kept.
    file: Option<PathBuf>,
    loaded: usize,
    added: usize,
    /// Of those, the listings of directories long unchanged
    /// ([`paddock_sandbox::long_unchanged`]).
    long_unchanged: usize,
    /// Another running call took matches of the start away from the user's
    /// ([`Planted::restrict`]): they are this call's to move aside if still there.
    restricted: bool,
    /// Paths the literal rules' settling handled already ([`Planted::handled`]).
    done: std::collections::HashSet<PathBuf>,
    /// The mounts the start scan met, for the scan after the call.
    mounts: scan::Mounts,
}

/// What a start's scan found ([`Planted::scanned`]), before another running call restricted
/// it: to stand for a later start's scan of the same rules and roots while nothing of the
/// scanned directories changed since (a session's view stamp says so).
#[derive(Clone)]
pub(crate) struct Scanned {
    key: u64,
    start: HashMap<PathBuf, Start>,
    failed: Vec<(PathBuf, String)>,
    mounts: scan::Mounts,
}

impl Planted {
    /// Scans the matches of `policy`'s globs under `writes` (the call's write grants) now;
    /// listings are kept beside `view_cache` (`$STATE/view-cache`) when no call can write
    /// there (outside every write grant, or under a path every view masks).
    #[cfg(test)]
    pub(crate) fn before(policy: &Policy, writes: &[PathBuf], view_cache: Option<&Path>) -> Planted {
        Planted::before_or(policy, writes, view_cache, None)
    }

    /// [`Planted::before`], with `scanned` standing for the scan when it was made for the
    /// same rules and roots: the caller vouches that nothing of the scanned directories
    /// changed since (nothing created, removed, renamed or bound in any, no mode changed).
    pub(crate) fn before_or(
        policy: &Policy,
        writes: &[PathBuf],
        view_cache: Option<&Path>,
        scanned: Option<&Scanned>,
    ) -> Planted {
        let (globs, failed) = match Globs::of(policy) {
            Ok(g) => (g, Vec::new()),
            // The view refuses such a policy first; should one get here, say so.
            Err((rule, e)) => {
                let none = Globs { rules: Vec::new(), set: Arc::default(), texts: Vec::new() };
                (Arc::new(none), vec![(PathBuf::from(rule), e)])
            }
        };
        let own_state = policy.hidden_paths();
        let mut roots: Vec<PathBuf> =
            writes.iter().filter(|w| globs.relevant(w) && !own_state.iter().any(|o| beneath(w, o))).cloned().collect();
        roots.sort();
        roots.dedup();
        let all = roots.clone();
        roots.retain(|r| !all.iter().any(|o| o != r && beneath(r, o)));
        let own: Vec<PathBuf> = own_state.iter().filter(|o| roots.iter().any(|r| beneath(o, r))).cloned().collect();
        let key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for (id, g, _) in &globs.rules {
                (id, g.as_str()).hash(&mut h);
            }
            roots.hash(&mut h);
            own.hash(&mut h);
            h.finish()
        };
        let file = view_cache.map(|v| file::path_for(v, key)).filter(|f| {
            !writes.iter().any(|w| f.starts_with(w)) || policy.hidden_paths().iter().any(|h| f.starts_with(h))
        });
        let kept_listings = kept().as_mut().and_then(|k| k.remove(&key));
        if let Some(s) = scanned.filter(|s| s.key == key) {
            // The listings stay for the scan after the call, should something change.
            let listings = kept_listings.unwrap_or_default();
            let (start, failed, mounts) = (s.start.clone(), s.failed.clone(), s.mounts.clone());
            tracing::debug!(matches = start.len(), "glob matches before the call: unchanged since the last scan");
            return Planted {
                globs,
                roots,
                own,
                start,
                failed,
                loaded: listings.len(),
                listings,
                key,
                file,
                added: 0,
                long_unchanged: 0,
                restricted: false,
                done: Default::default(),
                mounts,
            };
        }
        let old = match kept_listings {
            Some(l) => l,
            None => file.as_deref().map(|f| file::load(f, globs.rules.len())).unwrap_or_default(),
        };
        let mut listings = Listings::default();
        let loaded = old.len();
        let mut s = timed_scan(&globs, &roots, &own, &old, &mut listings, None, "glob matches before the call");
        let mounts = std::mem::take(&mut s.mounts);
        let mut failed = failed;
        failed.extend(s.failed);
        let start = s.found.iter().filter_map(|f| Some((f.path.clone(), start_of(f, &mut failed)?))).collect();
        Planted {
            globs,
            roots,
            own,
            start,
            failed,
            listings,
            key,
            file,
            loaded,
            added: s.added,
            long_unchanged: s.long_unchanged,
            restricted: false,
            done: Default::default(),
            mounts,
        }
    }

    /// What the scan at the start found, to stand for a later one ([`Planted::before_or`]).
    /// Taken before [`Planted::restrict`].
    pub(crate) fn scanned(&self) -> Scanned {
        Scanned { key: self.key, start: self.start.clone(), failed: self.failed.clone(), mounts: self.mounts.clone() }
    }

    /// Leaves alone the paths the literal rules' settling ([`crate::absent`]) moved aside
    /// or made the user's symlink again at: a literal path a glob matches too (the
    /// workspace's `.envrc`) is settled once, and the symlink made again there is not
    /// taken for the call's.
    pub(crate) fn handled(&mut self, moved: &[MovedAside]) {
        self.done.extend(moved.iter().map(|m| PathBuf::from(&m.from)));
    }

    /// The directories scanned (the call's write grants where a glob can match).
    pub(crate) fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// What [`Planted::settle`] finds when the caller vouches that nothing of the scanned
    /// directories changed since the start (a session's view stamp): no new match, and the
    /// directories the start could not read, still unchecked. No scan; the start's listings
    /// are kept for the next one. Where another running call took matches of the start
    /// away from the user's, those are not the user's and are still there: the full
    /// [`Planted::settle`] then moves them aside.
    pub(crate) fn settled_unchanged(self) -> (Vec<MovedAside>, Vec<Unchecked>) {
        if self.restricted {
            return self.settle();
        }
        tracing::debug!("glob matches after the call: nothing changed since the start");
        let unchecked = unchecked(&self.failed);
        kept().get_or_insert_with(HashMap::new).insert(self.key, self.listings);
        (Vec::new(), unchecked)
    }

    /// What this call takes as the user's, for the registry of running calls.
    pub(crate) fn record(&self) -> Record {
        let bytes = |p: &Path| p.as_os_str().as_bytes().to_vec();
        Record {
            roots: self.roots.iter().map(|r| bytes(r)).collect(),
            globs: self.globs.texts.clone(),
            matches: self.start.iter().map(|(p, s)| (bytes(p), s.id)).collect(),
            links: self.start.iter().filter_map(|(p, s)| Some((bytes(p), s.link.clone()?))).collect(),
        }
    }

    /// Takes as the user's only the matches another running call took as its own at its
    /// start (as the same object) when that call's scan covered them (one of its roots
    /// holds the match, and one of its globs matches it: its workspace may hold this
    /// call's, so its globs are other texts): a match that call's child made, or moved
    /// into place, since then is not the user's.
    pub(crate) fn restrict(&mut self, other: &Record) {
        if self.start.is_empty() {
            return; // nothing taken as the user's: nothing to give up
        }
        let theirs: std::collections::HashSet<(&[u8], Identity)> =
            other.matches.iter().map(|(p, id)| (p.as_slice(), *id)).collect();
        let globs = their_globs(&self.globs, &other.globs);
        let before = self.start.len();
        self.start.retain(|path, s| {
            let covered = other.roots.iter().any(|r| beneath(path, Path::new(std::ffi::OsStr::from_bytes(r))))
                && globs.as_ref().is_none_or(|g| g.is_match(path));
            !covered || theirs.contains(&(path.as_os_str().as_bytes(), s.id))
        });
        self.restricted |= self.start.len() < before;
    }

    /// Identity and rule of each match of the start that is not a symlink: a match after
    /// the call at another path, of the same rule and the same object (device, inode, type
    /// and a stamp of its making that no object made during the call has), with no other
    /// name, is the user's, carried there when the call renamed a directory above it. A
    /// symlink is not: the settling of the user's symlinks is by path ([`Planted::settle`]
    /// makes one that is gone again); nor an identity without a stamp
    /// ([`Identity::stamped`]).
    fn carried(&self) -> std::collections::HashSet<(Identity, usize)> {
        self.start
            .values()
            .filter(|s| s.link.is_none() && s.id.file_type() != rustix::fs::FileType::Symlink && s.id.stamped())
            .map(|s| (s.id, s.rule))
            .collect()
    }

    /// Moves aside each match that was not there, as the same object, at the start
    /// (`NAME` → `NAME.paddock-moved-SECS-PID`, by its parent's descriptor); returns the
    /// moves, failed ones with their error, and the directories that could not be checked.
    pub(crate) fn settle(&self) -> (Vec<MovedAside>, Vec<Unchecked>) {
        if self.roots.is_empty() && self.failed.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let mut listings = Listings::default();
        let end = timed_scan(
            &self.globs,
            &self.roots,
            &self.own,
            &self.listings,
            &mut listings,
            Some(&self.mounts),
            "glob matches after the call",
        );
        // Written back as the view's cache is: once enough listings were added to be worth
        // the write, or one of a directory long unchanged (a listing left out costs every
        // later call one read of its directory).
        let worth = paddock_sandbox::listings_worth_saving(
            self.added + end.added,
            self.long_unchanged + end.long_unchanged,
            self.loaded,
        );
        if let Some(f) = self.file.as_deref().filter(|_| worth) {
            if let Err(e) = file::save(f, &listings) {
                tracing::warn!(path = %f.display(), error = %e, "the glob scan's listings were not saved: the next call reads every directory");
            }
        }
        kept().get_or_insert_with(HashMap::new).insert(self.key, listings);
        let unchecked = unchecked(self.failed.iter().chain(&end.failed));
        let unknown = |p: &Path| self.failed.iter().chain(&end.failed).any(|(d, _)| beneath(p, d));
        let there: std::collections::HashSet<PathBuf> = end.found.iter().map(|f| f.path.clone()).collect();
        let carried = self.carried();
        let mut moved = Vec::new();
        for f in end.found {
            let start = self.start.get(&f.path);
            let name = std::ffi::OsStr::from_bytes(f.name.to_bytes());
            if start.is_some_and(|s| s.id == f.id && same_link(s, &f, name))
                || unknown(&f.path)
                || self.done.contains(&f.path)
            {
                continue;
            }
            let one_name = f.links == 1 || f.id.file_type() == rustix::fs::FileType::Directory;
            if start.is_none() && one_name && carried.contains(&(f.id, f.rule)) {
                // The user's match, carried to this path with a directory the call renamed
                // (`mv p q` with `p/key.pem`): not made by the call, and its content is the
                // user's (masked or read-only throughout), so it stays where it now is. Only
                // an object of one name: a second name of the user's match is a link the
                // call made (through a name of the user's no rule matches: red team), and
                // the match's own name still holds it (a mount point cannot be removed).
                tracing::debug!(path = %f.path.display(), "a match of the start, moved with its directory by the call: left as it is");
                continue;
            }
            // Beside itself, by the parent's descriptor, never following or overwriting.
            let (to, error) = match crate::aside::move_aside_at(f.parent.as_fd(), name) {
                Ok(new) => (f.path.with_file_name(new).to_string_lossy().into_owned(), String::new()),
                Err(e) => (String::new(), e.to_string()),
            };
            let rule = self.globs.rules[f.rule].0.clone();
            tracing::debug!(rule = %rule, path = %f.path.display(), to = %to, error = %error, "moved aside: a new match of a deny or protect glob");
            // The user's symlink, replaced: made again once the replacement is aside.
            let restored = start.and_then(|s| s.link.as_deref()).map(|link| {
                let place = if error.is_empty() {
                    Ok(f.parent.as_fd())
                } else {
                    Err("what the call put there could not be moved aside".to_string())
                };
                restore(place, name, link)
            });
            moved.push(MovedAside { rule, from: f.path.to_string_lossy().into_owned(), to, error, restored });
        }
        // The user's symlinks the call removed (or carried away with their directory).
        let mut gone: Vec<(&PathBuf, &Start)> =
            self.start.iter().filter(|(p, s)| s.link.is_some() && !there.contains(*p) && !unknown(p)).collect();
        gone.retain(|(p, _)| !self.done.contains(*p));
        gone.sort_by(|a, b| a.0.cmp(b.0));
        for (path, s) in gone {
            let Some(link) = s.link.as_deref() else { continue };
            let (mut to, mut error) = (String::new(), String::new());
            let restored =
                match self.roots.iter().find(|r| beneath(path, r)).map(|r| crate::aside::open_parent(r, path)) {
                    Some(Ok((dir, name))) => {
                        // Something no glob matches by its path put there (a directory where a
                        // symlink on the way to a prefix was): the call's, moved aside first.
                        if rustix::fs::statat(&dir, &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                            match crate::aside::move_aside_at(dir.as_fd(), &name) {
                                Ok(new) => to = path.with_file_name(new).to_string_lossy().into_owned(),
                                Err(e) => error = e.to_string(),
                            }
                        }
                        let place = if error.is_empty() {
                            Ok(dir.as_fd())
                        } else {
                            Err("what the call put there could not be moved aside".into())
                        };
                        restore(place, &name, link)
                    }
                    Some(Err(e)) => {
                        restore(Err(format!("its directory cannot be reached: {e}")), path.as_os_str(), link)
                    }
                    None => restore(Err("it is beneath no scanned root".into()), path.as_os_str(), link),
                };
            let rule = self.globs.rules[s.rule].0.clone();
            moved.push(MovedAside {
                rule,
                from: path.to_string_lossy().into_owned(),
                to,
                error,
                restored: Some(restored),
            });
        }
        (moved, unchecked)
    }
}

/// Whether match `f` (named `name` in its parent), of the same identity as the user's
/// `start`, still points where the user's symlink did. A symlink cannot be changed in
/// place, but where the filesystem's timestamps are coarse (whole seconds on ext4 with
/// 128-byte inodes, which keep no birth time) one made within the same tick as the user's,
/// under the inode number the user's freed, has its identity: its target tells them apart.
/// One whose target cannot be read is not the user's.
fn same_link(start: &Start, f: &scan::Found, name: &std::ffi::OsStr) -> bool {
    start.link.as_ref().is_none_or(|t| crate::identity::link_target(f.parent.as_fd(), name).is_ok_and(|now| now == *t))
}

/// What the start takes of match `f`: its identity and rule, and a symlink's target (read
/// by its parent's descriptor; one that cannot be read is noted in `failed`, and the
/// match not taken as the user's: moved aside should the call leave anything there).
fn start_of(f: &scan::Found, failed: &mut Vec<(PathBuf, String)>) -> Option<Start> {
    let mut start = Start { id: f.id, rule: f.rule, link: None };
    if f.id.file_type() == rustix::fs::FileType::Symlink {
        let name = std::ffi::OsStr::from_bytes(f.name.to_bytes());
        match crate::identity::link_target(f.parent.as_fd(), name) {
            Ok(t) => start.link = Some(t),
            Err(e) => {
                failed.push((f.path.clone(), format!("its symlink cannot be read: {e}")));
                return None;
            }
        }
    }
    Some(start)
}

/// Makes the user's symlink `name` → `link` again in `place` (or says why there is no place).
fn restore(place: Result<std::os::fd::BorrowedFd<'_>, String>, name: &std::ffi::OsStr, link: &[u8]) -> Restored {
    let error = match place {
        Ok(dir) => match crate::aside::restore_symlink_at(dir, name, link) {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        },
        Err(why) => why,
    };
    tracing::debug!(name = %name.to_string_lossy(), error = %error, "the user's symlink under a deny or protect glob, replaced or removed by the call: made again");
    Restored { target: String::from_utf8_lossy(link).into_owned(), error, path: String::new() }
}

/// The directories in `failed` as `call.end` names them, each once.
fn unchecked<'a>(failed: impl IntoIterator<Item = &'a (PathBuf, String)>) -> Vec<Unchecked> {
    let mut unchecked: Vec<Unchecked> = Vec::new();
    for (path, error) in failed {
        let path = path.to_string_lossy().into_owned();
        if !unchecked.iter().any(|u| u.path == path) {
            unchecked.push(Unchecked { path, error: error.clone() });
        }
    }
    unchecked
}

/// [`scan::scan`], logged (at debug) with what it read, kept and found, and how long it took.
fn timed_scan(
    globs: &Globs,
    roots: &[PathBuf],
    own: &[PathBuf],
    old: &Listings,
    listings: &mut Listings,
    start_mounts: Option<&scan::Mounts>,
    what: &str,
) -> scan::Scan {
    let t = std::time::Instant::now();
    let s = scan::scan(globs, roots, own, old, listings, start_mounts);
    tracing::debug!(
        read = s.read,
        kept = listings.len(),
        matches = s.found.len(),
        elapsed_us = t.elapsed().as_micros() as u64,
        "{what}"
    );
    s
}

/// The line that tells a person (or an agent's outcome) of a directory not checked, escaped.
pub fn describe_unchecked(u: &Unchecked) -> String {
    format!(
        "paddock: {} could not be checked for files the call may have left under a deny or protect rule ({}): look before a tool on the host runs there",
        paddock_audit::Escaped(&u.path),
        paddock_audit::Escaped(&u.error)
    )
}

#[cfg(test)]
mod tests;
