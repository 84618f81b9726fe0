//! The media side: one thread per hub (see [`crate::shards`]), each reading its own
//! socket on the shared UDP port, plus passive ICE-TCP (RFC 6544: each datagram framed with
//! a 2-byte length, RFC 4571) on the TCP port, served by the first thread. UDP goes through
//! switchyard-netio in batches.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_netio::{RecvBatch, SendBatch};
use switchyard_sfu::{Protocol, ShardId, Transmit};
use switchyard_telemetry::livekit::SfuCounters;

use crate::hub::Hub;
use crate::shards::{Inbox, Shards};

/// Upper bound on how long the thread sleeps in `recv_from`, so timers armed by signalling
/// (a new connection, a forwarded keyframe request) and TCP input are served promptly.
const MAX_WAIT: Duration = Duration::from_millis(10);
/// The largest datagram read: WebRTC keeps packets under a typical 1500-byte MTU.
const MAX_DATAGRAM: usize = 2048;
/// A TCP peer whose unsent output grows past this is dropped (it stopped reading).
const MAX_TCP_BACKLOG: usize = 4 * 1024 * 1024;
/// At most this many ICE-TCP connections at once.
const MAX_TCP_CONNS: usize = 1024;
/// The poll token of the socket, and of the waker other threads use when they changed
/// this thread's hub (its timers may now be due sooner).
const SOCKET: mio::Token = mio::Token(0);
pub(crate) const WAKE: mio::Token = mio::Token(1);

/// Our address as ICE sees it for a peer: the advertised address of the same family (the
/// sockets may be bound to the unspecified address).
struct LocalAddrs {
    advertised: Vec<IpAddr>,
}

impl LocalAddrs {
    fn for_peer(&self, src: &SocketAddr, port: u16) -> SocketAddr {
        let ip = self
            .advertised
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() == src.is_ipv4())
            .unwrap_or(src.ip());
        SocketAddr::new(ip, port)
    }
}

struct TcpConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// The hub that claimed this connection's frames.
    shard: Option<usize>,
}

/// This thread's socket on the UDP port and, for the first thread, the ICE-TCP listener.
pub(crate) struct Sockets {
    pub(crate) udp: Arc<UdpSocket>,
    pub(crate) tcp: Option<TcpListener>,
}

/// Which hub each client address belongs to, as one media thread learned it. The kernel
/// hands all datagrams from one address to the same socket, so no other thread needs it.
struct Owners {
    by_source: HashMap<SocketAddr, Owner>,
    swept: Instant,
}

#[derive(Clone, Copy)]
struct Owner {
    shard: usize,
    /// The last STUN check that named the hub; consent checks (RFC 7675) refresh it.
    seen: Instant,
}

/// An address no check refreshed for this long is forgotten (its next check names its hub
/// again).
const OWNER_TTL: Duration = Duration::from_secs(120);
/// At most this many addresses are remembered per thread (a flood of checks from spoofed
/// addresses must not grow the table without bound); beyond it, lookups fall back to
/// [`ask_every_hub`].
const MAX_OWNERS: usize = 1 << 16;

impl Owners {
    fn new(now: Instant) -> Self {
        Owners {
            by_source: HashMap::new(),
            swept: now,
        }
    }

    /// The hub a datagram goes to first: the one its ufrag names, else the one its
    /// address was last seen with, else this thread's own.
    fn guess(&self, source: &SocketAddr, bytes: &[u8], me: usize, hubs: usize) -> (usize, bool) {
        if let Some(s) = tagged(bytes, hubs) {
            return (s, true);
        }
        match self.by_source.get(source) {
            Some(o) => (o.shard, true),
            None => (me, false),
        }
    }

    fn learn(&mut self, source: SocketAddr, shard: usize, now: Instant) {
        if self.by_source.len() < MAX_OWNERS || self.by_source.contains_key(&source) {
            self.by_source.insert(source, Owner { shard, seen: now });
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < OWNER_TTL / 4 {
            return;
        }
        self.swept = now;
        self.by_source
            .retain(|_, o| now.saturating_duration_since(o.seen) < OWNER_TTL);
    }
}

/// How many datagrams per second one thread may offer to every hub (see [`ask_every_hub`]).
/// Live clients never need it (their consent checks keep their address known), so this
/// only bounds what a flood from unknown addresses can make a thread do in others' hubs.
const FALLBACKS_PER_SEC: u32 = 1000;

/// The budget for [`FALLBACKS_PER_SEC`].
struct Fallbacks {
    since: Instant,
    used: u32,
}

impl Fallbacks {
    fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.since) >= Duration::from_secs(1) {
            self.since = now;
            self.used = 0;
        }
        self.used += 1;
        self.used <= FALLBACKS_PER_SEC
    }
}

/// DTLS, RTP or RTCP (RFC 7983's first-byte ranges): what a connection sends once ICE is
/// up, so what can belong to a hub without naming it.
fn after_ice(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(20..=63 | 128..=191))
}

/// The hub a STUN check's ufrag names, if it is one of the `hubs` (a ufrag from before a
/// restart with fewer threads names none).
fn tagged(datagram: &[u8], hubs: usize) -> Option<usize> {
    ShardId::of_datagram(datagram)
        .map(ShardId::index)
        .filter(|&s| s < hubs)
}

/// Runs media thread `me` (serving hub `me`) until the process exits.
///
/// UDP is read in batches (`recvmmsg` through switchyard-netio). Each datagram goes to the
/// hub that owns its connection; the datagrams of one hub go through its router under one
/// acquisition of its lock, and what the routers produce leaves with `sendmmsg` after the
/// lock is released. The loop sleeps in `epoll` until a datagram arrives, another thread
/// wakes it, or the hub's next timer is due (at most [`MAX_WAIT`], so timers armed by
/// signalling and ICE-TCP input are served promptly).
pub(crate) fn run(
    me: usize,
    shards: Arc<Shards>,
    mut poll: mio::Poll,
    sockets: Sockets,
    advertised: Vec<IpAddr>,
) {
    let Sockets { udp, tcp } = sockets;
    let hub = shards.hub(me).clone();
    let udp_port = udp.local_addr().map(|a| a.port()).unwrap_or(0);
    let tcp_port = tcp
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .unwrap_or(0);
    if let Some(l) = &tcp {
        let _ = l.set_nonblocking(true);
    }
    let socket = match readiness(&udp, &poll) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "media: cannot watch the UDP socket; media stops");
            return;
        }
    };
    let local = LocalAddrs { advertised };
    let mut conns: HashMap<SocketAddr, TcpConn> = HashMap::new();
    let mut events = mio::Events::with_capacity(16);
    let counters = hub.lock().expect("hub lock").counters.clone();
    let mut rx = RecvBatch::new(0, MAX_DATAGRAM, 0);
    let mut out: Vec<Transmit> = Vec::with_capacity(switchyard_netio::BATCH * 4);
    let mut owners = Owners::new(Instant::now());
    // Per datagram of a batch: the hub it goes to, and whether that is settled (known from
    // the ufrag or the address, or handled) rather than a guess.
    let mut route = [(0usize, false); switchyard_netio::BATCH];
    let single = shards.len() == 1;
    let mut inbox = Inbox::default();
    let mut fallbacks = Fallbacks {
        since: Instant::now(),
        used: 0,
    };
    loop {
        let wait = {
            let h = hub.lock().expect("hub lock");
            h.next_timeout()
        }
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT);
        if let Err(e) = poll.poll(&mut events, Some(wait))
            && e.kind() != ErrorKind::Interrupted
        {
            tracing::debug!("media poll: {e}");
        }
        if !single {
            shards.take_inbox(me, &mut inbox);
            if !inbox.is_empty() {
                handle_handed(&hub, &inbox, &mut out, &counters);
                send_all(&socket, &mut out, &counters);
            }
        }
        loop {
            let n = match rx.recv(&socket) {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!("udp receive: {e}");
                    0
                }
            };
            if n == 0 {
                break;
            }
            let now = Instant::now();
            let (mut bytes, mut unclaimed) = (0u64, 0u64);
            // Other hubs handed something in this batch, by bit.
            let mut handed = 0u64;
            for (i, r) in route.iter_mut().enumerate().take(n) {
                let meta = rx.meta(i);
                bytes += rx.payload(i).len() as u64;
                *r = (me, true);
                if meta.truncated {
                    unclaimed += 1;
                    continue;
                }
                if single {
                    continue;
                }
                let (shard, known) = owners.guess(&meta.source, rx.payload(i), me, shards.len());
                *r = (shard, known);
                if shard == me {
                    continue;
                }
                // Another hub's connection: copied over, nothing is decided here.
                if tagged(rx.payload(i), shards.len()).is_some() {
                    owners.learn(meta.source, shard, now);
                }
                let destination = local.for_peer(&meta.source, udp_port);
                if !shards
                    .inbox(shard)
                    .push(Protocol::Udp, meta.source, destination, rx.payload(i))
                {
                    unclaimed += 1;
                }
                handed |= 1 << shard;
            }
            for shard in (0..shards.len()).filter(|s| handed & (1 << s) != 0) {
                shards.wake(shard);
            }
            let mut unrouted = false;
            let mut limited = {
                let mut h = hub.lock().expect("hub lock");
                for (i, r) in route.iter_mut().enumerate().take(n) {
                    let meta = rx.meta(i);
                    if meta.truncated || r.0 != me {
                        continue;
                    }
                    let destination = local.for_peer(&meta.source, udp_port);
                    let claimed = h.router().handle_datagram(
                        now,
                        Protocol::Udp,
                        meta.source,
                        destination,
                        rx.payload(i),
                    );
                    match (claimed, r.1) {
                        (true, _) if single => {}
                        // A check naming this hub, or a guess that proved right: remember.
                        (true, known) => {
                            if !known || tagged(rx.payload(i), shards.len()).is_some() {
                                owners.learn(meta.source, me, now);
                            }
                        }
                        // Unknown address, not this hub's: the other hubs are asked below.
                        (false, false) => unrouted = true,
                        (false, true) => {
                            tracing::trace!(source = %meta.source, "datagram for no connection");
                            unclaimed += 1;
                            r.1 = true;
                        }
                    }
                }
                h.flush_into(&mut out);
                h.router().take_ingress_dropped()
            };
            if unrouted {
                unclaimed += ask_every_hub(
                    &shards,
                    me,
                    &rx,
                    n,
                    &route,
                    &local,
                    udp_port,
                    now,
                    &mut owners,
                    &mut fallbacks,
                    &mut out,
                    &mut limited,
                );
            }
            counters.received(n as u64, bytes, unclaimed);
            counters.ingress_limited(limited);
            send_all(&socket, &mut out, &counters);
            if n < switchyard_netio::BATCH {
                break;
            }
        }
        owners.sweep(Instant::now());
        if let Some(listener) = &tcp {
            accept(listener, &mut conns);
            read_tcp(me, &shards, &mut conns, &local, tcp_port, &counters);
        }
        let tcp_out = {
            let mut h = hub.lock().expect("hub lock");
            h.router().handle_timeout(Instant::now());
            h.flush_into(&mut out);
            h.take_tcp()
        };
        send_all(&socket, &mut out, &counters);
        if tcp.is_none() {
            if !tcp_out.is_empty() {
                shards.send_tcp(tcp_out);
            }
            continue;
        }
        frame_tcp(&mut conns, tcp_out.into_iter().chain(shards.take_tcp()));
        conns.retain(write_tcp);
    }
}

/// Runs what other threads handed over through this thread's hub (one lock for all).
fn handle_handed(hub: &Mutex<Hub>, inbox: &Inbox, out: &mut Vec<Transmit>, counters: &SfuCounters) {
    let now = Instant::now();
    let mut unclaimed = 0;
    let limited = {
        let mut h = hub.lock().expect("hub lock");
        for (d, datagram) in inbox.iter() {
            let router = h.router();
            if !router.handle_datagram(now, d.proto, d.source, d.destination, datagram) {
                unclaimed += 1;
            }
        }
        h.flush_into(out);
        h.router().take_ingress_dropped()
    };
    // The receiving thread counted them in.
    counters.received(0, 0, unclaimed);
    counters.ingress_limited(limited);
}

/// Queues ICE-TCP datagrams on their connections, each framed with its 2-byte length.
fn frame_tcp(conns: &mut HashMap<SocketAddr, TcpConn>, out: impl Iterator<Item = Transmit>) {
    for t in out {
        if let Some(c) = conns.get_mut(&t.destination) {
            let len = u16::try_from(t.contents.len()).unwrap_or(u16::MAX);
            c.wbuf.extend_from_slice(&len.to_be_bytes());
            c.wbuf.extend_from_slice(&t.contents[..usize::from(len)]);
        }
    }
}

/// Datagrams from addresses no hub was known for and that this thread's hub did not claim:
/// DTLS and media are offered to every other hub in turn, under its lock (a client whose
/// checks this thread never saw, or whose entry expired: rare, so the lock is not worth
/// avoiding, and [`FALLBACKS_PER_SEC`] keeps it rare under a flood). STUN always names its
/// hub, so a STUN check no hub took is no hub's. Returns how many no hub claimed.
#[allow(clippy::too_many_arguments)]
fn ask_every_hub(
    shards: &Shards,
    me: usize,
    rx: &RecvBatch,
    n: usize,
    route: &[(usize, bool)],
    local: &LocalAddrs,
    udp_port: u16,
    now: Instant,
    owners: &mut Owners,
    budget: &mut Fallbacks,
    out: &mut Vec<Transmit>,
    limited: &mut u64,
) -> u64 {
    let mut unclaimed = 0;
    for (i, r) in route.iter().enumerate().take(n) {
        let meta = rx.meta(i);
        if meta.truncated || r.1 || r.0 != me {
            continue;
        }
        let destination = local.for_peer(&meta.source, udp_port);
        let mut claimed = false;
        let others = after_ice(rx.payload(i)) && budget.allow(now);
        for shard in (0..shards.len()).filter(|&s| others && s != r.0) {
            let mut h = shards.hub(shard).lock().expect("hub lock");
            if h.router().handle_datagram(
                now,
                Protocol::Udp,
                meta.source,
                destination,
                rx.payload(i),
            ) {
                h.flush_into(out);
                *limited += h.router().take_ingress_dropped();
                drop(h);
                owners.learn(meta.source, shard, now);
                if shard != me {
                    shards.wake(shard);
                }
                claimed = true;
                break;
            }
        }
        if !claimed {
            tracing::trace!(source = %meta.source, "datagram for no connection");
            unclaimed += 1;
        }
    }
    unclaimed
}

/// An epoll registration of this thread's UDP socket (a duplicate descriptor of the same
/// socket, which signalling threads also send on).
fn readiness(udp: &Arc<UdpSocket>, poll: &mio::Poll) -> std::io::Result<mio::net::UdpSocket> {
    let std_socket = udp.try_clone()?;
    std_socket.set_nonblocking(true)?;
    let mut socket = mio::net::UdpSocket::from_std(std_socket);
    poll.registry()
        .register(&mut socket, SOCKET, mio::Interest::READABLE)?;
    Ok(socket)
}

/// Sends the collected datagrams with `sendmmsg`, a batch at a time, and empties `out`.
fn send_all(socket: &mio::net::UdpSocket, out: &mut Vec<Transmit>, counters: &SfuCounters) {
    for chunk in out.chunks(switchyard_netio::BATCH) {
        let mut batch = SendBatch::new();
        let mut bytes = 0u64;
        for t in chunk {
            batch.push(t.destination, &t.contents);
            bytes += t.contents.len() as u64;
        }
        let report = batch.flush(socket);
        if let Some(e) = report.error {
            tracing::debug!(error = %e, dropped = report.dropped, "udp send");
        }
        let dropped = report.dropped as u64;
        counters.sent(
            chunk.len() as u64 - dropped.min(chunk.len() as u64),
            bytes,
            dropped,
        );
    }
    out.clear();
}

fn accept(listener: &TcpListener, conns: &mut HashMap<SocketAddr, TcpConn>) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if conns.len() >= MAX_TCP_CONNS || stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, "ICE-TCP connection");
                conns.insert(
                    peer,
                    TcpConn {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        shard: None,
                    },
                );
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::debug!("ICE-TCP accept: {e}");
                return;
            }
        }
    }
}

/// Reads what every connection has and hands complete frames to the router; drops
/// connections that closed or failed.
fn read_tcp(
    me: usize,
    shards: &Shards,
    conns: &mut HashMap<SocketAddr, TcpConn>,
    local: &LocalAddrs,
    port: u16,
    counters: &SfuCounters,
) {
    let mut chunk = [0u8; 4096];
    conns.retain(|peer, c| {
        let mut alive = true;
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    alive = false;
                    break;
                }
                Ok(n) => c.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    alive = false;
                    break;
                }
            }
        }
        let mut used = 0;
        while c.rbuf.len() - used >= 2 {
            let len = usize::from(u16::from_be_bytes([c.rbuf[used], c.rbuf[used + 1]]));
            if c.rbuf.len() - used - 2 < len {
                break;
            }
            let frame = &c.rbuf[used + 2..used + 2 + len];
            used += 2 + len;
            let destination = local.for_peer(peer, port);
            // The hub the frame's ufrag names (the connection's first frame is a check),
            // else the one its earlier checks named.
            if let Some(s) = tagged(frame, shards.len()) {
                c.shard = Some(s);
            }
            let shard = c.shard.unwrap_or(me);
            if shard != me {
                if shards
                    .inbox(shard)
                    .push(Protocol::Tcp, *peer, destination, frame)
                {
                    shards.wake(shard);
                }
                continue;
            }
            let mut h = shards.hub(me).lock().expect("hub lock");
            h.router()
                .handle_datagram(Instant::now(), Protocol::Tcp, *peer, destination, frame);
            let limited = h.router().take_ingress_dropped();
            h.flush();
            counters.ingress_limited(limited);
        }
        c.rbuf.drain(..used);
        alive
    });
}

/// Writes pending output; false when the connection should be dropped.
fn write_tcp(peer: &SocketAddr, c: &mut TcpConn) -> bool {
    while !c.wbuf.is_empty() {
        match c.stream.write(&c.wbuf) {
            Ok(0) => return false,
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(%peer, "ICE-TCP write: {e}");
                return false;
            }
        }
    }
    c.wbuf.len() <= MAX_TCP_BACKLOG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dtls_and_media_can_belong_to_an_unnamed_hub() {
        // RFC 7983: STUN 0-3, DTLS 20-63, RTP/RTCP 128-191.
        for first in [0u8, 1, 3, 16, 64, 127, 192, 255] {
            assert!(!after_ice(&[first, 0, 0, 0]), "{first}");
        }
        for first in [20u8, 22, 63, 128, 0x80, 191] {
            assert!(after_ice(&[first, 0, 0, 0]), "{first}");
        }
        assert!(!after_ice(&[]));
    }

    #[test]
    fn fallbacks_are_budgeted_per_second() {
        let start = Instant::now();
        let mut f = Fallbacks {
            since: start,
            used: 0,
        };
        let allowed = (0..FALLBACKS_PER_SEC + 500)
            .filter(|_| f.allow(start + Duration::from_millis(10)))
            .count();
        assert_eq!(allowed, FALLBACKS_PER_SEC as usize);
        assert!(!f.allow(start + Duration::from_millis(999)));
        assert!(f.allow(start + Duration::from_secs(1)));
    }
}
