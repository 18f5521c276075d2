//! A `#!` script's chain of interpreters, read as the kernel's `binfmt_script` reads it:
//! the first [`HEAD`] bytes of each file, the interpreter's name and its one optional
//! argument, and the argv the kernel gives each interpreter
//! (`[name, argument?, the previous level's file name, argv[1..]]`). An interpreter may
//! itself be a `#!` script: the kernel follows such a chain up to five rewrites
//! (`exec_binprm`, then `ELOOP`), and so does [`chain`]; every level is resolved in the
//! child's view and given to the decider, so no level runs undecided.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::resolve::{self, Root, Unresolved};
use super::ScriptInterpreter;

/// Bytes of a file the kernel reads to recognise its format (`BINPRM_BUF_SIZE`).
const HEAD: usize = 256;

/// Interpreters followed at most: the kernel rewrites an exec at most five times (its
/// loop in `exec_binprm` fails with `ELOOP` past depth 5), so a chain longer than this
/// never runs; one whose last followed interpreter is a script still is refused.
pub(crate) const MAX_LEVELS: usize = 5;

/// Why a script's chain could not be followed as the kernel will; the exec is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// A file of the chain could not be opened or read in the child's view (the kernel
    /// reads it without needing read permission; the supervisor must read it to decide).
    Unreadable { file: PathBuf, errno: rustix::io::Errno },
    /// A `#!` line the kernel does not accept (no interpreter name, or a name cut at
    /// [`HEAD`] bytes): the kernel fails that exec (`ENOEXEC`), and it is refused here.
    Malformed { file: PathBuf },
    /// An interpreter that names no regular file in the child's view.
    Interpreter { name: String, why: Unresolved },
    /// A relative interpreter, and no working directory to take it from.
    NoCwd { name: String },
    /// Deeper than [`MAX_LEVELS`]: more rewrites than the kernel makes.
    TooDeep,
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainError::Unreadable { file, errno } => {
                write!(f, "its #! chain cannot be read: {} ({errno})", file.display())
            }
            ChainError::Malformed { file } => {
                write!(
                    f,
                    "{} has a #! line the kernel does not run (no interpreter, or one cut at {HEAD} bytes)",
                    file.display()
                )
            }
            ChainError::Interpreter { name, why } => write!(f, "its #! interpreter `{name}` {}", why.describe()),
            ChainError::NoCwd { name } => {
                write!(f, "its #! interpreter `{name}` is relative and the working directory is not known")
            }
            ChainError::TooDeep => write!(
                f,
                "its #! interpreters are scripts more than {MAX_LEVELS} levels deep (the kernel refuses such a chain)"
            ),
        }
    }
}

/// A `#!` line: the interpreter's name and its optional argument, as the kernel splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shebang {
    pub name: Vec<u8>,
    pub arg: Option<Vec<u8>>,
}

/// The `#!` line of a file whose first bytes are `head` (the kernel reads [`HEAD`]),
/// parsed as `fs/binfmt_script.c` parses it: `None` when the file does not start with
/// `#!`; `Some(None)` when it does but the kernel would not run it (`ENOEXEC`).
///
/// The line ends at the first newline in the buffer; without one, the name must be
/// followed by a space, tab or NUL within the buffer (else it may be cut: refused), and
/// the line is the whole buffer. Trailing spaces and tabs are trimmed; the name is the
/// first word (ended by a space, tab or NUL); the argument is the rest after spaces and
/// tabs, one string, spaces inside it kept, ended by a NUL.
pub(crate) fn parse(head: &[u8]) -> Option<Option<Shebang>> {
    let mut buf = [0u8; HEAD]; // the kernel zero-fills what a short file leaves
    let n = head.len().min(HEAD);
    buf[..n].copy_from_slice(&head[..n]);
    if !buf.starts_with(b"#!") {
        return None;
    }
    Some(parse_line(&buf))
}

fn parse_line(buf: &[u8; HEAD]) -> Option<Shebang> {
    let spacetab = |c: u8| c == b' ' || c == b'\t';
    let terminator = |c: u8| spacetab(c) || c == 0;
    // Inclusive ranges, as the kernel's `next_non_spacetab`/`next_terminator` scan them.
    let next_non_spacetab = |first: usize, last: usize| (first..=last).find(|&i| !spacetab(buf[i]));
    let next_terminator = |first: usize, last: usize| (first..=last).find(|&i| terminator(buf[i]));
    let buf_end = HEAD - 1;
    let mut i_end = match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => nl,
        None => {
            let start = next_non_spacetab(2, buf_end)?;
            next_terminator(start, buf_end)?; // else the name may be cut
            buf_end
        }
    };
    while spacetab(buf[i_end - 1]) {
        i_end -= 1;
    }
    let i_name = next_non_spacetab(2, i_end).filter(|&i| i != i_end)?;
    let i_sep = next_terminator(i_name, i_end);
    let i_arg = i_sep.filter(|&s| buf[s] != 0).and_then(|s| next_non_spacetab(s, i_end));
    // The kernel ends the line at `i_end` (and the name at `i_sep` when there is an
    // argument) with a NUL, then reads each as a C string.
    let mut line = *buf;
    line[i_end] = 0;
    if let (Some(_), Some(s)) = (i_arg, i_sep) {
        line[s] = 0;
    }
    let c_str = |at: usize| {
        let rest = &line[at..];
        rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())].to_vec()
    };
    Some(Shebang { name: c_str(i_name), arg: i_arg.map(c_str) })
}

/// The interpreters the kernel runs for `program` (a canonical path in the child's view,
/// as [`resolve::resolve`] returns it), in order, each with the argv the kernel gives it:
/// empty for a program that is not a `#!` script. `filename` is the name the kernel
/// passes the first interpreter (the path as the exec gave it, or `/dev/fd/N[/path]`);
/// `argv` the exec's; a relative interpreter is taken from `cwd` (`None`: not known).
pub(crate) fn chain(
    root: Root<'_>,
    program: &Path,
    filename: &str,
    argv: &[String],
    cwd: Option<&Path>,
) -> Result<Vec<ScriptInterpreter>, ChainError> {
    let mut levels: Vec<ScriptInterpreter> = Vec::new();
    let mut file = program.to_path_buf();
    let mut previous_name = filename.to_string();
    let mut rest: Vec<String> = argv.iter().skip(1).cloned().collect();
    loop {
        let Some(line) = read_shebang(root, &file)? else { return Ok(levels) };
        if levels.len() == MAX_LEVELS {
            return Err(ChainError::TooDeep);
        }
        let line = line.ok_or_else(|| ChainError::Malformed { file: file.clone() })?;
        let name = String::from_utf8_lossy(&line.name).into_owned();
        let p = Path::new(OsStr::from_bytes(&line.name));
        let base = match cwd {
            Some(c) => c,
            None if p.is_absolute() => Path::new("/"),
            None => return Err(ChainError::NoCwd { name }),
        };
        let interp =
            resolve::resolve(root, base, p).map_err(|why| ChainError::Interpreter { name: name.clone(), why })?;
        // [name, argument?, the previous level's name, argv[1..] of the previous level]
        let mut args = Vec::with_capacity(rest.len() + 3);
        args.push(name.clone());
        args.extend(line.arg.as_deref().map(|a| String::from_utf8_lossy(a).into_owned()));
        args.push(previous_name);
        args.extend(rest.iter().cloned());
        rest = args[1..].to_vec();
        previous_name = name;
        levels.push(ScriptInterpreter { program: interp.clone(), argv: args });
        file = interp;
    }
}

/// The `#!` line of `file` (canonical in the child's view), as [`parse`] answers.
fn read_shebang(root: Root<'_>, file: &Path) -> Result<Option<Option<Shebang>>, ChainError> {
    let rel = Path::new(root.prefix).join(file.strip_prefix("/").unwrap_or(file));
    let unreadable = |errno| ChainError::Unreadable { file: file.to_path_buf(), errno };
    // Never follow a link the tree swapped in (its target would be looked up in the
    // supervisor's root), never wait on a FIFO.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::openat(root.dir, &rel, flags, Mode::empty()).map_err(unreadable)?;
    let mut head = [0u8; HEAD];
    let mut n = 0;
    while n < HEAD {
        match rustix::io::read(&fd, &mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(unreadable(e)),
        }
    }
    Ok(parse(&head[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, arg: Option<&str>) -> Option<Option<Shebang>> {
        Some(Some(Shebang { name: name.as_bytes().to_vec(), arg: arg.map(|a| a.as_bytes().to_vec()) }))
    }

    #[test]
    fn a_shebang_line_is_split_as_the_kernel_splits_it() {
        assert_eq!(parse(b"#!/bin/sh\necho"), line("/bin/sh", None));
        assert_eq!(parse(b"#!/bin/sh"), line("/bin/sh", None), "a short file ends in NULs");
        assert_eq!(parse(b"#! /usr/bin/env  python3 -u \t\nx"), line("/usr/bin/env", Some("python3 -u")));
        assert_eq!(parse(b"#!/bin/sh\t-e\n"), line("/bin/sh", Some("-e")));
        assert_eq!(parse(b"#!/bin/sh \n"), line("/bin/sh", None), "trailing blanks are no argument");
        assert_eq!(parse(b"#!/bin/sh\0-e\n"), line("/bin/sh", None), "a NUL ends the name, no argument");
        assert_eq!(parse(b"#!/bin/sh -e\0x\n"), line("/bin/sh", Some("-e")));
        assert_eq!(parse(b"#!/bin/sh \0x\n"), line("/bin/sh", Some("")), "an empty argument");
        assert_eq!(parse(b"#!\n"), Some(None));
        assert_eq!(parse(b"#!   \t\n"), Some(None));
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(b"#"), None);
        // No newline in the buffer: the name must end within it.
        let mut long = b"#!/bin/sh -x ".to_vec();
        long.resize(400, b'a');
        assert_eq!(
            parse(&long),
            line("/bin/sh", Some(&"-x ".chars().chain(std::iter::repeat_n('a', 242)).collect::<String>()))
        );
        let mut cut = b"#!/".to_vec();
        cut.resize(400, b'b');
        assert_eq!(parse(&cut), Some(None), "a name cut at 256 bytes");
    }

    #[test]
    fn every_level_of_a_chain_with_the_argv_the_kernel_gives_it() {
        let dir = std::env::temp_dir().join(format!("paddock-script-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ws")).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/elf"), b"\x7fELF\x02\x01").unwrap();
        std::fs::write(dir.join("ws/test.sh"), b"#!/bin/elf /ws/payload\n").unwrap();
        std::fs::write(dir.join("ws/build.sh"), b"#!/ws/test.sh\n").unwrap();
        std::fs::write(dir.join("ws/rel.sh"), b"#!test.sh -q\n").unwrap();
        let root_dir = std::fs::File::open(&dir).unwrap();
        let root = Root { dir: std::os::fd::AsFd::as_fd(&root_dir), prefix: "." };
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ws = Some(Path::new("/ws"));
        let got = chain(root, Path::new("/ws/build.sh"), "./build.sh", &argv(&["build.sh", "a"]), ws).unwrap();
        let want = vec![
            ScriptInterpreter { program: "/ws/test.sh".into(), argv: argv(&["/ws/test.sh", "./build.sh", "a"]) },
            ScriptInterpreter {
                program: "/bin/elf".into(),
                argv: argv(&["/bin/elf", "/ws/payload", "/ws/test.sh", "./build.sh", "a"]),
            },
        ];
        assert_eq!(got, want);
        assert_eq!(chain(root, Path::new("/bin/elf"), "/bin/elf", &argv(&["elf"]), ws), Ok(vec![]));
        // A relative interpreter is taken from the working directory, or refused without one.
        let got = chain(root, Path::new("/ws/rel.sh"), "rel.sh", &argv(&["rel.sh"]), ws).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].argv, argv(&["test.sh", "-q", "rel.sh"]));
        assert_eq!(
            chain(root, Path::new("/ws/rel.sh"), "rel.sh", &argv(&["rel.sh"]), None),
            Err(ChainError::NoCwd { name: "test.sh".into() })
        );
        // A loop of scripts: deeper than the kernel goes.
        std::fs::write(dir.join("ws/loop.sh"), b"#!/ws/loop.sh\n").unwrap();
        assert_eq!(chain(root, Path::new("/ws/loop.sh"), "x", &argv(&["x"]), ws), Err(ChainError::TooDeep));
        // Five levels are followed; the sixth would be refused by the kernel.
        for i in 0..5 {
            std::fs::write(dir.join(format!("ws/l{i}")), format!("#!/ws/l{}\n", i + 1)).unwrap();
        }
        std::fs::write(dir.join("ws/l5"), b"\x7fELF").unwrap();
        assert_eq!(chain(root, Path::new("/ws/l0"), "x", &argv(&["x"]), ws).map(|c| c.len()), Ok(5));
        std::fs::write(dir.join("ws/l5"), b"#!/bin/elf\n").unwrap();
        assert_eq!(chain(root, Path::new("/ws/l0"), "x", &argv(&["x"]), ws), Err(ChainError::TooDeep));
        // A missing interpreter, a malformed line.
        std::fs::write(dir.join("ws/gone.sh"), b"#!/bin/gone\n").unwrap();
        assert!(matches!(
            chain(root, Path::new("/ws/gone.sh"), "x", &argv(&["x"]), ws),
            Err(ChainError::Interpreter { why: Unresolved::NotFound, .. })
        ));
        std::fs::write(dir.join("ws/bad.sh"), b"#!  \n").unwrap();
        assert!(matches!(
            chain(root, Path::new("/ws/bad.sh"), "x", &argv(&["x"]), ws),
            Err(ChainError::Malformed { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
