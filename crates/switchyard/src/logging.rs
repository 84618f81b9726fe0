//! Logging setup: stdout by default (what containers want), or an append-only file.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Where log lines go.
pub(crate) enum LogTarget<'a> {
    Stdout,
    File(&'a Path),
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_level`.
pub(crate) fn init(target: LogTarget<'_>, default_level: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match target {
        // Colour only on a terminal: container runtimes and journald store escape codes
        // verbatim.
        LogTarget::Stdout => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .init(),
        LogTarget::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(file))
                .init();
        }
    }
    Ok(())
}
