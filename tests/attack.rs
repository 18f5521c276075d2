//! Red-team variants of fixed holes: each test is an attack that worked before its fix,
//! with a control showing the probe itself works.

#[macro_use]
mod common;
use common::*;

use std::ffi::OsString;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

both_users!(
    revocation_list_fifo_denies_instead_of_hanging,
    revocation_list_device_denies_instead_of_reading_forever,
    verbose_report_escapes_agent_file_names,
    caller_proxy_variables_never_reach_the_child,
    policy_fifo_is_refused_instead_of_hanging,
    workspace_file_cannot_stand_in_for_a_preset,
    policy_errors_escape_the_file_they_quote,
    debug_log_lines_escape_what_the_mcp_client_sent,
    audit_commands_refuse_a_fifo_log_instead_of_hanging,
    hard_linked_audit_log_is_refused,
    hard_linked_revocation_list_denies,
);

/// `paddock check -- /bin/true` (and `run`) as the fixture's user.
fn check_true(f: &Fixture) -> Out {
    let pol = f.policy(&Pol::default());
    let argv: Vec<OsString> = [
        f.bin.as_os_str(),
        "check".as_ref(),
        "--policy".as_ref(),
        pol.as_os_str(),
        "--".as_ref(),
        "/bin/true".as_ref(),
    ]
    .map(OsString::from)
    .to_vec();
    f.launch(&argv, &[], None)
}

fn state_list(f: &Fixture) -> std::path::PathBuf {
    f.root.join("state").join("revocations.toml")
}

/// A FIFO in the revocation list's place: every decision read it with a blocking
/// `read_to_string`, waiting for a writer forever. Now it is an unusable list: 78.
fn revocation_list_fifo_denies_instead_of_hanging(u: User) {
    let f = Fixture::new(u);
    let control = check_true(&f);
    assert_eq!(control.code(), 0, "control: no list, the call is allowed\n{control}");
    let list = state_list(&f);
    let made = Command::new("mkfifo").arg(&list).status().expect("mkfifo");
    assert!(made.success());
    chown(&list, u.uid());
    let o = check_true(&f); // `launch` fails the test if it hangs
    assert_eq!(o.code(), 78, "a FIFO as the revocation list must deny, not hang\n{o}");
    assert!(o.err().contains("not a regular file"), "{o}");
    let o = f.run(&Pol::default(), &["/bin/true"], None);
    assert_eq!(o.code(), 78, "run too\n{o}");
}

/// A symlink to /dev/zero as the list: an endless read (memory until OOM). Now refused.
fn revocation_list_device_denies_instead_of_reading_forever(u: User) {
    let f = Fixture::new(u);
    let control = check_true(&f);
    assert_eq!(control.code(), 0, "{control}");
    symlink("/dev/zero", state_list(&f)).unwrap();
    let o = check_true(&f);
    assert_eq!(o.code(), 78, "a device as the revocation list must deny\n{o}");
}

/// A deny glob matching a symlink the agent created puts its name in the mounts
/// layer's detail, which `-v` printed raw: an OSC title and a screen clear reached the
/// terminal.
fn verbose_report_escapes_agent_file_names(u: User) {
    let f = Fixture::new(u);
    let evil = "evil\x1b]0;PWNED\x07\x1b[2J\u{9b}1A.pem";
    let pol = Pol { deny: &["${WORKSPACE}/**/*.pem"], ..Default::default() };
    let mut argv: Vec<OsString> = vec![f.bin.clone().into(), "-v".into()];
    argv.extend(f.paddock_argv(&pol).into_iter().skip(1));
    argv.extend(["sh", "-c", "ln -s /etc/hostname \"$1\"", "sh", evil].map(OsString::from));
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "control: the agent creates the link\n{o}");
    // A new match of a deny glob is moved aside when the call ends: the line that says so
    // names it escaped.
    assert!(o.err().contains(r"evil\x1b]0;PWNED\x07\x1b[2J\u{9b}1A.pem"), "the move is said, escaped\n{o}");
    assert!(!o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07) && !o.err().contains('\u{9b}'), "{o}");
    // The same name there at the start (the user's), for the report of the masks.
    symlink("/etc/hostname", Path::new(&f.ws).join(evil)).unwrap();
    argv.truncate(argv.len() - 5);
    argv.push("/bin/true".into());
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.err().contains(r"evil\x1b]0;PWNED\x07\x1b[2J\u{9b}1A.pem"), "the name is shown, escaped\n{o}");
    assert!(!o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07), "raw control bytes on stderr\n{o}");
    assert!(!o.err().contains('\u{9b}'), "a raw C1 CSI on stderr\n{o}");
}

/// A proxy variable of the caller (a tool's own: `CARGO_HTTP_PROXY`,
/// `npm_config_https-proxy`) names the upstream with its password; `pass` globs of the
/// presets passed it when the policy allows no network, or when spelled with `-proxy`.
fn caller_proxy_variables_never_reach_the_child(u: User) {
    let f = Fixture::new(u);
    let cred = format!("corp:pw{}", unique());
    let url = format!("http://{cred}@127.0.0.1:9");
    let vars = [("CARGO_HTTP_PROXY", url.as_str()), ("npm_config_https-proxy", url.as_str()), ("HTTPS_PROXY", &url)];
    let pol = f.root.join("env-policy.toml");
    write(
        &pol,
        "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\", \"/lib\", \"/lib64\", \"/etc\"]\n\
         [env]\npass = [\"PATH\", \"CARGO_*\", \"npm_config_*\", \"HTTPS_PROXY\"]\n",
        0o644,
    );
    // Control: another variable of the same globs passes.
    let mut argv: Vec<OsString> = vec![f.bin.clone().into(), "run".into(), "--policy".into(), pol.into()];
    argv.extend(["--", "/usr/bin/env"].map(OsString::from));
    let mut env = vars.to_vec();
    env.push(("CARGO_TARGET_DIR", "/x"));
    let o = f.launch(&argv, &env, None);
    assert_eq!(o.code(), 0, "{o}");
    assert!(o.out().contains("CARGO_TARGET_DIR=/x"), "control: the glob passes\n{o}");
    o.assert_absent(&cred, "the upstream proxy's credentials");
}

/// A FIFO as `--policy`, or as an `extends` entry (a workspace file the agent can replace):
/// opening it waited for a writer forever. Now 78 naming it.
fn policy_fifo_is_refused_instead_of_hanging(u: User) {
    let f = Fixture::new(u);
    let fifo = f.ws.join("base.toml");
    let top = f.ws.join("top.toml");
    write(&top, "version = 1\nextends = [\"base.toml\"]\n", 0o644);
    write(&fifo, "version = 1\n[filesystem]\nread = [\"/usr\", \"/bin\"]\n", 0o644);
    let check = |pol: &Path| -> Out {
        let argv: Vec<OsString> = [
            f.bin.as_os_str(),
            "check".as_ref(),
            "--policy".as_ref(),
            pol.as_os_str(),
            "--".as_ref(),
            "/bin/true".as_ref(),
        ]
        .map(OsString::from)
        .to_vec();
        f.launch(&argv, &[], None)
    };
    let control = check(&top);
    assert_eq!(control.code(), 0, "control: a regular base file loads\n{control}");
    std::fs::remove_file(&fifo).unwrap();
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    chown(&fifo, u.uid());
    for pol in [&top, &fifo] {
        let o = check(pol); // `launch` fails the test if it hangs
        assert_eq!(o.code(), 78, "{}\n{o}", pol.display());
        assert!(o.err().contains("not a regular file"), "{o}");
    }
}

/// A file named like a preset in the current directory (the workspace, which the agent
/// writes) replaced the preset silently. A preset's name now always means the preset;
/// `./NAME` names the file.
fn workspace_file_cannot_stand_in_for_a_preset(u: User) {
    let f = Fixture::new(u);
    let argv: Vec<OsString> = [
        f.bin.as_os_str(),
        "check".as_ref(),
        "--policy".as_ref(),
        "coding-agent".as_ref(),
        "--read".as_ref(),
        "/etc/shadow".as_ref(),
    ]
    .map(OsString::from)
    .to_vec();
    let control = f.launch(&argv, &[], None);
    assert_eq!(control.code(), 77, "control: the preset denies /etc/shadow\n{control}");
    assert!(!control.err().contains("warning"), "{control}");
    write(&f.ws.join("coding-agent"), "version = 1\n[filesystem]\nread = [\"/\"]\n", 0o644);
    let o = f.launch(&argv, &[], None);
    assert_eq!(o.code(), 77, "a file named like a preset must not replace it\n{o}");
    let top = f.ws.join("top.toml");
    write(&top, "version = 1\nextends = [\"coding-agent\"]\n", 0o644);
    let mut by_extends = argv.clone();
    by_extends[3] = top.into();
    let o = f.launch(&by_extends, &[], None);
    assert_eq!(o.code(), 77, "nor in `extends`\n{o}");
    // The file is still reachable by its path.
    let mut by_path = argv.clone();
    by_path[3] = "./coding-agent".into();
    let o = f.launch(&by_path, &[], None);
    assert_eq!(o.code(), 0, "`./coding-agent` is the file\n{o}");
}

/// A policy file in the workspace (a project's own, which the agent can edit) quoted raw
/// in `policy lint` and `run --policy` errors: a TOML `\u001b` escape became a raw ESC.
fn policy_errors_escape_the_file_they_quote(u: User) {
    let f = Fixture::new(u);
    let pol = f.ws.join("project.toml");
    write(&pol, "version = 1\n[sandbox]\n\"\\u001b[2Jkey\\u0007\\u009b\" = 1\n", 0o644);
    for cmd in [&["policy", "lint"][..], &["run", "--policy"][..]] {
        let mut argv: Vec<OsString> = vec![f.bin.clone().into()];
        argv.extend(cmd.iter().map(OsString::from));
        argv.push(pol.clone().into());
        if cmd[0] == "run" {
            argv.extend(["--", "/bin/true"].map(OsString::from));
        }
        let o = f.launch(&argv, &[], None);
        assert_eq!(o.code(), 78, "{cmd:?}\n{o}");
        assert!(
            o.err().contains(r"unknown key `\x1b[2Jkey\x07\u{9b}`"),
            "control: the key is named, escaped ({cmd:?})\n{o}"
        );
        assert!(!o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07), "raw control bytes ({cmd:?})\n{o}");
        assert!(!o.err().contains('\u{9b}'), "a raw C1 CSI ({cmd:?})\n{o}");
    }
}

/// `paddock -vv mcp`: a dependency's debug line quotes the client's protocol version with
/// `%` (Display); tracing-subscriber wrote it raw, so the MCP client (the agent) put
/// ESC, BEL and a C1 CSI on the person's terminal.
fn debug_log_lines_escape_what_the_mcp_client_sent(u: User) {
    let f = Fixture::new(u);
    let init = concat!(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"#,
        r#""x\u001b]0;PWN\u0007\u009b2J","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        "\n"
    );
    let argv: Vec<OsString> = [f.bin.as_os_str(), "-vv".as_ref(), "mcp".as_ref()].map(OsString::from).to_vec();
    let o = f.launch(&argv, &[], Some(init.as_bytes()));
    assert!(o.err().contains(r"x\x1b]0;PWN\x07\u{9b}2J"), "control: the debug line quotes the version, escaped\n{o}");
    assert!(!o.stderr.contains(&0x1b) && !o.stderr.contains(&0x07), "raw control bytes on stderr\n{o}");
    assert!(!o.err().contains('\u{9b}'), "a raw C1 CSI on stderr\n{o}");
}

/// A FIFO as the audit log: `run` refused it already; `audit verify` and `audit review`
/// opened it for reading and waited for a writer forever.
fn audit_commands_refuse_a_fifo_log_instead_of_hanging(u: User) {
    let f = Fixture::new(u);
    let log = f.root.join("state").join("audit.jsonl");
    let audit = |what: &str| -> Out {
        let argv: Vec<OsString> = [f.bin.as_os_str(), "audit".as_ref(), what.as_ref()].map(OsString::from).to_vec();
        f.launch(&argv, &[], None)
    };
    let o = f.run(&Pol::default(), &["/bin/true"], None);
    assert_eq!(o.code(), 0, "{o}");
    let control = audit("verify");
    assert_eq!(control.code(), 0, "control: a real log verifies\n{control}");
    std::fs::remove_file(&log).unwrap();
    assert!(Command::new("mkfifo").arg(&log).status().unwrap().success());
    chown(&log, u.uid());
    for what in ["verify", "review"] {
        let o = audit(what); // `launch` fails the test if it hangs
        assert_ne!(o.code(), 0, "audit {what}\n{o}");
        assert!(o.err().contains("not a regular file"), "audit {what}\n{o}");
    }
}

/// A hard link to the audit log inside the workspace, made before the run: the log's own
/// path is masked, the link is not, and a call emptied the whole log through it (a chain
/// cannot show records cut from the end). Now a log with other names is refused.
fn hard_linked_audit_log_is_refused(u: User) {
    let f = Fixture::new(u);
    let o = f.run(&Pol::default(), &["/bin/true"], None);
    assert_eq!(o.code(), 0, "{o}");
    let log = f.root.join("state").join("audit.jsonl");
    let link = f.ws.join("notes.txt");
    std::fs::hard_link(&log, &link).unwrap();
    // Control: the link is the log (the host sees its records through it).
    assert!(read(&link).contains("call.start"), "control: the link reaches the log");
    let o = f.run(&Pol::default(), &["/bin/sh", "-c", ": > notes.txt; echo cut"], None);
    assert_ne!(o.code(), 0, "a run with a hard-linked log must be refused\n{o}");
    assert!(!o.out().contains("cut"), "the call ran\n{o}");
    assert!(o.err().contains("hard links"), "{o}");
    assert!(read(&log).contains("call.start"), "the log was cut through its other name");
}

/// A hard link to the revocation list inside the workspace: writing `[[revoked]]`-free
/// TOML through it emptied the list in place, and the next call ran revoked programs.
/// Now a list with other names cannot be used: every call is denied until it is fixed.
fn hard_linked_revocation_list_denies(u: User) {
    let f = Fixture::new(u);
    let revoke: Vec<OsString> =
        [f.bin.as_os_str(), "revoke".as_ref(), "command:/bin/false".as_ref()].map(OsString::from).to_vec();
    let o = f.launch(&revoke, &[], None);
    assert_eq!(o.code(), 0, "{o}");
    let control = f.run(&Pol::default(), &["/bin/false"], None);
    assert_eq!(control.code(), 77, "control: the revocation holds\n{control}");
    std::fs::hard_link(state_list(&f), f.ws.join("list.txt")).unwrap();
    let o = f.run(&Pol::default(), &["/bin/sh", "-c", "echo '# empty' > list.txt; echo emptied"], None);
    assert_eq!(o.code(), 78, "a hard-linked list must deny every call\n{o}");
    assert!(!o.out().contains("emptied"), "the call ran\n{o}");
    assert!(o.err().contains("hard links"), "{o}");
}
