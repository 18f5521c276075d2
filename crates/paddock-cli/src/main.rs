//! `paddock`: a local-first sandbox for the tool calls of AI agents.
//!
//! The binary is a thin adapter: it parses the command line, loads the policy and hands the
//! work to the library crates. Exit codes follow DESIGN.md: the child's own; 64 usage;
//! 71 a required sandbox layer is unavailable; 77 denied or revoked; 78 invalid policy;
//! 124 timeout; 125 paddock's own failure; 128+N killed by signal N.

mod agents;
mod approvals_cmd;
mod args;
mod audit_cmd;
mod check;
mod check_http;
mod exit;
mod export_cmd;
mod mcp_cmd;
mod output;
mod policy_cmd;
mod prompt;
mod revoke_cmd;
mod run;
mod serve;
mod setup;
mod state;
mod suggest_cmd;

use clap::Parser;

use args::{AuditCommand, Cli, Command, Deferred, PolicyCommand};

fn main() {
    // The sandbox re-executes this binary as its single-threaded helper: that must be
    // the first thing that happens, before any thread or allocation-heavy setup.
    paddock_sandbox::helper_main_if_requested();
    // `paddock run`: the sandbox helper is forked before the command line is parsed, so
    // that it enters its namespaces on the other core meanwhile (the longer of the two
    // sides of a run's start).
    let helper = run::helper_ahead();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            drop(helper);
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::OK,
                _ => exit::USAGE,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    setup::init_logging(cli.verbose);
    let started = std::time::Instant::now();
    let code = match cli.command {
        Command::Run(Deferred(a)) => {
            let code = run::run(a, cli.verbose, helper);
            paddock_sandbox::phase("run, from the command line parsed to the exit", started);
            code
        }
        Command::Check(Deferred(a)) => check::run(a),
        Command::Policy { command: Deferred(PolicyCommand::Lint { files, resolve }) } => {
            policy_cmd::lint(&files, resolve)
        }
        Command::Policy { command: Deferred(PolicyCommand::Show(a)) } => policy_cmd::show(a),
        Command::Audit { command: Deferred(AuditCommand::Verify { audit }) } => audit_cmd::verify(audit.as_deref()),
        Command::Audit { command: Deferred(AuditCommand::Review(a)) } => audit_cmd::review(a),
        Command::Audit { command: Deferred(AuditCommand::Export(a)) } => export_cmd::export(a),
        Command::Revoke(Deferred(a)) => revoke_cmd::revoke(a),
        Command::Unrevoke(Deferred(a)) => revoke_cmd::unrevoke(a),
        Command::Serve(Deferred(a)) => serve::serve(a),
        Command::Mcp(Deferred(a)) => mcp_cmd::mcp(a),
        Command::Approvals(Deferred(a)) => approvals_cmd::list(a),
        Command::Approve(Deferred(a)) => approvals_cmd::approve(a),
        Command::Deny(Deferred(a)) => approvals_cmd::deny(a),
        Command::Policy { command: Deferred(PolicyCommand::Suggest(a)) } => suggest_cmd::suggest(a),
    };
    std::process::exit(code);
}
