//! Live reload. `SIGHUP` re-reads the configuration (file and command line, as at start)
//! and hands each worker new credentials, peer policy, quotas, bandwidth limits, lifetimes
//! and TLS certificates; allocations stay (coturn cannot do this: coturn#878). `SIGUSR2`
//! re-reads only the certificates, as coturn does. A configuration that does not load
//! (parse error, unreadable certificate) changes nothing: the error is logged with its
//! `file:line: key` and the old configuration keeps running.
//!
//! Options bound to sockets or threads (listening addresses and ports, relay port range,
//! `relay-threads`, the metrics endpoint, `proc-user`) need a restart; a reload that
//! changes them says so and applies the rest.

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use anyhow::Context;
use mio::Waker;
use switchyard_config::TurnConfig;
use switchyard_telemetry::turn::WorkerMetrics;
use switchyard_turn::{Capacity, ServerConfig};

use super::settings;

/// A request from the main thread to a worker.
pub(crate) enum Control {
    Reconfigure(Box<ServerConfig>),
    /// New TLS settings for connections accepted from now on.
    Tls(Option<Arc<rustls::ServerConfig>>),
    /// A new DTLS certificate for handshakes from now on (the listeners stay).
    Dtls(switchyard_netio::dtls::DtlsIdentity),
}

/// What a worker holds besides its sockets: where it publishes metrics and where reload
/// requests arrive.
pub(crate) struct WorkerOps {
    pub(crate) metrics: Arc<WorkerMetrics>,
    pub(crate) control: Receiver<Control>,
}

/// The main thread's side: the running configuration and a line to every worker.
pub(crate) struct Reloader {
    args: Vec<OsString>,
    current: TurnConfig,
    capacity: Option<Arc<Capacity>>,
    workers: Vec<(Sender<Control>, Arc<Waker>)>,
}

impl Reloader {
    pub(crate) fn new(
        args: Vec<OsString>,
        current: TurnConfig,
        capacity: Option<Arc<Capacity>>,
    ) -> Self {
        Reloader {
            args,
            current,
            capacity,
            workers: Vec::new(),
        }
    }

    /// Creates the channel for one worker; call [`Reloader::attach`] with its waker once
    /// the worker exists.
    pub(crate) fn channel(metrics: Arc<WorkerMetrics>) -> (Sender<Control>, WorkerOps) {
        let (tx, rx) = channel();
        (
            tx,
            WorkerOps {
                metrics,
                control: rx,
            },
        )
    }

    pub(crate) fn attach(&mut self, tx: Sender<Control>, waker: Arc<Waker>) {
        self.workers.push((tx, waker));
    }

    fn send(&self, make: impl Fn(usize) -> Control) {
        for (id, (tx, waker)) in self.workers.iter().enumerate() {
            if tx.send(make(id)).is_ok() {
                let _ = waker.wake();
            }
        }
    }

    /// `SIGHUP`: everything that can change without a restart.
    pub(crate) fn reload(&mut self) {
        match self.try_reload() {
            Ok(()) => {}
            Err(e) => tracing::error!("reload failed, the running configuration stays: {e:#}"),
        }
    }

    fn try_reload(&mut self) -> anyhow::Result<()> {
        let new = switchyard_config::load_turn(&self.args)?;
        for w in &new.warnings {
            tracing::warn!("{w}");
        }
        let restart = needs_restart(&self.current, &new);
        if !restart.is_empty() {
            tracing::warn!(
                options = %restart.join(", "),
                "these options changed but only take effect after a restart"
            );
        }
        // What is bound to sockets and threads keeps its running value, so the new workers'
        // settings (relay port range of the peer policy, listen addresses) match reality.
        let mut new = new;
        keep_running_values(&self.current, &mut new);
        let plan = settings::Plan::from_config(&new, settings::BadCert::Refuse)?;
        // The same budget if `bps-capacity` did not change, so a reload does not refill it.
        let capacity = match (&self.capacity, new.bps_capacity) {
            (_, 0) => None,
            (Some(c), rate) if c.rate() == rate => Some(c.clone()),
            (_, rate) => Some(Arc::new(Capacity::new(rate, std::time::Instant::now()))),
        };
        let tls = plan.tls.clone();
        self.send(|id| {
            let mut cfg = plan.server_config(id);
            cfg.bps_capacity = capacity.clone();
            Control::Reconfigure(Box::new(cfg))
        });
        self.send(|_| Control::Tls(tls.clone()));
        if let Some(dtls) = &plan.dtls {
            self.send(|_| Control::Dtls(dtls.clone()));
        }
        tracing::info!(
            workers = self.workers.len(),
            tls = tls.is_some(),
            "configuration reloaded (credentials, peer policy, quotas, limits, certificates); allocations kept"
        );
        self.capacity = capacity;
        self.current = new;
        Ok(())
    }

    /// `SIGUSR2`: certificates only (coturn's signal for it).
    pub(crate) fn reload_certificates(&mut self) {
        let loaded = settings::tls_config(&self.current)
            .context("TLS (cert=/pkey=)")
            .and_then(|tls| Ok((tls, settings::dtls_identity(&self.current)?)));
        match loaded {
            Ok((tls, dtls)) => {
                let enabled = tls.is_some();
                self.send(|_| Control::Tls(tls.clone()));
                let dtls_enabled = dtls.is_some();
                if let Some(dtls) = dtls {
                    self.send(|_| Control::Dtls(dtls.clone()));
                }
                tracing::info!(tls = enabled, dtls = dtls_enabled, "certificates reloaded");
            }
            Err(e) => tracing::error!("certificate reload failed, the old ones stay: {e:#}"),
        }
    }
}

fn keep_running_values(running: &TurnConfig, new: &mut TurnConfig) {
    new.listening_ips = running.listening_ips.clone();
    new.listening_port = running.listening_port;
    new.tls_listening_port = running.tls_listening_port;
    new.min_port = running.min_port;
    new.max_port = running.max_port;
    new.relay_threads = running.relay_threads;
    new.no_udp = running.no_udp;
    new.no_tcp = running.no_tcp;
    new.no_tls = running.no_tls;
    new.prometheus = running.prometheus;
    new.prometheus_port = running.prometheus_port;
    new.prometheus_address = running.prometheus_address;
    new.proc_user = running.proc_user.clone();
    new.proc_group = running.proc_group.clone();
    new.log_file = running.log_file.clone();
    new.syslog = running.syslog;
}

/// The options that differ between `old` and `new` but are bound to sockets, threads or
/// the process.
fn needs_restart(old: &TurnConfig, new: &TurnConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, changed: bool| {
        if changed {
            out.push(name);
        }
    };
    check("listening-ip", old.listening_ips != new.listening_ips);
    check("listening-port", old.listening_port != new.listening_port);
    check(
        "tls-listening-port",
        old.tls_listening_port != new.tls_listening_port,
    );
    check(
        "min-port/max-port",
        (old.min_port, old.max_port) != (new.min_port, new.max_port),
    );
    check("relay-threads", old.relay_threads != new.relay_threads);
    check(
        "no-udp/no-tcp/no-tls",
        (old.no_udp, old.no_tcp, old.no_tls) != (new.no_udp, new.no_tcp, new.no_tls),
    );
    check(
        "prometheus",
        (old.prometheus, old.prometheus_port, old.prometheus_address)
            != (new.prometheus, new.prometheus_port, new.prometheus_address),
    );
    check(
        "proc-user/proc-group",
        (&old.proc_user, &old.proc_group) != (&new.proc_user, &new.proc_group),
    );
    check(
        "log-file/syslog",
        (&old.log_file, old.syslog) != (&new.log_file, new.syslog),
    );
    out
}
