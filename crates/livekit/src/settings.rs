//! Plain server settings. Loading them from livekit.yaml, `LIVEKIT_CONFIG`, `LIVEKIT_KEYS` or
//! flags is the config crate's business; this is only what the server needs at run time.

use std::net::IpAddr;
use std::time::Duration;

/// Everything `switchyard livekit` needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Addresses the HTTP listener and the UDP socket bind to (unspecified = all).
    pub bind: Vec<IpAddr>,
    /// HTTP port for `/rtc`, Twirp and health (`port`, 7880).
    pub http_port: u16,
    /// API key → secret pairs that may sign access tokens.
    pub keys: Vec<(String, String)>,
    /// Development mode (`--dev`): the devkey/secret pair and relaxed secret checks.
    pub dev: bool,
    /// The one UDP port all peer connections share (`rtc.udp_port`, 7882).
    pub udp_port: u16,
    /// Passive ICE over TCP (`rtc.tcp_port`, 7881); 0 turns it off.
    pub tcp_port: u16,
    /// Advertise UDP candidates (default). Off, clients must use ICE-TCP: a diagnostic for
    /// networks that drop UDP, and how the tests prove the TCP path.
    pub udp_candidates: bool,
    /// Addresses advertised as ICE host candidates (`rtc.node_ip`). Empty: the bind
    /// addresses if specific, else 127.0.0.1.
    pub node_ips: Vec<IpAddr>,
    /// Create rooms on first join (`room.auto_create`).
    pub auto_create: bool,
    /// A room nobody joined is closed after this long (`room.empty_timeout`).
    pub empty_timeout: Duration,
    /// A room is closed this long after its last participant left (`room.departure_timeout`).
    pub departure_timeout: Duration,
    /// `webhook:`: where room and participant events are POSTed, signed as LiveKit signs
    /// them.
    pub webhook: Option<crate::WebhookConfig>,
    /// STUN/TURN servers for `JoinResponse.ice_servers` (embedded TURN first).
    pub ice_servers: Vec<crate::IceServer>,
    /// `prometheus.port` / `prometheus_port`: metrics on `/metrics` of this port.
    pub prometheus_port: Option<u16>,
    /// `rtc.ingress_limit_kbps`: what one peer connection may send us; `None`: unlimited.
    pub ingress_limit: Option<switchyard_sfu::IngressLimit>,
    /// `rtc.congestion_control`.
    pub congestion_control: switchyard_sfu::CongestionControl,
    /// Media threads, each with its own rooms and its own socket on the UDP port (at most
    /// [`switchyard_sfu::ShardId::MAX`]).
    pub media_threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: Vec::new(),
            http_port: 7880,
            keys: Vec::new(),
            dev: false,
            udp_port: 7882,
            tcp_port: 7881,
            udp_candidates: true,
            node_ips: Vec::new(),
            auto_create: true,
            empty_timeout: Duration::from_secs(300),
            departure_timeout: Duration::from_secs(20),
            webhook: None,
            ice_servers: Vec::new(),
            prometheus_port: None,
            ingress_limit: Some(switchyard_sfu::IngressLimit::default()),
            congestion_control: switchyard_sfu::CongestionControl::default(),
            media_threads: 1,
        }
    }
}

impl Settings {
    /// The key pair `--dev` implies, as livekit-server has it.
    pub const DEV_KEY: (&'static str, &'static str) = ("devkey", "secret");

    /// Addresses to advertise as ICE candidates.
    pub fn advertised_ips(&self) -> Vec<IpAddr> {
        if !self.node_ips.is_empty() {
            return self.node_ips.clone();
        }
        let specific: Vec<IpAddr> = self
            .bind
            .iter()
            .copied()
            .filter(|ip| !ip.is_unspecified())
            .collect();
        if !specific.is_empty() {
            return specific;
        }
        vec![IpAddr::from([127, 0, 0, 1])]
    }
}
