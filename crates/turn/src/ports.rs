//! Relay port pool for this worker's share of `min-port..=max-port`, and EVEN-PORT
//! reservations (RFC 8656 §7.2, §14.6–14.9).
//!
//! One bitmap per relay IP. Allocation starts at a random offset so relayed ports are not
//! predictable (RFC 8656 §7.2: "the server SHOULD choose a port at random"). A reservation
//! (EVEN-PORT with R=1) holds the odd sibling in the bitmap until its token is used or 30 s
//! pass; with R=0 nothing is reserved, so the sibling cannot leak (coturn `4adbd82e`).

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
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
    /// The worker whose share of the port range holds the port.
    owner: u8,
}

/// EVEN-PORT reservations of every worker of one server.
///
/// A client's two sockets (RTP with EVEN-PORT, RTCP with the RESERVATION-TOKEN) are two
/// 5-tuples, and `SO_REUSEPORT` may hand them to different workers: the token must be
/// found wherever its Allocate lands. The worker that claims another worker's port binds
/// it and, when that allocation ends, hands the port back through a shared list for the
/// owner to free in its own pool. Touched only by Allocates with EVEN-PORT or
/// RESERVATION-TOKEN and by a once-a-second sweep, never per packet, so a mutex is fine.
#[derive(Debug, Default)]
pub struct Reservations {
    inner: Mutex<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    by_token: FxHashMap<[u8; 8], Reservation>,
    /// Claimed ports of other workers' shares, freed by their claimer: (owner, ip, port).
    returned: Vec<(u8, IpAddr, u16)>,
}

impl Reservations {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Every critical section leaves the maps consistent, so a panic elsewhere while the
        // lock was held does not make the data unusable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reservations waiting in all workers.
    pub fn total(&self) -> usize {
        self.lock().by_token.len()
    }
}

/// Per-IP pools plus this worker's view of the shared reservations.
#[derive(Debug)]
pub(crate) struct Ports {
    range: RangeInclusive<u16>,
    pools: FxHashMap<IpAddr, PortPool>,
    shared: Arc<Reservations>,
    /// This worker's number, the owner of the ports in its pools.
    me: u8,
    /// Ports of other workers' shares this worker bound through a reservation, and whose.
    foreign: FxHashMap<(IpAddr, u16), u8>,
}

impl Ports {
    pub(crate) fn new(range: RangeInclusive<u16>, shared: Arc<Reservations>, me: u8) -> Self {
        Ports {
            range,
            pools: FxHashMap::default(),
            shared,
            me,
            foreign: FxHashMap::default(),
        }
    }

    pub(crate) fn pool(&mut self, ip: IpAddr) -> &mut PortPool {
        let range = &self.range;
        self.pools.entry(ip).or_insert_with(|| PortPool::new(range))
    }

    /// The port is no longer bound here: free it, or hand it back to the worker it came from.
    pub(crate) fn release(&mut self, ip: IpAddr, port: u16) {
        if let Some(owner) = self.foreign.remove(&(ip, port)) {
            self.shared.lock().returned.push((owner, ip, port));
            return;
        }
        if let Some(p) = self.pools.get_mut(&ip) {
            p.release(port);
        }
    }

    /// Reserve `port` on `ip` (already taken in this worker's pool) under `token`.
    pub(crate) fn reserve(&mut self, token: [u8; 8], ip: IpAddr, port: u16, now: Instant) {
        self.shared.lock().by_token.insert(
            token,
            Reservation {
                ip,
                port,
                expires: now + RESERVATION_LIFETIME,
                owner: self.me,
            },
        );
    }

    /// Claim a reservation, whichever worker made it; the port stays taken and now belongs to
    /// the caller until [`Self::release`].
    pub(crate) fn claim(&mut self, token: &[u8; 8], now: Instant) -> Option<Reservation> {
        let mut shared = self.shared.lock();
        let r = match shared.by_token.get(token) {
            Some(r) if r.expires > now => shared.by_token.remove(token)?,
            _ => return None,
        };
        drop(shared);
        if r.owner != self.me {
            self.foreign.insert((r.ip, r.port), r.owner);
        }
        Some(r)
    }

    /// Put a claimed reservation back (the bind failed), keeping its expiry.
    pub(crate) fn unclaim(&mut self, token: [u8; 8], r: Reservation) {
        self.foreign.remove(&(r.ip, r.port));
        self.shared.lock().by_token.insert(token, r);
    }

    /// Drop this worker's expired reservations and free their ports, and free the ports other
    /// workers handed back. Returns the earliest expiry of this worker's reservations.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let me = self.me;
        let mut freed: Vec<(IpAddr, u16)> = Vec::new();
        let mut next: Option<Instant> = None;
        self.shared.lock().by_token.retain(|_, r| {
            if r.owner != me {
                return true;
            }
            if r.expires <= now {
                freed.push((r.ip, r.port));
                return false;
            }
            next = Some(next.map_or(r.expires, |n| n.min(r.expires)));
            true
        });
        self.free_own(freed);
        self.reclaim();
        next
    }

    /// Free the ports other workers handed back.
    pub(crate) fn reclaim(&mut self) {
        let me = self.me;
        let mut freed: Vec<(IpAddr, u16)> = Vec::new();
        self.shared.lock().returned.retain(|&(owner, ip, port)| {
            if owner == me {
                freed.push((ip, port));
            }
            owner != me
        });
        self.free_own(freed);
    }

    /// Frees ports of this worker's own pools.
    fn free_own(&mut self, ports: Vec<(IpAddr, u16)>) {
        for (ip, port) in ports {
            if let Some(p) = self.pools.get_mut(&ip) {
                p.release(port);
            }
        }
    }

    /// Reservations this worker made that are still waiting.
    pub(crate) fn reservation_count(&self) -> usize {
        let me = self.me;
        self.shared
            .lock()
            .by_token
            .values()
            .filter(|r| r.owner == me)
            .count()
    }

    pub(crate) fn has_token(&self, token: &[u8; 8]) -> bool {
        self.shared.lock().by_token.contains_key(token)
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
        let mut ports = Ports::new(50000..=50001, Arc::default(), 0);
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

    /// Worker 0 holds ports 50000–50001 and worker 1 ports 50002–50003, sharing one table.
    fn two_workers() -> (Ports, Ports, Arc<Reservations>) {
        let shared = Arc::new(Reservations::new());
        (
            Ports::new(50000..=50001, shared.clone(), 0),
            Ports::new(50002..=50003, shared.clone(), 1),
            shared,
        )
    }

    #[test]
    fn another_worker_claims_a_reservation_and_hands_the_port_back() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (mut w0, mut w1, shared) = two_workers();
        let t0 = Instant::now();
        assert!(w0.pool(ip).take(50001));
        w0.reserve([7; 8], ip, 50001, t0);
        assert!(w1.has_token(&[7; 8]));
        assert_eq!((w0.reservation_count(), w1.reservation_count()), (1, 0));
        let r = w1
            .claim(&[7; 8], t0)
            .expect("the token is found by any worker");
        assert_eq!((r.ip, r.port), (ip, 50001));
        assert_eq!(shared.total(), 0);
        // The owner's expiry neither frees the claimed port nor finds the reservation.
        assert_eq!(w0.expire(t0 + RESERVATION_LIFETIME), None);
        assert!(!w0.pool(ip).is_free(50001));
        // The claimer's allocation ends: the port goes home, and only the owner frees it.
        w1.release(ip, 50001);
        assert!(!w1.pool(ip).is_free(50001), "not in worker 1's share");
        w1.reclaim();
        assert!(!w0.pool(ip).is_free(50001));
        w0.reclaim();
        assert!(w0.pool(ip).is_free(50001));
        assert_eq!(w0.pool(ip).in_use(), 0);
    }

    #[test]
    fn each_worker_expires_only_its_own_reservations() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (mut w0, mut w1, shared) = two_workers();
        let t0 = Instant::now();
        assert!(w0.pool(ip).take(50001));
        assert!(w1.pool(ip).take(50003));
        w0.reserve([1; 8], ip, 50001, t0);
        w1.reserve([2; 8], ip, 50003, t0 + RESERVATION_LIFETIME);
        let later = t0 + RESERVATION_LIFETIME;
        assert_eq!(w0.expire(later), None);
        assert!(w0.pool(ip).is_free(50001));
        assert_eq!(
            shared.total(),
            1,
            "worker 1's reservation is not worker 0's to drop"
        );
        assert_eq!(w1.expire(later), Some(later + RESERVATION_LIFETIME));
        assert!(!w1.pool(ip).is_free(50003));
        // An expired token cannot be claimed by anyone, even before its owner sweeps.
        assert_eq!(w0.claim(&[2; 8], later + RESERVATION_LIFETIME), None);
        // A failed bind puts the claim back where every worker finds it again.
        let r = w0.claim(&[2; 8], later).unwrap();
        w0.unclaim([2; 8], r);
        assert!(w1.claim(&[2; 8], later).is_some());
        assert!(
            w1.foreign.is_empty(),
            "its own port is not foreign to worker 1"
        );
    }
}
