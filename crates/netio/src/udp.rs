//! UDP sockets and batched datagram syscalls.
//!
//! A relay spends most of its CPU in the kernel's UDP path, so the number of syscalls per
//! packet is the figure that matters. `recvmmsg` drains up to [`BATCH`] datagrams per call
//! and `sendmmsg` flushes everything queued for one socket in one call. Buffers are owned by
//! the caller and allocated once per worker; nothing here allocates per packet.

use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Datagrams per `recvmmsg`/`sendmmsg` call. quinn-udp and Firezone settle on 32 as well.
pub const BATCH: usize = 32;

/// Options applied to every UDP socket the relay opens.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpOptions {
    /// `SO_REUSEPORT`, so each worker owns a listening socket on the same port and the
    /// kernel hashes a client's 5-tuple to the same worker every time.
    pub reuse_port: bool,
    /// `SO_RCVBUF` / `SO_SNDBUF` in bytes; 0 keeps the kernel default.
    pub buffer_size: usize,
    /// `UDP_GRO`: let the kernel hand over a run of same-sized datagrams from one sender as
    /// one buffer (see [`RecvMeta::stride`]). Only for sockets read into a [`RecvBatch`] made
    /// with [`RecvBatch::for_gro`]: a coalesced run is up to 64 KiB and is cut if the slot is
    /// smaller. Best effort: kernels before 5.0 ignore it.
    pub gro: bool,
}

/// `SOL_UDP` option and control message for receive offload (linux/udp.h); not exported by
/// libc for glibc.
const UDP_GRO: libc::c_int = 104;
/// The largest buffer one coalesced receive can fill (an IP datagram's limit).
pub const GRO_MAX: usize = 65_535;

/// Opens a non-blocking UDP socket bound to `addr`.
pub fn bind_udp(addr: SocketAddr, opts: UdpOptions) -> io::Result<std::net::UdpSocket> {
    let domain = Domain::for_address(addr);
    // Non-blocking from birth (SOCK_NONBLOCK): one syscall, not two fcntl calls, for each of
    // the sockets an allocation burst opens.
    let socket = Socket::new(domain, Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // An IPv6 socket must never reach IPv4 peers through v4-mapped addresses: the peer
        // policy judges families separately (RFC 6156 §5.1) and so must the socket.
        socket.set_only_v6(true)?;
    }
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if opts.buffer_size > 0 {
        // Best effort: the kernel caps at net.core.{r,w}mem_max without CAP_NET_ADMIN.
        let _ = socket.set_recv_buffer_size(opts.buffer_size);
        let _ = socket.set_send_buffer_size(opts.buffer_size);
    }
    if opts.gro {
        set_gro(&socket);
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Turns `UDP_GRO` on; an old kernel's refusal leaves the socket as it was, which only costs
/// the batching.
fn set_gro(socket: &Socket) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_GRO,
            (&one as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// One received datagram's metadata; the bytes are in the batch's buffer of the same index.
#[derive(Clone, Copy, Debug)]
pub struct RecvMeta {
    /// Who sent it.
    pub source: SocketAddr,
    /// Payload length, starting at the batch's `offset`.
    pub len: usize,
    /// Length of each datagram in the payload: with `UDP_GRO` the kernel may deliver a run of
    /// datagrams from one sender back to back, all `stride` long but the last, which may be
    /// shorter. Equal to `len` for a single datagram.
    pub stride: usize,
    /// The datagram did not fit the buffer and was cut (`MSG_TRUNC`).
    pub truncated: bool,
}

impl RecvMeta {
    /// How many datagrams the payload holds.
    pub fn datagrams(&self) -> usize {
        if self.stride == 0 {
            1
        } else {
            self.len.div_ceil(self.stride).max(1)
        }
    }
}

/// Fixed receive buffers for one socket kind. Each slot has `offset` bytes of headroom in
/// front of the payload so a relay can frame a peer's datagram in place (ChannelData header
/// or Data indication) without copying it.
pub struct RecvBatch {
    slots: Vec<Box<[u8]>>,
    metas: [RecvMeta; BATCH],
    offset: usize,
    capacity: usize,
}

impl RecvBatch {
    /// `capacity` bytes of payload per slot, after `offset` bytes of headroom; `tail` more bytes
    /// behind the payload stay free for padding.
    pub fn new(offset: usize, capacity: usize, tail: usize) -> Self {
        let slots = (0..BATCH)
            .map(|_| vec![0u8; offset + capacity + tail].into_boxed_slice())
            .collect();
        let empty = RecvMeta {
            source: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            len: 0,
            stride: 0,
            truncated: false,
        };
        Self {
            slots,
            metas: [empty; BATCH],
            offset,
            capacity,
        }
    }

    /// Buffers for a socket opened with [`UdpOptions::gro`]: each slot holds a whole
    /// coalesced run, so nothing is cut. The pool is allocated once (zeroed pages the kernel
    /// maps only when a long run first lands in them).
    pub fn for_gro() -> Self {
        Self::new(0, GRO_MAX, 0)
    }

    /// Headroom in front of each payload.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Metadata of datagram `i` of the last receive.
    pub fn meta(&self, i: usize) -> RecvMeta {
        self.metas[i]
    }

    /// The whole slot `i` (headroom, payload, tail), for in-place framing.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.slots[i]
    }

    /// Every slot mutably plus the metadata of the last receive, borrowed apart so a caller
    /// can frame one slot in place while queueing earlier ones for sending.
    pub fn split_mut(&mut self) -> (std::slice::IterMut<'_, Box<[u8]>>, &[RecvMeta; BATCH]) {
        (self.slots.iter_mut(), &self.metas)
    }

    /// The payload of datagram `i` of the last receive.
    pub fn payload(&self, i: usize) -> &[u8] {
        let m = &self.metas[i];
        &self.slots[i][self.offset..self.offset + m.len]
    }

    /// The datagrams of receive `i`, one slice each: a single datagram, or the run a
    /// `UDP_GRO` socket coalesced.
    pub fn datagrams(&self, i: usize) -> std::slice::Chunks<'_, u8> {
        let m = &self.metas[i];
        self.payload(i).chunks(m.stride.max(1))
    }

    /// Receives up to [`BATCH`] datagrams with one `recvmmsg`. Returns 0 on `WouldBlock`.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        recv_mmsg(socket.as_raw_fd(), self)
    }
}

/// A queue of datagrams for one socket, flushed with `sendmmsg`. The payloads are borrowed
/// from the caller's receive or reply buffers, so queueing copies nothing.
pub struct SendBatch<'a> {
    items: [(SocketAddr, &'a [u8]); BATCH],
    len: usize,
}

impl<'a> Default for SendBatch<'a> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> SendBatch<'a> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            items: [(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), &[][..]); BATCH],
            len: 0,
        }
    }

    /// Queues a datagram; returns false when the batch is full (flush first).
    pub fn push(&mut self, dest: SocketAddr, payload: &'a [u8]) -> bool {
        if self.len == BATCH {
            return false;
        }
        self.items[self.len] = (dest, payload);
        self.len += 1;
        true
    }

    /// Number of queued datagrams.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends everything queued with as few `sendmmsg` calls as the kernel allows and empties
    /// the queue. Datagrams the kernel refuses (full buffer, unreachable) are dropped, as a
    /// router would; the count of dropped ones and the first error are returned.
    pub fn flush(&mut self, socket: &impl AsRawFd) -> SendReport {
        let report = send_mmsg(socket.as_raw_fd(), &self.items[..self.len]);
        self.len = 0;
        report
    }
}

/// What a flush did.
#[derive(Debug, Default)]
pub struct SendReport {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Datagrams dropped because of an error.
    pub dropped: usize,
    /// The first error seen, if any.
    pub error: Option<io::Error>,
}

/// Sends one datagram; errors other than would-block are returned, would-block drops it.
pub fn send_to(socket: &std::net::UdpSocket, dest: SocketAddr, payload: &[u8]) -> io::Result<()> {
    match socket.send_to(payload, dest) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// `SOL_UDP` option carrying the GSO segment size (linux/udp.h); not exported by libc for glibc.
const UDP_SEGMENT: libc::c_int = 103;
/// The kernel's limit on segments in one GSO send (`UDP_MAX_SEGMENTS`).
pub const MAX_GSO_SEGMENTS: usize = 64;

static GSO_BROKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends several datagrams to one destination with as few syscalls as possible: one
/// `sendmsg` with UDP generic segmentation offload (the kernel cuts the concatenated
/// payloads every `segments[0].len()` bytes, which costs far less per datagram than separate
/// sends), or `sendmmsg` when GSO does not apply. GSO needs every segment but the last to
/// have the first one's length, and the last to be no longer.
pub fn send_segments(socket: &impl AsRawFd, dest: SocketAddr, segments: &[&[u8]]) -> SendReport {
    let Some(first) = segments.first() else {
        return SendReport::default();
    };
    let size = first.len();
    let uniform = segments.len() > 1
        && segments.len() <= MAX_GSO_SEGMENTS
        && size > 0
        && segments[..segments.len() - 1]
            .iter()
            .all(|s| s.len() == size)
        && segments[segments.len() - 1].len() <= size
        && size * segments.len() <= 65_000;
    let fd = socket.as_raw_fd();
    if uniform && !GSO_BROKEN.load(std::sync::atomic::Ordering::Relaxed) {
        match send_gso(fd, dest, segments, size as u16) {
            Ok(()) => {
                return SendReport {
                    sent: segments.len(),
                    dropped: 0,
                    error: None,
                };
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) => {
                // Some drivers refuse GSO; remember and fall back for good (as quinn-udp).
                GSO_BROKEN.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return SendReport {
                    sent: 0,
                    dropped: segments.len(),
                    error: Some(e),
                };
            }
            Err(_) => {} // retried one by one below, so one bad datagram drops alone
        }
    }
    let mut report = SendReport::default();
    for chunk in segments.chunks(BATCH) {
        let mut items = [(dest, &[][..]); BATCH];
        for (slot, seg) in items.iter_mut().zip(chunk) {
            slot.1 = seg;
        }
        let r = send_mmsg(fd, &items[..chunk.len()]);
        report.sent += r.sent;
        report.dropped += r.dropped;
        if report.error.is_none() {
            report.error = r.error;
        }
    }
    report
}

fn send_gso(fd: RawFd, dest: SocketAddr, segments: &[&[u8]], size: u16) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let addr_len = std_to_sockaddr(dest, &mut addr);
    let mut iovs: [MaybeUninit<libc::iovec>; MAX_GSO_SEGMENTS] =
        [MaybeUninit::uninit(); MAX_GSO_SEGMENTS];
    for (iov, seg) in iovs.iter_mut().zip(segments) {
        iov.write(libc::iovec {
            iov_base: seg.as_ptr() as *mut libc::c_void,
            iov_len: seg.len(),
        });
    }
    // Room for one cmsg carrying a u16, 8-byte aligned.
    let mut control = [0u64; 4];
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = addr_len;
    msg.msg_iov = iovs.as_mut_ptr().cast();
    msg.msg_iovlen = segments.len() as _;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure size computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as _;
    // SAFETY: msg_control points at `control`, which is larger than CMSG_SPACE(2) and
    // aligned for cmsghdr, so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for a u16.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
    }
    // SAFETY: every pointer in `msg` refers to live locals or to the caller's borrowed
    // segments, initialised above for the first `segments.len()` iovecs; the kernel reads only.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn recv_mmsg(fd: RawFd, batch: &mut RecvBatch) -> io::Result<usize> {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { mem::zeroed() };
    let mut iovs: [MaybeUninit<libc::iovec>; BATCH] = [MaybeUninit::uninit(); BATCH];
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
    // Room for one `UDP_GRO` cmsg (an int) per datagram, aligned for cmsghdr.
    let mut control = [[0u64; 4]; BATCH];
    let offset = batch.offset;
    let cap = batch.capacity;
    for i in 0..BATCH {
        let slot = &mut batch.slots[i][offset..offset + cap];
        iovs[i].write(libc::iovec {
            iov_base: slot.as_mut_ptr().cast(),
            iov_len: slot.len(),
        });
        hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
        hdrs[i].msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
        hdrs[i].msg_hdr.msg_iovlen = 1;
        hdrs[i].msg_hdr.msg_control = control[i].as_mut_ptr().cast();
        hdrs[i].msg_hdr.msg_controllen = mem::size_of_val(&control[i]) as _;
    }
    // SAFETY: every header points at a live iovec, sockaddr_storage and control buffer of
    // this frame, each iovec at a distinct, exclusively borrowed slot of `iov_len` bytes.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            BATCH as libc::c_uint,
            // `int` in glibc's prototype, `unsigned int` in musl's.
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(0),
            _ => Err(err),
        };
    }
    let n = n as usize;
    for i in 0..n {
        let len = hdrs[i].msg_len as usize;
        let source = sockaddr_to_std(&addrs[i])
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let len = len.min(cap);
        let stride = gro_stride(&hdrs[i].msg_hdr)
            .filter(|&s| s > 0)
            .unwrap_or(len);
        batch.metas[i] = RecvMeta {
            source,
            len,
            stride,
            truncated: hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(n)
}

/// The segment size a `UDP_GRO` control message reports, if the kernel sent one.
fn gro_stride(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: `hdr` was filled by recvmmsg: msg_control points at this call's control buffer
    // and msg_controllen is what the kernel wrote there, so the CMSG_* walk stays inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(v).ok();
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

fn send_mmsg(fd: RawFd, items: &[(SocketAddr, &[u8])]) -> SendReport {
    let mut report = SendReport::default();
    let mut done = 0;
    while done < items.len() {
        let chunk = &items[done..];
        // SAFETY: all-zero is a valid value for these plain C structs.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { mem::zeroed() };
        let mut iovs: [MaybeUninit<libc::iovec>; BATCH] = [MaybeUninit::uninit(); BATCH];
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (i, (dest, payload)) in chunk.iter().enumerate() {
            let len = std_to_sockaddr(*dest, &mut addrs[i]);
            iovs[i].write(libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            });
            hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            hdrs[i].msg_hdr.msg_namelen = len;
            hdrs[i].msg_hdr.msg_iov = iovs[i].as_mut_ptr();
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point at sockaddrs and iovecs on this frame; the iovecs point at
        // payload slices borrowed for the duration of the call; the kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                hdrs.as_mut_ptr(),
                chunk.len() as libc::c_uint,
                libc::MSG_DONTWAIT as _,
            )
        };
        if n < 0 {
            // The first datagram failed: drop it and go on with the rest, so one unreachable
            // destination does not stall everyone queued behind it.
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            report.dropped += 1;
            if report.error.is_none() {
                report.error = Some(err);
            }
            done += 1;
        } else {
            report.sent += n as usize;
            done += (n as usize).max(1).min(chunk.len());
            if n == 0 {
                report.dropped += 1;
            }
        }
    }
    report
}

fn sockaddr_to_std(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: ss_family says this storage holds a sockaddr_in, which fits in it.
            let sin: &libc::sockaddr_in = unsafe { &*(storage as *const _ as *const _) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: ss_family says this storage holds a sockaddr_in6, which fits in it.
            let sin6: &libc::sockaddr_in6 = unsafe { &*(storage as *const _ as *const _) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn std_to_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(storage as *mut _ as *mut libc::sockaddr_in, sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn loopback() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    #[test]
    fn batch_round_trip_on_loopback() {
        let a = bind_udp(loopback(), UdpOptions::default()).unwrap();
        let b = bind_udp(loopback(), UdpOptions::default()).unwrap();
        let b_addr = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10 + i as usize]).collect();
        let mut batch = SendBatch::new();
        let mut sent = 0;
        for p in &payloads {
            if !batch.push(b_addr, p) {
                sent += batch.flush(&a).sent;
                assert!(batch.push(b_addr, p));
            }
        }
        sent += batch.flush(&a).sent;
        assert_eq!(sent, 40);

        let mut rx = RecvBatch::new(8, 1500, 4);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 40 && Instant::now() < deadline {
            let n = rx.recv(&b).unwrap();
            for i in 0..n {
                assert_eq!(rx.meta(i).source, a.local_addr().unwrap());
                got.push(rx.payload(i).to_vec());
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(got, payloads);
    }

    #[test]
    fn segments_to_one_destination_arrive_separately() {
        let a = bind_udp(loopback(), UdpOptions::default()).unwrap();
        let b = bind_udp(loopback(), UdpOptions::default()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100]).collect();
        let mut segs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let short = [99u8; 40];
        segs.push(&short);
        let r = send_segments(&a, b.local_addr().unwrap(), &segs);
        assert_eq!(r.sent, 11);
        // Unequal sizes take the sendmmsg path.
        let odd = [[1u8; 10].as_slice(), [2u8; 20].as_slice()];
        assert_eq!(send_segments(&a, b.local_addr().unwrap(), &odd).sent, 2);
        let mut rx = RecvBatch::new(0, 1500, 0);
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 13 && Instant::now() < deadline {
            let n = rx.recv(&b).unwrap();
            for i in 0..n {
                got.push(rx.payload(i).to_vec());
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut want: Vec<Vec<u8>> = payloads.clone();
        want.push(short.to_vec());
        want.push(vec![1; 10]);
        want.push(vec![2; 20]);
        assert_eq!(got, want);
    }

    #[test]
    fn gro_socket_takes_a_run_in_one_buffer_and_splits_it_back() {
        let a = bind_udp(loopback(), UdpOptions::default()).unwrap();
        let gro = UdpOptions {
            gro: true,
            ..UdpOptions::default()
        };
        let b = bind_udp(loopback(), gro).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100]).collect();
        let mut segs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let short = [99u8; 40];
        segs.push(&short);
        assert_eq!(send_segments(&a, b.local_addr().unwrap(), &segs).sent, 11);
        // And one plain datagram after the run.
        let lone = [7u8; 300];
        assert_eq!(send_segments(&a, b.local_addr().unwrap(), &[&lone]).sent, 1);

        let mut rx = RecvBatch::for_gro();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut receives = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 12 && Instant::now() < deadline {
            let n = rx.recv(&b).unwrap();
            for i in 0..n {
                receives += 1;
                let meta = rx.meta(i);
                assert!(!meta.truncated);
                assert_eq!(meta.datagrams(), rx.datagrams(i).count());
                got.extend(rx.datagrams(i).map(<[u8]>::to_vec));
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut want: Vec<Vec<u8>> = payloads.clone();
        want.push(short.to_vec());
        want.push(lone.to_vec());
        assert_eq!(got, want);
        // Linux (5.0+) hands a GSO run to a GRO socket whole: two receives, not twelve.
        assert_eq!(receives, 2, "the run was not coalesced");
    }

    #[test]
    fn ipv6_round_trip_and_truncation() {
        let Ok(a) = bind_udp("[::1]:0".parse().unwrap(), UdpOptions::default()) else {
            return; // no IPv6 loopback on this host
        };
        let b = bind_udp("[::1]:0".parse().unwrap(), UdpOptions::default()).unwrap();
        let mut batch = SendBatch::new();
        let big = [7u8; 100];
        batch.push(b.local_addr().unwrap(), &big);
        assert_eq!(batch.flush(&a).sent, 1);
        let mut rx = RecvBatch::new(0, 50, 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if rx.recv(&b).unwrap() == 1 {
                break;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(rx.meta(0).truncated);
        assert_eq!(rx.meta(0).len, 50);
        assert_eq!(rx.meta(0).source, a.local_addr().unwrap());
    }
}
