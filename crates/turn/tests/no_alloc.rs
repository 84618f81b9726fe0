//! The relay hot path allocates nothing (issue 4): ChannelData and Send indications from a
//! client, ChannelData and Data indications to a client. A counting global allocator
//! (per thread, see `counting`) watches a forwarding loop of many packets.

mod counting;
mod harness;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use harness::*;
use switchyard_stun::{Class, Method};
use switchyard_turn::{
    ClientOutcome, PEER_HEADROOM, PEER_TAILROOM, PeerOutcome, RelayId, Transport,
};

const N: usize = 10_000;
const CHANNEL: u16 = 0x4001;

fn client(h: &H, transport: Transport) -> Client {
    let username = format!("{}:@alice:example.org", h.unix_now() + 3600);
    let password = switchyard_turn::auth::rest_password(SECRET.as_bytes(), &username);
    Client::on(transport, "192.0.2.10:5000", &username, &password)
}

#[test]
fn counter_sees_allocations() {
    counting::start();
    let v = black_box(vec![1u8; 16]);
    drop(v);
    let c = counting::stop();
    assert_eq!((c.allocs, c.frees, c.net_bytes), (1, 1, 0));
}

/// Allocation + permissions for two peer IPs + a channel to one of them, then `N` rounds of
/// the four forwarding paths with zero heap allocations.
fn forwarding_loop(transport: Transport, payload_len: usize) {
    forwarding_loop_on(H::new(), transport, payload_len);
}

fn forwarding_loop_on(mut h: H, transport: Transport, payload_len: usize) {
    let mut c = client(&h, transport);
    let relayed = h.alloc_ok(&mut c);
    let relay: RelayId = h.relays.id_of(relayed).unwrap();
    let bound_peer = sa("8.8.8.8:40000");
    let other_peer = sa("9.9.9.9:41000");
    assert!(h.permit(&mut c, &[other_peer]).ok());
    assert!(h.bind(&mut c, CHANNEL, bound_peer).ok());

    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    // Client → server messages, built once.
    let mut channel_data = CHANNEL.to_be_bytes().to_vec();
    channel_data.extend_from_slice(&(payload_len as u16).to_be_bytes());
    channel_data.extend_from_slice(&payload);
    if transport.is_stream() {
        // RFC 8656 §12.5: padded to a multiple of four on streams.
        channel_data.resize(channel_data.len().next_multiple_of(4), 0);
    }
    let tid = c.next_tid();
    let send = c.build(
        Class::Indication,
        Method::SEND,
        tid,
        &[A::Peer(other_peer), A::Data(payload.clone())],
    );
    let mut reply = vec![0u8; 1500];
    // Peer → server datagram with head- and tailroom, as the IO layer lays it out.
    let mut buf = vec![0u8; PEER_HEADROOM + payload_len + PEER_TAILROOM];
    buf[PEER_HEADROOM..PEER_HEADROOM + payload_len].copy_from_slice(&payload);
    let range = PEER_HEADROOM..PEER_HEADROOM + payload_len;
    let pad = if transport.is_stream() {
        (4 - payload_len % 4) % 4
    } else {
        0
    };
    let data_pad = (4 - payload_len % 4) % 4;
    let before = h.server.stats().clone();

    counting::start();
    for _ in 0..N {
        h.now += Duration::from_micros(100);
        let now = h.now;
        let from = c.addr;

        let o = h
            .server
            .handle_client(now, from, &channel_data, &mut reply, &mut h.relays);
        assert!(
            matches!(o, ClientOutcome::ToPeer { relay: r, peer, ref payload }
                if r == relay && peer == bound_peer && payload.len() == payload_len),
            "{o:?}"
        );

        let o = h
            .server
            .handle_client(now, from, &send, &mut reply, &mut h.relays);
        assert!(
            matches!(o, ClientOutcome::ToPeer { relay: r, peer, ref payload }
                if r == relay && peer == other_peer && payload.len() == payload_len),
            "{o:?}"
        );

        let o = h
            .server
            .handle_peer(now, relay, bound_peer, &mut buf, range.clone());
        assert!(
            matches!(o, PeerOutcome::ToClient { client, ref range }
                if client == from && range.len() == 4 + payload_len + pad),
            "{o:?}"
        );
        assert_eq!(
            buf[PEER_HEADROOM - 4..PEER_HEADROOM - 2],
            CHANNEL.to_be_bytes()
        );

        let o = h
            .server
            .handle_peer(now, relay, other_peer, &mut buf, range.clone());
        assert!(
            matches!(o, PeerOutcome::ToClient { client, ref range }
                if client == from && range.len() == 20 + 12 + 4 + payload_len + data_pad),
            "{o:?}"
        );
    }
    let counts = counting::stop();

    let s = h.server.stats();
    let n = N as u64;
    assert_eq!(s.channel_data_in - before.channel_data_in, n);
    assert_eq!(s.send_indications_in - before.send_indications_in, n);
    assert_eq!(s.channel_data_out - before.channel_data_out, n);
    assert_eq!(s.data_indications_out - before.data_indications_out, n);
    assert_eq!(
        counts.allocs,
        0,
        "{transport:?}: {} heap allocations in {} forwarded packets",
        counts.allocs,
        4 * N
    );
    assert_eq!(counts.frees, 0);
}

#[test]
fn udp_forwarding_allocates_nothing() {
    forwarding_loop(Transport::Udp, 160);
}

#[test]
fn tcp_forwarding_with_padding_allocates_nothing() {
    // 101 bytes: ChannelData to the client is padded by 3 on a stream.
    forwarding_loop(Transport::Tcp, 101);
}

#[test]
fn forwarding_under_bandwidth_limits_allocates_nothing() {
    // `max-bps` and `bps-capacity` set (high enough that nothing is dropped): the token
    // buckets and the shared capacity budget add no allocation either.
    let h = H::with(|cfg| {
        cfg.max_bps = 1 << 30;
        cfg.bps_capacity = Some(std::sync::Arc::new(switchyard_turn::Capacity::new(
            1 << 32,
            cfg.clock.instant,
        )));
    });
    forwarding_loop_on(h, Transport::Udp, 160);
}

#[test]
fn ipv6_peer_data_indication_allocates_nothing() {
    let mut h = H::with(|cfg| cfg.relay_ips = vec![RELAY_V6.parse().unwrap()]);
    let mut c = client(&h, Transport::Udp);
    let r = h.allocate(&mut c, &[A::Family(0x02)]);
    assert!(r.ok(), "{:?}", r.code());
    let relayed: SocketAddr = r
        .xor_addr(switchyard_stun::attr::XOR_RELAYED_ADDRESS)
        .unwrap();
    let relay = h.relays.id_of(relayed).unwrap();
    let peer = sa("[2001:4860::8888]:40000");
    assert!(h.permit(&mut c, &[peer]).ok());
    let mut buf = vec![0u8; PEER_HEADROOM + 100 + PEER_TAILROOM];
    counting::start();
    for _ in 0..N {
        let o = h.server.handle_peer(
            h.now,
            relay,
            peer,
            &mut buf,
            PEER_HEADROOM..PEER_HEADROOM + 100,
        );
        assert!(
            matches!(o, PeerOutcome::ToClient { ref range, .. } if range.len() == 20 + 24 + 4 + 100),
            "{o:?}"
        );
    }
    assert_eq!(counting::stop().allocs, 0);
}

#[test]
fn unauthenticated_flood_allocates_nothing() {
    // 401 challenges (nonce MAC, reply build) and, past the limit, rate-limited drops.
    let mut h = H::new();
    let mut c = Client::new("203.0.113.5:10000", "x", "y");
    let tid = c.next_tid();
    let allocate = c.build(Class::Request, Method::ALLOCATE, tid, &[udp()]);
    let mut reply = vec![0u8; 1500];
    counting::start();
    for i in 0..N {
        let mut from = c.addr;
        from.remote.set_port(10000 + (i % 1000) as u16);
        let o = h
            .server
            .handle_client(h.now, from, &allocate, &mut reply, &mut h.relays);
        assert!(matches!(
            o,
            ClientOutcome::Reply { .. } | ClientOutcome::Drop(_)
        ));
    }
    assert_eq!(counting::stop().allocs, 0);
    assert_eq!(h.server.stats().errors_sent(401), 10);
}
