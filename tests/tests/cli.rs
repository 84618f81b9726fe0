//! The binary as an operator meets it: config errors, `--check-config`, the `turnserver`
//! name, and a graceful stop on SIGTERM. Switchyard only (coturn behaves differently here).

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use switchyard_tests::server::ServerKind;
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{need, ports, stun};

/// Waits up to `limit` for `child` to exit; kills it and returns `None` if it does not.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

/// `switchyard turn` without a config file on loopback, listening on `block`'s port with
/// its relay range; the caller adds what the test is about.
fn turn_on(bin: &std::path::Path, block: &ports::PortBlock) -> Command {
    let mut c = Command::new(bin);
    c.args(["turn", "-n", "--listening-ip=127.0.0.1"])
        .arg(format!("--listening-port={}", block.listen))
        .arg(format!("--min-port={}", block.relay_min))
        .arg(format!("--max-port={}", block.relay_max));
    c
}

#[test]
fn config_error_names_file_line_and_key_and_stops() {
    let Some(bin) = switchyard() else { return };
    let dir =
        need!(TempDir::new("cli-bad").map_err(|e| switchyard_tests::Skip::new(e.to_string())));
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "realm=x\n# comment\nlistening-port=34x78\n").unwrap();
    let out = Command::new(&bin)
        .args(["turn", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:3: listening-port: `34x78` is not a port number (1-65535)",
        conf.display()
    );
    assert!(stderr.contains(&want), "stderr: {stderr}");
}

#[test]
fn check_config_prints_effective_config_without_secrets() {
    let Some(bin) = switchyard() else { return };
    let dir =
        need!(TempDir::new("cli-check").map_err(|e| switchyard_tests::Skip::new(e.to_string())));
    let conf = dir.path().join("t.conf");
    std::fs::write(
        &conf,
        "use-auth-secret\nstatic-auth-secret=hunter2hunter2\nrealm=r.example\nno-loopback-peers\n",
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["turn", "--check-config", "-c"])
        .arg(&conf)
        .args(["--min-port=40000", "--max-port=40100"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("realm=r.example"), "{stdout}");
    assert!(
        stdout.contains("min-port=40000") && stdout.contains("max-port=40100"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(
        stderr.contains("t.conf:4: no-loopback-peers: obsolete"),
        "{stderr}"
    );
}

#[test]
fn runs_as_turnserver_and_stops_on_sigterm() {
    let Some(bin) = switchyard() else { return };
    let dir =
        need!(TempDir::new("cli-argv0").map_err(|e| switchyard_tests::Skip::new(e.to_string())));
    let link = dir.path().join("turnserver");
    std::os::unix::fs::symlink(&bin, &link).unwrap();
    let block = ports::allocate();
    let mut child = Command::new(&link)
        .args([
            "-n",
            "--listening-ip=127.0.0.1",
            "--no-tcp",
            "--log-file=stdout",
            "--use-auth-secret",
            "--static-auth-secret=s3cr3t",
        ])
        .arg(format!("--listening-port={}", block.listen))
        .arg(format!("--min-port={}", block.relay_min))
        .arg(format!("--max-port={}", block.relay_max))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, block.listen));
    let answered = stun::binding(server, Instant::now() + Duration::from_secs(10));
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = exit_within(&mut child, Duration::from_secs(5));
    let (reflexive, local) = answered.expect("Binding answered by the binary called `turnserver`");
    assert_eq!(reflexive, local);
    let status = status.expect("exits within 5 s of SIGTERM");
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}

/// A second server on a port the first holds must fail at start, not quietly share the
/// port through the workers' SO_REUSEPORT and take some of the first one's clients.
#[test]
fn a_second_server_on_the_same_port_fails_to_start() {
    let Some(bin) = switchyard() else { return };
    let block = ports::allocate();
    let other = ports::allocate();
    let start = |relay: &ports::PortBlock| {
        let mut c = turn_on(&bin, relay);
        // The later --listening-port wins: both servers on the first block's port, each
        // with its own relay range.
        c.arg(format!("--listening-port={}", block.listen))
            .args([
                "--log-file=stdout",
                "--use-auth-secret",
                "--static-auth-secret=s3cr3t",
            ])
            .arg("--relay-threads=2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = start(&block);
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, block.listen));
    let up = stun::binding(server, Instant::now() + Duration::from_secs(10));
    let mut second = start(&other);
    let exited = exit_within(&mut second, Duration::from_secs(10));
    let still_up = stun::binding(server, Instant::now() + Duration::from_secs(5));
    let _ = first.kill();
    let _ = first.wait();
    assert!(up.is_some(), "the first server answers");
    let status = exited.expect("the second server exits instead of running");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains(&format!("cannot listen on udp 127.0.0.1:{}", block.listen))
            && stderr.contains("already in use"),
        "{stderr}"
    );
    assert!(still_up.is_some(), "the first server keeps answering");
}

/// coturn's `max-allocate-timeout`: a TCP connection that makes no allocation in time is
/// closed (after it got its Binding answered), so idle connections cannot pile up.
#[test]
fn idle_tcp_connection_without_allocation_is_closed() {
    use std::io::{Read, Write};
    let Some(bin) = switchyard() else { return };
    let block = ports::allocate();
    let mut child = turn_on(&bin, &block)
        .arg("--max-allocate-timeout=1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, block.listen));
    let ready = stun::binding(server, Instant::now() + Duration::from_secs(10)).is_some();
    let mut conn = std::net::TcpStream::connect(server).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let (req, _tid) = stun::binding_request();
    conn.write_all(&req).unwrap();
    let mut buf = [0u8; 256];
    let first = conn.read(&mut buf).unwrap_or(0);
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(6) {
        match conn.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let waited = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "server answered Binding over UDP");
    assert!(first >= 20, "Binding over TCP answered");
    assert!(closed, "connection closed by the server");
    assert!(
        waited < Duration::from_secs(4),
        "closed after about 1-2 s, took {waited:?}"
    );
}

/// `--help` prints usage and exits; it must never start a relay.
#[test]
fn help_prints_usage_and_does_not_start() {
    let Some(bin) = switchyard() else { return };
    for flag in ["--help", "-h"] {
        // Bounded: a regression that starts the relay would otherwise never return.
        let out = Command::new("timeout")
            .arg("10")
            .arg(&bin)
            .args(["turn", flag])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}: {:?}", out.status);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Usage: switchyard turn"), "{stdout}");
    }
}

/// coturn looks for a relative `cert=`/`pkey=` on its config search path (its example
/// scripts pass `--cert=turn_server_cert.pem` and keep the file in `examples/etc/`).
#[test]
fn relative_certificate_names_are_found_on_coturns_search_path() {
    let Some(bin) = switchyard() else { return };
    let dir =
        need!(TempDir::new("cli-cert").map_err(|e| switchyard_tests::Skip::new(e.to_string())));
    let etc = dir.join("etc");
    std::fs::create_dir(&etc).unwrap();
    let (cert, key) = need!(switchyard_tests::server::self_signed_cert(&etc));
    let out = Command::new(&bin)
        .current_dir(dir.path())
        .args([
            "turn",
            "-n",
            "--check-config",
            "--cert=cert.pem",
            "--pkey=key.pem",
        ])
        .arg("--CA-file=not-anywhere.pem")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == "cert=./etc/cert.pem"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "pkey=./etc/key.pem"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not-anywhere.pem") && !stdout.contains("etc/not-anywhere.pem"),
        "a name found nowhere is kept as written: {stdout}"
    );
    assert!(cert.is_file() && key.is_file());
}

/// A certificate that cannot be read turns TLS off with an error, as in coturn, and the
/// server keeps relaying over UDP and TCP (a container started before certbot wrote the
/// files must not crash-loop).
#[test]
fn an_unreadable_certificate_disables_tls_and_the_server_runs() {
    let Some(bin) = switchyard() else { return };
    let block = ports::allocate();
    let mut child = turn_on(&bin, &block)
        .args(["--log-file=stdout", "--cert=/nonexistent/cert.pem"])
        .arg("--pkey=/nonexistent/key.pem")
        .arg(format!("--tls-listening-port={}", block.tls))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, block.listen));
    let up = stun::binding(server, Instant::now() + Duration::from_secs(10));
    let tls_port_open =
        std::net::TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, block.tls))).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(up.is_some(), "the server answers over UDP: {log}");
    assert!(!tls_port_open, "no TLS listener without a certificate");
    assert!(
        log.contains("/nonexistent/cert.pem") && log.contains("TLS and DTLS listeners disabled"),
        "{log}"
    );
}
