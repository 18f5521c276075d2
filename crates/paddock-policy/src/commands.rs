//! `[commands]`: which programs a call may start, with which arguments.
//!
//! A pattern is shell-words tokens. The first names a program (a bare name, looked up in
//! the sandbox PATH, or an absolute path); pattern and call match when both resolve to the
//! same canonical absolute path. Each later token is a glob for exactly one argument; a
//! final `**` matches zero or more remaining arguments. `deny` beats `allow`.

mod resolved;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use globset::{Glob, GlobBuilder, GlobMatcher};

use crate::decision::Decision;
use crate::error::{Origin, Problems};

/// `[commands] scope`: what the rules decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommandScope {
    /// The call itself (what the agent asks to start); what it starts in turn is confined
    /// by the other rules, and recorded.
    #[default]
    Call,
    /// Every exec anywhere in the call's tree: the program by the kernel (Landlock execute
    /// rights), its arguments by the supervisor.
    Tree,
}

impl CommandScope {
    /// `"call"` or `"tree"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandScope::Call => "call",
            CommandScope::Tree => "tree",
        }
    }

    /// From the policy's text; `None` for anything else.
    pub fn parse(s: &str) -> Option<CommandScope> {
        match s {
            "call" => Some(CommandScope::Call),
            "tree" => Some(CommandScope::Tree),
            _ => None,
        }
    }
}

/// One compiled command pattern.
#[derive(Debug, Clone)]
pub struct CommandRule {
    /// `commands.allow[0]` and so on.
    pub id: Arc<str>,
    /// As written.
    pub raw: String,
    /// The program as written: a bare name or an absolute path.
    pub program: String,
    /// Where it was written.
    pub origin: Origin,
    args: Vec<ArgMatcher>,
    rest: bool,
}

/// One argument token: compared as a string when it has no glob syntax. A glob is parsed
/// (and checked) when the policy loads and compiled into its regex on its first use: a
/// policy's many patterns would otherwise cost every start their compilation.
#[derive(Debug, Clone)]
enum ArgMatcher {
    Literal(String),
    Glob(Glob, std::sync::OnceLock<GlobMatcher>),
}

impl ArgMatcher {
    fn is_match(&self, arg: &str) -> bool {
        match self {
            ArgMatcher::Literal(s) => s == arg,
            ArgMatcher::Glob(g, m) => m.get_or_init(|| g.compile_matcher()).is_match(arg),
        }
    }
}

impl CommandRule {
    fn matches_args(&self, args: &[String]) -> bool {
        if args.len() < self.args.len() || (!self.rest && args.len() != self.args.len()) {
            return false;
        }
        self.args.iter().zip(args).all(|(g, a)| g.is_match(a))
    }

    fn first_literal(&self) -> Option<&str> {
        match self.args.first() {
            Some(ArgMatcher::Literal(s)) => Some(s),
            _ => None,
        }
    }
}

/// The rules of one program, indexed by a literal first argument, so that a decision
/// looks at the few patterns that can match rather than at all of them.
#[derive(Debug, Clone, Default)]
struct ProgramIndex {
    by_first: HashMap<String, Vec<usize>>,
    others: Vec<usize>,
}

impl ProgramIndex {
    fn add(&mut self, rule: &CommandRule, i: usize) {
        match rule.first_literal() {
            Some(first) => self.by_first.entry(first.to_string()).or_default().push(i),
            None => self.others.push(i),
        }
    }

    /// The lowest index among the rules that match `args`.
    fn first_match(&self, rules: &[CommandRule], args: &[String]) -> Option<usize> {
        let find = |list: &[usize]| list.iter().copied().find(|&i| rules[i].matches_args(args));
        let a = args.first().and_then(|f| self.by_first.get(f.as_str())).and_then(|l| find(l));
        let b = find(&self.others);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The compiled `[commands]` table.
///
/// Its programs are resolved when it compiles and again whenever what that resolution read
/// has changed (see `resolved.rs`): a table that outlives its load (a session's) matches a
/// program made, shadowed or re-linked since, as a fresh load would.
#[derive(Debug, Default)]
pub struct CommandRules {
    /// `allow` in order.
    pub allow: Vec<CommandRule>,
    /// `deny` in order.
    pub deny: Vec<CommandRule>,
    path_var: String,
    /// The distinct programs as written, and each rule's (allow, then deny) among them.
    tokens: Vec<String>,
    token_of: Vec<usize>,
    resolved: RwLock<Arc<resolved::Resolution>>,
}

impl Clone for CommandRules {
    fn clone(&self) -> CommandRules {
        CommandRules {
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            path_var: self.path_var.clone(),
            tokens: self.tokens.clone(),
            token_of: self.token_of.clone(),
            resolved: RwLock::new(self.current()),
        }
    }
}

/// Resolves a program the way the sandbox will: a name with a slash as given (relative to
/// `cwd`), a bare name through `path_var`; then to its canonical path. `None` when no
/// executable regular file is found.
pub fn resolve_program(program: &str, path_var: &str, cwd: &Path) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = cwd.join(program);
        return executable(&p).then(|| std::fs::canonicalize(&p).ok()).flatten();
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty() && Path::new(d).is_absolute())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
        .and_then(|p| std::fs::canonicalize(p).ok())
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub(crate) struct RawCommand {
    pub raw: String,
    pub origin: Origin,
}

const PATTERN_HINT: &str =
    "a pattern is a program (bare name or absolute path) then one glob per argument, e.g. \"git log **\" or \"ls *\"";

// Long on purpose: the checks of one pattern, in order (split into words, the program,
// each argument glob), each pushing its own located problem; they share the entry's
// origin and the partial result, which separate functions would have to pass around.
fn compile_one(kind: &str, i: usize, e: RawCommand, problems: &mut Problems) -> Option<CommandRule> {
    let tokens = match shell_words::split(&e.raw) {
        Ok(t) => t,
        Err(err) => {
            problems.push(
                &e.origin,
                format!("malformed command pattern `{}`: {err}", e.raw),
                Some(PATTERN_HINT.into()),
            );
            return None;
        }
    };
    let Some((program, args)) = tokens.split_first() else {
        problems.push(&e.origin, "empty command pattern", Some(PATTERN_HINT.into()));
        return None;
    };
    if program.is_empty() || program.contains(['*', '?', '[', ']', '{', '}']) {
        problems.push(
            &e.origin,
            format!("bad program `{program}` in `{}`", e.raw),
            Some("the program is a bare name or an absolute path, without globs; globs are for arguments".into()),
        );
        return None;
    }
    if program.contains('/') && !program.starts_with('/') {
        problems.push(
            &e.origin,
            format!("relative program path `{program}` in `{}`", e.raw),
            Some("write a bare name (looked up in the sandbox PATH) or an absolute path".into()),
        );
        return None;
    }
    let mut globs = Vec::with_capacity(args.len());
    let mut rest = false;
    for (j, tok) in args.iter().enumerate() {
        if tok == "**" {
            if j + 1 != args.len() {
                problems.push(
                    &e.origin,
                    format!("`**` must be the last token in `{}`", e.raw),
                    Some("a final `**` matches any remaining arguments; use `*` for exactly one argument".into()),
                );
                return None;
            }
            rest = true;
            continue;
        }
        if tok.contains("**") {
            problems.push(
                &e.origin,
                format!("`**` inside the argument `{tok}` of `{}`", e.raw),
                Some("inside an argument use `*`; `**` alone, last, matches any remaining arguments".into()),
            );
            return None;
        }
        if !tok.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            globs.push(ArgMatcher::Literal(tok.clone()));
            continue;
        }
        match GlobBuilder::new(tok).literal_separator(false).backslash_escape(true).build() {
            Ok(g) => globs.push(ArgMatcher::Glob(g, std::sync::OnceLock::new())),
            Err(err) => {
                problems.push(
                    &e.origin,
                    format!("bad glob `{tok}` in `{}`: {}", e.raw, err.kind()),
                    Some("`*` any characters, `?` one, `[abc]` a class, `{a,b}` alternatives".into()),
                );
                return None;
            }
        }
    }
    Some(CommandRule {
        id: format!("commands.{kind}[{i}]").into(),
        raw: e.raw,
        program: program.clone(),
        origin: e.origin,
        args: globs,
        rest,
    })
}

/// `Ok` when `raw` is a command pattern a policy or the approved list takes, else its
/// problem: a proposal is checked before it is offered or kept, so that an entry paddock
/// writes never stops its own loader (a program whose name holds a glob character cannot
/// be named by any pattern).
pub(crate) fn check_pattern(raw: &str) -> Result<(), crate::PolicyError> {
    let file = Arc::new(PathBuf::from("(the proposed entry)"));
    let mut problems = Problems::default();
    compile_one("allow", 0, RawCommand { raw: raw.to_string(), origin: Origin::at(&file, raw, 0) }, &mut problems);
    problems.into_result()
}

impl CommandRules {
    pub(crate) fn compile(
        allow: Vec<RawCommand>,
        deny: Vec<RawCommand>,
        path_var: &str,
        problems: &mut Problems,
    ) -> CommandRules {
        let mut rules = CommandRules { path_var: path_var.to_string(), ..CommandRules::default() };
        for (i, e) in allow.into_iter().enumerate() {
            rules.allow.extend(compile_one("allow", i, e, problems));
        }
        for (i, e) in deny.into_iter().enumerate() {
            rules.deny.extend(compile_one("deny", i, e, problems));
        }
        for r in rules.allow.iter().chain(&rules.deny) {
            let k = match rules.tokens.iter().position(|t| *t == r.program) {
                Some(k) => k,
                None => {
                    rules.tokens.push(r.program.clone());
                    rules.tokens.len() - 1
                }
            };
            rules.token_of.push(k);
        }
        rules.resolved = RwLock::new(Arc::new(rules.resolve()));
        rules
    }

    /// Resolves every program now and indexes the rules by it.
    fn resolve(&self) -> resolved::Resolution {
        let mut r = resolved::Resolution::new(&self.tokens, &self.path_var);
        let all = self.allow.iter().map(|x| (0, x)).chain(self.deny.iter().map(|x| (1, x)));
        let mut n = [0, 0];
        for ((side, rule), &k) in all.zip(&self.token_of) {
            if let Some(p) = &r.programs[k] {
                r.by_program[side].entry(p.clone()).or_default().add(rule, n[side]);
            }
            n[side] += 1;
        }
        r
    }

    /// The resolution of now: the last one while what it read holds, else a new one.
    fn current(&self) -> Arc<resolved::Resolution> {
        let last = self.resolved.read().unwrap_or_else(|e| e.into_inner()).clone();
        if self.tokens.is_empty() || last.holds() {
            return last;
        }
        let now = Arc::new(self.resolve());
        *self.resolved.write().unwrap_or_else(|e| e.into_inner()) = now.clone();
        now
    }

    /// Patterns whose program does not resolve now (they match nothing): worth a lint warning.
    pub fn unresolved(&self) -> Vec<&CommandRule> {
        let now = self.current();
        let all = self.allow.iter().chain(&self.deny);
        all.zip(&self.token_of).filter(|(_, &k)| now.programs[k].is_none()).map(|(r, _)| r).collect()
    }

    /// The programs the allow patterns name now.
    pub fn allowed_programs(&self) -> Vec<PathBuf> {
        let now = self.current();
        self.token_of[..self.allow.len()].iter().filter_map(|&k| now.programs[k].clone()).collect()
    }

    /// Decides a call of `program` (already resolved, `None` if it did not) with `args`.
    pub fn decide(&self, program: Option<&Path>, shown: &str, args: &[String]) -> Decision {
        let Some(program) = program else {
            return Decision::deny_default(format!(
                "`{shown}` does not resolve to an executable in the sandbox PATH, so no [commands] pattern matches it"
            ));
        };
        let now = self.current();
        let [allow_by_program, deny_by_program] = &now.by_program;
        if let Some(i) = deny_by_program.get(program).and_then(|x| x.first_match(&self.deny, args)) {
            let r = &self.deny[i];
            return Decision::deny(&r.id, format!("`{}` is denied by `{}`", shown, r.raw));
        }
        if let Some(i) = allow_by_program.get(program).and_then(|x| x.first_match(&self.allow, args)) {
            let r = &self.allow[i];
            return Decision::allow(&r.id, format!("`{}` is allowed by `{}`", shown, r.raw));
        }
        let hint = if allow_by_program.contains_key(program) {
            "its arguments match no allow pattern of that program"
        } else {
            "no allow pattern names that program"
        };
        Decision::deny_default(format!("`{shown}` ({}) is not in [commands] allow: {hint}", program.display()))
    }
}

/// Joins argv for messages, quoting where needed.
pub(crate) fn shown(argv: &[String]) -> String {
    shell_words::join(argv)
}
