//! The ingress limit: a token bucket per peer connection, checked before a datagram from an
//! established connection reaches str0m.
//!
//! Every datagram a connection sends us costs SRTP/SRTCP or DTLS decryption, depacketizing
//! and forwarding to every subscriber in its room, all on the one media thread. A publisher
//! that floods (a broken encoder, a hostile client) would take that thread from everyone
//! else; the bucket drops its excess before any of that work is done. Handshake traffic is
//! never limited: the caller only asks once the connection is up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::{ParticipantId, PcRole};

/// How much one peer connection may send us.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngressLimit {
    /// Sustained rate, in bytes per second of datagrams (as received: SRTP, headers and
    /// all, without the IP/UDP headers).
    pub bytes_per_sec: u64,
    /// How far above the rate a connection may go for a moment: the bucket holds this much
    /// time's worth of `bytes_per_sec`, and starts full.
    pub burst: Duration,
    /// Every datagram costs at least this many bytes, so a flood of tiny packets (whose
    /// cost is per packet, not per byte) is limited too.
    pub min_cost: u64,
}

impl IngressLimit {
    /// 25 Mbit/s. The most a real LiveKit publisher sends on one connection is a 1080p
    /// camera in three simulcast layers (the JS SDK's presets: ~3 + 0.8 + 0.2 Mbit/s), a
    /// 1080p screenshare (up to 5 Mbit/s, plus its own low layer) and audio: about
    /// 10 Mbit/s, plus RTX retransmissions on a lossy link. Twice that and a margin keeps
    /// every real publisher clear of the limit, while a flood is cut to a rate the media
    /// thread forwards easily.
    pub const DEFAULT_BITS_PER_SEC: u64 = 25_000_000;
    /// One second of the rate: a keyframe of every layer at once (a few hundred kB) fits
    /// many times over, and so does a burst of retransmissions after a loss.
    pub const DEFAULT_BURST: Duration = Duration::from_secs(1);
    /// About two audio packets' worth: Opus at 50 packets/s then costs 10 kB/s (80 kbit/s,
    /// a fraction of the limit), while tiny-packet floods are capped at
    /// `bytes_per_sec / 200` packets/s (15 625 at the default rate).
    pub const DEFAULT_MIN_COST: u64 = 200;

    /// The limit for a rate in bits per second, with the default burst and minimum cost.
    pub fn from_bits_per_sec(bits_per_sec: u64) -> Self {
        IngressLimit {
            bytes_per_sec: bits_per_sec / 8,
            burst: Self::DEFAULT_BURST,
            min_cost: Self::DEFAULT_MIN_COST,
        }
    }

    fn capacity(&self) -> f64 {
        self.bytes_per_sec as f64 * self.burst.as_secs_f64()
    }
}

impl Default for IngressLimit {
    fn default() -> Self {
        Self::from_bits_per_sec(Self::DEFAULT_BITS_PER_SEC)
    }
}

/// A token bucket in bytes. Time only comes in through the `now` arguments.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket: a connection starts with its whole burst.
    fn new(limit: &IngressLimit, now: Instant) -> Self {
        Bucket {
            tokens: limit.capacity(),
            at: now,
        }
    }

    /// Refills for the time since the last call, then takes the cost of a datagram of
    /// `len` bytes if there is enough; false (and nothing taken) if there is not.
    fn take(&mut self, limit: &IngressLimit, now: Instant, len: usize) -> bool {
        // A `now` older than the last one refills nothing (and moves nothing back).
        let elapsed = now.saturating_duration_since(self.at);
        self.at = self.at.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * limit.bytes_per_sec as f64)
            .min(limit.capacity());
        let cost = (len as u64).max(limit.min_cost) as f64;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// A connection's datagrams are dropped (logged once at its start and once at its end).
#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    last_drop: Instant,
    dropped: u64,
}

/// An episode is over once a datagram passes this long after the last drop: a flood held
/// at the limit alternates passes and drops, and must stay one episode.
const EPISODE_QUIET: Duration = Duration::from_secs(1);

struct Conn {
    bucket: Bucket,
    episode: Option<Episode>,
}

/// The buckets of every connection, and how many datagrams they dropped.
pub(crate) struct Ingress {
    limit: Option<IngressLimit>,
    conns: HashMap<(ParticipantId, PcRole), Conn>,
    dropped: u64,
}

impl Ingress {
    /// `None`: no limit.
    pub(crate) fn new(limit: Option<IngressLimit>) -> Self {
        Ingress {
            limit,
            conns: HashMap::new(),
            dropped: 0,
        }
    }

    /// Whether a datagram of `len` bytes from this established connection may go on to
    /// str0m. A refused one is counted (see [`Ingress::take_dropped`]).
    pub(crate) fn admit(
        &mut self,
        id: ParticipantId,
        role: PcRole,
        now: Instant,
        len: usize,
    ) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let conn = self.conns.entry((id, role)).or_insert_with(|| Conn {
            bucket: Bucket::new(&limit, now),
            episode: None,
        });
        if conn.bucket.take(&limit, now, len) {
            if let Some(e) = conn
                .episode
                .take_if(|e| now.saturating_duration_since(e.last_drop) >= EPISODE_QUIET)
            {
                tracing::debug!(
                    %id,
                    ?role,
                    dropped = e.dropped,
                    secs = now.saturating_duration_since(e.since).as_secs_f64(),
                    "back under the ingress limit"
                );
            }
            return true;
        }
        self.dropped += 1;
        match &mut conn.episode {
            Some(e) => {
                e.last_drop = now;
                e.dropped += 1;
            }
            None => {
                tracing::info!(
                    %id,
                    ?role,
                    limit_bits_per_sec = limit.bytes_per_sec * 8,
                    "connection exceeds the ingress limit: dropping its excess datagrams"
                );
                conn.episode = Some(Episode {
                    since: now,
                    last_drop: now,
                    dropped: 1,
                });
            }
        }
        false
    }

    /// Forgets a departed participant's buckets.
    pub(crate) fn forget(&mut self, id: ParticipantId) {
        self.conns.retain(|(pid, _), _| *pid != id);
    }

    /// Datagrams dropped since the last call.
    pub(crate) fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 kB/s (64 kbit/s), a 1 s burst, 200-byte minimum.
    fn limit() -> IngressLimit {
        IngressLimit::from_bits_per_sec(64_000)
    }

    fn admitted(b: &mut Bucket, l: &IngressLimit, now: Instant, len: usize, n: usize) -> usize {
        (0..n).filter(|_| b.take(l, now, len)).count()
    }

    #[test]
    fn starts_with_the_burst_then_refills_at_the_rate() {
        let l = limit();
        let t0 = Instant::now();
        let mut b = Bucket::new(&l, t0);
        // The full burst (8000 B) at once: eight 1000-byte datagrams, not a ninth.
        assert_eq!(admitted(&mut b, &l, t0, 1000, 20), 8);
        // 250 ms later: 2000 B refilled.
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(admitted(&mut b, &l, t1, 1000, 20), 2);
        // A refused datagram takes nothing: 500 B more is enough for a 500-byte one.
        let t2 = t1 + Duration::from_micros(62_500);
        assert!(!b.take(&l, t2, 1000));
        assert!(b.take(&l, t2, 500));
    }

    #[test]
    fn idle_time_refills_no_more_than_the_burst() {
        let l = limit();
        let t0 = Instant::now();
        let mut b = Bucket::new(&l, t0);
        assert_eq!(admitted(&mut b, &l, t0, 1000, 8), 8);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(admitted(&mut b, &l, later, 1000, 20), 8);
    }

    #[test]
    fn tiny_datagrams_cost_the_minimum() {
        let l = limit();
        let t0 = Instant::now();
        let mut b = Bucket::new(&l, t0);
        // 8000 B of burst at 200 B each, although they are 10 bytes long.
        assert_eq!(admitted(&mut b, &l, t0, 10, 100), 40);
        // Sustained: 8000 B/s is 40 datagrams/s of any size up to 200 bytes.
        let mut passed = 0;
        for ms in 1..=1000 {
            passed += admitted(&mut b, &l, t0 + Duration::from_millis(ms), 10, 10);
        }
        assert_eq!(passed, 40);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let l = limit();
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = Bucket::new(&l, t0);
        assert_eq!(admitted(&mut b, &l, t0, 1000, 8), 8);
        assert!(!b.take(&l, t0 - Duration::from_secs(5), 1000));
        // Nor does returning to t0 count the same time twice.
        assert!(!b.take(&l, t0, 1000));
        assert!(b.take(&l, t0 + Duration::from_millis(125), 1000));
    }

    #[test]
    fn connections_have_their_own_buckets_and_drops_are_counted() {
        let mut ing = Ingress::new(Some(limit()));
        let t0 = Instant::now();
        let (a, b) = (ParticipantId(1), ParticipantId(2));
        let pass = |ing: &mut Ingress, id, role, n| {
            (0..n).filter(|_| ing.admit(id, role, t0, 1000)).count()
        };
        assert_eq!(pass(&mut ing, a, PcRole::Publisher, 10), 8);
        // a's subscriber connection and b are untouched by a's publisher flood.
        assert_eq!(pass(&mut ing, a, PcRole::Subscriber, 8), 8);
        assert_eq!(pass(&mut ing, b, PcRole::Publisher, 8), 8);
        assert_eq!(ing.take_dropped(), 2);
        assert_eq!(ing.take_dropped(), 0);
        // A departed participant's bucket goes; a new one with its id starts full.
        ing.forget(a);
        assert_eq!(pass(&mut ing, a, PcRole::Publisher, 8), 8);
        assert_eq!(pass(&mut ing, b, PcRole::Publisher, 1), 0);
        assert_eq!(ing.take_dropped(), 1);
    }

    #[test]
    fn no_limit_admits_everything() {
        let mut ing = Ingress::new(None);
        let t0 = Instant::now();
        assert!((0..100_000).all(|_| ing.admit(ParticipantId(1), PcRole::Publisher, t0, 1500)));
        assert_eq!(ing.take_dropped(), 0);
    }

    #[test]
    fn an_episode_lasts_while_drops_keep_coming() {
        let mut ing = Ingress::new(Some(limit()));
        let t0 = Instant::now();
        let id = ParticipantId(1);
        // A flood at ten times the rate for two seconds: passes and drops alternate, and it
        // is one episode throughout.
        for ms in 0..2000u64 {
            ing.admit(id, PcRole::Publisher, t0 + Duration::from_millis(ms), 800);
        }
        let e = ing.conns[&(id, PcRole::Publisher)]
            .episode
            .expect("in an episode");
        assert_eq!(e.since, t0 + Duration::from_millis(10));
        assert!(e.dropped > 1500, "{e:?}");
        // Quiet for over a second: the next datagram passes and ends it.
        let later = t0 + Duration::from_millis(3100);
        assert!(ing.admit(id, PcRole::Publisher, later, 800));
        assert!(ing.conns[&(id, PcRole::Publisher)].episode.is_none());
    }
}
