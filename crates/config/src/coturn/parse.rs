//! Reading the file and the command line, and applying each option.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::options::{self, Arg, OptionSpec, Support};
use super::values::{
    parse_bool, parse_external_ip, parse_ip, parse_number, parse_port, parse_range, parse_user,
};
use super::{AddressFamilyDefault, TurnConfig};
use crate::{ConfigError, ConfigWarning, Location};

/// Where coturn looks for a relative config file name (`apputils.c`,
/// `config_file_search_dirs`), in order.
const SEARCH_DIRS: &[&str] = &[
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

/// One option occurrence before it is applied.
struct Occurrence<'a> {
    spec: &'static OptionSpec,
    /// The name as written (for messages).
    key: &'a str,
    value: Option<String>,
    location: Location,
}

/// See [`crate::load_turn`].
pub fn load<S: AsRef<OsStr>>(args: &[S]) -> Result<TurnConfig, ConfigError> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let mut warnings = Vec::new();
    let cli = parse_cli(&args, &mut warnings)?;

    let mut config = TurnConfig::default();
    if !cli.no_config_file {
        let path = match &cli.config_file {
            Some(name) => Some(find_config(name).ok_or_else(|| ConfigError::Read {
                path: PathBuf::from(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "config file not found (looked in the current directory and coturn's search path)",
                ),
            })?),
            None => find_config("turnserver.conf"),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            config = parse_file_text(&text, &path)?;
            config.config_file = Some(path);
        }
    }
    config.warnings.extend(warnings);
    let mut state = ApplyState::default();
    for occ in cli.options {
        apply(&mut config, &mut state, occ)?;
    }
    validate(&config, &state)?;
    Ok(config)
}

fn find_config(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return Some(p.to_owned());
    }
    if p.is_file() {
        return Some(p.to_owned());
    }
    SEARCH_DIRS
        .iter()
        .map(|d| Path::new(d).join(p))
        .find(|c| c.is_file())
}

/// Parses the text of a config file named `path` (used for messages and to resolve
/// relative certificate paths).
pub fn parse_file_text(text: &str, path: &Path) -> Result<TurnConfig, ConfigError> {
    let mut config = TurnConfig::default();
    let mut state = ApplyState {
        base_dir: path.parent().map(Path::to_owned),
        ..ApplyState::default()
    };
    for (i, raw) in text.lines().enumerate() {
        let location = Location::File {
            path: path.to_owned(),
            line: i + 1,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_line(line);
        let Some(spec) = options::by_name(key) else {
            config.warnings.push(ConfigWarning {
                location,
                key: key.to_owned(),
                message: "unknown option, ignored".into(),
            });
            continue;
        };
        apply(
            &mut config,
            &mut state,
            Occurrence {
                spec,
                key,
                value: value.map(str::to_owned),
                location,
            },
        )?;
    }
    validate(&config, &state)?;
    Ok(config)
}

/// `name<sep>value` where `<sep>` is a run of spaces, tabs and `=`; quotes stripped.
fn split_line(line: &str) -> (&str, Option<&str>) {
    let Some(end) = line.find([' ', '\t', '=']) else {
        return (line, None);
    };
    let key = &line[..end];
    let rest = line[end..].trim_start_matches([' ', '\t', '=']).trim_end();
    if rest.is_empty() {
        return (key, None);
    }
    let rest = if rest.len() >= 2 && rest.starts_with('"') && rest.ends_with('"') {
        &rest[1..rest.len() - 1]
    } else {
        rest
    };
    (key, Some(rest))
}

struct Cli<'a> {
    config_file: Option<String>,
    no_config_file: bool,
    options: Vec<Occurrence<'a>>,
}

fn parse_cli<'a>(
    args: &'a [String],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Cli<'a>, ConfigError> {
    let mut cli = Cli {
        config_file: None,
        no_config_file: false,
        options: Vec::new(),
    };
    let loc = Location::CommandLine;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            if name == "config" {
                // Not in coturn's table, but a common mistake; take it as -c.
                let v = inline.or_else(|| args.get(i).inspect(|_| i += 1).cloned());
                cli.config_file = v;
                continue;
            }
            let Some(spec) = options::by_name(name) else {
                warnings.push(ConfigWarning {
                    location: loc.clone(),
                    key: format!("--{name}"),
                    message: "unknown option, ignored".into(),
                });
                continue;
            };
            let value = match (spec.arg, inline) {
                (_, Some(v)) => Some(v),
                (Arg::Required, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => return Err(ConfigError::invalid(&loc, name, "needs a value")),
                },
                (_, None) => None,
            };
            cli.options.push(Occurrence {
                spec,
                key: name,
                value,
                location: loc.clone(),
            });
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let chars: Vec<char> = shorts.chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let attached: String = chars[j..].iter().collect();
                if c == 'n' {
                    cli.no_config_file = true;
                    continue;
                }
                if c == 'c' {
                    let v = if !attached.is_empty() {
                        j = chars.len();
                        attached
                    } else {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| ConfigError::invalid(&loc, "-c", "needs a file name"))?;
                        i += 1;
                        v
                    };
                    cli.config_file = Some(v);
                    continue;
                }
                let Some(spec) = options::by_short(c) else {
                    return Err(ConfigError::invalid(
                        &loc,
                        &format!("-{c}"),
                        "unknown short option",
                    ));
                };
                let value = if spec.arg == Arg::Required {
                    if !attached.is_empty() {
                        j = chars.len();
                        Some(attached)
                    } else {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            ConfigError::invalid(&loc, &format!("-{c}"), "needs a value")
                        })?;
                        i += 1;
                        Some(v)
                    }
                } else {
                    None
                };
                cli.options.push(Occurrence {
                    spec,
                    key: spec.name,
                    value,
                    location: loc.clone(),
                });
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

/// Bookkeeping across options for the checks that involve two of them.
#[derive(Default)]
struct ApplyState {
    base_dir: Option<PathBuf>,
    min_port_at: Option<Location>,
    max_port_at: Option<Location>,
    bare_external: [bool; 2],
    cli_cleared: Vec<&'static str>,
}

fn apply(
    config: &mut TurnConfig,
    state: &mut ApplyState,
    occ: Occurrence<'_>,
) -> Result<(), ConfigError> {
    let Occurrence {
        spec,
        key,
        value,
        location,
    } = occ;
    let err = |msg: String| ConfigError::invalid(&location, key, msg);
    let warn = |config: &mut TurnConfig, msg: &str| {
        config.warnings.push(ConfigWarning {
            location: location.clone(),
            key: key.to_owned(),
            message: msg.to_owned(),
        })
    };

    // Flags: bare = true, otherwise coturn's boolean grammar.
    let flag = || -> Result<bool, ConfigError> {
        match &value {
            None => Ok(true),
            Some(v) => parse_bool(v).map_err(err),
        }
    };
    let required = || -> Result<&str, ConfigError> {
        value
            .as_deref()
            .ok_or_else(|| ConfigError::invalid(&location, key, "needs a value"))
    };
    let number = |config: &mut TurnConfig| -> Result<u64, ConfigError> {
        let (n, comment) = parse_number::<u64>(required()?).map_err(err)?;
        if comment {
            warn(
                config,
                "text after the number was ignored (coturn has no inline comments; put comments on their own line)",
            );
        }
        Ok(n)
    };
    let port = |config: &mut TurnConfig| -> Result<u16, ConfigError> {
        let (p, comment) = parse_port(required()?).map_err(err)?;
        if comment {
            warn(
                config,
                "text after the port was ignored (coturn has no inline comments)",
            );
        }
        Ok(p)
    };
    let u32_of = |n: u64| -> Result<u32, ConfigError> {
        u32::try_from(n).map_err(|_| ConfigError::invalid(&location, key, "number too large"))
    };
    let string_value = |config: &mut TurnConfig| -> Result<String, ConfigError> {
        let v = required()?;
        if v.contains(" #") || v.contains("\t#") {
            warn(
                config,
                "the value contains ` #`; coturn has no inline comments, so it is part of the value",
            );
        }
        Ok(v.to_owned())
    };
    let base_dir = state.base_dir.clone();
    let path_value = |config: &mut TurnConfig, resolve: bool| -> Result<PathBuf, ConfigError> {
        let p = PathBuf::from(string_value(config)?);
        if resolve && p.is_relative() && !p.exists() {
            if let Some(base) = &base_dir {
                return Ok(base.join(p));
            }
        }
        Ok(p)
    };

    // Repeatable options given on the command line replace the file's list (so
    // `-L 127.0.0.1` means "listen here", not "also here").
    let mut clear_once = |name: &'static str, list_len: usize| -> bool {
        location == Location::CommandLine && list_len > 0 && {
            if state.cli_cleared.contains(&name) {
                false
            } else {
                state.cli_cleared.push(name);
                true
            }
        }
    };

    if let Support::Ignored(why) = spec.support {
        // Still check booleans so a typo does not pass silently.
        if spec.arg == Arg::Flag {
            flag()?;
        }
        warn(config, why);
        return Ok(());
    }

    match spec.name {
        "listening-port" => config.listening_port = port(config)?,
        "tls-listening-port" => config.tls_listening_port = port(config)?,
        "listening-ip" => {
            let ip = parse_ip(required()?).map_err(err)?;
            if clear_once("listening-ip", config.listening_ips.len()) {
                config.listening_ips.clear();
            }
            if !config.listening_ips.contains(&ip) {
                config.listening_ips.push(ip);
            }
        }
        "relay-ip" => {
            let ip = parse_ip(required()?).map_err(err)?;
            if clear_once("relay-ip", config.relay_ips.len()) {
                config.relay_ips.clear();
            }
            if !config.relay_ips.contains(&ip) {
                config.relay_ips.push(ip);
            }
        }
        "external-ip" => {
            let e = parse_external_ip(required()?).map_err(err)?;
            if clear_once("external-ip", config.external_ips.len()) {
                config.external_ips.clear();
                state.bare_external = [false; 2];
            }
            if e.private.is_none() {
                let fam = usize::from(e.public.is_ipv6());
                if state.bare_external[fam] {
                    return Err(err(
                        "a bare external-ip may be given once per address family; use PUBLIC/PRIVATE pairs for several".into(),
                    ));
                }
                state.bare_external[fam] = true;
            }
            config.external_ips.push(e);
        }
        "min-port" => {
            config.min_port = port(config)?;
            state.min_port_at = Some(location.clone());
        }
        "max-port" => {
            config.max_port = port(config)?;
            state.max_port_at = Some(location.clone());
        }
        "relay-threads" | "cpus" => {
            let n = number(config)?;
            config.relay_threads = if n == 0 {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                usize::try_from(n.min(256)).unwrap_or(256)
            };
        }
        "sock-buf-size" => {
            config.sock_buf_size = usize::try_from(number(config)?).unwrap_or(usize::MAX)
        }
        "lt-cred-mech" => config.lt_cred_mech = flag()?,
        "no-auth" => config.no_auth = flag()?,
        "user" => config.users.push(parse_user(required()?).map_err(err)?),
        "use-auth-secret" => config.use_auth_secret = flag()?,
        "static-auth-secret" => {
            let s = required()?.to_owned();
            if s.is_empty() {
                return Err(err("the secret is empty".into()));
            }
            if clear_once("static-auth-secret", config.static_auth_secrets.len()) {
                config.static_auth_secrets.clear();
            }
            config.static_auth_secrets.push(s);
        }
        "realm" => config.realm = Some(string_value(config)?),
        "server-name" => config.server_name = Some(string_value(config)?),
        "prometheus-port" => config.prometheus_port = port(config)?,
        "prometheus-address" => {
            config.prometheus_address = Some(parse_ip(required()?).map_err(err)?)
        }
        "prometheus-path" => config.prometheus_path = string_value(config)?,
        "user-quota" => config.user_quota = u32_of(number(config)?)?,
        "total-quota" => config.total_quota = u32_of(number(config)?)?,
        "verbose" => config.verbose = flag()?,
        "Verbose" => config.extra_verbose = flag()?,
        "software-attribute" => config.software_attribute = flag()?,
        "no-software-attribute" => config.software_attribute = !flag()?,
        "prod" => {
            config.software_attribute = !flag()?;
            warn(
                config,
                "obsolete alias of no-software-attribute (removed in coturn 4.7); SOFTWARE is off by default",
            );
        }
        "fingerprint" => config.fingerprint = flag()?,
        "no-udp" => config.no_udp = flag()?,
        "no-tcp" => config.no_tcp = flag()?,
        "no-tls" => config.no_tls = flag()?,
        "no-dtls" => config.no_dtls = flag()?,
        "no-udp-relay" => config.no_udp_relay = flag()?,
        "no-tcp-relay" => config.no_tcp_relay = flag()?,
        "stale-nonce" => {
            config.stale_nonce = match &value {
                None => 600,
                Some(_) => u32_of(number(config)?)?,
            }
        }
        "max-allocate-lifetime" => {
            config.max_allocate_lifetime = positive(u32_of(number(config)?)?, &err)?
        }
        "channel-lifetime" => config.channel_lifetime = positive(u32_of(number(config)?)?, &err)?,
        "permission-lifetime" => {
            config.permission_lifetime = positive(u32_of(number(config)?)?, &err)?
        }
        "max-allocate-timeout" => {
            config.max_allocate_timeout = positive(u32_of(number(config)?)?, &err)?
        }
        "stun-only" => config.stun_only = flag()?,
        "no-stun" => config.no_stun = flag()?,
        "cert" => config.cert = Some(path_value(config, true)?),
        "pkey" => config.pkey = Some(path_value(config, true)?),
        "no-tlsv1" | "no-tlsv1_1" => {
            flag()?;
            warn(
                config,
                "TLS 1.0 and 1.1 are never offered; nothing to disable",
            );
        }
        "no-tlsv1_2" => config.no_tlsv1_2 = flag()?,
        "log-file" => config.log_file = Some(path_value(config, false)?),
        "no-stdout-log" => config.no_stdout_log = flag()?,
        "syslog" => {
            config.syslog = flag()?;
            if config.syslog {
                warn(
                    config,
                    "logs go to stdout (collect them with journald or the container runtime); direct syslog output is not implemented",
                );
            }
        }
        "simple-log" => config.simple_log = flag()?,
        "log-min-level" | "new-log-timestamp-format" | "syslog-facility" => {
            required()?;
        }
        "new-log-timestamp" | "log-binding" => {
            flag()?;
        }
        "rest-api-separator" => {
            let v = required()?;
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => config.rest_api_separator = c,
                _ => return Err(err(format!("`{v}` must be a single character"))),
            }
        }
        "no-multicast-peers" => config.no_multicast_peers = flag()?,
        "allow-loopback-peers" => config.allow_loopback_peers = flag()?,
        "allowed-peer-ip" | "denied-peer-ip" => {
            let r = parse_range(required()?).map_err(err)?;
            // A zero lower bound is the minimum anyway; a zero upper bound makes coturn (and
            // us) read the range as unbounded.
            let unbounded = r.last.is_unspecified();
            if spec.name == "denied-peer-ip" {
                if unbounded {
                    warn(
                        config,
                        "an all-zero bound is unbounded (as in coturn): this entry denies every peer of its family",
                    );
                }
                config.denied_peer_ips.push(r);
            } else {
                if unbounded {
                    warn(
                        config,
                        "0.0.0.0/8 and :: are never relayed to; this entry cannot open them",
                    );
                }
                config.allowed_peer_ips.push(r);
            }
        }
        "pidfile" => config.pidfile = Some(path_value(config, false)?),
        "no-cli" => {
            flag()?;
        }
        "keep-address-family" => {
            if flag()? {
                config.allocation_default_address_family = AddressFamilyDefault::Keep;
            }
        }
        "allocation-default-address-family" => {
            config.allocation_default_address_family =
                match required()?.to_ascii_lowercase().as_str() {
                    "ipv4" => AddressFamilyDefault::Ipv4,
                    "ipv6" => AddressFamilyDefault::Ipv6,
                    "keep" => AddressFamilyDefault::Keep,
                    other => return Err(err(format!("`{other}` is not ipv4, ipv6 or keep"))),
                }
        }
        "no-rfc5780" | "no-stun-backward-compatibility" | "response-origin-only-with-rfc5780" => {
            // Already our behaviour: no RFC 5780 attributes, no MAPPED-ADDRESS.
            flag()?;
        }
        "rfc5766-channel-numbers" => config.rfc5766_channel_numbers = flag()?,
        "drop-invalid-packets"
        | "drop-invalid-packets-log"
        | "include-reason-string"
        | "udp-recvmmsg"
        | "udp-recvmmsg-log"
        | "udp-sendmmsg-log"
        | "udp-gso"
        | "stateless-nonce"
        | "version" => {
            // Always on (batched IO, stateless nonces, silent drops) or informational.
            flag()?;
        }
        "stateless-nonce-secret" => config.stateless_nonce_secret = Some(required()?.to_owned()),
        other => {
            // Every Support::Yes option must have an arm; reaching here is a bug in this file.
            return Err(err(format!(
                "option `{other}` is recognised but not handled"
            )));
        }
    }
    Ok(())
}

fn positive(v: u32, err: &impl Fn(String) -> ConfigError) -> Result<u32, ConfigError> {
    if v == 0 {
        Err(err("must be greater than 0".into()))
    } else {
        Ok(v)
    }
}

fn validate(config: &TurnConfig, state: &ApplyState) -> Result<(), ConfigError> {
    if config.min_port > config.max_port {
        let (location, key) = match (&state.max_port_at, &state.min_port_at) {
            (Some(max), Some(min)) => {
                if later(max, min) {
                    (max.clone(), "max-port")
                } else {
                    (min.clone(), "min-port")
                }
            }
            (Some(max), None) => (max.clone(), "max-port"),
            (None, Some(min)) => (min.clone(), "min-port"),
            (None, None) => (Location::CommandLine, "min-port"),
        };
        return Err(ConfigError::invalid(
            &location,
            key,
            format!(
                "min-port {} is above max-port {}",
                config.min_port, config.max_port
            ),
        ));
    }
    Ok(())
}

fn later(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::CommandLine, _) => true,
        (Location::File { .. }, Location::CommandLine) => false,
        (Location::File { line: la, .. }, Location::File { line: lb, .. }) => la > lb,
    }
}
