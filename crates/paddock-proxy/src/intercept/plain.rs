//! Plain-HTTP forward requests (`GET http://host/path`) under interception: the request
//! is in plain text already, so it goes to [`Interceptor::request`](super::Interceptor::request)
//! before anything is dialled ([`Interceptor::intercepts`](super::Interceptor::intercepts)
//! is not asked), and is recorded once like an intercepted one.

use std::any::Any;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Request, Response};

use super::forward::clean_headers;
use super::refuse::denied;
use super::{Engine, HttpRecord, Metered, RequestParts, RequestVerdict};
use crate::body::ProxyBody;
use crate::event::{EventGuard, Verdict};
use crate::target::Target;

/// Shows the request to the interceptor (headers without hop-by-hop ones, rewritten in
/// place). `Ok`: its record, to be kept until the response ends. `Err`: the 403 for the
/// client, already recorded in the request's record and the connection's event.
pub(crate) fn inspect(
    engine: &Engine,
    req: &mut Request<Incoming>,
    target: &Target,
    guard: &EventGuard,
) -> Result<Arc<HttpRecord>, Box<Response<ProxyBody>>> {
    let host = target.host.as_policy_str();
    let pq = origin(req.uri());
    let record = Arc::new(HttpRecord::new(
        Arc::clone(&engine.intercept.interceptor),
        req.method().as_str(),
        &host,
        target.port,
        &pq,
    ));
    clean_headers(req.headers_mut());
    let (method, headers) = (req.method().clone(), req.headers_mut());
    let verdict = engine.interceptor().request(&mut RequestParts {
        method: &method,
        host: &host,
        port: target.port,
        path_and_query: &pq,
        headers,
        tls: false,
    });
    match verdict {
        RequestVerdict::Allow { secret } => {
            record.secret(secret);
            Ok(record)
        }
        RequestVerdict::Deny(deny) => Err(refused(deny, guard, &record)),
    }
}

/// The form body of a request [`inspect`] let through, read and decided when the
/// interceptor asks for it ([`super::form`]): `Ok(Ok(bytes))` to send, `Ok(Err(body))` to
/// stream, `Err` the 403, recorded.
pub(crate) async fn form(
    engine: &Engine,
    parts: &mut hyper::http::request::Parts,
    body: Incoming,
    target: &Target,
    guard: &EventGuard,
    record: &Arc<HttpRecord>,
) -> Result<Result<bytes::Bytes, Incoming>, Box<Response<ProxyBody>>> {
    let host = target.host.as_policy_str();
    let pq = origin(&parts.uri);
    let mut req = RequestParts {
        method: &parts.method,
        host: &host,
        port: target.port,
        path_and_query: &pq,
        headers: &mut parts.headers,
        tls: false,
    };
    super::form::check(engine, &mut req, body).await.map_err(|deny| refused(deny, guard, record))
}

/// The 403 of a refused plain-HTTP request, recorded on its record and its connection's event.
fn refused(deny: super::Deny, guard: &EventGuard, record: &HttpRecord) -> Box<Response<ProxyBody>> {
    let mut resp = denied(&deny);
    resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    guard.update(|d| {
        d.verdict = Verdict::Denied;
        d.status = 403;
        d.rule = deny.rule.clone();
        d.reason = deny.reason.clone();
    });
    record.denied(deny);
    Box::new(resp)
}

/// Which way a body goes.
pub(crate) enum Way {
    Up,
    Down,
}

/// A relayed body counted into the connection's event and the request's record.
/// `Up` counts request body bytes, `Down` response body bytes.
pub(crate) fn metered(body: Incoming, event: &Arc<EventGuard>, way: Way, record: &Arc<HttpRecord>) -> ProxyBody {
    let (ev, rec) = match way {
        Way::Up => (&event.up, &record.up),
        Way::Down => (&event.down, &record.down),
    };
    let hold: Vec<Arc<dyn Any + Send + Sync>> = vec![event.clone(), record.clone()];
    ProxyBody::Metered(Metered::new(body, vec![Arc::clone(ev), Arc::clone(rec)], hold, Some(record.clone())))
}

/// The origin form, as it goes upstream: `http://host/p?q` → `/p?q`.
pub(crate) fn origin(uri: &hyper::Uri) -> String {
    match uri.path_and_query().map(|p| p.as_str()) {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) if !p.is_empty() => format!("/{p}"),
        _ => "/".to_owned(),
    }
}
