//! Peer address policy: which XOR-PEER-ADDRESS values a client may open a permission or a
//! channel to.
//!
//! A TURN relay is an SSRF primitive (turn-anchors §3.1): whatever the relay host can reach,
//! an authenticated client can reach. coturn's history (CVE-2020-26262, CVE-2026-27624,
//! CVE-2026-73212) shows the two mistakes to avoid: judging an IPv6 address without first
//! reducing the IPv4 address embedded in it, and an open default. The order here is:
//!
//! 1. **Canonicalise.** An IPv6 address that carries an IPv4 address (v4-mapped
//!    `::ffff:a.b.c.d`, v4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and
//!    `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo `2001::/32`) is judged by that IPv4 address
//!    *and* by its own IPv6 class.
//! 2. **Hard deny, no override:** `0.0.0.0/8` and `::` (Linux routes them to the host itself).
//! 3. **Loopback** (`127/8`, `::1`, and their embedded forms) is denied unless
//!    `allow-loopback-peers`. As in coturn (`good_peer_addr` step 2) an `allowed-peer-ip`
//!    range does *not* open loopback: the operator must say `allow-loopback-peers`.
//! 4. **`allowed-peer-ip`** ranges allow (coturn: "allowed beats denied"). Unlike coturn an
//!    all-zero bound in an *allowed* range is literal, not "unbounded", so a stray
//!    `allowed-peer-ip=0.0.0.0` opens nothing.
//! 5. **Default deny** (overridable by step 4): private, CGNAT, link-local, multicast,
//!    reserved, documentation, benchmarking, ULA, site-local, discard-only, the server's own
//!    addresses — the eturnal "recommended" list plus coturn's built-ins (turn-anchors §3.5).
//! 6. **`denied-peer-ip`** ranges deny. An all-zero bound is unbounded on that side, in any
//!    family (coturn `ioa_addr_in_range`), so `denied-peer-ip=::0` denies everything.
//! 7. Otherwise allow.
//!
//! Range matching follows coturn: an IPv4 range matches an IPv6 peer through its embedded
//! IPv4 address; an IPv6 range never matches an IPv4 peer (so Synapse's
//! `::ffff:0.0.0.0-::ffff:255.255.255.255` entry does not block native IPv4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

/// Which rule refused a peer, for logs and metrics.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyClass {
    /// `0.0.0.0/8`, `::` — never openable (CVE-2020-26262).
    Unspecified,
    /// `127/8`, `::1` without `allow-loopback-peers`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// RFC 6598 shared address space (carrier-grade NAT) `100.64/10`.
    SharedAddress,
    /// `169.254/16`, `fe80::/10` (cloud metadata services live here).
    LinkLocal,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `240/4`, including the limited broadcast address.
    Reserved,
    /// `192.0.0.0/24` IETF protocol assignments.
    ProtocolAssignment,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`.
    Documentation,
    /// `198.18/15`.
    Benchmarking,
    /// `192.88.99/24`, the deprecated 6to4 relay anycast prefix.
    SixToFourRelayAnycast,
    /// `fc00::/7`.
    UniqueLocal,
    /// `fec0::/10`.
    SiteLocal,
    /// `100::/64` discard-only prefix.
    DiscardOnly,
    /// One of the server's own addresses (listening or relay).
    OwnAddress,
    /// A `denied-peer-ip` range.
    Configured,
    /// A port outside `allowed-peer-port`.
    Port,
    /// IPv4-mapped peer on an IPv6 relay: the real destination family is IPv4 (the server
    /// reports this as 443, RFC 6156 §6).
    MappedOnIpv6Relay,
}

impl DenyClass {
    /// A stable lower-case name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            DenyClass::Unspecified => "unspecified",
            DenyClass::Loopback => "loopback",
            DenyClass::Private => "private",
            DenyClass::SharedAddress => "shared_address",
            DenyClass::LinkLocal => "link_local",
            DenyClass::Multicast => "multicast",
            DenyClass::Reserved => "reserved",
            DenyClass::ProtocolAssignment => "protocol_assignment",
            DenyClass::Documentation => "documentation",
            DenyClass::Benchmarking => "benchmarking",
            DenyClass::SixToFourRelayAnycast => "6to4_relay_anycast",
            DenyClass::UniqueLocal => "unique_local",
            DenyClass::SiteLocal => "site_local",
            DenyClass::DiscardOnly => "discard_only",
            DenyClass::OwnAddress => "own_address",
            DenyClass::Configured => "configured",
            DenyClass::Port => "port",
            DenyClass::MappedOnIpv6Relay => "mapped_on_ipv6_relay",
        }
    }
}

impl std::fmt::Display for DenyClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Plain configuration, converted from coturn's options by the binary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `allowed-peer-ip` inclusive ranges (a single IP is `(ip, ip)`).
    pub allowed: Vec<(IpAddr, IpAddr)>,
    /// `denied-peer-ip` inclusive ranges; an all-zero bound is unbounded.
    pub denied: Vec<(IpAddr, IpAddr)>,
    /// `allow-loopback-peers`.
    pub allow_loopback: bool,
    /// `no-multicast-peers`: accepted for compatibility; multicast is denied by default anyway.
    pub no_multicast: bool,
    /// The server's own listening and relay addresses.
    pub own_addrs: Vec<IpAddr>,
    /// `allowed-peer-port`: when not empty, peers on other ports are refused whatever
    /// their address (an embedded relay that exists only to reach its SFU's media port).
    pub peer_ports: Vec<u16>,
}

/// The compiled policy. Checks are linear over the configured ranges; they run on
/// CreatePermission and ChannelBind only, never per packet.
#[derive(Clone, Debug)]
pub struct PeerPolicy {
    allowed: Vec<(IpAddr, IpAddr)>,
    denied: Vec<(IpAddr, IpAddr)>,
    allow_loopback: bool,
    own_addrs: Vec<IpAddr>,
    peer_ports: Vec<u16>,
    relay_ports: Option<RangeInclusive<u16>>,
}

impl Default for PeerPolicy {
    fn default() -> Self {
        PeerPolicy::new(PolicyConfig::default())
    }
}

/// The IPv4 address an IPv6 address carries, if any (RFC 4291 §2.5.5, RFC 6052, RFC 8215,
/// RFC 3056, RFC 4380). `::` and `::1` are not v4-compatible addresses.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let v = u128::from(ip);
    let low32 = v as u32;
    let seg = ip.segments();
    // ::ffff:0:0/96 (mapped)
    if v >> 32 == 0xffff {
        return Some(Ipv4Addr::from(low32));
    }
    // ::/96 (compatible), except :: and ::1
    if v >> 32 == 0 {
        return if v <= 1 {
            None
        } else {
            Some(Ipv4Addr::from(low32))
        };
    }
    // 64:ff9b::/96 (RFC 6052 well-known NAT64 prefix)
    if v >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(Ipv4Addr::from(low32));
    }
    // 64:ff9b:1::/48 (RFC 8215 local-use NAT64); we read the low 32 bits (the /96 layout).
    if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001 {
        return Some(Ipv4Addr::from(low32));
    }
    // 2002::/16 6to4: bits 16..48 carry the IPv4 address.
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::from((v >> 80) as u32));
    }
    // 2001::/32 Teredo: the client's IPv4 address is the bitwise NOT of the low 32 bits.
    if seg[0] == 0x2001 && seg[1] == 0x0000 {
        return Some(Ipv4Addr::from(!low32));
    }
    None
}

/// The IPv4 address an address stands for: itself, or the one embedded in an IPv6 address.
fn canonical_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => embedded_ipv4(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn in_v6(ip: Ipv6Addr, net: u128, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (net & mask)
}

/// Built-in IPv4 classes that are denied unless an `allowed-peer-ip` covers them.
fn v4_default_class(ip: Ipv4Addr) -> Option<DenyClass> {
    const TABLE: &[([u8; 4], u32, DenyClass)] = &[
        ([10, 0, 0, 0], 8, DenyClass::Private),
        ([172, 16, 0, 0], 12, DenyClass::Private),
        ([192, 168, 0, 0], 16, DenyClass::Private),
        ([100, 64, 0, 0], 10, DenyClass::SharedAddress),
        ([169, 254, 0, 0], 16, DenyClass::LinkLocal),
        ([224, 0, 0, 0], 4, DenyClass::Multicast),
        ([240, 0, 0, 0], 4, DenyClass::Reserved),
        ([192, 0, 0, 0], 24, DenyClass::ProtocolAssignment),
        ([192, 0, 2, 0], 24, DenyClass::Documentation),
        ([198, 51, 100, 0], 24, DenyClass::Documentation),
        ([203, 0, 113, 0], 24, DenyClass::Documentation),
        ([198, 18, 0, 0], 15, DenyClass::Benchmarking),
        ([192, 88, 99, 0], 24, DenyClass::SixToFourRelayAnycast),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, class)| *class)
}

/// Built-in IPv6 classes of the address itself (not of an embedded IPv4 address).
fn v6_default_class(ip: Ipv6Addr) -> Option<DenyClass> {
    const TABLE: &[(u128, u32, DenyClass)] = &[
        (0xfe80 << 112, 10, DenyClass::LinkLocal),
        (0xff00 << 112, 8, DenyClass::Multicast),
        (0xfc00 << 112, 7, DenyClass::UniqueLocal),
        (0xfec0 << 112, 10, DenyClass::SiteLocal),
        (0x2001_0db8 << 96, 32, DenyClass::Documentation),
        (0x0100 << 112, 64, DenyClass::DiscardOnly),
    ];
    TABLE
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, class)| *class)
}

fn is_zero(ip: IpAddr) -> bool {
    ip.is_unspecified()
}

fn ge(a: IpAddr, b: IpAddr) -> bool {
    // a >= b, i.e. b <= a with `b` the range bound.
    match (b, a) {
        (IpAddr::V4(b), IpAddr::V4(a)) => a >= b,
        (IpAddr::V6(b), IpAddr::V6(a)) => u128::from(a) >= u128::from(b),
        (IpAddr::V4(b), IpAddr::V6(a)) => embedded_ipv4(a).is_some_and(|a| a >= b),
        (IpAddr::V6(_), IpAddr::V4(_)) => false,
    }
}

/// coturn `ioa_addr_in_range`, with an all-zero bound meaning unbounded when `zero_unbounded`.
fn range_contains(range: &(IpAddr, IpAddr), ip: IpAddr, zero_unbounded: bool) -> bool {
    let (first, last) = *range;
    let low_ok = (zero_unbounded && is_zero(first)) || ge(ip, first);
    let high_ok = (zero_unbounded && is_zero(last)) || le_peer(ip, last);
    low_ok && high_ok
}

/// `ip <= bound`, reducing an IPv6 peer to its embedded IPv4 when the bound is IPv4.
fn le_peer(ip: IpAddr, bound: IpAddr) -> bool {
    match (ip, bound) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) <= u128::from(b),
        (IpAddr::V6(a), IpAddr::V4(b)) => embedded_ipv4(a).is_some_and(|a| a <= b),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

impl PeerPolicy {
    pub fn new(config: PolicyConfig) -> Self {
        let _ = config.no_multicast; // multicast is denied by default; the flag changes nothing
        PeerPolicy {
            allowed: config.allowed,
            denied: config.denied,
            allow_loopback: config.allow_loopback,
            own_addrs: config.own_addrs,
            peer_ports: config.peer_ports,
            relay_ports: None,
        }
    }

    /// Ports of the server's relay range (all workers). A peer on one of the server's own
    /// addresses *and* in this range is another allocation's relayed address, and
    /// relay-to-relay is how two TURN-only clients talk (ICE relay/relay pairs), so
    /// [`PeerPolicy::check_socket`] lets it through while still refusing the server's
    /// listening, metrics and admin ports.
    pub fn set_relay_ports(&mut self, ports: RangeInclusive<u16>) {
        self.relay_ports = Some(ports);
    }

    pub fn relay_ports(&self) -> Option<&RangeInclusive<u16>> {
        self.relay_ports.as_ref()
    }

    /// Judge a peer IP address (no port information; own addresses are always denied).
    pub fn check(&self, peer: IpAddr) -> Result<(), DenyClass> {
        self.check_inner(peer, None)
    }

    /// Judge a peer transport address; see [`PeerPolicy::set_relay_ports`].
    pub fn check_socket(&self, peer: SocketAddr) -> Result<(), DenyClass> {
        self.check_inner(peer.ip(), Some(peer.port()))
    }

    fn is_own(&self, peer: IpAddr) -> bool {
        let peer_v4 = canonical_v4(peer);
        self.own_addrs.iter().any(|own| {
            *own == peer
                || match (canonical_v4(*own), peer_v4) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                }
        })
    }

    fn check_inner(&self, peer: IpAddr, port: Option<u16>) -> Result<(), DenyClass> {
        // Step 1: a port allow list, when there is one, comes before any address rule.
        if !self.peer_ports.is_empty() && port.is_none_or(|p| !self.peer_ports.contains(&p)) {
            return Err(DenyClass::Port);
        }
        let v4 = canonical_v4(peer);
        // Step 2: hard deny.
        if peer.is_unspecified() || v4.is_some_and(|v4| v4.octets()[0] == 0) {
            return Err(DenyClass::Unspecified);
        }
        // Step 3: loopback, only `allow-loopback-peers` opens it.
        let loopback =
            peer == IpAddr::V6(Ipv6Addr::LOCALHOST) || v4.is_some_and(|v4| v4.is_loopback());
        if loopback && !self.allow_loopback {
            return Err(DenyClass::Loopback);
        }
        // Step 4: allowed-peer-ip beats everything below.
        if self.allowed.iter().any(|r| range_contains(r, peer, false)) {
            return Ok(());
        }
        // Step 5: built-in default deny. The IPv6 class first, then the embedded IPv4 one.
        if let IpAddr::V6(v6) = peer
            && let Some(class) = v6_default_class(v6)
        {
            return Err(class);
        }
        if let Some(class) = v4.and_then(v4_default_class) {
            return Err(class);
        }
        // Own addresses; loopback ones are opened by `allow-loopback-peers` (a local test
        // setup), relay ports by `set_relay_ports` (relay-to-relay).
        if !loopback && self.is_own(peer) {
            let relay_port = match (port, &self.relay_ports) {
                (Some(p), Some(r)) => r.contains(&p),
                _ => false,
            };
            if !relay_port {
                return Err(DenyClass::OwnAddress);
            }
        }
        // Step 6: denied-peer-ip.
        if self.denied.iter().any(|r| range_contains(r, peer, true)) {
            return Err(DenyClass::Configured);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn deny(p: &PeerPolicy, s: &str) -> Option<DenyClass> {
        p.check(ip(s)).err()
    }

    #[test]
    fn embedded_forms() {
        let cases = [
            ("::ffff:127.0.0.1", Some("127.0.0.1")),
            ("::10.1.2.3", Some("10.1.2.3")),
            ("::", None),
            ("::1", None),
            ("64:ff9b::a01:203", Some("10.1.2.3")),
            ("64:ff9b:1::a01:203", Some("10.1.2.3")),
            ("2002:a01:203::1", Some("10.1.2.3")),
            // Teredo: client IPv4 10.1.2.3 is stored inverted: f5fe:fdfc.
            ("2001:0:4136:e378:8000:63bf:f5fe:fdfc", Some("10.1.2.3")),
            ("2001:db8::1", None),
            ("2a00:1450::1", None),
        ];
        for (v6, want) in cases {
            let got = embedded_ipv4(v6.parse().unwrap());
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{v6}");
        }
    }

    #[test]
    fn defaults() {
        let p = PeerPolicy::default();
        let table = [
            ("0.0.0.0", Some(DenyClass::Unspecified)),
            ("0.1.2.3", Some(DenyClass::Unspecified)),
            ("::", Some(DenyClass::Unspecified)),
            ("::ffff:0.0.0.0", Some(DenyClass::Unspecified)),
            ("127.0.0.1", Some(DenyClass::Loopback)),
            ("::1", Some(DenyClass::Loopback)),
            ("::ffff:127.0.0.1", Some(DenyClass::Loopback)),
            ("::127.0.0.1", Some(DenyClass::Loopback)),
            ("64:ff9b::7f00:1", Some(DenyClass::Loopback)),
            ("2002:7f00:1::1", Some(DenyClass::Loopback)),
            ("10.1.2.3", Some(DenyClass::Private)),
            ("172.31.255.255", Some(DenyClass::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(DenyClass::Private)),
            ("100.64.0.1", Some(DenyClass::SharedAddress)),
            ("100.128.0.1", None),
            ("169.254.169.254", Some(DenyClass::LinkLocal)),
            ("::ffff:169.254.169.254", Some(DenyClass::LinkLocal)),
            ("fe80::1", Some(DenyClass::LinkLocal)),
            ("224.0.0.1", Some(DenyClass::Multicast)),
            ("ff02::1", Some(DenyClass::Multicast)),
            ("240.0.0.1", Some(DenyClass::Reserved)),
            ("255.255.255.255", Some(DenyClass::Reserved)),
            ("192.0.0.8", Some(DenyClass::ProtocolAssignment)),
            ("192.0.2.1", Some(DenyClass::Documentation)),
            ("198.51.100.1", Some(DenyClass::Documentation)),
            ("203.0.113.1", Some(DenyClass::Documentation)),
            ("2001:db8::1", Some(DenyClass::Documentation)),
            ("198.19.0.1", Some(DenyClass::Benchmarking)),
            ("192.88.99.1", Some(DenyClass::SixToFourRelayAnycast)),
            ("fd00::1", Some(DenyClass::UniqueLocal)),
            ("fec0::1", Some(DenyClass::SiteLocal)),
            ("100::1", Some(DenyClass::DiscardOnly)),
            (
                "2001:0:4136:e378:8000:63bf:f5fe:fdfc",
                Some(DenyClass::Private),
            ),
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", None), // Teredo of 8.8.8.8
            ("2002:808:808::1", None),                      // 6to4 of 8.8.8.8
            ("8.8.8.8", None),
            ("2a00:1450:4001::1", None),
        ];
        for (addr, want) in table {
            assert_eq!(deny(&p, addr), want, "{addr}");
        }
    }

    #[test]
    fn allowed_beats_denied_but_not_hard_denies() {
        let p = PeerPolicy::new(PolicyConfig {
            allowed: vec![
                (ip("10.0.0.0"), ip("10.255.255.255")),
                (ip("0.0.0.0"), ip("0.0.0.0")),
                (ip("::"), ip("::")),
                (ip("127.0.0.1"), ip("127.0.0.1")),
            ],
            denied: vec![(ip("10.0.0.0"), ip("10.255.255.255"))],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&p, "10.1.2.3"), None);
        assert_eq!(deny(&p, "::ffff:10.1.2.3"), None);
        assert_eq!(deny(&p, "0.0.0.0"), Some(DenyClass::Unspecified));
        assert_eq!(deny(&p, "::"), Some(DenyClass::Unspecified));
        assert_eq!(deny(&p, "127.0.0.1"), Some(DenyClass::Loopback));
        // A literal all-zero allowed range does not open the world.
        assert_eq!(deny(&p, "192.168.0.1"), Some(DenyClass::Private));
    }

    #[test]
    fn loopback_flag() {
        let p = PeerPolicy::new(PolicyConfig {
            allow_loopback: true,
            own_addrs: vec![ip("127.0.0.1")],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&p, "127.0.0.1"), None);
        assert_eq!(deny(&p, "::1"), None);
        assert_eq!(deny(&p, "::ffff:127.0.0.2"), None);
        assert_eq!(deny(&p, "0.0.0.0"), Some(DenyClass::Unspecified));
    }

    #[test]
    fn denied_ranges_zero_unbounded_and_family() {
        let all = PeerPolicy::new(PolicyConfig {
            denied: vec![(ip("::"), ip("::"))],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&all, "8.8.8.8"), Some(DenyClass::Configured));
        assert_eq!(deny(&all, "2a00::1"), Some(DenyClass::Configured));

        // Synapse's v4-mapped entry must not block native IPv4.
        let mapped = PeerPolicy::new(PolicyConfig {
            denied: vec![(ip("::ffff:0.0.0.0"), ip("::ffff:255.255.255.255"))],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&mapped, "8.8.8.8"), None);
        assert_eq!(deny(&mapped, "::ffff:8.8.8.8"), Some(DenyClass::Configured));

        // An IPv4 range matches the IPv4 embedded in an IPv6 peer.
        let v4 = PeerPolicy::new(PolicyConfig {
            denied: vec![(ip("8.8.0.0"), ip("8.8.255.255"))],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&v4, "8.8.8.8"), Some(DenyClass::Configured));
        assert_eq!(deny(&v4, "64:ff9b::808:808"), Some(DenyClass::Configured));
        assert_eq!(deny(&v4, "2002:808:808::1"), Some(DenyClass::Configured));
        assert_eq!(deny(&v4, "8.9.0.0"), None);

        // Non-prefix-aligned IPv6 ranges compare as 128-bit integers (CVE-2026-73213).
        let v6 = PeerPolicy::new(PolicyConfig {
            denied: vec![(ip("2a00::ff00"), ip("2a00::1:00ff"))],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&v6, "2a00::ffff"), Some(DenyClass::Configured));
        assert_eq!(deny(&v6, "2a00::1:0000"), Some(DenyClass::Configured));
        assert_eq!(deny(&v6, "2a00::1:0100"), None);
    }

    #[test]
    fn own_addresses() {
        let mut p = PeerPolicy::new(PolicyConfig {
            own_addrs: vec![ip("8.8.4.4")],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&p, "8.8.4.4"), Some(DenyClass::OwnAddress));
        assert_eq!(deny(&p, "::ffff:8.8.4.4"), Some(DenyClass::OwnAddress));
        p.set_relay_ports(49152..=65535);
        assert_eq!(
            p.check_socket("8.8.4.4:3478".parse().unwrap()),
            Err(DenyClass::OwnAddress)
        );
        assert_eq!(p.check_socket("8.8.4.4:50000".parse().unwrap()), Ok(()));
        let opened = PeerPolicy::new(PolicyConfig {
            own_addrs: vec![ip("8.8.4.4")],
            allowed: vec![(ip("8.8.4.4"), ip("8.8.4.4"))],
            ..PolicyConfig::default()
        });
        assert_eq!(deny(&opened, "8.8.4.4"), None);
    }

    /// An embedded relay that may only reach its SFU's media port: the port list comes
    /// before every address rule, even an explicitly allowed address.
    #[test]
    fn peer_port_allow_list() {
        let p = PeerPolicy::new(PolicyConfig {
            allowed: vec![(ip("203.0.113.7"), ip("203.0.113.7"))],
            peer_ports: vec![7882],
            ..PolicyConfig::default()
        });
        assert_eq!(p.check_socket("203.0.113.7:7882".parse().unwrap()), Ok(()));
        assert_eq!(
            p.check_socket("203.0.113.7:6379".parse().unwrap()),
            Err(DenyClass::Port)
        );
        // Without a port there is nothing to check it against: refused.
        assert_eq!(p.check(ip("203.0.113.7")), Err(DenyClass::Port));
        // The address rules still apply on the allowed port.
        assert_eq!(
            p.check_socket("10.0.0.1:7882".parse().unwrap()),
            Err(DenyClass::Private)
        );
    }
}
