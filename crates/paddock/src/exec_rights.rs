//! Which files a call's tree may execute at all under `[commands] scope = "tree"`: the
//! programs of the `allow` patterns, the call's own program, and what the kernel opens to
//! run them (a `#!` interpreter, an ELF program's dynamic loader). Landlock grants execute
//! on these files only; the supervisor then decides each exec's arguments.

use std::io::Read;
use std::path::{Path, PathBuf};

use paddock_policy::{CommandScope, Policy};
use paddock_sandbox::ExecControl;

/// Files the kernel opens for one program followed at most: five `#!` rewrites (the
/// kernel's most, as the supervisor follows them), then the last one's dynamic loader.
const MAX_DEPTH: usize = 6;

/// The exec supervision of a call of `program` under `policy`: every exec is seen and
/// recorded; under scope "tree" with a `[commands]` table, only the listed files execute.
pub fn control(policy: &Policy, program: &Path) -> ExecControl {
    let candidates = match (&policy.commands, policy.command_scope) {
        (Some(_), CommandScope::Tree) => policy.exec_candidates(),
        _ => None,
    };
    // An `ask` for every command: any program may come to be allowed, so execute is not
    // narrowed (the supervisor still decides each exec).
    let Some(candidates) = candidates else { return ExecControl { programs: None } };
    let mut files: Vec<PathBuf> = Vec::new();
    let roots = candidates.into_iter().chain(std::iter::once(program.to_path_buf()));
    for p in roots {
        add_with_interpreters(&mut files, p, 0);
    }
    ExecControl { programs: Some(files) }
}

fn add_with_interpreters(files: &mut Vec<PathBuf>, p: PathBuf, depth: usize) {
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    if files.contains(&p) {
        return;
    }
    let interp = interpreter_of(&p);
    files.push(p);
    if let (Some(i), true) = (interp, depth < MAX_DEPTH) {
        add_with_interpreters(files, i, depth + 1);
    }
}

/// The file the kernel opens to run `p`: its `#!` interpreter, or an ELF program's
/// `PT_INTERP` (the dynamic loader); `None` for a static program or an unreadable file.
pub(crate) fn interpreter_of(p: &Path) -> Option<PathBuf> {
    let mut head = vec![0u8; 4096];
    let mut f = std::fs::File::open(p).ok()?;
    let n = f.read(&mut head).ok()?;
    head.truncate(n);
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next()?;
        let word = line.split(|&b| b == b' ' || b == b'\t').find(|w| !w.is_empty())?;
        return Some(PathBuf::from(String::from_utf8_lossy(word).into_owned()));
    }
    elf_interp(p, &head)
}

/// `PT_INTERP` of a little-endian ELF64 file whose first bytes are `head`.
fn elf_interp(p: &Path, head: &[u8]) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt;
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let phoff = u64_at(head, 0x20)?;
    let phentsize = u64::from(u16_at(head, 0x36)?);
    let phnum = u64::from(u16_at(head, 0x38)?);
    let f = std::fs::File::open(p).ok()?;
    let mut ph = vec![0u8; 56];
    for i in 0..phnum.min(64) {
        f.read_exact_at(&mut ph, phoff + i * phentsize).ok()?;
        if u32_at(&ph, 0)? == 3 {
            let (off, size) = (u64_at(&ph, 8)?, u64_at(&ph, 32)?.min(4096) as usize);
            let mut s = vec![0u8; size];
            f.read_exact_at(&mut s, off).ok()?;
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            return Some(PathBuf::from(String::from_utf8_lossy(&s[..end]).into_owned()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_names_its_loader_and_a_script_its_interpreter() {
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        let loader = interpreter_of(&sh).expect("/bin/sh is dynamically linked here");
        assert!(loader.to_string_lossy().contains("ld-"), "{}", loader.display());
        let dir = std::env::temp_dir().join(format!("paddock-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        assert_eq!(interpreter_of(&script), Some(PathBuf::from("/bin/sh")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
