//! LiveKit's Python SDKs (tests/.venv, PyPI `livekit-api` and `livekit`) against
//! `switchyard livekit`: the Twirp RoomService through the server SDK, and a synthetic
//! audio/video publisher with two subscribers through the native SDK (Rust core + libwebrtc),
//! including reliable ordered data and targeted data. See tests/py/livekit_*.py.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use switchyard_tests::livekit::{API_KEY, API_SECRET, LivekitServer, livekit_python};
use switchyard_tests::process::{run_bounded, tail};
use switchyard_tests::{need, package_dir};

fn run_script(py: PathBuf, server: &LivekitServer, script: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(py);
    cmd.arg(package_dir().join("py").join(script)).args(args);
    let done = run_bounded(
        &mut cmd,
        Duration::from_secs(90),
        &server.dir.path().join(format!("{script}.log")),
    );
    let context = format!(
        "exit {:?} after {:?}\n---- {script} ----\n{}\n---- server ----\n{}",
        done.status,
        done.elapsed,
        tail(&done.output, 30),
        server.log_tail(30)
    );
    let line = done
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON verdict: {context}"));
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {context}"));
    assert_eq!(v["ok"], Value::Bool(true), "{script} failed: {context}");
    v
}

#[test]
fn twirp_room_service_with_livekit_api() {
    let py = need!(livekit_python());
    let server = need!(LivekitServer::start(&[]));
    let v = run_script(
        py,
        &server,
        "livekit_twirp.py",
        &[&server.http_url(), API_KEY, API_SECRET],
    );
    assert_eq!(v["absent"]["code"], "not_found");
    assert_eq!(v["wrong_secret"], "unauthenticated");
}

#[test]
fn native_sdk_media_and_data() {
    let py = need!(livekit_python());
    let server = need!(LivekitServer::start(&[]));
    let v = run_script(
        py,
        &server,
        "livekit_rtc.py",
        &[&server.ws_url(), API_KEY, API_SECRET, "py-room"],
    );
    for sub in ["sub1", "sub2"] {
        assert!(v["frames"][sub]["audio"].as_u64().unwrap_or(0) > 20, "{v}");
        assert!(v["frames"][sub]["video"].as_u64().unwrap_or(0) > 5, "{v}");
    }
    let sessions = server.sessions_on("/rtc/v1") + server.sessions_on("/rtc");
    assert_eq!(sessions, 3, "{}", server.log_tail(20));
}

/// Webhooks (`webhook:` in livekit.yaml), received and verified by livekit-api's
/// WebhookReceiver exactly as a receiver verifies livekit-server's: signature, body hash,
/// protojson event. A participant joins with the native SDK, publishes, unpublishes and
/// leaves; the room closes after its departure timeout.
#[test]
fn webhooks_verified_by_livekit_api() {
    let py = need!(livekit_python());
    let hook_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let body = format!(
        "webhook:\n  api_key: {API_KEY}\n  urls:\n    - http://127.0.0.1:{hook_port}/hook\nroom:\n  departure_timeout: 1\n"
    );
    let server = need!(LivekitServer::start(&["--config-body", &body]));
    let v = run_script(
        py,
        &server,
        "livekit_webhook.py",
        &[
            &server.ws_url(),
            API_KEY,
            API_SECRET,
            "hook-room",
            &hook_port.to_string(),
        ],
    );
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "room_started",
            "participant_joined",
            "track_published",
            "track_unpublished",
            "participant_left",
            "room_finished"
        ],
        "{v}"
    );
}

/// RoomService calls that change a live room (UpdateParticipant, UpdateRoomMetadata,
/// SendData to all and to one identity, MutePublishedTrack) through livekit-api, each
/// observed by another participant on the native SDK.
#[test]
fn room_service_changes_reach_participants() {
    let py = need!(livekit_python());
    let server = need!(LivekitServer::start(&[]));
    let v = run_script(
        py,
        &server,
        "livekit_roomservice.py",
        &[
            &server.ws_url(),
            &server.http_url(),
            API_KEY,
            API_SECRET,
            "admin-room",
        ],
    );
    assert!(
        v["checks"].as_object().is_some_and(|c| c.len() >= 10),
        "{v}"
    );
}

/// `autoSubscribe: false`: a participant receives a track only once the server
/// (UpdateSubscriptions through livekit-api) or the participant itself (`set_subscribed`)
/// names it, and can drop it again; a default participant receives everything at once.
/// The same room's `connection_quality` grades reach the native SDK.
#[test]
fn manual_subscriptions_follow_the_server_and_the_client() {
    let py = need!(livekit_python());
    let server = need!(LivekitServer::start(&[]));
    let v = run_script(
        py,
        &server,
        "livekit_subscriptions.py",
        &[
            &server.ws_url(),
            &server.http_url(),
            API_KEY,
            API_SECRET,
            "subscriptions-room",
        ],
    );
    assert!(v["checks"].as_object().is_some_and(|c| c.len() >= 8), "{v}");
}
