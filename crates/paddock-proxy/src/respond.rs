//! Answers the proxy gives by itself: refusals (recorded in the connection's event),
//! bad requests, and the gentle close after an answer.

use std::io;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use crate::event::{EventGuard, Verdict};
use crate::gate::Refusal;

/// A plain-text response that closes the client connection.
pub(crate) fn text_response(status: StatusCode, message: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::text(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Records a refusal in the event and builds the client's answer.
pub(crate) fn refuse(guard: &EventGuard, r: Refusal) -> Response<ProxyBody> {
    let (status, message) = record_refusal(guard, r);
    text_response(status, message)
}

/// Answers a request that cannot be parsed into a target: 400, recorded with `shown` as
/// the host.
pub(crate) fn bad_request(guard: &EventGuard, shown: String, e: impl std::fmt::Display) -> Response<ProxyBody> {
    guard.update(|d| {
        d.host = shown;
        d.rule = "proxy.request".into();
        d.reason = e.to_string();
        d.status = 400;
    });
    text_response(StatusCode::BAD_REQUEST, format!("paddock: bad request: {e}\n"))
}

/// Records a refusal in the event; returns the status and the client's message.
pub(crate) fn record_refusal(guard: &EventGuard, r: Refusal) -> (StatusCode, String) {
    tracing::debug!(status = %r.status, rule = %r.rule, reason = %r.reason, "refused");
    guard.update(|d| {
        d.verdict = if r.allowed { Verdict::Allowed } else { Verdict::Denied };
        d.rule = r.rule.into();
        d.status = r.status.as_u16();
        d.address = r.address.or(d.address);
        d.hint = r.hint.map(String::from);
        d.via = r.via.map(|p| p.shown()).or(d.via.take());
        if r.allowed {
            d.error = Some(r.reason.clone());
        }
        d.reason = r.reason;
    });
    (r.status, r.message.into())
}

/// Closes after an answer: shuts down the write side, then reads what the
/// client still sends (for up to a second), so that unread input does not
/// turn the close into a reset that could destroy the answer in flight.
pub(crate) async fn close_gently(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}
