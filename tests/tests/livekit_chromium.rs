//! The real LiveKit JS SDK (npm livekit-client 2.23 and Element Call's 2.21) in headless
//! Chromium: two participants join one room through `switchyard livekit`, publish fake camera
//! (simulcast q/h/f) and microphone, and each decodes the other's video and receives its audio;
//! a reliable data packet, a mute, an unpublish, the speaking indicator and a leave cross.
//! See tests/js/livekit_call.mjs.
//!
//! Both signalling paths are covered: `/rtc/v1` (single peer connection, the SDK default)
//! and `/rtc` (publisher + subscriber connections, `singlePeerConnection: false`).
//! The SDK silently falls back from `/rtc/v1` to `/rtc`, so every case also asserts which
//! signalling path the server actually served.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use switchyard_tests::livekit::{API_KEY, API_SECRET, LivekitServer};
use switchyard_tests::process::{run_bounded, tail};
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
            "{} not found (tests/install-peers.sh)",
            p.display()
        )))
    }
}

fn sdk_installed(package: &str) -> Need<()> {
    for dep in ["puppeteer-core", package] {
        if !package_dir()
            .join(format!("js/node_modules/{dep}/package.json"))
            .exists()
        {
            return Err(Skip::new(format!(
                "{dep} not installed in tests/js (run tests/install-peers.sh)"
            )));
        }
    }
    Ok(())
}

struct Peers {
    node: PathBuf,
    browser: PathBuf,
}

fn peers(package: &str) -> Need<Peers> {
    let node = find_binary("node")?;
    let browser = chromium()?;
    sdk_installed(package)?;
    Ok(Peers { node, browser })
}

/// Runs one two-party call; returns the script's verdict and the server.
fn call(p: Peers, single_pc: &str, package: &str, room: &str) -> (Value, LivekitServer) {
    call_with(p, single_pc, package, room, &[])
}

fn call_with(
    p: Peers,
    single_pc: &str,
    package: &str,
    room: &str,
    env: &[(&str, &str)],
) -> (Value, LivekitServer) {
    call_with_server(p, single_pc, package, room, env, &[])
}

/// [`call`] with extra environment for the script (`LK_LAYERS`, `LK_ADAPTIVE`, `LK_RESUME`)
/// and extra server flags.
fn call_with_server(
    p: Peers,
    single_pc: &str,
    package: &str,
    room: &str,
    env: &[(&str, &str)],
    server_flags: &[&str],
) -> (Value, LivekitServer) {
    let server = LivekitServer::start(server_flags).unwrap_or_else(|s| panic!("server: {}", s.0));
    let v = call_on(p, &server, single_pc, package, room, env);
    (v, server)
}

/// Runs `livekit_call.mjs` against a running server; returns its verdict.
fn call_on(
    p: Peers,
    server: &LivekitServer,
    single_pc: &str,
    package: &str,
    room: &str,
    env: &[(&str, &str)],
) -> Value {
    let Peers { node, browser } = p;
    let mut cmd = Command::new(node);
    cmd.arg(package_dir().join("js/livekit_call.mjs"))
        .args([
            &server.ws_url(),
            API_KEY,
            API_SECRET,
            room,
            single_pc,
            package,
        ])
        .env("CHROMIUM", &browser)
        .env("LK_TIMEOUT_MS", "75000")
        .envs(env.iter().copied());
    let done = run_bounded(
        &mut cmd,
        Duration::from_secs(90),
        &server.dir.path().join(format!("call-{room}.log")),
    );
    let context = format!(
        "node exit {:?} after {:?}\n---- livekit_call.mjs ----\n{}\n---- server ----\n{}",
        done.status,
        done.elapsed,
        tail(&done.output, 40),
        server.log_tail(40)
    );
    let line = done
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON verdict: {context}"));
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {context}"));
    assert_eq!(v["ok"], Value::Bool(true), "call failed: {context}");
    v
}

fn assert_media(v: &Value) {
    for who in ["alice", "bob"] {
        let m = &v["steps"][format!("media_{who}")];
        let (a, b) = (&m["first"], &m["later"]);
        assert!(
            b["video"]["framesDecoded"].as_u64() > a["video"]["framesDecoded"].as_u64(),
            "{who}: video frames not rising: {m}"
        );
        assert!(
            b["audio"]["packetsReceived"].as_u64() > a["audio"]["packetsReceived"].as_u64(),
            "{who}: audio packets not rising: {m}"
        );
        assert!(
            b["video"]["width"].as_u64().unwrap_or(0) > 0,
            "{who}: no frame size: {m}"
        );
    }
    assert_eq!(v["steps"]["data"], "alice:hello-over-sfu");
    assert_eq!(v["steps"]["mute"], "alice:video");
    assert_eq!(v["steps"]["unpublish"], "alice:audio");
    assert_eq!(v["steps"]["leave"], true);
    assert_eq!(
        v["steps"]["speaking"], true,
        "speakers_changed never named alice"
    );
}

#[test]
fn js_sdk_2_23_dual_pc_over_rtc() {
    let p = need!(peers("livekit-client"));
    let (v, server) = call(p, "false", "livekit-client", "dual-pc");
    assert_eq!(v["sdk"], "2.23.0");
    assert_media(&v);
    assert_eq!(server.sessions_on("/rtc"), 2, "{}", server.log_tail(20));
    assert_eq!(server.sessions_on("/rtc/v1"), 0);
}

/// The SDK's default: one peer connection over `/rtc/v1`, the first offer inside
/// `join_request`, media on the receive-only m-lines the client pre-creates (and more on
/// `media_sections_requirement`). The SDK would fall back to `/rtc` silently on a refusal,
/// so assert that `/rtc/v1` served both sessions and `/rtc` none.
#[test]
fn js_sdk_2_23_default_single_pc_over_rtc_v1() {
    let p = need!(peers("livekit-client"));
    let (v, server) = call(p, "default", "livekit-client", "default-2-23");
    assert_media(&v);
    assert_eq!(
        v["steps"]["transport_alice"],
        serde_json::json!(["udp"]),
        "{v}"
    );
    assert_eq!(server.sessions_on("/rtc/v1"), 2, "{}", server.log_tail(20));
    assert_eq!(server.sessions_on("/rtc"), 0);
}

/// Element Call's SDK version with its default options.
#[test]
fn js_sdk_2_21_element_call_version() {
    let p = need!(peers("livekit-client-2-21"));
    let (v, server) = call(p, "default", "livekit-client-2-21", "ec-2-21");
    assert_eq!(v["sdk"], "2.21.0");
    assert_media(&v);
    assert_eq!(server.sessions_on("/rtc/v1"), 2, "{}", server.log_tail(20));
    assert_eq!(server.sessions_on("/rtc"), 0);
}

/// Element Call's SDK version forced onto `/rtc` (what older embedded builds use).
#[test]
fn js_sdk_2_21_dual_pc_over_rtc() {
    let p = need!(peers("livekit-client-2-21"));
    let (v, server) = call(p, "false", "livekit-client-2-21", "ec-2-21-dual");
    assert_media(&v);
    assert_eq!(server.sessions_on("/rtc"), 2, "{}", server.log_tail(20));
    assert_eq!(server.sessions_on("/rtc/v1"), 0);
}

/// Simulcast layer choice: the subscriber asks for the low layer, then the high one
/// (UpdateTrackSettings); the decoded width follows both ways (the up-switch needs a keyframe
/// the SFU requests from the publisher).
#[test]
fn js_sdk_2_23_simulcast_layer_switch() {
    let p = need!(peers("livekit-client"));
    let (v, _server) = call_with(
        p,
        "default",
        "livekit-client",
        "layers",
        &[("LK_LAYERS", "1")],
    );
    assert_media(&v);
    let l = &v["steps"]["layers"];
    let (low, high) = (l["low"].as_u64().unwrap(), l["high"].as_u64().unwrap());
    assert!(low > 0 && low <= 320, "{l}");
    assert!(high > low, "{l}");
}

/// Dynacast: when bob watches only alice's low layer, the server's
/// `subscribed_quality_update` makes alice's browser stop encoding the other two (their
/// `RTCRtpEncodingParameters.active` turn false), and asking for the high layer turns them
/// back on. Element Call's SDK version, which Element Call runs with dynacast on.
#[test]
fn js_sdk_2_21_dynacast_pauses_unwatched_layers() {
    let p = need!(peers("livekit-client-2-21"));
    let (v, _server) = call_with(
        p,
        "default",
        "livekit-client-2-21",
        "dynacast",
        &[("LK_LAYERS", "1"), ("LK_DYNACAST", "1")],
    );
    assert_media(&v);
    let l = &v["steps"]["layers"];
    let on = |key: &str| {
        l[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {l}"))
            .iter()
            .filter(|e| e.as_str().unwrap().ends_with(":true"))
            .count()
    };
    assert_eq!((on("lowOnly"), on("all")), (1, 3), "{l}");
}

/// Element Call's room options (adaptiveStream + dynacast) with its SDK version: the SDK drives
/// layer choice and pausing from its <video> elements.
#[test]
fn js_sdk_2_21_element_call_room_options() {
    let p = need!(peers("livekit-client-2-21"));
    let (v, server) = call_with(
        p,
        "default",
        "livekit-client-2-21",
        "ec-adaptive",
        &[("LK_ADAPTIVE", "1")],
    );
    assert_media(&v);
    assert_eq!(server.sessions_on("/rtc/v1"), 2, "{}", server.log_tail(20));
}

/// A dropped signalling connection resumes (`reconnect=1&sid=` on `/rtc`, `join_request`
/// with `reconnect` on `/rtc/v1`) with the same participant sid, and media keeps flowing.
#[test]
fn js_sdk_2_23_signal_resume_on_both_paths() {
    for single_pc in ["true", "false"] {
        let p = need!(peers("livekit-client"));
        let room = format!("resume-{single_pc}");
        let (v, server) = call_with(p, single_pc, "livekit-client", &room, &[("LK_RESUME", "1")]);
        assert_media(&v);
        assert_eq!(
            v["steps"]["resume"]["sid"], v["steps"]["join_alice"]["sid"],
            "resume changed the participant sid"
        );
        assert!(
            server.log().contains("participant resumed"),
            "{}",
            server.log_tail(20)
        );
        let path = if single_pc == "true" {
            "/rtc/v1"
        } else {
            "/rtc"
        };
        assert_eq!(server.sessions_on(path), 3, "{}", server.log_tail(20));
    }
}

/// A server that offers only its passive ICE-TCP candidates (`--ice-tcp-only`, as when UDP is
/// blocked on the way): the whole call runs over TCP on the TCP port.
#[test]
fn js_sdk_2_23_ice_tcp_only() {
    let p = need!(peers("livekit-client"));
    // Two media threads, and a room created first so that the call's room lands on the
    // second: the first thread, which owns every TCP connection, hands the call's frames
    // to the other thread's hub and sends what that hub answers.
    let server = LivekitServer::start(&["--ice-tcp-only", "--media-threads", "2"])
        .unwrap_or_else(|s| panic!("server: {}", s.0));
    let admin = switchyard_tests::livekit::token(
        API_KEY,
        API_SECRET,
        "admin",
        serde_json::json!({"roomCreate": true}),
        60,
    );
    let (status, body) = switchyard_tests::livekit::twirp(
        &server,
        "CreateRoom",
        &admin,
        serde_json::json!({"name": "placeholder"}),
    );
    assert_eq!(status, 200, "{body}");
    let v = call_on(p, &server, "default", "livekit-client", "tcp-only", &[]);
    let log = server.plain_log();
    assert!(
        log.lines().any(|l| l.contains("room placed")
            && l.contains("tcp-only")
            && l.contains("media_thread=1")),
        "the call's room is not on the second media thread:\n{log}"
    );
    assert_media(&v);
    for who in ["alice", "bob"] {
        assert_eq!(
            v["steps"][format!("transport_{who}")],
            serde_json::json!(["tcp"]),
            "{who} did not use ICE-TCP: {v}"
        );
    }
}
