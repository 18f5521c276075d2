//! The bearer token of the API: a file created 0600 with 256 random bits (hex) when absent,
//! refused when group or others may read it (as ssh refuses a private key), compared in
//! constant time, and re-read when the file changes so a rotated token takes effect on the
//! next request without a restart.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Group or others may read or write the file.
    #[error("token file {path}: mode {mode:04o} lets group or others read it; run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no token.
    #[error("token file {0}: empty; write a random token into it (or delete it: paddock creates one)")]
    Empty(String),
    /// The token holds a character no `Authorization` header can carry (white space, a
    /// control character, a second line, a byte above ASCII): no client could ever send it.
    #[error(
        "token file {0}: the token holds white space, a control character or a byte that is not ASCII, which no client can send as `Authorization: Bearer TOKEN`; write one line of visible ASCII, or delete the file to get a new token"
    )]
    Unsendable(String),
    /// The token is shorter than [`MIN_TOKEN_LEN`] characters: one that can be guessed.
    #[error(
        "token file {path}: the token has {len} characters, fewer than the {MIN_TOKEN_LEN} required (a short one can be guessed); write a longer random one, or delete the file and paddock creates one with 256 random bits"
    )]
    TooShort {
        /// The file.
        path: String,
        /// The token's length in characters.
        len: usize,
    },
    /// The file is not a regular file.
    #[error("token file {0}: not a regular file")]
    NotAFile(String),
    /// The file has other names (hard links): only its own path is hidden from sandboxes.
    #[error(
        "token file {path}: it has {links} names (hard links); only its own path is hidden from sandboxes: remove the other names (`find / -xdev -samefile {path}`) or delete the file to get a new token"
    )]
    HardLinked {
        /// The file.
        path: String,
        /// How many names it has.
        links: u64,
    },
    /// The file was replaced by another (renamed into place) where a call can read it:
    /// a call running then may have read the new token, so no token is taken until a
    /// restart with the file out of calls' reach (or rewritten in place).
    #[error(
        "token file {0}: replaced by another file (renamed into place) in a directory a call may read: a call running then could read the new token, so no token is accepted; move the token file out of the policy's grants (the default $STATE/token is) and restart, or rotate it by rewriting it in place"
    )]
    ReplacedInReach(String),
    /// Reading or creating the file failed.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The fewest characters a token may have: 32 (128 bits as hex); paddock's own has 64.
pub const MIN_TOKEN_LEN: usize = 32;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |source| TokenError::Io { path: path.display().to_string(), source }
}

/// Creates `path` (mode 0600, parent directories 0700) holding 256 random bits as 64 hex
/// digits, unless it exists. Returns whether it was created.
pub fn ensure_token_file(path: &Path) -> Result<bool, TokenError> {
    if path.symlink_metadata().is_ok() {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    }
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(io(Path::new("/dev/urandom")))?;
    let mut hex = paddock_audit::hex::to_hex(&bytes);
    hex.push('\n');
    let mut f = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false), // another process won the race
        Err(e) => return Err(io(path)(e)),
    };
    f.write_all(hex.as_bytes()).and_then(|_| f.sync_all()).map_err(io(path))?;
    Ok(true)
}

/// The token in force: the SHA-256 of the file's trimmed content, cached until the file
/// changes.
pub struct Token {
    path: PathBuf,
    cached: Mutex<Option<(crate::file_stamp::FileStamp, [u8; 32])>>,
    /// The file lies where a call can read a file renamed into its place (a view masks the
    /// file there at its start, not what replaces it): a replacement is refused.
    in_reach: bool,
}

impl Token {
    /// Reads and checks the token file now (so that a bad file stops `serve` at start).
    pub fn load(path: &Path) -> Result<Token, TokenError> {
        Token::load_in(path, false)
    }

    /// [`Token::load`]; `in_reach`: the file's directory is one a call may read, where a
    /// new file renamed into the token file's place is refused ([`TokenError::ReplacedInReach`]).
    pub fn load_in(path: &Path, in_reach: bool) -> Result<Token, TokenError> {
        let t = Token { path: path.to_path_buf(), cached: Mutex::new(None), in_reach };
        t.current()?;
        Ok(t)
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The digest of the token in force; re-reads the file when its metadata changed.
    fn current(&self) -> Result<[u8; 32], TokenError> {
        // Never through a symlink: one in the file's place (planted where a call could
        // write) would name a token of the agent's choosing.
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&self.path)
            .map_err(io(&self.path))?;
        let meta = file.metadata().map_err(io(&self.path))?;
        let stamp = crate::file_stamp::FileStamp::of(&meta);
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, digest)) = *cached {
            if s == stamp {
                return Ok(digest);
            }
            if self.in_reach && !s.same_file(&stamp) {
                tracing::error!(
                    "token file {} was replaced where a call may read it: no token is accepted",
                    self.path.display()
                );
                return Err(TokenError::ReplacedInReach(self.path.display().to_string()));
            }
        }
        let shown = || self.path.display().to_string();
        if !meta.is_file() {
            return Err(TokenError::NotAFile(shown()));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(TokenError::Permissions { path: shown(), mode: meta.mode() & 0o7777 });
        }
        if meta.nlink() > 1 {
            return Err(TokenError::HardLinked { path: shown(), links: meta.nlink() });
        }
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io(&self.path))?;
        // The line as `$(cat FILE)` gives it: only its line ends are not the token.
        let token = text.trim_end_matches(['\n', '\r']);
        if token.trim().is_empty() {
            return Err(TokenError::Empty(shown()));
        }
        // What a client can send in `Authorization: Bearer`: visible ASCII, no space.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Unsendable(shown()));
        }
        let len = token.chars().count();
        if len < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { path: shown(), len });
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if cached.is_some() {
            tracing::info!("token file {} changed: the new token is in force", self.path.display());
        }
        *cached = Some((stamp, digest));
        Ok(digest)
    }

    /// Whether `presented` is the token in force. Both sides are hashed first, so the
    /// comparison takes the same time whatever the length or content of `presented`.
    pub fn verify(&self, presented: &str) -> Result<bool, TokenError> {
        let expected = self.current()?;
        let given: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        Ok(constant_time_eq(&expected, &given))
    }
}

/// Compares without an early exit: the time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for i in 0..32 {
        diff |= std::hint::black_box(a[i] ^ b[i]);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_0600_with_256_bits_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/token");
        assert!(ensure_token_file(&path).unwrap());
        assert!(!ensure_token_file(&path).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        // A second name (made before a sandbox could see it) refuses the token.
        std::fs::hard_link(&path, path.with_extension("second-name")).unwrap();
        assert!(matches!(Token::load(&path), Err(TokenError::HardLinked { links: 2, .. })));
        std::fs::remove_file(path.with_extension("second-name")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
        let t = Token::load(&path).unwrap();
        assert!(t.verify(text.trim()).unwrap());
        assert!(!t.verify("wrong").unwrap());
        assert!(!t.verify("").unwrap());
    }

    /// `word`, padded to a token of the shortest length accepted.
    fn long(word: &str) -> String {
        format!("{word:-<MIN_TOKEN_LEN$}")
    }

    #[test]
    fn a_token_no_client_can_send_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "ab                              cd",
            "a\rbcdefghijklmnopqrstuvwxyz0123456789",
            "first-line-of-a-token-xxxxxxxxxxxxx\nsecond",
            "abcdefghijklmnopqrstuvwxyz0123456789\u{a0}",
            "  abcdefghijklmnopqrstuvwxyz0123456789",
        ] {
            let path = dir.path().join("t");
            std::fs::write(&path, bad).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            match Token::load(&path) {
                Err(e) => assert!(matches!(e, TokenError::Unsendable(_)), "{bad:?}: {e}"),
                Ok(_) => panic!("{bad:?} was taken"),
            }
        }
    }

    /// A token shorter than 32 characters is refused at load and when rotated to; 32 is
    /// taken (the length is the trimmed token's, in characters).
    #[test]
    fn a_short_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Token::load(&path).err().expect("a 5-character token is refused");
        assert!(matches!(e, TokenError::TooShort { len: 5, .. }), "{e}");
        assert!(e.to_string().contains("fewer than the 32"), "{e}");
        let exact = "x".repeat(MIN_TOKEN_LEN);
        std::fs::write(&path, format!("{exact}\r\n")).unwrap();
        let t = Token::load(&path).unwrap();
        assert!(t.verify(&exact).unwrap());
        std::fs::write(&path, format!("{}\n", "e".repeat(MIN_TOKEN_LEN - 1))).unwrap();
        assert!(matches!(t.verify(&exact), Err(TokenError::TooShort { len: 31, .. })), "rotated to a short one");
    }

    #[test]
    fn rotation_takes_effect_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let (one, two) = (long("one"), long("two-two"));
        std::fs::write(&path, format!("{one}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = Token::load(&path).unwrap();
        assert!(t.verify(&one).unwrap());
        std::fs::write(&path, format!("{two}\n")).unwrap();
        assert!(t.verify(&two).unwrap());
        assert!(!t.verify(&one).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(t.verify(&two), Err(TokenError::Permissions { .. })));
        assert!(matches!(Token::load(&path), Err(TokenError::Permissions { .. })));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(t.verify("x"), Err(TokenError::Empty(_))));
    }

    /// In a directory a call may read, a token file renamed into place is refused (a call
    /// running then could read it: found by an attack); one rewritten in place is taken.
    /// Elsewhere a rename is a rotation like any other.
    #[test]
    fn a_token_renamed_into_reach_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let put = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let (one, two, three) = (long("one"), long("two"), long("three"));
        put("token", &format!("{one}\n"));
        let (reach, elsewhere) = (Token::load_in(&path, true).unwrap(), Token::load_in(&path, false).unwrap());
        std::fs::write(&path, format!("{two}\n")).unwrap();
        assert!(reach.verify(&two).unwrap() && elsewhere.verify(&two).unwrap(), "rewritten in place");
        std::fs::rename(put("token.new", &format!("{three}\n")), &path).unwrap();
        assert!(elsewhere.verify(&three).unwrap());
        assert!(matches!(reach.verify(&three), Err(TokenError::ReplacedInReach(_))));
        assert!(matches!(reach.verify(&two), Err(TokenError::ReplacedInReach(_))), "nor the old one");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(&[7; 32], &[7; 32]));
        let mut b = [7; 32];
        b[31] = 8;
        assert!(!constant_time_eq(&[7; 32], &b));
    }
}
