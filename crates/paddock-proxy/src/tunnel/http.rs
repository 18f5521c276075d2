//! Plain HTTP/1 inside a tunnel (`curl -p http://…`, `ws://` through a CONNECT proxy,
//! HTTP over SOCKS5): served with hyper request by request over the tunnel's one upstream
//! connection, so that every request's target (its `Host` and absolute URI) is checked
//! against the tunnel's before it goes upstream, keep-alive and pipelined requests
//! included. A request for another host is answered 421 and ends the tunnel; the
//! connection's event is then a denial that says why. A `101 Switching Protocols`
//! (WebSocket) hands both sides to a byte relay; any other `Upgrade` (`h2c`, `TLS/1.2`,
//! whose streams or ClientHello would name hosts of their own) is refused the same way.
//!
//! Nothing else of the request is looked at or changed (headers keep their case), and
//! nothing is decided per request: the tunnel's host was decided at its CONNECT.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use crate::counted::Counted;
use crate::event::{EventGuard, Verdict};
use crate::intercept::refuse::{one_line, text};
use crate::intercept::Metered;
use crate::target::{same_target, Target};

/// The rule of a tunnel ended because a request in it named another host.
pub(crate) const RULE_HOST: &str = "proxy.tunnel_host";

/// Serves the tunnel's requests until either side closes it (`first`: the client's bytes
/// read already). The caller bounds it by the idle timeout.
pub(crate) async fn serve(
    client: TcpStream,
    first: Vec<u8>,
    upstream: TcpStream,
    guard: &EventGuard,
    target: &Target,
    header_timeout: Duration,
) -> io::Result<()> {
    let client = Counted::new(Prefixed { first, at: 0, inner: client }, Arc::clone(&guard.up));
    let upstream = Counted::new(upstream, Arc::clone(&guard.down));
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake::<_, Incoming>(TokioIo::new(upstream))
        .await
        .map_err(|e| io::Error::other(format!("the upstream connection: {e}")))?;
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let upgrades: Arc<Mutex<Option<(OnUpgrade, OnUpgrade)>>> = Arc::default();
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let svc = {
        let (upgrades, refused, target) = (Arc::clone(&upgrades), Arc::clone(&refused), target.clone());
        service_fn(move |mut req: Request<Incoming>| {
            let (sender, upgrades, refused, target) =
                (Arc::clone(&sender), Arc::clone(&upgrades), Arc::clone(&refused), target.clone());
            async move {
                let why = same_target(req.uri(), req.headers(), &target, target.port)
                    .err()
                    .map(|why| one_line(&why))
                    .or_else(|| other_upgrade(req.headers()));
                if let Some(why) = why {
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                    return Ok::<_, io::Error>(misdirected(why));
                }
                let client_side = hyper::upgrade::on(&mut req);
                let mut sender = sender.lock().await;
                let sent = match sender.ready().await {
                    Ok(()) => sender.send_request(req).await,
                    Err(e) => Err(e),
                };
                let mut resp = match sent {
                    Ok(resp) => resp,
                    Err(e) => {
                        let mut r = text(StatusCode::BAD_GATEWAY, format!("paddock: the upstream connection: {e}\n"));
                        r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                        return Ok(r);
                    }
                };
                if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let upstream_side = hyper::upgrade::on(&mut resp);
                    *upgrades.lock().unwrap_or_else(|p| p.into_inner()) = Some((client_side, upstream_side));
                }
                let (parts, body) = resp.into_parts();
                Ok(Response::from_parts(parts, ProxyBody::Metered(Metered::new(body, Vec::new(), Vec::new(), None))))
            }
        })
    };
    let server = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(client), svc)
        .with_upgrades();
    let conn = conn.with_upgrades();
    tokio::pin!(server, conn);
    let mut upstream_done = false;
    let served = loop {
        tokio::select! {
            r = &mut server => break r,
            r = &mut conn, if !upstream_done => {
                upstream_done = true;
                if let Err(e) = r {
                    tracing::debug!(error = %e, "the tunnel's upstream connection ended with an error");
                }
            }
        }
    };
    let refused = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(why) = refused {
        guard.update(|d| {
            d.verdict = Verdict::Denied;
            d.status = 421;
            d.rule = RULE_HOST.into();
            d.reason = format!("{why}; the tunnel to {} was ended", target.authority());
        });
    }
    served.map_err(|e| io::Error::other(format!("plain HTTP in the tunnel: {e}")))?;
    let taken = upgrades.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((client_side, upstream_side)) = taken {
        // The upstream side is handed over once its connection has read the 101 out.
        let upstream_side = async {
            if !upstream_done {
                (&mut conn).await.map_err(io::Error::other)?;
            }
            upstream_side.await.map_err(io::Error::other)
        };
        let client_side = async { client_side.await.map_err(io::Error::other) };
        let (c, u) = tokio::try_join!(client_side, upstream_side)?;
        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
        tokio::io::copy_bidirectional(&mut c, &mut u).await?;
    }
    Ok(())
}

/// Why an `Upgrade` other than WebSocket is refused: past a `101` the bytes are relayed
/// unread, and `h2c` (HTTP/2 streams, each with its own `:authority`) or `TLS/1.x` (a
/// ClientHello with its own server name) would carry other hosts there.
fn other_upgrade(headers: &hyper::HeaderMap) -> Option<String> {
    let offered: Vec<String> = headers
        .get_all(hyper::header::UPGRADE)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(',').map(|p| p.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|p| !p.is_empty())
        .collect();
    let other: Vec<&String> = offered.iter().filter(|p| p.as_str() != "websocket").collect();
    (!other.is_empty()).then(|| {
        format!(
            "an upgrade to {} inside a tunnel: only WebSocket is relayed (what follows another protocol's 101 is not checked)",
            one_line(&other.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "))
        )
    })
}

/// 421 for a request that names another host (or asks for an upgrade the tunnel does not
/// relay); the tunnel ends after it.
fn misdirected(why: String) -> Response<ProxyBody> {
    let mut r = text(StatusCode::MISDIRECTED_REQUEST, format!("paddock: {why}\n"));
    r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The client's socket, with the bytes read from it already served first.
struct Prefixed {
    first: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.first.len() {
            let n = (this.first.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
