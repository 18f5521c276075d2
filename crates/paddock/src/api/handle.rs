//! Serving one request of the API: the gate every request passes, the route table, and
//! each route (calls, checks, health, approvals).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use super::approvals;
use super::listen::is_loopback_host;
use super::token::Token;
use crate::{Session, ToolCall};

/// What the server's request handlers share.
pub(super) struct State {
    pub(super) session: Session,
    pub(super) token: Token,
    pub(super) max_body: usize,
    pub(super) slots: Semaphore,
    pub(super) waiting: AtomicUsize,
    pub(super) max_queue: usize,
    pub(super) running: AtomicUsize,
    pub(super) requests: std::sync::atomic::AtomicU64,
    pub(super) unix: bool,
}

type Resp = Response<Full<Bytes>>;

/// Serves one request (counted).
pub(super) async fn serve_request(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    Ok(handle(&state, req).await)
}

fn json(status: StatusCode, body: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

/// [`error`], boxed: the refusal of a check that returns a `Result` (a response is large).
fn boxed_error(status: StatusCode, message: impl std::fmt::Display) -> Box<Resp> {
    Box::new(error(status, message))
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Resp {
    json(status, &serde_json::json!({ "error": message.to_string() }))
}

/// The request's host: the `Host` header, or the authority of an absolute-form target.
fn host_ok(req: &Request<Incoming>, unix: bool) -> Result<(), String> {
    if let Some(a) = req.uri().authority() {
        if !is_loopback_host(a.as_str()) {
            return Err(format!("request target authority `{a}` is not loopback"));
        }
    }
    match req.headers().get(HOST) {
        Some(h) => match h.to_str() {
            Ok(v) if is_loopback_host(v.trim()) => Ok(()),
            _ => Err(format!(
                "Host `{}` is not loopback (127.0.0.1, localhost or [::1]): refused (DNS rebinding)",
                String::from_utf8_lossy(h.as_bytes())
            )),
        },
        None if unix => Ok(()),
        None => Err("no Host header: refused".into()),
    }
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// Every request passes the gate (no browser origin, a loopback or socket host, the bearer
/// token) and is routed before anything else happens; then each route is served.
async fn handle(state: &State, req: Request<Incoming>) -> Resp {
    if let Err(r) = gate(state, &req) {
        return *r;
    }
    let route = match route(&req) {
        Ok(route) => route,
        Err(r) => return *r,
    };
    match route {
        Route::Approvals => {
            let (status, body) = approvals::list(&state.session);
            json(status, &body)
        }
        Route::Answer(id) => {
            let body = match Limited::new(req.into_body(), state.max_body).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
            };
            let (status, body) = approvals::answer(&state.session, &id, &body);
            json(status, &body)
        }
        Route::Health => json(
            StatusCode::OK,
            &serde_json::json!({ "status": "ok", "session": state.session.id(), "running": state.running.load(Ordering::Relaxed), "waiting": state.waiting.load(Ordering::Relaxed) }),
        ),
        Route::Check => match read_call(state, req).await {
            Ok(call) => {
                // A check of an http_request may look the name up, as the proxy would.
                let session = state.session.clone();
                let d = match tokio::task::spawn_blocking(move || session.check(&call)).await {
                    Ok(d) => d,
                    Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format_args!("check task: {e}")),
                };
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "decision": d.verdict.as_str(), "rule": &*d.rule, "reason": d.reason }),
                )
            }
            Err(r) => r,
        },
        Route::Calls => {
            let call = match read_call(state, req).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            let Some(_slot) = acquire(state).await else {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("too many calls waiting (queue of {}): retry later", state.max_queue),
                );
                r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            };
            state.running.fetch_add(1, Ordering::Relaxed);
            let result = state.session.call(call).await;
            state.running.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(outcome) => json(StatusCode::OK, &serde_json::to_value(&outcome).unwrap_or_default()),
                Err(e) => {
                    tracing::error!("call failed: {e}");
                    error(StatusCode::INTERNAL_SERVER_ERROR, e)
                }
            }
        }
    }
}

/// The checks every request passes, in order: one `Host` and at most one `Authorization`
/// header, no `Origin`, a loopback (or socket) host, the bearer token.
fn gate(state: &State, req: &Request<Incoming>) -> Result<(), Box<Resp>> {
    // RFC 9112 §3.2: more than one Host is a bad request; so is more than one token. Either
    // would otherwise be judged by its first copy alone.
    for (name, shown) in [(HOST, "Host"), (AUTHORIZATION, "Authorization")] {
        let n = req.headers().get_all(&name).iter().count();
        if n > 1 {
            return Err(boxed_error(StatusCode::BAD_REQUEST, format_args!("{n} {shown} headers: send exactly one")));
        }
    }
    if req.headers().contains_key(ORIGIN) {
        return Err(boxed_error(
            StatusCode::FORBIDDEN,
            "requests with an Origin header are refused: the API is not for browsers",
        ));
    }
    if let Err(m) = host_ok(req, state.unix) {
        return Err(boxed_error(StatusCode::FORBIDDEN, m));
    }
    match bearer(req).map(|t| state.token.verify(t)) {
        Some(Ok(true)) => {}
        Some(Err(e)) => {
            // Why, and where the file is, goes to the server's log, not to a client that
            // has not shown it holds the token.
            tracing::error!("{e}");
            return Err(boxed_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server's token file is unusable, so no token is accepted: the server's log says why",
            ));
        }
        Some(Ok(false)) | None => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send `Authorization: Bearer TOKEN` with the token from the token file",
            );
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Err(Box::new(r));
        }
    }
    Ok(())
}

/// The route of a request that passed the gate: 404 for an unknown path, 405 for a wrong
/// method.
fn route(req: &Request<Incoming>) -> Result<Route, Box<Resp>> {
    let (allowed, route) = match req.uri().path() {
        "/v1/calls" => ("POST", Route::Calls),
        "/v1/check" => ("POST", Route::Check),
        "/v1/health" => ("GET", Route::Health),
        "/v1/approvals" => ("GET", Route::Approvals),
        other => match other.strip_prefix("/v1/approvals/") {
            Some(id) if !id.is_empty() && !id.contains('/') => ("POST", Route::Answer(id.to_string())),
            _ => {
                return Err(boxed_error(
                    StatusCode::NOT_FOUND,
                    format!("no route {other}: the API has POST /v1/calls, POST /v1/check, GET /v1/health, GET /v1/approvals, POST /v1/approvals/ID"),
                ))
            }
        },
    };
    let method_ok = req.method().as_str() == allowed || (allowed == "GET" && req.method() == Method::HEAD);
    if !method_ok {
        let mut r =
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{} {}: use {allowed}", req.method(), req.uri().path()));
        r.headers_mut().insert(ALLOW, HeaderValue::from_static(allowed));
        return Err(Box::new(r));
    }
    Ok(route)
}

enum Route {
    Calls,
    Check,
    Health,
    Approvals,
    Answer(String),
}

/// Waits for a call slot; `None` when the queue is full.
async fn acquire(state: &State) -> Option<tokio::sync::SemaphorePermit<'_>> {
    if let Ok(p) = state.slots.try_acquire() {
        return Some(p);
    }
    struct Waiting<'a>(&'a AtomicUsize);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if state.waiting.fetch_add(1, Ordering::Relaxed) >= state.max_queue {
        state.waiting.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let _w = Waiting(&state.waiting);
    state.slots.acquire().await.ok()
}

/// Reads the body (within the limit) and parses a tool call.
async fn read_call(state: &State, req: Request<Incoming>) -> Result<ToolCall, Resp> {
    let too_large = || {
        let mut r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {} bytes", state.max_body),
        );
        r.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        r
    };
    let declared =
        req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body as u64) {
        return Err(too_large());
    }
    let body = match Limited::new(req.into_body(), state.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => return Err(error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))),
    };
    serde_json::from_slice::<ToolCall>(&body).map_err(|e| {
        let hint = "expected a tool call such as {\"tool\":\"command\",\"argv\":[\"ls\"]}, {\"tool\":\"read_file\",\"path\":\"...\"}, {\"tool\":\"write_file\",\"path\":\"...\",\"content\":\"...\"} or {\"tool\":\"http_request\",\"url\":\"https://...\"}";
        let what = if e.is_syntax() || e.is_eof() { "malformed JSON" } else { "not a tool call" };
        error(StatusCode::BAD_REQUEST, format!("{what}: {e}; {hint}"))
    })
}
