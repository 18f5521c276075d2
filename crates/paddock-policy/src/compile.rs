//! Compiling a merged policy ([`Merged`], what `load` read): one function per table, each
//! problem collected rather than returned (so one error lists every mistake, located),
//! then the effective policy text and its hash.

use crate::audit::compile_audit;
use crate::commands::{self, CommandRules, CommandScope};
use crate::decision::Enforcement;
use crate::error::PolicyError;
use crate::error::Problems;
use crate::limits::{self, EnvRules, Limits};
use crate::load::Merged;
use crate::network::{self, NetworkRules};
use crate::paths::{self, FsRules};
use crate::policy::Policy;
use crate::revoke;
use crate::vars::Vars;
use crate::written::At;

impl Policy {
    /// Compiles `m` under `vars`; every problem of every table, or the policy.
    pub(crate) fn compile(m: Merged, vars: &Vars) -> Result<Policy, PolicyError> {
        let mut problems = Problems::default();
        let enforcement = enforcement(&m, &mut problems);
        let filesystem = filesystem(&m, vars, &mut problems);
        let env = env(&m, vars, &mut problems);
        let sandbox_path = env.sandbox_path(vars.caller_path.as_deref());
        let commands = command_rules(&m, &sandbox_path, &mut problems);
        let command_scope = command_scope(&m, &mut problems);
        let network = network_rules(&m, &mut problems);
        let limits = limit_values(&m, &mut problems);
        let ask = ask_rules(&m, &sandbox_path, &mut problems);
        let ask_timeout =
            m.ask_timeout.as_ref().and_then(|(v, o)| limits::duration(v, o, "ask_timeout", &mut problems));
        let audit = compile_audit(m.audit_export.as_ref(), &mut problems);
        let secrets = crate::secrets::table::compile(&m.secrets, vars, &network, &env, &filesystem, &mut problems);
        let http = crate::http_rules::compile(&m.net_http, &network, &mut problems);
        let upstream_ca = crate::http_rules::upstream_ca(&m.net_upstream_ca, vars, &mut problems);
        problems.into_result()?;
        // A `file:` secret is never in a view, whatever the rules grant: the child uses
        // the value through the proxy and never reads it.
        let hidden = secrets
            .list
            .iter()
            .filter_map(|s| match &s.source {
                crate::secrets::SecretSource::File(p) => Some(p.clone()),
                _ => None,
            })
            .collect();

        let mut policy = Policy {
            files: m.files,
            enforcement,
            filesystem,
            commands,
            command_scope,
            network,
            env,
            limits,
            ask,
            ask_timeout,
            approved: Default::default(),
            audit,
            secrets,
            http,
            upstream_ca,
            vars: vars.clone(),
            sandbox_path,
            effective: String::new(),
            body: String::new(),
            hash: String::new(),
            revocations: revoke::Revocations::default(),
            deny_all: None,
            hidden,
        };
        policy.render_effective(true);
        Ok(policy)
    }
}

/// `[sandbox] enforcement`; strict when absent.
fn enforcement(m: &Merged, problems: &mut Problems) -> Enforcement {
    match &m.enforcement {
        None => Enforcement::Strict,
        Some((s, o)) => match s.as_str() {
            "strict" => Enforcement::Strict,
            "best-effort" => Enforcement::BestEffort,
            other => {
                problems.push(o, format!("unknown enforcement `{other}`"), Some("write \"strict\" (refuse when a layer is missing) or \"best-effort\" (run and record what is missing)".to_string()));
                Enforcement::Strict
            }
        },
    }
}

/// `[filesystem]`: `read`, `write`, `deny` and `protect`, variables expanded.
fn filesystem(m: &Merged, vars: &Vars, problems: &mut Problems) -> FsRules {
    let paths = |list: &[At<String>], problems: &mut Problems| -> Vec<paths::RawPathEntry> {
        list.iter()
            .filter_map(|(raw, origin)| {
                match vars.expand_path(raw).and_then(|p| crate::path_limits::check(raw, &p).map(|()| p)) {
                    Ok(expanded) => {
                        Some(paths::RawPathEntry { raw: raw.clone(), expanded, origin: origin.clone(), literal: false })
                    }
                    Err((msg, hint)) => {
                        problems.push(origin, msg, Some(hint));
                        None
                    }
                }
            })
            .collect()
    };
    let (read, write, deny) = (paths(&m.fs_read, problems), paths(&m.fs_write, problems), paths(&m.fs_deny, problems));
    let protect = paths(&m.fs_protect, problems);
    FsRules::compile(read, write, deny, protect, &m.disk_files, problems)
}

/// `[env]`: `pass` and `set`.
fn env(m: &Merged, vars: &Vars, problems: &mut Problems) -> EnvRules {
    EnvRules::compile(
        m.env_pass.iter().map(|(p, o)| (p.clone(), o.clone())).collect(),
        m.env_set.values().map(|((k, ko), (v, vo))| (k.clone(), ko.clone(), v.clone(), vo.clone())).collect(),
        vars,
        problems,
    )
}

/// `[commands] scope`; `call` when absent.
fn command_scope(m: &Merged, problems: &mut Problems) -> CommandScope {
    match &m.command_scope {
        None => CommandScope::Call,
        Some((s, o)) => CommandScope::parse(s).unwrap_or_else(|| {
            problems.push(
                o,
                format!("unknown [commands] scope `{s}`"),
                Some("write \"call\" (the rules decide the call itself) or \"tree\" (every program the call starts, anywhere in its tree)".into()),
            );
            CommandScope::Call
        }),
    }
}

/// `[commands]`; `None` when no file has the table.
fn command_rules(m: &Merged, sandbox_path: &str, problems: &mut Problems) -> Option<CommandRules> {
    let cmd = |list: &[At<String>]| {
        list.iter().map(|(raw, origin)| commands::RawCommand { raw: raw.clone(), origin: origin.clone() }).collect()
    };
    m.commands.as_ref().map(|(allow, deny)| CommandRules::compile(cmd(allow), cmd(deny), sandbox_path, problems))
}

/// `[network]`: `allow`, `deny`, `allow_private`, `hosts` and `upstream_proxy`.
fn network_rules(m: &Merged, problems: &mut Problems) -> NetworkRules {
    let net = |list: &[At<String>]| {
        list.iter().map(|(raw, origin)| network::RawEntry { raw: raw.clone(), origin: origin.clone() }).collect()
    };
    let hosts = m
        .net_hosts
        .values()
        .map(|((k, ko), (v, vo))| {
            (
                network::RawEntry { raw: k.clone(), origin: ko.clone() },
                network::RawEntry { raw: v.clone(), origin: vo.clone() },
            )
        })
        .collect();
    let upstream =
        m.net_upstream.as_ref().map(|(raw, origin)| network::RawEntry { raw: raw.clone(), origin: origin.clone() });
    NetworkRules::compile(net(&m.net_allow), net(&m.net_deny), net(&m.net_private), hosts, upstream, problems)
}

/// `[limits]`, over the defaults.
fn limit_values(m: &Merged, problems: &mut Problems) -> Limits {
    let mut limits = Limits::default();
    if let Some((v, o)) = &m.timeout {
        limits.timeout = limits::duration(v, o, "timeout", problems);
    }
    if let Some((v, o)) = &m.max_output {
        limits.max_output = limits::size(v, o, "max_output", problems);
    }
    if let Some((v, o)) = &m.max_memory {
        limits.max_memory = limits::memory(v, o, problems);
    }
    if let Some((v, o)) = &m.max_file_size {
        limits.max_file_size = limits::size(v, o, "max_file_size", problems);
    }
    if let Some((v, o)) = &m.max_processes {
        limits.max_processes = limits::count(*v, o, "max_processes", problems);
    }
    if let Some((v, o)) = &m.max_open_files {
        limits.max_open_files = limits::count(*v, o, "max_open_files", problems);
    }
    limits
}

/// `ask` of `[commands]` and `[network]`.
fn ask_rules(m: &Merged, sandbox_path: &str, problems: &mut Problems) -> crate::ask::AskRules {
    let cmds =
        m.commands_ask.iter().map(|(raw, origin)| commands::RawCommand { raw: raw.clone(), origin: origin.clone() });
    let hosts = m.net_ask.iter().map(|(raw, origin)| network::RawEntry { raw: raw.clone(), origin: origin.clone() });
    crate::ask::AskRules::compile(cmds.collect(), hosts.collect(), sandbox_path, problems)
}
