//! Telling STUN from ChannelData (RFC 7983 demultiplexing) and cutting
//! frames out of a TCP/TLS byte stream (RFC 8656 §12.5, RFC 6062).

use crate::attr::padded;
use crate::header::{HEADER_LEN, MAGIC_COOKIE};

/// What the first byte of a datagram says it is.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum PacketKind {
    /// First byte 0..=3 (RFC 7983 §7). Bytes 4..=63 (DTLS, ZRTP) are `Other`
    /// although [`crate::Message::parse`] would accept a STUN method that large.
    Stun,
    /// First byte 0x40..=0x7F: top bits 0b01, a channel number in
    /// 0x4000..=0x7FFF (RFC 7983 assigns 64..=79; RFC 5766 channels reach 0x7FFE).
    ChannelData,
    /// Anything else (empty, DTLS, RTP, ...).
    Other,
}

/// Demultiplexes by the first byte only; [`crate::Message::parse`] or
/// [`crate::channel_data::parse`] does the real validation.
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(b) if b & 0xC0 == 0x40 => PacketKind::ChannelData,
        _ => PacketKind::Other,
    }
}

/// How much of a stream buffer the next frame occupies.
#[derive(Copy, Clone, PartialEq, Eq, Debug, Hash)]
pub enum Frame {
    /// Not enough bytes yet: at least `need` more must arrive.
    Incomplete {
        /// Additional bytes required before calling again can make progress.
        need: usize,
    },
    /// A STUN message of this many bytes (header included) starts the buffer.
    Stun(usize),
    /// A ChannelData message of this many bytes, header and padding included.
    ChannelData(usize),
    /// Neither: the stream is out of sync and should be closed.
    Invalid,
}

/// Finds the length of the frame at the start of `buf`. Over streams,
/// ChannelData is padded to 4 bytes (RFC 8656 §12.5: "over TCP and
/// TLS-over-TCP, the ChannelData message MUST be padded to a multiple of four
/// bytes"), so the returned length includes the padding. A returned length is
/// never larger than `buf.len()`.
pub fn frame(buf: &[u8]) -> Frame {
    let Some((&[b0, _, l0, l1], _)) = buf.split_first_chunk::<4>() else {
        return match buf.first() {
            Some(b) if b & 0x80 != 0 => Frame::Invalid,
            _ => Frame::Incomplete {
                need: 4 - buf.len(),
            },
        };
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let total = match b0 & 0xC0 {
        0x00 => {
            if len % 4 != 0 {
                return Frame::Invalid;
            }
            if let Some(c) = buf.get(4..8).and_then(|c| c.first_chunk::<4>()) {
                if u32::from_be_bytes(*c) != MAGIC_COOKIE {
                    return Frame::Invalid;
                }
            }
            HEADER_LEN + len
        }
        0x40 => crate::channel_data::HEADER_LEN + padded(len),
        _ => return Frame::Invalid,
    };
    if buf.len() < total {
        return Frame::Incomplete {
            need: total - buf.len(),
        };
    }
    if b0 & 0xC0 == 0 {
        Frame::Stun(total)
    } else {
        Frame::ChannelData(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_by_first_byte() {
        assert_eq!(classify(&[]), PacketKind::Other);
        assert_eq!(classify(&[0x00]), PacketKind::Stun);
        assert_eq!(classify(&[0x03]), PacketKind::Stun);
        assert_eq!(classify(&[0x40]), PacketKind::ChannelData);
        assert_eq!(classify(&[0x7f]), PacketKind::ChannelData);
        assert_eq!(classify(&[0x80]), PacketKind::Other);
        assert_eq!(classify(&[0x16]), PacketKind::Other); // DTLS handshake
        assert_eq!(classify(&[0x04]), PacketKind::Other);
        assert_eq!(classify(&[0xc0]), PacketKind::Other);
    }

    #[test]
    fn stun_frames() {
        let mut m = vec![0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&[0x80, 0x22, 0, 0]);
        assert_eq!(frame(&m[..2]), Frame::Incomplete { need: 2 });
        assert_eq!(frame(&m[..10]), Frame::Incomplete { need: 14 });
        assert_eq!(frame(&m), Frame::Stun(24));
        let mut two = m.clone();
        two.extend_from_slice(&m);
        assert_eq!(frame(&two), Frame::Stun(24));
        let mut bad = m.clone();
        bad[5] = 0;
        assert_eq!(frame(&bad), Frame::Invalid);
        bad = m.clone();
        bad[3] = 5;
        assert_eq!(frame(&bad), Frame::Invalid);
    }

    #[test]
    fn channel_data_frames_include_padding() {
        let m = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
        assert_eq!(frame(&m[..4]), Frame::Incomplete { need: 8 });
        assert_eq!(frame(&m[..9]), Frame::Incomplete { need: 3 });
        assert_eq!(frame(&m), Frame::ChannelData(12));
        assert_eq!(frame(&[0x40, 0, 0, 0]), Frame::ChannelData(4));
        assert_eq!(frame(&[0x80, 0, 0, 0]), Frame::Invalid);
        assert_eq!(frame(&[0xff]), Frame::Invalid);
        assert_eq!(frame(&[]), Frame::Incomplete { need: 4 });
    }
}
