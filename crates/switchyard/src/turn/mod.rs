//! `switchyard turn`: start-up, worker threads and signals of the TURN/STUN relay.

mod metrics;
mod reload;
mod settings;
mod worker;

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use switchyard_config::TurnConfig;
use switchyard_netio::UdpOptions;

use crate::logging::{self, LogHandle, LogTarget};
use reload::Reloader;
use worker::{Listeners, Shared, Worker};

const HELP: &str = "\
Usage: switchyard turn [-c FILE | -n] [coturn options...]
       turnserver [-c FILE | -n] [coturn options...]

A TURN/STUN relay that reads coturn's turnserver.conf and command line:
  -c FILE                    config file (default: turnserver.conf on coturn's search path)
  -n                         no config file
  --check-config             print the effective configuration and exit
  -p, --listening-port=N     UDP/TCP port (3478)       --tls-listening-port=N (5349)
  -L, --listening-ip=IP      listen address (repeatable; default: every host address)
  -E, --relay-ip=IP          relay address              -X, --external-ip=PUB[/PRIV]
  --min-port=N --max-port=N  relay port range (49152-65535)
  --use-auth-secret --static-auth-secret=S   Synapse's turn_shared_secret (repeatable)
  -u, --user=NAME:PASS       static user               -r, --realm=REALM
  --allowed-peer-ip=RANGE    open a peer range (IP, a-b or CIDR); --denied-peer-ip=RANGE
  --allow-loopback-peers     relay to loopback (tests only)
  --cert=PEM --pkey=PEM      TLS                        -m, --relay-threads=N
  -q, --user-quota=N  -Q, --total-quota=N   allocations per user / in total (486 beyond)
  -s, --max-bps=B     -B, --bps-capacity=B  bytes/s per allocation / whole server, each direction
  --prometheus [--prometheus-port=9641 --prometheus-address=IP --prometheus-path=/metrics]
                             metrics; GET / /healthz /readyz for health checks
  -l, --log-file=PATH|stdout|syslog  --syslog [--syslog-facility=NAME]  --pidfile=PATH
  --proc-user=USER --proc-group=GROUP   drop root after binding the listeners
Signals: SIGHUP reloads credentials, users, peer policy, quotas, limits and certificates
(allocations stay) and reopens the log file; SIGUSR2 reloads certificates.
Every coturn option is recognised; the ones not implemented yet are accepted with a warning.
Private, loopback, link-local and other internal peers are denied by default.";

/// Entry point for `switchyard turn ARGS` and for `turnserver ARGS`.
pub(crate) fn main(mut args: Vec<OsString>) -> ExitCode {
    // Help and version first: they must never start a relay (or read /etc/turnserver.conf).
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--version") {
        println!(
            "switchyard {} (coturn-compatible TURN relay)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let check_only = take_flag(&mut args, "--check-config");
    let config = match switchyard_config::load_turn(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchyard turn: {e}");
            return ExitCode::from(1);
        }
    };
    if check_only {
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        print!("{}", config.effective_summary());
        return ExitCode::SUCCESS;
    }
    let log = match init_logging(&config) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("switchyard turn: log-file: {e}");
            return ExitCode::from(1);
        }
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match run(config, args, log) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("switchyard turn: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn take_flag(args: &mut Vec<OsString>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

/// stdout unless `log-file` names a file, or `syslog` (or `log-file=syslog`) asks for the
/// local syslog daemon; without one (containers rarely have `/dev/log`) that falls back to
/// stdout with a warning.
fn init_logging(config: &TurnConfig) -> Result<LogHandle, String> {
    let level = settings::log_level(config);
    let wants_syslog = config.syslog
        || config
            .log_file
            .as_deref()
            .is_some_and(|p| p.as_os_str() == "syslog");
    if wants_syslog {
        let socket = std::path::Path::new(logging::SYSLOG_SOCKET);
        let facility = logging::syslog_facility(config.syslog_facility.as_deref());
        match logging::init(LogTarget::Syslog { socket, facility }, level) {
            Ok(h) => return Ok(h),
            Err(e) => {
                let h = logging::init(LogTarget::Stdout, level)?;
                tracing::warn!("{e}: logging to stdout instead");
                return Ok(h);
            }
        }
    }
    let target = match settings::log_file(config) {
        Some(path) => LogTarget::File(path),
        None => LogTarget::Stdout,
    };
    logging::init(target, level)
}

/// A relay whose workers are running.
pub(crate) struct Running {
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<mio::Waker>>,
    handles: Vec<std::thread::JoinHandle<()>>,
    health: Arc<switchyard_telemetry::http::Health>,
    reloader: Reloader,
    config: TurnConfig,
}

impl Running {
    /// Stops the workers and waits for them.
    fn stop(self) {
        self.health.set_ready(false);
        tracing::info!("stopping");
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.wakers {
            let _ = w.wake();
        }
        for h in self.handles {
            let _ = h.join();
        }
        settings::remove_pidfile(&self.config);
    }
}

fn run(config: TurnConfig, args: Vec<OsString>, log: LogHandle) -> anyhow::Result<()> {
    let mut running = start(config, args)?;
    wait_for_stop_signal(&mut running.reloader, &log)?;
    running.stop();
    Ok(())
}

/// Starts the relay inside another server's process (LiveKit mode's embedded TURN): the
/// same workers, no signal handling of its own. The caller holds the result for as long as
/// the relay should run; the workers end with the process.
pub(crate) fn start_embedded(config: TurnConfig) -> anyhow::Result<Running> {
    for w in &config.warnings {
        tracing::debug!("embedded TURN: {w}");
    }
    start(config, Vec::new())
}

/// Binds every listener, drops privileges and starts one worker thread per core.
fn start(config: TurnConfig, args: Vec<OsString>) -> anyhow::Result<Running> {
    // One relay socket per allocation: allow as many as the hard limit lets us.
    switchyard_netio::raise_fd_limit();
    let plan = settings::Plan::from_config(&config, settings::BadCert::DisableTls)?;
    // Resolve the user before binding anything, so a typo fails before any side effect.
    let drop_to = if config.proc_user.is_some() || config.proc_group.is_some() {
        Some(
            switchyard_netio::privileges::resolve(
                config.proc_user.as_deref(),
                config.proc_group.as_deref(),
            )
            .context("proc-user/proc-group")?,
        )
    } else {
        None
    };
    let worker_metrics: Vec<_> = (0..plan.workers)
        .map(|_| Arc::new(switchyard_telemetry::turn::WorkerMetrics::default()))
        .collect();
    let health = Arc::new(switchyard_telemetry::http::Health::default());
    if config.prometheus {
        metrics::start(
            &config,
            plan.realm(),
            worker_metrics.clone(),
            health.clone(),
        )?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        stop: stop.clone(),
        tls: plan.tls.clone(),
        dtls: plan.dtls.clone(),
        // Peers' datagrams are framed in place behind headroom, which a coalesced run has
        // none of: relay sockets read one datagram per buffer.
        relay_socket_options: UdpOptions {
            reuse_port: false,
            buffer_size: plan.socket_buffer,
            gro: false,
        },
        allocate_timeout: std::time::Duration::from_secs(u64::from(
            config.max_allocate_timeout.max(1),
        )),
    };

    // Every privileged step first: listening sockets, pidfile; then give up root.
    claim_ports(&plan)?;
    let mut listeners = Vec::new();
    for id in 0..plan.workers {
        // With `mobility`, UDP clients all reach worker 0: a Refresh from a client's new
        // address must find the allocation its ticket names, and the kernel's SO_REUSEPORT
        // hash would spread the new 5-tuple over any worker. TCP/TLS stays spread.
        let with_udp = !plan.udp_on_one_worker || id == 0;
        let reuse_port = plan.workers > 1;
        listeners.push(open_listeners(
            &plan,
            reuse_port && !plan.udp_on_one_worker,
            reuse_port,
            with_udp,
        )?);
    }
    settings::write_pidfile(&config);
    if let Some(ids) = drop_to {
        switchyard_netio::privileges::drop_to(ids).context("cannot drop privileges")?;
        tracing::info!(uid = ?ids.uid, gid = ?ids.gid, "dropped privileges");
    }

    let mut reloader = Reloader::new(args, config.clone(), plan.capacity());
    let mut workers = Vec::new();
    let mut wakers = Vec::new();
    let mut siblings: worker::Siblings = Vec::new();
    for (id, listeners) in listeners.into_iter().enumerate() {
        if listeners.udp.is_empty() && listeners.tcp.is_empty() && listeners.dtls.is_empty() {
            siblings.push(None);
            continue;
        }
        let server = switchyard_turn::Server::new(plan.server_config(id));
        let (handoff_tx, inbox) = std::sync::mpsc::channel();
        let (control_tx, ops) = Reloader::channel(worker_metrics[id].clone());
        let (worker, waker) = Worker::new(id, server, listeners, inbox, shared.clone(), ops)
            .context("cannot set up worker event loop")?;
        reloader.attach(control_tx, waker.clone());
        siblings.push(Some((handoff_tx, waker.clone())));
        wakers.push(waker);
        workers.push(worker);
    }
    let mut handles = Vec::new();
    for mut worker in workers {
        worker.set_siblings(siblings.clone());
        let name = format!("turn-worker-{}", worker.id());
        handles.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || worker.run())
                .context("cannot start worker thread")?,
        );
    }
    health.set_ready(true);
    tracing::info!(
        workers = plan.workers,
        udp = ?plan.udp_addrs,
        tcp = ?plan.tcp_addrs,
        relay_ports = ?plan.port_range,
        "switchyard turn {} listening",
        env!("CARGO_PKG_VERSION"),
    );

    Ok(Running {
        stop,
        wakers,
        handles,
        health,
        reloader,
        config,
    })
}

/// Blocks until SIGTERM or SIGINT. SIGHUP reopens the log file (coturn) and reloads the
/// configuration; SIGUSR2 reloads the certificates (coturn). See [`reload`].
fn wait_for_stop_signal(reloader: &mut Reloader, log: &LogHandle) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])
        .context("cannot install signal handlers")?;
    for sig in signals.forever() {
        match sig {
            SIGTERM | SIGINT => return Ok(()),
            SIGHUP => {
                if let Err(e) = log.reopen() {
                    tracing::error!(error = %e, "cannot reopen the log file");
                }
                tracing::info!("SIGHUP: reloading the configuration");
                reloader.reload();
            }
            SIGUSR2 => {
                tracing::info!("SIGUSR2: reloading certificates");
                reloader.reload_certificates();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses to start beside another server on our ports: the workers' `SO_REUSEPORT`
/// would otherwise let both bind and split the clients between them.
fn claim_ports(plan: &settings::Plan) -> anyhow::Result<()> {
    use switchyard_netio::{PortKind, ensure_unclaimed};
    let udp = plan.udp_addrs.iter().map(|a| (*a, PortKind::Udp, "udp"));
    let dtls = plan.dtls_addrs.iter().map(|a| (*a, PortKind::Udp, "udp"));
    let tcp = plan.tcp_addrs.iter().map(|a| (*a, PortKind::Tcp, "tcp"));
    for (addr, kind, name) in udp.chain(dtls).chain(tcp) {
        ensure_unclaimed(addr, kind).with_context(|| format!("cannot listen on {name} {addr}"))?;
    }
    Ok(())
}

/// Opens one worker's listening sockets. With several workers every socket carries
/// `SO_REUSEPORT`, so each worker gets its own and the kernel spreads clients by 5-tuple.
fn open_listeners(
    plan: &settings::Plan,
    udp_reuse_port: bool,
    reuse_port: bool,
    with_udp: bool,
) -> anyhow::Result<Listeners> {
    // A client's back-to-back datagrams (a video frame's packets) come in as one buffer and
    // leave for the peer as one GSO send.
    let opts = UdpOptions {
        reuse_port: udp_reuse_port,
        buffer_size: plan.socket_buffer,
        gro: true,
    };
    let mut udp = Vec::new();
    let udp_addrs: &[SocketAddr] = if with_udp { &plan.udp_addrs } else { &[] };
    for addr in udp_addrs {
        udp.push(
            switchyard_netio::bind_udp(*addr, opts)
                .with_context(|| format!("cannot listen on udp {addr}"))?,
        );
    }
    let mut dtls = Vec::new();
    for addr in &plan.dtls_addrs {
        dtls.push(
            switchyard_netio::bind_udp(*addr, opts)
                .with_context(|| format!("cannot listen on udp {addr} (DTLS)"))?,
        );
    }
    let mut tcp = Vec::new();
    for addr in &plan.tcp_addrs {
        tcp.push(
            switchyard_netio::bind_tcp(*addr, reuse_port)
                .with_context(|| format!("cannot listen on tcp {addr}"))?,
        );
    }
    if plan.udp_addrs.is_empty() && plan.tcp_addrs.is_empty() {
        bail!("no listener configured (no-udp and no-tcp and no TLS)");
    }
    Ok(Listeners { udp, tcp, dtls })
}

/// Addresses to listen on: `listening-ip` lines, or every address of the host (coturn's
/// default), each on every port.
pub(crate) fn listen_addrs(ips: &[IpAddr], ports: &[u16]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for ip in ips {
        for port in ports {
            let addr = SocketAddr::new(*ip, *port);
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}
