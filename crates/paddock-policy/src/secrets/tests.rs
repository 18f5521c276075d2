use super::*;
use crate::{Policy, Vars};

fn vars() -> Vars {
    Vars {
        workspace: "/nonexistent-ws".into(),
        home: Some("/home/dev".into()),
        tmpdir: "/tmp".into(),
        caller_path: None,
    }
}

fn load(text: &str) -> Result<Policy, String> {
    let text =
        format!("version = 1\n[network]\nallow = [\"api.github.com\", \"*.example.com\", \"other.test\"]\n{text}");
    Policy::from_toml_str("p.toml", &text, &vars()).map_err(|e| e.to_string())
}

#[test]
fn a_secret_compiles_with_defaults() {
    let p =
        load("[secrets.github]\nfrom = \"env:GH\"\nhosts = [\"api.github.com\"]\nenv = \"GITHUB_TOKEN\"\n").unwrap();
    let s = p.secrets.get("github").unwrap();
    assert_eq!((&*s.id, s.env.as_str(), s.header.as_str()), ("secrets.github", "GITHUB_TOKEN", "Authorization"));
    assert_eq!(s.source, SecretSource::Env("GH".into()));
    assert_eq!(s.format, SecretFormat::Template("Bearer {}".into()));
    assert!(s.covers(&Host::Name("api.github.com".into()), 443));
    assert!(s.covers(&Host::Name("api.github.com".into()), 8443), "any port [network] grants");
    assert!(!s.covers(&Host::Name("github.com".into()), 443));
    assert!(p.effective_toml().contains("from = \"env:GH\""), "{}", p.effective_toml());
}

#[test]
fn sources_formats_and_wildcards() {
    let p = load(concat!(
        "[secrets.a]\nfrom = \"file:~/tok\"\nhosts = [\"*.example.com\"]\nenv = \"A\"\nformat = \"token {}\"\n",
        "[secrets.b]\nfrom = \"command:pass show b\"\nttl = \"1m\"\nhosts = [\"other.test\"]\nenv = \"B\"\nformat = \"basic\"\nuser = \"x\"\nheader = \"X-Auth\"\n",
    ))
    .unwrap();
    let a = p.secrets.get("a").unwrap();
    assert_eq!(a.source, SecretSource::File("/home/dev/tok".into()));
    assert!(a.covers(&Host::Name("x.example.com".into()), 443));
    assert!(!a.covers(&Host::Name("example.com".into()), 443), "never the apex");
    assert!(!a.covers(&Host::Name("xexample.com".into()), 443));
    let b = p.secrets.get("b").unwrap();
    assert_eq!((b.ttl, &b.format), (Duration::from_secs(60), &SecretFormat::Basic { user: "x".into() }));
    assert_eq!(b.source, SecretSource::Command("pass show b".into()));
    assert!(p.hidden_paths().contains(&PathBuf::from("/home/dev/tok")), "a file: secret is never in a view");
    assert!(!p.decide_read(std::path::Path::new("/home/dev/tok")).is_allow());
}

#[test]
fn mistakes_are_located() {
    for (text, at, needle) in [
        (
            "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"evil.test\"]\nenv = \"T\"\n",
            "p.toml:6:10",
            "not allowed by [network]",
        ),
        (
            "[secrets.g]\nfrom = \"vault:x\"\nhosts = [\"other.test\"]\nenv = \"T\"\n",
            "p.toml:5:8",
            "unknown source `vault:`",
        ),
        (
            "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nformt = \"x\"\n",
            "p.toml:8:1",
            "unknown key `formt` in [secrets.g]",
        ),
        ("[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\n", "p.toml:4:10", "has no `env`"),
        (
            "[secrets.\"a b\"]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\n",
            "p.toml:4:10",
            "bad secret name",
        ),
        (
            "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nformat = \"basic\"\n",
            "p.toml:8:10",
            "needs a `user`",
        ),
        (
            "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nformat = \"Bearer\"\n",
            "p.toml:8:10",
            "bad format",
        ),
        (
            "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"T\"\nttl = \"5m\"\n",
            "p.toml:8:7",
            "`command:` secrets only",
        ),
        (
            "[secrets.g]\nfrom = \"env:GH\"\nhosts = [\"other.test\"]\nenv = \"HTTPS_PROXY\"\n",
            "p.toml:7:7",
            "paddock sets itself",
        ),
        ("[secrets.g]\nfrom = \"file:rel\"\nhosts = [\"other.test\"]\nenv = \"T\"\n", "p.toml:5:8", "relative path"),
    ] {
        let e = load(text).unwrap_err();
        assert!(e.starts_with(&format!("{at}: error:")), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
        assert!(e.contains("hint:"), "{text}: {e}");
    }
    let e = load("[secrets.a]\nfrom = \"env:X\"\nhosts = [\"other.test\"]\nenv = \"T\"\n[secrets.b]\nfrom = \"env:Y\"\nhosts = [\"other.test\"]\nenv = \"T\"\n").unwrap_err();
    assert!(e.contains("both use the variable `T`"), "{e}");
}

/// A `file:` secret in a directory a read grant covers: refused (a rotation by rename would
/// be readable in a running sandbox), unless that directory is denied whole. And a
/// `command:` source running a script under a write grant: refused (it runs unconfined).
#[test]
fn secrets_the_child_could_read_after_a_rotation_or_rewrite_are_refused() {
    let secret = |from: &str| format!("[secrets.g]\nfrom = \"{from}\"\nhosts = [\"other.test\"]\nenv = \"T\"\n");
    let e = load(&format!("[filesystem]\nread = [\"/srv/keys\"]\n{}", secret("file:/srv/keys/tok"))).unwrap_err();
    assert!(e.starts_with("p.toml:7:8: error:"), "{e}");
    assert!(e.contains("is in /srv/keys, which the child may read") && e.contains("deny = [\"/srv/keys\"]"), "{e}");
    load(&format!("[filesystem]\nread = [\"/srv/keys\"]\ndeny = [\"/srv/keys\"]\n{}", secret("file:/srv/keys/tok")))
        .unwrap();
    load(&format!("[filesystem]\nread = [\"/srv/other\"]\n{}", secret("file:/srv/keys/tok"))).unwrap();
    let ws = "[filesystem]\nwrite = [\"/nonexistent-ws\"]\n";
    let e = load(&format!("{ws}{}", secret("command:/nonexistent-ws/bin/token --fresh"))).unwrap_err();
    assert!(e.starts_with("p.toml:7:8: error:"), "{e}");
    assert!(e.contains("runs or reads /nonexistent-ws/bin/token, under a writable path"), "{e}");
    load(&format!("{ws}{}", secret("command:/usr/bin/pass show g"))).unwrap();
}

/// A `file:` secret through symlinks a rotation re-points (a kubelet's `token` →
/// `..data/token`, `..data` → `..v1`): the directory holding those links must be denied,
/// not only the versioned one the file resolves to (found by an attack: following a hint
/// that named `..v1`, the rotated value was readable).
#[test]
fn a_file_secret_through_rotated_links_needs_their_directory_denied() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let k8s = root.join("k8s");
    std::fs::create_dir_all(k8s.join("..v1")).unwrap();
    std::fs::write(k8s.join("..v1/token"), "t").unwrap();
    std::os::unix::fs::symlink("..v1", k8s.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", k8s.join("token")).unwrap();
    let secret = format!(
        "[secrets.g]\nfrom = \"file:{}\"\nhosts = [\"other.test\"]\nenv = \"T\"\n",
        k8s.join("token").display()
    );
    let with = |deny: &str| {
        load(&format!("[filesystem]\nread = [{:?}]\ndeny = [{deny}]\n{secret}", k8s.display().to_string()))
    };
    let e = with(&format!("{:?}", k8s.join("..v1").display().to_string())).unwrap_err();
    assert!(e.contains(&format!("is in {}, which the child may read", k8s.display())), "{e}");
    with(&format!("{:?}", k8s.display().to_string())).unwrap();
}

/// A `file:` source that is there but holds no value (a directory, a device) is a located
/// error; one not there yet is read when it comes.
#[test]
fn a_file_source_that_is_not_a_regular_file_is_refused() {
    let secret = |from: &str| format!("[secrets.s]\nfrom = \"{from}\"\nhosts = [\"other.test\"]\nenv = \"S\"\n");
    for from in ["file:/dev/zero", "file:/etc"] {
        let e = load(&secret(from)).unwrap_err();
        assert!(e.starts_with(&format!("p.toml:5:8: error: bad `from` `{from}`: ")), "{e}");
        assert!(e.contains("is not a regular file") && e.contains("hint: "), "{e}");
    }
    load(&secret("file:/nonexistent-dir/tok")).unwrap();
}
