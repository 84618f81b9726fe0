//! One relay worker: a thread that owns a `switchyard_turn::Server`, its listening sockets
//! (one per listening address, shared with the other workers through `SO_REUSEPORT`), the
//! relay sockets of its allocations and its TCP/TLS connections.
//!
//! Nothing is shared with other workers on the packet path: the kernel hashes a client's
//! 5-tuple to the same worker's listening socket every time, and a peer's reply arrives on a
//! relay socket that this worker opened, so no packet needs a lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use switchyard_netio::{Framed, ReadStatus, RecvBatch, SendBatch, StreamConn, UdpOptions};
use switchyard_telemetry::turn::BatchSizes;
use switchyard_turn::{
    BindError, ClientAddr, ClientOutcome, ConnectionId, Event, PEER_HEADROOM, PEER_TAILROOM,
    PeerOutcome, RelayId, RelaySockets, Server, SocketToken, TcpCommand, Transport,
};

/// The largest datagram read from a client or peer. TURN relays media, which stays under
/// the path MTU; anything longer is truncated by the kernel and dropped here.
const MAX_DATAGRAM: usize = 4096;
/// Room for one STUN reply.
const REPLY_MAX: usize = 1500;
/// How often the loop wakes with nothing to do, so a stop request is never missed.
const IDLE_WAKE: Duration = Duration::from_millis(500);
/// How often stream connections without an allocation are checked against the timeout.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the worker publishes its counters for `/metrics`.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

const KIND_SHIFT: u32 = 29;
const KIND_UDP: u32 = 0;
const KIND_TCP_LISTENER: u32 = 1;
const KIND_RELAY: u32 = 2;
const KIND_CONN: u32 = 3;
/// RFC 6062 peer TCP connections (outgoing or accepted on a relay listener).
const KIND_PEER: u32 = 4;
/// DTLS listening sockets.
const KIND_DTLS: u32 = 5;
const INDEX_MASK: u32 = (1 << KIND_SHIFT) - 1;
const WAKER: Token = Token(usize::MAX);

fn token(kind: u32, index: u32) -> Token {
    Token(((kind << KIND_SHIFT) | index) as usize)
}

fn split_token(t: Token) -> (u32, u32) {
    let v = t.0 as u32;
    (v >> KIND_SHIFT, v & INDEX_MASK)
}

/// Sockets a worker listens on, opened before the thread starts so a bind error stops the
/// server at startup with a clear message.
pub(crate) struct Listeners {
    pub(crate) udp: Vec<std::net::UdpSocket>,
    pub(crate) tcp: Vec<TcpListener>,
    /// UDP sockets that speak DTLS (RFC 7350).
    pub(crate) dtls: Vec<std::net::UdpSocket>,
}

/// A client connection handed to the worker that owns the CONNECTION-ID of the
/// ConnectionBind it carries (RFC 6062 data connections land on any worker).
pub(crate) struct Handoff {
    conn: StreamConn,
    /// The ConnectionBind frame, already taken off the connection's input.
    frame: Vec<u8>,
}

/// How to reach every worker, indexed by worker id (`None`: no such worker).
pub(crate) type Siblings = Vec<Option<(std::sync::mpsc::Sender<Handoff>, Arc<Waker>)>>;

/// Per-process things every worker needs.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) dtls: Option<switchyard_netio::dtls::DtlsIdentity>,
    pub(crate) relay_socket_options: UdpOptions,
    /// coturn's `max-allocate-timeout`: a TCP/TLS connection that has made no allocation
    /// by then is closed, so idle or slow connections cannot pile up.
    pub(crate) allocate_timeout: Duration,
}

/// A worker, built on the main thread and then moved into its own thread.
pub(crate) struct Worker {
    id: usize,
    poll: Poll,
    server: Server,
    udp: Vec<(UdpSocket, SocketAddr)>,
    tcp: Vec<(TcpListener, SocketAddr)>,
    dtls: Vec<DtlsListener>,
    relays: RelayTable,
    conns: Slab<StreamConn>,
    /// RFC 6062: peer connections, by id and by the client data connection piped to them.
    peers: Slab<PeerConn>,
    peer_by_id: HashMap<ConnectionId, u32>,
    pipe_of_conn: HashMap<u32, u32>,
    inbox: std::sync::mpsc::Receiver<Handoff>,
    siblings: Siblings,
    shared: Shared,
    ops: super::reload::WorkerOps,
    batches: BatchSizes,
    /// Packets seen when the counters were last published: more means a publish is due.
    published: u64,
}

/// A DTLS listening socket and its sessions.
struct DtlsListener {
    socket: UdpSocket,
    local: SocketAddr,
    endpoint: switchyard_netio::dtls::DtlsEndpoint,
}

/// One RFC 6062 peer connection.
struct PeerConn {
    id: ConnectionId,
    /// When the connection was opened or accepted (Connect times out from here).
    started: Instant,
    state: PeerState,
    /// The client data connection it is piped to, once bound.
    data: Option<u32>,
}

enum PeerState {
    Connecting(TcpStream),
    Open(Box<StreamConn>),
    /// Only while switching from `Connecting` to `Open`.
    Switching,
}

/// RFC 6062 §5.2: a Connect whose TCP handshake has not completed by then gets 447 (the
/// kernel would keep retrying SYNs for about two minutes, past any client's transaction
/// timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A piped connection stops reading while the other side has this much unsent.
const PIPE_HIGH_WATER: usize = 256 * 1024;

impl Worker {
    pub(crate) fn new(
        id: usize,
        server: Server,
        listeners: Listeners,
        inbox: std::sync::mpsc::Receiver<Handoff>,
        shared: Shared,
        ops: super::reload::WorkerOps,
    ) -> std::io::Result<(Self, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut udp = Vec::new();
        for (i, socket) in listeners.udp.into_iter().enumerate() {
            let addr = socket.local_addr()?;
            let mut socket = UdpSocket::from_std(socket);
            poll.registry()
                .register(&mut socket, token(KIND_UDP, i as u32), Interest::READABLE)?;
            udp.push((socket, addr));
        }
        let mut tcp = Vec::new();
        for (i, mut listener) in listeners.tcp.into_iter().enumerate() {
            let addr = listener.local_addr()?;
            poll.registry().register(
                &mut listener,
                token(KIND_TCP_LISTENER, i as u32),
                Interest::READABLE,
            )?;
            tcp.push((listener, addr));
        }
        let mut dtls = Vec::new();
        if let Some(identity) = &shared.dtls {
            for (i, socket) in listeners.dtls.into_iter().enumerate() {
                let local = socket.local_addr()?;
                let mut socket = UdpSocket::from_std(socket);
                poll.registry().register(
                    &mut socket,
                    token(KIND_DTLS, i as u32),
                    Interest::READABLE,
                )?;
                let endpoint = switchyard_netio::dtls::DtlsEndpoint::new(identity.clone())
                    .map_err(std::io::Error::other)?;
                dtls.push(DtlsListener {
                    socket,
                    local,
                    endpoint,
                });
            }
        }
        let relays = RelayTable {
            registry: poll.registry().try_clone()?,
            sockets: Slab::default(),
            options: shared.relay_socket_options,
        };
        Ok((
            Self {
                id,
                poll,
                server,
                udp,
                tcp,
                dtls,
                relays,
                conns: Slab::default(),
                peers: Slab::default(),
                peer_by_id: HashMap::new(),
                pipe_of_conn: HashMap::new(),
                inbox,
                siblings: Vec::new(),
                shared,
                ops,
                batches: BatchSizes::default(),
                published: 0,
            },
            waker,
        ))
    }

    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// Every worker's handoff channel; set before the threads start.
    pub(crate) fn set_siblings(&mut self, siblings: Siblings) {
        self.siblings = siblings;
    }

    /// Runs until the stop flag is raised.
    pub(crate) fn run(mut self) {
        let _span = tracing::info_span!("worker", id = self.id).entered();
        let mut events = Events::with_capacity(1024);
        let mut client_rx = RecvBatch::for_gro();
        let mut peer_rx = RecvBatch::new(PEER_HEADROOM, MAX_DATAGRAM, PEER_TAILROOM);
        let mut replies = vec![0u8; REPLY_MAX * switchyard_netio::BATCH];
        let mut scratch = vec![0u8; switchyard_netio::stream::MAX_FRAME];
        let mut stream_reply = vec![0u8; REPLY_MAX];
        let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
        let mut next_publish = Instant::now();
        tracing::debug!("worker started");
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            // Unpublished counters wake the loop in time to publish them.
            let idle = if self.packets_seen() != self.published {
                next_publish.saturating_duration_since(now)
            } else {
                IDLE_WAKE
            };
            let timeout = self
                .server
                .poll_timeout()
                .map(|t| t.saturating_duration_since(now).min(idle))
                .unwrap_or(idle);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "poll failed; worker stops");
                    return;
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                if event.token() == WAKER {
                    self.take_handoffs(now, &mut stream_reply);
                    self.run_tcp_commands(now, &mut stream_reply);
                    continue;
                }
                let (kind, index) = split_token(event.token());
                match kind {
                    KIND_UDP => self.on_udp_listener(now, index, &mut client_rx, &mut replies),
                    KIND_RELAY if self.relays.is_tcp(RelayId(index)) => {
                        self.on_relay_accept(now, RelayId(index), &mut stream_reply)
                    }
                    KIND_RELAY => self.on_relay(now, RelayId(index), &mut peer_rx),
                    KIND_TCP_LISTENER => self.on_accept(index),
                    KIND_CONN => self.on_conn(now, index, &mut scratch, &mut stream_reply),
                    KIND_PEER => self.on_peer(now, index, &mut stream_reply),
                    KIND_DTLS => self.on_dtls(now, index, &mut scratch, &mut stream_reply),
                    _ => {}
                }
                self.run_tcp_commands(now, &mut stream_reply);
            }
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now, &mut self.relays);
                self.run_tcp_commands(now, &mut stream_reply);
            }
            if now >= next_sweep {
                self.server.reclaim_ports();
                self.close_idle_connections(now);
                self.expire_connects(now, &mut stream_reply);
                for d in &mut self.dtls {
                    d.endpoint.handle_timeouts(now, &d.socket);
                }
                next_sweep = now + SWEEP_INTERVAL;
            }
            self.log_events();
            self.apply_control();
            if now >= next_publish {
                self.publish();
                next_publish = now + PUBLISH_INTERVAL;
            }
        }
        self.publish();
        tracing::debug!(
            allocations = self.server.allocation_count(),
            "worker stopped"
        );
    }

    fn on_udp_listener(
        &mut self,
        now: Instant,
        index: u32,
        rx: &mut RecvBatch,
        replies: &mut [u8],
    ) {
        let Some((socket, local)) = self.udp.get(index as usize) else {
            return;
        };
        let local = *local;
        let client_token = SocketToken(index);
        loop {
            let n = match rx.recv(socket) {
                Ok(0) => return,
                Ok(n) => {
                    self.batches.record(n);
                    n
                }
                Err(e) => {
                    tracing::debug!(error = %e, "recvmmsg on listener failed");
                    return;
                }
            };
            // With GRO one receive may hold many datagrams, more than one round of reply
            // buffers and peer sends: go in rounds, flushing between them.
            let mut cursor = Cursor::default();
            while cursor.slot < n {
                let mut rest: &mut [u8] = replies;
                let mut batch = SendBatch::new();
                let mut to_peer = ToPeerRuns::default();
                while rest.len() >= REPLY_MAX && batch.len() < switchyard_netio::BATCH {
                    let Some((source, data)) = cursor.next(rx, n) else {
                        break;
                    };
                    let from = ClientAddr {
                        transport: Transport::Udp,
                        remote: source,
                        local,
                        token: client_token,
                    };
                    match self.server.handle_client(
                        now,
                        from,
                        data,
                        &mut rest[..REPLY_MAX],
                        &mut self.relays,
                    ) {
                        ClientOutcome::Reply { len } => {
                            let (reply, tail) = std::mem::take(&mut rest).split_at_mut(len);
                            rest = tail;
                            batch.push(source, reply);
                        }
                        ClientOutcome::ToPeer {
                            relay,
                            peer,
                            payload,
                        } => {
                            let payload = &data[payload];
                            if !to_peer.push(relay, peer, payload) {
                                to_peer.flush(&self.relays);
                                let queued = to_peer.push(relay, peer, payload);
                                debug_assert!(queued, "a flushed queue has room");
                            }
                        }
                        ClientOutcome::Drop(_) | ClientOutcome::Pending => {}
                        ClientOutcome::ReplyFrom { len, from, to } => {
                            // RFC 5780: answer from our socket at `from` (every worker holds
                            // one per listening address).
                            if let Some((s, _)) = self.udp.iter().find(|(_, a)| *a == from)
                                && let Err(e) = s.send_to(&rest[..len], to)
                            {
                                tracing::debug!(error = %e, %from, %to, "RFC 5780 reply failed");
                            }
                        }
                    }
                }
                to_peer.flush(&self.relays);
                let report = batch.flush(socket);
                if let Some(e) = report.error {
                    tracing::debug!(error = %e, dropped = report.dropped, "reply send failed");
                }
            }
            if n < switchyard_netio::BATCH {
                return;
            }
        }
    }

    fn on_relay(&mut self, now: Instant, relay: RelayId, rx: &mut RecvBatch) {
        let mut errors = 0;
        loop {
            let Some(socket) = self.relays.udp(relay) else {
                return;
            };
            let n = match rx.recv(socket) {
                Ok(0) => return,
                Ok(n) => {
                    self.batches.record(n);
                    n
                }
                Err(e) => {
                    // ICMP errors from earlier sends surface here once each (ECONNREFUSED);
                    // read on, but never spin on an error that does not go away.
                    tracing::trace!(error = %e, "relay receive error");
                    errors += 1;
                    if errors > 8 {
                        return;
                    }
                    continue;
                }
            };
            let offset = rx.offset();
            let (slots, metas) = rx.split_mut();
            // A relay belongs to one allocation, so everything it receives goes to one
            // client: one GSO send (or sendmmsg) for the whole batch.
            let mut framed: [&[u8]; switchyard_netio::BATCH] = [&[]; switchyard_netio::BATCH];
            let mut count = 0;
            let mut client = None;
            for (slot, meta) in slots.zip(metas.iter()).take(n) {
                if meta.truncated {
                    continue;
                }
                let payload = offset..offset + meta.len;
                let PeerOutcome::ToClient { client: c, range } =
                    self.server
                        .handle_peer(now, relay, meta.source, slot, payload)
                else {
                    continue;
                };
                client = Some(c);
                framed[count] = &slot[range];
                count += 1;
            }
            if let Some(client) = client {
                let framed = &framed[..count];
                match client.transport {
                    Transport::Udp => {
                        if let Some((socket, _)) = self.udp.get(client.token.0 as usize) {
                            let report =
                                switchyard_netio::send_segments(socket, client.remote, framed);
                            if let Some(e) = report.error {
                                tracing::debug!(error = %e, dropped = report.dropped, "send to client failed");
                            }
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        if let Some(conn) = self.conns.get_mut(client.token.0) {
                            for f in framed {
                                conn.send(f);
                            }
                            let _ = conn.flush();
                        }
                    }
                    Transport::Dtls => {
                        if let Some(d) = self.dtls.get_mut(client.token.0 as usize) {
                            for f in framed {
                                d.endpoint.send(&d.socket, client.remote, f);
                            }
                        }
                    }
                }
            }
            if n < switchyard_netio::BATCH {
                return;
            }
        }
    }

    fn on_accept(&mut self, index: u32) {
        let Some((listener, local)) = self.tcp.get(index as usize) else {
            return;
        };
        let local = *local;
        loop {
            match listener.accept() {
                Ok((stream, remote)) => {
                    let conn = StreamConn::new(stream, remote, local, self.shared.tls.clone());
                    let id = self.conns.insert(conn);
                    let conn = self.conns.get_mut(id).expect("just inserted");
                    if let Err(e) = self.poll.registry().register(
                        conn.source(),
                        token(KIND_CONN, id),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        tracing::warn!(error = %e, "cannot register connection");
                        self.conns.remove(id);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: keep serving what we have.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn on_conn(&mut self, now: Instant, id: u32, scratch: &mut [u8], reply: &mut [u8]) {
        if let Some(&peer) = self.pipe_of_conn.get(&id) {
            self.pump(now, id, peer);
            return;
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let status = conn.read();
        let mut broken = false;
        let mut handoff = None;
        loop {
            match conn.take_frame(framer, scratch) {
                Ok(Some(n)) => {
                    let transport = match conn.mode() {
                        switchyard_netio::Mode::Tls => Transport::Tls,
                        _ => Transport::Tcp,
                    };
                    let from = ClientAddr {
                        transport,
                        remote: conn.remote(),
                        local: conn.local(),
                        token: SocketToken(id),
                    };
                    let data = &scratch[..n];
                    // RFC 6062 data connection for another worker's peer connection.
                    if let Some(owner) = switchyard_turn::tcp_relay::connection_bind_target(data)
                        .map(|c| usize::from(switchyard_turn::tcp_relay::owner(c)))
                        .filter(|o| *o != self.id && matches!(self.siblings.get(*o), Some(Some(_))))
                    {
                        handoff = Some((owner, n));
                        break;
                    }
                    match self
                        .server
                        .handle_client(now, from, data, reply, &mut self.relays)
                    {
                        ClientOutcome::Reply { len } => {
                            conn.send(&reply[..len]);
                        }
                        ClientOutcome::ToPeer {
                            relay,
                            peer,
                            payload,
                        } => self.relays.send(relay, peer, &data[payload]),
                        ClientOutcome::Drop(_)
                        | ClientOutcome::Pending
                        | ClientOutcome::ReplyFrom { .. } => {}
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if let Some((owner, n)) = handoff {
            if let Some(Some((tx, waker))) = self.siblings.get(owner)
                && let Some(mut conn) = self.conns.remove(id)
            {
                let _ = self.poll.registry().deregister(conn.source());
                let frame = scratch[..n].to_vec();
                if tx.send(Handoff { conn, frame }).is_ok() {
                    let _ = waker.wake();
                }
            }
            return;
        }
        if conn.flush().is_err() {
            broken = true;
        }
        if broken || status == ReadStatus::Closed {
            self.close_conn(now, id);
        }
    }

    fn close_idle_connections(&mut self, now: Instant) {
        let timeout = self.shared.allocate_timeout;
        let mut idle = Vec::new();
        for (id, conn) in self.conns.iter() {
            if now.saturating_duration_since(conn.opened()) < timeout
                || self.pipe_of_conn.contains_key(&id)
            {
                continue;
            }
            let client = ClientAddr {
                transport: match conn.mode() {
                    switchyard_netio::Mode::Tls => Transport::Tls,
                    _ => Transport::Tcp,
                },
                remote: conn.remote(),
                local: conn.local(),
                token: SocketToken(id),
            };
            if !self.server.has_allocation(&client) {
                idle.push(id);
            }
        }
        for id in idle {
            tracing::debug!("closing a connection that made no allocation in time");
            self.close_conn(now, id);
        }
    }

    fn close_conn(&mut self, now: Instant, id: u32) {
        if let Some(peer) = self.pipe_of_conn.remove(&id) {
            self.close_peer(peer);
        }
        if let Some(mut conn) = self.conns.remove(id) {
            let _ = self.poll.registry().deregister(conn.source());
            let transport = match conn.mode() {
                switchyard_netio::Mode::Tls => Transport::Tls,
                _ => Transport::Tcp,
            };
            let from = ClientAddr {
                transport,
                remote: conn.remote(),
                local: conn.local(),
                token: SocketToken(id),
            };
            // RFC 8656 §3.1: an allocation made over TCP/TLS lives as long as the connection.
            self.server
                .handle_client_closed(now, from, &mut self.relays);
        }
    }

    /// Datagrams on a DTLS listener: handshakes are driven by the endpoint; decrypted
    /// datagrams are TURN messages like those on a UDP listener, and the answers go back
    /// encrypted.
    fn on_dtls(&mut self, now: Instant, index: u32, buf: &mut [u8], reply: &mut [u8]) {
        let mut apps: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        for _ in 0..switchyard_netio::BATCH {
            let Some(d) = self.dtls.get_mut(index as usize) else {
                return;
            };
            let (n, from) = match d.socket.recv_from(buf) {
                Ok(v) => v,
                Err(_) => break,
            };
            d.endpoint
                .handle_datagram(now, &d.socket, from, &buf[..n], |app| {
                    apps.push((from, app.to_vec()))
                });
        }
        let Some(local) = self.dtls.get(index as usize).map(|d| d.local) else {
            return;
        };
        for (remote, data) in apps {
            let from = ClientAddr {
                transport: Transport::Dtls,
                remote,
                local,
                token: SocketToken(index),
            };
            match self
                .server
                .handle_client(now, from, &data, reply, &mut self.relays)
            {
                ClientOutcome::Reply { len } => {
                    if let Some(d) = self.dtls.get_mut(index as usize) {
                        d.endpoint.send(&d.socket, remote, &reply[..len]);
                    }
                }
                ClientOutcome::ToPeer {
                    relay,
                    peer,
                    payload,
                } => self.relays.send(relay, peer, &data[payload]),
                _ => {}
            }
        }
    }

    // --------------------------------------------------------------------------------
    // RFC 6062 TCP allocations: the core decides, the worker owns the sockets.
    // --------------------------------------------------------------------------------

    /// Adopts client connections other workers handed over (their ConnectionBind names a
    /// connection of ours) and answers the ConnectionBind they carried.
    fn take_handoffs(&mut self, now: Instant, reply: &mut [u8]) {
        while let Ok(Handoff { conn, frame }) = self.inbox.try_recv() {
            let id = self.conns.insert(conn);
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            if self
                .poll
                .registry()
                .register(
                    conn.source(),
                    token(KIND_CONN, id),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.conns.remove(id);
                continue;
            }
            let transport = match conn.mode() {
                switchyard_netio::Mode::Tls => Transport::Tls,
                _ => Transport::Tcp,
            };
            let from = ClientAddr {
                transport,
                remote: conn.remote(),
                local: conn.local(),
                token: SocketToken(id),
            };
            if let ClientOutcome::Reply { len } =
                self.server
                    .handle_client(now, from, &frame, reply, &mut self.relays)
            {
                conn.send(&reply[..len]);
            }
            if conn.flush().is_err() {
                self.close_conn(now, id);
            }
        }
    }

    /// Carries out what the core asked for TCP allocations.
    fn run_tcp_commands(&mut self, now: Instant, reply: &mut [u8]) {
        while let Some(cmd) = self.server.poll_tcp() {
            match cmd {
                TcpCommand::Connect {
                    id,
                    relay: _,
                    from,
                    peer,
                } => self.start_connect(now, id, from, peer, reply),
                TcpCommand::Pipe { id, data } => {
                    let Some(&peer) = self.peer_by_id.get(&id) else {
                        self.close_conn(now, data.token.0);
                        continue;
                    };
                    if let Some(p) = self.peers.get_mut(peer) {
                        p.data = Some(data.token.0);
                    }
                    self.pipe_of_conn.insert(data.token.0, peer);
                    // Bytes the client sent right behind ConnectionBind, and any the peer
                    // sent while waiting, go now (readiness is edge-triggered).
                    self.pump(now, data.token.0, peer);
                }
                TcpCommand::Close { id } => {
                    if let Some(&peer) = self.peer_by_id.get(&id) {
                        self.close_peer(peer);
                    }
                }
            }
        }
    }

    /// Opens the connection of a Connect request, from the relayed address if the OS lets
    /// us share its port, else from the relay IP.
    fn start_connect(
        &mut self,
        now: Instant,
        id: ConnectionId,
        from: SocketAddr,
        peer: SocketAddr,
        reply: &mut [u8],
    ) {
        let stream = switchyard_netio::connect_tcp(from, peer)
            .or_else(|_| switchyard_netio::connect_tcp(SocketAddr::new(from.ip(), 0), peer));
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "TCP relay connect failed");
                self.connect_done(now, id, false, reply);
                return;
            }
        };
        let key = self.peers.vacant_key();
        if self
            .poll
            .registry()
            .register(
                &mut stream,
                token(KIND_PEER, key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.connect_done(now, id, false, reply);
            return;
        }
        self.peers.insert(PeerConn {
            id,
            started: now,
            state: PeerState::Connecting(stream),
            data: None,
        });
        self.peer_by_id.insert(id, key);
    }

    /// Connects that took longer than [`CONNECT_TIMEOUT`] fail with 447.
    fn expire_connects(&mut self, now: Instant, reply: &mut [u8]) {
        let late: Vec<(u32, ConnectionId)> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                matches!(p.state, PeerState::Connecting(_))
                    && now.saturating_duration_since(p.started) >= CONNECT_TIMEOUT
            })
            .map(|(k, p)| (k, p.id))
            .collect();
        for (key, id) in late {
            self.connect_done(now, id, false, reply);
            self.close_peer(key);
        }
    }

    /// Reports a connect result to the core and sends its Connect response.
    fn connect_done(&mut self, now: Instant, id: ConnectionId, ok: bool, reply: &mut [u8]) {
        match self.server.handle_tcp_connected(now, id, ok, reply) {
            Some((client, len)) => self.send_control(client, &reply[..len]),
            None => {
                if let Some(&peer) = self.peer_by_id.get(&id) {
                    self.close_peer(peer);
                }
            }
        }
    }

    /// A STUN message for a TCP allocation's control connection.
    fn send_control(&mut self, client: ClientAddr, msg: &[u8]) {
        if let Some(conn) = self.conns.get_mut(client.token.0) {
            conn.send(msg);
            let _ = conn.flush();
        }
    }

    fn on_relay_accept(&mut self, now: Instant, relay: RelayId, reply: &mut [u8]) {
        loop {
            let Some(RelaySocket::Tcp(listener)) = self.relays.sockets.get(relay.0) else {
                return;
            };
            let local = listener.local_addr().ok();
            let (mut stream, remote) = match listener.accept() {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "accept on a TCP relay failed");
                    return;
                }
            };
            let local = local.unwrap_or(remote);
            let (id, client, len) = match self
                .server
                .handle_tcp_peer_accepted(now, relay, remote, reply)
            {
                Ok(v) => v,
                Err(_) => continue, // dropping the stream closes it
            };
            let key = self.peers.vacant_key();
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    token(KIND_PEER, key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.server.handle_tcp_closed(id);
                continue;
            }
            self.peers.insert(PeerConn {
                id,
                started: now,
                state: PeerState::Open(Box::new(StreamConn::plain(stream, remote, local))),
                data: None,
            });
            self.peer_by_id.insert(id, key);
            self.send_control(client, &reply[..len]);
        }
    }

    fn on_peer(&mut self, now: Instant, key: u32, reply: &mut [u8]) {
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        let id = p.id;
        match &mut p.state {
            PeerState::Connecting(stream) => {
                let failed = matches!(stream.take_error(), Ok(Some(_)) | Err(_));
                let connected = !failed && stream.peer_addr().is_ok();
                if !failed && !connected {
                    return; // not yet
                }
                if failed {
                    // The 447 first: closing tells the core to forget the connection.
                    self.connect_done(now, id, false, reply);
                    self.close_peer(key);
                    return;
                }
                let PeerState::Connecting(stream) =
                    std::mem::replace(&mut p.state, PeerState::Switching)
                else {
                    return;
                };
                let remote = stream.peer_addr().unwrap_or_else(|_| unspecified());
                let local = stream.local_addr().unwrap_or_else(|_| unspecified());
                p.state = PeerState::Open(Box::new(StreamConn::plain(stream, remote, local)));
                self.connect_done(now, id, true, reply);
            }
            PeerState::Open(_) => {
                if let Some(data) = p.data {
                    self.pump(now, data, key);
                }
                // Not bound yet: leave the bytes in the kernel until ConnectionBind.
            }
            PeerState::Switching => {}
        }
    }

    /// Moves bytes both ways between a client data connection and its peer connection;
    /// closes both when either ends.
    fn pump(&mut self, now: Instant, data: u32, key: u32) {
        let (
            Some(conn),
            Some(PeerConn {
                state: PeerState::Open(peer),
                ..
            }),
        ) = (self.conns.get_mut(data), self.peers.get_mut(key))
        else {
            self.close_conn(now, data);
            return;
        };
        let mut closed = false;
        let (mut to_peer, mut to_client) = (0, 0);
        for _ in 0..64 {
            let a = conn.read();
            let b = peer.read();
            closed |= a == ReadStatus::Closed || b == ReadStatus::Closed;
            let (up, down) = (forward(conn, peer), forward(peer, conn));
            to_peer += up;
            to_client += down;
            closed |= conn.flush().is_err() || peer.flush().is_err();
            if up + down == 0 || closed {
                break;
            }
        }
        if closed {
            // Deliver what is already buffered before closing.
            to_peer += forward(conn, peer);
            to_client += forward(peer, conn);
            let _ = conn.flush();
            let _ = peer.flush();
        }
        self.server.record_stream_relay(to_peer, to_client);
        if closed {
            self.close_conn(now, data);
        }
    }

    /// Closes a peer connection (and the data connection piped to it) and tells the core.
    fn close_peer(&mut self, key: u32) {
        let Some(p) = self.peers.remove(key) else {
            return;
        };
        self.peer_by_id.remove(&p.id);
        match p.state {
            PeerState::Connecting(mut s) => {
                let _ = self.poll.registry().deregister(&mut s);
            }
            PeerState::Open(mut c) => {
                let _ = self.poll.registry().deregister(c.source());
            }
            PeerState::Switching => {}
        }
        self.server.handle_tcp_closed(p.id);
        if let Some(data) = p.data {
            self.pipe_of_conn.remove(&data);
            if let Some(mut conn) = self.conns.remove(data) {
                let _ = conn.flush();
                let _ = self.poll.registry().deregister(conn.source());
            }
        }
    }

    fn log_events(&mut self) {
        crate::logging::batched(|| {
            while let Some(event) = self.server.poll_event() {
                self.ops.metrics.count_event(&event);
                log_event(&event);
            }
        });
    }

    fn packets_seen(&self) -> u64 {
        let s = self.server.stats();
        s.client_packets_in + s.peer_packets_in
    }

    fn publish(&mut self) {
        self.published = self.packets_seen();
        self.ops.metrics.publish(
            self.server.stats(),
            self.server.allocation_count(),
            &self.batches,
        );
    }

    /// Applies reload requests from the main thread (SIGHUP / SIGUSR2).
    fn apply_control(&mut self) {
        while let Ok(control) = self.ops.control.try_recv() {
            match control {
                super::reload::Control::Reconfigure(cfg) => {
                    self.server.reconfigure(*cfg);
                    tracing::debug!(
                        allocations = self.server.allocation_count(),
                        "configuration reloaded"
                    );
                }
                super::reload::Control::Tls(tls) => self.shared.tls = tls,
                super::reload::Control::Dtls(identity) => {
                    for l in &mut self.dtls {
                        l.endpoint.set_identity(identity.clone());
                    }
                }
            }
        }
    }
}

/// One log line per allocation lifecycle step or refusal; never per packet.
fn log_event(event: &Event) {
    match event {
        Event::AllocationCreated {
            client,
            relayed,
            username,
        } => tracing::info!(
            client = %client.remote, transport = ?client.transport, %relayed, user = %username,
            "allocation created"
        ),
        Event::AllocationFreed {
            client,
            relayed,
            username,
            reason,
        } => tracing::info!(
            client = %client.remote, %relayed, user = %username, reason = ?reason,
            "allocation freed"
        ),
        Event::AllocationRefused {
            client,
            username,
            reason,
        } => tracing::info!(
            client = %client.remote, user = %username, reason = ?reason, "allocation refused"
        ),
        Event::PeerDenied {
            client,
            peer,
            class,
        } => tracing::info!(
            client = %client.remote, %peer, class = class.name(),
            "peer denied by policy (open it with allowed-peer-ip if this peer is meant to be reachable)"
        ),
        Event::AuthFailed {
            client,
            username,
            reason,
        } => tracing::info!(
            client = %client.remote, user = %username, reason = reason.name(), "authentication failed"
        ),
        Event::AllocationMoved { from, to, relayed } => tracing::info!(
            from = %from.remote, to = %to.remote, %relayed, "allocation moved (mobility)"
        ),
        other => tracing::debug!("{other:?}"),
    }
}

/// Copies what `from` has read into `to`'s output, up to the high-water mark; bytes it
/// cannot take stay in `from` (which then stops reading: TCP back-pressure, no loss).
fn forward(from: &mut StreamConn, to: &mut StreamConn) -> usize {
    let room = PIPE_HIGH_WATER.saturating_sub(to.pending_output());
    let n = from.input().len().min(room);
    if n == 0 {
        return 0;
    }
    let taken = to.send_partial(&from.input()[..n]);
    from.consume(taken);
    taken
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

fn framer(buf: &[u8]) -> Framed {
    match switchyard_stun::frame(buf) {
        switchyard_stun::Frame::Incomplete { .. } => Framed::Incomplete,
        switchyard_stun::Frame::Stun(n) | switchyard_stun::Frame::ChannelData(n) => {
            Framed::Complete(n)
        }
        _ => Framed::Invalid,
    }
}

/// Where the listener loop is in a receive batch: which buffer, and which datagram of a
/// coalesced (GRO) run in it.
#[derive(Default)]
struct Cursor {
    slot: usize,
    datagram: usize,
}

impl Cursor {
    /// The next datagram and its sender, skipping truncated buffers.
    fn next<'r>(&mut self, rx: &'r RecvBatch, n: usize) -> Option<(SocketAddr, &'r [u8])> {
        while self.slot < n {
            let meta = rx.meta(self.slot);
            if !meta.truncated {
                if let Some(d) = rx.datagrams(self.slot).nth(self.datagram) {
                    self.datagram += 1;
                    return Some((meta.source, d));
                }
            }
            self.slot += 1;
            self.datagram = 0;
        }
        None
    }
}

/// Client payloads bound for peers, queued while a receive batch is processed so that runs
/// to the same relay and peer leave in one GSO send instead of one syscall each.
struct ToPeerRuns<'a> {
    items: [Option<(RelayId, SocketAddr, &'a [u8])>; RUN_MAX],
    len: usize,
}

/// Payloads queued per flush: a whole GRO run of one client can leave in one GSO send.
const RUN_MAX: usize = switchyard_netio::MAX_GSO_SEGMENTS;

impl Default for ToPeerRuns<'_> {
    fn default() -> Self {
        Self {
            items: [None; RUN_MAX],
            len: 0,
        }
    }
}

impl<'a> ToPeerRuns<'a> {
    /// Queues a payload; false when full (flush first).
    #[must_use]
    fn push(&mut self, relay: RelayId, peer: SocketAddr, payload: &'a [u8]) -> bool {
        let Some(slot) = self.items.get_mut(self.len) else {
            return false;
        };
        *slot = Some((relay, peer, payload));
        self.len += 1;
        true
    }

    fn flush(&mut self, relays: &RelayTable) {
        let items = &self.items[..self.len];
        let mut k = 0;
        while k < items.len() {
            let Some((relay, peer, first)) = items[k] else {
                break;
            };
            let mut run: [&[u8]; RUN_MAX] = [&[]; RUN_MAX];
            run[0] = first;
            let mut end = k + 1;
            while let Some(Some((r, p, payload))) = items.get(end) {
                if *r != relay || *p != peer {
                    break;
                }
                run[end - k] = payload;
                end += 1;
            }
            relays.send_run(relay, peer, &run[..end - k]);
            k = end;
        }
        self.len = 0;
    }
}

/// The worker's relay sockets, indexed by `RelayId`: UDP sockets, and the listeners of
/// RFC 6062 TCP allocations.
struct RelayTable {
    registry: mio::Registry,
    sockets: Slab<RelaySocket>,
    options: UdpOptions,
}

enum RelaySocket {
    Udp(UdpSocket),
    Tcp(TcpListener),
}

impl RelayTable {
    fn udp(&self, relay: RelayId) -> Option<&UdpSocket> {
        match self.sockets.get(relay.0)? {
            RelaySocket::Udp(s) => Some(s),
            RelaySocket::Tcp(_) => None,
        }
    }

    fn is_tcp(&self, relay: RelayId) -> bool {
        matches!(self.sockets.get(relay.0), Some(RelaySocket::Tcp(_)))
    }

    fn send_run(&self, relay: RelayId, peer: SocketAddr, payloads: &[&[u8]]) {
        match payloads {
            [] => {}
            [one] => self.send(relay, peer, one),
            many => {
                if let Some(socket) = self.udp(relay) {
                    let report = switchyard_netio::send_segments(socket, peer, many);
                    if let Some(e) = report.error {
                        tracing::trace!(error = %e, %peer, "relay send failed");
                    }
                }
            }
        }
    }

    fn send(&self, relay: RelayId, peer: SocketAddr, payload: &[u8]) {
        if let Some(socket) = self.udp(relay) {
            match socket.send_to(payload, peer) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => tracing::trace!(error = %e, %peer, "relay send failed"),
            }
        }
    }
}

impl RelaySockets for RelayTable {
    fn bind(&mut self, addr: SocketAddr) -> Result<RelayId, BindError> {
        let socket = switchyard_netio::bind_udp(addr, self.options).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                BindError::InUse
            } else {
                BindError::Other
            }
        })?;
        let mut socket = UdpSocket::from_std(socket);
        let id = self.sockets.vacant_key();
        self.registry
            .register(&mut socket, token(KIND_RELAY, id), Interest::READABLE)
            .map_err(|_| BindError::Other)?;
        let inserted = self.sockets.insert(RelaySocket::Udp(socket));
        debug_assert_eq!(inserted, id);
        Ok(RelayId(id))
    }

    fn bind_tcp(&mut self, addr: SocketAddr) -> Result<RelayId, BindError> {
        // SO_REUSEPORT: Connect opens its peer connections from this same address.
        let mut listener = switchyard_netio::bind_tcp(addr, true).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                BindError::InUse
            } else {
                BindError::Other
            }
        })?;
        let id = self.sockets.vacant_key();
        self.registry
            .register(&mut listener, token(KIND_RELAY, id), Interest::READABLE)
            .map_err(|_| BindError::Other)?;
        let inserted = self.sockets.insert(RelaySocket::Tcp(listener));
        debug_assert_eq!(inserted, id);
        Ok(RelayId(id))
    }

    fn close(&mut self, id: RelayId) {
        match self.sockets.remove(id.0) {
            // Closing the only descriptor of a socket takes it out of the epoll set: no
            // EPOLL_CTL_DEL syscall per freed allocation.
            Some(RelaySocket::Udp(s)) => drop(s),
            Some(RelaySocket::Tcp(mut l)) => {
                let _ = self.registry.deregister(&mut l);
            }
            None => {}
        }
    }
}

/// A vector with a free list: stable small integer keys, reused after removal.
struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    fn vacant_key(&self) -> u32 {
        self.free
            .last()
            .copied()
            .unwrap_or(self.entries.len() as u32)
    }

    fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(k) => {
                self.entries[k as usize] = Some(value);
                k
            }
            None => {
                self.entries.push(Some(value));
                (self.entries.len() - 1) as u32
            }
        }
    }

    fn get(&self, key: u32) -> Option<&T> {
        self.entries.get(key as usize).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, key: u32) -> Option<&mut T> {
        self.entries.get_mut(key as usize).and_then(Option::as_mut)
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k as u32, v)))
    }

    fn remove(&mut self, key: u32) -> Option<T> {
        let v = self.entries.get_mut(key as usize)?.take();
        if v.is_some() {
            self.free.push(key);
        }
        v
    }
}
