//! Message handling: the [`Server`] state machine.

mod nat;
mod tcp;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant};

use switchyard_stun::{
    AddressFamily, BuildError, Class, Integrity, Message, MessageBuilder, MessageType, Method, attr,
};

use crate::allocation::{
    Allocation, Channel, MAX_CHANNELS, MAX_PERMISSIONS, Names, Table, TimerKey,
};
use crate::alternate::Redirector;
use crate::auth::{AuthFailure, Authenticator};
use crate::bandwidth::{Direction, Limiter, OverLimit};
use crate::config::{QuotaExceeded, ServerConfig};
use crate::mobility::{Ticket, Tickets};
use crate::nonce::{self, NonceCheck};
use crate::policy::{DenyClass, PeerPolicy};
use crate::ports::{PortWish, Ports, RESERVATION_LIFETIME};
use crate::tcp_relay::TcpRelay;
use crate::{
    BindError, ClientAddr, ClientOutcome, DropReason, Event, FreeReason, PeerOutcome, RefuseReason,
    RelayId, RelaySockets, Stats,
};

mod reconfigure;

const MAGIC_COOKIE: u32 = 0x2112_A442;
/// RFC 8656 §7.2: REQUESTED-TRANSPORT value for UDP (IANA protocol number 17).
const PROTO_UDP: u8 = 17;
/// RFC 6062 §6.1: REQUESTED-TRANSPORT value for TCP (IANA protocol number 6).
const PROTO_TCP: u8 = 6;
/// Data indication: method 0x007, class indication (RFC 8656 §11.6 / RFC 8489 §5).
const DATA_INDICATION: u16 = 0x0017;
/// ADDITIONAL-ADDRESS-FAMILY as coturn 4.6 sends it (before RFC 8656 assigned 0x8000).
const LEGACY_ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8032;
/// How many XOR-PEER-ADDRESS attributes one CreatePermission may carry.
const MAX_PEERS_PER_REQUEST: usize = 16;
/// Bind attempts before an Allocate gives up with 508.
const BIND_ATTEMPTS: u32 = 16;

const BINDING_ATTRS: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::REALM,
    attr::NONCE,
    attr::PRIORITY,
    attr::USE_CANDIDATE,
];
const ALLOCATE_ATTRS: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::REALM,
    attr::NONCE,
    attr::REQUESTED_TRANSPORT,
    attr::LIFETIME,
    attr::DONT_FRAGMENT,
    attr::EVEN_PORT,
    attr::RESERVATION_TOKEN,
    attr::REQUESTED_ADDRESS_FAMILY,
    attr::MOBILITY_TICKET,
];
const REFRESH_ATTRS: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::REALM,
    attr::NONCE,
    attr::LIFETIME,
    attr::REQUESTED_ADDRESS_FAMILY,
    attr::MOBILITY_TICKET,
];
const PERMISSION_ATTRS: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::REALM,
    attr::NONCE,
    attr::XOR_PEER_ADDRESS,
];
const CHANNEL_BIND_ATTRS: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::REALM,
    attr::NONCE,
    attr::CHANNEL_NUMBER,
    attr::XOR_PEER_ADDRESS,
];
const CONNECT_ATTRS: &[u16] = &[
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::MESSAGE_INTEGRITY_SHA256,
    attr::REALM,
    attr::NONCE,
    attr::XOR_PEER_ADDRESS,
];
const SEND_ATTRS: &[u16] = &[attr::XOR_PEER_ADDRESS, attr::DATA, attr::DONT_FRAGMENT];

/// The reason phrase of an error response. Replies to unauthenticated requests have none
/// unless `include_reason_string` is set (they are what a reflection attack gets amplified
/// by); others carry short phrases (turn-anchors §3.6).
fn reason(code: u16, unauthenticated: bool, include: bool) -> &'static str {
    if unauthenticated && !include {
        return "";
    }
    match code {
        300 => "Try Alternate",
        400 => "Bad Request",
        401 if include => "Unauthorized",
        401 => "",
        403 => "Forbidden",
        405 => "Mobility Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        446 => "Connection Already Exists",
        447 => "Connection Timeout or Failure",
        486 => "Allocation Quota Reached",
        508 => "Insufficient Capacity",
        _ => "Server Error",
    }
}

/// SplitMix64: fast, seedable, good enough for port choice, reservation tokens and Data
/// indication transaction ids (none of which protect a secret; auth uses HMAC keys).
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Buckets of the unauthenticated-reply limiter (coturn's `unauthorized-ratelimit` table
/// has 4096 too).
const LIMITER_BUCKETS: usize = 4096;

/// Per-source-IP limit on replies to unauthenticated requests over UDP (coturn
/// `unauthorized-ratelimit`, on by default here): a fixed window of one (Unix) second per
/// bucket, buckets chosen by a keyed hash of the source IP (an IPv6 source by its /64, since
/// one host owns a whole /64). No allocation after construction, no lock (the table is the
/// worker's own).
///
/// Two IPs that share a bucket share its budget within a second; the hash is keyed with the
/// server's random seed, so an attacker cannot aim a flood at a victim's bucket from other
/// addresses, and a collision can only make replies rarer, never exceed the limit for an IP.
#[derive(Debug)]
struct UnauthLimiter {
    /// `(second, count)` per bucket.
    buckets: Box<[(u32, u32)]>,
    key: u64,
    limit: u32,
}

impl UnauthLimiter {
    fn new(limit: u32, key: u64) -> Self {
        UnauthLimiter {
            buckets: if limit == 0 {
                Box::default()
            } else {
                vec![(0, 0); LIMITER_BUCKETS].into_boxed_slice()
            },
            key,
            limit,
        }
    }

    #[inline]
    fn bucket(&self, ip: IpAddr) -> usize {
        let bits = match ip.to_canonical() {
            IpAddr::V4(v4) => u64::from(u32::from(v4)),
            IpAddr::V6(v6) => (u128::from(v6) >> 64) as u64 ^ 0x6666_6666_0000_0000,
        };
        // SplitMix64's finaliser over the keyed address.
        let mut z = bits ^ self.key;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z as usize) & (LIMITER_BUCKETS - 1)
    }

    /// Count one reply to `ip` in `second`; false when the limit for that second is spent.
    #[inline]
    fn allow(&mut self, ip: IpAddr, second: u32) -> bool {
        if self.limit == 0 {
            return true;
        }
        let i = self.bucket(ip);
        let b = &mut self.buckets[i];
        if b.0 != second {
            *b = (second, 0);
        }
        if b.1 >= self.limit {
            return false;
        }
        b.1 += 1;
        true
    }
}

/// How a response is signed.
#[derive(Copy, Clone, Debug)]
struct Sign {
    key: Option<[u8; 16]>,
    sha256: bool,
    fingerprint: bool,
    /// A reply to a request that has not passed authentication (or needs none, like
    /// Binding): no SOFTWARE on errors, no reason phrase unless `include_reason_string`.
    unauthenticated: bool,
}

/// A request that passed authentication.
#[derive(Clone, Debug)]
struct Authed {
    username: String,
    quota_user: String,
    key: Option<[u8; 16]>,
    sign: Sign,
}

/// Why authentication did not pass: the response to send.
enum AuthReject {
    /// 400 without MI.
    BadRequest,
    /// 401 with REALM + NONCE, no MI.
    Unauthorized(Option<(String, AuthFailure)>),
    /// 438 with REALM + NONCE, no MI.
    StaleNonce,
}

/// The TURN server core for one worker. See the crate docs for the driving contract.
pub struct Server {
    cfg: ServerConfig,
    policy: PeerPolicy,
    auth: Authenticator,
    auth_enabled: bool,
    table: Table,
    ports: Ports,
    rng: Rng,
    events: VecDeque<Event>,
    stats: Stats,
    channel_max: u16,
    limiter: UnauthLimiter,
    bandwidth: Limiter,
    /// `alternate-server` lists (300 Try Alternate).
    redirector: Redirector,
    /// RFC 8016 mobility tickets.
    tickets: Tickets,
    /// RFC 6062 TCP allocations and their peer connections.
    tcp: TcpRelay,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("realm", &self.cfg.realm)
            .field("allocations", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Events queued beyond this are dropped (and counted).
    pub const EVENT_CAPACITY: usize = 1024;

    /// A server seeded from the OS random source.
    pub fn new(config: ServerConfig) -> Self {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            // No OS randomness: derive the seed from the (secret) nonce key. Ports and tokens
            // only lose unpredictability across restarts, not correctness.
            for (i, b) in config.nonce_key.iter().enumerate() {
                seed[i % 8] ^= b.rotate_left(i as u32);
            }
        }
        Self::with_seed(config, u64::from_le_bytes(seed))
    }

    /// A server whose random choices (relay ports, reservation tokens, Data indication
    /// transaction ids) follow `seed`, for tests and fuzzing.
    pub fn with_seed(config: ServerConfig, seed: u64) -> Self {
        let mut policy = config.policy.clone();
        if policy.relay_ports().is_none() {
            policy.set_relay_ports(config.port_range.clone());
        }
        let auth_enabled = !config.no_auth && !matches!(config.auth, crate::Auth::None);
        let auth = Authenticator::new(&config.auth, &config.realm);
        let channel_max = if config.rfc5766_channel_numbers {
            0x7FFE
        } else {
            0x4FFF
        };
        // A key of its own, so the port and token sequence of a seeded server is unchanged.
        let limiter_key = Rng(seed ^ 0x6C69_6D69_7465_7221).next_u64();
        let limiter = UnauthLimiter::new(config.unauth_rate_limit, limiter_key);
        let bandwidth = Limiter::new(config.max_bps, config.bps_capacity.clone());
        Server {
            ports: Ports::new(
                config.port_range.clone(),
                config.reservations.clone(),
                config.worker_id,
            ),
            policy,
            auth,
            auth_enabled,
            table: Table::default(),
            rng: Rng(seed),
            limiter,
            bandwidth,
            events: VecDeque::new(),
            stats: Stats::default(),
            channel_max,
            redirector: Redirector::new(
                config.alternate_servers.clone(),
                config.tls_alternate_servers.clone(),
            ),
            tickets: Tickets::default(),
            tcp: TcpRelay::default(),
            cfg: config,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Counts bytes the IO layer piped between an RFC 6062 data connection and its peer
    /// connection (they never pass through the core), so traffic metrics include TCP
    /// allocations. Each non-empty hop counts as one "packet", as coturn counts reads.
    pub fn record_stream_relay(&mut self, to_peer: usize, to_client: usize) {
        let s = &mut self.stats;
        if to_peer > 0 {
            s.client_packets_in += 1;
            s.client_bytes_in += to_peer as u64;
            s.to_peer_packets += 1;
            s.to_peer_bytes += to_peer as u64;
        }
        if to_client > 0 {
            s.peer_packets_in += 1;
            s.peer_bytes_in += to_client as u64;
            s.to_client_packets += 1;
            s.to_client_bytes += to_client as u64;
        }
    }

    pub fn allocation_count(&self) -> usize {
        self.table.len()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.table.next_timer(), self.tcp.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reservations (EVEN-PORT R=1) currently held.
    pub fn reservation_count(&self) -> usize {
        self.ports.reservation_count()
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= Self::EVENT_CAPACITY {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(e);
        }
    }

    /// May a reply to an unauthenticated request go to `from` now? Only UDP is limited: a
    /// TCP/TLS peer completed a handshake, so its address is not spoofed, and DTLS has its
    /// cookie exchange.
    fn unauth_reply_allowed(&mut self, now: Instant, from: ClientAddr) -> bool {
        if from.transport != crate::Transport::Udp {
            return true;
        }
        let second = self.cfg.clock.unix_at(now) as u32;
        self.limiter.allow(from.remote.ip(), second)
    }

    /// `max-bps` / `bps-capacity` for `len` relayed bytes of allocation `index`.
    #[inline]
    fn admit(
        &mut self,
        index: u32,
        dir: Direction,
        len: usize,
        now: Instant,
    ) -> Result<(), DropReason> {
        if self.bandwidth.is_unlimited() {
            return Ok(());
        }
        let Some(alloc) = self.table.get_mut(index) else {
            return Err(DropReason::NoAllocation);
        };
        self.bandwidth
            .admit(&mut alloc.meter, dir, len, now)
            .map_err(|e| match e {
                OverLimit::Allocation => DropReason::BandwidthLimit,
                OverLimit::Capacity => DropReason::CapacityLimit,
            })
    }

    fn drop(&mut self, reason: DropReason) -> ClientOutcome {
        self.stats.count_drop(reason);
        ClientOutcome::Drop(reason)
    }

    fn peer_drop(&mut self, reason: DropReason) -> PeerOutcome {
        self.stats.count_drop(reason);
        PeerOutcome::Drop(reason)
    }

    /// Frees the relay ports other workers handed back after using this worker's EVEN-PORT
    /// reservations (see [`crate::ports::Reservations`]). The IO layer calls it now and then
    /// (once a second); between calls such a port only stays taken a little longer.
    pub fn reclaim_ports(&mut self) {
        self.ports.reclaim();
    }

    /// Expire allocations, permissions, channels and reservations that are due.
    pub fn handle_timeout<R: RelaySockets>(&mut self, now: Instant, relays: &mut R) {
        while let Some((_, key)) = self.table.pop_due(now) {
            match key {
                TimerKey::Reservations => {
                    if let Some(next) = self.ports.expire(now) {
                        self.table.schedule_reservations(next);
                    }
                }
                TimerKey::Allocation { index, .. } => {
                    let Some(alloc) = self.table.get_mut(index) else {
                        continue;
                    };
                    if alloc.expires <= now {
                        self.free(index, FreeReason::Expired, relays);
                    } else {
                        alloc.sweep(now);
                        self.table.reschedule(index);
                    }
                }
            }
        }
        self.tcp.expire(now);
    }

    /// The TCP/TLS connection of `client` closed. RFC 8656 §2.2: an allocation made over a
    /// connection-oriented transport lives only as long as the connection, so it is freed.
    /// A no-op for UDP or when the 5-tuple has no allocation.
    pub fn handle_client_closed<R: RelaySockets>(
        &mut self,
        now: Instant,
        client: ClientAddr,
        relays: &mut R,
    ) {
        let _ = now;
        if !client.transport.is_stream() {
            return;
        }
        if let Some(index) = self
            .table
            .by_client(&(client.transport, client.remote, client.local))
        {
            self.free(index, FreeReason::ConnectionClosed, relays);
        }
    }

    fn free<R: RelaySockets>(&mut self, index: u32, reason: FreeReason, relays: &mut R) {
        let Some(alloc) = self.table.remove(index) else {
            return;
        };
        self.tickets.forget(index);
        self.tcp.remove_allocation(index);
        relays.close(alloc.relay);
        self.ports
            .release(alloc.relay_addr.ip(), alloc.relay_addr.port());
        if let Some((relay, addr)) = alloc.second {
            relays.close(relay);
            self.ports.release(addr.ip(), addr.port());
        }
        self.cfg.quotas.release(alloc.names.quota_user());
        self.stats.allocations_freed += 1;
        let relayed = self.relayed(alloc.relay_addr);
        self.event(Event::AllocationFreed {
            client: alloc.client,
            relayed,
            username: alloc.names.username().into(),
            reason,
        });
    }

    // ------------------------------------------------------------------------------------
    // Client side
    // ------------------------------------------------------------------------------------

    /// A datagram (UDP) or one complete frame (TCP/TLS) from a client. A STUN reply, if any,
    /// is written into `reply` (give it at least 1500 bytes).
    pub fn handle_client<R: RelaySockets>(
        &mut self,
        now: Instant,
        from: ClientAddr,
        data: &[u8],
        reply: &mut [u8],
        relays: &mut R,
    ) -> ClientOutcome {
        self.stats.client_packets_in += 1;
        self.stats.client_bytes_in += data.len() as u64;
        // RFC 7983 / RFC 8656 §12: the first byte tells STUN (0..3) from ChannelData (64..79,
        // up to 127 with RFC 5766 numbers).
        match data.first() {
            Some(0x40..=0x7F) => self.client_channel_data(now, from, data),
            Some(0x00..=0x03) => self.client_stun(now, from, data, reply, relays),
            _ => self.drop(DropReason::NotTurn),
        }
    }

    /// RFC 8656 §12.6 (client → peer over a channel). Hot path: no allocation.
    fn client_channel_data(
        &mut self,
        now: Instant,
        from: ClientAddr,
        data: &[u8],
    ) -> ClientOutcome {
        if data.len() < 4 {
            return self.drop(DropReason::BadChannelData);
        }
        let number = u16::from_be_bytes([data[0], data[1]]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        // "If the ChannelData message is ... too short ..., the message MUST be discarded";
        // padding after the data is allowed (and required on streams), so longer is fine.
        if 4 + len > data.len() || number > self.channel_max {
            return self.drop(DropReason::BadChannelData);
        }
        let Some(index) = self
            .table
            .by_client(&(from.transport, from.remote, from.local))
        else {
            return self.drop(DropReason::NoAllocation);
        };
        let Some(alloc) = self.table.get(index) else {
            return self.drop(DropReason::NoAllocation);
        };
        if alloc.expires <= now {
            return self.drop(DropReason::NoAllocation);
        }
        let Some(channel) = alloc.channel_by_number(number, now) else {
            return self.drop(DropReason::UnboundChannel);
        };
        let peer = channel.peer;
        if !alloc.has_permission(peer.ip(), now) {
            return self.drop(DropReason::NoPermission);
        }
        let Some((relay, _)) = relay_for(alloc, peer) else {
            return self.drop(DropReason::FamilyMismatch);
        };
        if let Err(reason) = self.admit(index, Direction::ToPeer, len, now) {
            return self.drop(reason);
        }
        self.stats.channel_data_in += 1;
        self.stats.to_peer_packets += 1;
        self.stats.to_peer_bytes += len as u64;
        ClientOutcome::ToPeer {
            relay,
            peer,
            payload: 4..4 + len,
        }
    }

    fn client_stun<R: RelaySockets>(
        &mut self,
        now: Instant,
        from: ClientAddr,
        data: &[u8],
        reply: &mut [u8],
        relays: &mut R,
    ) -> ClientOutcome {
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                // A datagram that does not parse gets no answer: answering garbage would make
                // the server a reflector. A bad FINGERPRINT is counted on its own.
                let reason = if is_fingerprint_error(&e) {
                    DropReason::BadFingerprint
                } else {
                    DropReason::Malformed
                };
                return self.drop(reason);
            }
        };
        match msg.class() {
            Class::Request => self.handle_request(now, from, &msg, reply, relays),
            Class::Indication if msg.method() == Method::SEND => {
                self.send_indication(now, from, &msg, data)
            }
            _ => self.drop(DropReason::UnexpectedClass),
        }
    }

    /// RFC 8656 §11.2 Send indication. Hot path: no allocation.
    fn send_indication(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        data: &[u8],
    ) -> ClientOutcome {
        let Some(index) = self
            .table
            .by_client(&(from.transport, from.remote, from.local))
        else {
            return self.drop(DropReason::NoAllocation);
        };
        // RFC 8489 §6.3.3: an indication with unknown comprehension-required attributes is
        // discarded.
        if msg
            .unknown_comprehension_required(SEND_ATTRS)
            .next()
            .is_some()
        {
            return self.drop(DropReason::UnknownAttribute);
        }
        let Some(alloc) = self.table.get(index) else {
            return self.drop(DropReason::NoAllocation);
        };
        if alloc.expires <= now {
            return self.drop(DropReason::NoAllocation);
        }
        let Some(Ok(peer)) = msg.xor_peer_addresses().next() else {
            return self.drop(DropReason::BadSendIndication);
        };
        let peer = self.peer_from_wire(peer);
        let Some((relay, _)) = relay_for(alloc, peer) else {
            return self.drop(DropReason::FamilyMismatch);
        };
        let Some(payload) = msg.data() else {
            return self.drop(DropReason::BadSendIndication);
        };
        // RFC 8656 §11.2: "If ... no permission for the peer's IP address, the Send
        // indication is silently discarded."
        if !alloc.has_permission(peer.ip(), now) {
            return self.drop(DropReason::NoPermission);
        }
        let start = payload.as_ptr() as usize - data.as_ptr() as usize;
        if let Err(reason) = self.admit(index, Direction::ToPeer, payload.len(), now) {
            return self.drop(reason);
        }
        self.stats.send_indications_in += 1;
        self.stats.to_peer_packets += 1;
        self.stats.to_peer_bytes += payload.len() as u64;
        ClientOutcome::ToPeer {
            relay,
            peer,
            payload: start..start + payload.len(),
        }
    }

    fn base_sign(&self, msg: &Message<'_>) -> Sign {
        Sign {
            key: None,
            sha256: false,
            fingerprint: self.cfg.fingerprint || msg.has_fingerprint(),
            unauthenticated: true,
        }
    }

    fn handle_request<R: RelaySockets>(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        relays: &mut R,
    ) -> ClientOutcome {
        self.stats.requests += 1;
        let method = msg.method();
        if method == Method::BINDING {
            return self.binding(now, from, msg, reply);
        }
        if method == Method::CONNECTION_BIND {
            if self.cfg.stun_only {
                return self.drop(DropReason::StunDisabled);
            }
            return self.connection_bind(now, from, msg, reply);
        }
        let known = match method {
            Method::ALLOCATE => ALLOCATE_ATTRS,
            Method::REFRESH => REFRESH_ATTRS,
            Method::CREATE_PERMISSION => PERMISSION_ATTRS,
            Method::CHANNEL_BIND => CHANNEL_BIND_ATTRS,
            Method::CONNECT => CONNECT_ATTRS,
            // Unknown methods: RFC 8489 §6.3.1 "... unknown method ... 400".
            _ => {
                if self.cfg.stun_only {
                    return self.drop(DropReason::StunDisabled);
                }
                if !self.unauth_reply_allowed(now, from) {
                    return self.drop(DropReason::RateLimited);
                }
                let sign = self.base_sign(msg);
                return self.error(reply, msg, 400, sign, |_| Ok(()));
            }
        };
        if self.cfg.stun_only {
            return self.drop(DropReason::StunDisabled);
        }
        let existing = self
            .table
            .by_client(&(from.transport, from.remote, from.local));
        let authed = match self.authenticate(now, from, msg, existing) {
            Ok(a) => a,
            Err(reject) => return self.reject(now, from, msg, reply, reject),
        };
        // RFC 8489 §6.3.1.1: unknown comprehension-required attributes → 420, after the
        // authentication checks (so the 420 carries MESSAGE-INTEGRITY).
        let mut unknown = [0u16; 8];
        let mut n = 0;
        for t in msg.unknown_comprehension_required(known) {
            if n < unknown.len() {
                unknown[n] = t;
                n += 1;
            }
        }
        if n > 0 {
            let list = &unknown[..n];
            return self.error(reply, msg, 420, authed.sign, |b| {
                b.add_unknown_attributes(list)
            });
        }
        // RFC 8656 §5: a request on an existing allocation must use the same credentials.
        if let Some(index) = existing
            && let Some(alloc) = self.table.get(index)
            && self.auth_enabled
            && alloc.names.username() != authed.username
        {
            let code = if method == Method::ALLOCATE { 437 } else { 441 };
            return self.error(reply, msg, code, authed.sign, |_| Ok(()));
        }
        // 300 Try Alternate: only an Allocate that would create an allocation is redirected
        // (see `alternate`).
        if method == Method::ALLOCATE
            && existing.is_none()
            && let Some(alt) = self.redirector.pick(from.transport, from.local)
        {
            let alt = alt.clone();
            let secure = matches!(
                from.transport,
                crate::Transport::Tls | crate::Transport::Dtls
            );
            return self.error(reply, msg, 300, authed.sign, |b| {
                b.add_address(attr::ALTERNATE_SERVER, alt.addr)?;
                // RFC 8489 §14.16: over TLS/DTLS the client needs the name to check the
                // alternate's certificate against.
                match (&alt.domain, secure) {
                    (Some(d), true) => b.add(attr::ALTERNATE_DOMAIN, d.as_bytes()),
                    _ => Ok(()),
                }
            });
        }
        // RFC 8016: a Refresh with a mobility ticket from a 5-tuple without an allocation
        // moves the ticket's allocation here.
        let existing = match (method, existing, msg.get(attr::MOBILITY_TICKET)) {
            (Method::REFRESH, None, Some(ticket)) if self.cfg.mobility => {
                match self.mobility_move(from, ticket, &authed) {
                    Ok(index) => Some(index),
                    Err(code) => return self.error(reply, msg, code, authed.sign, |_| Ok(())),
                }
            }
            _ => existing,
        };
        match method {
            Method::ALLOCATE => self.allocate(now, from, msg, reply, relays, existing, authed),
            Method::REFRESH => self.refresh(now, msg, reply, relays, existing, authed),
            Method::CREATE_PERMISSION => {
                self.create_permission(now, from, msg, reply, existing, authed)
            }
            Method::CONNECT => self.connect(from, msg, reply, existing, authed),
            _ => self.channel_bind(now, from, msg, reply, existing, authed),
        }
    }

    /// RFC 8489 §6.3 Binding: XOR-MAPPED-ADDRESS only (turn-anchors §3.6: keep the
    /// amplification factor low), FINGERPRINT if asked, no authentication.
    fn binding(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
    ) -> ClientOutcome {
        if self.cfg.no_stun {
            return self.drop(DropReason::StunDisabled);
        }
        self.stats.binding_requests += 1;
        let outcome = if self.cfg.rfc5780.is_some() {
            self.binding_rfc5780(now, from, msg, reply)
        } else {
            self.binding_plain(now, from, msg, reply)
        };
        // coturn's stun_binding_response / stun_binding_error.
        if let ClientOutcome::Reply { len } | ClientOutcome::ReplyFrom { len, .. } = outcome {
            if reply[..len].len() >= 2
                && u16::from_be_bytes([reply[0], reply[1]]) & 0x0110 == 0x0110
            {
                self.stats.binding_errors += 1;
            } else {
                self.stats.binding_responses += 1;
            }
        }
        outcome
    }

    fn binding_plain(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
    ) -> ClientOutcome {
        let sign = self.base_sign(msg);
        let mut unknown = [0u16; 8];
        let mut n = 0;
        for t in msg.unknown_comprehension_required(BINDING_ATTRS) {
            if n < unknown.len() {
                unknown[n] = t;
                n += 1;
            }
        }
        if n > 0 {
            if !self.unauth_reply_allowed(now, from) {
                return self.drop(DropReason::RateLimited);
            }
            let list = &unknown[..n];
            return self.error(reply, msg, 420, sign, |b| b.add_unknown_attributes(list));
        }
        let mapped = from.remote;
        self.respond(reply, msg, Class::Success, sign, |b| {
            b.add_xor_address(attr::XOR_MAPPED_ADDRESS, mapped)
        })
    }

    /// RFC 8489 §9.2.4, in its order: no MI → 401; MI but no USERNAME/REALM/NONCE → 400;
    /// bad nonce → 438; unknown user / bad MI → 401. Nothing is stored before MI verifies.
    fn authenticate(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        existing: Option<u32>,
    ) -> Result<Authed, AuthReject> {
        let mut sign = self.base_sign(msg);
        if !self.auth_enabled {
            sign.unauthenticated = false;
            return Ok(Authed {
                username: String::new(),
                quota_user: String::new(),
                key: None,
                sign,
            });
        }
        let Some(integrity) = msg.integrity() else {
            return Err(AuthReject::Unauthorized(None));
        };
        let sha256 = matches!(integrity, Integrity::Sha256);
        let (Ok(Some(username)), Ok(Some(realm)), Ok(Some(nonce))) =
            (msg.username(), msg.realm(), msg.nonce())
        else {
            return Err(AuthReject::BadRequest);
        };
        let now_unix = self.cfg.clock.unix_at(now);
        let stale = self.cfg.stale_nonce.map(|d| d.as_secs());
        match nonce::check(
            &self.cfg.nonce_key,
            from.remote,
            nonce.as_bytes(),
            now_unix,
            stale,
        ) {
            NonceCheck::Valid => {}
            NonceCheck::Stale | NonceCheck::Invalid => return Err(AuthReject::StaleNonce),
        }
        let verify = |key: &[u8; 16]| {
            if sha256 {
                msg.verify_integrity_sha256(key).is_ok()
            } else {
                msg.verify_integrity(key).is_ok()
            }
        };
        // An allocation caches the key it was created with (coturn `hmackey_set`): later
        // requests with the same USERNAME are checked against it, and the REST expiry is
        // not enforced again.
        if let Some(alloc) = existing.and_then(|i| self.table.get(i))
            && alloc.names.username() == username
        {
            if realm != self.auth.realm() || !verify(&alloc.key) {
                return Err(AuthReject::Unauthorized(Some((
                    username.to_owned(),
                    AuthFailure::BadIntegrity,
                ))));
            }
            sign.key = Some(alloc.key);
            sign.sha256 = sha256;
            sign.unauthenticated = false;
            return Ok(Authed {
                username: username.to_owned(),
                quota_user: alloc.names.quota_user().to_owned(),
                key: Some(alloc.key),
                sign,
            });
        }
        match self.auth.authenticate(username, realm, now_unix, verify) {
            Ok(a) => {
                sign.key = Some(a.key);
                sign.sha256 = sha256;
                sign.unauthenticated = false;
                Ok(Authed {
                    username: username.to_owned(),
                    quota_user: a.quota_user,
                    key: Some(a.key),
                    sign,
                })
            }
            Err(why) => Err(AuthReject::Unauthorized(Some((username.to_owned(), why)))),
        }
    }

    fn reject(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        reject: AuthReject,
    ) -> ClientOutcome {
        // Before any work (nonce MAC, event): a flood of unauthenticated requests costs a
        // table lookup per datagram once over the limit.
        if !self.unauth_reply_allowed(now, from) {
            return self.drop(DropReason::RateLimited);
        }
        let sign = self.base_sign(msg);
        let code = match reject {
            AuthReject::BadRequest => return self.error(reply, msg, 400, sign, |_| Ok(())),
            AuthReject::Unauthorized(failure) => {
                if let Some((username, reason)) = failure {
                    self.stats.auth_failures += 1;
                    self.event(Event::AuthFailed {
                        client: from,
                        username,
                        reason,
                    });
                }
                401
            }
            AuthReject::StaleNonce => 438,
        };
        let nonce = nonce::issue(
            &self.cfg.nonce_key,
            from.remote,
            self.cfg.clock.unix_at(now),
        );
        // Borrow the realm out of the config for the builder instead of cloning it: the
        // unauthenticated path allocates nothing.
        let realm = std::mem::take(&mut self.cfg.realm);
        let out = self.error(reply, msg, code, sign, |b| {
            b.add(attr::REALM, realm.as_bytes())?;
            b.add(attr::NONCE, &nonce)
        });
        self.cfg.realm = realm;
        out
    }

    fn respond(
        &mut self,
        reply: &mut [u8],
        msg: &Message<'_>,
        class: Class,
        sign: Sign,
        body: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
    ) -> ClientOutcome {
        self.respond_to(reply, msg.method(), msg.transaction_id(), class, sign, body)
    }

    /// [`Self::respond`] for a request that is no longer at hand (a deferred answer).
    fn respond_to(
        &mut self,
        reply: &mut [u8],
        method: Method,
        tid: switchyard_stun::TransactionId,
        class: Class,
        sign: Sign,
        body: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
    ) -> ClientOutcome {
        let typ = MessageType { class, method };
        // SOFTWARE is left off errors to unauthenticated requests: they should stay small.
        let software = if sign.unauthenticated && class == Class::Error {
            None
        } else {
            self.cfg.software.as_deref()
        };
        let built = (|| {
            let mut b = MessageBuilder::new(reply, typ, tid)?;
            body(&mut b)?;
            if let Some(sw) = software {
                b.add(attr::SOFTWARE, sw.as_bytes())?;
            }
            if let Some(key) = sign.key {
                if sign.sha256 {
                    b.add_message_integrity_sha256(&key)?;
                } else {
                    b.add_message_integrity(&key)?;
                }
            }
            if sign.fingerprint {
                b.add_fingerprint()?;
            }
            Ok::<usize, BuildError>(b.finish())
        })();
        match built {
            Ok(len) => {
                self.stats.replies += 1;
                ClientOutcome::Reply { len }
            }
            Err(_) => self.drop(DropReason::ReplyBuffer),
        }
    }

    fn error(
        &mut self,
        reply: &mut [u8],
        msg: &Message<'_>,
        code: u16,
        sign: Sign,
        extra: impl FnOnce(&mut MessageBuilder<'_>) -> Result<(), BuildError>,
    ) -> ClientOutcome {
        self.stats.count_error(code);
        let include = self.cfg.include_reason_string;
        self.respond(reply, msg, Class::Error, sign, |b| {
            b.add_error_code(code, reason(code, sign.unauthenticated, include))?;
            extra(b)
        })
    }

    /// coturn `stun_adjust_allocate_lifetime`: absent or 0 → default, below the default →
    /// the default, above `max-allocate-lifetime` → the maximum.
    fn clamp_lifetime(&self, requested: Option<u32>) -> Duration {
        let default = self.cfg.default_lifetime;
        let wanted = match requested {
            None | Some(0) => default,
            Some(s) => Duration::from_secs(u64::from(s)).max(default),
        };
        wanted.min(self.cfg.max_lifetime)
    }

    fn relay_ip(&mut self, family: AddressFamily, from: ClientAddr) -> Option<IpAddr> {
        let want_v4 = matches!(family, AddressFamily::V4);
        if !self.cfg.relay_ips.is_empty() {
            let n = self
                .cfg
                .relay_ips
                .iter()
                .filter(|ip| ip.is_ipv4() == want_v4)
                .count();
            if n == 0 {
                return None;
            }
            let pick = (self.rng.next_u64() % n as u64) as usize;
            return self
                .cfg
                .relay_ips
                .iter()
                .filter(|ip| ip.is_ipv4() == want_v4)
                .nth(pick)
                .copied();
        }
        let local = from.local.ip();
        if local.is_ipv4() == want_v4 {
            return (!local.is_unspecified()).then_some(local);
        }
        // The other family: a listening address of that family, and one of the same kind
        // (a loopback client gets a loopback relay, any other client never does).
        self.cfg
            .listen_ips
            .iter()
            .find(|ip| {
                ip.is_ipv4() == want_v4
                    && !ip.is_unspecified()
                    && ip.is_loopback() == local.is_loopback()
            })
            .copied()
    }

    /// `external-ip=PUBLIC/PRIVATE` mapping of the bound relay address (turn-anchors §1.4).
    fn advertised(&self, relay_ip: IpAddr) -> IpAddr {
        if let Some(e) = self
            .cfg
            .external_ips
            .iter()
            .find(|e| e.private == Some(relay_ip))
        {
            return e.public;
        }
        if let Some(e) = self
            .cfg
            .external_ips
            .iter()
            .find(|e| e.private.is_none() && e.public.is_ipv4() == relay_ip.is_ipv4())
        {
            return e.public;
        }
        relay_ip
    }

    /// coturn's `external-ip=PUBLIC/PRIVATE` also maps peer addresses (turn-anchors §1.4):
    /// a client that names this server's public address as a peer — both callers relaying
    /// through the same server behind NAT — means the private relay address, so no hairpin
    /// NAT is needed. Bare `external-ip=PUBLIC` maps nothing, as in coturn.
    fn peer_from_wire(&self, peer: SocketAddr) -> SocketAddr {
        match self
            .cfg
            .external_ips
            .iter()
            .find(|e| e.public == peer.ip() && e.private.is_some())
        {
            Some(e) => SocketAddr::new(e.private.unwrap_or(e.public), peer.port()),
            None => peer,
        }
    }

    /// The reverse of [`Self::peer_from_wire`] for addresses the client sees (Data
    /// indications), so they match the permission the client asked for.
    fn peer_to_wire(&self, peer: SocketAddr) -> SocketAddr {
        match self
            .cfg
            .external_ips
            .iter()
            .find(|e| e.private == Some(peer.ip()))
        {
            Some(e) => SocketAddr::new(e.public, peer.port()),
            None => peer,
        }
    }

    /// What XOR-RELAYED-ADDRESS says for a relay socket bound to `relay_addr`.
    fn relayed(&self, relay_addr: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.advertised(relay_addr.ip()), relay_addr.port())
    }

    #[allow(clippy::too_many_arguments)]
    fn allocate_success(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        index: u32,
        sign: Sign,
        ipv6_refused: bool,
    ) -> ClientOutcome {
        let Some(alloc) = self.table.get(index) else {
            return self.drop(DropReason::NoAllocation);
        };
        let relayed = self.relayed(alloc.relay_addr);
        let second = alloc.second.map(|(_, a)| a);
        let second = second.map(|a| self.relayed(a));
        let lifetime = alloc.expires.saturating_duration_since(now).as_secs() as u32;
        let token = alloc.reservation_token;
        let mapped = from.remote;
        let ticket = self.tickets.current(index);
        self.respond(reply, msg, Class::Success, sign, |b| {
            b.add_xor_address(attr::XOR_RELAYED_ADDRESS, relayed)?;
            // RFC 8656 §7.2: a dual allocation answers with both relayed addresses.
            if let Some(a) = second {
                b.add_xor_address(attr::XOR_RELAYED_ADDRESS, a)?;
            }
            if ipv6_refused {
                // RFC 8656 §18.12 ADDRESS-ERROR-CODE: family, reserved, class, number, reason.
                let mut v = [0u8; 4 + 28];
                v[0] = 0x02;
                v[2] = 4;
                v[3] = 40;
                let phrase = reason(440, false, true).as_bytes();
                v[4..4 + phrase.len()].copy_from_slice(phrase);
                b.add(attr::ADDRESS_ERROR_CODE, &v[..4 + phrase.len()])?;
            }
            b.add_xor_address(attr::XOR_MAPPED_ADDRESS, mapped)?;
            b.add_u32(attr::LIFETIME, lifetime)?;
            if let Some(t) = token {
                b.add(attr::RESERVATION_TOKEN, &t)?;
            }
            if let Some(t) = ticket {
                b.add(attr::MOBILITY_TICKET, &t)?;
            }
            Ok(())
        })
    }

    /// RFC 8656 §7.2 Allocate.
    #[allow(clippy::too_many_arguments)]
    fn allocate<R: RelaySockets>(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        relays: &mut R,
        existing: Option<u32>,
        authed: Authed,
    ) -> ClientOutcome {
        let sign = authed.sign;
        // coturn 4.6's clients (`turnutils_uclient -Z`) send ADDITIONAL-ADDRESS-FAMILY with
        // the pre-RFC 8656 type 0x8032; both are read.
        let aaf = msg
            .get(attr::ADDITIONAL_ADDRESS_FAMILY)
            .or_else(|| msg.get(LEGACY_ADDITIONAL_ADDRESS_FAMILY));
        if let Some(index) = existing {
            // "If the 5-tuple is already in use, ... 437" — unless it is a retransmission of
            // the request that created it, which gets the same success response again.
            let retransmit = self
                .table
                .get(index)
                .is_some_and(|a| a.allocate_tid == msg.transaction_id().0);
            if retransmit {
                let v6_refused = aaf.is_some_and(|v| v.first() == Some(&0x02))
                    && self.table.get(index).is_some_and(|a| a.second.is_none());
                return self.allocate_success(now, from, msg, reply, index, sign, v6_refused);
            }
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        }
        // RFC 8016 §3.1: a client asks for mobility with an (empty) MOBILITY-TICKET; 405 when
        // it is turned off. Over TCP/TLS there is nothing to move: no ticket, no error.
        let wants_ticket = msg.get(attr::MOBILITY_TICKET).is_some();
        if wants_ticket && !self.cfg.mobility {
            return self.error(reply, msg, 405, sign, |_| Ok(()));
        }
        // REQUESTED-TRANSPORT: missing → 400; UDP, or TCP (RFC 6062) from a TCP/TLS client;
        // anything else → 442.
        let Some(transport) = msg.get(attr::REQUESTED_TRANSPORT) else {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        };
        if transport.len() != 4 {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let tcp = match transport[0] {
            PROTO_UDP if !self.cfg.no_udp_relay => false,
            PROTO_TCP if !self.cfg.no_tcp_relay => true,
            _ => return self.error(reply, msg, 442, sign, |_| Ok(())),
        };
        // RFC 6062 §5.1: a TCP allocation needs a TCP/TLS control connection and takes no
        // DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN → 400.
        if tcp
            && (!from.transport.is_stream()
                || msg.get(attr::DONT_FRAGMENT).is_some()
                || msg.get(attr::EVEN_PORT).is_some()
                || msg.get(attr::RESERVATION_TOKEN).is_some())
        {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let Ok(requested_lifetime) = msg.lifetime() else {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        };
        let even = msg.get(attr::EVEN_PORT);
        let token = msg.get(attr::RESERVATION_TOKEN);
        let raf = msg.get(attr::REQUESTED_ADDRESS_FAMILY);
        // "If the request contains both EVEN-PORT and RESERVATION-TOKEN → 400";
        // RESERVATION-TOKEN with REQUESTED-ADDRESS-FAMILY, or REQUESTED- with
        // ADDITIONAL-ADDRESS-FAMILY → 400 (RFC 8656 §7.2).
        if (even.is_some() && token.is_some())
            || (token.is_some() && raf.is_some())
            || (raf.is_some() && aaf.is_some())
        {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        if even.is_some_and(|v| v.is_empty()) || token.is_some_and(|t| t.len() != 8) {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let family = match raf {
            None => AddressFamily::V4,
            Some(v) if v.len() == 4 && v[0] == 0x01 => AddressFamily::V4,
            Some(v) if v.len() == 4 && v[0] == 0x02 => AddressFamily::V6,
            Some(v) if v.len() == 4 => return self.error(reply, msg, 440, sign, |_| Ok(())),
            Some(_) => return self.error(reply, msg, 400, sign, |_| Ok(())),
        };
        // ADDITIONAL-ADDRESS-FAMILY: must be IPv6 (else 400); the IPv6 half is allocated
        // when the server has an IPv6 relay address, else ADDRESS-ERROR-CODE 440 says so.
        let wants_ipv6 = match aaf {
            None => false,
            Some(v) if v.len() == 4 && v[0] == 0x02 => true,
            Some(_) => return self.error(reply, msg, 400, sign, |_| Ok(())),
        };
        let reservation_token: Option<[u8; 8]> = token.map(|t| {
            let mut a = [0u8; 8];
            a.copy_from_slice(t);
            a
        });
        let relay_ip = match &reservation_token {
            // The reserved port lives on the reservation's address.
            Some(t) => match self.ports.claim(t, now) {
                Some(r) => {
                    let ip = r.ip;
                    self.ports.unclaim(*t, r);
                    Some(ip)
                }
                None => return self.error(reply, msg, 508, sign, |_| Ok(())),
            },
            None => self.relay_ip(family, from),
        };
        let Some(relay_ip) = relay_ip else {
            self.event(Event::AllocationRefused {
                client: from,
                username: authed.username.clone(),
                reason: RefuseReason::NoRelayAddress,
            });
            return self.error(reply, msg, 440, sign, |_| Ok(()));
        };
        // Anonymous clients (no-auth) share one empty quota name, so `user-quota` would cap
        // them all together; only `total-quota` applies to them.
        let user_quota = if self.auth_enabled {
            self.cfg.user_quota
        } else {
            0
        };
        if let Err(q) =
            self.cfg
                .quotas
                .try_acquire(&authed.quota_user, user_quota, self.cfg.total_quota)
        {
            self.event(Event::AllocationRefused {
                client: from,
                username: authed.username.clone(),
                reason: match q {
                    QuotaExceeded::User => RefuseReason::UserQuota,
                    QuotaExceeded::Total => RefuseReason::TotalQuota,
                },
            });
            return self.error(reply, msg, 486, sign, |_| Ok(()));
        }
        let wish = match even {
            Some(v) => PortWish::Even {
                reserve_next: v[0] & 0x80 != 0,
            },
            None => PortWish::Any,
        };
        let bound = match reservation_token {
            Some(t) => self.bind_reserved(now, t, relays),
            None => self.bind_new(relay_ip, wish, tcp, relays),
        };
        let Some((relay, relay_addr)) = bound else {
            self.cfg.quotas.release(&authed.quota_user);
            self.event(Event::AllocationRefused {
                client: from,
                username: authed.username.clone(),
                reason: RefuseReason::NoPort,
            });
            return self.error(reply, msg, 508, sign, |_| Ok(()));
        };
        let new_token = if matches!(wish, PortWish::Even { reserve_next: true }) {
            let mut t = [0u8; 8];
            loop {
                self.rng.fill(&mut t);
                if !self.ports.has_token(&t) {
                    break;
                }
            }
            // The odd sibling was taken together with the even port in `bind_new`.
            self.ports
                .reserve(t, relay_addr.ip(), relay_addr.port() + 1, now);
            self.table.schedule_reservations(now + RESERVATION_LIFETIME);
            Some(t)
        } else {
            None
        };
        // The IPv6 half of a dual allocation (the first half is IPv4: REQUESTED- and
        // ADDITIONAL-ADDRESS-FAMILY exclude each other). RFC 6062 TCP allocations stay
        // single-family.
        let second = if wants_ipv6 && !tcp {
            self.relay_ip(AddressFamily::V6, from)
                .and_then(|ip| self.bind_new(ip, PortWish::Any, false, relays))
        } else {
            None
        };
        let ipv6_refused = wants_ipv6 && second.is_none();
        let relayed = self.relayed(relay_addr);
        let lifetime = self.clamp_lifetime(requested_lifetime);
        let index = self.table.insert(Allocation {
            client: from,
            relay,
            relay_addr,
            second,
            names: Names::new(&authed.username, &authed.quota_user),
            key: authed.key.unwrap_or([0; 16]),
            allocate_tid: msg.transaction_id().0,
            reservation_token: new_token,
            expires: now + lifetime,
            permissions: Vec::new(),
            channels: Vec::new(),
            meter: self.bandwidth.meter(now),
            scheduled: None,
        });
        if wants_ticket && !from.transport.is_stream() {
            self.issue_ticket(index);
        }
        if tcp {
            self.tcp.add_allocation(index);
        }
        self.stats.allocations_created += 1;
        self.event(Event::AllocationCreated {
            client: from,
            relayed,
            username: authed.username,
        });
        self.allocate_success(now, from, msg, reply, index, sign, ipv6_refused)
    }

    fn bind_reserved<R: RelaySockets>(
        &mut self,
        now: Instant,
        token: [u8; 8],
        relays: &mut R,
    ) -> Option<(RelayId, SocketAddr)> {
        let r = self.ports.claim(&token, now)?;
        let addr = SocketAddr::new(r.ip, r.port);
        match relays.bind(addr) {
            Ok(id) => Some((id, addr)),
            Err(_) => {
                // Keep the reservation until it expires; its port stays accounted for.
                self.ports.unclaim(token, r);
                None
            }
        }
    }

    fn bind_new<R: RelaySockets>(
        &mut self,
        ip: IpAddr,
        wish: PortWish,
        tcp: bool,
        relays: &mut R,
    ) -> Option<(RelayId, SocketAddr)> {
        let reserve_next = matches!(wish, PortWish::Even { reserve_next: true });
        let mut start = self.rng.next_u64() as u32;
        for _ in 0..BIND_ATTEMPTS {
            let pool = self.ports.pool(ip);
            let port = pool.find(start, wish)?;
            pool.take(port);
            if reserve_next {
                pool.take(port + 1);
            }
            let addr = SocketAddr::new(ip, port);
            let bound = if tcp {
                relays.bind_tcp(addr)
            } else {
                relays.bind(addr)
            };
            match bound {
                Ok(id) => return Some((id, addr)),
                Err(e) => {
                    let pool = self.ports.pool(ip);
                    pool.release(port);
                    if reserve_next {
                        pool.release(port + 1);
                    }
                    if e != BindError::InUse {
                        return None;
                    }
                    start = pool.offset_of(port).wrapping_add(1);
                }
            }
        }
        None
    }

    /// RFC 8016 §3.2: move the allocation named by `ticket` to the 5-tuple `from`. The
    /// request has authenticated; it must be the allocation's user. Returns the error code
    /// otherwise (400 for a ticket that is not current).
    fn mobility_move(
        &mut self,
        from: ClientAddr,
        ticket: &[u8],
        authed: &Authed,
    ) -> Result<u32, u16> {
        let index = self.tickets.lookup(ticket).ok_or(400u16)?;
        let alloc = self.table.get(index).ok_or(400u16)?;
        if self.auth_enabled && alloc.names.username() != authed.username {
            return Err(441);
        }
        // Tickets are only issued to datagram allocations; a stream connection cannot take
        // one over (its allocation would die with the connection).
        if from.transport.is_stream() {
            return Err(400);
        }
        let old = alloc.client;
        let relayed = self.relayed(alloc.relay_addr);
        if !self.table.move_client(index, from) {
            return Err(437);
        }
        self.stats.allocations_moved += 1;
        self.event(Event::AllocationMoved {
            from: old,
            to: from,
            relayed,
        });
        Ok(index)
    }

    /// A fresh, unused mobility ticket for allocation `index`.
    fn issue_ticket(&mut self, index: u32) -> Ticket {
        let t = loop {
            let mut random = [0u8; 16];
            self.rng.fill(&mut random);
            let t = crate::mobility::encode(random);
            if !self.tickets.contains(&t) {
                break t;
            }
        };
        self.tickets.issue(index, t);
        t
    }

    /// RFC 8656 §7.3 Refresh.
    fn refresh<R: RelaySockets>(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        reply: &mut [u8],
        relays: &mut R,
        existing: Option<u32>,
        authed: Authed,
    ) -> ClientOutcome {
        let sign = authed.sign;
        let with_ticket = msg.get(attr::MOBILITY_TICKET).is_some();
        if with_ticket && !self.cfg.mobility {
            return self.error(reply, msg, 405, sign, |_| Ok(()));
        }
        let Some(index) = existing else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        let Some(alloc) = self.table.get(index) else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        // RFC 8656 §7.3: REQUESTED-ADDRESS-FAMILY naming another family than the
        // allocation's → 443.
        if let Some(v) = msg.get(attr::REQUESTED_ADDRESS_FAMILY) {
            let want_v6 = v.first() == Some(&0x02);
            let has = |a: SocketAddr| a.is_ipv6() == want_v6;
            if !has(alloc.relay_addr) && !alloc.second.is_some_and(|(_, a)| has(a)) {
                return self.error(reply, msg, 443, sign, |_| Ok(()));
            }
        }
        let Ok(requested) = msg.lifetime() else {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        };
        if requested == Some(0) {
            self.free(index, FreeReason::Deleted, relays);
            return self.respond(reply, msg, Class::Success, sign, |b| {
                b.add_u32(attr::LIFETIME, 0)
            });
        }
        let lifetime = self.clamp_lifetime(requested);
        if let Some(alloc) = self.table.get_mut(index) {
            alloc.expires = now + lifetime;
        }
        self.table.reschedule(index);
        let secs = lifetime.as_secs() as u32;
        // RFC 8016 §3.2: every Refresh carrying the ticket of a mobile allocation gets a new
        // one, and the old one is retired.
        let ticket = (with_ticket && self.tickets.current(index).is_some())
            .then(|| self.issue_ticket(index));
        self.respond(reply, msg, Class::Success, sign, |b| {
            b.add_u32(attr::LIFETIME, secs)?;
            match ticket {
                Some(t) => b.add(attr::MOBILITY_TICKET, &t),
                None => Ok(()),
            }
        })
    }

    /// Address family and policy checks shared by CreatePermission and ChannelBind.
    /// Returns the error code to send.
    fn check_peer(
        &mut self,
        from: ClientAddr,
        relay_addr: SocketAddr,
        peer: SocketAddr,
    ) -> Result<(), u16> {
        if peer_family_mismatch(relay_addr, peer) {
            if relay_addr.is_ipv6() && peer.is_ipv6() {
                // v4-mapped on an IPv6 relay: name it for the logs.
                self.stats.peer_denied += 1;
                self.event(Event::PeerDenied {
                    client: from,
                    peer,
                    class: DenyClass::MappedOnIpv6Relay,
                });
            }
            return Err(443);
        }
        if let Err(class) = self.policy.check_socket(peer) {
            self.stats.peer_denied += 1;
            self.event(Event::PeerDenied {
                client: from,
                peer,
                class,
            });
            return Err(403);
        }
        Ok(())
    }

    /// RFC 8656 §9 CreatePermission: all XOR-PEER-ADDRESS values are checked before any is
    /// installed, so the request succeeds or fails as a whole.
    fn create_permission(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        existing: Option<u32>,
        authed: Authed,
    ) -> ClientOutcome {
        let sign = authed.sign;
        let Some(index) = existing else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        let Some((relay_addr, second)) = self.table.get(index).map(|a| (a.relay_addr, a.second))
        else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        let mut peers = [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_PEERS_PER_REQUEST];
        let mut n = 0;
        for p in msg.xor_peer_addresses() {
            let Ok(p) = p else {
                return self.error(reply, msg, 400, sign, |_| Ok(()));
            };
            if n == MAX_PEERS_PER_REQUEST {
                return self.error(reply, msg, 508, sign, |_| Ok(()));
            }
            peers[n] = self.peer_from_wire(p);
            n += 1;
        }
        if n == 0 {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let peers = &peers[..n];
        for p in peers {
            let relay_addr = family_relay(relay_addr, second, *p);
            if let Err(code) = self.check_peer(from, relay_addr, *p) {
                return self.error(reply, msg, code, sign, |_| Ok(()));
            }
        }
        let mut ips = [IpAddr::from([0u8; 4]); MAX_PEERS_PER_REQUEST];
        for (i, p) in peers.iter().enumerate() {
            ips[i] = p.ip();
        }
        let until = now + self.cfg.permission_lifetime;
        let Some(alloc) = self.table.get_mut(index) else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        alloc.sweep(now);
        if alloc.permissions.len() + alloc.new_permission_count(&ips[..n]) > MAX_PERMISSIONS {
            return self.error(reply, msg, 508, sign, |_| Ok(()));
        }
        for ip in &ips[..n] {
            alloc.permit(*ip, until);
        }
        self.table.reschedule(index);
        self.respond(reply, msg, Class::Success, sign, |_| Ok(()))
    }

    /// RFC 8656 §12.2 ChannelBind.
    fn channel_bind(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
        existing: Option<u32>,
        authed: Authed,
    ) -> ClientOutcome {
        let sign = authed.sign;
        let Some(index) = existing else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        let Some((relay_addr, second)) = self.table.get(index).map(|a| (a.relay_addr, a.second))
        else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        // CHANNEL-NUMBER: 0x4000 through 0x4FFF (RFC 8656 §12), 0x7FFE with RFC 5766 numbers.
        let number = match msg.get(attr::CHANNEL_NUMBER) {
            Some(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
            _ => return self.error(reply, msg, 400, sign, |_| Ok(())),
        };
        if !(0x4000..=self.channel_max).contains(&number) {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let peer = match msg.xor_peer_addresses().next() {
            Some(Ok(p)) => self.peer_from_wire(p),
            _ => return self.error(reply, msg, 400, sign, |_| Ok(())),
        };
        let relay_addr = family_relay(relay_addr, second, peer);
        if let Err(code) = self.check_peer(from, relay_addr, peer) {
            return self.error(reply, msg, code, sign, |_| Ok(()));
        }
        let channel_until = now + self.cfg.channel_lifetime;
        let permission_until = now + self.cfg.permission_lifetime.max(self.cfg.channel_lifetime);
        let Some(alloc) = self.table.get_mut(index) else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        alloc.sweep(now);
        // "The channel number is not currently bound to a different transport address" and
        // "the transport address is not currently bound to a different channel number"
        // (including bindings in their 5-minute quarantine) — else 400.
        let by_number = alloc.channels.iter().position(|c| c.number == number);
        let by_peer = alloc.channels.iter().position(|c| c.peer == peer);
        if by_number != by_peer {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let new_ip = !alloc.permissions.iter().any(|p| p.ip == peer.ip());
        if (new_ip && alloc.permissions.len() >= MAX_PERMISSIONS)
            || (by_number.is_none() && alloc.channels.len() >= MAX_CHANNELS)
        {
            return self.error(reply, msg, 508, sign, |_| Ok(()));
        }
        match by_number {
            Some(i) => alloc.channels[i].expires = channel_until,
            None => alloc.add_channel(Channel {
                number,
                peer,
                expires: channel_until,
            }),
        }
        alloc.permit(peer.ip(), permission_until);
        self.table.reschedule(index);
        self.respond(reply, msg, Class::Success, sign, |_| Ok(()))
    }

    // ------------------------------------------------------------------------------------
    // Peer side
    // ------------------------------------------------------------------------------------

    /// A datagram that arrived on relay socket `relay` from `peer`; the payload is
    /// `buf[payload]`, with [`crate::PEER_HEADROOM`] bytes before and [`crate::PEER_TAILROOM`]
    /// after it so it can be framed in place. Hot path: no allocation.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        buf: &mut [u8],
        payload: Range<usize>,
    ) -> PeerOutcome {
        self.stats.peer_packets_in += 1;
        if payload.start > payload.end || payload.end > buf.len() {
            return self.peer_drop(DropReason::PayloadTooLarge);
        }
        self.stats.peer_bytes_in += payload.len() as u64;
        let Some(index) = self.table.by_relay(relay) else {
            return self.peer_drop(DropReason::NoAllocation);
        };
        let Some(alloc) = self.table.get(index) else {
            return self.peer_drop(DropReason::NoAllocation);
        };
        if alloc.expires <= now {
            return self.peer_drop(DropReason::NoAllocation);
        }
        // RFC 8656 §9: no permission for the source IP → silently discard.
        if !alloc.has_permission(peer.ip(), now) {
            return self.peer_drop(DropReason::NoPermission);
        }
        let client = alloc.client;
        let channel = alloc.channel_by_peer(peer, now).map(|c| c.number);
        let len = payload.len();
        if let Err(reason) = self.admit(index, Direction::ToClient, len, now) {
            return self.peer_drop(reason);
        }
        let pad = if client.transport.is_stream() {
            (4 - len % 4) % 4
        } else {
            0
        };
        if let Some(number) = channel {
            // RFC 8656 §12.7: ChannelData; padded to 4 bytes on TCP/TLS only (§12.5).
            if len > usize::from(u16::MAX) || payload.start < 4 || payload.end + pad > buf.len() {
                return self.peer_drop(DropReason::PayloadTooLarge);
            }
            let start = payload.start - 4;
            buf[start..start + 2].copy_from_slice(&number.to_be_bytes());
            buf[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
            buf[payload.end..payload.end + pad].fill(0);
            self.stats.channel_data_out += 1;
            self.stats.to_client_packets += 1;
            self.stats.to_client_bytes += len as u64;
            return PeerOutcome::ToClient {
                client,
                range: start..payload.end + pad,
            };
        }
        // RFC 8656 §11.3: Data indication with XOR-PEER-ADDRESS and DATA. Attribute values
        // are always padded, on every transport.
        let pad = (4 - len % 4) % 4;
        let wire_peer = self.peer_to_wire(peer);
        let xpa_len = if wire_peer.is_ipv4() { 8 } else { 20 };
        let header = 20 + 4 + xpa_len + 4;
        let body = 4 + xpa_len + 4 + len + pad;
        if payload.start < header || payload.end + pad > buf.len() || body > usize::from(u16::MAX) {
            return self.peer_drop(DropReason::PayloadTooLarge);
        }
        let start = payload.start - header;
        let mut tid = [0u8; 12];
        self.rng.fill(&mut tid);
        let h = &mut buf[start..payload.start];
        h[0..2].copy_from_slice(&DATA_INDICATION.to_be_bytes());
        h[2..4].copy_from_slice(&(body as u16).to_be_bytes());
        h[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        h[8..20].copy_from_slice(&tid);
        h[20..22].copy_from_slice(&attr::XOR_PEER_ADDRESS.to_be_bytes());
        h[22..24].copy_from_slice(&(xpa_len as u16).to_be_bytes());
        write_xor_address(&mut h[24..24 + xpa_len], wire_peer, &tid);
        let d = 24 + xpa_len;
        h[d..d + 2].copy_from_slice(&attr::DATA.to_be_bytes());
        h[d + 2..d + 4].copy_from_slice(&(len as u16).to_be_bytes());
        buf[payload.end..payload.end + pad].fill(0);
        self.stats.data_indications_out += 1;
        self.stats.to_client_packets += 1;
        self.stats.to_client_bytes += len as u64;
        PeerOutcome::ToClient {
            client,
            range: start..payload.end + pad,
        }
    }

    /// Whether `client` (its 5-tuple) holds an allocation; the IO layer closes stream
    /// connections that never make one.
    pub fn has_allocation(&self, client: &ClientAddr) -> bool {
        self.table
            .by_client(&(client.transport, client.remote, client.local))
            .is_some()
    }

    /// The channel number bound to `peer` on the allocation of `client`, if any.
    pub fn channel_for(&self, client: &ClientAddr, peer: SocketAddr, now: Instant) -> Option<u16> {
        let index = self
            .table
            .by_client(&(client.transport, client.remote, client.local))?;
        Some(self.table.get(index)?.channel_by_peer(peer, now)?.number)
    }
}

/// RFC 6156 §6 / RFC 8656 §7.2: the peer's family (as on the wire) must be the relayed
/// address's family; on an IPv6 relay a v4-mapped peer is really IPv4 and is refused too,
/// so an IPv6 relay socket never sends to a v4-mapped destination.
#[inline]
fn peer_family_mismatch(relay: SocketAddr, peer: SocketAddr) -> bool {
    match (relay, peer) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => false,
        (SocketAddr::V6(_), SocketAddr::V6(p)) => p.ip().to_ipv4_mapped().is_some(),
        _ => true,
    }
}

/// The relay of `alloc` that serves `peer`'s family (the second one of a dual allocation
/// for the other family), if any.
#[inline]
fn relay_for(alloc: &Allocation, peer: SocketAddr) -> Option<(RelayId, SocketAddr)> {
    if !peer_family_mismatch(alloc.relay_addr, peer) {
        return Some((alloc.relay, alloc.relay_addr));
    }
    alloc
        .second
        .filter(|(_, addr)| !peer_family_mismatch(*addr, peer))
}

/// The relayed address to check `peer` against: the second relay's when it is of the
/// peer's family, else the first (whose mismatch then yields 443).
fn family_relay(
    first: SocketAddr,
    second: Option<(RelayId, SocketAddr)>,
    peer: SocketAddr,
) -> SocketAddr {
    match second {
        Some((_, addr)) if !peer_family_mismatch(addr, peer) => addr,
        _ => first,
    }
}

/// XOR-PEER-ADDRESS value (RFC 8489 §14.2) written into `out` (8 or 20 bytes).
#[inline]
fn write_xor_address(out: &mut [u8], addr: SocketAddr, tid: &[u8; 12]) {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    out[0] = 0;
    out[2..4].copy_from_slice(&(addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 0x01;
            for (i, b) in ip.octets().iter().enumerate() {
                out[4 + i] = b ^ cookie[i];
            }
        }
        IpAddr::V6(ip) => {
            out[1] = 0x02;
            let o = ip.octets();
            for i in 0..16 {
                let k = if i < 4 { cookie[i] } else { tid[i - 4] };
                out[4 + i] = o[i] ^ k;
            }
        }
    }
}

fn is_fingerprint_error(e: &switchyard_stun::ParseError) -> bool {
    use switchyard_stun::ParseError;
    matches!(
        e,
        ParseError::FingerprintMismatch
            | ParseError::BadFingerprintLength
            | ParseError::FingerprintNotLast
    )
}
