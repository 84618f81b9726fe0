//! coturn config text and command lines: parsing never panics, every error and warning
//! names a location and a key, and an accepted config is internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (&str, Vec<String>)| {
    let (text, argv) = input;
    match switchyard_config::parse_turn_file(text, Path::new("fuzz.conf")) {
        Ok(cfg) => {
            assert!(cfg.min_port <= cfg.max_port);
            assert!((1..=128).contains(&cfg.relay_threads));
            for r in cfg.allowed_peer_ips.iter().chain(&cfg.denied_peer_ips) {
                assert_eq!(r.first.is_ipv4(), r.last.is_ipv4());
                assert!(r.first <= r.last);
            }
            let _ = cfg.effective_summary();
            for w in &cfg.warnings {
                assert!(w.to_string().starts_with("fuzz.conf:"));
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.conf:")),
    }
    // parse_turn_args never opens a file, whatever `-c` says.
    match switchyard_config::parse_turn_args(&argv) {
        Ok(cfg) => {
            assert!(cfg.min_port <= cfg.max_port);
            let _ = cfg.effective_summary();
            for w in &cfg.warnings {
                assert!(w.to_string().starts_with("command line: "));
            }
        }
        Err(e) => assert!(e.to_string().starts_with("command line: ")),
    }
});
