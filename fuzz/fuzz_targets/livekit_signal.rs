//! The signalling decoders on arbitrary bytes: a client frame (`SignalRequest`), the v1
//! `join_request` parameter, and the SDP scan that maps mids to client track ids. None may
//! panic; whatever decodes re-encodes to something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_livekit::signal::{decode_join_request, decode_request, msid_by_mid};

fuzz_target!(|data: &[u8]| {
    let _ = decode_request(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_join_request(text);
        for (cid, mid) in msid_by_mid(text) {
            assert!(!cid.is_empty() || text.contains("a=msid:"));
            assert!(text.contains(&format!("a=mid:{mid}")));
        }
    }
});
