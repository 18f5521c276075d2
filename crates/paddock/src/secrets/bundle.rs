//! The CA bundle in the child's view: the system's roots plus the session CA, in a file of
//! its own (0644, in a directory of its own, 0755) that every sandbox of the session binds
//! read-only at the same path, with the variables tools read it from. Outside `$STATE`
//! (which no view holds) and outside `/tmp` (the child's own tmpfs): under
//! `$XDG_RUNTIME_DIR`, else `/var/tmp`. Removed when the session ends.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use paddock_policy::CA_BUNDLE_VARS;

/// The bundle's file name in its directory.
pub const CA_BUNDLE_FILE: &str = "ca-bundle.pem";

/// A session's CA bundle file; dropping it removes the file and its directory.
#[derive(Debug)]
pub struct CaBundle {
    dir: PathBuf,
    file: PathBuf,
}

fn base_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if d.is_absolute() && d.is_dir() {
            return d;
        }
    }
    let var_tmp = Path::new("/var/tmp");
    if var_tmp.is_dir() {
        return var_tmp.to_path_buf();
    }
    std::env::temp_dir()
}

impl CaBundle {
    /// Writes `pem` for the session `session` into a new directory (its name has random
    /// bits, and it must not exist: nothing planted in a shared directory is ever used).
    pub fn create(session: &str, pem: &str) -> std::io::Result<CaBundle> {
        let mut tag = [0u8; 8];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut tag)?;
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let safe: String =
            session.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let dir = std::fs::canonicalize(base_dir())?.join(format!("paddock-ca-{safe}-{tag}"));
        std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
        let bundle = CaBundle { file: dir.join(CA_BUNDLE_FILE), dir };
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&bundle.file)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        // The umask may have narrowed the modes: the child (any uid) must read it.
        std::fs::set_permissions(&bundle.dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        std::fs::set_permissions(&bundle.file, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        Ok(bundle)
    }

    /// The directory every view binds read-only.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bundle file (the same path in the view).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, `CURL_CA_BUNDLE`,
    /// `GIT_SSL_CAINFO`, `CARGO_HTTP_CAINFO`, `PIP_CERT`: all the bundle.
    pub fn env(&self) -> Vec<(String, String)> {
        let f = self.file.to_string_lossy().into_owned();
        CA_BUNDLE_VARS.iter().map(|k| (k.to_string(), f.clone())).collect()
    }

    /// Removes the file and its directory now (also done on drop).
    pub fn remove(&self) {
        for r in [std::fs::remove_file(&self.file), std::fs::remove_dir(&self.dir)] {
            if let Err(e) = r {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %self.dir.display(), "CA bundle not removed: {e}");
                }
            }
        }
    }
}

impl Drop for CaBundle {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_readable_and_removed() {
        let b = CaBundle::create("s-1/x", "-----BEGIN CERTIFICATE-----\n").unwrap();
        assert_eq!(std::fs::metadata(b.file()).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::metadata(b.dir()).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(!b.dir().starts_with("/tmp"), "{}", b.dir().display());
        assert!(b.env().iter().any(|(k, v)| k == "SSL_CERT_FILE" && Path::new(v) == b.file()));
        let dir = b.dir().to_path_buf();
        drop(b);
        assert!(!dir.exists());
    }
}
