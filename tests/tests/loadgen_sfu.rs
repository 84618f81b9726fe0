//! `switchyard loadgen sfu` against `switchyard livekit`: synthetic LiveKit participants
//! (str0m peers over `/rtc`) publish audio and video through the SFU, and the loadgen's
//! `--kv` line reports what came through; a wrong API secret fails the run clearly.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use switchyard_tests::livekit::{API_KEY, API_SECRET, LivekitServer};
use switchyard_tests::need;
use switchyard_tests::process::{Finished, run_bounded, tail};
use switchyard_tests::server::locate_switchyard;

fn loadgen(server: &LivekitServer, name: &str, extra: &[&str]) -> Finished {
    let bin = locate_switchyard().expect("switchyard binary");
    let mut cmd = Command::new(bin);
    cmd.args(["loadgen", "sfu", "--quiet", "--url", &server.ws_url()])
        .args(["--api-key", API_KEY])
        .args(extra);
    run_bounded(
        &mut cmd,
        Duration::from_secs(60),
        &server.dir.path().join(format!("{name}.log")),
    )
}

fn kv(output: &str) -> HashMap<String, String> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("kv "))
        .unwrap_or_else(|| panic!("no kv line in:\n{output}"))
        .split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num(kv: &HashMap<String, String>, key: &str) -> f64 {
    kv.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("kv has no numeric {key}: {kv:?}"))
}

#[test]
fn two_publishers_two_subscribers_video() {
    let mut server = need!(LivekitServer::start(&[]));
    let done = loadgen(
        &server,
        "loadgen-2x2",
        &[
            "--api-secret",
            API_SECRET,
            "--publishers",
            "2",
            "--subscribers",
            "2",
            "--video-kbps",
            "300",
            "--duration",
            "3",
            "--kv",
        ],
    );
    let context = format!(
        "exit {:?} after {:?}\n---- loadgen ----\n{}\n---- server ----\n{}",
        done.status,
        done.elapsed,
        tail(&done.output, 30),
        server.log_tail(30)
    );
    assert!(done.success(), "loadgen failed: {context}");
    let kv = kv(&done.output);
    assert_eq!(num(&kv, "connected"), 4.0, "{context}");
    assert_eq!(num(&kv, "failed"), 0.0, "{context}");
    // Each publisher sends 50 audio + 60 video (300 kbps in ~625-byte packets) packets/s;
    // three others receive each: 660 pps in all. Demand most of it.
    let fwd = num(&kv, "fwd_pps");
    assert!(fwd > 450.0, "forwarded only {fwd} pps: {context}");
    let loss = num(&kv, "loss_pct");
    assert!(loss < 2.0, "loss {loss} %: {context}");
    let first = num(&kv, "first_pkt_p99_ms");
    assert!(
        first > 0.0 && first < 5000.0,
        "first packet p99 {first} ms: {context}"
    );
    assert!(num(&kv, "join_p50_ms") > 0.0, "{context}");
    server.assert_alive();
}

#[test]
fn wrong_api_secret_fails_clearly() {
    let server = need!(LivekitServer::start(&[]));
    let done = loadgen(
        &server,
        "loadgen-badsecret",
        &[
            "--api-secret",
            "not-the-secret-not-the-secret-not-the-secret",
            "--publishers",
            "1",
            "--subscribers",
            "1",
            "--duration",
            "1",
        ],
    );
    assert!(
        !done.timed_out(),
        "loadgen hung: {}",
        tail(&done.output, 20)
    );
    assert!(
        !done.success(),
        "loadgen succeeded with a wrong secret:\n{}",
        done.output
    );
    assert!(
        done.output.contains("401") && done.output.contains("--api-secret"),
        "no clear error:\n{}",
        done.output
    );
}
