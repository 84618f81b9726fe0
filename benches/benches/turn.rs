//! TURN core costs on the data path: the ChannelData forward decision (client → peer), the
//! in-place ChannelData framing of a peer datagram (peer → client), a Send indication
//! (client → peer, through the STUN parser) and the peer policy check.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_stun::{Class, Message, MessageBuilder, MessageType, Method, TransactionId, attr};
use switchyard_turn::{
    Auth, BindError, ClientAddr, ClientOutcome, ClockAnchor, PEER_HEADROOM, PEER_TAILROOM,
    PeerOutcome, PeerPolicy, RelayId, RelaySockets, Server, ServerConfig, SocketToken, Transport,
    auth,
};

const REALM: &str = "turn.example.org";
const SECRET: &str = "bench-secret";
const CHANNEL: u16 = 0x4000;
const PAYLOAD: usize = 160;

struct Relays(u32);

impl RelaySockets for Relays {
    fn bind(&mut self, _addr: SocketAddr) -> Result<RelayId, BindError> {
        self.0 += 1;
        Ok(RelayId(self.0))
    }
    fn close(&mut self, _id: RelayId) {}
}

struct Setup {
    server: Server,
    relays: Relays,
    now: Instant,
    client: ClientAddr,
    relay: RelayId,
    bound_peer: SocketAddr,
    other_peer: SocketAddr,
    /// ChannelData and Send indication datagrams from the client.
    channel_data: Vec<u8>,
    send: Vec<u8>,
}

/// A request signed with `key` once a nonce is known; returns the reply.
fn request(
    s: &mut Setup,
    key: &[u8; 16],
    user: &str,
    nonce: &mut Vec<u8>,
    method: Method,
    body: &dyn Fn(&mut MessageBuilder<'_>),
) -> bool {
    let mut reply = [0u8; 1500];
    for round in 0..2u8 {
        let mut buf = [0u8; 512];
        let tid = TransactionId([round, method.0 as u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        let mut b =
            MessageBuilder::new(&mut buf, MessageType::new(Class::Request, method), tid).unwrap();
        body(&mut b);
        if !nonce.is_empty() {
            b.add(attr::USERNAME, user.as_bytes()).unwrap();
            b.add(attr::REALM, REALM.as_bytes()).unwrap();
            b.add(attr::NONCE, nonce).unwrap();
            b.add_message_integrity(key).unwrap();
        }
        let n = b.finish();
        let out = s
            .server
            .handle_client(s.now, s.client, &buf[..n], &mut reply, &mut s.relays);
        let ClientOutcome::Reply { len } = out else {
            panic!("{out:?}");
        };
        let m = Message::parse(&reply[..len]).unwrap();
        if m.class() == Class::Success {
            return true;
        }
        *nonce = m.get(attr::NONCE).unwrap().to_vec();
    }
    false
}

fn setup() -> Setup {
    let now = Instant::now();
    let mut cfg = ServerConfig::new(
        REALM,
        ClockAnchor {
            instant: now,
            unix_secs: 1_700_000_000,
        },
    );
    cfg.auth = Auth::LongTerm {
        users: vec![],
        secrets: vec![SECRET.to_owned()],
        separator: ':',
    };
    cfg.nonce_key = [9; 32];
    let client = ClientAddr {
        transport: Transport::Udp,
        remote: "198.51.100.20:54321".parse().unwrap(),
        local: "203.0.113.7:3478".parse().unwrap(),
        token: SocketToken(0),
    };
    let mut s = Setup {
        server: Server::with_seed(cfg, 1),
        relays: Relays(0),
        now,
        client,
        relay: RelayId(1),
        bound_peer: "8.8.8.8:40000".parse().unwrap(),
        other_peer: "9.9.9.9:41000".parse().unwrap(),
        channel_data: Vec::new(),
        send: Vec::new(),
    };
    let user = "1700003600:@alice:example.org";
    let key = auth::long_term_key(user, REALM, &auth::rest_password(SECRET.as_bytes(), user));
    let mut nonce = Vec::new();
    let (bound, other) = (s.bound_peer, s.other_peer);
    assert!(request(
        &mut s,
        &key,
        user,
        &mut nonce,
        Method::ALLOCATE,
        &|b| { b.add_requested_transport(17).unwrap() }
    ));
    assert!(request(
        &mut s,
        &key,
        user,
        &mut nonce,
        Method::CREATE_PERMISSION,
        &|b| { b.add_xor_address(attr::XOR_PEER_ADDRESS, other).unwrap() }
    ));
    assert!(request(
        &mut s,
        &key,
        user,
        &mut nonce,
        Method::CHANNEL_BIND,
        &|b| {
            b.add(attr::CHANNEL_NUMBER, &[0x40, 0x00, 0, 0]).unwrap();
            b.add_xor_address(attr::XOR_PEER_ADDRESS, bound).unwrap();
        }
    ));
    let payload = [0x5au8; PAYLOAD];
    s.channel_data = CHANNEL.to_be_bytes().to_vec();
    s.channel_data
        .extend_from_slice(&(PAYLOAD as u16).to_be_bytes());
    s.channel_data.extend_from_slice(&payload);
    let mut buf = [0u8; 512];
    let mut b = MessageBuilder::new(
        &mut buf,
        MessageType::new(Class::Indication, Method::SEND),
        TransactionId([7; 12]),
    )
    .unwrap();
    b.add_xor_address(attr::XOR_PEER_ADDRESS, other).unwrap();
    b.add(attr::DATA, &payload).unwrap();
    let n = b.finish();
    s.send = buf[..n].to_vec();
    s
}

fn channel_data_forward(c: &mut Criterion) {
    let mut s = setup();
    let mut reply = [0u8; 1500];
    let mut g = c.benchmark_group("turn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("channel_data_forward", |b| {
        b.iter(|| {
            let out = s.server.handle_client(
                s.now,
                s.client,
                black_box(&s.channel_data),
                &mut reply,
                &mut s.relays,
            );
            debug_assert!(matches!(out, ClientOutcome::ToPeer { .. }));
            black_box(out)
        })
    });
    g.bench_function("send_indication_forward", |b| {
        b.iter(|| {
            let out = s.server.handle_client(
                s.now,
                s.client,
                black_box(&s.send),
                &mut reply,
                &mut s.relays,
            );
            debug_assert!(matches!(out, ClientOutcome::ToPeer { .. }));
            black_box(out)
        })
    });
    let mut buf = vec![0x5au8; PEER_HEADROOM + PAYLOAD + PEER_TAILROOM];
    let range = PEER_HEADROOM..PEER_HEADROOM + PAYLOAD;
    let (relay, bound, other) = (s.relay, s.bound_peer, s.other_peer);
    g.bench_function("peer_to_client", |b| {
        b.iter(|| {
            let out = s
                .server
                .handle_peer(s.now, relay, black_box(bound), &mut buf, range.clone());
            debug_assert!(matches!(out, PeerOutcome::ToClient { .. }));
            black_box(out)
        })
    });
    g.bench_function("peer_to_client_data_indication", |b| {
        b.iter(|| {
            let out = s
                .server
                .handle_peer(s.now, relay, black_box(other), &mut buf, range.clone());
            debug_assert!(matches!(out, PeerOutcome::ToClient { .. }));
            black_box(out)
        })
    });
    g.finish();
}

fn policy_check(c: &mut Criterion) {
    let policy = PeerPolicy::default();
    let addrs: [(&str, IpAddr); 4] = [
        ("public_v4", "8.8.8.8".parse().unwrap()),
        ("private_v4", "10.1.2.3".parse().unwrap()),
        ("v4_mapped_v6", "::ffff:10.1.2.3".parse().unwrap()),
        ("6to4", "2002:0a01:0203::1".parse().unwrap()),
    ];
    let mut g = c.benchmark_group("turn/policy_check");
    g.throughput(Throughput::Elements(1));
    for (name, ip) in addrs {
        g.bench_function(name, |b| b.iter(|| black_box(policy.check(black_box(ip)))));
    }
    g.finish();
}

criterion_group!(benches, channel_data_forward, policy_check);
criterion_main!(benches);
