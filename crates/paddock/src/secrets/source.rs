//! Where a secret's value comes from, and when it is read again: `env:` once, at session
//! start (the caller's environment); `file:` whenever the file's identity, size or mtime
//! changed (one `stat` per request); `command:` again once `ttl` has passed. A source that
//! fails refuses the request that needed it, with a message naming the secret and never
//! the value; a failure is not cached, so a fixed source serves the next request (a
//! `command:` one, the first request 5 s on: it is not run again at once).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock_policy::SecretSource;

use super::secret::Secret;

/// Largest value read from a file or a command's output.
const MAX_VALUE_BYTES: u64 = 64 * 1024;

/// How long a `command:` source may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after a failure a `command:` source is not run again.
const FAILED_WAIT: Duration = Duration::from_secs(5);

/// Why a source gave no value (never contains the value).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `env:VAR` was unset or empty when the session started.
    #[error("the variable `{0}` was not set (or empty) in paddock's environment when the session started")]
    EnvUnset(String),
    /// `file:PATH` could not be read.
    #[error("cannot read `{path}`: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `command:CMD` failed, timed out or printed nothing. The message does not hold the
    /// command: it reaches the child (the refused request's answer) and the audit log, and
    /// a command may carry a credential of its own (`curl -H 'X-Vault-Token: ...'`; found
    /// by an attack). The policy says what it is.
    #[error("its command {reason}")]
    Command {
        /// What went wrong.
        reason: String,
    },
}

/// One secret's source and the value last read from it.
pub(crate) enum SourceState {
    Env {
        var: String,
        value: Option<Arc<Secret>>,
    },
    File {
        path: PathBuf,
        cached: Option<(crate::file_stamp::FileStamp, Arc<Secret>)>,
    },
    /// `away`: the paths the command is kept away from ([`SourceState::away_from`]);
    /// `failed`: when it last failed, and why.
    Command {
        cmd: String,
        ttl: Duration,
        cached: Option<(Instant, Arc<Secret>)>,
        away: Vec<PathBuf>,
        failed: Option<(Instant, String)>,
    },
}

impl SourceState {
    /// The state of `source`; `env:` reads `var` now.
    pub(crate) fn new(source: &SecretSource, ttl: Duration, var: &dyn Fn(&str) -> Option<String>) -> SourceState {
        match source {
            SecretSource::Env(name) => {
                let value = var(name).map(Secret::new).filter(|s| !s.is_empty()).map(Arc::new);
                SourceState::Env { var: name.clone(), value }
            }
            SecretSource::File(path) => SourceState::File { path: path.clone(), cached: None },
            SecretSource::Command(cmd) => {
                SourceState::Command { cmd: cmd.clone(), ttl, cached: None, away: Vec::new(), failed: None }
            }
        }
    }

    /// A `command:` source run where it can read, write or execute nothing beneath `paths`
    /// (the write grants: what a call can change), by the kernel ([`paddock_sandbox::Away`]);
    /// other sources are as they were.
    pub(crate) fn away_from(mut self, paths: Vec<PathBuf>) -> SourceState {
        if let SourceState::Command { away, .. } = &mut self {
            *away = paths;
        }
        self
    }

    /// Whether this is an `env:` source whose variable was unset or empty at session start.
    pub(crate) fn is_unset_env(&self) -> bool {
        matches!(self, SourceState::Env { value: None, .. })
    }

    /// The value of an `env:` source (read at session start), without touching any other.
    pub(crate) fn env_value(&self) -> Option<Arc<Secret>> {
        match self {
            SourceState::Env { value, .. } => value.clone(),
            _ => None,
        }
    }

    /// The value now: cached while the source is unchanged, read again otherwise.
    pub(crate) fn get(&mut self) -> Result<Arc<Secret>, SourceError> {
        match self {
            SourceState::Env { var, value } => value.clone().ok_or_else(|| SourceError::EnvUnset(var.clone())),
            SourceState::File { path, cached } => {
                let err = |reason: String| SourceError::File { path: path.clone(), reason };
                let meta = std::fs::metadata(&*path).map_err(|e| err(e.to_string()))?;
                let stamp = crate::file_stamp::FileStamp::of(&meta);
                if let Some((_, v)) = cached.as_ref().filter(|(s, _)| *s == stamp) {
                    return Ok(Arc::clone(v));
                }
                if !meta.is_file() {
                    return Err(err("not a regular file".into()));
                }
                let mut text = String::new();
                std::fs::File::open(&*path)
                    .and_then(|f| f.take(MAX_VALUE_BYTES + 1).read_to_string(&mut text))
                    .map_err(|e| err(e.to_string()))?;
                let too_long = text.len() as u64 > MAX_VALUE_BYTES;
                let value = Secret::new(text);
                if too_long {
                    return Err(err(format!("larger than {MAX_VALUE_BYTES} bytes")));
                }
                if value.is_empty() {
                    return Err(err("it is empty".into()));
                }
                let value = Arc::new(value);
                *cached = Some((stamp, Arc::clone(&value)));
                Ok(value)
            }
            SourceState::Command { cmd, ttl, cached, away, failed } => {
                if let Some((at, v)) = cached.as_ref() {
                    if at.elapsed() < *ttl {
                        return Ok(Arc::clone(v));
                    }
                }
                // Not run again at once after a failure: each request would run it (a
                // password manager's or a hardware key's prompt, again and again: found by
                // an attack).
                if let Some((at, why)) = failed.as_ref().filter(|(at, _)| at.elapsed() < FAILED_WAIT) {
                    let left = FAILED_WAIT.saturating_sub(at.elapsed()).as_secs() + 1;
                    return Err(SourceError::Command { reason: format!("{why} (run again in {left} s)") });
                }
                let value = match run_command(cmd, away) {
                    Ok(v) => Arc::new(v),
                    Err(e) => {
                        if let SourceError::Command { reason } = &e {
                            *failed = Some((Instant::now(), reason.clone()));
                        }
                        return Err(e);
                    }
                };
                *failed = None;
                *cached = Some((Instant::now(), Arc::clone(&value)));
                Ok(value)
            }
        }
    }
}

/// Runs `sh -c cmd` outside the sandbox (paddock's own environment and rights), its
/// standard output (trimmed) the value. Its standard error is discarded: it might echo
/// the value, and a message of ours must never. It runs in `/`, never in paddock's own
/// working directory: that is usually the workspace, where the agent writes, and a
/// command that looks there (`python3 -m keyring`, `npx`, `./scripts/token`) would run
/// what the agent planted, unconfined. And it can read, write or execute nothing beneath
/// `away` (the write grants): Landlock, applied before its exec; where the kernel has no
/// Landlock it does not run (found by an attack: shell lines the policy's check of its
/// words cannot follow, `cd && cd proj && ./tok.sh`, ran the agent's script unconfined).
fn run_command(cmd: &str, away: &[PathBuf]) -> Result<Secret, SourceError> {
    let err = |reason: String| SourceError::Command { reason };
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(cmd).current_dir("/").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    let kept = match paddock_sandbox::Away::from(away) {
        Ok(Some(a)) => Some(a),
        Ok(None) if away.is_empty() => None,
        Ok(None) => {
            return Err(err(
                "was not run: this kernel has no Landlock, which keeps it away from what a call can write".into()
            ))
        }
        Err(e) => return Err(err(format!("was not run: its confinement could not be made: {e}"))),
    };
    if let Some(a) = &kept {
        a.confine(&mut command);
    }
    let mut child = command.spawn().map_err(|e| err(format!("could not start: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("has no standard output".into()))?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let r = (&mut stdout).take(MAX_VALUE_BYTES + 1).read_to_end(&mut out);
        r.map(|_| zeroize::Zeroizing::new(out))
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                if let Err(e) = child.kill() {
                    tracing::warn!("secret command: kill after timeout: {e}");
                }
                if let Err(e) = child.wait() {
                    tracing::warn!("secret command: wait after kill: {e}");
                }
                return Err(err(format!("did not finish within {}s", COMMAND_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(err(format!("could not be waited for: {e}"))),
        }
    };
    let out = reader
        .join()
        .map_err(|_| err("output reader panicked".into()))?
        .map_err(|e| err(format!("output could not be read: {e}")))?;
    if !status.success() {
        return Err(err(format!("failed ({status})")));
    }
    if out.len() as u64 > MAX_VALUE_BYTES {
        return Err(err(format!("printed more than {MAX_VALUE_BYTES} bytes")));
    }
    let text = String::from_utf8(out.to_vec()).map_err(|_| err("printed something that is not UTF-8".into()))?;
    let value = Secret::new(text);
    if value.is_empty() {
        return Err(err("printed nothing".into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn env_is_read_once() {
        let mut s = SourceState::new(&SecretSource::Env("X".into()), Duration::ZERO, &|_| Some("v1\n".into()));
        assert_eq!(s.get().unwrap().expose(), "v1");
        let mut s = SourceState::new(&SecretSource::Env("X".into()), Duration::ZERO, &no_env);
        assert!(s.get().unwrap_err().to_string().contains("`X` was not set"));
    }

    #[test]
    fn file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "one\n").unwrap();
        let mut s = SourceState::new(&SecretSource::File(p.clone()), Duration::ZERO, &no_env);
        assert_eq!(s.get().unwrap().expose(), "one");
        // Rotation by rename: a new inode.
        let tmp = dir.path().join("tok.new");
        std::fs::write(&tmp, "two-longer").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        assert_eq!(s.get().unwrap().expose(), "two-longer");
        std::fs::remove_file(&p).unwrap();
        let e = s.get().unwrap_err().to_string();
        assert!(e.contains("cannot read") && !e.contains("two-longer"), "{e}");
        std::fs::write(&p, "\n").unwrap();
        assert!(s.get().unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn command_runs_again_after_ttl_and_failures_name_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let counter = dir.path().join("n");
        let cmd = format!("echo x >> {0}; printf 'tok-%s' $(wc -l < {0})", counter.display());
        let mut s = SourceState::new(&SecretSource::Command(cmd.clone()), Duration::from_secs(3600), &no_env);
        assert_eq!(s.get().unwrap().expose(), "tok-1");
        assert_eq!(s.get().unwrap().expose(), "tok-1", "cached within the ttl");
        let mut s = SourceState::new(&SecretSource::Command(cmd), Duration::ZERO, &no_env);
        assert_eq!(s.get().unwrap().expose(), "tok-2", "ttl passed: run again");
        let mut bad = SourceState::new(
            &SecretSource::Command("echo sekrit; echo sekrit >&2; exit 3".into()),
            Duration::ZERO,
            &no_env,
        );
        let e = bad.get().unwrap_err().to_string();
        assert!(e.contains("failed (exit status: 3)"), "{e}");
        assert!(!e.contains("sekrit"), "neither the command nor its output: {e}");
        let mut empty = SourceState::new(&SecretSource::Command("true".into()), Duration::ZERO, &no_env);
        assert!(empty.get().unwrap_err().to_string().contains("printed nothing"));
        // Not run again at once after a failure.
        let runs = dir.path().join("runs");
        let failing = format!("echo x >> {}; exit 1", runs.display());
        let mut f = SourceState::new(&SecretSource::Command(failing), Duration::ZERO, &no_env);
        for _ in 0..3 {
            assert!(f.get().is_err());
        }
        assert_eq!(
            std::fs::read_to_string(&runs).unwrap().lines().count(),
            1,
            "run once, then refused without running"
        );
    }
}
