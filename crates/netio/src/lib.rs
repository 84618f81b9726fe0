//! Switchyard's socket layer — the only crate allowed `unsafe`.
//!
//! Everything above this crate is sans-IO: protocol cores take bytes and time and return
//! what to send. This crate owns the other half: opening sockets the way a relay needs them
//! (`SO_REUSEPORT` per worker, buffer sizes, IPv6-only sockets), moving datagrams in batches
//! (`recvmmsg`/`sendmmsg`) through buffers allocated once, and turning TCP/TLS byte streams
//! into frames. Each `unsafe` block carries a `SAFETY:` comment.

pub mod counting;
pub mod dtls;
pub mod ifaddrs;
pub mod privileges;
pub mod stream;
pub mod tls;
pub mod udp;

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

pub use ifaddrs::local_addresses;
pub use stream::{Framed, Mode, ReadStatus, StreamConn};
pub use udp::{
    BATCH, GRO_MAX, MAX_GSO_SEGMENTS, RecvBatch, RecvMeta, SendBatch, SendReport, UdpOptions,
    bind_udp, send_segments,
};

/// Which kind of socket [`ensure_unclaimed`] probes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    Udp,
    Tcp,
}

/// Fails with `AddrInUse` when another socket already holds `addr`.
///
/// Workers bind their listeners with `SO_REUSEPORT`, which any process of the same user
/// may also set: a second server started on the same port (an old container left
/// running on host networking) would silently take a share of the clients instead of
/// failing. A plain bind without `SO_REUSEPORT` is refused if anyone holds the port, so
/// one is tried and undone before the workers bind. Port 0 (any free port) is not probed.
pub fn ensure_unclaimed(addr: SocketAddr, kind: PortKind) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let (ty, proto) = match kind {
        PortKind::Udp => (Type::DGRAM, Protocol::UDP),
        PortKind::Tcp => (Type::STREAM, Protocol::TCP),
    };
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if kind == PortKind::Tcp {
        // Connections of a stopped server in TIME_WAIT do not hold the port.
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                "the port is already in use by another socket (is another server running?)",
            )
        } else {
            e
        }
    })
}

/// Opens a non-blocking TCP listener on `addr`, with `SO_REUSEPORT` when several workers
/// accept on the same port.
pub fn bind_tcp(addr: SocketAddr, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// Starts a non-blocking TCP connection to `peer` from `local` (RFC 6062: from the relayed
/// address, whose listener is bound with `SO_REUSEPORT` so the port can be shared). Poll the
/// stream for writability, then check `take_error`/`peer_addr` to learn the outcome.
pub fn connect_tcp(local: SocketAddr, peer: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(peer), Type::STREAM, Some(Protocol::TCP))?;
    if peer.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    match socket.connect(&peer.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// Raises the open-file limit to the hard limit: a relay holds one socket per allocation.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Kernel clock ticks per second (`_SC_CLK_TCK`), the unit of `/proc/PID/stat` CPU times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}
