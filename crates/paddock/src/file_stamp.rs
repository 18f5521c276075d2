//! What identifies one version of a file that is re-read when it changes (a `file:`
//! secret, the serve token): identity, size, times and mode. A rotation, by rename into
//! place or by a rewrite, changes it.

use std::os::unix::fs::MetadataExt;

/// One version of a file, from its metadata.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
    mode: u32,
}

impl FileStamp {
    /// The stamp of `m`.
    pub(crate) fn of(m: &std::fs::Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
            mode: m.mode(),
        }
    }

    /// Whether `other` is a version of the same file (device and inode): not one renamed
    /// into its place. (The serve token's check.)
    #[cfg(feature = "serve")]
    pub(crate) fn same_file(&self, other: &FileStamp) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}
