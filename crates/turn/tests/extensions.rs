//! Protocol extensions coturn has: 300 Try Alternate (`alternate-server`) and RFC 8016
//! mobility, through the in-memory harness and its virtual clock.

mod harness;

use harness::*;
use switchyard_stun::{Method, attr};
use switchyard_turn::{AlternateServer, ClientOutcome, DropReason, Event, PeerOutcome, Transport};

const PEER: &str = "8.8.8.8:40000";

fn alice(h: &H, remote: &str) -> Client {
    Client::rest(remote, h.unix_now() + 3600, "@alice:example.org", SECRET)
}

fn alt(addr: &str, domain: Option<&str>) -> AlternateServer {
    AlternateServer {
        addr: sa(addr),
        domain: domain.map(str::to_owned),
    }
}

fn plain_addr(r: &Resp, typ: u16) -> Option<std::net::SocketAddr> {
    let m = r.msg();
    let v = m.get(typ)?;
    let port = u16::from_be_bytes([v[2], v[3]]);
    match v[1] {
        1 => Some((std::net::Ipv4Addr::new(v[4], v[5], v[6], v[7]), port).into()),
        2 => {
            let o: [u8; 16] = v[4..20].try_into().ok()?;
            Some((std::net::Ipv6Addr::from(o), port).into())
        }
        _ => None,
    }
}

fn events(h: &mut H) -> Vec<Event> {
    std::iter::from_fn(|| h.server.poll_event()).collect()
}

#[test]
fn alternate_server_redirects_new_allocations_round_robin() {
    let mut h = H::with(|c| {
        c.alternate_servers = vec![
            alt("192.0.2.1:3478", None),
            alt("[2001:db8::1]:3478", None),
            alt("192.0.2.2:3478", None),
        ];
    });
    let mut a = alice(&h, "198.51.100.1:5000");
    let r = h.allocate(&mut a, &[]);
    assert_eq!(r.code(), Some(300));
    // Authenticated redirect: the client can trust where it is sent.
    r.msg().verify_integrity(&a.key).unwrap();
    assert_eq!(
        plain_addr(&r, attr::ALTERNATE_SERVER),
        Some(sa("192.0.2.1:3478"))
    );
    assert!(
        !r.has(attr::ALTERNATE_DOMAIN),
        "no ALTERNATE-DOMAIN over UDP"
    );
    assert_eq!(h.server.allocation_count(), 0);
    assert_eq!(
        h.relays.bound.len(),
        0,
        "no relay socket for a redirected client"
    );
    // Next client: the next IPv4 entry (the IPv6 one does not fit an IPv4 listener).
    let mut b = alice(&h, "198.51.100.2:5000");
    let r = h.allocate(&mut b, &[]);
    assert_eq!(
        plain_addr(&r, attr::ALTERNATE_SERVER),
        Some(sa("192.0.2.2:3478"))
    );
    let r = h.allocate(&mut b, &[]);
    assert_eq!(
        plain_addr(&r, attr::ALTERNATE_SERVER),
        Some(sa("192.0.2.1:3478"))
    );
    assert_eq!(h.server.stats().errors_sent(300), 3);
    // Binding is never redirected; an unauthenticated Allocate still gets its 401 first.
    let r = h.once(&mut a, Method::BINDING, &[]);
    assert!(r.ok());
    let mut c = alice(&h, "198.51.100.3:5000");
    assert_eq!(h.once(&mut c, Method::ALLOCATE, &[udp()]).code(), Some(401));
}

#[test]
fn a_server_listed_in_its_own_pool_serves() {
    let mut h = H::with(|c| {
        c.alternate_servers = vec![alt("192.0.2.1:3478", None), alt(LISTEN, None)];
    });
    let mut a = alice(&h, "198.51.100.1:5000");
    assert!(h.allocate(&mut a, &[]).ok(), "no redirect loop");
}

#[test]
fn tls_clients_use_the_tls_list_with_alternate_domain() {
    let mut h = H::with(|c| {
        c.tls_alternate_servers = vec![alt("192.0.2.9:5349", Some("turn2.example.org"))];
    });
    let mut t = alice(&h, "198.51.100.1:5000");
    t.addr.transport = Transport::Tls;
    let r = h.allocate(&mut t, &[]);
    assert_eq!(r.code(), Some(300));
    assert_eq!(
        plain_addr(&r, attr::ALTERNATE_SERVER),
        Some(sa("192.0.2.9:5349"))
    );
    assert_eq!(
        r.msg().get(attr::ALTERNATE_DOMAIN),
        Some(&b"turn2.example.org"[..])
    );
    // UDP clients have no list here: served.
    let mut u = alice(&h, "198.51.100.2:5000");
    assert!(h.allocate(&mut u, &[]).ok());
}

#[test]
fn only_alternates_of_the_clients_family_are_used() {
    let mut h = H::with(|c| c.alternate_servers = vec![alt("[2001:db8::1]:3478", None)]);
    let mut a = alice(&h, "198.51.100.1:5000");
    assert!(h.allocate(&mut a, &[]).ok(), "no IPv4 alternate: served");
    // Requests on the allocation are never redirected.
    assert!(h.request(&mut a, Method::REFRESH, &[]).ok());
    assert!(h.permit(&mut a, &[sa(PEER)]).ok());
    assert_eq!(h.server.stats().errors_sent(300), 0);
}

fn ticket(r: &Resp) -> Vec<u8> {
    r.msg()
        .get(attr::MOBILITY_TICKET)
        .expect("MOBILITY-TICKET in the response")
        .to_vec()
}

const WANT_TICKET: u16 = attr::MOBILITY_TICKET;

#[test]
fn mobility_ticket_moves_the_allocation_to_a_new_address() {
    let mut h = H::with(|c| c.mobility = true);
    let mut old = alice(&h, "198.51.100.1:5000");
    let r = h.allocate(&mut old, &[A::Raw(WANT_TICKET, vec![])]);
    assert!(r.ok(), "{:?}", r.code());
    let t1 = ticket(&r);
    assert_eq!(t1.len(), 22);
    assert!(
        t1.iter().all(u8::is_ascii_graphic),
        "printable: uclient keeps it as a C string"
    );
    let relayed = r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap();
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa(PEER);
    assert!(h.bind(&mut old, 0x4001, peer).ok());
    events(&mut h);

    // The client's address changes (Wi-Fi → cellular): same credentials, new 5-tuple.
    let mut new = alice(&h, "203.0.113.7:6000");
    let r = h.request(
        &mut new,
        Method::REFRESH,
        &[A::Raw(attr::MOBILITY_TICKET, t1.clone())],
    );
    assert!(r.ok(), "{:?}", r.code());
    r.msg().verify_integrity(&new.key).unwrap();
    let t2 = ticket(&r);
    assert_ne!(t1, t2, "a fresh ticket on every refresh");
    assert_eq!(h.server.allocation_count(), 1);
    assert_eq!(h.server.stats().allocations_moved, 1);
    assert!(matches!(
        events(&mut h).as_slice(),
        [Event::AllocationMoved { from, to, relayed: r }]
            if from.remote == old.addr.remote && to.remote == new.addr.remote && *r == relayed
    ));

    // The channel and permission came along; the peer's data goes to the new address.
    let r = h.channel_data(&new, 0x4001, b"from the new address");
    assert!(
        matches!(r.outcome, ClientOutcome::ToPeer { relay: id, peer: p, .. } if id == relay && p == peer)
    );
    let p = h.peer_sends(relay, peer, b"back");
    assert!(
        matches!(p.outcome, PeerOutcome::ToClient { client, .. } if client.remote == new.addr.remote)
    );
    // The old address has nothing any more.
    let r = h.channel_data(&old, 0x4001, b"stale");
    assert_eq!(r.outcome, ClientOutcome::Drop(DropReason::NoAllocation));
    assert_eq!(h.request(&mut old, Method::REFRESH, &[]).code(), Some(437));

    // The first ticket was retired by the move: replaying it from a third address fails.
    let mut third = alice(&h, "192.0.2.99:7000");
    let r = h.request(
        &mut third,
        Method::REFRESH,
        &[A::Raw(attr::MOBILITY_TICKET, t1)],
    );
    assert_eq!(r.code(), Some(400));
    // A plain Refresh on the new 5-tuple keeps the allocation (and the current ticket
    // moves it again from yet another address).
    assert!(h.request(&mut new, Method::REFRESH, &[]).ok());
    let r = h.request(
        &mut third,
        Method::REFRESH,
        &[A::Raw(attr::MOBILITY_TICKET, t2)],
    );
    assert!(r.ok());
    // Deleting frees it and its ticket.
    let t3 = ticket(&r);
    assert!(
        h.request(&mut third, Method::REFRESH, &[A::Lifetime(0)])
            .ok()
    );
    assert_eq!(h.server.allocation_count(), 0);
    let r = h.request(
        &mut new,
        Method::REFRESH,
        &[A::Raw(attr::MOBILITY_TICKET, t3)],
    );
    assert_eq!(r.code(), Some(400));
}

#[test]
fn mobility_needs_the_same_user() {
    let mut h = H::with(|c| c.mobility = true);
    let mut a = alice(&h, "198.51.100.1:5000");
    let t = ticket(&h.allocate(&mut a, &[A::Raw(WANT_TICKET, vec![])]));
    let mut mallory = Client::rest(
        "203.0.113.66:6000",
        h.unix_now() + 3600,
        "@mallory:example.org",
        SECRET,
    );
    let r = h.request(
        &mut mallory,
        Method::REFRESH,
        &[A::Raw(attr::MOBILITY_TICKET, t.clone())],
    );
    assert_eq!(r.code(), Some(441));
    // Unauthenticated: challenged, never moved.
    let mut anon = alice(&h, "203.0.113.67:6000");
    assert_eq!(
        h.once(
            &mut anon,
            Method::REFRESH,
            &[A::Raw(attr::MOBILITY_TICKET, t)]
        )
        .code(),
        Some(401)
    );
    assert_eq!(h.server.stats().allocations_moved, 0);
}

#[test]
fn mobility_off_is_405_and_streams_get_no_ticket() {
    let mut h = H::new();
    let mut a = alice(&h, "198.51.100.1:5000");
    let r = h.allocate(&mut a, &[A::Raw(WANT_TICKET, vec![])]);
    assert_eq!(r.code(), Some(405));
    assert_eq!(h.server.allocation_count(), 0);
    h.alloc_ok(&mut a);
    let r = h.request(&mut a, Method::REFRESH, &[A::Raw(WANT_TICKET, vec![1; 16])]);
    assert_eq!(r.code(), Some(405));
    assert_eq!(h.server.stats().errors_sent(405), 2);

    let mut h = H::with(|c| c.mobility = true);
    let mut t = alice(&h, "198.51.100.1:5000");
    t.addr.transport = Transport::Tcp;
    let r = h.allocate(&mut t, &[A::Raw(WANT_TICKET, vec![])]);
    assert!(r.ok());
    assert!(
        !r.has(attr::MOBILITY_TICKET),
        "a TCP allocation cannot move"
    );
    // Without asking, a UDP client gets no ticket either.
    let mut u = alice(&h, "198.51.100.2:5000");
    let r = h.allocate(&mut u, &[]);
    assert!(r.ok() && !r.has(attr::MOBILITY_TICKET));
}

fn nat(ips: &[&str]) -> switchyard_turn::NatDiscovery {
    switchyard_turn::NatDiscovery {
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        port: 3478,
        alt_port: 3479,
    }
}

#[test]
fn rfc5780_binding_change_request_response_port_padding() {
    let mut h = H::with(|c| c.rfc5780 = Some(nat(&["5.9.0.7", "5.9.0.8"])));
    let mut c = Client::new("192.0.2.1:5000", "x", "y");
    let r = h.once(&mut c, Method::BINDING, &[]);
    assert!(matches!(r.outcome, ClientOutcome::Reply { .. }));
    assert_eq!(
        r.attr_types(),
        [
            attr::XOR_MAPPED_ADDRESS,
            attr::MAPPED_ADDRESS,
            attr::RESPONSE_ORIGIN,
            attr::OTHER_ADDRESS
        ]
    );
    assert_eq!(plain_addr(&r, attr::MAPPED_ADDRESS), Some(c.addr.remote));
    assert_eq!(plain_addr(&r, attr::RESPONSE_ORIGIN), Some(sa(LISTEN)));
    assert_eq!(
        plain_addr(&r, attr::OTHER_ADDRESS),
        Some(sa("5.9.0.8:3479"))
    );

    // CHANGE-REQUEST: the answer leaves from the other IP and/or port.
    for (flags, origin) in [
        (0x06, "5.9.0.8:3479"),
        (0x04, "5.9.0.8:3478"),
        (0x02, "5.9.0.7:3479"),
    ] {
        let r = h.once(
            &mut c,
            Method::BINDING,
            &[A::Raw(attr::CHANGE_REQUEST, vec![0, 0, 0, flags])],
        );
        assert_eq!(
            r.outcome,
            ClientOutcome::ReplyFrom {
                len: r.bytes.len(),
                from: sa(origin),
                to: c.addr.remote
            }
        );
        assert_eq!(plain_addr(&r, attr::RESPONSE_ORIGIN), Some(sa(origin)));
    }
    // RESPONSE-PORT: same source, another client port.
    let r = h.once(
        &mut c,
        Method::BINDING,
        &[A::Raw(attr::RESPONSE_PORT, vec![0x1B, 0x58, 0, 0])],
    );
    assert!(
        matches!(r.outcome, ClientOutcome::ReplyFrom { from, to, .. }
        if from == sa(LISTEN) && to == sa("192.0.2.1:7000"))
    );
    // PADDING is echoed (capped), for path MTU tests.
    let r = h.once(
        &mut c,
        Method::BINDING,
        &[A::Raw(attr::PADDING, vec![0; 300])],
    );
    assert_eq!(r.msg().get(attr::PADDING).map(<[u8]>::len), Some(300));
    let r = h.once(
        &mut c,
        Method::BINDING,
        &[A::Raw(attr::PADDING, vec![0; 1400])],
    );
    assert_eq!(r.msg().get(attr::PADDING).map(<[u8]>::len), Some(1024));
    // Over TCP there is one path: CHANGE-REQUEST → 400.
    let mut t = Client::on(Transport::Tcp, "192.0.2.1:5001", "x", "y");
    let r = h.once(
        &mut t,
        Method::BINDING,
        &[A::Raw(attr::CHANGE_REQUEST, vec![0, 0, 0, 4])],
    );
    assert_eq!(r.code(), Some(400));
    // Other unknown comprehension-required attributes are still 420.
    let r = h.once(&mut c, Method::BINDING, &[A::Raw(0x0077, vec![0; 4])]);
    assert_eq!(r.code(), Some(420));
}

#[test]
fn rfc5780_without_an_alternate_ip_refuses_change_ip() {
    let mut h = H::with(|c| c.rfc5780 = Some(nat(&["5.9.0.7"])));
    let mut c = Client::new("192.0.2.1:5000", "x", "y");
    let r = h.once(&mut c, Method::BINDING, &[]);
    assert!(r.ok() && !r.has(attr::OTHER_ADDRESS));
    let r = h.once(
        &mut c,
        Method::BINDING,
        &[A::Raw(attr::CHANGE_REQUEST, vec![0, 0, 0, 4])],
    );
    assert_eq!(r.code(), Some(420));
    assert_eq!(
        r.msg().get(attr::UNKNOWN_ATTRIBUTES),
        Some(&[0x00, 0x03][..])
    );
    // The port alone can change.
    let r = h.once(
        &mut c,
        Method::BINDING,
        &[A::Raw(attr::CHANGE_REQUEST, vec![0, 0, 0, 2])],
    );
    assert!(
        matches!(r.outcome, ClientOutcome::ReplyFrom { from, .. } if from == sa("5.9.0.7:3479"))
    );
}
