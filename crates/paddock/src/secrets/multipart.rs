//! A multipart body read strictly: its parts, or a refusal. Parsers read the same body in
//! different ways (where a boundary is taken from, which line ends count, how a name's
//! comments, escapes, encoded words or RFC 2231 pieces are read, which transfer encoding
//! decodes a value), and every difference is a way to hide a `_method` part from a check
//! that reads it one way. So only the form every client writes is read (the one browsers,
//! curl, undici and Python's `requests` send); anything else, on which parsers may
//! disagree, is refused:
//!
//! - the `Content-Type`: `multipart/SUBTYPE`, one `boundary` of plain characters (quoted
//!   or not), at most a `charset` besides;
//! - the body: the first line is the first delimiter (no preamble); every delimiter ends
//!   with CRLF, the last with `--` and at most a CRLF after it; the boundary appears
//!   nowhere else, in any case (a parser that ends lines at a lone LF or CR finds no
//!   other part);
//! - a part's headers: `Name: value` lines ended by CRLF, up to an empty line; at most one
//!   `Content-Disposition`, `form-data` with a quoted or plain `name` (no `\`, no `=?`)
//!   and optional `filename`s; at most one `Content-Transfer-Encoding`, an identity one;
//!   a `charset` only of ASCII's supersets.

/// One part: its name (when it has one) and its value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Part {
    pub name: Option<String>,
    pub value: Vec<u8>,
}

/// The longest boundary (RFC 2046).
const MAX_BOUNDARY: usize = 70;

/// The boundary of a multipart `Content-Type` (as sent: boundaries are case-sensitive).
/// `Err`: a type whose boundary parsers may read differently.
pub(crate) fn boundary(content_type: &str, charset_ok: &dyn Fn(&str) -> bool) -> Result<String, String> {
    let bad = |why: &str| Err(format!("a multipart form whose `Content-Type` {why}: parsers may read it differently"));
    let mut params = split_params(content_type).into_iter();
    let kind = params.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !kind.strip_prefix("multipart/").is_some_and(|s| !s.is_empty() && s.bytes().all(token_byte)) {
        return bad("is not `multipart/SUBTYPE`");
    }
    let mut boundary = None;
    for param in params {
        let param = param.trim_start_matches([' ', '\t']).trim_end_matches([' ', '\t']);
        let Some((key, value)) = param.split_once('=') else { return bad("has a parameter that is not `key=value`") };
        let value = match value.strip_prefix('"') {
            Some(q) => match q.strip_suffix('"') {
                Some(inner) if !inner.contains(['"', '\\']) => inner,
                _ => return bad("has a quoted value with escapes"),
            },
            None => value,
        };
        match key.to_ascii_lowercase().as_str() {
            "boundary" if boundary.is_none() => {
                let plain = |b: u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&b);
                if value.is_empty()
                    || value.len() > MAX_BOUNDARY
                    || !value.bytes().all(plain)
                    || value.contains(['(', ')'])
                {
                    return bad("has a boundary of other characters than letters, digits and `'+_,-./:=?`");
                }
                boundary = Some(value.to_string());
            }
            "boundary" => return bad("names more than one boundary"),
            "charset" if charset_ok(value) => {}
            _ => return bad(&format!("has a parameter `{key}` besides the boundary")),
        }
    }
    match boundary {
        Some(b) => Ok(b),
        None => bad("names no boundary"),
    }
}

/// The parts of `body` under `boundary`, or why it is refused.
pub(crate) fn parts(body: &[u8], boundary: &str, charset_ok: &dyn Fn(&str) -> bool) -> Result<Vec<Part>, String> {
    let bad = |why: &str| Err(format!("a multipart form {why}: parsers may read it differently"));
    let delimiter = format!("--{boundary}");
    // The boundary, in any case, where no delimiter is: a parser with other line ends
    // would cut a part there.
    let lower = body.to_ascii_lowercase();
    let needle = delimiter.to_ascii_lowercase().into_bytes();
    let found: Vec<usize> = find_all(&lower, &needle);
    let Some(mut at) = body.strip_prefix(delimiter.as_bytes()).map(|_| delimiter.len()) else {
        return bad("that does not begin with its boundary");
    };
    let mut delimiters = vec![0];
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if let Some(after) = rest.strip_prefix(b"--") {
            if !(after.is_empty() || after == b"\r\n") {
                return bad("with anything after its last boundary");
            }
            break;
        }
        let Some(rest) = rest.strip_prefix(b"\r\n") else { return bad("with a boundary line not ended by CRLF") };
        let start = body.len() - rest.len();
        let Some(end) = find(rest, format!("\r\n{delimiter}").as_bytes()) else {
            return bad("that never ends");
        };
        parts.push(part(&rest[..end], charset_ok)?);
        at = start + end + 2 + delimiter.len();
        delimiters.push(at - delimiter.len());
    }
    if found != delimiters {
        return bad("with its boundary elsewhere than on its own lines");
    }
    Ok(parts)
}

/// One part: headers, an empty line, the value.
fn part(raw: &[u8], charset_ok: &dyn Fn(&str) -> bool) -> Result<Part, String> {
    let bad = |why: String| Err(format!("a multipart form with a part {why}: parsers may read it differently"));
    let Some(head_end) = find(raw, b"\r\n\r\n").map(|i| i + 2).or_else(|| raw.starts_with(b"\r\n").then_some(0)) else {
        return bad("without the empty line after its headers".into());
    };
    let head = &raw[..head_end];
    let value = raw[head_end..].strip_prefix(b"\r\n").unwrap_or(&raw[head_end..]).to_vec();
    let Ok(head) = std::str::from_utf8(head) else { return bad("whose headers are not text".into()) };
    let (mut name, mut disposition, mut coding) = (None, false, false);
    for line in head.split_terminator("\r\n") {
        let Some((key, v)) = line.split_once(':') else { return bad(format!("header line `{line}`")) };
        if key.is_empty() || !key.bytes().all(token_byte) || line.contains(['\r', '\n']) {
            return bad(format!("header line `{line}`"));
        }
        let v = v.trim_matches([' ', '\t']);
        match key.to_ascii_lowercase().as_str() {
            "content-disposition" if !disposition => {
                disposition = true;
                name = disposition_name(v)
                    .map_err(|why| format!("a multipart form with a part {why}: parsers may read it differently"))?;
            }
            "content-transfer-encoding" if !coding => {
                coding = true;
                if !matches!(v.to_ascii_lowercase().as_str(), "7bit" | "8bit" | "binary") {
                    return bad(format!("in `Content-Transfer-Encoding: {v}`"));
                }
            }
            "content-disposition" | "content-transfer-encoding" => return bad(format!("with two `{key}` headers")),
            _ => {}
        }
        let lower = v.to_ascii_lowercase();
        if let Some(charset) = lower.split(';').filter_map(|p| p.trim().strip_prefix("charset=")).next() {
            if !charset_ok(charset.trim_matches('"')) {
                return bad(format!("in charset `{charset}`"));
            }
        }
    }
    Ok(Part { name, value })
}

/// The `name` of a `form-data` disposition (`None`: it has none). `Err`: a disposition
/// parsers may read differently (RFC 2231 or encoded-word names, escapes, comments, a
/// parameter given twice, another parameter than `name` and `filename`).
fn disposition_name(v: &str) -> Result<Option<String>, String> {
    let mut params = split_params(v).into_iter();
    if !params.next().unwrap_or_default().trim().eq_ignore_ascii_case("form-data") {
        return Err(format!("whose `Content-Disposition` is not `form-data`: `{v}`"));
    }
    let (mut name, mut filename) = (None, false);
    for p in params {
        let p = p.trim_start_matches([' ', '\t']).trim_end_matches([' ', '\t']);
        let Some((key, value)) = p.split_once('=') else {
            return Err(format!("with a `Content-Disposition` parameter `{p}`"));
        };
        let value = match value.strip_prefix('"') {
            Some(q) => q.strip_suffix('"').filter(|inner| !inner.contains(['"', '\\'])),
            None => Some(value).filter(|t| !t.is_empty() && t.bytes().all(|b| token_byte(b) || b"[]".contains(&b))),
        };
        let Some(value) = value else { return Err(format!("with a `Content-Disposition` value `{p}`")) };
        match key.to_ascii_lowercase().as_str() {
            "name" if name.is_none() && !value.contains("=?") => name = Some(value.to_string()),
            "filename" | "filename*" if !filename => filename = true,
            _ => return Err(format!("with a `Content-Disposition` parameter `{key}`")),
        }
    }
    Ok(name)
}

/// `s` cut at each `;` outside double quotes.
fn split_params(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// A byte of an RFC 9110 token.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}
