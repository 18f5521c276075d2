//! Relative globs made only of whole components (`**`, a literal name, a name with `*`
//! wildcards), matched component by component: the shapes of the presets' rules that
//! globset can match only with a regex (`**/.git/modules/**/config`,
//! `**/.git/worktrees/*/config*`), whose build was most of the cost of a first match (a
//! sandbox's view walk and a call's glob scan each paid it once per run).
//!
//! The answers are globset's for the same glob with `literal_separator` on (`**` as the
//! first or a middle component matches zero or more components, as the last one or more;
//! `*` matches within one component, an empty one included), on the paths a
//! [`super::PathGlobs`] group matches (relative, non-empty, no empty component) and on odd
//! ones alike (an empty component, a leading or trailing `/`: tested). Anything else (`?`,
//! classes, `{a,b}`, an escape, `**` within a name or beside another `**`) is left to
//! globset.

/// One component of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// `**`.
    Any,
    /// A name without syntax: matches itself.
    Name(Vec<u8>),
    /// A name with `*`: the literal pieces around its stars (two or more; the first and the
    /// last empty when it starts or ends with `*`).
    Wild(Vec<Vec<u8>>),
}

/// A glob of whole components ([`Components::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Components(Vec<Part>);

/// Most components a path is split into on the stack; a deeper path is split into a `Vec`.
const ON_STACK: usize = 32;

impl Components {
    /// `glob` (relative, trailing slashes dropped) as components; `None` when it has any
    /// other syntax, an empty component or a leading `/`.
    pub(crate) fn parse(glob: &str) -> Option<Components> {
        let mut parts: Vec<Part> = Vec::new();
        for c in glob.split('/') {
            let part = if c == "**" {
                if parts.last() == Some(&Part::Any) {
                    return None;
                }
                Part::Any
            } else if c.is_empty() || c.contains(['?', '[', ']', '{', '}', '\\']) || c.contains("**") {
                return None;
            } else if c.contains('*') {
                Part::Wild(c.split('*').map(|s| s.as_bytes().to_vec()).collect())
            } else {
                Part::Name(c.as_bytes().to_vec())
            };
            parts.push(part);
        }
        Some(Components(parts))
    }

    /// Whether `path` (relative, `/`-separated) matches.
    #[cfg(test)]
    pub(crate) fn is_match(&self, path: &[u8]) -> bool {
        with_names(path, |names| self.is_match_names(names))
    }

    /// [`Components::is_match`] of a path already split ([`with_names`]).
    pub(crate) fn is_match_names(&self, names: &[&[u8]]) -> bool {
        // The last component first: it rejects most paths at once.
        match (self.0.last(), names.last()) {
            (Some(Part::Name(n)), Some(last)) if n.as_slice() != *last => return false,
            (Some(Part::Wild(w)), Some(last)) if !wild(w, last) => return false,
            _ => {}
        }
        parts_match(&self.0, names)
    }
}

/// Calls `f` with the components of `path` (split on the stack when it has few).
pub(crate) fn with_names<T>(path: &[u8], f: impl FnOnce(&[&[u8]]) -> T) -> T {
    let mut stack: [&[u8]; ON_STACK] = [&[]; ON_STACK];
    let mut n = 0;
    for c in path.split(|b| *b == b'/') {
        if n == ON_STACK {
            let names: Vec<&[u8]> = path.split(|b| *b == b'/').collect();
            return f(&names);
        }
        stack[n] = c;
        n += 1;
    }
    f(&stack[..n])
}

/// Whether `names` match `parts` from their starts to their ends.
fn parts_match(parts: &[Part], names: &[&[u8]]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return names.is_empty();
    };
    match first {
        // The last `**` needs at least one component (`a/**` is not `a`); the others take
        // zero or more.
        Part::Any if rest.is_empty() => !names.is_empty(),
        Part::Any => (0..=names.len()).any(|skip| parts_match(rest, &names[skip..])),
        Part::Name(n) => names.first().is_some_and(|c| n.as_slice() == *c) && parts_match(rest, &names[1..]),
        Part::Wild(w) => names.first().is_some_and(|c| wild(w, c)) && parts_match(rest, &names[1..]),
    }
}

/// Whether one component `name` matches the pieces `w` around `*`s.
fn wild(w: &[Vec<u8>], name: &[u8]) -> bool {
    let (Some(first), Some(last)) = (w.first(), w.last()) else { return false };
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
        return false;
    }
    // The middle pieces in order, each as early as it can be (leftmost is always best).
    let mut middle = &name[first.len()..name.len() - last.len()];
    for piece in &w[1..w.len() - 1] {
        match find(middle, piece) {
            Some(at) => middle = &middle[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::GlobBuilder;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Every glob of up to three components drawn from the shapes below, against every
    /// path of up to four names: the answer is globset's (with `literal_separator`), and
    /// what this module does not take is left to globset.
    #[test]
    fn answers_as_globset_does() {
        let parts = ["**", "a", ".git", "*", "a*", "*a", "a*b", "*.pem", "b*a*", "x?", "[ab]"];
        let names: [&[u8]; 8] = [b"a", b"b", b".git", b"ab", b"aab", b"k.pem", b"ba\xffa", "é*".as_bytes()];
        let mut globs: Vec<String> = Vec::new();
        for a in parts {
            globs.push(a.into());
            for b in parts {
                globs.push(format!("{a}/{b}"));
                for c in parts {
                    globs.push(format!("{a}/{b}/{c}"));
                }
            }
        }
        let mut paths: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
        let mut frontier = paths.clone();
        for _ in 0..3 {
            let mut next = Vec::new();
            for f in &frontier {
                for n in names {
                    next.push([f.as_slice(), b"/", n].concat());
                }
            }
            paths.extend(next.iter().cloned());
            frontier = next;
        }
        // Outside what a group is given, too: empty components, a leading or trailing `/`
        // (globset's `[^/]*` and `.*/` match those as these components do).
        for odd in ["a//b", "/a", "a/", "/", "//", "a//", ".git//a*b/", "/k.pem/"] {
            paths.push(odd.as_bytes().to_vec());
        }
        let (mut taken, mut matched) = (0, 0);
        for g in &globs {
            let Some(c) = Components::parse(g) else {
                assert!(g.contains(['?', '[']) || g.contains("**/**"), "{g} left to globset");
                continue;
            };
            taken += 1;
            let want = GlobBuilder::new(g).literal_separator(true).backslash_escape(true).build().unwrap();
            let want = want.compile_matcher();
            for p in &paths {
                let expect = want.is_match(Path::new(std::ffi::OsStr::from_bytes(p)));
                assert_eq!(c.is_match(p), expect, "{g} against {}", String::from_utf8_lossy(p));
                matched += usize::from(expect);
            }
        }
        assert!(taken > 800 && matched > 10_000, "{taken} globs taken, {matched} matches");
    }

    /// Names with stars (every pattern of up to five of `a`, `b`, `*`) against every name
    /// of up to five of `a`, `b`: the pieces between stars must come in order, apart.
    #[test]
    fn stars_match_as_globset_does() {
        fn all(alphabet: &[char], max: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut frontier = vec![String::new()];
            for _ in 0..max {
                let next: Vec<String> =
                    frontier.iter().flat_map(|f| alphabet.iter().map(move |c| format!("{f}{c}"))).collect();
                out.extend(next.iter().cloned());
                frontier = next;
            }
            out
        }
        let names: Vec<String> = all(&['a', 'b'], 5).into_iter().filter(|n| !n.is_empty()).collect();
        let mut checked = 0;
        for g in all(&['a', 'b', '*'], 5).iter().filter(|g| g.contains('*') && !g.contains("**")) {
            let c = Components::parse(g).expect("a name with stars");
            let want = GlobBuilder::new(g).literal_separator(true).build().unwrap().compile_matcher();
            for n in &names {
                assert_eq!(c.is_match(n.as_bytes()), want.is_match(n), "{g} against {n}");
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn a_deep_path_is_split_off_the_stack() {
        let deep = vec!["d"; ON_STACK + 5].join("/");
        let c = Components::parse("**/d").unwrap();
        assert!(c.is_match(deep.as_bytes()));
        assert!(!Components::parse("**/e").unwrap().is_match(deep.as_bytes()));
    }
}
