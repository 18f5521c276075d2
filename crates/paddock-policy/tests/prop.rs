//! Property tests of the policy engine's parsers: policy TOML (generated policies and
//! mutations of them), the host normaliser, `allow_private` CIDRs and revocations compiled
//! against a policy. Nothing panics; every error names `FILE:LINE:COL` inside the input;
//! a valid policy's effective TOML loads back to the same policy; a normalised host is a
//! fixed point. `fuzz/` has cargo-fuzz targets for the same entry points.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ipnet::IpNet;
use paddock_policy::{normalize_host, split_host_port, Host, Policy, PolicyError, Revocation, Vars};
use proptest::prelude::*;

const NAME: &str = "fuzz.toml";

fn config(cases: u32) -> ProptestConfig {
    // PROPTEST_CASES scales every property (for a longer hunt); CI runs the default.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn vars() -> Vars {
    Vars {
        workspace: "/work/project".into(),
        home: Some("/home/dev".into()),
        tmpdir: "/tmp".into(),
        caller_path: Some("/usr/bin:/bin".into()),
    }
}

/// A label of a plain ASCII name (never `xn--`: that would have to be valid punycode).
fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9_-]{0,12}[a-z0-9])?".prop_filter("not an A-label", |l| !l.starts_with("xn--"))
}

/// A DNS name that normalises: 1–4 labels, a letter TLD.
fn name() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 0..4), "[a-z]{1,8}")
        .prop_map(|(labels, tld)| labels.into_iter().chain([tld]).collect::<Vec<_>>().join("."))
}

/// A name in any case, maybe with a trailing dot.
fn spelled(name: String, case: u64, dot: bool) -> String {
    let mut s: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| if case >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c })
        .collect();
    if dot {
        s.push('.');
    }
    s
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u16; 8]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ]
}

/// Host text as a client or a policy could write it, valid or not.
fn host_junk() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (name(), any::<u64>(), any::<bool>()).prop_map(|(n, c, d)| spelled(n, c, d)),
        1 => prop::sample::select(vec![
            "bücher.example", "ＥＸＡＭＰＬＥ.com", "xn--bcher-kva.example", "xn--zz", "127.1", "0x7f.1",
            "2130706433", "a..b", ".a", "[::1]", "[::ffff:127.0.0.1]", "ａ．ｂ", "a％40b.com", "1.2.3.4.",
        ]).prop_map(String::from),
        2 => ip().prop_map(|a| a.to_string()),
        1 => ip().prop_map(|a| format!("[{a}]")),
        2 => "[a-zA-Z0-9.:\\[\\]@%_*/?#\\\\-]{0,30}",
        2 => "\\PC{0,30}",
    ]
}

/// A line of a policy list, as TOML (a basic string).
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", "))
}

/// A directory or file for `read`/`write` (no globs).
fn path_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/usr",
            "/etc",
            "${WORKSPACE}",
            "${WORKSPACE}/src",
            "~/.ssh",
            "${HOME}/.aws",
            "${TMPDIR}",
            "/a b/c",
            "/opt/./x/../y",
        ])
        .prop_map(String::from),
        prop::collection::vec("[a-z.]{1,5}", 1..4).prop_map(|segs| format!("/{}", segs.join("/"))),
    ]
}

/// A `deny` entry: a path or a glob.
fn deny_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        path_entry(),
        Just("${WORKSPACE}/**/*.pem".to_string()),
        prop::collection::vec("([a-z]{1,5}|\\*|\\*\\*|[a-z]{1,3}\\*\\.[a-z]{1,3}|\\{a,b\\}|\\[ab\\])", 1..4)
            .prop_map(|segs| format!("/{}", segs.join("/"))),
    ]
}

fn command_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["ls", "git status", "git push **", "cargo *", "/bin/sh -c *", "nope-prog x"])
            .prop_map(String::from),
        ("(ls|cat|git|true)", prop::collection::vec("([a-z-]{1,5}|\\*|[a-z]\\*)", 0..3), any::<bool>()).prop_map(
            |(p, args, rest)| {
                let mut s = std::iter::once(p).chain(args).collect::<Vec<_>>().join(" ");
                if rest {
                    s.push_str(" **");
                }
                s
            }
        ),
    ]
}

fn host_entry() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            3 => name(),
            1 => name().prop_map(|n| format!("*.{n}")),
            1 => ip().prop_map(|a| match a { IpAddr::V6(a) => format!("[{a}]"), a => a.to_string() }),
        ],
        prop::option::of(1u16..),
    )
        .prop_map(|(h, p)| match p {
            Some(p) => format!("{h}:{p}"),
            None => h,
        })
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(a, n)| format!("{}/{n}", Ipv4Addr::from(a))),
        (any::<[u16; 8]>(), 0u8..=128).prop_map(|(a, n)| format!("{}/{n}", Ipv6Addr::from(a))),
        ip().prop_map(|a| a.to_string()),
    ]
}

/// A valid policy: every section, entries drawn from what each accepts.
fn policy_text() -> impl Strategy<Value = String> {
    let fs = (
        prop::collection::vec(path_entry(), 0..4),
        prop::collection::vec(path_entry(), 0..3),
        prop::collection::vec(deny_entry(), 0..3),
    );
    let cmds =
        prop::option::of((prop::collection::vec(command_entry(), 0..3), prop::collection::vec(command_entry(), 0..2)));
    let net = (
        prop::collection::vec(host_entry(), 0..4),
        prop::collection::vec(host_entry(), 0..3),
        prop::collection::vec(cidr(), 0..3),
        prop::collection::vec((name(), ip()), 0..2),
    );
    let env = (
        prop::collection::vec("(PATH|HOME|LC_\\*|[A-Z][A-Z_]{0,6})", 0..3),
        // `set` values: printable ASCII but `"`, `\` and `$` (a `${` must name a variable).
        prop::collection::vec(("[A-Z][A-Z_]{0,6}", "[ -!#%-\\[\\]-~]{0,10}"), 0..2),
    );
    let limits = (
        prop::option::of("\"[1-9][0-9]{0,3}(ms|s|m|h)( [1-9]s)?\""),
        prop::option::of(prop_oneof![
            (1u32..1 << 30).prop_map(|n| n.to_string()),
            "\"[1-9][0-9]{0,3}(KiB|MiB|GiB|B)\""
        ]),
        prop::option::of(1u32..100_000),
    );
    (any::<bool>(), fs, cmds, net, env, limits).prop_map(|(strict, fs, cmds, net, env, limits)| {
        let mut t = String::from("version = 1\n");
        t += &format!("[sandbox]\nenforcement = \"{}\"\n", if strict { "strict" } else { "best-effort" });
        t += &format!("[filesystem]\nread = {}\nwrite = {}\ndeny = {}\n", list(&fs.0), list(&fs.1), list(&fs.2));
        if let Some((allow, deny)) = cmds {
            t += &format!("[commands]\nallow = {}\ndeny = {}\n", list(&allow), list(&deny));
        }
        t += &format!(
            "[network]\nallow = {}\ndeny = {}\nallow_private = {}\n",
            list(&net.0),
            list(&net.1),
            list(&net.2)
        );
        if !net.3.is_empty() {
            t += "[network.hosts]\n";
            for (n, a) in &net.3 {
                t += &format!("{} = {}\n", quoted(n), quoted(&a.to_string()));
            }
        }
        t += &format!("[env]\npass = {}\n", list(&env.0));
        if !env.1.is_empty() {
            t += "[env.set]\n";
            for (k, v) in &env.1 {
                t += &format!("{k} = {}\n", quoted(v));
            }
        }
        t += "[limits]\n";
        if let Some(x) = limits.0 {
            t += &format!("timeout = {x}\n");
        }
        if let Some(x) = limits.1 {
            t += &format!("max_output = {x}\n");
        }
        if let Some(x) = limits.2 {
            t += &format!("max_processes = {x}\n");
        }
        t
    })
}

/// Bytes with a few edits (flips, inserts of interesting bytes, deletions, truncation),
/// read back as text the way a file would be (lossy).
fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let byte = prop_oneof![any::<u8>(), prop::sample::select(b"\"'[]{}=,.\n\\#$~*:/ ".to_vec())];
    (base, prop::collection::vec((0u8..4, any::<prop::sample::Index>(), byte), 1..5)).prop_map(|(s, edits)| {
        let mut b = s.into_bytes();
        for (op, at, byte) in edits {
            let i = at.index(b.len() + 1);
            match op {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i, byte),
                2 if i < b.len() => {
                    b.remove(i);
                }
                3 if i + 1 < b.len() => b.truncate(i),
                _ => b.insert(i, byte),
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// Every problem of `e` is located in `text` (a line of it, a column within that line or
/// just past its end) and the message leads with that location.
fn assert_located(e: &PolicyError, text: &str) {
    assert!(!e.problems.is_empty());
    let lines: Vec<&str> = text.split('\n').collect();
    for p in &e.problems {
        assert_eq!(p.origin.file.as_path(), Path::new(NAME), "{p}");
        assert!(p.origin.line >= 1 && p.origin.line <= lines.len(), "line out of range: {p}\n{text}");
        let width = lines[p.origin.line - 1].chars().count();
        assert!(p.origin.col >= 1 && p.origin.col <= width + 1, "column out of range: {p}\n{text}");
        assert!(p.to_string().starts_with(&format!("{NAME}:{}:{}: error: ", p.origin.line, p.origin.col)), "{p}");
        assert!(!p.message.trim().is_empty(), "{p}");
    }
}

/// Loads `text`, never following `extends` (it would read other files).
fn load(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_toml_str(NAME, text, &vars())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn generated_policies_load_and_show_round_trips(text in policy_text()) {
        let p = load(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        // `policy show` prints the effective policy: loading it gives the same policy.
        let again = load(p.effective_toml()).unwrap_or_else(|e| panic!("{e}\n---\n{}", p.effective_toml()));
        prop_assert_eq!(again.hash(), p.hash());
        // Deciding on anything the generator could name does not panic.
        for h in p.network.allow.iter().chain(&p.network.deny) {
            let _ = p.decide_connect(&h.host.as_policy_str(), h.port.unwrap_or(443));
        }
        let _ = p.decide_read(Path::new("/work/project/a.pem"));
        let _ = p.check_command(&["git".into(), "push".into()], Path::new("/work/project"));
    }

    #[test]
    fn mutated_policies_fail_located(text in mutated(policy_text())) {
        if text.contains("extends") {
            return Ok(());
        }
        if let Err(e) = load(&text) {
            assert_located(&e, &text);
        }
    }

    #[test]
    fn any_text_fails_located(text in prop_oneof![
        "\\PC{0,200}",
        "(version = 1\n)?(\\[[a-z.]{1,12}\\]\n)?([a-z_]{1,10} = (\"[^\"\\\\]{0,10}\"|[0-9]{1,5}|\\[\\]|\\{\\})\n){0,4}",
    ]) {
        if text.contains("extends") {
            return Ok(());
        }
        if let Err(e) = load(&text) {
            assert_located(&e, &text);
        }
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn normalised_hosts_are_fixed_points(raw in host_junk()) {
        if let Ok(h) = normalize_host(&raw) {
            prop_assert_eq!(normalize_host(&h.to_string()), Ok(h.clone()));
            prop_assert_eq!(normalize_host(&h.as_policy_str()), Ok(h.clone()));
            if let Host::Name(n) = &h {
                prop_assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)), "{}", n);
                prop_assert!(!n.ends_with('.') && !n.is_empty() && n.len() <= 253, "{}", n);
            }
            // The authority form splits back to the same host and port.
            let auth = h.authority(8080);
            let (host, port) = split_host_port(&auth).expect("an authority splits");
            prop_assert_eq!(port, Some(8080));
            prop_assert_eq!(normalize_host(host), Ok(h));
        }
    }

    #[test]
    fn names_normalise_to_lowercase((n, case, dot) in (name(), any::<u64>(), any::<bool>())) {
        let h = normalize_host(&spelled(n.clone(), case, dot));
        prop_assert_eq!(h, Ok(Host::Name(n)));
    }

    #[test]
    fn ip_literals_normalise_to_themselves(a in ip()) {
        prop_assert_eq!(normalize_host(&a.to_string()), Ok(Host::Ip(a)));
        prop_assert_eq!(normalize_host(&format!("[{a}]")).is_ok(), a.is_ipv6());
    }

    #[test]
    fn split_host_port_never_panics(s in host_junk(), port in "(:[0-9]{0,6})?") {
        let _ = split_host_port(&format!("{s}{port}"));
    }
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn allow_private_covers_what_it_names(net in cidr(), inside in any::<u128>()) {
        let text = format!("version = 1\n[network]\nallow_private = [{}]\n", quoted(&net));
        let p = load(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let parsed: IpNet = net.parse().or_else(|_| net.parse::<IpAddr>().map(IpNet::from)).expect("generated CIDR");
        // An address inside the network (host bits from `inside`).
        let addr = match parsed.trunc() {
            IpNet::V4(n) => {
                let host = (inside as u32) & !u32::from(n.netmask());
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
            }
            IpNet::V6(n) => {
                let host = inside & !u128::from(n.netmask());
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
            }
        };
        prop_assert!(p.network.private_allowed(addr), "{} should cover {}", net, addr);
    }

    #[test]
    fn allow_private_junk_fails_located(net in prop_oneof![
        "[0-9a-f.:/]{0,24}",
        "\\PC{0,20}",
        mutated(cidr()),
    ]) {
        let text = format!("version = 1\n[network]\nallow_private = [{}]\n", quoted(&net));
        if let Err(e) = load(&text) {
            assert_located(&e, &text);
            prop_assert!(e.problems.iter().all(|p| p.origin.line == 3), "{}", e);
        }
    }

    #[test]
    fn revocations_compile_or_fail_located(list in prop::collection::vec((0u8..4, prop_oneof![
        host_entry(), command_entry(), deny_entry(), host_junk(), "[a-z]{1,8}\\.(allow|deny)\\[[0-9]\\]",
    ]), 0..6)) {
        let mut p = load("version = 1\n[commands]\nallow = [\"ls\"]\n").expect("a small policy");
        let list: Vec<(Revocation, Option<String>)> = list
            .into_iter()
            .map(|(k, v)| {
                let r = match k {
                    0 => Revocation::Command(v),
                    1 => Revocation::Path(v),
                    2 => Revocation::Network(v),
                    _ => Revocation::Rule(v),
                };
                (r, Some("prop".into()))
            })
            .collect();
        let source = Path::new("/state/revocations.toml");
        match p.set_revocations(&list, source) {
            Ok(()) => {
                for (r, _) in &list {
                    if let Revocation::Network(h) = r {
                        // A revoked host is denied, whatever the policy says.
                        if let Ok((host, port)) = split_host_port(h) {
                            if let Ok(host) = normalize_host(host.strip_prefix("*.").map_or(host, |_| "")) {
                                let d = p.decide_connect(&host.as_policy_str(), port.unwrap_or(443));
                                prop_assert!(!d.is_allow(), "{:?}", d);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                for prob in &e.problems {
                    prop_assert_eq!(prob.origin.file.as_path(), source);
                    prop_assert!(prob.origin.line >= 1 && prob.origin.line <= list.len(), "{}", prob);
                }
            }
        }
    }
}

/// Found while fuzzing: `extends` of an endless file read until memory ran out.
#[test]
fn extends_of_an_endless_file_fails_located() {
    let text = "version = 1\nextends = [\"/dev/zero\"]\n";
    let e = load(text).unwrap_err();
    assert_located(&e, text);
    assert!(e.to_string().contains("larger than"), "{e}");
}
