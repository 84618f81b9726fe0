//! `switchyard loadgen turn`: drives any TURN server (ours or coturn) with Synapse-style
//! credentials and reports what a relay costs.
//!
//! Modes:
//! - `relay` (default): N allocations channel-bound to a loopback sink this process owns;
//!   ChannelData of a given size at a given rate (or as fast as possible) for a given time.
//!   Reports sent, relayed, loss, one-way latency percentiles (timestamps travel in the
//!   payload) and, given the server's pid, server CPU seconds and µs per relayed packet.
//! - `alloc-rate`: authenticated Allocate + Refresh(0) transactions per second.
//! - `idle`: hold N allocations and report the server's RSS growth per allocation.
//! - `flood`: `relay` plus unauthenticated Binding/Allocate from many source ports, and the
//!   largest reply-to-request size ratio seen (amplification).
//! - `direct`: the same traffic as `relay`, sent straight to the sink with no server in
//!   between. Its latency is this machine's floor (sender, kernel, sink wake-up), so
//!   `relay p99 − direct p99` at the same rate is what the relay adds.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use switchyard_netio::RecvBatch;
use switchyard_stun::channel_data;

use super::alloc_rate;
use super::client::{Credentials, TurnClient};
use super::procstat::ProcStat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Relay,
    AllocRate,
    Idle,
    Flood,
    Direct,
}

/// Load generator for TURN servers.
#[derive(Debug, Parser)]
#[command(name = "switchyard loadgen turn")]
pub(crate) struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value = "relay")]
    mode: Mode,
    /// The server's UDP address.
    #[arg(long, default_value = "127.0.0.1:3478")]
    server: SocketAddr,
    /// The `static-auth-secret` (Synapse's `turn_shared_secret`).
    #[arg(long)]
    secret: String,
    /// The user part of REST usernames; each allocation gets `<user>-<i>` so `user-quota`
    /// does not cap the run.
    #[arg(long, default_value = "@loadgen:example.org")]
    user: String,
    /// Allocations (relay, flood, idle) or clients in flight at once (alloc-rate).
    #[arg(long, short = 'n', default_value_t = 64)]
    allocations: usize,
    /// ChannelData payload bytes.
    #[arg(long, default_value_t = 200)]
    size: usize,
    /// Total packets per second over all allocations; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Run time in seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Sender threads (relay, flood) or driver threads (alloc-rate).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Packets sent back to back per allocation (one `sendmmsg`), as a video sender does
    /// with the packets of a frame. Paced runs default to 1 (allocations interleave packet
    /// by packet, the hardest case for a relay to batch); full-speed runs use 16 so the
    /// generator can outrun the server.
    #[arg(long)]
    burst: Option<usize>,
    /// Send each burst as one GSO `sendmsg` that the kernel cuts into datagrams. On a real
    /// network card, GRO presents back-to-back packets of one flow to a server that asks
    /// for it (`UDP_GRO`) as one buffer; on loopback there is no card, and a GSO send is
    /// what reproduces that. A server without `UDP_GRO` still receives separate datagrams.
    #[arg(long)]
    gso: bool,
    /// Pacing interval of `--rate` runs, in µs: each tick sends what is due, then sleeps.
    /// 1000 sends 20 packets a tick at 20,000 pps; 100 spreads them out the way many
    /// independent callers arrive, so a server wakes for nearly every packet.
    #[arg(long, default_value_t = 1000)]
    tick_us: u64,
    /// The server's pid, for CPU and RSS figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Local address for clients and the sink.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Flood: unauthenticated requests per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    flood_rate: u64,
    /// Print one machine-readable `key=value` line at the end (for scripts).
    #[arg(long)]
    kv: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    switchyard_netio::raise_fd_limit();
    match args.mode {
        Mode::Relay | Mode::Direct => relay(&args, false),
        Mode::Flood => relay(&args, true),
        Mode::AllocRate => alloc_rate(&args),
        Mode::Idle => idle(&args),
    }
}

fn creds(args: &Args, i: usize) -> Credentials {
    Credentials::rest(
        &args.secret,
        &format!("{}-{i}", args.user),
        Duration::from_secs(3600),
    )
}

fn progress(args: &Args, what: &'static str) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
    );
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Sets up `n` allocations, each bound to the sink on channel 0x4000.
fn setup(args: &Args, sink: SocketAddr) -> anyhow::Result<Vec<TurnClient>> {
    let mut clients = Vec::with_capacity(args.allocations);
    for i in 0..args.allocations {
        let mut c = new_allocation(args, i)?;
        c.channel_bind(0x4000, sink)
            .with_context(|| format!("channel bind {i}"))?;
        clients.push(c);
    }
    Ok(clients)
}

/// A client with a fresh allocation. A new local port may still carry an allocation of an
/// earlier run (coturn keeps deleted sessions for a while; 437): fresh ports get past that.
fn new_allocation(args: &Args, i: usize) -> anyhow::Result<TurnClient> {
    let mut last = None;
    for _ in 0..10 {
        let mut c = TurnClient::new(SocketAddr::new(args.bind, 0), args.server, creds(args, i))?;
        match c.allocate(None) {
            Ok(_relayed) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .expect("ten attempts")
        .context(format!("allocation {i}")))
}

fn relay(args: &Args, flood: bool) -> anyhow::Result<()> {
    if args.size < 16 {
        bail!("--size must be at least 16 (the payload carries a sequence number and a timestamp)");
    }
    let sink = UdpSocket::bind(SocketAddr::new(args.bind, 0))?;
    sink.set_nonblocking(true)?;
    let _ = socket2::SockRef::from(&sink).set_recv_buffer_size(8 << 20);
    let sink_addr = sink.local_addr()?;
    let direct = args.mode == Mode::Direct;
    let mut clients = if direct {
        Vec::new()
    } else {
        setup(args, sink_addr)?
    };
    // What the sender threads write to: each allocation's socket towards the server as
    // ChannelData, or (direct) plain sockets straight to the sink.
    let lanes = if direct {
        (0..args.allocations.max(1))
            .map(|_| {
                let socket = UdpSocket::bind(SocketAddr::new(args.bind, 0))?;
                Ok(Lane {
                    socket,
                    dest: sink_addr,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?
    } else {
        clients
            .iter()
            .map(|c| {
                Ok(Lane {
                    socket: c.socket.try_clone()?,
                    dest: c.server(),
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?
    };
    let header = if direct { channel_data::HEADER_LEN } else { 0 };

    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(args.duration);

    let sink_thread = {
        let stop = stop.clone();
        let received = received.clone();
        std::thread::spawn(move || sink_loop(sink, base, stop, received))
    };

    let flood_report = flood.then(|| {
        let stop = stop.clone();
        let server = args.server;
        let bind = args.bind;
        let rate = args.flood_rate;
        std::thread::spawn(move || flood_loop(server, bind, rate, stop))
    });

    let cpu_before = args.server_pid.map(ProcStat::read).transpose()?;
    let bar = progress(args, "relaying");
    let senders = args.senders.clamp(1, lanes.len());
    let per_sender_rate = args.rate / senders as u64;
    let mut groups: Vec<Vec<Lane>> = (0..senders).map(|_| Vec::new()).collect();
    for (i, lane) in lanes.into_iter().enumerate() {
        groups[i % senders].push(lane);
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for group in groups {
        let sent = sent.clone();
        let size = args.size;
        let tick = Duration::from_micros(args.tick_us.max(1));
        let burst = Burst {
            len: args
                .burst
                .unwrap_or(if args.rate == 0 { 16 } else { 1 })
                .clamp(1, 32),
            gso: args.gso,
        };
        handles.push(std::thread::spawn(move || {
            send_loop(
                &group,
                header,
                size,
                per_sender_rate,
                burst,
                tick,
                duration,
                base,
                &sent,
            )
        }));
    }
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(200));
        let s = sent.load(Ordering::Relaxed);
        let r = received.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "sent {s} ({:.0} pps) relayed {r} ({:.0} pps)",
            s as f64 / secs,
            r as f64 / secs
        ));
    }
    for h in handles {
        h.join().expect("sender thread");
    }
    let send_time = started.elapsed();
    // Let in-flight packets land before counting.
    std::thread::sleep(Duration::from_millis(300));
    let cpu_after = args.server_pid.map(ProcStat::read).transpose()?;
    stop.store(true, Ordering::Relaxed);
    let hist = sink_thread.join().expect("sink thread");
    let flood_stats = flood_report.map(|h| h.join().expect("flood thread"));
    bar.finish_and_clear();
    for c in &mut clients {
        let _ = c.release();
    }

    let sent = sent.load(Ordering::Relaxed);
    let relayed = received.load(Ordering::Relaxed);
    let loss = if sent == 0 {
        0.0
    } else {
        100.0 * (sent.saturating_sub(relayed)) as f64 / sent as f64
    };
    let secs = send_time.as_secs_f64();
    println!(
        "{}: {} {}, {} B payload, {:.1} s: sent {sent} ({:.0} pps), relayed {relayed} ({:.0} pps), loss {loss:.3} %",
        if direct { "direct (no relay)" } else { "relay" },
        args.allocations,
        if direct { "sockets" } else { "allocations" },
        args.size,
        secs,
        sent as f64 / secs,
        relayed as f64 / secs
    );
    let (p50, p99, p999) = (
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
    );
    println!(
        "latency one-way (µs): p50 {p50} p99 {p99} p99.9 {p999} max {}",
        hist.max()
    );
    let mut cpu_us_per_packet = None;
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        let cpu = a.cpu_seconds() - b.cpu_seconds();
        let per = if relayed > 0 {
            cpu * 1e6 / relayed as f64
        } else {
            f64::NAN
        };
        cpu_us_per_packet = Some(per);
        println!(
            "server cpu: {cpu:.2} s ({:.0} % of one core), {per:.2} µs per relayed packet",
            100.0 * cpu / secs
        );
    }
    if let Some(f) = &flood_stats {
        println!(
            "flood: {} unauthenticated requests sent, {} replies, max reply/request size ratio {:.2}",
            f.sent, f.replies, f.max_ratio
        );
    }
    if args.kv {
        println!(
            "kv mode={} sent={sent} relayed={relayed} loss_pct={loss:.4} pps={:.0} p50_us={p50} p99_us={p99} p999_us={p999} cpu_us_per_pkt={} flood_sent={} flood_ratio={:.2}",
            match args.mode {
                Mode::Flood => "flood",
                Mode::Direct => "direct",
                _ => "relay",
            },
            relayed as f64 / secs,
            cpu_us_per_packet.map_or("nan".into(), |v| format!("{v:.3}")),
            flood_stats.as_ref().map_or(0, |f| f.sent),
            flood_stats.as_ref().map_or(0.0, |f| f.max_ratio),
        );
    }
    Ok(())
}

/// One sending socket and where its packets go.
struct Lane {
    socket: UdpSocket,
    dest: SocketAddr,
}

/// How each allocation's packets leave the generator.
#[derive(Clone, Copy)]
struct Burst {
    /// Packets back to back per allocation.
    len: usize,
    /// As one GSO send rather than one `sendmmsg`.
    gso: bool,
}

/// Sends from `lanes` in turn. Each packet is ChannelData (channel 0x4000) carrying a
/// sequence number and a send timestamp; `skip` bytes of its head are left off (4 = send
/// the bare payload, for direct runs).
#[allow(clippy::too_many_arguments)]
fn send_loop(
    lanes: &[Lane],
    skip: usize,
    size: usize,
    rate: u64,
    burst: Burst,
    tick: Duration,
    duration: Duration,
    base: Instant,
    sent: &AtomicU64,
) {
    if lanes.is_empty() {
        return;
    }
    let mut packets = vec![vec![0u8; channel_data::HEADER_LEN + size]; burst.len];
    for p in &mut packets {
        let mut header = [0u8; 4];
        channel_data::write_header(&mut header, 0x4000, size as u16);
        p[..4].copy_from_slice(&header);
    }
    let start = Instant::now();
    let mut seq: u64 = 0;
    let mut reported: u64 = 0;
    let mut i = 0;
    // Sends `k` packets from the next allocation in one sendmmsg; returns how many the
    // kernel took.
    let mut send_burst = |k: usize, seq: u64, i: &mut usize| -> u64 {
        let lane = &lanes[*i % lanes.len()];
        *i += 1;
        let mut batch = switchyard_netio::SendBatch::new();
        for (j, p) in packets.iter_mut().take(k).enumerate() {
            let now = base.elapsed().as_nanos() as u64;
            p[4..12].copy_from_slice(&(seq + j as u64).to_be_bytes());
            p[12..20].copy_from_slice(&now.to_be_bytes());
        }
        if burst.gso {
            let mut segments = [&[][..]; 32];
            for (seg, p) in segments.iter_mut().zip(packets.iter().take(k)) {
                *seg = &p[skip..];
            }
            return switchyard_netio::send_segments(&lane.socket, lane.dest, &segments[..k]).sent
                as u64;
        }
        for p in packets.iter().take(k) {
            batch.push(lane.dest, &p[skip..]);
        }
        batch.flush(&lane.socket).sent as u64
    };
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        if rate == 0 {
            seq += send_burst(burst.len, seq, &mut i);
        } else {
            // Paced: send what is due, then sleep a tick — no spinning, so the generator
            // does not steal the server's core.
            let due = (elapsed.as_secs_f64() * rate as f64) as u64;
            while seq < due {
                let k = burst.len.min((due - seq) as usize);
                let took = send_burst(k, seq, &mut i);
                // A full local socket buffer: count only what went, retry next tick.
                seq += took;
                if took < k as u64 {
                    break;
                }
            }
            std::thread::sleep(tick);
        }
        sent.fetch_add(seq - reported, Ordering::Relaxed);
        reported = seq;
    }
    sent.fetch_add(seq - reported, Ordering::Relaxed);
}

fn sink_loop(
    sink: UdpSocket,
    base: Instant,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
) -> Histogram<u64> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut rx = RecvBatch::new(0, 2048, 0);
    let mut count = 0u64;
    // Block in poll(2) until a datagram is there: a sleeping sink would add its own sleep
    // to every latency figure.
    let mut poll = mio::Poll::new().expect("poll");
    let mut events = mio::Events::with_capacity(4);
    let mut source = mio::net::UdpSocket::from_std(sink);
    poll.registry()
        .register(&mut source, mio::Token(0), mio::Interest::READABLE)
        .expect("register sink");
    while !stop.load(Ordering::Relaxed) {
        let n = rx.recv(&source).unwrap_or(0);
        if n == 0 {
            let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
            continue;
        }
        let now = base.elapsed().as_nanos() as u64;
        for i in 0..n {
            let p = rx.payload(i);
            if p.len() >= 16 {
                let stamp = u64::from_be_bytes(p[8..16].try_into().expect("8 bytes"));
                let us = now.saturating_sub(stamp) / 1000;
                let _ = hist.record(us.max(1));
            }
        }
        count += n as u64;
        received.store(count, Ordering::Relaxed);
    }
    hist
}

struct FloodStats {
    sent: u64,
    replies: u64,
    max_ratio: f64,
}

/// Unauthenticated Binding and Allocate requests from 64 source ports.
fn flood_loop(
    server: SocketAddr,
    bind: std::net::IpAddr,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> FloodStats {
    use switchyard_stun::{Class, MessageBuilder, MessageType, Method, TransactionId};
    let sockets: Vec<UdpSocket> = (0..64)
        .filter_map(|_| UdpSocket::bind(SocketAddr::new(bind, 0)).ok())
        .inspect(|s| {
            let _ = s.set_nonblocking(true);
        })
        .collect();
    let mut stats = FloodStats {
        sent: 0,
        replies: 0,
        max_ratio: 0.0,
    };
    let mut reqs: Vec<Vec<u8>> = Vec::new();
    for method in [Method::BINDING, Method::ALLOCATE] {
        let mut buf = [0u8; 64];
        let typ = MessageType {
            class: Class::Request,
            method,
        };
        let mut b = MessageBuilder::new(&mut buf, typ, TransactionId([7; 12])).expect("fits");
        if method == Method::ALLOCATE {
            b.add_requested_transport(17).expect("fits");
        }
        let n = b.finish();
        reqs.push(buf[..n].to_vec());
    }
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) && !sockets.is_empty() {
        for (i, s) in sockets.iter().enumerate() {
            let req = &reqs[i % reqs.len()];
            if s.send_to(req, server).is_ok() {
                stats.sent += 1;
            }
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                stats.replies += 1;
                stats.max_ratio = stats.max_ratio.max(n as f64 / req.len() as f64);
            }
        }
        if rate > 0 {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            if stats.sent > due {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    stats
}

fn alloc_rate(args: &Args) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.duration);
    let tally = Arc::new(alloc_rate::Tally::default());
    let bar = progress(args, "allocating");
    let cpu_before = args.server_pid.map(ProcStat::read).transpose()?;
    let start = Instant::now();
    let until = start + duration;
    let threads = args.senders.clamp(1, args.allocations.max(1));
    let mut handles = Vec::new();
    for t in 0..threads {
        // Slot i runs on thread i % threads, each with its own user so quotas never bind.
        let creds: Vec<_> = (t..args.allocations.max(1))
            .step_by(threads)
            .map(|i| creds(args, i))
            .collect();
        let tally = tally.clone();
        let server = args.server;
        let sources = alloc_rate::Sources::new(args.bind, t);
        handles.push(std::thread::spawn(move || {
            alloc_rate::drive(server, sources, creds, until, tally)
        }));
    }
    let done = &tally.done;
    let failed = &tally.failed;
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(200));
        bar.set_message(format!(
            "{} allocations ({:.0}/s)",
            done.load(Ordering::Relaxed),
            done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
        ));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("alloc-rate thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_after = args.server_pid.map(ProcStat::read).transpose()?;
    bar.finish_and_clear();
    let n = done.load(Ordering::Relaxed);
    let rate = n as f64 / secs;
    println!(
        "alloc-rate: {n} authenticated allocations in {secs:.1} s = {rate:.0}/s ({} failed)",
        failed.load(Ordering::Relaxed)
    );
    let mut cpu_per = f64::NAN;
    if let (Some(b), Some(a)) = (cpu_before, cpu_after) {
        let cpu = a.cpu_seconds() - b.cpu_seconds();
        cpu_per = cpu * 1e6 / n.max(1) as f64;
        println!("server cpu: {cpu:.2} s, {cpu_per:.1} µs per allocation");
    }
    if args.kv {
        println!(
            "kv mode=alloc-rate allocs={n} per_sec={rate:.0} failed={} cpu_us_per_alloc={cpu_per:.1}",
            failed.load(Ordering::Relaxed)
        );
    }
    if n == 0 {
        bail!("no allocation succeeded");
    }
    Ok(())
}

fn idle(args: &Args) -> anyhow::Result<()> {
    let Some(pid) = args.server_pid else {
        bail!("--mode idle needs --server-pid to read the server's RSS");
    };
    let before = ProcStat::read(pid)?.rss_kib;
    let bar = progress(args, "allocating");
    let mut clients = Vec::with_capacity(args.allocations);
    for i in 0..args.allocations {
        clients.push(new_allocation(args, i)?);
        if i % 256 == 0 {
            bar.set_message(format!("{i} allocations"));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = ProcStat::read(pid)?.rss_kib;
    bar.finish_and_clear();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / clients.len().max(1) as f64;
    println!(
        "idle: {} allocations held; server RSS {before} KiB -> {after} KiB = {per:.0} B per allocation",
        clients.len()
    );
    if args.kv {
        println!(
            "kv mode=idle allocations={} rss_before_kib={before} rss_after_kib={after} bytes_per_alloc={per:.0}",
            clients.len()
        );
    }
    let mut clients = clients;
    for c in &mut clients {
        let _ = c.release();
    }
    Ok(())
}
