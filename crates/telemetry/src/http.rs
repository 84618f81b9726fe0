//! The metrics and health HTTP endpoint: a std `TcpListener` on its own thread.
//!
//! Scrapes and health checks are a few requests a minute, so each connection gets a short
//! thread of its own (at most [`MAX_CONNECTIONS`] at once, so a slow client cannot starve
//! the liveness probe, the failure wire-server hit with coturn) and is closed after one
//! response.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// The Prometheus text format the encoder writes (OpenMetrics 1.0 text).
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What `/readyz` reports: the process is up (`/healthz` answers whenever the thread
/// runs), and ready once its listeners are bound, until it starts stopping.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// What the endpoint serves.
#[derive(Debug)]
pub struct Endpoint {
    /// coturn's `prometheus-path` (default `/metrics`).
    pub metrics_path: String,
    pub registry: Registry,
    pub health: Arc<Health>,
}

/// Serves `endpoint` on `listener` from a new thread, until the process exits.
pub fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let endpoint = Arc::new(endpoint);
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let endpoint = endpoint.clone();
                let active = active.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        if let Err(e) = handle(stream, &endpoint) {
                            tracing::debug!(error = %e, "metrics connection");
                        }
                        active.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    tracing::warn!("cannot start a metrics connection thread");
                }
            }
        })
}

fn handle(mut stream: TcpStream, endpoint: &Endpoint) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_REQUEST_HEAD {
            return respond(&mut stream, 431, "text/plain", b"request head too large\n");
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", b"method not allowed\n");
    }
    let (status, content_type, body) = route(endpoint, path);
    if method == "HEAD" {
        return respond_head(&mut stream, status, content_type, body.len());
    }
    respond(&mut stream, status, content_type, &body)
}

/// The response for `GET path`: status, content type, body.
pub fn route(endpoint: &Endpoint, path: &str) -> (u16, &'static str, Vec<u8>) {
    if path == endpoint.metrics_path {
        let mut text = String::new();
        match prometheus_client::encoding::text::encode(&mut text, &endpoint.registry) {
            Ok(()) => (200, METRICS_CONTENT_TYPE, text.into_bytes()),
            Err(_) => (500, "text/plain", b"encoding failed\n".to_vec()),
        }
    } else {
        match path {
            // coturn 4.7.0+: "200 OK on root prometheus path for health check".
            "/" | "/healthz" | "/live" => (200, "text/plain", b"ok\n".to_vec()),
            "/readyz" | "/ready" => {
                if endpoint.health.is_ready() {
                    (200, "text/plain", b"ready\n".to_vec())
                } else {
                    (503, "text/plain", b"not ready\n".to_vec())
                }
            }
            _ => (404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

fn respond_head(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    len: usize,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        reason(status)
    );
    stream.write_all(head.as_bytes())
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    respond_head(stream, status, content_type, body.len())?;
    stream.write_all(body)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_health_and_readiness() {
        let mut registry = Registry::default();
        let counter: prometheus_client::metrics::counter::Counter =
            prometheus_client::metrics::counter::Counter::default();
        counter.inc_by(7);
        registry.register("demo", "a demo counter", counter);
        let health = Arc::new(Health::default());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        serve(
            listener,
            Endpoint {
                metrics_path: "/metrics".into(),
                registry,
                health: health.clone(),
            },
        )
        .unwrap();
        let r = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("\ndemo_total 7\n"), "{r}");
        let r = get(addr, "GET / HTTP/1.0\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200 OK") && r.ends_with("ok\n"),
            "{r}"
        );
        assert!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get(addr, "GET /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(addr, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    }
}
