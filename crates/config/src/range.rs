//! Inclusive IP address ranges as `allowed-peer-ip` / `denied-peer-ip` take them.
//!
//! coturn (`add_ip_list_range`, `userdb.c`) accepts `IP` and `IP-IP`; switchyard also takes
//! CIDR (`10.0.0.0/8`), which third-party hardening guides use and coturn silently ignored
//! before 4.11 — a deny list that did not deny.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An inclusive address range. Both ends have the same family and `first <= last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (inclusive).
    pub last: IpAddr,
}

impl AddrRange {
    /// Every IPv4 address.
    pub const ALL_V4: AddrRange = AddrRange {
        first: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        last: IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    /// Every IPv6 address.
    pub const ALL_V6: AddrRange = AddrRange {
        first: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        last: IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        )),
    };

    /// A single address.
    pub fn single(ip: IpAddr) -> Self {
        Self {
            first: ip,
            last: ip,
        }
    }

    /// The range a CIDR prefix covers (host bits of `ip` are ignored); `None` if `len`
    /// exceeds the family's width.
    pub fn cidr(ip: IpAddr, len: u8) -> Option<Self> {
        match ip {
            IpAddr::V4(v4) => {
                if len > 32 {
                    return None;
                }
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let base = u32::from(v4) & mask;
                Some(Self {
                    first: IpAddr::V4(base.into()),
                    last: IpAddr::V4((base | !mask).into()),
                })
            }
            IpAddr::V6(v6) => {
                if len > 128 {
                    return None;
                }
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let base = u128::from(v6) & mask;
                Some(Self {
                    first: IpAddr::V6(base.into()),
                    last: IpAddr::V6((base | !mask).into()),
                })
            }
        }
    }

    /// Whether `ip` is inside (same family only; no IPv4-in-IPv6 canonicalisation here, the
    /// peer policy does that).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.first, self.last, ip) {
            (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => a <= x && x <= b,
            (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => a <= x && x <= b,
            _ => false,
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Why a range did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// One end is not an IP address.
    #[error("`{0}` is not an IP address")]
    BadAddress(String),
    /// The text is none of `IP`, `IP-IP`, `IP/len`.
    #[error("`{0}` is not an address, an `a-b` range or a CIDR prefix")]
    BadSyntax(String),
    /// The prefix length is not a number or too long for the family.
    #[error("`{0}`: bad prefix length")]
    BadPrefix(String),
    /// `a-b` with an IPv4 and an IPv6 end.
    #[error("`{0}`: the two ends are of different address families")]
    MixedFamilies(String),
    /// `a-b` with `a > b`.
    #[error("`{0}`: the range is empty (first address above the last)")]
    Reversed(String),
}

/// An IP literal; brackets around IPv6 (`[::1]`) are tolerated.
pub(crate) fn parse_ip(v: &str) -> Option<IpAddr> {
    let t = v.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(t);
    t.parse().ok()
}

impl std::str::FromStr for AddrRange {
    type Err = RangeError;

    /// `IP`, coturn's `IP-IP`, or CIDR `IP/len`.
    fn from_str(v: &str) -> Result<Self, RangeError> {
        let v = v.trim();
        if let Some((ip, len)) = v.split_once('/') {
            let ip = parse_ip(ip).ok_or_else(|| RangeError::BadAddress(ip.trim().to_owned()))?;
            let len: u8 = len
                .trim()
                .parse()
                .map_err(|_| RangeError::BadPrefix(v.to_owned()))?;
            return AddrRange::cidr(ip, len).ok_or_else(|| RangeError::BadPrefix(v.to_owned()));
        }
        if let Some((a, b)) = v.split_once('-') {
            let first = parse_ip(a).ok_or_else(|| RangeError::BadAddress(a.trim().to_owned()))?;
            let last = parse_ip(b).ok_or_else(|| RangeError::BadAddress(b.trim().to_owned()))?;
            if first.is_ipv4() != last.is_ipv4() {
                return Err(RangeError::MixedFamilies(v.to_owned()));
            }
            if first > last {
                return Err(RangeError::Reversed(v.to_owned()));
            }
            return Ok(AddrRange { first, last });
        }
        parse_ip(v)
            .map(AddrRange::single)
            .ok_or_else(|| RangeError::BadSyntax(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn r(s: &str) -> Result<AddrRange, RangeError> {
        s.parse()
    }

    #[test]
    fn forms() {
        let dash = r("10.0.0.0-10.255.255.255").unwrap();
        assert_eq!(
            (dash.first, dash.last),
            (ip("10.0.0.0"), ip("10.255.255.255"))
        );
        assert_eq!(r("10.0.0.0/8").unwrap(), dash);
        assert_eq!(r("10.9.9.9/8").unwrap(), dash, "host bits are ignored");
        assert_eq!(r(" 10.0.0.0 - 10.255.255.255 ").unwrap(), dash);
        assert_eq!(r("192.0.2.7").unwrap(), AddrRange::single(ip("192.0.2.7")));
        assert_eq!(r("0.0.0.0/0").unwrap(), AddrRange::ALL_V4);
        assert_eq!(r("::/0").unwrap(), AddrRange::ALL_V6);
        assert_eq!(r("1.2.3.4/32").unwrap(), AddrRange::single(ip("1.2.3.4")));
        assert_eq!(r("::1/128").unwrap(), AddrRange::single(ip("::1")));
        let ula = r("fc00::/7").unwrap();
        assert_eq!(ula.first, ip("fc00::"));
        assert_eq!(ula.last, ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(
            r("fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap(),
            ula
        );
        assert_eq!(
            r("[2001:db8::1]").unwrap(),
            AddrRange::single(ip("2001:db8::1"))
        );
        let nat64 = r("64:ff9b::-64:ff9b::ffff:ffff").unwrap();
        assert_eq!(nat64, r("64:ff9b::/96").unwrap());
        let mapped = r("::ffff:0.0.0.0-::ffff:255.255.255.255").unwrap();
        assert!(mapped.first.is_ipv6());
        assert!(mapped.contains(ip("::ffff:10.0.0.1")));
        assert!(!mapped.contains(ip("10.0.0.1")));
    }

    #[test]
    fn errors() {
        assert_eq!(
            r("10.0.0.0/33"),
            Err(RangeError::BadPrefix("10.0.0.0/33".into()))
        );
        assert_eq!(r("::/129"), Err(RangeError::BadPrefix("::/129".into())));
        assert_eq!(
            r("10.0.0.0/x"),
            Err(RangeError::BadPrefix("10.0.0.0/x".into()))
        );
        assert_eq!(
            r("10.0.0.9-10.0.0.1"),
            Err(RangeError::Reversed("10.0.0.9-10.0.0.1".into()))
        );
        assert_eq!(
            r("10.0.0.1-::1"),
            Err(RangeError::MixedFamilies("10.0.0.1-::1".into()))
        );
        assert_eq!(r("banana"), Err(RangeError::BadSyntax("banana".into())));
        assert_eq!(r(""), Err(RangeError::BadSyntax("".into())));
        assert_eq!(r("10.0.0.1-"), Err(RangeError::BadAddress("".into())));
        assert_eq!(
            r("300.1.1.1/8"),
            Err(RangeError::BadAddress("300.1.1.1".into()))
        );
        assert_eq!(
            r("1.2.3.4/8/9"),
            Err(RangeError::BadPrefix("1.2.3.4/8/9".into()))
        );
    }

    #[test]
    fn contains_and_display() {
        let v4 = r("10.0.0.0/8").unwrap();
        assert!(v4.contains(ip("10.1.2.3")));
        assert!(!v4.contains(ip("11.0.0.0")));
        assert!(!v4.contains(ip("::ffff:10.1.2.3")));
        assert_eq!(v4.to_string(), "10.0.0.0-10.255.255.255");
        assert_eq!(r("::1").unwrap().to_string(), "::1");
    }
}
