//! The methods a server may take from a request's form body or query (`_method=DELETE`
//! on a `POST`: Rails, Symfony, Laravel, Express's `method-override`); and the forms whose
//! method cannot be known, refused.
//!
//! Urlencoded pairs (a query, a urlencoded or untyped body) are read as loosely as any
//! parser reads them: keys as PHP reads them (cut at a NUL, `.`, ` ` and `[` made `_`) and
//! as `qs` and Rack read them (`[_method]`, `_method[]`). A multipart body is read
//! strictly ([`super::multipart`]): parsers differ too much on odd ones, so only bodies
//! every parser reads alike are read, and anything else refused. A form a server would first
//! decode (a `Content-Encoding`), or read in a charset that does not keep ASCII as it is
//! (UTF-16, UTF-7, ISO-2022, EBCDIC, Shift_JIS; declared in a `Content-Type`, a part or
//! `_charset_`), or sent with two `Content-Type`s, has a method that cannot be known here:
//! it is refused.

use paddock_proxy::RequestParts;

/// Whether `charset` (lower case) reads every ASCII byte as that ASCII character and
/// never makes an ASCII character of other bytes, so `_method` is what it looks like: UTF-8
/// and ASCII, the single-byte ISO 8859, Windows, KOI8, Mac and DOS code pages (the labels
/// browsers send for them too), and EUC (whose multibyte characters use bytes above 127
/// only). Not UTF-16 or UTF-32, UTF-7, ISO-2022 (escape sequences of ASCII bytes), EBCDIC,
/// nor Shift_JIS, GBK, Big5 or GB18030 (a second byte in ASCII's range).
fn ascii_superset(charset: &str) -> bool {
    let c = charset;
    let number = |prefixes: &[&str]| prefixes.iter().find_map(|p| c.strip_prefix(p)?.parse::<u16>().ok());
    let iso = ["iso-8859-", "iso8859-", "iso_8859-", "iso8859_"]
        .iter()
        .find_map(|p| c.strip_prefix(p))
        .map(|rest| rest.trim_end_matches("-i").trim_end_matches("-e"))
        .and_then(|n| n.parse::<u16>().ok());
    matches!(
        c,
        "utf-8"
            | "utf8"
            | "unicode-1-1-utf-8"
            | "us-ascii"
            | "ascii"
            | "ansi_x3.4-1968"
            | "koi8-r"
            | "koi8-u"
            | "koi8-ru"
            | "koi8"
            | "koi"
            | "euc-jp"
            | "euc-kr"
            | "euc-cn"
            | "tis-620"
            | "macintosh"
            | "mac"
            | "x-mac-roman"
            | "x-mac-cyrillic"
            | "x-mac-ukrainian"
            | "csmacintosh"
            | "csisolatincyrillic"
            | "cyrillic"
            | "arabic"
            | "greek"
            | "hebrew"
            | "visual"
            | "logical"
    ) || iso.is_some_and(|n| (1..=16).contains(&n))
        || number(&["latin", "l", "csisolatin"]).is_some_and(|n| (1..=10).contains(&n))
        || number(&["windows-", "cp", "x-cp", "win", "ibm", "dos-"])
            .is_some_and(|n| matches!(n, 437 | 737 | 775 | 850..=869 | 874 | 1250..=1258))
        || number(&["iso-ir-"]).is_some_and(|n| {
            matches!(n, 100 | 101 | 109 | 110 | 126 | 127 | 138 | 144 | 148 | 157 | 166 | 179 | 199 | 203 | 226)
        })
}

/// The methods a form body names (`_method`), read as any parser might, each with where it
/// was written. `Err`: a form whose method cannot be known (why).
pub(crate) fn in_form(req: &RequestParts<'_>, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    use paddock_proxy::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
    for value in req.headers.get_all(CONTENT_ENCODING) {
        let coding = String::from_utf8_lossy(value.as_bytes()).trim().to_ascii_lowercase();
        if !coding.is_empty() && coding != "identity" {
            return Err(format!(
                "a form body with `Content-Encoding: {coding}` to a host with request rules: a server would decode it first, so the method it may take from it is unknown"
            ));
        }
    }
    let types: Vec<String> = req
        .headers
        .get_all(CONTENT_TYPE)
        .iter()
        .map(|t| String::from_utf8_lossy(t.as_bytes()).trim_matches([' ', '\t']).to_string())
        .collect();
    if types.len() > 1 {
        return Err("a form with more than one `Content-Type` to a host with request rules: a server may read it as any of them".into());
    }
    let content_type = types.into_iter().next().unwrap_or_default();
    // A byte a server may strip or read otherwise (`\xa0` and `\x85` are white space to
    // Python, which then reads the form).
    if !content_type.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err("a form whose `Content-Type` holds other bytes than printable ASCII, to a host with request rules: a server may read it as a form".into());
    }
    charset_known(&content_type.to_ascii_lowercase())?;
    form_methods(&content_type, body)
}

/// The `_method` values of `key=value` pairs (a query, a urlencoded form), `&` or `;`
/// between them, each key read as every parser reads it ([`method_key`]).
pub(crate) fn encoded_methods(pairs: &str) -> Vec<String> {
    let mut found = Vec::new();
    for pair in pairs.split(['&', ';']) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let named = method_key(&decoded(key));
        found.extend(readings(&decoded(value)).into_iter().filter(|m| named || (mentions_method(key) && is_method(m))));
    }
    found
}

/// Whether a key (decoded) is the method's as some parser reads it: as PHP does (cut at
/// a NUL, leading spaces gone, `.`, ` ` and `[` made `_`: `_method`, `_method_...`), or a
/// key whose letters are `method` but which is not `method` itself: `[_method]` (`qs`,
/// Rack), `_method[]` and `_method[0]` (an array whose first value `method-override`
/// takes), `_METHOD`.
fn method_key(key: &str) -> bool {
    let cut = key.split('\0').next().unwrap_or_default();
    let php = cut.trim_start().replace(['.', ' ', '['], "_").to_ascii_lowercase();
    if php == "_method" || php.starts_with("_method_") {
        return true;
    }
    [key, cut].iter().any(|k| {
        let letters: String = k.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect();
        letters == "method" && !k.eq_ignore_ascii_case("method")
    })
}

/// The `_method` values of a form body under its `Content-Type`: as multipart parts for a
/// `multipart/` type (read strictly), else as urlencoded pairs (CGI and Rack read an
/// untyped `POST` so).
fn form_methods(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let place = || "the form body's `_method`".to_string();
    let charset_ok = |c: &str| ascii_superset(&c.trim().to_ascii_lowercase());
    let mut found = Vec::new();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = super::multipart::boundary(content_type, &charset_ok)?;
        for part in super::multipart::parts(body, &boundary, &charset_ok)? {
            let value = String::from_utf8_lossy(&part.value).trim().to_string();
            // HTML's `_charset_` field names the form's charset to a server that honours it.
            if part.names.iter().any(|n| n.eq_ignore_ascii_case("_charset_")) {
                charset_named(&value)?;
            }
            let named = part.names.iter().any(|n| method_key(n) || method_key(&decoded(n)));
            for m in readings(&value) {
                if named || (mentions_method(&part.head) && is_method(&m)) {
                    found.push((place(), m));
                }
            }
        }
        return Ok(found);
    }
    let text = String::from_utf8_lossy(body);
    for (key, charset) in text.split(['&', ';']).filter_map(|p| p.split_once('=')) {
        if decoded(key).trim().eq_ignore_ascii_case("_charset_") {
            charset_named(&decoded(charset))?;
        }
    }
    found.extend(encoded_methods(&text).into_iter().map(|m| (place(), m)));
    Ok(found)
}

/// The methods a server may read in an override's `value`: upper-cased the Unicode way
/// (Python's `upper` and Ruby's `upcase` make `ı` an `I`, `ﬁ` an `FI`), then only its
/// letters and `-` (a server may trim NUL, `\x1c`–`\x1f`, a BOM or a zero-width space
/// that Rust's `trim` keeps); with numeric character references decoded too (`qs` with
/// `interpretNumericEntities`). What is left when that leaves nothing: the value, trimmed.
fn readings(value: &str) -> Vec<String> {
    let canonical =
        |v: &str| -> String { v.to_uppercase().chars().filter(|c| c.is_ascii_uppercase() || *c == '-').collect() };
    let mut out = Vec::new();
    for v in [value.to_string(), numeric_references(value)] {
        let c = canonical(&v);
        let m = if c.is_empty() { v.trim().to_string() } else { c };
        if !m.is_empty() && !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// `&#68;` and `&#x44;` as the characters they name.
fn numeric_references(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("&#") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let (digits, radix) = match after.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16),
            None => (after, 10),
        };
        let len = digits.chars().take_while(|c| c.is_digit(radix)).count();
        let ch = u32::from_str_radix(&digits[..len], radix).ok().and_then(char::from_u32);
        match ch {
            Some(c) if len > 0 => {
                out.push(c);
                let used = after.len() - digits.len() + len;
                rest = after[used..].strip_prefix(';').unwrap_or(&after[used..]);
            }
            _ => {
                out.push_str("&#");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `text` (a part's headers, a key) mentions `method` in any case, as sent or
/// percent-decoded. Parsers disagree on where a part's name ends (`name=_method]x` is
/// `_method` to werkzeug, `filename="x; name=_method"` to formidable, a `Content-ID` to
/// Rack when the disposition is long), so a value that is an HTTP method, in a part or
/// under a key that mentions `method` anywhere, is decided as a method too.
fn mentions_method(text: &str) -> bool {
    text.to_ascii_lowercase().contains("method") || decoded(text).to_ascii_lowercase().contains("method")
}

/// Whether `value` is a method of the IANA registry (or `PURGE`), in any case.
fn is_method(value: &str) -> bool {
    const METHODS: &[&str] = &[
        "ACL",
        "BASELINE-CONTROL",
        "BIND",
        "CHECKIN",
        "CHECKOUT",
        "CONNECT",
        "COPY",
        "DELETE",
        "GET",
        "HEAD",
        "LABEL",
        "LINK",
        "LOCK",
        "MERGE",
        "MKACTIVITY",
        "MKCALENDAR",
        "MKCOL",
        "MKREDIRECTREF",
        "MKWORKSPACE",
        "MOVE",
        "OPTIONS",
        "ORDERPATCH",
        "PATCH",
        "POST",
        "PRI",
        "PROPFIND",
        "PROPPATCH",
        "PURGE",
        "PUT",
        "QUERY",
        "REBIND",
        "REPORT",
        "SEARCH",
        "TRACE",
        "UNBIND",
        "UNCHECKOUT",
        "UNLINK",
        "UNLOCK",
        "UPDATE",
        "UPDATEREDIRECTREF",
        "VERSION-CONTROL",
    ];
    METHODS.iter().any(|m| m.eq_ignore_ascii_case(value.trim()))
}

/// `Err` when `text` (a `Content-Type`, a part's header block; lower case) declares a
/// charset other than ASCII's supersets.
fn charset_known(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(at) = rest.find("charset") {
        rest = &rest[at + "charset".len()..];
        let Some(value) = rest.trim_start().strip_prefix('=') else { continue };
        let value: String = value
            .trim_start()
            .trim_start_matches('"')
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '"' | ','))
            .collect();
        charset_named(&value)?;
    }
    Ok(())
}

/// `Err` unless `charset` is empty or an [`ascii_superset`].
fn charset_named(charset: &str) -> Result<(), String> {
    let c = charset.trim().trim_matches('"').to_ascii_lowercase();
    if c.is_empty() || ascii_superset(&c) {
        return Ok(());
    }
    Err(format!(
        "a form in charset `{c}` to a host with request rules: a server would decode it first, so the method it may take from it is unknown (send it in UTF-8)"
    ))
}

/// A query component as a server reads it: `+` a space, `%XX` its byte (lossy).
pub(crate) fn decoded(s: &str) -> String {
    String::from_utf8_lossy(&super::inspect::percent_decoded(&s.replace('+', " "))).into_owned()
}
