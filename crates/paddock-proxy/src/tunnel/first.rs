//! The first bytes of a tunnel, read before any of them reaches the upstream (at most
//! 16 KiB; once the first byte came, the rest within `header_timeout`): a TLS ClientHello's
//! server name must be the target (and, under interception, passes
//! [`Interceptor::tunnel`](crate::Interceptor::tunnel)); an HTTP/1 request line makes the
//! tunnel one served request by request ([`super::http`]).
//!
//! Meanwhile the upstream → client direction already flows, so protocols where the
//! server speaks first (SMTP, SSH banners) are not held up; nothing goes the other way
//! until the check is done. The bytes read are handed back to be sent first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::sni::{inspect, Hello, MAX_HELLO};
use crate::host::normalise_host;
use crate::intercept::{Deny, Engine};
use crate::target::Target;

/// The rule of a tunnel closed because its first bytes could not be read as a ClientHello.
pub(crate) const RULE_HELLO: &str = "proxy.client_hello";

/// The rule of a tunnel closed because its ClientHello names another host.
pub(crate) const RULE_SNI: &str = "proxy.sni";

/// How the tunnel goes on after its first bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// Relayed as bytes: these first, then the rest.
    Relay(Vec<u8>),
    /// Plain HTTP/1: served request by request, from these bytes on.
    Http(Vec<u8>),
    /// The client sent nothing for the idle timeout: the tunnel ends as an idle one does.
    Idle,
}

/// Why the tunnel was closed before relaying.
pub(crate) fn hello_deny(reason: String) -> Deny {
    Deny { rule: RULE_HELLO.into(), reason, exfiltration: false }
}

/// Reads the client's first bytes and decides. `Ok(first)`: how the tunnel goes on.
/// `Err(deny)`: close the tunnel. Bytes relayed from the upstream meanwhile are added to
/// `down`. `engine`: the interception, when there is one.
pub(crate) async fn check(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    mut buf: Vec<u8>,
    engine: Option<&Engine>,
    target: &Target,
    timeouts: (Duration, Duration),
    down: &AtomicU64,
) -> Result<First, Deny> {
    let (header_timeout, idle_timeout) = timeouts;
    let (mut cr, mut cw) = client.split();
    let (mut ur, _uw) = upstream.split();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    let mut upstream_open = true;
    let started = Instant::now();
    let mut first_byte: Option<Instant> = (!buf.is_empty()).then(Instant::now);
    loop {
        match inspect(&buf) {
            Hello::NotTls => match request_line(&buf) {
                Some(true) => return Ok(First::Http(buf)),
                Some(false) => return Ok(First::Relay(buf)),
                None if buf.len() >= MAX_HELLO => {
                    return Err(hello_deny(format!("no complete first line in the first {MAX_HELLO} bytes")))
                }
                None => {}
            },
            Hello::Sni(None) => return Ok(First::Relay(buf)),
            Hello::Sni(Some(name)) => {
                let host = normalise_host(&name)
                    .map_err(|e| hello_deny(format!("the ClientHello names {:?}, not a host name: {e}", name)))?;
                // The interceptor first: a placeholder in the name is an exfiltration attempt,
                // recorded as one.
                let denied = engine.and_then(|e| {
                    e.interceptor().tunnel(&target.host.as_policy_str(), target.port, Some(&host.as_policy_str()))
                });
                return match denied {
                    Some(deny) => Err(deny),
                    None if host != target.host => Err(sni_deny(&host.as_policy_str(), target)),
                    None => Ok(First::Relay(buf)),
                };
            }
            Hello::Bad(why) => return Err(hello_deny(format!("unreadable TLS ClientHello: {why}"))),
            Hello::NeedMore if buf.len() >= MAX_HELLO => {
                return Err(hello_deny(format!("no complete TLS ClientHello in the first {MAX_HELLO} bytes")))
            }
            Hello::NeedMore => {}
        }
        let deadline = match first_byte {
            Some(t) => t + header_timeout,
            None => started + idle_timeout,
        };
        tokio::select! {
            read = cr.read(&mut chunk[..MAX_HELLO - buf.len()]) => match read {
                Ok(0) if buf.is_empty() => return Ok(First::Relay(buf)), // closed before a byte: nothing to check
                Ok(0) => return Err(hello_deny("the client closed before its first bytes could be checked".into())),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    first_byte.get_or_insert_with(Instant::now);
                }
                Err(e) => return Err(hello_deny(format!("reading the ClientHello failed: {e}"))),
            },
            read = ur.read(&mut from_upstream), if upstream_open => match read {
                Ok(0) | Err(_) => {
                    // The relay after the check sees the same end and propagates it.
                    upstream_open = false;
                }
                Ok(n) => {
                    if let Err(e) = cw.write_all(&from_upstream[..n]).await {
                        return Err(hello_deny(format!("writing to the client failed: {e}")));
                    }
                    down.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                if first_byte.is_none() {
                    return Ok(First::Idle);
                }
                return Err(hello_deny(format!("no complete TLS ClientHello or first line within {header_timeout:?}")));
            }
        }
    }
}

/// The refusal of a ClientHello that names another host than the tunnel's target.
fn sni_deny(named: &str, target: &Target) -> Deny {
    Deny {
        rule: RULE_SNI.into(),
        reason: format!(
            "the TLS ClientHello names {named}, but this tunnel is for {}: another name needs a tunnel (and a decision) of its own",
            target.authority()
        ),
        exfiltration: false,
    }
}

/// Whether `buf` starts with an HTTP/1 request line (`METHOD target HTTP/x`): `None`
/// while its first line is incomplete and could still be one. A method is a token of
/// capitals, `-` and `_` (servers take methods case-sensitively); any other first bytes
/// are another protocol, decided at once (`ping`, a binary greeting).
fn request_line(buf: &[u8]) -> Option<bool> {
    let method = buf.iter().take_while(|b| b.is_ascii_uppercase() || matches!(b, b'-' | b'_')).count();
    if method == buf.len() {
        return None;
    }
    if method == 0 || buf[method] != b' ' {
        return Some(false);
    }
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    Some(version.len() >= 5 && version[..5].eq_ignore_ascii_case(b"HTTP/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_told_from_other_first_bytes() {
        let cases: [(&[u8], Option<bool>); 15] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Some(true)),
            (b"POST /x http/1.0\n", Some(true)),
            (b"PRI * HTTP/2.0\r\n", Some(true)),
            (b"M-SEARCH * HTTP/1.1\r\n", Some(true)),
            (b"SSH-2.0-x\r\n", Some(false)),
            (b"EHLO a.example\r\n", Some(false)),
            (b"PING\r\n", Some(false)),
            (b"ping", Some(false)),
            (b"\x00\x01", Some(false)),
            (b" GET / HTTP/1.1\r\n", Some(false)),
            // Could still become a request line: wait for more.
            (b"", None),
            (b"GE", None),
            (b"GET", None),
            (b"GET /index.html HTT", None),
            (b"M-", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(request_line(bytes), want, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
