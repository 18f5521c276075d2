//! `paddock run`: one call of a `run` session (decide, audit, confine, run), and what it
//! says on stderr.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use paddock::proxy::{ConnectionEvent, Verdict};
use paddock::{ConnectionObserver, Session, SessionConfig, SessionError};
use paddock_audit::{AuditError, Escaped};
use paddock_policy::{Enforcement, Policy};
use paddock_sandbox::{
    phase, EnforcementReport, ExitKind, LayerState, Prestarted, RunOutcome, SandboxError, StdioMode,
};

use crate::agents;
use crate::args::RunArgs;
use crate::exit;
use crate::export_cmd::live_shipper;
use crate::output;
use crate::setup::{current_dir, fail, hide_state, load_policy_only};
use crate::state::{check_revocation_list, revocation_list_error, State};

/// The sandbox helper of a `paddock run`, forked before the command line is parsed
/// ([`paddock_sandbox::prestart`]): it enters its namespaces on the other core while this
/// process parses its arguments and loads its policy (single-threaded here, so it is
/// forked, not re-executed). `None` for any other subcommand, for `run --explain` and
/// `--help` (nothing runs), and when it cannot be forked (the run starts one later).
/// A helper the run does not use exits when it is dropped.
pub fn helper_ahead() -> Option<Prestarted> {
    starts_a_sandbox(std::env::args_os().skip(1)).then(paddock_sandbox::prestart).flatten()
}

/// Whether the command line `args` (without the program's name) asks `run` to run
/// something: its subcommand is `run` (the only option before it is `-v`/`--verbose`,
/// which takes no value), without `--explain` or `--help` before the command's `--`.
fn starts_a_sandbox(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut args = args.into_iter();
    if args.by_ref().find(|a| !a.as_encoded_bytes().starts_with(b"-")).is_none_or(|sub| sub != "run") {
        return false;
    }
    !args.take_while(|a| a != "--").any(|a| a == "--explain" || a == "--help" || a == "-h")
}

/// Runs `paddock run` with the helper [`helper_ahead`] forked; returns the exit code.
pub fn run(mut a: RunArgs, verbose: u8, helper: Option<Prestarted>) -> i32 {
    pick_agent_preset(&mut a);
    let helper = if a.explain { None } else { helper };
    // `$STATE`, resolved and checked once for the whole run (when first needed) and
    // passed down, to the session too.
    let state = State::new();
    let t = Instant::now();
    let mut policy = match load_policy_only(&a.policy, &state) {
        Ok(p) => p,
        Err(code) => return code,
    };
    phase("policy load and compile", t);
    let agent = if a.explain { None } else { adapt_for_agent(&mut a, &policy) };
    if a.explain {
        return print_explain(&policy, &probe(&policy)).err().unwrap_or(exit::OK);
    }
    let t = Instant::now();
    let here = match current_dir() {
        Ok(d) => d,
        Err(code) => return code,
    };
    let (audit_log, revocations) =
        match state.audit_file(a.audit.as_deref()).and_then(|l| Ok((l, state.revocations_file_if_any()?))) {
            Ok(x) => x,
            Err(code) => return code,
        };
    // A list that cannot be read stops the run, as itself (not as the audit log).
    if let Err(code) = check_revocation_list(revocations.as_deref()) {
        return code;
    }
    if let Err(code) = hide_state(&mut policy, &state) {
        return code;
    }
    phase("state directory and revocation list checked", t);
    warn_if_whole_home(&policy.vars.workspace);
    warn_if_state_writable(&policy, &audit_log);
    if let Err(code) = refuse_state_through_writable_symlink(&policy, &audit_log, &state) {
        return code;
    }
    if let Some(line) = agent.and_then(|ag| ag.missing_key_line(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty())))
    {
        eprintln!("{line}");
    }
    let max_output = policy.limits.max_output;
    let timeout = policy.limits.timeout;
    let on_connection = observer(a.quiet, verbose > 0);
    // `[audit] export`: records leave for the collector from a thread of their own; what
    // is pending when the run ends gets a last few seconds (declared before the session,
    // so that the session's last records are written before that attempt).
    let _shipping = match live_shipper(policy.audit.export.as_deref(), &audit_log, &policy.vars.workspace, &state) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let cfg = SessionConfig {
        policy,
        audit_log: audit_log.clone(),
        revocations: revocations.clone(),
        mode: "run".into(),
        on_connection,
        placeholder_seed: state.placeholder_seed(),
        // The session's one call starts now: `$STATE` as checked above.
        state_dir: state.usable().map(Path::to_path_buf),
    };
    // The log is opened before anything is decided or run: a call never runs unaudited.
    let t = Instant::now();
    let session = match Session::new(cfg) {
        Ok(s) => s,
        Err(e @ SessionError::Policy(_)) => return fail(exit::CONFIG, e),
        Err(SessionError::Audit(e)) if about_revocations(&e, revocations.as_deref()) => {
            return revocation_list_error(revocations.as_deref().unwrap_or(Path::new("revocations.toml")), &e)
        }
        Err(e) => {
            return fail(
                exit::INTERNAL,
                format_args!("{e} ({}); the call does not run unaudited", Escaped(&audit_log.to_string_lossy())),
            )
        }
    };
    phase("session open (audit log, revocations, secrets)", t);
    if let Some(reason) = session.policy().denies_all() {
        return fail(exit::CONFIG, reason);
    }
    // exec supervision (issue 16): one escaped line per refused exec of the tree.
    // A shell's PATH search refuses the same exec once per directory: said once.
    if !a.quiet {
        let last = std::sync::Mutex::new((0, Vec::new()));
        session.set_exec_observer(Arc::new(move |e: &paddock_audit::Exec| {
            if e.decision != paddock_audit::Decision::Deny {
                return;
            }
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            if *last != (e.pid, e.argv.clone()) {
                *last = (e.pid, e.argv.clone());
                eprintln!("{}", exec_refused_line(e));
            }
        }));
    }
    if !a.quiet {
        say_at_start(&session);
    }
    let stdio = if std::io::stdin().is_terminal() { StdioMode::Pty } else { StdioMode::Inherit };
    match state.enable_approvals(&session) {
        Ok(Some(broker)) => {
            if let Some(p) = crate::prompt::terminal(stdio == StdioMode::Pty) {
                broker.set_prompt(p);
            }
        }
        Ok(None) => {}
        Err(code) => return code,
    }
    if let Some(h) = helper {
        session.give_helper(h);
    }
    let result = match session.run(&a.argv, &here, stdio) {
        Ok(r) => r,
        Err(e) => return run_error(e, &a.argv, &session),
    };
    // The call is over: the threads kept for its next job end beside the log's last sync.
    paddock_sandbox::end_idle_workers();
    for m in &result.moved_aside {
        eprintln!("{}", paddock::moved_aside_line(m));
    }
    for u in &result.unchecked {
        eprintln!("{}", paddock::unchecked_line(u));
    }
    let Some(outcome) = result.outcome else {
        let d = &result.decision;
        eprintln!("paddock: denied: {} ({})", Escaped(&d.reason), Escaped(&d.rule));
        eprintln!(
            "  hint: `paddock check -- {}` explains the decision; `paddock policy show` prints the policy",
            Escaped(&shell_words::join(&a.argv))
        );
        return exit::DENIED;
    };
    if verbose > 0 {
        print_report(&outcome.report);
    }
    print_limits_reached(&outcome, max_output, timeout);
    let t = Instant::now();
    drop(session); // the audit log's last records synced
    phase("session closed (audit log synced)", t);
    // The sandbox's own end (its namespaces torn down, the cgroup removed, the helper
    // reaped) went on meanwhile: nothing of the run outlives it.
    let t = Instant::now();
    paddock_sandbox::finish_teardowns();
    phase("sandbox's own end waited for", t);
    if paddock::moved_aside_failed(&result.moved_aside) {
        // What the call planted where a rule forbids it is still there: not silently.
        eprintln!(
            "paddock: exit {} instead of the call's own {}: remove or inspect what is named above before a tool on the host uses it",
            exit::UNAVAILABLE,
            outcome.exit_code()
        );
        return exit::UNAVAILABLE;
    }
    outcome.exit_code()
}

/// Says on stderr which limit cut the run short: output truncated at `max_output`, or the
/// timeout that killed the process tree.
fn print_limits_reached(outcome: &RunOutcome, max_output: Option<u64>, timeout: Option<std::time::Duration>) {
    for (name, truncated, bytes) in [
        ("stdout", outcome.stdout_truncated, outcome.stdout_bytes),
        ("stderr", outcome.stderr_truncated, outcome.stderr_bytes),
    ] {
        if truncated {
            eprintln!(
                "paddock: {name} truncated at max_output = {} ({bytes} bytes produced)",
                max_output.map(paddock_policy::format_size).unwrap_or_default()
            );
        }
    }
    if outcome.status == ExitKind::TimedOut {
        eprintln!(
            "paddock: timed out after {}: the whole process tree was killed",
            timeout.map(|t| format!("{t:?}")).unwrap_or_default()
        );
    }
}

/// What `run` prints of the child's connections: each refused one (unless `quiet`), each
/// one with `-v`, and an upstream proxy's failure the child may hide.
fn observer(quiet: bool, verbose_net: bool) -> Option<ConnectionObserver> {
    (!quiet || verbose_net).then(|| {
        Arc::new(move |e: &ConnectionEvent| {
            if verbose_net {
                eprintln!("{}", connection_line(e));
            }
            if e.verdict == Verdict::Denied && !quiet {
                eprintln!("{}", refused_line(e));
            } else if e.via.is_some() && e.error.is_some() && e.status >= 500 && !quiet {
                // The upstream proxy failed it: the child saw a 502, tools often hide why.
                eprintln!("paddock: {} {}:{} failed: {}", e.kind, Escaped(&e.host), e.port, Escaped(&e.reason));
            }
        }) as ConnectionObserver
    })
}

/// Reports why `argv` did not run, with a hint; returns the exit code.
fn run_error(e: SessionError, argv: &[String], session: &Session) -> i32 {
    match e {
        SessionError::NotFound { .. } => fail(
            exit::NOT_FOUND,
            format_args!(
                "{}: not found in the sandbox PATH ({})",
                Escaped(&argv[0]),
                Escaped(session.policy().sandbox_path())
            ),
        ),
        e @ SessionError::Sandbox(SandboxError::LayerUnavailable { .. }) => {
            eprintln!("paddock: {}", Escaped(&e.to_string()));
            eprintln!(
                "  hint: the policy's enforcement is strict, so paddock refuses to run without it; `paddock run --explain` lists this machine's layers, and [sandbox] enforcement = \"best-effort\" runs anyway and records what was missing"
            );
            exit::UNAVAILABLE
        }
        e => fail(e.exit_code(), Escaped(&e.to_string())),
    }
}

/// Without `--policy` (and without `--no-agent-preset`), a coding agent paddock knows
/// (`agents::AGENTS`) gets its own preset, said in one line.
fn pick_agent_preset(a: &mut RunArgs) {
    let Some(agent) = a.argv.first().and_then(|p| agents::known(p)) else { return };
    if a.policy.policy.is_none() && !a.no_agent_preset && !a.explain {
        a.policy.policy = Some(PathBuf::from(agent.preset));
        eprintln!("{}", agent.picked_line());
    }
}

/// Under its own preset (picked, named, or extended by the policy file), a coding agent
/// starts the way it works inside paddock: its state directories and settings file made,
/// the arguments it needs added, each said in one line. Returns the agent then.
fn adapt_for_agent(a: &mut RunArgs, policy: &Policy) -> Option<&'static agents::Agent> {
    let agent = agents::known(a.argv.first()?)?;
    let preset = PathBuf::from(paddock_policy::preset_display_name(agent.preset));
    if !policy.files.contains(&preset) {
        return None;
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        match agent.make_state_dirs(Path::new(&home)) {
            Ok(lines) => lines.iter().for_each(|l| eprintln!("{}", Escaped(l))),
            Err(e) => eprintln!("paddock: warning: {}", Escaped(&e)),
        }
    }
    if let Some((args, why)) = agent.args {
        eprintln!("paddock: {why}");
        a.argv.splice(1..1, args.iter().map(|s| s.to_string()));
    }
    Some(agent)
}

/// One line on stderr when the workspace (writable under most policies) is the whole
/// home directory or the whole filesystem.
fn warn_if_whole_home(ws: &std::path::Path) {
    let home = std::env::var_os("HOME").and_then(|h| std::fs::canonicalize(h).ok());
    if ws == std::path::Path::new("/") || home.as_deref() == Some(ws) {
        eprintln!(
            "paddock: warning: the workspace is {} (the whole {}): run from a project directory or pass --workspace DIR",
            ws.display(),
            if ws == std::path::Path::new("/") { "filesystem" } else { "home" }
        );
    }
}

/// One line on stderr for each of paddock's own paths (`$STATE`, the audit log; for
/// `serve` the token file and the socket too) that lies
/// under a write grant of the policy: the view hides it and pins the directories on the way
/// (a call can neither read, replace nor rename it away), but state a call's grant covers
/// is one mistake away from the agent's reach.
pub(crate) fn warn_if_state_writable(policy: &Policy, audit_log: &Path) {
    let mut own: Vec<PathBuf> = policy.hidden_paths().to_vec();
    let log = std::path::absolute(audit_log).unwrap_or_else(|_| audit_log.to_path_buf());
    if !own.iter().any(|h| log.starts_with(h)) {
        own.push(log);
    }
    for p in own {
        if let Some(w) = policy.filesystem.write.iter().find(|w| p.starts_with(&w.path)) {
            eprintln!(
                "paddock: warning: {} (paddock's own: its state, audit log, serve token or socket) lies under the write grant {} ({}): it is hidden from the sandbox and cannot be renamed away, but keep it outside what a call may write (PADDOCK_STATE_DIR, --audit, --token-file, or --workspace DIR)",
                Escaped(&p.to_string_lossy()),
                Escaped(&w.path.to_string_lossy()),
                w.id
            );
        }
    }
}

/// `$STATE` or the audit log reached through a symlink that lies under a write grant: a
/// call could point the link elsewhere, at a state of its making, which later commands
/// would trust (the view pins the real directory, not the link). 78, naming both.
fn refuse_state_through_writable_symlink(policy: &Policy, audit_log: &Path, state: &State) -> Result<(), i32> {
    for p in state.dir_if_any()?.into_iter().chain([audit_log]) {
        let mut cur = PathBuf::new();
        for c in std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).components() {
            cur.push(c);
            if !std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            // Where the link itself lives, its directories resolved.
            let at = cur
                .parent()
                .and_then(|d| std::fs::canonicalize(d).ok())
                .zip(cur.file_name())
                .map(|(d, n)| d.join(n))
                .unwrap_or_else(|| cur.clone());
            if let Some(w) = policy.filesystem.write.iter().find(|w| at.starts_with(&w.path)) {
                return Err(fail(
                    exit::CONFIG,
                    format_args!(
                        "paddock's state {} is reached through the symlink {}, which lies under the write grant {} ({}): a call could point it elsewhere; name the directory itself (PADDOCK_STATE_DIR, --audit)",
                        Escaped(&p.to_string_lossy()),
                        Escaped(&cur.to_string_lossy()),
                        Escaped(&w.path.to_string_lossy()),
                        w.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `paddock: refused exec git push origin (pid 12) by commands.deny[0]: ...`, escaped.
fn exec_refused_line(e: &paddock_audit::Exec) -> String {
    format!(
        "paddock: refused exec {} (pid {}) by {}: {}",
        Escaped(&e.describe()),
        e.pid,
        Escaped(&e.rule),
        Escaped(&e.reason)
    )
}

/// The one line a refused connection gets on stderr (unless `--quiet`): what was asked,
/// the address, the rule (or address class, in the reason) and the policy line that would
/// allow it. Host and reason are the agent's text: escaped.
fn refused_line(e: &ConnectionEvent) -> String {
    let addr = e.address.map(|a| format!(" (address {})", a.ip())).unwrap_or_default();
    // A request the proxy could not read names no host (nor port): said as such.
    let target = match e.host.is_empty() {
        true => "(no host could be read)".to_string(),
        false => format!("{}:{}", Escaped(&e.host), e.port),
    };
    let mut line =
        format!("paddock: refused {} {target}{addr} by {}: {}", e.kind, Escaped(&e.rule), Escaped(&e.reason));
    // A policy's default refusal already says which line allows it.
    if let Some(h) = e.hint.as_ref().filter(|_| !e.reason.contains("to [network] allow")) {
        line += &format!("; {}", Escaped(h));
    }
    line
}

/// A `-v` line for every connection.
fn connection_line(e: &ConnectionEvent) -> String {
    let addr = e.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "paddock: {} {}:{} -> {addr} {} by {} ({} up, {} down)",
        e.kind,
        Escaped(&e.host),
        e.port,
        e.verdict,
        Escaped(&e.rule),
        e.bytes_up,
        e.bytes_down
    )
}

/// Whether a session's audit-crate error is about the revocation list `list` (it changed
/// between the check and the session's own read).
fn about_revocations(e: &AuditError, list: Option<&Path>) -> bool {
    match e {
        AuditError::RevocationsParse { .. } => true,
        AuditError::Io { path, .. } => Some(path.as_path()) == list,
        _ => false,
    }
}

/// The layers this machine gives a child of `policy` (its limits decide whether a cgroup
/// is needed), without running anything: the child is dropped parked before exec.
fn probe(policy: &Policy) -> EnforcementReport {
    let ws = policy.vars.workspace.clone();
    let mut spec = paddock::spec::build(
        policy,
        PathBuf::from("/bin/true"),
        vec!["true".into()],
        &ws,
        StdioMode::Capture { stdin: None },
    );
    spec.enforcement = paddock_sandbox::Enforcement::BestEffort;
    match paddock_sandbox::spawn(&spec) {
        Ok(running) => running.report().clone(),
        Err(_) => paddock_sandbox::probe(),
    }
}

/// What a person is told on stderr when a session starts, in `run`, `serve` and `mcp`
/// alike: the layers a best-effort policy goes without (as each call finds them), and the
/// secrets with no value here.
pub(crate) fn say_at_start(session: &paddock::Session) {
    say_best_effort(session);
    say_unset_secrets(&session.policy());
}

/// A best-effort policy runs without what this machine lacks: said on stderr before the
/// program runs, one line a layer short of enforced, not only in the audit record and
/// `-v`'s report; in a session (`serve`, `mcp`) once for each, not at every call.
fn say_best_effort(session: &paddock::Session) {
    if session.policy().enforcement != Enforcement::BestEffort {
        return;
    }
    let said = std::sync::Mutex::new(std::collections::HashSet::new());
    session.set_start_observer(Arc::new(move |r: &EnforcementReport| {
        let mut said = said.lock().unwrap_or_else(|p| p.into_inner());
        for l in r.layers.iter().filter(|l| l.state != LayerState::Enforced && !l.name.is_optional()) {
            let line = best_effort_line(l);
            if said.insert(line.clone()) {
                eprintln!("{line}");
            }
        }
    }));
}

/// One line on stderr for each `env:` secret whose variable is unset or empty here: the
/// session has no value for it (the child gets no variable for it).
fn say_unset_secrets(policy: &Policy) {
    for (s, var) in policy.secrets.unset_here() {
        eprintln!(
            "paddock: note: secret `{}` has no value: its source variable {} is unset (or empty) here, so nothing is injected for it",
            Escaped(&s.name),
            Escaped(var)
        );
    }
}

/// The line that says a best-effort run goes ahead with layer `l` short of enforced.
fn best_effort_line(l: &paddock_sandbox::LayerStatus) -> String {
    format!("paddock: best-effort: the {} layer is {}: {}", l.name, state_str(l.state), Escaped(&l.detail))
}

fn state_str(s: LayerState) -> &'static str {
    match s {
        LayerState::Enforced => "enforced",
        LayerState::Partial => "partial",
        LayerState::Unavailable => "unavailable",
    }
}

fn print_report(r: &EnforcementReport) {
    eprintln!("paddock: enforcement report");
    // A detail can name a file the agent created (a deny match that is a symlink): escaped.
    for l in &r.layers {
        eprintln!("  {:<13} {:<11} {}", l.name, state_str(l.state), Escaped(&l.detail));
    }
}

fn print_explain(policy: &Policy, r: &EnforcementReport) -> Result<(), i32> {
    let mut text = format!("Confinement layers on this machine for this policy (kernel {}):\n", kernel_release());
    for l in &r.layers {
        text += &format!("  {:<13} {:<11} {}\n", l.name, state_str(l.state), Escaped(&l.detail));
    }
    let l = &policy.limits;
    let needs: Vec<String> = [
        l.max_processes.map(|n| format!("max_processes = {n}")),
        l.max_memory.map(|m| format!("max_memory = {}", paddock_policy::format_size(m))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if needs.is_empty() {
        text += "cgroup: not needed by this policy (no max_processes or max_memory)\n";
    } else {
        text +=
            &format!("cgroup: needed by this policy ({}); a run creates one when it is delegated\n", needs.join(", "));
    }
    let missing: Vec<&str> =
        r.layers.iter().filter(|l| l.state == LayerState::Unavailable).map(|l| l.name.as_str()).collect();
    let partial: Vec<&str> =
        r.layers.iter().filter(|l| l.state == LayerState::Partial).map(|l| l.name.as_str()).collect();
    let lacks = landlock_lines(policy.enforcement, &mut text);
    let verdict = match (r.first_missing(), policy.enforcement) {
        (None, Enforcement::Strict) if !lacks.is_empty() => {
            format!("a run would stop with exit 71: `landlock` lacks {}", lacks.join(", "))
        }
        (None, _) if missing.is_empty() && partial.is_empty() => "every layer is available".to_string(),
        (None, _) if missing.is_empty() => format!("a run goes ahead; partly applied: {}", partial.join(", ")),
        (None, _) => format!("a run goes ahead; optional layers missing: {}", missing.join(", ")),
        (Some(l), Enforcement::Strict) => format!("a run would stop with exit 71: `{}` is unavailable", l.name),
        (Some(_), Enforcement::BestEffort) => format!("a run would go ahead without: {}", missing.join(", ")),
    };
    text += &format!("Policy enforcement: {} ({verdict})\n", policy.enforcement.as_str());
    output::print(text)
}

/// Adds to `text` what Landlock requires under `enforcement` on this kernel, for a run (its
/// own network namespace) and for a session's calls (a shared one); returns the rights a
/// run requires that this kernel lacks.
fn landlock_lines(enforcement: Enforcement, text: &mut String) -> Vec<&'static str> {
    let e = match enforcement {
        Enforcement::Strict => paddock_sandbox::Enforcement::Strict,
        Enforcement::BestEffort => paddock_sandbox::Enforcement::BestEffort,
    };
    let abi = paddock_sandbox::landlock_abi();
    *text += &format!("Landlock rights under {} (this kernel: ABI {abi}):\n", enforcement.as_str());
    let run = paddock_sandbox::landlock_needs(e, false);
    let call = paddock_sandbox::landlock_needs(e, true);
    for (r, c) in run.iter().zip(&call) {
        let level = match (r.required, c.required) {
            (true, _) => "required",
            (false, true) => "best effort for a run, required for a session's calls",
            (false, false) => "best effort",
        };
        let status = match (r.available, r.cover) {
            (true, _) => "available".to_string(),
            (false, Some(cover)) => format!("missing, covered in a run: {cover}"),
            (false, None) => "missing, not covered".to_string(),
        };
        *text += &format!("  {}: {level}; {status}\n", r.right);
    }
    if abi < paddock_sandbox::shared_netns_abi() {
        *text += &format!(
            "  a session's calls share a network namespace only from ABI {} on; here each gets a sandbox of its own\n",
            paddock_sandbox::shared_netns_abi()
        );
    }
    run.iter().filter(|n| n.required && !n.available).map(|n| n.right).collect()
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::starts_a_sandbox;

    fn starts(args: &[&str]) -> bool {
        starts_a_sandbox(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn the_helper_is_forked_ahead_only_for_a_run_that_runs_something() {
        assert!(starts(&["run", "--", "/bin/true"]));
        assert!(starts(&["-v", "run", "--workspace", "/w", "--", "git", "status"]));
        assert!(starts(&["-vv", "run", "--", "tool", "--explain", "--help"]), "the command's own arguments");
        assert!(starts(&["run"]), "clap refuses it; the helper is then dropped");
        assert!(!starts(&["run", "--explain"]));
        assert!(!starts(&["run", "--policy", "p.toml", "--help", "--", "x"]));
        assert!(!starts(&["run", "-h"]));
        assert!(!starts(&["check", "--", "run"]));
        assert!(!starts(&["--help", "serve"]));
        assert!(!starts(&["-v"]));
        assert!(!starts(&[]));
    }
}
