use crate::{Policy, Vars, Verdict};

fn vars() -> Vars {
    Vars { workspace: "/nonexistent-ws".into(), home: None, tmpdir: "/tmp".into(), caller_path: None }
}

fn load(text: &str) -> Result<Policy, String> {
    let text = format!("version = 1\n[network]\nallow = [\"api.github.com\", \"other.test\"]\n{text}");
    Policy::from_toml_str("p.toml", &text, &vars()).map_err(|e| e.to_string())
}

const RULES: &str = "[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET /repos/acme/**\", \"POST /repos/acme/*/pulls\"]\ndeny = [\"DELETE **\", \"* /repos/acme/secret/**\"]\n";

#[test]
fn requests_are_decided_by_their_host_rules() {
    let p = load(RULES).unwrap();
    let d = |m: &str, h: &str, path: &str| {
        let d = p.decide_http(m, h, 443, path);
        (d.verdict, d.rule.to_string())
    };
    assert_eq!(
        d("GET", "api.github.com", "/repos/acme/x?per_page=1"),
        (Verdict::Allow, "network.http[0].allow[0]".into())
    );
    assert_eq!(d("GET", "api.github.com", "/repos/acme"), (Verdict::Allow, "network.http[0].allow[0]".into()));
    assert_eq!(d("POST", "api.github.com", "/repos/acme/x/pulls"), (Verdict::Allow, "network.http[0].allow[1]".into()));
    assert_eq!(d("POST", "api.github.com", "/repos/acme/x/y/pulls"), (Verdict::Deny, "network.http[0]".into()));
    assert_eq!(d("DELETE", "api.github.com", "/repos/acme/x"), (Verdict::Deny, "network.http[0].deny[0]".into()));
    assert_eq!(d("GET", "api.github.com", "/repos/acme/secret/k"), (Verdict::Deny, "network.http[0].deny[1]".into()));
    assert_eq!(d("GET", "api.github.com", "/repos/other"), (Verdict::Deny, "network.http[0]".into()));
    assert_eq!(d("get", "api.github.com", "/repos/acme/x"), (Verdict::Deny, "network.http[0]".into()));
    // Not in normal form: refused whatever the patterns say.
    for path in [
        "/repos/acme/../other",
        "/repos/acme/%2e%2e/other",
        "/repos/acme%2fx",
        "/repos//acme/x",
        "/repos/acme/%zz",
        "*",
        // Forms a server may read as another path: decoded twice, `;` parameters
        // stripped (`..;` is `..` to some), a NUL or other control, trimmed white space.
        "/repos/acme/%2565vil",
        "/repos/acme/x;y/z",
        "/repos/acme/..;/secret/k",
        "/repos/acme/x%00",
        "/repos/acme/x%0a",
        "/repos/acme/x%20",
        "/repos/acme/%09x",
    ] {
        assert_eq!(d("GET", "api.github.com", path), (Verdict::Deny, "network.http[0]".into()), "{path}");
    }
    // Forms a server may read as a denied path, for a host with deny patterns (found by
    // an attack, each reaching `/repos/acme/secret/k` on some server).
    for path in [
        "/repos/acme/secret./k",
        "/repos/acme/secret%2e/k",
        "/repos/acme/secret%3F/k",
        "/repos/acme/secret%23/k",
        "/repos/acme/%EF%BD%93ecret/k",
        "/repos/acme/ｓecret/k",
        "/repos/acme/secret%E2%80%8B/k",
        "/repos/acme/secret::$DATA",
    ] {
        assert_eq!(d("GET", "api.github.com", path), (Verdict::Deny, "network.http[0]".into()), "{path}");
    }
    // A host with allow patterns alone: such a path is matched as written.
    let allow_only = load("[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET /repos/acme/**\"]\n").unwrap();
    assert!(allow_only.decide_http("GET", "api.github.com", 443, "/repos/acme/caf%C3%A9").is_allow());
    // Inside a segment, white space is a name like any other.
    assert_eq!(d("GET", "api.github.com", "/repos/acme/a%20b").0, Verdict::Allow);
    // Deny patterns meet the method and the path in any case (a server whose names ignore
    // case serves the same thing); allow patterns only exactly.
    assert_eq!(d("GET", "api.github.com", "/repos/acme/SECRET/k"), (Verdict::Deny, "network.http[0].deny[1]".into()));
    assert_eq!(d("GET", "api.github.com", "/REPOS/Acme/Secret/k"), (Verdict::Deny, "network.http[0].deny[1]".into()));
    assert_eq!(d("delete", "api.github.com", "/repos/acme/x"), (Verdict::Deny, "network.http[0].deny[0]".into()));
    assert_eq!(d("GET", "api.github.com", "/Repos/acme/x"), (Verdict::Deny, "network.http[0]".into()));
    // A trailing slash: the same path to many routers, so to the deny patterns too.
    let p2 = load(
        "[[network.http]]\nhost = \"api.github.com\"\nallow = [\"* /repos/**\"]\ndeny = [\"* /repos/acme/admin\"]\n",
    )
    .unwrap();
    for path in [
        "/repos/acme/admin",
        "/repos/acme/admin/",
        "/repos/acme/ADMIN/?x=1",
        "/repos/acme/admin.json",
        "/repos/acme/admin.",
        "/repos/acme/admin%2e",
        "/repos/acme/admin.json/",
    ] {
        assert_eq!(
            p2.decide_http("GET", "api.github.com", 443, path).rule.as_ref(),
            "network.http[0].deny[0]",
            "{path}"
        );
    }
    // Case as ASP.NET's or Python's case-insensitive matches see it (`ı`): outside ASCII,
    // refused before any pattern for a host with deny patterns.
    assert!(!p2.decide_http("GET", "api.github.com", 443, "/repos/acme/adm%C4%B1n").is_allow());
    assert!(p2.decide_http("GET", "api.github.com", 443, "/repos/acme/admin/x").is_allow());
    assert!(p2.decide_http("GET", "api.github.com", 443, "/repos/").is_allow());
    assert!(p2.decide_http("GET", "api.github.com", 443, "/repos/acme/administrator").is_allow());
    assert!(p2.decide_http("GET", "api.github.com", 443, "/repos/acme/.admin").is_allow());
    // A host without rules: the host decision.
    assert_eq!(d("DELETE", "other.test", "/x"), (Verdict::Allow, "network.allow[1]".into()));
    assert_eq!(d("GET", "nope.test", "/x").0, Verdict::Deny);
    assert!(p.intercepts("api.github.com", 443) && !p.intercepts("other.test", 443));
}

#[test]
fn revocations_cut_rules_and_secrets() {
    use crate::Revocation;
    let secret = "[secrets.gh]\nfrom = \"env:GH\"\nhosts = [\"api.github.com\"]\nenv = \"GITHUB_TOKEN\"\n";
    let base = load(&format!("{RULES}{secret}")).unwrap();
    assert!(base.secret_refusal("gh").is_none());
    let src = std::path::Path::new("revocations.toml");
    for rev in [Revocation::Secret("gh".into()), Revocation::Rule("secrets.gh".into())] {
        let mut p = base.clone();
        p.set_revocations(&[(rev.clone(), Some("leaked".into()))], src).unwrap();
        let d = p.secret_refusal("gh").expect("revoked");
        assert!(d.reason.starts_with("revoked by `") && d.reason.contains("(leaked)"), "{rev:?}: {}", d.reason);
        assert_eq!(&*d.rule, "secrets.gh");
    }
    for id in ["network.http[0]", "network.http[0].allow[0]"] {
        let mut p = base.clone();
        p.set_revocations(&[(Revocation::Rule(id.into()), None)], src).unwrap();
        let d = p.decide_http("GET", "api.github.com", 443, "/repos/acme/x");
        assert!(!d.is_allow() && d.reason.contains("revoked by `rule:"), "{id}: {d:?}");
    }
    let mut p = base.clone();
    let e = p.set_revocations(&[(Revocation::Rule("network.http[0].deny[0]".into()), None)], src).unwrap_err();
    assert!(e.to_string().contains("names a restriction"), "{e}");
    let shown = base.effective_toml();
    assert!(shown.contains("[[network.http]]") && shown.contains("\"DELETE **\""), "{shown}");
    assert!(shown.contains("[secrets.gh]") && shown.contains("format = \"Bearer {}\""), "{shown}");
}

#[test]
fn no_allow_list_means_any_request() {
    let p = load("[[network.http]]\nhost = \"other.test\"\ndeny = [\"DELETE **\"]\n").unwrap();
    assert_eq!(p.decide_http("PUT", "other.test", 443, "/a/b").rule.as_ref(), "network.http[0]");
    assert!(p.decide_http("PUT", "other.test", 443, "/a/b").is_allow());
    assert!(!p.decide_http("DELETE", "other.test", 443, "/").is_allow());
}

#[test]
fn bad_rules_are_located() {
    for (text, at, needle) in [
        ("[[network.http]]\nhost = \"api.github.com\"\nallow = [\"get /x\"]\n", "p.toml:6:10", "upper case"),
        ("[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET x\"]\n", "p.toml:6:10", "starts with `/`"),
        ("[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET /**/x\"]\n", "p.toml:6:10", "last segment"),
        ("[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET\"]\n", "p.toml:6:10", "bad request pattern"),
        ("[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET /x?a=1\"]\n", "p.toml:6:10", "query"),
        ("[[network.http]]\nhost = \"evil.test\"\n", "p.toml:5:8", "not allowed by [network]"),
        ("[[network.http]]\nallow = [\"GET /\"]\n", "p.toml:4:1", "has no `host`"),
        (
            "[[network.http]]\nhost = \"other.test\"\nallwo = []\n",
            "p.toml:6:1",
            "unknown key `allwo` in [network.http]",
        ),
    ] {
        let e = load(text).unwrap_err();
        assert!(e.starts_with(&format!("{at}: error:")), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
    }
    let e = load("upstream_ca = [\"/nonexistent/ca.pem\"]\n").unwrap_err();
    assert!(e.starts_with("p.toml:4:16: error: upstream_ca `/nonexistent/ca.pem` cannot be read"), "{e}");
}

#[test]
fn a_head_is_decided_as_the_get_it_is_served_as() {
    // Found by a seventeenth attack: Express and Flask answer `HEAD /admin/reset` with the
    // `GET` handler (which resets); `curl -I` on an allowed `GET` path was refused.
    let p = load(
        "[[network.http]]\nhost = \"api.github.com\"\nallow = [\"GET /repos/acme/**\", \"HEAD /pub/**\"]\ndeny = [\"GET /repos/acme/admin/**\"]\n[[network.http]]\nhost = \"other.test\"\ndeny = [\"GET /admin/**\", \"DELETE **\"]\n",
    )
    .unwrap();
    let d = |m: &str, h: &str, path: &str| {
        let d = p.decide_http(m, h, 443, path);
        (d.verdict, d.rule.to_string())
    };
    // Denied where its `GET` is, in any case, on every form of the path.
    for (m, path) in
        [("HEAD", "/admin/reset"), ("head", "/admin/reset"), ("HEAD", "/admin/reset/"), ("HEAD", "/ADMIN/reset.json")]
    {
        assert_eq!(d(m, "other.test", path), (Verdict::Deny, "network.http[1].deny[0]".into()), "{m} {path}");
    }
    let r = p.decide_http("HEAD", "other.test", 443, "/admin/reset").reason;
    assert!(r.contains("`GET /admin/**`") && r.contains("`GET` handler"), "{r}");
    assert!(p.denied_http("HEAD", "other.test", 443, "/admin/x").is_some());
    assert_eq!(d("HEAD", "other.test", "/public"), (Verdict::Allow, "network.http[1]".into()));
    assert_eq!(d("HEAD", "api.github.com", "/repos/acme/admin/x"), (Verdict::Deny, "network.http[0].deny[0]".into()));
    // Allowed where its `GET` is (or itself): `curl -I`.
    assert_eq!(d("HEAD", "api.github.com", "/repos/acme/x"), (Verdict::Allow, "network.http[0].allow[0]".into()));
    assert_eq!(d("HEAD", "api.github.com", "/pub/x"), (Verdict::Allow, "network.http[0].allow[1]".into()));
    assert_eq!(d("head", "api.github.com", "/repos/acme/x"), (Verdict::Deny, "network.http[0]".into()));
    // A `GET` is not a `HEAD`.
    assert_eq!(d("GET", "api.github.com", "/pub/x"), (Verdict::Deny, "network.http[0]".into()));
    assert_eq!(d("GET", "other.test", "/public"), (Verdict::Allow, "network.http[1]".into()));
}

#[test]
fn deny_patterns_alone_decide_a_method_that_only_may_be_taken() {
    let p = load(RULES).unwrap();
    let denied = |m: &str, path: &str| p.denied_http(m, "api.github.com", 443, path).map(|d| d.rule.to_string());
    assert_eq!(denied("DELETE", "/repos/acme/x"), Some("network.http[0].deny[0]".into()));
    assert_eq!(denied("delete", "/repos/acme/x"), Some("network.http[0].deny[0]".into()));
    // Not on the allow list: not refused here (the allow list is the request line's).
    assert_eq!(denied("GET", "/elsewhere"), None);
    assert_eq!(denied("LINK", "/repos/acme/x/pulls"), None);
    assert_eq!(denied("GET", "/repos/acme/secret/k"), Some("network.http[0].deny[1]".into()));
    assert_eq!(p.denied_http("DELETE", "other.test", 443, "/x"), None, "no rules for the host");
}
