//! `switchyard loadgen sfu` against `switchyard livekit`: synthetic LiveKit participants
//! (str0m peers over `/rtc`) publish audio and video through the SFU, and the loadgen's
//! `--kv` line reports what came through; a wrong API secret fails the run clearly.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use switchyard_tests::livekit::{API_KEY, API_SECRET, LivekitServer};
use switchyard_tests::process::{Finished, run_bounded, tail};
use switchyard_tests::server::locate_switchyard;
use switchyard_tests::{Need, need};

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

/// Subscribers of one run join a call that another run publishes into: the send stamps
/// mean the same to both, so the late run measures the call's media (a run with its own
/// clock would see nothing inside its window).
#[test]
fn late_joiners_measure_a_call_another_run_publishes() {
    let mut server = need!(LivekitServer::start(&[]));
    let common = ["--api-secret", API_SECRET, "--room", "late", "--kv"];
    let (meeting, late) = std::thread::scope(|s| {
        let meeting = s.spawn(|| {
            let mut args = common.to_vec();
            args.extend(["--publishers", "2", "--subscribers", "0"]);
            args.extend(["--video-kbps", "300", "--duration", "6"]);
            loadgen(&server, "loadgen-meeting", &args)
        });
        // The meeting's publishers are in and sending once its join and settle phases end.
        std::thread::sleep(Duration::from_millis(2500));
        let mut args = common.to_vec();
        args.extend([
            "--publishers",
            "0",
            "--subscribers",
            "2",
            "--join-rate",
            "5",
        ]);
        args.extend(["--duration", "1.5"]);
        let late = loadgen(&server, "loadgen-late", &args);
        (meeting.join().expect("meeting thread"), late)
    });
    let context = format!(
        "late: exit {:?}
{}
---- meeting: exit {:?}
{}
---- server ----
{}",
        late.status,
        tail(&late.output, 20),
        meeting.status,
        tail(&meeting.output, 10),
        server.log_tail(30)
    );
    assert!(meeting.success() && late.success(), "{context}");
    let kv = kv(&late.output);
    assert_eq!(num(&kv, "connected"), 2.0, "{context}");
    assert_eq!(num(&kv, "pubs"), 0.0, "{context}");
    // Two publishers' audio (50 pps) and video (60 pps) to each of two late subscribers.
    let fwd = num(&kv, "fwd_pps");
    assert!(fwd > 300.0, "late joiners measured {fwd} pps: {context}");
    let (p50, p99) = (num(&kv, "lat_p50_ms"), num(&kv, "lat_p99_ms"));
    assert!(
        p50 > 0.0 && p99 < 1000.0,
        "latency p50 {p50} p99 {p99} ms: {context}"
    );
    let first = num(&kv, "first_pkt_p99_ms");
    assert!(
        first > 0.0 && first < 5000.0,
        "first packet p99 {first} ms: {context}"
    );
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
    let expect = |text: &str, want: &[(&str, f64)]| {
        for (series, value) in want {
            assert_eq!(sample(text, series), *value, "{series} in\n{text}");
        }
    };
    expect(
        &during,
        &[
            ("livekit_room_total", 1.0),
            ("livekit_participant_total", 3.0),
            ("livekit_track_published_total{kind=\"video\"}", 2.0),
            ("livekit_track_published_total{kind=\"audio\"}", 2.0),
            // Two publishers' two tracks to the other two participants each.
            ("livekit_track_subscribed_total", 8.0),
            // Every participant's receiving connection has a bandwidth estimate.
            ("switchyard_sfu_bandwidth_estimated_connections", 3.0),
        ],
    );
    assert!(sample(&during, "livekit_packet_total{direction=\"outgoing\"}") > 500.0);
    // Keyframe requests went to the publishers when the subscribers started.
    assert!(
        sample(&during, "switchyard_sfu_bandwidth_estimate_bits_per_second") > 100_000.0,
        "{during}"
    );
    assert!(
        sample(&during, "livekit_pli_total{direction=\"outgoing\"}") >= 1.0,
        "{during}"
    );
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
    expect(
        &after,
        &[
            ("livekit_participant_total", 0.0),
            ("livekit_track_subscribed_total", 0.0),
            ("livekit_track_published_total{kind=\"video\"}", 0.0),
        ],
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

/// A server with `/metrics` on a port of its own and `config` (livekit.yaml lines) before it.
fn server_with_metrics(config: &str) -> Need<(LivekitServer, std::net::SocketAddr)> {
    let p = switchyard_tests::ports::allocate();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], p.relay_min));
    let body = format!("{config}prometheus:\n  port: {}\n", p.relay_min);
    let server = LivekitServer::start(&["--config-body", &body])?;
    Ok((server, metrics))
}

fn ingress_dropped(metrics: std::net::SocketAddr) -> f64 {
    let text = switchyard_tests::metrics::scrape(metrics);
    switchyard_tests::metrics::sample(
        &text,
        "switchyard_sfu_dropped_packets_total{reason=\"ingress_limit\"}",
    )
    .unwrap_or_else(|| panic!("no ingress_limit drop counter in:\n{text}"))
}

/// A publisher flooding at five times its connection's ingress limit is cut to the limit
/// (what reaches the others stays under it, the drops are counted under
/// `reason="ingress_limit"` and logged once), while the room's real publisher reaches
/// every subscriber without loss.
///
/// The limit is lowered to 4 Mbit/s (`rtc.ingress_limit_kbps`) so that a flood well above
/// it (20 Mbit/s) is cheap enough for the loadgen and the server to share two cores; at
/// the 25 Mbit/s default the flooder would need over 100 Mbit/s to prove the same.
#[test]
fn a_flooding_publisher_is_limited_and_the_room_is_unharmed() {
    let (mut server, metrics) = need!(server_with_metrics("rtc:\n  ingress_limit_kbps: 4000\n"));
    assert_eq!(ingress_dropped(metrics), 0.0);
    let done = loadgen(
        &server,
        "loadgen-flood",
        &[
            "--api-secret",
            API_SECRET,
            "--publishers",
            "1",
            "--subscribers",
            "3",
            "--video-kbps",
            "500",
            "--flood-mbps",
            "20",
            "--duration",
            "3",
            "--kv",
        ],
    );
    let dropped = ingress_dropped(metrics);
    let context = format!(
        "exit {:?} after {:?}, {dropped} dropped for the ingress limit\n---- loadgen ----\n{}\n---- server ----\n{}",
        done.status,
        done.elapsed,
        tail(&done.output, 30),
        server.log_tail(30)
    );
    assert!(done.success(), "loadgen failed: {context}");
    eprintln!(
        "{}\n{dropped} dropped for the ingress limit",
        tail(&done.output, 12)
    );
    let kv = kv(&done.output);
    assert_eq!(num(&kv, "connected"), 5.0, "{context}");
    assert_eq!(num(&kv, "failed"), 0.0, "{context}");
    // The flooder really offered far more than the limit...
    let offered = num(&kv, "flood_offered_mbps");
    assert!(
        offered > 12.0,
        "the flooder offered only {offered} Mbit/s: {context}"
    );
    // ...and what reached the others (payload) stayed under it, though some did.
    let through = num(&kv, "flood_through_mbps");
    assert!(
        through > 0.5 && through < 4.0,
        "{through} Mbit/s of the flood got through a 4 Mbit/s limit: {context}"
    );
    assert!(dropped > 1000.0, "{context}");
    // One log line for the episode, not one per packet.
    let log = server.log();
    assert_eq!(
        log.matches("exceeds the ingress limit").count(),
        1,
        "{context}"
    );
    // The real publisher's 50 audio + ~63 video packets/s reach all three subscribers.
    let loss = num(&kv, "loss_pct");
    assert!(loss < 1.0, "loss {loss} %: {context}");
    let fwd = num(&kv, "fwd_pps");
    assert!(fwd > 250.0, "forwarded only {fwd} pps: {context}");
    server.assert_alive();
}

/// Subscribers that stop reading their socket and stop sending any RTCP once media flows
/// (their signalling stays up, so the server keeps sending to them) cost the others
/// nothing: no loss, loopback latency. With the default ingress limit, an ordinary
/// publisher is never cut.
#[test]
fn stalled_subscribers_harm_no_one() {
    let (mut server, metrics) = need!(server_with_metrics(""));
    let done = loadgen(
        &server,
        "loadgen-stalled",
        &[
            "--api-secret",
            API_SECRET,
            "--publishers",
            "1",
            "--subscribers",
            "3",
            "--stalled-subscribers",
            "4",
            "--video-kbps",
            "1000",
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
    eprintln!("{}", tail(&done.output, 12));
    let kv = kv(&done.output);
    assert_eq!(num(&kv, "failed"), 0.0, "{context}");
    // Every stalled subscriber got media, then stopped: the room really had dead ends.
    assert_eq!(num(&kv, "stalled"), 4.0, "{context}");
    let loss = num(&kv, "loss_pct");
    assert!(loss < 1.0, "loss {loss} %: {context}");
    // 50 audio + 125 video packets/s to each of the three measured subscribers.
    let fwd = num(&kv, "fwd_pps");
    assert!(fwd > 400.0, "forwarded only {fwd} pps: {context}");
    let p99 = num(&kv, "lat_p99_ms");
    assert!(
        p99 < 100.0,
        "one-way latency p99 {p99} ms on loopback: {context}"
    );
    assert_eq!(ingress_dropped(metrics), 0.0, "{context}");
    server.assert_alive();
}

/// A small call for 4 s: one publisher (audio + 300 kbit/s video) and two subscribers,
/// with the `--kv` summary.
fn small_call(server: &LivekitServer, name: &str, extra: &[&str]) -> Finished {
    let mut args = vec![
        "--api-secret",
        API_SECRET,
        "--publishers",
        "1",
        "--subscribers",
        "2",
        "--video-kbps",
        "300",
        "--duration",
        "4",
        "--kv",
    ];
    args.extend_from_slice(extra);
    loadgen(server, name, &args)
}

/// `--media-threads 3`: three calls at once land on three media threads (each its own hub
/// and socket on the one UDP port), and every call's media arrives whole. The kernel spreads
/// clients over the threads' sockets by address, so most datagrams reach a thread whose
/// hub does not hold their room and are handed over by the ICE ufrag's tag.
#[test]
fn calls_spread_over_media_threads() {
    let p = switchyard_tests::ports::allocate();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], p.relay_min));
    let server = need!(LivekitServer::start(&[
        "--media-threads",
        "3",
        "--config-body",
        &format!("prometheus:\n  port: {}\n", p.relay_min),
    ]));
    let rooms = ["spread-a", "spread-b", "spread-c"];
    let (runs, during) = std::thread::scope(|s| {
        let calls: Vec<_> = rooms
            .iter()
            .map(|room| {
                let server = &server;
                s.spawn(move || small_call(server, room, &["--room", room]))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2500));
        let during = switchyard_tests::metrics::scrape(metrics);
        let runs: Vec<Finished> = calls.into_iter().map(|c| c.join().unwrap()).collect();
        (runs, during)
    });
    let log = server.plain_log();
    for (room, done) in rooms.iter().zip(&runs) {
        let context = format!(
            "{room}: exit {:?}\n---- loadgen ----\n{}\n---- server ----\n{}",
            done.status,
            tail(&done.output, 20),
            server.log_tail(40)
        );
        assert!(done.success(), "loadgen failed: {context}");
        let kv = kv(&done.output);
        assert_eq!(num(&kv, "connected"), 3.0, "{context}");
        // 50 audio + 60 video packets/s to each of two subscribers.
        assert!(num(&kv, "fwd_pps") > 150.0, "{context}");
        assert!(num(&kv, "loss_pct") < 2.0, "{context}");
    }
    let threads: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains("room placed") && l.contains("spread-"))
        .filter_map(|l| l.split("media_thread=").nth(1))
        .filter_map(|t| t.split_whitespace().next())
        .collect();
    assert_eq!(threads.len(), 3, "rooms not spread: {log}");
    assert_eq!(
        switchyard_tests::metrics::sample(&during, "livekit_room_total"),
        Some(3.0),
        "{during}"
    );
    assert_eq!(
        switchyard_tests::metrics::sample(&during, "livekit_participant_total"),
        Some(9.0),
        "{during}"
    );
}

/// Junk from unknown addresses at the media port (RTP-looking datagrams from 64 source
/// ports, and STUN checks naming no connection) while a call runs on a two-thread server:
/// every junk datagram is dropped as unclaimed, the call loses nothing, and the server
/// lives. The RTP-looking half is what a thread may offer to the other thread's hub when
/// it cannot tell whose it is; that is budgeted, so a flood cannot make one thread lock
/// another's rooms for every datagram.
#[test]
fn junk_at_the_media_port_harms_no_call() {
    let p = switchyard_tests::ports::allocate();
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], p.relay_min));
    let mut server = need!(LivekitServer::start(&[
        "--media-threads",
        "2",
        "--config-body",
        &format!("prometheus:\n  port: {}\n", p.relay_min),
    ]));
    let unclaimed = || {
        let text = switchyard_tests::metrics::scrape(metrics);
        switchyard_tests::metrics::sample(
            &text,
            "switchyard_sfu_dropped_packets_total{reason=\"unclaimed\"}",
        )
        .unwrap_or_else(|| panic!("no unclaimed drop counter in:\n{text}"))
    };
    let before = unclaimed();
    let media = std::net::SocketAddr::from(([127, 0, 0, 1], server.udp_port));
    let (done, sent) = std::thread::scope(|s| {
        let call = s.spawn(|| small_call(&server, "loadgen-junk", &[]));
        // Once the call is up: from 64 sockets, a round of 400 datagrams every 100 ms for
        // 2.5 s (about 4,000 datagrams/s, above the 1,000/s a thread may offer to other
        // hubs), half RTP-looking, half STUN Binding requests naming no router's ufrag.
        std::thread::sleep(Duration::from_millis(1000));
        let sockets: Vec<std::net::UdpSocket> = (0..64)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let mut rtp = [0u8; 200];
        rtp[0] = 0x80;
        rtp[1] = 96;
        let stun = stun_check_for("zzzzzzzzzzzzzzzz");
        let mut sent = 0u64;
        for round in 0..25 {
            for i in 0..400 {
                let sock = &sockets[(round * 400 + i) % sockets.len()];
                rtp[2..4].copy_from_slice(&(sent as u16).to_be_bytes());
                let d: &[u8] = if i % 2 == 0 { &rtp } else { &stun };
                if sock.send_to(d, media).is_ok() {
                    sent += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (call.join().unwrap(), sent)
    });
    let dropped = unclaimed() - before;
    let context = format!(
        "exit {:?}, {sent} junk sent, {dropped} dropped as unclaimed\n---- loadgen ----\n{}\n---- server ----\n{}",
        done.status,
        tail(&done.output, 20),
        server.log_tail(30)
    );
    assert!(done.success(), "loadgen failed: {context}");
    eprintln!("{sent} junk datagrams sent, {dropped} dropped as unclaimed");
    let kv = kv(&done.output);
    assert_eq!(num(&kv, "connected"), 3.0, "{context}");
    assert!(num(&kv, "loss_pct") < 1.0, "{context}");
    assert!(num(&kv, "fwd_pps") > 150.0, "{context}");
    // Every junk datagram the kernel delivered was counted and dropped.
    assert!(
        dropped >= sent as f64 * 0.9 && dropped <= sent as f64 + 100.0,
        "{context}"
    );
    server.assert_alive();
}

/// A STUN Binding request whose USERNAME is `ufrag:theirs` (RFC 8445 §7.2.2), unsigned.
fn stun_check_for(ufrag: &str) -> Vec<u8> {
    let user = format!("{ufrag}:theirs");
    let pad = (4 - user.len() % 4) % 4;
    let attr_len = 4 + user.len() + pad;
    let mut m = Vec::with_capacity(20 + attr_len);
    m.extend_from_slice(&0x0001u16.to_be_bytes());
    m.extend_from_slice(&(attr_len as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&0x0006u16.to_be_bytes());
    m.extend_from_slice(&(user.len() as u16).to_be_bytes());
    m.extend_from_slice(user.as_bytes());
    m.extend(std::iter::repeat_n(0, pad));
    m
}
