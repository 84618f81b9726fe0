//! Access-token verification on arbitrary strings: never panics, and never accepts a token
//! that was not signed with one of the configured secrets (the fuzzer cannot forge HS256).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_livekit::token::{bearer, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = vec![("devkey".to_string(), "secret".to_string())];
    let _ = bearer(text);
    assert!(verify(text, &keys).is_err() || text.matches('.').count() == 2);
});
