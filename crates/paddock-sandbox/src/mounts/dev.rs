//! A minimal `/dev`: null zero full random urandom tty bound from the host, the usual
//! links, a private devpts with `ptmx`, and a sized `/dev/shm`; then read-only.

use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::paths::{mkdir_one, new_root, old_root, scratch_opts, touch};
use super::view::MountView;
use crate::spec::TmpfsSize;
use crate::sys::{mount, set_attrs, MOUNT_ATTR_RDONLY};

/// Builds `/dev` in the new root. A missing device or devpts is noted (and makes the view
/// partial when it matters); anything else is an error.
pub(super) fn build(pty: bool, tmp_size: TmpfsSize, view: &mut MountView, notes: &mut Vec<String>) -> io::Result<()> {
    let dev = new_root().join("dev");
    mkdir_one(&dev)?;
    mount(Some(Path::new("tmpfs")), &dev, Some("tmpfs"), libc::MS_NOSUID | libc::MS_NOEXEC, Some("mode=0755"))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dst = dev.join(name);
        let src = old_root().join("dev").join(name);
        // /dev is a fresh tmpfs: no lookups first.
        let r = touch(&dst).and_then(|()| mount(Some(&src), &dst, None, libc::MS_BIND, None));
        if let Err(e) = r {
            notes.push(format!("/dev/{name} missing: {e}"));
            view.partial = true;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        symlink(target, dev.join(link))?;
    }
    let pts = dev.join("pts");
    mkdir_one(&pts)?;
    // A devpts of its own: the sandbox sees no terminal of the host's.
    if let Err(e) = mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    ) {
        notes.push(format!("no private devpts: {e}"));
        if pty {
            view.partial = true;
        }
    }
    let shm = dev.join("shm");
    mkdir_one(&shm)?;
    mount(
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&scratch_opts(tmp_size)),
    )?;
    set_attrs(&dev, MOUNT_ATTR_RDONLY, false)
}
