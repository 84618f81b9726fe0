//! `switchyard livekit --config livekit.yaml`: the sample config starts a server on the ports
//! it names and accepts tokens signed with its key (a signed Twirp ListRooms), and a broken
//! file stops it with exit status 2 and file:line: key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_tests::process::{ChildGuard, run_bounded, tail};
use switchyard_tests::server::locate_switchyard;
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{need, ports};

/// HS256 token with `roomList` for `key`.
fn list_token(key: &str, secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": key, "sub": "admin", "nbf": now - 5, "exp": now + 600,
        "video": {"roomList": true}
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn post_list_rooms(port: u16, token: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let req = format!(
        "POST /twirp/livekit.RoomService/ListRooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn sample_config_serves_on_its_ports_with_its_key() {
    let bin = need!(locate_switchyard());
    let dir = TempDir::new("livekit-config").unwrap();
    let p = ports::allocate();
    // The sample, with this test's free ports swapped in.
    let sample =
        std::fs::read_to_string(switchyard_tests::package_dir().join("../config/livekit.yaml"))
            .unwrap();
    let yaml = sample
        .replace("port: 7880", &format!("port: {}", p.listen))
        .replace("udp_port: 7882", &format!("udp_port: {}", p.peer))
        .replace("tcp_port: 7881", &format!("tcp_port: {}", p.tls))
        .replace("  - 0.0.0.0", "  - 127.0.0.1");
    let conf = dir.join("livekit.yaml");
    std::fs::write(&conf, yaml).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("livekit").arg("--config").arg(&conf);
    let guard = ChildGuard::spawn("livekit", &mut cmd, &dir.join("livekit.log")).unwrap();
    let token = list_token("changeme-key", "changeme-secret-of-at-least-32-characters");
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        if let Some(a) = post_list_rooms(p.listen, &token) {
            break a;
        }
        assert!(Instant::now() < deadline, "{}", guard.log_tail(20));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("rooms") || answer.ends_with("{}"),
        "{answer}"
    );
    // A token from another key is refused.
    let wrong = post_list_rooms(p.listen, &list_token("other", "x".repeat(40).as_str())).unwrap();
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    // The media port from the file is bound (UDP: binding it again fails).
    assert!(std::net::UdpSocket::bind(("127.0.0.1", p.peer)).is_err());
}

#[test]
fn broken_config_exits_2_with_file_line_and_key() {
    let bin = need!(locate_switchyard());
    let dir = TempDir::new("livekit-config").unwrap();
    let conf = dir.join("livekit.yaml");
    std::fs::write(
        &conf,
        "keys:\n  k: 0123456789abcdef0123456789abcdef\nrtc:\n  udp_port: 99999\n",
    )
    .unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("livekit").arg("--config").arg(&conf);
    let done = run_bounded(&mut cmd, Duration::from_secs(10), &dir.join("out.log"));
    assert_eq!(
        done.status.and_then(|s| s.code()),
        Some(2),
        "{}",
        tail(&done.output, 10)
    );
    let want = format!(
        "{}:4: rtc.udp_port: port 99999 is outside 1-65535",
        conf.display()
    );
    assert!(done.output.contains(&want), "{}", tail(&done.output, 10));
}
