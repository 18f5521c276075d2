//! Decisions per second for command, path and host checks on policies of 10 and 1,000
//! rules of each kind. Run: `cargo bench -p paddock-policy --bench decide`.

use std::path::{Path, PathBuf};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use paddock_policy::{Policy, Vars};

fn policy(n: usize) -> Policy {
    let mut read = Vec::new();
    let mut write = Vec::new();
    let mut deny = Vec::new();
    let mut allow_cmd = Vec::new();
    let mut hosts = Vec::new();
    let mut deny_hosts = Vec::new();
    for i in 0..n {
        read.push(format!("\"/opt/tool{i}\""));
        write.push(format!("\"${{WORKSPACE}}/dir{i}\""));
        deny.push(if i % 2 == 0 { format!("\"${{WORKSPACE}}/**/*.secret{i}\"") } else { format!("\"~/.cred{i}\"") });
        allow_cmd.push(format!("\"git log{i} **\""));
        hosts.push(if i % 2 == 0 { format!("\"host{i}.example.com\"") } else { format!("\"*.zone{i}.example.org\"") });
        deny_hosts.push(format!("\"bad{i}.example.com\""));
    }
    allow_cmd.push("\"git status\"".into());
    allow_cmd.push("\"cargo test **\"".into());
    read.push("\"/usr\"".into());
    hosts.push("\"github.com\"".into());
    let text = format!(
        "version = 1\n[filesystem]\nread = [{}]\nwrite = [{}]\ndeny = [{}]\n[commands]\nallow = [{}]\ndeny = [\"git push **\"]\n[network]\nallow = [{}]\ndeny = [{}]\n",
        read.join(","),
        write.join(","),
        deny.join(","),
        allow_cmd.join(","),
        hosts.join(","),
        deny_hosts.join(",")
    );
    let vars = Vars {
        workspace: "/bench/ws".into(),
        home: Some("/bench/home".into()),
        tmpdir: "/tmp".into(),
        caller_path: None,
    };
    Policy::from_toml_str("bench.toml", &text, &vars).expect("bench policy")
}

fn bench(c: &mut Criterion) {
    for n in [10usize, 1000] {
        let p = policy(n);
        let git = p.resolve_program("git", Path::new("/"));
        let argv: Vec<String> = ["git", "status"].iter().map(|s| s.to_string()).collect();
        let cargo_argv: Vec<String> =
            ["cargo", "test", "-p", "x", "--", "--nocapture"].iter().map(|s| s.to_string()).collect();
        let cargo = p.resolve_program("cargo", Path::new("/"));
        let mut g = c.benchmark_group(format!("rules_{n}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("command_allow", |b| b.iter(|| black_box(p.decide_command(git.as_deref(), black_box(&argv)))));
        g.bench_function("command_rest_glob", |b| {
            b.iter(|| black_box(p.decide_command(cargo.as_deref(), black_box(&cargo_argv))))
        });
        let inside = PathBuf::from(format!("/bench/ws/dir{}/src/lib/mod.rs", n / 2));
        let outside = PathBuf::from("/var/lib/secret/file");
        g.bench_function("path_write_allow", |b| b.iter(|| black_box(p.decide_write(black_box(&inside)))));
        g.bench_function("path_read_deny", |b| b.iter(|| black_box(p.decide_read(black_box(&outside)))));
        g.bench_function("host_wildcard_allow", |b| {
            b.iter(|| black_box(p.decide_connect(black_box("a.b.zone1.example.org"), 443)))
        });
        g.bench_function("host_default_deny", |b| {
            b.iter(|| black_box(p.decide_connect(black_box("evil.example.net"), 443)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
