//! The TURN relay's metrics: coturn's exporter names where coturn has them (turn-anchors
//! §5.1), `switchyard_turn_*` for the rest.
//!
//! coturn's names (`turn_total_traffic_rcvb`, …) carry no `_total` suffix, which the
//! Prometheus client library adds to every counter; so that dashboards and alerts written
//! for coturn keep working unchanged, those are exported under their exact names with type
//! gauge (the values still only grow, and `rate()` works on them the same). Unlike coturn's,
//! which "represent finished sessions" (coturn#1205), they are live.
//!
//! Workers publish, scrapes read: a worker overwrites its [`WorkerMetrics`] with its
//! counters every few milliseconds (relaxed atomic stores, no lock on the packet path);
//! [`TurnCollector`] adds the workers up when Prometheus scrapes. Lifecycle events
//! (allocations, auth failures, policy denials, refusals — never one per packet) are
//! counted under a mutex per worker.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use switchyard_turn::{DropReason, ERROR_CODES, Event, RefuseReason, Stats, Transport};

/// Upper bounds of the receive batch size histogram (recvmmsg returns at most 32).
pub const BATCH_BUCKETS: [u64; 6] = [1, 2, 4, 8, 16, 32];

macro_rules! atomic_stats {
    ($($field:ident),* $(,)?) => {
        /// The scalar [`Stats`] fields, as atomics.
        #[derive(Debug, Default)]
        struct AtomicStats {
            $($field: AtomicU64,)*
        }

        impl AtomicStats {
            fn store(&self, s: &Stats) {
                $(self.$field.store(s.$field, Ordering::Relaxed);)*
            }

            fn add_to(&self, s: &mut Stats) {
                $(s.$field += self.$field.load(Ordering::Relaxed);)*
            }
        }
    };
}

atomic_stats!(
    client_packets_in,
    client_bytes_in,
    to_peer_packets,
    to_peer_bytes,
    peer_packets_in,
    peer_bytes_in,
    to_client_packets,
    to_client_bytes,
    channel_data_in,
    send_indications_in,
    channel_data_out,
    data_indications_out,
    requests,
    replies,
    binding_requests,
    binding_responses,
    binding_errors,
    allocations_created,
    allocations_freed,
    auth_failures,
    peer_denied,
    events_dropped,
);

/// Counts from lifecycle events, keyed by a stable label value.
#[derive(Debug, Default, Clone)]
struct EventCounts {
    /// Live allocations by client transport (created − freed).
    allocations: BTreeMap<&'static str, i64>,
    auth_failures: BTreeMap<&'static str, u64>,
    peer_denied: BTreeMap<&'static str, u64>,
    refused: BTreeMap<&'static str, u64>,
}

/// One worker's published counters.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    stats: AtomicStats,
    drops: [AtomicU64; DropReason::COUNT],
    errors: [AtomicU64; ERROR_CODES.len()],
    allocations: AtomicU64,
    batches: [AtomicU64; BATCH_BUCKETS.len()],
    batch_packets: AtomicU64,
    events: Mutex<EventCounts>,
}

/// A worker's receive batch sizes, counted locally (plain integers) and published with
/// [`WorkerMetrics::publish`].
#[derive(Debug, Default, Clone)]
pub struct BatchSizes {
    counts: [u64; BATCH_BUCKETS.len()],
    packets: u64,
}

impl BatchSizes {
    /// One receive call that returned `n > 0` datagrams.
    #[inline]
    pub fn record(&mut self, n: usize) {
        let n = n as u64;
        let i = BATCH_BUCKETS
            .iter()
            .position(|&b| n <= b)
            .unwrap_or(BATCH_BUCKETS.len() - 1);
        self.counts[i] += 1;
        self.packets += n;
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
        Transport::Dtls => "DTLS",
    }
}

fn refuse_name(r: RefuseReason) -> &'static str {
    match r {
        RefuseReason::UserQuota => "user_quota",
        RefuseReason::TotalQuota => "total_quota",
        RefuseReason::NoPort => "no_port",
        RefuseReason::NoRelayAddress => "no_relay_address",
        _ => "other",
    }
}

impl WorkerMetrics {
    /// Overwrites the published counters with the worker's current ones. Called by the
    /// worker's own thread a few times a second; relaxed stores, no lock.
    pub fn publish(&self, stats: &Stats, allocations: usize, batches: &BatchSizes) {
        self.stats.store(stats);
        for (a, v) in self.drops.iter().zip(stats.drops.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
        for (a, v) in self.errors.iter().zip(stats.errors.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
        self.allocations
            .store(allocations as u64, Ordering::Relaxed);
        for (a, v) in self.batches.iter().zip(batches.counts.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
        self.batch_packets.store(batches.packets, Ordering::Relaxed);
    }

    /// Counts one lifecycle event (allocations per transport, auth failures, policy
    /// denials and refusals by reason).
    pub fn count_event(&self, event: &Event) {
        let mut e = self.events.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::AllocationCreated { client, .. } => {
                *e.allocations
                    .entry(transport_name(client.transport))
                    .or_default() += 1;
            }
            Event::AllocationFreed { client, .. } => {
                *e.allocations
                    .entry(transport_name(client.transport))
                    .or_default() -= 1;
            }
            Event::AllocationRefused { reason, .. } => {
                *e.refused.entry(refuse_name(*reason)).or_default() += 1;
            }
            Event::PeerDenied { class, .. } => {
                *e.peer_denied.entry(class.name()).or_default() += 1;
            }
            Event::AuthFailed { reason, .. } => {
                *e.auth_failures.entry(reason.name()).or_default() += 1;
            }
            _ => {}
        }
    }

    /// Live allocations of this worker as last published.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(Ordering::Relaxed)
    }
}

/// Adds up every worker's counters at scrape time.
#[derive(Debug)]
pub struct TurnCollector {
    realm: String,
    workers: Vec<Arc<WorkerMetrics>>,
}

impl TurnCollector {
    pub fn new(realm: impl Into<String>, workers: Vec<Arc<WorkerMetrics>>) -> Self {
        TurnCollector {
            realm: realm.into(),
            workers,
        }
    }
}

/// A gauge under an exact (coturn) name, optionally with labels.
pub(crate) fn gauge<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(L, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

/// An unlabelled gauge under an exact name.
pub(crate) fn gauge1(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// A counter (exported as `<name>_total`) with one label.
pub(crate) fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, v) in values {
        m.encode_family(&[(label, *value)])?
            .encode_counter::<NoLabelSet, _, u64>(v, None)?;
    }
    Ok(())
}

pub(crate) fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

impl Collector for TurnCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut s = Stats::default();
        let mut drops = [0u64; DropReason::COUNT];
        let mut errors = [0u64; ERROR_CODES.len()];
        let mut allocations = 0u64;
        let mut events = EventCounts::default();
        for w in &self.workers {
            w.stats.add_to(&mut s);
            for (sum, a) in drops.iter_mut().zip(w.drops.iter()) {
                *sum += a.load(Ordering::Relaxed);
            }
            for (sum, a) in errors.iter_mut().zip(w.errors.iter()) {
                *sum += a.load(Ordering::Relaxed);
            }
            allocations += w.allocations.load(Ordering::Relaxed);
            let e = w.events.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for (k, v) in e.allocations {
                *events.allocations.entry(k).or_default() += v;
            }
            for (k, v) in e.auth_failures {
                *events.auth_failures.entry(k).or_default() += v;
            }
            for (k, v) in e.peer_denied {
                *events.peer_denied.entry(k).or_default() += v;
            }
            for (k, v) in e.refused {
                *events.refused.entry(k).or_default() += v;
            }
        }
        let realm = [("realm", self.realm.as_str())];

        // coturn's names (gauges with the exact names; see the module docs).
        let mut by_type: Vec<([(&str, &str); 1], i64)> = ["UDP", "TCP", "TLS", "DTLS"]
            .iter()
            .map(|t| {
                (
                    [("type", *t)],
                    events.allocations.get(t).copied().unwrap_or(0),
                )
            })
            .collect();
        by_type.retain(|(l, v)| *v != 0 || l[0].1 == "UDP");
        gauge(
            &mut enc,
            "turn_total_allocations",
            "Live allocations by client transport (coturn name)",
            &by_type,
        )?;
        let traffic: [(&str, &str, u64); 8] = [
            ("rcvp", "Packets received from clients", s.client_packets_in),
            ("rcvb", "Bytes received from clients", s.client_bytes_in),
            ("sentp", "Packets relayed to clients", s.to_client_packets),
            (
                "sentb",
                "Payload bytes relayed to clients",
                s.to_client_bytes,
            ),
            (
                "peer_rcvp",
                "Packets received from peers",
                s.peer_packets_in,
            ),
            (
                "peer_rcvb",
                "Payload bytes received from peers",
                s.peer_bytes_in,
            ),
            ("peer_sentp", "Packets relayed to peers", s.to_peer_packets),
            (
                "peer_sentb",
                "Payload bytes relayed to peers",
                s.to_peer_bytes,
            ),
        ];
        for (suffix, help, v) in traffic {
            let v = v as i64;
            let (name, total) = (
                format!("turn_traffic_{suffix}"),
                format!("turn_total_traffic_{suffix}"),
            );
            gauge(
                &mut enc,
                &name,
                &format!("{help}, by realm (coturn name; live)"),
                &[(realm, v)],
            )?;
            gauge1(&mut enc, &total, &format!("{help} (coturn name; live)"), v)?;
        }
        gauge1(
            &mut enc,
            "stun_binding_request",
            "STUN Binding requests (coturn name)",
            s.binding_requests as i64,
        )?;
        gauge1(
            &mut enc,
            "stun_binding_response",
            "STUN Binding success responses sent (coturn name)",
            s.binding_responses as i64,
        )?;
        gauge1(
            &mut enc,
            "stun_binding_error",
            "STUN Binding error responses sent (coturn name)",
            s.binding_errors as i64,
        )?;
        gauge1(
            &mut enc,
            "turn_packet_processed",
            "Datagrams and frames received from clients and peers (coturn name)",
            (s.client_packets_in + s.peer_packets_in) as i64,
        )?;
        gauge1(
            &mut enc,
            "turn_packet_dropped",
            "Datagrams and frames dropped without a reply (coturn name)",
            drops.iter().sum::<u64>() as i64,
        )?;
        gauge1(
            &mut enc,
            "turn_unauthenticated_401_responses",
            "401 responses sent (coturn name)",
            errors_for(&errors, 401) as i64,
        )?;

        // Ours.
        gauge1(
            &mut enc,
            "switchyard_turn_allocations",
            "Live allocations (all workers)",
            allocations as i64,
        )?;
        let per_worker: Vec<([(&str, String); 1], i64)> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| ([("worker", i.to_string())], w.allocations() as i64))
            .collect();
        gauge(
            &mut enc,
            "switchyard_turn_worker_allocations",
            "Live allocations per worker",
            &per_worker,
        )?;
        counter(
            &mut enc,
            "switchyard_turn_allocations_created",
            "Allocations created",
            s.allocations_created,
        )?;
        counter(
            &mut enc,
            "switchyard_turn_allocations_freed",
            "Allocations freed",
            s.allocations_freed,
        )?;
        counter(
            &mut enc,
            "switchyard_turn_requests",
            "STUN requests received",
            s.requests,
        )?;
        counter(
            &mut enc,
            "switchyard_turn_replies",
            "STUN replies sent",
            s.replies,
        )?;
        counter(
            &mut enc,
            "switchyard_turn_events_dropped",
            "Lifecycle events dropped (queue full)",
            s.events_dropped,
        )?;
        let drop_values: Vec<(&str, u64)> = DropReason::ALL
            .iter()
            .map(|r| (r.name(), drops[r.index()]))
            .collect();
        counter_family(
            &mut enc,
            "switchyard_turn_drops",
            "Messages dropped without a reply, by reason",
            "reason",
            &drop_values,
        )?;
        let codes: Vec<String> = ERROR_CODES.iter().map(u16::to_string).collect();
        let error_values: Vec<(&str, u64)> = codes
            .iter()
            .zip(errors.iter())
            .map(|(c, v)| (c.as_str(), *v))
            .collect();
        counter_family(
            &mut enc,
            "switchyard_turn_errors",
            "STUN error responses sent, by code",
            "code",
            &error_values,
        )?;
        let relayed: [(&str, u64); 4] = [
            ("channel_data_in", s.channel_data_in),
            ("send_indication", s.send_indications_in),
            ("channel_data_out", s.channel_data_out),
            ("data_indication", s.data_indications_out),
        ];
        counter_family(
            &mut enc,
            "switchyard_turn_relayed_messages",
            "Relayed messages by framing",
            "framing",
            &relayed,
        )?;
        let map = |m: &BTreeMap<&'static str, u64>| -> Vec<(&'static str, u64)> {
            m.iter().map(|(k, v)| (*k, *v)).collect()
        };
        counter(
            &mut enc,
            "switchyard_turn_auth_failures",
            "Requests that failed authentication",
            s.auth_failures,
        )?;
        counter_family(
            &mut enc,
            "switchyard_turn_auth_failures_by_reason",
            "Authentication failures by reason",
            "reason",
            &map(&events.auth_failures),
        )?;
        counter(
            &mut enc,
            "switchyard_turn_peer_denied",
            "Peer addresses denied by the peer policy",
            s.peer_denied,
        )?;
        counter_family(
            &mut enc,
            "switchyard_turn_peer_denied_by_class",
            "Peer policy denials by address class",
            "class",
            &map(&events.peer_denied),
        )?;
        counter_family(
            &mut enc,
            "switchyard_turn_allocations_refused",
            "Allocations refused after authentication (quotas: 486, ports: 508)",
            "reason",
            &map(&events.refused),
        )?;

        // Receive batch sizes per worker (recvmmsg), as a histogram.
        let mut m = enc.encode_descriptor(
            "switchyard_turn_recv_batch_size",
            "Datagrams returned per receive call, per worker",
            None,
            MetricType::Histogram,
        )?;
        for (i, w) in self.workers.iter().enumerate() {
            // Per-bucket counts: the encoder makes them cumulative.
            let buckets: Vec<(f64, u64)> = BATCH_BUCKETS
                .iter()
                .zip(w.batches.iter())
                .map(|(b, c)| (*b as f64, c.load(Ordering::Relaxed)))
                .collect();
            let count = buckets.iter().map(|(_, c)| c).sum();
            let sum = w.batch_packets.load(Ordering::Relaxed) as f64;
            let worker = [("worker", i.to_string())];
            m.encode_family(&worker)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

fn errors_for(errors: &[u64], code: u16) -> u64 {
    ERROR_CODES
        .iter()
        .position(|&c| c == code)
        .map(|i| errors[i])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn workers_are_added_up_under_coturn_and_own_names() {
        let workers: Vec<Arc<WorkerMetrics>> = (0..2).map(|_| Arc::default()).collect();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TurnCollector::new("example.org", workers.clone())));
        let mut stats = Stats {
            client_bytes_in: 1000,
            to_peer_packets: 3,
            ..Stats::default()
        };
        stats.drops[DropReason::BandwidthLimit.index()] = 5;
        stats.errors[ERROR_CODES.iter().position(|&c| c == 486).unwrap()] = 2;
        let mut batches = BatchSizes::default();
        batches.record(1);
        batches.record(3);
        batches.record(32);
        workers[0].publish(&stats, 4, &batches);
        workers[1].publish(&stats, 1, &BatchSizes::default());
        let text = {
            let mut t = String::new();
            prometheus_client::encoding::text::encode(&mut t, &registry).unwrap();
            t
        };
        for line in [
            "turn_total_traffic_rcvb 2000",
            "turn_traffic_rcvb{realm=\"example.org\"} 2000",
            "turn_total_traffic_peer_sentp 6",
            "switchyard_turn_allocations 5",
            "switchyard_turn_worker_allocations{worker=\"0\"} 4",
            "switchyard_turn_drops_total{reason=\"max_bps\"} 10",
            "switchyard_turn_errors_total{code=\"486\"} 4",
            "switchyard_turn_recv_batch_size_bucket{le=\"4.0\",worker=\"0\"} 2",
            "switchyard_turn_recv_batch_size_count{worker=\"0\"} 3",
            "turn_packet_dropped 10",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Publishing again overwrites (workers publish totals, not deltas).
        workers[1].publish(&Stats::default(), 0, &BatchSizes::default());
        let mut t = String::new();
        prometheus_client::encoding::text::encode(&mut t, &registry).unwrap();
        assert!(
            t.lines().any(|l| l == "turn_total_traffic_rcvb 1000"),
            "{t}"
        );
    }

    #[test]
    fn lifecycle_events_are_counted_by_label() {
        use switchyard_turn::{AuthFailure, ClientAddr, DenyClass, SocketToken};
        let w = Arc::new(WorkerMetrics::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(TurnCollector::new("r", vec![w.clone()])));
        let client = |transport| ClientAddr {
            transport,
            remote: "192.0.2.1:5000".parse().unwrap(),
            local: "192.0.2.2:3478".parse().unwrap(),
            token: SocketToken(0),
        };
        let relayed = "192.0.2.2:50000".parse().unwrap();
        for t in [Transport::Udp, Transport::Tls, Transport::Tls] {
            w.count_event(&Event::AllocationCreated {
                client: client(t),
                relayed,
                username: "u".into(),
            });
        }
        w.count_event(&Event::AllocationFreed {
            client: client(Transport::Tls),
            relayed,
            username: "u".into(),
            reason: switchyard_turn::FreeReason::Expired,
        });
        for class in [DenyClass::Private, DenyClass::Private, DenyClass::Loopback] {
            w.count_event(&Event::PeerDenied {
                client: client(Transport::Udp),
                peer: "10.0.0.1:1".parse().unwrap(),
                class,
            });
        }
        w.count_event(&Event::AuthFailed {
            client: client(Transport::Udp),
            username: "u".into(),
            reason: AuthFailure::Expired,
        });
        w.count_event(&Event::AllocationRefused {
            client: client(Transport::Udp),
            username: "u".into(),
            reason: RefuseReason::UserQuota,
        });
        let mut t = String::new();
        prometheus_client::encoding::text::encode(&mut t, &registry).unwrap();
        for line in [
            "turn_total_allocations{type=\"UDP\"} 1",
            "turn_total_allocations{type=\"TLS\"} 1",
            "switchyard_turn_peer_denied_by_class_total{class=\"private\"} 2",
            "switchyard_turn_peer_denied_by_class_total{class=\"loopback\"} 1",
            "switchyard_turn_auth_failures_by_reason_total{reason=\"expired\"} 1",
            "switchyard_turn_allocations_refused_total{reason=\"user_quota\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
    }
}
