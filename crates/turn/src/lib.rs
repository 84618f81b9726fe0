//! Sans-IO TURN/STUN server core (RFC 8656, RFC 5766, RFC 6156, RFC 8489/5389).
//!
//! # Driving contract
//!
//! The core owns no socket and reads no clock. The IO layer feeds it and carries out what it
//! decides:
//!
//! - `handle_client(now, from, bytes, reply, relays)` for every datagram (or complete
//!   TCP/TLS frame, cut with `switchyard_stun::frame`) from a client. The answer is a
//!   [`ClientOutcome`]: a STUN reply written into `reply`, a payload to send from a relay
//!   socket to a peer, or a drop with a reason.
//! - `handle_peer(now, relay, peer, buf, payload)` for every datagram a relay socket
//!   receives. The core frames it as ChannelData or a Data indication *in place* (the IO
//!   layer leaves [`PEER_HEADROOM`] bytes before and [`PEER_TAILROOM`] after the payload) and
//!   returns which client to send it to.
//! - `poll_timeout()` says when `handle_timeout(now, relays)` must run next (allocation,
//!   permission, channel and reservation expiry).
//! - `poll_event()` yields allocation lifecycle, denial and auth-failure events for logs and
//!   metrics (never one per packet); `stats()` exposes plain counters.
//! - Relay sockets are opened and closed through the [`RelaySockets`] trait the IO layer
//!   implements: the core picks the address (port pool, EVEN-PORT pairs, reservations).
//! - RFC 6062 TCP allocations ([`tcp_relay`]): the core asks for peer connections and
//!   piping through `poll_tcp()` ([`TcpCommand`]) and hears back through
//!   `handle_tcp_connected`, `handle_tcp_peer_accepted` and `handle_tcp_closed`; a Connect
//!   is answered later ([`ClientOutcome::Pending`]). The IO layer owns every TCP socket and
//!   pipes bound connections itself.
//! - RFC 5780 ([`nat_discovery`]): a Binding answer may have to leave from another
//!   listening socket or go to another port ([`ClientOutcome::ReplyFrom`]).
//!
//! The hot path — ChannelData and Send indications from clients, datagrams from peers —
//! allocates nothing, hashes no string, takes no lock and logs nothing (`tests/no_alloc.rs`
//! checks it with a counting allocator, as it does for the 401 / rate-limit path). An
//! allocation with one permission and one channel holds about 600 heap bytes including its
//! share of the server's tables (`tests/memory.rs`, 10,000 allocations).
//!
//! # Deviations from and additions to the session-1 contract
//!
//! - Additions: [`Server::handle_client_closed`] (a TCP/TLS connection closed: its
//!   allocation is freed, [`FreeReason::ConnectionClosed`]), [`Server::reservation_count`],
//!   [`Server::channel_for`], [`Server::EVENT_CAPACITY`], [`Server::with_seed`]
//!   (deterministic port choice, tokens and transaction ids for tests and fuzzing;
//!   [`Server::new`] seeds from the OS), [`ServerConfig::new`] (coturn defaults),
//!   [`PeerPolicy::check_socket`] / [`PeerPolicy::set_relay_ports`] (own addresses are
//!   denied except on relay ports, so relay-to-relay pairs between two clients of this
//!   server keep working; [`Server::new`] uses the worker's `port_range` unless the IO
//!   layer set the full range), [`User::parse`], the [`auth`] and [`nonce`] helpers,
//!   [`Event::AllocationRefused`], [`RefuseReason`], [`FreeReason`], [`Stats`] fields,
//!   [`DenyClass::MappedOnIpv6Relay`], [`Transport::is_stream`].
//! - The stun codec's typed getters return `Result<Option<T>, AttrError>`; a malformed
//!   attribute the server needs is answered with 400.
//! - A v4-mapped XOR-PEER-ADDRESS on an IPv6 allocation is 443 (its real family is IPv4),
//!   so an IPv6 relay socket never sends to a v4-mapped destination.
//! - An invalid NONCE (not ours, other client address) is 438 like a stale one: libwebrtc
//!   retries only after 438.
//! - `stun-only` drops TURN requests and `no-stun` drops Binding requests, without reply.
//! - `allowed-peer-ip` does not open loopback (coturn does the same: only
//!   `allow-loopback-peers` does), and an all-zero bound in an *allowed* range is literal
//!   (coturn would read it as unbounded). See [`policy`].
//! - Permission cap: [`allocation::MAX_PERMISSIONS`] distinct peer IPs and
//!   [`allocation::MAX_CHANNELS`] channels per allocation; beyond them → 508.
//! - ChannelBind refreshes the peer's permission to the channel's lifetime (coturn logs
//!   "peer lifetime updated: 600"), not just 300 s, so clients that only refresh channels
//!   keep working as they do with coturn. ChannelData still needs that permission.
//! - Like coturn, the REST expiry is checked when a request is first authenticated; later
//!   requests on an allocation are verified against the key cached in it, so an allocation
//!   can be refreshed past the credential's expiry (eturnal `strict_expiry: false`).
//! - ADDITIONAL-ADDRESS-FAMILY (dual allocation, RFC 8656 §7.2) makes an IPv4 and an IPv6
//!   relay (also read under coturn 4.6's pre-RFC type 0x8032); ADDRESS-ERROR-CODE 440 only
//!   when the IPv6 half cannot be made. A Refresh may name either family; deleting one
//!   family alone (Refresh LIFETIME 0 with REQUESTED-ADDRESS-FAMILY) deletes both.
//! - `alternate-server`: 300 after authentication (see [`alternate`]); RFC 8016 mobility:
//!   printable tickets, rotated on every Refresh that carries one; RFC 6062: TCP Allocate
//!   from a UDP client is 400, and ConnectionBind is authenticated with the allocation's
//!   key without a nonce check (the data connection has a new address; coturn exempts it
//!   from the challenge too).
//! - Replies to unauthenticated requests (401, 438, errors sent before authentication, 420
//!   to Binding) are limited per source IP (IPv6: per /64) to
//!   [`ServerConfig::unauth_rate_limit`] a second over UDP, on by default (coturn's
//!   `unauthorized-ratelimit` is off by default); over the limit they are dropped
//!   ([`DropReason::RateLimited`]). They carry no SOFTWARE and, unless
//!   [`ServerConfig::include_reason_string`], no reason phrase; the stateless nonce is 16
//!   characters. A 401 is still larger than a minimal Allocate (68 vs 28 bytes with a
//!   16-byte realm): REALM and NONCE are mandatory, so the rate limit is what bounds
//!   reflection. Binding successes are neither limited nor shrunk (XOR-MAPPED-ADDRESS is
//!   the answer: 32 bytes to a 20-byte request).
//! - DTLS is the IO layer's (it hands decrypted datagrams in as [`Transport::Dtls`]).
//! - Bandwidth (`max-bps`, `bps-capacity`, see [`bandwidth`]) counts relayed payload bytes
//!   (not the ChannelData / Data indication framing) and drops what is over the limit
//!   ([`DropReason::BandwidthLimit`], [`DropReason::CapacityLimit`]), as coturn does.
//! - Data indications carry no FINGERPRINT even with `fingerprint` set (the in-place framing
//!   has [`PEER_TAILROOM`] = 4 bytes after the payload, enough for padding only).

#![forbid(unsafe_code)]

pub mod allocation;
pub mod alternate;
pub mod auth;
pub mod bandwidth;
mod config;
mod mobility;
pub mod nat_discovery;
pub mod nonce;
pub mod policy;
pub mod ports;
mod server;
pub mod tcp_relay;
mod types;

pub use alternate::AlternateServer;
pub use auth::{Auth, AuthFailure, User, UserParseError};
pub use bandwidth::Capacity;
pub use config::{ClockAnchor, ExternalIp, Quotas, ServerConfig};
pub use nat_discovery::NatDiscovery;
pub use policy::{DenyClass, PeerPolicy, PolicyConfig};
pub use ports::Reservations;
pub use server::Server;
pub use tcp_relay::{ConnectionId, TcpCommand};
pub use types::*;
