//! `switchyard turn`: start-up, worker threads and signals of the TURN/STUN relay.

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

use crate::logging::{self, LogTarget};
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
    let level = settings::log_level(&config);
    let target = match settings::log_file(&config) {
        Some(path) => LogTarget::File(path),
        None => LogTarget::Stdout,
    };
    if let Err(e) = logging::init(target, level) {
        eprintln!("switchyard turn: log-file: {e}");
        return ExitCode::from(1);
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match run(config) {
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

fn run(config: TurnConfig) -> anyhow::Result<()> {
    // One relay socket per allocation: allow as many as the hard limit lets us.
    switchyard_netio::raise_fd_limit();
    let plan = settings::Plan::from_config(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        stop: stop.clone(),
        tls: plan.tls.clone(),
        dtls: plan.dtls.clone(),
        relay_socket_options: UdpOptions {
            reuse_port: false,
            buffer_size: plan.socket_buffer,
        },
        allocate_timeout: std::time::Duration::from_secs(u64::from(
            config.max_allocate_timeout.max(1),
        )),
    };

    let mut workers = Vec::new();
    let mut wakers = Vec::new();
    let mut siblings: worker::Siblings = Vec::new();
    for id in 0..plan.workers {
        // With `mobility`, UDP clients all reach worker 0: a Refresh from a client's new
        // address must find the allocation its ticket names, and the kernel's SO_REUSEPORT
        // hash would spread the new 5-tuple over any worker. TCP/TLS stays spread.
        let with_udp = !plan.udp_on_one_worker || id == 0;
        let reuse_port = plan.workers > 1;
        let listeners = open_listeners(
            &plan,
            reuse_port && !plan.udp_on_one_worker,
            reuse_port,
            with_udp,
        )?;
        if listeners.udp.is_empty() && listeners.tcp.is_empty() && listeners.dtls.is_empty() {
            siblings.push(None);
            continue;
        }
        let server = switchyard_turn::Server::new(plan.server_config(id));
        let (tx, rx) = std::sync::mpsc::channel();
        let (worker, waker) = Worker::new(id, server, listeners, rx, shared.clone())
            .context("cannot set up worker event loop")?;
        siblings.push(Some((tx, waker.clone())));
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
    settings::write_pidfile(&config);
    tracing::info!(
        workers = plan.workers,
        udp = ?plan.udp_addrs,
        tcp = ?plan.tcp_addrs,
        relay_ports = ?plan.port_range,
        "switchyard turn {} listening",
        env!("CARGO_PKG_VERSION"),
    );

    wait_for_stop_signal()?;
    tracing::info!("stopping");
    stop.store(true, Ordering::Relaxed);
    for w in &wakers {
        let _ = w.wake();
    }
    for h in handles {
        let _ = h.join();
    }
    settings::remove_pidfile(&config);
    Ok(())
}

/// Blocks until SIGTERM or SIGINT. SIGHUP and SIGUSR2 (coturn: reopen logs / reload
/// certificates) are acknowledged and logged; live reload is a later feature.
fn wait_for_stop_signal() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR2])
        .context("cannot install signal handlers")?;
    for sig in signals.forever() {
        match sig {
            SIGTERM | SIGINT => return Ok(()),
            other => tracing::info!(
                signal = other,
                "signal received; reload is not implemented yet"
            ),
        }
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
    let opts = UdpOptions {
        reuse_port: udp_reuse_port,
        buffer_size: plan.socket_buffer,
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
