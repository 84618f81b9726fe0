//! Relay port pool for this worker's share of `min-port..=max-port`, and EVEN-PORT
//! reservations (RFC 8656 §7.2, §14.6–14.9).
//!
//! One bitmap per relay IP. Allocation starts at a random offset so relayed ports are not
//! predictable (RFC 8656 §7.2: "the server SHOULD choose a port at random"). A reservation
//! (EVEN-PORT with R=1) holds the odd sibling in the bitmap until its token is used or 30 s
//! pass; with R=0 nothing is reserved, so the sibling cannot leak (coturn `4adbd82e`).

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Instant;

use rustc_hash::FxHashMap;

/// RFC 8656 §7.2: "the server SHOULD hold the reservation for ... approximately 30 seconds".
pub const RESERVATION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Which ports a new allocation can take.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum PortWish {
    Any,
    /// EVEN-PORT; `reserve_next` is the R bit.
    Even {
        reserve_next: bool,
    },
}

/// Bitmap of used ports over one range.
#[derive(Clone, Debug)]
pub(crate) struct PortPool {
    first: u16,
    len: u32,
    used: Vec<u64>,
    in_use: u32,
}

impl PortPool {
    pub(crate) fn new(range: &RangeInclusive<u16>) -> Self {
        // Port 0 is "any port" to the OS, never a relay port.
        let first = (*range.start()).max(1);
        let last = *range.end();
        let len = if last >= first {
            u32::from(last - first) + 1
        } else {
            0
        };
        PortPool {
            first,
            len,
            used: vec![0; (len as usize).div_ceil(64)],
            in_use: 0,
        }
    }

    fn index(&self, port: u16) -> Option<usize> {
        let off = u32::from(port.checked_sub(self.first)?);
        (off < self.len).then_some(off as usize)
    }

    pub(crate) fn is_free(&self, port: u16) -> bool {
        self.index(port)
            .is_some_and(|i| self.used[i / 64] & (1 << (i % 64)) == 0)
    }

    pub(crate) fn take(&mut self, port: u16) -> bool {
        match self.index(port) {
            Some(i) if self.used[i / 64] & (1 << (i % 64)) == 0 => {
                self.used[i / 64] |= 1 << (i % 64);
                self.in_use += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn release(&mut self, port: u16) {
        if let Some(i) = self.index(port)
            && self.used[i / 64] & (1 << (i % 64)) != 0
        {
            self.used[i / 64] &= !(1 << (i % 64));
            self.in_use -= 1;
        }
    }

    #[cfg(test)]
    pub(crate) fn in_use(&self) -> u32 {
        self.in_use
    }

    /// The first port at or after offset `start` (wrapping) that satisfies `wish`.
    pub(crate) fn find(&self, start: u32, wish: PortWish) -> Option<u16> {
        if self.len == 0 || self.in_use >= self.len {
            return None;
        }
        for step in 0..self.len {
            let off = (start.wrapping_add(step)) % self.len;
            let port = self.first + off as u16;
            if !self.is_free(port) {
                continue;
            }
            match wish {
                PortWish::Any => return Some(port),
                PortWish::Even { reserve_next } => {
                    if port % 2 != 0 {
                        continue;
                    }
                    if reserve_next && !port.checked_add(1).is_some_and(|p| self.is_free(p)) {
                        continue;
                    }
                    return Some(port);
                }
            }
        }
        None
    }

    pub(crate) fn offset_of(&self, port: u16) -> u32 {
        u32::from(port.saturating_sub(self.first))
    }
}

/// A reserved odd port, waiting for an Allocate with its RESERVATION-TOKEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) expires: Instant,
}

/// Per-IP pools plus the reservations on them.
#[derive(Debug)]
pub(crate) struct Ports {
    range: RangeInclusive<u16>,
    pools: FxHashMap<IpAddr, PortPool>,
    reservations: FxHashMap<[u8; 8], Reservation>,
}

impl Ports {
    pub(crate) fn new(range: RangeInclusive<u16>) -> Self {
        Ports {
            range,
            pools: FxHashMap::default(),
            reservations: FxHashMap::default(),
        }
    }

    pub(crate) fn pool(&mut self, ip: IpAddr) -> &mut PortPool {
        let range = &self.range;
        self.pools.entry(ip).or_insert_with(|| PortPool::new(range))
    }

    pub(crate) fn release(&mut self, ip: IpAddr, port: u16) {
        if let Some(p) = self.pools.get_mut(&ip) {
            p.release(port);
        }
    }

    /// Reserve `port` on `ip` (already taken in the pool) under `token`.
    pub(crate) fn reserve(&mut self, token: [u8; 8], ip: IpAddr, port: u16, now: Instant) {
        self.reservations.insert(
            token,
            Reservation {
                ip,
                port,
                expires: now + RESERVATION_LIFETIME,
            },
        );
    }

    /// Claim a reservation; the port stays taken and now belongs to the caller.
    pub(crate) fn claim(&mut self, token: &[u8; 8], now: Instant) -> Option<Reservation> {
        match self.reservations.get(token) {
            Some(r) if r.expires > now => self.reservations.remove(token),
            _ => None,
        }
    }

    /// Put a claimed reservation back (the bind failed), keeping its expiry.
    pub(crate) fn unclaim(&mut self, token: [u8; 8], r: Reservation) {
        self.reservations.insert(token, r);
    }

    /// Drop expired reservations and free their ports. Returns the earliest remaining expiry.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut freed: Vec<(IpAddr, u16)> = Vec::new();
        self.reservations.retain(|_, r| {
            if r.expires <= now {
                freed.push((r.ip, r.port));
                false
            } else {
                true
            }
        });
        for (ip, port) in freed {
            self.release(ip, port);
        }
        self.reservations.values().map(|r| r.expires).min()
    }

    pub(crate) fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    pub(crate) fn has_token(&self, token: &[u8; 8]) -> bool {
        self.reservations.contains_key(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_basics() {
        let mut p = PortPool::new(&(50000..=50003));
        assert_eq!(p.find(0, PortWish::Any), Some(50000));
        assert_eq!(p.find(3, PortWish::Any), Some(50003));
        assert_eq!(p.find(7, PortWish::Any), Some(50003));
        assert!(p.take(50000));
        assert!(!p.take(50000));
        assert_eq!(p.find(0, PortWish::Any), Some(50001));
        assert_eq!(
            p.find(1, PortWish::Even { reserve_next: true }),
            Some(50002)
        );
        assert!(p.take(50003));
        assert_eq!(p.find(0, PortWish::Even { reserve_next: true }), None);
        assert_eq!(
            p.find(
                0,
                PortWish::Even {
                    reserve_next: false
                }
            ),
            Some(50002)
        );
        assert!(p.take(50001) && p.take(50002));
        assert_eq!(p.find(0, PortWish::Any), None);
        assert_eq!(p.in_use(), 4);
        p.release(50001);
        p.release(50001);
        assert_eq!(p.in_use(), 3);
        assert_eq!(p.find(0, PortWish::Any), Some(50001));
        assert!(!p.take(49999));
        assert!(!p.take(50004));
    }

    #[test]
    fn top_of_range_and_port_zero() {
        let p = PortPool::new(&(65534..=65535));
        assert_eq!(
            p.find(0, PortWish::Even { reserve_next: true }),
            Some(65534)
        );
        let mut q = PortPool::new(&(65535..=65535));
        assert_eq!(
            q.find(
                0,
                PortWish::Even {
                    reserve_next: false
                }
            ),
            None
        );
        assert!(q.take(65535));
        let z = PortPool::new(&(0..=1));
        assert_eq!(z.find(0, PortWish::Any), Some(1));
        #[allow(clippy::reversed_empty_ranges)]
        let empty = PortPool::new(&(10..=5));
        assert_eq!(empty.find(0, PortWish::Any), None);
    }

    #[test]
    fn reservations_expire_and_free() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut ports = Ports::new(50000..=50001);
        let t0 = Instant::now();
        assert!(ports.pool(ip).take(50001));
        ports.reserve([1; 8], ip, 50001, t0);
        assert_eq!(ports.claim(&[2; 8], t0), None);
        assert_eq!(ports.expire(t0), Some(t0 + RESERVATION_LIFETIME));
        assert!(!ports.pool(ip).is_free(50001));
        assert_eq!(ports.expire(t0 + RESERVATION_LIFETIME), None);
        assert!(ports.pool(ip).is_free(50001));
        assert_eq!(ports.claim(&[1; 8], t0), None);

        assert!(ports.pool(ip).take(50001));
        ports.reserve([3; 8], ip, 50001, t0);
        let r = ports.claim(&[3; 8], t0).unwrap();
        assert_eq!(r.port, 50001);
        assert_eq!(ports.reservation_count(), 0);
        assert!(!ports.pool(ip).is_free(50001));
    }
}
