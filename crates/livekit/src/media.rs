//! The media side: one UDP socket for every peer connection, plus passive ICE-TCP
//! (RFC 6544: each datagram framed with a 2-byte length, RFC 4571) on the TCP port, driven
//! from one dedicated thread.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_sfu::Protocol;

use crate::hub::Hub;

/// Upper bound on how long the thread sleeps in `recv_from`, so timers armed by signalling
/// (a new connection, a forwarded keyframe request) and TCP input are served promptly.
const MAX_WAIT: Duration = Duration::from_millis(10);
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
    let local = LocalAddrs { advertised };
    let mut conns: HashMap<SocketAddr, TcpConn> = HashMap::new();
    let mut buf = vec![0u8; 2000];
    loop {
        let wait = {
            let h = hub.lock().expect("hub lock");
            h.next_timeout()
        }
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(MAX_WAIT)
        .clamp(Duration::from_millis(1), MAX_WAIT);
        let _ = udp.set_read_timeout(Some(wait));
        match udp.recv_from(&mut buf) {
            Ok((n, source)) => {
                let now = Instant::now();
                let destination = local.for_peer(&source, udp_port);
                let mut h = hub.lock().expect("hub lock");
                if !h
                    .router()
                    .handle_datagram(now, Protocol::Udp, source, destination, &buf[..n])
                {
                    tracing::trace!(%source, "datagram for no connection");
                }
                h.flush();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => tracing::debug!("udp receive: {e}"),
        }
        if let Some(listener) = &tcp {
            accept(listener, &mut conns);
            read_tcp(&hub, &mut conns, &local, tcp_port);
        }
        let out = {
            let mut h = hub.lock().expect("hub lock");
            h.router().handle_timeout(Instant::now());
            h.flush();
            h.take_tcp()
        };
        for t in out {
            if let Some(c) = conns.get_mut(&t.destination) {
                let len = u16::try_from(t.contents.len()).unwrap_or(u16::MAX);
                c.wbuf.extend_from_slice(&len.to_be_bytes());
                c.wbuf.extend_from_slice(&t.contents[..usize::from(len)]);
            }
        }
        conns.retain(write_tcp);
    }
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
            h.flush();
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
