//! The first bytes of a tunnel, read before any of them reaches the upstream (at most
//! 16 KiB; once the first byte came, the rest within `header_timeout`): a TLS ClientHello's
//! server name must be the target (and, under interception, passes
//! [`Interceptor::tunnel`](crate::Interceptor::tunnel)); an HTTP/1 request line makes the
//! tunnel one served request by request ([`super::http`]).
//!
//! Meanwhile the upstream → client direction already flows, so protocols where the
//! server speaks first (SMTP, SSH banners) are not held up. The other way, a ClientHello
//! or a complete first line waits for the decision (the bytes read are handed back to be
//! sent first); an unfinished first line goes on as it comes and is watched until it ends
//! (see [`super`]).

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

/// Reads the client's first bytes and decides. `Ok(first)`: how the tunnel goes on (the
/// bytes in it are the ones not yet sent). `Err(deny)`: close the tunnel. `counters`: the
/// bytes sent each way meanwhile are added to them (up, down). `engine`: the
/// interception, when there is one.
pub(crate) async fn check(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    buf: Vec<u8>,
    engine: Option<&Engine>,
    target: &Target,
    timeouts: (Duration, Duration),
    counters: (&AtomicU64, &AtomicU64),
) -> Result<First, Deny> {
    let checked = check_first(client, upstream, buf, engine, target, timeouts, counters).await;
    if checked.is_err() {
        // A refused tunnel's upstream is reset, not closed: a server that takes a line cut
        // short by a clean end (CPython's does) would act on what went on unfinished.
        if let Err(e) = upstream.set_zero_linger() {
            tracing::debug!(error = %e, "the refused tunnel's upstream could not be set to reset");
        }
    }
    checked
}

/// [`check`] itself.
async fn check_first(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    mut buf: Vec<u8>,
    engine: Option<&Engine>,
    target: &Target,
    timeouts: (Duration, Duration),
    counters: (&AtomicU64, &AtomicU64),
) -> Result<First, Deny> {
    let (header_timeout, idle_timeout) = timeouts;
    let (up, down) = counters;
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    // Bytes of an unfinished first line sent on already (`ping`, `hello there`): a client
    // that waits for its answer is not held up, and until the line ends no server can
    // have taken a request from them.
    let mut sent = 0;
    let mut chunk = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    let mut upstream_open = true;
    let started = Instant::now();
    let mut first_byte: Option<Instant> = (!buf.is_empty()).then(Instant::now);
    let mut last_byte = Instant::now();
    loop {
        match inspect(&buf) {
            Hello::NotTls if preamble(&buf) == Preamble::Yes => {
                return Err(hello_deny(
                    "a PROXY protocol header: a front end that takes it would route what follows unchecked, and believe the source it names; a sandbox has no source to forward".into(),
                ))
            }
            // Could still become one: nothing is sent on until it is told.
            Hello::NotTls if preamble(&buf) == Preamble::Maybe => {}
            Hello::NotTls => match request_line(&buf) {
                Line::Http if sent == 0 => return Ok(First::Http(buf)),
                Line::Http => {
                    return Err(hello_deny(
                        "an HTTP request line that came in pieces, its start sent on before it ended: it cannot be served request by request".into(),
                    ))
                }
                Line::Other => return Ok(First::Relay(buf.split_off(sent))),
                Line::Word | Line::Pending if buf.len() >= MAX_HELLO => {
                    return Err(hello_deny(format!("no end of the first line in the first {MAX_HELLO} bytes")))
                }
                Line::Word | Line::Pending => {
                    if let Err(e) = uw.write_all(&buf[sent..]).await {
                        return Err(hello_deny(format!("writing to the upstream failed: {e}")));
                    }
                    up.fetch_add((buf.len() - sent) as u64, Ordering::Relaxed);
                    sent = buf.len();
                }
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
            // Watching an unfinished first line that went on: as any relay, until idle.
            Some(_) if sent > 0 => last_byte + idle_timeout,
            Some(t) => t + header_timeout,
            None => started + idle_timeout,
        };
        tokio::select! {
            read = cr.read(&mut chunk[..MAX_HELLO - buf.len()]) => match read {
                // Closed with nothing unsent (before a byte, or after an unfinished line):
                // nothing to check.
                // A line that went on unfinished and ends with the client's end: some
                // servers take it as it is.
                Ok(0) if sent == buf.len() && sent > 0 && request_line(&[&buf[..], b"\n"].concat()) == Line::Http => {
                    return Err(hello_deny("an HTTP request line that the client's end cut short: it cannot be served request by request".into()))
                }
                Ok(0) if sent == buf.len() => return Ok(First::Relay(Vec::new())),
                Ok(0) => return Err(hello_deny("the client closed before its first bytes could be checked".into())),
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    first_byte.get_or_insert_with(Instant::now);
                    last_byte = Instant::now();
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
                    last_byte = Instant::now();
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                if first_byte.is_none() || sent > 0 {
                    return Ok(First::Idle);
                }
                return Err(hello_deny(format!("no complete TLS ClientHello or first line within {header_timeout:?}")));
            }
        }
    }
}

/// HAProxy's PROXY protocol headers: version 1's text and version 2's binary signature.
const PROXY_V1: &[u8] = b"PROXY ";
const PROXY_V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Whether a tunnel's first bytes are a PROXY protocol header.
#[derive(Debug, PartialEq, Eq)]
enum Preamble {
    Yes,
    /// A beginning of one so far.
    Maybe,
    No,
}

/// Whether `buf` starts with a PROXY protocol header (found by an attack: the header is no
/// request line, so the tunnel was relayed as another protocol, and a front end that
/// takes the header routed the request after it by its `Host`, unchecked).
fn preamble(buf: &[u8]) -> Preamble {
    // Version 2's signature exactly; version 1's word in any case, after any white space
    // and followed by any (what a lenient front end might still take; found by the
    // re-check: `proxy `, `PROXY\t`, a leading space or CRLF went on).
    if buf.starts_with(PROXY_V2) {
        return Preamble::Yes;
    }
    if PROXY_V2.starts_with(buf) {
        return Preamble::Maybe;
    }
    let rest = &buf[buf.iter().take_while(|&&b| white(b)).count()..];
    let word = &PROXY_V1[..5];
    match rest.len() {
        n if n > word.len() => match rest[..5].eq_ignore_ascii_case(word) && white(rest[5]) {
            true => Preamble::Yes,
            false => Preamble::No,
        },
        _ if word[..rest.len()].eq_ignore_ascii_case(rest) => Preamble::Maybe,
        _ => Preamble::No,
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

/// What a tunnel's first bytes that are not TLS say so far.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// An HTTP/1 request line (`METHOD target HTTP/x`, after any empty lines).
    Http,
    /// Another protocol.
    Other,
    /// One word so far, no space yet (`ping`): could become a request line.
    Word,
    /// A word and a space, the line not ended: could be a request line.
    Pending,
}

/// Reads the first line the way the most lenient server would (CPython's `http.server`
/// splits it on any white space, Latin-1's included, and takes `GET x` as HTTP/0.9, the
/// headers after it still read): white space before it skipped, a method of any token
/// characters in any case, words split on any white space, the line ended by `\n`. A
/// request line when a later word is an `HTTP/` version, when the target is a request
/// target (`/…`, `*`, `scheme://…`), or when it is `GET` and one other word.
fn request_line(buf: &[u8]) -> Line {
    let skipped = buf.iter().take_while(|&&b| white(b)).count();
    let rest = &buf[skipped..];
    let method = rest.iter().take_while(|&&b| token_char(b)).count();
    if method == rest.len() {
        return Line::Word;
    }
    if method == 0 || !white(rest[method]) {
        return Line::Other;
    }
    let Some(end) = rest.iter().position(|&b| b == b'\n') else { return Line::Pending };
    let words: Vec<&[u8]> = rest[..end].split(|&b| white(b)).filter(|w| !w.is_empty()).collect();
    let [first, target, ..] = words[..] else { return Line::Other };
    let versioned = words[1..].iter().any(|w| w.len() >= 5 && w[..5].eq_ignore_ascii_case(b"HTTP/"));
    let is_target = target.starts_with(b"/") || target == b"*" || target.windows(3).any(|w| w == b"://");
    let simple_get = words.len() == 2 && first.eq_ignore_ascii_case(b"GET");
    if versioned || is_target || simple_get {
        Line::Http
    } else {
        Line::Other
    }
}

/// White space to some server: ASCII's, the separators `\x1c`–`\x1f` and Latin-1's NEL and
/// no-break space (what Python's `str.split` splits a Latin-1 request line on).
fn white(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x1c..=0x1f | 0x85 | 0xa0)
}

/// RFC 9110's `tchar`: what a method may be made of.
fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_protocol_headers_are_told_from_their_beginnings_and_from_the_rest() {
        assert_eq!(preamble(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), Preamble::Yes);
        assert_eq!(preamble(b"\r\n\r\n\0\r\nQUIT\n\x21\x11"), Preamble::Yes);
        assert_eq!(preamble(b"PRO"), Preamble::Maybe);
        assert_eq!(preamble(b"\r\n\r\n"), Preamble::Maybe);
        assert_eq!(preamble(b"PROXYX"), Preamble::No);
        for v in [&b"proxy TCP4 "[..], b"PROXY\tTCP4", b" PROXY TCP4", b"\r\nPROXY TCP4", b"pRoXy UNKNOWN"] {
            assert_eq!(preamble(v), Preamble::Yes, "{:?}", String::from_utf8_lossy(v));
        }
        assert_eq!(preamble(b"  prox"), Preamble::Maybe);
        assert_eq!(preamble(b"POST / HTTP/1.1\r\n"), Preamble::No);
        assert_eq!(preamble(b"\r\nGET / HTTP/1.1\r\n"), Preamble::No);
    }

    #[test]
    fn request_lines_are_told_from_other_first_bytes() {
        let cases: [(&[u8], Line); 30] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n", Line::Http),
            (b"post /x http/1.0\n", Line::Http),
            (b"PRI * HTTP/2.0\r\n", Line::Http),
            (b"M-SEARCH * HTTP/1.1\r\n", Line::Http),
            // What lenient servers also take: white space first or between, no version.
            (b"\r\n\r\nGET / HTTP/1.1\r\n", Line::Http),
            (b"GET\t/\tHTTP/1.1\r\nHost: a", Line::Http),
            (b" GET / HTTP/1.1\r\n", Line::Http),
            (b"\x0bGET\x0c/\x1cHTTP/1.1\n", Line::Http),
            (b"GET\xa0/\x85HTTP/1.1\n", Line::Http),
            (b"GET\r/\rHTTP/1.1\n", Line::Http),
            (b"GET /v09\r\nHost: a\r\n", Line::Http),
            (b"GET abc\r\n", Line::Http),
            (b"get http://a.example/ \r\n", Line::Http),
            (b"OPTIONS * \n", Line::Http),
            (b"FOO bar HTTP/1.1 extra\n", Line::Http),
            (b"SSH-2.0-x\r\n", Line::Other),
            (b"EHLO a.example\r\n", Line::Other),
            (b"a1 LOGIN user pass\r\n", Line::Other),
            (b"PING\r\n", Line::Other),
            (b"\x00\x01", Line::Other),
            (b"{\"jsonrpc\":1}", Line::Other),
            // Unfinished: sent on at once, the line watched until it ends.
            (b"ping", Line::Word),
            (b"GE", Line::Word),
            (b"\r\n", Line::Word),
            (b" \t", Line::Word),
            (b"*1", Line::Word),
            (b"GET /index.html HTT", Line::Pending),
            (b"get ", Line::Pending),
            (b"AUTH x", Line::Pending),
            (b"GET / HTTP/1.1\rHost: a\r", Line::Pending),
        ];
        for (bytes, want) in cases {
            assert_eq!(request_line(bytes), want, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
