//! Deterministic in-memory harness: a [`Server`], a fake [`RelaySockets`], a virtual clock
//! and TURN clients that speak through `switchyard_stun`'s builder. No sockets, no sleeping:
//! hours of lifetimes run in microseconds.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use switchyard_stun::{Class, Message, MessageBuilder, MessageType, Method, TransactionId, attr};
use switchyard_turn::{
    Auth, BindError, ClientAddr, ClientOutcome, ClockAnchor, PEER_HEADROOM, PEER_TAILROOM,
    PeerOutcome, RelayId, RelaySockets, Server, ServerConfig, SocketToken, Transport, auth,
};

pub const REALM: &str = "turn.example.org";
pub const SECRET: &str = "n0t4ctuAllymatr1Xd0TorgSshar3d5ecret4obvIousreAsons";
/// Unix time at the harness's start.
pub const T0: u64 = 1_699_999_000;
pub const LISTEN: &str = "5.9.0.7:3478";
pub const RELAY_V4: &str = "5.9.0.7";
pub const RELAY_V6: &str = "2a01:4f8::7";

/// Relay sockets as a map; `taken` simulates ports held by other processes.
#[derive(Default, Debug)]
pub struct FakeRelays {
    next: u32,
    pub bound: HashMap<RelayId, SocketAddr>,
    pub taken: HashSet<SocketAddr>,
    pub closed: Vec<RelayId>,
    pub fail_all: bool,
    /// Relays bound as TCP listeners (RFC 6062).
    pub tcp: HashSet<RelayId>,
}

impl RelaySockets for FakeRelays {
    fn bind(&mut self, addr: SocketAddr) -> Result<RelayId, BindError> {
        assert_ne!(addr.port(), 0, "the core must pick the port");
        if self.fail_all {
            return Err(BindError::Other);
        }
        if self.taken.contains(&addr) || self.bound.values().any(|a| *a == addr) {
            return Err(BindError::InUse);
        }
        self.next += 1;
        let id = RelayId(self.next);
        self.bound.insert(id, addr);
        Ok(id)
    }

    fn bind_tcp(&mut self, addr: SocketAddr) -> Result<RelayId, BindError> {
        let id = self.bind(addr)?;
        self.tcp.insert(id);
        Ok(id)
    }

    fn close(&mut self, id: RelayId) {
        self.tcp.remove(&id);
        assert!(self.bound.remove(&id).is_some(), "double close of {id:?}");
        self.closed.push(id);
    }
}

impl FakeRelays {
    pub fn id_of(&self, addr: SocketAddr) -> Option<RelayId> {
        self.bound
            .iter()
            .find(|(_, a)| **a == addr)
            .map(|(id, _)| *id)
    }
}

/// One attribute of a request the test builds.
#[derive(Clone, Debug)]
pub enum A {
    Transport(u8),
    Lifetime(u32),
    Peer(SocketAddr),
    Channel(u16),
    EvenPort(bool),
    Token([u8; 8]),
    Family(u8),
    AddFamily(u8),
    Data(Vec<u8>),
    DontFragment,
    Raw(u16, Vec<u8>),
}

pub fn udp() -> A {
    A::Transport(17)
}

pub struct Client {
    pub addr: ClientAddr,
    pub username: String,
    pub key: [u8; 16],
    pub realm: String,
    pub nonce: Vec<u8>,
    pub sha256: bool,
    pub fingerprint: bool,
    /// Leave MESSAGE-INTEGRITY off even when a nonce is known.
    pub anonymous: bool,
    tid: u32,
}

impl Client {
    pub fn new(remote: &str, username: &str, password: &str) -> Client {
        Client::on(Transport::Udp, remote, username, password)
    }

    pub fn on(transport: Transport, remote: &str, username: &str, password: &str) -> Client {
        Client {
            addr: ClientAddr {
                transport,
                remote: remote.parse().unwrap(),
                local: LISTEN.parse().unwrap(),
                token: SocketToken(7),
            },
            username: username.to_owned(),
            key: auth::long_term_key(username, REALM, password),
            realm: REALM.to_owned(),
            nonce: Vec::new(),
            sha256: false,
            fingerprint: false,
            anonymous: false,
            tid: 0,
        }
    }

    /// A Synapse-style REST client: `<expiry>:<mxid>` and base64(HMAC-SHA1(secret, name)).
    pub fn rest(remote: &str, expiry: u64, mxid: &str, secret: &str) -> Client {
        let username = format!("{expiry}:{mxid}");
        let password = auth::rest_password(secret.as_bytes(), &username);
        Client::new(remote, &username, &password)
    }

    pub fn next_tid(&mut self) -> TransactionId {
        self.tid += 1;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&self.tid.to_be_bytes());
        t[4..8].copy_from_slice(&self.addr.remote.port().to_be_bytes().repeat(2));
        TransactionId(t)
    }

    /// Build a message; signed when a nonce is known and not `anonymous`.
    pub fn build(&self, class: Class, method: Method, tid: TransactionId, attrs: &[A]) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let mut b = MessageBuilder::new(&mut buf, MessageType { class, method }, tid).unwrap();
        for a in attrs {
            match a {
                A::Transport(p) => b.add(attr::REQUESTED_TRANSPORT, &[*p, 0, 0, 0]).unwrap(),
                A::Lifetime(s) => b.add_u32(attr::LIFETIME, *s).unwrap(),
                A::Peer(p) => b.add_xor_address(attr::XOR_PEER_ADDRESS, *p).unwrap(),
                A::Channel(n) => {
                    let v = n.to_be_bytes();
                    b.add(attr::CHANNEL_NUMBER, &[v[0], v[1], 0, 0]).unwrap()
                }
                A::EvenPort(r) => b
                    .add(attr::EVEN_PORT, &[if *r { 0x80 } else { 0 }])
                    .unwrap(),
                A::Token(t) => b.add(attr::RESERVATION_TOKEN, t).unwrap(),
                A::Family(f) => b
                    .add(attr::REQUESTED_ADDRESS_FAMILY, &[*f, 0, 0, 0])
                    .unwrap(),
                A::AddFamily(f) => b
                    .add(attr::ADDITIONAL_ADDRESS_FAMILY, &[*f, 0, 0, 0])
                    .unwrap(),
                A::Data(d) => b.add(attr::DATA, d).unwrap(),
                A::DontFragment => b.add(attr::DONT_FRAGMENT, &[]).unwrap(),
                A::Raw(t, v) => b.add(*t, v).unwrap(),
            }
        }
        if class == Class::Request && !self.nonce.is_empty() && !self.anonymous {
            b.add(attr::USERNAME, self.username.as_bytes()).unwrap();
            b.add(attr::REALM, self.realm.as_bytes()).unwrap();
            b.add(attr::NONCE, &self.nonce).unwrap();
            if self.sha256 {
                b.add_message_integrity_sha256(&self.key).unwrap();
            } else {
                b.add_message_integrity(&self.key).unwrap();
            }
        }
        if self.fingerprint {
            b.add_fingerprint().unwrap();
        }
        let n = b.finish();
        buf.truncate(n);
        buf
    }
}

/// A reply the server produced (or the drop).
#[derive(Debug, Clone)]
pub struct Resp {
    pub outcome: ClientOutcome,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn msg(&self) -> Message<'_> {
        Message::parse(&self.bytes).expect("server reply parses")
    }

    pub fn is_reply(&self) -> bool {
        matches!(
            self.outcome,
            ClientOutcome::Reply { .. } | ClientOutcome::ReplyFrom { .. }
        )
    }

    pub fn class(&self) -> Class {
        self.msg().class()
    }

    pub fn code(&self) -> Option<u16> {
        if !self.is_reply() {
            return None;
        }
        let v = self.msg().get(attr::ERROR_CODE)?;
        Some(u16::from(v[2] & 7) * 100 + u16::from(v[3]))
    }

    pub fn ok(&self) -> bool {
        self.is_reply() && self.class() == Class::Success
    }

    pub fn xor_addr(&self, typ: u16) -> Option<SocketAddr> {
        let m = self.msg();
        decode_xor(m.get(typ)?, &m.transaction_id().0)
    }

    pub fn lifetime(&self) -> Option<u32> {
        let v = self.msg().get(attr::LIFETIME)?;
        Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }

    pub fn attr_types(&self) -> Vec<u16> {
        self.msg().attributes().map(|a| a.typ).collect()
    }

    pub fn has(&self, typ: u16) -> bool {
        self.msg().get(typ).is_some() || self.attr_types().contains(&typ)
    }
}

pub fn decode_xor(v: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    let cookie = 0x2112_A442u32.to_be_bytes();
    let port = u16::from_be_bytes([v[2], v[3]]) ^ 0x2112;
    match v[1] {
        1 => {
            let mut o = [0u8; 4];
            for i in 0..4 {
                o[i] = v[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::from(o), port))
        }
        2 => {
            let mut o = [0u8; 16];
            for i in 0..16 {
                let k = if i < 4 { cookie[i] } else { tid[i - 4] };
                o[i] = v[4 + i] ^ k;
            }
            Some(SocketAddr::new(IpAddr::from(o), port))
        }
        _ => None,
    }
}

pub struct H {
    pub server: Server,
    pub relays: FakeRelays,
    pub now: Instant,
    pub start: Instant,
}

pub fn base_config(start: Instant) -> ServerConfig {
    let mut cfg = ServerConfig::new(
        REALM,
        ClockAnchor {
            instant: start,
            unix_secs: T0,
        },
    );
    cfg.auth = Auth::LongTerm {
        users: vec![],
        secrets: vec![SECRET.to_owned()],
        separator: ':',
    };
    cfg.nonce_key = [42; 32];
    cfg.port_range = 50000..=50099;
    cfg
}

impl H {
    pub fn new() -> H {
        H::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut ServerConfig)) -> H {
        let start = Instant::now();
        let mut cfg = base_config(start);
        f(&mut cfg);
        H {
            server: Server::with_seed(cfg, 1),
            relays: FakeRelays::default(),
            now: start,
            start,
        }
    }

    pub fn unix_now(&self) -> u64 {
        T0 + (self.now - self.start).as_secs()
    }

    /// Move the virtual clock and run due timers, at every deadline on the way (as an
    /// event loop that honours `poll_timeout` would).
    pub fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.server.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.server.handle_timeout(self.now, &mut self.relays);
        }
        self.now = target;
        self.server.handle_timeout(self.now, &mut self.relays);
    }

    pub fn raw(&mut self, from: ClientAddr, bytes: &[u8]) -> Resp {
        let mut reply = vec![0u8; 1500];
        let outcome =
            self.server
                .handle_client(self.now, from, bytes, &mut reply, &mut self.relays);
        let bytes = match &outcome {
            ClientOutcome::Reply { len } | ClientOutcome::ReplyFrom { len, .. } => {
                reply[..*len].to_vec()
            }
            ClientOutcome::ToPeer { payload, .. } => bytes[payload.clone()].to_vec(),
            ClientOutcome::Drop(_) | ClientOutcome::Pending => Vec::new(),
        };
        Resp { outcome, bytes }
    }

    /// One request, no retry.
    pub fn once(&mut self, c: &mut Client, method: Method, attrs: &[A]) -> Resp {
        let tid = c.next_tid();
        let bytes = c.build(Class::Request, method, tid, attrs);
        self.raw(c.addr, &bytes)
    }

    /// A request as a TURN client sends it: on 401/438 take REALM+NONCE and retry once.
    pub fn request(&mut self, c: &mut Client, method: Method, attrs: &[A]) -> Resp {
        let r = self.once(c, method, attrs);
        if matches!(r.code(), Some(401 | 438)) && !c.anonymous {
            let m = r.msg();
            let nonce = m.get(attr::NONCE).expect("401/438 carries NONCE").to_vec();
            assert_eq!(m.get(attr::REALM), Some(REALM.as_bytes()));
            if nonce != c.nonce {
                c.nonce = nonce;
                return self.once(c, method, attrs);
            }
        }
        r
    }

    pub fn allocate(&mut self, c: &mut Client, extra: &[A]) -> Resp {
        let mut attrs = vec![udp()];
        attrs.extend_from_slice(extra);
        self.request(c, Method::ALLOCATE, &attrs)
    }

    /// Allocate and return the relayed address, panicking on failure.
    pub fn alloc_ok(&mut self, c: &mut Client) -> SocketAddr {
        let r = self.allocate(c, &[]);
        assert!(r.ok(), "allocate failed: {:?}", r.code());
        r.xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap()
    }

    pub fn permit(&mut self, c: &mut Client, peers: &[SocketAddr]) -> Resp {
        let attrs: Vec<A> = peers.iter().map(|p| A::Peer(*p)).collect();
        self.request(c, Method::CREATE_PERMISSION, &attrs)
    }

    pub fn bind(&mut self, c: &mut Client, number: u16, peer: SocketAddr) -> Resp {
        self.request(
            c,
            Method::CHANNEL_BIND,
            &[A::Channel(number), A::Peer(peer)],
        )
    }

    pub fn send_indication(&mut self, c: &mut Client, peer: SocketAddr, data: &[u8]) -> Resp {
        let tid = c.next_tid();
        let bytes = c.build(
            Class::Indication,
            Method::SEND,
            tid,
            &[A::Peer(peer), A::Data(data.to_vec())],
        );
        self.raw(c.addr, &bytes)
    }

    pub fn channel_data(&mut self, c: &Client, number: u16, data: &[u8]) -> Resp {
        let mut bytes = number.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(data.len() as u16).to_be_bytes());
        bytes.extend_from_slice(data);
        self.raw(c.addr, &bytes)
    }

    /// A datagram from `peer` to the relay socket bound at `relay_bound`; returns what the
    /// client would receive.
    pub fn peer_sends(&mut self, relay: RelayId, peer: SocketAddr, data: &[u8]) -> PeerResult {
        let mut buf = vec![0xEEu8; PEER_HEADROOM + data.len() + PEER_TAILROOM];
        buf[PEER_HEADROOM..PEER_HEADROOM + data.len()].copy_from_slice(data);
        let range = PEER_HEADROOM..PEER_HEADROOM + data.len();
        let outcome = self
            .server
            .handle_peer(self.now, relay, peer, &mut buf, range);
        let bytes = match &outcome {
            PeerOutcome::ToClient { range, .. } => buf[range.clone()].to_vec(),
            PeerOutcome::Drop(_) => Vec::new(),
        };
        PeerResult { outcome, bytes }
    }
}

pub struct PeerResult {
    pub outcome: PeerOutcome,
    pub bytes: Vec<u8>,
}

impl PeerResult {
    pub fn delivered(&self) -> bool {
        matches!(self.outcome, PeerOutcome::ToClient { .. })
    }
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
