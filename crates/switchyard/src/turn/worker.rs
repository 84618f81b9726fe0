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

use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};
use switchyard_netio::{Framed, ReadStatus, RecvBatch, SendBatch, StreamConn, UdpOptions};
use switchyard_turn::{
    BindError, ClientAddr, ClientOutcome, Event, PEER_HEADROOM, PEER_TAILROOM, PeerOutcome,
    RelayId, RelaySockets, Server, SocketToken, Transport,
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

const KIND_SHIFT: u32 = 29;
const KIND_UDP: u32 = 0;
const KIND_TCP_LISTENER: u32 = 1;
const KIND_RELAY: u32 = 2;
const KIND_CONN: u32 = 3;
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
}

/// Per-process things every worker needs.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
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
    relays: RelayTable,
    conns: Slab<StreamConn>,
    shared: Shared,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        server: Server,
        listeners: Listeners,
        shared: Shared,
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
                relays,
                conns: Slab::default(),
                shared,
            },
            waker,
        ))
    }

    /// Runs until the stop flag is raised.
    pub(crate) fn run(mut self) {
        let _span = tracing::info_span!("worker", id = self.id).entered();
        let mut events = Events::with_capacity(1024);
        let mut client_rx = RecvBatch::new(0, MAX_DATAGRAM, 0);
        let mut peer_rx = RecvBatch::new(PEER_HEADROOM, MAX_DATAGRAM, PEER_TAILROOM);
        let mut replies = vec![0u8; REPLY_MAX * switchyard_netio::BATCH];
        let mut scratch = vec![0u8; switchyard_netio::stream::MAX_FRAME];
        let mut stream_reply = vec![0u8; REPLY_MAX];
        let mut next_sweep = Instant::now() + SWEEP_INTERVAL;
        tracing::debug!("worker started");
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let timeout = self
                .server
                .poll_timeout()
                .map(|t| t.saturating_duration_since(now).min(IDLE_WAKE))
                .unwrap_or(IDLE_WAKE);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "poll failed; worker stops");
                    return;
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let (kind, index) = split_token(event.token());
                match kind {
                    KIND_UDP => self.on_udp_listener(now, index, &mut client_rx, &mut replies),
                    KIND_RELAY => self.on_relay(now, RelayId(index), &mut peer_rx),
                    KIND_TCP_LISTENER => self.on_accept(index),
                    KIND_CONN => self.on_conn(now, index, &mut scratch, &mut stream_reply),
                    _ => {}
                }
            }
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now, &mut self.relays);
            }
            if now >= next_sweep {
                self.close_idle_connections(now);
                next_sweep = now + SWEEP_INTERVAL;
            }
            self.log_events();
        }
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
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(error = %e, "recvmmsg on listener failed");
                    return;
                }
            };
            let mut batch = SendBatch::new();
            let mut to_peer = ToPeerRuns::default();
            for (i, reply) in replies.chunks_mut(REPLY_MAX).take(n).enumerate() {
                let meta = rx.meta(i);
                if meta.truncated {
                    continue;
                }
                let from = ClientAddr {
                    transport: Transport::Udp,
                    remote: meta.source,
                    local,
                    token: client_token,
                };
                let data = rx.payload(i);
                match self
                    .server
                    .handle_client(now, from, data, reply, &mut self.relays)
                {
                    ClientOutcome::Reply { len } => {
                        batch.push(meta.source, &reply[..len]);
                    }
                    ClientOutcome::ToPeer {
                        relay,
                        peer,
                        payload,
                    } => to_peer.push(relay, peer, &data[payload]),
                    ClientOutcome::Drop(_) | ClientOutcome::Pending => {}
                }
            }
            to_peer.flush(&self.relays);
            let report = batch.flush(socket);
            if let Some(e) = report.error {
                tracing::debug!(error = %e, dropped = report.dropped, "reply send failed");
            }
            if n < switchyard_netio::BATCH {
                return;
            }
        }
    }

    fn on_relay(&mut self, now: Instant, relay: RelayId, rx: &mut RecvBatch) {
        let mut errors = 0;
        loop {
            let Some(socket) = self.relays.sockets.get(relay.0) else {
                return;
            };
            let n = match rx.recv(socket) {
                Ok(0) => return,
                Ok(n) => n,
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
                    _ => {}
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
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let status = conn.read();
        let mut broken = false;
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
                        ClientOutcome::Drop(_) | ClientOutcome::Pending => {}
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
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
            if now.saturating_duration_since(conn.opened()) < timeout {
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

    fn log_events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            log_event(&event);
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

fn framer(buf: &[u8]) -> Framed {
    match switchyard_stun::frame(buf) {
        switchyard_stun::Frame::Incomplete { .. } => Framed::Incomplete,
        switchyard_stun::Frame::Stun(n) | switchyard_stun::Frame::ChannelData(n) => {
            Framed::Complete(n)
        }
        _ => Framed::Invalid,
    }
}

/// Client payloads bound for peers, queued while a receive batch is processed so that runs
/// to the same relay and peer leave in one GSO send instead of one syscall each.
#[derive(Default)]
struct ToPeerRuns<'a> {
    items: [Option<(RelayId, SocketAddr, &'a [u8])>; switchyard_netio::BATCH],
    len: usize,
}

impl<'a> ToPeerRuns<'a> {
    fn push(&mut self, relay: RelayId, peer: SocketAddr, payload: &'a [u8]) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some((relay, peer, payload));
            self.len += 1;
        }
    }

    fn flush(&mut self, relays: &RelayTable) {
        let items = &self.items[..self.len];
        let mut k = 0;
        while k < items.len() {
            let Some((relay, peer, first)) = items[k] else {
                break;
            };
            let mut run: [&[u8]; switchyard_netio::BATCH] = [&[]; switchyard_netio::BATCH];
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

/// The worker's relay sockets, indexed by `RelayId`.
struct RelayTable {
    registry: mio::Registry,
    sockets: Slab<UdpSocket>,
    options: UdpOptions,
}

impl RelayTable {
    fn send_run(&self, relay: RelayId, peer: SocketAddr, payloads: &[&[u8]]) {
        match payloads {
            [] => {}
            [one] => self.send(relay, peer, one),
            many => {
                if let Some(socket) = self.sockets.get(relay.0) {
                    let report = switchyard_netio::send_segments(socket, peer, many);
                    if let Some(e) = report.error {
                        tracing::trace!(error = %e, %peer, "relay send failed");
                    }
                }
            }
        }
    }

    fn send(&self, relay: RelayId, peer: SocketAddr, payload: &[u8]) {
        if let Some(socket) = self.sockets.get(relay.0) {
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
        let inserted = self.sockets.insert(socket);
        debug_assert_eq!(inserted, id);
        Ok(RelayId(id))
    }

    fn close(&mut self, id: RelayId) {
        if let Some(mut socket) = self.sockets.remove(id.0) {
            let _ = self.registry.deregister(&mut socket);
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
