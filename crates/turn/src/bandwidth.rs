//! Bandwidth limits: coturn's `max-bps` (per allocation) and `bps-capacity` (server-wide).
//!
//! Both count **bytes** (not bits) of relayed payload per second, each direction on its
//! own, and drop what is over the limit, as coturn does: a relay has no queue to delay
//! media into, and a late RTP packet is worth no more than a lost one.
//!
//! - `max-bps`: a token bucket per allocation and direction ([`Meter`]), held inside the
//!   allocation, so the check is a few integer operations on memory the hot path touches
//!   anyway.
//! - `bps-capacity`: one budget per direction shared by every worker ([`Capacity`]). Workers
//!   never lock it: a worker takes a slice of the budget (about 10 ms worth) with one atomic
//!   update and spends it locally, so the shared atomics are touched about a hundred times a
//!   second per worker, not once per packet. A slice a worker holds but does not use is
//!   the only overshoot: at most one slice per worker per direction.
//!
//! Buckets start full and hold [`BURST`] worth of the rate, so a video key frame that
//! arrives as a burst of packets is not cut while the average stays at the limit.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How much of a second's rate a bucket holds: the largest burst admitted at once.
pub const BURST: Duration = Duration::from_millis(250);
/// The smallest burst, so that a low limit still admits a full-size datagram.
const MIN_BURST_BYTES: u64 = 3000;
/// The slice of the shared budget a worker takes at a time, as a share of one second.
const SLICE_PER_SECOND: u64 = 100;
const MICROS: u64 = 1_000_000;

/// Relay direction, counted separately as coturn does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client → peer (ChannelData and Send indications from the client).
    ToPeer = 0,
    /// Peer → client.
    ToClient = 1,
}

fn burst_bytes(rate: u64) -> u64 {
    (rate / (MICROS / BURST.as_micros() as u64)).max(MIN_BURST_BYTES)
}

/// One direction's token bucket. Tokens are counted in micro-bytes, so a refill is one
/// multiplication (`rate × elapsed µs`) with no rounding loss between packets.
#[derive(Copy, Clone, Debug)]
struct Bucket {
    tokens: u64,
    last: Instant,
}

impl Bucket {
    fn full(rate: u64, now: Instant) -> Self {
        Bucket {
            tokens: burst_bytes(rate).saturating_mul(MICROS),
            last: now,
        }
    }

    fn admit(&mut self, rate: u64, len: u64, now: Instant) -> bool {
        let cap = burst_bytes(rate).saturating_mul(MICROS);
        if now > self.last {
            // Cap the elapsed time: a bucket idle for longer than BURST is simply full, and
            // the product below cannot overflow.
            let elapsed = now.duration_since(self.last).min(BURST).as_micros() as u64;
            self.tokens = self
                .tokens
                .saturating_add(rate.saturating_mul(elapsed))
                .min(cap);
            self.last = now;
        }
        let cost = len.saturating_mul(MICROS);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// `max-bps` state of one allocation: a bucket per direction.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Meter {
    buckets: [Bucket; 2],
}

impl Meter {
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        Meter {
            buckets: [Bucket::full(rate, now); 2],
        }
    }
}

/// A server-wide budget for one direction, refilled by whichever worker finds it stale.
#[derive(Debug)]
struct SharedBudget {
    /// Bytes available; may dip below zero by nothing (grants never exceed what is there).
    tokens: AtomicI64,
    /// Microseconds since [`Capacity::anchor`] of the last refill.
    refilled_at: AtomicU64,
}

/// `bps-capacity`: the server-wide budget per direction, shared by all workers (see the
/// module docs for how workers share it without a lock).
#[derive(Debug)]
pub struct Capacity {
    rate: u64,
    anchor: Instant,
    budgets: [SharedBudget; 2],
}

impl Capacity {
    /// `rate` bytes per second in each direction (must be non-zero); `now` anchors the
    /// refill clock.
    pub fn new(rate: u64, now: Instant) -> Self {
        let full = burst_bytes(rate).min(i64::MAX as u64) as i64;
        let budget = || SharedBudget {
            tokens: AtomicI64::new(full),
            refilled_at: AtomicU64::new(0),
        };
        Capacity {
            rate,
            anchor: now,
            budgets: [budget(), budget()],
        }
    }

    /// Bytes per second in each direction.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn slice(&self) -> u64 {
        (self.rate / SLICE_PER_SECOND).max(MIN_BURST_BYTES)
    }

    /// Takes up to `want` bytes of `dir`'s budget; returns how many were granted.
    fn take(&self, dir: Direction, want: u64, now: Instant) -> u64 {
        let budget = &self.budgets[dir as usize];
        let t = now.saturating_duration_since(self.anchor).as_micros() as u64;
        let last = budget.refilled_at.load(Ordering::Relaxed);
        // One worker wins the refill for this instant; the others just take from it.
        if t > last
            && budget
                .refilled_at
                .compare_exchange(last, t, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let elapsed = (t - last).min(BURST.as_micros() as u64);
            let add = (self.rate.saturating_mul(elapsed) / MICROS).min(i64::MAX as u64) as i64;
            let cap = burst_bytes(self.rate).min(i64::MAX as u64) as i64;
            let _ = budget
                .tokens
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                    Some(v.saturating_add(add).min(cap))
                });
        }
        let want = want.min(i64::MAX as u64) as i64;
        match budget
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                (v > 0).then(|| v - v.min(want))
            }) {
            Ok(before) => before.min(want) as u64,
            Err(_) => 0,
        }
    }
}

/// Why [`Limiter::admit`] refused a payload.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// The allocation's `max-bps`.
    Allocation,
    /// The server's `bps-capacity`.
    Capacity,
}

/// One worker's view of the limits: the per-allocation rate and its local slices of the
/// shared capacity.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// `max-bps`; 0 = unlimited.
    max_bps: u64,
    capacity: Option<std::sync::Arc<Capacity>>,
    /// Bytes of the shared capacity this worker holds, per direction.
    local: [u64; 2],
}

impl Limiter {
    pub(crate) fn new(max_bps: u64, capacity: Option<std::sync::Arc<Capacity>>) -> Self {
        Limiter {
            max_bps,
            capacity,
            local: [0; 2],
        }
    }

    /// Neither `max-bps` nor `bps-capacity`: the hot path skips the check.
    #[inline]
    pub(crate) fn is_unlimited(&self) -> bool {
        self.max_bps == 0 && self.capacity.is_none()
    }

    /// A fresh meter for a new allocation.
    pub(crate) fn meter(&self, now: Instant) -> Meter {
        Meter::new(self.max_bps, now)
    }

    /// Changes the limits (reload). Existing meters keep their tokens; a new rate applies
    /// from their next refill.
    pub(crate) fn set(&mut self, max_bps: u64, capacity: Option<std::sync::Arc<Capacity>>) {
        let same = match (&self.capacity, &capacity) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.local = [0; 2];
        }
        self.max_bps = max_bps;
        self.capacity = capacity;
    }

    /// Whether `len` payload bytes in direction `dir` may be relayed for the allocation
    /// owning `meter`. Hot path: no allocation, no lock.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        meter: &mut Meter,
        dir: Direction,
        len: usize,
        now: Instant,
    ) -> Result<(), OverLimit> {
        let len = len as u64;
        if self.max_bps != 0 && !meter.buckets[dir as usize].admit(self.max_bps, len, now) {
            return Err(OverLimit::Allocation);
        }
        if let Some(capacity) = &self.capacity {
            let local = &mut self.local[dir as usize];
            if *local < len {
                *local += capacity.take(dir, capacity.slice().max(len), now);
            }
            if *local < len {
                return Err(OverLimit::Capacity);
            }
            *local -= len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers `pps` packets of `size` bytes a second for `secs` seconds; returns admitted bytes.
    fn run(
        limiter: &mut Limiter,
        meter: &mut Meter,
        t0: Instant,
        pps: u64,
        size: usize,
        secs: u64,
    ) -> u64 {
        let mut admitted = 0;
        for i in 0..pps * secs {
            let now = t0 + Duration::from_micros(i * MICROS / pps);
            if limiter.admit(meter, Direction::ToPeer, size, now).is_ok() {
                admitted += size as u64;
            }
        }
        admitted
    }

    #[test]
    fn max_bps_admits_the_rate_plus_one_burst() {
        let t0 = Instant::now();
        let rate = 100_000;
        let mut l = Limiter::new(rate, None);
        let mut m = l.meter(t0);
        // Offered: 1000 B × 400/s = 400 kB/s for 10 s.
        let admitted = run(&mut l, &mut m, t0, 400, 1000, 10);
        let expected = rate * 10 + burst_bytes(rate);
        assert!(
            admitted <= expected && admitted >= expected - 2000,
            "admitted {admitted}, expected ≈ {expected}"
        );
        // The other direction has its own bucket.
        let later = t0 + Duration::from_secs(10);
        assert!(l.admit(&mut m, Direction::ToClient, 1000, later).is_ok());
    }

    #[test]
    fn under_the_limit_nothing_is_dropped() {
        let t0 = Instant::now();
        let mut l = Limiter::new(100_000, None);
        let mut m = l.meter(t0);
        assert_eq!(run(&mut l, &mut m, t0, 90, 1000, 10), 90 * 1000 * 10);
    }

    #[test]
    fn unlimited_admits_everything() {
        let t0 = Instant::now();
        let mut l = Limiter::new(0, None);
        let mut m = l.meter(t0);
        assert_eq!(run(&mut l, &mut m, t0, 1000, 1200, 2), 1000 * 1200 * 2);
    }

    #[test]
    fn capacity_is_shared_between_workers() {
        let t0 = Instant::now();
        let rate = 200_000;
        let cap = std::sync::Arc::new(Capacity::new(rate, t0));
        let mut a = Limiter::new(0, Some(cap.clone()));
        let mut b = Limiter::new(0, Some(cap.clone()));
        let (mut ma, mut mb) = (a.meter(t0), b.meter(t0));
        let mut admitted = 0u64;
        // Two workers each offered 300 kB/s for 5 s, interleaved.
        for i in 0..300 * 5 {
            let now = t0 + Duration::from_micros(i * MICROS / 300);
            for (l, m) in [(&mut a, &mut ma), (&mut b, &mut mb)] {
                match l.admit(m, Direction::ToClient, 1000, now) {
                    Ok(()) => admitted += 1000,
                    Err(e) => assert_eq!(e, OverLimit::Capacity),
                }
            }
        }
        let expected = rate * 5 + burst_bytes(rate);
        let slack = 2 * cap.slice() + 2000;
        assert!(
            admitted.abs_diff(expected) <= slack,
            "admitted {admitted}, expected ≈ {expected} ± {slack}"
        );
    }

    #[test]
    fn capacity_threads_never_overspend() {
        let t0 = Instant::now();
        let rate = 1_000_000;
        let cap = std::sync::Arc::new(Capacity::new(rate, t0));
        // No time passes: only the initial burst can be granted, whatever the contention.
        let granted: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let cap = cap.clone();
                    s.spawn(move || {
                        (0..10_000)
                            .map(|_| cap.take(Direction::ToPeer, 100, t0))
                            .sum::<u64>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, burst_bytes(rate));
    }
}
