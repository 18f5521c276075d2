//! The egress proxy of a session: the policy as the proxy's [`HostPolicy`], one proxy task
//! per call (a one-shot sandbox has its own network namespace; the calls of a session's
//! zygote share one, each listening on a port of its own that Landlock confines it to, so
//! every connection is attributed to its call), every connection on the audit log.
//!
//! The same translation of the policy ([`PolicyHosts`]) answers [`decide_connection`]
//! (`paddock check --connect`, `Session::check` of an `http_request`) through the proxy's
//! own [`paddock_proxy::preview`]: one piece of code for one decision. The refusals of an
//! `http_request` call are kept for its outcome, which reports the proxy's verdict rather
//! than the 403 its child saw.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use paddock_audit::{Decision as AuditDecision, Event, NetConnect};
use paddock_policy::{Decision, Policy, UpstreamSetting, Verdict as PolicyVerdict};
use paddock_proxy::{ConnectionEvent, HostDecision, HostPolicy, Preview, ProxyConfig, Target, Upstream, Verdict};

/// What a session's proxy needs of its session (implemented by the session): the proxy
/// depends on this, not on the session's internals, so the files import one way.
pub(crate) trait ProxyHost: Send + Sync + 'static {
    /// The session's id, for the audit records.
    fn session_id(&self) -> &str;
    /// The current policy (revocations included); may read and lock the revocation list.
    fn policy(&self) -> Arc<Policy>;
    /// Appends `event` to the session's audit log.
    fn log(&self, event: &Event) -> Result<(), paddock_audit::AuditError>;
    /// Tells the embedder's connection observer, if any.
    fn observe(&self, e: &ConnectionEvent);
    /// The decision on a connection an `ask` entry holds: a person's answer, or a denial
    /// when no one can be asked (blocks until then).
    fn ask_connect(&self, host: &str, port: u16) -> paddock_policy::Decision;
}

/// A policy answering for the egress proxy: the one translation of `[network]` into the
/// proxy's questions, used by every session's proxy and by `paddock check --connect`
/// (through [`paddock_proxy::preview`]), so a check gives the proxy's own verdict.
pub struct PolicyHosts(pub Arc<Policy>);

impl HostPolicy for PolicyHosts {
    fn decide(&self, host: &str, port: u16) -> HostDecision {
        let d = self.0.decide_connect(host, port);
        match d.verdict {
            PolicyVerdict::Ask => HostDecision::ask(d.rule.to_string(), d.reason),
            _ => HostDecision { allow: d.is_allow(), rule: d.rule.to_string(), reason: d.reason, ask: false },
        }
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        self.0.network.pinned(host)
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        self.0.network.private_allowed(addr)
    }
}

/// The proxy's own verdict on a connection, found without dialling: [`decide_connection`].
#[derive(Debug, Clone)]
pub struct ConnectionCheck {
    /// The verdict and the rule the proxy would give: the policy's by name, or
    /// `network.allow_private` for a name that resolves to an address class the policy
    /// does not cover (its reason then ends with the policy line that would allow it). A
    /// name that does not resolve keeps the policy's verdict, and its reason says so.
    pub decision: Decision,
    /// The address the proxy would dial, or the one it would refuse.
    pub address: Option<SocketAddr>,
    /// For a denial: the policy line that would allow it.
    pub hint: Option<String>,
    /// Allowed by name, but the name does not resolve (the resolver's error).
    pub unresolved: Option<String>,
}

/// Decides a connection to `target` under `policy` as the session's proxy would: the
/// policy by name, then the address (the `[network.hosts]` pin, else DNS), then the
/// address class against `allow_private` — the proxy's own code
/// ([`paddock_proxy::preview_with`]), with the upstream proxy of `[network]
/// upstream_proxy` (a name it carries is not resolved here). Dials nothing.
pub fn decide_connection(policy: &Arc<Policy>, target: &Target) -> ConnectionCheck {
    let d = |h: HostDecision| Decision {
        verdict: if h.allow { PolicyVerdict::Allow } else { PolicyVerdict::Deny },
        rule: Arc::from(h.rule),
        reason: h.reason,
    };
    let upstream = upstream_from_process(&policy.network.upstream_proxy);
    match paddock_proxy::preview_with(&PolicyHosts(Arc::clone(policy)), &upstream, target, true) {
        Preview::Denied { decision, hint } => {
            ConnectionCheck { decision: d(decision), address: None, hint: Some(hint), unresolved: None }
        }
        Preview::Unresolved { decision, error } => {
            let mut decision = d(decision);
            decision.reason =
                format!("{}; but the name does not resolve ({error}): a connection would fail", decision.reason);
            ConnectionCheck { decision, address: None, hint: None, unresolved: Some(error.to_string()) }
        }
        Preview::Refused { refusal, .. } => ConnectionCheck {
            decision: Decision {
                verdict: PolicyVerdict::Deny,
                rule: Arc::from(refusal.rule),
                reason: format!("{}; {}", refusal.reason, refusal.hint),
            },
            address: Some(refusal.address),
            hint: Some(refusal.hint),
            unresolved: None,
        },
        Preview::ViaUpstream { decision, via } => {
            let mut decision = d(decision);
            decision.reason = format!(
                "{}; through the upstream proxy {via}, which resolves the name and checks its address",
                decision.reason
            );
            ConnectionCheck { decision, address: None, hint: None, unresolved: None }
        }
        Preview::UpstreamUnusable { decision, why } => {
            let mut decision = d(decision);
            decision.reason = format!("{}; but a connection would fail: {why}", decision.reason);
            ConnectionCheck { decision, address: None, hint: None, unresolved: Some(why) }
        }
        Preview::Allowed { decision, addresses } => {
            ConnectionCheck { decision: d(decision), address: addresses.first().copied(), hint: None, unresolved: None }
        }
    }
}

/// The upstream HTTP proxy of a policy's `[network] upstream_proxy`: `"env"` reads the
/// supervisor's own environment (the caller's `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, either
/// case) through `var` — never the child's, which only ever sees paddock's proxy.
pub fn upstream_for(setting: &UpstreamSetting, var: impl Fn(&str) -> Option<String>) -> Upstream {
    match setting {
        UpstreamSetting::Env => Upstream::from_env(var),
        UpstreamSetting::None => Upstream::none(),
        UpstreamSetting::Url(url) => Upstream::explicit(url.clone()),
    }
}

/// [`upstream_for`] with the supervisor's process environment.
pub fn upstream_from_process(setting: &UpstreamSetting) -> Upstream {
    upstream_for(setting, |k| std::env::var(k).ok())
}

/// Warnings for `policy lint` about `[network]`: an allowed name pinned by
/// `[network.hosts]` to an address class that `allow_private` does not cover (every
/// connection to it would be refused with 403), naming the exact entry to add. With
/// `resolve`, also the allowed exact names (not pinned, not wildcards) that DNS resolves
/// to such an address; lint stays offline without it. Names that do not resolve are not
/// reported (behind an upstream proxy that is normal).
pub fn lint_network(policy: &Policy, resolve: bool) -> Vec<(paddock_policy::Origin, String)> {
    let net = &policy.network;
    let mut ports: Vec<u16> = paddock_policy::DEFAULT_ALLOW_PORTS.to_vec();
    ports.extend(net.allow.iter().filter_map(|r| r.port));
    ports.sort_unstable();
    ports.dedup();
    let allowed_port = |name: &str| ports.iter().copied().find(|&p| policy.decide_connect(name, p).is_allow());
    let refused = |ip: IpAddr| {
        let ip = ip.to_canonical();
        let class = paddock_proxy::classify(ip);
        (!class.is_public() && !net.private_allowed(ip)).then_some((ip, class))
    };
    let entry = |ip: IpAddr| match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    };
    let mut out = Vec::new();
    for (name, &ip) in &net.hosts {
        let (Some(port), Some((ip, class))) = (allowed_port(name), refused(ip)) else { continue };
        let Some(origin) = net.host_origins.get(name) else { continue };
        // `0.0.0.0`, broadcast and multicast serve nobody: the pin is the mistake.
        let fix = if class.is_unreachable() {
            "pin the name to the address of the server it should reach".to_string()
        } else {
            format!("add \"{}\" to [network] allow_private", entry(ip))
        };
        out.push((
            origin.clone(),
            format!(
                "`{name}` is allowed but pinned to {ip}, {} {class} address that allow_private does not cover: every connection to it (e.g. port {port}) will be refused; {fix}",
                class.article()
            ),
        ));
    }
    if resolve {
        for r in net.allow.iter().filter(|r| !r.wildcard) {
            let paddock_policy::Host::Name(name) = &r.host else { continue };
            if net.hosts.contains_key(name) {
                continue;
            }
            let port = r.port.unwrap_or(443);
            let addrs = match std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port)) {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(%name, error = %e, "lint: name does not resolve");
                    continue;
                }
            };
            let mut seen = Vec::new();
            for sa in addrs {
                if let Some((ip, class)) = refused(sa.ip()) {
                    if !seen.contains(&ip) {
                        seen.push(ip);
                        out.push((
                            r.origin.clone(),
                            format!(
                                "`{name}` is allowed but resolves (here, now) to {ip}, {} {class} address that allow_private does not cover: a direct connection to it will be refused; add \"{}\" to [network] allow_private (or pin the name in [network.hosts])",
                                class.article(),
                                entry(ip)
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// The session's current policy (revocations included) answering for the proxy.
pub(crate) struct PolicyGate(pub Arc<dyn ProxyHost>);

impl PolicyGate {
    /// The current policy. Noticing a changed revocation list reads (and may lock) a file,
    /// so it runs as blocking work: see [`blocking`].
    fn policy(&self) -> PolicyHosts {
        PolicyHosts(blocking(|| self.0.policy()))
    }
}

impl HostPolicy for PolicyGate {
    fn decide(&self, host: &str, port: u16) -> HostDecision {
        self.policy().decide(host, port)
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        self.policy().pinned(host)
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        self.policy().private_allowed(addr)
    }
    fn recheck_answer(&self, host: &str, port: u16, rule: &str) -> Option<HostDecision> {
        // The answer as a decision, decided again under the revocations in force (a
        // standing answer's `approved[N]` revoked: found by an attack, the connection it
        // let through kept streaming after `revoke rule:approved[N]`).
        let policy = self.policy().0;
        let h = paddock_policy::normalize_host(host).ok()?;
        let answer = paddock_policy::Decision {
            verdict: paddock_policy::Verdict::Allow,
            rule: rule.into(),
            reason: String::new(),
        };
        let d = policy.recheck(answer, &paddock_policy::Asked::Network { host: &h, port });
        (!d.is_allow()).then(|| HostDecision { allow: false, rule: d.rule.to_string(), reason: d.reason, ask: false })
    }
    fn ask(&self, host: &str, port: u16) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostDecision> + Send>> {
        // The wait is a person's: on a blocking thread, the proxy's other connections go on.
        let (inner, host) = (Arc::clone(&self.0), host.to_string());
        Box::pin(async move {
            let asked = tokio::task::spawn_blocking(move || inner.ask_connect(&host, port)).await;
            match asked {
                Ok(d) => HostDecision { allow: d.is_allow(), rule: d.rule.to_string(), reason: d.reason, ask: false },
                Err(e) => HostDecision::deny("default", format!("the question could not be asked: {e}")),
            }
        })
    }
}

/// Runs file I/O (the revocation list, the audit log's `flock` and write) that the proxy
/// needs answered synchronously, from inside its tasks: on a worker of a multi-thread
/// runtime, `block_in_place` first hands the worker's other tasks (other connections) to
/// another thread, so a slow disk or a held lock stalls this connection only. The proxy's
/// `HostPolicy` and event sink are synchronous and the event must be on the log before
/// [`ProxyTask::stop`] returns, so the work cannot be deferred to `spawn_blocking`.
/// Elsewhere (a current-thread runtime, where `block_in_place` is not allowed, or no
/// runtime) it runs in place.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// Refused connections of the calls that asked to hear of them (`http_request`, whose
/// outcome is the proxy's refusal rather than the 403 its child saw), by call id.
static REFUSALS: Mutex<Option<HashMap<String, Vec<ConnectionEvent>>>> = Mutex::new(None);

/// From now on, refused connections of `call_id` are kept for [`take_refusals`].
pub(crate) fn watch_refusals(call_id: &str) {
    let mut m = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
    m.get_or_insert_with(HashMap::new).insert(call_id.to_string(), Vec::new());
}

/// The refused connections of `call_id` (after its proxy stopped), and stops keeping them.
pub(crate) fn take_refusals(call_id: &str) -> Vec<ConnectionEvent> {
    let mut m = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
    m.as_mut().and_then(|m| m.remove(call_id)).unwrap_or_default()
}

pub(crate) fn keep_refusal(call_id: &str, e: &ConnectionEvent) {
    let mut m = REFUSALS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = m.as_mut().and_then(|m| m.get_mut(call_id)) {
        v.push(e.clone());
    }
}

/// A running proxy for one sandbox; dropping it (or [`ProxyTask::stop`]) ends it.
pub(crate) struct ProxyTask {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl ProxyTask {
    /// Serves `listener` (a socket in the sandbox's namespace) on `rt`.
    pub(crate) fn start(
        rt: &tokio::runtime::Handle,
        inner: Arc<dyn ProxyHost>,
        listener: OwnedFd,
        call_id: String,
        intercept: Option<paddock_proxy::Intercept>,
    ) -> std::io::Result<ProxyTask> {
        let std_listener = std::net::TcpListener::from(listener);
        std_listener.set_nonblocking(true)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sink_inner = Arc::clone(&inner);
        let session = inner.session_id().to_string();
        let on_event = Arc::new(move |e: ConnectionEvent| record(&*sink_inner, &session, &call_id, e));
        let policy = inner.policy();
        let cfg = ProxyConfig {
            upstream: upstream_from_process(&policy.network.upstream_proxy),
            intercept,
            ..ProxyConfig::default()
        };
        let done = rt.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("proxy listener: {e}");
                    return;
                }
            };
            let gate: Arc<dyn HostPolicy> = Arc::new(PolicyGate(inner));
            if let Err(e) = paddock_proxy::serve(listener, gate, on_event, cfg, async {
                let _ = rx.await;
            })
            .await
            {
                tracing::error!("proxy: {e}");
            }
        });
        Ok(ProxyTask { stop: Some(tx), done: Some(done) })
    }

    /// Stops accepting, ends open tunnels, and waits until their events are recorded.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

impl Drop for ProxyTask {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn record(inner: &dyn ProxyHost, session: &str, call_id: &str, e: ConnectionEvent) {
    let verdict = match e.verdict {
        Verdict::Allowed => AuditDecision::Allow,
        Verdict::Denied => AuditDecision::Deny,
    };
    let mut n = NetConnect::new(e.host.clone(), e.port, verdict)
        .with_session(session)
        .with_call_id(call_id)
        .with_rule(e.rule.clone())
        .with_reason(match &e.via {
            Some(via) if !e.reason.contains(via.as_str()) => format!("{} (via upstream proxy {via})", e.reason),
            _ => e.reason.clone(),
        })
        .with_bytes(e.bytes_up, e.bytes_down)
        .with_duration_ms(e.duration.as_millis() as u64);
    if let Some(a) = e.address {
        n = n.with_address(a.to_string());
    }
    if let Err(err) = blocking(|| inner.log(&Event::NetConnect(n))) {
        tracing::error!("audit log: net.connect not recorded: {err}");
    }
    if e.verdict == Verdict::Denied {
        keep_refusal(call_id, &e);
    }
    record_tunnel_exfiltration(inner, call_id, &e);
    tracing::debug!(host = %e.host, port = e.port, verdict = e.verdict.as_str(), rule = %e.rule, up = e.bytes_up, down = e.bytes_down, "connection");
    inner.observe(&e);
}

/// A tunnel refused because a secret's placeholder was in its name (CONNECT target or
/// SNI): an `exfiltration` record besides its `net.connect`. A plain-HTTP request refused
/// so has its record from the interceptor already.
fn record_tunnel_exfiltration(inner: &dyn ProxyHost, call_id: &str, e: &ConnectionEvent) {
    if e.kind == paddock_proxy::Kind::Http {
        return;
    }
    let Some(name) = e.rule.strip_prefix("secrets.") else { return };
    let x = paddock_audit::Exfiltration::new(name, e.host.clone(), e.port, e.rule.clone(), e.reason.clone())
        .with_call(inner.session_id().to_string(), call_id.to_string());
    if let Err(err) = blocking(|| inner.log(&Event::Exfiltration(x))) {
        tracing::error!("audit log: exfiltration not recorded: {err}");
    }
}
