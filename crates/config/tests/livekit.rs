//! livekit.yaml, flags and environment as livekit-server reads them: the configs Matrix
//! deployments ship parse, every error names file:line: key, unsupported keys warn.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

use switchyard_config::livekit::{
    LiveKitConfig, TurnAuth, TurnProtocol, UdpPort, load, parse_livekit_yaml,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn warnings(c: &LiveKitConfig) -> Vec<String> {
    c.warnings.iter().map(|w| w.to_string()).collect()
}

fn err(text: &str) -> String {
    parse_livekit_yaml(text, "lk.yaml").unwrap_err().to_string()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<LiveKitConfig, String> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    load(&args, &|k| env.get(k).cloned()).map_err(|e| e.to_string())
}

/// Element Call's own dev stack (`backend/dev_livekit.yaml`, started with `--dev --config`).
const ELEMENT_CALL_DEV: &str = "\
port: 7880
bind_addresses:
  - \"0.0.0.0\"
rtc:
  tcp_port: 7881
  port_range_start: 50100
  port_range_end: 50200
  use_external_ip: false
turn:
  enabled: false
  domain: localhost
  cert_file: \"\"
  key_file: \"\"
  tls_port: 5349
  udp_port: 443
  external_tls: true
keys:
  devkey: secret
room:
  auto_create: false
webhook:
  api_key: devkey
  urls:
    - https://matrix-rtc.m.localhost/livekit/jwt/sfu_webhook
logging:
  level: debug
";

#[test]
fn element_call_dev_stack() {
    let dir = std::env::temp_dir().join(format!("sy-lk-ec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dev_livekit.yaml");
    std::fs::write(&path, ELEMENT_CALL_DEV).unwrap();
    let c = run(&["--dev", "--config", path.to_str().unwrap()], &[]).unwrap();
    assert!(c.dev && !c.room.auto_create);
    assert_eq!(c.bind_addresses, [ip("0.0.0.0")]);
    assert_eq!(
        (c.rtc.port_range_start, c.rtc.port_range_end),
        (50100, 50200)
    );
    // --dev sets the muxed port when the file has none.
    assert_eq!(c.rtc.udp_port, Some(UdpPort::Single(7882)));
    assert_eq!(c.keys[0].key, "devkey");
    let w = c.webhook.as_ref().unwrap();
    assert_eq!(w.api_key, "devkey");
    assert_eq!(w.urls.len(), 1);
    assert_eq!(c.log_level, "debug");
    // The turn block is read (and off): nothing to warn about.
    assert!(!c.turn.enabled);
    assert_eq!(
        (c.turn.domain.as_str(), c.turn.udp_port, c.turn.external_tls),
        ("localhost", 443, true)
    );
    assert_eq!(warnings(&c), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// matrix-docker-ansible-deploy's template (`templates/config.yaml.j2`), rendered.
const ANSIBLE: &str = "\
port: 7880
bind_addresses: ['0.0.0.0']
rtc:
  tcp_port: 7881
  udp_port: 7882
  use_external_ip: false
  node_ip: 203.0.113.7
turn:
  enabled: true
  domain: turn.example.org
  cert_file: /cert.pem
  key_file: /key.pem
  tls_port: 5350
  udp_port: 3479
  external_tls: true
prometheus:
  port: 6789
  username: u
  password: p
keys:
  lk-jwt-service: 0123456789abcdef0123456789abcdef
logging:
  level: info
  pion_level: error
  json: false
  sample: false
";

#[test]
fn matrix_docker_ansible_deploy_template() {
    let c = parse_livekit_yaml(ANSIBLE, "config.yaml").unwrap();
    assert_eq!(c.rtc.udp_port, Some(UdpPort::Single(7882)));
    assert_eq!(c.rtc.node_ip, [ip("203.0.113.7")]);
    assert_eq!(c.media_udp_port(), 7882);
    let t = &c.turn;
    assert!(t.enabled && t.external_tls);
    assert_eq!(
        (t.domain.as_str(), t.tls_port, t.udp_port),
        ("turn.example.org", 5350, 3479)
    );
    assert_eq!(
        t.cert_file.as_deref(),
        Some(std::path::Path::new("/cert.pem"))
    );
    let w = warnings(&c);
    let lines: Vec<&str> = w.iter().map(|w| &w[..w.find(": ").unwrap()]).collect();
    assert_eq!(
        lines,
        [
            "config.yaml:18",
            "config.yaml:19",
            "config.yaml:24",
            "config.yaml:25",
            "config.yaml:26"
        ],
        "{w:#?}"
    );
    assert_eq!(c.prometheus_port, Some(6789));
    assert!(
        w[0].starts_with("config.yaml:18: prometheus.username: "),
        "{}",
        w[0]
    );
    assert!(
        w[2].starts_with("config.yaml:24: logging.pion_level: "),
        "{}",
        w[2]
    );
}

/// Element Server Suite's Helm chart: `prometheus_port`, `key_file`, `use_external_ip: true`.
#[test]
fn ess_helm_with_key_file() {
    let dir = std::env::temp_dir().join(format!("sy-lk-ess-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.yaml");
    std::fs::write(&keys, "matrix-rtc: 0123456789abcdef0123456789abcdefXYZ\n").unwrap();
    let text = format!(
        "port: 7880\nprometheus_port: 6789\nlogging:\n  level: info\nrtc:\n  tcp_port: 30881\n  udp_port: 30882\n  use_external_ip: true\nkey_file: {}\nturn:\n  enabled: false\n",
        keys.display()
    );
    let c = parse_livekit_yaml(&text, "sfu.yaml").unwrap();
    assert_eq!(c.keys.len(), 1);
    assert_eq!(c.keys[0].key, "matrix-rtc");
    assert_eq!((c.rtc.tcp_port, c.media_udp_port()), (30881, 30882));
    assert!(c.rtc.use_external_ip);
    let w = warnings(&c);
    assert_eq!(c.prometheus_port, Some(6789));
    assert!(
        w[0].starts_with("sfu.yaml:8: rtc.use_external_ip: STUN discovery"),
        "{w:#?}"
    );
    assert_eq!(w.len(), 1, "{w:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sample_config_is_clean() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/livekit.yaml");
    let c = run(&["--config", path], &[]).unwrap();
    assert_eq!(warnings(&c), Vec::<String>::new());
    assert_eq!(
        (c.port, c.media_udp_port(), c.rtc.tcp_port),
        (7880, 7882, 7881)
    );
    assert_eq!(c.room.departure_timeout, Duration::from_secs(20));
}

/// `rtc.ingress_limit_kbps` (switchyard only): a default above any real publisher, 0 turns it
/// off, and a rate that would cut an ordinary publisher is refused.
#[test]
fn ingress_limit_is_a_rate_or_off() {
    let default = parse_livekit_yaml("port: 7880\n", "lk.yaml").unwrap();
    assert_eq!(default.rtc.ingress_limit_kbps, 25_000);
    let set = parse_livekit_yaml("rtc:\n  ingress_limit_kbps: 4000\n", "lk.yaml").unwrap();
    assert_eq!(set.rtc.ingress_limit_kbps, 4000);
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    let off = parse_livekit_yaml("rtc:\n  ingress_limit_kbps: 0\n", "lk.yaml").unwrap();
    assert_eq!(off.rtc.ingress_limit_kbps, 0);
    assert_eq!(
        err("rtc:\n  ingress_limit_kbps: 100\n"),
        "lk.yaml:2: rtc.ingress_limit_kbps: 100 kbit/s would cut even one audio + video publisher; use at least 500, or 0 for no limit"
    );
    assert_eq!(
        err("rtc:\n  ingress_limit_kbps: -1\n"),
        "lk.yaml:2: rtc.ingress_limit_kbps: -1 is not a rate in kbit/s (0 for no limit)"
    );
    assert_eq!(
        err("rtc:\n  ingress_limit_kbps: fast\n"),
        "lk.yaml:2: rtc.ingress_limit_kbps: expected a whole number, found `fast`"
    );
}

/// `rtc.congestion_control`: on and not pausing by default, as in livekit-server.
#[test]
fn congestion_control_keys() {
    let default = parse_livekit_yaml("port: 7880\n", "lk.yaml").unwrap();
    assert!(default.rtc.congestion_control && !default.rtc.allow_pause);
    let set = parse_livekit_yaml(
        "rtc:\n  congestion_control:\n    enabled: false\n    allow_pause: true\n",
        "lk.yaml",
    )
    .unwrap();
    assert!(!set.rtc.congestion_control && set.rtc.allow_pause);
    assert!(warnings(&set).is_empty(), "{:?}", warnings(&set));
    let e = err("rtc:\n  congestion_control:\n    allow_pause: sometimes\n");
    assert!(
        e.starts_with("lk.yaml:3: rtc.congestion_control.allow_pause:"),
        "{e}"
    );
}

#[test]
fn errors_name_file_line_and_key() {
    assert_eq!(
        err("port: 70000\n"),
        "lk.yaml:1: port: port 70000 is outside 1-65535"
    );
    assert_eq!(
        err("rtc:\n  tcp_port: 7881\n  node_ip: 10.0.0.300\n"),
        "lk.yaml:3: rtc.node_ip: `10.0.0.300` is not an IP address"
    );
    assert_eq!(
        err("rtc:\n  port_range_start: 60000\n  port_range_end: 50000\n"),
        "lk.yaml:3: rtc.port_range_end: rtc.port_range_start 60000 is above rtc.port_range_end 50000"
    );
    assert_eq!(
        err("rtc:\n  port_range_start: 60001\n"),
        "lk.yaml:2: rtc.port_range_start: rtc.port_range_start 60001 is above rtc.port_range_end 60000"
    );
    assert_eq!(
        err("rtc:\n  udp_port: 7892-7882\n"),
        "lk.yaml:2: rtc.udp_port: range `7892-7882` ends before it starts"
    );
    assert_eq!(
        err("room:\n  auto_create: yes please\n"),
        "lk.yaml:2: room.auto_create: expected true or false, found `yes please`"
    );
    assert_eq!(
        err("room:\n  empty_timeout: -5\n"),
        "lk.yaml:2: room.empty_timeout: -5 seconds is negative"
    );
    assert_eq!(
        err("logging:\n  level: loud\n"),
        "lk.yaml:2: logging.level: `loud` is not one of debug, info, warn, error"
    );
    assert_eq!(
        err("webhook:\n  urls: [ftp://x]\n"),
        "lk.yaml:2: webhook.urls: `ftp://x` is not an http:// or https:// URL"
    );
    assert_eq!(err("rtc: 5\n"), "lk.yaml:1: rtc: must be a mapping");
    assert_eq!(
        err("keys:\n  k1: s1\n  k2:\n"),
        "lk.yaml:3: keys: each entry must be `key: secret` with both non-empty"
    );
    // Broken YAML: the parser's own message, at its line.
    let e = err("port: 7880\nrtc:\n  tcp_port: [1, 2\n");
    assert!(e.starts_with("lk.yaml:"), "{e}");
    assert!(e.contains(": yaml: "), "{e}");
    // Cross-source checks.
    let e = run(
        &[
            "--config-body",
            "keys: {a: 0123456789abcdef0123456789abcdef}\nwebhook:\n  api_key: b\n  urls: [http://x]\n",
        ],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        e,
        "LIVEKIT_CONFIG:3: webhook.api_key: `b` is not one of the configured keys"
    );
    assert_eq!(
        run(&[], &[]).unwrap_err(),
        "command line: keys: no API keys: set `keys:` or `key_file:` in livekit.yaml, --keys / LIVEKIT_KEYS, or --dev"
    );
    assert_eq!(
        run(&["--udp-port", "x", "--dev"], &[]).unwrap_err(),
        "command line: --udp-port: `x` is not a port"
    );
    assert_eq!(
        run(&["--bogus"], &[]).unwrap_err(),
        "command line: --bogus: unknown option"
    );
    let missing = run(&["--config", "/nonexistent/livekit.yaml"], &[]).unwrap_err();
    assert!(
        missing.starts_with("/nonexistent/livekit.yaml: "),
        "{missing}"
    );
}

#[test]
fn unknown_keys_warn_with_a_suggestion() {
    let c = parse_livekit_yaml(
        "port: 7880\nrtc:\n  tcp_prot: 7881\nroom:\n  auto_creat: false\nfrobnicate: 1\n",
        "lk.yaml",
    )
    .unwrap();
    assert_eq!(
        warnings(&c),
        [
            "lk.yaml:3: rtc.tcp_prot: unknown key, livekit-server does not have it either (did you mean `rtc.tcp_port`?); ignored",
            "lk.yaml:5: room.auto_creat: unknown key, livekit-server does not have it either (did you mean `room.auto_create`?); ignored",
            "lk.yaml:6: frobnicate: unknown key, livekit-server does not have it either; ignored",
        ]
    );
    // Ignored, so the default stays.
    assert!(c.room.auto_create);
}

#[test]
fn flags_and_environment_override_the_file() {
    let body = "keys: {filekey: 0123456789abcdef0123456789abcdef}\nrtc:\n  udp_port: 7000\n  node_ip: 192.0.2.1\n";
    // Environment over file; flags over environment.
    let c = run(
        &[],
        &[
            ("LIVEKIT_CONFIG", body),
            ("LIVEKIT_KEYS", "envkey: 0123456789abcdef0123456789abcdef"),
            ("UDP_PORT", "7100"),
            ("NODE_IP", "192.0.2.2"),
        ],
    )
    .unwrap();
    assert_eq!(c.keys[0].key, "envkey");
    assert_eq!(c.media_udp_port(), 7100);
    assert_eq!(c.rtc.node_ip, [ip("192.0.2.2")]);
    let c = run(
        &[
            "--keys",
            "k1: 0123456789abcdef0123456789abcdef, k2: 0123456789abcdef0123456789abcdeX",
            "--udp-port=7200",
            "--node-ip",
            "192.0.2.3",
            "--bind",
            "127.0.0.1",
            "--bind",
            "::1",
            "--port",
            "9000",
        ],
        &[("LIVEKIT_CONFIG", body), ("UDP_PORT", "7100")],
    )
    .unwrap();
    assert_eq!(
        c.keys.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    assert_eq!((c.media_udp_port(), c.port), (7200, 9000));
    assert_eq!(c.bind_addresses, [ip("127.0.0.1"), ip("::1")]);
    // --config-body wins over --config, as in livekit-server.
    let c = run(
        &[
            "--config",
            "/nonexistent.yaml",
            "--config-body",
            "port: 7999\n",
            "--dev",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.port, 7999);
}

#[test]
fn dev_mode_and_weak_secrets() {
    let c = run(&["--dev"], &[]).unwrap();
    assert_eq!(c.keys.len(), 1);
    assert_eq!(
        (c.keys[0].key.as_str(), c.keys[0].secret.as_str()),
        ("devkey", "secret")
    );
    assert_eq!(c.bind_addresses, [ip("127.0.0.1")]);
    assert_eq!(c.media_udp_port(), 7882);
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
    // Outside dev mode a short secret is allowed but called out, and without udp_port the
    // mux port comes from the range.
    let c = run(&["--keys", "k: tiny-s3cret"], &[]).unwrap();
    assert_eq!(
        warnings(&c),
        [
            "command line: keys: the secret of `k` is shorter than 32 characters",
            "command line: rtc.port_range_start: switchyard muxes every peer connection on one UDP port: using 50000 of 50000-60000 (set rtc.udp_port to choose)",
        ]
    );
    assert_eq!(c.media_udp_port(), 50000);
    // The effective config never prints a secret.
    let shown = c.redacted();
    assert!(
        shown.contains("k: <redacted>") && !shown.contains("tiny-s3cret"),
        "{shown}"
    );
    assert!(!format!("{c:?}").contains("tiny-s3cret"));
}

/// `turn:` and `rtc.turn_servers` / `rtc.stun_servers`: what they set, and the checks
/// livekit-server makes before it starts the embedded relay.
#[test]
fn turn_blocks_are_read_and_checked() {
    let c = run(
        &[
            "--dev",
            "--config-body",
            "rtc:\n  stun_servers: [\"stun.example.org:3478\"]\n  turn_servers:\n    - host: turn.example.org\n      port: 5349\n      protocol: tls\n      secret: s3cret\n    - host: 203.0.113.9\n      port: 3478\n      username: u\n      credential: c\n",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.rtc.stun_servers, ["stun.example.org:3478"]);
    assert_eq!(c.rtc.turn_servers.len(), 2);
    assert_eq!(c.rtc.turn_servers[0].protocol, TurnProtocol::Tls);
    assert!(matches!(
        &c.rtc.turn_servers[0].auth,
        TurnAuth::Secret { secret, ttl } if secret == "s3cret" && ttl.as_secs() == 14_400
    ));
    assert_eq!(c.rtc.turn_servers[1].protocol, TurnProtocol::Udp);
    // Secrets never reach --check-config output.
    assert!(!c.redacted().contains("s3cret"), "{}", c.redacted());

    assert_eq!(
        err(
            "rtc:\n  turn_servers:\n    - host: t\n      port: 3478\n      protocol: sctp\n      secret: s\n"
        ),
        "lk.yaml:3: rtc.turn_servers.protocol: `sctp` is not one of udp, tcp, tls"
    );
    assert_eq!(
        err("rtc:\n  turn_servers:\n    - host: t\n      port: 3478\n"),
        "lk.yaml:3: rtc.turn_servers: t: needs `secret` (or `secret_file`), or `username` and `credential`"
    );
    let tls_without_cert = run(
        &[
            "--dev",
            "--config-body",
            "turn:\n  enabled: true\n  domain: t.example.org\n",
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        tls_without_cert.contains("turn.cert_file: TURN over TLS needs cert_file and key_file"),
        "{tls_without_cert}"
    );
    // --turn-cert / --turn-key complete it; a clash with the media port does not pass.
    let ok = run(
        &[
            "--dev",
            "--turn-cert",
            "/c.pem",
            "--turn-key",
            "/k.pem",
            "--config-body",
            "turn:\n  enabled: true\n  domain: t.example.org\n",
        ],
        &[],
    )
    .unwrap();
    assert!(ok.turn.enabled && ok.turn.tls_port == 5349 && ok.turn.udp_port == 3478);
    let clash = run(
        &[
            "--dev",
            "--config-body",
            "turn:\n  enabled: true\n  tls_port: 0\n  udp_port: 7882\n",
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        clash.contains("the media port 7882 cannot also serve TURN"),
        "{clash}"
    );
}

/// `--media-threads` / `SWITCHYARD_MEDIA_THREADS` (switchyard only): one per core unless set,
/// the flag over the variable, and a count the ufrag tags cannot tell apart is refused.
#[test]
fn media_threads_flag_and_environment() {
    assert_eq!(run(&["--dev"], &[]).unwrap().media_threads, None);
    let c = run(&["--dev", "--media-threads", "3"], &[]).unwrap();
    assert_eq!(c.media_threads, Some(3));
    let c = run(&["--dev"], &[("SWITCHYARD_MEDIA_THREADS", "2")]).unwrap();
    assert_eq!(c.media_threads, Some(2));
    let c = run(
        &["--dev", "--media-threads=4"],
        &[("SWITCHYARD_MEDIA_THREADS", "2")],
    )
    .unwrap();
    assert_eq!(c.media_threads, Some(4));
    for bad in ["0", "63", "many"] {
        let e = run(&["--dev", "--media-threads", bad], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--media-threads") && e.contains("not a thread count from 1 to 62"),
            "{e}"
        );
    }
}
