//! livekit.yaml text: parsing never panics, every error and warning names the file and a
//! line, and an accepted config is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // `key_file:` opens a path from the input (say /dev/zero): not a parser property.
    if text.contains("key_file") {
        return;
    }
    match switchyard_config::livekit::parse_livekit_yaml(text, "fuzz.yaml") {
        Ok(cfg) => {
            assert!(cfg.rtc.port_range_start <= cfg.rtc.port_range_end);
            assert!(cfg.port > 0);
            for w in &cfg.warnings {
                assert!(w.to_string().starts_with("fuzz.yaml:"), "{w}");
            }
            let _ = cfg.redacted();
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.yaml:"), "{e}"),
    }
});
