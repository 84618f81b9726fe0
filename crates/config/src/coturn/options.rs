//! coturn's option table (`long_options[]` of `mainrelay.c`, 4.17.1, plus the 4.6.x names
//! that configs in the wild still carry). The same names work as config keys and as
//! `--long` flags; the short letters are getopt's.

/// How an option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A value is required (`key=value`, `--key=value`, `--key value`, `-k value`).
    Required,
    /// A boolean flag: bare means true; `key=0|no|off|false` etc. in a file or
    /// `--key=value` on the command line.
    Flag,
    /// A flag whose value is optional and not a boolean (`stale-nonce[=N]`).
    OptionalValue,
}

/// What switchyard does with an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    /// Implemented.
    Yes,
    /// Accepted and ignored, with this warning.
    Ignored(&'static str),
}

pub(crate) struct OptionSpec {
    pub(crate) name: &'static str,
    pub(crate) short: Option<char>,
    pub(crate) arg: Arg,
    pub(crate) support: Support,
}

const NOT_YET: Support = Support::Ignored("not implemented by switchyard yet, ignored");
const DB: Support = Support::Ignored(
    "database backends are not supported by switchyard (use static-auth-secret or user=), ignored",
);
const ADMIN: Support = Support::Ignored(
    "the telnet CLI and web admin are not provided by switchyard (metrics and logs replace them), ignored",
);
const OBSOLETE_LOOPBACK: Support = Support::Ignored(
    "obsolete since coturn 4.5.1 and has no effect: loopback peers are denied by default (allow-loopback-peers opens them)",
);

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
    "listening-device" 'd' Required Support::Ignored("binding to a device is not supported; use listening-ip, ignored");
    "listening-port" 'p' Required Support::Yes;
    "tls-listening-port" - Required Support::Yes;
    "alt-listening-port" - Required NOT_YET;
    "alt-tls-listening-port" - Required NOT_YET;
    "tcp-proxy-port" - Required NOT_YET;
    "listening-ip" 'L' Required Support::Yes;
    "relay-device" 'i' Required Support::Ignored("binding to a device is not supported; use relay-ip, ignored");
    "relay-ip" 'E' Required Support::Yes;
    "external-ip" 'X' Required Support::Yes;
    "relay-threads" 'm' Required Support::Yes;
    "min-port" - Required Support::Yes;
    "max-port" - Required Support::Yes;
    "sock-buf-size" - Required Support::Yes;
    // Authentication.
    "lt-cred-mech" 'a' Flag Support::Yes;
    "no-auth" 'z' Flag Support::Yes;
    "user" 'u' Required Support::Yes;
    "userdb" 'b' Required Support::Ignored("user databases are not read by switchyard (use static-auth-secret or user=), ignored");
    "db" - Required DB;
    "psql-userdb" 'e' Required DB;
    "sql-userdb" - Required DB;
    "mysql-userdb" 'M' Required DB;
    "mongo-userdb" 'J' Required DB;
    "redis-userdb" 'N' Required DB;
    "redis-statsdb" 'O' Required DB;
    "use-auth-secret" - Flag Support::Yes;
    "static-auth-secret" - Required Support::Yes;
    "secret-key-file" - Required DB;
    "no-auth-pings" - Flag NOT_YET;
    "no-dynamic-ip-list" - Flag NOT_YET;
    "no-dynamic-realms" - Flag NOT_YET;
    "realm" 'r' Required Support::Yes;
    "server-name" - Required Support::Yes;
    "oauth" - Flag NOT_YET;
    // Prometheus.
    "prometheus" - Flag Support::Ignored("the metrics endpoint is not implemented by switchyard yet, ignored");
    "prometheus-port" - Required Support::Yes;
    "prometheus-address" - Required Support::Yes;
    "prometheus-path" - Required Support::Yes;
    "prometheus-username-labels" - Flag NOT_YET;
    "prometheus-tls" - Flag NOT_YET;
    "prometheus-cert" - Required NOT_YET;
    "prometheus-key" - Required NOT_YET;
    // Quotas and bandwidth.
    "user-quota" 'q' Required Support::Yes;
    "total-quota" 'Q' Required Support::Yes;
    "max-bps" 's' Required Support::Ignored("per-allocation bandwidth limits are not implemented by switchyard yet, ignored");
    "bps-capacity" 'B' Required Support::Ignored("server-wide bandwidth limits are not implemented by switchyard yet, ignored");
    // Verbosity and identity.
    "verbose" 'v' Flag Support::Yes;
    "Verbose" 'V' Flag Support::Yes;
    "daemon" 'o' Flag Support::Ignored("switchyard stays in the foreground (run it under systemd or a container runtime), ignored");
    "software-attribute" - Flag Support::Yes;
    "no-software-attribute" - Flag Support::Yes;
    "prod" - Flag Support::Yes;
    "fingerprint" 'f' Flag Support::Yes;
    "check-origin-consistency" - Flag NOT_YET;
    // Listener and relay switches.
    "no-udp" - Flag Support::Yes;
    "no-tcp" - Flag Support::Yes;
    "no-tls" - Flag Support::Yes;
    "no-dtls" - Flag Support::Yes;
    "dtls" - Flag Support::Ignored("the DTLS listener is not implemented by switchyard yet, ignored");
    "no-udp-relay" - Flag Support::Yes;
    "no-tcp-relay" - Flag Support::Yes;
    // Timers.
    "stale-nonce" - OptionalValue Support::Yes;
    "max-allocate-lifetime" - Required Support::Yes;
    "channel-lifetime" - Required Support::Yes;
    "permission-lifetime" - Required Support::Yes;
    "max-allocate-timeout" - Required Support::Yes;
    // STUN/TURN mode.
    "stun-only" 'S' Flag Support::Yes;
    "no-stun" - Flag Support::Yes;
    // TLS.
    "cert" - Required Support::Yes;
    "raw-public-keys" - Flag NOT_YET;
    "pkey" - Required Support::Yes;
    "pkey-pwd" - Required Support::Ignored("encrypted private keys are not supported; give an unencrypted PEM key, ignored");
    "cipher-list" - Required Support::Ignored("rustls offers only modern cipher suites; cipher-list is ignored");
    "CA-file" - Required NOT_YET;
    "dh-file" - Required Support::Ignored("rustls uses ECDHE only; dh-file is ignored");
    "ec-curve-name" - Required Support::Ignored("rustls picks the key-exchange group; ec-curve-name is ignored");
    "dh566" - Flag Support::Ignored("rustls uses ECDHE only, ignored");
    "dh1066" - Flag Support::Ignored("rustls uses ECDHE only, ignored");
    "tlsv1" - Flag Support::Ignored("TLS 1.0 is never offered, ignored");
    "tlsv1_1" - Flag Support::Ignored("TLS 1.1 is never offered, ignored");
    "no-tlsv1" - Flag Support::Yes;
    "no-tlsv1_1" - Flag Support::Yes;
    "no-tlsv1_2" - Flag Support::Yes;
    // Logging.
    "log-file" 'l' Required Support::Yes;
    "no-stdout-log" - Flag Support::Yes;
    "syslog" - Flag Support::Yes;
    "simple-log" - Flag Support::Yes;
    "log-min-level" - Required Support::Yes;
    "new-log-timestamp" - Flag Support::Yes;
    "new-log-timestamp-format" - Required Support::Yes;
    "syslog-facility" - Required Support::Yes;
    "log-binding" - Flag Support::Yes;
    // Alternate and auxiliary servers.
    "aux-server" - Required NOT_YET;
    "udp-self-balance" - Flag NOT_YET;
    "alternate-server" - Required NOT_YET;
    "tls-alternate-server" - Required NOT_YET;
    "tcp-alternate-server" - Required NOT_YET;
    "udp-alternate-server" - Required NOT_YET;
    // REST API and allocation timing.
    "rest-api-separator" 'C' Required Support::Yes;
    "drain-min-allocations" - Required NOT_YET;
    // Peer ACL.
    "no-multicast-peers" - Flag Support::Yes;
    "allow-loopback-peers" - Flag Support::Yes;
    "no-loopback-peers" - Flag OBSOLETE_LOOPBACK;
    "allowed-peer-ip" - Required Support::Yes;
    "denied-peer-ip" - Required Support::Yes;
    // Process.
    "pidfile" - Required Support::Yes;
    "secure-stun" - Flag NOT_YET;
    "proc-user" - Required NOT_YET;
    "proc-group" - Required NOT_YET;
    "mobility" - Flag NOT_YET;
    // CLI and web admin.
    "no-cli" - Flag Support::Yes;
    "cli" - Flag ADMIN;
    "cli-ip" - Required ADMIN;
    "cli-port" - Required ADMIN;
    "cli-password" - Required ADMIN;
    "cli-max-output-sessions" - Required ADMIN;
    "web-admin" - Flag ADMIN;
    "web-admin-ip" - Required ADMIN;
    "web-admin-port" - Required ADMIN;
    "web-admin-listen-on-workers" - Flag ADMIN;
    "server-relay" - Flag NOT_YET;
    "acme-redirect" - Required NOT_YET;
    // Address families.
    "keep-address-family" 'K' Flag Support::Yes;
    "allocation-default-address-family" 'A' Required Support::Yes;
    // Protocol compatibility.
    "no-rfc5780" - Flag Support::Yes;
    "rfc5780" - Flag Support::Ignored("RFC 5780 NAT behaviour discovery is not implemented by switchyard yet, ignored");
    "stun-backward-compatibility" - Flag Support::Ignored("MAPPED-ADDRESS is not added to Binding responses (it doubles the reflection factor), ignored");
    "no-stun-backward-compatibility" - Flag Support::Yes;
    "rfc5766-channel-numbers" - Flag Support::Yes;
    "rfc3489-compatibility" - Flag NOT_YET;
    "response-origin-only-with-rfc5780" - Flag Support::Yes;
    "respond-http-unsupported" - Flag NOT_YET;
    "drop-invalid-packets" - Flag Support::Yes;
    "drop-invalid-packets-log" - Flag Support::Yes;
    "include-reason-string" - Flag Support::Yes;
    // UDP fast paths and multiplexing.
    "udp-recvmmsg" - Flag Support::Yes;
    "udp-recvmmsg-log" - Flag Support::Yes;
    "udp-sendmmsg-log" - Flag Support::Yes;
    "udp-gso" - Flag Support::Yes;
    "multiplex-peer" - Flag NOT_YET;
    "multiplex-peer-port" - Required NOT_YET;
    "multiplex-peer-max-peers" - Required NOT_YET;
    // Misc.
    "version" - Flag Support::Yes;
    "cpus" - Required Support::Yes;
    "unauthorized-ratelimit" - Flag NOT_YET;
    "unauthorized-ratelimit-rps" - Required NOT_YET;
    "stateless-nonce" - Flag Support::Yes;
    "stateless-nonce-secret" - Required Support::Yes;
    "ne" - Required Support::Ignored("the network-engine selector is obsolete, ignored");
}

/// The option named `name` (exact, case-sensitive: coturn has `verbose` and `Verbose`).
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
}
