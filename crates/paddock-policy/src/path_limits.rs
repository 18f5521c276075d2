//! What the kernel takes as a path: no NUL, at most `PATH_MAX` bytes, no name longer than
//! `NAME_MAX`. A `[filesystem]` entry beyond these could never be opened, and the sandbox
//! would fail on it later with a message that blames a confinement layer.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Linux's `PATH_MAX`, the terminating NUL included.
const PATH_MAX: usize = 4096;
/// Linux's `NAME_MAX`: the longest name of one directory entry.
const NAME_MAX: usize = 255;
/// How much of an over-long entry a message quotes.
const QUOTED: usize = 60;

/// Refuses an expanded path the kernel cannot take: `(message, hint)`, as
/// [`crate::vars::Vars::expand_path`] returns.
pub(crate) fn check(raw: &str, path: &Path) -> Result<(), (String, String)> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err((
            format!("path `{}` contains a NUL byte, which no path can hold", quoted(raw)),
            "remove the \\u0000 from the entry".into(),
        ));
    }
    if bytes.len() >= PATH_MAX {
        return Err((
            format!("path `{}` is {} bytes long, longer than a path can be", quoted(raw), bytes.len()),
            format!("a path is at most {} bytes (PATH_MAX)", PATH_MAX - 1),
        ));
    }
    if let Some(name) = bytes.split(|&b| b == b'/').find(|n| n.len() > NAME_MAX) {
        return Err((
            format!("path `{}` has a name of {} bytes, longer than a file name can be", quoted(raw), name.len()),
            format!("each name between slashes is at most {NAME_MAX} bytes (NAME_MAX)"),
        ));
    }
    Ok(())
}

/// `raw`, cut to its first [`QUOTED`] characters when longer.
fn quoted(raw: &str) -> String {
    match raw.char_indices().nth(QUOTED) {
        Some((i, _)) => format!("{}...", &raw[..i]),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_kernel_cannot_take_is_refused() {
        let ok = |s: &str| check(s, Path::new(s));
        assert!(ok("/tmp/a").is_ok());
        let e = ok("/tmp/a\0b").unwrap_err();
        assert!(e.0.contains("contains a NUL byte"), "{e:?}");
        let name = format!("/tmp/{}", "a".repeat(256));
        let e = ok(&name).unwrap_err();
        assert!(e.0.contains("a name of 256 bytes") && e.1.contains("255"), "{e:?}");
        assert!(ok(&format!("/tmp/{}", "a".repeat(255))).is_ok());
        let long = "/a".repeat(2048);
        let e = ok(&long).unwrap_err();
        assert!(e.0.contains("4096 bytes long") && e.1.contains("4095"), "{e:?}");
        assert!(e.0.len() < 200, "the message quotes a prefix only: {e:?}");
        assert!(ok(&"/a".repeat(2047)).is_ok());
    }
}
