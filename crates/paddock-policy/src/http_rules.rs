//! `[[network.http]]`: request rules for one host, and `[network] upstream_ca`.
//!
//! ```toml
//! [[network.http]]
//! host  = "api.github.com"
//! allow = ["GET /repos/acme/**", "POST /repos/acme/*/pulls"]
//! deny  = ["DELETE **"]
//! ```
//!
//! A pattern is `METHOD PATH-GLOB`: the method upper case or `*` (any); the path starts
//! with `/` (or is `**`), `*` matches one segment (or, inside a segment, any run of
//! characters but `/`), a final `**` matches the rest (zero or more segments). The query is
//! never matched. Deny beats allow; a host with no allow list takes any request its deny
//! list does not refuse. Rule ids: `network.http[N]` (the host's default),
//! `network.http[N].allow[M]`, `network.http[N].deny[M]`.
//!
//! A request path that is not in normal form (a `.` or `..` segment, an empty segment, an
//! encoded `/` or `\`, a bad `%` escape, an encoded `%`, a `;`, a control character, a
//! segment that starts or ends with white space) is refused for a host with rules: a
//! server that normalises it (decodes twice, strips `;` parameters, trims) would serve a
//! path no pattern was checked against. For a host with deny patterns, so is one a server
//! may read as another ([`ambiguous`]: a segment before the last ending in `.`, an encoded
//! `?` or `#`, a character outside ASCII, `::$`). Deny patterns match the method and the path in
//! any case (as the most lenient case-insensitive match sees it: `ı` is `i`), allow
//! patterns exactly: `DELETE /repos/acme/PRIVATE` meets `deny = ["DELETE
//! /repos/acme/private/**"]` on a server whose names ignore case; and deny patterns meet a
//! path with a trailing `/` as without it (`/x/` is `/x` to many routers), and with its
//! last segment's extension as without it (`/x.json`, `/x.`).
//!
//! A `HEAD` is decided as the `GET` on its path too (routers serve it with the `GET`
//! handler, which runs in full): denied where the deny patterns meet `HEAD` or `GET`, and,
//! under an allow list, allowed where `HEAD` or `GET` is (so `curl -I` works where `GET`
//! does).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::decision::Decision;
use crate::error::{Origin, Problems};
use crate::network::{compile_host, Host, HostRule, NetworkRules, RawEntry};
use crate::secrets::host_covers;
use crate::secrets::table::require_allowed;
use crate::vars::Vars;
use crate::written::{At, S};

/// The keys of a `[[network.http]]` table, for "did you mean" hints.
pub(crate) const KEYS: &[&str] = &["host", "allow", "deny"];

/// `[[network.http]]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub host: Option<S<String>>,
    #[serde(default)]
    pub allow: Vec<S<String>>,
    #[serde(default)]
    pub deny: Vec<S<String>>,
}

/// One `[[network.http]]` table after loading.
pub(crate) struct MergedHttp {
    table: Origin,
    host: Option<At<String>>,
    allow: Vec<At<String>>,
    deny: Vec<At<String>>,
}

/// Adds one file's `[[network.http]]` tables (lists concatenate, base first).
pub(crate) fn merge(raw: Vec<S<RawHttp>>, at: &dyn Fn(std::ops::Range<usize>) -> Origin, into: &mut Vec<MergedHttp>) {
    let list = |v: Vec<S<String>>| -> Vec<At<String>> {
        v.into_iter()
            .map(|s| {
                let o = at(s.span());
                (s.into_inner(), o)
            })
            .collect()
    };
    for t in raw {
        let table = at(t.span());
        let t = t.into_inner();
        let host = t.host.map(|h| {
            let o = at(h.span());
            (h.into_inner(), o)
        });
        into.push(MergedHttp { table, host, allow: list(t.allow), deny: list(t.deny) });
    }
}

/// One `METHOD PATH-GLOB` pattern.
#[derive(Debug, Clone)]
pub struct RequestPattern {
    /// `network.http[N].allow[M]` or `.deny[M]`.
    pub id: Arc<str>,
    /// As written.
    pub raw: String,
    /// `None` for `*`.
    pub method: Option<String>,
    segments: Vec<String>,
    rest: bool,
}

/// How a pattern compares names: allow patterns exactly, deny patterns in any case
/// (each refuses the most it can).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Exact,
    Folded,
}

/// A name as the most lenient comparison of case sees it: each character upper-cased, then
/// lower-cased, so that what some server's case-insensitive match takes as one is one here
/// too (`ı` and `I`, `ſ` and `s`, the Kelvin sign and `k`).
pub fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect()
}

/// The methods a request's `method` is served as: itself, and for `HEAD` the `GET` too
/// (Express, Flask, Rails and most routers answer `HEAD` with the `GET` handler, which
/// runs in full; only the body is dropped). `case`: how the method is compared (a deny
/// pattern meets `head` as `HEAD`, an allow pattern only `HEAD`).
fn served_as(method: &str, case: Case) -> Vec<&str> {
    let head = match case {
        Case::Exact => method == "HEAD",
        Case::Folded => fold(method) == "head",
    };
    if head {
        vec![method, "GET"]
    } else {
        vec![method]
    }
}

impl RequestPattern {
    fn matches(&self, method: &str, segments: &[String], case: Case) -> bool {
        let same = |a: &str, b: &str| match case {
            Case::Exact => a == b,
            Case::Folded => fold(a) == fold(b),
        };
        if self.method.as_deref().is_some_and(|m| !same(m, method)) {
            return false;
        }
        let fits = |(p, s): (&String, &String)| match case {
            Case::Exact => segment_matches(p, s),
            Case::Folded => segment_matches(&fold(p), &fold(s)),
        };
        if self.rest {
            segments.len() >= self.segments.len() && self.segments.iter().zip(segments).all(fits)
        } else {
            segments.len() == self.segments.len() && self.segments.iter().zip(segments).all(fits)
        }
    }
}

/// `*` inside one segment: any run of characters (never `/`, which segments do not hold);
/// a segment of `*` alone matches a non-empty one.
fn segment_matches(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return !s.is_empty();
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// How a decision says that `method` met a pattern as `m`: nothing, or that a `HEAD` was
/// decided as the `GET` it is served as.
fn as_get(method: &str, m: &str) -> &'static str {
    if method == m {
        ""
    } else {
        " (a `HEAD` is served by the `GET` handler, so it is decided as `GET` too)"
    }
}

/// One compiled `[[network.http]]` table.
#[derive(Debug, Clone)]
pub struct HttpRule {
    /// `network.http[N]`.
    pub id: Arc<str>,
    /// The host it applies to (on any port `[network] allow` grants, unless it names one).
    pub host: HostRule,
    /// `allow` patterns; empty: any request the deny list does not refuse.
    pub allow: Vec<RequestPattern>,
    /// `deny` patterns.
    pub deny: Vec<RequestPattern>,
}

/// The compiled `[[network.http]]` tables, in order.
#[derive(Debug, Clone, Default)]
pub struct HttpRules {
    /// Every table.
    pub list: Vec<HttpRule>,
}

const PATTERN_HINT: &str =
    "write `METHOD PATH`, e.g. \"GET /repos/acme/**\", \"POST /repos/*/pulls\" or \"DELETE **\" (`*` one segment, a final `**` the rest, METHOD may be `*`)";

fn pattern(id: String, raw: &str, o: &Origin, problems: &mut Problems) -> Option<RequestPattern> {
    let mut words = raw.split_whitespace();
    let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
        problems.push(o, format!("bad request pattern `{raw}`"), Some(PATTERN_HINT.to_string()));
        return None;
    };
    let method = match method {
        "*" => None,
        m if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(m.to_string()),
        m if m.bytes().all(|b| b.is_ascii_alphabetic()) => {
            problems.push(
                o,
                format!("bad method `{m}` in `{raw}`: methods are upper case"),
                Some(format!("write `{}`", m.to_ascii_uppercase())),
            );
            return None;
        }
        m => {
            problems.push(o, format!("bad method `{m}` in `{raw}`"), Some(PATTERN_HINT.to_string()));
            return None;
        }
    };
    if path.contains(['?', '#']) {
        problems.push(
            o,
            format!("bad path `{path}` in `{raw}`: the query is never matched"),
            Some("match the path only: \"GET /search\"".to_string()),
        );
        return None;
    }
    let body = if path == "**" {
        "/**"
    } else if path.starts_with('/') {
        path
    } else {
        problems.push(
            o,
            format!("bad path `{path}` in `{raw}`: a path starts with `/`"),
            Some(PATTERN_HINT.to_string()),
        );
        return None;
    };
    let mut segments: Vec<String> = body[1..].split('/').map(str::to_string).collect();
    let rest = segments.last().is_some_and(|s| s == "**");
    if rest {
        segments.pop();
    }
    if segments.iter().any(|s| s.contains("**")) {
        problems.push(
            o,
            format!("bad path `{path}` in `{raw}`: `**` may only be the last segment"),
            Some(PATTERN_HINT.to_string()),
        );
        return None;
    }
    Some(RequestPattern { id: Arc::from(id), raw: raw.to_string(), method, segments, rest })
}

/// Compiles the merged `[[network.http]]` tables; each host must be allowed by `network`.
pub(crate) fn compile(merged: &[MergedHttp], network: &NetworkRules, problems: &mut Problems) -> HttpRules {
    let mut out = HttpRules::default();
    for (n, m) in merged.iter().enumerate() {
        let id = format!("network.http[{n}]");
        let Some((raw, o)) = &m.host else {
            problems.push(
                &m.table,
                format!("{id} has no `host`"),
                Some("name the host its rules apply to: host = \"api.example.com\"".to_string()),
            );
            continue;
        };
        let Some(mut host) = compile_host("allow", n, &RawEntry { raw: raw.clone(), origin: o.clone() }, problems)
        else {
            continue;
        };
        host.id = Arc::from(id.as_str());
        require_allowed(&host, network, &format!("[[network.http]] ({id})"), problems);
        let list = |kind: &str, v: &[At<String>], problems: &mut Problems| -> Vec<RequestPattern> {
            v.iter()
                .enumerate()
                .filter_map(|(i, (raw, o))| pattern(format!("{id}.{kind}[{i}]"), raw, o, problems))
                .collect()
        };
        let allow = list("allow", &m.allow, problems);
        let deny = list("deny", &m.deny, problems);
        out.list.push(HttpRule { id: Arc::from(id), host, allow, deny });
    }
    out
}

/// A request path split into decoded segments; `Err` says why it is not in normal form.
fn split_path(path: &str) -> Result<Vec<String>, String> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let Some(body) = path.strip_prefix('/') else {
        return Err(format!("the request target `{path}` is not a path"));
    };
    let raw: Vec<&str> = body.split('/').collect();
    let mut out = Vec::with_capacity(raw.len());
    for (i, seg) in raw.iter().enumerate() {
        let decoded = percent_decode(seg).ok_or("a bad `%` escape")?;
        let last = i + 1 == raw.len();
        if decoded.is_empty() && !last {
            return Err("an empty segment (`//`)".into());
        }
        if decoded == "." || decoded == ".." {
            return Err("a `.` or `..` segment".into());
        }
        if decoded.contains(['/', '\\']) {
            return Err("an encoded `/` or `\\`".into());
        }
        if decoded.contains('%') {
            return Err("an encoded `%` (a server that decodes twice would see another path)".into());
        }
        if decoded.contains(';') {
            return Err("a `;` (path parameters, which some servers strip)".into());
        }
        if decoded.chars().any(char::is_control) {
            return Err("a control character".into());
        }
        if decoded.starts_with(char::is_whitespace) || decoded.ends_with(char::is_whitespace) {
            return Err("a segment that starts or ends with white space (which some servers trim)".into());
        }
        out.push(decoded);
    }
    Ok(out)
}

/// Why a path in normal form may still be read by some server as a path the deny patterns
/// would refuse, if it may: a segment before the last that ends in `.` (IIS and Windows
/// drop it), an encoded `?` or `#` (a front end that decodes and forwards makes it a query
/// or a fragment), a character outside ASCII (a server that folds Unicode, NFKC, reads
/// fullwidth `ａｄｍｉｎ` as `admin`, and one that drops zero-width characters), an NTFS
/// stream name (`::$DATA`). Checked for a host with deny patterns (found by an attack: each
/// reached a denied path with the secret); an allow pattern meets such a path only as
/// written, so a host with allow patterns alone refuses it where none matches.
fn ambiguous(segments: &[String]) -> Option<&'static str> {
    let before_last = segments.len().saturating_sub(1);
    if segments[..before_last].iter().any(|s| s.ends_with('.')) {
        return Some("a segment that ends in `.` (which some servers drop)");
    }
    for s in segments {
        if s.contains(['?', '#']) {
            return Some(
                "an encoded `?` or `#` (which a server that decodes and forwards reads as a query or fragment)",
            );
        }
        if !s.is_ascii() {
            return Some("a character outside ASCII (which a server that folds Unicode may read as another name)");
        }
        if s.contains("::$") {
            return Some("an NTFS stream name (`::$`)");
        }
    }
    None
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let v = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The forms of a path that routers serve as one, for the deny patterns to meet: as
/// written; without a trailing `/` (`/x/` is `/x` to Express, Rails, Flask); and with its
/// last segment cut at its first `.` (`/x.json` is `/x` with a format to Rails, `/x.` is
/// `/x` to IIS).
fn deny_forms(segments: &[String]) -> Vec<Vec<String>> {
    let mut forms = vec![segments.to_vec()];
    let mut bare = segments.to_vec();
    if bare.len() > 1 && bare.last().is_some_and(|l| l.is_empty()) {
        bare.pop();
        forms.push(bare.clone());
    }
    if let Some(last) = bare.last_mut() {
        if let Some(dot) = last.find('.').filter(|&d| d > 0) {
            last.truncate(dot);
            forms.push(bare);
        }
    }
    forms
}

impl HttpRules {
    /// The tables that apply to `host:port`.
    pub fn for_host<'a>(&'a self, host: &'a Host, port: u16) -> impl Iterator<Item = &'a HttpRule> + 'a {
        self.list.iter().filter(move |r| host_covers(&r.host, host, port))
    }

    /// Decides a request by the tables of its host; `None` when the host has none.
    pub(crate) fn decide(&self, method: &str, host: &Host, port: u16, path: &str) -> Option<Decision> {
        let rules: Vec<&HttpRule> = self.for_host(host, port).collect();
        let first = rules.first()?;
        let shown = format!("{method} {}", path.split(['?', '#']).next().unwrap_or(""));
        let has_deny = rules.iter().any(|r| !r.deny.is_empty());
        let segments = match split_path(path)
            .and_then(|s| match ambiguous(&s).filter(|_| has_deny) {
                Some(why) => Err(why.to_string()),
                None => Ok(s),
            }) {
            Ok(s) => s,
            Err(why) => {
                return Some(Decision::deny(
                    &first.id,
                    format!("`{shown}` to {host} is refused: its path is not in normal form ({why}), so no rule of {} can vouch for it", first.id),
                ))
            }
        };
        if let Some(denied) = Self::denied_by(&rules, method, &segments, host, &shown) {
            return Some(denied);
        }
        if rules.iter().all(|r| r.allow.is_empty()) {
            return Some(Decision::allow(
                &first.id,
                format!("{host} has no allow list in {}: any request its deny list does not refuse", first.id),
            ));
        }
        for p in rules.iter().flat_map(|r| &r.allow) {
            for m in served_as(method, Case::Exact) {
                if p.matches(m, &segments, Case::Exact) {
                    let how = as_get(method, m);
                    return Some(Decision::allow(&p.id, format!("`{shown}` to {host} is allowed by `{}`{how}", p.raw)));
                }
            }
        }
        Some(Decision::deny(
            &first.id,
            format!("`{shown}` to {host} matches no allow pattern of {}; add \"{shown}\" to its allow list", first.id),
        ))
    }

    /// The refusal of a request by the deny patterns of its host alone (`None`: none
    /// matches, or the host has no tables, or its path is not in normal form, which
    /// [`HttpRules::decide`] refuses): for a method a server may take from a field that
    /// only mentions `method` (`StatusCallbackMethod=GET`), which an allow list does not
    /// have to name.
    pub(crate) fn denied(&self, method: &str, host: &Host, port: u16, path: &str) -> Option<Decision> {
        let rules: Vec<&HttpRule> = self.for_host(host, port).collect();
        let shown = format!("{method} {}", path.split(['?', '#']).next().unwrap_or(""));
        let segments = split_path(path).ok()?;
        Self::denied_by(&rules, method, &segments, host, &shown)
    }

    /// The first deny pattern of `rules` that meets `method` (or the `GET` a `HEAD` is
    /// served as) on any form of the path.
    fn denied_by(rules: &[&HttpRule], method: &str, segments: &[String], host: &Host, shown: &str) -> Option<Decision> {
        let forms = deny_forms(segments);
        for p in rules.iter().flat_map(|r| &r.deny) {
            for m in served_as(method, Case::Folded) {
                if forms.iter().any(|s| p.matches(m, s, Case::Folded)) {
                    let how = as_get(method, m);
                    return Some(Decision::deny(&p.id, format!("`{shown}` to {host} is denied by `{}`{how}", p.raw)));
                }
            }
        }
        None
    }

    /// Every allow pattern id and table id (grants, for a review).
    pub(crate) fn grant_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.list.iter().flat_map(|r| r.allow.iter().map(|p| p.id.to_string()))
    }
}

/// Compiles `[network] upstream_ca`: PEM files the proxy trusts for upstreams of intercepted
/// hosts, besides the system's roots. Each must exist and be a regular file now.
pub(crate) fn upstream_ca(list: &[At<String>], vars: &Vars, problems: &mut Problems) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (raw, o) in list {
        match vars.expand_path(raw) {
            Ok(p) => match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => out.push(p),
                Ok(_) => problems.push(
                    o,
                    format!("upstream_ca `{raw}` is not a regular file"),
                    Some("name a PEM file of CA certificates".to_string()),
                ),
                Err(e) => problems.push(
                    o,
                    format!("upstream_ca `{raw}` cannot be read: {e}"),
                    Some("name a PEM file of CA certificates that exists".to_string()),
                ),
            },
            Err((msg, hint)) => problems.push(o, format!("bad upstream_ca: {msg}"), Some(hint)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
