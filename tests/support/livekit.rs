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
        let bin = locate_switchyard()?;
        let dir = TempDir::new("livekit").map_err(|e| Skip::new(format!("tempdir: {e}")))?;
        let p = ports::allocate();
        let http = SocketAddr::from(([127, 0, 0, 1], p.listen));
        let udp_port = p.peer;
        let mut cmd = Command::new(&bin);
        cmd.arg("livekit")
            .args(["--bind", "127.0.0.1", "--node-ip", "127.0.0.1"])
            .args(["--port", &p.listen.to_string()])
            .args(["--udp-port", &udp_port.to_string()])
            .args(["--keys", &format!("{API_KEY}: {API_SECRET}")])
            .args(extra)
            .env("RUST_LOG", "info");
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
        panic!("switchyard livekit not listening on {http}:\n{}", s.child.log());
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

    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// Number of signalling sessions the server accepted on `path` (`/rtc` or `/rtc/v1`).
    pub fn sessions_on(&self, path: &str) -> usize {
        let needle = format!("signalling session path=\"{path}\"");
        strip_ansi(&self.log()).matches(&needle).count()
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
