//! Absolute-URI HTTP forwarding: `GET http://host[:port]/path` → gate →
//! one upstream HTTP/1.1 connection → relayed response.
//!
//! Order: read and check the target against the `Host` header (400), ask the
//! policy (403), resolve, vet and dial (403/502/504), then send the request in
//! origin-form (`GET /path`) with hop-by-hop headers removed (`Connection` and
//! the headers it names, `Proxy-Connection`, `Proxy-Authorization`,
//! `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`). hyper
//! frames the bodies again on each side. Each request gets its own upstream
//! connection, so a later request on the same client connection is decided
//! afresh. Body bytes are counted each way; the event is emitted when both
//! bodies are done (or dropped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::http::uri::InvalidUri;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use crate::event::{EventGuard, Kind, Verdict};
use crate::gate::{describe, Mode, Refusal};
use crate::hop::strip_hop_by_hop;
use crate::intercept::plain::Way;
use crate::intercept::HttpRecord;
use crate::respond::{bad_request, refuse};
use crate::shared::Shared;
use crate::target::{forward_target, Target};
use crate::upstream::UpstreamProxy;
use crate::watch::Watch;

/// Handles one non-CONNECT request.
// Long on purpose: the steps of one request in the order they must run (target, gate
// decision, interception before any dial, dial, exchange, metered response), each
// recording on the event guard and returning its refusal where it fails.
pub(crate) async fn handle(mut req: Request<Incoming>, shared: &Arc<Shared>, start: Instant) -> Response<ProxyBody> {
    let guard = Arc::new(shared.guard(start, Kind::Http));
    let target = match forward_target(&req) {
        Ok(t) => t,
        Err(e) => {
            let shown = req.uri().authority().map(|a| a.to_string()).unwrap_or_default();
            return bad_request(&guard, shown, e);
        }
    };
    guard.update(|d| {
        d.host = target.host.as_policy_str();
        d.port = target.port;
    });
    let method = req.method().as_str().to_owned();
    let decision = match shared.gate.decide(&method, &target).await {
        Ok(d) => d,
        Err(r) => return refuse(&guard, r),
    };
    guard.update(|d| {
        d.rule = decision.rule.clone();
        d.reason = decision.reason.clone();
    });
    // Under interception the request is shown to the interceptor before anything is dialled.
    let record = match &shared.intercept {
        Some(engine) => match crate::intercept::plain::inspect(engine, &mut req, &target, &guard) {
            Ok(record) => Some(record),
            Err(refused) => return *refused,
        },
        None => None,
    };
    let admitted = match shared.gate.dial(&method, &target, &decision, Mode::Http).await {
        Ok(a) => a,
        Err(r) => {
            if let Some(rec) = &record {
                rec.error(r.reason.clone());
            }
            return refuse(&guard, r);
        }
    };
    guard.update(|d| {
        d.verdict = Verdict::Allowed;
        d.address = Some(admitted.address);
        d.via = admitted.via.as_ref().map(|p| p.shown());
    });
    let via = admitted.via.clone();
    let upstream_failure = |status: StatusCode, why: String| Refusal {
        hint: None,
        status,
        message: format!("paddock: {}: {why}\n", describe(&method, &target)).into(),
        rule: decision.rule.as_str().into(),
        reason: why,
        allowed: true,
        address: Some(admitted.address),
        via: via.clone(),
    };

    let (mut parts, body) = req.into_parts();
    let body = match (&shared.intercept, &record) {
        (Some(engine), Some(rec)) => {
            match crate::intercept::plain::form(engine, &mut parts, body, &target, &guard, rec).await {
                Ok(body) => body,
                Err(refused) => return *refused,
            }
        }
        _ => Err(body),
    };
    let upstream_req = match upstream_request(parts, body, &target, via.as_deref(), &guard, record.as_ref()) {
        Ok(r) => r,
        Err(e) => return bad_request(&guard, target.host.as_policy_str(), e),
    };

    let watch = Watch::new(Arc::clone(&shared.gate.policy), target.clone(), guard.rule());
    if let Some(rec) = &record {
        watch.request(rec);
    }
    let cut = (watch, Arc::clone(&guard));
    let resp = match exchange(admitted.stream, upstream_req, shared.cfg.idle_timeout, via.as_deref(), cut).await {
        Ok(r) => r,
        Err((status, why)) => {
            if let Some(rec) = &record {
                rec.error(why.clone());
            }
            return refuse(&guard, upstream_failure(status, why));
        }
    };
    let (mut rparts, rbody) = resp.into_parts();
    strip_hop_by_hop(&mut rparts.headers);
    guard.update(|d| d.status = rparts.status.as_u16());
    let body = match record {
        Some(rec) => {
            rec.status(rparts.status.as_u16());
            crate::intercept::plain::metered(rbody, &guard, Way::Down, &rec)
        }
        None => ProxyBody::Relayed { inner: rbody, counter: guard.down.clone(), _guard: guard },
    };
    Response::from_parts(rparts, body)
}

/// The request as it goes upstream: origin form (the absolute form, with the upstream's
/// own credentials, to an upstream proxy), HTTP/1.1, no hop-by-hop headers, a `Host`
/// header, and a body that counts the bytes up and holds the event open. An error: the
/// absolute form does not parse (a bad request).
fn upstream_request(
    mut parts: hyper::http::request::Parts,
    body: Result<bytes::Bytes, Incoming>,
    target: &Target,
    via: Option<&UpstreamProxy>,
    guard: &Arc<EventGuard>,
    record: Option<&Arc<HttpRecord>>,
) -> Result<Request<ProxyBody>, InvalidUri> {
    parts.uri = origin_form(&parts.uri);
    parts.version = Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    if let Some(proxy) = via {
        // To an upstream proxy: the absolute form, with the target as the policy decided it,
        // and the upstream's own credentials (the child's Proxy-Authorization is gone).
        let absolute = format!("http://{}{}", host_header(target), parts.uri);
        parts.uri = absolute.parse()?;
        if let Some(auth) = proxy.auth() {
            parts.headers.insert(hyper::header::PROXY_AUTHORIZATION, auth.clone());
        }
    }
    if !parts.headers.contains_key(HOST) {
        if let Ok(v) = HeaderValue::from_str(&host_header(target)) {
            parts.headers.insert(HOST, v);
        }
    }
    let body = match (body, record) {
        (Ok(read), record) => {
            guard.up.fetch_add(read.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Some(rec) = record {
                rec.up.fetch_add(read.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            ProxyBody::Full(Some(read))
        }
        (Err(body), Some(rec)) => crate::intercept::plain::metered(body, guard, Way::Up, rec),
        (Err(body), None) => ProxyBody::Relayed { inner: body, counter: guard.up.clone(), _guard: Arc::clone(guard) },
    };
    Ok(Request::from_parts(parts, body))
}

/// Sends `upstream_req` over `stream` and waits up to `idle` for the response head. An
/// upgrade, and an upstream proxy's `407`, are failures: status and reason for the client.
/// The upstream connection (the bodies both ways) ends when `watch` cuts it.
async fn exchange(
    stream: TcpStream,
    upstream_req: Request<ProxyBody>,
    idle: Duration,
    via: Option<&UpstreamProxy>,
    (watch, guard): (Watch, Arc<EventGuard>),
) -> Result<Response<Incoming>, (StatusCode, String)> {
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(x) => x,
        Err(e) => return Err((StatusCode::BAD_GATEWAY, format!("upstream handshake failed: {e}"))),
    };
    let cut: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let conn_task = {
        let cut = Arc::clone(&cut);
        tokio::spawn(async move {
            tokio::select! {
                ended = conn => if let Err(e) = ended {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                },
                why = watch.until_cut() => {
                    *cut.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                    let e = watch.record(&guard, why);
                    tracing::debug!(error = %e, "upstream connection cut");
                }
            }
        })
    };
    let failure = match tokio::time::timeout(idle, sender.send_request(upstream_req)).await {
        Ok(Ok(r)) if r.status() != StatusCode::SWITCHING_PROTOCOLS => Ok(r),
        Ok(Ok(_)) => Err((
            StatusCode::BAD_GATEWAY,
            "upstream switched protocols; upgrades are not relayed over plain HTTP, use CONNECT".to_owned(),
        )),
        Ok(Err(e)) => Err((StatusCode::BAD_GATEWAY, format!("upstream failed: {e}"))),
        Err(_) => Err((StatusCode::GATEWAY_TIMEOUT, format!("upstream sent no response within {idle:?}"))),
    };
    // Cut before the response came: that, not the failure it caused, is the reason.
    let failure = match (failure, cut.lock().unwrap_or_else(|p| p.into_inner()).take()) {
        (Err(_), Some(why)) => Err((StatusCode::FORBIDDEN, why)),
        (other, _) => other,
    };
    let failure = match (failure, via) {
        (Ok(r), Some(proxy)) if r.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED => Err((
            StatusCode::BAD_GATEWAY,
            format!(
                "{} answered `407 Proxy Authentication Required`: {}",
                proxy.label(),
                if proxy.auth().is_some() {
                    "the credentials of the upstream proxy URL were refused"
                } else {
                    "it wants credentials; give them in the URL (http://user:password@host:port)"
                }
            ),
        )),
        (other, _) => other,
    };
    if failure.is_err() {
        // Ends the upstream connection now, and with it the request body
        // that holds the event open.
        conn_task.abort();
    }
    failure
}

/// `http://host/path?q` → `/path?q`.
pub(crate) fn origin_form(uri: &Uri) -> Uri {
    crate::intercept::plain::origin(uri).parse().unwrap_or_else(|_| Uri::from_static("/"))
}

/// The `Host` header for an upstream request that came without one.
pub(crate) fn host_header(target: &Target) -> String {
    match target.port {
        80 => target.host.to_string(),
        p => target.host.authority(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, CONTENT_LENGTH};

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Secret, close"),
            ("x-secret", "1"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("upgrade", "websocket"),
            ("transfer-encoding", "chunked"),
            ("content-length", "10"),
            ("x-kept", "yes"),
            ("accept", "*/*"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-kept"]);
    }

    #[test]
    fn content_length_is_kept_without_transfer_encoding() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get(CONTENT_LENGTH).unwrap(), "3");
    }

    #[test]
    fn origin_form_keeps_path_and_query() {
        assert_eq!(origin_form(&"http://a.test/x/y?z=1".parse().unwrap()), "/x/y?z=1");
        assert_eq!(origin_form(&"http://a.test".parse().unwrap()), "/");
        assert_eq!(origin_form(&"http://a.test?q".parse().unwrap()), "/?q");
    }
}
