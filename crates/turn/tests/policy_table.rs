//! The peer policy, end to end: for every denied class and its IPv4-in-IPv6 encodings,
//! CreatePermission and ChannelBind are refused and neither a Send indication nor ChannelData
//! reaches the peer. Positive controls prove the harness can see a success.

mod harness;

use std::net::{IpAddr, SocketAddr};

use harness::*;
use switchyard_stun::{Method, attr};
use switchyard_turn::{ClientOutcome, DenyClass, Event, PeerPolicy, PolicyConfig};

/// Denied for an IPv4 allocation.
const V4_DENIED: &[&str] = &[
    "0.0.0.0",
    "0.1.2.3",
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "169.254.169.254",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.1",
    "192.0.2.1",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.1",
    "203.0.113.1",
    "192.88.99.1",
    // The server's own listening/relay address (not on a relay port).
    "5.9.0.7",
];

/// Denied (403) for an IPv6 allocation: native classes and every IPv4 embedding that is not
/// v4-mapped (mapped ones are a family mismatch, see below).
const V6_DENIED: &[&str] = &[
    "::",
    "::1",
    "::127.0.0.1",
    "::10.1.2.3",
    "::169.254.169.254",
    "::0.0.0.2",
    "64:ff9b::",
    "64:ff9b::7f00:1",
    "64:ff9b::a01:203",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::c0a8:101",
    "64:ff9b::e000:1",
    "64:ff9b:1::7f00:1",
    "64:ff9b:1::a01:203",
    "2002::1",
    "2002:7f00:1::1",
    "2002:a01:203::1",
    "2002:a9fe:a9fe::1",
    "2002:6440:1::1",
    // Teredo: client IPv4 is the bitwise NOT of the low 32 bits.
    "2001:0:4136:e378:8000:63bf:80ff:fffe", // 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5fe:fdfc", // 10.1.2.3
    "2001:0:4136:e378:8000:63bf:5601:5601", // 169.254.169.254... inverted
    "2001:0:4136:e378:8000:63bf:ffff:ffff", // 0.0.0.0
    "fe80::1",
    "febf::1",
    "ff02::1",
    "ff0e::1",
    "fc00::1",
    "fd12:3456::1",
    "fec0::1",
    "2001:db8::1",
    "100::1",
    "100::ffff:ffff:ffff:ffff",
    // Own IPv6 relay address.
    "2a01:4f8::7",
];

/// v4-mapped destinations on an IPv6 relay: refused as a family mismatch (443), so an IPv6
/// relay socket never sends to an IPv4 destination.
const V6_MAPPED: &[&str] = &[
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::ffff:0.0.0.0",
    "::ffff:224.0.0.1",
    "::ffff:8.8.8.8",
];

fn setup(cfg: impl FnOnce(&mut switchyard_turn::ServerConfig)) -> H {
    H::with(|c| {
        c.relay_ips = vec![RELAY_V4.parse().unwrap(), RELAY_V6.parse().unwrap()];
        c.policy = PeerPolicy::new(PolicyConfig {
            own_addrs: vec![RELAY_V4.parse().unwrap(), RELAY_V6.parse().unwrap()],
            ..PolicyConfig::default()
        });
        cfg(c);
    })
}

/// Allocate (v4 or v6), returning the client and the relay id.
fn allocate(h: &mut H, port: u16, v6: bool) -> (Client, switchyard_turn::RelayId) {
    let mut c = Client::rest(
        &format!("192.0.2.10:{port}"),
        h.unix_now() + 3600,
        "@alice:example.org",
        SECRET,
    );
    let extra = if v6 { vec![A::Family(2)] } else { vec![] };
    let r = h.allocate(&mut c, &extra);
    assert!(r.ok(), "allocate failed: {:?}", r.code());
    let relayed = r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap();
    assert_eq!(relayed.is_ipv6(), v6);
    let relay = h.relays.id_of(relayed).unwrap();
    (c, relay)
}

/// Everything a client could do to reach `peer` must fail with `code`.
fn assert_unreachable(
    h: &mut H,
    c: &mut Client,
    relay: switchyard_turn::RelayId,
    peer: SocketAddr,
    code: u16,
) {
    let r = h.permit(c, &[peer]);
    assert_eq!(r.code(), Some(code), "CreatePermission {peer}");
    r.msg().verify_integrity(&c.key).unwrap();
    let r = h.bind(c, 0x4ABC, peer);
    assert_eq!(r.code(), Some(code), "ChannelBind {peer}");
    let r = h.send_indication(c, peer, b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        !matches!(r.outcome, ClientOutcome::ToPeer { .. }),
        "Send indication reached {peer}"
    );
    let r = h.channel_data(c, 0x4ABC, b"x");
    assert!(
        !matches!(r.outcome, ClientOutcome::ToPeer { .. }),
        "ChannelData reached {peer}"
    );
    assert!(
        !h.peer_sends(relay, peer, b"x").delivered(),
        "{peer} reached the client"
    );
}

fn assert_reachable(
    h: &mut H,
    c: &mut Client,
    relay: switchyard_turn::RelayId,
    peer: SocketAddr,
    channel: u16,
) {
    let r = h.permit(c, &[peer]);
    assert!(r.ok(), "CreatePermission {peer}: {:?}", r.code());
    let r = h.bind(c, channel, peer);
    assert!(r.ok(), "ChannelBind {peer}: {:?}", r.code());
    assert!(matches!(
        h.send_indication(c, peer, b"x").outcome,
        ClientOutcome::ToPeer { .. }
    ));
    assert!(matches!(
        h.channel_data(c, channel, b"x").outcome,
        ClientOutcome::ToPeer { .. }
    ));
    assert!(h.peer_sends(relay, peer, b"x").delivered());
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port)
}

#[test]
fn ipv4_allocation_denies_every_class() {
    let mut h = setup(|_| {});
    let (mut c, relay) = allocate(&mut h, 5000, false);
    for ip in V4_DENIED {
        assert_unreachable(&mut h, &mut c, relay, sock(ip, 3478), 403);
    }
    // Denials are reported with their class.
    let classes: Vec<DenyClass> = std::iter::from_fn(|| h.server.poll_event())
        .filter_map(|e| match e {
            Event::PeerDenied { class, .. } => Some(class),
            _ => None,
        })
        .collect();
    for want in [
        DenyClass::Unspecified,
        DenyClass::Loopback,
        DenyClass::Private,
        DenyClass::SharedAddress,
        DenyClass::LinkLocal,
        DenyClass::Multicast,
        DenyClass::Reserved,
        DenyClass::ProtocolAssignment,
        DenyClass::Documentation,
        DenyClass::Benchmarking,
        DenyClass::SixToFourRelayAnycast,
        DenyClass::OwnAddress,
    ] {
        assert!(classes.contains(&want), "{want:?} never reported");
    }
    // Every IPv6 form is a family mismatch on an IPv4 allocation.
    for ip in V6_DENIED.iter().chain(V6_MAPPED) {
        assert_unreachable(&mut h, &mut c, relay, sock(ip, 1), 443);
    }
    // Positive control.
    assert_reachable(&mut h, &mut c, relay, sock("8.8.8.8", 53), 0x4001);
    // Relay-to-relay on our own address is allowed on relay ports (another allocation).
    assert_reachable(&mut h, &mut c, relay, sock(RELAY_V4, 50050), 0x4002);
}

#[test]
fn ipv6_allocation_denies_every_class_and_embedding() {
    let mut h = setup(|_| {});
    let (mut c, relay) = allocate(&mut h, 5000, true);
    for ip in V6_DENIED {
        assert_unreachable(&mut h, &mut c, relay, sock(ip, 3478), 403);
    }
    for ip in V6_MAPPED {
        assert_unreachable(&mut h, &mut c, relay, sock(ip, 3478), 443);
    }
    for ip in V4_DENIED {
        assert_unreachable(&mut h, &mut c, relay, sock(ip, 1), 443);
    }
    assert_reachable(
        &mut h,
        &mut c,
        relay,
        sock("2a00:1450:4001::1", 443),
        0x4001,
    );
    // Embeddings of a public IPv4 address pass.
    assert_reachable(&mut h, &mut c, relay, sock("64:ff9b::808:808", 53), 0x4002);
    assert_reachable(&mut h, &mut c, relay, sock("2002:808:808::1", 53), 0x4003);
}

#[test]
fn allowed_peer_ip_overrides_defaults_but_not_hard_denies() {
    let mut h = setup(|c| {
        c.policy = PeerPolicy::new(PolicyConfig {
            allowed: vec![
                (
                    "10.0.0.0".parse().unwrap(),
                    "10.255.255.255".parse().unwrap(),
                ),
                ("0.0.0.0".parse().unwrap(), "0.0.0.0".parse().unwrap()),
                ("::".parse().unwrap(), "::".parse().unwrap()),
                (
                    "fd00::".parse().unwrap(),
                    "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                ),
            ],
            denied: vec![("10.9.0.0".parse().unwrap(), "10.9.255.255".parse().unwrap())],
            ..PolicyConfig::default()
        });
    });
    let (mut c, relay) = allocate(&mut h, 5000, false);
    assert_reachable(&mut h, &mut c, relay, sock("10.1.2.3", 80), 0x4001);
    // Allowed beats denied (coturn).
    assert_reachable(&mut h, &mut c, relay, sock("10.9.0.1", 80), 0x4002);
    // `allowed-peer-ip=0.0.0.0` / `::` never open the unspecified address.
    assert_unreachable(&mut h, &mut c, relay, sock("0.0.0.0", 80), 403);
    // Nor do they open anything else.
    assert_unreachable(&mut h, &mut c, relay, sock("192.168.0.1", 80), 403);
    // Loopback stays closed without allow-loopback-peers.
    assert_unreachable(&mut h, &mut c, relay, sock("127.0.0.1", 80), 403);

    let (mut c6, relay6) = allocate(&mut h, 5001, true);
    assert_unreachable(&mut h, &mut c6, relay6, sock("::", 80), 403);
    assert_reachable(&mut h, &mut c6, relay6, sock("fd00::5", 80), 0x4001);
    // A v4 allow range reaches the NAT64 form of the address.
    assert_reachable(
        &mut h,
        &mut c6,
        relay6,
        sock("64:ff9b::a01:203", 80),
        0x4002,
    );
    assert_unreachable(&mut h, &mut c6, relay6, sock("::ffff:10.1.2.3", 80), 443);
}

#[test]
fn denied_peer_ip_ranges() {
    let mut h = setup(|c| {
        c.policy = PeerPolicy::new(PolicyConfig {
            denied: vec![("8.8.0.0".parse().unwrap(), "8.8.255.255".parse().unwrap())],
            ..PolicyConfig::default()
        });
    });
    let (mut c, relay) = allocate(&mut h, 5000, false);
    assert_unreachable(&mut h, &mut c, relay, sock("8.8.8.8", 53), 403);
    assert_reachable(&mut h, &mut c, relay, sock("9.9.9.9", 53), 0x4001);
    let (mut c6, relay6) = allocate(&mut h, 5001, true);
    assert_unreachable(&mut h, &mut c6, relay6, sock("64:ff9b::808:808", 53), 403);

    // `denied-peer-ip=::0` denies everything (all-zero bound = unbounded).
    let mut h = setup(|c| {
        c.policy = PeerPolicy::new(PolicyConfig {
            denied: vec![("::".parse().unwrap(), "::".parse().unwrap())],
            ..PolicyConfig::default()
        });
    });
    let (mut c, relay) = allocate(&mut h, 5000, false);
    assert_unreachable(&mut h, &mut c, relay, sock("8.8.8.8", 53), 403);
}

#[test]
fn allow_loopback_peers() {
    let mut h = setup(|c| {
        c.policy = PeerPolicy::new(PolicyConfig {
            allow_loopback: true,
            own_addrs: vec!["127.0.0.1".parse().unwrap()],
            ..PolicyConfig::default()
        });
    });
    let (mut c, relay) = allocate(&mut h, 5000, false);
    assert_reachable(&mut h, &mut c, relay, sock("127.0.0.1", 9000), 0x4001);
    assert_reachable(&mut h, &mut c, relay, sock("127.1.2.3", 9000), 0x4002);
    assert_unreachable(&mut h, &mut c, relay, sock("0.0.0.0", 9000), 403);
    assert_unreachable(&mut h, &mut c, relay, sock("10.0.0.1", 9000), 403);
    let (mut c6, relay6) = allocate(&mut h, 5001, true);
    assert_reachable(&mut h, &mut c6, relay6, sock("::1", 9000), 0x4001);
    assert_unreachable(&mut h, &mut c6, relay6, sock("::", 9000), 403);
}

#[test]
fn ipv6_allocation_needs_an_ipv6_relay_address() {
    let mut h = H::new(); // relay address = the IPv4 listener only
    let mut c = Client::rest("192.0.2.10:5000", h.unix_now() + 60, "@a:x", SECRET);
    let r = h.allocate(&mut c, &[A::Family(2)]);
    assert_eq!(r.code(), Some(440));
    let r = h.allocate(&mut c, &[A::Family(1)]);
    assert!(r.ok());
    let _ = Method::ALLOCATE;
}
