//! The media side: one UDP socket for every peer connection, plus passive ICE-TCP
//! (RFC 6544: each datagram framed with a 2-byte length, RFC 4571) on the TCP port, driven
//! from one dedicated thread; UDP goes through switchyard-netio in batches.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_netio::{RecvBatch, SendBatch};
use switchyard_sfu::{Protocol, Transmit};
use switchyard_telemetry::livekit::SfuCounters;

use crate::hub::Hub;

/// Upper bound on how long the thread sleeps in `recv_from`, so timers armed by signalling
/// (a new connection, a forwarded keyframe request) and TCP input are served promptly.
const MAX_WAIT: Duration = Duration::from_millis(10);
/// The largest datagram read: WebRTC keeps packets under a typical 1500-byte MTU.
const MAX_DATAGRAM: usize = 2048;
/// A TCP peer whose unsent output grows past this is dropped (it stopped reading).
const MAX_TCP_BACKLOG: usize = 4 * 1024 * 1024;
/// At most this many ICE-TCP connections at once.
const MAX_TCP_CONNS: usize = 1024;

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
}

/// The UDP socket and the optional ICE-TCP listener.
pub(crate) struct Sockets {
    pub(crate) udp: Arc<UdpSocket>,
    pub(crate) tcp: Option<TcpListener>,
}

/// Runs the media loop until the process exits.
///
/// UDP is read in batches (`recvmmsg` through switchyard-netio); a whole batch goes through
/// the router under one acquisition of the hub's lock, and what it produces leaves with
/// `sendmmsg` after the lock is released. The loop sleeps in `epoll` until a datagram
/// arrives or the router's next timer is due (at most [`MAX_WAIT`], so timers armed by
/// signalling and ICE-TCP input are served promptly).
pub(crate) fn run(hub: Arc<Mutex<Hub>>, sockets: Sockets, advertised: Vec<IpAddr>) {
    let Sockets { udp, tcp } = sockets;
    let udp_port = udp.local_addr().map(|a| a.port()).unwrap_or(0);
    let tcp_port = tcp
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port())
        .unwrap_or(0);
    if let Some(l) = &tcp {
        let _ = l.set_nonblocking(true);
    }
    let (mut poll, socket) = match readiness(&udp) {
        Ok(p) => p,
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
            let limited = {
                let mut h = hub.lock().expect("hub lock");
                for i in 0..n {
                    let meta = rx.meta(i);
                    bytes += rx.payload(i).len() as u64;
                    if meta.truncated {
                        unclaimed += 1;
                        continue;
                    }
                    let destination = local.for_peer(&meta.source, udp_port);
                    if !h.router().handle_datagram(
                        now,
                        Protocol::Udp,
                        meta.source,
                        destination,
                        rx.payload(i),
                    ) {
                        tracing::trace!(source = %meta.source, "datagram for no connection");
                        unclaimed += 1;
                    }
                }
                h.flush_into(&mut out);
                h.router().take_ingress_dropped()
            };
            counters.received(n as u64, bytes, unclaimed);
            counters.ingress_limited(limited);
            send_all(&socket, &mut out, &counters);
            if n < switchyard_netio::BATCH {
                break;
            }
        }
        if let Some(listener) = &tcp {
            accept(listener, &mut conns);
            read_tcp(&hub, &mut conns, &local, tcp_port, &counters);
        }
        let tcp_out = {
            let mut h = hub.lock().expect("hub lock");
            h.router().handle_timeout(Instant::now());
            h.flush_into(&mut out);
            h.take_tcp()
        };
        send_all(&socket, &mut out, &counters);
        for t in tcp_out {
            if let Some(c) = conns.get_mut(&t.destination) {
                let len = u16::try_from(t.contents.len()).unwrap_or(u16::MAX);
                c.wbuf.extend_from_slice(&len.to_be_bytes());
                c.wbuf.extend_from_slice(&t.contents[..usize::from(len)]);
            }
        }
        conns.retain(write_tcp);
    }
}

/// An epoll registration of the shared UDP socket (a duplicate descriptor of the same
/// socket, which signalling threads also send on).
fn readiness(udp: &Arc<UdpSocket>) -> std::io::Result<(mio::Poll, mio::net::UdpSocket)> {
    let poll = mio::Poll::new()?;
    let std_socket = udp.try_clone()?;
    std_socket.set_nonblocking(true)?;
    let mut socket = mio::net::UdpSocket::from_std(std_socket);
    poll.registry()
        .register(&mut socket, mio::Token(0), mio::Interest::READABLE)?;
    Ok((poll, socket))
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
    hub: &Arc<Mutex<Hub>>,
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
            let mut h = hub.lock().expect("hub lock");
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
