//! coturn's option table: `long_options[]` of `mainrelay.c` at 4.17.1 (turn-anchors
//! Appendix A), plus the 4.6.x names that configs in the wild still carry. The same names
//! are config keys and `--long` flags; the letters are getopt's short options.

/// How an option takes its value (getopt's `has_arg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// `required_argument`: `key=value`, `--key=value`, `--key value`, `-k value`.
    Required,
    /// `optional_argument`: a bare key is allowed; on the command line the value must be
    /// attached (`--key=value`). Mostly booleans.
    Optional,
    /// `no_argument`.
    None,
}

/// What switchyard does with an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    /// Parsed into a [`super::TurnConfig`] field.
    Yes,
    /// Parsed into a field, but switchyard does not act on it: warn with this text when it
    /// is enabled or given a value.
    Stored(&'static str),
    /// Not kept at all: warn with this text (booleans are still checked).
    Ignored(&'static str),
}

pub(crate) struct OptionSpec {
    pub(crate) name: &'static str,
    pub(crate) short: Option<char>,
    pub(crate) arg: Arg,
    pub(crate) support: Support,
}

pub(crate) const NOT_IMPLEMENTED: &str = "not implemented by switchyard, ignored";
const DB: Support = Support::Ignored(
    "database backends are not supported by switchyard (use static-auth-secret or user=), ignored",
);
const ADMIN: Support = Support::Ignored(
    "the telnet CLI and web admin are not provided by switchyard (logs replace them), ignored",
);
const NI: Support = Support::Ignored(NOT_IMPLEMENTED);
const DH: Support = Support::Stored("switchyard's TLS (rustls) uses ECDHE only, ignored");
macro_rules! opts {
    ($( $name:literal $short:tt $arg:ident $support:expr ;)*) => {
        pub(crate) const OPTIONS: &[OptionSpec] = &[
            $( OptionSpec { name: $name, short: opts!(@short $short), arg: Arg::$arg, support: $support }, )*
        ];
    };
    (@short -) => { None };
    (@short $c:literal) => { Some($c) };
}

opts! {
    // Listeners, relay and ports.
    "listening-device" 'd' Required Support::Ignored("binding to a network device is not supported (use listening-ip), ignored");
    "listening-port" 'p' Required Support::Yes;
    "tls-listening-port" - Required Support::Yes;
    "alt-listening-port" - Required Support::Yes;
    "alt-tls-listening-port" - Required Support::Yes;
    "tcp-proxy-port" - Required NI;
    "listening-ip" 'L' Required Support::Yes;
    "relay-device" 'i' Required Support::Ignored("binding to a network device is not supported (use relay-ip), ignored");
    "relay-ip" 'E' Required Support::Yes;
    "external-ip" 'X' Required Support::Yes;
    "relay-threads" 'm' Required Support::Yes;
    "min-port" - Required Support::Yes;
    "max-port" - Required Support::Yes;
    "sock-buf-size" - Required Support::Yes;
    // Authentication and user databases.
    "lt-cred-mech" 'a' Optional Support::Yes;
    "no-auth" 'z' Optional Support::Yes;
    "user" 'u' Required Support::Yes;
    "userdb" 'b' Required Support::Stored("user databases are not read by switchyard (use static-auth-secret or user=); the path is kept but unused");
    "db" - Required Support::Stored("user databases are not read by switchyard (use static-auth-secret or user=); the path is kept but unused");
    "psql-userdb" 'e' Required DB;
    "sql-userdb" - Required DB;
    "mysql-userdb" 'M' Required DB;
    "mongo-userdb" 'J' Required DB;
    "redis-userdb" 'N' Required DB;
    "redis-statsdb" 'O' Required DB;
    "use-auth-secret" - Optional Support::Yes;
    "static-auth-secret" - Required Support::Yes;
    "no-auth-pings" - Optional Support::Yes;
    "no-dynamic-ip-list" - Optional Support::Yes;
    "no-dynamic-realms" - Optional Support::Yes;
    "realm" 'r' Required Support::Yes;
    "server-name" - Required Support::Yes;
    "oauth" - Optional NI;
    // Prometheus.
    "prometheus" - Optional Support::Yes;
    "prometheus-port" - Required Support::Yes;
    "prometheus-address" - Required Support::Yes;
    "prometheus-path" - Required Support::Yes;
    "prometheus-username-labels" - Optional NI;
    "prometheus-tls" - Optional NI;
    "prometheus-cert" - Required NI;
    "prometheus-key" - Required NI;
    // Quotas and bandwidth.
    "user-quota" 'q' Required Support::Yes;
    "total-quota" 'Q' Required Support::Yes;
    "max-bps" 's' Required Support::Yes;
    "bps-capacity" 'B' Required Support::Yes;
    // Verbosity and identity.
    "verbose" 'v' Optional Support::Yes;
    "Verbose" 'V' Optional Support::Yes;
    "daemon" 'o' Optional Support::Ignored("switchyard stays in the foreground (run it under systemd or a container runtime), ignored");
    "software-attribute" - Optional Support::Yes;
    "no-software-attribute" - Optional Support::Yes;
    "prod" - Optional Support::Yes;
    "fingerprint" 'f' Optional Support::Yes;
    "check-origin-consistency" - Optional Support::Stored(NOT_IMPLEMENTED);
    // Listener and relay switches.
    "no-udp" - Optional Support::Yes;
    "no-tcp" - Optional Support::Yes;
    "no-tls" - Optional Support::Yes;
    "dtls" - Optional Support::Yes;
    "no-dtls" - Optional Support::Yes;
    "no-udp-relay" - Optional Support::Yes;
    "no-tcp-relay" - Optional Support::Yes;
    // Timers.
    "stale-nonce" - Optional Support::Yes;
    "max-allocate-lifetime" - Optional Support::Yes;
    "channel-lifetime" - Optional Support::Yes;
    "permission-lifetime" - Optional Support::Yes;
    "max-allocate-timeout" - Required Support::Yes;
    // STUN/TURN mode.
    "stun-only" 'S' Optional Support::Yes;
    "no-stun" - Optional Support::Yes;
    // TLS.
    "cert" - Required Support::Yes;
    "raw-public-keys" - Optional NI;
    "pkey" - Required Support::Yes;
    "pkey-pwd" - Required Support::Stored("encrypted private keys are not supported by switchyard (give an unencrypted PEM key), ignored");
    "cipher-list" - Required Support::Stored("switchyard's TLS (rustls) offers only its modern cipher suites; cipher-list is ignored");
    "CA-file" - Required Support::Stored("TLS client certificate checks are not implemented by switchyard yet, ignored");
    "dh-file" - Required DH;
    "ec-curve-name" - Required Support::Stored("switchyard's TLS (rustls) picks the key-exchange group itself, ignored");
    "dh566" - Optional DH;
    "dh1066" - Optional DH;
    "tlsv1" - Optional Support::Stored("TLS 1.0 is never offered by switchyard, ignored");
    "tlsv1_1" - Optional Support::Stored("TLS 1.1 is never offered by switchyard, ignored");
    "no-tlsv1" - Optional Support::Stored("obsolete (removed in coturn 4.7): TLS 1.0 is never offered by switchyard, nothing to disable");
    "no-tlsv1_1" - Optional Support::Stored("obsolete (removed in coturn 4.7): TLS 1.1 is never offered by switchyard, nothing to disable");
    "no-tlsv1_2" - Optional Support::Yes;
    // Logging.
    "log-file" 'l' Required Support::Yes;
    "no-stdout-log" - Optional Support::Yes;
    "syslog" - Optional Support::Yes;
    "simple-log" - Optional Support::Yes;
    "log-min-level" - Required Support::Yes;
    "new-log-timestamp" - Optional Support::Yes;
    "new-log-timestamp-format" - Required Support::Yes;
    "syslog-facility" - Required Support::Yes;
    "log-binding" - Optional Support::Yes;
    // Alternate and auxiliary servers.
    "aux-server" - Required NI;
    "udp-self-balance" - Optional NI;
    "alternate-server" - Required Support::Yes;
    "tls-alternate-server" - Required Support::Yes;
    "tcp-alternate-server" - Required NI;
    "udp-alternate-server" - Required NI;
    // REST API and allocation timing.
    "rest-api-separator" 'C' Required Support::Yes;
    "drain-min-allocations" - Required NI;
    // Peer ACL.
    "no-multicast-peers" - Optional Support::Yes;
    "allow-loopback-peers" - Optional Support::Yes;
    "no-loopback-peers" - Optional Support::Ignored("obsolete since coturn 4.5.1 and has no effect: loopback peers are denied by default (allow-loopback-peers opens them)");
    "allowed-peer-ip" - Required Support::Yes;
    "denied-peer-ip" - Required Support::Yes;
    // switchyard only: peers on these ports alone (LiveKit mode's embedded relay).
    "allowed-peer-port" - Required Support::Yes;
    // Process.
    "pidfile" - Required Support::Yes;
    "secure-stun" - Optional Support::Stored(NOT_IMPLEMENTED);
    "proc-user" - Required Support::Yes;
    "proc-group" - Required Support::Yes;
    "mobility" - Optional Support::Yes;
    // CLI and web admin.
    "no-cli" - Optional Support::Yes;
    "cli" - Optional Support::Stored("the telnet CLI is not provided by switchyard, ignored");
    "cli-ip" - Required Support::Yes;
    "cli-port" - Required Support::Yes;
    "cli-password" - Required Support::Yes;
    "cli-max-output-sessions" - Required ADMIN;
    "web-admin" - Optional ADMIN;
    "web-admin-ip" - Required ADMIN;
    "web-admin-port" - Required ADMIN;
    "web-admin-listen-on-workers" - Optional ADMIN;
    "server-relay" - Optional NI;
    "secret-key-file" - Required DB;
    "acme-redirect" - Required NI;
    // Address families.
    "keep-address-family" 'K' Optional Support::Yes;
    "allocation-default-address-family" 'A' Required Support::Yes;
    // Protocol compatibility.
    "no-rfc5780" - Optional Support::Yes;
    "rfc5780" - Optional Support::Yes;
    "stun-backward-compatibility" - Optional Support::Stored("MAPPED-ADDRESS is never added to Binding responses by switchyard (it doubles the reflection factor), ignored");
    "no-stun-backward-compatibility" - Optional Support::Yes;
    "rfc5766-channel-numbers" - Optional Support::Yes;
    "rfc3489-compatibility" - Optional NI;
    "response-origin-only-with-rfc5780" - Optional Support::Yes;
    "respond-http-unsupported" - Optional NI;
    "drop-invalid-packets" - Optional Support::Yes;
    "drop-invalid-packets-log" - Optional NI;
    "include-reason-string" - Optional Support::Yes;
    // UDP fast paths and multiplex-peer.
    "udp-recvmmsg" - Optional Support::Yes;
    "udp-recvmmsg-log" - Optional NI;
    "udp-sendmmsg-log" - Optional NI;
    "udp-gso" - Optional Support::Yes;
    "multiplex-peer" - None NI;
    "multiplex-peer-port" - Required NI;
    "multiplex-peer-max-peers" - Required NI;
    // Misc.
    "version" - Optional Support::Yes;
    "cpus" - Required Support::Yes;
    "unauthorized-ratelimit" - Optional Support::Yes;
    "unauthorized-ratelimit-rps" - Optional Support::Yes;
    "stateless-nonce" - Optional Support::Yes;
    "stateless-nonce-secret" - Required Support::Yes;
    // coturn 4.6.1's `ne` network-engine selector, kept in its example conf.
    "ne" - Required Support::Ignored("the network-engine selector is obsolete, ignored");
}

/// The option named `name` (exact and case-sensitive: coturn has `verbose` and `Verbose`).
pub(crate) fn by_name(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The option with short letter `c`.
pub(crate) fn by_short(c: char) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.short == Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shorts_are_unique() {
        for (i, a) in OPTIONS.iter().enumerate() {
            for b in &OPTIONS[i + 1..] {
                assert_ne!(a.name, b.name);
                if a.short.is_some() {
                    assert_ne!(a.short, b.short, "{} and {}", a.name, b.name);
                }
            }
        }
    }

    #[test]
    fn every_appendix_a_short_flag_is_there() {
        // turn-anchors Appendix A (coturn 4.17.1 `long_options[]`).
        let shorts = [
            ('d', "listening-device"),
            ('p', "listening-port"),
            ('L', "listening-ip"),
            ('i', "relay-device"),
            ('E', "relay-ip"),
            ('X', "external-ip"),
            ('m', "relay-threads"),
            ('a', "lt-cred-mech"),
            ('z', "no-auth"),
            ('u', "user"),
            ('b', "userdb"),
            ('e', "psql-userdb"),
            ('M', "mysql-userdb"),
            ('J', "mongo-userdb"),
            ('N', "redis-userdb"),
            ('O', "redis-statsdb"),
            ('r', "realm"),
            ('q', "user-quota"),
            ('Q', "total-quota"),
            ('s', "max-bps"),
            ('B', "bps-capacity"),
            ('v', "verbose"),
            ('V', "Verbose"),
            ('o', "daemon"),
            ('f', "fingerprint"),
            ('S', "stun-only"),
            ('l', "log-file"),
            ('C', "rest-api-separator"),
            ('K', "keep-address-family"),
            ('A', "allocation-default-address-family"),
        ];
        for (c, name) in shorts {
            assert_eq!(by_short(c).map(|o| o.name), Some(name), "-{c}");
        }
        assert_eq!(
            OPTIONS.iter().filter(|o| o.short.is_some()).count(),
            shorts.len()
        );
    }
}
