//! Metrics and health endpoints.
//!
//! - [`http`]: a tiny HTTP/1.1 server on a std `TcpListener` thread (the relay is mio-based,
//!   not tokio) serving the Prometheus text format on the metrics path, coturn's health
//!   check (`GET /` → 200 "ok", coturn 4.7.0+), `/healthz` (liveness) and `/readyz`
//!   (listeners bound and not stopping).
//! - [`turn`]: the TURN relay's metrics. Workers never lock per packet: each owns a
//!   [`turn::WorkerMetrics`] of atomics it overwrites with its plain counters every few
//!   milliseconds; a scrape adds the workers up ([`turn::TurnCollector`]).
//! - [`livekit`]: the SFU's metrics under livekit-server's names: media counters the media
//!   thread adds to once per batch, room gauges read from the signalling state at scrape
//!   time.

#![forbid(unsafe_code)]

pub mod http;
pub mod livekit;
pub mod turn;

pub use prometheus_client::registry::Registry;
