//! Reading a Prometheus text endpoint: one plain HTTP/1.1 GET and a sample lookup.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` → (status, body). Panics on connection errors (the endpoint is under test).
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to metrics endpoint {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The scraped `/metrics` text.
pub fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "GET /metrics: {body}");
    body
}

/// The value of the sample written exactly as `series` (`name` or `name{labels}`).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Every sample name the text declares through its `# TYPE name kind` lines, whether or
/// not a sample is present yet: `name_total` for counters, `name_bucket` / `_sum` /
/// `_count` for histograms, `name` otherwise.
pub fn declared_samples(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let mut parts = l.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => out.push(format!("{name}_total")),
            "histogram" => {
                for suffix in ["bucket", "sum", "count"] {
                    out.push(format!("{name}_{suffix}"));
                }
            }
            _ => out.push(name.to_string()),
        }
    }
    out
}
