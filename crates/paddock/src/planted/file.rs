//! The kept listings of the glob scans on disk (`$STATE/glob-scan-KEY`, beside the view
//! cache), so a `paddock run`, one call a process, need not read every directory again.
//! Used only from a place no call can write (outside every write grant, or under a path
//! every view masks): a forged listing could hide a new match. An unreadable or malformed
//! file is no listings (every directory is read); one that cannot be written costs only
//! speed (logged).

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::scan::{Listing, Listings};

// 0003: listings of encrypted directories are no longer kept; those kept before are not read.
const MAGIC: &[u8; 8] = b"PDGS0003";

/// The file for listings kept under `key`, beside `view_cache`.
pub(super) fn path_for(view_cache: &Path, key: u64) -> PathBuf {
    view_cache.with_file_name(format!("glob-scan-{key:016x}"))
}

/// The listings in `path` whose rules are below `rules`; none when it is absent or malformed.
pub(super) fn load(path: &Path, rules: usize) -> Listings {
    let Ok(bytes) = std::fs::read(path) else { return Listings::default() };
    parse(&bytes, rules).unwrap_or_else(|| {
        tracing::debug!(path = %path.display(), "glob scan listings malformed: every directory is read");
        Listings::default()
    })
}

/// Writes `listings` to `path` (a temporary file renamed over it, mode 0600).
pub(super) fn save(path: &Path, listings: &Listings) -> std::io::Result<()> {
    let mut out = MAGIC.to_vec();
    for ((dev, ino), l) in listings {
        out.extend(dev.to_le_bytes());
        out.extend(ino.to_le_bytes());
        for s in l.stamp {
            out.extend(s.to_le_bytes());
        }
        bytes(&mut out, l.path.as_os_str().as_bytes());
        out.extend((l.dirs.len() as u32).to_le_bytes());
        for (d, ino) in &l.dirs {
            bytes(&mut out, d.as_bytes());
            out.extend(ino.to_le_bytes());
        }
        out.extend((l.matches.len() as u32).to_le_bytes());
        for (m, rule) in &l.matches {
            bytes(&mut out, m.as_bytes());
            out.extend((*rule as u32).to_le_bytes());
        }
    }
    // A name of this call's own: sessions of one `serve` settle their calls at once.
    let (tmp, mut f) = paddock_sandbox::new_file_beside(path)?;
    let r = f.write_all(&out).and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp); // best effort: the error returned is what counts
    }
    r
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend((b.len() as u32).to_le_bytes());
    out.extend(b);
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        (self.0.len() >= n).then(|| {
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            a
        })
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
    fn name(&mut self) -> Option<CString> {
        CString::new(self.bytes()?).ok()
    }
}

fn parse(bytes: &[u8], rules: usize) -> Option<Listings> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    let mut out = Listings::default();
    while !r.0.is_empty() {
        let key = (r.u64()?, r.u64()?);
        let mut stamp = [0i64; 6];
        for s in &mut stamp {
            *s = r.u64()? as i64;
        }
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&r.bytes()?));
        let dirs = (0..r.u32()?).map(|_| Some((r.name()?, r.u64()?))).collect::<Option<Vec<_>>>()?;
        let n = r.u32()?;
        let mut matches = Vec::new();
        for _ in 0..n {
            let name = r.name()?;
            let rule = r.u32()? as usize;
            if rule >= rules {
                return None;
            }
            matches.push((name, rule));
        }
        out.insert(key, Arc::new(Listing { stamp, path, dirs, matches }));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_and_bad_files_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = path_for(&dir.path().join("view-cache"), 7);
        let mut l = Listings::default();
        l.insert(
            (1, 2),
            Arc::new(Listing {
                stamp: [1, 2, 3, 4, 5, -6],
                path: "/ws/a".into(),
                dirs: vec![(c"b".to_owned(), 42)],
                matches: vec![(c".envrc".to_owned(), 1)],
            }),
        );
        save(&p, &l).unwrap();
        let back = load(&p, 2);
        assert_eq!(back.len(), 1);
        let b = &back[&(1, 2)];
        assert_eq!(
            (b.stamp, &b.path, &b.dirs, &b.matches),
            (l[&(1, 2)].stamp, &l[&(1, 2)].path, &l[&(1, 2)].dirs, &l[&(1, 2)].matches)
        );
        assert!(load(&p, 1).is_empty(), "a rule out of range: malformed");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&p, &bytes).unwrap();
        assert!(load(&p, 2).is_empty(), "truncated: malformed");
        assert!(load(&dir.path().join("absent"), 2).is_empty());
    }
}
