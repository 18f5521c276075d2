//! [`SessionIntercept`]: what a session sets up when its policy has secrets or request
//! rules: the broker, the session CA, the CA bundle; and how every spec of the session gets
//! them ([`SessionIntercept::adorn`]).

use std::sync::Arc;

use paddock_policy::Policy;

use super::env::child_env;
use super::{Broker, CaBundle};

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
        seed: Option<[u8; 32]>,
    ) -> Result<Option<SessionIntercept>, crate::SessionError> {
        if !policy.intercepts_any() {
            return Ok(None);
        }
        let broker = Broker::with_seed(policy, var, seed.as_ref())?;
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
