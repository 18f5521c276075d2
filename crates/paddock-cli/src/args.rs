//! The command line (clap).

use std::path::PathBuf;

use clap::{ArgMatches, Args, FromArgMatches, Parser, Subcommand};

/// paddock: a local-first sandbox for the tool calls of AI agents.
#[derive(Parser, Debug)]
#[command(name = "paddock", version, about = "paddock: a local-first sandbox for the tool calls of AI agents", long_about = None, propagate_version = true)]
pub struct Cli {
    /// More detail on stderr (-v info, -vv debug); PADDOCK_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// A subcommand's arguments (or its own subcommands), added to the command line's
/// definition only when that subcommand is the one given (`Command::defer`): a run parses
/// its own arguments without building every other subcommand's first.
#[derive(Debug)]
pub struct Deferred<T>(pub T);

impl<T: FromArgMatches> FromArgMatches for Deferred<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Deferred)
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
}

impl<T: Args> Args for Deferred<T> {
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keeping_about(c, T::augment_args))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(|c| keeping_about(c, T::augment_args_for_update))
    }
}

/// Runs `augment` on `cmd` (when the subcommand is built: after its variant's doc set its
/// description) and puts that description back: the arguments' own doc must not replace
/// it, as it does not when the arguments come first.
fn keeping_about(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    let (about, long) = (cmd.get_about().cloned(), cmd.get_long_about().cloned());
    let cmd = augment(cmd);
    let cmd = match about {
        Some(a) => cmd.about(a),
        None => cmd.about(None),
    };
    match long {
        Some(l) => cmd.long_about(l),
        None => cmd.long_about(None),
    }
}

impl<T: Subcommand> Subcommand for Deferred<T> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_subcommands)
    }
    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        cmd.defer(T::augment_subcommands_for_update)
    }
    fn has_subcommand(name: &str) -> bool {
        T::has_subcommand(name)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command (or a whole agent) confined by the policy.
    Run(Deferred<RunArgs>),
    /// Decide a call against the policy without running anything (exit 0 allow, 77 deny).
    Check(Deferred<CheckArgs>),
    /// Lint or show policies.
    Policy {
        #[command(subcommand)]
        command: Deferred<PolicyCommand>,
    },
    /// Verify or review the audit log.
    Audit {
        #[command(subcommand)]
        command: Deferred<AuditCommand>,
    },
    /// Revoke a grant: every later decision denies what SELECTOR covers.
    Revoke(Deferred<RevokeArgs>),
    /// Withdraw a revocation.
    Unrevoke(Deferred<UnrevokeArgs>),
    /// Serve the supervisor's HTTP API on loopback or a unix socket (bearer token).
    Serve(Deferred<ServeArgs>),
    /// Serve the supervisor's tools over MCP on stdin/stdout.
    Mcp(Deferred<McpArgs>),
    /// List the open questions (calls and connections waiting for a person's answer).
    Approvals(Deferred<ApprovalsArgs>),
    /// Allow what question ID asks for (exit 64 for an unknown id).
    Approve(Deferred<ApproveArgs>),
    /// Refuse what question ID asks for (exit 64 for an unknown id).
    Deny(Deferred<DenyArgs>),
}

#[derive(Args, Debug)]
pub struct ApprovalsArgs {
    /// Keep watching: print each new question as it is asked.
    #[arg(long)]
    pub watch: bool,
    /// Print {"approvals":[...]} as JSON (with --watch: one question per line).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The question's id (`paddock approvals` lists them).
    #[arg(value_name = "ID")]
    pub id: String,
    /// once (this call or connection), session (the rest of the asking session), always
    /// (appended to $STATE/approved.toml).
    #[arg(long, value_name = "SCOPE", default_value = "once", value_parser = ["once", "session", "always"], conflicts_with_all = ["session", "always"])]
    pub scope: String,
    /// Same as --scope session.
    #[arg(long)]
    pub session: bool,
    /// Same as --scope always.
    #[arg(long, conflicts_with = "session")]
    pub always: bool,
}

#[derive(Args, Debug)]
pub struct DenyArgs {
    /// The question's id (`paddock approvals` lists them).
    #[arg(value_name = "ID")]
    pub id: String,
    /// once (this call or connection), always (appended to $STATE/approved.toml as a deny entry).
    #[arg(long, value_name = "SCOPE", default_value = "once", value_parser = ["once", "always"], conflicts_with = "always")]
    pub scope: String,
    /// Same as --scope always.
    #[arg(long)]
    pub always: bool,
}

#[derive(Args, Debug)]
pub struct SuggestArgs {
    /// Only denials newer than this: a duration (`24h`, `7days`) or a date (RFC 3339).
    #[arg(long, value_name = "DUR")]
    pub since: Option<String>,
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Where several subdomains of one domain were denied (on the same port), suggest one
    /// wildcard entry (`*.example.com`) for them instead of each host.
    #[arg(long)]
    pub widen: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Loopback address to listen on: 127.x.x.x:PORT, [::1]:PORT or localhost:PORT (port 0
    /// picks a free port; the address is printed on stderr). Anything else is refused.
    #[arg(long, value_name = "ADDR", default_value = paddock::api::DEFAULT_LISTEN, conflicts_with = "socket")]
    pub listen: String,
    /// Listen on a unix socket instead (created 0600).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Bearer token file (default: $STATE/token, created 0600 with 256 random bits if absent).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Largest request body (`1MiB`, `65536`); larger bodies get 413.
    #[arg(long, value_name = "SIZE", default_value = "1MiB")]
    pub max_body: String,
    /// Calls that run at once (default: 2 x cores; at least 1); more wait in the queue.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_concurrent: Option<usize>,
    /// Calls that may wait for a slot; more get 503.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_queue: usize,
    /// On SIGTERM/SIGINT, how long running calls may take to finish before they are killed.
    #[arg(long, value_name = "DUR", default_value = "10s")]
    pub shutdown_grace: String,
}

/// A count that must be at least 1 (`--max-concurrent 0` would run no call).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 would run no call)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: expected a whole number, at least 1")),
    }
}

#[derive(Args, Debug)]
pub struct McpArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain: exit 0 intact, 1 broken (naming the first bad line).
    Verify {
        /// Audit log file (default: $STATE/audit.jsonl).
        #[arg(long, value_name = "FILE")]
        audit: Option<PathBuf>,
    },
    /// What each grant was used for, grants never used, denied attempts, connections.
    Review(ReviewArgs),
    /// Ship the audit log to an OpenTelemetry collector (OTLP/HTTP), write it as OCSF
    /// JSON, or show how far each collector has got.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["otlp", "format", "status"])))]
pub struct ExportArgs {
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Send the records the collector does not have yet (OTLP/HTTP JSON logs) to
    /// http://HOST[:PORT][/PATH] (default port 4318, path /v1/logs).
    #[arg(long, value_name = "URL", conflicts_with_all = ["format", "status"])]
    pub otlp: Option<String>,
    /// How long to keep retrying a collector that does not answer before giving up (the
    /// records stay pending for the next export).
    #[arg(long, value_name = "DUR", default_value = "30s", requires = "otlp")]
    pub retry_for: String,
    /// Write every record (in the window) in this format on stdout or to --output.
    #[arg(long, value_enum, conflicts_with = "status")]
    pub format: Option<ExportFormat>,
    /// With --format: the file to write (default: stdout).
    #[arg(long, value_name = "FILE", requires = "format")]
    pub output: Option<PathBuf>,
    /// With --format: only records newer than this (`24h`, an RFC 3339 date).
    #[arg(long, value_name = "DUR", requires = "format")]
    pub since: Option<String>,
    /// Per collector: records delivered and pending (the spool), last success, last error.
    #[arg(long)]
    pub status: bool,
    /// Print --status or the export's report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The workspace named in the records' resource (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

/// What `audit export --format` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// OCSF 1.1 events, one JSON object per line.
    Ocsf,
    /// OTLP/HTTP JSON `ExportLogsServiceRequest` bodies, one per line (512 records each).
    Otlp,
}

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Only records newer than this: a duration (`24h`, `7days`) or a date (RFC 3339).
    #[arg(long, value_name = "DUR")]
    pub since: Option<String>,
    /// Print the review as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the review as one self-contained HTML page (no script, nothing fetched).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Exit 77 if anything in the window was denied (a call or a connection): for CI.
    #[arg(long)]
    pub fail_on_deny: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["selector", "list"])))]
pub struct RevokeArgs {
    /// command:PATTERN, path:PATH, network:HOST[:PORT], rule:RULE_ID or secret:NAME
    #[arg(value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Why (kept in the revocation list and the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// List the revocations in force.
    #[arg(long, conflicts_with_all = ["selector", "reason"])]
    pub list: bool,
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UnrevokeArgs {
    /// The selector, as given to `paddock revoke`.
    #[arg(value_name = "SELECTOR")]
    pub selector: String,
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
}

/// `--policy`'s help, naming every embedded preset.
fn policy_help() -> String {
    let presets: Vec<&str> = paddock_policy::preset_names().collect();
    format!(
        "Policy file, or the name of an embedded preset: {} (default: the embedded default policy)",
        presets.join(", ")
    )
}

/// Where the policy and the workspace come from.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    // The help lists the presets from `paddock_policy::PRESETS`, the one list of them.
    #[arg(long, value_name = "FILE|PRESET", help = policy_help())]
    pub policy: Option<PathBuf>,
    /// The workspace, `${WORKSPACE}` in the policy (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Audit log file (default: $STATE/audit.jsonl).
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Print which confinement layers this machine offers, and what the policy needs of
    /// them, and exit.
    #[arg(long)]
    pub explain: bool,
    /// Say nothing on stderr of refused connections (they are on the audit log either way).
    #[arg(short, long)]
    pub quiet: bool,
    /// Without --policy, a coding agent paddock knows (claude, codex, gemini) gets its own
    /// preset; with this flag it gets the embedded default like any program.
    #[arg(long)]
    pub no_agent_preset: bool,
    /// The command: -- PROGRAM [ARGS...]
    #[arg(last = true, value_name = "PROGRAM", required_unless_present = "explain")]
    pub argv: Vec<String>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["read", "write", "connect", "http", "argv"])))]
pub struct CheckArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print {"decision","rule","reason"} as JSON.
    #[arg(long)]
    pub json: bool,
    /// Check reading this path.
    #[arg(long, value_name = "PATH")]
    pub read: Option<PathBuf>,
    /// Check writing this path.
    #[arg(long, value_name = "PATH")]
    pub write: Option<PathBuf>,
    /// Check a connection to HOST[:PORT] (port 443 when omitted).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub connect: Option<String>,
    /// Check an HTTP request, 'METHOD URL' (GET when only a URL): the connection, the
    /// host's [[network.http]] rules, and which secret would be injected. Sends nothing.
    #[arg(long, value_name = "'METHOD URL'")]
    pub http: Option<String>,
    /// The command to check: -- PROGRAM [ARGS...]
    #[arg(last = true, value_name = "PROGRAM")]
    pub argv: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate policy files (exit 78 if any is invalid, with FILE:LINE:COL errors).
    Lint {
        /// Policy files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also resolve the allowed exact host names (DNS) and warn about those that resolve
        /// to an address class `allow_private` does not cover. Without it lint is offline.
        #[arg(long)]
        resolve: bool,
    },
    /// Print the effective merged policy as TOML.
    Show(PolicyArgs),
    /// The narrowest policy lines that would have allowed the denied calls and
    /// connections in the audit log, for a person to review and paste.
    Suggest(SuggestArgs),
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command, Deferred};

    #[test]
    fn the_command_line_with_its_deferred_subcommands_is_consistent() {
        // Builds every subcommand, the deferred ones included, and checks clap's rules.
        Cli::command().debug_assert();
    }

    #[test]
    fn a_deferred_subcommand_keeps_its_variants_description() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let about = sub.get_about().map(ToString::to_string).expect("every subcommand is described");
            let e = Cli::try_parse_from(["paddock", sub.get_name(), "--help"]).expect_err("help");
            assert_eq!(e.kind(), ErrorKind::DisplayHelp);
            let help = e.to_string();
            assert_eq!(help.lines().next(), Some(about.as_str()), "{}", sub.get_name());
        }
    }

    #[test]
    fn a_deferred_subcommand_parses_its_arguments_and_the_global_flag() {
        let cli = Cli::try_parse_from(["paddock", "run", "-v", "--workspace", "/w", "--", "git", "status"]).unwrap();
        assert_eq!(cli.verbose, 1);
        let Command::Run(Deferred(a)) = cli.command else { panic!("not run: {:?}", cli.command) };
        assert_eq!(a.argv, ["git", "status"]);
        assert!(Cli::try_parse_from(["paddock", "run", "--no-such-flag"]).is_err());
    }
}
