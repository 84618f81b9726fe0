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

/// `prometheus.port`: while a loadgen call runs, the room, participants and tracks show up
/// under livekit-server's metric names and the packet counters move; when everyone has
/// left, the participant and track gauges are back at zero (nothing leaked).
#[test]
fn metrics_follow_a_call_and_return_to_zero() {
    let p = switchyard_tests::ports::allocate();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], p.relay_min));
    let port = p.relay_min.to_string();
    let server = need!(LivekitServer::start(&[
        "--config-body",
        &format!("prometheus:\n  port: {port}\n")
    ]));
    let scrape = || switchyard_tests::metrics::scrape(metrics);
    let sample = |text: &str, series: &str| {
        switchyard_tests::metrics::sample(text, series)
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    let before = scrape();
    assert_eq!(sample(&before, "livekit_participant_total"), 0.0);
    let run = std::thread::scope(|s| {
        let call = s.spawn(|| {
            loadgen(
                &server,
                "loadgen-metrics",
                &[
                    "--api-secret",
                    API_SECRET,
                    "--publishers",
                    "2",
                    "--subscribers",
                    "1",
                    "--video-kbps",
                    "300",
                    "--duration",
                    "4",
                    "--room",
                    "metrics-room",
                ],
            )
        });
        // Mid-call: joins take well under a second, the window is four.
        std::thread::sleep(Duration::from_millis(2500));
        let during = scrape();
        (call.join().unwrap(), during)
    });
    let (done, during) = run;
    assert!(
        done.success(),
        "loadgen failed:\n{}",
        tail(&done.output, 20)
    );
    assert_eq!(sample(&during, "livekit_room_total"), 1.0, "{during}");
    assert_eq!(
        sample(&during, "livekit_participant_total"),
        3.0,
        "{during}"
    );
    assert_eq!(
        sample(&during, "livekit_track_published_total{kind=\"video\"}"),
        2.0,
        "{during}"
    );
    assert_eq!(
        sample(&during, "livekit_track_published_total{kind=\"audio\"}"),
        2.0,
        "{during}"
    );
    // Two publishers' two tracks to the other two participants each.
    assert_eq!(
        sample(&during, "livekit_track_subscribed_total"),
        8.0,
        "{during}"
    );
    assert!(sample(&during, "livekit_packet_total{direction=\"outgoing\"}") > 500.0);
    // After the call: gauges back to zero; counters only grew.
    // A participant whose leave did not get out (a busy machine) is dropped after the
    // 10 s resume grace instead: wait that long.
    let mut after = scrape();
    for _ in 0..150 {
        if sample(&after, "livekit_participant_total") == 0.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        after = scrape();
    }
    assert_eq!(sample(&after, "livekit_participant_total"), 0.0, "{after}");
    assert_eq!(
        sample(&after, "livekit_track_subscribed_total"),
        0.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "livekit_track_published_total{kind=\"video\"}"),
        0.0
    );
    let incoming = |t: &str| sample(t, "livekit_packet_total{direction=\"incoming\"}");
    assert!(incoming(&after) >= incoming(&during));
    assert!(sample(&after, "livekit_packet_bytes_total{direction=\"incoming\"}") > 100_000.0);
    // Every metric the Grafana dashboard queries is one the server exports.
    let gaps = switchyard_tests::metrics::dashboard_gaps("switchyard-livekit.json", &after, 10);
    assert!(
        gaps.is_empty(),
        "dashboard queries unexported metrics: {gaps:?}"
    );
}
