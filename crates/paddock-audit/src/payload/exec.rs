//! `exec`: [`Exec`], one program started anywhere in a call's tree.

use serde::{Deserialize, Serialize};

use super::target::Decision;

/// Arguments kept on an `exec` record at most; the rest is counted in `argv_omitted`.
pub const EXEC_MAX_ARGS: usize = 64;
/// Bytes of one argument kept at most (cut on a character boundary, `argv_truncated` set).
pub const EXEC_MAX_ARG_BYTES: usize = 512;

/// Payload of `exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    /// The session.
    pub session: String,
    /// The call whose tree made the exec.
    pub call_id: String,
    /// The process (in the supervisor's pid namespace).
    pub pid: i32,
    /// Its parent (0 when unknown).
    pub ppid: i32,
    /// The program the kernel was asked to open, resolved in the sandbox's view
    /// (symlinks followed); absent when it resolves to no file (`reason` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// A `#!` script's interpreter: the program that runs (the last of a chain, when the
    /// interpreter is itself a script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// A chain of `#!` interpreters (one a script run by the next), in the order the kernel
    /// runs them, each with the argv it is given; absent for a program or a script whose
    /// interpreter is no script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpreters: Vec<Vec<String>>,
    /// The path as the process passed it.
    pub path: String,
    /// The arguments, bounded ([`EXEC_MAX_ARGS`], [`EXEC_MAX_ARG_BYTES`]).
    pub argv: Vec<String>,
    /// Arguments left out beyond [`EXEC_MAX_ARGS`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub argv_omitted: usize,
    /// Some argument was cut, or could not be read whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub argv_truncated: bool,
    /// Working directory in the sandbox's view.
    pub cwd: String,
    /// Allowed or refused (`EACCES` in the process).
    pub decision: Decision,
    /// The rule that decided.
    pub rule: String,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Exec {
    /// Bounds `argv` for the record: at most [`EXEC_MAX_ARGS`] arguments of at most
    /// [`EXEC_MAX_ARG_BYTES`] bytes each; returns the kept arguments, how many were left
    /// out and whether one was cut.
    pub fn bound_argv(argv: &[String]) -> (Vec<String>, usize, bool) {
        let mut cut = false;
        let kept = argv
            .iter()
            .take(EXEC_MAX_ARGS)
            .map(|a| {
                if a.len() <= EXEC_MAX_ARG_BYTES {
                    return a.clone();
                }
                cut = true;
                let mut end = EXEC_MAX_ARG_BYTES;
                while !a.is_char_boundary(end) {
                    end -= 1;
                }
                a[..end].to_string()
            })
            .collect();
        (kept, argv.len().saturating_sub(EXEC_MAX_ARGS), cut)
    }

    /// `argv` joined for people (shell quoting), `[...]` when arguments were left out.
    /// Escape it before printing ([`crate::escape()`]).
    pub fn describe(&self) -> String {
        let mut s = self.argv.iter().map(|a| super::target::shell_quote(a)).collect::<Vec<_>>().join(" ");
        if self.argv_omitted > 0 || self.argv_truncated {
            s.push_str(" [...]");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_bounded_on_char_boundaries() {
        let long = "é".repeat(EXEC_MAX_ARG_BYTES); // 2 bytes each
        let argv: Vec<String> = std::iter::once(long).chain((0..100).map(|i| i.to_string())).collect();
        let (kept, omitted, cut) = Exec::bound_argv(&argv);
        assert_eq!(kept.len(), EXEC_MAX_ARGS);
        assert_eq!(omitted, 101 - EXEC_MAX_ARGS);
        assert!(cut);
        assert_eq!(kept[0].len(), EXEC_MAX_ARG_BYTES);
    }
}
