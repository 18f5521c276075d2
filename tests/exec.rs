//! End-to-end: every program started in a call's tree is an `exec` record, and under
//! `[commands] scope = "tree"` is decided by the command rules: no side door runs a denied
//! program. Each scenario runs as root and as uid 65534; each side door has its controls:
//! the same script under `scope = "call"` runs the program, and so does the host.

#[macro_use]
mod common;

use common::*;
use std::path::Path;

both_users!(
    records_every_exec_in_scope_call,
    records_200_execs_complete_and_in_order,
    door_absolute_path,
    door_path_lookup,
    door_env,
    door_find_exec,
    door_xargs,
    door_python_execv,
    door_shebang_script_in_workspace,
    door_allowed_script_with_denied_interpreter,
    door_copy_in_workspace,
    door_dynamic_loader,
    door_removed_working_directory,
    door_directory_descriptor_of_a_removed_directory,
    door_working_directory_longer_than_path_max,
    door_script_whose_interpreter_is_a_script,
    door_fileless_memfd,
    door_fileless_memfd_through_proc,
    door_proc_self_fd_of_a_denied_program,
    door_proc_self_fd_from_a_thread_with_its_own_descriptors,
    proc_self_exe_of_an_allowed_program_runs,
    allowed_git_workflow_is_on_the_record,
    review_groups_execs_per_program,
    revocation_reaches_a_running_tree,
    a_refused_exec_is_one_escaped_line,
    argv0_of_another_program_is_refused,
    the_programs_own_exec_is_decided_after_call_start,
);

/// The program every door tries to reach: not a shell builtin, prints its argument.
const DENIED: &str = "/usr/bin/basename";
/// What the doors themselves may run.
const ALLOWED: &str = r#""sh **", "env **", "find **", "xargs **", "python3 **", "cat **""#;

fn tree(extra: &str) -> String {
    format!("[commands]\nscope = \"tree\"\nallow = [{ALLOWED}{extra}]\n")
}

fn call_scope() -> String {
    format!("[commands]\nallow = [{ALLOWED}]\n")
}

/// The `exec` records of the fixture's audit log, in order.
fn exec_records(f: &Fixture) -> Vec<serde_json::Value> {
    let log = read(&f.root.join("state/audit.jsonl"));
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("an audit line is JSON"))
        .filter(|v| v["event"] == "exec")
        .collect()
}

fn argv_of(v: &serde_json::Value) -> Vec<String> {
    v["argv"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

/// One side door: `script(marker)` runs the denied program (which prints the marker) some
/// way. Under scope "tree" the marker never appears and `run` says what it refused; under
/// scope "call", and on the host, it does (the door is real). With `allowed_works`, the
/// same script under scope "tree" with the program allowed prints it too.
fn door(u: User, name: &str, script: &dyn Fn(&Fixture, &str) -> String, allowed_works: bool) {
    let f = Fixture::new(u);
    let marker = format!("M{}", unique());
    let script = script(&f, &marker);
    let argv = ["sh", "-c", script.as_str()];

    let host = f.host(&argv);
    assert!(host.out().contains(&marker), "{name}: control on the host failed\n{host}");
    let t = tree("");
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &argv, None);
    assert!(!o.out().contains(&marker), "{name}: the denied program ran under scope \"tree\"\n{o}");
    assert!(o.err().contains("paddock: refused exec"), "{name}: run must say what it refused\n{o}");
    let refused: Vec<serde_json::Value> = exec_records(&f).into_iter().filter(|r| r["decision"] == "deny").collect();
    assert!(!refused.is_empty(), "{name}: no refused exec on the record\n{o}");
    let c = call_scope();
    let o = f.run(&Pol { tail: &c, ..Pol::default() }, &argv, None);
    assert!(o.out().contains(&marker), "{name}: control under scope \"call\" failed\n{o}");
    if allowed_works {
        let t = tree(", \"basename **\"");
        let o = f.run(&Pol { tail: &t, ..Pol::default() }, &argv, None);
        assert!(o.out().contains(&marker), "{name}: the program allowed under scope \"tree\" must run\n{o}");
    }
}

fn door_absolute_path(u: User) {
    door(u, "absolute path", &|_, m| format!("{DENIED} {m}"), true);
}

fn door_path_lookup(u: User) {
    door(u, "PATH lookup", &|_, m| format!("basename {m}"), true);
}

fn door_env(u: User) {
    door(u, "env", &|_, m| format!("env basename {m}"), true);
}

fn door_find_exec(u: User) {
    door(u, "find -exec", &|_, m| format!("find / -maxdepth 0 -exec basename {m} \\;"), true);
}

fn door_xargs(u: User) {
    door(u, "xargs", &|_, m| format!("echo {m} | xargs basename"), true);
}

fn door_python_execv(u: User) {
    let src = format!("import os, sys; os.execv({DENIED:?}, [\"basename\", sys.argv[1]])");
    door(u, "os.execv", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), true);
}

fn door_shebang_script_in_workspace(u: User) {
    door(
        u,
        "#! script in the workspace",
        &|f, m| {
            write(&f.ws.join("s.sh"), &format!("#!/bin/sh\necho {m}\n"), 0o755);
            chown(&f.ws.join("s.sh"), f.user.uid());
            "./s.sh".into()
        },
        false,
    );
}

fn door_allowed_script_with_denied_interpreter(u: User) {
    // The script is allowed by its path; its interpreter is the denied program (which the
    // kernel runs as `basename SCRIPT`, printing the script's name: the marker).
    let f = Fixture::new(u);
    let marker = format!("M{}", unique());
    let script = f.ws.join(&marker);
    write(&script, &format!("#!{DENIED}\n"), 0o755);
    let path = script.to_str().unwrap();
    let host = f.host(&[path]);
    assert!(host.out().contains(&marker), "control on the host failed\n{host}");
    let t = tree(&format!(", {path:?}"));
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["sh", "-c", path], None);
    assert!(!o.out().contains(&marker), "a denied interpreter ran through an allowed script\n{o}");
    let t = tree(&format!(", {path:?}, \"basename **\""));
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["sh", "-c", path], None);
    assert!(o.out().contains(&marker), "the script and its interpreter allowed must run\n{o}");
}

fn door_copy_in_workspace(u: User) {
    let copy = |f: &Fixture, m: &str| {
        let p = f.ws.join("mybasename");
        if !p.exists() {
            copy_executable(Path::new(DENIED), &p);
            chown(&p, f.user.uid());
        }
        format!("./mybasename {m}")
    };
    door(u, "a copy in the workspace", &copy, false);
    // Allowed by its own path, the copy runs (the door test's refusal was the rule's).
    let f = Fixture::new(u);
    let marker = format!("M{}", unique());
    let script = copy(&f, &marker);
    let t = tree(&format!(", \"{}/mybasename **\"", f.ws.display()));
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["sh", "-c", &script], None);
    assert!(o.out().contains(&marker), "a workspace program allowed by its path must run\n{o}");
}

/// The dynamic loader, which runs any program it is given as an argument.
fn loader() -> &'static str {
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a dynamic loader")
}

fn door_dynamic_loader(u: User) {
    let loader = loader();
    door(u, "the dynamic loader", &|_, m| format!("{loader} {DENIED} {m}"), false);
}

/// A relative exec from a removed working directory: its link reads `/D/p/a (deleted)`,
/// and a symlink of that very name leads the path's `..` to `q`, whose `x` is python3 (an
/// allowed program); the kernel takes `..` from the dead directory itself, `p`, whose `x`
/// is the dynamic loader, which runs the denied program. Refused whatever it names: the
/// working directory is no live path in the view.
fn door_removed_working_directory(u: User) {
    let src = format!(
        "import os, sys, tempfile\n\
         d = tempfile.mkdtemp(dir=os.getcwd())\n\
         os.chdir(d)\n\
         os.makedirs('p/a'); os.makedirs('q/r')\n\
         os.symlink({loader:?}, 'p/x')\n\
         os.symlink(os.path.realpath('/usr/bin/python3'), 'q/x')\n\
         os.symlink(d + '/q/r', 'p/a (deleted)')\n\
         os.chdir('p/a'); os.rmdir('../a')\n\
         os.execve('../x', ['python3', {DENIED:?}, sys.argv[1]], {{}})\n",
        loader = loader()
    );
    door(u, "a removed working directory", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), false);
}

/// The same through `execveat` and a descriptor of the removed directory: its path is
/// not live either (refused before this round too, by its ` (deleted)` text; now also by
/// its identity).
fn door_directory_descriptor_of_a_removed_directory(u: User) {
    let src = format!(
        "import ctypes, os, sys, tempfile\n\
         d = tempfile.mkdtemp(dir=os.getcwd())\n\
         os.chdir(d)\n\
         os.makedirs('p/a'); os.makedirs('q/r')\n\
         os.symlink({loader:?}, 'p/x')\n\
         os.symlink(os.path.realpath('/usr/bin/python3'), 'q/x')\n\
         os.symlink(d + '/q/r', 'p/a (deleted)')\n\
         fd = os.open('p/a', os.O_PATH | os.O_DIRECTORY)\n\
         os.rmdir('p/a')\n\
         argv = (ctypes.c_char_p * 4)(b'python3', {DENIED:?}.encode(), sys.argv[1].encode(), None)\n\
         libc = ctypes.CDLL(None, use_errno=True)\n\
         libc.execveat(fd, b'../x', argv, (ctypes.c_char_p * 1)(None), 0)\n\
         sys.exit('execveat: ' + os.strerror(ctypes.get_errno()))\n",
        loader = loader()
    );
    door(u, "a descriptor of a removed directory", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), false);
}

/// A relative exec from a working directory whose path is longer than PATH_MAX (its link
/// cannot be read: `ENAMETOOLONG`): `D/y` is python3, the same path relative to the deep
/// directory the dynamic loader. Refused: the working directory is not known, never taken
/// to be `/`.
fn door_working_directory_longer_than_path_max(u: User) {
    let src = format!(
        "import os, sys, tempfile\n\
         d = tempfile.mkdtemp(dir=os.getcwd())\n\
         os.chdir(d)\n\
         os.symlink(os.path.realpath('/usr/bin/python3'), 'y')\n\
         for _ in range(22):\n    os.mkdir('e' * 200); os.chdir('e' * 200)\n\
         os.makedirs(d[1:])\n\
         os.symlink({loader:?}, d[1:] + '/y')\n\
         os.execve(d[1:] + '/y', ['python3', {DENIED:?}, sys.argv[1]], {{}})\n",
        loader = loader()
    );
    door(u, "a working directory over PATH_MAX", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), false);
}

/// A script whose interpreter is itself a script: `build.sh` is `#!WS/MARKER`, and
/// `MARKER` is `#!LOADER DENIED`; both scripts are allowed, so the kernel runs
/// `LOADER DENIED WS/MARKER WS/build.sh` (the denied program, printing the marker) unless
/// every level of the chain is decided with the argv the kernel gives it.
fn door_script_whose_interpreter_is_a_script(u: User) {
    let f = Fixture::new(u);
    let marker = format!("M{}", unique());
    let inner = f.ws.join(&marker);
    let outer = f.ws.join("build.sh");
    write(&inner, &format!("#!{} {DENIED}\n", loader()), 0o755);
    write(&outer, &format!("#!{}\n", inner.display()), 0o755);
    chown(&inner, f.user.uid());
    chown(&outer, f.user.uid());
    let (outer, inner) = (outer.to_str().unwrap(), inner.to_str().unwrap());
    let host = f.host(&[outer]);
    assert!(host.out().contains(&marker), "control on the host failed\n{host}");
    let scripts = format!(", \"{outer} **\", \"{inner} **\"");
    let t = tree(&scripts);
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["sh", "-c", outer], None);
    assert!(!o.out().contains(&marker), "the loader ran as the interpreter of an allowed script's interpreter\n{o}");
    assert!(o.err().contains("paddock: refused exec"), "{o}");
    let recs = exec_records(&f);
    let refused = recs.iter().find(|r| r["decision"] == "deny" && r["path"] == outer);
    let refused = refused.unwrap_or_else(|| panic!("no refusal of {outer}: {recs:#?}"));
    assert!(refused["reason"].as_str().unwrap().contains("level 2"), "{refused}");
    let chain = refused["interpreters"].as_array().unwrap_or_else(|| panic!("the chain on the record: {refused}"));
    assert_eq!(chain.len(), 2, "{refused}");
    assert_eq!(chain[1][1], DENIED, "the #! argument is in the loader's argv: {refused}");
    assert!(refused["interpreter"].as_str().unwrap().contains("ld-"), "the record names what runs: {refused}");
    // Controls: under scope "call" it runs; under "tree" with every level allowed, too.
    let c = call_scope();
    let o = f.run(&Pol { tail: &c, ..Pol::default() }, &["sh", "-c", outer], None);
    assert!(o.out().contains(&marker), "control under scope \"call\" failed\n{o}");
    let t = tree(&format!("{scripts}, \"{} **\"", loader()));
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["sh", "-c", outer], None);
    assert!(o.out().contains(&marker), "every level allowed, the chain must run\n{o}");
}

fn door_fileless_memfd(u: User) {
    let src = format!(
        "import os, sys\nfd = os.memfd_create('x')\nos.write(fd, open({DENIED:?}, 'rb').read())\nos.execve(fd, ['basename', sys.argv[1]], {{}})"
    );
    door(u, "memfd_create + execveat", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), false);
}

fn door_fileless_memfd_through_proc(u: User) {
    let src = format!(
        "import os, sys\nfd = os.memfd_create('x')\nos.write(fd, open({DENIED:?}, 'rb').read())\nos.execv('/proc/self/fd/%d' % fd, ['basename', sys.argv[1]])"
    );
    door(u, "memfd through /proc/self/fd", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), false);
}

fn door_proc_self_fd_of_a_denied_program(u: User) {
    let src = format!(
        "import os, sys\nfd = os.open({DENIED:?}, os.O_RDONLY)\nos.execv('/proc/self/fd/%d' % fd, ['basename', sys.argv[1]])"
    );
    door(u, "/proc/self/fd of the program", &|_, m| format!("python3 -c {} {m}", sh_quote(&src)), true);
}

/// A thread with a descriptor table of its own (`clone` without `CLONE_FILES`) has the
/// allowed program at fd 100, its process's leader the denied one; it execs
/// `/proc/self/fd/100` (or `/dev/fd/100`), which the kernel reads in the leader's table.
const FD_THREAD_C: &str = r#"
#define _GNU_SOURCE
#include <sched.h>
#include <fcntl.h>
#include <unistd.h>
static char stack[1 << 16];
static char **args;
static int thread(void *unused) {
    (void)unused;
    int f = open(args[2], O_PATH | O_CLOEXEC);
    if (f < 0 || dup2(f, 100) < 0) _exit(3);
    char *argv[] = {"cat", args[3], 0};
    char *envp[] = {0};
    execve(args[4], argv, envp);
    _exit(4); /* glibc's _exit ends every thread */
}
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    args = argv;
    int d = open(argv[1], O_PATH);
    if (d < 0 || dup2(d, 100) < 0) return 3;
    if (clone(thread, stack + sizeof stack, CLONE_VM | CLONE_SIGHAND | CLONE_THREAD, 0) < 0) return 5;
    for (;;) pause();
}
"#;

fn door_proc_self_fd_from_a_thread_with_its_own_descriptors(u: User) {
    let f = Fixture::new(u);
    let src = f.root.join("fdthread.c");
    std::fs::write(&src, FD_THREAD_C).unwrap();
    let tool = f.ws.join("fdthread");
    let cc =
        std::process::Command::new("cc").arg("-o").arg(&tool).arg(&src).output().expect("cc (the Rust linker) runs");
    assert!(cc.status.success(), "cc: {}", String::from_utf8_lossy(&cc.stderr));
    chmod(&tool, 0o755);
    chown(&tool, f.user.uid());
    let tool = tool.display().to_string();
    for link in ["/proc/self/fd/100", "/dev/fd/100"] {
        let marker = format!("M{}", unique());
        let argv = [tool.as_str(), DENIED, "/usr/bin/cat", marker.as_str(), link];
        let host = f.host(&argv);
        assert!(host.out().contains(&marker), "{link}: control on the host failed\n{host}");
        let t = tree(&format!(", \"{tool} **\""));
        let o = f.run(&Pol { tail: &t, ..Pol::default() }, &argv, None);
        assert!(!o.out().contains(&marker), "{link}: the denied program ran as the allowed one\n{o}");
        let refused: Vec<serde_json::Value> =
            exec_records(&f).into_iter().filter(|r| r["decision"] == "deny" && r["path"] == link).collect();
        assert!(
            refused.iter().any(|r| r["program"] == DENIED),
            "{link}: the refusal must name the program the kernel would run\n{refused:?}\n{o}"
        );
        let c = format!("[commands]\nallow = [{ALLOWED}, \"{tool} **\"]\n");
        let o = f.run(&Pol { tail: &c, ..Pol::default() }, &argv, None);
        assert!(o.out().contains(&marker), "{link}: control under scope \"call\" failed\n{o}");
    }
}

fn proc_self_exe_of_an_allowed_program_runs(u: User) {
    // A program re-executing itself through /proc/self/exe is decided as itself.
    let f = Fixture::new(u);
    let marker = format!("M{}", unique());
    let src =
        "import os, sys\nos.execv('/proc/self/exe', ['python3', '-c', 'import sys; print(sys.argv[1])', sys.argv[1]])";
    let t = tree("");
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["python3", "-c", src, &marker], None);
    assert!(o.out().contains(&marker), "/proc/self/exe of an allowed program must run\n{o}");
    let recs = exec_records(&f);
    let again = recs.iter().find(|r| r["path"] == "/proc/self/exe").unwrap_or_else(|| panic!("{recs:#?}"));
    assert_eq!(again["decision"], "allow", "{again}");
    assert!(again["program"].as_str().unwrap().contains("python3"), "{again}");
}

fn records_every_exec_in_scope_call(u: User) {
    let f = Fixture::new(u);
    let o = f.run(&Pol::default(), &["sh", "-c", "ls / >/dev/null; git --version"], None);
    assert_eq!(o.code(), 0, "{o}");
    let recs = exec_records(&f);
    let find = |name: &str| {
        recs.iter()
            .find(|r| r["program"].as_str().is_some_and(|p| p.ends_with(name)))
            .unwrap_or_else(|| panic!("no exec record of {name}: {recs:#?}"))
    };
    let sh = &recs[0];
    assert_eq!(argv_of(sh), ["sh", "-c", "ls / >/dev/null; git --version"], "{recs:#?}");
    let (ls, git) = (find("/ls"), find("/git"));
    assert_eq!(argv_of(ls), ["ls", "/"]);
    assert_eq!(argv_of(git), ["git", "--version"]);
    let ws = std::fs::canonicalize(&f.ws).unwrap();
    for r in [sh, ls, git] {
        assert_eq!(r["decision"], "allow", "{r}");
        assert_eq!(r["rule"], "commands.scope", "{r}");
        assert_eq!(Path::new(r["cwd"].as_str().unwrap()), ws, "{r}");
        assert!(r["pid"].as_i64().unwrap() > 0 && r["ppid"].as_i64().unwrap() > 0, "{r}");
    }
    assert_eq!(ls["ppid"], sh["pid"], "ls's parent is the shell");
    assert_eq!(git["ppid"], sh["pid"], "git's parent is the shell");
}

// The target calls `execve` as soon as it is ready; the supervisor holds that exec while
// the caller writes `call.start` and decides (and records) it only once the child is
// released (the caller's thread answers it then, or the supervisor's after the release):
// each call's one `exec` record follows its `call.start`. Forty calls, since a supervisor
// that answered early would race the `call.start` write, and one that answered twice
// would record it twice.
fn the_programs_own_exec_is_decided_after_call_start(u: User) {
    let f = Fixture::new(u);
    for _ in 0..40 {
        let o = f.run(&Pol::default(), &["/bin/true"], None);
        assert_eq!(o.code(), 0, "{o}");
    }
    let log = read(&f.root.join("state/audit.jsonl"));
    let recs: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let starts: Vec<usize> = (0..recs.len()).filter(|&i| recs[i]["event"] == "call.start").collect();
    assert_eq!(starts.len(), 40, "{log}");
    for s in starts {
        let id = &recs[s]["call_id"];
        let first = recs.iter().position(|r| r["event"] == "exec" && &r["call_id"] == id);
        let first = first.unwrap_or_else(|| panic!("no exec record of call {id}\n{log}"));
        assert!(first > s, "call {id}: its exec record precedes its call.start\n{log}");
        assert_eq!(argv_of(&recs[first]), ["/bin/true"], "{}", recs[first]);
        let execs = recs.iter().filter(|r| r["event"] == "exec" && &r["call_id"] == id).count();
        assert_eq!(execs, 1, "call {id}: one exec, one record\n{log}");
    }
}

fn records_200_execs_complete_and_in_order(u: User) {
    let f = Fixture::new(u);
    let t = "[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"seq **\", \"echo *\"]\n";
    let script = "for i in $(seq 200); do /bin/echo $i; done >/dev/null";
    let o = f.run(&Pol { tail: t, ..Pol::default() }, &["sh", "-c", script], None);
    assert_eq!(o.code(), 0, "{o}");
    let recs = exec_records(&f);
    let echoes: Vec<String> = recs
        .iter()
        .filter(|r| argv_of(r).first().map(String::as_str) == Some("/bin/echo"))
        .map(|r| {
            assert_eq!(r["decision"], "allow", "{r}");
            argv_of(r)[1].clone()
        })
        .collect();
    let want: Vec<String> = (1..=200).map(|i| i.to_string()).collect();
    assert_eq!(echoes, want, "every exec on the record, in the order made");
    let log = read(&f.root.join("state/audit.jsonl"));
    let lines: Vec<&str> = log.lines().collect();
    let last_exec = lines.iter().rposition(|l| l.contains("\"event\":\"exec\"")).unwrap();
    let end = lines.iter().position(|l| l.contains("\"event\":\"call.end\"")).unwrap();
    assert!(last_exec < end, "every exec record precedes the call's end");
}

fn allowed_git_workflow_is_on_the_record(u: User) {
    let f = Fixture::new(u);
    let t = "[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"git **\"]\ndeny = [\"git push **\"]\n";
    let script = "git init -q . && echo x > f && git add f && git -c user.name=t -c user.email=t@t.test commit -qm first && git log --oneline && git push origin; echo push=$?";
    let o = f.run(&Pol { tail: t, ..Pol::default() }, &["sh", "-c", script], None);
    assert!(o.out().contains("first"), "an allowed git workflow must work under scope \"tree\"\n{o}");
    assert!(o.out().contains("push=126"), "git push is denied by its rule (EACCES)\n{o}");
    assert!(o.err().contains("paddock: refused exec git push origin"), "{o}");
    let recs = exec_records(&f);
    let sub: Vec<(String, String)> = recs
        .iter()
        .filter(|r| argv_of(r).first().map(String::as_str) == Some("git"))
        .map(|r| (argv_of(r).get(1).cloned().unwrap_or_default(), r["decision"].as_str().unwrap().to_string()))
        .collect();
    for (want, decision) in [("init", "allow"), ("add", "allow"), ("-c", "allow"), ("log", "allow"), ("push", "deny")] {
        assert!(sub.iter().any(|(s, d)| s == want && d == decision), "git {want} ({decision}) on the record: {sub:?}");
    }
}

fn review_groups_execs_per_program(u: User) {
    let f = Fixture::new(u);
    let t = "[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"ls **\"]\n";
    let script = "ls -a >/dev/null; ls -a >/dev/null; /usr/bin/printf x; true";
    let o = f.run(&Pol { tail: t, ..Pol::default() }, &["sh", "-c", script], None);
    assert_eq!(o.code(), 0, "{o}");
    let o = f.launch(&[f.bin.clone().into(), "audit".into(), "review".into()], &[], None);
    assert_eq!(o.code(), 0, "{o}");
    let line = o.out().lines().find(|l| l.starts_with("  sh \u{2192} ")).map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("no line for the call program sh\n{o}"));
    assert!(line.contains("ls \u{d7}2"), "{line}");
    assert!(line.contains("denied: printf x \u{d7}1"), "{line}");
    let o = f.launch(&[f.bin.clone().into(), "audit".into(), "review".into(), "--json".into()], &[], None);
    let v: serde_json::Value = serde_json::from_str(&o.out()).unwrap();
    assert_eq!(v["programs"][0]["call_program"], "sh", "{v}");
    assert_eq!(v["programs"][0]["denied"], 1, "{v}");
}

fn revocation_reaches_a_running_tree(u: User) {
    let f = Fixture::new(u);
    let t = "[commands]\nscope = \"tree\"\nallow = [\"sh **\", \"basename **\", \"sleep **\"]\n";
    let pol = Pol { tail: t, ..Pol::default() };
    // Waits (at most 30 s) for the file `go` in the workspace between two execs.
    let script =
        "basename one; i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; basename two";
    // Control: without a revocation both run.
    write(&f.ws.join("go"), "", 0o644);
    let o = f.run(&pol, &["sh", "-c", script], None);
    assert_eq!(o.out(), "one\ntwo\n", "{o}");
    std::fs::remove_file(f.ws.join("go")).unwrap();
    let log = f.root.join("state/audit.jsonl");
    let before = read(&log).lines().count();
    std::thread::scope(|s| {
        let run = s.spawn(|| f.run(&pol, &["sh", "-c", script], None));
        let deadline = std::time::Instant::now() + HANG;
        while !read(&log).lines().skip(before).any(|l| l.contains("\"argv\":[\"basename\",\"one\"]")) {
            assert!(std::time::Instant::now() < deadline, "the tree never ran basename one");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let r = f.launch(&[f.bin.clone().into(), "revoke".into(), "command:basename **".into()], &[], None);
        assert_eq!(r.code(), 0, "{r}");
        write(&f.ws.join("go"), "", 0o644);
        let o = run.join().unwrap();
        assert_eq!(o.out(), "one\n", "the revoked program must not run at the tree's next exec\n{o}");
        assert!(o.err().contains("paddock: refused exec basename two") && o.err().contains("revoked"), "{o}");
    });
}

fn a_refused_exec_is_one_escaped_line(u: User) {
    let f = Fixture::new(u);
    let t = tree("");
    // The argv an agent chose carries terminal controls: the line shows them escaped.
    let script = format!("{DENIED} \"$(printf 'a\\033[2Jb')\"; echo rc=$?");
    let host = f.host(&["sh", "-c", &script]);
    assert!(host.out().contains('\u{1b}'), "control: the argument holds a raw escape\n{host}");
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &["sh", "-c", &script], None);
    assert!(o.out().contains("rc=126"), "a refused exec fails with EACCES (126 from the shell)\n{o}");
    let err = o.err();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("paddock: refused exec")).collect();
    assert_eq!(lines.len(), 1, "one line per refused exec\n{o}");
    assert!(!o.err().contains('\u{1b}'), "a raw escape reached the terminal\n{o}");
    assert!(lines[0].contains("basename") && lines[0].contains("default"), "{}", lines[0]);
}

/// argv[0] names the command a multi-call program runs: `git log` started as `git-add`, then
/// `git-commit`, adds and commits the file `log`. Under "tree" the rules decided `git log`, so that exec is refused; the controls:
/// the same under "call" commits, and `git log` under its own name runs under "tree".
fn argv0_of_another_program_is_refused(u: User) {
    let allow = r#"allow = ["sh **", "bash **", "git init **", "git log **"]"#;
    let t = format!("[commands]\nscope = \"tree\"\n{allow}\ndeny = [\"git commit **\"]\n");
    let c = format!("[commands]\n{allow}\n");
    let script =
        "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t.test GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t.test; \
        git init -q . && git log --oneline >/dev/null 2>&1; echo log=$?; \
        echo x > log; (exec -a git-add git log) && (exec -a git-commit git log -q -m sneaked 2>/dev/null); \
        case \"$(git log --oneline 2>/dev/null)\" in *sneaked*) echo commits=1;; *) echo commits=0;; esac";
    let argv = ["bash", "-c", script];
    let f = Fixture::new(u);
    let o = f.run(&Pol { tail: &c, ..Pol::default() }, &argv, None);
    assert!(
        o.out().contains("commits=1"),
        "control: under \"call\" git log named git-add, git-commit adds and commits\n{o}"
    );
    let f = Fixture::new(u);
    let o = f.run(&Pol { tail: &t, ..Pol::default() }, &argv, None);
    assert!(o.out().contains("log=128"), "git log under its own name runs (no commits yet: 128)\n{o}");
    assert!(o.out().contains("commits=0"), "argv[0] git-commit must not commit under \"tree\"\n{o}");
    assert!(o.err().contains("paddock: refused exec git-add"), "{o}");
    assert!(o.err().contains("argv[0]"), "the refusal says why\n{o}");
    // A symlink named after the subcommand, run by its path: the same refusal.
    let by_link = "git init -q . ; echo x > log; ln -s \"$(command -v git)\" ./git-add; ./git-add log; echo add=$?";
    let t2 = t.replace("\"git log **\"]", "\"git log **\", \"ln **\"]");
    let f = Fixture::new(u);
    let o = f.run(&Pol { tail: &t2, ..Pol::default() }, &["bash", "-c", by_link], None);
    assert!(o.out().contains("add=126"), "a symlink git-add to git must be refused under \"tree\"\n{o}");
    assert!(o.err().contains("argv[0]"), "{o}");
}
