//! `switchyard loadgen sfu`: synthetic LiveKit participants against a LiveKit-compatible SFU
//! (ours or livekit-server).
//!
//! Each participant speaks LiveKit's signalling (`/rtc`, binary protobuf, HS256 access
//! tokens) and runs str0m peer connections: publishers send Opus-sized audio (100 B at
//! 50 packets/s) and optionally VP8-framed video (30 fps, packets up to 1000 B, optionally
//! three simulcast layers `q`/`h`/`f` at 1/16, 1/4 and 1 of `--video-kbps`); everyone is
//! auto-subscribed to every other participant's tracks. Payloads carry a stream key, a
//! sequence number and a send timestamp (the SFU rewrites SSRC, sequence numbers and RTP
//! time), so receivers measure loss, one-way latency and jitter.
//!
//! Phases: participants connect at `--join-rate` (publishers first); once all are connected
//! (or `--join-timeout` passed) and a settle second went by, a `--duration` window measures
//! what subscribers receive of the packets sent inside it, and the server's CPU (given
//! `--server-pid`). All participants run on `--threads` threads, each driving its clients'
//! sockets with mio.
//!
//! Two kinds of extra participant test the server's isolation, and are left out of every
//! figure but their own: `--flood-mbps` adds a publisher sending video far above any real
//! rate (the summary says what it offered and what reached the others), and
//! `--stalled-subscribers` adds subscribers that, once media flows, stop reading their
//! socket and stop driving str0m (no RTCP, no feedback), while their signalling stays up.
//!
//! Join time is connect start → every peer connection of the participant ICE+DTLS
//! connected; first packet is connect start → first remote media packet, over the
//! subscribe-only participants (over the publishers when there are none). With
//! `LOADGEN_SFU_DEBUG` set, each participant's timings go to stderr at the end.

mod client;
mod stamp;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use mio::{Events, Poll};

use self::client::{Client, Report, Spec, TOKENS_PER_CLIENT};
use super::procstat::ProcStat;

/// Load generator for LiveKit-compatible SFUs.
#[derive(Debug, Parser)]
#[command(name = "switchyard loadgen sfu")]
pub(crate) struct Args {
    /// The server's signalling URL (`ws://host:port`; `/rtc` is appended).
    #[arg(long, default_value = "ws://127.0.0.1:7880")]
    url: String,
    /// API key the access tokens are signed for (default: the `--dev` key).
    #[arg(long, default_value = "devkey")]
    api_key: String,
    /// API secret that signs the access tokens (default: the `--dev` secret).
    #[arg(long, default_value = "secret")]
    api_secret: String,
    /// Room to join.
    #[arg(long, default_value = "loadgen")]
    room: String,
    /// Participants that publish audio (and video) and subscribe to everyone else. 0: the
    /// subscribers join a room that another run publishes into (its stamps share this
    /// run's clock), e.g. to time joining a running call.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribe-only participants.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Video bitrate per publisher (top layer with --simulcast); 0 = audio only.
    #[arg(long, default_value_t = 0)]
    video_kbps: u32,
    /// Publish video as three simulcast layers (rids q, h, f).
    #[arg(long)]
    simulcast: bool,
    /// One extra publisher sending video at this many Mbit/s (`max` or 0: as fast as its
    /// thread can). Its streams are not measured; the summary reports what it offered and
    /// what got through to the others.
    #[arg(long, value_name = "MBPS|max", value_parser = parse_flood)]
    flood_mbps: Option<FloodRate>,
    /// Extra subscribers that, once media flows, stop reading their socket and stop
    /// sending RTCP/feedback (signalling stays up). Not measured.
    #[arg(long, default_value_t = 0)]
    stalled_subscribers: usize,
    /// Length of the measurement window in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Participants connecting per second.
    #[arg(long, default_value_t = 20.0)]
    join_rate: f64,
    /// Seconds to wait for every participant to connect before measuring anyway.
    #[arg(long, default_value_t = 20.0)]
    join_timeout: f64,
    /// Threads driving the participants.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Local address for the media sockets.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// The server's pid, for CPU figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one machine-readable `key=value` line at the end (for scripts).
    #[arg(long)]
    kv: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Publisher,
    Subscriber,
}

/// How a participant behaves; only `Normal` ones are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Normal,
    /// Publishes video at this many kbit/s; `None`: as fast as it can.
    Flood(Option<u32>),
    /// Stops reading and driving its connections once media arrives.
    Stalled,
}

/// `--flood-mbps`: kbit/s, or `None` for as fast as possible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct FloodRate(Option<u32>);

fn parse_flood(s: &str) -> Result<FloodRate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(FloodRate(None));
    }
    let mbps: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a rate in Mbit/s or `max`"))?;
    if !(0.0..=100_000.0).contains(&mbps) {
        return Err(format!("{s} Mbit/s is outside 0-100000"));
    }
    let kbps = (mbps * 1000.0).round() as u32;
    Ok(FloodRate((kbps > 0).then_some(kbps)))
}

/// A flooder without a rate announces this (its track's nominal bitrate; it sends what it
/// can regardless).
const FLOOD_MAX_NOMINAL_KBPS: u32 = 1_000_000;

/// Run phases, in order.
const PHASE_RUN: u8 = 0;
/// Publishers stop sending; receivers drain what is in flight.
const PHASE_DRAIN: u8 = 1;
/// Everyone leaves.
const PHASE_LEAVE: u8 = 2;

/// Send times in the payload stamps: µs of wall-clock time, read once and then advanced
/// by the monotonic clock. Two load generators on one machine then agree on what a stamp
/// means, so participants of one can measure media published by the other (late joiners
/// of a call another run holds) and wall-clock steps during a run change nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StampClock {
    base: Instant,
    base_us: u64,
}

impl StampClock {
    fn new(base: Instant) -> Self {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            base,
            base_us: wall.as_micros() as u64,
        }
    }

    /// The stamp time of `t`.
    pub(crate) fn at(&self, t: Instant) -> u64 {
        self.base_us + t.saturating_duration_since(self.base).as_micros() as u64
    }

    pub(crate) fn now(&self) -> u64 {
        self.at(Instant::now())
    }
}

/// What the workers and the main thread share.
pub(crate) struct Shared {
    pub(crate) clock: StampClock,
    phase: AtomicU8,
    /// The measurement window in [`StampClock`] µs (send times); `u64::MAX` end until set.
    pub(crate) win_start_us: AtomicU64,
    pub(crate) win_end_us: AtomicU64,
    /// Media packets sent by publishers / received by anyone, all run long.
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Received packets sent inside the window.
    pub(crate) window_received: AtomicU64,
    pub(crate) joined: AtomicUsize,
    pub(crate) connected: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    /// What the flooder's publisher socket sent, all run long.
    pub(crate) flood_sent_datagrams: AtomicU64,
    pub(crate) flood_sent_bytes: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    fatal: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn record_latency(&self, us: u64) {
        if let Ok(mut h) = self.latency.lock() {
            let _ = h.record(us);
        }
    }

    fn set_fatal(&self, why: String) {
        if let Ok(mut f) = self.fatal.lock() {
            f.get_or_insert(why);
        }
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }
}

/// An HS256 LiveKit access token (`iss` = key, `sub` = identity, `video` grant).
fn access_token(args: &Args, identity: &str, publish: bool) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let claims = serde_json::json!({
        "iss": args.api_key,
        "sub": identity,
        "nbf": now - 5,
        "exp": now + 6 * 3600,
        "video": {
            "roomJoin": true,
            "room": args.room,
            "canPublish": publish,
            "canSubscribe": true,
            "canPublishData": publish,
        },
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(args.api_secret.as_bytes()),
    )
    .context("signing an access token")
}

fn progress(args: &Args) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    switchyard_netio::raise_fd_limit();
    if args.publishers == 0 && args.subscribers == 0 {
        bail!("--publishers and --subscribers are both 0: nobody would join");
    }
    if args.duration <= 0.0 || args.join_rate <= 0.0 {
        bail!("--duration and --join-rate must be positive");
    }
    let url = args.url.trim_end_matches('/').to_owned();
    if !url.starts_with("ws://") {
        bail!("--url must be ws://host:port (got {url})");
    }
    // The first str0m peer of a process initialises the crypto provider, about 35 ms here.
    // Paid inside the first participant's join, it would be charged to the server's join
    // time; pay it before anyone connects.
    drop(str0m::Rtc::builder().build(Instant::now()));
    let base = Instant::now();
    let clock = StampClock::new(base);
    // Who joins, in joining order: publishers first (so subscribers measure joining a
    // running room), then the flooder, the subscribers and the stalled subscribers.
    let mut who: Vec<(Role, Behaviour, usize, String)> = Vec::new();
    for k in 0..args.publishers {
        who.push((
            Role::Publisher,
            Behaviour::Normal,
            k,
            format!("loadgen-pub-{k}"),
        ));
    }
    if let Some(FloodRate(kbps)) = args.flood_mbps {
        who.push((
            Role::Publisher,
            Behaviour::Flood(kbps),
            stamp::FLOOD_PUBLISHER,
            "loadgen-flood".into(),
        ));
    }
    for i in 0..args.subscribers {
        who.push((
            Role::Subscriber,
            Behaviour::Normal,
            i,
            format!("loadgen-sub-{i}"),
        ));
    }
    for i in 0..args.stalled_subscribers {
        who.push((
            Role::Subscriber,
            Behaviour::Stalled,
            i,
            format!("loadgen-stalled-{i}"),
        ));
    }
    let total = who.len();
    let shared = Arc::new(Shared {
        clock,
        phase: AtomicU8::new(PHASE_RUN),
        win_start_us: AtomicU64::new(u64::MAX),
        win_end_us: AtomicU64::new(u64::MAX),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        window_received: AtomicU64::new(0),
        joined: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        flood_sent_datagrams: AtomicU64::new(0),
        flood_sent_bytes: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new(3).expect("histogram")),
        fatal: Mutex::new(None),
    });
    let flooding = args.flood_mbps.is_some();
    let threads = args.threads.clamp(1, total - usize::from(flooding));
    // The flooder gets a thread of its own: it must not delay the measured participants'
    // sending and receiving on the loadgen's side.
    let mut groups: Vec<Vec<Spec>> = (0..threads + usize::from(flooding))
        .map(|_| Vec::new())
        .collect();
    let first_at = base + Duration::from_millis(50);
    let mut normal = 0;
    for (k, (role, behaviour, index, identity)) in who.into_iter().enumerate() {
        let token = access_token(&args, &identity, role == Role::Publisher)?;
        let (group, video_kbps, simulcast) = match behaviour {
            Behaviour::Flood(kbps) => (threads, kbps.unwrap_or(FLOOD_MAX_NOMINAL_KBPS), false),
            _ => {
                normal += 1;
                ((normal - 1) % threads, args.video_kbps, args.simulcast)
            }
        };
        groups[group].push(Spec {
            index,
            identity,
            role,
            token,
            url: url.clone(),
            bind: args.bind,
            video_kbps,
            simulcast,
            at: first_at + Duration::from_secs_f64(k as f64 / args.join_rate),
            behaviour,
        });
    }
    let handles: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(i, specs)| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("loadgen-sfu-{i}"))
                .spawn(move || worker(specs, &shared))
        })
        .collect::<Result<_, _>>()?;
    let finish =
        |shared: &Shared, handles: Vec<std::thread::JoinHandle<anyhow::Result<Vec<Report>>>>| {
            shared.phase.store(PHASE_LEAVE, Ordering::Relaxed);
            let mut reports = Vec::new();
            for h in handles {
                match h.join() {
                    Ok(Ok(r)) => reports.extend(r),
                    Ok(Err(e)) => shared.set_fatal(format!("{e:#}")),
                    Err(_) => shared.set_fatal("a loadgen thread panicked".into()),
                }
            }
            reports
        };

    let bar = progress(&args);
    let last_join = first_at + Duration::from_secs_f64(total as f64 / args.join_rate);
    let join_deadline = last_join + Duration::from_secs_f64(args.join_timeout);
    // Ramp: until everyone is connected (or gave up).
    loop {
        if let Some(e) = shared.fatal() {
            bar.finish_and_clear();
            finish(&shared, handles);
            bail!("{e}");
        }
        let connected = shared.connected.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        if connected + failed >= total || Instant::now() >= join_deadline {
            break;
        }
        bar.set_message(format!(
            "joining: {}/{total} joined, {connected} connected, {failed} failed",
            shared.joined.load(Ordering::Relaxed)
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Settle: subscriptions negotiated, keyframes requested and delivered.
    bar.set_message("settling");
    std::thread::sleep(Duration::from_secs(1));

    let duration = Duration::from_secs_f64(args.duration);
    let cpu_before = args.server_pid.map(ProcStat::read).transpose()?;
    let self_before = ProcStat::read(std::process::id()).ok();
    let win_start = Instant::now();
    shared
        .win_start_us
        .store(shared.clock.at(win_start), Ordering::Relaxed);
    let sent_before = shared.sent.load(Ordering::Relaxed);
    let flood_sent = |s: &Shared| {
        (
            s.flood_sent_datagrams.load(Ordering::Relaxed),
            s.flood_sent_bytes.load(Ordering::Relaxed),
        )
    };
    let flood_before = flood_sent(&shared);
    while win_start.elapsed() < duration {
        if let Some(e) = shared.fatal() {
            bar.finish_and_clear();
            finish(&shared, handles);
            bail!("{e}");
        }
        std::thread::sleep(Duration::from_millis(100));
        let secs = win_start.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "measuring: forwarded {:.0} pps, {} connected, {} failed",
            shared.window_received.load(Ordering::Relaxed) as f64 / secs,
            shared.connected.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        ));
    }
    let win_end = Instant::now();
    shared
        .win_end_us
        .store(shared.clock.at(win_end), Ordering::Relaxed);
    let cpu_after = args.server_pid.map(ProcStat::read).transpose()?;
    let self_after = ProcStat::read(std::process::id()).ok();
    let sent_window = shared.sent.load(Ordering::Relaxed) - sent_before;
    let flood_after = flood_sent(&shared);
    let flood_window = (
        flood_after.0 - flood_before.0,
        flood_after.1 - flood_before.1,
    );
    // Let what was sent inside the window arrive, then stop sending and leave.
    shared.phase.store(PHASE_DRAIN, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    bar.finish_and_clear();
    let reports = finish(&shared, handles);
    if let Some(e) = shared.fatal() {
        bail!("{e}");
    }
    let window = (win_end - win_start).as_secs_f64();
    let hist = shared.latency.lock().map(|h| h.clone()).ok();
    summarize(
        &args,
        &reports,
        &shared,
        hist,
        window,
        sent_window,
        flood_window,
        cpu_before.zip(cpu_after),
        self_before.zip(self_after),
    )
}

/// Drives one group of participants until the main thread says leave.
fn worker(mut specs: Vec<Spec>, shared: &Shared) -> anyhow::Result<Vec<Report>> {
    specs.sort_by_key(|s| s.at);
    let mut pending: VecDeque<Spec> = specs.into();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let phase = shared.phase();
        if phase >= PHASE_LEAVE {
            break;
        }
        let now = Instant::now();
        while pending.front().is_some_and(|s| s.at <= now) {
            let spec = pending.pop_front().expect("checked");
            let who = spec.identity.clone();
            match Client::connect(spec, poll.registry(), clients.len() * TOKENS_PER_CLIENT) {
                Ok(mut c) => {
                    // The upgrade response may have carried the first frames already.
                    c.on_ready(client::TOKEN_WS, poll.registry(), &mut buf, shared);
                    clients.push(c);
                }
                Err(e) => {
                    shared.set_fatal(format!("{who}: {e:#}"));
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut wake = now + Duration::from_millis(5);
        if let Some(s) = pending.front() {
            wake = wake.min(s.at);
        }
        let sending = phase == PHASE_RUN;
        for c in &mut clients {
            wake = wake.min(c.tick(now, sending, shared));
        }
        poll.poll(
            &mut events,
            Some(wake.saturating_duration_since(Instant::now())),
        )?;
        for ev in events.iter() {
            let t = ev.token().0;
            if let Some(c) = clients.get_mut(t / TOKENS_PER_CLIENT) {
                c.on_ready(t % TOKENS_PER_CLIENT, poll.registry(), &mut buf, shared);
            }
        }
    }
    for c in &mut clients {
        c.leave();
    }
    Ok(clients.into_iter().map(Client::report).collect())
}

/// `q`-quantile of unsorted values (nearest rank).
fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("nan".into(), |v| format!("{v:.digits$}"))
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    args: &Args,
    reports: &[Report],
    shared: &Shared,
    hist: Option<Histogram<u64>>,
    window: f64,
    sent_window: u64,
    flood_window: (u64, u64),
    server_cpu: Option<(ProcStat, ProcStat)>,
    self_cpu: Option<(ProcStat, ProcStat)>,
) -> anyhow::Result<()> {
    let total = reports.len();
    let joined = reports.iter().filter(|r| r.join_ms.is_some()).count();
    let connected = reports.iter().filter(|r| r.connected_ms.is_some()).count();
    let failed: Vec<&String> = reports.iter().filter_map(|r| r.error.as_ref()).collect();
    let stalled = reports.iter().filter(|r| r.stalled).count();
    let all = reports;
    // From here on, the measured participants only.
    let reports: Vec<&Report> = all
        .iter()
        .filter(|r| r.behaviour == Behaviour::Normal)
        .collect();
    let fwd = shared.window_received.load(Ordering::Relaxed);
    let fwd_pps = fwd as f64 / window;
    let sent_pps = sent_window as f64 / window;
    let (mut expected, mut received) = (0u64, 0u64);
    let mut jitters = Vec::new();
    for s in reports.iter().flat_map(|r| r.streams.iter()) {
        expected += s.expected();
        received += s.received.min(s.expected());
        jitters.push(s.jitter_us / 1e3);
    }
    let loss = if expected == 0 {
        f64::NAN
    } else {
        100.0 * (expected - received) as f64 / expected as f64
    };
    let jitter_mean = if jitters.is_empty() {
        f64::NAN
    } else {
        jitters.iter().sum::<f64>() / jitters.len() as f64
    };
    let jitter_max = jitters.iter().copied().fold(f64::NAN, f64::max);
    let col = |f: fn(&Report) -> Option<f64>| -> Vec<f64> {
        reports.iter().copied().filter_map(f).collect()
    };
    let ws = col(|r| r.ws_ms);
    let join = col(|r| r.join_ms);
    let ice = col(|r| r.connected_ms);
    // Time to first packet: subscribers joined a room whose publishers were already
    // sending; without subscribers, the publishers (who waited for each other).
    let first_role = if args.subscribers > 0 {
        Role::Subscriber
    } else {
        Role::Publisher
    };
    let first: Vec<f64> = reports
        .iter()
        .filter(|r| r.role == first_role)
        .filter_map(|r| r.first_pkt_ms)
        .collect();
    let lat = hist.filter(|h| !h.is_empty()).map(|h| {
        (
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3,
        )
    });

    let video = match (args.video_kbps, args.simulcast) {
        (0, _) => "audio only".to_owned(),
        (k, false) => format!("audio + video {k} kbps"),
        (k, true) => format!("audio + video {k} kbps simulcast q/h/f"),
    };
    let mut extras = String::new();
    if let Some(FloodRate(kbps)) = args.flood_mbps {
        match kbps {
            Some(k) => extras.push_str(&format!(", a flooder at {} Mbit/s", f64::from(k) / 1e3)),
            None => extras.push_str(", a flooder at full speed"),
        }
    }
    if args.stalled_subscribers > 0 {
        extras.push_str(&format!(
            ", {} stalled subscribers",
            args.stalled_subscribers
        ));
    }
    println!(
        "sfu: room {}, {} publishers ({video}), {} subscribers{extras}, {window:.1} s window, {} threads",
        args.room, args.publishers, args.subscribers, args.threads
    );
    println!(
        "participants: {joined}/{total} joined, {connected} connected, {} failed",
        failed.len()
    );
    for e in failed.iter().take(3) {
        println!("  failure: {e}");
    }
    if args.stalled_subscribers > 0 {
        println!(
            "stalled: {stalled} of {} stalled subscribers got media and stopped reading",
            args.stalled_subscribers
        );
    }
    println!(
        "forwarded: {fwd} packets received by all participants ({fwd_pps:.0} pps); publishers sent {sent_pps:.0} pps; loss {loss:.3} % ({} of {expected} expected)",
        expected - received
    );
    match lat {
        Some((p50, p99, max)) => println!(
            "latency one-way (ms): p50 {p50:.2} p99 {p99:.2} max {max:.2}; jitter mean {jitter_mean:.2} max {jitter_max:.2}"
        ),
        None => println!("latency: no packets in the window"),
    }
    // The flooder: what its socket sent in the window (SRTP datagrams, audio, video and
    // RTCP), and the payload of its media sent in the window that reached each measured
    // participant, on average.
    let flood = args.flood_mbps.map(|_| {
        let receivers = reports.iter().filter(|r| r.connected_ms.is_some()).count();
        let per = (receivers.max(1) as f64) * window;
        let packets: u64 = reports.iter().map(|r| r.flood_packets).sum();
        let bytes: u64 = reports.iter().map(|r| r.flood_bytes).sum();
        (
            flood_window.1 as f64 * 8.0 / window / 1e6,
            flood_window.0 as f64 / window,
            bytes as f64 * 8.0 / per / 1e6,
            packets as f64 / per,
        )
    });
    if let Some((off_mbps, off_pps, thr_mbps, thr_pps)) = flood {
        println!(
            "flood: offered {off_mbps:.2} Mbit/s ({off_pps:.0} datagrams/s); through to each participant {thr_mbps:.2} Mbit/s of payload ({thr_pps:.0} packets/s)"
        );
    }
    println!(
        "join (ms, from connect): websocket p50 {} p99 {}; join response p50 {} p99 {}; ICE+DTLS connected p50 {} p99 {}",
        fmt_opt(quantile(&ws, 0.5), 1),
        fmt_opt(quantile(&ws, 0.99), 1),
        fmt_opt(quantile(&join, 0.5), 1),
        fmt_opt(quantile(&join, 0.99), 1),
        fmt_opt(quantile(&ice, 0.5), 1),
        fmt_opt(quantile(&ice, 0.99), 1),
    );
    println!(
        "first remote packet (ms, from connect, {}): p50 {} p99 {} ({} of them got one)",
        if first_role == Role::Subscriber {
            "subscribers"
        } else {
            "publishers"
        },
        fmt_opt(quantile(&first, 0.5), 1),
        fmt_opt(quantile(&first, 0.99), 1),
        first.len()
    );
    let mut server_cpu_s = None;
    let mut cpu_us_per_pkt = None;
    let mut pps_per_core = None;
    if let Some((b, a)) = server_cpu {
        let cpu = a.cpu_seconds() - b.cpu_seconds();
        server_cpu_s = Some(cpu);
        let cores = cpu / window;
        if fwd > 0 {
            cpu_us_per_pkt = Some(cpu * 1e6 / fwd as f64);
        }
        if cpu > 0.0 {
            pps_per_core = Some(fwd_pps / cores);
        }
        println!(
            "server cpu: {cpu:.2} s ({:.0} % of one core), {} µs per forwarded packet, {} forwarded pps per core, rss {} MiB",
            100.0 * cores,
            fmt_opt(cpu_us_per_pkt, 2),
            fmt_opt(pps_per_core, 0),
            a.rss_kib / 1024
        );
    }
    let self_pct = self_cpu.map(|(b, a)| 100.0 * (a.cpu_seconds() - b.cpu_seconds()) / window);
    if let Some(p) = self_pct {
        println!("loadgen cpu: {p:.0} % of one core");
    }
    if args.kv {
        let f = |i: usize, digits: usize| fmt_opt(flood.map(|v| [v.0, v.1, v.2, v.3][i]), digits);
        println!(
            "kv mode=sfu pubs={} subs={} stalled_subs={} stalled={stalled} video_kbps={} simulcast={} flood_offered_mbps={} flood_offered_pps={} flood_through_mbps={} flood_through_pps={} joined={joined} connected={connected} failed={} window_s={window:.2} fwd_pkts={fwd} fwd_pps={fwd_pps:.0} sent_pps={sent_pps:.0} loss_pct={} lat_p50_ms={} lat_p99_ms={} jitter_ms={} ws_p50_ms={} join_p50_ms={} join_p99_ms={} first_pkt_p50_ms={} first_pkt_p99_ms={} server_cpu_s={} cpu_us_per_pkt={} pps_per_core={} loadgen_cpu_pct={}",
            args.publishers,
            args.subscribers,
            args.stalled_subscribers,
            args.video_kbps,
            u8::from(args.simulcast),
            f(0, 3),
            f(1, 0),
            f(2, 3),
            f(3, 0),
            failed.len(),
            fmt_opt((expected > 0).then_some(loss), 4),
            fmt_opt(lat.map(|l| l.0), 3),
            fmt_opt(lat.map(|l| l.1), 3),
            fmt_opt((!jitters.is_empty()).then_some(jitter_mean), 3),
            fmt_opt(quantile(&ws, 0.5), 1),
            fmt_opt(quantile(&ice, 0.5), 1),
            fmt_opt(quantile(&ice, 0.99), 1),
            fmt_opt(quantile(&first, 0.5), 1),
            fmt_opt(quantile(&first, 0.99), 1),
            fmt_opt(server_cpu_s, 3),
            fmt_opt(cpu_us_per_pkt, 3),
            fmt_opt(pps_per_core, 0),
            fmt_opt(self_pct, 0),
        );
    }
    if fwd == 0 {
        bail!("no media was forwarded inside the measurement window");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 1.0), Some(3.0));
    }

    #[test]
    fn flood_rates() {
        assert_eq!(parse_flood("20"), Ok(FloodRate(Some(20_000))));
        assert_eq!(parse_flood("2.5"), Ok(FloodRate(Some(2_500))));
        assert_eq!(parse_flood("max"), Ok(FloodRate(None)));
        assert_eq!(parse_flood("0"), Ok(FloodRate(None)));
        assert!(parse_flood("-1").is_err());
        assert!(parse_flood("fast").is_err());
    }

    #[test]
    fn tokens_verify_with_the_same_secret() {
        let args = Args::try_parse_from(["sfu", "--api-key", "k", "--api-secret", "s3cret"])
            .expect("args");
        let t = access_token(&args, "who", true).expect("token");
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let d = jsonwebtoken::decode::<serde_json::Value>(
            &t,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &v,
        )
        .expect("valid");
        assert_eq!(d.claims["iss"], "k");
        assert_eq!(d.claims["sub"], "who");
        assert_eq!(d.claims["video"]["room"], "loadgen");
        assert_eq!(d.claims["video"]["canPublish"], true);
    }
}
