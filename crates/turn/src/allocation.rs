//! The allocation table (RFC 8656 §2.2, §5): a slab of allocations reached through the
//! client 5-tuple (client → server traffic) and through the relay socket id (peer → client
//! traffic), plus one timer heap with lazy invalidation.
//!
//! Permissions and channels are small vectors scanned linearly: an allocation rarely has
//! more than a handful (one per remote ICE candidate), a scan of a few entries beats hashing,
//! and both are capped ([`MAX_PERMISSIONS`], [`MAX_CHANNELS`]) so a client cannot make the
//! scan long.
//!
//! Memory (issue 4, "cheap state"; measured by `tests/memory.rs`): the permission and
//! channel vectors grow from capacity 1 (not `Vec`'s default 4), the username and quota user
//! share one exactly sized string, the advertised relayed address is recomputed instead of
//! stored, and the slab grows by a quarter at a time instead of doubling.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::{ClientAddr, RelayId, Transport};

/// Distinct peer IPs one allocation may hold permissions for. Beyond it CreatePermission and
/// ChannelBind get 508 Insufficient Capacity: the request is well formed and allowed by
/// policy, the server just will not hold more state for it (eturnal's `max_permissions`,
/// coturn 4.13's permission cap; turn-anchors §3.6).
pub const MAX_PERMISSIONS: usize = 64;
/// Channels one allocation may bind (RFC 8656 allows 4096); beyond it → 508.
pub const MAX_CHANNELS: usize = 128;
/// RFC 8656 §12: after a binding expires, its channel number and peer transport address may
/// not be rebound to a different peer or number for another 5 minutes.
pub const CHANNEL_QUARANTINE: Duration = Duration::from_secs(300);

pub(crate) type FiveTuple = (Transport, SocketAddr, SocketAddr);

#[derive(Clone, Debug)]
pub(crate) struct Permission {
    pub(crate) ip: IpAddr,
    pub(crate) expires: Instant,
}

#[derive(Clone, Debug)]
pub(crate) struct Channel {
    pub(crate) number: u16,
    pub(crate) peer: SocketAddr,
    /// Usable until then; the number and the peer stay reserved for [`CHANNEL_QUARANTINE`].
    pub(crate) expires: Instant,
}

#[derive(Debug)]
pub(crate) struct Allocation {
    pub(crate) client: ClientAddr,
    pub(crate) relay: RelayId,
    /// The address the relay socket is bound to (XOR-RELAYED-ADDRESS advertises it with the
    /// `external-ip` mapping applied, see `Server::advertised`).
    pub(crate) relay_addr: SocketAddr,
    /// RFC 8656 §7.2 dual allocation (ADDITIONAL-ADDRESS-FAMILY): the relay socket of the
    /// other address family and its address. Permissions and channels are per peer
    /// address, so each family has its own; the lifetime is shared.
    pub(crate) second: Option<(RelayId, SocketAddr)>,
    pub(crate) names: Names,
    pub(crate) key: [u8; 16],
    /// The Allocate transaction that created it, to answer retransmissions (RFC 8656 §7.2:
    /// a retransmitted Allocate gets the same success response, not 437).
    pub(crate) allocate_tid: [u8; 12],
    pub(crate) reservation_token: Option<[u8; 8]>,
    pub(crate) expires: Instant,
    pub(crate) permissions: Vec<Permission>,
    pub(crate) channels: Vec<Channel>,
    /// `max-bps` buckets.
    pub(crate) meter: crate::bandwidth::Meter,
    /// The deadline this allocation has in the heap (lazy invalidation).
    pub(crate) scheduled: Option<Instant>,
}

/// The USERNAME an allocation was created with and its quota user, in one exactly sized
/// string: the quota user is usually a suffix of the username (REST `expiry:user`), and then
/// it takes no extra byte.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    buf: Box<str>,
    user_len: u16,
    quota_start: u16,
}

impl Names {
    pub(crate) fn new(username: &str, quota_user: &str) -> Names {
        // STUN attributes are at most 64 KiB, so both fit in u16 offsets; anything longer is
        // cut at a character boundary (it cannot come off the wire).
        let user = truncate(username, usize::from(u16::MAX) / 2);
        let quota = truncate(quota_user, usize::from(u16::MAX) / 2);
        let user_len = user.len() as u16;
        if user.ends_with(quota) {
            Names {
                buf: user.into(),
                user_len,
                quota_start: (user.len() - quota.len()) as u16,
            }
        } else {
            let mut buf = String::with_capacity(user.len() + quota.len());
            buf.push_str(user);
            buf.push_str(quota);
            Names {
                buf: buf.into_boxed_str(),
                user_len,
                quota_start: user_len,
            }
        }
    }

    pub(crate) fn username(&self) -> &str {
        &self.buf[..usize::from(self.user_len)]
    }

    pub(crate) fn quota_user(&self) -> &str {
        &self.buf[usize::from(self.quota_start)..]
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Push growing the capacity 1, 2, 4, 8, … instead of `Vec`'s 4, 8, …: most allocations hold
/// one or two permissions and channels for their whole life.
fn push_compact<T>(v: &mut Vec<T>, item: T) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len().max(1));
    }
    v.push(item);
}

impl Allocation {
    #[inline]
    pub(crate) fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    #[inline]
    pub(crate) fn channel_by_number(&self, number: u16, now: Instant) -> Option<&Channel> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
    }

    #[inline]
    pub(crate) fn channel_by_peer(&self, peer: SocketAddr, now: Instant) -> Option<&Channel> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
    }

    /// Install or refresh permissions; caller has checked the cap.
    pub(crate) fn permit(&mut self, ip: IpAddr, until: Instant) {
        match self.permissions.iter_mut().find(|p| p.ip == ip) {
            Some(p) => p.expires = p.expires.max(until),
            None => push_compact(&mut self.permissions, Permission { ip, expires: until }),
        }
    }

    /// Add a channel binding; caller has checked the cap and that neither the number nor the
    /// peer is bound.
    pub(crate) fn add_channel(&mut self, channel: Channel) {
        push_compact(&mut self.channels, channel);
    }

    /// How many of `ips` would be new permissions.
    pub(crate) fn new_permission_count(&self, ips: &[IpAddr]) -> usize {
        let mut n = 0;
        for (i, ip) in ips.iter().enumerate() {
            if ips[..i].contains(ip) {
                continue;
            }
            if !self.permissions.iter().any(|p| p.ip == *ip) {
                n += 1;
            }
        }
        n
    }

    /// Earliest moment something about this allocation changes.
    pub(crate) fn next_deadline(&self) -> Instant {
        let mut d = self.expires;
        for p in &self.permissions {
            d = d.min(p.expires);
        }
        for c in &self.channels {
            d = d.min(c.expires + CHANNEL_QUARANTINE);
        }
        d
    }

    /// Forget expired permissions and channels past their quarantine.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.permissions.retain(|p| p.expires > now);
        self.channels
            .retain(|c| c.expires + CHANNEL_QUARANTINE > now);
    }
}

/// What a timer entry points at.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Allocation { index: u32, generation: u32 },
    Reservations,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    alloc: Option<Allocation>,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_client: FxHashMap<FiveTuple, u32>,
    by_relay: FxHashMap<RelayId, u32>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    len: usize,
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, alloc: Allocation) -> u32 {
        let key = (
            alloc.client.transport,
            alloc.client.remote,
            alloc.client.local,
        );
        let relay = alloc.relay;
        let second = alloc.second.map(|(r, _)| r);
        let index = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.alloc = Some(alloc);
                i
            }
            None => {
                // Grow by a quarter, not by doubling: with 10,000 allocations a doubled slab
                // holds up to 6,000 empty slots.
                if self.slots.len() == self.slots.capacity() {
                    self.slots.reserve_exact((self.slots.len() / 4).max(64));
                }
                self.slots.push(Slot {
                    generation: 0,
                    alloc: Some(alloc),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.by_client.insert(key, index);
        self.by_relay.insert(relay, index);
        if let Some(r) = second {
            self.by_relay.insert(r, index);
        }
        self.len += 1;
        self.reschedule(index);
        index
    }

    pub(crate) fn remove(&mut self, index: u32) -> Option<Allocation> {
        let alloc = self.slots.get_mut(index as usize)?.alloc.take()?;
        self.by_client.remove(&(
            alloc.client.transport,
            alloc.client.remote,
            alloc.client.local,
        ));
        self.by_relay.remove(&alloc.relay);
        if let Some((r, _)) = alloc.second {
            self.by_relay.remove(&r);
        }
        self.free.push(index);
        self.len -= 1;
        Some(alloc)
    }

    /// Re-key allocation `index` to a new client 5-tuple (RFC 8016 mobility). False when
    /// there is no such allocation or the new 5-tuple already has one.
    pub(crate) fn move_client(&mut self, index: u32, to: crate::ClientAddr) -> bool {
        let key = (to.transport, to.remote, to.local);
        if self.by_client.contains_key(&key) {
            return false;
        }
        let Some(alloc) = self
            .slots
            .get_mut(index as usize)
            .and_then(|s| s.alloc.as_mut())
        else {
            return false;
        };
        let old = (
            alloc.client.transport,
            alloc.client.remote,
            alloc.client.local,
        );
        alloc.client = to;
        self.by_client.remove(&old);
        self.by_client.insert(key, index);
        true
    }

    #[inline]
    pub(crate) fn by_client(&self, key: &FiveTuple) -> Option<u32> {
        self.by_client.get(key).copied()
    }

    #[inline]
    pub(crate) fn by_relay(&self, relay: RelayId) -> Option<u32> {
        self.by_relay.get(&relay).copied()
    }

    #[inline]
    pub(crate) fn get(&self, index: u32) -> Option<&Allocation> {
        self.slots.get(index as usize)?.alloc.as_ref()
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, index: u32) -> Option<&mut Allocation> {
        self.slots.get_mut(index as usize)?.alloc.as_mut()
    }

    /// Make sure the heap has an entry no later than the allocation's next deadline.
    pub(crate) fn reschedule(&mut self, index: u32) {
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        let generation = slot.generation;
        let Some(alloc) = slot.alloc.as_mut() else {
            return;
        };
        let next = alloc.next_deadline();
        if alloc.scheduled.is_some_and(|s| s <= next) {
            return;
        }
        alloc.scheduled = Some(next);
        self.timers
            .push(Reverse((next, TimerKey::Allocation { index, generation })));
    }

    pub(crate) fn schedule_reservations(&mut self, at: Instant) {
        self.timers.push(Reverse((at, TimerKey::Reservations)));
    }

    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Pop the next due entry that is still current. For an allocation, clears its
    /// `scheduled` mark so the caller's `reschedule` pushes a fresh entry.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                return None;
            }
            self.timers.pop();
            match key {
                TimerKey::Reservations => return Some((at, key)),
                TimerKey::Allocation { index, generation } => {
                    let Some(slot) = self.slots.get_mut(index as usize) else {
                        continue;
                    };
                    if slot.generation != generation {
                        continue;
                    }
                    let Some(alloc) = slot.alloc.as_mut() else {
                        continue;
                    };
                    if alloc.scheduled != Some(at) {
                        continue;
                    }
                    alloc.scheduled = None;
                    return Some((at, key));
                }
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SocketToken;

    fn alloc(port: u16, relay: u32, now: Instant) -> Allocation {
        Allocation {
            client: ClientAddr {
                transport: Transport::Udp,
                remote: SocketAddr::from(([192, 0, 2, 1], port)),
                local: SocketAddr::from(([192, 0, 2, 9], 3478)),
                token: SocketToken(0),
            },
            relay: RelayId(relay),
            relay_addr: SocketAddr::from(([192, 0, 2, 9], 50000)),
            second: None,
            names: Names::new("u", "u"),
            key: [0; 16],
            allocate_tid: [0; 12],
            reservation_token: None,
            expires: now + Duration::from_secs(600),
            permissions: Vec::new(),
            channels: Vec::new(),
            meter: crate::bandwidth::Meter::new(0, now),
            scheduled: None,
        }
    }

    #[test]
    fn slab_and_maps() {
        let now = Instant::now();
        let mut t = Table::default();
        let a = t.insert(alloc(1, 10, now));
        let b = t.insert(alloc(2, 11, now));
        assert_eq!(t.len(), 2);
        let key = (
            Transport::Udp,
            SocketAddr::from(([192, 0, 2, 1], 2)),
            SocketAddr::from(([192, 0, 2, 9], 3478)),
        );
        assert_eq!(t.by_client(&key), Some(b));
        assert_eq!(t.by_relay(RelayId(10)), Some(a));
        assert!(t.remove(a).is_some());
        assert!(t.remove(a).is_none());
        assert_eq!(t.by_relay(RelayId(10)), None);
        // The slot is reused with a new generation; the old timer entry is ignored.
        let c = t.insert(alloc(3, 12, now + Duration::from_secs(100)));
        assert_eq!(c, a);
        let due = t.pop_due(now + Duration::from_secs(600)).unwrap();
        assert_eq!(
            due.1,
            TimerKey::Allocation {
                index: b,
                generation: 0
            }
        );
        assert!(t.pop_due(now + Duration::from_secs(600)).is_none());
        assert_eq!(t.next_timer(), Some(now + Duration::from_secs(700)));
    }

    #[test]
    fn lazy_reschedule_only_pushes_earlier() {
        let now = Instant::now();
        let mut t = Table::default();
        let a = t.insert(alloc(1, 10, now));
        assert_eq!(t.heap_len(), 1);
        // Extending the lifetime does not push.
        t.get_mut(a).unwrap().expires = now + Duration::from_secs(3600);
        t.reschedule(a);
        assert_eq!(t.heap_len(), 1);
        // A permission expiring earlier does.
        t.get_mut(a)
            .unwrap()
            .permit("8.8.8.8".parse().unwrap(), now + Duration::from_secs(300));
        t.reschedule(a);
        assert_eq!(t.heap_len(), 2);
        assert_eq!(t.next_timer(), Some(now + Duration::from_secs(300)));
        let (at, _) = t.pop_due(now + Duration::from_secs(300)).unwrap();
        assert_eq!(at, now + Duration::from_secs(300));
        // The 600 s entry is stale now (scheduled was cleared and nothing re-pushed).
        assert!(t.pop_due(now + Duration::from_secs(600)).is_none());
    }

    #[test]
    fn permission_and_channel_lookup() {
        let now = Instant::now();
        let mut a = alloc(1, 1, now);
        let peer: SocketAddr = "8.8.8.8:1000".parse().unwrap();
        a.permit(peer.ip(), now + Duration::from_secs(300));
        a.permit(peer.ip(), now + Duration::from_secs(100));
        assert_eq!(a.permissions.len(), 1);
        assert!(a.has_permission(peer.ip(), now + Duration::from_secs(299)));
        assert!(!a.has_permission(peer.ip(), now + Duration::from_secs(300)));
        a.add_channel(Channel {
            number: 0x4000,
            peer,
            expires: now + Duration::from_secs(600),
        });
        assert!(a.channel_by_number(0x4000, now).is_some());
        assert!(a.channel_by_peer(peer, now).is_some());
        assert!(
            a.channel_by_peer(peer, now + Duration::from_secs(600))
                .is_none()
        );
        a.sweep(now + Duration::from_secs(600));
        assert_eq!(a.permissions.len(), 0);
        assert_eq!(a.channels.len(), 1);
        a.sweep(now + Duration::from_secs(900));
        assert_eq!(a.channels.len(), 0);
        let ips: Vec<IpAddr> = vec![peer.ip(), peer.ip(), "1.1.1.1".parse().unwrap()];
        assert_eq!(a.new_permission_count(&ips), 2);
    }

    #[test]
    fn names_share_one_string() {
        let n = Names::new("1700000000:@bob:example.org", "@bob:example.org");
        assert_eq!(n.username(), "1700000000:@bob:example.org");
        assert_eq!(n.quota_user(), "@bob:example.org");
        assert_eq!(n.buf.len(), n.username().len());
        let n = Names::new("alice", "alice");
        assert_eq!((n.username(), n.quota_user()), ("alice", "alice"));
        let n = Names::new("", "");
        assert_eq!((n.username(), n.quota_user()), ("", ""));
        let n = Names::new("bob", "carol");
        assert_eq!((n.username(), n.quota_user()), ("bob", "carol"));
    }

    #[test]
    fn compact_growth() {
        let now = Instant::now();
        let mut a = alloc(1, 1, now);
        a.permit("8.8.8.8".parse().unwrap(), now);
        assert_eq!(a.permissions.capacity(), 1);
        a.permit("8.8.4.4".parse().unwrap(), now);
        assert_eq!(a.permissions.capacity(), 2);
        a.permit("1.1.1.1".parse().unwrap(), now);
        assert_eq!(a.permissions.capacity(), 4);
    }
}
