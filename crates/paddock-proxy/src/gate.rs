//! Decision plumbing: policy → resolution → address vetting → dial.
//!
//! Applied to every parsed [`Target`], in this order:
//! 1. [`Gate::decide`]: the [`HostPolicy`] decides the normalised host and port.
//! 2. [`Gate::dial`]: resolve (an IP literal is its own address; a name uses
//!    the policy's pin first, else one DNS lookup), canonicalise IPv4-mapped
//!    addresses, classify each address and drop those that are not public
//!    unless `private_allowed` covers them, then dial the vetted addresses in
//!    order until one answers. The socket returned is connected to a vetted
//!    address: there is no second lookup.
//!
//! Every failure is a [`Refusal`] that carries the status, the rule and a
//! message for the client that says how to allow the connection.
//!
//! [`preview`](crate::preview()) (in `preview.rs`) runs the same steps without dialling
//! (`paddock check --connect`): one piece of code for one decision, whether a connection
//! is made or asked about.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::addr::{classify, AddrClass};
use crate::host::Host;
use crate::target::Target;
use crate::upstream::{Failure, Slot, Upstream, UpstreamProxy};
use crate::{HostDecision, HostPolicy};

/// Rule id used when an address class is refused.
pub(crate) const RULE_PRIVATE: &str = "network.allow_private";

/// A refusal: what the client is told and what the event records.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    /// The deciding rule (policy or proxy).
    pub rule: Box<str>,
    /// Why, for the event.
    pub reason: String,
    /// The policy line that would allow the connection, for a refusal by the policy or the
    /// address class.
    pub hint: Option<Box<str>>,
    /// True when the policy allowed the host and the failure came later
    /// (unreachable upstream, timeout): the event's verdict stays Allowed.
    pub allowed: bool,
    /// The address refused or last tried.
    pub address: Option<SocketAddr>,
    /// The text body for the client.
    pub message: Box<str>,
    /// The upstream proxy it was to go through.
    pub via: Option<Arc<UpstreamProxy>>,
}

/// A dialled, vetted upstream.
pub(crate) struct Admitted {
    pub stream: TcpStream,
    /// The address dialled: the target's, or the upstream proxy's.
    pub address: SocketAddr,
    /// The upstream proxy the stream goes to (a tunnel through it for [`Mode::Tunnel`],
    /// a connection to it for [`Mode::Http`]).
    pub via: Option<Arc<UpstreamProxy>>,
}

/// What the caller of [`Gate::dial`] does with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Relays bytes (CONNECT, SOCKS5): through an upstream, a CONNECT tunnel.
    Tunnel,
    /// Sends a plain HTTP request: to an upstream, in absolute form.
    Http,
}

/// The gate for one proxy instance.
pub(crate) struct Gate {
    pub policy: Arc<dyn HostPolicy>,
    pub connect_timeout: Duration,
    pub upstream: Upstream,
}

/// How a refused target was asked for, for messages: `CONNECT a.test:443`, `GET a.test:80`.
pub(crate) fn describe(method: &str, target: &Target) -> String {
    format!("{method} {}", target.authority())
}

/// What to add to `[network] allow` to allow `target`: an entry without a port
/// covers 80 and 443.
fn allow_entry(target: &Target) -> String {
    let host = target.host.as_policy_str();
    match target.port {
        80 | 443 => host,
        p => target.host.authority(p),
    }
}

/// The policy line that would allow `target`, which the policy's decision `d` denied.
pub fn deny_hint(d: &HostDecision, target: &Target) -> String {
    let entry = allow_entry(target);
    if d.rule.starts_with("network.deny") {
        format!("to allow it remove the matching entry from [network] deny and add \"{entry}\" to [network] allow")
    } else if d.reason.contains("revoked") {
        format!("the grant was revoked; to allow it again add \"{entry}\" to [network] allow in a new policy")
    } else {
        format!("to allow it add \"{entry}\" to [network] allow")
    }
}

/// A refusal by address class: the host was allowed by name, every address it resolves
/// to is non-public and no `allow_private` CIDR covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRefusal {
    /// The (first) address refused, with the port asked for.
    pub address: SocketAddr,
    /// Its class.
    pub class: AddrClass,
    /// The rule: `network.allow_private`.
    pub rule: &'static str,
    /// Why, in words.
    pub reason: String,
    /// The policy line that would allow it: `add "127.0.0.1/32" to [network] allow_private`.
    pub hint: String,
}

/// Keeps the addresses of `addrs` that are public or covered by `allow_private`, as the
/// proxy dials them (in order, with `port`); all refused is an [`AddressRefusal`].
/// `addrs` is never empty (a resolution gives at least one address).
pub fn vet(
    policy: &dyn HostPolicy,
    host: &Host,
    port: u16,
    addrs: &[IpAddr],
) -> Result<Vec<SocketAddr>, AddressRefusal> {
    let mut refused: Option<(IpAddr, AddrClass)> = None;
    let mut ok = Vec::with_capacity(addrs.len());
    for &ip in addrs {
        let class = classify(ip);
        if class.is_public() || policy.private_allowed(ip) {
            ok.push(SocketAddr::new(ip, port));
        } else {
            tracing::debug!(%ip, %class, %host, "address refused");
            refused.get_or_insert((ip, class));
        }
    }
    if !ok.is_empty() {
        return Ok(ok);
    }
    let (ip, class) = refused.expect("addrs is never empty");
    let cidr = match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    };
    let reason = match host {
        Host::Ip(_) => format!("{ip} is {} {class} address, which allow_private does not cover", class.article()),
        Host::Name(n) => {
            format!("{n} resolves to {ip}, {} {class} address, which allow_private does not cover", class.article())
        }
    };
    Err(AddressRefusal {
        address: SocketAddr::new(ip, port),
        class,
        rule: RULE_PRIVATE,
        reason,
        hint: match class.is_unreachable() {
            true => {
                format!("{ip} names no host a connection can reach: pin the name to the address of the server meant")
            }
            false => format!("to allow it add \"{cidr}\" to [network] allow_private"),
        },
    })
}

/// The addresses of `host` that need no lookup: an IP literal, or the policy's pin.
pub(crate) fn without_lookup(policy: &dyn HostPolicy, host: &Host) -> Option<IpAddr> {
    match host {
        Host::Ip(ip) => Some(*ip),
        Host::Name(name) => policy.pinned(name),
    }
}

/// Canonical (IPv4-mapped → IPv4), deduplicated, in order.
pub(crate) fn candidates(raw: impl IntoIterator<Item = IpAddr>) -> Result<Vec<IpAddr>, io::Error> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in raw {
        let ip = ip.to_canonical();
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no addresses"));
    }
    Ok(out)
}

impl Gate {
    /// Step 1: the policy's decision (a person's answer, held for, when it asks), or a
    /// 403 refusal naming the rule.
    pub(crate) async fn decide(&self, method: &str, target: &Target) -> Result<HostDecision, Refusal> {
        let host = target.host.as_policy_str();
        let mut d = self.policy.decide(&host, target.port);
        if d.ask {
            d = self.policy.ask(&host, target.port).await;
            d.ask = false;
        }
        if d.allow {
            return Ok(d);
        }
        let hint = deny_hint(&d, target);
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!("paddock: {} refused by {} ({:?}); {hint}\n", describe(method, target), d.rule, d.reason)
                .into(),
            rule: d.rule.into(),
            reason: d.reason,
            hint: Some(hint.into()),
            allowed: false,
            address: None,
            via: None,
        })
    }

    /// Step 2: resolve, vet and dial — or hand the target to the upstream proxy that
    /// routes it. `decision` is the allowing decision from step 1.
    // Long on purpose: one deadline covers resolution and every connect attempt, and each
    // failure is turned into its refusal where it happens; split apart, the deadline and
    // the order of the attempts would be spread over several functions.
    pub(crate) async fn dial(
        &self,
        method: &str,
        target: &Target,
        decision: &HostDecision,
        mode: Mode,
    ) -> Result<Admitted, Refusal> {
        let deadline = Instant::now() + self.connect_timeout;
        let what = describe(method, target);
        let upstream_failure = |status: StatusCode, address: Option<SocketAddr>, why: String| Refusal {
            status,
            message: format!("paddock: {what}: {why}\n").into(),
            rule: decision.rule.as_str().into(),
            reason: why,
            hint: None,
            allowed: true,
            address,
            via: None,
        };
        let pinned = match &target.host {
            Host::Name(n) => self.policy.pinned(n),
            Host::Ip(_) => None,
        };
        match self.upstream.route(target, mode == Mode::Tunnel, pinned) {
            None | Some(Slot::None) => {}
            Some(Slot::Broken(why)) => return Err(upstream_failure(StatusCode::BAD_GATEWAY, None, why.to_string())),
            Some(Slot::Proxy(proxy)) => {
                if let Host::Ip(ip) = &target.host {
                    // The address is known: the SSRF guard applies here too.
                    self.vet(method, target, &[ip.to_canonical()])?;
                }
                let dialled = match mode {
                    Mode::Tunnel => proxy.tunnel(target, deadline).await,
                    Mode::Http => proxy.dial(deadline).await,
                };
                let via = Some(Arc::clone(proxy));
                return match dialled {
                    Ok((stream, address)) => Ok(Admitted { stream, address, via: Some(Arc::clone(proxy)) }),
                    Err(Failure::Timeout(why)) => {
                        Err(Refusal { via, ..upstream_failure(StatusCode::GATEWAY_TIMEOUT, None, why) })
                    }
                    Err(Failure::Failed(why)) => {
                        Err(Refusal { via, ..upstream_failure(StatusCode::BAD_GATEWAY, None, why) })
                    }
                };
            }
        }
        let addrs = match self.resolve(target, deadline).await {
            Ok(a) => a,
            Err(Resolve::Timeout) => {
                return Err(upstream_failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    None,
                    format!("name lookup timed out after {:?}", self.connect_timeout),
                ))
            }
            Err(Resolve::Failed(e)) => {
                return Err(upstream_failure(StatusCode::BAD_GATEWAY, None, format!("cannot resolve host: {e}")))
            }
        };
        let vetted = self.vet(method, target, &addrs)?;
        let mut last: Option<(SocketAddr, io::Error)> = None;
        for sa in vetted {
            match timeout_at(deadline, TcpStream::connect(sa)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(Admitted { stream, address: sa, via: None });
                }
                Ok(Err(e)) => {
                    tracing::debug!(%sa, error = %e, "upstream connect failed");
                    last = Some((sa, e));
                }
                Err(_) => {
                    return Err(upstream_failure(
                        StatusCode::GATEWAY_TIMEOUT,
                        Some(sa),
                        format!("timed out connecting to {sa} after {:?}", self.connect_timeout),
                    ))
                }
            }
        }
        let (sa, e) = last.expect("vet returns at least one address");
        Err(upstream_failure(StatusCode::BAD_GATEWAY, Some(sa), format!("cannot connect to {sa}: {e}")))
    }

    /// The candidate addresses, in order, deduplicated and canonical.
    async fn resolve(&self, target: &Target, deadline: Instant) -> Result<Vec<IpAddr>, Resolve> {
        let raw: Vec<IpAddr> = match without_lookup(&*self.policy, &target.host) {
            Some(ip) => vec![ip],
            None => {
                let name = target.host.as_policy_str();
                let looked_up = timeout_at(deadline, tokio::net::lookup_host((name.as_str(), target.port))).await;
                match looked_up {
                    Err(_) => return Err(Resolve::Timeout),
                    Ok(Err(e)) => return Err(Resolve::Failed(e)),
                    Ok(Ok(it)) => it.map(|sa| sa.ip()).collect(),
                }
            }
        };
        candidates(raw).map_err(Resolve::Failed)
    }

    /// Keeps the addresses that are public or covered by `allow_private`.
    fn vet(&self, method: &str, target: &Target, addrs: &[IpAddr]) -> Result<Vec<SocketAddr>, Refusal> {
        vet(&*self.policy, &target.host, target.port, addrs).map_err(|r| Refusal {
            status: StatusCode::FORBIDDEN,
            message: format!(
                "paddock: {} refused by {RULE_PRIVATE} ({:?}); {}\n",
                describe(method, target),
                r.reason,
                r.hint
            )
            .into(),
            rule: RULE_PRIVATE.into(),
            reason: r.reason,
            hint: Some(r.hint.into()),
            allowed: false,
            address: Some(r.address),
            via: None,
        })
    }
}

enum Resolve {
    Timeout,
    Failed(io::Error),
}

#[cfg(test)]
mod tests;
