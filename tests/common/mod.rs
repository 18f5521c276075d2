//! The harness of the end-to-end escape tests: a fixture per scenario, run as root and as
//! uid 65534 (`both_users!`).
#![allow(dead_code)]

pub mod tls;
// Shared with crates/paddock-sandbox-testbins/tests/common.
mod copy;
pub use copy::copy_executable;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const NOBODY: u32 = 65534;
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How long any one paddock run may take before the test calls it hung.
pub const HANG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum User {
    Root,
    Nobody,
}

impl User {
    pub fn uid(self) -> u32 {
        match self {
            User::Root => 0,
            User::Nobody => NOBODY,
        }
    }

    /// The argv prefix that runs a program as this user.
    pub fn prefix(self) -> Vec<OsString> {
        match self {
            User::Root => vec![],
            User::Nobody => ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
                .map(OsString::from)
                .to_vec(),
        }
    }
}

/// A word unique to this process and call, for secrets and process markers.
pub fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}{:04}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A `sleep` argument that is a valid duration (about an hour) and unique, so that a
/// process left behind can be found by its command line.
pub fn sleep_marker() -> String {
    format!("3599.{}", unique())
}

pub fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

pub fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

pub fn write(p: &Path, text: &str, mode: u32) {
    std::fs::write(p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    chmod(p, mode);
}

/// Waits, by the clock, until the ctime of every one of `paths` is more than 3 s old: past
/// the 2 s margin within which paddock's caches and view stamps count a directory as changed
/// (git's "racily clean" rule).
pub fn wait_past_ctime_margin(paths: &[std::path::PathBuf]) {
    let ctime = |p: &Path| std::os::unix::fs::MetadataExt::ctime(&std::fs::metadata(p).unwrap());
    let newest = paths.iter().map(|p| ctime(p)).max().unwrap_or(0);
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    while now() <= newest + 3 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Polls until `path` exists (a child's signal), for at most `HANG`.
pub fn wait_for_path(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < HANG, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Spawns `cmd`, again while the kernel says the executable is busy: the copy of the
/// binary a fixture just wrote can still be open for writing in a process another test
/// thread forked while the copy was being written (until that process execs), and exec
/// then fails with ETXTBSY.
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    let start = Instant::now();
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && start.elapsed() < HANG => {
                std::thread::sleep(Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// Quotes one word for `sh`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What a finished run left: exit code (None: killed by a signal), both streams.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Out {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn code(&self) -> i32 {
        self.code.unwrap_or_else(|| panic!("killed by a signal\n{self}"))
    }
    /// Asserts that `needle` (a secret or marker) is in neither stream.
    pub fn assert_absent(&self, needle: &str, what: &str) {
        assert!(!self.out().contains(needle) && !self.err().contains(needle), "{what} leaked into the sandbox\n{self}");
    }
    /// Asserts that `name` (a file name the command's own error messages may quote) is
    /// not in stdout.
    pub fn assert_not_listed(&self, name: &str, what: &str) {
        assert!(!self.out().contains(name), "{what} leaked into the sandbox\n{self}");
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.out(), self.err())
    }
}

/// Extra policy content on top of the fixture's base policy.
#[derive(Default)]
pub struct Pol<'a> {
    /// More `[filesystem] read` entries.
    pub read: &'a [&'a str],
    /// `[filesystem] deny` entries.
    pub deny: &'a [&'a str],
    /// `[filesystem] protect` entries.
    pub protect: &'a [&'a str],
    /// Further tables (`[limits]`, `[commands]`), verbatim.
    pub tail: &'a str,
}

/// One scenario's world: a world-readable temp dir with a copy of the binary, a workspace
/// and a home owned by the user under test, and two host dirs outside the workspace:
/// `outside` (granted nothing) and `shelf` (granted read only when a test says so), each
/// holding a file the user may read and write on the host.
pub struct Fixture {
    pub user: User,
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub bin: PathBuf,
    pub ws: PathBuf,
    pub home: PathBuf,
    pub outside: PathBuf,
    /// `outside/secret.txt`, holding `secret`.
    pub secret_path: PathBuf,
    pub secret: String,
    pub shelf: PathBuf,
    /// `shelf/file.txt`, mode 0666, holding `shelf_text`.
    pub shelf_file: PathBuf,
    pub shelf_text: String,
}

impl Fixture {
    pub fn new(user: User) -> Fixture {
        let tmp = tempfile::Builder::new().prefix("paddock-run-").tempdir().expect("temp dir");
        let root = tmp.path().to_path_buf();
        chmod(&root, 0o755);
        let bin = root.join("paddock");
        copy_executable(Path::new(env!("CARGO_BIN_EXE_paddock")), &bin);
        let [ws, home, outside, shelf, state] = ["ws", "home", "outside", "shelf", "state"].map(|d| root.join(d));
        for d in [&ws, &home, &outside, &shelf, &state] {
            std::fs::create_dir(d).unwrap();
        }
        for d in [&ws, &home, &state] {
            chmod(d, 0o755);
            chown(d, user.uid());
        }
        chmod(&outside, 0o777);
        chmod(&shelf, 0o777);
        let secret = format!("SECRET-outside-{}", unique());
        let secret_path = outside.join("secret.txt");
        write(&secret_path, &secret, 0o666);
        let shelf_text = format!("shelf-{}", unique());
        let shelf_file = shelf.join("file.txt");
        write(&shelf_file, &shelf_text, 0o666);
        let f = Fixture {
            user,
            _tmp: tmp,
            root,
            bin,
            ws,
            home,
            outside,
            secret_path,
            secret,
            shelf,
            shelf_file,
            shelf_text,
        };
        // Without the sandbox, the user reaches all of it: what the sandbox blocks is its doing.
        let o = f.host(&[
            "sh",
            "-c",
            r#"test -x "$1" && cat "$2" && cat "$3" && echo x > "$4/probe" && rm "$4/probe" && echo x > "$5/probe" && rm "$5/probe""#,
            "sh",
            f.bin.to_str().unwrap(),
            f.secret_path.to_str().unwrap(),
            f.shelf_file.to_str().unwrap(),
            f.outside.to_str().unwrap(),
            f.ws.to_str().unwrap(),
        ]);
        assert_eq!(
            o.code(),
            0,
            "fixture: {user:?} cannot use its temp dir {} on the host (is TMPDIR reachable by uid 65534?)\n{o}",
            f.root.display()
        );
        assert_eq!(o.out(), format!("{}{}", f.secret, f.shelf_text), "{o}");
        f
    }

    /// Writes the base policy plus `extra` to a fresh file; returns its path.
    pub fn policy(&self, extra: &Pol) -> PathBuf {
        let list = |v: &[&str]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let mut read: Vec<&str> =
            ["/usr", "/bin", "/lib", "/lib64", "/etc"].into_iter().filter(|p| Path::new(p).exists()).collect();
        read.extend_from_slice(extra.read);
        let text = format!(
            "version = 1\n\n[filesystem]\nread = [{}]\nwrite = [\"${{WORKSPACE}}\"]\ndeny = [{}]\nprotect = [{}]\n\n[env]\nset = {{ PATH = {PATH:?} }}\n\n{}\n",
            list(&read),
            list(extra.deny),
            list(extra.protect),
            extra.tail
        );
        let path = self.root.join(format!("policy-{}.toml", unique()));
        write(&path, &text, 0o644);
        path
    }

    /// `paddock run --policy P --workspace WS --`, without the user prefix.
    pub fn paddock_argv(&self, pol: &Pol) -> Vec<OsString> {
        let mut v: Vec<OsString> =
            vec![self.bin.clone().into(), "run".into(), "--policy".into(), self.policy(pol).into()];
        v.extend(["--workspace".into(), self.ws.clone().into(), "--".into()]);
        v
    }

    /// Runs `paddock run -- argv` as the fixture's user, in the workspace.
    pub fn run(&self, pol: &Pol, argv: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut full = self.paddock_argv(pol);
        full.extend(argv.iter().map(OsString::from));
        self.launch(&full, &[], stdin)
    }

    /// Runs `argv` on the host as the fixture's user, without paddock (for controls).
    pub fn host(&self, argv: &[&str]) -> Out {
        self.launch(&argv.iter().map(OsString::from).collect::<Vec<_>>(), &[], None)
    }

    /// Runs `argv` as the fixture's user, with a clean environment plus `env`, in the
    /// workspace; fails the test if it takes longer than `HANG` or if its output pipes stay
    /// open after it exits (something it started survived).
    pub fn launch(&self, argv: &[OsString], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Out {
        self.launch_within(argv, env, stdin, HANG)
    }

    /// `argv` as the fixture's user (its prefix first) in the workspace, with only `PATH`,
    /// `HOME` and `PADDOCK_STATE_DIR` in its environment; stdio is the caller's to set.
    pub fn command(&self, argv: &[OsString]) -> Command {
        self.command_as(self.user, argv)
    }

    /// [`Fixture::command`] with `user`'s prefix (root: none, for a wrapper that does a
    /// root's step first and then runs the fixture user's prefix itself).
    pub fn command_as(&self, user: User, argv: &[OsString]) -> Command {
        let mut full = user.prefix();
        full.extend_from_slice(argv);
        let mut cmd = Command::new(&full[0]);
        cmd.args(&full[1..])
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", &self.home)
            .env("PADDOCK_STATE_DIR", self.root.join("state"))
            .current_dir(&self.ws);
        cmd
    }

    /// `launch`, for a program that may take up to `hang` (a real agent CLI).
    pub fn launch_within(&self, argv: &[OsString], env: &[(&str, &str)], stdin: Option<&[u8]>, hang: Duration) -> Out {
        self.launch_as(self.user, argv, env, stdin, hang)
    }

    /// [`Fixture::launch_within`] with `user`'s prefix ([`Fixture::command_as`]).
    pub fn launch_as(
        &self,
        user: User,
        argv: &[OsString],
        env: &[(&str, &str)],
        stdin: Option<&[u8]>,
        hang: Duration,
    ) -> Out {
        let mut cmd = self.command_as(user, argv);
        cmd.envs(env.iter().copied())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut cmd).unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
        if let Some(data) = stdin {
            let mut w = child.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
        let drain = |r: Option<Box<dyn Read + Send>>| {
            let (tx, rx) = mpsc::channel();
            let mut r = r.unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
            rx
        };
        let out_rx = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let err_rx = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > hang {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{argv:?} ({:?}) did not end within {hang:?}", self.user);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let collect = |rx: mpsc::Receiver<Vec<u8>>, name: &str| {
            rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| {
                panic!(
                    "{argv:?} ({:?}) exited but its {name} stayed open: a process it started is still alive",
                    self.user
                )
            })
        };
        let stdout = collect(out_rx, "stdout");
        let stderr = collect(err_rx, "stderr");
        Out { code: status.code(), stdout, stderr }
    }

    /// Starts `sleep MARKER` on the host as the fixture's user, in `cwd`, with `env`.
    pub fn host_process(&self, cwd: &Path, env: &[(&str, &str)]) -> HostProc {
        let marker = sleep_marker();
        let mut full = self.user.prefix();
        full.extend(["sleep".into(), marker.clone().into()]);
        let child = Command::new(&full[0])
            .args(&full[1..])
            .env_clear()
            .env("PATH", PATH)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a host process");
        let pid = child.id();
        // Wait until setpriv has become `sleep MARKER`, so /proc shows the final process.
        let start = Instant::now();
        while !processes_with_arg(&marker).contains(&pid) {
            assert!(start.elapsed() < Duration::from_secs(10), "host process {pid} never became `sleep {marker}`");
            std::thread::sleep(Duration::from_millis(5));
        }
        HostProc { child, pid }
    }
}

/// A host process the test started; killed (by pid) when dropped.
pub struct HostProc {
    pub child: Child,
    pub pid: u32,
}

impl HostProc {
    pub fn assert_alive_untraced(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "host process {} died", self.pid);
        let status = read(Path::new(&format!("/proc/{}/status", self.pid)));
        let field = |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
        assert_eq!(
            field("TracerPid:").split_whitespace().nth(1),
            Some("0"),
            "host process {} is being traced\n{status}",
            self.pid
        );
        assert!(
            !field("State:").contains("stopped") && !field("State:").contains("tracing"),
            "host process {} is stopped: {}",
            self.pid,
            field("State:")
        );
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `paddock run --workspace WS -- argv` under the embedded default policy, as the
/// fixture's user.
pub fn run_default_in(f: &Fixture, ws: &Path, argv: &[&str]) -> Out {
    f.launch(&default_argv(f, ws, argv), &[], None)
}

/// The command line of [`run_default_in`], without the user prefix.
pub fn default_argv(f: &Fixture, ws: &Path, argv: &[&str]) -> Vec<OsString> {
    let mut full: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--workspace".into(), ws.into()];
    full.push("--".into());
    full.extend(argv.iter().map(OsString::from));
    full
}

/// The names in `dir` (not recursively) that a move aside made (`NAME.paddock-moved-…`),
/// sorted.
pub fn moved_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".paddock-moved-"))
        .collect();
    v.sort();
    v
}

/// One `command` call, `sh -c script`, through `paddock mcp` in the fixture's workspace
/// under the embedded default policy: the call's answer (its JSON-RPC line). The session
/// must answer `initialize` and end with success once its input is closed.
pub fn mcp_shell_call(f: &Fixture, script: &str) -> String {
    mcp_shell_calls(f, &[script], None).remove(0)
}

/// [`mcp_shell_call`] for each of `scripts` in turn, in one `paddock mcp` session: the
/// answers, in order. With `log`, the session's stderr goes there, at `PADDOCK_LOG=debug`.
pub fn mcp_shell_calls(f: &Fixture, scripts: &[&str], log: Option<&Path>) -> Vec<String> {
    let mut session = McpSession::start(f, log);
    let answers = scripts.iter().map(|s| session.call(s)).collect();
    session.end();
    answers
}

/// A `paddock mcp` session in the fixture's workspace under the embedded default policy,
/// as the fixture's user, initialised: [`McpSession::call`] makes its calls one at a time.
pub struct McpSession {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    id: usize,
}

impl McpSession {
    /// Starts it. With `log`, the session's stderr goes there, at `PADDOCK_LOG=debug`.
    pub fn start(f: &Fixture, log: Option<&Path>) -> McpSession {
        McpSession::start_with_state(f, log, &f.root.join("state"))
    }

    /// [`McpSession::start`] with `state` as its `PADDOCK_STATE_DIR`.
    pub fn start_with_state(f: &Fixture, log: Option<&Path>, state: &Path) -> McpSession {
        McpSession::start_with_args(f, log, state, &[])
    }

    /// [`McpSession::start_with_state`] with `args` after `mcp --workspace WS`.
    pub fn start_with_args(f: &Fixture, log: Option<&Path>, state: &Path, args: &[&str]) -> McpSession {
        use std::io::BufRead;
        let mut argv: Vec<std::ffi::OsString> =
            vec![f.bin.clone().into(), "mcp".into(), "--workspace".into(), f.ws.clone().into()];
        argv.extend(args.iter().map(std::ffi::OsString::from));
        let mut cmd = f.command(&argv);
        cmd.env("PADDOCK_STATE_DIR", state);
        match log {
            Some(p) => {
                cmd.env("PADDOCK_LOG", "paddock=debug").stderr(std::fs::File::create(p).expect("the log file"));
            }
            None => {
                cmd.stderr(Stdio::null());
            }
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn paddock mcp");
        let stdin = child.stdin.take().unwrap();
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut s = McpSession { child, stdin, lines, id: 1 };
        s.send(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#,
        );
        let init = s.lines.next().expect("an answer").unwrap();
        assert!(init.contains("\"id\":1"), "{init}");
        s.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        s
    }

    fn send(&mut self, s: &str) {
        writeln!(self.stdin, "{s}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// One `command` call, `sh -c script`: its answer (its JSON-RPC line).
    pub fn call(&mut self, script: &str) -> String {
        self.id += 1;
        let id = self.id;
        let args = serde_json::json!({"name": "command", "arguments": {"argv": ["sh", "-c", script]}});
        self.send(&serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": args}).to_string());
        let tag = format!("\"id\":{id}");
        loop {
            let l = self.lines.next().expect("an answer").unwrap();
            if l.contains(&tag) {
                return l;
            }
        }
    }

    /// Closes its input: the session must end with success.
    pub fn end(self) {
        let McpSession { mut child, stdin, .. } = self;
        drop(stdin);
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// Pids of host processes with `arg` as one of their command-line arguments.
pub fn processes_with_arg(arg: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Asserts that no host process carries `marker`; kills any that do first, so a failing
/// test leaves nothing behind either.
pub fn assert_nothing_left(marker: &str, what: &str) {
    // Give a dying process tree a moment to be reaped.
    let start = Instant::now();
    let mut left = processes_with_arg(marker);
    while !left.is_empty() && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_with_arg(marker);
    }
    for pid in &left {
        // By pid, only the processes carrying this test's marker.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    assert!(left.is_empty(), "{what}: processes left behind on the host: {left:?} (carrying `{marker}`)");
}

/// A python3 program run inside the sandbox: `python3 -c SRC ARGS...`.
pub fn py<'a>(src: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["python3", "-c", src];
    v.extend_from_slice(args);
    v
}

/// Runs each scenario once as root and once as uid 65534.
macro_rules! both_users {
    ($($name:ident),* $(,)?) => {
        mod as_root {
            $( #[test] fn $name() { super::$name(super::User::Root) } )*
        }
        mod as_nobody {
            $( #[test] fn $name() { super::$name(super::User::Nobody) } )*
        }
    };
}
