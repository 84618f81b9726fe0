//! coturn config files and command lines, end to end through the public API.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use switchyard_config::{
    AddrRange, AddressFamilyDefault, ExternalIp, ServerAddr, TurnConfig, UserKey, load_turn,
    parse_turn_args, parse_turn_file,
};

fn parse(text: &str) -> TurnConfig {
    parse_turn_file(text, Path::new("t.conf")).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    parse_turn_file(text, Path::new("t.conf"))
        .err()
        .unwrap_or_else(|| panic!("expected an error for {text:?}"))
        .to_string()
}

fn args(a: &[&str]) -> TurnConfig {
    parse_turn_args(a).unwrap_or_else(|e| panic!("{a:?}: {e}"))
}

fn args_err(a: &[&str]) -> String {
    parse_turn_args(a)
        .err()
        .unwrap_or_else(|| panic!("expected an error for {a:?}"))
        .to_string()
}

fn warnings(c: &TurnConfig) -> Vec<String> {
    c.warnings.iter().map(ToString::to_string).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> AddrRange {
    AddrRange {
        first: ip(a),
        last: ip(b),
    }
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A scratch config file, removed on drop.
struct TempConf(PathBuf);

impl TempConf {
    fn new(tag: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sy-config-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("turnserver.conf");
        std::fs::write(&p, text).unwrap();
        TempConf(p)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

#[test]
fn defaults_are_coturns() {
    let c = load_turn(&["-n"]).unwrap();
    assert_eq!(c.config_file, None);
    assert_eq!(c.listening_port, 3478);
    assert_eq!(c.tls_listening_port, 5349);
    assert_eq!((c.alt_listening_port, c.alt_tls_listening_port), (0, 0));
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert_eq!(c.max_allocate_lifetime, 3600);
    assert_eq!(c.channel_lifetime, 600);
    assert_eq!(c.permission_lifetime, 300);
    assert_eq!(c.max_allocate_timeout, 60);
    assert_eq!(c.stale_nonce, 600);
    assert_eq!(c.prometheus_port, 9641);
    assert_eq!(c.prometheus_path, "/metrics");
    assert_eq!(c.rest_api_separator, ':');
    assert_eq!(c.cli_port, 5766);
    assert_eq!(c.cli_ip, ip("127.0.0.1"));
    assert_eq!(c.sock_buf_size, 2 * 1024 * 1024);
    assert_eq!(c.unauthorized_ratelimit_rps, 10);
    assert_eq!(
        c.allocation_default_address_family,
        AddressFamilyDefault::Ipv4
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.relay_threads, cpus.min(128));
    assert!(c.stateless_nonce && c.new_log_timestamp);
    assert!(!c.software_attribute && !c.rfc5780 && !c.stun_backward_compatibility);
    assert!(!c.dtls && !c.cli && !c.fingerprint && !c.allow_loopback_peers);
    assert!(c.listening_ips.is_empty() && c.relay_ips.is_empty() && c.external_ips.is_empty());
    assert!(c.warnings.is_empty());
}

#[test]
fn line_grammar() {
    let c = parse(
        "realm=a.example\n  listening-port 4000\nmin-port = 50000\n\tmax-port\t=\t50100  \n# comment=1\n   # indented comment\n\nfingerprint\npidfile=\"/run/t.pid\"\nverbose=0\ncipher-list = \"HIGH\"\r\nlog-file=stdout\t \n",
    );
    assert_eq!(c.realm.as_deref(), Some("a.example"));
    assert_eq!(c.listening_port, 4000);
    assert_eq!((c.min_port, c.max_port), (50000, 50100));
    assert!(c.fingerprint);
    assert_eq!(c.pidfile.as_deref(), Some(Path::new("/run/t.pid")));
    assert!(!c.verbose);
    assert_eq!(c.cipher_list.as_deref(), Some("HIGH"));
    assert_eq!(c.log_file.as_deref(), Some(Path::new("stdout")));
    // Only cipher-list warns (rustls ignores it).
    assert_eq!(
        warnings(&c),
        [
            "t.conf:11: cipher-list: switchyard's TLS (rustls) offers only its modern cipher suites; cipher-list is ignored"
        ]
    );
}

#[test]
fn booleans() {
    let cases = [
        ("", true),
        ("=1", true),
        ("=yes", true),
        (" Y", true),
        ("=true", true),
        ("=on", true),
        ("=ON", true),
        ("=7", true),
        ("=0", false),
        ("=no", false),
        ("=N", false),
        ("=false", false),
        ("=off", false),
        ("=Off", false),
    ];
    for (suffix, want) in cases {
        let c = parse(&format!(
            "no-udp{suffix}\nfingerprint{suffix}\nno-cli{suffix}\n"
        ));
        assert_eq!(
            (c.no_udp, c.fingerprint, c.cli),
            (want, want, !want),
            "{suffix:?}"
        );
    }
    assert_eq!(
        err("\nfingerprint=maybe\n"),
        "t.conf:2: fingerprint: `maybe` is not a boolean (use yes/no, true/false, on/off, 1/0)"
    );
    // Even for ignored options a bad boolean is an error, and a false one does not warn.
    assert!(err("daemon=perhaps\n").starts_with("t.conf:1: daemon: "));
    assert!(parse("daemon=0\noauth=no\n").warnings.is_empty());
}

#[test]
fn every_listed_key() {
    let c = parse(
        "\
use-auth-secret
static-auth-secret=s1
static-auth-secret=s2
realm=r.example
server-name=s.example
listening-port=1000
tls-listening-port=1001
alt-listening-port=1002
alt-tls-listening-port=1003
listening-ip=192.0.2.1
listening-ip=[2001:db8::1]
relay-ip=192.0.2.2
relay-ip=2001:db8::2
external-ip=198.51.100.1
external-ip=2001:db8::99
external-ip=198.51.100.2/10.0.0.2
min-port=40000
max-port=40100
no-multicast-peers
allow-loopback-peers
user-quota=5
total-quota=50
no-tcp-relay
no-udp
no-tcp
no-tls
no-dtls
cert=/c.pem
pkey=/k.pem
no-tlsv1_2
fingerprint
lt-cred-mech
user=alice:pw
user=bob:0x00112233445566778899aabbccddeeff
stale-nonce=0
max-allocate-lifetime=1800
channel-lifetime=300
permission-lifetime=200
max-allocate-timeout=30
prometheus-port=9000
prometheus-address=127.0.0.1
prometheus-path=/m
verbose
Verbose
log-file=/var/log/t.log
syslog-facility=LOG_LOCAL0
simple-log
no-stdout-log
new-log-timestamp=0
new-log-timestamp-format=%H:%M
log-min-level=warning
log-binding
no-cli
cli-ip=127.0.0.2
cli-port=5767
cli-password=pw
pidfile=/run/t.pid
no-software-attribute
no-rfc5780
no-stun-backward-compatibility
cpus=3
stun-only
no-stun
keep-address-family=0
allocation-default-address-family=ipv6
rfc5766-channel-numbers
sock-buf-size=65536
udp-recvmmsg=0
udp-gso
stateless-nonce=0
stateless-nonce-secret=n
unauthorized-ratelimit
unauthorized-ratelimit-rps=20
include-reason-string
drop-invalid-packets
no-dynamic-realms
no-auth-pings
no-dynamic-ip-list
response-origin-only-with-rfc5780
rest-api-separator=-
",
    );
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
    assert!(c.use_auth_secret && c.lt_cred_mech && !c.no_auth);
    assert_eq!(c.static_auth_secrets, ["s1", "s2"]);
    assert_eq!(c.realm.as_deref(), Some("r.example"));
    assert_eq!(c.server_name.as_deref(), Some("s.example"));
    assert_eq!(
        (
            c.listening_port,
            c.tls_listening_port,
            c.alt_listening_port,
            c.alt_tls_listening_port
        ),
        (1000, 1001, 1002, 1003)
    );
    assert_eq!(c.listening_ips, [ip("192.0.2.1"), ip("2001:db8::1")]);
    assert_eq!(c.relay_ips, [ip("192.0.2.2"), ip("2001:db8::2")]);
    assert_eq!(
        c.external_ips,
        [
            ExternalIp {
                public: ip("198.51.100.1"),
                private: None
            },
            ExternalIp {
                public: ip("2001:db8::99"),
                private: None
            },
            ExternalIp {
                public: ip("198.51.100.2"),
                private: Some(ip("10.0.0.2"))
            },
        ]
    );
    assert_eq!((c.min_port, c.max_port), (40000, 40100));
    assert!(c.no_multicast_peers && c.allow_loopback_peers);
    assert_eq!((c.user_quota, c.total_quota), (5, 50));
    assert!(c.no_tcp_relay && !c.no_udp_relay && c.no_udp && c.no_tcp && c.no_tls && c.no_dtls);
    assert_eq!(c.cert.as_deref(), Some(Path::new("/c.pem")));
    assert_eq!(c.pkey.as_deref(), Some(Path::new("/k.pem")));
    assert!(c.no_tlsv1_2 && c.fingerprint);
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.users[0].name, "alice");
    assert_eq!(c.users[0].key, UserKey::Password("pw".into()));
    assert_eq!(
        c.users[1].key,
        UserKey::Key([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff
        ])
    );
    assert_eq!(c.stale_nonce, 0);
    assert_eq!(
        (
            c.max_allocate_lifetime,
            c.channel_lifetime,
            c.permission_lifetime,
            c.max_allocate_timeout
        ),
        (1800, 300, 200, 30)
    );
    assert_eq!(c.prometheus_port, 9000);
    assert_eq!(c.prometheus_address, Some(ip("127.0.0.1")));
    assert_eq!(c.prometheus_path, "/m");
    assert!(c.verbose && c.extra_verbose);
    assert_eq!(c.log_file.as_deref(), Some(Path::new("/var/log/t.log")));
    assert_eq!(c.syslog_facility.as_deref(), Some("LOG_LOCAL0"));
    assert!(c.simple_log && c.no_stdout_log && !c.new_log_timestamp && c.log_binding);
    assert_eq!(c.new_log_timestamp_format.as_deref(), Some("%H:%M"));
    assert_eq!(c.log_min_level.as_deref(), Some("warning"));
    assert!(!c.cli);
    assert_eq!((c.cli_ip, c.cli_port), (ip("127.0.0.2"), 5767));
    assert_eq!(c.cli_password.as_deref(), Some("pw"));
    assert_eq!(c.pidfile.as_deref(), Some(Path::new("/run/t.pid")));
    assert!(!c.software_attribute && !c.rfc5780 && !c.stun_backward_compatibility);
    assert_eq!((c.cpus, c.relay_threads), (Some(3), 3));
    assert!(c.stun_only && c.no_stun);
    assert_eq!(
        c.allocation_default_address_family,
        AddressFamilyDefault::Ipv6
    );
    assert!(c.rfc5766_channel_numbers);
    assert_eq!(c.sock_buf_size, 65536);
    assert!(!c.udp_recvmmsg && c.udp_gso);
    assert!(!c.stateless_nonce);
    assert_eq!(c.stateless_nonce_secret.as_deref(), Some("n"));
    assert!(c.unauthorized_ratelimit);
    assert_eq!(c.unauthorized_ratelimit_rps, 20);
    assert!(c.include_reason_string && c.drop_invalid_packets && c.no_dynamic_realms);
    assert_eq!(c.rest_api_separator, '-');
}

#[test]
fn stored_but_unimplemented_options_warn() {
    let c = parse(
        "prometheus\nmax-bps=1000\nbps-capacity=100000\npkey-pwd=x\nCA-file=/ca.pem\ndh-file=/dh.pem\nec-curve-name=prime256v1\ndh566\ndh1066\ntlsv1\ntlsv1_1\nsyslog\nsecure-stun\nproc-user=turn\nproc-group=turn\ncli\nstun-backward-compatibility\ncheck-origin-consistency\nuserdb=/var/lib/turn/turndb\n",
    );
    assert!(c.prometheus && c.dh566 && c.dh1066 && c.tlsv1 && c.tlsv1_1 && c.syslog);
    assert!(c.secure_stun && c.cli && c.stun_backward_compatibility);
    assert!(c.check_origin_consistency);
    assert_eq!((c.max_bps, c.bps_capacity), (1000, 100000));
    assert_eq!(c.pkey_pwd.as_deref(), Some("x"));
    assert_eq!(c.ca_file.as_deref(), Some(Path::new("/ca.pem")));
    assert_eq!(c.dh_file.as_deref(), Some(Path::new("/dh.pem")));
    assert_eq!(c.ec_curve_name.as_deref(), Some("prime256v1"));
    assert_eq!(
        (c.proc_user.as_deref(), c.proc_group.as_deref()),
        (Some("turn"), Some("turn"))
    );
    assert_eq!(c.userdb.as_deref(), Some(Path::new("/var/lib/turn/turndb")));
    let w = warnings(&c);
    // Implemented: prometheus (1), max-bps (2), bps-capacity (3), syslog (12), proc-user
    // (14), proc-group (15).
    let lines: Vec<usize> = (1..=19)
        .filter(|l| ![1, 2, 3, 12, 14, 15].contains(l))
        .collect();
    assert_eq!(w.len(), lines.len(), "{w:#?}");
    for (w, line) in w.iter().zip(&lines) {
        assert!(w.starts_with(&format!("t.conf:{line}: ")), "{w}");
    }
    assert!(w[0].starts_with("t.conf:4: pkey-pwd: "), "{}", w[0]);
    assert_eq!(
        w[w.len() - 1],
        "t.conf:19: userdb: user databases are not read by switchyard (use static-auth-secret or user=); the path is kept but unused"
    );
}

#[test]
fn alternate_servers_and_mobility_are_implemented() {
    let c = parse(
        "alternate-server=192.0.2.9:3479\ntls-alternate-server=[2001:db8::9]:5349\nmobility\nrfc5780\ndtls\n",
    );
    assert!(c.mobility && c.rfc5780 && c.dtls);
    assert_eq!(
        c.alternate_servers,
        [ServerAddr {
            host: "192.0.2.9".into(),
            port: Some(3479)
        }]
    );
    assert_eq!(
        c.tls_alternate_servers,
        [ServerAddr {
            host: "2001:db8::9".into(),
            port: Some(5349)
        }]
    );
    assert_eq!(warnings(&c), Vec::<String>::new());
}

#[test]
fn not_implemented_and_unknown_keys_warn() {
    let c = parse(
        "oauth\naux-server=192.0.2.1:3478\nweb-admin\nno-loopback-peers\nredis-userdb=\"ip=127.0.0.1\"\nmultiplex-peer\nbogus-option=1\nverbos\nca-file=/x\ndaemon\n",
    );
    assert_eq!(
        warnings(&c),
        [
            "t.conf:1: oauth: not implemented by switchyard, ignored",
            "t.conf:2: aux-server: not implemented by switchyard, ignored",
            "t.conf:3: web-admin: the telnet CLI and web admin are not provided by switchyard (logs replace them), ignored",
            "t.conf:4: no-loopback-peers: obsolete since coturn 4.5.1 and has no effect: loopback peers are denied by default (allow-loopback-peers opens them)",
            "t.conf:5: redis-userdb: database backends are not supported by switchyard (use static-auth-secret or user=), ignored",
            "t.conf:6: multiplex-peer: not implemented by switchyard, ignored",
            "t.conf:7: bogus-option: unknown option, ignored",
            "t.conf:8: verbos: unknown option, ignored",
            "t.conf:9: ca-file: unknown option, ignored (option names are case-sensitive: did you mean `CA-file`?)",
            "t.conf:10: daemon: switchyard stays in the foreground (run it under systemd or a container runtime), ignored",
        ]
    );
    assert!(c.ca_file.is_none());
}

#[test]
fn every_appendix_a_key_is_recognised() {
    // turn-anchors Appendix A (coturn 4.17.1 long_options[]) plus the 4.6.1-only names.
    let keys = "listening-device listening-port tls-listening-port alt-listening-port \
        alt-tls-listening-port tcp-proxy-port listening-ip relay-device relay-ip external-ip \
        relay-threads min-port max-port sock-buf-size lt-cred-mech no-auth user userdb db \
        psql-userdb sql-userdb mysql-userdb mongo-userdb redis-userdb redis-statsdb \
        use-auth-secret static-auth-secret no-auth-pings no-dynamic-ip-list no-dynamic-realms \
        realm server-name oauth prometheus prometheus-port prometheus-address prometheus-path \
        prometheus-username-labels prometheus-tls prometheus-cert prometheus-key user-quota \
        total-quota max-bps bps-capacity verbose Verbose daemon software-attribute \
        no-software-attribute fingerprint check-origin-consistency no-udp no-tcp no-tls dtls \
        no-dtls no-udp-relay no-tcp-relay stale-nonce max-allocate-lifetime channel-lifetime \
        permission-lifetime stun-only no-stun cert raw-public-keys pkey pkey-pwd cipher-list \
        CA-file dh-file ec-curve-name dh566 dh1066 tlsv1 tlsv1_1 no-tlsv1_2 log-file \
        no-stdout-log syslog simple-log log-min-level new-log-timestamp \
        new-log-timestamp-format syslog-facility log-binding aux-server udp-self-balance \
        alternate-server tls-alternate-server tcp-alternate-server udp-alternate-server \
        rest-api-separator max-allocate-timeout drain-min-allocations no-multicast-peers \
        allow-loopback-peers allowed-peer-ip denied-peer-ip pidfile secure-stun proc-user \
        proc-group mobility no-cli cli cli-ip cli-port cli-password cli-max-output-sessions \
        web-admin web-admin-ip web-admin-port web-admin-listen-on-workers server-relay \
        secret-key-file acme-redirect keep-address-family allocation-default-address-family \
        no-rfc5780 rfc5780 stun-backward-compatibility rfc5766-channel-numbers \
        rfc3489-compatibility response-origin-only-with-rfc5780 respond-http-unsupported \
        drop-invalid-packets drop-invalid-packets-log include-reason-string udp-recvmmsg \
        udp-recvmmsg-log udp-sendmmsg-log udp-gso multiplex-peer multiplex-peer-port \
        multiplex-peer-max-peers version cpus unauthorized-ratelimit unauthorized-ratelimit-rps \
        stateless-nonce stateless-nonce-secret prod no-tlsv1 no-tlsv1_1 \
        no-stun-backward-compatibility no-loopback-peers";
    for key in keys.split_whitespace() {
        // `--key` with no value: either accepted, or an error that is about the value — never
        // "unknown option".
        let r = parse_turn_args(&[format!("--{key}")]);
        let text = match &r {
            Ok(c) => warnings(c).join("\n"),
            Err(e) => e.to_string(),
        };
        assert!(!text.contains("unknown option"), "{key}: {text}");
        if let Err(e) = r {
            assert_eq!(e.to_string(), format!("command line: {key}: needs a value"));
        }
    }
}

#[test]
fn integer_with_inline_comment_warns_and_strings_keep_it() {
    let c = parse("user-quota=12 # 4 streams per video call\nrealm=foo # x\n");
    assert_eq!(c.user_quota, 12);
    assert_eq!(c.realm.as_deref(), Some("foo # x"));
    assert_eq!(
        warnings(&c),
        [
            "t.conf:1: user-quota: text after the number was ignored: coturn has no inline comments (its atoi() stops at the space); put the comment on its own line",
            "t.conf:2: realm: the value contains ` #`: coturn has no inline comments, so the rest of the line is part of the value",
        ]
    );
    // Ports are strict (coturn 4.17 get_port_value).
    assert_eq!(
        err("listening-port=3478 # default\n"),
        "t.conf:1: listening-port: `3478 # default` is not a port number (1-65535)"
    );
    assert_eq!(
        err("user-quota=12abc\n"),
        "t.conf:1: user-quota: `12abc` is not a number"
    );
    assert_eq!(
        err("user-quota=12 streams\n"),
        "t.conf:1: user-quota: `12 streams` is not a number"
    );
}

#[test]
fn exact_error_strings() {
    let cases = [
        (
            "realm=x\nlistening-port=34x78\n",
            "t.conf:2: listening-port: `34x78` is not a port number (1-65535)",
        ),
        (
            "\n\nmin-port=0\n",
            "t.conf:3: min-port: port 0 is out of range (1-65535)",
        ),
        (
            "tls-listening-port=65536\n",
            "t.conf:1: tls-listening-port: port 65536 is out of range (1-65535)",
        ),
        (
            "listening-ip=1.2.3\n",
            "t.conf:1: listening-ip: `1.2.3` is not an IP address",
        ),
        (
            "relay-ip=localhost\n",
            "t.conf:1: relay-ip: `localhost` is not an IP address",
        ),
        ("realm\n", "t.conf:1: realm: needs a value"),
        (
            "listening-port\n",
            "t.conf:1: listening-port: needs a value",
        ),
        (
            "static-auth-secret=\"\"\n",
            "t.conf:1: static-auth-secret: the value is empty",
        ),
        (
            "min-port=50000\nmax-port=40000\n",
            "t.conf:2: max-port: min-port 50000 is above max-port 40000",
        ),
        (
            "max-port=40000\nmin-port=50000\n",
            "t.conf:2: min-port: min-port 50000 is above max-port 40000",
        ),
        (
            "user=bob:0x1234\n",
            "t.conf:1: user: user `bob`: the key must be 32 hex digits (an MD5 long-term key), got 4",
        ),
        (
            "user=bob:0xzz112233445566778899aabbccddeeff\n",
            "t.conf:1: user: user `bob`: the key is not hexadecimal",
        ),
        (
            "user=nopass\n",
            "t.conf:1: user: expected `name:password` or `name:0x<32 hex digit key>`",
        ),
        (
            "denied-peer-ip=10.0.0.0/33\n",
            "t.conf:1: denied-peer-ip: `10.0.0.0/33`: bad prefix length",
        ),
        (
            "denied-peer-ip=10.0.0.9-10.0.0.1\n",
            "t.conf:1: denied-peer-ip: `10.0.0.9-10.0.0.1`: the range is empty (first address above the last)",
        ),
        (
            "allowed-peer-ip=10.0.0.1-::1\n",
            "t.conf:1: allowed-peer-ip: `10.0.0.1-::1`: the two ends are of different address families",
        ),
        (
            "denied-peer-ip=banana\n",
            "t.conf:1: denied-peer-ip: `banana` is not an address, an `a-b` range or a CIDR prefix",
        ),
        (
            "denied-peer-ip=10.0.0.0-10.0.0.x\n",
            "t.conf:1: denied-peer-ip: `10.0.0.x` is not an IP address",
        ),
        (
            "external-ip=203.0.113.1\nexternal-ip=203.0.113.2\n",
            "t.conf:2: external-ip: a bare external-ip is allowed once per address family (the first is at t.conf:1); use PUBLIC/PRIVATE pairs for several",
        ),
        (
            "external-ip=203.0.113.1/::1\n",
            "t.conf:1: external-ip: `203.0.113.1/::1`: the public and private addresses are of different families",
        ),
        (
            "external-ip=turn.example.org\n",
            "t.conf:1: external-ip: `turn.example.org` is not an IP address",
        ),
        (
            "allocation-default-address-family=ipv5\n",
            "t.conf:1: allocation-default-address-family: `ipv5` is not ipv4, ipv6 or keep",
        ),
        (
            "rest-api-separator=::\n",
            "t.conf:1: rest-api-separator: `::` must be a single character",
        ),
        (
            "channel-lifetime=0\n",
            "t.conf:1: channel-lifetime: must be at least 1",
        ),
        (
            "user-quota=4294967296\n",
            "t.conf:1: user-quota: 4294967296 is too large (at most 4294967295)",
        ),
        (
            "lt-cred-mech\nno-auth\n",
            "t.conf:2: no-auth: lt-cred-mech and no-auth cannot be used together (as in coturn)",
        ),
        (
            "no-udp-relay\nno-tcp-relay\n",
            "t.conf:2: no-tcp-relay: no-udp-relay and no-tcp-relay cannot be used together: nothing could be relayed (as in coturn)",
        ),
        (
            "prometheus-path=metrics\n",
            "t.conf:1: prometheus-path: `metrics` must start with `/`",
        ),
        (
            "multiplex-peer=1\n",
            "t.conf:1: multiplex-peer: takes no value",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text:?}");
    }
}

#[test]
fn peer_ranges_single_dash_and_cidr() {
    let c = parse(
        "denied-peer-ip=192.0.2.7\ndenied-peer-ip=10.0.0.0-10.255.255.255\ndenied-peer-ip=172.16.0.0/12\ndenied-peer-ip=::1\ndenied-peer-ip=fc00::/7\ndenied-peer-ip=64:ff9b::-64:ff9b::ffff:ffff\ndenied-peer-ip=2001:db8::/32\nallowed-peer-ip=10.1.2.3\nallowed-peer-ip=[2001:db8::5]\nallowed-peer-ip=192.168.1.0/24\n",
    );
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
    assert_eq!(
        c.denied_peer_ips,
        [
            range("192.0.2.7", "192.0.2.7"),
            range("10.0.0.0", "10.255.255.255"),
            range("172.16.0.0", "172.31.255.255"),
            range("::1", "::1"),
            range("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            range("64:ff9b::", "64:ff9b::ffff:ffff"),
            range("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ]
    );
    assert_eq!(
        c.allowed_peer_ips,
        [
            range("10.1.2.3", "10.1.2.3"),
            range("2001:db8::5", "2001:db8::5"),
            range("192.168.1.0", "192.168.1.255"),
        ]
    );
}

#[test]
fn all_zero_peer_entries_are_unbounded_like_coturn() {
    for entry in ["::0", "::", "0.0.0.0", "0.0.0.0-0.0.0.0", "::-::"] {
        let c = parse(&format!("denied-peer-ip={entry}\n"));
        assert_eq!(
            c.denied_peer_ips,
            [AddrRange::ALL_V4, AddrRange::ALL_V6],
            "{entry}"
        );
        assert_eq!(
            warnings(&c),
            [
                "t.conf:1: denied-peer-ip: an all-zero address is unbounded in coturn, so this entry denies every IPv4 and IPv6 peer"
            ]
        );
    }
    let c = parse("allowed-peer-ip=::\n");
    assert_eq!(c.allowed_peer_ips, [AddrRange::ALL_V4, AddrRange::ALL_V6]);
    assert!(warnings(&c)[0].contains("allows every IPv4 and IPv6 peer"));
    // A zero lower bound on IPv4 (Synapse's 0.0.0.0-0.255.255.255) means the same in both.
    let c = parse("denied-peer-ip=0.0.0.0-0.255.255.255\n");
    assert!(c.warnings.is_empty());
    assert_eq!(c.denied_peer_ips, [range("0.0.0.0", "0.255.255.255")]);
    // An IPv6 `::` lower bound spills into IPv4 in coturn; switchyard says so.
    let c = parse("denied-peer-ip=::-::ffff:ffff\n");
    assert_eq!(c.denied_peer_ips, [range("::", "::ffff:ffff")]);
    assert_eq!(
        warnings(&c),
        [
            "t.conf:1: denied-peer-ip: coturn reads a `::` lower bound as unbounded and so this entry also denies every IPv4 peer there; switchyard applies it to IPv6 addresses only"
        ]
    );
}

#[test]
fn synapse_doc_config() {
    let path = data("synapse-doc.conf");
    let c = load_turn(&["-c", path.to_str().unwrap()]).unwrap();
    assert_eq!(c.config_file.as_deref(), Some(path.as_path()));
    assert!(c.use_auth_secret);
    assert_eq!(
        c.static_auth_secrets,
        ["n0t4ctuAllymatr1Xd0TorgSshar3d5ecret4obvIousreAsons"]
    );
    assert_eq!(c.realm.as_deref(), Some("turn.myserver.org"));
    assert!(c.no_tcp_relay && c.no_multicast_peers && c.syslog);
    assert_eq!(c.denied_peer_ips.len(), 22);
    assert!(c.denied_peer_ips.contains(&range("::1", "::1")));
    assert!(
        c.denied_peer_ips
            .contains(&range("::ffff:0.0.0.0", "::ffff:255.255.255.255"))
    );
    assert_eq!(c.allowed_peer_ips, [range("10.0.0.1", "10.0.0.1")]);
    assert_eq!((c.user_quota, c.total_quota), (12, 1200));
    let p = path.display();
    assert_eq!(
        warnings(&c),
        [format!(
            "{p}:43: user-quota: text after the number was ignored: coturn has no inline comments (its atoi() stops at the space); put the comment on its own line"
        ),]
    );
}

#[test]
fn spantaleev_template() {
    let path = data("spantaleev.conf");
    let c = load_turn(&["-c", path.to_str().unwrap()]).unwrap();
    assert!(c.use_auth_secret);
    assert_eq!(c.realm.as_deref(), Some("turn.matrix.example.com"));
    assert_eq!((c.min_port, c.max_port), (49152, 49172));
    assert_eq!(
        c.external_ips,
        [ExternalIp {
            public: ip("203.0.113.7"),
            private: None
        }]
    );
    assert_eq!(c.log_file.as_deref(), Some(Path::new("stdout")));
    assert_eq!(
        c.pidfile.as_deref(),
        Some(Path::new("/var/tmp/turnserver.pid"))
    );
    assert_eq!(
        c.userdb.as_deref(),
        Some(Path::new("/var/tmp/turnserver.db"))
    );
    assert_eq!(c.cert.as_deref(), Some(Path::new("/fullchain.pem")));
    assert_eq!(c.pkey.as_deref(), Some(Path::new("/privkey.pem")));
    assert!(!c.cli && !c.software_attribute && c.no_tcp_relay && c.no_multicast_peers);
    assert!(c.no_tlsv1 && c.no_tlsv1_1);
    assert_eq!((c.user_quota, c.total_quota), (100, 1000));
    assert_eq!(c.denied_peer_ips.len(), 10);
    assert_eq!(c.allowed_peer_ips, [range("192.168.1.10", "192.168.1.10")]);
    let w: Vec<String> = warnings(&c)
        .iter()
        .map(|w| w.replace(&path.display().to_string(), "F"))
        .collect();
    assert_eq!(
        w,
        [
            "F:16: userdb: user databases are not read by switchyard (use static-auth-secret or user=); the path is kept but unused",
            "F:22: no-tlsv1: obsolete (removed in coturn 4.7): TLS 1.0 is never offered by switchyard, nothing to disable",
            "F:23: no-tlsv1_1: obsolete (removed in coturn 4.7): TLS 1.1 is never offered by switchyard, nothing to disable",
            "F:25: prod: obsolete alias of no-software-attribute (removed in coturn 4.7); SOFTWARE is not sent by default anyway",
        ]
    );
}

#[test]
fn docker_nat_sample() {
    let path = data("docker-nat.conf");
    let c = load_turn(&["-c", path.to_str().unwrap()]).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
    assert_eq!(c.listening_ips, [ip("172.20.0.5"), ip("fd00:20::5")]);
    assert_eq!(
        c.external_ips,
        [
            ExternalIp {
                public: ip("198.51.100.20"),
                private: Some(ip("172.20.0.5"))
            },
            ExternalIp {
                public: ip("2001:db8:20::5"),
                private: Some(ip("fd00:20::5"))
            },
        ]
    );
    assert_eq!(
        c.static_auth_secrets,
        ["old-secret-still-accepted", "new-secret-handed-out"]
    );
    assert!(matches!(c.users[0].key, UserKey::Key(k) if k[0] == 0x6b && k[15] == 0x77));
    assert_eq!(
        c.users[1].key,
        UserKey::Password("correct horse battery staple".into())
    );
    // Relative TLS paths resolve next to the config file.
    let dir = path.parent().unwrap();
    assert_eq!(c.cert, Some(dir.join("certs/fullchain.pem")));
    assert_eq!(c.pkey, Some(dir.join("certs/privkey.pem")));
    assert_eq!(c.relay_threads, 4);
    assert_eq!(c.stale_nonce, 300);
    assert_eq!(
        c.denied_peer_ips[3],
        range("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    );
    assert!(c.simple_log && !c.no_stdout_log);
}

#[test]
fn enablesecurity_style_config() {
    // The shape of EnableSecurity's coturn-secure-config "recommended" profile.
    let c = parse(
        "listening-port=3478\ntls-listening-port=5349\nlistening-ip=0.0.0.0\nrelay-ip=0.0.0.0\nmin-port=49152\nmax-port=49252\nlt-cred-mech\nuse-auth-secret\nstatic-auth-secret=testing\nrealm=turn.example.com\ncert=/etc/coturn/cert.pem\npkey=/etc/coturn/privkey.pem\ncipher-list=\"HIGH\"\n# no-tlsv1\nno-multicast-peers\ndenied-peer-ip=0.0.0.0-0.255.255.255\ndenied-peer-ip=192.31.196.0-192.31.196.255\ndenied-peer-ip=224.0.0.0-239.255.255.255\ndenied-peer-ip=64:ff9b:1::-64:ff9b:1:ffff:ffff:ffff:ffff:ffff\ndenied-peer-ip=100::1:0:0:0:0-100::1:ffff:ffff:ffff:ffff\ndenied-peer-ip=3fff::-3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff\nno-rfc5780\nno-tcp-relay\nuser-quota=100\ntotal-quota=10000\nmax-allocate-lifetime=3600\nmax-bps=10000000\nbps-capacity=1000000000\nno-cli\nno-software-attribute\nstale-nonce=600\nverbose\n",
    );
    assert!(c.lt_cred_mech && c.use_auth_secret && c.verbose);
    assert_eq!(c.listening_ips, [ip("0.0.0.0")]);
    assert_eq!(c.denied_peer_ips.len(), 6);
    assert_eq!(
        c.denied_peer_ips[4],
        range("100::1:0:0:0:0", "100::1:ffff:ffff:ffff:ffff")
    );
    assert_eq!((c.max_bps, c.bps_capacity), (10_000_000, 1_000_000_000));
    let w = warnings(&c);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].starts_with("t.conf:13: cipher-list: "));
}

#[test]
fn short_flags() {
    let c = args(&[
        "-n",
        "-L",
        "192.0.2.1",
        "-L192.0.2.2",
        "-p",
        "4000",
        "-u",
        "alice:pw",
        "-r",
        "r.example",
        "-E",
        "192.0.2.3",
        "-X",
        "198.51.100.1",
        "-m",
        "2",
        "-q",
        "3",
        "-Q",
        "30",
        "-s",
        "100",
        "-B",
        "1000",
        "-C",
        "-",
        "-l",
        "stdout",
        "-A",
        "ipv6",
        "-b",
        "/var/tmp/t.db",
        "-afvV",
    ]);
    assert_eq!(c.listening_ips, [ip("192.0.2.1"), ip("192.0.2.2")]);
    assert_eq!(c.listening_port, 4000);
    assert_eq!(c.users[0].name, "alice");
    assert_eq!(c.realm.as_deref(), Some("r.example"));
    assert_eq!(c.relay_ips, [ip("192.0.2.3")]);
    assert_eq!(c.external_ips[0].public, ip("198.51.100.1"));
    assert_eq!(c.relay_threads, 2);
    assert_eq!(
        (c.user_quota, c.total_quota, c.max_bps, c.bps_capacity),
        (3, 30, 100, 1000)
    );
    assert_eq!(c.rest_api_separator, '-');
    assert_eq!(c.log_file.as_deref(), Some(Path::new("stdout")));
    assert_eq!(
        c.allocation_default_address_family,
        AddressFamilyDefault::Ipv6
    );
    assert_eq!(c.userdb.as_deref(), Some(Path::new("/var/tmp/t.db")));
    assert!(c.lt_cred_mech && c.fingerprint && c.verbose && c.extra_verbose);
    assert!(args(&["-z"]).no_auth);
    assert!(args(&["-S"]).stun_only);
    assert_eq!(
        args(&["-K"]).allocation_default_address_family,
        AddressFamilyDefault::Keep
    );
    let c = args(&["-o"]);
    assert_eq!(
        warnings(&c),
        [
            "command line: -o: switchyard stays in the foreground (run it under systemd or a container runtime), ignored"
        ]
    );
    assert_eq!(
        args(&["-c", "/etc/x.conf"]).config_file,
        Some(PathBuf::from("/etc/x.conf"))
    );
    assert_eq!(args_err(&["-p"]), "command line: -p: needs a value");
    assert_eq!(
        args_err(&["-p", "0"]),
        "command line: -p: port 0 is out of range (1-65535)"
    );
    assert_eq!(args_err(&["-Y"]), "command line: -Y: unknown short option");
    assert_eq!(
        args_err(&["stray"]),
        "command line: stray: unexpected argument (options start with - or --)"
    );
}

#[test]
fn long_flags() {
    let c = args(&[
        "--listening-port=4000",
        "--tls-listening-port",
        "4001",
        "--realm",
        "r.example",
        "--use-auth-secret",
        "--static-auth-secret=abc",
        "--fingerprint=no",
        "--stale-nonce",
        "--max-allocate-lifetime=100",
        "--channel-lifetime",
        "120",
        "--denied-peer-ip=10.0.0.0/8",
        "--no-tcp-relay",
        "--log-file=stdout",
    ]);
    assert_eq!((c.listening_port, c.tls_listening_port), (4000, 4001));
    assert_eq!(c.realm.as_deref(), Some("r.example"));
    assert!(c.use_auth_secret && !c.fingerprint && c.no_tcp_relay);
    assert_eq!(c.static_auth_secrets, ["abc"]);
    assert_eq!(c.stale_nonce, 600);
    assert_eq!((c.max_allocate_lifetime, c.channel_lifetime), (100, 120));
    assert_eq!(c.denied_peer_ips, [range("10.0.0.0", "10.255.255.255")]);
    // An optional boolean does not swallow the next argument.
    assert_eq!(
        args_err(&["--fingerprint", "yes"]),
        "command line: yes: unexpected argument (options start with - or --)"
    );
    assert_eq!(args_err(&["--realm"]), "command line: realm: needs a value");
    assert_eq!(
        args_err(&["--listening-port=x"]),
        "command line: listening-port: `x` is not a port number (1-65535)"
    );
    assert_eq!(
        args_err(&["--min-port=60000", "--max-port=50000"]),
        "command line: max-port: min-port 60000 is above max-port 50000"
    );
    let c = args(&["--no-such-flag", "--verbose"]);
    assert!(c.verbose);
    assert_eq!(
        warnings(&c),
        ["command line: no-such-flag: unknown option, ignored"]
    );
}

/// coturn's own `examples/scripts/*/secure_relay*.sh` write `-max-bps=3000000`: one dash,
/// which getopt_long splits into `-m ax-bps=3000000`. The line must still start the server
/// (the script's later `-m 3` is what counts), with a warning naming the slip.
#[test]
fn a_long_option_with_one_dash_warns_and_is_skipped() {
    let c = args(&["-max-bps=3000000", "-f", "-m", "3", "-max-bps"]);
    assert_eq!(c.relay_threads, 3);
    assert_eq!(c.max_bps, 0, "neither reading sets max-bps");
    assert!(c.fingerprint);
    assert_eq!(
        warnings(&c),
        [
            "command line: -max-bps=3000000: one dash before the long option `max-bps`: coturn \
             reads it as short options, switchyard ignores it; write `--max-bps=3000000`",
            "command line: -max-bps: one dash before the long option `max-bps`: coturn reads \
             it as short options, switchyard ignores it; write `--max-bps`",
        ]
    );
    // Single letters and real clusters are still short options.
    assert!(args(&["-f"]).fingerprint);
    assert!(
        args_err(&["-mx"]).contains("not a number"),
        "{}",
        args_err(&["-mx"])
    );
}

#[test]
fn command_line_overrides_the_file() {
    let f = TempConf::new(
        "override",
        "listening-port=3000\nrealm=file.example\nlistening-ip=192.0.2.1\nstatic-auth-secret=file\nexternal-ip=203.0.113.1\nexternal-ip=203.0.113.9/10.0.0.9\nmin-port=50000\nmax-port=50100\nfingerprint\ndenied-peer-ip=10.0.0.0/8\ncert=cert.pem\n",
    );
    let c = load_turn(&[
        "-c",
        f.path(),
        "-p",
        "4000",
        "--realm=cli.example",
        "-L",
        "192.0.2.2",
        "--static-auth-secret=cli",
        "--fingerprint=0",
        "--denied-peer-ip=192.168.0.0/16",
        "-X",
        "198.51.100.1",
        "--min-port=50050",
        "--cert=other.pem",
    ])
    .unwrap();
    assert_eq!(c.config_file.as_deref(), Some(Path::new(f.path())));
    assert_eq!(c.listening_port, 4000);
    assert_eq!(c.realm.as_deref(), Some("cli.example"));
    assert!(!c.fingerprint);
    assert_eq!((c.min_port, c.max_port), (50050, 50100));
    // Repeatable options accumulate, file first.
    assert_eq!(c.listening_ips, [ip("192.0.2.1"), ip("192.0.2.2")]);
    assert_eq!(c.static_auth_secrets, ["file", "cli"]);
    assert_eq!(c.denied_peer_ips.len(), 2);
    // A bare external-ip on the command line replaces the file's bare one.
    assert_eq!(
        c.external_ips,
        [
            ExternalIp {
                public: ip("203.0.113.9"),
                private: Some(ip("10.0.0.9"))
            },
            ExternalIp {
                public: ip("198.51.100.1"),
                private: None
            },
        ]
    );
    assert_eq!(
        warnings(&c),
        [format!(
            "command line: -X: replaces the external-ip given at {}:5",
            f.path()
        )]
    );
    // File paths are relative to the file; command-line paths to the working directory.
    assert_eq!(c.cert.as_deref(), Some(Path::new("other.pem")));
    let c = load_turn(&["-c", f.path()]).unwrap();
    assert_eq!(
        c.cert,
        Some(Path::new(f.path()).parent().unwrap().join("cert.pem"))
    );

    // The conflict check sees both sources: the command line is later.
    let e = load_turn(&["-c", f.path(), "--max-port=49999"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "command line: max-port: min-port 50000 is above max-port 49999"
    );
    // -n ignores -c.
    let c = load_turn(&["-n", "-c", f.path()]).unwrap();
    assert_eq!(c.config_file, None);
    assert_eq!(c.listening_port, 3478);
    // An error in the file names it.
    let bad = TempConf::new("bad", "realm=x\nmax-port=70000\n");
    assert_eq!(
        load_turn(&["-c", bad.path()]).unwrap_err().to_string(),
        format!(
            "{}:2: max-port: port 70000 is out of range (1-65535)",
            bad.path()
        )
    );
    assert!(load_turn(&["-c", "/nonexistent/turnserver.conf"]).is_err());
}

#[test]
fn relay_threads_cpus_and_clamps() {
    assert_eq!(parse("cpus=5\n").relay_threads, 5);
    assert_eq!(parse("cpus=5\nrelay-threads=2\n").relay_threads, 2);
    assert_eq!(parse("relay-threads=0\n").relay_threads, 1);
    let c = parse("relay-threads=500\n");
    assert_eq!(c.relay_threads, 128);
    assert_eq!(
        warnings(&c),
        ["t.conf:1: relay-threads: at most 128 relay threads (as in coturn); using 128"]
    );
    assert_eq!(err("cpus=0\n"), "t.conf:1: cpus: must be at least 1");
}

#[test]
fn software_and_cli_toggles_follow_the_last_word() {
    assert!(parse("software-attribute\n").software_attribute);
    assert!(!parse("software-attribute\nno-software-attribute\n").software_attribute);
    assert!(parse("no-software-attribute\nsoftware-attribute\n").software_attribute);
    assert!(parse("no-cli\ncli\n").cli);
    assert!(!parse("cli\nno-cli\n").cli);
    assert!(parse("no-rfc5780=0\n").rfc5780);
    assert_eq!(parse("stale-nonce\n").stale_nonce, 600);
    assert_eq!(parse("stale-nonce=30\n").stale_nonce, 30);
}

#[test]
fn summary_redacts_secrets_and_round_trips() {
    let c = parse(
        "static-auth-secret=TOPSECRET\nuser=alice:PASSWORD1\nstateless-nonce-secret=NONCESECRET\ncli-password=CLIPW\npkey-pwd=KEYPW\nrealm=r.example\nlistening-ip=192.0.2.1\nexternal-ip=198.51.100.1/10.0.0.1\ndenied-peer-ip=10.0.0.0/8\n",
    );
    let s = c.effective_summary();
    for secret in ["TOPSECRET", "PASSWORD1", "NONCESECRET", "CLIPW", "KEYPW"] {
        assert!(!s.contains(secret), "{secret} leaked:\n{s}");
    }
    assert!(s.contains("static-auth-secret=<redacted>\n"));
    assert!(s.contains("user=alice:<redacted>\n"));
    assert!(s.contains("realm=r.example\n"));
    assert!(s.contains("external-ip=198.51.100.1/10.0.0.1\n"));
    assert!(s.contains("denied-peer-ip=10.0.0.0-10.255.255.255\n"));
    // Every line is key=value, and the non-secret part parses back to the same config.
    for line in s.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains('='), "{line}");
    }
    let back: String = s
        .lines()
        .filter(|l| !l.contains("<redacted>"))
        .map(|l| format!("{l}\n"))
        .collect();
    let d = parse(&back);
    assert_eq!(d.realm, c.realm);
    assert_eq!(d.listening_ips, c.listening_ips);
    assert_eq!(d.external_ips, c.external_ips);
    assert_eq!(d.denied_peer_ips, c.denied_peer_ips);
    assert_eq!(d.effective_summary().lines().count(), s.lines().count() - 5);
}

#[test]
fn non_utf8_arguments_are_errors() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let a = [OsString::from("-r"), OsString::from_vec(vec![0xff, 0xfe])];
    assert!(parse_turn_args(&a).is_err());
}

#[test]
fn repository_sample_config_is_clean() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/turnserver.conf");
    let c = load_turn(&["-c", path.to_str().unwrap()]).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
    assert_eq!(c.listening_port, 3478);
    assert!(c.use_auth_secret && c.no_tcp_relay && !c.cli);
    assert_eq!(c.static_auth_secrets.len(), 1);
    assert_eq!(c.realm.as_deref(), Some("turn.example.org"));
    assert_eq!((c.min_port, c.max_port), (49152, 65535));
    assert_eq!(c.log_file.as_deref(), Some(Path::new("stdout")));
}
