//! livekit-server's command line and environment (`cmd/server/main.go`), on top of the
//! YAML: `--config` (`LIVEKIT_CONFIG_FILE`), `--config-body` (`LIVEKIT_CONFIG`), `--keys`
//! (`LIVEKIT_KEYS`), `--key-file` (`LIVEKIT_KEY_FILE`), `--dev`, `--bind` (repeatable),
//! `--node-ip` (`NODE_IP`), `--udp-port` (`UDP_PORT`). Flags win over their environment
//! variables, which win over the file. Switchyard adds `--port`, `--tcp-port`,
//! `--media-threads` (`SWITCHYARD_MEDIA_THREADS`) and the `--ice-tcp-only` diagnostic.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{ApiKey, LiveKitConfig, UdpPort, parse_livekit_yaml, warn};
use crate::{ConfigError, Location};

/// What the command line and environment say, before it is laid over the file.
#[derive(Default)]
struct Flags {
    config: Option<String>,
    config_body: Option<String>,
    keys: Option<String>,
    key_file: Option<String>,
    dev: bool,
    bind: Vec<String>,
    node_ip: Option<String>,
    udp_port: Option<String>,
    port: Option<String>,
    tcp_port: Option<String>,
    ice_tcp_only: bool,
    media_threads: Option<String>,
    turn_cert: Option<String>,
    turn_key: Option<String>,
    ignored: Vec<(String, &'static str)>,
}

/// Loads the configuration from `args` (after the subcommand) and `env`.
pub fn load(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LiveKitConfig, ConfigError> {
    let cli = Location::CommandLine;
    let mut f = Flags::default();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, ConfigError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| ConfigError::invalid(&cli, flag, "needs a value")),
            }
        };
        match flag {
            "--config" => f.config = Some(value()?),
            "--config-body" => f.config_body = Some(value()?),
            "--keys" => f.keys = Some(value()?),
            "--key-file" => f.key_file = Some(value()?),
            "--dev" | "--development" => f.dev = true,
            "--bind" => f.bind.push(value()?),
            "--node-ip" => f.node_ip = Some(value()?),
            "--udp-port" => f.udp_port = Some(value()?),
            "--port" => f.port = Some(value()?),
            "--tcp-port" => f.tcp_port = Some(value()?),
            "--ice-tcp-only" => f.ice_tcp_only = true,
            "--media-threads" => f.media_threads = Some(value()?),
            "--disable-strict-config" => {} // switchyard is never strict: unknown keys warn
            "--region" | "--redis-host" | "--redis-password" => {
                value()?;
                f.ignored.push((
                    flag.to_owned(),
                    "distributed mode is not implemented, ignored",
                ));
            }
            "--turn-cert" => f.turn_cert = Some(value()?),
            "--turn-key" => f.turn_key = Some(value()?),
            other => {
                return Err(ConfigError::invalid(&cli, other, "unknown option"));
            }
        }
    }
    let from_env =
        |v: Option<String>, name: &str| v.or_else(|| env(name).filter(|s| !s.is_empty()));
    f.config = from_env(f.config, "LIVEKIT_CONFIG_FILE");
    f.config_body = from_env(f.config_body, "LIVEKIT_CONFIG");
    f.keys = from_env(f.keys, "LIVEKIT_KEYS");
    f.key_file = from_env(f.key_file, "LIVEKIT_KEY_FILE");
    f.node_ip = from_env(f.node_ip, "NODE_IP");
    f.udp_port = from_env(f.udp_port, "UDP_PORT");
    f.media_threads = from_env(f.media_threads, "SWITCHYARD_MEDIA_THREADS");

    // The YAML: the body if given (livekit-server prefers it), else the file.
    let mut c = match (&f.config_body, &f.config) {
        (Some(body), _) => parse_livekit_yaml(body, "LIVEKIT_CONFIG")?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: PathBuf::from(path),
                source,
            })?;
            parse_livekit_yaml(&text, path)?
        }
        (None, None) => LiveKitConfig::default(),
    };
    for (flag, why) in std::mem::take(&mut f.ignored) {
        warn(&mut c, &cli, &flag, why);
    }
    let keys_from_flags = f.keys.is_some() || f.key_file.is_some();
    if let Some(path) = &f.key_file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: PathBuf::from(path),
            source,
        })?;
        let body = format!("keys:\n{}", indent(&text));
        c.keys = parse_livekit_yaml(&body, path)?.keys;
    }
    if let Some(keys) = &f.keys {
        c.keys = parse_keys(keys)?;
    }
    if f.dev {
        c.dev = true;
    }
    if !f.bind.is_empty() {
        c.bind_addresses = f
            .bind
            .iter()
            .map(|b| ip(b, "--bind"))
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = &f.node_ip {
        c.rtc.node_ip = v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| ip(s.trim(), "--node-ip"))
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = &f.udp_port {
        c.rtc.udp_port = Some(UdpPort::Single(port(v, "--udp-port", false)?));
    }
    if let Some(v) = &f.port {
        c.port = port(v, "--port", false)?;
    }
    if let Some(v) = &f.tcp_port {
        c.rtc.tcp_port = port(v, "--tcp-port", true)?;
    }
    c.ice_tcp_only |= f.ice_tcp_only;
    if let Some(v) = &f.media_threads {
        c.media_threads = Some(media_threads(v)?);
    }

    // Development mode, as livekit-server sets it up.
    if c.dev {
        if c.keys.is_empty() {
            c.keys = vec![ApiKey {
                key: LiveKitConfig::DEV_KEY.0.into(),
                secret: LiveKitConfig::DEV_KEY.1.into(),
            }];
            if c.bind_addresses.is_empty() && c.rtc.node_ip.is_empty() {
                c.bind_addresses = vec![IpAddrExt::LOCALHOST];
            }
        }
        if c.rtc.udp_port.is_none() {
            c.rtc.udp_port = Some(UdpPort::Single(7882));
        }
    }
    if c.keys.is_empty() {
        return Err(ConfigError::invalid(
            &cli,
            "keys",
            "no API keys: set `keys:` or `key_file:` in livekit.yaml, --keys / LIVEKIT_KEYS, or --dev",
        ));
    }
    if !c.dev {
        let weak: Vec<String> = c
            .keys
            .iter()
            .filter(|k| k.secret.len() < 32)
            .map(|k| k.key.clone())
            .collect();
        for key in weak {
            let at = if keys_from_flags {
                cli.clone()
            } else {
                config_location(&f)
            };
            warn(
                &mut c,
                &at,
                "keys",
                format!("the secret of `{key}` is shorter than 32 characters"),
            );
        }
    }
    if c.rtc.udp_port.is_none() {
        let (a, b) = (c.rtc.port_range_start, c.rtc.port_range_end);
        warn(
            &mut c,
            &config_location(&f),
            "rtc.port_range_start",
            format!(
                "switchyard muxes every peer connection on one UDP port: using {a} of {a}-{b} (set rtc.udp_port to choose)"
            ),
        );
    }
    if let Some(v) = &f.turn_cert {
        c.turn.cert_file = Some(PathBuf::from(v));
    }
    if let Some(v) = &f.turn_key {
        c.turn.key_file = Some(PathBuf::from(v));
    }
    check_turn(&c, &config_location(&f))?;
    if let Some(w) = &c.webhook {
        if w.api_key.is_empty() || !c.keys.iter().any(|k| k.key == w.api_key) {
            return Err(ConfigError::invalid(
                &w.location,
                "webhook.api_key",
                if w.api_key.is_empty() {
                    "is required to sign webhooks".to_owned()
                } else {
                    format!("`{}` is not one of the configured keys", w.api_key)
                },
            ));
        }
        if w.urls.is_empty() {
            let at = w.location.clone();
            warn(&mut c, &at, "webhook.urls", "no URLs: webhooks are off");
            c.webhook = None;
        }
    }
    Ok(c)
}

/// The embedded TURN's settings, checked as livekit-server checks them before it starts.
fn check_turn(c: &LiveKitConfig, at: &Location) -> Result<(), ConfigError> {
    let t = &c.turn;
    if !t.enabled {
        return Ok(());
    }
    if t.udp_port == 0 && t.tls_port == 0 {
        return Err(ConfigError::invalid(
            at,
            "turn",
            "enabled with neither udp_port nor tls_port",
        ));
    }
    if t.tls_port > 0 && !t.external_tls && (t.cert_file.is_none() || t.key_file.is_none()) {
        return Err(ConfigError::invalid(
            at,
            "turn.cert_file",
            "TURN over TLS needs cert_file and key_file (or --turn-cert/--turn-key), or external_tls: true when a load balancer terminates TLS",
        ));
    }
    if t.tls_port > 0 && t.domain.is_empty() {
        return Err(ConfigError::invalid(
            at,
            "turn.domain",
            "is required for TURN over TLS: it is the name in the turns: URL",
        ));
    }
    if t.relay_range_start > t.relay_range_end {
        return Err(ConfigError::invalid(
            at,
            "turn.relay_range_start",
            format!(
                "range {}-{} ends before it starts",
                t.relay_range_start, t.relay_range_end
            ),
        ));
    }
    let media = c.media_udp_port();
    if t.udp_port == media || (media >= t.relay_range_start && media <= t.relay_range_end) {
        return Err(ConfigError::invalid(
            at,
            "turn.udp_port",
            format!("the media port {media} cannot also serve TURN"),
        ));
    }
    if t.tls_port > 0 && (t.tls_port == c.port || t.tls_port == c.rtc.tcp_port) {
        return Err(ConfigError::invalid(
            at,
            "turn.tls_port",
            format!(
                "port {} is already used by signalling or ICE/TCP",
                t.tls_port
            ),
        ));
    }
    Ok(())
}

/// Where the file's settings came from, for whole-config messages.
fn config_location(f: &Flags) -> Location {
    match (&f.config_body, &f.config) {
        (Some(_), _) => Location::File {
            path: "LIVEKIT_CONFIG".into(),
            line: 1,
        },
        (None, Some(p)) => Location::File {
            path: p.into(),
            line: 1,
        },
        (None, None) => Location::CommandLine,
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `--keys "key: secret"`: one pair, or several separated by commas or newlines.
fn parse_keys(s: &str) -> Result<Vec<ApiKey>, ConfigError> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok(ApiKey {
                key: k.trim().to_owned(),
                secret: v.trim().to_owned(),
            }),
            _ => Err(ConfigError::invalid(
                &Location::CommandLine,
                "--keys",
                format!("`{p}` is not `key: secret`"),
            )),
        })
        .collect()
}

fn ip(s: &str, flag: &str) -> Result<std::net::IpAddr, ConfigError> {
    s.parse().map_err(|_| {
        ConfigError::invalid(
            &Location::CommandLine,
            flag,
            format!("`{s}` is not an IP address"),
        )
    })
}

/// The most media threads: each needs its own tag in the ICE ufrag (62 ice-chars).
const MAX_MEDIA_THREADS: usize = 62;

fn media_threads(s: &str) -> Result<usize, ConfigError> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_MEDIA_THREADS).contains(n))
        .ok_or_else(|| {
            ConfigError::invalid(
                &Location::CommandLine,
                "--media-threads",
                format!("`{s}` is not a thread count from 1 to {MAX_MEDIA_THREADS}"),
            )
        })
}

fn port(s: &str, flag: &str, zero_ok: bool) -> Result<u16, ConfigError> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| zero_ok || *p > 0)
        .ok_or_else(|| {
            ConfigError::invalid(&Location::CommandLine, flag, format!("`{s}` is not a port"))
        })
}

struct IpAddrExt;
impl IpAddrExt {
    const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
}
