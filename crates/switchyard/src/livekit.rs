//! `switchyard livekit`: the LiveKit-compatible SFU (a livekit-server drop-in).
//!
//! Flags are the livekit-server subset tests and simple deployments use; [`settings_from`] is
//! the one place that turns argv + environment into [`Settings`], to be replaced by the config
//! crate's livekit.yaml / LIVEKIT_CONFIG loader.

use std::ffi::OsString;
use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use switchyard_livekit::Settings;

use crate::logging::{self, LogTarget};

const USAGE: &str = "\
switchyard livekit — LiveKit-compatible SFU (livekit-server drop-in)

Usage: switchyard livekit [--dev] [--keys \"key: secret\"] [--bind IP] [--port N]
                          [--udp-port N] [--tcp-port N] [--ice-tcp-only] [--node-ip IP]
Environment: LIVEKIT_KEYS=\"key: secret\" (flags win).";

pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let env_keys = std::env::var("LIVEKIT_KEYS").ok();
    let settings = match settings_from(&args, env_keys.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchyard livekit: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(LogTarget::Stdout, "info") {
        eprintln!("switchyard livekit: logging: {e}");
        return ExitCode::FAILURE;
    }
    match run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard livekit: {e:#}");
            ExitCode::FAILURE
        }
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

/// Parses `key: secret` pairs, comma- or newline-separated, as `--keys`/`LIVEKIT_KEYS` take them.
fn parse_keys(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once(':')
                .with_context(|| format!("keys: `{p}` is not `key: secret`"))?;
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// argv (after `livekit`) + `LIVEKIT_KEYS` → settings.
fn settings_from(args: &[String], env_keys: Option<&str>) -> anyhow::Result<Settings> {
    let mut s = Settings::default();
    let mut keys: Option<Vec<(String, String)>> = env_keys.map(parse_keys).transpose()?;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value")),
            }
        };
        match flag {
            "--dev" | "--development" => s.dev = true,
            "--keys" => keys = Some(parse_keys(&value("--keys")?)?),
            "--bind" => {
                let v = value("--bind")?;
                s.bind.push(
                    v.parse::<IpAddr>()
                        .with_context(|| format!("--bind: `{v}`"))?,
                );
            }
            "--port" => s.http_port = value("--port")?.parse().context("--port")?,
            "--udp-port" => s.udp_port = value("--udp-port")?.parse().context("--udp-port")?,
            "--tcp-port" => s.tcp_port = value("--tcp-port")?.parse().context("--tcp-port")?,
            "--ice-tcp-only" => s.udp_candidates = false,
            "--node-ip" => {
                let v = value("--node-ip")?;
                for ip in v.split(',') {
                    s.node_ips.push(
                        ip.trim()
                            .parse()
                            .with_context(|| format!("--node-ip: `{ip}`"))?,
                    );
                }
            }
            other => bail!("unknown option `{other}`"),
        }
    }
    s.keys = match keys {
        Some(k) if !k.is_empty() => k,
        _ if s.dev => vec![(Settings::DEV_KEY.0.into(), Settings::DEV_KEY.1.into())],
        _ => bail!("no API keys: pass --keys \"key: secret\", LIVEKIT_KEYS, or --dev"),
    };
    if !s.dev {
        for (k, secret) in &s.keys {
            if secret.len() < 32 {
                tracing::warn!(key = k, "secret is shorter than 32 characters");
            }
        }
    }
    if s.dev && s.bind.is_empty() && s.node_ips.is_empty() {
        s.bind.push(IpAddr::from([127, 0, 0, 1]));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dev_mode_defaults() {
        let s = settings_from(&args(&["--dev"]), None).unwrap();
        assert_eq!(s.keys, vec![("devkey".into(), "secret".into())]);
        assert_eq!((s.http_port, s.udp_port, s.tcp_port), (7880, 7882, 7881));
        assert!(s.auto_create);
    }

    #[test]
    fn flags_and_env() {
        let s = settings_from(
            &args(&[
                "--keys",
                "k1: s1, k2: s2",
                "--port=9000",
                "--udp-port",
                "9001",
                "--node-ip",
                "127.0.0.1",
            ]),
            Some("ignored: x"),
        )
        .unwrap();
        assert_eq!(
            s.keys,
            vec![("k1".into(), "s1".into()), ("k2".into(), "s2".into())]
        );
        assert_eq!((s.http_port, s.udp_port), (9000, 9001));
        assert_eq!(s.node_ips, vec![IpAddr::from([127, 0, 0, 1])]);
        let s = settings_from(&[], Some("envkey: envsecret")).unwrap();
        assert_eq!(s.keys, vec![("envkey".into(), "envsecret".into())]);
        assert!(settings_from(&[], None).is_err());
        assert!(settings_from(&args(&["--port", "x", "--dev"]), None).is_err());
        assert!(settings_from(&args(&["--bogus"]), None).is_err());
    }
}
