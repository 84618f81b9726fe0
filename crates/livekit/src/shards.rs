//! Rooms spread over several hubs, one per media thread, so the SFU uses more than one
//! core.
//!
//! A room lives in one hub (its router, its participants, its signalling state) for its
//! whole life, and only that hub's media thread drives its router: forwarding within a
//! room never crosses threads, and media threads never wait on each other's hub locks. New
//! rooms go to the hub holding the fewest. Each media thread reads its own `SO_REUSEPORT`
//! socket on the shared UDP port; a datagram for a connection of another hub (which the
//! ICE ufrag names, see [`switchyard_sfu::ShardId`]) is copied into that hub's [`Inbox`]
//! and its thread woken.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_sfu::{Protocol, Transmit};

use crate::hub::Hub;

/// A room name handed out but not (or no longer) in its hub is forgotten after this long,
/// so names of past rooms do not pile up. It is long enough for the join that asked for
/// the room to create it.
const PLACEMENT_TTL: Duration = Duration::from_secs(60);

struct Placement {
    shard: usize,
    since: Instant,
}

/// An inbox holding more than this many bytes drops what comes next: its thread is not
/// keeping up, and a socket buffer would drop too.
const MAX_INBOX_BYTES: usize = 4 << 20;

/// Datagrams another media thread received for this hub's connections, back to back in
/// one buffer (reused: handing over allocates nothing once the buffers have grown).
#[derive(Default)]
pub(crate) struct Inbox {
    bytes: Vec<u8>,
    items: Vec<Handed>,
}

#[derive(Clone, Copy)]
pub(crate) struct Handed {
    pub(crate) proto: Protocol,
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
    len: usize,
}

impl Inbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues a datagram; false (dropped) when the inbox is full.
    pub(crate) fn push(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        if self.bytes.len() + datagram.len() > MAX_INBOX_BYTES {
            return false;
        }
        self.bytes.extend_from_slice(datagram);
        self.items.push(Handed {
            proto,
            source,
            destination,
            len: datagram.len(),
        });
        true
    }

    /// The queued datagrams in arrival order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Handed, &[u8])> {
        self.items.iter().scan(0, |at, h| {
            let d = &self.bytes[*at..*at + h.len];
            *at += h.len;
            Some((*h, d))
        })
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }
}

pub(crate) struct Shards {
    hubs: Vec<Arc<Mutex<Hub>>>,
    wakers: Vec<mio::Waker>,
    inboxes: Vec<Mutex<Inbox>>,
    /// ICE-TCP datagrams from every hub, for the first media thread, which owns the TCP
    /// connections.
    tcp_out: Mutex<Vec<Transmit>>,
    rooms: Mutex<HashMap<String, Placement>>,
}

impl Shards {
    /// `hubs[i]` is served by the media thread that polls with `wakers[i]`.
    pub(crate) fn new(hubs: Vec<Arc<Mutex<Hub>>>, wakers: Vec<mio::Waker>) -> Self {
        assert_eq!(hubs.len(), wakers.len());
        assert!(!hubs.is_empty());
        Shards {
            inboxes: hubs.iter().map(|_| Mutex::default()).collect(),
            hubs,
            wakers,
            tcp_out: Mutex::default(),
            rooms: Mutex::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.hubs.len()
    }

    pub(crate) fn hub(&self, shard: usize) -> &Arc<Mutex<Hub>> {
        &self.hubs[shard]
    }

    pub(crate) fn hubs(&self) -> &[Arc<Mutex<Hub>>] {
        &self.hubs
    }

    /// The hub that holds (or will hold) room `name`.
    pub(crate) fn for_room(&self, name: &str) -> &Arc<Mutex<Hub>> {
        if self.hubs.len() == 1 {
            return &self.hubs[0];
        }
        let mut rooms = self.rooms.lock().expect("room placement lock");
        if let Some(p) = rooms.get(name) {
            return &self.hubs[p.shard];
        }
        let mut load = vec![0usize; self.hubs.len()];
        for p in rooms.values() {
            load[p.shard] += 1;
        }
        let shard = (0..load.len()).min_by_key(|&i| load[i]).unwrap_or(0);
        tracing::info!(room = name, media_thread = shard, "room placed");
        rooms.insert(
            name.to_owned(),
            Placement {
                shard,
                since: Instant::now(),
            },
        );
        &self.hubs[shard]
    }

    /// Hub `shard`'s inbox, for another media thread to fill (then [`wake`](Self::wake)).
    pub(crate) fn inbox(&self, shard: usize) -> std::sync::MutexGuard<'_, Inbox> {
        self.inboxes[shard].lock().expect("inbox lock")
    }

    /// Swaps hub `shard`'s inbox with `spare` (emptied first), so its thread works through
    /// the datagrams without holding the inbox.
    pub(crate) fn take_inbox(&self, shard: usize, spare: &mut Inbox) {
        spare.clear();
        std::mem::swap(&mut *self.inbox(shard), spare);
    }

    /// Queues ICE-TCP output for the first media thread and wakes it.
    pub(crate) fn send_tcp(&self, out: Vec<Transmit>) {
        self.tcp_out.lock().expect("tcp lock").extend(out);
        self.wake(0);
    }

    /// What [`send_tcp`](Self::send_tcp) queued.
    pub(crate) fn take_tcp(&self) -> Vec<Transmit> {
        std::mem::take(&mut *self.tcp_out.lock().expect("tcp lock"))
    }

    /// Has media thread `shard` look at its inbox and recompute its timers.
    pub(crate) fn wake(&self, shard: usize) {
        if let Err(e) = self.wakers[shard].wake() {
            tracing::debug!(shard, "media wake: {e}");
        }
    }

    /// Forgets placements of rooms their hub no longer has (closed, or never created).
    pub(crate) fn forget_closed(&self, now: Instant) {
        if self.hubs.len() == 1 {
            return;
        }
        let mut rooms = self.rooms.lock().expect("room placement lock");
        let mut stale: Vec<Vec<String>> = vec![Vec::new(); self.hubs.len()];
        for (name, p) in rooms.iter() {
            if now.saturating_duration_since(p.since) >= PLACEMENT_TTL {
                stale[p.shard].push(name.clone());
            }
        }
        for (shard, names) in stale.into_iter().enumerate() {
            if names.is_empty() {
                continue;
            }
            // A hub's lock is taken while the placement lock is held; nothing takes them
            // in the other order (`for_room` returns before its caller locks the hub).
            let hub = self.hubs[shard].lock().expect("hub lock");
            for name in names {
                if !hub.rooms.contains_key(&name) {
                    rooms.remove(&name);
                }
            }
        }
    }

    /// Every hub's gauges, summed.
    pub(crate) fn gauges(&self) -> switchyard_telemetry::livekit::SfuGauges {
        let mut sum = switchyard_telemetry::livekit::SfuGauges::default();
        for hub in &self.hubs {
            sum += hub.lock().expect("hub lock").gauges();
        }
        sum
    }
}
