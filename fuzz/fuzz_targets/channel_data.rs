//! ChannelData parsing and stream framing on arbitrary bytes: lengths
//! reported never exceed the buffer, and a stream cut frame by frame always
//! makes progress.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_stun::{Frame, Message, PacketKind, channel_data, classify, frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(cd) = channel_data::parse(data) {
        assert!(channel_data::HEADER_LEN + cd.data.len() <= data.len());
        assert_eq!(cd.channel & 0xC000, 0x4000);
        assert_eq!(classify(data), PacketKind::ChannelData);
    }

    // Walk the buffer as a TCP stream.
    let mut rest = data;
    while !rest.is_empty() {
        match frame(rest) {
            Frame::Stun(n) => {
                assert!(n >= 20 && n <= rest.len() && n % 4 == 0);
                assert_ne!(classify(rest), PacketKind::ChannelData);
                let _ = Message::parse(&rest[..n]);
                rest = &rest[n..];
            }
            Frame::ChannelData(n) => {
                assert!(n >= channel_data::HEADER_LEN && n <= rest.len() && n % 4 == 0);
                let cd = channel_data::parse(&rest[..n]).expect("framed ChannelData parses");
                assert!(channel_data::HEADER_LEN + cd.data.len() <= n);
                assert_eq!(
                    channel_data::padded_len(cd.data.len()) + channel_data::HEADER_LEN,
                    n
                );
                rest = &rest[n..];
            }
            Frame::Incomplete { need } => {
                assert!(need > 0);
                break;
            }
            Frame::Invalid => break,
        }
    }
});
