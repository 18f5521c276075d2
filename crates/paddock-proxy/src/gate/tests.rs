use super::*;
use crate::host::normalise_host;
use crate::preview::{preview, Preview};

struct P;
impl HostPolicy for P {
    fn decide(&self, host: &str, port: u16) -> HostDecision {
        match host {
            "evil.example" => HostDecision::deny("network.deny[0]", "evil"),
            "gone.example" => HostDecision::deny("network.allow[1]", "revoked by operator"),
            "ask.example" => HostDecision::ask("network.ask[0]", "asks"),
            _ => HostDecision::deny("network.default", format!("no entry for {host}:{port}")),
        }
    }
    fn pinned(&self, host: &str) -> Option<IpAddr> {
        match host {
            "pinned.test" => Some("169.254.169.254".parse().unwrap()),
            "mapped.test" => Some("::ffff:127.0.0.1".parse().unwrap()),
            _ => None,
        }
    }
    fn private_allowed(&self, addr: IpAddr) -> bool {
        addr == IpAddr::from([127, 0, 0, 1])
    }
    fn ask(&self, host: &str, port: u16) -> std::pin::Pin<Box<dyn std::future::Future<Output = HostDecision> + Send>> {
        let d = match port {
            443 => HostDecision::allow("network.ask[0]", format!("{host}: a person said yes")),
            _ => HostDecision::deny("network.ask[0]", format!("{host}: a person said no")),
        };
        Box::pin(std::future::ready(d))
    }
}

fn gate() -> Gate {
    Gate { policy: Arc::new(P), connect_timeout: Duration::from_secs(1), upstream: Upstream::none() }
}

fn t(h: &str, port: u16) -> Target {
    Target { host: normalise_host(h).unwrap(), port }
}

#[test]
fn deny_messages_name_rule_and_hint() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let decide = |m: &str, t: &Target| rt.block_on(gate().decide(m, t));
    let r = decide("CONNECT", &t("evil.example", 443)).unwrap_err();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message.contains("CONNECT evil.example:443 refused by network.deny[0] (\"evil\")"), "{}", r.message);
    assert!(r.message.contains("remove the matching entry from [network] deny"), "{}", r.message);
    let r = decide("GET", &t("other.example", 8080)).unwrap_err();
    assert!(r.message.contains("add \"other.example:8080\" to [network] allow"), "{}", r.message);
    let r = decide("GET", &t("other.example", 80)).unwrap_err();
    assert!(r.message.contains("add \"other.example\" to [network] allow"), "{}", r.message);
    let r = decide("GET", &t("gone.example", 80)).unwrap_err();
    assert!(r.message.contains("revoked"), "{}", r.message);
    // A policy that asks: the answer decides; without an `ask` of its own, a denial.
    let d = decide("CONNECT", &t("ask.example", 443)).unwrap();
    assert!(d.allow && !d.ask && d.rule == "network.ask[0]", "{d:?}");
    let r = decide("CONNECT", &t("ask.example", 444)).unwrap_err();
    assert!(r.message.contains("refused by network.ask[0]"), "{}", r.message);
}

#[tokio::test]
async fn pins_are_vetted_without_dialing() {
    let allow = HostDecision::allow("network.allow[0]", "test");
    let r = gate().dial("CONNECT", &t("pinned.test", 443), &allow, Mode::Tunnel).await.err().unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(&*r.rule, RULE_PRIVATE);
    assert_eq!(r.address, Some("169.254.169.254:443".parse().unwrap()));
    assert!(r.message.contains("link-local"), "{}", r.message);
    assert!(r.message.contains("\"169.254.169.254/32\" to [network] allow_private"), "{}", r.message);
    // IP literals are vetted the same way, nothing is dialled.
    let r = gate().dial("CONNECT", &t("10.1.2.3", 443), &allow, Mode::Tunnel).await.err().unwrap();
    assert_eq!((r.status, &*r.rule), (StatusCode::FORBIDDEN, RULE_PRIVATE));
    let r = gate().dial("CONNECT", &t("[fe80::1]", 443), &allow, Mode::Tunnel).await.err().unwrap();
    assert!(r.message.contains("fe80::1/128"), "{}", r.message);
    let r = gate().dial("CONNECT", &t("[::ffff:169.254.169.254]", 80), &allow, Mode::Tunnel).await.err().unwrap();
    assert_eq!(r.address, Some("169.254.169.254:80".parse().unwrap()));
}

#[test]
fn preview_gives_the_proxy_verdict_without_dialing() {
    // Denied by name: the policy's rule and the allow line.
    match preview(&P, &t("evil.example", 443)) {
        Preview::Denied { decision, hint } => {
            assert_eq!(decision.rule, "network.deny[0]");
            assert!(hint.contains("remove the matching entry"), "{hint}");
        }
        other => panic!("{other:?}"),
    }
    // Allowed by name (a policy that allows every name), refused for its address.
    struct All;
    impl HostPolicy for All {
        fn decide(&self, _: &str, _: u16) -> HostDecision {
            HostDecision::allow("network.allow[0]", "all")
        }
        fn pinned(&self, host: &str) -> Option<IpAddr> {
            P.pinned(host)
        }
        fn private_allowed(&self, addr: IpAddr) -> bool {
            P.private_allowed(addr)
        }
    }
    match preview(&All, &t("pinned.test", 443)) {
        Preview::Refused { decision, refusal } => {
            assert_eq!((decision.rule.as_str(), refusal.rule), ("network.allow[0]", RULE_PRIVATE));
            assert_eq!(refusal.class, AddrClass::LinkLocal);
            assert_eq!(refusal.address, "169.254.169.254:443".parse().unwrap());
            assert!(refusal.hint.contains("\"169.254.169.254/32\" to [network] allow_private"), "{}", refusal.hint);
        }
        other => panic!("{other:?}"),
    }
    // An address no connection can reach: allowing it is never the hint.
    match preview(&All, &t("0.0.0.0", 443)) {
        Preview::Refused { refusal, .. } => {
            assert_eq!(refusal.class, AddrClass::Unspecified);
            assert!(
                !refusal.hint.contains("allow_private") && refusal.hint.contains("pin the name"),
                "{}",
                refusal.hint
            );
        }
        other => panic!("{other:?}"),
    }
    // A mapped pin covered by allow_private, and a public literal: the addresses dialled.
    match preview(&All, &t("mapped.test", 80)) {
        Preview::Allowed { addresses, .. } => assert_eq!(addresses, ["127.0.0.1:80".parse().unwrap()]),
        other => panic!("{other:?}"),
    }
    match preview(&All, &t("8.8.8.8", 53)) {
        Preview::Allowed { addresses, .. } => assert_eq!(addresses, ["8.8.8.8:53".parse().unwrap()]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mapped_addresses_are_canonicalised() {
    let g = gate();
    let addrs = g.resolve(&t("mapped.test", 1), Instant::now() + Duration::from_secs(1)).await.ok().unwrap();
    assert_eq!(addrs, vec![IpAddr::from([127, 0, 0, 1])]);
    assert!(g.vet("CONNECT", &t("mapped.test", 1), &addrs).is_ok());
}
