//! The relay as operators run it: the Prometheus endpoint and the Grafana dashboard's
//! queries, `max-bps` / `bps-capacity` measured end to end with the load generator,
//! `SIGHUP` reloads under load (the faults test), and `proc-user`. Switchyard only.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_tests::metrics::{self, sample, scrape};
use switchyard_tests::need;
use switchyard_tests::process::run_bounded;
use switchyard_tests::server::{ServerKind, ServerOptions, TestServer};

fn switchyard() -> Option<std::path::PathBuf> {
    match ServerKind::from_env() {
        Ok(ServerKind::Switchyard(p)) => Some(p),
        Ok(ServerKind::Coturn(_)) => {
            eprintln!("skipped: these tests are about the switchyard binary");
            None
        }
        Err(skip) => {
            skip.report();
            None
        }
    }
}

fn start(extra: &[&str]) -> TestServer {
    TestServer::start(ServerOptions {
        prometheus: true,
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..ServerOptions::default()
    })
    .unwrap_or_else(|skip| panic!("{}", skip.0))
}

/// What `switchyard loadgen turn --kv` reported.
struct LoadReport {
    ok: bool,
    output: String,
    kv: HashMap<String, String>,
}

impl LoadReport {
    fn num(&self, key: &str) -> f64 {
        self.kv
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in loadgen output:\n{}", self.output))
    }
}

/// A load generator run: allocations, payload bytes, packets/s in total, seconds.
#[derive(Clone, Copy)]
struct Load {
    allocations: usize,
    size: usize,
    rate: u64,
    secs: f64,
}

const fn load(allocations: usize, size: usize, rate: u64, secs: f64) -> Load {
    Load {
        allocations,
        size,
        rate,
        secs,
    }
}

/// Runs the load generator in relay mode against `server` (bounded by a timeout).
fn loadgen(bin: &Path, server: &TestServer, secret: &str, l: Load, name: &str) -> LoadReport {
    let Load {
        allocations,
        size,
        rate,
        secs,
    } = l;
    let log = server.dir.join(&format!("loadgen-{name}.log"));
    let mut cmd = Command::new(bin);
    cmd.args(["loadgen", "turn", "--mode", "relay", "--kv", "--quiet"])
        .arg(format!("--server={}", server.udp_addr()))
        .arg(format!("--secret={secret}"))
        .arg(format!("--allocations={allocations}"))
        .arg(format!("--size={size}"))
        .arg(format!("--rate={rate}"))
        .arg(format!("--duration={secs}"))
        .arg(format!("--user=@{name}:example.org"));
    let done = run_bounded(&mut cmd, Duration::from_secs_f64(secs + 30.0), &log);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let kv = output
        .lines()
        .filter_map(|l| l.strip_prefix("kv "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LoadReport {
        ok: done.success(),
        output,
        kv,
    }
}

fn signal(server: &TestServer, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig}");
}

fn allocations(server: &TestServer) -> f64 {
    sample(
        &scrape(server.metrics_addr()),
        "switchyard_turn_allocations",
    )
    .expect("switchyard_turn_allocations exported")
}

/// Waits until `/metrics` shows `n` allocations (workers publish every 100 ms).
fn wait_allocations(server: &TestServer, n: f64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if allocations(server) == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn metrics_health_and_every_dashboard_query_is_exported() {
    let Some(bin) = switchyard() else { return };
    let server = start(&[]);
    let addr = server.metrics_addr();
    // Health: coturn's `GET /` → 200 "ok", liveness, readiness; other methods 405.
    assert_eq!(metrics::get(addr, "/"), (200, "ok\n".to_string()));
    assert_eq!(metrics::get(addr, "/healthz").0, 200);
    assert_eq!(metrics::get(addr, "/readyz"), (200, "ready\n".to_string()));
    assert_eq!(metrics::get(addr, "/nothing").0, 404);

    let before = scrape(addr);
    assert_eq!(sample(&before, "turn_total_traffic_peer_sentp"), Some(0.0));

    // coturn's Binding counters: one answered Binding, one refused with 420 (an unknown
    // comprehension-required attribute).
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let (ok, tid) = switchyard_tests::stun::binding_request();
    sock.send_to(&ok, server.udp_addr()).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).expect("Binding answered");
    assert!(switchyard_tests::stun::parse_binding_success(&buf[..n], &tid).is_some());
    let (req, _) = switchyard_tests::stun::binding_request();
    let mut bad = req.to_vec();
    bad[3] = 8; // length: one 4-byte attribute
    bad.extend_from_slice(&[0x7f, 0x01, 0x00, 0x04, 0, 0, 0, 0]);
    sock.send_to(&bad, server.udp_addr()).unwrap();
    let (n, _) = sock.recv_from(&mut buf).expect("420 answered");
    assert_eq!(
        u16::from_be_bytes([buf[0], buf[1]]),
        0x0111,
        "{:02x?}",
        &buf[..n]
    );
    // Workers publish every 100 ms.
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(addr);
    // (The harness's readiness probe is a Binding too: count from `before`.)
    for (name, added) in [
        ("stun_binding_request", 2.0),
        ("stun_binding_response", 1.0),
        ("stun_binding_error", 1.0),
    ] {
        let was = sample(&before, name).unwrap_or(0.0);
        assert_eq!(sample(&text, name), Some(was + added), "{name}");
    }
    let run = loadgen(
        &bin,
        &server,
        server.secret(),
        load(2, 200, 400, 1.0),
        "metrics",
    );
    assert!(run.ok, "{}", run.output);
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(addr);
    let relayed = run.num("relayed");
    let to_peers = sample(&text, "turn_total_traffic_peer_sentp").unwrap();
    assert!(
        relayed > 0.0 && to_peers >= relayed,
        "{to_peers} < {relayed}"
    );
    assert_eq!(
        sample(&text, "turn_total_traffic_peer_sentb"),
        Some(to_peers * 200.0)
    );
    assert_eq!(
        sample(&text, "turn_traffic_peer_sentp{realm=\"switchyard.test\"}"),
        Some(to_peers)
    );
    assert!(sample(&text, "turn_total_traffic_rcvp").unwrap() > to_peers);
    assert_eq!(
        sample(&text, "switchyard_turn_allocations_created_total"),
        Some(2.0)
    );
    // The load generator released both: the live gauges are back to zero.
    assert_eq!(sample(&text, "switchyard_turn_allocations"), Some(0.0));
    assert_eq!(
        sample(&text, "turn_total_allocations{type=\"UDP\"}"),
        Some(0.0)
    );
    // 401 challenges before each Allocate are counted by code.
    assert!(sample(&text, "switchyard_turn_errors_total{code=\"401\"}").unwrap() >= 2.0);
    assert!(sample(&text, "switchyard_turn_recv_batch_size_count{worker=\"0\"}").is_some());

    // Every metric the Grafana dashboard queries is one the server exports.
    let gaps = metrics::dashboard_gaps("switchyard-turn.json", &text, 8);
    assert!(
        gaps.is_empty(),
        "dashboard queries unexported metrics: {gaps:?}"
    );
}

/// Relayed packets over `secs` for a bucket of `rate` B/s that starts with a quarter second.
fn expected_packets(rate: f64, secs: f64, size: f64) -> f64 {
    (rate * secs + rate / 4.0) / size
}

#[test]
fn max_bps_limits_each_allocation_end_to_end() {
    let Some(bin) = switchyard() else { return };
    let server = start(&["max-bps=100000"]);
    // 4 allocations × 250 packets/s × 1000 B = 250 kB/s each, 2.5× the limit, for 3 s.
    let run = loadgen(
        &bin,
        &server,
        server.secret(),
        load(4, 1000, 1000, 3.0),
        "maxbps",
    );
    assert!(run.ok, "{}", run.output);
    let (sent, relayed) = (run.num("sent"), run.num("relayed"));
    let want = 4.0 * expected_packets(100_000.0, 3.0, 1000.0);
    eprintln!(
        "max-bps=100000 B/s × 4 allocations: sent {sent}, relayed {relayed} (expected ≈ {want:.0}), \
         {:.0} B/s per allocation over 3 s",
        relayed * 1000.0 / 4.0 / 3.0
    );
    assert!(
        sent >= 2.0 * want,
        "the load generator did not exceed the limit: {sent}"
    );
    assert!(
        (relayed - want).abs() <= want * 0.10,
        "relayed {relayed} packets, expected {want:.0} ± 10 %"
    );
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(server.metrics_addr());
    let dropped = sample(&text, "switchyard_turn_drops_total{reason=\"max_bps\"}").unwrap();
    assert!(
        (dropped - (sent - relayed)).abs() <= 0.01 * sent + 2.0,
        "max_bps drops {dropped} vs sent − relayed {}",
        sent - relayed
    );
}

#[test]
fn bps_capacity_limits_the_whole_server_end_to_end() {
    let Some(bin) = switchyard() else { return };
    let server = start(&["bps-capacity=200000", "relay-threads=2"]);
    let run = loadgen(
        &bin,
        &server,
        server.secret(),
        load(4, 1000, 1000, 3.0),
        "capacity",
    );
    assert!(run.ok, "{}", run.output);
    let (sent, relayed) = (run.num("sent"), run.num("relayed"));
    let want = expected_packets(200_000.0, 3.0, 1000.0);
    eprintln!(
        "bps-capacity=200000 B/s, 2 workers: sent {sent}, relayed {relayed} (expected ≈ {want:.0}), \
         {:.0} B/s in total over 3 s",
        relayed * 1000.0 / 3.0
    );
    assert!(
        (relayed - want).abs() <= want * 0.10,
        "relayed {relayed} packets, expected {want:.0} ± 10 %"
    );
    let text = scrape(server.metrics_addr());
    assert!(
        sample(
            &text,
            "switchyard_turn_drops_total{reason=\"bps_capacity\"}"
        )
        .unwrap()
            > 0.0
    );
}

/// Issue 5's faults test: the load generator relays while the configuration is reloaded 20
/// times (secrets rotated, peer policy and limits changed, one broken config in between);
/// no allocation is lost and loss stays under 0.1 %.
#[test]
fn twenty_sighups_under_load_keep_allocations_and_lose_nothing() {
    let Some(bin) = switchyard() else { return };
    let server = start(&[]);
    let base = std::fs::read_to_string(&server.conf).unwrap();
    const ALLOCATIONS: usize = 16;
    let load = {
        let bin = bin.clone();
        let secret = server.secret().to_string();
        // Borrowing `server` across threads: run the generator with its own copy of what
        // it needs.
        let addr = server.udp_addr();
        let dir = server.dir.path().to_path_buf();
        std::thread::spawn(move || {
            let log = dir.join("loadgen-faults.log");
            let mut cmd = Command::new(&bin);
            cmd.args(["loadgen", "turn", "--mode", "relay", "--kv", "--quiet"])
                .arg(format!("--server={addr}"))
                .arg(format!("--secret={secret}"))
                .arg(format!("--allocations={ALLOCATIONS}"))
                .args(["--size=200", "--rate=1000", "--duration=6"]);
            let done = run_bounded(&mut cmd, Duration::from_secs(40), &log);
            (
                done.success(),
                std::fs::read_to_string(&log).unwrap_or_default(),
            )
        })
    };
    assert!(
        wait_allocations(&server, ALLOCATIONS as f64, Duration::from_secs(15)),
        "the load generator's allocations never showed up in /metrics"
    );
    let variants = [
        // Secret rotation: the old one stays listed, so running clients keep working.
        format!("{base}static-auth-secret=rotated-secret-2\n"),
        format!("{base}denied-peer-ip=10.0.0.0-10.255.255.255\nuser-quota=100\n"),
        format!("{base}max-bps=10000000\ntotal-quota=1000\n"),
        base.clone(),
    ];
    for i in 0..20 {
        let text = if i == 9 {
            // A broken config: the reload fails and the old one keeps running.
            format!("{base}listening-port=not-a-port\n")
        } else {
            variants[i % variants.len()].clone()
        };
        std::fs::write(&server.conf, text).unwrap();
        signal(&server, "HUP");
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(
            allocations(&server),
            ALLOCATIONS as f64,
            "allocation count changed after SIGHUP #{}",
            i + 1
        );
    }
    std::fs::write(&server.conf, &base).unwrap();
    let (ok, output) = load.join().unwrap();
    assert!(ok, "{output}");
    let kv: HashMap<&str, &str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("kv "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let loss: f64 = kv["loss_pct"].parse().unwrap();
    let sent: f64 = kv["sent"].parse().unwrap();
    eprintln!("20 × SIGHUP under load: sent {sent}, loss {loss} %");
    assert!(sent >= 4000.0, "{output}");
    assert!(loss < 0.1, "loss {loss} % over 20 reloads:\n{output}");

    let log = server.log();
    assert_eq!(
        log.matches("configuration reloaded").count(),
        19,
        "{}",
        server.log_tail(60)
    );
    let conf = server.conf.display().to_string();
    assert!(
        log.contains("reload failed, the running configuration stays")
            && log.contains(&format!("{conf}:"))
            && log.contains("listening-port: `not-a-port`"),
        "the failed reload is logged with file:line: key:\n{}",
        server.log_tail(60)
    );
}

#[test]
fn sighup_rotates_credentials_and_sigusr2_reloads_certificates() {
    let Some(bin) = switchyard() else { return };
    let mut server = start(&[]);
    let old = server.secret().to_string();
    assert!(loadgen(&bin, &server, &old, load(1, 100, 100, 0.3), "before").ok);
    let conf = std::fs::read_to_string(&server.conf).unwrap().replace(
        &format!("static-auth-secret={old}"),
        "static-auth-secret=brand-new",
    );
    // A listener option changed too: it needs a restart, which the reload says; the rest
    // is applied and the old listener keeps serving.
    let port = server.ports.listen;
    let conf = conf.replace(
        &format!("listening-port={port}"),
        &format!("listening-port={}", port + 3),
    );
    std::fs::write(&server.conf, conf).unwrap();
    signal(&server, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    let refused = loadgen(&bin, &server, &old, load(1, 100, 100, 0.3), "old");
    assert!(
        !refused.ok,
        "the removed secret still works:\n{}",
        refused.output
    );
    let accepted = loadgen(&bin, &server, "brand-new", load(1, 100, 100, 0.3), "new");
    assert!(accepted.ok, "{}", accepted.output);
    let log = server.log();
    assert!(
        log.contains("only take effect after a restart") && log.contains("listening-port"),
        "{}",
        server.log_tail(20)
    );
    signal(&server, "USR2");
    std::thread::sleep(Duration::from_millis(300));
    server.assert_alive();
    assert!(
        server.log().contains("certificates reloaded"),
        "{}",
        server.log_tail(20)
    );
}

/// Started unprivileged (systemd `User=`, `docker --user`): no root step is needed, the
/// pidfile and everything else work, and it relays (only testable from root, which can
/// become another user).
#[test]
fn starts_and_relays_unprivileged() {
    let Some(bin) = switchyard() else { return };
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        // Already unprivileged: every other test here is this case.
        eprintln!("skipped: the tests already run unprivileged");
        return;
    }
    let mut server = TestServer::start(ServerOptions {
        prometheus: true,
        run_as: Some("nobody:nogroup"),
        ..ServerOptions::default()
    })
    .unwrap_or_else(|skip| panic!("{}", skip.0));
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        !uid_line.split_whitespace().skip(1).any(|u| u == "0"),
        "{uid_line}"
    );
    let run = loadgen(
        &bin,
        &server,
        server.secret(),
        load(2, 100, 200, 0.5),
        "unprivileged",
    );
    assert!(run.ok && run.num("relayed") > 0.0, "{}", run.output);
    assert_eq!(metrics::get(server.metrics_addr(), "/readyz").0, 200);
    server.assert_alive();
}

/// `proc-user`: root binds, then the process runs as that user (only testable as root).
#[test]
fn proc_user_drops_root_after_binding() {
    let Some(bin) = switchyard() else { return };
    let uid = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        // Not a missing peer: without root there is nothing to drop, so this never fails.
        eprintln!("skipped: proc-user needs the tests to run as root");
        return;
    }
    let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert!(!nobody.is_empty(), "no user nobody");
    let server = start(&["proc-user=nobody", "proc-group=nogroup"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let uids: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(uids, [nobody.as_str(); 4], "real, effective, saved, fs uid");
    // Still relays (relay ports are unprivileged) and still serves metrics.
    let run = loadgen(
        &bin,
        &server,
        server.secret(),
        load(2, 100, 200, 0.5),
        "nobody",
    );
    assert!(run.ok && run.num("relayed") > 0.0, "{}", run.output);
    assert_eq!(metrics::get(server.metrics_addr(), "/readyz").0, 200);
}

/// The certificate a TLS handshake with `port` presents, as a SHA-256 fingerprint line.
fn served_fingerprint(openssl: &Path, dir: &Path, port: u16) -> String {
    switchyard_tests::server::served_cert_fingerprint(openssl, &[], dir, port)
}

/// Certificate renewal without a restart (coturn#725, #1446): SIGUSR2 and SIGHUP make new
/// TLS connections get the new certificate; a broken one is refused and the last good one
/// stays.
#[test]
fn certificates_reload_on_sigusr2_and_sighup() {
    if switchyard().is_none() {
        return;
    }
    let openssl = need!(switchyard_tests::skip::find_binary("openssl"));
    let mut server = need!(TestServer::start(ServerOptions {
        tls: true,
        ..ServerOptions::default()
    }));
    let port = server.ports.tls;
    let (cert, key) = (server.dir.join("cert.pem"), server.dir.join("key.pem"));
    let first = served_fingerprint(&openssl, server.dir.path(), port);
    assert!(first.contains("Fingerprint="), "{first}");

    let renew = |name: &str| {
        let d = server.dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let (c, k) =
            switchyard_tests::server::self_signed_cert(&d).unwrap_or_else(|s| panic!("{}", s.0));
        std::fs::copy(c, &cert).unwrap();
        std::fs::copy(k, &key).unwrap();
    };
    renew("renewed-1");
    signal(&server, "USR2");
    std::thread::sleep(Duration::from_millis(300));
    let second = served_fingerprint(&openssl, server.dir.path(), port);
    assert_ne!(
        first, second,
        "SIGUSR2 did not load the renewed certificate"
    );

    renew("renewed-2");
    signal(&server, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    let third = served_fingerprint(&openssl, server.dir.path(), port);
    assert_ne!(second, third, "SIGHUP did not load the renewed certificate");

    // A truncated certificate: both reloads fail, the last good certificate stays.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    signal(&server, "USR2");
    signal(&server, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    server.assert_alive();
    assert_eq!(served_fingerprint(&openssl, server.dir.path(), port), third);
    let log = server.log();
    assert!(
        log.contains("certificate reload failed"),
        "{}",
        server.log_tail(20)
    );
    assert!(
        log.contains("reload failed, the running configuration stays"),
        "{}",
        server.log_tail(20)
    );
}
