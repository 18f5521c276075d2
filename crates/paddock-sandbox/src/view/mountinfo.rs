//! The lines of a mount table (`/proc/self/mountinfo`, proc(5)): the fields the view
//! reads of each mount, its mount point unescaped.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One mount of a table.
pub(crate) struct Mount<'a> {
    /// `major:minor` of its filesystem.
    pub dev: &'a [u8],
    /// Its root within its filesystem (not `/` for a bind of a directory).
    pub root: &'a [u8],
    /// Its mount point, relative to the reading process's root.
    pub point: PathBuf,
    /// Its filesystem's kind (`ext4`, `overlay`, ...).
    pub kind: &'a [u8],
    /// Its filesystem's options (an overlay's layers among them).
    pub options: &'a [u8],
}

/// The mounts of `table`, in its order; a malformed line is left out.
pub(crate) fn mounts(table: &[u8]) -> impl Iterator<Item = Mount<'_>> {
    table.split(|&c| c == b'\n').filter_map(|line| {
        let fields: Vec<&[u8]> = line.split(|&c| c == b' ').collect();
        // Optional fields end at the separator `-`; the kind and the options follow it.
        let sep = fields.iter().position(|f| *f == b"-")?;
        Some(Mount {
            dev: fields.get(2)?,
            root: fields.get(3)?,
            point: unescape_octal(fields.get(4)?),
            kind: fields.get(sep + 1)?,
            options: fields.get(sep + 3).copied().unwrap_or_default(),
        })
    })
}

/// A path as `mountinfo` writes it, with `\040`-style octal escapes undone.
pub(crate) fn unescape_octal(b: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_past_the_optional_ones_and_points_unescaped() {
        let t = b"36 35 98:0 /mnt1 /a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\nbad line\n";
        let m: Vec<Mount<'_>> = mounts(t).collect();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].dev, m[0].root, m[0].kind), (&b"98:0"[..], &b"/mnt1"[..], &b"ext3"[..]));
        assert_eq!(m[0].point, PathBuf::from("/a b"));
        assert_eq!(m[0].options, b"rw,errors=continue");
    }
}
