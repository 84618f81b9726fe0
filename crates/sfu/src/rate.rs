//! The bitrate of each incoming stream, measured over the router's allocation ticks.
//!
//! Frames arrive depacketized, so the meter adds what str0m puts back around them on the
//! way out (RTP header, extensions, SRTP tag) per started packet: the allocator compares
//! these rates with an estimate of what the subscriber's link carries, which counts whole
//! packets.

use std::time::Duration;

/// Payload bytes per RTP packet str0m packetizes a frame into, roughly.
const PACKET_PAYLOAD: usize = 1150;
/// RTP header, header extensions and the SRTP auth tag of one packet.
const PACKET_OVERHEAD: usize = 40;

#[derive(Debug, Default, Clone)]
pub(crate) struct RateMeter {
    bytes: u64,
    rate: Option<u64>,
}

impl RateMeter {
    pub(crate) fn add(&mut self, frame_len: usize) {
        let packets = frame_len.div_ceil(PACKET_PAYLOAD).max(1);
        self.bytes += (frame_len + packets * PACKET_OVERHEAD) as u64;
    }

    /// Closes a window of length `elapsed`: the rate becomes the mean of the window's rate
    /// and the previous one, so one keyframe does not swing the allocation.
    pub(crate) fn roll(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let window = (self.bytes as f64 * 8.0 / secs) as u64;
        self.bytes = 0;
        self.rate = Some(match self.rate {
            Some(prev) => (prev + window) / 2,
            None => window,
        });
    }

    /// Bits per second, once a window has closed.
    pub(crate) fn rate(&self) -> Option<u64> {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_packet_overhead_and_smooths_windows() {
        let mut m = RateMeter::default();
        assert_eq!(m.rate(), None);
        // 50 frames of 2000 bytes in 0.5 s: two packets each.
        for _ in 0..50 {
            m.add(2000);
        }
        m.roll(Duration::from_millis(500));
        assert_eq!(m.rate(), Some(50 * (2000 + 80) * 8 * 2));
        // An empty window halves it.
        m.roll(Duration::from_millis(500));
        assert_eq!(m.rate(), Some(50 * (2000 + 80) * 8));
    }
}
