//! `switchyard livekit --config livekit.yaml`: the sample config starts a server on the ports
//! it names and accepts tokens signed with its key (a signed Twirp ListRooms), and a broken
//! file stops it with exit status 2 and file:line: key.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_tests::process::{ChildGuard, run_bounded, tail};
use switchyard_tests::server::locate_switchyard;
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{livekit, need, ports};

/// A signed Twirp ListRooms; (status, body).
fn list_rooms(port: u16, key: &str, secret: &str) -> (u16, String) {
    let token = livekit::token(
        key,
        secret,
        "admin",
        serde_json::json!({"roomList": true}),
        600,
    );
    let auth = format!("Bearer {token}");
    livekit::http(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "POST",
        "/twirp/livekit.RoomService/ListRooms",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    )
}

#[test]
fn sample_config_serves_on_its_ports_with_its_key() {
    let bin = need!(locate_switchyard());
    let dir = TempDir::new("livekit-config").unwrap();
    let p = ports::allocate();
    let conf = dir.join("livekit.yaml");
    std::fs::write(&conf, livekit::sample_config(&p)).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("livekit").arg("--config").arg(&conf);
    let guard = ChildGuard::spawn("livekit", &mut cmd, &dir.join("livekit.log")).unwrap();
    // Up when the HTTP port accepts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", p.listen)).is_err() {
        assert!(Instant::now() < deadline, "{}", guard.log_tail(20));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (key, secret) = livekit::SAMPLE_KEY;
    let (status, body) = list_rooms(p.listen, key, secret);
    assert_eq!(status, 200, "{body}");
    // A token from another key is refused.
    let (status, body) = list_rooms(p.listen, "other", &"x".repeat(40));
    assert_eq!(status, 401, "{body}");
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
