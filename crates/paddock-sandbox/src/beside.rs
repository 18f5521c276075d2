//! New files written whole beside the name they are then renamed or linked to, so a reader
//! never sees one half written.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Makes a new file beside `file` and opens it for writing: mode 0600, created, never
/// opened (`O_EXCL`, `O_NOFOLLOW`), under a name no other call uses, so concurrent writers
/// (threads of one process or other processes) never share one. The name ends in
/// `.tmp.PID.NANOS.N`: the pid alone names alike the files of processes in different pid
/// namespaces (a run's reaper is pid 1 of its own), the clock's nanoseconds tell those
/// apart, and `N`, counted by this process, its threads. Returns the new file's path and
/// the file; the caller renames or links it into place and removes it on failure.
///
/// # Errors
///
/// The error of `open(2)`; a name that is taken (left by a process killed before it
/// renamed its file) is skipped for another, up to eight times.
pub fn new_file_beside(file: &Path) -> io::Result<(PathBuf, std::fs::File)> {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut attempt = 0;
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut name = file.as_os_str().to_os_string();
        name.push(format!(".tmp.{}.{nanos:x}.{n}", std::process::id()));
        let tmp = PathBuf::from(name);
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp);
        match opened {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 7 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn concurrent_calls_get_files_of_their_own() {
        let dir = scratch("concurrent");
        let file = dir.join("state");
        let made: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..16).map(|_| s.spawn(|| super::new_file_beside(&file).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut names: Vec<_> = made.iter().map(|(p, _)| p.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 16, "one name a call");
        assert!(!file.exists(), "the name itself is not touched");
        for (p, f) in &made {
            assert_eq!(p.parent(), Some(dir.as_path()));
            assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_renamed_replaces_its_name_and_nothing_is_left() {
        let dir = scratch("private");
        let file = dir.join("state");
        std::fs::write(&file, "old").unwrap();
        let (p, mut f) = super::new_file_beside(&file).unwrap();
        std::io::Write::write_all(&mut f, b"new").unwrap();
        std::fs::rename(&p, &file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing else left beside it");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("paddock-beside-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
