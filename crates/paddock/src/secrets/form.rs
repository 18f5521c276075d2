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
//!
//! Two kinds of field name a method ([`Scope`]): an override field ([`override_key`]),
//! whose value must be a plain method ([`override_value`]) and is decided as the request
//! line is; and a field that only mentions `method`, in whose value every method a server
//! could read ([`suspect_methods`]) is decided by the deny patterns alone.

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

/// How a method that a server may take instead of the request line's is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// Named by an override field or header (`_method`, `X-HTTP-Method-Override`): as the
    /// request line is, by the allow list and the deny patterns.
    Full,
    /// Under a field that only mentions `method` (`StatusCallbackMethod`, `share_method`,
    /// Twilio's `Method`): by the deny patterns alone, since such fields name methods of
    /// other requests far more often than an override (a value a server could read as a
    /// denied method is refused; one that is not on the allow list is not).
    DenyOnly,
}

/// A method a server may take instead of the request line's: where it was written, the
/// method (upper case), and how it is decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Named {
    pub place: String,
    pub method: String,
    pub scope: Scope,
}

/// The methods a form body names (`_method`), read as any parser might. `Err`: a form
/// whose method cannot be known, or an override field that holds no plain method (why).
pub(crate) fn in_form(req: &RequestParts<'_>, body: &[u8]) -> Result<Vec<Named>, String> {
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

/// The methods named in `key=value` pairs (a query, a urlencoded form; `whose`: "the
/// query's", "the form body's"), each pair read under every split a server may use
/// ([`pairs`]) and each key as every parser reads it ([`override_key`],
/// [`mentions_method`]). `legacy`: the pairs are declared in a charset other than UTF-8
/// (a byte above 127 may read as a letter). `Err`: an override field whose value is not a
/// plain method.
pub(crate) fn encoded_methods(text: &str, whose: &str, legacy: bool) -> Result<Vec<Named>, String> {
    let mut found = Vec::new();
    for pair in pairs(text) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let named = override_key(&decoded(key));
        let value = decoded_bytes(value);
        add_methods(&mut found, whose, named, mentions_method(key), &value, legacy)?;
    }
    Ok(distinct(found))
}

/// The `key=value` pieces of `text` under each split a server may use: at `&` only (`qs`,
/// PHP, Rack 3, Python since 3.9.2) and at `&` and `;` (Rack 2, older Python, Go before
/// 1.17): `_method=%26%2368;ELETE` is `&#68;ELETE` to the first and `&#68` to the second.
fn pairs(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = text.split('&').collect();
    let more: Vec<&str> = out.iter().filter(|p| p.contains(';')).flat_map(|p| p.split(';')).collect();
    out.extend(more);
    out
}

/// `found` without repeats, in order.
fn distinct(mut found: Vec<Named>) -> Vec<Named> {
    let mut seen = std::collections::HashSet::new();
    found.retain(|n| seen.insert(n.clone()));
    found
}

/// Adds what a field's `value` may name to `found`: under an override key (`named`), the
/// plain method it must be ([`override_value`]); under a key that only mentions `method`
/// (`mentions`), every method a server may read in it ([`suspect_methods`]), decided by
/// the deny patterns alone.
fn add_methods(
    found: &mut Vec<Named>,
    whose: &str,
    named: bool,
    mentions: bool,
    value: &[u8],
    legacy: bool,
) -> Result<(), String> {
    let mut add = |place: String, method: String, scope: Scope| found.push(Named { place, method, scope });
    if named {
        let place = format!("{whose} `_method`");
        if let Some(m) = override_value(value).map_err(|why| format!("{place} {why}"))? {
            add(place, m, Scope::Full);
        }
    } else if mentions {
        let place = format!("{whose} field that mentions `method` (read as a `_method` may be)");
        for m in suspect_methods(value, legacy) {
            add(place.clone(), m, Scope::DenyOnly);
        }
    }
    Ok(())
}

/// Whether a key (decoded) is an override's as some parser reads it: as PHP does (cut at
/// a NUL, leading spaces gone, `.`, ` ` and `[` made `_`: `_method`, `_method_...`); a key
/// whose letters are `method` but which is not `method` itself: `[_method]` (`qs`, Rack),
/// `_method[]` and `_method[0]` (an array whose first value `method-override` takes),
/// `__method`, `_METHOD` (Slim); `_HttpMethod` (Salesforce); and the override headers'
/// names as fields (`x-http-method-override`, `X_HTTP_METHOD`, `x-method-override`). A
/// bare `method` is not one: it is an ordinary field too often (Twilio's `Method=GET`, a
/// payment method), and is decided as a key that mentions `method`.
pub(crate) fn override_key(key: &str) -> bool {
    const LETTERS: &[&str] =
        &["xhttpmethodoverride", "xhttpmethod", "xmethodoverride", "httpmethodoverride", "methodoverride"];
    let cut = key.split('\0').next().unwrap_or_default();
    // PHP: an array's name is what comes before its brackets; `.`, ` ` and an unclosed `[`
    // become `_`.
    let php = without_brackets(cut.trim_start()).replace(['.', ' ', '['], "_").to_ascii_lowercase();
    if php == "_method" || php == "_method_" {
        return true;
    }
    [key, cut].iter().any(|k| {
        let letters: String = k.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect();
        // `method[]` and `method[0]` are the bare `method` as an array: ordinary fields.
        (letters == "method" && !without_brackets(k).eq_ignore_ascii_case("method"))
            || (letters == "httpmethod" && k.trim_start().starts_with('_'))
            || LETTERS.contains(&letters.as_str())
    })
}

/// `key` without the bracket groups that end it (`a[]`, `a[0][b]`: `a`).
fn without_brackets(key: &str) -> &str {
    let mut k = key;
    while let Some(open) = k.strip_suffix(']').and_then(|rest| rest.rfind('[')) {
        k = &k[..open];
    }
    k
}

/// The method an override field's value names, upper case (`None`: empty, no method). A
/// client sends a method as letters and `-` only; anything else (a character reference, a
/// byte above 127, a control, white space, `;`, `,`) is a way to make a server read
/// another method than a check does (`qs` decodes `&#68;` and keeps `&#65604;` as `D`,
/// `method-override` lower-cases the Kelvin sign to `k`), so `Err` says why it is refused.
pub(crate) fn override_value(value: &[u8]) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.iter().all(|b| b.is_ascii_alphabetic() || *b == b'-') {
        return Ok(Some(value.to_ascii_uppercase().into_iter().map(char::from).collect()));
    }
    let mut shown = value.escape_ascii().to_string();
    if shown.len() > 60 {
        shown = format!("{}...", shown.chars().take(60).collect::<String>());
    }
    Err(format!(
        "is `{shown}`, which is not a plain method (letters and `-` only): a server may read another method in it (a character reference, Unicode case, a trimmed byte), so it is refused; send the method as it is"
    ))
}

/// Every method of a form body under its `Content-Type`: as multipart parts for a
/// `multipart/` type (read strictly), else as urlencoded pairs (CGI and Rack read an
/// untyped `POST` so).
fn form_methods(content_type: &str, body: &[u8]) -> Result<Vec<Named>, String> {
    let whose = "the form body's";
    let charset_ok = |c: &str| ascii_superset(&c.trim().to_ascii_lowercase());
    let mut legacy = declares_legacy(&content_type.to_ascii_lowercase());
    let mut found = Vec::new();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        let boundary = super::multipart::boundary(content_type, &charset_ok)?;
        let parts = super::multipart::parts(body, &boundary, &charset_ok)?;
        // HTML's `_charset_` field names the form's charset to a server that honours it.
        for part in parts.iter().filter(|p| p.names.iter().any(|n| n.eq_ignore_ascii_case("_charset_"))) {
            let value = String::from_utf8_lossy(&part.value).trim().to_ascii_lowercase();
            charset_named(&value)?;
            legacy |= !utf8_like(value.trim_matches('"'));
        }
        for part in &parts {
            let named = part.names.iter().any(|n| override_key(n) || override_key(&decoded(n)));
            let legacy = legacy || declares_legacy(&part.head.to_ascii_lowercase());
            add_methods(&mut found, whose, named, mentions_method(&part.head), &part.value, legacy)?;
        }
        return Ok(distinct(found));
    }
    let text = String::from_utf8_lossy(body);
    for (key, charset) in pairs(&text).into_iter().filter_map(|p| p.split_once('=')) {
        if decoded(key).trim().eq_ignore_ascii_case("_charset_") {
            let charset = decoded(charset);
            charset_named(&charset)?;
            legacy |= !utf8_like(charset.trim().trim_matches('"').to_ascii_lowercase().as_str());
        }
    }
    encoded_methods(&text, whose, legacy)
}

/// Whether `charset` (lower case) is read as UTF-8 is (or as ASCII, which reads no byte
/// above 127 as a letter).
fn utf8_like(charset: &str) -> bool {
    matches!(charset, "" | "utf-8" | "utf8" | "unicode-1-1-utf-8" | "us-ascii" | "ascii" | "ansi_x3.4-1968")
}

/// Whether `text` (a `Content-Type`, a part's header block; lower case) declares a
/// charset other than UTF-8 (a single-byte one, where a byte above 127 may be a letter
/// that upper-cases to ASCII: `ı` in windows-1254, `ß`, `ﬁ` in Mac Roman).
fn declares_legacy(text: &str) -> bool {
    declared_charsets(text).any(|value| !utf8_like(&value))
}

/// Each `charset=VALUE` that `text` (a `Content-Type`, a part's header block; lower case)
/// declares, its value up to white space, `;`, `"` or `,`.
fn declared_charsets(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let at = rest.find("charset")?;
        rest = &rest[at + "charset".len()..];
        let Some(value) = rest.trim_start().strip_prefix('=') else { continue };
        return Some(
            value
                .trim_start()
                .trim_start_matches('"')
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, ';' | '"' | ','))
                .collect(),
        );
    })
}

/// The methods the registry knows (IANA, and `PURGE`), upper case.
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

/// The methods a server may read in a value under a key that mentions `method`, upper
/// case: the value case-folded as the most lenient server may (upper, lower, upper: `ı`,
/// `ſ`, the Kelvin sign, `ﬁ` read as `I`, `S`, `K`, `FI`) and cut to its letters and `-`
/// (a server may trim NUL, `\x1f`, a BOM or a zero-width space); with numeric character
/// references decoded as Unicode and as `qs` does (`String.fromCharCode`: the number modulo
/// 2^16, so `&#65604;` and `&#4294967364;` are `D`). Under a `legacy` charset, each byte
/// above 127 may be a letter too (windows-1254's `\xfd` is `ı`, an `I` to Ruby's
/// `upcase`): every method whose letters the value's fit with up to two letters for each
/// such byte is one.
pub(crate) fn suspect_methods(value: &[u8], legacy: bool) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    let mut texts = vec![(text.into_owned(), false)];
    // Only a byte above 127 may be a letter in a legacy charset.
    if legacy && !value.is_ascii() {
        texts.push((value.iter().map(|&b| char::from(b)).collect(), true));
    }
    let mut out: Vec<String> = Vec::new();
    let mut add = |m: String| {
        if !m.is_empty() && !out.contains(&m) {
            out.push(m);
        }
    };
    for (text, bytes_are_letters) in texts {
        let mut variants = vec![];
        if text.contains("&#") {
            variants.push(references(&text, Reference::Unicode));
            variants.push(references(&text, Reference::Utf16));
        }
        variants.push(text);
        for v in variants {
            add(canonical(&v));
            if let Some(shape) = bytes_are_letters.then(|| shape(&v)).flatten() {
                METHODS.iter().filter(|m| fits(&shape, m.as_bytes())).for_each(|m| add(m.to_string()));
            }
        }
    }
    out
}

/// A value as the most lenient server reads a method in it: case-folded (upper, lower,
/// upper), only its ASCII letters and `-` kept.
fn canonical(v: &str) -> String {
    let keep = |c: &char| c.is_ascii_uppercase() || *c == '-';
    if v.is_ascii() {
        return v.chars().map(|c| c.to_ascii_uppercase()).filter(keep).collect();
    }
    paddock_policy::fold(v).to_uppercase().chars().filter(keep).collect()
}

/// One piece of a value's shape: a letter or `-`, or up to `n` letters (bytes above 127).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Exact(u8),
    AnyUpTo(usize),
}

/// The shape of `v` (its characters, each one byte of a legacy charset): its ASCII letters
/// upper case and `-`, each other character up to two letters (`ß` is `SS`), others
/// dropped. `None` when it holds more letters than any method (a file, say).
fn shape(v: &str) -> Option<Vec<Piece>> {
    let mut out: Vec<Piece> = Vec::new();
    let mut letters = 0;
    for c in v.chars() {
        let piece = match c {
            'a'..='z' | 'A'..='Z' | '-' => Piece::Exact(c.to_ascii_uppercase() as u8),
            _ if !c.is_ascii() => Piece::AnyUpTo(2),
            _ => continue,
        };
        match (out.last_mut(), piece) {
            (Some(Piece::AnyUpTo(n)), Piece::AnyUpTo(m)) => *n = (*n + m).min(64),
            (_, Piece::Exact(_)) if letters == 32 => return None,
            (_, Piece::Exact(_)) => {
                letters += 1;
                out.push(piece);
            }
            _ => out.push(piece),
        }
    }
    Some(out)
}

/// Whether `method` (at most 31 bytes) fits `shape` (each piece in turn, all of it).
fn fits(shape: &[Piece], method: &[u8]) -> bool {
    let len = method.len().min(31);
    // Bit `i`: the pieces so far may end at `method[i]`.
    let mut at: u32 = 1;
    for piece in shape {
        let mut next = 0u32;
        for i in (0..=len).filter(|&i| at & (1 << i) != 0) {
            match *piece {
                Piece::Exact(b) if method.get(i) == Some(&b) => next |= 1 << (i + 1),
                Piece::Exact(_) => {}
                Piece::AnyUpTo(n) => (i..=(i + n).min(len)).for_each(|j| next |= 1 << j),
            }
        }
        at = next;
        if at == 0 {
            return false;
        }
    }
    at & (1 << len) != 0
}

/// How a numeric character reference is read.
#[derive(Debug, Clone, Copy)]
enum Reference {
    /// As the code point it names (HTML); one beyond Unicode is left as text.
    Unicode,
    /// As JavaScript's `String.fromCharCode` (`qs`): the number modulo 2^16.
    Utf16,
}

/// `&#68;` and `&#x44;` in `value` as the characters they name, read as `how`.
fn references(value: &str, how: Reference) -> String {
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
        let number = &digits[..len];
        let code = match how {
            Reference::Unicode => u32::from_str_radix(number, radix).ok(),
            Reference::Utf16 => {
                Some(number.chars().fold(0u32, |n, c| (n * radix + c.to_digit(radix).unwrap_or(0)) % 0x1_0000))
            }
        };
        match code.and_then(char::from_u32) {
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
/// Rack when the disposition is long), so a value under a key or in a part that mentions
/// `method` anywhere is read for a method too.
fn mentions_method(text: &str) -> bool {
    text.to_ascii_lowercase().contains("method") || decoded(text).to_ascii_lowercase().contains("method")
}

/// `Err` when `text` (a `Content-Type`, a part's header block; lower case) declares a
/// charset other than ASCII's supersets.
fn charset_known(text: &str) -> Result<(), String> {
    declared_charsets(text).try_for_each(|value| charset_named(&value))
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
    String::from_utf8_lossy(&decoded_bytes(s)).into_owned()
}

/// A query component's bytes as a server reads them: `+` a space, `%XX` its byte.
fn decoded_bytes(s: &str) -> Vec<u8> {
    super::inspect::percent_decoded(&s.replace('+', " "))
}
