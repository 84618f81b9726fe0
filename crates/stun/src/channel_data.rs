//! ChannelData messages (RFC 8656 §12.4): a 4-byte header — channel number
//! and length — then the application data. This is the hot path; it never
//! touches the STUN parser.

use crate::attr::padded;
use crate::error::ChannelDataError;

/// Size of the ChannelData header.
pub const HEADER_LEN: usize = 4;

/// A borrowed ChannelData message.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct ChannelData<'a> {
    /// Channel number, 0x4000..=0x7FFF by framing; the server narrows it to
    /// RFC 8656's 0x4000..=0x4FFF (or RFC 5766's 0x4000..=0x7FFE).
    pub channel: u16,
    /// Application data, without padding.
    pub data: &'a [u8],
}

/// Parses the datagram form: the length field must not exceed `buf.len() - 4`;
/// bytes after the data (padding, RFC 8656 §12.5) are ignored.
pub fn parse(buf: &[u8]) -> Result<ChannelData<'_>, ChannelDataError> {
    let (&[c0, c1, l0, l1], rest) = buf
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(ChannelDataError::Truncated)?;
    let channel = u16::from_be_bytes([c0, c1]);
    // RFC 7983 demux: ChannelData starts with 0b01.
    if channel & 0xC000 != 0x4000 {
        return Err(ChannelDataError::BadChannel);
    }
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let data = rest.get(..len).ok_or(ChannelDataError::Truncated)?;
    Ok(ChannelData { channel, data })
}

/// Writes a ChannelData header.
pub fn write_header(buf: &mut [u8; HEADER_LEN], channel: u16, len: u16) {
    let [c0, c1] = channel.to_be_bytes();
    let [l0, l1] = len.to_be_bytes();
    *buf = [c0, c1, l0, l1];
}

/// Length rounded up to a multiple of 4: over TCP and TLS "the ChannelData
/// message MUST be padded to a multiple of four bytes" (RFC 8656 §12.5).
pub const fn padded_len(len: usize) -> usize {
    padded(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        let buf = [0x40, 0x01, 0x00, 0x03, 1, 2, 3, 0];
        assert_eq!(
            parse(&buf),
            Ok(ChannelData {
                channel: 0x4001,
                data: &[1, 2, 3]
            })
        );
        assert_eq!(parse(&buf[..6]), Err(ChannelDataError::Truncated));
        assert_eq!(parse(&buf[..3]), Err(ChannelDataError::Truncated));
        assert_eq!(
            parse(&[0x00, 0x01, 0, 0]),
            Err(ChannelDataError::BadChannel)
        );
        assert_eq!(
            parse(&[0x80, 0x01, 0, 0]),
            Err(ChannelDataError::BadChannel)
        );
        assert_eq!(
            parse(&[0x7f, 0xff, 0, 0]),
            Ok(ChannelData {
                channel: 0x7fff,
                data: &[]
            })
        );
    }

    #[test]
    fn header_round_trip() {
        let mut h = [0u8; 4];
        write_header(&mut h, 0x4abc, 0x0102);
        assert_eq!(h, [0x4a, 0xbc, 0x01, 0x02]);
        assert_eq!(padded_len(0), 0);
        assert_eq!(padded_len(1), 4);
        assert_eq!(padded_len(4), 4);
        assert_eq!(padded_len(5), 8);
    }
}
