use super::*;
use paddock_policy::normalize_host;

fn t(h: &str, port: u16) -> Target {
    Target { host: normalize_host(h).unwrap(), port }
}

#[test]
fn base64_matches_rfc4648() {
    for (i, o) in
        [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
    {
        assert_eq!(base64(i.as_bytes()), o);
    }
    assert_eq!(base64(b"user:p@ss"), "dXNlcjpwQHNz");
}

#[test]
fn no_proxy_reads_names_suffixes_ips_and_ports() {
    let n = NoProxy::parse("internal.example, .corp.test,*.lan.test 10.0.0.0/8,192.168.1.5,svc.test:8080");
    for (h, p, want) in [
        ("internal.example", 443, true),
        ("a.internal.example", 443, true),
        ("notinternal.example", 443, false),
        ("corp.test", 443, true),
        ("x.corp.test", 80, true),
        ("y.lan.test", 443, true),
        ("10.9.8.7", 443, true),
        ("192.168.1.5", 443, true),
        ("192.168.1.6", 443, false),
        ("svc.test", 8080, true),
        ("svc.test", 443, false),
        ("example.com", 443, false),
    ] {
        assert_eq!(n.exempts(&t(h, p)), want, "{h}:{p}");
    }
    assert!(NoProxy::parse("*").exempts(&t("any.test", 1)));
    assert!(!NoProxy::parse("").exempts(&t("any.test", 1)));
}

#[test]
fn env_order_and_broken_values() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    let u = Upstream::from_env(env(&[("HTTPS_PROXY", "http://s.test:3128"), ("http_proxy", "p.test:8080")]));
    assert!(matches!(&u.tunnel, Slot::Proxy(p) if p.shown() == "http://s.test:3128"));
    assert!(matches!(&u.http, Slot::Proxy(p) if p.shown() == "http://p.test:8080"));
    let u = Upstream::from_env(env(&[("HTTPS_PROXY", "socks5://s.test:1080")]));
    assert!(matches!(&u.tunnel, Slot::Broken(why) if why.contains("HTTPS_PROXY") && why.contains("socks5")));
    let u = Upstream::from_env(env(&[("HTTPS_PROXY", " ")]));
    assert!(!u.is_set());
}

#[test]
fn credentials_never_show() {
    let url = parse_proxy_url("http://alice:s3cr%40t@proxy.test:3128", false).unwrap();
    let p = UpstreamProxy::new(url, "test");
    assert_eq!(p.auth().unwrap(), "Basic YWxpY2U6czNjckB0");
    let shown = format!("{p:?} {}", p.shown());
    assert!(!shown.contains("s3cr") && !shown.contains("YWxp") && !shown.contains("alice"), "{shown}");
    let u = Upstream::explicit(parse_proxy_url("http://alice:s3cret@proxy.test:3128", false).unwrap());
    assert!(!format!("{u:?}").contains("s3cret"));
}

#[test]
fn routes() {
    let u = Upstream::from_env(|k| (k == "HTTPS_PROXY").then(|| "http://up.test:3128".to_string()));
    assert!(u.route(&t("registry.test", 443), true, None).is_some());
    assert!(u.route(&t("registry.test", 443), true, Some("10.0.0.1".parse().unwrap())).is_none(), "a pin goes direct");
    assert!(u.route(&t("127.0.0.1", 443), true, None).is_none(), "loopback goes direct");
    assert!(u.route(&t("localhost", 443), true, None).is_some(), "a name is the upstream's, as curl does");
    assert!(u.route(&t("8.8.8.8", 443), true, None).is_some(), "other literals go through");
    assert!(u.route(&t("registry.test", 80), false, None).is_some(), "plain HTTP falls back to HTTPS_PROXY");
    assert!(Upstream::none().route(&t("registry.test", 443), true, None).is_none());
}

#[test]
fn status_lines() {
    assert_eq!(status_of("HTTP/1.1 200 Connection established"), Some(200));
    assert_eq!(status_of("HTTP/1.0 407 Proxy Authentication Required"), Some(407));
    assert_eq!(status_of("SSH-2.0-OpenSSH"), None);
    assert_eq!(printable("a\x1b[31mb"), "a?[31mb");
}
