//! What the synthetic media carries so a receiver can measure it: the SFU rewrites SSRC,
//! sequence numbers and RTP timestamps, so the loadgen's own counters travel in the payload.
//!
//! Layout (every payload, audio or video):
//!
//! ```text
//! 0..10   codec bytes: a VP8 frame header (keyframe: P bit clear + start code and size;
//!         delta: P bit set) or an Opus TOC byte and zeros
//! 10..14  stream key: publisher index << 8 | stream code (see `STREAM_*`)
//! 14..18  sequence number in that stream
//! 18..26  send time, wall-clock µs as the sender's `StampClock` tells it
//! 26..28  magic "SY"
//! ```

/// Smallest payload that holds the stamp.
pub(crate) const MIN_PAYLOAD: usize = 28;
const MAGIC: &[u8; 2] = b"SY";

pub(crate) const STREAM_AUDIO: u8 = 0;
pub(crate) const STREAM_VIDEO: u8 = 1;
/// Simulcast layer `i` (0 = q, 1 = h, 2 = f).
pub(crate) const fn stream_layer(i: usize) -> u8 {
    2 + i as u8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) stream: u32,
    pub(crate) seq: u32,
    pub(crate) sent_us: u64,
}

/// The publisher index of `--flood-mbps`'s flooder, above any real one, so receivers can
/// tell its streams from those they measure.
pub(crate) const FLOOD_PUBLISHER: usize = 0xff_ffff;

pub(crate) fn stream_key(publisher: usize, code: u8) -> u32 {
    ((publisher as u32) << 8) | u32::from(code)
}

/// Whether a stream key is the flooder's.
pub(crate) fn is_flood(stream: u32) -> bool {
    (stream >> 8) as usize == FLOOD_PUBLISHER
}

/// An Opus-looking payload of `len` bytes.
pub(crate) fn audio(len: usize, stamp: Stamp) -> Vec<u8> {
    let mut p = vec![0u8; len.max(MIN_PAYLOAD)];
    // TOC: config 15 (SILK/CELT hybrid FB 20 ms), mono, one frame.
    p[0] = 0x78;
    write(&mut p, stamp);
    p
}

/// A VP8-looking frame of `len` bytes (640x360 in a keyframe's header).
pub(crate) fn video(len: usize, keyframe: bool, stamp: Stamp) -> Vec<u8> {
    let mut p = vec![0u8; len.max(MIN_PAYLOAD)];
    if keyframe {
        // Frame tag: P = 0 (keyframe), version 0, show_frame 1; then the start code and
        // the 14-bit width and height (RFC 6386 §9.1).
        p[0] = 0x10;
        p[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
        p[6..8].copy_from_slice(&640u16.to_le_bytes());
        p[8..10].copy_from_slice(&360u16.to_le_bytes());
    } else {
        p[0] = 0x11;
    }
    write(&mut p, stamp);
    p
}

fn write(p: &mut [u8], s: Stamp) {
    p[10..14].copy_from_slice(&s.stream.to_be_bytes());
    p[14..18].copy_from_slice(&s.seq.to_be_bytes());
    p[18..26].copy_from_slice(&s.sent_us.to_be_bytes());
    p[26..28].copy_from_slice(MAGIC);
}

pub(crate) fn read(p: &[u8]) -> Option<Stamp> {
    if p.len() < MIN_PAYLOAD || &p[26..28] != MAGIC {
        return None;
    }
    Some(Stamp {
        stream: u32::from_be_bytes(p[10..14].try_into().ok()?),
        seq: u32::from_be_bytes(p[14..18].try_into().ok()?),
        sent_us: u64::from_be_bytes(p[18..26].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = Stamp {
            stream: stream_key(7, stream_layer(2)),
            seq: 41,
            sent_us: 123_456_789,
        };
        assert_eq!(read(&audio(100, s)), Some(s));
        let k = video(900, true, s);
        assert_eq!(k.len(), 900);
        assert_eq!(k[0] & 1, 0, "keyframe: P bit clear");
        assert_eq!(read(&k), Some(s));
        let d = video(10, false, s);
        assert_eq!(d.len(), MIN_PAYLOAD);
        assert_eq!(d[0] & 1, 1, "delta frame: P bit set");
        assert_eq!(read(&d), Some(s));
        assert_eq!(read(&[0u8; 40]), None);
    }

    #[test]
    fn flood_streams_are_told_apart() {
        assert!(is_flood(stream_key(FLOOD_PUBLISHER, STREAM_VIDEO)));
        assert!(is_flood(stream_key(FLOOD_PUBLISHER, STREAM_AUDIO)));
        assert!(!is_flood(stream_key(0, STREAM_VIDEO)));
        assert!(!is_flood(stream_key(65_535, stream_layer(2))));
    }
}
