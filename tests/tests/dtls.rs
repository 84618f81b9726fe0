//! TURN over DTLS (RFC 7350) with OpenSSL's own DTLS client (`openssl s_client`): a STUN
//! Binding request sent through a DTLS 1.2 session is answered inside it. DTLS 1.0 is not
//! offered (RFC 8996), so a DTLS 1.0 client gets no answer.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard_tests::need;
use switchyard_tests::server::{ServerOptions, TestServer};
use switchyard_tests::skip::find_binary;

/// Runs `openssl s_client` with `version` against `port`, writes `request` once the
/// session is up, and returns what came back (stdout) within a few seconds.
fn s_client(version: &str, port: u16, request: &[u8]) -> Vec<u8> {
    let openssl = find_binary("openssl").expect("openssl");
    let mut child = Command::new(openssl)
        .args([
            "s_client",
            version,
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(request).expect("write request");
    stdin.flush().expect("flush");
    // Keep stdin open while the answer arrives, then end the client.
    std::thread::sleep(Duration::from_secs(3));
    let _ = child.kill();
    drop(stdin);
    child.wait_with_output().expect("openssl output").stdout
}

#[test]
fn stun_over_dtls12_with_openssl() {
    let mut server = need!(TestServer::start(ServerOptions {
        tls: true,
        extra: vec!["dtls".into()],
        ..ServerOptions::default()
    }));
    if server.kind.is_coturn() {
        println!("skipped: the harness turns coturn's DTLS off (no-dtls)");
        return;
    }
    need!(find_binary("openssl"));
    let (request, tid) = switchyard_tests::stun::binding_request();
    let out = s_client("-dtls1_2", server.ports.tls, &request);
    let mapped = switchyard_tests::stun::parse_binding_success(&out, &tid).unwrap_or_else(|| {
        panic!(
            "no Binding success inside DTLS 1.2 (got {} bytes): {}",
            out.len(),
            server.log_tail(20)
        )
    });
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");
    // DTLS 1.0: no session, no answer.
    let (request, tid) = switchyard_tests::stun::binding_request();
    let out = s_client("-dtls1", server.ports.tls, &request);
    assert!(
        switchyard_tests::stun::parse_binding_success(&out, &tid).is_none(),
        "answered over DTLS 1.0"
    );
    server.assert_alive();
}

/// The SHA-256 fingerprint of the certificate a DTLS 1.2 handshake on `port` presents.
fn dtls_fingerprint(dir: &std::path::Path, port: u16) -> String {
    let openssl = find_binary("openssl").expect("openssl");
    switchyard_tests::server::served_cert_fingerprint(&openssl, &["-dtls1_2"], dir, port)
}

/// SIGUSR2 (coturn's certificate signal) and SIGHUP give new DTLS handshakes the renewed
/// certificate, as they do for TLS.
#[test]
fn dtls_certificate_reloads_on_sigusr2_and_sighup() {
    let mut server = need!(TestServer::start(ServerOptions {
        tls: true,
        extra: vec!["dtls".into()],
        ..ServerOptions::default()
    }));
    if server.kind.is_coturn() {
        println!("skipped: the harness turns coturn's DTLS off (no-dtls)");
        return;
    }
    need!(find_binary("openssl"));
    let port = server.ports.tls;
    let dir = server.dir.path().to_path_buf();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let first = dtls_fingerprint(&dir, port);
    assert!(first.contains("Fingerprint="), "{first}");
    let mut last = first;
    for (i, sig) in ["USR2", "HUP"].into_iter().enumerate() {
        let d = dir.join(format!("renewed-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let (c, k) =
            switchyard_tests::server::self_signed_cert(&d).unwrap_or_else(|s| panic!("{}", s.0));
        std::fs::copy(c, &cert).unwrap();
        std::fs::copy(k, &key).unwrap();
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig}");
        std::thread::sleep(Duration::from_millis(300));
        let now = dtls_fingerprint(&dir, port);
        assert_ne!(last, now, "DTLS certificate not reloaded on SIG{sig}");
        last = now;
    }
    server.assert_alive();
}

/// An RSA certificate (common for TLS) cannot serve DTLS here (the DTLS engine signs with
/// ECDSA only): the relay says so at startup, keeps running, and keeps serving plain TURN,
/// instead of opening a DTLS port whose every handshake fails.
#[test]
fn rsa_certificate_turns_dtls_off_with_a_warning() {
    let openssl = need!(find_binary("openssl"));
    let dir = std::env::temp_dir().join(format!("switchyard-dtls-rsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("rsa-cert.pem"), dir.join("rsa-key.pem"));
    let made = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "{made:?}");
    let mut server = need!(TestServer::start(ServerOptions {
        extra: vec![
            "dtls".into(),
            format!("cert={}", cert.display()),
            format!("pkey={}", key.display()),
        ],
        ..ServerOptions::default()
    }));
    if server.kind.is_coturn() {
        println!("skipped: the harness turns coturn's DTLS off (no-dtls)");
        return;
    }
    std::thread::sleep(Duration::from_millis(200));
    server.assert_alive();
    let log = server.log();
    assert!(
        log.contains("DTLS needs an ECDSA") && log.contains("DTLS listener disabled"),
        "{}",
        server.log_tail(20)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
