//! RFC 6062 TCP allocations: the state the core keeps about peer TCP connections.
//!
//! An allocation made with REQUESTED-TRANSPORT=TCP over a TCP/TLS control connection has a
//! listening TCP socket as its relayed address. Peer connections come two ways:
//!
//! - **Connect** (client-initiated): the core checks the peer and asks the IO layer to open
//!   a connection from the relayed address ([`TcpCommand::Connect`]); the IO layer reports
//!   the result with `Server::handle_tcp_connected`, which yields the Connect success
//!   response (CONNECTION-ID) or 447 for the control connection.
//! - **incoming** (peer-initiated): the IO layer accepts on the relay listener and asks
//!   `Server::handle_tcp_peer_accepted`; with a permission for the peer's IP the core
//!   yields a ConnectionAttempt indication for the control connection.
//!
//! Either way the client then opens a new *data* connection and sends ConnectionBind with
//! the CONNECTION-ID; on success the IO layer pipes raw bytes between the data connection
//! and the peer connection ([`TcpCommand::Pipe`]) and the core is no longer involved. A peer
//! connection not bound within [`BIND_TIMEOUT`] is closed ([`TcpCommand::Close`]), as are
//! all of an allocation's connections when it is freed.
//!
//! The IO layer owns every socket; the core only keeps ids, addresses and deadlines.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::{ClientAddr, RelayId};

/// RFC 6062 §5.2/§5.3: a peer connection the client has not bound with ConnectionBind
/// within 30 seconds is closed.
pub const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Peer connections (pending or piped) one TCP allocation may hold; beyond it Connect gets
/// 508 and incoming peers are refused.
pub const MAX_CONNECTIONS: usize = 64;

/// RFC 6062 §6.2.1 CONNECTION-ID: names one peer connection of this server.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u32);

/// The worker (`ServerConfig::worker_id`) that issued a CONNECTION-ID: a client's data
/// connection may reach any worker, and only the issuer knows the id.
pub fn owner(id: ConnectionId) -> u8 {
    (id.0 >> 24) as u8
}

/// If `frame` is a ConnectionBind request, the CONNECTION-ID it names.
pub fn connection_bind_target(frame: &[u8]) -> Option<ConnectionId> {
    // Type 0x000B: method ConnectionBind, class request.
    if frame.get(..2)? != [0x00, 0x0B] {
        return None;
    }
    let msg = switchyard_stun::Message::parse(frame).ok()?;
    let v = msg.get(switchyard_stun::attr::CONNECTION_ID)?;
    let v: [u8; 4] = v.try_into().ok()?;
    Some(ConnectionId(u32::from_be_bytes(v)))
}

/// What the IO layer must do for TCP allocations; read with `Server::poll_tcp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpCommand {
    /// Open a TCP connection to `peer`, from the relayed address `from` (the listener of
    /// `relay`) when the OS allows it, and report with `Server::handle_tcp_connected`.
    Connect {
        id: ConnectionId,
        relay: RelayId,
        from: SocketAddr,
        peer: SocketAddr,
    },
    /// After the ConnectionBind success response has been sent on `data`: pipe raw bytes
    /// between that client connection and peer connection `id`, both ways, until either
    /// closes (then report with `Server::handle_tcp_closed`).
    Pipe { id: ConnectionId, data: ClientAddr },
    /// Close peer connection `id` and, if it is piped, its data connection.
    Close { id: ConnectionId },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Connect request waiting for the IO layer's connect: answer with this transaction.
    Connecting {
        tid: [u8; 12],
        sha256: bool,
        fingerprint: bool,
    },
    /// Established, waiting for ConnectionBind until `deadline`.
    Unbound { deadline: Instant },
    /// Piped to a data connection.
    Bound,
}

#[derive(Clone, Debug)]
pub(crate) struct PeerConn {
    /// Allocation index in the table.
    pub(crate) alloc: u32,
    pub(crate) peer: SocketAddr,
    pub(crate) state: ConnState,
}

/// Peer connections by id, the TCP allocations, and the commands for the IO layer.
#[derive(Debug, Default)]
pub(crate) struct TcpRelay {
    conns: FxHashMap<ConnectionId, PeerConn>,
    /// Allocation indexes made with REQUESTED-TRANSPORT=TCP.
    allocations: FxHashSet<u32>,
    commands: VecDeque<TcpCommand>,
}

impl TcpRelay {
    pub(crate) fn add_allocation(&mut self, index: u32) {
        self.allocations.insert(index);
    }

    pub(crate) fn is_tcp(&self, index: u32) -> bool {
        self.allocations.contains(&index)
    }

    /// The allocation is gone: close all its connections.
    pub(crate) fn remove_allocation(&mut self, index: u32) {
        if !self.allocations.remove(&index) {
            return;
        }
        let ids: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.alloc == index)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.conns.remove(&id);
            self.commands.push_back(TcpCommand::Close { id });
        }
    }

    pub(crate) fn connection_count(&self, index: u32) -> usize {
        self.conns.values().filter(|c| c.alloc == index).count()
    }

    /// RFC 6062 §5.2: "already has a connection to the peer" from this allocation.
    pub(crate) fn has_peer(&self, index: u32, peer: SocketAddr) -> bool {
        self.conns
            .values()
            .any(|c| c.alloc == index && c.peer == peer)
    }

    pub(crate) fn insert(&mut self, id: ConnectionId, conn: PeerConn) {
        self.conns.insert(id, conn);
    }

    pub(crate) fn contains(&self, id: ConnectionId) -> bool {
        self.conns.contains_key(&id)
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<&PeerConn> {
        self.conns.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ConnectionId) -> Option<&mut PeerConn> {
        self.conns.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, id: ConnectionId) -> Option<PeerConn> {
        self.conns.remove(&id)
    }

    pub(crate) fn command(&mut self, c: TcpCommand) {
        self.commands.push_back(c);
    }

    pub(crate) fn poll(&mut self) -> Option<TcpCommand> {
        self.commands.pop_front()
    }

    /// The earliest ConnectionBind deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| match c.state {
                ConnState::Unbound { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Close peer connections whose client never bound them.
    pub(crate) fn expire(&mut self, now: Instant) {
        let due: Vec<ConnectionId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.state, ConnState::Unbound { deadline } if deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.conns.remove(&id);
            self.commands.push_back(TcpCommand::Close { id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_allocation_removal_close_connections() {
        let now = Instant::now();
        let mut t = TcpRelay::default();
        t.add_allocation(1);
        let peer: SocketAddr = "192.0.2.1:80".parse().unwrap();
        for (id, deadline) in [(7, now), (8, now + BIND_TIMEOUT)] {
            t.insert(
                ConnectionId(id),
                PeerConn {
                    alloc: 1,
                    peer,
                    state: ConnState::Unbound { deadline },
                },
            );
        }
        assert_eq!(t.next_deadline(), Some(now));
        t.expire(now);
        assert_eq!(
            t.poll(),
            Some(TcpCommand::Close {
                id: ConnectionId(7)
            })
        );
        assert_eq!(t.poll(), None);
        assert!(t.has_peer(1, peer) && t.is_tcp(1));
        t.remove_allocation(1);
        assert_eq!(
            t.poll(),
            Some(TcpCommand::Close {
                id: ConnectionId(8)
            })
        );
        assert!(!t.is_tcp(1) && t.next_deadline().is_none());
    }
}
