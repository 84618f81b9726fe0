//! RFC 6062 request handling on [`Server`]: Connect, ConnectionBind, the IO layer's connect
//! results and incoming peer connections. The state lives in [`crate::tcp_relay`].

use std::net::SocketAddr;
use std::time::Instant;

use switchyard_stun::{Class, Integrity, Message, MessageBuilder, MessageType, Method, attr};

use super::{Authed, Server, Sign};
use crate::tcp_relay::{
    BIND_TIMEOUT, ConnState, ConnectionId, MAX_CONNECTIONS, PeerConn, TcpCommand,
};
use crate::{ClientAddr, ClientOutcome, DropReason, Event, RelayId};

impl Server {
    /// What the IO layer must do next for TCP allocations (connect to a peer, pipe a bound
    /// connection, close one). Poll after every `handle_*` call until `None`.
    pub fn poll_tcp(&mut self) -> Option<TcpCommand> {
        self.tcp.poll()
    }

    fn new_connection_id(&mut self) -> ConnectionId {
        let owner = u32::from(self.cfg.worker_id) << 24;
        loop {
            let low = (self.rng.next_u64() as u32) & 0x00FF_FFFF;
            let id = ConnectionId(owner | low);
            if low != 0 && !self.tcp.contains(id) {
                return id;
            }
        }
    }

    /// RFC 6062 §5.2 Connect: checks, then [`TcpCommand::Connect`]; the response comes from
    /// [`Self::handle_tcp_connected`].
    pub(super) fn connect(
        &mut self,
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
        let Some((relay, relay_addr)) = self.table.get(index).map(|a| (a.relay, a.relay_addr))
        else {
            return self.error(reply, msg, 437, sign, |_| Ok(()));
        };
        // Connect on a UDP allocation is not meaningful.
        if !self.tcp.is_tcp(index) {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let peer = match msg.xor_peer_addresses().next() {
            Some(Ok(p)) => self.peer_from_wire(p),
            _ => return self.error(reply, msg, 400, sign, |_| Ok(())),
        };
        if let Err(code) = self.check_peer(from, relay_addr, peer) {
            return self.error(reply, msg, code, sign, |_| Ok(()));
        }
        if self.tcp.has_peer(index, peer) {
            return self.error(reply, msg, 446, sign, |_| Ok(()));
        }
        if self.tcp.connection_count(index) >= MAX_CONNECTIONS {
            return self.error(reply, msg, 508, sign, |_| Ok(()));
        }
        let id = self.new_connection_id();
        self.tcp.insert(
            id,
            PeerConn {
                alloc: index,
                peer,
                state: ConnState::Connecting {
                    tid: msg.transaction_id().0,
                    sha256: sign.sha256,
                    fingerprint: sign.fingerprint,
                },
            },
        );
        self.tcp.command(TcpCommand::Connect {
            id,
            relay,
            from: relay_addr,
            peer,
        });
        ClientOutcome::Pending
    }

    /// The IO layer's connect for [`TcpCommand::Connect`] `id` finished (`connected`) or
    /// failed. Returns the Connect response (`reply[..len]`) and the control connection to
    /// send it on; `None` if the allocation is gone (the IO layer then closes the peer
    /// connection). On failure the connection is forgotten and the response is 447.
    pub fn handle_tcp_connected(
        &mut self,
        now: Instant,
        id: ConnectionId,
        connected: bool,
        reply: &mut [u8],
    ) -> Option<(ClientAddr, usize)> {
        let conn = self.tcp.get(id)?;
        let ConnState::Connecting {
            tid,
            sha256,
            fingerprint,
        } = conn.state
        else {
            return None;
        };
        let Some(alloc) = self.table.get(conn.alloc) else {
            self.tcp.remove(id);
            return None;
        };
        let client = alloc.client;
        let sign = Sign {
            key: self.auth_enabled.then_some(alloc.key),
            sha256,
            fingerprint,
            unauthenticated: false,
        };
        let tid = switchyard_stun::TransactionId(tid);
        let outcome = if connected {
            if let Some(c) = self.tcp.get_mut(id) {
                c.state = ConnState::Unbound {
                    deadline: now + BIND_TIMEOUT,
                };
            }
            self.respond_to(reply, Method::CONNECT, tid, Class::Success, sign, |b| {
                b.add_u32(attr::CONNECTION_ID, id.0)
            })
        } else {
            self.tcp.remove(id);
            self.stats.count_error(447);
            self.respond_to(reply, Method::CONNECT, tid, Class::Error, sign, |b| {
                b.add_error_code(447, super::reason(447, false, true))
            })
        };
        match outcome {
            ClientOutcome::Reply { len } => Some((client, len)),
            _ => None,
        }
    }

    /// A peer connected to the relayed TCP address of `relay` (RFC 6062 §5.3). With a
    /// permission for its IP (and the peer policy's consent), returns the new connection's
    /// id and a ConnectionAttempt indication (`reply[..len]`) for the control connection;
    /// otherwise why the IO layer must close the peer connection.
    pub fn handle_tcp_peer_accepted(
        &mut self,
        now: Instant,
        relay: RelayId,
        peer: SocketAddr,
        reply: &mut [u8],
    ) -> Result<(ConnectionId, ClientAddr, usize), DropReason> {
        let index = self.table.by_relay(relay).ok_or(DropReason::NoAllocation)?;
        if !self.tcp.is_tcp(index) {
            return Err(DropReason::NoAllocation);
        }
        let alloc = self.table.get(index).ok_or(DropReason::NoAllocation)?;
        if alloc.expires <= now {
            return Err(DropReason::NoAllocation);
        }
        let client = alloc.client;
        if !alloc.has_permission(peer.ip(), now) {
            self.stats.count_drop(DropReason::NoPermission);
            return Err(DropReason::NoPermission);
        }
        if let Err(class) = self.policy.check_socket(peer) {
            self.stats.peer_denied += 1;
            self.event(Event::PeerDenied {
                client,
                peer,
                class,
            });
            return Err(DropReason::NoPermission);
        }
        if self.tcp.connection_count(index) >= MAX_CONNECTIONS {
            self.stats.count_drop(DropReason::TooManyConnections);
            return Err(DropReason::TooManyConnections);
        }
        let id = self.new_connection_id();
        let mut tid = [0u8; 12];
        self.rng.fill(&mut tid);
        let wire_peer = self.peer_to_wire(peer);
        let fingerprint = self.cfg.fingerprint;
        let built = (|| {
            let typ = MessageType {
                class: Class::Indication,
                method: Method::CONNECTION_ATTEMPT,
            };
            let mut b = MessageBuilder::new(reply, typ, switchyard_stun::TransactionId(tid))?;
            b.add_xor_address(attr::XOR_PEER_ADDRESS, wire_peer)?;
            b.add_u32(attr::CONNECTION_ID, id.0)?;
            if fingerprint {
                b.add_fingerprint()?;
            }
            Ok::<usize, switchyard_stun::BuildError>(b.finish())
        })();
        let len = built.map_err(|_| DropReason::ReplyBuffer)?;
        self.tcp.insert(
            id,
            PeerConn {
                alloc: index,
                peer,
                state: ConnState::Unbound {
                    deadline: now + BIND_TIMEOUT,
                },
            },
        );
        Ok((id, client, len))
    }

    /// A peer connection, or the data connection piped to it, closed: forget it. The IO
    /// layer closes the other side itself.
    pub fn handle_tcp_closed(&mut self, id: ConnectionId) {
        self.tcp.remove(id);
    }

    /// RFC 6062 §5.4 ConnectionBind, on a new client connection. It is authenticated with
    /// the key of the allocation the CONNECTION-ID belongs to, like coturn (which exempts
    /// ConnectionBind from the nonce challenge): the nonce the client holds was issued to its
    /// control connection's address, and the random 32-bit id plus MESSAGE-INTEGRITY with
    /// the user's key prove the client is the allocation's.
    pub(super) fn connection_bind(
        &mut self,
        now: Instant,
        from: ClientAddr,
        msg: &Message<'_>,
        reply: &mut [u8],
    ) -> ClientOutcome {
        let mut sign = self.base_sign(msg);
        if !self.unauth_reply_allowed(now, from) {
            return self.drop(DropReason::RateLimited);
        }
        let has_allocation = self
            .table
            .by_client(&(from.transport, from.remote, from.local))
            .is_some();
        let id = match msg.get(attr::CONNECTION_ID) {
            Some(v) if v.len() == 4 => ConnectionId(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            _ => return self.error(reply, msg, 400, sign, |_| Ok(())),
        };
        // A data connection is a fresh TCP/TLS connection, never a control connection.
        if !from.transport.is_stream() || has_allocation {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let Some(conn) = self.tcp.get(id) else {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        };
        if !matches!(conn.state, ConnState::Unbound { .. }) {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        }
        let Some(alloc) = self.table.get(conn.alloc) else {
            return self.error(reply, msg, 400, sign, |_| Ok(()));
        };
        if self.auth_enabled {
            let Some(integrity) = msg.integrity() else {
                return self.reject(now, from, msg, reply, super::AuthReject::Unauthorized(None));
            };
            let sha256 = matches!(integrity, Integrity::Sha256);
            let user_ok = matches!(msg.username(), Ok(Some(u)) if u == alloc.names.username());
            let key = alloc.key;
            let mac_ok = if sha256 {
                msg.verify_integrity_sha256(&key).is_ok()
            } else {
                msg.verify_integrity(&key).is_ok()
            };
            if !user_ok || !mac_ok {
                return self.reject(now, from, msg, reply, super::AuthReject::Unauthorized(None));
            }
            sign.key = Some(key);
            sign.sha256 = sha256;
        }
        sign.unauthenticated = false;
        if let Some(c) = self.tcp.get_mut(id) {
            c.state = ConnState::Bound;
        }
        self.tcp.command(TcpCommand::Pipe { id, data: from });
        self.respond(reply, msg, Class::Success, sign, |_| Ok(()))
    }
}
