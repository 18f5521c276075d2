//! Loading: reading files, following `extends` (relative to the extending file, cycles
//! detected), and merging: lists concatenate (base first), scalars and table keys override.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{LineIndex, Origin, PolicyError, Problems};
use crate::raw::{self, RawPolicy};
use crate::written::{At, IntOrString, S};

/// `allow` and `deny` lists of one table.
pub(crate) type AllowDeny = (Vec<At<String>>, Vec<At<String>>);

/// Every file of a policy merged into one, each entry remembering its origin.
#[derive(Default)]
pub(crate) struct Merged {
    pub files: Vec<PathBuf>,
    /// The files read from disk (not embedded), as named: protected in every view, so a
    /// call cannot change the policy of the next.
    pub disk_files: Vec<PathBuf>,
    pub enforcement: Option<At<String>>,
    /// `[sandbox] ask_timeout`.
    pub ask_timeout: Option<At<IntOrString>>,
    /// `[commands] ask`.
    pub commands_ask: Vec<At<String>>,
    /// `[network] ask`.
    pub net_ask: Vec<At<String>>,
    pub fs_read: Vec<At<String>>,
    pub fs_write: Vec<At<String>>,
    pub fs_deny: Vec<At<String>>,
    pub fs_protect: Vec<At<String>>,
    /// `[commands]`: `(allow, deny)`, `None` when no file has the table (a table with only
    /// `scope` does not count).
    pub commands: Option<AllowDeny>,
    /// `[commands] scope`, the last file's.
    pub command_scope: Option<At<String>>,
    pub net_allow: Vec<At<String>>,
    pub net_deny: Vec<At<String>>,
    pub net_private: Vec<At<String>>,
    pub net_hosts: BTreeMap<String, (At<String>, At<String>)>,
    pub net_upstream: Option<At<String>>,
    pub net_upstream_ca: Vec<At<String>>,
    pub net_http: Vec<crate::http_rules::MergedHttp>,
    pub secrets: BTreeMap<String, crate::secrets::table::MergedSecret>,
    pub env_pass: Vec<At<String>>,
    pub env_set: BTreeMap<String, (At<String>, At<String>)>,
    pub timeout: Option<At<IntOrString>>,
    pub max_output: Option<At<IntOrString>>,
    pub max_processes: Option<At<i64>>,
    pub max_memory: Option<At<IntOrString>>,
    pub max_open_files: Option<At<i64>>,
    pub max_file_size: Option<At<IntOrString>>,
    /// `[audit] export` (the last file that sets it wins).
    pub audit_export: Option<At<String>>,
}

struct Loader {
    merged: Merged,
    /// Canonical paths of the files being loaded, outermost first (for cycle detection).
    stack: Vec<PathBuf>,
    /// Loading an embedded preset: its `extends` entries name other embedded presets.
    embedded: bool,
}

/// Loads `path` and everything it extends.
pub(crate) fn load_file(path: &Path) -> Result<Merged, PolicyError> {
    let mut l = Loader { merged: Merged::default(), stack: Vec::new(), embedded: false };
    l.file(path, None)?;
    Ok(l.merged)
}

/// Loads a policy given as text; `extends` entries resolve relative to `base_dir`.
pub(crate) fn load_text(name: &Path, text: &str, base_dir: &Path) -> Result<Merged, PolicyError> {
    let mut l = Loader { merged: Merged::default(), stack: Vec::new(), embedded: false };
    l.text(name, text, base_dir, PathBuf::from(name))?;
    Ok(l.merged)
}

/// Loads the embedded preset `name` ([`crate::presets::PRESETS`]); its `extends` entries
/// (`"default.toml"`) name other embedded presets, never a file.
pub(crate) fn load_preset(name: &str) -> Result<Merged, PolicyError> {
    let mut l = Loader { merged: Merged::default(), stack: Vec::new(), embedded: true };
    let display = PathBuf::from(crate::presets::preset_display_name(name));
    let text = crate::presets::preset_text(name)
        .ok_or_else(|| PolicyError::file(&display, format!("no embedded preset `{name}`"), Some(presets_hint())))?;
    l.text(&display, text, Path::new("/"), display.clone())?;
    Ok(l.merged)
}

/// `the embedded presets are: default, coding-agent, ...`.
pub(crate) fn presets_hint() -> String {
    format!("the embedded presets are: {}", crate::presets::preset_names().collect::<Vec<_>>().join(", "))
}

/// Largest policy file read: `extends = ["/dev/zero"]` must fail, not fill memory.
const MAX_POLICY_BYTES: u64 = 1 << 20;

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    // A FIFO would block the open until a writer comes (a policy, or an `extends` entry
    // in the workspace the agent writes, replaced by one hangs paddock): regular files
    // only. (A swap between this check and the open is not covered.)
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("not a regular file (a FIFO, socket, device or directory): not a policy"));
    }
    let mut text = Vec::new();
    std::fs::File::open(path)?.take(MAX_POLICY_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_POLICY_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_POLICY_BYTES} bytes: not a policy")));
    }
    Ok(text)
}

/// The name a `[network.hosts]` key pins, as the proxy looks it up: `A.TEST.` is `a.test`.
/// A key that does not normalise keeps its text (compiling reports it).
fn pin_key(raw: &str) -> String {
    crate::network::normalize_host(raw).map(|h| h.to_string()).unwrap_or_else(|_| raw.to_ascii_lowercase())
}

/// Two `[network.hosts]` keys of one file that name the same host (`a.test`, `A.TEST.`):
/// one would silently replace the other.
fn duplicate_pins(raw: &RawPolicy, at: &dyn Fn(std::ops::Range<usize>) -> Origin, problems: &mut Problems) {
    let Some(n) = &raw.network else { return };
    let mut seen: BTreeMap<String, (&str, Origin)> = BTreeMap::new();
    // In file order: the later key is the one reported.
    let mut keys: Vec<_> = n.hosts.keys().collect();
    keys.sort_by_key(|k| k.span().start);
    for k in keys {
        let origin = at(k.span());
        match seen.get(&pin_key(k.get_ref())) {
            Some((first, o)) => problems.push(
                &origin,
                format!(
                    "`{}` in [network.hosts] names the same host as `{first}` (at {}:{}): one would replace the other",
                    k.get_ref(),
                    o.line,
                    o.col
                ),
                Some("host names ignore case and a trailing dot: keep one pin for the name".to_string()),
            ),
            None => {
                seen.insert(pin_key(k.get_ref()), (k.get_ref().as_str(), origin));
            }
        }
    }
}

/// The file's text, or an error at its first byte that is not UTF-8.
fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, PolicyError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let before = std::str::from_utf8(&e.as_bytes()[..valid]).unwrap_or_default();
        let origin = Origin::at(&Arc::new(path.to_path_buf()), before, valid);
        let byte = e.as_bytes()[valid];
        PolicyError::one(
            origin,
            format!("byte 0x{byte:02x} is not UTF-8 text (a policy is UTF-8)"),
            Some("save the file as UTF-8; a non-ASCII path or name is written in UTF-8 too".into()),
        )
    })
}

impl Loader {
    fn file(&mut self, path: &Path, from: Option<&Origin>) -> Result<(), PolicyError> {
        let bytes = read_capped(path).map_err(|e| {
            let msg = format!("cannot read policy `{}`: {e}", path.display());
            let hint = Some("check the path; `extends` entries are relative to the file that names them".to_string());
            match from {
                Some(o) => PolicyError::one(o.clone(), msg, hint),
                None => PolicyError::file(path, msg, hint),
            }
        })?;
        let text = utf8(path, bytes)?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.merged.disk_files.push(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        self.text(path, &text, &dir, canonical)
    }

    // Long on purpose: the version check, then each `extends` (resolved and recursed into
    // with this file on the include stack, which every early return pops), then this
    // file's tables; the stack's push and pops are easiest to check in one function.
    fn text(&mut self, name: &Path, text: &str, base_dir: &Path, canonical: PathBuf) -> Result<(), PolicyError> {
        let file = Arc::new(name.to_path_buf());
        let raw = raw::parse(&file, text)?;
        let lines = LineIndex::new(&file, text);
        let at = |span: std::ops::Range<usize>| lines.at(span.start);
        let mut problems = Problems::default();
        match &raw.version {
            None => problems.push(
                &lines.at(0),
                "missing `version`",
                Some("put `version = 1` at the top of the file".to_string()),
            ),
            Some(v) if *v.get_ref() != 1 => problems.push(
                &at(v.span()),
                format!("unsupported policy version {}", v.get_ref()),
                Some("this paddock reads policy version 1: `version = 1`".to_string()),
            ),
            Some(_) => {}
        }
        duplicate_pins(&raw, &at, &mut problems);
        problems.into_result()?;

        self.stack.push(canonical);
        for e in &raw.extends {
            let origin = at(e.span());
            let rel = Path::new(e.get_ref());
            if e.get_ref().trim().is_empty() {
                self.stack.pop();
                return Err(PolicyError::one(
                    origin,
                    "empty `extends` entry",
                    Some("name a policy file, e.g. \"base.toml\"".into()),
                ));
            }
            // A bare preset name (`extends = ["coding-agent"]`) always names the embedded
            // preset: a file beside the policy (a workspace the agent writes) cannot stand in
            // for it. `./coding-agent` names the file. An embedded preset names presets only.
            let raw_name = e.get_ref().as_str();
            let bare = !raw_name.contains('/') && !raw_name.ends_with(".toml");
            let preset = self.embedded || (bare && crate::presets::preset_text(raw_name).is_some());
            let (target, target_canon) = if preset {
                let name = e.get_ref().strip_suffix(".toml").unwrap_or(e.get_ref());
                if crate::presets::preset_text(name).is_none() {
                    self.stack.pop();
                    return Err(PolicyError::one(
                        origin,
                        format!(
                            "`extends` of an embedded preset names `{}`, which is not an embedded preset",
                            e.get_ref()
                        ),
                        Some(presets_hint()),
                    ));
                }
                let p = PathBuf::from(crate::presets::preset_display_name(name));
                (p.clone(), p)
            } else {
                let target = base_dir.join(rel);
                let canon = std::fs::canonicalize(&target).unwrap_or_else(|_| target.clone());
                (target, canon)
            };
            if self.stack.contains(&target_canon) {
                let chain: Vec<String> = self
                    .stack
                    .iter()
                    .map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default())
                    .chain(std::iter::once(rel.display().to_string()))
                    .collect();
                self.stack.pop();
                return Err(PolicyError::one(
                    origin,
                    format!("`extends` cycle: {}", chain.join(" -> ")),
                    Some("a policy cannot extend itself, directly or through other files".into()),
                ));
            }
            let loaded = if preset {
                let name = e.get_ref().strip_suffix(".toml").unwrap_or(e.get_ref());
                let outer = std::mem::replace(&mut self.embedded, true);
                let r = self.text(
                    &target,
                    crate::presets::preset_text(name).unwrap_or_default(),
                    Path::new("/"),
                    target_canon.clone(),
                );
                self.embedded = outer;
                r
            } else if bare && std::fs::symlink_metadata(&target).is_err() {
                // `extends = ["nosuchpreset"]`: a typo of a preset as likely as of a file.
                self.stack.pop();
                return Err(PolicyError::one(
                    origin,
                    format!("`extends` names `{raw_name}`: no such file, and not an embedded preset"),
                    Some(format!("{}; a policy file is named by its path, e.g. \"./{raw_name}.toml\"", presets_hint())),
                ));
            } else {
                self.file(&target, Some(&origin))
            };
            if let Err(err) = loaded {
                self.stack.pop();
                return Err(err);
            }
        }
        self.stack.pop();
        self.merged.files.push(name.to_path_buf());
        self.overlay(raw, &at);
        Ok(())
    }

    // Long on purpose: one block per table of the file, in the order of `RawPolicy`, each
    // a few lines of the same shape (a later file's value replaces, its lists extend).
    fn overlay(&mut self, raw: RawPolicy, at: &dyn Fn(std::ops::Range<usize>) -> Origin) {
        let m = &mut self.merged;
        let list = |v: Vec<S<String>>| -> Vec<At<String>> {
            v.into_iter()
                .map(|s| {
                    let o = at(s.span());
                    (s.into_inner(), o)
                })
                .collect()
        };
        if let Some(s) = raw.sandbox {
            if let Some(e) = s.enforcement {
                let o = at(e.span());
                m.enforcement = Some((e.into_inner(), o));
            }
            if let Some(t) = s.ask_timeout {
                let o = at(t.span());
                m.ask_timeout = Some((t.into_inner(), o));
            }
        }
        if let Some(f) = raw.filesystem {
            m.fs_read.extend(list(f.read));
            m.fs_write.extend(list(f.write));
            m.fs_deny.extend(list(f.deny));
            m.fs_protect.extend(list(f.protect));
        }
        if let Some(c) = raw.commands {
            let c = c.into_inner();
            let rules = c.allow.is_some() || c.deny.is_some() || !c.ask.is_empty() || c.scope.is_none();
            if let Some(s) = c.scope {
                let o = at(s.span());
                m.command_scope = Some((s.into_inner(), o));
            }
            if rules {
                let entry = m.commands.get_or_insert_with(Default::default);
                entry.0.extend(list(c.allow.unwrap_or_default()));
                entry.1.extend(list(c.deny.unwrap_or_default()));
            }
            m.commands_ask.extend(list(c.ask));
        }
        if let Some(n) = raw.network {
            m.net_allow.extend(list(n.allow));
            m.net_deny.extend(list(n.deny));
            m.net_ask.extend(list(n.ask));
            m.net_private.extend(list(n.allow_private));
            m.net_upstream_ca.extend(list(n.upstream_ca));
            crate::http_rules::merge(n.http, at, &mut m.net_http);
            if let Some(u) = n.upstream_proxy {
                let o = at(u.span());
                m.net_upstream = Some((u.into_inner(), o));
            }
            for (k, v) in n.hosts {
                let (ko, vo) = (at(k.span()), at(v.span()));
                // The name the pin applies to: a later file's `A.test.` replaces `a.test`.
                let key = pin_key(k.get_ref());
                m.net_hosts.insert(key, ((k.into_inner(), ko), (v.into_inner(), vo)));
            }
        }
        if let Some(a) = raw.audit {
            if let Some(u) = a.export {
                let o = at(u.span());
                m.audit_export = Some((u.into_inner(), o));
            }
        }
        crate::secrets::table::merge(raw.secrets, at, &mut m.secrets);
        if let Some(e) = raw.env {
            m.env_pass.extend(list(e.pass));
            for (k, v) in e.set {
                let (ko, vo) = (at(k.span()), at(v.span()));
                m.env_set.insert(k.get_ref().clone(), ((k.into_inner(), ko), (v.into_inner(), vo)));
            }
        }
        if let Some(l) = raw.limits {
            macro_rules! over {
                ($field:ident) => {
                    if let Some(v) = l.$field {
                        let o = at(v.span());
                        m.$field = Some((v.into_inner(), o));
                    }
                };
            }
            over!(timeout);
            over!(max_output);
            over!(max_processes);
            over!(max_memory);
            over!(max_open_files);
            over!(max_file_size);
        }
    }
}
