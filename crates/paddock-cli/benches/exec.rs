//! What exec supervision costs (issue 16), hand-run, never a timed assertion.
//!
//! * `cargo bench -p paddock-cli --bench exec` (the default, `exec`): the cost of one
//!   exec. `sh -c 'for i in $(seq N); do /bin/true; done'` against the same loop with `(:)`
//!   (a fork, no exec), on the host and under `paddock run` (embedded default policy,
//!   `[commands] scope = "call"`: every exec recorded) and under a policy that extends
//!   `coding-agent` (`scope = "tree"`) with `allow` rules (every exec decided, Landlock
//!   narrowed to the allowed programs); all interleaved round by round. An exec's cost is
//!   (exec loop − fork loop) / N; what paddock adds is that minus the host's.
//! * `cargo bench -p paddock-cli --bench exec -- cargo`: `cargo build --offline` of a
//!   generated workspace of many small path-dependency crates (some with build scripts),
//!   from a clean target each time, on the host, under a policy that extends `coding-agent`
//!   (`scope = "tree"`) and under the same with `scope = "call"`, interleaved.
//!
//! `PADDOCK_BENCH_N` (execs per loop, 500), `PADDOCK_BENCH_ROUNDS` (rounds, 15 for `exec`,
//! 3 for `cargo`), `PADDOCK_BENCH_CRATES` (crates, 40), `PADDOCK_BENCH_BIN` (another
//! `paddock` to measure, an older build say; default: this one).
//!
//! On a loaded machine the per-round figures scatter widely (an exec waits for a CPU as
//! often as not): `exec` also prints the estimate from each loop's fastest round, and
//! `chrt -f 10 cargo bench ...` (as root) keeps the machine's other work off the CPUs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("spawn");
    let d = t.elapsed();
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    d
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn paddock(policy: Option<&Path>, ws: &Path, audit: &Path) -> Command {
    let bin = std::env::var_os("PADDOCK_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_paddock").into());
    let mut c = Command::new(bin);
    c.arg("run").arg("-q").arg("--workspace").arg(ws).arg("--audit").arg(audit);
    if let Some(p) = policy {
        c.arg("--policy").arg(p);
    }
    c.arg("--").current_dir(ws);
    c
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe the harness
    }
    match args.first().map(String::as_str) {
        None | Some("exec") => exec_cost(),
        Some("cargo") => cargo_build(),
        Some(other) => panic!("unknown benchmark {other:?}: `exec` or `cargo`"),
    }
}

/// The per-exec cost on the host, under scope "call" and under scope "tree" with rules.
fn exec_cost() {
    let n = env_num("PADDOCK_BENCH_N", 500);
    let rounds = env_num("PADDOCK_BENCH_ROUNDS", 15);
    let dir = tempfile::tempdir().expect("temp dir");
    let ws = dir.path();
    let audit = ws.join("audit.jsonl");
    let tree = ws.join("tree.toml");
    std::fs::write(
        &tree,
        "version = 1\nextends = [\"coding-agent\"]\n[commands]\nallow = [\"sh **\", \"seq **\", \"true **\"]\n",
    )
    .expect("policy");
    let exec_loop = format!("for i in $(seq {n}); do /bin/true; done");
    let fork_loop = format!("for i in $(seq {n}); do (:); done");
    type Make<'a> = Box<dyn Fn() -> Command + 'a>;
    let setups: [(&str, Make); 3] = [
        ("host", Box::new(|| Command::new("sh"))),
        ("paddock, scope \"call\"", Box::new(|| paddock(None, ws, &audit).tap_arg("sh"))),
        ("paddock, scope \"tree\" + rules", Box::new(|| paddock(Some(&tree), ws, &audit).tap_arg("sh"))),
    ];
    // warm-up, and a check that every exec is on the record
    for (_, make) in &setups {
        time(make().arg("-c").arg(&exec_loop));
    }
    let records = std::fs::read_to_string(&audit).expect("audit log");
    let execs =
        records.lines().filter(|l| l.contains("\"event\":\"exec\"") && l.contains("\"path\":\"/bin/true\"")).count();
    assert_eq!(execs, 2 * n, "every exec of the warm-up runs is recorded");
    let mut per_exec: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut fastest = vec![(f64::MAX, f64::MAX); setups.len()];
    for _ in 0..rounds {
        for (i, (_, make)) in setups.iter().enumerate() {
            let e = time(make().arg("-c").arg(&exec_loop)).as_secs_f64();
            let f = time(make().arg("-c").arg(&fork_loop)).as_secs_f64();
            per_exec[i].push((e - f) * 1e6 / n as f64);
            fastest[i] = (fastest[i].0.min(e), fastest[i].1.min(f));
        }
    }
    let best = |i: usize| (fastest[i].0 - fastest[i].1) * 1e6 / n as f64;
    println!("{rounds} rounds of {n} execs, interleaved; an exec = (exec loop - fork loop) / {n}");
    let host = per_exec[0].clone();
    for (i, (name, _)) in setups.iter().enumerate() {
        let mut v = per_exec[i].clone();
        let (p10, med, p90) = (pct(&mut v, 0.1), pct(&mut v, 0.5), pct(&mut v, 0.9));
        let added = if i == 0 {
            String::new()
        } else {
            let mut d: Vec<f64> = per_exec[i].iter().zip(&host).map(|(p, h)| p - h).collect();
            format!(
                "   added per exec: median {:>6.0} µs (p10 {:.0}, p90 {:.0})",
                pct(&mut d, 0.5),
                pct(&mut d, 0.1),
                pct(&mut d, 0.9)
            )
        };
        println!("{name:<32} an exec: median {med:>6.0} µs (p10 {p10:.0}, p90 {p90:.0}){added}");
    }
    println!("from each loop's fastest round:");
    for (i, (name, _)) in setups.iter().enumerate() {
        let added = if i == 0 { String::new() } else { format!("   added per exec: {:>6.0} µs", best(i) - best(0)) };
        println!("{name:<32} an exec: {:>6.0} µs{added}", best(i));
    }
}

trait TapArg {
    fn tap_arg(self, a: &str) -> Self;
}

impl TapArg for Command {
    fn tap_arg(mut self, a: &str) -> Self {
        self.arg(a);
        self
    }
}

/// A workspace of `crates` library crates, each depending on the one before and on one
/// halfway down (a graph with some parallelism), every fourth with a build script, and a
/// binary on top; path dependencies only (builds offline).
fn generate_workspace(ws: &Path, crates: usize) {
    let mut members = Vec::new();
    for i in 0..crates {
        let name = format!("c{i:02}");
        let dir = ws.join(&name);
        std::fs::create_dir_all(dir.join("src")).expect("crate dir");
        let mut deps = Vec::new();
        if i > 0 {
            deps.push(i - 1);
        }
        if i > 2 && !deps.contains(&(i / 2)) {
            deps.push(i / 2);
        }
        let mut toml = format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
        if i % 4 == 0 {
            toml.push_str("build = \"build.rs\"\n");
            std::fs::write(
                dir.join("build.rs"),
                "fn main() {\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    \
                 std::fs::write(format!(\"{out}/gen.rs\"), \"pub const GENERATED: u64 = 7;\").unwrap();\n    \
                 println!(\"cargo:rerun-if-changed=build.rs\");\n}\n",
            )
            .expect("build.rs");
        }
        toml.push_str("\n[dependencies]\n");
        let mut body = String::new();
        for d in &deps {
            toml.push_str(&format!("c{d:02} = {{ path = \"../c{d:02}\" }}\n"));
        }
        if i % 4 == 0 {
            body.push_str("include!(concat!(env!(\"OUT_DIR\"), \"/gen.rs\"));\n");
        } else {
            body.push_str("pub const GENERATED: u64 = 1;\n");
        }
        let sum: Vec<String> = deps.iter().map(|d| format!("c{d:02}::value(x)")).collect();
        body.push_str(&format!(
            "pub fn value(x: u64) -> u64 {{\n    let v: Vec<u64> = (0..x % 16).map(|k| k * {i} + GENERATED).collect();\n    \
             v.iter().sum::<u64>(){}\n}}\n\n\
             pub struct S{i}<T> {{ pub items: Vec<T> }}\n\n\
             impl<T: Clone + std::fmt::Debug> S{i}<T> {{\n    pub fn describe(&self) -> String {{ format!(\"{{:?}}\", self.items) }}\n    \
             pub fn doubled(&self) -> Vec<T> {{ self.items.iter().chain(self.items.iter()).cloned().collect() }}\n}}\n",
            sum.iter().map(|s| format!(" + {s}")).collect::<String>()
        ));
        std::fs::write(dir.join("Cargo.toml"), toml).expect("Cargo.toml");
        std::fs::write(dir.join("src/lib.rs"), body).expect("lib.rs");
        members.push(name);
    }
    let app = ws.join("app");
    std::fs::create_dir_all(app.join("src")).expect("app dir");
    let last = crates - 1;
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nc{last:02} = {{ path = \"../c{last:02}\" }}\n"
        ),
    )
    .expect("app Cargo.toml");
    std::fs::write(app.join("src/main.rs"), format!("fn main() {{ println!(\"{{}}\", c{last:02}::value(9)); }}\n"))
        .expect("main.rs");
    members.push("app".into());
    let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    std::fs::write(ws.join("Cargo.toml"), format!("[workspace]\nresolver = \"2\"\nmembers = [{}]\n", list.join(", ")))
        .expect("workspace Cargo.toml");
}

/// `cargo build --offline` of a many-crate workspace: host, scope "tree", scope "call".
fn cargo_build() {
    let crates = env_num("PADDOCK_BENCH_CRATES", 40).max(2);
    let rounds = env_num("PADDOCK_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("workspace");
    generate_workspace(&ws, crates);
    let audit = dir.path().join("audit.jsonl");
    let policy = |scope: &str| -> PathBuf {
        let p = dir.path().join(format!("{scope}.toml"));
        std::fs::write(&p, format!("version = 1\nextends = [\"coding-agent\"]\n[commands]\nscope = \"{scope}\"\n"))
            .expect("policy");
        p
    };
    let (tree, call) = (policy("tree"), policy("call"));
    let target = ws.join("target");
    let build = |make: &dyn Fn() -> Command| -> Duration {
        if target.exists() {
            std::fs::remove_dir_all(&target).expect("clean target");
        }
        let mut c = make();
        c.args(["cargo", "build", "--offline", "-q"]).env("CARGO_TARGET_DIR", &target).env("CARGO_INCREMENTAL", "0");
        time(&mut c)
    };
    type Make<'a> = Box<dyn Fn() -> Command + 'a>;
    let setups: [(&str, Make); 3] = [
        (
            "host",
            Box::new(|| {
                let mut c = Command::new("env");
                c.current_dir(&ws);
                c
            }),
        ),
        ("paddock, coding-agent, scope \"tree\"", Box::new(|| paddock(Some(&tree), &ws, &audit))),
        ("paddock, coding-agent, scope \"call\"", Box::new(|| paddock(Some(&call), &ws, &audit))),
    ];
    // warm-up (the toolchain's files in the page cache), and a check that the builds ran
    // supervised: the build scripts' execs are on the record
    build(&*setups[1].1);
    let records = std::fs::read_to_string(&audit).expect("audit log");
    let execs = records.lines().filter(|l| l.contains("\"event\":\"exec\"")).count();
    let scripts =
        records.lines().filter(|l| l.contains("\"event\":\"exec\"") && l.contains("build-script-build")).count();
    assert!(scripts >= crates / 4, "the build scripts ran under supervision ({scripts} recorded)");
    println!(
        "{crates} crates (+ a binary), {} with build scripts; one build: {execs} execs recorded",
        crates.div_ceil(4)
    );
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for _ in 0..rounds {
        for (i, (_, make)) in setups.iter().enumerate() {
            times[i].push(build(&**make).as_secs_f64());
        }
    }
    println!("{rounds} rounds, interleaved, a clean target each time");
    let mut call_median = 0.0;
    let mut medians = Vec::new();
    for (i, (name, _)) in setups.iter().enumerate() {
        let mut v = times[i].clone();
        let (lo, med, hi) = (pct(&mut v, 0.0), pct(&mut v, 0.5), pct(&mut v, 1.0));
        if i == 2 {
            call_median = med;
        }
        medians.push(med);
        println!("{name:<40} median {med:>7.2} s (min {lo:.2}, max {hi:.2})");
    }
    // Each round's two paddock builds ran back to back, under much the same load.
    let mut paired: Vec<f64> = times[1].iter().zip(&times[2]).map(|(t, c)| t / c).collect();
    println!(
        "scope \"tree\" / scope \"call\" = {:.3} (medians), {:.3} (median of each round's ratio, p10 {:.3}, p90 {:.3}); paddock \"call\" / host = {:.3}",
        medians[1] / call_median,
        pct(&mut paired, 0.5),
        pct(&mut paired, 0.1),
        pct(&mut paired, 0.9),
        call_median / medians[0]
    );
}
