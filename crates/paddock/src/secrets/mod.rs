//! Brokered secrets: the child uses a credential it can never read.
//!
//! For each `[secrets.NAME]` a session makes a random placeholder
//! (`paddock-secret-NAME-<32 hex>`) and puts it in the child's `env` variable; the value
//! stays in this process ([`Secret`], read from its source by [`SourceState`]). The proxy
//! terminates TLS for the hosts that have a secret or `[[network.http]]` rules (a session
//! CA, [`CaBundle`] in the child's view) and shows each request to the session's
//! [`CallInterceptor`], which, in order:
//! 1. finds every placeholder in the request ([`inspect`]): header values, inside
//!    `Authorization: Basic` (git over HTTPS sends a URL's `user:password@` so), the path
//!    and query, the host; a placeholder anywhere but a header, or bound for a host the
//!    secret does not name, is refused as exfiltration;
//! 2. decides the request by the host's `[[network.http]]` rules;
//! 3. refuses a secret that is revoked or whose source fails;
//! 4. replaces each placeholder by the value (`header`/`format` when a header holds the
//!    placeholder alone) and lets it go.
//!
//! A tunnel that stays opaque is checked by name: a placeholder in the CONNECT target or
//! the SNI is refused as exfiltration. Every request seen in plain text is an
//! `http.request` record, every refused placeholder an `exfiltration` record.

mod bundle;
mod inspect;
mod interceptor;
mod placeholder;
mod secret;
mod source;

use std::sync::{Arc, Mutex};

use paddock_policy::Policy;

pub use bundle::{CaBundle, CA_BUNDLE_FILE};
pub(crate) use interceptor::{record_tunnel_exfiltration, CallInterceptor};
pub use secret::Secret;
pub use source::SourceError;
pub(crate) use source::SourceState;

/// One secret of a session: its name, its placeholder, and its source.
pub(crate) struct Entry {
    pub name: String,
    pub placeholder: String,
    source: Mutex<SourceState>,
}

impl Entry {
    /// The value now (cached while its source is unchanged).
    pub(crate) fn value(&self) -> Result<Arc<Secret>, SourceError> {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).get()
    }
}

/// A session's secrets: placeholders made at session start, values read from their
/// sources (`env:` at once, from the caller's environment through `var`).
pub struct Broker {
    pub(crate) entries: Vec<Entry>,
}

impl Broker {
    /// The broker for `policy`'s secrets; `None` when it has none. Placeholders come from
    /// the kernel's random source: an error there fails the session (never a guessable one).
    pub fn new(policy: &Policy, var: &dyn Fn(&str) -> Option<String>) -> std::io::Result<Option<Broker>> {
        if policy.secrets.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::new();
        for s in &policy.secrets.list {
            entries.push(Entry {
                name: s.name.clone(),
                placeholder: placeholder::generate(&s.name)?,
                source: Mutex::new(SourceState::new(&s.source, s.ttl, var)),
            });
        }
        Ok(Some(Broker { entries }))
    }

    /// The placeholder of the secret `name`.
    pub fn placeholder(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.placeholder.as_str())
    }

    /// The child's variables: each secret's `env` set to its placeholder.
    pub fn child_env(&self, policy: &Policy) -> Vec<(String, String)> {
        policy
            .secrets
            .list
            .iter()
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

/// A session's interception: its CA (key in memory only), the bundle in every view, and
/// the secrets. Made only when the policy has secrets or request rules.
pub(crate) struct SessionIntercept {
    pub broker: Option<Broker>,
    pub ca: Arc<paddock_proxy::SessionCa>,
    pub bundle: CaBundle,
}

impl SessionIntercept {
    /// `None` when `policy` intercepts nothing (no CA, no bundle, no cost); `var` reads
    /// the caller's environment for `env:` secrets.
    pub(crate) fn new(
        policy: &Policy,
        session: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SessionIntercept>, crate::SessionError> {
        if !policy.intercepts_any() {
            return Ok(None);
        }
        let broker = Broker::new(policy, var)?;
        let ca = Arc::new(paddock_proxy::SessionCa::generate()?);
        // Checked now, so a bad `upstream_ca` fails the session rather than each call.
        paddock_proxy::Intercept {
            ca: Arc::clone(&ca),
            interceptor: Arc::new(NoInterceptor),
            upstream_ca: policy.upstream_ca.clone(),
        }
        .check()?;
        let bundle = CaBundle::create(session, &paddock_proxy::ca_bundle_pem(&ca)?)?;
        Ok(Some(SessionIntercept { broker, ca, bundle }))
    }

    /// Adds the bundle's directory to `spec`'s read paths (every spec of the session, so
    /// a zygote's template and its calls agree) and the session's variables to its
    /// environment.
    pub(crate) fn adorn(&self, policy: &Policy, spec: &mut paddock_sandbox::SandboxSpec) {
        let dir = self.bundle.dir().to_path_buf();
        if !spec.read_paths.contains(&dir) {
            spec.read_paths.push(dir);
        }
        child_env(policy, self.broker.as_ref(), Some(&self.bundle), &mut spec.env);
    }
}

/// Stands in for the session's interceptor while the upstream trust is checked.
struct NoInterceptor;

impl paddock_proxy::Interceptor for NoInterceptor {
    fn intercepts(&self, _: &str, _: u16) -> bool {
        false
    }
    fn request(&self, _: &mut paddock_proxy::RequestParts<'_>) -> paddock_proxy::RequestVerdict {
        paddock_proxy::RequestVerdict::Deny(paddock_proxy::Deny {
            rule: "secrets".into(),
            reason: "not serving".into(),
            exfiltration: false,
        })
    }
    fn tunnel(&self, _: &str, _: u16, _: Option<&str>) -> Option<paddock_proxy::Deny> {
        None
    }
    fn record(&self, _: paddock_proxy::HttpEvent) {}
}

/// The variables of a child's environment with every secret's source variable removed
/// (`from = "env:VAR"`: the real value, were `[env] pass` to name it), and any variable
/// whose value holds an `env:` secret's value; the placeholders set; the CA bundle's
/// variables when interception is on.
pub(crate) fn child_env(
    policy: &Policy,
    broker: Option<&Broker>,
    bundle: Option<&CaBundle>,
    env: &mut Vec<(String, String)>,
) {
    let sources: Vec<&str> = policy
        .secrets
        .list
        .iter()
        .filter_map(|s| match &s.source {
            paddock_policy::SecretSource::Env(v) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let ours: Vec<(String, String)> = broker.map(|b| b.child_env(policy)).unwrap_or_default();
    let bundle_vars: Vec<(String, String)> = bundle.map(CaBundle::env).unwrap_or_default();
    let values = broker.map(Broker::env_values).unwrap_or_default();
    env.retain(|(k, v)| {
        let carries = values.iter().any(|s| !s.is_empty() && v.contains(s.expose()));
        if carries {
            tracing::warn!(variable = %k, "not passed to the child: it holds the value of a secret");
        }
        !carries
            && !sources.contains(&k.as_str())
            && !ours.iter().any(|(o, _)| o == k)
            && !bundle_vars.iter().any(|(o, _)| o == k)
    });
    env.extend(ours);
    env.extend(bundle_vars);
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_policy::Vars;

    #[test]
    fn the_child_env_never_carries_a_value() {
        let text = "version = 1\n[network]\nallow = [\"api.test\"]\n[secrets.gh]\nfrom = \"env:GH_SRC\"\nhosts = [\"api.test\"]\nenv = \"GITHUB_TOKEN\"\n";
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let p = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let b = Broker::new(&p, &|k| (k == "GH_SRC").then(|| "ghp_VALUE".to_string())).unwrap().unwrap();
        let mut env: Vec<(String, String)> =
            [("GH_SRC", "ghp_VALUE"), ("COPY", "x ghp_VALUE"), ("GITHUB_TOKEN", "old"), ("LANG", "C")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .to_vec();
        child_env(&p, Some(&b), None, &mut env);
        let ph = b.placeholder("gh").unwrap().to_string();
        assert_eq!(env, vec![("LANG".into(), "C".into()), ("GITHUB_TOKEN".into(), ph.clone())]);
        assert_eq!(b.expand(&p, "Bearer ${GITHUB_TOKEN} $GITHUB_TOKEN"), format!("Bearer {ph} $GITHUB_TOKEN"));
    }
}
