//! The proxy's parsers run on bytes, without sockets: entry points for the property
//! tests (`tests/prop.rs`) and the fuzz targets (`fuzz/`). Not part of the API.
//!
//! Each function runs the code the proxy runs on a client's bytes, unchanged: the SOCKS5
//! handshake, and hyper's HTTP/1 server followed by what the proxy does with each request
//! head it parses (the target, the `Host` check, the origin-form URI and the hop-by-hop
//! headers it would send upstream).

use std::cell::RefCell;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

use crate::forward::{host_header, origin_form};
use crate::hop::strip_hop_by_hop;
use crate::target::{connect_target, forward_target, Target, TargetError};

/// A refused SOCKS5 handshake: the reply code, if one is due, and the reason.
pub type SocksRefusal = (Option<u8>, String);

/// What the SOCKS5 handshake made of `bytes`: the target or the refusal, and the bytes
/// it wrote back.
pub fn socks5_handshake(bytes: &[u8]) -> (Result<Target, SocksRefusal>, Vec<u8>) {
    let mut io = tokio::io::join(bytes, Vec::new());
    let result = block_on(crate::socks::handshake(&mut io)).map_err(|b| (b.reply, b.reason));
    (result, io.into_inner().1)
}

/// One request head as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Vetted {
    /// The method hyper parsed.
    pub method: Method,
    /// The request target as hyper parsed it.
    pub uri: String,
    /// The proxy's reading of the target ([`connect_target`] or [`forward_target`]).
    pub target: Result<Target, TargetError>,
    /// For an accepted non-CONNECT request: what would go upstream.
    pub upstream: Option<Upstream>,
}

/// The head of a forwarded request as it would be sent upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The origin-form URI.
    pub uri: String,
    /// The headers after hop-by-hop removal (names lowercase).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The `Host` header the proxy would add if the request had none.
    pub host_header: String,
}

/// Runs hyper's HTTP/1 server (as the proxy configures it) over `bytes` and vets every
/// request head it parses; requests hyper refuses never reach the proxy's code.
pub fn http1_requests(bytes: &[u8]) -> Vec<Vetted> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let vetted = vet(&req);
        let status = if vetted.target.is_ok() { 200 } else { 400 };
        if let Ok(mut v) = sink.lock() {
            v.push(vetted);
        }
        let mut resp = Response::new(String::new());
        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
        async move { Ok::<_, Infallible>(resp) }
    });
    let io = TokioIo::new(tokio::io::join(std::io::Cursor::new(bytes.to_vec()), tokio::io::sink()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(64 * 1024);
    let conn = builder.serve_connection(io, service).with_upgrades();
    // Errors are hyper refusing the bytes: not the proxy's code, nothing to report.
    let _ = block_on(conn);
    let out = seen.lock().map(|v| v.clone()).unwrap_or_default();
    out
}

fn vet<B>(req: &Request<B>) -> Vetted {
    let target = if req.method() == Method::CONNECT { connect_target(req) } else { forward_target(req) };
    let upstream = match (&target, req.method() == Method::CONNECT) {
        (Ok(t), false) => {
            let mut headers = req.headers().clone();
            strip_hop_by_hop(&mut headers);
            Some(Upstream {
                uri: origin_form(req.uri()).to_string(),
                headers: headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec())).collect(),
                host_header: host_header(t),
            })
        }
        _ => None,
    };
    Vetted { method: req.method().clone(), uri: req.uri().to_string(), target, upstream }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` to completion on this thread's current-thread runtime (built once).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime")
        });
        rt.block_on(f)
    })
}
