//! SOCKS5 `CONNECT` (RFC 1928, no authentication), for clients that only
//! speak SOCKS (`ALL_PROXY=socks5h://...`).
//!
//! Chosen per client connection by its first byte (`0x05`), before HTTP
//! parsing. The request's address goes through the same steps as an HTTP
//! CONNECT: host normalisation (a domain name is decided by name; the
//! `socks5h` form keeps DNS in the proxy, so pins and address vetting apply),
//! the policy, the tunnel cap, resolution, address vetting and dial; then the
//! same relay. Refusals answer at once with a SOCKS reply code; the event
//! carries the rule and the reason (SOCKS has no room for text).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connect::Check;
use crate::event::{EventGuard, Kind, Verdict};
use crate::gate::{Mode, Refusal};
use crate::host::{normalise_host, Host};
use crate::intercept::refuse::tunnel_refusal;
use crate::intercept::serve::Intercepted;
use crate::respond::{close_gently, record_refusal};
use crate::shared::Shared;
use crate::target::Target;

/// The first byte of a SOCKS5 greeting.
pub(crate) const VERSION: u8 = 5;

const REPLY_OK: u8 = 0x00;
const REPLY_FAILURE: u8 = 0x01;
const REPLY_NOT_ALLOWED: u8 = 0x02;
const REPLY_HOST_UNREACHABLE: u8 = 0x04;
const REPLY_REFUSED: u8 = 0x05;
const REPLY_COMMAND: u8 = 0x07;
const REPLY_ADDRESS_TYPE: u8 = 0x08;

/// A refused handshake: the reply code (if a reply is due) and why.
pub(crate) struct Bad {
    pub(crate) reply: Option<u8>,
    pub(crate) reason: String,
}

fn bad(reply: Option<u8>, reason: impl Into<String>) -> Bad {
    Bad { reply, reason: reason.into() }
}

/// Reads the greeting and the request; answers the method selection.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<Target, Bad> {
    let io = |e: std::io::Error| bad(None, format!("SOCKS5 handshake failed: {e}"));
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await.map_err(io)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await.map_err(io)?;
    if !methods.contains(&0x00) {
        let _ = s.write_all(&[VERSION, 0xff]).await;
        return Err(bad(None, "SOCKS5 client offers no method without authentication"));
    }
    s.write_all(&[VERSION, 0x00]).await.map_err(io)?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).await.map_err(io)?;
    if req[0] != VERSION {
        return Err(bad(Some(REPLY_FAILURE), format!("SOCKS version {} in request", req[0])));
    }
    if req[1] != 0x01 {
        return Err(bad(Some(REPLY_COMMAND), format!("SOCKS5 command {} is not supported (only CONNECT)", req[1])));
    }
    let host = match req[3] {
        0x01 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await.map_err(io)?;
            Host::Ip(IpAddr::V4(Ipv4Addr::from(a)))
        }
        0x04 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await.map_err(io)?;
            Host::Ip(IpAddr::V6(Ipv6Addr::from(a)))
        }
        0x03 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await.map_err(io)?;
            let mut name = vec![0u8; usize::from(len[0])];
            s.read_exact(&mut name).await.map_err(io)?;
            let name =
                String::from_utf8(name).map_err(|_| bad(Some(REPLY_FAILURE), "SOCKS5 host name is not UTF-8"))?;
            normalise_host(&name).map_err(|e| bad(Some(REPLY_FAILURE), e.to_string()))?
        }
        t => return Err(bad(Some(REPLY_ADDRESS_TYPE), format!("SOCKS5 address type {t} is not supported"))),
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await.map_err(io)?;
    let port = u16::from_be_bytes(port);
    if port == 0 {
        return Err(bad(Some(REPLY_FAILURE), "SOCKS5 request for port 0"));
    }
    Ok(Target { host, port })
}

/// A reply with an empty bound address.
fn reply(code: u8) -> [u8; 10] {
    [VERSION, code, 0, 0x01, 0, 0, 0, 0, 0, 0]
}

fn reply_for(status: StatusCode) -> u8 {
    match status {
        StatusCode::FORBIDDEN => REPLY_NOT_ALLOWED,
        StatusCode::BAD_GATEWAY => REPLY_REFUSED,
        StatusCode::GATEWAY_TIMEOUT => REPLY_HOST_UNREACHABLE,
        _ => REPLY_FAILURE,
    }
}

async fn refuse(mut s: TcpStream, guard: &EventGuard, r: Refusal) {
    let (status, _) = record_refusal(guard, r);
    if s.write_all(&reply(reply_for(status))).await.is_ok() {
        close_gently(s).await;
    }
}

/// Serves one SOCKS5 client connection.
// Long on purpose: the steps of one tunnel in the order they must run (handshake, gate
// decision, interception check, tunnel slot, dial, relay), as `connect.rs` has them for
// CONNECT; each records on the event guard and refuses where it fails.
pub(crate) async fn handle(mut s: TcpStream, shared: Arc<Shared>) {
    let guard = shared.guard(Instant::now(), Kind::Socks5);
    let target = match tokio::time::timeout(shared.cfg.header_timeout, handshake(&mut s)).await {
        Ok(Ok(t)) => t,
        Ok(Err(b)) => {
            guard.update(|d| {
                d.rule = "proxy.request".into();
                d.reason = b.reason;
                d.status = 400;
            });
            if let Some(code) = b.reply {
                let _ = s.write_all(&reply(code)).await;
            }
            return close_gently(s).await;
        }
        Err(_) => {
            guard.update(|d| {
                d.rule = "proxy.request".into();
                d.reason = "SOCKS5 handshake timed out".into();
                d.status = 408;
            });
            return;
        }
    };
    guard.update(|d| {
        d.host = target.host.as_policy_str();
        d.port = target.port;
    });
    let decision = match shared.gate.decide("SOCKS5 CONNECT", &target).await {
        Ok(d) => d,
        Err(r) => return refuse(s, &guard, r).await,
    };
    guard.update(|d| {
        d.rule = decision.rule.clone();
        d.reason = decision.reason.clone();
    });
    // Interception applies to SOCKS5 tunnels as to CONNECT ones (else SOCKS would be a
    // way around the request rules).
    let engine = shared.intercept.clone();
    let host = target.host.as_policy_str();
    let intercepted = engine.as_ref().is_some_and(|e| e.interceptor().intercepts(&host, target.port));
    if let (Some(e), false) = (&engine, intercepted) {
        if let Some(deny) = e.interceptor().tunnel(&host, target.port, None) {
            return refuse(s, &guard, tunnel_refusal("SOCKS5 CONNECT", &target, deny)).await;
        }
    }
    let Ok(_permit) = shared.tunnels.clone().try_acquire_owned() else {
        return refuse(s, &guard, crate::connect::too_many_tunnels(&shared, &target)).await;
    };
    let admitted = match shared.gate.dial("SOCKS5 CONNECT", &target, &decision, Mode::Tunnel).await {
        Ok(a) => a,
        Err(r) => return refuse(s, &guard, r).await,
    };
    guard.update(|d| {
        d.verdict = Verdict::Allowed;
        d.address = Some(admitted.address);
        d.via = admitted.via.as_ref().map(|p| p.shown());
        d.status = 200;
    });
    if let Err(e) = s.write_all(&reply(REPLY_OK)).await {
        guard.update(|d| d.error = Some(format!("client went away: {e}")));
        return;
    }
    let opts = crate::connect::RelayOpts::from(&shared.cfg);
    let relayed = match engine {
        Some(engine) if intercepted => {
            guard.update(|d| d.reason = format!("{} (TLS intercepted)", d.reason));
            let ctx = Intercepted { shared: Arc::clone(&shared), engine, target, decision };
            crate::intercept::serve::run(s, admitted.stream, &guard, ctx).await
        }
        engine => {
            let header_timeout = shared.cfg.header_timeout;
            let policy = &shared.gate.policy;
            let check = Check { engine: engine.as_deref(), target: &target, header_timeout, policy };
            crate::connect::relay_checked(s, Vec::new(), admitted.stream, &guard, opts, check).await
        }
    };
    if let Err(e) = relayed {
        tracing::debug!(error = %e, "SOCKS5 tunnel ended with an error");
        guard.update(|d| d.error = Some(e.to_string()));
    }
}
