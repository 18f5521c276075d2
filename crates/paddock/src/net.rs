//! The egress proxy of a session: the policy as the proxy's [`HostPolicy`], one proxy task
//! per call (a one-shot sandbox has its own network namespace; the calls of a session's
//! zygote share one, each listening on a port of its own that Landlock confines it to, so
//! every connection is attributed to its call), every connection on the audit log.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use paddock_audit::{Decision as AuditDecision, Event, NetConnect};
use paddock_proxy::{ConnectionEvent, HostDecision, HostPolicy, ProxyConfig, Verdict};

use crate::session::Inner;

/// The session's current policy (revocations included) answering for the proxy.
pub(crate) struct PolicyGate(pub Arc<Inner>);

impl HostPolicy for PolicyGate {
    fn decide(&self, host: &str, port: u16) -> HostDecision {
        let d = self.0.policy().decide_connect(host, port);
        HostDecision { allow: d.is_allow(), rule: d.rule.to_string(), reason: d.reason }
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        self.0.policy().network.pinned(host)
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        self.0.policy().network.private_allowed(addr)
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
        inner: Arc<Inner>,
        listener: OwnedFd,
        call_id: String,
    ) -> std::io::Result<ProxyTask> {
        let std_listener = std::net::TcpListener::from(listener);
        std_listener.set_nonblocking(true)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sink_inner = Arc::clone(&inner);
        let session = inner.id.clone();
        let on_event = Arc::new(move |e: ConnectionEvent| record(&sink_inner, &session, &call_id, e));
        let done = rt.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("proxy listener: {e}");
                    return;
                }
            };
            let gate: Arc<dyn HostPolicy> = Arc::new(PolicyGate(inner));
            if let Err(e) = paddock_proxy::serve(listener, gate, on_event, ProxyConfig::default(), async {
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

fn record(inner: &Inner, session: &str, call_id: &str, e: ConnectionEvent) {
    let verdict = match e.verdict {
        Verdict::Allowed => AuditDecision::Allow,
        Verdict::Denied => AuditDecision::Deny,
    };
    let mut n = NetConnect::new(e.host.clone(), e.port, verdict)
        .with_session(session)
        .with_call_id(call_id)
        .with_rule(e.rule.clone())
        .with_reason(e.reason.clone())
        .with_bytes(e.bytes_up, e.bytes_down)
        .with_duration_ms(e.duration.as_millis() as u64);
    if let Some(a) = e.address {
        n = n.with_address(a.to_string());
    }
    if let Err(err) = inner.log.append(&Event::NetConnect(n)) {
        tracing::error!("audit log: net.connect not recorded: {err}");
    }
    tracing::debug!(host = %e.host, port = e.port, verdict = e.verdict.as_str(), rule = %e.rule, up = e.bytes_up, down = e.bytes_down, "connection");
    if let Some(cb) = &inner.on_connection {
        cb(&e);
    }
}
