//! Every key livekit-server's config reads (`pkg/config/config.go`, `config-sample.yaml`),
//! and what switchyard does with it. livekit-server refuses unknown keys unless started with
//! `--disable-strict-config`; a drop-in must start with any config livekit-server accepts,
//! so unsupported keys warn instead, and keys livekit-server does not know either warn as
//! unknown (a typo should be visible, not fatal).

/// What switchyard does with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read and applied.
    Yes,
    /// A section whose children are listed separately.
    Section,
    /// A map of free-form names (`keys:`): the children are data, not keys.
    Data,
    /// Accepted and ignored, with this reason.
    No(&'static str),
}

const SINGLE_NODE: &str =
    "switchyard runs rooms on one node; distributed mode (Redis) is not implemented, ignored";
const NI: &str = "not implemented by switchyard, ignored";
const MUX: &str = "switchyard muxes every peer connection on one UDP port, ignored";

/// Dotted key → support. Sections list their children; a key under a `Data` section is data.
pub(crate) const KEYS: &[(&str, Support)] = &[
    ("port", Support::Yes),
    ("bind_addresses", Support::Yes),
    ("keys", Support::Data),
    ("key_file", Support::Yes),
    ("development", Support::Yes),
    ("region", Support::No(SINGLE_NODE)),
    ("prometheus_port", Support::Yes),
    ("prometheus", Support::Section),
    ("prometheus.port", Support::Yes),
    (
        "prometheus.username",
        Support::No("basic auth on /metrics is not implemented; keep the port private, ignored"),
    ),
    (
        "prometheus.password",
        Support::No("basic auth on /metrics is not implemented; keep the port private, ignored"),
    ),
    ("rtc", Support::Section),
    ("rtc.udp_port", Support::Yes),
    ("rtc.tcp_port", Support::Yes),
    ("rtc.port_range_start", Support::Yes),
    ("rtc.port_range_end", Support::Yes),
    ("rtc.node_ip", Support::Yes),
    ("rtc.use_external_ip", Support::Yes),
    ("rtc.skip_external_ip_validation", Support::No(NI)),
    ("rtc.stun_servers", Support::Yes),
    ("rtc.turn_servers", Support::Yes),
    // switchyard only: the per-connection ingress limit.
    ("rtc.ingress_limit_kbps", Support::Yes),
    (
        "rtc.use_ice_lite",
        Support::No("switchyard is always ICE-lite, ignored"),
    ),
    ("rtc.interfaces", Support::No(NI)),
    ("rtc.ips", Support::No(NI)),
    ("rtc.enable_loopback_candidate", Support::No(NI)),
    ("rtc.use_mdns", Support::No(NI)),
    (
        "rtc.batch_io",
        Support::No("switchyard always batches socket IO, ignored"),
    ),
    ("rtc.congestion_control", Support::Section),
    ("rtc.congestion_control.enabled", Support::Yes),
    ("rtc.congestion_control.allow_pause", Support::Yes),
    ("rtc.allow_tcp_fallback", Support::No(NI)),
    ("rtc.reconnect_on_publication_error", Support::No(NI)),
    ("rtc.reconnect_on_subscription_error", Support::No(NI)),
    ("rtc.reconnect_on_data_channel_error", Support::No(NI)),
    ("rtc.packet_buffer_size", Support::No(NI)),
    ("rtc.packet_buffer_size_video", Support::No(NI)),
    ("rtc.packet_buffer_size_audio", Support::No(NI)),
    ("rtc.pli_throttle", Support::No(NI)),
    ("rtc.min_playout_delay", Support::No(NI)),
    ("rtc.max_playout_delay", Support::No(NI)),
    ("rtc.strict_acks", Support::No(NI)),
    ("rtc.udp_port_range", Support::No(MUX)),
    ("rtc.ice_port_range_start", Support::No(MUX)),
    ("rtc.ice_port_range_end", Support::No(MUX)),
    ("rtc.force_tcp", Support::No(NI)),
    ("rtc.datachannel_slow_threshold", Support::No(NI)),
    ("rtc.enable_dtls_fragmentation", Support::No(NI)),
    ("redis", Support::No(SINGLE_NODE)),
    ("room", Support::Section),
    ("room.auto_create", Support::Yes),
    ("room.empty_timeout", Support::Yes),
    ("room.departure_timeout", Support::Yes),
    ("room.max_participants", Support::No(NI)),
    ("room.enabled_codecs", Support::No(NI)),
    ("room.playout_delay", Support::No(NI)),
    ("room.sync_streams", Support::No(NI)),
    ("room.enable_remote_unmute", Support::No(NI)),
    ("room.max_metadata_size", Support::No(NI)),
    ("room.max_room_name_length", Support::No(NI)),
    ("room.max_participant_identity_length", Support::No(NI)),
    ("room.create_room_enabled", Support::No(NI)),
    ("room.create_room_timeout", Support::No(NI)),
    ("room.create_room_attempts", Support::No(NI)),
    ("room.update_room_enabled", Support::No(NI)),
    ("turn", Support::Section),
    ("turn.enabled", Support::Yes),
    ("turn.domain", Support::Yes),
    ("turn.cert_file", Support::Yes),
    ("turn.key_file", Support::Yes),
    ("turn.tls_port", Support::Yes),
    ("turn.udp_port", Support::Yes),
    ("turn.external_tls", Support::Yes),
    ("turn.relay_range_start", Support::Yes),
    ("turn.relay_range_end", Support::Yes),
    ("turn.ttl_seconds", Support::Yes),
    ("turn.per_user_relay_allocation_limit", Support::Yes),
    (
        "turn.allow_restricted_peer_cidrs",
        Support::No("the embedded TURN relays to this server's own media port only, ignored"),
    ),
    (
        "turn.deny_peer_cidrs",
        Support::No("the embedded TURN relays to this server's own media port only, ignored"),
    ),
    ("webhook", Support::Section),
    ("webhook.api_key", Support::Yes),
    ("webhook.urls", Support::Yes),
    ("webhook.url_not_found_handler", Support::No(NI)),
    ("logging", Support::Section),
    ("logging.level", Support::Yes),
    (
        "logging.pion_level",
        Support::No("there is no pion in switchyard, ignored"),
    ),
    ("logging.json", Support::No(NI)),
    ("logging.sample", Support::No(NI)),
    ("logging.component_levels", Support::No(NI)),
    ("limit", Support::No(NI)),
    ("audio", Support::No(NI)),
    ("video", Support::No(NI)),
    ("node_selector", Support::No(SINGLE_NODE)),
    ("signal_relay", Support::No(SINGLE_NODE)),
    ("psrpc", Support::No(SINGLE_NODE)),
    ("key_provider", Support::No(NI)),
    ("ingress", Support::No(NI)),
    ("egress", Support::No(NI)),
    ("sip", Support::No(NI)),
    ("agents", Support::No(NI)),
    ("webrtc_server", Support::No(NI)),
    ("api", Support::No(NI)),
    ("metric", Support::No(NI)),
    ("node_stats", Support::No(NI)),
];

/// The support of a dotted key; `None` for a key livekit-server does not have.
pub(crate) fn support(path: &str) -> Option<Support> {
    KEYS.iter().find(|(k, _)| *k == path).map(|(_, s)| *s)
}

/// The known key closest to a misspelled one (same section), for "did you mean".
pub(crate) fn suggest(path: &str) -> Option<&'static str> {
    let (section, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    KEYS.iter()
        .map(|(k, _)| *k)
        .filter(|k| k.rsplit_once('.').map_or("", |(s, _)| s) == section)
        .map(|k| (distance(leaf, k.rsplit('.').next().unwrap_or(k)), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
