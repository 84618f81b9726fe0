//! Switchyard's configuration front ends.
//!
//! [`turn`] reads coturn's `turnserver.conf` and command line into a typed [`TurnConfig`],
//! so `switchyard turn` is a drop-in for `turnserver`; [`livekit`] reads livekit-server's
//! `livekit.yaml`, flags and environment into a [`livekit::LiveKitConfig`]. Every error names where it came
//! from — `file:line: key: what is wrong`, or `command line: key: what is wrong` — and the
//! server does not start on one. Options coturn has that switchyard does not implement,
//! and options coturn does not know either, are accepted with a warning in the same form,
//! because coturn itself only warns and existing configs must keep working.

#![forbid(unsafe_code)]

mod error;
pub mod livekit;
pub mod range;
pub mod turn;

use std::ffi::OsStr;
use std::path::Path;

pub use error::{ConfigError, ConfigWarning, Location};
pub use range::{AddrRange, RangeError};
pub use turn::{AddressFamilyDefault, ExternalIp, ServerAddr, TurnConfig, UserEntry, UserKey};

/// Parses `switchyard turn` / `turnserver` arguments (without the program name), reading
/// the config file they name (`-c FILE`), or the first `turnserver.conf` on coturn's search
/// path unless `-n` is given. Command-line options override the file's; repeatable ones are
/// appended to the file's.
pub fn load_turn<S: AsRef<OsStr>>(args: &[S]) -> Result<TurnConfig, ConfigError> {
    turn::load(args)
}

/// Parses the text of a `turnserver.conf` named `path` on top of coturn's defaults.
pub fn parse_turn_file(text: &str, path: &Path) -> Result<TurnConfig, ConfigError> {
    turn::parse_file(text, path)
}

/// Parses a command line on top of coturn's defaults without reading any file.
pub fn parse_turn_args<S: AsRef<OsStr>>(args: &[S]) -> Result<TurnConfig, ConfigError> {
    turn::parse_args(args)
}
