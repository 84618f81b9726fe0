//! coturn config text and command lines: parsing never panics, and every error names a
//! location and a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|input: (&str, Vec<String>)| {
    let (text, argv) = input;
    match switchyard_config::coturn::parse_file_text(text, Path::new("fuzz.conf")) {
        Ok(cfg) => {
            assert!(cfg.min_port <= cfg.max_port);
            let _ = cfg.effective_summary();
            for w in &cfg.warnings {
                assert!(w.to_string().starts_with("fuzz.conf:"));
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.conf:")),
    }
    // `-n` keeps the parser away from files on the fuzzing machine.
    let mut args = vec!["-n".to_owned()];
    args.extend(argv.into_iter().filter(|a| a != "-c" && !a.starts_with("--config") && !a.starts_with("-c")));
    match switchyard_config::load_turn(&args) {
        Ok(cfg) => assert!(cfg.min_port <= cfg.max_port),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
