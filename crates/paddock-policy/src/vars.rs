//! Variables in paths: `${WORKSPACE}`, `${HOME}`, `${TMPDIR}` and a leading `~`.

use std::path::{Path, PathBuf};

/// The values the variables of a policy stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    /// `${WORKSPACE}`: the directory the agent works in (`--workspace`, else the current one).
    pub workspace: PathBuf,
    /// `${HOME}` and `~`; `None` when the caller has no home, and then using them is an error.
    pub home: Option<PathBuf>,
    /// `${TMPDIR}`: `$TMPDIR`, else `/tmp`.
    pub tmpdir: PathBuf,
    /// The caller's `PATH`, used as the sandbox PATH when `[env] pass` admits it.
    pub caller_path: Option<String>,
}

impl Vars {
    /// Values from the process environment, with `workspace` as `${WORKSPACE}`.
    pub fn from_env(workspace: impl Into<PathBuf>) -> Vars {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Vars {
            workspace: workspace.into(),
            home: non_empty("HOME").filter(|h| h.is_absolute()),
            tmpdir: non_empty("TMPDIR").filter(|t| t.is_absolute()).unwrap_or_else(|| PathBuf::from("/tmp")),
            caller_path: std::env::var("PATH").ok(),
        }
    }

    /// Expands the variables of `s`. Errors say what is wrong and what would be right.
    pub(crate) fn expand(&self, s: &str) -> Result<String, (String, String)> {
        let mut out = String::with_capacity(s.len() + 32);
        let mut rest = s;
        if let Some(after) = rest.strip_prefix('~') {
            if after.is_empty() || after.starts_with('/') {
                out.push_str(&self.home_str()?);
                rest = after;
            } else {
                return Err((
                    format!("`~user` is not supported in `{s}`"),
                    "use `~/...` for the caller's home or an absolute path".into(),
                ));
            }
        }
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let Some(body) = after.strip_prefix('{') else {
                return Err((
                    format!("a bare `$` in `{s}`"),
                    "variables are written `${WORKSPACE}`, `${HOME}` or `${TMPDIR}`".into(),
                ));
            };
            let Some(end) = body.find('}') else {
                return Err((format!("unterminated `${{` in `{s}`"), "close the variable with `}`".into()));
            };
            let name = &body[..end];
            match name {
                "WORKSPACE" => out.push_str(&self.workspace.to_string_lossy()),
                "HOME" => out.push_str(&self.home_str()?),
                "TMPDIR" => out.push_str(&self.tmpdir.to_string_lossy()),
                other => {
                    return Err((
                        format!("unknown variable `${{{other}}}`"),
                        "the variables are ${WORKSPACE}, ${HOME} and ${TMPDIR}".into(),
                    ))
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn home_str(&self) -> Result<String, (String, String)> {
        match &self.home {
            Some(h) => Ok(h.to_string_lossy().into_owned()),
            None => Err((
                "`~` or `${HOME}` used but HOME is not set to an absolute path".into(),
                "set HOME, or write the path out in full".into(),
            )),
        }
    }

    /// Expands `s` and requires the result to be an absolute path.
    pub(crate) fn expand_path(&self, s: &str) -> Result<PathBuf, (String, String)> {
        let expanded = self.expand(s)?;
        if expanded.is_empty() {
            return Err(("empty path".into(), "write an absolute path, `~/...` or `${WORKSPACE}/...`".into()));
        }
        let p = Path::new(&expanded);
        if !p.is_absolute() {
            return Err((
                format!("relative path `{s}`"),
                format!("paths must be absolute: write `${{WORKSPACE}}/{s}`, `~/{s}` or `/{s}`"),
            ));
        }
        Ok(p.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars { workspace: "/ws".into(), home: Some("/home/u".into()), tmpdir: "/tmp".into(), caller_path: None }
    }

    #[test]
    fn expands() {
        let v = vars();
        assert_eq!(v.expand("~/.ssh").unwrap(), "/home/u/.ssh");
        assert_eq!(v.expand("~").unwrap(), "/home/u");
        assert_eq!(v.expand("${WORKSPACE}/.env").unwrap(), "/ws/.env");
        assert_eq!(v.expand("${TMPDIR}/x${HOME}").unwrap(), "/tmp/x/home/u");
    }

    #[test]
    fn rejects() {
        let v = vars();
        assert!(v.expand("${FOO}/x").unwrap_err().0.contains("unknown variable `${FOO}`"));
        assert!(v.expand("$HOME/x").is_err());
        assert!(v.expand("${HOME").is_err());
        assert!(v.expand("~bob/x").is_err());
        assert!(v.expand_path("src").unwrap_err().0.contains("relative path"));
        let no_home = Vars { home: None, ..vars() };
        assert!(no_home.expand("~/.ssh").is_err());
    }
}
