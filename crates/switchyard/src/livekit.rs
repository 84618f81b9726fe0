//! `switchyard livekit`: the LiveKit-compatible SFU (a livekit-server drop-in).
//!
//! The configuration is livekit-server's (livekit.yaml, its flags and environment), read by
//! [`switchyard_config::livekit`]; [`settings`] maps it onto the server's run-time
//! [`Settings`].

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use switchyard_config::livekit::LiveKitConfig;
use switchyard_livekit::{Settings, WebhookConfig};

use crate::logging::{self, LogTarget};

const USAGE: &str = "\
switchyard livekit — LiveKit-compatible SFU (livekit-server drop-in)

Usage: switchyard livekit [--config livekit.yaml] [--config-body YAML] [--dev]
                          [--keys \"key: secret\"] [--key-file FILE] [--bind IP]...
                          [--node-ip IP] [--udp-port N] [--port N] [--tcp-port N]
                          [--check-config]
Environment (flags win): LIVEKIT_CONFIG_FILE, LIVEKIT_CONFIG (YAML body), LIVEKIT_KEYS,
LIVEKIT_KEY_FILE, NODE_IP, UDP_PORT. `--check-config` prints the effective configuration
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
    match run(settings(&config)) {
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
    }
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
