//! `switchyard loadgen turn` against both servers: the load generator is a measuring tool
//! for coturn as much as for switchyard, so each mode the side-by-side benchmark uses must
//! complete against each with no failures at a modest load.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use switchyard_tests::process::run_bounded;
use switchyard_tests::server::{ServerKind, ServerOptions, TestServer, locate_switchyard};
use switchyard_tests::skip::find_binary;

/// Both servers, or the test fails: CI installs coturn, so a missing one is a setup error.
fn servers() -> Vec<ServerKind> {
    let bin = locate_switchyard().unwrap_or_else(|s| panic!("{}", s.0));
    let coturn = find_binary("turnserver").unwrap_or_else(|s| panic!("{}", s.0));
    vec![ServerKind::Switchyard(bin), ServerKind::Coturn(coturn)]
}

fn loadgen(server: &TestServer, args: &[&str], label: &str) -> HashMap<String, String> {
    let bin = locate_switchyard().unwrap_or_else(|s| panic!("{}", s.0));
    let log = server.dir.join(&format!("loadgen-{label}.log"));
    let mut cmd = Command::new(bin);
    cmd.args(["loadgen", "turn", "--kv", "--quiet"])
        .arg(format!("--server={}", server.udp_addr()))
        .arg(format!("--secret={}", ServerOptions::default().secret))
        .arg(format!("--server-pid={}", server.pid()))
        .args(args);
    let done = run_bounded(&mut cmd, Duration::from_secs(30), &log);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        done.success(),
        "{label} against {}: loadgen failed:\n{output}",
        server.kind.name()
    );
    output
        .lines()
        .filter_map(|l| l.strip_prefix("kv "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(kv: &HashMap<String, String>, key: &str) -> f64 {
    kv.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {kv:?}"))
}

fn start(kind: ServerKind) -> TestServer {
    TestServer::start_kind(kind, ServerOptions::default()).unwrap_or_else(|s| panic!("{}", s.0))
}

#[test]
fn alloc_rate_completes_every_allocation_against_both_servers() {
    for kind in servers() {
        let server = start(kind);
        // 8 clients in flight on two driver threads, each new client from a new loopback
        // address, so no 5-tuple repeats and no server answers 437.
        let kv = loadgen(
            &server,
            &[
                "--mode=alloc-rate",
                "-n",
                "8",
                "--senders=2",
                "--duration=1",
            ],
            "alloc-rate",
        );
        let name = server.kind.name();
        assert!(num(&kv, "cpu_us_per_alloc") > 0.0, "{name}: {kv:?}");
        if server.kind.is_coturn() {
            // coturn holds a freed relay port until its session times out, so the test's
            // 40-port range runs dry after about 40 allocations (508) and the rest fail.
            assert!(num(&kv, "allocs") >= 20.0, "{name}: {kv:?}");
        } else {
            // Refresh(0) frees the port at once: thousands of allocations cycle through
            // the same 40 ports and every exchange succeeds.
            assert!(num(&kv, "allocs") >= 1000.0, "{name}: {kv:?}");
            assert_eq!(num(&kv, "failed"), 0.0, "{name}: {kv:?}");
        }
    }
}

#[test]
fn relay_and_idle_modes_work_against_both_servers() {
    for kind in servers() {
        let server = start(kind);
        let name = server.kind.name();
        let kv = loadgen(
            &server,
            &["-n", "4", "--size=200", "--rate=2000", "--duration=1"],
            "relay",
        );
        assert!(num(&kv, "relayed") > 1000.0, "{name}: {kv:?}");
        assert!(num(&kv, "loss_pct") < 1.0, "{name}: {kv:?}");
        assert!(num(&kv, "p99_us") > 0.0, "{name}: {kv:?}");
        let kv = loadgen(&server, &["--mode=idle", "-n", "16"], "idle");
        assert_eq!(num(&kv, "allocations"), 16.0, "{name}: {kv:?}");
    }
}
