//! What the proxy would do with a connection, found without dialling ([`preview`]):
//! the gate's own steps (`gate.rs`), so a check gives the proxy's verdict.

use std::io;
use std::net::SocketAddr;

use crate::gate::{candidates, deny_hint, vet, without_lookup, AddressRefusal};
use crate::host::Host;
use crate::target::Target;
use crate::upstream::{Slot, Upstream};
use crate::{HostDecision, HostPolicy};

/// What the proxy would do with a connection to a target, found without dialling.
#[derive(Debug)]
pub enum Preview {
    /// The policy refuses the name (with the policy line that would allow it).
    Denied {
        /// The policy's decision.
        decision: HostDecision,
        /// What would allow it.
        hint: String,
    },
    /// Allowed by name, but the name does not resolve.
    Unresolved {
        /// The policy's (allowing) decision.
        decision: HostDecision,
        /// The resolver's error.
        error: io::Error,
    },
    /// Allowed by name, refused for its address.
    Refused {
        /// The policy's (allowing) decision.
        decision: HostDecision,
        /// The address refusal.
        refusal: AddressRefusal,
    },
    /// Allowed by name; the connection would go through an upstream HTTP proxy, which
    /// resolves the name and checks its address (an IP literal is vetted here first).
    ViaUpstream {
        /// The policy's decision.
        decision: HostDecision,
        /// The upstream, shown without credentials.
        via: String,
    },
    /// Allowed by name, but the upstream proxy that would carry it cannot be used.
    UpstreamUnusable {
        /// The policy's decision.
        decision: HostDecision,
        /// Why.
        why: String,
    },
    /// The proxy would dial these vetted addresses, in order.
    Allowed {
        /// The policy's decision.
        decision: HostDecision,
        /// The vetted addresses.
        addresses: Vec<SocketAddr>,
    },
}

/// Decides `target` as the proxy does without an upstream proxy: the policy by name, then
/// the address (the pin, else one blocking DNS lookup, as the proxy's), then [`vet`].
/// Dials nothing.
pub fn preview(policy: &dyn HostPolicy, target: &Target) -> Preview {
    preview_with(policy, &Upstream::none(), target, true)
}

/// [`preview`] with the proxy's upstream: a target the upstream routes (for a tunnel when
/// `tunnel`, else for plain HTTP) is not resolved here ([`Preview::ViaUpstream`]).
pub fn preview_with(policy: &dyn HostPolicy, upstream: &Upstream, target: &Target, tunnel: bool) -> Preview {
    let decision = policy.decide(&target.host.as_policy_str(), target.port);
    if !decision.allow {
        let hint = deny_hint(&decision, target);
        return Preview::Denied { decision, hint };
    }
    let pinned = match &target.host {
        Host::Name(n) => policy.pinned(n),
        Host::Ip(_) => None,
    };
    match upstream.route(target, tunnel, pinned) {
        None | Some(Slot::None) => {}
        Some(Slot::Broken(why)) => return Preview::UpstreamUnusable { decision, why: why.to_string() },
        Some(Slot::Proxy(p)) => {
            if let Host::Ip(ip) = &target.host {
                if let Err(refusal) = vet(policy, &target.host, target.port, &[ip.to_canonical()]) {
                    return Preview::Refused { decision, refusal };
                }
            }
            return Preview::ViaUpstream { decision, via: p.shown() };
        }
    }
    let resolved = match without_lookup(policy, &target.host) {
        Some(ip) => candidates([ip]),
        None => std::net::ToSocketAddrs::to_socket_addrs(&(target.host.as_policy_str().as_str(), target.port))
            .and_then(|it| candidates(it.map(|sa| sa.ip()))),
    };
    let addrs = match resolved {
        Ok(a) => a,
        Err(error) => return Preview::Unresolved { decision, error },
    };
    match vet(policy, &target.host, target.port, &addrs) {
        Ok(addresses) => Preview::Allowed { decision, addresses },
        Err(refusal) => Preview::Refused { decision, refusal },
    }
}
