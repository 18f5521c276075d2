//! The revocation list, `$STATE/revocations.toml`, and its selectors.
//!
//! This module stores and parses; it does not match. Whether a selector
//! covers a call is the policy crate's decision.
//!
//! # File format
//!
//! ```toml
//! [[revoked]]
//! selector = "rule:commands.allow[2]"
//! reason = "too broad"
//! ts = "2026-03-01T12:00:00.123Z"
//! ```
//!
//! # Concurrency
//!
//! Writers serialise on an exclusive lock of a sibling file
//! (`revocations.toml.lock`; the list itself is replaced by rename, so it
//! cannot carry the lock). [`Revocations::add`] and [`Revocations::remove`]
//! record the change; [`Revocations::save`] takes the lock, re-reads the
//! file, replays the recorded changes on what is there now, writes a
//! temporary file (0600), fsyncs it, renames it over the list and fsyncs the
//! directory. Two revokers that loaded the same old list therefore both keep
//! their entries. Readers need no lock: they see the old list or the new
//! one, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AuditError;
pub use crate::selector::{Selector, SelectorError};
use crate::time::now_ts;

/// One entry of the revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What is revoked.
    pub selector: Selector,
    /// Why, as given by the person revoking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was revoked (RFC 3339 UTC).
    pub ts: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    revoked: Vec<Revocation>,
}

#[derive(Debug, Clone)]
enum Change {
    Add(Revocation),
    Remove(Selector),
}

/// Identity of the file last loaded, to notice a replacement cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    dev: u64,
    len: u64,
    mtime_ns: i128,
}

/// The revocation list: load it, change it, save it.
///
/// ```
/// # fn main() -> Result<(), paddock_audit::AuditError> {
/// # let dir = tempfile::tempdir().unwrap();
/// use paddock_audit::Revocations;
/// let path = dir.path().join("revocations.toml");
/// let mut list = Revocations::load(&path)?; // a missing file is an empty list
/// list.add("rule:commands.allow[2]".parse()?, Some("too broad".into()));
/// list.save()?;
/// assert!(Revocations::load(&path)?.contains(&"rule:commands.allow[2]".parse()?));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Revocations {
    path: PathBuf,
    entries: Vec<Revocation>,
    pending: Vec<Change>,
    stamp: Option<Stamp>,
}

impl Revocations {
    /// Loads the list at `path`; a missing file is an empty list.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let (entries, stamp) = read_list(&path)?;
        Ok(Revocations { path, entries, pending: Vec::new(), stamp })
    }

    /// Re-reads the file if it changed since it was loaded (by inode, size
    /// and modification time). Returns whether it did. Unsaved changes are
    /// kept and re-applied. Cheap enough to call before every decision.
    pub fn reload_if_changed(&mut self) -> Result<bool, AuditError> {
        let now = stamp_of(&self.path)?;
        if now == self.stamp {
            return Ok(false);
        }
        let (mut entries, stamp) = read_list(&self.path)?;
        apply(&mut entries, &self.pending);
        self.entries = entries;
        self.stamp = stamp;
        Ok(true)
    }

    /// The file this list is stored in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries in force (including unsaved changes).
    pub fn entries(&self) -> &[Revocation] {
        &self.entries
    }

    /// Whether `selector` is in the list (exact, parsed equality; no
    /// pattern matching).
    pub fn contains(&self, selector: &Selector) -> bool {
        self.entries.iter().any(|r| &r.selector == selector)
    }

    /// Revokes `selector`, stamped now. Returns `false` (and changes
    /// nothing) if it is already revoked. Takes effect on disk at
    /// [`save`](Self::save).
    pub fn add(&mut self, selector: Selector, reason: Option<String>) -> bool {
        if self.contains(&selector) {
            return false;
        }
        let entry = Revocation { selector, reason, ts: now_ts() };
        self.pending.push(Change::Add(entry.clone()));
        self.entries.push(entry);
        true
    }

    /// Lifts the revocation of `selector`. Returns whether it was there.
    /// Takes effect on disk at [`save`](Self::save).
    pub fn remove(&mut self, selector: &Selector) -> bool {
        let before = self.entries.len();
        self.entries.retain(|r| &r.selector != selector);
        self.pending.push(Change::Remove(selector.clone()));
        self.entries.len() != before
    }

    /// Writes the list: under the lock, re-reads the file, applies this
    /// list's unsaved changes to it, and replaces it atomically (0600).
    /// Afterwards [`entries`](Self::entries) is what is on disk.
    pub fn save(&mut self) -> Result<(), AuditError> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        crate::state::create_private_dir(&dir)?;
        let lock_path = sibling(&self.path, ".lock");
        let lock = crate::state::open_private(&lock_path, false)
            .map_err(|e| crate::state::nofollow_error(&lock_path, "open", e))?;
        lock.lock().map_err(|e| AuditError::io(&lock_path, "lock", e))?;
        let result = self.save_locked(&dir);
        let _ = lock.unlock();
        result
    }

    fn save_locked(&mut self, dir: &Path) -> Result<(), AuditError> {
        let (mut entries, _) = read_list(&self.path)?;
        apply(&mut entries, &self.pending);
        let text =
            toml::to_string_pretty(&FileFormat { revoked: entries.clone() }).map_err(AuditError::RevocationsEncode)?;
        let header = "# paddock revocation list: written by `paddock revoke`; every decision consults it.\n\n";

        let tmp = sibling(&self.path, &format!(".tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = crate::state::open_private(&tmp, true)?;
            f.write_all(header.as_bytes())?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(AuditError::io(&tmp, "write", e));
        }
        if let Err(e) = std::fs::rename(&tmp, &self.path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(AuditError::io(&self.path, "replace", e));
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        tracing::debug!(path = %self.path.display(), entries = entries.len(), "saved revocation list");
        self.entries = entries;
        self.pending.clear();
        self.stamp = stamp_of(&self.path)?;
        Ok(())
    }
}

fn apply(entries: &mut Vec<Revocation>, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Add(r) => {
                if !entries.iter().any(|e| e.selector == r.selector) {
                    entries.push(r.clone());
                }
            }
            Change::Remove(s) => entries.retain(|e| &e.selector != s),
        }
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "revocations.toml".into());
    name.push(suffix);
    path.with_file_name(name)
}

fn stamp_of(path: &Path) -> Result<Option<Stamp>, AuditError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(Stamp {
            ino: m.ino(),
            dev: m.dev(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::io(path, "inspect", e)),
    }
}

/// The largest revocation list read (16 MiB; one entry is about 100 bytes).
const MAX_LIST_BYTES: u64 = 16 << 20;

fn read_list(path: &Path) -> Result<(Vec<Revocation>, Option<Stamp>), AuditError> {
    let stamp = stamp_of(path)?;
    // Non-blocking: a FIFO in the list's place must be an error, not a read that waits
    // for a writer forever (every decision would hang instead of being denied).
    // Nor through a symlink: one in the list's place is refused, not followed.
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(crate::state::nofollow_error(path, "read", e)),
    };
    let meta = file.metadata().map_err(|e| AuditError::io(path, "inspect", e))?;
    let refuse = |why: &str| AuditError::io(path, "read", std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    if !meta.is_file() {
        return Err(refuse("not a regular file (a directory, FIFO, socket or device)"));
    }
    // Only this name is hidden from the sandbox: through another (a hard link made before,
    // in a granted tree) a call could empty the list in place.
    if meta.nlink() > 1 {
        return Err(refuse("it has other names (hard links), which a sandbox could write: remove them"));
    }
    // A bound, so that a list that grows without end (or a huge one) is an error, not
    // an exhausted memory.
    let mut text = String::new();
    let read = file.take(MAX_LIST_BYTES + 1).read_to_string(&mut text);
    read.map_err(|e| AuditError::io(path, "read", e))?;
    if text.len() as u64 > MAX_LIST_BYTES {
        return Err(refuse("larger than 16 MiB: not a revocation list paddock wrote"));
    }
    let file: FileFormat = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start).min(text.len());
        let before = text.get(..at).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
        let message = e.message().lines().next().unwrap_or_default().trim_end().to_owned();
        AuditError::RevocationsParse { path: path.to_path_buf(), line, col, message }
    })?;
    Ok((file.revoked, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        s.parse().unwrap()
    }

    #[test]
    fn a_symlinked_list_is_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("elsewhere.toml");
        std::fs::write(&real, "").unwrap();
        let path = tmp.path().join("revocations.toml");
        // Control: the same content under its own name loads (empty).
        std::fs::copy(&real, &path).unwrap();
        assert!(Revocations::load(&path).unwrap().entries().is_empty());
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        let e = Revocations::load(&path).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
    }

    #[test]
    fn selectors_parse_and_display() {
        assert_eq!(sel("command:git push **"), Selector::Command("git push **".into()));
        assert_eq!(sel("path:~/.ssh"), Selector::Path("~/.ssh".into()));
        assert_eq!(sel("rule:commands.allow[2]"), Selector::Rule("commands.allow[2]".into()));
        assert_eq!(sel("secret:github"), Selector::Secret("github".into()));
        assert_eq!(Selector::Secret("github".into()).to_string(), "secret:github");
        assert_eq!(sel("network:GitHub.com."), Selector::Network { host: "github.com".into(), port: None });
        assert_eq!(sel("network:*.crates.io:443"), Selector::Network { host: "*.crates.io".into(), port: Some(443) });
        assert_eq!(sel("network:[::1]:8080"), Selector::Network { host: "::1".into(), port: Some(8080) });
        assert_eq!(sel("network:fe80::1"), Selector::Network { host: "fe80::1".into(), port: None });
        for s in [
            "command:git push **",
            "path:/a b",
            "rule:x",
            "network:h.test",
            "network:h.test:1",
            "network:[::1]:2",
            "network:::1",
        ] {
            assert_eq!(sel(&sel(s).to_string()), sel(s), "{s}");
        }
    }

    #[test]
    fn selector_errors_say_what_is_wrong() {
        let cases = [
            ("gitpush", "no `KIND:` prefix"),
            ("cmd:git", "unknown kind `cmd`"),
            ("rule:", "nothing follows `rule:`"),
            ("rule:a b", "no spaces"),
            ("network:h.test:0", "not a port"),
            ("network:h.test:99999", "not a port"),
            ("network:h.test:x", "not a port"),
            ("network:[::1", "not closed"),
            ("network:a/b", "cannot appear"),
            ("secret:a b", "cannot appear in a secret's name"),
        ];
        for (input, want) in cases {
            let e = input.parse::<Selector>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{input}: {msg}");
            assert!(
                msg.contains("expected command:PATTERN, path:PATH, network:HOST[:PORT], rule:RULE_ID or secret:NAME"),
                "{msg}"
            );
        }
    }

    #[test]
    fn sibling_names() {
        assert_eq!(sibling(Path::new("/s/revocations.toml"), ".lock"), Path::new("/s/revocations.toml.lock"));
    }
}
