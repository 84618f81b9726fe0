//! RFC 6062 TCP allocations through the in-memory harness: Allocate rules, Connect (446,
//! 447, policy), ConnectionBind, ConnectionAttempt for incoming peers, the 30-second bind
//! timeout and cleanup when the control connection closes.

mod harness;

use std::time::Duration;

use harness::*;
use switchyard_stun::{Class, Message, Method, attr};
use switchyard_turn::{ClientOutcome, ConnectionId, DropReason, TcpCommand, Transport};

const PEER: &str = "8.8.8.8:443";

fn tcp_client(h: &H, port: u16) -> Client {
    let mut c = Client::rest(
        &format!("198.51.100.1:{port}"),
        h.unix_now() + 3600,
        "@alice:example.org",
        SECRET,
    );
    c.addr.transport = Transport::Tcp;
    c.addr.token = switchyard_turn::SocketToken(u32::from(port));
    c
}

fn tcp_allocate(h: &mut H, c: &mut Client) -> Resp {
    h.request(c, Method::ALLOCATE, &[A::Transport(6)])
}

fn commands(h: &mut H) -> Vec<TcpCommand> {
    std::iter::from_fn(|| h.server.poll_tcp()).collect()
}

fn connection_id(v: &[u8]) -> ConnectionId {
    ConnectionId(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

#[test]
fn allocate_rules() {
    let mut h = H::new();
    // TCP relaying needs a TCP/TLS control connection.
    let mut udp = Client::rest("198.51.100.1:4000", h.unix_now() + 3600, "@a:b", SECRET);
    assert_eq!(tcp_allocate(&mut h, &mut udp).code(), Some(400));
    let mut c = tcp_client(&h, 5000);
    for bad in [A::EvenPort(false), A::DontFragment, A::Token([1; 8])] {
        let r = h.request(&mut c, Method::ALLOCATE, &[A::Transport(6), bad.clone()]);
        assert_eq!(r.code(), Some(400), "{bad:?}");
    }
    // Another protocol is 442 as before.
    assert_eq!(
        h.request(&mut c, Method::ALLOCATE, &[A::Transport(132)])
            .code(),
        Some(442)
    );
    let r = tcp_allocate(&mut h, &mut c);
    assert!(r.ok(), "{:?}", r.code());
    let relayed = r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap();
    let id = h.relays.id_of(relayed).unwrap();
    assert!(
        h.relays.tcp.contains(&id),
        "a TCP listener, not a UDP socket"
    );

    let mut h = H::with(|c| c.no_tcp_relay = true);
    let mut c = tcp_client(&h, 5000);
    assert_eq!(tcp_allocate(&mut h, &mut c).code(), Some(442));
}

#[test]
fn connect_then_connection_bind() {
    let mut h = H::new();
    let mut c = tcp_client(&h, 5000);
    let relayed = tcp_allocate(&mut h, &mut c)
        .xor_addr(attr::XOR_RELAYED_ADDRESS)
        .unwrap();
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa(PEER);

    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(peer)]);
    assert_eq!(r.outcome, ClientOutcome::Pending);
    let [
        TcpCommand::Connect {
            id,
            relay: rid,
            from,
            peer: p,
        },
    ] = commands(&mut h)[..]
    else {
        panic!("expected one Connect command");
    };
    assert_eq!((rid, from, p), (relay, relayed, peer));
    // RFC 6062 §5.2: a second Connect to the same peer → 446.
    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(peer)]);
    assert_eq!(r.code(), Some(446));
    assert!(commands(&mut h).is_empty());

    // The IO layer connected: success with CONNECTION-ID on the control connection,
    // signed with the allocation's key and the Connect's transaction id.
    let mut reply = vec![0u8; 1500];
    let now = h.now;
    let (to, len) = h
        .server
        .handle_tcp_connected(now, id, true, &mut reply)
        .unwrap();
    assert_eq!(to, c.addr);
    let m = Message::parse(&reply[..len]).unwrap();
    assert_eq!((m.method(), m.class()), (Method::CONNECT, Class::Success));
    m.verify_integrity(&c.key).unwrap();
    assert_eq!(connection_id(m.get(attr::CONNECTION_ID).unwrap()), id);

    // ConnectionBind on the control connection is refused; so is an unknown id.
    let cid = id.0.to_be_bytes().to_vec();
    let r = h.request(
        &mut c,
        Method::CONNECTION_BIND,
        &[A::Raw(attr::CONNECTION_ID, cid.clone())],
    );
    assert_eq!(r.code(), Some(400));
    let mut data = tcp_client(&h, 5001);
    let r = h.request(
        &mut data,
        Method::CONNECTION_BIND,
        &[A::Raw(
            attr::CONNECTION_ID,
            (id.0 ^ 1).to_be_bytes().to_vec(),
        )],
    );
    assert_eq!(r.code(), Some(400));
    // Unauthenticated → 401; another user's key → 401; the allocation's user → bound.
    let mut anon = tcp_client(&h, 5002);
    anon.anonymous = true;
    let r = h.once(
        &mut anon,
        Method::CONNECTION_BIND,
        &[A::Raw(attr::CONNECTION_ID, cid.clone())],
    );
    assert_eq!(r.code(), Some(401));
    let mut mallory = Client::rest(
        "198.51.100.1:5003",
        h.unix_now() + 3600,
        "@m:example.org",
        SECRET,
    );
    mallory.addr.transport = Transport::Tcp;
    let r = h.request(
        &mut mallory,
        Method::CONNECTION_BIND,
        &[A::Raw(attr::CONNECTION_ID, cid.clone())],
    );
    assert_eq!(r.code(), Some(401));
    let r = h.request(
        &mut data,
        Method::CONNECTION_BIND,
        &[A::Raw(attr::CONNECTION_ID, cid.clone())],
    );
    assert!(r.ok(), "{:?}", r.code());
    r.msg().verify_integrity(&data.key).unwrap();
    assert_eq!(
        commands(&mut h),
        [TcpCommand::Pipe {
            id,
            data: data.addr
        }]
    );
    // Bound once only.
    let mut again = tcp_client(&h, 5004);
    let r = h.request(
        &mut again,
        Method::CONNECTION_BIND,
        &[A::Raw(attr::CONNECTION_ID, cid)],
    );
    assert_eq!(r.code(), Some(400));
    // A bound connection has no bind deadline.
    h.advance(Duration::from_secs(60));
    assert!(commands(&mut h).is_empty());

    // The control connection closes: the allocation goes and its connections are closed.
    let now = h.now;
    h.server.handle_client_closed(now, c.addr, &mut h.relays);
    assert_eq!(commands(&mut h), [TcpCommand::Close { id }]);
    assert!(h.relays.tcp.is_empty());
}

#[test]
fn connect_failure_policy_and_udp_allocations() {
    let mut h = H::new();
    let mut c = tcp_client(&h, 5000);
    assert!(tcp_allocate(&mut h, &mut c).ok());
    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(sa(PEER))]);
    assert_eq!(r.outcome, ClientOutcome::Pending);
    let [TcpCommand::Connect { id, .. }] = commands(&mut h)[..] else {
        panic!("expected Connect");
    };
    let mut reply = vec![0u8; 1500];
    let now = h.now;
    let (_, len) = h
        .server
        .handle_tcp_connected(now, id, false, &mut reply)
        .unwrap();
    let m = Message::parse(&reply[..len]).unwrap();
    let e = m.get(attr::ERROR_CODE).unwrap();
    assert_eq!(u16::from(e[2]) * 100 + u16::from(e[3]), 447);
    m.verify_integrity(&c.key).unwrap();
    assert_eq!(h.server.stats().errors_sent(447), 1);
    // Forgotten: the peer may be tried again.
    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(sa(PEER))]);
    assert_eq!(r.outcome, ClientOutcome::Pending);
    // The peer policy applies to Connect targets.
    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(sa("127.0.0.1:22"))]);
    assert_eq!(r.code(), Some(403));
    let r = h.request(&mut c, Method::CONNECT, &[A::Peer(sa("10.1.2.3:22"))]);
    assert_eq!(r.code(), Some(403));
    // Connect on a UDP allocation, or without one.
    let mut u = Client::rest("198.51.100.1:4000", h.unix_now() + 3600, "@a:b", SECRET);
    h.alloc_ok(&mut u);
    assert_eq!(
        h.request(&mut u, Method::CONNECT, &[A::Peer(sa(PEER))])
            .code(),
        Some(400)
    );
    let mut none = tcp_client(&h, 6000);
    assert_eq!(
        h.request(&mut none, Method::CONNECT, &[A::Peer(sa(PEER))])
            .code(),
        Some(437)
    );
}

#[test]
fn incoming_peer_needs_permission_and_is_closed_unbound_after_30s() {
    let mut h = H::new();
    let mut c = tcp_client(&h, 5000);
    let relayed = tcp_allocate(&mut h, &mut c)
        .xor_addr(attr::XOR_RELAYED_ADDRESS)
        .unwrap();
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa("8.8.4.4:51000");
    let mut reply = vec![0u8; 1500];
    let now = h.now;
    assert_eq!(
        h.server
            .handle_tcp_peer_accepted(now, relay, peer, &mut reply),
        Err(DropReason::NoPermission)
    );
    assert!(h.permit(&mut c, &[peer]).ok());
    let now = h.now;
    let (id, to, len) = h
        .server
        .handle_tcp_peer_accepted(now, relay, peer, &mut reply)
        .unwrap();
    assert_eq!(to, c.addr);
    let m = Message::parse(&reply[..len]).unwrap();
    assert_eq!(
        (m.method(), m.class()),
        (Method::CONNECTION_ATTEMPT, Class::Indication)
    );
    assert_eq!(connection_id(m.get(attr::CONNECTION_ID).unwrap()), id);
    let tid = m.transaction_id().0;
    assert_eq!(
        decode_xor(m.get(attr::XOR_PEER_ADDRESS).unwrap(), &tid),
        Some(peer)
    );
    // Not bound within 30 s → closed.
    h.advance(Duration::from_secs(29));
    assert!(commands(&mut h).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(commands(&mut h), [TcpCommand::Close { id }]);
    let mut data = tcp_client(&h, 5001);
    let r = h.request(
        &mut data,
        Method::CONNECTION_BIND,
        &[A::Raw(attr::CONNECTION_ID, id.0.to_be_bytes().to_vec())],
    );
    assert_eq!(r.code(), Some(400), "expired id");
    // A relay of a UDP allocation takes no TCP peers.
    let mut u = Client::rest("198.51.100.1:4000", h.unix_now() + 3600, "@a:b", SECRET);
    let udp_relayed = h.alloc_ok(&mut u);
    let udp_relay = h.relays.id_of(udp_relayed).unwrap();
    let now = h.now;
    assert_eq!(
        h.server
            .handle_tcp_peer_accepted(now, udp_relay, peer, &mut reply),
        Err(DropReason::NoAllocation)
    );
}

#[test]
fn connection_ids_name_their_worker() {
    let mut h = H::with(|c| c.worker_id = 3);
    let mut c = tcp_client(&h, 5000);
    assert!(tcp_allocate(&mut h, &mut c).ok());
    h.request(&mut c, Method::CONNECT, &[A::Peer(sa(PEER))]);
    let [TcpCommand::Connect { id, .. }] = commands(&mut h)[..] else {
        panic!("expected Connect");
    };
    assert_eq!(switchyard_turn::tcp_relay::owner(id), 3);
    // The IO layer finds the id in a ConnectionBind frame without the core.
    let mut data = tcp_client(&h, 5001);
    let tid = data.next_tid();
    let frame = data.build(
        Class::Request,
        Method::CONNECTION_BIND,
        tid,
        &[A::Raw(attr::CONNECTION_ID, id.0.to_be_bytes().to_vec())],
    );
    assert_eq!(
        switchyard_turn::tcp_relay::connection_bind_target(&frame),
        Some(id)
    );
    let other = data.build(Class::Request, Method::REFRESH, tid, &[]);
    assert_eq!(
        switchyard_turn::tcp_relay::connection_bind_target(&other),
        None
    );
}
