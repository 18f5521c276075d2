//! One HTTP/1.1 POST to the collector, on a blocking socket with timeouts.
//!
//! Hand-written (about a page) instead of an HTTP client crate: the audit crate is
//! synchronous and has no async runtime, the exporter needs exactly one request shape,
//! and plain `http://` to a local collector is all it speaks (see
//! [`Endpoint`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::endpoint::Endpoint;

/// Timeouts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (each address the name resolves to).
    pub connect: Duration,
    /// Each read or write after that.
    pub io: Duration,
}

impl Default for Timeouts {
    /// 3 s to connect, 10 s per read or write.
    fn default() -> Self {
        Timeouts { connect: Duration::from_secs(3), io: Duration::from_secs(10) }
    }
}

/// The collector's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body (at most 64 KiB of it).
    pub body: String,
}

/// Largest response body read.
const MAX_BODY: u64 = 64 * 1024;

/// POSTs `body` (`content_type`) to `endpoint`. A connection or protocol failure is an
/// `Err` with the reason; any HTTP status is an `Ok`.
pub fn post(endpoint: &Endpoint, content_type: &str, body: &[u8], t: Timeouts) -> Result<Response, String> {
    let addrs = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", endpoint.host))?;
    let mut last = format!("{} resolves to no address", endpoint.host);
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, t.connect) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("cannot connect to {a}: {e}"),
        }
    }
    let mut s = stream.ok_or(last)?;
    s.set_read_timeout(Some(t.io)).and_then(|()| s.set_write_timeout(Some(t.io))).map_err(|e| e.to_string())?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nUser-Agent: paddock/{}\r\nConnection: close\r\n\r\n",
        endpoint.path,
        endpoint.authority(),
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).map_err(|e| format!("sending: {e}"))?;
    read_response(BufReader::new(s)).map_err(|e| format!("reading the answer: {e}"))
}

fn read_response(mut r: impl BufRead) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    r.by_ref().take(8192).read_line(&mut line)?;
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| bad("not an HTTP/1.x status line"))?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for _ in 0..100 {
        line.clear();
        if r.by_ref().take(8192).read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        // The body only feeds error messages and partial-success counts: take it raw.
        r.take(MAX_BODY).read_to_end(&mut body)?;
    } else {
        r.take(length.unwrap_or(MAX_BODY).min(MAX_BODY)).read_to_end(&mut body)?;
    }
    Ok(Response { status, body: String::from_utf8_lossy(&body).into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
        let r = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra"[..]).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        let r = read_response(&b"HTTP/1.0 503 Busy\r\n\r\ndown"[..]).unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "down"));
        assert!(read_response(&b"SSH-2.0-x\r\n"[..]).is_err());
    }
}
