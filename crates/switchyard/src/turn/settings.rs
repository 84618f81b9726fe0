//! From coturn's options (`switchyard_config::TurnConfig`) to what the workers run with:
//! listener addresses, TLS, worker count, and one `switchyard_turn::ServerConfig` per worker.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use switchyard_config::TurnConfig;
use switchyard_turn::{
    AlternateServer, Auth, Capacity, ClockAnchor, ExternalIp, NatDiscovery, PeerPolicy,
    PolicyConfig, Quotas, Reservations, ServerConfig, User,
};

/// Everything `run` needs, derived once from the config.
pub(crate) struct Plan {
    pub(crate) workers: usize,
    pub(crate) udp_addrs: Vec<SocketAddr>,
    pub(crate) tcp_addrs: Vec<SocketAddr>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// `dtls`: DTLS over UDP on `tls-listening-port` (RFC 7350), with the TLS certificate.
    pub(crate) dtls: Option<switchyard_netio::dtls::DtlsIdentity>,
    pub(crate) dtls_addrs: Vec<SocketAddr>,
    pub(crate) port_range: RangeInclusive<u16>,
    pub(crate) socket_buffer: usize,
    /// `mobility`: UDP listeners live in worker 0 only (see `turn::run`).
    pub(crate) udp_on_one_worker: bool,
    base: ServerConfig,
}

/// What [`Plan::from_config`] does with a certificate or key it cannot load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadCert {
    /// At start-up: run without the TLS and DTLS listeners, as coturn does.
    DisableTls,
    /// On reload: fail, so the running certificate stays.
    Refuse,
}

impl Plan {
    pub(crate) fn from_config(cfg: &TurnConfig, on_bad_cert: BadCert) -> anyhow::Result<Self> {
        let listen_ips: Vec<IpAddr> = if cfg.listening_ips.is_empty() {
            switchyard_netio::local_addresses().context("cannot list the host's addresses")?
        } else {
            cfg.listening_ips.clone()
        };

        // coturn starts without its TLS and DTLS listeners when the certificate or key cannot
        // be loaded, and so does switchyard: a container that starts before certbot has
        // written the files keeps relaying over UDP and TCP instead of crash-looping.
        let tls = match tls_config(cfg) {
            Ok(tls) => tls,
            Err(e) if on_bad_cert == BadCert::Refuse => return Err(e.context("TLS (cert=/pkey=)")),
            Err(e) => {
                tracing::error!(
                    "TLS (cert=/pkey=): {e:#}; TLS and DTLS listeners disabled (fix the files and restart)"
                );
                None
            }
        };

        let mut udp_ports = Vec::new();
        let mut tcp_ports = Vec::new();
        if !cfg.no_udp {
            udp_ports.push(cfg.listening_port);
        }
        let rfc5780 = nat_discovery(cfg, &listen_ips);
        if let Some(nd) = &rfc5780
            && !cfg.no_udp
        {
            udp_ports.push(nd.alt_port);
        }
        if !cfg.no_tcp {
            tcp_ports.push(cfg.listening_port);
        }
        if tls.is_some() && cfg.tls_listening_port != cfg.listening_port {
            // TLS and plain TCP are told apart by the first byte on either port, as in coturn.
            tcp_ports.push(cfg.tls_listening_port);
        }
        let udp_addrs = crate::turn::listen_addrs(&listen_ips, &udp_ports);
        // coturn 4.17: DTLS only with `dtls` (Debian's 4.6 had it on unless `no-dtls`).
        // A certificate TLS could not load has been reported above.
        let dtls = match dtls_identity(cfg) {
            Ok(d) => d,
            Err(e) if on_bad_cert == BadCert::Refuse => return Err(e),
            Err(_) if tls.is_none() && !cfg.no_tls => None,
            Err(e) => {
                tracing::error!("{e:#}; DTLS listener disabled (fix the files and restart)");
                None
            }
        };
        if cfg.dtls && (cfg.cert.is_none() || cfg.pkey.is_none() || cfg.no_udp) {
            tracing::warn!("dtls: needs cert= and pkey= and UDP; DTLS listener disabled");
        }
        let dtls_addrs = if dtls.is_some() {
            crate::turn::listen_addrs(&listen_ips, &[cfg.tls_listening_port])
        } else {
            Vec::new()
        };
        let tcp_addrs = crate::turn::listen_addrs(&listen_ips, &tcp_ports);

        if cfg.min_port > cfg.max_port {
            bail!(
                "min-port {} is above max-port {}",
                cfg.min_port,
                cfg.max_port
            );
        }
        let workers = cfg.relay_threads.clamp(1, 64);
        let port_range = cfg.min_port..=cfg.max_port;
        let span = u32::from(cfg.max_port) - u32::from(cfg.min_port) + 1;
        if (span as usize) < workers {
            bail!(
                "relay port range {}-{} has fewer ports than relay-threads={workers}",
                cfg.min_port,
                cfg.max_port
            );
        }

        let realm = cfg.realm.clone().unwrap_or_else(|| "switchyard".to_owned());
        let auth = auth(cfg, &realm)?;
        let mut own_addrs = listen_ips.clone();
        own_addrs.extend(cfg.relay_ips.iter().copied());
        let mut allowed: Vec<(IpAddr, IpAddr)> = cfg
            .allowed_peer_ips
            .iter()
            .map(|r| (r.first, r.last))
            .collect();
        let external_ips: Vec<ExternalIp> = cfg
            .external_ips
            .iter()
            .map(|e| ExternalIp {
                public: e.public,
                private: e.private,
            })
            .collect();
        // coturn whitelists the private half of `external-ip=PUB/PRIV` (turn-anchors §1.4).
        for e in &external_ips {
            if let Some(private) = e.private {
                allowed.push((private, private));
            }
        }
        let mut policy = PeerPolicy::new(PolicyConfig {
            allowed,
            denied: cfg
                .denied_peer_ips
                .iter()
                .map(|r| (r.first, r.last))
                .collect(),
            allow_loopback: cfg.allow_loopback_peers,
            no_multicast: cfg.no_multicast_peers,
            own_addrs,
            peer_ports: cfg.allowed_peer_ports.clone(),
        });
        policy.set_relay_ports(port_range.clone());

        let now = Instant::now();
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut nonce_key = [0u8; 32];
        getrandom::getrandom(&mut nonce_key)
            .map_err(|e| anyhow::anyhow!("no OS randomness for the nonce key: {e}"))?;

        let mut base = ServerConfig::new(
            realm,
            ClockAnchor {
                instant: now,
                unix_secs,
            },
        );
        base.auth = auth;
        base.policy = policy;
        base.relay_ips = cfg.relay_ips.clone();
        base.listen_ips = listen_ips.clone();
        base.external_ips = external_ips;
        base.port_range = port_range.clone();
        base.max_lifetime = Duration::from_secs(u64::from(cfg.max_allocate_lifetime.max(1)));
        base.default_lifetime = Duration::from_secs(600).min(base.max_lifetime);
        base.permission_lifetime = Duration::from_secs(u64::from(cfg.permission_lifetime.max(1)));
        base.channel_lifetime = Duration::from_secs(u64::from(cfg.channel_lifetime.max(1)));
        base.stale_nonce = match cfg.stale_nonce {
            0 => None,
            secs => Some(Duration::from_secs(u64::from(secs))),
        };
        base.user_quota = cfg.user_quota;
        base.total_quota = cfg.total_quota;
        base.quotas = Arc::new(Quotas::new());
        base.reservations = Arc::new(Reservations::new());
        base.max_bps = cfg.max_bps;
        base.bps_capacity =
            (cfg.bps_capacity != 0).then(|| Arc::new(Capacity::new(cfg.bps_capacity, now)));
        base.fingerprint = cfg.fingerprint;
        base.software = if cfg.software_attribute {
            Some(format!("switchyard {}", env!("CARGO_PKG_VERSION")))
        } else {
            None
        };
        base.no_udp_relay = cfg.no_udp_relay;
        base.no_tcp_relay = cfg.no_tcp_relay;
        // Channel numbers up to 0x7FFE (RFC 5766) are accepted whatever `rfc5766-channel-numbers`
        // says: Debian's coturn 4.6 clients (turnutils_uclient) and servers use them, and a
        // drop-in must not break the clients coturn serves today. RFC 8656 narrowed the range
        // to 0x4FFF to keep clear of RFC 7983 demultiplexing, which a relay's client port
        // never needs.
        base.rfc5766_channel_numbers = true;
        base.nonce_key = nonce_key;
        // coturn's `unauthorized-ratelimit` is off by default; ours is on (reflection abuse got
        // TURN servers blocked in 2025). `unauthorized-ratelimit-rps=0` turns it off, e.g.
        // for load tests that open many allocations from one address.
        base.unauth_rate_limit = cfg.unauthorized_ratelimit_rps;
        base.include_reason_string = cfg.include_reason_string;
        base.stun_only = cfg.stun_only;
        base.no_stun = cfg.no_stun;
        base.no_auth = matches!(base.auth, Auth::None);
        base.mobility = cfg.mobility;
        base.rfc5780 = rfc5780;
        base.alternate_servers = alternates(&cfg.alternate_servers, 3478)?;
        base.tls_alternate_servers = alternates(&cfg.tls_alternate_servers, 5349)?;

        Ok(Self {
            workers,
            udp_addrs,
            tcp_addrs,
            tls,
            dtls,
            dtls_addrs,
            port_range,
            socket_buffer: cfg.sock_buf_size,
            udp_on_one_worker: cfg.mobility,
            base,
        })
    }

    /// The realm the workers answer with.
    pub(crate) fn realm(&self) -> &str {
        &self.base.realm
    }

    /// The shared `bps-capacity` budget, if configured.
    pub(crate) fn capacity(&self) -> Option<Arc<Capacity>> {
        self.base.bps_capacity.clone()
    }

    /// Worker `id`'s server config: the shared one with its own slice of the relay ports,
    /// so a relay port is only ever bound (and its traffic handled) by one worker.
    pub(crate) fn server_config(&self, id: usize) -> ServerConfig {
        let mut cfg = self.base.clone();
        let lo = u32::from(*self.port_range.start());
        let span = u32::from(*self.port_range.end()) - lo + 1;
        let n = self.workers as u32;
        let id = id as u32;
        let start = lo + span * id / n;
        let end = lo + span * (id + 1) / n - 1;
        cfg.port_range = (start as u16)..=(end as u16);
        cfg.worker_id = id as u8;
        cfg
    }
}

/// The TLS settings for `cert=`/`pkey=`, or `None` when TLS is off or not configured
/// (coturn starts without TLS listeners then).
pub(crate) fn tls_config(cfg: &TurnConfig) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    if cfg.no_tls {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&cfg.cert, &cfg.pkey) else {
        tracing::info!("no cert/pkey configured: TLS listener disabled");
        return Ok(None);
    };
    let versions = if cfg.no_tlsv1_2 {
        switchyard_netio::tls::TlsVersions::Tls13Only
    } else {
        switchyard_netio::tls::TlsVersions::Tls12And13
    };
    Ok(Some(switchyard_netio::tls::server_config(
        cert, key, versions,
    )?))
}

/// The DTLS identity (`dtls` with `cert=`/`pkey=` and UDP on), or `None`.
pub(crate) fn dtls_identity(
    cfg: &TurnConfig,
) -> anyhow::Result<Option<switchyard_netio::dtls::DtlsIdentity>> {
    match (&cfg.cert, &cfg.pkey) {
        (Some(cert), Some(key)) if cfg.dtls && !cfg.no_udp => {
            match switchyard_netio::dtls::DtlsIdentity::load(cert, key) {
                Ok(identity) => Ok(Some(identity)),
                // TLS keeps working with this key; only the DTLS listener stays off.
                Err(e @ switchyard_netio::tls::TlsError::UnsupportedKey { .. }) => {
                    tracing::warn!("dtls: {e}; DTLS listener disabled");
                    Ok(None)
                }
                Err(e) => Err(e).context("DTLS (cert=/pkey=)"),
            }
        }
        _ => Ok(None),
    }
}

/// `rfc5780`: NAT behaviour discovery needs a second IP of a family and a second port
/// (`alt-listening-port`, default `listening-port + 1`). Without a second IP it stays off,
/// with a warning, as in coturn.
fn nat_discovery(cfg: &TurnConfig, listen_ips: &[IpAddr]) -> Option<NatDiscovery> {
    if !cfg.rfc5780 {
        return None;
    }
    let alt_port = match cfg.alt_listening_port {
        0 => cfg.listening_port.wrapping_add(1),
        p => p,
    };
    let nd = NatDiscovery {
        ips: listen_ips.to_vec(),
        port: cfg.listening_port,
        alt_port,
    };
    if !listen_ips.iter().any(|ip| nd.other_ip(*ip).is_some()) {
        tracing::warn!(
            "rfc5780: NAT behaviour discovery needs two listening IPs of one family; it stays off"
        );
        return None;
    }
    Some(nd)
}

/// `alternate-server=HOST[:PORT]` entries as addresses. coturn resolves names once at
/// startup; so do we (every address a name has becomes an entry, keeping the name for
/// ALTERNATE-DOMAIN).
fn alternates(
    list: &[switchyard_config::ServerAddr],
    default_port: u16,
) -> anyhow::Result<Vec<AlternateServer>> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for a in list {
        let port = a.port.unwrap_or(default_port);
        if let Ok(ip) = a.host.parse::<IpAddr>() {
            out.push(AlternateServer {
                addr: SocketAddr::new(ip, port),
                domain: None,
            });
            continue;
        }
        let addrs = (a.host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("alternate-server {a}: cannot resolve"))?;
        for addr in addrs {
            out.push(AlternateServer {
                addr,
                domain: Some(a.host.clone()),
            });
        }
    }
    Ok(out)
}

fn auth(cfg: &TurnConfig, realm: &str) -> anyhow::Result<Auth> {
    let mut users = Vec::new();
    for u in &cfg.users {
        users.push(match &u.key {
            switchyard_config::UserKey::Password(p) => User::with_password(&u.name, realm, p),
            switchyard_config::UserKey::Key(k) => User::with_key(&u.name, *k),
        });
    }
    let secrets = if cfg.use_auth_secret {
        if cfg.static_auth_secrets.is_empty() {
            bail!("use-auth-secret is set but no static-auth-secret is configured");
        }
        cfg.static_auth_secrets.clone()
    } else {
        Vec::new()
    };
    if users.is_empty() && secrets.is_empty() {
        if cfg.lt_cred_mech {
            bail!("lt-cred-mech is set but no user= or static-auth-secret= is configured");
        }
        tracing::warn!("no credentials configured: anyone may allocate (coturn's no-auth)");
        return Ok(Auth::None);
    }
    Ok(Auth::LongTerm {
        users,
        secrets,
        separator: cfg.rest_api_separator,
    })
}

/// The tracing filter for coturn's verbosity flags.
pub(crate) fn log_level(cfg: &TurnConfig) -> &'static str {
    if cfg.extra_verbose { "debug" } else { "info" }
}

/// A log file path, or `None` for stdout (`log-file=stdout`, `-`, unset, or `syslog`, which
/// containers collect from stdout).
pub(crate) fn log_file(cfg: &TurnConfig) -> Option<&Path> {
    match cfg.log_file.as_deref() {
        None => None,
        Some(p) => {
            let s = p.to_string_lossy();
            if s == "stdout" || s == "-" || s == "syslog" || s.is_empty() {
                None
            } else {
                Some(p)
            }
        }
    }
}

pub(crate) fn write_pidfile(cfg: &TurnConfig) {
    if let Some(path) = &cfg.pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write pidfile");
        }
    }
}

pub(crate) fn remove_pidfile(cfg: &TurnConfig) {
    if let Some(path) = &cfg.pidfile {
        let _ = std::fs::remove_file(path);
    }
}
