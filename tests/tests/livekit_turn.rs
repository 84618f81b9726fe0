//! TURN for LiveKit clients: the embedded relay (`turn:` in livekit.yaml) and external
//! relays (`rtc.turn_servers`, here Debian's coturn) are listed in the join response with
//! per-participant credentials, and the native SDK (PyPI livekit) forced to relay-only ICE
//! carries a call through them.

use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use switchyard_tests::livekit::{API_KEY, API_SECRET, LivekitServer, livekit_python};
use switchyard_tests::process::{run_bounded, tail};
use switchyard_tests::server::{ServerKind, ServerOptions, TestServer};
use switchyard_tests::signal::join;
use switchyard_tests::skip::find_binary;
use switchyard_tests::{need, package_dir};

/// The embedded relay on the block's spare ports: UDP on `peer + 1`, relays from the
/// block's relay range, no TLS.
fn embedded_turn(p: &switchyard_tests::ports::PortBlock) -> Vec<String> {
    let body = format!(
        "turn:\n  enabled: true\n  udp_port: {}\n  tls_port: 0\n  relay_range_start: {}\n  relay_range_end: {}\n",
        p.peer + 1,
        p.relay_min,
        p.relay_max
    );
    vec!["--config-body".into(), body]
}

/// Runs the relay-only call; panics with both logs unless audio crossed.
fn relay_only_call(server: &LivekitServer, room: &str, relay_log: &dyn Fn() -> String) {
    let py = need!(livekit_python());
    let mut cmd = Command::new(py);
    cmd.arg(package_dir().join("py/livekit_turn_relay.py"))
        .args([&server.ws_url(), API_KEY, API_SECRET, room]);
    let done = run_bounded(
        &mut cmd,
        Duration::from_secs(90),
        &server.dir.path().join(format!("{room}.log")),
    );
    let verdict = done
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str::<Value>(l).ok());
    assert!(
        verdict.as_ref().is_some_and(|v| v["ok"] == json!(true)),
        "relay-only call failed ({:?}):\n{}\n---- sfu ----\n{}\n---- relay ----\n{}",
        done.status,
        tail(&done.output, 20),
        server.log_tail(30),
        tail(&relay_log(), 30)
    );
}

#[test]
fn join_response_lists_the_embedded_relay_with_fresh_credentials() {
    let server = need!(LivekitServer::start_with(&embedded_turn));
    let (_ws, j) = join(&server, "alice", "turn-room", json!({}));
    assert_eq!(j.ice_servers.len(), 1, "{:?}", j.ice_servers);
    let s = &j.ice_servers[0];
    let turn_port = server.udp_port + 1;
    assert_eq!(
        s.urls,
        [format!("turn:127.0.0.1:{turn_port}?transport=udp")]
    );
    // coturn's REST scheme: `<expiry>:<participant sid>`, expiring in about a day.
    let sid = &j.participant.as_ref().unwrap().sid;
    let (expiry, user) = s.username.split_once(':').expect("expiry:user");
    assert_eq!(user, sid);
    let expiry: u64 = expiry.parse().unwrap();
    let now = switchyard_tests::creds::unix_now();
    assert!(
        expiry > now + 3600 && expiry <= now + 86_400 + 5,
        "{expiry} vs {now}"
    );
    assert_eq!(
        s.credential.len(),
        28,
        "base64 of an HMAC-SHA1: {:?}",
        s.credential
    );
    // Another participant gets other credentials.
    let (_ws2, j2) = join(&server, "bob", "turn-room", json!({}));
    assert_ne!(j2.ice_servers[0].username, s.username);
    assert_ne!(j2.ice_servers[0].credential, s.credential);
}

#[test]
fn relay_only_clients_call_through_the_embedded_relay() {
    let server = need!(LivekitServer::start_with(&embedded_turn));
    relay_only_call(&server, "embedded-relay", &|| String::new());
    let log = server.log();
    let allocations = log.matches("allocation created").count();
    assert!(
        allocations >= 2,
        "expected relay allocations for both participants, saw {allocations}:\n{}",
        server.log_tail(40)
    );
}

#[test]
fn relay_only_clients_call_through_coturn_from_turn_servers() {
    let coturn = need!(find_binary("turnserver"));
    let relay = TestServer::start_kind(ServerKind::Coturn(coturn), ServerOptions::default())
        .unwrap_or_else(|s| panic!("{}", s.0));
    let yaml = format!(
        "rtc:\n  turn_servers:\n    - host: 127.0.0.1\n      port: {}\n      protocol: udp\n      secret: {}\n",
        relay.udp_addr().port(),
        ServerOptions::default().secret
    );
    let server = need!(LivekitServer::start(&["--config-body", &yaml]));
    let (_ws, j) = join(&server, "carol", "coturn-room", json!({}));
    assert_eq!(
        j.ice_servers[0].urls,
        [format!(
            "turn:127.0.0.1:{}?transport=udp",
            relay.udp_addr().port()
        )]
    );
    relay_only_call(&server, "coturn-relay", &|| relay.log());
    let log = relay.log();
    assert!(
        log.contains("ALLOCATE processed, success") || log.contains("new relay"),
        "coturn shows no allocation:\n{}",
        tail(&log, 40)
    );
}
