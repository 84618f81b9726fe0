//! coturn's `turnserver.conf` and command line, for `switchyard turn`.
//!
//! Grammar (coturn `mainrelay.c`, `parse_arg_string`): a line is `name<sep>value` where
//! `<sep>` is any run of spaces, tabs or `=`; a bare name is a flag; a value in double quotes
//! loses its quotes; `#` starts a comment only at the beginning of a line. Names are the
//! `--long` option names, so every key is also a flag.
//!
//! Precedence: the command line is applied after the file. A single-valued option given on
//! the command line overrides the file's; a repeatable one (`listening-ip`, `relay-ip`,
//! `external-ip`, `static-auth-secret`, `user`, `allowed-peer-ip`, `denied-peer-ip`,
//! `alternate-server`, …) is appended to the file's values, as coturn accumulates both. (coturn
//! itself applies its command line *before* the file's main pass, so there the file wins
//! for single-valued options; "command line overrides" is what operators expect and what
//! `docker run … --external-ip=…` relies on.)

mod apply;
mod cli;
mod grammar;
mod options;

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub use crate::range::AddrRange;
use crate::{ConfigError, ConfigWarning};

pub use cli::{SEARCH_DIRS, load, parse_args};

/// Parses the text of a config file named `path` (named in messages; relative `cert`/`pkey`
/// paths resolve against its directory), on top of coturn's defaults.
pub fn parse_file(text: &str, path: &Path) -> Result<TurnConfig, ConfigError> {
    let mut config = TurnConfig::default();
    let mut state = apply::State::for_file(path);
    apply::apply_file(&mut config, &mut state, text, path)?;
    apply::finish(&mut config, &state)?;
    Ok(config)
}

/// `external-ip=PUBLIC[/PRIVATE]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternalIp {
    /// What XOR-RELAYED-ADDRESS advertises.
    pub public: IpAddr,
    /// The local relay address it stands for; `None` = every relay address of that family
    /// (coturn allows this bare form once).
    pub private: Option<IpAddr>,
}

impl fmt::Display for ExternalIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.private {
            Some(p) => write!(f, "{}/{p}", self.public),
            None => write!(f, "{}", self.public),
        }
    }
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
    /// `name:password`: the key is MD5(name:realm:password) with the final realm.
    Password(String),
    /// `name:0x<32 hex digits>`: the MD5 long-term key itself (what `turnadmin -k` prints).
    Key([u8; 16]),
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserKey::Password(_) => f.write_str("Password(<redacted>)"),
            UserKey::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

/// `allocation-default-address-family`: the relayed family when the Allocate has no
/// REQUESTED-ADDRESS-FAMILY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFamilyDefault {
    /// IPv4 (RFC 6156 §4.2; coturn's default).
    Ipv4,
    /// IPv6.
    Ipv6,
    /// The family of the address the client reached (`keep`, or `keep-address-family`).
    Keep,
}

impl fmt::Display for AddressFamilyDefault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressFamilyDefault::Ipv4 => "ipv4",
            AddressFamilyDefault::Ipv6 => "ipv6",
            AddressFamilyDefault::Keep => "keep",
        })
    }
}

/// `alternate-server=HOST[:PORT]` (300 Try Alternate on Allocate). coturn resolves names, so
/// the host is kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    /// IP literal or name (IPv6 without brackets).
    pub host: String,
    /// `None` = the default port of the transport.
    pub port: Option<u16>,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// The relay's configuration with coturn 4.17's defaults. Field names follow the options.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TurnConfig {
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,

    // ---- listeners, relay, ports
    /// `listening-ip` (`-L`); empty = every address of the host.
    pub listening_ips: Vec<IpAddr>,
    /// `listening-port` (`-p`), 3478.
    pub listening_port: u16,
    /// `tls-listening-port`, 5349.
    pub tls_listening_port: u16,
    /// `alt-listening-port`; 0 = listening-port + 1 (RFC 5780 only).
    pub alt_listening_port: u16,
    /// `alt-tls-listening-port`; 0 = tls-listening-port + 1.
    pub alt_tls_listening_port: u16,
    /// `relay-ip` (`-E`); empty = the address the client reached.
    pub relay_ips: Vec<IpAddr>,
    /// `external-ip` (`-X`).
    pub external_ips: Vec<ExternalIp>,
    /// `min-port`, 49152.
    pub min_port: u16,
    /// `max-port`, 65535.
    pub max_port: u16,
    /// `relay-threads` (`-m`); default `cpus`, else the number of CPUs; at most 128.
    pub relay_threads: usize,
    /// `cpus`: overrides CPU detection (containers).
    pub cpus: Option<usize>,
    /// `sock-buf-size` in bytes, 2 MiB.
    pub sock_buf_size: usize,
    /// `udp-recvmmsg` (on by default on Linux in coturn 4.17).
    pub udp_recvmmsg: bool,
    /// `udp-gso`.
    pub udp_gso: bool,

    // ---- authentication
    /// `use-auth-secret`: TURN REST API credentials.
    pub use_auth_secret: bool,
    /// `static-auth-secret`, several for rotation.
    pub static_auth_secrets: Vec<String>,
    /// `rest-api-separator` (`-C`), `:`.
    pub rest_api_separator: char,
    /// `lt-cred-mech` (`-a`).
    pub lt_cred_mech: bool,
    /// `no-auth` (`-z`).
    pub no_auth: bool,
    /// `user` (`-u`).
    pub users: Vec<UserEntry>,
    /// `realm` (`-r`).
    pub realm: Option<String>,
    /// `server-name`.
    pub server_name: Option<String>,
    /// `userdb` / `db` (`-b`): kept, never opened.
    pub userdb: Option<PathBuf>,
    /// `no-dynamic-realms`.
    pub no_dynamic_realms: bool,
    /// `check-origin-consistency`.
    pub check_origin_consistency: bool,
    /// `stateless-nonce` (on by default since coturn 4.17).
    pub stateless_nonce: bool,
    /// `stateless-nonce-secret`: shared by several nodes so any of them accepts a nonce.
    pub stateless_nonce_secret: Option<String>,
    /// `secure-stun`: Binding requires authentication.
    pub secure_stun: bool,

    // ---- peers
    /// `allowed-peer-ip` (beats `denied-peer-ip`).
    pub allowed_peer_ips: Vec<AddrRange>,
    /// `denied-peer-ip`.
    pub denied_peer_ips: Vec<AddrRange>,
    /// `allowed-peer-port` (switchyard only, repeatable): when set, only peers on these
    /// ports are reachable, whatever their address.
    pub allowed_peer_ports: Vec<u16>,
    /// `no-multicast-peers`.
    pub no_multicast_peers: bool,
    /// `allow-loopback-peers`.
    pub allow_loopback_peers: bool,

    // ---- quotas and bandwidth
    /// `user-quota` (`-q`); 0 = unlimited.
    pub user_quota: u32,
    /// `total-quota` (`-Q`); 0 = unlimited.
    pub total_quota: u32,
    /// `max-bps` (`-s`), bytes/s per session; 0 = unlimited.
    pub max_bps: u64,
    /// `bps-capacity` (`-B`), bytes/s for the server; 0 = unlimited.
    pub bps_capacity: u64,
    /// `unauthorized-ratelimit`.
    pub unauthorized_ratelimit: bool,
    /// `unauthorized-ratelimit-rps`, 10.
    pub unauthorized_ratelimit_rps: u32,

    // ---- listeners and relays on/off
    /// `no-udp`.
    pub no_udp: bool,
    /// `no-tcp`.
    pub no_tcp: bool,
    /// `no-tls`.
    pub no_tls: bool,
    /// `dtls` (off by default since coturn 4.17).
    pub dtls: bool,
    /// `no-dtls` (a no-op since coturn 4.17).
    pub no_dtls: bool,
    /// `no-udp-relay`.
    pub no_udp_relay: bool,
    /// `no-tcp-relay`.
    pub no_tcp_relay: bool,

    // ---- TLS
    /// `cert` (PEM chain); relative paths resolve against the config file's directory.
    pub cert: Option<PathBuf>,
    /// `pkey` (PEM key); resolved like `cert`.
    pub pkey: Option<PathBuf>,
    /// `pkey-pwd`.
    pub pkey_pwd: Option<String>,
    /// `cipher-list` (coturn: `DEFAULT`).
    pub cipher_list: Option<String>,
    /// `CA-file`.
    pub ca_file: Option<PathBuf>,
    /// `dh-file`.
    pub dh_file: Option<PathBuf>,
    /// `ec-curve-name`.
    pub ec_curve_name: Option<String>,
    /// `dh566`.
    pub dh566: bool,
    /// `dh1066`.
    pub dh1066: bool,
    /// `tlsv1`.
    pub tlsv1: bool,
    /// `tlsv1_1`.
    pub tlsv1_1: bool,
    /// `no-tlsv1` (coturn 4.6).
    pub no_tlsv1: bool,
    /// `no-tlsv1_1` (coturn 4.6).
    pub no_tlsv1_1: bool,
    /// `no-tlsv1_2`: TLS 1.3 only.
    pub no_tlsv1_2: bool,

    // ---- protocol
    /// `fingerprint` (`-f`).
    pub fingerprint: bool,
    /// `software-attribute` (off by default since coturn 4.7; `no-software-attribute` and
    /// `prod` turn it off).
    pub software_attribute: bool,
    /// `stale-nonce` seconds, 600; 0 = never stale.
    pub stale_nonce: u32,
    /// `max-allocate-lifetime`, 3600.
    pub max_allocate_lifetime: u32,
    /// `channel-lifetime`, 600.
    pub channel_lifetime: u32,
    /// `permission-lifetime`, 300.
    pub permission_lifetime: u32,
    /// `max-allocate-timeout`, 60.
    pub max_allocate_timeout: u32,
    /// `stun-only` (`-S`).
    pub stun_only: bool,
    /// `no-stun`.
    pub no_stun: bool,
    /// `mobility` (RFC 8016).
    pub mobility: bool,
    /// `rfc5780` (off by default since coturn 4.7; `no-rfc5780` turns it off).
    pub rfc5780: bool,
    /// `stun-backward-compatibility` (off by default since coturn 4.7).
    pub stun_backward_compatibility: bool,
    /// `rfc5766-channel-numbers`: allow 0x4000–0x7FFE instead of RFC 8656's 0x4000–0x4FFF.
    pub rfc5766_channel_numbers: bool,
    /// `allocation-default-address-family` (`-A`); `keep-address-family` (`-K`) = keep.
    pub allocation_default_address_family: AddressFamilyDefault,
    /// `alternate-server`.
    pub alternate_servers: Vec<ServerAddr>,
    /// `tls-alternate-server`.
    pub tls_alternate_servers: Vec<ServerAddr>,
    /// `include-reason-string`.
    pub include_reason_string: bool,
    /// `drop-invalid-packets`.
    pub drop_invalid_packets: bool,

    // ---- metrics
    /// `prometheus`.
    pub prometheus: bool,
    /// `prometheus-port`, 9641.
    pub prometheus_port: u16,
    /// `prometheus-address`; `None` = every address.
    pub prometheus_address: Option<IpAddr>,
    /// `prometheus-path`, `/metrics`.
    pub prometheus_path: String,

    // ---- logging
    /// `verbose` (`-v`).
    pub verbose: bool,
    /// `Verbose` (`-V`).
    pub extra_verbose: bool,
    /// `log-file` (`-l`): `stdout`, `-`, `syslog` or a path.
    pub log_file: Option<PathBuf>,
    /// `syslog`.
    pub syslog: bool,
    /// `syslog-facility`.
    pub syslog_facility: Option<String>,
    /// `simple-log`.
    pub simple_log: bool,
    /// `no-stdout-log`.
    pub no_stdout_log: bool,
    /// `new-log-timestamp` (on by default since coturn 4.17).
    pub new_log_timestamp: bool,
    /// `new-log-timestamp-format` (strftime).
    pub new_log_timestamp_format: Option<String>,
    /// `log-min-level`.
    pub log_min_level: Option<String>,
    /// `log-binding`.
    pub log_binding: bool,

    // ---- admin CLI (never started by switchyard)
    /// `cli` (off by default since coturn 4.10; `no-cli` turns it off).
    pub cli: bool,
    /// `cli-ip`, 127.0.0.1.
    pub cli_ip: IpAddr,
    /// `cli-port`, 5766.
    pub cli_port: u16,
    /// `cli-password`.
    pub cli_password: Option<String>,

    // ---- process
    /// `pidfile`.
    pub pidfile: Option<PathBuf>,
    /// `proc-user`.
    pub proc_user: Option<String>,
    /// `proc-group`.
    pub proc_group: Option<String>,
    /// `version`: print the version and exit.
    pub print_version: bool,

    /// Things worth telling the operator, each `file:line: key: message`.
    pub warnings: Vec<ConfigWarning>,
}

/// The number of relay threads coturn would pick: the CPUs, at least 1, at most 128
/// (`MAX_NUMBER_OF_GENERAL_RELAY_SERVERS`).
pub(crate) fn default_relay_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_RELAY_THREADS)
}

/// coturn's `MAX_NUMBER_OF_GENERAL_RELAY_SERVERS`.
pub const MAX_RELAY_THREADS: usize = 128;

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            config_file: None,
            listening_ips: Vec::new(),
            listening_port: 3478,
            tls_listening_port: 5349,
            alt_listening_port: 0,
            alt_tls_listening_port: 0,
            relay_ips: Vec::new(),
            external_ips: Vec::new(),
            min_port: 49152,
            max_port: 65535,
            relay_threads: default_relay_threads(),
            cpus: None,
            sock_buf_size: 2 << 20,
            udp_recvmmsg: cfg!(target_os = "linux"),
            udp_gso: false,
            use_auth_secret: false,
            static_auth_secrets: Vec::new(),
            rest_api_separator: ':',
            lt_cred_mech: false,
            no_auth: false,
            users: Vec::new(),
            realm: None,
            server_name: None,
            userdb: None,
            no_dynamic_realms: false,
            check_origin_consistency: false,
            stateless_nonce: true,
            stateless_nonce_secret: None,
            secure_stun: false,
            allowed_peer_ips: Vec::new(),
            denied_peer_ips: Vec::new(),
            allowed_peer_ports: Vec::new(),
            no_multicast_peers: false,
            allow_loopback_peers: false,
            user_quota: 0,
            total_quota: 0,
            max_bps: 0,
            bps_capacity: 0,
            unauthorized_ratelimit: false,
            unauthorized_ratelimit_rps: 10,
            no_udp: false,
            no_tcp: false,
            no_tls: false,
            dtls: false,
            no_dtls: false,
            no_udp_relay: false,
            no_tcp_relay: false,
            cert: None,
            pkey: None,
            pkey_pwd: None,
            cipher_list: None,
            ca_file: None,
            dh_file: None,
            ec_curve_name: None,
            dh566: false,
            dh1066: false,
            tlsv1: false,
            tlsv1_1: false,
            no_tlsv1: false,
            no_tlsv1_1: false,
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
            mobility: false,
            rfc5780: false,
            stun_backward_compatibility: false,
            rfc5766_channel_numbers: false,
            allocation_default_address_family: AddressFamilyDefault::Ipv4,
            alternate_servers: Vec::new(),
            tls_alternate_servers: Vec::new(),
            include_reason_string: false,
            drop_invalid_packets: false,
            prometheus: false,
            prometheus_port: 9641,
            prometheus_address: None,
            prometheus_path: "/metrics".into(),
            verbose: false,
            extra_verbose: false,
            log_file: None,
            syslog: false,
            syslog_facility: None,
            simple_log: false,
            no_stdout_log: false,
            new_log_timestamp: true,
            new_log_timestamp_format: None,
            log_min_level: None,
            log_binding: false,
            cli: false,
            cli_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            cli_port: 5766,
            cli_password: None,
            pidfile: None,
            proc_user: None,
            proc_group: None,
            print_version: false,
            warnings: Vec::new(),
        }
    }
}

const REDACTED: &str = "<redacted>";

impl TurnConfig {
    /// The effective configuration for `--check-config`: one `key=value` per line in
    /// `turnserver.conf` syntax (so it can be fed back), secrets replaced by `<redacted>`.
    pub fn effective_summary(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TurnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        let mut kv = |k: &str, v: &dyn fmt::Display| {
            let _ = writeln!(s, "{k}={v}");
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());

        if let Some(f) = path(&self.config_file) {
            kv("# config-file", &f);
        }
        if self.listening_ips.is_empty() {
            kv("# listening-ip", &"(every address of the host)");
        }
        for ip in &self.listening_ips {
            kv("listening-ip", ip);
        }
        kv("listening-port", &self.listening_port);
        kv("tls-listening-port", &self.tls_listening_port);
        if self.alt_listening_port != 0 {
            kv("alt-listening-port", &self.alt_listening_port);
        }
        if self.alt_tls_listening_port != 0 {
            kv("alt-tls-listening-port", &self.alt_tls_listening_port);
        }
        for ip in &self.relay_ips {
            kv("relay-ip", ip);
        }
        for e in &self.external_ips {
            kv("external-ip", e);
        }
        kv("min-port", &self.min_port);
        kv("max-port", &self.max_port);
        kv("relay-threads", &self.relay_threads);
        if let Some(c) = self.cpus {
            kv("cpus", &c);
        }
        kv("sock-buf-size", &self.sock_buf_size);
        kv("udp-recvmmsg", &self.udp_recvmmsg);
        kv("udp-gso", &self.udp_gso);

        kv("use-auth-secret", &self.use_auth_secret);
        for _ in &self.static_auth_secrets {
            kv("static-auth-secret", &REDACTED);
        }
        kv("rest-api-separator", &self.rest_api_separator);
        kv("lt-cred-mech", &self.lt_cred_mech);
        kv("no-auth", &self.no_auth);
        for u in &self.users {
            kv("user", &format!("{}:{REDACTED}", u.name));
        }
        match &self.realm {
            Some(r) => kv("realm", r),
            None => kv("# realm", &"(unset)"),
        }
        if let Some(n) = &self.server_name {
            kv("server-name", n);
        }
        if let Some(p) = path(&self.userdb) {
            kv("userdb", &p);
        }
        kv("no-dynamic-realms", &self.no_dynamic_realms);
        kv("check-origin-consistency", &self.check_origin_consistency);
        kv("stateless-nonce", &self.stateless_nonce);
        if self.stateless_nonce_secret.is_some() {
            kv("stateless-nonce-secret", &REDACTED);
        }
        kv("secure-stun", &self.secure_stun);

        for r in &self.allowed_peer_ips {
            kv("allowed-peer-ip", r);
        }
        for r in &self.denied_peer_ips {
            kv("denied-peer-ip", r);
        }
        for p in &self.allowed_peer_ports {
            kv("allowed-peer-port", p);
        }
        kv("no-multicast-peers", &self.no_multicast_peers);
        kv("allow-loopback-peers", &self.allow_loopback_peers);

        kv("user-quota", &self.user_quota);
        kv("total-quota", &self.total_quota);
        kv("max-bps", &self.max_bps);
        kv("bps-capacity", &self.bps_capacity);
        kv("unauthorized-ratelimit", &self.unauthorized_ratelimit);
        kv(
            "unauthorized-ratelimit-rps",
            &self.unauthorized_ratelimit_rps,
        );

        kv("no-udp", &self.no_udp);
        kv("no-tcp", &self.no_tcp);
        kv("no-tls", &self.no_tls);
        kv("dtls", &self.dtls);
        kv("no-udp-relay", &self.no_udp_relay);
        kv("no-tcp-relay", &self.no_tcp_relay);

        if let Some(p) = path(&self.cert) {
            kv("cert", &p);
        }
        if let Some(p) = path(&self.pkey) {
            kv("pkey", &p);
        }
        if self.pkey_pwd.is_some() {
            kv("pkey-pwd", &REDACTED);
        }
        if let Some(c) = &self.cipher_list {
            kv("cipher-list", c);
        }
        if let Some(p) = path(&self.ca_file) {
            kv("CA-file", &p);
        }
        if let Some(p) = path(&self.dh_file) {
            kv("dh-file", &p);
        }
        if let Some(c) = &self.ec_curve_name {
            kv("ec-curve-name", c);
        }
        kv("no-tlsv1_2", &self.no_tlsv1_2);

        kv("fingerprint", &self.fingerprint);
        kv("software-attribute", &self.software_attribute);
        kv("stale-nonce", &self.stale_nonce);
        kv("max-allocate-lifetime", &self.max_allocate_lifetime);
        kv("channel-lifetime", &self.channel_lifetime);
        kv("permission-lifetime", &self.permission_lifetime);
        kv("max-allocate-timeout", &self.max_allocate_timeout);
        kv("stun-only", &self.stun_only);
        kv("no-stun", &self.no_stun);
        kv("mobility", &self.mobility);
        kv("rfc5780", &self.rfc5780);
        kv(
            "stun-backward-compatibility",
            &self.stun_backward_compatibility,
        );
        kv("rfc5766-channel-numbers", &self.rfc5766_channel_numbers);
        kv(
            "allocation-default-address-family",
            &self.allocation_default_address_family,
        );
        for a in &self.alternate_servers {
            kv("alternate-server", a);
        }
        for a in &self.tls_alternate_servers {
            kv("tls-alternate-server", a);
        }
        kv("include-reason-string", &self.include_reason_string);
        kv("drop-invalid-packets", &self.drop_invalid_packets);

        kv("prometheus", &self.prometheus);
        kv("prometheus-port", &self.prometheus_port);
        if let Some(a) = self.prometheus_address {
            kv("prometheus-address", &a);
        }
        kv("prometheus-path", &self.prometheus_path);

        kv("verbose", &self.verbose);
        kv("Verbose", &self.extra_verbose);
        kv(
            "log-file",
            &path(&self.log_file).unwrap_or_else(|| "stdout".into()),
        );
        kv("syslog", &self.syslog);
        if let Some(v) = &self.syslog_facility {
            kv("syslog-facility", v);
        }
        kv("simple-log", &self.simple_log);
        kv("no-stdout-log", &self.no_stdout_log);
        kv("new-log-timestamp", &self.new_log_timestamp);
        if let Some(v) = &self.new_log_timestamp_format {
            kv("new-log-timestamp-format", v);
        }
        if let Some(v) = &self.log_min_level {
            kv("log-min-level", v);
        }
        kv("log-binding", &self.log_binding);

        kv("cli", &self.cli);
        if self.cli_password.is_some() {
            kv("cli-password", &REDACTED);
        }
        if let Some(p) = path(&self.pidfile) {
            kv("pidfile", &p);
        }
        if let Some(u) = &self.proc_user {
            kv("proc-user", u);
        }
        if let Some(g) = &self.proc_group {
            kv("proc-group", g);
        }
        f.write_str(&s)
    }
}
