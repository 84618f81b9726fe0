//! Headless Chromium (Debian's, driven by puppeteer-core from tests/js) makes a relay-only
//! WebRTC call between two RTCPeerConnections through the server under test, the way Element
//! does with the `iceServers` Synapse hands out. See tests/js/relay.mjs.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use switchyard_tests::creds::synapse_style;
use switchyard_tests::process::{run_bounded, tail};
use switchyard_tests::server::{ServerOptions, TestServer};
use switchyard_tests::skip::{Need, Skip, find_binary, is_executable};
use switchyard_tests::{need, package_dir};

fn chromium() -> Need<PathBuf> {
    let p = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if is_executable(&p) {
        Ok(p)
    } else {
        Err(Skip::new(format!(
            "{} not found (apt-get install chromium, or run tests/install-peers.sh)",
            p.display()
        )))
    }
}

fn puppeteer_installed() -> Need<()> {
    let marker = package_dir().join("js/node_modules/puppeteer-core/package.json");
    if marker.exists() {
        Ok(())
    } else {
        Err(Skip::new(
            "puppeteer-core not installed in tests/js (run tests/install-peers.sh)",
        ))
    }
}

fn relay_call(transport: &str) {
    let node = need!(find_binary("node"));
    let browser = need!(chromium());
    need!(puppeteer_installed());
    let server = need!(TestServer::start(ServerOptions::default()));
    let (username, password) = synapse_style(server.secret(), "@carol:switchyard.test", 3600);

    let mut cmd = Command::new(node);
    cmd.arg(package_dir().join("js/relay.mjs"))
        .arg(server.ports.listen.to_string())
        .arg(&username)
        .arg(&password)
        .arg(transport)
        .env("CHROMIUM", &browser)
        .env("RELAY_TIMEOUT_MS", "30000");
    let done = run_bounded(
        &mut cmd,
        Duration::from_secs(45),
        &server.dir.join(&format!("chromium-{transport}.log")),
    );
    let context = || {
        format!(
            "{} ({transport}): node exit {:?} after {:?}\n---- relay.mjs output ----\n{}\n---- server tail ----\n{}",
            server.describe(),
            done.status,
            done.elapsed,
            tail(&done.output, 30),
            server.log_tail(30)
        )
    };
    let json_line = done
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("relay.mjs printed no JSON: {}", context()));
    let r: Value = serde_json::from_str(json_line)
        .unwrap_or_else(|e| panic!("bad JSON from relay.mjs ({e}): {}", context()));

    assert_eq!(r["error"], Value::Null, "call failed: {}", context());
    assert_eq!(
        r["iceErrors"].as_array().map(Vec::len),
        Some(0),
        "ICE candidate errors: {}",
        context()
    );
    assert_eq!(r["messageOk"], true, "data channel message: {}", context());
    let local = &r["pair"]["local"];
    let remote = &r["pair"]["remote"];
    assert_eq!(local["candidateType"], "relay", "local: {}", context());
    assert_eq!(remote["candidateType"], "relay", "remote: {}", context());
    assert_eq!(local["relayProtocol"], transport, "{}", context());
    let in_range = |c: &Value| {
        c["address"] == "127.0.0.1"
            && c["port"].as_u64().is_some_and(|p| {
                (u64::from(server.ports.relay_min)..=u64::from(server.ports.relay_max)).contains(&p)
            })
    };
    assert!(
        in_range(local) && in_range(remote),
        "relay candidates must be relay-ip:min-port..max-port: {}",
        context()
    );
    assert_eq!(r["ok"], true, "{}", context());
    assert!(done.success(), "{}", context());
}

#[test]
fn relay_only_call_over_udp() {
    relay_call("udp");
}

#[test]
fn relay_only_call_over_tcp() {
    relay_call("tcp");
}
