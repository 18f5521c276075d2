//! Brokered secrets: the child uses a credential it can never read.
//!
//! For each `[secrets.NAME]` a session makes a random placeholder
//! (`paddock-secret-NAME-<32 hex>`) and puts it in the child's `env` variable; the value
//! stays in this process ([`Secret`], read from its source by `SourceState`). The proxy
//! terminates TLS for the hosts that have a secret or `[[network.http]]` rules (a session
//! CA, [`CaBundle`] in the child's view) and shows each request to the session's
//! `CallInterceptor`, which, in order:
//! 1. finds every placeholder in the request (`inspect`): header values, inside
//!    `Authorization: Basic` (git over HTTPS sends a URL's `user:password@` so), the path
//!    and query, the host; a placeholder anywhere but a header, or bound for a host the
//!    secret does not name, is refused as exfiltration;
//! 2. decides the request by the host's `[[network.http]]` rules, and so every method and
//!    path a server may take instead of the request line's ([`override_refusal`]);
//! 3. refuses a secret that is revoked or whose source fails;
//! 4. replaces each placeholder by the value (`header`/`format` when a header holds the
//!    placeholder alone) and lets it go.
//!
//! A tunnel that stays opaque is checked by name: a placeholder in the CONNECT target or
//! the SNI is refused as exfiltration. Every request seen in plain text is an
//! `http.request` record, every refused placeholder an `exfiltration` record.

mod bundle;
mod env;
mod form;
mod inspect;
mod interceptor;
mod kept;
mod multipart;
mod overrides;
mod placeholder;
mod secret;
mod setup;
mod source;

use std::sync::{Arc, Mutex};

use paddock_policy::Policy;

pub use bundle::{CaBundle, CA_BUNDLE_FILE};
pub(crate) use interceptor::CallInterceptor;
pub use overrides::refused as override_refusal;
pub use secret::Secret;
pub(crate) use setup::SessionIntercept;
pub use source::SourceError;
pub(crate) use source::SourceState;

/// One secret of a session: its name, its placeholder, and its source.
pub(crate) struct Entry {
    pub name: String,
    pub placeholder: String,
    source: Mutex<SourceState>,
}

impl Entry {
    /// Whether its source is `env:` and the variable was unset or empty at session start.
    fn env_unset(&self) -> bool {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).is_unset_env()
    }

    /// The value now (cached while its source is unchanged).
    pub(crate) fn value(&self) -> Result<Arc<Secret>, SourceError> {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).get()
    }
}

pub use placeholder::read_seed;

/// A session's secrets: placeholders made at session start, values read from their
/// sources (`env:` at once, from the caller's environment through `var`).
pub struct Broker {
    pub(crate) entries: Vec<Entry>,
}

impl Broker {
    /// The broker for `policy`'s secrets; `None` when it has none. Placeholders come from
    /// the kernel's random source: an error there fails the session (never a guessable one).
    /// With secrets, this process's core size limit is set to 0 (soft and hard): it holds
    /// their values.
    pub fn new(policy: &Policy, var: &dyn Fn(&str) -> Option<String>) -> std::io::Result<Option<Broker>> {
        Broker::with_seed(policy, var, None)
    }

    /// [`Broker::new`], with placeholders derived from `seed` (the same for every session
    /// given the same seed; see [`read_seed`]) instead of new random ones.
    pub fn with_seed(
        policy: &Policy,
        var: &dyn Fn(&str) -> Option<String>,
        seed: Option<&[u8; 32]>,
    ) -> std::io::Result<Option<Broker>> {
        if policy.secrets.is_empty() {
            return Ok(None);
        }
        // A process that holds secret values dumps no core: a crash would write them to a
        // file, in its working directory (usually the workspace) with `core_pattern=core`.
        let none = rustix::process::Rlimit { current: Some(0), maximum: Some(0) };
        if let Err(e) = rustix::process::setrlimit(rustix::process::Resource::Core, none) {
            tracing::warn!(error = %e, "RLIMIT_CORE could not be set to 0: a crash of this process could dump the secrets it holds");
        }
        // What a call can change, which a `command:` source never touches.
        let mut writable: Vec<std::path::PathBuf> = Vec::new();
        for r in policy.view_write_rules() {
            for p in [&r.path, &r.expanded] {
                if !writable.contains(p) {
                    writable.push(p.clone());
                }
            }
        }
        let mut entries = Vec::new();
        for s in &policy.secrets.list {
            entries.push(Entry {
                name: s.name.clone(),
                placeholder: match seed {
                    Some(seed) => placeholder::derive(seed, &s.name),
                    None => placeholder::generate(&s.name)?,
                },
                source: Mutex::new(SourceState::new(&s.source, s.ttl, var).away_from(writable.clone())),
            });
        }
        Ok(Some(Broker { entries }))
    }

    /// The placeholder of the secret `name`.
    pub fn placeholder(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.placeholder.as_str())
    }

    /// The child's variables: each secret's `env` set to its placeholder, except an `env:`
    /// secret whose variable was unset at session start: it can never be sent, so the
    /// child gets no variable and its tool says it has no key (rather than failing later
    /// on a placeholder nothing replaces).
    pub fn child_env(&self, policy: &Policy) -> Vec<(String, String)> {
        policy
            .secrets
            .list
            .iter()
            .filter(|s| !self.entries.iter().any(|e| e.name == s.name && e.env_unset()))
            .filter_map(|s| Some((s.env.clone(), self.placeholder(&s.name)?.to_string())))
            .collect()
    }

    /// The values read from `env:` sources at session start: no child variable may carry
    /// one, whatever name `[env] pass` gives it.
    fn env_values(&self) -> Vec<Arc<Secret>> {
        self.entries.iter().filter_map(|e| e.source.lock().unwrap_or_else(|p| p.into_inner()).env_value()).collect()
    }

    /// `text` with `${VAR}` replaced by the placeholder of the secret whose `env` is `VAR`:
    /// how an `http_request` call's headers name a secret (its agent never sees a child's
    /// environment). Other text is left as it is.
    pub fn expand(&self, policy: &Policy, text: &str) -> String {
        let mut out = text.to_string();
        for s in &policy.secrets.list {
            if let Some(p) = self.placeholder(&s.name) {
                out = out.replace(&format!("${{{}}}", s.env), p);
            }
        }
        out
    }
}
