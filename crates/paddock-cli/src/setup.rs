//! What every command needs: logging, the workspace, the policy.

use std::path::{Path, PathBuf};

use paddock_policy::{Policy, Vars};

use crate::args::PolicyArgs;
use crate::exit;
use crate::state::State;
// `fail` lives with the exit codes (state.rs and output.rs use it without setup.rs).
pub use crate::exit::{eprint_lines, fail};

/// Logs go to stderr; `PADDOCK_LOG` (`LEVEL` or `target=LEVEL`, comma-separated) overrides
/// `-v`. A `PADDOCK_LOG` that does not parse is said, and `-v`'s level used.
///
/// A `Targets` filter, not an `EnvFilter`: the latter's span and field matchers pull in
/// regex-automata's full-DFA builder, and with it every glob of the policy was compiled
/// into two eager DFAs at each start (a tenth of `paddock run`'s CPU).
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // rmcp's warnings are about what a client sent, in Rust's debug notation (`ErrorData {
    // code: ErrorCode(-32601), .. }`); the client has its answer. They show from -v on.
    let rmcp = if verbose == 0 { tracing::Level::ERROR } else { default };
    let fallback = || tracing_subscriber::filter::Targets::new().with_default(default).with_target("rmcp", rmcp);
    let filter = match std::env::var("PADDOCK_LOG") {
        Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            eprintln!(
                "paddock: PADDOCK_LOG={}: {e} (expected LEVEL or target=LEVEL, comma-separated); using the level of -v",
                paddock_audit::Escaped(&v)
            );
            fallback()
        }),
        _ => fallback(),
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let fmt = tracing_subscriber::fmt::layer().with_writer(|| EscapingStderr).with_target(false).without_time();
    let _ = tracing_subscriber::registry().with(fmt).with(filter).try_init();
}

/// stderr for log lines, with control, bidi and invisible characters escaped: a library's
/// debug line can quote what the agent sent (an MCP client's protocol version, a host).
/// tracing formats a whole event before it writes it, so each write is whole lines.
struct EscapingStderr;

impl std::io::Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\n' || c == '\t' || c == '\\' || !paddock_audit::escape::needs_escape(c) {
                out.push(c);
            } else {
                out.push_str(&paddock_audit::escape(c.encode_utf8(&mut [0; 4])));
            }
        }
        std::io::stderr().lock().write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The current directory, or a failure code.
pub fn current_dir() -> Result<PathBuf, i32> {
    std::env::current_dir().map_err(|e| fail(exit::USAGE, format_args!("cannot read the current directory: {e}")))
}

/// The workspace: `--workspace`, else the current directory; canonical, must be a directory.
pub fn workspace(arg: Option<&Path>) -> Result<PathBuf, i32> {
    let dir = match arg {
        Some(d) => d.to_path_buf(),
        None => current_dir()?,
    };
    match std::fs::canonicalize(&dir) {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(_) => Err(fail(exit::USAGE, format_args!("workspace `{}` is not a directory", dir.display()))),
        Err(e) => Err(fail(exit::USAGE, format_args!("workspace `{}`: {e}", dir.display()))),
    }
}

/// Loads `--policy` or the embedded default with the revocations in force; prints located
/// errors and returns 78 on failure.
pub fn load_policy(args: &PolicyArgs) -> Result<Policy, i32> {
    let state = State::new();
    let mut policy = load_policy_only(args, &state)?;
    state.apply_revocations(&mut policy)?;
    hide_state(&mut policy, &state)?;
    Ok(policy)
}

/// Loads `--policy` or the embedded default, without revocations.
pub fn load_policy_only(args: &PolicyArgs, state: &State) -> Result<Policy, i32> {
    let ws = workspace(args.policy_workspace())?;
    let vars = Vars::from_env(ws);
    let loaded = match &args.policy {
        Some(path) => match preset_name(path) {
            Some(name) => match Policy::preset(name, &vars) {
                Some(loaded) => loaded,
                None => return Err(unknown_preset(name)),
            },
            None => {
                policy_file_readable(path)?;
                Policy::load(path, &vars)
            }
        },
        None => Policy::embedded_default(&vars),
    };
    let mut policy = loaded.map_err(|e| {
        eprint_lines(e);
        exit::CONFIG
    })?;
    state.apply_approved(&mut policy)?;
    Ok(policy)
}

/// Marks `$STATE` (audit log, revocations, token, approvals) as paddock's own: never in a
/// view, never read or written by a call. Called once the state directory is known good.
pub fn hide_state(policy: &mut Policy, state: &State) -> Result<(), i32> {
    policy.hide_paths(state.dir_if_any()?.map(Path::to_path_buf));
    Ok(())
}

/// The preset `--policy` names: a bare name (no `/`, not ending in `.toml`) that is not
/// an existing file. A file of that name in the current directory wins, so a project's
/// own `default` keeps working; `./NAME` always means the file.
pub fn preset_name(arg: &Path) -> Option<&str> {
    let s = arg.to_str()?;
    let bare = !s.is_empty() && !s.contains('/') && !s.ends_with(".toml");
    if !bare {
        return None;
    }
    // A preset's name always means the preset: the current directory is often the
    // workspace, which the agent writes, and a file there must not stand in for it
    // (`./NAME` names the file).
    if paddock_policy::preset_names().any(|n| n == s) {
        return Some(s);
    }
    std::fs::symlink_metadata(arg).is_err().then_some(s)
}

/// `--policy NAME` names neither a file nor an embedded preset: 78, listing the presets.
fn unknown_preset(name: &str) -> i32 {
    eprintln!("paddock: --policy {}: no such file, and not an embedded preset", paddock_audit::Escaped(name));
    eprintln!(
        "  hint: the embedded presets are: {} (`paddock policy show --policy NAME` prints one); a policy file is named by its path, e.g. ./{}.toml",
        paddock_policy::preset_names().collect::<Vec<_>>().join(", "),
        paddock_audit::Escaped(name)
    );
    exit::CONFIG
}

/// Says so, and returns 78, when the policy file named on the command line cannot be read
/// (a missing file is not a located error inside it).
pub fn policy_file_readable(path: &Path) -> Result<(), i32> {
    file_readable(path).map_err(|why| policy_unreadable(path, &why, true))
}

/// [`policy_file_readable`] for a file named to `policy lint`: no word about `--policy`,
/// which the user did not pass.
pub fn lint_file_readable(path: &Path) -> Result<(), i32> {
    file_readable(path).map_err(|why| policy_unreadable(path, &why, false))
}

/// Why `path` cannot be read as a policy, if it cannot.
fn file_readable(path: &Path) -> Result<(), String> {
    // Inspected before it is opened: opening a FIFO waits for a writer.
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err("it is a directory".into()),
        Ok(m) if !m.is_file() => Err("not a regular file (a FIFO, socket or device)".into()),
        Ok(_) => std::fs::File::open(path).map(drop).map_err(|e| io_message(&e)),
        Err(e) => Err(io_message(&e)),
    }
}

/// Says that `path` cannot be read; `policy_hint`: with the hint about `--policy`, else
/// with `policy lint`'s.
fn policy_unreadable(path: &Path, why: &str, policy_hint: bool) -> i32 {
    eprintln!("paddock: cannot read policy {}: {why}", paddock_audit::Escaped(&path.to_string_lossy()));
    let presets = paddock_policy::preset_names().collect::<Vec<_>>().join(", ");
    if policy_hint {
        eprintln!(
            "  hint: --policy takes a TOML policy file or the name of an embedded preset ({presets}); without --policy the embedded default applies (`paddock policy show` prints it)"
        );
    } else {
        eprintln!(
            "  hint: `policy lint` takes the path of a TOML policy file (the embedded presets, {presets}, need no linting)"
        );
    }
    exit::CONFIG
}

/// An I/O error's text without the `(os error N)` suffix.
pub fn io_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl PolicyArgs {
    fn policy_workspace(&self) -> Option<&Path> {
        self.workspace.as_deref()
    }
}

/// What a session needs from the command line: the policy (without revocations: the
/// session follows the list itself), the audit log's path and the revocation list's.
pub fn session_inputs(
    args: &PolicyArgs,
    audit: Option<&Path>,
    state: &State,
) -> Result<(Policy, PathBuf, Option<PathBuf>), i32> {
    let mut policy = load_policy_only(args, state)?;
    let log = state.audit_file(audit)?;
    let revocations = state.revocations_file_if_any()?;
    hide_state(&mut policy, state)?;
    Ok((policy, log, revocations))
}
