//! `switchyard livekit`: the LiveKit-compatible SFU (a livekit-server drop-in).
//!
//! The configuration is livekit-server's (livekit.yaml, its flags and environment), read by
//! [`switchyard_config::livekit`]; [`settings`] maps it onto the server's run-time
//! [`Settings`].

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use std::net::IpAddr;

use switchyard_config::livekit::{LiveKitConfig, TurnAuth, TurnProtocol};
use switchyard_livekit::{
    CongestionControl, IceCredential, IceServer, IngressLimit, Settings, WebhookConfig,
};

use crate::logging::{self, LogTarget};

const USAGE: &str = "\
switchyard livekit — LiveKit-compatible SFU (livekit-server drop-in)

Usage: switchyard livekit [--config livekit.yaml] [--config-body YAML] [--dev]
                          [--keys \"key: secret\"] [--key-file FILE] [--bind IP]...
                          [--node-ip IP] [--udp-port N] [--port N] [--tcp-port N]
                          [--media-threads N] [--check-config]
Environment (flags win): LIVEKIT_CONFIG_FILE, LIVEKIT_CONFIG (YAML body), LIVEKIT_KEYS,
LIVEKIT_KEY_FILE, NODE_IP, UDP_PORT, SWITCHYARD_MEDIA_THREADS (default: one per core;
each thread forwards whole rooms). `--check-config` prints the effective configuration
(secrets redacted) and its warnings, then exits.";

pub(crate) fn main(mut args: Vec<OsString>) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let check = {
        let before = args.len();
        args.retain(|a| a != "--check-config");
        args.len() != before
    };
    let env = |name: &str| std::env::var(name).ok();
    let config = match switchyard_config::livekit::load(&args, &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchyard livekit: {e}");
            return ExitCode::from(2);
        }
    };
    if check {
        print!("{}", config.redacted());
        for w in &config.warnings {
            println!("warning: {w}");
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = logging::init(LogTarget::Stdout, &config.log_level) {
        eprintln!("switchyard livekit: logging: {e}");
        return ExitCode::FAILURE;
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // The embedded TURN relay shares a secret with the join responses that hand out its
    // credentials; it never leaves this process.
    let turn_secret = config.turn.enabled.then(random_secret);
    let mut _embedded_turn = None;
    if let Some(secret) = &turn_secret {
        let started = embedded_turn_args(&config, secret)
            .and_then(|args| {
                switchyard_config::parse_turn_args(&args)
                    .map_err(|e| anyhow::anyhow!("embedded TURN: {e}"))
            })
            .and_then(crate::turn::start_embedded);
        match started {
            Ok(relay) => _embedded_turn = Some(relay),
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("switchyard livekit: embedded TURN: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut settings = settings(&config);
    settings.ice_servers = ice_servers(&config, turn_secret.as_deref());
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard livekit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// livekit-server's configuration → what the SFU needs at run time.
fn settings(c: &LiveKitConfig) -> Settings {
    Settings {
        bind: c.bind_addresses.clone(),
        http_port: c.port,
        keys: c
            .keys
            .iter()
            .map(|k| (k.key.clone(), k.secret.clone()))
            .collect(),
        dev: c.dev,
        udp_port: c.media_udp_port(),
        tcp_port: c.rtc.tcp_port,
        udp_candidates: !c.ice_tcp_only,
        node_ips: c.rtc.node_ip.clone(),
        auto_create: c.room.auto_create,
        empty_timeout: c.room.empty_timeout,
        departure_timeout: c.room.departure_timeout,
        // The loader checked that the key exists.
        webhook: c.webhook.as_ref().map(|w| WebhookConfig {
            api_key: w.api_key.clone(),
            api_secret: c
                .keys
                .iter()
                .find(|k| k.key == w.api_key)
                .map(|k| k.secret.clone())
                .unwrap_or_default(),
            urls: w.urls.clone(),
        }),
        ice_servers: Vec::new(),
        prometheus_port: c.prometheus_port,
        ingress_limit: (c.rtc.ingress_limit_kbps > 0)
            .then(|| IngressLimit::from_bits_per_sec(u64::from(c.rtc.ingress_limit_kbps) * 1000)),
        congestion_control: CongestionControl {
            enabled: c.rtc.congestion_control,
            allow_pause: c.rtc.allow_pause,
        },
        media_threads: c
            .media_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The addresses clients reach this node on: `rtc.node_ip`, else the specific bind
/// addresses, else loopback (as the media candidates).
fn node_ips(c: &LiveKitConfig) -> Vec<IpAddr> {
    if !c.rtc.node_ip.is_empty() {
        return c.rtc.node_ip.clone();
    }
    let specific: Vec<IpAddr> = c
        .bind_addresses
        .iter()
        .copied()
        .filter(|ip| !ip.is_unspecified())
        .collect();
    if specific.is_empty() {
        vec![IpAddr::from([127, 0, 0, 1])]
    } else {
        specific
    }
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// What the join response lists: the embedded relay first (UDP on the node address, TLS
/// on `turn.domain`), then `rtc.turn_servers`, then `rtc.stun_servers`.
///
/// livekit-server advertises `turns:<domain>:443` whatever `tls_port` says (its issues
/// #4542/#4543); here the URL carries `tls_port`, and 443 only with `external_tls`, where a
/// load balancer in front terminates TLS.
fn ice_servers(c: &LiveKitConfig, turn_secret: Option<&str>) -> Vec<IceServer> {
    let mut out = Vec::new();
    if let Some(secret) = turn_secret {
        let t = &c.turn;
        let mut urls = Vec::new();
        if t.udp_port > 0 {
            for ip in node_ips(c) {
                urls.push(format!("turn:{}:{}?transport=udp", host(ip), t.udp_port));
            }
        }
        if t.tls_port > 0 {
            let port = if t.external_tls { 443 } else { t.tls_port };
            urls.push(format!("turns:{}:{port}?transport=tcp", t.domain));
        }
        out.push(IceServer {
            urls,
            credential: IceCredential::SharedSecret {
                secret: secret.to_owned(),
                ttl: t.ttl,
            },
        });
    }
    for s in &c.rtc.turn_servers {
        let url = match s.protocol {
            TurnProtocol::Udp => format!("turn:{}:{}?transport=udp", s.host, s.port),
            TurnProtocol::Tcp => format!("turn:{}:{}?transport=tcp", s.host, s.port),
            TurnProtocol::Tls => format!("turns:{}:{}?transport=tcp", s.host, s.port),
        };
        let credential = match &s.auth {
            TurnAuth::Secret { secret, ttl } => IceCredential::SharedSecret {
                secret: secret.clone(),
                ttl: *ttl,
            },
            TurnAuth::Static {
                username,
                credential,
            } => IceCredential::Static {
                username: username.clone(),
                credential: credential.clone(),
            },
        };
        out.push(IceServer {
            urls: vec![url],
            credential,
        });
    }
    if !c.rtc.stun_servers.is_empty() {
        out.push(IceServer {
            urls: c
                .rtc
                .stun_servers
                .iter()
                .map(|s| format!("stun:{s}"))
                .collect(),
            credential: IceCredential::None,
        });
    }
    out
}

fn random_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("OS randomness");
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// The embedded relay as a coturn command line, so it is checked and run exactly like
/// `switchyard turn`. It relays to this node's own media port and nowhere else (other
/// addresses and every other port are denied), which closes the SSRF hole a
/// general-purpose relay inside the SFU would open.
fn embedded_turn_args(c: &LiveKitConfig, secret: &str) -> anyhow::Result<Vec<String>> {
    let t = &c.turn;
    let mut a: Vec<String> = vec![
        "-n".into(),
        "--no-cli".into(),
        "--use-auth-secret".into(),
        format!("--static-auth-secret={secret}"),
        "--realm=livekit".into(),
        format!("--min-port={}", t.relay_range_start),
        format!("--max-port={}", t.relay_range_end),
        "--no-dtls".into(),
        "--denied-peer-ip=0.0.0.0-255.255.255.255".into(),
        "--denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into(),
    ];
    a.push(format!("--allowed-peer-port={}", c.media_udp_port()));
    let nodes = node_ips(c);
    for ip in &nodes {
        a.push(format!("--allowed-peer-ip={ip}"));
        if ip.is_loopback() {
            // Loopback is refused before the allow list is read (coturn's order).
            a.push("--allow-loopback-peers".into());
        }
    }
    for ip in c.bind_addresses.iter().filter(|ip| !ip.is_unspecified()) {
        a.push(format!("--listening-ip={ip}"));
        a.push(format!("--relay-ip={ip}"));
    }
    if c.bind_addresses.iter().all(|ip| ip.is_unspecified()) {
        // Relay from the node address, which is where the media port answers.
        for ip in &nodes {
            a.push(format!("--relay-ip={ip}"));
        }
    }
    if t.udp_port == 0 {
        a.push("--no-udp".into());
    } else {
        a.push(format!("--listening-port={}", t.udp_port));
    }
    if t.tls_port == 0 {
        a.push("--no-tls".into());
        a.push("--no-tcp".into());
    } else if t.external_tls {
        // TLS ends at the load balancer, which forwards plain TCP to tls_port.
        anyhow::ensure!(
            t.udp_port == 0 || t.udp_port == t.tls_port,
            "turn.external_tls with both udp_port {} and tls_port {}: the embedded relay \
             serves plain TCP on its listening port only; set them equal or udp_port: 0",
            t.udp_port,
            t.tls_port
        );
        a.push(format!("--listening-port={}", t.tls_port));
        a.push("--no-tls".into());
    } else {
        a.push("--no-tcp".into());
        a.push(format!("--tls-listening-port={}", t.tls_port));
        let cert = t.cert_file.as_ref().expect("checked by the loader");
        let key = t.key_file.as_ref().expect("checked by the loader");
        a.push(format!("--cert={}", cert.display()));
        a.push(format!("--pkey={}", key.display()));
    }
    if t.per_user_limit > 0 {
        a.push(format!("--user-quota={}", t.per_user_limit));
    }
    Ok(a)
}

fn run(settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(async move {
        let (server, fut) = switchyard_livekit::serve(settings).await.context("bind")?;
        tracing::info!(http = %server.http_addr, udp = %server.udp_addr, "ready");
        fut.await.context("http server")
    })
}
