//! Shared driver of the integration tests: runs the harness binary as root or as uid 65534.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use paddock_sandbox::{Enforcement, Limits, NetworkMode, SandboxSpec, StdioMode};

// One copy of the workspace's end-to-end tests' helper.
#[path = "../../../../tests/common/copy.rs"]
mod copy;
pub use copy::copy_executable;

pub const NOBODY: u32 = 65534;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Root,
    Nobody,
}

/// A world-readable directory holding copies of the test binaries (for uid 65534).
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // One fixed directory (world-readable), so repeated runs leave no pile behind.
        let d = PathBuf::from("/tmp/paddock-sandbox-tests");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, src) in [
            ("harness", env!("CARGO_BIN_EXE_paddock-sandbox-harness")),
            ("testprobe", env!("CARGO_BIN_EXE_paddock-sandbox-testprobe")),
        ] {
            let dst = d.join(name);
            let tmp = d.join(format!("{name}.{}", std::process::id()));
            copy_executable(Path::new(src), &tmp);
            std::fs::rename(&tmp, &dst).unwrap(); // atomic: a running copy is never rewritten
        }
        d
    })
}

/// Runs the harness with `args` as `user` (as the tests' spec runs are), and returns its
/// output.
pub fn harness_as(user: User, args: &[&str]) -> std::process::Output {
    require_root();
    let harness = bin_dir().join("harness");
    let mut cmd = match user {
        User::Root => Command::new(&harness),
        User::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&harness);
            c
        }
    };
    cmd.args(args).current_dir("/").output().unwrap()
}

pub fn require_root() {
    // SAFETY: getuid cannot fail.
    assert_eq!(unsafe { libc::getuid() }, 0, "these tests run as root (they also drop to uid 65534 with setpriv)");
}

/// A per-test scratch tree: `root/ws` (the write path) and `root/outside` (not granted).
pub struct Scratch {
    pub root: PathBuf,
    pub ws: PathBuf,
    pub outside: PathBuf,
    pub user: User,
    /// The harness runs a second thread, so the sandbox re-executes its helper instead of
    /// forking it (tests whose name ends in `-reexec`).
    pub threaded: bool,
    /// When above 0, the harness starts a zygote from the spec and runs this many calls
    /// of it at once (the first call's outcome is reported).
    pub zygote_calls: usize,
    /// The zygote's template has the default limits (the calls keep the spec's).
    pub zygote_template_default_limits: bool,
    /// The zygote's spare call helper is killed before the first call.
    pub kill_spare: bool,
    /// The harness forks the sandbox helper before it reads the spec
    /// (`paddock_sandbox::prestart`; tests whose name ends in `-ahead`), unless it runs a
    /// zygote.
    pub ahead: bool,
    /// With `ahead`: the helper forked ahead is killed before the spawn.
    pub ahead_killed: bool,
    /// With `ahead`: the spec is sent only once the reaper forked ahead has made `/dev`.
    pub ahead_made: bool,
    /// As root: the harness runs with these supplementary groups (`setpriv --groups`).
    pub root_groups: Option<&'static str>,
}

impl Scratch {
    pub fn new(name: &str, user: User) -> Scratch {
        require_root();
        let root = bin_dir().join(format!("{name}-{user:?}"));
        let _ = std::fs::remove_dir_all(&root);
        let ws = root.join("ws");
        let outside = root.join("outside");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        for d in [&root, &ws, &outside] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // The test probe runs from the workspace (it is executable there).
        copy_executable(&bin_dir().join("testprobe"), &ws.join("testprobe"));
        std::fs::write(outside.join("secret.txt"), "OUTSIDE-SECRET\n").unwrap();
        std::fs::set_permissions(outside.join("secret.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
        if user == User::Nobody {
            chown(&ws);
            chown(&ws.join("testprobe"));
        }
        Scratch {
            root,
            ws,
            outside,
            user,
            threaded: name.ends_with("-reexec"),
            zygote_calls: 0,
            zygote_template_default_limits: false,
            kill_spare: false,
            ahead: name.ends_with("-ahead"),
            ahead_killed: false,
            ahead_made: false,
            root_groups: None,
        }
    }

    /// Two letters that tell this test's variant from the others of its test, which run
    /// side by side: the user (`r`, `n`) and how the helper starts (`f` forked, `x`
    /// re-executed, `a` forked ahead).
    pub fn variant(&self) -> String {
        let user = if self.user == User::Root { 'r' } else { 'n' };
        let start = if self.threaded {
            'x'
        } else if self.ahead {
            'a'
        } else {
            'f'
        };
        format!("{user}{start}")
    }

    /// A strict spec for `sh -c script` with the system read-only and `ws` writable.
    pub fn sh(&self, script: &str) -> SandboxSpec {
        let mut spec = SandboxSpec::new("/bin/sh", vec!["sh".into(), "-c".into(), script.into()]);
        spec.cwd = self.ws.clone();
        spec.env = vec![("PATH".into(), "/usr/bin:/bin".into()), ("FOO".into(), "bar".into())];
        spec.read_paths = ["/usr", "/bin", "/lib", "/lib64", "/etc", "/sbin"].iter().map(PathBuf::from).collect();
        spec.write_paths = vec![self.ws.clone()];
        spec.enforcement = Enforcement::Strict;
        spec.network = NetworkMode::None;
        spec.limits = Limits { timeout: Some(std::time::Duration::from_secs(60)), ..Limits::default() };
        spec.stdio = StdioMode::Inherit;
        spec
    }

    pub fn probe_bin(&self) -> String {
        self.ws.join("testprobe").display().to_string()
    }

    /// Starts the harness on the spec without waiting; `prelude` is an optional shell
    /// prefix run as the user before exec'ing the harness (e.g. `exec 9<file;`). The
    /// child's pid is the harness's own (the shell and setpriv exec it).
    pub fn start_with(&self, spec: &SandboxSpec, prelude: &str) -> std::process::Child {
        let spec_path = self.root.join("spec.json");
        let out_path = self.root.join("outcome.json");
        std::fs::write(&spec_path, serde_json::to_vec(spec).unwrap()).unwrap();
        let _ = std::fs::remove_file(&out_path);
        if self.user == User::Nobody {
            // The outcome file is written by uid 65534.
            std::fs::write(&out_path, b"").unwrap();
            chown(&out_path);
        }
        let harness = bin_dir().join("harness");
        let script = format!("{prelude} exec {} run {} {}", harness.display(), spec_path.display(), out_path.display());
        let mut cmd = match self.user {
            User::Root => match self.root_groups {
                Some(groups) => {
                    let mut c = Command::new("setpriv");
                    c.arg(format!("--groups={groups}")).args(["/bin/sh", "-c", &script]);
                    c
                }
                None => {
                    let mut c = Command::new("/bin/sh");
                    c.arg("-c").arg(&script);
                    c
                }
            },
            User::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", &script]);
                c
            }
        };
        if self.threaded {
            cmd.env("PADDOCK_HARNESS_THREADED", "1");
        }
        if self.zygote_calls > 0 {
            cmd.env("PADDOCK_HARNESS_ZYGOTE", self.zygote_calls.to_string());
        }
        if self.zygote_template_default_limits {
            cmd.env("PADDOCK_HARNESS_TEMPLATE_LIMITS", "default");
        }
        if self.kill_spare {
            cmd.env("PADDOCK_HARNESS_KILL_SPARE", "1");
        }
        if self.ahead {
            let how = match (self.ahead_killed, self.ahead_made) {
                (true, _) => "killed",
                (false, true) => "made",
                (false, false) => "1",
            };
            cmd.env("PADDOCK_HARNESS_AHEAD", how);
        }
        // The harness stands in for `paddock run` started from a terminal: a test run under
        // `nohup` (or anything else that ignores them) must not pass its ignored SIGHUP and
        // SIGINT on, or the signal tests would send signals nobody can receive.
        // SAFETY: `signal(2)` with SIG_DFL only, async-signal-safe, between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                for sig in [libc::SIGHUP, libc::SIGINT] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        cmd.env("PADDOCK_TEST_CANARY", "caller-env-must-not-leak")
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("run harness")
    }

    /// Waits for a harness started by [`Scratch::start_with`] and reads its outcome.
    pub fn finish(&self, child: std::process::Child) -> Run {
        let out = child.wait_with_output().expect("wait for the harness");
        let out_path = self.root.join("outcome.json");
        let outcome: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out_path).unwrap_or_default()).unwrap_or(serde_json::Value::Null);
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            outcome,
        };
        if let Some(err) = run.outcome.get("err") {
            if run.outcome["code"] == 71 {
                panic!("KERNEL/MACHINE LACKS A SANDBOX LAYER (strict run refused): {err}");
            }
        }
        if let Some(layers) = run.outcome.pointer("/ok/report/layers").and_then(|l| l.as_array()) {
            let session = layers.iter().find(|l| l["name"] == "session").expect("a session layer");
            let detail = session["detail"].as_str().unwrap_or_default();
            let want = if self.threaded { "re-executed" } else { "forked" };
            assert!(detail.contains(want), "the helper was not {want}: {detail}");
        }
        // Once the harness's runs are torn down (`finish_teardowns`), nothing of them is
        // left: no process of the harness's, no cgroup.
        if let Some(left) = run.outcome.get("left") {
            assert_eq!(left["children"], serde_json::json!([]), "processes left: {left}");
            assert_eq!(left["cgroups_there"], serde_json::json!([]), "cgroups left: {left}");
            if let Some(z) = left.get("zygote_children") {
                assert_eq!(z, &serde_json::json!([]), "a zygote's spares or calls left: {left}");
            }
        }
        run
    }

    /// Runs the spec through the harness (see [`Scratch::start_with`]).
    pub fn run_with(&self, spec: &SandboxSpec, prelude: &str) -> Run {
        self.finish(self.start_with(spec, prelude))
    }

    pub fn run(&self, spec: &SandboxSpec) -> Run {
        self.run_with(spec, "")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn chown(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), NOBODY, NOBODY) }, 0);
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub outcome: serde_json::Value,
}

impl Run {
    pub fn ok(&self) -> &serde_json::Value {
        match self.outcome.get("ok") {
            Some(o) => o,
            None => panic!("the run failed: {self:#?}"),
        }
    }
}

/// Four tests per case: as root and as uid 65534, each with the helper forked from the
/// (single-threaded) harness and re-executed from a multi-threaded one.
#[macro_export]
macro_rules! both_users {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn as_root() {
                ($body)(User::Root, stringify!($name))
            }
            #[test]
            fn as_nobody() {
                ($body)(User::Nobody, stringify!($name))
            }
            #[test]
            fn as_root_reexec() {
                ($body)(User::Root, concat!(stringify!($name), "-reexec"))
            }
            #[test]
            fn as_nobody_reexec() {
                ($body)(User::Nobody, concat!(stringify!($name), "-reexec"))
            }
            #[test]
            fn as_root_ahead() {
                ($body)(User::Root, concat!(stringify!($name), "-ahead"))
            }
            #[test]
            fn as_nobody_ahead() {
                ($body)(User::Nobody, concat!(stringify!($name), "-ahead"))
            }
        }
    };
}
