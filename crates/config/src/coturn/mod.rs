//! coturn's `turnserver.conf` and command line.
//!
//! Grammar (coturn `mainrelay.c`, `parse_arg_string`): a line is `name<sep>value` where
//! `<sep>` is any run of spaces, tabs or `=`; a bare name is a flag; a value in double
//! quotes loses its quotes; `#` starts a comment only at the beginning of a line. Names are
//! the `--long` option names, so every key is also a flag. Repeatable options accumulate;
//! the command line is applied after the file and overrides it (repeatable options append).

mod options;
mod parse;
mod values;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

pub use parse::{load, parse_file_text};

/// An inclusive address range from `allowed-peer-ip` / `denied-peer-ip` (`IP`, `IP-IP` or
/// CIDR). Both ends have the same family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub first: IpAddr,
    /// Last address (inclusive).
    pub last: IpAddr,
}

impl AddrRange {
    /// The range a CIDR prefix covers; `None` if `len` exceeds the family's width.
    pub fn cidr(ip: IpAddr, len: u8) -> Option<Self> {
        match ip {
            IpAddr::V4(v4) => {
                if len > 32 {
                    return None;
                }
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let base = u32::from(v4) & mask;
                Some(Self {
                    first: IpAddr::V4(base.into()),
                    last: IpAddr::V4((base | !mask).into()),
                })
            }
            IpAddr::V6(v6) => {
                if len > 128 {
                    return None;
                }
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                let base = u128::from(v6) & mask;
                Some(Self {
                    first: IpAddr::V6(base.into()),
                    last: IpAddr::V6((base | !mask).into()),
                })
            }
        }
    }
}

/// `external-ip=PUBLIC[/PRIVATE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalIp {
    /// What XOR-RELAYED-ADDRESS advertises.
    pub public: IpAddr,
    /// The local relay address it stands for; `None` = any relay address of that family.
    pub private: Option<IpAddr>,
}

/// A static long-term user (`user=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEntry {
    /// User name.
    pub name: String,
    /// Password or precomputed key.
    pub key: UserKey,
}

/// How a static user's secret is given.
#[derive(Clone, PartialEq, Eq)]
pub enum UserKey {
    /// `name:password`: the key is MD5(name:realm:password).
    Password(String),
    /// `name:0x<hex>`: the MD5 long-term key itself.
    Key([u8; 16]),
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserKey::Password(_) => f.write_str("Password(<redacted>)"),
            UserKey::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

/// `allocation-default-address-family`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFamilyDefault {
    /// IPv4 unless REQUESTED-ADDRESS-FAMILY says otherwise (RFC 6156 §4.2; coturn's default).
    Ipv4,
    /// IPv6.
    Ipv6,
    /// The family of the address the client reached.
    Keep,
}

/// The relay's configuration, with coturn's defaults. Field names follow coturn's options.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TurnConfig {
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// `listening-ip`; empty = every address of the host.
    pub listening_ips: Vec<IpAddr>,
    /// `listening-port` (3478).
    pub listening_port: u16,
    /// `tls-listening-port` (5349).
    pub tls_listening_port: u16,
    /// `relay-ip`; empty = the address the client reached.
    pub relay_ips: Vec<IpAddr>,
    /// `external-ip`.
    pub external_ips: Vec<ExternalIp>,
    /// `min-port` (49152).
    pub min_port: u16,
    /// `max-port` (65535).
    pub max_port: u16,
    /// `relay-threads` (or `cpus`); default: the number of CPUs.
    pub relay_threads: usize,
    /// `sock-buf-size` in bytes (coturn 4.17 default 2 MiB).
    pub sock_buf_size: usize,
    /// `use-auth-secret`.
    pub use_auth_secret: bool,
    /// `static-auth-secret` (several for rotation).
    pub static_auth_secrets: Vec<String>,
    /// `rest-api-separator` (`:`).
    pub rest_api_separator: char,
    /// `lt-cred-mech`.
    pub lt_cred_mech: bool,
    /// `no-auth`.
    pub no_auth: bool,
    /// `user`.
    pub users: Vec<UserEntry>,
    /// `realm`.
    pub realm: Option<String>,
    /// `server-name`.
    pub server_name: Option<String>,
    /// `allowed-peer-ip`.
    pub allowed_peer_ips: Vec<AddrRange>,
    /// `denied-peer-ip`.
    pub denied_peer_ips: Vec<AddrRange>,
    /// `no-multicast-peers` (multicast is denied by default anyway).
    pub no_multicast_peers: bool,
    /// `allow-loopback-peers`.
    pub allow_loopback_peers: bool,
    /// `user-quota` (0 = unlimited).
    pub user_quota: u32,
    /// `total-quota` (0 = unlimited).
    pub total_quota: u32,
    /// `max-bps` in bytes per second (0 = unlimited; not enforced yet).
    pub max_bps: u64,
    /// `bps-capacity` in bytes per second (0 = unlimited; not enforced yet).
    pub bps_capacity: u64,
    /// `no-udp`.
    pub no_udp: bool,
    /// `no-tcp`.
    pub no_tcp: bool,
    /// `no-tls`.
    pub no_tls: bool,
    /// `no-dtls`.
    pub no_dtls: bool,
    /// `no-udp-relay`.
    pub no_udp_relay: bool,
    /// `no-tcp-relay`.
    pub no_tcp_relay: bool,
    /// `cert` (PEM chain).
    pub cert: Option<PathBuf>,
    /// `pkey` (PEM key).
    pub pkey: Option<PathBuf>,
    /// `no-tlsv1_2`: TLS 1.3 only.
    pub no_tlsv1_2: bool,
    /// `fingerprint`.
    pub fingerprint: bool,
    /// `software-attribute` (off by default, as in coturn ≥ 4.7).
    pub software_attribute: bool,
    /// `stale-nonce` seconds (600; 0 = never stale).
    pub stale_nonce: u32,
    /// `max-allocate-lifetime` (3600).
    pub max_allocate_lifetime: u32,
    /// `channel-lifetime` (600).
    pub channel_lifetime: u32,
    /// `permission-lifetime` (300).
    pub permission_lifetime: u32,
    /// `max-allocate-timeout` (60).
    pub max_allocate_timeout: u32,
    /// `stun-only`.
    pub stun_only: bool,
    /// `no-stun`.
    pub no_stun: bool,
    /// `rfc5766-channel-numbers`.
    pub rfc5766_channel_numbers: bool,
    /// `allocation-default-address-family`.
    pub allocation_default_address_family: AddressFamilyDefault,
    /// `prometheus-port` (9641).
    pub prometheus_port: u16,
    /// `prometheus-address`.
    pub prometheus_address: Option<IpAddr>,
    /// `prometheus-path` (`/metrics`).
    pub prometheus_path: String,
    /// `verbose`.
    pub verbose: bool,
    /// `Verbose`.
    pub extra_verbose: bool,
    /// `log-file` (`stdout`, `-`, `syslog` or a path).
    pub log_file: Option<PathBuf>,
    /// `syslog`.
    pub syslog: bool,
    /// `simple-log`.
    pub simple_log: bool,
    /// `no-stdout-log`.
    pub no_stdout_log: bool,
    /// `pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `stateless-nonce-secret` (shared by several nodes so any of them checks a nonce).
    pub stateless_nonce_secret: Option<String>,
    /// Things worth telling the operator, each with `file:line: key:`.
    pub warnings: Vec<crate::ConfigWarning>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            config_file: None,
            listening_ips: Vec::new(),
            listening_port: 3478,
            tls_listening_port: 5349,
            relay_ips: Vec::new(),
            external_ips: Vec::new(),
            min_port: 49152,
            max_port: 65535,
            relay_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            sock_buf_size: 2 << 20,
            use_auth_secret: false,
            static_auth_secrets: Vec::new(),
            rest_api_separator: ':',
            lt_cred_mech: false,
            no_auth: false,
            users: Vec::new(),
            realm: None,
            server_name: None,
            allowed_peer_ips: Vec::new(),
            denied_peer_ips: Vec::new(),
            no_multicast_peers: false,
            allow_loopback_peers: false,
            user_quota: 0,
            total_quota: 0,
            max_bps: 0,
            bps_capacity: 0,
            no_udp: false,
            no_tcp: false,
            no_tls: false,
            no_dtls: false,
            no_udp_relay: false,
            no_tcp_relay: false,
            cert: None,
            pkey: None,
            no_tlsv1_2: false,
            fingerprint: false,
            software_attribute: false,
            stale_nonce: 600,
            max_allocate_lifetime: 3600,
            channel_lifetime: 600,
            permission_lifetime: 300,
            max_allocate_timeout: 60,
            stun_only: false,
            no_stun: false,
            rfc5766_channel_numbers: false,
            allocation_default_address_family: AddressFamilyDefault::Ipv4,
            prometheus_port: 9641,
            prometheus_address: None,
            prometheus_path: "/metrics".into(),
            verbose: false,
            extra_verbose: false,
            log_file: None,
            syslog: false,
            simple_log: false,
            no_stdout_log: false,
            pidfile: None,
            stateless_nonce_secret: None,
            warnings: Vec::new(),
        }
    }
}

impl TurnConfig {
    /// The effective configuration, one `key=value` per line as `turnserver.conf` would
    /// have it, secrets redacted (for `--check-config`).
    pub fn effective_summary(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: &dyn std::fmt::Display| {
            let _ = writeln!(s, "{k}={v}");
        };
        if let Some(f) = &self.config_file {
            line("# config-file", &f.display());
        }
        if self.listening_ips.is_empty() {
            line("# listening-ip", &"(every address of the host)");
        }
        for ip in &self.listening_ips {
            line("listening-ip", ip);
        }
        line("listening-port", &self.listening_port);
        line("tls-listening-port", &self.tls_listening_port);
        for ip in &self.relay_ips {
            line("relay-ip", ip);
        }
        for e in &self.external_ips {
            match e.private {
                Some(p) => line("external-ip", &format!("{}/{p}", e.public)),
                None => line("external-ip", &e.public),
            }
        }
        line("min-port", &self.min_port);
        line("max-port", &self.max_port);
        line("relay-threads", &self.relay_threads);
        line("use-auth-secret", &self.use_auth_secret);
        for _ in &self.static_auth_secrets {
            line("static-auth-secret", &"<redacted>");
        }
        for u in &self.users {
            line("user", &format!("{}:<redacted>", u.name));
        }
        line("realm", &self.realm.as_deref().unwrap_or("(unset)"));
        line("allow-loopback-peers", &self.allow_loopback_peers);
        for r in &self.allowed_peer_ips {
            line("allowed-peer-ip", &format!("{}-{}", r.first, r.last));
        }
        for r in &self.denied_peer_ips {
            line("denied-peer-ip", &format!("{}-{}", r.first, r.last));
        }
        line("user-quota", &self.user_quota);
        line("total-quota", &self.total_quota);
        line("stale-nonce", &self.stale_nonce);
        line("max-allocate-lifetime", &self.max_allocate_lifetime);
        line("channel-lifetime", &self.channel_lifetime);
        line("permission-lifetime", &self.permission_lifetime);
        line("no-udp", &self.no_udp);
        line("no-tcp", &self.no_tcp);
        line("no-tls", &self.no_tls);
        line("no-udp-relay", &self.no_udp_relay);
        line("no-tcp-relay", &self.no_tcp_relay);
        if let Some(c) = &self.cert {
            line("cert", &c.display());
        }
        if let Some(k) = &self.pkey {
            line("pkey", &k.display());
        }
        line("fingerprint", &self.fingerprint);
        line(
            "log-file",
            &self
                .log_file
                .as_ref()
                .map_or("stdout".into(), |p| p.display().to_string()),
        );
        if let Some(p) = &self.pidfile {
            line("pidfile", &p.display());
        }
        s
    }
}
