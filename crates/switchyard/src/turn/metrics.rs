//! coturn's `prometheus` options: the metrics and health endpoint of `switchyard turn`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use switchyard_config::TurnConfig;
use switchyard_telemetry::Registry;
use switchyard_telemetry::http::{Endpoint, Health};
use switchyard_telemetry::turn::{TurnCollector, WorkerMetrics};

/// Binds `prometheus-address:prometheus-port` (coturn: all addresses, port 9641) and serves
/// `/metrics` (or `prometheus-path`), `/`, `/healthz` and `/readyz` from a thread.
pub(crate) fn start(
    config: &TurnConfig,
    realm: &str,
    workers: Vec<Arc<WorkerMetrics>>,
    health: Arc<Health>,
) -> anyhow::Result<()> {
    let ip = config
        .prometheus_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, config.prometheus_port);
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen for prometheus on tcp {addr}"))?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(TurnCollector::new(realm, workers)));
    let path = if config.prometheus_path.starts_with('/') {
        config.prometheus_path.clone()
    } else {
        format!("/{}", config.prometheus_path)
    };
    tracing::info!(%addr, %path, "prometheus metrics endpoint");
    switchyard_telemetry::http::serve(
        listener,
        Endpoint {
            metrics_path: path,
            registry,
            health,
        },
    )
    .context("cannot start the metrics thread")?;
    Ok(())
}
