//! Absolute path globs, as paddock's `deny` and `protect` rules are written, compiled so
//! that the common ones need no regex.
//!
//! ```
//! use paddock_globs::PathGlobs;
//! use std::path::Path;
//!
//! let globs = PathGlobs::new(&["/work/p/**/.env", "/work/p/**/*.pem", "/etc/ssh/ssh_host_*_key"]).unwrap();
//! assert!(globs.is_match(Path::new("/work/p/app/.env")));
//! assert_eq!(globs.first_match(Path::new("/work/p/keys/server.pem")), Some(1));
//! assert_eq!(globs.first_match(Path::new("/etc/ssh/ssh_host_rsa_key")), Some(2));
//! assert!(!globs.is_match(Path::new("/work/other/.env")));
//! // `*` stays within one component, `**` crosses them.
//! assert!(!globs.is_match(Path::new("/etc/ssh/ssh_host_a/b_key")));
//! // A glob that does not compile names its index.
//! assert_eq!(PathGlobs::new(&["/a/**", "/b/[z-a]"]).unwrap_err().index, 1);
//! ```
//!
//! Syntax: globset's, with `literal_separator` (`*`, `?` and classes never match `/`) and
//! `backslash_escape` (`\*` is a literal star); `**` as a whole component matches any
//! number of components, `{a,b}` alternatives.
//!
//! How: compiling the regexes of a policy's globs was a tenth of a start's CPU. A glob's
//! literal prefix (its components before the first with glob syntax) can only match
//! itself, so `/ws/**/.env` matches exactly the paths `/ws/REL` where `REL` matches
//! `**/.env`. globset matches `**/NAME` by a hash of base names and `**/*.EXT` by one of
//! extensions, without a regex; so the globs are kept as (literal prefix, the rest as a
//! relative glob), grouped by prefix. A glob with no syntax at all (most of a policy's:
//! `/etc/shadow`, `~/.ssh`) matches exactly its own path, so it is kept as bytes and looked
//! up in a map, with no `GlobSet` built for it; the few others with no syntax after their
//! prefix are matched whole. A relative glob of whole components only (`**`, names, names
//! with `*`: `**/.git/modules/**/config`, `**/.envrc`) is matched component by component,
//! with no set at all (its regex, or globset's literal automaton, cost a sandbox's view walk
//! and a call's glob scan half a millisecond each per run); a prefix's set of the others is
//! built when a path beneath it is first matched. [`literal_prefix`] gives the prefix on
//! its own: every path a glob matches lies at or beneath it.
//!
//! A glob that does not parse is an error of [`PathGlobs::new`]. One that parses but whose
//! regex the engine refuses (over its size limit: tens of thousands of `{a,b}`
//! alternatives) is taken to match every path beneath its literal prefix: the crate's
//! callers mask or protect what matches, and err on that side.
#![deny(missing_docs)]

mod components;

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use components::Components;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// One prefix's relative globs, parsed; their `GlobSet` is built when a path beneath the
/// prefix is first matched (a regex costs tens of microseconds to build, and most of a
/// policy's prefixes are never reached by a call).
#[derive(Debug, Clone)]
struct Group {
    /// The literal prefix (`/` or `/a/b`, without a trailing `/`).
    prefix: Vec<u8>,
    /// The globs of whole components, matched without a set ([`Components`]), with their
    /// index in the list given.
    by_components: Vec<(usize, Components)>,
    /// The others, parsed.
    globs: Vec<globset::Glob>,
    /// Built on first use; `None` if the build failed (see [`Group::set`]).
    set: OnceLock<Option<GlobSet>>,
    /// The index (in the list given) of each glob of `globs`.
    index: Vec<usize>,
}

impl Group {
    /// The globs of one prefix (`relative`: the paths it matches are relative to the
    /// prefix, so the globs of whole components are matched as [`Components`]).
    fn new(globs: &[Indexed], relative: bool) -> Result<Group, PathGlobError> {
        let mut group = Group {
            prefix: Vec::new(),
            by_components: Vec::new(),
            globs: Vec::new(),
            set: OnceLock::new(),
            index: Vec::new(),
        };
        for (i, g) in globs {
            if let Some(c) = relative.then(|| Components::parse(g)).flatten() {
                group.by_components.push((*i, c));
                continue;
            }
            group.globs.push(parse(g).map_err(|e| PathGlobError { index: *i, reason: e.kind().to_string() })?);
            group.index.push(*i);
        }
        Ok(group)
    }

    /// The set, built now if it was not; `None` if it cannot be: every glob parsed, so
    /// only the regex engine's size limit can refuse it, and such a group is taken to
    /// match every path beneath its prefix (a deny or protect rule errs on its side).
    fn set(&self) -> Option<&GlobSet> {
        self.set
            .get_or_init(|| {
                let mut b = GlobSetBuilder::new();
                for g in &self.globs {
                    b.add(g.clone());
                }
                b.build().ok()
            })
            .as_ref()
    }

    fn is_match(&self, on: &Path) -> bool {
        let by_components = || {
            components::with_names(on.as_os_str().as_bytes(), |names| {
                self.by_components.iter().any(|(_, c)| c.is_match_names(names))
            })
        };
        (!self.by_components.is_empty() && by_components())
            || (!self.globs.is_empty() && self.set().is_none_or(|s| s.is_match(on)))
    }

    /// The indices of the globs `on` matches (all of those of the set if it cannot be built).
    fn matches(&self, on: &Path) -> Vec<usize> {
        let mut out: Vec<usize> = if self.by_components.is_empty() {
            Vec::new()
        } else {
            components::with_names(on.as_os_str().as_bytes(), |names| {
                self.by_components.iter().filter(|(_, c)| c.is_match_names(names)).map(|(i, _)| *i).collect()
            })
        };
        if !self.globs.is_empty() {
            match self.set() {
                Some(s) => out.extend(s.matches(on).into_iter().map(|k| self.index[k])),
                None => out.extend_from_slice(&self.index),
            }
        }
        out
    }
}

/// A list of absolute path globs: which of them a path matches.
#[derive(Debug, Clone, Default)]
pub struct PathGlobs {
    /// Globs without any syntax, each the one path it matches, with its lowest index.
    literal: HashMap<Vec<u8>, usize>,
    groups: Vec<Group>,
    /// Globs with nothing to split off (no literal prefix, or nothing after it), whole.
    whole: Option<Group>,
}

/// A glob that does not compile: its index in the list and the reason.
#[derive(Debug, thiserror::Error)]
#[error("glob {index}: {reason}")]
pub struct PathGlobError {
    /// The glob's index in the list given.
    pub index: usize,
    /// What globset said.
    pub reason: String,
}

/// A glob with its index in the list given.
type Indexed<'a> = (usize, &'a str);

/// What makes a component glob syntax (or an escape) rather than a literal name.
const META: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

/// Splits `pattern` into its literal prefix and the rest (`None`: nothing to split).
fn split(pattern: &str) -> Option<(&str, &str)> {
    let mut end = 0;
    for (i, c) in pattern.char_indices() {
        if c == '/' {
            end = i;
        } else if META.contains(&c) {
            let (prefix, rest) = (&pattern[..end], &pattern[end + 1..]);
            return (pattern.starts_with('/') && !rest.is_empty()).then_some((prefix, rest));
        }
    }
    None
}

/// The components of `pattern` (absolute) before the first with glob syntax or an escape:
/// every path the glob matches lies at or beneath it (`/` when the first has syntax).
pub fn literal_prefix(pattern: &str) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in pattern.split('/').filter(|c| !c.is_empty()) {
        if c.contains(META) {
            break;
        }
        p.push(c);
    }
    p
}

/// `pattern` without trailing slashes (`/` stays `/`).
fn trim_trailing_slashes(pattern: &str) -> &str {
    match pattern.trim_end_matches('/') {
        "" if pattern.starts_with('/') => "/",
        t => t,
    }
}

/// Parses `pattern` as [`PathGlobs::new`] compiles it (trailing slashes dropped, the same
/// options), without compiling a matcher: what is wrong with it, if anything (globset's
/// words). A policy checks its globs with this when it loads and compiles them when a
/// question needs them.
pub fn check(pattern: &str) -> Result<(), String> {
    let pattern = trim_trailing_slashes(pattern);
    // A glob [`PathGlobs::new`] matches by its components alone (a literal prefix, then
    // only `**`, names and names with `*`) never reaches globset there, and has no class,
    // alternative or escape globset could refuse: its parse (which writes out a regex,
    // most of a policy's load) is not needed.
    if by_components(pattern) {
        return Ok(());
    }
    parse(pattern).map(drop).map_err(|e| e.kind().to_string())
}

/// Whether [`PathGlobs::new`] matches `pattern` (trailing slashes dropped) component by
/// component, without globset.
fn by_components(pattern: &str) -> bool {
    split(pattern).is_some_and(|(_, rest)| Components::parse(rest).is_some())
}

/// `path` as a glob that matches only itself: each character of glob syntax escaped.
///
/// ```
/// use paddock_globs::{escape, PathGlobs};
/// use std::path::Path;
///
/// let dir = escape("/work/b[1]");
/// assert_eq!(dir, "/work/b\\[1\\]");
/// let globs = PathGlobs::new(&[format!("{dir}/**/config")]).unwrap();
/// assert!(globs.is_match(Path::new("/work/b[1]/modules/x/config")));
/// assert!(!globs.is_match(Path::new("/work/b1/modules/x/config")));
/// ```
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if META.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One glob with this crate's options.
fn parse(glob: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(glob).literal_separator(true).backslash_escape(true).build()
}

impl PathGlobs {
    /// Compiles `patterns` (absolute globs).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<PathGlobs, PathGlobError> {
        // Each prefix with its relative globs (index, glob).
        let mut split_ones: Vec<(Vec<u8>, Vec<Indexed>)> = Vec::new();
        let mut whole: Vec<Indexed> = Vec::new();
        let mut literal: HashMap<Vec<u8>, usize> = HashMap::new();
        for (i, p) in patterns.iter().enumerate() {
            // A trailing `/` means "the directory": paths are matched without one, so the
            // glob is taken without it (it then covers that directory, and a caller that
            // masks what matches masks it whole; kept, it would match nothing).
            let p = trim_trailing_slashes(p.as_ref());
            if !p.contains(META) {
                // globset matches such a glob by the path's bytes being its own.
                literal.entry(p.as_bytes().to_vec()).or_insert(i);
                continue;
            }
            match split(p) {
                Some((prefix, rest)) => {
                    let prefix = if prefix.is_empty() { b"/".to_vec() } else { prefix.as_bytes().to_vec() };
                    match split_ones.iter_mut().find(|(q, _)| *q == prefix) {
                        Some((_, v)) => v.push((i, rest)),
                        None => split_ones.push((prefix, vec![(i, rest)])),
                    }
                }
                None => whole.push((i, p)),
            }
        }
        let mut out = PathGlobs { literal, ..PathGlobs::default() };
        for (prefix, globs) in split_ones {
            out.groups.push(Group { prefix, ..Group::new(&globs, true)? });
        }
        if !whole.is_empty() {
            out.whole = Some(Group::new(&whole, false)?);
        }
        Ok(out)
    }

    /// Whether `path` (absolute, normalised) matches one of the globs.
    pub fn is_match(&self, path: &Path) -> bool {
        let p = path.as_os_str().as_bytes();
        self.literal.contains_key(p)
            || self
                .groups
                .iter()
                .any(|g| relative(p, &g.prefix).is_some_and(|r| g.is_match(Path::new(std::ffi::OsStr::from_bytes(r)))))
            || self.whole.as_ref().is_some_and(|g| g.is_match(path))
    }

    /// The lowest index of the globs `path` matches.
    pub fn first_match(&self, path: &Path) -> Option<usize> {
        let p = path.as_os_str().as_bytes();
        let mut best: Option<usize> = self.literal.get(p).copied();
        let mut note = |g: &Group, on: &Path| {
            for i in g.matches(on) {
                best = Some(best.map_or(i, |b| b.min(i)));
            }
        };
        for g in &self.groups {
            if let Some(r) = relative(p, &g.prefix) {
                note(g, Path::new(std::ffi::OsStr::from_bytes(r)));
            }
        }
        if let Some(g) = &self.whole {
            note(g, path);
        }
        best
    }
}

/// `path` beneath `prefix`, relative to it (`None` when not strictly beneath).
fn relative<'a>(path: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix)?;
    let rest = if prefix == b"/" { rest } else { rest.strip_prefix(b"/")? };
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every glob shape the presets use, and odd ones, against every path of a small tree:
    /// the split sets answer as one set of the whole globs does.
    #[test]
    fn split_globs_match_as_whole_globs_do() {
        let patterns = [
            "/ws/**/.env",
            "/ws/**/*.pem",
            "/ws/**/*.key",
            "/ws/.git/modules/**/config",
            "/ws/.git/modules/**/hooks",
            "/ws/.git/worktrees/*/config*",
            "/ws/**/.envrc",
            "/etc/ssh/ssh_host_*_key",
            "/ws/**/*.paddock-moved-*",
            "/**/x",
            "/ws/**",
            "/ws/a?c/{b,c}/[de]",
            "/ws/sub/**/.env",
            "/w\\*s/x",
            "**/rel",
            // Literal paths, one twice (the lowest index is the match), one with a slash
            // at the end, the root, and a relative one.
            "/etc/ssh",
            "/ws/.env",
            "/ws/.env",
            "/ws/sub/",
            "/",
            "rel",
        ];
        let names = [
            "ws",
            ".env",
            "a.pem",
            "x.key",
            ".git",
            "modules",
            "m",
            "config",
            "hooks",
            "worktrees",
            "w1",
            "config.worktree",
            ".envrc",
            "etc",
            "ssh",
            "ssh_host_rsa_key",
            "ssh_host_key",
            "f.paddock-moved-1",
            "x",
            "abc",
            "b",
            "c",
            "d",
            "e",
            "sub",
            "w*s",
            "rel",
            "pem",
        ];
        let mut whole = GlobSetBuilder::new();
        for p in &patterns {
            whole.add(GlobBuilder::new(p).literal_separator(true).backslash_escape(true).build().unwrap());
        }
        let whole = whole.build().unwrap();
        let split = PathGlobs::new(&patterns).unwrap();
        let mut paths = vec![String::from("/")];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for f in &frontier {
                for n in &names {
                    next.push(format!("{f}/{n}"));
                }
            }
            paths.extend(next.iter().cloned());
            frontier = next;
        }
        let mut matched = 0;
        for p in &paths {
            let p = Path::new(p);
            let want = whole.matches(p).into_iter().min();
            assert_eq!(split.first_match(p), want, "{}", p.display());
            assert_eq!(split.is_match(p), want.is_some(), "{}", p.display());
            matched += usize::from(want.is_some());
        }
        assert!(matched > 100, "the tree exercises the globs ({matched} matches)");
    }

    /// A glob written with a trailing `/` (a directory) covers the directories it names:
    /// paths come without one, so kept it would match nothing (and mask nothing).
    #[test]
    fn a_trailing_slash_names_the_directory() {
        let g = PathGlobs::new(&["/ws/s*/", "/ws/**/k//", "/etc/x/", "/"]).unwrap();
        assert_eq!(g.first_match(Path::new("/ws/sx")), Some(0));
        assert_eq!(g.first_match(Path::new("/ws/a/b/k")), Some(1));
        assert_eq!(g.first_match(Path::new("/etc/x")), Some(2));
        assert_eq!(g.first_match(Path::new("/ws/sx/inner")), None, "what lies beneath is the caller's to cover");
        assert_eq!(trim_trailing_slashes("//"), "/");
        assert_eq!(trim_trailing_slashes("a/"), "a");
    }

    /// A glob that parses but whose regex is over the engine's size limit (60,000
    /// alternatives) is not an error when the globs are compiled, and is built only when a
    /// path beneath its prefix is matched: it then covers every such path, and nothing else.
    #[test]
    fn a_glob_too_big_to_build_covers_everything_beneath_its_prefix() {
        let alts: Vec<String> = (0..60_000).map(|i| format!("?{i}?")).collect();
        let big = format!("/x/**/{{{}}}", alts.join(","));
        let g = PathGlobs::new(&["/etc/shadow", big.as_str(), "/y/**/*.pem"]).unwrap();
        assert_eq!(g.first_match(Path::new("/y/a.pem")), Some(2), "other groups answer as before");
        assert_eq!(g.first_match(Path::new("/etc/shadow")), Some(0));
        assert!(!g.is_match(Path::new("/y/a")));
        let x = g.groups.iter().find(|g| g.prefix == b"/x").unwrap();
        assert!(x.set.get().is_none(), "nothing beneath /x was matched yet");
        assert!(g.is_match(Path::new("/x/anything")));
        assert_eq!(g.first_match(Path::new("/x/a/b")), Some(1));
        assert!(!g.is_match(Path::new("/xy")), "only beneath its prefix");
        assert!(matches!(x.set.get(), Some(None)), "its set could not be built");
    }

    #[test]
    fn a_bad_glob_is_named_by_its_index() {
        let e = PathGlobs::new(&["/ws/**/.env", "/ws/[z-a]"]).unwrap_err();
        assert_eq!(e.index, 1);
        assert_eq!(check("/ws/[z-a]").map_err(|r| r == e.reason), Err(true));
        assert_eq!(check("/ws/**/.env/"), Ok(()));
    }

    /// `check` answers without globset only for globs globset accepts: every glob of up
    /// to four components over `**`, `*`, names with and without `*`, and a few that
    /// globset refuses, `check` agrees with globset's own parse.
    #[test]
    fn check_without_globset_only_where_globset_agrees() {
        let parts = ["**", "*", "a", "a*", "*.pem", "a*b*", "***", "a**", "[z-a]", "{a", "b\\", "", "?"];
        let mut globs = Vec::new();
        for n in 1..=4u32 {
            for i in 0..parts.len().pow(n) {
                let (mut i, mut g) = (i, String::from("/ws"));
                for _ in 0..n {
                    g.push('/');
                    g.push_str(parts[i % parts.len()]);
                    i /= parts.len();
                }
                globs.push(g);
            }
        }
        let mut shortcut = 0;
        for g in &globs {
            let globset = parse(trim_trailing_slashes(g)).map(drop).map_err(|e| e.kind().to_string());
            assert_eq!(check(g), globset, "{g}");
            shortcut += usize::from(by_components(trim_trailing_slashes(g)));
        }
        // The shortcut is taken where it can be (the presets' shapes among them).
        assert!(shortcut > 1_000, "{shortcut} of {}", globs.len());
        for g in
            ["/ws/**/.env", "/ws/.git/modules/**/config", "/ws/.git/worktrees/*/config*", "/etc/ssh/ssh_host_*_key"]
        {
            assert!(by_components(g), "{g}");
        }
        assert!(!by_components("/ws/[z-a]") && !by_components("/ws/a**") && !by_components("/ws/{a,b}"));
    }
}
