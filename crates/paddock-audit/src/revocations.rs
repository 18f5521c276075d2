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

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::AuditError;
use crate::record::now_ts;

/// What a revocation covers.
///
/// Parsed from `command:PATTERN`, `path:PATH`, `network:HOST[:PORT]` or
/// `rule:RULE_ID`; [`Display`](fmt::Display) gives the same form back.
/// Network hosts are lower-cased and lose a trailing dot (hosts compare
/// case-insensitively); the other kinds are stored as given, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `command:PATTERN`: a command pattern as written in a policy.
    Command(String),
    /// `path:PATH`: a filesystem path.
    Path(String),
    /// `network:HOST[:PORT]`.
    Network {
        /// Host name, `*.suffix` or IP literal (IPv6 without brackets).
        host: String,
        /// The port, if the selector names one.
        port: Option<u16>,
    },
    /// `rule:RULE_ID`: a policy rule id such as `commands.allow[2]`.
    Rule(String),
}

/// A selector that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid selector `{input}`: {problem}; expected command:PATTERN, path:PATH, network:HOST[:PORT] or rule:RULE_ID"
)]
pub struct SelectorError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FromStr for Selector {
    type Err = SelectorError;

    fn from_str(input: &str) -> Result<Self, SelectorError> {
        let err = |problem: String| SelectorError { input: input.to_owned(), problem };
        let Some((kind, value)) = input.split_once(':') else {
            return Err(err("it has no `KIND:` prefix".into()));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(err(format!("nothing follows `{kind}:`")));
        }
        match kind.trim() {
            "command" => Ok(Selector::Command(value.to_owned())),
            "path" => Ok(Selector::Path(value.to_owned())),
            "rule" => {
                if value.chars().any(char::is_whitespace) {
                    return Err(err("a rule id has no spaces".into()));
                }
                Ok(Selector::Rule(value.to_owned()))
            }
            "network" => parse_network(value).map_err(err),
            other => Err(err(format!("unknown kind `{other}`"))),
        }
    }
}

fn parse_network(value: &str) -> Result<Selector, String> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        // [IPv6]:port or [IPv6]
        let (h, after) = rest.split_once(']').ok_or("an IPv6 address opened with `[` is not closed with `]`")?;
        if h.matches(':').count() == 1 {
            // No address has one colon; `[a:b]` would show as `a:b` and read back as a port.
            return Err(format!("`[{h}]` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(format!("unexpected `{p}` after `]`"))?),
        };
        (h.to_owned(), port)
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 literal without a port.
        (value.to_owned(), None)
    } else {
        match value.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (value.to_owned(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    let mut host = host.trim().to_ascii_lowercase();
    if host.ends_with('.') && host.len() > 1 {
        host.pop();
    }
    if host.ends_with('.') && host.len() > 1 {
        // `a..` would show as `a.` and read back as `a`: refuse it, as the policy does.
        return Err(format!("`{host}.` ends in an empty label"));
    }
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | ':');
    if let Some(bad) = host.chars().find(|&c| !ok(c)) {
        return Err(format!("`{bad}` cannot appear in a host name"));
    }
    Ok(Selector::Network { host, port })
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Command(p) => write!(f, "command:{p}"),
            Selector::Path(p) => write!(f, "path:{p}"),
            Selector::Rule(r) => write!(f, "rule:{r}"),
            Selector::Network { host, port: None } => write!(f, "network:{host}"),
            Selector::Network { host, port: Some(p) } if host.contains(':') => write!(f, "network:[{host}]:{p}"),
            Selector::Network { host, port: Some(p) } => write!(f, "network:{host}:{p}"),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| AuditError::io(&lock_path, "open", e))?;
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
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
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
    match std::fs::metadata(path) {
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
    let file = match OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(AuditError::io(path, "read", e)),
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
    let file: FileFormat = toml::from_str(&text).map_err(|e| AuditError::RevocationsParse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
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
    fn selectors_parse_and_display() {
        assert_eq!(sel("command:git push **"), Selector::Command("git push **".into()));
        assert_eq!(sel("path:~/.ssh"), Selector::Path("~/.ssh".into()));
        assert_eq!(sel("rule:commands.allow[2]"), Selector::Rule("commands.allow[2]".into()));
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
        ];
        for (input, want) in cases {
            let e = input.parse::<Selector>().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want), "{input}: {msg}");
            assert!(msg.contains("expected command:PATTERN, path:PATH, network:HOST[:PORT] or rule:RULE_ID"), "{msg}");
        }
    }

    #[test]
    fn sibling_names() {
        assert_eq!(sibling(Path::new("/s/revocations.toml"), ".lock"), Path::new("/s/revocations.toml.lock"));
    }
}
