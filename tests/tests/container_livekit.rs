//! The switchyard-livekit image in place of livekit/livekit-server: run with podman as
//! Element Call stacks run the SFU (host network, non-root, read-only root, `--config
//! /etc/livekit.yaml`), then LiveKit's native Python SDK publishes and subscribes through it.
//!
//! Needs podman, runc, the image (`FLAVOUR=livekit bash docker/build.sh`; tests/run.sh
//! builds it) and the SDKs in tests/.venv (tests/install-peers.sh).

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_tests::container::{Container, Mount, Podman, RunSpec, USER};
use switchyard_tests::process::{run_bounded, tail};
use switchyard_tests::tempdir::TempDir;
use switchyard_tests::{livekit, need, package_dir, ports};

#[test]
fn image_is_one_static_binary_named_livekit_server() {
    let podman = need!(Podman::find_livekit());
    let dir = TempDir::new("container-livekit").expect("temp dir");
    let size: u64 = podman
        .inspect_image(&dir, "{{.Size}}")
        .parse()
        .expect("image size");
    assert!(
        size < 15_000_000,
        "image is {size} bytes (goal: under 15 MB)"
    );
    eprintln!("switchyard-livekit image: {size} bytes");
    assert_eq!(podman.inspect_image(&dir, "{{.Config.User}}"), USER);
    assert_eq!(
        podman.inspect_image(&dir, "{{json .Config.Entrypoint}}"),
        r#"["/livekit-server"]"#
    );
}

#[test]
fn config_mounted_like_element_call_and_the_python_sdk_calls_through_it() {
    let podman = need!(Podman::find_livekit());
    let py = need!(livekit::livekit_python());
    let dir = TempDir::new("container-livekit").expect("temp dir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let p = ports::allocate();
    let conf = dir.join("livekit.yaml");
    std::fs::write(&conf, livekit::sample_config(&p)).unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut spec = RunSpec::new();
    spec.mounts.push(Mount::new(&conf, "/etc/livekit.yaml"));
    spec.args = vec!["--config".into(), "/etc/livekit.yaml".into()];
    let container = Container::start(&podman, &dir, &spec);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", p.listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "no HTTP listener: {}",
            container.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = livekit::http(
        std::net::SocketAddr::from(([127, 0, 0, 1], p.listen)),
        "GET",
        "/",
        &[],
        b"",
    );
    assert_eq!(status, 200, "health: {}", container.logs());
    let ws = format!("ws://127.0.0.1:{}", p.listen);
    let mut cmd = Command::new(&py);
    cmd.arg(package_dir().join("py/livekit_rtc.py")).args([
        ws.as_str(),
        livekit::SAMPLE_KEY.0,
        livekit::SAMPLE_KEY.1,
        "container-room",
    ]);
    let done = run_bounded(&mut cmd, Duration::from_secs(90), &dir.join("rtc.log"));
    let verdict = done
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&verdict).unwrap_or_default();
    assert_eq!(
        v["ok"],
        serde_json::Value::Bool(true),
        "{}\n---- container ----\n{}",
        tail(&done.output, 30),
        container.logs()
    );
}
