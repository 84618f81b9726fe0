//! Switchyard's configuration front ends.
//!
//! [`coturn`] reads coturn's `turnserver.conf` and command line into a typed [`TurnConfig`].
//! Every error names where it came from — `file:line: key: what is wrong`, or
//! `command line: key: what is wrong` — and the server does not start on one. Options coturn
//! has that switchyard does not implement yet are accepted with a warning in the same form,
//! so existing configs keep working.

#![forbid(unsafe_code)]

pub mod coturn;
mod error;

pub use coturn::{AddrRange, AddressFamilyDefault, ExternalIp, TurnConfig, UserEntry, UserKey};
pub use error::{ConfigError, ConfigWarning, Location};

/// Parses `switchyard turn` / `turnserver` arguments (without the program name), reading the
/// config file they name (`-c FILE`), or the first `turnserver.conf` on coturn's search path
/// unless `-n` is given. Command-line options override the file.
pub fn load_turn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<TurnConfig, ConfigError> {
    coturn::load(args)
}
