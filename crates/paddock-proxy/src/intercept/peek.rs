//! Opaque tunnels under interception: before any byte of the client reaches the
//! upstream, its first bytes are read (at most 16 KiB; once the first byte came, the rest
//! of the ClientHello within `header_timeout`) and, when they are a TLS ClientHello with
//! a server name, that name goes to [`Interceptor::tunnel`](super::Interceptor::tunnel).
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
use super::{Deny, Engine};
use crate::host::normalise_host;
use crate::target::Target;

/// The rule of a tunnel closed because its first bytes could not be read as a ClientHello.
pub(crate) const RULE_HELLO: &str = "proxy.client_hello";

/// Why the tunnel was closed before relaying.
pub(crate) fn hello_deny(reason: String) -> Deny {
    Deny { rule: RULE_HELLO.into(), reason, exfiltration: false }
}

/// Reads the client's first bytes and decides. `Ok(bytes)`: relay them first, then the
/// rest. `Err(deny)`: close the tunnel. Bytes relayed from the upstream meanwhile are
/// added to `down`.
pub(crate) async fn check(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    mut buf: Vec<u8>,
    engine: &Engine,
    target: &Target,
    timeouts: (Duration, Duration),
    down: &AtomicU64,
) -> Result<Vec<u8>, Deny> {
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
            Hello::NotTls | Hello::Sni(None) => return Ok(buf),
            Hello::Sni(Some(name)) => {
                let host = normalise_host(&name)
                    .map_err(|e| hello_deny(format!("the ClientHello names {:?}, not a host name: {e}", name)))?;
                return match engine.interceptor().tunnel(
                    &target.host.as_policy_str(),
                    target.port,
                    Some(&host.as_policy_str()),
                ) {
                    Some(deny) => Err(deny),
                    None => Ok(buf),
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
                Ok(0) if buf.is_empty() => return Ok(buf), // closed before a byte: nothing to check
                Ok(0) => return Err(hello_deny("the client closed mid-ClientHello".into())),
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
                return Err(hello_deny(if first_byte.is_some() {
                    format!("no complete TLS ClientHello within {header_timeout:?}")
                } else {
                    format!("the client sent nothing for {idle_timeout:?}")
                }));
            }
        }
    }
}
