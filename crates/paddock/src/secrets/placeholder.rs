//! Placeholders: `paddock-secret-NAME-<32 hex>`: 128 random bits from the kernel, new for
//! every session, or derived from a seed file of 32 random bytes (the same placeholder
//! from session to session). Worthless outside paddock: only a paddock proxy knows what it
//! stands for, and the seed never enters a view.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The prefix of every placeholder.
pub(crate) const PREFIX: &str = "paddock-secret-";

/// A new placeholder for the secret `name`.
pub(crate) fn generate(name: &str) -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{PREFIX}{name}-{hex}"))
}

/// The placeholder of the secret `name` derived from `seed`: the first 128 bits of
/// SHA-256 over a domain tag, the seed and the name.
pub(crate) fn derive(seed: &[u8; 32], name: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"paddock placeholder v1\0");
    h.update(seed);
    h.update(name.as_bytes());
    let hex: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{name}-{hex}")
}

/// The 32 bytes of the seed file at `path`; a missing file is made first (0600, random
/// bytes from the kernel): written whole beside it and then linked into place, so a
/// concurrent session never reads it half written, and two sessions never keep two seeds
/// (the second link fails and the first seed is read). A file of another size, a symlink
/// or anything but a regular file is an error.
pub fn read_seed(path: &Path) -> std::io::Result<[u8; 32]> {
    match read_existing(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        read => return read,
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    // A name of this call's own: threads of one process (sessions of `serve`) make the
    // seed at once too.
    let (tmp, mut f) = paddock_sandbox::new_file_beside(path)?;
    let made = f.write_all(&bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::hard_link(&tmp, path));
    drop(f);
    // The temporary name goes whatever happened; an error removing it changes nothing.
    let _ = std::fs::remove_file(&tmp);
    match made {
        Ok(()) => Ok(bytes),
        // Only the link can find the name taken: another session made the seed first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_existing(path),
        Err(e) => Err(e),
    }
}

/// The seed at `path`, which must be a regular file of 32 bytes (never through a symlink).
fn read_existing(path: &Path) -> std::io::Result<[u8; 32]> {
    // `$STATE` is the user's own 0700 directory: a symlink there is refused, not followed.
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path);
    let f = match f {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(not_a_seed(path)),
        f => f?,
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() != 32 {
        return Err(not_a_seed(path));
    }
    let mut bytes = [0u8; 32];
    (&f).read_exact(&mut bytes)?;
    Ok(bytes)
}

fn not_a_seed(path: &Path) -> std::io::Error {
    std::io::Error::other(format!(
        "{}: not a placeholder seed (a regular file of 32 bytes); remove it and a new one is made",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_random_and_named() {
        let a = super::generate("gh").unwrap();
        let b = super::generate("gh").unwrap();
        assert!(a.starts_with("paddock-secret-gh-") && a.len() == "paddock-secret-gh-".len() + 32, "{a}");
        assert_ne!(a, b);
    }

    /// Sessions starting at once on a new `$STATE` all read the one seed, never a half
    /// written file (a concurrent first `run` once failed on one).
    #[test]
    fn concurrent_first_reads_agree() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("seed");
            let seeds: Vec<[u8; 32]> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..8).map(|_| s.spawn(|| super::read_seed(&path))).collect();
                hs.into_iter().map(|h| h.join().unwrap().expect("every reader gets the seed")).collect()
            });
            assert!(seeds.iter().all(|x| *x == seeds[0]), "one seed for all");
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names, vec![std::ffi::OsString::from("seed")], "no temporary file left {round}");
        }
    }

    #[test]
    fn seeded_placeholders_are_stable_per_seed_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed");
        let s1 = super::read_seed(&path).unwrap();
        assert_eq!(super::read_seed(&path).unwrap(), s1, "read back, not remade");
        let a = super::derive(&s1, "gh");
        assert_eq!(a, super::derive(&s1, "gh"));
        assert!(a.starts_with("paddock-secret-gh-") && a.len() == "paddock-secret-gh-".len() + 32, "{a}");
        assert_ne!(a, super::derive(&s1, "npm"));
        assert_ne!(a, super::derive(&[7; 32], "gh"));
        std::fs::write(&path, b"short").unwrap();
        assert!(super::read_seed(&path).is_err(), "a seed of the wrong size is refused");
    }
}
