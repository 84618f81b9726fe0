//! Starts `switchyard livekit` (the LiveKit-compatible SFU) on loopback ports and mints access
//! tokens for it.

use crate::ports;
use crate::process::ChildGuard;
use crate::server::locate_switchyard;
use crate::skip::{Need, Skip};
use crate::tempdir::TempDir;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub const API_KEY: &str = "testkey";
/// 32+ characters, as livekit-server wants outside dev mode.
pub const API_SECRET: &str = "switchyard-livekit-test-secret-0123456789";

pub struct LivekitServer {
    pub http: SocketAddr,
    pub udp_port: u16,
    pub dir: TempDir,
    child: ChildGuard,
}

impl LivekitServer {
    /// Starts the server with the test key pair plus `extra` flags and waits for `GET /`.
    pub fn start(extra: &[&str]) -> Need<Self> {
        Self::start_with(&|_| extra.iter().map(|s| s.to_string()).collect())
    }

    /// Like [`start`](Self::start), with flags that may use the test's port block (the
    /// embedded TURN's ports: `peer + 1` and the relay range are free for it).
    pub fn start_with(extra: &dyn Fn(&ports::PortBlock) -> Vec<String>) -> Need<Self> {
        let bin = locate_switchyard()?;
        let dir = TempDir::new("livekit").map_err(|e| Skip::new(format!("tempdir: {e}")))?;
        let p = ports::allocate();
        let extra = extra(&p);
        let http = SocketAddr::from(([127, 0, 0, 1], p.listen));
        let udp_port = p.peer;
        let mut cmd = Command::new(&bin);
        cmd.arg("livekit")
            .args(["--bind", "127.0.0.1", "--node-ip", "127.0.0.1"])
            .args(["--port", &p.listen.to_string()])
            .args(["--udp-port", &udp_port.to_string()])
            .args(["--tcp-port", &p.tls.to_string()])
            .args(["--keys", &format!("{API_KEY}: {API_SECRET}")])
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("SWITCHYARD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        let log = dir.path().join("livekit.log");
        let child = ChildGuard::spawn("switchyard livekit", &mut cmd, &log)
            .map_err(|e| Skip::new(format!("spawn {}: {e}", bin.display())))?;
        let mut s = LivekitServer {
            http,
            udp_port,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_ok() {
                return Ok(s);
            }
            if let Some(st) = s.child.exited() {
                panic!("switchyard livekit exited early ({st}):\n{}", s.child.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "switchyard livekit not listening on {http}:\n{}",
            s.child.log()
        );
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.http)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn log(&self) -> String {
        self.child.log()
    }

    /// The log without terminal colours, for matching `key=value` fields.
    pub fn plain_log(&self) -> String {
        strip_ansi(&self.log())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// Number of signalling sessions the server accepted on `path` (`/rtc` or `/rtc/v1`).
    pub fn sessions_on(&self, path: &str) -> usize {
        let needle = format!("signalling session path=\"{path}\"");
        strip_ansi(&self.log()).matches(&needle).count()
    }

    /// The server's process id (for its RSS and CPU in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn assert_alive(&mut self) {
        if let Some(st) = self.child.exited() {
            panic!("switchyard livekit died ({st}):\n{}", self.log_tail(40));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("livekit.log")
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Mints an HS256 access token. `video` is the grant object; `ttl_secs` may be negative.
pub fn token(
    key: &str,
    secret: &str,
    identity: &str,
    video: serde_json::Value,
    ttl_secs: i64,
) -> String {
    let now = crate::creds::unix_now() as i64;
    let claims = serde_json::json!({
        "iss": key, "sub": identity, "nbf": now - 5, "exp": now + ttl_secs, "video": video,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode token")
}

/// A join token for `room` with the test key pair and extra grant fields.
pub fn join_token(identity: &str, room: &str, extra: serde_json::Value) -> String {
    let mut video = serde_json::json!({"roomJoin": true, "room": room});
    if let (Some(v), Some(e)) = (video.as_object_mut(), extra.as_object()) {
        v.extend(e.clone());
    }
    token(API_KEY, API_SECRET, identity, video, 600)
}

/// One plain HTTP/1.1 request on loopback; returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One Twirp `RoomService` call with a JSON body; returns (status, JSON body or null).
pub fn twirp(
    server: &LivekitServer,
    method: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let (status, text) = http(
        server.http,
        "POST",
        &format!("/twirp/livekit.RoomService/{method}"),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        body.to_string().as_bytes(),
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// The key pair in `config/livekit.yaml`.
pub const SAMPLE_KEY: (&str, &str) = ("changeme-key", "changeme-secret-of-at-least-32-characters");

/// `config/livekit.yaml` with the ports of `p` swapped in (HTTP `listen`, media UDP `peer`,
/// ICE-TCP `tls`) and bound to loopback, for tests that start the server from the sample.
pub fn sample_config(p: &crate::ports::PortBlock) -> String {
    let sample = std::fs::read_to_string(crate::package_dir().join("../config/livekit.yaml"))
        .expect("config/livekit.yaml");
    sample
        .replace("port: 7880", &format!("port: {}", p.listen))
        .replace("udp_port: 7882", &format!("udp_port: {}", p.peer))
        .replace("tcp_port: 7881", &format!("tcp_port: {}", p.tls))
        .replace("  - 0.0.0.0", "  - 127.0.0.1")
}

/// tests/.venv's Python with LiveKit's SDKs (`livekit-api`, `livekit`), installed by
/// tests/install-peers.sh.
pub fn livekit_python() -> Need<PathBuf> {
    let py = crate::package_dir().join(".venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import livekit.api, livekit.rtc"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        Ok(py)
    } else {
        Err(Skip::new(
            "livekit / livekit-api not installed in tests/.venv (run tests/install-peers.sh)",
        ))
    }
}
