//! Interop test support: starts the TURN server under test (switchyard, or coturn for
//! comparison) on loopback with a generated `turnserver.conf`, runs real peers against it
//! and reads their verdicts.
//!
//! Which server runs is chosen by `SWITCHYARD_TEST_SERVER` (see [`server::ServerKind::from_env`]).
//! Whether a missing peer (turnutils, chromium, Synapse venv, the server binary itself) fails
//! the test or skips it is chosen by `SWITCHYARD_INTEROP` (see [`skip`]).
#![forbid(unsafe_code)]

#[path = "support/container.rs"]
pub mod container;
#[path = "support/creds.rs"]
pub mod creds;
#[path = "support/livekit.rs"]
pub mod livekit;
#[path = "support/metrics.rs"]
pub mod metrics;
#[path = "support/ports.rs"]
pub mod ports;
#[path = "support/process.rs"]
pub mod process;
#[path = "support/server.rs"]
pub mod server;
#[path = "support/signal.rs"]
pub mod signal;
#[path = "support/skip.rs"]
pub mod skip;
#[path = "support/stun.rs"]
pub mod stun;
#[path = "support/tempdir.rs"]
pub mod tempdir;
#[path = "support/uclient.rs"]
pub mod uclient;

pub use skip::{Need, Skip};

/// The `tests/` package directory (where `js/`, `py/` and `.venv/` live).
pub fn package_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
