//! CONNECT tunnels: `CONNECT host:port` → gate → `200` → byte relay.
//!
//! Order: parse the authority (400), ask the policy (403), take a tunnel slot
//! (503 past `max_tunnels`), resolve, vet and dial (403/502/504), answer 200,
//! and once hyper hands over the client socket, check its first bytes ([`crate::tunnel`])
//! and relay bytes both ways:
//! with `splice(2)` on Linux ([`crate::splice`]), else with
//! `copy_bidirectional_with_sizes` (either way a half-close on one side is
//! propagated as a shutdown to the other, the other direction keeps flowing). A tunnel with
//! no traffic for `idle_timeout` is closed. Bytes are counted each way; the
//! event is emitted when the tunnel ends.

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{copy_bidirectional_with_sizes, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;

use crate::body::ProxyBody;
use crate::counted::Counted;
use crate::event::{EventGuard, Kind, Verdict};
use crate::gate::{describe, Mode, Refusal};
use crate::intercept::serve::Intercepted;
use crate::intercept::Engine;
use crate::respond::{bad_request, refuse};
use crate::shared::{Shared, TunnelSlot};
use crate::target::{connect_target, Target};
use crate::tunnel::First;
use crate::watch::Watch;
use crate::{HostPolicy, ProxyConfig};

/// Handles one CONNECT request; an admitted tunnel is left in `slot`.
pub(crate) async fn handle(
    mut req: Request<Incoming>,
    shared: &Arc<Shared>,
    slot: &TunnelSlot,
    start: Instant,
) -> Response<ProxyBody> {
    let guard = shared.guard(start, Kind::Connect);
    let target = match connect_target(&req) {
        Ok(t) => t,
        Err(e) => return bad_request(&guard, req.uri().to_string(), e),
    };
    guard.update(|d| {
        d.host = target.host.as_policy_str();
        d.port = target.port;
    });
    let decision = match shared.gate.decide("CONNECT", &target).await {
        Ok(d) => d,
        Err(r) => return refuse(&guard, r),
    };
    guard.update(|d| {
        d.rule = decision.rule.clone();
        d.reason = decision.reason.clone();
    });
    // Interception: terminate TLS for the hosts the interceptor names; the others stay
    // opaque but their target (now) and SNI (once read) are checked first.
    let engine = shared.intercept.clone();
    let host = target.host.as_policy_str();
    let intercepted = engine.as_ref().is_some_and(|e| e.interceptor().intercepts(&host, target.port));
    if let (Some(e), false) = (&engine, intercepted) {
        if let Some(deny) = e.interceptor().tunnel(&host, target.port, None) {
            return refuse(&guard, crate::intercept::refuse::tunnel_refusal("CONNECT", &target, deny));
        }
    }
    let Ok(permit) = shared.tunnels.clone().try_acquire_owned() else {
        return refuse(&guard, too_many_tunnels(shared, &target));
    };
    let admitted = match shared.gate.dial("CONNECT", &target, &decision, Mode::Tunnel).await {
        Ok(a) => a,
        Err(r) => return refuse(&guard, r),
    };
    guard.update(|d| {
        d.verdict = Verdict::Allowed;
        d.address = Some(admitted.address);
        d.via = admitted.via.as_ref().map(|p| p.shown());
        d.status = 200;
    });
    let on_upgrade = hyper::upgrade::on(&mut req);
    let opts = RelayOpts::from(&shared.cfg);
    let how = match engine {
        Some(engine) if intercepted => {
            guard.update(|d| d.reason = format!("{} (TLS intercepted)", d.reason));
            How::Intercept(Intercepted { shared: Arc::clone(shared), engine, target, decision })
        }
        engine => How::Inspect(engine, target, shared.cfg.header_timeout),
    };
    let gate = Arc::clone(&shared.gate.policy);
    let tunnel = async move {
        let _permit = permit;
        let result = match on_upgrade.await {
            Ok(client) => match how {
                How::Inspect(engine, target, header_timeout) => {
                    let policy = &gate;
                    let check = Check { engine: engine.as_deref(), target: &target, header_timeout, policy };
                    relay_inspected(client, admitted.stream, &guard, opts, check).await
                }
                How::Intercept(ctx) => {
                    crate::intercept::serve::run(TokioIo::new(client), admitted.stream, &guard, ctx).await
                }
            },
            Err(e) => Err(io::Error::other(format!("client connection was not handed over: {e}"))),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "tunnel ended with an error");
            guard.update(|d| d.error = Some(e.to_string()));
        }
    };
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::pin(tunnel));
    Response::new(ProxyBody::empty())
}

/// What an admitted tunnel becomes.
enum How {
    /// An opaque relay after its first bytes were checked ([`crate::tunnel`]); the
    /// interception, when there is one, sees its SNI.
    Inspect(Option<Arc<Engine>>, Target, Duration),
    /// TLS terminated by the proxy.
    Intercept(Intercepted),
}

/// The check of an opaque tunnel's first bytes ([`crate::tunnel`]), and the policy that
/// decides it again while it is open.
pub(crate) struct Check<'a> {
    pub engine: Option<&'a Engine>,
    pub target: &'a Target,
    pub header_timeout: Duration,
    pub policy: &'a Arc<dyn HostPolicy>,
}

/// [`relay_checked`] for the socket hyper hands over.
async fn relay_inspected(
    client: Upgraded,
    upstream: TcpStream,
    guard: &EventGuard,
    opts: RelayOpts,
    check: Check<'_>,
) -> io::Result<()> {
    let Ok(parts) = client.downcast::<TokioIo<TcpStream>>() else {
        return Err(io::Error::other("the client socket could not be inspected; tunnel closed"));
    };
    relay_checked(parts.io.into_inner(), parts.read_buf.to_vec(), upstream, guard, opts, check).await
}

/// Reads the client's first bytes (after `preread`, what was read already) and checks
/// them before any of them reaches the upstream ([`crate::tunnel`]); a refusal closes the
/// tunnel and is the event's verdict. Plain HTTP is served request by request.
pub(crate) async fn relay_checked(
    mut client: TcpStream,
    preread: Vec<u8>,
    mut upstream: TcpStream,
    guard: &EventGuard,
    opts: RelayOpts,
    check: Check<'_>,
) -> io::Result<()> {
    let timeouts = (check.header_timeout, opts.idle);
    let watch = Watch::new(Arc::clone(check.policy), check.target.clone(), guard.rule());
    let counters = (&*guard.up, &*guard.down);
    let first =
        crate::tunnel::check(&mut client, &mut upstream, preread, check.engine, check.target, timeouts, counters);
    // A first line that never ends keeps the tunnel in the check: a revocation cuts it there too.
    let first = until_idle(async { Ok(first.await) }, guard, opts.idle, &watch).await?;
    match first {
        Ok(First::Relay(first)) => {
            if !first.is_empty() {
                upstream.write_all(&first).await?;
                guard.up.fetch_add(first.len() as u64, Ordering::Relaxed);
            }
            relay_tcp(client, upstream, guard, opts, &watch).await
        }
        Ok(First::Idle) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("tunnel idle for {:?}", opts.idle))),
        Ok(First::Http(first)) => {
            let served = crate::tunnel::http::serve(client, first, upstream, guard, check.target, check.header_timeout);
            until_idle(served, guard, opts.idle, &watch).await
        }
        Err(deny) => {
            tracing::debug!(rule = %deny.rule, reason = %deny.reason, "tunnel closed before relaying");
            guard.update(|d| {
                d.verdict = Verdict::Denied;
                d.status = 403;
                d.rule = deny.rule;
                d.reason = deny.reason;
            });
            Ok(())
        }
    }
}

/// The refusal past `max_tunnels`.
pub(crate) fn too_many_tunnels(shared: &Shared, target: &Target) -> Refusal {
    let max = shared.cfg.max_tunnels;
    Refusal {
        hint: None,
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!(
            "paddock: {}: too many open tunnels (max_tunnels = {max}); retry later\n",
            describe("CONNECT", target)
        )
        .into(),
        rule: "proxy.max_tunnels".into(),
        reason: format!("more than {max} concurrent tunnels"),
        allowed: false,
        address: None,
        via: None,
    }
}

/// How a tunnel relays: from [`crate::ProxyConfig`].
#[derive(Clone, Copy)]
pub(crate) struct RelayOpts {
    buffer: usize,
    idle: Duration,
    zero_copy: bool,
}

impl From<&ProxyConfig> for RelayOpts {
    fn from(cfg: &ProxyConfig) -> RelayOpts {
        RelayOpts { buffer: cfg.buffer_size, idle: cfg.idle_timeout, zero_copy: cfg.zero_copy }
    }
}

/// Socket to socket: `splice(2)` on Linux, a user-space copy elsewhere or
/// when pipes cannot be had.
pub(crate) async fn relay_tcp(
    client: TcpStream,
    upstream: TcpStream,
    guard: &EventGuard,
    opts: RelayOpts,
    watch: &Watch,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if opts.zero_copy {
        match (crate::splice::Pipe::new(opts.buffer), crate::splice::Pipe::new(opts.buffer)) {
            (Ok(a), Ok(b)) => {
                let spliced = crate::splice::relay(&client, &upstream, (a, b), &guard.up, &guard.down);
                return until_idle(spliced, guard, opts.idle, watch).await;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "no pipes for splice; copying in user space")
            }
        }
    }
    relay(client, upstream, guard, opts, watch).await
}

/// Copies both ways in user space until both sides are done.
async fn relay<C>(client: C, upstream: TcpStream, guard: &EventGuard, opts: RelayOpts, watch: &Watch) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = Counted::new(client, guard.up.clone());
    let mut upstream = Counted::new(upstream, guard.down.clone());
    let copy = copy_bidirectional_with_sizes(&mut client, &mut upstream, opts.buffer, opts.buffer);
    until_idle(async move { copy.await.map(|_| ()) }, guard, opts.idle, watch).await
}

/// Runs `relay` until it ends, until no byte moved either way for `idle`, or until the
/// policy no longer lets its host through (a revocation).
async fn until_idle<T>(
    relay: impl Future<Output = io::Result<T>>,
    guard: &EventGuard,
    idle: Duration,
    watch: &Watch,
) -> io::Result<T> {
    tokio::pin!(relay);
    let period = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let cut = watch.until_cut();
    tokio::pin!(cut);
    let mut seen = (0, 0);
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            r = &mut relay => return r,
            why = &mut cut => return Err(watch.record(guard, why)),
            _ = ticker.tick() => {
                let now = (guard.up.load(Ordering::Relaxed), guard.down.load(Ordering::Relaxed));
                if now != seen {
                    seen = now;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= idle {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, format!("tunnel idle for {idle:?}")));
                }
            }
        }
    }
}
