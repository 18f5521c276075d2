//! The secrets' part of a child's environment: placeholders in, values and their source
//! variables out, the CA bundle's variables.

use paddock_policy::Policy;

use super::{Broker, CaBundle};

/// The variables of a child's environment with every secret's source variable removed
/// (`from = "env:VAR"`: the real value, were `[env] pass` to name it), and any variable
/// whose value holds an `env:` secret's value; the placeholders set; the CA bundle's
/// variables when interception is on.
pub(crate) fn child_env(
    policy: &Policy,
    broker: Option<&Broker>,
    bundle: Option<&CaBundle>,
    env: &mut Vec<(String, String)>,
) {
    let sources: Vec<&str> = policy
        .secrets
        .list
        .iter()
        .filter_map(|s| match &s.source {
            paddock_policy::SecretSource::Env(v) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let ours: Vec<(String, String)> = broker.map(|b| b.child_env(policy)).unwrap_or_default();
    let bundle_vars: Vec<(String, String)> = bundle.map(CaBundle::env).unwrap_or_default();
    let values = broker.map(Broker::env_values).unwrap_or_default();
    env.retain(|(k, v)| {
        let carries = values.iter().any(|s| !s.is_empty() && v.contains(s.expose()));
        if carries {
            tracing::warn!(variable = %k, "not passed to the child: it holds the value of a secret");
        }
        !carries
            && !sources.contains(&k.as_str())
            && !ours.iter().any(|(o, _)| o == k)
            && !bundle_vars.iter().any(|(o, _)| o == k)
    });
    env.extend(ours);
    env.extend(bundle_vars);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Broker;
    use paddock_policy::Vars;

    #[test]
    fn the_child_env_never_carries_a_value() {
        let text = "version = 1\n[network]\nallow = [\"api.test\"]\n[secrets.gh]\nfrom = \"env:GH_SRC\"\nhosts = [\"api.test\"]\nenv = \"GITHUB_TOKEN\"\n";
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let p = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let b = Broker::new(&p, &|k| (k == "GH_SRC").then(|| "ghp_VALUE".to_string())).unwrap().unwrap();
        let mut env: Vec<(String, String)> =
            [("GH_SRC", "ghp_VALUE"), ("COPY", "x ghp_VALUE"), ("GITHUB_TOKEN", "old"), ("LANG", "C")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .to_vec();
        child_env(&p, Some(&b), None, &mut env);
        let ph = b.placeholder("gh").unwrap().to_string();
        assert_eq!(env, vec![("LANG".into(), "C".into()), ("GITHUB_TOKEN".into(), ph.clone())]);
        assert_eq!(b.expand(&p, "Bearer ${GITHUB_TOKEN} $GITHUB_TOKEN"), format!("Bearer {ph} $GITHUB_TOKEN"));
    }

    #[test]
    fn an_unset_env_source_gives_no_placeholder() {
        let text = "version = 1\n[network]\nallow = [\"api.test\"]\n[secrets.gh]\nfrom = \"env:GH_SRC\"\nhosts = [\"api.test\"]\nenv = \"GITHUB_TOKEN\"\n";
        let vars = Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None };
        let p = Policy::from_toml_str("p.toml", text, &vars).unwrap();
        let b = Broker::new(&p, &|_| None).unwrap().unwrap();
        let mut env: Vec<(String, String)> = vec![("LANG".into(), "C".into())];
        child_env(&p, Some(&b), None, &mut env);
        assert_eq!(env, vec![("LANG".to_string(), "C".to_string())]);
    }
}
