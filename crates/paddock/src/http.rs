//! The response of an `http_request` call, read from what its confined `curl -i` printed:
//! status, headers and body for [`CallOutcome`](crate::CallOutcome).
//!
//! curl runs with `--suppress-connect-headers`, so the proxy's `CONNECT` answer is not in
//! the output; interim `1xx` responses are skipped, the final one is kept.

use std::collections::BTreeMap;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Parses `curl -i` output; `None` when it does not start with a status line.
pub(crate) fn parse(mut out: &[u8]) -> Option<Response> {
    loop {
        let (head, rest) = split_head(out)?;
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let status_line = lines.next()?;
        let mut parts = status_line.split_whitespace();
        if !parts.next()?.starts_with("HTTP/") {
            return None;
        }
        let status: u16 = parts.next()?.parse().ok()?;
        if (100..200).contains(&status) && rest.starts_with(b"HTTP/") {
            out = rest;
            continue;
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else { continue };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.to_string());
        }
        return Some(Response { status, headers, body: rest.to_vec() });
    }
}

/// The head (up to the blank line) and the rest.
fn split_head(out: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = out.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    let lf = out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let (i, n) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        // Headers only, no blank line: a response cut short.
        (None, None) if out.starts_with(b"HTTP/") => return Some((out, &[])),
        (None, None) => return None,
    };
    Some((&out[..i], &out[i + n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_response_after_interim_ones() {
        let out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\nhello\r\n\r\nHTTP/1.1 200 x";
        let r = parse(out).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(r.headers["set-cookie"], "a=1, b=2");
        assert_eq!(r.body, b"hello\r\n\r\nHTTP/1.1 200 x");
        let r = parse(b"HTTP/2 204\r\nx: y\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        assert_eq!(parse(b"curl: (7) failed"), None);
        assert_eq!(parse(b""), None);
    }
}
