//! paddock's policy engine: parse, validate, compile and decide.
//!
//! A policy is a TOML file of allowlists (policy v1, see `DESIGN.md`). Loading compiles it
//! once: globs into sets, paths normalised, host patterns indexed, command patterns
//! resolved to canonical programs. Deciding is then pure and fast, and every [`Decision`]
//! names the rule that made it (`commands.allow[2]`, `network.deny[0]`, `default`).
//!
//! This crate knows no processes, sockets or clocks; it reads the filesystem only to load
//! files, normalise paths and resolve programs.
//!
//! ```
//! use paddock_policy::{Policy, Vars, Verdict};
//!
//! let vars = Vars { workspace: "/work/project".into(), home: Some("/home/dev".into()),
//!                   tmpdir: "/tmp".into(), caller_path: None };
//! let policy = Policy::from_toml_str("example.toml", r#"
//!     version = 1
//!     [filesystem]
//!     read = ["/usr"]
//!     write = ["${WORKSPACE}"]
//!     deny = ["${WORKSPACE}/**/*.pem"]
//!     [network]
//!     allow = ["*.crates.io"]
//! "#, &vars).unwrap();
//!
//! let d = policy.decide_write("/work/project/src/main.rs".as_ref());
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Allow, "filesystem.write[0]"));
//! let d = policy.decide_read("/work/project/keys/server.pem".as_ref());
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Deny, "filesystem.deny[0]"));
//! let d = policy.decide_connect("static.crates.io", 443);
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Allow, "network.allow[0]"));
//! let d = policy.decide_connect("crates.io", 443);   // `*.` never covers the apex
//! assert_eq!((d.verdict, &*d.rule), (Verdict::Deny, "default"));
//! ```
#![deny(missing_docs)]

mod approved;
mod ask;
mod audit;
mod commands;
mod compile;
mod decision;
mod error;
mod gitfile;
mod host;
mod http_rules;
mod limits;
mod load;
mod network;
mod path_limits;
mod paths;
mod policy;
mod presets;
mod raw;
mod revoke;
mod secrets;
mod show;
mod upstream;
mod vars;
mod written;

pub use approved::{approved_entry_text, parse_approved, ApprovedEntry, ApprovedList, APPROVED_HEADER};
pub use ask::{AskRules, Asked, Proposal, DEFAULT_ASK_TIMEOUT};
pub use audit::AuditSettings;
pub use commands::{resolve_program, CommandRule, CommandRules, CommandScope};
pub use decision::{Decision, Enforcement, Verdict, DENY_ALL_RULE, HIDDEN_RULE};
pub use error::{Origin, PolicyError, Problem};
pub use http_rules::{fold, HttpRule, HttpRules, RequestPattern};
pub use limits::{
    check_duration, format_size, is_credential_name, is_credential_value, parse_duration, parse_size, EnvRules, Limits,
    DEFAULT_PATH,
};
pub use network::{normalize_host, split_host_port, Host, HostError, HostRule, NetworkRules, DEFAULT_ALLOW_PORTS};
pub use paths::{normalize, DenyRule, Drift, FsRules, PathRule};
pub use policy::Policy;
pub use presets::{preset_display_name, preset_names, preset_text, DEFAULT_POLICY, DEFAULT_POLICY_NAME, PRESETS};
pub use revoke::{check_rule_id, Revocation, REVOCABLE_RULES};
pub use secrets::{
    valid_secret_name, SecretFormat, SecretRule, SecretRules, SecretSource, CA_BUNDLE_VARS, DEFAULT_SECRET_TTL,
};
pub use upstream::{parse_proxy_url, ProxyUrl, UpstreamSetting};
pub use vars::Vars;

#[cfg(test)]
mod tests;
