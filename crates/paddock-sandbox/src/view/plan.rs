//! What the view walk looks for, decided without touching the filesystem: the roots to
//! walk (every bind of the view, since sockets are hidden under every granted path) and,
//! for each path met, whether it is masked (deny, hidden), bound read-only (protect) or
//! neither.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::spec::PathPlan;
use paddock_globs::{literal_prefix, PathGlobs};

/// What the view does with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Masked with everything beneath it (a deny glob, a literal deny or hidden path).
    Mask,
    /// Bound read-only with everything beneath it (a protect glob).
    Protect,
    /// Neither (a socket is still hidden by its type).
    Keep,
}

/// A glob of the spec that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("glob {pattern:?}: {reason}")]
pub(crate) struct BadGlob {
    pattern: String,
    reason: String,
}

/// The compiled mask rules of one view.
#[derive(Debug)]
pub(crate) struct Rules {
    /// Deny globs, each as `P` (what lies beneath a masked directory is never reached).
    deny: PathGlobs,
    /// Protect globs, each as `P` (the read-only bind covers what lies beneath).
    protect: PathGlobs,
    /// Literal deny and hidden paths.
    literal: HashSet<PathBuf>,
    /// The literal prefix of every rule: only directories on the way to one, or beneath
    /// one, can hold a match.
    prefixes: Vec<PathBuf>,
    /// Each rule's literal prefix and a hash of the rule as written, by hash (for
    /// [`Rules::fingerprint_of`]).
    keyed: Vec<(PathBuf, u64)>,
    /// The binds of the view, each with whether it is writable (for [`Rules::pins`]).
    binds: Vec<(PathBuf, bool)>,
}

/// Names put in place of a directory's to test whether a match depends on it
/// ([`Rules::pins`]): one no rule names, and one that starts with a dot.
const PROBES: [&str; 2] = ["\u{1}", ".\u{1}"];

/// Whether `a` is `b`, beneath it or above it (both absolute, normalised), in one comparison: most pairs differ in
/// their first name's first byte, told apart before `memcmp`.
fn on_one_line(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.len() > 1 && long.get(1) != short.get(1) {
        return false;
    }
    long.starts_with(short) && (long.len() == short.len() || short.ends_with(b"/") || long[short.len()] == b'/')
}

fn compile(patterns: &[String]) -> Result<PathGlobs, BadGlob> {
    PathGlobs::new(patterns).map_err(|e| BadGlob { pattern: patterns[e.index].clone(), reason: e.reason })
}

impl Rules {
    /// Compiles the plan's deny and protect globs (with paddock-policy's options) and its
    /// literal masks.
    pub(crate) fn new(plan: &PathPlan) -> Result<Rules, BadGlob> {
        let hash = |kind: &str, rule: &[u8]| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (kind, rule).hash(&mut h);
            h.finish()
        };
        let mut keyed: Vec<(PathBuf, u64)> = plan
            .deny_globs
            .iter()
            .map(|g| (literal_prefix(g), hash("deny", g.as_bytes())))
            .chain(plan.protect_globs.iter().map(|g| (literal_prefix(g), hash("protect", g.as_bytes()))))
            .chain(plan.denies.iter().map(|p| (p.clone(), hash("literal", bytes(p)))))
            .collect();
        keyed.sort_unstable_by_key(|(_, h)| *h);
        keyed.dedup_by_key(|(_, h)| *h);
        let mut prefixes: Vec<PathBuf> = keyed.iter().map(|(p, _)| p.clone()).collect();
        // By bytes: the order is only for `dedup`, and `Path`'s is component by component.
        prefixes.sort_unstable_by(|a, b| bytes(a).cmp(bytes(b)));
        prefixes.dedup();
        Ok(Rules {
            keyed,
            deny: compile(&plan.deny_globs)?,
            protect: compile(&plan.protect_globs)?,
            literal: plan.denies.iter().cloned().collect(),
            prefixes,
            binds: plan
                .reads
                .iter()
                .map(|p| (p.clone(), false))
                .chain(plan.writes.iter().map(|p| (p.clone(), true)))
                .collect(),
        })
    }

    /// Whether an entry of directory `dir`, or anything beneath, can match a rule.
    pub(crate) fn relevant(&self, dir: &Path) -> bool {
        // On bytes: called for every directory walked (`Path::starts_with` compares
        // component by component, ten times slower). Paths here are normalised.
        let d = dir.as_os_str().as_bytes();
        self.prefixes.iter().any(|p| on_one_line(d, p.as_os_str().as_bytes()))
    }

    /// Whether `path` is a literal deny or hidden path (masked whole by name).
    pub(crate) fn is_literal(&self, path: &Path) -> bool {
        self.literal.contains(path)
    }

    /// Whether `path` is a rule's literal prefix or on the way to one (what is there
    /// decides where a rule's match is, or is the match).
    pub(crate) fn on_a_way(&self, path: &Path) -> bool {
        self.prefixes.iter().any(|p| p.starts_with(path))
    }

    /// What the view does with `path` (deny beats protect).
    pub(crate) fn verdict(&self, path: &Path) -> Verdict {
        if self.literal.contains(path) || self.deny.is_match(path) {
            Verdict::Mask
        } else if self.protect.is_match(path) {
            Verdict::Protect
        } else {
            Verdict::Keep
        }
    }

    /// The directories to pin (bind onto themselves, so rename(2) and rmdir(2) of them fail
    /// with `EBUSY`) for a match at `path` of verdict `verdict`: each ancestor strictly
    /// beneath a write grant (its innermost bind writable) whose name the match depends on,
    /// that is, where `path` with that directory renamed gets another verdict (every
    /// ancestor of a literal rule's match; `.git` and `modules` for `.git/modules/**/config`;
    /// none for `**/*.pem`). A rename of any of them would carry the match out of its rule
    /// for later calls and for the host, which look it up by path again.
    pub(crate) fn pins(&self, path: &Path, verdict: Verdict) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for a in path.ancestors().skip(1) {
            let bind = self.binds.iter().filter(|(b, _)| a.starts_with(b)).max_by_key(|(b, _)| b.as_os_str().len());
            match bind {
                Some((b, true)) if b != a => {}
                // A bind's root (a mount point), in a read-only bind, or outside the view:
                // not renamable, but an ancestor may be.
                _ => continue,
            }
            let (Some(parent), Ok(rest)) = (a.parent(), path.strip_prefix(a)) else { continue };
            if PROBES.iter().any(|n| self.verdict(&parent.join(n).join(rest)) != verdict) {
                out.push(a.to_path_buf());
            }
        }
        out
    }

    /// A fingerprint of the rules that can match in directory `dir` (those whose literal
    /// prefix is `dir`, above it or beneath it), or `None` where none can
    /// ([`Rules::relevant`]): a cached listing that holds matches is used only under the same
    /// rules. Rules elsewhere (the protected policy file, another tree's deny) leave it
    /// usable, and the order the policy gives its rules in does not count.
    pub(crate) fn fingerprint_of(&self, dir: &Path) -> Option<u64> {
        let d = dir.as_os_str().as_bytes();
        let mut fp = None;
        for (prefix, h) in &self.keyed {
            if on_one_line(d, prefix.as_os_str().as_bytes()) {
                let acc = fp.unwrap_or(0xcbf2_9ce4_8422_2325_u64);
                fp = Some((acc ^ h).wrapping_mul(0x0100_0000_01b3));
            }
        }
        fp
    }

    /// What the view does with a walk root: as [`Rules::verdict`], but a match of one of
    /// its ancestors covers it too (the root is a bind of its own, not reached from them).
    pub(crate) fn root_verdict(&self, root: &Path) -> Verdict {
        let mut protect = false;
        for a in root.ancestors() {
            match self.verdict(a) {
                Verdict::Mask => return Verdict::Mask,
                Verdict::Protect => protect = true,
                Verdict::Keep => {}
            }
        }
        if protect {
            Verdict::Protect
        } else {
            Verdict::Keep
        }
    }
}

/// The package manager's read-only trees. Only read, they are mounted in the view through
/// a read-only overlay (`mounts/overlay.rs`), whose inodes are not the host's: no socket
/// bound in them on the host is reachable through it, however and by whomever it was bound,
/// so they are walked only where a rule can match (walking them whole for sockets cost
/// every start ~130,000 entries). A tree that cannot be overlaid is bound and walked whole.
/// `/etc` goes through the overlay too in a one-shot run ([`ONE_SHOT_OVERLAY_TREES`]);
/// `/opt` and `/boot`, where services and installers do write, are bound and walked whole
/// like any other grant.
pub const SYSTEM_TREES: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// The host's configuration, which a one-shot run (`paddock run`, [`crate::spawn`]) mounts
/// through the same read-only overlay as the [`SYSTEM_TREES`] when only read: its sockets
/// are then unreachable rather than looked for, and it is walked only beneath the rules'
/// prefixes (`/etc/ssl/private`), not whole (about 170 directories and 1,250 entries,
/// 0.4 ms of each start here). A zygote binds and walks it as any grant: its view serves a
/// session's calls for as long as nothing there changes, which the session's stamp of the
/// walked directories tells ([`crate::ViewStamp`]); an overlay's directories would show
/// what the host replaced there late or not at all. So would a long run's: a file the host
/// replaces in `/etc` while a run goes on may show its old content to the run, as in `/usr`.
pub const ONE_SHOT_OVERLAY_TREES: &[&str] = &["/etc"];

/// Whether `p` lies in a tree mounted through an overlay when only read (a system tree, or
/// with `one_shot` the host's configuration too) and is only read.
pub(crate) fn overlay_candidate(plan: &PathPlan, p: &Path, one_shot: bool) -> bool {
    let config: &[&str] = if one_shot { ONE_SHOT_OVERLAY_TREES } else { &[] };
    SYSTEM_TREES.iter().chain(config).any(|t| p.starts_with(t))
        && !plan.writes.iter().any(|w| p.starts_with(w) || w.starts_with(p))
}

/// The places to walk: every read and write path of the view that no other one contains,
/// apart from those the sandbox provides itself. A path within an `overlaid` tree (one the
/// view mounted through an overlay) is replaced by the rule prefixes beneath it
/// (`/usr/share/ssl`), unless a rule's prefix covers it whole (then it is walked whole).
pub(crate) fn roots(plan: &PathPlan, rules: &Rules, overlaid: &[PathBuf]) -> Vec<PathBuf> {
    // On bytes, as [`Rules::relevant`] (the paths are normalised).
    let under = |a: &Path, b: &Path| {
        let (a, b) = (bytes(a), bytes(b));
        a.starts_with(b) && (a.len() == b.len() || b.ends_with(b"/") || a[b.len()] == b'/')
    };
    let mut all: Vec<PathBuf> = Vec::new();
    let system = |p: &Path| under(p, Path::new("/proc")) || under(p, Path::new("/dev"));
    for p in plan.reads.iter().chain(&plan.writes).filter(|p| !system(p)) {
        let in_overlay = overlaid.iter().any(|o| under(p, o));
        if in_overlay && !rules.prefixes.iter().any(|r| under(p, r)) {
            all.extend(rules.prefixes.iter().filter(|r| under(r, p)).cloned());
        } else {
            all.push(p.clone());
        }
    }
    all.sort_unstable_by(|a, b| bytes(a).cmp(bytes(b)));
    all.dedup();
    all.iter().filter(|p| !all.iter().any(|o| o != *p && under(p, o))).cloned().collect()
}

fn bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(deny: &[&str], protect: &[&str], literal: &[&str]) -> PathPlan {
        PathPlan {
            deny_globs: deny.iter().map(|s| s.to_string()).collect(),
            protect_globs: protect.iter().map(|s| s.to_string()).collect(),
            denies: literal.iter().map(PathBuf::from).collect(),
            ..PathPlan::default()
        }
    }

    #[test]
    fn globs_match_like_the_policy() {
        let r =
            Rules::new(&plan(&["/ws/**/*.pem", "/ws/.env"], &["/ws/.git/config", "/ws/.git/hooks"], &["/st"])).unwrap();
        assert_eq!(r.verdict(Path::new("/ws/certs/server.pem")), Verdict::Mask);
        assert_eq!(r.verdict(Path::new("/ws/a.pem")), Verdict::Mask);
        assert_eq!(r.verdict(Path::new("/ws/a/b/c.pem")), Verdict::Mask);
        assert_eq!(r.verdict(Path::new("/ws/a.pem.txt")), Verdict::Keep);
        assert_eq!(r.verdict(Path::new("/ws/.env")), Verdict::Mask);
        assert_eq!(r.verdict(Path::new("/ws/x/.env")), Verdict::Keep);
        assert_eq!(r.verdict(Path::new("/ws/.git/config")), Verdict::Protect);
        assert_eq!(r.verdict(Path::new("/ws/.git/hooks")), Verdict::Protect);
        assert_eq!(r.verdict(Path::new("/ws/.git/hooks/pre-commit")), Verdict::Keep, "covered by its parent's bind");
        assert_eq!(r.verdict(Path::new("/st")), Verdict::Mask);
        assert_eq!(r.root_verdict(Path::new("/st/in/a/bind")), Verdict::Mask);
        assert_eq!(r.root_verdict(Path::new("/ws/.git/hooks/d")), Verdict::Protect);
        assert_eq!(r.root_verdict(Path::new("/ws/d")), Verdict::Keep);
        // `*` stays within one component.
        let r = Rules::new(&plan(&["/ws/*.key"], &[], &[])).unwrap();
        assert_eq!(r.verdict(Path::new("/ws/a/b.key")), Verdict::Keep);
        assert_eq!(r.verdict(Path::new("/ws/b.key")), Verdict::Mask);
    }

    #[test]
    fn pins_are_the_ancestors_a_match_depends_on() {
        let p = PathPlan {
            reads: vec!["/usr".into(), "/home/u/ro".into()],
            writes: vec!["/home/u".into()],
            deny_globs: vec!["/home/u/**/*.pem".into(), "/home/u/**/.ssh/**".into()],
            protect_globs: vec!["/home/u/.git/config".into(), "/home/u/.git/modules/**/config".into()],
            denies: vec!["/home/u/.local/state/paddock".into(), "/usr/share/x".into(), "/home/u/ro/a/b".into()],
            ..PathPlan::default()
        };
        let r = Rules::new(&p).unwrap();
        let pins = |s: &str| {
            let path = Path::new(s);
            r.pins(path, r.verdict(path)).into_iter().map(|p| p.display().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(pins("/home/u/.local/state/paddock"), ["/home/u/.local/state", "/home/u/.local"]);
        assert_eq!(pins("/home/u/.git/config"), ["/home/u/.git"]);
        assert_eq!(pins("/home/u/.git/modules/a/b/config"), ["/home/u/.git/modules", "/home/u/.git"]);
        assert_eq!(pins("/home/u/a/b/c.pem"), Vec::<String>::new(), "any directory matches **");
        assert_eq!(pins("/home/u/a/.ssh/id"), ["/home/u/a/.ssh"]);
        // Read-only (a bind's root, or within a read-only bind): no rename to stop.
        assert_eq!(pins("/usr/share/x"), Vec::<String>::new());
        assert_eq!(pins("/home/u/ro/a/b"), Vec::<String>::new());
    }

    #[test]
    fn deny_beats_protect() {
        let r = Rules::new(&plan(&["/ws/.git/config"], &["/ws/.git/config"], &[])).unwrap();
        assert_eq!(r.verdict(Path::new("/ws/.git/config")), Verdict::Mask);
    }

    #[test]
    fn escaped_literals_match_themselves() {
        let r = Rules::new(&plan(&[], &[r"/ws/a\*b"], &[])).unwrap();
        assert_eq!(r.verdict(Path::new("/ws/a*b")), Verdict::Protect);
        assert_eq!(r.verdict(Path::new("/ws/axb")), Verdict::Keep);
    }

    #[test]
    fn relevance_follows_literal_prefixes() {
        let r = Rules::new(&plan(&["/home/u/ws/**/*.pem"], &[], &["/home/u/.ssh"])).unwrap();
        assert!(r.relevant(Path::new("/")));
        assert!(r.relevant(Path::new("/home")));
        assert!(r.relevant(Path::new("/home/u/ws/deep/er")));
        assert!(!r.relevant(Path::new("/usr/lib")));
        assert!(!r.relevant(Path::new("/home/v")));
        assert!(!r.relevant(Path::new("/home/uu")));
        assert!(!r.relevant(Path::new("/home/u/wsx")));
        assert!(r.relevant(Path::new("/home/u/.ssh/x")));
        assert_eq!(literal_prefix("/a/b*/c"), PathBuf::from("/a"));
        assert_eq!(literal_prefix("/a/b/c"), PathBuf::from("/a/b/c"));
    }

    /// A cached listing is tied to the rules that can match in its directory, and to no
    /// other: a new policy file (protected) or a deny in another tree leaves the
    /// workspace's listings usable; a rule that can match there does not.
    #[test]
    fn a_directorys_fingerprint_holds_only_the_rules_that_can_match_there() {
        let fp = |deny: &[&str], protect: &[&str], dir: &str| {
            Rules::new(&plan(deny, protect, &[])).unwrap().fingerprint_of(Path::new(dir))
        };
        let base = fp(&["/ws/**/*.pem"], &["/etc/policy-1.toml"], "/ws/a");
        assert!(base.is_some());
        assert_eq!(fp(&["/ws/**/*.pem"], &["/etc/policy-2.toml"], "/ws/a"), base, "a rule outside /ws");
        assert_eq!(fp(&["/ws/**/*.pem", "/home/**/.env"], &[], "/ws/a"), base, "a deny in another tree");
        assert_eq!(fp(&["/other/x", "/ws/**/*.pem"], &[], "/ws/a"), base, "the order of the rules");
        assert_ne!(fp(&["/ws/**/*.pem", "/ws/**/.env"], &[], "/ws/a"), base, "another rule of /ws");
        assert_ne!(fp(&["/ws/**/*.pem"], &["/ws/a/b/.git/config"], "/ws/a"), base, "a rule beneath");
        assert_ne!(fp(&["/**/*.pem"], &[], "/ws/a"), base, "a rule above");
        assert_ne!(fp(&[], &["/ws/**/*.pem"], "/ws/a"), base, "protect is not deny");
        assert_eq!(fp(&["/ws/**/*.pem"], &[], "/usr/lib"), None, "no rule can match there");
    }

    #[test]
    fn bad_globs_are_errors() {
        assert!(Rules::new(&plan(&["/ws/[a"], &[], &[])).is_err());
    }

    #[test]
    fn roots_are_the_outermost_binds() {
        let p = PathPlan {
            reads: vec!["/usr".into(), "/usr/lib".into(), "/proc/x".into(), "/home/u".into()],
            writes: vec!["/home/u/ws".into(), "/tmp/ws".into()],
            ..PathPlan::default()
        };
        let rules = Rules::new(&p).unwrap();
        assert_eq!(roots(&p, &rules, &["/usr".into()]), vec![PathBuf::from("/home/u"), "/tmp/ws".into()]);
    }

    #[test]
    fn overlaid_trees_are_walked_only_where_a_rule_can_match() {
        let p = PathPlan {
            reads: vec!["/usr".into(), "/lib".into(), "/etc".into(), "/opt".into(), "/srv".into()],
            writes: vec!["/ws".into()],
            deny_globs: vec!["/usr/share/ssl/*.key".into(), "/ws/**/*.pem".into()],
            denies: vec!["/usr/lib/secret".into()],
            ..PathPlan::default()
        };
        let rules = Rules::new(&p).unwrap();
        assert!(overlay_candidate(&p, Path::new("/usr"), false) && overlay_candidate(&p, Path::new("/lib"), false));
        assert!(!overlay_candidate(&p, Path::new("/etc"), false) && !overlay_candidate(&p, Path::new("/usrx"), true));
        // A one-shot run overlays `/etc` too; `/opt` stays bound.
        assert!(overlay_candidate(&p, Path::new("/etc"), true) && overlay_candidate(&p, Path::new("/etc/ssl"), true));
        assert!(!overlay_candidate(&p, Path::new("/etcx"), true) && !overlay_candidate(&p, Path::new("/opt"), true));
        let overlaid = [PathBuf::from("/usr"), "/lib".into()];
        // Bound (a zygote's `/etc`, and `/opt`, where services write), walked whole like any grant.
        let want: Vec<PathBuf> =
            ["/etc", "/opt", "/srv", "/usr/lib/secret", "/usr/share/ssl", "/ws"].iter().map(PathBuf::from).collect();
        assert_eq!(roots(&p, &rules, &overlaid), want);
        // A system tree that could not be overlaid (bound instead) is walked whole.
        let want: Vec<PathBuf> = ["/etc", "/opt", "/srv", "/usr", "/ws"].iter().map(PathBuf::from).collect();
        assert_eq!(roots(&p, &rules, &overlaid[1..]), want);
        // A rule whose prefix covers a system tree walks it whole.
        let p = PathPlan { reads: vec!["/usr".into()], deny_globs: vec!["/**/*.key".into()], ..PathPlan::default() };
        let rules = Rules::new(&p).unwrap();
        assert_eq!(roots(&p, &rules, &overlaid), vec![PathBuf::from("/usr")]);
    }

    #[test]
    fn a_system_tree_with_a_write_path_is_not_overlaid() {
        let p = PathPlan { reads: vec!["/usr".into()], writes: vec!["/usr/local/cache".into()], ..PathPlan::default() };
        assert!(!overlay_candidate(&p, Path::new("/usr"), true));
        assert!(!overlay_candidate(&p, Path::new("/usr/local"), true));
        assert!(overlay_candidate(&p, Path::new("/usr/lib"), true));
        // The same for the host's configuration in a one-shot run.
        let p = PathPlan { reads: vec!["/etc".into()], writes: vec!["/etc/app".into()], ..PathPlan::default() };
        assert!(!overlay_candidate(&p, Path::new("/etc"), true));
        assert!(overlay_candidate(&p, Path::new("/etc/ssl"), true));
    }

    #[test]
    fn an_overlaid_etc_is_walked_only_beneath_its_rules() {
        let p = PathPlan {
            reads: vec!["/etc".into()],
            denies: vec!["/etc/shadow".into(), "/etc/ssl/private".into()],
            ..PathPlan::default()
        };
        let rules = Rules::new(&p).unwrap();
        let want: Vec<PathBuf> = ["/etc/shadow", "/etc/ssl/private"].iter().map(PathBuf::from).collect();
        assert_eq!(roots(&p, &rules, &[PathBuf::from("/etc")]), want);
        assert_eq!(roots(&p, &rules, &[]), vec![PathBuf::from("/etc")]);
    }
}
