//! Skipping versus failing when a real peer is not installed.
//!
//! Developers iterating on one crate should not need Chromium and Synapse to run
//! `cargo test`, so by default a missing peer prints `skipped: <why>` and the test returns.
//! CI (`tests/run.sh` exports `SWITCHYARD_INTEROP=1`) installs every peer first, so there a
//! missing peer means the install step is broken and the test must fail instead of passing
//! vacuously.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a test could not run.
#[derive(Debug, Clone)]
pub struct Skip(pub String);

/// A value, or the reason the test cannot run here.
pub type Need<T> = Result<T, Skip>;

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `SWITCHYARD_INTEROP` is set to anything but empty or `0`.
pub fn interop_required() -> bool {
    std::env::var("SWITCHYARD_INTEROP").is_ok_and(|v| !v.is_empty() && v != "0")
}

impl Skip {
    pub fn new(why: impl Into<String>) -> Self {
        Skip(why.into())
    }

    /// Applies the policy: panics under `SWITCHYARD_INTEROP=1`, otherwise prints the reason.
    pub fn report(&self) {
        if interop_required() {
            panic!("SWITCHYARD_INTEROP=1 but a peer is missing: {}", self.0);
        }
        println!("skipped: {}", self.0);
    }
}

/// Unwraps a [`Need`], or reports the skip and returns from the calling test.
#[macro_export]
macro_rules! need {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(skip) => {
                $crate::Skip::report(&skip);
                return;
            }
        }
    };
}

/// Finds an executable by name on `PATH` (and in `/usr/bin`, `/usr/sbin`, which a minimal CI
/// `PATH` can lack).
pub fn find_binary(name: &str) -> Need<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")]);
    for dir in dirs {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Skip::new(format!(
        "`{name}` not found on PATH (run tests/install-peers.sh)"
    )))
}

pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
