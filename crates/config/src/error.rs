//! Errors and warnings that say where they come from.

use std::fmt;
use std::path::PathBuf;

/// Where an option was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A line of a config file (1-based).
    File {
        /// The file as named (after search-path resolution).
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The command line.
    CommandLine,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line } => write!(f, "{}:{line}", path.display()),
            Location::CommandLine => f.write_str("command line"),
        }
    }
}

/// A configuration the server must not start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is invalid: `file:line: key: message`.
    #[error("{location}: {key}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// The option name as written.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The config file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(location: &Location, key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            location: location.clone(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Something accepted but worth telling the operator: `file:line: key: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where.
    pub location: Location,
    /// The option name as written.
    pub key: String,
    /// What to know.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.key, self.message)
    }
}
