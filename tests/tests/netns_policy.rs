//! The peer policy end to end, inside a network namespace this test creates: the forbidden
//! addresses live on that namespace's `lo`, each with a UDP sink, so a broken policy could
//! only ever send a packet to a sink of the probe — never to a real private address.
//! Needs root and iproute2 (`ip netns`); without them the test skips (fails under
//! `SWITCHYARD_INTEROP=1`).

use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard_tests::server::ServerKind;
use switchyard_tests::skip::{Skip, find_binary};
use switchyard_tests::{need, package_dir};

/// Private, CGNAT, link-local (cloud metadata) and loopback peers, all on the namespace's lo.
const FORBIDDEN: &[&str] = &[
    "10.1.2.3",
    "172.16.5.5",
    "192.168.7.7",
    "100.64.0.1",
    "169.254.169.254",
    "127.0.0.1",
];
const SECRET: &str = "netns-policy-secret";

struct Netns(String);

impl Netns {
    fn create() -> Result<Self, Skip> {
        let ip = find_binary("ip")?;
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| Skip::new(e.to_string()))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err(Skip::new("network namespaces need root"));
        }
        let name = format!("sy-policy-{}", std::process::id());
        let ok = Command::new(&ip)
            .args(["netns", "add", &name])
            .status()
            .map_err(|e| Skip::new(e.to_string()))?;
        if !ok.success() {
            return Err(Skip::new(
                "`ip netns add` failed (no namespace support here)",
            ));
        }
        let ns = Netns(name);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        for addr in FORBIDDEN.iter().filter(|a| !a.starts_with("127.")) {
            ns.exec(&["ip", "addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        }
        Ok(ns)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0, program]);
        cmd
    }

    fn exec(&self, argv: &[&str]) {
        let status = self.command(argv[0]).args(&argv[1..]).status().unwrap();
        assert!(status.success(), "{argv:?} in namespace {}", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Starts switchyard in the namespace, runs the probe against it, returns `addr → (answer, sink)`.
fn probe(
    ns: &Netns,
    bin: &std::path::Path,
    port: u16,
    extra: &[&str],
) -> Vec<(String, String, String)> {
    let mut server = ns
        .command(bin.to_str().unwrap())
        .args([
            "turn",
            "-n",
            "--listening-ip=127.0.0.1",
            "--use-auth-secret",
            "--realm=policy.test",
        ])
        .arg(format!("--static-auth-secret={SECRET}"))
        .arg(format!("--listening-port={port}"))
        .args(["--min-port=50000", "--max-port=50100", "--log-file=stdout"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let script = package_dir().join("py/policy_probe.py");
    let out = ns
        .command("python3")
        .arg(&script)
        .args([&port.to_string(), SECRET, "9999"])
        .args(FORBIDDEN)
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("ALLOCATE ok"),
        "probe failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

#[test]
fn internal_peers_are_unreachable_and_allowed_peer_ip_opens_one() {
    let bin = match need!(ServerKind::from_env()) {
        ServerKind::Switchyard(p) => p,
        ServerKind::Coturn(_) => {
            eprintln!("skipped: the default policy under test is switchyard's");
            return;
        }
    };
    need!(find_binary("python3"));
    let ns = need!(Netns::create());

    // Defaults, no policy line at all: every internal peer gets 403 and its sink hears nothing.
    let results = probe(&ns, &bin, 3478, &[]);
    assert_eq!(results.len(), FORBIDDEN.len(), "{results:?}");
    for (addr, answer, sink) in &results {
        assert_eq!(answer, "error_403", "{addr}: {results:?}");
        assert_eq!(sink, "silent", "{addr} was reached: {results:?}");
    }

    // Positive control, so the test can fail: allowed-peer-ip opens exactly 10.1.2.3.
    let results = probe(&ns, &bin, 3479, &["--allowed-peer-ip=10.1.2.3"]);
    for (addr, answer, sink) in &results {
        if addr == "10.1.2.3" {
            assert_eq!(
                (answer.as_str(), sink.as_str()),
                ("SUCCESS", "received"),
                "{results:?}"
            );
        } else {
            assert_eq!(
                (answer.as_str(), sink.as_str()),
                ("error_403", "silent"),
                "{addr}: {results:?}"
            );
        }
    }
}
