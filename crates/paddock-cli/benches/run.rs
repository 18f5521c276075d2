//! `paddock run -- /bin/true` against a plain spawn of `/bin/true` and, where bubblewrap
//! is installed, `bwrap --unshare-all --ro-bind / / true`, interleaved in one run so that
//! the noise of a shared machine falls on all three alike.
//!
//! Run: `cargo bench -p paddock-cli --bench run` (set `PADDOCK_BENCH_N` for more rounds).
//! As root, `PADDOCK_BENCH_USER=nobody` runs all three as uid 65534 (through `setpriv`, with
//! a world-readable copy of the binary and a workspace and state directory of that user).
//!
//! `PADDOCK_BENCH_BASELINE=PATH` (another build's `paddock`, e.g. of the commit before a
//! change) adds that build to every series, with a state directory of its own, the two
//! builds alternated in both orders round by round; each series then ends with the median
//! of the paired differences (this build's time minus the baseline's in the same round),
//! the measure of a change on this noisy shared machine.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).status().expect("spawn");
    let d = t.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    d
}

fn stats(name: &str, mut v: Vec<Duration>, base: Option<Duration>) -> Duration {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize];
    let median = p(0.5);
    let ratio =
        base.map(|b| format!("{:>6.2}x", median.as_secs_f64() / b.as_secs_f64())).unwrap_or_else(|| "     -".into());
    println!(
        "{name:<44} median {:>8.3} ms   p10 {:>8.3} ms   p90 {:>8.3} ms   {ratio}",
        ms(median),
        ms(p(0.1)),
        ms(p(0.9))
    );
    median
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// This build against the baseline, round by round: the baseline's series, then the paired
/// differences.
fn against_baseline(name: &str, this: &[Duration], baseline: Vec<Duration>, base: Option<Duration>) {
    let line = common::paired(this, &baseline);
    stats(&format!("{name} (baseline build)"), baseline, base);
    println!("  {line}");
}

/// `paddock run --workspace WS -- PROGRAM...` of the build `bin`.
fn paddock_run(bin: &Path, ws: &Path, program: &[&str]) -> Vec<std::ffi::OsString> {
    let head = [bin.as_os_str(), "run".as_ref(), "--workspace".as_ref(), ws.as_os_str(), "--".as_ref()];
    head.into_iter().chain(program.iter().map(std::ffi::OsStr::new)).map(std::ffi::OsStr::to_os_string).collect()
}

/// Borrowed, as the commands take them.
fn borrowed(argv: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    argv.iter().map(|a| a.as_os_str()).collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe the harness
    }
    let n: usize = std::env::var("PADDOCK_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let nobody = std::env::var("PADDOCK_BENCH_USER").is_ok_and(|u| u == "nobody");
    let dir = tempfile::tempdir().expect("temp dir");
    let ws = dir.path().join("ws");
    let repo = dir.path().join("repo");
    let state = dir.path().join("state");
    let state_base = dir.path().join("state-baseline");
    let mut paddock = std::path::PathBuf::from(env!("CARGO_BIN_EXE_paddock"));
    let mut baseline = std::env::var_os("PADDOCK_BENCH_BASELINE").map(std::path::PathBuf::from);
    if let Some(b) = &baseline {
        assert!(b.is_file(), "PADDOCK_BENCH_BASELINE: {} is not a file", b.display());
    }
    for d in [&ws, &state, &state_base] {
        std::fs::create_dir(d).expect("mkdir");
    }
    let git = make_repo(&repo);
    // With a baseline, both builds run from copies made the same way, side by side in one
    // directory (how a binary came into the page cache decides the size of the folios its
    // pages are in, and so how many faults its start takes); as uid 65534 the copies are
    // also what that user can run.
    if nobody || baseline.is_some() {
        use std::os::unix::fs::PermissionsExt;
        let chmod = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
        chmod(dir.path(), 0o755);
        let copy = dir.path().join("paddock");
        std::fs::copy(&paddock, &copy).expect("copy the binary");
        chmod(&copy, 0o755);
        paddock = copy;
        if let Some(b) = baseline.take() {
            let copy = dir.path().join("paddock-baseline");
            std::fs::copy(&b, &copy).expect("copy the baseline binary");
            chmod(&copy, 0o755);
            baseline = Some(copy);
        }
    }
    if nobody {
        for d in [&ws, &state, &state_base] {
            std::os::unix::fs::chown(d, Some(65534), Some(65534)).expect("chown (run as root)");
        }
        if git {
            let st = Command::new("chown").args(["-R", "65534:65534"]).arg(&repo).status().expect("chown -R");
            assert!(st.success(), "chown -R of the repository");
        }
    }
    // Every command the same way: as this user or through setpriv as uid 65534.
    // `st`: the state directory of the build that runs (each build keeps its own caches).
    let cmd_in = |cwd: &Path, st: &Path, argv: &[&std::ffi::OsStr]| {
        let mut full: Vec<&std::ffi::OsStr> = Vec::new();
        if nobody {
            full.extend(
                ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
                    .map(std::ffi::OsStr::new),
            );
        }
        full.extend_from_slice(argv);
        let mut c = Command::new(full[0]);
        c.args(&full[1..]).env("PADDOCK_STATE_DIR", st).current_dir(cwd);
        if nobody {
            c.env("HOME", &ws);
        }
        c
    };
    let cmd = |argv: &[&std::ffi::OsStr]| cmd_in(&ws, &state, argv);
    let run_owned = paddock_run(&paddock, &ws, &["/bin/true"]);
    let run_argv = borrowed(&run_owned);
    let base_owned = baseline.as_deref().map(|b| paddock_run(b, &ws, &["/bin/true"]));
    let base_argv = base_owned.as_deref().map(borrowed);
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"].into_iter().find(|p| Path::new(p).exists());
    let mut plain = Vec::with_capacity(n);
    let mut confined = Vec::with_capacity(n);
    let mut based = Vec::with_capacity(n);
    let mut bw = Vec::with_capacity(n);
    // warm-up
    for _ in 0..5 {
        time(&mut cmd(&run_argv));
        if let Some(b) = &base_argv {
            time(&mut cmd_in(&ws, &state_base, b));
        }
    }
    for round in 0..n {
        plain.push(time(&mut cmd(&["/bin/true".as_ref()])));
        match &base_argv {
            Some(b) => common::alternated(round, &mut || confined.push(time(&mut cmd(&run_argv))), &mut || {
                based.push(time(&mut cmd_in(&ws, &state_base, b)))
            }),
            None => confined.push(time(&mut cmd(&run_argv))),
        }
        if let Some(b) = bwrap {
            bw.push(time(&mut cmd(&[b, "--unshare-all", "--ro-bind", "/", "/", "true"].map(std::ffi::OsStr::new))));
        }
    }
    let who = if nobody { "uid 65534" } else { "this user" };
    println!("{n} rounds, interleaved, as {who}; ratio = median / median of the reference");
    let base = stats("plain spawn of /bin/true", plain, None);
    if bw.is_empty() {
        println!("bubblewrap not installed: no comparison");
        stats("paddock run -- /bin/true (all layers)", confined.clone(), Some(base));
    } else {
        let b = stats("bwrap --unshare-all --ro-bind / / true", bw, Some(base));
        let p = stats("paddock run -- /bin/true (all layers)", confined.clone(), Some(base));
        println!("paddock / bubblewrap = {:.2}", p.as_secs_f64() / b.as_secs_f64());
    }
    if base_argv.is_some() {
        against_baseline("paddock run -- /bin/true", &confined, based, Some(base));
    }
    if git {
        let builds =
            Builds { this: (&paddock, &state), baseline: baseline.as_deref().map(|b| (b, state_base.as_path())) };
        git_status(n, &builds, &repo, bwrap, &cmd_in);
    } else {
        println!("git not installed: no `git status` series");
    }
    audit_cost(n, dir.path());
}

/// Files in the `git status` repository (100 directories of 20).
const REPO_FILES: usize = 2_000;

/// A committed repository of [`REPO_FILES`] files at `repo`; false when git is missing.
fn make_repo(repo: &Path) -> bool {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"])
            .args(args)
            .current_dir(repo)
            .stdout(Stdio::null())
            .status()
    };
    std::fs::create_dir(repo).expect("mkdir repo");
    if !git(&["init", "-q"]).is_ok_and(|s| s.success()) {
        return false;
    }
    for i in 0..REPO_FILES {
        let d = repo.join(format!("d{:03}", i / 20));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n")).expect("write");
    }
    for args in [&["add", "-A"][..], &["commit", "-q", "-m", "bench"]] {
        assert!(git(args).is_ok_and(|s| s.success()), "git {args:?}");
    }
    true
}

/// The paddock builds a series runs: this one and, with `PADDOCK_BENCH_BASELINE`, the
/// baseline, each with its state directory.
struct Builds<'a> {
    this: (&'a Path, &'a Path),
    baseline: Option<(&'a Path, &'a Path)>,
}

/// `git status` in the repository: plain, under bubblewrap and under `paddock run` (the
/// repository its workspace), interleaved like the `/bin/true` series. bubblewrap gets
/// `--dev /dev`: git opens `/dev/null` for writing, which the read-only bind of the host's
/// `/dev` refuses (paddock's view has a minimal `/dev` of its own).
fn git_status(
    n: usize,
    builds: &Builds,
    repo: &Path,
    bwrap: Option<&str>,
    cmd_in: &dyn Fn(&Path, &Path, &[&std::ffi::OsStr]) -> Command,
) {
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let (this_bin, this_state) = builds.this;
    let run_owned = paddock_run(this_bin, repo, &["git", "status"]);
    let run = borrowed(&run_owned);
    let base_owned = builds.baseline.map(|(b, st)| (paddock_run(b, repo, &["git", "status"]), st));
    let base_run = base_owned.as_ref().map(|(v, st)| (borrowed(v), *st));
    let (mut plain, mut confined, mut based, mut bw) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        time(&mut cmd_in(repo, this_state, &run));
        if let Some((b, st)) = &base_run {
            time(&mut cmd_in(repo, st, b));
        }
    }
    for round in 0..n {
        plain.push(time(&mut cmd_in(repo, this_state, &[os("git"), os("status")])));
        match &base_run {
            Some((b, st)) => {
                common::alternated(round, &mut || confined.push(time(&mut cmd_in(repo, this_state, &run))), &mut || {
                    based.push(time(&mut cmd_in(repo, st, b)))
                })
            }
            None => confined.push(time(&mut cmd_in(repo, this_state, &run))),
        }
        if let Some(b) = bwrap {
            bw.push(time(&mut cmd_in(
                repo,
                this_state,
                &[b, "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "git", "status"]
                    .map(std::ffi::OsStr::new),
            )));
        }
    }
    println!("`git status` in a repository of {REPO_FILES} files, {n} rounds, interleaved");
    let base = stats("plain git status", plain, None);
    if bw.is_empty() {
        stats("paddock run -- git status", confined.clone(), Some(base));
    } else {
        let b = stats("bwrap --unshare-all --ro-bind / / --dev /dev git status", bw, Some(base));
        let p = stats("paddock run -- git status", confined.clone(), Some(base));
        println!("paddock / bubblewrap (git status) = {:.2}", p.as_secs_f64() / b.as_secs_f64());
    }
    if base_run.is_some() {
        against_baseline("paddock run -- git status", &confined, based, Some(base));
    }
}

/// What auditing adds to one `run`: a `call.start` appended durably (fsync'd before the
/// child runs) and a `call.end` appended batched, as `paddock run` writes them.
fn audit_cost(n: usize, dir: &Path) {
    use paddock_audit::{AuditLog, Call, CallOutcome, Decision, Target};
    let log = AuditLog::open(dir.join("bench-audit.jsonl")).expect("audit log");
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let call = Call::new(format!("c-{i}"), "bench", Target::command(["/bin/true"]), Decision::Allow)
            .with_cwd(dir)
            .with_rule("default")
            .with_policy_hash("0".repeat(64));
        let t = Instant::now();
        log.append_durable(&call.start()).expect("append");
        log.append(&call.end(CallOutcome::exited(0).with_duration_ms(1))).expect("append");
        pairs.push(t.elapsed());
    }
    stats("audit: call.start (fsync) + call.end (batched)", pairs, None);
}
