//! A multipart body read strictly: its parts, or a refusal. Parsers read the same body in
//! different ways (where a boundary is taken from, which characters end it, which line
//! ends count, how a name's comments, escapes, encoded words or RFC 2231 pieces are read,
//! which transfer encoding decodes a value), and every difference is a way to hide a
//! `_method` part from a check that reads it one way. So only bodies every parser reads
//! alike are read (the ones browsers, curl, undici, Go, .NET and Python's `requests` and
//! `email` write); anything else is refused:
//!
//! - the `Content-Type`: `multipart/SUBTYPE` with one `boundary` of letters, digits and
//!   `-_.+` (`=` too when quoted: Python's `email` writes `"===...=="`), `boundary=`
//!   nowhere else in it, at most a `charset` besides;
//! - the body: lines ended by CRLF, or all by LF (Python's `email`); the boundary, in any
//!   case, nowhere but on the delimiter lines (so a parser that also ends lines at a lone
//!   CR or LF finds no other part, and a preamble or an epilogue holds none);
//! - a part's headers: `Name: value` lines up to an empty line (no folding, no white
//!   space before a name), at least one; at most one `Content-Disposition`, `form-data`
//!   with a plain or quoted `name` (no `\`, `"` or `=?`) and at most one `filename` and
//!   one `filename*` (RFC 8187 form); a part without a name is known by its `filename`
//!   and `Content-ID` (Rack names it so);
//!   at most one `Content-Transfer-Encoding`, an identity one; a `charset` only of ASCII's
//!   supersets.

/// One part: the names a parser may give it and its value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Part {
    /// Its `name`; without one, its `filename` and its `Content-ID` (Rack names a part by
    /// them).
    pub names: Vec<String>,
    /// Its header lines, as sent (lossy UTF-8).
    pub head: String,
    pub value: Vec<u8>,
}

/// The longest boundary (RFC 2046).
const MAX_BOUNDARY: usize = 70;

/// The boundary of a multipart `Content-Type` (as sent: boundaries are case-sensitive;
/// printable ASCII, as [`super::form::in_form`] lets through). `Err`: a type whose
/// boundary parsers may read differently.
pub(crate) fn boundary(content_type: &str, charset_ok: &dyn Fn(&str) -> bool) -> Result<String, String> {
    let bad = |why: &str| Err(format!("a multipart form whose `Content-Type` {why}: parsers may read it differently"));
    // Rack takes the last `boundary=` it finds anywhere in the type (in any case), PHP the
    // first `boundary`: one only, as the parameter's name.
    if content_type.to_ascii_lowercase().matches("boundary=").count() != 1 {
        return bad("does not hold `boundary=` exactly once");
    }
    let mut params = split_params(content_type).into_iter();
    let kind = params.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !kind
        .strip_prefix("multipart/")
        .is_some_and(|s| !s.is_empty() && s.bytes().all(token_byte) && !s.contains("boundary"))
    {
        return bad("is not `multipart/SUBTYPE`");
    }
    let mut boundary = None;
    for param in params {
        let param = param.trim_matches([' ', '\t']);
        let Some((key, value)) = param.split_once('=') else { return bad("has a parameter that is not `key=value`") };
        let (value, quoted) = match value.strip_prefix('"') {
            Some(q) => match q.strip_suffix('"') {
                Some(inner) if !inner.contains(['"', '\\']) => (inner, true),
                _ => return bad("has a quoted value with escapes"),
            },
            None => (value, false),
        };
        match key.to_ascii_lowercase().as_str() {
            "boundary" if key != "boundary" => return bad("spells `boundary` in capitals"),
            "boundary" => {
                let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_.+".contains(&b) || (quoted && b == b'=');
                if value.is_empty() || value.len() > MAX_BOUNDARY || !value.bytes().all(plain) {
                    return bad("has a boundary of other characters than letters, digits and `-_.+`");
                }
                boundary = Some(value.to_string());
            }
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
    // Where the boundary is, in any case: on the delimiter lines only, or a parser with
    // other line ends, or one that reads a preamble or an epilogue, would cut a part there.
    let found = find_all(&body.to_ascii_lowercase(), delimiter.to_ascii_lowercase().as_bytes());
    let Some(&first) = found.first() else { return bad("without its boundary") };
    let eol: &[u8] = match body[first + delimiter.len()..] {
        [b'\r', b'\n', ..] => b"\r\n",
        [b'\n', ..] => b"\n",
        _ => return bad("whose first boundary line ends otherwise than with CRLF or LF"),
    };
    // A preamble, if any, ends with the line end before the first delimiter.
    if first != 0 && !body[..first].ends_with(eol) {
        return bad("whose first boundary is not on a line of its own");
    }
    let separator = [eol, delimiter.as_bytes()].concat();
    let mut at = first + delimiter.len();
    let mut delimiters = vec![first];
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            break; // the close delimiter; an epilogue holds no boundary (checked below)
        }
        let Some(rest) = rest.strip_prefix(eol) else { return bad("with a boundary line ended otherwise") };
        let start = body.len() - rest.len();
        let Some(end) = find(rest, &separator) else { return bad("that never ends") };
        parts.push(part(&rest[..end], eol, charset_ok)?);
        at = start + end + separator.len();
        delimiters.push(at - delimiter.len());
    }
    if found != delimiters {
        return bad("with its boundary elsewhere than on its own lines");
    }
    Ok(parts)
}

/// One part: headers, an empty line, the value; lines end with `eol`.
fn part(raw: &[u8], eol: &[u8], charset_ok: &dyn Fn(&str) -> bool) -> Result<Part, String> {
    let bad = |why: String| Err(format!("a multipart form with a part {why}: parsers may read it differently"));
    let blank = [eol, eol].concat();
    // A part without headers: werkzeug and Rack read its first lines as its headers.
    if raw.starts_with(eol) {
        return bad("without headers".into());
    }
    let Some(i) = find(raw, &blank) else { return bad("without the empty line after its headers".into()) };
    let (head, value) = (&raw[..i], &raw[i + blank.len()..]);
    // A header in a legacy page charset is not UTF-8; its bytes above 127 are never ASCII.
    let head = String::from_utf8_lossy(head);
    let eol = std::str::from_utf8(eol).unwrap_or("\r\n");
    let (mut names, mut fallback, mut disposition, mut coding) = (Vec::new(), Vec::new(), false, false);
    for line in head.split(eol).filter(|l| !head.is_empty() || !l.is_empty()) {
        let Some((key, v)) = line.split_once(':') else { return bad(format!("header line `{line}`")) };
        if key.is_empty() || !key.bytes().all(token_byte) || line.contains(['\r', '\n', '\0']) {
            return bad(format!("header line `{line}`"));
        }
        let v = v.trim_matches([' ', '\t']);
        match key.to_ascii_lowercase().as_str() {
            "content-disposition" if !disposition => {
                disposition = true;
                let (name, filename) = disposition_names(v)
                    .map_err(|why| format!("a multipart form with a part {why}: parsers may read it differently"))?;
                names.extend(name);
                fallback.extend(filename);
            }
            "content-id" => fallback.push(v.trim_matches(['<', '>']).to_string()),
            "content-transfer-encoding" if !coding => {
                coding = true;
                if !matches!(v.to_ascii_lowercase().as_str(), "7bit" | "8bit" | "binary") {
                    return bad(format!("in `Content-Transfer-Encoding: {v}`"));
                }
            }
            "content-disposition" | "content-transfer-encoding" => return bad(format!("with two `{key}` headers")),
            _ => {}
        }
        for p in split_params(&v.to_ascii_lowercase()).into_iter().skip(1) {
            if let Some(charset) = p.trim().strip_prefix("charset") {
                let charset = charset.trim_start().trim_start_matches('=').trim().trim_matches('"');
                if !charset_ok(charset) {
                    return bad(format!("in charset `{charset}`"));
                }
            }
        }
    }
    if names.is_empty() {
        names = fallback;
    }
    Ok(Part { names, head: head.into_owned(), value: value.to_vec() })
}

/// The `name` and `filename` of a `form-data` disposition. `Err`: a disposition parsers
/// may read differently (RFC 2231 or encoded-word names, escapes or quotes in a name,
/// comments, a parameter given twice, another parameter than `name`, `filename` and
/// `filename*`, a `filename*` not in RFC 8187 form).
fn disposition_names(v: &str) -> Result<(Option<String>, Option<String>), String> {
    let mut params = split_params(v).into_iter();
    if !params.next().unwrap_or_default().trim().eq_ignore_ascii_case("form-data") {
        return Err(format!("whose `Content-Disposition` is not `form-data`: `{v}`"));
    }
    let (mut name, mut filename, mut filename_ext) = (None, None, false);
    for p in params {
        let p = p.trim_matches([' ', '\t']);
        let Some((key, raw)) = p.split_once('=') else {
            return Err(format!("with a `Content-Disposition` parameter `{p}`"));
        };
        let quoted = raw.strip_prefix('"').and_then(|q| q.strip_suffix('"'));
        let token = || Some(raw).filter(|t| !t.is_empty() && t.bytes().all(|b| token_byte(b) || b"[]".contains(&b)));
        let odd = || format!("with a `Content-Disposition` parameter `{p}`");
        match key.to_ascii_lowercase().as_str() {
            "name" if name.is_none() => {
                let value = match quoted {
                    Some(inner) if !inner.contains(['"', '\\']) => Some(inner),
                    Some(_) => None,
                    None => token(),
                };
                name = Some(value.filter(|n| !n.contains("=?")).ok_or_else(odd)?.to_string());
            }
            // A file's name: any quoted string (Go escapes `\` and `"` in it), or a token.
            "filename" if filename.is_none() => filename = Some(quoted.or_else(token).ok_or_else(odd)?.to_string()),
            "filename*" if !filename_ext && ext_value(raw) => filename_ext = true,
            _ => return Err(odd()),
        }
    }
    Ok((name, filename))
}

/// An RFC 8187 `ext-value`: `charset'language'value`, the value of attribute characters
/// and `%XX` only.
fn ext_value(raw: &str) -> bool {
    let mut pieces = raw.splitn(3, '\'');
    let (Some(charset), Some(language), Some(value)) = (pieces.next(), pieces.next(), pieces.next()) else {
        return false;
    };
    let attr = |b: u8| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b);
    let mut bytes = value.bytes();
    let value_ok = loop {
        match bytes.next() {
            None => break true,
            Some(b'%') => {
                let hex = [bytes.next(), bytes.next()];
                if !hex.iter().all(|h| h.is_some_and(|h| h.is_ascii_hexdigit())) {
                    break false;
                }
            }
            Some(b) if attr(b) => {}
            Some(_) => break false,
        }
    };
    !charset.is_empty()
        && charset.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(&b))
        && language.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && value_ok
}

/// `s` cut at each `;` outside double quotes (a `\` in quotes escapes the next character).
fn split_params(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
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
