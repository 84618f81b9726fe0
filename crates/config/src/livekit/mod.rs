//! livekit-server's configuration: `livekit.yaml` (`--config FILE`, or the YAML body in
//! `--config-body` / `LIVEKIT_CONFIG`), `--keys` / `LIVEKIT_KEYS`, `--key-file`, `--dev` and
//! the flags livekit-server has, with livekit-server's defaults and precedence (flags and
//! their environment variables override the file).
//!
//! Every key livekit-server reads is accepted ([`keys`]); what switchyard does not implement
//! warns with `file:line: key: why`, and invalid values stop the server with
//! `file:line: key: what is wrong`.

mod cli;
mod keys;
mod yaml;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{ConfigError, ConfigWarning, Location};

pub use cli::load;

/// An API key and the secret that signs its tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
}

impl fmt::Debug for ApiKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: <{} chars>", self.key, self.secret.len())
    }
}

/// `rtc.udp_port`: one port, or a `start-end` range (livekit-server muxes over several).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPort {
    Single(u16),
    Range(u16, u16),
}

/// The `rtc:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtcConfig {
    /// `rtc.udp_port` (`--udp-port`, `UDP_PORT`); `--dev` defaults it to 7882.
    pub udp_port: Option<UdpPort>,
    /// `rtc.tcp_port`: passive ICE over TCP (7881); 0 turns it off.
    pub tcp_port: u16,
    /// `rtc.port_range_start` / `_end` (50000–60000): livekit-server's per-connection ports
    /// when no `udp_port` is set.
    pub port_range_start: u16,
    pub port_range_end: u16,
    /// `rtc.node_ip` (`--node-ip`, `NODE_IP`): the address advertised in ICE candidates.
    pub node_ip: Vec<IpAddr>,
    /// `rtc.use_external_ip`: discover the public address with STUN (not implemented: warns).
    pub use_external_ip: bool,
    /// `rtc.stun_servers`: `host:port` entries given to clients.
    pub stun_servers: Vec<String>,
    /// `rtc.turn_servers`: external TURN servers given to clients.
    pub turn_servers: Vec<ExternalTurn>,
    /// `rtc.ingress_limit_kbps` (switchyard only): what one peer connection may send us,
    /// in kbit/s with a one-second burst; the excess is dropped before it is decrypted.
    /// 0: no limit.
    pub ingress_limit_kbps: u32,
    /// `rtc.congestion_control.enabled`: per-subscriber bandwidth estimation (default on).
    pub congestion_control: bool,
    /// `rtc.congestion_control.allow_pause`: pause video that does not fit (default off).
    pub allow_pause: bool,
}

impl RtcConfig {
    /// 25 Mbit/s: twice what a 1080p simulcast camera, a screenshare and audio send
    /// together (the SFU's `IngressLimit` explains the figure).
    pub const DEFAULT_INGRESS_LIMIT_KBPS: u32 = 25_000;
    /// Below this a single audio + 360p video publisher would be cut.
    pub const MIN_INGRESS_LIMIT_KBPS: u32 = 500;
}

/// The `turn:` section: livekit-server's embedded TURN relay, which switchyard serves with
/// its own TURN server in the same process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddedTurn {
    /// `turn.enabled` (false).
    pub enabled: bool,
    /// `turn.domain`: the name in the `turns:` URL and the certificate.
    pub domain: String,
    /// `turn.cert_file` / `turn.key_file` (`--turn-cert` / `--turn-key`): TLS on `tls_port`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// `turn.tls_port` (5349); 0: no TURN over TLS.
    pub tls_port: u16,
    /// `turn.udp_port` (3478); 0: no TURN over UDP.
    pub udp_port: u16,
    /// `turn.external_tls`: a load balancer terminates TLS in front of `tls_port`, which
    /// then takes plain TCP; clients are sent to the balancer on 443.
    pub external_tls: bool,
    /// `turn.relay_range_start` / `_end` (30000–40000): relay ports.
    pub relay_range_start: u16,
    pub relay_range_end: u16,
    /// `turn.ttl_seconds`: lifetime of the credentials handed out in the join response.
    pub ttl: Duration,
    /// `turn.per_user_relay_allocation_limit` (0: none): allocations per participant.
    pub per_user_limit: u32,
}

impl EmbeddedTurn {
    /// Credentials handed to participants last a day: an allocation's refreshes reuse
    /// them, so they must outlive the longest call, not just the join.
    pub const DEFAULT_TTL: u64 = 86_400;
}

/// One `rtc.turn_servers` entry: an external TURN server (coturn, `switchyard turn`) handed
/// to clients in the join response.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalTurn {
    pub host: String,
    pub port: u16,
    /// `udp`, `tcp` or `tls`.
    pub protocol: TurnProtocol,
    pub auth: TurnAuth,
}

impl fmt::Debug for ExternalTurn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            TurnAuth::Secret { ttl, .. } => format!("shared secret, ttl {}s", ttl.as_secs()),
            TurnAuth::Static { username, .. } => format!("user {username}"),
        };
        write!(
            f,
            "{}:{} ({:?}, {auth})",
            self.host, self.port, self.protocol
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TurnProtocol {
    Udp,
    Tcp,
    Tls,
}

/// How clients authenticate to an external TURN server.
#[derive(Clone, PartialEq, Eq)]
pub enum TurnAuth {
    /// `secret` (or `secret_file`): coturn's `static-auth-secret` scheme, fresh credentials
    /// per participant valid for `ttl` (default 14400 s).
    Secret { secret: String, ttl: Duration },
    /// `username` + `credential`, handed out as they are.
    Static {
        username: String,
        credential: String,
    },
}

/// The `room:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomConfig {
    /// `room.auto_create` (true): a join may create its room.
    pub auto_create: bool,
    /// `room.empty_timeout` (300 s): a room nobody joined closes after this.
    pub empty_timeout: Duration,
    /// `room.departure_timeout` (20 s): a room closes this long after its last participant left.
    pub departure_timeout: Duration,
}

/// The `webhook:` section.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WebhookConfig {
    /// `webhook.api_key`: which of `keys` signs the requests.
    pub api_key: String,
    /// `webhook.urls`.
    pub urls: Vec<String>,
    /// Where the section was read, for messages about it.
    pub location: Location,
}

/// Everything `switchyard livekit` reads from livekit-server's configuration surface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveKitConfig {
    /// `port` (7880): signalling, Twirp and health.
    pub port: u16,
    /// `bind_addresses` (`--bind`); empty: all addresses.
    pub bind_addresses: Vec<IpAddr>,
    /// `keys` / `key_file` / `--keys` / `LIVEKIT_KEYS`, or `devkey: secret` with `--dev`.
    pub keys: Vec<ApiKey>,
    /// `--dev` or `development: true`.
    pub dev: bool,
    pub rtc: RtcConfig,
    pub room: RoomConfig,
    pub turn: EmbeddedTurn,
    pub webhook: Option<WebhookConfig>,
    /// `prometheus.port` (or the older `prometheus_port`): metrics on `/metrics`.
    pub prometheus_port: Option<u16>,
    /// `logging.level` (info).
    pub log_level: String,
    /// `--ice-tcp-only` (switchyard only): advertise ICE-TCP candidates alone, a diagnostic
    /// for networks that drop UDP.
    pub ice_tcp_only: bool,
    /// `--media-threads` / `SWITCHYARD_MEDIA_THREADS` (switchyard only): threads forwarding
    /// media, each carrying whole rooms; `None`: one per core.
    pub media_threads: Option<usize>,
    /// Accepted but worth telling: unsupported and unknown keys, weak secrets.
    pub warnings: Vec<ConfigWarning>,
}

impl Default for LiveKitConfig {
    /// livekit-server's defaults (`pkg/config/config.go` `DefaultConfig`).
    fn default() -> Self {
        LiveKitConfig {
            port: 7880,
            bind_addresses: Vec::new(),
            keys: Vec::new(),
            dev: false,
            rtc: RtcConfig {
                udp_port: None,
                tcp_port: 7881,
                port_range_start: 50000,
                port_range_end: 60000,
                node_ip: Vec::new(),
                use_external_ip: false,
                stun_servers: Vec::new(),
                turn_servers: Vec::new(),
                ingress_limit_kbps: RtcConfig::DEFAULT_INGRESS_LIMIT_KBPS,
                congestion_control: true,
                allow_pause: false,
            },
            room: RoomConfig {
                auto_create: true,
                empty_timeout: Duration::from_secs(300),
                departure_timeout: Duration::from_secs(20),
            },
            turn: EmbeddedTurn {
                enabled: false,
                domain: String::new(),
                cert_file: None,
                key_file: None,
                tls_port: 5349,
                udp_port: 3478,
                external_tls: false,
                relay_range_start: 30000,
                relay_range_end: 40000,
                ttl: Duration::from_secs(EmbeddedTurn::DEFAULT_TTL),
                per_user_limit: 0,
            },
            webhook: None,
            prometheus_port: None,
            log_level: "info".into(),
            ice_tcp_only: false,
            media_threads: None,
            warnings: Vec::new(),
        }
    }
}

impl LiveKitConfig {
    /// The key pair `--dev` implies, as livekit-server has it.
    pub const DEV_KEY: (&'static str, &'static str) = ("devkey", "secret");

    /// The one UDP port switchyard muxes every peer connection on: `rtc.udp_port` (a
    /// range's first port), else the first port of `rtc.port_range_*`.
    pub fn media_udp_port(&self) -> u16 {
        match self.rtc.udp_port {
            Some(UdpPort::Single(p)) | Some(UdpPort::Range(p, _)) => p,
            None => self.rtc.port_range_start,
        }
    }

    /// The effective configuration as YAML-ish lines, secrets redacted
    /// (`switchyard livekit --check-config`).
    pub fn redacted(&self) -> String {
        let mut out = String::new();
        let mut kv = |k: &str, v: String| out.push_str(&format!("{k}: {v}\n"));
        kv("port", self.port.to_string());
        kv("bind_addresses", format!("{:?}", self.bind_addresses));
        kv(
            "keys",
            format!(
                "[{}]",
                self.keys
                    .iter()
                    .map(|k| format!("{}: <redacted>", k.key))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        kv("development", self.dev.to_string());
        kv(
            "rtc.udp_port (media, muxed)",
            self.media_udp_port().to_string(),
        );
        kv("rtc.tcp_port", self.rtc.tcp_port.to_string());
        kv("rtc.node_ip", format!("{:?}", self.rtc.node_ip));
        kv(
            "rtc.ingress_limit_kbps",
            match self.rtc.ingress_limit_kbps {
                0 => "off".to_owned(),
                k => k.to_string(),
            },
        );
        kv(
            "rtc.congestion_control.enabled",
            self.rtc.congestion_control.to_string(),
        );
        kv(
            "rtc.congestion_control.allow_pause",
            self.rtc.allow_pause.to_string(),
        );
        kv("room.auto_create", self.room.auto_create.to_string());
        kv(
            "room.empty_timeout",
            self.room.empty_timeout.as_secs().to_string(),
        );
        kv(
            "room.departure_timeout",
            self.room.departure_timeout.as_secs().to_string(),
        );
        if self.turn.enabled {
            let t = &self.turn;
            kv(
                "turn",
                format!(
                    "udp {} tls {}{} domain {:?} relay {}-{}",
                    t.udp_port,
                    t.tls_port,
                    if t.external_tls {
                        " (external TLS)"
                    } else {
                        ""
                    },
                    t.domain,
                    t.relay_range_start,
                    t.relay_range_end
                ),
            );
        } else {
            kv("turn", "off".into());
        }
        kv(
            "prometheus.port",
            self.prometheus_port
                .map_or_else(|| "off".to_owned(), |p| p.to_string()),
        );
        kv("rtc.stun_servers", format!("{:?}", self.rtc.stun_servers));
        kv("rtc.turn_servers", format!("{:?}", self.rtc.turn_servers));
        match &self.webhook {
            Some(w) => kv("webhook", format!("{} → {:?}", w.api_key, w.urls)),
            None => kv("webhook", "off".into()),
        }
        kv("logging.level", self.log_level.clone());
        out
    }
}

/// Parses a livekit.yaml body on top of livekit-server's defaults; `origin` names it in
/// messages (a path, or `LIVEKIT_CONFIG`).
pub fn parse_livekit_yaml(text: &str, origin: &str) -> Result<LiveKitConfig, ConfigError> {
    let mut cfg = LiveKitConfig::default();
    yaml::apply(text, &PathBuf::from(origin), &mut cfg)?;
    Ok(cfg)
}

pub(crate) fn warn(
    cfg: &mut LiveKitConfig,
    location: &Location,
    key: &str,
    message: impl Into<String>,
) {
    cfg.warnings.push(ConfigWarning {
        location: location.clone(),
        key: key.to_owned(),
        message: message.into(),
    });
}
