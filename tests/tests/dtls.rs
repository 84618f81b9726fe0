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
