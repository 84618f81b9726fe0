//! coturn's command line (getopt rules) and finding the config file.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::TurnConfig;
use super::apply::{self, Occurrence, State};
use super::options::{self, Arg};
use crate::{ConfigError, ConfigWarning, Location};

/// Where coturn looks for a relative config file name, in order (`apputils.c`,
/// `config_file_search_dirs`, without the install-prefix directories).
pub const SEARCH_DIRS: &[&str] = &[
    "./",
    "./turnserver/",
    "./coturn/",
    "./etc/",
    "./etc/turnserver/",
    "./etc/coturn/",
    "../etc/",
    "../etc/turnserver/",
    "../etc/coturn/",
    "/etc/",
    "/etc/turnserver/",
    "/etc/coturn/",
    "/usr/local/etc/",
    "/usr/local/etc/turnserver/",
    "/usr/local/etc/coturn/",
];

/// The parsed command line: which file to read, and the options to apply after it.
pub(crate) struct CommandLine {
    pub(crate) config_file: Option<String>,
    pub(crate) no_config_file: bool,
    pub(crate) options: Vec<Occurrence>,
    pub(crate) warnings: Vec<ConfigWarning>,
}

/// Reads coturn's arguments (without the program name): `-c FILE` names the config file
/// (default: the first `turnserver.conf` on [`SEARCH_DIRS`]; none found means defaults,
/// as in coturn), `-n` skips it, and the other options are applied after the file.
pub fn load<S: AsRef<OsStr>>(args: &[S]) -> Result<TurnConfig, ConfigError> {
    load_with(args, SEARCH_DIRS)
}

pub(crate) fn load_with<S: AsRef<OsStr>>(
    args: &[S],
    search_dirs: &[&str],
) -> Result<TurnConfig, ConfigError> {
    let args = to_strings(args)?;
    let cli = parse_command_line(&args)?;
    let mut config = TurnConfig::default();
    let mut state = State::default();
    if !cli.no_config_file {
        let path = match &cli.config_file {
            Some(name) => Some(find_config(name, search_dirs).ok_or_else(|| {
                ConfigError::Read {
                    path: PathBuf::from(name),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "config file not found (looked in the current directory and coturn's search path)",
                    ),
                }
            })?),
            None => find_config("turnserver.conf", search_dirs),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            state = State::for_file(&path);
            apply::apply_file(&mut config, &mut state, &text, &path)?;
            config.config_file = Some(path);
        }
    }
    apply_command_line(config, state, cli)
}

/// Applies a command line to coturn's defaults without reading any file (`-c` is recorded
/// in `config_file` but not opened, `-n` is accepted). For tests, fuzzing and tools.
pub fn parse_args<S: AsRef<OsStr>>(args: &[S]) -> Result<TurnConfig, ConfigError> {
    let args = to_strings(args)?;
    let cli = parse_command_line(&args)?;
    let config = TurnConfig {
        config_file: cli.config_file.as_ref().map(PathBuf::from),
        ..TurnConfig::default()
    };
    apply_command_line(config, State::default(), cli)
}

fn apply_command_line(
    mut config: TurnConfig,
    mut state: State,
    cli: CommandLine,
) -> Result<TurnConfig, ConfigError> {
    config.warnings.extend(cli.warnings);
    state.enter_command_line();
    for occ in cli.options {
        apply::apply(&mut config, &mut state, occ)?;
    }
    apply::finish(&mut config, &state)?;
    Ok(config)
}

fn to_strings<S: AsRef<OsStr>>(args: &[S]) -> Result<Vec<String>, ConfigError> {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            a.to_str().map(str::to_owned).ok_or_else(|| {
                ConfigError::invalid(
                    &Location::CommandLine,
                    &a.to_string_lossy(),
                    "the argument is not valid UTF-8",
                )
            })
        })
        .collect()
}

/// `name`, then each of the search directories; an absolute name is taken as is.
pub(crate) fn find_config(name: &str, search_dirs: &[&str]) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return Some(p.to_owned());
    }
    if p.is_file() {
        return Some(p.to_owned());
    }
    search_dirs
        .iter()
        .map(|d| Path::new(d).join(p))
        .find(|c| c.is_file())
}

/// getopt_long rules: `-x`, `-xVALUE`, `-x VALUE`, clustered flags `-af`; `--name`,
/// `--name=value`, `--name value` (only for options that require a value; an optional
/// value must be attached with `=`, except that a number following a numeric option such
/// as `--stale-nonce 300` is taken too).
pub(crate) fn parse_command_line(args: &[String]) -> Result<CommandLine, ConfigError> {
    let mut cli = CommandLine {
        config_file: None,
        no_config_file: false,
        options: Vec::new(),
        warnings: Vec::new(),
    };
    let loc = Location::CommandLine;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            if let Some(extra) = args.get(i) {
                return Err(ConfigError::invalid(
                    &loc,
                    extra,
                    "unexpected argument (options start with - or --)",
                ));
            }
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            if name == "config" {
                // Not one of coturn's options, but an easy guess; take it as -c.
                let file = match inline {
                    Some(v) => v,
                    None => next_value(args, &mut i, name)?,
                };
                cli.config_file = Some(file);
                continue;
            }
            let Some(spec) = options::by_name(name) else {
                cli.warnings.push(apply::unknown_option(loc.clone(), name));
                continue;
            };
            let value = match (spec.arg, inline) {
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => Some(next_value(args, &mut i, name)?),
                (Arg::Optional, None) if apply::takes_number(spec.name) => {
                    take_number(args, &mut i)
                }
                (_, None) => None,
            };
            cli.options.push(Occurrence {
                spec,
                key: name.to_owned(),
                value,
                location: loc.clone(),
            });
        } else if let Some(spec) = arg
            .strip_prefix('-')
            .map(|s| s.split_once('=').map_or(s, |(n, _)| n))
            .filter(|n| n.len() > 1)
            .and_then(options::by_name)
        {
            // `-max-bps=3000000` (in coturn's own example scripts): getopt_long takes it
            // as `-m ax-bps=3000000`, a relay-thread count that atoi reads as 0 and that
            // a later `-m` overrides. Neither reading is what was meant; say so and skip it.
            cli.warnings.push(ConfigWarning {
                location: loc.clone(),
                key: arg.clone(),
                message: format!(
                    "one dash before the long option `{}`: coturn reads it as short options, \
                     switchyard ignores it; write `-{arg}`",
                    spec.name
                ),
            });
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut rest = shorts;
            while let Some(c) = rest.chars().next() {
                rest = &rest[c.len_utf8()..];
                let key = format!("-{c}");
                match c {
                    'n' => cli.no_config_file = true,
                    'c' => {
                        cli.config_file = Some(if rest.is_empty() {
                            next_value(args, &mut i, &key)?
                        } else {
                            std::mem::take(&mut rest).to_owned()
                        });
                    }
                    _ => {
                        let Some(spec) = options::by_short(c) else {
                            return Err(ConfigError::invalid(&loc, &key, "unknown short option"));
                        };
                        let value = if spec.arg == Arg::Required {
                            Some(if rest.is_empty() {
                                next_value(args, &mut i, &key)?
                            } else {
                                std::mem::take(&mut rest).to_owned()
                            })
                        } else {
                            None
                        };
                        cli.options.push(Occurrence {
                            spec,
                            key,
                            value,
                            location: loc.clone(),
                        });
                    }
                }
            }
        } else {
            return Err(ConfigError::invalid(
                &loc,
                arg,
                "unexpected argument (options start with - or --)",
            ));
        }
    }
    Ok(cli)
}

fn next_value(args: &[String], i: &mut usize, key: &str) -> Result<String, ConfigError> {
    let v = args
        .get(*i)
        .cloned()
        .ok_or_else(|| ConfigError::invalid(&Location::CommandLine, key, "needs a value"))?;
    *i += 1;
    Ok(v)
}

fn take_number(args: &[String], i: &mut usize) -> Option<String> {
    let v = args.get(*i)?;
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        *i += 1;
        Some(v.clone())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_order_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("sy-cfg-search-{}", std::process::id()));
        let a = dir.join("a");
        let b = dir.join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let a_s = format!("{}/", a.display());
        let b_s = format!("{}/", b.display());
        let dirs = [a_s.as_str(), b_s.as_str()];

        // Nothing found: coturn's defaults, no file.
        let c = load_with(&["-p", "4000"], &dirs).unwrap();
        assert_eq!(c.config_file, None);
        assert_eq!(c.listening_port, 4000);

        std::fs::write(b.join("turnserver.conf"), "listening-port=3000\n").unwrap();
        let c = load_with::<&str>(&[], &dirs).unwrap();
        assert_eq!(c.config_file, Some(b.join("turnserver.conf")));
        assert_eq!(c.listening_port, 3000);

        std::fs::write(a.join("turnserver.conf"), "listening-port=2000\n").unwrap();
        let c = load_with::<&str>(&[], &dirs).unwrap();
        assert_eq!(c.listening_port, 2000, "the first directory wins");

        // -c with a relative name: cwd first, then the search directories.
        std::fs::write(b.join("other.conf"), "listening-port=1000\n").unwrap();
        let c = load_with(&["-c", "other.conf"], &dirs).unwrap();
        assert_eq!(c.listening_port, 1000);
        assert!(load_with(&["-c", "missing.conf"], &dirs).is_err());
        // -n: no file at all.
        let c = load_with(&["-n"], &dirs).unwrap();
        assert_eq!(c.listening_port, 3478);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
