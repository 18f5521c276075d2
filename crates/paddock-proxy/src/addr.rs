//! Address classifier: which destination addresses count as "public".
//!
//! This is the SSRF guard's ground truth. The gate classifies every address a
//! host resolves to (a pin, a DNS answer or an IP literal) and refuses anything
//! that is not [`AddrClass::Public`] unless the policy's `allow_private` covers
//! it. The classifier is pure: it never dials, resolves or reads the clock.
//!
//! IPv6 forms that embed an IPv4 address (IPv4-mapped, IPv4-compatible,
//! IPv4-translated, NAT64, 6to4, Teredo) are unwrapped and the embedded address
//! is classified too: `::ffff:127.0.0.1`, `64:ff9b::7f00:1`, `2002:7f00:1::` and
//! the Teredo address of `127.0.0.1` are all [`AddrClass::Loopback`].
//!
//! The IPv6 rule is an allowlist: only global unicast (`2000::/3`) outside the
//! special-purpose blocks is public; everything else unassigned is
//! [`AddrClass::Reserved`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// What kind of destination an address is.
///
/// Only [`AddrClass::Public`] may be dialled without an `allow_private` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrClass {
    /// Globally routable unicast.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), IPv6 unique-local `fc00::/7`,
    /// deprecated site-local `fec0::/10` and the NAT64 local-use prefix `64:ff9b:1::/48`.
    Private,
    /// Carrier-grade NAT shared space `100.64.0.0/10`.
    Cgnat,
    /// `169.254.0.0/16` (cloud metadata `169.254.169.254` included), `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8` ("this network"), `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// Documentation ranges: `192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
    /// `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// Everything else that is not routable on the internet: `240.0.0.0/4`,
    /// `192.0.0.0/24`, `198.18.0.0/15` (benchmarking), `192.88.99.0/24`,
    /// IPv6 discard `100::/64`, IETF `2001::/23` outside Teredo, SRv6 `5f00::/16`,
    /// and all IPv6 outside `2000::/3`.
    Reserved,
}

impl AddrClass {
    /// True for [`AddrClass::Public`].
    pub fn is_public(self) -> bool {
        self == AddrClass::Public
    }

    /// The indefinite article of [`AddrClass::as_str`]: "an unspecified", "a private".
    pub fn article(self) -> &'static str {
        if self == AddrClass::Unspecified {
            "an"
        } else {
            "a"
        }
    }

    /// True for the classes no connection can usefully reach (`0.0.0.0`, broadcast,
    /// multicast): allowing one in `allow_private` is never the fix.
    pub fn is_unreachable(self) -> bool {
        matches!(self, AddrClass::Unspecified | AddrClass::Broadcast | AddrClass::Multicast)
    }

    /// A short lowercase name, as used in refusal messages and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrClass::Public => "public",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::Cgnat => "cgnat",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Multicast => "multicast",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Broadcast => "broadcast",
            AddrClass::Documentation => "documentation",
            AddrClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 special-purpose blocks, most specific first where they nest.
const V4_TABLE: &[(Ipv4Net, AddrClass)] = &[
    (v4(255, 255, 255, 255, 32), AddrClass::Broadcast),
    (v4(0, 0, 0, 0, 8), AddrClass::Unspecified),
    (v4(10, 0, 0, 0, 8), AddrClass::Private),
    (v4(100, 64, 0, 0, 10), AddrClass::Cgnat),
    (v4(127, 0, 0, 0, 8), AddrClass::Loopback),
    (v4(169, 254, 0, 0, 16), AddrClass::LinkLocal),
    (v4(172, 16, 0, 0, 12), AddrClass::Private),
    (v4(192, 0, 0, 0, 24), AddrClass::Reserved),
    (v4(192, 0, 2, 0, 24), AddrClass::Documentation),
    (v4(192, 88, 99, 0, 24), AddrClass::Reserved),
    (v4(192, 168, 0, 0, 16), AddrClass::Private),
    (v4(198, 18, 0, 0, 15), AddrClass::Reserved),
    (v4(198, 51, 100, 0, 24), AddrClass::Documentation),
    (v4(203, 0, 113, 0, 24), AddrClass::Documentation),
    (v4(224, 0, 0, 0, 4), AddrClass::Multicast),
    (v4(240, 0, 0, 0, 4), AddrClass::Reserved),
];

/// IPv6 blocks that carry no embedded IPv4 address.
const V6_TABLE: &[(Ipv6Net, AddrClass)] = &[
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), AddrClass::Reserved),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), AddrClass::Documentation),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), AddrClass::Documentation),
    (v6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16), AddrClass::Reserved),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), AddrClass::Private),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), AddrClass::LinkLocal),
    (v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10), AddrClass::Private),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), AddrClass::Multicast),
];

const NAT64_WKP: Ipv6Net = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);
const NAT64_LOCAL: Ipv6Net = v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48);
const SIX_TO_FOUR: Ipv6Net = v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16);
const TEREDO: Ipv6Net = v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32);
const IETF_2001: Ipv6Net = v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23);
const GLOBAL_UNICAST: Ipv6Net = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);

/// Classifies one address.
///
/// ```
/// use paddock_proxy::{classify, AddrClass};
/// assert_eq!(classify("169.254.169.254".parse().unwrap()), AddrClass::LinkLocal);
/// assert_eq!(classify("::ffff:127.0.0.1".parse().unwrap()), AddrClass::Loopback);
/// assert_eq!(classify("64:ff9b::808:808".parse().unwrap()), AddrClass::Public);
/// ```
pub fn classify(addr: IpAddr) -> AddrClass {
    match addr {
        IpAddr::V4(a) => classify_v4(a),
        IpAddr::V6(a) => classify_v6(a),
    }
}

/// Classifies an IPv4 address.
pub fn classify_v4(addr: Ipv4Addr) -> AddrClass {
    V4_TABLE.iter().find(|(net, _)| net.contains(&addr)).map(|&(_, class)| class).unwrap_or(AddrClass::Public)
}

/// The IPv4 addresses an IPv6 address embeds, if it is one of the embedding
/// forms (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4, Teredo
/// server and client).
pub fn embedded_ipv4(addr: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = addr.segments();
    let bits = u128::from(addr);
    let last32 = Ipv4Addr::from(bits as u32);
    let mut out = Vec::new();
    // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated; excludes :: and ::1),
    // ::ffff:0:a.b.c.d (SIIT translated).
    let mapped = s[..5] == [0; 5] && s[5] == 0xffff;
    let compatible = s[..6] == [0; 6] && bits > 1;
    let translated = s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0;
    if mapped || compatible || translated || NAT64_WKP.contains(&addr) || NAT64_LOCAL.contains(&addr) {
        out.push(last32);
    }
    if SIX_TO_FOUR.contains(&addr) {
        out.push(Ipv4Addr::from((bits >> 80) as u32));
    }
    if TEREDO.contains(&addr) {
        // Teredo: 2001:0:SERVER:flags:port:CLIENT, client obfuscated by XOR.
        out.push(Ipv4Addr::from((bits >> 64) as u32));
        out.push(Ipv4Addr::from(!(bits as u32)));
    }
    out
}

/// Classifies an IPv6 address, unwrapping embedded IPv4 addresses.
pub fn classify_v6(addr: Ipv6Addr) -> AddrClass {
    if addr.is_unspecified() {
        return AddrClass::Unspecified;
    }
    if addr.is_loopback() {
        return AddrClass::Loopback;
    }
    let embedded = embedded_ipv4(addr);
    if let Some(class) = embedded.iter().map(|&a| classify_v4(a)).find(|c| !c.is_public()) {
        return class;
    }
    if !embedded.is_empty() {
        // The wrapper decides when every embedded address is public.
        let s = addr.segments();
        let is_v4_wrapper = s[..4] == [0; 4];
        return if NAT64_LOCAL.contains(&addr) {
            AddrClass::Private
        } else if is_v4_wrapper && !(s[..5] == [0; 5] && s[5] == 0xffff) {
            // IPv4-compatible and SIIT-translated forms are deprecated/not routable.
            AddrClass::Reserved
        } else {
            AddrClass::Public
        };
    }
    if let Some(&(_, class)) = V6_TABLE.iter().find(|(net, _)| net.contains(&addr)) {
        return class;
    }
    if IETF_2001.contains(&addr) {
        return AddrClass::Reserved;
    }
    if GLOBAL_UNICAST.contains(&addr) {
        AddrClass::Public
    } else {
        AddrClass::Reserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> AddrClass {
        classify(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn ipv4_classes_and_edges() {
        let cases = [
            ("8.8.8.8", AddrClass::Public),
            ("1.1.1.1", AddrClass::Public),
            ("0.0.0.0", AddrClass::Unspecified),
            ("0.255.255.255", AddrClass::Unspecified),
            ("1.0.0.0", AddrClass::Public),
            ("9.255.255.255", AddrClass::Public),
            ("10.0.0.0", AddrClass::Private),
            ("10.255.255.255", AddrClass::Private),
            ("11.0.0.0", AddrClass::Public),
            ("100.63.255.255", AddrClass::Public),
            ("100.64.0.0", AddrClass::Cgnat),
            ("100.127.255.255", AddrClass::Cgnat),
            ("100.128.0.0", AddrClass::Public),
            ("126.255.255.255", AddrClass::Public),
            ("127.0.0.1", AddrClass::Loopback),
            ("127.255.255.254", AddrClass::Loopback),
            ("128.0.0.0", AddrClass::Public),
            ("169.253.255.255", AddrClass::Public),
            ("169.254.0.0", AddrClass::LinkLocal),
            ("169.254.169.254", AddrClass::LinkLocal),
            ("169.255.0.0", AddrClass::Public),
            ("172.15.255.255", AddrClass::Public),
            ("172.16.0.0", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("172.32.0.0", AddrClass::Public),
            ("192.0.0.1", AddrClass::Reserved),
            ("192.0.2.1", AddrClass::Documentation),
            ("192.88.99.1", AddrClass::Reserved),
            ("192.167.255.255", AddrClass::Public),
            ("192.168.0.0", AddrClass::Private),
            ("192.168.255.255", AddrClass::Private),
            ("192.169.0.0", AddrClass::Public),
            ("198.17.255.255", AddrClass::Public),
            ("198.18.0.0", AddrClass::Reserved),
            ("198.19.255.255", AddrClass::Reserved),
            ("198.20.0.0", AddrClass::Public),
            ("198.51.100.7", AddrClass::Documentation),
            ("203.0.113.9", AddrClass::Documentation),
            ("223.255.255.255", AddrClass::Public),
            ("224.0.0.0", AddrClass::Multicast),
            ("239.255.255.255", AddrClass::Multicast),
            ("240.0.0.0", AddrClass::Reserved),
            ("255.255.255.254", AddrClass::Reserved),
            ("255.255.255.255", AddrClass::Broadcast),
        ];
        for (a, want) in cases {
            assert_eq!(c(a), want, "{a}");
        }
    }

    #[test]
    fn ipv6_plain_classes() {
        let cases = [
            ("::", AddrClass::Unspecified),
            ("::1", AddrClass::Loopback),
            ("fc00::1", AddrClass::Private),
            ("fd12:3456::1", AddrClass::Private),
            ("fbff:ffff::1", AddrClass::Reserved),
            ("fe80::1", AddrClass::LinkLocal),
            ("febf:ffff::1", AddrClass::LinkLocal),
            ("fec0::1", AddrClass::Private),
            ("ff02::1", AddrClass::Multicast),
            ("ff0e::101", AddrClass::Multicast),
            ("2001:db8::1", AddrClass::Documentation),
            ("3fff::1", AddrClass::Documentation),
            ("100::1", AddrClass::Reserved),
            ("2001:2::1", AddrClass::Reserved),
            ("5f00::1", AddrClass::Reserved),
            ("4000::1", AddrClass::Reserved),
            ("::2:0:0:1", AddrClass::Reserved),
            ("2606:4700:4700::1111", AddrClass::Public),
            ("2a00:1450:4001::200e", AddrClass::Public),
        ];
        for (a, want) in cases {
            assert_eq!(c(a), want, "{a}");
        }
    }

    #[test]
    fn ipv6_embedding_ipv4() {
        let cases = [
            // IPv4-mapped
            ("::ffff:127.0.0.1", AddrClass::Loopback),
            ("::ffff:169.254.169.254", AddrClass::LinkLocal),
            ("::ffff:10.1.2.3", AddrClass::Private),
            ("::ffff:100.64.0.1", AddrClass::Cgnat),
            ("::ffff:0.0.0.0", AddrClass::Unspecified),
            ("::ffff:8.8.8.8", AddrClass::Public),
            // IPv4-compatible (deprecated)
            ("::127.0.0.1", AddrClass::Loopback),
            ("::169.254.169.254", AddrClass::LinkLocal),
            ("::8.8.8.8", AddrClass::Reserved),
            // IPv4-translated (SIIT)
            ("::ffff:0:127.0.0.1", AddrClass::Loopback),
            // NAT64 well-known prefix
            ("64:ff9b::7f00:1", AddrClass::Loopback),
            ("64:ff9b::a9fe:a9fe", AddrClass::LinkLocal),
            ("64:ff9b::808:808", AddrClass::Public),
            // NAT64 local-use prefix: never public
            ("64:ff9b:1::7f00:1", AddrClass::Loopback),
            ("64:ff9b:1::808:808", AddrClass::Private),
            // 6to4
            ("2002:7f00:1::", AddrClass::Loopback),
            ("2002:a9fe:a9fe::1", AddrClass::LinkLocal),
            ("2002:c0a8:101::1", AddrClass::Private),
            ("2002:0808:0808::", AddrClass::Public),
            // Teredo: server 65.54.227.120, client 127.0.0.1 (XOR 0xffffffff = 80ff:fffe)
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", AddrClass::Loopback),
            // Teredo: public server, public client 8.8.8.8 (f7f7:f7f7)
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", AddrClass::Public),
            // Teredo: server in 10/8
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", AddrClass::Private),
            // Teredo: client 169.254.169.254 (5601:5601)
            ("2001:0:4136:e378:8000:63bf:5601:5601", AddrClass::LinkLocal),
        ];
        for (a, want) in cases {
            assert_eq!(c(a), want, "{a}");
        }
    }

    #[test]
    fn teredo_embedded_client_is_xored() {
        let a: Ipv6Addr = "2001:0:4136:e378:8000:63bf:80ff:fffe".parse().unwrap();
        let e = embedded_ipv4(a);
        assert_eq!(e, vec![Ipv4Addr::new(65, 54, 227, 120), Ipv4Addr::new(127, 0, 0, 1)]);
    }

    #[test]
    fn only_public_is_public() {
        assert!(AddrClass::Public.is_public());
        for c in [
            AddrClass::Loopback,
            AddrClass::Private,
            AddrClass::Cgnat,
            AddrClass::LinkLocal,
            AddrClass::Multicast,
            AddrClass::Unspecified,
            AddrClass::Broadcast,
            AddrClass::Documentation,
            AddrClass::Reserved,
        ] {
            assert!(!c.is_public(), "{c}");
        }
    }
}
