//! Types shared with the IO layer.

use std::net::SocketAddr;
use std::ops::Range;

use crate::auth::AuthFailure;
use crate::policy::DenyClass;

/// The client-facing transport an allocation's 5-tuple uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Dtls,
}

impl Transport {
    /// RFC 8656 §12.5: over TCP and TLS, ChannelData is padded to a multiple of four bytes.
    pub fn is_stream(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// The IO layer's handle for a listening UDP socket or a TCP/TLS connection; echoed back.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SocketToken(pub u32);

/// The IO layer's handle for a relay socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelayId(pub u32);

/// Where a client message came from. `token` is the IO layer's handle for the listening UDP
/// socket or the TCP/TLS connection; the core echoes it back in outputs and never interprets it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub token: SocketToken,
}

/// Why the IO layer could not bind a relay socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The port is taken (by another process): the core tries another port.
    #[error("address in use")]
    InUse,
    #[error("bind failed")]
    Other,
}

/// The IO layer's relay sockets. The core picks addresses (port pool, EVEN-PORT pairs,
/// RESERVATION-TOKEN) and asks the IO layer to bind exactly that address.
pub trait RelaySockets {
    fn bind(&mut self, addr: SocketAddr) -> Result<RelayId, BindError>;
    /// RFC 6062: a listening TCP socket at `addr` for a TCP allocation (ids share the
    /// space of [`Self::bind`]'s). IO layers without TCP relaying keep the default, and
    /// TCP Allocates get 508.
    fn bind_tcp(&mut self, addr: SocketAddr) -> Result<RelayId, BindError> {
        let _ = addr;
        Err(BindError::Other)
    }
    fn close(&mut self, id: RelayId);
}

/// Bytes the IO layer leaves before a peer payload: enough for a Data indication header
/// (20) + XOR-PEER-ADDRESS (24 for IPv6) + DATA header (4) = 48, or a ChannelData header (4).
pub const PEER_HEADROOM: usize = 64;
/// Bytes the IO layer leaves after a peer payload: padding to a multiple of four.
pub const PEER_TAILROOM: usize = 4;

/// What to do with a client message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Send `reply[..len]` back to the client it came from.
    Reply {
        len: usize,
    },
    /// Send `data[payload]` from relay socket `relay` to `peer`.
    ToPeer {
        relay: RelayId,
        peer: SocketAddr,
        payload: Range<usize>,
    },
    Drop(DropReason),
    /// RFC 5780: send `reply[..len]` from the listening socket bound at `from` (another
    /// IP and/or port than the one the request came in on) to `to` (RESPONSE-PORT may
    /// change the port). UDP only.
    ReplyFrom {
        len: usize,
        from: SocketAddr,
        to: SocketAddr,
    },
    /// Nothing to send now: the answer comes later (RFC 6062 Connect, answered from
    /// `Server::handle_tcp_connected` once the IO layer has connected to the peer).
    Pending,
}

/// What to do with a peer datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerOutcome {
    /// Send `buf[range]` (framed in place) to `client` over its transport.
    ToClient {
        client: ClientAddr,
        range: Range<usize>,
    },
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// Why a message was dropped without a reply (counted in [`Stats::drops`]).
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DropReason {
            $(#[doc = $doc] $variant,)*
        }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)*
                }
            }

            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

drop_reasons! {
    NotTurn => "not_turn", "Neither STUN nor ChannelData (RFC 7983 demultiplexing).";
    Malformed => "malformed", "STUN that does not parse (header, length, attribute framing).";
    BadFingerprint => "bad_fingerprint", "FINGERPRINT present but wrong.";
    UnexpectedClass => "unexpected_class", "A response, or an indication other than Send.";
    StunDisabled => "stun_disabled", "`no-stun` / `stun-only` turned this message type off.";
    UnknownAttribute => "unknown_attribute", "Indication with an unknown comprehension-required attribute.";
    NoAllocation => "no_allocation", "No allocation for the client's 5-tuple, or the relay id.";
    BadChannelData => "bad_channel_data", "ChannelData shorter than its length field, or a bad channel number.";
    UnboundChannel => "unbound_channel", "ChannelData on a channel number that is not bound.";
    NoPermission => "no_permission", "No permission for the peer's IP address.";
    BadSendIndication => "bad_send_indication", "Send indication without a usable XOR-PEER-ADDRESS or DATA.";
    FamilyMismatch => "family_mismatch", "Peer address family differs from the relayed address family.";
    PayloadTooLarge => "payload_too_large", "Peer payload too large for the framing or the buffer lacks room.";
    ReplyBuffer => "reply_buffer", "The reply buffer was too small for the response.";
    RateLimited => "rate_limited", "Unauthenticated request over the per-IP reply limit (`ServerConfig::unauth_rate_limit`).";
    BandwidthLimit => "max_bps", "Relayed payload over the allocation's `max-bps` (`ServerConfig::max_bps`).";
    CapacityLimit => "bps_capacity", "Relayed payload over the server's `bps-capacity` (`ServerConfig::bps_capacity`).";
    TooManyConnections => "too_many_connections", "An incoming peer TCP connection beyond `tcp_relay::MAX_CONNECTIONS` (RFC 6062).";
}

/// Why an allocation ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FreeReason {
    /// Its lifetime ran out without a Refresh.
    Expired,
    /// The client sent Refresh with LIFETIME 0.
    Deleted,
    /// The client's TCP/TLS connection closed.
    ConnectionClosed,
}

/// Why an Allocate that authenticated was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefuseReason {
    UserQuota,
    TotalQuota,
    NoPort,
    NoRelayAddress,
}

/// Lifecycle and security events (not per packet). The queue holds [`Server::EVENT_CAPACITY`]
/// events; beyond that new ones are counted in [`Stats::events_dropped`] and discarded.
///
/// [`Server::EVENT_CAPACITY`]: crate::Server::EVENT_CAPACITY
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    AllocationCreated {
        client: ClientAddr,
        relayed: SocketAddr,
        username: String,
    },
    AllocationFreed {
        client: ClientAddr,
        relayed: SocketAddr,
        username: String,
        reason: FreeReason,
    },
    AllocationRefused {
        client: ClientAddr,
        username: String,
        reason: RefuseReason,
    },
    PeerDenied {
        client: ClientAddr,
        peer: SocketAddr,
        class: DenyClass,
    },
    AuthFailed {
        client: ClientAddr,
        username: String,
        reason: AuthFailure,
    },
    /// RFC 8016 mobility: a Refresh with the allocation's ticket came from a new 5-tuple and
    /// the allocation now belongs to it.
    AllocationMoved {
        from: ClientAddr,
        to: ClientAddr,
        relayed: SocketAddr,
    },
}

/// STUN error codes the server sends, in [`Stats::errors`] order.
pub const ERROR_CODES: [u16; 17] = [
    300, 400, 401, 403, 405, 420, 437, 438, 440, 441, 442, 443, 446, 447, 486, 500, 508,
];

/// Plain counters; the IO layer exports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages and bytes received from clients (STUN and ChannelData).
    pub client_packets_in: u64,
    pub client_bytes_in: u64,
    /// Payloads relayed client → peer, and their bytes.
    pub to_peer_packets: u64,
    pub to_peer_bytes: u64,
    /// Datagrams received from peers, and their payload bytes.
    pub peer_packets_in: u64,
    pub peer_bytes_in: u64,
    /// Payloads relayed peer → client, and their payload bytes.
    pub to_client_packets: u64,
    pub to_client_bytes: u64,
    /// Relayed messages by framing.
    pub channel_data_in: u64,
    pub send_indications_in: u64,
    pub channel_data_out: u64,
    pub data_indications_out: u64,
    /// STUN requests seen and replies produced.
    pub requests: u64,
    pub replies: u64,
    pub binding_requests: u64,
    /// Binding success and error responses sent (coturn's `stun_binding_response` and
    /// `stun_binding_error`).
    pub binding_responses: u64,
    pub binding_errors: u64,
    pub allocations_created: u64,
    pub allocations_freed: u64,
    /// Allocations moved to a new 5-tuple (RFC 8016 mobility).
    pub allocations_moved: u64,
    pub auth_failures: u64,
    pub peer_denied: u64,
    pub events_dropped: u64,
    /// Drops indexed by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// Error responses indexed like [`ERROR_CODES`].
    pub errors: [u64; ERROR_CODES.len()],
}

impl Stats {
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    pub fn errors_sent(&self, code: u16) -> u64 {
        ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.errors[i])
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.drops[reason.index()] += 1;
    }

    pub(crate) fn count_error(&mut self, code: u16) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            self.errors[i] += 1;
        }
    }
}
