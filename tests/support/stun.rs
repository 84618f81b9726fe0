//! A hand-written STUN Binding client (RFC 8489 §6, §14.2), independent of switchyard's own
//! codec so the server is checked against the RFC rather than against itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// A 20-byte Binding request with no attributes and a transaction ID derived from the clock
/// and a counter (uniqueness, not secrecy, is what matters here).
pub fn binding_request() -> ([u8; 20], [u8; 12]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut tid = [0u8; 12];
    tid[..8].copy_from_slice(&(nanos ^ u64::from(std::process::id())).to_be_bytes());
    tid[8..].copy_from_slice(&(N.fetch_add(1, Ordering::Relaxed) as u32).to_be_bytes());
    let mut req = [0u8; 20];
    req[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // length 0: no attributes
    req[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    req[8..20].copy_from_slice(&tid);
    (req, tid)
}

/// Parses a Binding success response for `tid` and returns its XOR-MAPPED-ADDRESS.
/// `None` if the datagram is anything else (wrong transaction, error class, malformed).
pub fn parse_binding_success(buf: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    if buf.len() < 20 {
        return None;
    }
    let typ = u16::from_be_bytes([buf[0], buf[1]]);
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if typ != BINDING_SUCCESS
        || buf[4..8] != MAGIC_COOKIE.to_be_bytes()
        || &buf[8..20] != tid
        || len + 20 != buf.len()
        || len % 4 != 0
    {
        return None;
    }
    let mut rest = &buf[20..];
    while rest.len() >= 4 {
        let at = u16::from_be_bytes([rest[0], rest[1]]);
        let alen = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = alen.div_ceil(4) * 4;
        if rest.len() < 4 + padded {
            return None;
        }
        let value = &rest[4..4 + alen];
        if at == XOR_MAPPED_ADDRESS {
            return decode_xor_address(value, tid);
        }
        rest = &rest[4 + padded..];
    }
    None
}

/// RFC 8489 §14.2: port XOR the cookie's top 16 bits; IPv4 XOR the cookie; IPv6 XOR
/// cookie ‖ transaction ID.
pub fn decode_xor_address(v: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([v[2] ^ cookie[0], v[3] ^ cookie[1]]);
    match (v[1], v.len()) {
        (0x01, 8) => {
            let mut ip = [0u8; 4];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v[4 + i] ^ cookie[i];
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        (0x02, 20) => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&cookie);
            key[4..].copy_from_slice(tid);
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v[4 + i] ^ key[i];
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => None,
    }
}

/// Sends Binding requests to `server` until one is answered or `deadline` passes
/// (retransmitting every 200 ms). Returns the reflexive address and the socket used.
pub fn binding(server: SocketAddr, deadline: Instant) -> Option<(SocketAddr, SocketAddr)> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let local = sock.local_addr().ok()?;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let (req, tid) = binding_request();
        // A refused send (ICMP port unreachable from an earlier attempt) just means "not yet".
        let _ = sock.send_to(&req, server);
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == server => {
                    if let Some(mapped) = parse_binding_success(&buf[..n], &tid) {
                        return Some((mapped, local));
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape() {
        let (req, tid) = binding_request();
        assert_eq!(&req[0..4], &[0, 1, 0, 0]);
        assert_eq!(&req[4..8], &[0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&req[8..], &tid);
    }

    /// RFC 5769 §2.2 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853.
    #[test]
    fn rfc5769_ipv4_response() {
        let msg: [u8; 80] = [
            0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74,
            0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
            0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99,
            0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b,
            0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
        ];
        let tid: [u8; 12] = msg[8..20].try_into().unwrap();
        assert_eq!(
            parse_binding_success(&msg, &tid),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        let mut other = tid;
        other[0] ^= 1;
        assert_eq!(parse_binding_success(&msg, &other), None);
    }
}
