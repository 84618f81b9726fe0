//! RFC 8656 §7.2 dual allocations (ADDITIONAL-ADDRESS-FAMILY): one Allocate, an IPv4 and
//! an IPv6 relayed address, permissions and channels per family, one lifetime.

mod harness;

use harness::*;
use switchyard_stun::{Method, attr};
use switchyard_turn::{ClientOutcome, PeerOutcome};

const PEER4: &str = "8.8.8.8:40000";
const PEER6: &str = "[2a00:1450:4001::1]:40000";

fn dual() -> H {
    H::with(|c| c.listen_ips = vec![RELAY_V4.parse().unwrap(), RELAY_V6.parse().unwrap()])
}

fn alice(h: &H) -> Client {
    Client::rest(
        "192.0.2.10:5000",
        h.unix_now() + 3600,
        "@alice:example.org",
        SECRET,
    )
}

fn relayed_addresses(r: &Resp) -> Vec<std::net::SocketAddr> {
    let m = r.msg();
    let tid = m.transaction_id().0;
    m.attributes()
        .filter(|a| a.typ == attr::XOR_RELAYED_ADDRESS)
        .filter_map(|a| decode_xor(a.value, &tid))
        .collect()
}

#[test]
fn one_allocate_two_families() {
    let mut h = dual();
    let mut c = alice(&h);
    let r = h.allocate(&mut c, &[A::AddFamily(2)]);
    assert!(r.ok(), "{:?}", r.code());
    assert!(
        !r.has(attr::ADDRESS_ERROR_CODE),
        "both families were available"
    );
    let addrs = relayed_addresses(&r);
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let (v4, v6) = (addrs[0], addrs[1]);
    assert_eq!(v4.ip().to_string(), RELAY_V4);
    assert_eq!(v6.ip().to_string(), RELAY_V6);
    let (r4, r6) = (h.relays.id_of(v4).unwrap(), h.relays.id_of(v6).unwrap());
    assert_eq!(h.server.allocation_count(), 1);

    let (p4, p6) = (sa(PEER4), sa(PEER6));
    // One CreatePermission may name peers of both families.
    assert!(h.permit(&mut c, &[p4, p6]).ok());
    // Each family leaves through its own relay.
    let out = |r: &Resp| match r.outcome {
        ClientOutcome::ToPeer { relay, peer, .. } => Some((relay, peer)),
        _ => None,
    };
    assert_eq!(out(&h.send_indication(&mut c, p4, b"four")), Some((r4, p4)));
    assert_eq!(out(&h.send_indication(&mut c, p6, b"six")), Some((r6, p6)));
    assert!(h.bind(&mut c, 0x4006, p6).ok());
    assert!(h.bind(&mut c, 0x4004, p4).ok());
    assert_eq!(out(&h.channel_data(&c, 0x4006, b"x")), Some((r6, p6)));
    assert_eq!(out(&h.channel_data(&c, 0x4004, b"x")), Some((r4, p4)));
    // And comes back through it, as ChannelData.
    let back = h.peer_sends(r6, p6, b"hello6");
    assert!(matches!(back.outcome, PeerOutcome::ToClient { client, .. } if client == c.addr));
    assert_eq!(&back.bytes[..2], &0x4006u16.to_be_bytes());
    // A v4-mapped IPv6 peer is still IPv4 (443), and permissions are per family: the IPv6
    // relay accepts nothing from a peer that only has an IPv4 permission.
    let mapped = sa("[::ffff:8.8.4.4]:1");
    assert_eq!(h.permit(&mut c, &[mapped]).code(), Some(443));
    let stray = h.peer_sends(r6, sa("[2a00:1450:4001::2]:1"), b"no");
    assert!(!stray.delivered());

    // Refresh names either family; deleting frees both relays.
    assert!(h.request(&mut c, Method::REFRESH, &[A::Family(2)]).ok());
    assert!(h.request(&mut c, Method::REFRESH, &[A::Family(1)]).ok());
    assert!(h.request(&mut c, Method::REFRESH, &[A::Lifetime(0)]).ok());
    assert_eq!(h.server.allocation_count(), 0);
    assert!(h.relays.bound.is_empty(), "{:?}", h.relays.bound);
    assert_eq!(h.server.reservation_count(), 0);
}

#[test]
fn retransmitted_dual_allocate_gets_both_addresses_again() {
    let mut h = dual();
    let mut c = alice(&h);
    let first = h.allocate(&mut c, &[A::AddFamily(2)]);
    assert!(first.ok());
    // Same transaction again (as a lost response would make a client send).
    let tid = first.msg().transaction_id();
    let bytes = c.build(
        switchyard_stun::Class::Request,
        Method::ALLOCATE,
        tid,
        &[udp(), A::AddFamily(2)],
    );
    let again = h.raw(c.addr, &bytes);
    assert!(again.ok());
    assert_eq!(relayed_addresses(&again), relayed_addresses(&first));
    assert!(!again.has(attr::ADDRESS_ERROR_CODE));
}

#[test]
fn second_family_unavailable_is_440_in_address_error_code() {
    // No IPv6 address at all.
    let mut h = H::new();
    let mut c = alice(&h);
    let r = h.allocate(&mut c, &[A::AddFamily(2)]);
    assert!(r.ok());
    assert_eq!(relayed_addresses(&r).len(), 1);
    let v = r.msg().get(attr::ADDRESS_ERROR_CODE).unwrap().to_vec();
    assert_eq!((v[0], v[2], v[3]), (0x02, 4, 40));
    // The IPv6 port range is exhausted: the IPv4 half still works, the IPv6 half is 440.
    let mut h = H::with(|c| {
        c.listen_ips = vec![RELAY_V4.parse().unwrap(), RELAY_V6.parse().unwrap()];
        c.port_range = 50000..=50000;
    });
    let mut a = alice(&h);
    h.relays.taken.insert(sa(&format!("[{RELAY_V6}]:50000")));
    let r = h.allocate(&mut a, &[A::AddFamily(2)]);
    assert!(r.ok());
    assert_eq!(relayed_addresses(&r).len(), 1);
    assert!(r.has(attr::ADDRESS_ERROR_CODE));
}

#[test]
fn coturn_4_6_additional_address_family_code_point() {
    // turnutils_uclient -Z (coturn 4.6) sends the attribute as 0x8032.
    let mut h = dual();
    let mut c = alice(&h);
    let r = h.allocate(&mut c, &[A::Raw(0x8032, vec![2, 0, 0, 0])]);
    assert!(r.ok(), "{:?}", r.code());
    assert_eq!(relayed_addresses(&r).len(), 2);
    // Its Refresh then names the IPv6 family.
    assert!(h.request(&mut c, Method::REFRESH, &[A::Family(2)]).ok());
}
