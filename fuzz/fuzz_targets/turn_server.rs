//! Drives `switchyard_turn::Server` with an arbitrary sequence of client datagrams, peer
//! datagrams, time steps and well-formed authenticated requests (built with the stun
//! builder and a valid nonce, so the fuzzer gets past authentication). It must never panic,
//! and the core's bookkeeping must agree with the fake relay sockets.

#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchyard_stun::{Class, MessageBuilder, MessageType, Method, TransactionId, attr};
use switchyard_turn::{
    Auth, BindError, ClientAddr, ClientOutcome, ClockAnchor, PEER_HEADROOM, PEER_TAILROOM,
    PeerOutcome, RelayId, RelaySockets, Server, ServerConfig, SocketToken, Transport, auth, nonce,
};

const REALM: &str = "fuzz.example";
const SECRET: &str = "fuzz-secret";
const T0: u64 = 1_700_000_000;

#[derive(Default)]
struct Relays {
    next: u32,
    bound: HashMap<RelayId, SocketAddr>,
    fail_every: u8,
    calls: u8,
}

impl RelaySockets for Relays {
    fn bind(&mut self, addr: SocketAddr) -> Result<RelayId, BindError> {
        assert_ne!(addr.port(), 0);
        self.calls = self.calls.wrapping_add(1);
        if self.fail_every != 0 && self.calls % self.fail_every == 0 {
            return Err(BindError::InUse);
        }
        if self.bound.values().any(|a| *a == addr) {
            return Err(BindError::InUse);
        }
        self.next += 1;
        self.bound.insert(RelayId(self.next), addr);
        Ok(RelayId(self.next))
    }

    fn close(&mut self, id: RelayId) {
        assert!(
            self.bound.remove(&id).is_some(),
            "close of an unknown relay"
        );
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Raw bytes from one of a few clients.
    Raw {
        who: u8,
        bytes: Vec<u8>,
    },
    /// Raw bytes from a peer to one of the bound relays.
    Peer {
        relay: u8,
        peer: u8,
        payload: Vec<u8>,
        headroom: u8,
        tailroom: u8,
    },
    Advance {
        secs: u16,
        millis: u16,
    },
    Allocate {
        who: u8,
        lifetime: Option<u32>,
        even: Option<bool>,
        v6: Option<bool>,
        sha256: bool,
        fingerprint: bool,
    },
    Refresh {
        who: u8,
        lifetime: Option<u32>,
    },
    Permission {
        who: u8,
        peers: Vec<u8>,
    },
    ChannelBind {
        who: u8,
        number: u16,
        peer: u8,
    },
    Send {
        who: u8,
        peer: u8,
        data: Vec<u8>,
    },
    ChannelData {
        who: u8,
        number: u16,
        data: Vec<u8>,
        pad: u8,
    },
    /// An authenticated request of any method with arbitrary extra attributes.
    Free {
        who: u8,
        method: u16,
        attrs: Vec<(u16, Vec<u8>)>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    user_quota: u8,
    tiny_ports: bool,
    fingerprint: bool,
    fail_every: u8,
    ops: Vec<Op>,
}

fn client(who: u8) -> ClientAddr {
    let transport = match who % 4 {
        0 | 1 => Transport::Udp,
        2 => Transport::Tcp,
        _ => Transport::Tls,
    };
    ClientAddr {
        transport,
        remote: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, who % 6)),
            5000 + u16::from(who % 6),
        ),
        local: "198.51.100.7:3478".parse().unwrap(),
        token: SocketToken(u32::from(who)),
    }
}

fn peer(n: u8) -> SocketAddr {
    let ips: [IpAddr; 12] = [
        IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
        IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
        IpAddr::V6("2a00:1450::1".parse::<Ipv6Addr>().unwrap()),
        IpAddr::V6("::ffff:127.0.0.1".parse::<Ipv6Addr>().unwrap()),
        IpAddr::V6("64:ff9b::808:808".parse::<Ipv6Addr>().unwrap()),
        IpAddr::V6("2002:a01:203::1".parse::<Ipv6Addr>().unwrap()),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6("fe80::1".parse::<Ipv6Addr>().unwrap()),
    ];
    SocketAddr::new(ips[usize::from(n) % ips.len()], 1000 + u16::from(n / 12))
}

fn username(who: u8) -> String {
    format!("{}:@u{}:example.org", T0 + 86_400, who % 3)
}

struct Driver {
    server: Server,
    relays: Relays,
    start: Instant,
    now: Instant,
    tid: u32,
    reply: Vec<u8>,
    key: [u8; 32],
}

impl Driver {
    fn unix(&self) -> u64 {
        T0 + (self.now - self.start).as_secs()
    }

    fn client_bytes(&mut self, from: ClientAddr, bytes: &[u8]) {
        let out =
            self.server
                .handle_client(self.now, from, bytes, &mut self.reply, &mut self.relays);
        match out {
            ClientOutcome::Reply { len } | ClientOutcome::ReplyFrom { len, .. } => {
                assert!(len <= self.reply.len());
                assert!(switchyard_stun::Message::parse(&self.reply[..len]).is_ok());
            }
            ClientOutcome::ToPeer { relay, payload, .. } => {
                assert!(payload.end <= bytes.len() && payload.start <= payload.end);
                assert!(self.relays.bound.contains_key(&relay));
            }
            ClientOutcome::Drop(_) | ClientOutcome::Pending => {}
        }
    }

    /// A signed request with a nonce valid for this client right now.
    fn request(
        &mut self,
        who: u8,
        method: Method,
        sha256: bool,
        fp: bool,
        add: impl FnOnce(&mut MessageBuilder<'_>),
    ) {
        let from = client(who);
        self.tid += 1;
        let mut tid = [0u8; 12];
        tid[..4].copy_from_slice(&self.tid.to_be_bytes());
        let name = username(who);
        let password = auth::rest_password(SECRET.as_bytes(), &name);
        let key = auth::long_term_key(&name, REALM, &password);
        let n = nonce::issue(&self.key, from.remote, self.unix());
        let mut buf = vec![0u8; 2048];
        let len = {
            let Ok(mut b) = MessageBuilder::new(
                &mut buf,
                MessageType {
                    class: Class::Request,
                    method,
                },
                TransactionId(tid),
            ) else {
                return;
            };
            add(&mut b);
            let ok = b.add(attr::USERNAME, name.as_bytes()).is_ok()
                && b.add(attr::REALM, REALM.as_bytes()).is_ok()
                && b.add(attr::NONCE, &n).is_ok()
                && if sha256 {
                    b.add_message_integrity_sha256(&key).is_ok()
                } else {
                    b.add_message_integrity(&key).is_ok()
                }
                && (!fp || b.add_fingerprint().is_ok());
            if !ok {
                return;
            }
            b.finish()
        };
        self.client_bytes(from, &buf[..len]);
    }
}

fuzz_target!(|input: Input| {
    let start = Instant::now();
    let mut cfg = ServerConfig::new(
        REALM,
        ClockAnchor {
            instant: start,
            unix_secs: T0,
        },
    );
    cfg.auth = Auth::LongTerm {
        users: vec![],
        secrets: vec![SECRET.into()],
        separator: ':',
    };
    cfg.nonce_key = [9; 32];
    cfg.user_quota = u32::from(input.user_quota % 4);
    cfg.fingerprint = input.fingerprint;
    cfg.port_range = if input.tiny_ports {
        50000..=50003
    } else {
        50000..=50999
    };
    cfg.relay_ips = vec![
        "198.51.100.7".parse().unwrap(),
        "2a01:4f8::7".parse().unwrap(),
    ];
    let mut d = Driver {
        server: Server::with_seed(cfg, 7),
        relays: Relays {
            fail_every: input.fail_every % 8,
            ..Relays::default()
        },
        start,
        now: start,
        tid: 0,
        reply: vec![0u8; 1500],
        key: [9; 32],
    };
    for op in input.ops.into_iter().take(300) {
        match op {
            Op::Raw { who, bytes } => d.client_bytes(client(who), &bytes),
            Op::Peer {
                relay,
                peer: p,
                payload,
                headroom,
                tailroom,
            } => {
                let ids: Vec<RelayId> = d.relays.bound.keys().copied().collect();
                let id = if ids.is_empty() {
                    RelayId(u32::from(relay))
                } else {
                    ids[usize::from(relay) % ids.len()]
                };
                let head = usize::from(headroom) % (PEER_HEADROOM + 1);
                let tail = usize::from(tailroom) % (PEER_TAILROOM + 1);
                let mut buf = vec![0u8; head + payload.len() + tail];
                buf[head..head + payload.len()].copy_from_slice(&payload);
                let range = head..head + payload.len();
                if let PeerOutcome::ToClient { range, .. } =
                    d.server.handle_peer(d.now, id, peer(p), &mut buf, range)
                {
                    assert!(range.end <= buf.len());
                }
            }
            Op::Advance { secs, millis } => {
                d.now +=
                    Duration::from_secs(u64::from(secs)) + Duration::from_millis(u64::from(millis));
                d.server.handle_timeout(d.now, &mut d.relays);
                if let Some(t) = d.server.poll_timeout() {
                    // Everything due has been handled, except stale heap entries that are
                    // skipped lazily; a second call must be a no-op.
                    let _ = t;
                    d.server.handle_timeout(d.now, &mut d.relays);
                }
            }
            Op::Allocate {
                who,
                lifetime,
                even,
                v6,
                sha256,
                fingerprint,
            } => {
                d.request(who, Method::ALLOCATE, sha256, fingerprint, |b| {
                    let _ = b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
                    if let Some(l) = lifetime {
                        let _ = b.add_u32(attr::LIFETIME, l);
                    }
                    if let Some(r) = even {
                        let _ = b.add(attr::EVEN_PORT, &[if r { 0x80 } else { 0 }]);
                    }
                    if let Some(v6) = v6 {
                        let _ = b.add(
                            attr::REQUESTED_ADDRESS_FAMILY,
                            &[if v6 { 2 } else { 1 }, 0, 0, 0],
                        );
                    }
                });
            }
            Op::Refresh { who, lifetime } => d.request(who, Method::REFRESH, false, false, |b| {
                if let Some(l) = lifetime {
                    let _ = b.add_u32(attr::LIFETIME, l);
                }
            }),
            Op::Permission { who, peers } => {
                d.request(who, Method::CREATE_PERMISSION, false, false, |b| {
                    for p in peers.into_iter().take(20) {
                        let _ = b.add_xor_address(attr::XOR_PEER_ADDRESS, peer(p));
                    }
                })
            }
            Op::ChannelBind {
                who,
                number,
                peer: p,
            } => d.request(who, Method::CHANNEL_BIND, false, false, |b| {
                let n = number.to_be_bytes();
                let _ = b.add(attr::CHANNEL_NUMBER, &[n[0], n[1], 0, 0]);
                let _ = b.add_xor_address(attr::XOR_PEER_ADDRESS, peer(p));
            }),
            Op::Send { who, peer: p, data } => {
                let mut buf = vec![0u8; 4096];
                let Ok(mut b) = MessageBuilder::new(
                    &mut buf,
                    MessageType {
                        class: Class::Indication,
                        method: Method::SEND,
                    },
                    TransactionId([1; 12]),
                ) else {
                    continue;
                };
                let _ = b.add_xor_address(attr::XOR_PEER_ADDRESS, peer(p));
                let _ = b.add(attr::DATA, &data);
                let n = b.finish();
                d.client_bytes(client(who), &buf[..n]);
            }
            Op::ChannelData {
                who,
                number,
                data,
                pad,
            } => {
                let mut bytes = number.to_be_bytes().to_vec();
                bytes.extend_from_slice(&(data.len().min(65535) as u16).to_be_bytes());
                bytes.extend_from_slice(&data);
                bytes.extend(std::iter::repeat_n(0, usize::from(pad % 4)));
                d.client_bytes(client(who), &bytes);
            }
            Op::Free { who, method, attrs } => {
                d.request(who, Method(method & 0x0FFF), false, false, |b| {
                    for (t, v) in attrs.into_iter().take(8) {
                        if matches!(
                            t,
                            attr::MESSAGE_INTEGRITY
                                | attr::MESSAGE_INTEGRITY_SHA256
                                | attr::FINGERPRINT
                        ) {
                            continue;
                        }
                        let _ = b.add(t, &v);
                    }
                })
            }
        }
        // Bookkeeping agrees with the sockets: one relay socket per allocation.
        assert_eq!(d.server.allocation_count(), d.relays.bound.len());
    }
    // Everything expires eventually and every socket is closed.
    d.now += Duration::from_secs(7200);
    d.server.handle_timeout(d.now, &mut d.relays);
    assert_eq!(d.server.allocation_count(), 0);
    assert!(d.relays.bound.is_empty());
});
