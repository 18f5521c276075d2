//! The methods a server may take from a request's form body or query (`_method=DELETE`
//! on a `POST`: Rails, Symfony, Laravel, Express's `method-override`), read as loosely as
//! any parser reads them; and the forms whose method cannot be known at all, refused.
//!
//! Parsers differ, so every reading any of them makes is taken: keys as PHP reads them (cut
//! at a NUL, `.`, ` ` and `[` made `_`) and as `qs` and Rack read them (`[_method]`,
//! `_method[]`); a multipart body cut at every boundary a parser may take (each
//! `boundary=` given, or the body's own first line), its lines ended by CRLF, LF or a lone
//! CR; a part's header block ended by an empty line or by one of white space only; names
//! in RFC 2231 form, whole (`name*=`) or continued (`name*0=`, `name*1*=`); a part's value
//! as sent and as each `Content-Transfer-Encoding` header it has decodes it (base64,
//! quoted-printable). A form a server would first decode (a `Content-Encoding`), or read in
//! a charset that does not keep ASCII as it is (UTF-16, UTF-7, ISO-2022, EBCDIC,
//! Shift_JIS; declared in a `Content-Type`, a part's headers, `_charset_` or an RFC 2231
//! name), or with a part in another transfer encoding, has a method that cannot be known
//! here: it is refused.

use base64::Engine as _;
use paddock_proxy::RequestParts;

/// Whether `charset` (lower case) reads every ASCII byte as that ASCII character and
/// never makes an ASCII character of other bytes, so `_method` is what it looks like: UTF-8
/// and ASCII, the single-byte ISO 8859, Windows, KOI8 and DOS code pages, and EUC (whose
/// multibyte characters use bytes above 127 only). Not UTF-16 or UTF-32, UTF-7, ISO-2022
/// (escape sequences of ASCII bytes), EBCDIC, nor Shift_JIS, GBK, Big5 or GB18030 (a
/// second byte in ASCII's range).
fn ascii_superset(charset: &str) -> bool {
    let numbered = |prefixes: &[&str], range: std::ops::RangeInclusive<u16>| {
        prefixes
            .iter()
            .any(|p| charset.strip_prefix(p).and_then(|n| n.parse::<u16>().ok()).is_some_and(|n| range.contains(&n)))
    };
    matches!(
        charset,
        "utf-8"
            | "utf8"
            | "us-ascii"
            | "ascii"
            | "latin1"
            | "latin-1"
            | "l1"
            | "koi8-r"
            | "koi8-u"
            | "euc-jp"
            | "euc-kr"
            | "euc-cn"
            | "gb2312"
            | "cp437"
            | "cp850"
            | "cp866"
            | "ibm437"
            | "ibm850"
            | "ibm866"
    ) || numbered(&["iso-8859-", "iso8859-", "iso_8859-", "iso-8859_"], 1..=16)
        || numbered(&["windows-", "cp", "win-"], 1250..=1258)
}

/// The transfer encodings a part may have: the identities, and the two decoded here.
const TRANSFER_ENCODINGS: &[&str] = &["7bit", "8bit", "binary", "base64", "quoted-printable"];

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
    // Every `Content-Type` given (a server may read any one of them), or none.
    let types: Vec<String> = req
        .headers
        .get_all(CONTENT_TYPE)
        .iter()
        .map(|t| String::from_utf8_lossy(t.as_bytes()).trim().to_ascii_lowercase())
        .collect();
    for t in &types {
        charset_known(t)?;
    }
    form_methods(&types, body)
}

/// The `_method` values of `key=value` pairs (a query, a urlencoded form), `&` or `;`
/// between them, each key read as every parser reads it ([`method_key`]).
pub(crate) fn encoded_methods(pairs: &str) -> Vec<String> {
    let mut found = Vec::new();
    for pair in pairs.split(['&', ';']) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if method_key(&decoded(key)) {
            let m = decoded(value);
            if !m.trim().is_empty() {
                found.push(m.trim().to_string());
            }
        }
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

/// The `_method` values of a form body under its `Content-Type`s (lower case): as
/// urlencoded pairs always (CGI and Rack read an untyped `POST` so), and, for a
/// `multipart/` type, as multipart with every boundary a parser may take.
fn form_methods(types: &[String], body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let place = || "the form body's `_method`".to_string();
    let text = String::from_utf8_lossy(body);
    // HTML's `_charset_` field names the form's charset to a server that honours it.
    for (key, charset) in text.split(['&', ';']).filter_map(|p| p.split_once('=')) {
        if decoded(key).trim().eq_ignore_ascii_case("_charset_") {
            charset_named(&decoded(charset))?;
        }
    }
    let mut found: Vec<(String, String)> = encoded_methods(&text).into_iter().map(|m| (place(), m)).collect();
    if types.iter().any(|t| t.starts_with("multipart/")) {
        found.extend(multipart_methods(&text, &boundaries(types, &text))?.into_iter().map(|m| (place(), m)));
    }
    Ok(found)
}

/// The lines of `text`, each ended by CRLF, LF or a lone CR (parsers split at each).
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push(&rest[..i]);
        let step = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[i + step..];
    }
    out.push(rest);
    out
}

/// The boundaries a parser may take for `text` under these `Content-Type`s (lower
/// case): every `boundary=` given (quoted or not, a list cut at `,`), and the body's first
/// line without its `--` (what a parser that finds the boundary in the body takes).
fn boundaries(types: &[String], text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for t in types {
        let mut rest = t.as_str();
        while let Some(at) = rest.find("boundary") {
            rest = &rest[at + "boundary".len()..];
            let Some(value) = rest.trim_start().strip_prefix('=') else { continue };
            let value = value.trim_start();
            let value = match value.strip_prefix('"') {
                Some(quoted) => quoted.split('"').next().unwrap_or_default(),
                None => value.split(';').next().unwrap_or_default(),
            };
            found.extend(value.split(',').map(|b| b.trim().to_string()));
        }
    }
    if let Some(first) = lines(text).into_iter().find(|l| !l.trim().is_empty()) {
        if let Some(b) = first.trim().strip_prefix("--") {
            found.push(b.trim_end_matches('-').to_string());
        }
    }
    found.retain(|b| !b.is_empty());
    found
}

/// Every value a part named `_method` may have. A part runs from a line that starts with
/// `--` and one of the `boundaries` (compared in any case) to the next such line; its
/// header block ends at any line of white space only (some parsers end it at the first,
/// others skip such lines to a truly empty one), and for each such end, when the block
/// before it names the method, what follows is a value (as sent, and decoded by each
/// transfer encoding the part names). `Err`: a part whose name or value cannot be read
/// (a charset that is not ASCII's superset, another transfer encoding).
fn multipart_methods(text: &str, boundaries: &[String]) -> Result<Vec<String>, String> {
    let lines = lines(text);
    let starts = |l: &str| {
        let l = l.to_ascii_lowercase();
        l.strip_prefix("--").is_some_and(|rest| boundaries.iter().any(|b| rest.starts_with(&b.to_ascii_lowercase())))
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !starts(lines[i]) {
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len()).find(|&j| starts(lines[j])).unwrap_or(lines.len());
        let part = &lines[i + 1..end];
        // No parser's header block runs past the first empty line.
        let last = part.iter().position(|l| l.is_empty()).unwrap_or(part.len());
        let codings = header_values(&part[..last], "content-transfer-encoding");
        if let Some(c) = codings.iter().find(|c| !TRANSFER_ENCODINGS.contains(&c.as_str())) {
            return Err(format!(
                "a form part in `Content-Transfer-Encoding: {c}` to a host with request rules: its value cannot be read"
            ));
        }
        charset_known(&decoded(&part[..last].join(" ")).to_ascii_lowercase())?;
        for k in (0..part.len().min(last + 1)).filter(|&k| part[k].trim().is_empty()) {
            let head: Vec<&str> = part[..k].iter().copied().filter(|l| !l.trim().is_empty()).collect();
            if !names_method(&decoded(&head.join(" ")).to_ascii_lowercase())? {
                continue;
            }
            let value = part[k + 1..].join("\n");
            found.extend(values(&value, &codings).into_iter().filter(|v| !v.is_empty()));
        }
        i = end.max(i + 1);
    }
    Ok(found)
}

/// The values (trimmed, lower case) of every header named `name` in a part's header
/// lines (a line that starts with white space continues the one before).
fn header_values(head: &[&str], name: &str) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    for l in head {
        match joined.last_mut() {
            Some(prev) if l.starts_with([' ', '\t']) => prev.push_str(l),
            _ => joined.push(l.to_string()),
        }
    }
    joined
        .iter()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase())
        .collect()
}

/// A part's value, trimmed, as sent and as each of its transfer encodings decodes it.
fn values(value: &str, codings: &[String]) -> Vec<String> {
    let mut out = vec![value.trim().to_string()];
    for coding in codings {
        match coding.as_str() {
            "base64" => {
                let clean: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                let engine = base64::engine::general_purpose::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                        .with_decode_allow_trailing_bits(true),
                );
                // Undecodable: a parser that reads it as sent has the value above.
                if let Ok(bytes) = engine.decode(clean.as_bytes()) {
                    out.push(String::from_utf8_lossy(&bytes).trim().to_string());
                }
            }
            "quoted-printable" => out.push(quoted_printable(value).trim().to_string()),
            _ => {}
        }
    }
    out
}

/// `=XX` as its byte, `=` at a line's end as nothing (soft break).
fn quoted_printable(value: &str) -> String {
    let joined = value.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Whether a part's header block (decoded, lower case) names it `_method`: a `name`, a
/// `name*` (RFC 2231: after the charset and language) or continued `name*0`, `name*1*`,
/// ... joined in order. `Err`: an RFC 2231 name in a charset that is not ASCII's superset
/// (`name*=utf-7\'\'+AF8-method` is `_method` to Python's `email`).
fn names_method(head: &str) -> Result<bool, String> {
    let mut continued: Vec<(u32, String)> = Vec::new();
    let mut names = Vec::new();
    for param in head.split(';') {
        let Some((key, value)) = param.split_once('=') else { continue };
        let key = key.trim();
        let Some(rest) = key.strip_prefix("name") else { continue };
        let value = value.trim_start();
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or_default(),
            None => value.split(|c: char| c.is_whitespace()).next().unwrap_or_default(),
        };
        // `utf-8'lang'_method`: the value after the charset and language.
        let unprefixed = if rest.ends_with('*') { value.rsplit('\'').next().unwrap_or(value) } else { value };
        if rest.ends_with('*') {
            if let Some((charset, _)) = value.split_once('\'') {
                charset_named(charset)?;
            }
        }
        match rest {
            "" | "*" => names.push(unprefixed.to_string()),
            _ => {
                let n = rest.trim_start_matches('*').trim_end_matches('*');
                if let Ok(n) = n.parse::<u32>() {
                    // Only the first piece carries a charset and language.
                    continued.push((n, if n == 0 { unprefixed } else { value }.to_string()));
                }
            }
        }
    }
    continued.sort_by_key(|(n, _)| *n);
    if !continued.is_empty() {
        names.push(continued.into_iter().map(|(_, v)| v).collect());
    }
    Ok(names.iter().any(|n| method_key(n)))
}

/// A query component as a server reads it: `+` a space, `%XX` its byte (lossy).
pub(crate) fn decoded(s: &str) -> String {
    String::from_utf8_lossy(&super::inspect::percent_decoded(&s.replace('+', " "))).into_owned()
}
