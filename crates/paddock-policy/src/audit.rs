//! `[audit]`: where the supervisor ships its audit log ([`AuditSettings`]).

use crate::error::{Origin, Problems};

/// `[audit]` of a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// `export`: an OTLP/HTTP collector (`http://HOST[:PORT][/PATH]`) that `paddock run`,
    /// `serve` and `mcp` ship their audit records to as they are written; `None` ships
    /// nothing. A program embedding the library starts
    /// `paddock_audit::export::LiveShipper` itself.
    pub export: Option<String>,
}

/// Compiles `[audit] export` (the last file that sets it wins).
pub(crate) fn compile_audit(export: Option<&(String, Origin)>, problems: &mut Problems) -> AuditSettings {
    let Some((url, origin)) = export else { return AuditSettings::default() };
    let url = url.trim();
    match check_export_url(url) {
        Ok(()) => AuditSettings { export: Some(url.to_owned()) },
        Err(m) => {
            problems.push(
                origin,
                format!("bad [audit] export: {m}"),
                Some("write the URL of an OpenTelemetry Collector's OTLP/HTTP receiver, such as \"http://127.0.0.1:4318\" (it forwards over TLS to the fleet's store)".into()),
            );
            AuditSettings::default()
        }
    }
}

fn check_export_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else { return Err(format!("`{url}` is not a URL")) };
    if scheme.eq_ignore_ascii_case("https") {
        return Err("https is not supported; point paddock at a collector on this host over http".into());
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("scheme `{scheme}` is not http"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.starts_with(':') {
        return Err("the URL names no host".into());
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not supported".into());
    }
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("no query, fragment, spaces or control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::{Policy, Vars};

    fn load(text: &str) -> Result<Policy, String> {
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        Policy::from_toml_str("p.toml", &format!("version = 1\n{text}"), &vars).map_err(|e| e.to_string())
    }

    #[test]
    fn export_url() {
        assert_eq!(load("").unwrap().audit.export, None);
        let p = load("[audit]\nexport = \"http://127.0.0.1:4318\"\n").unwrap();
        assert_eq!(p.audit.export.as_deref(), Some("http://127.0.0.1:4318"));
        assert!(p.effective_toml().contains("export = \"http://127.0.0.1:4318\""));
        for bad in ["https://c:4318", "c:4318", "http://", "http://u:p@c"] {
            let e = load(&format!("[audit]\nexport = {bad:?}\n")).unwrap_err();
            assert!(e.starts_with("p.toml:3:10: error: bad [audit] export"), "{bad}: {e}");
        }
        assert!(load("[audit]\nexprot = \"http://c\"\n").unwrap_err().contains("did you mean `export`"));
    }
}
