//! cgroup v2: every wanted controller in one directory, under this process's own cgroup
//! when it is the root one (only it may hold processes and offer controllers), else beside
//! it, under its parent, when the parent offers them.

use std::path::Path;

use super::fs::{dir_of, exists_at, make_dir, read_words, write_file, Notes, Part, Want};

/// Makes the directory and writes its limits; `None` (and why in `notes`) when cgroup v2
/// cannot bound every wanted controller here.
pub(super) fn make(
    own: &[(&str, Vec<&str>, &str)],
    mounts: &[(&str, &str, &str, &str)],
    wants: &[Want],
    name: &str,
    memory: bool,
    notes: &mut Notes,
) -> Option<Part> {
    let (_, _, path) = own.iter().find(|(id, _, _)| *id == "0")?;
    let (root, mp, _, _) = mounts.iter().find(|m| m.2 == "cgroup2")?;
    let dir = dir_of(mp, root, path)?;
    let has_all = |words: &[String]| wants.iter().all(|w| words.iter().any(|x| x == w.ctl));
    let base = if *path == "/" && has_all(&read_words(&dir.join("cgroup.subtree_control"))) {
        dir.clone()
    } else if *path != "/" && has_all(&read_words(&dir.join("cgroup.controllers"))) {
        dir.parent().map(Path::to_path_buf)?
    } else {
        notes.why.push(format!(
            "cgroup v2 at {} offers no {} controller",
            dir.display(),
            wants.iter().map(|w| w.ctl).collect::<Vec<_>>().join("/")
        ));
        return None;
    };
    let (part, d) = match make_dir(&base, name) {
        Ok(made) => made,
        Err(e) => {
            notes.why.push(format!("cgroup v2 not delegated here: {e}"));
            return None;
        }
    };
    let mut set = Vec::new();
    let mut r = Ok(());
    for w in wants {
        let file = if w.ctl == "pids" { "pids.max" } else { "memory.max" };
        r = r.and_then(|()| write_file(&d, file, &w.value.to_string()));
        if r.is_ok() {
            set.push(format!("{file}={}", w.value));
        }
    }
    if let Err(e) = r {
        Part::remove_dir(&part.parent, &part.name);
        notes.why.push(format!("cgroup v2 {}/{name}: {e}", base.display()));
        return None;
    }
    // Swap counts against the limit where the kernel accounts it.
    if memory && exists_at(&d, "memory.swap.max") && write_file(&d, "memory.swap.max", "0").is_ok() {
        set.push("memory.swap.max=0".into());
    }
    notes.set.extend(set);
    notes.where_.push(format!("{}/{name}", base.display()));
    Some(part)
}
