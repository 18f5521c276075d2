//! A cache of directory listings, so a start need not read every directory of the view
//! again: what each directory held that the walk cares about (its subdirectories, sockets,
//! entries of unknown type, matches of the rules), keyed by (device, inode).
//!
//! An entry is used only when the directory's status is exactly what it was (ctime, mtime,
//! size, link count; the agent can set mtime but not ctime, and any change of a directory's
//! entries moves its ctime), and it was stored only if that ctime was at least
//! [`MARGIN_SECS`] older than the moment the listing was read (git's "racily clean" rule:
//! a change within the same timestamp tick as the read can never be mistaken for none).
//! An entry that holds matches is also tied to the directory's path and to the rules that
//! can match in that directory (only those: a rule elsewhere, such as the protected policy
//! file, changes no listing of the workspace).
//! An encrypted (fscrypt) directory is never kept: adding its key changes the names it
//! shows, and neither its ctime nor its mtime (a listing read while it was locked holds
//! encoded names; files written before version `PDVC0003` of this file may hold one, so
//! they are not read).
//!
//! The file is read and written only by paddock's own helper before `pivot_root`, never by
//! the child, and it is itself masked in every view ([`crate::SandboxSpec::view_cache`]).
//! An unreadable or malformed file is an empty cache.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How much older than its listing a directory's ctime must be for the listing to be kept.
pub(crate) const MARGIN_SECS: i64 = 2;

/// How many directories a walk must have read and kept before its listings are written
/// back (unless none were kept before): a file of listings is rewritten whole (a write and
/// a rename, 0.3 to 0.7 ms here), and a repository's `.git`, changed by nearly every
/// command, would otherwise cost every start that write. A listing left out of the file
/// costs the next start one read of that directory, never a stale listing: it is used only
/// while the directory's status is as stored.
pub const LISTINGS_SAVED_AFTER: usize = 8;

/// How long before its listing a directory must have last changed for that listing alone
/// to be written back. A directory changed once and left since (a package installed in
/// `/etc`) would otherwise be read again by every later start, as long as fewer than
/// [`LISTINGS_SAVED_AFTER`] directories changed with it: `/etc` (147 entries) cost each
/// start of this machine's empty workspace 0.47 ms (its view walk 1.21 against 0.74 ms,
/// medians of 15). A `.git` changed by the last command is younger than this.
pub const LONG_UNCHANGED_SECS: i64 = 60;

/// Whether a walk's listings are worth writing back: `added` listings were read and kept,
/// `long_unchanged` of them of directories unchanged for [`LONG_UNCHANGED_SECS`], and
/// `loaded` were there before (none: the first walk's are always written).
pub fn listings_worth_saving(added: usize, long_unchanged: usize, loaded: usize) -> bool {
    added >= LISTINGS_SAVED_AFTER || long_unchanged > 0 || (added > 0 && loaded == 0)
}

/// Whether a directory of ctime `ctime`, listed at `listed_at` (seconds), had been
/// unchanged for [`LONG_UNCHANGED_SECS`].
pub fn long_unchanged(ctime: i64, listed_at: i64) -> bool {
    ctime + LONG_UNCHANGED_SECS < listed_at
}

const MAGIC: &[u8; 8] = b"PDVC0003";

/// What the walk keeps of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    /// ctime (s, ns), mtime (s, ns), size, link count.
    pub stamp: [i64; 6],
    /// The directory's path when it held matches (a match depends on the path).
    pub path: Option<Vec<u8>>,
    /// The fingerprint of the rules its matches were found with, those that can match in
    /// this directory (0 without a path).
    pub rules: u64,
    /// Entries in the directory (for the report).
    pub count: u32,
    /// Subdirectories: name, inode.
    pub dirs: Vec<(CString, u64)>,
    /// Sockets, entries of unknown type and matches: name, inode, `d_type`.
    pub special: Vec<(CString, u64, u8)>,
}

/// The cache file of a walk of `roots` (`base` is `$STATE/view-cache`): `base-HASH`, one
/// per set of roots (FNV-1a of the paths), so a start never loads the listings of other
/// workspaces' views.
pub(crate) fn file_for(base: &Path, roots: &[std::path::PathBuf]) -> std::path::PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in roots {
        for &b in r.as_os_str().as_bytes().iter().chain(&[0u8]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-{h:016x}"));
    base.with_file_name(name)
}

/// The stamp of a directory's status.
pub(crate) fn stamp(st: &libc::stat) -> [i64; 6] {
    [st.st_ctime, st.st_ctime_nsec, st.st_mtime, st.st_mtime_nsec, st.st_size, st.st_nlink as i64]
}

/// Hashes the (device, inode) keys of the cache: each word folded in by a rotate, an xor
/// and a multiply (FxHash's step). SipHash, the standard map's, guards against keys chosen
/// to collide; these are handed out by the kernel, and SipHash was a tenth of the walk's own
/// time.
///
/// Used as `HashMap<(u64, u64), V, BuildHasherDefault<InodeHasher>>` by every map of
/// directory listings keyed by (device, inode): the view's cache and the glob scans'.
#[derive(Debug, Default, Clone, Copy)]
pub struct InodeHasher(u64);

impl std::hash::Hasher for InodeHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Listings by (device, inode).
type Map = HashMap<(u64, u64), Listing, std::hash::BuildHasherDefault<InodeHasher>>;

/// The cache: listings by (device, inode).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    map: Map,
    /// Listings added since loading (read and kept).
    pub added: usize,
    /// Of those, the listings of directories unchanged for [`LONG_UNCHANGED_SECS`] when read.
    pub long_unchanged: usize,
    /// The view's overlays (`mounts/overlay.rs`): their device, which is new at each
    /// start (and may be another overlay's at the next), and the device of the host tree
    /// beneath. Their directories are keyed by the host's device (with `xino` an overlay's
    /// inode numbers are the host's, with high bits of their own set).
    overlays: Vec<(u64, u64)>,
}

impl Cache {
    /// An empty cache.
    pub(crate) fn new() -> Cache {
        Cache::default()
    }

    /// Keys the directories of the overlays `(overlay device, host device)` by the host's
    /// device.
    pub(crate) fn with_overlays(mut self, overlays: Vec<(u64, u64)>) -> Cache {
        self.overlays = overlays;
        self
    }

    /// An empty cache with the same overlays.
    pub(crate) fn renewed(&self) -> Cache {
        let map = Map::with_capacity_and_hasher(self.map.len(), Default::default());
        Cache { map, overlays: self.overlays.clone(), ..Cache::default() }
    }

    /// The key of the directory of status `st`.
    fn key(&self, st: &libc::stat) -> (u64, u64) {
        let dev = self.overlays.iter().find(|(o, _)| *o == st.st_dev).map_or(st.st_dev, |(_, host)| *host);
        (dev, st.st_ino)
    }

    /// How many listings the cache holds.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The listing of the directory of status `st` at `path`, if it is still exact: of the
    /// same status and, where rules can match (`rules`: their fingerprint there,
    /// [`crate::view::plan::Rules::fingerprint_of`]), listed at this path under these rules.
    pub(crate) fn get(&self, st: &libc::stat, path: &Path, rules: Option<u64>) -> Option<&Listing> {
        let l = self.map.get(&self.key(st))?;
        if l.stamp != stamp(st) {
            return None;
        }
        if let Some(rules) = rules {
            if l.path.as_deref() != Some(path.as_os_str().as_bytes()) || l.rules != rules {
                return None;
            }
        }
        Some(l)
    }

    /// Takes the listing of the directory of status `st` at `path` out of the cache, if it
    /// is still exact (as [`Cache::get`]).
    pub(crate) fn take(&mut self, st: &libc::stat, path: &Path, rules: Option<u64>) -> Option<Listing> {
        self.get(st, path, rules)?;
        self.map.remove(&self.key(st))
    }

    /// Keeps `listing` of the directory of status `st` read at `listed_at` (seconds), if
    /// its ctime is old enough (see the module docs).
    pub(crate) fn put(&mut self, st: &libc::stat, listed_at: i64, listing: Listing) {
        if st.st_ctime + MARGIN_SECS < listed_at {
            self.map.insert(self.key(st), listing);
            self.added += 1;
            self.long_unchanged += usize::from(long_unchanged(st.st_ctime, listed_at));
        }
    }

    /// Moves an entry still valid from `old` into this cache.
    pub(crate) fn keep(&mut self, st: &libc::stat, listing: Listing) {
        self.map.insert(self.key(st), listing);
    }

    /// Reads a cache file; anything wrong with it gives an empty cache. Listings with
    /// matches of other rules stay, unused under these.
    pub(crate) fn load(file: &Path) -> Cache {
        let mut c = Cache::new();
        let Some(buf) = read_trusted(file) else { return c };
        let mut r = Reader { buf: &buf, off: 0 };
        let ok = (|| -> Option<()> {
            if r.bytes(8)? != MAGIC {
                return None;
            }
            let n = r.u64()?;
            // Room for every listing the file can hold (a listing takes 80 bytes or more).
            c.map.reserve(usize::try_from(n).unwrap_or(usize::MAX).min(buf.len() / 80));
            for _ in 0..n {
                let key = (r.u64()?, r.u64()?);
                let mut stamp = [0i64; 6];
                for s in &mut stamp {
                    *s = r.u64()? as i64;
                }
                let plen = r.u32()?;
                let path = if plen == u32::MAX { None } else { Some(r.bytes(plen as usize)?.to_vec()) };
                let lrules = r.u64()?;
                let count = r.u32()?;
                let mut dirs = Vec::new();
                for _ in 0..r.u32()? {
                    let ino = r.u64()?;
                    dirs.push((r.name()?, ino));
                }
                let mut special = Vec::new();
                for _ in 0..r.u32()? {
                    let ino = r.u64()?;
                    let t = r.bytes(1)?[0];
                    special.push((r.name()?, ino, t));
                }
                c.map.insert(key, Listing { stamp, path, rules: lrules, count, dirs, special });
            }
            Some(())
        })();
        if ok.is_none() {
            return Cache::new();
        }
        c
    }

    /// Writes the cache to `file` (a new file renamed into place).
    pub(crate) fn save(&self, file: &Path) -> io::Result<()> {
        let mut out = Vec::with_capacity(64 * self.map.len() + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for ((dev, ino), l) in &self.map {
            out.extend_from_slice(&dev.to_le_bytes());
            out.extend_from_slice(&ino.to_le_bytes());
            for s in l.stamp {
                out.extend_from_slice(&(s as u64).to_le_bytes());
            }
            match &l.path {
                Some(p) => {
                    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
                    out.extend_from_slice(p);
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
            out.extend_from_slice(&l.rules.to_le_bytes());
            out.extend_from_slice(&l.count.to_le_bytes());
            out.extend_from_slice(&(l.dirs.len() as u32).to_le_bytes());
            for (name, ino) in &l.dirs {
                out.extend_from_slice(&ino.to_le_bytes());
                put_name(&mut out, name);
            }
            out.extend_from_slice(&(l.special.len() as u32).to_le_bytes());
            for (name, ino, t) in &l.special {
                out.extend_from_slice(&ino.to_le_bytes());
                out.push(*t);
                put_name(&mut out, name);
            }
        }
        // This user's alone (0600 whatever the umask), or the next start does not read it.
        let (tmp, mut f) = crate::beside::new_file_beside(file)?;
        let r = f.write_all(&out).and_then(|()| std::fs::rename(&tmp, file));
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp); // best effort: the error below is what counts
        }
        r
    }
}

/// The cache file's bytes, when it and its directory are this user's alone: a regular
/// file (not a symlink, opened `O_NOFOLLOW`) and a directory owned by the user (as this
/// namespace maps it) that neither group nor others may write. A forged cache could leave a
/// match out of a listing the walk then trusts, so anything else is not read: the walk is
/// a fresh one.
fn read_trusted(file: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let uid = rustix::process::geteuid().as_raw();
    let private = |m: &std::fs::Metadata| m.uid() == uid && m.mode() & 0o022 == 0;
    let dir = std::fs::symlink_metadata(file.parent()?).ok()?;
    if !dir.is_dir() || !private(&dir) {
        tracing::debug!(file = %file.display(), "view cache not used: its directory is not this user's alone");
        return None;
    }
    let mut f =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(file).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || !private(&meta) || meta.nlink() != 1 {
        tracing::debug!(file = %file.display(), "view cache not used: not a regular file of this user's alone");
        return None;
    }
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn put_name(out: &mut Vec<u8>, name: &CString) {
    let b = name.as_bytes();
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.buf.get(self.off..self.off.checked_add(n)?)?;
        self.off += n;
        Some(b)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }
    fn name(&mut self) -> Option<CString> {
        let n = u16::from_le_bytes(self.bytes(2)?.try_into().ok()?) as usize;
        CString::new(self.bytes(n)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cache_of_this_users_alone_is_read() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        let base = std::env::temp_dir().join(format!("paddock-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let dir = base.join("state");
        std::fs::create_dir(&dir).unwrap();
        mode(&dir, 0o700);
        let file = dir.join("view-cache");
        std::fs::write(&file, b"bytes").unwrap();
        mode(&file, 0o600);
        assert_eq!(read_trusted(&file).as_deref(), Some(&b"bytes"[..]), "control: a private cache is read");
        mode(&dir, 0o777);
        assert_eq!(read_trusted(&file), None, "a directory others may write");
        mode(&dir, 0o700);
        mode(&file, 0o666);
        assert_eq!(read_trusted(&file), None, "a file others may write");
        mode(&file, 0o600);
        let elsewhere = base.join("forged");
        std::fs::rename(&file, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        assert_eq!(read_trusted(&file), None, "a symlink");
        std::fs::remove_file(&file).unwrap();
        std::fs::hard_link(&elsewhere, &file).unwrap();
        assert_eq!(read_trusted(&file), None, "a file with another name");
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// Saves go on whatever another save left beside the file (a reaper killed between
    /// its temporary file and the rename), and two saves at once both land.
    #[test]
    fn a_save_is_not_stopped_by_another_saves_leftovers() {
        let dir = tempfile_dir("leftover");
        let file = dir.join("view-cache-x");
        for leftover in ["tmp.1", &format!("tmp.{}", std::process::id())] {
            std::fs::write(file.with_extension(leftover), b"half").unwrap();
        }
        let c = Cache::new();
        std::thread::scope(|s| {
            let saves: Vec<_> = (0..4).map(|_| s.spawn(|| c.save(&file))).collect();
            for t in saves {
                t.join().unwrap().unwrap();
            }
        });
        assert!(read_trusted(&file).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A private directory of the test's own.
    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("paddock-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    fn st(ctime: i64) -> libc::stat {
        // SAFETY: an all-zero stat is a valid value.
        let mut s: libc::stat = unsafe { std::mem::zeroed() };
        s.st_dev = 7;
        s.st_ino = 42;
        s.st_ctime = ctime;
        s.st_nlink = 3;
        s
    }

    fn listing(s: &libc::stat, path: Option<&str>) -> Listing {
        Listing {
            stamp: stamp(s),
            path: path.map(|p| p.as_bytes().to_vec()),
            rules: 0,
            count: 2,
            dirs: vec![(CString::new("sub").unwrap(), 43)],
            special: vec![(CString::new("s.sock").unwrap(), 44, 12)],
        }
    }

    /// One listing of a directory long unchanged is worth the file's write; one of a
    /// directory changed a moment ago (a `.git` after a command) is not, until enough
    /// such listings came together.
    #[test]
    fn a_long_unchanged_directory_is_written_back() {
        let mut c = Cache::new();
        let s = st(100);
        c.put(&s, 100 + MARGIN_SECS + 1, listing(&s, None));
        assert_eq!((c.added, c.long_unchanged), (1, 0), "changed {} s before its read", MARGIN_SECS + 1);
        assert!(!listings_worth_saving(c.added, c.long_unchanged, 5));
        let mut c = Cache::new();
        c.put(&s, 100 + LONG_UNCHANGED_SECS + 1, listing(&s, None));
        assert_eq!((c.added, c.long_unchanged), (1, 1));
        assert!(listings_worth_saving(c.added, c.long_unchanged, 5));
        assert!(!long_unchanged(100, 100 + LONG_UNCHANGED_SECS), "exactly {LONG_UNCHANGED_SECS} s is not past");
        assert!(listings_worth_saving(LISTINGS_SAVED_AFTER, 0, 5));
        assert!(!listings_worth_saving(LISTINGS_SAVED_AFTER - 1, 0, 5));
        assert!(listings_worth_saving(1, 0, 0), "a first walk's listings are written");
        assert!(!listings_worth_saving(0, 0, 0));
    }

    #[test]
    fn overlay_directories_are_keyed_by_the_host_device() {
        // Start 1: the overlay of the host's device 3 is device 7.
        let mut c = Cache::new().with_overlays(vec![(7, 3)]);
        let s = st(100);
        c.put(&s, 200, listing(&s, None));
        // Start 2: the same tree's overlay is device 8; device 7 is another overlay's, of
        // another host filesystem (5), whose inode 42 is another directory.
        let mut c2 = Cache::new().with_overlays(vec![(8, 3), (7, 5)]);
        c2.map = std::mem::take(&mut c.map);
        let mut same = s;
        same.st_dev = 8;
        assert!(c2.get(&same, Path::new("/usr/x"), None).is_some(), "the same directory of the host");
        assert!(c2.get(&s, Path::new("/lib/x"), None).is_none(), "device 7 is another filesystem now");
        assert_eq!(c2.renewed().overlays, c2.overlays);
    }

    #[test]
    fn racily_clean_listings_are_not_kept() {
        let mut c = Cache::new();
        let s = st(100);
        c.put(&s, 101, listing(&s, None));
        assert!(c.get(&s, Path::new("/x"), None).is_none(), "ctime within the margin of the read");
        c.put(&s, 100 + MARGIN_SECS + 1, listing(&s, None));
        assert!(c.get(&s, Path::new("/x"), None).is_some());
    }

    #[test]
    fn any_change_of_status_or_path_invalidates() {
        let mut c = Cache::new();
        let s = st(100);
        c.put(&s, 200, listing(&s, Some("/ws/a")));
        assert!(c.get(&s, Path::new("/ws/a"), Some(0)).is_some());
        assert!(c.get(&s, Path::new("/ws/b"), Some(0)).is_none(), "renamed: matches depend on the path");
        let mut t = s;
        t.st_ctime_nsec = 1;
        assert!(c.get(&t, Path::new("/ws/a"), Some(0)).is_none());
        let mut t = s;
        t.st_mtime = 5;
        assert!(c.get(&t, Path::new("/ws/a"), Some(0)).is_none());
        // A listing without a path serves only where no rule can match.
        let mut c = Cache::new();
        c.put(&s, 200, listing(&s, None));
        assert!(c.get(&s, Path::new("/ws/a"), Some(0)).is_none());
        assert!(c.get(&s, Path::new("/usr/a"), None).is_some());
    }

    #[test]
    fn roundtrips_and_ignores_matches_of_other_rules() {
        let dir = std::env::temp_dir().join(format!("paddock-view-cache-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let f = dir.join("view-cache");
        let mut c = Cache::new();
        let s = st(100);
        let mut l = listing(&s, Some("/ws/a"));
        l.rules = 9;
        c.put(&s, 200, l);
        let mut s2 = st(100);
        s2.st_ino = 50;
        c.put(&s2, 200, listing(&s2, None));
        c.save(&f).unwrap();
        let d = Cache::load(&f);
        assert_eq!(d.map, c.map);
        assert!(d.get(&s, Path::new("/ws/a"), Some(9)).is_some());
        assert!(d.get(&s, Path::new("/ws/a"), Some(10)).is_none(), "matches of other rules are not used");
        assert!(d.get(&s2, Path::new("/usr/a"), None).is_some());
        std::fs::write(&f, b"garbage").unwrap();
        assert!(Cache::load(&f).map.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
