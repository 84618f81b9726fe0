//! Applying option occurrences (from the file or the command line) to a [`TurnConfig`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::grammar::{self, parse_bool, parse_hex16, parse_int, parse_port};
use super::options::{self, Arg, OptionSpec, Support};
use super::{
    AddrRange, AddressFamilyDefault, ExternalIp, MAX_RELAY_THREADS, ServerAddr, TurnConfig,
    UserEntry, UserKey,
};
use crate::range::parse_ip;
use crate::{ConfigError, ConfigWarning, Location};

/// One option occurrence before it is applied.
pub(crate) struct Occurrence {
    pub(crate) spec: &'static OptionSpec,
    /// The name as written (`realm`, or `-r` on the command line), for messages.
    pub(crate) key: String,
    pub(crate) value: Option<String>,
    pub(crate) location: Location,
}

/// Bookkeeping for checks that involve several options, across the file and the command
/// line.
#[derive(Default)]
pub(crate) struct State {
    /// The config file's directory: relative TLS file paths resolve against it.
    base_dir: Option<PathBuf>,
    /// Occurrences applied so far: orders them across the file and the command line.
    seq: u64,
    min_port_at: Option<At>,
    max_port_at: Option<At>,
    /// Where the bare `external-ip=PUB` of each family (v4, v6) was given.
    bare_external_at: [Option<Location>; 2],
    relay_threads_set: bool,
    lt_cred_at: Option<At>,
    no_auth_at: Option<At>,
    no_udp_relay_at: Option<At>,
    no_tcp_relay_at: Option<At>,
}

/// Where and in which order an option was applied.
type At = (u64, Location);

impl State {
    pub(crate) fn for_file(path: &Path) -> Self {
        State {
            base_dir: path.parent().map(Path::to_owned),
            ..State::default()
        }
    }

    /// Command-line paths are relative to the working directory.
    pub(crate) fn enter_command_line(&mut self) {
        self.base_dir = None;
    }
}

/// Applies every line of a config file.
pub(crate) fn apply_file(
    config: &mut TurnConfig,
    state: &mut State,
    text: &str,
    path: &Path,
) -> Result<(), ConfigError> {
    for line in grammar::lines(text) {
        let location = Location::File {
            path: path.to_owned(),
            line: line.number,
        };
        match options::by_name(line.key) {
            Some(spec) => apply(
                config,
                state,
                Occurrence {
                    spec,
                    key: line.key.to_owned(),
                    value: line.value.map(str::to_owned),
                    location,
                },
            )?,
            None => config.warnings.push(unknown_option(location, line.key)),
        }
    }
    Ok(())
}

/// coturn only warns about names it does not know ("Bad configuration format"), so configs
/// written for other versions keep working.
pub(crate) fn unknown_option(location: Location, key: &str) -> ConfigWarning {
    let hint = options::OPTIONS
        .iter()
        .find(|o| o.name.eq_ignore_ascii_case(key))
        .map(|o| {
            format!(
                " (option names are case-sensitive: did you mean `{}`?)",
                o.name
            )
        })
        .unwrap_or_default();
    ConfigWarning {
        location,
        key: key.to_owned(),
        message: format!("unknown option, ignored{hint}"),
    }
}

/// The typed view of one occurrence, with the helpers every option needs.
struct Ctx<'a> {
    config: &'a mut TurnConfig,
    key: &'a str,
    value: Option<&'a str>,
    location: &'a Location,
    base_dir: Option<&'a Path>,
}

impl<'a> Ctx<'a> {
    fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.location, self.key, message)
    }

    fn warn(&mut self, message: impl Into<String>) {
        self.config.warnings.push(ConfigWarning {
            location: self.location.clone(),
            key: self.key.to_owned(),
            message: message.into(),
        });
    }

    /// A flag: bare means true, otherwise coturn's boolean grammar.
    fn flag(&self) -> Result<bool, ConfigError> {
        self.value
            .map_or(Ok(true), |v| parse_bool(v).map_err(|m| self.err(m)))
    }

    fn required(&self) -> Result<&'a str, ConfigError> {
        self.value.ok_or_else(|| self.err("needs a value"))
    }

    /// An integer up to `max`, accepting coturn's de-facto `N # comment` with a warning.
    fn int(&mut self, max: u64) -> Result<u64, ConfigError> {
        let (n, comment) = parse_int(self.required()?).map_err(|m| self.err(m))?;
        if n > max {
            return Err(self.err(format!("{n} is too large (at most {max})")));
        }
        if comment {
            self.warn(
                "text after the number was ignored: coturn has no inline comments (its atoi() stops at the space); put the comment on its own line",
            );
        }
        Ok(n)
    }

    fn u32(&mut self) -> Result<u32, ConfigError> {
        Ok(self.int(u64::from(u32::MAX))? as u32)
    }

    /// Seconds that must be at least 1.
    fn seconds(&mut self) -> Result<u32, ConfigError> {
        match self.u32()? {
            0 => Err(self.err("must be at least 1")),
            n => Ok(n),
        }
    }

    fn port(&self) -> Result<u16, ConfigError> {
        parse_port(self.required()?).map_err(|m| self.err(m))
    }

    fn ip(&self) -> Result<IpAddr, ConfigError> {
        let v = self.required()?;
        parse_ip(v).ok_or_else(|| self.err(format!("`{v}` is not an IP address")))
    }

    /// A string kept verbatim, as coturn does; warn when it looks like an inline comment.
    fn string(&mut self) -> Result<String, ConfigError> {
        let v = self.required()?.to_owned();
        if v.contains(" #") || v.contains("\t#") {
            self.warn(
                "the value contains ` #`: coturn has no inline comments, so the rest of the line is part of the value",
            );
        }
        Ok(v)
    }

    /// A non-empty secret (not echoed in messages).
    fn secret(&mut self) -> Result<String, ConfigError> {
        let v = self.string()?;
        if v.is_empty() {
            return Err(self.err("the value is empty"));
        }
        Ok(v)
    }

    fn path(&mut self) -> Result<PathBuf, ConfigError> {
        Ok(PathBuf::from(self.string()?))
    }

    /// A TLS file: relative to the config file's directory when read from a file (coturn
    /// looks next to its config file too), so the server does not depend on its cwd.
    ///
    /// A relative name found neither there nor in the working directory is looked up on
    /// coturn's config search path (`./etc/`, `../etc/`, `/etc/coturn/`, ...), as coturn's
    /// `find_config_file` does for these files: its example scripts pass
    /// `--cert=turn_server_cert.pem` and rely on `examples/etc/`. Not found anywhere, the
    /// name is kept so the error names what was written.
    fn tls_path(&mut self) -> Result<PathBuf, ConfigError> {
        let p = self.path()?;
        if p.is_absolute() {
            return Ok(p);
        }
        let here = match self.base_dir {
            Some(base) => base.join(&p),
            None => p.clone(),
        };
        if here.is_file() {
            return Ok(here);
        }
        Ok(p.to_str()
            .and_then(|name| super::cli::find_config(name, super::cli::SEARCH_DIRS))
            .unwrap_or(here))
    }
}

pub(crate) fn apply(
    config: &mut TurnConfig,
    state: &mut State,
    occ: Occurrence,
) -> Result<(), ConfigError> {
    let Occurrence {
        spec,
        key,
        value,
        location,
    } = occ;
    let base_dir = state.base_dir.clone();
    state.seq += 1;
    let mut c = Ctx {
        config,
        key: &key,
        value: value.as_deref(),
        location: &location,
        base_dir: base_dir.as_deref(),
    };

    if spec.arg == Arg::None && c.value.is_some() {
        return Err(c.err("takes no value"));
    }
    // Booleans are checked even for options switchyard ignores, so a typo does not pass
    // silently; `enabled` decides whether the "not implemented" warning is worth giving.
    let enabled = if spec.arg == Arg::Optional && !takes_number(spec.name) {
        c.flag()?
    } else {
        true
    };
    match spec.support {
        Support::Ignored(why) => {
            if enabled {
                c.warn(why);
            }
            return Ok(());
        }
        Support::Stored(why) => {
            handle(&mut c, state, spec.name)?;
            if enabled {
                c.warn(why);
            }
        }
        Support::Yes => handle(&mut c, state, spec.name)?,
    }
    Ok(())
}

/// Options with `optional_argument` whose value is a number, not a boolean.
pub(crate) fn takes_number(name: &str) -> bool {
    matches!(
        name,
        "stale-nonce"
            | "max-allocate-lifetime"
            | "channel-lifetime"
            | "permission-lifetime"
            | "unauthorized-ratelimit-rps"
    )
}

fn handle(c: &mut Ctx<'_>, state: &mut State, name: &str) -> Result<(), ConfigError> {
    let cli = *c.location == Location::CommandLine;
    let at = (state.seq, c.location.clone());
    match name {
        // ---- listeners, relay, ports
        "listening-port" => c.config.listening_port = c.port()?,
        "tls-listening-port" => c.config.tls_listening_port = c.port()?,
        "alt-listening-port" => c.config.alt_listening_port = c.port()?,
        "alt-tls-listening-port" => c.config.alt_tls_listening_port = c.port()?,
        "listening-ip" => {
            let ip = c.ip()?;
            if !c.config.listening_ips.contains(&ip) {
                c.config.listening_ips.push(ip);
            }
        }
        "relay-ip" => {
            let ip = c.ip()?;
            if !c.config.relay_ips.contains(&ip) {
                c.config.relay_ips.push(ip);
            }
        }
        "external-ip" => external_ip(c, state, cli)?,
        "min-port" => {
            c.config.min_port = c.port()?;
            state.min_port_at = Some(at);
        }
        "max-port" => {
            c.config.max_port = c.port()?;
            state.max_port_at = Some(at);
        }
        "relay-threads" => {
            let n = c.int(u64::MAX)?;
            // coturn: 0 runs the relay in the listener's thread, i.e. one thread.
            c.config.relay_threads = n.clamp(1, MAX_RELAY_THREADS as u64) as usize;
            if n > MAX_RELAY_THREADS as u64 {
                c.warn(format!(
                    "at most {MAX_RELAY_THREADS} relay threads (as in coturn); using {MAX_RELAY_THREADS}"
                ));
            }
            state.relay_threads_set = true;
        }
        "cpus" => {
            let n = c.int(u64::MAX)?;
            if n == 0 {
                return Err(c.err("must be at least 1"));
            }
            c.config.cpus = Some(n.min(MAX_RELAY_THREADS as u64) as usize);
        }
        "sock-buf-size" => {
            c.config.sock_buf_size = usize::try_from(c.int(u64::from(u32::MAX))?).unwrap_or(0)
        }
        "udp-recvmmsg" => c.config.udp_recvmmsg = c.flag()?,
        "udp-gso" => c.config.udp_gso = c.flag()?,

        // ---- authentication
        "lt-cred-mech" => {
            c.config.lt_cred_mech = c.flag()?;
            state.lt_cred_at = c.config.lt_cred_mech.then_some(at);
        }
        "no-auth" => {
            c.config.no_auth = c.flag()?;
            state.no_auth_at = c.config.no_auth.then_some(at);
        }
        "user" => {
            let user = parse_user(c.required()?).map_err(|m| c.err(m))?;
            c.config.users.push(user);
        }
        "userdb" | "db" => c.config.userdb = Some(c.path()?),
        "use-auth-secret" => c.config.use_auth_secret = c.flag()?,
        "static-auth-secret" => {
            let s = c.secret()?;
            if !c.config.static_auth_secrets.contains(&s) {
                c.config.static_auth_secrets.push(s);
            }
        }
        // Without a database there are no dynamic lists or realms: already the behaviour.
        "no-auth-pings" | "no-dynamic-ip-list" => {
            c.flag()?;
        }
        "no-dynamic-realms" => c.config.no_dynamic_realms = c.flag()?,
        "realm" => c.config.realm = Some(c.string()?),
        "rest-api-separator" => {
            let v = c.required()?;
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(ch), None) => c.config.rest_api_separator = ch,
                _ => return Err(c.err(format!("`{v}` must be a single character"))),
            }
        }
        "server-name" => c.config.server_name = Some(c.string()?),
        "check-origin-consistency" => c.config.check_origin_consistency = c.flag()?,
        "stateless-nonce" => c.config.stateless_nonce = c.flag()?,
        "stateless-nonce-secret" => c.config.stateless_nonce_secret = Some(c.secret()?),
        "secure-stun" => c.config.secure_stun = c.flag()?,

        // ---- peers
        "allowed-peer-ip" | "denied-peer-ip" => peer_range(c, name == "denied-peer-ip")?,
        "no-multicast-peers" => c.config.no_multicast_peers = c.flag()?,
        "allow-loopback-peers" => c.config.allow_loopback_peers = c.flag()?,
        "allowed-peer-port" => {
            let port = c.port()?;
            c.config.allowed_peer_ports.push(port);
        }

        // ---- quotas and bandwidth
        "user-quota" => c.config.user_quota = c.u32()?,
        "total-quota" => c.config.total_quota = c.u32()?,
        "max-bps" => c.config.max_bps = c.int(u64::MAX)?,
        "bps-capacity" => c.config.bps_capacity = c.int(u64::MAX)?,
        "unauthorized-ratelimit" => c.config.unauthorized_ratelimit = c.flag()?,
        "unauthorized-ratelimit-rps" => {
            c.config.unauthorized_ratelimit_rps = match c.value {
                None => 10,
                Some(_) => c.u32()?,
            }
        }

        // ---- listeners and relays on/off
        "no-udp" => c.config.no_udp = c.flag()?,
        "no-tcp" => c.config.no_tcp = c.flag()?,
        "no-tls" => c.config.no_tls = c.flag()?,
        "dtls" => c.config.dtls = c.flag()?,
        "no-dtls" => c.config.no_dtls = c.flag()?,
        "no-udp-relay" => {
            c.config.no_udp_relay = c.flag()?;
            state.no_udp_relay_at = c.config.no_udp_relay.then_some(at);
        }
        "no-tcp-relay" => {
            c.config.no_tcp_relay = c.flag()?;
            state.no_tcp_relay_at = c.config.no_tcp_relay.then_some(at);
        }

        // ---- TLS
        "cert" => c.config.cert = Some(c.tls_path()?),
        "pkey" => c.config.pkey = Some(c.tls_path()?),
        "pkey-pwd" => c.config.pkey_pwd = Some(c.string()?),
        "cipher-list" => c.config.cipher_list = Some(c.string()?),
        "CA-file" => c.config.ca_file = Some(c.tls_path()?),
        "dh-file" => c.config.dh_file = Some(c.tls_path()?),
        "ec-curve-name" => c.config.ec_curve_name = Some(c.string()?),
        "dh566" => c.config.dh566 = c.flag()?,
        "dh1066" => c.config.dh1066 = c.flag()?,
        "tlsv1" => c.config.tlsv1 = c.flag()?,
        "tlsv1_1" => c.config.tlsv1_1 = c.flag()?,
        "no-tlsv1" => c.config.no_tlsv1 = c.flag()?,
        "no-tlsv1_1" => c.config.no_tlsv1_1 = c.flag()?,
        "no-tlsv1_2" => c.config.no_tlsv1_2 = c.flag()?,

        // ---- protocol
        "fingerprint" => c.config.fingerprint = c.flag()?,
        "software-attribute" => c.config.software_attribute = c.flag()?,
        "no-software-attribute" => c.config.software_attribute = !c.flag()?,
        "prod" => {
            c.config.software_attribute = !c.flag()?;
            c.warn(
                "obsolete alias of no-software-attribute (removed in coturn 4.7); SOFTWARE is not sent by default anyway",
            );
        }
        "stale-nonce" => {
            c.config.stale_nonce = match c.value {
                None => 600,
                Some(_) => c.u32()?,
            }
        }
        "max-allocate-lifetime" => c.config.max_allocate_lifetime = c.seconds()?,
        "channel-lifetime" => c.config.channel_lifetime = c.seconds()?,
        "permission-lifetime" => c.config.permission_lifetime = c.seconds()?,
        "max-allocate-timeout" => c.config.max_allocate_timeout = c.seconds()?,
        "stun-only" => c.config.stun_only = c.flag()?,
        "no-stun" => c.config.no_stun = c.flag()?,
        "mobility" => c.config.mobility = c.flag()?,
        "rfc5780" => c.config.rfc5780 = c.flag()?,
        "no-rfc5780" => c.config.rfc5780 = !c.flag()?,
        "stun-backward-compatibility" => c.config.stun_backward_compatibility = c.flag()?,
        "no-stun-backward-compatibility" => c.config.stun_backward_compatibility = !c.flag()?,
        "rfc5766-channel-numbers" => c.config.rfc5766_channel_numbers = c.flag()?,
        // Deprecated in coturn 4.7; RESPONSE-ORIGIN only exists with RFC 5780, which is off.
        "response-origin-only-with-rfc5780" => {
            c.flag()?;
        }
        "keep-address-family" => {
            let keep = c.flag()?;
            c.config.allocation_default_address_family = if keep {
                AddressFamilyDefault::Keep
            } else {
                AddressFamilyDefault::Ipv4
            };
            if keep {
                c.warn("deprecated in coturn; same as allocation-default-address-family=keep");
            }
        }
        "allocation-default-address-family" => {
            let v = c.required()?;
            c.config.allocation_default_address_family = match v.to_ascii_lowercase().as_str() {
                "ipv4" => AddressFamilyDefault::Ipv4,
                "ipv6" => AddressFamilyDefault::Ipv6,
                "keep" => AddressFamilyDefault::Keep,
                _ => return Err(c.err(format!("`{v}` is not ipv4, ipv6 or keep"))),
            }
        }
        "alternate-server" | "tls-alternate-server" => {
            let v = c.required()?;
            let addr = parse_server_addr(v).map_err(|m| c.err(m))?;
            if name == "alternate-server" {
                c.config.alternate_servers.push(addr);
            } else {
                c.config.tls_alternate_servers.push(addr);
            }
        }
        "include-reason-string" => c.config.include_reason_string = c.flag()?,
        "drop-invalid-packets" => c.config.drop_invalid_packets = c.flag()?,

        // ---- metrics
        "prometheus" => c.config.prometheus = c.flag()?,
        "prometheus-port" => c.config.prometheus_port = c.port()?,
        "prometheus-address" => c.config.prometheus_address = Some(c.ip()?),
        "prometheus-path" => {
            let p = c.string()?;
            if !p.starts_with('/') {
                return Err(c.err(format!("`{p}` must start with `/`")));
            }
            c.config.prometheus_path = p;
        }

        // ---- logging
        "verbose" => c.config.verbose = c.flag()?,
        "Verbose" => c.config.extra_verbose = c.flag()?,
        "log-file" => c.config.log_file = Some(c.path()?),
        "syslog" => c.config.syslog = c.flag()?,
        "syslog-facility" => c.config.syslog_facility = Some(c.string()?),
        "simple-log" => c.config.simple_log = c.flag()?,
        "no-stdout-log" => c.config.no_stdout_log = c.flag()?,
        "new-log-timestamp" => c.config.new_log_timestamp = c.flag()?,
        "new-log-timestamp-format" => c.config.new_log_timestamp_format = Some(c.string()?),
        "log-min-level" => c.config.log_min_level = Some(c.string()?),
        "log-binding" => c.config.log_binding = c.flag()?,

        // ---- admin CLI
        "cli" => c.config.cli = c.flag()?,
        "no-cli" => c.config.cli = !c.flag()?,
        "cli-ip" => c.config.cli_ip = c.ip()?,
        "cli-port" => c.config.cli_port = c.port()?,
        "cli-password" => c.config.cli_password = Some(c.string()?),

        // ---- process
        "pidfile" => c.config.pidfile = Some(c.path()?),
        "proc-user" => c.config.proc_user = Some(c.string()?),
        "proc-group" => c.config.proc_group = Some(c.string()?),
        "version" => c.config.print_version = c.flag()?,

        other => {
            // Every option the table marks as handled has an arm above; the
            // `every_handled_option_has_an_arm` test keeps it that way.
            return Err(c.err(format!("option `{other}` is recognised but not handled")));
        }
    }
    Ok(())
}

/// `external-ip=PUB` or `PUB/PRIV` (turn-anchors §1.4).
fn external_ip(c: &mut Ctx<'_>, state: &mut State, cli: bool) -> Result<(), ConfigError> {
    let v = c.required()?;
    let e = match v.split_once('/') {
        Some((public, private)) => {
            let public = parse_ip(public)
                .ok_or_else(|| c.err(format!("`{}` is not an IP address", public.trim())))?;
            let private = parse_ip(private)
                .ok_or_else(|| c.err(format!("`{}` is not an IP address", private.trim())))?;
            if public.is_ipv4() != private.is_ipv4() {
                return Err(c.err(format!(
                    "`{v}`: the public and private addresses are of different families"
                )));
            }
            ExternalIp {
                public,
                private: Some(private),
            }
        }
        None => ExternalIp {
            public: parse_ip(v).ok_or_else(|| c.err(format!("`{v}` is not an IP address")))?,
            private: None,
        },
    };
    if e.private.is_none() {
        // coturn keeps one bare external-ip ("You cannot define external IP more than once")
        // and applies it to every family; switchyard keeps one per family. A second one
        // from the same source is a mistake; one on the command line replaces the file's,
        // the way the official image adds `--external-ip=$(detect-external-ip)`.
        let fam = usize::from(e.public.is_ipv6());
        if let Some(prev) = state.bare_external_at[fam].clone() {
            let prev_is_file = matches!(prev, Location::File { .. });
            if cli && prev_is_file {
                c.config
                    .external_ips
                    .retain(|x| !(x.private.is_none() && x.public.is_ipv6() == e.public.is_ipv6()));
                c.warn(format!("replaces the external-ip given at {prev}"));
            } else {
                return Err(c.err(format!(
                    "a bare external-ip is allowed once per address family (the first is at {prev}); use PUBLIC/PRIVATE pairs for several"
                )));
            }
        }
        state.bare_external_at[fam] = Some(c.location.clone());
    }
    if !c.config.external_ips.contains(&e) {
        c.config.external_ips.push(e);
    }
    Ok(())
}

/// `allowed-peer-ip` / `denied-peer-ip`: `IP`, `IP-IP` or CIDR. A malformed entry is an
/// error: coturn ≥ 4.11 aborts, and before that it ignored the line, silently leaving a
/// deny list open (turn-anchors §1.1).
fn peer_range(c: &mut Ctx<'_>, denied: bool) -> Result<(), ConfigError> {
    let v = c.required()?;
    let r: AddrRange = v
        .parse()
        .map_err(|e: crate::RangeError| c.err(e.to_string()))?;
    let list_name = if denied { "denies" } else { "allows" };
    let mut ranges = vec![r];
    if r.last.is_unspecified() {
        // `::`, `0.0.0.0` (or `::-::`): coturn's ioa_addr_in_range treats an all-zero bound
        // as unbounded, so the entry matches every peer of both families (measured on
        // coturn 4.6.1: `denied-peer-ip=::0` blocks 8.8.8.8). Keep that meaning, loudly.
        ranges = vec![AddrRange::ALL_V4, AddrRange::ALL_V6];
        c.warn(format!(
            "an all-zero address is unbounded in coturn, so this entry {list_name} every IPv4 and IPv6 peer"
        ));
    } else if r.first.is_unspecified() && r.first.is_ipv6() {
        // coturn also treats the `::` lower bound as unbounded, which there extends the
        // range over every IPv4 address; switchyard keeps ranges within one family.
        c.warn(format!(
            "coturn reads a `::` lower bound as unbounded and so this entry also {list_name} every IPv4 peer there; switchyard applies it to IPv6 addresses only"
        ));
    }
    let list = if denied {
        &mut c.config.denied_peer_ips
    } else {
        &mut c.config.allowed_peer_ips
    };
    for r in ranges {
        if !list.contains(&r) {
            list.push(r);
        }
    }
    Ok(())
}

/// `name:password` or `name:0x<32 hex digits>`.
fn parse_user(v: &str) -> Result<UserEntry, String> {
    let Some((name, secret)) = v.split_once(':') else {
        return Err("expected `name:password` or `name:0x<32 hex digit key>`".into());
    };
    if name.is_empty() {
        return Err("the user name is empty".into());
    }
    if secret.is_empty() {
        return Err(format!("the password of `{name}` is empty"));
    }
    let key = match secret
        .strip_prefix("0x")
        .or_else(|| secret.strip_prefix("0X"))
    {
        Some(hex) => UserKey::Key(parse_hex16(hex).map_err(|m| format!("user `{name}`: {m}"))?),
        None => UserKey::Password(secret.to_owned()),
    };
    Ok(UserEntry {
        name: name.to_owned(),
        key,
    })
}

/// `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a bare IPv6 literal.
fn parse_server_addr(v: &str) -> Result<ServerAddr, String> {
    let v = v.trim();
    let bad = || format!("`{v}` is not HOST[:PORT]");
    if let Some(rest) = v.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad());
        }
        let port = match after {
            "" => None,
            p => Some(parse_port(p.strip_prefix(':').ok_or_else(bad)?)?),
        };
        return Ok(ServerAddr {
            host: host.to_owned(),
            port,
        });
    }
    if v.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(ServerAddr {
            host: v.to_owned(),
            port: None,
        });
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => (h, Some(parse_port(p)?)),
        None => (v, None),
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
    {
        return Err(bad());
    }
    Ok(ServerAddr {
        host: host.to_owned(),
        port,
    })
}

/// Checks that involve several options, and derived defaults. Runs once, after the file
/// and the command line.
pub(crate) fn finish(config: &mut TurnConfig, state: &State) -> Result<(), ConfigError> {
    if config.min_port > config.max_port {
        let (location, key) = later(
            (state.min_port_at.as_ref(), "min-port"),
            (state.max_port_at.as_ref(), "max-port"),
        );
        return Err(ConfigError::invalid(
            &location,
            key,
            format!(
                "min-port {} is above max-port {}",
                config.min_port, config.max_port
            ),
        ));
    }
    if let (Some(_), Some(_)) = (&state.lt_cred_at, &state.no_auth_at) {
        let (location, key) = later(
            (state.lt_cred_at.as_ref(), "lt-cred-mech"),
            (state.no_auth_at.as_ref(), "no-auth"),
        );
        return Err(ConfigError::invalid(
            &location,
            key,
            "lt-cred-mech and no-auth cannot be used together (as in coturn)",
        ));
    }
    if let (Some(_), Some(_)) = (&state.no_udp_relay_at, &state.no_tcp_relay_at) {
        let (location, key) = later(
            (state.no_udp_relay_at.as_ref(), "no-udp-relay"),
            (state.no_tcp_relay_at.as_ref(), "no-tcp-relay"),
        );
        return Err(ConfigError::invalid(
            &location,
            key,
            "no-udp-relay and no-tcp-relay cannot be used together: nothing could be relayed (as in coturn)",
        ));
    }
    if !state.relay_threads_set {
        config.relay_threads = config.cpus.unwrap_or_else(super::default_relay_threads);
    }
    Ok(())
}

/// The later of two option occurrences, so a conflict is reported where it became one.
fn later<'k>(a: (Option<&At>, &'k str), b: (Option<&At>, &'k str)) -> (Location, &'k str) {
    match (a.0, b.0) {
        (Some(x), Some(y)) if x.0 > y.0 => (x.1.clone(), a.1),
        (Some(x), None) => (x.1.clone(), a.1),
        (_, Some(y)) => (y.1.clone(), b.1),
        (None, None) => (Location::CommandLine, b.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handled_option_has_an_arm() {
        for spec in options::OPTIONS {
            if matches!(spec.support, Support::Ignored(_)) {
                continue;
            }
            let mut config = TurnConfig::default();
            let location = Location::CommandLine;
            let value = match spec.arg {
                Arg::None => None,
                Arg::Optional if !takes_number(spec.name) => None,
                _ => Some(sample_value(spec.name)),
            };
            let mut c = Ctx {
                config: &mut config,
                key: spec.name,
                value,
                location: &location,
                base_dir: None,
            };
            let r = handle(&mut c, &mut State::default(), spec.name);
            assert!(
                r.is_ok(),
                "{}: {:?}",
                spec.name,
                r.err().map(|e| e.to_string())
            );
        }
    }

    fn sample_value(name: &str) -> &'static str {
        match name {
            "listening-ip" | "relay-ip" | "external-ip" | "cli-ip" | "prometheus-address" => {
                "192.0.2.1"
            }
            "user" => "alice:pw",
            "allowed-peer-ip" | "denied-peer-ip" => "10.0.0.0/8",
            "allocation-default-address-family" => "ipv6",
            "rest-api-separator" => "-",
            "prometheus-path" => "/m",
            "alternate-server" | "tls-alternate-server" => "192.0.2.1:3478",
            _ => "42",
        }
    }

    #[test]
    fn users() {
        let u = parse_user("alice:secret:with:colons").unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.key, UserKey::Password("secret:with:colons".into()));
        let k = parse_user("bob:0x000102030405060708090a0b0c0d0e0f").unwrap();
        assert_eq!(
            k.key,
            UserKey::Key([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
        );
        assert!(parse_user("bob:0x1234").is_err());
        assert!(parse_user("nocolon").is_err());
        assert!(parse_user(":pw").is_err());
        assert!(parse_user("bob:").is_err());
    }

    #[test]
    fn server_addrs() {
        let ok = |s: &str, host: &str, port: Option<u16>| {
            assert_eq!(
                parse_server_addr(s),
                Ok(ServerAddr {
                    host: host.into(),
                    port
                }),
                "{s}"
            )
        };
        ok("192.0.2.1", "192.0.2.1", None);
        ok("192.0.2.1:3479", "192.0.2.1", Some(3479));
        ok("turn2.example.org:443", "turn2.example.org", Some(443));
        ok("[2001:db8::1]:3478", "2001:db8::1", Some(3478));
        ok("[2001:db8::1]", "2001:db8::1", None);
        ok("2001:db8::1", "2001:db8::1", None);
        for bad in [
            "",
            "a b",
            "host:0",
            "host:x",
            "[::1",
            "[::1]x",
            "[nothost]:1",
        ] {
            assert!(parse_server_addr(bad).is_err(), "{bad:?}");
        }
    }
}
