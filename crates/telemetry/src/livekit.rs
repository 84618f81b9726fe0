//! `switchyard livekit` metrics, named as livekit-server names them (`livekit_room_total`,
//! `livekit_participant_total`, `livekit_track_published_total{kind}`,
//! `livekit_packet_total{direction}`, ...) so existing dashboards keep working.
//!
//! The media thread adds to [`SfuCounters`] once per `recvmmsg`/`sendmmsg` batch (relaxed
//! atomics, no lock); room, participant and track gauges are read from the signalling
//! state only when Prometheus scrapes.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::turn::{counter, counter_family, gauge, gauge1};

/// Media-path counters, written by the media thread.
#[derive(Debug, Default)]
pub struct SfuCounters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    /// Datagrams no connection claimed (stray, spoofed or from a departed client).
    unclaimed: AtomicU64,
    /// Datagrams the kernel refused to send (buffer full, unreachable).
    send_dropped: AtomicU64,
    /// Datagrams over their connection's ingress limit (a flooding publisher).
    ingress_limited: AtomicU64,
}

impl SfuCounters {
    pub fn received(&self, packets: u64, bytes: u64, unclaimed: u64) {
        self.packets_in.fetch_add(packets, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.unclaimed.fetch_add(unclaimed, Ordering::Relaxed);
    }

    pub fn sent(&self, packets: u64, bytes: u64, dropped: u64) {
        self.packets_out.fetch_add(packets, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.send_dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    /// Received datagrams the router dropped for the ingress limit (they are also in the
    /// incoming packet count).
    pub fn ingress_limited(&self, dropped: u64) {
        self.ingress_limited.fetch_add(dropped, Ordering::Relaxed);
    }
}

/// What the signalling state holds right now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SfuGauges {
    pub rooms: u64,
    pub participants: u64,
    pub audio_tracks: u64,
    pub video_tracks: u64,
    /// Tracks forwarded to subscribers (one per subscriber and track).
    pub subscriptions: u64,
    /// Cumulative RTCP feedback (read from the router at scrape time).
    pub nacks_in: u64,
    pub plis_in: u64,
    pub plis_out: u64,
    /// Subscriber connections with a bandwidth estimate, and the estimates' sum (bit/s).
    pub estimated: u64,
    pub estimate_bps: u64,
    /// Video copies paused for lack of bandwidth.
    pub paused_tracks: u64,
}

/// Gauges of several parts (the SFU's media threads) add up to the server's. Every field is
/// named, so a new gauge cannot be left out of the sum.
impl std::ops::AddAssign for SfuGauges {
    fn add_assign(&mut self, other: SfuGauges) {
        let SfuGauges {
            rooms,
            participants,
            audio_tracks,
            video_tracks,
            subscriptions,
            nacks_in,
            plis_in,
            plis_out,
            estimated,
            estimate_bps,
            paused_tracks,
        } = other;
        self.rooms += rooms;
        self.participants += participants;
        self.audio_tracks += audio_tracks;
        self.video_tracks += video_tracks;
        self.subscriptions += subscriptions;
        self.nacks_in += nacks_in;
        self.plis_in += plis_in;
        self.plis_out += plis_out;
        self.estimated += estimated;
        self.estimate_bps += estimate_bps;
        self.paused_tracks += paused_tracks;
    }
}

type GaugeSource = Box<dyn Fn() -> SfuGauges + Send + Sync>;

/// Encodes the counters and a fresh read of the gauges on every scrape.
pub struct LiveKitCollector {
    counters: std::sync::Arc<SfuCounters>,
    gauges: GaugeSource,
}

impl std::fmt::Debug for LiveKitCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitCollector")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl LiveKitCollector {
    pub fn new(
        counters: std::sync::Arc<SfuCounters>,
        gauges: impl Fn() -> SfuGauges + Send + Sync + 'static,
    ) -> Self {
        LiveKitCollector {
            counters,
            gauges: Box::new(gauges),
        }
    }
}

impl Collector for LiveKitCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = (self.gauges)();
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge1(&mut enc, "livekit_room_total", "Rooms open", g.rooms as i64)?;
        gauge1(
            &mut enc,
            "livekit_participant_total",
            "Participants in all rooms",
            g.participants as i64,
        )?;
        gauge(
            &mut enc,
            "livekit_track_published_total",
            "Tracks being published",
            &[
                ([("kind", "audio")], g.audio_tracks as i64),
                ([("kind", "video")], g.video_tracks as i64),
            ],
        )?;
        gauge1(
            &mut enc,
            "livekit_track_subscribed_total",
            "Tracks being forwarded, one per subscriber and track",
            g.subscriptions as i64,
        )?;
        counter_family(
            &mut enc,
            "livekit_packet",
            "UDP media datagrams (RTP, RTCP, STUN, DTLS)",
            "direction",
            &[
                ("incoming", load(&c.packets_in)),
                ("outgoing", load(&c.packets_out)),
            ],
        )?;
        counter_family(
            &mut enc,
            "livekit_packet_bytes",
            "UDP media bytes",
            "direction",
            &[
                ("incoming", load(&c.bytes_in)),
                ("outgoing", load(&c.bytes_out)),
            ],
        )?;
        counter_family(
            &mut enc,
            "switchyard_sfu_dropped_packets",
            "Datagrams dropped, by reason",
            "reason",
            &[
                ("unclaimed", load(&c.unclaimed)),
                ("send_failed", load(&c.send_dropped)),
                ("ingress_limit", load(&c.ingress_limited)),
            ],
        )?;
        counter_family(
            &mut enc,
            "livekit_nack",
            "NACKed packets (incoming: asked for again by subscribers)",
            "direction",
            &[("incoming", g.nacks_in)],
        )?;
        counter_family(
            &mut enc,
            "livekit_pli",
            "Keyframe requests (incoming from subscribers, outgoing to publishers)",
            "direction",
            &[("incoming", g.plis_in), ("outgoing", g.plis_out)],
        )?;
        gauge1(
            &mut enc,
            "switchyard_sfu_bandwidth_estimated_connections",
            "Subscriber connections with a bandwidth estimate",
            g.estimated as i64,
        )?;
        gauge1(
            &mut enc,
            "switchyard_sfu_bandwidth_estimate_bits_per_second",
            "Sum of the subscriber connections' bandwidth estimates",
            g.estimate_bps as i64,
        )?;
        gauge1(
            &mut enc,
            "switchyard_sfu_paused_tracks",
            "Video copies paused because not even their lowest layer fits the estimate",
            g.paused_tracks as i64,
        )?;
        counter(
            &mut enc,
            "switchyard_sfu_up",
            "Scrapes answered (the SFU's metrics endpoint is alive)",
            1,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use std::sync::Arc;

    #[test]
    fn counters_and_gauges_are_exported_under_livekit_names() {
        let counters = Arc::new(SfuCounters::default());
        counters.received(10, 1000, 1);
        counters.sent(30, 3000, 2);
        counters.ingress_limited(4);
        let mut r = Registry::default();
        r.register_collector(Box::new(LiveKitCollector::new(counters, || SfuGauges {
            rooms: 2,
            participants: 5,
            audio_tracks: 4,
            video_tracks: 3,
            subscriptions: 12,
            nacks_in: 7,
            plis_in: 3,
            plis_out: 2,
            estimated: 2,
            estimate_bps: 3_000_000,
            paused_tracks: 1,
        })));
        let mut text = String::new();
        encode(&mut text, &r).unwrap();
        for line in [
            "livekit_room_total 2",
            "livekit_participant_total 5",
            "livekit_track_published_total{kind=\"video\"} 3",
            "livekit_track_subscribed_total 12",
            "livekit_packet_total{direction=\"incoming\"} 10",
            "livekit_packet_bytes_total{direction=\"outgoing\"} 3000",
            "switchyard_sfu_dropped_packets_total{reason=\"unclaimed\"} 1",
            "switchyard_sfu_dropped_packets_total{reason=\"ingress_limit\"} 4",
            "livekit_nack_total{direction=\"incoming\"} 7",
            "livekit_pli_total{direction=\"outgoing\"} 2",
            "switchyard_sfu_bandwidth_estimate_bits_per_second 3000000",
            "switchyard_sfu_paused_tracks 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
