//! cgroup v1: one directory per controller, under this process's cgroup of the `pids`
//! and `memory` hierarchies, when writable (as root).

use super::fs::{dir_of, exists_at, make_dir, write_file, Notes, Part, Want};

/// Makes one directory per wanted controller that has a usable hierarchy; what it could
/// not bound goes to `notes.missing`, with why.
pub(super) fn make(
    own: &[(&str, Vec<&str>, &str)],
    mounts: &[(&str, &str, &str, &str)],
    wants: &[Want],
    name: &str,
    notes: &mut Notes,
) -> Vec<Part> {
    let mut parts = Vec::new();
    for w in wants {
        match make_one(own, mounts, w, name) {
            Ok((part, set, dir)) => {
                notes.set.push(set);
                notes.where_.push(dir);
                parts.push(part);
            }
            Err(why) => {
                notes.why.push(why);
                notes.missing.push(w.ctl);
            }
        }
    }
    parts
}

/// The directory of one controller: the part, the limits written and where, or why not.
fn make_one(
    own: &[(&str, Vec<&str>, &str)],
    mounts: &[(&str, &str, &str, &str)],
    w: &Want,
    name: &str,
) -> Result<(Part, String, String), String> {
    let line = own.iter().find(|(id, ctl, _)| *id != "0" && ctl.contains(&w.ctl));
    let mount = mounts.iter().find(|(_, _, fs, opts)| *fs == "cgroup" && opts.split(',').any(|o| o == w.ctl));
    let (Some((_, _, path)), Some((root, mp, _, _))) = (line, mount) else {
        return Err(format!("no cgroup v1 {} hierarchy", w.ctl));
    };
    let Some(base) = dir_of(mp, root, path) else {
        return Err(format!("cgroup v1 {}: {path} is outside the mount at {mp}", w.ctl));
    };
    let (part, d) = make_dir(&base, name).map_err(|e| format!("cgroup v1 {}: {e}", w.ctl))?;
    let value = w.value.to_string();
    let written = if w.ctl == "pids" {
        write_file(&d, "pids.max", &value).map(|()| format!("pids.max={value}"))
    } else {
        write_file(&d, "memory.limit_in_bytes", &value).map(|()| {
            let mut s = format!("memory.limit_in_bytes={value}");
            // Swap counts against the limit where the kernel accounts it.
            if exists_at(&d, "memory.memsw.limit_in_bytes")
                && write_file(&d, "memory.memsw.limit_in_bytes", &value).is_ok()
            {
                s.push_str(&format!(", memory.memsw.limit_in_bytes={value}"));
            }
            s
        })
    };
    match written {
        Ok(set) => Ok((part, set, format!("{}/{name}", base.display()))),
        Err(e) => {
            Part::remove_dir(&part.parent, &part.name);
            Err(format!("cgroup v1 {}: {e}", w.ctl))
        }
    }
}
