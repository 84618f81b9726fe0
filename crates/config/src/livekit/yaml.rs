//! livekit.yaml → [`LiveKitConfig`], over saphyr's position-annotated tree so every message
//! can name the line.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::keys::{self, Support};
use super::{
    ApiKey, ExternalTurn, LiveKitConfig, RtcConfig, TurnAuth, TurnProtocol, UdpPort, WebhookConfig,
    warn,
};
use crate::{ConfigError, Location};

/// Applies a YAML body named `path` to `cfg`.
pub(crate) fn apply(text: &str, path: &Path, cfg: &mut LiveKitConfig) -> Result<(), ConfigError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let at = Location::File {
            path: path.to_owned(),
            line: e.marker().line(),
        };
        ConfigError::invalid(&at, "yaml", e.info().to_owned())
    })?;
    let Some(root) = docs.first() else {
        return Ok(()); // an empty file: all defaults
    };
    let mut walker = Walker {
        path,
        cfg,
        range_at: None,
    };
    match &root.data {
        YamlData::Mapping(_) => walker.section(root, "")?,
        YamlData::Value(Scalar::Null) => {}
        _ => {
            return Err(ConfigError::invalid(
                &walker.at(root),
                "livekit.yaml",
                "the top level must be a mapping of keys",
            ));
        }
    }
    if let Some((key, at)) = walker.range_at {
        let rtc = &walker.cfg.rtc;
        if rtc.port_range_start > rtc.port_range_end {
            return Err(ConfigError::invalid(
                &at,
                key,
                format!(
                    "rtc.port_range_start {} is above rtc.port_range_end {}",
                    rtc.port_range_start, rtc.port_range_end
                ),
            ));
        }
    }
    Ok(())
}

struct Walker<'a> {
    path: &'a Path,
    cfg: &'a mut LiveKitConfig,
    /// The last of `rtc.port_range_start` / `_end` set and where, to check the pair once
    /// both are read.
    range_at: Option<(&'static str, Location)>,
}

impl Walker<'_> {
    fn at(&self, node: &MarkedYaml<'_>) -> Location {
        Location::File {
            path: self.path.to_owned(),
            line: node.span.start.line(),
        }
    }

    fn section(&mut self, node: &MarkedYaml<'_>, prefix: &str) -> Result<(), ConfigError> {
        let YamlData::Mapping(map) = &node.data else {
            return Ok(());
        };
        for (k, v) in map {
            let Some(name) = text(k) else {
                return Err(ConfigError::invalid(
                    &self.at(k),
                    if prefix.is_empty() {
                        "livekit.yaml"
                    } else {
                        prefix
                    },
                    "keys must be plain strings",
                ));
            };
            let dotted = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let at = self.at(k);
            match keys::support(&dotted) {
                None => {
                    let hint = keys::suggest(&dotted)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    warn(
                        self.cfg,
                        &at,
                        &dotted,
                        format!(
                            "unknown key, livekit-server does not have it either{hint}; ignored"
                        ),
                    );
                }
                Some(Support::No(why)) => warn(self.cfg, &at, &dotted, why),
                Some(Support::Section) => match &v.data {
                    YamlData::Mapping(_) => self.section(v, &dotted)?,
                    YamlData::Value(Scalar::Null) => {}
                    _ => return Err(ConfigError::invalid(&at, &dotted, "must be a mapping")),
                },
                Some(Support::Data) => self.keys(v, &at)?,
                Some(Support::Yes) => self.set(&dotted, v, &at)?,
            }
        }
        Ok(())
    }

    /// `keys: {key: secret, ...}`.
    fn keys(&mut self, v: &MarkedYaml<'_>, at: &Location) -> Result<(), ConfigError> {
        self.cfg.keys = key_map(v, at, "keys")?;
        Ok(())
    }

    fn set(&mut self, key: &str, v: &MarkedYaml<'_>, at: &Location) -> Result<(), ConfigError> {
        let c = &mut *self.cfg;
        match key {
            "port" => c.port = port(v, at, key, false)?,
            "bind_addresses" => c.bind_addresses = ips(v, at, key)?,
            "key_file" => {
                let file = string(v, at, key)?;
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    ConfigError::invalid(at, key, format!("cannot read {file}: {e}"))
                })?;
                let docs = MarkedYaml::load_from_str(&text).map_err(|e| {
                    ConfigError::invalid(
                        &Location::File {
                            path: file.clone().into(),
                            line: e.marker().line(),
                        },
                        "keys",
                        e.info().to_owned(),
                    )
                })?;
                if let Some(doc) = docs.first() {
                    let file_at = Location::File {
                        path: file.into(),
                        line: doc.span.start.line(),
                    };
                    c.keys = key_map(doc, &file_at, "keys")?;
                }
            }
            "development" => c.dev = boolean(v, at, key)?,
            "prometheus_port" | "prometheus.port" => {
                let p = port(v, at, key, true)?;
                c.prometheus_port = (p > 0).then_some(p);
            }
            "rtc.udp_port" => c.rtc.udp_port = Some(udp_port(v, at, key)?),
            "rtc.tcp_port" => c.rtc.tcp_port = port(v, at, key, true)?,
            "rtc.port_range_start" => {
                c.rtc.port_range_start = port(v, at, key, false)?;
                self.range_at = Some(("rtc.port_range_start", at.clone()));
            }
            "rtc.port_range_end" => {
                c.rtc.port_range_end = port(v, at, key, false)?;
                self.range_at = Some(("rtc.port_range_end", at.clone()));
            }
            "rtc.node_ip" => c.rtc.node_ip = ips(v, at, key)?,
            "rtc.use_external_ip" => {
                c.rtc.use_external_ip = boolean(v, at, key)?;
                if c.rtc.use_external_ip {
                    warn(
                        c,
                        at,
                        key,
                        "STUN discovery of the public address is not implemented; set rtc.node_ip (or --node-ip) to the address clients reach",
                    );
                }
            }
            "rtc.stun_servers" => c.rtc.stun_servers = strings(v, at, key)?,
            "rtc.turn_servers" => c.rtc.turn_servers = turn_servers(v, at, key)?,
            "rtc.ingress_limit_kbps" => c.rtc.ingress_limit_kbps = ingress_limit(v, at, key)?,
            "rtc.congestion_control.enabled" => c.rtc.congestion_control = boolean(v, at, key)?,
            "rtc.congestion_control.allow_pause" => c.rtc.allow_pause = boolean(v, at, key)?,
            "turn.enabled" => c.turn.enabled = boolean(v, at, key)?,
            "turn.domain" => c.turn.domain = string(v, at, key)?,
            "turn.cert_file" => c.turn.cert_file = Some(string(v, at, key)?.into()),
            "turn.key_file" => c.turn.key_file = Some(string(v, at, key)?.into()),
            "turn.tls_port" => c.turn.tls_port = port(v, at, key, true)?,
            "turn.udp_port" => c.turn.udp_port = port(v, at, key, true)?,
            "turn.external_tls" => c.turn.external_tls = boolean(v, at, key)?,
            "turn.relay_range_start" => c.turn.relay_range_start = port(v, at, key, false)?,
            "turn.relay_range_end" => c.turn.relay_range_end = port(v, at, key, false)?,
            "turn.ttl_seconds" => {
                c.turn.ttl = seconds(v, at, key)?;
                if c.turn.ttl.is_zero() {
                    return Err(ConfigError::invalid(at, key, "must be above 0"));
                }
            }
            "turn.per_user_relay_allocation_limit" => {
                let n = integer(v, at, key)?;
                c.turn.per_user_limit = u32::try_from(n)
                    .map_err(|_| ConfigError::invalid(at, key, format!("{n} is not a count")))?;
            }
            "room.auto_create" => c.room.auto_create = boolean(v, at, key)?,
            "room.empty_timeout" => c.room.empty_timeout = seconds(v, at, key)?,
            "room.departure_timeout" => c.room.departure_timeout = seconds(v, at, key)?,
            "webhook.api_key" => webhook(c, at).api_key = string(v, at, key)?,
            "webhook.urls" => {
                let urls = strings(v, at, key)?;
                if let Some(bad) = urls
                    .iter()
                    .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
                {
                    return Err(ConfigError::invalid(
                        at,
                        key,
                        format!("`{bad}` is not an http:// or https:// URL"),
                    ));
                }
                webhook(c, at).urls = urls;
            }
            "logging.level" => {
                let level = string(v, at, key)?.to_ascii_lowercase();
                if !matches!(level.as_str(), "debug" | "info" | "warn" | "error") {
                    return Err(ConfigError::invalid(
                        at,
                        key,
                        format!("`{level}` is not one of debug, info, warn, error"),
                    ));
                }
                c.log_level = level;
            }
            _ => unreachable!("every implemented key has a setter: {key}"),
        }
        Ok(())
    }
}

fn webhook<'c>(c: &'c mut LiveKitConfig, at: &Location) -> &'c mut WebhookConfig {
    c.webhook.get_or_insert_with(|| WebhookConfig {
        api_key: String::new(),
        urls: Vec::new(),
        location: at.clone(),
    })
}

/// A scalar as text (numbers and booleans too: `keys: {k: 12345}` is a secret).
fn text(node: &MarkedYaml<'_>) -> Option<String> {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        YamlData::Representation(s, _, _) => Some(s.to_string()),
        _ => None,
    }
}

fn type_error(at: &Location, key: &str, want: &str, node: &MarkedYaml<'_>) -> ConfigError {
    let got = match &node.data {
        YamlData::Mapping(_) => "a mapping".to_owned(),
        YamlData::Sequence(_) => "a list".to_owned(),
        YamlData::Value(Scalar::Null) => "nothing".to_owned(),
        _ => text(node).map_or_else(|| "something else".to_owned(), |t| format!("`{t}`")),
    };
    ConfigError::invalid(at, key, format!("expected {want}, found {got}"))
}

fn string(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<String, ConfigError> {
    match &v.data {
        YamlData::Value(Scalar::String(s)) => Ok(s.to_string()),
        _ => Err(type_error(at, key, "a string", v)),
    }
}

fn strings(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<Vec<String>, ConfigError> {
    match &v.data {
        YamlData::Sequence(items) => items.iter().map(|i| string(i, at, key)).collect(),
        YamlData::Value(Scalar::String(s)) => Ok(vec![s.to_string()]),
        _ => Err(type_error(at, key, "a list of strings", v)),
    }
}

fn boolean(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<bool, ConfigError> {
    match &v.data {
        YamlData::Value(Scalar::Boolean(b)) => Ok(*b),
        _ => Err(type_error(at, key, "true or false", v)),
    }
}

fn integer(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<i64, ConfigError> {
    match &v.data {
        YamlData::Value(Scalar::Integer(i)) => Ok(*i),
        _ => Err(type_error(at, key, "a whole number", v)),
    }
}

fn port(v: &MarkedYaml<'_>, at: &Location, key: &str, zero_ok: bool) -> Result<u16, ConfigError> {
    let n = integer(v, at, key)?;
    let low = if zero_ok { 0 } else { 1 };
    u16::try_from(n)
        .ok()
        .filter(|p| *p >= low)
        .ok_or_else(|| ConfigError::invalid(at, key, format!("port {n} is outside {low}-65535")))
}

fn seconds(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<Duration, ConfigError> {
    let n = integer(v, at, key)?;
    u64::try_from(n)
        .map(Duration::from_secs)
        .map_err(|_| ConfigError::invalid(at, key, format!("{n} seconds is negative")))
}

/// `rtc.ingress_limit_kbps`: 0 (off), or a rate a real publisher fits under.
fn ingress_limit(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<u32, ConfigError> {
    let n = integer(v, at, key)?;
    let min = RtcConfig::MIN_INGRESS_LIMIT_KBPS;
    match u32::try_from(n) {
        Ok(0) => Ok(0),
        Ok(k) if k >= min => Ok(k),
        Ok(_) => Err(ConfigError::invalid(
            at,
            key,
            format!(
                "{n} kbit/s would cut even one audio + video publisher; use at least {min}, or 0 for no limit"
            ),
        )),
        Err(_) => Err(ConfigError::invalid(
            at,
            key,
            format!("{n} is not a rate in kbit/s (0 for no limit)"),
        )),
    }
}

fn ips(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<Vec<IpAddr>, ConfigError> {
    let list = match &v.data {
        // `node_ip: 203.0.113.7` or `"v4,v6"`.
        YamlData::Value(Scalar::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        YamlData::Sequence(_) => strings(v, at, key)?,
        _ => return Err(type_error(at, key, "an IP address or a list of them", v)),
    };
    list.iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| ConfigError::invalid(at, key, format!("`{s}` is not an IP address")))
        })
        .collect()
}

fn udp_port(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<UdpPort, ConfigError> {
    if let YamlData::Value(Scalar::Integer(_)) = &v.data {
        return Ok(UdpPort::Single(port(v, at, key, false)?));
    }
    let s =
        string(v, at, key).map_err(|_| type_error(at, key, "a port or a `start-end` range", v))?;
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                ConfigError::invalid(
                    at,
                    key,
                    format!("`{s}` is not a port or a `start-end` range"),
                )
            })
    };
    match s.split_once('-') {
        None => Ok(UdpPort::Single(parse(&s)?)),
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(ConfigError::invalid(
                    at,
                    key,
                    format!("range `{s}` ends before it starts"),
                ));
            }
            Ok(UdpPort::Range(a, b))
        }
    }
}

/// `rtc.turn_servers`: a list of `{host, port, protocol, secret | secret_file, ttl,
/// username, credential}` mappings, as livekit-server reads them.
fn turn_servers(
    v: &MarkedYaml<'_>,
    at: &Location,
    key: &str,
) -> Result<Vec<ExternalTurn>, ConfigError> {
    let YamlData::Sequence(items) = &v.data else {
        return Err(type_error(at, key, "a list of TURN servers", v));
    };
    let mut out = Vec::new();
    for item in items {
        let item_at = match at {
            Location::File { path, .. } => Location::File {
                path: path.clone(),
                line: item.span.start.line(),
            },
            other => other.clone(),
        };
        let YamlData::Mapping(map) = &item.data else {
            return Err(type_error(&item_at, key, "a mapping per TURN server", item));
        };
        let (mut host, mut port_no, mut protocol) = (None, None, TurnProtocol::Udp);
        let (mut secret, mut ttl) = (None, Duration::from_secs(14_400));
        let (mut username, mut credential) = (None, None);
        for (k, val) in map {
            let name = text(k).unwrap_or_default();
            let field = format!("{key}.{name}");
            match name.as_str() {
                "host" => host = Some(string(val, &item_at, &field)?),
                "port" => port_no = Some(port(val, &item_at, &field, false)?),
                "protocol" => {
                    protocol = match string(val, &item_at, &field)?.to_ascii_lowercase().as_str() {
                        "udp" => TurnProtocol::Udp,
                        "tcp" => TurnProtocol::Tcp,
                        "tls" => TurnProtocol::Tls,
                        other => {
                            return Err(ConfigError::invalid(
                                &item_at,
                                &field,
                                format!("`{other}` is not one of udp, tcp, tls"),
                            ));
                        }
                    }
                }
                "secret" => secret = Some(string(val, &item_at, &field)?),
                "secret_file" => {
                    let file = string(val, &item_at, &field)?;
                    let text = std::fs::read_to_string(&file).map_err(|e| {
                        ConfigError::invalid(&item_at, &field, format!("cannot read {file}: {e}"))
                    })?;
                    secret = Some(text.trim().to_owned());
                }
                "ttl" => ttl = seconds(val, &item_at, &field)?,
                "username" => username = Some(string(val, &item_at, &field)?),
                "credential" => credential = Some(string(val, &item_at, &field)?),
                other => {
                    return Err(ConfigError::invalid(
                        &item_at,
                        &field,
                        format!(
                            "`{other}` is not a TURN server field (host, port, protocol, secret, secret_file, ttl, username, credential)"
                        ),
                    ));
                }
            }
        }
        let host = host
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError::invalid(&item_at, &format!("{key}.host"), "is required"))?;
        let port_no = port_no
            .ok_or_else(|| ConfigError::invalid(&item_at, &format!("{key}.port"), "is required"))?;
        let auth = match (secret, username, credential) {
            (Some(secret), _, _) if !secret.is_empty() => TurnAuth::Secret { secret, ttl },
            (_, Some(username), Some(credential)) => TurnAuth::Static {
                username,
                credential,
            },
            _ => {
                return Err(ConfigError::invalid(
                    &item_at,
                    key,
                    format!(
                        "{host}: needs `secret` (or `secret_file`), or `username` and `credential`"
                    ),
                ));
            }
        };
        out.push(ExternalTurn {
            host,
            port: port_no,
            protocol,
            auth,
        });
    }
    Ok(out)
}

/// A `key: secret` mapping (`keys:` or a `key_file`).
fn key_map(v: &MarkedYaml<'_>, at: &Location, key: &str) -> Result<Vec<ApiKey>, ConfigError> {
    let YamlData::Mapping(map) = &v.data else {
        return Err(type_error(at, key, "a mapping of key: secret", v));
    };
    map.iter()
        .map(|(k, s)| match (text(k), text(s)) {
            (Some(key), Some(secret)) if !key.is_empty() && !secret.is_empty() => {
                Ok(ApiKey { key, secret })
            }
            _ => Err(ConfigError::invalid(
                &Location::File {
                    path: match at {
                        Location::File { path, .. } => path.clone(),
                        Location::CommandLine => "command line".into(),
                    },
                    line: k.span.start.line(),
                },
                key,
                "each entry must be `key: secret` with both non-empty",
            )),
        })
        .collect()
}
