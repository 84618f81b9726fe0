//! MAPPED-ADDRESS style encoding and its XOR variant (RFC 8489 §14.1, §14.2).
//!
//! ```text
//! 0x00 | family | port (16) | address (32 or 128 bits)
//! ```
//! XOR form: "X-Port is computed by XOR'ing the mapped port with the most
//! significant 16 bits of the magic cookie. If the IP address family is IPv4,
//! X-Address is computed by XOR'ing the mapped IP address with the magic
//! cookie. If the IP address family is IPv6, X-Address is computed by XOR'ing
//! the mapped IP address with the concatenation of the magic cookie and the
//! 96-bit transaction ID."

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::AttrError;
use crate::header::{MAGIC_COOKIE, TransactionId};

/// Address family as carried in address attributes and in
/// REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum AddressFamily {
    /// Wire value 0x01.
    V4,
    /// Wire value 0x02.
    V6,
}

impl AddressFamily {
    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            AddressFamily::V4 => 0x01,
            AddressFamily::V6 => 0x02,
        }
    }

    /// From the wire byte; `None` for anything but 0x01 and 0x02.
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            0x01 => Some(AddressFamily::V4),
            0x02 => Some(AddressFamily::V6),
            _ => None,
        }
    }

    /// The family of an IP address.
    pub const fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressFamily::V4,
            IpAddr::V6(_) => AddressFamily::V6,
        }
    }
}

/// Bytes an address attribute value takes for `addr`.
pub(crate) const fn encoded_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// The 16-byte XOR mask for IPv6: magic cookie followed by the transaction id.
fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    let (cookie, rest) = mask.split_at_mut(4);
    cookie.copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    rest.copy_from_slice(&tid.0);
    mask
}

/// Decodes an address value, XOR-decoding it when `tid` is given.
pub(crate) fn decode(
    typ: u16,
    value: &[u8],
    tid: Option<&TransactionId>,
) -> Result<SocketAddr, AttrError> {
    let bad_len = AttrError::BadLength { typ };
    let [_, family, p0, p1, addr @ ..] = value else {
        return Err(bad_len);
    };
    let mut port = u16::from_be_bytes([*p0, *p1]);
    if tid.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    match AddressFamily::from_u8(*family) {
        Some(AddressFamily::V4) => {
            let octets: [u8; 4] = addr.try_into().map_err(|_| bad_len)?;
            let mut ip = u32::from_be_bytes(octets);
            if tid.is_some() {
                ip ^= MAGIC_COOKIE;
            }
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        Some(AddressFamily::V6) => {
            let mut octets: [u8; 16] = addr.try_into().map_err(|_| bad_len)?;
            if let Some(tid) = tid {
                for (o, m) in octets.iter_mut().zip(xor_mask(tid)) {
                    *o ^= m;
                }
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        None => Err(AttrError::UnknownFamily {
            typ,
            family: *family,
        }),
    }
}

/// Encodes `addr` into `out`, which must be exactly [`encoded_len`] bytes.
/// Returns false (and writes nothing useful) if it is not.
pub(crate) fn encode(out: &mut [u8], addr: &SocketAddr, tid: Option<&TransactionId>) -> bool {
    let mut port = addr.port();
    if tid.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let family = AddressFamily::of(&addr.ip()).to_u8();
    let [zero, fam, p0, p1, rest @ ..] = out else {
        return false;
    };
    *zero = 0;
    *fam = family;
    [*p0, *p1] = port.to_be_bytes();
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut v = u32::from(ip);
            if tid.is_some() {
                v ^= MAGIC_COOKIE;
            }
            let Ok(dst) = <&mut [u8; 4]>::try_from(rest) else {
                return false;
            };
            *dst = v.to_be_bytes();
        }
        IpAddr::V6(ip) => {
            let mut octets = ip.octets();
            if let Some(tid) = tid {
                for (o, m) in octets.iter_mut().zip(xor_mask(tid)) {
                    *o ^= m;
                }
            }
            let Ok(dst) = <&mut [u8; 16]>::try_from(rest) else {
                return false;
            };
            *dst = octets;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: TransactionId = TransactionId([
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ]);

    #[test]
    fn rfc5769_xor_values() {
        // RFC 5769 §2.2: 192.0.2.1:32853 -> 0001 a147 e112a643.
        let v4: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let mut out = [0u8; 8];
        assert!(encode(&mut out, &v4, Some(&TID)));
        assert_eq!(out, [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]);
        assert_eq!(decode(0x20, &out, Some(&TID)), Ok(v4));

        // RFC 5769 §2.3: [2001:db8:1234:5678:11:2233:4455:6677]:32853.
        let v6: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        let mut out = [0u8; 20];
        assert!(encode(&mut out, &v6, Some(&TID)));
        assert_eq!(
            out,
            [
                0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
                0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9
            ]
        );
        assert_eq!(decode(0x20, &out, Some(&TID)), Ok(v6));
    }

    #[test]
    fn plain_and_bad_values() {
        let a: SocketAddr = "10.1.2.3:3478".parse().unwrap();
        let mut out = [0u8; 8];
        assert!(encode(&mut out, &a, None));
        assert_eq!(out, [0, 1, 0x0d, 0x96, 10, 1, 2, 3]);
        assert_eq!(decode(1, &out, None), Ok(a));
        assert!(!encode(&mut [0u8; 7], &a, None));
        assert_eq!(
            decode(1, &out[..7], None),
            Err(AttrError::BadLength { typ: 1 })
        );
        assert_eq!(
            decode(1, &[0, 1, 0], None),
            Err(AttrError::BadLength { typ: 1 })
        );
        let mut fam3 = out;
        fam3[1] = 3;
        assert_eq!(
            decode(1, &fam3, None),
            Err(AttrError::UnknownFamily { typ: 1, family: 3 })
        );
        // An IPv6 family byte with an IPv4-sized address is a length error.
        let mut fam6 = out;
        fam6[1] = 2;
        assert_eq!(decode(1, &fam6, None), Err(AttrError::BadLength { typ: 1 }));
    }
}
