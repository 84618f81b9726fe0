//! coturn config files and command lines, end to end through the public API.

use std::net::IpAddr;
use std::path::Path;

use switchyard_config::coturn::parse_file_text;
use switchyard_config::{AddrRange, TurnConfig, UserKey, load_turn};

fn parse(text: &str) -> TurnConfig {
    parse_file_text(text, Path::new("t.conf")).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse_file_text(text, Path::new("t.conf"))
        .err()
        .unwrap_or_else(|| panic!("expected an error for {text:?}"))
        .to_string()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn defaults_are_coturns() {
    let c = load_turn(&["-n"]).unwrap();
    assert_eq!(c.listening_port, 3478);
    assert_eq!(c.tls_listening_port, 5349);
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert_eq!(c.max_allocate_lifetime, 3600);
    assert_eq!(c.channel_lifetime, 600);
    assert_eq!(c.permission_lifetime, 300);
    assert_eq!(c.stale_nonce, 600);
    assert_eq!(c.prometheus_port, 9641);
    assert_eq!(c.rest_api_separator, ':');
    assert!(!c.software_attribute);
    assert!(c.relay_threads >= 1);
    assert!(c.warnings.is_empty());
}

#[test]
fn line_grammar() {
    let c = parse(
        "realm=a.example\n  listening-port 4000\nmin-port = 50000\n\tmax-port\t=\t50100  \n# comment=1\n\nfingerprint\npidfile=\"/run/t.pid\"\nverbose=0\n",
    );
    assert_eq!(c.realm.as_deref(), Some("a.example"));
    assert_eq!(c.listening_port, 4000);
    assert_eq!((c.min_port, c.max_port), (50000, 50100));
    assert!(c.fingerprint);
    assert_eq!(c.pidfile.as_deref(), Some(Path::new("/run/t.pid")));
    assert!(!c.verbose);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn booleans_and_repeats() {
    let c = parse(
        "no-udp=yes\nno-tcp=off\nlistening-ip=127.0.0.1\nlistening-ip=::1\nstatic-auth-secret=a\nstatic-auth-secret=b\nuse-auth-secret=true\n",
    );
    assert!(c.no_udp && !c.no_tcp && c.use_auth_secret);
    assert_eq!(c.listening_ips, vec![ip("127.0.0.1"), ip("::1")]);
    assert_eq!(c.static_auth_secrets, vec!["a", "b"]);
}

#[test]
fn errors_name_file_line_and_key() {
    assert_eq!(
        err("realm=x\nlistening-port=34x78\n"),
        "t.conf:2: listening-port: `34x78` is not a number"
    );
    assert_eq!(
        err("\n\nmin-port=0\n"),
        "t.conf:3: min-port: port 0 is out of range (1-65535)"
    );
    assert_eq!(
        err("fingerprint=maybe\n"),
        "t.conf:1: fingerprint: `maybe` is not a boolean (use yes/no, true/false, on/off, 1/0)"
    );
    assert_eq!(
        err("denied-peer-ip=10.0.0.0/33\n"),
        "t.conf:1: denied-peer-ip: `10.0.0.0/33`: prefix length too long"
    );
    assert_eq!(
        err("allowed-peer-ip=10.1.1.1-10.0.0.1\n"),
        "t.conf:1: allowed-peer-ip: `10.1.1.1-10.0.0.1`: the range is empty (first address above the last)"
    );
    assert_eq!(
        err("min-port=60000\nmax-port=50000\n"),
        "t.conf:2: max-port: min-port 60000 is above max-port 50000"
    );
    assert_eq!(
        err("relay-ip=not-an-ip\n"),
        "t.conf:1: relay-ip: `not-an-ip` is not an IP address"
    );
    assert_eq!(err("realm\n"), "t.conf:1: realm: needs a value");
    assert_eq!(
        err("user=bob:0xabc\n"),
        "t.conf:1: user: the key of `bob` must be 32 hex digits (an MD5 long-term key), got 3"
    );
    assert_eq!(
        err("external-ip=1.2.3.4\nexternal-ip=5.6.7.8\n"),
        "t.conf:2: external-ip: a bare external-ip may be given once per address family; use PUBLIC/PRIVATE pairs for several"
    );
    assert_eq!(
        err("max-allocate-lifetime=0\n"),
        "t.conf:1: max-allocate-lifetime: must be greater than 0"
    );
    assert_eq!(
        err("rest-api-separator=::\n"),
        "t.conf:1: rest-api-separator: `::` must be a single character"
    );
}

#[test]
fn unknown_and_unimplemented_keys_warn_with_location() {
    let c = parse("frobnicate=1\nno-loopback-peers\ncli-password=x\nmax-bps=1000\n");
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w[0], "t.conf:1: frobnicate: unknown option, ignored");
    assert!(
        w[1].starts_with("t.conf:2: no-loopback-peers: obsolete"),
        "{}",
        w[1]
    );
    assert!(w[2].starts_with("t.conf:3: cli-password: "), "{}", w[2]);
    assert!(w[3].starts_with("t.conf:4: max-bps: "), "{}", w[3]);
    assert_eq!(w.len(), 4);
}

#[test]
fn inline_comment_on_numbers_is_coturns_atoi() {
    let c = parse("user-quota=12 # 4 streams per video call\n");
    assert_eq!(c.user_quota, 12);
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0]
            .to_string()
            .starts_with("t.conf:1: user-quota: text after the number")
    );
    // Strings keep it, as in coturn, with a warning.
    let c = parse("realm=foo # x\n");
    assert_eq!(c.realm.as_deref(), Some("foo # x"));
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn peer_ranges_in_every_form() {
    let c = parse(
        "denied-peer-ip=10.0.0.0-10.255.255.255\ndenied-peer-ip=172.16.0.0/12\ndenied-peer-ip=192.0.2.1\ndenied-peer-ip=fc00::/7\nallowed-peer-ip=10.0.0.1\n",
    );
    assert_eq!(
        c.denied_peer_ips,
        vec![
            AddrRange {
                first: ip("10.0.0.0"),
                last: ip("10.255.255.255")
            },
            AddrRange {
                first: ip("172.16.0.0"),
                last: ip("172.31.255.255")
            },
            AddrRange {
                first: ip("192.0.2.1"),
                last: ip("192.0.2.1")
            },
            AddrRange {
                first: ip("fc00::"),
                last: ip("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
            },
        ]
    );
    assert_eq!(c.allowed_peer_ips.len(), 1);
    // coturn reads an all-zero bound as unbounded; we keep that and say so.
    let c = parse("denied-peer-ip=::0\n");
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].message.contains("denies every peer"));
}

#[test]
fn users_and_secrets() {
    let c = parse(
        "lt-cred-mech\nuser=alice:pw:with:colons\nuser=bob:0x8abac9f92c49a921b09b4da0663dea0a\n",
    );
    assert!(c.lt_cred_mech);
    assert_eq!(c.users[0].name, "alice");
    assert_eq!(c.users[0].key, UserKey::Password("pw:with:colons".into()));
    assert!(matches!(c.users[1].key, UserKey::Key(k) if k[0] == 0x8a && k[15] == 0x0a));
    // Secrets never show in Debug or the summary.
    assert!(!format!("{:?}", c.users).contains("colons"));
    let c = parse("use-auth-secret\nstatic-auth-secret=topsecret\n");
    assert!(!c.effective_summary().contains("topsecret"));
}

#[test]
fn synapse_documented_config() {
    let text = std::fs::read_to_string(data("synapse-doc.conf")).unwrap();
    let c = parse_file_text(&text, &data("synapse-doc.conf")).unwrap();
    assert!(c.use_auth_secret && c.no_tcp_relay && c.no_multicast_peers);
    assert_eq!(c.realm.as_deref(), Some("turn.myserver.org"));
    assert_eq!(c.denied_peer_ips.len(), 22);
    assert_eq!(
        c.allowed_peer_ips,
        vec![AddrRange {
            first: ip("10.0.0.1"),
            last: ip("10.0.0.1")
        }]
    );
    assert_eq!((c.user_quota, c.total_quota), (12, 1200));
    // Exactly: the inline comment on user-quota, and syslog going to stdout.
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, vec!["user-quota", "syslog"], "{:?}", c.warnings);
}

#[test]
fn spantaleev_template() {
    let text = std::fs::read_to_string(data("spantaleev.conf")).unwrap();
    let c = parse_file_text(&text, &data("spantaleev.conf")).unwrap();
    assert_eq!((c.min_port, c.max_port), (49152, 49172));
    assert_eq!(c.external_ips.len(), 1);
    assert_eq!(c.cert.as_deref(), Some(Path::new("/fullchain.pem")));
    assert!(!c.software_attribute);
    let keys: Vec<&str> = c.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "userdb",
            "no-tlsv1",
            "no-tlsv1_1",
            "prod",
            "no-loopback-peers"
        ],
        "{:?}",
        c.warnings
    );
}

#[test]
fn command_line_overrides_the_file() {
    let file = data("spantaleev.conf");
    let file = file.to_str().unwrap();
    let c = load_turn(&[
        "-c",
        file,
        "-p",
        "3479",
        "--min-port=40000",
        "--max-port",
        "40010",
        "-L",
        "127.0.0.1",
        "-X",
        "198.51.100.1",
        "--no-tcp-relay=0",
        "-a",
        "-f",
        "-u",
        "carol:pw",
        "-r",
        "cli.example",
    ])
    .unwrap();
    assert_eq!(c.config_file.as_deref(), Some(Path::new(file)));
    assert_eq!(c.listening_port, 3479);
    assert_eq!((c.min_port, c.max_port), (40000, 40010));
    assert_eq!(c.listening_ips, vec![ip("127.0.0.1")]);
    // A repeatable option on the command line replaces the file's list.
    assert_eq!(c.external_ips.len(), 1);
    assert_eq!(c.external_ips[0].public, ip("198.51.100.1"));
    assert!(!c.no_tcp_relay && c.lt_cred_mech && c.fingerprint);
    assert_eq!(c.users[0].name, "carol");
    assert_eq!(c.realm.as_deref(), Some("cli.example"));
}

#[test]
fn command_line_errors() {
    let e = load_turn(&["-n", "--listening-port=99999"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "command line: listening-port: port 99999 is out of range (1-65535)"
    );
    let e = load_turn(&["-n", "-p"]).unwrap_err().to_string();
    assert_eq!(e, "command line: -p: needs a value");
    let e = load_turn(&["-n", "-Y"]).unwrap_err().to_string();
    assert_eq!(e, "command line: -Y: unknown short option");
    let e = load_turn(&["-n", "stray"]).unwrap_err().to_string();
    assert!(e.starts_with("command line: stray: unexpected argument"));
    let e = load_turn(&["-c", "/nonexistent/turnserver.conf"])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/turnserver.conf: "), "{e}");
    let c = load_turn(&["-n", "--frobnicate"]).unwrap();
    assert_eq!(
        c.warnings[0].to_string(),
        "command line: --frobnicate: unknown option, ignored"
    );
}

#[test]
fn sample_config_of_the_readme_parses_clean() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/turnserver.conf");
    let c = load_turn(&["-c", path.to_str().unwrap()]).unwrap();
    assert!(c.use_auth_secret);
    assert_eq!(c.static_auth_secrets.len(), 1);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}
