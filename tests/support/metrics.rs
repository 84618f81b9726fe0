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

/// Sample names (without labels) in a scrape.
fn sample_names(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Metric names a PromQL expression uses (ours, coturn's and livekit-server's prefixes).
fn expr_metrics(expr: &str) -> Vec<String> {
    const PREFIXES: [&str; 4] = ["turn_", "switchyard_", "stun_", "livekit_"];
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| PREFIXES.iter().any(|p| w.starts_with(p)))
        .map(str::to_string)
        .collect()
}

fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The metrics `docker/grafana/<dashboard>` queries that the scrape `text` neither has
/// nor declares. Panics if the dashboard has fewer than `min_queries` queries or a query
/// names no metric, so an empty or broken dashboard cannot pass.
pub fn dashboard_gaps(dashboard: &str, text: &str, min_queries: usize) -> Vec<String> {
    let path = crate::package_dir()
        .join("../docker/grafana")
        .join(dashboard);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("valid JSON");
    let mut exprs = Vec::new();
    dashboard_exprs(&json, &mut exprs);
    assert!(
        exprs.len() >= min_queries,
        "{dashboard} has {} queries",
        exprs.len()
    );
    let mut exported = sample_names(text);
    exported.extend(declared_samples(text));
    let mut queried = std::collections::BTreeSet::new();
    for e in &exprs {
        let names = expr_metrics(e);
        assert!(!names.is_empty(), "query names no metric: {e}");
        queried.extend(names);
    }
    queried.difference(&exported).cloned().collect()
}
